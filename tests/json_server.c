/* json_server.c — a test-only server for tests/integration/test_19_json.py: every route
 * answers a document written with the zh_json writer only, so that Python's json module can
 * check it byte for byte.
 *
 *   json_server PORT        (0: any free port; the bound port is printed as "port N\n")
 *
 *   POST /str?flags=F       F: comma list of html, strict (may be empty). Answers
 *                           {"s": BODY, "k": {BODY: 1}, "a": [BODY, BODY]}
 *   GET  /deep?d=N          N nested arrays around a 0
 *   POST /doubles           body: lines of 16 hex digits (IEEE-754 bits) -> array of doubles
 *   POST /ints              body: lines "i <int64>" or "u <uint64>" -> array of integers
 *   GET  /big?n=N&len=L     N strings of L bytes of pattern(i), written by the handler
 *   GET  /bigp?n=N&len=L    the same written by a producer (~32 KiB per call)
 *   GET  /misuse?kind=K     writer misuse; see misuse()
 *   GET  /raw               zh_json_raw fragments, small and large
 *   GET  /html              a string and a key under ZH_JSON_ESCAPE_HTML
 *   GET  /all               every value type, empty containers, nesting
 *   GET  /deadline?ms=N&work=M  a deferred response with a worker timer as its deadline:
 *                           {"error":"deadline"} (504) after N ms, unless the simulated
 *                           work (a second timer, M ms; none without work=) answers first
 *                           {"done":true} (200); whichever fires cancels the other
 *   GET  /count?n=N         updates application metrics (zh_metric_*): app_requests_total
 *                           {route="/count"} + 1, app_work_seconds observes N ms, the gauge
 *                           app_inflight goes up and down; answers {"n":N}
 *   GET  /metrics           zh_metrics_handler: the library's metrics, then those above
 *   GET  /items/{id}        {"id": ID (decoded), "route": "/items/{id}"}
 *   POST /jr/field          the JSON reader on the request path (tests/integration/
 *                           test_44_json_read.py, with the malloc shim): body
 *                           {"id":I,"name":S,"price":D,"tags":[...],...} -> {"id":I,
 *                           "name":S,"price":D,"tags":N}; a refused body gets
 *                           zh_jdoc_reply_error's answer
 *   POST /jr/dump?depth=D&cap=N   the body parsed (max_depth D, N tokens; defaults 200 and
 *                           65536) and written back through the accessors in a canonical
 *                           form Python can compare with its own json module: see dump()
 *   POST /jr/stream         zh_req_json on a streaming route: its 500
 *   POST /jr/orders/{user}?currency=C&qty=Q&tag=T...   with Cookie: session=S; theme=T and
 *                           body {"id":I,"name":S,"price":D,"coupon":null|S,"items":[{"sku":
 *                           S,"n":K,"gift":B},...]}: everything read back in one JSON answer
 *                           and Set-Cookie last=I (test_44's combined zero-allocation run)
 *   every error the library answers (404, 405, 413, 431, 400...): {"error": STATUS,
 *   "route": PATTERN or null, "parsed": true/false}, from the error handler
 *   (zh_server_set_error_handler; tests/integration/test_32_routing.py)
 *
 * String i of /big and /bigp is the L bytes at offset (7 * i) % UNIT_LEN of the endless
 * repetition of unit[] (which has quotes, backslashes, controls, NUL, multibyte UTF-8, and
 * is cut anywhere, so invalid UTF-8 appears at the edges too). The test rebuilds it.
 */
#include <zerohttp.h>

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const unsigned char unit[] = {
	'a', 'b', '"', 'c', '\\', 'd', '/', 0x00, 0x01, 0x1f, 0x7f, '\n', '\t', '\r', '\b', '\f',
	' ', 0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xf0, 0x9f, 0x98, 0x80, '<', '>', '&', 0xe2, 0x80,
	0xa8, 'x', 'y', 'z', 0xdf, 0xbf,
};
enum { UNIT_LEN = sizeof unit, LEN_MAX = 8 << 20, N_MAX = 10000000 };
static unsigned char pattern[LEN_MAX + UNIT_LEN];

static zh_server_t *g_server;
static zh_metric_t *app_requests, *app_work, *app_inflight; /* GET /count, /deadline */

static void on_signal(int sig)
{
	(void)sig;
	if (g_server)
		zh_server_stop(g_server);
}

/* The value of query parameter name (without '='), or false if absent. */
static bool param(zh_slice_t q, const char *name, zh_slice_t *out)
{
	size_t nlen = strlen(name);
	const char *p = q.ptr, *end = q.ptr + q.len;
	while (p < end) {
		const char *amp = memchr(p, '&', (size_t)(end - p)), *stop = amp ? amp : end;
		if ((size_t)(stop - p) > nlen && memcmp(p, name, nlen) == 0 && p[nlen] == '=') {
			out->ptr = p + nlen + 1;
			out->len = (size_t)(stop - p - (long)nlen - 1);
			return true;
		}
		if ((size_t)(stop - p) == nlen && memcmp(p, name, nlen) == 0) {
			out->ptr = stop;
			out->len = 0;
			return true;
		}
		p = stop + 1;
	}
	return false;
}

/* A decimal query parameter in 0..max, def if absent, -1 if malformed. */
static long num_param(zh_request_t *req, const char *name, long def, long max)
{
	zh_slice_t v;
	long n = 0;
	if (!param(zh_req_query(req), name, &v))
		return def;
	if (v.len == 0)
		return -1;
	for (size_t i = 0; i < v.len; i++) {
		if (v.ptr[i] < '0' || v.ptr[i] > '9' || n > max)
			return -1;
		n = n * 10 + (v.ptr[i] - '0');
	}
	return n > max ? -1 : n;
}

