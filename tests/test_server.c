/* test_server.c — the ResponseWriter rules, end to end through a real server in this process.
 * Each test talks to a one-worker server on 127.0.0.1 (port chosen by the kernel) over a raw
 * socket and checks the exact bytes, plus what the handler saw returned by the API.
 */
#include <criterion/criterion.h>

#include "internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static zh_server_t *srv;
static pthread_t runner;
static int seen[16]; /* return codes the handlers observed, per test */
static atomic_int released;

static void *run(void *arg)
{
	(void)arg;
	(void)!zh_server_run(srv);
	return NULL;
}

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

/* ---- fixture ------------------------------------------------------------------------------ */

static void setup(void)
{
	zh_config_t cfg;
	int err = 0;
	zh_config_init(&cfg);
	cfg.port = 0;
	cfg.workers = 1;
	cfg.io_contexts = 8;
	cfg.max_connections = 64;
	cfg.body_timeout_ms = 700;
	srv = zh_server_new(&cfg, &err);
	cr_assert_not_null(srv, "zh_server_new: %d", err);
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/double", 0, h_double, NULL), 0);
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/implicit", 0, h_implicit, NULL), 0);
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/inject", 0, h_inject, NULL), 0);
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/headers", 0, h_headers, NULL), 0);
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
	memset(&streamed, 0, sizeof streamed);
	memset(seen, 0x55, sizeof seen);
	atomic_store(&released, 0);
	cr_assert_eq(pthread_create(&runner, NULL, run, NULL), 0);
}

static void teardown(void)
{
	zh_server_stop(srv);
	pthread_join(runner, NULL);
	zh_server_free(srv);
}

TestSuite(writer, .init = setup, .fini = teardown, .timeout = 20);

static char buf[1 << 20]; /* bytes read from the current connection */
static size_t have, used;

static int dial(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(zh_server_port(srv))};
	struct timeval tv = {.tv_sec = 5};
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	have = used = 0;
	return fd;
}

static void send_all(int fd, const char *s)
{
	size_t len = strlen(s), off = 0;
	while (off < len) {
		ssize_t n = write(fd, s + off, len - off);
		cr_assert_gt(n, 0);
		off += (size_t)n;
	}
}

typedef struct {
	int status;
	char head[4096];
	char *body;
	size_t body_len;
	int chunks; /* chunked responses: data chunks seen */
} response_t;

/* Reads one response framed by Content-Length (or none, for 204/HEAD: pass head_only). */
static void fill_to(int fd, size_t want)
{
	while (have < want) {
		ssize_t n = read(fd, buf + have, sizeof buf - have);
		cr_assert_gt(n, 0, "connection closed inside a body");
		have += (size_t)n;
	}
}

/* Decodes a chunked body in place: the body ends up contiguous after the head. */
static void read_chunked(int fd, response_t *r, size_t hlen)
{
	size_t out = hlen, in = hlen;
	r->chunks = 0;
	for (;;) {
		char *eol;
		size_t size;
		while ((eol = memmem(buf + in, have - in, "\r\n", 2)) == NULL)
			fill_to(fd, have + 1);
		size = strtoul(buf + in, NULL, 16);
		in = (size_t)(eol - buf) + 2;
		fill_to(fd, in + size + 2);
		cr_assert(memcmp(buf + in + size, "\r\n", 2) == 0, "chunk data ends with CRLF");
		if (size == 0)
			break;
		memmove(buf + out, buf + in, size);
		out += size;
		in += size + 2;
		r->chunks++;
	}
	r->body = buf + hlen;
	r->body_len = out - hlen;
	/* what followed the terminator is the next response: move it after the body */
	memmove(buf + out, buf + in + 2, have - in - 2);
	have = out + have - in - 2;
	used = out;
}

static void read_response(int fd, response_t *r, bool head_only)
{
	char *end;
	size_t hlen, clen = 0;
	const char *cl;

	if (used) {
		memmove(buf, buf + used, have - used);
		have -= used;
		used = 0;
	}
	while ((end = memmem(buf, have, "\r\n\r\n", 4)) == NULL) {
		ssize_t n = read(fd, buf + have, sizeof buf - have);
		cr_assert_gt(n, 0, "connection closed before a full head");
		have += (size_t)n;
	}
	hlen = (size_t)(end - buf) + 4;
	cr_assert_lt(hlen, sizeof r->head);
	memcpy(r->head, buf, hlen);
	r->head[hlen] = '\0';
	cr_assert_eq(sscanf(r->head, "HTTP/1.1 %d ", &r->status), 1);
	cl = strcasestr(r->head, "\r\nContent-Length: ");
	if (cl && !head_only)
		clen = strtoul(cl + 18, NULL, 10);
	if (strcasestr(r->head, "\r\nTransfer-Encoding: chunked\r\n") && !head_only) {
		read_chunked(fd, r, hlen);
		return;
	}
	while (have < hlen + clen) {
		ssize_t n = read(fd, buf + have, sizeof buf - have);
		cr_assert_gt(n, 0, "connection closed inside a body");
		have += (size_t)n;
	}
	r->body = buf + hlen;
	r->body_len = clen;
	used = hlen + clen;
}

