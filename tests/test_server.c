/* test_server.c — the ResponseWriter rules, end to end through a real server in this process.
 * Each test talks to a one-worker server on 127.0.0.1 (port chosen by the kernel) over a raw
 * socket and checks the exact bytes, plus what the handler saw returned by the API.
 */
#include <criterion/criterion.h>

#include "internal.h"
#include "zh_test_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

static zh_server_t *srv;
static pthread_t runner;
static int seen[16]; /* return codes the handlers observed, per test */
static atomic_int released;

/* ---- handlers ---------------------------------------------------------------------------- */

static void h_double(zh_request_t *req, zh_response_t *resp, void *arg)
{
	(void)req, (void)arg;
	seen[0] = zh_write_header(resp, 201);
	seen[1] = zh_write_header(resp, 202);
	seen[2] = zh_resp_header_set(resp, "X-Late", "1");
	seen[3] = zh_write_static(resp, "ok", 2);
}

static void h_implicit(zh_request_t *req, zh_response_t *resp, void *arg)
{
	(void)req, (void)arg;
	seen[0] = zh_write(resp, "abc", 3);
	seen[1] = zh_resp_status(resp);
	seen[2] = zh_write_header(resp, 500);
	seen[3] = zh_resp_header_set(resp, "X-After", "1");
	seen[4] = zh_resp_header_del(resp, "X-After");
}

static void h_inject(zh_request_t *req, zh_response_t *resp, void *arg)
{
	(void)req, (void)arg;
	seen[0] = zh_resp_header_set(resp, "X-A", "a\r\nX-Injected: yes");
	seen[1] = zh_resp_header_set(resp, "Bad Name", "v");
	seen[2] = zh_resp_header_setn(resp, "X-Nul", 5, "a\0b", 3);
	seen[3] = zh_resp_header_set(resp, "X-Lf", "a\nb");
	seen[4] = zh_resp_header_set(resp, "", "v");
	seen[5] = zh_resp_header_set(resp, "Transfer-Encoding", "chunked");
	seen[6] = zh_resp_header_set(resp, "X-Ok", "fine\tvalue");
	zh_write_static(resp, "x", 1);
}

/* Fills the header store until a set fails, then writes a body as if nothing happened. */
static void h_hfull(zh_request_t *req, zh_response_t *resp, void *arg)
{
	char name[16], value[200];
	int i, r = 0;
	(void)req, (void)arg;
	memset(value, 'v', sizeof value - 1);
	value[sizeof value - 1] = '\0';
	for (i = 0; i < 100 && r == 0; i++) {
		snprintf(name, sizeof name, "X-Fill-%d", i);
		r = zh_resp_header_set(resp, name, value);
	}
	seen[0] = r;
	seen[1] = zh_write_static(resp, "body", 4);
}

/* A JSON reply whose status was committed first: its Content-Type must still be sent. */
static void h_json_status(zh_request_t *req, zh_response_t *resp, void *arg)
{
	zh_json_t *j;
	(void)req;
	seen[0] = zh_write_header(resp, (int)(intptr_t)arg);
	j = zh_json_begin(resp, 0);
	zh_json_obj(j);
	zh_json_key(j, "id", 2);
	zh_json_u64(j, 7);
	zh_json_end(j);
	seen[1] = zh_json_error(j);
}

/* The handler named its own type before committing: the writer leaves it. */
static void h_json_typed(zh_request_t *req, zh_response_t *resp, void *arg)
{
	zh_json_t *j;
	(void)req, (void)arg;
	seen[0] = zh_resp_header_set(resp, "Content-Type", "application/problem+json");
	seen[1] = zh_write_header(resp, 422);
	j = zh_json_begin(resp, 0);
	zh_json_obj(j);
	zh_json_end(j);
}

static void h_headers(zh_request_t *req, zh_response_t *resp, void *arg)
{
	(void)req, (void)arg;
	seen[0] = zh_resp_header_add(resp, "X-A", "1");
	seen[1] = zh_resp_header_add(resp, "X-A", "2");
	seen[2] = zh_resp_header_set(resp, "X-B", "1");
	seen[3] = zh_resp_header_set(resp, "x-b", "2");
	seen[4] = zh_resp_header_del(resp, "x-a");
	zh_write_static(resp, "h", 1);
}

static void release_cb(void *arg)
{
	(void)arg;
	atomic_fetch_add(&released, 1);
}

static char ref_body[200000];

static void h_ref(zh_request_t *req, zh_response_t *resp, void *arg)
{
	(void)req, (void)arg;
	seen[0] = zh_write_ref(resp, ref_body, sizeof ref_body, release_cb, NULL);
}

static void h_mismatch(zh_request_t *req, zh_response_t *resp, void *arg)
{
	(void)req, (void)arg;
	seen[0] = zh_resp_header_set(resp, "Content-Length", "10");
	seen[1] = zh_write(resp, "abc", 3);
}

static void h_nobody(zh_request_t *req, zh_response_t *resp, void *arg)
{
	(void)req, (void)arg;
	seen[0] = zh_write_header(resp, 204);
	seen[1] = zh_write(resp, "no", 2);
}

static void hook(zh_response_t *resp, void *arg)
{
	char v[8];
	(void)arg;
	snprintf(v, sizeof v, "%d", zh_resp_status(resp));
	seen[1]++;
	seen[2] = zh_resp_header_set(resp, "X-Hook", v);
	seen[3] = zh_write_header(resp, 500); /* refused: the status is being committed */
}

static void h_hook(zh_request_t *req, zh_response_t *resp, void *arg)
{
	(void)req, (void)arg;
	seen[1] = 0;
	seen[0] = zh_resp_on_commit(resp, hook, NULL);
	(void)zh_write_header(resp, 202);
	seen[4] = zh_resp_on_commit(resp, hook, NULL);
	zh_write_static(resp, "k", 1);
}

static void h_big(zh_request_t *req, zh_response_t *resp, void *arg)
{
	char piece[1000];
	(void)req, (void)arg;
	seen[0] = 0;
	for (int i = 0; i < 100; i++) {
		memset(piece, 'a' + i % 26, sizeof piece);
		seen[0] |= zh_write(resp, piece, sizeof piece);
	}
}

static void h_many(zh_request_t *req, zh_response_t *resp, void *arg)
{
	(void)req, (void)arg;
	seen[0] = 0;
	for (int i = 0; i < 300 && seen[0] == 0; i++)
		seen[0] = zh_write_static(resp, "p", 1);
}

static void h_empty(zh_request_t *req, zh_response_t *resp, void *arg)
{
	(void)req, (void)arg, (void)resp;
}

static void h_view(zh_request_t *req, zh_response_t *resp, void *arg)
{
	zh_slice_t v;
	char out[512];
	int n;
	(void)arg;
	zh_slice_t m = zh_req_method(req), p = zh_req_path(req), q = zh_req_query(req),
		   h = zh_req_host(req);
	int has = zh_req_header(req, "x-CUSTOM", &v);
	n = snprintf(out, sizeof out, "%.*s|%.*s|%.*s|%.*s|%d|%.*s|%zu", (int)m.len, m.ptr,
		     (int)p.len, p.ptr, (int)q.len, q.ptr, (int)h.len, h.ptr, zh_req_version(req),
		     has ? (int)v.len : 0, has ? v.ptr : "", zh_req_header_count(req));
	(void)!zh_reply(resp, 200, "text/plain", out, (size_t)n);
}

/* Streaming route: sums the body in 1000-byte reads, parking with zh_body_wait on -EAGAIN. */
static struct {
	uint64_t len, sum;
	int reads, waits, last_err;
} streamed;

static void h_stream(zh_request_t *req, zh_response_t *resp, void *arg)
{
	char buf[1000], out[96];
	(void)arg;
	for (;;) {
		ssize_t n = zh_body_read(req, buf, sizeof buf);
		if (n == -EAGAIN) {
			streamed.waits++;
			cr_assert_eq(zh_body_wait(req, h_stream, NULL), 0);
			return;
		}
		if (n < 0) {
			streamed.last_err = (int)n;
			return; /* the library answers 408/400 and closes */
		}
		if (n == 0)
			break;
		streamed.reads++;
		streamed.len += (uint64_t)n;
		for (ssize_t i = 0; i < n; i++)
			streamed.sum += (unsigned char)buf[i];
	}
	int len = snprintf(out, sizeof out, "len=%llu sum=%llu", (unsigned long long)streamed.len,
			   (unsigned long long)streamed.sum);
	(void)!zh_reply(resp, 200, "text/plain", out, (size_t)len);
}

/* Refuses without reading: no 100 Continue must go out. */
static void h_stream_refuse(zh_request_t *req, zh_response_t *resp, void *arg)
{
	(void)req, (void)arg;
	(void)!zh_reply(resp, 413, "text/plain", "no\n", 3);
}

/* Fills the queue: 127 one-byte parts after the head slot would reach ZH__IOV_CAP exactly. */
static void h_parts(zh_request_t *req, zh_response_t *resp, void *arg)
{
	(void)req, (void)arg;
	seen[0] = 0;
	for (int i = 0; i < 127 && seen[0] == 0; i++)
		seen[0] = zh_write_static(resp, "p", 1);
}

