/* accesslog.c — the access log: one line per response (Common, Combined or JSON lines),
 * written by a done hook, buffered per worker, written in whole buffers.
 *
 * Write path. The done hook formats its line straight into its worker's buffer (64 KiB,
 * allocated by zh_access_log_new, indexed by worker id: one writer, no lock, no
 * allocation). The buffer is written with one write() when the next line does not fit,
 * when its oldest line is FLUSH_AFTER_MS old (a periodic hook on the worker loop, see
 * zh__worker_tick_add), and when the worker exits. A busy worker thus makes one syscall
 * per few hundred lines; a quiet one shows a line within a second. Only whole lines are
 * ever written, so the workers' writes (O_APPEND) never split each other's lines.
 *
 * Rotation. zh_access_log_reopen() opens the path again and dup3()s the new file onto the
 * descriptor the workers write to: the swap is one atomic step in the descriptor table; a
 * write() already in the kernel finishes in the old file, the next one lands in the new.
 *
 * Escaping. The target, Referer and User-Agent are the client's bytes. CLF/Combined write
 * '"', '\', control bytes and bytes >= 0x7f as \xHH (as nginx does); JSON escapes per RFC
 * 8259, replaces ill-formed UTF-8 with U+FFFD and also escapes DEL, U+0085, U+2028 and
 * U+2029 (line breaks to some line splitters). No client byte can end a line or a field.
 * Each field has an output cap, so a line always fits an empty buffer.
 */
#include "ext.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum {
	BUF_SIZE = 64 * 1024,	/* per worker */
	FLUSH_AFTER_MS = 1000,	/* a buffered line waits at most this long */
	CAP_TARGET = 16384,	/* output bytes of one escaped field, then "..." */
	CAP_HEADER = 4096,
	CAP_METHOD = 64,
	CAP_USER = 1024,	/* names are up to 255 bytes: 4 output bytes each at worst */
	/* the longest line: the capped fields (+ "...") and fixed text well under 1 KiB */
	LINE_MAX_BYTES = CAP_TARGET + 2 * CAP_HEADER + CAP_METHOD + CAP_USER + 4 * 4 + 1024,
};
_Static_assert(LINE_MAX_BYTES <= BUF_SIZE, "a line must fit an empty buffer");

/* One worker's share. Written only by that worker's thread (the done hook and its tick);
 * aligned so that neighbours never share a cache line. */
struct alog_worker {
	_Alignas(64) char *buf; /* BUF_SIZE bytes: lines not yet written */
	uint32_t len;
	bool ticking;		/* the flush tick is registered on this worker */
	uint64_t due_ms;	/* write by then (oldest buffered line + 1 s); 0: buffer empty */
	time_t sec;		/* the second the dates below show */
	char clf_date[28];	/* "[10/Oct/2000:13:55:36 +0000]" */
	char iso_date[20];	/* "2000-10-10T13:55:36Z" */
};

struct zh_access_log {
	const zh_server_t *srv;
	int fd;		    /* the workers write here; reopen dup3()s the new file onto it */
	int format;
	bool is_stdout;	    /* "-": never reopened, never closed */
	bool serialize;	    /* not a regular file (a pipe, a tty): whole-buffer writes of two
			       workers could interleave there, so they take write_lock */
	pthread_mutex_t write_lock, reopen_lock;
	char *path;	    /* owned copy */
	unsigned nworkers;
	struct alog_worker *workers; /* nworkers entries, each with its own buffer */
};

/* ---- bounded output: a line is built in place; `full` means "flush, then build again" --- */

typedef struct {
	char *p, *end;
	bool full;
} out_t;

static size_t room(const out_t *o)
{
	return (size_t)(o->end - o->p);
}

static void put(out_t *o, const char *s, size_t n)
{
	if (room(o) < n) {
		o->full = true;
		return;
	}
	memcpy(o->p, s, n);
	o->p += n;
}

#define PUT_LIT(o, lit) put((o), (lit), sizeof(lit) - 1)

static void put_u64(out_t *o, uint64_t v)
{
	char d[20];
	size_t n = 0;
	do
		d[sizeof d - ++n] = (char)('0' + v % 10);
	while ((v /= 10) != 0);
	put(o, d + sizeof d - n, n);
}

static const char hexdig[] = "0123456789ABCDEF";

