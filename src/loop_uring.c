/* loop_uring.c — the io_uring backend: one ring per worker, and the transport its
 * connections use (see "The io_uring backend" in docs/design.md).
 *
 * One io_uring_enter per loop turn both submits what the turn queued and waits. The
 * listener has one multishot accept; each connection one multishot recv that takes its
 * buffers from the worker's provided-buffer ring, so an idle connection holds no buffer.
 * The connection layer (conn.c) is unchanged: it still asks its transport to receive and
 * send, and this transport answers from completions:
 *  - recv copies from the connection's queue of filled ring buffers (a buffer goes back to
 *    the ring as soon as it is emptied) and says -EAGAIN when the queue is empty;
 *  - send queues one SEND or SENDMSG over the caller's iovecs (the output queue's entries,
 *    which conn.c leaves untouched until a send returns) and says -EAGAIN; when its
 *    completion arrives the connection is driven again, and the same call returns the
 *    byte count, so conn.c's partial-write bookkeeping is the epoll path's;
 *  - file bodies go by sendfile(2) as on epoll, with a POLL_ADD when the socket is full.
 * A connection closed with operations in flight is shut down (a send still waiting for room
 * then fails without reading its buffers), its operations are cancelled, and its slot goes
 * back to the pool only when the last completion has arrived.
 */
#include "internal.h"

#include <liburing.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

/* Under valgrind (make memcheck) a thread blocked in io_uring_enter keeps valgrind's one
 * lock (3.19 does not mark the call as blocking), so every other thread of the process
 * stops until the wait ends: each turn then only looks for completions, and naps in
 * nanosleep, which hands the lock over, when there are none (uring_wait). valgrind.h
 * comes with valgrind; a build without it runs the ordinary wait. */
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define ZH__UNDER_VALGRIND() (RUNNING_ON_VALGRIND != 0)
#endif
#endif
#ifndef ZH__UNDER_VALGRIND
#define ZH__UNDER_VALGRIND() false
#endif

enum {
	UR_ENTRIES = 1024,	/* submission queue; the completion queue is 4x */
	UR_BUF_SIZE = 2048,	/* one provided buffer: a request head, typically */
	UR_BUFS_DEFAULT = 512,	/* per worker (1 MiB) unless cfg.io_buffers says otherwise */
	UR_HOLD_MAX = 64 * 1024, /* bytes a connection may hold in ring buffers before its
				    receive is cancelled (backpressure: conn.c stops reading
				    while its output is blocked) */
	UR_BGID = 0,
	UR_ACCEPT_BACKOFF_MS = 100,
	UR_CTX_WAIT_MS = 100, /* see zh__uring_ctx_wait */
};

/* What a completion is for: the top byte of user_data; then the slot's generation and
 * index for connection operations. */
enum ur_op { OP_NONE, OP_ACCEPT, OP_RECV, OP_SEND, OP_POLLOUT, OP_STOP, OP_WAKE, OP_CANCEL,
	     OP_WATCH };

enum ur_flag {
	F_RECV = 1u << 0,    /* multishot recv armed */
	F_SEND = 1u << 1,    /* a send in flight */
	F_SDONE = 1u << 2,   /* its result waits in sres for the next send call */
	F_POLL = 1u << 3,    /* POLL_ADD (POLLOUT) in flight, for sendfile */
	F_EOF = 1u << 4,     /* the peer's FIN has been received */
	F_CLOSED = 1u << 5,  /* closed; completions still due */
	F_PARKED = 1u << 6,  /* closed, past the loop's reclaim: the last completion frees it */
	F_STARVED = 1u << 7, /* on the starved list: recv ended with ENOBUFS, re-armed later */
	F_CANCEL = 1u << 8,  /* its recv is being cancelled (backpressure) */
	F_SYNC = 1u << 9,    /* a handler blocks its worker for this send (ur_wants) */
	F_SHUTWR = 1u << 10, /* shutdown(SHUT_WR) once the send in flight has ended */
	F_RESEND = 1u << 11, /* the POLL_ADD in flight is for the send (it met a full socket) */
	F_MORE = 1u << 12,   /* the send in flight has MSG_MORE */
	F_CTXWAIT = 1u << 13, /* on the context wait list (zh__uring_ctx_wait) */
	F_WAITED = 1u << 14,  /* being retried from it: no second wait in that call */
	F_DETACH = 1u << 15,  /* handed over (ur_detach) once its receive has ended */
};

#define NOBUF 0xffffu

/* Per connection slot (56 bytes), in a parallel array indexed like the worker's conn pool;
 * mapped lazily, so slots never used cost nothing. With the 72-byte connection slot, an
 * idle connection costs 128 bytes. */
struct ur_slot {
	const struct iovec *siov; /* what the send in flight was given */
	int32_t sres;		  /* its result (F_SDONE) */
	int32_t rerr;		  /* recv's terminal error, reported once the queue is read */
	uint32_t qbytes;	  /* bytes waiting in the queue */
	uint32_t sprev, snext;	  /* starved list, index + 1 (0: none) */
	uint32_t wnext;		  /* context wait list, index + 1 */
	uint32_t wsince;	  /* when it began waiting (now_ms, low 32 bits) */
	uint16_t qhead, qtail, qoff; /* filled buffers, oldest first; read offset in qhead */
	uint16_t flags;
	uint16_t gen;
	uint16_t scnt; /* entries of the send in flight */
	uint8_t ops;   /* operations in flight */
};

struct zh__uring {
	struct io_uring ring;
	struct io_uring_buf_ring *br;
	char *bufs;		/* nbufs x UR_BUF_SIZE */
	uint16_t *bnext;	/* queue links, per buffer */
	uint32_t *blen;		/* bytes filled, per buffer */
	unsigned nbufs, held;	/* held: in connection queues, not in the ring */
	struct ur_slot *slots;
	struct msghdr msgs[UR_ENTRIES]; /* SENDMSG headers, by submission-queue entry */
	uint32_t starved_head, starved_tail;
	uint32_t whead, wtail; /* connections waiting for an I/O context */
	uint32_t sending;      /* sends in flight: contexts that come back without a read */
	uint64_t accept_armed; /* one bit per listener: its multishot accept is armed */
	bool stop_seen;
	char *map;
	size_t map_len, br_len;
};

static uint8_t tr_index; /* this transport's index in zh__transports */

