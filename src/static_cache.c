/* static_cache.c — the static handler's state: setup (zh_static_new, the only place that
 * allocates), content types, opening beneath the root, and the per-worker open-file cache.
 * The request handling (paths, conditionals, ranges, multipart) is in static.c; the design
 * of both is described at the top of static.c.
 */
#include "static_int.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* ---- content types ------------------------------------------------------------------------- */

/* Content-Type lines, preformatted: a response appends one with a memcpy. */
#define MIME(ext, type) {ext, ZH__HLINE("Content-Type", type)}
static const mime_t mime[] = {
	MIME("html", "text/html; charset=utf-8"),
	MIME("htm", "text/html; charset=utf-8"),
	MIME("css", "text/css; charset=utf-8"),
	MIME("js", "text/javascript; charset=utf-8"),
	MIME("mjs", "text/javascript; charset=utf-8"),
	MIME("json", "application/json"),
	MIME("txt", "text/plain; charset=utf-8"),
	MIME("md", "text/markdown; charset=utf-8"),
	MIME("csv", "text/csv; charset=utf-8"),
	MIME("xml", "application/xml"),
	MIME("svg", "image/svg+xml"),
	MIME("png", "image/png"),
	MIME("jpg", "image/jpeg"),
	MIME("jpeg", "image/jpeg"),
	MIME("gif", "image/gif"),
	MIME("webp", "image/webp"),
	MIME("avif", "image/avif"),
	MIME("ico", "image/vnd.microsoft.icon"),
	MIME("wasm", "application/wasm"),
	MIME("woff", "font/woff"),
	MIME("woff2", "font/woff2"),
	MIME("ttf", "font/ttf"),
	MIME("otf", "font/otf"),
	MIME("pdf", "application/pdf"),
	MIME("zip", "application/zip"),
	MIME("mp4", "video/mp4"),
	MIME("webm", "video/webm"),
	MIME("mp3", "audio/mpeg"),
	MIME("ogg", "audio/ogg"),
	MIME("wav", "audio/wav"),
};
static const mime_t mime_default = MIME("", "application/octet-stream");
#undef MIME

static const mime_t *content_type(const char *path, size_t len)
{
	const char *dot = NULL;
	for (size_t i = len; i-- > 0 && path[i] != '/';)
		if (path[i] == '.') {
			dot = path + i + 1;
			break;
		}
	if (dot) {
		size_t elen = (size_t)(path + len - dot);
		for (size_t i = 0; i < sizeof mime / sizeof mime[0]; i++)
			if (strlen(mime[i].ext) == elen && zh__ieq(dot, mime[i].ext, elen))
				return &mime[i];
	}
	return &mime_default;
}

/* Opens root-relative path without leaving the root. */
int zh__static_open_beneath(const zh_static_t *st, const char *path, int flags)
{
	static _Thread_local int have_openat2 = 1; /* per thread: no shared write */
	const char *rel = path[0] ? path : ".";
	int root_fd = st->root_fd;
	if (have_openat2 && !st->no_openat2) {
		struct open_how how = {.flags = (uint64_t)(flags | O_CLOEXEC),
				       .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS};
		long fd = syscall(SYS_openat2, root_fd, rel, &how, sizeof how);
		if (fd >= 0 || (errno != ENOSYS && errno != EPERM)) /* EPERM: seccomp filters */
			return (int)fd;
		have_openat2 = 0;
	}
	/* no openat2: walk component by component, refusing every symlink */
	{
		char comp[256];
		int dir = dup(root_fd);
		const char *p = path;
		while (dir >= 0 && *p) {
			const char *slash = strchr(p, '/');
			size_t n = slash ? (size_t)(slash - p) : strlen(p);
			int next;
			if (n >= sizeof comp) {
				close(dir);
				errno = ENAMETOOLONG;
				return -1;
			}
			memcpy(comp, p, n);
			comp[n] = '\0';
			next = openat(dir, comp,
				      (slash ? O_RDONLY | O_DIRECTORY : flags) | O_NOFOLLOW | O_CLOEXEC);
			close(dir);
			dir = next;
			p += n + (slash != NULL);
		}
		return dir;
	}
}

/* ---- cache ---------------------------------------------------------------------------------- */

static uint32_t hash_path(const char *p, size_t len)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)p[i]) * 16777619u;
	return h;
}

static void lru_unlink(cache_t *c, entry_t *e)
{
	if (e->lprev)
		e->lprev->lnext = e->lnext;
	else
		c->lru_head = e->lnext;
	if (e->lnext)
		e->lnext->lprev = e->lprev;
	else
		c->lru_tail = e->lprev;
	e->lprev = e->lnext = NULL;
}

static void lru_push_front(cache_t *c, entry_t *e)
{
	e->lprev = NULL;
	e->lnext = c->lru_head;
	if (c->lru_head)
		c->lru_head->lprev = e;
	else
		c->lru_tail = e;
	c->lru_head = e;
}

