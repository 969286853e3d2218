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
	uint64_t length;    /* the Content-Length (has_length), also when there is no body */
	bool has_length;
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
	bool chunked;		/* send Transfer-Encoding: chunked instead (a body of no
				   known length, streamed) */
	uint64_t body_len;
	zh_slice_t upgrade;	/* the client's Upgrade value, passed on: a tunnel is wanted */
} zh__ureq_extra_t;
/* Writes the request head for the upstream into out[0..cap), re-serialized from the
 * parsed request: method, origin-form target, HTTP/1.1; the client's fields without the
 * hop-by-hop ones (Connection and the fields it names, Keep-Alive, TE, Trailer,
 * Transfer-Encoding, Upgrade, Proxy-*), Expect (answered here) and the framing
 * (Content-Length or chunked, written from x), then Forwarded, X-Forwarded-For, -Proto,
 * -Host and Via. Returns the length, or -ENOSPC when it does not fit. */
ssize_t zh__ureq_write(const zh_request_t *req, const zh__ureq_extra_t *x, char *out,
		       size_t cap);
/* Is the field name hop-by-hop for a proxy (RFC 9110 §7.6.1), Connection's own list aside? */
bool zh__uhop_by_hop(const char *name, size_t len);

/* ---- the proxy's state (upstream.c, upstream_setup.c) ------------------------------------ */

#include <pthread.h>
#include <sys/socket.h>

enum {
	ZH__UP_BUF = 65536, /* per upstream connection: request head, then response head + body */
	ZH__UP_MAX = 64,    /* upstreams per proxy (a bitmask of the tried ones) */
	/* A Content-Length body with at least this much left after the head goes from the
	 * upstream socket to a pipe to the client socket by splice, never through user space
	 * (measured: docs/performance.md, Reverse proxy) */
	ZH__UP_SPLICE_MIN = 64 << 10,
	ZH__UP_PIPE = 256 << 10, /* pipe size asked for (F_SETPIPE_SZ) */
};

/* UC_SENDING: the head and the body bytes that came with it; UC_REQ_BODY: the rest of the
 * request body; UC_HEAD: waiting for the response head; UC_BODY: its body. */
enum uc_state { UC_FREE, UC_CONNECTING, UC_SENDING, UC_REQ_BODY, UC_HEAD, UC_BODY, UC_DONE,
		UC_IDLE, UC_DEAD, UC_TUNNEL };

/* One direction of an upgrade tunnel (upstream_tunnel.c): bytes read in user space before
 * the tunnel began (in the connection's buf) go first, then src -> pipe -> dst by splice. */
typedef struct tdir {
	uint32_t off, len;  /* pending bytes in buf */
	uint32_t in_pipe;   /* spliced in, not yet out */
	bool eof, shut;	    /* src ended; dst's write side shut */
} tdir_t;

/* The tunnel of a connection that switched protocols (101): its client socket and the
 * second pipe. up: upstream -> client (through the connection's pipe); down: the other. */
typedef struct tunnel {
	zh__watch_t watch; /* the client socket's */
	struct uconn *uc;
	int cfd;
	int pipe[2];
	tdir_t up, down;
	uint64_t active_ms; /* last bytes moved: the idle timeout runs from there */
	struct tunnel *next, *prev;
} tunnel_t;

struct pw;
struct ex;

/* An upstream connection. Owned by its worker; its buffer stays allocated while queued
 * references into it are pending (refs), whatever happened to the exchange. */
typedef struct uconn {
	zh__watch_t watch; /* first: the epoll tag points here */
	struct pw *pw;
	struct ex *ex;	   /* the exchange using it; NULL when idle or orphaned */
	struct uconn *next, *prev;
	char *buf;
	int fd;
	int pipe[2];	   /* splice: read end, write end; -1 until a large body needs it */
	uint32_t pipe_cap;
	uint32_t in_pipe_req; /* request body bytes spliced into the pipe, not yet sent */
	uint8_t state;
	bool reusable;	   /* UC_DONE: the response was read whole, keep-alive allowed */
	bool probe;	   /* a health check's connection (upstream_health.c), never pooled */
	uint16_t up;
	uint32_t refs;	   /* zh_write_ref releases still to come */
	uint32_t len;	   /* bytes in buf */
	uint64_t sent;	   /* request bytes sent (head and body: max_body may be large) */
	uint32_t head_len; /* request head bytes in buf */
	uint64_t idle_since_ms;
	tunnel_t t;	   /* UC_TUNNEL */
} uconn_t;

