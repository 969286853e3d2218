/* upstream_setup.c — the reverse proxy's set-up and metrics: options, upstream URLs
 * (resolved once), every worker's connection slots and buffers, and the per-upstream
 * families on /metrics. Start-up and scrape paths only; the request path is upstream.c.
 */
#include "upstream_int.h"

#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Every proxy, for the metrics (created before the servers run, freed after). */
static pthread_mutex_t proxies_lock = PTHREAD_MUTEX_INITIALIZER;
static zh_proxy_t *proxies;

/* ---- options and set-up ------------------------------------------------------------------ */

void zh_proxy_options_init(zh_proxy_options_t *o)
{
	memset(o, 0, sizeof *o);
	o->balance = ZH_PROXY_ROUND_ROBIN;
	o->max_idle = 64;
	o->max_conns = 256;
	o->connect_timeout_ms = 2000;
	o->header_timeout_ms = 30000;
	o->idle_timeout_ms = 30000;
	o->tunnel_idle_timeout_ms = 60000;
	o->upgrade_protocols = "websocket";
	o->keepalive_timeout_ms = 60000;
	o->fail_timeout_ms = 5000;
	o->health_interval_ms = 2000;
	o->health_timeout_ms = 1000;
	o->health_fails = 2;
	o->health_passes = 2;
}

/* "http://host[:port][/]": resolved once, here (getaddrinfo may block and allocate). */
static int parse_url(const char *url, struct upstream *u)
{
	char host[256], port[8] = "80";
	const char *h, *end, *colon;
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res;
	size_t hl;
	if (strncmp(url, "http://", 7) != 0)
		return strncmp(url, "https://", 8) == 0 ? -EPROTONOSUPPORT : -EINVAL;
	h = url + 7;
	end = h + strcspn(h, "/");
	if (*end && strcmp(end, "/") != 0)
		return -EINVAL; /* the path is forwarded unchanged: no URI part (nginx's rule) */
	if (*h == '[') {
		const char *rb = memchr(h, ']', (size_t)(end - h));
		if (rb == NULL)
			return -EINVAL;
		hl = (size_t)(rb - h - 1);
		colon = rb + 1 < end && rb[1] == ':' ? rb + 1 : NULL;
		if (hl == 0 || hl >= sizeof host || (rb + 1 < end && colon == NULL))
			return -EINVAL;
		memcpy(host, h + 1, hl);
	} else {
		colon = memchr(h, ':', (size_t)(end - h));
		hl = (size_t)((colon ? colon : end) - h);
		if (hl == 0 || hl >= sizeof host)
			return -EINVAL;
		memcpy(host, h, hl);
	}
	host[hl] = '\0';
	if (colon) {
		size_t pl = (size_t)(end - colon - 1);
		if (pl == 0 || pl >= sizeof port || strspn(colon + 1, "0123456789") < pl)
			return -EINVAL;
		memcpy(port, colon + 1, pl);
		port[pl] = '\0';
	}
	if (strlen(url) >= sizeof u->url || (size_t)(end - h) >= sizeof u->authority)
		return -EINVAL;
	if (getaddrinfo(host, port, &hints, &res) != 0)
		return -EHOSTUNREACH;
	memcpy(&u->addr, res->ai_addr, res->ai_addrlen);
	u->alen = res->ai_addrlen;
	freeaddrinfo(res);
	memcpy(u->url, url, (size_t)(end - url));
	u->url[end - url] = '\0';
	memcpy(u->authority, h, (size_t)(end - h));
	u->authority[end - h] = '\0';
	return 0;
}

