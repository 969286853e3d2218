/* json.c — the JSON writer: values encoded straight into the connection's send area.
 *
 * The writer holds a window [p, end) of free send-area bytes and encodes into it; nothing is
 * built elsewhere and copied later. json_sync() queues what was written (one iovec,
 * coalesced with the previous part when adjacent) and gives the window up, so that any other
 * body write keeps its place in order (the core calls it, as the response's pending writer,
 * before any other body byte is queued). When the window is too small, refill() syncs and asks
 * response.c for a new one: if the send area is full the response spills to the socket
 * (chunked), so a document of any size costs at most the connection's fixed buffers.
 *
 * Strings: runs of bytes that need no escaping are found 16 at a time (SSE2) and copied
 * with one memcpy; only quotes, backslashes, controls and non-ASCII bytes take the slow
 * path, where UTF-8 is validated (see utf8_scan). Doubles: shortest round-trip text (dtoa.c).
 */
#include "ext.h"
#include "dtoa.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#if defined(__SSE2__) && !defined(ZH_NO_SIMD)
#include <emmintrin.h>
#endif

enum { DEPTH_MAX = 64, ROOM_MIN = 64 };

/* The writer's state lives in the response's pending-writer storage (zh_resp_writer_begin),
 * the only place the core knows it by: the ops below. It encodes into [p, end), a window of
 * the send area whose bytes are queued by json_sync(). nest has one bit per open level
 * (1: object). */
struct zh_json {
	zh_response_t *resp;
	char *start, *p, *end;
	uint64_t nest;
	uint8_t depth;
	bool comma;	/* a value (or key) came before at this level */
	bool want_key;	/* inside an object, a key is due */
	bool done;	/* the top-level value is complete */
	bool active;	/* zh_json_begin was called for this response */
	unsigned flags;
	int err;
};
_Static_assert(sizeof(struct zh_json) <= ZH_WRITER_STATE_SIZE, "the writer fits its storage");

static void set_err(struct zh_json *j, int err)
{
	if (!j->err)
		j->err = err;
}

/* The core calls this before it queues any other body byte, when a handler call returns
 * and when the response ends: what the window holds is queued, in order. */
static void json_sync(zh_response_t *resp, void *state)
{
	struct zh_json *j = state;
	char *from = j->start, *to = j->p;
	/* the window is given up first: committing may run a body filter, which writes, and
	 * zh_resp_window_commit's gate calls this again (with nothing held, then) */
	j->start = j->p = j->end = NULL;
	if (to != from)
		zh_resp_window_commit(resp, from, to);
}

/* An unfinished document (final) or an erroneous one fails the response. */
static int json_check(zh_response_t *resp, void *state, int final)
{
	const struct zh_json *j = state;
	(void)resp;
	if (j->err)
		return j->err;
	return final && !j->done ? -EINVAL : 0;
}

/* Bytes encoded but not yet queued: zh_resp_body_len() counts them. */
static uint64_t json_held(const zh_response_t *resp, const void *state)
{
	const struct zh_json *j = state;
	(void)resp;
	return (uint64_t)(j->p - j->start);
}

static const zh_writer_ops_t json_ops = {.sync = json_sync, .check = json_check,
					 .held = json_held};

/* A window of at least n bytes (n <= ROOM_MIN... or whatever the caller needs). */
static bool refill(struct zh_json *j, size_t n)
{
	char *p, *end;
	int r;
	json_sync(j->resp, j);
	r = zh_resp_window(j->resp, n < ROOM_MIN ? ROOM_MIN : n, &p, &end);
	if (r < 0) {
		set_err(j, r);
		return false;
	}
	j->start = j->p = p;
	j->end = end;
	return true;
}

static inline bool room(struct zh_json *j, size_t n)
{
	return (size_t)(j->end - j->p) >= n || refill(j, n);
}

/* Checks that a value may come here, reserves n bytes for it and writes the separator. */
static bool value_begin(struct zh_json *j, size_t n)
{
	if (ZH__UNLIKELY(j->err))
		return false;
	if (ZH__UNLIKELY(j->want_key || j->done || !j->active)) {
		set_err(j, -EINVAL);
		return false;
	}
	if (!room(j, n + 1))
		return false;
	if (j->comma)
		*j->p++ = ',';
	return true;
}

