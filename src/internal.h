/* internal.h — what the core's src/ files share. Never installed, and never included by the
 * features (json.c, protobuf.c, mw_*.c, static.c, metrics.c, accesslog.c): they see ext.h.
 *
 * Memory map of one worker (all carved from one mmap at zh_server_new()):
 *   conns[max_connections]   small fixed slots (72 B); an idle connection holds only this
 *   ctx pool                 I/O contexts: receive buffer, send area, iovec queue, request
 *                            and response state; lent while a connection has bytes in flight
 *   large pool               64 KiB buffers: long heads, mid-size bodies, send overflow
 *   body pool                max_body buffers: whole request bodies that do not fit above
 * Free lists are LIFO so the hottest buffers are reused first and the rest stay untouched
 * (and out of RSS).
 */
#ifndef ZH_INTERNAL_H
#define ZH_INTERNAL_H

#include "zerohttp.h"
#include "ext.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* The hot-path syscalls, without glibc's cancellation-point wrappers: read, writev and
 * epoll_wait enable and disable asynchronous cancellation around every call, 87 instructions
 * per keep-alive request (callgrind). Workers are never cancelled, so call the kernel
 * directly. Same return and errno conventions. */
static inline ssize_t zh__sys_read(int fd, void *buf, size_t len)
{
	return syscall(SYS_read, fd, buf, len);
}
static inline ssize_t zh__sys_writev(int fd, const struct iovec *iov, int cnt)
{
	return syscall(SYS_writev, fd, iov, cnt);
}
static inline int zh__sys_epoll_wait(int ep, struct epoll_event *ev, int max, int timeout)
{
	return (int)syscall(SYS_epoll_wait, ep, ev, max, timeout);
}

/* ---- transport (transport_plain.c; the seam is described in docs/design.md) ------------ */

typedef struct zh__conn zh__conn_t;

/* What makes a blocked operation progress: the transport's answer after one of its calls
 * returned -EAGAIN. A plain socket's send waits for writability and its recv for input;
 * TLS may need input to finish a write (a record or KeyUpdate to read first) or output
 * to finish a read (a handshake message to send). */
enum zh__want { ZH__WANT_READ = 1u << 0, ZH__WANT_WRITE = 1u << 1 };

/* How a connection moves bytes. All calls are non-blocking and return bytes moved (> 0),
 * 0 (recv: end of input), or -errno (-EAGAIN: nothing now; then wants() says which
 * readiness to wait for). EINTR is retried inside. Buffers are lent for the call only:
 * recv fills the caller's buffer, send reads the caller's iovecs, and neither keeps them
 * (a transport that must frame or encrypt copies into its own per-connection buffer).
 *  recv      into buf[0..cap); clears c->readable when it knows the input is drained (a
 *            plain socket: a short read, see conn.c), so the loop waits for an edge.
 *  peek      recv without consuming (the eviction check), same returns as recv.
 *  send      the iovecs in order; more: further bytes (a file range) follow at once, so
 *            the transport may hold a partial packet back (MSG_MORE).
 *  send_file len bytes of file fd from *off, advancing *off (sendfile on a plain socket).
 *  shutdown  no more output (SHUT_WR; TLS: close_notify first).
 *  close     forget the connection and close its fd.
 *  wants     blocked is the direction of the call that returned -EAGAIN (ZH__WANT_READ
 *            for recv/peek, ZH__WANT_WRITE for send/send_file); the answer is the
 *            readiness that lets it progress.
 * A byte transport (the plain socket, io_uring) also carries a layer above it (TLS), which
 * is handed it at open() and moves its own bytes with:
 *  read_raw  as recv, but c->readable is the layer's to clear (it alone knows whether it
 *            still holds input); -EAGAIN when nothing has arrived.
 *  write_raw len bytes of buf, copied before it returns (the layer's buffer is free
 *            then); -EAGAIN on a full socket, and the connection is driven with EPOLLOUT
 *            once the socket has room (epoll's edge; io_uring arms a poll for it). */
typedef struct zh__transport {
	const char *name;
	bool pipe_entries; /* send_file takes pipe entries (ZH__PIPE_OFF): splice(2) to the
			      socket (the plain socket and io_uring; not TLS) */
	ssize_t (*recv)(zh__conn_t *c, void *buf, size_t cap);
	ssize_t (*peek)(zh__conn_t *c, void *buf, size_t cap);
	ssize_t (*send)(zh__conn_t *c, const struct iovec *iov, int cnt, bool more);
	ssize_t (*send_file)(zh__conn_t *c, int fd, uint64_t *off, size_t len);
	int (*shutdown)(zh__conn_t *c);
	void (*close)(zh__conn_t *c);
	unsigned (*wants)(zh__conn_t *c, unsigned blocked);
	ssize_t (*read_raw)(zh__conn_t *c, void *buf, size_t cap);	       /* byte transports */
	ssize_t (*write_raw)(zh__conn_t *c, const void *buf, size_t len); /* byte transports */
	/* optional (NULL: nothing to set up). A connection accepted on a listener of this
	 * transport: set up its state; arg is the listener's provider (zh__tr_provider_t),
	 * lower the worker's byte transport, which carries this one's bytes (read_raw,
	 * write_raw, peek) and closes the socket. 0, or -errno: the connection is closed at
	 * once (counted as refused). */
	int (*open)(zh__conn_t *c, void *arg, const struct zh__transport *lower);
	/* optional: what the connection negotiated, for zh_req_tls_version/cipher: what 0 the
	 * protocol version's name, 1 the cipher suite's; NULL when none. */
	const char *(*info)(zh__conn_t *c, int what);
	/* optional (NULL: a protocol upgrade is refused on this transport): the socket leaves
	 * the transport (zh_resp_upgrade hands it over). Its receiving stops, and the bytes
	 * received and not read yet go to the callback after the receive buffer's. 1: the
	 * caller hands over now; 0: the transport calls zh__conn_hand_over_now itself once
	 * its operations in flight have ended (or closes the connection: the callback then
	 * hears fd -1); -errno: the connection closes. */
	int (*detach)(zh__conn_t *c);
} zh__transport_t;

/* A listener's transport other than the plain socket, brought by a library the core does
 * not link (TLS: libzerohttp-tls). The object a zh_listener_t's `tls` points to begins with
 * this header, so the core reaches the transport without knowing the library. */
typedef struct zh__tr_provider {
	const zh__transport_t *transport;
} zh__tr_provider_t;

/* c->trflags: what a transport tells the connection layer (and hears from it).
 *  HANDSHAKE  set at accept on a listener whose transport has one (TLS), cleared by the
 *             transport when it is done: until then the handshake timer runs, not the
 *             header timer.
 *  TIMEDOUT   the handshake timer expired: set before close(), so the transport can count
 *             why the handshake failed.
 *  REFUSED    the transport answered the peer itself and wants the connection closed
 *             after a lingering close (TLS: plain HTTP on a TLS port got its 400).
 *  H2         set by conn.c before open(): the server serves HTTP/2 (zh_http2_enable), so
 *             the transport may offer it (TLS: ALPN "h2", preferred to "http/1.1").
 *  ALPN_H2    set by the transport: the peer agreed to h2 (ALPN), so the connection is
 *             HTTP/2 from its first byte (the client preface, RFC 9113 §3.4). */
enum {
	ZH__TRF_HANDSHAKE = 1u << 0,
	ZH__TRF_TIMEDOUT = 1u << 1,
	ZH__TRF_REFUSED = 1u << 2,
	ZH__TRF_H2 = 1u << 3,
	ZH__TRF_ALPN_H2 = 1u << 4,
};

/* The plain socket, called directly (no indirect call on the hot path); the others through
 * zh__transports[c->tr]. */
extern const zh__transport_t zh__transport_plain;
enum { ZH__TRANSPORTS_MAX = 4 };
extern const zh__transport_t *zh__transports[ZH__TRANSPORTS_MAX];
extern uint8_t zh__transport_default; /* given to new connections: 0 = plain */
/* Registers t (until the process ends) and makes it the transport of connections accepted
 * from now on; NULL makes it the plain socket again. Returns 0, or -ENOSPC when the table
 * is full. For tests (tests/test_transport.c); TLS will choose per listener. */
