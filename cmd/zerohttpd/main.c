/* zerohttpd — the zerohttp server: the files under --root, /healthz, /readyz and /metrics,
 * with the optional middleware its flags turn on (zerohttpd --help lists them; README's
 * "zerohttpd" section explains them). --demo adds the demo routes of examples/demo_routes.c.
 *
 *   options.c   the option table: command line and config-file keys, usage
 *   config.c    -c FILE, -t, and re-reading the file on SIGHUP
 *   signals.c   SIGTERM/SIGINT drain; SIGUSR1 reopens the access log; SIGHUP reloads
 *   drain_delay.c --drain-delay: /readyz 503 for a while before a SIGTERM's drain
 *   limits.c    --rate-limit, --max-inflight, --limits-file
 *   features.c  --access-log, --cors-origin, --basic-auth/--bearer-tokens, --gzip
 *   monitoring.c /metrics, /healthz, /readyz; --metrics-listen, --metrics-allow
 *   privileges.c --user, --group: dropped to after binding
 *   sdnotify.c  READY, RELOADING, STOPPING for systemd's Type=notify
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
	zhd_notify_reloading();
	zhd_config_reload(); /* first: it may move the limits' base */
	zhd_auth_reload();
	zhd_limits_reload();
	zhd_tls_reload();
	zhd_access_log_reopen(); /* as SIGUSR1: a rotated file is picked up by either */
	zhd_notify("READY=1");
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
		{zhd_tls() != NULL, "tls"},
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
	char feats[128], root[PATH_MAX], where[96] = "", listen[600];
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN); /* zh_server_new's default */
	unsigned workers = s->cfg.workers ? s->cfg.workers : (unsigned)(ncpu > 0 ? ncpu : 1);
	if (realpath(s->files.root, root) == NULL)
		snprintf(root, sizeof root, "%s", s->files.root);
	features(s, feats, sizeof feats);
	if (s->metrics_listen)
		snprintf(where, sizeof where, " metrics-listen=%s:%u", s->metrics_addr,
			 (unsigned)zhd_metrics_port());
	const char *why;
	int io = zh_server_io(srv, &why);
	if (s->cfg.io == ZH_IO_URING && io != ZH_IO_URING)
		zhd_log(ZHD_WARN, "--io uring: %s; serving with epoll", why ? why : "unavailable");
	zhd_listeners_describe(srv, s, listen, sizeof listen);
	zhd_log(ZHD_INFO, "listening on %s version=%s workers=%u root=%s features=%s%s io=%s",
		listen, ZH_VERSION, workers, root, feats, where, io == ZH_IO_URING ? "uring" : "epoll");
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

/* --vhost HOST=DIR: a static root per host, as the pattern "HOST/" (a prefix route). The
 * router tries a host's routes first and that one matches every path: a request for HOST
 * gets DIR's files only (the demo routes, /healthz and /metrics answer other hosts). */
static zh_static_t *vhost_files[ZHD_VHOST_MAX];

static int add_vhosts(zh_server_t *srv, const struct zhd_settings *s)
{
	for (size_t i = 0; i < s->n_vhosts; i++) {
		const char *v = s->vhosts[i], *eq = strchr(v, '=');
		zh_static_options_t o = s->files;
		char pattern[256];
		int err = 0;
		if ((size_t)(eq - v) + 2 > sizeof pattern) {
			zhd_log(ZHD_ERROR, "--vhost %s: host name too long", v);
			return -1;
		}
		snprintf(pattern, sizeof pattern, "%.*s/", (int)(eq - v), v);
		o.root = eq + 1;
		vhost_files[i] = zh_static_new(srv, &o, &err);
		if (vhost_files[i] == NULL ||
		    (err = zh_server_route(srv, ZH_GET | ZH_HEAD, pattern, ZH_ROUTE_PREFIX,
					   zh_static_handler, vhost_files[i])) < 0) {
			zhd_log(ZHD_ERROR, "--vhost %s: %s", v,
				err == -EINVAL ? "not a host name" : strerror(-err));
			return -1;
		}
	}
	return 0;
}

