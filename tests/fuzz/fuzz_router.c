/* fuzz_router.c — libFuzzer target for the pattern router (src/router.c): registers a
 * fuzzer-chosen set of patterns and looks up fuzzer-chosen paths through zh__router_find,
 * the function the server calls, then compares with a slow reference written here.
 *
 * Input: lines. "P" M F PATTERN registers PATTERN for the methods in M (a digit: bits 0-3
 * are GET, POST, PUT, HEAD) with ZH_ROUTE_PREFIX if F is 'p' (anything else: none). "L" M
 * [HOST "|"] PATH looks up PATH for method bit M ('0'-'7': GET, HEAD, POST, PUT, DELETE,
 * OPTIONS, PATCH, TRACE) and Host HOST. At most 48 patterns and 48 lookups.
 *
 * The reference keeps the accepted patterns as text and, per lookup, tests each one against
 * the path alone (split at '/', literals compared after RFC 3986 §6.2.2 normalization of
 * both sides, {x} on a non-empty segment, tails on the rest); the host's patterns are tried
 * first, then the host-less ones (Go 1.22's order). Of the matching patterns that take the
 * method (for HEAD: HEAD or GET) it keeps the most specific by a segment-wise comparison
 * (literal before {x} before a tail, a longer prefix first; of one pattern, the route
 * claiming HEAD for HEAD). None: the methods of every matching pattern, the host's and the
 * host-less ones, are the Allow. Checked: the same route (or none) and Allow, and the same
 * captures; registration fails only with -EINVAL or -EEXIST; ASan/UBSan/LSan stay quiet
 * (registration's memory is all freed by zh__router_free).
 */
#include "internal.h"

#include "fuzz_common.h"

#include <ctype.h>
#include <strings.h>

enum { MAXP = 48, MAXL = 48, SEGS = 64 };

typedef struct rseg {
	int kind; /* 0 literal, 1 {x}, 2 tail */
	char text[256]; /* literal or tail prefix, normalized */
} rseg_t;

typedef struct rpat {
	char host[256];
	rseg_t seg[SEGS];
	int n;
	unsigned methods;
	int index; /* in the router's routes */
} rpat_t;

static rpat_t pats[MAXP];
static int npats;

/* RFC 3986 §6.2.2.1/§6.2.2.2 of s[0..n): unreserved triplets decoded, hex upper-cased. */
static void norm(const char *s, size_t n, char *out, size_t cap)
{
	size_t k = 0;
	for (size_t i = 0; i < n && k + 4 < cap; i++) {
		if (s[i] == '%' && i + 2 < n && isxdigit((unsigned char)s[i + 1]) &&
		    isxdigit((unsigned char)s[i + 2])) {
			char h[3] = {s[i + 1], s[i + 2], 0};
			int o = (int)strtol(h, NULL, 16);
			if (isalnum(o) || o == '-' || o == '.' || o == '_' || o == '~') {
				out[k++] = (char)o;
			} else {
				out[k++] = '%';
				out[k++] = (char)toupper((unsigned char)h[0]);
				out[k++] = (char)toupper((unsigned char)h[1]);
			}
			i += 2;
		} else {
			out[k++] = s[i];
		}
	}
	out[k] = '\0';
}

/* An accepted pattern, taken apart again independently of router.c. */
static void remember(const char *pat, bool prefix, unsigned methods, int index)
{
	rpat_t *p = &pats[npats++];
	const char *slash = strchr(pat, '/'), *s;
	memset(p, 0, sizeof *p);
	snprintf(p->host, sizeof p->host, "%.*s", (int)(slash - pat), pat);
	p->methods = methods;
	p->index = index;
	for (s = slash + 1;;) {
		const char *e = strchr(s, '/');
		size_t n = e ? (size_t)(e - s) : strlen(s);
		rseg_t *g = &p->seg[p->n++];
		CHECK(p->n <= SEGS, "too many segments");
		if (prefix && !e) {
			g->kind = 2;
			norm(s, n, g->text, sizeof g->text);
		} else if (n >= 3 && s[0] == '{' && s[n - 1] == '}') {
			if (n == 3 && s[1] == '$')
				g->kind = 0; /* "" */
			else
				g->kind = n > 5 && memcmp(s + n - 4, "...}", 4) == 0 ? 2 : 1;
		} else {
			norm(s, n, g->text, sizeof g->text);
		}
		if (!e)
			break;
		s = e + 1;
	}
}

/* Does p match path? Captures (offset, length) into cap. */
static bool ref_match(const rpat_t *p, const char *path, size_t len, uint32_t cap[][2],
		      int *ncap)
{
	size_t pos = 1;
	*ncap = 0;
	for (int i = 0; i < p->n; i++) {
		const char *seg = path + pos;
		const char *e = memchr(seg, '/', len - pos);
		size_t n = e ? (size_t)(e - seg) : len - pos;
		char ns[2048];
		if (pos > len)
			return false; /* the path ended before the pattern */
		norm(seg, n, ns, sizeof ns);
		if (p->seg[i].kind == 2) {
			if (strncmp(ns, p->seg[i].text, strlen(p->seg[i].text)) != 0)
				return false;
			cap[*ncap][0] = (uint32_t)pos;
			cap[(*ncap)++][1] = (uint32_t)(len - pos);
			return true;
		}
		if (p->seg[i].kind == 1) {
			if (n == 0)
				return false;
			cap[*ncap][0] = (uint32_t)pos;
			cap[(*ncap)++][1] = (uint32_t)n;
		} else if (strcmp(ns, p->seg[i].text) != 0) {
			return false;
		}
		if (!e)
			return i == p->n - 1;
		pos += n + 1;
	}
	return false; /* the path has more segments */
}

