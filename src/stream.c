/* stream.c — the output side of an exchange: the connection's output queue, and a
 * response that leaves while its handler is still writing (spilling a full queue or send
 * area to the transport, waiting for it within sync_write_wait_ms, the head leaving early
 * through the protocol's head_stream, the writers' raw window).
 *
 * Ownership: the send area (ctx->sbuf, then overflow buffers from the large pool) and the
 * iovec queue belong to the connection's context. Entries are released in queue order as the
 * kernel takes their last byte; the area is rewound only when the queue is empty, so no
 * queued iovec ever points at reused memory. response.c is the writer API on top.
 */
#include "internal.h"

#include <errno.h>
#include <poll.h>
#include <string.h>

/* ---- output queue ---------------------------------------------------------------------------- */

/* A record either calls the owner's release function or returns a pooled buffer. */
void zh__release_entry(zh__rel_t *r)
{
	if (r->pool)
		zh__pool_put(r->pool, r->arg);
	else if (r->fn)
		r->fn(r->arg);
	r->fn = NULL;
	r->pool = NULL;
}

/* len contiguous bytes in the send area; a new overflow buffer when the current one is
 * full (the rest of the old one is simply left unused until the queue drains). */
char *zh__out_reserve(zh__ctx_t *ctx, size_t len)
{
	zh__worker_t *w = ctx->w;
	char *buf;
	if (ZH__LIKELY(ctx->area_cap - ctx->area_used >= len)) {
		char *p = ctx->area + ctx->area_used;
		ctx->area_used += (uint32_t)len;
		return p;
	}
	if (len > w->srv->large_size || ctx->noverflow == ZH__OVERFLOW_MAX)
		return NULL;
	buf = zh__pool_get(&w->large_pool);
	if (buf == NULL) {
		ZH__STAT_ADD(w, pool_exhausted, 1);
		return NULL;
	}
	ctx->overflow[ctx->noverflow++] = buf;
	ctx->area = buf;
	ctx->area_cap = (uint32_t)w->srv->large_size;
	ctx->area_used = (uint32_t)len;
	return buf;
}

/* After the kernel has taken everything: rewind the area, return overflow buffers. */
void zh__out_reset(zh__ctx_t *ctx)
{
	ctx->iov_head = ctx->iov_n = 0;
	ctx->area = ctx->sbuf;
	ctx->area_used = 0;
	ctx->area_cap = ZH__SBUF_SIZE;
	while (ctx->noverflow)
		zh__pool_put(&ctx->w->large_pool, ctx->overflow[--ctx->noverflow]);
}

/* The connection is going away with bytes unsent: every borrowed reference is released
 * (its owner may free it), as the zh_write_ref contract promises. */
void zh__out_release_all(zh__ctx_t *ctx)
{
	for (uint16_t i = ctx->iov_head; i < ctx->iov_n; i++)
		zh__release_entry(&ctx->rel[i]);
	zh__out_reset(ctx);
}

/* Drops every queue entry after the head slot (used when a response turns into a 500). */
void zh__out_truncate(zh__ctx_t *ctx, zh_response_t *resp)
{
	while (ctx->iov_n > resp->head_slot + 1) {
		ctx->iov_n--;
		zh__release_entry(&ctx->rel[ctx->iov_n]);
	}
	resp->body_len = 0;
}

/* ---- streaming: the head leaves before the body is complete -------------------------------- */

static int stream_start(zh_response_t *resp)
{
	if (resp->streaming)
		return 0;
	if (!resp->committed)
		zh__resp_commit(resp, resp->implicit_status);
	zh__resp_filter_head(resp); /* may drop Content-Length (gzip): the framing follows it */
	if (resp->error)
		return -EIO; /* a header the filter could not set: a 500, head unsent */
	if (resp->has_length && resp->body_len > resp->declared_len && !resp->head_only)
		return zh__resp_fail(resp, -EMSGSIZE); /* already longer than declared: a 500 */
	resp->streaming = true;
	if (zh__pr_head_stream(resp) < 0) {
		/* no head could be queued (pool exhausted): not streaming after all, so the
		 * response ends as an unsent failure, and its empty head slot sends nothing */
		resp->streaming = false;
		return zh__resp_fail(resp, -ENOBUFS);
	}
	return 0;
}

void zh__resp_stream_start(zh_response_t *resp)
{
	if (resp->streaming)
		zh__pr_boundary(resp); /* what the handler wrote since the last spill */
	else
		(void)stream_start(resp);
}

/* The queue or the send area is full while the handler writes: send what is queued now.
 * Returns 0 when everything went (the send area is whole again), -EAGAIN when the socket
 * took only part (the caller may still use overflow buffers), or a fatal -errno. */
static int spill(zh_response_t *resp)
{
	zh__ctx_t *ctx = resp->ctx;
	int r;
	if (resp->streaming)
		zh__pr_boundary(resp);
	else if ((r = stream_start(resp)) < 0)
		return r;
	r = zh__conn_flush(ctx);
	if (r < 0) {
		ctx->conn->close_after = true;
		return zh__resp_fail(resp, -EPIPE);
	}
	if (r == 0)
		return -EAGAIN;
	return resp->error ? -ENOBUFS : 0; /* all sent; zh__pr_rebase ran */
}

