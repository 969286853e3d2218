/* demo_routes.c — the demo routes zerohttpd serves with --demo (and `make run`), and an
 * example of each kind of handler the library supports:
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
 *   POST /upload      "<bytes> <fnv1a-64 hex>\n" of a body of any size, streamed through a
 *                     64 KiB stack buffer (ZH_ROUTE_STREAM_BODY): memory stays flat
 *   POST /zerohttp.demo.Items/List  a gRPC unary call (HTTP/2): an Item whose id is N in,
 *                     an ItemList of N items out, grpc-status/grpc-message trailers
 *   GET  /trailers    ?parts=N (0..1000, default 0 = one whole body): "part i\n" lines,
 *                     then the trailer fields X-Parts: N and X-Sum: the body's byte sum
 *                     (zh_resp_trailer; HTTP/2, or HTTP/1.1 with TE: trailers)
 *   GET  /users/{id}, /users/{id}/files/{path...}
 *                     "route=<pattern> id=<id> path=<path>\n": path parameters, decoded
 *                     (zh_req_param) without allocating, and the matched pattern
 *
 * They are not part of the product: zerohttpd without --demo serves only files, /healthz,
 * /readyz and /metrics, so that a file named "json" in the document root is not shadowed
 * and a real site answers no /echo. The Makefile links this file into zerohttpd.
 */
#include "demo_routes.h"
#include "demo.pb-c.h" /* generated from proto/demo.proto into the build directory */

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char plaintext_body[] = "Hello, World!";
static const char json_body[] = "{\"message\":\"Hello, World!\"}";

static void plaintext(zh_request_t *req, zh_response_t *resp, void *arg)
{
	(void)req;
	(void)arg;
	zh_resp_header_set(resp, "Content-Type", "text/plain");
	zh_write_static(resp, plaintext_body, sizeof plaintext_body - 1);
}

static void json(zh_request_t *req, zh_response_t *resp, void *arg)
{
	(void)req;
	(void)arg;
	zh_resp_header_set(resp, "Content-Type", "application/json");
	zh_write_static(resp, json_body, sizeof json_body - 1);
}

/* Path parameters: slices of the request (decoded in the I/O context when they hold
 * '%'), alive until the response is sent, so they go out by reference too. */
static void user(zh_request_t *req, zh_response_t *resp, void *arg)
{
	const char *route = zh_req_route(req);
	zh_slice_t id = {"", 0}, path = {"-", 1};
	(void)arg;
	if (!zh_req_param(req, "id", &id))
		return; /* cannot happen: both patterns have {id} (an empty 200 if it did) */
	(void)zh_req_param(req, "path", &path);
	zh_resp_header_set(resp, "Content-Type", "text/plain; charset=utf-8");
	zh_write_static(resp, "route=", 6);
	zh_write_static(resp, route, strlen(route));
	zh_write_static(resp, " id=", 4);
	zh_write_ref(resp, id.ptr, id.len, NULL, NULL);
	zh_write_static(resp, " path=", 6);
	zh_write_ref(resp, path.ptr, path.len, NULL, NULL);
	zh_write_static(resp, "\n", 1);
}

