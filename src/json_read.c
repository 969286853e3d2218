/* json_read.c — the JSON reader: RFC 8259 validation into a caller's token array, and the
 * typed accessors over it (zerohttp.h, "JSON reader"). The writer is json.c.
 *
 * The parser is one loop over the text with no stack of its own: while a container is
 * open, its token's `next` field holds the index of the container around it (its parent),
 * and closing the container restores `next` to its real meaning (the index after its
 * subtree). Depth is a counter, so the depth limit costs no memory and the whole parse
 * costs the caller's token array and nothing else.
 *
 * Strings, where most bytes of a document are, are scanned 16 bytes at a time (SSE2,
 * baseline on x86-64) for the first byte that is not plain: '"', '\', a control byte or a
 * non-ASCII byte, which the slow path handles (escape rules, UTF-8 per Unicode table 3-7).
 * The byte loop below it gives identical results and is what ZH_NO_SIMD builds use
 * (tests/test_json_read.c runs in both). Nothing reads outside [src, src + len).
 */
#include <zerohttp.h>

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__) && !defined(ZH_NO_SIMD)
#include <emmintrin.h>
#define ZH__JR_SSE2 1
#endif

typedef unsigned char uchar;

/* The parse in progress. */
struct jp {
	const uchar *s, *end;
	zh_jtok_t *t;
	uint32_t n, cap;
	int reason;
	const uchar *at; /* where the error is */
};

/* 1 for bytes that may stand in a string as they are: 0x20..0x7f but '"' and '\'. */
static const uint8_t plain[256] = {
#define R4(x) x, x, x, x
#define R16(x) R4(x), R4(x), R4(x), R4(x)
	R16(0), R16(0), /* 0x00-0x1f: controls */
	1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x20-0x2f: '"' */
	R16(1), R16(1),					/* 0x30-0x4f */
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, /* 0x50-0x5f: '\' */
	R16(1), R16(1),					/* 0x60-0x7f */
	R16(0), R16(0), R16(0), R16(0), R16(0), R16(0), R16(0), R16(0), /* non-ASCII */
#undef R16
#undef R4
};

/* RFC 8259 §2: the four whitespace bytes. */
static inline const uchar *skip_ws(const uchar *p, const uchar *end)
{
	while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
		p++;
	return p;
}

static int hex4(const uchar *p)
{
	int v = 0;
	for (int i = 0; i < 4; i++) {
		uchar c = p[i];
		int d = c >= '0' && c <= '9'	     ? c - '0'
			: (c | 0x20) >= 'a' && (c | 0x20) <= 'f' ? (c | 0x20) - 'a' + 10
							     : -1;
		if (d < 0)
			return -1;
		v = v << 4 | d;
	}
	return v;
}

/* One escape at p ('\'). Returns the byte after it and the code point in *cp, or NULL with
 * *reason. Escapes were validated by the parse when the accessors call this again. */
static const uchar *escape(const uchar *p, const uchar *end, uint32_t *cp, int *reason)
{
	static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
	const char *k;
	int hi, lo;
	if (end - p < 2) {
		*reason = ZH_JE_EOF;
		return NULL;
	}
	if (p[1] != 'u') {
		k = p[1] ? strchr(from, p[1]) : NULL;
		if (k == NULL) {
			*reason = ZH_JE_ESCAPE;
			return NULL;
		}
		*cp = (uchar)to[k - from];
		return p + 2;
	}
	if (end - p < 6) {
		*reason = ZH_JE_EOF;
		return NULL;
	}
	if ((hi = hex4(p + 2)) < 0) {
		*reason = ZH_JE_ESCAPE;
		return NULL;
	}
	/* §7 spells a character outside the BMP as a UTF-16 surrogate pair; a lone half has
	 * no UTF-8 form (Unicode 3.9, D92), so it is refused rather than passed on */
	if (hi < 0xd800 || hi > 0xdfff) {
		*cp = (uint32_t)hi;
		return p + 6;
	}
	if (hi > 0xdbff || end - p < 12 || p[6] != '\\' || p[7] != 'u' ||
	    (lo = hex4(p + 8)) < 0xdc00 || lo > 0xdfff) {
		*reason = ZH_JE_SURROGATE;
		return NULL;
	}
	*cp = 0x10000 + ((uint32_t)(hi - 0xd800) << 10) + (uint32_t)(lo - 0xdc00);
	return p + 12;
}

