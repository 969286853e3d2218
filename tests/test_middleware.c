/* test_middleware.c — middleware chains end to end through a real server in this process
 * (the fixture approach of test_server.c): hook order, before hooks that answer, commit
 * hooks that add headers, done hooks once per response (library answers included), chain
 * registration errors; then the CORS and auth middleware: option checks, path scoping,
 * and credential reloads racing requests.
 */
#include <criterion/criterion.h>

#include "internal.h"
#include "zh_test_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static zh_server_t *srv;
static pthread_t runner;

/* ---- what the hooks saw (written on the worker, read by the test) ----------------------- */

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char hook_log[4096];
static int done_calls[4], last_status, last_method_len;

static void note(const char *what)
{
	pthread_mutex_lock(&log_lock);
	strncat(hook_log, what, sizeof hook_log - strlen(hook_log) - 1);
	strncat(hook_log, " ", sizeof hook_log - strlen(hook_log) - 1);
	pthread_mutex_unlock(&log_lock);
}

static void log_reset(void)
{
	pthread_mutex_lock(&log_lock);
	hook_log[0] = '\0';
	memset(done_calls, 0, sizeof done_calls);
	pthread_mutex_unlock(&log_lock);
}

/* The log once it ends with "<last> " (done hooks may finish just after the bytes left). */
static const char *log_when(const char *last)
{
	static char copy[sizeof hook_log];
	size_t l = strlen(last);
	for (int i = 0; i < 200; i++) {
		size_t n;
		pthread_mutex_lock(&log_lock);
		memcpy(copy, hook_log, sizeof copy);
		pthread_mutex_unlock(&log_lock);
		n = strlen(copy);
		if (n > l && memcmp(copy + n - l - 1, last, l) == 0)
			break;
		usleep(5000);
	}
	return copy;
}

static int done_count(int i)
{
	int n;
	pthread_mutex_lock(&log_lock);
	n = done_calls[i];
	pthread_mutex_unlock(&log_lock);
	return n;
}

/* Each test middleware is one of these; arg points at it. */
typedef struct tmw {
	const char *name;
	int index; /* into done_calls */
} tmw_t;

static tmw_t g1 = {"G1", 0}, g2 = {"G2", 1}, r1 = {"R1", 2}, r2 = {"R2", 3};

static int t_before(zh_request_t *req, zh_response_t *resp, void *arg)
{
	const tmw_t *m = arg;
	zh_slice_t v;
	char buf[16];
	snprintf(buf, sizeof buf, "b:%s", m->name);
	note(buf);
	if (zh_req_header(req, "X-Answer-By", &v) && v.len == strlen(m->name) &&
	    memcmp(v.ptr, m->name, v.len) == 0) {
		(void)zh_reply(resp, 403, "text/plain", "nope", 4);
		return ZH_MW_ANSWERED;
	}
	return ZH_MW_NEXT;
}

static void t_commit(zh_response_t *resp, void *arg)
{
	const tmw_t *m = arg;
	char buf[16], name[16];
	zh_slice_t v;
	snprintf(buf, sizeof buf, "c:%s", m->name);
	note(buf);
	/* headers are still mutable here, and what the handler set is visible */
	snprintf(name, sizeof name, "X-%s", m->name);
	snprintf(buf, sizeof buf, "%d", zh_resp_status(resp));
	zh_resp_header_set(resp, name, buf);
	if (m == &g1 && zh_resp_header_get(resp, "X-Handler", &v))
		zh_resp_header_set(resp, "X-Saw-Handler", "yes");
}

static void t_done(zh_request_t *req, zh_response_t *resp, void *arg)
{
	const tmw_t *m = arg;
	char buf[16];
	snprintf(buf, sizeof buf, "d:%s", m->name);
	pthread_mutex_lock(&log_lock);
	done_calls[m->index]++;
	if (m == &g1) {
		last_status = zh_resp_status(resp);
		last_method_len = (int)zh_req_method(req).len;
	}
	pthread_mutex_unlock(&log_lock);
	note(buf);
}

static zh_middleware_t tmw_of(tmw_t *m)
{
	return (zh_middleware_t){.before = t_before, .commit = t_commit, .done = t_done, .arg = m};
}

static void h_commit(zh_response_t *resp, void *arg)
{
	(void)resp, (void)arg;
	note("c:H");
}

static void h_order(zh_request_t *req, zh_response_t *resp, void *arg)
{
	zh_slice_t body;
	(void)arg;
	note("h");
	(void)!zh_resp_on_commit(resp, h_commit, NULL);
	zh_resp_header_set(resp, "X-Handler", "1");
	if (zh_body_all(req, &body) == 0 && body.len)
		zh_write_ref(resp, body.ptr, body.len, NULL, NULL);
	else
		zh_write_static(resp, "ok", 2);
}

static void h_plain(zh_request_t *req, zh_response_t *resp, void *arg)
{
	(void)req, (void)arg;
	zh_write_static(resp, "plain", 5);
}

/* ---- fixture ------------------------------------------------------------------------------ */

