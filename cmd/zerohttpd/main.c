/* zerohttpd — the zerohttp server with its demo routes.
 *
 *   GET  /plaintext   Hello, World!                      (static body, no copy)
 *   GET  /json        {"message":"Hello, World!"}        (static body, no copy)
 *   POST /echo        the request body                   (sent from the receive buffer)
 *   GET  /proto       ?n=N (0..100, default 3): a zerohttp.demo.ItemList of N items
 *                     (proto/demo.proto), packed into the send buffers by zh_send_protobuf
 *   GET  /json/list   ?n=N (0..1000000, default 100): a JSON array of N objects, encoded
 *                     per request by the zh_json writer (a producer past the first buffer)
 *   GET  /json/list64k  the n=808 list (64 KiB) rendered once, sent by reference (gzip bench)
 *   GET  /stream      ?bytes=N: N bytes (byte i = i mod 251) written by a producer, chunked:
 *                     memory stays flat whatever N and however slow the client
 *   GET  /delay       ?ms=N (0..60000): answers after N ms, a deferred response resumed
 *                     by a timer thread; the worker serves others meanwhile
 *   GET  /metrics     Prometheus text format (--no-metrics: off); /healthz, /readyz
 *   GET  /...         files under --root (zh_static_handler: sendfile, ranges, 304s)
 *   POST /upload      "<bytes> <fnv1a-64 hex>\n" of a body of any size, streamed through a
 *                     64 KiB stack buffer (ZH_ROUTE_STREAM_BODY): memory stays flat
 *
 * SIGTERM/SIGINT drain and exit; SIGUSR1 reopens the --access-log file (rotation); SIGHUP
 * re-reads configuration files (reload_all: --limits-file, --basic-auth, --bearer-tokens);
 * see --help for the flags.
 */
#include "zerohttp.h"
#include "demo.pb-c.h" /* generated from proto/demo.proto into the build directory */

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef ZH_DEFAULT_ROOT
#define ZH_DEFAULT_ROOT "www"
#endif

static zh_server_t *volatile g_server;
static volatile sig_atomic_t g_stop_requested;

static const char plaintext_body[] = "Hello, World!";
static const char json_body[] = "{\"message\":\"Hello, World!\"}";

static void plaintext(zh_request_t *req, zh_response_t *resp, void *arg)
{
	(void)req;
	(void)arg;
	(void)!zh_resp_header_set(resp, "Content-Type", "text/plain");
	zh_write_static(resp, plaintext_body, sizeof plaintext_body - 1);
}

static void json(zh_request_t *req, zh_response_t *resp, void *arg)
{
	(void)req;
	(void)arg;
	(void)!zh_resp_header_set(resp, "Content-Type", "application/json");
	zh_write_static(resp, json_body, sizeof json_body - 1);
}

/* The body slice lives until the response is sent, so it goes out by reference. */
static void echo(zh_request_t *req, zh_response_t *resp, void *arg)
{
	zh_slice_t body, type;
	(void)arg;
	zh_body_all(req, &body);
	if (!zh_req_header(req, "Content-Type", &type) ||
	    zh_resp_header_setn(resp, "Content-Type", 12, type.ptr, type.len) < 0)
		(void)!zh_resp_header_set(resp, "Content-Type", "application/octet-stream");
	zh_write_ref(resp, body.ptr, body.len, NULL, NULL);
}

/* The value of query parameter name: def if absent, -1 unless it is a decimal in 0..max. */
static long query_param(zh_slice_t q, const char *name, long def, long max)
{
	size_t nlen = strlen(name);
	const char *p = q.ptr, *end = q.ptr + q.len;
	while (p < end) {
		const char *amp = memchr(p, '&', (size_t)(end - p)), *stop = amp ? amp : end;
		if ((size_t)(stop - p) >= nlen && memcmp(p, name, nlen) == 0 &&
		    (stop == p + nlen || p[nlen] == '=')) {
			long v = 0;
			if (stop - p < (long)nlen + 2)
				return -1;
			for (const char *d = p + nlen + 1; d < stop; d++) {
				if (*d < '0' || *d > '9' || v > max)
					return -1;
				v = v * 10 + (*d - '0');
			}
			return v > max ? -1 : v;
		}
		p = stop + 1;
	}
	return def;
}

static void bad_request(zh_response_t *resp, const char *why)
{
	zh_reply(resp, 400, "text/plain; charset=utf-8", why, strlen(why));
}

/* GET /proto?n=N: an ItemList whose item i is {id i, name "item-<i>", price i*1.25, tags
 * ["alpha","beta"], active i even}, built on every request in thread-local arrays (no
 * malloc) and packed by zh_send_protobuf straight into the send buffers. */
enum { PROTO_MAX_ITEMS = 100 };
static _Thread_local Zerohttp__Demo__Item proto_items[PROTO_MAX_ITEMS];
static _Thread_local Zerohttp__Demo__Item *proto_ptrs[PROTO_MAX_ITEMS];
static _Thread_local char proto_names[PROTO_MAX_ITEMS][16];
static char tag_alpha[] = "alpha", tag_beta[] = "beta";
static char *proto_tags[] = {tag_alpha, tag_beta};

