/* test_ext.c — the extension interface (zerohttp.h) used as an application's own middleware
 * would use it, through the public header only: per-middleware slots, the application's
 * user-data slot across a deferred response and a producer, a pending writer of its own,
 * and the response-header walk, removal and length calls that gzip uses. A real server in
 * this process on 127.0.0.1 (the fixture of test_middleware.c); each request closes its
 * connection, so a response is everything read until EOF.
 */
#include <criterion/criterion.h>

#include "zerohttp.h"
#include "zh_test_client.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

static zh_server_t *srv;
static pthread_t runner;

static void *run(void *arg)
{
	(void)arg;
	(void)!zh_server_run(srv);
	return NULL;
}

static void stop(void)
{
	zh_server_stop(srv);
	pthread_join(runner, NULL);
	zh_server_free(srv);
	srv = NULL;
}

static zh_server_t *new_server(void)
{
	zh_config_t cfg;
	zh_server_t *s;
	int err = 0;
	zh_config_init(&cfg);
	cfg.port = 0;
	cfg.workers = 1;
	cfg.io_contexts = 8;
	cfg.max_connections = 64;
	cfg.large_buffers = 8;
	s = zh_server_new(&cfg, &err);
	cr_assert_not_null(s, "zh_server_new: %d", err);
	return s;
}

static void start(void)
{
	cr_assert_eq(pthread_create(&runner, NULL, run, NULL), 0);
}

/* Sends req and reads the whole answer (the connection closes after it): NUL-terminated. */
static char *exchange(const char *req, char *buf, size_t cap)
{
	int fd = zh_tc_connect(zh_server_port(srv), 5, 0);
	send_all(fd, req);
	zh_tc_read_to_close(fd, buf, cap);
	close(fd);
	return buf;
}

/* What the hooks saw, written on the worker and read by the test after the answer. */
static pthread_mutex_t seen_lock = PTHREAD_MUTEX_INITIALIZER;
static char seen[1024];

static void note(const char *s)
{
	pthread_mutex_lock(&seen_lock);
	strncat(seen, s, sizeof seen - strlen(seen) - 1);
	strncat(seen, " ", sizeof seen - strlen(seen) - 1);
	pthread_mutex_unlock(&seen_lock);
}

/* The notes once they contain `what` (done hooks may run just after the bytes left). */
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

/* ---- per-middleware slots ------------------------------------------------------------------ */

/* One middleware struct registered twice (global and on /slot): each registration has its
 * own slot. The before hook finds its slot empty (also on the second request of a
 * keep-alive connection: the done hook deliberately leaves it set) and stores its tag; the
 * commit and done hooks read it back. */
typedef struct {
	char tag[8];
} tag_mw_t;
static tag_mw_t tag_g = {"G"}, tag_r = {"R"};

static int slot_before(zh_request_t *req, zh_response_t *resp, void *arg)
{
	void **slot = zh_mw_slot(req);
	char buf[32];
	(void)resp;
	snprintf(buf, sizeof buf, "b%s:%s", ((tag_mw_t *)arg)->tag, *slot ? "dirty" : "empty");
	note(buf);
	*slot = arg;
	return ZH_MW_NEXT;
}

static void slot_commit(zh_response_t *resp, void *arg)
{
	void **slot = zh_mw_slot(zh_resp_request(resp));
	const tag_mw_t *m = arg;
	char name[16];
	snprintf(name, sizeof name, "X-Slot-%s", m->tag);
	zh_resp_header_set(resp, name, *slot ? ((tag_mw_t *)*slot)->tag : "null");
}

static void slot_done(zh_request_t *req, zh_response_t *resp, void *arg)
{
	void **slot = zh_mw_slot(req);
	char buf[32];
	(void)resp;
	snprintf(buf, sizeof buf, "d%s:%s", ((tag_mw_t *)arg)->tag,
		 *slot == arg ? "mine" : "other");
	note(buf);
}

static void h_slot(zh_request_t *req, zh_response_t *resp, void *arg)
{
	(void)arg;
	/* the handler is no middleware: it has no slot of its own */
	zh_resp_header_set(resp, "X-Handler-Slot", zh_mw_slot(req) ? "some" : "none");
	(void)zh_write_static(resp, "ok", 2);
}

