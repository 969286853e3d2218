/* test_compose.c — the shipped middleware composed, through a real server in this process
 * (the fixture approach of test_middleware.c). Issue 5: "chains in several orders giving the
 * same bytes" and "gzip + chunked + pipelining together".
 *
 * 1. Every order of the five (gzip G, CORS C, auth A, limiter L, access log X; all 120
 *    permutations, a fresh server each) serves the same requests: JSON documents small
 *    (Content-Length) and large (chunked), a zh_write body, a producer body, a deferred
 *    response, HEAD, a library 404, 401s. For each request the status, the decoded body, the
 *    wire body (compressed bytes included), the header set (Date left out, Vary as a set of
 *    tokens) and the access log's line must be identical in every order, and each must also
 *    equal what this file expects independently (gzip inflates to the exact document, framing
 *    is valid, Vary/CORS/WWW-Authenticate as documented).
 *
 *    What the order does change, and the only thing: which before hook answers a request
 *    that several would answer. A CORS preflight carries no credentials. With C before A it
 *    is answered 204 by CORS. With A before C it is a 401 from auth, which CORS's commit hook
 *    still labels with Access-Control-Allow-Origin (a browser then fails the preflight on
 *    its status). The limiter counts only the requests that reach its before hook: placed
 *    after auth and CORS, it never spends a token on a 401 or a preflight (asserted in 2).
 *
 * 2. Pipelining across the chain: one connection, one write of eleven requests mixing gzip
 *    with chunked framing, a 401, a preflight, a deferred response, a producer and 429s from a
 *    limit the batch exceeds. Every response comes back in order with valid framing, and the
 *    access log has one line per response, in the same order, with the same status and
 *    byte count (the body bytes sent: compressed bytes for gzip, chunk framing excluded).
 *
 * 3. Two narrower cases: a handler's own Vary next to CORS's and gzip's tokens (all three
 *    must survive, in all 120 orders), and a producer that writes fixed 8 KiB pieces through
 *    gzip (deflate may swallow a piece without output; the response must still complete).
 */
#include <criterion/criterion.h>

#include <zerohttp.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#define ORIGIN "https://app.example"
#define TOKEN "compose-token-1"

/* the shared strict reader, with this file's view of each head (parse_head, below) */
#define ZH_TC_CONN
#define ZH_TC_RESP_EXTRA                                                                       \
	char norm[4096]; /* the header set: "name: value" lines sorted, Date left out, each    \
			    Vary token a line of its own (so "Vary: a, b" equals two fields) */ \
	char vary[512];	 /* Vary tokens, lower case, sorted, unique, comma-joined */           \
	char acao[256], www[512], ce[64], ctype[128], retry[32];
#define ZH_TC_ON_HEAD parse_head
#include "zh_test_client.h"

/* ---- bodies: what the handlers write, and what the test expects -------------------------- */

static uint64_t mix(uint64_t x) /* splitmix64's finalizer: hex that compresses about 2:1 */
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

enum { LARGE_ITEMS = 6000, SMALL_TAGS = 40, DEFER_KEYS = 60, WRITE_LINES = 30,
       PRODUCE_LINES = 4096, PRODUCE_LINE = 24, PRODUCE_STEP = 341 };

typedef struct {
	char *p;
	size_t len, cap;
} text_t;

static void tput(text_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tput(text_t *t, const char *fmt, ...)
{
	va_list ap;
	int n;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(t->p ? t->p + t->len : NULL, t->p ? t->cap - t->len : 0, fmt, ap);
		va_end(ap);
		cr_assert_geq(n, 0);
		if (t->p && t->len + (size_t)n < t->cap)
			break;
		t->cap = (t->cap + (size_t)n + 1) * 2;
		t->p = realloc(t->p, t->cap); /* kept for the process: the handlers send it */
		cr_assert_not_null(t->p);
	}
	t->len += (size_t)n;
}

/* The expected texts, written with printf: independent of the zh_json encoder. */
static text_t exp_small, exp_large, exp_tiny, exp_write, exp_defer, exp_produce;

static void make_expected(void)
{
	if (exp_small.p)
		return;
	tput(&exp_small, "{\"name\":\"compose\",\"n\":7,\"tags\":[");
	for (int i = 0; i < SMALL_TAGS; i++)
		tput(&exp_small, "%s\"tag-%02d\"", i ? "," : "", i);
	tput(&exp_small, "],\"ok\":true}");
	tput(&exp_large, "[");
	for (int i = 0; i < LARGE_ITEMS; i++)
		tput(&exp_large, "%s{\"i\":%d,\"h\":\"%016llx\"}", i ? "," : "", i,
		     (unsigned long long)mix((uint64_t)i));
	tput(&exp_large, "]");
	tput(&exp_tiny, "{\"ok\":true}");
	for (int i = 0; i < WRITE_LINES; i++)
		tput(&exp_write, "zh_write line %02d: the quick brown fox\n", i);
	tput(&exp_defer, "{\"deferred\":true");
	for (int i = 0; i < DEFER_KEYS; i++)
		tput(&exp_defer, ",\"k%02d\":\"value-%02d\"", i, i);
	tput(&exp_defer, "}");
	/* the producer sends slices of this one (by copy and by reference, alternately) */
	for (int i = 0; i < PRODUCE_LINES; i++)
		tput(&exp_produce, "%06d %016llx\n", i, (unsigned long long)mix((uint64_t)i << 20));
	cr_assert_eq(exp_produce.len, (size_t)PRODUCE_LINES * PRODUCE_LINE);
}

/* ---- handlers ------------------------------------------------------------------------------ */

static void h_small(zh_request_t *req, zh_response_t *resp, void *arg)
{
	zh_json_t *j = zh_json_begin(resp, 0);
	char tag[16];
	(void)req, (void)arg;
	zh_json_obj(j);
	zh_json_key(j, "name", 4);
	zh_json_str(j, "compose", 7);
	zh_json_key(j, "n", 1);
	zh_json_u64(j, 7);
	zh_json_key(j, "tags", 4);
	zh_json_arr(j);
	for (int i = 0; i < SMALL_TAGS; i++)
		zh_json_str(j, tag, (size_t)snprintf(tag, sizeof tag, "tag-%02d", i));
	zh_json_end(j);
	zh_json_key(j, "ok", 2);
	zh_json_bool(j, 1);
	zh_json_end(j);
}

static void h_large(zh_request_t *req, zh_response_t *resp, void *arg)
{
	zh_json_t *j = zh_json_begin(resp, 0);
	char hex[24];
	(void)req, (void)arg;
	zh_json_arr(j);
	for (int i = 0; i < LARGE_ITEMS; i++) {
		zh_json_obj(j);
		zh_json_key(j, "i", 1);
		zh_json_u64(j, (uint64_t)i);
		zh_json_key(j, "h", 1);
		zh_json_str(j, hex, (size_t)snprintf(hex, sizeof hex, "%016llx",
						     (unsigned long long)mix((uint64_t)i)));
		zh_json_end(j);
	}
	zh_json_end(j);
}

static void h_tiny(zh_request_t *req, zh_response_t *resp, void *arg)
{
	zh_json_t *j = zh_json_begin(resp, 0);
	(void)req, (void)arg;
	zh_json_obj(j);
	zh_json_key(j, "ok", 2);
	zh_json_bool(j, 1);
	zh_json_end(j);
}

