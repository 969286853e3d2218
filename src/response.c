/* response.c — the response writer (the exchange layer); the output queue and streaming
 * are in stream.c.
 *
 * A response is queued, never written, while its handler runs: iov[head_slot] is reserved
 * when the response begins, body parts are appended after it as iovecs (references to the
 * caller's memory, static data, or copies in the send area), and the protocol (zh__pr_*,
 * HTTP/1.1 in http1.c) serializes the head into the send area when the response finishes,
 * once the length is known, or frames the body as it leaves when it streams.
 * conn.c then hands the whole queue, several pipelined responses included, to one writev.
 *
 * Ownership: the send area (ctx->sbuf, then overflow buffers from the large pool) and the
 * iovec queue belong to the connection's context. Entries are released in queue order as the
 * kernel takes their last byte; the area is rewound only when the queue is empty, so no
 * queued iovec ever points at reused memory.
 */
#include "internal.h"

#include <assert.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

/* RFC 9110 §6.6.1: an origin server with a clock sends Date. Formatted once a second per
 * worker (strftime is far too slow for every response), then memcpy'd into each head. */
void zh__date_refresh(zh__worker_t *w, time_t now)
{
	const zh_server_t *srv = w->srv;
	char *p = w->common_hdr + srv->server_hdr_len;
	if (now == w->date_sec)
		return;
	w->date_sec = now;
	memcpy(w->common_hdr, srv->server_hdr, srv->server_hdr_len);
	memcpy(p, "Date: ", 6);
	zh__http_date(now, p + 6);
	memcpy(p + 35, "\r\n", 2);
	w->date_len = 37;
	w->common_len = srv->server_hdr_len + w->date_len;
}

static int header_put(zh_response_t *resp, const char *name, size_t nlen, const char *value,
		      size_t vlen, bool replace);

/* ---- response lifecycle --------------------------------------------------------------------- */

void zh__resp_begin(zh__ctx_t *ctx, bool head_only)
{
	zh_response_t *resp = &ctx->resp;
	resp->ctx = ctx;
	resp->status = 0;
	resp->implicit_status = 200;
	resp->committed = resp->in_hooks = resp->error = resp->has_length = false;
	resp->close = resp->has_server = false;
	resp->head_only = head_only;
	resp->declared_len = resp->body_len = 0;
	resp->nhooks = resp->nhdr = 0;
	resp->hused = 0;
	resp->ntr = 0;
	resp->tused = 0;
	resp->streaming = resp->chunk_crlf = false;
	resp->framing = ZH__F_LENGTH;
	resp->framed_len = 0;
	resp->chunk_slot = 0;
	resp->wait_left_us = (uint64_t)ctx->w->srv->cfg.sync_write_wait_ms * 1000u;
	resp->writer = NULL;
	resp->filtering = resp->file_body = resp->filter_headed = false;
	resp->filter_in = 0;
	/* conn.c guarantees free slots before a request starts. A streaming handler may invite
	 * the body with 100 Continue while its own head is still unwritten: that goes first. */
	if (ctx->in_request && ctx->req.stream)
		resp->interim_slot = (uint16_t)zh__out_push(ctx, NULL, 0, NULL, NULL);
	resp->head_slot = (uint16_t)zh__out_push(ctx, NULL, 0, NULL, NULL);
	resp->chunk_slot = resp->head_slot;
	zh__mw_add_commit_hooks(ctx);
}

void zh__resp_commit(zh_response_t *resp, int status)
{
	resp->status = status;
	resp->in_hooks = true;
	for (unsigned i = 0; i < resp->nhooks; i++) {
		resp->ctx->req.mw_cur = resp->hooks[i].slot; /* zh_mw_slot() inside the hook */
		resp->hooks[i].fn(resp, resp->hooks[i].arg);
	}
	resp->ctx->req.mw_cur = ZH__MW_NONE;
	resp->in_hooks = false;
	resp->committed = true;
}

const uint32_t zh_latency_bounds_us[ZH_LATENCY_BUCKETS - 1] = {
	25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
	1000000, 2500000, 5000000, 10000000};

/* Per-worker counters for /metrics: plain stores by the worker (ZH__STAT_ADD). */
static void count_response(zh__ctx_t *ctx, int status)
{
	zh__worker_t *w = ctx->w;
	unsigned cls = status >= 100 && status < 600 ? (unsigned)status / 100 - 1 : 4;
	unsigned m = 8;
	switch (cls) {
	case 0: ZH__STAT_ADD(w, responses_1xx, 1); break;
	case 1: ZH__STAT_ADD(w, responses_2xx, 1); break;
	case 2: ZH__STAT_ADD(w, responses_3xx, 1); break;
	case 3: ZH__STAT_ADD(w, responses_4xx, 1); break;
	default: ZH__STAT_ADD(w, responses_5xx, 1); break;
	}
	if (ctx->in_request)
		ZH__STAT_ADD(w, requests_done, 1);
	if (ctx->in_request && ctx->started_us) {
		uint64_t us = zh__now_us() - ctx->started_us;
		unsigned b = 0;
		while (b < ZH_LATENCY_BUCKETS - 1 && us > zh_latency_bounds_us[b])
			b++;
		ZH__STAT_ADD(w, latency_buckets[b], 1);
		ZH__STAT_ADD(w, latency_sum_us, us);
		ZH__STAT_ADD(w, latency_count, 1);
		if (ctx->req.h.method_bit)
			m = (unsigned)__builtin_ctz(ctx->req.h.method_bit);
	}
	ZH__STAT_ADD(w, responses_by[m][cls], 1);
}