/* A well-formed UTF-8 sequence at p (lead byte >= 0x80), per Unicode table 3-7: returns the
 * byte after it, or NULL. The second byte's range depends on the lead byte (that is what
 * excludes overlong forms, surrogates and values above U+10FFFF). */
static const uchar *utf8(const uchar *p, const uchar *end)
{
	uchar c = p[0], lo = 0x80, hi = 0xbf;
	int n;
	if (c >= 0xc2 && c <= 0xdf)
		n = 1;
	else if (c >= 0xe0 && c <= 0xef) {
		n = 2;
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 3;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;
	} else
		return NULL;
	if (end - p <= n || p[1] < lo || p[1] > hi)
		return NULL;
	for (int i = 2; i <= n; i++)
		if ((p[i] & 0xc0) != 0x80)
			return NULL;
	return p + n + 1;
}

/* The string whose first content byte is p: returns its closing quote, or NULL with the
 * error in j. Sets *esc if it has a '\'. */
static const uchar *string(struct jp *j, const uchar *p, bool *esc)
{
	const uchar *end = j->end;
	for (;;) {
#ifdef ZH__JR_SSE2
		const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\'),
			      ctl = _mm_set1_epi8(0x20);
		while (end - p >= 16) {
			__m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
			/* signed compare: below 0x20 is a control byte, below 0 a non-ASCII one */
			__m128i m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote),
							      _mm_cmpeq_epi8(v, bslash)),
						 _mm_cmplt_epi8(v, ctl));
			unsigned bits = (unsigned)_mm_movemask_epi8(m);
			if (bits) {
				p += __builtin_ctz(bits);
				goto special;
			}
			p += 16;
		}
#endif
		while (p < end && plain[*p])
			p++;
		if (p == end) {
			j->reason = ZH_JE_EOF;
			j->at = p;
			return NULL;
		}
#ifdef ZH__JR_SSE2
special:
#endif
		if (*p == '"')
			return p;
		if (*p == '\\') {
			uint32_t cp;
			const uchar *q = escape(p, end, &cp, &j->reason);
			*esc = true;
			if (q == NULL) {
				j->at = j->reason == ZH_JE_EOF ? end : p;
				return NULL;
			}
			p = q;
		} else if (*p < 0x20) {
			j->reason = ZH_JE_CONTROL;
			j->at = p;
			return NULL;
		} else {
			/* non-ASCII text tends to come in runs: stay here while it lasts */
			do {
				const uchar *q = utf8(p, end);
				if (q == NULL) {
					j->reason = ZH_JE_UTF8;
					j->at = p;
					return NULL;
				}
				p = q;
			} while (p < end && *p >= 0x80);
		}
	}
}

static inline bool digit(uchar c)
{
	return (unsigned)(c - '0') < 10;
}

/* The number starting at p (a '-' or a digit), §6 grammar: returns the byte after it, or
 * NULL with the error in j. Sets *real for a fraction or exponent. */
static const uchar *number(struct jp *j, const uchar *p, bool *real)
{
	const uchar *end = j->end, *q = p;
	if (*q == '-')
		q++;
	if (q == end || !digit(*q))
		goto bad;
	if (*q++ == '0') {
		if (q < end && digit(*q)) /* "01": §6 has no leading zeros */
			goto bad;
	} else
		while (q < end && digit(*q))
			q++;
	if (q < end && *q == '.') {
		*real = true;
		if (++q == end || !digit(*q))
			goto bad;
		while (q < end && digit(*q))
			q++;
	}
	if (q < end && (*q | 0x20) == 'e') {
		*real = true;
		if (++q < end && (*q == '+' || *q == '-'))
			q++;
		if (q == end || !digit(*q))
			goto bad;
		while (q < end && digit(*q))
			q++;
	}
	return q;
bad:
	j->reason = ZH_JE_NUMBER;
	j->at = p;
	return NULL;
}

/* true, false or null at p: returns the byte after it, or NULL with the error in j. */
static const uchar *literal(struct jp *j, const uchar *p, const char *word, size_t n)
{
	size_t have = (size_t)(j->end - p);
	if (have >= n && memcmp(p, word, n) == 0)
		return p + n;
	j->reason = have < n && memcmp(p, word, have) == 0 ? ZH_JE_EOF : ZH_JE_SYNTAX;
	j->at = j->reason == ZH_JE_EOF ? j->end : p;
	return NULL;
}

