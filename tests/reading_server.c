/* reading_server.c — a test-only server for tests/integration/test_33_reading.py: routes
 * that read requests with the "Reading requests" calls of zerohttp.h (query strings, forms,
 * multipart, cookies, slices) and report what they saw, byte-exact, in hex.
 *
 *   reading_server PORT [DIR]   (PORT 0: any free port, printed as "port N\n"; DIR: where
 *                                /upload writes file parts, default /tmp)
 *
 * Lines of the reports are "HEXNAME HEXVALUE\n"; a field that failed to decode is "!".
 *   GET  /q                 every query pair (zh_form_next, zh_form_decode); 400 "E<errno>"
 *                           when the iterator fails
 *   POST /form              the same for an urlencoded body (buffered)
 *   GET  /q/get, POST /form/get
 *                           the value of the pair named by the X-Name header (zh_form_get):
 *                           200 and its bytes; 404 if absent; 400 "E<errno>" for the rest
 *   GET  /cookies           every cookie (zh_cookie_next), or with X-Name the one it names
 *                           (zh_req_cookie): 200 and its bytes, 404 if absent
 *   GET  /setcookie?name=&value=[&path=&domain=&max_age=&expires=&secure=1&httponly=1
 *                   &samesite=strict|lax|none]
 *                           one Set-Cookie (zh_resp_set_cookie); 400 "E<errno>" if refused
 *   GET  /int?s=S           "i64 R V\nu64 R V\n": zh_slice_to_i64 / _u64 of S (R the result)
 *   GET  /mix?id=N&name=S&tag=T...   (Cookie: session=X; ...)
 *                           the zero-allocation route: query lookups, a pair walk, an
 *                           integer, cookie lookup and walk, a Set-Cookie; answers
 *                           "id=N name=S tags=K session=X cookies=C\n"
 *   POST /upload[?max_parts=N&max_file=M&max_header=H]   (ZH_ROUTE_STREAM_BODY)
 *                           multipart/form-data through zh_multipart_pump; file parts go to
 *                           DIR/upload-<slot>-<index> with zh_multipart_part_to_fd, others
 *                           are reported: "field INDEX HEXNAME HEXTYPE HEXDATA\n" or
 *                           "file INDEX HEXNAME HEXFILENAME HEXTYPE SIZE PATH\n"; errors by
 *                           zh_multipart_reply_error (400/413, Connection: close)
 */
#include <zerohttp.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static zh_server_t *g_server;
static const char *g_dir = "/tmp";

static void on_signal(int sig)
{
	(void)sig;
	if (g_server)
		zh_server_stop(g_server);
}

/* ---- a bounded text report ----------------------------------------------------------------- */

typedef struct {
	char *p;
	size_t len, cap;
	bool over;
} report_t;

static void put(report_t *r, const void *s, size_t n)
{
	if (r->over || n > r->cap - r->len) {
		r->over = true;
		return;
	}
	memcpy(r->p + r->len, s, n);
	r->len += n;
}

static void put_str(report_t *r, const char *s)
{
	put(r, s, strlen(s));
}

static void put_hex(report_t *r, const void *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *c = s;
	if (n == 0)
		put(r, "-", 1); /* empty: a visible token, so the line always has its fields */
	for (size_t i = 0; i < n; i++) {
		char two[2] = {hex[c[i] >> 4], hex[c[i] & 15]};
		put(r, two, 2);
	}
}

static void put_u64(report_t *r, uint64_t v)
{
	char b[24];
	put(r, b, (size_t)snprintf(b, sizeof b, "%" PRIu64, v));
}

static void reply_err(zh_response_t *resp, int status, long err)
{
	char b[32];
	int n = snprintf(b, sizeof b, "E%ld\n", -err);
	zh_reply(resp, status, "text/plain", b, (size_t)n);
}

static void reply_report(zh_response_t *resp, const report_t *r)
{
	if (r->over)
		zh_reply(resp, 500, "text/plain", "report overflow\n", 16);
	else
		zh_reply(resp, 200, "text/plain", r->p, r->len);
}

