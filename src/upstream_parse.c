/* upstream_parse.c — the reverse proxy's wire format towards upstreams: the strict parser of
 * an upstream's response head (RFC 9112 §4, §5, §6.3), the chunked body decoder (§7.1) and
 * the request head writer. Nothing here allocates or keeps state outside the caller's
 * structs, so tests and the fuzz target call it directly.
 *
 * Strictness is the point: a proxy that reads a response's framing differently from the
 * client behind it can be made to deliver an attacker's bytes as the next response (response
 * splitting, RFC 9112 §11.2). Whatever could be read two ways is refused (the caller answers
 * 502 and closes the upstream connection), never guessed.
 */
#include "upstream_int.h"

#include <errno.h>
#include <string.h>

/* ---- the response head -------------------------------------------------------------------- */

static bool vchar_or_ws(unsigned char c) /* field-value / reason-phrase bytes */
{
	return c == '\t' || (c >= 0x20 && c != 0x7f);
}

/* One line of p[0..n) from *pos: its end (the CR of its CRLF), or -1 incomplete, -2 bare LF
 * or a CR not followed by LF. */
static ssize_t line_end(const char *p, size_t n, size_t pos)
{
	const char *lf = memchr(p + pos, '\n', n - pos);
	size_t e;
	if (lf == NULL)
		return -1;
	e = (size_t)(lf - p);
	if (e == pos || p[e - 1] != '\r')
		return -2; /* RFC 9112 §2.2 allows a bare LF; a proxy that accepts it desyncs */
	/* a CR inside the line is refused by the callers: it is neither a token byte nor
	 * allowed in a value or a reason phrase */
	return (ssize_t)(e - 1);
}

static int status_line(const char *p, size_t e, zh__uhead_t *h)
{
	if (e < 12 || memcmp(p, "HTTP/1.", 7) != 0 || (p[7] != '0' && p[7] != '1') ||
	    p[8] != ' ')
		return -1;
	for (int i = 9; i < 12; i++)
		if (p[i] < '0' || p[i] > '9')
			return -1;
	h->minor = p[7] - '0';
	h->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
	if (h->status < 100)
		return -1;
	if (e > 12 && p[12] != ' ')
		return -1;
	return e > 13 && !zh__valid_field_value(p + 13, e - 13) ? -1 : 0;
}

/* name: a string literal (its length is known at compile time) */
#define name_is(p, f, name)                                                                    \
	((f)->nlen == sizeof(name) - 1 && zh__ieq((p) + (f)->noff, name, sizeof(name) - 1))

/* A Content-Length value: digits, or a list of equal digit strings (RFC 9110 §8.6 lets a
 * recipient accept "5, 5"). 0 with *v, or -1. */
static int content_length(const char *p, size_t n, bool *seen, uint64_t *v)
{
	size_t i = 0;
	if (n == 0)
		return -1; /* an empty Content-Length says nothing we could rely on */
	while (i < n) {
		uint64_t x = 0;
		size_t d = 0;
		while (i < n && p[i] >= '0' && p[i] <= '9') {
			if (++d > 18)
				return -1;
			x = x * 10 + (uint64_t)(p[i++] - '0');
		}
		if (d == 0 || (*seen && x != *v))
			return -1;
		*seen = true;
		*v = x;
		while (i < n && (p[i] == ' ' || p[i] == '\t'))
			i++;
		if (i < n && p[i++] != ',')
			return -1;
		while (i < n && (p[i] == ' ' || p[i] == '\t'))
			i++;
	}
	return 0;
}

/* The codings of a Transfer-Encoding field: only "chunked", once, is understood; anything
 * else leaves the length undecidable for us (§6.3 rule 4 would read until close, and a
 * client behind us may decide otherwise). 0, or -1. */
static int transfer_encoding(const char *p, size_t n, int *chunked)
{
	size_t i = 0;
	while (i < n) {
		size_t s = i;
		while (i < n && p[i] != ',' && p[i] != ' ' && p[i] != '\t')
			i++;
		if (i - s != 7 || !zh__ieq(p + s, "chunked", 7) || *chunked)
			return -1;
		*chunked = 1;
		while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == ','))
			i++;
	}
	return *chunked ? 0 : -1;
}

