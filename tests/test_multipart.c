/* test_multipart.c — unit tests for src/multipart.c, the streaming multipart/form-data parser.
 *
 * Every body is fed four ways and must give the same events and result: whole, one byte per
 * call, every split into two pieces, and 200 random splits. Each piece is copied to just
 * before a PROT_NONE page, so reading past a piece crashes. Events are recorded as one
 * canonical string per run: "<P index name filename type>" data "</P>" per part, data
 * callbacks concatenated (their split is free to vary).
 */
#define _DEFAULT_SOURCE
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "zerohttp.h"

static char *piece_at_guard(const char *p, size_t n)
{
	static char *mem;
	static size_t span;
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	if (!mem) {
		span = 1 << 20;
		mem = mmap(NULL, span + pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
			   0);
		cr_assert(mem != MAP_FAILED);
		cr_assert(mprotect(mem + span, pg, PROT_NONE) == 0);
	}
	cr_assert(n <= span);
	memmove(mem + span - n, p, n);
	return mem + span - n;
}

typedef struct {
	char log[8192];
	size_t len;
	const char *piece; /* the piece being fed, to check data slices point into it... */
	size_t piece_len;
	int in_piece;	   /* ...or into the parser's delimiter copy */
	int fail_on_part;  /* the part callback of this index returns -ECANCELED (1-based) */
} rec_t;

static void add(rec_t *r, const void *p, size_t n)
{
	cr_assert(r->len + n < sizeof r->log, "log overflow");
	memcpy(r->log + r->len, p, n);
	r->len += n;
	r->log[r->len] = '\0';
}

static int on_part(void *arg, const zh_multipart_part_t *pt)
{
	rec_t *r = arg;
	char b[600];
	int n = snprintf(b, sizeof b, "<P %u %.*s %.*s %.*s>", pt->index, (int)pt->name.len,
			 pt->name.ptr, pt->filename.ptr ? (int)pt->filename.len : 1,
			 pt->filename.ptr ? pt->filename.ptr : "-", (int)pt->content_type.len,
			 pt->content_type.ptr);
	add(r, b, (size_t)n);
	if (r->fail_on_part == (int)pt->index + 1)
		return -ECANCELED;
	return 0;
}

static int on_data(void *arg, const zh_multipart_part_t *pt, const void *p, size_t len)
{
	rec_t *r = arg;
	(void)pt;
	cr_assert(len > 0, "empty data callback");
	if ((const char *)p >= r->piece && (const char *)p + len <= r->piece + r->piece_len)
		r->in_piece++;
	add(r, p, len);
	return 0;
}

static int on_end(void *arg, const zh_multipart_part_t *pt)
{
	(void)pt;
	add(arg, "</P>", 4);
	return 0;
}

static const zh_multipart_ops_t ops = {on_part, on_data, on_end};

/* Feeds body in the pieces listed by cuts (offsets, ascending), then finishes. Returns the
 * first negative result, or feed's last result (0 or 1) combined with finish (0 or error);
 * the events in r. */
static int run_cuts(const char *ct, const char *body, size_t len, const size_t *cuts,
		    size_t ncuts, rec_t *r, unsigned max_parts, unsigned max_hdr)
{
	zh_multipart_t *mp = malloc(sizeof *mp);
	size_t from = 0;
	int res = 0;
	memset(r->log, 0, sizeof r->log);
	r->len = 0;
	cr_assert(mp);
	cr_assert_eq(zh_multipart_init(mp, (zh_slice_t){ct, strlen(ct)}, &ops, r), 0, "init %s",
		     ct);
	if (max_parts)
		mp->max_parts = max_parts;
	if (max_hdr)
		mp->max_header_bytes = max_hdr;
	for (size_t i = 0; i <= ncuts; i++) {
		size_t to = i < ncuts ? cuts[i] : len;
		if (to < from || (to == from && i < ncuts))
			continue;
		r->piece = piece_at_guard(body + from, to - from);
		r->piece_len = to - from;
		res = zh_multipart_feed(mp, r->piece, to - from);
		from = to;
		if (res < 0)
			break;
	}
	if (res >= 0) {
		int f = zh_multipart_finish(mp);
		res = f;
	} else {
		cr_expect_eq(zh_multipart_feed(mp, "x", 1), res, "errors are sticky");
		cr_expect_eq(zh_multipart_finish(mp), res, "errors are sticky (finish)");
	}
	free(mp);
	return res;
}

