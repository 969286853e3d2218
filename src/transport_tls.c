/* transport_tls.c — TLS on the transport seam (zh__transport_t, internal.h; "Seams" in
 * docs/design.md), with OpenSSL 3. Part of libzerohttp-tls: the core reaches it only
 * through the transport table, for connections accepted on a TLS listener.
 *
 * The handshake is driven by the worker loop like any read: conn.c calls recv when the
 * socket is readable, recv advances the handshake (SSL_do_handshake) and says -EAGAIN
 * with wants() naming the readiness it waits for (a flight the socket could not take
 * whole waits for EPOLLOUT, which conn.c then turns into a read). A connection holds no
 * I/O context while its handshake waits, and the handshake timer (not the header timer)
 * runs until it ends.
 *
 * Bytes: OpenSSL reads and writes through a small BIO of ours over the worker's byte
 * transport (given at open: raw syscalls on epoll, the ring's receive queue and a
 * synchronous send on io_uring; read_raw and write_raw in internal.h), so that recv knows
 * when a read came back short: the input is then drained and, with nothing buffered in
 * OpenSSL, the loop may wait for the next edge, saving the EAGAIN read per request (the
 * plain socket's rule, internal.h).
 * read_ahead lets one read() take a whole record (or several) rather than a header and
 * then a body.
 *
 * send: each call encrypts one record (SSL_MODE_ENABLE_PARTIAL_WRITE) from the output
 * queue. A first iovec of a record's size or more is encrypted in place; smaller ones
 * are gathered first (a head and a short body make one record and one write, not two).
 * After -EAGAIN the connection calls again with the same queue (it moves only by what a
 * call reported), so the bytes OpenSSL already encrypted are the same bytes it is handed
 * again, as SSL_write requires (with SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER for the gather
 * buffer's address). Files: pread 64 KiB at a time into the per-thread buffer, then
 * encrypt a record at a time from there: there
 * is no kernel TLS here (the running kernel has no "tls" ULP), so no sendfile; a kTLS
 * send_file would slot in here, see docs/design.md.
 */
#include "tls_int.h"

#include <errno.h>
#include <openssl/err.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

enum { RECORD = 16384, READ_AHEAD = 65536 };

/* CLOCK_MONOTONIC in microseconds (the core's zh__now_us, which this library does not
 * link: it calls nothing in libzerohttp, see the Makefile) */
static uint64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* ---- per-connection state, found by descriptor ------------------------------------------ */

static zh__tls_conn_t **by_fd;
static size_t by_fd_cap;
static pthread_once_t by_fd_once = PTHREAD_ONCE_INIT;

/* Sized by the descriptor limit (zh_server_new raises the soft limit to the hard one) and
 * mapped without reserve: untouched pages cost no memory. */
static void by_fd_map(void)
{
	struct rlimit rl;
	size_t cap = 1u << 20;
	void *p;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_max != RLIM_INFINITY)
		cap = rl.rlim_max < (1u << 24) ? (size_t)rl.rlim_max : (1u << 24);
	p = mmap(NULL, cap * sizeof *by_fd, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p != MAP_FAILED) {
		by_fd = p;
		by_fd_cap = cap;
	}
}

static inline zh__tls_conn_t *conn_of(const zh__conn_t *c)
{
	return by_fd[c->fd];
}

/* ---- the socket BIO ------------------------------------------------------------------------ */

static int bio_read(BIO *b, char *buf, size_t len, size_t *got)
{
	zh__tls_conn_t *t = BIO_get_data(b);
	ssize_t n = t->lower->read_raw(t->c, buf, len);
	BIO_clear_retry_flags(b);
	if (n >= 0) {
		t->short_read = (size_t)n < len;
		*got = (size_t)n;
		return n > 0; /* 0: end of input, SSL_ERROR_ZERO_RETURN or SYSCALL with errno 0 */
	}
	if (n == -EAGAIN)
		BIO_set_retry_read(b);
	errno = (int)-n;
	return 0;
}