/* Connection options: "close" ends the connection after this response. */
static bool lists_token(const char *p, size_t n, const char *tok)
{
	size_t t = strlen(tok), i = 0;
	while (i < n) {
		size_t s;
		while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == ','))
			i++;
		s = i;
		while (i < n && p[i] != ',' && p[i] != ' ' && p[i] != '\t')
			i++;
		if (i - s == t && zh__ieq(p + s, tok, t))
			return true;
	}
	return false;
}

static int field_line(const char *p, size_t pos, size_t e, zh__uhead_t *h)
{
	size_t c = pos, vs, ve;
	zh__ufield_t *f;
	while (c < e && zh__token_char[(unsigned char)p[c]])
		c++;
	if (c == pos || c == e || p[c] != ':' || c - pos > 0xffff)
		return -1; /* no name, or a space before the colon (RFC 9112 §5.1) */
	vs = c + 1;
	while (vs < e && (p[vs] == ' ' || p[vs] == '\t'))
		vs++;
	ve = e;
	while (ve > vs && (p[ve - 1] == ' ' || p[ve - 1] == '\t'))
		ve--;
	if (!zh__valid_field_value(p + vs, ve - vs)) /* controls but HTAB, DEL (CR, NUL...) */
		return -1;
	if (h->nfields == ZH__UP_FIELDS_MAX)
		return -1;
	f = &h->f[h->nfields++];
	f->noff = (uint32_t)pos;
	f->nlen = (uint16_t)(c - pos);
	f->voff = (uint32_t)vs;
	f->vlen = (uint32_t)(ve - vs);
	return 0;
}

/* Framing and persistence from the fields (RFC 9112 §6.3, §9.3). */
static int framing(const char *p, bool head_request, zh__uhead_t *h)
{
	bool has_len = false, close = h->minor == 0;
	int chunked = 0, has_te = 0;
	uint64_t len = 0;
	for (uint32_t i = 0; i < h->nfields; i++) {
		const zh__ufield_t *f = &h->f[i];
		if (name_is(p, f, "content-length")) {
			if (content_length(p + f->voff, f->vlen, &has_len, &len) < 0)
				return -1;
		} else if (name_is(p, f, "transfer-encoding")) {
			has_te = 1;
			if (transfer_encoding(p + f->voff, f->vlen, &chunked) < 0)
				return -1;
		} else if (name_is(p, f, "connection")) {
			if (lists_token(p + f->voff, f->vlen, "close"))
				close = true;
		}
	}
	if (has_te && (has_len || h->minor == 0))
		return -1; /* both framings, or chunked from HTTP/1.0: ambiguous (§6.1, §6.3) */
	h->keep_alive = !close;
	h->has_length = has_len;
	h->length = len;
	if (head_request || h->status < 200 || h->status == 204 || h->status == 304) {
		h->framing = ZH__UF_NONE;
	} else if (has_te) {
		h->framing = ZH__UF_CHUNKED;
	} else if (has_len) {
		h->framing = len ? ZH__UF_LENGTH : ZH__UF_NONE;
	} else {
		h->framing = ZH__UF_CLOSE;
		h->keep_alive = false;
	}
	return 0;
}

int zh__uresp_parse(const char *buf, size_t len, bool head_request, zh__uhead_t *h)
{
	ssize_t e = line_end(buf, len, 0);
	size_t pos;
	if (e < 0)
		return e == -1 ? 0 : -1;
	h->nfields = 0;
	h->length = 0;
	if (status_line(buf, (size_t)e, h) < 0)
		return -1;
	pos = (size_t)e + 2;
	for (;;) {
		if ((e = line_end(buf, len, pos)) < 0)
			return e == -1 ? 0 : -1;
		if ((size_t)e == pos)
			break; /* the empty line */
		if (buf[pos] == ' ' || buf[pos] == '\t')
			return -1; /* obs-fold (RFC 9112 §5.2): refused */
		if (field_line(buf, pos, (size_t)e, h) < 0)
			return -1;
		pos = (size_t)e + 2;
	}
	if ((size_t)e + 2 > 0x7fffffff || framing(buf, head_request, h) < 0)
		return -1;
	h->head_len = (uint32_t)e + 2;
	return (int)h->head_len;
}

