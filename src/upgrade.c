/* upgrade.c — protocol upgrades (zh_resp_upgrade): an HTTP/1.1 connection switches to
 * another protocol after a 101 and leaves the server with its socket.
 *
 * The 101's head is an ordinary response's (queued, sent with the pipelined responses
 * before it, through the usual write path and its write timer); conn.c hands the socket
 * over once that head has left whole (zh__conn_hand_over), instead of lingering and
 * closing. Until then the callback is owed: a connection that dies first, or a response
 * that fails into a 500, calls it with fd -1 (ctx_detach -> zh__upgrade_cancel). Nothing is
 * allocated: the callback and its argument live in the I/O context.
 */
#include "internal.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>

/* Does the comma-separated list v hold protocol as an element (case-insensitively)? */
static bool listed(zh_slice_t v, const char *protocol)
{
	size_t plen = strlen(protocol), i = 0;
	zh_slice_t e;
	while (zh__list_next(v, &i, &e))
		if (e.len == plen && zh__ieq(e.ptr, protocol, plen))
			return true;
	return false;
}

/* protocol = protocol-name ["/" protocol-version], both tokens (RFC 9110 §7.8) */
static bool valid_protocol(const char *p)
{
	const char *slash = strchr(p, '/');
	if (slash == NULL)
		return zh__valid_token(p, strlen(p));
	return zh__valid_token(p, (size_t)(slash - p)) &&
	       zh__valid_token(slash + 1, strlen(slash + 1));
}

int zh_req_upgrade(const zh_request_t *req, zh_slice_t *offered)
{
	const zh__ctx_t *ctx = req->ctx;
	const zh__conn_t *c = ctx->conn;
	const zh__head_t *h = &req->h;
	if (c->virt || c->proto != 0 || (c->tr != 0 && zh__tr(c)->detach == NULL))
		return -EOPNOTSUPP; /* HTTP/2, TLS: no socket to hand over as is */
	if (h->minor != 1 || !(h->flags & ZH__H_UPGRADE) || (h->flags & ZH__H_CHUNKED) ||
	    ((h->flags & ZH__H_CL) && h->content_length) ||
	    zh_req_header(req, "Upgrade", offered) != 1 || offered->len == 0)
		return 0;
	return 1;
}

int zh_resp_upgrade(zh_response_t *resp, const char *protocol, zh_upgrade_fn fn, void *arg)
{
	zh__ctx_t *ctx = resp->ctx;
	zh_slice_t offered;
	int r;
	if (resp->committed || resp->in_hooks || ctx->upgrade_fn || ctx->in_error_handler)
		return -EALREADY; /* (an error handler answers with an error, not a switch) */
	if ((r = zh_req_upgrade(&ctx->req, &offered)) < 0)
		return r;
	if (r == 0 || fn == NULL || protocol == NULL || !valid_protocol(protocol) ||
	    !listed(offered, protocol))
		return -EINVAL; /* RFC 9110 §7.8: only to a protocol the client offered */
	if ((r = zh_resp_header_set(resp, "Upgrade", protocol)) < 0)
		return r;
	ctx->upgrade_fn = fn;
	ctx->upgrade_arg = arg;
	zh__resp_commit(resp, 101); /* body writes are refused from here (no body) */
	return 0;
}

void zh__upgrade_cancel(zh__ctx_t *ctx)
{
	zh_upgrade_fn fn = ctx->upgrade_fn;
	if (fn == NULL)
		return;
	ctx->upgrade_fn = NULL;
	fn(-1, NULL, 0, ctx->upgrade_arg);
}

void zh__conn_hand_over_now(zh__worker_t *w, zh__conn_t *c, const void *early, size_t len)
{
	zh__ctx_t *ctx = c->ctx;
	zh_upgrade_fn fn = ctx->upgrade_fn;
	ctx->upgrade_fn = NULL;
	ZH__STAT_ADD(w, connections_upgraded, 1);
	/* the bytes after the request are the new protocol's: lent for the call only */
	fn(c->fd, early, len, ctx->upgrade_arg);
	zh__conn_forget(w, c);
}

void zh__conn_hand_over(zh__worker_t *w, zh__conn_t *c)
{
	/* io_uring: its receive is cancelled first (the bytes it still brings are the new
	 * protocol's); the plain socket leaves the epoll set */
	int r = c->tr != 0			       ? zh__tr(c)->detach(c)
		: epoll_ctl(w->ep, EPOLL_CTL_DEL, c->fd, NULL) < 0 ? -errno
								   : 1;
	if (r < 0)
		zh__conn_close(w, c); /* the call says fd -1 */
	else if (r > 0)
		zh__conn_hand_over_now(w, c, c->ctx->rbuf + c->ctx->rstart,
				       c->ctx->rlen - c->ctx->rstart);
}