/* Waits before its first read; Expect: 100-continue must still be answered. */
static void h_wait_first(zh_request_t *req, zh_response_t *resp, void *arg)
{
	(void)resp;
	seen[5] = (int)zh_body_length(req);
	if (arg == NULL) {
		cr_assert_eq(zh_body_wait(req, h_wait_first, (void *)1), 0);
		return;
	}
	h_stream(req, resp, NULL);
}

/* ---- handlers for the edge cases: queue spills, HEADs, declared lengths (tests at the end) - */

/* Copies (zh_write) alternating with borrowed parts (zh_write_static), more parts than the
 * queue holds: every copied byte must still be the one written when the queue spills. */
struct mix {
	int n, width, vary;
};
static const struct mix mix_small = {200, 8, 7}, mix_big = {1000, 100, 5};

static void h_mix(zh_request_t *req, zh_response_t *resp, void *arg)
{
	const struct mix *m = arg;
	char item[256];
	(void)req;
	seen[0] = 0;
	for (int i = 0; i < m->n && seen[0] == 0; i++) {
		int k = snprintf(item, sizeof item, "%0*d", m->width + i % m->vary, i);
		seen[0] = zh_write_static(resp, "|", 1);
		if (seen[0] == 0)
			seen[0] = zh_write(resp, item, (size_t)k);
	}
}

/* The same with the JSON writer's window: values synced between static parts. */
static void h_jmix(zh_request_t *req, zh_response_t *resp, void *arg)
{
	zh_json_t *j = zh_json_begin(resp, 0);
	(void)req, (void)arg;
	zh_json_arr(j);
	for (unsigned i = 0; i < 1000; i++) {
		zh_json_u64(j, (uint64_t)i * 1000003u % 999983u);
		(void)zh_write_static(resp, " ", 1);
	}
	zh_json_end(j);
}

/* Empty strings and keys passed as (NULL, 0). */
static void h_jnull(zh_request_t *req, zh_response_t *resp, void *arg)
{
	zh_json_t *j = zh_json_begin(resp, 0);
	(void)req, (void)arg;
	zh_json_obj(j);
	zh_json_key(j, NULL, 0);
	zh_json_str(j, NULL, 0);
	zh_json_key(j, "a", 1);
	zh_json_arr(j);
	zh_json_str(j, NULL, 0);
	zh_json_end(j);
	zh_json_end(j);
}

/* 200 borrowed parts, each with a release callback: more than the queue holds. */
static void h_refs(zh_request_t *req, zh_response_t *resp, void *arg)
{
	(void)req, (void)arg;
	seen[0] = 0;
	for (int i = 0; i < 200 && seen[0] == 0; i++)
		seen[0] = zh_write_ref(resp, "abcd", 4, release_cb, NULL);
}

/* seen[7]: calls with resp NULL; seen[8]: calls with a response. Never finishes. */
static int endless_more(zh_response_t *resp, void *arg)
{
	static const char piece[1000] = {0};
	(void)arg;
	if (resp == NULL) {
		seen[7]++;
		return 0;
	}
	seen[8]++;
	return zh_write_static(resp, piece, sizeof piece) < 0 ? -EIO : ZH_PRODUCE_MORE;
}

static void h_endless(zh_request_t *req, zh_response_t *resp, void *arg)
{
	(void)req, (void)arg;
	seen[7] = seen[8] = 0;
	seen[6] = zh_resp_produce(resp, endless_more, NULL);
}

/* The document is already erroneous (NaN) when the producer is registered. */
static int one_more(zh_response_t *resp, void *arg)
{
	(void)arg;
	if (resp == NULL) {
		seen[7]++;
		return 0;
	}
	seen[8]++;
	return zh_write_static(resp, "x", 1) < 0 ? -EIO : ZH_PRODUCE_DONE;
}

static void h_json_err_produce(zh_request_t *req, zh_response_t *resp, void *arg)
{
	zh_json_t *j = zh_json_begin(resp, 0);
	(void)req, (void)arg;
	seen[7] = seen[8] = 0;
	zh_json_arr(j);
	zh_json_double(j, NAN);
	seen[6] = zh_resp_produce(resp, one_more, NULL);
}

/* Streaming-body route: a response that outgrows the send area (so its head has left)
 * before the handler's first zh_body_read, under Expect: 100-continue. arg non-NULL: with
 * its own Content-Length. */
static char spill_body[40000];

static void h_spill_then_read(zh_request_t *req, zh_response_t *resp, void *arg)
{
	char tmp[64];
	if (arg)
		zh_resp_header_set(resp, "Content-Length", "40000");
	seen[0] = zh_write(resp, spill_body, sizeof spill_body);
	seen[1] = (int)zh_body_read(req, tmp, sizeof tmp);
}

/* A declared Content-Length shorter than the body. The short one is found before the head
 * left; the late one only after 20000 correct bytes went, then a whole fake response is
 * written as if it were body (arg: by reference, else copied). */
static const char fake_resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\ninjected";

static void h_cl_short(zh_request_t *req, zh_response_t *resp, void *arg)
{
	(void)req, (void)arg;
	seen[0] = zh_resp_header_set(resp, "Content-Length", "10");
	seen[1] = zh_write(resp, spill_body, sizeof spill_body - (sizeof fake_resp - 1));
	seen[2] = zh_write(resp, fake_resp, sizeof fake_resp - 1);
}

static int fake_fd = -1; /* a file holding fake_resp, for zh_send_file */

static void h_cl_late(zh_request_t *req, zh_response_t *resp, void *arg)
{
	(void)req;
	seen[0] = zh_resp_header_set(resp, "Content-Length", "20000");
	seen[1] = zh_write(resp, spill_body, 20000);
	if (arg == (void *)2)
		seen[2] = zh_send_file(resp, fake_fd, 0, sizeof fake_resp - 1, NULL, NULL);
	else if (arg)
		seen[2] = zh_write_static(resp, fake_resp, sizeof fake_resp - 1);
	else
		seen[2] = zh_write(resp, fake_resp, sizeof fake_resp - 1);
}

/* A write refused before the head left (past the declared length), then a producer. */
static void h_refused_produce(zh_request_t *req, zh_response_t *resp, void *arg)
{
	(void)req, (void)arg;
	seen[7] = seen[8] = 0;
	seen[0] = zh_resp_header_set(resp, "Content-Length", "10");
	seen[1] = zh_write(resp, "0123456789abcdefghij", 20);
	seen[6] = zh_resp_produce(resp, one_more, NULL);
}

/* A producer that takes its time (1 ms a call) and writes little (8 bytes a call): its
 * socket never fills, so only the library can give other connections a turn. */
enum { SLOW_CALLS = 600 };

static int slow_more(zh_response_t *resp, void *arg)
{
	unsigned *calls = arg;
	char line[16];
	if (resp == NULL)
		return 0;
	usleep(1000);
	snprintf(line, sizeof line, "%07u\n", *calls);
	if (zh_write(resp, line, 8) < 0)
		return -EIO;
	return ++*calls < SLOW_CALLS ? ZH_PRODUCE_MORE : ZH_PRODUCE_DONE;
}

static void h_slow(zh_request_t *req, zh_response_t *resp, void *arg)
{
	unsigned *calls = zh_resp_state(resp);
	(void)req, (void)arg;
	*calls = 0;
	seen[6] = zh_resp_produce(resp, slow_more, calls);
}

/* Blocks its worker for 400 ms: a wedged event loop, for zh_server_ping. */
static void h_block(zh_request_t *req, zh_response_t *resp, void *arg)
{
	(void)req, (void)arg;
	usleep(400000);
	zh_write_static(resp, "ok", 2);
}

/* ---- fixture ------------------------------------------------------------------------------ */

