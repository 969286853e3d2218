/* test_upgrade.c — protocol upgrades (zh_resp_upgrade, src/upgrade.c) through a real
 * server in this process: the 101's exact head, the socket and the early bytes handed to
 * the callback, the pipelined responses before it, the refusals, and the one call with
 * fd -1 when the connection dies before the 101 has left.
 *
 * The callback of "/ws" hands the socket to an echo thread (the "echo" protocol: every
 * byte back), which first echoes the early bytes it was lent (copied: they are lent for
 * the call only).
 */
#include <criterion/criterion.h>

#include "zh_test_client.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static zh_server_t *srv;
static pthread_t runner;
static atomic_int handed, cancelled, last_rc, asks; /* asks: zh_req_upgrade's answer */

typedef struct echo {
	int fd;
	size_t n;
	char early[]; /* n bytes */
} echo_t;

static void *echo_thread(void *arg)
{
	echo_t *e = arg;
	char buf[4096];
	ssize_t n;
	int fl = fcntl(e->fd, F_GETFL);
	fcntl(e->fd, F_SETFL, fl & ~O_NONBLOCK); /* this thread's socket now: blocking reads */
	if (e->n && write(e->fd, e->early, e->n) != (ssize_t)e->n)
		e->n = 0; /* the client sees the echo cut short */
	while ((n = read(e->fd, buf, sizeof buf)) > 0)
		if (write(e->fd, buf, (size_t)n) != n)
			break;
	close(e->fd);
	free(e);
	return NULL;
}

static void on_upgrade(int fd, const void *early, size_t early_len, void *arg)
{
	pthread_t t;
	echo_t *e;
	(void)arg;
	if (fd < 0) {
		atomic_fetch_add(&cancelled, 1);
		return;
	}
	e = malloc(sizeof *e + early_len);
	cr_assert_not_null(e);
	e->fd = fd;
	e->n = early_len;
	memcpy(e->early, early, early_len);
	atomic_fetch_add(&handed, 1);
	cr_assert_eq(pthread_create(&t, NULL, echo_thread, e), 0);
	pthread_detach(t);
}

static void h_ws(zh_request_t *req, zh_response_t *resp, void *arg)
{
	int rc;
	zh_slice_t offered;
	(void)arg;
	atomic_store(&asks, zh_req_upgrade(req, &offered));
	(void)zh_resp_header_set(resp, "X-Before", "kept");
	rc = zh_resp_upgrade(resp, "echo", on_upgrade, NULL);
	atomic_store(&last_rc, rc);
	if (rc == 0) {
		/* what the rules promise after the call: a 101 has no body, no second upgrade */
		cr_assert_eq(zh_write(resp, "x", 1), -EINVAL);
		cr_assert_eq(zh_resp_upgrade(resp, "echo", on_upgrade, NULL), -EALREADY);
		return;
	}
	zh_reply(resp, 400, "text/plain", "no upgrade\n", 11);
}

/* a commit hook whose header call fails: the sticky rule turns the 101 into a 500 */
static void failing_hook(zh_response_t *resp, void *arg)
{
	(void)arg;
	(void)zh_resp_header_set(resp, "X-Bad", "a\r\nb");
}

static void h_ws_fails(zh_request_t *req, zh_response_t *resp, void *arg)
{
	(void)req, (void)arg;
	cr_assert_eq(zh_resp_on_commit(resp, failing_hook, NULL), 0);
	atomic_store(&last_rc, zh_resp_upgrade(resp, "echo", on_upgrade, NULL));
}

/* commits first: too late to switch */
static void h_late(zh_request_t *req, zh_response_t *resp, void *arg)
{
	(void)req, (void)arg;
	zh_reply(resp, 200, "text/plain", "ok", 2);
	atomic_store(&last_rc, zh_resp_upgrade(resp, "echo", on_upgrade, NULL));
}

static char big[16 << 20]; /* more than the kernel buffers on both sides */

static void h_big(zh_request_t *req, zh_response_t *resp, void *arg)
{
	(void)req, (void)arg;
	zh_write_ref(resp, big, sizeof big, NULL, NULL);
}

static int big_fd = -1; /* the same 16 MiB as a file: sent by sendfile */

