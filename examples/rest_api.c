/* rest_api.c — a JSON REST API: users kept in memory, read and written over HTTP.
 *
 *   GET    /users?offset=0&limit=10   a page of users, oldest first
 *   POST   /users                     a new user from {"name": "...", "email": "..."}:
 *                                     201 with Location: /users/ID
 *   GET    /users/{id}                one user
 *   PUT    /users/{id}                replaces its name and email (the same body)
 *   DELETE /users/{id}                204
 *
 * Every error is JSON, {"error": "...", "status": N}: the handlers' own (400, 404, 422),
 * those the library answers itself (404 for an unknown path, 405 with Allow for a method a
 * pattern does not take, 413 for a body over max_body...) through the error handler, and a
 * body that is not JSON: 400 {"error": "invalid JSON", "reason": "...", "offset": N}.
 *
 *   cc -o rest_api rest_api.c $(pkg-config --cflags --libs zerohttp)
 *   ./rest_api [PORT]                 (default 8080; 0 picks a free port, printed)
 *   curl -H 'Content-Type: application/json' \
 *        -d '{"name": "Ada", "email": "ada@example.com"}' localhost:8080/users
 *   curl localhost:8080/users/1
 */
#include <zerohttp.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the data: a table every worker uses, so behind a lock, held for a copy only ---- */

typedef struct {
	uint64_t id;
	size_t name_len, email_len;
	char name[64], email[128];
} user_t;

enum { MAX_USERS = 10000, MAX_PAGE = 50 };
static struct {
	pthread_mutex_t lock;
	user_t rows[MAX_USERS]; /* ordered by id: ids only grow */
	size_t n;
	uint64_t last_id;
} db = {.lock = PTHREAD_MUTEX_INITIALIZER};

static size_t find(uint64_t id) /* the row of id, or db.n; under the lock */
{
	size_t i = 0;
	while (i < db.n && db.rows[i].id != id)
		i++;
	return i;
}

/* Copies user id to *u: 0, or -ENOENT. */
static int db_get(uint64_t id, user_t *u)
{
	int r = -ENOENT;
	pthread_mutex_lock(&db.lock);
	size_t i = find(id);
	if (i < db.n) {
		*u = db.rows[i];
		r = 0;
	}
	pthread_mutex_unlock(&db.lock);
	return r;
}

/* Copies up to max users from row offset on into page[]; returns how many, *total the
 * number of users. */
static size_t db_page(uint64_t offset, uint64_t max, user_t *page, size_t *total)
{
	size_t n = 0;
	pthread_mutex_lock(&db.lock);
	for (size_t i = offset; i < db.n && n < max; i++)
		page[n++] = db.rows[i];
	*total = db.n;
	pthread_mutex_unlock(&db.lock);
	return n;
}

/* Stores *u: a new user when u->id is 0 (its id is set), else replaces user u->id. 0,
 * -ENOENT (no such user) or -ENOSPC (the table is full). */
static int db_put(user_t *u)
{
	int r = 0;
	pthread_mutex_lock(&db.lock);
	if (u->id == 0 && db.n == MAX_USERS) {
		r = -ENOSPC;
	} else if (u->id == 0) {
		u->id = ++db.last_id;
		db.rows[db.n++] = *u;
	} else {
		size_t i = find(u->id);
		if (i < db.n)
			db.rows[i] = *u;
		else
			r = -ENOENT;
	}
	pthread_mutex_unlock(&db.lock);
	return r;
}

static int db_delete(uint64_t id) /* 0 or -ENOENT */
{
	int r = -ENOENT;
	pthread_mutex_lock(&db.lock);
	size_t i = find(id);
	if (i < db.n) {
		db.n--;
		memmove(&db.rows[i], &db.rows[i + 1], (db.n - i) * sizeof db.rows[0]);
		r = 0;
	}
	pthread_mutex_unlock(&db.lock);
	return r;
}

/* ---- JSON out: the writer encodes straight into the connection's send buffers ---- */