/* The small document, with a Vary of the handler's own (the answer depends on X-Variant) */
static void h_vary(zh_request_t *req, zh_response_t *resp, void *arg)
{
	zh_resp_header_set(resp, "Vary", "X-Variant");
	h_small(req, resp, arg);
}

/* The zh_write body with its length declared first (arg non-NULL) */
static void h_write(zh_request_t *req, zh_response_t *resp, void *arg);
static void h_write_cl(zh_request_t *req, zh_response_t *resp, void *arg)
{
	char len[24];
	snprintf(len, sizeof len, "%zu", exp_write.len);
	zh_resp_header_set(resp, "Content-Length", len);
	h_write(req, resp, arg);
}

static void h_write(zh_request_t *req, zh_response_t *resp, void *arg)
{
	char line[64];
	(void)req, (void)arg;
	zh_resp_header_set(resp, "Content-Type", "text/plain; charset=utf-8");
	for (int i = 0; i < WRITE_LINES; i++)
		(void)zh_write(resp, line, (size_t)snprintf(line, sizeof line,
				"zh_write line %02d: the quick brown fox\n", i));
}

/* One piece of the producer body: PRODUCE_STEP lines from *line on, by copy or by reference
 * (alternately). Returns 0 or a negative errno. */
static int produce_piece(zh_response_t *resp, unsigned *line)
{
	unsigned n = PRODUCE_LINES - *line < PRODUCE_STEP ? PRODUCE_LINES - *line : PRODUCE_STEP;
	const char *p = exp_produce.p + (size_t)*line * PRODUCE_LINE;
	int r = (*line / PRODUCE_STEP) % 2 == 0
			? zh_write(resp, p, (size_t)n * PRODUCE_LINE)
			: zh_write_ref(resp, p, (size_t)n * PRODUCE_LINE, NULL, NULL);
	*line += n;
	return r < 0 ? r : 0;
}

/* Paced as the header advises: pieces until the body sent has grown, so that each call
 * makes visible progress even when a filter (gzip) holds what it is given. */
static int produce_paced(zh_response_t *resp, void *arg)
{
	unsigned *line;
	uint64_t before;
	(void)arg;
	if (resp == NULL)
		return 0; /* the state lives in the response */
	line = zh_resp_state(resp);
	before = zh_resp_body_len(resp);
	do {
		if (produce_piece(resp, line) < 0)
			return -EIO;
	} while (*line < PRODUCE_LINES && zh_resp_body_len(resp) == before);
	return *line == PRODUCE_LINES ? ZH_PRODUCE_DONE : ZH_PRODUCE_MORE;
}

/* One 8 KiB piece per call, whatever happens to it: a plain producer. */
static int produce_fixed(zh_response_t *resp, void *arg)
{
	unsigned *line;
	(void)arg;
	if (resp == NULL)
		return 0;
	line = zh_resp_state(resp);
	if (produce_piece(resp, line) < 0)
		return -EIO;
	return *line == PRODUCE_LINES ? ZH_PRODUCE_DONE : ZH_PRODUCE_MORE;
}

static void h_produce(zh_request_t *req, zh_response_t *resp, void *arg)
{
	unsigned *line = zh_resp_state(resp);
	(void)req;
	*line = 0;
	zh_resp_header_set(resp, "Content-Type", "text/plain; charset=utf-8");
	if (zh_resp_produce(resp, arg ? produce_fixed : produce_paced, NULL) < 0)
		(void)zh_reply(resp, 500, NULL, NULL, 0);
}

/* Deferred responses: the handler hands its token to a resumer thread, which resumes it a
 * few ms later; the worker serves on meanwhile. */
static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	zh_deferred_t q[64];
	unsigned n;
	bool stop, running;
	pthread_t thread;
} rs = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

static void defer_done(zh_request_t *req, zh_response_t *resp, void *arg)
{
	zh_json_t *j;
	char k[8], v[16];
	(void)req, (void)arg;
	if (resp == NULL)
		return;
	j = zh_json_begin(resp, 0);
	zh_json_obj(j);
	zh_json_key(j, "deferred", 8);
	zh_json_bool(j, 1);
	for (int i = 0; i < DEFER_KEYS; i++) {
		zh_json_key(j, k, (size_t)snprintf(k, sizeof k, "k%02d", i));
		zh_json_str(j, v, (size_t)snprintf(v, sizeof v, "value-%02d", i));
	}
	zh_json_end(j);
}

static void *resumer(void *unused)
{
	(void)unused;
	pthread_mutex_lock(&rs.lock);
	for (;;) {
		zh_deferred_t t;
		while (rs.n == 0 && !rs.stop)
			pthread_cond_wait(&rs.cond, &rs.lock);
		if (rs.n == 0)
			break;
		t = rs.q[0];
		memmove(rs.q, rs.q + 1, --rs.n * sizeof rs.q[0]);
		pthread_mutex_unlock(&rs.lock);
		usleep(5000);
		while (zh_deferred_resume(&t, defer_done, NULL) == -EAGAIN)
			sched_yield();
		pthread_mutex_lock(&rs.lock);
	}
	pthread_mutex_unlock(&rs.lock);
	return NULL;
}

static void h_defer(zh_request_t *req, zh_response_t *resp, void *arg)
{
	zh_deferred_t t;
	(void)req, (void)arg;
	pthread_mutex_lock(&rs.lock);
	if (rs.n == sizeof rs.q / sizeof rs.q[0] || zh_resp_defer(resp, &t) < 0) {
		pthread_mutex_unlock(&rs.lock);
		(void)zh_reply(resp, 500, "text/plain", "no defer\n", 9);
		return;
	}
	rs.q[rs.n++] = t;
	pthread_cond_signal(&rs.cond);
	pthread_mutex_unlock(&rs.lock);
}

/* ---- the rig: one server with the five middleware in a given order ------------------------ */

enum { MW_GZIP, MW_CORS, MW_AUTH, MW_LIMIT, MW_LOG, NMW };
static const char mw_letter[NMW] = {'G', 'C', 'A', 'L', 'X'};

static char dir[64], tokens_path[128];

typedef struct {
	zh_server_t *srv;
	pthread_t runner;
	zh_gzip_t *gz;
	zh_cors_t *cors;
	zh_auth_t *auth;
	zh_limit_t *lim;
	zh_access_log_t *log;
	char log_path[160];
	char name[2 * NMW];
	char *log_text; /* the access log, read once the server has stopped */
	size_t log_len;
} rig_t;

static void write_text_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f, "%s: %s", path, strerror(errno));
	cr_assert_geq(fputs(text, f), 0);
	cr_assert_eq(fclose(f), 0);
}

