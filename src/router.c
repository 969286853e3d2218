/* router.c — route registration (zh_server_route, before zh_server_run) and lookup
 * (zh__route_find, once per request: no allocation).
 *
 * Patterns in the style of Go 1.22's ServeMux: "[host]/seg/{name}/{rest...}". A path is
 * the segments between its slashes ("/" is one empty segment, "/a/" is "a" then ""). A
 * pattern segment is a literal, {name} (one non-empty segment) or, last, {name...} (the
 * rest of the path: one segment or more, possibly empty) or {$} (an empty last segment:
 * "/a/{$}" is "/a/"). A ZH_ROUTE_PREFIX route's last segment is a tail too: the segment
 * starts with that text, then anything ("/api" takes "/apix/1"; "/" takes every path).
 *
 * Precedence is Go's, methods included: each method of a route is a pattern of its own
 * ("GET /a", "POST /a"), and of the patterns that match a request's path and method, the
 * one whose paths are a strict subset of the others' wins; a GET pattern answers HEAD too
 * (for HEAD, the most specific of the patterns with HEAD or GET; of one path, the HEAD
 * one). When patterns match the path but none has the method: 405, Allow the methods of
 * all of them. Registration refuses two routes that share a method and a path without
 * one being a strict subset of the other's paths, or a GET and a HEAD route that share a
 * path without one being a subset (they conflict: check_against), so that the patterns
 * a request can go to are ordered, a winner always exists, and the trie walk finds it by
 * trying, at each segment, the literal child, then {x}, then the tails longest prefix
 * first, backtracking on a dead end or on a pattern without the method: wherever two
 * matching patterns part, the more specific one is tried first, so the first one with the
 * method is the winner.
 *
 * Literals are kept canonical: a triplet of an unreserved character is that character
 * (RFC 3986 §6.2.2.2) and other triplets have upper-case hex (§6.2.2.1). A path without '%'
 * is compared with memcmp; one with '%' triplet by triplet, so "/%61pi" reaches "/api".
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- patterns --------------------------------------------------------------------------- */

static bool unreserved(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~';
}

/* pchar (RFC 3986 §3.3) less the triplet's '%': what a literal may spell */
static bool pchar(unsigned char c)
{
	return unreserved(c) || (c && strchr("!$&'()*+,;=:@", c) != NULL);
}

static bool name_ok(const char *s, size_t n)
{
	if (n == 0 || (s[0] >= '0' && s[0] <= '9'))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return false;
	return true;
}

/* Appends the canonical form of literal s[0..n) to out; -EINVAL for a byte a path cannot
 * hold there (braces, spaces, '?', '#', controls, a bad triplet). */
static int canon_literal(const char *s, size_t n, char *out, size_t *used)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t k = *used;
	for (size_t i = 0; i < n; i++) {
		int o;
		if (s[i] != '%') {
			if (!pchar((unsigned char)s[i]))
				return -EINVAL;
			out[k++] = s[i];
			continue;
		}
		if ((o = zh__pct_octet(s + i, n - i)) < 0)
			return -EINVAL;
		if (unreserved((unsigned char)o)) {
			out[k++] = (char)o;
		} else {
			out[k++] = '%';
			out[k++] = hex[o >> 4];
			out[k++] = hex[o & 15];
		}
		i += 2;
	}
	*used = k;
	return 0;
}

/* A pattern taken apart: host, segments (canonical text in canon), wildcard names. */
typedef struct parsed {
	const char *host;
	size_t hlen;
	zh__rseg_t *segs;
	uint32_t nsegs;
	char *canon, *names;
	size_t names_len;
	unsigned nparams;
} parsed_t;

static void parsed_free(parsed_t *pp)
{
	free(pp->segs);
	free(pp->canon);
	free(pp->names);
}

static bool name_taken(const parsed_t *pp, const char *s, size_t n)
{
	for (size_t i = 0; i < pp->names_len; i += strlen(pp->names + i) + 1)
		if (strlen(pp->names + i) == n && memcmp(pp->names + i, s, n) == 0)
			return true;
	return false;
}

static int add_name(parsed_t *pp, const char *s, size_t n)
{
	if (pp->nparams == ZH__PARAMS_MAX)
		return -EINVAL;
	if (n && name_taken(pp, s, n))
		return -EINVAL; /* duplicate wildcard name */
	memcpy(pp->names + pp->names_len, s, n);
	pp->names[pp->names_len + n] = '\0';
	pp->names_len += n + 1;
	pp->nparams++;
	return 0;
}

