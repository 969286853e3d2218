/* ext.h — the extension interface for the bundled features (never installed).
 *
 * The features (json.c, protobuf.c, mw_gzip.c, mw_cors.c, mw_auth.c, mw_limit.c, static.c,
 * metrics.c, accesslog.c) include this header and zerohttp.h, never internal.h: they reach
 * the core through the public API (its extension section: per-request slots, the pending
 * writer, the header walk) and through what is declared here, nothing else. The core's
 * structs (request, response, context, worker) are opaque to them, so a change inside the
 * core cannot silently break a feature, and what a feature does an application's own
 * middleware can do with the public calls (these add shared utilities and the worker's
 * cached clocks and counters, which the public API does not need to promise).
 */
#ifndef ZH_EXT_H
#define ZH_EXT_H

#include "zerohttp.h"

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#define ZH__LIKELY(x) __builtin_expect(!!(x), 1)
#define ZH__UNLIKELY(x) __builtin_expect(!!(x), 0)

/* ---- byte classes and percent-encoding (parse.c) ------------------------------------------- */

static inline int zh__hexval(unsigned char c) /* -1 if not a hex digit */
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* The octet of the percent-encoded triplet at p[0..2] (len bytes available), or -1 when p
 * does not start a valid triplet. */
static inline int zh__pct_octet(const char *p, size_t len)
{
	int hi, lo;
	if (len < 3 || p[0] != '%')
		return -1;
	hi = zh__hexval((unsigned char)p[1]);
	lo = zh__hexval((unsigned char)p[2]);
	return hi < 0 || lo < 0 ? -1 : hi << 4 | lo;
}

/* The character a triplet at p encodes when it is unreserved (ALPHA DIGIT "-" "." "_" "~"),
 * else -1. RFC 3986 §2.3, §6.2.2.2: such a triplet and its character are the same URI, so
 * the router and the static handler compare paths through it. */
static inline int zh__pct_unreserved(const char *p, size_t len)
{
	int c = zh__pct_octet(p, len);
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	    c == '-' || c == '.' || c == '_' || c == '~')
		return c;
	return -1;
}

/* Shared byte classes (parse.c). */
extern const uint8_t zh__token_char[256];
bool zh__valid_field_value(const char *p, size_t len);
bool zh__valid_token(const char *p, size_t len);
bool zh__ieq(const char *a, const char *b, size_t len); /* ASCII case-insensitive */

/* ---- HTTP utilities (http_util.c) -------------------------------------------------------- */

int zh__coding_q(zh_slice_t accept_encoding, const char *coding); /* q x 1000 */
/* The next element of the comma-separated list v (RFC 9110 §5.6.1) from *pos on, without
 * its surrounding whitespace (empty elements are skipped). False at the end. */
bool zh__list_next(zh_slice_t v, size_t *pos, zh_slice_t *elem);
/* Is etag (quotes included) named by the list v? weak: RFC 9110 §8.8.3.2 weak comparison. */
bool zh__etag_listed(zh_slice_t v, const char *etag, size_t etag_len, bool weak);
const char *zh__status_reason(int status, size_t *len); /* http1.c: "OK"; "" if unknown */
size_t zh__http_date(time_t t, char out[30]);	/* IMF-fixdate, 29 chars + NUL */
char *zh__append_hex(char *p, uint64_t v);	/* lowercase hex at p; the end */
/* Any HTTP-date form (RFC 9110 §5.6.7: IMF-fixdate, rfc850-date, asctime-date); now (wall
 * clock) dates a two-digit rfc850 year. False for anything else or an invalid date. */
bool zh__http_date_parse(const char *p, size_t len, time_t now, time_t *out);

/* ---- response helpers (response.c) ------------------------------------------------------------ */

typedef struct zh__hdr {
	uint16_t noff, nlen, voff, vlen;
} zh__hdr_t;
/* Preformatted header lines ("Name: value\r\n"...) and where each name and value sits. */
typedef struct zh__hlines {
	const char *text;
	uint16_t len;
	uint8_t n;
	zh__hdr_t idx[3];
} zh__hlines_t;
/* One line's block, at compile time: ZH__HLINE("Vary", "Accept-Encoding") */
#define ZH__HLINE(name, value)                                                                 \
	{name ": " value "\r\n", sizeof(name ": " value "\r\n") - 1, 1,                        \
	 {{0, sizeof(name) - 1, sizeof(name) + 1, sizeof(value) - 1}}}
