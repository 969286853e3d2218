/* test_app_metrics.c — src/app_metrics.c: registration checks, the exposition of counters,
 * gauges and histograms on /metrics (exact text), and several workers plus a non-worker
 * thread updating at once, summed at scrape time. A real server in this process on
 * 127.0.0.1.
 */
#include <criterion/criterion.h>

#include "zerohttp.h"
#include "zh_test_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

static zh_server_t *srv;
static pthread_t runner;

static zh_server_t *new_server(unsigned workers)
{
	zh_config_t cfg;
	zh_server_t *s;
	int err = 0;
	zh_tc_config(&cfg);
	cfg.workers = workers;
	cfg.io_contexts = 64;
	cfg.max_connections = 256;
	s = zh_server_new(&cfg, &err);
	cr_assert_not_null(s, "zh_server_new: %d", err);
	return s;
}

static void start(void)
{
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/metrics", 0, zh_metrics_handler, srv), 0);
	cr_assert_eq(pthread_create(&runner, NULL, zh_tc_run, srv), 0);
}

static void stop(void)
{
	zh_server_stop(srv);
	pthread_join(runner, NULL);
	zh_server_free(srv);
	srv = NULL;
}

/* GET path on a fresh connection, the whole answer (NUL-terminated) in buf. Thread-safe. */
static size_t get(const char *path, char *buf, size_t cap)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(zh_server_port(srv))};
	struct timeval tv = {10, 0};
	char req[256];
	size_t got = 0;
	int fd = socket(AF_INET, SOCK_STREAM, 0), n;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0 ||
	    connect(fd, (struct sockaddr *)&a, sizeof a) < 0)
		return 0;
	n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
		     path);
	if (write(fd, req, (size_t)n) != n) {
		close(fd);
		return 0;
	}
	for (ssize_t r; got + 1 < cap && (r = read(fd, buf + got, cap - 1 - got)) > 0;)
		got += (size_t)r;
	buf[got] = '\0';
	close(fd);
	return got;
}

static zh_metric_t *reg(const zh_metric_options_t *o, int want_err)
{
	int err = 0;
	zh_metric_t *m = zh_metric_new(srv, o, &err);
	if (want_err) {
		cr_assert_null(m, "%s accepted", o->name ? o->name : "(null)");
		cr_assert_eq(err, want_err, "%s: %d", o->name ? o->name : "(null)", err);
	} else {
		cr_assert_not_null(m, "%s: %d", o->name, err);
	}
	return m;
}

