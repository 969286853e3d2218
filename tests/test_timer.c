/* test_timer.c — worker timers (src/timer.c) through the public API: a deferred response
 * answered by its deadline, cancellation (also from inside a callback), ordering of many
 * timers, a connection that dies with a timer pending, and timers during a drain. A real
 * server in this process on 127.0.0.1 with one worker; each request closes its connection.
 */
#include <criterion/criterion.h>

#include "zerohttp.h"
#include "zh_test_client.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static zh_server_t *srv;
static pthread_t runner;
static volatile int run_returned;

static void *run(void *arg)
{
	(void)arg;
	(void)!zh_server_run(srv);
	__atomic_store_n(&run_returned, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void stop(void)
{
	zh_server_stop(srv);
	pthread_join(runner, NULL);
	zh_server_free(srv);
	srv = NULL;
}

static void start_server(const char *path, zh_handler_fn fn, const zh_middleware_t *mw)
{
	zh_config_t cfg;
	int err = 0;
	zh_config_init(&cfg);
	cfg.port = 0;
	cfg.workers = 1;
	cfg.io_contexts = 8;
	cfg.max_connections = 64;
	cfg.large_buffers = 8;
	srv = zh_server_new(&cfg, &err);
	cr_assert_not_null(srv, "zh_server_new: %d", err);
	cr_assert_eq(zh_server_route(srv, ZH_GET, path, 0, fn, NULL), 0);
	if (mw)
		cr_assert_eq(zh_server_use(srv, mw), 0);
	run_returned = 0;
	cr_assert_eq(pthread_create(&runner, NULL, run, NULL), 0);
}

/* What the callbacks saw, written on the worker and read by the test. */
static pthread_mutex_t seen_lock = PTHREAD_MUTEX_INITIALIZER;
static char seen[8192];

static void note(const char *s)
{
	pthread_mutex_lock(&seen_lock);
	strncat(seen, s, sizeof seen - strlen(seen) - 1);
	strncat(seen, " ", sizeof seen - strlen(seen) - 1);
	pthread_mutex_unlock(&seen_lock);
}

static const char *seen_when(const char *what)
{
	static char copy[sizeof seen];
	for (int i = 0; i < 400; i++) {
		pthread_mutex_lock(&seen_lock);
		memcpy(copy, seen, sizeof copy);
		pthread_mutex_unlock(&seen_lock);
		if (strstr(copy, what))
			break;
		usleep(5000);
	}
	return copy;
}

static const char *seen_now(void)
{
	static char copy[sizeof seen];
	pthread_mutex_lock(&seen_lock);
	memcpy(copy, seen, sizeof copy);
	pthread_mutex_unlock(&seen_lock);
	return copy;
}

static char *get(const char *path, char *buf, size_t cap)
{
	char req[128];
	int fd = zh_tc_connect(zh_server_port(srv), 5, 0);
	snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", path);
	send_all(fd, req);
	zh_tc_read_to_close(fd, buf, cap);
	close(fd);
	return buf;
}

/* The deferred response's state, in zh_resp_state: the token and the timers. */
typedef struct {
	zh_deferred_t token;
	zh_timer_t deadline, work;
} call_t;

static void answer(zh_request_t *req, zh_response_t *resp, void *arg)
{
	const char *body = arg;
	(void)req;
	if (resp)
		(void)zh_reply(resp, strcmp(body, "deadline") ? 200 : 504, "text/plain", body,
			       strlen(body));
}

static void resume_with(zh_request_t *req, call_t *c, const char *what)
{
	(void)req;
	note(what);
	if (zh_deferred_resume(&c->token, answer, (void *)what) < 0)
		note("resume refused");
}

static void on_deadline(zh_request_t *req, void *arg)
{
	call_t *c = arg;
	/* the work timer was armed for later: the deadline cancels it */
	note(zh_timer_cancel(&c->work) ? "work:cancelled" : "work:idle");
	resume_with(req, c, "deadline");
}

static void on_work(zh_request_t *req, void *arg)
{
	note("work:fired");
	resume_with(req, arg, "work");
}

static void h_deadline(zh_request_t *req, zh_response_t *resp, void *arg)
{
	call_t *c = zh_resp_state(resp);
	(void)arg;
	zh_timer_init(&c->deadline);
	zh_timer_init(&c->work);
	if (zh_resp_defer(resp, &c->token) < 0 ||
	    zh_timer_start(req, &c->deadline, 100, on_deadline, c) < 0 ||
	    zh_timer_start(req, &c->work, 1000, on_work, c) < 0)
		note("start refused");
}

Test(timer, a_deferred_response_is_answered_by_its_deadline)
{
	char buf[1024];
	long long t0, dt;
	start_server("/deadline", h_deadline, NULL);
	seen[0] = '\0';
	t0 = now_ms();
	get("/deadline", buf, sizeof buf);
	dt = now_ms() - t0;
	cr_assert(strstr(buf, "HTTP/1.1 504 "), "%s", buf);
	cr_assert_str_eq(zh_tc_body_of(buf), "deadline");
	cr_assert_geq(dt, 100, "answered after %lld ms, before its deadline", dt);
	cr_assert_lt(dt, 600, "answered after %lld ms", dt);
	/* the cancelled work timer never fires, not even after its own time */
	usleep(1100 * 1000);
	cr_assert_str_eq(seen_now(), "work:cancelled deadline ");
	stop();
}

/* ---- cancellation: before, from another callback, of itself ---------------------------------- */

static zh_timer_t ta, tb, tc, td;
static zh_deferred_t token;

static void fire_b(zh_request_t *req, void *arg) { (void)req, (void)arg; note("B"); }
static void fire_d(zh_request_t *req, void *arg) { (void)req, (void)arg; note("D"); }

static void fire_a(zh_request_t *req, void *arg)
{
	char line[64];
	(void)req, (void)arg;
	/* itself: idle while it runs; B: pending, cancelled from here */
	int self = zh_timer_cancel(&ta), pending = zh_timer_pending(&ta);
	snprintf(line, sizeof line, "A self:%d pending:%d B:%d", self, pending,
		 zh_timer_cancel(&tb));
	note(line);
}

static void fire_c(zh_request_t *req, void *arg)
{
	(void)req, (void)arg;
	note("C");
	if (zh_deferred_resume(&token, answer, "ok") < 0)
		note("resume refused");
}

static void h_cancel(zh_request_t *req, zh_response_t *resp, void *arg)
{
	char line[32];
	(void)arg;
	zh_timer_init(&ta), zh_timer_init(&tb), zh_timer_init(&tc), zh_timer_init(&td);
	if (zh_resp_defer(resp, &token) < 0 || zh_timer_start(req, &ta, 30, fire_a, NULL) < 0 ||
	    zh_timer_start(req, &tb, 60, fire_b, NULL) < 0 ||
	    zh_timer_start(req, &tc, 120, fire_c, NULL) < 0 ||
	    zh_timer_start(req, &td, 10, fire_d, NULL) < 0) {
		note("start refused");
		return;
	}
	int first = zh_timer_cancel(&td), second = zh_timer_cancel(&td);
	snprintf(line, sizeof line, "D:%d D:%d", first, second);
	note(line);
}

Test(timer, cancelled_timers_never_fire)
{
	char buf[1024];
	start_server("/cancel", h_cancel, NULL);
	seen[0] = '\0';
	get("/cancel", buf, sizeof buf);
	cr_assert(strstr(buf, "HTTP/1.1 200 "), "%s", buf);
	usleep(200 * 1000);
	cr_assert_str_eq(seen_now(), "D:1 D:0 A self:0 pending:0 B:1 C ");
	stop();
}

/* ---- many timers: deadline order, start order among equals ----------------------------------- */

enum { MANY = 600 };
static zh_timer_t many[MANY];
static unsigned delay_of[MANY], fired[MANY], nfired;
static long many_start_span_us; /* how long h_many took to start them all */
static zh_timer_t last;

static void fire_many(zh_request_t *req, void *arg)
{
	(void)req;
	fired[nfired++] = (unsigned)(uintptr_t)arg;
}

static void fire_last(zh_request_t *req, void *arg)
{
	(void)req, (void)arg;
	if (zh_deferred_resume(&token, answer, "all") < 0)
		note("resume refused");
}

static void h_many(zh_request_t *req, zh_response_t *resp, void *arg)
{
	(void)arg;
	struct timespec t0, t1;
	nfired = 0;
	if (zh_resp_defer(resp, &token) < 0)
		return;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (unsigned i = 0; i < MANY; i++) {
		zh_timer_init(&many[i]);
		if (zh_timer_start(req, &many[i], delay_of[i], fire_many, (void *)(uintptr_t)i) < 0)
			note("start refused");
	}
	/* restarting one moves it behind the timers started before with its new delay */
	if (zh_timer_start(req, &many[0], delay_of[0], fire_many, (void *)(uintptr_t)0) < 0)
		note("restart refused");
	zh_timer_init(&last);
	if (zh_timer_start(req, &last, 80, fire_last, NULL) < 0)
		note("start refused");
	clock_gettime(CLOCK_MONOTONIC, &t1);
	many_start_span_us = (t1.tv_sec - t0.tv_sec) * 1000000L + (t1.tv_nsec - t0.tv_nsec) / 1000;
}

static int by_delay_then_start(const void *a, const void *b)
{
	unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;
	/* index 0 was restarted after all the others: it comes last among its equals */
	unsigned kx = x == 0 ? MANY : x, ky = y == 0 ? MANY : y;
	if (delay_of[x] != delay_of[y])
		return delay_of[x] < delay_of[y] ? -1 : 1;
	return kx < ky ? -1 : kx > ky;
}

Test(timer, many_timers_fire_in_deadline_order)
{
	char buf[1024];
	unsigned expect[MANY], seed = 12345;
	for (unsigned i = 0; i < MANY; i++) {
		seed = seed * 1103515245u + 12345u;
		delay_of[i] = (seed >> 16) % 8 * 5; /* 0, 5 .. 35 ms: many equal deadlines */
		expect[i] = i;
	}
	qsort(expect, MANY, sizeof expect[0], by_delay_then_start);
	start_server("/many", h_many, NULL);
	seen[0] = '\0';
	get("/many", buf, sizeof buf);
	cr_assert(strstr(buf, "HTTP/1.1 200 "), "%s", buf);
	cr_assert_str_eq(seen_now(), "");
	cr_assert_eq(nfired, MANY);
	/* A deadline is the clock at the start plus the delay: if starting the 600 took 5 ms
	 * or more (the worker preempted on a loaded machine), a later delay-0 timer may rightly
	 * come due after an earlier delay-5 one, and the order by delay is not the one to
	 * expect. It takes tens of microseconds otherwise. */
	if (many_start_span_us >= 4000) {
		stop();
		cr_skip_test("starting the timers took %ld us: the machine is too loaded to "
			     "know the order to expect", many_start_span_us);
	}
	for (unsigned i = 0; i < MANY; i++)
		cr_assert_eq(fired[i], expect[i], "position %u: timer %u (delay %u), expected %u "
			     "(delay %u)", i, fired[i], delay_of[fired[i]], expect[i],
			     delay_of[expect[i]]);
	stop();
}

/* ---- a callback that restarts itself with delay 0 fires again in the next round ------------- */

static zh_timer_t self_timer;
static int rounds;

static void fire_again(zh_request_t *req, void *arg)
{
	(void)arg;
	if (++rounds < 5) {
		if (zh_timer_start(req, &self_timer, 0, fire_again, NULL) < 0)
			note("restart refused");
		return;
	}
	if (zh_deferred_resume(&token, answer, "rounds") < 0)
		note("resume refused");
}

static void h_again(zh_request_t *req, zh_response_t *resp, void *arg)
{
	(void)arg;
	rounds = 0;
	zh_timer_init(&self_timer);
	if (zh_resp_defer(resp, &token) < 0 ||
	    zh_timer_start(req, &self_timer, 0, fire_again, NULL) < 0)
		note("start refused");
}

Test(timer, a_callback_restarts_itself)
{
	char buf[1024];
	start_server("/again", h_again, NULL);
	seen[0] = '\0';
	get("/again", buf, sizeof buf);
	cr_assert(strstr(buf, "HTTP/1.1 200 "), "%s", buf);
	cr_assert_eq(rounds, 5);
	cr_assert_str_eq(seen_now(), "");
	stop();
}

/* ---- the request goes first: its timers are cancelled by the library ------------------------- */

static zh_timer_t orphan, in_done;
static volatile int parked;

static void fire_orphan(zh_request_t *req, void *arg)
{
	(void)req, (void)arg;
	note("orphan:fired");
}

static void h_orphan(zh_request_t *req, zh_response_t *resp, void *arg)
{
	(void)arg;
	zh_timer_init(&orphan);
	if (zh_req_query(req).len) { /* "?plain": answered at once, the timer left pending */
		if (zh_timer_start(req, &orphan, 50, fire_orphan, NULL) < 0)
			note("start refused");
		return;
	}
	if (zh_resp_defer(resp, &token) < 0 ||
	    zh_timer_start(req, &orphan, 150, fire_orphan, NULL) < 0)
		note("start refused");
	__atomic_store_n(&parked, 1, __ATOMIC_RELEASE);
}

static void done_orphan(zh_request_t *req, zh_response_t *resp, void *arg)
{
	char line[64];
	(void)arg;
	zh_timer_init(&in_done);
	/* the library cancelled the timer before the done hooks; none may start now */
	int pending = zh_timer_pending(&orphan);
	snprintf(line, sizeof line, "done:%d pending:%d start:%d", zh_resp_status(resp), pending,
		 zh_timer_start(req, &in_done, 1, fire_orphan, NULL));
	note(line);
}

Test(timer, a_dead_connection_cancels_its_timers)
{
	zh_middleware_t mw = {.done = done_orphan};
	struct linger lg = {1, 0};
	char buf[1024];
	int fd;
	start_server("/orphan", h_orphan, &mw);
	seen[0] = '\0';
	parked = 0;
	fd = zh_tc_connect(zh_server_port(srv), 5, 0);
	send_all(fd, "GET /orphan HTTP/1.1\r\nHost: x\r\n\r\n");
	for (int i = 0; i < 400 && !__atomic_load_n(&parked, __ATOMIC_ACQUIRE); i++)
		usleep(5000);
	cr_assert(parked);
	cr_assert_eq(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
	close(fd); /* RST: the server sees the connection die now */
	cr_assert_str_eq(seen_when("done:"), "done:499 pending:0 start:-22 ");
	usleep(300 * 1000);
	cr_assert_str_eq(seen_now(), "done:499 pending:0 start:-22 ");
	/* a response that ends normally cancels what is left too */
	seen[0] = '\0';
	get("/orphan?plain", buf, sizeof buf);
	cr_assert(strstr(buf, "HTTP/1.1 200 "), "%s", buf);
	usleep(150 * 1000);
	cr_assert_str_eq(seen_now(), "done:200 pending:0 start:-22 ");
	stop();
}

/* ---- a drain waits for the deadline's answer ------------------------------------------------- */

static void h_drain(zh_request_t *req, zh_response_t *resp, void *arg)
{
	call_t *c = zh_resp_state(resp);
	(void)arg;
	zh_timer_init(&c->deadline);
	zh_timer_init(&c->work);
	if (zh_resp_defer(resp, &c->token) < 0 ||
	    zh_timer_start(req, &c->deadline, 200, on_deadline, c) < 0)
		note("start refused");
	__atomic_store_n(&parked, 1, __ATOMIC_RELEASE);
}

Test(timer, a_drain_lets_the_timer_answer)
{
	char buf[1024];
	long long t0, dt;
	int fd;
	start_server("/drain", h_drain, NULL);
	seen[0] = '\0';
	parked = 0;
	fd = zh_tc_connect(zh_server_port(srv), 5, 0);
	t0 = now_ms();
	send_all(fd, "GET /drain HTTP/1.1\r\nHost: x\r\n\r\n");
	for (int i = 0; i < 400 && !__atomic_load_n(&parked, __ATOMIC_ACQUIRE); i++)
		usleep(5000);
	zh_server_stop(srv);
	zh_tc_read_to_close(fd, buf, sizeof buf); /* the server closes after the answer */
	dt = now_ms() - t0;
	close(fd);
	cr_assert(strstr(buf, "HTTP/1.1 504 "), "%s", buf);
	cr_assert(strstr(buf, "Connection: close\r\n"), "%s", buf);
	cr_assert_geq(dt, 200, "%lld ms", dt);
	cr_assert_lt(dt, 2000, "%lld ms", dt);
	for (int i = 0; i < 400 && !__atomic_load_n(&run_returned, __ATOMIC_ACQUIRE); i++)
		usleep(5000);
	cr_assert(run_returned, "zh_server_run returned after the drain");
	cr_assert_str_eq(seen_now(), "work:idle deadline ");
	pthread_join(runner, NULL);
	zh_server_free(srv);
	srv = NULL;
}

Test(timer, start_refuses_bad_arguments)
{
	zh_timer_t t;
	zh_timer_init(&t);
	cr_assert_eq(zh_timer_pending(&t), 0);
	cr_assert_eq(zh_timer_cancel(&t), 0);
	cr_assert_eq(zh_timer_cancel(NULL), 0);
	cr_assert_eq(zh_timer_start(NULL, &t, 1, fire_b, NULL), -EINVAL);
}
