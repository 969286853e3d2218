/* fuzz_multipart.c — libFuzzer target for the streaming multipart/form-data parser
 * (multipart.c), linked with the library.
 *
 * Input: byte 0: bits 0-2 pick the Content-Type from a table (boundaries quoted and not,
 * with spaces and dashes), bit 3: max_parts 3, bit 4: max_header_bytes 64; bytes 1-8 seed
 * the split; the rest is the body.
 *
 * The body is parsed three times: whole, one byte per call, and in pieces of the fuzzer's
 * choosing (fz_next_piece), each piece an exact-size heap copy (reading past it is an ASan
 * report). Each run records one canonical log: per part its index, name, filename and
 * Content-Type, then its data (callbacks concatenated), then its end. Checked:
 *  - the three runs give the same log and the same result (feed's error, or finish's);
 *  - every data slice lies inside the piece being fed or inside the parser's own struct
 *    (bytes held back across pieces), and is never empty;
 *  - no part's data contains the delimiter (CRLF "--" boundary);
 *  - part indexes count up from 0, never reach max_parts, and every part that began ended
 *    unless the run failed;
 *  - errors are sticky: after one, feed and finish return it again;
 *  - a body that parses without error is split again by a reference written here (memmem
 *    for CRLF "--" boundary, the first one also at the very start without its CRLF):
 *    the same number of parts, each with the same data bytes.
 */
#include "zerohttp.h"

#include "fuzz_common.h"

#include <errno.h>
#include <stdbool.h>

static const char *const types[8] = {
	"multipart/form-data; boundary=AaB03x",
	"multipart/form-data; boundary=\"simple boundary\"",
	"multipart/form-data; boundary=-",
	"Multipart/Form-Data; charset=utf-8; BOUNDARY=\"--x\"",
	"multipart/form-data; boundary=a",
	"multipart/form-data; boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW",
	"multipart/form-data; boundary=\"a\\\"b\"", /* invalid: '"' is no bchar */
	"multipart/form-data;boundary=\"(x)+_,-./:=?\"",
};

typedef struct {
	zh_multipart_t mp;
	char log[1 << 17];
	size_t len;
	bool overflow;
	const char *piece;
	size_t piece_len;
	unsigned next_index, open;
	const char *delim;
	size_t dlen;
	char data[1 << 16]; /* the current part's data, to look for the delimiter */
	size_t data_len;
	size_t part_len[130]; /* every part's data length (up to max_parts 128) */
	bool data_over;	      /* a part's data outgrew data[]: no reference check */
} run_t;

static run_t runs[3];

static void add(run_t *r, const void *p, size_t n)
{
	if (r->overflow || n > sizeof r->log - r->len) {
		r->overflow = true; /* compared as such: all three overflow alike */
		return;
	}
	memcpy(r->log + r->len, p, n);
	r->len += n;
}

static void add_slice(run_t *r, char tag, zh_slice_t s)
{
	uint32_t n = (uint32_t)s.len;
	add(r, &tag, 1);
	add(r, &n, sizeof n);
	if (s.ptr)
		add(r, s.ptr, s.len);
	else
		add(r, "\xff", 1); /* absent, not empty */
}

static int on_part(void *arg, const zh_multipart_part_t *pt)
{
	run_t *r = arg;
	CHECK(pt->index == r->next_index, "index %u, want %u", pt->index, r->next_index);
	CHECK(pt->index < r->mp.max_parts, "part %u past max_parts", pt->index);
	CHECK(!r->open, "a part began inside another");
	CHECK(pt->name.ptr != NULL, "a part without a name");
	r->next_index++;
	r->open = 1;
	r->data_len = 0;
	add(r, "P", 1);
	add(r, &pt->index, sizeof pt->index);
	add_slice(r, 'n', pt->name);
	add_slice(r, 'f', pt->filename);
	add_slice(r, 't', pt->content_type);
	return 0;
}

static int on_data(void *arg, const zh_multipart_part_t *pt, const void *p, size_t len)
{
	run_t *r = arg;
	const char *c = p, *mp = (const char *)&r->mp;
	(void)pt;
	CHECK(r->open && len > 0, "data outside a part, or empty");
	CHECK((c >= r->piece && c + len <= r->piece + r->piece_len) ||
		      (c >= mp && c + len <= mp + sizeof r->mp),
	      "a data slice outside the piece and the parser");
	add(r, p, len);
	if (r->data_len + len <= sizeof r->data) {
		memcpy(r->data + r->data_len, p, len);
		r->data_len += len;
	} else {
		r->data_over = true;
	}
	r->part_len[pt->index] += len;
	return 0;
}

