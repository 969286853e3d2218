/* test_json_read.c — the JSON reader (src/json_read.c, included so that a ZH_NO_SIMD build
 * tests the scalar string scan: test_json_read_scalar). Every document is parsed where it
 * ends against a PROT_NONE page, so a read past its end is a crash, not luck.
 *
 * The acceptance table follows JSONTestSuite's naming (github.com/nst/JSONTestSuite, cases
 * written here): y_ must be accepted, n_ must be refused (with the reason and byte offset
 * given), i_ is where RFC 8259 leaves a choice and the row records ours. Values are checked
 * against Python's json module in tests/integration/test_44_json_read.py and against a
 * reference parser by the fuzz target tests/fuzz/fuzz_json_read.c.
 */
#include "json_read.c"

#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

/* A buffer of len bytes that ends exactly where an inaccessible page begins. */
struct guarded {
	char *map, *doc;
	size_t maplen;
};

static struct guarded guard(const char *text, size_t len)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE), data = (len + pg - 1) / pg * pg;
	struct guarded g;
	g.maplen = data + pg;
	if (data == 0) {
		data = pg;
		g.maplen = 2 * pg;
	}
	g.map = mmap(NULL, g.maplen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(g.map, MAP_FAILED);
	cr_assert_eq(mprotect(g.map + data, pg, PROT_NONE), 0);
	g.doc = g.map + data - len;
	memcpy(g.doc, text, len);
	return g;
}

static void unguard(struct guarded *g)
{
	munmap(g->map, g->maplen);
}

/* Parses text (len bytes) at the edge of a guard page with room for cap tokens. */
static int parse_guarded(const char *text, size_t len, zh_jtok_t *tok, size_t cap,
			 unsigned depth, zh_jdoc_t *doc)
{
	struct guarded g = guard(text, len);
	int r = zh_jdoc_parse(doc, g.doc, len, tok, cap, depth);
	unguard(&g);
	doc->src = NULL; /* the text is gone */
	return r;
}

struct row {
	const char *name, *text;
	size_t len;   /* 0: strlen(text) */
	int reason;   /* ZH_JE_OK: accepted */
	long offset;  /* for a refusal: the byte offset reported (-1: not checked) */
};

#define Y(name, text) {name, text, 0, ZH_JE_OK, -1}
#define N(name, text, reason, off) {name, text, 0, reason, off}
#define NL(name, text, len, reason, off) {name, text, len, reason, off}