/* One segment s[0..n) of a pattern; last: nothing follows it. */
static int parse_segment(parsed_t *pp, const char *s, size_t n, bool last, bool prefix,
			 size_t *used)
{
	zh__rseg_t *sg = &pp->segs[pp->nsegs++];
	sg->off = (uint32_t)*used;
	sg->len = 0;
	if (prefix && last) {
		/* a ZH_ROUTE_PREFIX route's last segment: a literal start, then anything */
		sg->kind = ZH__S_TAIL;
		if (canon_literal(s, n, pp->canon, used) < 0)
			return -EINVAL;
		sg->len = (uint32_t)(*used - sg->off);
		return add_name(pp, "", 0);
	}
	if (n == 0 || s[0] != '{') {
		sg->kind = ZH__S_LIT;
		if (canon_literal(s, n, pp->canon, used) < 0)
			return -EINVAL;
		sg->len = (uint32_t)(*used - sg->off);
		return 0;
	}
	if (n < 3 || s[n - 1] != '}')
		return -EINVAL; /* "{", "{}", "{x}y" */
	s++;
	n -= 2;
	if (n == 1 && s[0] == '$') { /* {$}: an empty last segment */
		sg->kind = ZH__S_LIT;
		return last ? 0 : -EINVAL;
	}
	if (n > 3 && memcmp(s + n - 3, "...", 3) == 0) {
		if (!last)
			return -EINVAL; /* {x...} not last */
		sg->kind = ZH__S_TAIL;
		n -= 3;
	} else {
		sg->kind = ZH__S_PARAM;
	}
	if (!name_ok(s, n))
		return -EINVAL;
	return add_name(pp, s, n);
}

/* Takes pattern apart; -EINVAL if malformed. Allocates what pp holds (parsed_free). */
static int parse_pattern(const char *pat, unsigned flags, parsed_t *pp)
{
	const char *path = strchr(pat, '/');
	size_t len, used = 0;
	int r = 0;
	memset(pp, 0, sizeof *pp);
	if (path == NULL)
		return -EINVAL;
	pp->host = pat;
	pp->hlen = (size_t)(path - pat);
	for (size_t i = 0; i < pp->hlen; i++)
		if (!unreserved((unsigned char)pat[i]) || pat[i] == '_' || pat[i] == '~')
			return -EINVAL; /* a host name: letters, digits, '-' and '.', no port */
	len = strlen(path);
	/* every segment is at least its '/': len segments at most; canonical text is never
	 * longer than the pattern's */
	pp->segs = calloc(len, sizeof *pp->segs);
	pp->canon = malloc(len + 1);
	pp->names = malloc(len + 2);
	if (!pp->segs || !pp->canon || !pp->names) {
		parsed_free(pp);
		return -ENOMEM;
	}
	for (const char *s = path + 1;; ) {
		const char *e = strchr(s, '/');
		size_t n = e ? (size_t)(e - s) : strlen(s);
		if ((r = parse_segment(pp, s, n, e == NULL, flags & ZH_ROUTE_PREFIX, &used)) < 0)
			break;
		if (e == NULL)
			break;
		s = e + 1;
	}
	if (r < 0)
		parsed_free(pp);
	return r;
}

/* ---- how two patterns relate (the conflict rule) ------------------------------------------ */

enum rel { R_DISJOINT, R_EQUAL, R_SUB /* a's paths are a strict subset of b's */, R_SUPER,
	   R_OVERLAP };

/* Two parts of a product of sets: the product's relation from its factors'. */
static enum rel combine(enum rel x, enum rel y)
{
	if (x == R_DISJOINT || y == R_DISJOINT)
		return R_DISJOINT;
	if (x == R_EQUAL)
		return y;
	if (y == R_EQUAL || x == y)
		return x;
	return R_OVERLAP;
}

typedef struct view {
	const zh__rseg_t *segs;
	uint32_t n;
	const char *canon;
} view_t;

static bool starts_with(const char *s, size_t n, const char *p, size_t pn)
{
	return n >= pn && memcmp(s, p, pn) == 0;
}

/* A one-segment matcher s against a tail with prefix t: "s then the rest of a" against
 * "anything starting with t", seen from s's side. */
static enum rel single_vs_tail(const view_t *a, const zh__rseg_t *s, const view_t *b,
			       const zh__rseg_t *t)
{
	if (s->kind == ZH__S_LIT)
		return starts_with(a->canon + s->off, s->len, b->canon + t->off, t->len)
			       ? R_SUB
			       : R_DISJOINT;
	return t->len == 0 ? R_SUB : R_OVERLAP; /* {x} against "" or "abc..." */
}