/* ---- helpers ------------------------------------------------------------------------------ */

static uint32_t slot_index(const zh__worker_t *w, const zh__conn_t *c)
{
	return (uint32_t)(((const char *)c - w->conn_pool.base) / sizeof(zh__conn_t));
}

static zh__conn_t *slot_conn(const zh__worker_t *w, uint32_t i)
{
	return (zh__conn_t *)(void *)(w->conn_pool.base + (size_t)i * sizeof(zh__conn_t));
}

static uint64_t udata(enum ur_op op, uint16_t gen, uint32_t idx)
{
	return (uint64_t)op << 56 | (uint64_t)gen << 32 | idx;
}

/* A submission entry; a full queue is submitted first (no wait), which frees it. */
static struct io_uring_sqe *sqe_get(struct zh__uring *u)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
	if (sqe == NULL) {
		(void)io_uring_submit(&u->ring); /* failures show in the entries' completions */
		sqe = io_uring_get_sqe(&u->ring);
	}
	return sqe; /* not NULL: the queue was just emptied */
}

static void buf_recycle(struct zh__uring *u, uint16_t bid)
{
	io_uring_buf_ring_add(u->br, u->bufs + (size_t)bid * UR_BUF_SIZE, UR_BUF_SIZE, bid,
			      io_uring_buf_ring_mask(u->nbufs), 0);
	io_uring_buf_ring_advance(u->br, 1);
	u->held--;
}

static void queue_drop(struct zh__uring *u, struct ur_slot *s)
{
	while (s->qhead != NOBUF) {
		uint16_t b = s->qhead;
		s->qhead = u->bnext[b];
		buf_recycle(u, b);
	}
	s->qtail = NOBUF;
	s->qoff = 0;
	s->qbytes = 0;
}

static void cancel_op(struct zh__uring *u, enum ur_op op, const struct ur_slot *s, uint32_t i)
{
	struct io_uring_sqe *sqe = sqe_get(u);
	io_uring_prep_cancel64(sqe, udata(op, s->gen, i), 0);
	io_uring_sqe_set_data64(sqe, udata(OP_CANCEL, 0, 0));
}

static void arm_recv(struct zh__uring *u, struct ur_slot *s, uint32_t i, int fd)
{
	struct io_uring_sqe *sqe = sqe_get(u);
	io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = UR_BGID;
	io_uring_sqe_set_data64(sqe, udata(OP_RECV, s->gen, i));
	s->flags |= F_RECV;
	s->ops++;
}

static void starved_unlink(struct zh__uring *u, struct ur_slot *s)
{
	if (s->sprev)
		u->slots[s->sprev - 1].snext = s->snext;
	else
		u->starved_head = s->snext;
	if (s->snext)
		u->slots[s->snext - 1].sprev = s->sprev;
	else
		u->starved_tail = s->sprev;
	s->sprev = s->snext = 0;
	s->flags &= (uint16_t)~F_STARVED;
}

static void starved_push(struct zh__uring *u, struct ur_slot *s, uint32_t i)
{
	s->flags |= F_STARVED;
	s->snext = 0;
	s->sprev = u->starved_tail;
	if (u->starved_tail)
		u->slots[u->starved_tail - 1].snext = i + 1;
	else
		u->starved_head = i + 1;
	u->starved_tail = i + 1;
}

/* A receive may be armed again: nothing held (its bytes have been read), not at the end. */
static bool recv_rearmable(const struct ur_slot *s)
{
	return !(s->flags & (F_RECV | F_EOF | F_CLOSED | F_STARVED)) && s->rerr == 0 &&
	       s->qhead == NOBUF;
}

/* ---- the transport -------------------------------------------------------------------------- */

static ssize_t ur_copy(struct zh__uring *u, struct ur_slot *s, char *dst, size_t cap, bool take)
{
	size_t got = 0;
	uint16_t b = s->qhead;
	uint32_t off = s->qoff;
	while (b != NOBUF && got < cap) {
		size_t n = u->blen[b] - off;
		if (n > cap - got)
			n = cap - got;
		memcpy(dst + got, u->bufs + (size_t)b * UR_BUF_SIZE + off, n);
		got += n;
		off += (uint32_t)n;
		if (off == u->blen[b]) {
			uint16_t next = u->bnext[b];
			if (take) {
				buf_recycle(u, b);
				s->qhead = next;
			}
			b = next;
			off = 0;
		}
	}
	if (take) {
		s->qoff = (uint16_t)off;
		s->qbytes -= (uint32_t)got;
		if (s->qhead == NOBUF)
			s->qtail = NOBUF;
	}
	return (ssize_t)got;
}

/* The connection's queue, oldest bytes first (a receive cancelled by backpressure is armed
 * again once it is empty). */
static ssize_t read_queue(struct zh__uring *u, struct ur_slot *s, uint32_t i, int fd, void *buf,
			  size_t cap)
{
	ssize_t n;
	if (s->qhead == NOBUF)
		return s->rerr ? s->rerr : (s->flags & F_EOF) ? 0 : -EAGAIN;
	n = ur_copy(u, s, buf, cap, true);
	if (s->qhead == NOBUF && recv_rearmable(s))
		arm_recv(u, s, i, fd);
	return n;
}

static ssize_t ur_recv(zh__conn_t *c, void *buf, size_t cap)
{
	zh__worker_t *w = zh__worker_self();
	uint32_t i = slot_index(w, c);
	struct ur_slot *s = &w->uring->slots[i];
	ssize_t n = read_queue(w->uring, s, i, c->fd, buf, cap);
	if (n > 0 && s->qhead == NOBUF && !(s->flags & F_EOF) && s->rerr == 0)
		c->readable = false; /* drained: the next completion raises it again */
	return n;
}

/* The layer above (TLS) reads the queue as recv does, but leaves c->readable to itself:
 * only it knows whether it still holds input (OpenSSL may keep records). */
static ssize_t ur_read_raw(zh__conn_t *c, void *buf, size_t cap)
{
	zh__worker_t *w = zh__worker_self();
	uint32_t i = slot_index(w, c);
	return read_queue(w->uring, &w->uring->slots[i], i, c->fd, buf, cap);
}

