/* upstream_tunnel.c — the reverse proxy's upgrade tunnels (WebSocket and any protocol a
 * 101 switches to): after the client has taken the upstream's 101, the two sockets are
 * joined both ways.
 *
 * Each direction moves src socket -> pipe -> dst socket by splice(2), so the bytes never
 * enter user space; only what a side sent right behind its head before the tunnel existed
 * goes first from where it was read: the upstream's bytes after the 101 from the
 * connection's buffer (read with the head), the client's bytes after its request (lent by
 * zh_resp_upgrade's callback) written into the other direction's pipe. A direction
 * whose source ends shuts its destination's write side once the pipe is empty (the
 * half-close reaches the other end); the tunnel closes when both have ended, on any error,
 * or when it has moved nothing for tunnel_idle_timeout_ms (checked from the worker's
 * periodic hook, which also closes every tunnel as the worker exits).
 *
 * Both sockets are edge-triggered on the worker's epoll set; any event on either runs both
 * directions until each would block, so no edge is lost. A tunnel holds its upstream
 * connection's slot, its buffer and two pipes (four descriptors besides the sockets);
 * nothing is allocated.
 */
#include "upstream_int.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum { T_MOVE_MAX = 1 << 20 }; /* bytes asked of one splice into a pipe (it takes less) */

static void tunnel_close(tunnel_t *t)
{
	uconn_t *uc = t->uc;
	pw_t *pw = uc->pw;
	if (t->prev)
		t->prev->next = t->next;
	else
		pw->tunnels = t->next;
	if (t->next)
		t->next->prev = t->prev;
	t->next = t->prev = NULL;
	__atomic_store_n(&pw->ups[uc->up].tunnels_open, pw->ups[uc->up].tunnels_open - 1,
			 __ATOMIC_RELAXED);
	close(t->cfd); /* also leaves the epoll set */
	t->cfd = -1;
	if (t->pipe[0] >= 0) {
		close(t->pipe[0]);
		close(t->pipe[1]);
		t->pipe[0] = t->pipe[1] = -1;
	}
	zh__uc_close(uc); /* the upstream socket, the other pipe, the slot */
}

/* One direction until it would block. 1: it has ended (source done, everything passed on,
 * destination shut); 0: it waits for an event; -1: an error (the tunnel closes). */
