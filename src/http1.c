/* http1.c — HTTP/1.1 behind the protocol seam (zh__proto_t in internal.h; see "Seams" in
 * docs/design.md): status lines, head serialization, the framing of response bodies
 * (Content-Length, chunked, or the end of the connection for HTTP/1.0), and the keep-alive
 * and close rules. parse.c is its parser and body.c its request-body decoder.
 *
 * The exchange layer (response.c) decides what the response is; this file decides how it
 * looks on the wire. Everything is written into the connection's output queue and send
 * area (response.c's zh__out_* calls), owned by the I/O context as described there. HTTP/1
 * is the default protocol and is called directly, not through zh__protos[].
 */
#include "internal.h"

#include <errno.h>
#include <string.h>

/* ---- status lines -------------------------------------------------------------------------- */

/* Every status the library has a reason phrase for (RFC 9110 §15), as X(code, text): the
 * status lines below and zh_status_reason() are made from this one list. */
#define STATUSES(X)                                                                             \
	X(100, "Continue")                                                                      \
	X(101, "Switching Protocols")                                                           \
	X(200, "OK")                                                                            \
	X(201, "Created")                                                                       \
	X(202, "Accepted")                                                                      \
	X(203, "Non-Authoritative Information")                                                 \
	X(204, "No Content")                                                                    \
	X(205, "Reset Content")                                                                 \
	X(206, "Partial Content")                                                               \
	X(300, "Multiple Choices")                                                              \
	X(301, "Moved Permanently")                                                             \
	X(302, "Found")                                                                         \
	X(303, "See Other")                                                                     \
	X(304, "Not Modified")                                                                  \
	X(307, "Temporary Redirect")                                                            \
	X(308, "Permanent Redirect")                                                            \
	X(400, "Bad Request")                                                                   \
	X(401, "Unauthorized")                                                                  \
	X(403, "Forbidden")                                                                     \
	X(404, "Not Found")                                                                     \
	X(405, "Method Not Allowed")                                                            \
	X(406, "Not Acceptable")                                                                \
	X(408, "Request Timeout")                                                               \
	X(409, "Conflict")                                                                      \
	X(410, "Gone")                                                                          \
	X(411, "Length Required")                                                               \
	X(412, "Precondition Failed")                                                           \
	X(413, "Content Too Large")                                                             \
	X(414, "URI Too Long")                                                                  \
	X(415, "Unsupported Media Type")                                                        \
	X(416, "Range Not Satisfiable")                                                         \
	X(417, "Expectation Failed")                                                            \
	X(422, "Unprocessable Content")                                                         \
	X(426, "Upgrade Required")                                                              \
	X(428, "Precondition Required")                                                         \
	X(429, "Too Many Requests")                                                             \
	X(431, "Request Header Fields Too Large")                                               \
	X(500, "Internal Server Error")                                                         \
	X(501, "Not Implemented")                                                               \
	X(502, "Bad Gateway")                                                                   \
	X(503, "Service Unavailable")                                                           \
	X(504, "Gateway Timeout")                                                               \
	X(505, "HTTP Version Not Supported")

/* Status lines are preformatted ("HTTP/1.1 200 OK\r\n"): one memcpy per response. We always
 * answer HTTP/1.1, also to 1.0 clients (RFC 9110 §2.5: the server's highest version). */
