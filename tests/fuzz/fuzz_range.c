/* fuzz_range.c — libFuzzer target for the range and conditional header parsers of static.c
 * (parse_ranges, none_match; zh__etag_listed, the HTTP-date parser and formatter and
 * zh__coding_q of http_util.c); static.c is included here for its static functions, the other
 * library sources are linked.
 *
 * Input: byte 0 selects the parser (mod 7), bytes 1-8 are a number (a file size, a time, a
 * file's identity), the rest is the header value, or for the generated modes the bytes that
 * build a well-formed one.
 *
 * Checked:
 *  0 Range (any bytes): at most 16 ranges, each first <= last < size, none overlapping, in
 *    request order; 416 (-1) only when no spec is satisfiable;
 *  6 Range (generated: well-formed lists of a-b, a- and -n with random OWS): exactly the
 *    ranges RFC 9110 §14.1.2 gives, by a reference written here;
 *  1 If-None-Match and If-Match: the verdict of a reference (weak, resp. strong comparison,
 *    "*", list elements with OWS) against a real entry's ETag built by
 *    zh__static_fill_metadata; the
 *    ETag itself, W/-prefixed, and inside a list always match If-None-Match;
 *  2 HTTP-date (any bytes): a value accepted is a valid IMF-fixdate, rfc850-date or
 *    asctime-date (RFC 9110 §5.6.7), i.e. the time it gives formats back (strftime, in that
 *    form) to the same text but for the day name, the rfc850 year in the clock's century
 *    unless that is more than 50 years ahead (RFC 9110 §5.6.7; §13.1.3: an invalid date
 *    MUST be ignored, not guessed at);
 *  3 HTTP-date (any time): what zh__http_date prints is 29 bytes of IMF-fixdate and parses
 *    back to the same time, for every time with a 4-digit year; others print a clamped date;
 *  4 Accept-Encoding (any bytes): q-values in [0, 1000];
 *  5 Accept-Encoding (generated: codings, q-values, OWS incl. HTAB): the q a reference gives.
 */
#include "../../src/static.c"

#include "fuzz_common.h"

/* ---- 0 / 6: Range ------------------------------------------------------------------------------ */

static void check_ranges(const range_t *r, int n, uint64_t size)
{
	CHECK(n >= -1 && n <= RANGES_MAX, "%d ranges", n);
	for (int i = 0; i < n; i++) {
		CHECK(r[i].first <= r[i].last && r[i].last < size,
		      "range %d: %llu-%llu of %llu", i, (unsigned long long)r[i].first,
		      (unsigned long long)r[i].last, (unsigned long long)size);
		for (int k = 0; k < i; k++)
			CHECK(r[i].last < r[k].first || r[k].last < r[i].first, "ranges overlap");
	}
}

