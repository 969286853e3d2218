/* Client helpers shared by the in-process server tests (test_server, test_middleware,
 * test_compose, test_gzip, test_conn, test_ext): header-only, every function static (inline
 * when a file may well not use it). There is one response reader, zh_tc_read(): a test file
 * never frames responses itself.
 *
 * Always: zh_tc_config() and zh_tc_run() for the server under test, zh_tc_connect(),
 *   zh_tc_write_all(), zh_tc_read_to_close() and zh_tc_body_of() (for connections whose
 *   last request closes them); a growing per-connection buffer (conn_t), test memory
 *   registered for the suite's .fini (xmalloc/xrealloc/xfree/free_owned; at most
 *   ZH_TC_OWNED_MAX blocks, 1024 unless defined), gzip decoding (link with -lz), and the
 *   strict reader zh_tc_read(c, r, head_request): exact framing, decoded body. A file may
 *   add fields to resp_t (ZH_TC_RESP_EXTRA, a list of member declarations) and a function run
 *   on each head before its body is read (ZH_TC_ON_HEAD, its name).
 * With ZH_TC_CONN defined before the include: send_all(c, s, len) and
 *   read_response(c, r, head_request) on the file's own conn_t values.
 * Without it, for the files that read one connection at a time by fd: send_all(fd, s),
 *   read_response(fd, r) and read_head_response(fd, r) (response_t, whose body is valid
 *   until the next read), zh_tc_forget() when a new connection starts. */
#ifndef ZH_TEST_CLIENT_H
#define ZH_TEST_CLIENT_H

#include <criterion/criterion.h>
#include <zerohttp.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

/* What every server under test starts from: 127.0.0.1 on a port the kernel chooses (read it
 * with zh_server_port), one worker, 8 I/O contexts, 64 connections, 8 large buffers. */
static inline void zh_tc_config(zh_config_t *cfg)
{
	zh_config_init(cfg);
	cfg->port = 0;
	cfg->workers = 1;
	cfg->io_contexts = 8;
	cfg->max_connections = 64;
	cfg->large_buffers = 8;
}

/* A thread's body: runs the server srv until zh_server_stop(srv). */
static inline void *zh_tc_run(void *srv)
{
	(void)!zh_server_run(srv);
	return NULL;
}

/* A TCP connection to 127.0.0.1:port, reads timing out after timeout_s seconds; rcvbuf, if
 * not 0, is the SO_RCVBUF set before connect (the window is agreed then). */
static inline int zh_tc_connect(uint16_t port, long timeout_s, unsigned rcvbuf)
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
static inline void zh_tc_write_all(int fd, const char *s, size_t len)
{
	size_t off = 0;
	while (off < len) {
		ssize_t n = write(fd, s + off, len - off);
		cr_assert_gt(n, 0, "write: %s", strerror(errno));
		off += (size_t)n;
	}
}

/* Reads fd until EOF or a read timeout (at most cap - 1 bytes): NUL-terminated, its length. */
static inline size_t zh_tc_read_to_close(int fd, char *buf, size_t cap)
{
	size_t len = 0;
	ssize_t n;
	while (len < cap - 1 && (n = read(fd, buf + len, cap - 1 - len)) > 0)
		len += (size_t)n;
	buf[len] = '\0';
	return len;
}

/* The body of the first response in resp: what follows its blank line. */
static inline const char *zh_tc_body_of(const char *resp)
{
	const char *p = strstr(resp, "\r\n\r\n");
	cr_assert_not_null(p, "no head end in: %.200s", resp);
	return p + 4;
}

/* ---- test memory: every client-side buffer is registered, so that a test stopped by a
 * failed assertion still frees it in the suite's .fini (LeakSanitizer stays quiet) -------- */

#ifndef ZH_TC_OWNED_MAX
#define ZH_TC_OWNED_MAX 1024
#endif

static void *owned[ZH_TC_OWNED_MAX];
static size_t nowned;

/* realloc() that asserts, and keeps the block registered (a new one, if old is NULL). */
static inline void *xrealloc(void *old, size_t n)
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
static inline void *xmalloc(size_t n)
{
	return xrealloc(NULL, n);
}

