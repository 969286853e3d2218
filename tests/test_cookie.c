/* test_cookie.c — unit tests for src/cookie.c: the Cookie field parser (RFC 6265 §5.4, read
 * leniently) and the Set-Cookie builder (§4.1), with the RFC's examples. Parser inputs sit
 * right before a PROT_NONE page. The request-level calls (zh_req_cookie, several Cookie
 * fields) and zh_resp_set_cookie are tested from outside in
 * tests/integration/test_33_reading.py. */
#define _DEFAULT_SOURCE
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "zerohttp.h"

static zh_slice_t guarded(const char *s)
{
	static char *page;
	size_t pg = (size_t)sysconf(_SC_PAGESIZE), n = strlen(s);
	if (!page) {
		page = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		cr_assert(page != MAP_FAILED);
		cr_assert(mprotect(page + pg, pg, PROT_NONE) == 0);
	}
	memcpy(page + pg - n, s, n);
	return (zh_slice_t){page + pg - n, n};
}

static const struct {
	const char *desc, *in, *pairs;
} parse_rows[] = {
	{"RFC 6265 §5.4 example", "SID=31d4d96e407aad42; lang=en-US", "[SID|31d4d96e407aad42][lang|en-US]"},
	{"empty", "", ""},
	{"one", "a=b", "[a|b]"},
	{"no space after ';', blanks around", "a=1;b=2 ;  c = 3\t", "[a|1][b|2][c|3]"},
	{"quoted value unwrapped", "q=\"x y\"; r=\"\"", "[q|x y][r|]"},
	{"a lone quote stays", "q=\"abc", "[q|\"abc]"},
	{"empty value", "a=; b=", "[a|][b|]"},
	{"no '=' skipped", "flag; a=1; ;;", "[a|1]"},
	{"empty name skipped", "=v; a=1", "[a|1]"},
	{"only the first '=' splits", "t=a=b==", "[t|a=b==]"},
	{"repeated names both seen", "a=1; a=2", "[a|1][a|2]"},
	{"case kept", "SID=1; sid=2", "[SID|1][sid|2]"},
	{"bytes passed as they are", "u=%41\xc3\xa9", "[u|%41\xc3\xa9]"},
};

Test(cookie, parse_table)
{
	for (size_t i = 0; i < sizeof parse_rows / sizeof parse_rows[0]; i++) {
		zh_slice_t rest = guarded(parse_rows[i].in), n, v;
		char out[512];
		size_t len = 0;
		out[0] = '\0';
		while (zh_cookie_parse_next(&rest, &n, &v))
			len += (size_t)snprintf(out + len, sizeof out - len, "[%.*s|%.*s]", (int)n.len,
						n.ptr, (int)v.len, v.ptr);
		cr_expect_str_eq(out, parse_rows[i].pairs, "%s", parse_rows[i].desc);
		cr_expect_eq(rest.len, 0);
	}
}

static zh_cookie_t cookie(const char *name, const char *value)
{
	zh_cookie_t c;
	zh_cookie_init(&c);
	c.name = name;
	c.value = value;
	return c;
}

static void expect_format(const zh_cookie_t *c, const char *want)
{
	char buf[512];
	ssize_t n = zh_cookie_format(c, buf, sizeof buf);
	cr_expect_eq(n, (ssize_t)strlen(want), "%s: %zd", want, n);
	if (n >= 0)
		cr_expect_str_eq(buf, want);
}

Test(cookie, format_rfc6265_examples)
{
	zh_cookie_t c = cookie("SID", "31d4d96e407aad42");
	expect_format(&c, "SID=31d4d96e407aad42");
	c.path = "/";
	c.domain = "example.com";
	expect_format(&c, "SID=31d4d96e407aad42; Path=/; Domain=example.com");
	c.domain = NULL;
	c.secure = 1;
	c.http_only = 1;
	expect_format(&c, "SID=31d4d96e407aad42; Path=/; Secure; HttpOnly");
	c = cookie("lang", "en-US");
	c.expires = 1623233894;
	expect_format(&c, "lang=en-US; Expires=Wed, 09 Jun 2021 10:18:14 GMT");
	c = cookie("lang", "");
	c.expires = 784111777; /* §3.1: "Sun, 06 Nov 1994 08:49:37 GMT" */
	expect_format(&c, "lang=; Expires=Sun, 06 Nov 1994 08:49:37 GMT");
}

