/* fuzz_parse.c — libFuzzer target for the request head parser, zh__parse_head (parse.c).
 *
 * Input: byte 0 picks the limits (the defaults, or tiny ones that make 414/431 reachable),
 * bytes 1-8 seed the split into pieces, the rest is what a client sent (possibly several
 * pipelined requests).
 *
 * Checked, beyond "no crash, no sanitizer report":
 *  - split invariance: the bytes fed in pieces, as they arrive from a socket (conn.c's calling
 *    convention: same parser state, the buffer relocated between calls, the head zeroed
 *    before a fresh parse, requests consumed one after another), give the same sequence of
 *    results and the same heads and fields as the bytes fed whole;
 *  - the SSE2 build and the scalar build (parse_scalar.c, -DZH_NO_SIMD) agree on everything;
 *  - a successful head does not depend on the bytes after it;
 *  - every span lies inside the head; the head ends with CRLF CRLF;
 *  - an independent line splitter written here finds the same request line parts, field
 *    names and values (offsets too); names are tokens, values have no CR, LF, NUL or other
 *    control byte except HTAB and no leading or trailing whitespace;
 *  - framing: never Content-Length and chunked together, never chunked in HTTP/1.0, every
 *    Content-Length field equals the parsed value, any Transfer-Encoding field means chunked
 *    exactly once; HTTP/1.1 has exactly one Host; flags agree with the fields.
 * The one divergence allowed: a refusal may be 414/431 in pieces where it is 400 whole (or
 * the reverse), when a size limit is passed before the bad byte arrives.
 */
#include "internal.h"

#include "fuzz_common.h"

int zh__parse_head_scalar(zh__parser_t *ps, const char *buf, size_t len, zh__head_t *h,
			  zh__field_t *fields, const zh__limits_t *lim);

typedef int (*parse_fn)(zh__parser_t *, const char *, size_t, zh__head_t *, zh__field_t *,
			const zh__limits_t *);

enum { MAX_REQS = 8 };

typedef struct {
	int n;			     /* results recorded */
	int r[MAX_REQS];	     /* > 0 head length, 0 incomplete, < 0 -status */
	size_t start[MAX_REQS];	     /* offset of each request in the input */
	zh__head_t h[MAX_REQS];
	zh__field_t *f[MAX_REQS];    /* max_headers entries each */
} run_t;

static zh__limits_t lim;

static void run_free(run_t *run)
{
	for (int i = 0; i < MAX_REQS; i++)
		free(run->f[i]);
}

static void run_init(run_t *run)
{
	memset(run, 0, sizeof *run);
	for (int i = 0; i < MAX_REQS; i++) {
		run->f[i] = calloc(lim.max_headers, sizeof(zh__field_t));
		if (run->f[i] == NULL)
			abort();
	}
}

/* Everything at once, request after request. */
static void run_whole(parse_fn fn, const char *data, size_t len, run_t *run)
{
	size_t start = 0;
	while (run->n < MAX_REQS && start < len) {
		zh__parser_t ps = {0};
		int i = run->n++;
		char *buf = fz_dup(data + start, len - start);
		memset(&run->h[i], 0, sizeof run->h[i]);
		run->start[i] = start;
		run->r[i] = fn(&ps, buf, len - start, &run->h[i], run->f[i], &lim);
		free(buf);
		if (run->r[i] <= 0)
			break;
		start += (size_t)run->r[i];
	}
}

/* As conn.c's process() sees the bytes: they arrive in pieces; after each piece the parser
 * is called again with the same state on the whole unconsumed tail, which lives in a new
 * buffer each time (make_room may move it; spans are offsets, so that must not matter). */
