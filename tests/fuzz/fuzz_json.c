/* fuzz_json.c — libFuzzer target for the JSON writer, zh_json_* (json.c, included here;
 * dtoa.c linked). No server: the calls json.c makes into the core (the extension interface:
 * zh_resp_window and zh_resp_window_commit, the pending-writer registration and its
 * storage) are played here by a sink that hands out windows of the fuzzer's
 * choosing (exactly the minimum asked for, or a little more: every refill boundary) as
 * separate heap blocks, freed at the next request, so writing past a window or into one
 * already given back is an ASan report. It can also refuse a window (a failed write).
 *
 * Input: byte 0: bit 0 ZH_JSON_ESCAPE_HTML, bit 1 ZH_JSON_STRICT_UTF8, bits 2-7: refuse the
 * n-th window (0: never); byte 1: 0 for 16 KiB windows, else the seed of tiny ones; then a
 * program, one op per byte (mod 16): 0 obj, 1 arr, 2 end, 3 key (len byte, bytes), 4 str
 * (len byte, bytes), 5 i64, 6 u64, 7 double (8 bytes each, big-endian), 8 bool (1 byte),
 * 9 null, 10 raw (a pre-encoded value from a table), others: no-ops. Calls in the wrong place
 * are made as they come: they are how misuse is tested.
 *
 * A model here predicts, call by call, the first error (-EINVAL misuse, -E2BIG deeper than
 * 64, -EDOM NaN/Inf, -EILSEQ invalid UTF-8 under STRICT) and the values written. Checked:
 *  - the writer reports exactly the predicted error, or -ENOBUFS if a window was refused,
 *    and after the first error it asks for no window and commits nothing;
 *  - without error (the harness closes what the program left open), the output parses with
 *    a strict RFC 8259 parser written here (no whitespace needed, no control byte, valid
 *    UTF-8, valid escapes, JSON number grammar) to exactly the predicted values: same
 *    structure and keys; integers as their decimal text; doubles read back by strtod
 *    bit-identical (-0 included); strings equal to the input when it is valid UTF-8, else
 *    with each maximal ill-formed subpart replaced by U+FFFD (Unicode's recommendation);
 *  - ESCAPE_HTML: no '<', '>', '&', U+2028 or U+2029 in the output bytes.
 */
#include "../../src/json.c"

#include "fuzz_common.h"

#include <math.h>

/* ---- the sink: response.c's side ------------------------------------------------------------- */

static struct {
	fz_split_t sp;
	bool tiny;
	int fail_at, windows;
	bool failed;
	char *win;
	size_t win_cap;
	char *out;
	size_t len, cap;
} sink;

int zh_resp_window(zh_response_t *resp, size_t min, char **p, char **end)
{
	(void)resp;
	CHECK(!sink.failed, "a window asked for after a failed one");
	free(sink.win); /* everything in it was committed by the writer's sync: gone now */
	sink.win = NULL;
	if (++sink.windows == sink.fail_at) {
		sink.failed = true;
		return -ENOBUFS;
	}
	sink.win_cap = min + (sink.tiny ? fz_next_piece(&sink.sp) % 24 : 16384);
	sink.win = malloc(sink.win_cap);
	*p = sink.win;
	*end = sink.win + sink.win_cap;
	return 0;
}

void zh_resp_window_commit(zh_response_t *resp, char *from, char *to)
{
	size_t n = (size_t)(to - from);
	(void)resp;
	CHECK(!sink.failed, "bytes committed after a failed window");
	CHECK(from >= sink.win && to >= from && to <= sink.win + sink.win_cap,
	      "commit outside the window");
	if (sink.len + n > sink.cap) {
		sink.cap = (sink.len + n) * 2;
		sink.out = realloc(sink.out, sink.cap);
	}
	memcpy(sink.out + sink.len, from, n);
	sink.len += n;
}

/* The response's pending-writer slot and the storage it lends (response.c's side). */
static struct {
	const zh_writer_ops_t *ops;
	_Alignas(16) char area[ZH_WRITER_STATE_SIZE];
} wslot;