static void h_file(zh_request_t *req, zh_response_t *resp, void *arg)
{
	(void)req, (void)arg;
	cr_assert_eq(zh_send_file(resp, big_fd, 0, sizeof big, NULL, NULL), 0);
}

static void h_plain(zh_request_t *req, zh_response_t *resp, void *arg)
{
	(void)req, (void)arg;
	zh_reply(resp, 200, "text/plain", "plain", 5);
}

static int io = ZH_IO_EPOLL; /* the suite's backend */

static void start(void)
{
	zh_config_t cfg;
	int err = 0;
	zh_tc_config(&cfg);
	cfg.write_timeout_ms = 300;
	cfg.io = io;
	srv = zh_server_new(&cfg, &err);
	cr_assert_not_null(srv, "zh_server_new: %d", err);
	cr_assert_eq(zh_server_route(srv, ZH_GET | ZH_POST, "/ws", 0, h_ws, NULL), 0);
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/late", 0, h_late, NULL), 0);
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/ws-fails", 0, h_ws_fails, NULL), 0);
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/big", 0, h_big, NULL), 0);
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/file", 0, h_file, NULL), 0);
	if (big_fd < 0) {
		char path[] = "/tmp/zh-upgrade-XXXXXX";
		big_fd = mkstemp(path);
		cr_assert_geq(big_fd, 0);
		unlink(path);
		cr_assert_eq(write(big_fd, big, sizeof big), (ssize_t)sizeof big);
	}
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/plain", 0, h_plain, NULL), 0);
	cr_assert_eq(pthread_create(&runner, NULL, zh_tc_run, srv), 0);
	atomic_store(&handed, 0);
	atomic_store(&cancelled, 0);
}

static void stop(void)
{
	zh_server_stop(srv);
	pthread_join(runner, NULL);
	zh_server_free(srv);
}

/* The same switch on io_uring: the socket leaves the ring once its receive has ended. */
static void start_uring(void)
{
	const char *why = NULL;
	io = ZH_IO_URING;
	start();
	cr_assert_eq(zh_server_io(srv, &why), ZH_IO_URING, "io_uring unavailable: %s", why);
}

TestSuite(upgrade, .init = start, .fini = stop, .timeout = 20);
TestSuite(upgrade_uring, .init = start_uring, .fini = stop, .timeout = 20);

/* Reads until want bytes have come (or asserts on EOF or the read timeout). */
static void read_exact(int fd, char *buf, size_t want)
{
	size_t got = 0;
	while (got < want) {
		ssize_t n = read(fd, buf + got, want - got);
		cr_assert_gt(n, 0, "read: got %zu of %zu: %s", got, want, n ? strerror(errno) : "EOF");
		got += (size_t)n;
	}
	buf[got] = '\0';
}

/* One response head (up to its blank line), NUL-terminated. */
static void read_head(int fd, char *buf, size_t cap)
{
	size_t len = 0;
	while (len < 4 || memcmp(buf + len - 4, "\r\n\r\n", 4) != 0) {
		cr_assert_lt(len, cap - 1);
		cr_assert_eq(read(fd, buf + len, 1), 1, "head cut at %zu: %.*s", len, (int)len, buf);
		len++;
	}
	buf[len] = '\0';
}

static uint64_t stat_upgraded(void)
{
	zh_stats_t st;
	zh_server_stats(srv, &st);
	return st.connections_upgraded;
}

static void wait_contexts_back(void)
{
	for (int i = 0; i < 200; i++) {
		zh_stats_t st;
		zh_server_stats(srv, &st);
		if (st.io_contexts_in_use == 0)
			return;
		usleep(5000);
	}
	cr_assert_fail("an I/O context is still lent");
}

#define WS_REQ(path, extra)                                                                    \
	"GET " path " HTTP/1.1\r\nHost: t\r\nConnection: keep-alive, Upgrade\r\n"             \
	"Upgrade: foo/2, Echo\r\n" extra "\r\n"

