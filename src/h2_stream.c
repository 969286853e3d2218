/* h2_stream.c — one HTTP/2 stream as an exchange: the protocol (zh__proto_t) and transport
 * (zh__transport_t) of the connection slot each stream holds (c->virt), so that conn.c's
 * driver, response.c and body.c serve it exactly as they serve an HTTP/1.1 request.
 *
 * Request: nghttp2's decoded fields are written into the stream's receive buffer (names,
 * then values; spans as parse.c would make them) and `request` hands the head over once.
 * Its body arrives as DATA and is placed where HTTP/1's reader would have read it (body.c's
 * zh__body_read_target): a body with content-length as it is, one without as chunked
 * coding (a size line per DATA frame, decoded in place by body.c), so the bounded reads of
 * buffered and streaming routes are body.c's own. Flow control follows consumption: a
 * buffered route's bytes open the window at once (max_body bounds them), a streaming
 * route's only as its handler reads them (zh_body_read), so a slow handler is never sent
 * more than its buffer holds.
 *
 * Response: `head_whole`/`head_stream` submit the fields (HPACK is nghttp2's) with a data
 * provider whose read callback announces the stream's queued bytes within the window
 * (NGHTTP2_DATA_FLAG_NO_COPY); h2.c places them as references. The transport's send never
 * takes bytes itself (-EAGAIN): the connection consumes the queue as the socket takes it,
 * and drives the exchange again, so producers pause while the window is shut.
 */
#include "h2_int.h"

#include <errno.h>
#include <string.h>

static zh__h2s_t *stream_of(const zh__conn_t *c)
{
	zh__h2w_t *x = zh__h2w_here();
	return x ? x->slots[zh__h2_slot(x->w, c)] : NULL;
}

static void unlink_stream(zh__h2s_t *s)
{
	zh__h2c_t *h = s->h;
	if (s->prev)
		s->prev->next = s->next;
	else
		h->streams = s->next;
	if (s->next)
		s->next->prev = s->prev;
}

zh__h2s_t *zh__h2s_open(zh__h2c_t *h, int32_t id)
{
	zh__h2w_t *x = h->w->h2;
	zh__h2s_t *s = zh__h2mem_alloc(&x->mem, sizeof *s);
	zh__ctx_t *ctx;
	if (s == NULL)
		return NULL;
	memset(s, 0, sizeof *s);
	s->h = h;
	s->id = id;
	s->sc = zh__conn_virtual_open(h->w, h->c, h->cfg->tr_stream, h->cfg->proto_stream);
	if (s->sc == NULL) {
		zh__h2mem_free(&x->mem, s);
		return NULL;
	}
	x->slots[zh__h2_slot(h->w, s->sc)] = s;
	ctx = s->sc->ctx;
	memset(&ctx->req.h, 0, sizeof ctx->req.h);
	s->next = h->streams;
	if (h->streams)
		h->streams->prev = s;
	h->streams = s;
	h->nstreams++;
	ZH__STAT_ADD(h->w, h2_streams, 1);
	return s;
}

void zh__h2s_maybe_free(zh__h2s_t *s)
{
	if (s->sc || !s->closed || s->on_ready || s->busy || s->inflight)
		return;
	zh__h2s_drop_trailers(s);
	unlink_stream(s);
	zh__h2mem_free(&((zh__h2w_t *)s->h->w->h2)->mem, s);
}

/* ---- the request head --------------------------------------------------------------------- */

static unsigned method_bit(const uint8_t *m, size_t n)
{
	static const char *const names[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS",
					    "PATCH", "TRACE"};
	for (unsigned i = 0; i < 8; i++)
		if (strlen(names[i]) == n && memcmp(names[i], m, n) == 0)
			return 1u << i;
	return 0;
}

static bool name_is(const uint8_t *name, size_t nlen, const char *lit)
{
	return strlen(lit) == nlen && memcmp(name, lit, nlen) == 0; /* HTTP/2 names are lowercase */
}