static int bio_write(BIO *b, const char *buf, size_t len, size_t *put)
{
	zh__tls_conn_t *t = BIO_get_data(b);
	ssize_t n = t->lower->write_raw(t->c, buf, len);
	BIO_clear_retry_flags(b);
	if (n >= 0) {
		*put = (size_t)n;
		return 1;
	}
	if (n == -EAGAIN)
		BIO_set_retry_write(b);
	errno = (int)-n;
	return 0;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	(void)b, (void)num, (void)ptr;
	return cmd == BIO_CTRL_FLUSH ? 1 : 0; /* writes are not buffered */
}

static BIO_METHOD *bio_method;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

static void bio_method_new(void)
{
	BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "zerohttp");
	if (m && BIO_meth_set_read_ex(m, bio_read) && BIO_meth_set_write_ex(m, bio_write) &&
	    BIO_meth_set_ctrl(m, bio_ctrl))
		bio_method = m;
	else
		BIO_meth_free(m);
}

BIO_METHOD *zh__tls_bio_method(void)
{
	pthread_once(&bio_once, bio_method_new);
	return bio_method;
}

/* ---- the handshake ------------------------------------------------------------------------ */

/* 400 to plain HTTP on a TLS port (RFC 9110 §15.5.1), in plain text: the client speaks
 * plain text. */
static const char plain_400[] =
	"HTTP/1.1 400 Bad Request\r\n"
	"Content-Type: text/plain; charset=utf-8\r\n"
	"Content-Length: 59\r\n"
	"Connection: close\r\n\r\n"
	"This port speaks HTTPS: a plain HTTP request was refused.\r\n";

static void count_done(zh__tls_conn_t *t)
{
	zh_tls_t *tls = t->tls;
	const SSL_CIPHER *cipher = SSL_get_current_cipher(t->ssl);
	ZH__TLS_ADD(tls, handshakes_ok, 1);
	if (SSL_session_reused(t->ssl))
		ZH__TLS_ADD(tls, resumed, 1);
	if (SSL_version(t->ssl) == TLS1_3_VERSION)
		ZH__TLS_ADD(tls, tls13, 1);
	else
		ZH__TLS_ADD(tls, tls12, 1);
	ZH__TLS_ADD(tls, cipher[zh__tls_cipher_index(cipher ? SSL_CIPHER_get_name(cipher) : "")],
		    1);
	zh__tls_hs_latency(tls, now_us() - t->start_us);
}

/* The handshake ended, one way or the other: its generation reference goes. */
static void hs_end(zh__tls_conn_t *t, enum zh__tls_mode mode)
{
	t->mode = (uint8_t)mode;
	t->c->trflags &= (uint8_t)~ZH__TRF_HANDSHAKE;
	if (t->gen) {
		zh__tls_gen_put(t->gen);
		t->gen = NULL;
	}
}

/* Refuses plain HTTP: one nonblocking send of the 400 (a fresh socket's buffer takes it),
 * then conn.c's lingering close reads what the client sent, through the plain path. */
static ssize_t refuse_plain(zh__tls_conn_t *t)
{
	ssize_t n = t->lower->write_raw(t->c, plain_400, sizeof plain_400 - 1);
	ZH__TLS_ADD(t->tls, failed_plain_http, 1);
	hs_end(t, ZH__TLS_PLAIN);
	t->c->trflags |= ZH__TRF_REFUSED;
	return n < 0 ? n : -EPROTO;
}

/* A TLS connection begins with a handshake record (content type 22, RFC 8446 §5.1;
 * RFC 5246 §6.2.1). Anything else is taken for plain HTTP. */
static ssize_t sniff(zh__tls_conn_t *t)
{
	unsigned char b;
	ssize_t n = t->lower->peek(t->c, &b, 1);
	if (n <= 0)
		return n;
	if (b != 0x16)
		return refuse_plain(t);
	t->sniffed = true;
	return 1;
}

static ssize_t hs_fail(zh__tls_conn_t *t, int err)
{
	bool closed = err == SSL_ERROR_ZERO_RETURN ||
		      (err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0);
	if (closed)
		ZH__TLS_ADD(t->tls, failed_closed, 1);
	else
		ZH__TLS_ADD(t->tls, failed_protocol, 1);
	ERR_clear_error(); /* the thread's error queue must not grow */
	hs_end(t, ZH__TLS_FAILED);
	return closed ? 0 : -EPROTO;
}