static void switch_and_echo(void)
{
	char buf[1024];
	int fd = zh_tc_connect(zh_server_port(srv), 5, 0);
	static const char req[] = WS_REQ("/ws", "") "early!";
	zh_tc_write_all(fd, req, sizeof req - 1);
	read_head(fd, buf, sizeof buf);
	cr_assert_eq(atomic_load(&last_rc), 0);
	cr_assert_eq(atomic_load(&asks), 1);
	cr_assert(strncmp(buf, "HTTP/1.1 101 Switching Protocols\r\n", 34) == 0, "%s", buf);
	cr_assert_not_null(strstr(buf, "\r\nConnection: upgrade\r\n"), "%s", buf);
	cr_assert_not_null(strstr(buf, "\r\nUpgrade: echo\r\n"), "%s", buf);
	cr_assert_not_null(strstr(buf, "\r\nX-Before: kept\r\n"), "%s", buf);
	cr_assert_null(strstr(buf, "Content-Length"), "a 101 has no framing: %s", buf);
	cr_assert_null(strstr(buf, "Transfer-Encoding"), "%s", buf);
	read_exact(fd, buf, 6);
	cr_assert_str_eq(buf, "early!", "the bytes after the request are the new protocol's");
	zh_tc_write_all(fd, "GET / HTTP/1.1\r\n\r\n", 18);
	read_exact(fd, buf, 18);
	cr_assert_str_eq(buf, "GET / HTTP/1.1\r\n\r\n", "no longer HTTP: echoed, not parsed");
	cr_assert_eq(stat_upgraded(), 1);
	cr_assert_eq(atomic_load(&handed), 1);
	wait_contexts_back();
	close(fd);
}

Test(upgrade, switches_and_hands_the_socket_with_the_early_bytes)
{
	switch_and_echo();
}

Test(upgrade_uring, switches_and_hands_the_socket_with_the_early_bytes)
{
	switch_and_echo();
}

/* Bytes sent while a 16 MiB response ahead of the 101 is still going wait (in the kernel
 * on epoll, in the ring's buffers on io_uring): the new owner gets them after the 101. */
static void bytes_behind_a_long_response(void)
{
	char buf[1 << 16];
	size_t got = 0;
	int fd = zh_tc_connect(zh_server_port(srv), 5, 0);
	static const char req[] = "GET /big HTTP/1.1\r\nHost: t\r\n\r\n" WS_REQ("/ws", "") "early";
	zh_tc_write_all(fd, req, sizeof req - 1);
	usleep(50000); /* the 101 waits behind the body the client does not read yet */
	zh_tc_write_all(fd, "+late", 5);
	read_head(fd, buf, sizeof buf);
	cr_assert(strncmp(buf, "HTTP/1.1 200 ", 13) == 0, "%s", buf);
	while (got < sizeof big) {
		size_t want = sizeof big - got < sizeof buf ? sizeof big - got : sizeof buf;
		ssize_t n = read(fd, buf, want);
		cr_assert_gt(n, 0, "body cut at %zu", got);
		got += (size_t)n;
	}
	read_head(fd, buf, sizeof buf);
	cr_assert(strncmp(buf, "HTTP/1.1 101 ", 13) == 0, "%s", buf);
	read_exact(fd, buf, 10);
	cr_assert_str_eq(buf, "early+late");
	close(fd);
	wait_contexts_back();
}

/* Reads a response head and its body of sizeof big bytes, sending one byte of the new
 * protocol between reads when trickle is set (a client that talks while it reads). */
static size_t read_big_response(int fd, bool trickle)
{
	char buf[1 << 16];
	size_t got = 0, sent = 0;
	read_head(fd, buf, sizeof buf);
	cr_assert(strncmp(buf, "HTTP/1.1 200 ", 13) == 0, "%s", buf);
	while (got < sizeof big) {
		size_t want = sizeof big - got < 8192 ? sizeof big - got : 8192;
		ssize_t n = read(fd, buf, want);
		cr_assert_gt(n, 0, "body cut at %zu", got);
		got += (size_t)n;
		if (trickle && got % (1 << 20) < (size_t)n) {
			zh_tc_write_all(fd, "x", 1);
			sent++;
		}
	}
	return sent;
}

/* A file body ahead of the 101 that met a full socket leaves a POLLOUT armed on io_uring:
 * the hand-over waits for it rather than refusing. */