static zh__span_t put(zh__ctx_t *ctx, zh__h2s_t *s, const uint8_t *p, size_t n)
{
	zh__span_t sp = {s->fill, (uint32_t)n};
	memcpy(ctx->rbuf + s->fill, p, n);
	s->fill += (uint32_t)n;
	return sp;
}

/* One decoded field of the request's header block. -1 when the list outgrows the limit. */
int zh__h2s_header(zh__h2s_t *s, const uint8_t *name, size_t nlen, const uint8_t *value,
		   size_t vlen)
{
	zh__ctx_t *ctx = s->sc->ctx;
	zh__head_t *h = &ctx->req.h;
	const zh__limits_t *lim = &ctx->w->srv->limits;
	if (s->fill + nlen + vlen > s->h->cfg->cfg.max_header_list)
		return -1;
	if (nlen && name[0] == ':') {
		/* pseudo-headers: nghttp2 has checked them (RFC 9113 §8.3.1) */
		if (name_is(name, nlen, ":method")) {
			h->method = put(ctx, s, value, vlen);
			h->method_bit = method_bit(value, vlen);
		} else if (name_is(name, nlen, ":path")) {
			const uint8_t *q = memchr(value, '?', vlen);
			h->target = put(ctx, s, value, vlen);
			h->path = h->target;
			if (q) {
				h->path.len = (uint32_t)(q - value);
				h->query.off = h->target.off + h->path.len + 1;
				h->query.len = (uint32_t)(vlen - h->path.len - 1);
			}
			if (vlen == 1 && value[0] == '*')
				h->flags |= ZH__H_ASTERISK;
		} else if (name_is(name, nlen, ":authority")) {
			h->host = put(ctx, s, value, vlen);
			h->flags |= ZH__H_HOST;
		}
		return 0;
	}
	if (h->nfields == lim->max_headers)
		return -1;
	ctx->fields[h->nfields].name = put(ctx, s, name, nlen);
	ctx->fields[h->nfields].value = put(ctx, s, value, vlen);
	h->nfields++;
	if (name_is(name, nlen, "host") && !(h->flags & ZH__H_HOST)) {
		h->host = ctx->fields[h->nfields - 1].value;
		h->flags |= ZH__H_HOST;
	} else if (name_is(name, nlen, "content-length")) {
		uint64_t v = 0;
		for (size_t i = 0; i < vlen && value[i] >= '0' && value[i] <= '9'; i++)
			v = v * 10 + (uint64_t)(value[i] - '0'); /* nghttp2 validated it */
		h->content_length = v;
		s->cl = true;
	} else if (name_is(name, nlen, "expect") && vlen == 12 &&
		   strncasecmp((const char *)value, "100-continue", 12) == 0) {
		h->flags |= ZH__H_EXPECT_CONTINUE;
	}
	return 0;
}

/* The header block ended: the request is ready for conn.c (`request` hands it over). */
int zh__h2s_head_end(zh__h2s_t *s, bool end_stream)
{
	zh__ctx_t *ctx = s->sc->ctx;
	zh__head_t *h = &ctx->req.h;
	h->minor = 1;
	h->head_len = s->fill;
	ctx->rstart = 0;
	ctx->rlen = s->fill;
	if (end_stream) {
		h->content_length = 0;
		s->no_body = true;
	} else if (s->cl) {
		h->flags |= ZH__H_CL;
	} else {
		h->flags |= ZH__H_CHUNKED; /* the end of the stream ends it: see the header */
	}
	s->head_done = true;
	zh__h2_ready(s);
	return 0;
}

static int request(zh__ctx_t *ctx, const zh__limits_t *lim)
{
	zh__h2s_t *s = stream_of(ctx->conn);
	(void)lim;
	if (s == NULL || !s->head_done || s->delivered)
		return 0;
	s->delivered = true;
	return (int)ctx->req.h.head_len;
}

/* ---- the request body --------------------------------------------------------------------- */

static bool streaming_route(const zh__ctx_t *ctx)
{
	return ctx->in_request && ctx->req.stream;
}

