/* body.c — request bodies, bounded (the ReadAll problem).
 *
 * Where the bytes go:
 *  - Content-Length that fits after the head in the receive buffer: read there, handed out
 *    in place (no copy).
 *  - Content-Length that does not fit: a pooled buffer of the smallest class that holds it
 *    (large: 64 KiB, body: max_body); the bytes that came with the head are copied once, the
 *    rest is received straight into it (recv is told exactly the remaining length, so the
 *    next pipelined request is never read into the body buffer).
 *  - chunked: decoded in place in the receive buffer (framing squeezed out, a memmove of the
 *    data: counted as copied); moved to a body-class buffer if it outgrows the receive buffer.
 * Over max_body is 413: before reading for Content-Length, as soon as it shows for chunked.
 * Nothing here ever allocates beyond the pools; an exhausted pool is 503.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

static uint32_t body_start_off(const zh__ctx_t *ctx)
{
	return ctx->rstart + ctx->req.h.head_len;
}

/* A pooled buffer of at least size bytes: the smallest class that fits, else the next. */
static int take_buffer(zh__ctx_t *ctx, uint64_t size)
{
	zh__worker_t *w = ctx->w;
	zh_request_t *req = &ctx->req;
	zh__pool_t *classes[2] = {&w->large_pool, &w->body_pool};
	for (unsigned i = 0; i < 2; i++) {
		if (size > classes[i]->obj_size)
			continue;
		req->body_buf = zh__pool_get(classes[i]);
		if (req->body_buf) {
			req->body_pool = classes[i];
			return 0;
		}
	}
	ZH__STAT_ADD(w, pool_exhausted, 1);
	return -503;
}

static size_t body_cap(const zh__ctx_t *ctx)
{
	return ctx->req.body_pool->obj_size;
}

/* A chunked request's head ends at the very end of the receive buffer (pipelined behind
 * requests whose queued responses still point into it, so it cannot be compacted): no byte
 * is left for the framing. Move to a large receive buffer, as make_room() does for long
 * heads, and leave the old one untouched while this context is attached, so whatever points
 * into it (queued responses, slices a handler holds) stays valid. From the small buffer,
 * offsets are kept. From a large one (kept in rbuf_old until the context detaches) only the
 * request is copied, to the start: offsets shift, but every span is relative to req->base.
 * Returns 0, -503 when no large buffer is free, -400 when the head itself fills a large
 * buffer or one was moved from already. */
static int grow_rbuf(zh__ctx_t *ctx)
{
	zh__worker_t *w = ctx->w;
	zh_request_t *req = &ctx->req;
	uint32_t shift = ctx->rbuf_large ? ctx->rstart : 0;
	char *big;
	if (ctx->rbuf_large && (shift == 0 || ctx->rbuf_old))
		return -400;
	if ((big = zh__pool_get(&w->large_pool)) == NULL) {
		ZH__STAT_ADD(w, pool_exhausted, 1);
		return -503;
	}
	memcpy(big, ctx->rbuf + shift, ctx->rlen - shift);
	if (ctx->rbuf_large)
		ctx->rbuf_old = ctx->rbuf;
	ctx->rbuf = big;
	ctx->rcap = (uint32_t)w->srv->large_size;
	ctx->rbuf_large = true;
	ctx->rlen -= shift;
	ctx->rstart -= shift;
	req->raw_pos -= shift;
	req->base = big + ctx->rstart;
	return 0;
}

/* chunked: decode what the receive buffer holds; make room or move to a body buffer when
 * it is full. */