static void proto(zh_request_t *req, zh_response_t *resp, void *arg)
{
	Zerohttp__Demo__ItemList list = ZEROHTTP__DEMO__ITEM_LIST__INIT;
	long n = query_param(zh_req_query(req), "n", 3, PROTO_MAX_ITEMS);
	(void)arg;
	if (n < 0) {
		(void)zh_reply(resp, 400, "text/plain", "n must be 0..100\n", 17);
		return;
	}
	for (long i = 0; i < n; i++) {
		Zerohttp__Demo__Item *it = &proto_items[i];
		char digits[8], *name = proto_names[i];
		size_t k = 0, len = 5;
		unsigned long v = (unsigned long)i;
		do
			digits[k++] = (char)('0' + v % 10);
		while ((v /= 10) != 0);
		memcpy(name, "item-", 5);
		while (k)
			name[len++] = digits[--k];
		name[len] = '\0';
		zerohttp__demo__item__init(it);
		it->id = (uint64_t)i;
		it->name = name;
		it->price = (double)i * 1.25;
		it->n_tags = 2;
		it->tags = proto_tags;
		it->active = i % 2 == 0;
		proto_ptrs[i] = it;
	}
	list.n_items = (size_t)n;
	list.items = proto_ptrs;
	zh_send_protobuf(resp, &list.base); /* -ENOBUFS: the response becomes a 500 */
}

/* Installed before the listeners exist: a SIGTERM that arrives while we start up (a client
 * may already be queued in the backlog) must drain, not kill. */
/* Per-connection upload state would normally live in the application's own context; the
 * demo keeps it in a small per-worker table keyed by the request pointer, which is stable
 * while the request is suspended. */
struct upload {
	zh_request_t *req;
	uint64_t bytes, hash;
};
static _Thread_local struct upload uploads[64];

static struct upload *upload_state(zh_request_t *req)
{
	struct upload *free_slot = NULL;
	for (unsigned i = 0; i < sizeof uploads / sizeof uploads[0]; i++) {
		if (uploads[i].req == req)
			return &uploads[i];
		if (uploads[i].req == NULL && free_slot == NULL)
			free_slot = &uploads[i];
	}
	if (free_slot) {
		free_slot->req = req;
		free_slot->bytes = 0;
		free_slot->hash = 0xcbf29ce484222325ull; /* FNV-1a 64 offset basis */
	}
	return free_slot;
}

static void upload(zh_request_t *req, zh_response_t *resp, void *arg)
{
	char buf[65536], out[64];
	struct upload *u = upload_state(req);
	ssize_t n;
	(void)arg;
	if (u == NULL) {
		(void)zh_reply(resp, 503, "text/plain", "busy\n", 5);
		return;
	}
	while ((n = zh_body_read(req, buf, sizeof buf)) > 0) {
		u->bytes += (uint64_t)n;
		for (ssize_t i = 0; i < n; i++)
			u->hash = (u->hash ^ (unsigned char)buf[i]) * 0x100000001b3ull;
	}
	if (n == -EAGAIN && zh_body_wait(req, upload, NULL) == 0)
		return; /* called again when more of the body has arrived */
	if (n == 0) {
		int len = snprintf(out, sizeof out, "%llu %016llx\n", (unsigned long long)u->bytes,
				   (unsigned long long)u->hash);
		(void)zh_reply(resp, 200, "text/plain", out, (size_t)len);
	}
	u->req = NULL; /* on errors the library answers 408/400 itself */
}

/* GET /json/list?n=N: item i is {"id": i, "name": "item-<i>", "price": i*1.25,
 * "tags": ["alpha","beta"], "active": <i even>}, serialized on every request. The handler
 * writes what fits the first send buffer (a small list goes out with Content-Length); a
 * producer writes the rest, 48 KiB per call, as the socket takes it. */
struct list_state {
	uint64_t next, n;
};

static void list_item(zh_json_t *j, uint64_t i)
{
	char name[32] = "item-";
	size_t len = 5;
	char digits[20];
	int nd = 0;
	for (uint64_t v = i; nd == 0 || v; v /= 10)
		digits[nd++] = (char)('0' + v % 10);
	while (nd)
		name[len++] = digits[--nd];
	zh_json_obj(j);
	zh_json_key(j, "id", 2);
	zh_json_u64(j, i);
	zh_json_key(j, "name", 4);
	zh_json_str(j, name, len);
	zh_json_key(j, "price", 5);
	zh_json_double(j, (double)i * 1.25);
	zh_json_key(j, "tags", 4);
	zh_json_arr(j);
	zh_json_str(j, "alpha", 5);
	zh_json_str(j, "beta", 4);
	zh_json_end(j);
	zh_json_key(j, "active", 6);
	zh_json_bool(j, i % 2 == 0);
	zh_json_end(j);
}

/* Items until budget more bytes are written; true when the list is complete. */
static bool list_write(zh_response_t *resp, struct list_state *st, uint64_t budget)
{
	zh_json_t *j = zh_json_get(resp);
	uint64_t stop = zh_resp_body_len(resp) + budget;
	while (st->next < st->n && zh_resp_body_len(resp) < stop)
		list_item(j, st->next++);
	if (st->next < st->n)
		return false;
	zh_json_end(j);
	return true;
}

static int list_more(zh_response_t *resp, void *arg)
{
	if (resp == NULL)
		return 0; /* connection gone; the state lives in the response: nothing to free */
	if (zh_json_error(zh_json_get(resp)))
		return -EIO;
	return list_write(resp, arg, 48 * 1024) ? ZH_PRODUCE_DONE : ZH_PRODUCE_MORE;
}

static void json_list(zh_request_t *req, zh_response_t *resp, void *arg)
{
	struct list_state *st = zh_resp_state(resp);
	long n = query_param(zh_req_query(req), "n", 100, 1000000);
	(void)arg;
	if (n < 0) {
		bad_request(resp, "n must be a number from 0 to 1000000\n");
		return;
	}
	st->next = 0;
	st->n = (uint64_t)n;
	zh_json_arr(zh_json_begin(resp, 0));
	/* a producer that cannot be registered leaves the document unfinished: a 500 */
	if (!list_write(resp, st, 12 * 1024) && zh_resp_produce(resp, list_more, st) < 0)
		return;
}

/* GET /json/list64k: the /json/list?n=808 document (65,553 bytes), rendered once at start
 * and sent by reference: the body for gzip benchmarks, where the peer compresses a file. */
static char list64k[66000];
static size_t list64k_len;

