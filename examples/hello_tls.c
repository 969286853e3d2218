/* hello_tls.c — examples/hello.c's handler over HTTPS: a plain listener on 8080 and a TLS
 * one on 8443 (cert.pem and key.pem in the current directory, or the two arguments).
 * Built by `make install-check` with `pkg-config zerohttp-tls` (which brings zerohttp and
 * OpenSSL), while hello.c, with `pkg-config zerohttp`, links libc and pthread only. */
#include <stdio.h>
#include <zerohttp.h>

static void hello(zh_request_t *req, zh_response_t *resp, void *arg)
{
	(void)req;
	(void)arg;
	(void)!zh_resp_header_set(resp, "Content-Type", "text/plain");
	zh_write_static(resp, "hello, world\n", 13);
}

int main(int argc, char **argv)
{
	zh_config_t cfg;
	zh_tls_options_t topt;
	char why[256];
	int err = 0;
	zh_tls_options_init(&topt);                         /* TLS 1.2 and 1.3 */
	zh_tls_t *tls = zh_tls_new(&topt, &err);
	if (!tls || zh_tls_add_cert(tls, argc > 2 ? argv[1] : "cert.pem",
				    argc > 2 ? argv[2] : "key.pem", why, sizeof why) < 0) {
		fprintf(stderr, "hello_tls: %s\n", tls ? why : "no TLS");
		return 1;
	}
	zh_listener_t ls[] = {{.address = "127.0.0.1", .port = 8080},
			      {.address = "127.0.0.1", .port = 8443, .tls = tls}};
	zh_config_init(&cfg);
	cfg.listeners = ls;
	cfg.nlisteners = 2;
	zh_server_t *srv = zh_server_new(&cfg, &err);
	if (!srv || zh_server_route(srv, ZH_GET, "/hello", 0, hello, NULL) < 0)
		return 1;
	int r = zh_server_run(srv);
	zh_server_free(srv);
	zh_tls_free(tls);                                   /* after the server has stopped */
	return r < 0;
}