/* Frees a registered block (or NULL) and forgets it. */
static inline void xfree(void *p)
{
	for (size_t i = 0; p && i < nowned; i++)
		if (owned[i] == p) {
			owned[i] = owned[--nowned];
			break;
		}
	free(p);
}

/* Frees every block still registered: for a suite's .fini. */
static inline void free_owned(void)
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
static inline void hang_up(conn_t *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	xfree(c->buf);
	c->buf = NULL;
}

/* Writes all len bytes of s to the connection. */
static inline void zh_tc_send(conn_t *c, const char *s, size_t len)
{
	zh_tc_write_all(c->fd, s, len);
}

/* One read() into the buffer (grown to keep 16 KiB free); false on EOF, error or timeout. */
static inline bool fill(conn_t *c)
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
static inline void need(conn_t *c, size_t n, const char *what)
{
	while (c->have < n)
		cr_assert(fill(c), "connection ended inside %s", what);
}

/* Drops the first n buffered bytes. */
static inline void consume(conn_t *c, size_t n)
{
	memmove(c->buf, c->buf + n, c->have - n);
	c->have -= n;
}

/* qsort() comparison of two char * strings. */
static inline int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Inflates the whole gzip stream in[0..len) into a new registered block *out (*out_len
 * bytes); asserts that the stream is complete and that nothing follows it. */
