/* test_listeners.c — listening sockets handed over between processes (server.c, loop.c):
 * inherited sockets (zh_listener_t.inherited), zh_server_listener_fds, and the gentle stop
 * that gives idle keep-alive connections a grace period (zh_server_stop_gently).
 * Each test runs a server in this process on 127.0.0.1 and talks to it over raw sockets.
 */
#include <criterion/criterion.h>

#include "internal.h"
#include "zh_test_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static void h_ok(zh_request_t *req, zh_response_t *resp, void *arg)
{
	(void)req, (void)arg;
	zh_write_static(resp, "ok", 2);
}

/* A bound, listening TCP socket on 127.0.0.1, port chosen by the kernel: what systemd's
 * socket unit or an old process would hand over. */
static int listening_socket(uint16_t *port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof sa;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_geq(fd, 0);
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	cr_assert_eq(listen(fd, 64), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	*port = ntohs(sa.sin_port);
	return fd;
}

static zh_server_t *start(zh_config_t *cfg, pthread_t *runner)
{
	int err = 0;
	zh_server_t *srv = zh_server_new(cfg, &err);
	cr_assert_not_null(srv, "zh_server_new: %d", err);
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/ok", 0, h_ok, NULL), 0);
	cr_assert_eq(pthread_create(runner, NULL, zh_tc_run, srv), 0);
	return srv;
}

static void stop(zh_server_t *srv, pthread_t runner)
{
	zh_server_stop(srv);
	pthread_join(runner, NULL);
	zh_server_free(srv);
}

/* One GET /ok on a new connection: the whole exchange (Connection: close). */
static void get_ok(uint16_t port)
{
	char buf[512];
	int fd = zh_tc_connect(port, 5, 0);
	static const char req[] = "GET /ok HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
	zh_tc_write_all(fd, req, sizeof req - 1);
	zh_tc_read_to_close(fd, buf, sizeof buf);
	close(fd);
	cr_assert(strncmp(buf, "HTTP/1.1 200 ", 13) == 0, "%s", buf);
	cr_assert_str_eq(zh_tc_body_of(buf), "ok");
}

/* Served by every worker from the one inherited socket; the socket stays the caller's:
 * open and still listening after the server is gone, so it can be handed on. */
Test(listeners, inherited_socket_is_served_and_left_open)
{
	zh_config_t cfg;
	pthread_t runner;
	uint16_t port;
	int fd = listening_socket(&port), got[4];
	zh_listener_t l = {.inherited = true, .fd = fd};
	zh_server_t *srv;

	zh_tc_config(&cfg);
	cfg.workers = 2;
	cfg.listeners = &l;
	cfg.nlisteners = 1;
	srv = start(&cfg, &runner);
	cr_assert_eq(zh_server_listener_port(srv, 0), port);
	cr_assert_eq(zh_server_listener_fds(srv, 0, got, 4), 1);
	cr_assert_eq(got[0], fd);
	for (int i = 0; i < 20; i++)
		get_ok(port);
	stop(srv, runner);
	cr_assert_geq(fcntl(fd, F_GETFD), 0, "the server closed the inherited socket");
	cr_assert_neq(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
	/* still listening: a connection queues (nobody accepts it, but it is not refused) */
	close(zh_tc_connect(port, 1, 0));
	close(fd);
}

/* A new server on the sockets of a running one (as an upgraded process would be): both
 * serve, and once the first has stopped, the second answers everything. */
Test(listeners, takeover_from_a_running_server)
{
	zh_config_t cfg;
	pthread_t r1, r2;
	int fds[8];
	unsigned n;
	zh_listener_t ls[8];
	zh_server_t *old, *new;
	uint16_t port;

	zh_tc_config(&cfg);
	cfg.workers = 2;
	old = start(&cfg, &r1);
	port = zh_server_port(old);
	n = zh_server_listener_fds(old, 0, fds, 8);
	cr_assert_eq(n, 2, "one SO_REUSEPORT socket per worker");
	cr_assert_eq(zh_server_listener_fds(old, 0, fds, 1), 2, "the count, even past cap");
	cr_assert_eq(zh_server_listener_fds(old, 1, fds, 8), 0, "no such listener");
	n = zh_server_listener_fds(old, 0, fds, 8);
	for (unsigned i = 0; i < n; i++) /* the new process's own descriptors */
		ls[i] = (zh_listener_t){.inherited = true, .fd = fcntl(fds[i], F_DUPFD_CLOEXEC, 3)};
	cfg.listeners = ls;
	cfg.nlisteners = n;
	new = start(&cfg, &r2);
	cr_assert_eq(zh_server_listener_port(new, 0), port);
	cr_assert_eq(zh_server_listener_port(new, 1), port);
	get_ok(port);
	stop(old, r1);
	for (int i = 0; i < 40; i++) /* every socket of the port is served by the new one */
		get_ok(port);
	stop(new, r2);
	for (unsigned i = 0; i < n; i++)
		close(ls[i].fd);
}

Test(listeners, inherited_descriptor_must_be_a_listening_socket)
{
	zh_config_t cfg;
	int err = 0, fd = socket(AF_INET, SOCK_STREAM, 0);
	zh_listener_t l = {.inherited = true, .fd = fd};
	zh_tc_config(&cfg);
	cfg.listeners = &l;
	cfg.nlisteners = 1;
	cr_assert_null(zh_server_new(&cfg, &err));
	cr_assert_eq(err, -ENOTSOCK, "not listening: %d", err);
	l.fd = -1;
	cr_assert_null(zh_server_new(&cfg, &err));
	cr_assert_eq(err, -EINVAL);
	close(fd);
}

/* An idle keep-alive connection whose next request arrives after the stop: a plain stop
 * closes it at once (the request is never answered); a gentle stop answers it, with
 * Connection: close, and the server still stops. */
static void request_after_stop(unsigned grace_ms, bool answered)
{
	zh_config_t cfg;
	pthread_t runner;
	zh_server_t *srv;
	char buf[1024];
	static const char req[] = "GET /ok HTTP/1.1\r\nHost: t\r\n\r\n";
	int fd;
	size_t n;

	zh_tc_config(&cfg);
	srv = start(&cfg, &runner);
	fd = zh_tc_connect(zh_server_port(srv), 5, 0);
	zh_tc_write_all(fd, req, sizeof req - 1);
	cr_assert_gt(read(fd, buf, sizeof buf), 0); /* the first response: now idle */
	if (grace_ms)
		zh_server_stop_gently(srv, grace_ms);
	else
		zh_server_stop(srv);
	usleep(100000);
	(void)!write(fd, req, sizeof req - 1); /* may fail: the server closed it */
	n = zh_tc_read_to_close(fd, buf, sizeof buf);
	if (answered) {
		cr_assert(strncmp(buf, "HTTP/1.1 200 ", 13) == 0, "%s", buf);
		cr_assert_not_null(strstr(buf, "Connection: close\r\n"), "%s", buf);
	} else {
		cr_assert_eq(n, 0, "answered after a plain stop: %s", buf);
	}
	close(fd);
	pthread_join(runner, NULL);
	zh_server_free(srv);
}

Test(listeners, plain_stop_closes_idle_connections_at_once)
{
	request_after_stop(0, false);
}

Test(listeners, gentle_stop_answers_a_request_within_the_grace)
{
	request_after_stop(2000, true);
}

/* Idle connections that send nothing close when the grace ends: the stop takes about the
 * grace, not the drain timeout. */
Test(listeners, gentle_stop_closes_silent_idle_connections_after_the_grace)
{
	zh_config_t cfg;
	pthread_t runner;
	zh_server_t *srv;
	char buf[512];
	static const char req[] = "GET /ok HTTP/1.1\r\nHost: t\r\n\r\n";
	struct timespec t0, t1;
	int fd;
	long ms;

	zh_tc_config(&cfg);
	cfg.drain_timeout_ms = 10000;
	srv = start(&cfg, &runner);
	fd = zh_tc_connect(zh_server_port(srv), 5, 0);
	zh_tc_write_all(fd, req, sizeof req - 1);
	cr_assert_gt(read(fd, buf, sizeof buf), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	zh_server_stop_gently(srv, 300);
	cr_assert_eq(read(fd, buf, sizeof buf), 0, "closed, without a response");
	pthread_join(runner, NULL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	cr_assert(ms >= 250 && ms < 3000, "stopped after %ld ms", ms);
	close(fd);
	zh_server_free(srv);
}
