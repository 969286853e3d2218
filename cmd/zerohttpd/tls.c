/* tls.c — the daemon's listeners: --address/--port (the one-plain-listener shorthand),
 * --listen and --listen-tls (repeatable), and the TLS settings their HTTPS listeners share
 * (--tls-cert/--tls-key pairs chosen by SNI, --tls-min, --tls-ticket-rotate). SIGHUP
 * reloads the certificates: new handshakes use the new ones, a bad file keeps the old
 * ones and the log says why.
 */
#include "zerohttpd.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static zh_tls_t *g_tls;
static zh_listener_t g_listeners[ZHD_LISTEN_MAX + 1];

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
	/* before OpenSSL allocates anything: its allocations go to per-thread pools */
	if ((err = zh_tls_memory_init()) < 0)
		zhd_log(ZHD_WARN, "OpenSSL allocations stay with malloc: %s", strerror(-err));
	if ((g_tls = zh_tls_new(&s->tls, &err)) == NULL) {
		zhd_log(ZHD_ERROR, "cannot set up TLS: %s", strerror(-err));
		return -1;
	}
	for (size_t i = 0; i < s->n_tls_cert; i++) {
		why[0] = '\0';
		if ((err = zh_tls_add_cert(g_tls, s->tls_cert[i], s->tls_key[i], why, sizeof why)) <
		    0) {
			zhd_log(ZHD_ERROR, "cannot use --tls-cert %s --tls-key %s: %s", s->tls_cert[i],
				s->tls_key[i], why[0] ? why : strerror(-err));
			return -1;
		}
	}
	return 0;
}

int zhd_listeners_setup(struct zhd_settings *s)
{
	size_t n = 0;
	bool tls = false;
	for (size_t i = 0; i < s->n_listen; i++)
		tls |= s->listen[i].tls;
	if (!tls && (s->n_tls_cert || s->n_tls_key)) {
		zhd_log(ZHD_ERROR, "--tls-cert and --tls-key need a --listen-tls listener");
		return -1;
	}
	if (s->n_listen == 0)
		return 0; /* the shorthand: zh_config_t's address and port */
	if (tls && tls_start(s) < 0)
		return -1;
	if (s->address_given)
		g_listeners[n++] = (zh_listener_t){s->cfg.address, s->cfg.port, NULL};
	for (size_t i = 0; i < s->n_listen; i++)
		g_listeners[n++] = (zh_listener_t){s->listen[i].addr, s->listen[i].port,
						   s->listen[i].tls ? g_tls : NULL};
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
	out[0] = '\0';
	for (unsigned i = 0; i < count && n < cap; i++) {
		const char *addr = s->cfg.nlisteners ? g_listeners[i].address : s->cfg.address;
		bool is_tls = s->cfg.nlisteners && g_listeners[i].tls;
		const char *v6 = strchr(addr, ':') ? "[" : "";
		int k = snprintf(out + n, cap - n, "%s%s://%s%s%s:%u/", i ? " " : "",
				 is_tls ? "https" : "http", v6, addr, *v6 ? "]" : "",
				 (unsigned)zh_server_listener_port(srv, i));
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
	if ((err = zh_tls_reload(g_tls, why, sizeof why)) < 0)
		zhd_log(ZHD_ERROR, "SIGHUP: TLS certificates not reloaded, the old ones stay: %s",
			why[0] ? why : strerror(-err));
	else
		zhd_log(ZHD_INFO, "SIGHUP: TLS certificates reloaded");
}

void zhd_tls_free(void)
{
	zh_tls_free(g_tls);
	g_tls = NULL;
}
