/* parse.c — strict, zero-copy HTTP/1.1 request head parser and chunked decoder
 * (RFC 9110 / RFC 9112).
 *
 * The head parser is resumable by line: bytes before ps->pos are complete lines already
 * parsed; a line cut by the end of the buffer is scanned again when more bytes come, so each
 * byte of a complete line is examined once. Field values, the bulk of a head, are scanned 16
 * bytes at a time with SSE2 (baseline on x86-64) for the first control character; the
 * scalar loop below it gives identical results elsewhere (and is what ZH_NO_SIMD builds
 * test). Results are spans (offsets), never copies.
 */
#include "internal.h"

#include <string.h>
#if defined(__SSE2__) && !defined(ZH_NO_SIMD)
#include <emmintrin.h>
#define ZH__SSE2 1
#endif

/* tchar (RFC 9110 §5.6.2): "!#$%&'*+-.^_`|~" DIGIT ALPHA */
const uint8_t zh__token_char[256] = {
	['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1,
	['+'] = 1, ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1,
	['~'] = 1,
	['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1,
	['8'] = 1, ['9'] = 1,
	['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1,
	['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1,
	['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1,
	['Y'] = 1, ['Z'] = 1,
	['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1,
	['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1,
	['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1,
	['y'] = 1, ['z'] = 1,
};

/* Bytes allowed in a request-target (RFC 3986), classified so that one scan both validates
 * the target and finds what parse_target needs. Anything else ('#', controls, non-ASCII) is
 * refused. */
enum {
	T_BAD,
	T_HOST,	   /* unreserved / sub-delims: valid in a reg-name and in a path */
	T_PATH,	   /* "/" "?" "@" ":": valid in a path, not in a reg-name */
	T_PCT,	   /* "%": must start a pct-encoded triplet */
	T_BRACKET, /* "[" "]": only around an IP-literal host in absolute-form */
};
static const uint8_t target_char[256] = {
	['!'] = T_HOST, ['$'] = T_HOST, ['&'] = T_HOST, ['\''] = T_HOST, ['('] = T_HOST,
	[')'] = T_HOST, ['*'] = T_HOST, ['+'] = T_HOST, [','] = T_HOST, ['-'] = T_HOST,
	['.'] = T_HOST, [';'] = T_HOST, ['='] = T_HOST, ['_'] = T_HOST, ['~'] = T_HOST,
	['/'] = T_PATH, ['?'] = T_PATH, ['@'] = T_PATH, [':'] = T_PATH, ['%'] = T_PCT,
	['['] = T_BRACKET, [']'] = T_BRACKET,
	['0'] = T_HOST, ['1'] = T_HOST, ['2'] = T_HOST, ['3'] = T_HOST, ['4'] = T_HOST,
	['5'] = T_HOST, ['6'] = T_HOST, ['7'] = T_HOST, ['8'] = T_HOST, ['9'] = T_HOST,
	['A'] = T_HOST, ['B'] = T_HOST, ['C'] = T_HOST, ['D'] = T_HOST, ['E'] = T_HOST,
	['F'] = T_HOST, ['G'] = T_HOST, ['H'] = T_HOST, ['I'] = T_HOST, ['J'] = T_HOST,
	['K'] = T_HOST, ['L'] = T_HOST, ['M'] = T_HOST, ['N'] = T_HOST, ['O'] = T_HOST,
	['P'] = T_HOST, ['Q'] = T_HOST, ['R'] = T_HOST, ['S'] = T_HOST, ['T'] = T_HOST,
	['U'] = T_HOST, ['V'] = T_HOST, ['W'] = T_HOST, ['X'] = T_HOST, ['Y'] = T_HOST,
	['Z'] = T_HOST,
	['a'] = T_HOST, ['b'] = T_HOST, ['c'] = T_HOST, ['d'] = T_HOST, ['e'] = T_HOST,
	['f'] = T_HOST, ['g'] = T_HOST, ['h'] = T_HOST, ['i'] = T_HOST, ['j'] = T_HOST,
	['k'] = T_HOST, ['l'] = T_HOST, ['m'] = T_HOST, ['n'] = T_HOST, ['o'] = T_HOST,
	['p'] = T_HOST, ['q'] = T_HOST, ['r'] = T_HOST, ['s'] = T_HOST, ['t'] = T_HOST,
	['u'] = T_HOST, ['v'] = T_HOST, ['w'] = T_HOST, ['x'] = T_HOST, ['y'] = T_HOST,
	['z'] = T_HOST,
};

bool zh__ieq(const char *a, const char *b, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
		if (x != y && ((x | 0x20) != (y | 0x20) || (unsigned)((x | 0x20) - 'a') > 25))
			return false;
	}
	return true;
}

bool zh__valid_token(const char *p, size_t len)
{
	uint8_t all = len != 0;
	for (size_t i = 0; i < len; i++)
		all &= zh__token_char[(unsigned char)p[i]]; /* no early exit: the common case passes */
	return all;
}

/* First byte in [p, end) that is a control character (0x00-0x1F, 0x7F), or end. */
static inline const char *find_ctl(const char *p, const char *end)
{
#ifdef ZH__SSE2
	const __m128i minus1 = _mm_set1_epi8(-1), space = _mm_set1_epi8(0x20),
		      del = _mm_set1_epi8(0x7f);
	while (end - p >= 16) {
		__m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
		/* signed compares: 0x00..0x1F are the bytes > -1 and < 0x20 */
		__m128i ctl = _mm_and_si128(_mm_cmpgt_epi8(v, minus1), _mm_cmplt_epi8(v, space));
		int m = _mm_movemask_epi8(_mm_or_si128(ctl, _mm_cmpeq_epi8(v, del)));
		if (m)
			return p + __builtin_ctz((unsigned)m);
		p += 16;
	}
#endif
	/* 8 bytes at a time (short values, and builds without SSE2): a word has a control byte
	 * if some byte is < 0x20 (the classic "has less than" bit trick, exact for bytes < 0x80)
	 * or equals 0x7f; the byte loop below then finds which. */
	while (end - p >= 8) {
		uint64_t x;
		memcpy(&x, p, 8);
		uint64_t lt = (x - 0x2020202020202020ull) & ~x & 0x8080808080808080ull;
		uint64_t d = x ^ 0x7f7f7f7f7f7f7f7full;
		uint64_t is_del = (d - 0x0101010101010101ull) & ~d & 0x8080808080808080ull;
		if (lt | is_del)
			break;
		p += 8;
	}
	for (; p < end; p++) {
		unsigned char c = (unsigned char)*p;
		if (c < 0x20 || c == 0x7f)
			return p;
	}
	return end;
}

bool zh__valid_field_value(const char *p, size_t len)
{
	const char *end = p + len;
	for (;;) {
		p = find_ctl(p, end);
		if (p == end)
			return true;
		if (*p != '\t')
			return false;
		p++;
	}
}

static unsigned method_bit(const char *m, size_t len)
{
	switch (len) {
	case 3:
		if (memcmp(m, "GET", 3) == 0)
			return ZH_GET;
		if (memcmp(m, "PUT", 3) == 0)
			return ZH_PUT;
		break;
	case 4:
		if (memcmp(m, "POST", 4) == 0)
			return ZH_POST;
		if (memcmp(m, "HEAD", 4) == 0)
			return ZH_HEAD;
		break;
	case 5:
		if (memcmp(m, "PATCH", 5) == 0)
			return ZH_PATCH;
		if (memcmp(m, "TRACE", 5) == 0)
			return ZH_TRACE;
		break;
	case 6:
		if (memcmp(m, "DELETE", 6) == 0)
			return ZH_DELETE;
		break;
	case 7:
		if (memcmp(m, "OPTIONS", 7) == 0)
			return ZH_OPTIONS;
		break;
	}
	return 0;
}

/* uri-host [ ":" port ] (RFC 9110 §7.2, RFC 3986 §3.2.2): IP-literal, or reg-name (which
 * covers IPv4address); port is digits, possibly empty. An empty Host is valid. */
static bool valid_host(const char *p, size_t len)
{
	size_t i = 0;
	if (len > 0 && p[0] == '[') {
		for (i = 1; i < len && p[i] != ']'; i++)
			if (zh__hexval((unsigned char)p[i]) < 0 && p[i] != ':' && p[i] != '.')
				return false;
		if (i == len || i == 1)
			return false;
		i++;
	} else {
		for (;;) {
			while (i < len && target_char[(unsigned char)p[i]] == T_HOST)
				i++;
			if (i == len || p[i] == ':')
				break;
			if (p[i] != '%' || i + 2 >= len || zh__hexval((unsigned char)p[i + 1]) < 0 ||
			    zh__hexval((unsigned char)p[i + 2]) < 0)
				return false;
			i += 3;
		}
	}
	if (i == len)
		return true;
	if (p[i] != ':')
		return false;
	for (i++; i < len; i++)
		if (p[i] < '0' || p[i] > '9')
			return false;
	return true;
}

static bool parse_decimal(const char *p, size_t len, uint64_t *out)
{
	uint64_t v = 0;
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (p[i] < '0' || p[i] > '9')
			return false;
		if (__builtin_mul_overflow(v, 10, &v) ||
		    __builtin_add_overflow(v, (uint64_t)(p[i] - '0'), &v))
			return false;
	}
	*out = v;
	return true;
}

/* Calls fn on each element of a comma-separated list (RFC 9110 §5.6.1), OWS trimmed, empty
 * elements skipped. Stops at the first nonzero return. */
static int for_each_element(const char *p, size_t len, int (*fn)(const char *, size_t, void *),
			    void *arg)
{
	size_t i = 0;
	while (i < len) {
		size_t s = i, e;
		while (i < len && p[i] != ',')
			i++;
		e = i++;
		while (s < e && (p[s] == ' ' || p[s] == '\t'))
			s++;
		while (e > s && (p[e - 1] == ' ' || p[e - 1] == '\t'))
			e--;
		if (e > s) {
			int r = fn(p + s, e - s, arg);
			if (r)
				return r;
		}
	}
	return 0;
}

static int connection_option(const char *p, size_t len, void *arg)
{
	zh__head_t *h = arg;
	if (len == 5 && zh__ieq(p, "close", 5))
		h->flags |= ZH__H_CLOSE;
	else if (len == 10 && zh__ieq(p, "keep-alive", 10))
		h->flags |= ZH__H_KEEPALIVE;
	else if (len == 7 && zh__ieq(p, "upgrade", 7))
		h->flags |= ZH__H_UPGRADE;
	return 0;
}

/* Transfer-Encoding: only "chunked", once. Another coding is not implemented (501); chunked
 * applied twice, or not last, leaves the length undeterminable (400, RFC 9112 §6.3). */
static int transfer_coding(const char *p, size_t len, void *arg)
{
	zh__head_t *h = arg;
	size_t tok = 0;
	while (tok < len && zh__token_char[(unsigned char)p[tok]])
		tok++;
	if (tok == 0)
		return -400;
	if (tok == 7 && zh__ieq(p, "chunked", 7) && tok == len) {
		if (h->flags & ZH__H_CHUNKED)
			return -400;
		h->flags |= ZH__H_CHUNKED;
		return 0;
	}
	return h->flags & ZH__H_CHUNKED ? -400 : -501;
}

/* Applies what the library itself needs from a field; returns 0 or -status. */
static int known_field(zh__head_t *h, const char *name, size_t nlen, const char *val,
		       size_t vlen, uint32_t voff)
{
	switch (nlen) {
	case 4:
		if (zh__ieq(name, "host", 4)) {
			if (h->flags & ZH__H_HOST || !valid_host(val, vlen))
				return -400;
			h->flags |= ZH__H_HOST;
			if (!(h->flags & ZH__H_ABSOLUTE))
				h->host = (zh__span_t){voff, (uint32_t)vlen};
		}
		break;
	case 6:
		if (zh__ieq(name, "expect", 6)) {
			if (vlen == 12 && zh__ieq(val, "100-continue", 12))
				h->flags |= ZH__H_EXPECT_CONTINUE;
			else
				return -417;
		}
		break;
	case 10:
		if (zh__ieq(name, "connection", 10))
			for_each_element(val, vlen, connection_option, h);
		break;
	case 14:
		if (zh__ieq(name, "content-length", 14)) {
			uint64_t v;
			if (!parse_decimal(val, vlen, &v))
				return -400;
			if ((h->flags & ZH__H_CL) && v != h->content_length)
				return -400;
			h->flags |= ZH__H_CL;
			h->content_length = v;
		}
		break;
	case 17:
		if (zh__ieq(name, "transfer-encoding", 17)) {
			int r = vlen ? for_each_element(val, vlen, transfer_coding, h) : -400;
			if (r == 0 && !(h->flags & ZH__H_CHUNKED))
				r = -400; /* only empty list elements: no coding at all */
			return r;
		}
		break;
	}
	return 0;
}

/* request-target: origin-form, absolute-form (http/https), or "*". The caller's scan has
 * validated every byte and percent-triplet and found the first '?' (query, or len) and the
 * last bracket (brackets, or len). Fills target, path, query (and host for absolute-form). */
static int parse_target(zh__head_t *h, const char *buf, uint32_t off, uint32_t len,
			uint32_t query, uint32_t brackets)
{
	const char *t = buf + off;
	uint32_t i = 0;

	h->target = (zh__span_t){off, len};
	if (len == 1 && t[0] == '*') {
		h->flags |= ZH__H_ASTERISK;
		h->path = h->target;
		return 0;
	}
	if (t[0] != '/') {
		/* absolute-form: scheme "://" authority path-abempty [ "?" query ] */
		uint32_t s = 0;
		if (len > 7 && zh__ieq(t, "http://", 7))
			s = 7;
		else if (len > 8 && zh__ieq(t, "https://", 8))
			s = 8;
		else
			return -400;
		i = s;
		while (i < len && t[i] != '/' && t[i] != '?')
			i++;
		if (i == s || memchr(t + s, '@', i - s) || !valid_host(t + s, i - s))
			return -400; /* empty host, or userinfo (RFC 9110 §4.2.4: not allowed) */
		h->host = (zh__span_t){off + s, i - s};
		h->flags |= ZH__H_ABSOLUTE;
	}
	if (brackets != len && brackets >= i)
		return -400; /* brackets only delimit an IP-literal host */
	h->path = (zh__span_t){off + i, query - i};
	h->query = query < len ? (zh__span_t){off + query + 1, len - query - 1}
			       : (zh__span_t){off + len, 0};
	return 0;
}

/* Returns bytes of the request line including CRLF, 0 if incomplete, or -status. */
static int parse_request_line(zh__head_t *h, const char *buf, size_t len, uint32_t start,
			      const zh__limits_t *lim)
{
	const char *p = buf + start, *end = buf + len, *m, *t, *query, *brackets;
	size_t avail = (size_t)(end - p);
	if (avail > lim->max_request_line + 2)
		end = p + lim->max_request_line + 2;

	m = p;
	while (p < end && zh__token_char[(unsigned char)*p])
		p++;
	if (p == end)
		goto incomplete;
	if (*p != ' ' || p == m)
		return -400;
	h->method = (zh__span_t){(uint32_t)(m - buf), (uint32_t)(p - m)};
	h->method_bit = method_bit(m, (size_t)(p - m));
	t = ++p;
	query = brackets = NULL;
	/* one pass over the target: validate, check triplets, note '?' and brackets */
	for (;;) {
		uint8_t k;
		if (p == end)
			goto incomplete;
		k = target_char[(unsigned char)*p];
		if (ZH__LIKELY(k == T_HOST)) {
			p++;
		} else if (k == T_PATH) {
			if (*p == '?' && query == NULL)
				query = p;
			p++;
		} else if (k == T_PCT) {
			if (end - p < 3)
				goto incomplete;
			if (zh__hexval((unsigned char)p[1]) < 0 || zh__hexval((unsigned char)p[2]) < 0)
				return -400;
			p += 3;
		} else if (k == T_BRACKET) {
			brackets = p++;
		} else {
			break;
		}
	}
	if (*p != ' ' || p == t)
		return -400;
	{
		uint32_t tlen = (uint32_t)(p - t);
		int r = parse_target(h, buf, (uint32_t)(t - buf), tlen,
				     query ? (uint32_t)(query - t) : tlen,
				     brackets ? (uint32_t)(brackets - t) : tlen);
		if (r < 0)
			return r;
	}
	p++;
	if (end - p < 10)
		goto incomplete;
	/* HTTP-version = "HTTP/" DIGIT "." DIGIT (RFC 9112 §2.3), exactly; anything else: 400 */
	if (memcmp(p, "HTTP/", 5) != 0 || p[5] < '0' || p[5] > '9' || p[6] != '.' ||
	    p[7] < '0' || p[7] > '9' || p[8] != '\r' || p[9] != '\n')
		return -400;
	if (p[5] != '1')
		return -505; /* another major version: not supported (RFC 9110 §15.6.6) */
	/* RFC 9112 §2.3: a higher minor version is processed as the highest we conform to,
	 * 1.1, and answered with HTTP/1.1 */
	h->minor = p[7] == '0' ? 0 : 1;
	if (h->method_bit == 0)
		return -501;
	if ((h->flags & ZH__H_ASTERISK) && h->method_bit != ZH_OPTIONS)
		return -400;
	return (int)(p + 10 - (buf + start));

incomplete:
	/* a line of max_request_line bytes may still lack its CRLF */
	if (avail >= (size_t)lim->max_request_line + 2)
		return -414;
	return 0;
}

/* One header field line starting at buf[start]. Returns its length including CRLF, 0 if
 * incomplete, or -status. */
static int parse_field(zh__head_t *h, zh__field_t *f, const char *buf, size_t len,
		       uint32_t start)
{
	const char *p = buf + start, *end = buf + len, *name = p, *val, *vend;
	uint32_t nlen;

	while (p < end && zh__token_char[(unsigned char)*p])
		p++;
	if (p == end)
		return 0;
	if (*p != ':' || p == name)
		return -400; /* empty name, whitespace before the colon, or a non-token byte */
	nlen = (uint32_t)(p - name);
	p++;
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	val = p;
	for (;;) {
		p = find_ctl(p, end);
		if (p == end)
			return 0;
		if (*p != '\t')
			break;
		p++;
	}
	if (*p != '\r')
		return -400; /* NUL, bare LF, other controls */
	if (p + 1 == end)
		return 0;
	if (p[1] != '\n')
		return -400; /* bare CR */
	vend = p;
	while (vend > val && (vend[-1] == ' ' || vend[-1] == '\t'))
		vend--;
	f->name = (zh__span_t){start, nlen};
	f->value = (zh__span_t){(uint32_t)(val - buf), (uint32_t)(vend - val)};
	{
		int r = known_field(h, name, nlen, val, (size_t)(vend - val), f->value.off);
		if (r < 0)
			return r;
	}
	return (int)(p + 2 - (buf + start));
}

static int finish_head(zh__head_t *h)
{
	if (h->minor == 1 && !(h->flags & ZH__H_HOST))
		return -400; /* RFC 9112 §3.2 */
	if (h->minor == 0)
		h->flags &= ~(uint32_t)ZH__H_EXPECT_CONTINUE; /* RFC 9110 §10.1.1: ignore in 1.0 */
	if (h->flags & ZH__H_CHUNKED) {
		if (h->flags & ZH__H_CL)
			return -400; /* RFC 9112 §6.1: smuggling vector; refuse and close */
		if (h->minor == 0)
			return -400; /* RFC 9112 §6.1: framing of a 1.0 request with TE is faulty */
	}
	return 0;
}

int zh__parse_head(zh__parser_t *ps, const char *buf, size_t len, zh__head_t *h,
		   zh__field_t *fields, const zh__limits_t *lim)
{
	int r;

	if (ps->phase == 0) {
		/* RFC 9112 §2.2: ignore empty lines before the request line */
		while (ps->pos + 1 < len && buf[ps->pos] == '\r' && buf[ps->pos + 1] == '\n' &&
		       ps->pos < 8)
			ps->pos += 2;
		if (ps->pos < len && buf[ps->pos] == '\n')
			return -400;
		if (ps->pos + 1 == len && buf[ps->pos] == '\r' && ps->pos < 8)
			return 0; /* an empty line cut after its CR */
		r = parse_request_line(h, buf, len, ps->pos, lim);
		if (r <= 0)
			return r;
		ps->pos += (uint32_t)r;
		ps->fields_start = ps->pos;
		ps->phase = 1;
		h->nfields = 0;
	}
	for (;;) {
		if (ps->pos - ps->fields_start > lim->max_header_bytes)
			return -431;
		if (ps->pos >= len)
			return 0;
		if (buf[ps->pos] == '\r') {
			if (ps->pos + 1 >= len)
				return 0;
			if (buf[ps->pos + 1] != '\n')
				return -400;
			ps->pos += 2;
			r = finish_head(h);
			if (r < 0)
				return r;
			h->head_len = ps->pos;
			return (int)ps->pos;
		}
		if (buf[ps->pos] == ' ' || buf[ps->pos] == '\t')
			return -400; /* obs-fold (RFC 9112 §5.2), or whitespace before a name */
		if (h->nfields == lim->max_headers)
			return -431;
		r = parse_field(h, &fields[h->nfields], buf, len, ps->pos);
		if (r == 0) {
			if (len - ps->fields_start > lim->max_header_bytes)
				return -431;
			return 0;
		}
		if (r < 0)
			return r;
		h->nfields++;
		ps->pos += (uint32_t)r;
	}
}

/* ---- chunked ------------------------------------------------------------------------------ */

enum {
	CK_SIZE,
	CK_EXT_BWS,
	CK_EXT,
	CK_SIZE_LF,
	CK_DATA,
	CK_DATA_CR,
	CK_DATA_LF,
	CK_TRAILER_START,
	CK_TRAILER_NAME,
	CK_TRAILER_VALUE,
	CK_TRAILER_LF,
	CK_END_LF,
	CK_DONE = 255,
};

enum {
	CK_MAX_LINE = 4096,	/* a size line with its extensions */
	CK_MAX_TRAILER = 8192,	/* all trailer fields together */
	CK_MAX_TRAILERS = 32,
};

long zh__chunked_decode(zh__chunked_t *c, const char *in, size_t in_len, char *out,
			size_t out_cap, size_t *produced, uint64_t max_body)
{
	size_t i = 0, o = 0;

	while (i < in_len && c->state != CK_DONE) {
		unsigned char ch = (unsigned char)in[i];
		switch (c->state) {
		case CK_SIZE: {
			int v = zh__hexval(ch);
			if (v >= 0) {
				if (c->size_digits == 16)
					return -413; /* > 2^64: certainly over any limit */
				c->remaining = c->remaining << 4 | (uint64_t)v;
				c->size_digits++;
				if (c->remaining > max_body - c->total)
					return -413;
				i++;
				break;
			}
			if (c->size_digits == 0)
				return -400;
			c->line_bytes = 0;
			c->state = CK_EXT_BWS;
			break;
		}
		case CK_EXT_BWS:
			/* RFC 9112 §7.1, §7.1.1: BWS may follow the size only before the ";" of a
			 * chunk extension. "3 \r\n" is refused: recipients that trim the blank and
			 * those that do not would disagree on this line. line_bytes counts the
			 * blanks seen so far. */
			if (ch == '\r' && c->line_bytes != 0)
				return -400;
			if (ch == '\r')
				c->state = CK_SIZE_LF;
			else if (ch == ';')
				c->state = CK_EXT;
			else if (ch != ' ' && ch != '\t')
				return -400;
			if (ch != '\r' && ++c->line_bytes > CK_MAX_LINE)
				return -400;
			i++;
			break;
		case CK_EXT:
			/* chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS value ] ): bounded and free
			 * of control characters */
			if (ch == '\r')
				c->state = CK_SIZE_LF;
			else if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
				return -400;
			else if (++c->line_bytes > CK_MAX_LINE)
				return -400;
			i++;
			break;
		case CK_SIZE_LF:
			if (ch != '\n')
				return -400;
			i++;
			c->size_digits = 0;
			c->state = c->remaining ? CK_DATA : CK_TRAILER_START;
			break;
		case CK_DATA: {
			size_t n = in_len - i;
			if (n > c->remaining)
				n = (size_t)c->remaining;
			if (n > out_cap - o)
				n = out_cap - o;
			if (n == 0)
				goto out;
			if (out + o != in + i)
				memmove(out + o, in + i, n);
			i += n;
			o += n;
			c->remaining -= n;
			c->total += n;
			if (c->remaining == 0)
				c->state = CK_DATA_CR;
			break;
		}
		case CK_DATA_CR:
			if (ch != '\r')
				return -400;
			i++;
			c->state = CK_DATA_LF;
			break;
		case CK_DATA_LF:
			if (ch != '\n')
				return -400;
			i++;
			c->state = CK_SIZE;
			break;
		case CK_TRAILER_START:
			if (ch == '\r') {
				c->state = CK_END_LF;
				i++;
				break;
			}
			if (!zh__token_char[ch] || ++c->trailer_fields > CK_MAX_TRAILERS)
				return -400;
			c->state = CK_TRAILER_NAME;
			break;
		case CK_TRAILER_NAME:
			if (ch == ':')
				c->state = CK_TRAILER_VALUE;
			else if (!zh__token_char[ch])
				return -400;
			i++;
			if (++c->trailer_bytes > CK_MAX_TRAILER)
				return -400;
			break;
		case CK_TRAILER_VALUE:
			if (ch == '\r')
				c->state = CK_TRAILER_LF;
			else if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
				return -400;
			i++;
			if (++c->trailer_bytes > CK_MAX_TRAILER)
				return -400;
			break;
		case CK_TRAILER_LF:
			if (ch != '\n')
				return -400;
			i++;
			c->state = CK_TRAILER_START;
			break;
		case CK_END_LF:
			if (ch != '\n')
				return -400;
			i++;
			c->state = CK_DONE;
			break;
		}
	}
out:
	*produced = o;
	return (long)i;
}