Test(ext, middleware_slots_are_per_middleware_and_start_empty)
{
	zh_middleware_t g = {.before = slot_before, .commit = slot_commit, .done = slot_done,
			     .arg = &tag_g};
	zh_middleware_t r = g;
	char buf[4096];
	const char *s;
	r.arg = &tag_r;
	srv = new_server();
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/slot", 0, h_slot, NULL), 0);
	cr_assert_eq(zh_server_use(srv, &g), 0);
	cr_assert_eq(zh_route_use(srv, "/slot", &r), 0);
	start();
	seen[0] = '\0';
	/* two requests on one connection: the second's slots must start empty again */
	exchange("GET /slot HTTP/1.1\r\nHost: x\r\n\r\n"
		 "GET /slot HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
		 buf, sizeof buf);
	cr_assert(strstr(buf, "X-Slot-G: G\r\n"), "%s", buf);
	cr_assert(strstr(buf, "X-Slot-R: R\r\n"), "%s", buf);
	cr_assert(strstr(buf, "X-Handler-Slot: none\r\n"), "%s", buf);
	cr_assert_null(strstr(buf, "X-Slot-G: R"), "%s", buf);
	s = seen_when("dR:mine dG:mine dR:mine");
	cr_assert_str_eq(s, "bG:empty bR:empty dG:mine dR:mine bG:empty bR:empty dG:mine dR:mine ");
	stop();
}

/* ---- the application's slot across a deferral and a producer -------------------------------- */

typedef struct {
	int id;
} app_req_t;
static app_req_t app_obj = {42};

static int user_before(zh_request_t *req, zh_response_t *resp, void *arg)
{
	(void)resp, (void)arg;
	note(zh_req_user(req) ? "u:dirty" : "u:empty");
	zh_req_set_user(req, &app_obj);
	return ZH_MW_NEXT;
}

static void user_done(zh_request_t *req, zh_response_t *resp, void *arg)
{
	(void)resp, (void)arg;
	note(zh_req_user(req) == &app_obj ? "done:user" : "done:lost");
}

static int produced;

static int produce(zh_response_t *resp, void *arg)
{
	const app_req_t *u;
	char line[32];
	(void)arg;
	if (resp == NULL)
		return ZH_PRODUCE_DONE;
	u = zh_req_user(zh_resp_request(resp));
	snprintf(line, sizeof line, "p%d:%d;", produced, u ? u->id : -1);
	if (zh_write(resp, line, strlen(line)) < 0)
		return -EIO;
	return ++produced < 3 ? ZH_PRODUCE_MORE : ZH_PRODUCE_DONE;
}

static void resumed(zh_request_t *req, zh_response_t *resp, void *arg)
{
	const app_req_t *u;
	char line[32];
	(void)arg;
	if (req == NULL)
		return;
	u = zh_req_user(req);
	snprintf(line, sizeof line, "resumed:%d;", u ? u->id : -1);
	(void)zh_write(resp, line, strlen(line));
	produced = 0;
	if (zh_resp_produce(resp, produce, NULL) < 0)
		note("produce refused");
}

static void h_defer(zh_request_t *req, zh_response_t *resp, void *arg)
{
	zh_deferred_t token;
	(void)req, (void)arg;
	if (zh_resp_defer(resp, &token) < 0 || zh_deferred_resume(&token, resumed, NULL) < 0)
		(void)zh_reply(resp, 500, "text/plain", "defer", 5);
}

Test(ext, user_slot_lives_through_deferral_and_producer_to_done)
{
	zh_middleware_t u = {.before = user_before, .done = user_done};
	char buf[4096];
	srv = new_server();
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/defer", 0, h_defer, NULL), 0);
	cr_assert_eq(zh_server_use(srv, &u), 0);
	start();
	seen[0] = '\0';
	exchange("GET /defer HTTP/1.1\r\nHost: x\r\n\r\n"
		 "GET /defer HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
		 buf, sizeof buf);
	cr_assert(strstr(buf, "200 OK"), "%s", buf);
	/* chunked: the parts are framed, so look for each one */
	cr_assert(strstr(buf, "resumed:42;"), "%s", buf);
	cr_assert(strstr(buf, "p0:42;"), "%s", buf);
	cr_assert(strstr(buf, "p2:42;"), "%s", buf);
	cr_assert_str_eq(seen_when("done:user done:"), "u:empty done:user u:empty done:user ");
	stop();
}

/* ---- the application's slot in every other place a request lives --------------------------- */

