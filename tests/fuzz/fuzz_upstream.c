/* fuzz_upstream.c — libFuzzer target for the reverse proxy's upstream side
 * (src/upstream_parse.c): the strict response-head parser and the chunked body decoder.
 *
 * Input: byte 0 holds flags (bit 0: the request was HEAD; bit 1: also decode what follows
 * the head as a chunked body, in pieces of (byte 0 >> 2) + 1 bytes), the rest is what the
 * upstream sent (any bytes).
 *
 * Checked:
 *  - the parser stays inside the bytes (an exact-size copy: ASan sees any read past it)
 *    and is deterministic;
 *  - a head it accepts is exactly the bytes up to the first CRLF CRLF, holds no bare LF,
 *    no CR outside CRLF and no NUL, and every field lies inside it with a token name;
 *  - its framing is one of the four, never both a length and chunked (a head with both
 *    fields is refused), and a HEAD, 1xx, 204 or 304 has no body;
 *  - the chunked decoder reports runs inside each piece, in order, consumes the whole
 *    piece unless it finished, and gives the same bytes whatever the piece size.
 */
#include "upstream_int.h"

#include "fuzz_common.h"

static size_t decode(const char *p, size_t n, size_t step, char *out, bool *ok)
{
	zh__uchunk_t d = {0};
	size_t pos = 0, o = 0;
	*ok = true;
	while (pos < n && !zh__uchunk_done(&d)) {
		size_t len = n - pos < step ? n - pos : step;
		zh__urun_t runs[8];
		unsigned nr = 0;
		ssize_t r = zh__uchunk_feed(&d, p + pos, len, runs, &nr, 8);
		uint32_t last = 0;
		if (r < 0) {
			*ok = false;
			return o;
		}
		CHECK((size_t)r <= len);
		CHECK((size_t)r == len || zh__uchunk_done(&d) || nr == 8);
		for (unsigned i = 0; i < nr; i++) {
			CHECK(runs[i].off >= last && runs[i].off + runs[i].len <= (size_t)r);
			last = runs[i].off + runs[i].len;
			memcpy(out + o, p + pos + runs[i].off, runs[i].len);
			o += runs[i].len;
		}
		pos += (size_t)r;
	}
	return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static zh__uhead_t h, h2;
	char *buf;
	bool head_req;
	int r;
	if (size < 1)
		return 0;
	head_req = data[0] & 1;
	buf = malloc(size - 1 ? size - 1 : 1);
	CHECK(buf != NULL);
	memcpy(buf, data + 1, size - 1);
	r = zh__uresp_parse(buf, size - 1, head_req, &h);
	CHECK(r == zh__uresp_parse(buf, size - 1, head_req, &h2));
	if (r > 0) {
		const char *end = memmem(buf, size - 1, "\r\n\r\n", 4);
		CHECK(end && end + 4 - buf == r && (uint32_t)r == h.head_len);
		CHECK(memchr(buf, '\0', (size_t)r) == NULL);
		for (int i = 0; i < r; i++) {
			if (buf[i] == '\n')
				CHECK(i > 0 && buf[i - 1] == '\r');
			if (buf[i] == '\r')
				CHECK(i + 1 < r && buf[i + 1] == '\n');
		}
		CHECK(h.framing >= ZH__UF_NONE && h.framing <= ZH__UF_CLOSE);
		CHECK(h.status >= 100 && h.status <= 999);
		if (head_req || h.status < 200 || h.status == 204 || h.status == 304)
			CHECK(h.framing == ZH__UF_NONE);
		if (h.framing == ZH__UF_CLOSE)
			CHECK(!h.keep_alive);
		for (uint32_t i = 0; i < h.nfields; i++) {
			CHECK(h.f[i].nlen > 0 && h.f[i].noff + h.f[i].nlen < (uint32_t)r);
			CHECK(h.f[i].voff + h.f[i].vlen <= (uint32_t)r);
			for (uint32_t k = 0; k < h.f[i].nlen; k++)
				CHECK(zh__token_char[(unsigned char)buf[h.f[i].noff + k]]);
		}
		if (data[0] & 2) {
			size_t n = size - 1 - (size_t)r, step = (size_t)(data[0] >> 2) + 1, a, b;
			char *o1 = malloc(n + 1), *o2 = malloc(n + 1);
			bool ok1, ok2;
			CHECK(o1 && o2);
			a = decode(buf + r, n, n ? n : 1, o1, &ok1);
			b = decode(buf + r, n, step, o2, &ok2);
			CHECK(ok1 == ok2);
			if (ok1)
				CHECK(a == b && memcmp(o1, o2, a) == 0);
			free(o1);
			free(o2);
		}
	}
	free(buf);
	return 0;
}
