/* test_slice.c — unit tests for src/slice.c: slice comparison, decimal integers with overflow
 * and garbage checks, bounded C strings. Each input sits right before a PROT_NONE page, so a
 * helper reading one byte past the slice crashes the test. */
#define _DEFAULT_SOURCE
#include <criterion/criterion.h>

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "zerohttp.h"

/* s copied so that its last byte is the last readable one (not NUL-terminated) */
static zh_slice_t guarded(const char *s)
{
	static char *page;
	size_t pg = (size_t)sysconf(_SC_PAGESIZE), n = strlen(s);
	if (!page) {
		page = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		cr_assert(page != MAP_FAILED);
		cr_assert(mprotect(page + pg, pg, PROT_NONE) == 0);
	}
	cr_assert(n <= pg);
	memcpy(page + pg - n, s, n);
	return (zh_slice_t){page + pg - n, n};
}

Test(slice, eq_and_ieq)
{
	zh_slice_t a = {"Content-Type", 12}, b = {"content-type", 12}, c = {"Content-Typ", 11};
	cr_expect(zh_slice_eq(a, a));
	cr_expect(!zh_slice_eq(a, b));
	cr_expect(zh_slice_ieq(a, b));
	cr_expect(!zh_slice_ieq(a, c), "a prefix is not equal");
	cr_expect(zh_slice_eq_str(a, "Content-Type"));
	cr_expect(!zh_slice_eq_str(a, "Content-Type2"));
	cr_expect(zh_slice_ieq_str(guarded("GZIP"), "gzip"));
	cr_expect(zh_slice_eq_str((zh_slice_t){NULL, 0}, ""), "empty slices are equal");
	/* only ASCII letters fold: '@' (0x40) and '`' (0x60) differ by the case bit */
	cr_expect(!zh_slice_ieq_str((zh_slice_t){"@", 1}, "`"));
	cr_expect(!zh_slice_ieq_str((zh_slice_t){"\xc9", 1}, "\xe9"), "no Latin-1 folding");
}

static const struct {
	const char *in;
	int r;
	int64_t v;
} i64_rows[] = {
	{"0", 0, 0},
	{"-0", 0, 0},
	{"+17", 0, 17},
	{"9223372036854775807", 0, INT64_MAX},
	{"-9223372036854775808", 0, INT64_MIN},
	{"9223372036854775808", -ERANGE, 0},
	{"-9223372036854775809", -ERANGE, 0},
	{"99999999999999999999999", -ERANGE, 0},
	{"", -EINVAL, 0},
	{"-", -EINVAL, 0},
	{"+", -EINVAL, 0},
	{" 1", -EINVAL, 0},
	{"1 ", -EINVAL, 0},
	{"0x10", -EINVAL, 0},
	{"12a", -EINVAL, 0},
	{"--1", -EINVAL, 0},
	{"99999999999999999999x", -EINVAL, 0},
	{"00000000000000000000000042", 0, 42},
};

Test(slice, to_i64_table)
{
	for (size_t i = 0; i < sizeof i64_rows / sizeof i64_rows[0]; i++) {
		int64_t v = 12345;
		int r = zh_slice_to_i64(guarded(i64_rows[i].in), &v);
		cr_expect_eq(r, i64_rows[i].r, "%s: %d", i64_rows[i].in, r);
		cr_expect_eq(v, r == 0 ? i64_rows[i].v : 12345, "%s: %lld", i64_rows[i].in,
			     (long long)v);
	}
}

Test(slice, to_u64)
{
	uint64_t v = 7;
	cr_expect_eq(zh_slice_to_u64(guarded("18446744073709551615"), &v), 0);
	cr_expect_eq(v, UINT64_MAX);
	cr_expect_eq(zh_slice_to_u64(guarded("18446744073709551616"), &v), -ERANGE);
	cr_expect_eq(zh_slice_to_u64(guarded("-1"), &v), -EINVAL, "no sign for unsigned");
	cr_expect_eq(zh_slice_to_u64(guarded("+1"), &v), -EINVAL);
	cr_expect_eq(zh_slice_to_u64(guarded(""), &v), -EINVAL);
	cr_expect_eq(v, UINT64_MAX, "untouched on failure");
	/* the slice ends where it says, whatever follows in memory */
	cr_expect_eq(zh_slice_to_u64((zh_slice_t){"123456", 3}, &v), 0);
	cr_expect_eq(v, 123);
}

Test(slice, to_cstr)
{
	char buf[8];
	memset(buf, 'x', sizeof buf);
	cr_expect_eq(zh_slice_to_cstr(guarded("abc"), buf, sizeof buf), 3);
	cr_expect_str_eq(buf, "abc");
	cr_expect_eq(zh_slice_to_cstr(guarded("1234567"), buf, sizeof buf), 7, "exactly fits");
	cr_expect_str_eq(buf, "1234567");
	cr_expect_eq(zh_slice_to_cstr(guarded("12345678"), buf, sizeof buf), -ENOSPC);
	cr_expect_str_eq(buf, "1234567", "truncated, still terminated");
	cr_expect_eq(zh_slice_to_cstr((zh_slice_t){"a\0b", 3}, buf, sizeof buf), -EILSEQ);
	cr_expect_str_eq(buf, "");
	cr_expect_eq(zh_slice_to_cstr(guarded(""), buf, 1), 0);
	cr_expect_str_eq(buf, "");
	cr_expect_eq(zh_slice_to_cstr(guarded("a"), buf, 0), -EINVAL);
}