static void become_500(zh__ctx_t *ctx, zh_response_t *resp)
{
	static const char body[] = "Internal Server Error\n";
	zh__out_truncate(ctx, resp);
	resp->status = 500;
	resp->nhdr = 0;
	resp->hused = 0;
	resp->has_length = resp->has_server = false;
	resp->error = false;
	resp->body_len = sizeof body - 1;
	if (!resp->head_only)
		(void)zh__out_push(ctx, body, sizeof body - 1, NULL, NULL);
	(void)header_put(resp, "Content-Type", 12, "text/plain; charset=utf-8", 25, true);
}

/* A pending writer's output joins the queue, and its verdict counts: an unfinished or
 * erroneous JSON document fails the response. */
int zh__writer_check(zh_response_t *resp, bool final)
{
	if (resp->writer == NULL)
		return 0;
	resp->writer->sync(resp, resp->writer_state);
	return resp->writer->check ? resp->writer->check(resp, resp->writer_state, final) : 0;
}

void zh__resp_finish(zh__ctx_t *ctx)
{
	zh_response_t *resp = &ctx->resp;
	zh__conn_t *c = ctx->conn;

	if (zh__writer_check(resp, true) < 0)
		resp->error = true;
	resp->writer = NULL; /* the response has ended: nothing more is synced */
	if (!resp->committed)
		zh__resp_commit(resp, resp->implicit_status);
	if (resp->filtering && !resp->error) {
		int r = resp->filter.finish ? resp->filter.finish(resp, resp->filter.arg) : 0;
		if (r < 0)
			(void)zh__resp_fail(resp, r);
	}
	if (resp->streaming) {
		/* the end of a response whose head has left: after an error nothing completes
		 * the body and the connection closes (the client sees the truncation) */
		if (zh__pr_body_end(resp)) {
			resp->close = true;
			ZH__STAT_ADD(ctx->w, responses_aborted, 1);
		}
	} else {
		if (!resp->error)
			zh__resp_filter_head(resp);
		if (resp->error ||
		    (resp->has_length && !resp->head_only && zh__status_has_body(resp->status) &&
		     resp->declared_len != resp->body_len))
			become_500(ctx, resp);
		if (ZH__UNLIKELY(ctx->upgrade_fn != NULL) && resp->status != 101)
			resp->close = true; /* a failed upgrade: it says so, then closes */
		if (!zh__pr_head_whole(resp)) {
			/* no memory to frame the response: drop it and close (the client sees EOF) */
			zh__out_truncate(ctx, resp);
			resp->close = true;
			zh__upgrade_cancel(ctx); /* no 101 on the wire: no hand-over */
		}
	}
	if (ctx->req.body_buf) {
		/* The body may be referenced by this response (echo): the buffer goes back to
		 * its pool only once the kernel has taken everything queued before it. */
		int slot = zh__out_push(ctx, NULL, 0, NULL, ctx->req.body_buf);
		assert(slot >= 0); /* zh__resp_push_part() keeps ZH__IOV_LIBRARY slots for this */
		ctx->rel[slot].pool = ctx->req.body_pool;
		ctx->req.body_buf = NULL;
	}
	c->close_after |= resp->close || ctx->upgrade_fn; /* a 101 ends HTTP on it */
	c->requests++;
	count_response(ctx, resp->status);
	zh__utimers_close(ctx); /* before the done hooks, which may free the timers' memory */
	zh__mw_done(ctx);
	zh__resp_release_filter(resp);
}

/* The connection died before this request's response ended: it still counts as done (the
 * in-flight gauge), as aborted if its head had left, and the done hooks see it once, as a
 * failed response. If no head had left (streaming is only ever set once this request's
 * commit serialized one: start_request clears committed), the client closed before any
 * answer: the done hooks see 499, nginx's "client closed request", rather than a status
 * that was never sent (or none at all), so access logs say what happened. */