void *zh_resp_writer_begin(zh_response_t *resp, const zh_writer_ops_t *ops)
{
	(void)resp;
	if (wslot.ops)
		return NULL;
	wslot.ops = ops;
	return wslot.area;
}

void *zh_resp_writer(zh_response_t *resp, const zh_writer_ops_t *ops)
{
	(void)resp;
	return wslot.ops == ops ? wslot.area : NULL;
}

int zh__resp_content_type(zh_response_t *resp, const char *type)
{
	(void)resp, (void)type;
	return 0;
}

int zh_resp_committed(const zh_response_t *resp)
{
	(void)resp;
	return 0;
}
int zh_resp_header_get(const zh_response_t *resp, const char *name, zh_slice_t *value)
{
	(void)resp, (void)name, (void)value;
	return 0;
}
int zh_resp_header_set(zh_response_t *resp, const char *name, const char *value)
{
	(void)resp, (void)name, (void)value;
	return 0;
}

/* ---- events: what the model expects and what the parser finds ------------------------------ */

enum { E_OBJ = 1, E_ARR, E_END_OBJ, E_END_ARR, E_KEY, E_STR, E_I64, E_U64, E_DBL, E_TRUE,
       E_FALSE, E_NULL, E_NUM };

typedef struct {
	int type;
	char *s; /* E_KEY, E_STR: decoded bytes; E_NUM: the number's text */
	size_t len;
	int64_t i;
	uint64_t u;
	double d;
} event_t;

typedef struct {
	event_t *ev;
	size_t n, cap;
} events_t;

static event_t *push(events_t *e, int type)
{
	if (e->n == e->cap) {
		e->cap = e->cap ? 2 * e->cap : 64;
		e->ev = realloc(e->ev, e->cap * sizeof *e->ev);
	}
	memset(&e->ev[e->n], 0, sizeof e->ev[0]);
	e->ev[e->n].type = type;
	return &e->ev[e->n++];
}

static void events_free(events_t *e)
{
	for (size_t i = 0; i < e->n; i++)
		free(e->ev[i].s);
	free(e->ev);
	memset(e, 0, sizeof *e);
}

/* ---- UTF-8, from Unicode table 3-7 ------------------------------------------------------------- */

/* Length of the well-formed sequence at s, or 0 with *bad set to the length of its maximal
 * ill-formed subpart (at least 1). */
static size_t utf8_ok(const unsigned char *s, size_t n, size_t *bad)
{
	static const struct {
		unsigned char lo0, hi0, lo1, hi1;
		int len;
	} rows[] = {
		{0x00, 0x7f, 0, 0, 1},	     {0xc2, 0xdf, 0x80, 0xbf, 2}, {0xe0, 0xe0, 0xa0, 0xbf, 3},
		{0xe1, 0xec, 0x80, 0xbf, 3}, {0xed, 0xed, 0x80, 0x9f, 3}, {0xee, 0xef, 0x80, 0xbf, 3},
		{0xf0, 0xf0, 0x90, 0xbf, 4}, {0xf1, 0xf3, 0x80, 0xbf, 4}, {0xf4, 0xf4, 0x80, 0x8f, 4},
	};
	for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
		size_t k;
		if (s[0] < rows[r].lo0 || s[0] > rows[r].hi0)
			continue;
		if (rows[r].len == 1)
			return 1;
		for (k = 1; k < (size_t)rows[r].len; k++) {
			unsigned char lo = k == 1 ? rows[r].lo1 : 0x80, hi = k == 1 ? rows[r].hi1 : 0xbf;
			if (k >= n || s[k] < lo || s[k] > hi) {
				*bad = k;
				return 0;
			}
		}
		return (size_t)rows[r].len;
	}
	*bad = 1;
	return 0;
}

/* What the writer should make of s: its bytes, each ill-formed subpart as U+FFFD. Returns
 * false if s is not valid UTF-8 (under STRICT that is the error). */
