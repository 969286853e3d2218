/* test_proto.c — the protocol seam (zh__proto_t, internal.h) with a second implementation:
 * a test double that records every call and writes its own wire format ("DBL status",
 * one "name=value" line per header, a blank line, the raw body, "<END>" after a streamed
 * body), so any HTTP/1 byte in the answer would be the exchange layer framing behind the
 * protocol's back. The writer API (zh_reply, zh_write through a producer, commit hooks
 * adding headers) must go through it whole. A real server in this process on 127.0.0.1,
 * as in test_ext.c; the double closes every connection after its response.
 */
#include <criterion/criterion.h>

#include "internal.h"
#include "zh_test_client.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

/* ---- the double ------------------------------------------------------------------------ */

static atomic_ulong n_whole, n_stream, n_boundary, n_rebase, n_end, n_send_end;
static atomic_ulong boundary_bytes; /* body bytes the boundaries covered */
static atomic_ulong n_body_start, n_body_feed, n_body_read;

/* "DBL <status> <what>\n" and the header fields as the exchange layer stored them. */
static bool put_head(zh_response_t *resp, const char *what)
{
	zh__ctx_t *ctx = resp->ctx;
	char head[1024];
	int n = snprintf(head, sizeof head, "DBL %d %s\n", resp->status, what);
	zh_slice_t name, value;
	char *p;
	for (unsigned i = 0; zh_resp_header_at(resp, i, &name, &value) == 1; i++)
		n += snprintf(head + n, sizeof head - (size_t)n, "%.*s=%.*s\n", (int)name.len,
			      name.ptr, (int)value.len, value.ptr);
	n += snprintf(head + n, sizeof head - (size_t)n, "\n");
	cr_assert_lt((size_t)n, sizeof head);
	p = zh__out_reserve(ctx, (size_t)n);
	if (p == NULL)
		return false;
	memcpy(p, head, (size_t)n);
	ctx->iov[resp->head_slot].iov_base = p;
	ctx->iov[resp->head_slot].iov_len = (size_t)n;
	resp->close = true; /* one exchange per connection: the client reads to EOF */
	return true;
}

static bool dbl_head_whole(zh_response_t *resp)
{
	char what[32];
	atomic_fetch_add(&n_whole, 1);
	snprintf(what, sizeof what, "len=%llu", (unsigned long long)resp->body_len);
	return put_head(resp, what);
}

static int dbl_head_stream(zh_response_t *resp)
{
	atomic_fetch_add(&n_stream, 1);
	resp->framed_len = resp->body_len;
	return put_head(resp, "stream") ? 0 : -ENOBUFS;
}

static void dbl_boundary(zh_response_t *resp)
{
	atomic_fetch_add(&n_boundary, 1);
	atomic_fetch_add(&boundary_bytes, resp->body_len - resp->framed_len);
	resp->framed_len = resp->body_len;
}

static void dbl_rebase(zh_response_t *resp)
{
	int r = zh__out_push(resp->ctx, NULL, 0, NULL, NULL);
	atomic_fetch_add(&n_rebase, 1);
	if (r < 0)
		resp->error = true;
	else
		resp->head_slot = (uint16_t)r;
}

static bool dbl_body_end(zh_response_t *resp)
{
	static const char end[] = "<END>\n";
	atomic_fetch_add(&n_end, 1);
	dbl_boundary(resp);
	return resp->error || zh__out_push(resp->ctx, end, sizeof end - 1, NULL, NULL) < 0;
}

static uint16_t dbl_send_end(const zh__ctx_t *ctx, uint16_t end)
{
	(void)ctx;
	atomic_fetch_add(&n_send_end, 1);
	return end;
}

/* The request side keeps HTTP/1's framing (the requests are HTTP/1), counted: the exchange
 * layer must reach it only through the seam. */
static int dbl_body_start(zh__ctx_t *ctx)
{
	atomic_fetch_add(&n_body_start, 1);
	return zh__h1_body_start(ctx);
}

static int dbl_body_feed(zh__ctx_t *ctx)
{
	atomic_fetch_add(&n_body_feed, 1);
	return zh__h1_body_feed(ctx);
}

static ssize_t dbl_body_read(zh_request_t *req, char *buf, size_t cap)
{
	atomic_fetch_add(&n_body_read, 1);
	return zh__h1_body_read(req, buf, cap);
}

static const zh__proto_t dbl = {
	.name = "test-double",
	.head_whole = dbl_head_whole,
	.head_stream = dbl_head_stream,
	.boundary = dbl_boundary,
	.rebase = dbl_rebase,
	.body_end = dbl_body_end,
	.send_end = dbl_send_end,
	.body_start = dbl_body_start,
	.body_feed = dbl_body_feed,
	.body_read = dbl_body_read,
};

