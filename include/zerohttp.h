/* zerohttp.h — the one public header of libzerohttp, an HTTP/1.1 server library for Linux
 * whose request/response path makes no heap allocation and copies no body byte it does not
 * have to.
 *
 * LIFETIMES
 *   server      zh_server_new() .. zh_server_free(). Owns the configuration (copied), the
 *               route table (frozen once zh_server_run() starts), the listening sockets and
 *               every worker's memory regions, all mapped at zh_server_new().
 *   worker      one thread per configured worker, from zh_server_run() until it returns.
 *               Each has its own listener (SO_REUSEPORT), epoll instance, connection table
 *               and buffer pools: nothing on the request path takes a lock.
 *   connection  accept() .. close. Holds a small fixed slot (no buffers) while idle; an I/O
 *               context (receive buffer, send buffer, iovec queue, request and response
 *               state) is lent to it from the worker's pool while it has bytes in flight and
 *               returned when it goes idle.
 *   request     from its head being parsed until its response has been taken by the kernel.
 *               Every zh_slice_t handed out for a request (method, target, path, query,
 *               headers, body) points into the connection's receive buffer or a pooled body
 *               buffer and stays valid, unchanged, until then: a handler may pass such a
 *               slice to zh_write_ref() without copying it.
 *   response    begins with its request; committed at most once (see zh_write_header());
 *               its bytes are queued on the connection and leave in one writev together with
 *               any other responses produced from the same read (pipelining).
 *
 * THREADS
 *   A handler runs on the worker thread that owns the connection and must not block. All
 *   zh_req_* / zh_resp_* / zh_write* calls take the request or response of the handler
 *   currently running on that thread; none may be called from another thread.
 *   zh_server_stop() is the exception: any thread, and async-signal-safe.
 *
 * ERRORS
 *   Fallible calls return 0 (or a length) on success and a negative errno value on
 *   failure; a failed call has no effect. A callback is never called after an error return
 *   of the call that registered it.
 */
#ifndef ZEROHTTP_H
#define ZEROHTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ZH_API __attribute__((visibility("default")))
#define ZH_MUST_USE __attribute__((warn_unused_result))

#define ZH_VERSION "0.1.0"

/* A borrowed view of bytes: never NUL-terminated, never owned by the holder. */
typedef struct zh_slice {
	const char *ptr;
	size_t len;
} zh_slice_t;

typedef struct zh_server zh_server_t;
typedef struct zh_request zh_request_t;
typedef struct zh_response zh_response_t;

/* Methods as bits, so that a route can take several. HEAD is answered by GET routes unless a
 * route claims HEAD itself; OPTIONS is answered by the server (200, Allow, Content-Length: 0;
 * "OPTIONS *" with every method of every route) unless a route claims it. Any other
 * syntactically valid method is answered 501. Routes match a path spelled with
 * percent-encoded unreserved characters ("/%61pi" is "/api", RFC 3986 §6.2.2); handlers
 * still see the path as sent. */
enum zh_method {
	ZH_GET = 1u << 0,
	ZH_HEAD = 1u << 1,
	ZH_POST = 1u << 2,
	ZH_PUT = 1u << 3,
	ZH_DELETE = 1u << 4,
	ZH_OPTIONS = 1u << 5,
	ZH_PATCH = 1u << 6,
	ZH_TRACE = 1u << 7,
	ZH_METHOD_ANY = 0xffu,
};

/* ------------------------------------------------------------------------------------------
 * Configuration. Fill with zh_config_init(), then change what you need; zh_server_new()
 * copies it (and the address string), so it may live on the caller's stack.
 */
typedef struct zh_config {
	const char *address;	     /* IPv4 or IPv6 literal to bind; default "127.0.0.1" */
	uint16_t port;		     /* default 8080; 0 picks a free port (zh_server_port) */
	unsigned workers;	     /* threads; 0 = number of online CPUs (the default) */
	unsigned max_connections;    /* per worker; beyond it new connections get 503 */
	unsigned io_contexts;	     /* per worker: connections that may have bytes in flight
					at once; beyond it requests get 503 (never malloc) */
	unsigned large_buffers;	     /* per worker: buffers for long heads and bodies, 64 KiB
					(or max_request_line + max_header_bytes + 4 KiB,
					rounded up to 4 KiB, if that is larger) */
	unsigned body_buffers;	     /* per worker: max_body-sized buffers for whole bodies */
	size_t max_request_line;     /* bytes; longer → 414. Default 8 KiB */
	size_t max_header_bytes;     /* bytes of header fields; more → 431. Default 32 KiB */
	unsigned max_headers;	     /* header fields; more → 431. Default 100 */
	size_t max_body;	     /* request body bytes; more → 413. Default 1 MiB */
	unsigned header_timeout_ms;  /* first byte to end of head; then 408 and close. Also
					accept to first byte (then a plain close). 10 s */
	unsigned idle_timeout_ms;    /* idle keep-alive connection is closed after. 60 s */
	unsigned body_timeout_ms;    /* no body bytes for this long → 408 and close. 30 s.
					Progress slower than 4 bytes/s does not re-arm it
					(slow-POST guard) */
	unsigned write_timeout_ms;   /* peer takes no response bytes for this long → close. 30 s */
	unsigned sync_write_wait_ms; /* a handler writing more than its buffers hold (a huge
					string in one call, say) waits for the socket at most
					this long in all, blocking its worker, then the write
					fails. 1000 ms. Producers never wait: they are called
					when the socket has room */
	unsigned drain_timeout_ms;   /* after zh_server_stop(): force-close after this. 10 s */
	unsigned max_keepalive_requests; /* per connection; 0 = unlimited (the default) */
	unsigned loopback_sndbuf;    /* SO_SNDBUF for peers on 127.0.0.0/8 or ::1; 0 = kernel
					autotuning. On loopback the data path is memory-bound:
					megabytes queued per socket fall out of the cache before
					the peer copies them (1 MiB files: 3x the CPU). Real
					networks keep autotuning. Default 256 KiB */
	const char *server_name;     /* Server header value; default "zerohttp"; "" = none */
	int latency_metrics;	     /* time each request for the latency histogram and
					responses_by (two vDSO clock reads per request);
					default on. The other counters are always kept */
	int reuse_port;		     /* 0 (the default): the port must be free, else
					zh_server_new() fails with -EADDRINUSE, whoever holds
					it. 1: share it with other sockets that also set
					SO_REUSEPORT (same user), which then split the
					connections: a second instance started for a
					zero-downtime restart, say. Either way each worker has
					its own SO_REUSEPORT listener inside the process */
	/* Listeners (see "Listeners and TLS" at the end of this header). NULL/0 (the
	 * default): one plain listener on address:port. Otherwise exactly these, at most 64;
	 * address and port are then unused. The array is read by zh_server_new() only. */
	const struct zh_listener *listeners;
	unsigned nlisteners;
	unsigned tls_handshake_timeout_ms; /* TLS listeners: accept to the end of the
					      handshake; then the connection is closed.
					      Default 10000 */
	const char *trusted_proxies; /* CIDRs of reverse proxies whose Forwarded /
					X-Forwarded-For is believed, separated by commas or
					blanks ("10.0.0.0/8, ::1"; up to 64; parsed by
					zh_server_new, -EINVAL if malformed; not kept). NULL:
					none. See zh_req_client_addr */
	int io;			     /* ZH_IO_EPOLL (the default) or ZH_IO_URING: the
					workers' I/O backend; see zh_server_io */
	unsigned io_buffers;	     /* io_uring: receive buffers (2 KiB) per worker, shared
					by its connections; rounded up to a power of two,
					at most 32768. 0 = 512 */
} zh_config_t;

/* Fills *cfg with the defaults above. Never fails. */
ZH_API void zh_config_init(zh_config_t *cfg);

/* ------------------------------------------------------------------------------------------
 * Server.
 */

/* Called once per request on the worker thread, after the head (and, for buffered routes,
 * the whole body) has arrived. req and resp are valid until the handler returns; slices
 * taken from req stay valid until the response has been sent (see LIFETIMES). A handler that
 * returns without writing anything produces an empty 200. */
typedef void (*zh_handler_fn)(zh_request_t *req, zh_response_t *resp, void *arg);

/* Creates a server: copies *cfg, binds and listens on one SO_REUSEPORT socket per worker and
 * maps every worker's pools. Returns NULL with *err set (negative errno) on failure; err may
 * be NULL: -EADDRINUSE when another socket holds the address and port (unless both it and
 * cfg->reuse_port ask to share), -EINVAL for a bad configuration. The listeners exist once
 * this returns, so zh_server_run() never meets a busy port. The caller owns the server and
 * frees it with zh_server_free(). The library prints nothing: errors are return values. */
ZH_API ZH_MUST_USE zh_server_t *zh_server_new(const zh_config_t *cfg, int *err);

/* Route flags. */
enum zh_route_flags {
	ZH_ROUTE_PREFIX = 1u << 0,	/* match every path that starts with `path` */
	ZH_ROUTE_STREAM_BODY = 1u << 1, /* call the handler as soon as the head is routed and
					   let it stream the body with zh_body_read(); the
					   body is not buffered and max_body does not apply */
};

/* Adds a route: requests whose method is in `methods` and whose path equals `path` (or starts
 * with it, with ZH_ROUTE_PREFIX) go to handler(req, resp, arg). Exact routes win over
 * prefix routes, longer prefixes over shorter ones. Matching treats a percent-encoded
 * unreserved character as the character itself ("/%61pi/x" reaches the prefix "/api"), while
 * zh_req_path() stays the raw bytes: a prefix handler must decode before it strips the
 * prefix by length. `path` is copied; `arg` is borrowed and
 * must outlive the server. Only before zh_server_run(): returns -EBUSY after, -EINVAL for a
 * malformed pattern, -EEXIST for a repeated or conflicting one: `path` is a pattern (see
 * "routing" at the end of this file). */
ZH_API ZH_MUST_USE int zh_server_route(zh_server_t *srv, unsigned methods, const char *path,
				       unsigned flags, zh_handler_fn handler, void *arg);

/* The bound port (useful with port 0). */
ZH_API uint16_t zh_server_port(const zh_server_t *srv);

/* Runs the workers and blocks until zh_server_stop() has been called and every worker has
 * drained (or drain_timeout_ms passed). Returns 0, or a negative errno if a worker could not
 * start. Call at most once per server. */
ZH_API ZH_MUST_USE int zh_server_run(zh_server_t *srv);

/* Asks the server to stop: listeners close, idle connections close, requests in flight are
 * answered (with Connection: close), then zh_server_run() returns. Any thread; safe inside a
 * signal handler; idempotent. */
ZH_API void zh_server_stop(zh_server_t *srv);

/* zh_server_stop() for a hand-over: idle keep-alive connections are not closed at once but
 * kept for idle_grace_ms, and a request that arrives on one meanwhile is answered (with
 * Connection: close), so a client that sent its next request as the drain began gets a
 * response instead of a closed connection. Then the idle ones close and the drain goes on
 * as zh_server_stop's. Any thread; safe inside a signal handler. */
ZH_API void zh_server_stop_gently(zh_server_t *srv, unsigned idle_grace_ms);

/* Liveness of the event loops, for a watchdog (systemd's WATCHDOG=1, a supervisor's
 * probe): wakes every worker and waits until each has turned its loop once. 0 when all
 * did within timeout_ms; -ETIMEDOUT when one did not (a handler blocking its worker, a
 * deadlock) or the server is not running. Any thread but a worker's; concurrent calls are
 * safe. Costs each worker one wake-up. */
ZH_API ZH_MUST_USE int zh_server_ping(zh_server_t *srv, unsigned timeout_ms);

/* Frees everything zh_server_new() made. Not while zh_server_run() is running. */
ZH_API void zh_server_free(zh_server_t *srv);

/* Counters, summed over workers. Each worker updates its own without locks or atomic
 * read-modify-write; a snapshot taken while the server runs is consistent per counter, not
 * across counters. Before 1.0 new counters are appended: build against the header of the
 * library you link. */
enum { ZH_STATS_METHODS = 9, ZH_LATENCY_BUCKETS = 19 };
/* Upper bounds of the latency buckets, in microseconds (25 us .. 10 s, then +Inf). */
ZH_API extern const uint32_t zh_latency_bounds_us[ZH_LATENCY_BUCKETS - 1];

typedef struct zh_stats {
	uint64_t connections_accepted, connections_closed, connections_refused;
	uint64_t requests, responses_1xx, responses_2xx, responses_3xx, responses_4xx,
		responses_5xx;
	uint64_t bytes_in, bytes_out;
	uint64_t read_calls, writev_calls, sendfile_calls;
	uint64_t parse_errors;	  /* requests rejected by the parser (400/414/431/501...) */
	uint64_t timeouts;	  /* connections closed by any timeout */
	uint64_t pool_exhausted;  /* requests answered 503 because no buffer was free */
	uint64_t double_commits;  /* zh_write_header() refused because already committed */
	uint64_t header_rejects;  /* response headers refused (CR, LF, NUL, bad name...) */
	uint64_t body_bytes_copied; /* request/response body bytes the library itself copied */
	uint64_t responses_aborted; /* streamed responses cut short (error after the head left) */
	uint64_t sync_write_waits;  /* times a handler's write waited for the socket (poll) */
	uint64_t heap_allocs;	    /* malloc-family calls on worker threads, as reported by
				       zh_note_alloc() (zerohttpd counts every one) */
	/* responses by request method (GET HEAD POST PUT DELETE OPTIONS PATCH TRACE, other) and
	 * status class (1xx..5xx); "other" also holds answers to requests that did not parse */
	uint64_t responses_by[ZH_STATS_METHODS][5];
	/* time from a request's head to its response's end (queued whole, or the last chunk
	 * of a streamed body): counts per bucket (upper bounds in zh_latency_bounds_us, the
	 * last one unbounded), their sum and count */
	uint64_t latency_buckets[ZH_LATENCY_BUCKETS];
	uint64_t latency_sum_us, latency_count;
	uint64_t requests_done;	    /* in flight: requests - requests_done */
	/* requests refused by the parser, by status: 400 413 414 417 431 501 505, other */
	uint64_t parse_rejects[8];
	uint64_t shed_429, shed_503; /* refused for rate or load (503 also: no buffer, over
					max_connections) */
	uint64_t large_buffers_in_use, large_buffers_high_water, body_buffers_in_use,
		body_buffers_high_water;
	uint64_t io_contexts_in_use, io_contexts_high_water;
	uint64_t access_log_bytes_dropped; /* log bytes not written: disk full, reader stalled */
	uint64_t stalled_evictions; /* stalled peers cut early to lend their I/O context to a
				       ready one (every context was lent) */
	uint64_t header_errors;	    /* response header calls that failed (full store, bad
				       field, after the commit): see the sticky rule under
				       "Response writer" */
	uint64_t drain_connections;  /* connections open when zh_server_stop() began the drain */
	uint64_t drain_force_closed; /* of those, still open at drain_timeout_ms: force-closed */
	/* HTTP/2 (zh_http2_enable): connections and streams served, GOAWAY frames sent, and
	 * the abuse limits that ended a connection (each also sends GOAWAY): rapid resets
	 * (CVE-2023-44487), control-frame floods (SETTINGS, PING, ...), CONTINUATION floods,
	 * oversized header lists (HPACK bombs), streams over the concurrency limit, slow
	 * headers, zero-window readers */
	uint64_t h2_connections, h2_streams, h2_goaway_sent;
	uint64_t h2_rapid_resets, h2_floods, h2_continuation_floods, h2_header_lists_too_large,
		h2_streams_refused, h2_slow_headers, h2_zero_window;
	/* gauges: bytes of the workers' HTTP/2 pools (nghttp2's sessions and streams, the
	 * connections' state) handed out, and mapped (the high water, never given back) */
	uint64_t h2_pool_in_use, h2_pool_mapped;
	uint64_t connections_upgraded; /* handed over after a 101 (zh_resp_upgrade); also
					  counted in connections_closed */
} zh_stats_t;

ZH_API void zh_server_stats(const zh_server_t *srv, zh_stats_t *out);

/* Counts one heap allocation if called on a worker thread (else nothing): for a program
 * that wraps malloc to prove its request path allocates nothing. Async-signal-safe. */
ZH_API void zh_note_alloc(void);