/* large: the worker's 64 KiB buffers (0: a response can never outgrow the send area) */
static void start_server(unsigned large)
{
	zh_config_t cfg;
	int err = 0;
	zh_tc_config(&cfg);
	cfg.body_timeout_ms = 700;
	cfg.large_buffers = large;
	srv = zh_server_new(&cfg, &err);
	cr_assert_not_null(srv, "zh_server_new: %d", err);
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/double", 0, h_double, NULL), 0);
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/implicit", 0, h_implicit, NULL), 0);
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/inject", 0, h_inject, NULL), 0);
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/headers", 0, h_headers, NULL), 0);
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/hfull", 0, h_hfull, NULL), 0);
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/json201", 0, h_json_status, (void *)201), 0);
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/json404", 0, h_json_status, (void *)404), 0);
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/json-typed", 0, h_json_typed, NULL), 0);
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/ref", 0, h_ref, NULL), 0);
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/mismatch", 0, h_mismatch, NULL), 0);
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/nobody", 0, h_nobody, NULL), 0);
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/hook", 0, h_hook, NULL), 0);
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/big", 0, h_big, NULL), 0);
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/many", 0, h_many, NULL), 0);
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/empty", 0, h_empty, NULL), 0);
	cr_assert_eq(zh_server_route(srv, ZH_METHOD_ANY, "/view/", ZH_ROUTE_PREFIX, h_view,
				     NULL), 0);
	cr_assert_eq(zh_server_route(srv, ZH_POST, "/stream", ZH_ROUTE_STREAM_BODY, h_stream,
				     NULL), 0);
	cr_assert_eq(zh_server_route(srv, ZH_POST, "/stream-refuse", ZH_ROUTE_STREAM_BODY,
				     h_stream_refuse, NULL), 0);
	cr_assert_eq(zh_server_route(srv, ZH_POST, "/parts", 0, h_parts, NULL), 0);
	cr_assert_eq(zh_server_route(srv, ZH_POST, "/wait-first", ZH_ROUTE_STREAM_BODY,
				     h_wait_first, NULL), 0);
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/mix", 0, h_mix, (void *)&mix_small), 0);
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/mix-big", 0, h_mix, (void *)&mix_big), 0);
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/jmix", 0, h_jmix, NULL), 0);
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/jnull", 0, h_jnull, NULL), 0);
	cr_assert_eq(zh_server_route(srv, ZH_GET | ZH_HEAD, "/refs", 0, h_refs, NULL), 0);
	cr_assert_eq(zh_server_route(srv, ZH_GET | ZH_HEAD, "/endless", 0, h_endless, NULL), 0);
	cr_assert_eq(zh_server_route(srv, ZH_GET | ZH_HEAD, "/json-err-produce", 0,
				     h_json_err_produce, NULL), 0);
	cr_assert_eq(zh_server_route(srv, ZH_POST, "/spill-then-read", ZH_ROUTE_STREAM_BODY,
				     h_spill_then_read, NULL), 0);
	cr_assert_eq(zh_server_route(srv, ZH_POST, "/spill-then-read-cl", ZH_ROUTE_STREAM_BODY,
				     h_spill_then_read, (void *)1), 0);
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/cl-short", 0, h_cl_short, NULL), 0);
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/cl-late-copy", 0, h_cl_late, NULL), 0);
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/cl-late-ref", 0, h_cl_late, (void *)1), 0);
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/cl-late-file", 0, h_cl_late, (void *)2), 0);
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/refused-produce", 0, h_refused_produce,
				     NULL), 0);
	if (fake_fd < 0) {
		FILE *f = tmpfile();
		cr_assert_not_null(f);
		cr_assert_eq(fwrite(fake_resp, 1, sizeof fake_resp - 1, f), sizeof fake_resp - 1);
		cr_assert_eq(fflush(f), 0);
		fake_fd = fileno(f);
	}
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/slow", 0, h_slow, NULL), 0);
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/block", 0, h_block, NULL), 0);
	for (size_t i = 0; i < sizeof spill_body; i++)
		spill_body[i] = (char)('a' + i % 26);
	memset(&streamed, 0, sizeof streamed);
	memset(seen, 0x55, sizeof seen);
	atomic_store(&released, 0);
	cr_assert_eq(pthread_create(&runner, NULL, zh_tc_run, srv), 0);
}

static void setup(void)
{
	start_server(64);
}

/* No large buffers: a response that outgrows the send area cannot place its head. */
static void setup_no_large(void)
{
	start_server(0);
}

static void teardown(void)
{
	zh_server_stop(srv);
	pthread_join(runner, NULL);
	zh_server_free(srv);
}

TestSuite(writer, .init = setup, .fini = teardown, .timeout = 20);
TestSuite(no_large, .init = setup_no_large, .fini = teardown, .timeout = 20);

static int dial(void)
{
	int fd = zh_tc_connect(zh_server_port(srv), 5, 0);
	zh_tc_forget();
	return fd;
}

static void get(const char *path, response_t *r)
{
	char req[256];
	int fd = dial();
	snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", path);
	send_all(fd, req);
	read_response(fd, r);
	close(fd);
}

/* The peer can read a response before the worker has counted the writev that sent it. */
static void stats_after_settle(zh_stats_t *st)
{
	usleep(50000);
	zh_server_stats(srv, st);
}

static bool has_header(const response_t *r, const char *line)
{
	return strstr(r->head, line) != NULL;
}

/* ---- tests --------------------------------------------------------------------------------- */

Test(writer, write_header_commits_once)
{
	response_t r;
	zh_stats_t st;
	get("/double", &r);
	cr_assert_eq(r.status, 201);
	usleep(50000);
	cr_assert_eq(seen[0], 0);
	cr_assert_eq(seen[1], -EALREADY, "second zh_write_header must be refused");
	cr_assert_eq(seen[2], -EALREADY, "headers are frozen after commit");
	cr_assert_eq(seen[3], 0);
	cr_assert(!has_header(&r, "X-Late"));
	cr_assert_eq(strstr(r.head + 1, "HTTP/1.1") , NULL, "exactly one status line");
	cr_assert_eq(r.body_len, 2, "the late header call leaves the stream intact");
	cr_assert_arr_eq(r.body, "ok", 2);
	zh_server_stats(srv, &st);
	cr_assert_eq(st.double_commits, 1);
	cr_assert_eq(st.header_errors, 1, "a header refused after the commit is counted");
	cr_assert_eq(st.responses_5xx, 0, "after the commit the status stands");
}

Test(writer, first_body_write_commits_implicit_200)
{
	response_t r;
	get("/implicit", &r);
	cr_assert_eq(r.status, 200);
	cr_assert_eq(seen[0], 0);
	cr_assert_eq(seen[1], 200);
	cr_assert_eq(seen[2], -EALREADY);
	cr_assert_eq(seen[3], -EALREADY);
	cr_assert_eq(seen[4], -EALREADY);
	cr_assert_eq(r.body_len, 3);
	cr_assert_arr_eq(r.body, "abc", 3);
}

Test(writer, header_injection_is_refused)
{
	response_t r;
	zh_stats_t st;
	get("/inject", &r);
	/* sticky: a response whose header could not be set is a 500, without its fields */
	cr_assert_eq(r.status, 500);
	usleep(50000);
	for (int i = 0; i < 6; i++)
		cr_assert_eq(seen[i], -EINVAL, "header call %d must be refused", i);
	cr_assert_eq(seen[6], 0, "HTAB inside a value is allowed");
	cr_assert(!has_header(&r, "X-Injected"));
	cr_assert(!has_header(&r, "X-A:"));
	cr_assert(!has_header(&r, "X-Nul"));
	cr_assert(!has_header(&r, "Transfer-Encoding"));
	cr_assert(!has_header(&r, "X-Ok"), "the failed response keeps none of its own fields");
	cr_assert(has_header(&r, "\r\nDate: "));
	cr_assert(has_header(&r, "\r\nContent-Length: 22\r\n"));
	cr_assert_eq(r.body_len, 22);
	cr_assert_arr_eq(r.body, "Internal Server Error\n", 22);
	zh_server_stats(srv, &st);
	cr_assert_eq(st.header_rejects, 6);
	cr_assert_eq(st.header_errors, 6);
	cr_assert_eq(st.responses_5xx, 1);
}

Test(writer, a_full_header_store_fails_the_response)
{
	response_t r;
	zh_stats_t st;
	get("/hfull", &r);
	cr_assert_eq(r.status, 500);
	cr_assert_eq(seen[0], -ENOSPC);
	cr_assert_eq(seen[1], -EIO, "a failed response takes no more body");
	cr_assert(!has_header(&r, "X-Fill-"), "no partial header set");
	cr_assert(has_header(&r, "\r\nDate: "));
	cr_assert(has_header(&r, "\r\nContent-Type: text/plain; charset=utf-8\r\n"));
	cr_assert_arr_eq(r.body, "Internal Server Error\n", 22);
	stats_after_settle(&st);
	cr_assert_eq(st.header_errors, 1);
	cr_assert_eq(st.header_rejects, 0, "full, not malformed");
}

Test(writer, json_after_an_explicit_status_carries_its_content_type)
{
	static const char *const paths[2] = {"/json201", "/json404"};
	static const int codes[2] = {201, 404};
	for (int i = 0; i < 2; i++) {
		response_t r;
		get(paths[i], &r);
		cr_assert_eq(r.status, codes[i]);
		cr_assert_eq(seen[0], 0);
		cr_assert_eq(seen[1], 0);
		cr_assert(has_header(&r, "\r\nContent-Type: application/json\r\n"), "%s: %s",
			  paths[i], r.head);
		cr_assert_eq(r.body_len, 8);
		cr_assert_arr_eq(r.body, "{\"id\":7}", 8);
	}
}

Test(writer, json_keeps_the_handlers_own_content_type)
{
	response_t r;
	get("/json-typed", &r);
	cr_assert_eq(r.status, 422);
	cr_assert(has_header(&r, "\r\nContent-Type: application/problem+json\r\n"));
	cr_assert_null(strstr(r.head, "application/json"));
	cr_assert_arr_eq(r.body, "{}", 2);
}

Test(writer, set_replace_and_remove_headers)
{
	response_t r;
	get("/headers", &r);
	for (int i = 0; i < 4; i++)
		cr_assert_eq(seen[i], 0);
	cr_assert_eq(seen[4], 2, "both X-A fields removed");
	cr_assert(!has_header(&r, "X-A"));
	cr_assert(has_header(&r, "\r\nx-b: 2\r\n"), "replaced, with the new name's spelling");
	cr_assert(!has_header(&r, "X-B: 1"));
}

Test(writer, borrowed_reference_is_sent_and_released_once)
{
	response_t r;
	for (size_t i = 0; i < sizeof ref_body; i++)
		ref_body[i] = (char)('A' + i % 23);
	get("/ref", &r);
	cr_assert_eq(seen[0], 0);
	cr_assert_eq(r.body_len, sizeof ref_body);
	cr_assert_arr_eq(r.body, ref_body, sizeof ref_body);
	for (int i = 0; i < 100 && atomic_load(&released) == 0; i++)
		usleep(10000);
	usleep(20000);
	cr_assert_eq(atomic_load(&released), 1);
}