static zh_server_t *new_server(void)
{
	zh_config_t cfg;
	zh_server_t *s;
	int err = 0;
	zh_tc_config(&cfg);
	cfg.header_timeout_ms = 300;
	s = zh_server_new(&cfg, &err);
	cr_assert_not_null(s, "zh_server_new: %d", err);
	return s;
}

static void start(void)
{
	log_reset();
	cr_assert_eq(pthread_create(&runner, NULL, zh_tc_run, srv), 0);
}

static void setup_chain(void)
{
	zh_middleware_t a = tmw_of(&g1), b = tmw_of(&g2), c = tmw_of(&r1), d = tmw_of(&r2);
	srv = new_server();
	cr_assert_eq(zh_server_route(srv, ZH_GET | ZH_POST, "/order", 0, h_order, NULL), 0);
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/plain", 0, h_plain, NULL), 0);
	cr_assert_eq(zh_server_use(srv, &a), 0);
	cr_assert_eq(zh_server_use(srv, &b), 0);
	cr_assert_eq(zh_route_use(srv, "/order", &c), 0);
	cr_assert_eq(zh_route_use(srv, "/order", &d), 0);
	start();
}

static void teardown(void)
{
	zh_server_stop(srv);
	pthread_join(runner, NULL);
	zh_server_free(srv);
	srv = NULL;
}

/* ---- a small client ------------------------------------------------------------------------ */

static int dial(void)
{
	int fd = zh_tc_connect(zh_server_port(srv), 5, 0);
	zh_tc_forget();
	return fd;
}

static void exchange(const char *raw, response_t *r)
{
	int fd = dial();
	send_all(fd, raw);
	read_response(fd, r);
	close(fd);
}

static void get_with(const char *path, const char *extra, response_t *r)
{
	char req[2048];
	snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\n%sConnection: close\r\n\r\n",
		 path, extra ? extra : "");
	exchange(req, r);
}

static bool has(const response_t *r, const char *line)
{
	return strstr(r->head, line) != NULL;
}

/* True if the peer closes within 2 s with nothing more to read. */
static bool closed_by_peer(int fd)
{
	char b[64];
	struct timeval tv = {.tv_sec = 2};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	return zh_tc_conn_of(fd)->have == 0 && read(fd, b, sizeof b) == 0;
}

/* ---- chain semantics ---------------------------------------------------------------------- */

/* Every suite has the same timeout: with different ones, Criterion's runner leaks 48 bytes
 * (LeakSanitizer fails the asan build). */
TestSuite(chain, .init = setup_chain, .fini = teardown, .timeout = 20);

Test(chain, global_then_route_order_for_every_hook)
{
	response_t r;
	get_with("/order", NULL, &r);
	cr_assert_eq(r.status, 200);
	cr_assert_str_eq(r.body, "ok");
	cr_assert_str_eq(log_when("d:R2"), "b:G1 b:G2 b:R1 b:R2 h c:G1 c:G2 c:R1 c:R2 c:H "
					   "d:G1 d:G2 d:R1 d:R2 ");
}

Test(chain, a_global_before_hook_answers_and_skips_the_rest)
{
	response_t r;
	get_with("/order", "X-Answer-By: G1\r\n", &r);
	cr_assert_eq(r.status, 403);
	cr_assert_str_eq(r.body, "nope");
	/* no later before hook, no route hook, no handler; the global commit and done hooks
	 * still see the answer */
	cr_assert_str_eq(log_when("d:G2"), "b:G1 c:G1 c:G2 d:G1 d:G2 ");
	cr_assert(has(&r, "\r\nX-G1: 403\r\n"));
	cr_assert(!has(&r, "X-Handler"));
}

Test(chain, a_route_before_hook_answers_and_skips_the_handler)
{
	response_t r;
	get_with("/order", "X-Answer-By: R1\r\n", &r);
	cr_assert_eq(r.status, 403);
	cr_assert_str_eq(log_when("d:R2"),
			 "b:G1 b:G2 b:R1 c:G1 c:G2 c:R1 c:R2 d:G1 d:G2 d:R1 d:R2 ");
}

Test(chain, an_answered_request_with_its_body_here_keeps_the_connection)
{
	response_t r;
	int fd = dial();
	/* the body is all in the buffer: skipped, and the pipelined request is served */
	send_all(fd, "POST /order HTTP/1.1\r\nHost: t\r\nX-Answer-By: G2\r\nContent-Length: 5\r\n"
		     "\r\nhelloGET /order HTTP/1.1\r\nHost: t\r\n\r\n");
	read_response(fd, &r);
	cr_assert_eq(r.status, 403);
	cr_assert(!has(&r, "Connection: close"));
	read_response(fd, &r);
	cr_assert_eq(r.status, 200);
	cr_assert_str_eq(r.body, "ok");
	close(fd);
}

Test(chain, an_answered_request_with_its_body_still_coming_closes)
{
	response_t r;
	int fd = dial();
	send_all(fd, "POST /order HTTP/1.1\r\nHost: t\r\nX-Answer-By: G1\r\n"
		     "Content-Length: 1000000\r\n\r\nhead only");
	read_response(fd, &r);
	cr_assert_eq(r.status, 403);
	cr_assert(has(&r, "\r\nConnection: close\r\n"));
	cr_assert(closed_by_peer(fd), "the unread body cannot be skipped: close");
	close(fd);
	cr_assert_str_eq(log_when("d:G2"), "b:G1 c:G1 c:G2 d:G1 d:G2 ", "the handler never ran");
}