/* The four ways; all must agree. Returns the result, the whole-feed log in *out. */
static int check_all_splits_n(const char *ct, const char *body, size_t len, char *out,
			      unsigned max_parts, unsigned max_hdr)
{
	rec_t whole = {0}, r = {0};
	size_t *cuts = malloc((len + 1) * sizeof *cuts);
	int res = run_cuts(ct, body, len, NULL, 0, &whole, max_parts, max_hdr), got;
	cr_assert(cuts);
	for (size_t i = 0; i < len; i++)
		cuts[i] = i + 1;
	got = run_cuts(ct, body, len, cuts, len, &r, max_parts, max_hdr);
	cr_expect_eq(got, res, "1-byte feeds: %d, whole: %d", got, res);
	cr_expect_str_eq(r.log, whole.log, "1-byte feeds");
	for (size_t k = 0; k <= len; k++) {
		cuts[0] = k;
		got = run_cuts(ct, body, len, cuts, 1, &r, max_parts, max_hdr);
		cr_expect_eq(got, res, "split at %zu: %d, whole: %d", k, got, res);
		cr_expect_str_eq(r.log, whole.log, "split at %zu", k);
	}
	srand(7);
	for (int t = 0; t < 200; t++) {
		size_t n = 0, at = 0;
		while (at < len) {
			at += 1 + (size_t)rand() % (rand() % 2 ? 3 : 40);
			cuts[n++] = at < len ? at : len;
		}
		got = run_cuts(ct, body, len, cuts, n, &r, max_parts, max_hdr);
		cr_expect_eq(got, res, "random split %d", t);
		cr_expect_str_eq(r.log, whole.log, "random split %d", t);
	}
	free(cuts);
	strcpy(out, whole.log);
	return res;
}

static int check_all_splits(const char *ct, const char *body, char *out)
{
	return check_all_splits_n(ct, body, strlen(body), out, 0, 0);
}

#define CT "multipart/form-data; boundary=AaB03x"

/* RFC 2046 §5.1.1's sample message, as form-data: a quoted boundary with a space, a
 * preamble, a part that "does NOT end with a linebreak", one that does, an epilogue. */
Test(multipart, rfc2046_sample)
{
	char log[8192];
	const char *body =
		"This is the preamble.  It is to be ignored, though it\r\n"
		"is a handy place for composition agents to include an\r\n"
		"explanatory note to non-MIME conformant readers.\r\n"
		"\r\n"
		"--simple boundary\r\n"
		"Content-Disposition: form-data; name=\"a\"\r\n"
		"\r\n"
		"This is implicitly typed plain US-ASCII text.\r\n"
		"It does NOT end with a linebreak.\r\n"
		"--simple boundary\r\n"
		"Content-Disposition: form-data; name=\"b\"\r\n"
		"Content-type: text/plain; charset=us-ascii\r\n"
		"\r\n"
		"This is explicitly typed plain US-ASCII text.\r\n"
		"It DOES end with a linebreak.\r\n"
		"\r\n"
		"--simple boundary--\r\n"
		"\r\n"
		"This is the epilogue.  It is also to be ignored.\r\n"
		"--simple boundary\r\n";
	int r = check_all_splits("multipart/form-data; boundary=\"simple boundary\"", body, log);
	cr_expect_eq(r, 0);
	cr_expect_str_eq(log, "<P 0 a - >This is implicitly typed plain US-ASCII text.\r\n"
			      "It does NOT end with a linebreak.</P>"
			      "<P 1 b - text/plain; charset=us-ascii>This is explicitly typed plain "
			      "US-ASCII text.\r\nIt DOES end with a linebreak.\r\n</P>");
}