int zh__transport_install(const zh__transport_t *t);
/* Registers t (until the process ends) without changing the default; its index, or -ENOSPC. */
int zh__transport_register(const zh__transport_t *t);


enum {
	ZH__IOV_CAP = 128,	   /* iovecs queued per connection (and per writev) */
	ZH__IOV_LIBRARY = 4,	   /* kept free of body parts: the body-buffer release record,
				      the last chunk's size line and the chunked terminator */
	ZH__INBOX_CAP = 1024,	   /* deferred resumptions waiting for their worker */
	ZH__PRODUCE_BURST = 8,	   /* producer calls in a row before others get a turn */
	ZH__YIELD_CAP = 256,	   /* connections that gave their turn up, per worker */
	ZH__TICKS_MAX = 4,	   /* periodic hooks per worker (zh__worker_tick_add) */
	ZH__RBUF_SIZE = 16384,	   /* receive buffer inside each context */
	ZH__SBUF_SIZE = 16384,	   /* send area inside each context */
	ZH__OVERFLOW_MAX = 4,	   /* extra large buffers a context may hold for output */
	ZH__RESP_HEADERS = 32,	   /* response header fields */
	ZH__RESP_HSTORE = 4096,	   /* bytes of response header names and values */
	ZH__RESP_TSTORE = 512,	   /* bytes of trailer fields (zh_resp_trailer) */
	ZH__HOOKS_MAX = 24,	   /* commit hooks: middleware's, then the handler's */
	ZH__MW_MAX = 64, ZH__GLOBAL_MW_MAX = 16, ZH__ROUTE_MW_MAX = 8,
	ZH__HEAD_RESERVE = 512,	   /* status line + library headers, beyond user headers */
	ZH__LARGE_MIN = 65536,
	ZH__LINGER_MS = 2000,	   /* read-and-discard after a close with unread input */
	/* Loopback send buffer for long transfers: a small buffer (cfg.loopback_sndbuf) keeps
	 * 1 MiB responses cache-hot, but costs more wake-ups per MiB on huge ones; measured on
	 * 100 MiB files, 4 MiB is as cheap per MiB as autotuning or cheaper. */
	ZH__BIG_TRANSFER = 8 << 20,
	ZH__BIG_SNDBUF = 4 << 20,
};

/* ---- parser (parse.c) ------------------------------------------------------------------ */

/* Offsets into the buffer the head was parsed from, so the buffer may be replaced by a
 * larger one (copied) while a head is still incomplete without fixing up pointers. */
typedef struct {
	uint32_t off, len;
} zh__span_t;

typedef struct {
	zh__span_t name, value;
} zh__field_t;

enum zh__head_flags {
	ZH__H_CL = 1u << 0,
	ZH__H_CHUNKED = 1u << 1,
	ZH__H_CLOSE = 1u << 2,
	ZH__H_KEEPALIVE = 1u << 3,
	ZH__H_EXPECT_CONTINUE = 1u << 4,
	ZH__H_HOST = 1u << 5,
	ZH__H_ASTERISK = 1u << 6,
	ZH__H_ABSOLUTE = 1u << 7,
	ZH__H_UPGRADE = 1u << 8, /* Connection names "upgrade" (RFC 9110 §7.8) */
};

typedef struct zh__limits {
	uint32_t max_request_line, max_header_bytes, max_headers;
} zh__limits_t;

typedef struct zh__head {
	zh__span_t method, target, path, query, host;
	unsigned method_bit; /* ZH_GET...; 0 = a valid token we do not implement */
	uint8_t minor;	     /* 0 or 1 */
	uint32_t flags;
	uint32_t nfields;
	uint64_t content_length;
	uint32_t head_len;
} zh__head_t;

/* Resumable state: bytes before `pos` are complete lines already parsed into the head. */
typedef struct zh__parser {
	uint32_t pos;
	uint32_t fields_start; /* offset of the first header line */
	uint8_t phase;	       /* 0 request line, 1 header fields */
} zh__parser_t;

/* Parses as much of buf[0..len) as forms complete lines. Returns the head length (> 0) once
 * the empty line is seen, 0 if more bytes are needed, or -status (-400, -414, -417, -431,
 * -501, -505) for a request that must be refused. Call again with the same parser and a longer buffer
 * (same bytes, possibly relocated) after 0. fields has room for lim->max_headers. */
int zh__parse_head(zh__parser_t *ps, const char *buf, size_t len, zh__head_t *h,
		   zh__field_t *fields, const zh__limits_t *lim);

/* Chunked transfer coding (RFC 9112 §7.1), decoded incrementally. */
typedef struct zh__chunked {
	uint8_t state;
	uint8_t size_digits;
	uint32_t line_bytes;	/* bytes of the current size line or trailer line */
	uint32_t trailer_bytes;
	uint32_t trailer_fields;
	uint64_t remaining;	/* data bytes left in the current chunk */
	uint64_t total;		/* data bytes so far */
} zh__chunked_t;

/* Consumes framing and data from in[0..in_len) and writes data to out (out may equal in or
 * lie before it: decoding in place). Stops when out_cap bytes were produced or the body ended.
 * Returns bytes consumed (>= 0) and sets *produced; -400 on bad framing, -413 when the body
 * would exceed max_body. zh__chunked_done() tells whether the last chunk and trailers ended. */
long zh__chunked_decode(zh__chunked_t *c, const char *in, size_t in_len, char *out,
			size_t out_cap, size_t *produced, uint64_t max_body);
static inline bool zh__chunked_done(const zh__chunked_t *c) { return c->state == 255; }


/* ---- pools (pool.c) ---------------------------------------------------------------------- */

typedef struct zh__pool {
	char *base;
	size_t obj_size;
	uint32_t count, carved, in_use, high_water;
	bool poison;	 /* ASan builds: free objects are poisoned (see pool.c) */
	void *free_list; /* LIFO, next pointer stored in the free object itself */
} zh__pool_t;

void zh__pool_init(zh__pool_t *p, char *base, size_t obj_size, uint32_t count);
void *zh__pool_get(zh__pool_t *p); /* NULL when exhausted: the caller answers 503 */
void zh__pool_put(zh__pool_t *p, void *obj);
/* For pools whose free objects are still read on purpose (connection slots: their state is
 * checked by stale epoll events and by the drain walk): no poisoning. */
void zh__pool_keep_readable(zh__pool_t *p);

/* ---- connection, context, request, response (conn.c, response.c, body.c) ---------------- */

typedef struct zh__worker zh__worker_t;
typedef struct zh__ctx zh__ctx_t;

/* ---- router (router.c) ----------------------------------------------------------------------
 * Routes are grouped by pattern (the methods of one pattern are one group, linked by next)
 * and the patterns form a trie on path segments, built at registration in memory the
 * router owns (malloc: registration only). A lookup walks it without allocating. */
enum { ZH__PARAMS_MAX = 16 }; /* wildcards per pattern, a ZH_ROUTE_PREFIX tail included */
enum zh__seg_kind { ZH__S_LIT, ZH__S_PARAM, ZH__S_TAIL };
typedef struct zh__rseg {
	uint8_t kind;	   /* enum zh__seg_kind; a tail is last: {x...} or a prefix route's */
	uint32_t off, len; /* literal text or tail prefix, canonical (router.c), in canon */
} zh__rseg_t;

typedef struct zh__route {
	char *path;   /* the pattern as registered, NUL-terminated (zh_req_route) */
	size_t len;
	unsigned methods, flags;
	zh_handler_fn fn;
	void *arg;
	uint8_t mw[ZH__ROUTE_MW_MAX]; /* indexes into zh_server.mw */
	uint8_t nmw;
	uint8_t nparams; /* wildcards: captures of a match, in path order */
	int32_t next;	 /* the next route of the same pattern (other methods), or -1 */
	uint32_t host;	 /* 0: any host; else 1 + index into the router's hosts */
	char *names;	 /* nparams NUL-terminated names ("" for a prefix route's tail) */
	char *canon;	 /* the segments' canonical text */
	zh__rseg_t *segs;
	uint32_t nsegs;
} zh__route_t;