static void bad_request(zh_response_t *resp, const char *why)
{
	(void)zh_reply(resp, 400, "text/plain", why, strlen(why));
}

static bool eq(const char *p, size_t n, const char *lit)
{
	return n == strlen(lit) && memcmp(p, lit, n) == 0;
}

/* ---- POST /str -------------------------------------------------------------------------- */

static void str(zh_request_t *req, zh_response_t *resp, void *arg)
{
	zh_slice_t body, f;
	unsigned flags = 0;
	zh_json_t *j;
	(void)arg;
	if (param(zh_req_query(req), "flags", &f)) {
		const char *p = f.ptr, *end = f.ptr + f.len;
		while (p < end) {
			const char *c = memchr(p, ',', (size_t)(end - p)), *stop = c ? c : end;
			if (eq(p, (size_t)(stop - p), "html"))
				flags |= ZH_JSON_ESCAPE_HTML;
			else if (eq(p, (size_t)(stop - p), "strict"))
				flags |= ZH_JSON_STRICT_UTF8;
			else if (stop != p) {
				bad_request(resp, "flags: html, strict\n");
				return;
			}
			p = stop + 1;
		}
	}
	if (zh_body_all(req, &body) < 0) {
		bad_request(resp, "no body\n");
		return;
	}
	j = zh_json_begin(resp, flags);
	zh_json_obj(j);
	zh_json_key(j, "s", 1);
	zh_json_str(j, body.ptr, body.len);
	zh_json_key(j, "k", 1);
	zh_json_obj(j);
	zh_json_key(j, body.ptr, body.len);
	zh_json_u64(j, 1);
	zh_json_end(j);
	zh_json_key(j, "a", 1);
	zh_json_arr(j);
	zh_json_str(j, body.ptr, body.len);
	zh_json_str(j, body.ptr, body.len);
	zh_json_end(j);
	zh_json_end(j);
}

/* ---- GET /deep -------------------------------------------------------------------------- */

static void deep(zh_request_t *req, zh_response_t *resp, void *arg)
{
	long d = num_param(req, "d", -1, 1000);
	zh_json_t *j;
	(void)arg;
	if (d < 0) {
		bad_request(resp, "d=0..1000\n");
		return;
	}
	j = zh_json_begin(resp, 0);
	for (long i = 0; i < d; i++)
		zh_json_arr(j);
	zh_json_i64(j, 0);
	for (long i = 0; i < d; i++)
		zh_json_end(j);
}

/* ---- POST /doubles, POST /ints ------------------------------------------------------------ */

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The next line of [*p, end) without its '\n'; false at the end. */
static bool next_line(const char **p, const char *end, const char **line, size_t *len)
{
	const char *nl;
	if (*p >= end)
		return false;
	nl = memchr(*p, '\n', (size_t)(end - *p));
	*line = *p;
	*len = (size_t)((nl ? nl : end) - *p);
	*p = nl ? nl + 1 : end;
	return true;
}

static void doubles(zh_request_t *req, zh_response_t *resp, void *arg)
{
	zh_slice_t body;
	const char *p, *end, *line;
	size_t len;
	zh_json_t *j;
	(void)arg;
	if (zh_body_all(req, &body) < 0) {
		bad_request(resp, "no body\n");
		return;
	}
	/* validate everything first, so that a bad request is a 400 and not a broken document */
	for (p = body.ptr, end = body.ptr + body.len; next_line(&p, end, &line, &len);) {
		bool ok = len == 16;
		for (size_t i = 0; ok && i < 16; i++)
			ok = hexval(line[i]) >= 0;
		if (!ok) {
			bad_request(resp, "lines of 16 hex digits\n");
			return;
		}
	}
	j = zh_json_begin(resp, 0);
	zh_json_arr(j);
	for (p = body.ptr; next_line(&p, end, &line, &len);) {
		uint64_t bits = 0;
		double v;
		for (size_t i = 0; i < 16; i++)
			bits = bits << 4 | (uint64_t)hexval(line[i]);
		memcpy(&v, &bits, sizeof v);
		zh_json_double(j, v);
	}
	zh_json_end(j);
}

