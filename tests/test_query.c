/* test_query.c — unit tests for src/query.c: the query string / urlencoded form iterator,
 * the decoder (into a buffer and in place), lookups, and the bounds. Inputs sit right before a
 * PROT_NONE page, so reading one byte past a slice crashes the test. */
#define _DEFAULT_SOURCE
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "zerohttp.h"

static zh_slice_t guarded_n(const char *s, size_t n)
{
	static char *mem;
	static size_t span;
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	if (!mem) {
		span = (ZH_FORM_MAX_LEN + 2 * pg) / pg * pg;
		mem = mmap(NULL, span + pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
			   0);
		cr_assert(mem != MAP_FAILED);
		cr_assert(mprotect(mem + span, pg, PROT_NONE) == 0);
	}
	cr_assert(n <= span);
	memmove(mem + span - n, s, n);
	return (zh_slice_t){mem + span - n, n};
}

static zh_slice_t guarded(const char *s)
{
	return guarded_n(s, strlen(s));
}

/* Every pair of src, decoded, as "name=value;" (a bad escape shows as "!"), or "E<errno>". */
static void walk(zh_slice_t src, char *out, size_t cap)
{
	zh_form_iter_t it;
	zh_slice_t n, v;
	char dn[256], dv[256];
	int r;
	size_t len = 0;
	out[0] = '\0';
	zh_form_iter_init(&it, src);
	while ((r = zh_form_next(&it, &n, &v)) > 0) {
		ssize_t a = zh_form_decode(n, dn, sizeof dn), b = zh_form_decode(v, dv, sizeof dv);
		len += (size_t)snprintf(out + len, cap - len, "%.*s=%.*s;", a < 0 ? 1 : (int)a,
					a < 0 ? "!" : dn, b < 0 ? 1 : (int)b, b < 0 ? "!" : dv);
	}
	if (r < 0)
		snprintf(out + len, cap - len, "E%d", -r);
}

static const struct {
	const char *desc, *in, *pairs;
} walk_rows[] = {
	{"empty", "", ""},
	{"one", "a=1", "a=1;"},
	{"repeated keys in order", "a=1&b=2&a=3", "a=1;b=2;a=3;"},
	{"empty pairs skipped", "&&a=1&&&b=&", "a=1;b=;"},
	{"no '=': empty value", "flag&x=1", "flag=;x=1;"},
	{"only the first '=' splits", "k=a=b", "k=a=b;"},
	{"empty name", "=v", "=v;"},
	{"'+' is a space in both", "a+b=c+d", "a b=c d;"},
	{"%XX, hex either case", "%41%62=%7e%7E%2B", "Ab=~~+;"},
	{"%2B stays a plus, %26 an ampersand", "q=1%2B1%26x", "q=1+1&x;"},
	{"bad escapes reported per field", "%zz=1&a=%4&b=%", "!=1;a=!;b=!;"},
	{"UTF-8 bytes", "n=%C3%A9t%C3%A9", "n=\xc3\xa9t\xc3\xa9;"},
	{"WHATWG example", "a=b&c=d&a=e%20f+g", "a=b;c=d;a=e f g;"},
};

Test(query, iterate_and_decode_table)
{
	char out[1024];
	for (size_t i = 0; i < sizeof walk_rows / sizeof walk_rows[0]; i++) {
		walk(guarded(walk_rows[i].in), out, sizeof out);
		cr_expect_str_eq(out, walk_rows[i].pairs, "%s: %s", walk_rows[i].desc, out);
	}
}

