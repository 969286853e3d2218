/* test_gzip.c — the gzip middleware (src/mw_gzip.c) as a body filter, through a real server
 * in this process (the fixture approach of test_middleware.c). Each test starts its own
 * server with the configuration it needs and checks exact bytes:
 *
 *  gzip      bytes held back below min_length are sent when the head leaves early (a
 *            handler's 100 bytes, then a producer); a compressed response gets a weak ETag,
 *            no Accept-Ranges, and keeps every Vary token (the handler's, CORS's, gzip's);
 *            zh_send_file right after zh_write_header serves the file (the untouched filter
 *            is dropped).
 *  write_ref under a body filter: a failing call never calls release (the caller frees).
 *
 * Pool exhaustion and request accounting, which the same kind of fixture once tested here,
 * are in test_conn.c.
 */
#include <criterion/criterion.h>

#include <zerohttp.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#define ORIGIN "https://app.example"

#define ZH_TC_CONN
#define ZH_TC_OWNED_MAX 256
#include "zh_test_client.h"

/* ---- deterministic bodies ------------------------------------------------------------------ */

/* Lower-case letters from an LCG, a newline every 64: deflate compresses them (about 0.6)
 * but always has output to emit, and any loss or reordering changes the bytes. */
static void letters(char *out, size_t n, uint32_t seed)
{
	uint32_t x = seed;
	for (size_t i = 0; i < n; i++) {
		x = x * 1103515245u + 12345u;
		out[i] = i % 64 == 63 ? '\n' : (char)('a' + (x >> 16) % 26);
	}
}

enum { HELD = 100, PIECE = 40000, PIECES = 3, STP_LEN = HELD + PIECES * PIECE };
static char stp_body[STP_LEN];	/* what /held-then-produce sends, in order */
enum { ETAG_LEN = 2000 };
static char etag_body[ETAG_LEN];
enum { FILE_LEN = 3300 };
static char file_body[FILE_LEN];
static int file_fd = -1; /* unlinked at once: nothing is left behind, even by a crash */

/* ---- the server ---------------------------------------------------------------------------- */

typedef struct {
	bool gzip, cors, gzip_first;
	unsigned sync_write_wait_ms;
} opts_t;

static zh_server_t *srv;
static pthread_t runner;
static bool running;
static zh_gzip_t *gz;
static zh_cors_t *cors;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

/* /held-then-produce: 100 bytes from the handler (below min_length: gzip holds them back,
 * undecided), then a producer writes 3 x 40,000 bytes, so the head leaves before the body
 * is known. */
static int p_pieces(zh_response_t *resp, void *arg)
{
	unsigned *k;
	(void)arg;
	if (resp == NULL)
		return 0;
	k = zh_resp_state(resp);
	if (zh_write(resp, stp_body + HELD + (size_t)*k * PIECE, PIECE) < 0)
		return -EIO;
	return ++*k < PIECES ? ZH_PRODUCE_MORE : ZH_PRODUCE_DONE;
}

static void h_held_then_produce(zh_request_t *req, zh_response_t *resp, void *arg)
{
	unsigned *k = zh_resp_state(resp);
	(void)req, (void)arg;
	*k = 0;
	zh_resp_header_set(resp, "Content-Type", "text/plain");
	(void)zh_write(resp, stp_body, HELD);
	(void)!zh_resp_produce(resp, p_pieces, NULL);
}

/* /refs: 64 KiB references until one fails (the client reads nothing). Each buffer is its
 * own allocation; release frees it. Per the contract, on an error return the caller frees:
 * so a release called by the failing call is recorded (and the buffer not freed twice). */
enum { REF_LEN = 65536, REF_MAX = 400 };
static struct {
	int ok, releases, fail_at, fail_err, released_on_error, double_release, finished;
	unsigned char released[REF_MAX];
} rf;

typedef struct {
	int id;
	char data[REF_LEN];
} ref_t;

static void ref_release(void *arg)
{
	ref_t *r = arg;
	pthread_mutex_lock(&lock);
	rf.releases++;
	if (rf.released[r->id]++)
		rf.double_release++;
	pthread_mutex_unlock(&lock);
	free(r);
}