static int feed_chunked(zh__ctx_t *ctx)
{
	zh_request_t *req = &ctx->req;
	uint64_t max_body = ctx->w->srv->cfg.max_body;
	uint32_t bstart = body_start_off(ctx);
	for (;;) {
		size_t produced;
		char *out = req->body_buf ? req->body_buf + req->body_len
					  : ctx->rbuf + bstart + req->body_len;
		size_t out_cap = req->body_buf ? body_cap(ctx) - req->body_len
					       : ctx->rlen - req->raw_pos;
		long r = zh__chunked_decode(&req->chunked, ctx->rbuf + req->raw_pos,
					    ctx->rlen - req->raw_pos, out, out_cap, &produced,
					    max_body);
		if (r < 0)
			return (int)r;
		req->raw_pos += (uint32_t)r;
		req->body_len += produced;
		ZH__STAT_ADD(ctx->w, body_bytes_copied, produced);
		if (zh__chunked_done(&req->chunked)) {
			req->body_state = ZH__B_DONE;
			req->body = req->body_buf ? req->body_buf : ctx->rbuf + bstart;
			return 1;
		}
		if (req->body_buf && req->raw_pos == ctx->rlen) {
			/* all framing consumed: reuse the raw area after the head */
			ctx->rlen = req->raw_pos = bstart;
		}
		if (ctx->rlen < ctx->rcap)
			return 0;
		if (bstart == ctx->rcap) {
			int g = grow_rbuf(ctx);
			if (g < 0)
				return g;
			bstart = body_start_off(ctx);
			continue;
		}
		/* receive buffer full: squeeze out consumed framing first */
		{
			uint32_t keep = bstart + (req->body_buf ? 0 : (uint32_t)req->body_len);
			uint32_t rest = ctx->rlen - req->raw_pos;
			if (keep < req->raw_pos) {
				memmove(ctx->rbuf + keep, ctx->rbuf + req->raw_pos, rest);
				req->raw_pos = keep;
				ctx->rlen = keep + rest;
				continue;
			}
		}
		if (req->body_buf)
			return -400; /* a single framing line fills the buffer: refuse */
		/* the decoded body itself fills the receive buffer: move it out once */
		if (take_buffer(ctx, ctx->w->srv->cfg.max_body) < 0)
			return -503;
		memcpy(req->body_buf, ctx->rbuf + bstart, req->body_len);
		ZH__STAT_ADD(ctx->w, body_bytes_copied, req->body_len);
		{
			uint32_t rest = ctx->rlen - req->raw_pos;
			memmove(ctx->rbuf + bstart, ctx->rbuf + req->raw_pos, rest);
			req->raw_pos = bstart;
			ctx->rlen = bstart + rest;
		}
	}
}

int zh__h1_body_feed(zh__ctx_t *ctx)
{
	zh_request_t *req = &ctx->req;
	if (req->body_state != ZH__B_READING)
		return 1;
	if (req->h.flags & ZH__H_CHUNKED)
		return feed_chunked(ctx);
	if (req->body_buf == NULL) {
		uint32_t bstart = body_start_off(ctx);
		uint64_t avail = ctx->rlen - bstart;
		req->body_len = avail < req->h.content_length ? avail : req->h.content_length;
		req->raw_pos = bstart + (uint32_t)req->body_len;
	}
	if (req->body_len < req->h.content_length)
		return 0;
	req->body_state = ZH__B_DONE;
	return 1;
}

int zh__h1_body_start(zh__ctx_t *ctx)
{
	zh_request_t *req = &ctx->req;
	uint32_t bstart = body_start_off(ctx);
	uint64_t cl = req->h.content_length;

	req->body_buf = NULL;
	req->body_len = req->body_off = 0;
	req->raw_pos = bstart;
	memset(&req->chunked, 0, sizeof req->chunked);
	req->body = ctx->rbuf + bstart;
	if (req->h.flags & ZH__H_CHUNKED) {
		req->body_state = ZH__B_READING;
		return zh__h1_body_feed(ctx);
	}
	if (!(req->h.flags & ZH__H_CL) || cl == 0) {
		req->body_state = ZH__B_DONE;
		return 1;
	}
	if (cl > ctx->w->srv->cfg.max_body)
		return -413;
	req->body_state = ZH__B_READING;
	if (bstart + cl > ctx->rcap) {
		/* will not fit after the head: the bytes that came with it move once */
		uint32_t prefix = ctx->rlen - bstart;
		int r = take_buffer(ctx, cl);
		if (r < 0)
			return r;
		memcpy(req->body_buf, ctx->rbuf + bstart, prefix);
		ZH__STAT_ADD(ctx->w, body_bytes_copied, prefix);
		req->body_len = prefix;
		req->body = req->body_buf;
		ctx->rlen = bstart;
	}
	return zh__h1_body_feed(ctx);
}

bool zh__body_read_target(zh__ctx_t *ctx, char **dst, size_t *cap)
{
	zh_request_t *req = &ctx->req;
	if (ctx->in_request && req->body_state == ZH__B_READING && req->body_buf &&
	    !(req->h.flags & ZH__H_CHUNKED)) {
		*dst = req->body_buf + req->body_len;
		*cap = req->h.content_length - req->body_len;
		return true;
	}
	*dst = ctx->rbuf + ctx->rlen;
	*cap = ctx->rcap - ctx->rlen;
	return false;
}

void zh__body_release(zh__ctx_t *ctx)
{
	zh_request_t *req = &ctx->req;
	if (req->body_buf) {
		zh__pool_put(req->body_pool, req->body_buf);
		req->body_buf = NULL;
	}
}

/* ---- public ------------------------------------------------------------------------------- */