/* ------------------------------------------------------------------------------------------
 * Middleware: a chain of hooks around every request, composable in any order because each
 * hook has one place in the request's life and the response rules above still hold.
 *
 *  before(req, resp, arg)  right after the head is parsed, before the body is read and
 *                          before routing for the global chain (so a CORS preflight or a
 *                          rate limit sees every request), after routing for a route's
 *                          chain. Returns ZH_MW_NEXT, or answers the request itself (writes
 *                          a response on resp) and returns ZH_MW_ANSWERED: the rest of the
 *                          chain and the handler are skipped, and an unread request body is
 *                          skipped or the connection closed. A hook that returns ZH_MW_NEXT
 *                          must leave resp untouched (keep per-request state in its slot,
 *                          zh_mw_slot: the commit and done hooks read it again).
 *  commit(resp, arg)       at the commit point, status known, headers still mutable: where
 *                          CORS adds its headers and gzip decides. Chain order, then the
 *                          handler's own zh_resp_on_commit hooks.
 *  done(req, resp, arg)    once per response, when it has ended (queued whole, or its last
 *                          chunk) or its connection died first: access logs and counters.
 *                          Read-only. A request whose client closed the connection before
 *                          any response head left reports status 499 (nginx's "client
 *                          closed request"; never sent) and body length 0; one whose head
 *                          had left keeps its status. Every request whose head parsed (zh_req_parsed) gets
 *                          exactly one, so before/done pairs balance (in-flight counts).
 *                          Answers the library makes to bytes that never parsed (400s,
 *                          a 408 for a partial head) also get one, with
 *                          zh_req_parsed() 0 and empty slices.
 *
 * The global chain runs first, then the route's. At most 16 global middleware, 8 per route,
 * 64 in all; the struct is copied. Not while the server runs (-EBUSY).
 */
enum { ZH_MW_NEXT = 0, ZH_MW_ANSWERED = 1 };
typedef struct zh_middleware {
	int (*before)(zh_request_t *req, zh_response_t *resp, void *arg);
	void (*commit)(zh_response_t *resp, void *arg);
	void (*done)(zh_request_t *req, zh_response_t *resp, void *arg);
	void *arg;
	const void *key; /* optional: publishes this middleware's slot under key (see
			    zh_req_published); NULL: private */
} zh_middleware_t;
ZH_API ZH_MUST_USE int zh_server_use(zh_server_t *srv, const zh_middleware_t *mw);
/* Adds mw to the chain of every route registered (so far) with exactly this path. */
ZH_API ZH_MUST_USE int zh_route_use(zh_server_t *srv, const char *path,
				    const zh_middleware_t *mw);

/* ------------------------------------------------------------------------------------------
 * The extension interface: what a feature may use to reach the core, besides the calls any
 * handler makes. The bundled features (JSON writer, gzip, CORS, auth, limiter, static files,
 * metrics, access log, protobuf) use it and nothing else of the core's state, so an
 * application's own middleware can do all they do.
 *
 * Per-request slots. Each middleware of a request's chains has one pointer of its own on
 * the request, and the application one more. Both are NULL when the request starts and
 * stay as set from the first middleware hook (before), through the handler and everything
 * that continues it (zh_body_wait continuations, producers, deferred resumptions), to the
 * last done hook, also when the connection dies first. The core never reads them; what
 * they point to is their owner's (free it in the done hook if need be).
 */
/* The running middleware's own slot: inside its before, commit and done hooks (and in a
 * commit hook its before hook registers with zh_resp_on_commit while answering); NULL
 * anywhere else, the handler included. The same middleware on the global chain and on a
 * route has two slots. */
ZH_API void **zh_mw_slot(zh_request_t *req);
/* The application's slot: any hook, the handler and its continuations. */
ZH_API void zh_req_set_user(zh_request_t *req, void *user);
ZH_API void *zh_req_user(const zh_request_t *req);

/* Per-worker state without locks: size it by zh_server_workers (fixed once the server is
 * created) and index it by zh_req_worker, the request's worker (0 .. workers - 1). */
ZH_API unsigned zh_server_workers(const zh_server_t *srv);
ZH_API unsigned zh_req_worker(const zh_request_t *req);

/* Response headers as the commit hook or body filter sees them: the i-th stored field
 * (0-based, in the order set; library-owned fields, Content-Length and Connection, are not
 * among them). 1 and the slices (valid until the headers change or the response ends), 0
 * past the last. With zh_resp_header_get/_set/_add/_del the whole store is reachable. */
ZH_API int zh_resp_header_at(const zh_response_t *resp, unsigned i, zh_slice_t *name,
			     zh_slice_t *value);
/* 1 and *len if Content-Length was declared (zh_resp_header_set), else 0. A filter that
 * changes the length undeclares it with zh_resp_header_del(resp, "Content-Length"): the
 * body that leaves is then measured (or chunked) as if none had been set. */
ZH_API int zh_resp_content_length(const zh_response_t *resp, uint64_t *len);

/* Writing straight into the send buffers: [*p, *end) is free space of at least min bytes
 * (the response spills to the socket, or takes an overflow buffer, if needed); then
 * zh_resp_window_commit queues [from, to) written at its start as body (through the body
 * filter if one is installed). No other body write may come in between. Commits an
 * implicit 200 like any body source. 0 or the -errno a body write returns. */
ZH_API int zh_resp_window(zh_response_t *resp, size_t min, char **p, char **end);
ZH_API void zh_resp_window_commit(zh_response_t *resp, char *from, char *to);

/* A pending writer: an encoder that keeps a window (zh_resp_window) open across calls and
 * queues its bytes later, as the JSON writer does. One per response. The core calls
 *   sync(resp, state)         before it queues any other body byte (zh_write, a file, ...,
 *                             also from inside zh_resp_window), when a handler, continuation
 *                             or producer call returns, and when the response ends: the
 *                             writer commits what it holds (giving its window up first).
 *   check(resp, state, final) (optional) the writer's verdict, 0 or -errno: before a
 *                             producer's head leaves (final 0) and when the response ends
 *                             (final 1: an unfinished output is an error). An error then
 *                             fails the response (a 500 if its head has not left).
 *   held(resp, state)         (optional) bytes written but not yet committed, counted by
 *                             zh_resp_body_len.
 * zh_resp_writer_begin borrows ops (keep it valid until the response ends: a static table)
 * and lends ZH_WRITER_STATE_SIZE bytes (16-byte aligned, not zeroed), the response's till it
 * ends, for the writer's state; worker thread only, like every response call. NULL if it has
 * a pending writer already (or has ended). zh_resp_writer returns that state while ops is
 * the response's writer, else NULL: how later calls (producers, continuations) find it. */
typedef struct zh_writer_ops {
	void (*sync)(zh_response_t *resp, void *state);
	int (*check)(zh_response_t *resp, void *state, int final);
	uint64_t (*held)(const zh_response_t *resp, const void *state);
} zh_writer_ops_t;
#define ZH_WRITER_STATE_SIZE 96
ZH_API void *zh_resp_writer_begin(zh_response_t *resp, const zh_writer_ops_t *ops);
ZH_API void *zh_resp_writer(zh_response_t *resp, const zh_writer_ops_t *ops);

/* Body filters ("on body writes"): a commit hook may install one per response. It then
 * receives every body byte the handler writes, whatever the source (copies,
 * references, JSON, protobuf, producers), in order, instead of the connection; what it
 * emits through zh_filter_window/zh_filter_commit is what is sent, framed as usual
 * (Content-Length when it all fits the send buffers, else chunked). Bytes passed by
 * reference are released as soon as the filter has taken them. File bodies (zh_send_file)
 * are not filtered: zh_resp_body_is_file() tells a commit hook that the commit came from one;
 * a filter that has taken nothing yet is dropped when zh_send_file comes, and one that has
 * fails it with -ENOTSUP. For HEAD the filter runs as for GET and its output is counted,
 * never sent: the head then carries what the filter decided and the length the GET's body
 * would have (RFC 9110 §9.3.2).
 *
 *  write   consumes body bytes; a negative errno fails the response.
 *  head    right before the head is serialized (the end of a whole body, or the start of a
 *          streamed one): the last moment to decide headers, which are mutable inside it.
 *  finish  the body is complete: emit what is left. Called before head for a whole body.
 *  release once, when the response ends or its connection dies.
 */
typedef struct zh_body_filter {
	int (*write)(zh_response_t *resp, const void *data, size_t len, void *arg);
	void (*head)(zh_response_t *resp, void *arg);
	int (*finish)(zh_response_t *resp, void *arg);
	void (*release)(void *arg);
	void *arg;
	/* optional: a producer's call ended; emit what is held so the stream keeps moving */
	int (*flush)(zh_response_t *resp, void *arg);
} zh_body_filter_t;
ZH_API int zh_resp_set_filter(zh_response_t *resp, const zh_body_filter_t *filter);
ZH_API int zh_resp_body_is_file(const zh_response_t *resp);
/* The filter's output: free send-buffer space of at least min bytes at [*p, *end), then
 * queue [from, to) written at its start. Nothing else may write in between. */
ZH_API int zh_filter_window(zh_response_t *resp, size_t min, char **p, char **end);
ZH_API void zh_filter_commit(zh_response_t *resp, char *from, char *to);

/* gzip (zlib, streaming) as middleware: compresses a response when Accept-Encoding allows
 * gzip (q-values honoured), its Content-Type is compressible (text/ types, JSON, JavaScript, XML,
 * SVG, wasm) and its body is at least min_length bytes; sets Content-Encoding and
 * `Vary: Accept-Encoding`, drops Content-Length (the framing follows the compressed
 * output: Content-Length if it fits the send buffers, else chunked). A HEAD is compressed
 * and the output dropped, so it carries its GET's Content-Encoding, Vary, weak ETag and
 * encoded Content-Length. Leaves alone 204/304, 206 and Content-Range, bodies already encoded, and file bodies (static files are
 * served precompressed by sendfile). zlib's memory comes from per-worker slots mapped by
 * zh_gzip_new: no malloc per response; with every slot busy a response goes uncompressed. */
typedef struct zh_gzip zh_gzip_t;
typedef struct zh_gzip_options {
	int level;		     /* 1..9; default 6 */
	size_t min_length;	     /* smaller bodies go uncompressed; default 256, at most 4096 */
	unsigned streams_per_worker; /* concurrent gzip responses per worker (about 280 KiB of
					address space each, touched when used); default 64 */
} zh_gzip_options_t;
ZH_API void zh_gzip_options_init(zh_gzip_options_t *opts);
ZH_API ZH_MUST_USE zh_gzip_t *zh_gzip_new(const zh_server_t *srv,
					  const zh_gzip_options_t *opts, int *err);
ZH_API zh_middleware_t zh_gzip_middleware(zh_gzip_t *gz); /* a commit hook */
ZH_API void zh_gzip_free(zh_gzip_t *gz); /* after the server has stopped */

/* Rate limiting and load shedding as middleware: a token bucket per client address and a
 * limit on requests in flight over all workers, both changeable while the server runs.
 *
 *   zh_limit_t *l = zh_limit_new(0, &err);            // tracks 65,536 clients
 *   zh_limit_set(l, 100, 200, 1000);                  // 100 req/s, bursts of 200; 1000 in flight
 *   zh_middleware_t mw = zh_limit_middleware(l);
 *   zh_server_use(srv, &mw);                          // first: shed before other work
 *
 * A request that finds its client's bucket empty gets 429 with Retry-After: the whole
 * seconds until its next token, at least 1. A request beyond max_inflight gets 503 with
 * Retry-After: 1. The before hook answers both, so they cost no handler and allocate
 * nothing; they count in zh_stats_t shed_429 and shed_503 and keep the connection open.
 * The rate is checked first, so a refused request never takes an in-flight place; a
 * request refused for load has used its token. Buckets are keyed by zh_req_client_addr
 * (the peer, or the client a trusted proxy names) and
 * shared by all workers: an IPv4 client per address (its IPv4-mapped IPv6 form is the same
 * client), an IPv6 client per /64 by default (zh_limit_ipv6_prefix), since one subscriber
 * holds a whole /64 and may rotate through its addresses at will. The table has a fixed size: when it is full, a new client takes the place of the
 * client nearest to a full bucket, which loses least by being forgotten. A request holds an
 * in-flight place from its before hook until its done hook, that is, until its response has
 * ended (including streamed and deferred responses), and only while max_inflight is set.
 * Requests already running when a limit is switched on are not counted. Thread-safety and
 * memory: see src/mw_limit.c. Use at most one limiter per request chain. */
typedef struct zh_limit zh_limit_t;
/* Tracks at least `clients` addresses (0: 65,536) in a table mapped here, 128 bytes per
 * 5 clients; nothing is allocated later. No limit is on until zh_limit_set(). NULL with
 * *err (negative errno) on failure; err may be NULL. */
ZH_API ZH_MUST_USE zh_limit_t *zh_limit_new(unsigned clients, int *err);
/* rps: requests per second per client, 0.001 to 1e9, or 0 for no rate limit. burst: the
 * bucket's size, at least 1; 0 picks max(rps, 1). A fractional burst admits its whole
 * part at once. max_inflight: 0 for no limit. Any thread, any time, also while workers
 * run: requests see the old or the new limits, never a mix. A change of rate or burst
 * gives every client a full bucket; setting the same values again changes nothing. Returns
 * 0, or -EINVAL (and changes nothing). */
ZH_API ZH_MUST_USE int zh_limit_set(zh_limit_t *l, double rps, double burst,
				    unsigned max_inflight);
/* IPv6 clients share a bucket per prefix of this many leading bits, 32 to 128 (128: per
 * address); default 64. Many ISPs give each subscriber a /56 or /48: 56 or 48 keeps such a
 * subscriber to one bucket, at the price of sharing it with neighbours where a provider
 * hands out /64s. IPv4 and IPv4-mapped addresses are always keyed per address. Any
 * thread, any time; buckets already charged under the old prefix are not carried over.
 * Returns 0, or -EINVAL (and changes nothing). */
ZH_API ZH_MUST_USE int zh_limit_ipv6_prefix(zh_limit_t *l, unsigned bits);
/* Requests for exactly this path (say "/healthz", "/metrics") are neither limited nor
 * counted, so monitoring sees an overloaded server. Up to 8 paths of up to 128 bytes,
 * copied; before the middleware is in use. -EINVAL, -ENOSPC. */
ZH_API ZH_MUST_USE int zh_limit_exempt(zh_limit_t *l, const char *path);
/* The middleware (before and done hooks) to pass to zh_server_use(). l must outlive the
 * server. */
ZH_API zh_middleware_t zh_limit_middleware(zh_limit_t *l);
/* Requests holding an in-flight place now. */
ZH_API unsigned zh_limit_inflight(const zh_limit_t *l);
/* After the server has been freed and no thread calls zh_limit_set() any more. */
ZH_API void zh_limit_free(zh_limit_t *l);

/* GET /metrics: the counters above in the Prometheus text format 0.0.4 (metric names
 * zerohttp_*; see README), summed over workers at scrape time. arg is the server. */
ZH_API void zh_metrics_handler(zh_request_t *req, zh_response_t *resp, void *arg);
/* /healthz: 200 while the process serves. /readyz: 200, or 503 once draining (SIGTERM): its
 * own server's, and also arg's when arg is a zh_server_t (NULL: none), so that a separate
 * metrics listener reports the draining state of the server it watches. */
ZH_API void zh_healthz_handler(zh_request_t *req, zh_response_t *resp, void *arg);
ZH_API void zh_readyz_handler(zh_request_t *req, zh_response_t *resp, void *arg);

/* ------------------------------------------------------------------------------------------
 * Request view. Every slice points into the connection's buffers (nothing is copied) and
 * lives until the response has been sent.
 */
/* The client's address: fills addr (4 bytes for AF_INET, 16 for AF_INET6) and returns the
 * family. zh_req_peer_str writes it as text ("127.0.0.1", "::1"), NUL-terminated, and
 * returns its length (INET6_ADDRSTRLEN, 46, is always enough). */
ZH_API int zh_req_peer_addr(const zh_request_t *req, uint8_t addr[16]);
ZH_API size_t zh_req_peer_str(const zh_request_t *req, char *buf, size_t cap);
/* 1 once the request's head parsed (its slices are valid), 0 for a library answer to bytes
 * that never formed a request (see the done hooks). */
ZH_API int zh_req_parsed(const zh_request_t *req);
ZH_API zh_slice_t zh_req_method(const zh_request_t *req);
ZH_API unsigned zh_req_method_bit(const zh_request_t *req); /* ZH_GET...; 0 if other */
ZH_API zh_slice_t zh_req_target(const zh_request_t *req);   /* as sent: "/a/b?x=1" */
ZH_API zh_slice_t zh_req_path(const zh_request_t *req);	    /* "/a/b", not decoded */
ZH_API zh_slice_t zh_req_query(const zh_request_t *req);    /* "x=1"; empty if none */
ZH_API zh_slice_t zh_req_host(const zh_request_t *req);     /* target authority or Host */
ZH_API int zh_req_version(const zh_request_t *req);	    /* 10 or 11 */

/* Header fields in arrival order; values with surrounding whitespace removed. */
ZH_API size_t zh_req_header_count(const zh_request_t *req);
/* Returns 0 and fills *name / *value, or -ERANGE if i is out of range. */
ZH_API int zh_req_header_at(const zh_request_t *req, size_t i, zh_slice_t *name,
			    zh_slice_t *value);