Test(writer, head_request_releases_reference_without_body)
{
	response_t r;
	int fd = dial();
	send_all(fd, "HEAD /ref HTTP/1.1\r\nHost: t\r\n\r\nGET /implicit HTTP/1.1\r\nHost: t\r\n\r\n");
	read_head_response(fd, &r);
	cr_assert_eq(r.status, 200);
	cr_assert(has_header(&r, "\r\nContent-Length: 200000\r\n"));
	read_response(fd, &r);
	cr_assert_eq(r.status, 200, "the next response follows the HEAD head directly");
	cr_assert_arr_eq(r.body, "abc", 3);
	close(fd);
	for (int i = 0; i < 100 && atomic_load(&released) == 0; i++)
		usleep(10000);
	cr_assert_eq(atomic_load(&released), 1);
}

Test(writer, content_length_mismatch_becomes_500)
{
	response_t r;
	get("/mismatch", &r);
	cr_assert_eq(seen[0], 0);
	cr_assert_eq(seen[1], 0);
	cr_assert_eq(r.status, 500);
	cr_assert(has_header(&r, "\r\nContent-Length: 22\r\n"));
}

Test(writer, no_body_after_204)
{
	response_t r;
	int fd = dial();
	send_all(fd, "GET /nobody HTTP/1.1\r\nHost: t\r\n\r\nGET /empty HTTP/1.1\r\nHost: t\r\n\r\n");
	read_head_response(fd, &r);
	cr_assert_eq(r.status, 204);
	cr_assert_eq(seen[1], -EINVAL);
	cr_assert(!has_header(&r, "Content-Length"));
	read_response(fd, &r);
	cr_assert_eq(r.status, 200, "no stray body bytes between the two responses");
	cr_assert(has_header(&r, "\r\nContent-Length: 0\r\n"));
	close(fd);
}

Test(writer, commit_hook_sees_status_and_can_set_headers)
{
	response_t r;
	get("/hook", &r);
	cr_assert_eq(seen[0], 0);
	cr_assert_eq(seen[1], 1, "hook runs exactly once");
	cr_assert_eq(seen[2], 0, "headers are mutable inside the hook");
	cr_assert_eq(seen[3], -EALREADY);
	cr_assert_eq(seen[4], -EALREADY, "no hooks after commit");
	cr_assert_eq(r.status, 202);
	cr_assert(has_header(&r, "\r\nX-Hook: 202\r\n"));
}

Test(writer, copies_larger_than_the_send_buffer)
{
	response_t r;
	get("/big", &r);
	cr_assert_eq(seen[0], 0);
	cr_assert_eq(r.status, 200);
	/* it outgrew the send area while being written: sent as it went, chunked */
	cr_assert(strcasestr(r.head, "\r\nTransfer-Encoding: chunked\r\n"), "%s", r.head);
	cr_assert_null(strcasestr(r.head, "Content-Length"));
	cr_assert_geq(r.chunks, 2);
	cr_assert_eq(r.body_len, 100000);
	for (int i = 0; i < 100; i++)
		for (int k = 0; k < 1000; k++)
			cr_assert_eq(r.body[i * 1000 + k], 'a' + i % 26);
}

Test(writer, more_parts_than_the_queue_holds_stream_chunked)
{
	response_t r;
	get("/many", &r);
	cr_assert_eq(seen[0], 0);
	cr_assert_eq(r.status, 200);
	cr_assert(strcasestr(r.head, "\r\nTransfer-Encoding: chunked\r\n"), "%s", r.head);
	cr_assert_geq(r.chunks, 3, "300 parts through a 128-entry queue");
	cr_assert_eq(r.body_len, 300);
	for (size_t i = 0; i < r.body_len; i++)
		cr_assert_eq(r.body[i], 'p');
}

Test(writer, empty_handler_is_empty_200)
{
	response_t r;
	get("/empty", &r);
	cr_assert_eq(r.status, 200);
	cr_assert(has_header(&r, "\r\nContent-Length: 0\r\n"));
}

Test(writer, request_view_and_prefix_route)
{
	response_t r;
	int fd = dial();
	const char *want = "PATCH|/view/a%20b|x=1&y|example.com:81|11|Yes Sir|2";
	send_all(fd, "PATCH /view/a%20b?x=1&y HTTP/1.1\r\nHost: example.com:81\r\n"
		     "X-Custom:   Yes Sir  \r\n\r\n");
	read_response(fd, &r);
	cr_assert_eq(r.status, 200);
	cr_assert_eq(r.body_len, strlen(want), "%.*s", (int)r.body_len, r.body);
	cr_assert_arr_eq(r.body, want, strlen(want));
	close(fd);
}

/* Exact routes of up to 8 bytes are told apart by a key built from their bytes (two
 * overlapping loads for 4-7 bytes): a path differing from "/empty" in any one byte, or
 * one shorter or longer, is not that route. */
Test(writer, short_exact_route_keys_see_every_byte)
{
	static const char *const other[] = {"/Qmpty", "/eQpty", "/emQty", "/empQy", "/emptQ",
					    "Qempty", "/mpty", "/emptyy", "/emp"};
	response_t r;
	get("/empty", &r);
	cr_assert_eq(r.status, 200);
	for (size_t i = 0; i < sizeof other / sizeof other[0]; i++) {
		get(other[i], &r);
		cr_expect(r.status == 404 || r.status == 400, "%s: %d", other[i], r.status);
	}
}

/* RFC 3986 §6.2.2: a triplet of an unreserved character is that character, hex digits are
 * case-insensitive: "/%65mpty" is "/empty" and reaches its route (the static handler serves
 * such spellings too, so a file must not be reachable past a route by them). */
Test(writer, equivalent_percent_encodings_reach_the_route)
{
	static const char *const same[] = {"/%65mpty", "/emp%74%79", "/%65%6D%70%74%79",
					   "/%65%6d%70%74%79"};
	static const char *const other[] = {"/%45mpty", "/empty%2F", "/%2Fempty", "/empt",
					    "/%65mpt", "/empty%20"};
	response_t r;
	for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
		get(same[i], &r);
		cr_expect_eq(r.status, 200, "%s", same[i]);
	}
	for (size_t i = 0; i < sizeof other / sizeof other[0]; i++) {
		get(other[i], &r);
		cr_expect_eq(r.status, 404, "%s", other[i]);
	}
	/* a prefix route; the handler still sees the path as sent */
	{
		int fd = dial();
		const char *want = "GET|/%76iew/a%2fb||h|11||1";
		send_all(fd, "GET /%76iew/a%2fb HTTP/1.1\r\nHost: h\r\n\r\n");
		read_response(fd, &r);
		cr_assert_eq(r.status, 200);
		cr_expect(r.body_len == strlen(want) && memcmp(r.body, want, r.body_len) == 0,
			  "%.*s", (int)r.body_len, r.body);
		close(fd);
	}
}

/* RFC 9110 §9.3.7: a successful OPTIONS without content MUST carry Content-Length: 0, which
 * a 204 may not (§8.6): the server's own OPTIONS answers are 200 with Allow. */
Test(writer, options_is_200_with_content_length_0_and_allow)
{
	static const char *const reqs[] = {"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
					   "OPTIONS /empty HTTP/1.1\r\nHost: h\r\n\r\n"};
	for (size_t i = 0; i < 2; i++) {
		response_t r;
		int fd = dial();
		send_all(fd, reqs[i]);
		read_response(fd, &r);
		cr_expect_eq(r.status, 200, "%s", reqs[i]);
		cr_expect(has_header(&r, "\r\nContent-Length: 0\r\n"), "%s", r.head);
		cr_expect(strcasestr(r.head, "\r\nAllow: ") != NULL, "%s", r.head);
		cr_expect_eq(r.body_len, 0);
		close(fd);
	}
}

/* RFC 9112 §2.3: HTTP/1.2 is processed as HTTP/1.1 and answered with HTTP/1.1 */
Test(writer, higher_minor_version_is_processed_as_1_1)
{
	response_t r;
	int fd = dial();
	const char *want = "GET|/view/x||h|11||1";
	send_all(fd, "GET /view/x HTTP/1.2\r\nHost: h\r\n\r\n");
	read_response(fd, &r);
	cr_assert_eq(r.status, 200);
	cr_expect(strncmp(r.head, "HTTP/1.1 200", 12) == 0, "%s", r.head);
	cr_expect(r.body_len == strlen(want) && memcmp(r.body, want, r.body_len) == 0, "%.*s",
		  (int)r.body_len, r.body);
	close(fd);
}

Test(writer, one_writev_for_head_and_body_and_for_a_pipelined_batch)
{
	response_t r;
	zh_stats_t a, b;
	int fd = dial();
	char batch[2048] = "";
	send_all(fd, "GET /implicit HTTP/1.1\r\nHost: t\r\n\r\n");
	read_response(fd, &r);
	stats_after_settle(&a);
	send_all(fd, "GET /implicit HTTP/1.1\r\nHost: t\r\n\r\n");
	read_response(fd, &r);
	stats_after_settle(&b);
	cr_assert_eq(b.writev_calls - a.writev_calls, 1, "head and body leave in one writev");
	for (int i = 0; i < 10; i++)
		strcat(batch, "GET /implicit HTTP/1.1\r\nHost: t\r\n\r\n");
	send_all(fd, batch);
	for (int i = 0; i < 10; i++) {
		read_response(fd, &r);
		cr_assert_eq(r.status, 200);
	}
	stats_after_settle(&a);
	cr_assert_eq(a.writev_calls - b.writev_calls, 1, "10 pipelined responses, one writev");
	cr_assert_eq(a.body_bytes_copied - b.body_bytes_copied, 30);
	close(fd);
}