int64_t zh_body_length(const zh_request_t *req)
{
	if (req->h.flags & ZH__H_CHUNKED) {
		if (req->stream)
			return zh__chunked_done(&req->chunked) ? (int64_t)req->body_off : -1;
		return req->body_state == ZH__B_DONE ? (int64_t)req->body_len : -1;
	}
	return (req->h.flags & ZH__H_CL) ? (int64_t)req->h.content_length : 0;
}

int zh_body_all(zh_request_t *req, zh_slice_t *out)
{
	if (req->stream)
		return -ENOTSUP;
	out->ptr = req->body;
	out->len = req->body_len;
	return 0;
}

/* ---- streaming routes --------------------------------------------------------------------
 *
 * The handler pulls; nothing is buffered on its behalf. Bytes that arrived with the head are
 * copied out of the receive buffer; after that, a Content-Length body is read straight into
 * the caller's buffer, never past its end (the next pipelined request stays in the kernel).
 * A chunked body is read into the receive buffer after the head (its framing has to be parsed
 * somewhere) and decoded into the caller's buffer.
 */

bool zh__body_stream_complete(const zh_request_t *req)
{
	if (req->h.flags & ZH__H_CHUNKED)
		return zh__chunked_done(&req->chunked);
	return req->body_off == ((req->h.flags & ZH__H_CL) ? req->h.content_length : 0);
}

static ssize_t stream_fail(zh_request_t *req, int err)
{
	req->stream_err = err;
	req->ctx->conn->close_after = true; /* the rest of the body cannot be found */
	return err;
}

/* One read from the transport; -EAGAIN when drained, -ECONNRESET at EOF. */
static ssize_t stream_recv(zh_request_t *req, char *dst, size_t cap)
{
	zh__conn_t *c = req->ctx->conn;
	zh__worker_t *w = req->ctx->w;
	ssize_t n;
	if (!c->readable)
		return -EAGAIN;
	n = zh__tr_recv(c, dst, cap); /* clears c->readable when drained */
	ZH__STAT_ADD(w, read_calls, 1);
	if (n > 0) {
		ZH__STAT_ADD(w, bytes_in, (uint64_t)n);
		return n;
	}
	if (n == -EAGAIN) {
		c->readable = false;
		return -EAGAIN;
	}
	c->rdhup = true;
	return stream_fail(req, -ECONNRESET);
}

static ssize_t stream_read_length(zh_request_t *req, char *buf, size_t cap)
{
	zh__ctx_t *ctx = req->ctx;
	uint64_t left = req->h.content_length - req->body_off;
	uint64_t in_rbuf = ctx->rlen - req->raw_pos;
	size_t n = cap < left ? cap : (size_t)left;
	ssize_t r;

	if (in_rbuf) {
		if (n > in_rbuf)
			n = (size_t)in_rbuf;
		memcpy(buf, ctx->rbuf + req->raw_pos, n);
		ZH__STAT_ADD(ctx->w, body_bytes_copied, n);
		req->raw_pos += (uint32_t)n;
		req->body_off += n;
		return (ssize_t)n;
	}
	r = stream_recv(req, buf, n);
	if (r > 0)
		req->body_off += (uint64_t)r;
	return r;
}

static ssize_t stream_read_chunked(zh_request_t *req, char *buf, size_t cap)
{
	zh__ctx_t *ctx = req->ctx;
	uint32_t bstart = body_start_off(ctx);
	for (;;) {
		size_t produced;
		long used = zh__chunked_decode(&req->chunked, ctx->rbuf + req->raw_pos,
					       ctx->rlen - req->raw_pos, buf, cap, &produced,
					       UINT64_MAX);
		ssize_t r;
		if (used < 0)
			return stream_fail(req, -EPROTO);
		req->raw_pos += (uint32_t)used;
		req->body_off += produced;
		ZH__STAT_ADD(ctx->w, body_bytes_copied, produced);
		if (produced || zh__chunked_done(&req->chunked))
			return (ssize_t)produced;
		/* everything buffered is consumed framing: reuse the space after the head */
		if (req->raw_pos == ctx->rlen)
			ctx->rlen = req->raw_pos = bstart;
		if (ctx->rlen == ctx->rcap && bstart == ctx->rcap) {
			int g = grow_rbuf(ctx);
			if (g < 0) /* no large buffer free: 503 */
				return stream_fail(req, g == -503 ? -ENOBUFS : -EPROTO);
			bstart = body_start_off(ctx);
		}
		if (ctx->rlen == ctx->rcap) {
			uint32_t rest = ctx->rlen - req->raw_pos;
			if (req->raw_pos == bstart)
				return stream_fail(req, -EPROTO); /* one framing line fills it */
			memmove(ctx->rbuf + bstart, ctx->rbuf + req->raw_pos, rest);
			req->raw_pos = bstart;
			ctx->rlen = bstart + rest;
		}
		r = stream_recv(req, ctx->rbuf + ctx->rlen, ctx->rcap - ctx->rlen);
		if (r < 0)
			return r;
		ctx->rlen += (uint32_t)r;
	}
}

