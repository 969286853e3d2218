/* timer.c — application timers on the worker: zh_timer_start / zh_timer_cancel (see
 * zerohttp.h).
 *
 * The loop's own timers are FIFO lists because each kind has one fixed duration (loop.c);
 * an application's delays are arbitrary, so these live in a pairing heap ordered by
 * (deadline, start number). The heap is intrusive: its nodes are the callers' zh_timer_t,
 * so arming allocates nothing and the number of timers is unbounded. Insert and meld are
 * O(1); taking the minimum or cancelling is O(log n) amortized. A timer is also linked
 * into its request's list, so that the end of the request cancels whatever is left
 * (zh__utimers_close), before the done hooks can free the memory it lives in.
 *
 * Deadlines are CLOCK_MONOTONIC microseconds read when the timer starts (the loop's cached
 * now_ms may be a whole batch old, which would fire early). The loop sleeps until the heap's
 * minimum, rounded up to a millisecond, and fires timers after each round of events.
 */
#include "internal.h"

#include <string.h>

enum { ZH__UTIMER_PENDING = 0x7a687469 }; /* "zhti": idle memory rarely looks armed */
enum { DELAY_MAX_MS = 0xffffffffu };

_Static_assert(sizeof(zh__utimer_t) <= sizeof(zh_timer_t), "zh_timer_t holds a timer");
_Static_assert(_Alignof(zh__utimer_t) <= _Alignof(zh_timer_t), "and is aligned for it");

static zh__utimer_t *of(zh_timer_t *t) { return (zh__utimer_t *)(void *)t; }

static bool before(const zh__utimer_t *a, const zh__utimer_t *b)
{
	return a->deadline_us < b->deadline_us ||
	       (a->deadline_us == b->deadline_us && a->seq < b->seq);
}

/* Two roots (no siblings) into one: the later becomes the first child of the earlier. */
static zh__utimer_t *meld(zh__utimer_t *a, zh__utimer_t *b)
{
	if (before(b, a)) {
		zh__utimer_t *x = a;
		a = b;
		b = x;
	}
	b->prev = a;
	b->next = a->child;
	if (a->child)
		a->child->prev = b;
	a->child = b;
	return a;
}

/* The standard two passes over a list of siblings: meld pairs left to right, then the
 * pairs right to left (a stack, linked through next). */
static zh__utimer_t *merge_pairs(zh__utimer_t *first)
{
	zh__utimer_t *stack = NULL, *root = NULL;
	while (first) {
		zh__utimer_t *a = first, *b = a->next;
		first = b ? b->next : NULL;
		a->next = a->prev = NULL;
		if (b) {
			b->next = b->prev = NULL;
			a = meld(a, b);
		}
		a->next = stack;
		stack = a;
	}
	while (stack) {
		zh__utimer_t *n = stack->next;
		stack->next = NULL;
		root = root ? meld(root, stack) : stack;
		stack = n;
	}
	return root;
}

static void heap_remove(zh__worker_t *w, zh__utimer_t *t)
{
	zh__utimer_t *sub;
	if (t == w->theap) {
		w->theap = merge_pairs(t->child);
	} else {
		if (t->prev->child == t) /* first child: prev is the parent */
			t->prev->child = t->next;
		else
			t->prev->next = t->next;
		if (t->next)
			t->next->prev = t->prev;
		if ((sub = merge_pairs(t->child)) != NULL)
			w->theap = meld(w->theap, sub);
	}
	t->child = t->next = t->prev = NULL;
}

/* Out of the heap and the request's list: idle again. */
static void disarm(zh__utimer_t *t)
{
	zh__ctx_t *ctx = t->ctx;
	heap_remove(ctx->w, t);
	if (t->rprev)
		t->rprev->rnext = t->rnext;
	else
		ctx->utimers = t->rnext;
	if (t->rnext)
		t->rnext->rprev = t->rprev;
	t->rnext = t->rprev = NULL;
	t->state = 0;
}

void zh_timer_init(zh_timer_t *t)
{
	memset(t, 0, sizeof *t);
}

int zh_timer_pending(const zh_timer_t *t)
{
	return ((const zh__utimer_t *)(const void *)t)->state == ZH__UTIMER_PENDING;
}

int zh_timer_cancel(zh_timer_t *t)
{
	if (t == NULL || !zh_timer_pending(t))
		return 0;
	disarm(of(t));
	return 1;
}

int zh_timer_start(zh_request_t *req, zh_timer_t *timer, uint64_t delay_ms, zh_timer_fn fn,
		   void *arg)
{
	zh__utimer_t *t = of(timer);
	zh__ctx_t *ctx;
	if (req == NULL || timer == NULL || fn == NULL || delay_ms > DELAY_MAX_MS)
		return -EINVAL;
	ctx = req->ctx;
	if (ctx->timers_closed)
		return -EINVAL;
	if (zh_timer_pending(timer)) {
		if (t->ctx->w != ctx->w)
			return -EBUSY;
		disarm(t);
	}
	t->ctx = ctx;
	t->fn = fn;
	t->arg = arg;
	t->deadline_us = zh__now_us() + delay_ms * 1000u;
	t->seq = ctx->w->tseq++;
	t->child = t->next = t->prev = NULL;
	ctx->w->theap = ctx->w->theap ? meld(ctx->w->theap, t) : t;
	t->rprev = NULL;
	t->rnext = ctx->utimers;
	if (t->rnext)
		t->rnext->rprev = t;
	ctx->utimers = t;
	t->state = ZH__UTIMER_PENDING;
	return 0;
}

/* Fires every timer due now that was started before this round: one restarted with delay
 * 0 from a callback waits for the next round, so a callback cannot keep the loop here. */
void zh__utimers_run(zh__worker_t *w)
{
	uint64_t now = zh__now_us(), bound = w->tseq;
	zh__utimer_t *t;
	while ((t = w->theap) != NULL && t->deadline_us <= now && t->seq < bound) {
		zh__ctx_t *ctx = t->ctx;
		disarm(t); /* idle before the call: the callback may restart or free it */
		t->fn(&ctx->req, t->arg);
	}
}

int zh__utimers_wait_ms(const zh__worker_t *w)
{
	uint64_t now, d;
	if (w->theap == NULL)
		return -1;
	now = zh__now_us();
	d = w->theap->deadline_us;
	if (d <= now)
		return 0;
	d = (d - now + 999) / 1000; /* never wake before it is due */
	return d > 1000 ? 1000 : (int)d;
}

void zh__utimers_close(zh__ctx_t *ctx)
{
	ctx->timers_closed = true;
	while (ctx->utimers)
		disarm(ctx->utimers);
}