/* ---- the chunked body ---------------------------------------------------------------------- */

enum { C_SIZE0, C_SIZE, C_EXT, C_SIZE_LF, C_DATA, C_DATA_CR, C_DATA_LF, C_TRAILER, C_TNAME,
       C_TLINE, C_TLINE_LF, C_END_LF, C_DONE };

bool zh__uchunk_done(const zh__uchunk_t *d) { return d->st == C_DONE; }

/* One framing byte. 0, or -1 for a malformed stream. */
static int chunk_byte(zh__uchunk_t *d, unsigned char c)
{
	int v;
	switch (d->st) {
	case C_SIZE0:
	case C_SIZE:
		if ((v = zh__hexval(c)) >= 0) {
			if (++d->digits > 15)
				return -1; /* 2^60: no body is that long; no overflow */
			d->left = d->left << 4 | (uint64_t)v;
			d->st = C_SIZE;
			return 0;
		}
		if (d->st == C_SIZE0)
			return -1;
		/* after the digits */
		__attribute__((fallthrough));
	case C_EXT:
		if (c == '\r') {
			d->st = C_SIZE_LF;
			return 0;
		}
		/* chunk-ext (BWS ; name [= value]): skipped, but only visible bytes */
		if (c == '\n' || (c < 0x20 && c != '\t') || c == 0x7f ||
		    (d->st != C_EXT && c != ';' && c != ' ' && c != '\t'))
			return -1;
		d->st = C_EXT;
		return 0;
	case C_SIZE_LF:
		if (c != '\n')
			return -1;
		d->digits = 0;
		d->st = d->left ? C_DATA : C_TRAILER;
		return 0;
	case C_DATA_CR:
		if (c != '\r')
			return -1;
		d->st = C_DATA_LF;
		return 0;
	case C_DATA_LF:
		if (c != '\n')
			return -1;
		d->st = C_SIZE0;
		return 0;
	case C_TRAILER: /* a trailer line starts, or the final CRLF */
		if (c == '\r') {
			d->st = C_END_LF;
			return 0;
		}
		if (!zh__token_char[c])
			return -1;
		d->st = C_TNAME;
		return 0;
	case C_TNAME: /* a trailer field's name, then its colon (RFC 9112 §7.1.2) */
		if (++d->trailer > ZH__UP_TRAILER_MAX)
			return -1;
		if (c == ':')
			d->st = C_TLINE;
		else if (!zh__token_char[c])
			return -1;
		return 0;
	case C_TLINE:
		if (++d->trailer > ZH__UP_TRAILER_MAX)
			return -1;
		if (c == '\r')
			d->st = C_TLINE_LF;
		else if (!vchar_or_ws(c))
			return -1;
		return 0;
	case C_TLINE_LF:
		if (c != '\n')
			return -1;
		d->st = C_TRAILER;
		return 0;
	case C_END_LF:
		if (c != '\n')
			return -1;
		d->st = C_DONE;
		return 0;
	}
	return -1;
}

ssize_t zh__uchunk_feed(zh__uchunk_t *d, const char *p, size_t n, zh__urun_t *runs,
			unsigned *nruns, unsigned cap)
{
	size_t i = 0;
	while (i < n && d->st != C_DONE) {
		if (d->st == C_DATA) {
			size_t take = n - i < d->left ? n - i : (size_t)d->left;
			if (*nruns == cap)
				break;
			runs[(*nruns)++] = (zh__urun_t){(uint32_t)i, (uint32_t)take};
			i += take;
			d->left -= take;
			if (d->left == 0)
				d->st = C_DATA_CR;
			continue;
		}
		if (chunk_byte(d, (unsigned char)p[i]) < 0)
			return -1;
		i++;
	}
	return (ssize_t)i;
}

/* ---- the request head -------------------------------------------------------------------- */

typedef struct lit {
	const char *s;
	size_t len;
} lit_t;
#define LIT(x) {x, sizeof(x) - 1}

/* The index of name in l[0..n), or -1. */
static int listed_at(const lit_t *l, size_t n, const char *name, size_t len)
{
	for (size_t i = 0; i < n; i++) /* the literals are lower case: first bytes first */
		if (l[i].len == len && (name[0] | 0x20) == l[i].s[0] && zh__ieq(name, l[i].s, len))
			return (int)i;
	return -1;
}

