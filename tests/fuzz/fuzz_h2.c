/* fuzz_h2.c — libFuzzer target for the HTTP/2 front (libzerohttp-h2 over nghttp2): the
 * connection's turns, the streams' exchanges, flow control, the limits, GOAWAY.
 *
 * A real server runs in this process on 127.0.0.1 (one worker, HTTP/2 enabled, small
 * pools, short timeouts) with routes of each kind: a whole body, a producer, a buffered
 * echo of the request body, a streaming body reader, trailers. Each input is a sequence of
 * frames sent after the client preface and an empty SETTINGS frame; then our side shuts
 * its output and reads until the server closes.
 *
 * Checked: the server closes the connection within 5 s (no hang, no spin), and by then
 * every I/O context of the connection and its streams is back in the pool (no leak of a
 * context or a stream slot), whatever the frames. ASan/UBSan report the rest.
 */
#include "fuzz_common.h"
#include "internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static zh_server_t *srv;
static pthread_t runner;

static void *run(void *arg)
{
	(void)arg;
	if (zh_server_run(srv) != 0)
		abort();
	return NULL;
}

static void h_whole(zh_request_t *req, zh_response_t *resp, void *arg)
{
	(void)req, (void)arg;
	if (zh_reply(resp, 200, "text/plain", "hello\n", 6) < 0)
		return;
}

static int more(zh_response_t *resp, void *arg)
{
	static const char chunk[4096];
	uintptr_t *left = arg;
	if (resp == NULL)
		return 0;
	if (zh_write_static(resp, chunk, sizeof chunk) < 0)
		return -EIO;
	if (--*left)
		return ZH_PRODUCE_MORE;
	return zh_resp_trailer(resp, "x-done", "1") < 0 ? -EIO : ZH_PRODUCE_DONE;
}

static void h_produce(zh_request_t *req, zh_response_t *resp, void *arg)
{
	uintptr_t *left = zh_resp_state(resp);
	(void)req, (void)arg;
	*left = 40; /* 160 KiB: more than a window */
	if (zh_resp_produce(resp, more, left) < 0)
		(void)zh_reply(resp, 500, NULL, NULL, 0);
}

static void h_echo(zh_request_t *req, zh_response_t *resp, void *arg)
{
	zh_slice_t b;
	(void)arg;
	if (zh_body_all(req, &b) < 0 || zh_reply(resp, 200, "application/x-b", b.ptr, b.len) < 0)
		return;
}

static void read_body(zh_request_t *req, zh_response_t *resp, void *arg)
{
	char buf[1024];
	ssize_t n;
	(void)arg;
	while ((n = zh_body_read(req, buf, sizeof buf)) > 0)
		;
	if (n == -EAGAIN && zh_body_wait(req, read_body, NULL) == 0)
		return;
	(void)zh_reply(resp, n == 0 ? 200 : 400, "text/plain", "done\n", 5);
}

static void start(void)
{
	zh_config_t cfg;
	zh_http2_config_t h2;
	int err = 0;
	zh_config_init(&cfg);
	cfg.address = "127.0.0.1";
	cfg.port = 0;
	cfg.workers = 1;
	cfg.io_contexts = 64;
	cfg.max_connections = 256;
	cfg.large_buffers = 16;
	cfg.body_buffers = 4;
	cfg.max_body = 256 * 1024;
	cfg.header_timeout_ms = 1000;
	cfg.write_timeout_ms = 1000;
	cfg.body_timeout_ms = 1000;
	if ((srv = zh_server_new(&cfg, &err)) == NULL)
		abort();
	zh_http2_config_init(&h2);
	h2.max_concurrent_streams = 16;
	if (zh_http2_enable(srv, &h2) < 0 ||
	    zh_server_route(srv, ZH_GET | ZH_HEAD, "/", 0, h_whole, NULL) < 0 ||
	    zh_server_route(srv, ZH_GET, "/produce", 0, h_produce, NULL) < 0 ||
	    zh_server_route(srv, ZH_POST, "/echo", 0, h_echo, NULL) < 0 ||
	    zh_server_route(srv, ZH_POST, "/stream", ZH_ROUTE_STREAM_BODY, read_body, NULL) < 0 ||
	    pthread_create(&runner, NULL, run, NULL) != 0)
		abort();
}

static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\4\0\0\0\0\0";

/* connect(), finished even when a signal (libFuzzer's SIGALRM timer) interrupts it: the
 * handshake goes on in the kernel; wait until the socket is writable and read its outcome */
static int connect_fully(int fd, const struct sockaddr_in *a)
{
	int err = 0;
	socklen_t len = sizeof err;
	struct pollfd p = {.fd = fd, .events = POLLOUT};
	if (connect(fd, (const struct sockaddr *)a, sizeof *a) == 0)
		return 0;
	if (errno != EINTR)
		return -1;
	while (poll(&p, 1, 1000) < 0 && errno == EINTR)
		;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
		errno = err ? err : errno;
		return -1;
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(0)};
	static char sink[65536];
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	uint64_t deadline;
	if (srv == NULL)
		start();
	a.sin_port = htons(zh_server_port(srv));
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	{
		/* a client address of its own from 127/8 for every run: hundreds of thousands
		 * of connections would otherwise run out of ports to TIME_WAIT */
		static uint32_t n;
		struct sockaddr_in me = {.sin_family = AF_INET};
		n++;
		me.sin_addr.s_addr = htonl(0x7f000000u | (1 + n % 0xfffffe));
		CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&me, sizeof me) == 0, "bind: %d", errno);
	}
	CHECK(connect_fully(fd, &a) == 0, "connect: %d", errno);
	(void)!send(fd, preface, sizeof preface - 1, MSG_NOSIGNAL);
	for (size_t off = 0; off < size;) {
		ssize_t n = send(fd, data + off, size - off, MSG_NOSIGNAL);
		if (n <= 0)
			break; /* the server closed (GOAWAY): the rest is not read */
		off += (size_t)n;
	}
	shutdown(fd, SHUT_WR);
	deadline = zh__now_ms() + 5000;
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t n;
		CHECK(zh__now_ms() < deadline, "the server did not close within 5 s");
		if (poll(&p, 1, 100) <= 0)
			continue;
		n = recv(fd, sink, sizeof sink, 0);
		if (n <= 0)
			break;
	}
	close(fd);
	/* the connection's and its streams' contexts are back once it has closed */
	deadline = zh__now_ms() + 2000;
	while (__atomic_load_n(&srv->workers[0].stats.io_contexts_in_use, __ATOMIC_RELAXED)) {
		CHECK(zh__now_ms() < deadline, "%llu I/O contexts still lent",
		      (unsigned long long)srv->workers[0].stats.io_contexts_in_use);
		usleep(1000);
	}
	return 0;
}