static void render_list64k(void)
{
	for (unsigned i = 0; i < 808; i++) {
		double price = i * 1.25;
		int n = snprintf(list64k + list64k_len, sizeof list64k - list64k_len,
				 "%s{\"id\":%u,\"name\":\"item-%u\",\"price\":%.15g,"
				 "\"tags\":[\"alpha\",\"beta\"],\"active\":%s}",
				 i ? "," : "[", i, i, price, i % 2 ? "false" : "true");
		list64k_len += (size_t)n;
	}
	list64k[list64k_len++] = ']';
}

static void json_list64k(zh_request_t *req, zh_response_t *resp, void *arg)
{
	(void)req, (void)arg;
	if (zh_resp_header_set(resp, "Content-Type", "application/json") == 0)
		zh_write_static(resp, list64k, list64k_len);
}

/* GET /stream?bytes=N: N bytes of a fixed pattern, sent by reference from one static
 * table (nothing is copied), 64 KiB per producer call. */
enum { PATTERN_PERIOD = 251, PATTERN_LEN = PATTERN_PERIOD * 64 };
static unsigned char pattern[PATTERN_LEN];

struct stream_state {
	uint64_t sent, total;
};

static int stream_more(zh_response_t *resp, void *arg)
{
	struct stream_state *st = arg;
	uint64_t budget = 64 * 1024;
	if (resp == NULL)
		return 0;
	while (st->sent < st->total && budget) {
		size_t off = (size_t)(st->sent % PATTERN_PERIOD);
		uint64_t n = PATTERN_LEN - PATTERN_PERIOD;
		if (n > st->total - st->sent)
			n = st->total - st->sent;
		if (zh_write_static(resp, pattern + off, (size_t)n) < 0)
			return -EIO;
		st->sent += n;
		budget = budget > n ? budget - n : 0;
	}
	return st->sent < st->total ? ZH_PRODUCE_MORE : ZH_PRODUCE_DONE;
}

static void stream(zh_request_t *req, zh_response_t *resp, void *arg)
{
	struct stream_state *st = zh_resp_state(resp);
	long n = query_param(zh_req_query(req), "bytes", 0, LONG_MAX / 10);
	(void)arg;
	if (n < 0) {
		bad_request(resp, "bytes must be a number\n");
		return;
	}
	st->sent = 0;
	st->total = (uint64_t)n;
	if (zh_resp_header_set(resp, "Content-Type", "application/octet-stream") < 0 ||
	    (n > 0 && zh_resp_produce(resp, stream_more, st) < 0))
		zh_reply(resp, 500, NULL, NULL, 0);
}

/* GET /delay?ms=N: the handler defers the response and hands its token to a timer thread,
 * which resumes it when due: a worker never sleeps, and serves other requests meanwhile. */
enum { DELAYS_MAX = 4096 };
static struct delay {
	uint64_t due_ms;
	long ms;
	zh_deferred_t token;
} delays[DELAYS_MAX];
static unsigned ndelays;
static bool delays_stopped, delay_resuming;
static pthread_mutex_t delay_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t delay_cond = PTHREAD_COND_INITIALIZER;

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void delay_done(zh_request_t *req, zh_response_t *resp, void *arg)
{
	char body[64];
	int n = snprintf(body, sizeof body, "delayed %ld ms\n", (long)(intptr_t)arg);
	if (resp == NULL)
		return; /* the client left */
	(void)req;
	zh_reply(resp, 200, "text/plain; charset=utf-8", body, (size_t)n);
}

static void *delay_thread(void *unused)
{
	(void)unused;
	pthread_mutex_lock(&delay_lock);
	while (!delays_stopped) {
		uint64_t now = now_ms(), next = UINT64_MAX;
		for (unsigned i = 0; i < ndelays && !delays_stopped;) {
			if (delays[i].due_ms <= now) {
				/* resumed outside the lock: a worker may be waiting for it in delay() */
				struct delay d = delays[i];
				delays[i] = delays[--ndelays];
				delay_resuming = true;
				pthread_mutex_unlock(&delay_lock);
				while (zh_deferred_resume(&d.token, delay_done, (void *)(intptr_t)d.ms) ==
				       -EAGAIN)
					sched_yield();
				pthread_mutex_lock(&delay_lock);
				delay_resuming = false;
				pthread_cond_broadcast(&delay_cond);
				continue;
			}
			if (delays[i].due_ms < next)
				next = delays[i].due_ms;
			i++;
		}
		if (next == UINT64_MAX) {
			pthread_cond_wait(&delay_cond, &delay_lock);
		} else {
			struct timespec ts;
			uint64_t wait = next - now;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += (time_t)(wait / 1000);
			ts.tv_nsec += (long)(wait % 1000) * 1000000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			pthread_cond_timedwait(&delay_cond, &delay_lock, &ts);
		}
	}
	pthread_mutex_unlock(&delay_lock);
	return NULL;
}

/* Before the server is freed: no resumption may be on its way to it. */
static void stop_delays(void)
{
	pthread_mutex_lock(&delay_lock);
	delays_stopped = true;
	pthread_cond_broadcast(&delay_cond);
	while (delay_resuming)
		pthread_cond_wait(&delay_cond, &delay_lock);
	pthread_mutex_unlock(&delay_lock);
}

static void delay(zh_request_t *req, zh_response_t *resp, void *arg)
{
	long ms = query_param(zh_req_query(req), "ms", 0, 60000);
	zh_deferred_t token;
	(void)arg;
	if (ms < 0) {
		bad_request(resp, "ms must be a number from 0 to 60000\n");
		return;
	}
	pthread_mutex_lock(&delay_lock);
	if (ndelays == DELAYS_MAX || zh_resp_defer(resp, &token) < 0) {
		pthread_mutex_unlock(&delay_lock);
		(void)!zh_resp_header_set(resp, "Retry-After", "1");
		zh_reply(resp, 503, "text/plain; charset=utf-8", "too many delays\n", 16);
		return;
	}
	delays[ndelays++] = (struct delay){now_ms() + (uint64_t)ms, ms, token};
	pthread_cond_signal(&delay_cond);
	pthread_mutex_unlock(&delay_lock);
}