/* 1 done, 0 the peer closed, -EAGAIN (t->want says for what), other -errno: failed. */
static ssize_t hs_step(zh__tls_conn_t *t)
{
	uint64_t a0 = zh__tls_allocs_here();
	ssize_t r;
	int ret, err;
	if (!t->sniffed && (r = sniff(t)) <= 0) {
		if (r == 0)
			return hs_fail(t, SSL_ERROR_ZERO_RETURN);
		if (r == -EAGAIN)
			t->want = ZH__WANT_READ;
		return r;
	}
	ret = SSL_do_handshake(t->ssl);
	err = ret == 1 ? SSL_ERROR_NONE : SSL_get_error(t->ssl, ret);
	ZH__TLS_ADD(t->tls, hs_allocs, zh__tls_allocs_here() - a0);
	switch (err) {
	case SSL_ERROR_NONE:
		t->want = 0;
		count_done(t);
		hs_end(t, ZH__TLS_OPEN);
		return 1;
	case SSL_ERROR_WANT_READ:
		t->want = ZH__WANT_READ;
		return -EAGAIN;
	case SSL_ERROR_WANT_WRITE:
		t->want = ZH__WANT_WRITE;
		return -EAGAIN;
	default:
		return hs_fail(t, err);
	}
}

/* The connection is ready for application data: 1, or hs_step's other answers. */
static ssize_t ready(zh__tls_conn_t *t)
{
	if (ZH__LIKELY(t->mode == ZH__TLS_OPEN))
		return 1;
	if (t->mode == ZH__TLS_HS)
		return hs_step(t);
	return -EPROTO; /* failed: conn.c closes on the error */
}

/* An application-data call's failure: -EAGAIN (want set), 0 (closed), -errno. */
static ssize_t io_error(zh__tls_conn_t *t, int ret)
{
	int err = SSL_get_error(t->ssl, ret), e = errno;
	switch (err) {
	case SSL_ERROR_WANT_READ:
		t->want = ZH__WANT_READ;
		return -EAGAIN;
	case SSL_ERROR_WANT_WRITE:
		t->want = ZH__WANT_WRITE;
		return -EAGAIN;
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	case SSL_ERROR_SYSCALL:
		if (ERR_peek_error() == 0)
			return e ? -e : 0; /* e 0: EOF without close_notify */
		break;
	default:
		break;
	}
	ERR_clear_error();
	t->mode = ZH__TLS_FAILED;
	return -EPROTO;
}

/* ---- the transport ------------------------------------------------------------------------ */

/* Record buffers come and go with every request: counted per connection and added to the
 * shared counter 256 at a time (and at close), not with an atomic add per call. */
static inline void count_data_allocs(zh__tls_conn_t *t, uint64_t n)
{
	t->data_allocs += (uint32_t)n;
	if (ZH__UNLIKELY(t->data_allocs >= 256)) {
		ZH__TLS_ADD(t->tls, data_allocs, t->data_allocs);
		t->data_allocs = 0;
	}
}

static ssize_t tls_recv(zh__conn_t *c, void *buf, size_t cap)
{
	zh__tls_conn_t *t = conn_of(c);
	uint64_t a0;
	size_t n;
	ssize_t r;
	int ret;
	if (ZH__UNLIKELY(t->mode == ZH__TLS_PLAIN))
		return t->lower->recv(c, buf, cap); /* the refused client's bytes, discarded */
	if ((r = ready(t)) <= 0)
		return r;
	a0 = zh__tls_allocs_here();
	/* only a read made by this call can say the input is drained: a record OpenSSL read
	 * ahead earlier is returned without one, and bytes may have come since */
	t->short_read = false;
	ret = SSL_read_ex(t->ssl, buf, cap, &n);
	count_data_allocs(t, zh__tls_allocs_here() - a0);
	if (ret == 1) {
		t->want = 0;
		/* drained: this call's last read was short and OpenSSL holds nothing more */
		if (t->short_read && !c->hup_seen && !SSL_has_pending(t->ssl))
			c->readable = false;
		return (ssize_t)n;
	}
	return io_error(t, ret);
}

static ssize_t tls_peek(zh__conn_t *c, void *buf, size_t cap)
{
	zh__tls_conn_t *t = conn_of(c);
	size_t n;
	ssize_t r;
	int ret;
	if (t->mode == ZH__TLS_PLAIN)
		return t->lower->peek(c, buf, cap);
	if ((r = ready(t)) <= 0)
		return r;
	ret = SSL_peek_ex(t->ssl, buf, cap, &n);
	return ret == 1 ? (ssize_t)n : io_error(t, ret);
}