static const char *status_line(int status, size_t *len)
{
#define LINE(code, text)                                                                        \
	case code:                                                                             \
		*len = sizeof("HTTP/1.1 " #code " " text "\r\n") - 1;                          \
		return "HTTP/1.1 " #code " " text "\r\n";
	switch (status) {
		STATUSES(LINE)
	default:
		return NULL;
	}
#undef LINE
}

/* NUL-terminated, for applications; zh__status_reason below serves the library's writers */
const char *zh_status_reason(int status)
{
#define REASON(code, text)                                                                      \
	case code:                                                                             \
		return text;
	switch (status) {
		STATUSES(REASON)
	default:
		return "";
	}
#undef REASON
}

const char *zh__status_reason(int status, size_t *len)
{
	size_t n;
	const char *line = status_line(status, &n);
	if (line == NULL) {
		*len = 0;
		return "";
	}
	*len = n - 15; /* "HTTP/1.1 NNN " before, CRLF after */
	return line + 13;
}

static char *append(char *p, const void *s, size_t n)
{
	memcpy(p, s, n);
	return p + n;
}

static char *append_u64(char *p, uint64_t v)
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

static bool keep_alive(const zh__ctx_t *ctx)
{
	const zh__head_t *h = &ctx->req.h;
	if (h->flags & ZH__H_CLOSE)
		return false;
	return h->minor == 1 || (h->flags & ZH__H_KEEPALIVE);
}

/* Serializes the status line and headers into the send area and fills the head slot.
 * Returns false if no space could be had (pool exhausted). */
static bool serialize_head(zh__ctx_t *ctx, zh_response_t *resp)
{
	zh__worker_t *w = ctx->w;
	size_t need = ZH__HEAD_RESERVE + resp->hused + w->common_len + 20;
	size_t line_len;
	const char *line = status_line(resp->status, &line_len);
	char *start = zh__out_reserve(ctx, need), *p = start;

	if (start == NULL)
		return false;
	if (ZH__LIKELY(line != NULL)) {
		p = append(p, line, line_len);
	} else {
		p = append(p, "HTTP/1.1 ", 9);
		p = append_u64(p, (uint64_t)resp->status);
		p = append(p, " \r\n", 3);
	}
	/* Server + Date, refreshed once a second */
	if (ZH__LIKELY(!resp->has_server))
		p = append(p, w->common_hdr, w->common_len);
	else
		p = append(p, w->common_hdr + w->common_len - w->date_len, w->date_len);
	p = append(p, resp->hstore, resp->hused); /* already "Name: value\r\n" lines */
	if (!zh__status_has_body(resp->status)) {
		/* no body, no framing */
	} else if (resp->framing == ZH__F_CHUNKED) {
		p = append(p, "Transfer-Encoding: chunked\r\n", 28);
	} else if (resp->framing == ZH__F_LENGTH) {
		uint64_t len = (resp->head_only || resp->streaming) && resp->has_length
				       ? resp->declared_len
				       : resp->body_len;
		p = append(p, "Content-Length: ", 16);
		p = append_u64(p, len);
		p = append(p, "\r\n", 2);
	}
	if (ZH__UNLIKELY(ctx->upgrade_fn != NULL) && resp->status == 101) /* zh_resp_upgrade */
		p = append(p, "Connection: upgrade\r\n", 21);
	else if (resp->close)
		p = append(p, "Connection: close\r\n", 19);
	else if (ctx->req.h.minor == 0)
		p = append(p, "Connection: keep-alive\r\n", 24);
	p = append(p, "\r\n", 2);
	if (resp->framing == ZH__F_CHUNKED && resp->body_len > 0) {
		/* the first chunk's size line rides in the head's iovec */
		p = zh__append_hex(p, resp->body_len);
		p = append(p, "\r\n", 2);
		resp->chunk_crlf = true;
		resp->framed_len = resp->body_len;
	}
	/* give back what the reservation did not use: nothing was appended after it */
	ctx->area_used -= (uint32_t)(need - (size_t)(p - start));
	ctx->iov[resp->head_slot].iov_base = start;
	ctx->iov[resp->head_slot].iov_len = (size_t)(p - start);
	return true;
}

static void decide_close(zh__ctx_t *ctx, zh_response_t *resp)
{
	const zh__conn_t *c = ctx->conn;
	if (!keep_alive(ctx) || ctx->w->draining ||
	    (ctx->w->srv->cfg.max_keepalive_requests &&
	     c->requests + 1 >= ctx->w->srv->cfg.max_keepalive_requests))
		resp->close = true;
}


/* ---- chunked framing --------------------------------------------------------------------- */

/* A chunked response keeps one zero-length iovec after its queued data: the next chunk's
 * size line, written into chunk_line[slot] when that chunk is complete. So a chunk's data is
 * never moved to make room for its header, and framing needs no send-area space. */
static int push_placeholder(zh_response_t *resp)
{
	zh__ctx_t *ctx = resp->ctx;
	int slot = zh__out_push(ctx, NULL, 0, NULL, NULL);
	if (slot < 0)
		return slot;
	ctx->iov[slot].iov_base = ctx->chunk_line[slot];
	resp->chunk_slot = (uint16_t)slot;
	resp->head_slot = (uint16_t)slot; /* nothing coalesces into it (see write_copy) */
	return 0;
}

/* Frames the body bytes queued since the last boundary as one chunk, and opens the next. */
void zh__h1_boundary(zh_response_t *resp)
{
	zh__ctx_t *ctx = resp->ctx;
	struct iovec *iov = &ctx->iov[resp->chunk_slot];
	uint64_t n = resp->body_len - resp->framed_len;
	char *p;
	if (resp->framing != ZH__F_CHUNKED || resp->head_only || n == 0)
		return;
	p = iov->iov_base;
	if (resp->chunk_crlf)
		p = append(p, "\r\n", 2);
	p = zh__append_hex(p, n);
	p = append(p, "\r\n", 2);
	iov->iov_len = (size_t)(p - (char *)iov->iov_base);
	resp->chunk_crlf = true;
	resp->framed_len = resp->body_len;
	if (push_placeholder(resp) < 0)
		resp->error = true; /* sticky, as fail() in response.c */
}

/* conn.c sent the whole queue and rewound it while this response is still being written:
 * a chunked body gets its placeholder back; otherwise an empty anchor marks where this
 * body's parts start, so that nothing coalesces into memory that was already sent. */
void zh__h1_rebase(zh_response_t *resp)
{
	int r;
	if (resp->framing == ZH__F_CHUNKED && !resp->head_only)
		r = push_placeholder(resp);
	else if ((r = zh__out_push(resp->ctx, NULL, 0, NULL, NULL)) >= 0)
		resp->head_slot = (uint16_t)r;
	if (r < 0)
		resp->error = true; /* sticky, as fail() in response.c */
}

/* The last chunk with the trailer fields (RFC 9112 §7.1.2), copied into the send area:
 * the response's store is reused by the next pipelined response before this one leaves. */
static bool push_trailers(zh__ctx_t *ctx, zh_response_t *resp)
{
	size_t n = (resp->chunk_crlf ? 2 : 0) + 3 + resp->tused + 2;
	char *p = zh__out_reserve(ctx, n), *q = p;
	if (p == NULL)
		return false;
	if (resp->chunk_crlf)
		q = append(q, "\r\n", 2);
	q = append(q, "0\r\n", 3);
	q = append(q, resp->tstore, resp->tused);
	q = append(q, "\r\n", 2);
	resp->chunk_crlf = false;
	return zh__out_push(ctx, p, n, NULL, NULL) >= 0;
}

/* The end of a response whose head has left: the last chunk and the terminator, or the
 * check of a declared length. After an error nothing completes the body and the
 * connection closes: the client sees the truncation. Returns true when the body is
 * broken (the caller closes the connection). */
bool zh__h1_body_end(zh_response_t *resp)
{
	zh__ctx_t *ctx = resp->ctx;
	static const char last_after_data[] = "\r\n0\r\n\r\n";
	bool broken = resp->error;
	if (resp->framing == ZH__F_CHUNKED && !resp->head_only)
		zh__h1_boundary(resp); /* even when broken: nothing leaves unframed */
	if (!broken && resp->framing == ZH__F_CHUNKED && !resp->head_only) {
		/* the placeholder chunk_boundary left stays empty; the terminator follows it */
		if (resp->ntr && zh__req_te_trailers(&ctx->req))
			broken = !push_trailers(ctx, resp);
		else if (resp->chunk_crlf)
			broken = zh__out_push(ctx, last_after_data, 7, NULL, NULL) < 0;
		else
			broken = zh__out_push(ctx, last_after_data + 2, 5, NULL, NULL) < 0;
	} else if (resp->framing == ZH__F_LENGTH && !resp->head_only) {
		broken |= resp->body_len != resp->declared_len;
	}
	if (resp->framing == ZH__F_CLOSE)
		resp->close = true; /* HTTP/1.0: the end of the connection ends the body */
	return broken;
}


/* The head of a response that is complete (the handler returned): exact Content-Length. */
bool zh__h1_head_whole(zh_response_t *resp)
{
	zh__ctx_t *ctx = resp->ctx;
	decide_close(ctx, resp);
	if (ZH__UNLIKELY(resp->ntr) && !resp->head_only && zh__status_has_body(resp->status) &&
	    ctx->req.h.minor == 1 && zh__req_te_trailers(&ctx->req)) {
		/* trailers need chunked framing (RFC 9112 §7.1.2): the whole body as one chunk,
		 * then the last chunk with the fields */
		resp->framing = ZH__F_CHUNKED;
		return serialize_head(ctx, resp) && push_trailers(ctx, resp);
	}
	return serialize_head(ctx, resp);
}

/* The head leaves before the body is complete: a declared length is kept, else the body
 * is chunked (HTTP/1.1) or delimited by closing (HTTP/1.0, RFC 9112 §6.3). Returns 0, or
 * -ENOBUFS when no head could be queued (pool exhausted): the framing is reset and the
 * response ends as an unsent failure, its empty head slot sending nothing. */
int zh__h1_head_stream(zh_response_t *resp)
{
	zh__ctx_t *ctx = resp->ctx;
	if (resp->head_only || !zh__status_has_body(resp->status))
		resp->framing = resp->has_length ? ZH__F_LENGTH : ZH__F_NONE;
	else if (resp->has_length)
		resp->framing = ZH__F_LENGTH;
	else if (ctx->req.h.minor == 1)
		resp->framing = ZH__F_CHUNKED;
	else
		resp->framing = ZH__F_CLOSE; /* HTTP/1.0: the end of the connection ends the body */
	decide_close(ctx, resp);
	if (resp->framing == ZH__F_CLOSE)
		resp->close = true;
	if (!serialize_head(ctx, resp) ||
	    (resp->framing == ZH__F_CHUNKED && !resp->head_only && push_placeholder(resp) < 0)) {
		resp->framing = ZH__F_LENGTH;
		resp->chunk_crlf = false;
		return -ENOBUFS;
	}
	return 0;
}

static uint16_t h1_send_end(const zh__ctx_t *ctx, uint16_t end)
{
	return zh__h1_send_end(ctx, end);
}

/* ---- the request side ------------------------------------------------------------------ */

static int h1_request(zh__ctx_t *ctx, const zh__limits_t *lim)
{
	return zh__h1_request(ctx, lim); /* inline in internal.h, for the direct call */
}

static const char continue_100[] = "HTTP/1.1 100 Continue\r\n\r\n";

/* RFC 9110 §10.1.1: a 100 only to a client that asked (parse.c drops Expect from HTTP/1.0
 * requests) and only once the body is wanted; the caller knows the latter. */
void zh__h1_interim_100(zh__ctx_t *ctx)
{
	if (!(ctx->req.h.flags & ZH__H_EXPECT_CONTINUE))
		return;
	if (ctx->req.stream) {
		/* the response has begun: its interim slot precedes the head and leaves even
		 * while the handler waits for the body */
		ctx->iov[ctx->resp.interim_slot].iov_base = (void *)(uintptr_t)continue_100;
		ctx->iov[ctx->resp.interim_slot].iov_len = sizeof continue_100 - 1;
		return;
	}
	/* before the response begins: the queue has room for a response (conn.c's
	 * room_for_response), so this push cannot fail; were it to, the client sends the body
	 * anyway after its own wait (RFC 9110 §10.1.1) */
	if (zh__out_push(ctx, continue_100, sizeof continue_100 - 1, NULL, NULL) < 0)
		return;
}

const zh__proto_t zh__proto_http1 = {
	.name = "http/1.1",
	.request = h1_request,
	.interim_100 = zh__h1_interim_100,
	.head_whole = zh__h1_head_whole,
	.head_stream = zh__h1_head_stream,
	.boundary = zh__h1_boundary,
	.rebase = zh__h1_rebase,
	.body_end = zh__h1_body_end,
	.send_end = h1_send_end,
	.body_start = zh__h1_body_start,
	.body_feed = zh__h1_body_feed,
	.body_read = zh__h1_body_read,
};

const zh__proto_t *zh__protos[ZH__PROTOS_MAX] = {&zh__proto_http1};
uint8_t zh__proto_default;

int zh__proto_install(const zh__proto_t *p)
{
	uint8_t i;
	if (p == NULL || p == &zh__proto_http1) {
		zh__proto_default = 0;
		return 0;
	}
	for (i = 1; i < ZH__PROTOS_MAX; i++) {
		if (zh__protos[i] == NULL)
			zh__protos[i] = p;
		if (zh__protos[i] == p) {
			zh__proto_default = i;
			return 0;
		}
	}
	return -ENOSPC;
}

int zh__proto_register(const zh__proto_t *p)
{
	for (uint8_t i = 1; i < ZH__PROTOS_MAX; i++) {
		if (zh__protos[i] == NULL)
			zh__protos[i] = p;
		if (zh__protos[i] == p)
			return i;
	}
	return -ENOSPC;
}
