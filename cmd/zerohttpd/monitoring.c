/* monitoring.c — monitoring: GET /metrics (Prometheus text), /healthz and /readyz.
 *
 * Without --metrics-listen they are routes of the main server, as they always were: anyone
 * who reaches the port can read the counters (an explicit choice, see README). With
 * --metrics-listen ADDR:PORT they move to a server of their own (one worker, small pools)
 * that serves nothing else, run on its own thread; the main server then has no /metrics
 * (/healthz and /readyz stay, for load balancers). Its /readyz watches the main server:
 * 503 as soon as the main server drains. It stops after the main server has drained, so
 * probes see the 503 for the whole drain.
 *
 * --metrics-allow CIDR (repeatable) answers 403 to /metrics for any other client, on
 * whichever listener serves it. The health routes stay open: they reveal nothing.
 */
#include "zerohttpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>

static struct {
	zh_server_t *main, *srv; /* srv: the separate listener, NULL without one */
	const struct zhd_cidr *allow;
	size_t n_allow;
	pthread_t tid;
	bool running;
	int run_err;
} mon;

/* Would --metrics-listen take the main listener's port on an overlapping address? A
 * wildcard (0.0.0.0, ::) overlaps every address of its port. */
static bool same_listener(const struct zhd_settings *s)
{
	static const char *const any[] = {"0.0.0.0", "::"};
	const char *a = s->cfg.address, *b = s->metrics_addr;
	if (s->cfg.port == 0 || s->cfg.port != s->metrics_port)
		return false;
	for (unsigned i = 0; i < 2; i++)
		if (strcmp(a, any[i]) == 0 || strcmp(b, any[i]) == 0)
			return true;
	return strcmp(a, b) == 0;
}

/* "127.0.0.1:9100", "[::1]:9100" */
const char *zhd_parse_listen(const char *v, char addr[64], uint16_t *port)
{
	const char *colon = strrchr(v, ':'), *a = v;
	size_t alen;
	unsigned long long p;
	uint8_t tmp[16];
	if (colon == NULL || zhd_parse_num(colon + 1, 65535, &p) < 0)
		return "ADDR:PORT, with an IPv4 address or [IPv6]";
	alen = (size_t)(colon - v);
	if (alen >= 2 && v[0] == '[' && colon[-1] == ']')
		a = v + 1, alen -= 2;
	if (alen == 0 || alen >= 64)
		return "ADDR:PORT, with an IPv4 address or [IPv6]";
	memcpy(addr, a, alen);
	addr[alen] = '\0';
	if (inet_pton(a == v ? AF_INET : AF_INET6, addr, tmp) != 1)
		return "ADDR:PORT, with an IPv4 address or [IPv6]";
	*port = (uint16_t)p;
	return NULL;
}

/* "10.0.0.0/8", "2001:db8::/32", "192.0.2.7" (a host). Bits past the prefix must be 0. */
const char *zhd_parse_cidr(const char *v, struct zhd_cidr *out)
{
	static const char *const why = "an IPv4 or IPv6 network: ADDR or ADDR/BITS";
	char buf[64];
	const char *slash = strchr(v, '/');
	size_t alen = slash ? (size_t)(slash - v) : strlen(v);
	unsigned long long bits;
	if (alen == 0 || alen >= sizeof buf)
		return why;
	memcpy(buf, v, alen);
	buf[alen] = '\0';
	memset(out, 0, sizeof *out);
	out->family = strchr(buf, ':') ? AF_INET6 : AF_INET;
	if (inet_pton(out->family, buf, out->addr) != 1)
		return why;
	out->bits = out->family == AF_INET ? 32 : 128;
	if (slash) {
		if (zhd_parse_num(slash + 1, out->bits, &bits) < 0)
			return why;
		out->bits = (unsigned)bits;
	}
	for (unsigned i = out->bits; i < (out->family == AF_INET ? 32u : 128u); i++)
		if (out->addr[i / 8] & (0x80 >> (i % 8)))
			return "host bits set past the prefix length";
	return NULL;
}

static bool cidr_has(const struct zhd_cidr *c, int family, const uint8_t *a)
{
	unsigned full = c->bits / 8, rest = c->bits % 8;
	if (family != c->family)
		return false;
	if (memcmp(a, c->addr, full) != 0)
		return false;
	return rest == 0 || ((a[full] ^ c->addr[full]) & (0xff00 >> rest) & 0xff) == 0;
}

static bool allowed(const zh_request_t *req)
{
	static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	uint8_t a[16];
	int family = zh_req_peer_addr(req, a);
	if (mon.n_allow == 0)
		return true;
	for (size_t i = 0; i < mon.n_allow; i++) {
		const struct zhd_cidr *c = &mon.allow[i];
		/* an IPv4 client of an IPv6 listener arrives as ::ffff:a.b.c.d */
		if (cidr_has(c, family, a) ||
		    (family == AF_INET6 && memcmp(a, v4mapped, 12) == 0 &&
		     cidr_has(c, AF_INET, a + 12)))
			return true;
	}
	return false;
}

