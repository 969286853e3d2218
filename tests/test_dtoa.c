/* test_dtoa.c — zh__dtoa: shortest round-trip text for a double, laid out like Go's
 * encoding/json.
 *
 * Fixed cases pin the layout and the edge values. The property tests run about 2.3 million
 * doubles (random bit patterns, and decimal-looking values) through three checks: the text
 * reads back bit-for-bit, no decimal with one significant digit fewer reads back as the same
 * double, and the text is a JSON number laid out by the 1e-6 / 1e21 rule. A brute-force
 * reference built on glibc's correctly rounded printf and strtod also checks "the nearest
 * of the shortest" on a smaller set, including every power of two and of ten.
 */
#include <criterion/criterion.h>

#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dtoa.h"

enum { BUF = ZH__DTOA_MAX + 8 };

static uint64_t bits_of(double v)
{
	uint64_t b;
	memcpy(&b, &v, sizeof(b));
	return b;
}

static double from_bits(uint64_t b)
{
	double v;
	memcpy(&v, &b, sizeof(v));
	return v;
}

/* The next double towards zero / away from zero, and 2^i: by bits, exact, without libm
 * (the test links like the library, with no -lm). */
static double toward_zero(double v)
{
	return from_bits(bits_of(v) - 1);
}

static double away_from_zero(double v)
{
	return from_bits(bits_of(v) + 1);
}

static double pow2(int i)
{
	return i >= -1022 ? from_bits((uint64_t)(i + 1023) << 52) : from_bits(UINT64_C(1) << (i + 1074));
}

/* splitmix64: deterministic, so a failure names a value that fails again */
static uint64_t rng_next(uint64_t *state)
{
	uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));
	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

/* zh__dtoa into a sentinel-filled buffer; checks the length bound and that nothing past
 * the returned length was written, then NUL-terminates for the checks below */
static size_t fmt(double v, char *buf)
{
	memset(buf, '#', BUF);
	size_t n = zh__dtoa(v, buf);
	if (n < 1 || n > ZH__DTOA_MAX || buf[n] != '#')
		cr_assert_fail("%a: length %zu out of range or a byte written past it", v, n);
	buf[n] = '\0';
	return n;
}

static void expect(double v, const char *want)
{
	char buf[BUF];
	fmt(v, buf);
	cr_assert_str_eq(buf, want, "%a (%.17g): got %s, want %s", v, v, buf, want);
}

/* ---- fixed cases ------------------------------------------------------------------------ */

Test(dtoa, zero_one_and_sign)
{
	expect(0.0, "0");
	expect(-0.0, "-0");
	expect(1.0, "1");
	expect(-1.0, "-1");
	expect(5.0, "5");
	expect(-100.0, "-100");
	expect(0.1, "0.1");
	expect(0.3, "0.3");
	expect(-0.3, "-0.3");
	expect(0.1 + 0.2, "0.30000000000000004");
	expect(123.75, "123.75");
	expect(1.0 / 3.0, "0.3333333333333333");
	expect(2.0 / 3.0, "0.6666666666666666");
	expect(3.14159, "3.14159");
	expect(1e15 + 0.3, "1000000000000000.2");
}

Test(dtoa, quarters)
{
	/* i * 1.25 is exact, so its shortest text is its exact value */
	for (int i = -20000; i <= 20000; i++) {
		char want[32];
		long q = labs((long)i) * 125;	/* hundredths */
		if (q % 100 == 0)
			snprintf(want, sizeof(want), "%s%ld", i < 0 ? "-" : "", q / 100);
		else if (q % 10 == 0)
			snprintf(want, sizeof(want), "%s%ld.%ld", i < 0 ? "-" : "", q / 100, q % 100 / 10);
		else
			snprintf(want, sizeof(want), "%s%ld.%02ld", i < 0 ? "-" : "", q / 100, q % 100);
		if (i == 0)
			strcpy(want, "0");
		expect(i * 1.25, want);
	}
}

Test(dtoa, fixed_and_exponent_ranges)
{
	expect(1e21, "1e+21");
	expect(-1e21, "-1e+21");
	expect(9.999999999999999e20, "999999999999999900000");
	expect(toward_zero(1e21), "999999999999999900000");
	expect(1e20, "100000000000000000000");
	expect(123456789012345680000.0, "123456789012345680000");
	expect(1.2345678901234568e21, "1.2345678901234568e+21");
	expect(1e-6, "0.000001");
	expect(-1e-6, "-0.000001");
	expect(toward_zero(1e-6), "9.999999999999997e-7");
	expect(1.234e-6, "0.000001234");
	expect(1.2345678901234567e-6, "0.0000012345678901234567");
	expect(1e-7, "1e-7");
	expect(1.5e-7, "1.5e-7");
	expect(1e-10, "1e-10");
	expect(1e22, "1e+22");
	expect(1e23, "1e+23");
	expect(1e100, "1e+100");
	expect(1.5e300, "1.5e+300");
	expect(-1.5e-300, "-1.5e-300");
}

