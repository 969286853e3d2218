/* zerohttpd — the zerohttp server with its demo routes.
 *
 *   GET  /plaintext   Hello, World!                      (static body, no copy)
 *   GET  /json        {"message":"Hello, World!"}        (static body, no copy)
 *   POST /echo        the request body                   (sent from the receive buffer)
 *   GET  /...         files under --root (zh_static_handler: sendfile, ranges, 304s)
 *   POST /upload      "<bytes> <fnv1a-64 hex>\n" of a body of any size, streamed through a
 *                     64 KiB stack buffer (ZH_ROUTE_STREAM_BODY): memory stays flat
 *
 * SIGTERM/SIGINT drain and exit; see --help for the flags.
 */
#include "zerohttp.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef ZH_DEFAULT_ROOT
#define ZH_DEFAULT_ROOT "www"
#endif

static zh_server_t *volatile g_server;
static volatile sig_atomic_t g_stop_requested;

static const char plaintext_body[] = "Hello, World!";
static const char json_body[] = "{\"message\":\"Hello, World!\"}";

static void plaintext(zh_request_t *req, zh_response_t *resp, void *arg)
{
	(void)req;
	(void)arg;
	(void)!zh_resp_header_set(resp, "Content-Type", "text/plain");
	zh_write_static(resp, plaintext_body, sizeof plaintext_body - 1);
}

static void json(zh_request_t *req, zh_response_t *resp, void *arg)
{
	(void)req;
	(void)arg;
	(void)!zh_resp_header_set(resp, "Content-Type", "application/json");
	zh_write_static(resp, json_body, sizeof json_body - 1);
}

/* The body slice lives until the response is sent, so it goes out by reference. */
static void echo(zh_request_t *req, zh_response_t *resp, void *arg)
{
	zh_slice_t body, type;
	(void)arg;
	zh_body_all(req, &body);
	if (!zh_req_header(req, "Content-Type", &type) ||
	    zh_resp_header_setn(resp, "Content-Type", 12, type.ptr, type.len) < 0)
		(void)!zh_resp_header_set(resp, "Content-Type", "application/octet-stream");
	zh_write_ref(resp, body.ptr, body.len, NULL, NULL);
}

/* Installed before the listeners exist: a SIGTERM that arrives while we start up (a client
 * may already be queued in the backlog) must drain, not kill. */
/* Per-connection upload state would normally live in the application's own context; the
 * demo keeps it in a small per-worker table keyed by the request pointer, which is stable
 * while the request is suspended. */
struct upload {
	zh_request_t *req;
	uint64_t bytes, hash;
};
static _Thread_local struct upload uploads[64];

static struct upload *upload_state(zh_request_t *req)
{
	struct upload *free_slot = NULL;
	for (unsigned i = 0; i < sizeof uploads / sizeof uploads[0]; i++) {
		if (uploads[i].req == req)
			return &uploads[i];
		if (uploads[i].req == NULL && free_slot == NULL)
			free_slot = &uploads[i];
	}
	if (free_slot) {
		free_slot->req = req;
		free_slot->bytes = 0;
		free_slot->hash = 0xcbf29ce484222325ull; /* FNV-1a 64 offset basis */
	}
	return free_slot;
}

static void upload(zh_request_t *req, zh_response_t *resp, void *arg)
{
	char buf[65536], out[64];
	struct upload *u = upload_state(req);
	ssize_t n;
	(void)arg;
	if (u == NULL) {
		(void)zh_reply(resp, 503, "text/plain", "busy\n", 5);
		return;
	}
	while ((n = zh_body_read(req, buf, sizeof buf)) > 0) {
		u->bytes += (uint64_t)n;
		for (ssize_t i = 0; i < n; i++)
			u->hash = (u->hash ^ (unsigned char)buf[i]) * 0x100000001b3ull;
	}
	if (n == -EAGAIN && zh_body_wait(req, upload, NULL) == 0)
		return; /* called again when more of the body has arrived */
	if (n == 0) {
		int len = snprintf(out, sizeof out, "%llu %016llx\n", (unsigned long long)u->bytes,
				   (unsigned long long)u->hash);
		(void)zh_reply(resp, 200, "text/plain", out, (size_t)len);
	}
	u->req = NULL; /* on errors the library answers 408/400 itself */
}

