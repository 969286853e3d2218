/* tls.c — the daemon's listeners: --address/--port (the one-plain-listener shorthand),
 * --listen and --listen-tls (repeatable), and the TLS settings their HTTPS listeners share
 * (--tls-cert/--tls-key pairs chosen by SNI, --tls-min, --tls-ticket-rotate). SIGHUP
 * reloads the certificates: new handshakes use the new ones, a bad file keeps the old
 * ones and the log says why.
 *
 * libzerohttp-tls is dlopen'd, and only when a --listen-tls asks for it: a zerohttpd that
 * serves plain HTTP never maps OpenSSL, whose relocated data alone costs ~450 KiB of
 * anonymous memory (tests/integration/test_memory.py holds the whole process to 1 MiB).
 * It is looked up next to the binary, then in ../lib, then by soname (lib_open).
 */
#include "zerohttpd.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* the library's calls, from dlsym */
static struct {
	void *handle;
	int (*memory_init)(void);
	void (*options_init)(zh_tls_options_t *);
	zh_tls_t *(*new_)(const zh_tls_options_t *, int *);
	int (*add_cert)(zh_tls_t *, const char *, const char *, char *, size_t);
	int (*reload)(zh_tls_t *, char *, size_t);
	size_t (*metrics_text)(const zh_tls_t *, char *, size_t);
	void (*free_)(zh_tls_t *);
} lib;

/* By path, next to the binary (in-tree build/) or in ../lib (installed), then by soname
 * through the usual search. Not through the binary's RUNPATH: dlopen searches the caller's,
 * and under ASan the caller is the sanitizer's interceptor. */
static void *lib_open(const char *name)
{
	static const char *const dirs[] = {"", "/../lib"};
	char exe[4096], path[4096 + 64];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	char *slash;
	void *h;
	if (n > 0) {
		exe[n] = '\0';
		if ((slash = strrchr(exe, '/')) != NULL)
			*slash = '\0';
		for (size_t i = 0; i < 2; i++) {
			snprintf(path, sizeof path, "%s%s/%s", exe, dirs[i], name);
			if ((h = dlopen(path, RTLD_NOW | RTLD_LOCAL)) != NULL)
				return h;
		}
	}
	return dlopen(name, RTLD_NOW | RTLD_LOCAL);
}

static int lib_load(void)
{
	static const char name[] = "libzerohttp-tls.so.0";
	struct {
		const char *sym;
		void **at;
	} syms[] = {
		{"zh_tls_memory_init", (void **)&lib.memory_init},
		{"zh_tls_options_init", (void **)&lib.options_init},
		{"zh_tls_new", (void **)&lib.new_},
		{"zh_tls_add_cert", (void **)&lib.add_cert},
		{"zh_tls_reload", (void **)&lib.reload},
		{"zh_tls_metrics_text", (void **)&lib.metrics_text},
		{"zh_tls_free", (void **)&lib.free_},
	};
	if ((lib.handle = lib_open(name)) == NULL) {
		zhd_log(ZHD_ERROR, "--listen-tls: cannot load %s: %s", name, dlerror());
		return -1;
	}
	for (size_t i = 0; i < sizeof syms / sizeof syms[0]; i++) {
		/* POSIX: a function pointer may be stored through a void ** from dlsym */
		if ((*syms[i].at = dlsym(lib.handle, syms[i].sym)) == NULL) {
			zhd_log(ZHD_ERROR, "--listen-tls: %s has no %s", name, syms[i].sym);
			return -1;
		}
	}
	return 0;
}

static zh_tls_t *g_tls;
static zh_listener_t g_listeners[ZHD_INHERITED_MAX];
static char g_inherited_addr[ZHD_INHERITED_MAX][INET6_ADDRSTRLEN]; /* for the start line */

zh_tls_t *zhd_tls(void)
{
	return g_tls;
}

static int tls_start(struct zhd_settings *s)
{
	char why[256];
	int err = 0;
	if (s->n_tls_cert == 0 || s->n_tls_cert != s->n_tls_key) {
		zhd_log(ZHD_ERROR, "--listen-tls needs --tls-cert and --tls-key, as many of each "
				   "(%zu certificates, %zu keys)",
			s->n_tls_cert, s->n_tls_key);
		return -1;
	}
	zh_tls_options_t opt;
	if (lib_load() < 0)
		return -1;
	/* before OpenSSL allocates anything: its allocations go to per-thread pools */
	if ((err = lib.memory_init()) < 0)
		zhd_log(ZHD_WARN, "OpenSSL allocations stay with malloc: %s", strerror(-err));
	lib.options_init(&opt);
	if (s->tls_min)
		opt.min_version = s->tls_min;
	if (s->tls_rotate_s)
		opt.ticket_rotate_s = s->tls_rotate_s;
	if ((g_tls = lib.new_(&opt, &err)) == NULL) {
		zhd_log(ZHD_ERROR, "cannot set up TLS: %s", strerror(-err));
		return -1;
	}
	for (size_t i = 0; i < s->n_tls_cert; i++) {
		why[0] = '\0';
		if ((err = lib.add_cert(g_tls, s->tls_cert[i], s->tls_key[i], why, sizeof why)) < 0) {
			zhd_log(ZHD_ERROR, "cannot use --tls-cert %s --tls-key %s: %s", s->tls_cert[i],
				s->tls_key[i], why[0] ? why : strerror(-err));
			return -1;
		}
	}
	return 0;
}

bool zhd_listener_is_tls(unsigned i)
{
	return g_listeners[i].tls != NULL; /* all zeros with the shorthand */
}