static ssize_t ur_peek(zh__conn_t *c, void *buf, size_t cap)
{
	zh__worker_t *w = zh__worker_self();
	struct ur_slot *s = &w->uring->slots[slot_index(w, c)];
	if (s->qhead == NOBUF)
		return s->rerr ? s->rerr : (s->flags & F_EOF) ? 0 : -EAGAIN;
	return ur_copy(w->uring, s, buf, cap, false);
}

/* The completion of slot i's send, fetched out of turn: a handler that waits for the socket
 * (zh__resp_spill_wait) blocks its worker, and completions are only posted while the
 * worker is in io_uring_enter. Other completions stay queued for the loop; this one is
 * marked OP_NONE in place. Returns false if it has not arrived. */
static void submit_send(struct zh__uring *u, struct ur_slot *s, uint32_t i, int fd);

static bool reap_send(struct zh__uring *u, struct ur_slot *s, uint32_t i, int fd)
{
	uint64_t want = udata(OP_SEND, s->gen, i), poll = udata(OP_POLLOUT, s->gen, i);
	struct io_uring *r = &u->ring;
	unsigned head = *r->cq.khead, tail;
	if (io_uring_submit_and_get_events(r) < 0)
		return false;
	tail = io_uring_smp_load_acquire(r->cq.ktail);
	for (; head != tail; head++) {
		struct io_uring_cqe *cqe = &r->cq.cqes[head & *r->cq.kring_mask];
		if (cqe->user_data == poll && (s->flags & F_RESEND)) {
			/* room after a full socket (on_conn_op): the send goes again */
			cqe->user_data = udata(OP_NONE, 0, 0);
			s->flags &= (uint16_t)~(F_RESEND | F_POLL);
			s->ops--;
			submit_send(u, s, i, fd);
			continue;
		}
		if (cqe->user_data != want)
			continue;
		cqe->user_data = udata(OP_NONE, 0, 0);
		s->sres = cqe->res;
		s->flags = (uint16_t)((s->flags & ~F_SEND) | F_SDONE);
		s->ops--;
		u->sending--;
		return true;
	}
	return false;
}

/* The send of s->siov[0 .. scnt): one SEND for one entry, else one SENDMSG. */
static void submit_send(struct zh__uring *u, struct ur_slot *s, uint32_t i, int fd)
{
	struct io_uring_sqe *sqe = sqe_get(u);
	if (s->scnt == 1 && !(s->flags & F_MORE)) {
		io_uring_prep_send(sqe, fd, s->siov[0].iov_base, s->siov[0].iov_len, MSG_NOSIGNAL);
	} else {
		/* a SENDMSG's header must stay put until the kernel has consumed the entry
		 * (IORING_FEAT_SUBMIT_STABLE): one per submission-queue entry, not per slot */
		struct msghdr *msg = &u->msgs[sqe - u->ring.sq.sqes];
		memset(msg, 0, sizeof *msg);
		msg->msg_iov = (struct iovec *)(uintptr_t)s->siov;
		msg->msg_iovlen = s->scnt;
		io_uring_prep_sendmsg(sqe, fd, msg,
				      MSG_NOSIGNAL | (s->flags & F_MORE ? MSG_MORE : 0));
	}
	io_uring_sqe_set_data64(sqe, udata(OP_SEND, s->gen, i));
	s->flags |= F_SEND;
	s->ops++;
	u->sending++;
}

static void submit_pollout(struct zh__uring *u, struct ur_slot *s, uint32_t i, int fd)
{
	struct io_uring_sqe *sqe;
	if (s->flags & F_POLL)
		return; /* one armed poll serves the file and the send alike (F_RESEND) */
	sqe = sqe_get(u);
	io_uring_prep_poll_add(sqe, fd, POLLOUT);
	io_uring_sqe_set_data64(sqe, udata(OP_POLLOUT, s->gen, i));
	s->flags |= F_POLL;
	s->ops++;
}

static ssize_t ur_send(zh__conn_t *c, const struct iovec *iov, int cnt, bool more)
{
	zh__worker_t *w = zh__worker_self();
	struct zh__uring *u = w->uring;
	uint32_t i = slot_index(w, c);
	struct ur_slot *s = &u->slots[i];
	if (s->flags & F_SEND) {
		/* only a waiting handler looks out of turn; otherwise the loop delivers it */
		bool sync = s->flags & F_SYNC;
		s->flags &= (uint16_t)~F_SYNC;
		if (!sync || !reap_send(u, s, i, c->fd))
			return -EAGAIN;
	}
	if (s->flags & F_SDONE) {
		s->flags &= (uint16_t)~F_SDONE;
		/* conn.c calls again with the same entries: the queue does not move meanwhile */
		if (iov != s->siov)
			return -EIO;
		return s->sres;
	}
	s->siov = iov;
	s->scnt = (uint16_t)cnt;
	s->flags = (uint16_t)((s->flags & ~F_MORE) | (more ? F_MORE : 0));
	submit_send(u, s, i, c->fd);
	return -EAGAIN;
}

/* A synchronous write met a full socket: the poll whose completion drives c with EPOLLOUT
 * (submit_pollout arms at most one). */
static void wait_room(zh__conn_t *c)
{
	zh__worker_t *w = zh__worker_self();
	uint32_t i = slot_index(w, c);
	submit_pollout(w->uring, &w->uring->slots[i], i, c->fd);
}

/* Files by sendfile(2) and pipe entries (the reverse proxy's large bodies) by splice(2):
 * the plain socket's calls, synchronous, the ring's POLL_ADD waiting for room when the
 * socket is full (conn.c sends them only once what precedes them has been sent). */
static ssize_t ur_send_file(zh__conn_t *c, int fd, uint64_t *off, size_t len)
{
	ssize_t n = zh__transport_plain.send_file(c, fd, off, len);
	if (n == -EAGAIN)
		wait_room(c);
	return n;
}

/* A send may still be in flight (the canned 503 of conn.c goes just before a lingering
 * close): the FIN waits for it, or the send would fail. */
static int ur_shutdown(zh__conn_t *c)
{
	zh__worker_t *w = zh__worker_self();
	struct ur_slot *s = &w->uring->slots[slot_index(w, c)];
	if (s->flags & F_SEND) {
		s->flags |= F_SHUTWR;
		return 0;
	}
	return shutdown(c->fd, SHUT_WR) < 0 ? -errno : 0;
}