static void get(const char *path, response_t *r)
{
	char req[256];
	int fd = dial();
	snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", path);
	send_all(fd, req);
	read_response(fd, r, false);
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
	zh_server_stats(srv, &st);
	cr_assert_eq(st.double_commits, 1);
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
	cr_assert_eq(r.status, 200);
	usleep(50000);
	for (int i = 0; i < 6; i++)
		cr_assert_eq(seen[i], -EINVAL, "header call %d must be refused", i);
	cr_assert_eq(seen[6], 0, "HTAB inside a value is allowed");
	cr_assert(!has_header(&r, "X-Injected"));
	cr_assert(!has_header(&r, "X-A:"));
	cr_assert(!has_header(&r, "X-Nul"));
	cr_assert(!has_header(&r, "Transfer-Encoding"));
	cr_assert(has_header(&r, "\r\nX-Ok: fine\tvalue\r\n"));
	zh_server_stats(srv, &st);
	cr_assert_eq(st.header_rejects, 6);
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
	read_response(fd, &r, true);
	cr_assert_eq(r.status, 200);
	cr_assert(has_header(&r, "\r\nContent-Length: 200000\r\n"));
	read_response(fd, &r, false);
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
	read_response(fd, &r, true);
	cr_assert_eq(r.status, 204);
	cr_assert_eq(seen[1], -EINVAL);
	cr_assert(!has_header(&r, "Content-Length"));
	read_response(fd, &r, false);
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
	read_response(fd, &r, false);
	cr_assert_eq(r.status, 200);
	cr_assert_eq(r.body_len, strlen(want), "%.*s", (int)r.body_len, r.body);
	cr_assert_arr_eq(r.body, want, strlen(want));
	close(fd);
}

Test(writer, one_writev_for_head_and_body_and_for_a_pipelined_batch)
{
	response_t r;
	zh_stats_t a, b;
	int fd = dial();
	char batch[2048] = "";
	send_all(fd, "GET /implicit HTTP/1.1\r\nHost: t\r\n\r\n");
	read_response(fd, &r, false);
	stats_after_settle(&a);
	send_all(fd, "GET /implicit HTTP/1.1\r\nHost: t\r\n\r\n");
	read_response(fd, &r, false);
	stats_after_settle(&b);
	cr_assert_eq(b.writev_calls - a.writev_calls, 1, "head and body leave in one writev");
	for (int i = 0; i < 10; i++)
		strcat(batch, "GET /implicit HTTP/1.1\r\nHost: t\r\n\r\n");
	send_all(fd, batch);
	for (int i = 0; i < 10; i++) {
		read_response(fd, &r, false);
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

static uint64_t fill(char *p, size_t n)
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
	uint64_t sum = fill(body, LEN);
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
	read_response(fd, &r, false);
	expect_sum(&r, LEN, sum);
	cr_assert_gt(streamed.waits, 0, "the handler must have parked at least once");
	read_response(fd, &r, false);
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
	uint64_t sum = fill(body, sizeof body);
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
	read_response(fd, &r, false);
	expect_sum(&r, sizeof body, sum);
	read_response(fd, &r, false);
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
	read_response(fd, &r, false);
	expect_sum(&r, 5, 'a' + 'b' + 'c' + 'd' + 'e');
	close(fd);

	fd = dial();
	send_all(fd, "POST /stream-refuse HTTP/1.1\r\nHost: t\r\nContent-Length: 5000000\r\n"
		     "Expect: 100-continue\r\n\r\n");
	read_response(fd, &r, false);
	cr_assert_eq(r.status, 413, "no 100 Continue before a refusal");
	cr_assert(has_header(&r, "\r\nConnection: close\r\n"), "unread body: must close");
	close(fd);
}

Test(writer, stream_body_timeout_reaches_the_continuation)
{
	response_t r;
	int fd = dial();
	send_all(fd, "POST /stream HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc");
	read_response(fd, &r, false);
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
	read_response(fd, &r, false);
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
		read_response(fd, &r, false);
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
	read_response(fd, &r, false);
	expect_sum(&r, 3, 'a' + 'b' + 'c');
	close(fd);
}

Test(writer, stream_refusal_skips_a_small_body_already_received)
{
	response_t r;
	int fd = dial();
	send_all(fd, "POST /stream-refuse HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc"
		     "GET /empty HTTP/1.1\r\nHost: t\r\n\r\n");
	read_response(fd, &r, false);
	cr_assert_eq(r.status, 413);
	cr_assert(!has_header(&r, "Connection: close"), "the body was all here: keep-alive");
	read_response(fd, &r, false);
	cr_assert_eq(r.status, 200, "the pipelined request after the skipped body");
	close(fd);
}
