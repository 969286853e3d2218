/* options.c — zerohttpd's options: one table, from which the command line is parsed, the
 * config file's keys are looked up (config.c) and the usage printed. Each entry names a
 * setter that takes the value as text, so both sources go through the same setters.
 */
#include "zerohttpd.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define AT(field) offsetof(struct zhd_settings, field)
#define FIELD(s, o, type) ((type *)(void *)((char *)(s) + (o)->off))

void zhd_settings_init(struct zhd_settings *s)
{
	memset(s, 0, sizeof *s);
	zh_config_init(&s->cfg);
	zh_static_options_init(&s->files);
	s->files.root = "."; /* the current directory, as `python3 -m http.server` does */
	s->metrics = true;
	s->access_format = ZH_LOG_COMBINED;
}

int zhd_parse_num(const char *s, unsigned long long max, unsigned long long *out)
{
	char *end;
	unsigned long long v;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *s < '0' || *s > '9' || *end != '\0' || v > max)
		return -1;
	*out = v;
	return 0;
}

/* ---- setters ----------------------------------------------------------------------------- */

static const char *set_str(struct zhd_settings *s, const struct zhd_option *o, const char *v)
{
	*FIELD(s, o, const char *) = v;
	return NULL;
}

static const char *set_true(struct zhd_settings *s, const struct zhd_option *o, const char *v)
{
	(void)v;
	*FIELD(s, o, bool) = true;
	return NULL;
}

static const char *set_int_one(struct zhd_settings *s, const struct zhd_option *o,
			       const char *v)
{
	(void)v;
	*FIELD(s, o, int) = 1;
	return NULL;
}

static const char *set_unsigned(struct zhd_settings *s, const struct zhd_option *o,
				const char *v)
{
	unsigned long long n;
	if (zhd_parse_num(v, o->max, &n) < 0)
		return "not a number in range";
	*FIELD(s, o, unsigned) = (unsigned)n;
	return NULL;
}

static const char *set_size(struct zhd_settings *s, const struct zhd_option *o, const char *v)
{
	unsigned long long n;
	if (zhd_parse_num(v, o->max, &n) < 0)
		return "not a number in range";
	*FIELD(s, o, size_t) = (size_t)n;
	return NULL;
}

static const char *set_port(struct zhd_settings *s, const struct zhd_option *o, const char *v)
{
	unsigned long long n;
	if (zhd_parse_num(v, 65535, &n) < 0)
		return "a port is 0 to 65535";
	*FIELD(s, o, uint16_t) = (uint16_t)n;
	return NULL;
}

static const char *set_address(struct zhd_settings *s, const struct zhd_option *o,
			       const char *v)
{
	(void)o;
	s->cfg.address = v;
	s->address_given = true;
	return NULL;
}

static const char *set_main_port(struct zhd_settings *s, const struct zhd_option *o,
				 const char *v)
{
	s->address_given = true;
	return set_port(s, o, v);
}

static const char *add_listen(struct zhd_settings *s, const char *v, bool tls)
{
	struct zhd_listen *l;
	if (s->n_listen == ZHD_LISTEN_MAX)
		return "at most 8 listeners in all";
	l = &s->listen[s->n_listen];
	l->tls = tls;
	if (zhd_parse_listen(v, l->addr, &l->port) != NULL)
		return "ADDR:PORT, with an IPv4 address or [IPv6]";
	s->n_listen++;
	return NULL;
}

static const char *set_listen(struct zhd_settings *s, const struct zhd_option *o, const char *v)
{
	(void)o;
	return add_listen(s, v, false);
}

static const char *set_listen_tls(struct zhd_settings *s, const struct zhd_option *o,
				  const char *v)
{
	(void)o;
	return add_listen(s, v, true);
}

static const char *set_tls_cert(struct zhd_settings *s, const struct zhd_option *o,
				const char *v)
{
	(void)o;
	if (s->n_tls_cert == ZHD_TLS_PAIRS_MAX)
		return "at most 16 certificates";
	s->tls_cert[s->n_tls_cert++] = v;
	return NULL;
}