/* Builds "bytes=..." from the input; returns what RFC 9110 §14.1.2 says parse_ranges gives. */
static int generated_ranges(fz_in_t *in, uint64_t size, char *text, size_t *tlen, range_t *want)
{
	static const char *const ows[4] = {"", " ", "\t", " \t "};
	int nspec = fz_u8(in) % 20, n = 0;
	bool ignore = nspec > RANGES_MAX;
	size_t o = 0;
	o += (size_t)sprintf(text, "bytes=%s", fz_u8(in) & 1 ? " " : "");
	for (int i = 0; i < nspec; i++) {
		uint8_t kind = fz_u8(in);
		uint64_t a, b;
		/* numbers near the size are the interesting ones */
		uint8_t how = fz_u8(in);
		uint64_t x = how & 0x80 ? fz_u64(in) : how & 0x40 ? size + (how & 7) - 4 : how & 0x3f;
		uint64_t y = fz_u8(in) & 1 ? x + fz_u8(in) : fz_u64(in);
		if (i)
			o += (size_t)sprintf(text + o, "%s,%s", ows[kind >> 4 & 3], ows[kind >> 6]);
		switch (kind % 3) {
		case 0: /* a-b */
			a = x, b = y;
			o += (size_t)sprintf(text + o, "%llu-%llu", (unsigned long long)a,
					     (unsigned long long)b);
			if (b < a)
				ignore = true; /* an invalid spec: the whole header is ignored */
			else if (a < size)
				want[n++] = (range_t){a, b < size ? b : size - 1};
			break;
		case 1: /* a- */
			a = x;
			o += (size_t)sprintf(text + o, "%llu-", (unsigned long long)a);
			if (a < size)
				want[n++] = (range_t){a, size - 1};
			break;
		default: /* -n: the last n bytes */
			b = x;
			o += (size_t)sprintf(text + o, "-%llu", (unsigned long long)b);
			if (b > 0 && size > 0)
				want[n++] = (range_t){b >= size ? 0 : size - b, size - 1};
			break;
		}
		if (n > RANGES_MAX)
			n = RANGES_MAX; /* ignored anyway: more than 16 specs */
	}
	*tlen = o;
	if (nspec == 0 || ignore)
		return 0;
	for (int i = 0; i < n; i++)
		for (int k = 0; k < i; k++)
			if (!(want[i].last < want[k].first || want[k].last < want[i].first))
				return 0; /* overlapping: answered whole */
	return n ? n : -1;
}

/* ---- 1: If-None-Match ---------------------------------------------------------------------------- */

/* weak: If-None-Match's weak comparison; else If-Match's strong one (a W/ tag never
 * matches) */
static bool ref_listed(const char *v, size_t len, const char *etag, size_t elen, bool weak)
{
	size_t i = 0;
	while (i <= len) {
		size_t s = i, e;
		while (i < len && v[i] != ',')
			i++;
		e = i++;
		while (s < e && (v[s] == ' ' || v[s] == '\t'))
			s++;
		while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
			e--;
		if (e - s == 1 && v[s] == '*')
			return true;
		if (e - s >= 2 && v[s] == 'W' && v[s + 1] == '/') {
			if (!weak)
				continue;
			s += 2;
		}
		if (e - s == elen && memcmp(v + s, etag, elen) == 0)
			return true;
	}
	return false;
}

/* ---- 5: Accept-Encoding ---------------------------------------------------------------------------- */

static const char *const coding_names[8] = {"gzip", "br",	"deflate", "identity",
					    "*",    "GZIP", "x-gzip",  "Br"};
static const struct {
	const char *text;
	int q;
} qvalues[10] = {{"0", 0},	    {"0.5", 500},     {"0.500", 500}, {"1", 1000},
		 {"1.0", 1000},	    {"1.000", 1000},  {"0.001", 1},   {"0.1", 100},
		 {"0.01", 10},	    {"0.999", 999}};

static bool ieq_str(const char *a, const char *b)
{
	size_t n = strlen(a);
	return strlen(b) == n && zh__ieq(a, b, n);
}

