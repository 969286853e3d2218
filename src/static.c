/* static.c — files from a document root, by sendfile, through a per-worker open-file cache.
 *
 * Request path: decode and normalize the path (no syscall), look it up in this worker's
 * cache (no open/fstat for a hot file), answer 304/206/416/200 from the cached metadata, and
 * queue the head plus a file entry: conn.c sends the head with MSG_MORE and the file with
 * sendfile. File bytes never enter user space.
 *
 * Cache: a fixed array of entries per worker (allocated by zh_static_new, never on the
 * request path), a hash on the relative path, and an LRU list. Each entry holds the open fd,
 * size, mtime, inode and the preformatted ETag, Last-Modified and Content-Type. An entry
 * is revalidated after ttl_ms (open + fstat, compared by inode, size and mtime), so a changed
 * file is served stale for at most that long. Entries in use by queued responses are
 * reference-counted: eviction or invalidation of a busy entry only unhooks it, and the fd is
 * closed by the release of its last response.
 *
 * Safety: the path is percent-decoded once; "..", ".", empty segments collapse or are refused
 * ("..": 400), an encoded "/" or a NUL, backslash or control byte is 400, a segment starting
 * with "." is 404 unless dotfiles are on. Files are opened with openat2(RESOLVE_BENEATH |
 * RESOLVE_NO_MAGICLINKS) from the root's fd, so no symlink can lead outside the root; where
 * openat2 is missing, each component is opened with O_NOFOLLOW (no symlinks at all).
 */
#include "ext.h"

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
#include <time.h>

enum { PATH_MAX_CACHED = 240, PATH_MAX_DECODED = 4096 };

typedef struct {
	const char *ext;
	zh__hlines_t line; /* "Content-Type: type\r\n" */
} mime_t;

typedef struct cache cache_t;

typedef struct entry {
	struct entry *hnext;		/* hash chain, or the free list */
	cache_t *cache;
	struct entry *lprev, *lnext;	/* LRU, most recent first */
	int fd;
	uint32_t refs;			/* queued responses still sending from fd */
	bool hashed;			/* reachable by lookup; false: closed on last release */
	bool used;
	uint64_t size, validated_ms;
	dev_t dev;
	ino_t ino;
	struct timespec mtime;
	const mime_t *ctype;
	uint8_t etag_len;
	uint16_t plen;
	uint32_t hash;
	uint8_t variants;		/* bit k: path + suffix[k] exists (see pick_variant) */
	uint64_t variants_ms;		/* when variants was probed; 0: never */
	/* "ETag: ...\r\nLast-Modified: ...\r\nAccept-Ranges: bytes\r\n", formatted at fill time
	 * and appended to each response with one memcpy (hl indexes it); the ETag value starts
	 * at lines + 6 */
	zh__hlines_t hl;
	char lines[136];
	char path[PATH_MAX_CACHED];
} entry_t;

struct cache {
	entry_t *entries;
	entry_t **buckets;
	entry_t *free_list; /* entries that held a file and were given back */
	uint32_t nbuckets;
	uint32_t carved, nentries; /* entries[0..carved) have been used; the rest untouched */
	entry_t *lru_head, *lru_tail;
	uint64_t multipart_seq;	  /* counts multipart responses: the boundary's input */
	uint64_t boundary_key[2]; /* random (getrandom) per worker: see multipart_boundary */
};

struct zh_static {
	int root_fd;
	char index[64];
	size_t index_len;
	uint32_t ttl_ms, nentries;
	bool precompressed, dotfiles, no_openat2;
	unsigned nworkers;
	cache_t *caches; /* one per worker: no locks */
};

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

#define MIME_VALUE(m) ((m)->line.text + (m)->line.idx[0].voff)
#define MIME_VALUE_LEN(m) ((m)->line.idx[0].vlen)

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

/* ---- paths --------------------------------------------------------------------------------- */

/* Decodes path once and normalizes it to "a/b/c" (relative, no dot segments, "" for the
 * root). Sets *dir_slash when the path ends with '/'. Returns the length or -status. */