typedef struct zh__rtail {
	char *p;       /* canonical prefix of the segment ("" for {x...}), the tail's own */
	uint32_t plen;
	int32_t group; /* first route of the pattern */
} zh__rtail_t;

typedef struct zh__rnode {
	char *label;	   /* canonical literal that leads here (the node's own copy) */
	uint32_t label_len;
	uint32_t *lits;	   /* literal children, sorted by (label_len, label) */
	uint32_t nlits;
	int32_t param;	   /* the {x} child, or -1 */
	int32_t end;	   /* the group of patterns that end here, or -1 */
	zh__rtail_t *tails; /* sorted longest prefix first */
	uint32_t ntails;
} zh__rnode_t;

/* A literal edge in the router's hash table: the child of parent for segment label. */
typedef struct zh__redge {
	uint64_t hash;	   /* of (parent, label): router.c, seg_hash */
	uint32_t parent, child; /* child 0: an empty slot (node 0 is a root, never a child) */
	const char *label; /* the child's label (owned by the child node), label_len bytes */
	uint32_t label_len;
} zh__redge_t;

/* A host-less pattern made of literals only ("/plaintext"): its whole canonical path. */
typedef struct zh__rexact {
	uint64_t hash; /* seg_hash of the path */
	char *path;    /* "/a/b", owned; NULL: an empty slot */
	uint32_t len, node;
} zh__rexact_t;

typedef struct zh__router {
	zh__route_t *routes;
	zh__redge_t *edges; /* open addressing, a power of two of slots, at most half full */
	uint32_t nedges, edge_mask;
	zh__rexact_t *exact; /* the same, for literal-only host-less patterns */
	uint32_t nexact, exact_mask;
	uint32_t nroutes, cap_routes;
	zh__rnode_t *nodes;
	uint32_t nnodes, cap_nodes;
	struct zh__rhost {
		char *name; /* lower case, no port */
		size_t len;
		uint32_t root;
	} *hosts;
	uint32_t nhosts;
	unsigned methods; /* of every route: OPTIONS * */
} zh__router_t;

/* Captures of a match: offsets into the path looked up. */
typedef struct zh__match {
	uint32_t n;
	struct {
		uint32_t off, len;
	} p[ZH__PARAMS_MAX];
} zh__match_t;

/* Adds a route (zh_server_route's contract). */
int zh__router_add(zh__router_t *r, unsigned methods, const char *pattern, unsigned flags,
		   zh_handler_fn fn, void *arg);
/* The route for method_bit at host (the Host field as sent, port and all; may be empty)
 * and path: of the patterns that match the path and take the method (HEAD: HEAD or GET,
 * the HEAD route first on one pattern), the most specific, the host's before the
 * host-less ones (Go 1.22's ServeMux). NULL: *allow is 0 when no pattern matches the path
 * (404), else the methods of all that do (405). *m gets the captures. No allocation; any
 * thread once registration is over. */
const zh__route_t *zh__router_find(const zh__router_t *r, const char *host, size_t hlen,
				   const char *path, size_t len, unsigned method_bit,
				   unsigned *allow, zh__match_t *m);
void zh__router_free(zh__router_t *r);

enum zh__conn_state {
	ZH__C_FREE,
	ZH__C_IDLE,	/* keep-alive, no context */
	ZH__C_ACTIVE,	/* context attached: reading a head or body, or writing */
	ZH__C_LINGER,	/* output sent, write side shut, discarding input before close */
};

/* SILENT: accepted, no byte read yet (header_timeout_ms from accept). HEADER: a head is
 * arriving (from its first byte). Two lists, so the head of HEADER is always a connection
 * holding a context: silent ones cannot hide stalled heads from eviction (conn.c). */
enum zh__timer_kind { ZH__T_NONE, ZH__T_HEADER, ZH__T_IDLE, ZH__T_BODY, ZH__T_WRITE,
		      ZH__T_LINGER, ZH__T_SILENT, ZH__T_HANDSHAKE, ZH__T_KINDS };

/* Kept small on purpose (72 bytes): an idle keep-alive connection costs this slot and
 * nothing else. Slots come from a pool whose free list overwrites the first word of a free
 * slot, so ctx comes first and state survives. */
struct zh__conn {
	zh__ctx_t *ctx;
	int fd;
	uint8_t state;		/* enum zh__conn_state */
	uint8_t timer;		/* enum zh__timer_kind: which list it is on */
	bool readable;		/* EPOLLIN seen and not yet drained (edge-triggered) */
	bool close_after;	/* close once the queued output is sent */
	bool rdhup;		/* EOF read: the peer will send nothing more */
	bool hup_seen;		/* EPOLLRDHUP/HUP reported: read until EOF, a short read is
				   not the end of it (no further edge will come) */
	bool loopback;		/* peer on 127/8 or ::1: send buffer sized by response, see
				   zh_send_file() */
	bool sndbuf_big;
	uint32_t requests;	/* served on this connection */
	uint32_t defer_gen;	/* names the current deferral; bumped on close: stale tokens of
				   zh_resp_defer() find a different value */
	uint8_t peer[16];	/* client address: IPv4 in the first 4 bytes, or IPv6 */
	uint8_t peer_v6;
	uint8_t tr;		/* transport: index into zh__transports, 0 = plain */
	uint8_t proto;		/* protocol: index into zh__protos, 0 = HTTP/1.1 */
	bool virt;		/* an HTTP/2 stream's exchange, not a socket (h2_stream.c):
				   not counted as a connection, never in epoll */
	uint8_t trflags;	/* ZH__TRF_*: between the transport and conn.c */
	zh__conn_t *tnext, *tprev; /* timer list */
	uint64_t deadline_ms;
};

/* The plain socket's recv and send, inline in the callers (a function call each cost about
 * 25 instructions per request, callgrind). transport_plain.c has the rest.
 *
 * recv: a short read means the socket is drained: the next arrival raises a new edge
 * (epoll is edge-triggered, conn.c), which saves the EAGAIN read a level-triggered loop
 * needs. Not after RDHUP/HUP: no further edge will come, so reading goes on until EOF. */
static inline ssize_t zh__plain_recv(zh__conn_t *c, void *buf, size_t cap)
{
	for (;;) {
		ssize_t n = zh__sys_read(c->fd, buf, cap);
		if (ZH__LIKELY(n > 0)) {
			if ((size_t)n < cap && !c->hup_seen)
				c->readable = false;
			return n;
		}
		if (n == 0 || errno != EINTR)
			return n == 0 ? 0 : -errno;
	}
}

/* send: writev() has no flags; with `more` (a file follows), sendmsg(MSG_MORE) lets the
 * head share packets with the file's first bytes. SIGPIPE is ignored (server.c), so a
 * vanished peer is -EPIPE. */
static inline ssize_t zh__plain_send(zh__conn_t *c, const struct iovec *iov, int cnt, bool more)
{
	for (;;) {
		ssize_t n;
		if (ZH__UNLIKELY(more)) {
			struct msghdr msg = {.msg_iov = (struct iovec *)(uintptr_t)iov,
					     .msg_iovlen = (size_t)cnt};
			n = sendmsg(c->fd, &msg, MSG_MORE | MSG_NOSIGNAL);
		} else {
			n = zh__sys_writev(c->fd, iov, cnt);
		}
		if (ZH__LIKELY(n >= 0))
			return n;
		if (errno != EINTR)
			return -errno;
	}
}

