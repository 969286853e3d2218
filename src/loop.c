/* loop.c — one worker: its epoll loop, accepting, timers and draining (the io_uring loop
 * is loop_uring.c; both share the turn's second half, zh__worker_after_events).
 *
 * Timers: one FIFO list per kind (header, idle, body, write, linger). All deadlines of a
 * kind are "now + that kind's duration", so appending keeps a list sorted; arming,
 * re-arming and cancelling are O(1) pointer moves, and the only syscall timers cost is the
 * epoll_wait timeout computed from the five list heads. The clock is CLOCK_MONOTONIC_COARSE
 * (vDSO, no syscall), read once per wake-up.
 */
#include "internal.h"

#include <stdatomic.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

enum { MAX_EVENTS = 256, ACCEPT_BATCH = 64, ACCEPT_BACKOFF_MS = 100 };

uint64_t zh__now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t zh__now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts); /* vDSO: no syscall */
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void unlink_timer(zh__worker_t *w, zh__conn_t *c)
{
	zh__tlist_t *l = &w->timers[c->timer];
	if (c->tprev)
		c->tprev->tnext = c->tnext;
	else
		l->head = c->tnext;
	if (c->tnext)
		c->tnext->tprev = c->tprev;
	else
		l->tail = c->tprev;
	c->tnext = c->tprev = NULL;
	c->timer = ZH__T_NONE;
}

void zh__timer_clear(zh__worker_t *w, zh__conn_t *c)
{
	if (c->timer != ZH__T_NONE)
		unlink_timer(w, c);
}

void zh__timer_set(zh__worker_t *w, zh__conn_t *c, enum zh__timer_kind kind)
{
	zh__tlist_t *l = &w->timers[kind];
	zh__timer_clear(w, c);
	c->timer = (uint8_t)kind;
	c->deadline_ms = w->now_ms + l->duration_ms;
	c->tnext = NULL;
	c->tprev = l->tail;
	if (l->tail)
		l->tail->tnext = c;
	else
		l->head = c;
	l->tail = c;
}

static void expire_timers(zh__worker_t *w)
{
	for (unsigned k = 1; k < ZH__T_KINDS; k++) {
		zh__conn_t *c;
		while ((c = w->timers[k].head) != NULL && c->deadline_ms <= w->now_ms)
			zh__conn_timeout(w, c);
	}
}

static int next_timeout_ms(const zh__worker_t *w)
{
	uint64_t next = w->now_ms + 1000;
	int ms, app;
	for (unsigned k = 1; k < ZH__T_KINDS; k++)
		if (w->timers[k].head && w->timers[k].head->deadline_ms < next)
			next = w->timers[k].head->deadline_ms;
	if (w->accept_resume_ms && w->accept_resume_ms < next)
		next = w->accept_resume_ms;
	if (w->draining && w->drain_deadline_ms < next)
		next = w->drain_deadline_ms;
	if (w->drain_idle_close_ms && w->drain_idle_close_ms < next)
		next = w->drain_idle_close_ms;
	if (w->tick_due_ms && w->tick_due_ms < next)
		next = w->tick_due_ms;
	if (w->nyielded)
		return 0; /* producers are waiting for their next turn */
	ms = next > w->now_ms ? (int)(next - w->now_ms) : 0;
	if (w->theap && (app = zh__utimers_wait_ms(w)) < ms) /* application timers (timer.c) */
		ms = app;
	return ms;
}

/* Stops (on = false) or resumes watching the listeners. Removed and added again rather than
 * modified: an inherited socket is watched with EPOLLEXCLUSIVE, which EPOLL_CTL_MOD refuses. */
static bool listener_events(zh__worker_t *w, bool on)
{
	bool done = true;
	for (unsigned i = 0; i < w->srv->nlisteners; i++)
		if (w->lfd[i] >= 0 && zh__listener_watch(w, i, on) < 0)
			done = false;
	return done;
}

/* The listener an event names: &w->lfd[i] is its epoll data. -1 for anything else. */
static int listener_of(const zh__worker_t *w, const void *p)
{
	uintptr_t q = (uintptr_t)p, first = (uintptr_t)w->lfd;
	if (q >= first && q < first + w->srv->nlisteners * sizeof w->lfd[0])
		return (int)((q - first) / sizeof w->lfd[0]);
	return -1;
}