/* One upstream as one worker sees it. Counters: one writer (the worker), read on scrape. */
typedef struct upw {
	uconn_t *idle_head, *idle_tail; /* most recently used first */
	unsigned nidle, nopen, outstanding;
	uint64_t down_until_ms;		/* passive failure detection */
	/* active health checks (upstream_health.c): the probe in flight, when the next one
	 * is due or this one times out, the runs of passes and failures */
	struct uconn *probe;
	uint64_t probe_at_ms;
	uint8_t pass_run, fail_run;
	bool hc_down;
	uint64_t requests, opened, connect_failures, timeouts, bad_responses, retries,
		responses, latency_us_sum;
	uint64_t tunnels, tunnels_open; /* upgrade tunnels: opened, open now */
} upw_t;

typedef struct pw {
	zh_proxy_t *p;
	zh__worker_t *w;
	uconn_t *free;
	unsigned rr;
	bool no_idle; /* no periodic hook: idle connections are not kept */
	uint64_t unavailable; /* 503: nothing up or every pool full */
	upw_t *ups;
	zh__uhead_t head; /* scratch: parsed then delivered at once */
	tunnel_t *tunnels; /* open upgrade tunnels (upstream_tunnel.c) */
	uint64_t tunnel_due_ms; /* no tunnel can be idle past its timeout before this */
} pw_t;

struct upstream {
	struct sockaddr_storage addr;
	socklen_t alen;
	char url[256];
	char authority[262]; /* host[:port] as written in the URL: the default Host */
};

struct zh_proxy {
	zh_proxy_options_t o;
	const zh_server_t *srv;
	unsigned n_up, nworkers, per_worker;
	struct upstream *up;
	pw_t *pw;
	uconn_t *conns;
	char *bufs;
	size_t bufs_len;
	char host[256];
	char health_path[256];
	char upgrades[256]; /* upgrade_protocols, copied */
	char name[128]; /* the first pattern routed to it: the metrics' proxy label */
	zh_proxy_t *next; /* every proxy, for the metrics (created before the servers run) */
};

#define CNT(field) __atomic_store_n(&(field), __atomic_load_n(&(field), __ATOMIC_RELAXED) + 1, \
				    __ATOMIC_RELAXED)

/* The exchange: in zh_resp_state (valid until the response ends); found again by the done
 * hook through the route middleware's slot. */
typedef struct ex {
	zh_deferred_t token; /* the deferred response, then the parked producer */
	zh_timer_t timer;
	pw_t *pw;
	uconn_t *uc;
	zh_request_t *req;   /* alive while the response is deferred or produced */
	zh_slice_t body;
	uint64_t tried;	     /* upstreams tried, as bits */
	uint64_t left;	     /* ZH__UF_LENGTH: body bytes still to come */
	uint64_t started_us;
	zh__uchunk_t chunk;
	uint32_t hoff;	     /* where the final head starts in uc->buf (after 1xx heads) */
	uint16_t status;     /* an error to answer */
	uint16_t retry_s;    /* its Retry-After, for a 503 */
	uint8_t framing;
	bool active, head_req, idempotent, parked, failed, splicing;
	bool upgrade; /* the client asked to switch protocols: passed on (a tunnel) */
	/* the request body beyond `body` (which came with the head), streamed upstream
	 * (upstream_request.c): bytes read from the client wait in buf[poff..plen) or, spliced,
	 * in the connection's pipe (uc->in_pipe_req) until the upstream socket takes them */
	uint8_t req_mode;   /* REQ_UNDECIDED, REQ_COPY, REQ_SPLICE */
	bool req_more;	    /* the client has more body bytes to send */
	bool req_chunked;   /* sent upstream chunked (the client's length is not known) */
	bool req_cut;	    /* the upstream answered before the body was all sent */
	bool wait_out;	    /* the upstream socket was full: waiting for EPOLLOUT */
	bool up_in;	    /* the upstream sent something while the body was going */
	bool head_ready;    /* its final head (2xx, 3xx) came whole before the body had gone:
			       buf[hoff..len), delivered once the body has */
	uint32_t poff, plen;
	uint64_t req_read;  /* body bytes read from the client (the limit: max_body) */
} ex_t;
_Static_assert(sizeof(ex_t) <= ZH_RESP_STATE_SIZE, "the exchange lives in zh_resp_state");