/* The connection's transport calls: the plain socket directly, another through its table. */
static inline const zh__transport_t *zh__tr(const zh__conn_t *c)
{
	return zh__transports[c->tr];
}
static inline ssize_t zh__tr_recv(zh__conn_t *c, void *buf, size_t cap)
{
	if (ZH__UNLIKELY(c->tr != 0))
		return zh__tr(c)->recv(c, buf, cap);
	return zh__plain_recv(c, buf, cap);
}
static inline ssize_t zh__tr_send(zh__conn_t *c, const struct iovec *iov, int cnt, bool more)
{
	if (ZH__UNLIKELY(c->tr != 0))
		return zh__tr(c)->send(c, iov, cnt, more);
	return zh__plain_send(c, iov, cnt, more);
}

/* What to do when the kernel has taken a queue entry: call fn(arg), or put arg back into
 * pool (internal buffers). Both NULL: nothing. A file entry (file_fd >= 0) is sent with
 * sendfile from file_off; its iovec has no base and iov_len counts the bytes left. A pipe
 * entry (zh__resp_write_pipe) is a file entry whose file_off is ZH__PIPE_OFF: the plain
 * transport splices it from the pipe to the socket. */
#define ZH__PIPE_OFF UINT64_MAX
typedef struct zh__rel {
	zh_release_fn fn;
	void *arg;
	zh__pool_t *pool;
	int file_fd;
	uint64_t file_off;
} zh__rel_t;


enum zh__body_state { ZH__B_NONE, ZH__B_READING, ZH__B_DONE };

struct zh_request {
	zh__ctx_t *ctx;
	const char *base; /* the buffer the head's spans are relative to */
	zh__head_t h;
	zh__field_t *fields;
	/* body: bytes [body, body + body_len) are decoded body; body_off is zh_body_read's place */
	uint8_t body_state;
	char *body;
	uint64_t body_len, body_off;
	char *body_buf;		    /* pooled buffer holding the body, or NULL (in rbuf) */
	zh__pool_t *body_pool;	    /* where body_buf goes back to */
	uint32_t raw_pos;	    /* next body byte in rbuf not yet consumed (or decoded) */
	zh__chunked_t chunked;
	/* streaming routes (ZH_ROUTE_STREAM_BODY): body_off counts bytes handed out */
	bool stream, sent_continue;
	int stream_err;		    /* sticky -errno once reading failed */
	uint64_t body_mark;	    /* body progress when the body timer was last armed */
	/* Walls (see zh_mw_slot, zh_req_user): one pointer per middleware of the request's
	 * chains (global chain position i, route chain position ZH__GLOBAL_MW_MAX + j) and
	 * one for the application. NULL from the request's start to its done hooks. The core
	 * never reads them; mw_cur names the slot of the hook running now (ZH__MW_NONE). */
	void *user;
	uint8_t mw_cur;
	void *mw_slot[ZH__GLOBAL_MW_MAX + ZH__ROUTE_MW_MAX];
	zh__match_t params; /* the route's captures (zh_req_param) */
};
enum { ZH__MW_NONE = 0xff };
void zh__req_slots_reset(zh_request_t *req, bool mw); /* middleware.c */

/* How a response's body is delimited (RFC 9112 §6.3). A body complete when the handler
 * returns gets Content-Length; one sent while still being produced (it outgrew the send
 * area, or a producer or deferral keeps it open) is chunked for HTTP/1.1 and delimited by
 * closing for HTTP/1.0, unless the handler declared Content-Length. */
enum zh__framing { ZH__F_LENGTH, ZH__F_CHUNKED, ZH__F_CLOSE, ZH__F_NONE };

struct zh_response {
	zh__ctx_t *ctx;
	int status;
	int implicit_status; /* committed by a body or the end without a status: 200, or the
				error an application's error handler answers */
	bool committed, in_hooks, head_only, error, has_length, close, has_server;
	bool streaming;	      /* head serialized: body parts leave before the body is complete */
	bool chunk_crlf;      /* chunked: a chunk's data was framed, its CRLF not yet queued */
	uint8_t framing;      /* enum zh__framing, fixed when streaming starts */
	uint16_t chunk_slot;  /* chunked: placeholder iovec for the next chunk's size line */
	uint64_t framed_len;  /* chunked: body bytes already inside framed chunks */
	uint64_t wait_left_us; /* what is left of cfg.sync_write_wait_ms */
	/* the pending writer (zh_resp_writer_begin) and its state, or NULL: synced before any
	 * other body byte is queued, when a handler call returns, and at the end */
	const zh_writer_ops_t *writer;
	void *writer_state;
	bool filtering, file_body, filter_headed;
	uint64_t filter_in; /* body bytes handed to the filter */
	zh_body_filter_t filter; /* see zh_resp_set_filter */
	uint64_t declared_len, body_len;
	uint16_t head_slot;  /* iovec reserved for the status line and headers */
	uint16_t interim_slot; /* streaming routes: before head_slot, for 100 Continue */
	uint8_t nhooks, nhdr;
	uint16_t hused;
	struct {
		zh_commit_fn fn;
		void *arg;
		uint8_t slot; /* the middleware's zh_mw_slot, ZH__MW_NONE for the handler's */
	} hooks[ZH__HOOKS_MAX];
	zh__hdr_t hdr[ZH__RESP_HEADERS];
	char hstore[ZH__RESP_HSTORE];
	/* trailer fields (zh_resp_trailer), as the lines HTTP/1.1 sends: "Name: value\r\n" */
	uint8_t ntr;
	uint16_t tused;
	char tstore[ZH__RESP_TSTORE];
};

/* Lent to a connection while it has bytes in flight; see the memory map above. The receive
 * buffer never moves while spans of a parsed head point into it: it is compacted or replaced
 * only when no output is pending (output may reference it) and no head is half-parsed. */
struct zh__ctx {
	zh__conn_t *conn;
	zh__worker_t *w;
	char *rbuf;
	uint32_t rcap, rlen;
	uint32_t rstart;	  /* first byte of the request being parsed or processed */
	bool in_request;	  /* head parsed, response not yet finalized */
	bool rbuf_large;	  /* rbuf is a pooled large buffer, not rinline */
	char *rbuf_old;		  /* a large buffer left by grow_rbuf (body.c): what points into
				     it stays valid until the context detaches */
	zh__parser_t ps;
	const zh__route_t *route;
	zh_body_fn resume_fn;	  /* set while a streaming handler waits for body bytes */
	void *resume_arg;
	zh_produce_fn produce_fn; /* set while a producer writes the body (zh_resp_produce) */
	void *produce_arg;
	bool deferred;		  /* zh_resp_defer(): waiting for zh_deferred_resume() */
	zh_upgrade_fn upgrade_fn; /* zh_resp_upgrade(): owed one call (upgrade.c) */
	void *upgrade_arg;
	bool parked;		  /* zh__resp_park(): the producer waits for zh__resp_unpark() */
	bool timers_closed;	  /* no request, or its response ended: zh_timer_start refuses */
	struct zh__utimer *utimers; /* the request's pending zh_timer_start timers (timer.c) */
	bool in_error_handler;	  /* the application's error handler runs: no suspension */
	uint64_t started_us;	  /* the request's head was complete (CLOCK_MONOTONIC) */
	_Alignas(16) char state[ZH_RESP_STATE_SIZE]; /* zh_resp_state() */
	_Alignas(16) char writer_area[ZH_WRITER_STATE_SIZE]; /* zh_resp_writer_begin(): opaque */
	struct zh_request req;
	struct zh_response resp;
	/* output: iov[iov_head..iov_n) not yet taken by the kernel */
	uint16_t iov_head, iov_n;
	uint8_t noverflow;
	char *area;		  /* where copies and heads are appended: sbuf or overflow[] */
	uint32_t area_used, area_cap;
	char *overflow[ZH__OVERFLOW_MAX];
	struct iovec iov[ZH__IOV_CAP];
	zh__rel_t rel[ZH__IOV_CAP];
	char chunk_line[ZH__IOV_CAP][20]; /* a chunk's size line, by the slot that sends it */
	zh__field_t *fields;	  /* max_headers entries, after this struct */
	char *sbuf;		  /* ZH__SBUF_SIZE, after fields */
	char *rinline;		  /* ZH__RBUF_SIZE, after sbuf */
	char *pscratch;		  /* max_request_line, after rinline: decoded path params,
				     each at its offset in the path (zh_req_param) */
	bool pscratch_busy;	  /* pscratch holds a request's params: the next request waits
				     until the output queue (which may point there) is sent */
};