static int on_end(void *arg, const zh_multipart_part_t *pt)
{
	run_t *r = arg;
	(void)pt;
	CHECK(r->open, "an end without a part");
	r->open = 0;
	CHECK(r->data_len < r->dlen || memmem(r->data, r->data_len, r->delim, r->dlen) == NULL,
	      "the delimiter inside a part's data");
	add(r, "E", 1);
	return 0;
}

/* The reference split of a body the parser accepted: checks part count and each part's
 * data against run r (whose data[] holds only the last part: the body is re-read here). */
static void check_reference(const run_t *r, const uint8_t *body, size_t len)
{
	const char *b = (const char *)body, *end = b + len, *p, *d = r->delim;
	size_t dl = r->dlen, parts = 0;
	if (len >= dl - 2 && memcmp(b, d + 2, dl - 2) == 0)
		p = b + dl - 2;
	else {
		p = memmem(b, len, d, dl);
		CHECK(p != NULL, "accepted without a delimiter");
		p += dl;
	}
	for (;;) {
		const char *hdr_end, *next;
		CHECK(end - p >= 2, "accepted a body cut after a delimiter");
		if (p[0] == '-' && p[1] == '-')
			break;
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		CHECK(end - p >= 2 && p[0] == '\r' && p[1] == '\n', "no CRLF after a delimiter");
		p += 2;
		hdr_end = memmem(p, (size_t)(end - p), "\r\n\r\n", 4);
		CHECK(hdr_end != NULL, "accepted a part without its header block's end");
		p = hdr_end + 4;
		next = memmem(p, (size_t)(end - p), d, dl);
		CHECK(next != NULL, "accepted a part without a delimiter after it");
		CHECK(parts < 130 && r->part_len[parts] == (size_t)(next - p),
		      "part %zu: %zu data bytes, the reference %zu", parts,
		      parts < 130 ? r->part_len[parts] : 0, (size_t)(next - p));
		parts++;
		p = next + dl;
	}
	CHECK(parts == r->next_index, "%u parts, the reference %zu", r->next_index, parts);
	if (parts > 0 && !r->data_over) {
		/* the last part's bytes, compared whole */
		const char *q = p - dl - r->part_len[parts - 1];
		CHECK(memcmp(q, r->data, r->part_len[parts - 1]) == 0, "last part's bytes differ");
	}
}

static const zh_multipart_ops_t ops = {on_part, on_data, on_end};

/* mode 0 whole, 1 byte by byte, 2 the fuzzer's pieces; the result */
static int run(run_t *r, const char *ct, uint8_t flags, const uint8_t *body, size_t len,
	       int mode, fz_split_t *sp)
{
	size_t at = 0;
	int res = 0;
	memset(r, 0, offsetof(run_t, data));
	memset(r->part_len, 0, sizeof r->part_len);
	r->data_over = false;
	if (zh_multipart_init(&r->mp, (zh_slice_t){ct, strlen(ct)}, &ops, r) < 0)
		return -EINVAL - 1000;
	if (flags & 0x08)
		r->mp.max_parts = 3;
	if (flags & 0x10)
		r->mp.max_header_bytes = 64;
	r->delim = r->mp.delim;
	r->dlen = r->mp.dlen;
	while (at < len && res >= 0) {
		size_t n = mode == 0 ? len : mode == 1 ? 1 : fz_next_piece(sp);
		char *piece;
		if (n > len - at)
			n = len - at;
		piece = fz_dup(body + at, n);
		r->piece = piece;
		r->piece_len = n;
		res = zh_multipart_feed(&r->mp, piece, n);
		free(piece);
		at += n;
	}
	if (res < 0) {
		CHECK(zh_multipart_feed(&r->mp, "x", 1) == res, "feed after an error");
		CHECK(zh_multipart_finish(&r->mp) == res, "finish after an error");
		return res;
	}
	res = zh_multipart_finish(&r->mp);
	if (res == 0)
		CHECK(!r->open, "finished with a part open");
	return res;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fz_in_t in = {data, size};
	uint8_t flags = fz_u8(&in);
	fz_split_t sp = {fz_u64(&in)};
	const char *ct = types[flags & 7];
	int res[3];
	for (int m = 0; m < 3; m++)
		res[m] = run(&runs[m], ct, flags, in.p, in.n, m, &sp);
	for (int m = 1; m < 3; m++) {
		CHECK(res[m] == res[0], "run %d: result %d, whole: %d", m, res[m], res[0]);
		CHECK(runs[m].overflow == runs[0].overflow && runs[m].len == runs[0].len &&
			      memcmp(runs[m].log, runs[0].log, runs[0].len) == 0,
		      "run %d: events differ from the whole feed", m);
	}
	if (res[0] == 0)
		check_reference(&runs[0], in.p, in.n);
	return 0;
}