static int fail(struct jp *j, int reason, const uchar *at)
{
	j->reason = reason;
	j->at = at;
	return -1;
}

/* The parse proper. Returns the token count, or -1 with j->reason and j->at. Labels: value
 * (a value starts at p, whitespace skipped), member (a key is due), after (a value ended:
 * a ',' or the parent's closing bracket is due). */
static int parse(struct jp *j, unsigned max_depth)
{
	const uchar *p = j->s, *end = j->end;
	zh_jtok_t *t = j->t;
	uint32_t n = 0, parent = ZH_JDOC_NONE;
	unsigned depth = 0;
	zh_jtok_t *tk;

	p = skip_ws(p, end);
	if (p == end)
		return fail(j, ZH_JE_EMPTY, p);
value:
	if (p == end)
		return fail(j, ZH_JE_EOF, p);
	if (n == j->cap) /* but a byte that starts no value is the error that counts */
		return fail(j, strchr("{[\"tfn-0123456789", *p) && *p ? ZH_JE_TOKENS : ZH_JE_SYNTAX,
			    p);
	tk = &t[n];
	tk->start = (uint32_t)(p - j->s);
	tk->escaped = 0;
	tk->real = 0;
	tk->count = 0;
	switch (*p) {
	case '{':
	case '[':
		if (++depth > max_depth)
			return fail(j, ZH_JE_DEPTH, p);
		tk->type = *p == '{' ? ZH_JT_OBJECT : ZH_JT_ARRAY;
		tk->next = parent; /* until it closes: see the top of the file */
		parent = n++;
		p = skip_ws(p + 1, end);
		if (p < end && *p == (tk->type == ZH_JT_OBJECT ? '}' : ']'))
			goto close;
		if (tk->type == ZH_JT_OBJECT)
			goto member;
		tk->count = 1;
		goto value;
	case '"': {
		bool esc = false;
		const uchar *q = string(j, p + 1, &esc);
		if (q == NULL)
			return -1;
		tk->type = ZH_JT_STRING;
		tk->escaped = esc;
		tk->start++;
		tk->len = (uint32_t)(q - p - 1);
		p = q + 1;
		break;
	}
	case 't':
	case 'f':
	case 'n': {
		const uchar *q = *p == 't'   ? literal(j, p, "true", 4)
				 : *p == 'f' ? literal(j, p, "false", 5)
					     : literal(j, p, "null", 4);
		if (q == NULL)
			return -1;
		tk->type = *p == 't' ? ZH_JT_TRUE : *p == 'f' ? ZH_JT_FALSE : ZH_JT_NULL;
		tk->len = (uint32_t)(q - p);
		p = q;
		break;
	}
	default: {
		bool real = false;
		const uchar *q;
		if (*p != '-' && !digit(*p))
			return fail(j, ZH_JE_SYNTAX, p);
		if ((q = number(j, p, &real)) == NULL)
			return -1;
		tk->type = ZH_JT_NUMBER;
		tk->real = real;
		tk->len = (uint32_t)(q - p);
		p = q;
		break;
	}
	}
	tk->next = ++n;
after:
	if (parent == ZH_JDOC_NONE) {
		p = skip_ws(p, end);
		if (p != end)
			return fail(j, ZH_JE_TRAILING, p);
		return (int)n;
	}
	p = skip_ws(p, end);
	if (p == end)
		return fail(j, ZH_JE_EOF, p);
	if (*p == ',') {
		p = skip_ws(p + 1, end);
		if (t[parent].type == ZH_JT_OBJECT)
			goto member;
		t[parent].count++;
		goto value;
	}
	if (*p != (t[parent].type == ZH_JT_OBJECT ? '}' : ']'))
		return fail(j, ZH_JE_SYNTAX, p);
close: {
	/* p is the parent's closing bracket */
	zh_jtok_t *pt = &t[parent];
	uint32_t up = pt->next;
	pt->len = (uint32_t)(p + 1 - j->s) - pt->start;
	pt->next = n;
	parent = up;
	depth--;
	p++;
	goto after;
}
member: {
	bool esc = false;
	const uchar *q;
	if (p == end)
		return fail(j, ZH_JE_EOF, p);
	if (*p != '"')
		return fail(j, ZH_JE_SYNTAX, p);
	if (n == j->cap)
		return fail(j, ZH_JE_TOKENS, p);
	if ((q = string(j, p + 1, &esc)) == NULL)
		return -1;
	tk = &t[n];
	tk->type = ZH_JT_STRING;
	tk->escaped = esc;
	tk->real = 0;
	tk->count = 0;
	tk->start = (uint32_t)(p + 1 - j->s);
	tk->len = (uint32_t)(q - p - 1);
	tk->next = ++n;
	t[parent].count++;
	p = skip_ws(q + 1, end);
	if (p == end)
		return fail(j, ZH_JE_EOF, p);
	if (*p != ':')
		return fail(j, ZH_JE_SYNTAX, p);
	p = skip_ws(p + 1, end);
	goto value;
}
}

