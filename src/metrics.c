/* metrics.c — GET /metrics in the Prometheus text format (0.0.4), /healthz and /readyz.
 *
 * Every counter lives per worker and is written by that worker alone with plain stores
 * (ZH__STAT_ADD); a scrape sums them (zh_server_stats), so the request path pays no lock
 * and no atomic read-modify-write for being observed. The exposition is formatted into a
 * stack buffer a family at a time and queued with the serializer path (zh__write_encoded):
 * a scrape allocates nothing either.
 */
#include "ext.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const method_names[ZH_STATS_METHODS] = {
	"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "other"};
static const char *const reject_reasons[8] = {"400", "413", "414", "417",
					      "431", "501", "505", "other"};

typedef struct {
	zh_response_t *resp;
	char buf[4096];
	size_t len;
} out_t;

static void flush_out(out_t *o)
{
	(void)zh__write_encoded(o->resp, o->buf, o->len);
	o->len = 0;
}

__attribute__((format(printf, 2, 3))) static void emit(out_t *o, const char *fmt, ...)
{
	va_list ap;
	int n;
	if (o->len > sizeof o->buf - 512)
		flush_out(o);
	va_start(ap, fmt);
	n = vsnprintf(o->buf + o->len, sizeof o->buf - o->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		o->len += (size_t)n < sizeof o->buf - o->len ? (size_t)n : sizeof o->buf - o->len - 1;
}

static void family(out_t *o, const char *name, const char *type, const char *help)
{
	emit(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void scalar(out_t *o, const char *name, const char *type, const char *help,
		   uint64_t v)
{
	family(o, name, type, help);
	emit(o, "%s %llu\n", name, (unsigned long long)v);
}

static void responses(out_t *o, const zh_stats_t *st)
{
	family(o, "zerohttp_http_responses_total", "counter",
	       "Responses by request method and status class.");
	for (unsigned m = 0; m < ZH_STATS_METHODS; m++)
		for (unsigned c = 0; c < 5; c++)
			emit(o, "zerohttp_http_responses_total{method=\"%s\",code=\"%uxx\"} %llu\n",
			     method_names[m], c + 1, (unsigned long long)st->responses_by[m][c]);
}

static void latency(out_t *o, const zh_stats_t *st)
{
	uint64_t cum = 0;
	family(o, "zerohttp_http_request_duration_seconds", "histogram",
	       "Time from a request's head to the end of its response.");
	for (unsigned b = 0; b < ZH_LATENCY_BUCKETS; b++) {
		cum += st->latency_buckets[b];
		if (b < ZH_LATENCY_BUCKETS - 1)
			emit(o, "zerohttp_http_request_duration_seconds_bucket{le=\"%g\"} %llu\n",
			     zh_latency_bounds_us[b] / 1e6, (unsigned long long)cum);
		else
			emit(o, "zerohttp_http_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
			     (unsigned long long)cum);
	}
	emit(o, "zerohttp_http_request_duration_seconds_sum %.6f\n", st->latency_sum_us / 1e6);
	emit(o, "zerohttp_http_request_duration_seconds_count %llu\n",
	     (unsigned long long)st->latency_count);
}

static void labelled_typed(out_t *o, const char *name, const char *type, const char *help,
			   const char *label, const char *const *values, const uint64_t *counts,
			   unsigned n)
{
	family(o, name, type, help);
	for (unsigned i = 0; i < n; i++)
		emit(o, "%s{%s=\"%s\"} %llu\n", name, label, values[i],
		     (unsigned long long)counts[i]);
}

static void labelled(out_t *o, const char *name, const char *help, const char *label,
		     const char *const *values, const uint64_t *counts, unsigned n)
{
	labelled_typed(o, name, "counter", help, label, values, counts, n);
}

/* HTTP/2 (zh_http2_enable): what was served, and each abuse limit that ended a
 * connection with GOAWAY (docs/design.md, "HTTP/2") */
static void http2(out_t *o, const zh_stats_t *st)
{
	static const char *const pool_states[] = {"in_use", "mapped"};
	static const char *const limits[] = {"rapid_reset",	"flood",
					     "continuation_flood", "header_list_too_large",
					     "too_many_streams", "slow_headers", "zero_window"};
	uint64_t n[7] = {st->h2_rapid_resets,	       st->h2_floods,
			 st->h2_continuation_floods,   st->h2_header_lists_too_large,
			 st->h2_streams_refused,       st->h2_slow_headers,
			 st->h2_zero_window};
	scalar(o, "zerohttp_http2_connections_total", "counter", "HTTP/2 connections.",
	       st->h2_connections);
	scalar(o, "zerohttp_http2_streams_total", "counter", "HTTP/2 streams (requests).",
	       st->h2_streams);
	scalar(o, "zerohttp_http2_goaway_sent_total", "counter", "HTTP/2 GOAWAY frames sent.",
	       st->h2_goaway_sent);
	labelled(o, "zerohttp_http2_abuse_total",
		 "HTTP/2 connections ended by a limit (each with GOAWAY), by limit.", "limit",
		 limits, n, 7);
	labelled_typed(o, "zerohttp_http2_pool_bytes", "gauge",
		       "Bytes of the workers' HTTP/2 pools (nghttp2 sessions, streams, "
		       "connection state): handed out, and mapped.",
		       "state", pool_states,
		       (const uint64_t[]){st->h2_pool_in_use, st->h2_pool_mapped}, 2);
}

/* What each pool can lend, all workers together: the denominator of the *_in_use gauges,
 * so an alert can say "90% of the I/O contexts are lent" without knowing the flags. */
static void pool_capacity(out_t *o, const zh_server_t *srv)
{
	static const char *const pools[4] = {"connections", "io_contexts", "large_buffers",
					     "body_buffers"};
	const zh_config_t *cfg = zh__ext_server_config(srv);
	uint64_t cap[4] = {cfg->max_connections, cfg->io_contexts, cfg->large_buffers,
			   cfg->body_buffers};
	for (unsigned i = 0; i < 4; i++)
		cap[i] *= zh_server_workers(srv);
	labelled_typed(o, "zerohttp_pool_capacity", "gauge",
		       "Objects each per-worker pool holds, summed over workers.", "pool", pools,
		       cap, 4);
}

void zh_metrics_handler(zh_request_t *req, zh_response_t *resp, void *arg)
{
	const zh_server_t *srv = arg;
	static const char *const calls[3] = {"read", "writev", "sendfile"};
	static const char *const shed_codes[2] = {"429", "503"};
	zh_stats_t st;
	uint64_t syscalls[3], sheds[2];
	out_t out = {.resp = resp}, *o = &out;
	(void)req;
	zh_server_stats(srv, &st);
	if (zh_resp_header_set(resp, "Content-Type", "text/plain; version=0.0.4; charset=utf-8") < 0)
		return;
	family(o, "zerohttp_build_info", "gauge", "The running version.");
	emit(o, "zerohttp_build_info{version=\"%s\"} 1\n", ZH_VERSION);
	scalar(o, "zerohttp_start_time_seconds", "gauge", "When the server started (Unix time).",
	       (uint64_t)zh__ext_server_start(srv));
	responses(o, &st);
	latency(o, &st);
	scalar(o, "zerohttp_http_requests_total", "counter", "Requests whose head was parsed.",
	       st.requests);
	/* workers are read one after another while they run: a difference may dip below 0 */
	scalar(o, "zerohttp_http_requests_in_flight", "gauge", "Requests not yet answered.",
	       st.requests > st.requests_done ? st.requests - st.requests_done : 0);
	scalar(o, "zerohttp_connections_accepted_total", "counter", "Connections accepted.",
	       st.connections_accepted);
	scalar(o, "zerohttp_connections_closed_total", "counter", "Connections closed.",
	       st.connections_closed);
	scalar(o, "zerohttp_connections_open", "gauge", "Connections open now.",
	       st.connections_accepted > st.connections_closed
		       ? st.connections_accepted - st.connections_closed
		       : 0);
	scalar(o, "zerohttp_connections_upgraded_total", "counter",
	       "Connections handed over after 101 Switching Protocols (also counted closed).",
	       st.connections_upgraded);
	scalar(o, "zerohttp_connections_timed_out_total", "counter",
	       "Connections closed by a header, idle, body or write timeout.", st.timeouts);
	scalar(o, "zerohttp_access_log_dropped_bytes_total", "counter",
	       "Access log bytes dropped: the file could not be written or a pipe reader stalled.",
	       st.access_log_bytes_dropped);
	scalar(o, "zerohttp_received_bytes_total", "counter", "Bytes read from clients.",
	       st.bytes_in);
	scalar(o, "zerohttp_sent_bytes_total", "counter", "Bytes written to clients.",
	       st.bytes_out);
	labelled(o, "zerohttp_parse_rejections_total", "Requests refused by the parser, by status.",
		 "reason", reject_reasons, st.parse_rejects, 8);
	sheds[0] = st.shed_429;
	sheds[1] = st.shed_503;
	labelled(o, "zerohttp_shed_total", "Requests refused for rate (429) or load (503).", "code",
		 shed_codes, sheds, 2);
	scalar(o, "zerohttp_io_contexts_in_use", "gauge", "I/O contexts lent to connections.",
	       st.io_contexts_in_use);
	scalar(o, "zerohttp_io_contexts_high_water", "gauge", "Most I/O contexts ever lent at once.",
	       st.io_contexts_high_water);
	scalar(o, "zerohttp_large_buffers_in_use", "gauge", "64 KiB pool buffers in use.",
	       st.large_buffers_in_use);
	scalar(o, "zerohttp_large_buffers_high_water", "gauge", "Most 64 KiB buffers ever in use.",
	       st.large_buffers_high_water);
	scalar(o, "zerohttp_body_buffers_in_use", "gauge", "Request body buffers in use.",
	       st.body_buffers_in_use);
	scalar(o, "zerohttp_body_buffers_high_water", "gauge", "Most body buffers ever in use.",
	       st.body_buffers_high_water);
	pool_capacity(o, srv);
	scalar(o, "zerohttp_stalled_evictions_total", "counter",
	       "Stalled peers cut early (408) because a ready one needed their I/O context.",
	       st.stalled_evictions);
	scalar(o, "zerohttp_pool_exhausted_total", "counter",
	       "Times a pool had no buffer to lend (answered 503).", st.pool_exhausted);
	syscalls[0] = st.read_calls;
	syscalls[1] = st.writev_calls;
	syscalls[2] = st.sendfile_calls;
	labelled(o, "zerohttp_syscalls_total", "I/O system calls on connections.", "call", calls,
		 syscalls, 3);
	scalar(o, "zerohttp_heap_allocations_total", "counter",
	       "malloc-family calls on worker threads (0 growth in steady state).",
	       st.heap_allocs);
	scalar(o, "zerohttp_body_bytes_copied_total", "counter",
	       "Request and response body bytes the library copied (0 growth in steady state).",
	       st.body_bytes_copied);
	scalar(o, "zerohttp_responses_aborted_total", "counter",
	       "Streamed responses cut short after their head left.", st.responses_aborted);
	scalar(o, "zerohttp_sync_write_waits_total", "counter",
	       "Times a handler's write waited for the socket.", st.sync_write_waits);
	scalar(o, "zerohttp_response_header_errors_total", "counter",
	       "Response header calls that failed (the response became a 500 if unsent).",
	       st.header_errors);
	http2(o, &st);
	flush_out(o);
	zh__proxy_metrics_expose(srv, resp); /* per upstream, when srv proxies */
	zh__app_metrics_expose(srv, resp); /* the application's own (zh_metric_new) */
}

void zh_healthz_handler(zh_request_t *req, zh_response_t *resp, void *arg)
{
	(void)req, (void)arg;
	(void)zh_reply(resp, 200, "text/plain; charset=utf-8", "ok\n", 3);
}

void zh_readyz_handler(zh_request_t *req, zh_response_t *resp, void *arg)
{
	const zh_server_t *watched = arg;
	if (zh__ext_draining(zh__ext_worker(req)) || (watched && zh__ext_server_stopping(watched))) {
		/* a Retry-After that cannot be set fails the answer (a 500, still not ready) */
		if (zh_resp_header_set(resp, "Retry-After", "1") == 0)
			(void)zh_reply(resp, 503, "text/plain; charset=utf-8", "draining\n", 9);
		return;
	}
	(void)zh_reply(resp, 200, "text/plain; charset=utf-8", "ready\n", 6);
}
