/* test_transport.c — the transport seam (zh__transport_t, internal.h) with a second
 * implementation: a test double over the accepted socket that delivers input one byte per
 * recv, takes at most a few bytes per send (ignoring MSG_MORE), has no sendfile (it
 * copies file ranges with pread, as TLS without kernel offload would) and counts every
 * call. The connection layer must serve through it exactly what it serves through the
 * plain socket: heads split at every byte, pipelined requests, bodies, files, chunked
 * producers, slow readers (real EAGAIN on sends), and the close and shutdown of a
 * connection. A real server in this process on 127.0.0.1, as in test_ext.c.
 */
#include <criterion/criterion.h>

#include "internal.h"
#include "zh_test_client.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>

/* ---- the double ------------------------------------------------------------------------ */

#define RECV_MAX 1 /* bytes per recv: every head is split at every byte */
#define SEND_MAX 7 /* bytes per send: every response leaves in short writes */

static atomic_ulong n_recv, n_send, n_more, n_file, n_shutdown, n_close, n_peek;

static ssize_t dbl_recv(zh__conn_t *c, void *buf, size_t cap)
{
	ssize_t n;
	atomic_fetch_add(&n_recv, 1);
	do
		n = read(c->fd, buf, cap < RECV_MAX ? cap : RECV_MAX);
	while (n < 0 && errno == EINTR);
	/* never says "drained": a short read of this transport is not the end of the input,
	 * so the connection reads on until EAGAIN (TLS with a record half-consumed is alike) */
	return n < 0 ? -errno : n;
}

static ssize_t dbl_peek(zh__conn_t *c, void *buf, size_t cap)
{
	ssize_t n = recv(c->fd, buf, cap, MSG_PEEK | MSG_DONTWAIT);
	atomic_fetch_add(&n_peek, 1);
	return n < 0 ? -errno : n;
}

/* At most SEND_MAX bytes, gathered from the iovecs into a small buffer of its own (what a
 * framing or encrypting transport does), in one write. */
static ssize_t dbl_send(zh__conn_t *c, const struct iovec *iov, int cnt, bool more)
{
	char out[SEND_MAX];
	size_t len = 0;
	ssize_t n;
	atomic_fetch_add(&n_send, 1);
	if (more)
		atomic_fetch_add(&n_more, 1);
	for (int i = 0; i < cnt && len < SEND_MAX; i++) {
		size_t k = iov[i].iov_len < SEND_MAX - len ? iov[i].iov_len : SEND_MAX - len;
		memcpy(out + len, iov[i].iov_base, k);
		len += k;
	}
	if (len == 0)
		return 0;
	do
		n = send(c->fd, out, len, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n;
}

static ssize_t dbl_send_file(zh__conn_t *c, int fd, uint64_t *off, size_t len)
{
	char buf[SEND_MAX];
	struct iovec iov = {.iov_base = buf};
	ssize_t got, n;
	atomic_fetch_add(&n_file, 1);
	got = pread(fd, buf, len < SEND_MAX ? len : SEND_MAX, (off_t)*off);
	if (got <= 0)
		return got < 0 ? -errno : 0; /* 0: the file ended early */
	iov.iov_len = (size_t)got;
	atomic_fetch_sub(&n_send, 1); /* counted as a file call, not a send */
	n = dbl_send(c, &iov, 1, false);
	if (n > 0)
		*off += (uint64_t)n;
	return n;
}

static int dbl_shutdown(zh__conn_t *c)
{
	atomic_fetch_add(&n_shutdown, 1);
	return shutdown(c->fd, SHUT_WR) < 0 ? -errno : 0;
}

static void dbl_close(zh__conn_t *c)
{
	atomic_fetch_add(&n_close, 1);
	close(c->fd);
}

static unsigned dbl_wants(zh__conn_t *c, unsigned blocked)
{
	(void)c;
	return blocked;
}

static const zh__transport_t dbl = {
	.name = "test-double",
	.recv = dbl_recv,
	.peek = dbl_peek,
	.send = dbl_send,
	.send_file = dbl_send_file,
	.shutdown = dbl_shutdown,
	.close = dbl_close,
	.wants = dbl_wants,
};

/* ---- the server -------------------------------------------------------------------------- */

static zh_server_t *srv;
static pthread_t runner;
static int file_fd = -1;
static char file_bytes[3000];

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
	(void)!zh_reply(resp, 200, "text/plain", "hello\n", 6);
}

/* Echoes the request body (buffered route: the body arrived byte by byte). */
static void h_echo(zh_request_t *req, zh_response_t *resp, void *arg)
{
	zh_slice_t body;
	(void)arg;
	cr_assert_eq(zh_body_all(req, &body), 0);
	(void)!zh_reply(resp, 200, "application/octet-stream", body.ptr, body.len);
}