Test(query, decode_errors_and_in_place)
{
	char buf[16], in_place[] = "a%20b+c%2525";
	cr_expect_eq(zh_form_decode(guarded("abc%2"), buf, sizeof buf), -EILSEQ, "cut escape");
	cr_expect_eq(zh_form_decode(guarded("%g0"), buf, sizeof buf), -EILSEQ);
	cr_expect_eq(zh_form_decode(guarded("abcd"), buf, 3), -ENOSPC);
	cr_expect_eq(zh_form_decode(guarded("%41%41%41"), buf, 3), 3, "needs 3, not 9");
	cr_expect_eq(zh_form_decode(guarded(""), NULL, 0), 0);
	cr_expect_eq(zh_form_decode((zh_slice_t){"%00", 3}, buf, 1), 1);
	cr_expect_eq(buf[0], '\0', "NUL decodes like any byte");
	ssize_t n = zh_form_decode((zh_slice_t){in_place, strlen(in_place)}, in_place,
				   strlen(in_place));
	cr_expect_eq(n, 8);
	cr_expect(memcmp(in_place, "a b c%25", 8) == 0, "decoded once, in place");
}

Test(query, lookup)
{
	zh_slice_t q = guarded("x=1&name=J%C3%B6rg+M&x=2&%6Eame=second&empty=&bare");
	zh_slice_t raw;
	char buf[32];
	cr_expect_eq(zh_form_get(q, "x", buf, sizeof buf), 1);
	cr_expect_eq(buf[0], '1', "the first of repeated keys");
	cr_expect_eq(zh_form_get(q, "name", buf, sizeof buf), 7);
	cr_expect(memcmp(buf, "J\xc3\xb6rg M", 7) == 0);
	cr_expect_eq(zh_form_get(q, "empty", buf, sizeof buf), 0);
	cr_expect_eq(zh_form_get(q, "bare", buf, sizeof buf), 0);
	cr_expect_eq(zh_form_get(q, "missing", buf, sizeof buf), -ENOENT);
	cr_expect_eq(zh_form_get(q, "nam", buf, sizeof buf), -ENOENT, "no prefix match");
	cr_expect_eq(zh_form_get(q, "name", buf, 3), -ENOSPC);
	cr_expect_eq(zh_form_get_raw(q, "name", &raw), 1);
	cr_expect(raw.len == 11 && memcmp(raw.ptr, "J%C3%B6rg+M", 11) == 0 &&
		  raw.ptr == q.ptr + 9, "raw is the encoded slice of the input");
}

Test(query, lookup_with_encoded_names_and_bad_escapes)
{
	char buf[8];
	cr_expect_eq(zh_form_get(guarded("a%20b=1"), "a b", buf, sizeof buf), 1);
	cr_expect_eq(zh_form_get(guarded("a+b=1"), "a b", buf, sizeof buf), 1);
	/* a malformed name before the match is an error, whatever is looked up */
	cr_expect_eq(zh_form_get(guarded("%zz=1&a=2"), "a", buf, sizeof buf), -EILSEQ);
	cr_expect_eq(zh_form_get(guarded("b%zz=1&a=2"), "a", buf, sizeof buf), -EILSEQ);
	/* after the match nothing is looked at */
	cr_expect_eq(zh_form_get(guarded("a=2&%zz=1"), "a", buf, sizeof buf), 1);
	cr_expect_eq(zh_form_get(guarded("a=%z2"), "a", buf, sizeof buf), -EILSEQ,
		     "a bad escape in the value");
}

