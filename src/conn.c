/* conn.c — one connection's life: read, parse, dispatch, write.
 *
 * Epoll is edge-triggered and registered once (IN|OUT|RDHUP), so no state change costs an
 * epoll_ctl. A short read means the socket is drained (a later arrival raises a new edge),
 * which saves the EAGAIN read a level-triggered loop would need: a keep-alive request costs
 * epoll_wait + read + writev.
 *
 * Ordering rules, in drive():
 *  1. Pending output goes first. While it is blocked nothing is read: the peer's requests
 *     wait in its socket buffer (backpressure), and no queued iovec can be invalidated.
 *  2. Every complete request in the receive buffer is answered before the next read, so
 *     responses to one read batch leave in one writev (pipelining).
 *  3. The receive buffer is compacted only when the output queue is empty, because queued
 *     responses may point into it (request slices passed to zh_write_ref).
 */
#include "internal.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static const char canned_503[] = "HTTP/1.1 503 Service Unavailable\r\n"
				 "Content-Type: text/plain\r\nContent-Length: 20\r\n"
				 "Retry-After: 1\r\nConnection: close\r\n\r\n"
				 "Service Unavailable\n";

/* A connection we cannot serve (over max_connections, no I/O context free) is told so
 * and closed. One nonblocking try: a fresh socket's send buffer takes these bytes whole
 * unless the peer is already gone (EPIPE, ECONNRESET), and the connection closes right
 * after either way, so a failure leaves nothing to retry or report; what went counts as
 * sent bytes. */