Test(chain, commit_hooks_add_headers_also_to_library_answers)
{
	response_t r;
	get_with("/order", NULL, &r);
	cr_assert(has(&r, "\r\nX-G1: 200\r\n") && has(&r, "\r\nX-R2: 200\r\n"));
	cr_assert(has(&r, "\r\nX-Saw-Handler: yes\r\n"), "commit hooks see the handler's headers");
	get_with("/missing", NULL, &r);
	cr_assert_eq(r.status, 404);
	cr_assert(has(&r, "\r\nX-G1: 404\r\n") && has(&r, "\r\nX-G2: 404\r\n"));
	cr_assert(!has(&r, "X-R1"), "no route, no route chain");
}

Test(chain, done_hooks_run_once_per_response_library_answers_included)
{
	response_t r;
	get_with("/order", NULL, &r);					/* 200, routed */
	get_with("/missing", NULL, &r);					/* 404 */
	exchange("DELETE /order HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", &r); /* 405 */
	cr_assert_eq(r.status, 405);
	(void)log_when("d:G2");
	exchange("GARBAGE\r\n\r\n", &r); /* a request line that does not parse */
	cr_assert_eq(r.status, 400);
	(void)log_when("d:G2");
	usleep(50000);
	cr_assert_eq(done_count(0), 4, "G1 done: %d", done_count(0));
	cr_assert_eq(done_count(1), 4);
	cr_assert_eq(done_count(2), 1, "the route chain only for the routed request");
	cr_assert_eq(done_count(3), 1);
	pthread_mutex_lock(&log_lock);
	cr_assert_eq(last_status, 400);
	cr_assert_eq(last_method_len, 0, "a parse error's request is empty");
	pthread_mutex_unlock(&log_lock);
}

Test(chain, done_hook_sees_a_header_timeout)
{
	response_t r;
	int fd = dial();
	send_all(fd, "GET /order HTTP/1.1\r\nHost: t\r\n"); /* the head never ends */
	read_response(fd, &r);
	cr_assert_eq(r.status, 408);
	close(fd);
	(void)log_when("d:G2");
	usleep(20000);
	cr_assert_eq(done_count(0), 1);
	cr_assert_eq(done_count(2), 0);
}

Test(chain, registration_errors)
{
	zh_middleware_t mw = tmw_of(&g1);
	response_t r;
	get_with("/plain", NULL, &r); /* the server runs */
	cr_assert_eq(zh_server_use(srv, &mw), -EBUSY);
	cr_assert_eq(zh_route_use(srv, "/plain", &mw), -EBUSY);
	cr_assert_eq(zh_route_use(srv, "/nowhere", &mw), -ENOENT);
}

Test(chain, registration_limits_before_run)
{
	zh_server_t *s = new_server();
	zh_middleware_t mw = tmw_of(&g1), empty = {0};
	cr_assert_eq(zh_server_route(s, ZH_GET, "/a", 0, h_plain, NULL), 0);
	cr_assert_eq(zh_route_use(s, "/nowhere", &mw), -ENOENT);
	cr_assert_eq(zh_route_use(s, "/a/", &mw), -ENOENT, "paths match exactly");
	cr_assert_eq(zh_server_use(s, &empty), -EINVAL);
	cr_assert_eq(zh_server_use(s, NULL), -EINVAL);
	for (int i = 0; i < ZH__ROUTE_MW_MAX; i++)
		cr_assert_eq(zh_route_use(s, "/a", &mw), 0);
	cr_assert_eq(zh_route_use(s, "/a", &mw), -ENOSPC);
	for (int i = 0; i < ZH__GLOBAL_MW_MAX; i++)
		cr_assert_eq(zh_server_use(s, &mw), 0);
	cr_assert_eq(zh_server_use(s, &mw), -ENOSPC);
	zh_server_free(s);
}

/* ---- CORS ------------------------------------------------------------------------------------ */

static zh_cors_t *cors;

static void setup_cors(void)
{
	static const char *const origins[] = {"https://a.example", "https://*.example.com"};
	zh_cors_options_t o;
	zh_middleware_t mw, counter = tmw_of(&g1);
	int err = 0;
	srv = new_server();
	zh_cors_options_init(&o);
	o.origins = origins;
	o.n_origins = 2;
	o.expose_headers = "X-Total";
	cors = zh_cors_new(&o, &err);
	cr_assert_not_null(cors, "zh_cors_new: %d", err);
	mw = zh_cors_middleware(cors);
	cr_assert_eq(zh_server_use(srv, &mw), 0);
	cr_assert_eq(zh_server_use(srv, &counter), 0);
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/plain", 0, h_plain, NULL), 0);
	start();
}

static void teardown_cors(void)
{
	teardown();
	zh_cors_free(cors);
}

TestSuite(cors, .init = setup_cors, .fini = teardown_cors, .timeout = 20);

