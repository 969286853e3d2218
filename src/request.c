/* request.c — the zh_req_* accessors: views into the connection's input buffer (slices
 * borrowed from the request, valid until its response is finished; nothing is copied).
 */
#include "internal.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

static zh_slice_t span(const zh_request_t *req, zh__span_t s)
{
	return (zh_slice_t){req->base + s.off, s.len};
}

int zh_req_peer_addr(const zh_request_t *req, uint8_t addr[16])
{
	const zh__conn_t *c = req->ctx->conn;
	memcpy(addr, c->peer, c->peer_v6 ? 16 : 4);
	return c->peer_v6 ? AF_INET6 : AF_INET;
}

size_t zh_req_peer_str(const zh_request_t *req, char *buf, size_t cap)
{
	uint8_t a[16];
	int family = zh_req_peer_addr(req, a);
	if (cap == 0 || inet_ntop(family, a, buf, (socklen_t)cap) == NULL) {
		if (cap)
			buf[0] = '\0';
		return 0;
	}
	return strlen(buf);
}

int zh_req_parsed(const zh_request_t *req) { return req->ctx->in_request; }
zh_slice_t zh_req_method(const zh_request_t *req) { return span(req, req->h.method); }
unsigned zh_req_method_bit(const zh_request_t *req) { return req->h.method_bit; }
zh_slice_t zh_req_target(const zh_request_t *req) { return span(req, req->h.target); }
/* RFC 9112 §3.2.2: absolute-form with an empty path means "/" */
zh_slice_t zh_req_path(const zh_request_t *req)
{
	/* "*" and absolute-form targets with no path mean "/"; a request that never parsed has
	 * none (the done hooks of library answers see empty slices) */
	if (req->h.path.len)
		return span(req, req->h.path);
	return req->ctx->in_request ? (zh_slice_t){"/", 1} : (zh_slice_t){"", 0};
}
zh_slice_t zh_req_query(const zh_request_t *req) { return span(req, req->h.query); }
zh_slice_t zh_req_host(const zh_request_t *req) { return span(req, req->h.host); }
int zh_req_version(const zh_request_t *req) { return 10 + req->h.minor; }
size_t zh_req_header_count(const zh_request_t *req) { return req->h.nfields; }

int zh_req_header_at(const zh_request_t *req, size_t i, zh_slice_t *name, zh_slice_t *value)
{
	if (i >= req->h.nfields)
		return -ERANGE;
	*name = span(req, req->fields[i].name);
	*value = span(req, req->fields[i].value);
	return 0;
}

int zh_req_header(const zh_request_t *req, const char *name, zh_slice_t *value)
{
	size_t nlen = strlen(name);
	for (uint32_t i = 0; i < req->h.nfields; i++) {
		const zh__field_t *f = &req->fields[i];
		if (f->name.len == nlen && zh__ieq(req->base + f->name.off, name, nlen)) {
			*value = span(req, f->value);
			return 1;
		}
	}
	return 0;
}
