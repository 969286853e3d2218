/* app_metrics.c — the application's metrics: registration, lock-free updates and their
 * Prometheus exposition after the library's own on /metrics (see zerohttp.h).
 *
 * Memory. zh_metric_new allocates one block of cells per metric: a shard per worker and
 * one more for threads that are not workers, each shard padded to a 64-byte line so that
 * two workers never write the same cache line. A series has one cell (counter, gauge) or
 * nbuckets + 2 (histogram: the count of each bucket, +Inf's, and the sum as double bits).
 * Everything an update needs is fixed at registration; an update finds its shard through
 * the worker running on this thread (loop.c), so it costs a load, an add and a store.
 *
 * Shards. A worker writes only its own shard, with a relaxed load and store (one writer:
 * no read-modify-write needed, as ZH__STATS_ADD); other threads share the last shard and
 * use atomic read-modify-writes. A scrape sums the shards with relaxed loads.
 */
#include "internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
	NAME_MAX_LEN = 128,
	VALUE_MAX_LEN = 256,
	VALUES_MAX = 1024,
	BUCKETS_MAX = 32,
	LINE_CELLS = 64 / sizeof(uint64_t),
};

struct zh_metric {
	struct zh_metric *next;
	const zh_server_t *srv;
	int type;
	char name[NAME_MAX_LEN + 1];
	char *help;		/* escaped for HELP */
	char **values;		/* the label's values as given, for zh_metric_series */
	size_t *value_len;
	char **labels;		/* per series: `name="value"` escaped, or NULL without label */
	double *bounds;
	unsigned nbuckets, nseries, per_series, nshards;
	size_t stride;		/* cells per shard, a whole number of cache lines */
	uint64_t *cells;
};

/* ---- registration ------------------------------------------------------------------------- */

static bool name_ok(const char *s, bool colon)
{
	size_t n = s ? strlen(s) : 0;
	if (n == 0 || n > NAME_MAX_LEN || (s[0] >= '0' && s[0] <= '9'))
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || (colon && c == ':')))
			return false;
	}
	return true;
}

/* Well-formed UTF-8 (RFC 3629: no overlongs, surrogates or code points past U+10FFFF). */
static bool utf8_ok(const unsigned char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		unsigned c = s[i], need, cp;
		if (c < 0x80) {
			i++;
			continue;
		}
		need = c >= 0xf0 ? 3 : c >= 0xe0 ? 2 : c >= 0xc2 ? 1 : 0;
		if (need == 0 || c > 0xf4 || n - i <= need) /* need bytes must follow */
			return false;
		cp = c & (0x3fu >> need);
		for (unsigned k = 1; k <= need; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + k] & 0x3fu);
		}
		if ((need == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
		    (need == 3 && (cp < 0x10000 || cp > 0x10ffff)))
			return false;
		i += need + 1;
	}
	return true;
}

/* s with '\' as "\\", newline as "\n" and, in a label value, '"' as "\"" (exposition
 * format 0.0.4), NUL-terminated; NULL if out of memory. */
static char *escaped(const char *s, bool quotes)
{
	size_t n = strlen(s), o = 0;
	char *out = malloc(2 * n + 1);
	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\\' || s[i] == '\n' || (quotes && s[i] == '"')) {
			out[o++] = '\\';
			out[o++] = s[i] == '\n' ? 'n' : s[i];
		} else {
			out[o++] = s[i];
		}
	}
	out[o] = '\0';
	return out;
}

static void metric_free(zh_metric_t *m)
{
	if (m == NULL)
		return;
	for (unsigned i = 0; m->values && i < m->nseries; i++)
		free(m->values[i]);
	for (unsigned i = 0; m->labels && i < m->nseries; i++)
		free(m->labels[i]);
	free(m->values);
	free(m->value_len);
	free(m->labels);
	free(m->bounds);
	free(m->help);
	free(m->cells);
	free(m);
}

void zh__app_metrics_free(zh_server_t *srv)
{
	while (srv->metrics) {
		zh_metric_t *m = srv->metrics;
		srv->metrics = m->next;
		metric_free(m);
	}
}