static int pump(tunnel_t *t, tdir_t *d, int src, int dst, const int pipefd[2])
{
	const char *buf = t->uc->buf;
	while (d->len) {
		ssize_t n = send(dst, buf + d->off, d->len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EAGAIN ? 0 : -1;
		d->off += (uint32_t)n;
		d->len -= (uint32_t)n;
		t->active_ms = zh__ext_now_ms(t->uc->pw->w);
	}
	for (;;) {
		ssize_t n;
		if (d->in_pipe) {
			n = splice(pipefd[0], NULL, dst, NULL, d->in_pipe,
				   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				return errno == EAGAIN ? 0 : -1;
			d->in_pipe -= (uint32_t)n;
			t->active_ms = zh__ext_now_ms(t->uc->pw->w);
			continue;
		}
		if (d->eof) {
			if (!d->shut && shutdown(dst, SHUT_WR) < 0 && errno != ENOTCONN)
				return -1;
			d->shut = true;
			return 1;
		}
		n = splice(src, NULL, pipefd[1], NULL, T_MOVE_MAX, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (n == 0) {
			d->eof = true;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EAGAIN ? 0 : -1;
		d->in_pipe += (uint32_t)n;
	}
}

/* Both directions; closes the tunnel when both have ended or either failed. */
static void run(tunnel_t *t)
{
	uconn_t *uc = t->uc;
	int up = pump(t, &t->up, uc->fd, t->cfd, uc->pipe);
	int down = up < 0 ? -1 : pump(t, &t->down, t->cfd, uc->fd, t->pipe);
	if (up < 0 || down < 0 || (up == 1 && down == 1))
		tunnel_close(t);
}

static void client_event(zh__worker_t *w, zh__watch_t *x, uint32_t events)
{
	tunnel_t *t = (tunnel_t *)(void *)x;
	(void)w, (void)events;
	if (t->cfd >= 0) /* not a stale event of a tunnel closed in this round */
		run(t);
}

void zh__tunnel_upstream_event(uconn_t *uc)
{
	if (uc->t.cfd >= 0) /* else the 101 is still on its way to the client */
		run(&uc->t);
}

/* The client's bytes after its request go into the client -> upstream pipe, empty yet (the
 * upstream's bytes after its 101 are in buf): each direction has room of its own. */
static bool stash_early(tunnel_t *t, const void *early, size_t n)
{
	t->down.off = t->down.len = 0;
	if (n == 0)
		return true;
	if (n > 65536 && fcntl(t->pipe[1], F_SETPIPE_SZ, (int)n) < 0)
		return false; /* (a receive buffer is at most a large buffer: not reached) */
	if (write(t->pipe[1], early, n) != (ssize_t)n)
		return false;
	t->down.in_pipe = (uint32_t)n;
	return true;
}

static int open_pipe(int p[2])
{
	return pipe2(p, O_NONBLOCK | O_CLOEXEC);
}

void zh__tunnel_start(int fd, const void *early, size_t early_len, void *arg)
{
	uconn_t *uc = arg;
	tunnel_t *t = &uc->t;
	pw_t *pw = uc->pw;
	upw_t *u = &pw->ups[uc->up];
	uint64_t expiry;
	t->uc = uc;
	t->cfd = -1;
	t->pipe[0] = t->pipe[1] = -1;
	if (fd < 0) { /* the client went away before its 101 left */
		zh__uc_close(uc);
		return;
	}
	t->up.in_pipe = t->down.in_pipe = 0;
	t->up.eof = t->up.shut = t->down.eof = t->down.shut = false;
	if ((uc->pipe[0] < 0 && open_pipe(uc->pipe) < 0) || open_pipe(t->pipe) < 0 ||
	    !stash_early(t, early, early_len)) {
		close(fd);
		if (t->pipe[0] >= 0) {
			close(t->pipe[0]);
			close(t->pipe[1]);
		}
		zh__uc_close(uc);
		return;
	}
	t->cfd = fd;
	t->active_ms = zh__ext_now_ms(pw->w);
	t->prev = NULL;
	t->next = pw->tunnels;
	if (pw->tunnels)
		pw->tunnels->prev = t;
	pw->tunnels = t;
	__atomic_store_n(&u->tunnels, u->tunnels + 1, __ATOMIC_RELAXED);
	__atomic_store_n(&u->tunnels_open, u->tunnels_open + 1, __ATOMIC_RELAXED);
	expiry = t->active_ms + pw->p->o.tunnel_idle_timeout_ms;
	if (pw->tunnel_due_ms == 0 || pw->tunnel_due_ms > expiry)
		pw->tunnel_due_ms = expiry;
	t->watch.fn = client_event;
	if (zh__watch_add(pw->w, fd, &t->watch) < 0) {
		tunnel_close(t);
		return;
	}
	run(t); /* bytes may be waiting on either side already: no edge would announce them */
}

/* Tunnels idle past the timeout close; all of them when the worker exits. The list is
 * walked only when the earliest possible expiry has come. */
uint64_t zh__tunnel_tick(pw_t *pw, zh__worker_t *w, bool final)
{
	uint64_t now = zh__ext_now_ms(w), ttl = pw->p->o.tunnel_idle_timeout_ms, due = 0;
	tunnel_t *t, *next;
	if (!final && now < pw->tunnel_due_ms)
		return pw->tunnel_due_ms;
	for (t = pw->tunnels; t; t = next) {
		next = t->next;
		if (final || t->active_ms + ttl <= now)
			tunnel_close(t);
		else if (due == 0 || t->active_ms + ttl < due)
			due = t->active_ms + ttl;
	}
	pw->tunnel_due_ms = due;
	return due;
}