static const char *set_tls_key(struct zhd_settings *s, const struct zhd_option *o,
			       const char *v)
{
	(void)o;
	if (s->n_tls_key == ZHD_TLS_PAIRS_MAX)
		return "at most 16 keys";
	s->tls_key[s->n_tls_key++] = v;
	return NULL;
}

static const char *set_tls_min(struct zhd_settings *s, const struct zhd_option *o,
			       const char *v)
{
	(void)o;
	if (strcmp(v, "1.2") == 0)
		s->tls_min = ZH_TLS_1_2;
	else if (strcmp(v, "1.3") == 0)
		s->tls_min = ZH_TLS_1_3;
	else
		return "1.2 or 1.3";
	return NULL;
}

static const char *set_no_metrics(struct zhd_settings *s, const struct zhd_option *o,
				  const char *v)
{
	(void)o, (void)v;
	s->metrics = false;
	s->cfg.latency_metrics = 0;
	return NULL;
}

static const char *set_gzip(struct zhd_settings *s, const struct zhd_option *o, const char *v)
{
	(void)o, (void)v;
	if (s->gzip_level == 0)
		s->gzip_level = 6;
	return NULL;
}

static const char *set_gzip_level(struct zhd_settings *s, const struct zhd_option *o,
				  const char *v)
{
	unsigned long long n;
	(void)o;
	if (zhd_parse_num(v, 9, &n) < 0 || n < 1)
		return "a zlib level is 1 to 9";
	s->gzip_level = (unsigned)n;
	return NULL;
}

static const char *set_io(struct zhd_settings *s, const struct zhd_option *o, const char *v)
{
	(void)o;
	if (strcmp(v, "epoll") == 0)
		s->cfg.io = ZH_IO_EPOLL;
	else if (strcmp(v, "uring") == 0)
		s->cfg.io = ZH_IO_URING;
	else
		return "the I/O backends are epoll and uring";
	return NULL;
}

static const char *set_log_format(struct zhd_settings *s, const struct zhd_option *o,
				  const char *v)
{
	static const char *const names[] = {"common", "combined", "json"};
	static const int formats[] = {ZH_LOG_COMMON, ZH_LOG_COMBINED, ZH_LOG_JSON};
	(void)o;
	for (unsigned i = 0; i < 3; i++)
		if (strcmp(v, names[i]) == 0) {
			s->access_format = formats[i];
			return NULL;
		}
	return "common, combined or json";
}

static const char *set_cors_origin(struct zhd_settings *s, const struct zhd_option *o,
				   const char *v)
{
	(void)o;
	if (s->n_cors_origins == ZHD_CORS_MAX)
		return "at most 64 of them";
	s->cors_origins[s->n_cors_origins++] = v;
	return NULL;
}

/* HOST=DIR: HOST as a route pattern's host (letters, digits, '-', '.'; the router checks
 * it when the route is added), DIR a directory opened at start-up. */
static const char *set_vhost(struct zhd_settings *s, const struct zhd_option *o, const char *v)
{
	const char *eq = strchr(v, '=');
	(void)o;
	if (eq == NULL || eq == v || eq[1] == '\0')
		return "expected HOST=DIR";
	if (s->n_vhosts == ZHD_VHOST_MAX)
		return "at most 64 of them";
	s->vhosts[s->n_vhosts++] = v;
	return NULL;
}

/* PREFIX=URL[,URL...]: PREFIX a path starting with '/', the URLs checked by zh_proxy_new. */
static const char *set_proxy(struct zhd_settings *s, const struct zhd_option *o, const char *v)
{
	const char *eq = strchr(v, '=');
	(void)o;
	if (eq == NULL || v[0] != '/' || eq[1] == '\0')
		return "expected PREFIX=URL[,URL...] with PREFIX starting with '/'";
	if (s->n_proxies == ZHD_UPSTREAM_ROUTES_MAX)
		return "at most 64 of them";
	s->proxies[s->n_proxies++] = v;
	return NULL;
}