/* ---- streaming bodies ------------------------------------------------------------------- */

static void send_n(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t k = write(fd, p, n);
		cr_assert_gt(k, 0);
		p += k;
		n -= (size_t)k;
	}
}

/* The interim response alone, before anything else. */
static void read_continue(int fd)
{
	char got[32] = "";
	cr_assert_eq(read(fd, got, 25), 25);
	cr_assert_str_eq(got, "HTTP/1.1 100 Continue\r\n\r\n");
}

static uint64_t fill_pattern(char *p, size_t n)
{
	uint64_t sum = 0;
	for (size_t i = 0; i < n; i++) {
		p[i] = (char)(i * 7 + 3);
		sum += (unsigned char)p[i];
	}
	return sum;
}

static void expect_sum(const response_t *r, size_t len, uint64_t sum)
{
	char want[96];
	int n = snprintf(want, sizeof want, "len=%zu sum=%llu", len, (unsigned long long)sum);
	cr_assert_eq(r->status, 200);
	cr_assert_eq(r->body_len, (size_t)n, "%.*s", (int)r->body_len, r->body);
	cr_assert_arr_eq(r->body, want, (size_t)n);
}

Test(writer, streams_a_content_length_body_larger_than_max_body)
{
	enum { LEN = 3 << 20 }; /* 3 MiB: three times max_body, never buffered */
	static char body[LEN];
	char head[128];
	response_t r;
	zh_stats_t a, b;
	uint64_t sum = fill_pattern(body, LEN);
	int fd = dial();
	zh_server_stats(srv, &a);
	snprintf(head, sizeof head, "POST /stream HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n",
		 LEN);
	send_all(fd, head);
	for (size_t off = 0; off < LEN; off += 65536) {
		send_n(fd, body + off, LEN - off < 65536 ? LEN - off : 65536);
		if (off % (1 << 20) == 0)
			usleep(20000); /* let the handler park on -EAGAIN now and then */
	}
	send_all(fd, "GET /empty HTTP/1.1\r\nHost: t\r\n\r\n");
	read_response(fd, &r);
	expect_sum(&r, LEN, sum);
	cr_assert_gt(streamed.waits, 0, "the handler must have parked at least once");
	read_response(fd, &r);
	cr_assert_eq(r.status, 200, "the pipelined request after the body is intact");
	cr_assert(has_header(&r, "\r\nContent-Length: 0\r\n"));
	stats_after_settle(&b);
	cr_assert_eq(b.pool_exhausted, a.pool_exhausted);
	close(fd);
}