static void h_file(zh_request_t *req, zh_response_t *resp, void *arg)
{
	(void)req;
	(void)arg;
	cr_assert_eq(zh_send_file(resp, file_fd, 0, sizeof file_bytes, NULL, NULL), 0);
}

/* 40 pieces of 1000 bytes, each produced once the transport took everything before. */
static int produce_big(zh_response_t *resp, void *arg)
{
	static char piece[1000];
	(void)arg;
	if (resp == NULL)
		return ZH_PRODUCE_DONE;
	memset(piece, 'a' + (int)(zh_resp_body_len(resp) / 1000 % 26), sizeof piece);
	if (zh_write(resp, piece, sizeof piece) < 0)
		return -EIO;
	return zh_resp_body_len(resp) < 40000 ? ZH_PRODUCE_MORE : ZH_PRODUCE_DONE;
}

static void h_big(zh_request_t *req, zh_response_t *resp, void *arg)
{
	(void)req;
	(void)arg;
	cr_assert_eq(zh_resp_produce(resp, produce_big, NULL), 0);
}

static void setup(void)
{
	zh_config_t cfg;
	int err = 0;
	char path[] = "/tmp/zh_transport_XXXXXX";
	for (size_t i = 0; i < sizeof file_bytes; i++)
		file_bytes[i] = (char)('A' + i % 23);
	file_fd = mkstemp(path);
	cr_assert_geq(file_fd, 0);
	unlink(path);
	cr_assert_eq(write(file_fd, file_bytes, sizeof file_bytes), (ssize_t)sizeof file_bytes);

	cr_assert_eq(zh__transport_install(&dbl), 0);
	zh_config_init(&cfg);
	cfg.port = 0;
	cfg.workers = 1;
	cfg.io_contexts = 8;
	cfg.max_connections = 64;
	cfg.large_buffers = 8;
	srv = zh_server_new(&cfg, &err);
	cr_assert_not_null(srv, "zh_server_new: %d", err);
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/hello", 0, h_hello, NULL), 0);
	cr_assert_eq(zh_server_route(srv, ZH_POST, "/echo", 0, h_echo, NULL), 0);
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/file", 0, h_file, NULL), 0);
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/big", 0, h_big, NULL), 0);
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
	cr_assert_eq(zh__transport_install(NULL), 0);
	if (file_fd >= 0)
		close(file_fd);
	file_fd = -1;
}

TestSuite(transport, .init = setup, .fini = teardown, .timeout = 30);

/* Three pipelined requests in one write, the last closing: the double hands them to the
 * parser a byte at a time and sends the three answers 7 bytes at a time, in order. */
Test(transport, pipelined_requests_byte_by_byte)
{
	static char buf[4096];
	const char *req = "GET /hello HTTP/1.1\r\nHost: a\r\n\r\n"
			  "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world"
			  "GET /hello HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
	int fd = zh_tc_connect(zh_server_port(srv), 10, 0);
	unsigned long r0 = atomic_load(&n_recv), s0 = atomic_load(&n_send);
	const char *p;
	send_all(fd, req);
	zh_tc_read_to_close(fd, buf, sizeof buf);
	close(fd);
	p = strstr(buf, "HTTP/1.1 200");
	cr_assert_not_null(p, "%s", buf);
	cr_assert_not_null(strstr(p, "\r\n\r\nhello\n"), "%s", buf);
	p = strstr(p + 1, "HTTP/1.1 200");
	cr_assert_not_null(p, "%s", buf);
	cr_assert_not_null(strstr(p, "\r\n\r\nhello world"), "%s", buf);
	p = strstr(p + 1, "HTTP/1.1 200");
	cr_assert_not_null(p, "%s", buf);
	cr_assert_not_null(strstr(p, "\r\n\r\nhello\n"), "%s", buf);
	cr_assert_null(strstr(p + 1, "HTTP/1.1"), "a fourth response: %s", buf);
	/* every request byte went through the double's recv, every response byte its send */
	cr_assert_geq(atomic_load(&n_recv) - r0, strlen(req));
	cr_assert_geq(atomic_load(&n_send) - s0, strlen(buf) / SEND_MAX);
}

/* A head trickling in a byte at a time from the client (each byte its own segment; the
 * double's recv then finds EAGAIN between them) is parsed across many reads. */