/* The body slice lives until the response is sent, so it goes out by reference. */
static void echo(zh_request_t *req, zh_response_t *resp, void *arg)
{
	zh_slice_t body, type;
	(void)arg;
	zh_body_all(req, &body);
	if (!zh_req_header(req, "Content-Type", &type) ||
	    zh_resp_header_setn(resp, "Content-Type", 12, type.ptr, type.len) < 0)
		zh_resp_header_set(resp, "Content-Type", "application/octet-stream");
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

/* The n items of the /proto demo, built into per-thread storage (no allocation). */
static void proto_fill(Zerohttp__Demo__ItemList *list, long n)
{
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
	list->n_items = (size_t)n;
	list->items = proto_ptrs;
}

static void proto(zh_request_t *req, zh_response_t *resp, void *arg)
{
	Zerohttp__Demo__ItemList list = ZEROHTTP__DEMO__ITEM_LIST__INIT;
	long n = query_param(zh_req_query(req), "n", 3, PROTO_MAX_ITEMS);
	(void)arg;
	if (n < 0) {
		(void)zh_reply(resp, 400, "text/plain", "n must be 0..100\n", 17);
		return;
	}
	proto_fill(&list, n);
	zh_send_protobuf(resp, &list.base); /* -ENOBUFS: the response becomes a 500 */
}

/* POST /zerohttp.demo.Items/List: a gRPC unary call (over HTTP/2; gRPC's wire format: a
 * 5-byte prefix, flag 0 and the big-endian length, before each message). The request is an
 * Item whose id asks for that many items (0..100); the answer an ItemList packed by
 * zh_send_protobuf straight into the send buffers behind its prefix; the status goes in
 * the trailers grpc-status and grpc-message. protobuf-c decodes the request with a
 * bump allocator over a stack buffer: no malloc. */
struct bump {
	char buf[2048];
	size_t used;
};

static void *bump_alloc(void *data, size_t size)
{
	struct bump *b = data;
	size_t at = (b->used + 15) & ~(size_t)15;
	if (at + size > sizeof b->buf)
		return NULL;
	b->used = at + size;
	return b->buf + at;
}

static void bump_free(void *data, void *p)
{
	(void)data, (void)p; /* the whole buffer goes with the handler's frame */
}

static void grpc_status(zh_response_t *resp, const char *code, const char *msg)
{
	if (zh_resp_trailer(resp, "grpc-status", code) < 0 ||
	    zh_resp_trailer(resp, "grpc-message", msg) < 0)
		return; /* cannot happen with these fields; the call then ends without status */
}

static void grpc_list(zh_request_t *req, zh_response_t *resp, void *arg)
{
	Zerohttp__Demo__ItemList list = ZEROHTTP__DEMO__ITEM_LIST__INIT;
	struct bump arena = {.used = 0};
	ProtobufCAllocator al = {bump_alloc, bump_free, &arena};
	Zerohttp__Demo__Item *in = NULL;
	unsigned char prefix[5];
	zh_slice_t b;
	size_t len;
	(void)arg;
	if (zh_resp_header_set(resp, "Content-Type", "application/grpc") < 0)
		return;
	if (zh_body_all(req, &b) == 0 && b.len >= 5 && b.ptr[0] == 0 &&
	    ((size_t)(unsigned char)b.ptr[1] << 24 | (size_t)(unsigned char)b.ptr[2] << 16 |
	     (size_t)(unsigned char)b.ptr[3] << 8 | (unsigned char)b.ptr[4]) == b.len - 5)
		in = zerohttp__demo__item__unpack(&al, b.len - 5, (const uint8_t *)b.ptr + 5);
	if (in == NULL || in->id > PROTO_MAX_ITEMS) {
		/* gRPC answers 200 and says what went wrong in its status (3: INVALID_ARGUMENT) */
		zh_write_header(resp, 200);
		grpc_status(resp, "3", in ? "at most 100 items" : "not an Item message");
		return;
	}
	proto_fill(&list, (long)in->id);
	len = zerohttp__demo__item_list__get_packed_size(&list);
	prefix[0] = 0;
	prefix[1] = (unsigned char)(len >> 24);
	prefix[2] = (unsigned char)(len >> 16);
	prefix[3] = (unsigned char)(len >> 8);
	prefix[4] = (unsigned char)len;
	if (zh_write(resp, prefix, 5) < 0 || zh_send_protobuf(resp, &list.base) < 0)
		return; /* the response becomes a 500 */
	grpc_status(resp, "0", "");
}

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
static pthread_t delay_tid;
static bool delay_started;
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
		if (delays_stopped)
			break; /* stop_delays() came while we resumed: its broadcast is gone */
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
		zh_resp_header_set(resp, "Retry-After", "1");
		zh_reply(resp, 503, "text/plain; charset=utf-8", "too many delays\n", 16);
		return;
	}
	delays[ndelays++] = (struct delay){now_ms() + (uint64_t)ms, ms, token};
	pthread_cond_signal(&delay_cond);
	pthread_mutex_unlock(&delay_lock);
}

/* GET /trailers: the body, then trailer fields that depend on it (what gRPC does with
 * grpc-status), written whole by the handler or part by part by a producer. */