Test(writer, streams_a_chunked_body_with_extensions_and_trailer)
{
	static char body[100000];
	char line[64];
	response_t r;
	uint64_t sum = fill_pattern(body, sizeof body);
	int fd = dial();
	send_all(fd, "POST /stream HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
	for (size_t off = 0, k = 1; off < sizeof body; k = k * 3 % 7919 + 1) {
		size_t n = sizeof body - off < k ? sizeof body - off : k;
		snprintf(line, sizeof line, "%zX;ext=%zu\r\n", n, k);
		send_all(fd, line);
		send_n(fd, body + off, n);
		send_all(fd, "\r\n");
		off += n;
	}
	send_all(fd, "0\r\nX-Trailer: t\r\n\r\nGET /empty HTTP/1.1\r\nHost: t\r\n\r\n");
	read_response(fd, &r);
	expect_sum(&r, sizeof body, sum);
	read_response(fd, &r);
	cr_assert_eq(r.status, 200);
	close(fd);
}

Test(writer, stream_sends_100_continue_only_when_the_handler_reads)
{
	response_t r;
	int fd = dial();
	send_all(fd, "POST /stream HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
		     "Expect: 100-continue\r\n\r\n");
	read_continue(fd);
	send_all(fd, "abcde");
	read_response(fd, &r);
	expect_sum(&r, 5, 'a' + 'b' + 'c' + 'd' + 'e');
	close(fd);

	fd = dial();
	send_all(fd, "POST /stream-refuse HTTP/1.1\r\nHost: t\r\nContent-Length: 5000000\r\n"
		     "Expect: 100-continue\r\n\r\n");
	read_response(fd, &r);
	cr_assert_eq(r.status, 413, "no 100 Continue before a refusal");
	cr_assert(has_header(&r, "\r\nConnection: close\r\n"), "unread body: must close");
	close(fd);
}

Test(writer, stream_body_timeout_reaches_the_continuation)
{
	response_t r;
	int fd = dial();
	send_all(fd, "POST /stream HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc");
	read_response(fd, &r);
	cr_assert_eq(r.status, 408);
	cr_assert_eq(streamed.last_err, -ETIMEDOUT);
	cr_assert_eq(streamed.len, 3);
	close(fd);
}

Test(writer, stream_bad_chunked_framing_is_400_and_close)
{
	response_t r;
	int fd = dial();
	send_all(fd, "POST /stream HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
		     "5\r\nabcde\r\nzz\r\n");
	read_response(fd, &r);
	cr_assert_eq(r.status, 400);
	cr_assert_eq(streamed.last_err, -EPROTO);
	cr_assert(has_header(&r, "\r\nConnection: close\r\n"));
	close(fd);
}

Test(writer, full_queue_with_a_pooled_body_spills_and_releases_the_buffer)
{
	static char body[20000];
	char head[128];
	response_t r;
	zh_stats_t st;
	int fd = dial();
	memset(body, 'b', sizeof body);
	snprintf(head, sizeof head, "POST /parts HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n\r\n",
		 sizeof body);
	/* more rounds than the worker has large buffers: a leaked body buffer would show as 503 */
	for (int round = 0; round < 80; round++) {
		send_all(fd, head);
		send_n(fd, body, sizeof body);
		read_response(fd, &r);
		cr_assert_eq(r.status, 200, "round %d", round);
		cr_assert_eq(seen[0], 0);
		cr_assert_eq(r.body_len, 127, "round %d", round);
		cr_assert_geq(r.chunks, 2, "the full queue was sent before the handler went on");
	}
	stats_after_settle(&st);
	cr_assert_eq(st.pool_exhausted, 0);
	close(fd);
}

Test(writer, stream_wait_before_first_read_still_answers_100_continue)
{
	response_t r;
	int fd = dial();
	send_all(fd, "POST /wait-first HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
		     "Expect: 100-continue\r\n\r\n");
	read_continue(fd);
	cr_assert_eq(seen[5], -1, "a chunked body's length is unknown while it streams");
	send_all(fd, "3\r\nabc\r\n0\r\n\r\n");
	read_response(fd, &r);
	expect_sum(&r, 3, 'a' + 'b' + 'c');
	close(fd);
}

Test(writer, stream_refusal_skips_a_small_body_already_received)
{
	response_t r;
	int fd = dial();
	send_all(fd, "POST /stream-refuse HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc"
		     "GET /empty HTTP/1.1\r\nHost: t\r\n\r\n");
	read_response(fd, &r);
	cr_assert_eq(r.status, 413);
	cr_assert(!has_header(&r, "Connection: close"), "the body was all here: keep-alive");
	read_response(fd, &r);
	cr_assert_eq(r.status, 200, "the pipelined request after the skipped body");
	close(fd);
}

/* ---- edge cases: queue spills, HEADs, producers, declared lengths, 100-continue ----------- */

/* Everything the peer sends until it closes (what read_response left over included), in
 * the reader's buffer: *out points to it. */
static size_t read_to_eof(int fd, const char **out)
{
	conn_t *c = zh_tc_conn_of(fd);
	for (;;) {
		ssize_t n;
		if (c->cap - c->have < 16384)
			c->buf = xrealloc(c->buf, c->cap *= 2);
		n = read(fd, c->buf + c->have, c->cap - c->have);
		cr_assert_geq(n, 0, "no close within the receive timeout (%zu bytes so far)",
			      c->have);
		if (n == 0) {
			*out = (const char *)c->buf;
			return c->have;
		}
		c->have += (size_t)n;
	}
}

/* A response that failed before its head could be placed: the client gets a complete 500,
 * or nothing at all and a close; never a body without a head, never a part of one. */
static void expect_500_or_close(int fd)
{
	static const char ise[] = "Internal Server Error\n";
	const char *got;
	size_t n = read_to_eof(fd, &got);
	const char *end;
	if (n == 0)
		return;
	cr_assert(n >= 13 && memcmp(got, "HTTP/1.1 500 ", 13) == 0, "%zu unexpected bytes: %.*s",
		  n, (int)(n < 200 ? n : 200), got);
	end = memmem(got, n, "\r\n\r\n", 4);
	cr_assert_not_null(end);
	cr_assert_eq(n - (size_t)(end + 4 - got), sizeof ise - 1, "%.*s", (int)n, got);
	cr_assert_arr_eq(end + 4, ise, sizeof ise - 1);
}

static void expect_body(const response_t *r, const char *want, size_t len)
{
	size_t k = 0;
	cr_assert_eq(r->body_len, len, "body is %zu bytes, expected %zu", r->body_len, len);
	while (k < len && r->body[k] == want[k])
		k++;
	cr_assert_eq(k, len, "first wrong body byte at %zu: got \"%.*s\", expected \"%.*s\"", k,
		     (int)(len - k < 40 ? len - k : 40), r->body + k,
		     (int)(len - k < 40 ? len - k : 40), want + k);
}

/* Review defect 2: bytes copied by zh_write (and zh__write_encoded, the same window) were
 * overwritten when a borrowed part that followed them found the queue full and spilled. */
static void expect_mix(const char *path, const struct mix *m)
{
	static char want[200000];
	response_t r;
	size_t n = 0;
	for (int i = 0; i < m->n; i++) {
		want[n++] = '|';
		n += (size_t)sprintf(want + n, "%0*d", m->width + i % m->vary, i);
	}
	get(path, &r);
	cr_assert_eq(r.status, 200);
	cr_assert(has_header(&r, "\r\nTransfer-Encoding: chunked\r\n"), "%s", r.head);
	expect_body(&r, want, n);
	cr_assert_eq(seen[0], 0);
}

Test(writer, copies_between_borrowed_parts_survive_a_full_queue)
{
	expect_mix("/mix", &mix_small);
	expect_mix("/mix-big", &mix_big);
}

Test(writer, json_values_between_borrowed_parts_survive_a_full_queue)
{
	static char want[16000];
	response_t r;
	size_t n = 0;
	want[n++] = '[';
	for (unsigned i = 0; i < 1000; i++)
		n += (size_t)sprintf(want + n, "%s%u ", i ? "," : "", i * 1000003u % 999983u);
	want[n++] = ']';
	get("/jmix", &r);
	cr_assert_eq(r.status, 200);
	expect_body(&r, want, n);
}

/* Review defect 8: zh_json_str(j, NULL, 0) and zh_json_key(j, NULL, 0) crashed. */
Test(writer, json_empty_string_and_key_may_be_null)
{
	static const char want[] = "{\"\":\"\",\"a\":[\"\"]}";
	response_t r;
	get("/jnull", &r);
	cr_assert_eq(r.status, 200);
	expect_body(&r, want, sizeof want - 1);
}

/* Review defect 7: HEAD got a 500 where GET, whose parts outgrow the queue, succeeds. */
Test(writer, head_of_a_body_that_outgrows_the_queue_is_not_a_500)
{
	static char want[800];
	response_t r;
	int fd;
	for (int i = 0; i < 200; i++)
		memcpy(want + 4 * i, "abcd", 4);
	get("/refs", &r);
	cr_assert_eq(r.status, 200);
	expect_body(&r, want, sizeof want);
	for (int i = 0; i < 100 && atomic_load(&released) < 200; i++)
		usleep(10000);
	cr_assert_eq(atomic_load(&released), 200);

	fd = dial();
	send_all(fd, "HEAD /refs HTTP/1.1\r\nHost: t\r\n\r\nGET /empty HTTP/1.1\r\nHost: t\r\n\r\n");
	read_head_response(fd, &r);
	cr_assert_eq(r.status, 200, "%s", r.head);
	cr_assert(!has_header(&r, "Content-Length") ||
		  has_header(&r, "\r\nContent-Length: 800\r\n"), "%s", r.head);
	cr_assert_eq(seen[0], 0, "a HEAD write must not fail where GET's succeeds");
	read_response(fd, &r);
	cr_assert_eq(r.status, 200, "the next response follows the HEAD head directly");
	cr_assert(has_header(&r, "\r\nContent-Length: 0\r\n"), "%s", r.head);
	close(fd);
	for (int i = 0; i < 100 && atomic_load(&released) < 400; i++)
		usleep(10000);
	cr_assert_eq(atomic_load(&released), 400, "every HEAD part released once");
}

/* Review defect 4: HEAD with a producer called it forever (nothing it writes is queued). */
Test(writer, head_with_a_producer_sends_the_head_and_produces_nothing)
{
	response_t r;
	int fd = dial();
	send_all(fd, "HEAD /endless HTTP/1.1\r\nHost: t\r\n\r\nGET /empty HTTP/1.1\r\nHost: t\r\n\r\n");
	read_head_response(fd, &r);
	cr_assert_eq(r.status, 200, "%s", r.head);
	cr_assert(!has_header(&r, "Content-Length"), "the length is unknown: %s", r.head);
	read_response(fd, &r);
	cr_assert_eq(r.status, 200, "the next response follows the HEAD head directly");
	cr_assert(has_header(&r, "\r\nContent-Length: 0\r\n"), "%s", r.head);
	close(fd);
	usleep(50000);
	cr_assert_eq(seen[6], 0);
	cr_assert_eq(seen[7], 1, "the producer is told once, with resp NULL");
	cr_assert_eq(seen[8], 0, "nothing is produced for HEAD");
}

/* Review defect 9: an error before the head left (here an erroneous JSON document) still
 * sent a 200 when a producer was registered. */
Test(writer, error_before_the_head_left_stays_a_500_with_a_producer)
{
	response_t r;
	int fd = dial();
	send_all(fd, "GET /json-err-produce HTTP/1.1\r\nHost: t\r\n\r\n"
		     "GET /empty HTTP/1.1\r\nHost: t\r\n\r\n");
	read_response(fd, &r);
	cr_assert_eq(r.status, 500, "%s", r.head);
	cr_assert(has_header(&r, "\r\nContent-Length: 22\r\n"), "%s", r.head);
	expect_body(&r, "Internal Server Error\n", 22);
	read_response(fd, &r);
	cr_assert_eq(r.status, 200);
	cr_assert(has_header(&r, "\r\nContent-Length: 0\r\n"), "%s", r.head);
	close(fd);
	usleep(50000);
	cr_assert_eq(seen[6], 0);
	cr_assert_eq(seen[7], 1, "the producer is told once, with resp NULL");
	cr_assert_eq(seen[8], 0, "nothing is produced after the error");

	/* the same when the error is a refused write (past the declared length) */
	fd = dial();
	send_all(fd, "GET /refused-produce HTTP/1.1\r\nHost: t\r\n\r\n"
		     "GET /empty HTTP/1.1\r\nHost: t\r\n\r\n");
	read_response(fd, &r);
	cr_assert_eq(r.status, 500, "%s", r.head);
	expect_body(&r, "Internal Server Error\n", 22);
	read_response(fd, &r);
	cr_assert_eq(r.status, 200);
	cr_assert(has_header(&r, "\r\nContent-Length: 0\r\n"), "%s", r.head);
	close(fd);
	usleep(50000);
	cr_assert_lt(seen[1], 0);
	cr_assert_eq(seen[7], 1, "the producer is told once, with resp NULL");
	cr_assert_eq(seen[8], 0, "nothing is produced after the error");
}

/* Review defect 3: a streaming-body handler whose response already spilled (head gone)
 * then read the body: the 100 Continue was written into the middle of that response. */
Test(writer, no_100_continue_once_the_final_response_has_left)
{
	static const char *const paths[] = {"/spill-then-read-cl", "/spill-then-read"};
	for (int k = 0; k < 2; k++) {
		char req[256];
		response_t r;
		int fd = dial();
		snprintf(req, sizeof req, "POST %s HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
			 "Expect: 100-continue\r\n\r\n", paths[k]);
		send_all(fd, req);
		read_response(fd, &r);
		cr_assert_eq(r.status, 200, "%s: %s", paths[k], r.head);
		cr_assert(k == 1 || has_header(&r, "\r\nContent-Length: 40000\r\n"), "%s", r.head);
		cr_assert(k == 0 || has_header(&r, "\r\nTransfer-Encoding: chunked\r\n"), "%s",
			  r.head);
		expect_body(&r, spill_body, sizeof spill_body);
		{
			const char *rest;
			size_t n = read_to_eof(fd, &rest);
			cr_assert_eq(n, 0, "%s: bytes after the response: %.*s", paths[k],
				     (int)(n < 100 ? n : 100), rest);
		}
		cr_assert_eq(seen[0], 0);
		cr_assert_eq(seen[1], -EAGAIN);
		close(fd);
	}
}

/* Review defect 5: a declared Content-Length shorter than the body let the extra bytes out,
 * to be read as the next response (response splitting). */
Test(writer, declared_length_shorter_than_the_body_is_a_500_if_unsent)
{
	response_t r;
	int fd = dial();
	send_all(fd, "GET /cl-short HTTP/1.1\r\nHost: t\r\n\r\nGET /empty HTTP/1.1\r\nHost: t\r\n\r\n");
	read_response(fd, &r);
	cr_assert_eq(r.status, 500, "%s", r.head);
	cr_assert(has_header(&r, "\r\nContent-Length: 22\r\n"), "%s", r.head);
	expect_body(&r, "Internal Server Error\n", 22);
	read_response(fd, &r);
	cr_assert_eq(r.status, 200, "the next response is the next request's");
	cr_assert(has_header(&r, "\r\nContent-Length: 0\r\n"), "%s", r.head);
	cr_assert_eq(seen[0], 0);
	cr_assert_lt(seen[1], 0);
	cr_assert_lt(seen[2], 0);
	close(fd);
}

Test(writer, declared_length_is_enforced_after_the_head_left)
{
	static const char *const paths[] = {"/cl-late-copy", "/cl-late-ref", "/cl-late-file"};
	for (int k = 0; k < 3; k++) {
		char req[256];
		response_t r;
		int fd = dial();
		snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\n\r\n"
			 "GET /empty HTTP/1.1\r\nHost: t\r\n\r\n", paths[k]);
		send_all(fd, req);
		read_response(fd, &r);
		cr_assert_eq(r.status, 200, "%s: %s", paths[k], r.head);
		cr_assert(has_header(&r, "\r\nContent-Length: 20000\r\n"), "%s", r.head);
		expect_body(&r, spill_body, 20000);
		/* the connection is cut: not one byte past the declared length */
		{
			const char *rest;
			size_t n = read_to_eof(fd, &rest);
			cr_assert_eq(n, 0, "%s: bytes after the declared length: %.*s", paths[k],
				     (int)(n < 100 ? n : 100), rest);
		}
		cr_assert_eq(seen[0], 0);
		cr_assert_eq(seen[1], 0);
		cr_assert_lt(seen[2], 0, "%s: the write past the declared length is refused",
			     paths[k]);
		close(fd);
	}
}