/* ---- worker, server (loop.c, server.c) ----------------------------------------------------- */

/* A listening address: the plain socket (tr 0) or a registered transport with its
 * provider (tr_arg, given to the transport's open()). */
enum { ZH__LISTENERS_MAX = 64 };
typedef struct zh__listener {
	char address[64];
	uint16_t port;
	int fd; /* an inherited listening socket (not ours to close), or -1 */
	uint8_t tr;
	void *tr_arg;
} zh__listener_t;

typedef struct zh__tlist {
	zh__conn_t *head, *tail;
	uint32_t duration_ms;
} zh__tlist_t;

struct zh__worker {
	zh_server_t *srv;
	unsigned id;
	int ep, stopfd;
	int lfd[ZH__LISTENERS_MAX]; /* one per server listener, same order; -1 once closed */
	pthread_t thread;
	char *region;
	size_t region_len;
	uint32_t open_conns;
	bool drain_forced; /* force_close_all() ran: counted once in drain_force_closed */
	zh__conn_t *closed; /* closed during this epoll batch; back to conn_pool after it */
	zh__pool_t conn_pool, ctx_pool, large_pool, body_pool;
	zh__tlist_t timers[ZH__T_KINDS];
	uint64_t now_ms;
	time_t date_sec;
	uint32_t date_len, common_len;
	/* "Server: zerohttp\r\nDate: Fri, 27 Nov 2026 08:14:55 GMT\r\n": the Date line ends it */
	char common_hdr[128];
	bool draining;
	uint64_t drain_deadline_ms, accept_resume_ms;
	uint64_t drain_idle_close_ms; /* draining: idle connections close from then on (0: at
					 once; zh_server_stop_gently's grace) */
	/* zh_deferred_resume() from any thread: appended under the lock, then wakefd */
	int wakefd;
	pthread_mutex_t inbox_lock;
	uint32_t inbox_n;
	bool exited;
	/* zh_server_ping(): the asker stores a number and signals wakefd; the loop copies it to
	 * ping_ack when it handles the wake-up, proof that it still turns */
	_Atomic uint64_t ping_req, ping_ack;
	struct zh__resumption {
		zh__conn_t *conn;
		uint32_t gen;
		zh_body_fn fn;
		void *arg;
	} inbox[ZH__INBOX_CAP], inbox_run[ZH__INBOX_CAP];
	/* producers that used their burst with the socket still writable: no epoll edge will
	 * bring them back, so the loop does, after the others' events (fairness) */
	zh__conn_t *yielded[ZH__YIELD_CAP], *yielded_run[ZH__YIELD_CAP];
	uint32_t nyielded;
	/* periodic hooks (zh__worker_tick_add), e.g. the access log's flush; tick_due_ms is the
	 * earliest time one asked to be called again (0: none), a bound on epoll_wait */
	struct zh__tick {
		zh__tick_fn fn;
		void *arg;
	} ticks[ZH__TICKS_MAX];
	uint32_t nticks;
	uint64_t tick_due_ms;
	void *h2; /* HTTP/2's per-worker state (h2.c: allocator, slot map), created on first use */
	/* application timers (timer.c): a pairing heap by (deadline_us, seq), intrusive in the
	 * callers' zh_timer_t; tseq numbers starts, for FIFO order among equal deadlines */
	struct zh__utimer *theap;
	uint64_t tseq;
	zh_stats_t stats;
	char discard[4096]; /* lingering close reads land here */
	struct zh__uring *uring; /* loop_uring.c's state while this worker runs io_uring */
};

/* proxy.c: trusted proxies. A CIDR in the IPv6 form (IPv4 as ::ffff:0:0/96 + its bits),
 * host bits cleared. */
typedef struct zh__cidr {
	uint8_t addr[16];
	uint8_t bits;
} zh__cidr_t;
enum { ZH__PROXIES_MAX = 64, ZH__FWD_MAX = 32 };
/* The hops of Forwarded or X-Forwarded-For, left to right; known false: "unknown", an
 * obfuscated name, or a Forwarded element without for=. */
typedef struct zh__fwd {
	unsigned n;
	struct {
		uint8_t addr[16];
		bool known;
	} hop[ZH__FWD_MAX];
} zh__fwd_t;
bool zh__cidr_parse(const char *p, size_t len, zh__cidr_t *out);
/* A list separated by commas or blanks; the count, -EINVAL (a bad CIDR), -ENOSPC. */
int zh__cidr_list_parse(const char *list, zh__cidr_t *out, unsigned cap);
bool zh__cidr_match(const zh__cidr_t *c, unsigned n, const uint8_t a[16]);
/* Appends one field value's hops to f (forwarded: RFC 7239 syntax, else X-Forwarded-For).
 * 0, -EINVAL malformed, -E2BIG past ZH__FWD_MAX hops. */
int zh__fwd_parse(zh__fwd_t *f, bool forwarded, const char *v, size_t len);

struct zh_server {
	zh_config_t cfg;
	char address[64];
	uint16_t port;			/* the first listener's */
	zh__listener_t listeners[ZH__LISTENERS_MAX];
	unsigned nlisteners;
	zh__limits_t limits;
	size_t ctx_size, large_size, body_size;
	zh__router_t router;
	zh_error_handler_fn err_fn; /* zh_server_set_error_handler */
	void *err_arg;
	char server_hdr[80];
	uint32_t server_hdr_len;
	zh__worker_t *workers;
	unsigned nworkers;
	volatile int stopping;
	volatile unsigned idle_grace_ms; /* zh_server_stop_gently() */
	bool running;
	_Atomic uint64_t ping_seq; /* zh_server_ping()'s last number */
	time_t start_time; /* zh_server_new(), for /metrics */
	zh_middleware_t mw[ZH__MW_MAX];
	unsigned nmw;
	const struct zh__h2_hooks *h2; /* zh_http2_enable(), or NULL: no HTTP/2 */
	void *h2_cfg;
	uint8_t global_mw[ZH__GLOBAL_MW_MAX]; /* indexes into mw */
	unsigned nglobal_mw;
	zh__cidr_t proxies[ZH__PROXIES_MAX]; /* cfg.trusted_proxies, parsed */
	unsigned nproxies;
	zh_metric_t *metrics; /* zh_metric_new, in registration order (app_metrics.c) */
	int io;		       /* the backend the workers run: cfg.io, or epoll after a failed
				  probe (zh_server_io) */
	const char *io_reason; /* why not io_uring (static text), or NULL */
};
void zh__app_metrics_free(zh_server_t *srv); /* app_metrics.c, by zh_server_free */

/* middleware.c. The entry points are inline so that a server without middleware (nmw 0:
 * no chain anywhere) pays one load and branch per call, not a call into middleware.c and
 * a walk of two empty chains (~100 instructions per request, measured with callgrind). */
int zh__mw_before_global_chain(zh__ctx_t *ctx); /* ZH_MW_ANSWERED or ZH_MW_NEXT */
int zh__mw_before_route_chain(zh__ctx_t *ctx);
void zh__mw_add_commit_hooks_chains(zh__ctx_t *ctx);
void zh__mw_done_chains(zh__ctx_t *ctx);
static inline int zh__mw_before_global(zh__ctx_t *ctx)
{
	return ctx->w->srv->nmw ? zh__mw_before_global_chain(ctx) : ZH_MW_NEXT;
}
static inline int zh__mw_before_route(zh__ctx_t *ctx)
{
	return ctx->w->srv->nmw ? zh__mw_before_route_chain(ctx) : ZH_MW_NEXT;
}
static inline void zh__mw_add_commit_hooks(zh__ctx_t *ctx)
{
	if (ctx->w->srv->nmw)
		zh__mw_add_commit_hooks_chains(ctx);
}
static inline void zh__mw_done(zh__ctx_t *ctx)
{
	if (ctx->w->srv->nmw)
		zh__mw_done_chains(ctx);
}


