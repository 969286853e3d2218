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

/* ---- options.c: settings, from argv (and later from a config file: same table) ---------- */

enum { ZHD_CORS_MAX = 64, ZHD_ALLOW_MAX = 64 };

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

/* Everything the options set. Strings point into argv (or, later, the config file's
 * storage), which outlive the server. */
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
};

void zhd_settings_init(struct zhd_settings *s);

/* One option: "--name" on the command line; the same name is the config-file key. set()
 * returns NULL, or why the value is wrong (static text, for "zerohttpd: --name: <why>"). */
struct zhd_option {
	const char *name;
	const char *arg; /* placeholder in the usage ("N", "FILE"); NULL: a switch */
	const char *(*set)(struct zhd_settings *s, const struct zhd_option *o, const char *value);
	size_t off;		/* where a plain number goes: offset in struct zhd_settings */
	unsigned long long max; /* and its largest value */
	const char *help;	/* lines after the first are indented in the usage */
};

/* The option called name (without "--"), or NULL. */
const struct zhd_option *zhd_option_find(const char *name);

/* Parses argv into *s. Returns -1 to go on, or an exit status: 0 after --help/--version,
 * 2 after a usage error (one line and a hint on stderr). */
int zhd_parse_args(int argc, char **argv, struct zhd_settings *s);
void zhd_usage(FILE *out);

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
/* The helper threads: SIGUSR1 calls reopen(), SIGHUP calls reload(). */
int zhd_signals_start(void (*reopen)(void), void (*reload)(void));
/* After zh_server_run returned, before what reopen/reload touch is freed. */
void zhd_signals_stop(void);

/* ---- limits.c: --rate-limit, --max-inflight, --limits-file ------------------------------- */

int zhd_limits_start(zh_server_t *srv, const struct zhd_settings *s);
void zhd_limits_reload(void);
void zhd_limits_free(void);

/* ---- features.c: access log, CORS, auth, gzip --------------------------------------------- */

int zhd_access_log_start(zh_server_t *srv, const struct zhd_settings *s);
void zhd_access_log_reopen(void);
int zhd_cors_auth_start(zh_server_t *srv, const struct zhd_settings *s);
void zhd_auth_reload(void);
int zhd_gzip_start(zh_server_t *srv, const struct zhd_settings *s);
void zhd_features_free(void);

/* ---- monitoring.c: /metrics, /healthz, /readyz; --metrics-listen, --metrics-allow ------------ */

/* Parsers for the two options */
const char *zhd_parse_listen(const char *v, char addr[64], uint16_t *port);
const char *zhd_parse_cidr(const char *v, struct zhd_cidr *out);
/* The monitoring routes on srv, or on a listener of their own with --metrics-listen. */
int zhd_metrics_start(zh_server_t *srv, const struct zhd_settings *s);
/* After the main server's zh_server_run returned. */
void zhd_metrics_stop(void);
uint16_t zhd_metrics_port(void); /* the separate listener's port, 0 if none */

#endif