static int serve(zh_server_t *srv, struct zhd_settings *s)
{
	zh_static_t *files = NULL;
	int err = 0, status = 1;
	bool ran = false, proxy_root = false;

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
	if (zhd_proxy_start(srv, s, &proxy_root) < 0)
		goto out;
	if (!proxy_root) /* --proxy /=...: the proxy is the root */
		files = zh_static_new(srv, &s->files, &err);
	if (!proxy_root &&
	    (files == NULL || (err = zh_server_route(srv, ZH_GET | ZH_HEAD, "/", ZH_ROUTE_PREFIX,
						     zh_static_handler, files)) < 0)) {
		zhd_log(ZHD_ERROR, "cannot serve --root %s: %s", s->files.root, strerror(-err));
		goto out;
	}
	if (add_vhosts(srv, s) < 0)
		goto out;
	if (s->demo && (err = demo_routes_start()) < 0) {
		zhd_log(ZHD_ERROR, "cannot start the demo: %s", strerror(-err));
		goto out;
	}
	if ((err = zhd_signals_start(s->access_log ? zhd_access_log_reopen : NULL, reload_all,
				     zhd_upgrade)) < 0) {
		zhd_log(ZHD_ERROR, "cannot start the signal thread: %s", strerror(-err));
		goto out;
	}
	if ((err = zhd_drain_delay_start(srv, s->drain_delay_ms)) < 0) {
		zhd_log(ZHD_ERROR, "cannot start the --drain-delay thread: %s", strerror(-err));
		goto out;
	}
	zhd_signals_watch(srv);
	if (zhd_watchdog_start(srv) < 0)
		goto out;
	log_start(srv, s);
	zhd_notify("READY=1\nSTATUS=serving");
	zhd_handover_ready();
	ran = true;
	if ((err = zh_server_run(srv)) < 0)
		zhd_log(ZHD_ERROR, "%s", strerror(-err));
	else
		status = 0;
out:
	zhd_watchdog_stop(); /* it pings srv's workers */
	zhd_metrics_stop(); /* after the main server: its /readyz said 503 through the drain */
	demo_routes_stop();
	zhd_signals_stop();
	zhd_drain_delay_stop(); /* after the handler can no longer post it; before the free */
	log_stop(srv, ran, status);
	zh_server_free(srv);
	zh_static_free(files);
	for (size_t i = 0; i < s->n_vhosts; i++)
		zh_static_free(vhost_files[i]);
	zhd_features_free();
	zhd_proxy_free(); /* after zh_server_free: no worker uses an upstream connection now */
	zhd_limits_free(); /* after zhd_signals_stop(): nothing calls zh_limit_set now */
	zhd_tls_free();	   /* after the server: its connections used it */
	return status;
}

/* The settings, the server, then serving until a stop signal: an exit status. */
static int start(int argc, char **argv)
{
	static struct zhd_settings s; /* its strings point into argv and the config file */
	zh_server_t *srv;
	int r, err = 0;

	if (zhd_handover_init(argv) < 0) /* first: LISTEN_FDS leave the environment */
		return 1;
	if ((r = zhd_settings_load(argc, argv, &s)) >= 0)
		return r;
	if (zhd_notify_init() < 0)
		return 1;
	zhd_signals_init(s.access_log != NULL); /* before any thread: see signals.c */
	if (zhd_listeners_setup(&s) < 0) {
		zhd_tls_free();
		return 1;
	}
	srv = zh_server_new(&s.cfg, &err);
	if (srv == NULL) {
		zhd_tls_free();
		zhd_log(ZHD_ERROR, "cannot listen on %s:%u: %s%s", s.cfg.address,
			(unsigned)s.cfg.port, err == -EADDRINUSE ? "address already in use" :
			strerror(-err), err == -EADDRINUSE ? " (another process holds the port; "
			"--reuse-port shares it with processes that also ask)" : "");
		return 1;
	}
	if (zhd_drop_privileges(&s) < 0) {
		zh_server_free(srv);
		return 1;
	}
	return serve(srv, &s);
}

int main(int argc, char **argv)
{
	int status = start(argc, argv);
	zhd_notify_free();
	zhd_config_free(); /* last: the settings' strings point into it */
	return status;
}