/* Review defect 1: with no large buffer free, a body that outgrows the send area cannot
 * place its head; the failed stream start left a half-started stream: a crash, a body
 * without a head, or the head of an earlier pipelined response overwritten. */
Test(no_large, failed_stream_start_keeps_earlier_pipelined_responses_intact)
{
	response_t r;
	int fd = dial();
	send_all(fd, "GET /implicit HTTP/1.1\r\nHost: t\r\n\r\nGET /big HTTP/1.1\r\nHost: t\r\n\r\n");
	read_response(fd, &r);
	cr_assert_eq(r.status, 200, "%s", r.head);
	cr_assert(has_header(&r, "\r\nContent-Length: 3\r\n"), "%s", r.head);
	expect_body(&r, "abc", 3);
	expect_500_or_close(fd);
	cr_assert_lt(seen[0], 0, "the write that needed a buffer failed");
	close(fd);
	get("/implicit", &r);
	cr_assert_eq(r.status, 200, "the worker still serves");
}

Test(no_large, failed_stream_start_sends_no_body_without_a_head)
{
	static const char *const reqs[] = {
		"GET /big HTTP/1.1\r\nHost: t\r\n\r\n",
		"GET /big HTTP/1.0\r\n\r\n",
		"GET /big HTTP/1.1\r\nHost: t\r\n\r\nGET /implicit HTTP/1.1\r\nHost: t\r\n\r\n",
	};
	for (size_t k = 0; k < sizeof reqs / sizeof reqs[0]; k++) {
		response_t r;
		int fd = dial();
		send_all(fd, reqs[k]);
		expect_500_or_close(fd);
		close(fd);
		get("/implicit", &r);
		cr_assert_eq(r.status, 200, "request %zu: the worker still serves", k);
	}
}

/* Producers yield after 8 calls in a row (ZH__PRODUCE_BURST): a producer whose socket
 * always has room no longer keeps the one worker from other connections until it is done
 * (here ~0.6 s). */
static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

Test(writer, a_producer_gives_other_connections_a_turn)
{
	static char want[SLOW_CALLS * 8 + 1];
	response_t r;
	double t0, worst = 0;
	int fd = dial();
	for (unsigned i = 0; i < SLOW_CALLS; i++)
		snprintf(want + 8 * i, 9, "%07u\n", i);
	send_all(fd, "GET /slow HTTP/1.1\r\nHost: t\r\n\r\n");
	usleep(30000); /* the producer is running */
	for (int k = 0; k < 3; k++) {
		t0 = now_s();
		get("/empty", &r);
		cr_assert_eq(r.status, 200);
		if (now_s() - t0 > worst)
			worst = now_s() - t0;
	}
	cr_assert_lt(worst, 0.15, "another connection waited %.3f s for the producer", worst);
	zh_tc_forget(); /* the probes' bytes are not this connection's */
	read_response(fd, &r);
	cr_assert_eq(r.status, 200);
	expect_body(&r, want, SLOW_CALLS * 8);
	cr_assert_eq(seen[6], 0);
	close(fd);
}

/* Found by tests/fuzz/fuzz_range.c: an If-Modified-Since / If-Range date that is not a valid
 * IMF-fixdate was normalized by timegm into some other date instead of being ignored (RFC
 * 9110 §13.1.3), and a file time beyond a 4-digit year (tmpfs takes any 64-bit mtime) left
 * gmtime_r's result unset, so Last-Modified indexed the day and month names with garbage. */
Test(http_date, only_valid_dates_parse_and_any_time_formats)
{
	static const char *const bad[] = {
		"Sun, 32 Nov 1994 08:49:37 GMT", "Sun, 06 Ja  1994 08:49:37 GMT",
		"Sun, 31 Feb 1994 08:49:37 GMT", "Sun, 06 Nov 1994 24:00:00 GMT",
		"Sun,  6 Nov 1994 08:49:37 GMT", "Sun, +6 Nov 1994 08:49:37 GMT",
		"Xyz, 06 Nov 1994 08:49:37 GMT", "Sun; 06 Nov 1994 08:49:37 GMT"};
	time_t t;
	char out[30];
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		cr_expect_not(zh__http_date_parse(bad[i], 29, 0, &t), "%s", bad[i]);
	cr_assert(zh__http_date_parse("Sun, 06 Nov 1994 08:49:37 GMT", 29, 0, &t));
	cr_expect_eq(t, 784111777);
	cr_assert(zh__http_date_parse("Mon, 06 Nov 1994 08:49:37 GMT", 29, 0, &t),
		  "a wrong day name is still a date");
	cr_expect_eq(zh__http_date((time_t)1 << 62, out), 29);
	cr_expect_arr_eq(out, "Fri, 31 Dec 9999 23:59:59 GMT", 29);
	cr_expect_eq(zh__http_date(-((time_t)1 << 62), out), 29);
	cr_expect_arr_eq(out, "Sat, 01 Jan 0000 00:00:00 GMT", 29);
}

static bool date_is(const char *s, time_t now, time_t want)
{
	time_t t = -1;
	return zh__http_date_parse(s, strlen(s), now, &t) && t == want;
}

/* RFC 9110 §5.6.7: recipients MUST accept all three HTTP-date forms; a two-digit rfc850 year
 * more than 50 years ahead of the clock is in the past century. */
Test(http_date, obsolete_rfc850_and_asctime_forms)
{
	static const char *const bad[] = {
		"Sunday, 32-Nov-94 08:49:37 GMT", "Sunday, 06-Nov-1994 08:49:37 GMT",
		"Sun, 06-Nov-94 08:49:37 GMT",	  "Sunday, 6-Nov-94 08:49:37 GMT",
		"Sunday, 06 Nov 94 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 UTC",
		"Sunday, 31-Feb-94 08:49:37 GMT", "Sundae, 06-Nov-94 08:49:37 GMT",
		"sunday, 06-Nov-94 08:49:37 GMT", "Sunday, 06-nov-94 08:49:37 GMT",
		"Sun Nov 32 08:49:37 1994",	  "Sun Nov 6 08:49:37 1994",
		"Sun Nov  6 08:49:37 94",	  "Sun Nov  6 08:49:37 1994 ",
		"Sun Nov  6 08:49:37 1994 GMT",	  "Sunday Nov  6 08:49:37 1994",
		"Sun Nov  6 25:49:37 1994",	  "Sun Nov -6 08:49:37 1994",
		"Sun Feb 30 08:49:37 1994",	  "Sun, 06 Nov 94 08:49:37 GMT"};
	const time_t y2026 = 1796601600; /* 2026-12-07 */
	time_t t;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		cr_expect_not(zh__http_date_parse(bad[i], strlen(bad[i]), y2026, &t), "%s", bad[i]);
	cr_expect(date_is("Sunday, 06-Nov-94 08:49:37 GMT", y2026, 784111777));
	cr_expect(date_is("Wednesday, 06-Nov-94 08:49:37 GMT", y2026, 784111777),
		  "any day name, the longest one too");
	cr_expect(date_is("Sun Nov  6 08:49:37 1994", y2026, 784111777));
	cr_expect(date_is("Sun Nov 06 08:49:37 1994", y2026, 784111777), "date3: 2DIGIT");
	cr_expect(date_is("Thu Jan  1 00:00:00 1970", y2026, 0));
	/* two-digit years at 2026: 76 is 2076 (50 years ahead), 77 is 1977 */
	cr_expect(date_is("Tuesday, 01-Jan-76 00:00:00 GMT", y2026, 3345062400));
	cr_expect(date_is("Saturday, 01-Jan-77 00:00:00 GMT", y2026, 220924800));
	cr_expect(date_is("Monday, 01-Jan-25 00:00:00 GMT", y2026, 1735689600));
	/* at 1994, "25" is 1925: the current century, as that is not in the future */
	cr_expect(date_is("Thursday, 01-Jan-25 00:00:00 GMT", 784111777, -1420070400));
	cr_expect(date_is("Sunday, 06-Nov-94 08:49:37 GMT", 784111777, 784111777));
}

