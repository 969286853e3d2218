/* mw_cors.c — CORS middleware (Fetch standard, "CORS protocol"); see zerohttp.h.
 *
 * Everything a request needs is prepared by zh_cors_new(): the patterns are split into
 * prefix and suffix, the header values are copied and Max-Age is formatted, all in one
 * allocation owned by the zh_cors_t. The hooks only compare bytes and set headers (which
 * the library copies into the response's header area): no allocation, no formatting.
 *
 * Who answers what:
 *   before  a preflight (OPTIONS + Origin + Access-Control-Request-Method) from an allowed
 *           origin: 204 with the Allow-* headers. Anything else passes untouched.
 *   commit  every response: Vary: Origin; and for an allowed Origin, Allow-Origin
 *           (+Credentials, +Expose-Headers). Skipped when the response already has an
 *           Access-Control-Allow-Origin: the preflight answered above, or a handler that
 *           does its own CORS.
 */
#include "ext.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { CORS_MAX_ORIGINS = 256 };

typedef struct pattern {
	const char *prefix; /* exact: the whole origin; wildcard: "scheme://" */
	size_t plen;
	const char *suffix; /* wildcard: ".example.com[:port]" after the "*" */
	size_t slen;
	bool wildcard;
} pattern_t;

struct zh_cors {
	pattern_t *pats;
	size_t npats;
	bool any;	  /* "*": every origin but "null" */
	bool credentials;
	bool methods_any, headers_any; /* configured "*" */
	const char *methods, *headers, *expose; /* NULL: no such header */
	char max_age[24]; /* "" when off */
	char *strings;	  /* the copies above point into this */
};

static bool ieq_slice(const char *a, size_t alen, const char *b, size_t blen)
{
	return alen == blen && zh__ieq(a, b, alen);
}

static bool is_alpha(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

static bool is_digit(char ch)
{
	return ch >= '0' && ch <= '9';
}

static bool is_ldh(char ch) /* letter, digit, hyphen: a DNS label's bytes */
{
	return is_alpha(ch) || is_digit(ch) || ch == '-';
}

/* The part a wildcard stands for: one or more non-empty labels ("a", "b.a"). */
static bool labels_ok(const char *p, size_t len)
{
	bool label_empty = true;
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (p[i] == '.') {
			if (label_empty)
				return false;
			label_empty = true;
		} else if (is_ldh(p[i])) {
			label_empty = false;
		} else {
			return false;
		}
	}
	return !label_empty;
}

static bool origin_allowed(const zh_cors_t *c, zh_slice_t o)
{
	if (o.len == 4 && memcmp(o.ptr, "null", 4) == 0) {
		/* the opaque origin: never by "*" or a wildcard, only when listed itself */
		for (size_t i = 0; i < c->npats; i++)
			if (!c->pats[i].wildcard && ieq_slice(c->pats[i].prefix, c->pats[i].plen,
							      o.ptr, o.len))
				return true;
		return false;
	}
	if (c->any)
		return true;
	for (size_t i = 0; i < c->npats; i++) {
		const pattern_t *p = &c->pats[i];
		if (!p->wildcard) {
			if (ieq_slice(p->prefix, p->plen, o.ptr, o.len))
				return true;
			continue;
		}
		if (o.len > p->plen + p->slen && zh__ieq(o.ptr, p->prefix, p->plen) &&
		    zh__ieq(o.ptr + o.len - p->slen, p->suffix, p->slen) &&
		    labels_ok(o.ptr + p->plen, o.len - p->plen - p->slen))
			return true;
	}
	return false;
}

/* ---- configuration -------------------------------------------------------------------- */

/* "scheme://host[:port]", host optionally "*.rest"; or "*" or "null". Returns the length
 * of "scheme://" (0 for "*" and "null"), -1 if malformed; *wild tells a "*." host. */
static long check_pattern(const char *s, bool *wild)
{
	const char *p = s, *host;
	*wild = false;
	if (strcmp(s, "*") == 0 || strcmp(s, "null") == 0)
		return 0;
	if (!is_alpha(*p))
		return -1;
	while (is_alpha(*p) || is_digit(*p) || *p == '+' || *p == '-' || *p == '.')
		p++;
	if (strncmp(p, "://", 3) != 0)
		return -1;
	host = p += 3;
	if (p[0] == '*' && p[1] == '.') {
		*wild = true;
		host = p += 2;
	}
	if (*p == '[' && !*wild) { /* an IPv6 literal */
		while (*++p && *p != ']')
			if (!(is_digit(*p) || (*p >= 'a' && *p <= 'f') || (*p >= 'A' && *p <= 'F') ||
			      *p == ':' || *p == '.'))
				return -1;
		if (*p++ != ']')
			return -1;
	} else {
		while (is_ldh(*p) || *p == '.')
			p++;
		if (!labels_ok(host, (size_t)(p - host)))
			return -1;
	}
	if (*p == ':') {
		if (!is_digit(*++p))
			return -1;
		while (is_digit(*p))
			p++;
	}
	return *p == '\0' ? (long)(strchr(s, ':') - s) + 3 : -1;
}