static const struct row rows[] = {
	/* accepted */
	Y("y_structure_lonely_int", "42"),
	Y("y_structure_lonely_string", "\"asd\""),
	Y("y_structure_lonely_true", "true"),
	Y("y_structure_lonely_false", "false"),
	Y("y_structure_lonely_null", "null"),
	Y("y_structure_lonely_negative_zero", "-0"),
	Y("y_structure_whitespace_around", " \t\r\n[1] \t\r\n"),
	Y("y_array_empty", "[]"),
	Y("y_array_empty_with_ws", "[ \n ]"),
	Y("y_object_empty", "{}"),
	Y("y_object_empty_with_ws", "{ \t }"),
	Y("y_array_heterogeneous", "[null, 1, \"1\", {}, [], true, false]"),
	Y("y_object_basic", "{\"asd\":\"sdf\", \"dfg\":\"fgh\"}"),
	Y("y_object_duplicated_key", "{\"a\":\"b\",\"a\":\"c\"}"),
	Y("y_object_empty_key", "{\"\":0}"),
	Y("y_object_nested", "{\"a\":{\"b\":[1,{\"c\":[]}]}}"),
	Y("y_number_simple", "[123]"),
	Y("y_number_negative", "[-123]"),
	Y("y_number_zero_frac", "[0.5]"),
	Y("y_number_exp", "[1E22]"),
	Y("y_number_exp_lower_plus", "[1e+2]"),
	Y("y_number_exp_minus", "[1e-2]"),
	Y("y_number_frac_exp", "[123.456e78]"),
	Y("y_number_zero_exp", "[0e1]"),
	Y("y_number_huge_int", "[100000000000000000000000000000000000000000000000000]"),
	Y("y_number_huge_exp", "[1e999999999999999999]"),
	Y("y_string_escapes", "[\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"]"),
	Y("y_string_unicode_escape", "[\"\\u00e9\\u20AC\"]"),
	Y("y_string_surrogate_pair", "[\"\\uD83D\\uDE00\"]"),
	Y("y_string_escaped_nul", "[\"a\\u0000b\"]"),
	Y("y_string_utf8_2", "[\"\xc3\xa9\"]"),
	Y("y_string_utf8_3", "[\"\xe2\x82\xac\"]"),
	Y("y_string_utf8_4", "[\"\xf0\x9f\x98\x80\"]"),
	Y("y_string_utf8_max", "[\"\xf4\x8f\xbf\xbf\"]"),
	Y("y_string_utf8_last_before_surrogates", "[\"\xed\x9f\xbf\"]"),
	Y("y_string_utf8_first_after_surrogates", "[\"\xee\x80\x80\"]"),
	Y("y_string_del", "[\"\x7f\"]"),
	Y("y_string_u2028", "[\"\xe2\x80\xa8\"]"),
	Y("y_string_noncharacter", "[\"\xef\xbf\xbf\"]"),
	Y("y_string_long_plain", "[\"abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz\"]"),
	/* refused: structure */
	N("n_structure_empty", "", ZH_JE_EMPTY, 0),
	N("n_structure_only_ws", " \n\t ", ZH_JE_EMPTY, 4),
	N("n_structure_bom", "\xef\xbb\xbf{}", ZH_JE_SYNTAX, 0),
	N("n_structure_two_values", "1 2", ZH_JE_TRAILING, 2),
	N("n_structure_trailing_garbage", "[1]x", ZH_JE_TRAILING, 3),
	NL("n_structure_trailing_nul_len", "[1]\0", 4, ZH_JE_TRAILING, 3),
	N("n_structure_unclosed_array", "[1", ZH_JE_EOF, 2),
	N("n_structure_unclosed_object", "{\"a\":1", ZH_JE_EOF, 6),
	N("n_structure_unclosed_empty_object", "{", ZH_JE_EOF, 1),
	N("n_structure_close_only", "]", ZH_JE_SYNTAX, 0),
	N("n_structure_mismatch", "[}", ZH_JE_SYNTAX, 1),
	N("n_structure_mismatch2", "{\"a\":1]", ZH_JE_SYNTAX, 6),
	N("n_array_trailing_comma", "[1,]", ZH_JE_SYNTAX, 3),
	N("n_array_leading_comma", "[,1]", ZH_JE_SYNTAX, 1),
	N("n_array_double_comma", "[1,,2]", ZH_JE_SYNTAX, 3),
	N("n_array_missing_comma", "[1 2]", ZH_JE_SYNTAX, 3),
	N("n_object_trailing_comma", "{\"a\":1,}", ZH_JE_SYNTAX, 7),
	N("n_object_missing_colon", "{\"a\" 1}", ZH_JE_SYNTAX, 5),
	N("n_object_unquoted_key", "{a:1}", ZH_JE_SYNTAX, 1),
	N("n_object_single_quote", "{'a':1}", ZH_JE_SYNTAX, 1),
	N("n_object_number_key", "{1:1}", ZH_JE_SYNTAX, 1),
	N("n_object_missing_value", "{\"a\":}", ZH_JE_SYNTAX, 5),
	N("n_object_comment", "{/* c */}", ZH_JE_SYNTAX, 1),
	N("n_literal_capital", "[True]", ZH_JE_SYNTAX, 1),
	N("n_literal_truncated", "[tru]", ZH_JE_SYNTAX, 1),
	N("n_literal_eof", "nul", ZH_JE_EOF, 3),
	N("n_literal_suffix", "[truex]", ZH_JE_SYNTAX, 5),
	N("n_literal_nan", "[NaN]", ZH_JE_SYNTAX, 1),
	N("n_literal_infinity", "[Infinity]", ZH_JE_SYNTAX, 1),
	N("n_literal_minus_infinity", "[-Infinity]", ZH_JE_NUMBER, 1),
	/* refused: numbers */
	N("n_number_plus", "[+1]", ZH_JE_SYNTAX, 1),
	N("n_number_leading_zero", "[01]", ZH_JE_NUMBER, 1),
	N("n_number_neg_leading_zero", "[-01]", ZH_JE_NUMBER, 1),
	N("n_number_dot_first", "[.5]", ZH_JE_SYNTAX, 1),
	N("n_number_dot_last", "[1.]", ZH_JE_NUMBER, 1),
	N("n_number_dot_exp", "[1.e1]", ZH_JE_NUMBER, 1),
	N("n_number_exp_empty", "[1e]", ZH_JE_NUMBER, 1),
	N("n_number_exp_sign_only", "[1e+]", ZH_JE_NUMBER, 1),
	N("n_number_minus_only", "[-]", ZH_JE_NUMBER, 1),
	N("n_number_minus_space", "[- 1]", ZH_JE_NUMBER, 1),
	N("n_number_hex", "[0x1]", ZH_JE_SYNTAX, 2),
	N("n_number_eof_minus", "-", ZH_JE_NUMBER, 0),
	N("n_number_eof_dot", "1.", ZH_JE_NUMBER, 0),
	N("n_number_fullwidth_digit", "[\xef\xbc\x91]", ZH_JE_SYNTAX, 1),
	/* refused: strings */
	N("n_string_unclosed", "[\"abc", ZH_JE_EOF, 5),
	N("n_string_unclosed_long", "[\"abcdefghijklmnopqrstuvwxyz0123456789", ZH_JE_EOF, 38),
	N("n_string_control_tab", "[\"a\tb\"]", ZH_JE_CONTROL, 3),
	N("n_string_control_newline", "[\"a\nb\"]", ZH_JE_CONTROL, 3),
	NL("n_string_control_nul", "[\"a\0b\"]", 7, ZH_JE_CONTROL, 3),
	N("n_string_control_in_long_run", "[\"abcdefghijklmnopqrstu\x1fvwxyz\"]", ZH_JE_CONTROL, 23),
	N("n_string_single_quotes", "['a']", ZH_JE_SYNTAX, 1),
	N("n_string_bad_escape", "[\"\\a\"]", ZH_JE_ESCAPE, 2),
	N("n_string_escape_x", "[\"\\x41\"]", ZH_JE_ESCAPE, 2),
	N("n_string_escape_uppercase_U", "[\"\\U0041\"]", ZH_JE_ESCAPE, 2),
	N("n_string_escape_short_u", "[\"\\u12\"]", ZH_JE_ESCAPE, 2),
	N("n_string_escape_bad_hex", "[\"\\u12g4\"]", ZH_JE_ESCAPE, 2),
	N("n_string_escape_eof", "[\"\\", ZH_JE_EOF, 3),
	N("n_string_escape_u_eof", "[\"\\u00", ZH_JE_EOF, 6),
	NL("n_string_escape_nul", "[\"\\\0\"]", 6, ZH_JE_ESCAPE, 2),
	N("n_string_lone_high_surrogate", "[\"\\uD800\"]", ZH_JE_SURROGATE, 2),
	N("n_string_lone_low_surrogate", "[\"\\uDC00\"]", ZH_JE_SURROGATE, 2),
	N("n_string_high_then_text", "[\"\\uD83Dx\"]", ZH_JE_SURROGATE, 2),
	N("n_string_high_then_high", "[\"\\uD83D\\uD83D\"]", ZH_JE_SURROGATE, 2),
	N("n_string_high_then_bmp", "[\"\\uD83D\\u0041\"]", ZH_JE_SURROGATE, 2),
	N("n_string_pair_reversed", "[\"\\uDE00\\uD83D\"]", ZH_JE_SURROGATE, 2),
	N("n_string_high_at_end", "[\"\\uD83D", ZH_JE_SURROGATE, 2),
	N("n_utf8_lone_continuation", "[\"\x80\"]", ZH_JE_UTF8, 2),
	N("n_utf8_invalid_lead_c0", "[\"\xc0\xaf\"]", ZH_JE_UTF8, 2),
	N("n_utf8_overlong_2", "[\"\xc1\xbf\"]", ZH_JE_UTF8, 2),
	N("n_utf8_overlong_3", "[\"\xe0\x9f\xbf\"]", ZH_JE_UTF8, 2),
	N("n_utf8_overlong_4", "[\"\xf0\x8f\xbf\xbf\"]", ZH_JE_UTF8, 2),
	N("n_utf8_surrogate_d800", "[\"\xed\xa0\x80\"]", ZH_JE_UTF8, 2),
	N("n_utf8_surrogate_dfff", "[\"\xed\xbf\xbf\"]", ZH_JE_UTF8, 2),
	N("n_utf8_above_10ffff", "[\"\xf4\x90\x80\x80\"]", ZH_JE_UTF8, 2),
	N("n_utf8_f5", "[\"\xf5\x80\x80\x80\"]", ZH_JE_UTF8, 2),
	N("n_utf8_ff", "[\"\xff\"]", ZH_JE_UTF8, 2),
	N("n_utf8_truncated_2", "[\"\xc3\"]", ZH_JE_UTF8, 2),
	N("n_utf8_truncated_3", "[\"\xe2\x82\"]", ZH_JE_UTF8, 2),
	N("n_utf8_truncated_at_eof", "[\"\xe2\x82", ZH_JE_UTF8, 2),
	N("n_utf8_bad_third", "[\"\xe2\x82\x41\"]", ZH_JE_UTF8, 2),
	N("n_utf8_after_long_run", "[\"abcdefghijklmnopqrstuvwxyz\xc3\xa9\xc3\"]", ZH_JE_UTF8, 30),
	N("n_utf8_outside_string", "[\xc3\xa9]", ZH_JE_SYNTAX, 1),
	/* implementation-defined (RFC 8259 §8.1, §8.2, §9): our choices */
	N("i_string_lone_surrogate_refused", "\"\\uDFAA\"", ZH_JE_SURROGATE, 1),
	N("i_structure_utf16_bom_refused", "\xfe\xff[]", ZH_JE_SYNTAX, 0),
	Y("i_number_huge_exp_accepted", "[1.5e99999]"),
	Y("i_number_tiny_accepted", "[4.9e-325]"),
	Y("i_number_very_long_accepted",
	  "[0.000000000000000000000000000000000000000000000000000000000000000000000001]"),
	Y("i_string_noncharacter_fffe_accepted", "[\"\xef\xbf\xbe\"]"),
};

