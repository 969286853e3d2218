/* upstream.c — the reverse proxy (zh_proxy_*): per-worker keep-alive pools of upstream
 * connections, balancing, nonblocking connects driven by the worker's own epoll loop, the
 * exchange (a deferred response) and its timeouts, the streamed body, metrics.
 *
 * One proxied request, on the client connection's worker:
 *   handler    picks an upstream, takes an idle pooled connection (or starts a
 *              nonblocking connect), writes the request head (upstream_parse.c) into the
 *              connection's buffer, sends head + body with one writev when it can, and
 *              defers the response (zh_resp_defer) under a worker timer (connect, then
 *              header timeout);
 *   watch      the upstream socket's events (ext.h zh__watch_t) finish the connect and the
 *              send, then read the response head into the same buffer and parse it
 *              strictly; the deferred response resumes at once on the worker
 *              (zh__deferred_resume_now: no inbox, no eventfd);
 *   deliver    copies the end-to-end fields, commits the status, declares the length, and
 *              queues the body bytes already read by reference (zh_write_ref into the
 *              buffer: never copied again); a body still coming is a producer's;
 *   producer   runs only when the client's socket has taken everything queued, so a slow
 *              client stops the reads from the upstream (TCP backpressure: the proxy holds
 *              at most one buffer per exchange). With nothing to read it parks
 *              (zh__resp_park) until the upstream socket's next event;
 *   done hook  (a route middleware) gives the connection back to the pool when the body
 *              was read whole and every reference into its buffer was released, or closes it.
 *
 * Memory: zh_proxy_new allocates everything (connection slots, and one mapping for every
 * worker's buffers whose pages are touched only when used); nothing per request.
 */
#include "upstream_int.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

enum { RUNS_MAX = 32 }; /* chunked data runs queued per read */

/* The exchange: in zh_resp_state (valid until the response ends); found again by the done
 * hook through the route middleware's slot. */
typedef struct ex {
	zh_deferred_t token; /* the deferred response, then the parked producer */
	zh_timer_t timer;
	pw_t *pw;
	uconn_t *uc;
	zh_request_t *req;   /* alive while the response is deferred or produced */
	zh_slice_t body;
	uint64_t tried;	     /* upstreams tried, as bits */
	uint64_t left;	     /* ZH__UF_LENGTH: body bytes still to come */
	uint64_t started_us;
	zh__uchunk_t chunk;
	uint32_t hoff;	     /* where the final head starts in uc->buf (after 1xx heads) */
	uint16_t status;     /* an error to answer */
	uint16_t retry_s;    /* its Retry-After, for a 503 */
	uint8_t framing;
	bool active, head_req, idempotent, parked, failed, splicing;
	bool upgrade; /* the client asked to switch protocols: passed on (a tunnel) */
} ex_t;
_Static_assert(sizeof(ex_t) <= ZH_RESP_STATE_SIZE, "the exchange lives in zh_resp_state");

#define CNT(field) __atomic_store_n(&(field), __atomic_load_n(&(field), __ATOMIC_RELAXED) + 1, \
				    __ATOMIC_RELAXED)

static int attempt(ex_t *ex, zh_request_t *req);

/* ---- the pool ------------------------------------------------------------------------------ */

static void idle_unlink(upw_t *u, uconn_t *uc)
{
	if (uc->prev)
		uc->prev->next = uc->next;
	else
		u->idle_head = uc->next;
	if (uc->next)
		uc->next->prev = uc->prev;
	else
		u->idle_tail = uc->prev;
	uc->next = uc->prev = NULL;
	u->nidle--;
}

static void pipe_close(uconn_t *uc)
{
	if (uc->pipe[0] >= 0) {
		close(uc->pipe[0]);
		close(uc->pipe[1]);
		uc->pipe[0] = uc->pipe[1] = -1;
	}
}

/* Closes the socket; the slot returns to the free list once no reference into its buffer
 * is queued (else at the last release, UC_DEAD). */
void zh__uc_close(uconn_t *uc)
{
	upw_t *u = &uc->pw->ups[uc->up];
	if (uc->state == UC_IDLE)
		idle_unlink(u, uc);
	if (uc->fd >= 0) {
		close(uc->fd); /* also leaves the epoll set */
		uc->fd = -1;
		u->nopen--;
	}
	uc->ex = NULL;
	if (uc->refs) {
		uc->state = UC_DEAD; /* a queued pipe entry may still read the pipe */
		return;
	}
	pipe_close(uc);
	uc->state = UC_FREE;
	uc->next = uc->pw->free;
	uc->pw->free = uc;
}