int zh_jdoc_parse(zh_jdoc_t *doc, const char *src, size_t len, zh_jtok_t *tok, size_t cap,
		  unsigned max_depth)
{
	struct jp j = {(const uchar *)src, NULL, tok, 0, 0, ZH_JE_OK, NULL};
	int r;
	memset(doc, 0, sizeof *doc);
	doc->src = src;
	doc->len = len;
	doc->tok = tok;
	/* offsets and lengths are 32-bit (the text is never read when it is longer) */
	if (len > UINT32_MAX) {
		doc->err = -EFBIG;
		doc->reason = ZH_JE_SIZE;
		return doc->err;
	}
	j.end = j.s + len;
	/* count is 27 bits wide and never exceeds the number of tokens */
	j.cap = cap > ZH_JDOC_MAX_TOKENS ? ZH_JDOC_MAX_TOKENS : (uint32_t)cap;
	r = parse(&j, max_depth ? max_depth : ZH_JDOC_MAX_DEPTH);
	if (r > 0) {
		doc->ntok = (uint32_t)r;
		return r;
	}
	doc->reason = j.reason;
	doc->offset = (size_t)(j.at - j.s);
	doc->err = j.reason == ZH_JE_DEPTH ? -ELOOP : j.reason == ZH_JE_TOKENS ? -E2BIG : -EINVAL;
	return doc->err;
}

int zh_req_json(zh_request_t *req, zh_jdoc_t *doc, zh_jtok_t *tok, size_t cap,
		unsigned max_depth)
{
	zh_slice_t body;
	int r = zh_body_all(req, &body);
	if (r < 0) {
		memset(doc, 0, sizeof *doc);
		doc->err = r;
		doc->reason = ZH_JE_BODY;
		return r;
	}
	return zh_jdoc_parse(doc, body.ptr, body.len, tok, cap, max_depth);
}

const char *zh_jdoc_reason(int reason)
{
	static const char *const text[] = {
		[ZH_JE_OK] = "no error",
		[ZH_JE_EMPTY] = "no value",
		[ZH_JE_SYNTAX] = "unexpected character",
		[ZH_JE_EOF] = "unexpected end of text",
		[ZH_JE_TRAILING] = "text after the value",
		[ZH_JE_NUMBER] = "malformed number",
		[ZH_JE_CONTROL] = "unescaped control character in a string",
		[ZH_JE_UTF8] = "invalid UTF-8 in a string",
		[ZH_JE_ESCAPE] = "invalid escape in a string",
		[ZH_JE_SURROGATE] = "unpaired surrogate escape in a string",
		[ZH_JE_DEPTH] = "nested too deeply",
		[ZH_JE_TOKENS] = "too many values",
		[ZH_JE_SIZE] = "document too large",
		[ZH_JE_BODY] = "request body not available",
	};
	if (reason < 0 || (size_t)reason >= sizeof text / sizeof text[0])
		return "unknown error";
	return text[reason];
}