/* Measured (1 MiB files, 16 connections, loopback): with a 256 KiB send buffer a response
 * costs ~80 us of server CPU instead of 190-400 us under autotuning, which lets each
 * socket queue megabytes that leave the cache before the peer copies them (1 and 2 MiB
 * buffers do not help). On a real network a capped buffer would cap throughput at
 * sndbuf/RTT, so only loopback peers get it. Huge transfers raise it: see zh_send_file(). */
static bool is_loopback(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
	if (ss->ss_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
		return IN6_IS_ADDR_LOOPBACK(a) ||
		       (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
	}
	return false;
}

static void accept_batch(zh__worker_t *w, unsigned li)
{
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		struct sockaddr_storage peer;
		socklen_t plen = sizeof peer;
		int fd = accept4(w->lfd[li], (struct sockaddr *)&peer, &plen,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			bool loopback = w->srv->cfg.loopback_sndbuf && is_loopback(&peer);
			if (loopback) {
				int sb = (int)w->srv->cfg.loopback_sndbuf;
				setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sb, sizeof sb);
			}
			zh__conn_accepted(w, fd, loopback, &peer, &w->srv->listeners[li]);
			continue;
		}
		if (errno == EINTR || errno == ECONNABORTED)
			continue;
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
			/* Out of descriptors: stop listening for a moment instead of spinning on a
			 * level-triggered listener; existing connections keep being served. */
			(void)listener_events(w, false); /* if not: EMFILE again, and again here */
			w->accept_resume_ms = w->now_ms + ACCEPT_BACKOFF_MS;
			ZH__STAT_ADD(w, connections_refused, 1);
		}
		return;
	}
}

static zh__conn_t *conn_at(zh__worker_t *w, uint32_t i)
{
	return (zh__conn_t *)(void *)(w->conn_pool.base + (size_t)i * w->conn_pool.obj_size);
}

/* eventfd(2) counters as wake-ups, both nonblocking and ours alone. write fails only with
 * EAGAIN, when the counter is at its maximum (2^64 - 2): it is then far from 0, so the
 * worker wakes anyway. read fails only with EAGAIN, when the count is already 0: an
 * earlier read took it and the wake-up it stood for is being handled. Both are benign.
 * Anything else (EBADF, EINVAL) means the descriptor is not our eventfd any more, a use
 * after zh_server_free() or memory corruption: a lost stop would hang zh_server_run() and
 * an unreadable level-triggered eventfd would spin its worker, so that is fatal. */
void zh__eventfd_signal(int fd)
{
	int saved = errno; /* zh_server_stop() may run in a signal handler */
	uint64_t one = 1;
	if (write(fd, &one, sizeof one) != (ssize_t)sizeof one && errno != EAGAIN)
		abort();
	errno = saved;
}

void zh__eventfd_consume(int fd)
{
	uint64_t v;
	if (read(fd, &v, sizeof v) != (ssize_t)sizeof v && errno != EAGAIN)
		abort();
}

/* Draining: idle connections close (zh__conn_drain answers a request already waiting). */
static void close_idle(zh__worker_t *w)
{
	w->drain_idle_close_ms = 0;
	for (uint32_t i = 0; i < w->conn_pool.carved; i++) {
		zh__conn_t *c = conn_at(w, i);
		if (c->state == ZH__C_IDLE && c->ctx == NULL)
			zh__conn_drain(w, c);
	}
}

static void begin_drain(zh__worker_t *w)
{
	zh__eventfd_consume(w->stopfd);
	if (w->draining)
		return;
	w->draining = true;
	w->drain_deadline_ms = w->now_ms + w->srv->cfg.drain_timeout_ms;
	ZH__STAT_ADD(w, drain_connections, w->open_conns);
	/* Stop accepting. Removed from the epoll set first: an inherited socket's duplicate
	 * leaves it only when the last descriptor of the socket closes, which is not ours. */
	(void)listener_events(w, false); /* fails only for a socket already out of the set */
	for (unsigned i = 0; i < w->srv->nlisteners; i++) {
		if (w->lfd[i] >= 0) {
			close(w->lfd[i]);
			w->lfd[i] = -1;
		}
	}
	/* HTTP/2 sessions get GOAWAY now (a grace for idle ones is HTTP/1.1's: a client's
	 * next request on an h2 connection is refused by the GOAWAY either way) */
	for (uint32_t i = 0; i < w->conn_pool.carved; i++) {
		zh__conn_t *c = conn_at(w, i);
		if (c->state == ZH__C_ACTIVE && c->proto != 0 && zh__protos[c->proto]->conn_drain)
			zh__conn_drain(w, c); /* HTTP/2: GOAWAY, then close once its streams end */
	}
	if (w->srv->idle_grace_ms) /* zh_server_stop_gently: idle ones wait for a request */
		w->drain_idle_close_ms = w->now_ms + w->srv->idle_grace_ms;
	else
		close_idle(w);
}