static bool in_object(const struct zh_json *j)
{
	return j->depth && (j->nest >> (j->depth - 1) & 1);
}

static void value_end(struct zh_json *j)
{
	if (j->depth == 0) {
		j->done = true;
		j->want_key = false; /* a closed top-level object awaits no key: "{}\"k\":" */
		return;
	}
	j->comma = true;
	j->want_key = in_object(j);
}

/* ---- numbers ------------------------------------------------------------------------------- */

static const char digit_pairs[201] = "00010203040506070809101112131415161718192021222324"
				     "25262728293031323334353637383940414243444546474849"
				     "50515253545556575859606162636465666768697071727374"
				     "75767778798081828384858687888990919293949596979899";

static char *put_u64(char *p, uint64_t v)
{
	char buf[20], *q = buf + sizeof buf;
	size_t n;
	while (v >= 100) {
		q -= 2;
		memcpy(q, digit_pairs + 2 * (v % 100), 2);
		v /= 100;
	}
	if (v >= 10) {
		q -= 2;
		memcpy(q, digit_pairs + 2 * v, 2);
	} else {
		*--q = (char)('0' + v);
	}
	n = (size_t)(buf + sizeof buf - q);
	memcpy(p, q, n);
	return p + n;
}

void zh_json_u64(zh_json_t *j, uint64_t v)
{
	if (!value_begin(j, 20))
		return;
	j->p = put_u64(j->p, v);
	value_end(j);
}

void zh_json_i64(zh_json_t *j, int64_t v)
{
	if (!value_begin(j, 21))
		return;
	if (v < 0) {
		*j->p++ = '-';
		j->p = put_u64(j->p, (uint64_t)0 - (uint64_t)v); /* INT64_MIN too */
	} else {
		j->p = put_u64(j->p, (uint64_t)v);
	}
	value_end(j);
}

/* Doubles with at most three decimals and |v| < 2^40 (prices, measurements: the common case)
 * without the general algorithm. The decimal m / 10^k is v's shortest text if it reads back
 * as v (a correctly rounded division, like strtod's), trying k = 0, 1, 2, 3 in turn: below
 * 2^40 an ulp is under 10^-3 / 4, so no other decimal with k places can read back as v, and
 * the first k that works has the fewest digits. Anything else goes to zh__dtoa. */
static char *put_double_fast(char *p, double v)
{
	static const double scale[4] = {1, 10, 100, 1000};
	double a = v < 0 ? -v : v;
	if (!(a < 1099511627776.0) || a == 0)
		return NULL; /* large, NaN, or zero (whose sign zh__dtoa keeps) */
	for (int k = 0; k < 4; k++) {
		double x = a * scale[k];
		uint64_t m = (uint64_t)(x + 0.5);
		if ((double)m / scale[k] == a) {
			char digits[24], *q = put_u64(digits, m);
			size_t nd = (size_t)(q - digits);
			if (v < 0)
				*p++ = '-';
			if (nd <= (size_t)k) { /* 0.05: leading zeros after the point */
				*p++ = '0';
				*p++ = '.';
				for (size_t z = nd; z < (size_t)k; z++)
					*p++ = '0';
				memcpy(p, digits, nd);
				return p + nd;
			}
			memcpy(p, digits, nd - (size_t)k);
			p += nd - (size_t)k;
			if (k) {
				*p++ = '.';
				memcpy(p, digits + nd - k, (size_t)k);
				p += k;
			}
			return p;
		}
	}
	return NULL;
}

void zh_json_double(zh_json_t *j, double v)
{
	char *q;
	if (!isfinite(v)) {
		set_err(j, -EDOM); /* JSON has no NaN or Infinity */
		return;
	}
	if (!value_begin(j, ZH__DTOA_MAX))
		return;
	q = put_double_fast(j->p, v);
	j->p = q ? q : j->p + zh__dtoa(v, j->p);
	value_end(j);
}