static bool value_ok(const char *v)
{
	return v == NULL || (*v && zh__valid_field_value(v, strlen(v)));
}

static size_t slen0(const char *s)
{
	return s ? strlen(s) + 1 : 0;
}

/* Copies s into *pool and returns the copy (NULL for NULL). */
static const char *keep(char **pool, const char *s)
{
	char *d = *pool;
	size_t n = slen0(s);
	if (s == NULL)
		return NULL;
	memcpy(d, s, n);
	*pool += n;
	return d;
}

void zh_cors_options_init(zh_cors_options_t *o)
{
	memset(o, 0, sizeof *o);
	o->methods = "GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS";
	o->headers = "Content-Type, Authorization";
	o->max_age = 600;
}

/* -EINVAL with a one-line reason in the caller's errbuf, if it gave one. */
static int refuse(const zh_cors_options_t *o, const char *why, const char *what)
{
	if (o && o->errbuf && o->errbuf_len)
		snprintf(o->errbuf, o->errbuf_len, "%s%s%s", why, what ? ": " : "",
			 what ? what : "");
	return -EINVAL;
}

static int check_options(const zh_cors_options_t *o)
{
	bool wild;
	if (o == NULL || (o->n_origins && o->origins == NULL))
		return refuse(o, "no options or no origins array", NULL);
	if (o->n_origins > CORS_MAX_ORIGINS)
		return refuse(o, "more than 256 origins", NULL);
	for (size_t i = 0; i < o->n_origins; i++) {
		if (o->origins[i] == NULL || check_pattern(o->origins[i], &wild) < 0)
			return refuse(o, "malformed origin pattern", o->origins[i]);
		/* "*" with credentials would hand every site's page the user's cookies on this
		 * server: Fetch forbids the literal "*" then, and answering with whatever Origin
		 * came is the same thing in disguise. Mature CORS libraries refuse it too. */
		if (o->allow_credentials && strcmp(o->origins[i], "*") == 0)
			return refuse(o, "origin \"*\" with allow_credentials would trust every "
					 "origin with the user's credentials; list the origins",
				      NULL);
	}
	if (!value_ok(o->methods))
		return refuse(o, "control bytes in methods", NULL);
	if (!value_ok(o->headers))
		return refuse(o, "control bytes in headers", NULL);
	if (!value_ok(o->expose_headers))
		return refuse(o, "control bytes in expose_headers", NULL);
	return 0;
}

static void add_pattern(zh_cors_t *c, const char *s)
{
	bool wild;
	long scheme = check_pattern(s, &wild);
	pattern_t *p = &c->pats[c->npats];
	if (strcmp(s, "*") == 0) {
		c->any = true;
		return;
	}
	p->wildcard = wild;
	p->prefix = s;
	p->plen = wild ? (size_t)scheme : strlen(s);
	p->suffix = wild ? s + scheme + 1 : NULL; /* ".example.com..." */
	p->slen = wild ? strlen(p->suffix) : 0;
	c->npats++;
}

zh_cors_t *zh_cors_new(const zh_cors_options_t *o, int *err)
{
	zh_cors_t *c;
	size_t need = 0;
	char *pool;
	int r = check_options(o);
	if (r < 0) {
		if (err)
			*err = r;
		return NULL;
	}
	for (size_t i = 0; i < o->n_origins; i++)
		need += strlen(o->origins[i]) + 1;
	need += slen0(o->methods) + slen0(o->headers) + slen0(o->expose_headers);
	c = calloc(1, sizeof *c);
	if (c)
		c->pats = calloc(o->n_origins + 1, sizeof *c->pats);
	if (c)
		c->strings = malloc(need + 1);
	if (c == NULL || c->pats == NULL || c->strings == NULL) {
		zh_cors_free(c);
		if (err)
			*err = -ENOMEM;
		return NULL;
	}
	pool = c->strings;
	for (size_t i = 0; i < o->n_origins; i++)
		add_pattern(c, keep(&pool, o->origins[i]));
	c->methods = keep(&pool, o->methods);
	c->headers = keep(&pool, o->headers);
	c->expose = keep(&pool, o->expose_headers);
	c->methods_any = c->methods && strcmp(c->methods, "*") == 0;
	c->headers_any = c->headers && strcmp(c->headers, "*") == 0;
	c->credentials = o->allow_credentials != 0;
	if (o->max_age >= 0)
		snprintf(c->max_age, sizeof c->max_age, "%d", o->max_age);
	return c;
}

void zh_cors_free(zh_cors_t *c)
{
	if (c == NULL)
		return;
	free(c->pats);
	free(c->strings);
	free(c);
}

/* ---- hooks ------------------------------------------------------------------------------ */