/* ---- the server -------------------------------------------------------------------------- */

static zh_server_t *srv;
static pthread_t runner;

static void *run(void *arg)
{
	(void)arg;
	(void)!zh_server_run(srv);
	return NULL;
}

static void h_hello(zh_request_t *req, zh_response_t *resp, void *arg)
{
	(void)req;
	(void)arg;
	cr_assert_eq(zh_reply(resp, 200, "text/plain", "hello\n", 6), 0);
}

/* 30 pieces of 1000 bytes; large enough to leave in several boundaries. */
static int produce(zh_response_t *resp, void *arg)
{
	static char piece[1000];
	(void)arg;
	if (resp == NULL)
		return ZH_PRODUCE_DONE;
	memset(piece, 'a' + (int)(zh_resp_body_len(resp) / 1000 % 26), sizeof piece);
	if (zh_write(resp, piece, sizeof piece) < 0)
		return -EIO;
	return zh_resp_body_len(resp) < 30000 ? ZH_PRODUCE_MORE : ZH_PRODUCE_DONE;
}

static void h_big(zh_request_t *req, zh_response_t *resp, void *arg)
{
	(void)req;
	(void)arg;
	cr_assert_eq(zh_resp_header_set(resp, "X-Kind", "produced"), 0);
	cr_assert_eq(zh_resp_produce(resp, produce, NULL), 0);
}

static void h_echo(zh_request_t *req, zh_response_t *resp, void *arg)
{
	zh_slice_t body;
	(void)arg;
	cr_assert_eq(zh_body_all(req, &body), 0);
	cr_assert_eq(zh_reply(resp, 200, "text/plain", body.ptr, body.len), 0);
}

/* A streaming route: counts the body bytes zh_body_read hands out, then answers the count. */
static void h_count(zh_request_t *req, zh_response_t *resp, void *arg)
{
	uint64_t *total = zh_resp_state(resp);
	char buf[64];
	ssize_t n;
	if (arg == NULL)
		*total = 0; /* the first call; continuations pass a non-NULL arg */
	while ((n = zh_body_read(req, buf, sizeof buf)) > 0)
		*total += (uint64_t)n;
	if (n == -EAGAIN) {
		cr_assert_eq(zh_body_wait(req, h_count, (void *)1), 0);
		return;
	}
	cr_assert_eq(n, 0);
	n = snprintf(buf, sizeof buf, "%llu", (unsigned long long)*total);
	cr_assert_eq(zh_reply(resp, 200, "text/plain", buf, (size_t)n), 0);
}

/* A middleware's commit hook adds a header: it reaches the protocol like the handler's. */
static void mw_commit(zh_response_t *resp, void *arg)
{
	(void)arg;
	cr_assert_eq(zh_resp_header_set(resp, "X-Mw", "seen"), 0);
}

static void setup(void)
{
	zh_config_t cfg;
	zh_middleware_t mw = {.commit = mw_commit};
	int err = 0;
	cr_assert_eq(zh__proto_install(&dbl), 0);
	zh_config_init(&cfg);
	cfg.port = 0;
	cfg.workers = 1;
	cfg.io_contexts = 8;
	cfg.max_connections = 64;
	cfg.large_buffers = 8;
	srv = zh_server_new(&cfg, &err);
	cr_assert_not_null(srv, "zh_server_new: %d", err);
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/hello", 0, h_hello, NULL), 0);
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/big", 0, h_big, NULL), 0);
	cr_assert_eq(zh_server_route(srv, ZH_POST, "/echo", 0, h_echo, NULL), 0);
	cr_assert_eq(zh_server_route(srv, ZH_POST, "/count", ZH_ROUTE_STREAM_BODY, h_count, NULL),
		     0);
	cr_assert_eq(zh_server_use(srv, &mw), 0);
	cr_assert_eq(pthread_create(&runner, NULL, run, NULL), 0);
}

static void teardown(void)
{
	if (srv) {
		zh_server_stop(srv);
		pthread_join(runner, NULL);
		zh_server_free(srv);
		srv = NULL;
	}
	cr_assert_eq(zh__proto_install(NULL), 0);
}

TestSuite(proto, .init = setup, .fini = teardown, .timeout = 30);

static size_t fetch(const char *req, char *buf, size_t cap)
{
	int fd = zh_tc_connect(zh_server_port(srv), 10, 0);
	size_t len = 0;
	ssize_t n;
	send_all(fd, req);
	while (len < cap - 1 && (n = read(fd, buf + len, cap - 1 - len)) > 0)
		len += (size_t)n;
	close(fd);
	buf[len] = '\0';
	return len;
}