void zh__resp_abandon(zh__ctx_t *ctx)
{
	zh_response_t *resp = &ctx->resp;
	bool head_left = resp->committed && resp->streaming;
	ZH__STAT_ADD(ctx->w, requests_done, 1);
	if (head_left)
		ZH__STAT_ADD(ctx->w, responses_aborted, 1);
	else {
		resp->status = 499;
		resp->committed = true; /* so zh_resp_status() reports it */
		resp->in_hooks = false;
		resp->body_len = 0; /* what was queued never left: zh_resp_body_len() is 0 */
	}
	resp->writer = NULL; /* nothing it holds will be queued now */
	resp->error = true;
	zh__utimers_close(ctx); /* a callback never runs for a request that has gone */
	zh__mw_done(ctx);
	zh__resp_release_filter(resp); /* a gzip slot goes back even so */
	ctx->in_request = false;
}

/* What an application's error handler did to a response that is not sent yet, undone so
 * that zh__resp_error can write the library's answer instead: its body, its failure, its
 * pending writer and filter. Its header fields stay (Content-Type is replaced), and so does
 * its commit: the commit hooks do not run twice. */
void zh__resp_error_reset(zh__ctx_t *ctx)
{
	zh_response_t *resp = &ctx->resp;
	zh__out_truncate(ctx, resp);
	zh__resp_release_filter(resp);
	resp->writer = NULL;
	resp->error = false;
	resp->file_body = false;
}

void zh__resp_error(zh__ctx_t *ctx, int status, bool close)
{
	zh_response_t *resp = &ctx->resp;
	size_t reason_len;
	const char *reason = zh__status_reason(status, &reason_len);
	zh__out_truncate(ctx, resp);
	resp->has_length = false;
	resp->close |= close;
	if (resp->committed) /* an error handler's response, replaced (zh__resp_error_reset) */
		resp->status = status;
	else
		zh__resp_commit(resp, status);
	if (!zh__status_has_body(status))
		return;
	(void)header_put(resp, "Content-Type", 12, "text/plain; charset=utf-8", 25, true);
	if (status == 503) /* no buffer, or over a limit: worth retrying soon */
		(void)header_put(resp, "Retry-After", 11, "1", 1, true);
	resp->body_len = reason_len + 1;
	if (!resp->head_only) {
		(void)zh__out_push(ctx, reason, reason_len, NULL, NULL);
		(void)zh__out_push(ctx, "\n", 1, NULL, NULL);
	}
}

/* ---- public: headers ------------------------------------------------------------------------ */

static int reject(zh_response_t *resp)
{
	ZH__STAT_ADD(resp->ctx->w, header_rejects, 1);
	return -EINVAL;
}

/* The store holds the fields as serialized lines, in order; removing one closes the gap. */
static int header_del(zh_response_t *resp, const char *name, size_t nlen)
{
	unsigned kept = 0, removed = 0;
	uint16_t shift = 0;
	for (unsigned i = 0; i < resp->nhdr; i++) {
		zh__hdr_t hd = resp->hdr[i];
		uint16_t line = (uint16_t)(hd.nlen + hd.vlen + 4);
		if (hd.nlen == nlen && zh__ieq(resp->hstore + hd.noff, name, nlen)) {
			shift = (uint16_t)(shift + line);
			removed++;
			continue;
		}
		if (shift) {
			memmove(resp->hstore + hd.noff - shift, resp->hstore + hd.noff, line);
			hd.noff = (uint16_t)(hd.noff - shift);
			hd.voff = (uint16_t)(hd.voff - shift);
		}
		resp->hdr[kept++] = hd;
	}
	resp->nhdr = (uint8_t)kept;
	resp->hused = (uint16_t)(resp->hused - shift);
	return (int)removed;
}

/* Library-owned fields; returns 1 if handled, 0 if an ordinary field, or -errno. */
static int reserved_field(zh_response_t *resp, const char *name, size_t nlen, const char *value,
			  size_t vlen)
{
	if (nlen == 14 && zh__ieq(name, "content-length", 14)) {
		uint64_t v = 0;
		if (vlen == 0 || vlen > 19)
			return reject(resp);
		for (size_t i = 0; i < vlen; i++) {
			if (value[i] < '0' || value[i] > '9')
				return reject(resp);
			v = v * 10 + (uint64_t)(value[i] - '0');
		}
		resp->declared_len = v;
		resp->has_length = true;
		return 1;
	}
	if (nlen == 10 && zh__ieq(name, "connection", 10)) {
		if (vlen != 5 || !zh__ieq(value, "close", 5))
			return reject(resp);
		resp->close = true;
		return 1;
	}
	if ((nlen == 17 && zh__ieq(name, "transfer-encoding", 17)) ||
	    (nlen == 4 && zh__ieq(name, "date", 4)))
		return reject(resp);
	if (nlen == 6 && zh__ieq(name, "server", 6))
		resp->has_server = true;
	return 0;
}

/* A field whose name is a token and whose value is valid and trimmed (checked by the
 * caller). */