static void send_canned_503(zh__worker_t *w, int fd)
{
	ssize_t n = send(fd, canned_503, sizeof canned_503 - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (n > 0)
		ZH__STAT_ADD(w, bytes_out, (uint64_t)n);
}

/* The same, on an accepted connection: through its transport (TLS would encrypt it). */
static void send_canned_503_conn(zh__worker_t *w, zh__conn_t *c)
{
	/* static: io_uring's send keeps the iovec until it completes (and sends it again
	 * after a full socket), after this function has returned */
	static const struct iovec iov = {.iov_base = (void *)(uintptr_t)canned_503,
					 .iov_len = sizeof canned_503 - 1};
	ssize_t n = zh__tr_send(c, &iov, 1, false);
	if (n > 0)
		ZH__STAT_ADD(w, bytes_out, (uint64_t)n);
}

static void drive(zh__worker_t *w, zh__conn_t *c);
static zh__ctx_t *ctx_for_reading(zh__worker_t *w, zh__conn_t *c, int *ready);

/* ---- context attach/detach ------------------------------------------------------------------ */

static zh__ctx_t *ctx_attach(zh__worker_t *w, zh__conn_t *c)
{
	zh__ctx_t *ctx = zh__pool_get(&w->ctx_pool);
	if (ZH__UNLIKELY(ctx == NULL))
		return NULL; /* the caller answers 503 (and counts it) unless eviction helps */
	ctx->conn = c;
	ctx->w = w;
	ctx->fields = (zh__field_t *)(void *)(ctx + 1);
	ctx->sbuf = (char *)(ctx->fields + w->srv->limits.max_headers);
	ctx->rinline = ctx->sbuf + ZH__SBUF_SIZE;
	ctx->pscratch = ctx->rinline + ZH__RBUF_SIZE;
	ctx->pscratch_busy = false;
	ctx->rbuf = ctx->rinline;
	ctx->rcap = ZH__RBUF_SIZE;
	ctx->rlen = ctx->rstart = 0;
	ctx->in_request = ctx->rbuf_large = false;
	ctx->rbuf_old = NULL;
	ctx->route = NULL;
	ctx->resume_fn = NULL;
	ctx->produce_fn = NULL;
	ctx->upgrade_fn = NULL;
	ctx->deferred = ctx->in_error_handler = ctx->parked = false;
	ctx->timers_closed = true; /* until a request starts */
	ctx->utimers = NULL;
	ctx->resp.streaming = false; /* flush_end() reads it before any response begins */
	memset(&ctx->ps, 0, sizeof ctx->ps);
	ctx->req.ctx = ctx;
	ctx->req.body_buf = NULL;
	ctx->resp.ctx = ctx;
	ctx->noverflow = 0;
	zh__out_reset(ctx);
	c->ctx = ctx;
	ZH__STAT_ADD(w, io_contexts_in_use, 1);
	__atomic_store_n(&w->stats.io_contexts_high_water, w->ctx_pool.high_water,
			 __ATOMIC_RELAXED);
	return ctx;
}

static void ctx_detach(zh__worker_t *w, zh__conn_t *c)
{
	zh__ctx_t *ctx = c->ctx;
	if (ctx == NULL)
		return;
	if (ctx->resume_fn) {
		/* zh_body_wait() promised one call: tell the continuation the connection is gone
		 * (whatever it queues is released below, unsent) */
		zh_body_fn fn = ctx->resume_fn;
		ctx->resume_fn = NULL;
		ctx->req.stream_err = -ECONNRESET;
		fn(&ctx->req, &ctx->resp, ctx->resume_arg); /* zh_body_wait() now refuses */
	}
	if (ctx->produce_fn) {
		/* the producer learns the connection is gone, once, and releases its state */
		zh_produce_fn fn = ctx->produce_fn;
		ctx->produce_fn = NULL;
		(void)fn(NULL, ctx->produce_arg);
	}
	if (ctx->deferred) {
		ctx->deferred = false;
		c->defer_gen++; /* the token's resumption now finds another generation */
	}
	if (ctx->in_request)
		zh__resp_abandon(ctx); /* the response never ended: still counted, hooks told */
	zh__upgrade_cancel(ctx); /* the 101 never left: its one call says so */
	zh__out_release_all(ctx);
	zh__body_release(ctx);
	if (ctx->rbuf_large)
		zh__pool_put(&w->large_pool, ctx->rbuf);
	if (ctx->rbuf_old)
		zh__pool_put(&w->large_pool, ctx->rbuf_old);
	zh__pool_put(&w->ctx_pool, ctx);
	c->ctx = NULL;
	ZH__STAT_ADD(w, io_contexts_in_use, (uint64_t)-1);
}

/* ---- open / close ------------------------------------------------------------------------------ */

/* Returns the connection, or NULL when it was refused (and closed). Under io_uring
 * (w->uring) the caller arms the connection's receive; there is no epoll set. */
zh__conn_t *zh__conn_accepted(zh__worker_t *w, int fd, bool loopback,
			       const struct sockaddr_storage *peer, const zh__listener_t *l)
{
	zh__conn_t *c = w->draining ? NULL : zh__pool_get(&w->conn_pool);
	struct epoll_event ev;
	int one = 1;
	uint8_t raw; /* the byte transport: the plain socket, or io_uring's */

	if (c == NULL) {
		/* over max_connections: a clear answer rather than a silent drop */
		send_canned_503(w, fd);
		close(fd);
		ZH__STAT_ADD(w, connections_refused, 1);
		ZH__STAT_ADD(w, shed_503, 1);
		return NULL;
	}
	ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
	ev.data.ptr = c;
	if (w->uring == NULL && epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
		close(fd);
		zh__pool_put(&w->conn_pool, c);
		ZH__STAT_ADD(w, connections_refused, 1);
		return NULL;
	}
	/* responses leave whole in one writev; Nagle would only delay the next one */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	c->fd = fd;
	raw = w->uring ? zh__uring_conn_open(w, c) : zh__transport_default;
	c->tr = l->tr ? l->tr : raw;
	c->trflags = w->srv->h2 ? ZH__TRF_H2 : 0;
	c->proto = zh__proto_default;
	c->virt = false;
	c->state = ZH__C_IDLE;
	c->timer = ZH__T_NONE;
	c->readable = c->close_after = c->rdhup = c->hup_seen = c->sndbuf_big = false;
	c->loopback = loopback;
	c->requests = 0;
	c->peer_v6 = peer->ss_family == AF_INET6;
	if (c->peer_v6)
		memcpy(c->peer, &((const struct sockaddr_in6 *)(const void *)peer)->sin6_addr, 16);
	else
		memcpy(c->peer, &((const struct sockaddr_in *)(const void *)peer)->sin_addr, 4);
	c->ctx = NULL;
	w->open_conns++;
	ZH__STAT_ADD(w, connections_accepted, 1);
	if (l->tr && zh__tr(c)->open) {
		/* the listener's transport sets up its state (TLS: the session, the handshake
		 * flag); a refusal closes at once */
		if (zh__tr(c)->open(c, l->tr_arg, zh__transports[raw]) < 0) {
			c->tr = raw; /* it holds nothing: the byte transport closes */
			zh__conn_close(w, c);
			ZH__STAT_ADD(w, connections_refused, 1);
			return NULL;
		}
	}
	/* a connection that says nothing gets the header timeout from the moment of accept,
	 * or the handshake timeout while its transport has one to finish */
	zh__timer_set(w, c, c->trflags & ZH__TRF_HANDSHAKE ? ZH__T_HANDSHAKE : ZH__T_SILENT);
	return c;
}

static void conn_free(zh__worker_t *w, zh__conn_t *c, bool close_fd)
{
	if (ZH__UNLIKELY(c->proto != 0) && zh__protos[c->proto]->conn_closing)
		zh__protos[c->proto]->conn_closing(w, c); /* HTTP/2: its streams end first */
	zh__timer_clear(w, c);
	ctx_detach(w, c);
	if (close_fd)
		zh__tr(c)->close(c); /* also leaves the epoll set */
	c->fd = -1;
	c->state = ZH__C_FREE;
	/* Not back to the pool yet: the current epoll batch may still hold events for this slot,
	 * and they must find it FREE, not lent to a newer connection. See zh__worker_main. */
	c->tnext = w->closed;
	w->closed = c;
	if (c->virt) /* an HTTP/2 stream's slot: its connection is counted, not it */
		return;
	w->open_conns--;
	ZH__STAT_ADD(w, connections_closed, 1);
}

void zh__conn_close(zh__worker_t *w, zh__conn_t *c)
{
	conn_free(w, c, true);
}

void zh__conn_forget(zh__worker_t *w, zh__conn_t *c)
{
	conn_free(w, c, false);
}

static void linger_read(zh__worker_t *w, zh__conn_t *c)
{
	for (int i = 0; i < 64; i++) { /* bounded: a flood waits for the next edge */
		ssize_t n = zh__tr_recv(c, w->discard, sizeof w->discard);
		if (n > 0)
			continue;
		if (n == -EAGAIN)
			return;
		zh__conn_close(w, c);
		return;
	}
}

/* Closing right after a response while the peer may still be sending would make the kernel
 * answer with RST, which can destroy the response before the peer reads it (RFC 9112 §9.6).
 * So: shut our side, discard what comes, close at EOF or after ZH__LINGER_MS. */
static void linger_close(zh__worker_t *w, zh__conn_t *c)
{
	ctx_detach(w, c);
	if (zh__tr(c)->shutdown(c) < 0) {
		zh__conn_close(w, c);
		return;
	}
	c->state = ZH__C_LINGER;
	zh__timer_set(w, c, ZH__T_LINGER);
	linger_read(w, c); /* bytes may be waiting already: no new edge would announce them */
}


/* Everything answered before a close has left: linger, or hand the socket to the protocol
 * it switched to (zh_resp_upgrade, upgrade.c) */
static void end_connection(zh__worker_t *w, zh__conn_t *c)
{
	if (ZH__UNLIKELY(c->ctx && c->ctx->upgrade_fn) && c->ctx->resp.status == 101)
		zh__conn_hand_over(w, c);
	else
		linger_close(w, c);
}

/* ---- output --------------------------------------------------------------------------------- */

/* Returns 1 when the queue is empty, 0 when the socket is full, -1 on error. Partial writes
 * resume at the right offset by adjusting the first unsent iovec in place: data is never
 * copied to compact it. */
static bool response_open(const zh__ctx_t *ctx)
{
	return ctx->resume_fn || ctx->produce_fn || ctx->deferred;
}

static uint16_t flush_end(const zh__ctx_t *ctx)
{
	const zh_response_t *resp = &ctx->resp;
	/* an unfinished response whose head has not left: send only what precedes its head
	 * (earlier pipelined responses, 100 Continue) */
	if (ZH__LIKELY(!resp->streaming)) {
		if (!response_open(ctx))
			return ctx->iov_n;
		/* a streaming route's 100 Continue slot, not filled yet, waits: sent empty now,
		 * it could not carry the 100 that zh_body_read may send later */
		return ctx->req.stream && ctx->iov[resp->interim_slot].iov_len == 0
			       ? resp->interim_slot
			       : resp->head_slot;
	}
	/* a response streaming now: what the protocol's framing allows */
	return ctx->in_request ? zh__pr_send_end(ctx, ctx->iov_n) : ctx->iov_n;
}

static bool sendable(const zh__ctx_t *ctx)
{
	return ctx->iov_head < flush_end(ctx);
}

/* A file entry: sendfile from its offset. Returns 1 when the entry is done, 0 when the
 * socket is full, -1 on error or when the file ended early (it was truncated while being
 * sent: the framing is broken, so the connection must close). File bytes never enter user
 * space. */
static int send_file_entry(zh__worker_t *w, zh__conn_t *c, uint16_t i)
{
	zh__ctx_t *ctx = c->ctx;
	zh__rel_t *r = &ctx->rel[i];
	for (;;) {
		/* advances r->file_off by what it sent */
		ssize_t n = zh__tr(c)->send_file(c, r->file_fd, &r->file_off, ctx->iov[i].iov_len);
		ZH__STAT_ADD(w, sendfile_calls, 1);
		if (n < 0)
			return n == -EAGAIN ? 0 : -1;
		if (n == 0)
			return -1;
		ZH__STAT_ADD(w, bytes_out, (uint64_t)n);
		ctx->iov[i].iov_len -= (size_t)n;
		if (ctx->iov[i].iov_len == 0) {
			zh__release_entry(r);
			ctx->iov_head++;
			return 1;
		}
	}
}

/* Everything queued has left: rewind the area and the queue; a response still being
 * written gets its framing anchor back (the protocol's rebase). */
void zh__out_rewind(zh__ctx_t *ctx)
{
	if (ctx->iov_head == ctx->iov_n) {
		zh__out_reset(ctx);
		if (ctx->in_request && ctx->resp.streaming)
			zh__pr_rebase(&ctx->resp); /* still being written */
	}
}

/* Returns 1 when everything sendable is sent, 0 when the socket is full, -1 on error.
 * Memory entries go out with one writev per run; a run followed by a file goes with
 * sendmsg(MSG_MORE), so that the head and the first file bytes share packets. Partial
 * writes resume at the right offset by adjusting the first unsent iovec in place: data is
 * never copied to compact it. */
static int flush(zh__worker_t *w, zh__conn_t *c)
{
	zh__ctx_t *ctx = c->ctx;
	uint16_t end = flush_end(ctx);
	while (ctx->iov_head < end) {
		struct iovec *iov = &ctx->iov[ctx->iov_head];
		uint16_t run = ctx->iov_head;
		ssize_t n;
		size_t left;
		if (ctx->rel[run].file_fd >= 0) {
			int r = send_file_entry(w, c, run);
			if (r <= 0)
				return r;
			continue;
		}
		while (run < end && ctx->rel[run].file_fd < 0)
			run++;
		/* a run followed by a file: MSG_MORE, the head shares packets with the file */
		n = zh__tr_send(c, iov, run - ctx->iov_head, run < end);
		ZH__STAT_ADD(w, writev_calls, 1);
		if (n < 0)
			return n == -EAGAIN ? 0 : -1;
		ZH__STAT_ADD(w, bytes_out, (uint64_t)n);
		left = (size_t)n;
		while (ctx->iov_head < run && ctx->iov[ctx->iov_head].iov_len <= left) {
			left -= ctx->iov[ctx->iov_head].iov_len;
			zh__release_entry(&ctx->rel[ctx->iov_head]);
			ctx->iov_head++;
		}
		if (left) {
			iov = &ctx->iov[ctx->iov_head];
			iov->iov_base = (char *)iov->iov_base + left;
			iov->iov_len -= left;
		}
		if (ctx->iov_head < run && n == 0)
			return 0;
	}
	zh__out_rewind(ctx);
	return 1;
}

static bool output_pending(const zh__ctx_t *ctx)
{
	return ctx->iov_head < ctx->iov_n;
}

int zh__conn_flush(zh__ctx_t *ctx)
{
	return flush(ctx->w, ctx->conn);
}

/* ---- requests ------------------------------------------------------------------------------- */

/* 0, or the refused set's -errno (resp has then failed: the sticky header rule) */
static int allow_header(zh_response_t *resp, unsigned methods)
{
	static const char *const names[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS",
					    "PATCH", "TRACE"};
	char buf[96];
	size_t n = 0;
	if (methods & ZH_GET)
		methods |= ZH_HEAD;
	methods |= ZH_OPTIONS;
	for (unsigned i = 0; i < 8; i++) {
		if (!(methods & (1u << i)))
			continue;
		size_t l = strlen(names[i]);
		if (n) {
			memcpy(buf + n, ", ", 2);
			n += 2;
		}
		memcpy(buf + n, names[i], l);
		n += l;
	}
	return zh_resp_header_setn(resp, "Allow", 5, buf, n);
}

/* The application's error handler (zh_server_set_error_handler) answers status. It has
 * the response the library would have filled: its status is fixed (an implicit commit
 * takes it; another status is refused below), Connection: close stays when the framing is
 * in doubt (resp->close is sticky and no header clears it), and it cannot suspend (defer,
 * produce, body_wait refuse while in_error_handler). Returns false when the library's own
 * answer must replace what it did: it wrote nothing, failed, or chose another status. */
static bool custom_error(zh__ctx_t *ctx, int status, bool close)
{
	zh_server_t *srv = ctx->w->srv;
	zh_response_t *resp = &ctx->resp;
	resp->close |= close;
	resp->implicit_status = status;
	ctx->in_error_handler = true;
	srv->err_fn(&ctx->req, resp, status, srv->err_arg);
	ctx->in_error_handler = false;
	zh__writer_sync(resp);
	resp->close |= close;
	if (resp->streaming) /* its head left: whatever it is, it is framed; nothing to undo */
		return true;
	if (resp->committed && !resp->error && resp->status == status &&
	    zh__writer_check(resp, true) == 0) /* final: the response ends now */
		return true;
	zh__resp_error_reset(ctx); /* the handler's headers and body go; its commit stands */
	return false;
}

/* A response produced by the library itself (errors, OPTIONS, 405). */
static void respond(zh__ctx_t *ctx, int status, unsigned allow, bool close)
{
	if (!ctx->in_request) { /* bytes that never formed a request: done hooks see none */
		memset(&ctx->req.h, 0, sizeof ctx->req.h);
		zh__req_slots_reset(&ctx->req, ctx->w->srv->nmw != 0);
	}
	zh__resp_begin(ctx, ctx->in_request && ctx->req.h.method_bit == ZH_HEAD);
	/* A fresh response has room for Allow (50 bytes at most); were it refused, resp has
	 * failed and would end as a 500 anyway: say so from the start */
	if (allow && allow_header(&ctx->resp, allow) < 0)
		status = 500;
	if (status == 200) /* OPTIONS: no content, so finish() sends Content-Length: 0 */
		ctx->resp.close |= close;
	else if (!ctx->w->srv->err_fn || !custom_error(ctx, status, close))
		zh__resp_error(ctx, status, close);
	zh__resp_finish(ctx);
}

/* The request's body will not be read (error, 404...): if it is already in the buffer it
 * is skipped, otherwise the connection cannot find the next request and must close. */
static bool skip_unread_body(zh__ctx_t *ctx)
{
	const zh__head_t *h = &ctx->req.h;
	uint32_t bstart = ctx->rstart + h->head_len;
	ctx->req.raw_pos = bstart;
	if (h->flags & ZH__H_CHUNKED)
		return false;
	if (!(h->flags & ZH__H_CL) || h->content_length == 0)
		return true;
	if (h->content_length <= ctx->rlen - bstart) {
		ctx->req.raw_pos = bstart + (uint32_t)h->content_length;
		return true;
	}
	return false;
}

/* The timers that run against a request (not against an idle or a stalled-reading peer) */
static bool request_timer(const zh__conn_t *c)
{
	return c->timer == ZH__T_SILENT || c->timer == ZH__T_HEADER || c->timer == ZH__T_BODY;
}

static void end_request(zh__worker_t *w, zh__conn_t *c)
{
	zh__ctx_t *ctx = c->ctx;
	ctx->rstart = ctx->req.raw_pos;
	ctx->in_request = false;
	ctx->resp.streaming = false;
	ctx->route = NULL;
	if (request_timer(c))
		zh__timer_clear(w, c);
}

/* Slow-POST guard. The body timer measures the gap between body bytes, so a peer that
 * dribbles one byte a second (gap < body_timeout_ms) would hold its I/O context for as long
 * as its Content-Length lasts: 2,048 such peers starved a default server of contexts, and
 * every other client got 503 (tests/integration/test_27_load.py). Progress re-arms the timer
 * only if the body advanced by at least ZH__BODY_MIN_RATE bytes a second since it was last
 * armed; otherwise the old deadline stands. (A deadline is never moved earlier: the timer
 * list stays in FIFO order.) */
#define ZH__BODY_MIN_RATE 4
static void arm_body_timer(zh__worker_t *w, zh__conn_t *c)
{
	zh_request_t *req = &c->ctx->req;
	uint64_t progress = req->stream ? req->body_off : req->body_len;
	if (c->timer == ZH__T_BODY && progress >= req->body_mark) {
		uint64_t armed_at = c->deadline_ms - w->timers[ZH__T_BODY].duration_ms;
		uint64_t elapsed = w->now_ms > armed_at ? w->now_ms - armed_at : 0;
		if ((progress - req->body_mark) * 1000 < elapsed * ZH__BODY_MIN_RATE)
			return;
	}
	req->body_mark = progress;
	zh__timer_set(w, c, ZH__T_BODY);
}

static void refuse(zh__worker_t *w, zh__conn_t *c, int status, unsigned allow)
{
	zh__ctx_t *ctx = c->ctx;
	bool keep = ctx->in_request && skip_unread_body(ctx);
	respond(ctx, status, allow, !keep);
	end_request(w, c);
}

static void count_parse_reject(zh__worker_t *w, int status)
{
	static const int reasons[7] = {400, 413, 414, 417, 431, 501, 505};
	unsigned i = 0;
	while (i < 7 && reasons[i] != status)
		i++;
	ZH__STAT_ADD(w, parse_rejects[i], 1);
}

/* A before hook answered on the response it was given: finish that, and skip the unread
 * body if it is all here, else close (the next request could not be found). */
static void answered_by_middleware(zh__worker_t *w, zh__conn_t *c)
{
	zh__ctx_t *ctx = c->ctx;
	if (!skip_unread_body(ctx))
		ctx->resp.close = true;
	zh__resp_finish(ctx);
	end_request(w, c);
}

/* Head complete: route it and set up its body. */
static void start_request(zh__worker_t *w, zh__conn_t *c)
{
	zh__ctx_t *ctx = c->ctx;
	zh_request_t *req = &ctx->req;
	zh_slice_t path;
	unsigned allow = 0;
	int r;

	ctx->in_request = true;
	ctx->route = NULL;
	if (!output_pending(ctx))
		ctx->pscratch_busy = false; /* what was decoded there has been sent */
	ctx->resp.committed = false; /* until this request's response begins, none is */
	ctx->resp.status = 0;
	ctx->resp.body_len = 0;
	req->stream = false;
	req->base = ctx->rbuf + ctx->rstart;
	req->fields = ctx->fields;
	req->body_state = ZH__B_NONE;
	req->body_buf = NULL;
	req->body_len = req->body_off = 0;
	req->raw_pos = ctx->rstart + req->h.head_len;
	zh__req_slots_reset(req, w->srv->nmw != 0);
	ctx->timers_closed = false; /* zh_timer_start: until its response ends */
	/* timed for the histogram, and for middleware that reports durations (access log) */
	ctx->started_us = w->srv->cfg.latency_metrics || w->srv->nmw ? zh__now_us() : 0;
	ZH__STAT_ADD(w, requests, 1);

	if (zh__mw_before_global(ctx) == ZH_MW_ANSWERED) {
		answered_by_middleware(w, c);
		return;
	}
	if (req->h.flags & ZH__H_ASTERISK) {
		/* OPTIONS * (RFC 9110 §9.3.7): what the server as a whole supports. A successful
		 * OPTIONS without content MUST carry Content-Length: 0, which a 204 may not
		 * (§8.6): 200. */
		refuse(w, c, 200, w->srv->router.methods);
		return;
	}
	path = zh_req_path(req);
	ctx->route = zh__route_find(w->srv, zh_req_host(req), path, req->h.method_bit, &allow,
				    &req->params);
	if (ctx->route == NULL) {
		if (allow == 0)
			refuse(w, c, 404, 0);
		else
			refuse(w, c, req->h.method_bit == ZH_OPTIONS ? 200 : 405, allow);
		return;
	}
	if (zh__mw_before_route(ctx) == ZH_MW_ANSWERED) {
		answered_by_middleware(w, c);
		return;
	}
	req->stream = (ctx->route->flags & ZH_ROUTE_STREAM_BODY) != 0;
	req->sent_continue = false;
	req->stream_err = 0;
	if (req->stream) {
		/* the handler pulls the body itself (body.c); nothing to wait for here */
		memset(&req->chunked, 0, sizeof req->chunked);
		req->body_state = ZH__B_DONE;
		return;
	}
	r = zh__pr_body_start(ctx);
	if (r < 0) {
		refuse(w, c, -r, 0);
		return;
	}
	if (r == 0) {
		/* RFC 9110 §10.1.1: 100 only once we know the body will be accepted */
		if (req->h.flags & ZH__H_EXPECT_CONTINUE)
			zh__pr_interim_100(ctx);
		arm_body_timer(w, c);
	}
}

/* After a handler or a continuation returned: either it waits for body bytes (suspended),
 * or the response is complete. */
static void after_handler(zh__worker_t *w, zh__conn_t *c)
{
	zh__ctx_t *ctx = c->ctx;
	zh_request_t *req = &ctx->req;
	zh__writer_sync(&ctx->resp); /* a pending writer's bytes join the queue, in order */
	if (ctx->resume_fn) {
		arm_body_timer(w, c);
		return;
	}
	if (ctx->deferred || ctx->produce_fn) {
		zh_response_t *resp = &ctx->resp;
		int writer_err;
		/* the response stays open: no request timer runs against it (the write timer
		 * still guards a peer that stops reading) */
		if (request_timer(c))
			zh__timer_clear(w, c);
		if (ctx->deferred)
			return;
		/* A failure before the head left stays a 500; a HEAD has no body to produce
		 * (its head goes without a length). The producer is told with resp NULL. */
		writer_err = zh__writer_check(resp, false);
		if (!resp->error && !writer_err && !resp->head_only) {
			zh__resp_stream_start(resp);
			if (!resp->error)
				return;
		}
		(void)ctx->produce_fn(NULL, ctx->produce_arg);
		ctx->produce_fn = NULL;
		if (resp->head_only && !resp->error && !writer_err) {
			resp->writer = NULL; /* its rest was never to be produced */
			zh__resp_stream_start(resp);	  /* head without Content-Length */
		}
	}
	if (req->stream) {
		if (req->stream_err && !ctx->resp.committed)
			zh__resp_error(ctx, req->stream_err == -ETIMEDOUT  ? 408
					    : req->stream_err == -ENOBUFS ? 503
									  : 400,
				       true);
		if (!zh__body_stream_complete(req)) {
			/* unread body: skip it if it is all here, else the next request cannot be
			 * found and the connection closes */
			uint64_t left = req->h.content_length - req->body_off;
			if (!(req->h.flags & ZH__H_CHUNKED) && !req->stream_err &&
			    left <= ctx->rlen - req->raw_pos)
				req->raw_pos += (uint32_t)left;
			else
				ctx->resp.close = true;
		}
	}
	zh__resp_finish(ctx);
	end_request(w, c);
}

static void run_handler(zh__worker_t *w, zh__conn_t *c)
{
	zh__ctx_t *ctx = c->ctx;
	zh__resp_begin(ctx, ctx->req.h.method_bit == ZH_HEAD);
	ctx->route->fn(&ctx->req, &ctx->resp, ctx->route->arg);
	after_handler(w, c);
}

/* Calls a suspended streaming handler's continuation. Returns false if it made no progress
 * (it waits again without having read), so that the caller stops instead of spinning. */
static bool resume(zh__worker_t *w, zh__conn_t *c)
{
	zh__ctx_t *ctx = c->ctx;
	zh_request_t *req = &ctx->req;
	zh_body_fn fn = ctx->resume_fn;
	uint64_t before = req->body_off + req->raw_pos;
	ctx->resume_fn = NULL;
	fn(req, &ctx->resp, ctx->resume_arg);
	after_handler(w, c);
	return !ctx->resume_fn || req->body_off + req->raw_pos != before || req->stream_err;
}

/* The socket took everything: the producer writes more, or ends the response. */
static void produce(zh__worker_t *w, zh__conn_t *c)
{
	zh__ctx_t *ctx = c->ctx;
	zh_response_t *resp = &ctx->resp;
	uint64_t before = zh__resp_progress(resp);
	int r = ctx->produce_fn(resp, ctx->produce_arg);
	zh__writer_sync(resp);
	if (r == ZH_PRODUCE_MORE && zh__resp_progress(resp) == before && !ctx->parked)
		r = -EINVAL; /* no progress: calling again would spin */
	if (r == ZH_PRODUCE_MORE && !resp->error) {
		zh__resp_filter_flush(resp);
		zh__pr_boundary(resp);
		return;
	}
	ctx->produce_fn = NULL;
	ctx->parked = false;
	if (r < 0)
		resp->error = true;
	after_handler(w, c);
}

/* A deferred response's resumption, on its worker. */
void zh__conn_resumption(zh__worker_t *w, const struct zh__resumption *r)
{
	zh__conn_t *c = r->conn;
	zh__ctx_t *ctx = c->state == ZH__C_FREE ? NULL : c->ctx;
	if (ctx == NULL || !ctx->deferred || c->defer_gen != r->gen) {
		r->fn(NULL, NULL, r->arg); /* the connection is gone: exactly one call anyway */
		return;
	}
	ctx->deferred = false;
	r->fn(&ctx->req, &ctx->resp, r->arg);
	after_handler(w, c);
	drive(w, c);
}

/* A parked producer's source has bytes again (ext.h); a stale token does nothing. */
void zh__resp_unpark(const zh_deferred_t *token)
{
	zh__conn_t *c = token->conn;
	zh__ctx_t *ctx = c->state == ZH__C_FREE ? NULL : c->ctx;
	if (ctx == NULL || !ctx->parked || c->defer_gen != token->gen)
		return;
	ctx->parked = false;
	drive(token->worker, c);
}

void zh__body_wait_token(zh_request_t *req, zh_deferred_t *token)
{
	zh__conn_t *c = req->ctx->conn;
	token->worker = req->ctx->w;
	token->conn = c;
	token->gen = ++c->defer_gen;
}

void zh__body_wake(const zh_deferred_t *token)
{
	zh__conn_t *c = token->conn;
	zh__ctx_t *ctx = c->state == ZH__C_FREE ? NULL : c->ctx;
	if (ctx == NULL || !ctx->resume_fn || c->defer_gen != token->gen)
		return;
	(void)resume(token->worker, c); /* progress or not, it was asked for */
	drive(token->worker, c);
}

void zh__deferred_resume_now(const zh_deferred_t *token, zh_body_fn fn, void *arg)
{
	struct zh__resumption r = {token->conn, token->gen, fn, arg};
	zh__conn_resumption(token->worker, &r);
}

/* Is there room to start another response without flushing first? */
static bool room_for_response(const zh__ctx_t *ctx)
{
	/* 40: a multipart/byteranges answer (16 ranges) fits without spilling */
	return ctx->iov_n + 40 <= ZH__IOV_CAP &&
	       (ctx->area_cap - ctx->area_used >= ZH__HEAD_RESERVE + ZH__RESP_HSTORE ||
		!output_pending(ctx)) &&
	       (!ctx->pscratch_busy || !output_pending(ctx));
}

/* The head does not fit in what is left of the receive buffer. */
static void make_room(zh__worker_t *w, zh__conn_t *c)
{
	zh__ctx_t *ctx = c->ctx;
	char *big;
	if (output_pending(ctx))
		return; /* queued responses may point into it: drive() flushes, then retries */
	if (ctx->rstart > 0) {
		ctx->rlen -= ctx->rstart;
		memmove(ctx->rbuf, ctx->rbuf + ctx->rstart, ctx->rlen);
		ctx->rstart = 0;
		return;
	}
	if (ctx->rbuf_large) {
		/* HTTP/1 refuses such a head itself (414 or 431, its `request`); for a
		 * protocol that did not, the buffer can grow no more */
		respond(ctx, 431, 0, true);
		return;
	}
	big = zh__pool_get(&w->large_pool);
	if (big == NULL) {
		ZH__STAT_ADD(w, pool_exhausted, 1);
		ZH__STAT_ADD(w, shed_503, 1);
		respond(ctx, 503, 0, true);
		return;
	}
	/* spans are offsets, so the half-parsed head survives the move */
	memcpy(big, ctx->rbuf, ctx->rlen);
	ctx->rbuf = big;
	ctx->rcap = (uint32_t)w->srv->large_size;
	ctx->rbuf_large = true;
}

/* Answers every complete request in the receive buffer. */
static void process(zh__worker_t *w, zh__conn_t *c)
{
	zh__ctx_t *ctx = c->ctx;
	zh_request_t *req = &ctx->req;

	while (!c->close_after && !response_open(ctx)) {
		if (!ctx->in_request) {
			int r;
			if (ctx->rstart == ctx->rlen)
				return;
			if (!room_for_response(ctx))
				return; /* drive() flushes first, then calls again */
			if (ZH__UNLIKELY(ctx->rstart == 0 && c->requests == 0 && w->srv->h2 &&
					 c->proto == 0 &&
					 (ctx->rbuf[0] == 'P' || c->trflags & ZH__TRF_ALPN_H2))) {
				int p = zh__conn_h2c_preface(w, c);
				if (p <= 0)
					return; /* more bytes wanted, or HTTP/2 has the connection */
			}
			r = zh__pr_request(ctx, &w->srv->limits);
			if (r == 0) {
				if (c->timer != ZH__T_HEADER)
					zh__timer_set(w, c, ZH__T_HEADER);
				if (ctx->rlen == ctx->rcap)
					make_room(w, c);
				return;
			}
			if (r < 0) {
				ZH__STAT_ADD(w, parse_errors, 1);
				count_parse_reject(w, -r);
				memset(&req->h, 0, sizeof req->h); /* done hooks see an empty request */
				respond(ctx, -r, 0, true);
				return;
			}
			start_request(w, c);
			if (!ctx->in_request)
				continue; /* answered by the library */
		}
		if (req->body_state == ZH__B_READING) {
			int r = zh__pr_body_feed(ctx);
			if (r < 0) {
				refuse(w, c, -r, 0);
				continue;
			}
			if (r == 0) {
				arm_body_timer(w, c);
				return;
			}
		}
		run_handler(w, c);
	}
}

/* ---- reading -------------------------------------------------------------------------------- */

/* Returns > 0 bytes read, 0 at EOF, -EAGAIN when drained, other -errno on error. */
static ssize_t read_more(zh__worker_t *w, zh__conn_t *c)
{
	zh__ctx_t *ctx = c->ctx;
	char *dst;
	size_t cap;
	bool to_body = zh__body_read_target(ctx, &dst, &cap);
	ssize_t n;

	if (cap == 0)
		return -ENOBUFS;
	n = zh__tr_recv(c, dst, cap); /* clears c->readable when drained */
	ZH__STAT_ADD(w, read_calls, 1);
	if (n <= 0)
		return n;
	ZH__STAT_ADD(w, bytes_in, (uint64_t)n);
	if (to_body)
		ctx->req.body_len += (uint64_t)n;
	else
		ctx->rlen += (uint32_t)n;
	return n;
}

/* ---- the driver --------------------------------------------------------------------------- */

static bool has_partial_request(const zh__ctx_t *ctx)
{
	return ctx->in_request || ctx->rstart < ctx->rlen;
}

/* Everything that can be done without blocking; then arm the right timer or go idle. */
static void drive(zh__worker_t *w, zh__conn_t *c)
{
	unsigned bursts = 0;
	for (;;) {
		zh__ctx_t *ctx = c->ctx;
		ssize_t n;

		if (ctx && sendable(ctx)) {
			int r = flush(w, c);
			if (r < 0) {
				zh__conn_close(w, c);
				return;
			}
			if (r == 0) {
				zh__timer_set(w, c, ZH__T_WRITE);
				return;
			}
			if (c->timer == ZH__T_WRITE) {
				if (ctx->resume_fn)
					arm_body_timer(w, c); /* still waiting for the body */
				else
					zh__timer_clear(w, c);
			}
			if (c->close_after && !output_pending(ctx)) {
				end_connection(w, c);
				return;
			}
		}
		if (ctx && ctx->resume_fn) {
			/* a streaming handler waits for body bytes: it does the reading */
			if ((c->readable || c->rdhup || zh__body_stream_buffered(&ctx->req)) &&
			    resume(w, c))
				continue;
			return;
		}
		if (ctx && ctx->produce_fn) {
			if (ctx->parked)
				return; /* its source has nothing yet: zh__resp_unpark() */
			/* everything queued has gone: time for more, unless this connection has
			 * had its burst and others are waiting for the worker */
			if (++bursts > ZH__PRODUCE_BURST && w->nyielded < ZH__YIELD_CAP) {
				w->yielded[w->nyielded++] = c;
				return;
			}
			produce(w, c);
			continue;
		}
		if (ctx && ctx->deferred)
			return; /* zh_deferred_resume() brings it back */
		if (ctx) {
			if (!ctx->in_request && ctx->rstart == ctx->rlen && !output_pending(ctx))
				ctx->rstart = ctx->rlen = 0; /* all answered and sent: rewind */
			process(w, c);
			if (ZH__UNLIKELY(c->ctx != ctx) ||
			    (ZH__UNLIKELY(c->proto != 0) && zh__protos[c->proto]->conn_event))
				return; /* HTTP/2 took the connection (h2c preface), or ended it */
			if (sendable(ctx) || response_open(ctx))
				continue;
			if (c->close_after) {
				end_connection(w, c);
				return;
			}
		}
		if (!c->readable || c->rdhup)
			break;
		if (ctx == NULL) {
			int ready = 1;
			ctx = ctx_for_reading(w, c, &ready);
			if (ctx == NULL && ready < 0)
				break; /* EOF or nothing after all: settles like any idle connection */
			if (ctx == NULL && w->uring && zh__uring_ctx_wait(w, c))
				return; /* contexts held by sends in flight come back next turn */
			if (ctx == NULL) {
				send_canned_503_conn(w, c);
				ZH__STAT_ADD(w, shed_503, 1);
				ZH__STAT_ADD(w, pool_exhausted, 1);
				linger_close(w, c);
				return;
			}
			c->state = ZH__C_ACTIVE;
		}
		n = read_more(w, c);
		if (n > 0)
			continue;
		if (n == -EAGAIN) {
			c->readable = false;
			break;
		}
		if (n == 0) {
			c->rdhup = true; /* peer done sending: answer what is complete, then close */
			continue;
		}
		if (ZH__UNLIKELY(c->trflags & ZH__TRF_REFUSED)) {
			/* the transport answered (TLS: 400 to plain HTTP): let it reach the peer */
			linger_close(w, c);
			return;
		}
		zh__conn_close(w, c);
		return;
	}

	/* settle */
	if (c->ctx && !has_partial_request(c->ctx)) {
		/* idle: give the buffers back; an idle keep-alive connection holds none */
		ctx_detach(w, c);
		c->state = ZH__C_IDLE;
	}
	if (c->rdhup) {
		if (c->ctx == NULL || !output_pending(c->ctx))
			zh__conn_close(w, c);
		return;
	}
	if (c->ctx == NULL) {
		if (w->draining && w->now_ms >= w->drain_idle_close_ms)
			zh__conn_close(w, c); /* (drain_idle_close_ms is 0 unless there is a grace) */
		else if (c->requests > 0)
			zh__timer_set(w, c, ZH__T_IDLE);
		else if (c->timer != ZH__T_SILENT && c->timer != ZH__T_HEADER &&
			 !(c->trflags & ZH__TRF_HANDSHAKE)) /* else the handshake timer runs on */
			zh__timer_set(w, c, ZH__T_SILENT); /* nothing sent yet since accept (or
							       since the handshake ended) */
	}
}

/* Draining: a connection without a context may still have a request waiting in the kernel
 * (its edge not processed yet). That request has arrived, so it is answered (with
 * Connection: close); the read finds EAGAIN on a truly idle connection, which then closes. */
void zh__conn_drain(zh__worker_t *w, zh__conn_t *c)
{
	if (ZH__UNLIKELY(c->proto != 0) && zh__protos[c->proto]->conn_drain) {
		zh__protos[c->proto]->conn_drain(w, c);
		return;
	}
	c->readable = true;
	drive(w, c);
}

void zh__conn_continue(zh__worker_t *w, zh__conn_t *c)
{
	/* the slot may have closed, or even been reused, since it yielded */
	if (c->state != ZH__C_FREE && c->proto != 0 && zh__protos[c->proto]->conn_event)
		zh__protos[c->proto]->conn_event(w, c, 0); /* HTTP/2 asked for a turn */
	else if (c->state != ZH__C_FREE && c->ctx && c->ctx->produce_fn)
		drive(w, c);
}

void zh__conn_event(zh__worker_t *w, zh__conn_t *c, uint32_t events)
{
	/* Closed earlier in this same epoll batch (by a drain, say): the event is stale. */
	if (c->state == ZH__C_FREE)
		return;
	if (c->state == ZH__C_LINGER) {
		linger_read(w, c);
		return;
	}
	if (events & EPOLLERR) {
		zh__conn_close(w, c);
		return;
	}
	if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP))
		c->readable = true;
	/* a transport whose read waits for writability (TLS: a handshake flight the socket
	 * could not take whole) reads again once the socket drains */
	if (ZH__UNLIKELY(c->tr != 0) && (events & EPOLLOUT) &&
	    (zh__tr(c)->wants(c, ZH__WANT_READ) & ZH__WANT_WRITE))
		c->readable = true;
	if (events & (EPOLLRDHUP | EPOLLHUP))
		c->hup_seen = true;
	if (ZH__UNLIKELY(c->proto != 0) && zh__protos[c->proto]->conn_event) {
		zh__protos[c->proto]->conn_event(w, c, events);
		return;
	}
	drive(w, c);
}

