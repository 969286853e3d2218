/* proxy.c — trusted proxies: the client address behind a reverse proxy (zh_req_client_addr,
 * zh_config_t.trusted_proxies).
 *
 * Only a peer inside a configured CIDR is believed. Its request names the hops in
 * Forwarded (RFC 7239 §4: for= of each element) or, when there is no Forwarded field, in
 * X-Forwarded-For (the de-facto list of addresses); each proxy appends the address it
 * received the request from, so the list is read from the right: trusted proxies are
 * skipped, and the first address that is not trusted is the client (the leftmost if every
 * hop is trusted). Anything the walk cannot read (a malformed field, "unknown" or an
 * obfuscated identifier, RFC 7239 §6.2-6.3, more than ZH__FWD_MAX hops) gives the peer's
 * own address: a header an attacker can shape never names an address it did not
 * contain. Nothing is cached or allocated: each call parses the fields again (well under a
 * microsecond for a few hops, and only for trusted peers).
 *
 * Addresses are compared in one form: IPv6, with IPv4 as ::ffff:a.b.c.d (RFC 4291
 * §2.5.5.2), so an IPv4 CIDR also matches an IPv4 peer of a dual-stack socket.
 */
#include "internal.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

static const uint8_t v4_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static bool is_v4_mapped(const uint8_t a[16])
{
	return memcmp(a, v4_prefix, 12) == 0;
}

/* An IPv4 or IPv6 literal (no brackets, no zone, no port) as 16 bytes. */
static bool parse_ip(const char *p, size_t len, uint8_t out[16])
{
	char buf[INET6_ADDRSTRLEN];
	if (len == 0 || len >= sizeof buf)
		return false;
	memcpy(buf, p, len);
	buf[len] = '\0';
	if (memchr(buf, ':', len) == NULL) {
		memcpy(out, v4_prefix, 12);
		return inet_pton(AF_INET, buf, out + 12) == 1;
	}
	return inet_pton(AF_INET6, buf, out) == 1;
}

bool zh__cidr_parse(const char *p, size_t len, zh__cidr_t *out)
{
	const char *slash = memchr(p, '/', len);
	size_t alen = slash ? (size_t)(slash - p) : len;
	bool v4 = memchr(p, ':', alen) == NULL;
	unsigned bits = v4 ? 32 : 128;
	if (!parse_ip(p, alen, out->addr))
		return false;
	if (slash) {
		size_t i = alen + 1;
		if (i == len || len - i > 3)
			return false;
		bits = 0;
		for (; i < len; i++) {
			if (p[i] < '0' || p[i] > '9')
				return false;
			bits = bits * 10 + (unsigned)(p[i] - '0');
		}
		if (bits > (v4 ? 32u : 128u))
			return false;
	}
	out->bits = (uint8_t)(v4 ? bits + 96 : bits);
	/* host bits are cleared, so "10.1.2.3/8" means 10.0.0.0/8 */
	for (unsigned b = out->bits; b < 128; b++)
		out->addr[b / 8] &= (uint8_t)~(0x80u >> (b % 8));
	return true;
}

int zh__cidr_list_parse(const char *list, zh__cidr_t *out, unsigned cap)
{
	unsigned n = 0;
	const char *p = list;
	while (p && *p) {
		size_t len;
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		len = strcspn(p, " \t,");
		if (len == 0)
			break;
		if (n == cap)
			return -ENOSPC;
		if (!zh__cidr_parse(p, len, &out[n]))
			return -EINVAL;
		n++;
		p += len;
	}
	return (int)n;
}

bool zh__cidr_match(const zh__cidr_t *c, unsigned n, const uint8_t a[16])
{
	for (unsigned i = 0; i < n; i++) {
		unsigned bytes = c[i].bits / 8, rest = c[i].bits % 8;
		if (memcmp(c[i].addr, a, bytes) != 0)
			continue;
		if (rest == 0 || ((c[i].addr[bytes] ^ a[bytes]) & (uint8_t)(0xff00u >> rest)) == 0)
			return true;
	}
	return false;
}

/* ---- the fields ----------------------------------------------------------------------------- */

static bool ows(char c) { return c == ' ' || c == '\t'; }