/* Counters (see ZH__STATS_ADD in ext.h). */
#define ZH__STAT_ADD(w, field, n) ZH__STATS_ADD(&(w)->stats, field, n)

/* loop.c */
void *zh__worker_main(void *arg);
/* The backend-independent parts of a loop turn (loop.c), for loop_uring.c */
int zh__worker_timeout_ms(const zh__worker_t *w);
void zh__worker_clock(zh__worker_t *w);
void zh__worker_stop_event(zh__worker_t *w);
void zh__worker_wake_event(zh__worker_t *w);
/* loop.c: the io_uring loop's epoll set (foreign descriptors only, ext.h zh__watch_add) is
 * readable: runs the watches of its ready descriptors */
void zh__watch_drain(zh__worker_t *w);
bool zh__worker_after_events(zh__worker_t *w);
/* loop_uring.c: runs the worker on its own io_uring until it has drained; returns 0, or
 * -errno before anything started when the ring cannot be set up (the caller runs epoll).
 * zh__uring_probe: 0 when io_uring can serve (kernel features, no seccomp or sysctl
 * refusal), else -errno with *why set to a static explanation. */
int zh__uring_run(zh__worker_t *w);
int zh__uring_probe(const char **why);
bool zh__uring_ctx_wait(zh__worker_t *w, zh__conn_t *c);
bool zh__uring_sending(zh__worker_t *w, const zh__conn_t *c); /* a send in flight */
/* A connection accepted on an io_uring worker: its slot is set up and its receive armed.
 * Returns the io_uring transport's index (c's byte transport). */
uint8_t zh__uring_conn_open(zh__worker_t *w, zh__conn_t *c);
zh__worker_t *zh__worker_self(void); /* the worker running on this thread, or NULL */
/* The worker's stop and wake eventfds (see loop.c): signal adds 1 (any thread;
 * async-signal-safe, errno preserved), consume takes the count (the worker). */
void zh__eventfd_signal(int fd);
void zh__eventfd_consume(int fd);

/* server.c */
int zh__listener_watch(zh__worker_t *w, unsigned i, bool on);

/* conn.c */
zh__conn_t *zh__conn_accepted(zh__worker_t *w, int fd, bool loopback,
			       const struct sockaddr_storage *peer, const zh__listener_t *l);
void zh__conn_event(zh__worker_t *w, zh__conn_t *c, uint32_t events);
void zh__conn_close(zh__worker_t *w, zh__conn_t *c);
void zh__conn_timeout(zh__worker_t *w, zh__conn_t *c);
void zh__conn_drain(zh__worker_t *w, zh__conn_t *c);
/* conn_evict.c: 1 a whole head waits in the socket, 0 part of one, -1 nothing; and the
 * eviction of the longest-stalled context holder (true if one was cut). */
int zh__conn_head_waiting(zh__worker_t *w, zh__conn_t *c);
bool zh__conn_evict_stalled(zh__worker_t *w);
int zh__conn_flush(zh__ctx_t *ctx); /* 1 all sent, 0 socket full, -1 error */
void zh__conn_continue(zh__worker_t *w, zh__conn_t *c); /* a yielded producer's next turn */
void zh__conn_resumption(zh__worker_t *w, const struct zh__resumption *r);

/* loop.c: timers are FIFO lists, one per kind: every deadline of a kind is now + that kind's
 * fixed duration, so appending keeps each list sorted and arming costs no syscall. */
void zh__timer_set(zh__worker_t *w, zh__conn_t *c, enum zh__timer_kind kind);
void zh__timer_clear(zh__worker_t *w, zh__conn_t *c);
/* The same for a protocol library: kind is an enum zh__timer_kind, ZH__T_NONE clears. */
void zh__conn_set_timer(zh__worker_t *w, zh__conn_t *c, int kind);
uint64_t zh__now_ms(void);

/* timer.c: application timers (zh_timer_start). Each lives in the caller's zh_timer_t, on
 * its worker's heap and on its request's list; the library cancels the request's timers
 * when its response ends or its connection dies, before the done hooks run. */
typedef struct zh__utimer {
	struct zh__utimer *child, *next, *prev; /* heap: prev is the parent of a first child */
	struct zh__utimer *rnext, *rprev;	 /* the request's list */
	zh__ctx_t *ctx;
	uint64_t deadline_us, seq;
	zh_timer_fn fn;
	void *arg;
	uint32_t state; /* ZH__UTIMER_PENDING, or anything else: idle */
} zh__utimer_t;
void zh__utimers_run(zh__worker_t *w);	      /* fires what is due (loop.c) */
int zh__utimers_wait_ms(const zh__worker_t *w); /* ms until the next is due; -1 none */
void zh__utimers_close(zh__ctx_t *ctx);	      /* the request ends: cancel its timers */

/* ---- protocol (http1.c; the seam is described in docs/design.md) ------------------------ */

/* How an exchange (one request and its response) goes on the wire. The exchange layer
 * (response.c) decides what the response is, its status, headers, body parts in the
 * output queue and whether they are complete; the protocol writes its head and frames its
 * body, and says how much of the queue may leave. Handlers and middleware see only the
 * exchange layer, so they cannot tell which protocol serves them.
 *  head_whole   the body is complete and queued after resp->head_slot: put the head in
 *               that slot (HTTP/1: status line, headers, exact Content-Length; the
 *               keep-alive decision, resp->close). false when no memory: the caller drops
 *               the response and closes.
 *  head_stream  the head leaves before the body is complete (a spill, a producer, a
 *               streaming route): fix the framing and queue the head. 0, or -ENOBUFS.
 *  boundary     body bytes queued since the last boundary become one framed unit (an
 *               HTTP/1 chunk; an HTTP/2 DATA frame). Errors set resp->error.
 *  rebase       the queue was sent whole and rewound while the body is being written.
 *  body_end     a streamed body ends: its terminator (last chunk; END_STREAM). Returns
 *               true when the body is broken (short of a declared length, no memory):
 *               the caller closes the connection.
 *  request      the next request from the receive buffer, ctx->rbuf[rstart..rlen): fill
 *               ctx->req.h (method, target, path, query, host, body framing: spans are
 *               offsets from rbuf + rstart) and ctx->fields, and h.head_len, where its body
 *               (or the next request) begins. > 0 a request is complete, 0 more bytes are
 *               needed (the buffer may be moved to a larger one between calls: spans are
 *               offsets), or -status for a head that must be refused (400, 414, 431, 501,
 *               505...; 414/431 also when a full large buffer holds no complete head).
 *               HTTP/1: parse.c, one request after another in the buffer (pipelining);
 *               HTTP/2: feed nghttp2 and yield a stream's request.
 *  interim_100  the request body is wanted and the client asked to be invited (Expect:
 *               100-continue, RFC 9110 §10.1.1): send the interim 100 (§15.2.1) ahead of
 *               the final response. A buffered route asks before its response begins (the
 *               100 joins the queue now), a streaming route once it reads, while its
 *               response has begun but not left (the 100 fills resp->interim_slot).
 *               HTTP/1: the canned status line; HTTP/2: a HEADERS frame with :status 100.
 *  body_start   the request head is routed: set up the request body (HTTP/1: Content-
 *               Length or chunked, in place or in a pooled buffer). 1 complete, 0 bytes
 *               missing, or -status (413, 400, 503). body_feed: the same after new bytes.
 *  body_read    a streaming route's next body bytes into buf (zh_body_read's contract).
 *  send_end     while a response streams: of the queue iov[iov_head..end), the end of
 *               what may be sent now (HTTP/1: not a chunk whose size line is not written
 *               yet). A whole response was framed by head_whole: all of it may go. */