static void uc_idle(uconn_t *uc)
{
	upw_t *u = &uc->pw->ups[uc->up];
	if (u->nidle >= uc->pw->p->o.max_idle || uc->pw->no_idle || zh__ext_draining(uc->pw->w)) {
		zh__uc_close(uc);
		return;
	}
	uc->state = UC_IDLE;
	uc->ex = NULL;
	uc->idle_since_ms = zh__ext_now_ms(uc->pw->w);
	uc->prev = NULL;
	uc->next = u->idle_head;
	if (u->idle_head)
		u->idle_head->prev = uc;
	else
		u->idle_tail = uc;
	u->idle_head = uc;
	u->nidle++;
}

/* A response read whole and no longer referenced goes back to the pool. */
static void uc_settle(uconn_t *uc)
{
	if (uc->refs || uc->ex)
		return;
	if (uc->state == UC_DONE && uc->reusable && uc->pipe[0] >= 0) {
		int left = 0;
		/* a pipe entry dropped unsent (the client died after the last read) leaves
		 * bytes behind: the next response must not follow them */
		if (ioctl(uc->pipe[0], FIONREAD, &left) < 0 || left != 0)
			pipe_close(uc);
	}
	if (uc->state == UC_DONE && uc->reusable)
		uc_idle(uc);
	else if (uc->state == UC_DEAD || uc->state == UC_DONE)
		zh__uc_close(uc);
}

static void uc_release(void *arg)
{
	uconn_t *uc = arg;
	uc->refs--;
	if (uc->refs == 0 && uc->state == UC_DEAD) {
		pipe_close(uc);
		uc->state = UC_FREE;
		uc->next = uc->pw->free;
		uc->pw->free = uc;
		return;
	}
	uc_settle(uc);
}

/* Idle connections past keepalive_timeout_ms close (from the worker's periodic hook,
 * zh__proxies_tick); when the worker exits (final), all of them. */
uint64_t zh__proxy_pool_tick(pw_t *pw, zh__worker_t *w, bool final)
{
	uint64_t now = zh__ext_now_ms(w), ttl = pw->p->o.keepalive_timeout_ms, due = 0;
	for (unsigned i = 0; i < pw->p->n_up; i++) {
		upw_t *u = &pw->ups[i];
		while (u->idle_tail && (final || u->idle_tail->idle_since_ms + ttl <= now))
			zh__uc_close(u->idle_tail);
		if (u->idle_tail && (due == 0 || u->idle_tail->idle_since_ms + ttl < due))
			due = u->idle_tail->idle_since_ms + ttl;
	}
	if (pw->p->o.health_path) {
		uint64_t d = zh__health_tick(pw, w, final);
		if (d && (due == 0 || d < due))
			due = d;
	}
	if (pw->tunnels) {
		uint64_t d = zh__tunnel_tick(pw, w, final);
		if (d && (due == 0 || d < due))
			due = d;
	}
	return due;
}

/* A new nonblocking connection to upstream i: UC_CONNECTING (or UC_SENDING when the
 * connect completed at once), or NULL with *err. */
uconn_t *zh__uc_open(pw_t *pw, unsigned i, int *err)
{
	const struct upstream *up = &pw->p->up[i];
	uconn_t *uc = pw->free;
	int fd, one = 1, r;
	if (uc == NULL || pw->ups[i].nopen >= pw->p->o.max_conns) {
		*err = -EAGAIN;
		return NULL;
	}
	fd = socket(up->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		*err = -errno;
		return NULL;
	}
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* best effort */
	r = connect(fd, (const struct sockaddr *)&up->addr, up->alen);
	if ((r < 0 && errno != EINPROGRESS) || (*err = zh__watch_add(pw->w, fd, &uc->watch)) < 0) {
		if (r < 0 && errno != EINPROGRESS)
			*err = -errno;
		close(fd);
		return NULL;
	}
	pw->free = uc->next;
	uc->next = uc->prev = NULL;
	uc->fd = fd;
	uc->up = (uint16_t)i;
	uc->state = r == 0 ? UC_SENDING : UC_CONNECTING;
	uc->refs = 0;
	uc->probe = false;
	pw->ups[i].nopen++;
	CNT(pw->ups[i].opened);
	return uc;
}

/* ---- balancing ----------------------------------------------------------------------------- */

static bool all_down(const pw_t *pw)
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
static int pick(ex_t *ex, unsigned *retry_s)
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
	if (untried == 0 && ex->tried && !all_down(pw))
		return -502;
	/* every upstream is down (some of them just now, by this request) or full */
	for (unsigned i = 0; back == 0 && i < n; i++)
		if (!zh__up_usable(&pw->ups[i], now))
			back = pw->ups[i].hc_down ? pw->ups[i].probe_at_ms : pw->ups[i].down_until_ms;
	*retry_s = back ? (unsigned)((back - now + 999) / 1000) : 1;
	return -503;
}

