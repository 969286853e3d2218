/* cookie.c — the Cookie request field read (RFC 6265 §5.4, §4.2.1) and Set-Cookie written
 * (§4.1), without allocation: parsed cookies are slices of the request's header value, and a
 * Set-Cookie value is formatted on the stack, then copied by zh_resp_header_add like any
 * header. */
#include "ext.h"

#include <errno.h>
#include <string.h>

static bool blank(char c)
{
	return c == ' ' || c == '\t';
}

static zh_slice_t trim(const char *p, const char *end)
{
	while (p < end && blank(*p))
		p++;
	while (end > p && blank(end[-1]))
		end--;
	return (zh_slice_t){p, (size_t)(end - p)};
}

/* A user agent sends "name=value; name2=value2" (§4.2.1), but older ones and scripts write
 * other blanks and empty pieces: split at ';', trim, and skip what has no '=' or no name,
 * as RFC 6265 §5.2 step 2 does for a Set-Cookie pair. */
int zh_cookie_parse_next(zh_slice_t *rest, zh_slice_t *name, zh_slice_t *value)
{
	while (rest->len > 0) {
		const char *p = rest->ptr, *end = p + rest->len;
		const char *semi = memchr(p, ';', rest->len), *stop = semi ? semi : end;
		const char *eq = memchr(p, '=', (size_t)(stop - p));
		rest->ptr = semi ? semi + 1 : end;
		rest->len = (size_t)(end - rest->ptr);
		if (eq == NULL)
			continue;
		*name = trim(p, eq);
		if (name->len == 0)
			continue;
		*value = trim(eq + 1, stop);
		/* cookie-value = *cookie-octet / ( DQUOTE *cookie-octet DQUOTE ): the quotes are
		 * not part of the value */
		if (value->len >= 2 && value->ptr[0] == '"' && value->ptr[value->len - 1] == '"') {
			value->ptr++;
			value->len -= 2;
		}
		return 1;
	}
	return 0;
}

void zh_cookie_iter_init(zh_cookie_iter_t *it, const zh_request_t *req)
{
	it->req = req;
	it->field = 0;
	it->rest = (zh_slice_t){"", 0};
}

/* RFC 6265 §5.4 has one Cookie field, but HTTP/2 (RFC 9113 §8.2.3) and some proxies split
 * it: every field called Cookie is read, in order. */
int zh_cookie_next(zh_cookie_iter_t *it, zh_slice_t *name, zh_slice_t *value)
{
	for (;;) {
		zh_slice_t n;
		if (zh_cookie_parse_next(&it->rest, name, value))
			return 1;
		do {
			if (zh_req_header_at(it->req, it->field++, &n, &it->rest) < 0)
				return 0;
		} while (!(n.len == 6 && zh__ieq(n.ptr, "cookie", 6)));
	}
}

int zh_req_cookie(const zh_request_t *req, const char *name, zh_slice_t *value)
{
	zh_cookie_iter_t it;
	zh_slice_t n, v;
	zh_cookie_iter_init(&it, req);
	while (zh_cookie_next(&it, &n, &v))
		if (zh_slice_eq_str(n, name)) {
			*value = v;
			return 1;
		}
	return 0;
}

/* ---- Set-Cookie ------------------------------------------------------------------------- */

void zh_cookie_init(zh_cookie_t *c)
{
	memset(c, 0, sizeof *c);
	c->max_age = -1;
}

/* cookie-octet = %x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E: US-ASCII without controls,
 * blank, DQUOTE, comma, semicolon and backslash (§4.1.1) */
static bool cookie_octet(unsigned char c)
{
	return c >= 0x21 && c <= 0x7e && c != '"' && c != ',' && c != ';' && c != '\\';
}

static bool valid_value(const char *v)
{
	size_t n = strlen(v);
	if (n >= 2 && v[0] == '"' && v[n - 1] == '"') {
		v++;
		n -= 2;
	}
	for (size_t i = 0; i < n; i++)
		if (!cookie_octet((unsigned char)v[i]))
			return false;
	return true;
}

/* path-value = <any CHAR except CTLs or ";"> */
static bool valid_path(const char *p)
{
	for (; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f || *p == ';')
			return false;
	return true;
}

/* domain-value = <subdomain> (RFC 1034 §3.5, as enhanced by RFC 1123 §2.1); a leading dot
 * is tolerated (user agents ignore it, §5.2.3) */
static bool valid_domain(const char *d)
{
	if (*d == '.')
		d++;
	if (*d == '\0')
		return false;
	for (; *d; d++) {
		char c = *d;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '.'))
			return false;
	}
	return true;
}

static bool valid_cookie(const zh_cookie_t *c)
{
	if (c->name == NULL || c->value == NULL || !zh__valid_token(c->name, strlen(c->name)) ||
	    !valid_value(c->value))
		return false;
	if ((c->path && !valid_path(c->path)) || (c->domain && !valid_domain(c->domain)))
		return false;
	if (c->same_site < ZH_SAMESITE_UNSET || c->same_site > ZH_SAMESITE_NONE)
		return false;
	/* SameSite=None without Secure is rejected by browsers (RFC 6265bis §5.6.7): refuse a
	 * cookie that would silently not be stored */
	return c->same_site != ZH_SAMESITE_NONE || c->secure;
}

/* A bounded appender: a failed append leaves it full, checked once at the end. */
typedef struct {
	char *buf;
	size_t len, cap;
	bool over;
} out_t;

static void put(out_t *o, const char *s, size_t n)
{
	if (o->over || n >= o->cap - o->len) { /* keep room for the NUL */
		o->over = true;
		return;
	}
	memcpy(o->buf + o->len, s, n);
	o->len += n;
}

static void puts_(out_t *o, const char *s)
{
	put(o, s, strlen(s));
}

static void put_u64(out_t *o, uint64_t v)
{
	char d[20];
	size_t i = sizeof d;
	do {
		d[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	put(o, d + i, sizeof d - i);
}

ssize_t zh_cookie_format(const zh_cookie_t *c, char *buf, size_t cap)
{
	static const char *const same_site[] = {NULL, "; SameSite=Strict", "; SameSite=Lax",
						"; SameSite=None"};
	out_t o = {buf, 0, cap, cap == 0};
	if (!valid_cookie(c))
		return -EINVAL;
	puts_(&o, c->name);
	put(&o, "=", 1);
	puts_(&o, c->value);
	if (c->path) {
		puts_(&o, "; Path=");
		puts_(&o, c->path);
	}
	if (c->domain) {
		puts_(&o, "; Domain=");
		puts_(&o, c->domain);
	}
	if (c->max_age >= 0) {
		puts_(&o, "; Max-Age=");
		put_u64(&o, (uint64_t)c->max_age);
	}
	if (c->expires != 0) {
		char date[30];
		puts_(&o, "; Expires=");
		put(&o, date, zh__http_date((time_t)c->expires, date));
	}
	if (c->secure)
		puts_(&o, "; Secure");
	if (c->http_only)
		puts_(&o, "; HttpOnly");
	if (same_site[c->same_site])
		puts_(&o, same_site[c->same_site]);
	if (o.over)
		return -ENOSPC;
	buf[o.len] = '\0';
	return (ssize_t)o.len;
}

int zh_resp_set_cookie(zh_response_t *resp, const zh_cookie_t *c)
{
	char line[4096];
	ssize_t n = zh_cookie_format(c, line, sizeof line);
	if (n < 0)
		return (int)n;
	return zh_resp_header_add(resp, "Set-Cookie", line);
}