static bool listed(const lit_t *l, size_t n, const char *name, size_t len)
{
	return listed_at(l, n, name, len) >= 0;
}

bool zh__uhop_by_hop(const char *n, size_t len)
{
	static const lit_t hop[] = {LIT("connection"), LIT("keep-alive"), LIT("te"),
				    LIT("trailer"), LIT("transfer-encoding"), LIT("upgrade")};
	return listed(hop, sizeof hop / sizeof hop[0], n, len) ||
	       (len >= 6 && (n[0] | 0x20) == 'p' && zh__ieq(n, "proxy-", 6)); /* Proxy-* */
}

typedef struct out {
	char *p;
	size_t len, cap;
	bool full;
} out_t;

static void put(out_t *o, const char *s, size_t n)
{
	if (o->full || o->cap - o->len < n) {
		o->full = true;
		return;
	}
	memcpy(o->p + o->len, s, n);
	o->len += n;
}

static void puts_(out_t *o, const char *s) { put(o, s, strlen(s)); }
/* a string literal: no strlen */
#define PUTL(o, lit) put(o, lit, sizeof(lit) - 1)

static void put_u64(out_t *o, uint64_t v)
{
	char b[24];
	size_t i = sizeof b;
	do
		b[--i] = (char)('0' + v % 10);
	while ((v /= 10) != 0);
	put(o, b + i, sizeof b - i);
}

enum { CONN_NAMES_MAX = 32 };

/* Is the field one the Connection fields name (they are hop-by-hop too, RFC 9110 §7.6.1)? */
static bool named(const zh_slice_t *names, unsigned n, zh_slice_t name)
{
	for (unsigned i = 0; i < n; i++)
		if (names[i].len == name.len && zh__ieq(names[i].ptr, name.ptr, name.len))
			return true;
	return false;
}

static unsigned connection_names(const zh_request_t *req, zh_slice_t *names)
{
	unsigned n = 0;
	zh_slice_t name, v;
	for (size_t i = 0; zh_req_header_at(req, i, &name, &v) == 0; i++) {
		size_t j = 0;
		if (name.len != 10 || !zh__ieq(name.ptr, "connection", 10))
			continue;
		while (j < v.len && n < CONN_NAMES_MAX) {
			size_t s;
			while (j < v.len && (v.ptr[j] == ' ' || v.ptr[j] == '\t' || v.ptr[j] == ','))
				j++;
			s = j;
			while (j < v.len && v.ptr[j] != ',' && v.ptr[j] != ' ' && v.ptr[j] != '\t')
				j++;
			if (j > s)
				names[n++] = (zh_slice_t){v.ptr + s, j - s};
		}
	}
	return n;
}

/* The fields replaced here rather than passed on: as a bit (1 << index in own[]), or 0.
 * The client's own X-Forwarded-For, Forwarded and Via are appended to (OWN_APPENDED). */
enum { OWN_XFF = 1u << 5, OWN_FORWARDED = 1u << 6, OWN_VIA = 1u << 7 };
static unsigned rewritten(zh_slice_t n)
{
	static const lit_t own[] = {LIT("host"), LIT("content-length"), LIT("expect"),
				    LIT("x-forwarded-proto"), LIT("x-forwarded-host"),
				    LIT("x-forwarded-for"), LIT("forwarded"), LIT("via")};
	int i = listed_at(own, sizeof own / sizeof own[0], n.ptr, n.len);
	return i < 0 ? 0 : 1u << i;
}

/* Name: the client's values of that field (when it sent any: present) joined by ", ", then
 * ours (one line: some recipients read only one line of X-Forwarded-For). */
static void put_appended(out_t *o, const zh_request_t *req, const char *field, bool present,
			 const char *lead, const char *ours, const char *tail)
{
	zh_slice_t n, v;
	size_t fl = strlen(field);
	put(o, field, fl);
	puts_(o, ": ");
	for (size_t i = 0; present && zh_req_header_at(req, i, &n, &v) == 0; i++)
		if (n.len == fl && zh__ieq(n.ptr, field, fl) && v.len) {
			put(o, v.ptr, v.len);
			puts_(o, ", ");
		}
	puts_(o, lead);
	puts_(o, ours);
	puts_(o, tail);
	puts_(o, "\r\n");
}