/* ---- the exchange: errors -------------------------------------------------------------------- */

static void answer_status(zh_response_t *resp, int status, unsigned retry_s)
{
	char ra[12];
	static const char *const text[] = {"502 Bad Gateway\n", "503 Service Unavailable\n",
					   "504 Gateway Timeout\n"};
	const char *t = text[status == 503 ? 1 : status == 504 ? 2 : 0];
	snprintf(ra, sizeof ra, "%u", retry_s ? retry_s : 1);
	if (status == 503 && zh_resp_header_set(resp, "Retry-After", ra) < 0)
		return; /* sticky: the response is a 500 now */
	/* a failure is sticky on the response (it becomes a 500): nothing more to do here */
	(void)zh_reply(resp, status, "text/plain; charset=utf-8", t, strlen(t));
}

static void resumed_error(zh_request_t *req, zh_response_t *resp, void *arg)
{
	ex_t *ex = arg;
	if (req == NULL)
		return; /* the done hook already let the exchange go */
	answer_status(resp, ex->status, ex->retry_s);
}

static void retry(zh_request_t *req, zh_response_t *resp, void *arg);

/* The connection in use failed before any response byte. Retry elsewhere when nothing of
 * the request reached the upstream and the method is idempotent (RFC 9110 §9.2.2); else
 * answer status. Called from the loop (watch or timer), never from the handler. */
static void fail_async(ex_t *ex, int status, bool nothing_sent)
{
	uconn_t *uc = ex->uc;
	if (uc) {
		ex->pw->ups[uc->up].outstanding--;
		if (nothing_sent && ex->idempotent)
			CNT(ex->pw->ups[uc->up].retries);
		ex->uc = NULL;
		zh__uc_close(uc);
	}
	zh_timer_cancel(&ex->timer);
	if (nothing_sent && ex->idempotent) {
		zh__deferred_resume_now(&ex->token, retry, ex);
		return;
	}
	ex->status = (uint16_t)(status == 502 && all_down(ex->pw) ? 503 : status);
	zh__deferred_resume_now(&ex->token, resumed_error, ex);
}

/* A retry runs as a resumption: it has the request, may defer again, or answers. */
static void retry(zh_request_t *req, zh_response_t *resp, void *arg)
{
	ex_t *ex = arg;
	int r;
	if (req == NULL)
		return;
	r = attempt(ex, req);
	if (r > 0)
		answer_status(resp, r, ex->retry_s);
	else if (zh_resp_defer(resp, &ex->token) < 0)
		answer_status(resp, 502, 0);
}

static void on_timer(zh_request_t *req, void *arg)
{
	ex_t *ex = arg;
	uconn_t *uc = ex->uc;
	(void)req;
	if (uc == NULL)
		return;
	if (uc->state == UC_BODY) {
		if (!ex->parked) {
			/* the client is the slow one: the upstream is not stalled. The client's
			 * write timeout guards that side. */
			if (zh_timer_start(req, &ex->timer, ex->pw->p->o.idle_timeout_ms, on_timer,
					   ex) < 0)
				ex->failed = true;
			return;
		}
		CNT(ex->pw->ups[uc->up].timeouts);
		ex->failed = true;
		ex->parked = false;
		zh__resp_unpark(&ex->token);
		return;
	}
	CNT(ex->pw->ups[uc->up].timeouts);
	if (uc->state == UC_CONNECTING) {
		zh__up_down_until(&ex->pw->ups[uc->up],
				  zh__ext_now_ms(ex->pw->w) + ex->pw->p->o.fail_timeout_ms);
		fail_async(ex, 504, true);
		return;
	}
	fail_async(ex, 504, uc->sent == 0);
}

/* ---- sending the request ------------------------------------------------------------------- */

/* 1: all sent; 0: the socket is full; < 0: an error. */
static int send_more(ex_t *ex, uconn_t *uc)
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

/* The peer as text. IPv4 by hand: inet_ntop formats it through sprintf, a tenth of a
 * proxied request's instructions. */
static void client_text(const zh_request_t *req, char out[64], bool *v6)
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

/* Picks an upstream and starts the exchange on it: 0 (waiting for events), or the status to
 * answer now. Called by the handler and by retries. */