static void on_signal(int sig)
{
	zh_server_t *srv = g_server;
	(void)sig;
	g_stop_requested = 1;
	if (srv)
		zh_server_stop(srv);
}

/* --access-log. SIGUSR1 reopens the file (rotation). The signal is blocked in every thread
 * (the mask is set before any thread exists, and threads inherit it) and one helper thread
 * takes it with sigwait(): no handler runs, no worker syscall is interrupted, and the
 * reopen (open + dup3) happens on the helper. To stop it, main sets reopen_quit and sends
 * the helper a SIGUSR1. */
static zh_access_log_t *g_access_log;
static pthread_t reopen_tid;
static _Atomic int reopen_quit;

static void *reopen_thread(void *unused)
{
	sigset_t set;
	int sig;
	(void)unused;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	while (sigwait(&set, &sig) == 0 && !reopen_quit) {
		int r = zh_access_log_reopen(g_access_log);
		if (r < 0)
			fprintf(stderr, "zerohttpd: cannot reopen the access log: %s\n", strerror(-r));
	}
	return NULL;
}

static int log_format(const char *name)
{
	static const char *const names[] = {"common", "combined", "json"};
	static const int formats[] = {ZH_LOG_COMMON, ZH_LOG_COMBINED, ZH_LOG_JSON};
	for (unsigned i = 0; i < 3; i++)
		if (strcmp(name, names[i]) == 0)
			return formats[i];
	return -1;
}

static void block_sigusr1(void)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
}

/* Before any thread starts (block_sigusr1 must precede them all). */
static int start_access_log(zh_server_t *srv, const char *path, int format)
{
	zh_middleware_t mw;
	int err = 0;
	g_access_log = zh_access_log_new(srv, path, format, &err);
	if (g_access_log == NULL) {
		fprintf(stderr, "zerohttpd: cannot open --access-log %s: %s\n", path, strerror(-err));
		return -1;
	}
	mw = zh_access_log_middleware(g_access_log);
	if ((err = zh_server_use(srv, &mw)) < 0 ||
	    (err = -pthread_create(&reopen_tid, NULL, reopen_thread, NULL)) < 0) {
		fprintf(stderr, "zerohttpd: cannot set up the access log: %s\n", strerror(-err));
		return -1;
	}
	return 0;
}

/* After zh_server_run() returned: every line is in the file; then stop rotating, free. */
static void stop_access_log(void)
{
	if (g_access_log == NULL)
		return;
	reopen_quit = 1;
	pthread_kill(reopen_tid, SIGUSR1);
	pthread_join(reopen_tid, NULL);
	zh_access_log_free(g_access_log);
	g_access_log = NULL;
}

/* --cors-origin (repeatable), --basic-auth, --bearer-tokens, --auth-prefix. */
enum { CORS_ORIGINS_MAX = 64 };
static const char *cors_origins[CORS_ORIGINS_MAX]; /* argv strings */
static size_t n_cors_origins;
static zh_cors_t *g_cors;
static zh_auth_t *g_auth;
static char auth_err[256]; /* zh_auth's failure text: a file and a line, no credential */

/* CORS before auth: a preflight carries no credentials and must be answered first. */
static int start_cors_auth(zh_server_t *srv, const char *htpasswd, const char *tokens,
			   const char *prefix)
{
	zh_middleware_t mw;
	int err = 0;
	if (n_cors_origins) {
		zh_cors_options_t co;
		zh_cors_options_init(&co); /* methods, headers and max-age: the defaults */
		co.origins = cors_origins;
		co.n_origins = n_cors_origins;
		if ((g_cors = zh_cors_new(&co, &err)) == NULL) {
			fprintf(stderr, "zerohttpd: bad --cors-origin: %s\n", strerror(-err));
			return -1;
		}
		mw = zh_cors_middleware(g_cors);
		if ((err = zh_server_use(srv, &mw)) < 0)
			goto busy;
	}
	if (htpasswd || tokens) {
		zh_auth_options_t ao;
		zh_auth_options_init(&ao);
		ao.htpasswd_file = htpasswd;
		ao.tokens_file = tokens;
		ao.prefix = prefix ? prefix : "/";
		ao.errbuf = auth_err;
		ao.errbuf_len = sizeof auth_err;
		if ((g_auth = zh_auth_new(&ao, &err)) == NULL) {
			fprintf(stderr, "zerohttpd: cannot load credentials: %s\n",
				auth_err[0] ? auth_err : strerror(-err));
			return -1;
		}
		mw = zh_auth_middleware(g_auth);
		if ((err = zh_server_use(srv, &mw)) < 0)
			goto busy;
	}
	return 0;
busy:
	fprintf(stderr, "zerohttpd: cannot add middleware: %s\n", strerror(-err));
	return -1;
}

/* --rate-limit RPS[:BURST], --max-inflight N, --limits-file FILE: one zh_limit for every
 * worker, first in the chain, so a refusal costs no other middleware's work (no crypt(3)).
 * The flags give the base; the file's lines override them and are read again on SIGHUP:
 * "rate-limit RPS[:BURST]", "max-inflight N" (0: off) and "rate-limit-ipv6-prefix N"
 * (IPv6 clients share a bucket per /N, 32..128; default 64), blank lines, # comments.
 * /healthz, /readyz and /metrics are never limited: monitoring must see an overloaded
 * server. */
struct limits {
	double rps, burst; /* burst 0: as many as rps, at least 1 */
	unsigned long long max_inflight;
	unsigned long long ipv6_prefix; /* 0: the library's default, /64 */
};
static struct limits limit_flags;
static bool limits_on;
static const char *limits_file;
static zh_limit_t *g_limit;