/* A streaming route: the handler, a commit hook the handler registers and each zh_body_wait
 * continuation all see the slot the before hook set; so does the done hook. */
static void user_commit(zh_response_t *resp, void *arg)
{
	const app_req_t *u = zh_req_user(zh_resp_request(resp));
	(void)arg;
	zh_resp_header_set(resp, "X-Commit-User", u == &app_obj ? "42" : "lost");
}

static void stream_more(zh_request_t *req, zh_response_t *resp, void *arg)
{
	char buf[64];
	ssize_t n;
	(void)arg;
	note(zh_req_user(req) == &app_obj ? "cont:user" : "cont:lost");
	while ((n = zh_body_read(req, buf, sizeof buf)) > 0)
		;
	if (n == -EAGAIN) {
		if (zh_body_wait(req, stream_more, NULL) < 0)
			note("wait refused");
		return;
	}
	(void)zh_reply(resp, 200, "text/plain", "streamed", 8);
}

static void h_stream_user(zh_request_t *req, zh_response_t *resp, void *arg)
{
	(void)arg;
	note(zh_req_user(req) == &app_obj ? "handler:user" : "handler:lost");
	if (zh_resp_on_commit(resp, user_commit, NULL) < 0)
		note("hook refused");
	stream_more(req, resp, NULL);
}

Test(ext, user_slot_lives_through_body_continuations_and_commit_hooks)
{
	zh_middleware_t u = {.before = user_before, .done = user_done};
	char buf[4096];
	int fd;
	srv = new_server();
	cr_assert_eq(zh_server_route(srv, ZH_POST, "/stream", ZH_ROUTE_STREAM_BODY, h_stream_user,
				     NULL), 0);
	cr_assert_eq(zh_server_use(srv, &u), 0);
	start();
	seen[0] = '\0';
	fd = zh_tc_connect(zh_server_port(srv), 5, 0);
	send_all(fd, "POST /stream HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n"
		     "Connection: close\r\n\r\nabc");
	/* the handler has run and waits for the rest of the body: a continuation brings it */
	seen_when("cont:");
	usleep(50000);
	send_all(fd, "def");
	zh_tc_read_to_close(fd, buf, sizeof buf);
	close(fd);
	cr_assert(strstr(buf, "200 OK"), "%s", buf);
	cr_assert(strstr(buf, "X-Commit-User: 42\r\n"), "%s", buf);
	cr_assert_str_eq(seen_when("done:"), "u:empty handler:user cont:user cont:user done:user ");
	stop();
}

/* The connection dies while the response is deferred, or while a producer writes it: the
 * done hook still sees the slot (and 499 when no head had left), exactly once. */
static zh_deferred_t parked;
static volatile int parked_set;
static void user_status_done(zh_request_t *req, zh_response_t *resp, void *arg)
{
	char line[48];
	(void)arg;
	snprintf(line, sizeof line, "done:%s:%d", zh_req_user(req) == &app_obj ? "user" : "lost",
		 zh_resp_status(resp));
	note(line);
}

static void h_park(zh_request_t *req, zh_response_t *resp, void *arg)
{
	(void)arg;
	note(zh_req_user(req) == &app_obj ? "handler:user" : "handler:lost");
	if (zh_resp_defer(resp, &parked) < 0) {
		(void)zh_reply(resp, 500, "text/plain", "defer", 5);
		return;
	}
	__atomic_store_n(&parked_set, 1, __ATOMIC_RELEASE);
}

static void parked_resumed(zh_request_t *req, zh_response_t *resp, void *arg)
{
	(void)arg, (void)resp;
	note(req == NULL ? "resume:gone" : "resume:live");
}

static int endless(zh_response_t *resp, void *arg)
{
	static char chunk[16384];
	(void)arg;
	if (resp == NULL) {
		note("producer:gone");
		return ZH_PRODUCE_DONE;
	}
	return zh_write_static(resp, chunk, sizeof chunk) < 0 ? -EIO : ZH_PRODUCE_MORE;
}

static void h_endless(zh_request_t *req, zh_response_t *resp, void *arg)
{
	(void)req, (void)arg;
	if (zh_resp_produce(resp, endless, NULL) < 0)
		note("produce refused");
}

