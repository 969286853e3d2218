/* zerohttpd.h — what the daemon's files share: its settings, the option table, the log. */
#ifndef ZEROHTTPD_H
#define ZEROHTTPD_H

#include "zerohttp.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---- log.c: daemon messages on stderr ---------------------------------------------------- */

/* One line, written with one write(2) so that threads never interleave:
 *   2026-12-07T03:10:10.123Z info zerohttpd: <message>
 * RFC 3339 timestamp in UTC with milliseconds, then the level. */
enum zhd_level { ZHD_INFO, ZHD_WARN, ZHD_ERROR };
void zhd_log(enum zhd_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- options.c: settings, from argv and the config file (the same table) ---------------- */

enum { ZHD_CORS_MAX = 64, ZHD_ALLOW_MAX = 64, ZHD_PROXY_MAX = 64, ZHD_APPLIED_MAX = 512 };
enum { ZHD_VHOST_MAX = 64, ZHD_LISTEN_MAX = 8, ZHD_TLS_PAIRS_MAX = 16, ZHD_UPSTREAM_ROUTES_MAX = 64 };

/* --listen / --listen-tls */
struct zhd_listen {
	char addr[64];
	uint16_t port;
	bool tls;
};

/* --rate-limit, --max-inflight and the --limits-file lines */
struct zhd_limits {
	double rps, burst; /* burst 0: as many as rps, at least 1 */
	unsigned long long max_inflight;
	unsigned long long ipv6_prefix; /* IPv6 clients share a bucket per /N; 0: the default /64 */
};

/* --metrics-allow: a network, IPv4 or IPv6 */
struct zhd_cidr {
	int family; /* AF_INET or AF_INET6 */
	uint8_t addr[16];
	unsigned bits;
};

/* Everything the options set. Strings point into argv or the config file's text, which
 * outlive the server (config.c keeps every file read until zhd_config_free). */
struct zhd_settings {
	zh_config_t cfg;
	zh_static_options_t files;
	bool demo, metrics;
	unsigned gzip_level; /* 0: no gzip */
	int no_http2;	     /* --no-http2: HTTP/1.1 only (no h2c, no ALPN h2) */
	const char *access_log;
	int access_format;
	const char *cors_origins[ZHD_CORS_MAX];
	size_t n_cors_origins;
	const char *htpasswd_file, *tokens_file, *auth_prefix;
	struct zhd_limits limits;
	bool limits_on;
	const char *limits_file;
	const char *metrics_listen; /* ADDR:PORT as given, NULL: /metrics on the main port */
	char metrics_addr[64];
	uint16_t metrics_port;
	struct zhd_cidr metrics_allow[ZHD_ALLOW_MAX];
	size_t n_metrics_allow;
	/* listeners: --address/--port (the shorthand, used when given or when no --listen
	 * is), then --listen and --listen-tls in command-line order */
	bool address_given;
	struct zhd_listen listen[ZHD_LISTEN_MAX];
	size_t n_listen;
	const char *tls_cert[ZHD_TLS_PAIRS_MAX], *tls_key[ZHD_TLS_PAIRS_MAX];
	size_t n_tls_cert, n_tls_key;
	unsigned tls_min, tls_rotate_s; /* 0: the library's default */
	const char *vhosts[ZHD_VHOST_MAX]; /* "HOST=DIR" as given (--vhost) */
	size_t n_vhosts;
	const char *proxies[ZHD_UPSTREAM_ROUTES_MAX]; /* "PREFIX=URL[,URL...]" (--proxy) */
	size_t n_proxies;
	int proxy_balance; /* ZH_PROXY_ROUND_ROBIN or _LEAST_OUTSTANDING (--proxy-balance) */
	/* 0: the library's default */
	unsigned proxy_connect_ms, proxy_header_ms, proxy_idle_ms, proxy_keepalive_ms;
	unsigned proxy_tunnel_ms;
	const char *proxy_upgrades; /* NULL: the library's default (websocket) */
	unsigned proxy_fail_ms, proxy_max_conns, proxy_health_interval_ms;
	const char *proxy_health_path; /* --proxy-health-check: NULL, off */
	/* --trusted-proxy, each checked, joined by ',' for cfg.trusted_proxies (which points
	 * here once there is one) */
	char trusted_proxies[ZHD_PROXY_MAX * 48];
	size_t n_trusted_proxies;
	const char *user, *group; /* --user, --group: dropped to after binding */
	bool allow_root;	  /* --allow-root */
	const char *config_file;  /* -c FILE */
	unsigned drain_delay_ms;  /* --drain-delay: /readyz 503 this long before the drain */
	bool check_only;	 /* -t */
	/* every option set, in order (config file, then argv): what SIGHUP compares */
	struct zhd_applied {
		const struct zhd_option *opt;
		const char *value;
	} applied[ZHD_APPLIED_MAX];
	size_t n_applied;
};

void zhd_settings_init(struct zhd_settings *s);

/* What an option may be (struct zhd_option.flags). */
enum {
	ZHD_OPT_REPEAT = 1u << 0,   /* repeatable: each use adds to a list */
	ZHD_OPT_RELOAD = 1u << 1,   /* a change in the config file takes effect on SIGHUP */
	ZHD_OPT_CLI_ONLY = 1u << 2, /* not a config-file key (--config, --help...) */
};

/* One option: "--name" on the command line; the same name is the config-file key. set()
 * returns NULL, or why the value is wrong (static text, for "zerohttpd: --name: <why>"). */
struct zhd_option {
	const char *name;
	const char *arg; /* placeholder in the usage ("N", "FILE"); NULL: a switch */
	const char *(*set)(struct zhd_settings *s, const struct zhd_option *o, const char *value);
	size_t off;		/* where a plain number goes: offset in struct zhd_settings */
	unsigned long long max; /* and its largest value */
	const char *help;	/* lines after the first are indented in the usage */
	unsigned flags;		/* ZHD_OPT_* */
};

/* The option called name (without "--"), or NULL; the i-th of the table, or NULL past it. */
const struct zhd_option *zhd_option_find(const char *name);
const struct zhd_option *zhd_option_at(size_t i);

/* Sets option o to value (NULL for a switch) in *s and records it in s->applied: NULL, or
 * why the value is wrong. */
const char *zhd_option_apply(struct zhd_settings *s, const struct zhd_option *o,
			     const char *value);

/* Parses argv into *s. Returns -1 to go on, or an exit status: 0 after --help/--version,
 * 2 after a usage error (one line and a hint on stderr). */
int zhd_parse_args(int argc, char **argv, struct zhd_settings *s);
void zhd_usage(FILE *out);

/* ---- config.c: -c FILE (the same options, one per line), -t, reload on SIGHUP ------------ */

/* The settings from the config file named by -c (if any) and argv over it. Returns -1 to
 * go on, or an exit status: 0 after --help/--version or a passing -t, 1 for a bad config
 * file (FILE:LINE: why, on stderr), 2 for a usage error. */
int zhd_settings_load(int argc, char **argv, struct zhd_settings *s);
/* SIGHUP, on the signal helper thread: reads the file and argv again; applies what can
 * change at run time (ZHD_OPT_RELOAD) and logs, by name, the changes that need a restart.
 * A bad file changes nothing. */
void zhd_config_reload(void);
/* At exit: frees the config files' text, which the settings' strings point into. */
void zhd_config_free(void);

/* "RPS" or "RPS:BURST" (limits.c and options.c) */
int zhd_parse_rate(const char *s, double *rps, double *burst);
int zhd_parse_num(const char *s, unsigned long long max, unsigned long long *out);

/* ---- signals.c: stop (SIGTERM/SIGINT), reopen (SIGUSR1), reload (SIGHUP) ----------------- */

/* Before any thread exists: every thread inherits the mask that keeps SIGUSR1 and SIGHUP
 * for their helper threads. reopen: SIGUSR1 is used (--access-log), else ignored. */
void zhd_signals_init(bool reopen);
/* From now on SIGTERM/SIGINT stop srv (also one that arrived before: it is not lost). */
void zhd_signals_watch(zh_server_t *srv);
/* The stop signal received (SIGTERM...), 0 if none. */
int zhd_stop_signal(void);
/* The helper threads: SIGUSR1 calls reopen(), SIGHUP reload(), SIGUSR2 upgrade(srv). */
int zhd_signals_start(void (*reopen)(void), void (*reload)(void),
		      void (*upgrade)(zh_server_t *));
/* After zh_server_run returned, before what reopen/reload touch is freed. */
void zhd_signals_stop(void);

/* ---- drain_delay.c: --drain-delay, /readyz 503 before the drain ------------------------- */

/* The thread that waits out the delay (none when ms is 0); before zhd_signals_watch. */
int zhd_drain_delay_start(zh_server_t *srv, unsigned ms);
/* From the stop signal's handler (async-signal-safe): /readyz answers 503 from now on.
 * true: the delay thread will call zh_server_stop later (a first SIGTERM); false: the
 * caller stops the server now. */
bool zhd_drain_delay_begin(int sig);
/* Whether a stop signal came: /readyz must answer 503. */
bool zhd_drain_delay_unready(void);
/* After zh_server_run returned, before the server is freed: wakes and joins the thread. */
void zhd_drain_delay_stop(void);

/* ---- privileges.c: --user, --group ----------------------------------------------------- */

/* After binding, before anything else is opened: drops to --user (and --group, else the
 * user's primary group), with no supplementary groups. 0, or -1 (logged). */
int zhd_drop_privileges(const struct zhd_settings *s);

/* ---- sdnotify.c: READY, RELOADING, STOPPING to $NOTIFY_SOCKET (systemd Type=notify) ---- */

/* Opens the socket named by NOTIFY_SOCKET, if set: 0, or -1 (logged). */
int zhd_notify_init(void);
/* Sends state ("READY=1\nSTATUS=..."); a failure is logged. Does nothing without a socket. */
void zhd_notify(const char *state);
/* "RELOADING=1" with MONOTONIC_USEC. */
void zhd_notify_reloading(void);
/* "STOPPING=1": async-signal-safe, for the stop signal's handler. */
void zhd_notify_stopping(void);
void zhd_notify_free(void);
/* With WATCHDOG_USEC (and WATCHDOG_PID ours, if set): a thread that sends WATCHDOG=1 every
 * half interval, each after zh_server_ping(srv) found every worker turning. 0, or -1. */
int zhd_watchdog_start(zh_server_t *srv);
/* Before srv is freed. */
void zhd_watchdog_stop(void);

/* ---- limits.c: --rate-limit, --max-inflight, --limits-file ------------------------------- */

int zhd_limits_start(zh_server_t *srv, const struct zhd_settings *s);
void zhd_limits_reload(void);
/* New base limits (the config file changed), applied by the next zhd_limits_reload(). */
void zhd_limits_rebase(const struct zhd_settings *s);
/* -t: 0 if the --limits-file parses, else -1 with the file and line logged. */
int zhd_limits_check(const char *path);
void zhd_limits_free(void);

/* ---- features.c: access log, CORS, auth, gzip --------------------------------------------- */

int zhd_access_log_start(zh_server_t *srv, const struct zhd_settings *s);
void zhd_access_log_reopen(void);
int zhd_cors_auth_start(zh_server_t *srv, const struct zhd_settings *s);
void zhd_auth_reload(void);
int zhd_gzip_start(zh_server_t *srv, const struct zhd_settings *s);
void zhd_features_free(void);
/* --proxy: one zh_proxy_t per PREFIX (proxy.c); true when one of them is "/" (the static
 * root is then not served). */
int zhd_proxy_start(zh_server_t *srv, const struct zhd_settings *s, bool *claims_root);
void zhd_proxy_free(void);

/* ---- handover.c: sockets from systemd or an old process (LISTEN_FDS); SIGUSR2 upgrade ---- */

enum { ZHD_INHERITED_MAX = 64 };
/* by its LISTEN_FDNAMES name: "https", "metrics" (--metrics-listen), anything else */
enum zhd_sock_kind { ZHD_SOCK_HTTP, ZHD_SOCK_HTTPS, ZHD_SOCK_METRICS };
struct zhd_inherited {
	int fd;
	enum zhd_sock_kind kind;
};
/* First thing in main: takes LISTEN_FDS (when LISTEN_PID is ours) and ZEROHTTPD_UPGRADE_FD
 * out of the environment, and remembers the binary's path and argv for SIGUSR2. 0, or -1
 * (logged). */
int zhd_handover_init(char **argv);
const struct zhd_inherited *zhd_inherited(size_t *n);
/* Serving: tells the old process that started us for an upgrade, if one did. */
void zhd_handover_ready(void);
/* SIGUSR2 (the signal thread): starts the binary with our listening sockets; once it
 * serves, this server drains. */
void zhd_upgrade(zh_server_t *srv);

/* ---- tls.c: the listeners, --listen-tls and --tls-*; SIGHUP reloads the certificates ---- */

/* Fills s->cfg.listeners from the options; with a TLS listener, loads libzerohttp-tls
 * (dlopen: a plain-only run never maps OpenSSL) and the certificates. Returns 0, or -1
 * after logging why. Before zh_server_new(). */
int zhd_listeners_setup(struct zhd_settings *s);
zh_tls_t *zhd_tls(void); /* NULL without TLS listeners */
bool zhd_listener_is_tls(unsigned i); /* zh_server_listener_port's numbering */
void zhd_tls_reload(void);
void zhd_tls_free(void);
/* The zerohttp_tls_* families, written after zh_metrics_handler's (no TLS: nothing). */
void zhd_tls_metrics(zh_response_t *resp);
/* "http://127.0.0.1:8080/ https://127.0.0.1:8443/" for the start line */
void zhd_listeners_describe(const zh_server_t *srv, const struct zhd_settings *s, char *out,
			    size_t cap);

/* ---- monitoring.c: /metrics, /healthz, /readyz; --metrics-listen, --metrics-allow ------------ */

/* Parsers for the two options */
const char *zhd_parse_listen(const char *v, char addr[64], uint16_t *port);
const char *zhd_parse_cidr(const char *v, struct zhd_cidr *out);
/* The monitoring routes on srv, or on a listener of their own with --metrics-listen. */
int zhd_metrics_start(zh_server_t *srv, const struct zhd_settings *s);
/* After the main server's zh_server_run returned. */
void zhd_metrics_stop(void);
uint16_t zhd_metrics_port(void);
zh_server_t *zhd_metrics_server(void); /* --metrics-listen's, or NULL */ /* the separate listener's port, 0 if none */

#endif