static void write_user(zh_json_t *j, const user_t *u)
{
	zh_json_obj(j);
	zh_json_key(j, "id", 2);
	zh_json_u64(j, u->id);
	zh_json_key(j, "name", 4);
	zh_json_str(j, u->name, u->name_len);
	zh_json_key(j, "email", 5);
	zh_json_str(j, u->email, u->email_len);
	zh_json_end(j);
}

/* {"error": msg, "status": status}. The status is committed first; the writer then adds
 * Content-Type: application/json. */
static void json_error(zh_response_t *resp, int status, const char *msg)
{
	zh_write_header(resp, status);
	zh_json_t *j = zh_json_begin(resp, 0);
	zh_json_obj(j);
	zh_json_key(j, "error", 5);
	zh_json_str(j, msg, strlen(msg));
	zh_json_key(j, "status", 6);
	zh_json_i64(j, status);
	zh_json_end(j);
}

/* The library's own answers (no route, wrong method, body too large, malformed request...)
 * come here instead of its text/plain bodies: {"error": "Not Found", "status": 404}. For
 * 405 the router has set Allow already. */
static void on_error(zh_request_t *req, zh_response_t *resp, int status, void *arg)
{
	(void)req;
	(void)arg;
	json_error(resp, status, zh_status_reason(status)); /* the status line's phrase */
}

/* ---- reading requests ---- */

/* {id} as a number: zh_req_param gives the decoded path segment, zh_slice_to_u64 checks it
 * (digits only, no overflow). */
static int path_id(zh_request_t *req, uint64_t *id)
{
	zh_slice_t s;
	return zh_req_param(req, "id", &s) ? zh_slice_to_u64(s, id) : -EINVAL;
}

/* name and email from a JSON body (the whole body is there: a buffered route). The reader
 * checks the document in place and describes it in tok[] (no copy, no allocation);
 * zh_jdoc_string unescapes a member straight into the user's array. On failure the answer
 * is written here and -1 returned: 400 (not JSON: the reason and its offset), 413 (more
 * than 32 values) or 422 (not the members we need). */
static int read_user(zh_request_t *req, zh_response_t *resp, user_t *u)
{
	zh_jtok_t tok[32]; /* a token per value and key: plenty for a user */
	zh_jdoc_t doc;
	ssize_t n, m;
	if (zh_req_json(req, &doc, tok, sizeof tok / sizeof tok[0], 0) < 0) {
		zh_jdoc_reply_error(resp, &doc);
		return -1;
	}
	/* token 0 is the document; an absent member (or a body that is no object) is
	 * ZH_JDOC_NONE, which zh_jdoc_string refuses like a value that is no string */
	n = zh_jdoc_string(&doc, zh_jdoc_member(&doc, 0, "name"), u->name, sizeof u->name);
	m = zh_jdoc_string(&doc, zh_jdoc_member(&doc, 0, "email"), u->email, sizeof u->email);
	if (n <= 0 || (size_t)n >= sizeof u->name || m <= 0 || (size_t)m >= sizeof u->email) {
		json_error(resp, 422, "name (1 to 63 bytes) and email (1 to 127): strings");
		return -1;
	}
	u->name_len = (size_t)n;
	u->email_len = (size_t)m;
	return 0;
}

/* ---- handlers ---- */

static void list_users(zh_request_t *req, zh_response_t *resp, void *arg)
{
	user_t page[MAX_PAGE];
	uint64_t offset = 0, limit = 10; /* the defaults: an absent parameter leaves them */
	zh_slice_t query = zh_req_query(req);
	size_t total, n;
	(void)arg;
	if (zh_form_get_u64(query, "offset", &offset) < 0 || offset > MAX_USERS ||
	    zh_form_get_u64(query, "limit", &limit) < 0 || limit > MAX_PAGE) {
		json_error(resp, 400, "offset: 0 to 10000; limit: 0 to 50");
		return;
	}
	n = db_page(offset, limit, page, &total);

	zh_json_t *j = zh_json_begin(resp, 0);
	zh_json_obj(j);
	zh_json_key(j, "users", 5);
	zh_json_arr(j);
	for (size_t i = 0; i < n; i++)
		write_user(j, &page[i]);
	zh_json_end(j);
	zh_json_key(j, "offset", 6);
	zh_json_u64(j, offset);
	zh_json_key(j, "limit", 5);
	zh_json_u64(j, limit);
	zh_json_key(j, "total", 5);
	zh_json_u64(j, total);
	zh_json_end(j);
}