static int header_store(zh_response_t *resp, const char *name, size_t nlen, const char *value,
			size_t vlen, bool replace)
{
	int r;
	zh__hdr_t *hd;
	char *p;
	r = reserved_field(resp, name, nlen, value, vlen);
	if (r != 0)
		return r < 0 ? r : 0;
	{
		/* room counted as if the fields to be replaced were gone, so that a refused call
		 * changes nothing */
		unsigned n = resp->nhdr;
		size_t used = resp->hused;
		for (unsigned i = 0; replace && i < resp->nhdr; i++) {
			const zh__hdr_t *old = &resp->hdr[i];
			if (old->nlen == nlen && zh__ieq(resp->hstore + old->noff, name, nlen)) {
				n--;
				used -= old->nlen + old->vlen + 4u;
			}
		}
		if (n == ZH__RESP_HEADERS || ZH__RESP_HSTORE - used < nlen + vlen + 4)
			return -ENOSPC;
	}
	if (replace && resp->nhdr)
		header_del(resp, name, nlen);
	/* stored as the line it will be sent as: serializing the head is then one memcpy */
	p = resp->hstore + resp->hused;
	hd = &resp->hdr[resp->nhdr++];
	hd->noff = resp->hused;
	hd->nlen = (uint16_t)nlen;
	hd->voff = (uint16_t)(resp->hused + nlen + 2);
	hd->vlen = (uint16_t)vlen;
	memcpy(p, name, nlen);
	p[nlen] = ':';
	p[nlen + 1] = ' ';
	memcpy(p + nlen + 2, value, vlen);
	p[nlen + 2 + vlen] = '\r';
	p[nlen + 3 + vlen] = '\n';
	resp->hused = (uint16_t)(resp->hused + nlen + vlen + 4);
	return 0;
}

static int header_put(zh_response_t *resp, const char *name, size_t nlen, const char *value,
		      size_t vlen, bool replace)
{
	if (!zh__valid_token(name, nlen) || !zh__valid_field_value(value, vlen))
		return reject(resp);
	if (vlen && (value[0] == ' ' || value[0] == '\t' || value[vlen - 1] == ' ' ||
		     value[vlen - 1] == '\t'))
		return reject(resp); /* field values carry no surrounding whitespace */
	return header_store(resp, name, nlen, value, vlen, replace);
}

/* Trusted, preformatted header lines with their index (zh__hlines_t), built once by the
 * library (the static cache), appended with one memcpy per block and no validation per
 * request. Names must not be library-owned fields; fields of the same names set earlier
 * (by a middleware) are replaced. */
int zh__resp_header_lines(zh_response_t *resp, const zh__hlines_t *const *blocks, unsigned n)
{
	size_t len = 0;
	unsigned fields = 0;
	if (resp->committed && !resp->in_hooks)
		return -EALREADY;
	for (unsigned b = 0; b < n; b++) {
		len += blocks[b]->len;
		fields += blocks[b]->n;
		for (unsigned i = 0; resp->nhdr && i < blocks[b]->n; i++)
			header_del(resp, blocks[b]->text + blocks[b]->idx[i].noff, blocks[b]->idx[i].nlen);
	}
	if (resp->nhdr + fields > ZH__RESP_HEADERS || (size_t)(ZH__RESP_HSTORE - resp->hused) < len)
		return -ENOSPC;
	for (unsigned b = 0; b < n; b++) {
		const zh__hlines_t *bl = blocks[b];
		memcpy(resp->hstore + resp->hused, bl->text, bl->len);
		for (unsigned i = 0; i < bl->n; i++) {
			zh__hdr_t *hd = &resp->hdr[resp->nhdr++];
			*hd = bl->idx[i];
			hd->noff = (uint16_t)(hd->noff + resp->hused);
			hd->voff = (uint16_t)(hd->voff + resp->hused);
		}
		resp->hused = (uint16_t)(resp->hused + bl->len);
	}
	return 0;
}

static bool frozen(const zh_response_t *resp)
{
	return resp->committed && !resp->in_hooks;
}

/* Sticky header errors. A field that could not be set (-ENOSPC, -EINVAL, -EALREADY) leaves
 * the response saying something other than what its writer meant: a lost CORS, cache or
 * encoding field is a wrong answer, not a smaller one. So the failure belongs to the
 * response as well as to the call. While headers are still mutable (before the commit, or
 * inside a commit hook or a filter's head hook, always before the head is serialized) the
 * response fails: it becomes a 500 when it ends, with none of its own fields (only the
 * library's framing, Server and Date; see become_500). After the commit its status is
 * promised and the call changes nothing, so it is only counted. Either way
 * stats.header_errors counts it, and the caller still gets the error to react to. */
static int header_failed(zh_response_t *resp, int err)
{
	ZH__STAT_ADD(resp->ctx->w, header_errors, 1);
	if (!frozen(resp))
		resp->error = true;
	return err;
}

int zh_resp_header_setn(zh_response_t *resp, const char *name, size_t name_len,
			const char *value, size_t value_len)
{
	int r;
	if (frozen(resp))
		return header_failed(resp, -EALREADY);
	r = header_put(resp, name, name_len, value, value_len, true);
	return r < 0 ? header_failed(resp, r) : r;
}