enum { REQ_UNDECIDED, REQ_COPY, REQ_SPLICE };

/* upstream_request.c: the request side.
 * zh__ureq_send: the head and the body bytes that came with it (ex->body): 1 all sent, 0
 *   the socket is full, < 0 an error (-errno).
 * zh__ureq_body_fill (from a handler or continuation: it reads the client): reads the
 *   body's next bytes into the pipe or buf[poff..plen), after the response bytes read so
 *   far (buf[0..len)), chunk-framed when req_chunked, clearing req_more at the end: 1, or
 *   what zh_body_read returns (< 0), -EMSGSIZE past max_body, -ENOBUFS when a response
 *   head leaves no room. zh__ureq_body_flush sends what fill read: 1 all, 0 the socket is full,
 *   < 0 an error. zh__ureq_body_stop drops what was not sent (the upstream answered).
 * zh__client_text: the peer's address as text for the forwarding fields.
 * zh__uc_pipe_ready: the connection's pipe for splice, made once (false: none);
 * zh__uc_pipe_close closes it. */
int zh__ureq_send(ex_t *ex, uconn_t *uc);
ssize_t zh__ureq_body_fill(ex_t *ex, uconn_t *uc, zh_request_t *req, uint64_t max_body);
int zh__ureq_body_flush(ex_t *ex, uconn_t *uc);
void zh__ureq_body_stop(ex_t *ex, uconn_t *uc);
void zh__client_text(const zh_request_t *req, char out[64], bool *v6);
bool zh__uc_pipe_ready(uconn_t *uc);
void zh__uc_pipe_close(uconn_t *uc);
/* upstream_request.c, balancing: the next upstream for ex (its index), or -503 / -502 (see
 * there); is every upstream down? */
int zh__pick(ex_t *ex, unsigned *retry_s);
bool zh__all_down(const pw_t *pw);

/* The upstream sockets' events (upstream.c), the watch of every connection slot. */
void zh__uconn_event(zh__worker_t *w, zh__watch_t *x, uint32_t events);
/* The worker's periodic hook (upstream_setup.c; arg: the server): expires idle connections
 * of every proxy of the server through zh__proxy_pool_tick (upstream.c). */
uint64_t zh__proxies_tick(zh__worker_t *w, bool final, void *arg);
uint64_t zh__proxy_pool_tick(pw_t *pw, zh__worker_t *w, bool final);
/* upstream.c: a new nonblocking connection (NULL with *err), and closing one. */
uconn_t *zh__uc_open(pw_t *pw, unsigned i, int *err);
void zh__uc_close(uconn_t *uc);
/* upstream_health.c: starts, times out and ends the active health checks of pw's
 * upstreams (from the periodic hook): the zh__ext_now_ms time of the next thing due, or 0.
 * zh__probe_event: a probe connection's socket events. zh__up_usable: neither ejected by a
 * failed connect nor by the health checks. */
uint64_t zh__health_tick(pw_t *pw, zh__worker_t *w, bool final);
/* upstream_tunnel.c: the zh_resp_upgrade callback of a proxied 101 (arg: the connection,
 * UC_TUNNEL, its response's bytes after the 101 head at buf[t.up.off..+t.up.len)); the
 * tunnel's events; the idle timeout and the worker's exit (the time of the next check) */
void zh__tunnel_start(int fd, const void *early, size_t early_len, void *arg);
void zh__tunnel_upstream_event(uconn_t *uc);
uint64_t zh__tunnel_tick(pw_t *pw, zh__worker_t *w, bool final);
/* upstream_setup.c: is every protocol of the comma-separated list in upgrade_protocols
 * (and none h2c)? */
bool zh__proxy_upgrade_allowed(const zh_proxy_t *p, zh_slice_t offered);
void zh__probe_event(uconn_t *uc, uint32_t events);
/* down_until_ms and hc_down are read by /metrics on another thread: relaxed stores */
static inline void zh__up_down_until(upw_t *u, uint64_t ms)
{
	__atomic_store_n(&u->down_until_ms, ms, __ATOMIC_RELAXED);
}
static inline void zh__up_hc_down(upw_t *u, bool down)
{
	__atomic_store_n(&u->hc_down, down, __ATOMIC_RELAXED);
}
static inline bool zh__up_usable(const upw_t *u, uint64_t now)
{
	return u->down_until_ms <= now && !u->hc_down;
}

#endif
