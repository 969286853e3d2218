/* bench/json_read/bench.c — parse throughput of the JSON reader (zh_jdoc_parse) against
 * jansson's json_loadb on the same documents (bench/json_read/gen_docs.py), run by
 * `make bench` (target bench-json-read):
 *
 *   json_read FILE...
 *
 * Two measures per document and parser, each the best of ROUNDS rounds of at least
 * ROUND_NS of back-to-back parses of the same bytes (best, not mean: the machine is shared,
 * and interference only ever slows a round down):
 *   parse       zerohttp: validate and tokenize. jansson: json_loadb (which validates and
 *               builds its tree, decoding every string and number) and json_decref.
 *   parse+read  the same, then every value read as a C value: each string unescaped into a
 *               buffer (zh_jdoc_string) or taken (json_string_value), each number as an
 *               int64 or double, each bool; objects by key. The sums are printed, so that
 *               the reads cannot be optimised away, and must agree between the two.
 * MB/s are 10^6 bytes of document per second. Built without jansson (libjansson-dev, which
 * scripts/deps.sh installs) only the zerohttp columns are measured, and a line says so.
 */
#include <zerohttp.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef ZH_BENCH_JANSSON
#include <jansson.h>
#endif

enum { ROUNDS = 7, MAX_TOKENS = 1 << 20 };
static const double ROUND_NS = 2e8;

static zh_jtok_t tokens[MAX_TOKENS];
static char strbuf[1 << 16];

struct sums {
	uint64_t strings, string_bytes, ints, bools, nulls;
	double reals;
};

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void zh_read_all(const zh_jdoc_t *d, struct sums *s)
{
	for (uint32_t i = 0; i < d->ntok; i++) {
		int64_t v;
		double x;
		int b;
		switch (zh_jdoc_type(d, i)) {
		case ZH_JT_STRING: {
			ssize_t n = zh_jdoc_string(d, i, strbuf, sizeof strbuf);
			if (n < 0 || (size_t)n >= sizeof strbuf)
				abort();
			s->strings++;
			s->string_bytes += (uint64_t)n;
			break;
		}
		case ZH_JT_NUMBER:
			if (zh_jdoc_i64(d, i, &v) == 0)
				s->ints += (uint64_t)v;
			else if (zh_jdoc_double(d, i, &x) == 0)
				s->reals += x;
			else
				abort();
			break;
		case ZH_JT_TRUE:
		case ZH_JT_FALSE:
			if (zh_jdoc_bool(d, i, &b) < 0)
				abort();
			s->bools += (uint64_t)b;
			break;
		case ZH_JT_NULL:
			s->nulls++;
			break;
		default:
			break;
		}
	}
}

static int zh_once(const char *doc, size_t len, int read, struct sums *s)
{
	zh_jdoc_t d;
	int n = zh_jdoc_parse(&d, doc, len, tokens, MAX_TOKENS, 0);
	if (n < 0)
		return n;
	if (read)
		zh_read_all(&d, s);
	return 0;
}

#ifdef ZH_BENCH_JANSSON
static void jn_read(json_t *v, struct sums *s)
{
	const char *key;
	json_t *m;
	size_t i;
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		json_object_foreach(v, key, m)
		{
			s->strings++; /* the key, as zerohttp counts it */
			s->string_bytes += strlen(key);
			jn_read(m, s);
		}
		break;
	case JSON_ARRAY:
		json_array_foreach(v, i, m) jn_read(m, s);
		break;
	case JSON_STRING:
		s->strings++;
		s->string_bytes += json_string_length(v);
		(void)json_string_value(v);
		break;
	case JSON_INTEGER:
		s->ints += (uint64_t)json_integer_value(v);
		break;
	case JSON_REAL:
		s->reals += json_real_value(v);
		break;
	case JSON_TRUE:
		s->bools++;
		break;
	case JSON_FALSE:
		break;
	case JSON_NULL:
		s->nulls++;
		break;
	}
}