/* < 0: a is more specific; 0: the same pattern; > 0: b is. Both match one path. */
static int ref_rank(const rpat_t *a, const rpat_t *b)
{
	for (int i = 0; i < a->n && i < b->n; i++) {
		const rseg_t *x = &a->seg[i], *y = &b->seg[i];
		if (x->kind != y->kind)
			return x->kind - y->kind;
		if (x->kind == 2) {
			size_t lx = strlen(x->text), ly = strlen(y->text);
			return lx == ly ? 0 : lx > ly ? -1 : 1;
		}
	}
	CHECK(a->n == b->n, "two patterns of different lengths match one path");
	return 0;
}

static size_t host_len(const char *h, size_t n)
{
	if (n && h[0] == '[') {
		const char *e = memchr(h, ']', n);
		return e ? (size_t)(e - h) + 1 : n;
	}
	if (memrchr(h, ':', n))
		n = (size_t)((const char *)memrchr(h, ':', n) - h);
	if (n && h[n - 1] == '.')
		n--;
	return n;
}

static void lookup(const zh__router_t *r, unsigned bit, const char *host, size_t hlen,
		   const char *path, size_t len)
{
	zh__match_t m;
	unsigned allow = 0, want_allow = 0;
	const zh__route_t *got = zh__router_find(r, host, hlen, path, len, bit, &allow, &m);
	int want = -1;
	uint32_t cap[ZH__PARAMS_MAX + 1][2];
	int ncap = 0;
	size_t hl = host_len(host, hlen);
	/* the host's patterns, then the host-less ones */
	for (int pass = 0; pass < 2 && want < 0; pass++) {
		for (int i = 0; i < npats; i++) {
			uint32_t c[SEGS][2];
			int nc;
			const char *ph = pats[i].host;
			bool mine = pass == 0 ? ph[0] && strlen(ph) == hl && hl &&
							strncasecmp(ph, host, hl) == 0
					      : ph[0] == '\0';
			if (!mine || !ref_match(&pats[i], path, len, c, &nc))
				continue;
			want_allow |= pats[i].methods;
			if (!(pats[i].methods & bit) && !(bit == ZH_HEAD && (pats[i].methods & ZH_GET)))
				continue;
			if (want >= 0) {
				int k = ref_rank(&pats[i], &pats[want]);
				CHECK(k != 0 || bit == ZH_HEAD, "%.*s: two routes of one pattern take "
				      "method %x", (int)len, path, bit);
				/* one pattern, HEAD: the route that claims HEAD */
				if (k > 0 || (k == 0 && !(pats[i].methods & ZH_HEAD)))
					continue;
			}
			want = i;
			ncap = nc;
			memcpy(cap, c, sizeof cap);
		}
	}
	if (want >= 0) {
		CHECK(got == &r->routes[pats[want].index], "%.*s: route %s, want %s", (int)len,
		      path, got ? got->path : "(none)", r->routes[pats[want].index].path);
		CHECK((int)m.n == ncap, "%.*s: %u captures, want %d", (int)len, path, m.n, ncap);
		for (int k = 0; k < ncap; k++)
			CHECK(m.p[k].off == cap[k][0] && m.p[k].len == cap[k][1],
			      "%.*s: capture %d differs", (int)len, path, k);
	} else {
		CHECK(got == NULL, "%.*s: route %s, want none", (int)len, path, got->path);
		CHECK(allow == want_allow, "%.*s: allow %x, want %x", (int)len, path, allow,
		      want_allow);
	}
}

static void h_none(zh_request_t *req, zh_response_t *resp, void *arg)
{
	(void)req;
	(void)resp;
	(void)arg;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	zh__router_t r;
	char line[1024];
	const char *p = (const char *)data, *end = p + size;
	int nlookups = 0;
	memset(&r, 0, sizeof r);
	npats = 0;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		if (n >= 3 && n < sizeof line) {
			memcpy(line, p, n);
			line[n] = '\0';
			size_t slashes = 0;
			for (size_t i = 0; i < n; i++)
				slashes += line[i] == '/';
			if (line[0] == 'P' && npats < MAXP && memchr(line, '\0', n) == NULL &&
			    slashes < SEGS) { /* the reference's room; the router has no limit */
				unsigned methods = (unsigned)(line[1] & 15);
				bool prefix = line[2] == 'p';
				unsigned bits = (methods & 1 ? ZH_GET : 0) | (methods & 2 ? ZH_POST : 0) |
						(methods & 4 ? ZH_PUT : 0) | (methods & 8 ? ZH_HEAD : 0);
				int err = zh__router_add(&r, bits, line + 3, prefix ? ZH_ROUTE_PREFIX : 0,
							 h_none, NULL);
				CHECK(err == 0 || err == -EINVAL || err == -EEXIST, "add: %d", err);
				if (err == 0)
					remember(line + 3, prefix, bits, (int)r.nroutes - 1);
			} else if (line[0] == 'L' && nlookups < MAXL) {
				unsigned bit = 1u << (line[1] & 7);
				const char *path = line + 2, *bar = memchr(path, '|', n - 2);
				const char *host = "";
				size_t hlen = 0;
				if (bar) {
					host = path;
					hlen = (size_t)(bar - path);
					path = bar + 1;
				}
				if (*path == '/') {
					lookup(&r, bit, host, hlen, path, strlen(path));
					nlookups++;
				}
			}
		}
		p += n + 1;
	}
	zh__router_free(&r);
	return 0;
}