static int parse_num(const char *s, unsigned long long max, unsigned long long *out);

/* "RPS" or "RPS:BURST", decimal numbers; RPS 0 turns the rate limit off. */
static int parse_rate(const char *s, double *rps, double *burst)
{
	char *end;
	if (*s == '\0' || strspn(s, "0123456789.:") != strlen(s))
		return -1; /* strtod alone would take " 1", "inf" or "0x10" */
	*rps = strtod(s, &end);
	*burst = 0;
	if (end == s || (*rps != 0 && (*rps < 0.001 || *rps > 1e9)))
		return -1;
	if (*end == ':') {
		const char *b = end + 1;
		*burst = strtod(b, &end);
		if (end == b || *burst < 1)
			return -1;
	}
	return *end == '\0' ? 0 : -1;
}

/* The file's settings over *l: 0, or -1 with a message that names the file and line. */
static int read_limits_file(const char *path, struct limits *l)
{
	char line[256];
	unsigned n = 0;
	bool bad = false;
	FILE *f = fopen(path, "re");
	if (f == NULL) {
		fprintf(stderr, "zerohttpd: cannot read --limits-file %s: %s\n", path,
			strerror(errno));
		return -1;
	}
	while (!bad && fgets(line, sizeof line, f)) {
		char *key, *arg, *end;
		n++;
		bad = strchr(line, '\n') == NULL && !feof(f); /* longer than any valid line */
		line[strcspn(line, "#\r\n")] = '\0';
		for (end = line + strlen(line); end > line && (end[-1] == ' ' || end[-1] == '\t');)
			*--end = '\0';
		key = line + strspn(line, " \t");
		if (bad || *key == '\0')
			continue;
		arg = key + strcspn(key, " \t");
		if (*arg != '\0') {
			*arg++ = '\0';
			arg += strspn(arg, " \t");
		}
		if (strcmp(key, "rate-limit") == 0)
			bad = parse_rate(arg, &l->rps, &l->burst) < 0;
		else if (strcmp(key, "rate-limit-ipv6-prefix") == 0)
			bad = parse_num(arg, 128, &l->ipv6_prefix) < 0 || l->ipv6_prefix < 32;
		else
			bad = strcmp(key, "max-inflight") != 0 ||
			      parse_num(arg, UINT_MAX, &l->max_inflight) < 0;
	}
	if (bad)
		fprintf(stderr, "zerohttpd: %s:%u: expected \"rate-limit RPS[:BURST]\", "
				"\"max-inflight N\" or \"rate-limit-ipv6-prefix 32..128\"\n", path, n);
	else if (ferror(f))
		fprintf(stderr, "zerohttpd: cannot read --limits-file %s\n", path);
	bad |= ferror(f) != 0;
	fclose(f);
	return bad ? -1 : 0;
}

/* The flags, then the file over them, into the limiter. 0, or -1: the limits in force
 * stay as they were. */
static int apply_limits(void)
{
	struct limits l = limit_flags;
	char inflight[24] = "off", v6[48] = "";
	int r;
	if (limits_file && read_limits_file(limits_file, &l) < 0)
		return -1;
	if ((r = zh_limit_ipv6_prefix(g_limit, l.ipv6_prefix ? (unsigned)l.ipv6_prefix : 64)) < 0 ||
	    (r = zh_limit_set(g_limit, l.rps, l.burst, (unsigned)l.max_inflight)) < 0) {
		fprintf(stderr, "zerohttpd: bad limits: %s\n", strerror(-r));
		return -1;
	}
	if (l.max_inflight)
		snprintf(inflight, sizeof inflight, "%llu", l.max_inflight);
	if (l.ipv6_prefix) /* named only when not the default /64 */
		snprintf(v6, sizeof v6, " (IPv6 per /%llu)", l.ipv6_prefix);
	if (l.rps > 0)
		fprintf(stderr, "zerohttpd: limits: rate-limit %g:%g per client%s, max-inflight %s\n",
			l.rps, l.burst ? l.burst : l.rps > 1 ? l.rps : 1, v6, inflight);
	else
		fprintf(stderr, "zerohttpd: limits: rate-limit off, max-inflight %s\n", inflight);
	return 0;
}

static void reload_limits(void)
{
	if (g_limit && apply_limits() < 0)
		fprintf(stderr, "zerohttpd: limits not reloaded; the previous ones stay in force\n");
}

static int start_limits(zh_server_t *srv)
{
	zh_middleware_t mw;
	int err = 0;
	if ((g_limit = zh_limit_new(0, &err)) == NULL ||
	    (err = zh_limit_exempt(g_limit, "/healthz")) < 0 ||
	    (err = zh_limit_exempt(g_limit, "/readyz")) < 0 ||
	    (err = zh_limit_exempt(g_limit, "/metrics")) < 0) {
		fprintf(stderr, "zerohttpd: cannot set up limits: %s\n", strerror(-err));
		return -1;
	}
	if (apply_limits() < 0)
		return -1;
	mw = zh_limit_middleware(g_limit);
	if ((err = zh_server_use(srv, &mw)) < 0) {
		fprintf(stderr, "zerohttpd: cannot add the limits: %s\n", strerror(-err));
		return -1;
	}
	return 0;
}

/* SIGHUP reloads whatever can change while the server runs. Like SIGUSR1 above, it is
 * blocked in every thread and taken by one helper with sigwait(), so a reload (files,
 * allocation) never runs in a signal handler. Each reloadable feature adds its call to
 * reload_all(); a failed reload keeps the previous settings in force. */
static pthread_t reload_tid;
static bool reload_started;
static _Atomic int reload_quit;