static bool clf_plain(unsigned char c)
{
	return c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
}

/* Copies run plain bytes from *p, as far as cap allows; false when cap cut them short. */
static bool put_run(out_t *o, const unsigned char **p, size_t run, size_t *used, size_t cap)
{
	bool cut = *used + run > cap;
	if (cut)
		run = cap - *used;
	put(o, (const char *)*p, run);
	*used += run;
	*p += run;
	return !cut;
}

/* CLF/Combined (nginx's rule): printable ASCII except '"' and '\' as is, the rest \xHH.
 * An empty value is "-". At most cap output bytes, then "...". */
static void put_clf_str(out_t *o, zh_slice_t s, size_t cap)
{
	const unsigned char *p = (const unsigned char *)s.ptr, *end;
	size_t used = 0;
	if (s.len == 0) { /* also an absent header: ptr may be NULL */
		put(o, "-", 1);
		return;
	}
	end = p + s.len;
	while (p < end && !o->full) {
		size_t run = 0;
		char esc[4] = {'\\', 'x', hexdig[*p >> 4], hexdig[*p & 15]};
		while (p + run < end && clf_plain(p[run])) /* plain bytes go in runs */
			run++;
		if (run) {
			if (!put_run(o, &p, run, &used, cap))
				break;
			continue;
		}
		if (used + sizeof esc > cap)
			break;
		put(o, esc, sizeof esc);
		used += sizeof esc;
		p++;
	}
	if (p < end)
		PUT_LIT(o, "...");
}

/* Length of the well-formed UTF-8 sequence at s[0..n) (2..4 bytes), or 0 with *skip set to
 * the length of its maximal ill-formed subpart (Unicode table 3-7), which becomes one
 * U+FFFD. */
static size_t utf8_seq(const unsigned char *s, size_t n, size_t *skip)
{
	unsigned char c = s[0], lo = 0x80, hi = 0xBF;
	size_t need;
	if (c >= 0xC2 && c <= 0xDF) {
		need = 2;
	} else if (c >= 0xE0 && c <= 0xEF) {
		need = 3;
		lo = c == 0xE0 ? 0xA0 : 0x80;
		hi = c == 0xED ? 0x9F : 0xBF;
	} else if (c >= 0xF0 && c <= 0xF4) {
		need = 4;
		lo = c == 0xF0 ? 0x90 : 0x80;
		hi = c == 0xF4 ? 0x8F : 0xBF;
	} else {
		*skip = 1;
		return 0;
	}
	for (size_t k = 1; k < need; k++) {
		if (k >= n || s[k] < lo || s[k] > hi) {
			*skip = k;
			return 0;
		}
		lo = 0x80;
		hi = 0xBF;
	}
	return need;
}

/* The JSON text of one character at s (an ASCII byte or a UTF-8 sequence; left > 0 bytes
 * remain): returns its escape (in esc, or a literal), or NULL if it goes as is. *in is how
 * many input bytes it covers, *n its output length. */
static const char *json_unit(const unsigned char *s, size_t left, char esc[6], size_t *in,
			     size_t *n)
{
	unsigned char c = s[0];
	size_t skip = 1, len;
	*in = *n = 1;
	if (c < 0x80) {
		switch (c) {
		case '"': *n = 2; return "\\\"";
		case '\\': *n = 2; return "\\\\";
		case '\n': *n = 2; return "\\n";
		case '\r': *n = 2; return "\\r";
		case '\t': *n = 2; return "\\t";
		}
		if (c >= 0x20 && c < 0x7f)
			return NULL;
		memcpy(esc, "\\u00", 4); /* other controls and DEL */
		esc[4] = hexdig[c >> 4];
		esc[5] = hexdig[c & 15];
		*n = 6;
		return esc;
	}
	len = utf8_seq(s, left, &skip);
	*in = len ? len : skip;
	*n = 6;
	if (len == 0)
		return "\\ufffd";
	if (len == 2 && s[1] == 0x85)
		return "\\u0085"; /* NEL */
	if (len == 3 && c == 0xE2 && s[1] == 0x80 && s[2] == 0xA8)
		return "\\u2028";
	if (len == 3 && c == 0xE2 && s[1] == 0x80 && s[2] == 0xA9)
		return "\\u2029";
	*n = len;
	return NULL;
}