static int check_options(const zh_proxy_options_t *o)
{
	if (o->n_upstreams == 0 || o->n_upstreams > ZH__UP_MAX || o->upstreams == NULL ||
	    (o->balance != ZH_PROXY_ROUND_ROBIN && o->balance != ZH_PROXY_LEAST_OUTSTANDING) ||
	    o->max_conns == 0 || o->max_conns > 65536 || o->max_idle > o->max_conns ||
	    o->connect_timeout_ms == 0 || o->header_timeout_ms == 0 || o->idle_timeout_ms == 0 ||
	    o->tunnel_idle_timeout_ms == 0)
		return -EINVAL;
	if (o->health_path &&
	    (o->health_path[0] != '/' || strlen(o->health_path) >= 256 ||
	     strpbrk(o->health_path, " \t\r\n") || !zh__valid_field_value(o->health_path, strlen(o->health_path)) ||
	     o->health_interval_ms == 0 || o->health_timeout_ms == 0 || o->health_fails == 0 ||
	     o->health_fails > 255 || o->health_passes == 0 || o->health_passes > 255))
		return -EINVAL;
	if (o->host && (strlen(o->host) >= 256 || !zh__valid_field_value(o->host, strlen(o->host)) ||
			!*o->host))
		return -EINVAL;
	if (o->upgrade_protocols && (strlen(o->upgrade_protocols) >= 256 ||
				     !zh__valid_field_value(o->upgrade_protocols,
							    strlen(o->upgrade_protocols))))
		return -EINVAL;
	return 0;
}

bool zh__proxy_upgrade_allowed(const zh_proxy_t *p, zh_slice_t offered)
{
	zh_slice_t e, a;
	size_t i = 0;
	const char *allowed = p->o.upgrade_protocols;
	zh_slice_t list = {allowed, allowed ? strlen(allowed) : 0};
	if (offered.len == 0)
		return false;
	while (zh__list_next(offered, &i, &e)) {
		size_t k = 0;
		bool found = false;
		if (e.len == 3 && zh__ieq(e.ptr, "h2c", 3))
			return false; /* RFC 9113 §3.1 deprecates it; a tunnel would hide requests */
		while (!found && zh__list_next(list, &k, &a))
			found = a.len == e.len && zh__ieq(a.ptr, e.ptr, e.len);
		if (!found)
			return false;
	}
	return true;
}

static int carve(zh_proxy_t *p)
{
	size_t n = (size_t)p->nworkers * p->per_worker;
	p->pw = calloc(p->nworkers, sizeof *p->pw);
	p->conns = calloc(n, sizeof *p->conns);
	if (p->pw == NULL || p->conns == NULL)
		return -ENOMEM;
	p->bufs_len = n * ZH__UP_BUF;
	p->bufs = mmap(NULL, p->bufs_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		       -1, 0);
	if (p->bufs == MAP_FAILED) {
		p->bufs = NULL;
		return -ENOMEM;
	}
	for (unsigned i = 0; i < p->nworkers; i++) {
		pw_t *pw = &p->pw[i];
		pw->p = p;
		if ((pw->ups = calloc(p->n_up, sizeof *pw->ups)) == NULL)
			return -ENOMEM;
		for (unsigned j = 0; j < p->per_worker; j++) {
			uconn_t *uc = &p->conns[(size_t)i * p->per_worker + j];
			uc->watch.fn = zh__uconn_event;
			uc->pw = pw;
			uc->fd = uc->pipe[0] = uc->pipe[1] = -1;
			uc->buf = p->bufs + ((size_t)i * p->per_worker + j) * ZH__UP_BUF;
			uc->next = pw->free;
			pw->free = uc;
		}
	}
	return 0;
}

zh_proxy_t *zh_proxy_new(zh_server_t *srv, const zh_proxy_options_t *o, int *err)
{
	zh_proxy_t *p = NULL;
	int r = srv == NULL || o == NULL ? -EINVAL : check_options(o);
	if (r == 0 && (p = calloc(1, sizeof *p)) == NULL)
		r = -ENOMEM;
	if (r == 0) {
		p->o = *o;
		p->srv = srv;
		p->n_up = (unsigned)o->n_upstreams;
		p->nworkers = zh_server_workers(srv);
		p->per_worker = p->n_up * o->max_conns;
		if (o->host) {
			strcpy(p->host, o->host);
			p->o.host = p->host;
		}
		if (o->health_path) {
			strcpy(p->health_path, o->health_path);
			p->o.health_path = p->health_path;
		}
		strcpy(p->upgrades, o->upgrade_protocols ? o->upgrade_protocols : "");
		p->o.upgrade_protocols = p->upgrades;
		p->o.upstreams = NULL; /* not kept: copied below */
		if ((p->up = calloc(p->n_up, sizeof *p->up)) == NULL)
			r = -ENOMEM;
	}
	for (unsigned i = 0; r == 0 && i < p->n_up; i++)
		r = o->upstreams[i] ? parse_url(o->upstreams[i], &p->up[i]) : -EINVAL;
	if (r == 0)
		r = carve(p);
	if (r < 0) {
		zh_proxy_free(p);
		if (err)
			*err = r;
		return NULL;
	}
	pthread_mutex_lock(&proxies_lock);
	p->next = proxies;
	proxies = p;
	pthread_mutex_unlock(&proxies_lock);
	return p;
}