typedef struct zh__proto {
	const char *name;
	int (*request)(zh__ctx_t *ctx, const zh__limits_t *lim);
	void (*interim_100)(zh__ctx_t *ctx);
	bool (*head_whole)(zh_response_t *resp);
	int (*head_stream)(zh_response_t *resp);
	void (*boundary)(zh_response_t *resp);
	void (*rebase)(zh_response_t *resp);
	bool (*body_end)(zh_response_t *resp);
	uint16_t (*send_end)(const zh__ctx_t *ctx, uint16_t end);
	int (*body_start)(zh__ctx_t *ctx);
	int (*body_feed)(zh__ctx_t *ctx);
	ssize_t (*body_read)(zh_request_t *req, char *buf, size_t cap);
	/* A protocol that multiplexes (HTTP/2) owns its socket's connection whole: conn.c hands
	 * it the connection's events, its timeout and the start of a drain, and it runs each
	 * exchange on a connection slot of its own (c->virt: see zh__conn_virtual_open).
	 * NULL for a protocol with one exchange at a time on the socket (HTTP/1.1). */
	void (*conn_event)(zh__worker_t *w, zh__conn_t *c, uint32_t events);
	void (*conn_timeout)(zh__worker_t *w, zh__conn_t *c);
	void (*conn_drain)(zh__worker_t *w, zh__conn_t *c);
	void (*conn_closing)(zh__worker_t *w, zh__conn_t *c); /* zh__conn_close, first */
} zh__proto_t;

extern const zh__proto_t zh__proto_http1;
enum { ZH__PROTOS_MAX = 4 };
extern const zh__proto_t *zh__protos[ZH__PROTOS_MAX];
extern uint8_t zh__proto_default; /* given to new connections: 0 = HTTP/1.1 */
/* Registers p (until the process ends) and makes it the protocol of connections accepted
 * from now on; NULL makes it HTTP/1.1 again. 0, or -ENOSPC when the table is full. For
 * tests (tests/test_proto.c); HTTP/2 will be chosen per connection (ALPN, h2c preface). */
int zh__proto_install(const zh__proto_t *p);
/* Registers p in the table without making it the default (HTTP/2: chosen per connection by
 * its preface or by ALPN). The index (> 0), or -ENOSPC. */
int zh__proto_register(const zh__proto_t *p);

/* HTTP/2 plugs in here (libzerohttp-h2, zh_http2_enable): start takes over connection c of
 * worker w, whose I/O context holds the bytes read so far (rbuf[0..rlen), the client's
 * connection preface first for h2c). 0, or -errno (the caller closes c). */
typedef struct zh__h2_hooks {
	int (*start)(zh__worker_t *w, zh__conn_t *c);
	void (*worker_free)(zh__worker_t *w); /* zh_server_free: w->h2, if it was created */
	void (*cfg_free)(void *cfg);	      /* zh_server_free: srv->h2_cfg, last */
} zh__h2_hooks_t;
/* The call a TLS transport makes once ALPN selected "h2" (and conn.c's h2c preface check):
 * -ENOTSUP when HTTP/2 is not enabled on the server (zh_http2_enable, --no-http2). */
int zh__conn_start_h2(zh__worker_t *w, zh__conn_t *c);
/* A connection slot for one exchange of a multiplexing protocol: not a socket (c->virt),
 * with an I/O context attached, transport tr and protocol proto, the peer's address and fd
 * (for poll in zh__resp_spill_wait) copied from parent. NULL when no slot or context is
 * free. It ends through zh__conn_close like any connection (its transport's close). */
zh__conn_t *zh__conn_virtual_open(zh__worker_t *w, const zh__conn_t *parent, uint8_t tr,
				  uint8_t proto);
/* Runs the connection driver on c now (what an epoll event does), e.g. an exchange whose
 * output the multiplexing protocol has sent, or whose request body bytes it delivered. */
void zh__conn_drive(zh__worker_t *w, zh__conn_t *c);
/* The lingering close of c (its I/O context given back, our side shut, input discarded
 * until EOF or ZH__LINGER_MS): after HTTP/2's GOAWAY, so that the peer reads it rather
 * than an RST (RFC 9113 §6.8 asks the sender to let the frame arrive). */
void zh__conn_linger(zh__worker_t *w, zh__conn_t *c);
/* An I/O context for c from the worker's pool (NULL when none is free), and its return: a
 * multiplexing protocol holds one only while it has input to read, as HTTP/1.1 does. */
zh__ctx_t *zh__conn_ctx_attach(zh__worker_t *w, zh__conn_t *c);
void zh__conn_ctx_detach(zh__worker_t *w, zh__conn_t *c);
/* The kernel took n bytes from the front of ctx's output queue (a multiplexing protocol
 * that writes the queue itself): release what is complete, advance the first entry past a
 * partial one, and rewind the queue once empty (rebasing a response still written). */
void zh__out_consume(zh__ctx_t *ctx, size_t n);
/* conn.c: everything queued has left: rewind the area and the queue (rebasing a response
 * still being written). conn_mux.c: 1 not the h2c preface, 0 a prefix of it (more bytes
 * wanted), -1 HTTP/2 took the connection (or closed it). */
void zh__out_rewind(zh__ctx_t *ctx);
int zh__conn_h2c_preface(zh__worker_t *w, zh__conn_t *c);

/* HTTP/1.1, called directly (no indirect call on the hot path). */
void zh__h1_interim_100(zh__ctx_t *ctx);
bool zh__h1_head_whole(zh_response_t *resp);
int zh__h1_head_stream(zh_response_t *resp);
void zh__h1_boundary(zh_response_t *resp);
void zh__h1_rebase(zh_response_t *resp);
bool zh__h1_body_end(zh_response_t *resp);
int zh__h1_body_start(zh__ctx_t *ctx); /* body.c */
int zh__h1_body_feed(zh__ctx_t *ctx);
ssize_t zh__h1_body_read(zh_request_t *req, char *buf, size_t cap);
static inline uint16_t zh__h1_send_end(const zh__ctx_t *ctx, uint16_t end)
{
	const zh_response_t *resp = &ctx->resp;
	/* a chunked body's bytes after its placeholder have no size line yet: they wait for
	 * the next chunk boundary */
	if (resp->framing == ZH__F_CHUNKED && !resp->head_only &&
	    ctx->iov_n > resp->chunk_slot + 1)
		return resp->chunk_slot;
	return end;
}

/* HTTP/1's `request`: the head at rstart, parsed incrementally (parse.c keeps its place in
 * ctx->ps, reset once a head is complete or refused, so the next one starts afresh). Inline:
 * it is the hot path's parser call and costs what calling parse.c directly did. */
static inline int zh__h1_request(zh__ctx_t *ctx, const zh__limits_t *lim)
{
	zh__head_t *h = &ctx->req.h;
	int r;
	if (ctx->ps.pos == 0 && ctx->ps.phase == 0)
		__builtin_memset(h, 0, sizeof *h);
	r = zh__parse_head(&ctx->ps, ctx->rbuf + ctx->rstart, ctx->rlen - ctx->rstart, h,
			   ctx->fields, lim);
	if (r == 0) {
		/* a full large buffer that starts with this head: it can grow no more (RFC 9112
		 * §3: 414 for a request line, RFC 6585 §5: 431 for header fields) */
		if (ctx->rlen < ctx->rcap || ctx->rstart != 0 || !ctx->rbuf_large)
			return 0;
		r = ctx->ps.phase == 0 ? -414 : -431;
	}
	__builtin_memset(&ctx->ps, 0, sizeof ctx->ps);
	return r;
}

static inline bool zh__status_has_body(int status)
{
	return status >= 200 && status != 204 && status != 304;
}

#define ZH__PROTO_CALL(c, h1, op, ...)                                                      \
	(ZH__UNLIKELY((c)->proto != 0) ? zh__protos[(c)->proto]->op(__VA_ARGS__) : h1(__VA_ARGS__))