static const char *set_proxy_balance(struct zhd_settings *s, const struct zhd_option *o,
				     const char *v)
{
	(void)o;
	if (strcmp(v, "round-robin") == 0)
		s->proxy_balance = ZH_PROXY_ROUND_ROBIN;
	else if (strcmp(v, "least-outstanding") == 0)
		s->proxy_balance = ZH_PROXY_LEAST_OUTSTANDING;
	else
		return "expected round-robin or least-outstanding";
	return NULL;
}

static const char *set_rate_limit(struct zhd_settings *s, const struct zhd_option *o,
				  const char *v)
{
	(void)o;
	if (zhd_parse_rate(v, &s->limits.rps, &s->limits.burst) < 0)
		return "RPS[:BURST] (RPS 0.001 to 1e9, or 0 for off; BURST at least 1)";
	s->limits_on = true;
	return NULL;
}

static const char *set_max_inflight(struct zhd_settings *s, const struct zhd_option *o,
				    const char *v)
{
	(void)o;
	if (zhd_parse_num(v, UINT_MAX, &s->limits.max_inflight) < 0)
		return "not a number in range";
	s->limits_on = true;
	return NULL;
}

static const char *set_ipv6_prefix(struct zhd_settings *s, const struct zhd_option *o,
				   const char *v)
{
	(void)o;
	if (zhd_parse_num(v, 128, &s->limits.ipv6_prefix) < 0 || s->limits.ipv6_prefix < 32)
		return "32 to 128";
	s->limits_on = true;
	return NULL;
}

static const char *set_limits_file(struct zhd_settings *s, const struct zhd_option *o,
				   const char *v)
{
	(void)o;
	s->limits_file = v;
	s->limits_on = true;
	return NULL;
}

static const char *set_metrics_listen(struct zhd_settings *s, const struct zhd_option *o,
				      const char *v)
{
	(void)o;
	s->metrics_listen = v;
	return zhd_parse_listen(v, s->metrics_addr, &s->metrics_port);
}

static const char *set_metrics_allow(struct zhd_settings *s, const struct zhd_option *o,
				     const char *v)
{
	(void)o;
	if (s->n_metrics_allow == ZHD_ALLOW_MAX)
		return "at most 64 of them";
	return zhd_parse_cidr(v, &s->metrics_allow[s->n_metrics_allow++]);
}

static const char *set_trusted_proxy(struct zhd_settings *s, const struct zhd_option *o,
				     const char *v)
{
	struct zhd_cidr c;
	size_t used = strlen(s->trusted_proxies), len = strlen(v);
	const char *why;
	(void)o;
	if (s->n_trusted_proxies == ZHD_PROXY_MAX)
		return "at most 64 of them";
	if ((why = zhd_parse_cidr(v, &c)) != NULL)
		return why;
	if (used + len + 2 > sizeof s->trusted_proxies)
		return "too long";
	if (used)
		s->trusted_proxies[used++] = ',';
	memcpy(s->trusted_proxies + used, v, len + 1);
	s->n_trusted_proxies++;
	s->cfg.trusted_proxies = s->trusted_proxies;
	return NULL;
}

/* ---- the table --------------------------------------------------------------------------- */

#define NUM(name, arg, field, max, help) {name, arg, set_unsigned, AT(field), max, help, 0}
#define SIZE(name, arg, field, max, help) {name, arg, set_size, AT(field), max, help, 0}
#define FN(name, arg, fn, help) {name, arg, fn, 0, 0, help, 0}
#define FNF(name, arg, fn, flags, help) {name, arg, fn, 0, 0, help, flags}