static void unhash(cache_t *c, entry_t *e)
{
	entry_t **pp = &c->buckets[e->hash & (c->nbuckets - 1)];
	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	e->hashed = false;
	lru_unlink(c, e);
}

/* An entry is reusable once it is unhooked and no queued response sends from its fd. */
static void drop_if_idle(entry_t *e)
{
	if (!e->hashed && e->refs == 0 && e->used) {
		close(e->fd);
		e->used = false;
		e->hnext = e->cache->free_list;
		e->cache->free_list = e;
	}
}

void zh__static_release_ref(void *arg)
{
	entry_t *e = arg;
	e->refs--;
	drop_if_idle(e);
}

void zh__static_fill_metadata(entry_t *e, const struct stat *st)
{
	char *p = e->lines;
	e->size = (uint64_t)st->st_size;
	e->dev = st->st_dev;
	e->ino = st->st_ino;
	e->mtime = st->st_mtim;
	memcpy(p, "ETag: ", 6);
	p += 6;
	/* strong validator: changes whenever size or mtime (ns) does; at most 51 bytes */
	e->etag_len = (uint8_t)snprintf(p, 64, "\"%llx-%llx-%llx%09lx\"",
					(unsigned long long)e->ino & 0xffffffu,
					(unsigned long long)e->size,
					(unsigned long long)st->st_mtim.tv_sec,
					(unsigned long)st->st_mtim.tv_nsec);
	p += e->etag_len;
	memcpy(p, "\r\nLast-Modified: ", 17);
	p += 17;
	p += zh__http_date(st->st_mtim.tv_sec, p);
	memcpy(p, "\r\nAccept-Ranges: bytes\r\n", 24);
	p += 24;
	e->hl.text = e->lines;
	e->hl.len = (uint16_t)(p - e->lines);
	e->hl.n = 3;
	e->hl.idx[0] = (zh__hdr_t){0, 4, 6, e->etag_len};
	e->hl.idx[1] = (zh__hdr_t){(uint16_t)(8 + e->etag_len), 13, (uint16_t)(23 + e->etag_len), 29};
	e->hl.idx[2] = (zh__hdr_t){(uint16_t)(54 + e->etag_len), 13, (uint16_t)(69 + e->etag_len), 5};
}

/* A free entry: a given-back one first, then one never used, else the least recent one
 * nobody is sending from. Entries are carved in order on first use (like the pools), so a
 * cache of 1024 entries (~590 KiB) costs RSS only for the files it has held. */
static entry_t *take_slot(cache_t *c)
{
	entry_t *e = c->free_list;
	if (e == NULL && c->carved < c->nentries) {
		e = &c->entries[c->carved++];
		e->cache = c;
		return e;
	}
	if (e == NULL) {
		for (e = c->lru_tail; e && e->refs; e = e->lprev)
			;
		if (e == NULL)
			return NULL;
		unhash(c, e);
		drop_if_idle(e); /* closes it and puts it on the free list */
	}
	c->free_list = e->hnext;
	return e;
}

/* Opens and stats path. Returns 0 with fd and st, or -status (404, 403, 500). */
static int open_file(zh_static_t *st, const char *path, int *fd, struct stat *sb)
{
	/* O_NONBLOCK: opening a FIFO or device must not block the worker (only regular files
	 * are served; sendfile ignores the flag) */
	int f = zh__static_open_beneath(st, path, O_RDONLY | O_NONBLOCK);
	if (f < 0) {
		switch (errno) {
		case ENOENT:
		case ENOTDIR:
		case ENAMETOOLONG:
			return -404;
		case EXDEV:
		case ELOOP:
		case EACCES:
		case EPERM:
			return -403;
		case EMFILE:
		case ENFILE:
		case ENOMEM:
			return -503;
		default:
			return -500;
		}
	}
	if (fstat(f, sb) < 0) {
		close(f);
		return -500;
	}
	*fd = f;
	return 0;
}

/* The cached entry for path, revalidated if older than the TTL; or NULL with *status set.
 * *isdir is set for directories (not cached). A file that cannot be cached (path longer than
 * an entry holds, or every entry busy sending) is described in *scratch if given: a
 * transient entry (cache NULL) whose fd the caller owns; without scratch that is a 503. */
