/* query.c — query strings and application/x-www-form-urlencoded bodies (WHATWG URL
 * Standard, "application/x-www-form-urlencoded parsing"; the same byte rules for both, as
 * browsers and Go's url.ParseQuery use them).
 *
 * Nothing is allocated or copied unless the caller asks: the iterator hands out raw slices
 * of the input, lookups compare names by decoding them on the fly (no buffer), and values
 * are decoded only into the caller's buffer. Bounds (ZH_FORM_MAX_LEN, ZH_FORM_MAX_PAIRS)
 * keep a lookup's cost independent of what a client sends beyond them. */
#include "ext.h"

#include <errno.h>
#include <string.h>

void zh_form_iter_init(zh_form_iter_t *it, zh_slice_t src)
{
	it->p = src.ptr;
	it->end = src.ptr + src.len;
	it->pairs = 0;
	it->err = src.len > ZH_FORM_MAX_LEN ? -EMSGSIZE : 0;
}

int zh_form_next(zh_form_iter_t *it, zh_slice_t *name, zh_slice_t *value)
{
	if (it->err < 0)
		return it->err;
	while (it->p < it->end) {
		const char *p = it->p;
		const char *amp = memchr(p, '&', (size_t)(it->end - p));
		const char *stop = amp ? amp : it->end;
		const char *eq;
		it->p = amp ? amp + 1 : it->end;
		if (stop == p)
			continue; /* "a&&b", a leading or trailing '&' */
		if (++it->pairs > ZH_FORM_MAX_PAIRS)
			return it->err = -E2BIG;
		eq = memchr(p, '=', (size_t)(stop - p));
		name->ptr = p;
		name->len = (size_t)((eq ? eq : stop) - p);
		value->ptr = eq ? eq + 1 : stop;
		value->len = eq ? (size_t)(stop - eq - 1) : 0;
		return 1;
	}
	return 0;
}

/* The decoded byte at raw[*i], advancing *i past it; -1 for a bad escape. */
static int decode_at(const char *p, size_t len, size_t *i)
{
	int c;
	if (p[*i] == '+') {
		(*i)++;
		return ' ';
	}
	if (p[*i] != '%') {
		return (unsigned char)p[(*i)++];
	}
	c = zh__pct_octet(p + *i, len - *i);
	if (c >= 0)
		*i += 3;
	return c;
}

ssize_t zh_form_decode(zh_slice_t raw, char *buf, size_t cap)
{
	size_t i = 0, n = 0;
	/* reads run ahead of writes (i >= n), so decoding in place is safe */
	while (i < raw.len) {
		int c = decode_at(raw.ptr, raw.len, &i);
		if (c < 0)
			return -EILSEQ;
		if (n == cap)
			return -ENOSPC;
		buf[n++] = (char)c;
	}
	return (ssize_t)n;
}

/* Does raw decode to the NUL-terminated name? 1, 0, or -EILSEQ for a bad escape anywhere
 * in raw (the whole name is decoded even after a difference, so that a malformed name is
 * reported whatever is looked up). */
static int name_is(zh_slice_t raw, const char *name)
{
	size_t i = 0, k = 0;
	bool same = true;
	while (i < raw.len) {
		int c = decode_at(raw.ptr, raw.len, &i);
		if (c < 0)
			return -EILSEQ;
		if (same && (name[k] == '\0' || (unsigned char)name[k] != c))
			same = false;
		else if (same)
			k++;
	}
	return same && name[k] == '\0';
}

int zh_form_get_raw(zh_slice_t src, const char *name, zh_slice_t *raw)
{
	zh_form_iter_t it;
	zh_slice_t n, v;
	int r;
	zh_form_iter_init(&it, src);
	while ((r = zh_form_next(&it, &n, &v)) > 0) {
		int is = name_is(n, name);
		if (is < 0)
			return is;
		if (is) {
			*raw = v;
			return 1;
		}
	}
	return r;
}

ssize_t zh_form_get(zh_slice_t src, const char *name, char *buf, size_t cap)
{
	zh_slice_t raw;
	int r = zh_form_get_raw(src, name, &raw);
	if (r <= 0)
		return r == 0 ? -ENOENT : r;
	return zh_form_decode(raw, buf, cap);
}

/* ---- numbers (zh_form_get_u64, zh_form_get_i64) ---- */

/* A value longer than this, decoded, is -ERANGE: 20 digits hold UINT64_MAX, the rest leaves
 * room for a sign and leading zeros. */
enum { NUMBER_MAX = 64 };

/* 1 and the decoded value of name in buf, 0 if absent, or an error. */
static int number_text(zh_slice_t src, const char *name, char buf[NUMBER_MAX],
		       zh_slice_t *text)
{
	zh_slice_t raw;
	ssize_t n;
	int r = zh_form_get_raw(src, name, &raw);
	if (r <= 0)
		return r;
	if ((n = zh_form_decode(raw, buf, NUMBER_MAX)) < 0)
		return n == -ENOSPC ? -ERANGE : (int)n;
	*text = (zh_slice_t){buf, (size_t)n};
	return 1;
}

int zh_form_get_u64(zh_slice_t src, const char *name, uint64_t *out)
{
	char buf[NUMBER_MAX];
	zh_slice_t text;
	int r = number_text(src, name, buf, &text);
	if (r > 0 && (r = zh_slice_to_u64(text, out)) == 0)
		r = 1;
	return r;
}

int zh_form_get_i64(zh_slice_t src, const char *name, int64_t *out)
{
	char buf[NUMBER_MAX];
	zh_slice_t text;
	int r = number_text(src, name, buf, &text);
	if (r > 0 && (r = zh_slice_to_i64(text, out)) == 0)
		r = 1;
	return r;
}