static bool json_plain(unsigned char c)
{
	return c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
}

/* A JSON string, quoted; null if empty and null_if_empty. At most cap bytes, then "...". */
static void put_json_str(out_t *o, zh_slice_t s, size_t cap, bool null_if_empty)
{
	const unsigned char *p = (const unsigned char *)s.ptr, *end;
	size_t used = 0;
	if (s.len == 0) { /* an absent field (ptr NULL) or an empty one */
		if (null_if_empty)
			PUT_LIT(o, "null");
		else
			PUT_LIT(o, "\"\"");
		return;
	}
	end = p + s.len;
	put(o, "\"", 1);
	while (p < end && !o->full) {
		char esc[6];
		size_t in, n, run = 0;
		const char *text;
		while (p + run < end && json_plain(p[run])) /* plain ASCII goes in runs */
			run++;
		if (run) {
			if (!put_run(o, &p, run, &used, cap))
				break;
			continue;
		}
		text = json_unit(p, (size_t)(end - p), esc, &in, &n);
		if (used + n > cap)
			break;
		put(o, text ? text : (const char *)p, n);
		used += n;
		p += in;
	}
	if (p < end)
		PUT_LIT(o, "...");
	put(o, "\"", 1);
}

/* ---- the fields ----------------------------------------------------------------------------- */

/* The client address (zh_req_client_addr: the forwarded client behind a trusted proxy): IPv4
 * by hand (the common case), IPv6 by inet_ntop (no allocation). */
static void put_client(out_t *o, const zh_request_t *req)
{
	uint8_t a[16];
	char text[INET6_ADDRSTRLEN];
	int family = zh_req_client_addr(req, a);
	if (family == AF_INET) {
		for (int i = 0; i < 4; i++) {
			if (i)
				put(o, ".", 1);
			put_u64(o, a[i]);
		}
	} else if (inet_ntop(family, a, text, sizeof text)) {
		put(o, text, strlen(text));
	} else {
		put(o, "-", 1);
	}
}

/* What a line says about one response, gathered once for every format. has_req is false
 * for answers to requests that never parsed (400, 408...): their slices are not valid. */
typedef struct {
	bool has_req;
	zh_slice_t method, target, referer, agent;
	zh_slice_t user; /* zh_req_auth_user: empty when nobody authenticated the request */
	const char *proto;
	const char *tls, *cipher; /* the connection's TLS version and suite; NULL: plain */
	int status;
	uint64_t bytes;
	int64_t duration_us; /* -1: not measured */
} fields_t;

static void gather(fields_t *f, zh_request_t *req, zh_response_t *resp)
{
	uint64_t started_us = zh__ext_started_us(req);
	bool parsed = zh_req_parsed(req);
	memset(f, 0, sizeof *f);
	/* in_request is cleared before a library answer to a head that never completed (a
	 * parse error, a header timeout): its spans may refer to an older buffer position */
	f->has_req = parsed && zh_req_method(req).len;
	f->status = zh_resp_status(resp);
	/* a HEAD's body is counted, never sent (the response is head-only for a parsed HEAD) */
	f->bytes = parsed && zh_req_method_bit(req) == ZH_HEAD ? 0 : zh_resp_body_len(resp);
	f->duration_us = -1;
	f->tls = zh_req_tls_version(req);
	f->cipher = zh_req_tls_cipher(req);
	if (!f->has_req)
		return;
	f->method = zh_req_method(req);
	f->target = zh_req_target(req);
	f->proto = zh_req_version(req) == 11 ? "HTTP/1.1" : "HTTP/1.0";
	(void)zh_req_header(req, "Referer", &f->referer);
	(void)zh_req_header(req, "User-Agent", &f->agent);
	if (!zh_req_auth_user(req, &f->user))
		f->user = (zh_slice_t){NULL, 0};
	if (started_us) /* 0 when the server keeps no latency metrics */
		f->duration_us = (int64_t)(zh__now_us() - started_us);
}

static void put_status(out_t *o, int status)
{
	put_u64(o, status > 0 ? (uint64_t)status : 0);
}