/* RFC 7578 §4.5's example of a non-ASCII field (quoted-printable is the sender's business:
 * the parser hands the bytes over as they are), and a file part as browsers send it. */
Test(multipart, rfc7578_example_and_file_part)
{
	char log[8192];
	const char *body = "--AaB03x\r\n"
			   "content-disposition: form-data; name=\"field1\"\r\n"
			   "content-type: text/plain;charset=UTF-8\r\n"
			   "content-transfer-encoding: quoted-printable\r\n"
			   "\r\n"
			   "Joe owes =E2=82=AC100.\r\n"
			   "--AaB03x\r\n"
			   "Content-Disposition: form-data; name=\"pics\"; filename=\"file1.txt\"\r\n"
			   "Content-Type: text/plain\r\n"
			   "\r\n"
			   "...contents of file1.txt...\r\n"
			   "--AaB03x--";
	cr_expect_eq(check_all_splits(CT, body, log), 0);
	cr_expect_str_eq(log, "<P 0 field1 - text/plain;charset=UTF-8>Joe owes =E2=82=AC100.</P>"
			      "<P 1 pics file1.txt text/plain>...contents of file1.txt...</P>");
}

/* Bytes that begin like a delimiter but are not one are body bytes, wherever they fall. */
Test(multipart, near_delimiters_are_data)
{
	char log[8192];
	const char *body = "--AaB03x\r\n"
			   "Content-Disposition: form-data; name=x\r\n"
			   "\r\n"
			   "\r\r\n\r\n-\r\n--\r\n--A\r\n--AaB03\r\n--aAB03x--AaB03x\n--AaB03x\r"
			   "\r\n--AaB03x\r\n"
			   "Content-Disposition: form-data; name=y\r\n"
			   "\r\n"
			   "\r\n--AaB03x--";
	cr_expect_eq(check_all_splits(CT, body, log), 0);
	cr_expect_str_eq(log, "<P 0 x - >\r\r\n\r\n-\r\n--\r\n--A\r\n--AaB03\r\n--aAB03x--AaB03x"
			      "\n--AaB03x\r</P><P 1 y - ></P>");
}

Test(multipart, empty_parts_padding_and_no_preamble_crlf)
{
	char log[8192];
	/* transport padding after delimiters; an empty body; the first delimiter after a
	 * preamble ending in CRLF */
	const char *body = "preamble\r\n--AaB03x \t \r\n"
			   "Content-Disposition: form-data; name=\"e\"\r\n"
			   "\r\n"
			   "\r\n--AaB03x\t\r\n"
			   "Content-Disposition: form-data; name=\"f\"; filename=\"\"\r\n"
			   "Content-Type: application/octet-stream\r\n"
			   "\r\n"
			   "\r\n--AaB03x--garbage after the close";
	cr_expect_eq(check_all_splits(CT, body, log), 0);
	cr_expect_str_eq(log, "<P 0 e - ></P><P 1 f  application/octet-stream></P>");
}

Test(multipart, parameters_quoted_escaped_and_case)
{
	char log[8192];
	/* curl escapes '"' and '\' in a filename; a browser sends a bare backslash (kept) */
	const char *body = "--AaB03x\r\n"
			   "CONTENT-DISPOSITION:FORM-DATA;NAME=\"a\\\"b\";  FileName=\"c:\\dir\\\\x\\\"y.txt\"\r\n"
			   "\r\n"
			   "1\r\n--AaB03x--\r\n";
	cr_expect_eq(check_all_splits("Multipart/Form-Data ; charset=utf-8; BOUNDARY=\"AaB03x\"",
				      body, log),
		     0);
	cr_expect_str_eq(log, "<P 0 a\"b c:\\dir\\x\"y.txt >1</P>");
}