void zh_proxy_free(zh_proxy_t *p)
{
	if (p == NULL)
		return;
	pthread_mutex_lock(&proxies_lock);
	for (zh_proxy_t **q = &proxies; *q; q = &(*q)->next)
		if (*q == p) {
			*q = p->next;
			break;
		}
	pthread_mutex_unlock(&proxies_lock);
	if (p->conns)
		for (size_t i = 0; i < (size_t)p->nworkers * p->per_worker; i++)
			for (int k = 0; k < 3; k++) {
				int fd = k == 0 ? p->conns[i].fd : p->conns[i].pipe[k - 1];
				if (fd >= 0)
					close(fd);
			}
	if (p->bufs)
		munmap(p->bufs, p->bufs_len);
	for (unsigned i = 0; p->pw && i < p->nworkers; i++)
		free(p->pw[i].ups);
	free(p->pw);
	free(p->conns);
	free(p->up);
	free(p);
}

uint64_t zh__proxies_tick(zh__worker_t *w, bool final, void *arg)
{
	const zh_server_t *srv = arg;
	unsigned id = zh__ext_worker_id(w);
	uint64_t due = 0;
	/* the list changes only while no server proxies (zh_proxy_new, zh_proxy_free); the
	 * lock keeps a second server's set-up on another thread from racing this walk */
	pthread_mutex_lock(&proxies_lock);
	for (zh_proxy_t *p = proxies; p; p = p->next) {
		uint64_t d;
		if (p->srv != srv || id >= p->nworkers)
			continue;
		d = zh__proxy_pool_tick(&p->pw[id], w, final);
		if (d && (due == 0 || d < due))
			due = d;
	}
	pthread_mutex_unlock(&proxies_lock);
	return due;
}

/* ---- metrics ---------------------------------------------------------------------------------- */

static uint64_t sum(const zh_proxy_t *p, unsigned i, size_t off)
{
	uint64_t s = 0;
	for (unsigned k = 0; k < p->nworkers; k++) {
		const char *u = (const char *)&p->pw[k].ups[i];
		uint64_t v;
		memcpy(&v, u + off, sizeof v); /* racy by design: a worker's plain store */
		s += v;
	}
	return s;
}

static uint64_t sum_u(const zh_proxy_t *p, unsigned i, size_t off)
{
	uint64_t s = 0;
	for (unsigned k = 0; k < p->nworkers; k++) {
		unsigned v;
		memcpy(&v, (const char *)&p->pw[k].ups[i] + off, sizeof v);
		s += v;
	}
	return s;
}