static int attempt(ex_t *ex, zh_request_t *req)
{
	pw_t *pw = ex->pw;
	zh_proxy_t *p = pw->p;
	for (;;) {
		unsigned retry_s = 1;
		int i = pick(ex, &retry_s), err = 0;
		uconn_t *uc;
		upw_t *u;
		zh__ureq_extra_t x;
		char client[64];
		ssize_t hl;
		if (i < 0) {
			ex->retry_s = (uint16_t)(retry_s > 3600 ? 3600 : retry_s);
			if (i == -503)
				CNT(pw->unavailable);
			return -i;
		}
		u = &pw->ups[i];
		ex->tried |= 1ull << i;
		if ((uc = u->idle_head) != NULL) {
			idle_unlink(u, uc);
			uc->state = UC_SENDING;
		} else if ((uc = zh__uc_open(pw, (unsigned)i, &err)) == NULL) {
			if (err == -EAGAIN)
				continue; /* no slot for this one: another may have room */
			CNT(u->connect_failures);
			zh__up_down_until(u, zh__ext_now_ms(pw->w) + p->o.fail_timeout_ms);
			if (ex->idempotent)
				continue; /* nothing was sent: RFC 9110 §9.2.2 allows another try */
			return all_down(pw) ? 503 : 502;
		}
		CNT(u->requests);
		u->outstanding++;
		uc->ex = ex;
		uc->sent = uc->len = 0;
		uc->reusable = false;
		ex->uc = uc;
		x.host = p->o.host ? p->o.host : p->up[i].authority;
		if (p->o.host == NULL && zh_req_host(req).len) {
			x.host = zh_req_host(req).ptr;
			x.host_len = zh_req_host(req).len;
		} else {
			x.host_len = strlen(x.host);
		}
		client_text(req, client, &x.client_v6);
		x.client = client;
		x.has_body = ex->body.len > 0 || (zh_req_method_bit(req) &
						  (ZH_POST | ZH_PUT | ZH_PATCH));
		x.body_len = ex->body.len;
		x.upgrade = (zh_slice_t){NULL, 0};
		if (ex->upgrade && zh_req_upgrade(req, &x.upgrade) != 1)
			x.upgrade = (zh_slice_t){NULL, 0};
		hl = zh__ureq_write(req, &x, uc->buf, ZH__UP_BUF);
		if (hl < 0) {
			u->outstanding--;
			ex->uc = NULL;
			zh__uc_close(uc);
			return 502; /* a head too large for the buffer */
		}
		uc->head_len = (uint32_t)hl;
		if (uc->state == UC_SENDING) {
			int r = send_more(ex, uc);
			if (r < 0) {
				bool nothing_sent = uc->sent == 0;
				/* a pooled connection the upstream had reset: nothing was taken */
				u->outstanding--;
				ex->uc = NULL;
				zh__uc_close(uc);
				if (nothing_sent && ex->idempotent)
					continue;
				return 502;
			}
			if (r == 1)
				uc->state = UC_HEAD;
		}
		return zh_timer_start(req, &ex->timer,
				      uc->state == UC_CONNECTING ? p->o.connect_timeout_ms
								 : p->o.header_timeout_ms,
				      on_timer, ex) < 0
			       ? 502
			       : 0;
	}
}

/* ---- the response head ---------------------------------------------------------------------- */

static bool listed_in_connection(const char *b, const zh__uhead_t *h, const char *n, size_t nl)
{
	for (uint32_t i = 0; i < h->nfields; i++) {
		const zh__ufield_t *f = &h->f[i];
		const char *v = b + f->voff;
		size_t j = 0;
		if (f->nlen != 10 || !zh__ieq(b + f->noff, "connection", 10))
			continue;
		while (j < f->vlen) {
			size_t s;
			while (j < f->vlen && (v[j] == ' ' || v[j] == '\t' || v[j] == ','))
				j++;
			s = j;
			while (j < f->vlen && v[j] != ',' && v[j] != ' ' && v[j] != '\t')
				j++;
			if (j - s == nl && zh__ieq(v + s, n, nl))
				return true;
		}
	}
	return false;
}

/* The end-to-end fields of the upstream's head, onto resp. False when they would not fit
 * the response's header store (the caller answers 502 rather than a 500). */
static bool copy_fields(zh_response_t *resp, const char *b, const zh__uhead_t *h)
{
	size_t bytes = 0;
	unsigned n = 0;
	bool conn = false; /* a Connection field may name more hop-by-hop fields */
	for (uint32_t i = 0; i < h->nfields && !conn; i++)
		conn = h->f[i].nlen == 10 && zh__ieq(b + h->f[i].noff, "connection", 10);
	for (int pass = 0; pass < 2; pass++) {
		for (uint32_t i = 0; i < h->nfields; i++) {
			const zh__ufield_t *f = &h->f[i];
			const char *nm = b + f->noff;
			if (zh__uhop_by_hop(nm, f->nlen) ||
			    (conn && listed_in_connection(b, h, nm, f->nlen)) ||
			    (f->nlen == 14 && zh__ieq(nm, "content-length", 14)) ||
			    (f->nlen == 4 && zh__ieq(nm, "date", 4)))
				continue;
			if (pass == 0) {
				n++;
				bytes += f->nlen + f->vlen + 4u;
			} else if (zh__resp_header_addn(resp, nm, f->nlen, b + f->voff, f->vlen) < 0) {
				return false;
			}
		}
		/* room left for the library's Retry-After/Content-Type-like additions: 2 fields */
		if (pass == 0 && (n > 28 || bytes > 3800))
			return false;
	}
	return true;
}