Test(multipart, framing_errors)
{
	static const struct {
		const char *desc, *body;
		int err;
	} rows[] = {
		{"no close delimiter", "--AaB03x\r\nContent-Disposition: form-data; name=a\r\n\r\nx",
		 -EPROTO},
		{"nothing at all", "", -EPROTO},
		{"only a preamble", "hello\r\n", -EPROTO},
		{"delimiter then garbage", "--AaB03xY\r\n", -EPROTO},
		{"delimiter, blanks, garbage", "--AaB03x  x\r\n", -EPROTO},
		{"a single dash closes nothing", "--AaB03x-\r\n", -EPROTO},
		{"CR without LF", "--AaB03x\rX", -EPROTO},
		{"no Content-Disposition", "--AaB03x\r\nContent-Type: text/plain\r\n\r\nx\r\n--AaB03x--",
		 -EPROTO},
		{"no headers", "--AaB03x\r\n\r\nx\r\n--AaB03x--", -EPROTO},
		{"not form-data", "--AaB03x\r\nContent-Disposition: attachment; name=a\r\n\r\n"
				  "\r\n--AaB03x--", -EPROTO},
		{"no name", "--AaB03x\r\nContent-Disposition: form-data; filename=a\r\n\r\n"
			    "\r\n--AaB03x--", -EPROTO},
		{"unterminated quote", "--AaB03x\r\nContent-Disposition: form-data; name=\"a\r\n\r\n"
				       "\r\n--AaB03x--", -EPROTO},
		{"bare LF in headers", "--AaB03x\r\nContent-Disposition: form-data; name=a\n\n"
				       "\r\n--AaB03x--", -EPROTO},
		{"bare CR in a header", "--AaB03x\r\nContent-Disposition: form-data; name=a\rb\r\n"
					"\r\n\r\n--AaB03x--", -EPROTO},
		{"header line without colon", "--AaB03x\r\nContent-Disposition: form-data; name=a\r\n"
					      "junk\r\n\r\n\r\n--AaB03x--", -EPROTO},
		{"folded header", "--AaB03x\r\nContent-Disposition: form-data;\r\n name=a\r\n\r\n"
				  "\r\n--AaB03x--", -EPROTO},
	};
	char log[8192];
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		int r = check_all_splits(CT, rows[i].body, log);
		cr_expect_eq(r, rows[i].err, "%s: %d", rows[i].desc, r);
	}
}

Test(multipart, bounds)
{
	char body[8192], log[8192];
	size_t n = 0;
	for (int i = 0; i < 4; i++)
		n += (size_t)sprintf(body + n, "--AaB03x\r\nContent-Disposition: form-data; "
					       "name=p%d\r\n\r\n%d\r\n",
				     i, i);
	n += (size_t)sprintf(body + n, "--AaB03x--");
	cr_expect_eq(check_all_splits_n(CT, body, n, log, 4, 0), 0, "4 parts, max 4");
	cr_expect_eq(check_all_splits_n(CT, body, n, log, 3, 0), -E2BIG, "4 parts, max 3");
	cr_expect_str_eq(log, "<P 0 p0 - >0</P><P 1 p1 - >1</P><P 2 p2 - >2</P>",
			 "parts before the limit went through");
	/* the header block, its empty line included, against the limit */
	static const char block[] = "Content-Disposition: form-data; name=aaa\r\n\r\n";
	n = (size_t)sprintf(body, "--AaB03x\r\n%s\r\n--AaB03x--", block);
	cr_expect_eq(check_all_splits_n(CT, body, n, log, 0, sizeof block - 1), 0);
	cr_expect_eq(check_all_splits_n(CT, body, n, log, 0, sizeof block - 2), -EMSGSIZE);
	/* the default limit: ZH_MULTIPART_HEADER_MAX */
	n = (size_t)sprintf(body, "--AaB03x\r\nContent-Disposition: form-data; name=a\r\nX: ");
	memset(body + n, 'x', 2100);
	n += 2100;
	n += (size_t)sprintf(body + n, "\r\n\r\n\r\n--AaB03x--");
	cr_expect_eq(check_all_splits_n(CT, body, n, log, 0, 0), -EMSGSIZE);
}