/* RFC 9110 §6.5.1: fields a trailer must not carry (framing, routing, the trailer list) */
static bool trailer_forbidden(const char *name, size_t n)
{
	static const char *const names[] = {"content-length", "transfer-encoding", "host",
					    "te", "trailer", "connection", "content-type",
					    "content-encoding"};
	for (unsigned i = 0; i < sizeof names / sizeof names[0]; i++)
		if (strlen(names[i]) == n && zh__ieq(name, names[i], n))
			return true;
	return false;
}

int zh_resp_trailer(zh_response_t *resp, const char *name, const char *value)
{
	size_t nl = strlen(name), vl = strlen(value);
	char *p;
	if (!zh__valid_token(name, nl) || !zh__valid_field_value(value, vl) ||
	    trailer_forbidden(name, nl) || (nl && name[0] == ':'))
		return -EINVAL;
	if (resp->ntr == UINT8_MAX || (size_t)(ZH__RESP_TSTORE - resp->tused) < nl + vl + 4)
		return -ENOSPC;
	p = resp->tstore + resp->tused;
	memcpy(p, name, nl);
	memcpy(p + nl, ": ", 2);
	memcpy(p + nl + 2, value, vl);
	memcpy(p + nl + 2 + vl, "\r\n", 2);
	resp->tused = (uint16_t)(resp->tused + nl + vl + 4);
	resp->ntr++;
	return 0;
}

bool zh__req_te_trailers(const zh_request_t *req)
{
	zh_slice_t v;
	if (zh_req_header(req, "TE", &v) != 1)
		return false;
	for (size_t i = 0; i + 8 <= v.len; i++)
		if (zh__ieq(v.ptr + i, "trailers", 8) && (i == 0 || v.ptr[i - 1] == ' ' ||
							   v.ptr[i - 1] == ',') &&
		    (i + 8 == v.len || v.ptr[i + 8] == ',' || v.ptr[i + 8] == ' ' ||
		     v.ptr[i + 8] == ';'))
			return true;
	return false;
}

int zh_resp_header_set(zh_response_t *resp, const char *name, const char *value)
{
	return zh_resp_header_setn(resp, name, strlen(name), value, strlen(value));
}

int zh_resp_header_add(zh_response_t *resp, const char *name, const char *value)
{
	int r;
	if (frozen(resp))
		return header_failed(resp, -EALREADY);
	r = header_put(resp, name, strlen(name), value, strlen(value), false);
	return r < 0 ? header_failed(resp, r) : r;
}

int zh__resp_header_addn(zh_response_t *resp, const char *name, size_t nlen, const char *value,
			 size_t vlen)
{
	int r;
	if (frozen(resp))
		return header_failed(resp, -EALREADY);
	r = header_store(resp, name, nlen, value, vlen, false); /* checked by the caller */
	return r < 0 ? header_failed(resp, r) : r;
}

/* A writer's own Content-Type (JSON, protobuf), unless the handler set one. An explicit
 * zh_write_header() commits the status, but the head is serialized only when the body
 * starts to leave (stream_start) or the response ends: until then the writer may still
 * name what it writes, as Go's ResponseWriter adds a sniffed Content-Type at the first
 * Write after WriteHeader. A failure follows the sticky rule (header_failed) while the
 * headers are mutable; once the head has left there is nothing to add to. */
int zh__resp_content_type(zh_response_t *resp, const char *type)
{
	zh_slice_t ct;
	int r;
	if (resp->streaming || zh_resp_header_get(resp, "Content-Type", &ct))
		return 0;
	if (!frozen(resp))
		return zh_resp_header_set(resp, "Content-Type", type);
	r = header_put(resp, "Content-Type", 12, type, strlen(type), true);
	if (r < 0) {
		/* committed, head not yet out: still a 500 rather than an untyped body */
		ZH__STAT_ADD(resp->ctx->w, header_errors, 1);
		resp->error = true;
	}
	return r;
}

int zh_resp_header_del(zh_response_t *resp, const char *name)
{
	size_t nlen = strlen(name);
	if (frozen(resp))
		return -EALREADY;
	/* library-owned fields are flags, not stored lines */
	if (nlen == 14 && zh__ieq(name, "content-length", 14)) {
		int had = resp->has_length;
		resp->has_length = false;
		return had;
	}
	if (nlen == 10 && zh__ieq(name, "connection", 10)) {
		int had = resp->close;
		resp->close = false;
		return had;
	}
	if (nlen == 6 && zh__ieq(name, "server", 6))
		resp->has_server = false;
	return header_del(resp, name, nlen);
}

int zh_resp_header_get(const zh_response_t *resp, const char *name, zh_slice_t *value)
{
	size_t nlen = strlen(name);
	for (unsigned i = 0; i < resp->nhdr; i++) {
		const zh__hdr_t *hd = &resp->hdr[i];
		if (hd->nlen == nlen && zh__ieq(resp->hstore + hd->noff, name, nlen)) {
			value->ptr = resp->hstore + hd->voff;
			value->len = hd->vlen;
			return 1;
		}
	}
	return 0;
}