static void reload_all(void)
{
	if (g_auth) {
		int r = zh_auth_reload(g_auth);
		if (r < 0)
			fprintf(stderr, "zerohttpd: credentials not reloaded (%s); the previous "
					"ones stay in force\n", auth_err[0] ? auth_err : strerror(-r));
		else
			fprintf(stderr, "zerohttpd: credentials reloaded\n");
	}
	reload_limits();
}

static void *reload_thread(void *unused)
{
	sigset_t set;
	int sig;
	(void)unused;
	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	while (sigwait(&set, &sig) == 0 && !reload_quit)
		reload_all();
	return NULL;
}

/* Before any thread starts, so that every thread inherits the mask. */
static void block_sighup(void)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
}

/* After zh_server_run() returned, before what reload_all() touches is freed. */
static void stop_reload(void)
{
	if (!reload_started)
		return;
	reload_quit = 1;
	pthread_kill(reload_tid, SIGHUP);
	pthread_join(reload_tid, NULL);
	reload_started = false;
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: zerohttpd [options]\n"
		"  --address A            address to bind (default 127.0.0.1)\n"
		"  --port N               port (default 8080; 0 = any free port)\n"
		"  --root DIR             document root (default the repo's www/)\n"
		"  --workers N            worker threads (default: number of CPUs)\n"
		"  --max-connections N    per worker (default 10000)\n"
		"  --io-contexts N        per worker: connections with bytes in flight (1024)\n"
		"  --max-request-line N   bytes, else 414 (default 8192)\n"
		"  --max-header-bytes N   bytes of header fields, else 431 (default 32768)\n"
		"  --max-headers N        header fields, else 431 (default 100)\n"
		"  --max-body N           request body bytes, else 413 (default 1048576)\n"
		"  --header-timeout MS    head must arrive within (default 10000)\n"
		"  --idle-timeout MS      keep-alive idle limit (default 60000)\n"
		"  --body-timeout MS      gap allowed between body bytes; slower than 4 B/s, the\n"
		"                         deadline is not moved (default 30000)\n"
		"  --write-timeout MS     gap allowed while the peer reads nothing (default 30000)\n"
		"  --drain-timeout MS     on SIGTERM/SIGINT, force-close after (default 10000)\n"
		"  --loopback-sndbuf N    SO_SNDBUF for loopback peers, 0 = autotune (262144)\n"
		"  --static-cache N       open files cached per worker (default 1024)\n"
		"  --static-ttl MS        cached files are re-checked after (default 1000)\n"
		"  --no-openat2           open files component by component with O_NOFOLLOW\n"
		"  --gzip                 compress text, JSON... responses for clients that accept it\n"
		"  --gzip-level N         zlib level 1-9 (default 6); implies --gzip\n"
		"  --no-metrics           no GET /metrics, no per-request timing (/healthz stays)\n"
		"  --access-log FILE|-    one line per response, appended to FILE (- = stdout);\n"
		"                         SIGUSR1 reopens FILE (rotation). Default: no log\n"
		"  --access-log-format F  common, combined (the default) or json\n"
		"  --cors-origin ORIGIN   allow cross-origin requests from ORIGIN (repeatable):\n"
		"                         https://a.example, https://*.example.com or *\n"
		"  --basic-auth FILE      require HTTP Basic credentials from this htpasswd file\n"
		"                         (bcrypt, sha512crypt... hashes); SIGHUP reloads it\n"
		"  --bearer-tokens FILE   accept Bearer tokens listed one per line; SIGHUP reloads\n"
		"  --auth-prefix PREFIX   paths needing credentials (default /; /healthz and\n"
		"                         /readyz never do)\n"
		"  --rate-limit RPS[:BURST]  per client address: 429 + Retry-After beyond it\n"
		"                         (BURST defaults to RPS; 0 = off)\n"
		"  --max-inflight N       requests in flight, all workers: 503 beyond (0 = off)\n"
		"  --rate-limit-ipv6-prefix N  IPv6 clients share a bucket per /N (32..128;\n"
		"                         default 64: one subscriber's allocation)\n"
		"  --limits-file FILE     lines \"rate-limit RPS[:BURST]\", \"max-inflight N\",\n"
		"                         \"rate-limit-ipv6-prefix N\" over the flags; SIGHUP\n"
		"                         re-reads it. /healthz, /readyz and /metrics are never\n"
		"                         limited\n"
		"  --help                 this text\n");
}

static int parse_num(const char *s, unsigned long long max, unsigned long long *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *s == '\0' || *end != '\0' || *s == '-' || v > max)
		return -1;
	*out = v;
	return 0;
}