static inline void inflate_all(const unsigned char *in, size_t len, unsigned char **out,
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

/* ---- one response, read strictly ----------------------------------------------------------- */

typedef struct {
	int status;
	char head[8192];
	long long clen; /* -1: none */
	bool chunked;
	int nchunks;
	unsigned char *wire; /* the body as framed on the wire, framing removed */
	size_t wire_len;
	unsigned char *body; /* decoded (inflated if Content-Encoding: gzip), NUL after it */
	size_t body_len;
#ifdef ZH_TC_RESP_EXTRA
	ZH_TC_RESP_EXTRA
#endif
} resp_t;

#ifdef ZH_TC_ON_HEAD
static void ZH_TC_ON_HEAD(resp_t *r);
#endif

static inline void resp_free(resp_t *r)
{
	xfree(r->wire);
	xfree(r->body);
	r->wire = r->body = NULL;
}

/* How many fields called name the head has; the first one's value (trimmed) in out. */
static inline int field(const resp_t *r, const char *name, char *out, size_t cap)
{
	const char *p = strstr(r->head, "\r\n");
	size_t nl = strlen(name);
	int n = 0;
	if (cap)
		out[0] = '\0';
	while (p && p[2] != '\r') {
		const char *line = p + 2, *eol = strstr(line, "\r\n"), *v, *e;
		if (strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
			v = line + nl + 1;
			while (*v == ' ' || *v == '\t')
				v++;
			e = eol;
			while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
				e--;
			if (n++ == 0 && cap)
				snprintf(out, cap, "%.*s", (int)(e - v), v);
		}
		p = eol;
	}
	return n;
}

/* The head's status and framing fields: each at most once, not both framings. */
static inline void parse_framing(resp_t *r)
{
	char v[64];
	int ncl, nte;
	cr_assert_eq(sscanf(r->head, "HTTP/1.1 %3d ", &r->status), 1, "status line: %.80s",
		     r->head);
	ncl = field(r, "Content-Length", v, sizeof v);
	r->clen = ncl ? strtoll(v, NULL, 10) : -1;
	nte = field(r, "Transfer-Encoding", v, sizeof v);
	if (nte)
		cr_assert_str_eq(v, "chunked");
	r->chunked = nte > 0;
	cr_assert_leq(ncl, 1, "Content-Length twice");
	cr_assert_leq(nte, 1, "Transfer-Encoding twice");
	cr_assert_leq(field(r, "Content-Encoding", NULL, 0), 1, "Content-Encoding twice");
	cr_assert(!(ncl && nte), "both Content-Length and Transfer-Encoding:\n%s", r->head);
}

/* A chunked body into r->wire, exactly: hex size lines with nothing after the size, CRLF
 * after each chunk's data, no trailers after the last chunk. */
static inline void read_chunks(conn_t *c, resp_t *r)
{
	size_t cap = 1 << 16;
	r->wire = xmalloc(cap);
	for (;;) {
		unsigned char *eol;
		char *hend;
		unsigned long size;
		while ((eol = memmem(c->buf, c->have, "\r\n", 2)) == NULL)
			cr_assert(fill(c), "connection ended inside a chunk size line");
		cr_assert(isxdigit(c->buf[0]), "bad chunk size line");
		size = strtoul((char *)c->buf, &hend, 16);
		cr_assert_eq((unsigned char *)hend, eol, "a chunk size line with more: %.20s",
			     (char *)c->buf);
		consume(c, (size_t)(eol - c->buf) + 2);
		if (size == 0) {
			need(c, 2, "the last chunk");
			cr_assert(c->buf[0] == '\r' && c->buf[1] == '\n',
				  "trailers or junk after the last chunk");
			consume(c, 2);
			break;
		}
		need(c, size + 2, "a chunk");
		cr_assert(c->buf[size] == '\r' && c->buf[size + 1] == '\n',
			  "chunk data does not end with CRLF");
		while (r->wire_len + size > cap)
			r->wire = xrealloc(r->wire, cap *= 2);
		memcpy(r->wire + r->wire_len, c->buf, size);
		r->wire_len += size;
		r->nchunks++;
		consume(c, size + 2);
	}
}

/* One response: head, then the body by its framing (none for HEAD, 204 and 304), which
 * must be exact; the bytes after it are the next response's. ZH_TC_TRACE=1 in the
 * environment prints every head to stderr, for debugging. */
static inline void zh_tc_read(conn_t *c, resp_t *r, bool head_request)
{
	unsigned char *end;
	size_t hlen;
	char ce[64];
	memset(r, 0, sizeof *r);
	while ((end = memmem(c->buf, c->have, "\r\n\r\n", 4)) == NULL)
		cr_assert(fill(c), "connection ended before a full head (%zu bytes)", c->have);
	hlen = (size_t)(end - c->buf) + 4;
	cr_assert_lt(hlen, sizeof r->head);
	memcpy(r->head, c->buf, hlen);
	r->head[hlen] = '\0';
	consume(c, hlen);
	if (getenv("ZH_TC_TRACE"))
		fprintf(stderr, "%s", r->head);
#ifdef ZH_TC_ON_HEAD
	ZH_TC_ON_HEAD(r);
#endif
	parse_framing(r);
	if (head_request || r->status < 200 || r->status == 204 || r->status == 304) {
		/* RFC 9112 §6.3: no body after a HEAD, a 1xx, a 204 or a 304 */
		if (r->status == 204)
			cr_assert(r->clen < 0 && !r->chunked, "a 204 with framing:\n%s", r->head);
		r->wire = xmalloc(1);
	} else if (r->chunked) {
		read_chunks(c, r);
	} else {
		cr_assert_geq(r->clen, 0, "an HTTP/1.1 response without framing:\n%s", r->head);
		need(c, (size_t)r->clen, "a Content-Length body");
		r->wire = xmalloc((size_t)r->clen + 1);
		memcpy(r->wire, c->buf, (size_t)r->clen);
		r->wire_len = (size_t)r->clen;
		consume(c, (size_t)r->clen);
	}
	if (field(r, "Content-Encoding", ce, sizeof ce) && !head_request) {
		/* a HEAD names its GET's encoding, without a body */
		cr_assert_str_eq(ce, "gzip");
		inflate_all(r->wire, r->wire_len, &r->body, &r->body_len);
		r->body = xrealloc(r->body, r->body_len + 1);
	} else {
		r->body = xmalloc(r->wire_len + 1);
		memcpy(r->body, r->wire, r->wire_len);
		r->body_len = r->wire_len;
	}
	r->body[r->body_len] = '\0';
	if (c->have)
		cr_assert(c->have >= 5 && memcmp(c->buf, "HTTP/", 5) == 0,
			  "bytes after a response that are not a response: %.40s", (char *)c->buf);
}

/* After the response to a "Connection: close" request: the server closes, nothing more. */
static inline void expect_eof(conn_t *c)
{
	cr_assert(!fill(c), "bytes after the last response");
	cr_assert_eq(c->have, 0u, "%zu bytes after the last response", c->have);
}

/* A connection to 127.0.0.1:port with a fresh 64 KiB buffer (see zh_tc_connect). */
static inline void zh_tc_dial(conn_t *c, uint16_t port, long timeout_s, unsigned rcvbuf)
{
	c->fd = zh_tc_connect(port, timeout_s, rcvbuf);
	c->cap = 1 << 16;
	c->have = 0;
	c->buf = xmalloc(c->cap);
}

/* GET path with the extra header lines (each ending in CRLF; NULL: none) and
 * Connection: close on a connection of its own; the one response in *r, then EOF. */
static inline void zh_tc_get(uint16_t port, const char *path, const char *extra, resp_t *r)
{
	char req[1024];
	conn_t c;
	int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\n%sConnection: close\r\n\r\n",
			 path, extra ? extra : "");
	cr_assert(n > 0 && (size_t)n < sizeof req);
	zh_tc_dial(&c, port, 3, 0);
	zh_tc_send(&c, req, (size_t)n);
	zh_tc_read(&c, r, false);
	expect_eof(&c);
	hang_up(&c);
}