static void h_refs(zh_request_t *req, zh_response_t *resp, void *arg)
{
	(void)req, (void)arg;
	zh_resp_header_set(resp, "Content-Type", "text/plain");
	for (int i = 0; i < REF_MAX; i++) {
		ref_t *r = malloc(sizeof *r);
		int e;
		bool released;
		if (r == NULL)
			break; /* fail_err stays 0: the test fails */
		r->id = i;
		letters(r->data, REF_LEN, 2654435761u * (uint32_t)(i + 1));
		e = zh_write_ref(resp, r->data, REF_LEN, ref_release, r);
		pthread_mutex_lock(&lock);
		if (e == 0) {
			rf.ok++;
			pthread_mutex_unlock(&lock);
			continue;
		}
		rf.fail_at = i;
		rf.fail_err = e;
		released = rf.released[i] != 0;
		if (released)
			rf.released_on_error++;
		pthread_mutex_unlock(&lock);
		if (!released)
			free(r); /* the contract: release is never called on an error return */
		break;
	}
	pthread_mutex_lock(&lock);
	rf.finished = 1;
	pthread_mutex_unlock(&lock);
}

/* /etag: a validator, ranges and the handler's own Vary on a compressible body */
static void h_etag(zh_request_t *req, zh_response_t *resp, void *arg)
{
	(void)req, (void)arg;
	zh_resp_header_set(resp, "Content-Type", "text/plain");
	zh_resp_header_set(resp, "ETag", "\"v1\"");
	zh_resp_header_set(resp, "Accept-Ranges", "bytes");
	zh_resp_header_set(resp, "Vary", "Cookie");
	(void)zh_write(resp, etag_body, ETAG_LEN);
}

/* /file: commit first (a declared length gzip would compress), then the file */
static int send_file_result = 1;
static void close_fd(void *arg) { close((int)(intptr_t)arg); }
static void h_file(zh_request_t *req, zh_response_t *resp, void *arg)
{
	int fd = dup(file_fd), e; /* sendfile reads at an offset: the position is not shared */
	(void)req, (void)arg;
	if (fd < 0) { /* a test that sees -9999 fails */
		pthread_mutex_lock(&lock);
		send_file_result = -9999;
		pthread_mutex_unlock(&lock);
		return;
	}
	zh_resp_header_set(resp, "Content-Type", "text/plain");
	zh_resp_header_set(resp, "Content-Length", "3300");
	(void)zh_write_header(resp, 200);
	e = zh_send_file(resp, fd, 0, FILE_LEN, close_fd, (void *)(intptr_t)fd);
	if (e < 0)
		close(fd);
	pthread_mutex_lock(&lock);
	send_file_result = e;
	pthread_mutex_unlock(&lock);
}

/* /declared: the usual HEAD shape, a declared length and no body (a GET writes it) */
static void h_declared(zh_request_t *req, zh_response_t *resp, void *arg)
{
	zh_slice_t m = zh_req_method(req);
	(void)arg;
	zh_resp_header_set(resp, "Content-Type", "text/plain");
	zh_resp_header_set(resp, "Content-Length", "3300");
	if (m.len == 4 && memcmp(m.ptr, "HEAD", 4) == 0)
		(void)zh_write_header(resp, 200);
	else
		(void)zh_write(resp, file_body, FILE_LEN);
}

static void make_bodies(void)
{
	char path[] = "/tmp/zh-gzip-XXXXXX";
	int fd;
	letters(stp_body, STP_LEN, 7);
	memset(stp_body, 'H', 10); /* the held bytes start recognisably */
	letters(etag_body, ETAG_LEN, 11);
	letters(file_body, FILE_LEN, 13);
	fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	unlink(path);
	cr_assert_eq(write(fd, file_body, FILE_LEN), FILE_LEN);
	if (file_fd >= 0)
		close(file_fd);
	file_fd = fd;
}

static void start_server(const opts_t *o)
{
	zh_config_t cfg;
	int err = 0;
	zh_middleware_t mw;
	make_bodies();
	zh_tc_config(&cfg);
	cfg.io_contexts = 16;
	cfg.large_buffers = 16;
	if (o->sync_write_wait_ms)
		cfg.sync_write_wait_ms = o->sync_write_wait_ms;
	srv = zh_server_new(&cfg, &err);
	cr_assert_not_null(srv, "zh_server_new: %d", err);
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/held-then-produce", 0, h_held_then_produce,
				     NULL), 0);
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/refs", 0, h_refs, NULL), 0);
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/etag", 0, h_etag, NULL), 0);
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/file", 0, h_file, NULL), 0);
	cr_assert_eq(zh_server_route(srv, ZH_GET | ZH_HEAD, "/declared", 0, h_declared, NULL), 0);
	if (o->gzip) {
		zh_gzip_options_t go;
		zh_gzip_options_init(&go);
		gz = zh_gzip_new(srv, &go, &err);
		cr_assert_not_null(gz, "zh_gzip_new: %d", err);
	}
	if (o->cors) {
		static const char *const origins[] = {ORIGIN};
		zh_cors_options_t co;
		zh_cors_options_init(&co);
		co.origins = origins;
		co.n_origins = 1;
		cors = zh_cors_new(&co, &err);
		cr_assert_not_null(cors, "zh_cors_new: %d", err);
	}
	for (int pass = 0; pass < 2; pass++) {
		bool gzip_now = (pass == 0) == o->gzip_first;
		if (gzip_now && gz) {
			mw = zh_gzip_middleware(gz);
			cr_assert_eq(zh_server_use(srv, &mw), 0);
		} else if (!gzip_now && cors) {
			mw = zh_cors_middleware(cors);
			cr_assert_eq(zh_server_use(srv, &mw), 0);
		}
	}
	cr_assert_eq(pthread_create(&runner, NULL, zh_tc_run, srv), 0);
	running = true;
}