/* Case-insensitive lookup of the first field called `name` (NUL-terminated). Returns 1 and
 * fills *value if present, 0 if not. */
ZH_API int zh_req_header(const zh_request_t *req, const char *name, zh_slice_t *value);

/* ------------------------------------------------------------------------------------------
 * Request body (the ReadAll problem). Chunked framing is always removed. Two kinds of route:
 *
 *  - Buffered (default): the handler runs once the whole body has arrived, bounded by
 *    max_body. A Content-Length over it is answered 413 before a byte of the body is read;
 *    a chunked body that grows over it is answered 413 when it does.
 *  - Streaming (ZH_ROUTE_STREAM_BODY): the handler runs as soon as the head is routed and
 *    pulls the body with zh_body_read(), straight from the socket into its own buffer. Memory
 *    is the caller's buffer, whatever the body's size. Expect: 100-continue is answered by
 *    the first zh_body_read() call, so a handler that refuses without reading never invites
 *    the body.
 */

/* Declared length, or -1 for a chunked body whose length is not known yet. 0 if none. */
ZH_API int64_t zh_body_length(const zh_request_t *req);

/* Buffered routes: the whole body in one slice. Small bodies stay in the receive buffer (no
 * copy); larger ones are received straight into a pooled buffer sized for max_body. The slice
 * lives until the response has been sent. Returns 0; -ENOTSUP on a streaming route. */
ZH_API int zh_body_all(zh_request_t *req, zh_slice_t *out);

/* Copies up to cap body bytes into buf, continuing where the previous call stopped (the
 * io.ReadFull / io.CopyBuffer shape). Returns the number of bytes copied (> 0), or 0 at the
 * end of the body; -EINVAL if cap is 0. On a buffered route it fails no other way. On a
 * streaming route it may also return:
 *   -EAGAIN      no body bytes right now: call zh_body_wait() and return from the handler;
 *   -ETIMEDOUT   no body bytes for body_timeout_ms;
 *   -ECONNRESET  the peer closed before the end of the body;
 *   -EPROTO      malformed chunked framing;
 *   -ENOBUFS     chunked framing needs a larger receive buffer and none is free.
 * After an error the connection is closed once the response (if any) has been sent; if the
 * handler commits nothing, the library answers 408, 503 or 400 itself. */
ZH_API ssize_t zh_body_read(zh_request_t *req, void *buf, size_t cap);

/* Streaming routes: suspends the request until zh_body_read() can make progress (more bytes,
 * the end, or an error), then calls fn(req, resp, arg) on the worker; req, resp and what the
 * handler queued stay as they were. The handler must return right after this call. A handler
 * or continuation that returns without calling zh_body_wait() finishes the response. Other
 * connections are served meanwhile; this connection's later pipelined requests wait.
 * Returns 0, or -EINVAL on a buffered route. fn is called exactly once per successful call. */
typedef void (*zh_body_fn)(zh_request_t *req, zh_response_t *resp, void *arg);
ZH_API int zh_body_wait(zh_request_t *req, zh_body_fn fn, void *arg);

/* ------------------------------------------------------------------------------------------
 * Response writer: Go's ResponseWriter rules, made explicit.
 *
 *  - Headers may be set, replaced and removed until the response is committed; after that
 *    every header call returns -EALREADY and changes nothing.
 *  - Header errors are sticky. A set or add that fails (-ENOSPC: the 32 fields or 4 KiB
 *    are full; -EINVAL: a refused name or value; -EALREADY) is counted in
 *    stats.header_errors, and, while headers are still mutable (before the commit, in a
 *    commit hook), it also fails the response: when it ends it is a 500 carrying none of
 *    its own fields (only the library's Server, Date and framing), so a lost CORS, cache or
 *    encoding field never goes out as a plausible answer. Its later body writes return
 *    -EIO. A call refused after the commit changes nothing but is counted. Because the
 *    error cannot be lost, the setters are not ZH_MUST_USE: a handler may call them as
 *    statements; they still return the error for callers who want to react (stop early).
 *  - zh_write_header(status) commits. A second call returns -EALREADY and bumps
 *    stats.double_commits; there is never a second status line.
 *  - The first body write commits an implicit 200.
 *  - Commit hooks (zh_resp_on_commit) run at the commit point, in registration order, with
 *    the status known and headers still mutable. Middleware hooks here.
 *  - Header names must be tokens; values must not contain CR, LF, NUL or other control
 *    characters (HTAB allowed). Offending headers are refused (-EINVAL), never sent (and
 *    fail the response, as above).
 *  - Status line, headers and body parts are queued as iovecs and leave in one writev after
 *    the handler returns, with Content-Length computed from the parts. If the handler set
 *    Content-Length itself and the body disagrees, the response becomes a 500 (the stream is
 *    never corrupted).
 *  - Framing follows the body. A body that outgrows the connection's send area (16 KiB,
 *    and what the socket takes at once) while the handler writes it, or one a producer or
 *    a deferral keeps open, is sent as it is written: `Transfer-Encoding: chunked` for
 *    HTTP/1.1 (each send buffer one chunk, framed by small iovecs, never copied again), a
 *    close-delimited body for HTTP/1.0, or the handler's own Content-Length if it set one.
 *    Once the head has left, an error can no longer become a 500: the connection is closed
 *    without the terminating chunk (or short of the length), so the client sees the
 *    truncation instead of a silently shortened body.
 *  - Content-Length, Transfer-Encoding, Connection and Date are the library's: setting
 *    Content-Length declares the length; Connection accepts only "close"; the others are
 *    refused (-EINVAL).
 *  - 1xx statuses are the library's (100-continue); 204 and 304 carry no body: a body write
 *    after those returns -EINVAL.
 *  - For HEAD the body writes are counted (Content-Length) but not sent.
 */

/* Header names and values are copied (into the response's header area: 32 fields, 4 KiB of
 * "Name: value\r\n" lines), so the caller's strings may be reused once the call returns.
 * -ENOSPC when full. Any failure is sticky (see above). */
ZH_API int zh_resp_header_set(zh_response_t *resp, const char *name, const char *value);
ZH_API int zh_resp_header_setn(zh_response_t *resp, const char *name, size_t name_len,
			       const char *value, size_t value_len);
ZH_API int zh_resp_header_add(zh_response_t *resp, const char *name, const char *value);
/* Removes every field called name. Returns how many were removed (0 is not an error).
 * Content-Length and Connection undo what setting them declared; removing Server brings
 * back the library's own Server field. */
ZH_API int zh_resp_header_del(zh_response_t *resp, const char *name);
/* Returns 1 and fills *value with the first field called name (valid until the header is
 * changed or the response ends), 0 if none. Library-owned fields (Content-Length,
 * Connection) are not visible here. */
ZH_API int zh_resp_header_get(const zh_response_t *resp, const char *name, zh_slice_t *value);

/* Commits the response with `status` (200..599). Returns 0, -EALREADY if already committed,
 * -EINVAL for a status outside 200..599. */
ZH_API int zh_write_header(zh_response_t *resp, int status);

/* The status, 0 before commit. */
ZH_API int zh_resp_status(const zh_response_t *resp);
ZH_API int zh_resp_committed(const zh_response_t *resp);

/* Called once at the commit point, with the status set and headers still mutable. At most 24
 * hooks per response, the commit hooks of its middleware chains included (they are
 * registered first, one per global or route middleware that has one: at most 16 + 8);
 * -ENOSPC beyond, -EALREADY after commit. fn must not write body bytes. */
typedef void (*zh_commit_fn)(zh_response_t *resp, void *arg);
ZH_API ZH_MUST_USE int zh_resp_on_commit(zh_response_t *resp, zh_commit_fn fn, void *arg);

/* Body sources. Each commits an implicit 200 if nothing was committed yet. */

/* Copies len bytes into the connection's pooled send buffers; the caller may reuse data at
 * once. For small dynamic data. A body that outgrows the buffers is sent (chunked) as it is
 * written. When the socket is full and the response already holds its four 64 KiB overflow
 * buffers, the write waits for the socket (sync_write_wait_ms in all, per response), then
 * fails with -ENOBUFS (the response then fails as described above). Bodies that big are
 * better written by a producer (zh_resp_produce), which never waits. */
ZH_API int zh_write(zh_response_t *resp, const void *data, size_t len);

/* Sends len bytes from the caller's memory without copying them. The caller keeps data
 * valid and unchanged until release(arg) is called, once, on the worker thread, after the
 * kernel has taken the last byte (or the connection died). release may be NULL. On an error
 * return release is never called. Request slices may be passed with release NULL. */
typedef void (*zh_release_fn)(void *arg);
ZH_API int zh_write_ref(zh_response_t *resp, const void *data, size_t len,
			zh_release_fn release, void *arg);

/* Sends bytes that live for the whole program (string literals, static tables). */
ZH_API int zh_write_static(zh_response_t *resp, const void *data, size_t len);

/* Sends length bytes of the open file fd from offset with sendfile: file bytes never enter
 * user space. The caller keeps fd open and the bytes in place until release(arg) is called
 * (once, on the worker thread, after the kernel has taken the last byte or the connection
 * died); the file position of fd is not used or changed. If the file turns out shorter than
 * offset + length while it is being sent, the connection is closed (the framing is broken;
 * never garbage, never a hang). On an error return release is never called. */
ZH_API int zh_send_file(zh_response_t *resp, int fd, uint64_t offset, uint64_t length,
			zh_release_fn release, void *arg);

/* Packs a protobuf-c message (any generated message, passed as &m.base) straight into the
 * connection's pooled send buffers: no intermediate buffer, no heap allocation. Sets
 * Content-Type: application/x-protobuf unless the handler already set one (also after
 * zh_write_header(), while the head has not left). msg is only
 * read during the call; the caller may free or reuse it once the call returns. Returns 0,
 * -EINVAL for a NULL msg, or what zh_write returns (-ENOBUFS when the response's buffers
 * are exhausted: the response then becomes a 500 if it was not sent yet). The header does
 * not need protobuf-c's; a program calling this links with protobuf-c (libprotobuf-c). */
struct ProtobufCMessage;
ZH_API int zh_send_protobuf(zh_response_t *resp, const struct ProtobufCMessage *msg);

/* Convenience: status, Content-Type and a copied body in one call. The status is checked
 * first (-EINVAL, -EALREADY), so a refused call changes nothing. */
ZH_API int zh_reply(zh_response_t *resp, int status, const char *content_type,
		    const void *body, size_t len);

/* The request this response answers. */
ZH_API zh_request_t *zh_resp_request(zh_response_t *resp);

/* Body bytes written so far (for HEAD: counted, not sent). Producers pace themselves by it. */
ZH_API uint64_t zh_resp_body_len(const zh_response_t *resp);

/* ZH_RESP_STATE_SIZE bytes (16-byte aligned) for the handler's own state across
 * continuations, producer calls and deferrals: a JSON writer, a cursor. Owned by the
 * response; valid from the handler's start until the response ends; not zeroed. */
#define ZH_RESP_STATE_SIZE 256
ZH_API void *zh_resp_state(zh_response_t *resp);

/* ------------------------------------------------------------------------------------------
 * Producers and deferred responses: bodies that take longer than one handler call.
 *
 * A producer writes the body piece by piece, each time the socket has taken everything
 * queued before: memory stays bounded whatever the body's size and however slow the
 * client. Register it in the handler (or a continuation) and return; the head leaves at
 * once (chunked for HTTP/1.1). fn writes some bytes with any body source, then returns
 * ZH_PRODUCE_MORE to be called again, ZH_PRODUCE_DONE to end the response, or a negative
 * errno to abort (the connection closes without the terminating chunk). Returning
 * ZH_PRODUCE_MORE without writing anything is an error (it would spin). fn is called once
 * with resp NULL instead, so that it can release arg, when the connection dies first, when
 * the response failed before its head left (it stays a 500), and for HEAD (the head goes
 * without a length; nothing is produced). A producer should write a few tens of KiB per
 * call (see zh_resp_body_len); after 8 calls in a row other connections get a turn.
 */
typedef int (*zh_produce_fn)(zh_response_t *resp, void *arg);
enum { ZH_PRODUCE_DONE = 0, ZH_PRODUCE_MORE = 1 };
ZH_API ZH_MUST_USE int zh_resp_produce(zh_response_t *resp, zh_produce_fn fn, void *arg);

/* A deferred response waits, without blocking the worker, until zh_deferred_resume() is
 * called from any thread: fn(req, resp, arg) then runs on the connection's worker and may
 * write, set headers, defer again or register a producer; returning finishes the response
 * as a handler's return does. The head has not left while deferred, so headers and status
 * are still free. If the connection died meanwhile, fn(NULL, NULL, arg) runs instead
 * (exactly one call either way). The token is plain data: copy it anywhere. The
 * application owns the deadline (resume with a 504 when it passes). */
typedef struct zh_deferred {
	void *worker, *conn;
	uint32_t gen;
} zh_deferred_t;
ZH_API ZH_MUST_USE int zh_resp_defer(zh_response_t *resp, zh_deferred_t *token);
/* 0, -EAGAIN when 1024 resumptions already wait for that worker (try again), -ESHUTDOWN
 * once the server has stopped (fn is not called then). */
ZH_API int zh_deferred_resume(const zh_deferred_t *token, zh_body_fn fn, void *arg);

/* Protocol upgrade (RFC 9110 §7.8; WebSocket's handshake, RFC 6455 §4.2.2): the response
 * becomes "101 Switching Protocols" with "Connection: upgrade" and "Upgrade: protocol" plus
 * the fields set before the call (Sec-WebSocket-Accept...), committed by the call (later
 * body writes are refused: a 101 has none). Once that head has left whole, the connection
 * leaves the server: fn(fd, early, early_len, arg) runs on the worker with the socket
 * (nonblocking, TCP_NODELAY, no longer watched or timed by the server, counted in
 * connections_closed and connections_upgraded: the caller owns it now and closes it) and
 * the bytes the client sent after the request, which are the new protocol's (lent for the
 * call only; a client may send them without waiting for the 101). If the connection dies
 * first (a peer that stops reading hits the write timeout), fn(-1, NULL, 0, arg) runs
 * instead: exactly one call either way. From a handler or a deferred response's
 * continuation, before the commit. Only on an HTTP/1.1 request without a body whose
 * Connection names "upgrade" and whose Upgrade field lists protocol (case-insensitively),
 * on a plain socket (zh_req_upgrade tells; on io_uring the socket leaves the ring once its
 * receive has been cancelled, with what that receive still brought among the early
 * bytes). Returns 0; -EALREADY (committed, or called twice); -EINVAL (the request did not
 * offer protocol, has a body, or protocol is not token["/"token]); -EOPNOTSUPP (HTTP/2,
 * TLS: there is no plain socket to hand over); or
 * what zh_resp_header_set returns. Pipelined responses before it leave first; nothing
 * after the upgrading request is read as HTTP. */
typedef void (*zh_upgrade_fn)(int fd, const void *early, size_t early_len, void *arg);
/* Does the request ask for an upgrade zh_resp_upgrade can make? 1 with *offered the value
 * of its Upgrade field (the protocols, a comma-separated list: valid while the request
 * is), 0 when it does not ask (or has a body, or is HTTP/1.0), -EOPNOTSUPP when it cannot
 * be handed over here (HTTP/2, TLS). */
ZH_API int zh_req_upgrade(const zh_request_t *req, zh_slice_t *offered);
ZH_API ZH_MUST_USE int zh_resp_upgrade(zh_response_t *resp, const char *protocol,
				       zh_upgrade_fn fn, void *arg);

/* ------------------------------------------------------------------------------------------
 * JSON writer: values are encoded straight into the connection's send buffers (no document,
 * no second copy), which leave by writev; a document bigger than the buffers is sent
 * chunked as it is written (see above).
 *
 *   zh_json_t *j = zh_json_begin(resp, 0);        // the response's own writer
 *   zh_json_obj(j);  zh_json_key(j, "id", 2);  zh_json_u64(j, 7);  zh_json_end(j);
 *   return;                                       // errors surface at the end: see below
 *
 * Strings are escaped per RFC 8259 (quote, backslash, controls as \n or \u00XX) and
 * validated as UTF-8: an invalid sequence becomes U+FFFD (ZH_JSON_STRICT_UTF8: an error
 * instead). ZH_JSON_ESCAPE_HTML also escapes '<', '>' and '&', U+2028 and U+2029, for
 * embedding in HTML. Doubles are written as the shortest text that reads back exactly
 * (NaN and infinities are errors). Nesting is limited to 64 levels.
 *
 * Errors are sticky: misuse (a value where a key is due, an unbalanced end, a second
 * top-level value, too deep), a refused number, invalid UTF-8 under STRICT, or a failed
 * write. The first error is kept (zh_json_error) and nothing more is emitted; when the
 * response ends, an erroneous or unfinished document becomes a 500 if its head has not
 * left yet, else the connection is closed without completing the body. The writer sets
 * Content-Type: application/json unless the handler set one, whatever the status, also
 * after an explicit zh_write_header() (201, 404...) as long as the head has not left (a
 * commit hook then ran before the type was known: gzip leaves such a body uncompressed;
 * set Content-Type before zh_write_header() to have it compressed). Between zh_json_begin and the
 * end of the response, other body writes may be interleaved (they come in order).
 */