/* CLOCK_MONOTONIC in milliseconds. */
static inline long long zh_tc_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#ifdef ZH_TC_CONN

/* The per-connection names of the files that keep their own conn_t. */
static inline void send_all(conn_t *c, const char *s, size_t len)
{
	zh_tc_send(c, s, len);
}

static inline void read_response(conn_t *c, resp_t *r, bool head_request)
{
	zh_tc_read(c, r, head_request);
}

#else /* !ZH_TC_CONN */

/* ---- one connection at a time, by fd: the same reader over a file-scope conn_t ----------- */

/* The connection read last; its buffer holds what was read beyond the last response. */
static conn_t zh_tc_cur = {.fd = -1};
static resp_t zh_tc_last;

typedef struct {
	int status;
	char head[8192];
	char *body; /* NUL-terminated, decoded: valid until the next read_response() */
	size_t body_len;
	int chunks; /* chunked responses: data chunks seen */
} response_t;

/* A new connection follows: forget the bytes buffered from the last one (a new socket may
 * reuse the old one's fd number). */
static inline void zh_tc_forget(void)
{
	zh_tc_cur.fd = -1;
	zh_tc_cur.have = 0;
}

/* The file-scope connection, bound to fd. */
static inline conn_t *zh_tc_conn_of(int fd)
{
	if (zh_tc_cur.buf == NULL) {
		zh_tc_cur.cap = 1 << 16;
		zh_tc_cur.buf = xmalloc(zh_tc_cur.cap);
	}
	if (zh_tc_cur.fd != fd) {
		zh_tc_cur.fd = fd;
		zh_tc_cur.have = 0;
	}
	return &zh_tc_cur;
}

/* Writes the whole string s to fd. */
static inline void send_all(int fd, const char *s)
{
	zh_tc_write_all(fd, s, strlen(s));
}

static inline void read_framed(int fd, response_t *r, bool head_request)
{
	resp_free(&zh_tc_last);
	zh_tc_read(zh_tc_conn_of(fd), &zh_tc_last, head_request);
	r->status = zh_tc_last.status;
	memcpy(r->head, zh_tc_last.head, sizeof r->head);
	r->body = (char *)zh_tc_last.body;
	r->body_len = zh_tc_last.body_len;
	r->chunks = zh_tc_last.nchunks;
}

/* One response to a request other than HEAD. */
static inline void read_response(int fd, response_t *r)
{
	read_framed(fd, r, false);
}

/* One response to a HEAD: the head alone, whatever its Content-Length says. */
static inline void read_head_response(int fd, response_t *r)
{
	read_framed(fd, r, true);
}

#endif /* ZH_TC_CONN */

#endif /* ZH_TEST_CLIENT_H */