/* Body bytes in uc->buf[from, to): queued by reference. false on malformed framing. */
static bool body_bytes(ex_t *ex, zh_response_t *resp, uint32_t from, uint32_t to)
{
	uconn_t *uc = ex->uc;
	if (ex->framing == ZH__UF_CHUNKED) {
		while (from < to && !zh__uchunk_done(&ex->chunk)) {
			zh__urun_t runs[RUNS_MAX];
			unsigned nr = 0;
			ssize_t used = zh__uchunk_feed(&ex->chunk, uc->buf + from, to - from, runs,
						       &nr, RUNS_MAX);
			if (used < 0)
				return false;
			for (unsigned k = 0; k < nr; k++) {
				if (zh_write_ref(resp, uc->buf + from + runs[k].off, runs[k].len,
						 uc_release, uc) < 0)
					return false;
				uc->refs++;
			}
			from += (uint32_t)used;
		}
		if (zh__uchunk_done(&ex->chunk) && from < to)
			uc->reusable = false; /* bytes after the body: never reuse */
		return true;
	}
	if (ex->framing == ZH__UF_LENGTH && to - from > ex->left) {
		uc->reusable = false; /* more than declared: the rest is not ours to send */
		to = from + (uint32_t)ex->left;
	}
	if (to > from) {
		if (zh_write_ref(resp, uc->buf + from, to - from, uc_release, uc) < 0)
			return false;
		uc->refs++;
		ex->left -= ex->framing == ZH__UF_LENGTH ? to - from : 0;
	}
	return true;
}

static bool body_complete(const ex_t *ex)
{
	return ex->framing == ZH__UF_NONE ||
	       (ex->framing == ZH__UF_LENGTH && ex->left == 0) ||
	       (ex->framing == ZH__UF_CHUNKED && zh__uchunk_done(&ex->chunk));
}

static void body_finished(ex_t *ex)
{
	uconn_t *uc = ex->uc;
	zh_timer_cancel(&ex->timer);
	uc->state = UC_DONE;
	uc->reusable = uc->reusable && body_complete(ex);
}

static int produce(zh_response_t *resp, void *arg);

/* Is p one of the protocols the client's Upgrade offered (and the proxy passed on)? */
static bool offered_by_client(const zh_request_t *req, zh_slice_t p)
{
	zh_slice_t offered, e;
	size_t i = 0;
	if (zh_req_upgrade(req, &offered) != 1)
		return false;
	while (zh__list_next(offered, &i, &e))
		if (e.len == p.len && zh__ieq(e.ptr, p.ptr, p.len))
			return true;
	return false;
}

/* The upstream switched protocols: so does the client's connection, to the protocol the
 * upstream named if the client offered it, and once its 101 has left the two sockets
 * become a tunnel (upstream_tunnel.c). The connection leaves the exchange now: the tunnel
 * owns it, or zh__tunnel_start closes it if the client went away. Anything else is a 502
 * that carries none of the 101's fields. */
static void deliver_upgrade(ex_t *ex, zh_response_t *resp, const char *b, const zh__uhead_t *h)
{
	uconn_t *uc = ex->uc;
	upw_t *u = &ex->pw->ups[uc->up];
	char proto[128];
	size_t n = 0;
	for (uint32_t i = 0; i < h->nfields; i++) {
		const zh__ufield_t *f = &h->f[i];
		if (f->nlen == 7 && zh__ieq(b + f->noff, "upgrade", 7) && f->vlen < sizeof proto) {
			memcpy(proto, b + f->voff, f->vlen);
			n = f->vlen;
			break;
		}
	}
	proto[n] = '\0';
	uc->reusable = false;
	uc->t.cfd = -1; /* no tunnel until the client has its 101 */
	uc->t.up.off = ex->hoff + h->head_len; /* what the upstream sent after its 101 */
	uc->t.up.len = uc->len - uc->t.up.off;
	if (n == 0 || !offered_by_client(ex->req, (zh_slice_t){proto, n}) ||
	    !copy_fields(resp, b, h) || zh_resp_upgrade(resp, proto, zh__tunnel_start, uc) < 0) {
		CNT(u->bad_responses); /* no Upgrade, or one the client did not offer */
		uc->state = UC_DONE;
		answer_status(resp, 502, 0);
		return;
	}
	uc->state = UC_TUNNEL;
	uc->ex = NULL;
	ex->uc = NULL;
	u->outstanding--;
}

