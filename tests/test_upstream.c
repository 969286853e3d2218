/* test_upstream.c — src/upstream_parse.c: the reverse proxy's strict parser of upstream
 * response heads (framing decisions and refusals, table-driven), the chunked body decoder
 * (whole and byte by byte, malformed framing) and the hop-by-hop field list.
 */
#include <criterion/criterion.h>

#include "upstream_int.h"

#include <stdio.h>
#include <string.h>

static zh__uhead_t h;

static int parse(const char *s, bool head)
{
	return zh__uresp_parse(s, strlen(s), head, &h);
}

Test(upstream, framing_decisions)
{
	static const struct {
		const char *in;
		bool head;
		int framing;
		uint64_t len;
		bool keep;
	} ok[] = {
		{"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", false, ZH__UF_LENGTH, 5, true},
		{"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n", false, ZH__UF_LENGTH, 5, true},
		{"HTTP/1.1 200 OK\r\nContent-Length: 7\r\nContent-Length: 7\r\n\r\n", false,
		 ZH__UF_LENGTH, 7, true},
		{"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false, ZH__UF_NONE, 0, true},
		{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false, ZH__UF_CHUNKED, 0,
		 true},
		{"HTTP/1.1 200 OK\r\nTransfer-Encoding: CHUNKED\r\n\r\n", false, ZH__UF_CHUNKED, 0,
		 true},
		{"HTTP/1.1 200 OK\r\n\r\n", false, ZH__UF_CLOSE, 0, false},
		{"HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 1\r\n\r\n", false,
		 ZH__UF_LENGTH, 1, false},
		{"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", false, ZH__UF_LENGTH, 1, false},
		{"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n", true, ZH__UF_NONE, 1234, true},
		{"HTTP/1.1 204 No Content\r\n\r\n", false, ZH__UF_NONE, 0, true},
		{"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n", false, ZH__UF_NONE, 9,
		 true},
		{"HTTP/1.1 100 Continue\r\n\r\n", false, ZH__UF_NONE, 0, true},
		{"HTTP/1.1 200\r\nContent-Length: 1\r\n\r\n", false, ZH__UF_LENGTH, 1, true},
		{"HTTP/1.1 200 OK\r\nX-A:\r\nX-B: \t v \t\r\nContent-Length: 1\r\n\r\n", false,
		 ZH__UF_LENGTH, 1, true},
	};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		int r = parse(ok[i].in, ok[i].head);
		cr_assert_eq(r, (int)strlen(ok[i].in), "case %zu: %d", i, r);
		cr_assert_eq(h.framing, ok[i].framing, "case %zu", i);
		cr_assert_eq(h.length, ok[i].len, "case %zu", i);
		cr_assert_eq(h.keep_alive, ok[i].keep, "case %zu", i);
	}
	cr_assert_eq(parse("HTTP/1.1 200 OK\r\nX-B: \t v \t\r\n\r\n", false), 31);
	cr_assert_eq(h.nfields, 1);
	cr_assert_eq(h.f[0].vlen, 1); /* OWS trimmed */
}