/* The IP address a socket is bound to, as text ("?" if it has none). */
static void local_address(int fd, char *out, size_t cap)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	const void *ip = NULL;
	if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
		ip = ss.ss_family == AF_INET ? (void *)&((struct sockaddr_in *)&ss)->sin_addr
		   : ss.ss_family == AF_INET6 ? (void *)&((struct sockaddr_in6 *)&ss)->sin6_addr
					      : NULL;
	if (ip == NULL || inet_ntop(ss.ss_family, ip, out, (socklen_t)cap) == NULL)
		snprintf(out, cap, "?");
}

/* Sockets from LISTEN_FDS (systemd, or the process we take over from): they are the
 * listeners, whatever --listen and --port say. */
static int inherited_setup(struct zhd_settings *s, const struct zhd_inherited *in, size_t n)
{
	bool tls = false;
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		tls |= in[i].kind == ZHD_SOCK_HTTPS;
	if (s->n_listen || s->address_given)
		zhd_log(ZHD_INFO, "listening on the sockets from LISTEN_FDS; --listen, "
				  "--listen-tls, --address and --port do not apply");
	if (tls && tls_start(s) < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (in[i].kind == ZHD_SOCK_METRICS)
			continue; /* --metrics-listen's (monitoring.c) */
		local_address(in[i].fd, g_inherited_addr[k], sizeof g_inherited_addr[k]);
		g_listeners[k] = (zh_listener_t){.address = g_inherited_addr[k],
						 .tls = in[i].kind == ZHD_SOCK_HTTPS ? g_tls : NULL,
						 .inherited = true,
						 .fd = in[i].fd};
		k++;
	}
	if (k == 0) {
		zhd_log(ZHD_ERROR, "LISTEN_FDS: no HTTP socket among them");
		return -1;
	}
	s->cfg.listeners = g_listeners;
	s->cfg.nlisteners = (unsigned)k;
	return 0;
}

int zhd_listeners_setup(struct zhd_settings *s)
{
	size_t n = 0, ninherited;
	const struct zhd_inherited *inherited = zhd_inherited(&ninherited);
	bool tls = false;
	for (size_t i = 0; i < s->n_listen; i++)
		tls |= s->listen[i].tls;
	for (size_t i = 0; i < ninherited; i++)
		tls |= inherited[i].kind == ZHD_SOCK_HTTPS;
	if (!tls && (s->n_tls_cert || s->n_tls_key)) {
		zhd_log(ZHD_ERROR, "--tls-cert and --tls-key need a --listen-tls listener");
		return -1;
	}
	if (ninherited)
		return inherited_setup(s, inherited, ninherited);
	if (s->n_listen == 0)
		return 0; /* the shorthand: zh_config_t's address and port */
	if (tls && tls_start(s) < 0)
		return -1;
	if (s->address_given)
		g_listeners[n++] = (zh_listener_t){.address = s->cfg.address, .port = s->cfg.port};
	for (size_t i = 0; i < s->n_listen; i++)
		g_listeners[n++] = (zh_listener_t){.address = s->listen[i].addr,
						   .port = s->listen[i].port,
						   .tls = s->listen[i].tls ? g_tls : NULL};
	if (n > ZHD_LISTEN_MAX) {
		zhd_log(ZHD_ERROR, "at most %d listeners in all", ZHD_LISTEN_MAX);
		return -1;
	}
	s->cfg.listeners = g_listeners;
	s->cfg.nlisteners = (unsigned)n;
	return 0;
}

void zhd_listeners_describe(const zh_server_t *srv, const struct zhd_settings *s, char *out,
			    size_t cap)
{
	size_t n = 0;
	unsigned count = s->cfg.nlisteners ? s->cfg.nlisteners : 1;
	char url[128], last[128] = "";
	out[0] = '\0';
	for (unsigned i = 0; i < count && n < cap; i++) {
		const char *addr = s->cfg.nlisteners ? g_listeners[i].address : s->cfg.address;
		bool is_tls = s->cfg.nlisteners && g_listeners[i].tls;
		const char *v6 = strchr(addr, ':') ? "[" : "";
		int k = snprintf(url, sizeof url, "%s://%s%s%s:%u/", is_tls ? "https" : "http", v6,
				 addr, *v6 ? "]" : "", (unsigned)zh_server_listener_port(srv, i));
		if (k < 0 || !strcmp(url, last)) /* inherited: one socket per old worker */
			continue;
		memcpy(last, url, sizeof url);
		k = snprintf(out + n, cap - n, "%s%s", n ? " " : "", url);
		if (k < 0)
			break;
		n += (size_t)k;
	}
}

void zhd_tls_reload(void)
{
	char why[256] = "";
	int err;
	if (g_tls == NULL)
		return;
	if ((err = lib.reload(g_tls, why, sizeof why)) < 0)
		zhd_log(ZHD_ERROR, "SIGHUP: TLS certificates not reloaded, the old ones stay: %s",
			why[0] ? why : strerror(-err));
	else
		zhd_log(ZHD_INFO, "SIGHUP: TLS certificates reloaded");
}

void zhd_tls_metrics(zh_response_t *resp)
{
	char buf[8192];
	size_t n;
	if (g_tls == NULL)
		return;
	n = lib.metrics_text(g_tls, buf, sizeof buf);
	/* a failed write fails the response (a 500 if unsent): nothing more to do here */
	if (n >= sizeof buf || zh_write(resp, buf, n) < 0)
		return;
}

void zhd_tls_free(void)
{
	if (g_tls)
		lib.free_(g_tls);
	g_tls = NULL;
	/* the library stays mapped: OpenSSL's exit handlers live in it */
}