/* Bytes [from, to) of a string, as many as fit in *cap at *dst. */
static size_t put_part(char **dst, size_t *cap, const char *src, size_t from, size_t to)
{
	size_t n = to - from < *cap ? to - from : *cap;
	memcpy(*dst, src + from, n);
	*dst += n;
	*cap -= n;
	return n;
}

/* The body of a request without content-length goes to body.c as chunked coding, one chunk
 * per DATA frame ("hex CRLF data CRLF"), written as a byte stream that may stop anywhere:
 * body.c decodes it incrementally and moves a decoded body out of the receive buffer only
 * once the buffer is full, so every byte of room is used. s->chunk_* keep the place. */
static size_t put_chunked(zh__h2s_t *s, char *dst, size_t *capp, const uint8_t *data,
			  size_t len)
{
	size_t cap = *capp;
	char hdr[20];
	size_t hl = (size_t)(zh__append_hex(hdr, s->chunk_size) - hdr), taken = 0;
	hdr[hl++] = '\r';
	hdr[hl++] = '\n';
	if (s->chunk_phase == 1)
		s->chunk_off += (uint32_t)put_part(&dst, &cap, hdr, s->chunk_off, hl);
	if (s->chunk_phase == 1 && s->chunk_off == hl)
		s->chunk_phase = 2;
	if (s->chunk_phase == 2) {
		taken = put_part(&dst, &cap, (const char *)data, 0, len);
		if (taken == len) {
			s->chunk_phase = 3;
			s->chunk_off = 0;
		}
	}
	if (s->chunk_phase == 3)
		s->chunk_off += (uint32_t)put_part(&dst, &cap, "\r\n", s->chunk_off, 2);
	if (s->chunk_phase == 3 && s->chunk_off == 2)
		s->chunk_phase = 0;
	*capp = cap;
	return taken;
}

/* A DATA frame's payload, copied where HTTP/1's reader would have read it: as much as fits
 * (*taken); NGHTTP2_ERR_PAUSE when not all of it did. A client may send 65,535 bytes
 * before it has our SETTINGS (RFC 9113 §6.9.2), more than a receive buffer holds: input
 * then pauses, the exchange runs (its head routed, the body moved to a body buffer or read
 * by the handler), and the rest is delivered again (h2.c), len 0 when only a chunk's
 * framing was left over. */
int zh__h2s_data(zh__h2s_t *s, const uint8_t *data, size_t len, size_t *taken)
{
	zh__ctx_t *ctx = s->sc->ctx;
	zh_request_t *req = &ctx->req;
	bool chunked = (req->h.flags & ZH__H_CHUNKED) != 0;
	char *dst;
	size_t cap, n;
	bool to_body;
	*taken = 0;
	if (len == 0 && s->chunk_phase == 0)
		return 0;
	/* a streaming route that has read everything buffered: the space is free again */
	if (streaming_route(ctx) && req->raw_pos == ctx->rlen &&
	    ctx->rlen > ctx->rstart + req->h.head_len)
		ctx->rlen = req->raw_pos = ctx->rstart + req->h.head_len;
	to_body = zh__body_read_target(ctx, &dst, &cap);
	if (chunked) {
		size_t left = cap;
		if (s->chunk_phase == 0) {
			s->chunk_size = len;
			s->chunk_phase = 1;
			s->chunk_off = 0;
		}
		n = put_chunked(s, dst, &left, data, len);
		ctx->rlen += (uint32_t)(cap - left); /* chunked bodies are read in rbuf */
	} else {
		n = len < cap ? len : cap;
		memcpy(dst, data, n);
		if (to_body)
			req->body_len += n;
		else
			ctx->rlen += (uint32_t)n;
	}
	*taken = n;
	ZH__STAT_ADD(ctx->w, body_bytes_copied, n); /* out of the frame, into the stream */
	/* a streaming route's window opens as its handler reads (body_read below) */
	if (n && !streaming_route(ctx))
		(void)nghttp2_session_consume(s->h->s, s->id, n); /* bounded by max_body */
	zh__h2_ready(s);
	return n < len || s->chunk_phase != 0 ? NGHTTP2_ERR_PAUSE : 0;
}

