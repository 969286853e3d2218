/* mw_gzip.c — gzip middleware: a commit hook that decides, and a body filter (zlib,
 * streaming) that compresses straight into the connection's send buffers.
 *
 * Decision at commit: a status with a body, not 206, no Content-Encoding yet,
 * not a file body (static files have precompressed variants and stay on sendfile), a
 * compressible Content-Type, and a declared Content-Length (if any) of at least
 * min_length. Such responses get `Vary: Accept-Encoding` whatever the client accepts; the
 * filter is installed when the request's Accept-Encoding allows gzip (q > 0), for a HEAD
 * too: its output is counted, not sent, so the HEAD carries the GET's Content-Encoding,
 * ETag and Content-Length.
 *
 * The filter holds the first min_length bytes back: a body that ends shorter goes out
 * as it is (no Content-Encoding). Otherwise, at the head callback, it sets
 * `Content-Encoding: gzip` and drops Content-Length; the framing then follows the output
 * (Content-Length when it all fits the send buffers, else chunked).
 *
 * Memory: zlib's allocation hooks draw from a per-worker arena of stream slots, mapped at
 * zh_gzip_new (lazily faulted in). deflateInit2 makes all its allocations at once
 * (about 262 KiB for a 32 KiB window and memLevel 8); the slot's bump allocator serves
 * them and the slot goes back whole when the response ends. No malloc on the request path.
 * When every slot is busy the response is simply sent uncompressed.
 */
#include "ext.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <zlib.h>

enum { ARENA_BYTES = 272 * 1024, HOLD_MAX = 4096 };

typedef struct slot {
	z_stream zs;
	struct slot *next_free;
	struct worker_slots *owner;
	zh_gzip_t *gz;
	size_t used; /* bump allocator over arena */
	bool deflating, decided, compress;
	uint16_t held_len;
	unsigned char held[HOLD_MAX];
	_Alignas(16) unsigned char arena[ARENA_BYTES];
} slot_t;

typedef struct worker_slots {
	slot_t *free_list;
	slot_t *base;
	unsigned carved, count;
} worker_slots_t;

struct zh_gzip {
	int level;
	size_t min_length;
	unsigned nworkers;
	worker_slots_t *workers;
	size_t map_len;
	void *map;
};

/* ---- zlib memory: one slot's arena ------------------------------------------------------- */

static voidpf arena_alloc(voidpf opaque, uInt items, uInt size)
{
	slot_t *s = opaque;
	size_t n = ((size_t)items * size + 15) & ~(size_t)15;
	void *p;
	if (n > ARENA_BYTES - s->used)
		return Z_NULL; /* deflateInit2 then fails: the body goes out uncompressed */
	p = s->arena + s->used;
	s->used += n;
	return p;
}

static void arena_free(voidpf opaque, voidpf address)
{
	(void)opaque, (void)address; /* the whole slot is returned at the end */
}

static slot_t *slot_get(zh_gzip_t *gz, unsigned worker)
{
	worker_slots_t *ws = &gz->workers[worker];
	slot_t *s = ws->free_list;
	if (s)
		ws->free_list = s->next_free;
	else if (ws->carved < ws->count)
		s = &ws->base[ws->carved++];
	else
		return NULL;
	s->owner = ws;
	s->gz = gz;
	s->used = 0;
	s->deflating = s->decided = s->compress = false;
	s->held_len = 0;
	return s;
}

static void slot_put(slot_t *s)
{
	if (s->deflating)
		deflateEnd(&s->zs);
	s->deflating = false;
	s->next_free = s->owner->free_list;
	s->owner->free_list = s;
}

/* ---- compression -------------------------------------------------------------------------- */

/* Runs deflate until it has consumed the input (and, with Z_FINISH, ended the stream),
 * writing into send-buffer windows. */
static int pump(zh_response_t *resp, slot_t *s, const void *data, size_t len, int flush)
{
	s->zs.next_in = (Bytef *)(uintptr_t)data;
	s->zs.avail_in = (uInt)len;
	for (;;) {
		char *p, *end;
		int r = zh_filter_window(resp, 64, &p, &end), z;
		size_t room;
		if (r < 0)
			return r;
		room = (size_t)(end - p) < (1u << 30) ? (size_t)(end - p) : (1u << 30);
		s->zs.next_out = (Bytef *)p;
		s->zs.avail_out = (uInt)room;
		z = deflate(&s->zs, flush);
		zh_filter_commit(resp, p, (char *)s->zs.next_out);
		if (z == Z_STREAM_ERROR)
			return -EIO;
		if (flush == Z_FINISH ? z == Z_STREAM_END
				      : s->zs.avail_in == 0 && s->zs.avail_out != 0)
			return 0;
	}
}

static void emit_raw(zh_response_t *resp, const unsigned char *data, size_t len)
{
	while (len) {
		char *p, *end;
		size_t n;
		if (zh_filter_window(resp, 1, &p, &end) < 0)
			return;
		n = (size_t)(end - p) < len ? (size_t)(end - p) : len;
		memcpy(p, data, n);
		zh_filter_commit(resp, p, p + n);
		data += n;
		len -= n;
	}
}