static int check_options(const zh_server_t *srv, const zh_metric_options_t *o)
{
	if (o == NULL || o->type < ZH_METRIC_COUNTER || o->type > ZH_METRIC_HISTOGRAM ||
	    !name_ok(o->name, true) || strncmp(o->name, "zerohttp_", 9) == 0)
		return -EINVAL;
	if (o->help == NULL || !utf8_ok((const unsigned char *)o->help, strlen(o->help)))
		return -EINVAL;
	if (o->label) {
		if (!name_ok(o->label, false) || strncmp(o->label, "__", 2) == 0 ||
		    (o->type == ZH_METRIC_HISTOGRAM && strcmp(o->label, "le") == 0) ||
		    o->values == NULL || o->nvalues == 0 || o->nvalues > VALUES_MAX)
			return -EINVAL;
		for (unsigned i = 0; i < o->nvalues; i++) {
			size_t n = o->values[i] ? strlen(o->values[i]) : VALUE_MAX_LEN + 1;
			if (n > VALUE_MAX_LEN || !utf8_ok((const unsigned char *)o->values[i], n))
				return -EINVAL;
			for (unsigned j = 0; j < i; j++)
				if (strcmp(o->values[i], o->values[j]) == 0)
					return -EEXIST;
		}
	}
	if (o->type == ZH_METRIC_HISTOGRAM) {
		if (o->buckets == NULL || o->nbuckets == 0 || o->nbuckets > BUCKETS_MAX)
			return -EINVAL;
		for (unsigned i = 0; i < o->nbuckets; i++)
			if (!isfinite(o->buckets[i]) || (i && o->buckets[i] <= o->buckets[i - 1]))
				return -EINVAL;
	}
	for (const zh_metric_t *m = srv->metrics; m; m = m->next)
		if (strcmp(m->name, o->name) == 0)
			return -EEXIST;
	return 0;
}

/* The label values and their `label="value"` texts, copied. */
static int copy_labels(zh_metric_t *m, const zh_metric_options_t *o)
{
	m->values = calloc(m->nseries, sizeof *m->values);
	m->value_len = calloc(m->nseries, sizeof *m->value_len);
	m->labels = calloc(m->nseries, sizeof *m->labels);
	if (!m->values || !m->value_len || !m->labels)
		return -ENOMEM;
	for (unsigned i = 0; i < m->nseries; i++) {
		char *v = escaped(o->values[i], true);
		size_t n;
		m->value_len[i] = strlen(o->values[i]);
		m->values[i] = strdup(o->values[i]);
		n = v ? strlen(o->label) + strlen(v) + 4 : 0;
		m->labels[i] = v ? malloc(n) : NULL;
		if (m->labels[i])
			snprintf(m->labels[i], n, "%s=\"%s\"", o->label, v);
		free(v);
		if (!m->values[i] || !m->labels[i])
			return -ENOMEM;
	}
	return 0;
}

static int build(zh_metric_t *m, const zh_server_t *srv, const zh_metric_options_t *o)
{
	size_t cells;
	m->srv = srv;
	m->type = o->type;
	memcpy(m->name, o->name, strlen(o->name) + 1);
	m->nseries = o->label ? o->nvalues : 1;
	m->nbuckets = o->type == ZH_METRIC_HISTOGRAM ? o->nbuckets : 0;
	m->per_series = o->type == ZH_METRIC_HISTOGRAM ? m->nbuckets + 2 : 1;
	m->nshards = zh_server_workers(srv) + 1;
	m->stride = ((size_t)m->nseries * m->per_series + LINE_CELLS - 1) / LINE_CELLS * LINE_CELLS;
	if ((m->help = escaped(o->help, false)) == NULL)
		return -ENOMEM;
	if (o->label && copy_labels(m, o) < 0)
		return -ENOMEM;
	if (m->nbuckets) {
		if ((m->bounds = malloc(m->nbuckets * sizeof *m->bounds)) == NULL)
			return -ENOMEM;
		memcpy(m->bounds, o->buckets, m->nbuckets * sizeof *m->bounds);
	}
	cells = m->stride * m->nshards;
	m->cells = aligned_alloc(64, cells * sizeof *m->cells);
	if (m->cells == NULL)
		return -ENOMEM;
	memset(m->cells, 0, cells * sizeof *m->cells);
	return 0;
}