/* RFC 9110 §10.1.1: the handler reads (or waits to), so the body is wanted: invite it,
 * through the protocol (interim_100), ahead of the response's head. */
static void invite_body(zh_request_t *req)
{
	zh__ctx_t *ctx = req->ctx;
	/* not once the final head has left (the response spilled): a 100 would land inside
	 * it, and RFC 9110 §15.2 allows no interim response after the final one */
	if (!req->sent_continue && (req->h.flags & ZH__H_EXPECT_CONTINUE) &&
	    !zh__body_stream_complete(req) && !ctx->resp.streaming)
		zh__pr_interim_100(ctx);
	req->sent_continue = true;
}

/* Body bytes already in the receive buffer that the handler has not taken yet. */
bool zh__body_stream_buffered(const zh_request_t *req)
{
	return req->stream && !zh__body_stream_complete(req) && req->raw_pos < req->ctx->rlen;
}

/* A streaming route's next body bytes: Content-Length or chunked framing, read from the
 * transport as needed (HTTP/1's body_read). */
ssize_t zh__h1_body_read(zh_request_t *req, char *buf, size_t cap)
{
	if (req->stream_err)
		return req->stream_err;
	if (zh__body_stream_complete(req))
		return 0;
	invite_body(req);
	return (req->h.flags & ZH__H_CHUNKED) ? stream_read_chunked(req, buf, cap)
					      : stream_read_length(req, buf, cap);
}

/* ---- without a copy (ext.h; the reverse proxy's) ------------------------------------------ */

static bool stream_in_place(const zh_request_t *req)
{
	return req->stream && req->ctx->conn->proto == 0 && !(req->h.flags & ZH__H_CHUNKED) &&
	       !req->stream_err;
}

zh_slice_t zh__body_peek(const zh_request_t *req)
{
	const zh__ctx_t *ctx = req->ctx;
	uint64_t left, n;
	if (!stream_in_place(req))
		return (zh_slice_t){NULL, 0};
	left = req->h.content_length - req->body_off;
	n = ctx->rlen - req->raw_pos;
	return (zh_slice_t){ctx->rbuf + req->raw_pos, (size_t)(n < left ? n : left)};
}

void zh__body_take(zh_request_t *req, size_t n)
{
	req->raw_pos += (uint32_t)n;
	req->body_off += n;
}

ssize_t zh__body_splice(zh_request_t *req, int pipe_w, size_t cap)
{
	zh__conn_t *c = req->ctx->conn;
	uint64_t left = req->h.content_length - req->body_off;
	ssize_t n;
	if (req->stream_err)
		return req->stream_err;
	if (!stream_in_place(req) || c->tr != 0 || req->raw_pos < req->ctx->rlen)
		return -ENOTSUP;
	if (left == 0)
		return 0;
	invite_body(req);
	if (!c->readable)
		return -EAGAIN;
	do
		n = splice(c->fd, NULL, pipe_w, NULL, cap < left ? cap : (size_t)left,
			   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
	while (n < 0 && errno == EINTR);
	ZH__STAT_ADD(req->ctx->w, read_calls, 1);
	if (n > 0) {
		ZH__STAT_ADD(req->ctx->w, bytes_in, (uint64_t)n);
		req->body_off += (uint64_t)n;
		return n;
	}
	if (n < 0 && errno == EAGAIN) {
		c->readable = false; /* the caller splices only into a pipe with room */
		return -EAGAIN;
	}
	c->rdhup = true;
	return stream_fail(req, -ECONNRESET);
}

int zh_body_wait(zh_request_t *req, zh_body_fn fn, void *arg)
{
	if (!req->stream || req->stream_err || fn == NULL || req->ctx->in_error_handler)
		return -EINVAL;
	invite_body(req);
	req->ctx->resume_fn = fn;
	req->ctx->resume_arg = arg;
	req->ctx->conn->defer_gen++; /* a zh__body_wake token of an earlier wait is stale */
	return 0;
}

ssize_t zh_body_read(zh_request_t *req, void *buf, size_t cap)
{
	if (cap == 0)
		return -EINVAL; /* 0 would read as the end of the body */
	if (req->stream)
		return zh__pr_body_read(req, buf, cap);
	uint64_t left = req->body_len - req->body_off;
	size_t n = left < cap ? (size_t)left : cap;
	memcpy(buf, req->body + req->body_off, n);
	req->body_off += n;
	ZH__STAT_ADD(req->ctx->w, body_bytes_copied, n);
	return (ssize_t)n;
}