/* Found by tests/fuzz/fuzz_range.c: HTAB is OWS too (RFC 9110 §5.6.3), but a coding next to
 * one went unrecognized, so "*" applied to it: "*, gzip\t;q=0" got gzip (static files and
 * the gzip middleware both ask zh__coding_q). */
Test(coding_q, htab_is_whitespace)
{
	static const char *const refused[] = {"*, gzip\t;q=0", "*,\tgzip;q=0", "*;q=1,\tgzip\t; q=0"};
	for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
		cr_expect_eq(zh__coding_q((zh_slice_t){refused[i], strlen(refused[i])}, "gzip"), 0,
			     "%s", refused[i]);
	cr_expect_eq(zh__coding_q((zh_slice_t){"br\t;q=0.5", 9}, "br"), 500);
	cr_expect_eq(zh__coding_q((zh_slice_t){"deflate,\tbr", 11}, "br"), 1000);
}

/* ---- multipart boundaries ------------------------------------------------------------------ */

static zh_static_t *boundary_st;
static char boundary_dir[64];

static void setup_boundary(void)
{
	zh_config_t cfg;
	zh_static_options_t o;
	char path[96];
	FILE *f;
	int err = 0;
	snprintf(boundary_dir, sizeof boundary_dir, "/tmp/zh_boundary_%d", (int)getpid());
	cr_assert_eq(mkdir(boundary_dir, 0700), 0);
	snprintf(path, sizeof path, "%s/f.txt", boundary_dir);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs("0123456789abcdefghij", f);
	cr_assert_eq(fclose(f), 0);
	zh_config_init(&cfg);
	cfg.port = 0;
	cfg.workers = 1;
	srv = zh_server_new(&cfg, &err);
	cr_assert_not_null(srv, "zh_server_new: %d", err);
	zh_static_options_init(&o);
	o.root = boundary_dir;
	boundary_st = zh_static_new(srv, &o, &err);
	cr_assert_not_null(boundary_st, "zh_static_new: %d", err);
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/", ZH_ROUTE_PREFIX, zh_static_handler,
				     boundary_st), 0);
	zh_tc_forget();
	cr_assert_eq(pthread_create(&runner, NULL, zh_tc_run, srv), 0);
}

static void teardown_boundary(void)
{
	char path[96];
	teardown();
	zh_static_free(boundary_st);
	snprintf(path, sizeof path, "%s/f.txt", boundary_dir);
	unlink(path);
	rmdir(boundary_dir);
}

TestSuite(boundary, .init = setup_boundary, .fini = teardown_boundary, .timeout = 20);

/* The boundary of the n-th multipart response of a fresh worker (n from 1). */
static uint64_t next_boundary(int fd)
{
	response_t r;
	const char *b;
	send_all(fd, "GET /f.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=0-1,5-6\r\n\r\n");
	read_response(fd, &r);
	cr_assert_eq(r.status, 206);
	b = strstr(r.head, "multipart/byteranges; boundary=zh");
	cr_assert_not_null(b, "%s", r.head);
	return strtoull(b + 33, NULL, 16);
}

Test(boundary, boundaries_differ_and_reveal_no_address)
{
	const uint64_t k = 0x9e3779b97f4a7c15u; /* the old derivation's multiplier */
	uint64_t b[32];
	int fd = dial();
	for (int i = 0; i < 32; i++) {
		b[i] = next_boundary(fd);
		for (int j = 0; j < i; j++)
			cr_assert_neq(b[i], b[j], "responses %d and %d share a boundary", j, i);
	}
	close(fd);
	/* The old boundary was n * k ^ (address of the file's cache entry): undoing the known
	 * part of two of them gave the same value, the address. Nothing such may remain: no
	 * two responses for the same entry may unmask to one value. */
	for (int i = 1; i < 32; i++)
		cr_assert_neq(b[0] ^ k, b[i] ^ ((uint64_t)(i + 1) * k),
			      "boundaries 1 and %d unmask to the same word (an address)", i + 1);
}

/* ---- listening: a busy port is refused unless both sides ask to share it ------------------ */

static zh_server_t *listen_on(uint16_t port, int reuse_port, int *err)
{
	zh_config_t cfg;
	zh_config_init(&cfg);
	cfg.port = port;
	cfg.workers = 2;
	cfg.io_contexts = 4;
	cfg.max_connections = 8;
	cfg.reuse_port = reuse_port;
	*err = 0;
	return zh_server_new(&cfg, err);
}

Test(listen, second_server_on_the_port_is_eaddrinuse)
{
	int err;
	zh_server_t *a = listen_on(0, 0, &err), *b;
	cr_assert_not_null(a, "zh_server_new: %d", err);
	cr_assert_neq(zh_server_port(a), 0);
	b = listen_on(zh_server_port(a), 0, &err);
	cr_expect_null(b, "a second server joined the first one's port");
	cr_expect_eq(err, -EADDRINUSE, "err %d", err);
	zh_server_free(b);
	zh_server_free(a);
}

/* Any socket of this user with SO_REUSEPORT (not only another zh_server) */
Test(listen, foreign_reuseport_socket_is_eaddrinuse)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof sin;
	int one = 1, err, fd = socket(AF_INET, SOCK_STREAM, 0);
	zh_server_t *b;
	cr_assert_geq(fd, 0);
	cr_assert_eq(setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one), 0);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
	cr_assert_eq(listen(fd, 16), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	b = listen_on(ntohs(sin.sin_port), 0, &err);
	cr_expect_null(b);
	cr_expect_eq(err, -EADDRINUSE, "err %d", err);
	zh_server_free(b);
	close(fd);
}

Test(listen, reuse_port_on_both_shares)
{
	int err;
	zh_server_t *a = listen_on(0, 1, &err), *b;
	cr_assert_not_null(a, "zh_server_new: %d", err);
	b = listen_on(zh_server_port(a), 1, &err);
	cr_expect_not_null(b, "zh_server_new with reuse_port on a shared port: %d", err);
	zh_server_free(b);
	zh_server_free(a);
}

/* The failed zh_server_new above must not have closed descriptors it did not own. */
Test(listen, failure_closes_nothing_of_the_caller)
{
	int err, fd = dup(0);
	zh_server_t *a = listen_on(0, 0, &err), *b;
	cr_assert_geq(fd, 0);
	cr_assert_not_null(a);
	b = listen_on(zh_server_port(a), 0, &err);
	cr_expect_null(b);
	cr_expect_neq(fcntl(0, F_GETFD), -1, "zh_server_new closed fd 0");
	zh_server_free(b);
	zh_server_free(a);
	close(fd);
}

/* A separate monitoring server's /readyz reports the drain of the server it watches. */
Test(listen, readyz_reports_the_watched_servers_drain, .timeout = 20)
{
	int err;
	response_t r;
	zh_server_t *watched = listen_on(0, 0, &err);
	cr_assert_not_null(watched);
	srv = listen_on(0, 0, &err);
	cr_assert_not_null(srv);
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/readyz", 0, zh_readyz_handler, watched), 0);
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/alone", 0, zh_readyz_handler, NULL), 0);
	cr_assert_eq(pthread_create(&runner, NULL, zh_tc_run, srv), 0);
	get("/readyz", &r);
	cr_expect_eq(r.status, 200);
	zh_server_stop(watched);
	get("/readyz", &r);
	cr_expect_eq(r.status, 503);
	get("/alone", &r);
	cr_expect_eq(r.status, 200, "NULL: only its own server's drain counts");
	zh_server_stop(srv);
	pthread_join(runner, NULL);
	zh_server_free(srv);
	zh_server_free(watched);
}

/* ---- zh_server_ping: the watchdog's liveness check ----------------------------------------- */

/* Every loop answers; a handler blocking the (only) worker makes the ping time out, and
 * the loop answers again once the handler has returned. */
Test(writer, ping_fails_while_a_handler_blocks_the_worker)
{
	response_t r;
	int fd;
	cr_assert_eq(zh_server_ping(srv, 2000), 0);
	fd = dial();
	send_all(fd, "GET /block HTTP/1.1\r\nHost: t\r\n\r\n");
	usleep(100000); /* the handler sleeps until 400 ms */
	cr_assert_eq(zh_server_ping(srv, 100), -ETIMEDOUT);
	read_response(fd, &r);
	cr_assert_eq(r.status, 200);
	cr_assert_eq(zh_server_ping(srv, 2000), 0);
	close(fd);
}

/* ---- zh_status_reason: the status line's phrase, for applications ------------------------- */

/* The public phrase is the one the status lines carry (zh__status_reason reads it out of
 * them), for every status; "" where they carry none. */
Test(status_reason, the_phrase_of_the_status_line)
{
	cr_expect_str_eq(zh_status_reason(200), "OK");
	cr_expect_str_eq(zh_status_reason(404), "Not Found");
	cr_expect_str_eq(zh_status_reason(413), "Content Too Large");
	cr_expect_str_eq(zh_status_reason(504), "Gateway Timeout");
	for (int s = -1; s <= 1000; s++) {
		size_t len;
		const char *line = zh__status_reason(s, &len), *pub = zh_status_reason(s);
		cr_assert_not_null(pub);
		cr_expect(strlen(pub) == len && memcmp(pub, line, len) == 0, "status %d: %s", s,
			  pub);
	}
	cr_expect_str_eq(zh_status_reason(299), "");
	cr_expect_str_eq(zh_status_reason(-2147483647 - 1), "");
}