/* Per-thread buffer (READ_AHEAD bytes): small iovecs are gathered into it to make one
 * record; file bytes are read into it, READ_AHEAD at a time, and encrypted a record at a
 * time from there. `ra` says which file bytes it holds, for which connection; gathering
 * and the connection's close forget them. */
static __thread char *gather_buf; /* default TLS model: see tls_alloc.c */
static __thread struct {
	const zh__tls_conn_t *t;
	int fd;
	uint64_t off;
	size_t len;
} ra;

static char *gather_area(void)
{
	if (gather_buf == NULL) {
		void *p = mmap(NULL, READ_AHEAD, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p != MAP_FAILED)
			gather_buf = p;
	}
	return gather_buf;
}

static ssize_t write_record(zh__tls_conn_t *t, const void *p, size_t len)
{
	uint64_t a0 = zh__tls_allocs_here();
	size_t put;
	int ret = SSL_write_ex(t->ssl, p, len, &put);
	count_data_allocs(t, zh__tls_allocs_here() - a0);
	if (ret == 1) {
		t->want = 0;
		return (ssize_t)put;
	}
	return io_error(t, ret);
}

static ssize_t tls_send(zh__conn_t *c, const struct iovec *iov, int cnt, bool more)
{
	zh__tls_conn_t *t = conn_of(c);
	char *g;
	size_t len = 0;
	ssize_t r;
	(void)more; /* each record leaves whole; nothing to hold back */
	if (ZH__UNLIKELY(t->mode == ZH__TLS_PLAIN))
		return t->lower->send(c, iov, cnt, false);
	if ((r = ready(t)) <= 0)
		return r == 0 ? -EPIPE : r;
	while (cnt > 0 && iov[0].iov_len == 0)
		iov++, cnt--;
	if (cnt == 0)
		return 0;
	if (cnt == 1 || iov[0].iov_len >= RECORD)
		return write_record(t, iov[0].iov_base, iov[0].iov_len);
	if ((g = gather_area()) == NULL)
		return write_record(t, iov[0].iov_base, iov[0].iov_len);
	ra.t = NULL; /* the file bytes it held are overwritten */
	for (int i = 0; i < cnt && len < RECORD; i++) {
		size_t take = iov[i].iov_len < RECORD - len ? iov[i].iov_len : RECORD - len;
		if (take) /* an empty entry (a HEAD's body, say) may have no base */
			memcpy(g + len, iov[i].iov_base, take);
		len += take;
	}
	return write_record(t, g, len);
}

static ssize_t tls_send_file(zh__conn_t *c, int fd, uint64_t *off, size_t len)
{
	zh__tls_conn_t *t = conn_of(c);
	char *g = gather_area();
	size_t have;
	ssize_t n, r;
	if (t->mode != ZH__TLS_OPEN && (r = ready(t)) <= 0)
		return r == 0 ? -EPIPE : r;
	if (g == NULL)
		return -ENOMEM;
	/* one pread per READ_AHEAD, four records: after -EAGAIN the bytes at *off are the
	 * same ones again (held here, or read again from the same offset) */
	if (!(ra.t == t && ra.fd == fd && *off >= ra.off && *off < ra.off + ra.len)) {
		ra.t = NULL;
		do
			n = pread(fd, g, len < READ_AHEAD ? len : READ_AHEAD, (off_t)*off);
		while (n < 0 && errno == EINTR);
		if (n <= 0)
			return n < 0 ? -errno : 0; /* 0: the file ended early; conn.c closes */
		ra.t = t, ra.fd = fd, ra.off = *off, ra.len = (size_t)n;
	}
	have = (size_t)(ra.off + ra.len - *off);
	if (have > len)
		have = len;
	if ((r = write_record(t, g + (*off - ra.off), have < RECORD ? have : RECORD)) > 0)
		*off += (uint64_t)r;
	return r;
}