static void run_pieces(parse_fn fn, const char *data, size_t len, fz_split_t *sp, run_t *run)
{
	size_t have = 0, rstart = 0;
	zh__parser_t ps = {0};
	while (have < len && run->n < MAX_REQS) {
		size_t piece = fz_next_piece(sp);
		have += piece < len - have ? piece : len - have;
		while (rstart < have && run->n < MAX_REQS) {
			int i = run->n, r;
			char *buf;
			if (ps.pos == 0 && ps.phase == 0)
				memset(&run->h[i], 0, sizeof run->h[i]);
			buf = fz_dup(data + rstart, have - rstart);
			r = fn(&ps, buf, have - rstart, &run->h[i], run->f[i], &lim);
			free(buf);
			CHECK(ps.pos <= have - rstart, "parser position %u past the %zu bytes it has",
			      ps.pos, have - rstart);
			if (r == 0) {
				if (have == len) { /* the end of the input: this is the last word */
					run->r[i] = 0;
					run->start[i] = rstart;
					run->n++;
				}
				break;
			}
			run->r[i] = r;
			run->start[i] = rstart;
			run->n++;
			if (r < 0)
				return;
			rstart += (size_t)r;
			memset(&ps, 0, sizeof ps);
		}
	}
}

static bool span_eq(zh__span_t a, zh__span_t b)
{
	return a.off == b.off && a.len == b.len;
}

static bool head_eq(const zh__head_t *a, const zh__head_t *b)
{
	return span_eq(a->method, b->method) && span_eq(a->target, b->target) &&
	       span_eq(a->path, b->path) && span_eq(a->query, b->query) &&
	       span_eq(a->host, b->host) && a->method_bit == b->method_bit &&
	       a->minor == b->minor && a->flags == b->flags && a->nfields == b->nfields &&
	       a->content_length == b->content_length && a->head_len == b->head_len;
}

static void compare_runs(const run_t *a, const run_t *b, const char *what)
{
	CHECK(a->n == b->n, "%s: %d results vs %d", what, a->n, b->n);
	for (int i = 0; i < a->n; i++) {
		/* A size limit can be hit while a line is still incomplete, before the byte that
		 * makes the line bad has arrived: then the refusal is 414/431 instead of 400.
		 * Either way the request is refused and the connection closed. */
		if (a->r[i] != b->r[i] && a->r[i] < 0 && b->r[i] < 0 &&
		    (a->r[i] == -414 || a->r[i] == -431 || b->r[i] == -414 || b->r[i] == -431))
			continue;
		CHECK(a->r[i] == b->r[i], "%s: request %d: %d vs %d", what, i, a->r[i], b->r[i]);
		CHECK(a->start[i] == b->start[i], "%s: request %d starts at %zu vs %zu", what, i,
		      a->start[i], b->start[i]);
		if (a->r[i] <= 0)
			continue;
		CHECK(head_eq(&a->h[i], &b->h[i]), "%s: request %d: heads differ", what, i);
		for (uint32_t k = 0; k < a->h[i].nfields; k++)
			CHECK(span_eq(a->f[i][k].name, b->f[i][k].name) &&
				      span_eq(a->f[i][k].value, b->f[i][k].value),
			      "%s: request %d field %u differs", what, i, k);
	}
}

/* ---- an independent reading of a head the parser accepted ---------------------------------- */

static bool ieq(const char *a, size_t alen, const char *lit)
{
	size_t n = strlen(lit);
	if (alen != n)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char x = (unsigned char)a[i], y = (unsigned char)lit[i];
		if (x >= 'A' && x <= 'Z')
			x = (unsigned char)(x + 32);
		if (x != y)
			return false;
	}
	return true;
}

