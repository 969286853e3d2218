/* fuzz_json_read.c — libFuzzer target for the JSON reader, zh_jdoc_* (src/json_read.c, linked
 * as the library's object), against a reference parser written here the plain way: recursive
 * descent, one byte at a time, UTF-8 decoded to a code point and then judged by its value
 * (overlong, surrogate, above U+10FFFF), where the reader under test uses table 3-7's byte
 * ranges and a 16-byte SIMD scan.
 *
 * Input: byte 0: bits 0-3 max_depth (0: the default, 64), bits 4-7 the token array's size
 * (0: 4096, else 2 * n); then the document. The document is copied to a heap block of
 * exactly its length, so any read past it is an ASan report.
 *
 * Checked:
 *  - accept/reject agree, and so does the error class: -EINVAL (not JSON), -ELOOP (deeper
 *    than max_depth), -E2BIG (more tokens than the array) for the first fault in document
 *    order; an error's offset lies within the document;
 *  - for an accepted document, the tree read back through the accessors only (type, count,
 *    first/next, zh_jdoc_string, raw) equals the reference's: same structure, keys and
 *    strings byte for byte after unescaping, numbers as their text; each token's next
 *    lies past it and within its parent;
 *  - every number: zh_jdoc_i64 as a plain overflow-checked conversion of the text says
 *    (-EDOM for a fraction or exponent), zh_jdoc_double bit-identical to glibc's strtod on a
 *    NUL-terminated copy (-ERANGE exactly when that is infinite);
 *  - every string: zh_jdoc_string's needed length with a buffer too small, zh_jdoc_str_eq
 *    against its own text (1) and a one-byte-longer text (0); every object member:
 *    zh_jdoc_member_n finds the first member with an equal key;
 *  - and against jansson (libjansson-dev), an established parser: accept/reject and every
 *    value read through the accessors, save where jansson refuses what RFC 8259 allows
 *    (see check_against_jansson).
 */
#include <zerohttp.h>

#include "fuzz_common.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>

#include <jansson.h>

/* ---- a growable byte buffer ---------------------------------------------------------------- */

struct buf {
	uint8_t *p;
	size_t len, cap;
};

static void put(struct buf *b, const void *data, size_t n)
{
	if (n == 0)
		return;
	if (b->len + n > b->cap) {
		b->cap = (b->len + n) * 2 + 64;
		b->p = realloc(b->p, b->cap);
		CHECK(b->p != NULL, "out of memory");
	}
	memcpy(b->p + b->len, data, n);
	b->len += n;
}

static void put_byte(struct buf *b, uint8_t c)
{
	put(b, &c, 1);
}

static void put_len(struct buf *b, size_t n)
{
	uint32_t v = (uint32_t)n;
	put(b, &v, sizeof v);
}

static void put_utf8(struct buf *b, uint32_t cp)
{
	uint8_t u[4];
	size_t n;
	if (cp < 0x80)
		u[0] = (uint8_t)cp, n = 1;
	else if (cp < 0x800)
		u[0] = (uint8_t)(0xc0 | cp >> 6), u[1] = (uint8_t)(0x80 | (cp & 0x3f)), n = 2;
	else if (cp < 0x10000)
		u[0] = (uint8_t)(0xe0 | cp >> 12), u[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3f)),
		u[2] = (uint8_t)(0x80 | (cp & 0x3f)), n = 3;
	else
		u[0] = (uint8_t)(0xf0 | cp >> 18), u[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3f)),
		u[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3f)), u[3] = (uint8_t)(0x80 | (cp & 0x3f)),
		n = 4;
	put(b, u, n);
}

/* ---- the reference parser ------------------------------------------------------------------ */

/* The canonical form both sides write: O members... o | A elements... a | S len bytes |
 * N len text | T | F | Z. Keys are S items. */
struct ref {
	const uint8_t *s;
	size_t n, i;
	unsigned depth, max_depth;
	size_t tokens, cap;
	int err;
	struct buf out;
};