/* 127.0.0.1 - - [10/Oct/2000:13:55:36 +0000] "GET /a HTTP/1.1" 200 13 ["ref" "agent"] */
static void format_clf(out_t *o, const struct alog_worker *lw, zh_request_t *req,
		       const fields_t *f, bool combined)
{
	put_client(o, req);
	PUT_LIT(o, " - "); /* ident (RFC 1413) is never known; then the user, "-" if none */
	put_clf_str(o, f->user, CAP_USER);
	put(o, " ", 1);
	put(o, lw->clf_date, sizeof lw->clf_date);
	PUT_LIT(o, " \"");
	if (f->has_req) {
		put_clf_str(o, f->method, CAP_METHOD);
		put(o, " ", 1);
		put_clf_str(o, f->target, CAP_TARGET);
		put(o, " ", 1);
		put(o, f->proto, 8);
	} else {
		put(o, "-", 1);
	}
	PUT_LIT(o, "\" ");
	put_status(o, f->status);
	put(o, " ", 1);
	put_u64(o, f->bytes);
	if (combined) {
		PUT_LIT(o, " \"");
		put_clf_str(o, f->referer, CAP_HEADER);
		PUT_LIT(o, "\" \"");
		put_clf_str(o, f->agent, CAP_HEADER);
		put(o, "\"", 1);
	}
	put(o, "\n", 1);
}

static void format_json(out_t *o, const struct alog_worker *lw, zh_request_t *req,
			const fields_t *f)
{
	PUT_LIT(o, "{\"time\":\"");
	put(o, lw->iso_date, sizeof lw->iso_date);
	PUT_LIT(o, "\",\"client\":\"");
	put_client(o, req);
	PUT_LIT(o, "\",\"user\":");
	put_json_str(o, f->user, CAP_USER, f->user.len == 0);
	PUT_LIT(o, ",\"method\":");
	put_json_str(o, f->method, CAP_METHOD, true);
	PUT_LIT(o, ",\"target\":");
	put_json_str(o, f->target, CAP_TARGET, true);
	PUT_LIT(o, ",\"protocol\":");
	if (f->has_req) {
		put(o, "\"", 1);
		put(o, f->proto, 8);
		put(o, "\"", 1);
	} else {
		PUT_LIT(o, "null");
	}
	PUT_LIT(o, ",\"status\":");
	put_status(o, f->status);
	PUT_LIT(o, ",\"bytes\":");
	put_u64(o, f->bytes);
	PUT_LIT(o, ",\"duration_us\":");
	if (f->duration_us >= 0)
		put_u64(o, (uint64_t)f->duration_us);
	else
		PUT_LIT(o, "null");
	PUT_LIT(o, ",\"referer\":");
	put_json_str(o, f->referer, CAP_HEADER, !f->has_req || f->referer.ptr == NULL);
	PUT_LIT(o, ",\"user_agent\":");
	put_json_str(o, f->agent, CAP_HEADER, !f->has_req || f->agent.ptr == NULL);
	if (f->tls && f->cipher) { /* TLS connections only: plain lines keep their fields */
		PUT_LIT(o, ",\"tls\":");
		put_json_str(o, (zh_slice_t){f->tls, strlen(f->tls)}, CAP_HEADER, false);
		PUT_LIT(o, ",\"cipher\":");
		put_json_str(o, (zh_slice_t){f->cipher, strlen(f->cipher)}, CAP_HEADER, false);
	}
	PUT_LIT(o, "}\n");
}

/* ---- dates: formatted once a second per worker, from the loop's clock ----------------------- */

static void put2(char *p, unsigned v)
{
	p[0] = (char)('0' + v / 10 % 10);
	p[1] = (char)('0' + v % 10);
}

/* Days since 1970-01-01 to a civil date (H. Hinnant's algorithm): no gmtime_r, whose
 * time-zone lock every worker would take. */