static void check_row(const struct row *r)
{
	zh_jtok_t tok[64];
	zh_jdoc_t doc;
	size_t len = r->len ? r->len : strlen(r->text);
	int n = parse_guarded(r->text, len, tok, 64, 0, &doc);
	if (r->reason == ZH_JE_OK) {
		cr_expect_gt(n, 0, "%s: refused (%s at %zu)", r->name, zh_jdoc_reason(doc.reason),
			     doc.offset);
		return;
	}
	cr_expect_eq(n, -EINVAL, "%s: %d, expected -EINVAL", r->name, n);
	cr_expect_eq(doc.err, n, "%s: doc.err", r->name);
	cr_expect_eq(doc.reason, r->reason, "%s: reason %s, expected %s", r->name,
		     zh_jdoc_reason(doc.reason), zh_jdoc_reason(r->reason));
	if (r->offset >= 0)
		cr_expect_eq(doc.offset, (size_t)r->offset, "%s: offset %zu, expected %ld", r->name,
			     doc.offset, r->offset);
}

Test(json_read, test_suite_cases)
{
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
		check_row(&rows[i]);
}

/* Each y_ row stays valid, and each n_ row invalid, wherever a long string pushes it relative
 * to the 16-byte scan (the SIMD block boundary and the tail loop). */
