/* http_util.c — HTTP utilities shared by the core and the features (declared in ext.h):
 * HTTP-dates (formatting and the three-form parser), Accept-Encoding q-values and entity-tag
 * list comparison. Pure functions of their arguments: no allocation, no worker state.
 *
 * Elsewhere: status reasons come from HTTP/1.1's status-line table (http1.c, zh__status_reason);
 * percent-decoding helpers are static inline in ext.h (the router and the path checks call
 * them per byte).
 */
#include "ext.h"

#include <stdbool.h>
#include <string.h>
#include <time.h>

/* IMF-fixdate (RFC 9110 §5.6.7) by hand: strftime/strptime follow LC_TIME, which a host
 * application may have set to a language other than English. */
static const char day_names[] = "SunMonTueWedThuFriSat";
static const char month_names[] = "JanFebMarAprMayJunJulAugSepOctNovDec";

static void put2(char *p, int v)
{
	p[0] = (char)('0' + v / 10 % 10);
	p[1] = (char)('0' + v % 10);
}

size_t zh__http_date(time_t t, char out[30])
{
	struct tm tm;
	int year;
	/* IMF-fixdate has a 4-digit year, and gmtime_r fails (tm left unset) for a year beyond
	 * int: a file's mtime can be anything, so clamp to 0000-01-01 .. 9999-12-31 */
	if (t < -62167219200)
		t = -62167219200;
	else if (t > 253402300799)
		t = 253402300799;
	gmtime_r(&t, &tm);
	year = tm.tm_year + 1900;
	/* "Sun, 06 Nov 1994 08:49:37 GMT" */
	memcpy(out, day_names + 3 * tm.tm_wday, 3);
	memcpy(out + 3, ", ", 2);
	put2(out + 5, tm.tm_mday);
	out[7] = ' ';
	memcpy(out + 8, month_names + 3 * tm.tm_mon, 3);
	out[11] = ' ';
	put2(out + 12, year / 100);
	put2(out + 14, year % 100);
	out[16] = ' ';
	put2(out + 17, tm.tm_hour);
	out[19] = ':';
	put2(out + 20, tm.tm_min);
	out[22] = ':';
	put2(out + 23, tm.tm_sec);
	memcpy(out + 25, " GMT", 5);
	return 29;
}

/* n decimal digits at p, or -1 if one of them is not a digit (no sign, no blank). */
static int digits_at(const char *p, int n)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		v = v * 10 + (p[i] - '0');
	}
	return v;
}

/* Index of the 3-letter name at p in names (of count 3-letter entries), or -1. Case
 * matters: the grammar's names are case-sensitive (RFC 9110 §5.6.7). */
static int name_at(const char *names, int count, const char *p)
{
	for (int i = 0; i < count; i++)
		if (memcmp(names + 3 * i, p, 3) == 0)
			return i;
	return -1;
}

/* day-name-l of RFC 850 dates: the full day name */
static bool full_day_name(const char *p, size_t len)
{
	static const char *const full[7] = {"Sunday",	"Monday", "Tuesday", "Wednesday",
					    "Thursday", "Friday", "Saturday"};
	for (int i = 0; i < 7; i++)
		if (strlen(full[i]) == len && memcmp(full[i], p, len) == 0)
			return true;
	return false;
}

/* time-of-day = hour ":" minute ":" second, 8 bytes; false when malformed. Ranges are
 * checked by the round trip in zh__http_date_parse. */
static bool time_at(const char *p, struct tm *tm)
{
	tm->tm_hour = digits_at(p, 2);
	tm->tm_min = digits_at(p + 3, 2);
	tm->tm_sec = digits_at(p + 6, 2);
	return p[2] == ':' && p[5] == ':' && tm->tm_hour >= 0 && tm->tm_min >= 0 && tm->tm_sec >= 0;
}