void zh_metric_options_init(zh_metric_options_t *o)
{
	memset(o, 0, sizeof *o);
}

zh_metric_t *zh_metric_new(zh_server_t *srv, const zh_metric_options_t *o, int *err)
{
	zh_metric_t *m = NULL;
	int r = srv == NULL ? -EINVAL : srv->running ? -EBUSY : check_options(srv, o);
	if (r == 0 && (m = calloc(1, sizeof *m)) == NULL)
		r = -ENOMEM;
	if (r == 0 && (r = build(m, srv, o)) == 0) {
		zh_metric_t **tail = &srv->metrics; /* registration order is exposition order */
		while (*tail)
			tail = &(*tail)->next;
		*tail = m;
		return m;
	}
	metric_free(m);
	if (err)
		*err = r;
	return NULL;
}

/* ---- updates ------------------------------------------------------------------------------ */

int zh_metric_series(const zh_metric_t *m, const char *value, size_t len)
{
	if (m == NULL || m->values == NULL)
		return -ENOENT;
	for (unsigned i = 0; i < m->nseries; i++)
		if (m->value_len[i] == len && memcmp(m->values[i], value, len) == 0)
			return (int)i;
	return -ENOENT;
}

/* The series' cells in the calling thread's shard; *own: this worker's alone. */
static uint64_t *cells_of(zh_metric_t *m, unsigned series, bool *own)
{
	const zh__worker_t *w = zh__worker_self();
	unsigned shard = w && w->srv == m->srv ? w->id : m->nshards - 1;
	*own = shard != m->nshards - 1;
	return m->cells + shard * m->stride + (size_t)series * m->per_series;
}

static void cell_add(uint64_t *c, uint64_t n, bool own)
{
	if (own)
		__atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
	else
		__atomic_fetch_add(c, n, __ATOMIC_RELAXED);
}

int zh_metric_add(zh_metric_t *m, unsigned series, int64_t n)
{
	bool own = false;
	if (m == NULL || series >= m->nseries || m->type == ZH_METRIC_HISTOGRAM ||
	    (m->type == ZH_METRIC_COUNTER && n < 0))
		return -EINVAL;
	cell_add(cells_of(m, series, &own), (uint64_t)n, own);
	return 0;
}

int zh_metric_set(zh_metric_t *m, unsigned series, int64_t v)
{
	bool own = false;
	if (m == NULL || series >= m->nseries || m->type != ZH_METRIC_GAUGE)
		return -EINVAL;
	__atomic_store_n(cells_of(m, series, &own), (uint64_t)v, __ATOMIC_RELAXED);
	return 0;
}

static uint64_t bits_of(double d)
{
	uint64_t u;
	memcpy(&u, &d, sizeof u);
	return u;
}

static double double_of(uint64_t u)
{
	double d;
	memcpy(&d, &u, sizeof d);
	return d;
}

int zh_metric_observe(zh_metric_t *m, unsigned series, double v)
{
	uint64_t *c, *sum, old;
	unsigned b = 0;
	bool own = false;
	if (m == NULL || series >= m->nseries || m->type != ZH_METRIC_HISTOGRAM || isnan(v))
		return -EINVAL;
	while (b < m->nbuckets && v > m->bounds[b]) /* at most 32: a scan beats a search */
		b++;
	c = cells_of(m, series, &own);
	cell_add(&c[b], 1, own);
	sum = &c[m->nbuckets + 1];
	old = __atomic_load_n(sum, __ATOMIC_RELAXED);
	if (own)
		__atomic_store_n(sum, bits_of(double_of(old) + v), __ATOMIC_RELAXED);
	else
		while (!__atomic_compare_exchange_n(sum, &old, bits_of(double_of(old) + v), true,
						    __ATOMIC_RELAXED, __ATOMIC_RELAXED))
			;
	return 0;
}

/* ---- exposition ----------------------------------------------------------------------------- */

typedef struct {
	zh_response_t *resp;
	size_t len;
	char buf[4096];
} out_t;