Test(multipart, init_boundaries)
{
	static const struct {
		const char *ct;
		int r;
	} rows[] = {
		{"multipart/form-data; boundary=abc", 0},
		{"multipart/form-data;boundary=\"a b:c?\"", 0},
		{"multipart/form-data; boundary=\"0123456789012345678901234567890123456789012345678"
		 "901234567890123456789\"", 0}, /* 70 */
		{"multipart/form-data; boundary=\"0123456789012345678901234567890123456789012345678"
		 "9012345678901234567890\"", -EINVAL}, /* 71 */
		{"multipart/form-data; boundary=\"ab \"", -EINVAL},
		{"multipart/form-data; boundary=\"\"", -EINVAL},
		{"multipart/form-data; boundary=", -EINVAL},
		{"multipart/form-data; boundary=\"a\tb\"", -EINVAL},
		{"multipart/form-data; boundary=\"a;b\"", -EINVAL},
		{"multipart/form-data", -EINVAL},
		{"multipart/mixed; boundary=abc", -EINVAL},
		{"text/plain; boundary=abc", -EINVAL},
		{"multipart/form-data-x; boundary=abc", -EINVAL},
		{"multipart/form-data; charset=\"x;y\"; boundary=ok", 0},
		{"multipart/form-data; junk; boundary=ok", -EINVAL},
		{"", -EINVAL},
	};
	zh_multipart_t mp;
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		int r = zh_multipart_init(&mp, (zh_slice_t){rows[i].ct, strlen(rows[i].ct)}, &ops,
					  NULL);
		cr_expect_eq(r, rows[i].r, "%s: %d", rows[i].ct, r);
		if (r < 0)
			cr_expect_eq(zh_multipart_feed(&mp, "x", 1), -EINVAL, "unusable after");
	}
}

/* Data slices point into the fed buffer (no copy) except for bytes held back across a
 * piece boundary, and a callback's error stops the parser. */
Test(multipart, zero_copy_and_callback_error)
{
	const char *body = "--AaB03x\r\nContent-Disposition: form-data; name=a\r\n\r\n"
			   "0123456789\r\n--AaB03x\r\nContent-Disposition: form-data; name=b\r\n"
			   "\r\nxyz\r\n--AaB03x--";
	rec_t r = {0};
	size_t cut = strlen(body) - 14; /* inside "\r\n--AaB03x--" of part b */
	cr_expect_eq(run_cuts(CT, body, strlen(body), NULL, 0, &r, 0, 0), 0);
	cr_expect_eq(r.in_piece, 2, "each part's data is one slice of the buffer");
	r.in_piece = 0;
	cr_expect_eq(run_cuts(CT, body, strlen(body), &cut, 1, &r, 0, 0), 0);
	cr_expect_str_eq(r.log, "<P 0 a - >0123456789</P><P 1 b - >xyz</P>");
	r.fail_on_part = 2;
	cr_expect_eq(run_cuts(CT, body, strlen(body), NULL, 0, &r, 0, 0), -ECANCELED);
	cr_expect_str_eq(r.log, "<P 0 a - >0123456789</P><P 1 b - >");
}

/* ---- sinks --------------------------------------------------------------------------------- */

typedef struct {
	zh_multipart_t mp;
	int fd;
	uint64_t max;
	int to_sink_outside;
	char sunk[256];
	size_t sunk_len;
} sink_ctx_t;