Test(cors, options_are_checked)
{
	static const char *const bad[] = {
		"https://",	      "https://*.",	"https://a.*.com",   "https://a.example/",
		"a.example",	      "https://*",	"https//a.example",  "https://a..b",
		"https://a.example:", "https://a:b",	"https://*.[::1]",   "*.example.com",
		"https://a.example/x", "https://.a.com", "https://a.com.",   "",
	};
	static const char *const good[] = {
		"https://a.example", "http://localhost:8080", "https://*.example.com",
		"https://*.a.example:8443", "*", "null", "http://[::1]:3000", "app-x+y://h",
	};
	zh_cors_options_t o;
	zh_cors_t *c;
	int err;
	zh_cors_options_init(&o);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		err = 0;
		o.origins = &bad[i];
		o.n_origins = 1;
		cr_assert_null(zh_cors_new(&o, &err), "accepted %s", bad[i]);
		cr_assert_eq(err, -EINVAL);
	}
	o.origins = good;
	o.n_origins = sizeof good / sizeof good[0];
	c = zh_cors_new(&o, &err);
	cr_assert_not_null(c, "good patterns refused: %d", err);
	zh_cors_free(c);
	o.methods = "GET\r\nX-Evil: 1";
	cr_assert_null(zh_cors_new(&o, &err));
	cr_assert_eq(err, -EINVAL);
	cr_assert_null(zh_cors_new(NULL, &err));
}

Test(cors, any_origin_with_credentials_is_refused)
{
	static const char *const any[] = {"https://a.example", "*"};
	static const char *const listed[] = {"https://a.example", "https://*.example.com"};
	char why[160] = "";
	zh_cors_options_t o;
	zh_cors_t *c;
	int err = 0;
	zh_cors_options_init(&o);
	o.origins = any;
	o.n_origins = 2;
	o.allow_credentials = 1;
	o.errbuf = why;
	o.errbuf_len = sizeof why;
	cr_assert_null(zh_cors_new(&o, &err), "\"*\" with credentials trusts every origin");
	cr_assert_eq(err, -EINVAL);
	cr_assert_not_null(strstr(why, "allow_credentials"), "reason: %s", why);
	/* each alone is fine: "*" without credentials, credentials with listed origins */
	o.allow_credentials = 0;
	c = zh_cors_new(&o, &err);
	cr_assert_not_null(c, "%d", err);
	zh_cors_free(c);
	o.origins = listed;
	o.allow_credentials = 1;
	c = zh_cors_new(&o, &err);
	cr_assert_not_null(c, "%d", err);
	zh_cors_free(c);
}

Test(cors, preflight_is_answered_before_routing)
{
	response_t r;
	exchange("OPTIONS /no/such/route HTTP/1.1\r\nHost: t\r\nOrigin: https://b.c.example.com\r\n"
		 "Access-Control-Request-Method: PUT\r\nConnection: close\r\n\r\n", &r);
	cr_assert_eq(r.status, 204);
	cr_assert(has(&r, "\r\nAccess-Control-Allow-Origin: https://b.c.example.com\r\n"));
	cr_assert(has(&r, "\r\nAccess-Control-Allow-Methods: GET, HEAD, POST, PUT, DELETE, PATCH, "
			  "OPTIONS\r\n"));
	cr_assert(has(&r, "\r\nAccess-Control-Allow-Headers: Content-Type, Authorization\r\n"));
	cr_assert(has(&r, "\r\nAccess-Control-Max-Age: 600\r\n"));
	cr_assert(has(&r, "\r\nVary: Origin, Access-Control-Request-Method, "
			  "Access-Control-Request-Headers\r\n"));
	cr_assert(!has(&r, "Access-Control-Expose-Headers"), "not on a preflight");
	cr_assert(!has(&r, "Allow-Credentials"));
	cr_assert_str_eq(log_when("d:G1"), "c:G1 d:G1 ", "later before hooks are skipped");
}

Test(cors, disallowed_preflight_goes_on_as_plain_options)
{
	response_t r;
	exchange("OPTIONS /plain HTTP/1.1\r\nHost: t\r\nOrigin: https://example.com\r\n"
		 "Access-Control-Request-Method: PUT\r\nConnection: close\r\n\r\n", &r);
	cr_assert_eq(r.status, 200); /* RFC 9110 §9.3.7: Content-Length: 0, so not a 204 */
	cr_assert(has(&r, "\r\nContent-Length: 0\r\n"), "%s", r.head);
	cr_assert(has(&r, "\r\nAllow: GET, HEAD, OPTIONS\r\n"), "the server's own OPTIONS answer: %s",
		  r.head);
	cr_assert(!has(&r, "Access-Control-"));
	cr_assert(has(&r, "\r\nVary: Origin\r\n"));
}