static void stop_server(void)
{
	if (running) {
		zh_server_stop(srv);
		pthread_join(runner, NULL);
		running = false;
	}
	if (srv)
		zh_server_free(srv);
	if (gz)
		zh_gzip_free(gz);
	if (cors)
		zh_cors_free(cors);
	srv = NULL;
	gz = NULL;
	cors = NULL;
	if (file_fd >= 0)
		close(file_fd);
	file_fd = -1;
}

static void cleanup(void)
{
	stop_server();
	free_owned();
}

/* ---- the client: zh_test_client.h's strict reader ------------------------------------------- */

static void dial(conn_t *c, unsigned rcvbuf)
{
	zh_tc_dial(c, zh_server_port(srv), 3, rcvbuf);
}

static void get(const char *path, const char *extra, resp_t *r)
{
	zh_tc_get(zh_server_port(srv), path, extra, r);
}

/* Every Vary token of every Vary field, lower case, in order of appearance, comma-joined. */
static void vary_tokens(const resp_t *r, char *out, size_t cap)
{
	const char *p = strstr(r->head, "\r\n");
	size_t off = 0;
	out[0] = '\0';
	while (p && p[2] != '\r') {
		const char *line = p + 2, *eol = strstr(line, "\r\n");
		if (strncasecmp(line, "vary:", 5) == 0) {
			const char *v = line + 5;
			while (v < eol) {
				const char *e;
				while (v < eol && (*v == ' ' || *v == '\t' || *v == ','))
					v++;
				e = v;
				while (e < eol && *e != ',' && *e != ' ' && *e != '\t')
					e++;
				if (e > v && off + (size_t)(e - v) + 2 < cap) {
					if (off)
						out[off++] = ',';
					for (const char *q = v; q < e; q++)
						out[off++] = (char)tolower((unsigned char)*q);
					out[off] = '\0';
				}
				v = e;
			}
		}
		p = eol;
	}
}

/* The tokens sorted (duplicates kept, so a repeated token shows). */
static void sorted_tokens(const char *in, char *out, size_t cap)
{
	char copy[512], *tok[32], *save = NULL;
	size_t n = 0, off = 0;
	snprintf(copy, sizeof copy, "%s", in);
	for (char *t = strtok_r(copy, ",", &save); t && n < 32; t = strtok_r(NULL, ",", &save))
		tok[n++] = t;
	qsort(tok, n, sizeof tok[0], cmp_str);
	out[0] = '\0';
	for (size_t i = 0; i < n; i++)
		off += (size_t)snprintf(out + off, cap - off, "%s%s", i ? "," : "", tok[i]);
}

/* Every suite has the same timeout: with different ones, Criterion's runner leaks 48 bytes
 * (LeakSanitizer fails the asan build). */
TestSuite(gzip, .fini = cleanup, .timeout = 20);
TestSuite(write_ref, .fini = cleanup, .timeout = 20);

/* ---- gzip ------------------------------------------------------------------------------------ */

/* The handler's 100 bytes are held back (fewer than min_length, 256: undecided); the
 * producer makes the head leave first, so gzip decides to compress at the head. The held
 * bytes must then go first, not be dropped. */
