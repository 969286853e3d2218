/* proxy.c — zerohttpd's --proxy PREFIX=URL[,URL...]: one zh_proxy_t per option, routed as
 * a prefix for every method (see zh_proxy_new in zerohttp.h for what is forwarded).
 */
#include "zerohttpd.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

enum { URLS_MAX = 64 };

static zh_proxy_t *proxies[ZHD_UPSTREAM_ROUTES_MAX];
static size_t n_proxies;

/* One "PREFIX=URL,URL": the URLs split in a copy (start-up only), freed once the proxy has
 * copied them. */
static int add_one(zh_server_t *srv, const struct zhd_settings *s, const char *v)
{
	const char *eq = strchr(v, '=');
	char *prefix = strndup(v, (size_t)(eq - v)), *list = strdup(eq + 1), *save = NULL;
	const char *urls[URLS_MAX];
	zh_proxy_options_t o;
	int err = -ENOMEM;
	size_t n = 0;
	zh_proxy_options_init(&o);
	o.balance = s->proxy_balance;
	if (s->proxy_connect_ms)
		o.connect_timeout_ms = s->proxy_connect_ms;
	if (s->proxy_header_ms)
		o.header_timeout_ms = s->proxy_header_ms;
	if (s->proxy_idle_ms)
		o.idle_timeout_ms = s->proxy_idle_ms;
	if (s->proxy_upgrades)
		o.upgrade_protocols = s->proxy_upgrades;
	if (s->proxy_tunnel_ms)
		o.tunnel_idle_timeout_ms = s->proxy_tunnel_ms;
	if (s->proxy_keepalive_ms)
		o.keepalive_timeout_ms = s->proxy_keepalive_ms;
	if (s->proxy_fail_ms)
		o.fail_timeout_ms = s->proxy_fail_ms;
	o.health_path = s->proxy_health_path;
	if (s->proxy_health_interval_ms) {
		o.health_interval_ms = s->proxy_health_interval_ms;
		if (o.health_timeout_ms > o.health_interval_ms)
			o.health_timeout_ms = o.health_interval_ms;
	}
	if (s->proxy_max_conns) {
		o.max_conns = s->proxy_max_conns;
		if (o.max_idle > o.max_conns)
			o.max_idle = o.max_conns;
	}
	if (prefix && list) {
		err = 0;
		for (char *t = strtok_r(list, ",", &save); t && !err; t = strtok_r(NULL, ",", &save))
			if (n == URLS_MAX)
				err = -E2BIG;
			else
				urls[n++] = t;
	}
	if (!err) {
		o.upstreams = urls;
		o.n_upstreams = n;
		proxies[n_proxies] = zh_proxy_new(srv, &o, &err);
		if (proxies[n_proxies] && (err = zh_proxy_route(srv, prefix, proxies[n_proxies])) < 0)
			zh_proxy_free(proxies[n_proxies]);
		else if (proxies[n_proxies])
			n_proxies++;
	}
	if (err < 0)
		zhd_log(ZHD_ERROR, "--proxy %s: %s", v,
			err == -EINVAL	   ? "not a valid prefix or http://HOST:PORT list"
			: err == -EPROTONOSUPPORT ? "https upstreams are not supported"
			: err == -EEXIST   ? "the prefix is routed already"
					   : strerror(-err));
	free(prefix);
	free(list);
	return err < 0 ? -1 : 0;
}

int zhd_proxy_start(zh_server_t *srv, const struct zhd_settings *s, bool *claims_root)
{
	*claims_root = false;
	for (size_t i = 0; i < s->n_proxies; i++) {
		if (strncmp(s->proxies[i], "/=", 2) == 0)
			*claims_root = true;
		if (add_one(srv, s, s->proxies[i]) < 0)
			return -1;
	}
	return 0;
}

void zhd_proxy_free(void)
{
	for (size_t i = 0; i < n_proxies; i++)
		zh_proxy_free(proxies[i]);
	n_proxies = 0;
}
