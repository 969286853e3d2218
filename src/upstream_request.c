/* upstream_request.c — the reverse proxy's request side (upstream.c drives it): the head and
 * the body bytes that came with it, sent together, then the rest of the body streamed from
 * the client to the upstream with backpressure both ways.
 *
 * The proxy's route streams bodies (ZH_ROUTE_STREAM_BODY): nothing waits for a whole body.
 *  - The bytes that came with the head go with it, in place (zh__body_peek): one sendmsg,
 *    as for a body-less request.
 *  - A Content-Length body with at least ZH__UP_SPLICE_MIN left, from a plain HTTP/1.1
 *    client socket: client socket -> pipe -> upstream socket by splice, never through user
 *    space (zh__body_splice).
 *  - Otherwise (TLS, HTTP/2, io_uring, chunked, a small rest): zh_body_read into the
 *    connection's buffer, then sent. A body whose length the client did not give (chunked,
 *    or HTTP/2 without content-length) goes upstream chunked: one chunk per read.
 * At most one buffer or one pipe of bytes is read ahead of the upstream: a slow upstream
 * stops the reads from the client (TCP backpressure), whatever the body's size.
 * Also here: which upstream a request goes to (balancing).
 */
#include "upstream_int.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

enum {
	FRAME_ROOM = 10,     /* before a chunk's data: its size line ("ffffffff\r\n" at most) */
	FILL_MIN = 4096,     /* a read into less room than this: the buffer is the head's */
};

void zh__uc_pipe_close(uconn_t *uc)
{
	if (uc->pipe[0] >= 0) {
		close(uc->pipe[0]);
		close(uc->pipe[1]);
		uc->pipe[0] = uc->pipe[1] = -1;
	}
	uc->in_pipe_req = 0;
}

bool zh__uc_pipe_ready(uconn_t *uc)
{
	int r;
	if (uc->pipe[0] >= 0)
		return true;
	if (pipe2(uc->pipe, O_NONBLOCK | O_CLOEXEC) < 0) {
		uc->pipe[0] = uc->pipe[1] = -1;
		return false; /* out of descriptors: the buffer path still works */
	}
	/* a bigger pipe moves more per splice; if refused, the default (64 KiB) is used */
	r = fcntl(uc->pipe[1], F_SETPIPE_SZ, ZH__UP_PIPE);
	if (r < 0)
		r = fcntl(uc->pipe[1], F_GETPIPE_SZ);
	uc->pipe_cap = r > 0 ? (uint32_t)r : 65536u;
	return true;
}

int zh__ureq_send(ex_t *ex, uconn_t *uc)
{
	while (uc->sent < uc->head_len + ex->body.len) {
		struct iovec iov[2];
		int n = 0;
		ssize_t w;
		if (uc->sent < uc->head_len)
			iov[n++] = (struct iovec){uc->buf + uc->sent, uc->head_len - uc->sent};
		if (ex->body.len) {
			size_t off = uc->sent > uc->head_len ? uc->sent - uc->head_len : 0;
			iov[n++] = (struct iovec){(void *)(ex->body.ptr + off), ex->body.len - off};
		}
		struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)n};
		w = sendmsg(uc->fd, &mh, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return errno == EAGAIN ? 0 : -errno;
		uc->sent += (uint64_t)w;
	}
	return 1;
}

void zh__client_text(const zh_request_t *req, char out[64], bool *v6)
{
	uint8_t a[16];
	char *p = out;
	*v6 = zh_req_peer_addr(req, a) == AF_INET6;
	if (*v6) {
		zh_req_peer_str(req, out, 64);
		return;
	}
	for (int i = 0; i < 4; i++) {
		unsigned v = a[i];
		if (v >= 100)
			*p++ = (char)('0' + v / 100);
		if (v >= 10)
			*p++ = (char)('0' + v / 10 % 10);
		*p++ = (char)('0' + v % 10);
		*p++ = i < 3 ? '.' : '\0';
	}
}

/* ---- balancing ----------------------------------------------------------------------------- */

bool zh__all_down(const pw_t *pw)
{
	uint64_t now = zh__ext_now_ms(pw->w);
	for (unsigned i = 0; i < pw->p->n_up; i++)
		if (zh__up_usable(&pw->ups[i], now))
			return false;
	return true;
}

/* The next upstream for ex: not tried yet, not down, with room. Round robin starts each
 * request one further; least outstanding takes the fewest in flight (this worker's), ties
 * in round-robin order. -503 when none is up (*retry_s: until the first comes back), -502
 * when every upstream has been tried. */
