/* tls_metrics.c — the TLS counters as Prometheus text (zh_tls_metrics_text), for a
 * /metrics handler to write after zh_metrics_handler's families. Names zerohttp_tls_*.
 * Formatted into the caller's buffer: this library calls nothing in libzerohttp, so a
 * program can load it only when it serves TLS (zerohttpd dlopens it).
 */
#include "tls_int.h"

#include <stdarg.h>
#include <stdio.h>

typedef struct {
	char *buf;
	size_t cap, len; /* len may pass cap: the size needed */
} out_t;

static void emit(out_t *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void emit(out_t *o, const char *fmt, ...)
{
	va_list ap;
	int n;
	char *at = o->len < o->cap ? o->buf + o->len : NULL;
	va_start(ap, fmt);
	n = vsnprintf(at, at ? o->cap - o->len : 0, fmt, ap);
	va_end(ap);
	if (n > 0)
		o->len += (size_t)n;
}

static void family(out_t *o, const char *name, const char *type, const char *help)
{
	emit(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void counter(out_t *o, const char *name, const char *help, uint64_t v)
{
	family(o, name, "counter", help);
	emit(o, "%s %llu\n", name, (unsigned long long)v);
}

size_t zh_tls_metrics_text(const zh_tls_t *tls, char *buf, size_t cap)
{
	static const char *const reasons[4] = {"timeout", "protocol", "closed", "plain_http"};
	zh_tls_stats_t st;
	out_t out = {.buf = buf, .cap = cap}, *o = &out;
	uint64_t failed[4], cum = 0;
	zh_tls_stats(tls, &st);
	failed[0] = st.failed_timeout, failed[1] = st.failed_protocol;
	failed[2] = st.failed_closed, failed[3] = st.failed_plain_http;
	family(o, "zerohttp_tls_handshakes_total", "counter",
	       "TLS handshakes by result: ok, or failed with a reason.");
	emit(o, "zerohttp_tls_handshakes_total{result=\"ok\"} %llu\n",
	     (unsigned long long)st.handshakes_ok);
	for (unsigned i = 0; i < 4; i++)
		emit(o, "zerohttp_tls_handshakes_total{result=\"failed\",reason=\"%s\"} %llu\n",
		     reasons[i], (unsigned long long)failed[i]);
	counter(o, "zerohttp_tls_resumed_total", "Handshakes that resumed a session (ticket or PSK).",
		st.resumed);
	family(o, "zerohttp_tls_version_total", "counter", "Completed handshakes by version.");
	emit(o, "zerohttp_tls_version_total{version=\"TLSv1.2\"} %llu\n",
	     (unsigned long long)st.tls12);
	emit(o, "zerohttp_tls_version_total{version=\"TLSv1.3\"} %llu\n",
	     (unsigned long long)st.tls13);
	family(o, "zerohttp_tls_cipher_total", "counter", "Completed handshakes by cipher suite.");
	for (unsigned i = 0; i < ZH_TLS_CIPHERS; i++)
		emit(o, "zerohttp_tls_cipher_total{cipher=\"%s\"} %llu\n", zh_tls_cipher_names[i],
		     (unsigned long long)st.cipher[i]);
	family(o, "zerohttp_tls_handshake_seconds", "histogram",
	       "Time from accept to the end of a completed handshake.");
	for (unsigned i = 0; i < ZH_TLS_HS_BUCKETS; i++) {
		cum += st.hs_buckets[i];
		if (i < ZH_TLS_HS_BUCKETS - 1)
			emit(o, "zerohttp_tls_handshake_seconds_bucket{le=\"%g\"} %llu\n",
			     zh_tls_hs_bounds_us[i] / 1e6, (unsigned long long)cum);
		else
			emit(o, "zerohttp_tls_handshake_seconds_bucket{le=\"+Inf\"} %llu\n",
			     (unsigned long long)cum);
	}
	emit(o, "zerohttp_tls_handshake_seconds_sum %.6f\n", st.hs_sum_us / 1e6);
	emit(o, "zerohttp_tls_handshake_seconds_count %llu\n", (unsigned long long)st.hs_count);
	counter(o, "zerohttp_tls_handshake_allocations_total",
		"OpenSSL allocations made during handshakes (pool blocks when pools are active).",
		st.hs_allocs);
	counter(o, "zerohttp_tls_data_allocations_total",
		"OpenSSL allocations made while moving application data (record buffers).",
		st.data_allocs);
	family(o, "zerohttp_tls_pool_bytes", "gauge",
	       "Bytes mapped for OpenSSL's per-thread pools.");
	emit(o, "zerohttp_tls_pool_bytes %llu\n", (unsigned long long)st.pool_bytes);
	family(o, "zerohttp_tls_reloads_total", "counter", "Certificate reloads by result.");
	emit(o, "zerohttp_tls_reloads_total{result=\"ok\"} %llu\n", (unsigned long long)st.reloads);
	emit(o, "zerohttp_tls_reloads_total{result=\"failed\"} %llu\n",
	     (unsigned long long)st.reload_failures);
	return o->len;
}