int zh_jdoc_reply_error(zh_response_t *resp, const zh_jdoc_t *doc)
{
	int status, r;
	zh_json_t *js;
	const char *why;
	switch (doc->err) {
	case -EINVAL:
	case -ELOOP:
		status = 400;
		break;
	case -E2BIG:
	case -EFBIG:
		status = 413; /* RFC 9110 §15.5.14: more than the server is willing to process */
		break;
	case -ENOTSUP:
		status = 500;
		break;
	default:
		return -EINVAL;
	}
	if ((r = zh_write_header(resp, status)) < 0)
		return r;
	js = zh_json_begin(resp, 0);
	why = zh_jdoc_reason(doc->reason);
	zh_json_obj(js);
	zh_json_key(js, "error", 5);
	zh_json_str(js, "invalid JSON", 12);
	zh_json_key(js, "reason", 6);
	zh_json_str(js, why, strlen(why));
	zh_json_key(js, "offset", 6);
	zh_json_u64(js, doc->offset);
	zh_json_end(js);
	return zh_json_error(js);
}

/* ---- accessors ------------------------------------------------------------------------------ */

static const zh_jtok_t *tok_at(const zh_jdoc_t *doc, uint32_t i)
{
	return i < doc->ntok ? &doc->tok[i] : NULL;
}

int zh_jdoc_type(const zh_jdoc_t *doc, uint32_t i)
{
	const zh_jtok_t *t = tok_at(doc, i);
	return t ? (int)t->type : ZH_JT_NONE;
}

zh_slice_t zh_jdoc_raw(const zh_jdoc_t *doc, uint32_t i)
{
	const zh_jtok_t *t = tok_at(doc, i);
	zh_slice_t s = {NULL, 0};
	if (t) {
		s.ptr = doc->src + t->start;
		s.len = t->len;
	}
	return s;
}

static bool container(const zh_jtok_t *t)
{
	return t && (t->type == ZH_JT_OBJECT || t->type == ZH_JT_ARRAY);
}

uint32_t zh_jdoc_count(const zh_jdoc_t *doc, uint32_t i)
{
	const zh_jtok_t *t = tok_at(doc, i);
	return container(t) ? t->count : 0;
}

uint32_t zh_jdoc_first(const zh_jdoc_t *doc, uint32_t i)
{
	const zh_jtok_t *t = tok_at(doc, i);
	return container(t) && t->count ? i + 1 : ZH_JDOC_NONE;
}

uint32_t zh_jdoc_next(const zh_jdoc_t *doc, uint32_t i, uint32_t k)
{
	const zh_jtok_t *t = tok_at(doc, i);
	uint32_t nx;
	if (!container(t) || k <= i || k >= t->next)
		return ZH_JDOC_NONE;
	/* an object's child is a key: skip it and its value (a k that is not a key, a value
	 * passed by mistake, must still not lead past the object) */
	if (t->type == ZH_JT_OBJECT && k + 1 >= t->next)
		return ZH_JDOC_NONE;
	nx = t->type == ZH_JT_OBJECT ? doc->tok[k + 1].next : doc->tok[k].next;
	return nx < t->next ? nx : ZH_JDOC_NONE;
}

uint32_t zh_jdoc_member_n(const zh_jdoc_t *doc, uint32_t obj, const char *key, size_t key_len)
{
	if (zh_jdoc_type(doc, obj) != ZH_JT_OBJECT)
		return ZH_JDOC_NONE;
	for (uint32_t k = zh_jdoc_first(doc, obj); k != ZH_JDOC_NONE; k = zh_jdoc_next(doc, obj, k))
		if (zh_jdoc_str_eq(doc, k, key, key_len))
			return k + 1;
	return ZH_JDOC_NONE;
}

uint32_t zh_jdoc_member(const zh_jdoc_t *doc, uint32_t obj, const char *key)
{
	return zh_jdoc_member_n(doc, obj, key, strlen(key));
}

uint32_t zh_jdoc_at(const zh_jdoc_t *doc, uint32_t arr, size_t idx)
{
	uint32_t k;
	if (zh_jdoc_type(doc, arr) != ZH_JT_ARRAY || idx >= doc->tok[arr].count)
		return ZH_JDOC_NONE;
	for (k = arr + 1; idx; idx--)
		k = doc->tok[k].next;
	return k;
}