static bool sanitize(const unsigned char *s, size_t n, char **out, size_t *olen)
{
	char *o = malloc(3 * n + 1);
	size_t k = 0, i = 0;
	bool valid = true;
	while (i < n) {
		size_t bad, l = utf8_ok(s + i, n - i, &bad);
		if (l) {
			memcpy(o + k, s + i, l);
			k += l;
			i += l;
		} else {
			memcpy(o + k, "\xef\xbf\xbd", 3);
			k += 3;
			i += bad;
			valid = false;
		}
	}
	*out = o;
	*olen = k;
	return valid;
}

/* ---- a strict RFC 8259 parser ----------------------------------------------------------------- */

typedef struct {
	const char *p, *end;
	int depth;
} parser_t;

static bool parse_value(parser_t *ps, events_t *ev);

static void ws(parser_t *ps)
{
	while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
		ps->p++;
}

static int hex4(const char *p)
{
	int v = 0;
	for (int i = 0; i < 4; i++) {
		int h = zh__hexval((unsigned char)p[i]);
		if (h < 0)
			return -1;
		v = v << 4 | h;
	}
	return v;
}

static size_t put_utf8(char *o, uint32_t cp)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xc0 | cp >> 6);
		o[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xe0 | cp >> 12);
		o[1] = (char)(0x80 | (cp >> 6 & 0x3f));
		o[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (char)(0xf0 | cp >> 18);
	o[1] = (char)(0x80 | (cp >> 12 & 0x3f));
	o[2] = (char)(0x80 | (cp >> 6 & 0x3f));
	o[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

static bool parse_string(parser_t *ps, events_t *ev, int type)
{
	char *o;
	size_t k = 0;
	event_t *e;
	if (ps->p == ps->end || *ps->p != '"')
		return false;
	ps->p++;
	o = malloc((size_t)(ps->end - ps->p) + 1);
	for (;;) {
		unsigned char c;
		if (ps->p == ps->end)
			goto fail;
		c = (unsigned char)*ps->p;
		if (c == '"') {
			ps->p++;
			break;
		}
		if (c < 0x20)
			goto fail; /* unescaped control */
		if (c == '\\') {
			char x;
			if (ps->end - ps->p < 2)
				goto fail;
			x = ps->p[1];
			ps->p += 2;
			switch (x) {
			case '"': o[k++] = '"'; break;
			case '\\': o[k++] = '\\'; break;
			case '/': o[k++] = '/'; break;
			case 'b': o[k++] = '\b'; break;
			case 'f': o[k++] = '\f'; break;
			case 'n': o[k++] = '\n'; break;
			case 'r': o[k++] = '\r'; break;
			case 't': o[k++] = '\t'; break;
			case 'u': {
				int v;
				uint32_t cp;
				if (ps->end - ps->p < 4 || (v = hex4(ps->p)) < 0)
					goto fail;
				ps->p += 4;
				cp = (uint32_t)v;
				if (cp >= 0xdc00 && cp <= 0xdfff)
					goto fail; /* a lone low surrogate */
				if (cp >= 0xd800 && cp <= 0xdbff) {
					int lo;
					if (ps->end - ps->p < 6 || ps->p[0] != '\\' || ps->p[1] != 'u' ||
					    (lo = hex4(ps->p + 2)) < 0xdc00 || lo > 0xdfff)
						goto fail;
					ps->p += 6;
					cp = 0x10000 + ((cp - 0xd800) << 10) + (uint32_t)(lo - 0xdc00);
				}
				k += put_utf8(o + k, cp);
				break;
			}
			default:
				goto fail;
			}
			continue;
		}
		{
			size_t bad, l = utf8_ok((const unsigned char *)ps->p, (size_t)(ps->end - ps->p),
						&bad);
			if (l == 0)
				goto fail; /* the writer must never emit invalid UTF-8 */
			memcpy(o + k, ps->p, l);
			k += l;
			ps->p += l;
		}
	}
	e = push(ev, type);
	e->s = o;
	e->len = k;
	return true;
fail:
	free(o);
	return false;
}

static bool digit(const char *p, const char *end)
{
	return p < end && *p >= '0' && *p <= '9';
}

static bool parse_number(parser_t *ps, events_t *ev)
{
	const char *s = ps->p, *p = ps->p, *end = ps->end;
	event_t *e;
	if (p < end && *p == '-')
		p++;
	if (!digit(p, end))
		return false;
	if (*p == '0')
		p++;
	else
		while (digit(p, end))
			p++;
	if (p < end && *p == '.') {
		if (!digit(++p, end))
			return false;
		while (digit(p, end))
			p++;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		if (!digit(p, end))
			return false;
		while (digit(p, end))
			p++;
	}
	e = push(ev, E_NUM);
	e->len = (size_t)(p - s);
	e->s = fz_dup(s, e->len + 1);
	e->s[e->len] = '\0';
	ps->p = p;
	return true;
}

static bool literal_is(parser_t *ps, const char *lit)
{
	size_t n = strlen(lit);
	if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, lit, n) != 0)
		return false;
	ps->p += n;
	return true;
}