typedef struct zh_json zh_json_t;
enum { ZH_JSON_ESCAPE_HTML = 1, ZH_JSON_STRICT_UTF8 = 2 };
/* The response's writer (one per response, owned by it, valid until the response ends;
 * producer calls and continuations get it back with zh_json_get). Starts a document. It is
 * the response's pending writer (see the extension interface): NULL if another one holds
 * the response. */
ZH_API zh_json_t *zh_json_begin(zh_response_t *resp, unsigned flags);
ZH_API zh_json_t *zh_json_get(zh_response_t *resp);
ZH_API void zh_json_obj(zh_json_t *j);		/* { */
ZH_API void zh_json_arr(zh_json_t *j);		/* [ */
ZH_API void zh_json_end(zh_json_t *j);		/* } or ] */
ZH_API void zh_json_key(zh_json_t *j, const char *key, size_t len);
ZH_API void zh_json_str(zh_json_t *j, const char *s, size_t len);
ZH_API void zh_json_i64(zh_json_t *j, int64_t v);
ZH_API void zh_json_u64(zh_json_t *j, uint64_t v);
ZH_API void zh_json_double(zh_json_t *j, double v);
ZH_API void zh_json_bool(zh_json_t *j, int v);
ZH_API void zh_json_null(zh_json_t *j);
/* A pre-encoded value, emitted as is (the caller vouches for its syntax). */
ZH_API void zh_json_raw(zh_json_t *j, const char *json, size_t len);
/* 0, or the first error: -EINVAL misuse, -EDOM NaN/Inf, -EILSEQ invalid UTF-8 (STRICT),
 * -E2BIG too deep, or the failed write's error. */
ZH_API int zh_json_error(const zh_json_t *j);

/* ------------------------------------------------------------------------------------------
 * Static files: a route handler serving a document root by sendfile. GET and HEAD; ETag and
 * Last-Modified with 304, If-Match / If-Unmodified-Since with 412 (RFC 9110 §13.2.2 order;
 * dates in any of the three HTTP-date forms); single ranges (206/416, GET only; several
 * ranges get the whole file, 200); If-Range; precompressed .br/.gz variants chosen by
 * Accept-Encoding q-values; index file and a 301 to the slash form for directories; no
 * listings. Paths are decoded once, ".." (in any encoding) and encoded slashes refused, and
 * files opened beneath the root only (openat2), so no byte from outside the root is ever
 * served.
 * Spellings of a path: a percent-encoded unreserved character ("/h%65llo") and hex digits of
 * either case are the same URI (RFC 3986 §6.2.2) and served as such; the router matches
 * them alike, so a route's name is never served from the root. Empty segments ("//a"), dot
 * segments ("/./a"), an encoded reserved character ("/%21") and a directory without its
 * slash get a 301 to the canonical spelling.
 *
 *   zh_static_options_t o;  zh_static_options_init(&o);  o.root = "www";
 *   zh_static_t *st = zh_static_new(srv, &o, &err);
 *   zh_server_route(srv, ZH_GET | ZH_HEAD, "/", ZH_ROUTE_PREFIX, zh_static_handler, st);
 */
typedef struct zh_static_options {
	const char *root;	 /* directory to serve; opened once by zh_static_new() */
	const char *index;	 /* file served for "dir/"; default "index.html"; NULL: none */
	unsigned cache_entries;	 /* open files kept per worker (LRU); default 1024 */
	unsigned cache_ttl_ms;	 /* a cached file is re-checked (open + fstat) after this;
				    a changed file is served stale for at most this long. 1000 */
	int precompressed;	 /* serve file.br / file.gz when accepted; default on */
	int dotfiles;		 /* serve names starting with '.'; default off (404) */
	int no_openat2;		 /* never try openat2: open component by component with
				    O_NOFOLLOW (every symlink refused), for sandboxes whose
				    seccomp filter kills a process calling an unknown syscall.
				    Default off: openat2 where the kernel has it */
} zh_static_options_t;

typedef struct zh_static zh_static_t;

ZH_API void zh_static_options_init(zh_static_options_t *opts);
/* Files the cache cannot hold (a path longer than 240 bytes, or every entry busy sending)
 * are still served, uncached: opened per request and closed when sent.
 * Ranges: one range is a 206; several are a 206 multipart/byteranges (file bytes still by
 * sendfile), except when they overlap, number more than 16, or select from a precompressed
 * variant or an uncached file: then the whole file is the answer (200), as RFC 9110 allows.
 *
 * Allocates the per-worker caches (the only allocation; nothing on the request path) and
 * opens the root. srv must outlive the handler; free with zh_static_free() after the
 * server has stopped. NULL with *err (negative errno) on failure. */
ZH_API ZH_MUST_USE zh_static_t *zh_static_new(const zh_server_t *srv,
					      const zh_static_options_t *opts, int *err);
ZH_API void zh_static_handler(zh_request_t *req, zh_response_t *resp, void *arg);
ZH_API void zh_static_free(zh_static_t *st);

/* ------------------------------------------------------------------------------------------
 * CORS middleware (Fetch standard, "CORS protocol"). Register it with zh_server_use()
 * before any middleware that may refuse a request (auth, rate limits): a preflight carries
 * no credentials, so it must be answered before anyone asks for them.
 *
 *  - Preflight (OPTIONS with Origin and Access-Control-Request-Method) from an allowed
 *    origin: the before hook answers 204 with Access-Control-Allow-Origin, -Allow-Methods,
 *    -Allow-Headers, -Max-Age (and -Allow-Credentials) and `Vary: Origin,
 *    Access-Control-Request-Method, Access-Control-Request-Headers`, for any path (the
 *    route table is not consulted). The lists are sent as configured; the browser checks
 *    the requested method and headers against them (Fetch §4.8).
 *  - Any other request from an allowed origin: the commit hook adds
 *    Access-Control-Allow-Origin (and -Allow-Credentials, -Expose-Headers) to whatever
 *    answers it, the library's errors and other middleware's refusals (401, 429) included,
 *    unless the response already has an Access-Control-Allow-Origin of its own.
 *  - A disallowed origin gets no CORS header at all. Its preflight is not answered here: it
 *    goes on like any OPTIONS request (a route's OPTIONS handler, the server's 204 with
 *    Allow, or a 401 from auth) and fails in the browser, which finds no
 *    Access-Control-Allow-Origin (Fetch §4.9, CORS check). To origins it does not serve,
 *    the middleware is invisible.
 *  - Every response gets `Vary: Origin` (unless its Vary already lists Origin or "*"), with
 *    or without Origin (Fetch §3.2.5): the answer depends on it, so a shared cache must not
 *    give one origin's response to another.
 *
 * Origin patterns, compared ASCII case-insensitively with the Origin header as browsers
 * serialize it (scheme://host[:port], no path):
 *   "https://a.example"       exactly that origin;
 *   "https://" then "*.example.com", as one string (a C comment cannot hold it whole):
 *                             any subdomain, at any depth, of example.com (not example.com
 *                             itself), with that scheme and port. "*." must start the host;
 *   "*"                       any origin except "null", answered "*". Not with
 *                             allow_credentials: zh_cors_new refuses that pair (-EINVAL),
 *                             which would trust every site with the user's credentials;
 *   "null"                    the opaque origin (sandboxed frames, file: pages). Only when
 *                             listed itself: "*" and wildcards never match it.
 */
typedef struct zh_cors_options {
	const char *const *origins; /* n_origins patterns as above (copied); none: nobody */
	size_t n_origins;	    /* at most 256 */
	const char *methods;	    /* Access-Control-Allow-Methods; default "GET, HEAD, POST,
				       PUT, DELETE, PATCH, OPTIONS"; NULL: not sent. "*" is a
				       wildcard without credentials; with them the requested
				       method is echoed (Fetch reads "*" literally then) */
	const char *headers;	    /* Access-Control-Allow-Headers; default "Content-Type,
				       Authorization"; "*" as for methods */
	const char *expose_headers; /* Access-Control-Expose-Headers on non-preflight responses;
				       default NULL: not sent */
	int max_age;		    /* Access-Control-Max-Age, seconds; default 600; < 0: not
				       sent (browsers then cache a preflight for 5 s) */
	int allow_credentials;	    /* Access-Control-Allow-Credentials: true, and the origin is
				       always named, never "*". Not with the origin "*". Default
				       off */
	char *errbuf;		    /* optional: zh_cors_new writes a one-line reason for a
				       refusal here (NUL-terminated, cut to errbuf_len) */
	size_t errbuf_len;
} zh_cors_options_t;
typedef struct zh_cors zh_cors_t;

ZH_API void zh_cors_options_init(zh_cors_options_t *opts);
/* Checks and copies the options (one allocation; nothing is allocated per request). NULL
 * with *err: -EINVAL for a malformed pattern, the origin "*" with allow_credentials, or a
 * header value with control bytes (the reason in opts->errbuf, if set), -ENOMEM. err may
 * be NULL. */
ZH_API ZH_MUST_USE zh_cors_t *zh_cors_new(const zh_cors_options_t *opts, int *err);
/* A before hook (preflights) and a commit hook (everything else); c must outlive the
 * server. */
ZH_API zh_middleware_t zh_cors_middleware(zh_cors_t *c);
ZH_API void zh_cors_free(zh_cors_t *c); /* after the server has been freed */

/* ------------------------------------------------------------------------------------------
 * Authentication middleware: HTTP Basic against an htpasswd-style file and Bearer tokens
 * from a file, for every request whose path lies under a prefix. Register it with
 * zh_server_use() after CORS (see above) and before anything that does work.
 *
 *  - htpasswd file: "user:hash" lines, hashes in any crypt(3) format libxcrypt verifies:
 *    bcrypt ($2y$, $2b$, as `htpasswd -B` writes), sha512crypt ($6$, `openssl passwd -6`,
 *    `mkpasswd -m sha-512`), sha256crypt ($5$), yescrypt ($y$), md5crypt ($1$; weak).
 *    Apache's $apr1$ and {SHA} are not crypt(3) formats and are refused at load.
 *  - tokens file: one token per line (RFC 6750 b64token characters, up to 255 bytes),
 *    optionally named: "name:token", the name an RFC 9110 token of up to 255 bytes.
 *  - A request with valid credentials goes on with its identity published (the middleware
 *    carries key zh_identity_key()): zh_req_auth_user() gives handlers the Basic user name
 *    or the token's name (empty for an unnamed token), and the access log logs it.
 *  - Both: blank lines and lines starting with '#' are skipped; blanks around a line and a
 *    CR before its LF are ignored. A malformed line fails the whole load.
 *
 * A request under the prefix without valid credentials is answered by the before hook:
 * 401, `WWW-Authenticate: Basic realm="<realm>", charset="UTF-8"` (when Basic is on) and
 * `WWW-Authenticate: Bearer realm="<realm>"` (when Bearer is on; with error="invalid_token"
 * after a wrong token), Cache-Control: no-store, body "401 Unauthorized". Its body is not
 * read. "Under the prefix" is decided on the percent-decoded path with runs of '/'
 * collapsed ("/%61pi" is "/api"); a path with a "." or ".." segment, a bad or NUL escape,
 * or longer than 2 KiB decoded always needs credentials (fail closed). /healthz and
 * /readyz never need them.
 *
 * User names and tokens are compared in constant time (every entry, full width, no early
 * exit); an unknown user still costs one crypt, of the first user's hash, so timing does
 * not tell which users exist. Each Basic request costs one crypt on the worker thread: a
 * few ms for sha512crypt, tens to hundreds for bcrypt at its usual costs, during which
 * that worker serves no one else. For high request rates prefer Bearer tokens. The
 * password is wiped from the stack after use; nothing here logs, and error texts name a
 * file and a line, never a credential. crypt's scratch (32 KiB) is thread-local: on the
 * first Basic check a thread of a program that dlopen()ed libzerohttp allocates it.
 */
typedef struct zh_auth_options {
	const char *htpasswd_file; /* Basic; NULL: off */
	const char *tokens_file;   /* Bearer; NULL: off. At least one of the two */
	const char *prefix;	   /* paths under it need credentials; default "/" (all).
				      A string prefix, as ZH_ROUTE_PREFIX matches: "/api"
				      covers /api, /api/... and /apix too (fails closed).
				      A clean path: no "//", escape or dot segment (-EINVAL) */
	const char *realm;	   /* default "zerohttp"; no '"', '\' or control bytes */
	char *errbuf;		   /* optional: zh_auth_new and zh_auth_reload write a one-line
				      reason for a failure here ("file line N: ..."); kept
				      until zh_auth_free, so it must live that long */
	size_t errbuf_len;
} zh_auth_options_t;
typedef struct zh_auth zh_auth_t;

ZH_API void zh_auth_options_init(zh_auth_options_t *opts);
/* Copies the options and loads the files. NULL with *err (negative errno) on failure:
 * -EINVAL bad options or a malformed line, -ENOTSUP a hash crypt(3) cannot verify, -ENOENT
 * and the like from open(), -EFBIG over 16 MiB. err may be NULL. */
ZH_API ZH_MUST_USE zh_auth_t *zh_auth_new(const zh_auth_options_t *opts, int *err);
/* A before hook; a must outlive the server. */
ZH_API zh_middleware_t zh_auth_middleware(zh_auth_t *a);
/* Reads both files again and, if they load, swaps the new credentials in atomically:
 * requests see the old set or the new one, never a mix. Any thread, any time, also while
 * workers run (not in a signal handler: it allocates and opens files). Returns 0 (also
 * when the files did not change), or a negative errno as zh_auth_new does, and the old
 * credentials stay in force. A replaced set is freed only by zh_auth_free(): memory grows
 * by one set per reload that changed something (see src/mw_auth.c). */
ZH_API ZH_MUST_USE int zh_auth_reload(zh_auth_t *a);
ZH_API void zh_auth_free(zh_auth_t *a); /* after the server has been freed */

/* ------------------------------------------------------------------------------------------
 * Access log: one line per response, written by a done hook (see Middleware), so it also
 * covers the library's own answers (404, 405, 408, parse errors), whose request fields
 * are logged as "-" (JSON: null).
 *
 *   ZH_LOG_COMMON    127.0.0.1 - - [10/Oct/2000:13:55:36 +0000] "GET /a?b=1 HTTP/1.1" 200 13
 *   ZH_LOG_COMBINED  the same, then "Referer" "User-Agent"
 *   ZH_LOG_JSON      {"time":"2000-10-10T13:55:36Z","client":"127.0.0.1","user":null,
 *                    "method":"GET",
 *                    "target":"/a?b=1","protocol":"HTTP/1.1","status":200,"bytes":13,
 *                    "duration_us":57,"referer":null,"user_agent":"curl/8.5.0"}  (one line)
 *
 * Times are UTC. bytes counts body bytes sent (0 for HEAD, 204, 304). A request the
 * client gave up on before any response head left (the connection closed while the
 * request body was arriving, or was reset while a deferred response waited) is logged
 * with status 499 and 0 bytes, as nginx does. A plain close (FIN) during a wait may be a
 * half-close: it is noticed when the answer is written, and that answer is logged. A
 * response cut after its head left keeps its status. duration_us runs
 * from the complete head to the response's end; null when the server has
 * latency_metrics off. The request line is logged as sent (like nginx); no other header
 * is ever logged, so Authorization never is. The user field (CLF's third, JSON "user") is the
 * authenticated identity (zh_req_auth_user: the Basic user or the token's name), "-" (JSON:
 * null) when nobody authenticated the request.
 * Client-controlled text cannot forge a line: in CLF/Combined '"', '\', control bytes and
 * bytes >= 0x7f are written \xHH (as nginx does); JSON strings are escaped per RFC 8259
 * (ill-formed UTF-8 becomes U+FFFD; DEL, U+0085, U+2028 and U+2029 are escaped as well).
 * A target over 16 KiB or a header value over 4 KiB (escaped) is cut, marked "...".
 *
 * Lines are formatted into a per-worker buffer (64 KiB, allocated by zh_access_log_new;
 * no lock, no allocation per request) and written with one write() when it is full, when
 * its oldest line is 1 s old, and when the worker exits: zh_server_run() returns after
 * every line was written. A line that cannot be written (disk full) is lost.
 */
enum { ZH_LOG_COMMON = 0, ZH_LOG_COMBINED = 1, ZH_LOG_JSON = 2 };
typedef struct zh_access_log zh_access_log_t;

/* Opens path for appending (created 0640), or uses standard output for "-". srv gives the
 * number of workers; the log serves that server only. NULL with *err (negative errno;
 * -EINVAL for a bad format) on failure; err may be NULL. */