Test(transport, head_split_across_eagain)
{
	static char buf[1024];
	const char *req = "GET /hello HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
	int fd = zh_tc_connect(zh_server_port(srv), 10, 0);
	for (const char *q = req; *q; q++) {
		struct timespec ts = {0, 2 * 1000 * 1000};
		zh_tc_write_all(fd, q, 1);
		nanosleep(&ts, NULL);
	}
	zh_tc_read_to_close(fd, buf, sizeof buf);
	close(fd);
	cr_assert_eq(strncmp(buf, "HTTP/1.1 200", 12), 0, "%s", buf);
	cr_assert_str_eq(zh_tc_body_of(buf), "hello\n");
}

/* A file body: no sendfile in this transport, so its send_file copies; the head goes
 * with "more bytes follow" (MSG_MORE on a plain socket). */
Test(transport, file_range_through_send_file)
{
	static char buf[8192];
	const char *req = "GET /file HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
	int fd = zh_tc_connect(zh_server_port(srv), 10, 0);
	unsigned long f0 = atomic_load(&n_file), m0 = atomic_load(&n_more);
	send_all(fd, req);
	zh_tc_read_to_close(fd, buf, sizeof buf);
	close(fd);
	cr_assert_eq(strncmp(buf, "HTTP/1.1 200", 12), 0, "%.200s", buf);
	cr_assert_not_null(strstr(buf, "Content-Length: 3000\r\n"), "%.300s", buf);
	cr_assert_eq(memcmp(zh_tc_body_of(buf), file_bytes, sizeof file_bytes), 0);
	cr_assert_eq(strlen(zh_tc_body_of(buf)), sizeof file_bytes);
	cr_assert_geq(atomic_load(&n_file) - f0, sizeof file_bytes / SEND_MAX);
	cr_assert_gt(atomic_load(&n_more) - m0, 0);
}

/* A producer's chunked body to a client with a small receive window that reads slowly:
 * sends meet real EAGAIN, the producer waits for the write edge, all 40000 bytes arrive
 * framed in order. */
Test(transport, producer_to_slow_reader)
{
	static char buf[65536], body[65536];
	const char *req = "GET /big HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
	int fd = zh_tc_connect(zh_server_port(srv), 10, 4096);
	size_t len = 0, blen = 0;
	const char *p;
	ssize_t n;
	send_all(fd, req);
	while (len < sizeof buf - 1 && (n = read(fd, buf + len, 512)) > 0) {
		struct timespec ts = {0, 200 * 1000};
		len += (size_t)n;
		nanosleep(&ts, NULL);
	}
	buf[len] = '\0';
	close(fd);
	cr_assert_not_null(strstr(buf, "Transfer-Encoding: chunked\r\n"), "%.300s", buf);
	p = zh_tc_body_of(buf);
	for (;;) { /* de-chunk */
		char *end;
		unsigned long sz = strtoul(p, &end, 16);
		cr_assert_eq(strncmp(end, "\r\n", 2), 0, "bad chunk line at %zu", (size_t)(p - buf));
		p = end + 2;
		if (sz == 0)
			break;
		cr_assert_leq(blen + sz, sizeof body);
		memcpy(body + blen, p, sz);
		blen += sz;
		p += sz + 2;
	}
	cr_assert_eq(blen, 40000);
	for (size_t i = 0; i < blen; i++)
		cr_assert_eq(body[i], 'a' + (int)(i / 1000 % 26), "byte %zu", i);
}

/* Connection: close lingers (shutdown through the transport) and the connection is closed
 * through it; the plain socket is the default again after install(NULL). */