/* Off the context wait list (singly linked: a walk, on the rare close of a waiter). */
static void ctx_wait_unlink(struct zh__uring *u, uint32_t i)
{
	uint32_t *link = &u->whead, prev = 0;
	while (*link && *link != i + 1) {
		prev = *link;
		link = &u->slots[*link - 1].wnext;
	}
	if (*link == 0)
		return;
	*link = u->slots[i].wnext;
	if (u->wtail == i + 1)
		u->wtail = prev;
	u->slots[i].flags &= (uint16_t)~F_CTXWAIT;
}

/* conn.c has released the connection's memory (its context, the references it queued):
 * a send still in flight must not read it. shutdown(SHUT_RDWR) makes such a send fail
 * with EPIPE when it next tries (it waits for room, in the kernel's poll, until then: it
 * cannot be copying now, since the worker is here and not in io_uring_enter), and the
 * cancellations end the receive and any poll. */
static void ur_close(zh__conn_t *c)
{
	zh__worker_t *w = zh__worker_self();
	struct zh__uring *u = w->uring;
	uint32_t i = slot_index(w, c);
	struct ur_slot *s = &u->slots[i];
	if (s->flags & F_SEND)
		(void)shutdown(c->fd, SHUT_RDWR); /* ENOTCONN when the peer is gone: as good */
	if (s->flags & F_RECV)
		cancel_op(u, OP_RECV, s, i);
	if (s->flags & F_SEND)
		cancel_op(u, OP_SEND, s, i);
	if (s->flags & F_POLL)
		cancel_op(u, OP_POLLOUT, s, i);
	if (s->flags & F_STARVED)
		starved_unlink(u, s);
	if (s->flags & F_CTXWAIT)
		ctx_wait_unlink(u, i);
	queue_drop(u, s);
	s->flags = (uint16_t)((s->flags & (F_RECV | F_SEND | F_POLL)) | F_CLOSED);
	close(c->fd); /* the operations hold the file until they end */
}

/* The socket leaves the ring with the bytes it brought, once nothing is in flight: the
 * receive buffer's bytes after the request, then the queue's. They go to the upgrade
 * callback from the receive buffer when they fit after its bytes, else from a pooled buffer
 * of the smallest class that holds them (a client may send up to UR_HOLD_MAX and more
 * before its 101: on epoll those wait in the kernel). No buffer: the callback hears fd -1. */
static void detach_finish(zh__worker_t *w, struct zh__uring *u, struct ur_slot *s, uint32_t i)
{
	zh__conn_t *c = slot_conn(w, i);
	zh__ctx_t *ctx = c->ctx;
	zh__pool_t *classes[2] = {&w->large_pool, &w->body_pool};
	size_t had = ctx->rlen - ctx->rstart, all = had + s->qbytes;
	s->flags &= (uint16_t)~F_DETACH;
	if (s->flags & F_STARVED)
		starved_unlink(u, s);
	if (s->qbytes <= ctx->rcap - ctx->rlen) {
		ctx->rlen += (uint32_t)ur_copy(u, s, ctx->rbuf + ctx->rlen, s->qbytes, true);
		zh__conn_hand_over_now(w, c, ctx->rbuf + ctx->rstart, all);
		return;
	}
	for (unsigned k = 0; k < 2; k++) {
		char *big;
		if (all > classes[k]->obj_size || (big = zh__pool_get(classes[k])) == NULL)
			continue;
		memcpy(big, ctx->rbuf + ctx->rstart, had);
		(void)ur_copy(u, s, big + had, s->qbytes, true);
		zh__conn_hand_over_now(w, c, big, all); /* lent for the call only */
		zh__pool_put(classes[k], big);
		return;
	}
	queue_drop(u, s);
	ZH__STAT_ADD(w, pool_exhausted, 1);
	zh__conn_close(w, c); /* the upgrade callback hears fd -1 */
}

/* A protocol upgrade takes the socket (zh__conn_hand_over). The 101 has left, so nothing is
 * being sent; a receive still armed, and a POLLOUT left by a file or pipe body that met a
 * full socket, are cancelled, and the hand-over waits for their last completions (on_recv,
 * on_conn_op) so that no byte the receive takes is lost. */
static int ur_detach(zh__conn_t *c)
{
	zh__worker_t *w = zh__worker_self();
	struct zh__uring *u = w->uring;
	uint32_t i = slot_index(w, c);
	struct ur_slot *s = &u->slots[i];
	if (s->flags & (F_SEND | F_RESEND))
		return -EBUSY; /* not reached: the 101 has left whole */
	if (!(s->flags & (F_RECV | F_POLL))) {
		detach_finish(w, u, s, i);
		return 0;
	}
	s->flags |= F_DETACH;
	if ((s->flags & (F_RECV | F_CANCEL)) == F_RECV) {
		s->flags |= F_CANCEL;
		cancel_op(u, OP_RECV, s, i);
	}
	if (s->flags & F_POLL)
		cancel_op(u, OP_POLLOUT, s, i);
	return 0;
}

/* A completion of a slot being handed over: once none is in flight, the hand-over. */
static void detach_step(zh__worker_t *w, struct zh__uring *u, struct ur_slot *s, uint32_t i)
{
	if (!(s->flags & (F_RECV | F_POLL)))
		detach_finish(w, u, s, i);
}

/* Its writes are the plain socket's synchronous sends (the bytes are the kernel's when this
 * returns, and the layer's buffer is free), so such a connection never has a SEND in
 * flight; a full socket arms the poll whose completion drives the connection with EPOLLOUT. */
static ssize_t ur_write_raw(zh__conn_t *c, const void *buf, size_t len)
{
	ssize_t n = zh__transport_plain.write_raw(c, buf, len);
	if (n == -EAGAIN)
		wait_room(c);
	return n;
}

/* Asked only by a handler about to block its worker on the socket (zh__resp_spill_wait):
 * its next send call then fetches the completion itself (reap_send). */
static unsigned ur_wants(zh__conn_t *c, unsigned blocked)
{
	zh__worker_t *w = zh__worker_self();
	if (blocked & ZH__WANT_WRITE)
		w->uring->slots[slot_index(w, c)].flags |= F_SYNC;
	return blocked;
}