static void literal(zh_json_t *j, const char *s, size_t n)
{
	if (!value_begin(j, n))
		return;
	memcpy(j->p, s, n);
	j->p += n;
	value_end(j);
}

void zh_json_bool(zh_json_t *j, int v)
{
	if (v)
		literal(j, "true", 4);
	else
		literal(j, "false", 5);
}

void zh_json_null(zh_json_t *j)
{
	literal(j, "null", 4);
}

/* ---- strings ------------------------------------------------------------------------------- */

static bool plain_byte(unsigned char c, bool html)
{
	return c >= 0x20 && c < 0x80 && c != '"' && c != '\\' &&
	       !(html && (c == '<' || c == '>' || c == '&'));
}

#if defined(__SSE2__) && !defined(ZH_NO_SIMD)
/* 16 bytes from s, of which only the first n (1..15 when short) are the string's. Within
 * one page an over-read cannot fault, so short strings cost one load; the bytes past n
 * are masked off by the caller. ASan would flag the over-read, so it is not instrumented. */
__attribute__((no_sanitize_address)) static __m128i load16(const unsigned char *s, size_t n)
{
	unsigned char tmp[16];
	if (n >= 16 || ((uintptr_t)s & 4095) <= 4096 - 16)
		return _mm_loadu_si128((const __m128i *)(const void *)s);
	memcpy(tmp, s, n);
	return _mm_loadu_si128((const __m128i *)(const void *)tmp);
}

/* Bit i set: byte i needs the slow path (control, non-ASCII, '"', '\\', or HTML-special).
 * Signed compare: bytes >= 0x80 are negative, so they count as below ' '. */
static inline __attribute__((always_inline)) unsigned special_mask(__m128i v, bool html)
{
	__m128i bad = _mm_or_si128(_mm_cmplt_epi8(v, _mm_set1_epi8(0x20)),
				   _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')),
						_mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))));
	if (html)
		bad = _mm_or_si128(bad, _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('<')),
						     _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('>')),
								  _mm_cmpeq_epi8(v, _mm_set1_epi8('&')))));
	return (unsigned)_mm_movemask_epi8(bad);
}
#endif

/* Copies the run of plain bytes at the start of [*s, end) into the window (which has at
 * least 24 bytes free), as far as the window allows. */
static inline void copy_plain(struct zh_json *j, const unsigned char **s, const unsigned char *end,
			      bool html)
{
	size_t left = (size_t)(end - *s), room_left = (size_t)(j->end - j->p) - 8;
#if defined(__SSE2__) && !defined(ZH_NO_SIMD)
	/* 16 at a time: classify, store all 16 (the window has room), advance past the plain
	 * ones; the store's extra bytes are overwritten next */
	while (left && room_left >= 16) {
		__m128i v = load16(*s, left);
		unsigned mask = special_mask(v, html) | (left < 16 ? ~0u << left : 0u);
		size_t n = mask ? (size_t)__builtin_ctz(mask) : 16;
		_mm_storeu_si128((__m128i *)(void *)j->p, v);
		j->p += n;
		*s += n;
		left -= n;
		room_left -= n;
		if (n < 16)
			return;
	}
#endif
	while (left && room_left && plain_byte(**s, html)) {
		*j->p++ = (char)*(*s)++;
		left--;
		room_left--;
	}
}

/* The UTF-8 sequence at s (at most n bytes), per RFC 3629 (Unicode table 3-7: no overlongs,
 * no surrogates, nothing above U+10FFFF). Returns its length with *ok set and *cp decoded,
 * or, when it is ill-formed, the length of its maximal subpart (at least 1) with *ok false:
 * each maximal subpart becomes one U+FFFD, as Unicode recommends (and Python decodes). */