zh__ctx_t *zh__conn_ctx_attach(zh__worker_t *w, zh__conn_t *c)
{
	return ctx_attach(w, c);
}

void zh__conn_ctx_detach(zh__worker_t *w, zh__conn_t *c)
{
	ctx_detach(w, c);
}

void zh__conn_linger(zh__worker_t *w, zh__conn_t *c)
{
	linger_close(w, c);
}

void zh__conn_drive(zh__worker_t *w, zh__conn_t *c)
{
	if (c->state != ZH__C_FREE)
		drive(w, c);
}

/* A context for a connection with bytes to read. The last eighth of the pool is kept for
 * peers whose whole head has arrived, and only they may evict a stalled holder: otherwise
 * slowloris peers that reconnect when refused would take every context freed and cut one
 * another, keeping every holder younger than the eviction age (measured with 300
 * dribblers on 200 contexts: 84% of wrk's requests got 503). *ready is head_waiting()'s
 * answer when it was asked (conn_evict.c). */
static zh__ctx_t *ctx_for_reading(zh__worker_t *w, zh__conn_t *c, int *ready)
{
	const zh__pool_t *p = &w->ctx_pool;
	zh__ctx_t *ctx;
	if (p->count - p->in_use > p->count / 8)
		return ctx_attach(w, c);
	if ((*ready = zh__conn_head_waiting(w, c)) <= 0)
		return NULL;
	ctx = ctx_attach(w, c);
	if (ctx == NULL && zh__conn_evict_stalled(w))
		ctx = ctx_attach(w, c);
	return ctx;
}