static void on_signal(int sig)
{
	zh_server_t *srv = g_server;
	(void)sig;
	g_stop_requested = 1;
	if (srv)
		zh_server_stop(srv);
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: zerohttpd [options]\n"
		"  --address A            address to bind (default 127.0.0.1)\n"
		"  --port N               port (default 8080; 0 = any free port)\n"
		"  --root DIR             document root (default the repo's www/)\n"
		"  --workers N            worker threads (default: number of CPUs)\n"
		"  --max-connections N    per worker (default 10000)\n"
		"  --io-contexts N        per worker: connections with bytes in flight (1024)\n"
		"  --max-request-line N   bytes, else 414 (default 8192)\n"
		"  --max-header-bytes N   bytes of header fields, else 431 (default 32768)\n"
		"  --max-headers N        header fields, else 431 (default 100)\n"
		"  --max-body N           request body bytes, else 413 (default 1048576)\n"
		"  --header-timeout MS    head must arrive within (default 10000)\n"
		"  --idle-timeout MS      keep-alive idle limit (default 60000)\n"
		"  --body-timeout MS      gap allowed between body bytes (default 30000)\n"
		"  --write-timeout MS     gap allowed while the peer reads nothing (default 30000)\n"
		"  --drain-timeout MS     on SIGTERM/SIGINT, force-close after (default 10000)\n"
		"  --loopback-sndbuf N    SO_SNDBUF for loopback peers, 0 = autotune (262144)\n"
		"  --static-cache N       open files cached per worker (default 1024)\n"
		"  --static-ttl MS        cached files are re-checked after (default 1000)\n"
		"  --no-openat2           open files component by component with O_NOFOLLOW\n"
		"  --help                 this text\n");
}

static int parse_num(const char *s, unsigned long long max, unsigned long long *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *s == '\0' || *end != '\0' || *s == '-' || v > max)
		return -1;
	*out = v;
	return 0;
}