static const zh__transport_t transport_uring = {
	.name = "uring",
	.pipe_entries = true,
	.recv = ur_recv,
	.peek = ur_peek,
	.send = ur_send,
	.send_file = ur_send_file,
	.shutdown = ur_shutdown,
	.close = ur_close,
	.wants = ur_wants,
	.detach = ur_detach,
	.read_raw = ur_read_raw,
	.write_raw = ur_write_raw,
};

/* ---- completions ------------------------------------------------------------------------------ */

static bool is_loopback(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)(const void *)ss)->sin_addr.s_addr) >> 24) ==
		       127;
	if (ss->ss_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)(const void *)ss)->sin6_addr;
		return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
	}
	return false;
}

static void arm_accept(zh__worker_t *w, struct zh__uring *u, unsigned li)
{
	struct io_uring_sqe *sqe = sqe_get(u);
	io_uring_prep_multishot_accept(sqe, w->lfd[li], NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, udata(OP_ACCEPT, 0, li));
	u->accept_armed |= 1ull << li;
}

/* Every listener still open whose accept is not armed (at start, after a pause). */
static void arm_accepts(zh__worker_t *w, struct zh__uring *u)
{
	for (unsigned li = 0; li < w->srv->nlisteners; li++)
		if (w->lfd[li] >= 0 && !(u->accept_armed & (1ull << li)))
			arm_accept(w, u, li);
}

static void arm_poll(struct zh__uring *u, int fd, enum ur_op op)
{
	struct io_uring_sqe *sqe = sqe_get(u);
	io_uring_prep_poll_multishot(sqe, fd, POLLIN);
	io_uring_sqe_set_data64(sqe, udata(op, 0, 0));
}

/* A multishot accept gives no peer address per connection: getpeername asks. */
static void on_accept(zh__worker_t *w, struct zh__uring *u, const struct io_uring_cqe *cqe)
{
	unsigned li = (uint32_t)cqe->user_data;
	if (!(cqe->flags & IORING_CQE_F_MORE))
		u->accept_armed &= ~(1ull << li);
	if (cqe->res >= 0) {
		struct sockaddr_storage peer;
		socklen_t plen = sizeof peer;
		int fd = cqe->res;
		bool loopback;
		memset(&peer, 0, sizeof peer);
		/* ENOTCONN: reset before we got to it. The connection goes on, as epoll's
		 * accept4 would have returned it, with the address 0.0.0.0 (it can send no
		 * request: its first read fails), so it is counted (accepted, a failed
		 * handshake) the same on both backends. */
		if (getpeername(fd, (struct sockaddr *)&peer, &plen) < 0)
			peer.ss_family = AF_INET;
		loopback = w->srv->cfg.loopback_sndbuf && is_loopback(&peer);
		if (loopback) {
			int sb = (int)w->srv->cfg.loopback_sndbuf;
			setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sb, sizeof sb);
		}
		zh__conn_accepted(w, fd, loopback, &peer, &w->srv->listeners[li]);
	} else if (cqe->res == -EMFILE || cqe->res == -ENFILE || cqe->res == -ENOBUFS ||
		   cqe->res == -ENOMEM) {
		/* out of descriptors: pause accepting (the epoll loop does the same) */
		ZH__STAT_ADD(w, connections_refused, 1);
		if (!(u->accept_armed & (1ull << li)))
			w->accept_resume_ms = w->now_ms + UR_ACCEPT_BACKOFF_MS;
		return;
	}
	if (!(u->accept_armed & (1ull << li)) && !w->draining && w->lfd[li] >= 0 &&
	    cqe->res != -ECANCELED)
		arm_accept(w, u, li);
}

uint8_t zh__uring_conn_open(zh__worker_t *w, zh__conn_t *c)
{
	struct zh__uring *u = w->uring;
	uint32_t i = slot_index(w, c);
	struct ur_slot *s = &u->slots[i];
	uint16_t gen = (uint16_t)(s->gen + 1);
	memset(s, 0, sizeof *s);
	s->gen = gen;
	s->qhead = s->qtail = NOBUF;
	arm_recv(u, s, i, c->fd);
	return tr_index;
}

/* The last completion of a closed slot gives it back to the pool. */
static void op_done(zh__worker_t *w, struct ur_slot *s, uint32_t i)
{
	if (--s->ops == 0 && (s->flags & F_PARKED)) {
		s->flags = 0;
		zh__pool_put(&w->conn_pool, slot_conn(w, i));
	}
}

