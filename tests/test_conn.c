/* test_conn.c — a connection's resources and accounting, through a real server in this
 * process (the fixture approach of test_middleware.c). Each test starts its own server with
 * the configuration it needs and checks exact bytes:
 *
 *  exhaustion  pool exhaustion while the receive buffer grows: the 503 carries Retry-After,
 *              and done hooks see an empty, unparsed request. (The 414 and 431 of the same
 *              path share its answer, but a large buffer holds max_request_line +
 *              max_header_bytes + 4 KiB, so the parser refuses such a head before the buffer
 *              can fill.)
 *  metrics     with latency_metrics off and no middleware, in-flight returns to 0.
 */
#include <criterion/criterion.h>

#include <zerohttp.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define ZH_TC_CONN
#define ZH_TC_OWNED_MAX 64
#include "zh_test_client.h"

/* ---- the server ---------------------------------------------------------------------------- */

typedef struct {
	bool no_latency;
	int done_hook; /* 1: notes the method's, target's and field table's sizes; 2: also reads
			  their bytes and looks up Host */
	unsigned large_buffers;
} opts_t;

static zh_server_t *srv;
static pthread_t runner;
static bool running;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static void h_plain(zh_request_t *req, zh_response_t *resp, void *arg)
{
	(void)req, (void)arg;
	(void)zh_write_static(resp, "plain", 5);
}

/* a done hook that reads the request, as an access log does */
typedef struct {
	int status, parsed, host_found;
	size_t method_len, target_len, path_len, nfields;
	unsigned sum;
} seen_t;
static seen_t seen[32];
static int nseen;

static void d_record(zh_request_t *req, zh_response_t *resp, void *arg)
{
	zh_slice_t m = zh_req_method(req), t = zh_req_target(req), h = {0};
	seen_t s = {0};
	s.status = zh_resp_status(resp);
	s.parsed = zh_req_parsed(req);
	if (arg) /* a lookup too (it walks the request's field table); the bytes are read */
		s.host_found = zh_req_header(req, "Host", &h);
	s.method_len = m.len;
	s.target_len = t.len;
	s.nfields = zh_req_header_count(req);
	for (size_t i = 0; arg && i < m.len; i++) /* every byte read, as a log line would */
		s.sum += (unsigned char)m.ptr[i];
	for (size_t i = 0; arg && i < t.len; i++)
		s.sum += (unsigned char)t.ptr[i];
	for (size_t i = 0; s.host_found && i < h.len; i++)
		s.sum += (unsigned char)h.ptr[i];
	pthread_mutex_lock(&lock);
	if (nseen < 32)
		seen[nseen++] = s;
	pthread_mutex_unlock(&lock);
}

static void start_server(const opts_t *o)
{
	zh_config_t cfg;
	int err = 0;
	zh_middleware_t mw;
	zh_tc_config(&cfg);
	cfg.io_contexts = 16;
	cfg.large_buffers = o->large_buffers ? o->large_buffers : 16;
	if (o->no_latency)
		cfg.latency_metrics = 0;
	srv = zh_server_new(&cfg, &err);
	cr_assert_not_null(srv, "zh_server_new: %d", err);
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/plain", 0, h_plain, NULL), 0);
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/metrics", 0, zh_metrics_handler, srv), 0);
	if (o->done_hook) {
		static int lookup = 1;
		mw = (zh_middleware_t){.done = d_record, .arg = o->done_hook == 2 ? &lookup : NULL};
		cr_assert_eq(zh_server_use(srv, &mw), 0);
	}
	cr_assert_eq(pthread_create(&runner, NULL, zh_tc_run, srv), 0);
	running = true;
}

static void stop_server(void)
{
	if (running) {
		zh_server_stop(srv);
		pthread_join(runner, NULL);
		running = false;
	}
	if (srv)
		zh_server_free(srv);
	srv = NULL;
}

static void cleanup(void)
{
	stop_server();
	free_owned();
}