static void deliver(zh_request_t *req, zh_response_t *resp, void *arg)
{
	ex_t *ex = arg;
	uconn_t *uc = ex->uc;
	const zh__uhead_t *h = &ex->pw->head;
	const char *b = uc ? uc->buf + ex->hoff : NULL;
	char len[24];
	if (req == NULL || uc == NULL)
		return;
	upw_t *u = &ex->pw->ups[uc->up];
	CNT(u->responses);
	__atomic_store_n(&u->latency_us_sum, u->latency_us_sum + (zh__now_us() - ex->started_us),
			 __ATOMIC_RELAXED);
	ex->framing = (uint8_t)h->framing;
	ex->left = h->length;
	memset(&ex->chunk, 0, sizeof ex->chunk);
	uc->reusable = h->keep_alive;
	if (h->status == 101) {
		deliver_upgrade(ex, resp, b, h);
		return;
	}
	if (h->status > 599 || !copy_fields(resp, b, h)) {
		CNT(u->bad_responses);
		uc->reusable = false;
		uc->state = UC_DONE;
		answer_status(resp, 502, 0);
		return;
	}
	if (h->framing == ZH__UF_LENGTH || (ex->head_req && h->framing == ZH__UF_NONE &&
					    h->status != 204 && h->status != 304)) {
		/* HEAD: the upstream's Content-Length describes the GET's body (RFC 9110 §9.3.2).
		 * Written from the parsed value: the field may have been a list ("5, 5") */
		size_t k = sizeof len;
		uint64_t x = h->length;
		do
			len[--k] = (char)('0' + x % 10);
		while ((x /= 10) != 0);
		if (h->has_length &&
		    zh_resp_header_setn(resp, "Content-Length", 14, len + k, sizeof len - k) < 0)
			return;
	}
	if (zh_write_header(resp, h->status) < 0)
		return;
	if (!body_bytes(ex, resp, ex->hoff + h->head_len, uc->len)) {
		CNT(u->bad_responses);
		ex->failed = true; /* the producer's first call cuts the response */
	}
	if (!ex->failed && body_complete(ex)) {
		body_finished(ex);
		return;
	}
	uc->state = UC_BODY;
	if (zh_resp_produce(resp, produce, ex) < 0)
		ex->failed = true; /* not reached: nothing else suspends this response */
	else if (!ex->failed &&
		 zh_timer_start(req, &ex->timer, ex->pw->p->o.idle_timeout_ms, on_timer, ex) < 0)
		ex->failed = true;
}

static int idle_timer(ex_t *ex, zh_response_t *resp)
{
	return zh_timer_start(zh_resp_request(resp), &ex->timer, ex->pw->p->o.idle_timeout_ms,
			      on_timer, ex) < 0
		       ? -EIO
		       : ZH_PRODUCE_MORE;
}

/* A pipe for splice, once per connection (kept while it is pooled). False: none. */
static bool pipe_ready(uconn_t *uc)
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

/* A read of the body brought nothing (n <= 0, errno set when n < 0): park until the
 * upstream socket's next event, or cut the body (closed or reset mid-body). */
static int body_read_empty(ex_t *ex, uconn_t *uc, zh_response_t *resp, ssize_t n)
{
	if (n < 0 && errno == EAGAIN) {
		ex->parked = true;
		zh__resp_park(resp, &ex->token);
		return ZH_PRODUCE_MORE;
	}
	CNT(ex->pw->ups[uc->up].bad_responses);
	uc->reusable = false;
	return -EIO;
}

/* A large Content-Length body: upstream socket -> pipe -> client socket. The producer runs
 * only when the queue is empty, so the pipe is empty too and may be filled again. */
