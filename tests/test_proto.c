/* test_proto.c — the protocol seam (zh__proto_t, internal.h) with a second implementation:
 * a test double that records every call and writes its own wire format ("DBL status",
 * one "name=value" line per header, a blank line, the raw body, "<END>" after a streamed
 * body), so any HTTP/1 byte in the answer would be the exchange layer framing behind the
 * protocol's back. The writer API (zh_reply, zh_write through a producer, commit hooks
 * adding headers) must go through it whole. Requests are in the double's format too
 * ("DREQ METHOD target", one "name=value" line per header, a blank line, the body;
 * "len=N", "te=chunked" and "expect=100" frame the body), parsed by its `request`; its
 * interim 100 is "DBL 100". A real server in this process on 127.0.0.1, as in test_ext.c;
 * the double closes every connection after its response.
 */
#include <criterion/criterion.h>

#include "internal.h"
#include "zh_test_client.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the double ------------------------------------------------------------------------ */

static atomic_ulong n_whole, n_stream, n_boundary, n_rebase, n_end, n_send_end;
static atomic_ulong boundary_bytes; /* body bytes the boundaries covered */
static atomic_ulong n_body_start, n_body_feed, n_body_read;
static atomic_ulong n_request, n_interim;

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

/* ---- the double's requests -------------------------------------------------------------- */

static zh__span_t span_of(const char *base, const char *p, size_t len)
{
	return (zh__span_t){(uint32_t)(p - base), (uint32_t)len};
}

static bool name_is(const char *base, zh__span_t s, const char *name)
{
	return s.len == strlen(name) && memcmp(base + s.off, name, s.len) == 0;
}

/* One header line "name=value" into the head; its framing fields set the body's framing. */
static int dbl_field(zh__ctx_t *ctx, const char *base, const char *p, const char *nl,
		     const zh__limits_t *lim)
{
	zh__head_t *h = &ctx->req.h;
	const char *eq = memchr(p, '=', (size_t)(nl - p));
	zh__field_t *f;
	if (eq == NULL || h->nfields == lim->max_headers)
		return -400;
	f = &ctx->fields[h->nfields++];
	f->name = span_of(base, p, (size_t)(eq - p));
	f->value = span_of(base, eq + 1, (size_t)(nl - eq - 1));
	if (name_is(base, f->name, "len")) {
		h->content_length = strtoull(eq + 1, NULL, 10);
		h->flags |= ZH__H_CL;
	} else if (name_is(base, f->name, "te")) {
		h->flags |= ZH__H_CHUNKED;
	} else if (name_is(base, f->name, "expect")) {
		h->flags |= ZH__H_EXPECT_CONTINUE;
	} else if (name_is(base, f->name, "Host")) {
		h->host = f->value;
		h->flags |= ZH__H_HOST;
	}
	return 0;
}

/* "DREQ METHOD target\n" "name=value\n"... "\n": the whole head or nothing (no state kept
 * between calls); anything else is refused with 400, HTTP/1 included. */