static void flush_out(out_t *o)
{
	/* a failed write has failed the response (sticky): the scrape becomes a 500 or is cut */
	if (o->len && zh__write_encoded(o->resp, o->buf, o->len) < 0)
		o->len = 0;
	o->len = 0;
}

/* Every line is far shorter than 2 KiB (names 128, label texts 1 KiB at most). */
__attribute__((format(printf, 2, 3))) static void emit(out_t *o, const char *fmt, ...)
{
	va_list ap;
	int n;
	if (o->len > sizeof o->buf - 2048)
		flush_out(o);
	va_start(ap, fmt);
	n = vsnprintf(o->buf + o->len, sizeof o->buf - o->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		o->len += (size_t)n < sizeof o->buf - o->len ? (size_t)n : sizeof o->buf - o->len - 1;
}

static uint64_t sum_cell(const zh_metric_t *m, size_t at)
{
	uint64_t v = 0;
	for (unsigned s = 0; s < m->nshards; s++)
		v += __atomic_load_n(&m->cells[s * m->stride + at], __ATOMIC_RELAXED);
	return v;
}

static double sum_double(const zh_metric_t *m, size_t at)
{
	double v = 0;
	for (unsigned s = 0; s < m->nshards; s++)
		v += double_of(__atomic_load_n(&m->cells[s * m->stride + at], __ATOMIC_RELAXED));
	return v;
}

/* The shortest of %.15g / %.17g that reads back as d: "0.1", not 0.10000000000000001. */
static const char *num(double d, char out[32])
{
	snprintf(out, 32, "%.15g", d);
	if (strtod(out, NULL) != d)
		snprintf(out, 32, "%.17g", d);
	return out;
}

static void histogram(out_t *o, const zh_metric_t *m, unsigned i)
{
	const char *lab = m->labels ? m->labels[i] : "", *sep = m->labels ? "," : "";
	size_t at = (size_t)i * m->per_series;
	uint64_t cum = 0;
	char t[32];
	for (unsigned b = 0; b <= m->nbuckets; b++) {
		cum += sum_cell(m, at + b);
		if (b < m->nbuckets)
			emit(o, "%s_bucket{%s%sle=\"%s\"} %llu\n", m->name, lab, sep,
			     num(m->bounds[b], t), (unsigned long long)cum);
		else
			emit(o, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", m->name, lab, sep,
			     (unsigned long long)cum);
	}
	emit(o, "%s_sum%s%s%s %s\n", m->name, *lab ? "{" : "", lab, *lab ? "}" : "",
	     num(sum_double(m, at + m->nbuckets + 1), t));
	emit(o, "%s_count%s%s%s %llu\n", m->name, *lab ? "{" : "", lab, *lab ? "}" : "",
	     (unsigned long long)cum);
}

static void family(out_t *o, const zh_metric_t *m)
{
	static const char *const types[3] = {"counter", "gauge", "histogram"};
	emit(o, "# HELP %s %s\n", m->name, m->help);
	emit(o, "# TYPE %s %s\n", m->name, types[m->type]);
	for (unsigned i = 0; i < m->nseries; i++) {
		const char *lab = m->labels ? m->labels[i] : "";
		uint64_t v;
		if (m->type == ZH_METRIC_HISTOGRAM) {
			histogram(o, m, i);
			continue;
		}
		v = sum_cell(m, (size_t)i * m->per_series);
		if (m->type == ZH_METRIC_GAUGE) /* shares are two's complement: the sum too */
			emit(o, "%s%s%s%s %lld\n", m->name, *lab ? "{" : "", lab, *lab ? "}" : "",
			     (long long)v);
		else
			emit(o, "%s%s%s%s %llu\n", m->name, *lab ? "{" : "", lab, *lab ? "}" : "",
			     (unsigned long long)v);
	}
}

void zh__app_metrics_expose(const zh_server_t *srv, zh_response_t *resp)
{
	out_t o;
	if (srv->metrics == NULL)
		return;
	o.resp = resp;
	o.len = 0;
	for (const zh_metric_t *m = srv->metrics; m; m = m->next)
		family(&o, m);
	flush_out(&o);
}
