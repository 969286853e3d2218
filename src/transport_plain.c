/* transport_plain.c — the first transport: a plain TCP socket (see zh__transport_t in
 * internal.h and "Seams" in docs/design.md).
 *
 * recv and send are inline in the connection layer (zh__tr_recv, zh__tr_send in
 * internal.h): a keep-alive request costs one read and one writev, with no indirect call. The other
 * transports registered here (tests/test_transport.c's double today; TLS next) are reached
 * through zh__transports[c->tr], chosen when the connection is accepted.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

/* recv and send are inline in internal.h (zh__plain_recv, zh__plain_send); the table
 * reaches them through these. */
static ssize_t plain_recv(zh__conn_t *c, void *buf, size_t cap)
{
	return zh__plain_recv(c, buf, cap);
}

static ssize_t plain_send(zh__conn_t *c, const struct iovec *iov, int cnt, bool more)
{
	return zh__plain_send(c, iov, cnt, more);
}

static ssize_t plain_peek(zh__conn_t *c, void *buf, size_t cap)
{
	ssize_t n = recv(c->fd, buf, cap, MSG_PEEK | MSG_DONTWAIT);
	return n < 0 ? -errno : n;
}

static ssize_t plain_send_file(zh__conn_t *c, int fd, uint64_t *off, size_t len)
{
	if (*off == ZH__PIPE_OFF) {
		/* a pipe entry: the bytes move from the pipe's pages to the socket, never
		 * through user space (the reverse proxy's large bodies) */
		ssize_t n;
		do
			n = splice(fd, NULL, c->fd, NULL, len, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		/* no SPLICE_F_MORE: like MSG_MORE it would hold a response's last partial
		 * segment back (measured: 5 ms per 512 KiB response) */
		while (n < 0 && errno == EINTR);
		return n < 0 ? -errno : n;
	}
	for (;;) {
		off_t o = (off_t)*off;
		ssize_t n = sendfile(c->fd, fd, &o, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		*off = (uint64_t)o;
		return n;
	}
}

static int plain_shutdown(zh__conn_t *c)
{
	return shutdown(c->fd, SHUT_WR) < 0 ? -errno : 0;
}

static void plain_close(zh__conn_t *c)
{
	close(c->fd); /* also leaves the epoll set; nothing to report: the fd is gone either way */
}

static unsigned plain_wants(zh__conn_t *c, unsigned blocked)
{
	(void)c;
	return blocked; /* a socket blocks only on its own direction */
}

/* The layer above (TLS) reads and writes the socket through these: the edge-triggered
 * epoll set reports both directions, so a full socket needs nothing armed. */
static ssize_t plain_read_raw(zh__conn_t *c, void *buf, size_t cap)
{
	for (;;) {
		ssize_t n = zh__sys_read(c->fd, buf, cap);
		if (n >= 0)
			return n;
		if (errno != EINTR)
			return -errno;
	}
}

static ssize_t plain_write_raw(zh__conn_t *c, const void *buf, size_t len)
{
	for (;;) {
		ssize_t n = send(c->fd, buf, len, MSG_NOSIGNAL);
		if (n >= 0)
			return n;
		if (errno != EINTR)
			return -errno;
	}
}

const zh__transport_t zh__transport_plain = {
	.name = "plain",
	.pipe_entries = true,
	.recv = plain_recv,
	.peek = plain_peek,
	.send = plain_send,
	.send_file = plain_send_file,
	.shutdown = plain_shutdown,
	.close = plain_close,
	.wants = plain_wants,
	.read_raw = plain_read_raw,
	.write_raw = plain_write_raw,
};

const zh__transport_t *zh__transports[ZH__TRANSPORTS_MAX] = {&zh__transport_plain};
uint8_t zh__transport_default;

int zh__transport_register(const zh__transport_t *t)
{
	for (uint8_t i = 1; i < ZH__TRANSPORTS_MAX; i++) {
		if (zh__transports[i] == NULL)
			zh__transports[i] = t;
		if (zh__transports[i] == t)
			return i;
	}
	return -ENOSPC;
}

int zh__transport_install(const zh__transport_t *t)
{
	uint8_t i;
	if (t == NULL || t == &zh__transport_plain) {
		zh__transport_default = 0;
		return 0;
	}
	for (i = 1; i < ZH__TRANSPORTS_MAX; i++) {
		if (zh__transports[i] == NULL)
			zh__transports[i] = t;
		if (zh__transports[i] == t) {
			zh__transport_default = i;
			return 0;
		}
	}
	return -ENOSPC;
}

/* ---- public: what a TLS connection negotiated (zerohttp.h, "Listeners and TLS") ---- */

static const char *tr_info(const zh_request_t *req, int what)
{
	zh__conn_t *c = req->ctx->conn;
	if (c->tr == 0 || zh__tr(c)->info == NULL)
		return NULL;
	return zh__tr(c)->info(c, what);
}

const char *zh_req_tls_version(const zh_request_t *req)
{
	return tr_info(req, 0);
}

const char *zh_req_tls_cipher(const zh_request_t *req)
{
	return tr_info(req, 1);
}
