/* router_lookup.c — the router's lookup time, without the network: `make bench` runs it.
 *
 *   router_bench [ROUTES [LOOKUPS [EXPECT [PASSES]]]]
 *
 * ROUTES (default bench/router/routes.txt): one route per line, "METHOD PATTERN" (GET
 * /users/{id}/posts); METHOD may be "ANY" or several joined by '|' (GET|HEAD). LOOKUPS
 * (default bench/router/lookups.txt): one per line, "METHOD PATH". Empty lines and lines
 * starting with '#' are skipped. EXPECT (default: LOOKUPS with ".txt" replaced by
 * ".expect" if that file exists; "-": none): one line per lookup, "200 N" (N: the line of
 * ROUTES whose route must answer), "404" or "405", as bench/router/gen_routes.py writes
 * them and Go's ServeMux answers them (bench/router/mux_bench_test.go checks that side).
 * The routes are registered on a real zh_server (port 0, one worker, never run), and
 * every lookup goes through zh__route_find(), the function the server calls for each
 * request, with no Host. Each lookup's answer is checked against EXPECT first. Timed:
 * PASSES (default 200) passes over all lookups, seven times; printed: ns per lookup (the
 * best round and the median), the outcome counts, the lookups that agree with EXPECT, and
 * the malloc-family calls made while timing, counted by this program's own wrappers of
 * malloc, calloc, realloc, posix_memalign, aligned_alloc and memalign (forwarded to
 * glibc). The exit status is 1 if any was made, a route was refused, or a lookup's answer
 * differs from EXPECT.
 */
#include "internal.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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
	int status;	/* expected: 200, 404 or 405; 0 if no EXPECT */
	unsigned line;	/* with 200: the line of ROUTES whose route answers */
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

/* The route registered from each line of ROUTES (by line number, 1-based), -1 if none. */
static int32_t *route_of_line;
static unsigned nroute_lines;

static int add_route(unsigned m, const char *pattern, unsigned no, void *arg)
{
	zh_server_t *srv = arg;
	int r = zh_server_route(srv, m, pattern, 0, h_none, NULL);
	if (r < 0) {
		fprintf(stderr, "router_bench: route %u \"%s\": %s\n", no, pattern, strerror(-r));
		return r;
	}
	if (no >= nroute_lines) {
		unsigned cap = no * 2 + 16;
		int32_t *p = realloc(route_of_line, cap * sizeof *p);
		if (p == NULL)
			return -1;
		for (unsigned i = nroute_lines; i < cap; i++)
			p[i] = -1;
		route_of_line = p;
		nroute_lines = cap;
	}
	route_of_line[no] = (int32_t)srv->router.nroutes - 1;
	return 0;
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
	memset(&lookups[nlookups], 0, sizeof lookups[nlookups]);
	lookups[nlookups].method = m;
	lookups[nlookups].len = strlen(path);
	lookups[nlookups].path = strdup(path);
	return lookups[nlookups++].path ? 0 : -1;
}

/* Reads EXPECT into the lookups, one line each, in order; -1 on a bad or missing line. */
static int read_expect(const char *file)
{
	FILE *f = fopen(file, "r");
	char line[256];
	size_t i = 0;
	if (f == NULL) {
		fprintf(stderr, "router_bench: %s: %s\n", file, strerror(errno));
		return -1;
	}
	while (i < nlookups && fgets(line, sizeof line, f)) {
		int status;
		unsigned no = 0;
		int n = sscanf(line, "%d %u", &status, &no);
		if (n < 1 || (status == 200) != (n == 2) ||
		    (status != 200 && status != 404 && status != 405))
			break;
		lookups[i].status = status;
		lookups[i++].line = no;
	}
	fclose(f);
	if (i < nlookups) {
		fprintf(stderr, "router_bench: %s:%zu: bad or missing line\n", file, i + 1);
		return -1;
	}
	return 0;
}