static const struct zhd_option options[] = {
	{"config", "FILE", set_str, AT(config_file), 0,
	 "read options from FILE first, one per line (\"port 8080\",\n"
	 "\"gzip\", # comments); flags given here override it\n"
	 "(a repeatable flag replaces the file's list); SIGHUP\n"
	 "re-reads it. Also -c FILE", ZHD_OPT_CLI_ONLY},
	{"check-config", NULL, set_true, AT(check_only), 0,
	 "check the options (and --config FILE) and exit: 0 if\n"
	 "good, 1 with the offending line if not. Also -t", ZHD_OPT_CLI_ONLY},
	{"address", "A", set_address, 0, 0, "address to bind (default 127.0.0.1)", 0},
	{"port", "N", set_main_port, AT(cfg.port), 0, "port (default 8080; 0 = any free port)", 0},
	FNF("listen", "ADDR:PORT", set_listen, ZHD_OPT_REPEAT,
	   "a plain HTTP listener (repeatable; [::1]:8080 for IPv6).\n"
	   "With --listen or --listen-tls, --address/--port add\n"
	   "their listener only when given"),
	FNF("listen-tls", "ADDR:PORT", set_listen_tls, ZHD_OPT_REPEAT,
	   "an HTTPS listener (repeatable); needs --tls-cert and\n--tls-key"),
	FNF("tls-cert", "FILE", set_tls_cert, ZHD_OPT_REPEAT,
	   "PEM certificate, chain after the leaf, sent as it is\n"
	   "(repeatable: the one whose names match the client's\n"
	   "SNI is used, else the first); SIGHUP reloads it"),
	FNF("tls-key", "FILE", set_tls_key, ZHD_OPT_REPEAT,
	    "PEM private key of the --tls-cert in the same position"),
	FN("tls-min", "V", set_tls_min, "lowest TLS version: 1.2 (the default) or 1.3"),
	NUM("tls-handshake-timeout", "MS", cfg.tls_handshake_timeout_ms, UINT_MAX,
	    "a TLS handshake must end within (default 10000)"),
	NUM("tls-ticket-rotate", "S", tls_rotate_s, UINT_MAX,
	    "a new session ticket key every S seconds; the previous\n"
	    "one is still accepted (default 3600)"),
	{"reuse-port", NULL, set_int_one, AT(cfg.reuse_port), 0,
	 "share the port with processes that set SO_REUSEPORT (a\n"
	 "new zerohttpd taking over); without it a busy port is an\n"
	 "error (\"address already in use\")", 0},
	{"user", "NAME", set_str, AT(user), 0,
	 "after binding, drop to this user (and its group, no\n"
	 "supplementary groups) before opening or serving\n"
	 "anything; needs root", 0},
	{"group", "NAME", set_str, AT(group), 0, "with --user: this group instead of the user's",
	 0},
	{"allow-root", NULL, set_true, AT(allow_root), 0,
	 "serve as root when started as root without --user (else\n"
	 "refused; also ZEROHTTPD_ALLOW_ROOT=1 in the environment)", 0},
	{"root", "DIR", set_str, AT(files.root), 0,
	 "document root (default: the current directory)", 0},
	FNF("vhost", "HOST=DIR", set_vhost, ZHD_OPT_REPEAT,
	    "serve DIR, and only DIR, to requests whose Host is HOST\n"
	    "(no case, port ignored) instead of --root; repeatable"),
	FNF("proxy", "PREFIX=URL[,URL...]", set_proxy, ZHD_OPT_REPEAT,
	    "reverse proxy: forward every request whose path starts\n"
	    "with PREFIX, path unchanged, to the upstreams\n"
	    "(http://HOST:PORT), balanced, over per-worker\n"
	    "keep-alive pools; PREFIX / replaces --root; repeatable"),
	FN("proxy-balance", "POLICY", set_proxy_balance,
	   "round-robin (default) or least-outstanding"),
	NUM("proxy-connect-timeout", "MS", proxy_connect_ms, UINT_MAX,
	    "upstream connect timeout (default 2000), then another\n"
	    "upstream (idempotent requests) or 504"),
	NUM("proxy-header-timeout", "MS", proxy_header_ms, UINT_MAX,
	    "request sent to the upstream's response head\n(default 30000), then 504"),
	NUM("proxy-idle-timeout", "MS", proxy_idle_ms, UINT_MAX,
	    "an upstream body silent this long is cut (default 30000)"),
	{"proxy-upgrades", "LIST", set_str, AT(proxy_upgrades), 0,
	 "protocols tunnelled after an upstream's 101\n(default websocket; \"\" none; never h2c)", 0},
	NUM("proxy-tunnel-timeout", "MS", proxy_tunnel_ms, UINT_MAX,
	    "an upgrade tunnel (WebSocket) moving no byte either\nway this long is closed (default 60000)"),
	NUM("proxy-keepalive-timeout", "MS", proxy_keepalive_ms, UINT_MAX,
	    "an idle pooled upstream connection is closed after\nthis long (default 60000)"),
	NUM("proxy-fail-timeout", "MS", proxy_fail_ms, UINT_MAX,
	    "an upstream whose connect failed is skipped this long\n(default 5000)"),
	NUM("proxy-max-conns", "N", proxy_max_conns, 65536,
	    "connections per upstream and worker, idle or busy;\nbeyond, 503 (default 256)"),
	{"proxy-health-check", "PATH", set_str, AT(proxy_health_path), 0,
	 "probe every upstream with GET PATH (2xx/3xx passes);\n"
	 "2 failures in a row take it out, 2 passes bring it back", 0},
	NUM("proxy-health-interval", "MS", proxy_health_interval_ms, UINT_MAX,
	    "time between probes (default 2000)"),
	{"demo", NULL, set_true, AT(demo), 0,
	 "also serve the demo routes: /plaintext, /json, /echo,\n"
	 "/upload, /stream, /delay, /json/list, /json/list64k,\n"
	 "/proto, /users/{id} (examples/demo_routes.c)", 0},
	NUM("workers", "N", cfg.workers, UINT_MAX, "worker threads (default: number of CPUs)"),
	NUM("max-connections", "N", cfg.max_connections, UINT_MAX, "per worker (default 10000)"),
	NUM("io-contexts", "N", cfg.io_contexts, UINT_MAX,
	    "per worker: connections with bytes in flight (1024)"),
	SIZE("max-request-line", "N", cfg.max_request_line, UINT_MAX,
	     "bytes, else 414 (default 8192)"),
	SIZE("max-header-bytes", "N", cfg.max_header_bytes, UINT_MAX,
	     "bytes of header fields, else 431 (default 32768)"),
	NUM("max-headers", "N", cfg.max_headers, UINT_MAX, "header fields, else 431 (default 100)"),
	SIZE("max-body", "N", cfg.max_body, UINT_MAX,
	     "request body bytes, else 413 (default 1048576)"),
	NUM("header-timeout", "MS", cfg.header_timeout_ms, UINT_MAX,
	    "head must arrive within (default 10000)"),
	NUM("idle-timeout", "MS", cfg.idle_timeout_ms, UINT_MAX,
	    "keep-alive idle limit (default 60000)"),
	NUM("body-timeout", "MS", cfg.body_timeout_ms, UINT_MAX,
	    "gap allowed between body bytes; slower than 4 B/s, the\n"
	    "deadline is not moved (default 30000)"),
	NUM("write-timeout", "MS", cfg.write_timeout_ms, UINT_MAX,
	    "gap allowed while the peer reads nothing (default 30000)"),
	NUM("drain-timeout", "MS", cfg.drain_timeout_ms, UINT_MAX,
	    "on SIGTERM/SIGINT, force-close after (default 10000)"),
	NUM("drain-delay", "MS", drain_delay_ms, UINT_MAX,
	    "on SIGTERM, answer 503 on /readyz and serve as before\n"
	    "for MS, then drain (load balancers take the instance\n"
	    "out first); a second SIGTERM or SIGINT drains at once\n"
	    "(default 0)"),
	NUM("loopback-sndbuf", "N", cfg.loopback_sndbuf, UINT_MAX,
	    "SO_SNDBUF for loopback peers, 0 = autotune (262144)"),
	FN("io", "epoll|uring", set_io,
	   "I/O backend (default epoll); uring falls back to epoll,\n"
	   "with a warning, where io_uring is unavailable"),
	NUM("io-buffers", "N", cfg.io_buffers, 32768,
	    "uring: 2 KiB receive buffers per worker (default 512)"),
	NUM("static-cache", "N", files.cache_entries, UINT_MAX,
	    "open files cached per worker (default 1024)"),
	NUM("static-ttl", "MS", files.cache_ttl_ms, UINT_MAX,
	    "cached files are re-checked after (default 1000)"),
	{"no-openat2", NULL, set_int_one, AT(files.no_openat2), 0,
	 "open files component by component with O_NOFOLLOW", 0},
	{"no-http2", NULL, set_int_one, AT(no_http2), 0,
	 "HTTP/1.1 only: no HTTP/2 (by default h2c with prior knowledge,\n"
	 "and h2 by ALPN on TLS listeners)", 0},
	FN("gzip", NULL, set_gzip, "compress text, JSON... responses for clients that accept it"),
	FN("gzip-level", "N", set_gzip_level, "zlib level 1-9 (default 6); implies --gzip"),
	FN("no-metrics", NULL, set_no_metrics,
	   "no GET /metrics, no per-request timing (/healthz stays)"),
	FN("metrics-listen", "ADDR:PORT", set_metrics_listen,
	   "serve /metrics, /healthz and /readyz on a listener of\n"
	   "their own, and /metrics no longer on the main port\n"
	   "(IPv6: [::1]:9100)"),
	FNF("metrics-allow", "CIDR", set_metrics_allow, ZHD_OPT_REPEAT,
	    "only these clients get /metrics, others 403\n"
	    "(repeatable; 10.0.0.0/8, ::1/128, 192.0.2.7).\n"
	    "Default: every client"),
	FNF("trusted-proxy", "CIDR", set_trusted_proxy, ZHD_OPT_REPEAT,
	    "believe Forwarded / X-Forwarded-For from these peers\n"
	    "(repeatable; 10.0.0.0/8, ::1): the client address of\n"
	    "the access log and --rate-limit is the forwarded one"),
	{"access-log", "FILE|-", set_str, AT(access_log), 0,
	 "one line per response, appended to FILE (- = stdout);\n"
	 "SIGUSR1 reopens FILE (rotation). Default: no log", 0},
	FN("access-log-format", "F", set_log_format, "common, combined (the default) or json"),
	FNF("cors-origin", "ORIGIN", set_cors_origin, ZHD_OPT_REPEAT,
	    "allow cross-origin requests from ORIGIN (repeatable):\n"
	    "https://a.example, https://*.example.com or *"),
	{"basic-auth", "FILE", set_str, AT(htpasswd_file), 0,
	 "require HTTP Basic credentials from this htpasswd file\n"
	 "(bcrypt, sha512crypt... hashes); SIGHUP reloads it", 0},
	{"bearer-tokens", "FILE", set_str, AT(tokens_file), 0,
	 "accept Bearer tokens listed one per line (\"name:token\"\nnames them for the access log); SIGHUP reloads", 0},
	{"auth-prefix", "PREFIX", set_str, AT(auth_prefix), 0,
	 "paths needing credentials (default /; /healthz and\n/readyz never do)", 0},
	FNF("rate-limit", "RPS[:BURST]", set_rate_limit, ZHD_OPT_RELOAD,
	    "per client address: 429 + Retry-After beyond it\n"
	    "(BURST defaults to RPS; 0 = off)"),
	FNF("max-inflight", "N", set_max_inflight, ZHD_OPT_RELOAD,
	    "requests in flight, all workers: 503 beyond (0 = off)"),
	FNF("rate-limit-ipv6-prefix", "N", set_ipv6_prefix, ZHD_OPT_RELOAD,
	    "IPv6 clients share a bucket per /N (32..128;\n"
	    "default 64: one subscriber's allocation)"),
	FNF("limits-file", "FILE", set_limits_file, ZHD_OPT_RELOAD,
	   "lines \"rate-limit RPS[:BURST]\", \"max-inflight N\",\n"
	   "\"rate-limit-ipv6-prefix N\" over the flags; SIGHUP\n"
	   "re-reads it. /healthz, /readyz and /metrics are never\nlimited"),
	{"help", NULL, NULL, 0, 0, "this text (also -h)", ZHD_OPT_CLI_ONLY},
	{"version", NULL, NULL, 0, 0, "print \"zerohttpd VERSION\" and exit", ZHD_OPT_CLI_ONLY},
};

