/* features.c — the optional middleware: --access-log (SIGUSR1 reopens it), --cors-origin,
 * --basic-auth/--bearer-tokens/--auth-prefix (SIGHUP reloads them), --gzip. Each is set up
 * on the main server before zh_server_run and freed after zh_server_free.
 */
#include "zerohttpd.h"

#include <errno.h>
#include <string.h>

static zh_access_log_t *g_access_log;
static zh_cors_t *g_cors;
static zh_auth_t *g_auth;
static zh_gzip_t *g_gzip;
static char auth_err[256]; /* zh_auth's failure text: a file and a line, no credential */

int zhd_access_log_start(zh_server_t *srv, const struct zhd_settings *s)
{
	zh_middleware_t mw;
	int err = 0;
	if (s->access_log == NULL)
		return 0;
	g_access_log = zh_access_log_new(srv, s->access_log, s->access_format, &err);
	if (g_access_log == NULL) {
		zhd_log(ZHD_ERROR, "cannot open --access-log %s: %s", s->access_log,
			strerror(-err));
		return -1;
	}
	mw = zh_access_log_middleware(g_access_log);
	if ((err = zh_server_use(srv, &mw)) < 0) {
		zhd_log(ZHD_ERROR, "cannot set up the access log: %s", strerror(-err));
		return -1;
	}
	return 0;
}

/* SIGUSR1 and SIGHUP, on the signal helper thread; nothing without an access log */
void zhd_access_log_reopen(void)
{
	int r;
	if (g_access_log && (r = zh_access_log_reopen(g_access_log)) < 0)
		zhd_log(ZHD_ERROR, "cannot reopen the access log: %s", strerror(-r));
}

/* CORS before auth: a preflight carries no credentials and must be answered first. */
int zhd_cors_auth_start(zh_server_t *srv, const struct zhd_settings *s)
{
	zh_middleware_t mw;
	int err = 0;
	if (s->n_cors_origins) {
		zh_cors_options_t co;
		zh_cors_options_init(&co); /* methods, headers and max-age: the defaults */
		co.origins = s->cors_origins;
		co.n_origins = s->n_cors_origins;
		if ((g_cors = zh_cors_new(&co, &err)) == NULL) {
			zhd_log(ZHD_ERROR, "bad --cors-origin: %s", strerror(-err));
			return -1;
		}
		mw = zh_cors_middleware(g_cors);
		if ((err = zh_server_use(srv, &mw)) < 0)
			goto busy;
	}
	if (s->htpasswd_file || s->tokens_file) {
		zh_auth_options_t ao;
		zh_auth_options_init(&ao);
		ao.htpasswd_file = s->htpasswd_file;
		ao.tokens_file = s->tokens_file;
		ao.prefix = s->auth_prefix ? s->auth_prefix : "/";
		ao.errbuf = auth_err;
		ao.errbuf_len = sizeof auth_err;
		if ((g_auth = zh_auth_new(&ao, &err)) == NULL) {
			zhd_log(ZHD_ERROR, "cannot load credentials: %s",
				auth_err[0] ? auth_err : strerror(-err));
			return -1;
		}
		mw = zh_auth_middleware(g_auth);
		if ((err = zh_server_use(srv, &mw)) < 0)
			goto busy;
	}
	return 0;
busy:
	zhd_log(ZHD_ERROR, "cannot add middleware: %s", strerror(-err));
	return -1;
}

/* SIGHUP, on the signal helper thread */
void zhd_auth_reload(void)
{
	int r;
	if (g_auth == NULL)
		return;
	if ((r = zh_auth_reload(g_auth)) < 0)
		zhd_log(ZHD_WARN, "credentials not reloaded (%s); the previous ones stay in force",
			auth_err[0] ? auth_err : strerror(-r));
	else
		zhd_log(ZHD_INFO, "credentials reloaded");
}

int zhd_gzip_start(zh_server_t *srv, const struct zhd_settings *s)
{
	zh_gzip_options_t go;
	zh_middleware_t mw;
	int err = 0;
	if (s->gzip_level == 0)
		return 0;
	zh_gzip_options_init(&go);
	go.level = (int)s->gzip_level;
	if ((g_gzip = zh_gzip_new(srv, &go, &err)) == NULL ||
	    (mw = zh_gzip_middleware(g_gzip), err = zh_server_use(srv, &mw)) < 0) {
		zhd_log(ZHD_ERROR, "cannot set up gzip: %s", strerror(-err));
		return -1;
	}
	return 0;
}

/* After zh_server_free and zhd_signals_stop: every access log line is in the file, and no
 * helper reopens or reloads any more. */
void zhd_features_free(void)
{
	zh_access_log_free(g_access_log);
	zh_gzip_free(g_gzip);
	zh_auth_free(g_auth);
	zh_cors_free(g_cors);
	g_access_log = NULL;
	g_gzip = NULL;
	g_auth = NULL;
	g_cors = NULL;
}