static enum rel rel_patterns(const view_t *a, const view_t *b)
{
	enum rel acc = R_EQUAL;
	for (uint32_t i = 0;; i++) {
		const zh__rseg_t *x, *y;
		enum rel r;
		if (i == a->n || i == b->n) /* one ended; the other needs one more segment */
			return i == a->n && i == b->n ? acc : R_DISJOINT;
		x = &a->segs[i];
		y = &b->segs[i];
		if (x->kind == ZH__S_TAIL && y->kind == ZH__S_TAIL) {
			const char *p = a->canon + x->off, *q = b->canon + y->off;
			r = x->len == y->len && memcmp(p, q, x->len) == 0 ? R_EQUAL
			    : starts_with(p, x->len, q, y->len)	   ? R_SUB
			    : starts_with(q, y->len, p, x->len)	   ? R_SUPER
								   : R_DISJOINT;
			return combine(acc, r);
		}
		if (y->kind == ZH__S_TAIL)
			return combine(acc, single_vs_tail(a, x, b, y));
		if (x->kind == ZH__S_TAIL) {
			r = single_vs_tail(b, y, a, x);
			return combine(acc, r == R_SUB ? R_SUPER : r);
		}
		if (x->kind == ZH__S_LIT && y->kind == ZH__S_LIT)
			r = x->len == y->len && memcmp(a->canon + x->off, b->canon + y->off, x->len) == 0
				    ? R_EQUAL
				    : R_DISJOINT;
		else if (x->kind == ZH__S_PARAM && y->kind == ZH__S_PARAM)
			r = R_EQUAL;
		else if (x->kind == ZH__S_LIT) /* {x} matches non-empty segments only */
			r = x->len ? R_SUB : R_DISJOINT;
		else
			r = y->len ? R_SUPER : R_DISJOINT;
		if ((acc = combine(acc, r)) == R_DISJOINT)
			return acc;
	}
}

/* ---- the trie ------------------------------------------------------------------------------ */

static int32_t node_new(zh__router_t *r, const char *label, uint32_t label_len)
{
	zh__rnode_t *n;
	if (r->nnodes == r->cap_nodes) {
		uint32_t cap = r->cap_nodes ? r->cap_nodes * 2 : 16;
		zh__rnode_t *nn = realloc(r->nodes, cap * sizeof *nn);
		if (nn == NULL)
			return -ENOMEM;
		r->nodes = nn;
		r->cap_nodes = cap;
	}
	n = &r->nodes[r->nnodes];
	memset(n, 0, sizeof *n);
	/* the node's own copy: a registration that fails later frees its pattern, not this */
	if (label && (n->label = malloc(label_len ? label_len : 1)) == NULL)
		return -ENOMEM;
	if (label)
		memcpy(n->label, label, label_len);
	n->label_len = label_len;
	n->param = n->end = -1;
	return (int32_t)r->nnodes++;
}

/* ---- literal edges: one hash table for the whole trie ------------------------------------ *
 * A lookup's literal step is one probe keyed by (node, segment), not a search among the
 * node's children: the segment's bytes are hashed 8 at a time while they are scanned. */

static uint64_t mix(uint64_t h, uint64_t w)
{
	h = (h ^ w) * 0x9e3779b97f4a7c15u;
	return h ^ (h >> 32);
}

/* Up to 8 bytes of s[0..n) as a little-endian word, zero-padded (n <= 8). */
static uint64_t load_part(const char *s, size_t n)
{
	uint64_t w = 0;
	if (n == 8) {
		memcpy(&w, s, 8);
		return w;
	}
	for (size_t i = 0; i < n; i++)
		w |= (uint64_t)(unsigned char)s[i] << (8 * i);
	return w;
}

/* The last r (1 to 7) bytes of s[0..n) as load_part(s + n - r, r) would give them, with
 * overlapping loads inside s instead of a byte loop (little-endian: the bytes land where
 * the loop puts them; shared bytes coincide). */
static uint64_t load_tail(const char *s, size_t n, size_t r)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	if (n >= 8)
		return load_part(s + n - 8, 8) >> (8 * (8 - r));
	if (r >= 4) {
		uint32_t lo, hi;
		memcpy(&lo, s + n - r, 4);
		memcpy(&hi, s + n - 4, 4);
		return (uint64_t)lo | (uint64_t)hi << (8 * (r - 4));
	}
#endif
	return load_part(s + n - r, r);
}

static uint64_t seg_hash(uint32_t parent, const char *s, size_t n)
{
	uint64_t h = mix(0x243f6a8885a308d3u, ((uint64_t)parent << 32) | (uint32_t)n);
	size_t i = 0;
	for (; i + 8 <= n; i += 8)
		h = mix(h, load_part(s + i, 8));
	return i < n ? mix(h, load_tail(s, n, n - i)) : h;
}

/* The length of the segment at s[0..avail): up to the first '/', 8 bytes at a time (the
 * SWAR zero-byte test on s ^ "////////": its lowest flagged byte is exact). */
static size_t seg_len(const char *s, size_t avail)
{
	const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
	size_t i = 0;
	for (; i + 8 <= avail; i += 8) {
		uint64_t w, x, z;
		memcpy(&w, s + i, 8);
		x = w ^ (ones * '/');
		z = (x - ones) & ~x & highs;
		if (z)
			return i + (size_t)__builtin_ctzll(z) / 8;
	}
	while (i < avail && s[i] != '/')
		i++;
	return i;
}