int main(int argc, char **argv)
{
	enum { O_ADDRESS = 256, O_PORT, O_ROOT, O_WORKERS, O_MAXCONN, O_IOCTX, O_REQLINE,
	       O_HDRBYTES, O_HDRS, O_BODY, O_THDR, O_TIDLE, O_TBODY, O_TWRITE, O_TDRAIN, O_HELP,
	       O_SNDBUF, O_SCACHE, O_STTL, O_NOOPENAT2 };
	static const struct option opts[] = {
		{"address", required_argument, NULL, O_ADDRESS},
		{"port", required_argument, NULL, O_PORT},
		{"root", required_argument, NULL, O_ROOT},
		{"workers", required_argument, NULL, O_WORKERS},
		{"max-connections", required_argument, NULL, O_MAXCONN},
		{"io-contexts", required_argument, NULL, O_IOCTX},
		{"max-request-line", required_argument, NULL, O_REQLINE},
		{"max-header-bytes", required_argument, NULL, O_HDRBYTES},
		{"max-headers", required_argument, NULL, O_HDRS},
		{"max-body", required_argument, NULL, O_BODY},
		{"header-timeout", required_argument, NULL, O_THDR},
		{"idle-timeout", required_argument, NULL, O_TIDLE},
		{"body-timeout", required_argument, NULL, O_TBODY},
		{"write-timeout", required_argument, NULL, O_TWRITE},
		{"drain-timeout", required_argument, NULL, O_TDRAIN},
		{"help", no_argument, NULL, O_HELP},
		{"loopback-sndbuf", required_argument, NULL, O_SNDBUF},
		{"static-cache", required_argument, NULL, O_SCACHE},
		{"static-ttl", required_argument, NULL, O_STTL},
		{"no-openat2", no_argument, NULL, O_NOOPENAT2},
		{NULL, 0, NULL, 0},
	};
	zh_config_t cfg;
	zh_static_options_t sopts;
	zh_static_t *files = NULL;
	struct sigaction sa;
	int opt, err = 0;

	zh_config_init(&cfg);
	zh_static_options_init(&sopts);
	sopts.root = ZH_DEFAULT_ROOT;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		unsigned long long v = 0;
		if (opt == O_HELP) {
			usage(stdout);
			return 0;
		}
		if (opt == '?') {
			usage(stderr);
			return 2;
		}
		if (opt == O_ADDRESS) {
			cfg.address = optarg;
			continue;
		}
		if (opt == O_NOOPENAT2) {
			sopts.no_openat2 = 1;
			continue;
		}
		if (opt == O_ROOT) {
			sopts.root = optarg;
			continue;
		}
		if (parse_num(optarg, opt == O_PORT ? 65535 : UINT_MAX, &v) < 0) {
			fprintf(stderr, "zerohttpd: bad number '%s' for --%s\n", optarg,
				opts[opt - O_ADDRESS].name);
			return 2;
		}
		switch (opt) {
		case O_PORT: cfg.port = (uint16_t)v; break;
		case O_WORKERS: cfg.workers = (unsigned)v; break;
		case O_MAXCONN: cfg.max_connections = (unsigned)v; break;
		case O_IOCTX: cfg.io_contexts = (unsigned)v; break;
		case O_REQLINE: cfg.max_request_line = v; break;
		case O_HDRBYTES: cfg.max_header_bytes = v; break;
		case O_HDRS: cfg.max_headers = (unsigned)v; break;
		case O_BODY: cfg.max_body = v; break;
		case O_THDR: cfg.header_timeout_ms = (unsigned)v; break;
		case O_TIDLE: cfg.idle_timeout_ms = (unsigned)v; break;
		case O_TBODY: cfg.body_timeout_ms = (unsigned)v; break;
		case O_TWRITE: cfg.write_timeout_ms = (unsigned)v; break;
		case O_TDRAIN: cfg.drain_timeout_ms = (unsigned)v; break;
		case O_SNDBUF: cfg.loopback_sndbuf = (unsigned)v; break;
		case O_SCACHE: sopts.cache_entries = (unsigned)v; break;
		case O_STTL: sopts.cache_ttl_ms = (unsigned)v; break;
		}
	}
	if (optind < argc) {
		usage(stderr);
		return 2;
	}

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	g_server = zh_server_new(&cfg, &err);
	if (g_server == NULL) {
		fprintf(stderr, "zerohttpd: cannot start on %s:%u: %s\n", cfg.address,
			(unsigned)cfg.port, strerror(-err));
		return 1;
	}
	if (zh_server_route(g_server, ZH_GET, "/plaintext", 0, plaintext, NULL) < 0 ||
	    zh_server_route(g_server, ZH_GET, "/json", 0, json, NULL) < 0 ||
	    zh_server_route(g_server, ZH_POST | ZH_PUT, "/echo", 0, echo, NULL) < 0 ||
	    zh_server_route(g_server, ZH_POST | ZH_PUT, "/upload", ZH_ROUTE_STREAM_BODY, upload,
			    NULL) < 0) {
		fprintf(stderr, "zerohttpd: cannot add routes\n");
		return 1;
	}
	files = zh_static_new(g_server, &sopts, &err);
	if (files == NULL ||
	    zh_server_route(g_server, ZH_GET | ZH_HEAD, "/", ZH_ROUTE_PREFIX, zh_static_handler,
			    files) < 0) {
		fprintf(stderr, "zerohttpd: cannot serve --root %s: %s\n", sopts.root,
			strerror(files ? EINVAL : -err));
		return 1;
	}
	if (g_stop_requested)
		zh_server_stop(g_server);

	fprintf(stderr, "zerohttpd: listening on http://%s:%u/\n", cfg.address,
		(unsigned)zh_server_port(g_server));
	err = zh_server_run(g_server);
	{
		zh_server_t *srv = g_server;
		g_server = NULL;
		zh_server_free(srv);
		zh_static_free(files);
	}
	if (err < 0) {
		fprintf(stderr, "zerohttpd: %s\n", strerror(-err));
		return 1;
	}
	return 0;
}
