/* router_lookup.c — the router's lookup time, without the network: `make bench` runs it.
 *
 *   router_bench [ROUTES [LOOKUPS [PASSES]]]
 *
 * ROUTES (default bench/router/routes.txt): one route per line, "METHOD PATTERN" (GET
 * /users/{id}/posts); METHOD may be "ANY" or several joined by '|' (GET|HEAD). LOOKUPS
 * (default bench/router/lookups.txt): one per line, "METHOD PATH". Empty lines and lines
 * starting with '#' are skipped. The routes are registered on a real zh_server (port 0,
 * one worker, never run), and every lookup goes through zh__route_find(), the function the
 * server calls for each request, with no Host. Timed: PASSES (default 200) passes over all
 * lookups, seven times; printed: ns per lookup (the best round and the median), the
 * outcome counts, and the malloc-family calls made while timing, counted by this program's
 * own wrappers of malloc, calloc, realloc, posix_memalign, aligned_alloc and memalign
 * (forwarded to glibc). The exit status is 1 if any was made or a route was refused.
 */
#include "internal.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- allocation counter: armed only around the timed loops --------------------------------- */

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);

static volatile int armed;
static volatile unsigned long allocs;

static void note(void)
{
	if (armed)
		allocs++;
}
void *malloc(size_t n)
{
	note();
	return __libc_malloc(n);
}
void *calloc(size_t a, size_t b)
{
	note();
	return __libc_calloc(a, b);
}
void *realloc(void *p, size_t n)
{
	note();
	return __libc_realloc(p, n);
}
int posix_memalign(void **p, size_t align, size_t n)
{
	note();
	*p = __libc_memalign(align, n);
	return *p ? 0 : ENOMEM;
}
void *aligned_alloc(size_t align, size_t n)
{
	note();
	return __libc_memalign(align, n);
}
void *memalign(size_t align, size_t n)
{
	note();
	return __libc_memalign(align, n);
}

/* ---- input ---------------------------------------------------------------------------------- */

typedef struct {
	unsigned method;
	char *path;
	size_t len;
} lookup_t;

static unsigned method_bits(const char *s)
{
	static const char *const names[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS",
					    "PATCH", "TRACE"};
	unsigned bits = 0;
	char buf[128];
	size_t n = strlen(s);
	if (n >= sizeof buf)
		return 0;
	memcpy(buf, s, n + 1);
	for (char *tok = strtok(buf, "|"); tok; tok = strtok(NULL, "|")) {
		unsigned b = 0;
		if (strcmp(tok, "ANY") == 0)
			b = ZH_METHOD_ANY;
		for (unsigned i = 0; i < 8 && !b; i++)
			if (strcmp(tok, names[i]) == 0)
				b = 1u << i;
		if (!b)
			return 0;
		bits |= b;
	}
	return bits;
}

/* Calls fn(method, rest, line number) for each "METHOD REST" line; -1 on a bad line. */
static int read_lines(const char *file, int (*fn)(unsigned, const char *, unsigned, void *),
		      void *arg)
{
	FILE *f = fopen(file, "r");
	char line[8192];
	unsigned no = 0;
	if (f == NULL) {
		fprintf(stderr, "router_bench: %s: %s\n", file, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof line, f)) {
		char *sp, *end = line + strcspn(line, "\r\n");
		unsigned m;
		*end = '\0';
		no++;
		if (line[0] == '\0' || line[0] == '#')
			continue;
		sp = strchr(line, ' ');
		if (sp == NULL || (*sp = '\0', m = method_bits(line)) == 0 ||
		    fn(m, sp + 1, no, arg) < 0) {
			fprintf(stderr, "router_bench: %s:%u: bad line\n", file, no);
			fclose(f);
			return -1;
		}
	}
	fclose(f);
	return 0;
}

static void h_none(zh_request_t *req, zh_response_t *resp, void *arg)
{
	(void)req;
	(void)resp;
	(void)arg;
}