Test(gzip, held_back_bytes_go_first_when_the_head_leaves_early)
{
	resp_t r;
	char ce[32];
	start_server(&(opts_t){.gzip = true});
	get("/held-then-produce", "Accept-Encoding: gzip\r\n", &r);
	cr_assert_eq(r.status, 200);
	cr_assert_eq(field(&r, "Content-Encoding", ce, sizeof ce), 1, "not compressed:\n%s", r.head);
	cr_assert(r.chunked, "a produced body is chunked:\n%s", r.head);
	cr_assert_eq(r.body_len, (size_t)STP_LEN, "inflated %zu bytes, want %d (100 + 3 x 40000)",
		     r.body_len, STP_LEN);
	cr_assert(memcmp(r.body, stp_body, STP_LEN) == 0, "inflated bytes differ (starts %.12s)",
		  (char *)r.body);
	resp_free(&r);
	/* without gzip the same bytes, identity */
	get("/held-then-produce", NULL, &r);
	cr_assert_eq(field(&r, "Content-Encoding", ce, sizeof ce), 0);
	cr_assert_eq(r.body_len, (size_t)STP_LEN);
	cr_assert(memcmp(r.body, stp_body, STP_LEN) == 0);
	resp_free(&r);
}

/* /etag (ETag "v1", Accept-Ranges, the handler's Vary: Cookie) with CORS and gzip, in both
 * orders of the two middleware: [order][0] asks for gzip, [order][1] does not. The decoded
 * body and CORS's answer are checked here; each test below checks one property. */
static resp_t etag_resp[2][2];
static const char *const order_name[2] = {"CORS, gzip", "gzip, CORS"};

static void fetch_etag(void)
{
	for (int o = 0; o < 2; o++) {
		start_server(&(opts_t){.gzip = true, .cors = true, .gzip_first = o == 1});
		get("/etag", "Accept-Encoding: gzip\r\nOrigin: " ORIGIN "\r\n", &etag_resp[o][0]);
		get("/etag", "Origin: " ORIGIN "\r\n", &etag_resp[o][1]);
		stop_server();
		for (int k = 0; k < 2; k++) {
			const resp_t *r = &etag_resp[o][k];
			char v[64];
			cr_assert_eq(r->status, 200, "[%s]", order_name[o]);
			cr_assert_eq(field(r, "Content-Encoding", v, sizeof v), k == 0 ? 1 : 0,
				     "[%s] compressed only when asked:\n%s", order_name[o], r->head);
			cr_assert_eq(r->body_len, (size_t)ETAG_LEN, "[%s]", order_name[o]);
			cr_assert(memcmp(r->body, etag_body, ETAG_LEN) == 0, "[%s]", order_name[o]);
			cr_assert_eq(field(r, "Access-Control-Allow-Origin", v, sizeof v), 1);
			cr_assert_str_eq(v, ORIGIN);
		}
	}
}

/* Compressed bytes are not the identity bytes: a strong validator would claim they are. */
Test(gzip, a_compressed_response_has_a_weak_etag)
{
	char v[64];
	fetch_etag();
	for (int o = 0; o < 2; o++) {
		cr_assert_eq(field(&etag_resp[o][0], "ETag", v, sizeof v), 1, "[%s]", order_name[o]);
		cr_assert_str_eq(v, "W/\"v1\"", "[%s] ETag of the gzip body: %s", order_name[o], v);
		cr_assert_eq(field(&etag_resp[o][1], "ETag", v, sizeof v), 1, "[%s]", order_name[o]);
		cr_assert_str_eq(v, "\"v1\"", "[%s] ETag of the identity body: %s", order_name[o],
				 v);
	}
}

/* Ranges over the compressed bytes would mix representations: no Accept-Ranges then. */
Test(gzip, a_compressed_response_does_not_offer_ranges)
{
	char v[64];
	fetch_etag();
	for (int o = 0; o < 2; o++) {
		cr_assert_eq(field(&etag_resp[o][0], "Accept-Ranges", v, sizeof v), 0,
			     "[%s] Accept-Ranges: %s on the gzip body", order_name[o], v);
		cr_assert_eq(field(&etag_resp[o][1], "Accept-Ranges", v, sizeof v), 1,
			     "[%s]", order_name[o]);
		cr_assert_str_eq(v, "bytes");
	}
}

/* Vary keeps the handler's Cookie and CORS's Origin next to gzip's Accept-Encoding, each
 * once, compressed or not, whichever of CORS and gzip comes first. */
Test(gzip, vary_keeps_the_handlers_and_cors_tokens)
{
	char vary[256], sorted[256];
	fetch_etag();
	for (int o = 0; o < 2; o++)
		for (int k = 0; k < 2; k++) {
			vary_tokens(&etag_resp[o][k], vary, sizeof vary);
			sorted_tokens(vary, sorted, sizeof sorted);
			cr_assert_str_eq(sorted, "accept-encoding,cookie,origin",
					 "[%s]%s Vary tokens: %s", order_name[o],
					 k ? "" : " gzip", vary);
		}
}