/* The fields of one of the three HTTP-date forms (RFC 9110 §5.6.7), unchecked ranges:
 *   IMF-fixdate  "Sun, 06 Nov 1994 08:49:37 GMT"
 *   rfc850-date  "Sunday, 06-Nov-94 08:49:37 GMT"  (tm_year: the two digits only)
 *   asctime-date "Sun Nov  6 08:49:37 1994"
 * Returns 1, 2, 3 for the form, 0 if it is none of them. */
static int date_fields(const char *p, size_t len, struct tm *tm)
{
	const char *c = memchr(p, ',', len < 10 ? len : 10);
	memset(tm, 0, sizeof tm[0]);
	if (len == 29 && c == p + 3 && name_at(day_names, 7, p) >= 0 &&
	    memcmp(p + 3, ", ", 2) == 0 && p[7] == ' ' && p[11] == ' ' && p[16] == ' ' &&
	    memcmp(p + 25, " GMT", 4) == 0 && time_at(p + 17, tm)) {
		tm->tm_mday = digits_at(p + 5, 2);
		tm->tm_mon = name_at(month_names, 12, p + 8);
		tm->tm_year = digits_at(p + 12, 4);
		return 1;
	}
	if (c && len == (size_t)(c - p) + 24 && full_day_name(p, (size_t)(c - p)) &&
	    c[1] == ' ' && c[4] == '-' && c[8] == '-' && c[11] == ' ' &&
	    memcmp(c + 20, " GMT", 4) == 0 && time_at(c + 12, tm)) {
		tm->tm_mday = digits_at(c + 2, 2);
		tm->tm_mon = name_at(month_names, 12, c + 5);
		tm->tm_year = digits_at(c + 9, 2);
		return 2;
	}
	if (len == 24 && name_at(day_names, 7, p) >= 0 && p[3] == ' ' && p[7] == ' ' &&
	    p[10] == ' ' && p[19] == ' ' && time_at(p + 11, tm)) {
		/* date3 = month SP ( 2DIGIT / ( SP DIGIT ) ) */
		tm->tm_mday = p[8] == ' ' ? digits_at(p + 9, 1) : digits_at(p + 8, 2);
		tm->tm_mon = name_at(month_names, 12, p + 4);
		tm->tm_year = digits_at(p + 20, 4);
		return 3;
	}
	return 0;
}

bool zh__http_date_parse(const char *p, size_t len, time_t now, time_t *out)
{
	struct tm tm, back;
	int form = date_fields(p, len, &tm), year = tm.tm_year;
	time_t t;
	if (form == 0 || tm.tm_mday < 0 || tm.tm_mon < 0 || year < 0)
		return false;
	if (form == 2) {
		/* RFC 9110 §5.6.7: a two-digit year that would be more than 50 years in the
		 * future is the most recent past year with those last two digits */
		struct tm nowtm;
		int cur;
		if (gmtime_r(&now, &nowtm) == NULL)
			return false;
		cur = nowtm.tm_year + 1900;
		year += cur - cur % 100;
		if (year > cur + 50)
			year -= 100;
		if (year > 9999)
			return false; /* past what Last-Modified can say (zh__http_date clamps) */
	}
	tm.tm_year = year - 1900;
	/* RFC 9110 §13.1.3: an invalid date is ignored, not guessed at. timegm normalizes
	 * "31 Feb" or "25:00" into another date: the fields must come back unchanged. The
	 * day name only has to be one. */
	back = tm;
	t = timegm(&back);
	if (back.tm_mday != tm.tm_mday || back.tm_mon != tm.tm_mon ||
	    back.tm_year != tm.tm_year || back.tm_hour != tm.tm_hour || back.tm_min != tm.tm_min ||
	    back.tm_sec != tm.tm_sec || tm.tm_mday == 0)
		return false;
	*out = t;
	return true;
}

/* Accept-Encoding (RFC 9110 §12.5.3): the q-value (x 1000) given to coding, or to "*",
 * else 0. Used by the static handler
 * (precompressed variants) and the gzip middleware. */