/* ---- public: status and commit --------------------------------------------------------------- */

int zh_write_header(zh_response_t *resp, int status)
{
	if (resp->committed || resp->in_hooks) {
		ZH__STAT_ADD(resp->ctx->w, double_commits, 1);
		return -EALREADY;
	}
	if (status < 200 || status > 599)
		return -EINVAL;
	zh__resp_commit(resp, status);
	return 0;
}

int zh_resp_status(const zh_response_t *resp)
{
	return resp->committed || resp->in_hooks ? resp->status : 0;
}
int zh_resp_committed(const zh_response_t *resp) { return resp->committed; }
zh_request_t *zh_resp_request(zh_response_t *resp) { return &resp->ctx->req; }

int zh_resp_on_commit(zh_response_t *resp, zh_commit_fn fn, void *arg)
{
	if (resp->committed || resp->in_hooks)
		return -EALREADY;
	if (resp->nhooks == ZH__HOOKS_MAX)
		return -ENOSPC;
	resp->hooks[resp->nhooks].fn = fn;
	resp->hooks[resp->nhooks].arg = arg;
	resp->hooks[resp->nhooks].slot = resp->ctx->req.mw_cur; /* a middleware's own */
	resp->nhooks++;
	return 0;
}

/* ---- public: body ------------------------------------------------------------------------------ */

/* Common gate for every body source: queues what a pending writer holds (so bytes stay in
 * order), commits an implicit 200 and refuses bodies where the status forbids one (RFC 9110
 * §15.3.5, §15.4.5) or after a sticky error. */
int zh__resp_body_gate(zh_response_t *resp)
{
	zh__writer_sync(resp);
	if (ZH__UNLIKELY(resp->in_hooks))
		return -EINVAL;
	if (!resp->committed)
		zh__resp_commit(resp, resp->implicit_status);
	if (ZH__UNLIKELY(!zh__status_has_body(resp->status)))
		return -EINVAL;
	if (ZH__UNLIKELY(resp->error))
		return -EIO;
	return 0;
}

/* ---- body filters --------------------------------------------------------------------------- */

static int filter_input(zh_response_t *resp, const void *data, size_t len)
{
	int r = len ? resp->filter.write(resp, data, len, resp->filter.arg) : 0;
	resp->filter_in += len; /* progress, even when the filter has emitted nothing yet */
	return r < 0 ? zh__resp_fail(resp, r) : 0;
}

/* A producer's call ended: a filter may push out what it holds (gzip: a sync flush), so
 * that a slow stream's pieces reach the client as they are produced. */
void zh__resp_filter_flush(zh_response_t *resp)
{
	int r;
	if (resp->filtering && resp->filter.flush &&
	    (r = resp->filter.flush(resp, resp->filter.arg)) < 0)
		(void)zh__resp_fail(resp, r);
}

/* The filter's last say on headers before they are serialized: mutable inside the call. */
void zh__resp_filter_head(zh_response_t *resp)
{
	if (!resp->filtering || resp->filter_headed || !resp->filter.head)
		return;
	resp->filter_headed = true;
	resp->in_hooks = true;
	resp->filter.head(resp, resp->filter.arg);
	resp->in_hooks = false;
}

void zh__resp_release_filter(zh_response_t *resp)
{
	if (!resp->filtering)
		return;
	resp->filtering = false;
	if (resp->filter.release)
		resp->filter.release(resp->filter.arg);
}

int zh_resp_set_filter(zh_response_t *resp, const zh_body_filter_t *f)
{
	if (!resp->in_hooks || resp->filtering || resp->file_body)
		return resp->in_hooks ? -EINVAL : -EALREADY;
	if (f == NULL || f->write == NULL)
		return -EINVAL;
	resp->filter = *f;
	resp->filtering = true;
	return 0;
}

int zh_resp_body_is_file(const zh_response_t *resp)
{
	return resp->file_body;
}

int zh_filter_window(zh_response_t *resp, size_t min, char **p, char **end)
{
	return zh__resp_raw_window(resp, min, p, end);
}

void zh_filter_commit(zh_response_t *resp, char *from, char *to)
{
	zh__resp_raw_commit(resp, from, to);
}

/* The writers' window: with a filter, a staging window (the worker's scratch buffer), whose
 * bytes go to the filter on commit; else the send area itself. */
int zh_resp_window(zh_response_t *resp, size_t min, char **p, char **end)
{
	zh__ctx_t *ctx = resp->ctx;
	int r = zh__resp_body_gate(resp); /* first: the commit it may make can install the filter */
	if (r < 0)
		return r;
	if (!resp->filtering)
		return zh__resp_raw_window(resp, min, p, end);
	if (min > sizeof ctx->w->discard)
		return zh__resp_fail(resp, -ENOBUFS);
	*p = ctx->w->discard;
	*end = ctx->w->discard + sizeof ctx->w->discard;
	return 0;
}