static int produce_splice(ex_t *ex, uconn_t *uc, zh_response_t *resp)
{
	size_t want = ex->left < uc->pipe_cap ? (size_t)ex->left : uc->pipe_cap;
	ssize_t n;
	do
		n = splice(uc->fd, NULL, uc->pipe[1], NULL, want, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
	while (n < 0 && errno == EINTR);
	if (n > 0) {
		if (zh__resp_write_pipe(resp, uc->pipe[0], (size_t)n, uc_release, uc) < 0) {
			uc->reusable = false;
			return -EIO;
		}
		uc->refs++;
		ex->left -= (uint64_t)n;
		if (ex->left == 0) {
			body_finished(ex);
			return ZH_PRODUCE_DONE;
		}
		return idle_timer(ex, resp);
	}
	return body_read_empty(ex, uc, resp, n);
}

/* The rest of the body, each time the client's socket has taken everything queued. */
static int produce(zh_response_t *resp, void *arg)
{
	ex_t *ex = arg;
	uconn_t *uc = ex->uc;
	if (resp == NULL || uc == NULL)
		return ZH_PRODUCE_DONE; /* the done hook lets the connection go */
	if (ex->failed || uc->refs) {
		uc->reusable = false;
		return -EIO;
	}
	if (!ex->splicing && ex->framing == ZH__UF_LENGTH && ex->left >= ZH__UP_SPLICE_MIN &&
	    zh__resp_pipe_ok(resp) && pipe_ready(uc))
		ex->splicing = true;
	if (ex->splicing)
		return produce_splice(ex, uc, resp);
	for (;;) {
		ssize_t n = recv(uc->fd, uc->buf, ZH__UP_BUF, 0);
		uint64_t before = zh_resp_body_len(resp);
		if (n > 0) {
			uc->len = (uint32_t)n;
			if (!body_bytes(ex, resp, 0, (uint32_t)n)) {
				CNT(ex->pw->ups[uc->up].bad_responses);
				uc->reusable = false;
				return -EIO;
			}
			if (body_complete(ex)) {
				body_finished(ex);
				return ZH_PRODUCE_DONE;
			}
			if (zh_resp_body_len(resp) == before)
				continue; /* framing bytes only */
			return idle_timer(ex, resp);
		}
		if (n == 0 && ex->framing == ZH__UF_CLOSE) {
			uc->reusable = false;
			body_finished(ex);
			return ZH_PRODUCE_DONE;
		}
		if (n < 0 && errno == EINTR)
			continue;
		return body_read_empty(ex, uc, resp, n);
	}
}

/* Reads and parses the response head; 1xx interim heads are skipped. A 101 is delivered
 * only when the client's Upgrade was passed on (a tunnel, deliver_upgrade); else it is
 * refused: the bytes after it are not HTTP. */
static void read_head(ex_t *ex, uconn_t *uc)
{
	pw_t *pw = ex->pw;
	for (;;) {
		ssize_t n = recv(uc->fd, uc->buf + uc->len, ZH__UP_BUF - uc->len, 0);
		int r;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			CNT(pw->ups[uc->up].bad_responses);
			fail_async(ex, 502, false);
			return;
		}
		uc->len += (uint32_t)n;
		for (;;) {
			r = zh__uresp_parse(uc->buf + ex->hoff, uc->len - ex->hoff, ex->head_req,
					    &pw->head);
			if (r > 0 && pw->head.status < 200 && pw->head.status != 101) {
				ex->hoff += (uint32_t)r;
				continue;
			}
			break;
		}
		/* a 101 nobody asked for cannot be followed: the bytes after it are not HTTP */
		if (r < 0 || (r > 0 && pw->head.status == 101 && !ex->upgrade) ||
		    (r == 0 && uc->len == ZH__UP_BUF)) {
			CNT(pw->ups[uc->up].bad_responses);
			fail_async(ex, 502, false);
			return;
		}
		if (r > 0) {
			zh_timer_cancel(&ex->timer);
			zh__deferred_resume_now(&ex->token, deliver, ex);
			return;
		}
	}
}

void zh__uconn_event(zh__worker_t *w, zh__watch_t *x, uint32_t events)
{
	uconn_t *uc = (uconn_t *)(void *)x;
	ex_t *ex = uc->ex;
	(void)w;
	if (ZH__UNLIKELY(uc->probe)) {
		zh__probe_event(uc, events);
		return;
	}
	switch (uc->state) {
	case UC_IDLE: {
		char c;
		/* the upstream closed its end (or sent bytes nobody asked for) */
		if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP)) &&
		    !(recv(uc->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) < 0 && errno == EAGAIN))
			zh__uc_close(uc);
		return;
	}
	case UC_CONNECTING: {
		int e = 0;
		socklen_t el = sizeof e;
		if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return;
		if (getsockopt(uc->fd, SOL_SOCKET, SO_ERROR, &e, &el) < 0)
			e = errno;
		if (e) {
			upw_t *u = &ex->pw->ups[uc->up];
			CNT(u->connect_failures);
			zh__up_down_until(u, zh__ext_now_ms(ex->pw->w) + ex->pw->p->o.fail_timeout_ms);
			fail_async(ex, 502, true);
			return;
		}
		zh__up_down_until(&ex->pw->ups[uc->up], 0);
		uc->state = UC_SENDING;
	}
		/* fall through */
	case UC_SENDING: {
		int r = send_more(ex, uc);
		if (r < 0) {
			fail_async(ex, 502, uc->sent == 0);
			return;
		}
		if (r == 0)
			return;
		uc->state = UC_HEAD;
		if (zh_timer_start(ex->req, &ex->timer, ex->pw->p->o.header_timeout_ms, on_timer,
				   ex) < 0) {
			fail_async(ex, 502, false);
			return;
		}
		if (events & EPOLLIN) /* an early answer (a 413, say) may be waiting already */
			read_head(ex, uc);
		return;
	}
	case UC_HEAD:
		read_head(ex, uc);
		return;
	case UC_TUNNEL:
		zh__tunnel_upstream_event(uc);
		return;
	case UC_BODY:
		if (ex->parked && (events & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP))) {
			ex->parked = false;
			zh__resp_unpark(&ex->token);
		}
		return;
	default:
		return; /* a stale event of a slot closed in this round */
	}
}