static int edge_put(zh__router_t *r, uint32_t parent, uint32_t child)
{
	const zh__rnode_t *c = &r->nodes[child];
	uint64_t h = seg_hash(parent, c->label, c->label_len);
	uint32_t i;
	if ((r->nedges + 1) * 2 > r->edge_mask + 1) {
		uint32_t size = r->edge_mask ? (r->edge_mask + 1) * 2 : 64;
		zh__redge_t *old = r->edges, *e = calloc(size, sizeof *e);
		uint32_t old_size = r->edges ? r->edge_mask + 1 : 0;
		if (e == NULL)
			return -ENOMEM;
		r->edges = e;
		r->edge_mask = size - 1;
		r->nedges = 0;
		for (uint32_t k = 0; k < old_size; k++)
			if (old[k].child) {
				for (i = (uint32_t)old[k].hash & r->edge_mask; e[i].child;
				     i = (i + 1) & r->edge_mask)
					;
				e[i] = old[k];
				r->nedges++;
			}
		free(old);
	}
	for (i = (uint32_t)h & r->edge_mask; r->edges[i].child; i = (i + 1) & r->edge_mask)
		;
	r->edges[i] = (zh__redge_t){h, parent, child, c->label, c->label_len};
	r->nedges++;
	return 0;
}

static int32_t edge_find(const zh__router_t *r, uint32_t parent, const char *s, size_t n)
{
	uint64_t h = seg_hash(parent, s, n);
	for (uint32_t i = (uint32_t)h & r->edge_mask;; i = (i + 1) & r->edge_mask) {
		const zh__redge_t *e = &r->edges[i];
		if (e->child == 0)
			return -1;
		if (e->hash == h && e->parent == parent && e->label_len == n &&
		    memcmp(e->label, s, n) == 0)
			return (int32_t)e->child;
	}
}

/* ---- literal-only patterns: one probe for the whole path ----------------------------------- *
 * Such a pattern matches one path (up to equivalent spellings), a subset of whatever else
 * matches it: when a path without '%' is one of them, it is the winner, found without
 * walking the trie. Host-less patterns only (a Host with patterns of its own walks). */

enum { EXACT_KEY = 0xffffffffu }; /* the hash's "parent": never a node */

static uint32_t exact_slot(const zh__router_t *r, uint64_t h, const char *s, size_t n)
{
	uint32_t i = (uint32_t)h & r->exact_mask;
	for (; r->exact[i].path; i = (i + 1) & r->exact_mask)
		if (r->exact[i].hash == h && r->exact[i].len == n &&
		    memcmp(r->exact[i].path, s, n) == 0)
			break;
	return i;
}

static int exact_put(zh__router_t *r, const parsed_t *pp, uint32_t node)
{
	size_t len = 0;
	uint64_t h;
	uint32_t i;
	char *path = malloc(pp->nsegs * 1u + (pp->nsegs ? pp->segs[pp->nsegs - 1].off +
						   pp->segs[pp->nsegs - 1].len : 0) + 1);
	if (path == NULL)
		return -ENOMEM;
	for (uint32_t k = 0; k < pp->nsegs; k++) {
		path[len++] = '/';
		memcpy(path + len, pp->canon + pp->segs[k].off, pp->segs[k].len);
		len += pp->segs[k].len;
	}
	if ((r->nexact + 1) * 2 > r->exact_mask + 1) {
		uint32_t size = r->exact_mask ? (r->exact_mask + 1) * 2 : 64;
		uint32_t old_size = r->exact ? r->exact_mask + 1 : 0;
		zh__rexact_t *old = r->exact, *e = calloc(size, sizeof *e);
		if (e == NULL) {
			free(path);
			return -ENOMEM;
		}
		r->exact = e;
		r->exact_mask = size - 1;
		for (uint32_t k = 0; k < old_size; k++)
			if (old[k].path)
				e[exact_slot(r, old[k].hash, old[k].path, old[k].len)] = old[k];
		free(old);
	}
	h = seg_hash(EXACT_KEY, path, len);
	i = exact_slot(r, h, path, len);
	if (r->exact[i].path) { /* the same pattern again (another method): already there */
		free(path);
		return 0;
	}
	r->exact[i] = (zh__rexact_t){h, path, (uint32_t)len, node};
	r->nexact++;
	return 0;
}

/* Order of literal children: length, then bytes (a binary search key). */
static int label_cmp(const zh__rnode_t *n, const char *s, size_t len)
{
	if (n->label_len != len)
		return n->label_len < len ? -1 : 1;
	return memcmp(n->label, s, len);
}