static void trim(const char **p, const char **end)
{
	while (*p < *end && ows(**p))
		(*p)++;
	while (*end > *p && ows((*end)[-1]))
		(*end)--;
}

static int add(zh__fwd_t *f, const uint8_t a[16], bool known)
{
	if (f->n == ZH__FWD_MAX)
		return -E2BIG;
	if (known)
		memcpy(f->hop[f->n].addr, a, 16);
	f->hop[f->n++].known = known;
	return 0;
}

static bool digits(const char *p, const char *end, size_t max)
{
	if (p == end || (size_t)(end - p) > max)
		return false;
	for (; p < end; p++)
		if (*p < '0' || *p > '9')
			return false;
	return true;
}

/* A node (RFC 7239 §6): IPv4 [":" port], "[" IPv6 "]" [":" port], "unknown" or an
 * obfuscated "_name" (both valid, but not an address: known false). The same forms serve
 * X-Forwarded-For, where bare IPv6 is common too. A port may be obfuscated ("_x"). */
static int node(const char *p, const char *end, uint8_t a[16], bool *known, bool bare_v6)
{
	const char *colon;
	*known = false;
	if (p == end)
		return -EINVAL;
	if ((size_t)(end - p) == 7 && zh__ieq(p, "unknown", 7))
		return 0;
	if (*p == '_') {
		for (const char *q = p + 1; q < end; q++)
			if (!((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') ||
			      (*q >= '0' && *q <= '9') || *q == '.' || *q == '_' || *q == '-'))
				return -EINVAL;
		return end - p > 1 ? 0 : -EINVAL;
	}
	if (*p == '[') {
		const char *close = memchr(p, ']', (size_t)(end - p));
		if (close == NULL || close == p + 1 || memchr(p + 1, ':', (size_t)(close - p - 1)) == NULL)
			return -EINVAL;
		colon = close + 1 < end ? close + 1 : NULL;
		if (colon && (*colon != ':' || !(digits(colon + 1, end, 5) ||
						 (colon + 1 < end && colon[1] == '_'))))
			return -EINVAL;
		if (!parse_ip(p + 1, (size_t)(close - p - 1), a))
			return -EINVAL;
		*known = true;
		return 0;
	}
	if (bare_v6 && memchr(p, ':', (size_t)(end - p)) != NULL &&
	    parse_ip(p, (size_t)(end - p), a)) {
		*known = true;
		return 0;
	}
	colon = memchr(p, ':', (size_t)(end - p));
	if (colon && !(digits(colon + 1, end, 5) || (colon + 1 < end && colon[1] == '_')))
		return -EINVAL;
	/* an IPv4 node: dotted decimal only, so no hostname or v6 slips through */
	if (!parse_ip(p, (size_t)((colon ? colon : end) - p), a) || !is_v4_mapped(a))
		return -EINVAL;
	*known = true;
	return 0;
}

/* A forwarded-pair's value: a token, or a quoted-string without escapes (no node has a
 * backslash, so a quoted-pair can only be malformed here). */
static int pair_value(const char **p, const char *end, const char **v, const char **vend)
{
	if (*p < end && **p == '"') {
		const char *q = *p + 1;
		while (q < end && *q != '"' && *q != '\\')
			q++;
		if (q == end || *q != '"')
			return -EINVAL;
		*v = *p + 1;
		*vend = q;
		*p = q + 1;
		return 0;
	}
	*v = *p;
	while (*p < end && zh__token_char[(unsigned char)**p])
		(*p)++;
	*vend = *p;
	return *v == *vend ? -EINVAL : 0;
}

/* One forwarded-element: pairs separated by ';'. Its for= node, once (RFC 7239 §4: a
 * parameter MUST NOT occur more than once per element); an element without one is a hop
 * we cannot name. */
static int element(zh__fwd_t *f, const char *p, const char *end)
{
	uint8_t a[16];
	bool seen = false, known = false;
	while (p < end) {
		const char *name = p, *v, *vend;
		size_t nlen;
		int r;
		while (p < end && zh__token_char[(unsigned char)*p])
			p++;
		nlen = (size_t)(p - name);
		if (nlen == 0 || p == end || *p != '=')
			return -EINVAL;
		p++;
		if ((r = pair_value(&p, end, &v, &vend)) < 0)
			return r;
		if (nlen == 3 && zh__ieq(name, "for", 3)) {
			if (seen || (r = node(v, vend, a, &known, false)) < 0)
				return -EINVAL;
			seen = true;
		}
		while (p < end && ows(*p))
			p++;
		if (p < end && *p++ != ';')
			return -EINVAL;
		while (p < end && ows(*p))
			p++;
	}
	return add(f, a, seen && known);
}

int zh__fwd_parse(zh__fwd_t *f, bool forwarded, const char *v, size_t len)
{
	const char *p = v, *end = v + len;
	for (;;) {
		const char *comma = p, *e;
		int r;
		/* a ',' inside a quoted-string does not end an element */
		bool quoted = false;
		while (comma < end && (quoted || *comma != ',')) {
			if (*comma == '"')
				quoted = !quoted;
			comma++;
		}
		if (quoted)
			return -EINVAL;
		e = comma;
		trim(&p, &e);
		if (p < e) { /* empty list elements are allowed and skipped (RFC 9110 §5.6.1) */
			if (forwarded) {
				r = element(f, p, e);
			} else {
				uint8_t a[16];
				bool known;
				r = node(p, e, a, &known, true);
				if (r == 0)
					r = add(f, a, known);
			}
			if (r < 0)
				return r;
		}
		if (comma == end)
			return 0;
		p = comma + 1;
	}
}

/* ---- the request's client --------------------------------------------------------------------- */

/* Every field named name, in order, into f; 1 if there was one, 0 if none, -errno. */
static int gather(const zh_request_t *req, const char *name, size_t nlen, bool forwarded,
		  zh__fwd_t *f)
{
	int found = 0;
	for (uint32_t i = 0; i < req->h.nfields; i++) {
		const zh__field_t *fl = &req->fields[i];
		int r;
		if (fl->name.len != nlen || !zh__ieq(req->base + fl->name.off, name, nlen))
			continue;
		found = 1;
		if ((r = zh__fwd_parse(f, forwarded, req->base + fl->value.off, fl->value.len)) < 0)
			return r;
	}
	return found;
}

/* The forwarded client in a[16] (true), or false: use the peer. */
static bool forwarded_client(const zh_request_t *req, const zh_server_t *srv, uint8_t a[16])
{
	zh__fwd_t f;
	int r;
	f.n = 0;
	r = gather(req, "Forwarded", 9, true, &f);
	if (r == 0)
		r = gather(req, "X-Forwarded-For", 15, false, &f);
	if (r <= 0 || f.n == 0)
		return false;
	for (unsigned i = f.n; i-- > 0;) {
		if (!f.hop[i].known)
			return false;
		if (!zh__cidr_match(srv->proxies, srv->nproxies, f.hop[i].addr) || i == 0) {
			memcpy(a, f.hop[i].addr, 16);
			return true;
		}
	}
	return false;
}

int zh_req_client_addr(const zh_request_t *req, uint8_t addr[16])
{
	const zh__conn_t *c = req->ctx->conn;
	const zh_server_t *srv = req->ctx->w->srv;
	uint8_t peer[16], a[16];
	if (ZH__LIKELY(srv->nproxies == 0) || !req->ctx->in_request)
		return zh_req_peer_addr(req, addr);
	if (c->peer_v6) {
		memcpy(peer, c->peer, 16);
	} else {
		memcpy(peer, v4_prefix, 12);
		memcpy(peer + 12, c->peer, 4);
	}
	if (!zh__cidr_match(srv->proxies, srv->nproxies, peer) ||
	    !forwarded_client(req, srv, a))
		return zh_req_peer_addr(req, addr);
	if (is_v4_mapped(a)) {
		memcpy(addr, a + 12, 4);
		return AF_INET;
	}
	memcpy(addr, a, 16);
	return AF_INET6;
}

size_t zh_req_client_str(const zh_request_t *req, char *buf, size_t cap)
{
	uint8_t a[16];
	int family = zh_req_client_addr(req, a);
	if (cap == 0 || inet_ntop(family, a, buf, (socklen_t)cap) == NULL) {
		if (cap)
			buf[0] = '\0';
		return 0;
	}
	return strlen(buf);
}