/* ---- the handler, the done hook, the route ------------------------------------------------ */

static pw_t *worker_state(zh_proxy_t *p, zh_request_t *req)
{
	pw_t *pw = &p->pw[zh_req_worker(req)];
	if (pw->w == NULL) {
		pw->w = zh__ext_worker(req);
		/* one hook per worker for every proxy of the server (the loop has 4 slots).
		 * Without it nothing would expire idle connections: then none are kept */
		pw->no_idle = zh__worker_tick_add(pw->w, zh__proxies_tick, (void *)p->srv) < 0;
	}
	return pw;
}

static void handler(zh_request_t *req, zh_response_t *resp, void *arg)
{
	zh_proxy_t *p = arg;
	ex_t *ex = zh_resp_state(resp);
	unsigned m = zh_req_method_bit(req);
	int r;
	memset(ex, 0, sizeof *ex);
	zh_timer_init(&ex->timer);
	ex->pw = worker_state(p, req);
	ex->req = req;
	ex->head_req = m == ZH_HEAD;
	/* RFC 9110 §9.2.2; a method we do not know is not assumed idempotent */
	ex->idempotent = (m & (ZH_GET | ZH_HEAD | ZH_PUT | ZH_DELETE | ZH_OPTIONS | ZH_TRACE)) != 0;
	ex->started_us = zh__now_us();
	{
		/* only the protocols the proxy tunnels (never h2c: its requests would pass by
		 * every check made here), and only where tunnels can be timed and closed */
		zh_slice_t offered;
		ex->upgrade = !ex->pw->no_idle && zh_req_upgrade(req, &offered) == 1 &&
			      zh__proxy_upgrade_allowed(p, offered);
	}
	if (zh_body_all(req, &ex->body) < 0)
		ex->body = (zh_slice_t){NULL, 0};
	ex->active = true;
	r = attempt(ex, req);
	if (r > 0) {
		answer_status(resp, r, ex->retry_s);
		return;
	}
	if (zh_resp_defer(resp, &ex->token) < 0)
		answer_status(resp, 502, 0); /* not reached: a handler may always defer */
}

/* The route middleware: its slot points at the exchange (zh_resp_state, which the done
 * hook may still read), so that a request that ends any way lets its connection go. */
static int mw_before(zh_request_t *req, zh_response_t *resp, void *arg)
{
	ex_t *ex = zh_resp_state(resp);
	(void)arg;
	ex->active = false; /* until the handler runs */
	*zh_mw_slot(req) = ex;
	return ZH_MW_NEXT;
}

static void mw_done(zh_request_t *req, zh_response_t *resp, void *arg)
{
	ex_t *ex = *zh_mw_slot(req);
	uconn_t *uc;
	(void)resp, (void)arg;
	if (ex == NULL || !ex->active)
		return;
	ex->active = false;
	if ((uc = ex->uc) == NULL)
		return;
	ex->uc = NULL;
	ex->pw->ups[uc->up].outstanding--;
	uc->ex = NULL;
	if (uc->state == UC_DONE)
		uc_settle(uc); /* to the pool once the client has taken its bytes */
	else
		zh__uc_close(uc); /* the client went away mid-exchange: the framing is lost */
}

int zh_proxy_route(zh_server_t *srv, const char *pattern, zh_proxy_t *p)
{
	zh_middleware_t mw = {.before = mw_before, .done = mw_done, .arg = p};
	int r;
	if (srv == NULL || pattern == NULL || p == NULL || p->srv != srv)
		return -EINVAL;
	r = zh_server_route(srv, ZH_METHOD_ANY, pattern, ZH_ROUTE_PREFIX, handler, p);
	if (r == 0 && (r = zh_route_use(srv, pattern, &mw)) == 0 && p->name[0] == '\0') {
		/* the label: a pattern has no '"', '\\' or newline to escape; cut if long */
		size_t n = strlen(pattern) < sizeof p->name ? strlen(pattern) : sizeof p->name - 1;
		memcpy(p->name, pattern, n);
		p->name[n] = '\0';
	}
	return r;
}