ZH_API ZH_MUST_USE zh_access_log_t *zh_access_log_new(const zh_server_t *srv, const char *path,
						      int format, int *err);
/* The middleware to pass to zh_server_use() (every response) or zh_route_use(). */
ZH_API zh_middleware_t zh_access_log_middleware(zh_access_log_t *log);
/* For log rotation (SIGUSR1): opens the path again and swaps the new file in atomically
 * (dup3 onto the descriptor the workers write to); a write in progress ends in the old
 * file. Lines still buffered (at most ~1 s worth) go to the new file. Any thread, any
 * time between zh_access_log_new() and zh_access_log_free(); not async-signal-safe (call
 * it from a thread that a signal handler wakes). Returns 0 (also for "-": nothing to
 * reopen) or a negative errno, in which case the old file stays in use. */
ZH_API int zh_access_log_reopen(zh_access_log_t *log);
/* After zh_server_run() has returned: writes anything left, closes the file, frees. */
ZH_API void zh_access_log_free(zh_access_log_t *log);

/* ---- Reading requests: slices, query strings and forms, multipart, cookies ----
 *
 * Helpers for what a handler reads out of a request. None allocates: results are slices of
 * the caller's input or bytes decoded into a caller's buffer, and parser state lives in a
 * struct the caller provides. Pure functions of their arguments unless said otherwise: any
 * thread (the zh_req_* / zh_resp_* ones follow the request's rules: worker thread only).
 */

/* Slices (zh_slice_t is never NUL-terminated). 1 if equal, else 0: byte for byte, or ASCII
 * case-insensitively (_ieq: 'A'-'Z' fold to 'a'-'z', every other byte compares as itself).
 * The _str forms take a NUL-terminated s. */
ZH_API int zh_slice_eq(zh_slice_t a, zh_slice_t b);
ZH_API int zh_slice_ieq(zh_slice_t a, zh_slice_t b);
ZH_API int zh_slice_eq_str(zh_slice_t a, const char *s);
ZH_API int zh_slice_ieq_str(zh_slice_t a, const char *s);
/* Decimal integer, the whole slice: an optional sign ('-' or '+', signed form only) then
 * digits 0-9, nothing else (no blank, no "0x"). 0 and *out; -EINVAL empty or garbage,
 * -ERANGE out of range (int64 / uint64). *out is written only on success. */
ZH_API ZH_MUST_USE int zh_slice_to_i64(zh_slice_t s, int64_t *out);
ZH_API ZH_MUST_USE int zh_slice_to_u64(zh_slice_t s, uint64_t *out);
/* Copies s into buf as a C string. Returns its length (< cap); -ENOSPC when s.len >= cap:
 * buf then holds the first cap - 1 bytes, terminated (truncation is never silent);
 * -EILSEQ when s holds a NUL byte (which would cut the C string short): buf is then "";
 * -EINVAL when cap is 0 (buf untouched). */
ZH_API ZH_MUST_USE ssize_t zh_slice_to_cstr(zh_slice_t s, char *buf, size_t cap);

/* Query strings and application/x-www-form-urlencoded bodies (WHATWG URL, "urlencoded
 * parsing"): pairs separated by '&', name and value by the first '='. Works on
 * zh_req_query(req) and on a buffered body (zh_body_all). Empty pairs ("a=1&&b") are
 * skipped; a pair without '=' has an empty value. Decoding turns '+' into a space and %XX
 * into its octet (hex either case), in queries and forms alike; a '%' not followed by two
 * hex digits is an error (-EILSEQ), never passed through. Decoded bytes may be anything,
 * NUL included: check them before use as a C string (zh_slice_to_cstr).
 * Bounds: an input longer than ZH_FORM_MAX_LEN bytes is refused whole (-EMSGSIZE), and
 * walking past ZH_FORM_MAX_PAIRS pairs fails (-E2BIG): a handler answers both with 413
 * (or 414 for a query), without scanning megabytes of '&'. */
enum { ZH_FORM_MAX_PAIRS = 1000, ZH_FORM_MAX_LEN = 1 << 20 };
/* Iterator over raw (still encoded) pairs; fields are private. Borrows src's bytes: they
 * must outlive it (request slices do, until the response has been sent). */
typedef struct zh_form_iter {
	const char *p, *end;
	unsigned pairs;
	int err;
} zh_form_iter_t;
ZH_API void zh_form_iter_init(zh_form_iter_t *it, zh_slice_t src);
/* 1 and the next pair's raw name and value (slices of src; repeated names each come in
 * order), 0 after the last, or a negative errno (-EMSGSIZE, -E2BIG), repeated by every later
 * call. Decode with zh_form_decode. */
ZH_API ZH_MUST_USE int zh_form_next(zh_form_iter_t *it, zh_slice_t *name, zh_slice_t *value);
/* Decodes raw into buf. Returns the decoded length (never more than raw.len, so a buffer of
 * raw.len bytes always does; in place, buf == raw.ptr, works on bytes you own); -EILSEQ for
 * a bad escape, -ENOSPC when cap is too small. buf may be NULL when cap is 0. */
ZH_API ZH_MUST_USE ssize_t zh_form_decode(zh_slice_t raw, char *buf, size_t cap);
/* The first pair whose decoded name equals name (NUL-terminated, compared byte for byte):
 * 1 and its raw value; 0 if none; -EILSEQ if a name met before the match has a bad escape;
 * -EMSGSIZE, -E2BIG as above. Pairs after the match are not looked at. */
ZH_API ZH_MUST_USE int zh_form_get_raw(zh_slice_t src, const char *name, zh_slice_t *raw);
/* zh_form_get_raw, then zh_form_decode of the value into buf: the decoded length, -ENOENT if
 * no pair has that name, or the errors of either call. */
ZH_API ZH_MUST_USE ssize_t zh_form_get(zh_slice_t src, const char *name, char *buf,
				       size_t cap);

/* multipart/form-data (RFC 7578) bodies, parsed as they arrive, at any split: feed the
 * parser whatever bytes come (zh_body_read on a ZH_ROUTE_STREAM_BODY route, or a buffered
 * body in one go) and it calls back with each part's headers, then its body bytes, then its
 * end. Framing per RFC 2046 §5.1.1: the boundary comes from the Content-Type parameter
 * (quoted or not, 1 to 70 characters of bchars, not ending in a space); a preamble before
 * the first delimiter and an epilogue after the close delimiter are ignored; transport
 * padding (up to 256 blanks) after a delimiter is allowed; a delimiter followed by anything
 * else is a framing error (the RFC forbids it inside a part). Body bytes are handed over as
 * slices of the fed buffer (no copy); bytes held back because they might begin a delimiter
 * are handed over from the parser's own copy of it once they turn out not to.
 *
 *   zh_multipart_t mp;   // the caller's (not on the stack of a handler that
 *                        // waits: in memory of its own, per worker or per request): ~4.3 KiB
 *   int r = zh_multipart_init(&mp, content_type, &ops, arg);   // content_type: the header
 *   ... r = zh_multipart_feed(&mp, buf, n) for each piece; zh_multipart_finish(&mp) at EOF
 *
 * Errors (negative errno; the parser then refuses every later call with the same error):
 *   -EINVAL    not multipart/form-data, or no valid boundary (init): answer 400 (or 415);
 *   -EPROTO    malformed framing, part headers or Content-Disposition, a part without a
 *              name, or the body ended before the close delimiter (finish): 400;
 *   -EMSGSIZE  a part's header block over max_header_bytes: 413 (431 is for the request's);
 *   -E2BIG     more than max_parts parts: 413;
 *   -EFBIG     a part written to a sink over its limit: 413;
 *   any error a callback or sink returns, as it returned it.
 * The rest of the body is unread after an error, so the connection should close:
 * zh_multipart_reply_error answers that way. Memory: the struct; nothing else. */
enum { ZH_MULTIPART_HEADER_MAX = 2048, ZH_MULTIPART_BOUNDARY_MAX = 70 };
/* A part as the callbacks see it. The slices point into the parser's struct and stay valid
 * until the part's end callback returns. */
typedef struct zh_multipart_part {
	unsigned index;		 /* 0, 1, ... in body order */
	zh_slice_t name;	 /* Content-Disposition name, unquoted and unescaped */
	zh_slice_t filename;	 /* the filename parameter as sent (a client's path: never
				    use it as one unchecked); ptr NULL when absent */
	zh_slice_t content_type; /* empty when absent (then text/plain, RFC 7578 §4.4) */
	zh_slice_t headers;	 /* the part's raw header block, lines ending in CRLF */
} zh_multipart_part_t;
/* Each callback returns 0 to go on or a negative errno that stops the parser (feed returns
 * it). Any may be NULL. */
typedef struct zh_multipart_ops {
	int (*part)(void *arg, const zh_multipart_part_t *part);     /* headers complete */
	int (*data)(void *arg, const zh_multipart_part_t *part, const void *p, size_t len);
	int (*part_end)(void *arg, const zh_multipart_part_t *part); /* its last byte came */
} zh_multipart_ops_t;
/* A caller sink for zh_multipart_part_to_sink: consumes len bytes; 0 or a negative errno. */
typedef int (*zh_multipart_sink_fn)(void *arg, const void *p, size_t len);
/* The parser's state. Fields are private except the two limits, which the caller may lower
 * (not raise) after zh_multipart_init and before the first feed. */
typedef struct zh_multipart {
	unsigned max_parts;	   /* default 128 */
	unsigned max_header_bytes; /* default and most: ZH_MULTIPART_HEADER_MAX */
	/* private */
	const zh_multipart_ops_t *ops;
	void *arg;
	zh_multipart_sink_fn sink;
	void *sink_arg;
	uint64_t sink_left;
	int sink_fd;
	int state, err;
	unsigned parts, match, pad, hlen;
	unsigned dlen;		   /* bytes of delim: CRLF "--" boundary */
	char delim[4 + ZH_MULTIPART_BOUNDARY_MAX];
	zh_multipart_part_t part;
	char hdr[2 * ZH_MULTIPART_HEADER_MAX]; /* the raw block, then unescaped parameters */
} zh_multipart_t;
/* Reads the boundary from content_type (the request's Content-Type value) and readies mp
 * with default limits; ops is borrowed (keep it valid while mp is used; a static table),
 * arg is passed to every callback. 0 or -EINVAL. mp needs no disposal. */
ZH_API ZH_MUST_USE int zh_multipart_init(zh_multipart_t *mp, zh_slice_t content_type,
					 const zh_multipart_ops_t *ops, void *arg);
/* Parses len more body bytes, calling back as parts go by. 0: all consumed, more wanted;
 * 1: the close delimiter has been seen (bytes after it are the epilogue: ignored, and so is
 * anything fed later); a negative errno (see above). Callbacks run inside this call. */
ZH_API ZH_MUST_USE int zh_multipart_feed(zh_multipart_t *mp, const void *data, size_t len);
/* The body has ended: 0 if the close delimiter was seen, else -EPROTO (a truncated body),
 * or the parser's earlier error. */
ZH_API ZH_MUST_USE int zh_multipart_finish(zh_multipart_t *mp);
/* Inside the part callback only: sends this part's body bytes to sink(sink_arg, ...)
 * instead of the data callback, at most max bytes in all (more: -EFBIG; 0: no limit).
 * 0, or -EINVAL outside the part callback. */
ZH_API ZH_MUST_USE int zh_multipart_part_to_sink(zh_multipart_t *mp, zh_multipart_sink_fn sink,
						 void *sink_arg, uint64_t max);
/* The same to a file descriptor: each piece is written whole with write() (short writes
 * and EINTR retried; another error is returned as -errno and stops the parser). The fd is
 * borrowed; meant for files (a write to a file does not wait for a peer; a pipe or socket
 * would block the worker). The part never has to fit in memory. */
ZH_API ZH_MUST_USE int zh_multipart_part_to_fd(zh_multipart_t *mp, int fd, uint64_t max);
/* Looks a header up in a part's raw header block (case-insensitive name): 1 and its value
 * (blanks around it removed; valid as part's slices are), or 0. */
ZH_API int zh_multipart_header(const zh_multipart_part_t *part, const char *name,
			       zh_slice_t *value);
/* For a ZH_ROUTE_STREAM_BODY handler (works on buffered routes too): reads the body into
 * buf (cap bytes, the caller's scratch; 16 KiB is plenty) and feeds it until the body ends
 * or no bytes are there. 1: the body is complete and the close delimiter was seen; -EAGAIN:
 * call zh_body_wait(req, fn, arg) and return, then call this again from fn; any other
 * negative errno: the parser's or zh_body_read's (see both). */
ZH_API ZH_MUST_USE int zh_multipart_pump(zh_multipart_t *mp, zh_request_t *req, void *buf,
					 size_t cap);
/* Answers a failed multipart request with the status its error calls for (413 for
 * -EMSGSIZE, -E2BIG, -EFBIG; 408 for -ETIMEDOUT; 503 for -ENOBUFS; 400 for the rest) and
 * Connection: close, since the rest of the body was not read. Returns zh_reply's result
 * (-EALREADY if the response was already committed). */
ZH_API int zh_multipart_reply_error(zh_response_t *resp, int err);

/* Cookies. Parsing (RFC 6265 §5.4 as a server reads it, and §4.2.1's grammar, leniently as
 * browsers send it): the value of every Cookie field of the request, in order, split at
 * ';', blanks around names and values removed, a value wrapped in DQUOTEs unwrapped. A
 * piece without '=' or with an empty name is skipped; names compare case-sensitively; no
 * decoding (cookie values are opaque octets). Slices point into the request and live as
 * its other slices do. */
typedef struct zh_cookie_iter { /* private */
	const zh_request_t *req;
	size_t field;
	zh_slice_t rest;
} zh_cookie_iter_t;
ZH_API void zh_cookie_iter_init(zh_cookie_iter_t *it, const zh_request_t *req);
/* 1 and the next cookie's name and value, 0 after the last. */
ZH_API int zh_cookie_next(zh_cookie_iter_t *it, zh_slice_t *name, zh_slice_t *value);
/* 1 and the value of the first cookie called name (NUL-terminated), 0 if none. */
ZH_API int zh_req_cookie(const zh_request_t *req, const char *name, zh_slice_t *value);
/* The same over one Cookie field value (no request needed): walks *rest, which it
 * advances. */
ZH_API int zh_cookie_parse_next(zh_slice_t *rest, zh_slice_t *name, zh_slice_t *value);

/* Building Set-Cookie (RFC 6265 §4.1). Fill with zh_cookie_init, then set what you need. */
enum { ZH_SAMESITE_UNSET = 0, ZH_SAMESITE_STRICT = 1, ZH_SAMESITE_LAX = 2, ZH_SAMESITE_NONE = 3 };
typedef struct zh_cookie {
	const char *name;   /* a token (RFC 9110 §5.6.2), required */
	const char *value;  /* cookie-octets, optionally wrapped in one pair of DQUOTEs; "" ok */
	const char *path;   /* Path=, any CHAR but controls and ';'; NULL: not sent */
	const char *domain; /* Domain=, letters, digits, '-', '.'; NULL: not sent */
	int64_t max_age;    /* Max-Age= seconds, 0 or more (0: expire now); < 0: not sent (the
			       default) */
	int64_t expires;    /* Expires= this Unix time as an IMF-fixdate; 0: not sent */
	int secure;	    /* Secure */
	int http_only;	    /* HttpOnly */
	int same_site;	    /* ZH_SAMESITE_*; NONE requires secure (browsers drop it else) */
} zh_cookie_t;
ZH_API void zh_cookie_init(zh_cookie_t *c);
/* Writes the Set-Cookie field value into buf, NUL-terminated; returns its length, -EINVAL
 * for an invalid name, value, path, domain or same_site (or NONE without secure), -ENOSPC if
 * cap is too small. */
ZH_API ZH_MUST_USE ssize_t zh_cookie_format(const zh_cookie_t *c, char *buf, size_t cap);
/* zh_cookie_format (up to 4 KiB, the size browsers keep at least, RFC 6265 §6.1) and
 * zh_resp_header_add(resp, "Set-Cookie", ...). Returns 0; -EINVAL or -ENOSPC from the
 * format, and then the response is untouched (so check it); or zh_resp_header_add's
 * error, which is sticky as every header error is. */
ZH_API ZH_MUST_USE int zh_resp_set_cookie(zh_response_t *resp, const zh_cookie_t *c);

/* ---- State, time and metrics for applications ---- */

/* ------------------------------------------------------------------------------------------
 * Published slots: what one middleware tells handlers and other middleware about a request
 * (the authenticated user, say) without a field in the core's request. A middleware
 * registered with a key (zh_middleware_t.key: the address of something of its own, or
 * zh_identity_key()) publishes its slot: zh_req_published(req, key) returns what its hooks
 * stored in zh_mw_slot, from anywhere the request is alive (handler, continuations, timers,
 * other middleware's hooks, done hooks included). The key's owner documents what the
 * pointer points to and how long that lives (at least until the request's done hooks ran).
 */
