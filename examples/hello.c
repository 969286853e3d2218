/* hello.c — the README's handler example, built by `make test` against the installed
 * library (pkg-config), so the README cannot drift from the API. */
#include <zerohttp.h>

static void hello(zh_request_t *req, zh_response_t *resp, void *arg)
{
	zh_slice_t name;
	(void)arg;
	if (!zh_req_header(req, "X-Name", &name))          /* a slice of the receive buffer */
		name = (zh_slice_t){"world", 5};
	zh_resp_header_set(resp, "Content-Type", "text/plain");
	zh_write_static(resp, "hello, ", 7);               /* static: sent from .rodata */
	zh_write_ref(resp, name.ptr, name.len, NULL, NULL); /* request memory: no copy */
}                                                       /* head + 2 parts: one writev */

int main(void)
{
	zh_config_t cfg;
	zh_config_init(&cfg);                               /* 127.0.0.1:8080, one worker per CPU */
	zh_server_t *srv = zh_server_new(&cfg, NULL);
	if (!srv || zh_server_route(srv, ZH_GET, "/hello", 0, hello, NULL) < 0)
		return 1;
	int r = zh_server_run(srv);                         /* until zh_server_stop() */
	zh_server_free(srv);
	return r < 0;
}