entry_t *zh__static_lookup(zh_static_t *st, cache_t *c, uint64_t now, const char *path,
			   size_t plen, int *status, bool *isdir, entry_t *scratch)
{
	uint32_t h = hash_path(path, plen);
	entry_t *e = c->buckets[h & (c->nbuckets - 1)];
	struct stat sb;
	int fd, r;

	*isdir = false;
	for (; e; e = e->hnext)
		if (e->hash == h && e->plen == plen && memcmp(e->path, path, plen) == 0)
			break;
	if (e && now - e->validated_ms < st->ttl_ms) {
		lru_unlink(c, e);
		lru_push_front(c, e);
		return e;
	}
	r = open_file(st, path, &fd, &sb);
	if (e) {
		if (r == 0 && sb.st_ino == e->ino && sb.st_dev == e->dev &&
		    (uint64_t)sb.st_size == e->size && sb.st_mtim.tv_sec == e->mtime.tv_sec &&
		    sb.st_mtim.tv_nsec == e->mtime.tv_nsec) {
			close(fd); /* unchanged: keep the cached fd */
			e->validated_ms = now;
			lru_unlink(c, e);
			lru_push_front(c, e);
			return e;
		}
		unhash(c, e); /* changed or gone: in-flight responses keep the old fd */
		drop_if_idle(e);
	}
	if (r < 0) {
		*status = -r;
		return NULL;
	}
	if (S_ISDIR(sb.st_mode)) {
		close(fd);
		*isdir = true;
		return NULL;
	}
	if (!S_ISREG(sb.st_mode)) {
		close(fd);
		*status = 403;
		return NULL;
	}
	e = plen <= PATH_MAX_CACHED ? take_slot(c) : NULL;
	if (e == NULL && scratch == NULL) {
		close(fd);
		*status = 503;
		return NULL;
	}
	if (e == NULL)
		e = scratch;
	memset(e, 0, offsetof(entry_t, path));
	e->used = true;
	e->fd = fd;
	e->ctype = content_type(path, plen);
	zh__static_fill_metadata(e, &sb);
	if (e == scratch)
		return e; /* served uncached: no memory beyond the caller's stack */
	e->cache = c;
	e->hashed = true;
	e->hash = h;
	e->plen = (uint16_t)plen;
	memcpy(e->path, path, plen);
	e->validated_ms = now;
	e->hnext = c->buckets[h & (c->nbuckets - 1)];
	c->buckets[h & (c->nbuckets - 1)] = e;
	lru_push_front(c, e);
	return e;
}

/* ---- setup ----------------------------------------------------------------------------------- */

void zh_static_options_init(zh_static_options_t *o)
{
	memset(o, 0, sizeof *o);
	o->index = "index.html";
	o->cache_entries = 1024;
	o->cache_ttl_ms = 1000;
	o->precompressed = 1;
	o->dotfiles = 0;
}

zh_static_t *zh_static_new(const zh_server_t *srv, const zh_static_options_t *o, int *err)
{
	zh_static_t *st;
	uint32_t nb = 16;
	int r = -EINVAL;

	if (o == NULL || o->root == NULL || o->cache_entries == 0 ||
	    (o->index && (strlen(o->index) >= sizeof st->index || strchr(o->index, '/'))))
		goto fail;
	st = calloc(1, sizeof *st);
	if (st == NULL) {
		r = -ENOMEM;
		goto fail;
	}
	st->root_fd = open(o->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (st->root_fd < 0) {
		r = -errno;
		free(st);
		goto fail;
	}
	if (o->index) {
		st->index_len = strlen(o->index);
		memcpy(st->index, o->index, st->index_len + 1);
	}
	st->ttl_ms = o->cache_ttl_ms;
	st->precompressed = o->precompressed != 0;
	st->dotfiles = o->dotfiles != 0;
	st->no_openat2 = o->no_openat2 != 0;
	st->nentries = o->cache_entries;
	st->nworkers = zh_server_workers(srv);
	while (nb < 2 * st->nentries)
		nb <<= 1;
	st->caches = calloc(st->nworkers, sizeof *st->caches);
	if (st->caches == NULL) {
		zh_static_free(st);
		r = -ENOMEM;
		goto fail;
	}
	for (unsigned i = 0; i < st->nworkers; i++) {
		cache_t *c = &st->caches[i];
		c->entries = calloc(st->nentries, sizeof *c->entries);
		c->buckets = calloc(nb, sizeof *c->buckets);
		c->nbuckets = nb;
		if (c->entries == NULL || c->buckets == NULL) {
			zh_static_free(st);
			r = -ENOMEM;
			goto fail;
		}
		/* flags 0: blocks only until the kernel's pool is first initialized (boot) */
		if (getrandom(c->boundary_key, sizeof c->boundary_key, 0) !=
		    (ssize_t)sizeof c->boundary_key) {
			r = errno ? -errno : -EIO;
			zh_static_free(st);
			goto fail;
		}
		c->nentries = st->nentries; /* carved by take_slot: calloc's pages stay untouched */
	}
	return st;
fail:
	if (err)
		*err = r;
	return NULL;
}

void zh_static_free(zh_static_t *st)
{
	if (st == NULL)
		return;
	for (unsigned i = 0; st->caches && i < st->nworkers; i++) {
		cache_t *c = &st->caches[i];
		for (uint32_t k = 0; c->entries && k < c->carved; k++)
			if (c->entries[k].used)
				close(c->entries[k].fd);
		free(c->entries);
		free(c->buckets);
	}
	free(st->caches);
	if (st->root_fd >= 0)
		close(st->root_fd);
	free(st);
}
