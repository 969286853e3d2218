/* conn_mux.c — the connection side of a multiplexing protocol (HTTP/2, libzerohttp-h2):
 * the h2c preface that hands a connection over, the slots its exchanges run on, their
 * timers, and the consumption of a queue the protocol sends itself. See "HTTP/2" in
 * docs/design.md. */
#include "internal.h"

#include <errno.h>
#include <string.h>

/* RFC 9113 §3.3: a client that knows the server speaks HTTP/2 (h2c with prior knowledge)
 * starts with this preface instead of a request line. 1 not the preface (HTTP/1.1 goes
 * on), 0 a prefix of it so far (more bytes wanted), -1 HTTP/2 took the connection (or
 * closed it). A connection whose TLS handshake chose "h2" by ALPN (§3.2) is HTTP/2
 * whatever it sends: nghttp2 checks the preface and answers a wrong one with GOAWAY. */
static const char h2_preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
int zh__conn_h2c_preface(zh__worker_t *w, zh__conn_t *c)
{
	zh__ctx_t *ctx = c->ctx;
	size_t n = ctx->rlen < sizeof h2_preface - 1 ? ctx->rlen : sizeof h2_preface - 1;
	if (c->trflags & ZH__TRF_ALPN_H2)
		n = sizeof h2_preface - 1;
	else if (memcmp(ctx->rbuf, h2_preface, n) != 0)
		return 1;
	if (n < sizeof h2_preface - 1) {
		if (c->timer != ZH__T_HEADER)
			zh__timer_set(w, c, ZH__T_HEADER);
		return 0;
	}
	if (zh__conn_start_h2(w, c) < 0)
		zh__conn_close(w, c);
	return -1;
}

int zh__conn_start_h2(zh__worker_t *w, zh__conn_t *c)
{
	if (w->srv->h2 == NULL)
		return -ENOTSUP;
	zh__timer_clear(w, c);
	return w->srv->h2->start(w, c);
}

void zh__conn_set_timer(zh__worker_t *w, zh__conn_t *c, int kind)
{
	if (kind == ZH__T_NONE)
		zh__timer_clear(w, c);
	else
		zh__timer_set(w, c, (enum zh__timer_kind)kind);
}

zh__conn_t *zh__conn_virtual_open(zh__worker_t *w, const zh__conn_t *parent, uint8_t tr,
				  uint8_t proto)
{
	zh__conn_t *c = zh__pool_get(&w->conn_pool);
	if (c == NULL)
		return NULL;
	c->fd = parent->fd;
	c->tr = tr;
	c->proto = proto;
	c->virt = true;
	c->state = ZH__C_ACTIVE;
	c->timer = ZH__T_NONE;
	c->readable = c->close_after = c->rdhup = c->hup_seen = c->sndbuf_big = false;
	c->loopback = parent->loopback;
	c->requests = 0;
	c->peer_v6 = parent->peer_v6;
	memcpy(c->peer, parent->peer, sizeof c->peer);
	c->ctx = NULL;
	if (zh__conn_ctx_attach(w, c) == NULL) {
		c->state = ZH__C_FREE;
		zh__pool_put(&w->conn_pool, c);
		return NULL;
	}
	return c;
}

void zh__out_consume(zh__ctx_t *ctx, size_t n)
{
	while (ctx->iov_head < ctx->iov_n && ctx->iov[ctx->iov_head].iov_len <= n) {
		n -= ctx->iov[ctx->iov_head].iov_len;
		zh__release_entry(&ctx->rel[ctx->iov_head]);
		ctx->iov_head++;
	}
	if (n) {
		struct iovec *iov = &ctx->iov[ctx->iov_head];
		if (ctx->rel[ctx->iov_head].file_fd >= 0)
			ctx->rel[ctx->iov_head].file_off += n; /* a file entry: no base to move */
		else
			iov->iov_base = (char *)iov->iov_base + n;
		iov->iov_len -= n;
	}
	zh__out_rewind(ctx);
}