Test(json_read, verdicts_do_not_depend_on_alignment)
{
	char buf[256];
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		const struct row *r = &rows[i];
		size_t len = r->len ? r->len : strlen(r->text);
		for (size_t pad = 0; pad < 40; pad++) {
			zh_jtok_t tok[64];
			zh_jdoc_t doc;
			int n;
			size_t k = 0; /* [ "xxx...", ROW ] */
			buf[k++] = '[';
			buf[k++] = '"';
			memset(buf + k, 'x', pad);
			k += pad;
			buf[k++] = '"';
			buf[k++] = ',';
			memcpy(buf + k, r->text, len);
			k += len;
			buf[k++] = ']';
			n = parse_guarded(buf, k, tok, 64, 0, &doc);
			if (r->reason == ZH_JE_OK)
				cr_expect_gt(n, 0, "%s pad %zu: refused", r->name, pad);
			else
				cr_expect_lt(n, 0, "%s pad %zu: accepted", r->name, pad);
		}
	}
}

Test(json_read, tokens_offsets_next_and_count)
{
	static const char text[] = " {\"a\": [1, {\"b\": null}, \"x\\ny\"], \"c\": -2.5e3} ";
	zh_jtok_t tok[16];
	zh_jdoc_t doc;
	int n = zh_jdoc_parse(&doc, text, sizeof text - 1, tok, 16, 0);
	cr_assert_eq(n, 10);
	/* 0 {  1 "a"  2 [  3 1  4 {  5 "b"  6 null  7 "x\ny"  8 "c"  9 -2.5e3 */
	static const struct {
		int type, count, next;
		const char *raw;
	} want[] = {
		{ZH_JT_OBJECT, 2, 10, "{\"a\": [1, {\"b\": null}, \"x\\ny\"], \"c\": -2.5e3}"},
		{ZH_JT_STRING, 0, 2, "a"},
		{ZH_JT_ARRAY, 3, 8, "[1, {\"b\": null}, \"x\\ny\"]"},
		{ZH_JT_NUMBER, 0, 4, "1"},
		{ZH_JT_OBJECT, 1, 7, "{\"b\": null}"},
		{ZH_JT_STRING, 0, 6, "b"},
		{ZH_JT_NULL, 0, 7, "null"},
		{ZH_JT_STRING, 0, 8, "x\\ny"},
		{ZH_JT_STRING, 0, 9, "c"},
		{ZH_JT_NUMBER, 0, 10, "-2.5e3"},
	};
	for (int i = 0; i < n; i++) {
		zh_slice_t raw = zh_jdoc_raw(&doc, (uint32_t)i);
		cr_expect_eq(zh_jdoc_type(&doc, (uint32_t)i), want[i].type, "token %d type", i);
		cr_expect_eq(tok[i].next, (uint32_t)want[i].next, "token %d next %u", i, tok[i].next);
		cr_expect_eq(zh_jdoc_count(&doc, (uint32_t)i), (uint32_t)want[i].count, "token %d count",
			     i);
		cr_expect(raw.len == strlen(want[i].raw) && memcmp(raw.ptr, want[i].raw, raw.len) == 0,
			  "token %d raw %.*s", i, (int)raw.len, raw.ptr);
	}
	cr_expect(tok[7].escaped && !tok[1].escaped);
	cr_expect(tok[9].real && !tok[3].real);
	cr_expect_eq(zh_jdoc_type(&doc, 10), ZH_JT_NONE);
	cr_expect_eq(zh_jdoc_type(&doc, ZH_JDOC_NONE), ZH_JT_NONE);
}