int main(int argc, char **argv)
{
	enum { O_ADDRESS = 256, O_PORT, O_ROOT, O_WORKERS, O_MAXCONN, O_IOCTX, O_REQLINE,
	       O_HDRBYTES, O_HDRS, O_BODY, O_THDR, O_TIDLE, O_TBODY, O_TWRITE, O_TDRAIN, O_HELP,
	       O_SNDBUF, O_SCACHE, O_STTL, O_NOOPENAT2, O_NOMETRICS, O_GZIP, O_GZIPLEVEL,
	       O_ACCESSLOG, O_ACCESSFMT, O_CORSORIGIN, O_BASICAUTH, O_BEARER, O_AUTHPREFIX,
	       O_RATELIMIT, O_MAXINFLIGHT, O_LIMITSFILE, O_V6PREFIX };
	static const struct option opts[] = {
		{"address", required_argument, NULL, O_ADDRESS},
		{"port", required_argument, NULL, O_PORT},
		{"root", required_argument, NULL, O_ROOT},
		{"workers", required_argument, NULL, O_WORKERS},
		{"max-connections", required_argument, NULL, O_MAXCONN},
		{"io-contexts", required_argument, NULL, O_IOCTX},
		{"max-request-line", required_argument, NULL, O_REQLINE},
		{"max-header-bytes", required_argument, NULL, O_HDRBYTES},
		{"max-headers", required_argument, NULL, O_HDRS},
		{"max-body", required_argument, NULL, O_BODY},
		{"header-timeout", required_argument, NULL, O_THDR},
		{"idle-timeout", required_argument, NULL, O_TIDLE},
		{"body-timeout", required_argument, NULL, O_TBODY},
		{"write-timeout", required_argument, NULL, O_TWRITE},
		{"drain-timeout", required_argument, NULL, O_TDRAIN},
		{"help", no_argument, NULL, O_HELP},
		{"loopback-sndbuf", required_argument, NULL, O_SNDBUF},
		{"static-cache", required_argument, NULL, O_SCACHE},
		{"static-ttl", required_argument, NULL, O_STTL},
		{"no-openat2", no_argument, NULL, O_NOOPENAT2},
		{"no-metrics", no_argument, NULL, O_NOMETRICS},
		{"gzip", no_argument, NULL, O_GZIP},
		{"gzip-level", required_argument, NULL, O_GZIPLEVEL},
		{"access-log", required_argument, NULL, O_ACCESSLOG},
		{"access-log-format", required_argument, NULL, O_ACCESSFMT},
		{"cors-origin", required_argument, NULL, O_CORSORIGIN},
		{"basic-auth", required_argument, NULL, O_BASICAUTH},
		{"bearer-tokens", required_argument, NULL, O_BEARER},
		{"auth-prefix", required_argument, NULL, O_AUTHPREFIX},
		{"rate-limit", required_argument, NULL, O_RATELIMIT},
		{"max-inflight", required_argument, NULL, O_MAXINFLIGHT},
		{"limits-file", required_argument, NULL, O_LIMITSFILE},
		{"rate-limit-ipv6-prefix", required_argument, NULL, O_V6PREFIX},
		{NULL, 0, NULL, 0},
	};
	zh_config_t cfg;
	zh_static_options_t sopts;
	zh_static_t *files = NULL;
	struct sigaction sa;
	int opt, err = 0;
	bool metrics = true;
	unsigned long long gzip_level = 0;
	zh_gzip_t *gz = NULL;
	const char *access_log = NULL;
	int access_format = ZH_LOG_COMBINED;
	const char *htpasswd_file = NULL, *tokens_file = NULL, *auth_prefix = NULL;

	zh_config_init(&cfg);
	zh_static_options_init(&sopts);
	sopts.root = ZH_DEFAULT_ROOT;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		unsigned long long v = 0;
		if (opt == O_HELP) {
			usage(stdout);
			return 0;
		}
		if (opt == '?') {
			usage(stderr);
			return 2;
		}
		if (opt == O_ADDRESS) {
			cfg.address = optarg;
			continue;
		}
		if (opt == O_NOOPENAT2) {
			sopts.no_openat2 = 1;
			continue;
		}
		if (opt == O_GZIP) {
			gzip_level = gzip_level ? gzip_level : 6;
			continue;
		}
		if (opt == O_NOMETRICS) {
			metrics = false;
			cfg.latency_metrics = 0;
			continue;
		}
		if (opt == O_ROOT) {
			sopts.root = optarg;
			continue;
		}
		if (opt == O_ACCESSLOG) {
			access_log = optarg;
			continue;
		}
		if (opt == O_ACCESSFMT) {
			if ((access_format = log_format(optarg)) < 0) {
				fprintf(stderr, "zerohttpd: --access-log-format is common, combined "
						"or json\n");
				return 2;
			}
			continue;
		}
		if (opt == O_CORSORIGIN) {
			if (n_cors_origins == CORS_ORIGINS_MAX) {
				fprintf(stderr, "zerohttpd: at most %d --cors-origin\n",
					CORS_ORIGINS_MAX);
				return 2;
			}
			cors_origins[n_cors_origins++] = optarg;
			continue;
		}
		if (opt == O_BASICAUTH || opt == O_BEARER || opt == O_AUTHPREFIX) {
			*(opt == O_BASICAUTH ? &htpasswd_file
			  : opt == O_BEARER  ? &tokens_file
					     : &auth_prefix) = optarg;
			continue;
		}
		if (opt == O_RATELIMIT) {
			if (parse_rate(optarg, &limit_flags.rps, &limit_flags.burst) < 0) {
				fprintf(stderr, "zerohttpd: --rate-limit is RPS[:BURST] (RPS 0.001 to "
						"1e9, or 0 for off; BURST at least 1)\n");
				return 2;
			}
			limits_on = true;
			continue;
		}
		if (opt == O_LIMITSFILE) {
			limits_file = optarg;
			limits_on = true;
			continue;
		}
		if (parse_num(optarg, opt == O_PORT ? 65535 : UINT_MAX, &v) < 0) {
			fprintf(stderr, "zerohttpd: bad number '%s' for --%s\n", optarg,
				opts[opt - O_ADDRESS].name);
			return 2;
		}
		switch (opt) {
		case O_PORT: cfg.port = (uint16_t)v; break;
		case O_WORKERS: cfg.workers = (unsigned)v; break;
		case O_MAXCONN: cfg.max_connections = (unsigned)v; break;
		case O_IOCTX: cfg.io_contexts = (unsigned)v; break;
		case O_REQLINE: cfg.max_request_line = v; break;
		case O_HDRBYTES: cfg.max_header_bytes = v; break;
		case O_HDRS: cfg.max_headers = (unsigned)v; break;
		case O_BODY: cfg.max_body = v; break;
		case O_THDR: cfg.header_timeout_ms = (unsigned)v; break;
		case O_TIDLE: cfg.idle_timeout_ms = (unsigned)v; break;
		case O_TBODY: cfg.body_timeout_ms = (unsigned)v; break;
		case O_TWRITE: cfg.write_timeout_ms = (unsigned)v; break;
		case O_TDRAIN: cfg.drain_timeout_ms = (unsigned)v; break;
		case O_SNDBUF: cfg.loopback_sndbuf = (unsigned)v; break;
		case O_GZIPLEVEL:
			if (v < 1 || v > 9) {
				fprintf(stderr, "zerohttpd: --gzip-level is 1 to 9\n");
				return 2;
			}
			gzip_level = v;
			break;
		case O_SCACHE: sopts.cache_entries = (unsigned)v; break;
		case O_STTL: sopts.cache_ttl_ms = (unsigned)v; break;
		case O_MAXINFLIGHT: limit_flags.max_inflight = v; limits_on = true; break;
		case O_V6PREFIX:
			if (v < 32 || v > 128) {
				fprintf(stderr, "zerohttpd: --rate-limit-ipv6-prefix is 32 to 128\n");
				return 2;
			}
			limit_flags.ipv6_prefix = v;
			break;
		}
	}
	if (optind < argc) {
		usage(stderr);
		return 2;
	}
	if (auth_prefix && !htpasswd_file && !tokens_file) {
		fprintf(stderr, "zerohttpd: --auth-prefix needs --basic-auth or --bearer-tokens\n");
		return 2;
	}

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	if (access_log)
		block_sigusr1(); /* before any thread: see reopen_thread */
	else
		signal(SIGUSR1, SIG_IGN); /* logrotate's kill -USR1 must not stop a server */
	block_sighup();		 /* likewise: see reload_thread */

	g_server = zh_server_new(&cfg, &err);
	if (g_server == NULL) {
		fprintf(stderr, "zerohttpd: cannot start on %s:%u: %s\n", cfg.address,
			(unsigned)cfg.port, strerror(-err));
		return 1;
	}
	if (limits_on && start_limits(g_server) < 0) /* first: see start_limits */
		return 1;
	if (access_log && start_access_log(g_server, access_log, access_format) < 0)
		return 1;
	if (start_cors_auth(g_server, htpasswd_file, tokens_file, auth_prefix) < 0)
		return 1;
	if (zh_server_route(g_server, ZH_GET, "/plaintext", 0, plaintext, NULL) < 0 ||
	    zh_server_route(g_server, ZH_GET, "/json", 0, json, NULL) < 0 ||
	    zh_server_route(g_server, ZH_POST | ZH_PUT, "/echo", 0, echo, NULL) < 0 ||
	    zh_server_route(g_server, ZH_GET | ZH_HEAD, "/proto", 0, proto, NULL) < 0 ||
	    zh_server_route(g_server, ZH_GET | ZH_HEAD, "/json/list", 0, json_list, NULL) < 0 ||
	    zh_server_route(g_server, ZH_GET | ZH_HEAD, "/json/list64k", 0, json_list64k, NULL) < 0 ||
	    zh_server_route(g_server, ZH_GET | ZH_HEAD, "/stream", 0, stream, NULL) < 0 ||
	    zh_server_route(g_server, ZH_GET | ZH_HEAD, "/delay", 0, delay, NULL) < 0 ||
	    zh_server_route(g_server, ZH_GET | ZH_HEAD, "/healthz", 0, zh_healthz_handler, NULL) < 0 ||
	    zh_server_route(g_server, ZH_GET | ZH_HEAD, "/readyz", 0, zh_readyz_handler, NULL) < 0 ||
	    (metrics && zh_server_route(g_server, ZH_GET | ZH_HEAD, "/metrics", 0, zh_metrics_handler,
					g_server) < 0) ||
	    zh_server_route(g_server, ZH_POST | ZH_PUT, "/upload", ZH_ROUTE_STREAM_BODY, upload,
			    NULL) < 0) {
		fprintf(stderr, "zerohttpd: cannot add routes\n");
		return 1;
	}
	if (gzip_level) {
		zh_gzip_options_t go;
		zh_middleware_t mw;
		zh_gzip_options_init(&go);
		go.level = (int)gzip_level;
		gz = zh_gzip_new(g_server, &go, &err);
		if (gz == NULL || (mw = zh_gzip_middleware(gz), zh_server_use(g_server, &mw) < 0)) {
			fprintf(stderr, "zerohttpd: cannot set up gzip: %s\n", strerror(gz ? ENOSPC : -err));
			return 1;
		}
	}
	files = zh_static_new(g_server, &sopts, &err);
	if (files == NULL ||
	    zh_server_route(g_server, ZH_GET | ZH_HEAD, "/", ZH_ROUTE_PREFIX, zh_static_handler,
			    files) < 0) {
		fprintf(stderr, "zerohttpd: cannot serve --root %s: %s\n", sopts.root,
			strerror(files ? EINVAL : -err));
		return 1;
	}
	for (unsigned i = 0; i < PATTERN_LEN; i++)
		pattern[i] = (unsigned char)(i % PATTERN_PERIOD);
	render_list64k();
	{
		pthread_t t;
		if (pthread_create(&t, NULL, delay_thread, NULL) == 0)
			pthread_detach(t);
	}
	reload_started = pthread_create(&reload_tid, NULL, reload_thread, NULL) == 0;
	if (g_stop_requested)
		zh_server_stop(g_server);

	fprintf(stderr, "zerohttpd: listening on http://%s:%u/\n", cfg.address,
		(unsigned)zh_server_port(g_server));
	err = zh_server_run(g_server);
	{
		zh_server_t *srv = g_server;
		stop_delays();
		stop_access_log();
		stop_reload();
		g_server = NULL;
		zh_server_free(srv);
		zh_static_free(files);
		zh_gzip_free(gz);
		zh_auth_free(g_auth);
		zh_cors_free(g_cors);
		zh_limit_free(g_limit); /* after stop_reload(): nothing calls zh_limit_set now */
	}
	if (err < 0) {
		fprintf(stderr, "zerohttpd: %s\n", strerror(-err));
		return 1;
	}
	return 0;
}