Test(cors, actual_requests_get_allow_origin_on_any_answer)
{
	response_t r;
	get_with("/plain", "Origin: https://a.example\r\n", &r);
	cr_assert_eq(r.status, 200);
	cr_assert(has(&r, "\r\nAccess-Control-Allow-Origin: https://a.example\r\n"));
	cr_assert(has(&r, "\r\nAccess-Control-Expose-Headers: X-Total\r\n"));
	cr_assert(has(&r, "\r\nVary: Origin\r\n"));
	get_with("/missing", "Origin: https://A.EXAMPLE\r\n", &r);
	cr_assert_eq(r.status, 404);
	cr_assert(has(&r, "\r\nAccess-Control-Allow-Origin: https://A.EXAMPLE\r\n"));
	get_with("/plain", "Origin: https://evil.example\r\n", &r);
	cr_assert(!has(&r, "Access-Control-"));
	cr_assert(has(&r, "\r\nVary: Origin\r\n"));
	get_with("/plain", "Origin: https://x.example.com.evil\r\n", &r);
	cr_assert(!has(&r, "Access-Control-"));
	get_with("/plain", "Origin: null\r\n", &r);
	cr_assert(!has(&r, "Access-Control-"));
}

Test(cors, a_half_received_head_is_not_read_by_the_commit_hook)
{
	response_t r;
	int fd = dial();
	/* an earlier request on the same connection, then a head that never ends: its 408
	 * must not carry headers read from either */
	send_all(fd, "GET /plain HTTP/1.1\r\nHost: t\r\nOrigin: https://a.example\r\n\r\n");
	read_response(fd, &r);
	cr_assert(has(&r, "Access-Control-Allow-Origin: https://a.example"));
	send_all(fd, "GET /plain HTTP/1.1\r\nOrigin: https://z.example.com\r\n");
	read_response(fd, &r);
	cr_assert_eq(r.status, 408);
	cr_assert(!has(&r, "Access-Control-"), "%s", r.head);
	close(fd);
}

/* With credentials a "*" is never sent: the origin, method and headers are named. */
static void setup_cors_credentials(void)
{
	static const char *const origins[] = {"https://any.example", "http://localhost:3000"};
	zh_cors_options_t o;
	zh_middleware_t mw;
	int err = 0;
	srv = new_server();
	zh_cors_options_init(&o);
	o.origins = origins;
	o.n_origins = 2;
	o.methods = "*";
	o.headers = "*";
	o.max_age = -1;
	o.allow_credentials = 1;
	cors = zh_cors_new(&o, &err);
	cr_assert_not_null(cors, "zh_cors_new: %d", err);
	mw = zh_cors_middleware(cors);
	cr_assert_eq(zh_server_use(srv, &mw), 0);
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/plain", 0, h_plain, NULL), 0);
	start();
}

TestSuite(cors_credentials, .init = setup_cors_credentials, .fini = teardown_cors,
	  .timeout = 20);

Test(cors_credentials, every_wildcard_becomes_the_requested_value)
{
	response_t r;
	exchange("OPTIONS /plain HTTP/1.1\r\nHost: t\r\nOrigin: https://any.example\r\n"
		 "Access-Control-Request-Method: PATCH\r\n"
		 "Access-Control-Request-Headers: x-a, content-type\r\nConnection: close\r\n\r\n",
		 &r);
	cr_assert_eq(r.status, 204);
	cr_assert(has(&r, "\r\nAccess-Control-Allow-Origin: https://any.example\r\n"));
	cr_assert(has(&r, "\r\nAccess-Control-Allow-Credentials: true\r\n"));
	cr_assert(has(&r, "\r\nAccess-Control-Allow-Methods: PATCH\r\n"));
	cr_assert(has(&r, "\r\nAccess-Control-Allow-Headers: x-a, content-type\r\n"));
	cr_assert(!has(&r, "Max-Age"), "max_age < 0: no header");
	get_with("/plain", "Origin: http://localhost:3000\r\n", &r);
	cr_assert(has(&r, "\r\nAccess-Control-Allow-Origin: http://localhost:3000\r\n"));
	cr_assert(has(&r, "\r\nAccess-Control-Allow-Credentials: true\r\n"));
	cr_assert(!has(&r, ": *\r\n"));
	get_with("/plain", "Origin: null\r\n", &r);
	cr_assert(!has(&r, "Access-Control-"), "an unlisted origin gets nothing");
}

/* ---- sticky header errors in middleware ---------------------------------------------------- */

/* A handler whose own header sets all succeed and fill the response's 32 fields (arg 0:
 * X-F fields only; 1: Content-Type JSON among them; 2: the same but one field left free),
 * then a body gzip would compress. */
static void h_crowded(zh_request_t *req, zh_response_t *resp, void *arg)
{
	static char body[1000];
	int kind = (int)(intptr_t)arg, n = kind == 2 ? 31 : 32, r = 0;
	char name[16];
	(void)req;
	memset(body, 'a', sizeof body);
	if (kind > 0) {
		r |= zh_resp_header_set(resp, "Content-Type", "application/json");
		n--;
	}
	for (int i = 0; i < n; i++) {
		snprintf(name, sizeof name, "X-F%d", i);
		r |= zh_resp_header_set(resp, name, "1");
	}
	cr_assert_eq(r, 0, "the handler's own fields all fit");
	zh_write_static(resp, body, sizeof body);
}

static zh_cors_t *sticky_cors;
static zh_gzip_t *sticky_gz;