static void get_user(zh_request_t *req, zh_response_t *resp, void *arg)
{
	uint64_t id;
	user_t u;
	(void)arg;
	if (path_id(req, &id) < 0)
		json_error(resp, 400, "id: a number");
	else if (db_get(id, &u) < 0)
		json_error(resp, 404, "no such user");
	else
		write_user(zh_json_begin(resp, 0), &u);
}

static void create_user(zh_request_t *req, zh_response_t *resp, void *arg)
{
	user_t u = {0};
	char location[40];
	(void)arg;
	if (read_user(req, resp, &u) < 0)
		return; /* answered */
	if (db_put(&u) < 0) {
		json_error(resp, 503, "no room for more users");
		return;
	}
	snprintf(location, sizeof location, "/users/%llu", (unsigned long long)u.id);
	zh_resp_header_set(resp, "Location", location); /* copied: location may go */
	zh_write_header(resp, 201);
	write_user(zh_json_begin(resp, 0), &u);
}

static void update_user(zh_request_t *req, zh_response_t *resp, void *arg)
{
	user_t u = {0};
	(void)arg;
	if (path_id(req, &u.id) < 0 || u.id == 0) {
		json_error(resp, 400, "id: a number");
		return;
	}
	if (read_user(req, resp, &u) < 0)
		return; /* answered */
	if (db_put(&u) < 0)
		json_error(resp, 404, "no such user");
	else
		write_user(zh_json_begin(resp, 0), &u);
}

static void delete_user(zh_request_t *req, zh_response_t *resp, void *arg)
{
	uint64_t id;
	(void)arg;
	if (path_id(req, &id) < 0)
		json_error(resp, 400, "id: a number");
	else if (db_delete(id) < 0)
		json_error(resp, 404, "no such user");
	else
		zh_write_header(resp, 204);
}

/* ---- the server ---- */

static zh_server_t *server;

static void on_signal(int sig) /* Ctrl-C, SIGTERM: drain, then zh_server_run returns */
{
	(void)sig;
	zh_server_stop(server);
}

int main(int argc, char **argv)
{
	zh_config_t cfg;
	int err = 0;

	zh_config_init(&cfg);
	cfg.port = (uint16_t)(argc > 1 ? atoi(argv[1]) : 8080);
	cfg.max_body = 4096; /* a user is small: a bigger body is a 413, in JSON */
	if ((server = zh_server_new(&cfg, &err)) == NULL) {
		fprintf(stderr, "rest_api: %s\n", strerror(-err));
		return 1;
	}
	/* Patterns: "/users" and "/users/{id}" are different paths; on each, the methods not
	 * registered get 405 with "Allow: GET, HEAD, POST" (or "... PUT, DELETE"). A typo in a
	 * pattern, or a route registered twice, fails here rather than at the first request. */
	if ((err = zh_server_route(server, ZH_GET, "/users", 0, list_users, NULL)) < 0 ||
	    (err = zh_server_route(server, ZH_POST, "/users", 0, create_user, NULL)) < 0 ||
	    (err = zh_server_route(server, ZH_GET, "/users/{id}", 0, get_user, NULL)) < 0 ||
	    (err = zh_server_route(server, ZH_PUT, "/users/{id}", 0, update_user, NULL)) < 0 ||
	    (err = zh_server_route(server, ZH_DELETE, "/users/{id}", 0, delete_user, NULL)) < 0 ||
	    (err = zh_server_set_error_handler(server, on_error, NULL)) < 0) {
		fprintf(stderr, "rest_api: routes: %s\n", strerror(-err));
		return 1;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	printf("rest_api: listening on http://127.0.0.1:%u\n", zh_server_port(server));
	fflush(stdout);
	err = zh_server_run(server); /* until a signal stops it */
	zh_server_free(server);
	return err < 0;
}