/* Index in the sorted children of the first label >= s (its place if absent). */
static uint32_t lit_lower(const zh__router_t *r, const zh__rnode_t *n, const char *s,
			  size_t len)
{
	uint32_t lo = 0, hi = n->nlits;
	while (lo < hi) {
		uint32_t mid = (lo + hi) / 2;
		if (label_cmp(&r->nodes[n->lits[mid]], s, len) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* The child of node for segment sg, created if need be; -ENOMEM. */
static int32_t child(zh__router_t *r, uint32_t node, const zh__rseg_t *sg, const char *canon)
{
	const char *s = canon + sg->off;
	int32_t c;
	uint32_t at, *kids;
	zh__rnode_t *n = &r->nodes[node];
	if (sg->kind == ZH__S_PARAM) {
		if (n->param >= 0)
			return n->param;
		if ((c = node_new(r, NULL, 0)) < 0)
			return c;
		r->nodes[node].param = c;
		return c;
	}
	at = lit_lower(r, n, s, sg->len);
	if (at < n->nlits && label_cmp(&r->nodes[n->lits[at]], s, sg->len) == 0)
		return (int32_t)n->lits[at];
	kids = realloc(n->lits, (n->nlits + 1) * sizeof *kids);
	if (kids == NULL)
		return -ENOMEM;
	n->lits = kids;
	if ((c = node_new(r, s, sg->len)) < 0)
		return c; /* kids stays: it is the node's array, one slot larger */
	if (edge_put(r, node, (uint32_t)c) < 0)
		return -ENOMEM; /* the new node stays unreachable: it matches nothing */
	n = &r->nodes[node]; /* node_new may have moved the array */
	memmove(n->lits + at + 1, n->lits + at, (n->nlits - at) * sizeof *kids);
	n->lits[at] = (uint32_t)c;
	n->nlits++;
	return c;
}

/* Where a pattern's group is kept: the node's end, or one of its tails (created). */
static int32_t *group_slot(zh__router_t *r, uint32_t node, const zh__rseg_t *tail,
			   const char *canon)
{
	zh__rnode_t *n = &r->nodes[node];
	zh__rtail_t *t;
	char *p;
	uint32_t at = 0;
	if (tail == NULL)
		return &n->end;
	for (uint32_t i = 0; i < n->ntails; i++)
		if (n->tails[i].plen == tail->len &&
		    memcmp(n->tails[i].p, canon + tail->off, tail->len) == 0)
			return &n->tails[i].group;
	t = realloc(n->tails, (n->ntails + 1) * sizeof *t);
	if (t == NULL)
		return NULL;
	n->tails = t;
	if ((p = malloc(tail->len ? tail->len : 1)) == NULL)
		return NULL;
	memcpy(p, canon + tail->off, tail->len);
	while (at < n->ntails && t[at].plen >= tail->len) /* longest prefix first */
		at++;
	memmove(t + at + 1, t + at, (n->ntails - at) * sizeof *t);
	t[at] = (zh__rtail_t){p, tail->len, -1};
	n->ntails++;
	return &t[at].group;
}

/* The root of host (0 length: any host), created if need be. */
static int32_t host_root(zh__router_t *r, const char *host, size_t hlen, uint32_t *host_id)
{
	struct zh__rhost *h;
	int32_t root;
	for (uint32_t i = 0; i < r->nhosts; i++)
		if (r->hosts[i].len == hlen && zh__ieq(r->hosts[i].name, host, hlen)) {
			*host_id = i;
			return (int32_t)r->hosts[i].root;
		}
	h = realloc(r->hosts, (r->nhosts + 1) * sizeof *h);
	if (h == NULL)
		return -ENOMEM;
	r->hosts = h;
	if ((root = node_new(r, NULL, 0)) < 0)
		return root;
	h[r->nhosts].name = malloc(hlen + 1);
	if (h[r->nhosts].name == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < hlen; i++)
		h[r->nhosts].name[i] = (char)(host[i] | (host[i] >= 'A' && host[i] <= 'Z' ? 0x20 : 0));
	h[r->nhosts].name[hlen] = '\0';
	h[r->nhosts].len = hlen;
	h[r->nhosts].root = (uint32_t)root;
	*host_id = r->nhosts++;
	return root;
}

/* Do two routes of the same host conflict, with methods a and b and paths related as rl?
 * As in Go 1.22, a method of a route is a pattern of its own: two routes that share a
 * method conflict when some path matches both and neither pattern matches a strict subset
 * of the other's paths (the same pattern twice included). Different methods never
 * conflict, except GET and HEAD, since a GET pattern answers HEAD: those two must not
 * overlap with neither a subset of the other (a HEAD request would have two equally
 * specific patterns). Go also refuses a GET pattern with a more specific path than a HEAD
 * one ("GET /users/{id}" and "HEAD /"); zerohttp accepts it and sends HEAD where GET
 * goes, the more specific path (zerohttpd's static root is GET|HEAD "/", the demo's
 * "/plaintext" GET only). */
static bool clash(unsigned a, unsigned b, enum rel rl)
{
	bool get_head = ((a & ZH_GET) && (b & ZH_HEAD)) || ((a & ZH_HEAD) && (b & ZH_GET));
	if (rl == R_EQUAL)
		return (a & b) != 0;
	return rl == R_OVERLAP && ((a & b) != 0 || get_head);
}

/* -EEXIST if the new route conflicts with a registered one (clash). */
static int check_against(const zh__router_t *r, const parsed_t *pp, unsigned methods,
			 uint32_t host_id)
{
	view_t a = {pp->segs, pp->nsegs, pp->canon};
	/* the methods a route must have to possibly clash with this one */
	unsigned near = methods | (methods & ZH_GET ? ZH_HEAD : 0) | (methods & ZH_HEAD ? ZH_GET : 0);
	for (uint32_t i = 0; i < r->nroutes; i++) {
		const zh__route_t *o = &r->routes[i];
		view_t b = {o->segs, o->nsegs, o->canon};
		/* a host's patterns win over host-less ones: never a conflict; nor without a
		 * method in common (or GET against HEAD) */
		if (o->host != host_id || (o->methods & near) == 0)
			continue;
		if (clash(methods, o->methods, rel_patterns(&a, &b)))
			return -EEXIST;
	}
	return 0;
}

int zh__router_add(zh__router_t *r, unsigned methods, const char *pattern, unsigned flags,
		   zh_handler_fn fn, void *arg)
{
	parsed_t pp;
	zh__route_t *rt;
	uint32_t host_id = 0, nplain;
	int32_t node, *slot;
	int err;
	if (!pattern || !fn || (methods & ZH_METHOD_ANY) == 0)
		return -EINVAL;
	if ((err = parse_pattern(pattern, flags, &pp)) < 0)
		return err;
	/* node 0 is the host-less root, made with the first route */
	if (r->nnodes == 0 && node_new(r, NULL, 0) < 0)
		goto nomem;
	if (pp.hlen) {
		uint32_t id;
		if (host_root(r, pp.host, pp.hlen, &id) < 0)
			goto nomem;
		host_id = id + 1;
	}
	if ((err = check_against(r, &pp, methods & ZH_METHOD_ANY, host_id)) < 0) {
		parsed_free(&pp);
		return err;
	}
	if (r->nroutes == r->cap_routes) {
		uint32_t cap = r->cap_routes ? r->cap_routes * 2 : 16;
		zh__route_t *nr = realloc(r->routes, cap * sizeof *nr);
		if (nr == NULL)
			goto nomem;
		r->routes = nr;
		r->cap_routes = cap;
	}
	node = host_id ? (int32_t)r->hosts[host_id - 1].root : 0;
	nplain = pp.nsegs && pp.segs[pp.nsegs - 1].kind == ZH__S_TAIL ? pp.nsegs - 1 : pp.nsegs;
	for (uint32_t i = 0; i < nplain; i++)
		if ((node = child(r, (uint32_t)node, &pp.segs[i], pp.canon)) < 0)
			goto nomem;
	if (host_id == 0 && nplain == pp.nsegs && pp.nparams == 0 &&
	    exact_put(r, &pp, (uint32_t)node) < 0)
		goto nomem; /* (before the group slot: exact_put moves no node) */
	slot = group_slot(r, (uint32_t)node, nplain < pp.nsegs ? &pp.segs[nplain] : NULL,
			  pp.canon);
	if (slot == NULL)
		goto nomem;
	rt = &r->routes[r->nroutes];
	memset(rt, 0, sizeof *rt);
	rt->len = strlen(pattern);
	if ((rt->path = malloc(rt->len + 1)) == NULL)
		goto nomem;
	memcpy(rt->path, pattern, rt->len + 1);
	rt->methods = methods & ZH_METHOD_ANY;
	rt->flags = flags;
	rt->fn = fn;
	rt->arg = arg;
	rt->nparams = (uint8_t)pp.nparams;
	rt->host = host_id;
	rt->names = pp.names;
	rt->canon = pp.canon;
	rt->segs = pp.segs;
	rt->nsegs = pp.nsegs;
	rt->next = *slot; /* the group's methods are disjoint: order does not matter */
	*slot = (int32_t)r->nroutes++;
	r->methods |= rt->methods;
	return 0;
nomem:
	/* nodes made on the way stay (empty nodes match nothing) */
	parsed_free(&pp);
	return -ENOMEM;
}

void zh__router_free(zh__router_t *r)
{
	for (uint32_t i = 0; i < r->nroutes; i++) {
		free(r->routes[i].path);
		free(r->routes[i].names);
		free(r->routes[i].canon);
		free(r->routes[i].segs);
	}
	for (uint32_t i = 0; i < r->nnodes; i++) {
		for (uint32_t k = 0; k < r->nodes[i].ntails; k++)
			free(r->nodes[i].tails[k].p);
		free(r->nodes[i].label);
		free(r->nodes[i].lits);
		free(r->nodes[i].tails);
	}
	for (uint32_t i = 0; i < r->nhosts; i++)
		free(r->hosts[i].name);
	for (uint32_t i = 0; r->exact && i <= r->exact_mask; i++)
		free(r->exact[i].path);
	free(r->routes);
	free(r->nodes);
	free(r->hosts);
	free(r->edges);
	free(r->exact);
	memset(r, 0, sizeof *r);
}

int zh_server_route(zh_server_t *srv, unsigned methods, const char *path, unsigned flags,
		    zh_handler_fn handler, void *arg)
{
	if (srv->running)
		return -EBUSY;
	return zh__router_add(&srv->router, methods, path, flags, handler, arg);
}

/* ---- lookup ----------------------------------------------------------------------------------- */

/* How many bytes of path segment p[0..len) spell canonical literal r[0..rlen), compared
 * triplet-aware (only paths with a '%' come here); -1 if they do not. */
static long match_encoded(const char *r, size_t rlen, const char *p, size_t len)
{
	size_t i = 0, j = 0;
	while (i < rlen) {
		int u, o;
		if (j == len)
			return -1;
		u = zh__pct_unreserved(p + j, len - j);
		if (u >= 0) {
			if ((unsigned char)r[i] != u)
				return -1;
			i++;
			j += 3;
		} else if ((o = zh__pct_octet(p + j, len - j)) >= 0) {
			if (zh__pct_octet(r + i, rlen - i) != o)
				return -1;
			i += 3;
			j += 3;
		} else if (r[i++] != p[j++]) {
			return -1;
		}
	}
	return (long)j;
}

typedef struct walk {
	const zh__router_t *r;
	const char *path;
	size_t len;
	bool encoded;
	unsigned bit;  /* the request's method */
	unsigned seen; /* the methods of the matching patterns passed over (Allow) */
	zh__match_t *m;
} walk_t;

static int32_t lit_child(const walk_t *w, uint32_t node, const zh__rnode_t *n, const char *seg,
			 size_t slen)
{
	if (!w->encoded)
		return edge_find(w->r, node, seg, slen);
	for (uint32_t i = 0; i < n->nlits; i++) {
		const zh__rnode_t *c = &w->r->nodes[n->lits[i]];
		if (match_encoded(c->label, c->label_len, seg, slen) == (long)slen)
			return (int32_t)n->lits[i];
	}
	return -1;
}

static bool tail_matches(const walk_t *w, const zh__rtail_t *t, const char *seg, size_t slen)
{
	if (!w->encoded)
		return slen >= t->plen && memcmp(seg, t->p, t->plen) == 0;
	return match_encoded(t->p, t->plen, seg, slen) >= 0;
}

/* The route of group g (one pattern, -1: none) that takes the request's method: the one
 * with the method; for HEAD, the one claiming HEAD, else the GET one. NULL if none: the
 * group's methods are then added to w->seen. */
static const zh__route_t *take(walk_t *w, int32_t g)
{
	const zh__route_t *get = NULL;
	for (; g >= 0; g = w->r->routes[g].next) {
		const zh__route_t *rt = &w->r->routes[g];
		if (rt->methods & w->bit)
			return rt;
		if (rt->methods & ZH_GET)
			get = rt;
		w->seen |= rt->methods;
	}
	return w->bit == ZH_HEAD ? get : NULL;
}

/* The most specific route under node that matches the path from pos (the start of a
 * segment) and takes the method, or NULL; its captures pushed on w->m (none left by a
 * NULL). Recursion depth is bounded by the trie's, i.e. by the longest registered
 * pattern, not by the request. */
static const zh__route_t *walk(walk_t *w, uint32_t node, size_t pos)
{
	const zh__rnode_t *n = &w->r->nodes[node];
	const char *seg = w->path + pos;
	size_t slen = seg_len(seg, w->len - pos);
	bool slash = pos + slen < w->len;
	const zh__route_t *rt;
	uint32_t k = w->m->n;
	int32_t c;
	if (n->nlits && (c = lit_child(w, node, n, seg, slen)) >= 0) {
		rt = slash ? walk(w, (uint32_t)c, pos + slen + 1) : take(w, w->r->nodes[c].end);
		if (rt)
			return rt;
	}
	if (n->param >= 0 && slen > 0 && k < ZH__PARAMS_MAX) {
		w->m->p[k].off = (uint32_t)pos;
		w->m->p[k].len = (uint32_t)slen;
		w->m->n = k + 1;
		rt = slash ? walk(w, (uint32_t)n->param, pos + slen + 1)
			   : take(w, w->r->nodes[n->param].end);
		if (rt)
			return rt;
		w->m->n = k;
	}
	for (uint32_t i = 0; i < n->ntails; i++) {
		if (n->tails[i].group < 0 || !tail_matches(w, &n->tails[i], seg, slen))
			continue;
		if (k < ZH__PARAMS_MAX) {
			w->m->p[k].off = (uint32_t)pos;
			w->m->p[k].len = (uint32_t)(w->len - pos);
			w->m->n = k + 1;
		}
		if ((rt = take(w, n->tails[i].group)) != NULL)
			return rt;
		w->m->n = k;
	}
	return NULL;
}

/* The Host field without its port ("[::1]:80" keeps "[::1]") or a final dot. */
static size_t host_name_len(const char *h, size_t n)
{
	if (n && h[0] == '[') {
		const char *e = memchr(h, ']', n);
		return e ? (size_t)(e - h) + 1 : n;
	}
	for (size_t i = n; i > 0; i--)
		if (h[i - 1] == ':') {
			n = i - 1;
			break;
		}
	if (n && h[n - 1] == '.')
		n--;
	return n;
}

/* Go's order: the Host's patterns first, then the host-less ones; within each, the first
 * pattern the walk meets that takes the method. Nothing takes it: 405 if any pattern of
 * either matched the path, with the methods of all of them (Go's Allow), else 404. */
const zh__route_t *zh__router_find(const zh__router_t *r, const char *host, size_t hlen,
				   const char *path, size_t len, unsigned method_bit,
				   unsigned *allow, zh__match_t *m)
{
	walk_t w = {r, path, len, memchr(path, '%', len) != NULL, method_bit, 0, m};
	const zh__route_t *rt;
	*allow = 0;
	m->n = 0;
	if (r->nnodes == 0 || len == 0 || path[0] != '/')
		return NULL;
	if (r->nhosts && hlen) {
		hlen = host_name_len(host, hlen);
		for (uint32_t i = 0; i < r->nhosts; i++)
			if (r->hosts[i].len == hlen && zh__ieq(r->hosts[i].name, host, hlen)) {
				if ((rt = walk(&w, r->hosts[i].root, 1)) != NULL)
					return rt;
				break;
			}
	}
	if (r->nexact && !w.encoded) {
		/* a literal-only pattern is the most specific of all that match its path */
		uint64_t h = seg_hash(EXACT_KEY, path, len);
		const zh__rexact_t *e = &r->exact[exact_slot(r, h, path, len)];
		if (e->path && (rt = take(&w, r->nodes[e->node].end)) != NULL)
			return rt;
	}
	if ((rt = walk(&w, 0, 1)) != NULL)
		return rt;
	*allow = w.seen;
	return NULL;
}

const zh__route_t *zh__route_find(const zh_server_t *srv, zh_slice_t host, zh_slice_t path,
				  unsigned method_bit, unsigned *allow, zh__match_t *m)
{
	return zh__router_find(&srv->router, host.ptr, host.len, path.ptr, path.len, method_bit,
			       allow, m);
}

/* ---- request accessors ------------------------------------------------------------------------- */

/* Percent-decodes s[0..n) into out (never longer); a malformed triplet stays as sent. */
static size_t pct_decode(const char *s, size_t n, char *out)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		int o = s[i] == '%' ? zh__pct_octet(s + i, n - i) : -1;
		if (o >= 0) {
			out[k++] = (char)o;
			i += 2;
		} else {
			out[k++] = s[i];
		}
	}
	return k;
}

bool zh_req_param(const zh_request_t *req, const char *name, zh_slice_t *out)
{
	zh__ctx_t *ctx = req->ctx;
	const zh__route_t *rt = ctx->route;
	const char *nm;
	zh_slice_t path;
	if (rt == NULL || name == NULL || name[0] == '\0' || !ctx->in_request)
		return false;
	nm = rt->names;
	for (uint32_t i = 0; i < rt->nparams && i < req->params.n; i++, nm += strlen(nm) + 1) {
		const char *raw;
		uint32_t off = req->params.p[i].off, len = req->params.p[i].len;
		if (strcmp(nm, name) != 0)
			continue;
		path = zh_req_path(req);
		raw = path.ptr + off;
		if (memchr(raw, '%', len) == NULL) {
			*out = (zh_slice_t){raw, len}; /* as sent: nothing to decode */
		} else {
			/* params never overlap and decoding never lengthens: each one decodes
			 * at its own offset in the scratch area, however often it is asked. The
			 * area is this request's until its response has left (conn.c: the next
			 * request waits for the queue to drain, room_for_response) */
			char *dst = ctx->pscratch + off;
			ctx->pscratch_busy = true;
			*out = (zh_slice_t){dst, pct_decode(raw, len, dst)};
		}
		return true;
	}
	return false;
}

const char *zh_req_route(const zh_request_t *req)
{
	return req->ctx->route ? req->ctx->route->path : NULL;
}