static size_t utf8_scan(const unsigned char *s, size_t n, uint32_t *cp, bool *ok)
{
	unsigned char c = s[0], lo = 0x80, hi = 0xbf;
	size_t len;
	uint32_t v;
	*ok = false;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2, v = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3, v = c & 0x0f;
		if (c == 0xe0)
			lo = 0xa0; /* overlong below */
		else if (c == 0xed)
			hi = 0x9f; /* surrogates above */
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4, v = c & 0x07;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f; /* above U+10FFFF */
	} else {
		return 1;
	}
	for (size_t i = 1; i < len; i++) {
		if (i >= n || s[i] < lo || s[i] > hi)
			return i;
		v = v << 6 | (s[i] & 0x3f);
		lo = 0x80, hi = 0xbf;
	}
	*cp = v;
	*ok = true;
	return len;
}

static char *put_u_escape(char *p, unsigned v)
{
	static const char hex[] = "0123456789abcdef";
	memcpy(p, "\\u", 2);
	p[2] = hex[v >> 12 & 15];
	p[3] = hex[v >> 8 & 15];
	p[4] = hex[v >> 4 & 15];
	p[5] = hex[v & 15];
	return p + 6;
}

/* One byte or sequence that is not plain; at least 6 bytes of room. Returns the input
 * bytes consumed, 0 on error. */
static size_t escape_one(struct zh_json *j, const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	bool html = j->flags & ZH_JSON_ESCAPE_HTML, ok;
	uint32_t cp;
	size_t len;
	if (c < 0x80) {
		const char *short_esc = NULL;
		switch (c) {
		case '"': short_esc = "\\\""; break;
		case '\\': short_esc = "\\\\"; break;
		case '\n': short_esc = "\\n"; break;
		case '\r': short_esc = "\\r"; break;
		case '\t': short_esc = "\\t"; break;
		case '\b': short_esc = "\\b"; break;
		case '\f': short_esc = "\\f"; break;
		}
		if (short_esc) {
			memcpy(j->p, short_esc, 2);
			j->p += 2;
		} else if (c < 0x20 || (html && (c == '<' || c == '>' || c == '&'))) {
			j->p = put_u_escape(j->p, c);
		} else {
			*j->p++ = (char)c;
		}
		return 1;
	}
	len = utf8_scan(s, n, &cp, &ok);
	if (!ok) {
		if (j->flags & ZH_JSON_STRICT_UTF8) {
			set_err(j, -EILSEQ);
			return 0;
		}
		memcpy(j->p, "\xef\xbf\xbd", 3); /* U+FFFD */
		j->p += 3;
		return len;
	}
	if (html && (cp == 0x2028 || cp == 0x2029)) {
		/* valid JSON, but line terminators in JavaScript before ES2019 */
		j->p = put_u_escape(j->p, cp);
		return len;
	}
	memcpy(j->p, s, len);
	j->p += len;
	return len;
}

static __attribute__((noinline)) void put_string_slow(struct zh_json *j, const char *str,
						     size_t len)
{
	const unsigned char *s = (const unsigned char *)str, *end = s + len;
	bool html = j->flags & ZH_JSON_ESCAPE_HTML;
	*j->p++ = '"';
	for (;;) {
		if ((size_t)(j->end - j->p) < 24 && !refill(j, ROOM_MIN))
			return;
		copy_plain(j, &s, end, html);
		if (s == end)
			break;
		if ((size_t)(j->end - j->p) >= 8 && !plain_byte(*s, html)) {
			size_t used = escape_one(j, s, (size_t)(end - s));
			if (used == 0)
				return;
			s += used;
		}
	}
	if (room(j, 1))
		*j->p++ = '"';
}

static inline void put_string(struct zh_json *j, const char *str, size_t len)
{
#if defined(__SSE2__) && !defined(ZH_NO_SIMD)
	/* most keys and many values: up to 16 plain bytes, one load, one store */
	if (len - 1 < 16 && (size_t)(j->end - j->p) >= 34) { /* 1..16: never a NULL load */
		__m128i v = load16((const unsigned char *)str, len);
		unsigned mask = special_mask(v, j->flags & ZH_JSON_ESCAPE_HTML) | (~0u << len);
		if ((size_t)__builtin_ctz(mask) == len) {
			j->p[0] = '"';
			_mm_storeu_si128((__m128i *)(void *)(j->p + 1), v);
			j->p[len + 1] = '"';
			j->p += len + 2;
			return;
		}
	}
#endif
	put_string_slow(j, str, len);
}