static void upgrade_behind_a_file(void)
{
	char buf[1024];
	size_t sent;
	int fd = zh_tc_connect(zh_server_port(srv), 5, 0);
	static const char req[] = "GET /file HTTP/1.1\r\nHost: t\r\n\r\n" WS_REQ("/ws", "");
	zh_tc_write_all(fd, req, sizeof req - 1);
	usleep(50000);
	sent = read_big_response(fd, true);
	read_head(fd, buf, sizeof buf);
	cr_assert(strncmp(buf, "HTTP/1.1 101 ", 13) == 0, "%s", buf);
	zh_tc_write_all(fd, "!", 1);
	read_exact(fd, buf, sent + 1);
	cr_assert_eq(buf[sent], '!', "the trickled bytes, then the new one: %s", buf);
	cr_assert_eq(atomic_load(&cancelled), 0);
	close(fd);
	wait_contexts_back();
}

/* More early bytes than the receive buffer holds (io_uring takes them into its buffers,
 * epoll leaves them in the kernel): all reach the new owner. */
static void many_early_bytes(void)
{
	static char early[40000], back[40000];
	int fd = zh_tc_connect(zh_server_port(srv), 5, 0);
	static const char req[] = "GET /big HTTP/1.1\r\nHost: t\r\n\r\n" WS_REQ("/ws", "");
	for (size_t i = 0; i < sizeof early; i++)
		early[i] = (char)('a' + i % 26);
	zh_tc_write_all(fd, req, sizeof req - 1);
	usleep(50000);
	zh_tc_write_all(fd, early, sizeof early);
	(void)read_big_response(fd, false);
	read_head(fd, back, sizeof back);
	cr_assert(strncmp(back, "HTTP/1.1 101 ", 13) == 0, "%s", back);
	for (size_t got = 0; got < sizeof back;) {
		ssize_t n = read(fd, back + got, sizeof back - got);
		cr_assert_gt(n, 0, "echo cut at %zu", got);
		got += (size_t)n;
	}
	cr_assert(memcmp(back, early, sizeof early) == 0);
	close(fd);
	wait_contexts_back();
}

Test(upgrade, an_upgrade_behind_a_file_body)
{
	upgrade_behind_a_file();
}

Test(upgrade_uring, an_upgrade_behind_a_file_body)
{
	upgrade_behind_a_file();
}

Test(upgrade, more_early_bytes_than_the_receive_buffer)
{
	many_early_bytes();
}

Test(upgrade_uring, more_early_bytes_than_the_receive_buffer)
{
	many_early_bytes();
}

Test(upgrade, bytes_behind_a_long_response_reach_the_new_owner)
{
	bytes_behind_a_long_response();
}

Test(upgrade_uring, bytes_behind_a_long_response_reach_the_new_owner)
{
	bytes_behind_a_long_response();
}

/* Bytes that come while the 101 is on its way land in the ring's buffers: they reach the
 * new owner all the same, in order. */
Test(upgrade_uring, bytes_arriving_around_the_hand_over_are_kept_in_order)
{
	char buf[1024];
	for (int round = 0; round < 20; round++) {
		int fd = zh_tc_connect(zh_server_port(srv), 5, 0);
		static const char req[] = WS_REQ("/ws", "") "a";
		zh_tc_write_all(fd, req, sizeof req - 1);
		if (round % 2)
			usleep(1000);
		zh_tc_write_all(fd, "bcd", 3);
		read_head(fd, buf, sizeof buf);
		cr_assert(strncmp(buf, "HTTP/1.1 101 ", 13) == 0, "%s", buf);
		zh_tc_write_all(fd, "e", 1);
		read_exact(fd, buf, 5);
		cr_assert_str_eq(buf, "abcde", "round %d", round);
		close(fd);
	}
	cr_assert_eq(stat_upgraded(), 20);
	wait_contexts_back();
}

Test(upgrade, pipelined_responses_before_it_leave_first)
{
	char buf[1024];
	int fd = zh_tc_connect(zh_server_port(srv), 5, 0);
	static const char req[] = "GET /plain HTTP/1.1\r\nHost: t\r\n\r\n" WS_REQ("/ws", "") "ping";
	zh_tc_write_all(fd, req, sizeof req - 1);
	read_head(fd, buf, sizeof buf);
	cr_assert(strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) == 0, "%s", buf);
	read_exact(fd, buf, 5);
	cr_assert_str_eq(buf, "plain");
	read_head(fd, buf, sizeof buf);
	cr_assert(strncmp(buf, "HTTP/1.1 101 ", 13) == 0, "%s", buf);
	read_exact(fd, buf, 4);
	cr_assert_str_eq(buf, "ping");
	close(fd);
}