static int normalize(const char *in, size_t len, char *out, size_t cap, bool dotfiles,
		     bool *dir_slash)
{
	size_t o = 0, seg = 0;
	*dir_slash = len > 0 && in[len - 1] == '/';
	for (size_t i = 0; i <= len; i++) {
		int c;
		if (i == len || in[i] == '/') {
			size_t slen = o - seg;
			if (slen == 0 || (slen == 1 && out[seg] == '.')) {
				o = seg; /* empty or "." segment */
			} else if (slen == 2 && out[seg] == '.' && out[seg + 1] == '.') {
				return -400; /* never resolved upwards, in any encoding */
			} else if (out[seg] == '.' && !dotfiles) {
				return -404;
			} else if (i < len) {
				if (o == cap)
					return -414;
				out[o++] = '/';
			}
			seg = o;
			continue;
		}
		c = (unsigned char)in[i];
		if (c == '%') {
			int hi = i + 2 < len ? zh__hexval((unsigned char)in[i + 1]) : -1;
			int lo = i + 2 < len ? zh__hexval((unsigned char)in[i + 2]) : -1;
			if (hi < 0 || lo < 0)
				return -400;
			c = hi << 4 | lo;
			i += 2;
			if (c == '/')
				return -400; /* an encoded slash would hide a segment boundary */
		}
		if (c < 0x20 || c == 0x7f || c == '\\')
			return -400;
		if (o == cap)
			return -414;
		out[o++] = (char)c;
	}
	if (o > 0 && out[o - 1] == '/')
		o--;
	return (int)o;
}

/* Opens root-relative path without leaving the root. */
static int open_beneath(const zh_static_t *st, const char *path, int flags)
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

static void release_entry_ref(void *arg)
{
	entry_t *e = arg;
	e->refs--;
	drop_if_idle(e);
}

#define ETAG(e) ((e)->lines + 6)