struct trailers_state {
	long parts, done;
	unsigned long sum;
};

static int trailers_write(zh_response_t *resp, struct trailers_state *st)
{
	char line[32], v[24];
	int n = snprintf(line, sizeof line, "part %ld\n", st->done);
	for (int i = 0; i < n; i++)
		st->sum += (unsigned char)line[i];
	if (zh_write(resp, line, (size_t)n) < 0)
		return -EIO;
	if (++st->done < st->parts)
		return ZH_PRODUCE_MORE;
	snprintf(line, sizeof line, "%ld", st->parts);
	snprintf(v, sizeof v, "%lu", st->sum);
	if (zh_resp_trailer(resp, "X-Parts", line) < 0 || zh_resp_trailer(resp, "X-Sum", v) < 0)
		return -EIO;
	return ZH_PRODUCE_DONE;
}

static int trailers_more(zh_response_t *resp, void *arg)
{
	return resp ? trailers_write(resp, arg) : 0;
}

static void trailers(zh_request_t *req, zh_response_t *resp, void *arg)
{
	struct trailers_state *st = zh_resp_state(resp);
	long n = query_param(zh_req_query(req), "parts", 0, 1000);
	(void)arg;
	if (n < 0) {
		bad_request(resp, "parts must be 0..1000\n");
		return;
	}
	*st = (struct trailers_state){n ? n : 1, 0, 0};
	if (zh_resp_header_set(resp, "Content-Type", "text/plain") < 0 ||
	    (n == 0 && trailers_write(resp, st) < 0) ||
	    (n > 0 && zh_resp_produce(resp, trailers_more, st) < 0))
		zh_reply(resp, 500, NULL, NULL, 0);
}

int demo_routes_add(zh_server_t *srv)
{
	int r;
	if ((r = zh_server_route(srv, ZH_GET, "/plaintext", 0, plaintext, NULL)) < 0 ||
	    (r = zh_server_route(srv, ZH_GET, "/json", 0, json, NULL)) < 0 ||
	    (r = zh_server_route(srv, ZH_POST | ZH_PUT, "/echo", 0, echo, NULL)) < 0 ||
	    (r = zh_server_route(srv, ZH_GET | ZH_HEAD, "/proto", 0, proto, NULL)) < 0 ||
	    (r = zh_server_route(srv, ZH_GET | ZH_HEAD, "/json/list", 0, json_list, NULL)) < 0 ||
	    (r = zh_server_route(srv, ZH_GET | ZH_HEAD, "/json/list64k", 0, json_list64k,
				 NULL)) < 0 ||
	    (r = zh_server_route(srv, ZH_GET | ZH_HEAD, "/stream", 0, stream, NULL)) < 0 ||
	    (r = zh_server_route(srv, ZH_GET | ZH_HEAD, "/delay", 0, delay, NULL)) < 0 ||
	    (r = zh_server_route(srv, ZH_GET | ZH_HEAD, "/trailers", 0, trailers, NULL)) < 0 ||
	    (r = zh_server_route(srv, ZH_POST, "/zerohttp.demo.Items/List", 0, grpc_list, NULL)) <
		    0 ||
	    (r = zh_server_route(srv, ZH_POST | ZH_PUT, "/upload", ZH_ROUTE_STREAM_BODY, upload,
				 NULL)) < 0 ||
	    (r = zh_server_route(srv, ZH_GET | ZH_HEAD, "/users/{id}", 0, user, NULL)) < 0 ||
	    (r = zh_server_route(srv, ZH_GET | ZH_HEAD, "/users/{id}/files/{path...}", 0, user,
				 NULL)) < 0)
		return r;
	return 0;
}

int demo_routes_start(void)
{
	int r;
	for (unsigned i = 0; i < PATTERN_LEN; i++)
		pattern[i] = (unsigned char)(i % PATTERN_PERIOD);
	render_list64k();
	if ((r = pthread_create(&delay_tid, NULL, delay_thread, NULL)) != 0)
		return -r;
	delay_started = true;
	return 0;
}

void demo_routes_stop(void)
{
	if (!delay_started)
		return;
	stop_delays();
	pthread_join(delay_tid, NULL);
	delay_started = false;
}