static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
	int64_t era;
	unsigned doe, yoe, doy, mp;
	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = (unsigned)(z - era * 146097);
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static void refresh_dates(struct alog_worker *lw, time_t now)
{
	static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
	int64_t t = (int64_t)now, days = t / 86400, secs = t % 86400, year;
	unsigned mon, day, hh, mm, ss, y;
	char *c = lw->clf_date, *j = lw->iso_date;
	if (now == lw->sec)
		return;
	lw->sec = now;
	if (secs < 0) {
		secs += 86400;
		days--;
	}
	civil_from_days(days, &year, &mon, &day);
	y = year < 0 ? 0 : year > 9999 ? 9999 : (unsigned)year;
	hh = (unsigned)secs / 3600;
	mm = (unsigned)secs / 60 % 60;
	ss = (unsigned)secs % 60;
	/* [10/Oct/2000:13:55:36 +0000] */
	c[0] = '[';
	put2(c + 1, day);
	c[3] = '/';
	memcpy(c + 4, months + 3 * (mon - 1), 3);
	c[7] = '/';
	put2(c + 8, y / 100);
	put2(c + 10, y % 100);
	c[12] = ':';
	put2(c + 13, hh);
	c[15] = ':';
	put2(c + 16, mm);
	c[18] = ':';
	put2(c + 19, ss);
	memcpy(c + 21, " +0000]", 7);
	/* 2000-10-10T13:55:36Z */
	put2(j, y / 100);
	put2(j + 2, y % 100);
	j[4] = '-';
	put2(j + 5, mon);
	j[7] = '-';
	put2(j + 8, day);
	j[10] = 'T';
	put2(j + 11, hh);
	j[13] = ':';
	put2(j + 14, mm);
	j[16] = ':';
	put2(j + 17, ss);
	j[19] = 'Z';
}

/* ---- writing ---------------------------------------------------------------------------------- */

/* One write() for the whole buffer (more only after a short write). A buffer that cannot be
 * written (disk full, a closed pipe) is dropped: the worker must not stall on its log. A
 * pipe or terminal whose reader stops would stall a blocking write, so there the buffer
 * goes in PIPE_BUF pieces, each only if poll says the pipe has room; the rest is dropped.
 * Returns the bytes dropped (zh_stats_t.access_log_bytes_dropped counts them). */
static size_t write_all(zh_access_log_t *log, const char *p, size_t left)
{
	if (log->serialize)
		pthread_mutex_lock(&log->write_lock);
	while (left) {
		size_t piece = log->serialize && left > PIPE_BUF ? PIPE_BUF : left;
		struct pollfd pfd = {.fd = log->fd, .events = POLLOUT};
		ssize_t n;
		if (log->serialize && poll(&pfd, 1, 0) != 1)
			break;
		n = write(log->fd, p, piece);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		p += n;
		left -= (size_t)n;
	}
	if (log->serialize)
		pthread_mutex_unlock(&log->write_lock);
	return left;
}

/* w: the worker whose stats count the bytes dropped; NULL once the workers are gone */
static void flush(zh_access_log_t *log, struct alog_worker *lw, zh__worker_t *w)
{
	size_t dropped = lw->len ? write_all(log, lw->buf, lw->len) : 0;
	if (dropped && w)
		ZH__STATS_ADD(zh__ext_stats(w), access_log_bytes_dropped, dropped);
	lw->len = 0;
	lw->due_ms = 0;
}

/* The worker's periodic hook: writes the buffer once its oldest line is due, or at exit. */
static uint64_t tick(zh__worker_t *w, bool final, void *arg)
{
	zh_access_log_t *log = arg;
	struct alog_worker *lw = &log->workers[zh__ext_worker_id(w)];
	if (lw->len && (final || zh__ext_now_ms(w) >= lw->due_ms))
		flush(log, lw, w);
	return lw->due_ms;
}

/* Builds the line at the end of the buffer; false if it does not fit (nothing kept). */
static bool format_line(zh_access_log_t *log, struct alog_worker *lw, zh_request_t *req,
			const fields_t *f)
{
	out_t o = {lw->buf + lw->len, lw->buf + BUF_SIZE, false};
	if (log->format == ZH_LOG_JSON)
		format_json(&o, lw, req, f);
	else
		format_clf(&o, lw, req, f, log->format == ZH_LOG_COMBINED);
	if (o.full)
		return false;
	lw->len = (uint32_t)(o.p - lw->buf);
	return true;
}

static void done(zh_request_t *req, zh_response_t *resp, void *arg)
{
	zh_access_log_t *log = arg;
	zh__worker_t *w = zh__ext_worker(req);
	unsigned id = zh__ext_worker_id(w);
	struct alog_worker *lw;
	fields_t f;
	if (zh__ext_worker_server(w) != log->srv || id >= log->nworkers)
		return; /* another server's worker: not ours to log */
	lw = &log->workers[id];
	if (!lw->ticking)
		lw->ticking = zh__worker_tick_add(w, tick, log) == 0;
	refresh_dates(lw, zh__ext_date_sec(w));
	gather(&f, req, resp);
	if (!format_line(log, lw, req, &f)) {
		flush(log, lw, w);
		(void)format_line(log, lw, req, &f); /* fits: LINE_MAX_BYTES <= BUF_SIZE */
	}
	if (lw->due_ms == 0)
		lw->due_ms = zh__ext_now_ms(w) + FLUSH_AFTER_MS;
	if (!lw->ticking)
		flush(log, lw, w); /* no hook slot left on this worker: write each line at once */
}