/* zh_metrics_handler of the main server, for allowed clients only */
static void metrics(zh_request_t *req, zh_response_t *resp, void *arg)
{
	(void)arg;
	if (!allowed(req)) {
		(void)zh_reply(resp, 403, "text/plain; charset=utf-8", "forbidden\n", 10);
		return;
	}
	zh_metrics_handler(req, resp, mon.main);
	zhd_tls_metrics(resp);
}

/* zh_readyz_handler, but 503 from the stop signal on: with --drain-delay the main server
 * serves for a while after it, and /readyz is how load balancers learn to stop sending. */
static void readyz(zh_request_t *req, zh_response_t *resp, void *arg)
{
	if (zhd_drain_delay_unready()) {
		/* as zh_readyz_handler: a Retry-After that cannot be set fails the answer (500) */
		if (zh_resp_header_set(resp, "Retry-After", "1") == 0)
			(void)zh_reply(resp, 503, "text/plain; charset=utf-8", "draining\n", 9);
		return;
	}
	zh_readyz_handler(req, resp, arg);
}

static int add_routes(zh_server_t *srv, const struct zhd_settings *s)
{
	int r;
	if ((r = zh_server_route(srv, ZH_GET | ZH_HEAD, "/healthz", 0, zh_healthz_handler,
				 NULL)) < 0 ||
	    (r = zh_server_route(srv, ZH_GET | ZH_HEAD, "/readyz", 0, readyz, mon.main)) < 0)
		return r;
	if (s->metrics && (srv == mon.srv || s->metrics_listen == NULL))
		r = zh_server_route(srv, ZH_GET | ZH_HEAD, "/metrics", 0, metrics, NULL);
	return r < 0 ? r : 0;
}

static void *run_monitor(void *unused)
{
	(void)unused;
	mon.run_err = zh_server_run(mon.srv);
	if (mon.run_err < 0)
		zhd_log(ZHD_ERROR, "the --metrics-listen server stopped: %s",
			strerror(-mon.run_err));
	return NULL;
}

/* Sockets named "metrics" in LISTEN_FDS (a zerohttpd we take over from passes its own):
 * they replace binding --metrics-listen's address. */
static void inherited_metrics(zh_config_t *cfg)
{
	static zh_listener_t ls[ZHD_INHERITED_MAX];
	size_t n, k = 0;
	const struct zhd_inherited *in = zhd_inherited(&n);
	for (size_t i = 0; i < n; i++)
		if (in[i].kind == ZHD_SOCK_METRICS)
			ls[k++] = (zh_listener_t){.inherited = true, .fd = in[i].fd};
	cfg->listeners = k ? ls : NULL;
	cfg->nlisteners = (unsigned)k;
}

int zhd_metrics_start(zh_server_t *srv, const struct zhd_settings *s)
{
	zh_config_t cfg;
	int r = 0;
	mon.main = srv;
	mon.allow = s->metrics_allow;
	mon.n_allow = s->n_metrics_allow;
	if ((r = add_routes(srv, s)) < 0) {
		zhd_log(ZHD_ERROR, "cannot add the monitoring routes: %s", strerror(-r));
		return -1;
	}
	if (s->metrics_listen == NULL)
		return 0;
	if (same_listener(s)) {
		/* with --reuse-port both would bind it, and requests would split between them */
		zhd_log(ZHD_ERROR, "--metrics-listen %s is the main listener's address and port",
			s->metrics_listen);
		return -1;
	}
	zh_config_init(&cfg); /* small: a scraper and a few probes */
	cfg.address = s->metrics_addr;
	cfg.port = s->metrics_port;
	inherited_metrics(&cfg);
	cfg.reuse_port = s->cfg.reuse_port;
	cfg.workers = 1;
	cfg.max_connections = 64;
	cfg.io_contexts = 16;
	cfg.large_buffers = 2;
	cfg.body_buffers = 1;
	cfg.max_body = 0;
	cfg.latency_metrics = 0;
	if ((mon.srv = zh_server_new(&cfg, &r)) == NULL) {
		zhd_log(ZHD_ERROR, "cannot listen on --metrics-listen %s: %s", s->metrics_listen,
			strerror(-r));
		return -1;
	}
	if ((r = add_routes(mon.srv, s)) < 0 ||
	    (r = -pthread_create(&mon.tid, NULL, run_monitor, NULL)) < 0) {
		zhd_log(ZHD_ERROR, "cannot start the --metrics-listen server: %s", strerror(-r));
		zh_server_free(mon.srv);
		mon.srv = NULL;
		return -1;
	}
	mon.running = true;
	return 0;
}

zh_server_t *zhd_metrics_server(void)
{
	return mon.srv;
}

uint16_t zhd_metrics_port(void)
{
	return mon.srv ? zh_server_port(mon.srv) : 0;
}

void zhd_metrics_stop(void)
{
	if (mon.running) {
		zh_server_stop(mon.srv);
		pthread_join(mon.tid, NULL);
		mon.running = false;
	}
	zh_server_free(mon.srv);
	mon.srv = NULL;
}