Test(cookie, format_attributes)
{
	zh_cookie_t c = cookie("id", "\"quoted\"");
	c.max_age = 0;
	expect_format(&c, "id=\"quoted\"; Max-Age=0");
	c.max_age = 9223372036854775807;
	c.same_site = ZH_SAMESITE_STRICT;
	expect_format(&c, "id=\"quoted\"; Max-Age=9223372036854775807; SameSite=Strict");
	c.max_age = -1;
	c.same_site = ZH_SAMESITE_LAX;
	c.domain = ".example.org";
	expect_format(&c, "id=\"quoted\"; Domain=.example.org; SameSite=Lax");
	c.domain = NULL;
	c.same_site = ZH_SAMESITE_NONE;
	c.secure = 1;
	expect_format(&c, "id=\"quoted\"; Secure; SameSite=None");
}

Test(cookie, format_refuses_invalid)
{
	static const struct {
		const char *desc, *name, *value, *path, *domain;
		int same_site, secure;
	} rows[] = {
		{"empty name", "", "v", NULL, NULL, 0, 0},
		{"name with '='", "a=b", "v", NULL, NULL, 0, 0},
		{"name with a blank", "a b", "v", NULL, NULL, 0, 0},
		{"name with ';'", "a;", "v", NULL, NULL, 0, 0},
		{"name with a control", "a\x01", "v", NULL, NULL, 0, 0},
		{"value with a blank", "a", "x y", NULL, NULL, 0, 0},
		{"value with ';'", "a", "x;y", NULL, NULL, 0, 0},
		{"value with ','", "a", "x,y", NULL, NULL, 0, 0},
		{"value with '\\'", "a", "x\\y", NULL, NULL, 0, 0},
		{"value with a DQUOTE inside", "a", "x\"y", NULL, NULL, 0, 0},
		{"value with one DQUOTE", "a", "\"xy", NULL, NULL, 0, 0},
		{"value with CR LF", "a", "x\r\nSet-Cookie: b=c", NULL, NULL, 0, 0},
		{"value with a non-ASCII byte", "a", "\xc3\xa9", NULL, NULL, 0, 0},
		{"path with ';'", "a", "v", "/x; Domain=evil", NULL, 0, 0},
		{"path with a control", "a", "v", "/x\n", NULL, 0, 0},
		{"domain with ';'", "a", "v", NULL, "a.com;x", 0, 0},
		{"domain with a blank", "a", "v", NULL, "a .com", 0, 0},
		{"empty domain", "a", "v", NULL, "", 0, 0},
		{"SameSite=None without Secure", "a", "v", NULL, NULL, ZH_SAMESITE_NONE, 0},
		{"unknown SameSite", "a", "v", NULL, NULL, 9, 1},
	};
	char buf[256];
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		zh_cookie_t c = cookie(rows[i].name, rows[i].value);
		c.path = rows[i].path;
		c.domain = rows[i].domain;
		c.same_site = rows[i].same_site;
		c.secure = rows[i].secure;
		cr_expect_eq(zh_cookie_format(&c, buf, sizeof buf), -EINVAL, "%s", rows[i].desc);
	}
	zh_cookie_t c = cookie(NULL, "v");
	cr_expect_eq(zh_cookie_format(&c, buf, sizeof buf), -EINVAL, "NULL name");
}

Test(cookie, format_buffer_bounds)
{
	zh_cookie_t c = cookie("name", "value"); /* "name=value": 10 bytes + NUL */
	char buf[16];
	memset(buf, 'x', sizeof buf);
	cr_expect_eq(zh_cookie_format(&c, buf, 11), 10);
	cr_expect_str_eq(buf, "name=value");
	cr_expect_eq(zh_cookie_format(&c, buf, 10), -ENOSPC, "no room for the NUL");
	cr_expect_eq(zh_cookie_format(&c, buf, 0), -ENOSPC);
	c.path = "/";
	cr_expect_eq(zh_cookie_format(&c, buf, sizeof buf), -ENOSPC);
}