/* Code point cp as UTF-8 into out; returns the length. */
static size_t put_utf8(uint32_t cp, uchar out[4])
{
	if (cp < 0x80) {
		out[0] = (uchar)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (uchar)(0xc0 | cp >> 6);
		out[1] = (uchar)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (uchar)(0xe0 | cp >> 12);
		out[1] = (uchar)(0x80 | (cp >> 6 & 0x3f));
		out[2] = (uchar)(0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (uchar)(0xf0 | cp >> 18);
	out[1] = (uchar)(0x80 | (cp >> 12 & 0x3f));
	out[2] = (uchar)(0x80 | (cp >> 6 & 0x3f));
	out[3] = (uchar)(0x80 | (cp & 0x3f));
	return 4;
}

/* Calls emit(ctx, bytes, n) for each run of the unescaped string of a parsed token, in
 * order; stops early when emit returns false. The parse validated every escape. */
typedef bool (*emit_fn)(void *ctx, const uchar *b, size_t n);
static void unescape(const zh_jdoc_t *doc, const zh_jtok_t *t, emit_fn emit, void *ctx)
{
	const uchar *p = (const uchar *)doc->src + t->start, *end = p + t->len;
	while (p < end) {
		const uchar *bs = memchr(p, '\\', (size_t)(end - p));
		uchar u[4];
		uint32_t cp = 0;
		int reason;
		if (bs == NULL)
			bs = end;
		if (bs > p && !emit(ctx, p, (size_t)(bs - p)))
			return;
		if (bs == end)
			return;
		p = escape(bs, end, &cp, &reason);
		if (p == NULL || !emit(ctx, u, put_utf8(cp, u)))
			return;
	}
}

struct eq_ctx {
	const uchar *s;
	size_t left;
	bool same;
};

static bool eq_emit(void *ctx, const uchar *b, size_t n)
{
	struct eq_ctx *c = ctx;
	if (n > c->left || memcmp(c->s, b, n) != 0)
		return c->same = false;
	c->s += n;
	c->left -= n;
	return true;
}

int zh_jdoc_str_eq(const zh_jdoc_t *doc, uint32_t i, const char *s, size_t len)
{
	const zh_jtok_t *t = tok_at(doc, i);
	struct eq_ctx c = {(const uchar *)s, len, true};
	if (t == NULL || t->type != ZH_JT_STRING)
		return 0;
	if (!t->escaped)
		return t->len == len && memcmp(doc->src + t->start, s, len) == 0;
	if (t->len < len) /* unescaping never lengthens a string */
		return 0;
	unescape(doc, t, eq_emit, &c);
	return c.same && c.left == 0;
}

struct copy_ctx {
	uchar *buf;
	size_t cap, len;
};

static bool copy_emit(void *ctx, const uchar *b, size_t n)
{
	struct copy_ctx *c = ctx;
	if (c->len + n < c->cap)
		memcpy(c->buf + c->len, b, n);
	c->len += n;
	return true;
}

ssize_t zh_jdoc_string(const zh_jdoc_t *doc, uint32_t i, char *buf, size_t cap)
{
	const zh_jtok_t *t = tok_at(doc, i);
	struct copy_ctx c = {(uchar *)buf, cap, 0};
	if (t == NULL || t->type != ZH_JT_STRING)
		return -EINVAL;
	if (!t->escaped)
		copy_emit(&c, (const uchar *)doc->src + t->start, t->len);
	else
		unescape(doc, t, copy_emit, &c);
	if (c.len < cap)
		buf[c.len] = '\0';
	return (ssize_t)c.len;
}

/* §6 integers: at most 19 significant digits always fit a uint64_t, and so the check is
 * one comparison per digit only past the 18th. */
int zh_jdoc_i64(const zh_jdoc_t *doc, uint32_t i, int64_t *out)
{
	const zh_jtok_t *t = tok_at(doc, i);
	const char *p, *end;
	uint64_t v = 0, lim;
	bool neg;
	if (t == NULL || t->type != ZH_JT_NUMBER)
		return -EINVAL;
	if (t->real)
		return -EDOM;
	p = doc->src + t->start;
	end = p + t->len;
	neg = *p == '-';
	p += neg;
	lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	for (; p < end; p++) {
		unsigned d = (unsigned)(*p - '0');
		if (v > (lim - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	*out = neg ? (v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v) : (int64_t)v;
	return 0;
}

/* Decimal digits kept for strtod: the exact value of a double's rounding boundary has at
 * most 767 significant digits, so the first 790 digits plus one sticky digit (1 if any
 * dropped digit was non-zero) round exactly as the full text does. */
enum { KEEP_DIGITS = 790, EXP_CLAMP = 100000000 };

/* The number as a decimal integer mantissa (significant digits, leading zeros dropped),
 * its count and a power of ten, parsed once; both conversions below start from it. */
struct dec {
	char digits[KEEP_DIGITS + 1];
	int ndig;	  /* digits kept, the sticky one included */
	long exp10;	  /* value = 0.digits... scaled: mantissa * 10^exp10 */
	uint64_t m;	  /* the first up-to-19 significant digits as an integer */
	int mdig;	  /* how many went into m */
	bool neg, sticky;
};

static void decimal(const char *p, const char *end, struct dec *d)
{
	long exp = 0, after_point = 0, dropped = 0;
	bool point = false, seen = false;
	d->ndig = d->mdig = 0;
	d->m = 0;
	d->exp10 = 0;
	d->sticky = false;
	d->neg = *p == '-';
	p += d->neg;
	for (; p < end && (*p == '.' || digit((uchar)*p)); p++) {
		if (*p == '.') {
			point = true;
			continue;
		}
		if (point)
			after_point++;
		if (*p == '0' && !seen)
			continue;
		seen = true;
		if (d->ndig < KEEP_DIGITS) {
			d->digits[d->ndig++] = *p;
			if (d->mdig < 19) {
				d->m = d->m * 10 + (uint64_t)(*p - '0');
				d->mdig++;
			}
		} else {
			dropped++;
			d->sticky |= *p != '0';
		}
	}
	if (p < end) { /* the exponent: saturate, far beyond where doubles end */
		bool eneg;
		p++;
		eneg = *p == '-';
		p += *p == '+' || *p == '-';
		for (; p < end; p++)
			if (exp < EXP_CLAMP)
				exp = exp * 10 + (*p - '0');
		if (eneg)
			exp = -exp;
	}
	d->exp10 = exp - after_point + dropped;
}

int zh_jdoc_double(const zh_jdoc_t *doc, uint32_t i, double *out)
{
	static const double pow10[23] = {1e0,  1e1,  1e2,  1e3,	 1e4,  1e5,  1e6,  1e7,
					 1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
					 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
	const zh_jtok_t *t = tok_at(doc, i);
	struct dec d;
	char text[KEEP_DIGITS + 32];
	double v;
	int n;
	if (t == NULL || t->type != ZH_JT_NUMBER)
		return -EINVAL;
	decimal(doc->src + t->start, doc->src + t->start + t->len, &d);
	if (d.ndig == 0) {
		*out = d.neg ? -0.0 : 0.0;
		return 0;
	}
	/* Clinger's fast path: a mantissa below 2^53 and a power of ten up to 22 are both
	 * exact doubles, so one IEEE multiply or divide is correctly rounded */
	if (d.ndig == d.mdig && d.m < (1ull << 53) && d.exp10 >= -22 && d.exp10 <= 22) {
		v = (double)d.m;
		v = d.exp10 < 0 ? v / pow10[-d.exp10] : v * pow10[d.exp10];
		*out = d.neg ? -v : v;
		return 0;
	}
	/* otherwise glibc's strtod, correctly rounded, on a bounded canonical copy: the digits
	 * as an integer and an exponent, so no locale decimal point is involved */
	if (d.sticky)
		d.digits[d.ndig++] = '1', d.exp10--;
	n = snprintf(text, sizeof text, "%s%.*se%ld", d.neg ? "-" : "", d.ndig, d.digits,
		     d.exp10);
	if (n < 0 || (size_t)n >= sizeof text)
		return -EINVAL; /* cannot happen: the text is bounded above */
	v = strtod(text, NULL);
	*out = v;
	return isinf(v) ? -ERANGE : 0;
}

int zh_jdoc_bool(const zh_jdoc_t *doc, uint32_t i, int *out)
{
	int ty = zh_jdoc_type(doc, i);
	if (ty != ZH_JT_TRUE && ty != ZH_JT_FALSE)
		return -EINVAL;
	*out = ty == ZH_JT_TRUE;
	return 0;
}

int zh_jdoc_is_null(const zh_jdoc_t *doc, uint32_t i)
{
	return zh_jdoc_type(doc, i) == ZH_JT_NULL;
}
