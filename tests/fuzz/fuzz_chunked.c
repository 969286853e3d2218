/* fuzz_chunked.c — libFuzzer target for the chunked decoder, zh__chunked_decode (parse.c).
 *
 * Input: byte 0 is the mode (bit 1: a small max_body, bits 2-7 its value), bytes 1-8 seed
 * the split, the rest is a request body in chunked coding (and maybe what follows it).
 *
 * Checked:
 *  - decoding in place over the whole input (body.c's way) and decoding the input as it
 *    arrives in pieces into output windows of varying size (zh_body_read's way) give the
 *    same verdict, the same end position and the same data;
 *  - a reference decoder written here, straight from the grammar of RFC 9112 §7.1 with the
 *    limits parse.c documents, agrees on verdict, end position and data;
 *  - no call produces more than it consumes (in place, output never overtakes input);
 *  - a call that neither finished nor filled its output consumed all its input (otherwise
 *    the caller would wait for bytes that are already there);
 *  - the SSE2 and scalar builds of parse.c agree (the decoder has no SIMD today; cheap).
 */
#include "internal.h"

#include "fuzz_common.h"

long zh__chunked_decode_scalar(zh__chunked_t *c, const char *in, size_t in_len, char *out,
			       size_t out_cap, size_t *produced, uint64_t max_body);

enum { INCOMPLETE = 0, DONE = 1 };

typedef struct {
	int status; /* INCOMPLETE, DONE, -400, -413 */
	size_t consumed;
	char *out;
	size_t out_len;
} result_t;

/* ---- the reference: the grammar as straight-line code ---------------------------------------- */