/* The slot of the first middleware registered with key (global chain, then the route's)
 * whose slot is set, or NULL. Worker thread, like every request call. */
ZH_API void *zh_req_published(const zh_request_t *req, const void *key);
/* The key of the authenticated identity: its slot points to a const zh_slice_t holding the
 * user's name (not NUL-terminated, possibly empty), valid at least until the request's
 * done hooks have run. zh_auth_middleware() publishes under it; an application's own
 * authentication middleware may too, and the access log and zh_req_auth_user() then see
 * its users as well. */
ZH_API const void *zh_identity_key(void);
/* 1 and the name of the request's authenticated user (Basic: the user name; Bearer: the
 * token's name, empty for a token listed without one), 0 if nobody authenticated it (no
 * authentication middleware, a path outside its prefix, /healthz). The slice lives as long
 * as the request at least. */
ZH_API int zh_req_auth_user(const zh_request_t *req, zh_slice_t *out);

/* ------------------------------------------------------------------------------------------
 * The client behind trusted proxies (zh_config_t.trusted_proxies; zerohttpd
 * --trusted-proxy). When the TCP peer lies in a trusted CIDR, the client is read from the
 * request's Forwarded fields (RFC 7239: the for= of each element) or, if it has none, its
 * X-Forwarded-For fields: the rightmost address that is not itself a trusted proxy (the
 * leftmost when every hop is trusted). Otherwise, and whenever those fields cannot be read
 * (malformed, "unknown" or obfuscated nodes, more than 32 hops, none at all), the client is
 * the peer. An untrusted peer's fields are never read. The rate limiter keys its buckets
 * and the access log logs this address; zh_req_peer_addr stays the TCP peer.
 */
/* As zh_req_peer_addr (family AF_INET with 4 bytes, or AF_INET6 with 16; an IPv4 address
 * forwarded as such is AF_INET). No allocation; parses the fields on each call when the
 * peer is trusted. For a library answer to bytes that never parsed: the peer. */
ZH_API int zh_req_client_addr(const zh_request_t *req, uint8_t addr[16]);
/* The same as text, NUL-terminated; its length (INET6_ADDRSTRLEN, 46, is always enough). */
ZH_API size_t zh_req_client_str(const zh_request_t *req, char *buf, size_t cap);

/* ------------------------------------------------------------------------------------------
 * Application metrics on /metrics (zh_metrics_handler), after the library's own, in the
 * same Prometheus text format: counters, gauges and histograms with a fixed label set.
 *
 *   static const char *const routes[] = {"/users/{id}", "/orders"};
 *   zh_metric_options_t o;  zh_metric_options_init(&o);
 *   o.name = "app_requests_total";  o.help = "Requests by route.";
 *   o.label = "route";  o.values = routes;  o.nvalues = 2;
 *   zh_metric_t *m = zh_metric_new(srv, &o, &err);       // before zh_server_run
 *   ...
 *   zh_metric_add(m, 0, 1);                               // in a handler: series 0
 *
 * Registration (zh_metric_new) is for start-up: before zh_server_run(), on any one thread;
 * it allocates the metric's cells, which zh_server_free() frees. Updates allocate nothing
 * and take no lock: each worker has its own shard of every metric, written with plain
 * stores, and a scrape sums the shards (as zh_server_stats does). Updates from threads that
 * are not the server's workers go to one shared shard with atomic adds. A scrape taken
 * while workers update is consistent per series, not across series.
 *
 * Labels: one label name with the values it may take, declared at registration (so the
 * exposition is fixed and bounded: never a raw path or a client-supplied value). A series
 * is the index of its value in o.values: update by index, or find it by value with
 * zh_metric_series() (a scan of the values: no allocation). Without a label, the metric is
 * one series, 0. For a route label, pass the route patterns as the values and look the
 * matched pattern up per request (see zh_metric_series).
 *
 * Gauges: every worker holds its own share and the export is their sum. zh_metric_add
 * moves the calling worker's share (inc/dec from anywhere: the sum is right);
 * zh_metric_set replaces the calling thread's share (a value one owner sets: set it from
 * one thread only, the sum is then that value).
 */
enum { ZH_METRIC_COUNTER = 0, ZH_METRIC_GAUGE = 1, ZH_METRIC_HISTOGRAM = 2 };
typedef struct zh_metric zh_metric_t;
typedef struct zh_metric_options {
	const char *name;	   /* [a-zA-Z_:][a-zA-Z0-9_:]*, at most 128 bytes, unique per
				      server; "zerohttp_" is the library's. Counters should end
				      in _total (promtool insists) */
	const char *help;	   /* required: the HELP text (UTF-8; '\' and newlines are
				      escaped) */
	int type;		   /* ZH_METRIC_COUNTER (the default), _GAUGE, _HISTOGRAM */
	const char *label;	   /* [a-zA-Z_][a-zA-Z0-9_]*, not "__..." (nor "le" for a
				      histogram); NULL: no label, one series */
	const char *const *values; /* with a label: its nvalues distinct values (UTF-8, at most
				      256 bytes each), copied. Series i is values[i] */
	unsigned nvalues;	   /* 1 .. 1024 with a label */
	const double *buckets;	   /* histograms: upper bounds, finite, strictly increasing
				      (+Inf is added); copied */
	unsigned nbuckets;	   /* 1 .. 32 */
} zh_metric_options_t;
/* Zeroes *o: a counter without label. */
ZH_API void zh_metric_options_init(zh_metric_options_t *o);
/* Registers a metric on srv. NULL with *err: -EINVAL (a bad name, label, value, bucket or
 * type), -EEXIST (the name is taken, or a value repeats), -EBUSY (zh_server_run() has
 * started), -ENOMEM. err may be NULL. The metric lives until zh_server_free(srv). */
ZH_API ZH_MUST_USE zh_metric_t *zh_metric_new(zh_server_t *srv, const zh_metric_options_t *o,
					     int *err);
/* The series of a label value (len bytes, not NUL-terminated): its index, or -ENOENT. No
 * allocation, any thread. */
ZH_API int zh_metric_series(const zh_metric_t *m, const char *value, size_t len);
/* Counters: adds n (>= 0) to the series. Gauges: adds n (any sign) to the calling
 * worker's share. Any thread; no lock, no allocation. 0, or -EINVAL (a histogram, a
 * negative n on a counter, a series out of range: nothing changes). */
ZH_API int zh_metric_add(zh_metric_t *m, unsigned series, int64_t n);
/* Gauges: sets the calling thread's share (see above). 0 or -EINVAL. */
ZH_API int zh_metric_set(zh_metric_t *m, unsigned series, int64_t v);
/* Histograms: counts v in its bucket (the first bound >= v), adds it to the sum. 0, or
 * -EINVAL (not a histogram, a series out of range, v NaN). */
ZH_API int zh_metric_observe(zh_metric_t *m, unsigned series, double v);

/* ------------------------------------------------------------------------------------------
 * Worker timers: a callback on the request's worker after a delay, so that a deferred
 * response can have a deadline without a thread and a clock of the application's own.
 *
 *   typedef struct { zh_deferred_t token; zh_timer_t deadline; } call_t;  // in zh_resp_state
 *   call_t *c = zh_resp_state(resp);
 *   zh_timer_init(&c->deadline);
 *   zh_resp_defer(resp, &c->token);                       // the work goes elsewhere
 *   zh_timer_start(req, &c->deadline, 2000, on_deadline, c);
 *   // on_deadline(req, c): zh_deferred_resume(&c->token, answer_504, c);
 *
 * Memory: the timer is the caller's zh_timer_t (nothing is allocated, no limit on their
 * number); it must stay valid, and not be moved, while it is pending. zh_resp_state()
 * (valid until the response ends) is the natural place. A zeroed zh_timer_t, or one passed
 * to zh_timer_init(), is idle.
 *
 * Lifetime: a timer belongs to the request it was started on and never outlives it. When
 * that request's response ends (queued whole, or its last chunk), or its connection dies
 * first, the library cancels the request's pending timers, before the done hooks run: a
 * callback never runs for a request that has gone, and memory a done hook frees is no
 * longer referenced. The application cancels a timer it no longer wants (an answer came
 * before the deadline) with zh_timer_cancel(), or lets the end of the response do it.
 *
 * Thread: start, cancel and the callback all belong to the request's worker thread (its
 * handler, hooks, continuations, producers and other timers' callbacks). From another
 * thread, reach the worker with zh_deferred_resume() first.
 *
 * Resolution: the worker's CLOCK_MONOTONIC, in microseconds. A timer never fires before
 * delay_ms has passed since zh_timer_start(); on an idle worker it fires within about 1 ms
 * after (epoll_wait's timeout is whole milliseconds, rounded up), later while the worker is
 * busy with other connections (timers run after each round of events). Timers fire in
 * deadline order; equal deadlines in the order they were started. A timer started with
 * delay 0 from a callback fires in the next round, never in the same one.
 */
typedef struct zh_timer {
	void *zh_private_[12]; /* the library's; see zh_timer_init */
} zh_timer_t;
/* req: the request the timer was started on, alive (deferred, producing, waiting for body
 * bytes). The callback may read the request, start and cancel timers (itself included: it
 * is idle when called, so it may restart itself), and call zh_deferred_resume(); it must
 * not write the response, which belongs to the handler and its continuations. */
typedef void (*zh_timer_fn)(zh_request_t *req, void *arg);
/* Makes t idle (never fails). */
ZH_API void zh_timer_init(zh_timer_t *t);
/* Arms t to call fn(req, arg) once, delay_ms (0 .. 2^32 - 1) after now; a pending t is
 * re-armed (its earlier start forgotten). Returns 0, -EINVAL (NULL t or fn, a delay out of
 * range, or a request whose response has already ended, its done hooks included), -EBUSY
 * (t is pending on another worker). fn is never called after an error return. */
ZH_API ZH_MUST_USE int zh_timer_start(zh_request_t *req, zh_timer_t *t, uint64_t delay_ms,
				      zh_timer_fn fn, void *arg);
/* Disarms t: 1 if it was pending (fn will not be called), 0 if it was idle (never started,
 * already fired, cancelled, or cancelled by the end of its request). Safe from any callback,
 * its own included. */
ZH_API int zh_timer_cancel(zh_timer_t *t);
/* 1 while t is armed. */
ZH_API int zh_timer_pending(const zh_timer_t *t);

/* ---- routing: patterns, path parameters, virtual hosts, error handlers ----
 *
 * zh_server_route()'s path is a pattern in the style of Go 1.22's ServeMux:
 *   [host]/literal/{name}/.../{rest...}
 * A path is the segments between its slashes ("/" is one empty segment; "/a/" is "a"
 * then an empty one). Pattern segments:
 *   literal     matched as spelled; a percent-encoded unreserved character is the
 *               character ("/%61pi" is "/api") and hex case does not count (RFC 3986
 *               §6.2.2). Allowed: unreserved, sub-delims, ':', '@' and %HH triplets.
 *   {name}      exactly one non-empty segment; name is [A-Za-z_][A-Za-z0-9_]*.
 *   {name...}   last only: the rest of the path, one segment or more, possibly empty
 *               ("/files/{p...}" takes "/files/" and "/files/a/b", not "/files").
 *   {$}         last only: an empty last segment; "/a/{$}" is the same as "/a/".
 * Unlike Go, a trailing slash is not a prefix: "/a/" matches "/a/" only; ask for a
 * prefix with {rest...} or ZH_ROUTE_PREFIX, whose last segment is a string prefix
 * ("/api" with ZH_ROUTE_PREFIX takes "/api", "/apix" and "/api/1"; "/" takes every path).
 * A host before the first '/' ("example.com/users/{id}") restricts the pattern to
 * requests whose Host, compared without case, port or final dot, is that host (letters,
 * digits, '-' and '.'); for such a request the host's patterns are tried first and the
 * host-less ones only if none of them takes the request. Static roots per host: register
 * zh_static_handler once per host ("a.example/" with ZH_ROUTE_PREFIX).
 *
 * Precedence (Go's, methods included): of the patterns that match a path and have the
 * request's method, the one that matches a strict subset of the others' paths wins: a
 * literal segment beats {name}, {name} beats a tail, a longer prefix beats a shorter one
 * ("/users/new" beats "/users/{id}", which beats "/users/{rest...}"). So a less specific
 * pattern takes a method the more specific ones lack (GET "/" under POST "/echo" takes
 * GET /echo). For HEAD, the patterns with HEAD or GET compete (a GET route answers HEAD
 * where GET would go; on one pattern a route that claims HEAD wins). When patterns match
 * the path but none has the method: 405 with an Allow field listing the methods of all
 * of them (and HEAD with GET, OPTIONS). A lookup allocates nothing: a trie on segments,
 * built at registration; its cost grows with the path's segments (one hash probe for the
 * literal child at each), not with the number of routes (backtracking aside).
 *
 * zh_server_route() returns, besides -EBUSY (running) and -ENOMEM:
 *   -EINVAL  a malformed pattern: no '/', unbalanced or misplaced braces, an empty or
 *            invalid name, the same name twice, {x...} or {$} not last, a wildcard as a
 *            ZH_ROUTE_PREFIX route's last segment, a byte a path cannot hold, more than
 *            16 wildcards (a prefix route's tail counts as one); or no method, no handler.
 *   -EEXIST  a method registered twice for the same pattern ("/u/{id}" and "/u/{uid}"
 *            are the same pattern), or two patterns with a method in common (or GET and
 *            HEAD) that conflict: some path matches both and neither matches a strict
 *            subset of the other's paths ("/{a}/x" and "/x/{b}"; "/api" with
 *            ZH_ROUTE_PREFIX and "/{id}"). As in Go, GET "/{a}/x" and POST "/x/{b}" do
 *            not conflict. Go also refuses GET "/users/{id}" with HEAD "/" (zerohttp sends
 *            HEAD where GET goes). Patterns of different hosts, or with and without a
 *            host, never conflict.
 * Routes are kept in memory the server allocates at registration: as many as memory
 * holds (checking conflicts costs one comparison with every route of the same host).
 */

/* A path parameter of the matched route: the value of {name} or {name...}, percent-
 * decoded (all triplets, "%2F" included: "/files/a%2Fb" gives "a/b"; a malformed triplet
 * stays as sent). Returns false when the route has no such wildcard or the request none
 * (404, a request refused before routing). A value without '%' is a view into the request
 * head (no copy); one with '%' is decoded into a per-request area of the I/O context (no
 * allocation). Either way it lives as long as the request's other slices: until its
 * response has been sent. Worker thread, during the request (handler, continuations,
 * middleware hooks after routing). */
ZH_API bool zh_req_param(const zh_request_t *req, const char *name, zh_slice_t *out);

/* The pattern of the matched route as registered ("/users/{id}"), NUL-terminated, owned by
 * the server (it lives as long as the server): a bounded label for metrics, never the raw
 * path. NULL when no route matched (404, 405, a request refused before routing, a
 * global middleware's before hook). */
ZH_API const char *zh_req_route(const zh_request_t *req);

/* The application's error handler: called on the worker thread instead of writing the
 * library's text/plain body for every error response the library writes itself where a
 * response can still be written: 404 (no pattern), 405 (its Allow field is set already),
 * 400, 414, 431, 417, 501, 505 (a head refused by the parser), 408 (header or body
 * timeout), 413 and 400 (a body over max_body, bad chunked framing), 503 (no large buffer
 * for a long head) and 500 (no room for Allow). Not called for: OPTIONS answers, the
 * canned 503 of a connection that gets no I/O context (no request state exists), a
 * handler's own responses (become a 500 when broken: the handler's), nor a streaming
 * route's read errors after its handler ran.
 * The request view: a head refused by the parser (or cut by a timeout before it was
 * complete) shows no request: zh_req_parsed() is 0, method, path and headers are empty;
 * otherwise the parsed request, and zh_req_param()/zh_req_route() after routing (413).
 * status is the answer's status: the response commits with it implicitly (zh_write,
 * zh_send_json...) or explicitly (zh_reply/zh_write_header with that status). The
 * library's own answer replaces the handler's (its body and failure; its header fields
 * stay but Content-Type) when the handler wrote nothing (nothing committed), committed
 * another status, or its response failed (a refused header, a write error). The
 * handler cannot keep the connection: when the framing is in doubt (every error that
 * closes today: parse errors, timeouts, 413 with unread body...) Connection: close is
 * sent and the connection closes whatever it does, and no header can undo that. It
 * cannot suspend: zh_resp_defer, zh_resp_produce and zh_body_wait return -EINVAL
 * inside it. A body too big for the send area streams (chunked) as any handler's.
 * fn == NULL restores the library's bodies. arg is borrowed. Before zh_server_run()
 * only: -EBUSY after; 0 otherwise. */
typedef void (*zh_error_handler_fn)(zh_request_t *req, zh_response_t *resp, int status,
				    void *arg);