static bool r_fail(struct ref *r, int err)
{
	r->err = err;
	return false;
}

static void r_ws(struct ref *r)
{
	while (r->i < r->n && (r->s[r->i] == ' ' || r->s[r->i] == '\t' || r->s[r->i] == '\n' ||
			       r->s[r->i] == '\r'))
		r->i++;
}

static int r_hex(struct ref *r)
{
	int v = 0;
	if (r->n - r->i < 4)
		return -1;
	for (int k = 0; k < 4; k++) {
		uint8_t c = r->s[r->i++];
		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= c - '0';
		else if (c >= 'a' && c <= 'f')
			v |= c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			v |= c - 'A' + 10;
		else
			return -1;
	}
	return v;
}

/* A string at r->i ('"'): its unescaped bytes go to out (S len bytes). */
static bool r_string(struct ref *r, struct buf *out)
{
	struct buf s = {0};
	bool ok = false;
	r->i++;
	for (;;) {
		uint8_t c;
		if (r->i >= r->n)
			goto done;
		c = r->s[r->i];
		if (c == '"') {
			r->i++;
			break;
		}
		if (c < 0x20)
			goto done;
		if (c == '\\') {
			const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t", *k;
			if (++r->i >= r->n)
				goto done;
			c = r->s[r->i++];
			if (c == 'u') {
				int hi = r_hex(r), lo;
				if (hi < 0)
					goto done;
				if (hi >= 0xdc00 && hi <= 0xdfff)
					goto done;
				if (hi >= 0xd800 && hi <= 0xdbff) {
					if (r->n - r->i < 2 || r->s[r->i] != '\\' || r->s[r->i + 1] != 'u')
						goto done;
					r->i += 2;
					lo = r_hex(r);
					if (lo < 0xdc00 || lo > 0xdfff)
						goto done;
					put_utf8(&s, 0x10000 + (((uint32_t)hi - 0xd800) << 10) +
							     ((uint32_t)lo - 0xdc00));
				} else
					put_utf8(&s, (uint32_t)hi);
				continue;
			}
			k = c ? strchr(from, c) : NULL;
			if (k == NULL)
				goto done;
			put_byte(&s, (uint8_t)to[k - from]);
			continue;
		}
		if (c < 0x80) {
			put_byte(&s, c);
			r->i++;
			continue;
		}
		{
			/* decode by the lead byte's bit pattern, then judge the value */
			int len = (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
			static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
			uint32_t cp;
			if (len == 0 || r->n - r->i < (size_t)len)
				goto done;
			cp = c & (0x7f >> len);
			for (int k = 1; k < len; k++) {
				uint8_t d = r->s[r->i + (size_t)k];
				if ((d & 0xc0) != 0x80)
					goto done;
				cp = cp << 6 | (d & 0x3f);
			}
			if (cp < min[len] || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
				goto done;
			put(&s, r->s + r->i, (size_t)len);
			r->i += (size_t)len;
		}
	}
	put_byte(out, 'S');
	put_len(out, s.len);
	put(out, s.p, s.len);
	ok = true;
done:
	free(s.p);
	return ok ? true : r_fail(r, -EINVAL);
}

static bool r_digits(struct ref *r)
{
	size_t start = r->i;
	while (r->i < r->n && r->s[r->i] >= '0' && r->s[r->i] <= '9')
		r->i++;
	return r->i > start;
}

static bool r_number(struct ref *r)
{
	size_t start = r->i;
	if (r->s[r->i] == '-')
		r->i++;
	if (r->i < r->n && r->s[r->i] == '0')
		r->i++;
	else if (r->i >= r->n || r->s[r->i] < '1' || r->s[r->i] > '9' || !r_digits(r))
		return r_fail(r, -EINVAL);
	if (r->i < r->n && r->s[r->i] == '.' && (r->i++, !r_digits(r)))
		return r_fail(r, -EINVAL);
	if (r->i < r->n && (r->s[r->i] == 'e' || r->s[r->i] == 'E')) {
		r->i++;
		if (r->i < r->n && (r->s[r->i] == '+' || r->s[r->i] == '-'))
			r->i++;
		if (!r_digits(r))
			return r_fail(r, -EINVAL);
	}
	/* "01": no leading zeros (the next byte cannot continue any value either) */
	if (r->i < r->n && r->s[r->i] >= '0' && r->s[r->i] <= '9')
		return r_fail(r, -EINVAL);
	put_byte(&r->out, 'N');
	put_len(&r->out, r->i - start);
	put(&r->out, r->s + start, r->i - start);
	return true;
}

static bool r_value(struct ref *r);

/* A token is taken when a value or a key starts; the array's size is the limit. */
static bool r_token(struct ref *r)
{
	if (r->tokens == r->cap)
		return r_fail(r, -E2BIG);
	r->tokens++;
	return true;
}

static bool r_container(struct ref *r, bool obj)
{
	uint8_t close = obj ? '}' : ']';
	if (++r->depth > r->max_depth)
		return r_fail(r, -ELOOP);
	r->i++;
	put_byte(&r->out, obj ? 'O' : 'A');
	r_ws(r);
	if (r->i < r->n && r->s[r->i] == close) {
		r->i++;
		goto end;
	}
	for (;;) {
		if (obj) {
			r_ws(r);
			if (r->i >= r->n || r->s[r->i] != '"')
				return r_fail(r, -EINVAL);
			if (!r_token(r) || !r_string(r, &r->out))
				return false;
			r_ws(r);
			if (r->i >= r->n || r->s[r->i] != ':')
				return r_fail(r, -EINVAL);
			r->i++;
		}
		if (!r_value(r))
			return false;
		r_ws(r);
		if (r->i >= r->n)
			return r_fail(r, -EINVAL);
		if (r->s[r->i] == close) {
			r->i++;
			break;
		}
		if (r->s[r->i] != ',')
			return r_fail(r, -EINVAL);
		r->i++;
	}
end:
	r->depth--;
	put_byte(&r->out, obj ? 'o' : 'a');
	return true;
}

static bool r_literal(struct ref *r, const char *word, uint8_t tag)
{
	size_t n = strlen(word);
	if (r->n - r->i < n || memcmp(r->s + r->i, word, n) != 0)
		return r_fail(r, -EINVAL);
	r->i += n;
	put_byte(&r->out, tag);
	return true;
}

static bool r_value(struct ref *r)
{
	uint8_t c;
	r_ws(r);
	if (r->i >= r->n)
		return r_fail(r, -EINVAL);
	c = r->s[r->i];
	if (c != '{' && c != '[' && c != '"' && c != 't' && c != 'f' && c != 'n' && c != '-' &&
	    !(c >= '0' && c <= '9'))
		return r_fail(r, -EINVAL);
	if (!r_token(r))
		return false;
	switch (c) {
	case '{':
		return r_container(r, true);
	case '[':
		return r_container(r, false);
	case '"':
		return r_string(r, &r->out);
	case 't':
		return r_literal(r, "true", 'T');
	case 'f':
		return r_literal(r, "false", 'F');
	case 'n':
		return r_literal(r, "null", 'Z');
	default:
		return r_number(r);
	}
}

static int ref_parse(struct ref *r)
{
	if (!r_value(r))
		return r->err;
	r_ws(r);
	if (r->i != r->n)
		return -EINVAL;
	return (int)r->tokens;
}

/* ---- the reader under test, read back through its accessors -------------------------------- */

static void check_number(const zh_jdoc_t *d, uint32_t i)
{
	zh_slice_t raw = zh_jdoc_raw(d, i);
	char *text = malloc(raw.len + 1);
	bool real = memchr(raw.ptr, '.', raw.len) || memchr(raw.ptr, 'e', raw.len) ||
		    memchr(raw.ptr, 'E', raw.len);
	int64_t got = 0, want = 0;
	double dg, dw;
	int r;
	CHECK(text != NULL, "out of memory");
	memcpy(text, raw.ptr, raw.len);
	text[raw.len] = '\0';
	r = zh_jdoc_i64(d, i, &got);
	if (real)
		CHECK(r == -EDOM, "%s: i64 %d, expected -EDOM", text, r);
	else {
		/* an independent overflow-checked conversion: negative accumulation */
		bool neg = text[0] == '-', over = false;
		for (const char *p = text + neg; *p; p++)
			over |= __builtin_mul_overflow(want, 10, &want) ||
				__builtin_sub_overflow(want, *p - '0', &want);
		if (!neg && !over)
			over = __builtin_mul_overflow(want, -1, &want);
		if (over)
			CHECK(r == -ERANGE, "%s: i64 %d, expected -ERANGE", text, r);
		else
			CHECK(r == 0 && got == want, "%s: i64 %d %lld, expected %lld", text, r,
			      (long long)got, (long long)want);
	}
	dw = strtod(text, NULL);
	r = zh_jdoc_double(d, i, &dg);
	CHECK(r == (isinf(dw) ? -ERANGE : 0), "%s: double returned %d", text, r);
	CHECK(memcmp(&dg, &dw, sizeof dg) == 0, "%s: double %.17g, strtod %.17g", text, dg, dw);
	free(text);
}

/* String token i into out (S len bytes), with its accessor checks. */
static void put_string(const zh_jdoc_t *d, uint32_t i, struct buf *out)
{
	ssize_t n = zh_jdoc_string(d, i, NULL, 0), m;
	char *s, small[4];
	CHECK(n >= 0 && (size_t)n <= zh_jdoc_raw(d, i).len, "string %u: needed length %zd", i, n);
	s = malloc((size_t)n + 2);
	CHECK(s != NULL, "out of memory");
	m = zh_jdoc_string(d, i, s, (size_t)n + 1);
	CHECK(m == n && s[n] == '\0', "string %u: %zd then %zd", i, n, m);
	m = zh_jdoc_string(d, i, small, sizeof small);
	CHECK(m == n, "string %u: %zd with a small buffer, %zd", i, m, n);
	if (n < (ssize_t)sizeof small)
		CHECK(memcmp(small, s, (size_t)n + 1) == 0, "string %u: small copy differs", i);
	CHECK(zh_jdoc_str_eq(d, i, s, (size_t)n) == 1, "string %u: not equal to itself", i);
	s[n] = 'x';
	CHECK(zh_jdoc_str_eq(d, i, s, (size_t)n + 1) == 0, "string %u: equal to a longer one", i);
	if (n > 0)
		CHECK(zh_jdoc_str_eq(d, i, s, (size_t)n - 1) == 0, "string %u: equal to a prefix", i);
	put_byte(out, 'S');
	put_len(out, (size_t)n);
	put(out, s, (size_t)n);
	free(s);
}

static void walk(const zh_jdoc_t *d, uint32_t i, uint32_t limit, struct buf *out)
{
	int ty = zh_jdoc_type(d, i);
	uint32_t next = d->tok[i].next;
	CHECK(next > i && next <= limit, "token %u: next %u outside (%u, %u]", i, next, i, limit);
	switch (ty) {
	case ZH_JT_OBJECT:
	case ZH_JT_ARRAY: {
		uint32_t seen = 0;
		put_byte(out, ty == ZH_JT_OBJECT ? 'O' : 'A');
		for (uint32_t k = zh_jdoc_first(d, i); k != ZH_JDOC_NONE; k = zh_jdoc_next(d, i, k)) {
			seen++;
			if (ty == ZH_JT_ARRAY) {
				CHECK(zh_jdoc_at(d, i, seen - 1) == k, "array %u: element %u", i, seen - 1);
				walk(d, k, next, out);
				continue;
			}
			CHECK(zh_jdoc_type(d, k) == ZH_JT_STRING, "object %u: key %u", i, k);
			put_string(d, k, out);
			walk(d, k + 1, next, out);
			{
				/* member lookup finds the first member with this key */
				ssize_t n = zh_jdoc_string(d, k, NULL, 0);
				char *key = malloc((size_t)n + 1);
				uint32_t first = ZH_JDOC_NONE;
				CHECK(key != NULL, "out of memory");
				CHECK(zh_jdoc_string(d, k, key, (size_t)n + 1) == n, "key %u", k);
				for (uint32_t q = zh_jdoc_first(d, i); q <= k; q = zh_jdoc_next(d, i, q))
					if (zh_jdoc_str_eq(d, q, key, (size_t)n)) {
						first = q + 1;
						break;
					}
				CHECK(zh_jdoc_member_n(d, i, key, (size_t)n) == first,
				      "object %u: member lookup of key %u", i, k);
				free(key);
			}
		}
		CHECK(seen == zh_jdoc_count(d, i), "container %u: %u children, count %u", i, seen,
		      zh_jdoc_count(d, i));
		put_byte(out, ty == ZH_JT_OBJECT ? 'o' : 'a');
		break;
	}
	case ZH_JT_STRING:
		put_string(d, i, out);
		break;
	case ZH_JT_NUMBER: {
		zh_slice_t raw = zh_jdoc_raw(d, i);
		check_number(d, i);
		put_byte(out, 'N');
		put_len(out, raw.len);
		put(out, raw.ptr, raw.len);
		break;
	}
	case ZH_JT_TRUE:
		put_byte(out, 'T');
		break;
	case ZH_JT_FALSE:
		put_byte(out, 'F');
		break;
	case ZH_JT_NULL:
		put_byte(out, 'Z');
		break;
	default:
		fuzz_fail(__FILE__, __LINE__, "token %u: type %d", i, ty);
	}
}

/* ---- against jansson ---------------------------------------------------------------------- */

/* An established parser as a second reference (issue 13): jansson's json_loadb with
 * JSON_DECODE_ANY (any top-level value, as RFC 8259 allows) and JSON_ALLOW_NUL (\u0000 in
 * strings). The reader parses again with jansson's limits (2048 levels; a token array as long
 * as the text, which always suffices), then accept/reject must agree and an accepted
 * document must read the same, except where jansson refuses what RFC 8259 allows:
 *  - a number beyond its ranges (json_error_numeric_overflow: an integer outside long long,
 *    a real beyond DBL_MAX): then the reader, if it accepted, must report -ERANGE for some
 *    number (zh_jdoc_i64 of an integer, zh_jdoc_double of a real);
 *  - a key with \u0000 (json_error_null_byte_in_key) and a value nested deeper than its
 *    stack (json_error_stack_overflow, counting scalars as a level): not compared;
 * and where it accepts what RFC 8259 does not: a NUL byte right after a number or literal
 * ("true\0", "[0\0,1]"; see without_dropped_nuls): the reader must refuse it there and
 * read the text without it as jansson does.
 * Jansson keeps the last of duplicate keys, the reader's zh_jdoc_member the first: each
 * jansson member is compared with the reader's last member of that key. */
static bool has_out_of_range_number(const zh_jdoc_t *d)
{
	int64_t v;
	double x;
	for (uint32_t i = 0; i < d->ntok; i++)
		if (zh_jdoc_type(d, i) == ZH_JT_NUMBER &&
		    (d->tok[i].real ? zh_jdoc_double(d, i, &x) : zh_jdoc_i64(d, i, &v)) == -ERANGE)
			return true;
	return false;
}

static char *unescaped(const zh_jdoc_t *d, uint32_t i, size_t *len)
{
	ssize_t n = zh_jdoc_string(d, i, NULL, 0);
	char *s;
	CHECK(n >= 0, "token %u: string %zd", i, n);
	s = malloc((size_t)n + 1);
	CHECK(s != NULL, "out of memory");
	CHECK(zh_jdoc_string(d, i, s, (size_t)n + 1) == n, "token %u: string", i);
	*len = (size_t)n;
	return s;
}

static void same_as_jansson(const zh_jdoc_t *d, uint32_t i, const json_t *v);

static void same_object(const zh_jdoc_t *d, uint32_t i, const json_t *v)
{
	size_t distinct = 0;
	for (uint32_t k = zh_jdoc_first(d, i); k != ZH_JDOC_NONE; k = zh_jdoc_next(d, i, k)) {
		size_t len;
		char *key = unescaped(d, k, &len);
		bool last = true;
		for (uint32_t q = zh_jdoc_next(d, i, k); q != ZH_JDOC_NONE; q = zh_jdoc_next(d, i, q))
			last &= !zh_jdoc_str_eq(d, q, key, len);
		if (last) {
			const json_t *m = json_object_getn(v, key, len);
			CHECK(m != NULL, "object %u: key %u not in jansson's object", i, k);
			same_as_jansson(d, k + 1, m);
			distinct++;
		}
		free(key);
	}
	CHECK(distinct == json_object_size(v), "object %u: %zu keys, jansson %zu", i, distinct,
	      json_object_size(v));
}

static void same_number(const zh_jdoc_t *d, uint32_t i, const json_t *v)
{
	int64_t n;
	double x, want;
	if (json_is_integer(v)) {
		CHECK(!d->tok[i].real && zh_jdoc_i64(d, i, &n) == 0 &&
			      n == (int64_t)json_integer_value(v),
		      "number %u: jansson's integer %lld", i, (long long)json_integer_value(v));
		return;
	}
	CHECK(json_is_real(v) && d->tok[i].real, "number %u: jansson's type %d", i,
	      (int)json_typeof(v));
	want = json_real_value(v);
	CHECK(zh_jdoc_double(d, i, &x) == 0 && memcmp(&x, &want, sizeof x) == 0,
	      "number %u: %.17g, jansson's %.17g", i, x, want);
}

static void same_as_jansson(const zh_jdoc_t *d, uint32_t i, const json_t *v)
{
	switch (zh_jdoc_type(d, i)) {
	case ZH_JT_OBJECT:
		CHECK(json_is_object(v), "token %u: an object, jansson's type %d", i,
		      (int)json_typeof(v));
		same_object(d, i, v);
		return;
	case ZH_JT_ARRAY: {
		size_t at = 0;
		CHECK(json_is_array(v) && json_array_size(v) == zh_jdoc_count(d, i),
		      "token %u: an array of %u, jansson's type %d", i, zh_jdoc_count(d, i),
		      (int)json_typeof(v));
		for (uint32_t k = zh_jdoc_first(d, i); k != ZH_JDOC_NONE; k = zh_jdoc_next(d, i, k))
			same_as_jansson(d, k, json_array_get(v, at++));
		return;
	}
	case ZH_JT_STRING: {
		size_t len;
		char *s = unescaped(d, i, &len);
		CHECK(json_is_string(v) && json_string_length(v) == len &&
			      memcmp(json_string_value(v), s, len) == 0,
		      "string %u differs from jansson's", i);
		free(s);
		return;
	}
	case ZH_JT_NUMBER:
		same_number(d, i, v);
		return;
	case ZH_JT_TRUE:
	case ZH_JT_FALSE:
	case ZH_JT_NULL:
		CHECK(json_typeof(v) == (zh_jdoc_type(d, i) == ZH_JT_TRUE    ? JSON_TRUE
					 : zh_jdoc_type(d, i) == ZH_JT_FALSE ? JSON_FALSE
									     : JSON_NULL),
		      "token %u: a literal, jansson's type %d", i, (int)json_typeof(v));
		return;
	default:
		fuzz_fail(__FILE__, __LINE__, "token %u: type %d", i, zh_jdoc_type(d, i));
	}
}

/* Jansson's lexer takes one NUL byte right after a number or literal for the end of that
 * token and drops it ("[0\0,1]" is [0,1] to it). For a document jansson accepts and the
 * reader refuses at such a NUL, drops the NUL from copy and parses again, as often as that
 * applies; returns the last parse's result. */
static int without_dropped_nuls(zh_jdoc_t *d, char *copy, size_t *size, zh_jtok_t *tok,
				size_t cap, int n)
{
	size_t last = SIZE_MAX;
	while (n < 0 && (d->reason == ZH_JE_TRAILING || d->reason == ZH_JE_SYNTAX) &&
	       d->offset > 0 && d->offset < *size && copy[d->offset] == '\0' &&
	       d->offset != last && strchr("0123456789el", copy[d->offset - 1]) != NULL) {
		last = d->offset;
		memmove(copy + last, copy + last + 1, *size - last - 1);
		(*size)--;
		n = zh_jdoc_parse(d, copy, *size, tok, cap, 2048);
	}
	return n;
}

static void check_against_jansson(const char *doc, size_t size)
{
	zh_jtok_t *tok = malloc((size + 1) * sizeof *tok);
	char *copy = malloc(size ? size : 1);
	zh_jdoc_t d;
	json_error_t e;
	json_t *v;
	int n;
	CHECK(tok != NULL && copy != NULL, "out of memory");
	n = zh_jdoc_parse(&d, doc, size, tok, size + 1, 2048);
	v = json_loadb(doc, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
	if (v != NULL && n < 0) {
		memcpy(copy, doc, size);
		n = without_dropped_nuls(&d, copy, &size, tok, size + 1, n);
	}
	if (v == NULL && json_error_code(&e) == json_error_numeric_overflow) {
		CHECK(n < 0 || has_out_of_range_number(&d),
		      "jansson: %s; the reader accepted it with every number in range", e.text);
	} else if (v != NULL || (json_error_code(&e) != json_error_null_byte_in_key &&
				 json_error_code(&e) != json_error_stack_overflow)) {
		CHECK(n != -E2BIG, "%zu tokens do not hold a %zu-byte document", size + 1, size);
		CHECK((n > 0) == (v != NULL), "the reader %s (%s at %zu), jansson %s (%s at %d)",
		      n > 0 ? "accepts" : "refuses", n > 0 ? "-" : zh_jdoc_reason(d.reason),
		      n > 0 ? 0 : d.offset, v ? "accepts" : "refuses", v ? "-" : e.text,
		      v ? 0 : e.position);
		if (v != NULL)
			same_as_jansson(&d, 0, v);
	}
	json_decref(v);
	free(copy);
	free(tok);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned max_depth, cap;
	char *doc;
	zh_jtok_t *tok;
	zh_jdoc_t d;
	struct ref r = {0};
	struct buf got = {0};
	int n, want;
	if (size < 1)
		return 0;
	max_depth = data[0] & 15;
	cap = data[0] >> 4 ? 2u * (data[0] >> 4) : 4096;
	data++, size--;
	doc = malloc(size ? size : 1);
	tok = malloc(cap * sizeof *tok);
	CHECK(doc && tok, "out of memory");
	memcpy(doc, data, size);

	n = zh_jdoc_parse(&d, doc, size, tok, cap, max_depth);
	r.s = data;
	r.n = size;
	r.max_depth = max_depth ? max_depth : ZH_JDOC_MAX_DEPTH;
	r.cap = cap;
	want = ref_parse(&r);
	CHECK(n == want, "zh_jdoc_parse %d (%s at %zu), reference %d", n,
	      zh_jdoc_reason(d.reason), d.offset, want);
	if (n < 0) {
		CHECK(d.err == n && d.offset <= size && d.reason != ZH_JE_OK, "error %d at %zu", n,
		      d.offset);
	} else {
		walk(&d, 0, (uint32_t)n, &got);
		CHECK(d.tok[0].next == (uint32_t)n, "the top value's next %u, tokens %d",
		      d.tok[0].next, n);
		CHECK(got.len == r.out.len && memcmp(got.p, r.out.p, got.len) == 0,
		      "the values read back differ from the reference's (%zu and %zu bytes)", got.len,
		      r.out.len);
	}
	check_against_jansson(doc, size);
	free(got.p);
	free(r.out.p);
	free(tok);
	free(doc);
	return 0;
}