/* The end of a chunked body: the last chunk, once there is room for it. */
bool zh__h2s_term(zh__h2s_t *s)
{
	zh__ctx_t *ctx = s->sc->ctx;
	char *dst;
	size_t cap;
	(void)zh__body_read_target(ctx, &dst, &cap);
	if (s->chunk_phase != 0 || cap < 5)
		return false;
	memcpy(dst, "0\r\n\r\n", 5);
	ctx->rlen += 5;
	s->term_pending = false;
	return true;
}

int zh__h2s_data_end(zh__h2s_t *s)
{
	if (s->sc == NULL || s->no_body)
		return 0;
	s->no_body = true;
	if (s->sc->ctx->req.h.flags & ZH__H_CHUNKED)
		s->term_pending = !zh__h2s_term(s); /* else after the exchange made room (h2.c) */
	zh__h2_ready(s);
	return 0;
}

static ssize_t body_read(zh_request_t *req, char *buf, size_t cap)
{
	zh__h2s_t *s = stream_of(req->ctx->conn);
	uint64_t before = req->body_off;
	ssize_t r = zh__h1_body_read(req, buf, cap);
	if (s && req->body_off > before)
		(void)nghttp2_session_consume(s->h->s, s->id, req->body_off - before);
	if (s && req->body_off > before)
		zh__h2_kick(s->h); /* the WINDOW_UPDATE leaves */
	return r;
}

/* ---- the response ------------------------------------------------------------------------- */

static bool connection_specific(const char *n, size_t len)
{
	/* RFC 9113 §8.2.2: never sent in HTTP/2 */
	static const char *const names[] = {"connection", "keep-alive", "proxy-connection",
					    "transfer-encoding", "upgrade"};
	for (unsigned i = 0; i < 5; i++)
		if (strlen(names[i]) == len && strncasecmp(names[i], n, len) == 0)
			return true;
	return false;
}

static nghttp2_nv nv_of(const char *n, size_t nl, const char *v, size_t vl)
{
	nghttp2_nv nv = {(uint8_t *)(uintptr_t)n, (uint8_t *)(uintptr_t)v, nl, vl,
			 NGHTTP2_NV_FLAG_NONE};
	return nv;
}

static char *u64(char *p, uint64_t v)
{
	char tmp[20];
	int n = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		*p++ = tmp[--n];
	return p;
}

/* Submits the response's HEADERS (nghttp2 copies the fields and HPACK-encodes them when the
 * frame is serialized); with a body, the data provider reads the stream's queue. */
static int submit(zh__h2s_t *s, zh_response_t *resp, bool has_len, uint64_t len, bool body)
{
	zh__worker_t *w = resp->ctx->w;
	nghttp2_nv nv[ZH__RESP_HEADERS + 4];
	char lower[ZH__RESP_HSTORE], status[4], clen[24];
	size_t n = 0, used = 0;
	const char *date = w->common_hdr + w->common_len - w->date_len;
	nghttp2_data_provider dp = {.source.ptr = s, .read_callback = zh__h2_read_cb};
	u64(status, (uint64_t)resp->status)[0] = '\0';
	nv[n++] = nv_of(":status", 7, status, 3);
	if (!resp->has_server) /* "Server: name\r\n" leads the worker's common lines */
		nv[n++] = nv_of("server", 6, w->common_hdr + 8, w->common_len - w->date_len - 10);
	nv[n++] = nv_of("date", 4, date + 6, w->date_len - 8);
	for (unsigned i = 0; i < resp->nhdr; i++) {
		const zh__hdr_t *f = &resp->hdr[i];
		const char *name = resp->hstore + f->noff;
		if (connection_specific(name, f->nlen) || n == sizeof nv / sizeof nv[0] - 1)
			continue;
		for (unsigned k = 0; k < f->nlen; k++) {
			char ch = name[k];
			lower[used + k] = ch >= 'A' && ch <= 'Z' ? (char)(ch + 32) : ch;
		}
		nv[n++] = nv_of(lower + used, f->nlen, resp->hstore + f->voff, f->vlen);
		used += f->nlen;
	}
	if (has_len && zh__status_has_body(resp->status))
		nv[n++] = nv_of("content-length", 14, clen, (size_t)(u64(clen, len) - clen));
	resp->close = true; /* the stream ends with this exchange; the connection does not */
	s->submitted = true;
	if (nghttp2_submit_response(s->h->s, s->id, nv, n, body ? &dp : NULL) != 0)
		return -ENOMEM;
	zh__h2_kick(s->h);
	return 0;
}

