/* file_site.c — a web site: files from a directory, a small JSON API beside them, an admin
 * page behind tokens, and the bundled middleware around it all.
 *
 *   GET /...              the files under ROOT (index.html for a directory; ETag, ranges,
 *                         file.gz served to clients that accept gzip): zh_static_handler
 *   GET /api/files        the root's files as JSON, gzip-compressed for clients that accept it
 *   GET /admin/stats      the server's counters and who asked: Bearer tokens from TOKENS
 *   GET /metrics          Prometheus metrics; /healthz for load balancers
 *
 * Around every request: a rate limit per client (429), CORS for https://app.example, the
 * token check under /admin (401), gzip, and an access log in the combined format with the
 * authenticated user in it.
 *
 *   cc -o file_site file_site.c $(pkg-config --cflags --libs zerohttp-gzip zerohttp-auth)
 *   echo 'alice:0123456789abcdef' > tokens
 *   ./file_site [-p PORT] [-l ACCESS_LOG] [-r REQS_PER_SEC] ROOT TOKENS
 *   curl -H 'Authorization: Bearer 0123456789abcdef' localhost:8080/admin/stats
 */
#define _POSIX_C_SOURCE 200809L /* getopt, fstatat, dirfd */
#include <zerohttp.h>

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static zh_server_t *server;

/* GET /api/files: {"files": [{"name": "index.html", "size": 1234}, ...]}. The handler only
 * writes JSON; the gzip middleware compresses it at the commit when the client sent
 * Accept-Encoding: gzip, and sets Content-Encoding and Vary. */
static void list_files(zh_request_t *req, zh_response_t *resp, void *arg)
{
	DIR *dir = opendir(arg); /* the root: a small directory, read on each request */
	(void)req;
	if (dir == NULL) {
		zh_reply(resp, 500, "text/plain", "cannot read the root\n", 21);
		return;
	}
	zh_json_t *j = zh_json_begin(resp, 0);
	zh_json_obj(j);
	zh_json_key(j, "files", 5);
	zh_json_arr(j);
	for (struct dirent *e; (e = readdir(dir)) != NULL;) {
		struct stat st;
		if (e->d_name[0] == '.' || fstatat(dirfd(dir), e->d_name, &st, 0) < 0 ||
		    !S_ISREG(st.st_mode))
			continue; /* dot files are not served either */
		zh_json_obj(j);
		zh_json_key(j, "name", 4);
		zh_json_str(j, e->d_name, strlen(e->d_name)); /* escaped, as JSON needs */
		zh_json_key(j, "size", 4);
		zh_json_u64(j, (uint64_t)st.st_size);
		zh_json_end(j);
	}
	zh_json_end(j);
	zh_json_end(j);
	closedir(dir);
}

/* GET /admin/stats: only reached with a valid token (the auth middleware answered 401
 * otherwise), whose name zh_req_auth_user gives. */
static void admin_stats(zh_request_t *req, zh_response_t *resp, void *arg)
{
	zh_stats_t s;
	zh_slice_t user;
	zh_server_stats(arg, &s);
	if (!zh_req_auth_user(req, &user))
		user = (zh_slice_t){"", 0};
	zh_json_t *j = zh_json_begin(resp, 0);
	zh_json_obj(j);
	zh_json_key(j, "user", 4);
	zh_json_str(j, user.ptr, user.len);
	zh_json_key(j, "requests", 8);
	zh_json_u64(j, s.requests);
	zh_json_key(j, "responses_4xx", 13);
	zh_json_u64(j, s.responses_4xx);
	zh_json_key(j, "rate_limited", 12);
	zh_json_u64(j, s.shed_429);
	zh_json_end(j);
}

/* Start-up failures end the program: a site that cannot set itself up should not serve. */
static void check(int err, const char *what)
{
	if (err < 0) {
		fprintf(stderr, "file_site: %s: %s\n", what, strerror(-err));
		exit(1);
	}
}

static void on_signal(int sig)
{
	(void)sig;
	zh_server_stop(server);
}

