/* upstream_health.c — the reverse proxy's active health checks (zh_proxy_options_t
 * health_*): each worker probes each upstream every health_interval_ms with
 * `GET health_path` on a connection of its own (never pooled: Connection: close), started
 * from the worker's periodic hook and driven by the same socket events as the exchanges.
 * A 2xx or 3xx status line within health_timeout_ms passes; anything else fails. Runs of
 * health_fails failures take the upstream out of the balancing (hc_down), runs of
 * health_passes passes bring it back. Per worker, like the pools: no shared state.
 */
#include "upstream_int.h"

#include <errno.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/socket.h>

static void verdict(pw_t *pw, upw_t *u, bool pass, uint64_t now)
{
	const zh_proxy_options_t *o = &pw->p->o;
	if (u->probe) {
		uconn_t *uc = u->probe;
		u->probe = NULL;
		zh__uc_close(uc);
	}
	if (pass) {
		u->fail_run = 0;
		if (u->pass_run < 255)
			u->pass_run++;
		if (u->hc_down && u->pass_run >= o->health_passes)
			zh__up_hc_down(u, false);
	} else {
		u->pass_run = 0;
		if (u->fail_run < 255)
			u->fail_run++;
		if (!u->hc_down && u->fail_run >= o->health_fails)
			zh__up_hc_down(u, true);
	}
	u->probe_at_ms = now + o->health_interval_ms;
}

/* Connects and writes the probe's request into its buffer (sent when connected). */
static void start_probe(pw_t *pw, unsigned i, uint64_t now)
{
	const zh_proxy_t *p = pw->p;
	upw_t *u = &pw->ups[i];
	int err = 0, n;
	uconn_t *uc = zh__uc_open(pw, i, &err);
	if (uc == NULL) {
		if (err == -EAGAIN) /* every slot busy: not the upstream's fault; later */
			u->probe_at_ms = now + p->o.health_interval_ms;
		else
			verdict(pw, u, false, now); /* refused at once */
		return;
	}
	uc->probe = true;
	uc->ex = NULL;
	uc->sent = uc->len = 0;
	n = snprintf(uc->buf, ZH__UP_BUF,
		     "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: zerohttp-health\r\n"
		     "Connection: close\r\n\r\n",
		     p->o.health_path, p->up[i].authority);
	uc->head_len = n > 0 && n < ZH__UP_BUF ? (uint32_t)n : 0; /* both < 256: always fits */
	u->probe = uc;
	u->probe_at_ms = now + p->o.health_timeout_ms; /* its deadline while in flight */
	if (uc->state == UC_SENDING)
		zh__probe_event(uc, EPOLLOUT);
}

uint64_t zh__health_tick(pw_t *pw, zh__worker_t *w, bool final)
{
	uint64_t now = zh__ext_now_ms(w), due = 0;
	if (pw->w == NULL)
		pw->w = w; /* a proxy this worker has not served yet: its probes start too */
	for (unsigned i = 0; i < pw->p->n_up; i++) {
		upw_t *u = &pw->ups[i];
		if (final) {
			if (u->probe) {
				zh__uc_close(u->probe);
				u->probe = NULL;
			}
			continue;
		}
		if (u->probe_at_ms <= now) {
			if (u->probe)
				verdict(pw, u, false, now); /* no answer within the timeout */
			else
				start_probe(pw, i, now);
		}
		if (due == 0 || u->probe_at_ms < due)
			due = u->probe_at_ms;
	}
	return due;
}

/* Enough of the answer to judge: "HTTP/1.x NNN". 1 pass, 0 fail, -1 need more. */
static int judge(const uconn_t *uc)
{
	const char *b = uc->buf;
	int status;
	if (uc->len < 12)
		return -1;
	if (b[0] != 'H' || b[1] != 'T' || b[2] != 'T' || b[3] != 'P' || b[4] != '/' ||
	    b[5] != '1' || b[6] != '.' || b[8] != ' ' || b[9] < '0' || b[9] > '9' ||
	    b[10] < '0' || b[10] > '9' || b[11] < '0' || b[11] > '9')
		return 0;
	status = (b[9] - '0') * 100 + (b[10] - '0') * 10 + (b[11] - '0');
	return status >= 200 && status < 400;
}

void zh__probe_event(uconn_t *uc, uint32_t events)
{
	pw_t *pw = uc->pw;
	upw_t *u = &pw->ups[uc->up];
	uint64_t now = zh__ext_now_ms(pw->w);
	if (u->probe != uc)
		return; /* a stale event: the probe ended in this round */
	if (uc->state == UC_CONNECTING) {
		int e = 0;
		socklen_t el = sizeof e;
		if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return;
		if (getsockopt(uc->fd, SOL_SOCKET, SO_ERROR, &e, &el) < 0 || e) {
			verdict(pw, u, false, now);
			return;
		}
		uc->state = UC_SENDING;
	}
	if (uc->state == UC_SENDING) {
		while (uc->sent < uc->head_len) {
			ssize_t n = send(uc->fd, uc->buf + uc->sent, uc->head_len - uc->sent,
					 MSG_NOSIGNAL);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && errno == EAGAIN)
				return;
			if (n <= 0) {
				verdict(pw, u, false, now);
				return;
			}
			uc->sent += (uint64_t)n;
		}
		uc->state = UC_HEAD;
		uc->len = 0;
	}
	for (;;) {
		ssize_t n = recv(uc->fd, uc->buf + uc->len, 64 - uc->len, 0);
		int j;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			verdict(pw, u, false, now); /* closed before a status line */
			return;
		}
		uc->len += (uint32_t)n;
		if ((j = judge(uc)) >= 0) {
			verdict(pw, u, j == 1, now);
			return;
		}
	}
}