Test(upstream, ambiguous_or_malformed_heads_are_refused)
{
	static const char *const bad[] = {
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 5x\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunkedx\r\n\r\n",
		"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
		"HTTP/1.1 200 OK\nContent-Length: 5\n\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 5\n\r\n",
		"HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\n",
		"HTTP/1.1 200 OK\r\n: empty name\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX-A: a\rb\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX-A: a\x01" "b\r\n\r\n",
		"HTTP/1.1 200 OK\r\nNoColon\r\n\r\n",
		"HTTP/1.1 2000 OK\r\n\r\n",
		"HTTP/1.1 20 OK\r\n\r\n",
		"HTTP/1.1 099 OK\r\n\r\n",
		"HTTP/1.2 200 OK\r\n\r\n",
		"HTTP/2.0 200 OK\r\n\r\n",
		"http/1.1 200 OK\r\n\r\n",
		"HTTP/1.1  200 OK\r\n\r\n",
		"HTTP/1.1 200 OK\x7f\r\n\r\n",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		cr_assert_eq(parse(bad[i], false), -1, "case %zu: %s", i, bad[i]);
	/* with a NUL inside: strlen would stop there */
	static const char nul[] = "HTTP/1.1 200 OK\r\nX-A: a\0b\r\n\r\n";
	cr_assert_eq(zh__uresp_parse(nul, sizeof nul - 1, false, &h), -1);
}

Test(upstream, incomplete_heads_ask_for_more)
{
	const char *full = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\n";
	for (size_t n = 0; n < strlen(full); n++)
		cr_assert_eq(zh__uresp_parse(full, n, false, &h), 0, "prefix %zu", n);
	cr_assert_eq(zh__uresp_parse(full, strlen(full), false, &h), (int)strlen(full));
	/* a bare LF is refused as soon as it is seen, not when the head completes */
	cr_assert_eq(zh__uresp_parse("HTTP/1.1 200 OK\n", 16, false, &h), -1);
}

Test(upstream, too_many_fields)
{
	char buf[8192];
	size_t n = (size_t)snprintf(buf, sizeof buf, "HTTP/1.1 200 OK\r\n");
	for (int i = 0; i < ZH__UP_FIELDS_MAX; i++)
		n += (size_t)snprintf(buf + n, sizeof buf - n, "X-%d: v\r\n", i);
	memcpy(buf + n, "\r\n", 3);
	cr_assert_gt(parse(buf, false), 0);
	memcpy(buf + n, "X-Last: v\r\n\r\n", 14);
	cr_assert_eq(parse(buf, false), -1);
}

/* Decodes in pieces of step bytes; the data as text, or "ERR". */
static const char *dechunk(const char *in, size_t step, size_t *consumed)
{
	static char out[4096];
	zh__uchunk_t d = {0};
	size_t n = strlen(in), pos = 0, o = 0;
	while (pos < n && !zh__uchunk_done(&d)) {
		size_t len = n - pos < step ? n - pos : step;
		zh__urun_t runs[4];
		unsigned nr = 0;
		ssize_t r = zh__uchunk_feed(&d, in + pos, len, runs, &nr, 4);
		if (r < 0)
			return "ERR";
		for (unsigned i = 0; i < nr; i++) {
			memcpy(out + o, in + pos + runs[i].off, runs[i].len);
			o += runs[i].len;
		}
		pos += (size_t)r;
	}
	out[o] = '\0';
	*consumed = pos;
	return zh__uchunk_done(&d) ? out : "INCOMPLETE";
}

Test(upstream, chunked_decoder)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{"5\r\nhello\r\n0\r\n\r\n", "hello"},
		{"5;a=b;c=\"d\"\r\nhello\r\n6 ; x\r\n world\r\n0\r\n\r\n", "hello world"},
		{"A\r\n0123456789\r\na\r\nabcdefghij\r\n0\r\nX-T: 1\r\nX-U: 2\r\n\r\n",
		 "0123456789abcdefghij"},
		{"0\r\n\r\n", ""},
		{"000\r\n\r\n", ""},
		{"5\r\nhello\r\n0\r\n", "INCOMPLETE"},
		{"5\r\nhello\n0\r\n\r\n", "ERR"},
		{"5\nhello\r\n0\r\n\r\n", "ERR"},
		{"5\r\nhelloX\r\n0\r\n\r\n", "ERR"},
		{"-5\r\nhello\r\n0\r\n\r\n", "ERR"},
		{"\r\nhello\r\n0\r\n\r\n", "ERR"},
		{"5x\r\nhello\r\n0\r\n\r\n", "ERR"},
		{"1000000000000000\r\n", "ERR"},
		{"5\r\nhello\r\n0\r\nX T\r\n\r\n", "ERR"},
		{"5\r\nhello\r\n0\r\n bad\r\n\r\n", "ERR"},
		{"5;\x01\r\nhello\r\n0\r\n\r\n", "ERR"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		for (size_t step = 1; step <= 64; step *= 4) {
			size_t used;
			cr_assert_str_eq(dechunk(cases[i].in, step, &used), cases[i].out,
					 "case %zu step %zu", i, step);
		}
	/* bytes after the last chunk are not consumed: the caller sees them */
	size_t used;
	cr_assert_str_eq(dechunk("1\r\na\r\n0\r\n\r\nHTTP/1.1 200 OK\r\n", 100, &used), "a");
	cr_assert_eq(used, 11);
}

Test(upstream, chunked_runs_fill_up)
{
	/* more data runs than the caller has room for: feeding stops and resumes */
	const char *in = "1\r\na\r\n1\r\nb\r\n1\r\nc\r\n0\r\n\r\n";
	zh__uchunk_t d = {0};
	zh__urun_t runs[1];
	unsigned nr = 0;
	size_t pos = 0;
	char got[8] = {0};
	int k = 0;
	while (!zh__uchunk_done(&d)) {
		ssize_t r;
		nr = 0;
		r = zh__uchunk_feed(&d, in + pos, strlen(in) - pos, runs, &nr, 1);
		cr_assert_geq(r, 0);
		if (nr)
			got[k++] = in[pos + runs[0].off];
		pos += (size_t)r;
	}
	cr_assert_str_eq(got, "abc");
}

Test(upstream, hop_by_hop_names)
{
	static const char *const hop[] = {"Connection", "keep-alive", "TE", "Trailer",
					  "Transfer-Encoding", "Upgrade", "Proxy-Authorization",
					  "proxy-connection"};
	static const char *const e2e[] = {"Content-Type", "Trailers", "T", "Proxy", "Host",
					  "X-Connection"};
	for (size_t i = 0; i < sizeof hop / sizeof hop[0]; i++)
		cr_assert(zh__uhop_by_hop(hop[i], strlen(hop[i])), "%s", hop[i]);
	for (size_t i = 0; i < sizeof e2e / sizeof e2e[0]; i++)
		cr_assert_not(zh__uhop_by_hop(e2e[i], strlen(e2e[i])), "%s", e2e[i]);
}