static bool parse_u64(const char *s, size_t n, uint64_t *out)
{
	uint64_t v = 0;
	if (n == 0 || n > 20)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned d = (unsigned)(s[i] - '0');
		if (d > 9 || v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*out = v;
	return true;
}

static void ints(zh_request_t *req, zh_response_t *resp, void *arg)
{
	zh_slice_t body;
	const char *p, *end, *line;
	size_t len;
	zh_json_t *j;
	(void)arg;
	if (zh_body_all(req, &body) < 0) {
		bad_request(resp, "no body\n");
		return;
	}
	for (int pass = 0; pass < 2; pass++) {
		j = pass ? zh_json_begin(resp, 0) : NULL;
		if (j)
			zh_json_arr(j);
		for (p = body.ptr, end = body.ptr + body.len; next_line(&p, end, &line, &len);) {
			uint64_t v;
			bool neg = len > 3 && line[2] == '-';
			bool ok = len > 2 && (line[0] == 'i' || line[0] == 'u') && line[1] == ' ' &&
				  parse_u64(line + 2 + neg, len - 2 - neg, &v) &&
				  (line[0] == 'u' ? !neg
						  : (neg ? v <= (uint64_t)INT64_MAX + 1
							 : v <= (uint64_t)INT64_MAX));
			if (!ok) {
				bad_request(resp, "lines 'i <int64>' or 'u <uint64>'\n");
				return;
			}
			if (!j)
				continue;
			if (line[0] == 'u')
				zh_json_u64(j, v);
			else if (neg)
				zh_json_i64(j, v == (uint64_t)INT64_MAX + 1 ? INT64_MIN
									   : -(int64_t)v);
			else
				zh_json_i64(j, (int64_t)v);
		}
		if (j)
			zh_json_end(j);
	}
}

/* ---- GET /big, GET /bigp ------------------------------------------------------------------ */

struct big_state {
	uint64_t next, n, len;
};

static void big_item(zh_json_t *j, const struct big_state *st, uint64_t i)
{
	zh_json_str(j, (const char *)pattern + (7 * i) % UNIT_LEN, (size_t)st->len);
}

static bool big_args(zh_request_t *req, zh_response_t *resp, struct big_state *st)
{
	long n = num_param(req, "n", -1, N_MAX), len = num_param(req, "len", -1, LEN_MAX);
	if (n < 0 || len < 0) {
		bad_request(resp, "n=0..10000000&len=0..8388608\n");
		return false;
	}
	st->next = 0;
	st->n = (uint64_t)n;
	st->len = (uint64_t)len;
	return true;
}

static void big(zh_request_t *req, zh_response_t *resp, void *arg)
{
	struct big_state st;
	zh_json_t *j;
	(void)arg;
	if (!big_args(req, resp, &st))
		return;
	j = zh_json_begin(resp, 0);
	zh_json_arr(j);
	for (uint64_t i = 0; i < st.n; i++)
		big_item(j, &st, i);
	zh_json_end(j);
}

static int big_more(zh_response_t *resp, void *arg)
{
	struct big_state *st = arg;
	zh_json_t *j;
	uint64_t stop;
	if (resp == NULL)
		return 0; /* the state lives in the response */
	j = zh_json_get(resp);
	if (j == NULL || zh_json_error(j))
		return -EIO;
	stop = zh_resp_body_len(resp) + 32 * 1024;
	do {
		if (st->next == st->n) {
			zh_json_end(j);
			return zh_json_error(j) ? -EIO : ZH_PRODUCE_DONE;
		}
		big_item(j, st, st->next++);
	} while (zh_resp_body_len(resp) < stop);
	return zh_json_error(j) ? -EIO : ZH_PRODUCE_MORE;
}

static void bigp(zh_request_t *req, zh_response_t *resp, void *arg)
{
	struct big_state *st = zh_resp_state(resp);
	(void)arg;
	if (!big_args(req, resp, st))
		return;
	zh_json_arr(zh_json_begin(resp, 0));
	if (zh_resp_produce(resp, big_more, st) < 0)
		return; /* the document stays unfinished: a 500 */
}

/* ---- GET /misuse -------------------------------------------------------------------------- */

/* Every kind but "ok" leaves an erroneous or unfinished document: a 500 before the head left
 * ("late": after ~100 KiB went chunked, then the connection is cut). */
static void misuse(zh_request_t *req, zh_response_t *resp, void *arg)
{
	zh_slice_t k;
	zh_json_t *j;
	(void)arg;
	if (!param(zh_req_query(req), "kind", &k)) {
		bad_request(resp, "kind=...\n");
		return;
	}
#define KIND(name) eq(k.ptr, k.len, name)
	if (KIND("ok")) { /* the control: a valid document through the same route */
		j = zh_json_begin(resp, 0);
		zh_json_obj(j);
		zh_json_key(j, "a", 1);
		zh_json_u64(j, 1);
		zh_json_end(j);
	} else if (KIND("value_without_key")) {
		j = zh_json_begin(resp, 0);
		zh_json_obj(j);
		zh_json_u64(j, 1);
		zh_json_end(j);
	} else if (KIND("unbalanced_end")) {
		j = zh_json_begin(resp, 0);
		zh_json_end(j);
	} else if (KIND("unbalanced_end_after")) {
		j = zh_json_begin(resp, 0);
		zh_json_arr(j);
		zh_json_end(j);
		zh_json_end(j);
	} else if (KIND("unclosed")) {
		j = zh_json_begin(resp, 0);
		zh_json_obj(j);
		zh_json_key(j, "a", 1);
		zh_json_u64(j, 1);
	} else if (KIND("empty")) {
		(void)zh_json_begin(resp, 0); /* no value at all */
	} else if (KIND("two_top")) {
		j = zh_json_begin(resp, 0);
		zh_json_u64(j, 1);
		zh_json_u64(j, 2);
	} else if (KIND("key_in_array")) {
		j = zh_json_begin(resp, 0);
		zh_json_arr(j);
		zh_json_key(j, "a", 1);
		zh_json_u64(j, 1);
		zh_json_end(j);
	} else if (KIND("key_twice")) {
		j = zh_json_begin(resp, 0);
		zh_json_obj(j);
		zh_json_key(j, "a", 1);
		zh_json_key(j, "b", 1);
		zh_json_u64(j, 1);
		zh_json_end(j);
	} else if (KIND("end_after_key")) {
		j = zh_json_begin(resp, 0);
		zh_json_obj(j);
		zh_json_key(j, "a", 1);
		zh_json_end(j);
	} else if (KIND("key_at_top")) {
		j = zh_json_begin(resp, 0);
		zh_json_key(j, "a", 1);
		zh_json_u64(j, 1);
	} else if (KIND("nan") || KIND("inf") || KIND("ninf")) {
		j = zh_json_begin(resp, 0);
		zh_json_arr(j);
		zh_json_u64(j, 1);
		zh_json_double(j, KIND("nan") ? NAN : KIND("inf") ? INFINITY : -INFINITY);
		zh_json_u64(j, 2);
		zh_json_end(j);
	} else if (KIND("begin_twice")) {
		j = zh_json_begin(resp, 0);
		zh_json_arr(j);
		zh_json_end(j);
		j = zh_json_begin(resp, 0);
		zh_json_arr(j);
		zh_json_end(j);
	} else if (KIND("strict")) {
		j = zh_json_begin(resp, ZH_JSON_STRICT_UTF8);
		zh_json_arr(j);
		zh_json_str(j, "ok", 2);
		zh_json_str(j, "bad\xff", 4);
		zh_json_end(j);
	} else if (KIND("late")) {
		/* ~100 KiB of a valid array (pattern strings, as /big), so the head has left and
		 * the body goes chunked; then a key inside the array. Nothing after the error may
		 * be emitted: the client gets a strict prefix of the array, then EOF. */
		struct big_state st = {0, 0, 100};
		uint64_t i = 0;
		j = zh_json_begin(resp, 0);
		zh_json_arr(j);
		while (zh_resp_body_len(resp) < 100 * 1024)
			big_item(j, &st, i++);
		zh_json_key(j, "a", 1);
		zh_json_str(j, "AFTER", 5);
		zh_json_end(j);
	} else {
		bad_request(resp, "unknown kind\n");
	}
#undef KIND
}

/* ---- GET /raw, GET /html, GET /all -------------------------------------------------------- */

static char raw_big[40 * 1024];
static size_t raw_big_len;

static void raw(zh_request_t *req, zh_response_t *resp, void *arg)
{
	zh_json_t *j = zh_json_begin(resp, 0);
	(void)req;
	(void)arg;
	zh_json_arr(j);
	zh_json_raw(j, "{\"a\":[1,2,{\"b\":null}],\"c\":\"\\u00e9\"}", 35);
	zh_json_raw(j, "123", 3);
	zh_json_str(j, "x", 1);
	zh_json_raw(j, raw_big, raw_big_len);
	zh_json_obj(j);
	zh_json_key(j, "r", 1);
	zh_json_raw(j, "[true,false]", 12);
	zh_json_end(j);
	zh_json_end(j);
}

static const char html_text[] = "</script><b>&amp;\xe2\x80\xa8|\xe2\x80\xa9'\"</";

static void html(zh_request_t *req, zh_response_t *resp, void *arg)
{
	zh_json_t *j = zh_json_begin(resp, ZH_JSON_ESCAPE_HTML);
	(void)req;
	(void)arg;
	zh_json_obj(j);
	zh_json_key(j, "s", 1);
	zh_json_str(j, html_text, sizeof html_text - 1);
	zh_json_key(j, html_text, sizeof html_text - 1);
	zh_json_u64(j, 1);
	zh_json_end(j);
}

static void all(zh_request_t *req, zh_response_t *resp, void *arg)
{
	zh_json_t *j = zh_json_begin(resp, 0);
	(void)req;
	(void)arg;
	zh_json_obj(j);
	zh_json_key(j, "t", 1);
	zh_json_bool(j, 1);
	zh_json_key(j, "f", 1);
	zh_json_bool(j, 0);
	zh_json_key(j, "t2", 2);
	zh_json_bool(j, 42); /* any non-zero is true */
	zh_json_key(j, "n", 1);
	zh_json_null(j);
	zh_json_key(j, "", 0);
	zh_json_str(j, "", 0);
	zh_json_key(j, "eo", 2);
	zh_json_obj(j);
	zh_json_end(j);
	zh_json_key(j, "ea", 2);
	zh_json_arr(j);
	zh_json_end(j);
	zh_json_key(j, "nest", 4);
	zh_json_arr(j);
	zh_json_obj(j);
	zh_json_key(j, "x", 1);
	zh_json_arr(j);
	zh_json_arr(j);
	zh_json_end(j);
	zh_json_obj(j);
	zh_json_end(j);
	zh_json_null(j);
	zh_json_end(j);
	zh_json_end(j);
	zh_json_i64(j, -7);
	zh_json_u64(j, 7);
	zh_json_double(j, 1.5);
	zh_json_double(j, -0.0);
	zh_json_double(j, 100.0);
	zh_json_str(j, "s", 1);
	zh_json_end(j);
	zh_json_key(j, "dup", 3);
	zh_json_u64(j, 1);
	zh_json_end(j);
}

/* ---- GET /deadline: worker timers (zh_timer_start) ---------------------------------------- */

struct deadline_call {
	zh_deferred_t token;
	zh_timer_t deadline, work;
};

static void deadline_answer(zh_request_t *req, zh_response_t *resp, void *arg)
{
	zh_json_t *j;
	(void)req;
	if (resp == NULL)
		return;
	if (arg == NULL) {
		zh_write_header(resp, 504);
		j = zh_json_begin(resp, 0);
		zh_json_obj(j);
		zh_json_key(j, "error", 5);
		zh_json_str(j, "deadline", 8);
	} else {
		j = zh_json_begin(resp, 0);
		zh_json_obj(j);
		zh_json_key(j, "done", 4);
		zh_json_bool(j, 1);
	}
	zh_json_end(j);
}

/* Both timers end here; the one that fires disarms the other, so one answer is made. */
static void deadline_fired(struct deadline_call *c, bool work)
{
	(void)zh_timer_cancel(work ? &c->deadline : &c->work);
	if (zh_deferred_resume(&c->token, deadline_answer, work ? c : NULL) < 0)
		fprintf(stderr, "json_server: deadline resume refused\n");
}

static void on_deadline(zh_request_t *req, void *arg)
{
	(void)req;
	deadline_fired(arg, false);
}

static void on_work(zh_request_t *req, void *arg)
{
	(void)req;
	deadline_fired(arg, true);
}

static void deadline(zh_request_t *req, zh_response_t *resp, void *arg)
{
	struct deadline_call *c = zh_resp_state(resp);
	long ms = num_param(req, "ms", 100, 600000), work = num_param(req, "work", -2, 600000);
	(void)arg;
	if (ms < 0 || work == -1) {
		bad_request(resp, "ms, work: 0..600000\n");
		return;
	}
	zh_timer_init(&c->deadline);
	zh_timer_init(&c->work);
	if (zh_metric_add(app_requests, 1, 1) < 0) /* app_routes[1]: "/deadline" */
		fprintf(stderr, "json_server: app_requests_total refused\n");
	if (zh_resp_defer(resp, &c->token) < 0)
		return; /* an empty 200 */
	/* a start cannot fail here (valid timers, a live request): were it to, the deadline
	 * would be lost and the request would hang, so answer now instead */
	if (zh_timer_start(req, &c->deadline, (uint64_t)ms, on_deadline, c) < 0 ||
	    (work >= 0 && zh_timer_start(req, &c->work, (uint64_t)work, on_work, c) < 0))
		deadline_fired(c, false);
}

/* ---- GET /count: application metrics (zh_metric_*) ----------------------------------------- */

/* The label values are route patterns declared up front, never a path from a request; a
 * handler picks its series by its own pattern (zh_req_route once routes have patterns). */
static const char *const app_routes[] = {"/count", "/deadline", "/all"};
static const double work_buckets[] = {0.001, 0.01, 0.1, 1};
static int register_metrics(zh_server_t *srv)
{
	zh_metric_options_t o;
	int err = 0;
	zh_metric_options_init(&o);
	o.name = "app_requests_total";
	o.help = "Requests by route pattern.";
	o.label = "route";
	o.values = app_routes;
	o.nvalues = 3;
	if ((app_requests = zh_metric_new(srv, &o, &err)) == NULL)
		return err;
	o.name = "app_work_seconds";
	o.help = "Simulated work by route pattern.";
	o.type = ZH_METRIC_HISTOGRAM;
	o.buckets = work_buckets;
	o.nbuckets = 4;
	if ((app_work = zh_metric_new(srv, &o, &err)) == NULL)
		return err;
	zh_metric_options_init(&o);
	o.name = "app_inflight";
	o.help = "Requests inside the /count handler.";
	o.type = ZH_METRIC_GAUGE;
	if ((app_inflight = zh_metric_new(srv, &o, &err)) == NULL)
		return err;
	return 0;
}

static void count(zh_request_t *req, zh_response_t *resp, void *arg)
{
	int series = zh_metric_series(app_requests, "/count", 6);
	long n = num_param(req, "n", 0, 1000000);
	zh_json_t *j;
	(void)arg;
	if (n < 0) {
		bad_request(resp, "n: 0..1000000\n");
		return;
	}
	/* a refused update is a bug here (a fixed series, the right types): say so */
	if (series < 0 || zh_metric_add(app_inflight, 0, 1) < 0 ||
	    zh_metric_add(app_requests, (unsigned)series, 1) < 0 ||
	    zh_metric_observe(app_work, (unsigned)series, (double)n / 1000) < 0 ||
	    zh_metric_add(app_inflight, 0, -1) < 0) {
		(void)zh_reply(resp, 500, "text/plain", "metric refused\n", 15);
		return;
	}
	j = zh_json_begin(resp, 0);
	zh_json_obj(j);
	zh_json_key(j, "n", 1);
	zh_json_i64(j, n);
	zh_json_end(j);
}

/* ---- the JSON reader: POST /jr/field, /jr/dump, /jr/stream ------------------------------ */

/* The request path of a JSON API: tokens on the stack, strings unescaped into a stack
 * buffer, the answer through the writer. Nothing here may allocate (test_44 counts). */
static void jr_field(zh_request_t *req, zh_response_t *resp, void *arg)
{
	zh_jtok_t tok[256];
	zh_jdoc_t doc;
	char name[256];
	int64_t id;
	double price;
	ssize_t n;
	uint32_t tags;
	zh_json_t *j;
	(void)arg;
	if (zh_req_json(req, &doc, tok, 256, 0) < 0) {
		if (zh_jdoc_reply_error(resp, &doc) < 0)
			bad_request(resp, "reply_error failed\n");
		return;
	}
	tags = zh_jdoc_member(&doc, 0, "tags");
	n = zh_jdoc_string(&doc, zh_jdoc_member(&doc, 0, "name"), name, sizeof name);
	if (zh_jdoc_i64(&doc, zh_jdoc_member(&doc, 0, "id"), &id) < 0 || n < 0 ||
	    (size_t)n >= sizeof name ||
	    zh_jdoc_double(&doc, zh_jdoc_member(&doc, 0, "price"), &price) < 0 ||
	    zh_jdoc_type(&doc, tags) != ZH_JT_ARRAY) {
		bad_request(resp, "want {\"id\":int,\"name\":str,\"price\":num,\"tags\":[]}\n");
		return;
	}
	j = zh_json_begin(resp, 0);
	zh_json_obj(j);
	zh_json_key(j, "id", 2);
	zh_json_i64(j, id);
	zh_json_key(j, "name", 4);
	zh_json_str(j, name, (size_t)n);
	zh_json_key(j, "price", 5);
	zh_json_double(j, price);
	zh_json_key(j, "tags", 4);
	zh_json_u64(j, zh_jdoc_count(&doc, tags));
	zh_json_end(j);
}

/* POST /jr/orders/{user}: the "combined" request of issue 13's zero-allocation run
 * (test_44): one handler that reads a path parameter, query lookups (a decoded value, an
 * integer, a repeated name), cookies and a JSON body, sets a cookie and answers in JSON.
 * Everything lives on the stack or in the request; nothing may allocate. */
struct order {
	zh_slice_t user, session, theme;
	char currency[16], name[128];
	ssize_t currency_len, name_len;
	int64_t qty, id, units;
	unsigned tags, gifts;
	uint32_t items;
	double price;
	bool coupon; /* "coupon" is a string, not null */
};

/* ?currency=C&qty=Q&tag=...&tag=...: currency decoded, qty an integer, the tags counted */
static bool order_query(zh_request_t *req, struct order *o)
{
	zh_slice_t q = zh_req_query(req), name, value, raw;
	zh_form_iter_t it;
	char num[24];
	ssize_t n;
	int r;
	o->currency_len = zh_form_get(q, "currency", o->currency, sizeof o->currency);
	if (o->currency_len < 0 || zh_form_get_raw(q, "qty", &raw) != 1)
		return false;
	n = zh_form_decode(raw, num, sizeof num);
	if (n < 0 || zh_slice_to_i64((zh_slice_t){num, (size_t)n}, &o->qty) < 0)
		return false;
	o->tags = 0;
	zh_form_iter_init(&it, q);
	while ((r = zh_form_next(&it, &name, &value)) == 1)
		o->tags += (unsigned)zh_slice_eq_str(name, "tag");
	return r == 0;
}

/* {"id":I,"name":S,"price":D,"coupon":null|S,"items":[{"sku":S,"n":K,"gift":B},...]} */
static bool order_items(const zh_jdoc_t *d, uint32_t items, struct order *o)
{
	uint32_t k;
	int64_t n;
	int gift;
	o->units = 0;
	o->gifts = 0;
	for (k = zh_jdoc_first(d, items); k != ZH_JDOC_NONE; k = zh_jdoc_next(d, items, k)) {
		if (zh_jdoc_type(d, zh_jdoc_member(d, k, "sku")) != ZH_JT_STRING ||
		    zh_jdoc_i64(d, zh_jdoc_member(d, k, "n"), &n) < 0 ||
		    zh_jdoc_bool(d, zh_jdoc_member(d, k, "gift"), &gift) < 0)
			return false;
		o->units += n;
		o->gifts += (unsigned)gift;
	}
	o->items = zh_jdoc_count(d, items);
	return true;
}

static bool order_body(const zh_jdoc_t *d, struct order *o)
{
	uint32_t items = zh_jdoc_member(d, 0, "items");
	uint32_t coupon = zh_jdoc_member(d, 0, "coupon");
	o->name_len = zh_jdoc_string(d, zh_jdoc_member(d, 0, "name"), o->name, sizeof o->name);
	if (o->name_len < 0 || (size_t)o->name_len >= sizeof o->name ||
	    zh_jdoc_i64(d, zh_jdoc_member(d, 0, "id"), &o->id) < 0 ||
	    zh_jdoc_double(d, zh_jdoc_member(d, 0, "price"), &o->price) < 0 ||
	    zh_jdoc_type(d, items) != ZH_JT_ARRAY ||
	    (!zh_jdoc_is_null(d, coupon) && zh_jdoc_type(d, coupon) != ZH_JT_STRING))
		return false;
	o->coupon = !zh_jdoc_is_null(d, coupon);
	return order_items(d, items, o);
}

static void order_answer(zh_response_t *resp, const struct order *o)
{
	zh_json_t *j = zh_json_begin(resp, 0);
	zh_json_obj(j);
	zh_json_key(j, "user", 4);
	zh_json_str(j, o->user.ptr, o->user.len);
	zh_json_key(j, "currency", 8);
	zh_json_str(j, o->currency, (size_t)o->currency_len);
	zh_json_key(j, "qty", 3);
	zh_json_i64(j, o->qty);
	zh_json_key(j, "tags", 4);
	zh_json_u64(j, o->tags);
	zh_json_key(j, "session", 7);
	zh_json_str(j, o->session.ptr, o->session.len);
	zh_json_key(j, "theme", 5);
	zh_json_str(j, o->theme.ptr, o->theme.len);
	zh_json_key(j, "id", 2);
	zh_json_i64(j, o->id);
	zh_json_key(j, "name", 4);
	zh_json_str(j, o->name, (size_t)o->name_len);
	zh_json_key(j, "price", 5);
	zh_json_double(j, o->price);
	zh_json_key(j, "coupon", 6);
	zh_json_bool(j, o->coupon);
	zh_json_key(j, "items", 5);
	zh_json_u64(j, o->items);
	zh_json_key(j, "units", 5);
	zh_json_i64(j, o->units);
	zh_json_key(j, "gifts", 5);
	zh_json_u64(j, o->gifts);
	zh_json_end(j);
}

static void jr_order(zh_request_t *req, zh_response_t *resp, void *arg)
{
	zh_jtok_t tok[128];
	zh_jdoc_t doc;
	struct order o;
	zh_cookie_t c;
	char last[24];
	(void)arg;
	if (!zh_req_param(req, "user", &o.user) || zh_req_cookie(req, "session", &o.session) != 1 ||
	    zh_req_cookie(req, "theme", &o.theme) != 1 || !order_query(req, &o)) {
		bad_request(resp, "want ?currency=&qty=&tag= and cookies session, theme\n");
		return;
	}
	if (zh_req_json(req, &doc, tok, 128, 8) < 0) {
		if (zh_jdoc_reply_error(resp, &doc) < 0)
			bad_request(resp, "reply_error failed\n");
		return;
	}
	if (!order_body(&doc, &o)) {
		bad_request(resp, "want {\"id\",\"name\",\"price\",\"coupon\",\"items\":[...]}\n");
		return;
	}
	zh_cookie_init(&c);
	snprintf(last, sizeof last, "%lld", (long long)o.id);
	c.name = "last";
	c.value = last;
	c.path = "/jr";
	c.http_only = 1;
	c.same_site = ZH_SAMESITE_LAX;
	if (zh_resp_set_cookie(resp, &c) < 0) {
		bad_request(resp, "set_cookie failed\n");
		return;
	}
	order_answer(resp, &o);
}

/* Value i in the canonical form of /jr/dump: an object as {"o": [[key, value], ...]} (order
 * and duplicates kept), an array as itself, a string unescaped (and escaped again by the
 * writer), an integer that fits int64 as itself, one that does not as {"big": "<text>"}, any
 * other number as the bits of the double zh_jdoc_double gives, {"f": "<16 hex digits>"}
 * ({"inf": 1 or -1} past DBL_MAX), true,
 * false and null as themselves. Returns false if an accessor failed. */
static bool dump(zh_json_t *j, const zh_jdoc_t *d, uint32_t i)
{
	int64_t v;
	double x;
	int r;
	switch (zh_jdoc_type(d, i)) {
	case ZH_JT_OBJECT:
		zh_json_obj(j);
		zh_json_key(j, "o", 1);
		zh_json_arr(j);
		for (uint32_t k = zh_jdoc_first(d, i); k != ZH_JDOC_NONE;
		     k = zh_jdoc_next(d, i, k)) {
			zh_json_arr(j);
			if (!dump(j, d, k) || !dump(j, d, k + 1))
				return false;
			zh_json_end(j);
		}
		zh_json_end(j);
		zh_json_end(j);
		return true;
	case ZH_JT_ARRAY:
		zh_json_arr(j);
		for (uint32_t k = zh_jdoc_first(d, i); k != ZH_JDOC_NONE; k = zh_jdoc_next(d, i, k))
			if (!dump(j, d, k))
				return false;
		zh_json_end(j);
		return true;
	case ZH_JT_STRING: {
		ssize_t n = zh_jdoc_string(d, i, NULL, 0);
		char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
		bool ok = s && zh_jdoc_string(d, i, s, (size_t)n + 1) == n;
		if (ok)
			zh_json_str(j, s, (size_t)n);
		free(s);
		return ok;
	}
	case ZH_JT_NUMBER:
		r = zh_jdoc_i64(d, i, &v);
		if (r == 0) {
			zh_json_i64(j, v);
			return true;
		}
		if (r == -ERANGE) {
			zh_slice_t raw = zh_jdoc_raw(d, i);
			zh_json_obj(j);
			zh_json_key(j, "big", 3);
			zh_json_str(j, raw.ptr, raw.len);
			zh_json_end(j);
			return true;
		}
		r = zh_jdoc_double(d, i, &x);
		if (r == -ERANGE) {
			zh_json_obj(j);
			zh_json_key(j, "inf", 3);
			zh_json_i64(j, x < 0 ? -1 : 1);
			zh_json_end(j);
			return true;
		}
		{
			/* the bits, so that -0 and the last ulp survive the trip */
			uint64_t bits;
			char hex[17];
			memcpy(&bits, &x, sizeof bits);
			snprintf(hex, sizeof hex, "%016llx", (unsigned long long)bits);
			zh_json_obj(j);
			zh_json_key(j, "f", 1);
			zh_json_str(j, hex, 16);
			zh_json_end(j);
		}
		return r == 0;
	case ZH_JT_TRUE:
	case ZH_JT_FALSE:
		zh_json_bool(j, zh_jdoc_type(d, i) == ZH_JT_TRUE);
		return true;
	case ZH_JT_NULL:
		zh_json_null(j);
		return true;
	default:
		return false;
	}
}

static void jr_dump(zh_request_t *req, zh_response_t *resp, void *arg)
{
	long depth = num_param(req, "depth", 200, 100000);
	long cap = num_param(req, "cap", 65536, 1 << 22);
	zh_jtok_t *tok;
	zh_jdoc_t doc;
	(void)arg;
	if (depth < 0 || cap < 0 || (tok = malloc((size_t)(cap ? cap : 1) * sizeof *tok)) == NULL) {
		bad_request(resp, "depth=N&cap=N\n");
		return;
	}
	if (zh_req_json(req, &doc, tok, (size_t)cap, (unsigned)depth) < 0) {
		if (zh_jdoc_reply_error(resp, &doc) < 0)
			bad_request(resp, "reply_error failed\n");
	} else if (!dump(zh_json_begin(resp, 0), &doc, 0)) {
		/* an accessor failed: the document stays unfinished, which the writer answers
		 * with a 500 (the test fails on it) */
	}
	free(tok);
}

static void jr_stream(zh_request_t *req, zh_response_t *resp, void *arg)
{
	zh_jtok_t tok[4];
	zh_jdoc_t doc;
	(void)arg;
	if (zh_req_json(req, &doc, tok, 4, 0) == -ENOTSUP && doc.reason == ZH_JE_BODY &&
	    zh_jdoc_reply_error(resp, &doc) == 0)
		return;
	bad_request(resp, "zh_req_json did not refuse a streaming route\n");
}

/* GET /malloc: one allocation on this worker thread; answers how many zerohttpd's malloc
 * wrapper (cmd/zerohttpd/heap_count.c, linked in here too) counted, so that a test can show
 * zerohttp_heap_allocations_total would see it. */
static void malloc_route(zh_request_t *req, zh_response_t *resp, void *arg)
{
	zh_stats_t before, after;
	void *volatile p;
	char body[32];
	int n;
	(void)req, (void)arg;
	zh_server_stats(g_server, &before);
	p = malloc(64);
	free(p);
	zh_server_stats(g_server, &after);
	n = snprintf(body, sizeof body, "%llu\n",
		     (unsigned long long)(after.heap_allocs - before.heap_allocs));
	zh_reply(resp, 200, "text/plain", body, (size_t)n);
}

static void item(zh_request_t *req, zh_response_t *resp, void *arg)
{
	zh_json_t *j = zh_json_begin(resp, 0);
	zh_slice_t id = {"", 0};
	const char *route = zh_req_route(req);
	(void)arg;
	(void)zh_req_param(req, "id", &id);
	zh_json_obj(j);
	zh_json_key(j, "id", 2);
	zh_json_str(j, id.ptr, id.len);
	zh_json_key(j, "route", 5);
	zh_json_str(j, route, strlen(route));
	zh_json_end(j);
}

/* A JSON API answers its errors in JSON too: the status is the library's. */
static void json_error(zh_request_t *req, zh_response_t *resp, int status, void *arg)
{
	zh_json_t *j = zh_json_begin(resp, 0);
	const char *route = zh_req_route(req);
	(void)arg;
	zh_json_obj(j);
	zh_json_key(j, "error", 5);
	zh_json_i64(j, status);
	zh_json_key(j, "route", 5);
	if (route)
		zh_json_str(j, route, strlen(route));
	else
		zh_json_null(j);
	zh_json_key(j, "parsed", 6);
	zh_json_bool(j, zh_req_parsed(req));
	zh_json_end(j);
}

int main(int argc, char **argv)
{
	zh_config_t cfg;
	struct sigaction sa;
	char *endp;
	long port;
	int err = 0, r;

	if (argc != 2 || (port = strtol(argv[1], &endp, 10), *endp != '\0') || port < 0 ||
	    port > 65535) {
		fprintf(stderr, "usage: json_server PORT\n");
		return 2;
	}
	for (size_t i = 0; i < sizeof pattern; i++)
		pattern[i] = unit[i % UNIT_LEN];
	raw_big[0] = '[';
	raw_big_len = 1;
	while (raw_big_len + 12 < sizeof raw_big)
		raw_big_len += (size_t)snprintf(raw_big + raw_big_len, 12, "%zu,", raw_big_len);
	raw_big[raw_big_len - 1] = ']';

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	zh_config_init(&cfg);
	cfg.port = (uint16_t)port;
	cfg.workers = 2;
	cfg.max_body = LEN_MAX;
	cfg.body_buffers = 4;
	cfg.io_contexts = 64;
	cfg.max_connections = 256;
	/* the suite's backend (tests/integration/harness.py: ZH_IO=uring) */
	cfg.io = getenv("ZH_IO") && strcmp(getenv("ZH_IO"), "uring") == 0 ? ZH_IO_URING
									  : ZH_IO_EPOLL;
	g_server = zh_server_new(&cfg, &err);
	if (g_server == NULL) {
		fprintf(stderr, "json_server: cannot start: %s\n", strerror(-err));
		return 1;
	}
	if (zh_server_route(g_server, ZH_GET, "/malloc", 0, malloc_route, NULL) < 0 ||
	    zh_server_route(g_server, ZH_POST, "/str", 0, str, NULL) < 0 ||
	    zh_server_route(g_server, ZH_GET, "/deep", 0, deep, NULL) < 0 ||
	    zh_server_route(g_server, ZH_POST, "/doubles", 0, doubles, NULL) < 0 ||
	    zh_server_route(g_server, ZH_POST, "/ints", 0, ints, NULL) < 0 ||
	    zh_server_route(g_server, ZH_GET, "/big", 0, big, NULL) < 0 ||
	    zh_server_route(g_server, ZH_GET, "/bigp", 0, bigp, NULL) < 0 ||
	    zh_server_route(g_server, ZH_GET, "/misuse", 0, misuse, NULL) < 0 ||
	    zh_server_route(g_server, ZH_GET, "/raw", 0, raw, NULL) < 0 ||
	    zh_server_route(g_server, ZH_GET, "/html", 0, html, NULL) < 0 ||
	    zh_server_route(g_server, ZH_GET, "/all", 0, all, NULL) < 0 ||
	    zh_server_route(g_server, ZH_GET, "/deadline", 0, deadline, NULL) < 0 ||
	    zh_server_route(g_server, ZH_GET, "/count", 0, count, NULL) < 0 ||
	    zh_server_route(g_server, ZH_GET, "/metrics", 0, zh_metrics_handler, g_server) < 0 ||
	    zh_server_route(g_server, ZH_POST, "/jr/field", 0, jr_field, NULL) < 0 ||
	    zh_server_route(g_server, ZH_POST, "/jr/dump", 0, jr_dump, NULL) < 0 ||
	    zh_server_route(g_server, ZH_POST, "/jr/orders/{user}", 0, jr_order, NULL) < 0 ||
	    zh_server_route(g_server, ZH_POST, "/jr/stream", ZH_ROUTE_STREAM_BODY, jr_stream,
			    NULL) < 0 ||
	    zh_server_route(g_server, ZH_GET, "/items/{id}", 0, item, NULL) < 0 ||
	    zh_server_set_error_handler(g_server, json_error, NULL) < 0 ||
	    (err = register_metrics(g_server)) < 0) {
		fprintf(stderr, "json_server: cannot add routes\n");
		return 1;
	}
	printf("port %u\n", (unsigned)zh_server_port(g_server));
	fflush(stdout);
	r = zh_server_run(g_server);
	{
		zh_server_t *srv = g_server;
		g_server = NULL;
		zh_server_free(srv);
	}
	return r < 0;
}