Test(app_metrics, registration_is_checked)
{
	static const char *const two[] = {"a", "b"}, *const dup[] = {"a", "a"};
	static const char *const bad_utf8[] = {"\xc3\x28"};
	static const double up[] = {0.1, 1}, down[] = {1, 0.1}, inf[] = {1, 1.0 / 0.0};
	zh_metric_options_t o;
	srv = new_server(1);
	zh_metric_options_init(&o);
	o.help = "h";
	const char *bad_names[] = {NULL, "", "1abc", "a-b", "a b", "zerohttp_mine", "\xc3\xa9"};
	for (unsigned i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++) {
		o.name = bad_names[i];
		reg(&o, -EINVAL);
	}
	o.name = "ok:name_total";
	o.help = NULL;
	reg(&o, -EINVAL); /* HELP is required */
	o.help = "h";
	o.type = 3;
	reg(&o, -EINVAL);
	o.type = ZH_METRIC_COUNTER;
	o.label = "x";
	reg(&o, -EINVAL); /* a label needs values */
	o.values = two;
	o.nvalues = 2;
	o.label = "__x";
	reg(&o, -EINVAL);
	o.label = "a:b";
	reg(&o, -EINVAL);
	o.label = "x";
	o.values = dup;
	reg(&o, -EEXIST);
	o.values = bad_utf8;
	o.nvalues = 1;
	reg(&o, -EINVAL);
	o.values = two;
	o.nvalues = 2;
	reg(&o, 0);
	reg(&o, -EEXIST); /* the same name twice */
	o.name = "h_seconds";
	o.type = ZH_METRIC_HISTOGRAM;
	reg(&o, -EINVAL); /* no buckets */
	o.buckets = down;
	o.nbuckets = 2;
	reg(&o, -EINVAL);
	o.buckets = inf;
	reg(&o, -EINVAL);
	o.buckets = up;
	o.label = "le";
	reg(&o, -EINVAL);
	o.label = NULL;
	zh_metric_t *h = reg(&o, 0);
	cr_assert_eq(zh_metric_add(h, 0, 1), -EINVAL, "a histogram is observed");
	cr_assert_eq(zh_metric_observe(h, 1, 1.0), -EINVAL, "one series without a label");
	cr_assert_eq(zh_metric_observe(h, 0, 0.0 / 0.0), -EINVAL);
	cr_assert_eq(zh_metric_series(h, "a", 1), -ENOENT);
	start();
	{ /* once it answers, zh_server_run() has started */
		static char buf[1 << 16];
		int fd = zh_tc_connect(zh_server_port(srv), 5, 0);
		send_all(fd, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
		zh_tc_read_to_close(fd, buf, sizeof buf);
		close(fd);
		cr_assert(strstr(buf, "h_seconds_count 0\n"), "%s", buf);
	}
	o.name = "late";
	reg(&o, -EBUSY);
	stop();
}

/* ---- the exposition ------------------------------------------------------------------------- */

static zh_metric_t *hits, *depth, *lat;

static void h_work(zh_request_t *req, zh_response_t *resp, void *arg)
{
	/* the query names the series by a short alias ('{' may not appear in a target) */
	zh_slice_t q = zh_req_query(req);
	const char *value = q.len == 1 && q.ptr[0] == 'u' ? "/users/{id}" : "nope";
	int s = zh_metric_series(hits, value, strlen(value));
	(void)arg;
	if (s < 0 || zh_metric_add(hits, (unsigned)s, 1) < 0 ||
	    zh_metric_observe(lat, (unsigned)s, s == 0 ? 0.05 : 3.0) < 0 ||
	    zh_metric_add(depth, 0, 1) < 0) {
		(void)zh_reply(resp, 404, "text/plain", "no", 2);
		return;
	}
	(void)zh_reply(resp, 200, "text/plain", "ok", 2);
}

static const char *app_part(char *scrape)
{
	char *p = strstr(scrape, "# HELP app_");
	cr_assert_not_null(p, "%s", scrape);
	return p;
}

Test(app_metrics, exposition_format)
{
	static const char *const routes[] = {"/users/{id}", "a\"b\\c\nd"};
	static const double bounds[] = {0.1, 2.5};
	static char buf[1 << 16];
	zh_metric_options_t o;
	srv = new_server(2);
	zh_metric_options_init(&o);
	o.name = "app_requests_total";
	o.help = "Requests by route \\ pattern\nsecond line.";
	o.label = "route";
	o.values = routes;
	o.nvalues = 2;
	hits = reg(&o, 0);
	zh_metric_options_init(&o);
	o.name = "app_depth";
	o.help = "Work in progress.";
	o.type = ZH_METRIC_GAUGE;
	depth = reg(&o, 0);
	zh_metric_options_init(&o);
	o.name = "app_latency_seconds";
	o.help = "Latency by route.";
	o.type = ZH_METRIC_HISTOGRAM;
	o.label = "route";
	o.values = routes;
	o.nvalues = 2;
	o.buckets = bounds;
	o.nbuckets = 2;
	lat = reg(&o, 0);
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/work", 0, h_work, NULL), 0);
	start();
	cr_assert_eq(zh_metric_series(hits, "/users/{id}", 11), 0);
	cr_assert_eq(zh_metric_series(hits, "a\"b\\c\nd", 7), 1);
	cr_assert_eq(zh_metric_series(hits, "/users/{id", 10), -ENOENT);
	get("/work?u", buf, sizeof buf);
	cr_assert(strstr(buf, "200 OK"), "%s", buf);
	get("/work?u", buf, sizeof buf);
	get("/work?x", buf, sizeof buf);
	cr_assert(strstr(buf, "404 "), "%s", buf);
	/* from this thread (no worker): the shared shard */
	cr_assert_eq(zh_metric_add(hits, 1, 5), 0);
	cr_assert_eq(zh_metric_add(hits, 1, -1), -EINVAL);
	cr_assert_eq(zh_metric_add(hits, 2, 1), -EINVAL);
	cr_assert_eq(zh_metric_add(depth, 0, -7), 0);
	cr_assert_eq(zh_metric_set(hits, 0, 1), -EINVAL);
	cr_assert_eq(zh_metric_observe(lat, 1, 2.5), 0);
	cr_assert_eq(zh_metric_observe(lat, 1, -1), 0);
	get("/metrics", buf, sizeof buf);
	cr_assert(strstr(buf, "zerohttp_http_requests_total "), "the library's come first");
	cr_assert_str_eq(app_part(buf),
		"# HELP app_requests_total Requests by route \\\\ pattern\\nsecond line.\n"
		"# TYPE app_requests_total counter\n"
		"app_requests_total{route=\"/users/{id}\"} 2\n"
		"app_requests_total{route=\"a\\\"b\\\\c\\nd\"} 5\n"
		"# HELP app_depth Work in progress.\n"
		"# TYPE app_depth gauge\n"
		"app_depth -5\n"
		"# HELP app_latency_seconds Latency by route.\n"
		"# TYPE app_latency_seconds histogram\n"
		"app_latency_seconds_bucket{route=\"/users/{id}\",le=\"0.1\"} 2\n"
		"app_latency_seconds_bucket{route=\"/users/{id}\",le=\"2.5\"} 2\n"
		"app_latency_seconds_bucket{route=\"/users/{id}\",le=\"+Inf\"} 2\n"
		"app_latency_seconds_sum{route=\"/users/{id}\"} 0.1\n"
		"app_latency_seconds_count{route=\"/users/{id}\"} 2\n"
		"app_latency_seconds_bucket{route=\"a\\\"b\\\\c\\nd\",le=\"0.1\"} 1\n"
		"app_latency_seconds_bucket{route=\"a\\\"b\\\\c\\nd\",le=\"2.5\"} 2\n"
		"app_latency_seconds_bucket{route=\"a\\\"b\\\\c\\nd\",le=\"+Inf\"} 2\n"
		"app_latency_seconds_sum{route=\"a\\\"b\\\\c\\nd\"} 1.5\n"
		"app_latency_seconds_count{route=\"a\\\"b\\\\c\\nd\"} 2\n");
	cr_assert_eq(zh_metric_set(depth, 0, 40), 0); /* this thread's share: -7 becomes 40 */
	get("/metrics", buf, sizeof buf);
	cr_assert(strstr(buf, "\napp_depth 42\n"), "%s", app_part(buf));
	stop();
}

/* ---- several workers and a foreign thread at once -------------------------------------------- */

enum { THREADS = 6, PER_THREAD = 400, FOREIGN = 20000 };
static unsigned workers_seen;

static void h_hit(zh_request_t *req, zh_response_t *resp, void *arg)
{
	(void)arg;
	__atomic_fetch_or(&workers_seen, 1u << zh_req_worker(req), __ATOMIC_RELAXED);
	(void)zh_metric_add(hits, 0, 1);
	(void)zh_metric_add(depth, 0, 1);
	(void)zh_metric_observe(lat, 0, 1.0);
	(void)zh_metric_add(depth, 0, -1);
	(void)zh_reply(resp, 200, "text/plain", "ok", 2);
}

static void *client(void *arg)
{
	char buf[512];
	long ok = 0;
	(void)arg;
	for (int i = 0; i < PER_THREAD; i++)
		ok += get("/hit", buf, sizeof buf) && strstr(buf, "200 OK") != NULL;
	return (void *)ok;
}

static void *foreign(void *arg)
{
	(void)arg;
	for (int i = 0; i < FOREIGN; i++)
		if (zh_metric_add(hits, 1, 1) < 0 || zh_metric_observe(lat, 1, 0.5) < 0)
			return (void *)1;
	return NULL;
}

static unsigned long long sample(const char *scrape, const char *series)
{
	const char *p = strstr(scrape, series);
	cr_assert_not_null(p, "%s not in %s", series, scrape);
	return strtoull(p + strlen(series), NULL, 10);
}

Test(app_metrics, workers_update_their_shards_and_scrapes_sum_them, .timeout = 60)
{
	static const char *const who[] = {"workers", "foreign"};
	static const double bounds[] = {0.75};
	static char buf[1 << 16];
	pthread_t t[THREADS], f;
	zh_metric_options_t o;
	long total = 0;
	void *r;
	srv = new_server(4);
	zh_metric_options_init(&o);
	o.name = "app_hits_total";
	o.help = "Hits.";
	o.label = "from";
	o.values = who;
	o.nvalues = 2;
	hits = reg(&o, 0);
	o.name = "app_lat";
	o.type = ZH_METRIC_HISTOGRAM;
	o.buckets = bounds;
	o.nbuckets = 1;
	lat = reg(&o, 0);
	zh_metric_options_init(&o);
	o.name = "app_inflight";
	o.help = "In flight.";
	o.type = ZH_METRIC_GAUGE;
	depth = reg(&o, 0);
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/hit", 0, h_hit, NULL), 0);
	start();
	workers_seen = 0;
	cr_assert_eq(pthread_create(&f, NULL, foreign, NULL), 0);
	for (int i = 0; i < THREADS; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, client, NULL), 0);
	for (int i = 0; i < THREADS; i++) {
		pthread_join(t[i], &r);
		total += (long)r;
	}
	pthread_join(f, &r);
	cr_assert_null(r);
	cr_assert_eq(total, THREADS * PER_THREAD);
	cr_assert_gt(__builtin_popcount(workers_seen), 1, "only one worker served: %x",
		     workers_seen);
	get("/metrics", buf, sizeof buf);
	cr_assert_eq(sample(buf, "app_hits_total{from=\"workers\"} "), THREADS * PER_THREAD);
	cr_assert_eq(sample(buf, "app_hits_total{from=\"foreign\"} "), FOREIGN);
	cr_assert_eq(sample(buf, "app_lat_count{from=\"workers\"} "), THREADS * PER_THREAD);
	cr_assert_eq(sample(buf, "app_lat_bucket{from=\"workers\",le=\"0.75\"} "), 0);
	cr_assert_eq(sample(buf, "app_lat_sum{from=\"workers\"} "), THREADS * PER_THREAD);
	cr_assert_eq(sample(buf, "app_lat_bucket{from=\"foreign\",le=\"0.75\"} "), FOREIGN);
	cr_assert_eq(sample(buf, "app_lat_sum{from=\"foreign\"} "), FOREIGN / 2);
	cr_assert_eq(sample(buf, "\napp_inflight "), 0);
	stop();
}