static int jn_once(const char *doc, size_t len, int read, struct sums *s)
{
	json_error_t err;
	json_t *root = json_loadb(doc, len, 0, &err);
	if (root == NULL) {
		fprintf(stderr, "jansson: %s at %d\n", err.text, err.position);
		return -EINVAL;
	}
	if (read)
		jn_read(root, s);
	json_decref(root);
	return 0;
}
#endif

typedef int (*once_fn)(const char *doc, size_t len, int read, struct sums *s);

/* Best MB/s over ROUNDS rounds; *s gets the sums of one parse. */
static double measure(once_fn fn, const char *doc, size_t len, int read, struct sums *s)
{
	double best = 0;
	memset(s, 0, sizeof *s);
	if (fn(doc, len, read, s) < 0) {
		fprintf(stderr, "json_read: the document does not parse\n");
		exit(1);
	}
	for (int r = 0; r < ROUNDS; r++) {
		struct sums scratch;
		double t0 = now_ns(), t;
		long iters = 0;
		do {
			memset(&scratch, 0, sizeof scratch);
			fn(doc, len, read, &scratch);
			iters++;
		} while ((t = now_ns() - t0) < ROUND_NS);
		if ((double)len * (double)iters / t * 1e3 > best)
			best = (double)len * (double)iters / t * 1e3;
	}
	return best;
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;
	if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET)) {
		perror(path);
		exit(1);
	}
	buf = malloc((size_t)n + 1);
	if (buf == NULL || fread(buf, 1, (size_t)n, f) != (size_t)n) {
		perror(path);
		exit(1);
	}
	fclose(f);
	*len = (size_t)n;
	return buf;
}

static void check_same(const char *name, const struct sums *a, const struct sums *b)
{
	if (a->strings != b->strings || a->string_bytes != b->string_bytes || a->ints != b->ints ||
	    a->bools != b->bools || a->nulls != b->nulls || a->reals != b->reals) {
		fprintf(stderr,
			"json_read: %s: the parsers read different values: strings %llu/%llu "
			"bytes %llu/%llu ints %llu/%llu bools %llu/%llu nulls %llu/%llu reals %.17g/%.17g\n",
			name, (unsigned long long)a->strings, (unsigned long long)b->strings,
			(unsigned long long)a->string_bytes, (unsigned long long)b->string_bytes,
			(unsigned long long)a->ints, (unsigned long long)b->ints,
			(unsigned long long)a->bools, (unsigned long long)b->bools,
			(unsigned long long)a->nulls, (unsigned long long)b->nulls, a->reals, b->reals);
		exit(1);
	}
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: json_read FILE...\n");
		return 2;
	}
#ifdef ZH_BENCH_JANSSON
	printf("| document | bytes | measure | zerohttp MB/s | jansson %s MB/s | ratio |\n",
	       JANSSON_VERSION);
	printf("|---|---:|---|---:|---:|---:|\n");
#else
	printf("json_read: jansson not found (libjansson-dev: scripts/deps.sh): "
	       "zerohttp measured alone\n");
	printf("| document | bytes | measure | zerohttp MB/s |\n|---|---:|---|---:|\n");
#endif
	for (int a = 1; a < argc; a++) {
		size_t len;
		char *doc = slurp(argv[a], &len);
		const char *name = strrchr(argv[a], '/') ? strrchr(argv[a], '/') + 1 : argv[a];
		for (int read = 0; read < 2; read++) {
			struct sums zs;
			double z = measure(zh_once, doc, len, read, &zs);
#ifdef ZH_BENCH_JANSSON
			struct sums js;
			double j = measure(jn_once, doc, len, read, &js);
			if (read)
				check_same(name, &zs, &js);
			printf("| %s | %zu | %s | %.0f | %.0f | %.1fx |\n", name, len,
			       read ? "parse+read" : "parse", z, j, z / j);
#else
			printf("| %s | %zu | %s | %.0f |\n", name, len, read ? "parse+read" : "parse",
			       z);
#endif
		}
		free(doc);
	}
	return 0;
}