/* The response's trailer fields are kept by the stream (a copy from the worker's pool: the
 * exchange may end first) and submitted by the data provider when it ends the body
 * (nghttp2 sends HEADERS queued earlier ahead of DATA). */
static void keep_trailers(zh__h2s_t *s, zh_response_t *resp)
{
	if (resp->ntr == 0 || resp->head_only || s->trailers)
		return;
	s->tr_buf = zh__h2mem_alloc(&((zh__h2w_t *)s->h->w->h2)->mem, resp->tused);
	if (s->tr_buf == NULL)
		return; /* no memory: the body ends without them */
	memcpy(s->tr_buf, resp->tstore, resp->tused);
	s->tr_len = resp->tused;
	s->trailers = true;
}

/* At the body's end: the kept lines as HEADERS (names in lowercase), then freed. */
static void submit_trailers(zh__h2s_t *s)
{
	nghttp2_nv nv[32];
	size_t n = 0;
	char *p = s->tr_buf, *end = s->tr_buf + s->tr_len;
	while (p < end && n < sizeof nv / sizeof nv[0]) {
		char *colon = memchr(p, ':', (size_t)(end - p));
		char *eol = memchr(p, '\r', (size_t)(end - p));
		for (char *q = p; q < colon; q++)
			*q = *q >= 'A' && *q <= 'Z' ? (char)(*q + 32) : *q;
		nv[n++] = nv_of(p, (size_t)(colon - p), colon + 2, (size_t)(eol - colon - 2));
		p = eol + 2;
	}
	(void)nghttp2_submit_trailer(s->h->s, s->id, nv, n); /* copied by nghttp2 */
	zh__h2s_drop_trailers(s);
}

void zh__h2s_drop_trailers(zh__h2s_t *s)
{
	if (s->tr_buf)
		zh__h2mem_free(&((zh__h2w_t *)s->h->w->h2)->mem, s->tr_buf);
	s->tr_buf = NULL;
}

/* EOF for the data provider: END_STREAM, or the trailers after it */
static void body_eof(zh__h2s_t *s, uint32_t *flags)
{
	*flags |= NGHTTP2_DATA_FLAG_EOF;
	s->eof_framed = true;
	if (s->tr_buf) {
		*flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
		submit_trailers(s);
	}
}

static bool head_whole(zh_response_t *resp)
{
	zh__h2s_t *s = stream_of(resp->ctx->conn);
	bool body = !resp->head_only && zh__status_has_body(resp->status) &&
		    (resp->body_len > 0 || resp->ntr);
	uint64_t len = resp->head_only && resp->has_length ? resp->declared_len : resp->body_len;
	if (s == NULL)
		return false;
	resp->framing = ZH__F_LENGTH;
	s->body_done = true;
	if (body)
		keep_trailers(s, resp);
	return submit(s, resp, true, len, body) == 0;
}

static int head_stream(zh_response_t *resp)
{
	zh__h2s_t *s = stream_of(resp->ctx->conn);
	bool body = !resp->head_only && zh__status_has_body(resp->status);
	if (s == NULL)
		return -ENOBUFS;
	resp->framing = resp->has_length ? ZH__F_LENGTH : ZH__F_NONE;
	if (!body)
		s->body_done = true;
	return submit(s, resp, resp->has_length, resp->declared_len, body) == 0 ? 0 : -ENOBUFS;
}