static int add_route(unsigned m, const char *pattern, unsigned no, void *arg)
{
	int r = zh_server_route(arg, m, pattern, 0, h_none, NULL);
	if (r < 0)
		fprintf(stderr, "router_bench: route %u \"%s\": %s\n", no, pattern, strerror(-r));
	return r;
}

static lookup_t *lookups;
static size_t nlookups, cap_lookups;

static int add_lookup(unsigned m, const char *path, unsigned no, void *arg)
{
	(void)no;
	(void)arg;
	if (path[0] != '/' || (m & (m - 1)) != 0)
		return -1; /* one method per lookup */
	if (nlookups == cap_lookups) {
		cap_lookups = cap_lookups ? cap_lookups * 2 : 1024;
		lookups = realloc(lookups, cap_lookups * sizeof *lookups);
		if (lookups == NULL)
			return -1;
	}
	lookups[nlookups].method = m;
	lookups[nlookups].len = strlen(path);
	lookups[nlookups].path = strdup(path);
	return lookups[nlookups++].path ? 0 : -1;
}

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	const char *routes = argc > 1 ? argv[1] : "bench/router/routes.txt";
	const char *lfile = argc > 2 ? argv[2] : "bench/router/lookups.txt";
	long passes = argc > 3 ? atol(argv[3]) : 200;
	enum { ROUNDS = 7 };
	double ns[ROUNDS];
	size_t found = 0, not_found = 0, not_allowed = 0;
	uintptr_t sink = 0;
	zh_config_t cfg;
	zh_server_t *srv;
	zh__match_t m;
	int err = 0;

	zh_config_init(&cfg);
	cfg.port = 0;
	cfg.workers = 1;
	cfg.io_contexts = 1;
	cfg.max_connections = 1;
	cfg.large_buffers = 0;
	cfg.body_buffers = 0;
	if (passes <= 0 || (srv = zh_server_new(&cfg, &err)) == NULL) {
		fprintf(stderr, "router_bench: %s\n", passes <= 0 ? "bad PASSES" : strerror(-err));
		return 1;
	}
	if (read_lines(routes, add_route, srv) < 0 || read_lines(lfile, add_lookup, NULL) < 0 ||
	    nlookups == 0) {
		zh_server_free(srv);
		return 1;
	}
	for (size_t i = 0; i < nlookups; i++) {
		unsigned allow;
		zh_slice_t path = {lookups[i].path, lookups[i].len};
		const zh__route_t *rt = zh__route_find(srv, (zh_slice_t){"", 0}, path,
						       lookups[i].method, &allow, &m);
		if (rt)
			found++;
		else if (allow)
			not_allowed++;
		else
			not_found++;
	}
	for (int r = 0; r < ROUNDS; r++) {
		double t0;
		armed = 1;
		t0 = now_ns();
		for (long p = 0; p < passes; p++)
			for (size_t i = 0; i < nlookups; i++) {
				unsigned allow;
				zh_slice_t path = {lookups[i].path, lookups[i].len};
				sink += (uintptr_t)zh__route_find(srv, (zh_slice_t){"", 0}, path,
								  lookups[i].method, &allow, &m) +
					m.n;
			}
		ns[r] = (now_ns() - t0) / ((double)passes * (double)nlookups);
		armed = 0;
	}
	qsort(ns, ROUNDS, sizeof ns[0], cmp_double);
	printf("router: %u routes, %zu lookups (%zu found, %zu 404, %zu 405): %.1f ns/lookup "
	       "(best of %d rounds of %ld passes; median %.1f), %lu malloc-family calls while "
	       "timing%s\n",
	       srv->router.nroutes, nlookups, found, not_found, not_allowed, ns[0], ROUNDS, passes,
	       ns[ROUNDS / 2], allocs, sink == 42 ? " " : "");
	for (size_t i = 0; i < nlookups; i++)
		free(lookups[i].path);
	free(lookups);
	zh_server_free(srv);
	return allocs != 0;
}