/* Compress from now on, if zlib agrees; returns whether it does. */
static bool start_deflate(slot_t *s)
{
	memset(&s->zs, 0, sizeof s->zs);
	s->zs.zalloc = arena_alloc;
	s->zs.zfree = arena_free;
	s->zs.opaque = s;
	/* 15 + 16: a 32 KiB window with the gzip wrapper */
	s->deflating = deflateInit2(&s->zs, s->gz->level, Z_DEFLATED, 15 + 16, 8,
				    Z_DEFAULT_STRATEGY) == Z_OK;
	s->decided = true;
	s->compress = s->deflating;
	return s->compress;
}

/* The head decided to compress while bytes were still held back: they go first. */
static int pump_held(zh_response_t *resp, slot_t *s)
{
	int r = 0;
	if (s->held_len && s->decided) {
		if (s->compress)
			r = pump(resp, s, s->held, s->held_len, Z_NO_FLUSH);
		else
			emit_raw(resp, s->held, s->held_len);
		s->held_len = 0;
	}
	return r;
}

static int filter_write(zh_response_t *resp, const void *data, size_t len, void *arg)
{
	slot_t *s = arg;
	if (pump_held(resp, s) < 0)
		return -EIO;
	if (!s->decided) {
		size_t take = s->gz->min_length - s->held_len;
		if (len < take) {
			memcpy(s->held + s->held_len, data, len);
			s->held_len = (uint16_t)(s->held_len + len);
			return 0;
		}
		/* long enough: compress what was held, then this */
		if (!start_deflate(s)) {
			emit_raw(resp, s->held, s->held_len);
			emit_raw(resp, data, len);
			return 0;
		}
		if (s->held_len && pump(resp, s, s->held, s->held_len, Z_NO_FLUSH) < 0)
			return -EIO;
		s->held_len = 0;
	}
	if (!s->compress) {
		emit_raw(resp, data, len);
		return 0;
	}
	return pump(resp, s, data, len, Z_NO_FLUSH);
}

/* The head leaves: a body still undecided is streaming (the head goes before its end), so
 * it will be long: compress (what is held goes out with the next write, or at the end). */
static void filter_head(zh_response_t *resp, void *arg)
{
	slot_t *s = arg;
	zh_slice_t etag;
	if (!s->decided)
		(void)start_deflate(s);
	if (!s->compress)
		return;
	/* Without its Content-Encoding the gzip body would be taken for the identity one. A
	 * failed set has failed resp (the sticky rule): it becomes a 500 before its head
	 * leaves (stream_start and zh__resp_finish check), so no compressed byte is sent. */
	if (zh_resp_header_set(resp, "Content-Encoding", "gzip") < 0)
		return;
	(void)zh_resp_header_del(resp, "Content-Length"); /* the encoded length is not known */
	/* the gzip bytes are not the identity bytes: a strong validator would claim they are,
	 * and ranges over them would mix representations (RFC 9110 §8.8.1, §14) */
	(void)zh_resp_header_del(resp, "Accept-Ranges");
	if (zh_resp_header_get(resp, "ETag", &etag) && etag.len && etag.ptr[0] == '"') {
		char weak[256] = "W/";
		if (etag.len > sizeof weak - 2) {
			(void)zh_resp_header_del(resp, "ETag"); /* too long to weaken: none at all */
		} else {
			memcpy(weak + 2, etag.ptr, etag.len);
			if (zh_resp_header_setn(resp, "ETag", 4, weak, etag.len + 2) < 0)
				return; /* failed as above */
		}
	}
}

static int filter_flush(zh_response_t *resp, void *arg)
{
	slot_t *s = arg;
	if (pump_held(resp, s) < 0)
		return -EIO;
	return s->compress ? pump(resp, s, NULL, 0, Z_SYNC_FLUSH) : 0;
}

static int filter_finish(zh_response_t *resp, void *arg)
{
	slot_t *s = arg;
	if (pump_held(resp, s) < 0)
		return -EIO;
	if (!s->decided) {
		/* shorter than min_length: sent as it is */
		s->decided = true;
		emit_raw(resp, s->held, s->held_len);
		return 0;
	}
	return s->compress ? pump(resp, s, NULL, 0, Z_FINISH) : 0;
}

static void filter_release(void *arg)
{
	slot_put(arg);
}

/* ---- the commit-time decision ----------------------------------------------------------- */

static bool compressible(zh_slice_t ct)
{
	static const char *const types[] = {
		"application/json", "application/javascript", "application/xml",
		"application/xhtml+xml", "application/rss+xml", "application/atom+xml",
		"application/ld+json", "application/manifest+json", "image/svg+xml",
		"application/wasm"};
	size_t n = 0;
	while (n < ct.len && ct.ptr[n] != ';' && ct.ptr[n] != ' ')
		n++;
	if (n > 5 && zh__ieq(ct.ptr, "text/", 5))
		return true;
	for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
		if (strlen(types[i]) == n && zh__ieq(ct.ptr, types[i], n))
			return true;
	return false;
}

/* Vary: Accept-Encoding, as a field of its own unless some Vary field names it already:
 * the others (the handler's, CORS's Origin) are left as they are. 0, or the failed set's
 * -errno (resp has then failed: the sticky rule). */