static void resume(zh__h2s_t *s)
{
	if (s->h->dead || s->h->broken)
		return;
	if (s->submitted && !s->closed)
		(void)nghttp2_session_resume_data(s->h->s, s->id); /* -EINVAL: not deferred */
	zh__h2_kick(s->h);
}

static void boundary(zh_response_t *resp)
{
	zh__h2s_t *s = stream_of(resp->ctx->conn);
	if (s)
		resume(s); /* DATA frames are cut from the queue as the window allows */
}

static void rebase(zh_response_t *resp)
{
	int r = zh__out_push(resp->ctx, NULL, 0, NULL, NULL);
	if (r < 0)
		resp->error = true;
	else
		resp->head_slot = (uint16_t)r; /* nothing coalesces into memory already sent */
}

static bool body_end(zh_response_t *resp)
{
	zh__h2s_t *s = stream_of(resp->ctx->conn);
	bool broken = resp->error ||
		      (resp->has_length && !resp->head_only && resp->body_len != resp->declared_len);
	if (s == NULL)
		return true;
	if (!broken) {
		if (!resp->head_only && zh__status_has_body(resp->status))
			keep_trailers(s, resp);
		s->body_done = true; /* END_STREAM after what is queued (or the trailers) */
		resume(s);
	}
	return broken;
}

static uint16_t send_end(const zh__ctx_t *ctx, uint16_t end)
{
	(void)ctx;
	return end; /* the window is the data provider's to apply */
}

static void interim_100(zh__ctx_t *ctx)
{
	zh__h2s_t *s = stream_of(ctx->conn);
	nghttp2_nv nv = nv_of(":status", 7, "100", 3);
	if (s == NULL || !(ctx->req.h.flags & ZH__H_EXPECT_CONTINUE))
		return;
	/* RFC 9113 §8.1: an interim response is a HEADERS frame of its own; if it cannot be
	 * queued the client sends the body after its own wait (RFC 9110 §10.1.1) */
	if (nghttp2_submit_headers(s->h->s, NGHTTP2_FLAG_NONE, s->id, NULL, &nv, 1, NULL) == 0)
		zh__h2_kick(s->h);
}

/* ---- the data provider -------------------------------------------------------------------- */

ssize_t zh__h2s_read(zh__h2s_t *s, uint8_t *buf, size_t length, uint32_t *flags)
{
	uint64_t queued = 0, avail;
	zh__ctx_t *ctx;
	(void)buf;
	if (s->sc == NULL) {
		if (!s->body_done)
			return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* RST_STREAM */
		body_eof(s, flags);
		return 0;
	}
	ctx = s->sc->ctx;
	for (uint16_t i = ctx->iov_head; i < ctx->iov_n; i++)
		queued += ctx->iov[i].iov_len;
	avail = queued - s->inflight - s->promised;
	if (avail == 0 && !s->body_done)
		return NGHTTP2_ERR_DEFERRED; /* resumed by the next boundary or the body's end */
	if (avail > length)
		avail = length;
	else if (s->body_done) {
		body_eof(s, flags);
	}
	*flags |= NGHTTP2_DATA_FLAG_NO_COPY;
	s->promised += avail;
	return (ssize_t)avail;
}

int zh__h2s_send_data(zh__h2s_t *s, const uint8_t *framehd, size_t length)
{
	(void)framehd;
	s->promised -= length;
	if (length == 0)
		return 0;
	if (s->sc == NULL || zh__h2_out_refs(s->h, s, s->inflight, length) < 0)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	return 0;
}

/* ---- the stream's transport ----------------------------------------------------------------- */

static ssize_t t_recv(zh__conn_t *c, void *buf, size_t cap)
{
	(void)buf;
	(void)cap;
	c->readable = false; /* body bytes are delivered by the connection (zh__h2s_data) */
	return -EAGAIN;
}

static ssize_t t_peek(zh__conn_t *c, void *buf, size_t cap)
{
	(void)c;
	(void)buf;
	(void)cap;
	return -EAGAIN;
}