Test(json_read, navigation)
{
	static const char text[] = "{\"a\":[10,[20,21],{\"k\":1},30],\"b\\u0000c\":true,\"a\":2,"
				   "\"\\u00e9\":\"e\"}";
	zh_jtok_t tok[32];
	zh_jdoc_t doc;
	int64_t v;
	int b;
	uint32_t a, k, seen = 0;
	cr_assert_gt(zh_jdoc_parse(&doc, text, sizeof text - 1, tok, 32, 0), 0);
	a = zh_jdoc_member(&doc, 0, "a");
	cr_assert_eq(zh_jdoc_type(&doc, a), ZH_JT_ARRAY, "the first \"a\" wins");
	cr_expect_eq(zh_jdoc_count(&doc, a), 4);
	cr_expect_eq(zh_jdoc_i64(&doc, zh_jdoc_at(&doc, a, 0), &v), 0);
	cr_expect_eq(v, 10);
	cr_expect_eq(zh_jdoc_type(&doc, zh_jdoc_at(&doc, a, 1)), ZH_JT_ARRAY);
	cr_expect_eq(zh_jdoc_i64(&doc, zh_jdoc_at(&doc, zh_jdoc_at(&doc, a, 1), 1), &v), 0);
	cr_expect_eq(v, 21);
	cr_expect_eq(zh_jdoc_type(&doc, zh_jdoc_at(&doc, a, 2)), ZH_JT_OBJECT);
	cr_expect_eq(zh_jdoc_i64(&doc, zh_jdoc_at(&doc, a, 3), &v), 0);
	cr_expect_eq(v, 30);
	cr_expect_eq(zh_jdoc_at(&doc, a, 4), ZH_JDOC_NONE);
	cr_expect_eq(zh_jdoc_at(&doc, 0, 0), ZH_JDOC_NONE, "not an array");
	/* keys with escapes are compared unescaped, NUL included */
	cr_expect_eq(zh_jdoc_bool(&doc, zh_jdoc_member_n(&doc, 0, "b\0c", 3), &b), 0);
	cr_expect_eq(b, 1);
	cr_expect_eq(zh_jdoc_member(&doc, 0, "b"), ZH_JDOC_NONE);
	cr_expect_eq(zh_jdoc_type(&doc, zh_jdoc_member(&doc, 0, "\xc3\xa9")), ZH_JT_STRING);
	cr_expect_eq(zh_jdoc_member(&doc, 0, "zz"), ZH_JDOC_NONE);
	cr_expect_eq(zh_jdoc_member(&doc, a, "a"), ZH_JDOC_NONE, "not an object");
	/* iteration visits each member once, in order; elements likewise */
	for (k = zh_jdoc_first(&doc, 0); k != ZH_JDOC_NONE; k = zh_jdoc_next(&doc, 0, k)) {
		cr_expect_eq(zh_jdoc_type(&doc, k), ZH_JT_STRING);
		seen++;
	}
	cr_expect_eq(seen, 4);
	seen = 0;
	for (k = zh_jdoc_first(&doc, a); k != ZH_JDOC_NONE; k = zh_jdoc_next(&doc, a, k))
		seen++;
	cr_expect_eq(seen, 4);
	cr_expect_eq(zh_jdoc_first(&doc, zh_jdoc_member(&doc, 0, "\xc3\xa9")), ZH_JDOC_NONE);
}