int main(int argc, char **argv)
{
	const char *log_path = "-";
	double rps = 50;
	zh_config_t cfg;
	int opt, err = 0;

	zh_config_init(&cfg);
	while ((opt = getopt(argc, argv, "p:l:r:")) != -1) {
		if (opt == 'p')
			cfg.port = (uint16_t)atoi(optarg);
		else if (opt == 'l')
			log_path = optarg;
		else if (opt == 'r')
			rps = atof(optarg);
		else
			return 2;
	}
	if (argc - optind != 2) {
		fprintf(stderr, "usage: file_site [-p PORT] [-l LOG] [-r RPS] ROOT TOKENS\n");
		return 2;
	}
	const char *root = argv[optind], *tokens = argv[optind + 1];
	if ((server = zh_server_new(&cfg, &err)) == NULL)
		check(err, "server");

	/* The bundled features: each is made once here (all their memory is allocated now,
	 * none per request) and outlives the server. */
	zh_static_options_t so;
	zh_static_options_init(&so);
	so.root = root;
	zh_static_t *files = zh_static_new(server, &so, &err);
	if (files == NULL)
		check(err, root);

	zh_access_log_t *log = zh_access_log_new(server, log_path, ZH_LOG_COMBINED, &err);
	if (log == NULL)
		check(err, log_path);

	zh_limit_t *limit = zh_limit_new(0, &err);
	if (limit == NULL)
		check(err, "rate limit");
	check(zh_limit_set(limit, rps, 0, 0), "rate limit"); /* per client; bursts of rps */
	check(zh_limit_exempt(limit, "/metrics"), "rate limit"); /* monitoring always gets in */
	check(zh_limit_exempt(limit, "/healthz"), "rate limit");

	static const char *const origins[] = {"https://app.example"};
	zh_cors_options_t co;
	zh_cors_options_init(&co); /* methods, headers (Authorization too), max-age: defaults */
	co.origins = origins;
	co.n_origins = 1;
	zh_cors_t *cors = zh_cors_new(&co, &err);
	if (cors == NULL)
		check(err, "cors");

	zh_auth_options_t ao;
	zh_auth_options_init(&ao);
	ao.tokens_file = tokens; /* "name:token" lines */
	ao.prefix = "/admin";
	zh_auth_t *auth = zh_auth_new(&ao, &err);
	if (auth == NULL)
		check(err, tokens);

	zh_gzip_options_t go;
	zh_gzip_options_init(&go);
	zh_gzip_t *gzip = zh_gzip_new(server, &go, &err);
	if (gzip == NULL)
		check(err, "gzip");

	/* The global chain, in this order: the log's done hook sees every answer (the others'
	 * refusals too); the limiter sheds before any work; CORS answers preflights, which
	 * carry no credentials, before auth asks for them; gzip works at the commit. */
	zh_middleware_t chain[] = {
		zh_access_log_middleware(log), zh_limit_middleware(limit),
		zh_cors_middleware(cors),      zh_auth_middleware(auth),
		zh_gzip_middleware(gzip),
	};
	for (size_t i = 0; i < sizeof chain / sizeof chain[0]; i++)
		check(zh_server_use(server, &chain[i]), "middleware");

	/* Routes: the literal patterns beat the "/" prefix, so /api/files is never looked up
	 * as a file, and a file named like a route is never served. */
	check(zh_server_route(server, ZH_GET | ZH_HEAD, "/", ZH_ROUTE_PREFIX, zh_static_handler,
			      files), "route /");
	check(zh_server_route(server, ZH_GET, "/api/files", 0, list_files, (void *)root),
	      "route /api/files");
	check(zh_server_route(server, ZH_GET, "/admin/stats", 0, admin_stats, server),
	      "route /admin/stats");
	check(zh_server_route(server, ZH_GET, "/metrics", 0, zh_metrics_handler, server),
	      "route /metrics");
	check(zh_server_route(server, ZH_GET, "/healthz", 0, zh_healthz_handler, NULL),
	      "route /healthz");

	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	printf("file_site: listening on http://127.0.0.1:%u\n", zh_server_port(server));
	fflush(stdout);
	err = zh_server_run(server);

	/* The server has stopped (the access log wrote its last lines): free in reverse. */
	zh_server_free(server);
	zh_gzip_free(gzip);
	zh_auth_free(auth);
	zh_cors_free(cors);
	zh_limit_free(limit);
	zh_access_log_free(log);
	zh_static_free(files);
	return err < 0;
}