Test(dtoa, extremes)
{
	expect(5e-324, "5e-324");
	expect(-5e-324, "-5e-324");
	expect(from_bits(2), "1e-323");
	expect(from_bits(3), "1.5e-323");
	expect(from_bits(18), "9e-323");	/* 1 digit beats 8.9e-323 */
	expect(DBL_MAX, "1.7976931348623157e+308");
	expect(-DBL_MAX, "-1.7976931348623157e+308");
	expect(DBL_MIN, "2.2250738585072014e-308");
	expect(-2.2250738585072014e-308, "-2.2250738585072014e-308");
	expect(toward_zero(DBL_MIN), "2.225073858507201e-308");
	expect(DBL_EPSILON, "2.220446049250313e-16");
	expect(9007199254740992.0, "9007199254740992");	/* 2^53 */
	expect(9007199254740994.0, "9007199254740994");	/* 2^53 + 2 */
	expect(9007199254740991.0, "9007199254740991");
	expect(18014398509481988.0, "18014398509481988");
	expect(9223372036854775808.0, "9223372036854776000");	/* 2^63: digits, then zeros */
	expect(18446744073709551616.0, "18446744073709552000");	/* 2^64 */
	expect(1180591620717411303424.0, "1.1805916207174113e+21");	/* 2^70 */
	expect(8.98846567431158e307, "8.98846567431158e+307");		/* 2^1023 */
	expect(pow2(-1022), "2.2250738585072014e-308");
	expect(pow2(-1073), "1e-323");
	expect(pow2(-1000), "9.332636185032189e-302");
}

Test(dtoa, powers_of_ten)
{
	/* 1e-323 is the smallest that does not underflow to 0 or to 5e-324 */
	for (int i = -323; i <= 308; i++) {
		char src[16], want[400];
		snprintf(src, sizeof(src), "1e%d", i);
		if (i >= 0 && i <= 20) {
			want[0] = '1';
			memset(want + 1, '0', (size_t)i);
			want[i + 1] = '\0';
		} else if (i < 0 && i >= -6) {
			strcpy(want, "0.");
			memset(want + 2, '0', (size_t)(-i - 1));
			strcpy(want + 1 - i, "1");
		} else {
			snprintf(want, sizeof(want), "1e%s%d", i > 0 ? "+" : "", i);
		}
		expect(strtod(src, NULL), want);
	}
}

/* ---- properties ------------------------------------------------------------------------- */

/* The significant digits of a zh__dtoa text and its exponent: v = 0.DIGITS * 10^*point. */
static int digits_of(const char *s, char *dig, int *point)
{
	int n = 0, seen_point = 0, pt = 0;
	if (*s == '-')
		s++;
	for (; *s && *s != 'e'; s++) {
		if (*s == '.') {
			seen_point = 1;
			continue;
		}
		if (n == 0 && *s == '0') {
			if (seen_point)
				pt--;
			continue;
		}
		dig[n++] = *s;
		if (!seen_point)
			pt++;
	}
	if (*s == 'e')
		pt += atoi(s + 1);
	while (n > 0 && dig[n - 1] == '0') {
		n--;		/* trailing zeros of an integer are not significant */
	}
	dig[n] = '\0';
	*point = pt;
	return n;
}

/* JSON number grammar plus Go's layout: plain for 1e-6 <= |v| < 1e21, else one digit,
 * optional fraction, e, sign, exponent without leading zeros; no superfluous zeros. */