/* Sets Content-Type to type unless the response has one, also after an explicit
 * zh_write_header() as long as the head has not been serialized (response.c). 0 or -errno;
 * a failure fails the response (the sticky header rule). */
int zh__resp_content_type(zh_response_t *resp, const char *type);
/* zh_resp_header_add with lengths, for fields the caller has checked already (a proxy
 * copying the fields its strict parser accepted): name a token, value without controls
 * (HTAB aside) or surrounding whitespace; they are not checked again. */
int zh__resp_header_addn(zh_response_t *resp, const char *name, size_t nlen, const char *value,
			 size_t vlen);
int zh__resp_header_lines(zh_response_t *resp, const zh__hlines_t *const *blocks, unsigned n);
/* zh_write for bytes a serializer generates (multipart framing, protobuf packing): the
 * same path, but not counted in body_bytes_copied, which counts copies of the caller's bytes */
int zh__write_encoded(zh_response_t *resp, const void *data, size_t len);

/* ---- the worker: identity, cached clocks, counters, periodic hooks (loop.c, conn.c) ------------ */

typedef struct zh__worker zh__worker_t;
zh__worker_t *zh__ext_worker(const zh_request_t *req); /* the request's */
unsigned zh__ext_worker_id(const zh__worker_t *w);	/* 0 .. workers - 1 */
const zh_server_t *zh__ext_worker_server(const zh__worker_t *w);
uint64_t zh__ext_now_ms(const zh__worker_t *w);	/* CLOCK_MONOTONIC, cached per event batch */
time_t zh__ext_date_sec(const zh__worker_t *w);	/* wall clock of the Date header */
bool zh__ext_draining(const zh__worker_t *w);	/* zh_server_stop() was called */
const zh_config_t *zh__ext_server_config(const zh_server_t *srv); /* as in effect */
time_t zh__ext_server_start(const zh_server_t *srv); /* zh_server_new(), wall clock */
bool zh__ext_server_stopping(const zh_server_t *srv); /* zh_server_stop() was called */
zh_stats_t *zh__ext_stats(zh__worker_t *w);	/* the worker's own counters */
/* Counters: one writer (the worker), readers on other threads. A relaxed load + store is a
 * plain mov on x86-64 (no lock prefix) yet keeps the cross-thread read race-free in C11. */
#define ZH__STATS_ADD(st, field, n)                                                            \
	__atomic_store_n(&(st)->field, __atomic_load_n(&(st)->field, __ATOMIC_RELAXED) + (n),   \
			 __ATOMIC_RELAXED)
/* When the request's head was complete (zh__now_us's clock); 0 when the server times
 * nothing (no latency metrics and no middleware). */
uint64_t zh__ext_started_us(const zh_request_t *req);
/* Inside a commit hook or a filter's head call (headers mutable, body writes refused). */
bool zh__ext_in_hooks(const zh_response_t *resp);
uint64_t zh__now_us(void); /* CLOCK_MONOTONIC, microseconds: request latency */

typedef uint64_t (*zh__tick_fn)(zh__worker_t *w, bool final, void *arg);
/* Adds fn(w, final, arg) to the worker's periodic hooks (once per (fn, arg): adding it again
 * is a no-op). Worker thread only. The loop calls every hook after each round of events,
 * and once more with final true as the worker exits (buffered output must be written
 * then). A hook returns the zh__ext_now_ms() time by which it wants its next call even if
 * no event comes, or 0. Returns 0, or -ENOSPC past ZH__TICKS_MAX (4) hooks. */
int zh__worker_tick_add(zh__worker_t *w, zh__tick_fn fn, void *arg);

/* ---- foreign descriptors and suspended responses driven from the loop (the reverse proxy) -- */

/* A descriptor of the feature's own on the worker's epoll set (edge-triggered, IN | OUT |
 * RDHUP): fn(w, x, events) runs on the worker, between connection events, for each
 * readiness change. x is the caller's and must stay valid while fd is open; closing fd
 * removes it from the set, but an event of the same round may still arrive for it, so fn
 * must tolerate a spurious call (its nonblocking calls then say EAGAIN). x's address must
 * be even (any struct is). Returns 0 or -errno from epoll_ctl. On the io_uring backend the
 * ring polls the epoll set (loop.c zh__watch_drain). Worker thread only. */
typedef struct zh__watch {
	void (*fn)(zh__worker_t *w, struct zh__watch *x, uint32_t events);
} zh__watch_t;
int zh__watch_add(zh__worker_t *w, int fd, zh__watch_t *x);