ZH_API ZH_MUST_USE int zh_server_set_error_handler(zh_server_t *srv, zh_error_handler_fn fn,
						   void *arg);
/* ---- JSON reader ---------------------------------------------------------------------------
 * Validates a JSON text (RFC 8259) in place and describes it in a token array the caller
 * provides: no allocation, no copy, nothing unescaped until asked. One token per value and
 * per object key, in document order; a container's members follow it, each key token
 * directly followed by its value's tokens. Every token knows the index just past its own
 * subtree (next), so skipping a value of any size is one step.
 *
 *   zh_jtok_t tok[256];  zh_jdoc_t doc;
 *   if (zh_req_json(req, &doc, tok, 256, 0) < 0) { zh_jdoc_reply_error(resp, &doc); return; }
 *   uint32_t id = zh_jdoc_member(&doc, 0, "id");      // ZH_JDOC_NONE when absent
 *   int64_t v;  if (zh_jdoc_i64(&doc, id, &v) < 0) ...  // -EINVAL: absent or not a number
 *   for (uint32_t k = zh_jdoc_first(&doc, 0); k != ZH_JDOC_NONE; k = zh_jdoc_next(&doc, 0, k))
 *           ...  key token k, its value k + 1
 *
 * Exactly RFC 8259, nothing more: one value (any type) with optional space, tab, CR and LF
 * around it; no BOM, comments, trailing commas, NaN/Infinity, single quotes or leading '+'.
 * Strings must be UTF-8 per Unicode table 3-7 (no overlong forms, no surrogates encoded in
 * UTF-8, nothing above U+10FFFF), have no unescaped byte below 0x20, use only the escapes
 * of §7, and a \u escape of a surrogate must be a high one (D800-DBFF) directly followed by
 * a \u low one (DC00-DFFF): a lone surrogate is refused, as it could not be unescaped to
 * UTF-8. Numbers follow the §6 grammar (no leading zeros, digits on both sides of '.');
 * their size is not limited: the accessors say when a value does not fit. Duplicate keys
 * are accepted (§4 allows them); zh_jdoc_member() finds the first.
 *
 * Threads: a parsed document is read-only; any number of threads may read it at once.
 * Offsets are 32-bit: a document is at most 4 GiB - 1 bytes.
 */
enum zh_jtype {
	ZH_JT_NONE = 0, /* what zh_jdoc_type() says of ZH_JDOC_NONE or an index out of range */
	ZH_JT_OBJECT,
	ZH_JT_ARRAY,
	ZH_JT_STRING, /* also every object key */
	ZH_JT_NUMBER,
	ZH_JT_TRUE,
	ZH_JT_FALSE,
	ZH_JT_NULL,
};

/* Why a document was refused (zh_jdoc_t.reason); zh_jdoc_reason() names each. */
enum zh_jerr {
	ZH_JE_OK = 0,
	ZH_JE_EMPTY,	 /* no value: empty or only whitespace                          -EINVAL */
	ZH_JE_SYNTAX,	 /* a byte that cannot come here                                -EINVAL */
	ZH_JE_EOF,	 /* the text ends inside a value                                -EINVAL */
	ZH_JE_TRAILING,	 /* something other than whitespace after the value             -EINVAL */
	ZH_JE_NUMBER,	 /* not the §6 number grammar                                   -EINVAL */
	ZH_JE_CONTROL,	 /* an unescaped byte below 0x20 in a string                    -EINVAL */
	ZH_JE_UTF8,	 /* ill-formed UTF-8 in a string                                -EINVAL */
	ZH_JE_ESCAPE,	 /* an unknown escape, or \u without four hex digits            -EINVAL */
	ZH_JE_SURROGATE, /* a \u surrogate that is not half of a high-low pair          -EINVAL */
	ZH_JE_DEPTH,	 /* arrays and objects nested deeper than max_depth             -ELOOP  */
	ZH_JE_TOKENS,	 /* more values and keys than the token array holds             -E2BIG  */
	ZH_JE_SIZE,	 /* the document is 4 GiB or longer                             -EFBIG  */
	ZH_JE_BODY,	 /* zh_req_json only: the body could not be had (streaming route)
			    -ENOTSUP */
};

/* One value or key. Offsets count from the start of the document. */
typedef struct zh_jtok {
	uint32_t start;	  /* first byte of the value; for a string the byte after its '"' */
	uint32_t len;	  /* bytes from start to the value's end: a string's without its
			     quotes (escapes as written), a container's through its bracket */
	uint32_t next;	  /* index of the first token after this value's subtree */
	unsigned type : 3;   /* enum zh_jtype */
	unsigned escaped : 1; /* string with a '\': zh_jdoc_string() must unescape it */
	unsigned real : 1;    /* number with a fraction or exponent */
	unsigned count : 27;  /* arrays: elements; objects: members (key-value pairs) */
} zh_jtok_t;

enum { ZH_JDOC_MAX_DEPTH = 64 };	     /* max_depth 0 means this */
#define ZH_JDOC_NONE UINT32_MAX		     /* "no such token" */
#define ZH_JDOC_MAX_TOKENS ((1u << 27) - 1)  /* a larger array is used up to this */

/* A parsed document: what the accessors take. Borrows the text and the token array, which
 * must stay unchanged while it is used (a request body lives until the response has been
 * sent, see LIFETIMES). After an error only err, reason and offset mean anything. */
typedef struct zh_jdoc {
	const char *src;  /* the text, borrowed */
	size_t len;
	const zh_jtok_t *tok; /* the caller's array; token 0 is the top-level value */
	uint32_t ntok;	  /* tokens used */
	int err;	  /* 0, or the negative errno the parse returned */
	int reason;	  /* enum zh_jerr */
	size_t offset;	  /* the error's byte offset: the first byte that breaks a rule (the
			     lead byte of an ill-formed UTF-8 sequence, the '\' of a bad
			     escape, the first byte of a number); len for ZH_JE_EOF */
} zh_jdoc_t;

/* Parses src[0..len) into tok[0..cap) and fills *doc. max_depth: the deepest nesting of
 * arrays and objects allowed (1: "[1]" but not "[[1]]"), 0 for ZH_JDOC_MAX_DEPTH; the
 * parser itself keeps no stack, so any depth costs nothing but the caller's patience.
 * Returns the number of tokens (> 0), or a negative errno with doc->reason and
 * doc->offset set: -EINVAL the text is not JSON, -ELOOP too deep, -E2BIG more tokens than
 * cap, -EFBIG too long (see enum zh_jerr). tok[] is scribbled on even on failure. Reads
 * nothing outside src[0..len); src need not be NUL-terminated. Any thread. */
ZH_API ZH_MUST_USE int zh_jdoc_parse(zh_jdoc_t *doc, const char *src, size_t len, zh_jtok_t *tok,
				    size_t cap, unsigned max_depth);

/* For a handler on a buffered route: zh_body_all() and zh_jdoc_parse() in one call. The
 * document borrows the body (valid until the response has been sent). Returns as
 * zh_jdoc_parse; also -ENOTSUP (reason ZH_JE_BODY) on a streaming route. The body's
 * Content-Type is not checked. Worker thread only, like every zh_req_* call. */
ZH_API ZH_MUST_USE int zh_req_json(zh_request_t *req, zh_jdoc_t *doc, zh_jtok_t *tok, size_t cap,
				  unsigned max_depth);

/* The answer to a refused document, as JSON: 400 for -EINVAL and -ELOOP, 413 for -E2BIG and
 * -EFBIG, 500 for -ENOTSUP (a route set-up mistake), with the body
 *   {"error":"invalid JSON","reason":"<zh_jdoc_reason>","offset":<doc->offset>}
 * Returns 0, or the negative errno of the response calls (-EALREADY: already committed);
 * -EINVAL if doc has no error. Worker thread only, like every response call. */
ZH_API int zh_jdoc_reply_error(zh_response_t *resp, const zh_jdoc_t *doc);

/* A short static English text for an enum zh_jerr ("invalid UTF-8 in a string"). */
ZH_API const char *zh_jdoc_reason(int reason);

/* Accessors. i is a token index; any index (ZH_JDOC_NONE too) is safe: the answer is then
 * ZH_JT_NONE, ZH_JDOC_NONE, 0 or -EINVAL. None allocates; all are O(1) except where said. */
ZH_API int zh_jdoc_type(const zh_jdoc_t *doc, uint32_t i);
/* The value's bytes as written (a string without its quotes, still escaped). */
ZH_API zh_slice_t zh_jdoc_raw(const zh_jdoc_t *doc, uint32_t i);
/* Elements of an array, members of an object; 0 for anything else. */
ZH_API uint32_t zh_jdoc_count(const zh_jdoc_t *doc, uint32_t i);
/* Iteration: the first child of container i (an element, or an object's first key) and the
 * child after child k, where k is what zh_jdoc_first or zh_jdoc_next returned for i;
 * ZH_JDOC_NONE at the end. An object's member is its key token k and the value token
 * k + 1. O(1) each, whatever the size of the values skipped. */
ZH_API uint32_t zh_jdoc_first(const zh_jdoc_t *doc, uint32_t i);
ZH_API uint32_t zh_jdoc_next(const zh_jdoc_t *doc, uint32_t i, uint32_t k);
/* The value of the first member of object obj whose key equals key (NUL-terminated, or
 * key_len bytes: it may contain NUL), compared after unescaping; ZH_JDOC_NONE if none. O(members). */
ZH_API uint32_t zh_jdoc_member(const zh_jdoc_t *doc, uint32_t obj, const char *key);
ZH_API uint32_t zh_jdoc_member_n(const zh_jdoc_t *doc, uint32_t obj, const char *key,
				 size_t key_len);
/* Element idx of array arr (from 0); ZH_JDOC_NONE if none. O(idx). */
ZH_API uint32_t zh_jdoc_at(const zh_jdoc_t *doc, uint32_t arr, size_t idx);
/* 1 if string (or key) token i unescapes to exactly s[0..len), else 0. A string without
 * escapes is compared with memcmp, one with escapes is decoded as it is compared. */
ZH_API int zh_jdoc_str_eq(const zh_jdoc_t *doc, uint32_t i, const char *s, size_t len);
/* Unescapes string token i into buf as UTF-8 (a \u0000 becomes a NUL byte) and returns its
 * length in bytes, snprintf-style: when that is < cap, buf holds it and a NUL after it;
 * otherwise buf holds an unspecified prefix and the call needs cap >= return + 1 (buf may
 * be NULL with cap 0 to ask). -EINVAL if i is not a string. The unescaped text is never
 * longer than the raw one (zh_jdoc_raw(...).len + 1 always suffices). */
ZH_API ssize_t zh_jdoc_string(const zh_jdoc_t *doc, uint32_t i, char *buf, size_t cap);
/* Integer value of number token i: 0, -EINVAL not a number, -EDOM written with a fraction
 * or exponent ("1.0", "1e3": read those with zh_jdoc_double), -ERANGE outside int64_t
 * (*out untouched on error). */
ZH_API ZH_MUST_USE int zh_jdoc_i64(const zh_jdoc_t *doc, uint32_t i, int64_t *out);
/* Number token i as the nearest double (correctly rounded, ties to even, any length):
 * 0; -ERANGE when its magnitude is beyond DBL_MAX (*out is then +-HUGE_VAL; values too
 * small for a double become 0 or a subnormal and are not errors); -EINVAL not a number. */
ZH_API ZH_MUST_USE int zh_jdoc_double(const zh_jdoc_t *doc, uint32_t i, double *out);
/* *out = 1 for true, 0 for false: 0, or -EINVAL for any other token. */
ZH_API ZH_MUST_USE int zh_jdoc_bool(const zh_jdoc_t *doc, uint32_t i, int *out);
/* 1 if token i is null. */
ZH_API int zh_jdoc_is_null(const zh_jdoc_t *doc, uint32_t i);

/* ---- Listeners and TLS ---- */
/*
 * A server listens on one or more addresses (zh_config_t.listeners), each plain or TLS.
 * TLS lives in its own library, libzerohttp-tls (pkg-config zerohttp-tls; OpenSSL 3), so a
 * program that serves only plain HTTP neither links nor loads OpenSSL: the core reaches
 * the TLS transport through the zh_tls_t a listener points to.
 *
 * TLS 1.2 and 1.3 only, certificate and key pairs chosen by SNI (the first pair is the
 * default), ALPN "http/1.1", session resumption by tickets (keys shared by all workers and
 * rotated) and TLS 1.3 PSK, no compression, no renegotiation. A plain HTTP request on a TLS
 * listener gets a 400 in plain text, then the connection closes. Records are encrypted from
 * the connection's output queue as it is (no extra per-request buffer) and files are read
 * with pread into a per-worker buffer and encrypted from there (no kernel TLS on this
 * platform). OpenSSL's own allocations can go to per-thread pools (zh_tls_memory_init).
 */
typedef struct zh_tls zh_tls_t;

/* One listening address. address: an IPv4 or IPv6 literal (copied by zh_server_new());
 * port 0 picks a free port (zh_server_listener_port). tls: NULL for plain HTTP, else the
 * TLS settings to serve (borrowed: it must outlive the server).
 *
 * inherited: fd is a socket that is already bound and listening, handed over by systemd's
 * socket activation (LISTEN_FDS) or by a previous process (an upgrade); address and port
 * are then unused and nothing is bound. zh_server_new() makes it nonblocking and each
 * worker watches a duplicate of it (EPOLLEXCLUSIVE: one worker is woken per connection);
 * fd stays the caller's, never closed by the server, so it can be handed on again.
 * zh_server_new() fails with -ENOTSOCK if fd is not a listening stream socket. */
typedef struct zh_listener {
	const char *address;
	uint16_t port;
	zh_tls_t *tls;
	bool inherited;
	int fd;
} zh_listener_t;

/* The bound port of listener i (in zh_config_t.listeners order; i = 0 with the address and
 * port shorthand), 0 if there is no such listener. */
ZH_API uint16_t zh_server_listener_port(const zh_server_t *srv, unsigned i);

/* The listening sockets of listener i, to hand to a new process that takes over (see
 * zh_server_stop_gently): each worker's own SO_REUSEPORT socket of that address, or the one
 * inherited socket. Writes up to cap descriptors to fds and returns how many listener i has
 * (0 if there is no such listener; more than cap: call again with a larger array). They
 * stay the server's: valid from zh_server_new() until zh_server_stop() (a worker closes
 * its own when it drains). The receiver must hold them all: the kernel spreads new
 * connections over every socket of the port, and the queue of one that nobody holds is
 * reset when it closes. Any thread. */
ZH_API unsigned zh_server_listener_fds(const zh_server_t *srv, unsigned i, int *fds,
				       unsigned cap);

/* The protocol ("TLSv1.3") and cipher suite of the request's connection, or NULL for a
 * plain connection. Static strings. Worker thread, during the request
 * (the access log's %{tls} fields use them). */
ZH_API const char *zh_req_tls_version(const zh_request_t *req);
ZH_API const char *zh_req_tls_cipher(const zh_request_t *req);

/* -- libzerohttp-tls: everything below is in that library -- */

enum { ZH_TLS_1_2 = 0x0303, ZH_TLS_1_3 = 0x0304 };

typedef struct zh_tls_options {
	unsigned min_version;	    /* ZH_TLS_1_2 (the default) or ZH_TLS_1_3 */
	unsigned ticket_rotate_s;   /* session ticket keys: a new one this often (default
				       3600); tickets of the previous key are still accepted
				       (and renewed), older ones make a full handshake */
} zh_tls_options_t;

/* Fills *opt with the defaults above. */
ZH_API void zh_tls_options_init(zh_tls_options_t *opt);

/* Routes OpenSSL's heap allocations (CRYPTO_set_mem_functions) to per-thread pools of size
 * classes carved from mmap'd regions, so that a keep-alive TLS request makes no
 * malloc-family call. Must come before any other OpenSSL use in the process (zh_tls_new
 * calls it too, and it is idempotent); returns 0, or -EBUSY when OpenSSL had allocated
 * already (its allocations then stay with malloc: everything works, the pools are just
 * not used). Any thread. Builds with AddressSanitizer leave the allocations to malloc. */
ZH_API int zh_tls_memory_init(void);

/* New TLS settings with no certificate yet. NULL with *err (negative errno; err may be
 * NULL) on failure: -EINVAL for a bad option, -ENOMEM. The caller owns it and frees it with
 * zh_tls_free() after every server using it has been freed. */
ZH_API ZH_MUST_USE zh_tls_t *zh_tls_new(const zh_tls_options_t *opt, int *err);

/* Adds a certificate (PEM; the file may hold the chain after the leaf, which is sent as it
 * is: no chain is built from elsewhere) and its private key (PEM). The first pair added is
 * the default; a later pair is chosen when the client's SNI names a host its certificate
 * covers (X509 subjectAltName rules, wildcards included).
 * The paths are copied and read again by zh_tls_reload(). Before the server runs. 0, or
 * -errno: -ENOENT/-EACCES (a file), -EINVAL (not PEM, or the key does not match the
 * certificate), -ENOSPC past 16 pairs; why (may be NULL) then gets a one-line reason. */