static bool parse_value(parser_t *ps, events_t *ev)
{
	ws(ps);
	if (ps->p == ps->end)
		return false;
	switch (*ps->p) {
	case '{':
	case '[': {
		bool obj = *ps->p == '{';
		if (++ps->depth > 200)
			return false;
		ps->p++;
		push(ev, obj ? E_OBJ : E_ARR);
		ws(ps);
		if (ps->p < ps->end && *ps->p == (obj ? '}' : ']')) {
			ps->p++;
		} else {
			for (;;) {
				if (obj) {
					ws(ps);
					if (!parse_string(ps, ev, E_KEY))
						return false;
					ws(ps);
					if (ps->p == ps->end || *ps->p++ != ':')
						return false;
				}
				if (!parse_value(ps, ev))
					return false;
				ws(ps);
				if (ps->p == ps->end)
					return false;
				if (*ps->p == ',') {
					ps->p++;
					continue;
				}
				if (*ps->p++ != (obj ? '}' : ']'))
					return false;
				break;
			}
		}
		ps->depth--;
		push(ev, obj ? E_END_OBJ : E_END_ARR);
		return true;
	}
	case '"':
		return parse_string(ps, ev, E_STR);
	case 't':
		return literal_is(ps, "true") && push(ev, E_TRUE);
	case 'f':
		return literal_is(ps, "false") && push(ev, E_FALSE);
	case 'n':
		return literal_is(ps, "null") && push(ev, E_NULL);
	default:
		return parse_number(ps, ev);
	}
}

static bool parse_document(const char *p, size_t len, events_t *ev)
{
	parser_t ps = {p, p + len, 0};
	if (!parse_value(&ps, ev))
		return false;
	ws(&ps);
	return ps.p == ps.end;
}

/* ---- the model --------------------------------------------------------------------------------- */

typedef struct {
	int depth, err;
	uint64_t nest;
	bool want_key, done;
	unsigned flags;
} model_t;

static bool m_in_object(const model_t *m)
{
	return m->depth && (m->nest >> (m->depth - 1) & 1);
}

static void m_err(model_t *m, int err)
{
	if (!m->err)
		m->err = err;
}

/* value_begin's rule: may a value come now? */
static bool m_value_ok(model_t *m)
{
	if (m->err)
		return false;
	if (m->want_key || m->done) {
		m_err(m, -EINVAL);
		return false;
	}
	return true;
}

static void m_value_end(model_t *m)
{
	if (m->depth == 0) {
		m->done = true;
		m->want_key = false; /* nothing is due after the top-level value */
	} else
		m->want_key = m_in_object(m);
}

static const char *const raws[6] = {"123", "\"r\\u00e9\"", "[]", "{\"a\":[true,false,null]}",
				    "-1.5e3", "{}"};