void zh_json_str(zh_json_t *j, const char *s, size_t len)
{
	if (!value_begin(j, 2))
		return;
	put_string(j, s, len);
	value_end(j);
}

void zh_json_key(zh_json_t *j, const char *key, size_t len)
{
	if (ZH__UNLIKELY(!j->want_key || j->err)) {
		set_err(j, -EINVAL); /* not inside an object, or a key is already waiting */
		return;
	}
#if defined(__SSE2__) && !defined(ZH_NO_SIMD)
	/* the usual key: short and plain; separator, quotes and colon around one 16-byte store */
	if (len - 1 < 16 && (size_t)(j->end - j->p) >= 36) {
		__m128i v = load16((const unsigned char *)key, len);
		unsigned mask = special_mask(v, j->flags & ZH_JSON_ESCAPE_HTML) | (~0u << len);
		if ((size_t)__builtin_ctz(mask) == len) {
			char *p = j->p + j->comma;
			j->p[0] = ',';
			p[0] = '"';
			_mm_storeu_si128((__m128i *)(void *)(p + 1), v);
			memcpy(p + 1 + len, "\":", 2);
			j->p = p + len + 3;
			j->want_key = j->comma = false;
			return;
		}
	}
#endif
	if (!room(j, 3))
		return;
	if (j->comma)
		*j->p++ = ',';
	put_string(j, key, len);
	if (j->err || !room(j, 1)) /* a failed string: no ':' after it, no second window */
		return;
	*j->p++ = ':';
	j->want_key = false;
	j->comma = false;
}

void zh_json_raw(zh_json_t *j, const char *json, size_t len)
{
	if (!value_begin(j, 1))
		return;
	while (len) {
		size_t n = (size_t)(j->end - j->p);
		if (n == 0) {
			if (!refill(j, ROOM_MIN))
				return;
			continue;
		}
		n = n < len ? n : len;
		memcpy(j->p, json, n);
		j->p += n;
		json += n;
		len -= n;
	}
	value_end(j);
}

/* ---- containers ---------------------------------------------------------------------------- */

static void open_container(zh_json_t *j, char c, bool object)
{
	if (j->depth == DEPTH_MAX) {
		set_err(j, -E2BIG);
		return;
	}
	if (!value_begin(j, 1))
		return;
	*j->p++ = c;
	j->depth++;
	if (object)
		j->nest |= 1ull << (j->depth - 1);
	else
		j->nest &= ~(1ull << (j->depth - 1));
	j->comma = false;
	j->want_key = object;
}

void zh_json_obj(zh_json_t *j)
{
	open_container(j, '{', true);
}

void zh_json_arr(zh_json_t *j)
{
	open_container(j, '[', false);
}

void zh_json_end(zh_json_t *j)
{
	bool object;
	if (j->err)
		return;
	object = in_object(j);
	if (j->depth == 0 || (object && !j->want_key)) {
		set_err(j, -EINVAL); /* nothing open, or a key without its value */
		return;
	}
	if (!room(j, 1))
		return;
	*j->p++ = object ? '}' : ']';
	j->depth--;
	value_end(j);
}

/* ---- lifecycle ---------------------------------------------------------------------------- */

zh_json_t *zh_json_begin(zh_response_t *resp, unsigned flags)
{
	struct zh_json *j = zh_resp_writer(resp, &json_ops);
	int r;
	if (j != NULL) {
		set_err(j, -EINVAL); /* one document per response */
		return j;
	}
	if ((j = zh_resp_writer_begin(resp, &json_ops)) == NULL)
		return NULL; /* another pending writer holds this response */
	memset(j, 0, sizeof *j);
	j->resp = resp;
	j->flags = flags;
	j->active = true;
	/* also after zh_write_header(201): a JSON reply of any status says it is JSON */
	if ((r = zh__resp_content_type(resp, "application/json")) < 0)
		set_err(j, r);
	return j;
}

zh_json_t *zh_json_get(zh_response_t *resp)
{
	return zh_resp_writer(resp, &json_ops);
}

int zh_json_error(const zh_json_t *j)
{
	return j->err;
}