const struct zhd_option *zhd_option_find(const char *name)
{
	for (size_t i = 0; i < sizeof options / sizeof options[0]; i++)
		if (strcmp(options[i].name, name) == 0)
			return &options[i];
	return NULL;
}

const struct zhd_option *zhd_option_at(size_t i)
{
	return i < sizeof options / sizeof options[0] ? &options[i] : NULL;
}

const char *zhd_option_apply(struct zhd_settings *s, const struct zhd_option *o,
			     const char *value)
{
	const char *why = o->set(s, o, value);
	if (why != NULL)
		return why;
	if (s->n_applied == ZHD_APPLIED_MAX)
		return "too many options (512 at most)";
	s->applied[s->n_applied++] = (struct zhd_applied){o, value};
	return NULL;
}

void zhd_usage(FILE *out)
{
	fprintf(out, "usage: zerohttpd [options]\n"
		     "Serves the files under --root over HTTP/1.1, with /healthz, /readyz and "
		     "/metrics.\n\n");
	for (size_t i = 0; i < sizeof options / sizeof options[0]; i++) {
		const struct zhd_option *o = &options[i];
		const char *h = o->help, *nl;
		char head[40];
		snprintf(head, sizeof head, "--%s%s%s", o->name, o->arg ? " " : "",
			 o->arg ? o->arg : "");
		fprintf(out, "  %-22s ", head);
		if (strlen(head) > 22)
			fprintf(out, "\n  %-22s ", "");
		while ((nl = strchr(h, '\n')) != NULL) {
			fprintf(out, "%.*s\n  %-22s ", (int)(nl - h), h, "");
			h = nl + 1;
		}
		fprintf(out, "%s\n", h);
	}
	fprintf(out, "\nSIGTERM/SIGINT drain and exit; SIGUSR1 reopens the access log; SIGHUP "
		     "re-reads\n--basic-auth, --bearer-tokens, --limits-file, --config and the TLS\n"
		     "certificates.\n");
}