static const char *layout_error(const char *s, double v)
{
	const char *p = s;
	int plain = v == 0 || (fabs(v) >= 1e-6 && fabs(v) < 1e21);
	if (signbit(v) != (*p == '-'))
		return "sign";
	if (*p == '-')
		p++;
	if (*p == '0' && p[1] >= '0' && p[1] <= '9')
		return "leading zero";
	if (*p < '0' || *p > '9')
		return "no integer digit";
	const char *int_start = p;
	while (*p >= '0' && *p <= '9')
		p++;
	if (!plain && (p - int_start != 1 || *int_start == '0'))
		return "exponent form needs exactly one nonzero leading digit";
	if (*p == '.') {
		const char *frac = ++p;
		while (*p >= '0' && *p <= '9')
			p++;
		if (p == frac)
			return "empty fraction";
		if (p[-1] == '0')
			return "trailing zero in fraction";
	}
	if (plain) {
		if (*p != '\0')
			return "exponent outside the exponent range";
		if (v == 0 && strcmp(s, signbit(v) ? "-0" : "0") != 0)
			return "zero";
		return NULL;
	}
	if (v == 0)
		return "zero in exponent form";
	if (*p++ != 'e')
		return "missing exponent";
	if (*p != '+' && *p != '-')
		return "exponent sign";
	if ((*p == '+') != (fabs(v) >= 1))
		return "exponent sign does not match magnitude";
	p++;
	if (*p < '1' || *p > '9')
		return "exponent leading zero or missing";
	while (*p >= '0' && *p <= '9')
		p++;
	return *p == '\0' ? NULL : "junk after exponent";
}

static uint64_t ipow10(int n)
{
	uint64_t p = 1;
	while (n-- > 0)
		p *= 10;
	return p;
}

/* strtod of the decimal (dig[0..n) + plus_one) * 10^(point - n) */
static double read_back(const char *dig, int n, int point, int plus_one)
{
	char text[48];
	uint64_t m = 0;
	for (int i = 0; i < n; i++)
		m = m * 10 + (uint64_t)(dig[i] - '0');
	m += (uint64_t)plus_one;
	snprintf(text, sizeof(text), "%" PRIu64 "e%d", m, point - n);
	return strtod(text, NULL);
}

static uint64_t n_checked;

/* The three properties for one double. */
static void check(double v)
{
	char buf[BUF], dig[BUF];
	int point;
	fmt(v, buf);
	if (bits_of(strtod(buf, NULL)) != bits_of(v))
		cr_assert_fail("%a (%.17g): \"%s\" reads back as %a", v, v, buf, strtod(buf, NULL));
	const char *err = layout_error(buf, v);
	if (err)
		cr_assert_fail("%a (%.17g): \"%s\": %s", v, v, buf, err);
	/* Shortest: with n digits, the (n-1)-digit decimals around v are the truncation T of the
	 * text and T + 1 unit -- if one lay between v and the text, it would be one of those two
	 * (and would read back as v: everything between two values that do, does). */
	int n = digits_of(buf, dig, &point);
	if (n >= 2 && v != 0) {
		double a = fabs(v);
		double lo = read_back(dig, n - 1, point, 0);
		double hi = read_back(dig, n - 1, point, 1);
		if (lo == a || hi == a)
			cr_assert_fail("%a (%.17g): \"%s\" has %d digits, but %.*s(+1)e%d reads back too",
				 v, v, buf, n, n - 1, dig, point - n + 1);
	}
	n_checked++;
}

/* Brute force: for p = 1, 2, ... the two p-digit decimals around v are glibc's correctly
 * rounded %.*e and its neighbour on the other side of v; the first p where either reads back
 * gives the shortest length, and the nearer of those that do is the answer (glibc rounds
 * ties to even, as zh__dtoa does). */
static void reference(double v, char *dig, int *point)
{
	double a = fabs(v);
	char text[64];
	int p;

	for (p = 1; p <= 17; p++) {
		snprintf(text, sizeof(text), "%.*e", p - 1, a);
		double r = strtod(text, NULL);
		if (r == a)
			break;
		uint64_t m = 0;
		for (const char *s = text; *s != 'e'; s++) {
			if (*s != '.')
				m = m * 10 + (uint64_t)(*s - '0');
		}
		int e10 = atoi(strchr(text, 'e') + 1) - (p - 1);
		if (r < a) {
			m++;
		} else if (m == ipow10(p - 1)) {
			m = 10 * m - 1;		/* below a power of ten the grid is ten times finer */
			e10--;
		} else {
			m--;
		}
		snprintf(text, sizeof(text), "%" PRIu64 "e%d", m, e10);
		if (strtod(text, NULL) == a)
			break;
	}
	if (p > 17)
		cr_assert_fail("%a: no decimal of up to 17 digits reads back", v);
	digits_of(text, dig, point);
}

static uint64_t n_nearest;

static void check_nearest(double v)
{
	char buf[BUF], dig[BUF], want[BUF];
	int point, want_point;
	fmt(v, buf);
	digits_of(buf, dig, &point);
	reference(v, want, &want_point);
	if (strcmp(dig, want) != 0 || point != want_point)
		cr_assert_fail("%a (%.17g): \"%s\", but the nearest shortest is 0.%se%d", v, v, buf,
			 want, want_point);
	n_nearest++;
}