/* Header calls here stop at the first failure: a failed set has already failed the
 * response (the sticky rule in zerohttp.h: a 500 with none of these fields), so adding
 * the rest would only be work thrown away. Each returns 0 or that first -errno. */

/* "*" only without credentials (Fetch: a credentialed response must name the origin). */
static int set_allow_origin(const zh_cors_t *c, zh_response_t *resp, zh_slice_t origin)
{
	int r;
	if (c->any) /* never with credentials: zh_cors_new refuses the pair */
		r = zh_resp_header_set(resp, "Access-Control-Allow-Origin", "*");
	else
		r = zh_resp_header_setn(resp, "Access-Control-Allow-Origin", 27, origin.ptr,
					origin.len);
	if (r == 0 && c->credentials)
		r = zh_resp_header_set(resp, "Access-Control-Allow-Credentials", "true");
	return r;
}

/* A configured "*" is a wildcard only without credentials; with them the browser reads it
 * as a literal name (Fetch §3.2.3), so the request's own list is echoed instead. */
static int set_list(const zh_cors_t *c, zh_response_t *resp, const char *name,
		    const char *value, bool any, const zh_request_t *req, const char *asked)
{
	zh_slice_t v;
	if (value == NULL)
		return 0;
	if (!any || !c->credentials)
		return zh_resp_header_set(resp, name, value);
	if (zh_req_header(req, asked, &v) && v.len)
		return zh_resp_header_setn(resp, name, strlen(name), v.ptr, v.len);
	return 0;
}

static int cors_before(zh_request_t *req, zh_response_t *resp, void *arg)
{
	const zh_cors_t *c = arg;
	zh_slice_t origin, method;
	if (zh_req_method_bit(req) != ZH_OPTIONS || !zh_req_header(req, "Origin", &origin) ||
	    !zh_req_header(req, "Access-Control-Request-Method", &method) ||
	    !origin_allowed(c, origin))
		return ZH_MW_NEXT; /* not a preflight we serve: the request goes on untouched */
	/* The browser checks the requested method and headers against these lists (Fetch
	 * §4.8, CORS-preflight fetch); answering with the lists keeps the answer cacheable.
	 * A failed set has failed resp: the preflight is answered 500, so nothing follows. */
	if (set_allow_origin(c, resp, origin) < 0 ||
	    set_list(c, resp, "Access-Control-Allow-Methods", c->methods, c->methods_any, req,
		     "Access-Control-Request-Method") < 0 ||
	    set_list(c, resp, "Access-Control-Allow-Headers", c->headers, c->headers_any, req,
		     "Access-Control-Request-Headers") < 0 ||
	    (c->max_age[0] && zh_resp_header_set(resp, "Access-Control-Max-Age", c->max_age) < 0) ||
	    zh_resp_header_set(resp, "Vary", "Origin, Access-Control-Request-Method, "
					 "Access-Control-Request-Headers") < 0)
		return ZH_MW_ANSWERED;
	(void)zh_write_header(resp, 204);
	return ZH_MW_ANSWERED;
}

/* Library answers to bytes that never became a request (a 400 from the parser, a 408 for a
 * head that stopped halfway) have no headers to trust: their request view may still hold
 * the previous request's or a half-parsed head. */
static bool has_request(zh_response_t *resp)
{
	return zh_req_parsed(zh_resp_request(resp));
}

/* Whether a Vary value already lists name (or "*"). */
static bool lists_token(zh_slice_t v, const char *name)
{
	size_t nlen = strlen(name), i = 0;
	zh_slice_t e;
	while (zh__list_next(v, &i, &e))
		if ((e.len == 1 && e.ptr[0] == '*') || ieq_slice(e.ptr, e.len, name, nlen))
			return true;
	return false;
}

static void cors_commit(zh_response_t *resp, void *arg)
{
	const zh_cors_t *c = arg;
	const zh_request_t *req = zh_resp_request(resp);
	zh_slice_t origin, v;
	/* answered by the preflight above, or a handler that does its own CORS */
	if (zh_resp_header_get(resp, "Access-Control-Allow-Origin", &v))
		return;
	/* Fetch §3.2.5: the answer depends on Origin, so every response says so, also those
	 * without Origin or from a disallowed one: a shared cache must key on it */
	if ((!zh_resp_header_get(resp, "Vary", &v) || !lists_token(v, "Origin")) &&
	    zh_resp_header_add(resp, "Vary", "Origin") < 0)
		return; /* resp has failed (sticky): a 500 without CORS fields */
	if (!has_request(resp) || !zh_req_header(req, "Origin", &origin) ||
	    !origin_allowed(c, origin) || set_allow_origin(c, resp, origin) < 0)
		return;
	if (c->expose && zh_resp_header_set(resp, "Access-Control-Expose-Headers", c->expose) < 0)
		return; /* failed as above; nothing after this anyway */
}

zh_middleware_t zh_cors_middleware(zh_cors_t *c)
{
	return (zh_middleware_t){.before = cors_before, .commit = cors_commit, .arg = c};
}
