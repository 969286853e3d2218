/* test_uring.c — the io_uring backend (src/loop_uring.c) in this process: the
 * configuration it takes, what zh_server_io() reports, and the paths the integration tests
 * reach less directly: a handler that writes more than its buffers hold and so blocks its
 * worker on the socket (the send's completion is then fetched out of turn), a file body
 * (sendfile, POLL_ADD when the socket is full) behind a head sent by the ring, and
 * pipelined requests split across many receive completions. A real server on 127.0.0.1;
 * its client reads with SO_RCVTIMEO, so it also checks that no ring's teardown interrupts
 * the application's threads (EINTR: zh__uring_probe runs on a thread of its own).
 */
#include <criterion/criterion.h>

#include "internal.h"
#include "zh_test_client.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define BIG (3u << 20) /* bytes the handler writes in one response: far over its buffers */

static char pattern[1 << 16];

static void big(zh_request_t *req, zh_response_t *resp, void *arg)
{
	(void)req;
	(void)arg;
	for (size_t off = 0; off < BIG; off += sizeof pattern)
		if (zh_write(resp, pattern, sizeof pattern) < 0)
			return;
}

static void hello(zh_request_t *req, zh_response_t *resp, void *arg)
{
	(void)req;
	(void)arg;
	(void)!zh_write(resp, "hi", 2); /* cannot fail: 2 bytes into a fresh send area */
}

static char file_path[64];

static void close_fd(void *arg)
{
	close((int)(intptr_t)arg);
}