static int sink_part(void *arg, const zh_multipart_part_t *pt)
{
	sink_ctx_t *c = arg;
	if (pt->filename.ptr == NULL)
		return 0;
	return zh_multipart_part_to_fd(&c->mp, c->fd, c->max);
}

static int sink_data(void *arg, const zh_multipart_part_t *pt, const void *p, size_t len)
{
	sink_ctx_t *c = arg;
	(void)pt;
	c->to_sink_outside = zh_multipart_part_to_fd(&c->mp, c->fd, 0);
	cr_assert(c->sunk_len + len <= sizeof c->sunk);
	memcpy(c->sunk + c->sunk_len, p, len);
	c->sunk_len += len;
	return 0;
}

static const zh_multipart_ops_t sink_ops = {sink_part, sink_data, NULL};

static int feed_sink_n(sink_ctx_t *c, const char *body, size_t len, size_t step)
{
	const char *ct = CT;
	int r = 0;
	cr_assert_eq(zh_multipart_init(&c->mp, (zh_slice_t){ct, strlen(ct)}, &sink_ops, c), 0);
	for (size_t at = 0; at < len && r >= 0; at += step)
		r = zh_multipart_feed(&c->mp, body + at, len - at < step ? len - at : step);
	return r < 0 ? r : zh_multipart_finish(&c->mp);
}

static int feed_sink(sink_ctx_t *c, const char *body, size_t step)
{
	return feed_sink_n(c, body, strlen(body), step);
}

Test(multipart, file_part_to_fd)
{
	static const char body[] = "--AaB03x\r\nContent-Disposition: form-data; name=t\r\n\r\ntext"
			   "\r\n--AaB03x\r\nContent-Disposition: form-data; name=f; filename=a.bin\r\n"
			   "\r\n\r\n--AaB03\r\x00\xff file bytes\r\n--AaB03x\r\n"
			   "Content-Disposition: form-data; name=u\r\n\r\nafter\r\n--AaB03x--";
	static const char want[] = "\r\n--AaB03\r\x00\xff file bytes";
	for (size_t step = 1; step <= sizeof body - 1; step += step < 8 ? 1 : 13) {
		sink_ctx_t *c = calloc(1, sizeof *c);
		char file[64];
		cr_assert(c);
		c->fd = memfd_create("part", 0);
		cr_assert(c->fd >= 0);
		cr_expect_eq(feed_sink_n(c, body, sizeof body - 1, step), 0, "step %zu", step);
		cr_expect_eq(c->to_sink_outside, -EINVAL, "only inside the part callback");
		cr_expect_eq(c->sunk_len, 9);
		cr_expect(memcmp(c->sunk, "textafter", 9) == 0, "other parts still go to data");
		cr_expect_eq(pread(c->fd, file, sizeof file, 0), (ssize_t)(sizeof want - 1));
		cr_expect(memcmp(file, want, sizeof want - 1) == 0, "step %zu", step);
		close(c->fd);
		free(c);
	}
}

Test(multipart, sink_limit_and_write_error)
{
	const char *body = "--AaB03x\r\nContent-Disposition: form-data; name=f; filename=a\r\n"
			   "\r\n0123456789\r\n--AaB03x--";
	sink_ctx_t *c = calloc(1, sizeof *c);
	cr_assert(c);
	c->fd = memfd_create("part", 0);
	c->max = 10;
	cr_expect_eq(feed_sink(c, body, 3), 0, "exactly the limit");
	close(c->fd);
	c->fd = memfd_create("part", 0);
	c->max = 9;
	cr_expect_eq(feed_sink(c, body, 3), -EFBIG);
	close(c->fd);
	c->fd = open("/dev/null", O_RDONLY);
	c->max = 0;
	cr_expect_eq(feed_sink(c, body, 100), -EBADF, "write()'s error, as -errno");
	close(c->fd);
	free(c);
}