Test(query, bounds)
{
	size_t n = ZH_FORM_MAX_PAIRS, len = 0;
	char *big = malloc(ZH_FORM_MAX_LEN + 2);
	zh_form_iter_t it;
	zh_slice_t a, b;
	char buf[4];
	int r, count = 0;
	cr_assert(big);
	for (size_t i = 0; i < n; i++)
		len += (size_t)sprintf(big + len, "k=%zu&", i % 10);
	/* exactly the limit: every pair walks */
	zh_form_iter_init(&it, guarded_n(big, len));
	while ((r = zh_form_next(&it, &a, &b)) > 0)
		count++;
	cr_expect_eq(r, 0);
	cr_expect_eq(count, ZH_FORM_MAX_PAIRS);
	/* one more: -E2BIG, then again on every call */
	len += (size_t)sprintf(big + len, "last=1");
	zh_form_iter_init(&it, guarded_n(big, len));
	for (count = 0; (r = zh_form_next(&it, &a, &b)) > 0;)
		count++;
	cr_expect_eq(r, -E2BIG);
	cr_expect_eq(count, ZH_FORM_MAX_PAIRS);
	cr_expect_eq(zh_form_next(&it, &a, &b), -E2BIG);
	cr_expect_eq(zh_form_get(guarded_n(big, len), "last", buf, sizeof buf), -E2BIG);
	cr_expect_eq(zh_form_get(guarded_n(big, len), "k", buf, sizeof buf), 1, "found early");
	/* empty pairs do not count as pairs, but bytes do */
	memset(big, '&', ZH_FORM_MAX_LEN + 1);
	memcpy(big + ZH_FORM_MAX_LEN - 3, "a=1", 3);
	cr_expect_eq(zh_form_get(guarded_n(big, ZH_FORM_MAX_LEN), "a", buf, sizeof buf), 1);
	cr_expect_eq(zh_form_get(guarded_n(big, ZH_FORM_MAX_LEN + 1), "a", buf, sizeof buf),
		     -EMSGSIZE);
	zh_form_iter_init(&it, guarded_n(big, ZH_FORM_MAX_LEN + 1));
	cr_expect_eq(zh_form_next(&it, &a, &b), -EMSGSIZE);
	free(big);
}

/* zh_form_get_u64 / _i64: found (decoded first), absent (the default stays), not a number,
 * out of range, and the lookup's own errors */
Test(query, numbers)
{
	zh_slice_t q = guarded("limit=25&neg=-7&enc=%31%32&plus=+3&big=18446744073709551616"
			       "&max=18446744073709551615&empty=&junk=12a&esc=%zz&zeros="
			       "0000000000000000000000000000000000000000000000000000000000000001"
			       "&long=00000000000000000000000000000000000000000000000000000000000000001");
	uint64_t u = 99;
	int64_t i = 99;
	cr_expect_eq(zh_form_get_u64(q, "limit", &u), 1);
	cr_expect_eq(u, 25);
	cr_expect_eq(zh_form_get_u64(q, "enc", &u), 1);
	cr_expect_eq(u, 12, "%31%32 decodes to 12");
	cr_expect_eq(zh_form_get_u64(q, "max", &u), 1);
	cr_expect_eq(u, UINT64_MAX);
	cr_expect_eq(zh_form_get_u64(q, "zeros", &u), 1);
	cr_expect_eq(u, 1, "64 bytes: read");
	u = 7;
	cr_expect_eq(zh_form_get_u64(q, "absent", &u), 0);
	cr_expect_eq(zh_form_get_u64(q, "neg", &u), -EINVAL, "no sign for u64");
	cr_expect_eq(zh_form_get_u64(q, "plus", &u), -EINVAL, "'+' is a space: \" 3\"");
	cr_expect_eq(zh_form_get_u64(q, "empty", &u), -EINVAL);
	cr_expect_eq(zh_form_get_u64(q, "junk", &u), -EINVAL);
	cr_expect_eq(zh_form_get_u64(q, "big", &u), -ERANGE);
	cr_expect_eq(zh_form_get_u64(q, "long", &u), -ERANGE, "65 bytes: refused");
	cr_expect_eq(zh_form_get_u64(q, "esc", &u), -EILSEQ);
	cr_expect_eq(u, 7, "untouched by every failure and by absence");
	cr_expect_eq(zh_form_get_i64(q, "neg", &i), 1);
	cr_expect_eq(i, -7);
	cr_expect_eq(zh_form_get_i64(q, "max", &i), -ERANGE);
	cr_expect_eq(zh_form_get_i64(q, "absent", &i), 0);
	cr_expect_eq(i, -7);
	cr_expect_eq(zh_form_get_i64(guarded("%zz=1&a=2"), "a", &i), -EILSEQ,
		     "a bad name before the match, as zh_form_get");
}