static void make_dir(void)
{
	if (dir[0])
		return;
	strcpy(dir, "/tmp/zh-compose-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(tokens_path, sizeof tokens_path, "%s/tokens", dir);
	write_text_file(tokens_path, "# the test's bearer token\n" TOKEN "\n");
}

/* Also the logs of a test that stopped early */
static void remove_dir(void)
{
	DIR *d;
	struct dirent *e;
	if (!dir[0])
		return;
	if ((d = opendir(dir)) != NULL) {
		while ((e = readdir(d)) != NULL)
			if (e->d_name[0] != '.')
				(void)unlinkat(dirfd(d), e->d_name, 0);
		closedir(d);
	}
	rmdir(dir);
	dir[0] = '\0';
}

static void rig_start(rig_t *r, const int order[NMW], double rps, double burst,
		      unsigned inflight)
{
	static const char *const origins[] = {ORIGIN};
	static unsigned serial;
	zh_config_t cfg;
	zh_gzip_options_t go;
	zh_cors_options_t co;
	zh_auth_options_t ao;
	int err = 0;

	memset(r, 0, sizeof *r);
	make_expected();
	make_dir();
	zh_tc_config(&cfg);
	r->srv = zh_server_new(&cfg, &err);
	cr_assert_not_null(r->srv, "zh_server_new: %d", err);
	cr_assert_eq(zh_server_route(r->srv, ZH_GET, "/api/json/small", 0, h_small, NULL), 0);
	cr_assert_eq(zh_server_route(r->srv, ZH_GET, "/api/json/large", 0, h_large, NULL), 0);
	cr_assert_eq(zh_server_route(r->srv, ZH_GET, "/api/json/tiny", 0, h_tiny, NULL), 0);
	cr_assert_eq(zh_server_route(r->srv, ZH_GET, "/api/write", 0, h_write, NULL), 0);
	cr_assert_eq(zh_server_route(r->srv, ZH_GET, "/api/write-cl", 0, h_write_cl, NULL), 0);
	cr_assert_eq(zh_server_route(r->srv, ZH_GET, "/api/json/vary", 0, h_vary, NULL), 0);
	cr_assert_eq(zh_server_route(r->srv, ZH_GET, "/api/produce", 0, h_produce, NULL), 0);
	cr_assert_eq(zh_server_route(r->srv, ZH_GET, "/api/produce-fixed", 0, h_produce, r), 0);
	cr_assert_eq(zh_server_route(r->srv, ZH_GET, "/api/defer", 0, h_defer, NULL), 0);

	zh_gzip_options_init(&go);
	go.min_length = 16; /* so that the 17-byte 401 and 18-byte 429 bodies are compressed */
	go.streams_per_worker = 4;
	r->gz = zh_gzip_new(r->srv, &go, &err);
	cr_assert_not_null(r->gz, "zh_gzip_new: %d", err);
	zh_cors_options_init(&co);
	co.origins = origins;
	co.n_origins = 1;
	r->cors = zh_cors_new(&co, &err);
	cr_assert_not_null(r->cors, "zh_cors_new: %d", err);
	zh_auth_options_init(&ao);
	ao.tokens_file = tokens_path;
	r->auth = zh_auth_new(&ao, &err);
	cr_assert_not_null(r->auth, "zh_auth_new: %d", err);
	r->lim = zh_limit_new(1024, &err);
	cr_assert_not_null(r->lim, "zh_limit_new: %d", err);
	cr_assert_eq(zh_limit_set(r->lim, rps, burst, inflight), 0);
	snprintf(r->log_path, sizeof r->log_path, "%s/access-%u.log", dir, serial++);
	r->log = zh_access_log_new(r->srv, r->log_path, ZH_LOG_COMMON, &err);
	cr_assert_not_null(r->log, "zh_access_log_new: %d", err);

	for (int i = 0; i < NMW; i++) {
		zh_middleware_t mw;
		switch (order[i]) {
		case MW_GZIP: mw = zh_gzip_middleware(r->gz); break;
		case MW_CORS: mw = zh_cors_middleware(r->cors); break;
		case MW_AUTH: mw = zh_auth_middleware(r->auth); break;
		case MW_LIMIT: mw = zh_limit_middleware(r->lim); break;
		default: mw = zh_access_log_middleware(r->log); break;
		}
		cr_assert_eq(zh_server_use(r->srv, &mw), 0);
		r->name[2 * i] = mw_letter[order[i]];
		r->name[2 * i + 1] = i + 1 < NMW ? ' ' : '\0';
	}

	rs.stop = false;
	rs.n = 0;
	cr_assert_eq(pthread_create(&rs.thread, NULL, resumer, NULL), 0);
	cr_assert_eq(pthread_create(&r->runner, NULL, zh_tc_run, r->srv), 0);
}

/* Every done hook ran: the limiter's in-flight count is back to 0 (done hooks balance before
 * hooks whatever the order), then the server stops and the log is read. */
static void rig_stop(rig_t *r)
{
	FILE *f;
	struct stat st;
	for (int i = 0; i < 200 && zh_limit_inflight(r->lim) != 0; i++)
		usleep(5000);
	cr_assert_eq(zh_limit_inflight(r->lim), 0, "[%s] in-flight places leaked", r->name);
	zh_server_stop(r->srv);
	pthread_join(r->runner, NULL);
	pthread_mutex_lock(&rs.lock);
	rs.stop = true;
	pthread_cond_signal(&rs.cond);
	pthread_mutex_unlock(&rs.lock);
	pthread_join(rs.thread, NULL);
	/* zh_server_run() returned after every line was written */
	f = fopen(r->log_path, "r");
	cr_assert_not_null(f);
	cr_assert_eq(fstat(fileno(f), &st), 0);
	r->log_len = (size_t)st.st_size;
	r->log_text = xmalloc(r->log_len + 1);
	cr_assert_eq(fread(r->log_text, 1, r->log_len, f), r->log_len);
	r->log_text[r->log_len] = '\0';
	fclose(f);
	unlink(r->log_path);
	zh_server_free(r->srv);
	zh_gzip_free(r->gz);
	zh_cors_free(r->cors);
	zh_auth_free(r->auth);
	zh_limit_free(r->lim);
	zh_access_log_free(r->log);
}

/* ---- a strict client ------------------------------------------------------------------------ */

static void dial(conn_t *c, uint16_t port)
{
	c->fd = zh_tc_connect(port, 10, 0);
	c->have = 0;
	if (c->buf == NULL) {
		c->cap = 1 << 16;
		c->buf = xmalloc(c->cap);
	}
}

static void lower(char *s)
{
	for (; *s; s++)
		*s = (char)tolower((unsigned char)*s);
}

/* Parses the head in r->head (the shared reader then checks its status and framing): the
 * fields this file looks at, the normalized set; header names are tokens, no obs-fold. */
static void parse_head(resp_t *r)
{
	char copy[sizeof r->head], *lines[128], *vt[32];
	char norm_store[128][160];
	size_t nl = 0, nv = 0, off = 0;
	int nacao = 0;
	char *save = NULL, *line;

	r->vary[0] = r->acao[0] = r->www[0] = r->ce[0] = r->ctype[0] = r->retry[0] = '\0';
	strcpy(copy, r->head);
	line = strtok_r(copy, "\r\n", &save); /* the status line */
	while ((line = strtok_r(NULL, "\r\n", &save)) != NULL) {
		char *colon = strchr(line, ':'), *v, *e;
		cr_assert_not_null(colon, "a header line without a colon: %s", line);
		cr_assert(line[0] != ' ' && line[0] != '\t', "obs-fold: %s", line);
		*colon = '\0';
		for (char *p = line; *p; p++)
			cr_assert(isalnum((unsigned char)*p) || strchr("!#$%&'*+-.^_`|~", *p),
				  "a header name that is not a token: %s", line);
		v = colon + 1;
		while (*v == ' ' || *v == '\t')
			v++;
		e = v + strlen(v);
		while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
			*--e = '\0';
		lower(line);
		if (strcmp(line, "date") == 0)
			continue;
		if (strcmp(line, "content-encoding") == 0) {
			snprintf(r->ce, sizeof r->ce, "%s", v);
		} else if (strcmp(line, "access-control-allow-origin") == 0) {
			nacao++;
			snprintf(r->acao, sizeof r->acao, "%s", v);
		} else if (strcmp(line, "content-type") == 0) {
			snprintf(r->ctype, sizeof r->ctype, "%s", v);
		} else if (strcmp(line, "retry-after") == 0) {
			snprintf(r->retry, sizeof r->retry, "%s", v);
		} else if (strcmp(line, "www-authenticate") == 0) {
			size_t l = strlen(r->www);
			snprintf(r->www + l, sizeof r->www - l, "%s%s", l ? " | " : "", v);
		}
		if (strcmp(line, "vary") == 0) {
			char *s2 = NULL, *tok;
			for (tok = strtok_r(v, ",", &s2); tok; tok = strtok_r(NULL, ",", &s2)) {
				char *t = tok, *te;
				while (*t == ' ' || *t == '\t')
					t++;
				te = t + strlen(t);
				while (te > t && (te[-1] == ' ' || te[-1] == '\t'))
					*--te = '\0';
				lower(t);
				cr_assert_lt(nv, 32u);
				vt[nv++] = t;
			}
			continue;
		}
		cr_assert_lt(nl, 128u);
		snprintf(norm_store[nl], sizeof norm_store[nl], "%s: %s", line, v);
		lines[nl] = norm_store[nl];
		nl++;
	}
	cr_assert_leq(nacao, 1, "Access-Control-Allow-Origin twice");
	/* Vary as a set */
	qsort(vt, nv, sizeof vt[0], cmp_str);
	for (size_t i = 0; i < nv; i++) {
		size_t l = strlen(r->vary);
		if (i && strcmp(vt[i], vt[i - 1]) == 0)
			continue;
		snprintf(r->vary + l, sizeof r->vary - l, "%s%s", l ? "," : "", vt[i]);
		cr_assert_lt(nl, 128u);
		snprintf(norm_store[nl], sizeof norm_store[nl], "vary: %s", vt[i]);
		lines[nl] = norm_store[nl];
		nl++;
	}
	qsort(lines, nl, sizeof lines[0], cmp_str);
	r->norm[0] = '\0';
	for (size_t i = 0; i < nl; i++)
		off += (size_t)snprintf(r->norm + off, sizeof r->norm - off, "%s\n", lines[i]);
	cr_assert_lt(off, sizeof r->norm);
}

/* ---- the requests ------------------------------------------------------------------------- */

enum { AUTH_NONE, AUTH_GOOD, AUTH_BAD };
enum { F_NONE, F_LENGTH, F_CHUNKED, F_ANY };

typedef struct {
	const char *name;
	const char *method, *path;
	int auth;
	bool gzip;	       /* Accept-Encoding: gzip */
	const char *origin;    /* NULL: no Origin */
	bool preflight;	       /* Access-Control-Request-Method: PUT */
	/* what must come back, whatever the order */
	int status;	       /* 0: depends on the order (see preflight_expect) */
	const text_t *body;    /* decoded body, or NULL with body_lit */
	const char *body_lit;  /* NULL with body NULL: not checked here (a library 404) */
	bool encoded;	       /* Content-Encoding: gzip */
	int framing;
	const char *vary;      /* NULL: not checked here */
	const char *acao;
	const char *www;
	const char *req_body;  /* sent with Content-Length */
} spec_t;

#define V_AE_O "accept-encoding,origin"
#define V_PRE "access-control-request-headers,access-control-request-method,origin"
#define WWW_BEARER "Bearer realm=\"zerohttp\""
#define WWW_INVALID "Bearer realm=\"zerohttp\", error=\"invalid_token\""
#define UNAUTH "401 Unauthorized\n"

static const spec_t specs[] = {
	{"json-small-gz", "GET", "/api/json/small", AUTH_GOOD, true, ORIGIN, false, 200,
	 &exp_small, NULL, true, F_LENGTH, V_AE_O, ORIGIN, "", NULL},
	{"json-small", "GET", "/api/json/small", AUTH_GOOD, false, ORIGIN, false, 200, &exp_small,
	 NULL, false, F_LENGTH, V_AE_O, ORIGIN, "", NULL},
	{"json-large-gz", "GET", "/api/json/large", AUTH_GOOD, true, ORIGIN, false, 200,
	 &exp_large, NULL, true, F_CHUNKED, V_AE_O, ORIGIN, "", NULL},
	{"json-large", "GET", "/api/json/large", AUTH_GOOD, false, ORIGIN, false, 200, &exp_large,
	 NULL, false, F_CHUNKED, V_AE_O, ORIGIN, "", NULL},
	/* under min_length: identity, but still Vary (the decision depended on the header) */
	{"json-tiny-gz", "GET", "/api/json/tiny", AUTH_GOOD, true, ORIGIN, false, 200, &exp_tiny,
	 NULL, false, F_LENGTH, V_AE_O, ORIGIN, "", NULL},
	{"write-gz", "GET", "/api/write", AUTH_GOOD, true, ORIGIN, false, 200, &exp_write, NULL,
	 true, F_LENGTH, V_AE_O, ORIGIN, "", NULL},
	{"write", "GET", "/api/write", AUTH_GOOD, false, ORIGIN, false, 200, &exp_write, NULL,
	 false, F_LENGTH, V_AE_O, ORIGIN, "", NULL},
	/* a declared Content-Length counts identity bytes: gzip measures again */
	{"write-cl-gz", "GET", "/api/write-cl", AUTH_GOOD, true, ORIGIN, false, 200, &exp_write,
	 NULL, true, F_LENGTH, V_AE_O, ORIGIN, "", NULL},
	{"write-cl", "GET", "/api/write-cl", AUTH_GOOD, false, ORIGIN, false, 200, &exp_write,
	 NULL, false, F_LENGTH, V_AE_O, ORIGIN, "", NULL},
	{"produce-gz", "GET", "/api/produce", AUTH_GOOD, true, ORIGIN, false, 200, &exp_produce,
	 NULL, true, F_CHUNKED, V_AE_O, ORIGIN, "", NULL},
	{"produce", "GET", "/api/produce", AUTH_GOOD, false, ORIGIN, false, 200, &exp_produce,
	 NULL, false, F_CHUNKED, V_AE_O, ORIGIN, "", NULL},
	{"defer-gz", "GET", "/api/defer", AUTH_GOOD, true, ORIGIN, false, 200, &exp_defer, NULL,
	 true, F_LENGTH, V_AE_O, ORIGIN, "", NULL},
	{"defer", "GET", "/api/defer", AUTH_GOOD, false, ORIGIN, false, 200, &exp_defer, NULL,
	 false, F_LENGTH, V_AE_O, ORIGIN, "", NULL},
	/* HEAD: what its GET carries, Content-Encoding and the encoded Content-Length too */
	{"head-json-small-gz", "HEAD", "/api/json/small", AUTH_GOOD, true, ORIGIN, false, 200,
	 NULL, "", true, F_NONE, V_AE_O, ORIGIN, "", NULL},
	{"no-origin-gz", "GET", "/api/json/small", AUTH_GOOD, true, NULL, false, 200, &exp_small,
	 NULL, true, F_LENGTH, V_AE_O, "", "", NULL},
	{"other-origin-gz", "GET", "/api/json/small", AUTH_GOOD, true, "https://evil.example",
	 false, 200, &exp_small, NULL, true, F_LENGTH, V_AE_O, "", "", NULL},
	{"library-404-gz", "GET", "/api/missing", AUTH_GOOD, true, ORIGIN, false, 404, NULL, NULL,
	 false, F_LENGTH, NULL, ORIGIN, "", NULL},
	/* auth's refusals: compressed (17 bytes >= min_length 16) when accepted, and labelled
	 * by CORS whatever the order */
	{"unauth-gz", "GET", "/api/json/small", AUTH_NONE, true, ORIGIN, false, 401, NULL, UNAUTH,
	 true, F_LENGTH, V_AE_O, ORIGIN, WWW_BEARER, NULL},
	{"unauth", "GET", "/api/json/small", AUTH_NONE, false, ORIGIN, false, 401, NULL, UNAUTH,
	 false, F_LENGTH, V_AE_O, ORIGIN, WWW_BEARER, NULL},
	{"bad-token-gz", "GET", "/api/json/small", AUTH_BAD, true, ORIGIN, false, 401, NULL, UNAUTH,
	 true, F_LENGTH, V_AE_O, ORIGIN, WWW_INVALID, NULL},
	/* a preflight with credentials passes auth in any order: CORS answers */
	{"preflight-with-token", "OPTIONS", "/api/json/small", AUTH_GOOD, false, ORIGIN, true, 204,
	 NULL, "", false, F_NONE, V_PRE, ORIGIN, "", NULL},
	/* a real preflight (no credentials): the order decides, see preflight_expect */
	{"preflight", "OPTIONS", "/api/json/small", AUTH_NONE, false, ORIGIN, true, 0, NULL, NULL,
	 false, F_ANY, NULL, ORIGIN, NULL, NULL},
};
enum { NSPECS = sizeof specs / sizeof specs[0] };

static size_t build_request(char *out, size_t cap, const spec_t *s, bool close)
{
	char cl[64] = "";
	int n;
	if (s->req_body)
		snprintf(cl, sizeof cl, "Content-Length: %zu\r\n", strlen(s->req_body));
	n = snprintf(out, cap, "%s %s HTTP/1.1\r\nHost: t\r\n%s%s%s%s%s%s%s%s%s", s->method,
			 s->path, s->origin ? "Origin: " : "", s->origin ? s->origin : "",
			 s->origin ? "\r\n" : "",
			 s->auth == AUTH_GOOD ? "Authorization: Bearer " TOKEN "\r\n"
			 : s->auth == AUTH_BAD ? "Authorization: Bearer not-" TOKEN "\r\n"
					       : "",
			 s->gzip ? "Accept-Encoding: br;q=1, gzip;q=0.8, deflate\r\n" : "",
			 s->preflight ? "Access-Control-Request-Method: PUT\r\n"
					"Access-Control-Request-Headers: content-type\r\n"
				      : "",
			 cl, close ? "Connection: close\r\n\r\n" : "\r\n",
			 s->req_body ? s->req_body : "");
	cr_assert(n > 0 && (size_t)n < cap);
	return (size_t)n;
}

/* The length of t gzipped as the middleware does it (zlib is deterministic for the same
 * input, level and parameters; the middleware flushes only at a producer's turns). */
static long long gzip_len(const text_t *t)
{
	static unsigned char out[65536];
	z_stream zs;
	long long n;
	memset(&zs, 0, sizeof zs);
	cr_assert_eq(deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
	zs.next_in = (Bytef *)(uintptr_t)t->p;
	zs.avail_in = (uInt)t->len;
	zs.next_out = out;
	zs.avail_out = sizeof out;
	cr_assert_eq(deflate(&zs, Z_FINISH), Z_STREAM_END);
	n = (long long)zs.total_out;
	deflateEnd(&zs);
	return n;
}

/* The explicit checks: what the documentation promises for this request, order aside. */
static void check_spec(const char *rig, const spec_t *s, const resp_t *r)
{
	cr_assert_eq(r->status, s->status, "[%s] %s: status %d\n%s", rig, s->name, r->status,
		     r->head);
	cr_assert_eq(r->ce[0] != '\0', s->encoded, "[%s] %s: Content-Encoding '%s'\n%s", rig,
		     s->name, r->ce, r->head);
	if (s->body)
		cr_assert(r->body_len == s->body->len && memcmp(r->body, s->body->p, r->body_len) == 0,
			  "[%s] %s: the decoded body differs (%zu bytes, want %zu)", rig, s->name,
			  r->body_len, s->body->len);
	else if (s->body_lit)
		cr_assert(r->body_len == strlen(s->body_lit) &&
				  memcmp(r->body, s->body_lit, r->body_len) == 0,
			  "[%s] %s: body '%.*s'", rig, s->name, (int)r->body_len, (char *)r->body);
	switch (s->framing) {
	case F_LENGTH:
		cr_assert(!r->chunked && r->clen >= 0, "[%s] %s: want Content-Length\n%s", rig,
			  s->name, r->head);
		break;
	case F_CHUNKED:
		cr_assert(r->chunked, "[%s] %s: want chunked\n%s", rig, s->name, r->head);
		cr_assert_geq(r->nchunks, 2, "[%s] %s", rig, s->name);
		break;
	case F_NONE:
		cr_assert_eq(r->wire_len, 0u);
		break;
	default:
		break;
	}
	if (s->vary)
		cr_assert_str_eq(r->vary, s->vary, "[%s] %s: Vary\n%s", rig, s->name, r->head);
	if (s->acao)
		cr_assert_str_eq(r->acao, s->acao, "[%s] %s: Access-Control-Allow-Origin\n%s", rig,
				 s->name, r->head);
	if (s->www)
		cr_assert_str_eq(r->www, s->www, "[%s] %s: WWW-Authenticate\n%s", rig, s->name,
				 r->head);
	if (strcmp(s->method, "HEAD") == 0)
		cr_assert_eq(r->clen, s->encoded ? gzip_len(&exp_small) : (long long)exp_small.len,
			     "[%s] %s: HEAD's Content-Length", rig, s->name);
	if (s->encoded && r->body_len > 256)
		cr_assert_lt(r->wire_len, r->body_len, "[%s] %s: compressed, not smaller?", rig,
			     s->name);
}

/* The order-dependent request: a preflight without credentials. */
static void preflight_expect(const char *rig, bool cors_first, const resp_t *r)
{
	if (cors_first) {
		/* answered by CORS's before hook; auth never saw it */
		cr_assert_eq(r->status, 204, "[%s] preflight: %d\n%s", rig, r->status, r->head);
		cr_assert_str_eq(r->vary, V_PRE, "[%s]", rig);
		cr_assert(strstr(r->head, "\r\nAccess-Control-Allow-Methods: ") != NULL, "[%s]", rig);
		cr_assert(strstr(r->head, "\r\nAccess-Control-Max-Age: 600\r\n") != NULL, "[%s]", rig);
		cr_assert_str_eq(r->www, "", "[%s] no credentials asked", rig);
		cr_assert_eq(r->wire_len, 0u);
	} else {
		/* auth asks for credentials first; CORS's commit hook labels the 401 (so a page
		 * can read it), but it is no preflight answer */
		cr_assert_eq(r->status, 401, "[%s] preflight: %d\n%s", rig, r->status, r->head);
		cr_assert_str_eq(r->www, WWW_BEARER, "[%s]", rig);
		cr_assert_str_eq(r->vary, V_AE_O, "[%s]", rig);
		cr_assert(strstr(r->head, "Access-Control-Allow-Methods") == NULL, "[%s]", rig);
		cr_assert(strstr(r->head, "Access-Control-Max-Age") == NULL, "[%s]", rig);
		cr_assert(r->body_len == strlen(UNAUTH) && memcmp(r->body, UNAUTH, r->body_len) == 0);
	}
	cr_assert_str_eq(r->acao, ORIGIN, "[%s]", rig);
	cr_assert_str_eq(r->ce, "", "[%s] the preflight sent no Accept-Encoding", rig);
}

/* ---- access log lines ------------------------------------------------------------------- */

typedef struct {
	char reqline[256];
	int status;
	unsigned long long bytes;
} logline_t;

/* CLF: 127.0.0.1 - - [date] "METHOD TARGET HTTP/1.1" STATUS BYTES */
static size_t parse_log(const char *rig, const char *text, logline_t *out, size_t max)
{
	size_t n = 0;
	const char *p = text;
	while (*p) {
		const char *eol = strchr(p, '\n'), *q1, *q2;
		cr_assert_not_null(eol, "[%s] an unterminated log line", rig);
		cr_assert_lt(n, max, "[%s] too many log lines", rig);
		cr_assert(strncmp(p, "127.0.0.1 - - [", 15) == 0, "[%s] log line: %.*s", rig,
			  (int)(eol - p), p);
		q1 = memchr(p, '"', (size_t)(eol - p));
		cr_assert_not_null(q1);
		q2 = memchr(q1 + 1, '"', (size_t)(eol - q1 - 1));
		cr_assert_not_null(q2);
		cr_assert_lt((size_t)(q2 - q1 - 1), sizeof out[n].reqline);
		memcpy(out[n].reqline, q1 + 1, (size_t)(q2 - q1 - 1));
		out[n].reqline[q2 - q1 - 1] = '\0';
		cr_assert_eq(sscanf(q2 + 1, " %d %llu", &out[n].status, &out[n].bytes), 2,
			     "[%s] log line: %.*s", rig, (int)(eol - p), p);
		n++;
		p = eol + 1;
	}
	return n;
}

/* The log says what went over the wire, in order: status, and body bytes sent (compressed
 * bytes for gzip, chunk framing excluded; 0 for HEAD and 204). */
static void check_log_line(const char *rig, const logline_t *l, const spec_t *s,
			   const resp_t *r)
{
	char want[256];
	snprintf(want, sizeof want, "%s %s HTTP/1.1", s->method, s->path);
	cr_assert_str_eq(l->reqline, want, "[%s] %s: log out of order?", rig, s->name);
	cr_assert_eq(l->status, r->status, "[%s] %s: logged %d, sent %d", rig, s->name, l->status,
		     r->status);
	cr_assert_eq(l->bytes, (unsigned long long)r->wire_len, "[%s] %s: logged %llu bytes, sent %zu",
		     rig, s->name, l->bytes, r->wire_len);
}

/* ---- 1. every order, the same bytes --------------------------------------------------------- */

/* What a reference order produced: C A L G X (CORS before what refuses, as zerohttp.h asks),
 * or A C L G X for the orders where auth comes before CORS (they differ in the preflight). */
typedef struct {
	int status;
	char norm[4096];
	unsigned char *wire, *body;
	size_t wire_len, body_len;
	unsigned long long log_bytes;
} golden_t;

static golden_t golden[2][NSPECS]; /* [cors before auth][spec]; the preflight differs */
static bool have_golden[2];

static void serve_all(const int order[NMW], bool compare)
{
	rig_t rig;
	resp_t rs_[NSPECS];
	logline_t lines[NSPECS + 4];
	size_t nlines;
	int pos_c = -1, pos_a = -1;
	bool cors_first;
	for (int i = 0; i < NMW; i++) {
		if (order[i] == MW_CORS)
			pos_c = i;
		if (order[i] == MW_AUTH)
			pos_a = i;
	}
	cors_first = pos_c < pos_a;

	rig_start(&rig, order, 1e6, 1e6, 64);
	for (size_t i = 0; i < NSPECS; i++) {
		char req[1024];
		conn_t c = {0};
		size_t len = build_request(req, sizeof req, &specs[i], true);
		dial(&c, zh_server_port(rig.srv));
		send_all(&c, req, len);
		read_response(&c, &rs_[i], strcmp(specs[i].method, "HEAD") == 0);
		expect_eof(&c);
		hang_up(&c);
		if (specs[i].status)
			check_spec(rig.name, &specs[i], &rs_[i]);
		else
			preflight_expect(rig.name, cors_first, &rs_[i]);
	}
	rig_stop(&rig);

	nlines = parse_log(rig.name, rig.log_text, lines, sizeof lines / sizeof lines[0]);
	cr_assert_eq(nlines, (size_t)NSPECS, "[%s] %zu log lines for %d responses:\n%s", rig.name,
		     nlines, NSPECS, rig.log_text);
	for (size_t i = 0; i < NSPECS; i++)
		check_log_line(rig.name, &lines[i], &specs[i], &rs_[i]);
	xfree(rig.log_text);

	for (size_t i = 0; i < NSPECS; i++) {
		golden_t *g = &golden[cors_first][i];
		const resp_t *r = &rs_[i];
		if (!have_golden[cors_first]) {
			g->status = r->status;
			memcpy(g->norm, r->norm, sizeof g->norm);
			g->wire = r->wire, g->wire_len = r->wire_len;
			g->body = r->body, g->body_len = r->body_len;
			g->log_bytes = lines[i].bytes;
			continue;
		}
		cr_assert(compare);
		cr_assert_eq(r->status, g->status, "[%s] %s: status differs by order", rig.name,
			     specs[i].name);
		cr_assert_str_eq(r->norm, g->norm, "[%s] %s: the header set differs by order",
				 rig.name, specs[i].name);
		cr_assert(r->body_len == g->body_len && memcmp(r->body, g->body, r->body_len) == 0,
			  "[%s] %s: the decoded body differs by order", rig.name, specs[i].name);
		cr_assert(r->wire_len == g->wire_len && memcmp(r->wire, g->wire, r->wire_len) == 0,
			  "[%s] %s: the bytes sent differ by order (%zu vs %zu)", rig.name,
			  specs[i].name, r->wire_len, g->wire_len);
		cr_assert_eq(lines[i].bytes, g->log_bytes, "[%s] %s", rig.name, specs[i].name);
		resp_free(&rs_[i]);
	}
	have_golden[cors_first] = true;
}

/* The canonical orders: C A L G X, and, for the preflight class where auth answers first,
 * A C L G X. */
static void make_golden(void)
{
	static const int canon[2][NMW] = {{MW_AUTH, MW_CORS, MW_LIMIT, MW_GZIP, MW_LOG},
					  {MW_CORS, MW_AUTH, MW_LIMIT, MW_GZIP, MW_LOG}};
	serve_all(canon[1], false);
	serve_all(canon[0], false);
	/* the two classes differ only in the preflight */
	for (size_t i = 0; i < NSPECS; i++) {
		if (specs[i].status == 0)
			continue;
		cr_assert_str_eq(golden[0][i].norm, golden[1][i].norm, "%s", specs[i].name);
		cr_assert(golden[0][i].wire_len == golden[1][i].wire_len &&
			  memcmp(golden[0][i].wire, golden[1][i].wire, golden[0][i].wire_len) == 0);
	}
}

/* The k-th permutation of {G, C, A, L, X} (Lehmer code), k in 0..119. */
static void permutation(unsigned k, int out[NMW])
{
	int pool[NMW] = {MW_GZIP, MW_CORS, MW_AUTH, MW_LIMIT, MW_LOG};
	int left = NMW;
	unsigned fact = 24;
	for (int i = 0; i < NMW; i++) {
		unsigned pick = k / fact;
		k %= fact;
		out[i] = pool[pick];
		memmove(pool + pick, pool + pick + 1, (size_t)(left - (int)pick - 1) * sizeof pool[0]);
		left--;
		if (left)
			fact /= (unsigned)left;
	}
}

static void every_order_in(unsigned from, unsigned to)
{
	int order[NMW];
	make_golden();
	for (unsigned k = from; k < to; k++) {
		permutation(k, order);
		serve_all(order, true);
	}
}

static void cleanup(void)
{
	remove_dir();
	free_owned();
}

/* Every suite has the same timeout: with different ones, Criterion's runner leaks 48 bytes
 * (LeakSanitizer fails the asan build). */
TestSuite(compose, .fini = cleanup, .timeout = 60);

/* 120 orders in four parts, so that Criterion's --jobs runs them side by side */
Test(compose, every_order_gives_the_same_bytes_0_to_29) { every_order_in(0, 30); }
Test(compose, every_order_gives_the_same_bytes_30_to_59) { every_order_in(30, 60); }
Test(compose, every_order_gives_the_same_bytes_60_to_89) { every_order_in(60, 90); }
Test(compose, every_order_gives_the_same_bytes_90_to_119) { every_order_in(90, 120); }

Test(compose, permutations_are_all_distinct)
{
	char seen[120][NMW + 1];
	for (unsigned k = 0; k < 120; k++) {
		int o[NMW];
		permutation(k, o);
		for (int i = 0; i < NMW; i++)
			seen[k][i] = mw_letter[o[i]];
		seen[k][NMW] = '\0';
		for (unsigned j = 0; j < k; j++)
			cr_assert_str_neq(seen[j], seen[k]);
		for (int i = 0; i < NMW; i++)
			cr_assert_not_null(memchr(seen[k], mw_letter[i], NMW));
	}
}

/* A handler's own Vary, with CORS and gzip both adding a token. The header set must not
 * depend on the order: every token, whatever the order of the commit hooks. */
Test(compose, a_handlers_own_vary_keeps_every_token_in_every_order)
{
	static const spec_t vary_specs[] = {
		{"vary-gz", "GET", "/api/json/vary", AUTH_GOOD, true, ORIGIN, false, 200, &exp_small,
		 NULL, true, F_LENGTH, "accept-encoding,origin,x-variant", ORIGIN, "", NULL},
		{"vary", "GET", "/api/json/vary", AUTH_GOOD, false, ORIGIN, false, 200, &exp_small,
		 NULL, false, F_LENGTH, "accept-encoding,origin,x-variant", ORIGIN, "", NULL},
	};
	static char lost[120][2 * NMW + 520];
	unsigned nlost = 0;
	for (unsigned k = 0; k < 120; k++) {
		int order[NMW];
		rig_t rig;
		permutation(k, order);
		rig_start(&rig, order, 1e6, 1e6, 64);
		for (size_t i = 0; i < sizeof vary_specs / sizeof vary_specs[0]; i++) {
			const spec_t *s = &vary_specs[i];
			char req[1024];
			conn_t c = {0};
			resp_t r;
			size_t len = build_request(req, sizeof req, s, true);
			dial(&c, zh_server_port(rig.srv));
			send_all(&c, req, len);
			read_response(&c, &r, false);
			expect_eof(&c);
			hang_up(&c);
			/* collected, so that the message names every order that fails */
			if (strcmp(r.vary, s->vary) != 0) {
				snprintf(lost[nlost++], sizeof lost[0], "%s: %s", rig.name, r.vary);
				resp_free(&r);
				break;
			}
			check_spec(rig.name, s, &r);
			resp_free(&r);
		}
		rig_stop(&rig);
		xfree(rig.log_text);
	}
	if (nlost) {
		char msg[1024] = "";
		unsigned c_first = 0;
		for (unsigned i = 0; i < nlost; i++) {
			/* the name lists the letters in chain order */
			c_first += strchr(lost[i], 'C') < strchr(lost[i], 'G');
			if (i < 6)
				strcat(strcat(msg, "\n  "), lost[i]);
		}
		cr_assert_fail("Vary lost a token in %u of 120 orders (%u of them with CORS before "
			       "gzip); want accept-encoding,origin,x-variant:%s%s",
			       nlost, c_first, msg, nlost > 6 ? "\n  ..." : "");
	}
}

/* A producer writing fixed 8 KiB pieces (the header advises a few tens of KiB per call; it
 * does not require pacing by zh_resp_body_len): with gzip, deflate may take a piece and
 * emit nothing yet. That is progress all the same; the response must not be cut short. */
Test(compose, a_producer_writing_fixed_pieces_through_gzip_is_complete)
{
	static const int order[NMW] = {MW_CORS, MW_AUTH, MW_LIMIT, MW_GZIP, MW_LOG};
	static const spec_t fixed[] = {
		{"produce-fixed", "GET", "/api/produce-fixed", AUTH_GOOD, false, ORIGIN, false, 200,
		 &exp_produce, NULL, false, F_CHUNKED, V_AE_O, ORIGIN, "", NULL},
		{"produce-fixed-gz", "GET", "/api/produce-fixed", AUTH_GOOD, true, ORIGIN, false, 200,
		 &exp_produce, NULL, true, F_CHUNKED, V_AE_O, ORIGIN, "", NULL},
	};
	rig_t rig;
	rig_start(&rig, order, 1e6, 1e6, 64);
	for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
		char req[1024];
		conn_t c = {0};
		resp_t r;
		size_t len = build_request(req, sizeof req, &fixed[i], true);
		dial(&c, zh_server_port(rig.srv));
		send_all(&c, req, len);
		read_response(&c, &r, false); /* fails "connection ended inside a chunk" if cut */
		expect_eof(&c);
		hang_up(&c);
		check_spec(rig.name, &fixed[i], &r);
		resp_free(&r);
	}
	rig_stop(&rig);
	xfree(rig.log_text);
}

/* ---- 2. pipelining across the chain --------------------------------------------------------- */

/* The batch: one write, eleven requests. The limiter allows 6 requests (rps 0.001: no refill
 * during the test) among those that reach its before hook. */
enum { BATCH = 11, BURST = 6 };
static const spec_t batch[BATCH] = {
	{"p0-json-large-gz", "GET", "/api/json/large", AUTH_GOOD, true, ORIGIN, false, 200,
	 &exp_large, NULL, true, F_CHUNKED, V_AE_O, ORIGIN, "", NULL},
	{"p1-unauth-gz", "GET", "/api/json/small", AUTH_NONE, true, ORIGIN, false, 401, NULL,
	 UNAUTH, true, F_LENGTH, V_AE_O, ORIGIN, WWW_BEARER, NULL},
	{"p2-preflight", "OPTIONS", "/api/json/small", AUTH_NONE, false, ORIGIN, true, 0, NULL,
	 NULL, false, F_ANY, NULL, ORIGIN, NULL, NULL},
	{"p3-defer-gz", "GET", "/api/defer", AUTH_GOOD, true, ORIGIN, false, 200, &exp_defer, NULL,
	 true, F_LENGTH, V_AE_O, ORIGIN, "", NULL},
	{"p4-write", "GET", "/api/write", AUTH_GOOD, false, ORIGIN, false, 200, &exp_write, NULL,
	 false, F_LENGTH, V_AE_O, ORIGIN, "", NULL},
	{"p5-produce-gz", "GET", "/api/produce", AUTH_GOOD, true, ORIGIN, false, 200, &exp_produce,
	 NULL, true, F_CHUNKED, V_AE_O, ORIGIN, "", NULL},
	{"p6-json-small-gz", "GET", "/api/json/small", AUTH_GOOD, true, ORIGIN, false, 200,
	 &exp_small, NULL, true, F_LENGTH, V_AE_O, ORIGIN, "", NULL},
	{"p7-json-large", "GET", "/api/json/large", AUTH_GOOD, false, ORIGIN, false, 200,
	 &exp_large, NULL, false, F_CHUNKED, V_AE_O, ORIGIN, "", NULL},
	{"p8-write-gz", "GET", "/api/write", AUTH_GOOD, true, ORIGIN, false, 200, &exp_write, NULL,
	 true, F_LENGTH, V_AE_O, ORIGIN, "", NULL},
	/* refused with its body unread: the body is skipped, the next request still found */
	{"p9-post-unauth-gz", "POST", "/api/json/small", AUTH_NONE, true, ORIGIN, false, 401, NULL,
	 UNAUTH, true, F_LENGTH, V_AE_O, ORIGIN, WWW_BEARER,
	 "GET /api/json/tiny HTTP/1.1\r\nHost: smuggled\r\n\r\n"},
	{"p10-json-tiny", "GET", "/api/json/tiny", AUTH_GOOD, false, ORIGIN, false, 200, &exp_tiny,
	 NULL, false, F_LENGTH, V_AE_O, ORIGIN, "", NULL},
};

#define TOO_MANY "Too Many Requests\n"

static void pipeline(const int order[NMW])
{
	rig_t rig;
	conn_t c = {0};
	resp_t r[BATCH];
	logline_t lines[BATCH + 4];
	char reqs[BATCH * 512];
	size_t len = 0, nlines;
	int pos[NMW], tokens = BURST;
	bool cors_first, limited[BATCH];

	for (int i = 0; i < NMW; i++)
		pos[order[i]] = i;
	cors_first = pos[MW_CORS] < pos[MW_AUTH];
	/* Which before hook answers each request: the first in chain order that would. CORS
	 * answers the preflight, auth the requests without a good token, the limiter those
	 * that find the bucket empty; a request that passes the limiter spends a token. */
	for (int i = 0; i < BATCH; i++) {
		const spec_t *s = &batch[i];
		limited[i] = false;
		for (int m = 0; m < NMW; m++) {
			if (order[m] == MW_CORS && s->preflight)
				break;
			if (order[m] == MW_AUTH && s->auth != AUTH_GOOD)
				break;
			if (order[m] == MW_LIMIT) {
				if (tokens == 0) {
					limited[i] = true;
					break;
				}
				tokens--;
			}
		}
	}

	rig_start(&rig, order, 0.001, BURST, 100);
	for (int i = 0; i < BATCH; i++)
		len += build_request(reqs + len, sizeof reqs - len, &batch[i], i == BATCH - 1);
	dial(&c, zh_server_port(rig.srv));
	send_all(&c, reqs, len); /* one write: the server finds them all in one read */
	for (int i = 0; i < BATCH; i++) {
		const spec_t *s = &batch[i];
		read_response(&c, &r[i], false);
		if (limited[i]) {
			/* the limiter's refusal, gzip'd when accepted (18 bytes >= 16), CORS-labelled */
			cr_assert_eq(r[i].status, 429, "[%s] %s: %d\n%s", rig.name, s->name,
				     r[i].status, r[i].head);
			cr_assert_str_eq(r[i].retry, "1000", "[%s] %s", rig.name, s->name);
			cr_assert(r[i].body_len == strlen(TOO_MANY) &&
				  memcmp(r[i].body, TOO_MANY, r[i].body_len) == 0);
			cr_assert_eq(r[i].ce[0] != '\0', s->gzip, "[%s] %s\n%s", rig.name, s->name,
				     r[i].head);
			cr_assert_str_eq(r[i].acao, ORIGIN);
			cr_assert_str_eq(r[i].vary, V_AE_O);
			cr_assert(!r[i].chunked && r[i].clen >= 0);
		} else if (s->status == 0) {
			preflight_expect(rig.name, cors_first, &r[i]);
		} else {
			check_spec(rig.name, s, &r[i]);
		}
	}
	expect_eof(&c);
	hang_up(&c);
	rig_stop(&rig);

	nlines = parse_log(rig.name, rig.log_text, lines, sizeof lines / sizeof lines[0]);
	cr_assert_eq(nlines, (size_t)BATCH, "[%s] %zu log lines:\n%s", rig.name, nlines,
		     rig.log_text);
	for (int i = 0; i < BATCH; i++) {
		check_log_line(rig.name, &lines[i], &batch[i], &r[i]);
		resp_free(&r[i]);
	}
	xfree(rig.log_text);
}

TestSuite(pipeline, .fini = cleanup, .timeout = 60);

/* L first: every request spends a token, 401 and preflight included: p6..p10 are 429 (p9's
 * unread body skipped by the limiter's refusal). */
Test(pipeline, limiter_first_counts_every_request)
{
	static const int order[NMW] = {MW_LIMIT, MW_CORS, MW_AUTH, MW_GZIP, MW_LOG};
	pipeline(order);
}

/* L after C and A: the preflight and the 401s spend nothing: p8 and p10 are 429, p9 a 401. */
Test(pipeline, limiter_after_cors_and_auth_counts_only_what_they_pass)
{
	static const int order[NMW] = {MW_LOG, MW_CORS, MW_AUTH, MW_LIMIT, MW_GZIP};
	pipeline(order);
}

/* A before C: the preflight is a 401 (no token spent either: auth answers first); p8 and
 * p10 are 429. */
Test(pipeline, auth_before_cors_refuses_the_preflight)
{
	static const int order[NMW] = {MW_GZIP, MW_LOG, MW_AUTH, MW_LIMIT, MW_CORS};
	pipeline(order);
}

/* L between C and A: the preflight is answered before the limiter, p1's 401 after it (a
 * token spent): p7..p10 are 429. */
Test(pipeline, limiter_between_cors_and_auth)
{
	static const int order[NMW] = {MW_CORS, MW_LIMIT, MW_GZIP, MW_AUTH, MW_LOG};
	pipeline(order);
}