/* ---- query strings and forms ----------------------------------------------------------------- */

/* decoded in place over a copy, so that the request's bytes stay as they came */
static void put_decoded(report_t *r, zh_slice_t raw)
{
	char buf[8192];
	ssize_t n = raw.len <= sizeof buf ? zh_form_decode(raw, buf, sizeof buf) : -ENOSPC;
	if (n < 0)
		put(r, "!", 1);
	else
		put_hex(r, buf, (size_t)n);
}

static void walk_pairs(zh_response_t *resp, zh_slice_t src)
{
	static _Thread_local char out[256 * 1024];
	report_t r = {out, 0, sizeof out, false};
	zh_form_iter_t it;
	zh_slice_t n, v;
	int res;
	zh_form_iter_init(&it, src);
	while ((res = zh_form_next(&it, &n, &v)) > 0) {
		put_decoded(&r, n);
		put(&r, " ", 1);
		put_decoded(&r, v);
		put(&r, "\n", 1);
	}
	if (res < 0)
		reply_err(resp, res == -E2BIG || res == -EMSGSIZE ? 413 : 400, res);
	else
		reply_report(resp, &r);
}

static void lookup(zh_request_t *req, zh_response_t *resp, zh_slice_t src)
{
	zh_slice_t name;
	char cname[256], value[8192];
	ssize_t n;
	if (!zh_req_header(req, "X-Name", &name) ||
	    zh_slice_to_cstr(name, cname, sizeof cname) < 0) {
		zh_reply(resp, 400, "text/plain", "X-Name\n", 7);
		return;
	}
	n = zh_form_get(src, cname, value, sizeof value);
	if (n == -ENOENT)
		zh_reply(resp, 404, "text/plain", "", 0);
	else if (n < 0)
		reply_err(resp, n == -E2BIG || n == -EMSGSIZE ? 413 : 400, (long)n);
	else
		zh_reply(resp, 200, "application/octet-stream", value, (size_t)n);
}

static bool body(zh_request_t *req, zh_response_t *resp, zh_slice_t *out)
{
	int r = zh_body_all(req, out);
	if (r < 0)
		reply_err(resp, 500, r);
	return r == 0;
}

static void q_walk(zh_request_t *req, zh_response_t *resp, void *arg)
{
	(void)arg;
	walk_pairs(resp, zh_req_query(req));
}

static void form_walk(zh_request_t *req, zh_response_t *resp, void *arg)
{
	zh_slice_t b;
	(void)arg;
	if (body(req, resp, &b))
		walk_pairs(resp, b);
}

static void q_get(zh_request_t *req, zh_response_t *resp, void *arg)
{
	(void)arg;
	lookup(req, resp, zh_req_query(req));
}

static void form_get(zh_request_t *req, zh_response_t *resp, void *arg)
{
	zh_slice_t b;
	(void)arg;
	if (body(req, resp, &b))
		lookup(req, resp, b);
}

/* ---- cookies ------------------------------------------------------------------------------- */

static void cookies(zh_request_t *req, zh_response_t *resp, void *arg)
{
	char out[16384];
	report_t r = {out, 0, sizeof out, false};
	zh_cookie_iter_t it;
	zh_slice_t n, v;
	char cname[256];
	(void)arg;
	if (zh_req_header(req, "X-Name", &n)) {
		if (zh_slice_to_cstr(n, cname, sizeof cname) < 0)
			zh_reply(resp, 400, "text/plain", "X-Name\n", 7);
		else if (!zh_req_cookie(req, cname, &v))
			zh_reply(resp, 404, "text/plain", "", 0);
		else
			zh_reply(resp, 200, "application/octet-stream", v.ptr, v.len);
		return;
	}
	zh_cookie_iter_init(&it, req);
	while (zh_cookie_next(&it, &n, &v)) {
		put_hex(&r, n.ptr, n.len);
		put(&r, " ", 1);
		put_hex(&r, v.ptr, v.len);
		put(&r, "\n", 1);
	}
	reply_report(resp, &r);
}