/* ---- the client: zh_test_client.h's strict reader ------------------------------------------- */

static void dial(conn_t *c, unsigned rcvbuf)
{
	zh_tc_dial(c, zh_server_port(srv), 3, rcvbuf);
}

static void get(const char *path, const char *extra, resp_t *r)
{
	zh_tc_get(zh_server_port(srv), path, extra, r);
}

/* Every suite has the same timeout: with different ones, Criterion's runner leaks 48 bytes
 * (LeakSanitizer fails the asan build). */
TestSuite(exhaustion, .fini = cleanup, .timeout = 20);
TestSuite(metrics, .fini = cleanup, .timeout = 20);

/* ---- pool exhaustion while the receive buffer grows ---------------------------------------- */

/* Two large buffers; three connections send a head longer than the 16 KiB receive buffer
 * and wait: the first two get the large buffers, the third a 503. */
static void exhaust_large_buffers(int done_hook, conn_t held[2], resp_t *r)
{
	char head[24576];
	size_t n = (size_t)snprintf(head, sizeof head,
				    "GET /plain?which=partial HTTP/1.1\r\nHost: t\r\n");
	conn_t third;
	zh_stats_t st;
	for (int i = 0; i < 60; i++) {
		n += (size_t)snprintf(head + n, sizeof head - n, "X-F%04d: ", i);
		memset(head + n, 'v', 300);
		n += 300;
		memcpy(head + n, "\r\n", 2);
		n += 2;
	}
	cr_assert_gt(n, 16384u);
	cr_assert_lt(n, sizeof head);
	start_server(&(opts_t){.large_buffers = 2, .done_hook = done_hook});
	for (int i = 0; i < 2; i++) {
		long long t0 = zh_tc_now_ms();
		dial(&held[i], 0);
		send_all(&held[i], head, n); /* no empty line: the head is not over */
		do {
			zh_server_stats(srv, &st);
			if (st.large_buffers_in_use == (uint64_t)i + 1)
				break;
			usleep(2000);
		} while (zh_tc_now_ms() - t0 < 2000);
		cr_assert_eq(st.large_buffers_in_use, (uint64_t)i + 1);
	}
	dial(&third, 0);
	send_all(&third, head, n);
	read_response(&third, r, false);
	cr_assert(!fill(&third) && third.have == 0, "the 503 closes the connection");
	hang_up(&third);
}

Test(exhaustion, the_503_carries_retry_after)
{
	conn_t held[2];
	resp_t r;
	char v[64];
	exhaust_large_buffers(0, held, &r);
	cr_assert_eq(r.status, 503, "status %d", r.status);
	cr_assert_eq(field(&r, "Retry-After", v, sizeof v), 1, "no Retry-After:\n%s", r.head);
	cr_assert_str_eq(v, "1");
	cr_assert_eq(r.body_len, 20u);
	cr_assert(memcmp(r.body, "Service Unavailable\n", 20) == 0);
	cr_assert_eq(field(&r, "Connection", v, sizeof v), 1);
	cr_assert_str_eq(v, "close");
	resp_free(&r);
	hang_up(&held[0]);
	hang_up(&held[1]);
}

/* What the done hooks recorded for the 503 (exactly one call). */
static seen_t seen_for_503(void)
{
	seen_t s = {0};
	int n503;
	long long t0 = zh_tc_now_ms();
	do {
		n503 = 0;
		pthread_mutex_lock(&lock);
		for (int i = 0; i < nseen; i++)
			if (seen[i].status == 503)
				s = seen[i], n503++;
		pthread_mutex_unlock(&lock);
		if (n503)
			break;
		usleep(2000);
	} while (zh_tc_now_ms() - t0 < 2000);
	cr_assert_eq(n503, 1, "done hooks for the 503: %d", n503);
	return s;
}

/* The 503 answers bytes that never formed a request: a done hook must see zh_req_parsed() 0
 * and empty slices, not the half-parsed head. */