static int vary_accept_encoding(zh_response_t *resp)
{
	zh_slice_t name, v;
	for (unsigned f = 0; zh_resp_header_at(resp, f, &name, &v); f++) {
		if (name.len != 4 || !zh__ieq(name.ptr, "vary", 4))
			continue;
		for (size_t i = 0; i + 15 <= v.len; i++)
			if (zh__ieq(v.ptr + i, "accept-encoding", 15))
				return 0;
	}
	return zh_resp_header_add(resp, "Vary", "Accept-Encoding");
}

static void gzip_commit(zh_response_t *resp, void *arg)
{
	zh_gzip_t *gz = arg;
	zh_request_t *req = zh_resp_request(resp);
	int status = zh_resp_status(resp);
	zh_slice_t v;
	uint64_t declared;
	slot_t *s;
	if (status < 200 || status == 204 || status == 206 || status == 304 ||
	    zh_resp_body_is_file(resp) || zh_resp_header_get(resp, "Content-Encoding", &v) ||
	    zh_resp_header_get(resp, "Content-Range", &v) ||
	    !zh_resp_header_get(resp, "Content-Type", &v) || !compressible(v) ||
	    (zh_resp_content_length(resp, &declared) && declared < gz->min_length))
		return;
	if (vary_accept_encoding(resp) < 0)
		return; /* a 500 now: nothing to compress */
	/* A HEAD is compressed too, its output counted and dropped: it must carry what its GET
	 * would (RFC 9110 §9.3.2), and a cache updates a stored GET response from it (RFC 9111
	 * §4.3.5), so Content-Encoding, the weakened ETag and the encoded Content-Length must
	 * all be the GET's. Costs the compression; a HEAD is rare next to its GETs. */
	if (!zh_req_header(req, "Accept-Encoding", &v) ||
	    zh__coding_q(v, "gzip") == 0)
		return;
	if ((s = slot_get(gz, zh_req_worker(req))) == NULL)
		return; /* every stream slot busy: uncompressed rather than a wait or a malloc */
	if (zh_resp_set_filter(resp, &(zh_body_filter_t){.write = filter_write,
							  .head = filter_head,
							  .finish = filter_finish,
							  .release = filter_release,
							  .flush = filter_flush,
							  .arg = s}) < 0) {
		slot_put(s);
		return;
	}
	/* A declared length counts identity bytes; what leaves is measured again (a failure
	 * here could only be -EALREADY, and a commit hook runs before the commit). Not for a
	 * HEAD: its handler may declare the length and write nothing, and the filter, fed
	 * nothing, would leave a "Content-Length: 0". filter_head removes it there once the
	 * handler's bytes are compressed, so a HEAD that writes its body still gets the GET's
	 * encoded length. */
	v = zh_req_method(req); /* methods are case-sensitive (RFC 9110 §9.1) */
	if (v.len != 4 || memcmp(v.ptr, "HEAD", 4) != 0)
		(void)zh_resp_header_del(resp, "Content-Length");
}

/* ---- setup ------------------------------------------------------------------------------ */

void zh_gzip_options_init(zh_gzip_options_t *o)
{
	o->level = 6;
	o->min_length = 256;
	o->streams_per_worker = 64;
}

zh_gzip_t *zh_gzip_new(const zh_server_t *srv, const zh_gzip_options_t *o, int *err)
{
	zh_gzip_t *gz;
	size_t per_worker;
	int e = 0;
	if (o == NULL || o->level < 1 || o->level > 9 || o->min_length > HOLD_MAX ||
	    o->streams_per_worker == 0) {
		e = -EINVAL;
		goto fail;
	}
	gz = calloc(1, sizeof *gz);
	if (gz == NULL) {
		e = -ENOMEM;
		goto fail;
	}
	gz->level = o->level;
	gz->min_length = o->min_length ? o->min_length : 1;
	gz->nworkers = zh_server_workers(srv);
	gz->workers = calloc(gz->nworkers, sizeof *gz->workers);
	per_worker = (size_t)o->streams_per_worker * sizeof(slot_t);
	gz->map_len = per_worker * gz->nworkers;
	gz->map = mmap(NULL, gz->map_len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (gz->workers == NULL || gz->map == MAP_FAILED) {
		gz->map = NULL;
		zh_gzip_free(gz);
		e = -ENOMEM;
		goto fail;
	}
	for (unsigned i = 0; i < gz->nworkers; i++) {
		gz->workers[i].base = (slot_t *)(void *)((char *)gz->map + i * per_worker);
		gz->workers[i].count = o->streams_per_worker;
	}
	return gz;
fail:
	if (err)
		*err = e;
	return NULL;
}

zh_middleware_t zh_gzip_middleware(zh_gzip_t *gz)
{
	return (zh_middleware_t){.commit = gzip_commit, .arg = gz};
}

void zh_gzip_free(zh_gzip_t *gz)
{
	if (gz == NULL)
		return;
	if (gz->map)
		munmap(gz->map, gz->map_len);
	free(gz->workers);
	free(gz);
}
