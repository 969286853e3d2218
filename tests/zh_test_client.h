/* Client helpers shared by the in-process server tests (test_server, test_middleware,
 * test_compose, test_review5): header-only, every function static.
 *
 * Always: zh_tc_connect() and zh_tc_write_all().
 * Without ZH_TC_CONN: send_all(int fd, const char *s), for the files whose client reads
 *   into a file-scope buffer.
 * With ZH_TC_CONN defined before the include: a growing per-connection buffer (conn_t),
 *   test memory registered for the suite's .fini (xmalloc/xrealloc/xfree/free_owned; at
 *   most ZH_TC_OWNED_MAX blocks, 1024 unless defined), and gzip decoding (link with -lz). */
#ifndef ZH_TEST_CLIENT_H
#define ZH_TEST_CLIENT_H

#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

/* A TCP connection to 127.0.0.1:port, reads timing out after timeout_s seconds; rcvbuf, if
 * not 0, is the SO_RCVBUF set before connect (the window is agreed then). */
static int zh_tc_connect(uint16_t port, long timeout_s, unsigned rcvbuf)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
	struct timeval tv = {.tv_sec = timeout_s};
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_geq(fd, 0);
	if (rcvbuf)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	return fd;
}

/* Writes all len bytes of s to fd (asserts on a failed or empty write). */
static void zh_tc_write_all(int fd, const char *s, size_t len)
{
	size_t off = 0;
	while (off < len) {
		ssize_t n = write(fd, s + off, len - off);
		cr_assert_gt(n, 0, "write: %s", strerror(errno));
		off += (size_t)n;
	}
}

#ifndef ZH_TC_CONN

/* Writes the whole string s to fd. */
static void send_all(int fd, const char *s)
{
	zh_tc_write_all(fd, s, strlen(s));
}

#else /* ZH_TC_CONN */

#include <zlib.h>

/* ---- test memory: every client-side buffer is registered, so that a test stopped by a
 * failed assertion still frees it in the suite's .fini (LeakSanitizer stays quiet) -------- */

#ifndef ZH_TC_OWNED_MAX
#define ZH_TC_OWNED_MAX 1024
#endif

static void *owned[ZH_TC_OWNED_MAX];
static size_t nowned;

/* realloc() that asserts, and keeps the block registered (a new one, if old is NULL). */
static void *xrealloc(void *old, size_t n)
{
	void *p = realloc(old, n ? n : 1);
	cr_assert_not_null(p);
	for (size_t i = 0; old && i < nowned; i++)
		if (owned[i] == old) {
			owned[i] = p;
			return p;
		}
	cr_assert_lt(nowned, sizeof owned / sizeof owned[0]);
	owned[nowned++] = p;
	return p;
}

/* A new registered block of n bytes. */
static void *xmalloc(size_t n)
{
	return xrealloc(NULL, n);
}

/* Frees a registered block (or NULL) and forgets it. */
static void xfree(void *p)
{
	for (size_t i = 0; p && i < nowned; i++)
		if (owned[i] == p) {
			owned[i] = owned[--nowned];
			break;
		}
	free(p);
}

/* Frees every block still registered: for a suite's .fini. */
static void free_owned(void)
{
	while (nowned)
		free(owned[--nowned]);
}

/* ---- a connection with a growing read buffer ----------------------------------------------- */

typedef struct {
	int fd;
	unsigned char *buf;
	size_t have, cap;
} conn_t;

/* Closes the connection (if open) and frees its buffer. */
static void hang_up(conn_t *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	xfree(c->buf);
	c->buf = NULL;
}

/* Writes all len bytes of s to the connection. */
static void send_all(conn_t *c, const char *s, size_t len)
{
	zh_tc_write_all(c->fd, s, len);
}

/* One read() into the buffer (grown to keep 16 KiB free); false on EOF, error or timeout. */
static bool fill(conn_t *c)
{
	ssize_t n;
	if (c->cap - c->have < 16384) {
		c->cap *= 2;
		c->buf = xrealloc(c->buf, c->cap);
	}
	n = read(c->fd, c->buf + c->have, c->cap - c->have);
	if (n <= 0)
		return false;
	c->have += (size_t)n;
	return true;
}

/* Reads until n bytes are buffered; asserts that the connection does not end inside what. */
static void need(conn_t *c, size_t n, const char *what)
{
	while (c->have < n)
		cr_assert(fill(c), "connection ended inside %s", what);
}

/* Drops the first n buffered bytes. */
static void consume(conn_t *c, size_t n)
{
	memmove(c->buf, c->buf + n, c->have - n);
	c->have -= n;
}

/* qsort() comparison of two char * strings. */
static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Inflates the whole gzip stream in[0..len) into a new registered block *out (*out_len
 * bytes); asserts that the stream is complete and that nothing follows it. */
static void inflate_all(const unsigned char *in, size_t len, unsigned char **out,
			size_t *out_len)
{
	z_stream zs;
	size_t cap = len * 4 + 1024;
	int z;
	memset(&zs, 0, sizeof zs);
	cr_assert_eq(inflateInit2(&zs, 15 + 16), Z_OK); /* gzip wrapper only */
	*out = xmalloc(cap);
	zs.next_in = (Bytef *)(uintptr_t)in;
	zs.avail_in = (uInt)len;
	for (;;) {
		zs.next_out = *out + zs.total_out;
		zs.avail_out = (uInt)(cap - zs.total_out);
		z = inflate(&zs, Z_NO_FLUSH);
		if (z == Z_STREAM_END)
			break;
		cr_assert(z == Z_OK || z == Z_BUF_ERROR, "inflate: %d (%s)", z,
			  zs.msg ? zs.msg : "");
		if (zs.avail_out == 0) {
			cap *= 2;
			*out = xrealloc(*out, cap);
		} else {
			cr_assert(zs.avail_in != 0, "the gzip stream is truncated");
		}
	}
	cr_assert_eq(zs.avail_in, 0u, "%u bytes after the end of the gzip stream", zs.avail_in);
	*out_len = zs.total_out;
	inflateEnd(&zs);
}

#endif /* ZH_TC_CONN */

#endif /* ZH_TEST_CLIENT_H */