/* Each refusal answers 400 (the handler's fallback) and keeps the connection HTTP. */
static void expect_refused(const char *req, int asked, int rc)
{
	char buf[1024];
	int fd = zh_tc_connect(zh_server_port(srv), 5, 0);
	atomic_store(&last_rc, 1);
	zh_tc_write_all(fd, req, strlen(req));
	read_head(fd, buf, sizeof buf);
	cr_assert_eq(atomic_load(&last_rc), rc, "%s", req);
	cr_assert_eq(atomic_load(&asks), asked, "zh_req_upgrade: %s", req);
	cr_assert(strncmp(buf, "HTTP/1.1 400 ", 13) == 0, "%s", buf);
	cr_assert_null(strstr(buf, "Upgrade"), "%s", buf);
	close(fd);
}

Test(upgrade, refuses_what_the_client_did_not_offer)
{
	expect_refused("GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: echo\r\n\r\n", 0, -EINVAL);
	expect_refused("GET /ws HTTP/1.1\r\nHost: t\r\nConnection: upgrade\r\n\r\n", 0, -EINVAL);
	expect_refused("GET /ws HTTP/1.1\r\nHost: t\r\nConnection: upgrade\r\nUpgrade: echo2\r\n\r\n",
		       1, -EINVAL);
	expect_refused("GET /ws HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\n", 0,
		       -EINVAL);
	expect_refused("POST /ws HTTP/1.1\r\nHost: t\r\nConnection: upgrade\r\nUpgrade: echo\r\n"
		       "Content-Length: 2\r\n\r\nhi",
		       0, -EINVAL);
	cr_assert_eq(stat_upgraded(), 0);
	cr_assert_eq(atomic_load(&handed) + atomic_load(&cancelled), 0, "no call for a refusal");
}

Test(upgrade, refused_after_the_commit)
{
	char buf[1024];
	int fd = zh_tc_connect(zh_server_port(srv), 5, 0);
	static const char req[] = WS_REQ("/late", "");
	zh_tc_write_all(fd, req, sizeof req - 1);
	read_head(fd, buf, sizeof buf);
	cr_assert(strncmp(buf, "HTTP/1.1 200 ", 13) == 0, "%s", buf);
	cr_assert_eq(atomic_load(&last_rc), -EALREADY);
	close(fd);
}

/* A client that stops reading: a 16 MiB response ahead of the 101 fills its window, the
 * write timeout closes the connection, and the callback learns it with fd -1. */
Test(upgrade, a_connection_that_dies_first_gets_the_one_call_with_no_socket)
{
	int fd = zh_tc_connect(zh_server_port(srv), 5, 4096);
	static const char req[] = "GET /big HTTP/1.1\r\nHost: t\r\n\r\n" WS_REQ("/ws", "");
	zh_tc_write_all(fd, req, sizeof req - 1);
	for (int i = 0; i < 300 && atomic_load(&cancelled) == 0; i++)
		usleep(10000);
	cr_assert_eq(atomic_load(&cancelled), 1, "the owed call with fd -1");
	cr_assert_eq(atomic_load(&handed), 0);
	cr_assert_eq(stat_upgraded(), 0);
	wait_contexts_back();
	close(fd);
}

Test(upgrade, a_failed_101_becomes_a_closing_500_and_the_call_says_no_socket)
{
	char buf[1024];
	int fd = zh_tc_connect(zh_server_port(srv), 5, 0);
	static const char req[] = WS_REQ("/ws-fails", "") "early";
	zh_tc_write_all(fd, req, sizeof req - 1);
	read_head(fd, buf, sizeof buf);
	cr_assert(strncmp(buf, "HTTP/1.1 500 ", 13) == 0, "%s", buf);
	cr_assert_not_null(strstr(buf, "\r\nConnection: close\r\n"), "%s", buf);
	cr_assert_null(strstr(buf, "upgrade"), "%s", buf);
	cr_assert_null(strstr(buf, "Upgrade"), "%s", buf);
	for (int i = 0; i < 200 && atomic_load(&cancelled) == 0; i++)
		usleep(5000);
	cr_assert_eq(atomic_load(&cancelled), 1);
	cr_assert_eq(atomic_load(&handed), 0);
	cr_assert_eq(stat_upgraded(), 0);
	close(fd);
}