void zh__conn_timeout(zh__worker_t *w, zh__conn_t *c)
{
	enum zh__timer_kind kind = c->timer;
	zh__ctx_t *ctx = c->ctx;
	if (ZH__UNLIKELY(c->proto != 0) && zh__protos[c->proto]->conn_timeout) {
		zh__protos[c->proto]->conn_timeout(w, c);
		return;
	}
	ZH__STAT_ADD(w, timeouts, 1);
	zh__timer_clear(w, c);
	if (kind == ZH__T_HANDSHAKE)
		c->trflags |= ZH__TRF_TIMEDOUT; /* the transport counts why, at close */
	if (kind == ZH__T_BODY && ctx && ctx->resume_fn) {
		/* the continuation learns it from zh_body_read(): -ETIMEDOUT */
		ctx->req.stream_err = -ETIMEDOUT;
		c->close_after = true;
		resume(w, c);
		drive(w, c);
		return;
	}
	if ((kind == ZH__T_SILENT || kind == ZH__T_HEADER || kind == ZH__T_BODY) && ctx &&
	    !output_pending(ctx) &&
	    room_for_response(ctx)) {
		/* RFC 9110 §15.5.9: tell the client why, then close. A parsed request keeps its
		 * view for the done hooks (its 408 ends it); a partial head shows none. */
		if (!ctx->in_request)
			memset(&ctx->req.h, 0, sizeof ctx->req.h);
		respond(ctx, 408, 0, true);
		ctx->in_request = false;
		drive(w, c);
		return;
	}
	zh__conn_close(w, c);
}