static int dbl_request(zh__ctx_t *ctx, const zh__limits_t *lim)
{
	zh__head_t *h = &ctx->req.h;
	const char *base = ctx->rbuf + ctx->rstart, *end = ctx->rbuf + ctx->rlen;
	const char *p = base, *nl, *sp, *q;
	atomic_fetch_add(&n_request, 1);
	memset(h, 0, sizeof *h);
	if ((size_t)(end - p) < 5)
		return memcmp(p, "DREQ ", (size_t)(end - p)) == 0 ? 0 : -400;
	if (memcmp(p, "DREQ ", 5) != 0)
		return -400;
	for (nl = p; (nl = memchr(nl, '\n', (size_t)(end - nl))) != NULL; nl++)
		if (nl + 1 < end && nl[1] == '\n')
			break;
	if (nl == NULL)
		return 0;
	h->head_len = (uint32_t)(nl + 2 - base);
	p += 5;
	nl = memchr(p, '\n', (size_t)(end - p));
	sp = memchr(p, ' ', (size_t)(nl - p));
	if (sp == NULL || sp == p || sp + 1 == nl || sp[1] != '/')
		return -400;
	h->method = span_of(base, p, (size_t)(sp - p));
	h->method_bit = name_is(base, h->method, "GET")	   ? ZH_GET
			: name_is(base, h->method, "POST") ? ZH_POST
							   : 0;
	h->minor = 1;
	h->target = span_of(base, sp + 1, (size_t)(nl - sp - 1));
	q = memchr(sp + 1, '?', (size_t)(nl - sp - 1));
	h->path = span_of(base, sp + 1, (size_t)((q ? q : nl) - sp - 1));
	if (q)
		h->query = span_of(base, q + 1, (size_t)(nl - q - 1));
	for (p = nl + 1; *p != '\n'; p = nl + 1) {
		int r;
		nl = memchr(p, '\n', (size_t)(end - p));
		r = dbl_field(ctx, base, p, nl, lim);
		if (r < 0)
			return r;
	}
	return (int)h->head_len;
}

/* "DBL 100\n", ahead of the final head; a streaming route's goes in its interim slot. */
static void dbl_interim_100(zh__ctx_t *ctx)
{
	static const char line[] = "DBL 100\n";
	atomic_fetch_add(&n_interim, 1);
	if (ctx->req.stream) {
		ctx->iov[ctx->resp.interim_slot].iov_base = (void *)(uintptr_t)line;
		ctx->iov[ctx->resp.interim_slot].iov_len = sizeof line - 1;
	} else {
		cr_assert_geq(zh__out_push(ctx, line, sizeof line - 1, NULL, NULL), 0);
	}
}

/* The request body keeps HTTP/1's framing (Content-Length or chunked; the double's head
 * sets it), counted: the exchange layer must reach it only through the seam. */
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
	.request = dbl_request,
	.interim_100 = dbl_interim_100,
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

/* What the request looks like to a handler: parsed by the double, seen through the API. */
static void h_req(zh_request_t *req, zh_response_t *resp, void *arg)
{
	char out[256];
	zh_slice_t m = zh_req_method(req), p = zh_req_path(req), q = zh_req_query(req),
		   host = zh_req_host(req), tag = {"-", 1};
	int n;
	(void)arg;
	(void)zh_req_header(req, "X-Tag", &tag); /* absent: "-" stays */
	n = snprintf(out, sizeof out, "m=%.*s p=%.*s q=%.*s h=%.*s x=%.*s v=%d", (int)m.len,
		     m.ptr, (int)p.len, p.ptr, (int)q.len, q.ptr, (int)host.len, host.ptr,
		     (int)tag.len, tag.ptr, zh_req_version(req));
	cr_assert_eq(zh_reply(resp, 200, "text/plain", out, (size_t)n), 0);
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
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/req", 0, h_req, NULL), 0);
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
	size_t len;
	send_all(fd, req);
	len = zh_tc_read_to_close(fd, buf, cap);
	close(fd);
	return len;
}

/* A whole response: one head_whole call with the exact length and every header the
 * handler and the middleware set; the body after it as queued; nothing of HTTP/1. */