/* ---- deferred responses: resumptions from any thread ---------------------------------------- */

int zh_deferred_resume(const zh_deferred_t *token, zh_body_fn fn, void *arg)
{
	zh__worker_t *w = token ? token->worker : NULL;
	bool wake;
	if (w == NULL || fn == NULL)
		return -EINVAL;
	pthread_mutex_lock(&w->inbox_lock);
	if (w->exited || w->inbox_n == ZH__INBOX_CAP) {
		int r = w->exited ? -ESHUTDOWN : -EAGAIN;
		pthread_mutex_unlock(&w->inbox_lock);
		return r;
	}
	w->inbox[w->inbox_n++] = (struct zh__resumption){token->conn, token->gen, fn, arg};
	wake = w->inbox_n == 1; /* later ones ride on the same wake-up */
	pthread_mutex_unlock(&w->inbox_lock);
	if (wake)
		zh__eventfd_signal(w->wakefd);
	return 0;
}

/* Runs the waiting resumptions. They are copied out first: a resumed handler may itself
 * call zh_deferred_resume(), which must not deadlock or grow this batch. */
static void run_inbox(zh__worker_t *w)
{
	uint32_t n;
	zh__eventfd_consume(w->wakefd);
	atomic_store_explicit(&w->ping_ack, atomic_load_explicit(&w->ping_req, memory_order_relaxed),
			      memory_order_release);
	pthread_mutex_lock(&w->inbox_lock);
	n = w->inbox_n;
	memcpy(w->inbox_run, w->inbox, n * sizeof w->inbox[0]);
	w->inbox_n = 0;
	pthread_mutex_unlock(&w->inbox_lock);
	for (uint32_t i = 0; i < n; i++)
		zh__conn_resumption(w, &w->inbox_run[i]);
}

/* Producers that gave their turn up get the next one, after this round's events. */
static void run_yielded(zh__worker_t *w)
{
	uint32_t n = w->nyielded;
	memcpy(w->yielded_run, w->yielded, n * sizeof w->yielded[0]);
	w->nyielded = 0;
	for (uint32_t i = 0; i < n; i++)
		zh__conn_continue(w, w->yielded_run[i]);
}

static void force_close_all(zh__worker_t *w)
{
	if (!w->drain_forced)
		ZH__STAT_ADD(w, drain_force_closed, w->open_conns);
	w->drain_forced = true;
	for (uint32_t i = 0; i < w->conn_pool.carved; i++) {
		zh__conn_t *c = conn_at(w, i);
		if (c->state != ZH__C_FREE)
			zh__conn_close(w, c);
	}
}

/* ---- foreign descriptors (ext.h): tagged with the low bit of the epoll data pointer, which
 * a connection slot (8-byte aligned) never has ---------------------------------------------- */

int zh__watch_add(zh__worker_t *w, int fd, zh__watch_t *x)
{
	/* on io_uring too: its loop polls the epoll set, which then holds only watches
	 * (zh__watch_drain) */
	struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
				 .data.ptr = (void *)((uintptr_t)x | 1)};
	return epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

static void zh__watch_event(zh__worker_t *w, void *p, uint32_t events)
{
	zh__watch_t *x = (zh__watch_t *)((uintptr_t)p & ~(uintptr_t)1);
	x->fn(w, x, events);
}

void zh__watch_drain(zh__worker_t *w)
{
	struct epoll_event events[MAX_EVENTS];
	int n;
	do {
		n = zh__sys_epoll_wait(w->ep, events, MAX_EVENTS, 0);
		for (int i = 0; i < n; i++)
			if ((uintptr_t)events[i].data.ptr & 1) /* only watches are expected */
				zh__watch_event(w, events[i].data.ptr, events[i].events);
	} while (n == MAX_EVENTS);
}

/* ---- periodic hooks: buffered output (the access log) that must leave when traffic stops -- */

int zh__worker_tick_add(zh__worker_t *w, zh__tick_fn fn, void *arg)
{
	for (uint32_t i = 0; i < w->nticks; i++)
		if (w->ticks[i].fn == fn && w->ticks[i].arg == arg)
			return 0;
	if (w->nticks == ZH__TICKS_MAX)
		return -ENOSPC;
	w->ticks[w->nticks++] = (struct zh__tick){fn, arg};
	return 0;
}