ZH_API ZH_MUST_USE int zh_tls_add_cert(zh_tls_t *tls, const char *cert_file,
				       const char *key_file, char *why, size_t why_len);

/* Reads every certificate and key again (SIGHUP). New handshakes use the new ones;
 * established connections go on with theirs. If any file fails, nothing changes and the
 * call returns -errno with the reason in why (may be NULL). Any thread, while workers
 * run; not async-signal-safe. */
ZH_API ZH_MUST_USE int zh_tls_reload(zh_tls_t *tls, char *why, size_t why_len);

/* Counters, summed over workers; safe to read while the server runs. */
enum { ZH_TLS_HS_BUCKETS = 12, ZH_TLS_CIPHERS = 9 };
/* Upper bounds of the handshake latency buckets, in microseconds (the last is +Inf). */
ZH_API extern const uint32_t zh_tls_hs_bounds_us[ZH_TLS_HS_BUCKETS - 1];
/* Cipher suite names counted in cipher[] (the last entry counts any other suite). */
ZH_API extern const char *const zh_tls_cipher_names[ZH_TLS_CIPHERS];
typedef struct zh_tls_stats {
	uint64_t handshakes_ok, resumed;
	/* failed handshakes by reason: timeout, a protocol error or refused parameters
	 * (version, cipher...), the peer closed or reset, plain HTTP on the TLS port */
	uint64_t failed_timeout, failed_protocol, failed_closed, failed_plain_http;
	uint64_t tls12, tls13;		     /* completed handshakes by version */
	uint64_t cipher[ZH_TLS_CIPHERS];     /* completed handshakes by suite */
	uint64_t hs_buckets[ZH_TLS_HS_BUCKETS], hs_sum_us, hs_count; /* accept to done */
	uint64_t hs_allocs;		     /* pool allocations made inside handshake
						steps (divide by handshakes for a mean) */
	uint64_t data_allocs;		     /* pool allocations made while moving
						application data (record buffers) */
	uint64_t pool_regions, pool_bytes;   /* mmap'd regions of the pools, and bytes */
	uint64_t reloads, reload_failures;
	int pools_active;		     /* zh_tls_memory_init() took effect */
} zh_tls_stats_t;
ZH_API void zh_tls_stats(const zh_tls_t *tls, zh_tls_stats_t *out);

/* The counters as Prometheus text (names zerohttp_tls_*), into buf[0..cap) NUL-terminated
 * when it fits: a /metrics handler zh_write()s it after zh_metrics_handler(). Returns the
 * length of the whole text (as snprintf: cap too small if >= cap). Any thread. */
ZH_API size_t zh_tls_metrics_text(const zh_tls_t *tls, char *buf, size_t cap);

/* After every server using tls has been freed: frees it. Established sessions are gone. */
ZH_API void zh_tls_free(zh_tls_t *tls);
/* ---- reverse proxy: upstream pools, balancing, strict upstream parsing ----
 *
 *   zh_proxy_options_t o;  zh_proxy_options_init(&o);
 *   const char *ups[] = {"http://127.0.0.1:9001", "http://127.0.0.1:9002"};
 *   o.upstreams = ups;  o.n_upstreams = 2;
 *   zh_proxy_t *p = zh_proxy_new(srv, &o, &err);          // before zh_server_run
 *   zh_proxy_route(srv, "/api/", p);                       // every method, a prefix
 *
 * A proxied request goes to one upstream with its path and query unchanged (nginx's
 * proxy_pass without a URI). The request head is re-serialized from the parsed request,
 * never forwarded raw: HTTP/1.1, the client's Host (or opts.host), the client's fields
 * without the hop-by-hop ones (Connection and every field it names, Keep-Alive, TE,
 * Trailer, Transfer-Encoding, Upgrade, Proxy-*) and Expect, then Forwarded (for=, proto=,
 * host=), X-Forwarded-For (the client's list, then the peer), X-Forwarded-Proto,
 * X-Forwarded-Host and Via ("1.1 zerohttp") appended, and Content-Length for the body. The
 * body is the route's buffered body (max_body; chunked from the client arrives de-chunked
 * and leaves with a length).
 *
 * The upstream's response is parsed as strictly as a request: a bare LF, obs-fold, a space
 * before a colon, controls in a value, both Content-Length and Transfer-Encoding, differing
 * Content-Lengths, a coding other than chunked, chunked from HTTP/1.0, a 101, or a head over
 * 64 KiB is a 502 and the upstream connection is closed: never a desync. 1xx interim heads
 * are dropped. Its end-to-end fields are copied (hop-by-hop ones, Date and Content-Length
 * are the library's; more than 28 fields or about 3.8 KiB of them: 502), the status kept.
 * A body with Content-Length keeps it; a chunked or close-delimited one is re-framed
 * (chunked to HTTP/1.1 clients). Body bytes are read into the upstream connection's 64 KiB
 * buffer and queued by reference (zh_write_ref): the next read happens only once the client
 * has taken them all, so a slow client slows the upstream down (TCP backpressure) and the
 * proxy holds one buffer per exchange, never a whole response. A Content-Length body with
 * 64 KiB or more still to come moves from socket to socket by splice(2) through a pipe of
 * the upstream connection (plain client connections; not under a body filter).
 *
 * Upstream connections: each worker keeps its own keep-alive pool per upstream (no locks),
 * at most max_conns open and max_idle idle, idle ones closed after keepalive_timeout_ms or
 * when the upstream closes them. Connects are nonblocking on the worker's event loop.
 * Balancing: round robin, or the fewest requests in flight (this worker's count). An
 * upstream whose connect fails or times out is skipped for fail_timeout_ms (passive
 * checks, per worker). Errors: 502 for a refused connection or a bad response, 503 with
 * Retry-After when every upstream is down or every pool full, 504 when the connect
 * (connect_timeout_ms) or the response head (header_timeout_ms) takes too long. A body whose
 * upstream goes silent for idle_timeout_ms, closes early or breaks its framing is cut (the
 * client sees a truncated body, never a wrong one). A request is retried on another
 * upstream only when its method is idempotent (GET HEAD PUT DELETE OPTIONS TRACE) and not a
 * byte of it reached the failed upstream (RFC 9110 §9.2.2). /metrics (zh_metrics_handler)
 * shows per-upstream families zerohttp_upstream_*{proxy="PATTERN",upstream="URL"} (PATTERN:
 * the first pattern zh_proxy_route gave the proxy).
 *
 * Upgrades (WebSocket): a request that asks to switch protocols (zh_req_upgrade says yes:
 * HTTP/1.1 on a plain socket, no body) to protocols all in upgrade_protocols is sent with
 * "Connection: upgrade" and its Upgrade field (any other Upgrade is dropped, as a
 * hop-by-hop field: h2c never passes, since a tunnel would carry requests past the
 * proxy's routing and forwarding fields); if the upstream answers 101 with a protocol the client offered, the client gets
 * the 101 (end-to-end fields copied) and the two sockets become a tunnel: bytes move both
 * ways by splice through two pipes, never through user space (except what either side sent
 * right behind its head), a half-close is passed on, and the tunnel closes when both ways
 * have ended, on an error, after tunnel_idle_timeout_ms without a byte, or when the worker
 * exits (a drain does not wait for tunnels: the worker's exit closes them). A tunnel holds
 * its upstream connection slot (max_conns bounds tunnels too). A 101 nobody asked for, or
 * naming a protocol the client did not offer, is a 502.
 *
 * Memory: zh_proxy_new allocates the connection slots and maps workers x upstreams x
 * max_conns buffers of 64 KiB (pages are touched only when used); nothing per request.
 */
enum { ZH_PROXY_ROUND_ROBIN = 0, ZH_PROXY_LEAST_OUTSTANDING = 1 };
typedef struct zh_proxy_options {
	const char *const *upstreams; /* n_upstreams URLs "http://HOST[:PORT]" (an IP literal,
					 [IPv6], or a name resolved once by zh_proxy_new);
					 copied. https is -EPROTONOSUPPORT; a path is -EINVAL */
	size_t n_upstreams;	      /* 1 .. 64 */
	int balance;		      /* ZH_PROXY_ROUND_ROBIN (default) or _LEAST_OUTSTANDING */
	unsigned max_conns;	      /* per upstream per worker, idle or busy; default 256 */
	unsigned max_idle;	      /* idle kept per upstream per worker; default 64 */
	unsigned connect_timeout_ms;  /* default 2000 */
	unsigned header_timeout_ms;   /* request sent to response head; default 30000 */
	unsigned idle_timeout_ms;     /* between body bytes from the upstream; default 30000 */
	unsigned keepalive_timeout_ms; /* an idle pooled connection closes; default 60000 */
	unsigned fail_timeout_ms;     /* a failed upstream is skipped this long; default 5000 */
	const char *host;	      /* Host sent upstream; NULL (default): the client's, or
					 the upstream's host:port when the client sent none */
	/* Active health checks, per worker (from its first proxied request on): every
	 * health_interval_ms, GET health_path (copied; "/..." ) with Connection: close on a
	 * connection of its own; a 2xx or 3xx within health_timeout_ms passes. health_fails
	 * failures in a row take the upstream out of the balancing, health_passes passes in a
	 * row bring it back. NULL (default): off, passive checks only */
	const char *health_path;
	unsigned health_interval_ms;  /* default 2000 */
	unsigned health_timeout_ms;   /* default 1000 */
	unsigned health_fails;	      /* default 2 */
	unsigned health_passes;	      /* default 2 */
	unsigned tunnel_idle_timeout_ms; /* an upgrade tunnel moving no byte either way is
					    closed; default 60000 */
	const char *upgrade_protocols; /* comma-separated protocols that may be tunnelled
					  (copied); default "websocket"; "" or NULL: none.
					  h2c never is */
} zh_proxy_options_t;
typedef struct zh_proxy zh_proxy_t;

/* The defaults above; no upstream. */
ZH_API void zh_proxy_options_init(zh_proxy_options_t *o);
/* Checks and copies the options, resolves the upstreams, allocates every worker's pools.
 * Before zh_server_run(), on any one thread. NULL with *err: -EINVAL (bad options or URL),
 * -EPROTONOSUPPORT (https), -EHOSTUNREACH (a name that does not resolve), -ENOMEM. err
 * may be NULL. On io_uring request bodies are not spliced (they go through the buffer). */
ZH_API ZH_MUST_USE zh_proxy_t *zh_proxy_new(zh_server_t *srv, const zh_proxy_options_t *o,
					    int *err);
/* Routes every method of the paths under pattern (a ZH_ROUTE_PREFIX route) to p, with the
 * route middleware that returns connections to the pool. p must belong to srv. The route
 * streams request bodies (ZH_ROUTE_STREAM_BODY): they go upstream as they come, never
 * whole in memory, with their Content-Length or else chunked; cfg.max_body still bounds
 * them (413). Returns what zh_server_route and zh_route_use return, or -EINVAL. */
ZH_API ZH_MUST_USE int zh_proxy_route(zh_server_t *srv, const char *pattern, zh_proxy_t *p);
/* Closes every upstream connection and frees p: after zh_server_run() has returned. */
ZH_API void zh_proxy_free(zh_proxy_t *p);

/* ---- I/O backend (io_uring) ---- */

/* zh_config_t.io. ZH_IO_URING runs each worker on an io_uring of its own (Linux 6.0 or
 * later): connections are accepted and read by multishot operations, received bytes land
 * in a per-worker pool of io_buffers shared buffers (an idle connection holds none), and
 * responses are sent by the ring, one submission per loop turn for all connections. */
enum zh_io { ZH_IO_EPOLL = 0, ZH_IO_URING = 1 };

/* The backend the workers run: cfg.io, or ZH_IO_EPOLL when io_uring was asked for but is
 * unusable here (kernel too old, io_uring disabled by sysctl, forbidden by seccomp...).
 * Then *reason (if reason is not NULL) is a static sentence saying why, else NULL; the
 * library prints nothing, so a program that asks for io_uring logs it. Any thread, any
 * time after zh_server_new. */
ZH_API int zh_server_io(const zh_server_t *srv, const char **reason);

/* TLS listeners are served on both backends. On io_uring, OpenSSL reads its records from
 * the connection's ring buffers (the ring's receive, as for plain connections) and writes
 * each record with a send(2) of its own, as on epoll (a full socket arms a poll in the
 * ring). Protocol upgrades stay refused on TLS connections, on either backend. */

/* ---- HTTP/2 (libzerohttp-h2, pkg-config zerohttp-h2; nghttp2) ---- */

/* HTTP/2 runs the same handlers, middleware, body sources, producers and deferred responses
 * as HTTP/1.1: a handler cannot tell which protocol serves it. With zh_http2_enable, a
 * plain listener answers h2c with prior knowledge (a connection that starts with the
 * RFC 9113 §3.3 preface); HTTP/1.1 goes on as before on the same port. The Upgrade: h2c
 * dance (RFC 7540 §3.2, removed in RFC 9113) is not implemented. TLS listeners offer "h2"
 * before "http/1.1" by ALPN (without zh_http2_enable, "http/1.1" alone), and a connection
 * that agreed to h2 is served HTTP/2. Each stream takes a connection slot and an I/O context
 * of the worker (max_connections, io_contexts) while it is open. */
typedef struct zh_http2_config {
	uint32_t max_concurrent_streams; /* SETTINGS_MAX_CONCURRENT_STREAMS (default 100);
					    a client that opens more is sent GOAWAY */
	uint32_t max_header_list;	 /* bytes of a request's decoded header list (default
					    8192): beyond it, GOAWAY ENHANCE_YOUR_CALM */
	uint32_t max_resets_per_s;	 /* streams the client may cancel a second before
					    GOAWAY (rapid reset; default 200) */
	uint32_t max_control_per_s;	 /* SETTINGS, PING, WINDOW_UPDATE and PRIORITY frames
					    a second (default 1000) */
} zh_http2_config_t;

ZH_API void zh_http2_config_init(zh_http2_config_t *cfg);
/* Enables HTTP/2 on srv (before zh_server_run; main thread). cfg is copied (NULL: the
 * defaults). 0, -EINVAL (a zero limit, or srv running), -ENOSPC (protocol table full) or
 * -ENOMEM. The server keeps HTTP/2 until zh_server_free. */
ZH_API ZH_MUST_USE int zh_http2_enable(zh_server_t *srv, const zh_http2_config_t *cfg);

/* Trailer fields (RFC 9110 §6.5), sent after the body: on HTTP/2 a HEADERS frame that
 * ends the stream; on HTTP/1.1 in the last chunk, only to a client whose request said
 * "TE: trailers" (a whole response is then sent chunked), and dropped otherwise. Call
 * from the handler, a continuation or a producer, before the response ends; name and
 * value are copied (up to 512 bytes of fields). 0, -EINVAL (not a token, a bad value, a
 * pseudo-header or a field trailers must not carry: Content-Length, Transfer-Encoding,
 * Host, TE, Trailer, Connection, Content-Type, Content-Encoding) or -ENOSPC. Worker
 * thread only. The body itself is unchanged by them; a HEAD response carries none. */
ZH_API int zh_resp_trailer(zh_response_t *resp, const char *name, const char *value);

/* ---- conveniences that writing examples/ asked for: status phrases, numbers from forms ---- */

/* The reason phrase the library sends with a status (RFC 9110 §15): "Not Found" for 404,
 * as in its status lines. For an application that names the status in a body, an error
 * handler (zh_server_set_error_handler) answering in JSON, say. A static NUL-terminated
 * string, never NULL; "" for a status the library has no phrase for (whose status line it
 * then sends without one). Any thread. */
ZH_API const char *zh_status_reason(int status);

/* A number from a query string or form: the first pair called name (found as zh_form_get
 * finds it), decoded, then read as zh_slice_to_u64 / zh_slice_to_i64 read a slice (decimal
 * digits, the whole value). 1 and *out; 0 when no pair has that name, *out untouched (so
 * set the default first); -EINVAL for a value that is no such number (an empty one
 * included), -ERANGE out of range (or longer than 64 bytes decoded); -EILSEQ, -EMSGSIZE,
 * -E2BIG as zh_form_get. *out is written only when 1 is returned. No allocation; any
 * thread.
 *
 *   uint64_t limit = 10;                                   // the default
 *   if (zh_form_get_u64(zh_req_query(req), "limit", &limit) < 0 || limit > 100)
 *           ... 400
 */
ZH_API ZH_MUST_USE int zh_form_get_u64(zh_slice_t src, const char *name, uint64_t *out);
ZH_API ZH_MUST_USE int zh_form_get_i64(zh_slice_t src, const char *name, int64_t *out);

#ifdef __cplusplus
}
#endif
#endif