Test(json_read, strings_unescape_on_demand)
{
	static const char text[] =
		"[\"plain\",\"a\\\"b\\\\c\\/d\\be\\ff\\ng\\rh\\ti\",\"\\u00e9\\u20ac\\ud83d\\ude00\","
		"\"x\\u0000y\",\"\\u0041\"]";
	zh_jtok_t tok[8];
	zh_jdoc_t doc;
	char buf[64];
	ssize_t n;
	cr_assert_eq(zh_jdoc_parse(&doc, text, sizeof text - 1, tok, 8, 0), 6);
	cr_expect_eq(zh_jdoc_string(&doc, 1, buf, sizeof buf), 5);
	cr_expect_str_eq(buf, "plain");
	cr_expect_eq(zh_jdoc_string(&doc, 2, buf, sizeof buf), 17);
	cr_expect_str_eq(buf, "a\"b\\c/d\be\ff\ng\rh\ti");
	n = zh_jdoc_string(&doc, 3, buf, sizeof buf);
	cr_expect_eq(n, 9);
	cr_expect_str_eq(buf, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
	cr_expect_eq(zh_jdoc_string(&doc, 4, buf, sizeof buf), 3);
	cr_expect(memcmp(buf, "x\0y", 4) == 0);
	/* the needed length, with or without a buffer; exactly len + 1 suffices */
	cr_expect_eq(zh_jdoc_string(&doc, 3, NULL, 0), 9);
	cr_expect_eq(zh_jdoc_string(&doc, 3, buf, 9), 9, "9 bytes do not hold 9 + NUL");
	cr_expect_eq(zh_jdoc_string(&doc, 1, buf, 5), 5);
	memset(buf, '#', sizeof buf);
	cr_expect_eq(zh_jdoc_string(&doc, 3, buf, 10), 9);
	cr_expect_str_eq(buf, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
	cr_expect_eq(zh_jdoc_string(&doc, 0, buf, sizeof buf), -EINVAL, "an array");
	/* comparison without unescaping */
	cr_expect(zh_jdoc_str_eq(&doc, 1, "plain", 5));
	cr_expect(!zh_jdoc_str_eq(&doc, 1, "plai", 4));
	cr_expect(!zh_jdoc_str_eq(&doc, 1, "plainx", 6));
	cr_expect(zh_jdoc_str_eq(&doc, 5, "A", 1));
	cr_expect(!zh_jdoc_str_eq(&doc, 5, "\\u0041", 6));
	cr_expect(zh_jdoc_str_eq(&doc, 3, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9));
	cr_expect(!zh_jdoc_str_eq(&doc, 3, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98", 8));
	cr_expect(!zh_jdoc_str_eq(&doc, 0, "", 0));
}

Test(json_read, integers)
{
	static const char text[] =
		"[0,-0,9223372036854775807,-9223372036854775808,9223372036854775808,"
		"-9223372036854775809,18446744073709551616,1.0,1e2,\"1\",12345678901234567890123]";
	static const struct {
		int r;
		int64_t v;
	} want[] = {{0, 0},
		    {0, 0},
		    {0, INT64_MAX},
		    {0, INT64_MIN},
		    {-ERANGE, 0},
		    {-ERANGE, 0},
		    {-ERANGE, 0},
		    {-EDOM, 0},
		    {-EDOM, 0},
		    {-EINVAL, 0},
		    {-ERANGE, 0}};
	zh_jtok_t tok[16];
	zh_jdoc_t doc;
	cr_assert_eq(zh_jdoc_parse(&doc, text, sizeof text - 1, tok, 16, 0), 12);
	for (uint32_t i = 0; i < 11; i++) {
		int64_t v = 77;
		int r = zh_jdoc_i64(&doc, i + 1, &v);
		cr_expect_eq(r, want[i].r, "element %u: %d", i, r);
		cr_expect_eq(v, want[i].r ? 77 : want[i].v, "element %u: %lld", i, (long long)v);
	}
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/* text must read exactly as strtod reads it (glibc: correctly rounded) */
static void check_double(const char *text)
{
	zh_jtok_t tok[2];
	zh_jdoc_t doc;
	double got = 0, want = strtod(text, NULL);
	int r;
	cr_assert_eq(zh_jdoc_parse(&doc, text, strlen(text), tok, 2, 0), 1, "%s", text);
	r = zh_jdoc_double(&doc, 0, &got);
	cr_expect_eq(r, isinf(want) ? -ERANGE : 0, "%s: %d", text, r);
	cr_expect(memcmp(&got, &want, sizeof got) == 0, "%s: got %.17g, strtod %.17g", text, got,
		  want);
}

Test(json_read, doubles_round_like_strtod)
{
	static const char *const fixed[] = {
		"0", "-0", "-0.0", "0e-999999", "1", "-1.5", "0.1", "1e22", "1e23", "9007199254740993",
		"9007199254740992.5", "2.2250738585072011e-308", "2.2250738585072014e-308",
		"4.9406564584124654e-324", "2.4703282292062327e-324", "2.4703282292062328e-324",
		"1.7976931348623157e308", "1.7976931348623158e308", "1.7976931348623159e308", "1e309",
		"-1e309", "123456789012345678901234567890", "0.000001", "1e-22", "1e-23",
		"179769313486231570000000000000000000000000000000000000000000000000000000000000000000"
		"00000000000000000000000000000000000000000000000000000000000000000000000000000000000"
		"00000000000000000000000000000000000000000000000000000000000000000000000000000000000"
		"00000000000000000000000000000000000000000000000000000000000000000000000000000000000",
		"1e99999999999999999999", "1e-99999999999999999999",
	};
	char buf[2048];
	for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
		check_double(fixed[i]);
	/* the halfway point between 1 and its successor, written with 1,000 digits and then a
	 * non-zero digit far past the kept ones: only the sticky digit says "above half" */
	{
		const char *half = "1.00000000000000011102230246251565404236316680908203125";
		size_t k = strlen(half);
		memcpy(buf, half, k);
		memset(buf + k, '0', 1000);
		buf[k + 1000] = '\0';
		check_double(buf); /* exactly half: ties to even, 1 */
		buf[k + 999] = '1';
		check_double(buf); /* just above: rounds up */
	}
	/* random numbers in the §6 grammar: up to 40 digits, random point and exponent */
	for (int i = 0; i < 200000; i++) {
		int nint = 1 + (int)(rnd() % 25), nfrac = (int)(rnd() % 20), k = 0;
		if (rnd() & 1)
			buf[k++] = '-';
		if (rnd() % 4 == 0)
			nint = 1, buf[k++] = '0';
		else
			for (int d = 0; d < nint; d++)
				buf[k++] = (char)(d == 0 ? '1' + rnd() % 9 : '0' + rnd() % 10);
		if (nfrac) {
			buf[k++] = '.';
			for (int d = 0; d < nfrac; d++)
				buf[k++] = (char)('0' + rnd() % 10);
		}
		if (rnd() & 1)
			k += sprintf(buf + k, "e%d", (int)(rnd() % 700) - 350);
		buf[k] = '\0';
		check_double(buf);
	}
}

Test(json_read, other_accessors)
{
	static const char text[] = "[true,false,null,1]";
	zh_jtok_t tok[8];
	zh_jdoc_t doc;
	int b = 7;
	double d;
	cr_assert_eq(zh_jdoc_parse(&doc, text, sizeof text - 1, tok, 8, 0), 5);
	cr_expect(zh_jdoc_bool(&doc, 1, &b) == 0 && b == 1);
	cr_expect(zh_jdoc_bool(&doc, 2, &b) == 0 && b == 0);
	cr_expect_eq(zh_jdoc_bool(&doc, 3, &b), -EINVAL);
	cr_expect(zh_jdoc_is_null(&doc, 3) && !zh_jdoc_is_null(&doc, 4));
	cr_expect_eq(zh_jdoc_double(&doc, 1, &d), -EINVAL);
	cr_expect_eq(zh_jdoc_double(&doc, 99, &d), -EINVAL);
	cr_expect_eq(zh_jdoc_string(&doc, ZH_JDOC_NONE, NULL, 0), -EINVAL);
	cr_expect_eq(zh_jdoc_count(&doc, 1), 0);
	cr_expect_eq(zh_jdoc_next(&doc, 0, 0), ZH_JDOC_NONE);
	/* a value passed where a key is due: the last one must not read past the tokens */
	{
		zh_jtok_t t3[3];
		zh_jdoc_t d3;
		cr_assert_eq(zh_jdoc_parse(&d3, "{\"a\":1}", 7, t3, 3, 0), 3);
		cr_expect_eq(zh_jdoc_next(&d3, 0, 2), ZH_JDOC_NONE);
		cr_expect_eq(zh_jdoc_next(&d3, 0, 1), ZH_JDOC_NONE);
	}
	cr_expect_eq(zh_jdoc_raw(&doc, 99).ptr, NULL);
}

Test(json_read, depth_limit)
{
	char buf[1024];
	zh_jtok_t tok[400];
	zh_jdoc_t doc;
	/* d levels, objects and arrays alternating: {"k":[{"k":[ ... 0 ... ]}]} */
	for (int d = 1; d <= 130; d++) {
		int k = 0, r;
		for (int i = 0; i < d; i++) {
			if (i % 2 == 0) {
				memcpy(buf + k, "{\"k\":", 5);
				k += 5;
			} else
				buf[k++] = '[';
		}
		buf[k++] = '0';
		for (int i = d - 1; i >= 0; i--)
			buf[k++] = i % 2 ? ']' : '}';
		r = parse_guarded(buf, (size_t)k, tok, 400, 0, &doc);
		if (d <= ZH_JDOC_MAX_DEPTH)
			cr_expect_gt(r, 0, "depth %d refused", d);
		else {
			cr_expect_eq(r, -ELOOP, "depth %d: %d", d, r);
			cr_expect_eq(doc.reason, ZH_JE_DEPTH);
		}
		r = parse_guarded(buf, (size_t)k, tok, 400, 10, &doc);
		cr_expect(d <= 10 ? r > 0 : r == -ELOOP, "max_depth 10, depth %d: %d", d, r);
	}
	/* the offset is that of the first bracket too deep */
	cr_assert_eq(parse_guarded("[[[0]]]", 7, tok, 10, 2, &doc), -ELOOP);
	cr_expect_eq(doc.offset, 2);
	/* deep documents cost no stack: a million levels with the limit lifted */
	{
		size_t levels = 1000000, len = 2 * levels + 1;
		char *deep = malloc(len);
		zh_jtok_t *many = malloc((levels + 1) * sizeof *many);
		cr_assert(deep && many);
		memset(deep, '[', levels);
		deep[levels] = '0';
		memset(deep + levels + 1, ']', levels);
		cr_expect_eq(zh_jdoc_parse(&doc, deep, len, many, levels + 1, UINT32_MAX), (int)levels + 1);
		cr_expect_eq(many[0].next, levels + 1);
		cr_expect_eq(many[0].len, len);
		free(deep);
		free(many);
	}
}

Test(json_read, token_limit)
{
	static const char text[] = "{\"a\":[1,2,3],\"b\":{}}";
	zh_jtok_t tok[8];
	zh_jdoc_t doc;
	/* 0 { 1 a 2 [ 3 1 4 2 5 3 6 b 7 {} : 8 tokens */
	cr_expect_eq(zh_jdoc_parse(&doc, text, sizeof text - 1, tok, 8, 0), 8);
	for (size_t cap = 0; cap < 8; cap++) {
		cr_expect_eq(zh_jdoc_parse(&doc, text, sizeof text - 1, tok, cap, 0), -E2BIG,
			     "cap %zu", cap);
		cr_expect_eq(doc.reason, ZH_JE_TOKENS);
	}
	cr_expect_eq(zh_jdoc_parse(&doc, text, sizeof text - 1, tok, 7, 0), -E2BIG);
	cr_expect_eq(doc.offset, 17, "the 8th value starts at %zu", doc.offset);
	/* a syntax error before the limit is still a syntax error */
	cr_expect_eq(zh_jdoc_parse(&doc, "[1,]", 4, tok, 2, 0), -EINVAL);
	cr_expect_eq(zh_jdoc_parse(&doc, "[1,2,x]", 7, tok, 2, 0), -E2BIG);
}

/* 4 GiB and more: refused before a byte is read (the pointer here has 1 byte behind it) */
Test(json_read, size_limit)
{
	zh_jtok_t tok[1];
	zh_jdoc_t doc;
	cr_expect_eq(zh_jdoc_parse(&doc, "x", (size_t)UINT32_MAX + 1, tok, 1, 0), -EFBIG);
	cr_expect_eq(doc.reason, ZH_JE_SIZE);
	cr_expect_eq(zh_jdoc_parse(&doc, "x", SIZE_MAX, tok, 1, 0), -EFBIG);
}

Test(json_read, reasons_have_texts)
{
	for (int r = ZH_JE_OK; r <= ZH_JE_BODY; r++)
		cr_expect(strcmp(zh_jdoc_reason(r), "unknown error") != 0, "reason %d", r);
	cr_expect_str_eq(zh_jdoc_reason(-1), "unknown error");
	cr_expect_str_eq(zh_jdoc_reason(ZH_JE_BODY + 1), "unknown error");
}

/* Every byte value in a string, alone and inside runs that straddle the SIMD block:
 * accepted exactly when RFC 8259 allows it as it is (0x20-0x7f but '"' and '\'). */
Test(json_read, every_byte_in_a_string)
{
	char buf[64];
	zh_jtok_t tok[4];
	zh_jdoc_t doc;
	for (int c = 0; c < 256; c++) {
		for (int at = 0; at < 34; at++) {
			int k = 0, r;
			buf[k++] = '"';
			for (int i = 0; i < 34; i++)
				buf[k++] = i == at ? (char)c : 'a';
			buf[k++] = '"';
			r = parse_guarded(buf, (size_t)k, tok, 4, 0, &doc);
			bool ok = c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
			if (ok)
				cr_expect_eq(r, 1, "byte %#x at %d", c, at);
			else
				cr_expect_lt(r, 0, "byte %#x at %d", c, at);
			/* a quote ends the string early (trailing text); a backslash escapes what
			 * follows it */
			if (!ok && c != '"' && c != '\\')
				cr_expect_eq(doc.offset, (size_t)at + 1, "byte %#x at %d: offset %zu", c, at,
					     doc.offset);
		}
	}
}