/* Does the answer to lookup l (rt, allow) agree with EXPECT? Prints it if not. */
static bool agrees(const zh_server_t *srv, const lookup_t *l, const zh__route_t *rt,
		   unsigned allow)
{
	int got = rt ? 200 : allow ? 405 : 404;
	int32_t want = l->status == 200 && l->line < nroute_lines ? route_of_line[l->line] : -1;
	if (l->status == 0 ||
	    (got == l->status && (got != 200 || (want >= 0 && rt == &srv->router.routes[want]))))
		return true;
	fprintf(stderr, "router_bench: %s (method bit %u): got %d %s, want %d", l->path, l->method,
		got, rt ? rt->path : "", l->status);
	if (l->status == 200)
		fprintf(stderr, " %s (line %u)", want >= 0 ? srv->router.routes[want].path : "?",
			l->line);
	fputc('\n', stderr);
	return false;
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

enum { ROUNDS = 7 };

/* Times `passes` passes over the n lookups of set, ROUNDS times: the rounds' ns per lookup,
 * sorted, into ns. Allocation calls made meanwhile are counted in allocs. */
static uintptr_t time_set(zh_server_t *srv, lookup_t *const *set, size_t n, long passes,
			  double *ns)
{
	uintptr_t sink = 0;
	zh__match_t m;
	for (int r = 0; r < ROUNDS; r++) {
		double t0;
		armed = 1;
		t0 = now_ns();
		for (long p = 0; p < passes; p++)
			for (size_t i = 0; i < n; i++) {
				unsigned allow;
				const lookup_t *l = set[i];
				zh_slice_t path = {l->path, l->len};
				sink += (uintptr_t)zh__route_find(srv, (zh_slice_t){"", 0}, path,
								  l->method, &allow, &m) +
					m.n;
			}
		ns[r] = (now_ns() - t0) / ((double)passes * (double)n);
		armed = 0;
	}
	qsort(ns, ROUNDS, sizeof ns[0], cmp_double);
	return sink;
}

/* With EXPECT: a table of the lookup classes mux_bench_test.go times for ServeMux ("all"
 * in file order; "hits" the 200s; then by the pattern hit: "static" without wildcards,
 * "param" with {x} only, "catchall" with {x...}; "404"; "405"), each timed with about as
 * many lookups as "all". */
static uintptr_t class_table(zh_server_t *srv, long passes)
{
	static const char *const names[] = {"all", "hits", "static", "param", "catchall", "404",
					    "405"};
	enum { NCLASS = sizeof names / sizeof names[0] };
	lookup_t **set = malloc(nlookups * sizeof *set);
	uintptr_t sink = 0;
	if (set == NULL)
		return 0;
	printf("| zerohttp, 1,000 routes | lookups | ns/lookup (median of %d) | ns/lookup (min) | "
	       "malloc calls while timed |\n|---|---:|---:|---:|---:|\n", ROUNDS);
	for (int c = 0; c < NCLASS; c++) {
		size_t n = 0;
		double ns[ROUNDS];
		unsigned long before = allocs;
		for (size_t i = 0; i < nlookups; i++) {
			const lookup_t *l = &lookups[i];
			const char *pat = l->status == 200 ? srv->router.routes[route_of_line[l->line]].path
							   : NULL;
			const char *cls = l->status == 404   ? "404"
					  : l->status == 405 ? "405"
					  : strstr(pat, "...}") ? "catchall"
					  : strchr(pat, '{')	? "param"
								: "static";
			if (c == 0 || (c == 1 && l->status == 200) || strcmp(cls, names[c]) == 0)
				set[n++] = &lookups[i];
		}
		if (n == 0)
			continue;
		sink += time_set(srv, set, n, passes * (long)(nlookups / n), ns);
		printf("| %s | %zu | %.1f | %.1f | %lu |\n", names[c], n, ns[ROUNDS / 2], ns[0],
		       allocs - before);
	}
	free(set);
	return sink;
}

int main(int argc, char **argv)
{
	const char *routes = argc > 1 ? argv[1] : "bench/router/routes.txt";
	const char *lfile = argc > 2 ? argv[2] : "bench/router/lookups.txt";
	const char *efile = argc > 3 ? argv[3] : NULL;
	long passes = argc > 4 ? atol(argv[4]) : 200;
	double ns[ROUNDS];
	size_t found = 0, not_found = 0, not_allowed = 0, agreed = 0;
	char derived[4096];
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
	if (efile == NULL) { /* LOOKUPS's .expect beside it, if there is one */
		size_t n = strlen(lfile);
		if (n > 4 && n + 4 < sizeof derived && strcmp(lfile + n - 4, ".txt") == 0) {
			snprintf(derived, sizeof derived, "%.*s.expect", (int)(n - 4), lfile);
			if (access(derived, F_OK) == 0)
				efile = derived;
		}
	} else if (strcmp(efile, "-") == 0) {
		efile = NULL;
	}
	if (read_lines(routes, add_route, srv) < 0 || read_lines(lfile, add_lookup, NULL) < 0 ||
	    nlookups == 0 || (efile && read_expect(efile) < 0)) {
		zh_server_free(srv);
		return 1;
	}
	for (size_t i = 0; i < nlookups; i++) {
		unsigned allow;
		zh_slice_t path = {lookups[i].path, lookups[i].len};
		const zh__route_t *rt = zh__route_find(srv, (zh_slice_t){"", 0}, path,
						       lookups[i].method, &allow, &m);
		agreed += agrees(srv, &lookups[i], rt, allow);
		if (rt)
			found++;
		else if (allow)
			not_allowed++;
		else
			not_found++;
	}
	{
		lookup_t **all = malloc(nlookups * sizeof *all);
		if (all == NULL) {
			zh_server_free(srv);
			return 1;
		}
		for (size_t i = 0; i < nlookups; i++)
			all[i] = &lookups[i];
		sink += time_set(srv, all, nlookups, passes, ns);
		free(all);
	}
	printf("router: %u routes, %zu lookups (%zu found, %zu 404, %zu 405): %.1f ns/lookup "
	       "(best of %d rounds of %ld passes; median %.1f), %lu malloc-family calls while "
	       "timing%s\n",
	       srv->router.nroutes, nlookups, found, not_found, not_allowed, ns[0], ROUNDS, passes,
	       ns[ROUNDS / 2], allocs, sink == 42 ? " " : "");
	if (efile) {
		printf("router: %zu of %zu lookups agree with %s\n", agreed, nlookups, efile);
		if (agreed == nlookups)
			sink += class_table(srv, passes);
	}
	for (size_t i = 0; i < nlookups; i++)
		free(lookups[i].path);
	free(lookups);
	free(route_of_line);
	zh_server_free(srv);
	return allocs != 0 || (efile && agreed != nlookups);
}