/* zh_deferred_resume without the inbox: runs fn now, on the calling worker (the token's),
 * with the same one-call rule (fn(NULL, NULL, arg) for a stale token). Only from a
 * zh__watch_t callback or a zh_timer_t callback, never from inside a handler, producer or
 * continuation (the response would be re-entered). */
void zh__deferred_resume_now(const zh_deferred_t *token, zh_body_fn fn, void *arg);
/* Inside a producer call: its source has nothing now. Returning ZH_PRODUCE_MORE without
 * writing is then no error; the producer is not called again until zh__resp_unpark(token)
 * (from a watch or timer callback), or with resp NULL if the connection dies first. */
void zh__resp_park(zh_response_t *resp, zh_deferred_t *token);
void zh__resp_unpark(const zh_deferred_t *token); /* a stale token does nothing */
/* Right after zh_body_wait(): *token names this wait. zh__body_wake(token), from a watch
 * or timer callback, calls the continuation now as if body bytes had come (its
 * zh_body_read may say -EAGAIN again): for a handler that also waits on something else,
 * such as an upstream that answers before the body has all come. A stale token (the wait
 * ended, the connection closed) does nothing. */
void zh__body_wait_token(zh_request_t *req, zh_deferred_t *token);
void zh__body_wake(const zh_deferred_t *token);

/* Body bytes waiting in a pipe (spliced there from a socket): len bytes of pipefd leave by
 * splice(2), never through user space, as a file entry of the queue. release(arg) once the
 * socket took them or the connection died; the pipe must hold them until then (and nothing
 * else may be written to it before). zh__resp_pipe_ok says whether this response can take
 * such an entry (a plain socket, no body filter, not HEAD); zh__resp_write_pipe returns 0,
 * -EINVAL (it cannot), or what zh_send_file returns. */
bool zh__resp_pipe_ok(const zh_response_t *resp);
int zh__resp_write_pipe(zh_response_t *resp, int pipefd, size_t len, zh_release_fn release,
			void *arg);
/* A streaming route's request body without a copy through user space (the reverse proxy's).
 * zh__body_peek: the body bytes that came with the head and are not taken yet, in place in
 * the receive buffer: a Content-Length body over HTTP/1 only (chunked framing must be
 * decoded: zh_body_read), else empty. Valid until the next body call or the response's end.
 * zh__body_take(req, n) marks the first n of them (n <= the peeked length) as read.
 * zh__body_splice: once none are left, moves up to cap bytes of a Content-Length body from
 * a plain HTTP/1 socket into the pipe pipe_w by splice(2) (the pipe must have room for
 * them). Returns the bytes moved (> 0), 0 at the end of the body, -ENOTSUP when this body
 * cannot be spliced (TLS, HTTP/2, io_uring, chunked, bytes still buffered: use
 * zh_body_read), or what zh_body_read returns (-EAGAIN: zh_body_wait). */
zh_slice_t zh__body_peek(const zh_request_t *req);
void zh__body_take(zh_request_t *req, size_t n);
ssize_t zh__body_splice(zh_request_t *req, int pipe_w, size_t cap);
/* The reverse proxies' per-upstream families for /metrics (upstream.c); nothing if srv has
 * no proxy. */
void zh__proxy_metrics_expose(const zh_server_t *srv, zh_response_t *resp);

/* ---- application metrics (app_metrics.c) -------------------------------------------------------- */

/* The metrics registered with zh_metric_new, in the exposition format, after the library's
 * own (metrics.c); nothing if there are none. */
void zh__app_metrics_expose(const zh_server_t *srv, zh_response_t *resp);

/* ---- test hooks of the bundled features -------------------------------------------------------- */

/* mw_limit.c: takes a token of key's bucket at now_ns (CLOCK_MONOTONIC). 1: taken (or no
 * rate limit); 0: none left, *wait_ns until the next. For tests/test_limit.c. */
int zh__limit_take(zh_limit_t *l, const uint8_t key[16], uint64_t now_ns, uint64_t *wait_ns);
/* mw_limit.c: the bucket key of a peer address (family and addr as zh_req_peer_addr gives
 * them): IPv4 and IPv4-mapped per address, IPv6 per zh_limit_ipv6_prefix. */
void zh__limit_key(const zh_limit_t *l, int family, const uint8_t addr[16], uint8_t key[16]);

#endif