/* zh_write_header with a declared length (gzip installs its filter at that commit), then
 * zh_send_file: the untouched filter is dropped and the file is served as it is. */
Test(gzip, send_file_right_after_the_commit_serves_the_file)
{
	resp_t r;
	char v[64];
	int e;
	start_server(&(opts_t){.gzip = true});
	get("/file", "Accept-Encoding: gzip\r\n", &r);
	pthread_mutex_lock(&lock);
	e = send_file_result;
	pthread_mutex_unlock(&lock);
	cr_assert_eq(e, 0, "zh_send_file returned %d", e);
	cr_assert_eq(r.status, 200, "status %d:\n%s", r.status, r.head);
	cr_assert_eq(field(&r, "Content-Encoding", v, sizeof v), 0, "a file body is not encoded");
	cr_assert_eq(r.clen, (long long)FILE_LEN);
	cr_assert_eq(r.body_len, (size_t)FILE_LEN);
	cr_assert(memcmp(r.body, file_body, FILE_LEN) == 0, "the file's bytes differ");
	resp_free(&r);
}

/* A HEAD whose handler declares its length and writes nothing keeps that length: the
 * filter, fed nothing, must not turn it into "Content-Length: 0" (a cache would take the
 * representation for empty). The GET of the same route is compressed. */
Test(gzip, a_head_with_a_declared_length_and_no_body_keeps_its_length)
{
	char req[] = "HEAD /declared HTTP/1.1\r\nHost: t\r\nAccept-Encoding: gzip\r\n"
		     "Connection: close\r\n\r\n";
	char v[64];
	conn_t c;
	resp_t r;
	start_server(&(opts_t){.gzip = true});
	get("/declared", "Accept-Encoding: gzip\r\n", &r);
	cr_assert_eq(r.status, 200, "status %d:\n%s", r.status, r.head);
	cr_assert_eq(field(&r, "Content-Encoding", v, sizeof v), 1, "the GET is compressed");
	resp_free(&r);
	zh_tc_dial(&c, zh_server_port(srv), 3, 0);
	send_all(&c, req, sizeof req - 1);
	read_response(&c, &r, true);
	expect_eof(&c);
	hang_up(&c);
	cr_assert_eq(r.status, 200, "status %d:\n%s", r.status, r.head);
	cr_assert_eq(field(&r, "Content-Length", v, sizeof v), 1, "HEAD:\n%s", r.head);
	cr_assert_str_eq(v, "3300", "HEAD:\n%s", r.head);
	resp_free(&r);
}

/* ---- zh_write_ref under a body filter ----------------------------------------------------- */

/* gzip takes each reference at once (and releases it); the client reads nothing, so the
 * output fills the socket and the overflow buffers, the write waits sync_write_wait_ms and
 * fails. That call must not have released its buffer: the caller frees it on an error, so
 * a release as well would be a double free. Every successful call was released once. */
Test(write_ref, a_failing_call_under_a_filter_never_releases)
{
	conn_t c;
	static const char req[] = "GET /refs HTTP/1.1\r\nHost: t\r\nAccept-Encoding: gzip\r\n\r\n";
	long long t0;
	int finished = 0;
	start_server(&(opts_t){.gzip = true, .sync_write_wait_ms = 100});
	dial(&c, 4096);
	send_all(&c, req, sizeof req - 1);
	t0 = zh_tc_now_ms();
	while (zh_tc_now_ms() - t0 < 5000) {
		pthread_mutex_lock(&lock);
		finished = rf.finished;
		pthread_mutex_unlock(&lock);
		if (finished)
			break;
		usleep(5000);
	}
	hang_up(&c);
	cr_assert(finished, "the handler did not end");
	pthread_mutex_lock(&lock);
	cr_assert_lt(rf.ok, REF_MAX, "no write failed (the client reads nothing)");
	cr_assert_gt(rf.ok, 0, "the first write failed (%d)", rf.fail_err);
	cr_assert_lt(rf.fail_err, 0);
	cr_assert_eq(rf.released_on_error, 0,
		     "zh_write_ref returned %d at call %d and had called release too", rf.fail_err,
		     rf.fail_at);
	cr_assert_eq(rf.releases, rf.ok, "%d releases for %d successful calls", rf.releases,
		     rf.ok);
	cr_assert_eq(rf.double_release, 0);
	for (int i = 0; i < rf.ok; i++)
		cr_assert_eq(rf.released[i], 1, "buffer %d released %d times", i, rf.released[i]);
	pthread_mutex_unlock(&lock);
}
