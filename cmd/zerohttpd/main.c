/* zerohttpd — the zerohttp server: the files under --root, /healthz, /readyz and /metrics,
 * with the optional middleware its flags turn on (zerohttpd --help lists them; README's
 * "zerohttpd" section explains them). --demo adds the demo routes of examples/demo_routes.c.
 *
 *   options.c   the option table: command line (and later a config file), usage
 *   signals.c   SIGTERM/SIGINT drain; SIGUSR1 reopens the access log; SIGHUP reloads
 *   limits.c    --rate-limit, --max-inflight, --limits-file
 *   features.c  --access-log, --cors-origin, --basic-auth/--bearer-tokens, --gzip
 *   monitoring.c /metrics, /healthz, /readyz; --metrics-listen, --metrics-allow
 *   log.c       timestamped, levelled lines on stderr
 */
#include "zerohttpd.h"
#include "demo_routes.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void reload_all(void)
{
	zhd_auth_reload();
	zhd_limits_reload();
}

/* "demo,gzip,metrics" ...: what this instance serves, for the start line */
static void features(const struct zhd_settings *s, char *out, size_t cap)
{
	const struct {
		bool on;
		const char *name;
	} f[] = {
		{s->demo, "demo"},
		{s->gzip_level != 0, "gzip"},
		{s->metrics, "metrics"},
		{s->access_log != NULL, "access-log"},
		{s->n_cors_origins != 0, "cors"},
		{s->htpasswd_file || s->tokens_file, "auth"},
		{s->limits_on, "limits"},
		{s->cfg.reuse_port != 0, "reuse-port"},
		{!s->no_http2, "http2"},
	};
	size_t n = 0;
	out[0] = '\0';
	for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
		if (f[i].on && n < cap)
			n += (size_t)snprintf(out + n, cap - n, "%s%s", n ? "," : "", f[i].name);
	if (n == 0)
		snprintf(out, cap, "none");
}

static void log_start(zh_server_t *srv, const struct zhd_settings *s)
{
	char feats[128], root[PATH_MAX], where[96] = "";
	const char *v6 = strchr(s->cfg.address, ':') ? "[" : "";
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN); /* zh_server_new's default */
	unsigned workers = s->cfg.workers ? s->cfg.workers : (unsigned)(ncpu > 0 ? ncpu : 1);
	if (realpath(s->files.root, root) == NULL)
		snprintf(root, sizeof root, "%s", s->files.root);
	features(s, feats, sizeof feats);
	if (s->metrics_listen)
		snprintf(where, sizeof where, " metrics-listen=%s:%u", s->metrics_addr,
			 (unsigned)zhd_metrics_port());
	zhd_log(ZHD_INFO, "listening on http://%s%s%s:%u/ version=%s workers=%u root=%s "
			  "features=%s%s",
		v6, s->cfg.address, *v6 ? "]" : "", (unsigned)zh_server_port(srv), ZH_VERSION,
		workers, root, feats, where);
}

static void log_stop(zh_server_t *srv, bool ran, int status)
{
	zh_stats_t st;
	int sig = zhd_stop_signal();
	if (!ran) {
		zhd_log(ZHD_ERROR, "not started; exit status %d", status);
		return;
	}
	zh_server_stats(srv, &st);
	zhd_log(status ? ZHD_ERROR : ZHD_INFO,
		"stopped%s%s: %llu connections open at the drain, %llu drained, %llu "
		"force-closed at --drain-timeout; exit status %d",
		sig ? " on " : "", sig == SIGTERM ? "SIGTERM" : sig == SIGINT ? "SIGINT" : "",
		(unsigned long long)st.drain_connections,
		(unsigned long long)(st.drain_connections - st.drain_force_closed),
		(unsigned long long)st.drain_force_closed, status);
}

static int serve(zh_server_t *srv, struct zhd_settings *s)
{
	zh_static_t *files = NULL;
	int err = 0, status = 1;
	bool ran = false;

	if (zhd_limits_start(srv, s) < 0 || /* first: see limits.c */
	    zhd_access_log_start(srv, s) < 0 || zhd_cors_auth_start(srv, s) < 0 ||
	    zhd_metrics_start(srv, s) < 0)
		goto out;
	if (s->demo && (err = demo_routes_add(srv)) < 0) {
		zhd_log(ZHD_ERROR, "cannot add the demo routes: %s", strerror(-err));
		goto out;
	}
	if (zhd_gzip_start(srv, s) < 0)
		goto out;
	if (!s->no_http2 && (err = zh_http2_enable(srv, NULL)) < 0) {
		zhd_log(ZHD_ERROR, "cannot enable HTTP/2: %s", strerror(-err));
		goto out;
	}
	files = zh_static_new(srv, &s->files, &err);
	if (files == NULL || (err = zh_server_route(srv, ZH_GET | ZH_HEAD, "/", ZH_ROUTE_PREFIX,
						    zh_static_handler, files)) < 0) {
		zhd_log(ZHD_ERROR, "cannot serve --root %s: %s", s->files.root, strerror(-err));
		goto out;
	}
	if (s->demo && (err = demo_routes_start()) < 0) {
		zhd_log(ZHD_ERROR, "cannot start the demo: %s", strerror(-err));
		goto out;
	}
	if ((err = zhd_signals_start(s->access_log ? zhd_access_log_reopen : NULL,
				     reload_all)) < 0) {
		zhd_log(ZHD_ERROR, "cannot start the signal thread: %s", strerror(-err));
		goto out;
	}
	zhd_signals_watch(srv);
	log_start(srv, s);
	ran = true;
	if ((err = zh_server_run(srv)) < 0)
		zhd_log(ZHD_ERROR, "%s", strerror(-err));
	else
		status = 0;
out:
	zhd_metrics_stop(); /* after the main server: its /readyz said 503 through the drain */
	demo_routes_stop();
	zhd_signals_stop();
	log_stop(srv, ran, status);
	zh_server_free(srv);
	zh_static_free(files);
	zhd_features_free();
	zhd_limits_free(); /* after zhd_signals_stop(): nothing calls zh_limit_set now */
	return status;
}

int main(int argc, char **argv)
{
	struct zhd_settings s;
	zh_server_t *srv;
	int r, err = 0;

	zhd_settings_init(&s);
	if ((r = zhd_parse_args(argc, argv, &s)) >= 0)
		return r;
	if (s.auth_prefix && !s.htpasswd_file && !s.tokens_file) {
		fprintf(stderr, "zerohttpd: --auth-prefix needs --basic-auth or --bearer-tokens\n"
				"Try 'zerohttpd --help'.\n");
		return 2;
	}
	zhd_signals_init(s.access_log != NULL); /* before any thread: see signals.c */
	srv = zh_server_new(&s.cfg, &err);
	if (srv == NULL) {
		zhd_log(ZHD_ERROR, "cannot listen on %s:%u: %s%s", s.cfg.address,
			(unsigned)s.cfg.port, err == -EADDRINUSE ? "address already in use" :
			strerror(-err), err == -EADDRINUSE ? " (another process holds the port; "
			"--reuse-port shares it with processes that also ask)" : "");
		return 1;
	}
	return serve(srv, &s);
}