Test(dtoa, nearest_of_the_shortest_powers_and_subnormals)
{
	n_nearest = 0;
	for (int i = -1074; i <= 1023; i++) {
		check_nearest(pow2(i));
		check_nearest(-pow2(i));
		check_nearest(toward_zero(pow2(i)));
		check_nearest(away_from_zero(pow2(i)));
	}
	for (int i = -323; i <= 308; i++) {
		char src[16];
		snprintf(src, sizeof(src), "1e%d", i);
		double v = strtod(src, NULL);
		check_nearest(v);
		check_nearest(toward_zero(v));
		check_nearest(away_from_zero(v));
	}
	for (uint64_t c = 1; c <= 3000; c++)
		check_nearest(from_bits(c));	/* where the scaled value has few digits */
	cr_log_info("nearest, powers and subnormals: %" PRIu64 " doubles checked", n_nearest);
}

Test(dtoa, nearest_of_the_shortest_random, .timeout = 60)
{
	uint64_t st = 42;
	n_nearest = 0;
	for (int i = 0; i < 60000; i++) {
		uint64_t b = rng_next(&st);
		if ((b >> 52 & 0x7ff) == 0x7ff)
			continue;
		check_nearest(from_bits(b));
	}
	cr_log_info("nearest, random: %" PRIu64 " doubles checked", n_nearest);
}

Test(dtoa, random_bit_patterns, .timeout = 60)
{
	uint64_t st = 1;
	n_checked = 0;
	for (int i = 0; i < 1200000; i++) {
		uint64_t b = rng_next(&st);
		if ((b >> 52 & 0x7ff) == 0x7ff)
			continue;	/* NaN and infinities are not numbers */
		check(from_bits(b));
	}
	/* every binade edge and its neighbours */
	for (uint64_t e = 0; e < 0x7ff; e++) {
		static const uint64_t frac[] = { 0, 1, 2, 3, (UINT64_C(1) << 52) - 1,
						 (UINT64_C(1) << 52) - 2, UINT64_C(1) << 51 };
		for (size_t j = 0; j < sizeof(frac) / sizeof(frac[0]); j++) {
			check(from_bits(e << 52 | frac[j]));
			check(from_bits(UINT64_C(1) << 63 | e << 52 | frac[j]));
		}
	}
	cr_assert_geq(n_checked, 1150000, "%" PRIu64 " values checked", n_checked);
	cr_log_info("random_bit_patterns: %" PRIu64 " doubles checked", n_checked);
}

Test(dtoa, decimal_looking_values, .timeout = 60)
{
	uint64_t st = 2;
	n_checked = 0;
	for (int i = 0; i < 250000; i++) {
		uint64_t r = rng_next(&st);
		check((double)(r % 1000000000) / 1000);		/* prices, milliseconds */
		check((double)(r >> 32 & 0xfffff) / 100);
		check(-(double)(r % 100000000) / 1e6);
		check((double)(r >> 11));				/* integers below 2^53 */
	}
	/* A decimal of at most 15 significant digits in the normal range is the only one of
	 * its length that rounds to its double (DBL_DIG), so the shortest text is that
	 * decimal itself. */
	for (int i = 0; i < 1000000; i++) {
		uint64_t r = rng_next(&st);
		int len = (int)(r % 15) + 1;
		uint64_t m = rng_next(&st) % UINT64_C(1000000000000000);
		m %= ipow10(len);
		int e10 = (int)((r >> 8) % 616) - 307 - len;
		char src[48], buf[BUF], got[BUF], want[BUF];
		int got_point, want_point;
		snprintf(src, sizeof(src), "%" PRIu64 "e%d", m, e10);
		double v = strtod(src, NULL);
		if (!(fabs(v) >= DBL_MIN && fabs(v) <= DBL_MAX))
			continue;
		if (r >> 63)
			v = -v;
		check(v);
		fmt(v, buf);
		digits_of(buf, got, &got_point);
		digits_of(src, want, &want_point);
		if (strcmp(got, want) != 0 || got_point != want_point)
			cr_assert_fail("%s: got \"%s\"", src, buf);
	}
	cr_assert_geq(n_checked, 1950000, "%" PRIu64 " values checked", n_checked);
	cr_log_info("decimal_looking_values: %" PRIu64 " doubles checked", n_checked);
}
