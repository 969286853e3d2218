/* conn_evict.c — when the I/O context pool runs short (conn.c, ctx_for_reading): peek
 * whether a connection holds a whole head, and cut the peer that has stalled longest to lend
 * its context to one that is ready. Off the hot path: reached only with the last eighth of
 * the pool in use.
 */
#include "internal.h"

#include <string.h>
#include <sys/types.h>

/* What the socket holds, peeked (one recv(MSG_PEEK), made only when the context pool is
 * nearly empty): 1 a whole head, after the empty lines a parser skips; 0 bytes short of one;
 * -1 nothing (EOF, or no bytes after all: c->rdhup or c->readable says which, and the
 * connection settles without a 503). A head longer than the peek window counts as short. */
int zh__conn_head_waiting(zh__worker_t *w, zh__conn_t *c)
{
	const char *p = w->discard, *end;
	ssize_t n = zh__tr(c)->peek(c, w->discard, sizeof w->discard);
	if (n <= 0) {
		if (n == 0)
			c->rdhup = true;
		else
			c->readable = false; /* EAGAIN; an error shows again at the next read */
		return -1;
	}
	end = p + n;
	while (end - p >= 2 && p[0] == '\r' && p[1] == '\n')
		p += 2;
	return end - p >= 4 && memmem(p, (size_t)(end - p), "\r\n\r\n", 4) != NULL;
}

/* Every I/O context is lent and a connection with a whole head needs one. Rather than 503 a
 * client that is ready now, cut the peer that has stalled longest: of the heads of the
 * header, body and write timer lists (each list is in arming order), the one holding a
 * context whose timer was armed first, and at least ZH__EVICT_AFTER_MS ago. A head's timer
 * starts at its first byte, a body timer is re-armed only by progress of 4 B/s or more, a
 * write timer by any progress: a normal upload or download is not a candidate; a slowloris
 * head, a 1 B/s body or a peer that reads nothing is. Such peers then hold contexts only
 * while nobody else needs them. */
#define ZH__EVICT_AFTER_MS 1000
bool zh__conn_evict_stalled(zh__worker_t *w)
{
	static const enum zh__timer_kind kinds[3] = {ZH__T_HEADER, ZH__T_BODY, ZH__T_WRITE};
	zh__conn_t *victim = NULL;
	uint64_t oldest = w->now_ms >= ZH__EVICT_AFTER_MS ? w->now_ms - ZH__EVICT_AFTER_MS : 0;
	for (unsigned k = 0; k < 3; k++) {
		const zh__tlist_t *l = &w->timers[kinds[k]];
		/* a connection between requests may have given its context back already */
		unsigned looked = 0;
		for (zh__conn_t *c = l->head; c && looked < 16; c = c->tnext, looked++) {
			uint64_t armed = c->deadline_ms - l->duration_ms;
			if (armed > oldest)
				break; /* armed later, as is everything behind it */
			if (c->ctx) {
				victim = c;
				oldest = armed;
				break;
			}
		}
	}
	if (victim == NULL)
		return false;
	ZH__STAT_ADD(w, stalled_evictions, 1);
	zh__conn_timeout(w, victim); /* a 408, then its context comes back */
	/* the 408 could not leave: close all the same. Under io_uring it leaves with the next
	 * turn's submission, and the context comes back then (zh__uring_ctx_wait) */
	if (victim->state != ZH__C_FREE && victim->ctx &&
	    !(w->uring && zh__uring_sending(w, victim)))
		zh__conn_close(w, victim);
	return true;
}