static inline bool zh__pr_head_whole(zh_response_t *resp)
{
	return ZH__PROTO_CALL(resp->ctx->conn, zh__h1_head_whole, head_whole, resp);
}
static inline int zh__pr_head_stream(zh_response_t *resp)
{
	return ZH__PROTO_CALL(resp->ctx->conn, zh__h1_head_stream, head_stream, resp);
}
static inline void zh__pr_boundary(zh_response_t *resp)
{
	ZH__PROTO_CALL(resp->ctx->conn, zh__h1_boundary, boundary, resp);
}
static inline void zh__pr_rebase(zh_response_t *resp)
{
	ZH__PROTO_CALL(resp->ctx->conn, zh__h1_rebase, rebase, resp);
}
static inline bool zh__pr_body_end(zh_response_t *resp)
{
	return ZH__PROTO_CALL(resp->ctx->conn, zh__h1_body_end, body_end, resp);
}
static inline uint16_t zh__pr_send_end(const zh__ctx_t *ctx, uint16_t end)
{
	return ZH__PROTO_CALL(ctx->conn, zh__h1_send_end, send_end, ctx, end);
}
static inline int zh__pr_request(zh__ctx_t *ctx, const zh__limits_t *lim)
{
	return ZH__PROTO_CALL(ctx->conn, zh__h1_request, request, ctx, lim);
}
static inline void zh__pr_interim_100(zh__ctx_t *ctx)
{
	ZH__PROTO_CALL(ctx->conn, zh__h1_interim_100, interim_100, ctx);
}
static inline int zh__pr_body_start(zh__ctx_t *ctx)
{
	return ZH__PROTO_CALL(ctx->conn, zh__h1_body_start, body_start, ctx);
}
static inline int zh__pr_body_feed(zh__ctx_t *ctx)
{
	return ZH__PROTO_CALL(ctx->conn, zh__h1_body_feed, body_feed, ctx);
}
static inline ssize_t zh__pr_body_read(zh_request_t *req, char *buf, size_t cap)
{
	return ZH__PROTO_CALL(req->ctx->conn, zh__h1_body_read, body_read, req, buf, cap);
}

/* response.c */
void zh__resp_begin(zh__ctx_t *ctx, bool head_only);
/* The request's TE field lists "trailers" (RFC 9110 §10.1.4): an HTTP/1.1 client that
 * takes trailer fields in a chunked response. */
bool zh__req_te_trailers(const zh_request_t *req);
void zh__resp_finish(zh__ctx_t *ctx);
void zh__resp_error(zh__ctx_t *ctx, int status, bool close);
void zh__resp_error_reset(zh__ctx_t *ctx); /* an error handler's answer is replaced */
void zh__resp_abandon(zh__ctx_t *ctx); /* conn.c: the connection died mid-request */
/* upgrade.c: zh_resp_upgrade's one call with fd -1 if it is still owed */
void zh__upgrade_cancel(zh__ctx_t *ctx);
/* upgrade.c: the 101 has left whole: the socket goes to the upgrade callback, at once
 * (epoll) or once the transport has let it go (detach); zh__conn_hand_over_now is the
 * call itself, the fd no longer watched by the loop, early[0..len) the bytes after the
 * request (lent for the call) */
void zh__conn_hand_over(zh__worker_t *w, zh__conn_t *c);
void zh__conn_hand_over_now(zh__worker_t *w, zh__conn_t *c, const void *early, size_t len);
/* conn.c: frees the connection's slot like zh__conn_close but leaves its fd open (handed
 * over; the caller has taken it off the epoll set) */
void zh__conn_forget(zh__worker_t *w, zh__conn_t *c);
uint64_t zh__resp_progress(const zh_response_t *resp); /* bytes written, filtered or not */
void zh__resp_filter_flush(zh_response_t *resp);
/* The pending writer (zh_resp_writer_begin): sync queues what it holds; check is its
 * verdict (0 or -errno), final when the response ends now; drop forgets it (a HEAD's
 * producer: the rest of its output was never to be produced). */
static inline void zh__writer_sync(zh_response_t *resp)
{
	if (ZH__UNLIKELY(resp->writer != NULL))
		resp->writer->sync(resp, resp->writer_state);
}
int zh__writer_check(zh_response_t *resp, bool final);
void zh__resp_stream_start(zh_response_t *resp); /* producers: head out now */
void zh__resp_release_filter(zh_response_t *resp); /* the connection died */
void zh__resp_commit(zh_response_t *resp, int status); /* runs the commit hooks */
int zh__resp_body_gate(zh_response_t *resp);  /* every body source's first call */
void zh__resp_filter_head(zh_response_t *resp);
static inline int zh__resp_fail(zh_response_t *resp, int err)
{
	resp->error = true; /* sticky: the response becomes a 500 if still unsent */
	return err;
}

/* stream.c: the output queue, and a response leaving while it is written */
static inline int zh__out_push(zh__ctx_t *ctx, const void *base, size_t len, zh_release_fn fn,
			       void *arg)
{
	uint16_t i = ctx->iov_n;
	if (ZH__UNLIKELY(i == ZH__IOV_CAP))
		return -ENOBUFS;
	ctx->iov[i].iov_base = (void *)(uintptr_t)base;
	ctx->iov[i].iov_len = len;
	ctx->rel[i].fn = fn;
	ctx->rel[i].arg = arg;
	ctx->rel[i].pool = NULL;
	ctx->rel[i].file_fd = -1;
	ctx->iov_n = (uint16_t)(i + 1);
	return i;
}
char *zh__out_reserve(zh__ctx_t *ctx, size_t len);
void zh__out_release_all(zh__ctx_t *ctx);
void zh__release_entry(zh__rel_t *r);
void zh__out_reset(zh__ctx_t *ctx);
void zh__out_truncate(zh__ctx_t *ctx, zh_response_t *resp); /* drops the body parts */
int zh__resp_spill_wait(zh_response_t *resp);
int zh__resp_raw_window(zh_response_t *resp, size_t min, char **p, char **end);
void zh__resp_raw_commit(zh_response_t *resp, char *from, char *to);
/* Body parts may use the queue up to ZH__IOV_LIBRARY short of its end: zh__resp_finish
 * appends its own records after them. A full queue is spilled to the socket first. */
static inline int zh__resp_push_part(zh_response_t *resp, const void *base, size_t len,
				     zh_release_fn fn, void *arg)
{
	zh__ctx_t *ctx = resp->ctx;
	if (ZH__UNLIKELY(ctx->iov_n >= ZH__IOV_CAP - ZH__IOV_LIBRARY) &&
	    (zh__resp_spill_wait(resp) < 0 || ctx->iov_n >= ZH__IOV_CAP - ZH__IOV_LIBRARY))
		return -ENOBUFS;
	return zh__out_push(ctx, base, len, fn, arg);
}
/* A declared Content-Length is a promise: once the head may have left, bytes beyond it
 * would be read as the next response. So they are refused at once, and the response fails
 * (a 500 if unsent, else a cut connection). */
static inline bool zh__resp_length_ok(zh_response_t *resp, uint64_t n)
{
	if (!resp->has_length || resp->head_only || resp->body_len + n <= resp->declared_len)
		return true;
	(void)zh__resp_fail(resp, -EMSGSIZE);
	return false;
}
void zh__date_refresh(zh__worker_t *w, time_t now);

/* body.c: HTTP/1's body_start once the head is routed, body_feed after new bytes (the
 * protocol seam above: zh__pr_body_start, zh__pr_body_feed); both return 1 when the body
 * is complete, 0 when bytes are missing, or -status (413, 400, 503).
 * zh__body_read_target() says where the next read() should land: true for the body buffer
 * (Content-Length bodies too big for the receive buffer), false for the receive buffer. */
bool zh__body_read_target(zh__ctx_t *ctx, char **dst, size_t *cap);
void zh__body_release(zh__ctx_t *ctx);
bool zh__body_stream_complete(const zh_request_t *req);
bool zh__body_stream_buffered(const zh_request_t *req);

/* router.c: the server's lookup, as start_request calls it (also the benchmark's entry) */
const zh__route_t *zh__route_find(const zh_server_t *srv, zh_slice_t host, zh_slice_t path,
				  unsigned method_bit, unsigned *allow, zh__match_t *m);

#endif