static void setup_sticky(void)
{
	static const char *const origins[] = {"https://a.example"};
	zh_cors_options_t o;
	zh_gzip_options_t go;
	zh_middleware_t cmw, gmw;
	int err = 0;
	srv = new_server();
	zh_cors_options_init(&o);
	o.origins = origins;
	o.n_origins = 1;
	sticky_cors = zh_cors_new(&o, &err);
	cr_assert_not_null(sticky_cors, "zh_cors_new: %d", err);
	zh_gzip_options_init(&go);
	sticky_gz = zh_gzip_new(srv, &go, &err);
	cr_assert_not_null(sticky_gz, "zh_gzip_new: %d", err);
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/full-cors", 0, h_crowded, (void *)0), 0);
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/full-vary", 0, h_crowded, (void *)1), 0);
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/full-ce", 0, h_crowded, (void *)2), 0);
	cmw = zh_cors_middleware(sticky_cors);
	gmw = zh_gzip_middleware(sticky_gz);
	cr_assert_eq(zh_route_use(srv, "/full-cors", &cmw), 0);
	cr_assert_eq(zh_route_use(srv, "/full-vary", &gmw), 0);
	cr_assert_eq(zh_route_use(srv, "/full-ce", &gmw), 0);
	start();
}

static void teardown_sticky(void)
{
	teardown();
	zh_cors_free(sticky_cors);
	zh_gzip_free(sticky_gz);
}

TestSuite(sticky, .init = setup_sticky, .fini = teardown_sticky, .timeout = 20);

static void expect_500_without_fields(const response_t *r)
{
	cr_assert_eq(r->status, 500, "%s", r->head);
	cr_assert(!has(r, "X-F"), "no partial header set: %s", r->head);
	cr_assert(has(r, "\r\nDate: "));
	cr_assert_str_eq(r->body, "Internal Server Error\n");
}

static uint64_t header_errors_settled(void)
{
	zh_stats_t st;
	usleep(50000); /* the worker counts after the peer may already have read */
	zh_server_stats(srv, &st);
	return st.header_errors;
}

Test(sticky, a_cors_field_that_does_not_fit_fails_the_response)
{
	response_t r;
	get_with("/full-cors", "Origin: https://a.example\r\n", &r);
	expect_500_without_fields(&r);
	cr_assert(!has(&r, "Access-Control-"), "%s", r.head);
	cr_assert_eq(header_errors_settled(), 1);
}

Test(sticky, a_gzip_vary_that_does_not_fit_fails_the_response)
{
	response_t r;
	get_with("/full-vary", "Accept-Encoding: gzip\r\n", &r);
	expect_500_without_fields(&r);
	cr_assert(!has(&r, "Vary"));
	cr_assert_eq(header_errors_settled(), 1);
}

Test(sticky, gzip_never_sends_compressed_bytes_without_content_encoding)
{
	response_t r;
	/* Vary fits; Content-Encoding, set as the head is serialized, does not */
	get_with("/full-ce", "Accept-Encoding: gzip\r\n", &r);
	expect_500_without_fields(&r);
	cr_assert(!has(&r, "Content-Encoding"), "%s", r.head);
	cr_assert_eq(header_errors_settled(), 1);
	/* the same without gzip accepted: all 32 fields fit, nothing fails */
	get_with("/full-ce", NULL, &r);
	cr_assert_eq(r.status, 200);
	cr_assert(has(&r, "\r\nX-F29: 1\r\n"));
	cr_assert(has(&r, "\r\nVary: Accept-Encoding\r\n"));
	cr_assert_eq(r.body_len, 1000);
}

/* ---- auth --------------------------------------------------------------------------------- */

static zh_auth_t *auth;
static char dir[64], tokens_path[96], htpasswd_path[96];

static void write_file(const char *path, const char *text)
{
	char tmp[128];
	FILE *f;
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	f = fopen(tmp, "w");
	cr_assert_not_null(f);
	cr_assert_eq(fputs(text, f) >= 0, 1);
	cr_assert_eq(fclose(f), 0);
	cr_assert_eq(rename(tmp, path), 0); /* whole files only, as an operator should */
}