/* ---- public ----------------------------------------------------------------------------------- */

static int open_log(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	return fd < 0 ? -errno : fd;
}

static void free_log(zh_access_log_t *log)
{
	if (log->workers)
		for (unsigned i = 0; i < log->nworkers; i++)
			free(log->workers[i].buf);
	free(log->workers);
	free(log->path);
	if (log->fd >= 0 && !log->is_stdout)
		close(log->fd);
	pthread_mutex_destroy(&log->write_lock);
	pthread_mutex_destroy(&log->reopen_lock);
	free(log);
}

static int setup(zh_access_log_t *log, const zh_server_t *srv, const char *path)
{
	struct stat st;
	log->nworkers = zh_server_workers(srv);
	log->workers = aligned_alloc(64, log->nworkers * sizeof *log->workers);
	if (log->workers == NULL)
		return -ENOMEM;
	memset(log->workers, 0, log->nworkers * sizeof *log->workers);
	for (unsigned i = 0; i < log->nworkers; i++) {
		log->workers[i].sec = (time_t)-1;
		if ((log->workers[i].buf = malloc(BUF_SIZE)) == NULL)
			return -ENOMEM;
	}
	log->is_stdout = strcmp(path, "-") == 0;
	log->fd = log->is_stdout ? STDOUT_FILENO : open_log(path);
	if (log->fd < 0)
		return log->fd;
	/* malloc + memcpy, not strdup: a program that wraps malloc/free (zerohttpd counts them)
	 * may not see a sanitizer's strdup interceptor allocate, and then frees foreign memory */
	if ((log->path = malloc(strlen(path) + 1)) == NULL)
		return -ENOMEM;
	memcpy(log->path, path, strlen(path) + 1);
	log->serialize = fstat(log->fd, &st) < 0 || !S_ISREG(st.st_mode);
	return 0;
}

zh_access_log_t *zh_access_log_new(const zh_server_t *srv, const char *path, int format,
				   int *err)
{
	zh_access_log_t *log;
	int r = -EINVAL;
	if (srv == NULL || path == NULL || *path == '\0' || format < ZH_LOG_COMMON ||
	    format > ZH_LOG_JSON)
		goto fail;
	r = -ENOMEM;
	if ((log = calloc(1, sizeof *log)) == NULL)
		goto fail;
	log->srv = srv;
	log->format = format;
	log->fd = -1;
	pthread_mutex_init(&log->write_lock, NULL);
	pthread_mutex_init(&log->reopen_lock, NULL);
	if ((r = setup(log, srv, path)) < 0) {
		free_log(log);
		goto fail;
	}
	return log;
fail:
	if (err)
		*err = r;
	return NULL;
}

zh_middleware_t zh_access_log_middleware(zh_access_log_t *log)
{
	return (zh_middleware_t){.done = done, .arg = log};
}

int zh_access_log_reopen(zh_access_log_t *log)
{
	int fd, r = 0;
	if (log == NULL)
		return -EINVAL;
	if (log->is_stdout)
		return 0;
	pthread_mutex_lock(&log->reopen_lock); /* two rotations at once: one after the other */
	fd = open_log(log->path);
	if (fd < 0) {
		r = fd;
	} else {
		/* dup3, not dup2: keeps close-on-exec on the descriptor the workers use */
		if (dup3(fd, log->fd, O_CLOEXEC) < 0)
			r = -errno;
		close(fd);
	}
	pthread_mutex_unlock(&log->reopen_lock);
	return r;
}

void zh_access_log_free(zh_access_log_t *log)
{
	if (log == NULL)
		return;
	for (unsigned i = 0; i < log->nworkers; i++)
		flush(log, &log->workers[i], NULL); /* normally empty: each worker flushed as it exited */
	free_log(log);
}