int zh__coding_q(zh_slice_t v, const char *coding)
{
	size_t clen = strlen(coding), i = 0;
	int star = -1, q_found = -1;
	while (i < v.len) {
		size_t s, t;
		int q = 1000;
		/* OWS is SP or HTAB: a coding followed by HTAB must not go unrecognized (its
		 * "q=0" would be missed and "*" would apply) */
		while (i < v.len && (v.ptr[i] == ' ' || v.ptr[i] == '\t' || v.ptr[i] == ','))
			i++;
		s = i;
		while (i < v.len && v.ptr[i] != ',' && v.ptr[i] != ';' && v.ptr[i] != ' ' &&
		       v.ptr[i] != '\t')
			i++;
		t = i;
		while (i < v.len && v.ptr[i] != ',') {
			/* a parameter: ';' OWS "q=" (case-insensitive, RFC 9110 §12.4.2) */
			size_t at = i + 1;
			bool param = v.ptr[i] == ';';
			while (param && at < v.len && (v.ptr[at] == ' ' || v.ptr[at] == '\t'))
				at++;
			if (param && at + 1 < v.len && (v.ptr[at] | 0x20) == 'q' && v.ptr[at + 1] == '=') {
				const char *p = v.ptr + at + 2, *end = v.ptr + v.len;
				i = at;
				q = 0;
				if (p < end && *p == '1')
					q = 1000;
				else if (p + 1 < end && *p == '0' && p[1] == '.')
					for (int d = 0, m = 100; d < 3 && p + 2 + d < end &&
								 p[2 + d] >= '0' && p[2 + d] <= '9';
					     d++, m /= 10)
						q += (p[2 + d] - '0') * m;
			}
			i++;
		}
		if (t - s == clen && zh__ieq(v.ptr + s, coding, clen))
			q_found = q;
		else if (t - s == 1 && v.ptr[s] == '*')
			star = q;
	}
	return q_found >= 0 ? q_found : (star >= 0 ? star : 0);
}

bool zh__list_next(zh_slice_t v, size_t *pos, zh_slice_t *elem)
{
	size_t i = *pos, s, e;
	while (i < v.len && (v.ptr[i] == ' ' || v.ptr[i] == '\t' || v.ptr[i] == ','))
		i++;
	if (i == v.len) {
		*pos = i;
		return false;
	}
	s = i;
	while (i < v.len && v.ptr[i] != ',')
		i++;
	e = i;
	while (e > s && (v.ptr[e - 1] == ' ' || v.ptr[e - 1] == '\t'))
		e--;
	*pos = i;
	*elem = (zh_slice_t){v.ptr + s, e - s};
	return true;
}

/* Does the entity-tag list v (If-Match, If-None-Match) name the entity-tag etag, quotes
 * included ("*" names any)? weak: the weak
 * comparison (RFC 9110 §8.8.3.2, a W/ prefix ignored), else the strong one (a W/ tag never
 * matches). */
bool zh__etag_listed(zh_slice_t v, const char *etag, size_t etag_len, bool weak)
{
	size_t i = 0;
	zh_slice_t e;
	while (zh__list_next(v, &i, &e)) {
		if (e.len == 1 && e.ptr[0] == '*')
			return true;
		if (e.len > 2 && e.ptr[0] == 'W' && e.ptr[1] == '/') {
			if (!weak)
				continue;
			e.ptr += 2;
			e.len -= 2;
		}
		if (e.len == etag_len && memcmp(e.ptr, etag, etag_len) == 0)
			return true;
	}
	return false;
}

/* v in lowercase hex, no leading zeros, at p (at most 16 bytes); returns the end. Chunk
 * sizes: HTTP/1.1's framing, and the chunks an HTTP/2 request body is re-framed into. */
char *zh__append_hex(char *p, uint64_t v)
{
	static const char hex[] = "0123456789abcdef";
	char tmp[16];
	int n = 0;
	do {
		tmp[n++] = hex[v & 15];
		v >>= 4;
	} while (v);
	while (n)
		*p++ = tmp[--n];
	return p;
}