static bool is_tchar(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool is_hex(unsigned char c)
{
	return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
}

static void check_in(zh__span_t s, uint32_t head_len, const char *what)
{
	CHECK((uint64_t)s.off + s.len <= head_len, "%s span [%u,+%u) outside the head (%u)",
	      what, s.off, s.len, head_len);
}

/* Calls fn on each trimmed, non-empty element of a comma-separated list. */
static void list_elements(const char *v, size_t len, void (*fn)(const char *, size_t, void *),
			  void *arg)
{
	size_t i = 0;
	while (i <= len) {
		size_t s = i, e;
		while (i < len && v[i] != ',')
			i++;
		e = i++;
		while (s < e && (v[s] == ' ' || v[s] == '\t'))
			s++;
		while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
			e--;
		if (e > s)
			fn(v + s, e - s, arg);
	}
}

typedef struct {
	int chunked, other, close, keepalive;
} te_t;

static void te_element(const char *p, size_t n, void *arg)
{
	te_t *t = arg;
	if (ieq(p, n, "chunked"))
		t->chunked++;
	else
		t->other++;
}

static void conn_element(const char *p, size_t n, void *arg)
{
	te_t *t = arg;
	if (ieq(p, n, "close"))
		t->close = 1;
	else if (ieq(p, n, "keep-alive"))
		t->keepalive = 1;
}

static void check_head(const char *buf, const zh__head_t *h, const zh__field_t *f, int r)
{
	uint32_t hl = (uint32_t)r, pos = 0, nf = 0;
	const char *line, *sp1, *sp2, *eol;
	te_t te = {0}, conn = {0};
	int hosts = 0, cls = 0;
	uint32_t flags = 0;

	CHECK(h->head_len == hl, "head_len %u, returned %d", h->head_len, r);
	CHECK(hl >= 4 && memcmp(buf + hl - 4, "\r\n\r\n", 4) == 0, "head does not end CRLF CRLF");
	CHECK(h->nfields <= lim.max_headers, "%u fields, limit %u", h->nfields, lim.max_headers);
	CHECK(h->minor <= 1, "minor %u", h->minor);
	check_in(h->method, hl, "method");
	check_in(h->target, hl, "target");
	check_in(h->path, hl, "path");
	check_in(h->query, hl, "query");
	check_in(h->host, hl, "host");

	/* request line: up to 4 empty lines before it, then "method SP target SP HTTP/1.x" */
	while (pos < 8 && buf[pos] == '\r')
		pos += 2;
	line = buf + pos;
	eol = memchr(line, '\r', hl - pos);
	CHECK(eol && eol[1] == '\n', "request line without CRLF");
	sp1 = memchr(line, ' ', (size_t)(eol - line));
	CHECK(sp1 != NULL, "request line without a space");
	sp2 = eol - 9;
	/* RFC 9112 2.3: HTTP/1.2 to HTTP/1.9 are processed as 1.1 */
	CHECK(sp2 > sp1 && *sp2 == ' ' && memcmp(sp2 + 1, "HTTP/1.", 7) == 0 &&
		      (h->minor == 0 ? sp2[8] == '0' : sp2[8] >= '1' && sp2[8] <= '9'),
	      "version is not HTTP/1.%u", h->minor);
	CHECK(h->method.off == pos && h->method.len == (uint32_t)(sp1 - line), "method span");
	for (const char *p = line; p < sp1; p++)
		CHECK(is_tchar((unsigned char)*p), "method byte 0x%02x", (unsigned char)*p);
	{
		static const char *const names[8] = {"GET",     "HEAD",	   "POST",  "PUT",
						     "DELETE",  "OPTIONS", "PATCH", "TRACE"};
		unsigned bit = 0;
		for (int i = 0; i < 8; i++)
			if ((size_t)(sp1 - line) == strlen(names[i]) &&
			    memcmp(line, names[i], strlen(names[i])) == 0)
				bit = 1u << i;
		CHECK(bit && h->method_bit == bit, "method bit %u, expected %u", h->method_bit,
		      bit);
	}
	CHECK(h->target.off == (uint32_t)(sp1 + 1 - buf) &&
		      h->target.len == (uint32_t)(sp2 - sp1 - 1),
	      "target span");
	{
		const char *t = buf + h->target.off, *te_ = t + h->target.len, *q;
		for (const char *p = t; p < te_; p++) {
			unsigned char c = (unsigned char)*p;
			CHECK(c > 0x20 && c < 0x7f && c != '#' && c != '"' && c != '<' && c != '>' &&
				      c != '\\' && c != '^' && c != '`' && c != '{' && c != '|' &&
				      c != '}',
			      "target byte 0x%02x", c);
			if (c == '%')
				CHECK(p + 2 < te_ && is_hex((unsigned char)p[1]) &&
					      is_hex((unsigned char)p[2]),
				      "bad percent triplet in the target");
		}
		q = memchr(t, '?', h->target.len);
		if (h->target.len == 1 && t[0] == '*') {
			CHECK(h->flags & ZH__H_ASTERISK, "'*' without the flag");
			CHECK(h->method_bit == ZH_OPTIONS, "'*' for a method other than OPTIONS");
			flags |= ZH__H_ASTERISK;
		} else if (t[0] == '/') {
			CHECK(h->path.off == h->target.off, "origin-form path start");
		} else {
			size_t s = ieq(t, 7, "http://") ? 7 : ieq(t, 8, "https://") ? 8 : 0;
			const char *a = t + s, *ae = a;
			CHECK(s != 0, "accepted a target that is no known form");
			while (ae < te_ && *ae != '/' && *ae != '?')
				ae++;
			CHECK(ae > a && !memchr(a, '@', (size_t)(ae - a)), "authority");
			CHECK(h->host.off == (uint32_t)(a - buf) && h->host.len == (uint32_t)(ae - a),
			      "absolute-form host span");
			CHECK(h->path.off == (uint32_t)(ae - buf), "absolute-form path start");
			flags |= ZH__H_ABSOLUTE;
		}
		if (!(h->flags & ZH__H_ASTERISK)) {
			const char *pe = q ? q : te_;
			CHECK(h->path.off + h->path.len == (uint32_t)(pe - buf), "path end");
			if (q)
				CHECK(h->query.off == (uint32_t)(q + 1 - buf) &&
					      h->query.off + h->query.len == (uint32_t)(te_ - buf),
				      "query span");
			else
				CHECK(h->query.len == 0, "query without '?'");
		}
	}

	/* header fields: one per line up to the empty line */
	pos = (uint32_t)(eol + 2 - buf);
	while (pos < hl - 2) {
		const char *l = buf + pos, *colon, *v, *ve;
		eol = memchr(l, '\r', hl - pos);
		CHECK(eol && eol[1] == '\n', "field line without CRLF");
		colon = memchr(l, ':', (size_t)(eol - l));
		CHECK(colon && colon > l, "field line without a name");
		CHECK(nf < h->nfields, "more field lines than fields");
		for (const char *p = l; p < colon; p++)
			CHECK(is_tchar((unsigned char)*p), "name byte 0x%02x", (unsigned char)*p);
		v = colon + 1;
		ve = eol;
		while (v < ve && (*v == ' ' || *v == '\t'))
			v++;
		while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
			ve--;
		for (const char *p = v; p < ve; p++) {
			unsigned char c = (unsigned char)*p;
			CHECK(c == '\t' || (c >= 0x20 && c != 0x7f), "value byte 0x%02x", c);
		}
		CHECK(f[nf].name.off == pos && f[nf].name.len == (uint32_t)(colon - l),
		      "field %u name span", nf);
		CHECK(f[nf].value.off == (uint32_t)(v - buf) &&
			      f[nf].value.len == (uint32_t)(ve - v),
		      "field %u value span", nf);
		if (ieq(l, (size_t)(colon - l), "content-length")) {
			uint64_t x = 0;
			CHECK(ve > v, "empty Content-Length accepted");
			for (const char *p = v; p < ve; p++) {
				CHECK(*p >= '0' && *p <= '9', "Content-Length byte '%c'", *p);
				CHECK(!__builtin_mul_overflow(x, 10, &x) &&
					      !__builtin_add_overflow(x, (uint64_t)(*p - '0'), &x),
				      "Content-Length overflow accepted");
			}
			CHECK(x == h->content_length, "Content-Length %llu vs %llu",
			      (unsigned long long)x, (unsigned long long)h->content_length);
			cls++;
			flags |= ZH__H_CL;
		} else if (ieq(l, (size_t)(colon - l), "transfer-encoding")) {
			list_elements(v, (size_t)(ve - v), te_element, &te);
		} else if (ieq(l, (size_t)(colon - l), "host")) {
			hosts++;
			flags |= ZH__H_HOST;
			if (!(h->flags & ZH__H_ABSOLUTE))
				CHECK(h->host.off == (uint32_t)(v - buf) &&
					      h->host.len == (uint32_t)(ve - v),
				      "Host span");
		} else if (ieq(l, (size_t)(colon - l), "connection")) {
			list_elements(v, (size_t)(ve - v), conn_element, &conn);
		} else if (ieq(l, (size_t)(colon - l), "expect")) {
			CHECK(ieq(v, (size_t)(ve - v), "100-continue"), "Expect other than 100-continue");
			if (h->minor == 1)
				flags |= ZH__H_EXPECT_CONTINUE;
		}
		nf++;
		pos = (uint32_t)(eol + 2 - buf);
	}
	CHECK(nf == h->nfields, "%u field lines, %u fields", nf, h->nfields);

	/* framing: the request smuggling rules (RFC 9112 §6.1, §6.3) */
	CHECK(te.chunked <= 1 && te.other == 0, "Transfer-Encoding other than one chunked");
	if (te.chunked) {
		flags |= ZH__H_CHUNKED;
		CHECK(cls == 0, "chunked and Content-Length together");
		CHECK(h->minor == 1, "chunked in HTTP/1.0");
	}
	CHECK(!((h->flags & ZH__H_CHUNKED) && (h->flags & ZH__H_CL)), "CL and chunked flags");
	CHECK(hosts <= 1, "%d Host fields", hosts);
	CHECK(h->minor == 0 || hosts == 1, "HTTP/1.1 without Host");
	if (conn.close)
		flags |= ZH__H_CLOSE;
	if (conn.keepalive)
		flags |= ZH__H_KEEPALIVE;
	CHECK(h->flags == flags, "flags 0x%x, fields say 0x%x", h->flags, flags);
	if (!(h->flags & ZH__H_CL))
		CHECK(h->content_length == 0, "content_length without Content-Length");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint32_t line_lim[4] = {16, 24, 40, 64};
	static const uint32_t hdr_lim[4] = {0, 12, 40, 200};
	static const uint32_t nhdr_lim[4] = {1, 2, 3, 6};
	fz_in_t in = {data, size};
	uint8_t mode = fz_u8(&in);
	fz_split_t sp = {fz_u64(&in)};
	const char *req = (const char *)in.p;
	size_t len = in.n;
	run_t whole, scalar, pieces;

	if (mode & 1) {
		lim = (zh__limits_t){line_lim[mode >> 1 & 3], hdr_lim[mode >> 3 & 3],
				     nhdr_lim[mode >> 5 & 3]};
	} else {
		lim = (zh__limits_t){8192, 32768, 100}; /* zh_config_default's */
	}
	run_init(&whole);
	run_init(&scalar);
	run_init(&pieces);

	run_whole(zh__parse_head, req, len, &whole);
	run_whole(zh__parse_head_scalar, req, len, &scalar);
	compare_runs(&whole, &scalar, "SSE2 vs scalar");

	for (int i = 0; i < whole.n; i++) {
		int r = whole.r[i];
		const char *buf = req + whole.start[i];
		CHECK(r == 0 || r > 0 || r == -400 || r == -414 || r == -417 || r == -431 ||
			      r == -501 || r == -505,
		      "unexpected result %d", r);
		if (r > 0) {
			zh__parser_t ps = {0};
			zh__head_t h2 = {0};
			char *exact = fz_dup(buf, (size_t)r);
			CHECK((size_t)r <= len - whole.start[i], "head longer than the input");
			check_head(buf, &whole.h[i], whole.f[i], r);
			/* the head alone, without what follows it, parses the same */
			CHECK(zh__parse_head(&ps, exact, (size_t)r, &h2, pieces.f[0], &lim) == r &&
				      head_eq(&h2, &whole.h[i]),
			      "request %d: result depends on the bytes after the head", i);
			free(exact);
		}
	}

	run_pieces(zh__parse_head, req, len, &sp, &pieces);
	compare_runs(&whole, &pieces, "whole vs pieces");

	run_free(&whole);
	run_free(&scalar);
	run_free(&pieces);
	return 0;
}