static void fill_metadata(entry_t *e, const struct stat *st)
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
	int f = open_beneath(st, path, O_RDONLY | O_NONBLOCK);
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
static entry_t *lookup(zh_static_t *st, cache_t *c, uint64_t now, const char *path,
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
	fill_metadata(e, &sb);
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

/* ---- HTTP semantics ---------------------------------------------------------------------- */

/* RFC 9110 §13.1.2: If-None-Match, weak comparison, "*" matches any. */
static bool none_match(zh_slice_t v, const entry_t *e)
{
	return zh__etag_listed(v, ETAG(e), e->etag_len, true);
}

/* Any of the three HTTP-date forms (RFC 9110 §5.6.7); the worker's clock dates a two-digit
 * year. */
static bool parse_http_date(const zh_request_t *req, zh_slice_t v, time_t *out)
{
	return zh__http_date_parse(v.ptr, v.len, zh__ext_date_sec(zh__ext_worker(req)), out);
}

/* The Last-Modified sent for e: its mtime, or the response's Date when the mtime lies in
 * the future (RFC 9110 §8.8.2.1: an origin server MUST NOT send a later one). */
static time_t last_modified(const zh_request_t *req, const entry_t *e)
{
	time_t now = zh__ext_date_sec(zh__ext_worker(req));
	return e->mtime.tv_sec > now ? now : e->mtime.tv_sec;
}

enum { RANGES_MAX = 16 };

typedef struct {
	uint64_t first, last;
} range_t;

static const char *digits(const char *p, const char *end, uint64_t *v, bool *any)
{
	for (*v = 0, *any = false; p < end && *p >= '0' && *p <= '9'; p++, *any = true)
		if (__builtin_mul_overflow(*v, 10, v) ||
		    __builtin_add_overflow(*v, (uint64_t)(*p - '0'), v))
			return NULL;
	return p;
}

/* Range (RFC 9110 §14.1.2): "bytes=" then a list of a-b, a- and -n. Puts the satisfiable
 * ranges in out, in request order, and returns how many; returns 0 to ignore the header
 * (absent, invalid, more than RANGES_MAX specs, or ranges that overlap: answered 200 whole,
 * as §14.2 allows, so a request cannot make the server send the same bytes many times), or
 * -1 if no range is satisfiable (416). */
static int parse_ranges(zh_slice_t v, uint64_t size, range_t *out)
{
	const char *p = v.ptr, *end = v.ptr + v.len;
	int n = 0, specs = 0;
	if (v.len < 7 || memcmp(p, "bytes=", 6) != 0)
		return 0;
	for (p += 6; p < end;) {
		uint64_t a, b;
		bool has_a, has_b;
		if (*p == ' ' || *p == '\t' || *p == ',') {
			p++;
			continue;
		}
		if ((p = digits(p, end, &a, &has_a)) == NULL || p == end || *p != '-' ||
		    (p = digits(p + 1, end, &b, &has_b)) == NULL)
			return 0;
		if (p < end && *p != ',' && *p != ' ' && *p != '\t')
			return 0;
		if ((!has_a && !has_b) || (has_a && has_b && b < a) || ++specs > RANGES_MAX)
			return 0;
		if (!has_a) { /* suffix: the last b bytes */
			if (b == 0 || size == 0)
				continue;
			out[n++] = (range_t){b >= size ? 0 : size - b, size - 1};
		} else if (a < size) {
			out[n++] = (range_t){a, has_b && b < size ? b : size - 1};
		}
	}
	if (specs == 0)
		return 0;
	for (int i = 0; i < n; i++)
		for (int j = i + 1; j < n; j++)
			if (out[i].first <= out[j].last && out[j].first <= out[i].last)
				return 0;
	return n ? n : -1;
}

static int set_header(zh_response_t *resp, const char *name, const char *value, size_t vlen)
{
	return zh_resp_header_setn(resp, name, strlen(name), value, vlen);
}

/* Bytes a path keeps as they are when re-encoded: unreserved, sub-delims, ':' '@' '/'. */
#define BIT(c) (1ull << ((c) & 63))
static const uint64_t plain_lo = 0x03FF000000000000ull | BIT('!') | BIT('$') | BIT('&') |
				 BIT('\'') | BIT('(') | BIT(')') | BIT('*') | BIT('+') | BIT(',') |
				 BIT('-') | BIT('.') | BIT('/') | BIT(':') | BIT(';') | BIT('=');
static const uint64_t plain_hi = 0x07FFFFFE07FFFFFEull | BIT('@') | BIT('_') | BIT('~');
#undef BIT

static bool path_plain(unsigned char c)
{
	return c < 64 ? (plain_lo >> c) & 1 : c < 128 && (plain_hi >> (c - 64)) & 1;
}

static const char hex_upper[] = "0123456789ABCDEF";

/* "/" + path re-encoded: plain bytes as they are, the rest %XX. The result always starts
 * with exactly one '/', so it can never be read as "//host". */
static size_t encode_path(const char *path, size_t len, char *out, size_t cap)
{
	size_t o = 0;
	out[o++] = '/';
	for (size_t i = 0; i < len && o + 3 < cap; i++) {
		unsigned char c = (unsigned char)path[i];
		if (path_plain(c)) {
			out[o++] = (char)c;
		} else {
			out[o++] = '%';
			out[o++] = hex_upper[c >> 4];
			out[o++] = hex_upper[c & 15];
		}
	}
	return o;
}

/* 301 to the canonical form of path (plus '/' for directories), keeping the query. */
static void redirect(zh_request_t *req, zh_response_t *resp, const char *path, size_t plen,
		     bool slash)
{
	char loc[3 * PATH_MAX_DECODED + 4];
	zh_slice_t query = zh_req_query(req);
	size_t n = encode_path(path, plen, loc, sizeof loc - 2);
	if (slash && loc[n - 1] != '/')
		loc[n++] = '/';
	if (query.len && n + 1 + query.len < sizeof loc) {
		loc[n++] = '?';
		memcpy(loc + n, query.ptr, query.len);
		n += query.len;
	}
	if (set_header(resp, "Location", loc, n) < 0) {
		(void)zh_reply(resp, 414, "text/plain", "URI Too Long\n", 13);
		return;
	}
	(void)zh_reply(resp, 301, "text/plain", "Moved Permanently\n", 18);
}

/* Is the request's raw path a canonical spelling of the normalized one? Spellings that
 * RFC 3986 §6.2.2 makes the same URI are: an unreserved character or its triplet
 * ("/h%65llo" is "/hello", §6.2.2.2), and a triplet's hex digits in either case (§6.2.2.1);
 * the router matches them alike (server.c, match_encoded), so no route that claims the
 * name is bypassed. Other spellings ("//a", "/./a", "/%21" for "/!", "dir" for "dir/") map
 * to the same file only by this handler's choice: they are redirected to the canonical
 * spelling, which the router then sees, so the static handler never serves a file under a
 * name another route would have claimed. */
static bool is_canonical(zh_slice_t raw, const char *path, size_t plen, bool slash)
{
	const char *r = raw.ptr, *end = raw.ptr + raw.len;
	if (r == end || *r++ != '/')
		return false;
	for (size_t i = 0; i < plen; i++) {
		unsigned char c = (unsigned char)path[i];
		int u = zh__pct_unreserved(r, (size_t)(end - r));
		if (u >= 0) {
			if (u != c)
				return false;
			r += 3;
		} else if (path_plain(c)) {
			if (r == end || *r++ != (char)c)
				return false;
		} else if (zh__pct_octet(r, (size_t)(end - r)) != c) {
			return false;
		} else {
			r += 3;
		}
	}
	if (slash && plen > 0 && (r == end || *r++ != '/'))
		return false;
	return r == end;
}

static void fail_status(zh_response_t *resp, int status)
{
	size_t len;
	const char *reason = zh__status_reason(status, &len);
	char body[64];
	int n = snprintf(body, sizeof body, "%.*s\n", (int)len, reason);
	if (status == 503)
		(void)set_header(resp, "Retry-After", "1", 1);
	(void)zh_reply(resp, status, "text/plain; charset=utf-8", body, (size_t)n);
}

static const char *const codings[2] = {"br", "gzip"};
static const char *const suffix[2] = {".br", ".gz"};
static const zh__hlines_t coding_lines[2] = {ZH__HLINE("Content-Encoding", "br"),
					      ZH__HLINE("Content-Encoding", "gzip")};
static const zh__hlines_t vary_line = ZH__HLINE("Vary", "Accept-Encoding");

/* Which variants of e's file exist, probed (O_PATH opens) at most once per TTL: most files
 * have none, and browsers send Accept-Encoding with every request, so without this memory
 * each request would pay two failing opens. */
static uint8_t variants_of(zh_static_t *st, entry_t *e, uint64_t now, char *path, size_t plen)
{
	if (e->variants_ms == 0 || now - e->variants_ms >= st->ttl_ms) {
		e->variants = 0;
		for (int k = 0; k < 2; k++) {
			int fd;
			memcpy(path + plen, suffix[k], 4);
			fd = open_beneath(st, path, O_PATH);
			if (fd >= 0) {
				close(fd);
				e->variants |= (uint8_t)(1u << k);
			}
		}
		path[plen] = '\0';
		e->variants_ms = now ? now : 1;
	}
	return e->variants;
}

/* Picks a precompressed variant of e (at path) the client accepts (by q-value; br on a
 * tie). The lookups may recycle e under cache pressure: nothing of e is used after them. */
static entry_t *pick_variant(zh_static_t *st, cache_t *c, uint64_t now, zh_request_t *req,
			     entry_t *e, char *path, size_t plen, int *encoding)
{
	zh_slice_t ae;
	int best = -1, best_q = 0;
	uint8_t exist;
	if (!zh_req_header(req, "Accept-Encoding", &ae) || plen + 3 > PATH_MAX_CACHED)
		return NULL;
	exist = variants_of(st, e, now, path, plen);
	if (exist == 0)
		return NULL;
	for (int k = 0; k < 2; k++) {
		int q = zh__coding_q(ae, codings[k]);
		if (q > best_q) {
			best_q = q;
			best = k;
		}
	}
	for (int pass = 0; pass < 2 && best >= 0; pass++) {
		int k = pass == 0 ? best : 1 - best;
		int status;
		bool isdir;
		entry_t *v;
		if (!(exist & (1u << k)) || zh__coding_q(ae, codings[k]) == 0)
			continue;
		memcpy(path + plen, suffix[k], 4);
		v = lookup(st, c, now, path, plen + 3, &status, &isdir, NULL);
		path[plen] = '\0';
		if (v) {
			*encoding = k;
			return v;
		}
	}
	return NULL;
}

static void close_fd(void *arg)
{
	close((int)(intptr_t)arg);
}

/* Queues [first, first + len) of e's file. A cached entry gains a reference for the queued
 * part; a transient entry's fd is handed over, closed when the part is released. */
static int send_part(zh_response_t *resp, entry_t *e, uint64_t first, uint64_t len)
{
	int r;
	if (e->cache == NULL)
		return zh_send_file(resp, e->fd, first, len, close_fd, (void *)(intptr_t)e->fd);
	e->refs++;
	if ((r = zh_send_file(resp, e->fd, first, len, release_entry_ref, e)) < 0)
		e->refs--;
	return r;
}

/* ---- multipart boundaries ---------------------------------------------------------------- */

static uint64_t rotl64(uint64_t x, int b)
{
	return x << b | x >> (64 - b);
}

static void sip_round(uint64_t v[4])
{
	v[0] += v[1], v[1] = rotl64(v[1], 13), v[1] ^= v[0], v[0] = rotl64(v[0], 32);
	v[2] += v[3], v[3] = rotl64(v[3], 16), v[3] ^= v[2];
	v[0] += v[3], v[3] = rotl64(v[3], 21), v[3] ^= v[0];
	v[2] += v[1], v[1] = rotl64(v[1], 17), v[1] ^= v[2], v[2] = rotl64(v[2], 32);
}

/* SipHash-2-4 (Aumasson and Bernstein, 2012) of one 8-byte word m under key k. */
static uint64_t siphash_u64(const uint64_t k[2], uint64_t m)
{
	uint64_t v[4] = {k[0] ^ 0x736f6d6570736575u, k[1] ^ 0x646f72616e646f6du,
			 k[0] ^ 0x6c7967656e657261u, k[1] ^ 0x7465646279746573u};
	const uint64_t last = (uint64_t)8 << 56; /* the message length, no bytes left over */
	v[3] ^= m;
	sip_round(v), sip_round(v);
	v[0] ^= m;
	v[3] ^= last;
	sip_round(v), sip_round(v);
	v[0] ^= last;
	v[2] ^= 0xff;
	for (int i = 0; i < 4; i++)
		sip_round(v);
	return v[0] ^ v[1] ^ v[2] ^ v[3];
}

/* The boundary must not occur in the parts (RFC 2046 §5.1.1) and must tell a client nothing
 * about the server: it was once a counter XORed with a cache entry's heap address, which
 * gave the address away (and ASLR with it). Now it is a keyed PRF of the worker's counter:
 * SipHash under a per-worker key from getrandom(2), so a client that sees any number of
 * boundaries can neither recover the key nor predict the next one (and so cannot plant it in
 * a file it gets the server to serve). */
static int multipart_boundary(cache_t *c, char out[20])
{
	uint64_t x = siphash_u64(c->boundary_key, ++c->multipart_seq);
	return snprintf(out, 20, "zh%016llx", (unsigned long long)x);
}

/* 206 multipart/byteranges (RFC 9110 §14.6): each part's header is framing in the send
 * area, each part's bytes a file entry, so file bytes are still never copied. */
static void send_multipart(zh_response_t *resp, cache_t *c, entry_t *e, const mime_t *ctype,
			   const range_t *r, int n)
{
	char boundary[20], ct[64], part[192];
	int blen = multipart_boundary(c, boundary);
	int len = snprintf(ct, sizeof ct, "multipart/byteranges; boundary=%s", boundary);
	(void)set_header(resp, "Content-Type", ct, (size_t)len);
	if (zh_write_header(resp, 206) < 0)
		return;
	for (int i = 0; i < n; i++) {
		len = snprintf(part, sizeof part,
			       "\r\n--%s\r\nContent-Type: %.*s\r\nContent-Range: bytes %llu-%llu/%llu\r\n\r\n",
			       boundary, (int)MIME_VALUE_LEN(ctype), MIME_VALUE(ctype),
			       (unsigned long long)r[i].first, (unsigned long long)r[i].last,
			       (unsigned long long)e->size);
		if (zh__write_encoded(resp, part, (size_t)len) < 0 ||
		    send_part(resp, e, r[i].first, r[i].last - r[i].first + 1) < 0)
			return;
	}
	len = snprintf(part, sizeof part, "\r\n--%.*s--\r\n", blen, boundary);
	(void)zh__write_encoded(resp, part, (size_t)len);
}

/* Does a precondition on the current representation fail (If-Match, strong comparison;
 * else If-Unmodified-Since; RFC 9110 §13.1.1, §13.1.4, §13.2.2 steps 1-2)? An invalid date
 * is ignored. */
static bool precondition_failed(zh_request_t *req, const entry_t *e)
{
	zh_slice_t v;
	time_t ius;
	if (zh_req_header(req, "If-Match", &v))
		return !zh__etag_listed(v, ETAG(e), e->etag_len, false);
	return zh_req_header(req, "If-Unmodified-Since", &v) && parse_http_date(req, v, &ius) &&
	       last_modified(req, e) > ius;
}

/* Is the representation sent the one the client holds (If-None-Match, else
 * If-Modified-Since; RFC 9110 §13.2.2 steps 3-4)? */
static bool not_modified(zh_request_t *req, const entry_t *e)
{
	zh_slice_t v;
	time_t ims;
	if (zh_req_header(req, "If-None-Match", &v))
		return none_match(v, e);
	return zh_req_header(req, "If-Modified-Since", &v) && parse_http_date(req, v, &ims) &&
	       last_modified(req, e) <= ims;
}

/* The ranges to send: n > 0 ranges, 0 for the whole file, -1 for 416. */
static int wanted_ranges(zh_request_t *req, const entry_t *e, range_t *r)
{
	zh_slice_t v;
	time_t t;
	int n;
	/* RFC 9110 §14.2: range handling is defined for GET only; a server MUST ignore Range
	 * with another method (a HEAD describes the whole 200) */
	if (zh_req_method_bit(req) != ZH_GET || !zh_req_header(req, "Range", &v) ||
	    (n = parse_ranges(v, e->size, r)) == 0)
		return 0;
	if (!zh_req_header(req, "If-Range", &v))
		return n;
	/* RFC 9110 §13.1.5: the range only if the representation is the one named */
	if (v.len && v.ptr[0] == '"')
		return v.len == e->etag_len && memcmp(v.ptr, ETAG(e), v.len) == 0 ? n : 0;
	return parse_http_date(req, v, &t) && t == last_modified(req, e) ? n : 0;
}

/* Answers from e (the file or its precompressed variant). Returns true when e's fd was
 * handed to the output queue (transient entries: the queue closes it). */
static bool respond(zh_request_t *req, zh_response_t *resp, cache_t *c, entry_t *e,
		    const mime_t *ctype, int encoding, bool vary)
{
	const zh__hlines_t *lines[4] = {&ctype->line, &e->hl};
	unsigned nlines = 2;
	range_t r[RANGES_MAX];
	int n;

	if (vary) /* RFC 9110 §12.5.5: the choice depended on Accept-Encoding */
		lines[nlines++] = &vary_line;
	if (encoding >= 0)
		lines[nlines++] = &coding_lines[encoding];
	(void)zh__resp_header_lines(resp, lines, nlines);
	if (e->mtime.tv_sec > zh__ext_date_sec(zh__ext_worker(req))) {
		char lm[30];
		(void)set_header(resp, "Last-Modified", lm, zh__http_date(last_modified(req, e), lm));
	}

	if (precondition_failed(req, e)) {
		(void)zh_resp_header_del(resp, "Content-Encoding");
		(void)zh_reply(resp, 412, "text/plain", "Precondition Failed\n", 20);
		return false;
	}
	if (not_modified(req, e)) {
		(void)zh_write_header(resp, 304);
		return false;
	}
	n = wanted_ranges(req, e, r);
	if (n < 0) {
		char cr[48];
		int len = snprintf(cr, sizeof cr, "bytes */%llu", (unsigned long long)e->size);
		(void)set_header(resp, "Content-Range", cr, (size_t)len);
		(void)zh_resp_header_del(resp, "Content-Encoding");
		(void)zh_reply(resp, 416, "text/plain", "Range Not Satisfiable\n", 22);
		return false;
	}
	/* several ranges of an encoded variant, or of a file the cache could not hold: whole */
	if (n > 1 && (encoding >= 0 || e->cache == NULL))
		n = 0;
	if (n > 1) {
		send_multipart(resp, c, e, ctype, r, n);
		return false;
	}
	if (n == 1) {
		char cr[80];
		int len = snprintf(cr, sizeof cr, "bytes %llu-%llu/%llu",
				   (unsigned long long)r[0].first, (unsigned long long)r[0].last,
				   (unsigned long long)e->size);
		(void)set_header(resp, "Content-Range", cr, (size_t)len);
		(void)zh_write_header(resp, 206);
	} else {
		r[0] = (range_t){0, e->size - 1};
	}
	if (e->size == 0) {
		(void)zh_write_header(resp, 200);
		return false;
	}
	return send_part(resp, e, r[0].first, r[0].last - r[0].first + 1) == 0;
}

void zh_static_handler(zh_request_t *req, zh_response_t *resp, void *arg)
{
	zh_static_t *st = arg;
	cache_t *c = &st->caches[zh_req_worker(req)];
	uint64_t now = zh__ext_now_ms(zh__ext_worker(req));
	char path[PATH_MAX_DECODED + 8];
	zh_slice_t raw = zh_req_path(req);
	bool dir_slash, isdir;
	int status = 0, plen, encoding = -1;
	const mime_t *ctype;
	entry_t *e, *sent, scratch;

	plen = normalize(raw.ptr, raw.len, path, PATH_MAX_DECODED - st->index_len - 1,
			 st->dotfiles, &dir_slash);
	if (plen < 0) {
		fail_status(resp, -plen);
		return;
	}
	path[plen] = '\0';
	if (!is_canonical(raw, path, (size_t)plen, dir_slash)) {
		redirect(req, resp, path, (size_t)plen, dir_slash);
		return;
	}
	e = lookup(st, c, now, path, (size_t)plen, &status, &isdir, &scratch);
	if (isdir) {
		if (!dir_slash && plen > 0) {
			redirect(req, resp, path, (size_t)plen, true);
			return;
		}
		if (st->index_len == 0) {
			fail_status(resp, 404); /* no directory listings */
			return;
		}
		if (plen > 0)
			path[plen++] = '/';
		memcpy(path + plen, st->index, st->index_len + 1);
		plen += (int)st->index_len;
		e = lookup(st, c, now, path, (size_t)plen, &status, &isdir, &scratch);
		if (isdir)
			status = 404;
	} else if (e && dir_slash) {
		if (e == &scratch)
			close(scratch.fd);
		e = NULL;
		status = 404; /* "file/" is not the file */
	}
	if (e == NULL) {
		fail_status(resp, status ? status : 404);
		return;
	}

	sent = e;
	ctype = e->ctype; /* the variant lookups below may recycle e under cache pressure */
	if (st->precompressed) {
		entry_t *var = pick_variant(st, c, now, req, e, path, (size_t)plen, &encoding);
		if (var) {
			if (e == &scratch)
				close(scratch.fd);
			sent = var;
		}
	}
	if (!respond(req, resp, c, sent, ctype, encoding, st->precompressed) && sent == &scratch)
		close(scratch.fd);
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
