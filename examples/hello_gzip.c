/* hello_gzip.c — a feature library in use: examples/hello.c's handler behind the gzip
 * middleware. Built by `make install-check` with `pkg-config zerohttp-gzip` (which brings
 * zerohttp and zlib), while hello.c, with `pkg-config zerohttp`, links libc and pthread only. */
#include <zerohttp.h>

static void hello(zh_request_t *req, zh_response_t *resp, void *arg)
{
	(void)req;
	(void)arg;
	(void)!zh_resp_header_set(resp, "Content-Type", "text/plain");
	zh_write_static(resp, "hello, world\n", 13);
}

int main(void)
{
	zh_config_t cfg;
	zh_gzip_options_t gzo;
	int err = 0;
	zh_config_init(&cfg);
	zh_gzip_options_init(&gzo);                         /* level 6, bodies of 256 bytes up */
	zh_server_t *srv = zh_server_new(&cfg, NULL);
	zh_gzip_t *gz = srv ? zh_gzip_new(srv, &gzo, &err) : NULL;
	if (!gz)
		return 1;
	zh_middleware_t mw = zh_gzip_middleware(gz);        /* compresses when the client allows */
	if (zh_server_use(srv, &mw) < 0 || zh_server_route(srv, ZH_GET, "/hello", 0, hello, NULL) < 0)
		return 1;
	int r = zh_server_run(srv);
	zh_server_free(srv);
	zh_gzip_free(gz);                                   /* after the server has stopped */
	return r < 0;
}
