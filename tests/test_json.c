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

/* What escape_one() writes for one ASCII byte (RFC 8259 section 7: the two-character forms,
 * else \u00XX for controls, and <, >, & too under ZH_JSON_ESCAPE_HTML); other bytes are
 * copied. Written apart from json.c, as the reference for the test below. */
static size_t ref_escape(char *out, const unsigned char *s, size_t n, bool html)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = s[i];
		const char *two = c == '"' ? "\\\"" : c == '\\' ? "\\\\" : c == '\n' ? "\\n"
				: c == '\r' ? "\\r" : c == '\t' ? "\\t" : c == '\b' ? "\\b"
				: c == '\f' ? "\\f" : NULL;
		if (two)
			o += (size_t)sprintf(out + o, "%s", two);
		else if (c < 0x20 || (html && (c == '<' || c == '>' || c == '&')))
			o += (size_t)sprintf(out + o, "\\u%04x", c);
		else
			out[o++] = (char)c;
	}
	return o;
}

/* Every byte class at every offset of strings of 1..40 bytes, as a value and as a key, with
 * and without ZH_JSON_ESCAPE_HTML. The SSE2 paths (put_string's and zh_json_key's 16-byte
 * fast path, copy_plain's 16 at a time) and the scalar ones decide per byte differently;
 * the Makefile builds this file twice (test_json, and test_json_scalar with ZH_NO_SIMD), so
 * both must write what the reference writes. */
Test(json, every_special_byte_at_every_offset_is_escaped)
{
	static const char *const specials[] = {"\"", "\\", "\n", "\x01", "\x1f", "<", "&", ">",
					       "\x7f", "\xc3\xa9", " "};
	for (int html = 0; html < 2; html++)
		for (size_t len = 1; len <= 40; len++)
			for (size_t pos = 0; pos < len; pos++)
				for (size_t k = 0; k < sizeof specials / sizeof specials[0]; k++) {
					char in[48], want[320], buf[1024];
					size_t sl = strlen(specials[k]), n = 0, wl;
					struct zh_json j = {.start = buf, .p = buf,
							    .end = buf + sizeof buf, .active = true,
							    .flags = html ? ZH_JSON_ESCAPE_HTML : 0};
					for (size_t i = 0; i < len; i++)
						if (i == pos) {
							memcpy(in + n, specials[k], sl);
							n += sl;
						} else {
							in[n++] = (char)('a' + i % 26);
						}
					wl = ref_escape(want, (const unsigned char *)in, n, html);
					/* as a value in an array, then as a key */
					zh_json_arr(&j);
					zh_json_str(&j, in, n);
					zh_json_end(&j);
					cr_assert_eq(zh_json_error(&j), 0);
					cr_assert_eq((size_t)(j.p - buf), wl + 4,
						     "html %d len %zu pos %zu special %zu: %.*s", html,
						     len, pos, k, (int)(j.p - buf), buf);
					cr_assert(memcmp(buf + 2, want, wl) == 0 && buf[1] == '"' &&
							  buf[wl + 2] == '"',
						  "html %d len %zu pos %zu special %zu: %.*s", html,
						  len, pos, k, (int)(j.p - buf), buf);
					j = (struct zh_json){.start = buf, .p = buf,
							     .end = buf + sizeof buf, .active = true,
							     .flags = html ? ZH_JSON_ESCAPE_HTML : 0};
					zh_json_obj(&j);
					zh_json_key(&j, in, n);
					cr_assert_eq(zh_json_error(&j), 0);
					cr_assert_eq((size_t)(j.p - buf), wl + 4,
						     "key: html %d len %zu pos %zu special %zu: %.*s",
						     html, len, pos, k, (int)(j.p - buf), buf);
					cr_assert(memcmp(buf + 2, want, wl) == 0 &&
							  memcmp(buf + wl + 2, "\":", 2) == 0,
						  "key: html %d len %zu pos %zu special %zu: %.*s",
						  html, len, pos, k, (int)(j.p - buf), buf);
				}
}