static int tls_shutdown(zh__conn_t *c)
{
	zh__tls_conn_t *t = conn_of(c);
	if (t->mode == ZH__TLS_OPEN) {
		/* close_notify (RFC 8446 §6.1); if the socket cannot take it now, the FIN
		 * below still ends the stream, which clients accept after a complete
		 * response. Its result is not an error to act on either way. */
		(void)SSL_shutdown(t->ssl);
		ERR_clear_error();
	}
	return t->lower->shutdown(c);
}

static void tls_close(zh__conn_t *c)
{
	/* opened: conn.c closes a connection whose open() failed through its byte transport */
	zh__tls_conn_t *t = conn_of(c);
	const zh__transport_t *lower = t->lower;
	if (t->mode == ZH__TLS_HS) {
		if (c->trflags & ZH__TRF_TIMEDOUT)
			ZH__TLS_ADD(t->tls, failed_timeout, 1);
		else
			ZH__TLS_ADD(t->tls, failed_closed, 1);
		hs_end(t, ZH__TLS_FAILED);
	} else if (t->mode == ZH__TLS_OPEN && !(SSL_get_shutdown(t->ssl) & SSL_SENT_SHUTDOWN)) {
		/* RFC 8446 §6.1: close_notify before closing our side (the peer's own
		 * close_notify, or its EOF, is why we close, most of the time); one nonblocking
		 * try, its result changes nothing: the socket closes next */
		(void)SSL_shutdown(t->ssl);
		ERR_clear_error();
	}
	if (ra.t == t)
		ra.t = NULL; /* its address may come back for another connection */
	ZH__TLS_ADD(t->tls, data_allocs, t->data_allocs);
	SSL_free(t->ssl); /* and its BIO */
	by_fd[c->fd] = NULL;
	OPENSSL_free(t);
	lower->close(c); /* the socket, and on io_uring its operations in flight */
}

static unsigned tls_wants(zh__conn_t *c, unsigned blocked)
{
	zh__tls_conn_t *t = conn_of(c);
	return t && t->want ? t->want : blocked;
}

static int tls_open(zh__conn_t *c, void *arg, const zh__transport_t *lower)
{
	zh_tls_t *tls = arg;
	zh__tls_conn_t *t;
	BIO_METHOD *m = zh__tls_bio_method();
	BIO *bio;
	uint64_t a0 = zh__tls_allocs_here();
	pthread_once(&by_fd_once, by_fd_map);
	if (by_fd == NULL || m == NULL || c->fd < 0 || (size_t)c->fd >= by_fd_cap)
		return -EMFILE;
	if ((t = OPENSSL_zalloc(sizeof *t)) == NULL)
		return -ENOMEM;
	t->c = c;
	t->lower = lower;
	t->tls = tls;
	t->start_us = now_us();
	t->gen = zh__tls_gen_get(tls);
	t->ssl = SSL_new(t->gen->ctx[0]);
	bio = BIO_new(m);
	if (t->ssl == NULL || bio == NULL) {
		BIO_free(bio);
		SSL_free(t->ssl);
		zh__tls_gen_put(t->gen);
		OPENSSL_free(t);
		ERR_clear_error();
		return -ENOMEM;
	}
	BIO_set_data(bio, t);
	BIO_set_init(bio, 1);
	SSL_set_bio(t->ssl, bio, bio); /* one BIO both ways: SSL takes its one reference */
	SSL_set_app_data(t->ssl, t); /* for tls_config.c's ALPN callback */
	SSL_set_accept_state(t->ssl);
	by_fd[c->fd] = t;
	c->trflags |= ZH__TRF_HANDSHAKE;
	ZH__TLS_ADD(tls, hs_allocs, zh__tls_allocs_here() - a0);
	return 0;
}

static const char *tls_info(zh__conn_t *c, int what)
{
	zh__tls_conn_t *t = conn_of(c);
	if (t == NULL || t->mode != ZH__TLS_OPEN)
		return NULL;
	return what == 0 ? SSL_get_version(t->ssl) : SSL_get_cipher_name(t->ssl);
}

const zh__transport_t zh__transport_tls = {
	.name = "tls",
	.recv = tls_recv,
	.peek = tls_peek,
	.send = tls_send,
	.send_file = tls_send_file,
	.shutdown = tls_shutdown,
	.close = tls_close,
	.wants = tls_wants,
	.open = tls_open,
	.info = tls_info,
};
