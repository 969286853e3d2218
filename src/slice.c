/* slice.c — helpers for zh_slice_t, the library's non-terminated byte views: comparison,
 * decimal integers with overflow checks, bounded C strings. Pure functions: no allocation,
 * no state, any thread. */
#include "ext.h"

#include <errno.h>
#include <string.h>

int zh_slice_eq(zh_slice_t a, zh_slice_t b)
{
	return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

int zh_slice_ieq(zh_slice_t a, zh_slice_t b)
{
	return a.len == b.len && zh__ieq(a.ptr, b.ptr, a.len);
}

int zh_slice_eq_str(zh_slice_t a, const char *s)
{
	zh_slice_t b = {s, strlen(s)};
	return zh_slice_eq(a, b);
}

int zh_slice_ieq_str(zh_slice_t a, const char *s)
{
	zh_slice_t b = {s, strlen(s)};
	return zh_slice_ieq(a, b);
}

/* The digits of s as a magnitude, with the overflow check done per digit by the compiler's
 * checked arithmetic. 0, -EINVAL (empty, a non-digit), -ERANGE (over UINT64_MAX). */
static int magnitude(const char *p, size_t len, uint64_t *out)
{
	uint64_t v = 0;
	bool over = false;
	if (len == 0)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		unsigned d = (unsigned char)p[i] - (unsigned)'0';
		if (d > 9)
			return -EINVAL; /* garbage wins over overflow: "99...9x" is not a number */
		over |= __builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, d, &v);
	}
	if (over)
		return -ERANGE;
	*out = v;
	return 0;
}

int zh_slice_to_u64(zh_slice_t s, uint64_t *out)
{
	return magnitude(s.ptr, s.len, out);
}

int zh_slice_to_i64(zh_slice_t s, int64_t *out)
{
	bool neg = s.len > 0 && s.ptr[0] == '-';
	size_t skip = s.len > 0 && (s.ptr[0] == '-' || s.ptr[0] == '+');
	uint64_t m;
	int r = magnitude(s.ptr + skip, s.len - skip, &m);
	if (r < 0)
		return r;
	/* INT64_MIN's magnitude is one more than INT64_MAX's */
	if (m > (uint64_t)INT64_MAX + neg)
		return -ERANGE;
	*out = neg ? (int64_t)(0 - m) : (int64_t)m;
	return 0;
}

ssize_t zh_slice_to_cstr(zh_slice_t s, char *buf, size_t cap)
{
	size_t n;
	if (cap == 0)
		return -EINVAL;
	if (s.len > 0 && memchr(s.ptr, '\0', s.len) != NULL) {
		buf[0] = '\0';
		return -EILSEQ;
	}
	n = s.len < cap ? s.len : cap - 1;
	if (n > 0)
		memcpy(buf, s.ptr, n);
	buf[n] = '\0';
	return n == s.len ? (ssize_t)n : -ENOSPC;
}