Test(proto, whole_response_through_the_protocol)
{
	static char buf[2048];
	unsigned long w0 = atomic_load(&n_whole), s0 = atomic_load(&n_stream);
	fetch("DREQ GET /hello\nHost=a\n\n", buf, sizeof buf);
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
	size_t len = fetch("DREQ GET /big\nHost=a\n\n", buf, sizeof buf);
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
	fetch("DREQ POST /echo\nHost=a\nlen=11\n\nhello world", buf,
	      sizeof buf);
	cr_assert_eq(strncmp(buf, "DBL 200 len=11\n", 15), 0, "%s", buf);
	cr_assert_not_null(strstr(buf, "\n\nhello world"), "%s", buf);
	cr_assert_geq(atomic_load(&n_body_start), 1);
	fetch("DREQ POST /count\nHost=a\nte=chunked\n\n"
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

/* The request reaches the handler through the double's `request`: method, path, query,
 * host and a header field as the double parsed them from its own format. */
Test(proto, request_through_the_protocol)
{
	static char buf[2048];
	unsigned long r0 = atomic_load(&n_request);
	fetch("DREQ GET /req?a=1&b=2\nHost=example\nX-Tag=t1\n\n", buf, sizeof buf);
	cr_assert_eq(strncmp(buf, "DBL 200 ", 8), 0, "%s", buf);
	cr_assert_not_null(strstr(buf, "\n\nm=GET p=/req q=a=1&b=2 h=example x=t1 v=11"), "%s",
			   buf);
	cr_assert_geq(atomic_load(&n_request) - r0, 1);
}

/* The connection layer parses nothing itself: an HTTP/1 request is not the double's
 * format, so the double refuses it (the refusal in the double's wire format too). */
Test(proto, http1_request_refused_by_the_double)
{
	static char buf[2048];
	unsigned long r0 = atomic_load(&n_request);
	fetch("GET /hello HTTP/1.1\r\nHost: a\r\n\r\n", buf, sizeof buf);
	cr_assert_eq(strncmp(buf, "DBL 400 ", 8), 0, "%s", buf);
	cr_assert_null(strstr(buf, "hello"), "%s", buf);
	cr_assert_geq(atomic_load(&n_request) - r0, 1);
}

/* Sends head, waits for the double's interim line alone, then sends the body and reads the
 * final response to EOF. */
static void expect_continue(const char *head, const char *body, char *buf, size_t cap)
{
	int fd = zh_tc_connect(zh_server_port(srv), 10, 0);
	size_t len = 0;
	ssize_t n;
	send_all(fd, head);
	while (len < 8 && (n = read(fd, buf + len, 8 - len)) > 0)
		len += (size_t)n;
	cr_assert_eq(len, 8);
	cr_assert_eq(memcmp(buf, "DBL 100\n", 8), 0, "%.8s", buf);
	send_all(fd, body);
	while (len < cap - 1 && (n = read(fd, buf + len, cap - 1 - len)) > 0)
		len += (size_t)n;
	close(fd);
	buf[len] = '\0';
}

/* 100 Continue goes through the protocol's interim_100 for a buffered route (before its
 * response begins) and a streaming one (its interim slot, while the handler waits). */
Test(proto, continue_through_the_protocol)
{
	static char buf[4096];
	unsigned long i0 = atomic_load(&n_interim);
	expect_continue("DREQ POST /echo\nHost=a\nlen=5\nexpect=100\n\n", "hello", buf,
			sizeof buf);
	cr_assert_eq(strncmp(buf, "DBL 100\nDBL 200 len=5\n", 22), 0, "%s", buf);
	cr_assert_not_null(strstr(buf, "\n\nhello"), "%s", buf);
	cr_assert_null(strstr(buf, "HTTP/1.1"), "%s", buf);
	cr_assert_eq(atomic_load(&n_interim) - i0, 1);
	expect_continue("DREQ POST /count\nHost=a\nlen=6\nexpect=100\n\n", "abcdef", buf,
			sizeof buf);
	cr_assert_eq(strncmp(buf, "DBL 100\nDBL 200 len=1\n", 22), 0, "%s", buf);
	cr_assert_not_null(strstr(buf, "\n\n6"), "%s", buf);
	cr_assert_null(strstr(buf, "HTTP/1.1"), "%s", buf);
	cr_assert_eq(atomic_load(&n_interim) - i0, 2);
}

/* ---- a multiplexing protocol: the seam's connection-level members ----------------------------
 * A protocol that owns its socket (HTTP/2's shape): conn.c gives it the connection when
 * the client preface arrives (zh__conn_start_h2 through srv->h2), then every event of the
 * socket (conn_event) and its close (conn_closing). Its exchanges live on slots of their
 * own (zh__conn_virtual_open), which close like connections but are not counted as such,
 * and a queue it sends itself is consumed with zh__out_consume. */

static atomic_ulong mux_starts, mux_events, mux_closing, mux_virt_ok, rel_calls;
static int mux_index, nop_index;

static ssize_t nop_io(zh__conn_t *c, void *buf, size_t cap)
{
	(void)c, (void)buf, (void)cap;
	return -EAGAIN;
}
static ssize_t nop_send(zh__conn_t *c, const struct iovec *iov, int cnt, bool more)
{
	(void)c, (void)iov, (void)cnt, (void)more;
	return -EAGAIN;
}
static ssize_t nop_file(zh__conn_t *c, int fd, uint64_t *off, size_t len)
{
	(void)c, (void)fd, (void)off, (void)len;
	return -EAGAIN;
}
static int nop_shutdown(zh__conn_t *c)
{
	(void)c;
	return -EPIPE;
}
static void nop_close(zh__conn_t *c)
{
	(void)c; /* the socket is the parent's */
}
static unsigned nop_wants(zh__conn_t *c, unsigned blocked)
{
	(void)c;
	return blocked;
}
static const zh__transport_t nop_tr = {"nop", nop_io, nop_io, nop_send, nop_file,
				       nop_shutdown, nop_close, nop_wants};

static void mux_event(zh__worker_t *w, zh__conn_t *c, uint32_t events)
{
	char buf[256];
	ssize_t n;
	(void)events;
	atomic_fetch_add(&mux_events, 1);
	while ((n = zh__tr_recv(c, buf, sizeof buf)) > 0) {
		if (memchr(buf, 'Q', (size_t)n)) {
			struct iovec iov = {.iov_base = (void *)"MUX ok\n", .iov_len = 7};
			cr_assert_eq(zh__tr_send(c, &iov, 1, false), 7);
			zh__conn_close(w, c);
			return;
		}
	}
}

static void mux_close_hook(zh__worker_t *w, zh__conn_t *c)
{
	(void)w, (void)c;
	atomic_fetch_add(&mux_closing, 1);
}

static const zh__proto_t mux = {.name = "mux", .conn_event = mux_event,
				.conn_closing = mux_close_hook};

static int mux_start(zh__worker_t *w, zh__conn_t *c)
{
	uint32_t open = w->open_conns;
	uint64_t closed = w->stats.connections_closed;
	zh__conn_t *v;
	atomic_fetch_add(&mux_starts, 1);
	/* the preface is what the receive buffer holds: the protocol's first input */
	if (c->ctx == NULL || c->ctx->rlen != 24 || memcmp(c->ctx->rbuf, "PRI * HTTP/2.0", 14))
		return -EPROTO;
	c->proto = (uint8_t)mux_index;
	v = zh__conn_virtual_open(w, c, (uint8_t)nop_index, 0);
	if (v && v->virt && v->ctx && v->fd == c->fd && w->open_conns == open) {
		zh__conn_close(w, v);
		if (w->open_conns == open && w->stats.connections_closed == closed)
			atomic_store(&mux_virt_ok, 1);
	}
	return 0;
}

static const zh__h2_hooks_t mux_hooks = {.start = mux_start};

static void mux_setup(void)
{
	zh_config_t cfg;
	int err = 0;
	mux_index = zh__proto_register(&mux);
	nop_index = zh__transport_register(&nop_tr);
	cr_assert_gt(mux_index, 0);
	cr_assert_gt(nop_index, 0);
	zh_config_init(&cfg);
	cfg.port = 0;
	cfg.workers = 1;
	cfg.io_contexts = 8;
	cfg.max_connections = 64;
	srv = zh_server_new(&cfg, &err);
	cr_assert_not_null(srv, "zh_server_new: %d", err);
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/hello", 0, h_hello, NULL), 0);
	srv->h2 = &mux_hooks; /* what zh_http2_enable sets */
	cr_assert_eq(pthread_create(&runner, NULL, run, NULL), 0);
}

static void mux_teardown(void)
{
	zh_server_stop(srv);
	pthread_join(runner, NULL);
	srv->h2 = NULL;
	zh_server_free(srv);
	srv = NULL;
}

TestSuite(mux, .init = mux_setup, .fini = mux_teardown, .timeout = 30);

/* The preface, even in two pieces, hands the connection to the protocol, which gets the
 * later bytes as events and closes it; HTTP/1.1 goes on for everyone else. */
Test(mux, preface_hands_the_connection_over)
{
	static char buf[512];
	int fd = zh_tc_connect(zh_server_port(srv), 10, 0);
	size_t len;
	send_all(fd, "PRI * HTTP/2.0\r\n");
	usleep(50000);
	send_all(fd, "\r\nSM\r\n\r\n");
	usleep(50000);
	send_all(fd, "Q");
	len = zh_tc_read_to_close(fd, buf, sizeof buf);
	close(fd);
	cr_assert_eq(len, 7, "%.*s", (int)len, buf);
	cr_assert_eq(memcmp(buf, "MUX ok\n", 7), 0);
	cr_assert_eq(atomic_load(&mux_starts), 1);
	cr_assert_geq(atomic_load(&mux_events), 1);
	cr_assert_eq(atomic_load(&mux_closing), 1);
	cr_assert_eq(atomic_load(&mux_virt_ok), 1, "a virtual slot counted as a connection");
	fd = zh_tc_connect(zh_server_port(srv), 10, 0);
	send_all(fd, "GET /hello HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
	len = zh_tc_read_to_close(fd, buf, sizeof buf);
	close(fd);
	cr_assert_eq(strncmp(buf, "HTTP/1.1 200 ", 13), 0, "%.*s", (int)len, buf);
	cr_assert_eq(atomic_load(&mux_starts), 1);
}

static void count_rel(void *arg)
{
	(void)arg;
	atomic_fetch_add(&rel_calls, 1);
}

/* zh__out_consume: whole entries released in order (empty ones too), a partial memory entry
 * advanced in place, a partial file entry by its offset, and the queue rewound at the end. */
Test(mux, out_consume)
{
	static zh__worker_t w;
	zh__ctx_t *ctx = calloc(1, sizeof *ctx + ZH__SBUF_SIZE);
	static const char a[10] = "0123456789", b[5] = "abcde";
	cr_assert_not_null(ctx);
	ctx->w = &w;
	ctx->sbuf = (char *)(ctx + 1);
	zh__out_reset(ctx);
	cr_assert_eq(zh__out_push(ctx, a, 10, count_rel, NULL), 0);
	cr_assert_eq(zh__out_push(ctx, NULL, 0, count_rel, NULL), 1);
	cr_assert_eq(zh__out_push(ctx, NULL, 100, count_rel, NULL), 2);
	ctx->rel[2].file_fd = 7;
	ctx->rel[2].file_off = 1000;
	cr_assert_eq(zh__out_push(ctx, b, 5, count_rel, NULL), 3);
	zh__out_consume(ctx, 12);
	cr_assert_eq(atomic_load(&rel_calls), 2);
	cr_assert_eq(ctx->iov_head, 2);
	cr_assert_eq(ctx->iov[2].iov_len, 98);
	cr_assert_eq(ctx->rel[2].file_off, 1002);
	zh__out_consume(ctx, 100);
	cr_assert_eq(ctx->iov_head, 3);
	cr_assert_eq(ctx->iov[3].iov_base, b + 2);
	cr_assert_eq(ctx->iov[3].iov_len, 3);
	zh__out_consume(ctx, 3);
	cr_assert_eq(atomic_load(&rel_calls), 4);
	cr_assert_eq(ctx->iov_n, 0, "not rewound");
	cr_assert_eq(ctx->iov_head, 0);
	free(ctx);
}