static void on_recv(zh__worker_t *w, struct zh__uring *u, struct ur_slot *s, uint32_t i,
		    const struct io_uring_cqe *cqe)
{
	zh__conn_t *c = slot_conn(w, i);
	bool more = cqe->flags & IORING_CQE_F_MORE;
	if (cqe->flags & IORING_CQE_F_BUFFER) {
		uint16_t b = (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
		u->held++;
		if (cqe->res <= 0 || (s->flags & F_CLOSED)) {
			buf_recycle(u, b);
		} else {
			u->blen[b] = (uint32_t)cqe->res;
			u->bnext[b] = NOBUF;
			if (s->qtail != NOBUF)
				u->bnext[s->qtail] = b;
			else
				s->qhead = b;
			s->qtail = b;
			s->qbytes += (uint32_t)cqe->res;
		}
	}
	if (!more) {
		s->flags &= (uint16_t)~(F_RECV | F_CANCEL);
		op_done(w, s, i);
	}
	if (s->flags & F_CLOSED)
		return;
	if (s->flags & F_DETACH) {
		detach_step(w, u, s, i); /* the socket and its bytes go once the receive has ended */
		return;
	}
	if (cqe->res == -ECANCELED) { /* the backpressure cancel (ur_recv re-arms) */
		if (recv_rearmable(s))
			arm_recv(u, s, i, c->fd); /* its queue was read before the cancel ended */
		return;
	}
	if (cqe->res == -ENOBUFS) {
		if (!more && !(s->flags & F_STARVED))
			starved_push(u, s, i); /* the ring was empty: armed again when buffers return */
		return;
	}
	if (cqe->res < 0) {
		/* a reset: as epoll's EPOLLERR, the connection closes whatever it waits for */
		s->rerr = cqe->res;
		zh__conn_event(w, c, EPOLLERR);
		return;
	}
	if (cqe->res == 0)
		s->flags |= F_EOF; /* else, if it ended (!more), ur_recv re-arms once it is read */
	if (s->qbytes > UR_HOLD_MAX && (s->flags & F_RECV) && !(s->flags & F_CANCEL)) {
		s->flags |= F_CANCEL; /* ur_recv arms it again once the queue is read */
		cancel_op(u, OP_RECV, s, i);
	}
	zh__conn_event(w, c, cqe->res == 0 ? EPOLLIN | EPOLLRDHUP : EPOLLIN);
}

static void on_conn_op(zh__worker_t *w, struct zh__uring *u, enum ur_op op,
		       const struct io_uring_cqe *cqe)
{
	uint32_t i = (uint32_t)cqe->user_data;
	struct ur_slot *s = &u->slots[i];
	if ((uint16_t)(cqe->user_data >> 32) != s->gen)
		return; /* cannot happen: a slot is reused only after its last completion */
	if (op == OP_RECV) {
		on_recv(w, u, s, i, cqe);
		return;
	}
	if (op == OP_SEND)
		u->sending--;
	if (op == OP_SEND && cqe->res == -EAGAIN && !(s->flags & F_CLOSED)) {
		/* The socket is nonblocking (sendfile needs that), and io_uring then answers a
		 * full socket with EAGAIN instead of waiting: wait for room, then send again */
		s->flags |= F_RESEND;
		submit_pollout(u, s, i, slot_conn(w, i)->fd);
		op_done(w, s, i);
		return;
	}
	if (op == OP_POLLOUT && (s->flags & F_RESEND)) {
		s->flags &= (uint16_t)~(F_RESEND | F_POLL);
		if (!(s->flags & F_CLOSED))
			submit_send(u, s, i, slot_conn(w, i)->fd);
		op_done(w, s, i);
		return;
	}
	if (op == OP_SEND) {
		s->sres = cqe->res;
		s->flags = (uint16_t)((s->flags & ~F_SEND) | F_SDONE);
		if ((s->flags & (F_SHUTWR | F_CLOSED)) == F_SHUTWR) {
			s->flags &= (uint16_t)~F_SHUTWR;
			(void)shutdown(slot_conn(w, i)->fd, SHUT_WR); /* as in linger_close */
		}
	} else {
		s->flags &= (uint16_t)~F_POLL;
	}
	op_done(w, s, i);
	if (s->flags & F_CLOSED)
		return;
	if (s->flags & F_DETACH)
		detach_step(w, u, s, i);
	else
		zh__conn_event(w, slot_conn(w, i), EPOLLOUT);
}

static void on_cqe(zh__worker_t *w, struct zh__uring *u, const struct io_uring_cqe *cqe)
{
	enum ur_op op = (enum ur_op)(cqe->user_data >> 56);
	switch (op) {
	case OP_ACCEPT:
		on_accept(w, u, cqe);
		break;
	case OP_RECV:
	case OP_SEND:
	case OP_POLLOUT:
		on_conn_op(w, u, op, cqe);
		break;
	case OP_STOP:
		u->stop_seen = true; /* after the batch: its requests are answered first */
		if (!(cqe->flags & IORING_CQE_F_MORE))
			arm_poll(u, w->stopfd, OP_STOP);
		break;
	case OP_WAKE:
		zh__worker_wake_event(w);
		if (!(cqe->flags & IORING_CQE_F_MORE))
			arm_poll(u, w->wakefd, OP_WAKE);
		break;
	case OP_WATCH: /* the reverse proxy's upstream sockets (ext.h zh__watch_add) */
		zh__watch_drain(w);
		if (!(cqe->flags & IORING_CQE_F_MORE))
			arm_poll(u, w->ep, OP_WATCH);
		break;
	case OP_NONE:
	case OP_CANCEL:
		break;
	}
}

/* ---- the turn's housekeeping -------------------------------------------------------------------- */

/* Slots closed in this turn: back to the pool now, or when their last completion comes. */
static void reclaim_closed(zh__worker_t *w, struct zh__uring *u)
{
	while (w->closed) {
		zh__conn_t *c = w->closed;
		struct ur_slot *s = &u->slots[slot_index(w, c)];
		w->closed = c->tnext;
		if (s->ops == 0) {
			s->flags = 0;
			zh__pool_put(&w->conn_pool, c);
		} else {
			s->flags |= F_PARKED;
		}
	}
}

/* Connections whose receive found the ring empty get it back, as many as there are free
 * buffers for; the others wait for the next turn. */
static void rearm_starved(zh__worker_t *w, struct zh__uring *u)
{
	unsigned room = u->nbufs - u->held;
	while (u->starved_head && room) {
		uint32_t i = u->starved_head - 1;
		struct ur_slot *s = &u->slots[i];
		starved_unlink(u, s);
		if (recv_rearmable(s)) {
			arm_recv(u, s, i, slot_conn(w, i)->fd);
			room--;
		}
	}
}

static void begin_stop(zh__worker_t *w, struct zh__uring *u)
{
	u->stop_seen = false;
	/* Closing a listener does not end an armed accept, which holds the socket: until the
	 * cancellation completes, new connections would queue and then be reset. shutdown stops
	 * the listening now (new ones are refused, as on epoll); not for an inherited socket,
	 * which goes on listening for the process it is handed to */
	for (unsigned li = 0; li < w->srv->nlisteners; li++) {
		if (w->lfd[li] >= 0 && w->srv->listeners[li].fd < 0)
			(void)shutdown(w->lfd[li], SHUT_RDWR); /* fails only if not listening */
		if (u->accept_armed & (1ull << li))
			cancel_op(u, OP_ACCEPT, &(struct ur_slot){.gen = 0}, li);
	}
	zh__worker_stop_event(w);
}

/* conn.c found no I/O context for c, which has bytes to read. On epoll that is a 503 at
 * once, and rightly: a context is held only while a response is being written, and epoll
 * writes it before the next connection is looked at. Here a response leaves a turn later,
 * when its send completes, so a burst of requests meets the contexts of the previous
 * burst's responses still held: while sends are in flight, c waits (its bytes stay in ring
 * buffers) and is driven again after the next turn's completions, for up to
 * UR_CTX_WAIT_MS; then, or when nothing is being sent, the 503 as on epoll. Returns true
 * when c waits. */
bool zh__uring_ctx_wait(zh__worker_t *w, zh__conn_t *c)
{
	struct zh__uring *u = w->uring;
	uint32_t i = slot_index(w, c);
	struct ur_slot *s = &u->slots[i];
	if (s->flags & (F_CTXWAIT | F_CLOSED))
		return s->flags & F_CTXWAIT;
	if (u->sending == 0 || w->draining ||
	    ((s->flags & F_WAITED) && (uint32_t)w->now_ms - s->wsince >= UR_CTX_WAIT_MS))
		return false;
	if (!(s->flags & F_WAITED))
		s->wsince = (uint32_t)w->now_ms;
	s->flags |= F_CTXWAIT;
	s->wnext = 0;
	if (u->wtail)
		u->slots[u->wtail - 1].wnext = i + 1;
	else
		u->whead = i + 1;
	u->wtail = i + 1;
	return true;
}

bool zh__uring_sending(zh__worker_t *w, const zh__conn_t *c)
{
	return w->uring->slots[slot_index(w, c)].flags & F_SEND;
}

/* The connections that waited for a context, driven again: those that still find none
 * wait again (or get their 503). */
static void retry_ctx_waits(zh__worker_t *w, struct zh__uring *u)
{
	uint32_t head = u->whead;
	u->whead = u->wtail = 0;
	while (head) {
		uint32_t i = head - 1;
		struct ur_slot *s = &u->slots[i];
		zh__conn_t *c = slot_conn(w, i);
		head = s->wnext;
		s->flags &= (uint16_t)~F_CTXWAIT;
		if (s->flags & F_CLOSED)
			continue;
		s->flags |= F_WAITED;
		zh__conn_event(w, c, EPOLLIN);
		if (!(s->flags & F_CTXWAIT))
			s->flags &= (uint16_t)~F_WAITED;
	}
}

/* ---- set-up ------------------------------------------------------------------------------------ */

/* task_run: the worker's ring, run by its thread alone. The probe's ring has neither flag:
 * a DEFER_TASKRUN ring's teardown sends task work to the thread that created it, which then
 * sees a timed socket read (SO_RCVTIMEO) of its own fail with EINTR. */
static int ring_init(struct io_uring *ring, unsigned entries, bool task_run)
{
	struct io_uring_params p;
	int r;
	memset(&p, 0, sizeof p);
	p.flags = IORING_SETUP_CQSIZE |
		  (task_run ? IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN : 0);
	p.cq_entries = entries * 4;
	r = io_uring_queue_init_params(entries, ring, &p);
	if (r == -EINVAL && task_run) { /* before Linux 6.1: without the task-run flags */
		memset(&p, 0, sizeof p);
		p.flags = IORING_SETUP_CQSIZE;
		p.cq_entries = entries * 4;
		r = io_uring_queue_init_params(entries, ring, &p);
	}
	if (r == 0 && !(p.features & IORING_FEAT_EXT_ARG)) { /* the wait's timeout */
		io_uring_queue_exit(ring);
		r = -ENOSYS;
	}
	return r;
}

static void uring_free(struct zh__uring *u)
{
	if (u->map)
		munmap(u->map, u->map_len);
	if (u->br)
		munmap(u->br, u->br_len);
}

static size_t page_up(size_t n)
{
	return (n + 4095) & ~(size_t)4095;
}

/* Maps the buffers and the slot array (lazily resident) and registers the buffer ring. */
static int uring_setup(zh__worker_t *w, struct zh__uring *u)
{
	unsigned want = w->srv->cfg.io_buffers ? w->srv->cfg.io_buffers : UR_BUFS_DEFAULT;
	size_t bufs_len, slots_len, links_len;
	struct io_uring_buf_reg reg;
	int r;
	u->nbufs = 1;
	while (u->nbufs < want && u->nbufs < 32768)
		u->nbufs <<= 1; /* the ring's size is a power of two */
	bufs_len = page_up((size_t)u->nbufs * UR_BUF_SIZE);
	links_len = page_up((size_t)u->nbufs * (sizeof *u->bnext + sizeof *u->blen));
	slots_len = page_up((size_t)w->srv->cfg.max_connections * sizeof(struct ur_slot));
	u->map_len = bufs_len + links_len + slots_len;
	u->map = mmap(NULL, u->map_len, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	u->br_len = page_up((size_t)u->nbufs * sizeof(struct io_uring_buf));
	u->br = mmap(NULL, u->br_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (u->map == MAP_FAILED || u->br == MAP_FAILED) {
		if (u->map == MAP_FAILED)
			u->map = NULL;
		if (u->br == MAP_FAILED)
			u->br = NULL;
		return -ENOMEM;
	}
	/* The ring hands buffers out in turn, so every one is soon touched: made resident now,
	 * the worker's footprint is the same from the start (not a slow growth that looks
	 * like a leak). Best effort (Linux 5.14). */
	(void)madvise(u->map, bufs_len + links_len, MADV_POPULATE_WRITE);
	u->bufs = u->map;
	u->blen = (uint32_t *)(void *)(u->map + bufs_len);
	u->bnext = (uint16_t *)(void *)(u->blen + u->nbufs);
	u->slots = (struct ur_slot *)(void *)(u->map + bufs_len + links_len);
	io_uring_buf_ring_init(u->br);
	memset(&reg, 0, sizeof reg);
	reg.ring_addr = (uint64_t)(uintptr_t)u->br;
	reg.ring_entries = u->nbufs;
	reg.bgid = UR_BGID;
	if ((r = io_uring_register_buf_ring(&u->ring, &reg, 0)) < 0)
		return r;
	for (unsigned b = 0; b < u->nbufs; b++)
		io_uring_buf_ring_add(u->br, u->bufs + (size_t)b * UR_BUF_SIZE, UR_BUF_SIZE,
				      (unsigned short)b, io_uring_buf_ring_mask(u->nbufs), (int)b);
	io_uring_buf_ring_advance(u->br, (int)u->nbufs);
	return 0;
}

/* Submits the turn's entries and waits for a completion or the next timer: one
 * io_uring_enter (EXT_ARG). Under valgrind: see ZH__UNDER_VALGRIND. */
static void uring_wait(zh__worker_t *w, struct zh__uring *u, bool under_valgrind)
{
	int ms = under_valgrind ? 0 : zh__worker_timeout_ms(w);
	struct __kernel_timespec ts = {.tv_sec = ms / 1000,
				       .tv_nsec = (long long)(ms % 1000) * 1000000};
	struct io_uring_cqe *cqe;
	(void)io_uring_submit_and_wait_timeout(&u->ring, &cqe, 1, &ts, NULL);
	if (under_valgrind && io_uring_cq_ready(&u->ring) == 0 && zh__worker_timeout_ms(w) > 0) {
		struct timespec nap = {.tv_sec = 0, .tv_nsec = 1000000};
		(void)nanosleep(&nap, NULL);
	}
}

static void uring_loop(zh__worker_t *w, struct zh__uring *u)
{
	bool under_valgrind = ZH__UNDER_VALGRIND();
	for (;;) {
		struct io_uring_cqe *cqe;
		uring_wait(w, u, under_valgrind);
		zh__worker_clock(w);
		while (io_uring_peek_cqe(&u->ring, &cqe) == 0) {
			struct io_uring_cqe copy = *cqe;
			io_uring_cqe_seen(&u->ring, cqe); /* before: reap_send may look further */
			on_cqe(w, u, &copy);
		}
		if (u->whead)
			retry_ctx_waits(w, u);
		if (u->stop_seen)
			begin_stop(w, u);
		if (zh__worker_after_events(w))
			break;
		reclaim_closed(w, u);
		if (u->starved_head)
			rearm_starved(w, u);
		if (w->accept_resume_ms && w->now_ms >= w->accept_resume_ms) {
			w->accept_resume_ms = 0;
			if (!w->draining)
				arm_accepts(w, u);
		}
	}
	reclaim_closed(w, u);
}

int zh__uring_run(zh__worker_t *w)
{
	struct zh__uring u;
	int r;
	memset(&u, 0, sizeof u);
	if ((r = ring_init(&u.ring, UR_ENTRIES, true)) < 0)
		return r;
	if ((r = uring_setup(w, &u)) < 0) {
		io_uring_queue_exit(&u.ring);
		uring_free(&u);
		return r;
	}
	w->uring = &u;
	arm_accepts(w, &u);
	arm_poll(&u, w->stopfd, OP_STOP);
	arm_poll(&u, w->wakefd, OP_WAKE);
	/* the epoll set keeps only foreign descriptors: the ring watches the rest itself */
	for (unsigned li = 0; li < w->srv->nlisteners; li++)
		if (w->lfd[li] >= 0)
			(void)epoll_ctl(w->ep, EPOLL_CTL_DEL, w->lfd[li], NULL);
	(void)epoll_ctl(w->ep, EPOLL_CTL_DEL, w->stopfd, NULL);
	(void)epoll_ctl(w->ep, EPOLL_CTL_DEL, w->wakefd, NULL);
	arm_poll(&u, w->ep, OP_WATCH);
	uring_loop(w, &u);
	io_uring_queue_exit(&u.ring); /* cancels what is left and waits for it */
	uring_free(&u);
	w->uring = NULL;
	return 0;
}

/* ---- the probe (zh_server_new) ------------------------------------------------------------------ */

static int kernel_at_least(unsigned major, unsigned minor)
{
	struct utsname un;
	unsigned a = 0, b = 0;
	if (uname(&un) < 0 || sscanf(un.release, "%u.%u", &a, &b) != 2)
		return 0;
	return a > major || (a == major && b >= minor);
}

static int probe(const char **why)
{
	static const uint8_t ops[] = {IORING_OP_ACCEPT, IORING_OP_RECV, IORING_OP_SEND,
				      IORING_OP_SENDMSG, IORING_OP_POLL_ADD,
				      IORING_OP_ASYNC_CANCEL};
	struct io_uring ring;
	struct io_uring_probe *probe;
	struct io_uring_buf_reg reg;
	void *br;
	int r;
	if ((r = ring_init(&ring, 8, false)) < 0) {
		*why = r == -EPERM || r == -EACCES
			       ? "io_uring is forbidden here (kernel.io_uring_disabled or seccomp)"
		       : r == -ENOSYS ? "the kernel has no io_uring (or a seccomp filter hides it)"
				      : "io_uring_setup failed";
		return r;
	}
	probe = io_uring_get_probe_ring(&ring);
	r = probe ? 0 : -ENOMEM;
	for (size_t k = 0; r == 0 && k < sizeof ops; k++)
		if (!io_uring_opcode_supported(probe, ops[k]))
			r = -EOPNOTSUPP;
	if (probe)
		io_uring_free_probe(probe);
	if (r == 0 && !kernel_at_least(6, 0))
		r = -EOPNOTSUPP; /* multishot accept 5.19, multishot recv 6.0 */
	if (r < 0) {
		io_uring_queue_exit(&ring);
		*why = "the kernel's io_uring lacks multishot accept/recv (Linux 6.0 or later needed)";
		return r;
	}
	br = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	memset(&reg, 0, sizeof reg);
	reg.ring_addr = (uint64_t)(uintptr_t)br;
	reg.ring_entries = 8;
	reg.bgid = 1;
	r = br == MAP_FAILED ? -ENOMEM : io_uring_register_buf_ring(&ring, &reg, 0);
	io_uring_queue_exit(&ring);
	if (br != MAP_FAILED)
		munmap(br, 4096);
	if (r < 0) {
		*why = "the kernel's io_uring has no provided-buffer rings (Linux 5.19 or later)";
		return r;
	}
	return 0;
}

struct probe_run {
	int r;
	const char *why;
};

static void *probe_thread(void *arg)
{
	struct probe_run *p = arg;
	p->r = probe(&p->why);
	return NULL;
}

/* The probe runs on a thread of its own: a thread that used a ring is sent task work
 * (TWA_SIGNAL) when the ring is torn down, and the caller's own timed socket reads
 * (SO_RCVTIMEO) would then fail with EINTR, some time after zh_server_new returned. */
int zh__uring_probe(const char **why)
{
	struct probe_run p = {-ENOSYS, "cannot start the probe's thread"};
	pthread_t th;
	int r = pthread_create(&th, NULL, probe_thread, &p);
	if (r != 0) {
		*why = p.why;
		return -r;
	}
	pthread_join(th, NULL);
	*why = p.why;
	if (p.r < 0)
		return p.r;
	/* this transport's place in the table (once per process, at the first probe) */
	if ((r = zh__transport_register(&transport_uring)) < 0) {
		*why = "no room in the transport table";
		return r;
	}
	tr_index = (uint8_t)r;
	*why = NULL;
	return 0;
}