/* a query parameter decoded into buf as a C string, or NULL if absent or not decodable */
static const char *param(zh_slice_t q, const char *name, char *buf, size_t cap)
{
	ssize_t n = zh_form_get(q, name, buf, cap - 1);
	if (n < 0)
		return NULL;
	buf[n] = '\0';
	return buf;
}

/* 0 with *out set, 0 with *out untouched when the query has no such parameter, or -errno */
static int int_param(zh_slice_t q, const char *name, int64_t *out)
{
	char buf[32];
	ssize_t n = zh_form_get(q, name, buf, sizeof buf);
	if (n == -ENOENT)
		return 0;
	if (n < 0)
		return (int)n;
	return zh_slice_to_i64((zh_slice_t){buf, (size_t)n}, out);
}

static void setcookie(zh_request_t *req, zh_response_t *resp, void *arg)
{
	char name[256], value[1024], path[256], domain[256], flag[16];
	zh_slice_t q = zh_req_query(req);
	zh_cookie_t c;
	const char *ss;
	int r;
	(void)arg;
	zh_cookie_init(&c);
	c.name = param(q, "name", name, sizeof name);
	c.value = param(q, "value", value, sizeof value);
	c.path = param(q, "path", path, sizeof path);
	c.domain = param(q, "domain", domain, sizeof domain);
	c.secure = param(q, "secure", flag, sizeof flag) != NULL;
	c.http_only = param(q, "httponly", flag, sizeof flag) != NULL;
	ss = param(q, "samesite", flag, sizeof flag);
	if (ss)
		c.same_site = strcmp(ss, "strict") == 0 ? ZH_SAMESITE_STRICT
			      : strcmp(ss, "lax") == 0	 ? ZH_SAMESITE_LAX
			      : strcmp(ss, "none") == 0	 ? ZH_SAMESITE_NONE
							 : 99;
	if ((r = int_param(q, "max_age", &c.max_age)) < 0 ||
	    (r = int_param(q, "expires", &c.expires)) < 0 || (r = zh_resp_set_cookie(resp, &c)) < 0) {
		reply_err(resp, 400, r);
		return;
	}
	zh_reply(resp, 200, "text/plain", "ok\n", 3);
}

/* ---- slices -------------------------------------------------------------------------------- */

static void int_route(zh_request_t *req, zh_response_t *resp, void *arg)
{
	char s[128], out[128];
	ssize_t n = zh_form_get(zh_req_query(req), "s", s, sizeof s);
	int64_t i = 0;
	uint64_t u = 0;
	int ri, ru, len;
	(void)arg;
	if (n < 0) {
		reply_err(resp, 400, (long)n);
		return;
	}
	ri = zh_slice_to_i64((zh_slice_t){s, (size_t)n}, &i);
	ru = zh_slice_to_u64((zh_slice_t){s, (size_t)n}, &u);
	len = snprintf(out, sizeof out, "i64 %d %" PRId64 "\nu64 %d %" PRIu64 "\n", ri, i, ru, u);
	zh_reply(resp, 200, "text/plain", out, (size_t)len);
}

/* GET /mix: the request path of the zero-allocation test, every call of it allocation-free */
static void mix(zh_request_t *req, zh_response_t *resp, void *arg)
{
	zh_slice_t q = zh_req_query(req), n, v, session;
	char name[64], out[256];
	report_t r = {out, 0, sizeof out, false};
	zh_form_iter_t it;
	zh_cookie_iter_t ci;
	zh_cookie_t c;
	int64_t id = -1;
	uint64_t tags = 0, ncookies = 0;
	ssize_t nl = zh_form_get(q, "name", name, sizeof name);
	(void)arg;
	if (int_param(q, "id", &id) < 0 || nl < 0) {
		zh_reply(resp, 400, "text/plain", "bad\n", 4);
		return;
	}
	zh_form_iter_init(&it, q);
	while (zh_form_next(&it, &n, &v) > 0)
		tags += zh_slice_eq_str(n, "tag");
	if (!zh_req_cookie(req, "session", &session))
		session = (zh_slice_t){"-", 1};
	zh_cookie_iter_init(&ci, req);
	while (zh_cookie_next(&ci, &n, &v))
		ncookies++;
	zh_cookie_init(&c);
	c.name = "seen";
	c.value = "1";
	c.path = "/";
	c.max_age = 60;
	c.http_only = 1;
	c.same_site = ZH_SAMESITE_LAX;
	if (zh_resp_set_cookie(resp, &c) < 0) {
		zh_reply(resp, 500, "text/plain", "set-cookie\n", 11);
		return;
	}
	put_str(&r, "id=");
	if (id < 0)
		put_str(&r, "-");
	else
		put_u64(&r, (uint64_t)id);
	put_str(&r, " name=");
	put(&r, name, (size_t)nl);
	put_str(&r, " tags=");
	put_u64(&r, tags);
	put_str(&r, " session=");
	put(&r, session.ptr, session.len);
	put_str(&r, " cookies=");
	put_u64(&r, ncookies);
	put_str(&r, "\n");
	reply_report(resp, &r);
}