static void generated_coding(fz_in_t *in, char *text, size_t *tlen, int want[2])
{
	static const char *const ows[4] = {"", " ", "\t", " \t"};
	static const char *const asked[2] = {"gzip", "br"};
	int n = fz_u8(in) % 6, used = 0, star = -1, q_of[2] = {-1, -1};
	size_t o = 0;
	for (int i = 0; i < n; i++) {
		uint8_t a = fz_u8(in), b = fz_u8(in);
		const char *name = coding_names[a & 7];
		int q = 1000, dup = 0;
		for (int k = 0; k < 8; k++)
			if ((used >> k & 1) && ieq_str(coding_names[k], name))
				dup = 1;
		if (dup)
			continue; /* one element per coding: RFC 9110 leaves repeats undefined */
		used |= 1 << (a & 7);
		if (o)
			o += (size_t)sprintf(text + o, "%s,%s", ows[a >> 3 & 3], ows[a >> 5 & 3]);
		o += (size_t)sprintf(text + o, "%s", name);
		if (b & 1) {
			q = qvalues[(b >> 1) % 10].q;
			o += (size_t)sprintf(text + o, "%s;%sq=%s", ows[b >> 5 & 3], ows[b >> 7],
					     qvalues[(b >> 1) % 10].text);
		}
		if (strcmp(name, "*") == 0)
			star = q;
		for (int k = 0; k < 2; k++)
			if (ieq_str(name, asked[k]))
				q_of[k] = q;
	}
	*tlen = o;
	for (int k = 0; k < 2; k++)
		want[k] = q_of[k] >= 0 ? q_of[k] : star >= 0 ? star : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fz_in_t in = {data, size};
	uint8_t sel = fz_u8(&in);
	uint64_t num = fz_u64(&in);
	char *v = fz_dup(in.p, in.n);
	zh_slice_t val = {v, in.n};

	switch (sel % 7) {
	case 0: {
		range_t r[RANGES_MAX];
		int n = parse_ranges(val, num, r);
		check_ranges(r, n, num);
		break;
	}
	case 6: {
		range_t r[RANGES_MAX], want[RANGES_MAX + 1];
		char text[20 * 48 + 16];
		size_t tlen;
		int expect = generated_ranges(&in, num, text, &tlen, want), n;
		char *exact = fz_dup(text, tlen);
		n = parse_ranges((zh_slice_t){exact, tlen}, num, r);
		check_ranges(r, n, num);
		CHECK(n == expect, "'%.*s' of %llu: %d ranges, expected %d", (int)tlen, text,
		      (unsigned long long)num, n, expect);
		for (int i = 0; i < n; i++)
			CHECK(r[i].first == want[i].first && r[i].last == want[i].last,
			      "'%.*s': range %d is %llu-%llu, expected %llu-%llu", (int)tlen, text,
			      i, (unsigned long long)r[i].first, (unsigned long long)r[i].last,
			      (unsigned long long)want[i].first, (unsigned long long)want[i].last);
		free(exact);
		break;
	}
	case 1: {
		entry_t e;
		struct stat sb;
		char list[160];
		const char *etag;
		int ln;
		memset(&e, 0, sizeof e);
		memset(&sb, 0, sizeof sb);
		sb.st_ino = (ino_t)num;
		sb.st_size = (off_t)(num >> 20);
		sb.st_mtim.tv_sec = (time_t)(num % 4102444800u); /* up to 2100 */
		sb.st_mtim.tv_nsec = (long)(num % 1000000000u);
		zh__static_fill_metadata(&e, &sb);
		etag = ETAG(&e);
		CHECK(e.etag_len >= 2 && etag[0] == '"' && etag[e.etag_len - 1] == '"' &&
			      !memchr(etag + 1, '"', e.etag_len - 2) && !memchr(etag, ',', e.etag_len),
		      "ETag %.*s", (int)e.etag_len, etag);
		CHECK(zh__etag_listed(val, etag, e.etag_len, false) ==
			      ref_listed(v, in.n, etag, e.etag_len, false),
		      "If-Match '%.*s' vs %.*s", (int)in.n, v, (int)e.etag_len, etag);
		CHECK(none_match(val, &e) == ref_listed(v, in.n, etag, e.etag_len, true),
		      "If-None-Match '%.*s' vs %.*s", (int)in.n, v, (int)e.etag_len, etag);
		CHECK(none_match((zh_slice_t){etag, e.etag_len}, &e), "own ETag");
		ln = snprintf(list, sizeof list, "\"x\" ,\tW/%.*s , \"y\"", (int)e.etag_len, etag);
		CHECK(none_match((zh_slice_t){list, (size_t)ln}, &e), "weak ETag in a list");
		break;
	}
	case 2: {
		time_t t, now = (time_t)(num % 253402300799u);
		if (zh__http_date_parse(v, in.n, now, &t)) {
			static const char mon[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
			char back[64];
			struct tm tm, nowtm;
			const char *comma = memchr(v, ',', in.n);
			size_t skip = in.n == 24 || !comma ? 3 : (size_t)(comma - v);
			int bn;
			CHECK(t >= -62167219200 && t <= 253402300799, "accepted out of range: %lld",
			      (long long)t);
			CHECK(gmtime_r(&t, &tm) && gmtime_r(&now, &nowtm), "gmtime_r");
			if (in.n == 29) /* IMF-fixdate */
				bn = (int)zh__http_date(t, back);
			else if (in.n == 24) /* asctime-date: day " 6" or "06" */
				bn = snprintf(back, sizeof back,
					      v[8] == '0' ? "Xxx %.3s %02d %02d:%02d:%02d %04d"
							  : "Xxx %.3s %2d %02d:%02d:%02d %04d",
					      mon + 3 * tm.tm_mon, tm.tm_mday, tm.tm_hour, tm.tm_min,
					      tm.tm_sec, tm.tm_year + 1900);
			else /* rfc850-date, the day name as sent */
				bn = snprintf(back, sizeof back, "%.*s, %02d-%.3s-%02d %02d:%02d:%02d GMT",
					      (int)skip, v, tm.tm_mday, mon + 3 * tm.tm_mon,
					      (tm.tm_year + 1900) % 100, tm.tm_hour, tm.tm_min, tm.tm_sec);
			/* the day name need not be the right one, only one (robustness) */
			CHECK((size_t)bn == in.n && memcmp(back + skip, v + skip, in.n - skip) == 0,
			      "accepted '%.*s', which means '%s'", (int)in.n, v, back);
			if (in.n != 29 && in.n != 24) {
				/* the clock's century, unless that is more than 50 years ahead */
				int cur = nowtm.tm_year + 1900, yy = (tm.tm_year + 1900) % 100;
				int want = cur - cur % 100 + yy;
				if (want > cur + 50)
					want -= 100;
				CHECK(tm.tm_year + 1900 == want, "'%.*s' dated %d at %d, want %d",
				      (int)in.n, v, tm.tm_year + 1900, cur, want);
			}
		}
		break;
	}
	case 3: {
		char out[30];
		time_t t = (time_t)num, back;
		size_t n = zh__http_date(t, out);
		CHECK(n == 29, "length %zu", n);
		for (size_t i = 0; i < n; i++)
			CHECK(out[i] >= 0x20 && out[i] < 0x7f, "byte 0x%02x in a date",
			      (unsigned char)out[i]);
		CHECK(zh__http_date_parse(out, n, 0, &back), "'%.29s' (%lld) does not parse back", out,
		      (long long)t);
		if (t >= -62167219200 && t <= 253402300799)
			CHECK(back == t, "'%.29s': %lld parses back as %lld", out, (long long)t,
			      (long long)back);
		break;
	}
	case 4: {
		static const char *const asked[4] = {"gzip", "br", "identity", "x"};
		int q = zh__coding_q(val, asked[num & 3]);
		CHECK(q >= 0 && q <= 1000, "q %d", q);
		break;
	}
	case 5: {
		char text[6 * 40];
		size_t tlen;
		int want[2];
		char *exact;
		generated_coding(&in, text, &tlen, want);
		exact = fz_dup(text, tlen);
		CHECK(zh__coding_q((zh_slice_t){exact, tlen}, "gzip") == want[0],
		      "'%.*s': gzip q %d, expected %d", (int)tlen, text,
		      zh__coding_q((zh_slice_t){exact, tlen}, "gzip"), want[0]);
		CHECK(zh__coding_q((zh_slice_t){exact, tlen}, "br") == want[1],
		      "'%.*s': br q %d, expected %d", (int)tlen, text,
		      zh__coding_q((zh_slice_t){exact, tlen}, "br"), want[1]);
		free(exact);
		break;
	}
	}
	free(v);
	return 0;
}
