/* upstream.c — the reverse proxy (zh_proxy_*): per-worker keep-alive pools of upstream
 * connections, balancing, nonblocking connects driven by the worker's own epoll loop, the
 * exchange (a deferred response) and its timeouts, the streamed body, metrics.
 *
 * One proxied request, on the client connection's worker:
 *   handler    picks an upstream, takes an idle pooled connection (or starts a
 *              nonblocking connect), writes the request head (upstream_parse.c) into the
 *              connection's buffer, sends it with the body bytes that came with it in one
 *              sendmsg when it can, and defers the response (zh_resp_defer) under a worker
 *              timer (connect, then header timeout);
 *   pump       the rest of the request body (a streaming route), client to upstream
 *              (upstream_request.c), waiting on whichever side is slower: the client
 *              (zh_body_wait) or the upstream socket (deferred until it takes more). An
 *              upstream that answers first ends the sending;
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
	zh__uc_pipe_close(uc);
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
			zh__uc_pipe_close(uc);
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
		zh__uc_pipe_close(uc);
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

/* ---- the exchange: errors -------------------------------------------------------------------- */

static void answer_status(zh_response_t *resp, int status, unsigned retry_s)
{
	char ra[12];
	static const char *const text[] = {"502 Bad Gateway\n", "503 Service Unavailable\n",
					   "504 Gateway Timeout\n", "413 Content Too Large\n"};
	const char *t = text[status == 503 ? 1 : status == 504 ? 2 : status == 413 ? 3 : 0];
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
static void go_on(ex_t *ex, zh_request_t *req, zh_response_t *resp);

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
	ex->status = (uint16_t)(status == 502 && zh__all_down(ex->pw) ? 503 : status);
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
	else
		go_on(ex, req, resp);
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

/* The head and the body bytes that came with it have left: the rest of the body, or the
 * response head, comes next. */
static void head_sent(ex_t *ex, uconn_t *uc)
{
	zh__body_take(ex->req, ex->body.len);
	uc->state = ex->req_more ? UC_REQ_BODY : UC_HEAD;
}

/* Picks an upstream and starts the exchange on it: 0 (waiting for events), or the status to
 * answer now. Called by the handler and by retries. */
static int attempt(ex_t *ex, zh_request_t *req)
{
	pw_t *pw = ex->pw;
	zh_proxy_t *p = pw->p;
	for (;;) {
		unsigned retry_s = 1;
		int i = zh__pick(ex, &retry_s), err = 0;
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
			return zh__all_down(pw) ? 503 : 502;
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
		zh__client_text(req, client, &x.client_v6);
		x.client = client;
		x.chunked = ex->req_chunked;
		x.body_len = ex->req_chunked ? 0 : (uint64_t)zh_body_length(req);
		x.has_body = x.body_len > 0 || (zh_req_method_bit(req) &
						(ZH_POST | ZH_PUT | ZH_PATCH));
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
			int r = zh__ureq_send(ex, uc);
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
				head_sent(ex, uc);
		}
		if (uc->state == UC_REQ_BODY)
			return 0; /* go_on() streams the rest */
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
	bool skip[ZH__UP_FIELDS_MAX];
	for (uint32_t i = 0; i < h->nfields && !conn; i++)
		conn = h->f[i].nlen == 10 && zh__ieq(b + h->f[i].noff, "connection", 10);
	for (uint32_t i = 0; i < h->nfields; i++) {
		const zh__ufield_t *f = &h->f[i];
		const char *nm = b + f->noff;
		skip[i] = zh__uhop_by_hop(nm, f->nlen) ||
			  (conn && listed_in_connection(b, h, nm, f->nlen)) ||
			  (f->nlen == 14 && zh__ieq(nm, "content-length", 14)) ||
			  (f->nlen == 4 && zh__ieq(nm, "date", 4));
		if (!skip[i]) {
			n++;
			bytes += f->nlen + f->vlen + 4u;
		}
	}
	/* room left for the library's Retry-After/Content-Type-like additions: 2 fields */
	if (n > 28 || bytes > 3800)
		return false;
	/* the parser checked names and values as the library would (zh__resp_header_addn) */
	for (uint32_t i = 0; i < h->nfields; i++)
		if (!skip[i] && zh__resp_header_addn(resp, b + h->f[i].noff, h->f[i].nlen,
						     b + h->f[i].voff, h->f[i].vlen) < 0)
			return false;
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
	uc->reusable = h->keep_alive && !ex->req_cut;
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
	    zh__resp_pipe_ok(resp) && zh__uc_pipe_ready(uc))
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
 * refused: the bytes after it are not HTTP. Returns 1 when the head is whole (pw->head),
 * 0 when more is needed, -1 (counted) when the upstream failed or sent a bad head. */
static int head_in(ex_t *ex, uconn_t *uc)
{
	pw_t *pw = ex->pw;
	for (;;) {
		ssize_t n = recv(uc->fd, uc->buf + uc->len, ZH__UP_BUF - uc->len, 0);
		int r;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return 0;
		if (n <= 0) {
			CNT(pw->ups[uc->up].bad_responses);
			return -1;
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
			return -1;
		}
		if (r > 0)
			return 1;
	}
}

/* How the upstream has begun to answer, without taking its bytes: the status class (1 to 5)
 * of the head at buf[hoff..len), or else of the socket's next bytes (MSG_PEEK); 5 for a
 * closed or reset socket or a line that is no status line, 0 when not known yet. */
static int answer_class(const ex_t *ex, uconn_t *uc)
{
	char peek[12];
	const char *p = uc->buf + ex->hoff;
	ssize_t n = uc->len - ex->hoff;
	if (n == 0) {
		p = peek;
		n = recv(uc->fd, peek, sizeof peek, MSG_PEEK | MSG_DONTWAIT);
		if (n < 0)
			return errno == EAGAIN || errno == EINTR ? 0 : 5;
		if (n == 0)
			return 5;
	}
	if (n < 10)
		return 0;
	return memcmp(p, "HTTP/1.", 7) == 0 && p[9] >= '1' && p[9] <= '5' ? p[9] - '0' : 5;
}

/* head_in from the loop (the upstream socket's event): the deferred response resumes. */
static void read_head(ex_t *ex, uconn_t *uc)
{
	int r = head_in(ex, uc);
	if (r < 0) {
		fail_async(ex, 502, false);
	} else if (r > 0) {
		zh_timer_cancel(&ex->timer);
		zh__deferred_resume_now(&ex->token, deliver, ex);
	}
}

/* ---- the rest of the request body (from the handler or a continuation) ---------------------- */

static void pump_on(zh_request_t *req, zh_response_t *resp, void *arg);

static void answer_now(ex_t *ex, zh_response_t *resp, int status)
{
	zh_timer_cancel(&ex->timer);
	answer_status(resp, status, 0); /* the done hook closes the connection: not UC_DONE */
}

/* h: what head_in said (0 when not asked). Waits for the response head, or delivers it. */
static void head_now(ex_t *ex, zh_request_t *req, zh_response_t *resp, int h)
{
	uconn_t *uc = ex->uc;
	uc->state = UC_HEAD;
	ex->up_in = false;
	if (ex->head_ready) /* kept while the body went: pw->head is every exchange's scratch */
		h = zh__uresp_parse(uc->buf + ex->hoff, uc->len - ex->hoff, ex->head_req,
				    &ex->pw->head) > 0 ? 1 : -1;
	if (h < 0) {
		answer_now(ex, resp, 502);
	} else if (h > 0) {
		zh_timer_cancel(&ex->timer);
		deliver(req, resp, ex);
	} else if (zh_timer_start(req, &ex->timer, ex->pw->p->o.header_timeout_ms, on_timer,
				  ex) < 0 ||
		   zh_resp_defer(resp, &ex->token) < 0) {
		answer_now(ex, resp, 502);
	}
}

/* The upstream answered (or failed) while body bytes were still to send: nothing more is
 * sent, the connection is not reused, and the client's closes after the response (the
 * rest of its body is never read). The buffer is the head's from now on. */
static void cut_body(ex_t *ex, zh_request_t *req, zh_response_t *resp)
{
	ex->req_cut = true;
	zh__ureq_body_stop(ex, ex->uc);
	head_now(ex, req, resp, ex->head_ready ? 1 : head_in(ex, ex->uc));
}

/* The upstream said something while the body was going and nothing of the body is in the
 * buffer: read it. A refusal (4xx, 5xx) or a failure ends the sending (true, the exchange
 * is answered or waits for the rest of that head); any other final head is kept until the
 * body has all gone (an upstream may answer 200 first and read on); interim heads are
 * dropped; the start of a head waits for its rest behind the body bytes. */
static bool answered_early(ex_t *ex, zh_request_t *req, zh_response_t *resp)
{
	uconn_t *uc = ex->uc;
	int h;
	ex->up_in = false;
	if (ex->head_ready)
		return false; /* its body waits in the socket until ours has gone */
	h = head_in(ex, uc);
	if (h < 0 || (h > 0 && ex->pw->head.status >= 400) ||
	    (h == 0 && uc->len > ex->hoff && answer_class(ex, uc) >= 4)) {
		ex->req_cut = ex->req_more;
		zh__ureq_body_stop(ex, uc);
		head_now(ex, req, resp, h);
		return true;
	}
	ex->head_ready = h > 0;
	if (h == 0 && uc->len == ex->hoff)
		uc->len = ex->hoff = 0; /* nothing, or interim heads only */
	return false;
}

/* Moves body bytes from the client to the upstream until one of them has to be waited for:
 * the client (zh_body_wait), or the upstream socket (deferred until EPOLLOUT). */
static void pump(ex_t *ex, zh_request_t *req, zh_response_t *resp)
{
	uconn_t *uc = ex->uc;
	uint64_t max_body = zh__ext_server_config(ex->pw->p->srv)->max_body;
	for (;;) {
		int r = zh__ureq_body_flush(ex, uc);
		ssize_t n;
		if (r < 0 || (r == 0 && ex->up_in && answer_class(ex, uc) >= 4)) {
			cut_body(ex, req, resp); /* it stopped reading, or cannot */
			return;
		}
		if (r == 0) {
			ex->wait_out = true;
			if (zh_timer_start(req, &ex->timer, ex->pw->p->o.idle_timeout_ms, on_timer,
					   ex) < 0 ||
			    zh_resp_defer(resp, &ex->token) < 0)
				answer_now(ex, resp, 502);
			return;
		}
		if (ex->up_in && answered_early(ex, req, resp))
			return;
		if (!ex->req_more) {
			head_now(ex, req, resp, 0);
			return;
		}
		n = zh__ureq_body_fill(ex, uc, req, max_body);
		if (n == -EAGAIN) {
			zh_timer_cancel(&ex->timer); /* the client's body timeout runs instead */
			if (zh_body_wait(req, pump_on, ex) < 0)
				answer_now(ex, resp, 502);
			else
				zh__body_wait_token(req, &ex->token); /* an early answer wakes it */
			return;
		}
		if (n == -ENOBUFS) {
			cut_body(ex, req, resp); /* a head so long that no room is left */
			return;
		}
		if (n == -EMSGSIZE) {
			answer_now(ex, resp, 413); /* a chunked body past max_body */
			return;
		}
		if (n < 0) {
			zh_timer_cancel(&ex->timer); /* the library answers the client's failure */
			return;
		}
	}
}

/* The client sent more (zh_body_wait), or the upstream socket took what it had. */
static void pump_on(zh_request_t *req, zh_response_t *resp, void *arg)
{
	ex_t *ex = arg;
	if (req != NULL && ex->uc != NULL)
		pump(ex, req, resp);
}

/* After attempt() returned 0, in a handler or continuation: the body streams on, or the
 * response waits (deferred) for the connect, the send or the head. */
static void go_on(ex_t *ex, zh_request_t *req, zh_response_t *resp)
{
	if (ex->uc->state == UC_REQ_BODY)
		pump(ex, req, resp);
	else if (zh_resp_defer(resp, &ex->token) < 0)
		answer_status(resp, 502, 0);
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
		int r = zh__ureq_send(ex, uc);
		if (r < 0) {
			fail_async(ex, 502, uc->sent == 0);
			return;
		}
		if (r == 0) {
			/* full: an upstream that refuses (4xx/5xx) may have stopped reading */
			if (!(events & EPOLLIN))
				return;
			ex->up_in = true;
			if (answer_class(ex, uc) >= 4) {
				ex->req_cut = true;
				ex->req_more = false;
				uc->state = UC_HEAD;
				read_head(ex, uc);
			}
			return;
		}
		head_sent(ex, uc);
		ex->up_in = ex->up_in || (events & EPOLLIN);
		if (uc->state == UC_REQ_BODY) {
			zh_timer_cancel(&ex->timer);
			zh__deferred_resume_now(&ex->token, pump_on, ex);
			return;
		}
		if (zh_timer_start(ex->req, &ex->timer, ex->pw->p->o.header_timeout_ms, on_timer,
				   ex) < 0) {
			fail_async(ex, 502, false);
			return;
		}
		if (ex->up_in) /* an early answer (a 413, say) may be waiting already */
			read_head(ex, uc);
		return;
	}
	case UC_REQ_BODY:
		if (events & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP))
			ex->up_in = true; /* an early answer, or the end: the pump looks */
		if (ex->wait_out) {
			ex->wait_out = false;
			zh_timer_cancel(&ex->timer);
			zh__deferred_resume_now(&ex->token, pump_on, ex);
		} else if (ex->up_in) {
			zh__body_wake(&ex->token); /* the client's bytes are waited for */
		}
		return;
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
	int64_t len;
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
	len = zh_body_length(req);
	if (len > 0 && (uint64_t)len > zh__ext_server_config(p->srv)->max_body) {
		answer_status(resp, 413, 0); /* before a byte is read or sent: RFC 9110 §15.5.14 */
		return;
	}
	ex->body = zh__body_peek(req); /* what came with the head goes with it */
	ex->req_chunked = len < 0;
	ex->req_more = len < 0 || (uint64_t)len > ex->body.len;
	ex->active = true;
	r = attempt(ex, req);
	if (r > 0)
		answer_status(resp, r, ex->retry_s);
	else
		go_on(ex, req, resp);
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
	r = zh_server_route(srv, ZH_METHOD_ANY, pattern, ZH_ROUTE_PREFIX | ZH_ROUTE_STREAM_BODY,
			    handler, p);
	if (r == 0 && (r = zh_route_use(srv, pattern, &mw)) == 0 && p->name[0] == '\0') {
		/* the label: a pattern has no '"', '\\' or newline to escape; cut if long */
		size_t n = strlen(pattern) < sizeof p->name ? strlen(pattern) : sizeof p->name - 1;
		memcpy(p->name, pattern, n);
		p->name[n] = '\0';
	}
	return r;
}