int zh__pick(ex_t *ex, unsigned *retry_s)
{
	pw_t *pw = ex->pw;
	zh_proxy_t *p = pw->p;
	uint64_t now = zh__ext_now_ms(pw->w), back = 0;
	unsigned start = pw->rr++, n = p->n_up, untried = 0;
	int best = -1;
	for (unsigned k = 0; k < n; k++) {
		unsigned i = (start + k) % n;
		upw_t *u = &pw->ups[i];
		if (ex->tried & (1ull << i))
			continue;
		untried++;
		if (!zh__up_usable(u, now)) {
			uint64_t at = u->hc_down ? u->probe_at_ms : u->down_until_ms;
			if (back == 0 || at < back)
				back = at;
			continue;
		}
		if (u->nidle == 0 && u->nopen >= p->o.max_conns)
			continue;
		if (best < 0 || (p->o.balance == ZH_PROXY_LEAST_OUTSTANDING &&
				 u->outstanding < pw->ups[best].outstanding))
			best = (int)i;
		if (p->o.balance == ZH_PROXY_ROUND_ROBIN)
			break;
	}
	if (best >= 0)
		return best;
	if (untried == 0 && ex->tried && !zh__all_down(pw))
		return -502;
	/* every upstream is down (some of them just now, by this request) or full */
	for (unsigned i = 0; back == 0 && i < n; i++)
		if (!zh__up_usable(&pw->ups[i], now))
			back = pw->ups[i].hc_down ? pw->ups[i].probe_at_ms : pw->ups[i].down_until_ms;
	*retry_s = back ? (unsigned)((back - now + 999) / 1000) : 1;
	return -503;
}

/* ---- the rest of the body ---------------------------------------------------------------- */

int zh__ureq_body_flush(ex_t *ex, uconn_t *uc)
{
	while (ex->poff < ex->plen) {
		ssize_t w = send(uc->fd, uc->buf + ex->poff, ex->plen - ex->poff, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return errno == EAGAIN ? 0 : -errno;
		ex->poff += (uint32_t)w;
		uc->sent += (uint64_t)w;
	}
	ex->poff = ex->plen = 0;
	while (uc->in_pipe_req) {
		ssize_t w = splice(uc->pipe[0], NULL, uc->fd, NULL, uc->in_pipe_req,
				   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 && errno == EAGAIN ? 0 : w < 0 ? -errno : -EPIPE;
		uc->in_pipe_req -= (uint32_t)w;
		uc->sent += (uint64_t)w;
	}
	return 1;
}

/* A chunk of n data bytes at buf[base + FRAME_ROOM..): its size line before, CRLF after. */
static void frame_chunk(ex_t *ex, uconn_t *uc, uint32_t base, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	uint32_t at = base + FRAME_ROOM - 2;
	memcpy(uc->buf + at, "\r\n", 2);
	do
		uc->buf[--at] = hex[n & 15];
	while ((n >>= 4) != 0 && at > base);
	ex->poff = at;
	memcpy(uc->buf + ex->plen, "\r\n", 2);
	ex->plen += 2;
}

static ssize_t fill_splice(ex_t *ex, uconn_t *uc, zh_request_t *req)
{
	ssize_t n = zh__body_splice(req, uc->pipe[1], uc->pipe_cap);
	if (n > 0) {
		uc->in_pipe_req = (uint32_t)n;
		ex->req_read += (uint64_t)n;
	} else if (n == 0) {
		ex->req_more = false;
	}
	return n < 0 ? n : 1;
}

ssize_t zh__ureq_body_fill(ex_t *ex, uconn_t *uc, zh_request_t *req, uint64_t max_body)
{
	uint32_t base = uc->len; /* after what the upstream has said already */
	size_t room = ZH__UP_BUF - base - FRAME_ROOM - 2;
	ssize_t n;
	if (ex->req_mode == REQ_UNDECIDED) {
		int64_t len = zh_body_length(req);
		ex->req_mode = REQ_COPY;
		if (len > 0 && (uint64_t)len - ex->body.len >= ZH__UP_SPLICE_MIN &&
		    zh__uc_pipe_ready(uc)) {
			n = fill_splice(ex, uc, req);
			if (n != -ENOTSUP) {
				ex->req_mode = REQ_SPLICE;
				return n;
			}
		}
	}
	if (ex->req_mode == REQ_SPLICE)
		return fill_splice(ex, uc, req);
	if (ZH__UP_BUF - base < FILL_MIN)
		return -ENOBUFS;
	n = zh_body_read(req, uc->buf + base + FRAME_ROOM, room);
	if (n < 0)
		return n;
	ex->poff = base + FRAME_ROOM;
	ex->plen = base + FRAME_ROOM + (uint32_t)n;
	if ((ex->req_read += (uint64_t)n) > max_body)
		return -EMSGSIZE; /* a chunked body only: a Content-Length was checked first */
	if (n == 0) {
		ex->req_more = false;
		if (ex->req_chunked) { /* the last chunk, no trailer */
			memcpy(uc->buf + base, "0\r\n\r\n", 5);
			ex->poff = base;
			ex->plen = base + 5;
		}
	} else if (ex->req_chunked) {
		frame_chunk(ex, uc, base, (size_t)n);
	}
	return 1;
}

void zh__ureq_body_stop(ex_t *ex, uconn_t *uc)
{
	ex->poff = ex->plen = 0;
	ex->req_more = false;
	if (uc->in_pipe_req)
		zh__uc_pipe_close(uc); /* unsent request bytes must never join a response */
}