/* The response is opaque to json.c (it only passes the pointer back): any address will do. */
static char resp_bytes[16];
#define RESP ((zh_response_t *)(void *)resp_bytes)

/* One op: the writer call, and the model's prediction of it. */
static void op(zh_json_t *j, model_t *m, events_t *want, int code, fz_in_t *in)
{
	switch (code) {
	case 0:
	case 1: {
		bool obj = code == 0;
		if (obj)
			zh_json_obj(j);
		else
			zh_json_arr(j);
		if (m->err)
			break;
		if (m->depth == 64) {
			m_err(m, -E2BIG);
			break;
		}
		if (!m_value_ok(m))
			break;
		push(want, obj ? E_OBJ : E_ARR);
		m->depth++;
		if (obj)
			m->nest |= 1ull << (m->depth - 1);
		else
			m->nest &= ~(1ull << (m->depth - 1));
		m->want_key = obj;
		break;
	}
	case 2: {
		bool obj = m_in_object(m);
		zh_json_end(j);
		if (m->err)
			break;
		if (m->depth == 0 || (obj && !m->want_key)) {
			m_err(m, -EINVAL);
			break;
		}
		push(want, obj ? E_END_OBJ : E_END_ARR);
		m->depth--;
		m_value_end(m);
		break;
	}
	case 3:
	case 4: {
		size_t n = fz_u8(in), olen;
		char *s, *clean;
		bool valid;
		if (n > in->n)
			n = in->n;
		s = fz_dup(in->p, n); /* exact size: an over-read is caught */
		in->p += n, in->n -= n;
		if (code == 3)
			zh_json_key(j, s, n);
		else
			zh_json_str(j, s, n);
		valid = sanitize((const unsigned char *)s, n, &clean, &olen);
		free(s);
		if (m->err || (code == 3 && !m->want_key && (m_err(m, -EINVAL), true)) ||
		    (code == 4 && !m_value_ok(m)) ||
		    (!valid && (m->flags & ZH_JSON_STRICT_UTF8) && (m_err(m, -EILSEQ), true))) {
			free(clean);
			break;
		}
		{
			event_t *e = push(want, code == 3 ? E_KEY : E_STR);
			e->s = clean;
			e->len = olen;
		}
		if (code == 3)
			m->want_key = false;
		else
			m_value_end(m);
		break;
	}
	case 5:
	case 6: {
		uint64_t v = fz_u64(in);
		if (code == 5)
			zh_json_i64(j, (int64_t)v);
		else
			zh_json_u64(j, v);
		if (!m_value_ok(m))
			break;
		if (code == 5)
			push(want, E_I64)->i = (int64_t)v;
		else
			push(want, E_U64)->u = v;
		m_value_end(m);
		break;
	}
	case 7: {
		uint64_t bits = fz_u64(in);
		double d;
		memcpy(&d, &bits, sizeof d);
		zh_json_double(j, d);
		if (m->err)
			break;
		if (!isfinite(d)) {
			m_err(m, -EDOM);
			break;
		}
		if (!m_value_ok(m))
			break;
		push(want, E_DBL)->d = d;
		m_value_end(m);
		break;
	}
	case 8:
	case 9: {
		int b = code == 8 ? fz_u8(in) & 1 : 0;
		if (code == 8)
			zh_json_bool(j, b);
		else
			zh_json_null(j);
		if (!m_value_ok(m))
			break;
		push(want, code == 9 ? E_NULL : b ? E_TRUE : E_FALSE);
		m_value_end(m);
		break;
	}
	case 10: {
		const char *r = raws[fz_u8(in) % 6];
		zh_json_raw(j, r, strlen(r));
		if (!m_value_ok(m))
			break;
		CHECK(parse_document(r, strlen(r), want), "raw table entry");
		m_value_end(m);
		break;
	}
	}
}