/* The queue is the connection's to send: announce it, take nothing now. */
static ssize_t t_send(zh__conn_t *c, const struct iovec *iov, int cnt, bool more)
{
	zh__h2s_t *s = stream_of(c);
	size_t total = 0;
	(void)more;
	if (s == NULL || s->reset)
		return -EPIPE;
	for (int i = 0; i < cnt; i++)
		total += iov[i].iov_len;
	if (total == 0 && cnt > 0)
		return 0; /* anchors only: taken, so the queue drains and a producer runs */
	resume(s);
	return -EAGAIN;
}

static ssize_t t_send_file(zh__conn_t *c, int fd, uint64_t *off, size_t len)
{
	(void)fd;
	(void)off;
	(void)len;
	return t_send(c, NULL, 0, false);
}

static int t_shutdown(zh__conn_t *c)
{
	(void)c;
	return -EPIPE; /* the exchange is over: close its slot now (no lingering) */
}

/* The exchange's slot closes: the stream goes on without it only to send END_STREAM. */
static void t_close(zh__conn_t *c)
{
	zh__h2w_t *x = zh__h2w_here();
	zh__h2s_t *s = stream_of(c);
	zh__h2c_t *h;
	if (s == NULL)
		return;
	h = s->h;
	x->slots[zh__h2_slot(x->w, c)] = NULL;
	s->sc = NULL;
	h->nstreams--;
	if (h->broken || h->dead) {
		/* the connection is going: nothing more is sent */
	} else if (s->inflight) {
		/* frames in the output still reference the context just released */
		h->broken = true;
		zh__h2_kick(h);
	} else if (!s->closed && !s->body_done) {
		/* cut before its end: a reader that never opened its window gets GOAWAY */
		if (s->submitted && nghttp2_session_get_stream_remote_window_size(h->s, s->id) <= 0) {
			if (!h->goaway) /* counted once per connection */
				ZH__STAT_ADD(h->w, h2_zero_window, 1);
			zh__h2_terminate(h, NGHTTP2_ENHANCE_YOUR_CALM);
		} else {
			(void)nghttp2_submit_rst_stream(h->s, NGHTTP2_FLAG_NONE, s->id,
							NGHTTP2_INTERNAL_ERROR);
		}
		zh__h2_kick(h);
	} else if (!s->closed) {
		resume(s); /* END_STREAM still to be framed */
	}
	zh__h2s_maybe_free(s);
}

/* A handler's write waits for the socket (zh__resp_spill_wait): let the connection move
 * bytes now, and wait for what it still needs. */
static unsigned t_wants(zh__conn_t *c, unsigned blocked)
{
	zh__h2s_t *s = stream_of(c);
	(void)blocked;
	if (s == NULL || zh__h2_io(s->h) < 0)
		return ZH__WANT_WRITE;
	return s->h->blocked ? ZH__WANT_WRITE : ZH__WANT_READ;
}

/* What the connection's transport negotiated (TLS version and cipher for
 * zh_req_tls_version/_cipher): the session's socket answers for its streams. */
static const char *t_info(zh__conn_t *c, int what)
{
	zh__h2s_t *s = stream_of(c);
	zh__conn_t *sock = s ? s->h->c : NULL;
	if (sock == NULL || sock->tr == 0 || zh__tr(sock)->info == NULL)
		return NULL;
	return zh__tr(sock)->info(sock, what);
}

const zh__transport_t zh__h2_stream_transport = {
	.name = "h2-stream",
	.recv = t_recv,
	.peek = t_peek,
	.send = t_send,
	.send_file = t_send_file,
	.shutdown = t_shutdown,
	.close = t_close,
	.wants = t_wants,
	.info = t_info,
};

const zh__proto_t zh__h2_stream_proto = {
	.name = "h2",
	.request = request,
	.interim_100 = interim_100,
	.head_whole = head_whole,
	.head_stream = head_stream,
	.boundary = boundary,
	.rebase = rebase,
	.body_end = body_end,
	.send_end = send_end,
	.body_start = zh__h1_body_start,
	.body_feed = zh__h1_body_feed,
	.body_read = body_read,
};
