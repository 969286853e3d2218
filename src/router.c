/* router.c — route registration (zh_server_route, before zh_server_run) and lookup
 * (zh__route_find, once per request: no allocation, compares of a precomputed key first).
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* The first 8 bytes of a path in one word (zero-padded): with the length, most
 * non-matching routes are told apart with two compares, before any memcmp. A fixed-size
 * memcpy compiles to one load. */
static uint64_t route_key(const char *path, size_t len)
{
	uint64_t key = 0;
	if (len >= 8) {
		memcpy(&key, path, 8);
		return key;
	}
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	/* 4 to 7 bytes: two overlapping loads instead of a byte loop. Little-endian, byte i
	 * lands at bits 8i in both, so the shared bytes coincide and the key stays the same
	 * injective one the loop builds (route_matches relies on it up to 8 bytes). */
	if (len >= 4) {
		uint32_t lo, hi;
		memcpy(&lo, path, 4);
		memcpy(&hi, path + len - 4, 4);
		return (uint64_t)lo | (uint64_t)hi << (8 * (len - 4));
	}
#endif
	for (size_t i = 0; i < len; i++)
		key |= (uint64_t)(unsigned char)path[i] << (8 * i);
	return key;
}

int zh_server_route(zh_server_t *srv, unsigned methods, const char *path, unsigned flags,
		    zh_handler_fn handler, void *arg)
{
	zh__route_t *rt;
	size_t len;
	if (srv->running)
		return -EBUSY;
	if (!path || path[0] != '/' || !handler || (methods & ZH_METHOD_ANY) == 0)
		return -EINVAL;
	if (srv->nroutes == sizeof srv->routes / sizeof srv->routes[0])
		return -ENOSPC;
	len = strlen(path);
	rt = &srv->routes[srv->nroutes];
	rt->path = malloc(len + 1);
	if (rt->path == NULL)
		return -ENOMEM;
	memcpy(rt->path, path, len + 1);
	rt->len = len;
	rt->key = route_key(path, len);
	rt->methods = methods & ZH_METHOD_ANY;
	rt->flags = flags;
	rt->fn = handler;
	rt->arg = arg;
	srv->nroutes++;
	srv->route_methods |= rt->methods;
	return 0;
}

/* How many bytes of the request path p spell the route path r, or -1 if they do not.
 * Equivalent spellings (RFC 3986 §6.2.2) count as equal: a triplet of p that encodes an
 * unreserved character matches that character, and two triplets match whatever the case of
 * their hex digits. Only paths with a '%' come here: "/h%65llo" reaches the route "/hello",
 * as the static handler serves it as "hello" (static.c, is_canonical). */
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

/* Does the request path match rt: the whole path for an exact route, a prefix of it for a
 * prefix route? */
static bool route_matches(const zh__route_t *rt, const char *path, size_t len, uint64_t key,
			  bool encoded)
{
	bool is_exact = !(rt->flags & ZH_ROUTE_PREFIX);
	if (encoded) {
		long n = match_encoded(rt->path, rt->len, path, len);
		return is_exact ? n == (long)len : n >= 0;
	}
	return is_exact ? rt->key == key && rt->len == len &&
				  (len <= 8 || memcmp(rt->path + 8, path + 8, len - 8) == 0)
			: rt->len <= len && memcmp(rt->path, path, rt->len) == 0;
}

/* Exact routes first, then the longest prefix. A GET route answers HEAD unless a route for
 * that path claims HEAD. *allow collects the methods of the winning path, for 405/OPTIONS. */
const zh__route_t *zh__route_find(const zh_server_t *srv, const char *path, size_t len,
				  unsigned method_bit, unsigned *allow)
{
	const zh__route_t *best = NULL, *get = NULL;
	size_t best_len = 0;
	bool exact = false;
	uint64_t key = route_key(path, len);
	bool encoded = memchr(path, '%', len) != NULL;

	*allow = 0;
	for (unsigned i = 0; i < srv->nroutes; i++) {
		const zh__route_t *rt = &srv->routes[i];
		bool is_exact = !(rt->flags & ZH_ROUTE_PREFIX);
		if (!route_matches(rt, path, len, key, encoded))
			continue;
		if (is_exact && (rt->methods & method_bit))
			return rt; /* allow is only needed when nothing takes the method */
		if (is_exact && !exact) {
			exact = true;
			*allow = 0;
			best = get = NULL;
		} else if (!is_exact && (exact || rt->len < best_len)) {
			continue;
		} else if (!is_exact && rt->len > best_len) {
			*allow = 0;
			best = get = NULL;
		}
		best_len = rt->len;
		*allow |= rt->methods;
		if (best == NULL && (rt->methods & method_bit))
			best = rt;
		if (get == NULL && (rt->methods & ZH_GET))
			get = rt;
	}
	if (best == NULL && method_bit == ZH_HEAD)
		best = get;
	return best;
}
