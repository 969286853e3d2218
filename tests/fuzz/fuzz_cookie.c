/* fuzz_cookie.c — libFuzzer target for the Cookie parser and the Set-Cookie builder
 * (cookie.c), linked with the library.
 *
 * Input: byte 0 chooses: bit 0 clear parses the rest as a Cookie field value; set builds a
 * Set-Cookie from it: bits 1-2 same_site, bit 3 secure, bit 4 http_only, bit 5 a Max-Age,
 * bit 6 an Expires (8 more bytes each), then name, value, path, domain as the rest split at
 * NUL bytes (a missing path or domain is NULL).
 *
 * Parser, against a reference written here (split at ';', trim blanks, skip pieces without
 * '=' or with an empty name, unwrap one pair of DQUOTEs): the same pairs, as slices of the
 * exact-size input; no ';' in a name or value; no blank at either end of a name.
 * Builder, against a reference validator (token name, cookie-octet value optionally in
 * DQUOTEs, path without controls or ';', domain of letters, digits, '-' and '.', SameSite
 * None only with Secure): it succeeds exactly when the reference says valid; its output is
 * a valid header field value (no control byte) that parses back (zh_cookie_parse_next) to
 * the name and value first; a buffer one byte short gives -ENOSPC.
 */
#include "zerohttp.h"

#include "fuzz_common.h"

#include <errno.h>
#include <stdbool.h>

static bool blank(char c)
{
	return c == ' ' || c == '\t';
}

static void check_parse(const char *s, size_t len)
{
	zh_slice_t rest = {s, len}, n, v;
	size_t at = 0;
	for (;;) {
		/* the reference's next pair */
		const char *rn = NULL, *rv = NULL;
		size_t rnl = 0, rvl = 0;
		while (at < len && rn == NULL) {
			size_t end = at, eq, a, b;
			while (end < len && s[end] != ';')
				end++;
			for (eq = at; eq < end && s[eq] != '='; eq++)
				;
			if (eq < end) {
				for (a = at; a < eq && blank(s[a]); a++)
					;
				for (b = eq; b > a && blank(s[b - 1]); b--)
					;
				if (b > a) {
					rn = s + a;
					rnl = b - a;
					for (a = eq + 1; a < end && blank(s[a]); a++)
						;
					for (b = end; b > a && blank(s[b - 1]); b--)
						;
					if (b - a >= 2 && s[a] == '"' && s[b - 1] == '"')
						a++, b--;
					rv = s + a;
					rvl = b - a;
				}
			}
			at = end + 1;
		}
		if (rn == NULL) {
			CHECK(zh_cookie_parse_next(&rest, &n, &v) == 0, "an extra pair");
			return;
		}
		CHECK(zh_cookie_parse_next(&rest, &n, &v) == 1, "a missing pair");
		CHECK(n.ptr == rn && n.len == rnl && v.ptr == rv && v.len == rvl, "pair differs");
		CHECK(!memchr(n.ptr, ';', n.len) && !memchr(v.ptr, ';', v.len), "';' inside");
		CHECK(!blank(n.ptr[0]) && !blank(n.ptr[n.len - 1]), "blank around a name");
	}
}

static bool tchar(unsigned char c)
{
	return c > 0x20 && c < 0x7f && !strchr("\"(),/:;<=>?@[\\]{}", c);
}

static bool ref_valid(const zh_cookie_t *c)
{
	size_t n = strlen(c->name), vl = strlen(c->value);
	const char *v = c->value;
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!tchar((unsigned char)c->name[i]))
			return false;
	if (vl >= 2 && v[0] == '"' && v[vl - 1] == '"')
		v++, vl -= 2;
	for (size_t i = 0; i < vl; i++) {
		unsigned char x = (unsigned char)v[i];
		if (!(x == 0x21 || (x >= 0x23 && x <= 0x2b) || (x >= 0x2d && x <= 0x3a) ||
		      (x >= 0x3c && x <= 0x5b) || (x >= 0x5d && x <= 0x7e)))
			return false;
	}
	if (c->path)
		for (const char *p = c->path; *p; p++)
			if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e || *p == ';')
				return false;
	if (c->domain) {
		const char *d = c->domain + (c->domain[0] == '.');
		if (!*d)
			return false;
		for (; *d; d++)
			if (!((*d >= 'a' && *d <= 'z') || (*d >= 'A' && *d <= 'Z') ||
			      (*d >= '0' && *d <= '9') || *d == '-' || *d == '.'))
				return false;
	}
	return c->same_site != ZH_SAMESITE_NONE || c->secure;
}

static void check_build(fz_in_t *in, uint8_t mode)
{
	static char text[8192], out[16384];
	const char *field[4] = {NULL, NULL, NULL, NULL};
	zh_cookie_t c;
	size_t n = in->n < sizeof text - 1 ? in->n : sizeof text - 1, f = 0, i;
	ssize_t len;
	zh_cookie_init(&c);
	c.same_site = (mode >> 1) & 3;
	c.secure = (mode >> 3) & 1;
	c.http_only = (mode >> 4) & 1;
	if (mode & 0x20)
		c.max_age = (int64_t)fz_u64(in);
	if (mode & 0x40)
		c.expires = (int64_t)(fz_u64(in) % 400000000000ull) - 100000000000;
	n = in->n < sizeof text - 1 ? in->n : sizeof text - 1;
	memcpy(text, in->p, n);
	text[n] = '\0';
	field[0] = text;
	for (i = 0; i < n && f < 3; i++)
		if (text[i] == '\0')
			field[++f] = text + i + 1;
	c.name = field[0];
	c.value = field[1] ? field[1] : "";
	c.path = field[2];
	c.domain = field[3];
	len = zh_cookie_format(&c, out, sizeof out);
	if (!ref_valid(&c)) {
		CHECK(len == -EINVAL, "an invalid cookie formatted: %zd", len);
		return;
	}
	CHECK(len > 0 && (size_t)len == strlen(out), "a valid cookie refused: %zd", len);
	for (ssize_t k = 0; k < len; k++)
		CHECK((unsigned char)out[k] >= 0x20 && (unsigned char)out[k] < 0x7f,
		      "a control byte in the field value");
	{
		zh_slice_t rest = {out, (size_t)len}, pn, pv;
		size_t vl = strlen(c.value);
		const char *v = c.value;
		if (vl >= 2 && v[0] == '"' && v[vl - 1] == '"')
			v++, vl -= 2;
		CHECK(zh_cookie_parse_next(&rest, &pn, &pv) == 1, "does not parse back");
		CHECK(pn.len == strlen(c.name) && memcmp(pn.ptr, c.name, pn.len) == 0, "name back");
		CHECK(pv.len == vl && memcmp(pv.ptr, v, vl) == 0, "value back");
	}
	CHECK(zh_cookie_format(&c, out, (size_t)len) == -ENOSPC, "one byte short");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fz_in_t in = {data, size};
	uint8_t mode = fz_u8(&in);
	if (mode & 1) {
		check_build(&in, mode);
	} else {
		char *s = fz_dup(in.p, in.n);
		check_parse(s, in.n);
		free(s);
	}
	return 0;
}