static void make_files(void)
{
	strcpy(dir, "/tmp/zh-mw-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(tokens_path, sizeof tokens_path, "%s/tokens", dir);
	snprintf(htpasswd_path, sizeof htpasswd_path, "%s/htpasswd", dir);
	write_file(tokens_path, "# comment\nsteady-token\n\n  other.token~+/==  \r\n"
				"svc-1:named.token\n");
	/* "secret" under sha512crypt, from `openssl passwd -6 -salt zerohttpsalt secret` */
	write_file(htpasswd_path, "ann:$6$zerohttpsalt$AZudaFV4acO6Ti3ubetGG8Qz9VMdbJyJc3PKJmkGm"
				  "Uoa.e86MfvbQAMRWzaUPSgRGmEImEkDBjzzW043iBjg2/\n");
}

static void remove_files(void)
{
	char p[128];
	unlink(tokens_path);
	unlink(htpasswd_path);
	snprintf(p, sizeof p, "%s.tmp", tokens_path);
	unlink(p);
	rmdir(dir);
}

/* Who the auth middleware says the request is (zh_req_auth_user), as the body. */
static void h_who(zh_request_t *req, zh_response_t *resp, void *arg)
{
	zh_slice_t who;
	char body[300];
	int n;
	(void)arg;
	if (zh_req_auth_user(req, &who))
		n = snprintf(body, sizeof body, "user:%.*s", (int)who.len, who.ptr);
	else
		n = snprintf(body, sizeof body, "nobody");
	(void)zh_reply(resp, 200, "text/plain", body, (size_t)n);
}

static void setup_auth(void)
{
	zh_auth_options_t o;
	zh_middleware_t mw;
	int err = 0;
	make_files();
	srv = new_server();
	zh_auth_options_init(&o);
	o.tokens_file = tokens_path;
	o.htpasswd_file = htpasswd_path;
	o.prefix = "/api/";
	auth = zh_auth_new(&o, &err);
	cr_assert_not_null(auth, "zh_auth_new: %d", err);
	mw = zh_auth_middleware(auth);
	cr_assert_eq(zh_server_use(srv, &mw), 0);
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/", ZH_ROUTE_PREFIX, h_plain, NULL), 0);
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/api/who", 0, h_who, NULL), 0);
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/who", 0, h_who, NULL), 0);
	start();
}

static void teardown_auth(void)
{
	teardown();
	zh_auth_free(auth);
	remove_files();
}

TestSuite(auth, .init = setup_auth, .fini = teardown_auth, .timeout = 20);

Test(auth, options_and_files_are_checked)
{
	char err_text[256];
	zh_auth_options_t o;
	int err = 0;
	zh_auth_options_init(&o);
	o.errbuf = err_text;
	o.errbuf_len = sizeof err_text;
	cr_assert_null(zh_auth_new(&o, &err), "no file at all");
	cr_assert_eq(err, -EINVAL);
	o.tokens_file = "/nonexistent/zh-tokens";
	cr_assert_null(zh_auth_new(&o, &err));
	cr_assert_eq(err, -ENOENT);
	o.tokens_file = tokens_path;
	o.realm = "a\"b";
	cr_assert_null(zh_auth_new(&o, &err));
	cr_assert_eq(err, -EINVAL);
	o.realm = NULL;
	static const char *const bad_prefixes[] = {"api", "/a//b", "/a/../b", "/./a", "/%61pi",
						   "/a/.", ""};
	for (size_t i = 0; i < sizeof bad_prefixes / sizeof bad_prefixes[0]; i++) {
		o.prefix = bad_prefixes[i];
		err = 0;
		cr_assert_null(zh_auth_new(&o, &err), "prefix %s accepted", bad_prefixes[i]);
		cr_assert_eq(err, -EINVAL);
	}
	o.prefix = "/api//"; /* trailing slashes are fine */
	zh_auth_t *fine = zh_auth_new(&o, &err);
	cr_assert_not_null(fine, "%d", err);
	zh_auth_free(fine);
	o.prefix = NULL;
	write_file(tokens_path, "good-one\nbad token with spaces SECRETWORD\n");
	cr_assert_null(zh_auth_new(&o, &err));
	cr_assert_eq(err, -EINVAL);
	cr_assert_not_null(strstr(err_text, "line 2"), "%s", err_text);
	cr_assert_null(strstr(err_text, "SECRET"), "a credential in an error text: %s", err_text);
	o.tokens_file = NULL;
	o.htpasswd_file = htpasswd_path;
	write_file(htpasswd_path, "ann:$apr1$abcdefgh$SECRETHASHxxxxxxxxxxxx\n");
	cr_assert_null(zh_auth_new(&o, &err));
	cr_assert_eq(err, -ENOTSUP);
	cr_assert_not_null(strstr(err_text, "line 1"), "%s", err_text);
	cr_assert_null(strstr(err_text, "SECRET"), "%s", err_text);
	write_file(htpasswd_path, "no-colon-here\n");
	cr_assert_null(zh_auth_new(&o, &err));
	cr_assert_eq(err, -EINVAL);
	cr_assert_null(strstr(err_text, "no-colon"), "%s", err_text);
}

static int status_of(const char *path, const char *authz)
{
	char extra[512] = "";
	response_t r;
	if (authz)
		snprintf(extra, sizeof extra, "Authorization: %s\r\n", authz);
	get_with(path, extra, &r);
	return r.status;
}

Test(auth, prefix_scoping_on_the_decoded_path)
{
	static const struct {
		const char *path;
		int status; /* without credentials */
	} cases[] = {
		/* "/apix" is covered too: a prefix route "/api" would match it */
		{"/", 200},	     {"/apix", 401},	   {"/ap", 200},	{"/public/x", 200},
		{"/api", 401},	     {"/api/", 401},	   {"/api/x?y=1", 401}, {"//api/x", 401},
		{"/%61pi/x", 401},   {"/api%2fx", 401},	   {"/x/../api/y", 401}, {"/./api", 401},
		{"/a/%2e%2e/api", 401}, {"/%00", 401},	{"/healthz", 200},
		{"/readyz", 200},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int st = status_of(cases[i].path, NULL);
		/* the route answers 200 for anything it is given; /healthz and /readyz are
		 * exempt even though they fall under the prefix "/" in other set-ups */
		cr_assert_eq(st, cases[i].status, "%s: %d", cases[i].path, st);
	}
}

Test(auth, credentials)
{
	response_t r;
	cr_assert_eq(status_of("/api/x", "Bearer steady-token"), 200);
	cr_assert_eq(status_of("/api/x", "bearer   other.token~+/=="), 200);
	cr_assert_eq(status_of("/api/x", "Bearer steady-toke"), 401);
	cr_assert_eq(status_of("/api/x", "Bearer steady-tokenX"), 401);
	cr_assert_eq(status_of("/api/x", "Bearer"), 401);
	cr_assert_eq(status_of("/api/x", "Token steady-token"), 401);
	cr_assert_eq(status_of("/api/x", "Basic YW5uOnNlY3JldA=="), 200);  /* ann:secret */
	cr_assert_eq(status_of("/api/x", "basic YW5uOnNlY3JldA"), 200);    /* no padding */
	cr_assert_eq(status_of("/api/x", "Basic YW5uOnNlY3JldQ=="), 401);  /* ann:secreu */
	cr_assert_eq(status_of("/api/x", "Basic Ym9iOnNlY3JldA=="), 401);  /* bob:secret */
	cr_assert_eq(status_of("/api/x", "Basic YW5uc2VjcmV0"), 401);      /* no colon */
	cr_assert_eq(status_of("/api/x", "Basic !!!"), 401);
	get_with("/api/x", "Authorization: Bearer wrong\r\n", &r);
	cr_assert(has(&r, "\r\nWWW-Authenticate: Basic realm=\"zerohttp\", charset=\"UTF-8\"\r\n"));
	cr_assert(has(&r, "\r\nWWW-Authenticate: Bearer realm=\"zerohttp\", "
			  "error=\"invalid_token\"\r\n"));
	cr_assert_str_eq(r.body, "401 Unauthorized\n");
	cr_assert(strstr(r.head, "wrong") == NULL);
}

/* The identity reaches the handler: the Basic user, a token's name (empty when the token
 * has none); nobody outside the prefix, where credentials are not checked. */
Test(auth, the_handler_sees_who_authenticated)
{
	response_t r;
	get_with("/api/who", "Authorization: Basic YW5uOnNlY3JldA==\r\n", &r);
	cr_assert_str_eq(r.body, "user:ann");
	get_with("/api/who", "Authorization: Bearer named.token\r\n", &r);
	cr_assert_str_eq(r.body, "user:svc-1");
	get_with("/api/who", "Authorization: Bearer steady-token\r\n", &r);
	cr_assert_str_eq(r.body, "user:");
	get_with("/who", "Authorization: Bearer named.token\r\n", &r);
	cr_assert_str_eq(r.body, "nobody");
	cr_assert_eq(status_of("/api/who", "Bearer svc-1:named.token"), 401);
	cr_assert_eq(status_of("/api/who", "Bearer svc-1"), 401);
}

Test(auth, token_names_are_checked)
{
	zh_auth_options_t o;
	char path[160];
	int err = 0;
	snprintf(path, sizeof path, "%s/bad-tokens", dir);
	zh_auth_options_init(&o);
	o.tokens_file = path;
	for (unsigned i = 0; i < 3; i++) {
		static const char *const bad[] = {":tok\n", "a b:tok\n", "name:\n"};
		write_file(path, bad[i]);
		cr_assert_null(zh_auth_new(&o, &err), "%s", bad[i]);
		cr_assert_eq(err, -EINVAL, "%s", bad[i]);
	}
	unlink(path);
}

/* Reloads race requests: a token that stays in every version always passes, one that
 * comes and goes is seen either way, and nothing is torn or freed under a reader. */
static volatile int reloading;

static void *reloader(void *arg)
{
	int n = 0;
	(void)arg;
	while (reloading) {
		write_file(tokens_path, n++ % 2 ? "steady-token\nflip-token\n"
						: "steady-token\nextra-1\nextra-2\n");
		cr_assert_eq(zh_auth_reload(auth), 0);
	}
	return NULL;
}

Test(auth, reload_while_requests_run)
{
	pthread_t t;
	int steady = 0, flip_ok = 0, flip_no = 0;
	reloading = 1;
	cr_assert_eq(pthread_create(&t, NULL, reloader, NULL), 0);
	for (int i = 0; i < 600; i++) {
		int st = status_of("/api/x", i % 2 ? "Bearer steady-token" : "Bearer flip-token");
		if (i % 2)
			steady += st == 200;
		else if (st == 200)
			flip_ok++;
		else
			flip_no++;
	}
	reloading = 0;
	pthread_join(t, NULL);
	cr_assert_eq(steady, 300);
	cr_assert_eq(flip_ok + flip_no, 300);
	write_file(tokens_path, "steady-token\n");
	cr_assert_eq(zh_auth_reload(auth), 0);
	cr_assert_eq(status_of("/api/x", "Bearer flip-token"), 401);
	cr_assert_eq(zh_auth_reload(auth), 0, "an unchanged file reloads as a no-op");
	write_file(tokens_path, "bad token\n");
	cr_assert_eq(zh_auth_reload(auth), -EINVAL);
	cr_assert_eq(status_of("/api/x", "Bearer steady-token"), 200, "the old set stays");
}