/* RFC 7239 §6: a host value is quoted; only bytes that need no escaping are passed. */
static bool plain_host(zh_slice_t h)
{
	for (size_t i = 0; i < h.len; i++) {
		unsigned char c = (unsigned char)h.ptr[i];
		if (!(zh__token_char[c] || c == ':' || c == '[' || c == ']'))
			return false;
	}
	return h.len > 0;
}

static void put_target(out_t *o, const zh_request_t *req)
{
	zh_slice_t t = zh_req_target(req), q;
	if (t.len && (t.ptr[0] == '/' || (t.len == 1 && t.ptr[0] == '*'))) {
		put(o, t.ptr, t.len);
		return;
	}
	/* absolute-form (RFC 9112 §3.2.2): the upstream gets origin-form */
	t = zh_req_path(req);
	q = zh_req_query(req);
	if (t.len == 0)
		puts_(o, "/");
	put(o, t.ptr, t.len);
	if (q.len) {
		puts_(o, "?");
		put(o, q.ptr, q.len);
	}
}

ssize_t zh__ureq_write(const zh_request_t *req, const zh__ureq_extra_t *x, char *buf,
		       size_t cap)
{
	out_t o = {buf, 0, cap, false};
	zh_slice_t names[CONN_NAMES_MAX], n, v, m = zh_req_method(req),
					    chost = zh_req_host(req);
	unsigned nn = connection_names(req, names);
	bool tls = zh_req_tls_version(req) != NULL; /* the client's scheme */
	unsigned own = 0; /* rewritten() bits of the fields the client sent */
	put(&o, m.ptr, m.len);
	PUTL(&o, " ");
	put_target(&o, req);
	PUTL(&o, " HTTP/1.1\r\nHost: ");
	put(&o, x->host, x->host_len);
	PUTL(&o, "\r\n");
	for (size_t i = 0; zh_req_header_at(req, i, &n, &v) == 0; i++) {
		unsigned r = rewritten(n);
		own |= r;
		if (r || zh__uhop_by_hop(n.ptr, n.len) || named(names, nn, n))
			continue;
		put(&o, n.ptr, n.len);
		PUTL(&o, ": ");
		put(&o, v.ptr, v.len);
		PUTL(&o, "\r\n");
	}
	put_appended(&o, req, "X-Forwarded-For", own & OWN_XFF, "", x->client, "");
	put_appended(&o, req, "Forwarded", own & OWN_FORWARDED,
		     x->client_v6 ? "for=\"[" : "for=", x->client,
		     tls ? (x->client_v6 ? "]\";proto=https" : ";proto=https")
			 : (x->client_v6 ? "]\";proto=http" : ";proto=http"));
	if (plain_host(chost) && !o.full) {
		o.len -= 2; /* continue the element just written: ;host="..." */
		PUTL(&o, ";host=\"");
		put(&o, chost.ptr, chost.len);
		PUTL(&o, "\"\r\n");
	}
	if (tls)
		PUTL(&o, "X-Forwarded-Proto: https\r\n");
	else
		PUTL(&o, "X-Forwarded-Proto: http\r\n");
	if (chost.len) {
		PUTL(&o, "X-Forwarded-Host: ");
		put(&o, chost.ptr, chost.len);
		PUTL(&o, "\r\n");
	}
	put_appended(&o, req, "Via", own & OWN_VIA, "", "1.1 zerohttp", "");
	if (x->upgrade.len) { /* RFC 9110 §7.8: the proxy asks the upstream for the same */
		PUTL(&o, "Connection: upgrade\r\nUpgrade: ");
		put(&o, x->upgrade.ptr, x->upgrade.len);
		PUTL(&o, "\r\n");
	}
	if (x->chunked) {
		PUTL(&o, "Transfer-Encoding: chunked\r\n");
	} else if (x->has_body) {
		PUTL(&o, "Content-Length: ");
		put_u64(&o, x->body_len);
		PUTL(&o, "\r\n");
	}
	PUTL(&o, "\r\n");
	return o.full ? -ENOSPC : (ssize_t)o.len;
}