/* One line and a hint, as GNU tools do: the full usage would scroll the error away. */
static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
	va_list ap;
	fputs("zerohttpd: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry 'zerohttpd --help'.\n", stderr);
	return 2;
}

int zhd_parse_args(int argc, char **argv, struct zhd_settings *s)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *value = NULL, *why;
		char name[64];
		const struct zhd_option *o = NULL;
		size_t len;
		if (strcmp(a, "-h") == 0)
			a = "--help";
		else if (strcmp(a, "-c") == 0)
			a = "--config";
		else if (strcmp(a, "-t") == 0)
			a = "--check-config";
		if (a[0] != '-')
			return usage_error("unexpected argument '%s'", a);
		len = strncmp(a, "--", 2) == 0 ? strcspn(a + 2, "=") : 0;
		if (len > 0 && len < sizeof name) {
			memcpy(name, a + 2, len);
			name[len] = '\0';
			o = zhd_option_find(name);
		}
		if (o == NULL)
			return usage_error("unknown option '%.*s'", len ? (int)len + 2 : (int)strlen(a),
					   a);
		if (a[2 + len] == '=')
			value = a + 3 + len;
		if (o->arg == NULL && value != NULL)
			return usage_error("option '--%s' takes no value", o->name);
		if (o->arg != NULL && value == NULL) {
			if (i + 1 == argc)
				return usage_error("option '--%s' needs a value (%s)", o->name, o->arg);
			value = argv[++i];
		}
		if (o->set == NULL) { /* --help, --version */
			if (strcmp(o->name, "help") == 0)
				zhd_usage(stdout);
			else
				printf("zerohttpd %s\n", ZH_VERSION);
			return 0;
		}
		if ((why = zhd_option_apply(s, o, value)) != NULL)
			return usage_error("bad value '%s' for --%s: %s", value ? value : "", o->name,
					   why);
	}
	return -1;
}