static void file(zh_request_t *req, zh_response_t *resp, void *arg)
{
	int fd = open(file_path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	(void)req;
	(void)arg;
	cr_assert_geq(fd, 0);
	cr_assert_eq(fstat(fd, &st), 0);
	/* closed by close_fd once the kernel has taken the last byte */
	cr_assert_eq(zh_send_file(resp, fd, 0, (uint64_t)st.st_size, close_fd,
				  (void *)(intptr_t)fd), 0);
}

static zh_server_t *srv;
static pthread_t runner;

static void start(void)
{
	zh_config_t cfg;
	int err = 0;
	const char *why = "unset";
	for (size_t i = 0; i < sizeof pattern; i++)
		pattern[i] = (char)('a' + i % 26);
	zh_tc_config(&cfg);
	cfg.io = ZH_IO_URING;
	cfg.io_buffers = 4; /* few: receives run out of buffers (ENOBUFS) and are re-armed */
	cfg.loopback_sndbuf = 16384;
	srv = zh_server_new(&cfg, &err);
	cr_assert_not_null(srv, "zh_server_new: %d", err);
	cr_assert_eq(zh_server_io(srv, &why), ZH_IO_URING, "io_uring unavailable: %s", why);
	cr_assert_null(why);
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/big", 0, big, NULL), 0);
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/hi", 0, hello, NULL), 0);
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/file", 0, file, NULL), 0);
	cr_assert_eq(pthread_create(&runner, NULL, zh_tc_run, srv), 0);
}

static void stop(void)
{
	zh_server_stop(srv);
	pthread_join(runner, NULL);
	zh_server_free(srv);
	free_owned();
}

TestSuite(uring, .init = start, .fini = stop, .timeout = 30);

Test(uring, config_is_checked)
{
	zh_config_t cfg;
	int err = 0;
	zh_tc_config(&cfg);
	cfg.io = 2;
	cr_assert_null(zh_server_new(&cfg, &err));
	cr_assert_eq(err, -EINVAL);
	zh_tc_config(&cfg);
	cfg.io_buffers = 32769;
	cr_assert_null(zh_server_new(&cfg, &err));
	cr_assert_eq(err, -EINVAL);
}

Test(uring, epoll_reports_no_reason)
{
	zh_config_t cfg;
	zh_server_t *s;
	int err = 0;
	const char *why = "unset";
	zh_tc_config(&cfg);
	s = zh_server_new(&cfg, &err);
	cr_assert_not_null(s);
	cr_assert_eq(zh_server_io(s, &why), ZH_IO_EPOLL);
	cr_assert_null(why);
	zh_server_free(s);
}

/* 3 MiB through a 16 KiB socket buffer and a slow reader: the handler's writes block its
 * worker (zh__resp_spill_wait) with a send in flight, which completes only when the worker
 * fetches it itself. Every byte arrives, in order. */
static void get_big_slowly(void)
{
	resp_t r;
	conn_t c;
	const char req[] = "GET /big HTTP/1.1\r\nHost: t\r\n\r\n";
	zh_tc_dial(&c, zh_server_port(srv), 10, 8192);
	zh_tc_send(&c, req, sizeof req - 1);
	zh_tc_read(&c, &r, false);
	cr_assert_eq(r.status, 200);
	cr_assert_eq(r.body_len, BIG);
	for (size_t i = 0; i < BIG; i += 4099)
		cr_assert_eq(r.body[i], pattern[i % sizeof pattern], "byte %zu", i);
	resp_free(&r);
	hang_up(&c);
}

Test(uring, handler_blocking_on_a_slow_reader)
{
	get_big_slowly();
}

/* A 1 MiB file: the head by the ring (SENDMSG with MSG_MORE), then sendfile, waiting for
 * room by POLL_ADD. */
Test(uring, file_body)
{
	resp_t r;
	int fd;
	snprintf(file_path, sizeof file_path, "/tmp/zh-test-uring-%d", (int)getpid());
	fd = open(file_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	cr_assert_geq(fd, 0);
	for (int i = 0; i < 16; i++)
		cr_assert_eq(write(fd, pattern, sizeof pattern), (ssize_t)sizeof pattern);
	close(fd);
	zh_tc_get(zh_server_port(srv), "/file", NULL, &r);
	unlink(file_path);
	cr_assert_eq(r.status, 200);
	cr_assert_eq(r.body_len, 16 * sizeof pattern);
	cr_assert_eq(memcmp(r.body + 5 * sizeof pattern, pattern, sizeof pattern), 0);
	resp_free(&r);
}

/* 200 pipelined requests in one write (about 6 KiB: more than the 4 buffers of 2 KiB hold),
 * answered in order. */
Test(uring, pipelined_across_buffers)
{
	static char reqs[200 * 40];
	size_t n = 0;
	conn_t c;
	zh_tc_dial(&c, zh_server_port(srv), 10, 0);
	for (int i = 0; i < 200; i++)
		n += (size_t)snprintf(reqs + n, sizeof reqs - n, "GET /hi HTTP/1.1\r\nHost: t\r\n\r\n");
	zh_tc_send(&c, reqs, n);
	for (int i = 0; i < 200; i++) {
		resp_t r;
		zh_tc_read(&c, &r, false);
		cr_assert_eq(r.status, 200, "response %d", i);
		cr_assert_eq(r.body_len, 2);
		cr_assert_eq(memcmp(r.body, "hi", 2), 0);
		resp_free(&r);
	}
	hang_up(&c);
}

/* ---- a transport layered on io_uring's, as TLS is ----------------------------------------- */

/* A pass-through layer: its bytes move through the byte transport it was opened with
 * (read_raw, write_raw), one iovec per send, as TLS moves its records. */
static const zh__transport_t *layer_lower;
static atomic_ulong layer_writes;

static int layer_open(zh__conn_t *c, void *arg, const zh__transport_t *lower)
{
	(void)c;
	(void)arg;
	layer_lower = lower;
	return 0;
}

static ssize_t layer_recv(zh__conn_t *c, void *buf, size_t cap)
{
	return layer_lower->read_raw(c, buf, cap); /* -EAGAIN at the end: conn.c waits */
}

static ssize_t layer_peek(zh__conn_t *c, void *buf, size_t cap)
{
	return layer_lower->peek(c, buf, cap);
}

static ssize_t layer_send(zh__conn_t *c, const struct iovec *iov, int cnt, bool more)
{
	(void)more;
	while (cnt > 0 && iov->iov_len == 0)
		iov++, cnt--;
	atomic_fetch_add(&layer_writes, 1);
	return cnt ? layer_lower->write_raw(c, iov->iov_base, iov->iov_len) : 0;
}

static ssize_t layer_send_file(zh__conn_t *c, int fd, uint64_t *off, size_t len)
{
	(void)c, (void)fd, (void)off, (void)len;
	return -EOPNOTSUPP; /* no route sends a file here */
}

static int layer_shutdown(zh__conn_t *c)
{
	return layer_lower->shutdown(c);
}

static void layer_close(zh__conn_t *c)
{
	layer_lower->close(c);
}

static unsigned layer_wants(zh__conn_t *c, unsigned blocked)
{
	(void)c;
	return blocked;
}

static const zh__transport_t layer = {
	.name = "test-layer",
	.recv = layer_recv,
	.peek = layer_peek,
	.send = layer_send,
	.send_file = layer_send_file,
	.shutdown = layer_shutdown,
	.close = layer_close,
	.wants = layer_wants,
	.open = layer_open,
};

static struct {
	zh__tr_provider_t hdr; /* what a zh_tls_t begins with, to the core */
	int payload;
} layer_provider = {{&layer}, 0};

static void layered_start(void)
{
	zh_config_t cfg;
	zh_listener_t l = {.address = "127.0.0.1", .tls = (zh_tls_t *)(void *)&layer_provider};
	int err = 0;
	for (size_t i = 0; i < sizeof pattern; i++)
		pattern[i] = (char)('a' + i % 26);
	zh_tc_config(&cfg);
	cfg.io = ZH_IO_URING;
	cfg.loopback_sndbuf = 16384;
	cfg.listeners = &l;
	cfg.nlisteners = 1;
	srv = zh_server_new(&cfg, &err);
	cr_assert_not_null(srv, "zh_server_new: %d", err);
	cr_assert_eq(zh_server_io(srv, NULL), ZH_IO_URING);
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/big", 0, big, NULL), 0);
	cr_assert_eq(pthread_create(&runner, NULL, zh_tc_run, srv), 0);
}

TestSuite(uring_layered, .init = layered_start, .fini = stop, .timeout = 30);

/* A listener's transport on io_uring is opened over the ring's byte transport, and 3 MiB
 * through a 16 KiB socket buffer and a slow reader arrive whole: each full socket armed the
 * poll (write_raw) whose completion drove the connection on. */
Test(uring_layered, over_the_ring)
{
	get_big_slowly();
	cr_assert_not_null(layer_lower);
	cr_assert_str_eq(layer_lower->name, "uring");
	cr_assert_gt(atomic_load(&layer_writes), 1);
}