/* ---- multipart uploads --------------------------------------------------------------------- */

/* One upload's state lives in a slot from the handler's start until its last continuation:
 * a streaming handler returns while it waits for body bytes, so its parser cannot be on the
 * stack. zh_body_wait calls the continuation exactly once, also when the connection dies,
 * so every slot comes back. */
enum { SLOTS = 16 };
typedef struct {
	atomic_int busy;
	unsigned id;
	zh_multipart_t mp;
	int fd;
	uint64_t max_file; /* 0: no limit */
	char path[512];
	char out[32768];
	report_t r;
	char buf[16384];
} upload_t;
static upload_t slots[SLOTS];

static int up_part(void *arg, const zh_multipart_part_t *pt)
{
	upload_t *u = arg;
	if (pt->filename.ptr == NULL) {
		put_str(&u->r, "field ");
		put_u64(&u->r, pt->index);
		put(&u->r, " ", 1);
		put_hex(&u->r, pt->name.ptr, pt->name.len);
		put(&u->r, " ", 1);
		put_hex(&u->r, pt->content_type.ptr, pt->content_type.len);
		put(&u->r, " ", 1);
		return 0;
	}
	snprintf(u->path, sizeof u->path, "%s/upload-%u-%u", g_dir, u->id, pt->index);
	u->fd = open(u->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (u->fd < 0)
		return -errno;
	put_str(&u->r, "file ");
	put_u64(&u->r, pt->index);
	put(&u->r, " ", 1);
	put_hex(&u->r, pt->name.ptr, pt->name.len);
	put(&u->r, " ", 1);
	put_hex(&u->r, pt->filename.ptr, pt->filename.len);
	put(&u->r, " ", 1);
	put_hex(&u->r, pt->content_type.ptr, pt->content_type.len);
	put(&u->r, " ", 1);
	return zh_multipart_part_to_fd(&u->mp, u->fd, u->max_file);
}

static int up_data(void *arg, const zh_multipart_part_t *pt, const void *p, size_t len)
{
	upload_t *u = arg;
	(void)pt;
	put_hex(&u->r, p, len); /* a field: hex as it comes (an empty one stays "") */
	return 0;
}

static int up_end(void *arg, const zh_multipart_part_t *pt)
{
	upload_t *u = arg;
	if (pt->filename.ptr == NULL) {
		put(&u->r, "\n", 1);
		return 0;
	}
	{
		off_t size = lseek(u->fd, 0, SEEK_END);
		close(u->fd);
		u->fd = -1;
		if (size < 0)
			return -EIO;
		put_u64(&u->r, (uint64_t)size);
	}
	put(&u->r, " ", 1);
	put_str(&u->r, u->path);
	put(&u->r, "\n", 1);
	return 0;
}

static const zh_multipart_ops_t up_ops = {up_part, up_data, up_end};

static void release(upload_t *u)
{
	if (u->fd >= 0)
		close(u->fd);
	atomic_store(&u->busy, 0);
}

static void upload_step(zh_request_t *req, zh_response_t *resp, void *arg)
{
	upload_t *u = arg;
	int r = zh_multipart_pump(&u->mp, req, u->buf, sizeof u->buf);
	if (r == -EAGAIN && zh_body_wait(req, upload_step, u) == 0)
		return;
	if (r == 1)
		reply_report(resp, &u->r);
	else
		zh_multipart_reply_error(resp, r);
	release(u);
}

static void upload(zh_request_t *req, zh_response_t *resp, void *arg)
{
	static atomic_uint next_id;
	zh_slice_t ct = {"", 0}, q = zh_req_query(req);
	upload_t *u = NULL;
	int64_t parts = 0, header = 0, file = 0; /* int_param leaves an absent one as it is */
	int r;
	(void)arg;
	for (int i = 0; i < SLOTS && !u; i++)
		if (atomic_exchange(&slots[i].busy, 1) == 0)
			u = &slots[i];
	if (!u) {
		zh_reply(resp, 503, "text/plain", "busy\n", 5);
		return;
	}
	u->id = atomic_fetch_add(&next_id, 1);
	u->fd = -1;
	u->r = (report_t){u->out, 0, sizeof u->out, false};
	zh_req_header(req, "Content-Type", &ct);
	if ((r = zh_multipart_init(&u->mp, ct, &up_ops, u)) < 0) {
		reply_err(resp, 415, r);
		release(u);
		return;
	}
	if (int_param(q, "max_parts", &parts) == 0 && parts > 0)
		u->mp.max_parts = (unsigned)parts;
	if (int_param(q, "max_header", &header) == 0 && header > 0)
		u->mp.max_header_bytes = (unsigned)header;
	u->max_file = 0;
	if (int_param(q, "max_file", &file) == 0 && file > 0)
		u->max_file = (uint64_t)file;
	upload_step(req, resp, u);
}

int main(int argc, char **argv)
{
	zh_config_t cfg;
	struct sigaction sa;
	char *endp;
	long port;
	int err = 0, r;

	if (argc < 2 || argc > 3 || (port = strtol(argv[1], &endp, 10), *endp != '\0') ||
	    port < 0 || port > 65535) {
		fprintf(stderr, "usage: reading_server PORT [DIR]\n");
		return 2;
	}
	if (argc == 3)
		g_dir = argv[2];
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	zh_config_init(&cfg);
	cfg.port = (uint16_t)port;
	cfg.workers = 2;
	cfg.max_body = 2 << 20;
	cfg.body_buffers = 4;
	cfg.io_contexts = 64;
	cfg.max_connections = 256;
	/* the suite's backend (tests/integration/harness.py: ZH_IO=uring) */
	cfg.io = getenv("ZH_IO") && strcmp(getenv("ZH_IO"), "uring") == 0 ? ZH_IO_URING
									  : ZH_IO_EPOLL;
	g_server = zh_server_new(&cfg, &err);
	if (g_server == NULL) {
		fprintf(stderr, "reading_server: cannot start: %s\n", strerror(-err));
		return 1;
	}
	if (zh_server_route(g_server, ZH_GET, "/q", 0, q_walk, NULL) < 0 ||
	    zh_server_route(g_server, ZH_POST, "/form", 0, form_walk, NULL) < 0 ||
	    zh_server_route(g_server, ZH_GET, "/q/get", 0, q_get, NULL) < 0 ||
	    zh_server_route(g_server, ZH_POST, "/form/get", 0, form_get, NULL) < 0 ||
	    zh_server_route(g_server, ZH_GET, "/cookies", 0, cookies, NULL) < 0 ||
	    zh_server_route(g_server, ZH_GET, "/setcookie", 0, setcookie, NULL) < 0 ||
	    zh_server_route(g_server, ZH_GET, "/int", 0, int_route, NULL) < 0 ||
	    zh_server_route(g_server, ZH_GET, "/mix", 0, mix, NULL) < 0 ||
	    zh_server_route(g_server, ZH_POST, "/upload", ZH_ROUTE_STREAM_BODY, upload, NULL) <
		    0) {
		fprintf(stderr, "reading_server: cannot add routes\n");
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