static void compare(const events_t *want, const events_t *got)
{
	CHECK(want->n == got->n, "%zu values expected, %zu parsed", want->n, got->n);
	for (size_t i = 0; i < want->n; i++) {
		const event_t *w = &want->ev[i], *g = &got->ev[i];
		switch (w->type) {
		case E_I64:
		case E_U64: {
			char txt[32];
			if (w->type == E_I64)
				snprintf(txt, sizeof txt, "%lld", (long long)w->i);
			else
				snprintf(txt, sizeof txt, "%llu", (unsigned long long)w->u);
			CHECK(g->type == E_NUM && strcmp(g->s, txt) == 0, "value %zu: %s written as %s",
			      i, txt, g->s ? g->s : "(not a number)");
			break;
		}
		case E_DBL: {
			double d;
			CHECK(g->type == E_NUM, "value %zu: double not written as a number", i);
			CHECK(g->len <= ZH__DTOA_MAX, "value %zu: %s is longer than %d", i, g->s,
			      ZH__DTOA_MAX);
			d = strtod(g->s, NULL);
			CHECK(memcmp(&d, &w->d, sizeof d) == 0, "value %zu: %.17g written as %s", i,
			      w->d, g->s);
			break;
		}
		case E_NUM:
			CHECK(g->type == E_NUM && strcmp(g->s, w->s) == 0, "value %zu: raw number", i);
			break;
		default:
			CHECK(g->type == w->type, "value %zu: type %d, expected %d", i, g->type, w->type);
			if (w->type == E_KEY || w->type == E_STR)
				CHECK(g->len == w->len && memcmp(g->s, w->s, w->len) == 0,
				      "value %zu: string differs (%zu vs %zu bytes)", i, g->len, w->len);
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fz_in_t in = {data, size};
	uint8_t b0 = fz_u8(&in), b1 = fz_u8(&in);
	model_t m = {.flags = b0 & 3};
	events_t want = {0}, got = {0};
	zh_json_t *j;

	free(sink.out);
	memset(&sink, 0, sizeof sink);
	sink.fail_at = b0 >> 2;
	sink.tiny = b1 != 0;
	sink.sp.s = b1;
	memset(&wslot, 0, sizeof wslot);

	j = zh_json_begin(RESP, m.flags);
	CHECK(zh_json_get(RESP) == j, "zh_json_get");
	for (int ops = 0; in.n && ops < 4096; ops++)
		op(j, &m, &want, fz_u8(&in) % 16, &in);
	/* close what the program left open, so that a whole document can be read */
	if (!m.err && m_in_object(&m) && !m.want_key)
		op(j, &m, &want, 9, &in);
	while (!m.err && m.depth > 0)
		op(j, &m, &want, 2, &in);
	if (!m.err && !m.done)
		op(j, &m, &want, 9, &in);
	if (wslot.ops) /* what the writer still holds: response.c queues it at the end */
		wslot.ops->sync(RESP, wslot.area);

	if (sink.failed) {
		CHECK(zh_json_error(j) == -ENOBUFS, "window refused, error %d", zh_json_error(j));
	} else {
		CHECK(zh_json_error(j) == m.err, "error %d, expected %d", zh_json_error(j), m.err);
	}
	if (!sink.failed && !m.err) {
		CHECK(parse_document(sink.out, sink.len, &got), "not JSON: %.*s",
		      (int)(sink.len < 400 ? sink.len : 400), sink.out);
		compare(&want, &got);
	}
	if (m.flags & ZH_JSON_ESCAPE_HTML)
		for (size_t i = 0; i < sink.len; i++) {
			unsigned char c = (unsigned char)sink.out[i];
			CHECK(c != '<' && c != '>' && c != '&', "'%c' under ESCAPE_HTML", c);
			CHECK(!(c == 0xe2 && i + 2 < sink.len && sink.out[i + 1] == '\x80' &&
				(sink.out[i + 2] == '\xa8' || sink.out[i + 2] == '\xa9')),
			      "U+2028/9 under ESCAPE_HTML");
		}
	free(sink.win);
	sink.win = NULL;
	events_free(&want);
	events_free(&got);
	return 0;
}