static bool tchar(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool ctl(unsigned char c)
{
	return (c < 0x20 && c != '\t') || c == 0x7f;
}

static int hexv(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

#define NEED()                                                                                 \
	do {                                                                                   \
		if (pos == len)                                                                \
			goto incomplete;                                                       \
	} while (0)

static void reference(const char *in, size_t len, uint64_t max_body, result_t *res)
{
	size_t pos = 0;
	uint64_t total = 0;
	res->out = malloc(len + 1);
	res->out_len = 0;
	for (;;) {
		/* chunk-size [ chunk-ext ] CRLF, size line at most 4096 bytes after the digits */
		uint64_t size = 0;
		int digits = 0, ext_bytes = 0;
		bool in_ext = false;
		for (;;) {
			int v;
			NEED();
			v = hexv((unsigned char)in[pos]);
			if (v < 0)
				break;
			if (digits == 16)
				goto too_big;
			size = size * 16 + (uint64_t)v;
			digits++;
			if (size > max_body - total)
				goto too_big;
			pos++;
		}
		if (digits == 0)
			goto bad;
		for (;;) {
			unsigned char c;
			NEED();
			c = (unsigned char)in[pos++];
			/* RFC 9112 7.1: blanks after the size only before a ';' extension */
			if (c == '\r' && !in_ext && ext_bytes > 0)
				goto bad;
			if (c == '\r')
				break;
			if (!in_ext && c == ';')
				in_ext = true;
			else if (!in_ext && c != ' ' && c != '\t')
				goto bad;
			else if (in_ext && ctl(c))
				goto bad;
			if (++ext_bytes > 4096)
				goto bad;
		}
		NEED();
		if (in[pos++] != '\n')
			goto bad;
		if (size == 0)
			break;
		/* chunk-data CRLF */
		while (size) {
			size_t n;
			NEED();
			n = len - pos < size ? len - pos : (size_t)size;
			memcpy(res->out + res->out_len, in + pos, n);
			res->out_len += n;
			pos += n;
			size -= n;
			total += n;
		}
		NEED();
		if (in[pos++] != '\r')
			goto bad;
		NEED();
		if (in[pos++] != '\n')
			goto bad;
	}
	/* trailer-section CRLF: at most 32 fields, 8192 bytes of them */
	{
		int fields = 0, bytes = 0;
		for (;;) {
			unsigned char c;
			NEED();
			if (in[pos] == '\r') {
				pos++;
				NEED();
				if (in[pos++] != '\n')
					goto bad;
				res->status = DONE;
				res->consumed = pos;
				return;
			}
			if (!tchar((unsigned char)in[pos]) || ++fields > 32)
				goto bad;
			do { /* field-name ":" */
				NEED();
				c = (unsigned char)in[pos++];
				if (c != ':' && !tchar(c))
					goto bad;
				if (++bytes > 8192)
					goto bad;
			} while (c != ':');
			do { /* field-value CR */
				NEED();
				c = (unsigned char)in[pos++];
				if (c != '\r' && ctl(c))
					goto bad;
				if (++bytes > 8192)
					goto bad;
			} while (c != '\r');
			NEED();
			if (in[pos++] != '\n')
				goto bad;
		}
	}
incomplete:
	res->status = INCOMPLETE;
	res->consumed = len;
	return;
bad:
	res->status = -400;
	return;
too_big:
	res->status = -413;
}

/* ---- the decoder, driven two ways ------------------------------------------------------------ */

typedef long (*decode_fn)(zh__chunked_t *, const char *, size_t, char *, size_t, size_t *,
			  uint64_t);

/* body.c's zh__body_feed: everything in one buffer, decoded in place. */
static void whole_in_place(decode_fn fn, const char *in, size_t len, uint64_t max_body,
			   result_t *res)
{
	zh__chunked_t c = {0};
	size_t produced = 0;
	long r;
	res->out = fz_dup(in, len);
	r = fn(&c, res->out, len, res->out, len, &produced, max_body);
	if (r < 0) {
		res->status = (int)r;
		return;
	}
	CHECK((size_t)r <= len, "consumed %ld of %zu", r, len);
	CHECK(produced <= (size_t)r, "produced %zu from %ld bytes", produced, r);
	res->out_len = produced;
	res->consumed = (size_t)r;
	res->status = zh__chunked_done(&c) ? DONE : INCOMPLETE;
	if (!zh__chunked_done(&c))
		CHECK((size_t)r == len, "stopped at %ld of %zu without finishing", r, len);
}

/* zh_body_read's streaming way: bytes arrive in pieces, each call gets the unconsumed ones
 * (in a fresh exact-size buffer) and an output window of a size of the split's choosing. */
static void pieces(decode_fn fn, const char *in, size_t len, uint64_t max_body,
		   fz_split_t *sp, result_t *res)
{
	zh__chunked_t c = {0};
	size_t have = 0, pos = 0;
	res->out = malloc(len + 1);
	res->out_len = 0;
	while (have < len) {
		size_t piece = fz_next_piece(sp);
		have += piece < len - have ? piece : len - have;
		for (;;) {
			size_t cap = fz_next_piece(sp), produced = 0, avail = have - pos;
			char *buf = fz_dup(in + pos, avail), *out = malloc(cap);
			long r = fn(&c, buf, avail, out, cap, &produced, max_body);
			if (r < 0) {
				free(buf);
				free(out);
				res->status = (int)r;
				return;
			}
			CHECK((size_t)r <= avail && produced <= (size_t)r && produced <= cap,
			      "consumed %ld of %zu, produced %zu (window %zu)", r, avail, produced,
			      cap);
			if (!zh__chunked_done(&c) && produced < cap)
				CHECK((size_t)r == avail, "stopped at %ld of %zu with room left", r,
				      avail);
			memcpy(res->out + res->out_len, out, produced);
			res->out_len += produced;
			pos += (size_t)r;
			free(buf);
			free(out);
			if (zh__chunked_done(&c)) {
				res->status = DONE;
				res->consumed = pos;
				return;
			}
			if (pos == have)
				break;
		}
	}
	res->status = INCOMPLETE;
	res->consumed = pos;
}

static void compare(const result_t *a, const result_t *b, const char *what)
{
	CHECK(a->status == b->status, "%s: verdict %d vs %d", what, a->status, b->status);
	if (a->status < 0)
		return; /* data before an error is not reported by the decoder */
	CHECK(a->consumed == b->consumed, "%s: consumed %zu vs %zu", what, a->consumed,
	      b->consumed);
	CHECK(a->out_len == b->out_len && memcmp(a->out, b->out, a->out_len) == 0,
	      "%s: data differs (%zu vs %zu bytes)", what, a->out_len, b->out_len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fz_in_t in = {data, size};
	uint8_t mode = fz_u8(&in);
	fz_split_t sp = {fz_u64(&in)};
	uint64_t max_body = mode & 2 ? (uint64_t)(mode >> 2) : UINT64_MAX;
	const char *body = (const char *)in.p;
	size_t len = in.n;
	result_t ref = {0}, whole = {0}, scalar = {0}, split = {0};

	reference(body, len, max_body, &ref);
	whole_in_place(zh__chunked_decode, body, len, max_body, &whole);
	whole_in_place(zh__chunked_decode_scalar, body, len, max_body, &scalar);
	pieces(zh__chunked_decode, body, len, max_body, &sp, &split);
	compare(&ref, &whole, "reference vs whole");
	compare(&whole, &scalar, "SSE2 vs scalar");
	compare(&whole, &split, "whole vs pieces");
	if (whole.status == DONE || whole.status == INCOMPLETE)
		CHECK(whole.out_len <= whole.consumed, "more data than input");
	free(ref.out);
	free(whole.out);
	free(scalar.out);
	free(split.out);
	return 0;
}
