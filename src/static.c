/* static.c — files from a document root, by sendfile, through a per-worker open-file cache.
 * This file handles the request (paths, conditionals, ranges, multipart); the cache, the
 * content types, opening beneath the root and setup are in static_cache.c.
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
#include "static_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <time.h>

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

enum { LOCATION_MAX = 3072 }; /* leaves 1 KiB of the 4 KiB header area for the others */

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
	/* The header area holds 4 KiB of fields in all: a longer Location would fail the set,
	 * and a failed set makes the response a 500 (the sticky rule). Such a redirect target
	 * is refused as too long before trying. */
	if (n > LOCATION_MAX || set_header(resp, "Location", loc, n) < 0) {
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
			fd = zh__static_open_beneath(st, path, O_PATH);
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
		v = zh__static_lookup(st, c, now, path, plen + 3, &status, &isdir, NULL);
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
	if ((r = zh_send_file(resp, e->fd, first, len, zh__static_release_ref, e)) < 0)
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
	e = zh__static_lookup(st, c, now, path, (size_t)plen, &status, &isdir, &scratch);
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
		e = zh__static_lookup(st, c, now, path, (size_t)plen, &status, &isdir, &scratch);
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