/* The socket is full and the response can hold no more: wait for the socket, blocking the
 * worker, within what is left of sync_write_wait_ms, until everything queued has gone.
 * A client that reads costs microseconds here; one that does not, the budget. */
int zh__resp_spill_wait(zh_response_t *resp)
{
	zh__ctx_t *ctx = resp->ctx;
	int r = spill(resp);
	while (r == -EAGAIN && resp->wait_left_us > 0) {
		/* what lets the transport's send progress: writability on a plain socket */
		unsigned want = zh__tr(ctx->conn)->wants(ctx->conn, ZH__WANT_WRITE);
		struct pollfd pfd = {.fd = ctx->conn->fd,
				     .events = (short)((want & ZH__WANT_READ ? POLLIN : 0) |
						       (want & ZH__WANT_WRITE ? POLLOUT : 0))};
		uint64_t t0 = zh__now_us(), spent;
		(void)poll(&pfd, 1, resp->wait_left_us < 100000 ? (int)(resp->wait_left_us / 1000) + 1 : 100);
		spent = zh__now_us() - t0;
		resp->wait_left_us = spent >= resp->wait_left_us ? 0 : resp->wait_left_us - spent;
		ZH__STAT_ADD(ctx->w, sync_write_waits, 1);
		r = spill(resp);
	}
	return r;
}

int zh__resp_raw_window(zh_response_t *resp, size_t min, char **p, char **end)
{
	zh__ctx_t *ctx = resp->ctx;
	int r = zh__resp_body_gate(resp);
	if (r < 0)
		return r;
	if (ctx->area_cap - ctx->area_used < min && !resp->head_only) {
		r = spill(resp);
		if (r < 0 && r != -EAGAIN)
			return r;
	}
	if (ctx->iov_n >= ZH__IOV_CAP - ZH__IOV_LIBRARY && !resp->head_only &&
	    (zh__resp_spill_wait(resp) < 0 || ctx->iov_n >= ZH__IOV_CAP - ZH__IOV_LIBRARY))
		return zh__resp_fail(resp, -ENOBUFS); /* the commit that follows needs one slot */
	if (resp->head_only && !resp->filtering) {
		/* HEAD: bytes are counted, never sent; the worker's discard buffer takes them */
		if (min > sizeof ctx->w->discard)
			return zh__resp_fail(resp, -ENOBUFS);
		*p = ctx->w->discard;
		*end = ctx->w->discard + sizeof ctx->w->discard;
		return 0;
	}
	/* A filter's output for HEAD is counted too (so Content-Length is what the GET would
	 * carry), but it cannot go to the discard buffer: that is the writers' staging window
	 * (zh_resp_window), which the filter may still be reading. It takes the send area's
	 * free space instead, never queued (raw_commit does not advance area_used), so the head
	 * serialized later simply writes over it. */
	if (ctx->area_cap - ctx->area_used < min && ctx->noverflow == ZH__OVERFLOW_MAX &&
	    !resp->head_only) {
		r = zh__resp_spill_wait(resp); /* no buffer left to take: the socket must make room */
		if (r < 0 && r != -EAGAIN)
			return r;
	}
	if (ctx->area_cap - ctx->area_used < min) {
		/* a fresh overflow buffer; only the window is wanted, not a reservation */
		if (zh__out_reserve(ctx, min) == NULL)
			return zh__resp_fail(resp, -ENOBUFS);
		ctx->area_used -= (uint32_t)min;
	}
	*p = ctx->area + ctx->area_used;
	*end = ctx->area + ctx->area_cap;
	return 0;
}

/* [from, to) was written at the start of the window: queue it, coalesced with the previous
 * part when adjacent. HEAD: counted only (the window is simply reused). */
void zh__resp_raw_commit(zh_response_t *resp, char *from, char *to)
{
	zh__ctx_t *ctx = resp->ctx;
	size_t n = (size_t)(to - from);
	uint16_t last = (uint16_t)(ctx->iov_n - 1);
	if (n == 0)
		return;
	if (resp->head_only) {
		resp->body_len += n;
		return;
	}
	if (!zh__resp_length_ok(resp, n))
		return;
	/* zh_resp_window left a queue slot free, so nothing here spills: [from, to) stays
	 * where the window put it */
	if (ctx->iov_n && last > resp->head_slot && ctx->rel[last].fn == NULL &&
	    ctx->rel[last].pool == NULL && ctx->rel[last].file_fd < 0 &&
	    (char *)ctx->iov[last].iov_base + ctx->iov[last].iov_len == from) {
		ctx->iov[last].iov_len += n;
	} else if (zh__out_push(ctx, from, n, NULL, NULL) < 0) {
		(void)zh__resp_fail(resp, -ENOBUFS);
		return;
	}
	ctx->area_used += (uint32_t)n;
	resp->body_len += n;
}

