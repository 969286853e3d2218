/* test_json.c — white-box tests of the JSON writer's number and UTF-8 paths (json.c is
 * included, so its static functions are reachable). End-to-end documents are checked with
 * python3's json in tests/integration/test_19_json.py. */
#include "json.c"

#include <criterion/criterion.h>
#include <math.h> /* NAN, INFINITY */
#include <stdio.h>
#include <stdlib.h>

/* The decimal fast path must print exactly what the general algorithm prints, and must
 * decline everything it cannot prove (then zh__dtoa runs). */
static void check_fast(double v, long *hits)
{
	char a[64], b[64], *q = put_double_fast(a, v);
	size_t lb = zh__dtoa(v, b);
	if (q == NULL)
		return;
	(*hits)++;
	cr_assert_eq((size_t)(q - a), lb, "%.17g: fast %.*s, dtoa %.*s", v, (int)(q - a), a,
		     (int)lb, b);
	cr_assert_arr_eq(a, b, lb, "%.17g: fast %.*s, dtoa %.*s", v, (int)(q - a), a, (int)lb, b);
}

Test(json, fast_doubles_match_the_general_algorithm)
{
	static const double div[4] = {1, 10, 100, 1000};
	long hits = 0;
	for (long i = -300000; i <= 300000; i++) {
		for (int k = 0; k < 4; k++)
			check_fast((double)i / div[k], &hits);
		check_fast((double)i * 1.25, &hits);
	}
	double p10[16] = {1};
	for (int k = 1; k < 16; k++)
		p10[k] = p10[k - 1] * 10;
	srand(7);
	for (int n = 0; n < 500000; n++) {
		double v = ((double)rand() / RAND_MAX - 0.5) * p10[rand() % 16];
		check_fast((double)(long long)(v * 1000 + (v < 0 ? -0.5 : 0.5)) / 1000, &hits);
		check_fast(v, &hits); /* mostly declined: more than three decimals */
	}
	cr_assert_gt(hits, 2500000, "the fast path must take the common case (%ld)", hits);
}

Test(json, fast_doubles_decline_what_they_cannot_prove)
{
	char out[64];
	const double declined[] = {0.0, -0.0, 0.1 + 0.2, 1e-4, 1099511627776.0, 1e300, 5e-324,
				   0.0001, 1.0 / 3};
	for (size_t i = 0; i < sizeof declined / sizeof declined[0]; i++)
		cr_assert_null(put_double_fast(out, declined[i]), "%.17g", declined[i]);
	cr_assert_null(put_double_fast(out, NAN));
	cr_assert_null(put_double_fast(out, INFINITY));
}

static size_t scan(const char *s, size_t n, bool *ok)
{
	uint32_t cp;
	return utf8_scan((const unsigned char *)s, n, &cp, ok);
}

/* Unicode table 3-7 and the maximal-subpart rule, sequence by sequence. */
Test(json, utf8_scan_follows_table_3_7)
{
	static const struct {
		const char *s;
		size_t n, len;
		bool ok;
	} cases[] = {
		{"\xc2\x80", 2, 2, true},	  {"\xdf\xbf", 2, 2, true},
		{"\xc0\xaf", 2, 1, false},	  {"\xc1\xbf", 2, 1, false}, /* overlong leads */
		{"\xe0\xa0\x80", 3, 3, true},	  {"\xe0\x80\xaf", 3, 1, false}, /* overlong */
		{"\xed\x9f\xbf", 3, 3, true},	  {"\xed\xa0\x80", 3, 1, false}, /* surrogate */
		{"\xef\xbf\xbf", 3, 3, true},	  {"\xe2\x82", 2, 2, false},	 /* truncated */
		{"\xe2\x82\x41", 3, 2, false},	  {"\xf0\x90\x80\x80", 4, 4, true},
		{"\xf0\x80\x80\x80", 4, 1, false}, {"\xf4\x8f\xbf\xbf", 4, 4, true},
		{"\xf4\x90\x80\x80", 4, 1, false}, /* above U+10FFFF */
		{"\xf5\x80\x80\x80", 4, 1, false}, {"\x80", 1, 1, false},
		{"\xff", 1, 1, false},		  {"\xf1\x80\x80", 3, 3, false},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		bool ok;
		size_t len = scan(cases[i].s, cases[i].n, &ok);
		cr_assert_eq(ok, cases[i].ok, "case %zu", i);
		cr_assert_eq(len, cases[i].len, "case %zu", i);
	}
}

/* Found by tests/fuzz/fuzz_json.c: closing the top-level object left the writer expecting a
 * key, so zh_json_key after the document was accepted and wrote `{}"k":` with no error. The
 * window is a local buffer: nothing here reaches response.c. */
Test(json, no_key_after_the_top_level_object)
{
	char buf[256];
	struct zh_json j = {.start = buf, .p = buf, .end = buf + sizeof buf, .active = true};
	zh_json_obj(&j);
	zh_json_end(&j);
	zh_json_key(&j, "k", 1);
	cr_assert_eq(zh_json_error(&j), -EINVAL);
	cr_assert_eq(j.p - buf, 2, "%.*s", (int)(j.p - buf), buf);
}

/* Found by tests/fuzz/fuzz_json.c: a key whose string failed (invalid UTF-8 under STRICT, or
 * a refused window) still got its ':' written after the error, and after a refused window
 * the writer asked for another. Errors are sticky: nothing more is emitted. */
Test(json, nothing_after_a_failed_key)
{
	char buf[256];
	struct zh_json j = {.start = buf, .p = buf, .end = buf + sizeof buf, .active = true,
			    .flags = ZH_JSON_STRICT_UTF8};
	zh_json_obj(&j);
	zh_json_key(&j, "bad \xff key", 9);
	cr_assert_eq(zh_json_error(&j), -EILSEQ);
	cr_assert_null(memchr(buf, ':', (size_t)(j.p - buf)), "%.*s", (int)(j.p - buf), buf);
}