/* Closes with RST (SO_LINGER 0): the server sees the connection die at once. */
static void reset_close(int fd)
{
	struct linger lg = {1, 0};
	cr_assert_eq(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
	close(fd);
}

Test(ext, user_slot_reaches_the_done_hook_when_the_connection_dies)
{
	zh_middleware_t u = {.before = user_before, .done = user_status_done};
	char buf[256];
	int fd;
	srv = new_server();
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/park", 0, h_park, NULL), 0);
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/endless", 0, h_endless, NULL), 0);
	cr_assert_eq(zh_server_use(srv, &u), 0);
	start();
	seen[0] = '\0';
	parked_set = 0;
	fd = zh_tc_connect(zh_server_port(srv), 5, 0);
	send_all(fd, "GET /park HTTP/1.1\r\nHost: x\r\n\r\n");
	for (int i = 0; i < 400 && !__atomic_load_n(&parked_set, __ATOMIC_ACQUIRE); i++)
		usleep(5000);
	cr_assert(parked_set, "the handler deferred");
	reset_close(fd);
	cr_assert_str_eq(seen_when("done:"), "u:empty handler:user done:user:499 ");
	/* the token is stale now: its resumption is told the connection is gone */
	cr_assert_eq(zh_deferred_resume(&parked, parked_resumed, NULL), 0);
	cr_assert_str_eq(seen_when("resume:"), "u:empty handler:user done:user:499 resume:gone ");

	/* a producer's connection dies after the head left: the status stays 200 */
	seen[0] = '\0';
	fd = zh_tc_connect(zh_server_port(srv), 5, 4096);
	send_all(fd, "GET /endless HTTP/1.1\r\nHost: x\r\n\r\n");
	cr_assert_gt(read(fd, buf, sizeof buf), 0);
	reset_close(fd);
	cr_assert_str_eq(seen_when("done:"), "u:empty producer:gone done:user:200 ");
	stop();
}

/* ---- published slots: one middleware's state read by the handler and another's hooks --------- */

static const char tenant_key = 't';
static const zh_slice_t app_user = {"app-user", 8};

static int tenant_before(zh_request_t *req, zh_response_t *resp, void *arg)
{
	(void)resp;
	*zh_mw_slot(req) = arg; /* published: the middleware carries tenant_key */
	return ZH_MW_NEXT;
}

/* An application's own authentication: its users appear in zh_req_auth_user too. */
static int ident_before(zh_request_t *req, zh_response_t *resp, void *arg)
{
	zh_slice_t v;
	(void)resp, (void)arg;
	if (zh_req_header(req, "X-User", &v))
		*zh_mw_slot(req) = (void *)(uintptr_t)&app_user;
	return ZH_MW_NEXT;
}

static void published_done(zh_request_t *req, zh_response_t *resp, void *arg)
{
	const char *t = zh_req_published(req, &tenant_key);
	zh_slice_t who;
	char line[64];
	(void)resp, (void)arg;
	snprintf(line, sizeof line, "done:%s:%s", t ? t : "none",
		 zh_req_auth_user(req, &who) ? "user" : "nobody");
	note(line);
}

static void h_published(zh_request_t *req, zh_response_t *resp, void *arg)
{
	const char *t = zh_req_published(req, &tenant_key);
	zh_slice_t who = {"", 0};
	char body[96];
	int n;
	(void)arg;
	int authed = zh_req_auth_user(req, &who);
	n = snprintf(body, sizeof body, "tenant=%s user=%.*s%s nokey=%s", t ? t : "none",
		     (int)who.len, who.ptr, authed ? "" : "-",
		     zh_req_published(req, NULL) || zh_req_published(req, &app_obj) ? "found"
										     : "none");
	(void)zh_reply(resp, 200, "text/plain", body, (size_t)n);
}

Test(ext, published_slots_reach_the_handler_and_other_hooks)
{
	zh_middleware_t tenant = {.before = tenant_before, .arg = "acme", .key = &tenant_key};
	zh_middleware_t ident = {.before = ident_before, .key = zh_identity_key()};
	zh_middleware_t log = {.done = published_done};
	char buf[4096];
	srv = new_server();
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/pub", 0, h_published, NULL), 0);
	cr_assert_eq(zh_server_use(srv, &log), 0);
	cr_assert_eq(zh_server_use(srv, &ident), 0);
	cr_assert_eq(zh_route_use(srv, "/pub", &tenant), 0);
	start();
	seen[0] = '\0';
	exchange("GET /pub HTTP/1.1\r\nHost: x\r\nX-User: 1\r\nConnection: close\r\n\r\n", buf,
		 sizeof buf);
	cr_assert_str_eq(zh_tc_body_of(buf), "tenant=acme user=app-user nokey=none");
	exchange("GET /pub HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", buf, sizeof buf);
	cr_assert_str_eq(zh_tc_body_of(buf), "tenant=acme user=- nokey=none");
	/* no route: the route's middleware never ran, the global one did */
	exchange("GET /nope HTTP/1.1\r\nHost: x\r\nX-User: 1\r\nConnection: close\r\n\r\n", buf,
		 sizeof buf);
	cr_assert_str_eq(seen_when("done:none"), "done:acme:user done:acme:nobody done:none:user ");
	stop();
}

/* ---- a pending writer of the application's own ----------------------------------------------- */

/* Upper-cases text straight into the send buffers and keeps its window open between calls,
 * as the JSON writer does; "end" marks its output complete. */
typedef struct {
	char *start, *p, *end;
	int ended;
} upper_t;

static void upper_sync(zh_response_t *resp, void *state)
{
	upper_t *u = state;
	char *from = u->start, *to = u->p;
	u->start = u->p = u->end = NULL; /* given up first: the commit calls sync again */
	if (to != from)
		zh_resp_window_commit(resp, from, to);
}

static int upper_check(zh_response_t *resp, void *state, int final)
{
	const upper_t *u = state;
	(void)resp;
	return final && !u->ended ? -EINVAL : 0;
}

static uint64_t upper_held(const zh_response_t *resp, const void *state)
{
	const upper_t *u = state;
	(void)resp;
	return (uint64_t)(u->p - u->start);
}

static const zh_writer_ops_t upper_ops = {upper_sync, upper_check, upper_held};
_Static_assert(sizeof(upper_t) <= ZH_WRITER_STATE_SIZE, "fits the lent storage");

static upper_t *upper_get(zh_response_t *resp)
{
	upper_t *u = zh_resp_writer(resp, &upper_ops);
	if (u == NULL && (u = zh_resp_writer_begin(resp, &upper_ops)) != NULL)
		memset(u, 0, sizeof *u);
	return u;
}

static void upper_put(zh_response_t *resp, const char *s)
{
	upper_t *u = upper_get(resp);
	size_t n = strlen(s);
	if (u == NULL)
		return;
	if ((size_t)(u->end - u->p) < n) {
		upper_sync(resp, u);
		if (zh_resp_window(resp, n, &u->p, &u->end) < 0)
			return;
		u->start = u->p;
	}
	for (size_t i = 0; i < n; i++)
		*u->p++ = (char)toupper((unsigned char)s[i]);
}

static void h_upper(zh_request_t *req, zh_response_t *resp, void *arg)
{
	char held[64];
	(void)arg;
	upper_put(resp, "ab"); /* commits the 200, like any body source: headers come first */
	upper_put(resp, "cd");
	/* held bytes count in the body length before they are queued */
	snprintf(held, sizeof held, "held:%llu", (unsigned long long)zh_resp_body_len(resp));
	note(held);
	/* another body source in between: the writer's bytes are queued first, in order */
	(void)zh_write_static(resp, "-", 1);
	upper_put(resp, "ef");
	/* the response has a pending writer: the JSON writer cannot take it too */
	note(zh_json_begin(resp, 0) ? "json:taken" : "json:refused");
	if (zh_req_header(req, "X-End", &(zh_slice_t){0}))
		upper_get(resp)->ended = 1;
}

Test(ext, pending_writer_of_its_own)
{
	char buf[4096];
	srv = new_server();
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/upper", 0, h_upper, NULL), 0);
	start();
	seen[0] = '\0';
	exchange("GET /upper HTTP/1.1\r\nHost: x\r\nX-End: 1\r\nConnection: close\r\n\r\n", buf,
		 sizeof buf);
	cr_assert(strstr(buf, "HTTP/1.1 200 OK\r\n"), "%s", buf);
	cr_assert_str_eq(seen_when("json:"), "held:4 json:refused ");
	cr_assert(strstr(buf, "Content-Length: 7\r\n"), "%s", buf);
	cr_assert_str_eq(zh_tc_body_of(buf), "ABCD-EF");
	/* its check fails the unfinished output: a 500, as for an unfinished JSON document */
	exchange("GET /upper HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", buf, sizeof buf);
	cr_assert(strstr(buf, "HTTP/1.1 500 "), "%s", buf);
	stop();
}

/* ---- response headers: walk, removal, declared length, a length-changing filter ------------- */

/* A commit hook that drops every X-Secret-* field (walking the store, as gzip walks Vary)
 * and, when the handler declared a length, installs a filter that doubles each byte and
 * so undeclares that length. */
static int dbl_write(zh_response_t *resp, const void *data, size_t len, void *arg)
{
	const char *s = data;
	(void)arg;
	while (len) {
		char *p, *end;
		size_t n;
		int r = zh_filter_window(resp, 2, &p, &end);
		if (r < 0)
			return r;
		n = (size_t)(end - p) / 2 < len ? (size_t)(end - p) / 2 : len;
		for (size_t i = 0; i < n; i++)
			p[2 * i] = p[2 * i + 1] = s[i];
		zh_filter_commit(resp, p, p + 2 * n);
		s += n;
		len -= n;
	}
	return 0;
}

static void hdr_commit(zh_response_t *resp, void *arg)
{
	char names[8][32], v[32];
	unsigned n = 0, total = 0;
	zh_slice_t name, value;
	uint64_t declared;
	(void)arg;
	for (unsigned i = 0; zh_resp_header_at(resp, i, &name, &value); i++) {
		total++;
		if (name.len >= 9 && name.len < sizeof names[0] &&
		    strncasecmp(name.ptr, "x-secret-", 9) == 0 && n < 8) {
			memcpy(names[n], name.ptr, name.len);
			names[n++][name.len] = '\0';
		}
	}
	for (unsigned i = 0; i < n; i++)
		if (zh_resp_header_del(resp, names[i]) != 1)
			zh_resp_header_set(resp, "X-Del-Failed", names[i]);
	snprintf(v, sizeof v, "%u/%u", n, total);
	zh_resp_header_set(resp, "X-Walked", v);
	if (zh_resp_content_length(resp, &declared)) {
		snprintf(v, sizeof v, "%llu", (unsigned long long)declared);
		zh_resp_header_set(resp, "X-Declared", v);
		if (zh_resp_set_filter(resp, &(zh_body_filter_t){.write = dbl_write}) == 0)
			(void)zh_resp_header_del(resp, "Content-Length");
	}
}

static void h_hdrs(zh_request_t *req, zh_response_t *resp, void *arg)
{
	char w[32];
	(void)arg;
	snprintf(w, sizeof w, "%u<%u", zh_req_worker(req), zh_server_workers(srv));
	zh_resp_header_set(resp, "X-Worker", w);
	zh_resp_header_set(resp, "X-Secret-A", "1");
	zh_resp_header_set(resp, "X-Keep", "2");
	zh_resp_header_set(resp, "x-secret-b", "3");
	zh_resp_header_set(resp, "Content-Length", "5");
	(void)zh_write_static(resp, "hello", 5);
}

Test(ext, header_walk_removal_and_length)
{
	zh_middleware_t m = {.commit = hdr_commit};
	char buf[4096];
	srv = new_server();
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/hdrs", 0, h_hdrs, NULL), 0);
	cr_assert_eq(zh_server_use(srv, &m), 0);
	start();
	exchange("GET /hdrs HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", buf, sizeof buf);
	cr_assert(strstr(buf, "HTTP/1.1 200 OK\r\n"), "%s", buf);
	cr_assert(strstr(buf, "X-Worker: 0<1\r\n"), "%s", buf);
	/* Content-Length is the library's: not among the walked fields */
	cr_assert(strstr(buf, "X-Walked: 2/4\r\n"), "%s", buf);
	cr_assert(strstr(buf, "X-Keep: 2\r\n"), "%s", buf);
	cr_assert_null(strcasestr(buf, "x-secret"), "%s", buf);
	cr_assert_null(strstr(buf, "X-Del-Failed"), "%s", buf);
	cr_assert(strstr(buf, "X-Declared: 5\r\n"), "%s", buf);
	/* the filter doubled the body; the undeclared length was measured again */
	cr_assert(strstr(buf, "Content-Length: 10\r\n"), "%s", buf);
	cr_assert_str_eq(zh_tc_body_of(buf), "hheelllloo");
	stop();
}