void zh_resp_window_commit(zh_response_t *resp, char *from, char *to)
{
	if (resp->filtering)
		(void)filter_input(resp, from, (size_t)(to - from));
	else
		zh__resp_raw_commit(resp, from, to);
}

int zh_write_ref(zh_response_t *resp, const void *data, size_t len, zh_release_fn release,
		 void *arg)
{
	int r = zh__resp_body_gate(resp);
	if (r < 0)
		return r;
	if (resp->filtering) {
		/* consumed by the filter now: nothing refers to data any more. On an error the
		 * caller keeps it (release is never called then). */
		r = filter_input(resp, data, len);
		if (r == 0 && release)
			release(arg);
		return r;
	}
	if (resp->head_only) {
		/* HEAD: counted, never sent; released in queue order like a sent part */
		if (release && zh__resp_push_part(resp, NULL, 0, release, arg) < 0)
			return zh__resp_fail(resp, -ENOBUFS);
	} else if (len || release) {
		if (!zh__resp_length_ok(resp, len))
			return -EMSGSIZE;
		if (zh__resp_push_part(resp, data, len, release, arg) < 0)
			return zh__resp_fail(resp, -ENOBUFS);
	}
	resp->body_len += len;
	return 0;
}

int zh_send_file(zh_response_t *resp, int fd, uint64_t offset, uint64_t length,
		 zh_release_fn release, void *arg)
{
	zh__ctx_t *ctx = resp->ctx;
	int slot, r;
	if (!resp->committed)
		resp->file_body = true; /* commit hooks (gzip) leave a file body alone */
	if ((r = zh__resp_body_gate(resp)) < 0)
		return r;
	if (resp->filtering) {
		/* file bytes never enter user space: a filter that has taken nothing yet (the
		 * commit came just before this call) is dropped; otherwise the body is mixed */
		if (resp->filter_in || resp->filter_headed)
			return zh__resp_fail(resp, -ENOTSUP);
		zh__resp_release_filter(resp);
	}
	if (fd < 0 || length > SIZE_MAX || offset > UINT64_MAX - length)
		return -EINVAL;
	if (resp->head_only || length == 0)
		return zh_write_ref(resp, NULL, length, release, arg);
	if (!zh__resp_length_ok(resp, length))
		return -EMSGSIZE;
	slot = zh__resp_push_part(resp, NULL, (size_t)length, release, arg);
	if (slot < 0)
		return zh__resp_fail(resp, -ENOBUFS);
	if (length >= ZH__BIG_TRANSFER && ctx->conn->loopback && !ctx->conn->sndbuf_big) {
		int sb = ZH__BIG_SNDBUF; /* once per connection; see ZH__BIG_TRANSFER */
		setsockopt(ctx->conn->fd, SOL_SOCKET, SO_SNDBUF, &sb, sizeof sb);
		ctx->conn->sndbuf_big = true;
	}
	ctx->rel[slot].file_fd = fd;
	ctx->rel[slot].file_off = offset;
	resp->body_len += length;
	return 0;
}

bool zh__resp_pipe_ok(const zh_response_t *resp)
{
	/* only a socket splices (not TLS, not an HTTP/2 stream); a filter must see the bytes;
	 * HEAD sends none */
	return zh__tr(resp->ctx->conn)->pipe_entries && !resp->filtering && !resp->head_only;
}

int zh__resp_write_pipe(zh_response_t *resp, int pipefd, size_t len, zh_release_fn release,
			void *arg)
{
	zh__ctx_t *ctx = resp->ctx;
	int slot, r;
	if (!zh__resp_pipe_ok(resp) || pipefd < 0 || len == 0)
		return -EINVAL;
	if (!resp->committed)
		resp->file_body = true; /* as a file: commit hooks (gzip) leave it alone */
	if ((r = zh__resp_body_gate(resp)) < 0)
		return r;
	if (resp->filtering)
		return -EINVAL;
	if (!zh__resp_length_ok(resp, len))
		return -EMSGSIZE;
	slot = zh__resp_push_part(resp, NULL, len, release, arg);
	if (slot < 0)
		return zh__resp_fail(resp, -ENOBUFS);
	ctx->rel[slot].file_fd = pipefd;
	ctx->rel[slot].file_off = ZH__PIPE_OFF;
	resp->body_len += len;
	return 0;
}

int zh_write_static(zh_response_t *resp, const void *data, size_t len)
{
	return zh_write_ref(resp, data, len, NULL, NULL);
}

/* Copies data into the send area as body bytes. count: the caller's body bytes (counted in
 * body_bytes_copied), or bytes a serializer generates (multipart framing, protobuf). */