static void line(zh_response_t *resp, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void line(zh_response_t *resp, const char *fmt, ...)
{
	char b[512];
	va_list ap;
	int n;
	va_start(ap, fmt);
	n = vsnprintf(b, sizeof b, fmt, ap);
	va_end(ap);
	if (n > 0) /* a failed write fails the scrape's response (sticky): nothing to undo */
		(void)zh__write_encoded(resp, b, (size_t)n < sizeof b ? (size_t)n : sizeof b - 1);
}

void zh__proxy_metrics_expose(const zh_server_t *srv, zh_response_t *resp)
{
	static const struct {
		const char *name, *type, *help;
		size_t off;
		bool u;
	} fam[] = {
		{"zerohttp_upstream_requests_total", "counter", "Requests sent to the upstream.",
		 offsetof(upw_t, requests), false},
		{"zerohttp_upstream_responses_total", "counter", "Response heads received.",
		 offsetof(upw_t, responses), false},
		{"zerohttp_upstream_connections_opened_total", "counter",
		 "Connections opened (the rest reused the keep-alive pool).",
		 offsetof(upw_t, opened), false},
		{"zerohttp_upstream_connect_failures_total", "counter",
		 "Connections refused or failed.", offsetof(upw_t, connect_failures), false},
		{"zerohttp_upstream_timeouts_total", "counter",
		 "Connect, header and body-idle timeouts.", offsetof(upw_t, timeouts), false},
		{"zerohttp_upstream_bad_responses_total", "counter",
		 "Malformed, ambiguous or truncated responses (502 or a cut body).",
		 offsetof(upw_t, bad_responses), false},
		{"zerohttp_upstream_retries_total", "counter",
		 "Idempotent requests retried elsewhere after failing before any byte was sent.",
		 offsetof(upw_t, retries), false},
		{"zerohttp_upstream_header_seconds_sum", "counter",
		 "Time from the request to the upstream's response head, summed.",
		 offsetof(upw_t, latency_us_sum), false},
		{"zerohttp_upstream_pool_idle", "gauge", "Idle keep-alive connections.",
		 offsetof(upw_t, nidle), true},
		{"zerohttp_upstream_pool_open", "gauge", "Open connections, idle or busy.",
		 offsetof(upw_t, nopen), true},
		{"zerohttp_upstream_in_flight", "gauge", "Requests waiting for or reading a response.",
		 offsetof(upw_t, outstanding), true},
		{"zerohttp_upstream_tunnels_total", "counter",
		 "Upgrade tunnels opened (the upstream answered 101).", offsetof(upw_t, tunnels),
		 false},
		{"zerohttp_upstream_tunnels_open", "gauge", "Upgrade tunnels open now.",
		 offsetof(upw_t, tunnels_open), false},
	};
	bool any = false;
	pthread_mutex_lock(&proxies_lock);
	for (const zh_proxy_t *p = proxies; p; p = p->next)
		any |= p->srv == srv;
	for (size_t f = 0; any && f < sizeof fam / sizeof fam[0]; f++) {
		line(resp, "# HELP %s %s\n# TYPE %s %s\n", fam[f].name, fam[f].help, fam[f].name,
		     fam[f].type);
		for (const zh_proxy_t *p = proxies; p; p = p->next)
			for (unsigned i = 0; p->srv == srv && i < p->n_up; i++) {
				uint64_t v = fam[f].u ? sum_u(p, i, fam[f].off) : sum(p, i, fam[f].off);
				if (fam[f].off == offsetof(upw_t, latency_us_sum))
					line(resp, "%s{proxy=\"%s\",upstream=\"%s\"} %.6f\n",
					     fam[f].name, p->name, p->up[i].url, (double)v / 1e6);
				else
					line(resp, "%s{proxy=\"%s\",upstream=\"%s\"} %llu\n",
					     fam[f].name, p->name, p->up[i].url,
					     (unsigned long long)v);
			}
	}
	if (any) {
		uint64_t now = 0;
		line(resp, "# HELP zerohttp_upstream_up Workers that consider the upstream up "
			   "(passive checks).\n# TYPE zerohttp_upstream_up gauge\n");
		for (const zh_proxy_t *p = proxies; p; p = p->next)
			for (unsigned i = 0; p->srv == srv && i < p->n_up; i++) {
				unsigned up = 0;
				for (unsigned k = 0; k < p->nworkers; k++) {
					now = p->pw[k].w ? zh__ext_now_ms(p->pw[k].w) : 0;
					const upw_t *u = &p->pw[k].ups[i];
					up += __atomic_load_n(&u->down_until_ms, __ATOMIC_RELAXED) <=
						      now &&
					      !__atomic_load_n(&u->hc_down, __ATOMIC_RELAXED);
				}
				line(resp, "zerohttp_upstream_up{proxy=\"%s\",upstream=\"%s\"} %u\n",
				     p->name, p->up[i].url, up);
			}
		line(resp, "# HELP zerohttp_proxy_unavailable_total 503s: no upstream up or "
			   "every pool full.\n# TYPE zerohttp_proxy_unavailable_total counter\n");
		uint64_t un = 0;
		for (const zh_proxy_t *p = proxies; p; p = p->next)
			for (unsigned k = 0; p->srv == srv && k < p->nworkers; k++)
				un += __atomic_load_n(&p->pw[k].unavailable, __ATOMIC_RELAXED);
		line(resp, "zerohttp_proxy_unavailable_total %llu\n", (unsigned long long)un);
	}
	pthread_mutex_unlock(&proxies_lock);
}
