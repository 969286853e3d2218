/* upstream_int.h — the reverse proxy's pieces shared between upstream.c (pools, balancing,
 * the exchange) and upstream_parse.c (the upstream response parser, the chunked decoder and
 * the request head writer). Outside the wall: zerohttp.h and ext.h only. The parser entry
 * points are also called by tests/test_upstream.c and the fuzz target.
 */
#ifndef ZH_UPSTREAM_INT_H
#define ZH_UPSTREAM_INT_H

#include "ext.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum {
	ZH__UP_FIELDS_MAX = 100, /* response fields; more: 502 */
	ZH__UP_TRAILER_MAX = 8192, /* chunked trailer bytes skipped at most */
};

/* How the upstream's response body is delimited (RFC 9112 §6.3). */
enum zh__uframing {
	ZH__UF_NONE = 0,    /* no body: HEAD, 1xx, 204, 304, or Content-Length 0 */
	ZH__UF_LENGTH = 1,  /* Content-Length bytes */
	ZH__UF_CHUNKED = 2, /* Transfer-Encoding: chunked */
	ZH__UF_CLOSE = 3,   /* until the upstream closes (neither field) */
};

typedef struct zh__ufield {
	uint32_t noff, voff; /* offsets into the head */
	uint16_t nlen;
	uint32_t vlen;
} zh__ufield_t;

/* A parsed upstream response head: offsets into the caller's buffer. */
typedef struct zh__uhead {
	int status;
	int minor;	    /* HTTP/1.minor */
	uint32_t head_len;  /* bytes of the head, its final empty line included */
	uint32_t nfields;
	int framing;	    /* enum zh__uframing */
	uint64_t length;    /* ZH__UF_LENGTH */
	bool keep_alive;    /* the connection may carry another request after this one */
	zh__ufield_t f[ZH__UP_FIELDS_MAX];
} zh__uhead_t;

/* Parses one response head at buf[0..len). Returns its length (> 0) with *h filled, 0 when
 * more bytes are needed, -1 when it is malformed or its framing is ambiguous: obs-fold, a
 * bare LF, a space before a colon, controls in a value, both Content-Length and
 * Transfer-Encoding, differing Content-Lengths, a coding other than a final chunked, a bad
 * status line. A 1xx head (h->status < 200) is returned like any other: the caller skips
 * it (100, 103) or refuses it (101). head_request: the request was HEAD (no body). */
int zh__uresp_parse(const char *buf, size_t len, bool head_request, zh__uhead_t *h);

/* Chunked body decoder (RFC 9112 §7.1), resumable across reads. Trailer fields are
 * checked and dropped. */
typedef struct zh__uchunk {
	uint8_t st;
	uint8_t digits;
	uint32_t trailer;  /* trailer bytes seen */
	uint64_t left;	   /* data bytes left in the current chunk */
} zh__uchunk_t;
typedef struct zh__urun {
	uint32_t off, len;
} zh__urun_t;
/* Feeds p[0..n): appends the data runs found (offsets into p) to runs[*nruns..cap). Returns
 * the bytes consumed (less than n only when runs filled up), or -1 on malformed framing.
 * zh__uchunk_done() says the last chunk and its trailers have been read; bytes after that
 * are not consumed. */
ssize_t zh__uchunk_feed(zh__uchunk_t *d, const char *p, size_t n, zh__urun_t *runs,
			unsigned *nruns, unsigned cap);
bool zh__uchunk_done(const zh__uchunk_t *d);

/* What the upstream request head carries besides the client's own fields. */
typedef struct zh__ureq_extra {
	const char *host;	/* Host sent upstream: NULL keeps the client's */
	size_t host_len;
	const char *client;	/* the client's address as text */
	bool client_v6;
	bool has_body;		/* send Content-Length: body_len */
	uint64_t body_len;
} zh__ureq_extra_t;
/* Writes the request head for the upstream into out[0..cap), re-serialized from the
 * parsed request: method, origin-form target, HTTP/1.1; the client's fields without the
 * hop-by-hop ones (Connection and the fields it names, Keep-Alive, TE, Trailer,
 * Transfer-Encoding, Upgrade, Proxy-*), Expect (answered here) and the framing
 * (Content-Length is written from the body), then Forwarded, X-Forwarded-For, -Proto,
 * -Host and Via. Returns the length, or -ENOSPC when it does not fit. */
ssize_t zh__ureq_write(const zh_request_t *req, const zh__ureq_extra_t *x, char *out,
		       size_t cap);
/* Is the field name hop-by-hop for a proxy (RFC 9110 §7.6.1), Connection's own list aside? */
bool zh__uhop_by_hop(const char *name, size_t len);

#endif