static int write_copy(zh_response_t *resp, const void *data, size_t len, bool count)
{
	const char *src = data;
	int r = zh__resp_body_gate(resp);
	if (r < 0)
		return r;
	if (resp->filtering)
		return filter_input(resp, data, len); /* the filter reads it: no copy here */
	if (resp->head_only) {
		resp->body_len += len;
		return 0;
	}
	while (len) {
		char *p, *end;
		size_t n;
		if ((r = zh_resp_window(resp, 1, &p, &end)) < 0)
			return r;
		n = (size_t)(end - p) < len ? (size_t)(end - p) : len;
		memcpy(p, src, n);
		zh_resp_window_commit(resp, p, p + n);
		if (resp->error)
			return -ENOBUFS;
		if (count)
			ZH__STAT_ADD(resp->ctx->w, body_bytes_copied, n);
		src += n;
		len -= n;
	}
	return 0;
}

int zh_write(zh_response_t *resp, const void *data, size_t len)
{
	return write_copy(resp, data, len, true);
}

int zh__write_encoded(zh_response_t *resp, const void *data, size_t len)
{
	return write_copy(resp, data, len, false);
}

uint64_t zh__resp_progress(const zh_response_t *resp)
{
	return zh_resp_body_len(resp) + resp->filter_in;
}

uint64_t zh_resp_body_len(const zh_response_t *resp)
{
	const zh_writer_ops_t *w = resp->writer;
	return resp->body_len + (w && w->held ? w->held(resp, resp->writer_state) : 0);
}

void *zh_resp_state(zh_response_t *resp)
{
	return resp->ctx->state;
}

/* ---- public: the extension interface (pending writer, slots, header walk) ----------------- */

void *zh_resp_writer_begin(zh_response_t *resp, const zh_writer_ops_t *ops)
{
	/* an error handler's response is live even when no request was parsed */
	if (ops == NULL || ops->sync == NULL || resp->writer != NULL ||
	    !(resp->ctx->in_request || resp->ctx->in_error_handler))
		return NULL;
	resp->writer = ops;
	resp->writer_state = resp->ctx->writer_area;
	return memset(resp->writer_state, 0, ZH_WRITER_STATE_SIZE);
}

void *zh_resp_writer(zh_response_t *resp, const zh_writer_ops_t *ops)
{
	return resp->writer == ops && ops != NULL ? resp->writer_state : NULL;
}

void **zh_mw_slot(zh_request_t *req)
{
	return req->mw_cur == ZH__MW_NONE ? NULL : &req->mw_slot[req->mw_cur];
}

void zh_req_set_user(zh_request_t *req, void *user) { req->user = user; }
void *zh_req_user(const zh_request_t *req) { return req->user; }

int zh_resp_header_at(const zh_response_t *resp, unsigned i, zh_slice_t *name,
		      zh_slice_t *value)
{
	const zh__hdr_t *hd;
	if (i >= resp->nhdr)
		return 0;
	hd = &resp->hdr[i];
	name->ptr = resp->hstore + hd->noff;
	name->len = hd->nlen;
	value->ptr = resp->hstore + hd->voff;
	value->len = hd->vlen;
	return 1;
}

int zh_resp_content_length(const zh_response_t *resp, uint64_t *len)
{
	if (!resp->has_length)
		return 0;
	*len = resp->declared_len;
	return 1;
}

int zh_resp_produce(zh_response_t *resp, zh_produce_fn fn, void *arg)
{
	zh__ctx_t *ctx = resp->ctx;
	if (ctx->in_error_handler) /* it answers now: nothing may keep it open */
		return -EINVAL;
	if (fn == NULL || ctx->produce_fn || ctx->deferred || ctx->resume_fn || !ctx->in_request)
		return -EINVAL;
	ctx->produce_fn = fn;
	ctx->produce_arg = arg;
	return 0;
}

int zh_resp_defer(zh_response_t *resp, zh_deferred_t *token)
{
	zh__ctx_t *ctx = resp->ctx;
	zh__conn_t *c = ctx->conn;
	if (ctx->in_error_handler) /* it answers now: nothing may keep it open */
		return -EINVAL;
	if (token == NULL || ctx->produce_fn || ctx->deferred || ctx->resume_fn || !ctx->in_request)
		return -EINVAL;
	ctx->deferred = true;
	token->worker = ctx->w;
	token->conn = c;
	token->gen = ++c->defer_gen;
	return 0;
}

void zh__resp_park(zh_response_t *resp, zh_deferred_t *token)
{
	zh__ctx_t *ctx = resp->ctx;
	ctx->parked = true;
	token->worker = ctx->w;
	token->conn = ctx->conn;
	token->gen = ++ctx->conn->defer_gen;
}

int zh_reply(zh_response_t *resp, int status, const char *content_type, const void *body,
	     size_t len)
{
	int r;
	if (status < 200 || status > 599)
		return -EINVAL;
	if (resp->committed || resp->in_hooks)
		return zh_write_header(resp, status); /* refused, and counted */
	if (content_type && (r = zh_resp_header_set(resp, "Content-Type", content_type)) < 0)
		return r;
	if ((r = zh_write_header(resp, status)) < 0)
		return r;
	return len ? zh_write(resp, body, len) : 0;
}