Test(transport, shutdown_and_close_through_the_seam)
{
	static char buf[1024];
	const char *req = "GET /hello HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
	unsigned long sh0 = atomic_load(&n_shutdown), c0 = atomic_load(&n_close);
	int fd = zh_tc_connect(zh_server_port(srv), 10, 0);
	send_all(fd, req);
	zh_tc_read_to_close(fd, buf, sizeof buf);
	close(fd); /* EOF: the lingering connection closes */
	for (int i = 0; i < 500 && atomic_load(&n_close) == c0; i++) {
		struct timespec ts = {0, 2 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	cr_assert_eq(atomic_load(&n_shutdown) - sh0, 1);
	cr_assert_eq(atomic_load(&n_close) - c0, 1);
	cr_assert_eq(zh__transport_install(NULL), 0);
	cr_assert_eq(zh__transport_default, 0);
	cr_assert_eq(zh__transport_install(&dbl), 0);
	cr_assert_eq(zh__transports[zh__transport_default], &dbl);
}

/* ---- listeners: a transport brought by a listener's provider (how TLS plugs in) ---------- */

static atomic_ulong n_open;
static atomic_uint last_close_flags;
static bool open_handshake; /* dbl_open marks the connection as handshaking (never ends) */

static int dbl_open(zh__conn_t *c, void *arg, const zh__transport_t *lower)
{
	cr_assert_not_null(arg);
	cr_assert_eq(lower, &zh__transport_plain); /* the epoll worker's byte transport */
	atomic_fetch_add(&n_open, 1);
	if (open_handshake)
		c->trflags |= ZH__TRF_HANDSHAKE;
	return 0;
}

static void dbl_close_flags(zh__conn_t *c)
{
	atomic_store(&last_close_flags, c->trflags);
	dbl_close(c);
}

static const zh__transport_t dbl_listener = {
	.name = "test-double-listener",
	.recv = dbl_recv,
	.peek = dbl_peek,
	.send = dbl_send,
	.send_file = dbl_send_file,
	.shutdown = dbl_shutdown,
	.close = dbl_close_flags,
	.wants = dbl_wants,
	.open = dbl_open,
};

/* what a zh_tls_t is to the core: an object that begins with the provider header */
static struct {
	zh__tr_provider_t hdr;
	int payload;
} provider = {{&dbl_listener}, 0};

static void listeners_setup(void)
{
	zh_config_t cfg;
	zh_listener_t ls[2] = {{.address = "127.0.0.1"},
			       {.address = "127.0.0.1", .tls = (zh_tls_t *)(void *)&provider}};
	int err = 0;
	zh_tc_config(&cfg);
	cfg.listeners = ls;
	cfg.nlisteners = 2;
	cfg.tls_handshake_timeout_ms = 200;
	srv = zh_server_new(&cfg, &err);
	cr_assert_not_null(srv, "zh_server_new: %d", err);
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/hello", 0, h_hello, NULL), 0);
	cr_assert_eq(pthread_create(&runner, NULL, run, NULL), 0);
}

static void listeners_teardown(void)
{
	zh_server_stop(srv);
	pthread_join(runner, NULL);
	zh_server_free(srv);
	srv = NULL;
}

TestSuite(listeners, .init = listeners_setup, .fini = listeners_teardown, .timeout = 30);

/* Two listeners on ports of their own: the plain one serves through the plain socket, the
 * provider's through its transport, whose open() ran for that connection only. */
Test(listeners, each_listener_its_transport)
{
	static char buf[1024];
	const char *req = "GET /hello HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
	uint16_t p0 = zh_server_listener_port(srv, 0), p1 = zh_server_listener_port(srv, 1);
	unsigned long r0 = atomic_load(&n_recv);
	int fd;
	cr_assert(p0 && p1 && p0 != p1);
	cr_assert_eq(zh_server_port(srv), p0);
	cr_assert_eq(zh_server_listener_port(srv, 2), 0);
	fd = zh_tc_connect(p0, 10, 0);
	send_all(fd, req);
	zh_tc_read_to_close(fd, buf, sizeof buf);
	close(fd);
	cr_assert_not_null(strstr(buf, "\r\n\r\nhello\n"), "%s", buf);
	cr_assert_eq(atomic_load(&n_recv), r0, "the plain listener used the double");
	cr_assert_eq(atomic_load(&n_open), 0);
	memset(buf, 0, sizeof buf);
	fd = zh_tc_connect(p1, 10, 0);
	send_all(fd, req);
	zh_tc_read_to_close(fd, buf, sizeof buf);
	close(fd);
	cr_assert_not_null(strstr(buf, "\r\n\r\nhello\n"), "%s", buf);
	cr_assert_geq(atomic_load(&n_recv) - r0, strlen(req));
	cr_assert_eq(atomic_load(&n_open), 1);
}

/* A connection whose transport has a handshake to finish (ZH__TRF_HANDSHAKE) is closed by
 * the handshake timer (200 ms here), not the 10 s header timer, and its transport learns
 * why (ZH__TRF_TIMEDOUT). */
Test(listeners, handshake_timer)
{
	static char buf[64];
	long long t0;
	int fd;
	open_handshake = true;
	t0 = (long long)zh__now_ms();
	fd = zh_tc_connect(zh_server_listener_port(srv, 1), 10, 0);
	cr_assert_eq(zh_tc_read_to_close(fd, buf, sizeof buf), 0);
	close(fd);
	cr_assert_lt((long long)zh__now_ms() - t0, 3000);
	cr_assert_geq((long long)zh__now_ms() - t0, 150);
	for (int i = 0; i < 500 && atomic_load(&last_close_flags) == 0; i++) {
		struct timespec ts = {0, 2 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	cr_assert(atomic_load(&last_close_flags) & ZH__TRF_TIMEDOUT);
}