/* A whole response: one head_whole call with the exact length and every header the
 * handler and the middleware set; the body after it as queued; nothing of HTTP/1. */
Test(proto, whole_response_through_the_protocol)
{
	static char buf[2048];
	unsigned long w0 = atomic_load(&n_whole), s0 = atomic_load(&n_stream);
	fetch("GET /hello HTTP/1.1\r\nHost: a\r\n\r\n", buf, sizeof buf);
	cr_assert_eq(strncmp(buf, "DBL 200 len=6\n", 14), 0, "%s", buf);
	cr_assert_not_null(strstr(buf, "\nContent-Type=text/plain\n"), "%s", buf);
	cr_assert_not_null(strstr(buf, "\nX-Mw=seen\n"), "%s", buf);
	cr_assert_not_null(strstr(buf, "\n\nhello\n"), "%s", buf);
	cr_assert_null(strstr(buf, "HTTP/1.1"), "HTTP/1 framing leaked: %s", buf);
	cr_assert_null(strstr(buf, "Content-Length"), "%s", buf);
	cr_assert_eq(atomic_load(&n_whole) - w0, 1);
	cr_assert_eq(atomic_load(&n_stream) - s0, 0);
}

/* A produced body: the head through head_stream, the body through boundaries that cover
 * every byte, the end through body_end; no chunk line anywhere. */
Test(proto, streamed_response_through_the_protocol)
{
	static char buf[65536];
	unsigned long s0 = atomic_load(&n_stream), e0 = atomic_load(&n_end),
		      b0 = atomic_load(&n_boundary), bb0 = atomic_load(&boundary_bytes);
	const char *body;
	size_t len = fetch("GET /big HTTP/1.1\r\nHost: a\r\n\r\n", buf, sizeof buf);
	cr_assert_eq(strncmp(buf, "DBL 200 stream\n", 15), 0, "%.300s", buf);
	cr_assert_not_null(strstr(buf, "\nX-Kind=produced\n"), "%.300s", buf);
	cr_assert_not_null(strstr(buf, "\nX-Mw=seen\n"), "%.300s", buf);
	cr_assert_null(strstr(buf, "Transfer-Encoding"), "%.300s", buf);
	body = strstr(buf, "\n\n");
	cr_assert_not_null(body);
	body += 2;
	cr_assert_eq(len - (size_t)(body - buf), 30000 + 6, "body and <END>: %zu",
		     len - (size_t)(body - buf));
	for (size_t i = 0; i < 30000; i++)
		cr_assert_eq(body[i], 'a' + (int)(i / 1000 % 26), "byte %zu", i);
	cr_assert_str_eq(body + 30000, "<END>\n");
	cr_assert_eq(atomic_load(&n_stream) - s0, 1);
	cr_assert_eq(atomic_load(&n_end) - e0, 1);
	cr_assert_gt(atomic_load(&n_boundary) - b0, 1);
	cr_assert_eq(atomic_load(&boundary_bytes) - bb0, 30000);
	cr_assert_gt(atomic_load(&n_send_end), 0); /* asked how much of the queue may go */
}

/* Request bodies: a buffered one (Content-Length) through body_start, a streamed chunked
 * one through body_read; the handlers see the same bytes as over HTTP/1. */
Test(proto, request_bodies_through_the_protocol)
{
	static char buf[4096];
	fetch("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world", buf,
	      sizeof buf);
	cr_assert_eq(strncmp(buf, "DBL 200 len=11\n", 15), 0, "%s", buf);
	cr_assert_not_null(strstr(buf, "\n\nhello world"), "%s", buf);
	cr_assert_geq(atomic_load(&n_body_start), 1);
	fetch("POST /count HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
	      "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
	      buf, sizeof buf);
	cr_assert_eq(strncmp(buf, "DBL 200 len=2\n", 14), 0, "%s", buf);
	cr_assert_not_null(strstr(buf, "\n\n11"), "%s", buf);
	cr_assert_geq(atomic_load(&n_body_read), 2); /* the bytes, then the end */
}

/* HTTP/1.1 is the default again after install(NULL); the table keeps the double. */
Test(proto, install_and_default)
{
	cr_assert_eq(zh__protos[zh__proto_default], &dbl);
	cr_assert_eq(zh__proto_install(NULL), 0);
	cr_assert_eq(zh__proto_default, 0);
	cr_assert_eq(zh__protos[0], &zh__proto_http1);
	cr_assert_eq(zh__proto_install(&dbl), 0);
	cr_assert_eq(zh__protos[zh__proto_default], &dbl);
}