/* One indirect call per hook per round: a hook only compares a deadline with now_ms. */
static void run_ticks(zh__worker_t *w, bool final)
{
	uint64_t due = 0;
	for (uint32_t i = 0; i < w->nticks; i++) {
		uint64_t d = w->ticks[i].fn(w, final, w->ticks[i].arg);
		if (d && (due == 0 || d < due))
			due = d;
	}
	w->tick_due_ms = due;
}

/* The worker running on this thread, for zh_note_alloc(). */
static _Thread_local zh__worker_t *self;

zh__worker_t *zh__worker_self(void) { return self; }

void zh_note_alloc(void)
{
	if (self)
		ZH__STAT_ADD(self, heap_allocs, 1);
}

/* ---- the parts of a loop turn that do not depend on the backend (epoll here, io_uring in
 * loop_uring.c) ------------------------------------------------------------------------------ */

int zh__worker_timeout_ms(const zh__worker_t *w)
{
	return next_timeout_ms(w);
}

void zh__worker_clock(zh__worker_t *w)
{
	time_t sec;
	w->now_ms = zh__now_ms();
	if ((sec = time(NULL)) != w->date_sec) /* once a second: no call otherwise */
		zh__date_refresh(w, sec);
}

void zh__worker_stop_event(zh__worker_t *w)
{
	begin_drain(w);
}

void zh__worker_wake_event(zh__worker_t *w)
{
	run_inbox(w);
}

/* After a round of events: timers, yielded producers, periodic hooks. Returns true when a
 * drain has finished and the loop must end. Closed slots are the caller's to reclaim. */
bool zh__worker_after_events(zh__worker_t *w)
{
	expire_timers(w);
	if (w->theap) /* application timers: NULL unless zh_timer_start armed one */
		zh__utimers_run(w);
	if (w->nyielded) /* nearly always 0: not even a call then */
		run_yielded(w);
	run_ticks(w, false);
	if (w->draining) {
		if (w->drain_idle_close_ms && w->now_ms >= w->drain_idle_close_ms)
			close_idle(w);
		if (w->now_ms >= w->drain_deadline_ms)
			force_close_all(w);
		if (w->open_conns == 0)
			return true;
	}
	return false;
}

static void epoll_loop(zh__worker_t *w)
{
	struct epoll_event events[MAX_EVENTS];
	for (;;) {
		int n = zh__sys_epoll_wait(w->ep, events, MAX_EVENTS, next_timeout_ms(w));
		zh__worker_clock(w);
		for (int i = 0; i < n; i++) {
			void *p = events[i].data.ptr;
			int li = listener_of(w, p);
			if (li >= 0)
				accept_batch(w, (unsigned)li);
			else if (p == &w->stopfd)
				begin_drain(w);
			else if (p == &w->wakefd)
				run_inbox(w);
			else if (ZH__UNLIKELY((uintptr_t)p & 1)) /* a zh__watch_t (ext.h) */
				zh__watch_event(w, p, events[i].events);
			else
				zh__conn_event(w, p, events[i].events);
		}
		if (zh__worker_after_events(w))
			break;
		/* only now: this batch's events may still name a slot closed in it */
		while (w->closed) {
			zh__conn_t *c = w->closed;
			w->closed = c->tnext;
			zh__pool_put(&w->conn_pool, c);
		}
		if (w->accept_resume_ms && w->now_ms >= w->accept_resume_ms) {
			w->accept_resume_ms = 0;
			if (!w->draining && !listener_events(w, true))
				w->accept_resume_ms = w->now_ms + ACCEPT_BACKOFF_MS; /* again */
		}
	}
}

void *zh__worker_main(void *arg)
{
	zh__worker_t *w = arg;

	self = w;
	w->now_ms = zh__now_ms();
	zh__date_refresh(w, time(NULL));
	/* io_uring when asked for and this worker's ring can be set up (zh_server_new probed
	 * it already, so a failure here is rare): epoll otherwise */
	if (w->srv->io != ZH_IO_URING || zh__uring_run(w) < 0)
		epoll_loop(w);
	/* resumptions still waiting get their one call: the connections are gone */
	pthread_mutex_lock(&w->inbox_lock);
	w->exited = true;
	pthread_mutex_unlock(&w->inbox_lock);
	run_inbox(w);
	run_ticks(w, true); /* last: whatever they buffered leaves before zh_server_run returns */
	return NULL;
}