Test(exhaustion, done_hooks_see_an_empty_request)
{
	conn_t held[2];
	resp_t r;
	seen_t s;
	exhaust_large_buffers(1, held, &r);
	cr_assert_eq(r.status, 503);
	resp_free(&r);
	s = seen_for_503();
	cr_assert_eq(s.parsed, 0);
	cr_assert_eq(s.method_len, 0u, "method of %zu bytes", s.method_len);
	cr_assert_eq(s.target_len, 0u, "target of %zu bytes", s.target_len);
	cr_assert_eq(s.nfields, 0u, "%zu header fields", s.nfields);
	hang_up(&held[0]);
	hang_up(&held[1]);
}

/* ...and a done hook that reads them and looks a header up (as an access log writes the
 * request line and Referer) finds nothing, without touching bytes or a field table the
 * unparsed request never had; the server goes on. */
Test(exhaustion, a_done_hook_looking_up_a_header_finds_none)
{
	conn_t held[2];
	resp_t r;
	seen_t s;
	exhaust_large_buffers(2, held, &r);
	cr_assert_eq(r.status, 503);
	resp_free(&r);
	s = seen_for_503();
	cr_assert_eq(s.parsed, 0);
	cr_assert_eq(s.host_found, 0, "a Host field in a request that never parsed");
	cr_assert_eq(s.method_len + s.target_len + s.nfields, 0u);
	hang_up(&held[0]);
	hang_up(&held[1]);
	get("/plain", NULL, &r); /* the server still answers */
	cr_assert_eq(r.status, 200);
	cr_assert_eq(r.body_len, 5u);
	cr_assert(memcmp(r.body, "plain", 5) == 0);
	resp_free(&r);
}

/* ---- metrics ----------------------------------------------------------------------------------- */

static long long sample(const resp_t *r, const char *name)
{
	size_t nl = strlen(name);
	const char *p = (const char *)r->body, *end = p + r->body_len;
	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		if (!eol)
			eol = end;
		if ((size_t)(eol - p) > nl && memcmp(p, name, nl) == 0 && p[nl] == ' ')
			return strtoll(p + nl + 1, NULL, 10);
		p = eol + 1;
	}
	cr_assert_fail("no sample %s", name);
	return -1;
}

/* Without latency metrics and without middleware, requests were never counted done: the
 * in-flight gauge read the total number of requests. */
Test(metrics, in_flight_returns_to_zero_without_latency_metrics)
{
	conn_t c;
	resp_t r;
	zh_stats_t st;
	long long t0;
	static const char plain[] = "GET /plain HTTP/1.1\r\nHost: t\r\n\r\n";
	static const char scrape[] = "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n";
	start_server(&(opts_t){.no_latency = true});
	dial(&c, 0);
	for (int i = 0; i < 5; i++) {
		send_all(&c, plain, sizeof plain - 1);
		read_response(&c, &r, false);
		cr_assert_eq(r.status, 200);
		cr_assert_eq(r.body_len, 5u);
		cr_assert(memcmp(r.body, "plain", 5) == 0);
		resp_free(&r);
	}
	send_all(&c, scrape, sizeof scrape - 1);
	read_response(&c, &r, false);
	cr_assert_eq(r.status, 200);
	cr_assert_eq(sample(&r, "zerohttp_http_requests_total"), 6);
	cr_assert_eq(sample(&r, "zerohttp_http_requests_in_flight"), 1, "in flight: %lld (the "
		     "scrape itself is the only one)", sample(&r, "zerohttp_http_requests_in_flight"));
	resp_free(&r);
	hang_up(&c);
	t0 = zh_tc_now_ms();
	do {
		zh_server_stats(srv, &st);
		if (st.requests_done == st.requests)
			break;
		usleep(2000);
	} while (zh_tc_now_ms() - t0 < 1000);
	cr_assert_eq(st.requests, 6u);
	cr_assert_eq(st.requests_done, 6u, "requests_done %llu of 6",
		     (unsigned long long)st.requests_done);
}
