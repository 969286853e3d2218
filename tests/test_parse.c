/* test_parse.c — table-driven unit tests for src/parse.c: the request head parser
 * (zh__parse_head), the chunked decoder (zh__chunked_decode) and the byte-class helpers.
 *
 * Every input is placed so that its last byte is the last byte before a PROT_NONE page:
 * reading (or writing) one byte past what the caller handed over crashes the test.
 *
 * Head rows are run three ways: (a) the whole input in one call, (b) growing prefixes
 * 1, 2, ... n bytes (each call relocates the buffer: the parser keeps offsets, not
 * pointers), (c) every two-call split. Chunked rows are run whole (separate output and in
 * place), one byte per call, with a 3-byte output buffer, and in place with a 3-byte cap.
 *
 *   gcc -std=c11 -Wall -Wextra -O1 -g -Iinclude -Isrc tests/test_parse.c src/parse.c \
 *       -lcriterion -o /tmp/test_parse && /tmp/test_parse
 */
#define _DEFAULT_SOURCE
#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

/* ---- guarded memory ------------------------------------------------------------------------ */

/* size writable bytes ending exactly at a PROT_NONE page. */
static void *guarded(size_t size)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	size_t span = (size + pg - 1) / pg * pg;
	if (span == 0)
		span = pg;
	char *m = mmap(NULL, span + pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	cr_assert(m != MAP_FAILED, "mmap failed");
	cr_assert(mprotect(m + span, pg, PROT_NONE) == 0, "mprotect failed");
	return m + span - size;
}

enum { ARENA = 1 << 20 };

static char *arena_end(int which)
{
	static char *end[2];
	if (!end[which])
		end[which] = (char *)guarded(ARENA) + ARENA;
	return end[which];
}

/* Copies n bytes of src so that they end right before the guard page of the input arena. */
static char *at_guard(const void *src, size_t n)
{
	cr_assert(n <= ARENA);
	char *p = arena_end(0) - n;
	memmove(p, src, n);
	return p;
}

/* n writable bytes ending before the guard page of the output arena (poisoned with 0xAA). */
static char *out_guard(size_t n)
{
	cr_assert(n <= ARENA);
	char *p = arena_end(1) - n;
	memset(p, 0xAA, n);
	return p;
}

/* A fields array of exactly n entries, ending at a guard page: writing field n+1 crashes. */
static zh__field_t *field_slots(uint32_t n)
{
	static struct {
		uint32_t n;
		zh__field_t *p;
	} cache[8];
	for (int i = 0; i < 8; i++) {
		if (cache[i].p && cache[i].n == n)
			return cache[i].p;
		if (!cache[i].p) {
			cache[i].n = n;
			cache[i].p = guarded(sizeof(zh__field_t) * n);
			return cache[i].p;
		}
	}
	cr_assert_fail("field_slots cache full");
	return NULL;
}

/* Criterion runs each test in a fresh process of this binary, so parameters are passed as
 * row indices: pointers inside a parameter would not survive the trip. */
#define ROW_INDICES(table)                                                                     \
	do {                                                                                   \
		static size_t idx_[sizeof(table) / sizeof((table)[0])];                        \
		for (size_t i_ = 0; i_ < sizeof idx_ / sizeof idx_[0]; i_++)                   \
			idx_[i_] = i_;                                                         \
		return cr_make_param_array(size_t, idx_, sizeof idx_ / sizeof idx_[0]);        \
	} while (0)

/* ---- head parser: tables -------------------------------------------------------------------- */

static const zh__limits_t default_limits = {
	.max_request_line = 1024, .max_header_bytes = 4096, .max_headers = 16};
static const zh__limits_t small_limits = {
	.max_request_line = 32, .max_header_bytes = 64, .max_headers = 3};

typedef struct head_row {
	const char *desc;
	const char *raw;
	size_t raw_len;
	int expect;		   /* head length (> 0), 0 = needs more bytes, or -status */
	const zh__limits_t *lim;   /* NULL: default_limits */
	/* accepted requests: */
	const char *method;
	unsigned method_bit;
	const char *target;	   /* NULL: not checked */
	const char *path, *query, *host;
	uint8_t minor;
	uint64_t content_length;
	uint32_t flags;		   /* exact ZH__H_* set */
	const char *fields;	   /* "name=value\n" per field, in order; NULL: not checked */
} head_row_t;

#define RAW(s) .raw = (s), .raw_len = sizeof(s) - 1
/* head is the whole input; its length is the expected result */
#define ACCEPT(d, head) .desc = (d), RAW(head), .expect = (int)(sizeof(head) - 1)
/* bytes after the head (a body, a pipelined request) must not be counted */
#define ACCEPT_TAIL(d, head, tail)                                                             \
	.desc = (d), RAW(head tail), .expect = (int)(sizeof(head) - 1)
#define REJECT(d, s, status) .desc = (d), RAW(s), .expect = -(status)
#define NEED_MORE(d, s) .desc = (d), RAW(s), .expect = 0
#define REQ(m, mb, tgt, p, q, hst, mi, cl, fl, flds)                                           \
	.method = (m), .method_bit = (mb), .target = (tgt), .path = (p), .query = (q),         \
	.host = (hst), .minor = (mi), .content_length = (cl), .flags = (fl), .fields = (flds)

#define HOST ZH__H_HOST
#define CL ZH__H_CL
#define CHUNKED ZH__H_CHUNKED
#define CLOSE ZH__H_CLOSE
#define KA ZH__H_KEEPALIVE
#define EXPECT100 ZH__H_EXPECT_CONTINUE
#define ABS ZH__H_ABSOLUTE
#define STAR ZH__H_ASTERISK

#define GET11 "GET / HTTP/1.1\r\n"
#define HOST_H "Host: h\r\n"
#define A10 "aaaaaaaaaa"
#define A50 A10 A10 A10 A10 A10

static head_row_t accept_rows[] = {
	{ACCEPT("simple GET, HTTP/1.1 with Host",
		"GET /index.html HTTP/1.1\r\nHost: example.com\r\n\r\n"),
	 REQ("GET", ZH_GET, "/index.html", "/index.html", "", "example.com", 1, 0, HOST,
	     "Host=example.com\n")},
	{ACCEPT("origin-form with a query: path ends at '?'",
		"GET /search?q=a&b=c HTTP/1.1\r\nHost: h\r\n\r\n"),
	 REQ("GET", ZH_GET, "/search?q=a&b=c", "/search", "q=a&b=c", "h", 1, 0, HOST, NULL)},
	{ACCEPT("query keeps later '?' and '/'", "GET /a?b?c/d HTTP/1.1\r\nHost: h\r\n\r\n"),
	 REQ("GET", ZH_GET, "/a?b?c/d", "/a", "b?c/d", "h", 1, 0, HOST, NULL)},
	{ACCEPT("empty query after a trailing '?'", "GET /a? HTTP/1.1\r\nHost: h\r\n\r\n"),
	 REQ("GET", ZH_GET, "/a?", "/a", "", "h", 1, 0, HOST, NULL)},
	{ACCEPT("HTTP/1.0 without Host is fine", "GET / HTTP/1.0\r\n\r\n"),
	 REQ("GET", ZH_GET, "/", "/", "", "", 0, 0, 0, "")},
	{ACCEPT("HTTP/1.2: a higher minor version is processed as 1.1 (RFC 9112 2.3)",
		"GET / HTTP/1.2\r\nHost: h\r\n\r\n"),
	 REQ("GET", ZH_GET, "/", "/", "", "h", 1, 0, HOST, "Host=h\n")},
	{ACCEPT("HTTP/1.9 is processed as 1.1", "GET / HTTP/1.9\r\nHost: h\r\n\r\n"),
	 REQ("GET", ZH_GET, "/", "/", "", "h", 1, 0, HOST, "Host=h\n")},
	{ACCEPT("HTTP/1.0 with Connection: keep-alive",
		"GET /x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"),
	 REQ("GET", ZH_GET, "/x", "/x", "", "", 0, 0, KA, "Connection=keep-alive\n")},
	{ACCEPT("absolute-form http://host:8080/p?q: host from the target, not the Host field",
		"GET http://host:8080/p?q HTTP/1.1\r\nHost: other.example\r\n\r\n"),
	 REQ("GET", ZH_GET, "http://host:8080/p?q", "/p", "q", "host:8080", 1, 0, HOST | ABS,
	     "Host=other.example\n")},
	{ACCEPT("absolute-form, upper-case HTTPS scheme, host case kept",
		"GET HTTPS://Example.COM/x/y HTTP/1.1\r\nHost: example.com\r\n\r\n"),
	 REQ("GET", ZH_GET, "HTTPS://Example.COM/x/y", "/x/y", "", "Example.COM", 1, 0,
	     HOST | ABS, NULL)},
	{ACCEPT("absolute-form in HTTP/1.0 needs no Host field", "GET http://h/ HTTP/1.0\r\n\r\n"),
	 REQ("GET", ZH_GET, "http://h/", "/", "", "h", 0, 0, ABS, "")},
	{ACCEPT("absolute-form with an IPv6 literal authority",
		"GET http://[::1]:8080/p HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n"),
	 REQ("GET", ZH_GET, "http://[::1]:8080/p", "/p", "", "[::1]:8080", 1, 0, HOST | ABS,
	     NULL)},
	{ACCEPT("OPTIONS * (asterisk-form)", "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n"),
	 REQ("OPTIONS", ZH_OPTIONS, "*", "*", "", "h", 1, 0, HOST | STAR, NULL)},
	{ACCEPT("one empty line before the request line is skipped (and counted)",
		"\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n"),
	 REQ("GET", ZH_GET, "/", "/", "", "h", 1, 0, HOST, "Host=h\n")},
	{ACCEPT("four empty lines before the request line are skipped",
		"\r\n\r\n\r\n\r\nPOST /f HTTP/1.1\r\nHost: h\r\n\r\n"),
	 REQ("POST", ZH_POST, "/f", "/f", "", "h", 1, 0, HOST, NULL)},
	{ACCEPT("value with internal spaces, tabs and obs-text (bytes >= 0x80)",
		GET11 HOST_H "X-Text: a b\tc \x80\xff"
			     "z\r\n\r\n"),
	 REQ("GET", ZH_GET, "/", "/", "", "h", 1, 0, HOST,
	     "Host=h\nX-Text=a b\tc \x80\xff"
	     "z\n")},
	{ACCEPT("long value (> 16 bytes: SIMD path) with tabs, UTF-8 and DEL-free obs-text",
		GET11 HOST_H "User-Agent: Mozilla/5.0 (X11; Linux x86_64)\tGecko/2010 "
			     "\xc3\xa9\xe2\x82\xac\xff end\r\n\r\n"),
	 REQ("GET", ZH_GET, "/", "/", "", "h", 1, 0, HOST,
	     "Host=h\nUser-Agent=Mozilla/5.0 (X11; Linux x86_64)\tGecko/2010 "
	     "\xc3\xa9\xe2\x82\xac\xff end\n")},
	{ACCEPT("OWS (spaces and tabs) trimmed around values, internal whitespace kept",
		GET11 HOST_H "X-A:   v  v \t \r\nX-B:\tw\r\nX-C:x\r\n\r\n"),
	 REQ("GET", ZH_GET, "/", "/", "", "h", 1, 0, HOST, "Host=h\nX-A=v  v\nX-B=w\nX-C=x\n")},
	{ACCEPT("empty and whitespace-only values become empty",
		GET11 HOST_H "X-Empty:\r\nX-Blank: \t \r\n\r\n"),
	 REQ("GET", ZH_GET, "/", "/", "", "h", 1, 0, HOST, "Host=h\nX-Empty=\nX-Blank=\n")},
	{ACCEPT("field name made of every tchar", GET11 HOST_H "!#$%&'*+-.^_`|~09AZaz: v\r\n\r\n"),
	 REQ("GET", ZH_GET, "/", "/", "", "h", 1, 0, HOST, "Host=h\n!#$%&'*+-.^_`|~09AZaz=v\n")},
	{ACCEPT("Host field name is case-insensitive", "GET / HTTP/1.1\r\nhOsT: H.example\r\n\r\n"),
	 REQ("GET", ZH_GET, "/", "/", "", "H.example", 1, 0, HOST, "hOsT=H.example\n")},
	{ACCEPT_TAIL("repeated identical Content-Length; body not counted in the head",
		     "POST /u HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\n",
		     "hello"),
	 REQ("POST", ZH_POST, "/u", "/u", "", "h", 1, 5, HOST | CL,
	     "Host=h\nContent-Length=5\ncontent-length=5\n")},
	{ACCEPT("Content-Length with leading zeros",
		"PUT /u HTTP/1.1\r\nHost: h\r\nContent-Length: 007\r\n\r\n"),
	 REQ("PUT", ZH_PUT, "/u", "/u", "", "h", 1, 7, HOST | CL, NULL)},
	{ACCEPT("Content-Length: 0 still sets the CL flag",
		"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n"),
	 REQ("POST", ZH_POST, "/", "/", "", "h", 1, 0, HOST | CL, NULL)},
	{ACCEPT("Content-Length 2^64-1 parses (max_body is the body layer's job)",
		"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 18446744073709551615\r\n\r\n"),
	 REQ("POST", ZH_POST, "/", "/", "", "h", 1, UINT64_MAX, HOST | CL, NULL)},
	{ACCEPT("Transfer-Encoding: chunked",
		"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"),
	 REQ("POST", ZH_POST, "/", "/", "", "h", 1, 0, HOST | CHUNKED, NULL)},
	{ACCEPT("Transfer-Encoding: CHUNKED (upper case)",
		"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: CHUNKED\r\n\r\n"),
	 REQ("POST", ZH_POST, "/", "/", "", "h", 1, 0, HOST | CHUNKED, NULL)},
	{ACCEPT("tRaNsFeR-eNcOdInG: ChUnKeD (mixed case name and value)",
		"POST / HTTP/1.1\r\nHost: h\r\ntRaNsFeR-eNcOdInG: ChUnKeD\r\n\r\n"),
	 REQ("POST", ZH_POST, "/", "/", "", "h", 1, 0, HOST | CHUNKED, NULL)},
	{ACCEPT("Transfer-Encoding list with empty elements around chunked",
		"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: , chunked ,\r\n\r\n"),
	 REQ("POST", ZH_POST, "/", "/", "", "h", 1, 0, HOST | CHUNKED, NULL)},
	{ACCEPT("Connection: close", GET11 HOST_H "Connection: close\r\n\r\n"),
	 REQ("GET", ZH_GET, "/", "/", "", "h", 1, 0, HOST | CLOSE, NULL)},
	{ACCEPT("Connection: keep-alive", GET11 HOST_H "Connection: keep-alive\r\n\r\n"),
	 REQ("GET", ZH_GET, "/", "/", "", "h", 1, 0, HOST | KA, NULL)},
	{ACCEPT("Connection list 'Upgrade, Close' (case-insensitive)",
		GET11 HOST_H "Connection: Upgrade, Close\r\n\r\n"),
	 REQ("GET", ZH_GET, "/", "/", "", "h", 1, 0, HOST | CLOSE | ZH__H_UPGRADE, NULL)},
	{ACCEPT("Connection list 'keep-alive, UPGRADE' (zh_resp_upgrade's condition)",
		GET11 HOST_H "Connection: keep-alive, UPGRADE\r\n\r\n"),
	 REQ("GET", ZH_GET, "/", "/", "", "h", 1, 0, HOST | KA | ZH__H_UPGRADE, NULL)},
	{ACCEPT("Connection list 'close,keep-alive' sets both",
		GET11 HOST_H "Connection: close,keep-alive\r\n\r\n"),
	 REQ("GET", ZH_GET, "/", "/", "", "h", 1, 0, HOST | CLOSE | KA, NULL)},
	{ACCEPT("Connection options are whole tokens: 'closed, keep-alives' sets nothing",
		GET11 HOST_H "Connection: closed, keep-alives\r\n\r\n"),
	 REQ("GET", ZH_GET, "/", "/", "", "h", 1, 0, HOST, NULL)},
	{ACCEPT("two Connection fields accumulate",
		GET11 HOST_H "Connection: keep-alive\r\nConnection: \t close \t\r\n\r\n"),
	 REQ("GET", ZH_GET, "/", "/", "", "h", 1, 0, HOST | KA | CLOSE, NULL)},
	{ACCEPT("Expect: 100-continue",
		"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n"),
	 REQ("POST", ZH_POST, "/", "/", "", "h", 1, 3, HOST | CL | EXPECT100, NULL)},
	{ACCEPT("Expect: 100-Continue is case-insensitive",
		"POST / HTTP/1.1\r\nHost: h\r\nexpect: 100-Continue\r\nContent-Length: 3\r\n\r\n"),
	 REQ("POST", ZH_POST, "/", "/", "", "h", 1, 3, HOST | CL | EXPECT100, NULL)},
	{ACCEPT("Expect: 100-continue in HTTP/1.0 is ignored (RFC 9110 10.1.1)",
		"POST / HTTP/1.0\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n"),
	 REQ("POST", ZH_POST, "/", "/", "", "", 0, 3, CL, NULL)},
	{ACCEPT("empty Host value", "GET / HTTP/1.1\r\nHost:\r\n\r\n"),
	 REQ("GET", ZH_GET, "/", "/", "", "", 1, 0, HOST, "Host=\n")},
	{ACCEPT("IPv6 literal Host [::1]:80", "GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n"),
	 REQ("GET", ZH_GET, "/", "/", "", "[::1]:80", 1, 0, HOST, NULL)},
	{ACCEPT("IPv6 literal Host without port", "GET / HTTP/1.1\r\nHost: [2001:db8::1]\r\n\r\n"),
	 REQ("GET", ZH_GET, "/", "/", "", "[2001:db8::1]", 1, 0, HOST, NULL)},
	{ACCEPT("IPv4 Host with port", "GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"),
	 REQ("GET", ZH_GET, "/", "/", "", "127.0.0.1:8080", 1, 0, HOST, NULL)},
	{ACCEPT("Host with a pct-encoded reg-name", "GET / HTTP/1.1\r\nHost: ex%41mple.com\r\n\r\n"),
	 REQ("GET", ZH_GET, "/", "/", "", "ex%41mple.com", 1, 0, HOST, NULL)},
	{ACCEPT("Host with an empty port ('h:')", "GET / HTTP/1.1\r\nHost: h:\r\n\r\n"),
	 REQ("GET", ZH_GET, "/", "/", "", "h:", 1, 0, HOST, NULL)},
	{ACCEPT("percent-encoded path is kept as sent (not decoded)",
		"GET /a%20b/%E2%82%ac HTTP/1.1\r\nHost: h\r\n\r\n"),
	 REQ("GET", ZH_GET, "/a%20b/%E2%82%ac", "/a%20b/%E2%82%ac", "", "h", 1, 0, HOST, NULL)},
	{ACCEPT("path with every sub-delim plus ':' and '@'",
		"GET /a!$&'()*+,;=:@-._~/b HTTP/1.1\r\nHost: h\r\n\r\n"),
	 REQ("GET", ZH_GET, "/a!$&'()*+,;=:@-._~/b", "/a!$&'()*+,;=:@-._~/b", "", "h", 1, 0,
	     HOST, NULL)},
	{ACCEPT("HEAD", "HEAD /x HTTP/1.1\r\nHost: h\r\n\r\n"),
	 REQ("HEAD", ZH_HEAD, "/x", "/x", "", "h", 1, 0, HOST, NULL)},
	{ACCEPT("PUT", "PUT /x HTTP/1.1\r\nHost: h\r\n\r\n"),
	 REQ("PUT", ZH_PUT, "/x", "/x", "", "h", 1, 0, HOST, NULL)},
	{ACCEPT("DELETE", "DELETE /x HTTP/1.1\r\nHost: h\r\n\r\n"),
	 REQ("DELETE", ZH_DELETE, "/x", "/x", "", "h", 1, 0, HOST, NULL)},
	{ACCEPT("PATCH", "PATCH /x HTTP/1.1\r\nHost: h\r\n\r\n"),
	 REQ("PATCH", ZH_PATCH, "/x", "/x", "", "h", 1, 0, HOST, NULL)},
	{ACCEPT("TRACE", "TRACE /x HTTP/1.1\r\nHost: h\r\n\r\n"),
	 REQ("TRACE", ZH_TRACE, "/x", "/x", "", "h", 1, 0, HOST, NULL)},
	{ACCEPT("OPTIONS with a path", "OPTIONS /x HTTP/1.1\r\nHost: h\r\n\r\n"),
	 REQ("OPTIONS", ZH_OPTIONS, "/x", "/x", "", "h", 1, 0, HOST, NULL)},
	{ACCEPT_TAIL("pipelined: the next request is not part of this head",
		     "GET /a HTTP/1.1\r\nHost: h\r\n\r\n", "GET /next HTTP/1.1\r\nHost: h\r\n\r\n"),
	 REQ("GET", ZH_GET, "/a", "/a", "", "h", 1, 0, HOST, "Host=h\n")},
	{ACCEPT_TAIL("pipelined garbage after the head does not matter",
		     "GET /a HTTP/1.1\r\nHost: h\r\n\r\n", "\x01\n\r\0 garbage"),
	 REQ("GET", ZH_GET, "/a", "/a", "", "h", 1, 0, HOST, "Host=h\n")},
	{ACCEPT("unknown fields are kept in arrival order, names as sent",
		"GET / HTTP/1.1\r\nX-One: 1\r\nHost: h\r\nx-two: 2\r\nX-ONE: 3\r\n\r\n"),
	 REQ("GET", ZH_GET, "/", "/", "", "h", 1, 0, HOST,
	     "X-One=1\nHost=h\nx-two=2\nX-ONE=3\n")},
};

static head_row_t reject_rows[] = {
	{REJECT("HTTP/1.1 without Host", "GET / HTTP/1.1\r\nX: y\r\n\r\n", 400)},
	{REJECT("HTTP/1.1 absolute-form without Host field", "GET http://h/ HTTP/1.1\r\n\r\n", 400)},
	{REJECT("two Host fields", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400)},
	{REJECT("two identical Host fields", "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400)},
	{REJECT("Host with a space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400)},
	{REJECT("Host with '/'", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400)},
	{REJECT("Host with userinfo '@'", "GET / HTTP/1.1\r\nHost: u@h\r\n\r\n", 400)},
	{REJECT("Host with '?'", "GET / HTTP/1.1\r\nHost: h?x\r\n\r\n", 400)},
	{REJECT("Host with a non-digit port", "GET / HTTP/1.1\r\nHost: h:8o\r\n\r\n", 400)},
	{REJECT("Host with two colons", "GET / HTTP/1.1\r\nHost: a:1:2\r\n\r\n", 400)},
	{REJECT("Host IP-literal without ']'", "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", 400)},
	{REJECT("Host empty IP-literal '[]'", "GET / HTTP/1.1\r\nHost: []\r\n\r\n", 400)},
	{REJECT("Host IP-literal with 'g'", "GET / HTTP/1.1\r\nHost: [::g]\r\n\r\n", 400)},
	{REJECT("Host IP-literal followed by junk", "GET / HTTP/1.1\r\nHost: [::1]x\r\n\r\n", 400)},
	{REJECT("Host bad pct-encoding %zz", "GET / HTTP/1.1\r\nHost: a%zz\r\n\r\n", 400)},
	{REJECT("Host truncated pct-encoding %4", "GET / HTTP/1.1\r\nHost: a%4\r\n\r\n", 400)},
	{REJECT("Host with obs-text", "GET / HTTP/1.1\r\nHost: \xc3\xa9\r\n\r\n", 400)},
	{REJECT("absolute-form still validates the Host field",
		"GET http://h/ HTTP/1.1\r\nHost: a b\r\n\r\n", 400)},
	{REJECT("Content-Length and Transfer-Encoding: chunked",
		"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
		400)},
	{REJECT("Transfer-Encoding: chunked then Content-Length",
		"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
		400)},
	{REJECT("differing repeated Content-Length",
		"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400)},
	{REJECT("Content-Length '+5'", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\n",
		400)},
	{REJECT("Content-Length '-1'", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n",
		400)},
	{REJECT("Content-Length '5 5'", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5 5\r\n\r\n",
		400)},
	{REJECT("Content-Length list '5, 5'",
		"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\n\r\n", 400)},
	{REJECT("Content-Length '0x5'", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x5\r\n\r\n",
		400)},
	{REJECT("Content-Length '5a'", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5a\r\n\r\n",
		400)},
	{REJECT("Content-Length empty", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: \r\n\r\n",
		400)},
	{REJECT("Content-Length 99999999999999999999 overflows",
		"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999\r\n\r\n", 400)},
	{REJECT("Content-Length 2^64 overflows by one",
		"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 18446744073709551616\r\n\r\n", 400)},
	{REJECT("Transfer-Encoding: gzip is not implemented",
		"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", 501)},
	{REJECT("Transfer-Encoding: identity is not implemented",
		"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity\r\n\r\n", 501)},
	{REJECT("Transfer-Encoding: gzip, chunked",
		"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501)},
	{REJECT("Transfer-Encoding: chunked, chunked",
		"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400)},
	{REJECT("Transfer-Encoding: chunked, gzip (chunked not last)",
		"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400)},
	{REJECT("two Transfer-Encoding: chunked fields",
		"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: "
		"chunked\r\n\r\n",
		400)},
	{REJECT("Transfer-Encoding: chunked then a second field with gzip",
		"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: "
		"gzip\r\n\r\n",
		400)},
	{REJECT("Transfer-Encoding in HTTP/1.0",
		"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400)},
	{REJECT("Transfer-Encoding empty", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\r\n\r\n",
		400)},
	{REJECT("Transfer-Encoding with only empty list elements",
		"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: , ,\r\nContent-Length: 5\r\n\r\n",
		400)},
	{REJECT("Transfer-Encoding quoted \"chunked\"",
		"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: \"chunked\"\r\n\r\n", 400)},
	{REJECT("obs-fold (continuation line with SP)", GET11 HOST_H "X: a\r\n b\r\n\r\n", 400)},
	{REJECT("obs-fold (continuation line with HTAB)", GET11 HOST_H "X: a\r\n\tb\r\n\r\n", 400)},
	{REJECT("whitespace before the first field line", "GET / HTTP/1.1\r\n Host: h\r\n\r\n",
		400)},
	{REJECT("space before the colon", "GET / HTTP/1.1\r\nHost : h\r\n\r\n", 400)},
	{REJECT("tab before the colon", "GET / HTTP/1.1\r\nHost\t: h\r\n\r\n", 400)},
	{REJECT("field line without a colon", "GET / HTTP/1.1\r\nHost h\r\n\r\n", 400)},
	{REJECT("empty field name", GET11 HOST_H ": v\r\n\r\n", 400)},
	{REJECT("'(' in a field name", GET11 HOST_H "X(a): v\r\n\r\n", 400)},
	{REJECT("obs-text in a field name", GET11 HOST_H "X\xc3\xa9: v\r\n\r\n", 400)},
	{REJECT("NUL in a field name", GET11 HOST_H "X\0Y: v\r\n\r\n", 400)},
	{REJECT("bare CR inside a value", GET11 HOST_H "X: a\rb\r\n\r\n", 400)},
	{REJECT("bare CR ending the request line", "GET / HTTP/1.1\rHost: h\r\n\r\n", 400)},
	{REJECT("CR not followed by LF in the empty line", GET11 HOST_H "\rX\r\n\r\n", 400)},
	{REJECT("bare LF ending a field line", "GET / HTTP/1.1\r\nHost: h\n\r\n", 400)},
	{REJECT("bare LF ending the request line", "GET / HTTP/1.1\nHost: h\r\n\r\n", 400)},
	{REJECT("bare LF as the empty line", "GET / HTTP/1.1\r\nHost: h\r\n\n", 400)},
	{REJECT("bare LF before the request line", "\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", 400)},
	{REJECT("NUL in a value", GET11 HOST_H "X: a\0b\r\n\r\n", 400)},
	{REJECT("NUL in a long value after 16 bytes (SIMD path)",
		GET11 HOST_H "X: 0123456789abcdefghij\0klm\r\n\r\n", 400)},
	{REJECT("DEL in a value", GET11 HOST_H "X: a\x7f"
					       "b\r\n\r\n",
		400)},
	{REJECT("DEL in a long value (SIMD path)",
		GET11 HOST_H "X: 0123456789abcdefghijklmnopqrstu\x7fv\r\n\r\n", 400)},
	{REJECT("control 0x01 in a value", GET11 HOST_H "X: a\x01z\r\n\r\n", 400)},
	{REJECT("ESC in a value", GET11 HOST_H "X: \x1b[0m\r\n\r\n", 400)},
	{REJECT("NUL in the target", "GET /a\0b HTTP/1.1\r\nHost: h\r\n\r\n", 400)},
	{REJECT("NUL in the method", "G\0T / HTTP/1.1\r\nHost: h\r\n\r\n", 400)},
	{REJECT("control char in the method", "G\x01T / HTTP/1.1\r\nHost: h\r\n\r\n", 400)},
	{REJECT("empty method", " / HTTP/1.1\r\nHost: h\r\n\r\n", 400)},
	{REJECT("two spaces after the method", "GET  / HTTP/1.1\r\nHost: h\r\n\r\n", 400)},
	{REJECT("tab after the method", "GET\t/ HTTP/1.1\r\nHost: h\r\n\r\n", 400)},
	{REJECT("lowercase 'get' is a token but not a method we implement",
		"get / HTTP/1.1\r\nHost: h\r\n\r\n", 501)},
	{REJECT("unknown method FOO", "FOO / HTTP/1.1\r\nHost: h\r\n\r\n", 501)},
	{REJECT("unknown method GETS (prefix of a known one is not enough)",
		"GETS / HTTP/1.1\r\nHost: h\r\n\r\n", 501)},
	{REJECT("CONNECT is not implemented", "CONNECT / HTTP/1.1\r\nHost: h\r\n\r\n", 501)},
	{REJECT("authority-form target (CONNECT h:443)", "CONNECT h:443 HTTP/1.1\r\nHost: h\r\n\r\n",
		400)},
	{REJECT("HTTP/2.0 (another major version)", "GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505)},
	{REJECT("HTTP/3.0", "GET / HTTP/3.0\r\nHost: h\r\n\r\n", 505)},
	{REJECT("HTTP/1.2 is processed as 1.1, so it needs a Host (RFC 9112 2.3, 3.2)",
		"GET / HTTP/1.2\r\n\r\n", 400)},
	{REJECT("HTTP/01.1 (two-digit major)", "GET / HTTP/01.1\r\nHost: h\r\n\r\n", 400)},
	{REJECT("HTTP/1.1. (trailing dot)", "GET / HTTP/1.1.\r\nHost: h\r\n\r\n", 400)},
	{REJECT("HTTP/0.9", "GET / HTTP/0.9\r\nHost: h\r\n\r\n", 505)},
	{REJECT("HTTP/1.1x (garbage after the version)", "GET / HTTP/1.1x\r\nHost: h\r\n\r\n", 400)},
	{REJECT("space after the version", "GET / HTTP/1.1 \r\nHost: h\r\n\r\n", 400)},
	{REJECT("lowercase http/1.1", "GET / http/1.1\r\nHost: h\r\n\r\n", 400)},
	{REJECT("HTTP/1.10", "GET / HTTP/1.10\r\nHost: h\r\n\r\n", 400)},
	{REJECT("HTTP/1 (no minor)", "GET / HTTP/1\r\nHost: h\r\n\r\n", 400)},
	{REJECT("no version at all", "GET /\r\nHost: h\r\n\r\n", 400)},
	{REJECT("extra word after the version", "GET / HTTP/1.1 x\r\nHost: h\r\n\r\n", 400)},
	{REJECT("'#' in the target", "GET /a#frag HTTP/1.1\r\nHost: h\r\n\r\n", 400)},
	{REJECT("space inside the target", "GET /a b HTTP/1.1\r\nHost: h\r\n\r\n", 400)},
	{REJECT("bad percent-encoding %zz", "GET /a%zz HTTP/1.1\r\nHost: h\r\n\r\n", 400)},
	{REJECT("percent-encoding %4g", "GET /a%4g HTTP/1.1\r\nHost: h\r\n\r\n", 400)},
	{REJECT("truncated percent-encoding at the end", "GET /a%4 HTTP/1.1\r\nHost: h\r\n\r\n", 400)},
	{REJECT("lone '%' at the end", "GET /a% HTTP/1.1\r\nHost: h\r\n\r\n", 400)},
	{REJECT("bad percent-encoding in the query", "GET /a?x=%g0 HTTP/1.1\r\nHost: h\r\n\r\n",
		400)},
	{REJECT("obs-text in the target", "GET /\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n", 400)},
	{REJECT("'<' in the target", "GET /<x> HTTP/1.1\r\nHost: h\r\n\r\n", 400)},
	{REJECT("backslash in the target", "GET /a\\b HTTP/1.1\r\nHost: h\r\n\r\n", 400)},
	{REJECT("'[' in an origin-form path", "GET /a[0] HTTP/1.1\r\nHost: h\r\n\r\n", 400)},
	{REJECT("']' in an origin-form query", "GET /a?b=] HTTP/1.1\r\nHost: h\r\n\r\n", 400)},
	{REJECT("'[' in an absolute-form path", "GET http://h/a[0] HTTP/1.1\r\nHost: h\r\n\r\n",
		400)},
	{REJECT("'*' with GET", "GET * HTTP/1.1\r\nHost: h\r\n\r\n", 400)},
	{REJECT("'*' with HEAD", "HEAD * HTTP/1.1\r\nHost: h\r\n\r\n", 400)},
	{REJECT("'*x' is not asterisk-form", "OPTIONS *x HTTP/1.1\r\nHost: h\r\n\r\n", 400)},
	{REJECT("absolute-form with userinfo", "GET http://user@h/ HTTP/1.1\r\nHost: h\r\n\r\n",
		400)},
	{REJECT("absolute-form with user:password",
		"GET http://u:pw@h/ HTTP/1.1\r\nHost: h\r\n\r\n", 400)},
	{REJECT("ftp:// scheme", "GET ftp://h/ HTTP/1.1\r\nHost: h\r\n\r\n", 400)},
	{REJECT("http:/ with one slash", "GET http:/h/ HTTP/1.1\r\nHost: h\r\n\r\n", 400)},
	{REJECT("absolute-form with an empty host", "GET http:///p HTTP/1.1\r\nHost: h\r\n\r\n",
		400)},
	{REJECT("absolute-form 'http://' with nothing after", "GET http:// HTTP/1.1\r\nHost: h\r\n\r\n",
		400)},
	{REJECT("absolute-form with a bad port", "GET http://h:x/ HTTP/1.1\r\nHost: h\r\n\r\n", 400)},
	{REJECT("absolute-form with an unterminated IP-literal",
		"GET http://[::1/p HTTP/1.1\r\nHost: h\r\n\r\n", 400)},
	{REJECT("relative target without '/'", "GET a/b HTTP/1.1\r\nHost: h\r\n\r\n", 400)},
	{REJECT("Expect: something-else", GET11 HOST_H "Expect: something-else\r\n\r\n", 417)},
	{REJECT("Expect: 100-continue plus another expectation",
		GET11 HOST_H "Expect: 100-continue, x\r\n\r\n", 417)},
	{REJECT("Expect: 100-continued (not the exact token)",
		GET11 HOST_H "Expect: 100-continued\r\n\r\n", 417)},
	{REJECT("five empty lines before the request line (only four are skipped)",
		"\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", 400)},
};

/* Limits 32 / 64 / 3 (request line, header bytes, fields). The request line limit counts the
 * line without its CRLF; the header byte limit counts field lines with their CRLFs. */
#define LINE32 "GET /aaaaaaaaaaaaaaaaaa HTTP/1.1"
#define LINE33 "GET /aaaaaaaaaaaaaaaaaaa HTTP/1.1"
#define FIELDS64 "Host: h\r\nX: " A50 "\r\n"
#define FIELDS65 "Host: h\r\nX: " A50 "a\r\n"
_Static_assert(sizeof(LINE32) - 1 == 32, "LINE32");
_Static_assert(sizeof(LINE33) - 1 == 33, "LINE33");
_Static_assert(sizeof(FIELDS64) - 1 == 64, "FIELDS64");
_Static_assert(sizeof(FIELDS65) - 1 == 65, "FIELDS65");
#define FIELDS64_OPEN "Host: h\r\nX: " A50 "ab" /* 64 bytes of field lines, no CRLF yet */
_Static_assert(sizeof(FIELDS64_OPEN) - 1 == 64, "FIELDS64_OPEN");
_Static_assert(sizeof("GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaa") - 1 == 34, "limit + 2");

static head_row_t limit_rows[] = {
	{ACCEPT("request line of exactly max_request_line (32) bytes",
		LINE32 "\r\nHost: h\r\n\r\n"),
	 .lim = &small_limits,
	 REQ("GET", ZH_GET, "/aaaaaaaaaaaaaaaaaa", "/aaaaaaaaaaaaaaaaaa", "", "h", 1, 0, HOST,
	     NULL)},
	{ACCEPT("empty lines before the request line do not count toward its limit",
		"\r\n\r\n" LINE32 "\r\nHost: h\r\n\r\n"),
	 .lim = &small_limits,
	 REQ("GET", ZH_GET, "/aaaaaaaaaaaaaaaaaa", "/aaaaaaaaaaaaaaaaaa", "", "h", 1, 0, HOST,
	     NULL)},
	{REJECT("complete request line of 33 bytes", LINE33 "\r\nHost: h\r\n\r\n", 414),
	 .lim = &small_limits},
	{REJECT("incomplete request line already past the limit (long target)",
		"GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 414),
	 .lim = &small_limits},
	{REJECT("incomplete request line already past the limit (long method)",
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", 414),
	 .lim = &small_limits},
	{REJECT("long request line whose version comes after the limit",
		"GET /" A50 " HTTP/1.1\r\nHost: h\r\n\r\n", 414),
	 .lim = &small_limits},
	{NEED_MORE("incomplete request line within the limit", "GET /aaaaaaaaaaaaaaaaaa HTTP/1."),
	 .lim = &small_limits},
	{NEED_MORE("request line of exactly the limit, cut after its CR", LINE32 "\r"),
	 .lim = &small_limits},
	{REJECT("incomplete request line of limit + 2 bytes (cannot end in time)",
		"GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 414),
	 .lim = &small_limits},
	{ACCEPT("exactly max_headers (3) fields", "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\n\r\n"),
	 .lim = &small_limits,
	 REQ("GET", ZH_GET, "/", "/", "", "h", 1, 0, HOST, "Host=h\nA=1\nB=2\n")},
	{REJECT("max_headers + 1 fields", "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n",
		431),
	 .lim = &small_limits},
	{ACCEPT("field lines of exactly max_header_bytes (64)", "GET / HTTP/1.1\r\n" FIELDS64 "\r\n"),
	 .lim = &small_limits,
	 REQ("GET", ZH_GET, "/", "/", "", "h", 1, 0, HOST, "Host=h\nX=" A50 "\n")},
	{REJECT("field lines of max_header_bytes + 1 (65)", "GET / HTTP/1.1\r\n" FIELDS65 "\r\n", 431),
	 .lim = &small_limits},
	{NEED_MORE("incomplete field of exactly max_header_bytes", "GET / HTTP/1.1\r\n" FIELDS64_OPEN),
	 .lim = &small_limits},
	{REJECT("incomplete field of max_header_bytes + 1", "GET / HTTP/1.1\r\n" FIELDS64_OPEN "a",
		431),
	 .lim = &small_limits},
	{REJECT("incomplete field already past max_header_bytes",
		"GET / HTTP/1.1\r\nHost: h\r\nX: " A50 A50, 431),
	 .lim = &small_limits},
	{REJECT("incomplete field name already past max_header_bytes",
		"GET / HTTP/1.1\r\nHost: h\r\n" A50 A50, 431),
	 .lim = &small_limits},
};

static head_row_t incomplete_rows[] = {
	{NEED_MORE("nothing yet", "")},
	{NEED_MORE("a lone CR of a leading empty line", "\r")},
	{NEED_MORE("a leading empty line", "\r\n")},
	{NEED_MORE("a leading empty line and a CR", "\r\n\r")},
	{NEED_MORE("a method", "GET")},
	{NEED_MORE("a request line cut before its LF", "GET / HTTP/1.1\r")},
	{NEED_MORE("fields but no empty line", "GET / HTTP/1.1\r\nHost: h\r\n")},
	{NEED_MORE("the empty line's CR only", "GET / HTTP/1.1\r\nHost: h\r\n\r")},
	{NEED_MORE("a value cut in the middle", "GET / HTTP/1.1\r\nHost: h\r\nX-Long: value-")},
	{NEED_MORE("a value cut after its CR", "GET / HTTP/1.1\r\nHost: h\r\nX: v\r")},
	{NEED_MORE("a version cut short", "GET / HTTP/1.")},
};

/* ---- head parser: runners ------------------------------------------------------------------ */

static const zh__limits_t *row_limits(const head_row_t *row)
{
	return row->lim ? row->lim : &default_limits;
}

static void check_span(const head_row_t *row, const char *mode, const char *what,
		       const char *buf, zh__span_t s, int head_len, const char *want)
{
	size_t n = strlen(want);
	cr_assert((uint64_t)s.off + s.len <= (uint64_t)head_len,
		  "[%s] %s: %s span %u+%u lies outside the %d-byte head", mode, row->desc, what,
		  s.off, s.len, head_len);
	cr_expect(s.len == n && memcmp(buf + s.off, want, n) == 0,
		  "[%s] %s: %s is \"%.*s\", want \"%s\"", mode, row->desc, what, (int)s.len,
		  buf + s.off, want);
}

static void check_head(const head_row_t *row, const char *mode, const char *buf, int r,
		       const zh__head_t *h, const zh__field_t *f)
{
	cr_assert(row->method && row->path && row->query && row->host,
		  "row '%s' is missing expectations", row->desc);
	cr_expect(h->head_len == (uint32_t)r, "[%s] %s: head_len %u, returned %d", mode, row->desc,
		  h->head_len, r);
	check_span(row, mode, "method", buf, h->method, r, row->method);
	cr_expect(h->method_bit == row->method_bit, "[%s] %s: method_bit %#x, want %#x", mode,
		  row->desc, h->method_bit, row->method_bit);
	if (row->target)
		check_span(row, mode, "target", buf, h->target, r, row->target);
	check_span(row, mode, "path", buf, h->path, r, row->path);
	check_span(row, mode, "query", buf, h->query, r, row->query);
	check_span(row, mode, "host", buf, h->host, r, row->host);
	cr_expect(h->minor == row->minor, "[%s] %s: minor %u, want %u", mode, row->desc, h->minor,
		  row->minor);
	cr_expect(h->content_length == row->content_length,
		  "[%s] %s: content_length %llu, want %llu", mode, row->desc,
		  (unsigned long long)h->content_length, (unsigned long long)row->content_length);
	cr_expect(h->flags == row->flags, "[%s] %s: flags %#x, want %#x", mode, row->desc,
		  h->flags, row->flags);
	cr_assert(h->nfields <= row_limits(row)->max_headers, "[%s] %s: nfields %u over the limit",
		  mode, row->desc, h->nfields);
	if (row->fields) {
		char dump[4096];
		size_t n = 0;
		for (uint32_t i = 0; i < h->nfields; i++) {
			const zh__field_t *x = &f[i];
			cr_assert(x->name.off + x->name.len <= (uint32_t)r &&
					  x->value.off + x->value.len <= (uint32_t)r &&
					  n + x->name.len + x->value.len + 2 < sizeof dump,
				  "[%s] %s: field %u out of bounds", mode, row->desc, i);
			memcpy(dump + n, buf + x->name.off, x->name.len);
			n += x->name.len;
			dump[n++] = '=';
			memcpy(dump + n, buf + x->value.off, x->value.len);
			n += x->value.len;
			dump[n++] = '\n';
		}
		cr_expect(n == strlen(row->fields) && memcmp(dump, row->fields, n) == 0,
			  "[%s] %s: fields\n%.*s\nwant\n%s", mode, row->desc, (int)n, dump,
			  row->fields);
	}
}

/* One call on the first n bytes with a fresh parser and head. */
static int parse_fresh(const char *raw, size_t n, const zh__limits_t *lim, zh__head_t *h,
		       zh__field_t *f, const char **bufp)
{
	zh__parser_t ps;
	memset(&ps, 0, sizeof ps);
	memset(h, 0, sizeof *h);
	*bufp = at_guard(raw, n);
	return zh__parse_head(&ps, *bufp, n, h, f, lim);
}

/* Growing prefixes 1..n, each in a relocated buffer; returns the first nonzero result (0 if
 * none) and in *at the prefix length that produced it. */
static int parse_bytewise(const char *raw, size_t n, const zh__limits_t *lim, zh__head_t *h,
			  zh__field_t *f, const char **bufp, size_t *at)
{
	zh__parser_t ps;
	memset(&ps, 0, sizeof ps);
	memset(h, 0, sizeof *h);
	*bufp = NULL;
	for (size_t k = 1; k <= n; k++) {
		*bufp = at_guard(raw, k);
		int r = zh__parse_head(&ps, *bufp, k, h, f, lim);
		if (r != 0) {
			*at = k;
			return r;
		}
	}
	*at = n;
	return 0;
}

static void run_head_row(const head_row_t *row)
{
	const zh__limits_t *lim = row_limits(row);
	zh__field_t *f = field_slots(lim->max_headers);
	zh__head_t h;
	const char *buf;
	size_t at;
	int r;

	/* (a) whole input */
	r = parse_fresh(row->raw, row->raw_len, lim, &h, f, &buf);
	cr_assert(r == row->expect, "[whole] %s: got %d, want %d", row->desc, r, row->expect);
	if (r > 0)
		check_head(row, "whole", buf, r, &h, f);

	/* (b) byte by byte: 0 until the answer, which must be the same; an accepted head is
	 * reported exactly when its last byte arrives */
	r = parse_bytewise(row->raw, row->raw_len, lim, &h, f, &buf, &at);
	cr_assert(r == row->expect, "[bytewise] %s: got %d at %zu bytes, want %d", row->desc, r,
		  at, row->expect);
	if (r > 0) {
		cr_assert(at == (size_t)r, "[bytewise] %s: head reported at %zu bytes, length %d",
			  row->desc, at, r);
		check_head(row, "bytewise", buf, r, &h, f);
	}

	/* (c) every split into two calls: k bytes, then everything */
	for (size_t k = 1; k < row->raw_len; k++) {
		zh__parser_t ps;
		memset(&ps, 0, sizeof ps);
		memset(&h, 0, sizeof h);
		buf = at_guard(row->raw, k);
		r = zh__parse_head(&ps, buf, k, &h, f, lim);
		if (row->expect > 0 && k >= (size_t)row->expect) {
			cr_assert(r == row->expect, "[split %zu] %s: first call %d, want %d", k,
				  row->desc, r, row->expect);
			continue;
		}
		cr_assert(r == 0 || (row->expect < 0 && r == row->expect),
			  "[split %zu] %s: first call %d, want 0%s", k, row->desc, r,
			  row->expect < 0 ? " or the error" : "");
		if (r != 0)
			continue;
		buf = at_guard(row->raw, row->raw_len);
		r = zh__parse_head(&ps, buf, row->raw_len, &h, f, lim);
		cr_assert(r == row->expect, "[split %zu] %s: second call %d, want %d", k, row->desc, r,
			  row->expect);
		if (r > 0)
			check_head(row, "split", buf, r, &h, f);
	}
}

ParameterizedTestParameters(head, accept)
{
	ROW_INDICES(accept_rows);
}
ParameterizedTest(size_t *idx, head, accept)
{
	const head_row_t *row = &accept_rows[*idx];
	cr_assert(row->expect > 0, "accept row '%s' expects %d", row->desc, row->expect);
	run_head_row(row);
}

ParameterizedTestParameters(head, reject)
{
	ROW_INDICES(reject_rows);
}
ParameterizedTest(size_t *idx, head, reject)
{
	const head_row_t *row = &reject_rows[*idx];
	cr_assert(row->expect < 0, "reject row '%s' expects %d", row->desc, row->expect);
	run_head_row(row);
}

ParameterizedTestParameters(head, limits)
{
	ROW_INDICES(limit_rows);
}
ParameterizedTest(size_t *idx, head, limits)
{
	const head_row_t *row = &limit_rows[*idx];
	run_head_row(row);
}

ParameterizedTestParameters(head, incomplete)
{
	ROW_INDICES(incomplete_rows);
}
ParameterizedTest(size_t *idx, head, incomplete)
{
	const head_row_t *row = &incomplete_rows[*idx];
	cr_assert(row->expect == 0, "incomplete row '%s' expects %d", row->desc, row->expect);
	run_head_row(row);
}

/* A head split across two reads lands in a new, larger buffer (as conn.c does when the
 * receive buffer is replaced): spans must be relative to the buffer, not to the first one. */
Test(head, resume_in_relocated_buffer)
{
	static const char req[] = "POST /p?q=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi";
	const size_t cut = 25, n = sizeof req - 1;
	zh__parser_t ps = {0};
	zh__head_t h = {0};
	zh__field_t f[4];
	zh__limits_t lim = {1024, 4096, 4};
	char *a = guarded(cut), *b = guarded(n);

	memcpy(a, req, cut);
	cr_assert_eq(zh__parse_head(&ps, a, cut, &h, f, &lim), 0);
	memset(a, 'X', cut); /* the old buffer is gone */
	memcpy(b, req, n);
	int r = zh__parse_head(&ps, b, n, &h, f, &lim);
	cr_assert_eq(r, (int)(n - 2));
	cr_assert(h.path.len == 2 && memcmp(b + h.path.off, "/p", 2) == 0);
	cr_assert(h.query.len == 3 && memcmp(b + h.query.off, "q=1", 3) == 0);
	cr_assert(h.host.len == 1 && b[h.host.off] == 'h');
	cr_assert_eq(h.nfields, 2);
	cr_assert(f[1].value.len == 1 && b[f[1].value.off] == '2');
	cr_assert_eq(h.content_length, 2);
}

/* Property check over mutated rows: whatever the input, feeding it byte by byte must agree
 * with feeding it whole: same head (reported exactly at its last byte), same "need more", or
 * some refusal when the whole input is refused. Every result is a known status. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static const char interesting[] = "\r\n \t:\0\x7f\x80\xff/%?#aA09,;[]@*.-\"H";

static size_t mutate(char *s, size_t n, size_t cap)
{
	int muts = 1 + (int)(rng() % 3);
	for (int m = 0; m < muts; m++) {
		size_t pos = n ? (size_t)(rng() % n) : 0;
		char c = (rng() & 1) ? interesting[rng() % (sizeof interesting - 1)] : (char)rng();
		switch (rng() % 4) {
		case 0: /* replace */
			if (n)
				s[pos] = c;
			break;
		case 1: /* insert */
			if (n < cap) {
				memmove(s + pos + 1, s + pos, n - pos);
				s[pos] = c;
				n++;
			}
			break;
		case 2: /* delete */
			if (n) {
				memmove(s + pos, s + pos + 1, n - pos - 1);
				n--;
			}
			break;
		default: /* truncate */
			n = pos;
			break;
		}
	}
	return n;
}

static bool known_status(int r)
{
	return r == -400 || r == -414 || r == -417 || r == -431 || r == -501 || r == -505;
}

static void same_head(const zh__head_t *a, const zh__head_t *b, const zh__field_t *fa,
		      const zh__field_t *fb, const char *desc)
{
	cr_assert(memcmp(&a->method, &b->method, sizeof a->method) == 0 &&
			  memcmp(&a->target, &b->target, sizeof a->target) == 0 &&
			  memcmp(&a->path, &b->path, sizeof a->path) == 0 &&
			  memcmp(&a->query, &b->query, sizeof a->query) == 0 &&
			  memcmp(&a->host, &b->host, sizeof a->host) == 0 &&
			  a->method_bit == b->method_bit && a->minor == b->minor &&
			  a->flags == b->flags && a->nfields == b->nfields &&
			  a->content_length == b->content_length && a->head_len == b->head_len,
		  "%s: whole and byte-by-byte heads differ", desc);
	cr_assert(memcmp(fa, fb, sizeof *fa * a->nfields) == 0, "%s: fields differ", desc);
}

Test(head, mutated_inputs_bytewise_agrees_with_whole)
{
	enum { CAP = 512, ITER = 6000 };
	static char s[CAP];
	static zh__field_t fw[16], fb[16];
	zh__head_t hw, hb;
	const char *buf;
	size_t at, nseeds = sizeof accept_rows / sizeof accept_rows[0] +
			    sizeof reject_rows / sizeof reject_rows[0];

	for (int it = 0; it < ITER; it++) {
		size_t k = (size_t)(rng() % nseeds);
		const head_row_t *seed =
			k < sizeof accept_rows / sizeof accept_rows[0]
				? &accept_rows[k]
				: &reject_rows[k - sizeof accept_rows / sizeof accept_rows[0]];
		const zh__limits_t *lim = (rng() % 4 == 0) ? &small_limits : &default_limits;
		size_t n = seed->raw_len < CAP ? seed->raw_len : CAP;
		memcpy(s, seed->raw, n);
		n = mutate(s, n, CAP);

		int w = parse_fresh(s, n, lim, &hw, fw, &buf);
		cr_assert(w >= 0 || known_status(w), "mutated '%s' #%d: whole returned %d",
			  seed->desc, it, w);
		if (w > 0)
			cr_assert((size_t)w <= n && hw.head_len == (uint32_t)w);
		int b = parse_bytewise(s, n, lim, &hb, fb, &buf, &at);
		cr_assert(b >= 0 || known_status(b), "mutated '%s' #%d: bytewise returned %d",
			  seed->desc, it, b);
		if (w > 0) {
			cr_assert(b == w && at == (size_t)w,
				  "mutated '%s' #%d (%zu bytes: \"%.*s\"): whole %d, bytewise %d at %zu",
				  seed->desc, it, n, (int)n, s, w, b, at);
			same_head(&hw, &hb, fw, fb, seed->desc);
		} else if (w == 0) {
			cr_assert(b == 0, "mutated '%s' #%d (\"%.*s\"): whole 0, bytewise %d at %zu",
				  seed->desc, it, (int)n, s, b, at);
		} else {
			cr_assert(b < 0, "mutated '%s' #%d (\"%.*s\"): whole %d, bytewise %d",
				  seed->desc, it, (int)n, s, w, b);
		}
	}
}

/* ---- chunked decoder ------------------------------------------------------------------------ */

#define MiB (1024u * 1024u)

typedef struct chunk_row {
	const char *desc;
	const char *in;
	size_t in_len;
	long expect;	   /* bytes consumed when the body ends, or -status */
	const char *data;  /* decoded body */
	size_t data_len;
	uint64_t max_body; /* 0: 1 MiB */
} chunk_row_t;

#define CK_OK(d, body, decoded)                                                                \
	.desc = (d), .in = (body), .in_len = sizeof(body) - 1, .expect = sizeof(body) - 1,     \
	.data = (decoded), .data_len = sizeof(decoded) - 1
#define CK_OK_TAIL(d, body, tail, decoded)                                                     \
	.desc = (d), .in = body tail, .in_len = sizeof(body tail) - 1,                         \
	.expect = sizeof(body) - 1, .data = (decoded), .data_len = sizeof(decoded) - 1
#define CK_BAD(d, body, status)                                                                \
	.desc = (d), .in = (body), .in_len = sizeof(body) - 1, .expect = -(status)

static chunk_row_t chunk_ok_rows[] = {
	{CK_OK("one chunk", "5\r\nhello\r\n0\r\n\r\n", "hello")},
	{CK_OK("two chunks", "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "hello world")},
	{CK_OK("empty body: last-chunk only", "0\r\n\r\n", "")},
	{CK_OK("upper-case hex size A", "A\r\n0123456789\r\n0\r\n\r\n", "0123456789")},
	{CK_OK("two-digit lower-case hex size 1a",
	       "1a\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\n", "abcdefghijklmnopqrstuvwxyz")},
	{CK_OK("mixed-case hex size 1F",
	       "1F\r\n0123456789abcdef0123456789abcde\r\n0\r\n\r\n",
	       "0123456789abcdef0123456789abcde")},
	{CK_OK("leading zeros in sizes", "0005\r\nhello\r\n000\r\n\r\n", "hello")},
	{CK_OK("extension ;a=b", "5;a=b\r\nhello\r\n0\r\n\r\n", "hello")},
	{CK_OK("extensions ;x and ;y=1 (no value, several)", "5;x;y=1\r\nhello\r\n0\r\n\r\n",
	       "hello")},
	{CK_OK("extension with BWS and a quoted value with spaces",
	       "5 ; a = \"q s\"\r\nhello\r\n0\r\n\r\n", "hello")},
	{CK_OK("BWS (a tab) before ';' is allowed (RFC 9112 7.1.1)", "5\t;a\r\nhello\r\n0\r\n\r\n",
	       "hello")},
	{CK_OK("BWS before ';' on the last chunk", "5\r\nhello\r\n0 ;e\r\n\r\n", "hello")},
	{CK_OK("extension on the last chunk", "5\r\nhello\r\n0;end=1\r\n\r\n", "hello")},
	{CK_OK("obs-text and a tab in an extension", "5;n=\xc3\xa9\tx\r\nhello\r\n0\r\n\r\n",
	       "hello")},
	{CK_OK("trailer fields, one with an empty value",
	       "5\r\nhello\r\n0\r\nX-Sum: abc\r\nY:\r\n\r\n", "hello")},
	{CK_OK("trailer value with a tab and obs-text", "0\r\nX: a\tb \xff\r\n\r\n", "")},
	{CK_OK("data containing CR, LF, NUL and 0xff", "6\r\n\r\n\0\xff\r\n\r\n0\r\n\r\n",
	       "\r\n\0\xff\r\n")},
	{CK_OK("data that looks like chunk framing", "7\r\n0\r\n\r\nab\r\n0\r\n\r\n",
	       "0\r\n\r\nab")},
	{CK_OK("many one-byte chunks", "1\r\na\r\n1\r\nb\r\n1\r\nc\r\n0\r\n\r\n", "abc")},
	{CK_OK_TAIL("pipelined request after the body is not consumed", "3\r\nabc\r\n0\r\n\r\n",
		    "GET / HTTP/1.1\r\nHost: h\r\n\r\n", "abc")},
	{CK_OK_TAIL("bytes after the trailers are not consumed", "0\r\nT: v\r\n\r\n", "\r\n\r\nX",
		    "")},
	{CK_OK("body of exactly max_body (10) over two chunks", "5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n",
	       "helloworld"),
	 .max_body = 10},
	{CK_OK("16 hex digits fit in 64 bits", "000000000000000a\r\n0123456789\r\n0\r\n\r\n",
	       "0123456789"),
	 .max_body = UINT64_MAX},
};

static chunk_row_t chunk_bad_rows[] = {
	{CK_BAD("data longer than its size: no CRLF after data", "5\r\nhelloX\r\n0\r\n\r\n", 400)},
	{CK_BAD("CR after data not followed by LF", "5\r\nhello\rX\r\n0\r\n\r\n", 400)},
	{CK_BAD("bare LF after data", "5\r\nhello\n0\r\n\r\n", 400)},
	{CK_BAD("non-hex size 'g'", "g\r\nhello\r\n0\r\n\r\n", 400)},
	{CK_BAD("empty size line", "\r\nhello\r\n0\r\n\r\n", 400)},
	{CK_BAD("negative size", "-1\r\nx\r\n0\r\n\r\n", 400)},
	{CK_BAD("'+' before the size", "+5\r\nhello\r\n0\r\n\r\n", 400)},
	{CK_BAD("space before the size", " 5\r\nhello\r\n0\r\n\r\n", 400)},
	{CK_BAD("0x prefix on the size", "0x5\r\nhello\r\n0\r\n\r\n", 400)},
	{CK_BAD("junk right after the size", "5x\r\nhello\r\n0\r\n\r\n", 400)},
	{CK_BAD("junk after the size and BWS (no ';')", "5 x\r\nhello\r\n0\r\n\r\n", 400)},
	{CK_BAD("space after the size without ';' (RFC 9112 7.1)", "3 \r\nabc\r\n0\r\n\r\n", 400)},
	{CK_BAD("tab after the size without ';'", "3\t\r\nabc\r\n0\r\n\r\n", 400)},
	{CK_BAD("blanks after the last chunk's size without ';'", "0 \t \r\n\r\n", 400)},
	{CK_BAD("',' after the size", "5,a\r\nhello\r\n0\r\n\r\n", 400)},
	{CK_BAD("size over max_body (1 MiB + 1)", "100001\r\n", 413)},
	{CK_BAD("huge size", "ffffffffffffffffffff\r\n", 413)},
	{CK_BAD("17 hex digits overflow 64 bits", "10000000000000000\r\n", 413),
	 .max_body = UINT64_MAX},
	{CK_BAD("total over max_body (10) across chunks", "6\r\nabcdef\r\n5\r\nghijk\r\n0\r\n\r\n",
		413),
	 .max_body = 10},
	{CK_BAD("size near 2^64 after earlier data must not wrap the limit check",
		"1\r\na\r\nffffffffffffffff\r\n", 413),
	 .max_body = UINT64_MAX},
	{CK_BAD("control char in an extension", "5;a=\x01\r\nhello\r\n0\r\n\r\n", 400)},
	{CK_BAD("DEL in an extension", "5;a\x7f\r\nhello\r\n0\r\n\r\n", 400)},
	{CK_BAD("NUL in an extension", "5;a\0\r\nhello\r\n0\r\n\r\n", 400)},
	{CK_BAD("bare LF after the size", "5\nhello\r\n0\r\n\r\n", 400)},
	{CK_BAD("bare LF after an extension", "5;a=b\nhello\r\n0\r\n\r\n", 400)},
	{CK_BAD("CR after the size not followed by LF", "5\rhello\r\n0\r\n\r\n", 400)},
	{CK_BAD("bare LF after the last chunk's size", "0\n\r\n", 400)},
	{CK_BAD("trailer: space before the colon", "0\r\nX : v\r\n\r\n", 400)},
	{CK_BAD("trailer: obs-fold", "0\r\nX: a\r\n b\r\n\r\n", 400)},
	{CK_BAD("trailer: no colon", "0\r\nXYZ\r\n\r\n", 400)},
	{CK_BAD("trailer: non-token name byte", "0\r\nX(: v\r\n\r\n", 400)},
	{CK_BAD("trailer: bare LF ending the field", "0\r\nX: v\n\r\n", 400)},
	{CK_BAD("trailer: control char in the value", "0\r\nX: a\x01\r\n\r\n", 400)},
	{CK_BAD("trailer: CR not followed by LF", "0\r\nX: a\rb\r\n\r\n", 400)},
	{CK_BAD("bare LF as the final empty line", "0\r\n\n", 400)},
	{CK_BAD("final CR not followed by LF", "0\r\n\rX", 400)},
};

static uint64_t row_max(const chunk_row_t *row) { return row->max_body ? row->max_body : MiB; }

/* Result of a decoding run, to be compared with the row. */
typedef struct {
	long r;		/* consumed, or the error */
	bool done;
	size_t n;	/* decoded bytes */
} ck_out_t;

static void ck_expect(const chunk_row_t *row, const char *mode, ck_out_t o, const char *data)
{
	cr_assert(o.r == row->expect, "[%s] %s: returned/consumed %ld, want %ld", mode, row->desc,
		  o.r, row->expect);
	if (row->expect < 0)
		return;
	cr_assert(o.done, "[%s] %s: zh__chunked_done() false at the end", mode, row->desc);
	cr_assert(o.n == row->data_len && memcmp(data, row->data, o.n) == 0,
		  "[%s] %s: decoded %zu bytes \"%.*s\", want %zu \"%.*s\"", mode, row->desc, o.n,
		  (int)o.n, data, row->data_len, (int)row->data_len, row->data);
}

static void run_chunk_case(const chunk_row_t *row)
{
	const uint64_t max = row_max(row);
	const size_t n = row->in_len;
	char *got = guarded(n + 1);

	/* (a) whole, separate output; then the rest (tail) must not be consumed */
	{
		zh__chunked_t c = {0};
		size_t prod = 12345;
		const char *in = at_guard(row->in, n);
		char *out = out_guard(n);
		long r = zh__chunked_decode(&c, in, n, out, n, &prod, max);
		ck_expect(row, "whole", (ck_out_t){r, zh__chunked_done(&c), r >= 0 ? prod : 0}, out);
		if (r >= 0) {
			size_t prod2 = 12345;
			long r2 = zh__chunked_decode(&c, in + r, n - (size_t)r, out, n, &prod2, max);
			cr_assert(r2 == 0 && prod2 == 0 && zh__chunked_done(&c),
				  "[whole] %s: after the end, consumed %ld produced %zu", row->desc,
				  r2, prod2);
		}
	}
	/* (b) whole, in place (out == in); unconsumed bytes must be left untouched */
	{
		zh__chunked_t c = {0};
		size_t prod = 12345;
		char *buf = at_guard(row->in, n);
		long r = zh__chunked_decode(&c, buf, n, buf, n, &prod, max);
		ck_expect(row, "in place", (ck_out_t){r, zh__chunked_done(&c), r >= 0 ? prod : 0},
			  buf);
		if (r >= 0)
			cr_assert(memcmp(buf + r, row->in + r, n - (size_t)r) == 0,
				  "[in place] %s: bytes after the body were modified", row->desc);
	}
	/* (c) one byte per call, each in a fresh buffer: every call before the end consumes
	 * exactly that byte; done exactly after the last one; nothing after it is consumed */
	{
		zh__chunked_t c = {0};
		size_t gn = 0;
		long total = 0, err = 0;
		for (size_t i = 0; i < n; i++) {
			bool was_done = zh__chunked_done(&c);
			const char *in = at_guard(row->in + i, 1);
			char *out = out_guard(1);
			size_t prod = 12345;
			long r = zh__chunked_decode(&c, in, 1, out, 1, &prod, max);
			if (r < 0) {
				err = r;
				break;
			}
			cr_assert(r == (was_done ? 0 : 1) && prod <= (size_t)r,
				  "[bytewise] %s: byte %zu: consumed %ld produced %zu", row->desc, i, r,
				  prod);
			memcpy(got + gn, out, prod);
			gn += prod;
			total += r;
			cr_assert(zh__chunked_done(&c) == (row->expect >= 0 && total == row->expect),
				  "[bytewise] %s: done=%d after %ld bytes", row->desc,
				  zh__chunked_done(&c), total);
		}
		ck_expect(row, "bytewise", (ck_out_t){err ? err : total, zh__chunked_done(&c), gn},
			  got);
	}
	/* (d) 3-byte output buffer: resume where the decoder stopped, in a relocated buffer */
	{
		zh__chunked_t c = {0};
		size_t off = 0, gn = 0;
		long err = 0;
		for (;;) {
			const char *in = at_guard(row->in + off, n - off);
			char *out = out_guard(3);
			size_t prod = 12345;
			long r = zh__chunked_decode(&c, in, n - off, out, 3, &prod, max);
			if (r < 0) {
				err = r;
				break;
			}
			cr_assert(prod <= 3 && (size_t)r <= n - off, "[cap 3] %s: consumed %ld produced %zu",
				  row->desc, r, prod);
			/* it stops early only when the output is full or the body ended */
			cr_assert(prod == 3 || zh__chunked_done(&c) || (size_t)r == n - off,
				  "[cap 3] %s: stopped at %zu with room left", row->desc, off + (size_t)r);
			memcpy(got + gn, out, prod);
			gn += prod;
			off += (size_t)r;
			if (zh__chunked_done(&c) || (r == 0 && prod == 0))
				break;
		}
		ck_expect(row, "cap 3", (ck_out_t){err ? err : (long)off, zh__chunked_done(&c), gn},
			  got);
	}
	/* (e) in place with a 3-byte cap: output written before the unread input */
	{
		zh__chunked_t c = {0};
		char *buf = at_guard(row->in, n);
		size_t off = 0, w = 0;
		long err = 0;
		for (;;) {
			size_t prod = 12345;
			long r = zh__chunked_decode(&c, buf + off, n - off, buf + w, 3, &prod, max);
			if (r < 0) {
				err = r;
				break;
			}
			cr_assert(prod <= 3, "[in place, cap 3] %s: produced %zu", row->desc, prod);
			w += prod;
			off += (size_t)r;
			cr_assert(w <= off, "[in place, cap 3] %s: output overtook input", row->desc);
			if (zh__chunked_done(&c) || (r == 0 && prod == 0))
				break;
		}
		ck_expect(row, "in place, cap 3",
			  (ck_out_t){err ? err : (long)off, zh__chunked_done(&c), w}, buf);
		if (!err)
			cr_assert(memcmp(buf + off, row->in + off, n - off) == 0,
				  "[in place, cap 3] %s: bytes after the body were modified", row->desc);
	}
}

ParameterizedTestParameters(chunked, valid)
{
	ROW_INDICES(chunk_ok_rows);
}
ParameterizedTest(size_t *idx, chunked, valid)
{
	const chunk_row_t *row = &chunk_ok_rows[*idx];
	cr_assert(row->expect >= 0);
	run_chunk_case(row);
}

ParameterizedTestParameters(chunked, invalid)
{
	ROW_INDICES(chunk_bad_rows);
}
ParameterizedTest(size_t *idx, chunked, invalid)
{
	const chunk_row_t *row = &chunk_bad_rows[*idx];
	cr_assert(row->expect < 0);
	run_chunk_case(row);
}

/* Generated inputs around the decoder's fixed bounds: 4096 bytes of size-line extension,
 * 8192 bytes of trailers, 32 trailer fields. */
static size_t build_ext(char *s, size_t ext_len)
{
	size_t n = 0;
	s[n++] = '5';
	s[n++] = ';';
	memset(s + n, 'e', ext_len - 1);
	n += ext_len - 1;
	memcpy(s + n, "\r\nhello\r\n0\r\n\r\n", 14);
	return n + 14;
}

Test(chunked, extension_line_bounded)
{
	static char s[8192];
	chunk_row_t row = {.desc = "size-line extension of 4096 bytes", .data = "hello",
			   .data_len = 5};
	row.in_len = build_ext(s, 4096);
	row.in = s;
	row.expect = (long)row.in_len;
	run_chunk_case(&row);

	row.desc = "size-line extension of 4097 bytes";
	row.in_len = build_ext(s, 4097);
	row.expect = -400;
	run_chunk_case(&row);
}

static size_t build_trailers(char *s, int fields, size_t vlen)
{
	size_t n = 0;
	memcpy(s, "0\r\n", 3);
	n = 3;
	for (int i = 0; i < fields; i++) {
		memcpy(s + n, "T: ", 3);
		n += 3;
		memset(s + n, 'v', vlen);
		n += vlen;
		memcpy(s + n, "\r\n", 2);
		n += 2;
	}
	memcpy(s + n, "\r\n", 2);
	return n + 2;
}

Test(chunked, trailer_bytes_bounded)
{
	static char s[16384];
	chunk_row_t row = {.desc = "two trailer fields, ~8000 bytes", .data = "", .data_len = 0};
	row.in = s;
	row.in_len = build_trailers(s, 2, 4000);
	row.expect = (long)row.in_len;
	run_chunk_case(&row);

	row.desc = "two trailer fields, ~8200 bytes (over 8192)";
	row.in_len = build_trailers(s, 2, 4100);
	row.expect = -400;
	run_chunk_case(&row);

	row.desc = "one trailer field of ~12000 bytes";
	row.in_len = build_trailers(s, 1, 12000);
	row.expect = -400;
	run_chunk_case(&row);
}

Test(chunked, trailer_fields_bounded)
{
	static char s[1024];
	chunk_row_t row = {.desc = "32 trailer fields", .data = "", .data_len = 0};
	row.in = s;
	row.in_len = build_trailers(s, 32, 1);
	row.expect = (long)row.in_len;
	run_chunk_case(&row);

	row.desc = "33 trailer fields";
	row.in_len = build_trailers(s, 33, 1);
	row.expect = -400;
	run_chunk_case(&row);
}

Test(chunked, large_chunk_streamed_through_small_buffer)
{
	/* a 0x1000-byte chunk read through out_cap 7: remaining and total tracked across calls */
	static char s[8192], out[8];
	size_t n = 0;
	memcpy(s, "1000\r\n", 6);
	n = 6;
	for (int i = 0; i < 4096; i++)
		s[n++] = (char)('a' + i % 26);
	memcpy(s + n, "\r\n0\r\n\r\n", 7);
	n += 7;
	zh__chunked_t c = {0};
	size_t off = 0, total = 0;
	while (!zh__chunked_done(&c)) {
		size_t prod;
		long r = zh__chunked_decode(&c, s + off, n - off, out, 7, &prod, 4096);
		cr_assert(r > 0 || prod > 0, "no progress at %zu", off);
		for (size_t i = 0; i < prod; i++)
			cr_assert_eq(out[i], (char)('a' + (total + i) % 26));
		total += prod;
		off += (size_t)r;
	}
	cr_assert_eq(total, 4096);
	cr_assert_eq(off, n);
	cr_assert_eq(c.total, 4096);
}

Test(chunked, done_state)
{
	zh__chunked_t c = {0};
	char out[16];
	size_t prod;
	cr_assert(!zh__chunked_done(&c), "fresh state is not done");
	cr_assert_eq(zh__chunked_decode(&c, "3\r\nab", 5, out, sizeof out, &prod, 100), 5);
	cr_assert_eq(prod, 2);
	cr_assert(!zh__chunked_done(&c), "mid-chunk is not done");
	cr_assert_eq(zh__chunked_decode(&c, "c\r\n0\r\n", 6, out, sizeof out, &prod, 100), 6);
	cr_assert(prod == 1 && out[0] == 'c');
	cr_assert(!zh__chunked_done(&c), "after the last-chunk line, trailers may follow");
	cr_assert_eq(zh__chunked_decode(&c, "\r\nNEXT", 6, out, sizeof out, &prod, 100), 2);
	cr_assert(zh__chunked_done(&c));
	cr_assert_eq(zh__chunked_decode(&c, "NEXT", 4, out, sizeof out, &prod, 100), 0);
	cr_assert_eq(prod, 0);
}

/* Property check: the decoder is a byte-at-a-time state machine, so for any input the
 * outcome (error status, or consumed/decoded/done) must not depend on how it is split. */
Test(chunked, mutated_inputs_split_agrees_with_whole)
{
	enum { CAP = 256, ITER = 8000 };
	static char s[CAP], w_out[CAP], b_out[CAP];
	size_t nrows = sizeof chunk_ok_rows / sizeof chunk_ok_rows[0];
	for (int it = 0; it < ITER; it++) {
		const chunk_row_t *seed = &chunk_ok_rows[rng() % nrows];
		uint64_t max = (rng() & 1) ? row_max(seed) : 1 + rng() % 40;
		size_t n = seed->in_len < CAP ? seed->in_len : CAP;
		memcpy(s, seed->in, n);
		n = mutate(s, n, CAP);

		zh__chunked_t cw = {0}, cb = {0};
		size_t wp = 0, bn = 0;
		const char *in = at_guard(s, n);
		long w = zh__chunked_decode(&cw, in, n, w_out, CAP, &wp, max);
		cr_assert(w >= 0 ? (size_t)w <= n && wp <= (size_t)w : (w == -400 || w == -413),
			  "mutated '%s' #%d: whole returned %ld", seed->desc, it, w);

		long b = 0, consumed = 0;
		for (size_t i = 0; i < n; i++) {
			size_t prod;
			in = at_guard(s + i, 1);
			b = zh__chunked_decode(&cb, in, 1, b_out + bn, 1, &prod, max);
			if (b < 0)
				break;
			bn += prod;
			consumed += b;
		}
		if (w < 0) {
			cr_assert(b == w, "mutated '%s' #%d (\"%.*s\"): whole %ld, bytewise %ld",
				  seed->desc, it, (int)n, s, w, b);
		} else {
			cr_assert(b >= 0 && consumed == w && bn == wp &&
					  memcmp(w_out, b_out, wp) == 0 &&
					  zh__chunked_done(&cw) == zh__chunked_done(&cb),
				  "mutated '%s' #%d (\"%.*s\"): whole %ld/%zu, bytewise %ld/%ld/%zu",
				  seed->desc, it, (int)n, s, w, wp, b, consumed, bn);
		}
	}
}

/* ---- byte classes ------------------------------------------------------------------------- */

typedef struct bytes_row {
	const char *desc;
	const char *s;
	size_t len;
	bool expect;
} bytes_row_t;

#define BYTES(d, lit, e) {.desc = (d), .s = (lit), .len = sizeof(lit) - 1, .expect = (e)}

static bytes_row_t field_value_rows[] = {
	BYTES("empty value", "", true),
	BYTES("plain text", "text/html; charset=utf-8", true),
	BYTES("internal spaces and tabs", "a b\tc", true),
	BYTES("leading and trailing whitespace", " \tv\t ", true),
	BYTES("only a tab", "\t", true),
	BYTES("obs-text 0x80 and 0xff", "\x80\xff", true),
	BYTES("UTF-8 over 16 bytes (SIMD path)", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 more text",
	      true),
	BYTES("every printable ASCII byte",
	      " !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`"
	      "abcdefghijklmnopqrstuvwxyz{|}~",
	      true),
	BYTES("NUL", "a\0b", false),
	BYTES("CR", "a\rb", false),
	BYTES("LF", "a\nb", false),
	BYTES("CRLF at the end", "ab\r\n", false),
	BYTES("DEL", "a\x7f", false),
	BYTES("0x01", "\x01", false),
	BYTES("0x1f", "a\x1f", false),
	BYTES("vertical tab", "a\vb", false),
	BYTES("NUL at byte 16 (second SIMD block)", "0123456789abcdef\0", false),
	BYTES("LF at byte 15 (end of the first SIMD block)", "0123456789abcde\nzzzz", false),
	BYTES("DEL in the scalar tail after a SIMD block", "0123456789abcdef01\x7f", false),
	BYTES("tabs at every position over 40 bytes",
	      "\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t", true),
};

ParameterizedTestParameters(classes, field_value)
{
	ROW_INDICES(field_value_rows);
}
ParameterizedTest(size_t *idx, classes, field_value)
{
	const bytes_row_t *row = &field_value_rows[*idx];
	const char *p = at_guard(row->s, row->len);
	cr_assert(zh__valid_field_value(p, row->len) == row->expect, "%s: got %d", row->desc,
		  !row->expect);
}

static bool ref_value_byte_ok(unsigned char c) { return !((c < 0x20 && c != '\t') || c == 0x7f); }

/* Every byte value at every position of values 1..48 bytes long, over several background
 * bytes (including obs-text, which is negative as a signed char), against the definition. */
Test(classes, field_value_exhaustive)
{
	static const unsigned char bg[] = {'a', 0x80, 0xff, '\t', ' '};
	static char s[64];
	for (size_t g = 0; g < sizeof bg; g++)
		for (size_t len = 1; len <= 48; len++)
			for (size_t pos = 0; pos < len; pos++)
				for (int b = 0; b < 256; b++) {
					memset(s, bg[g], len);
					s[pos] = (char)b;
					const char *p = at_guard(s, len);
					bool want = ref_value_byte_ok((unsigned char)b);
					if (!zh__valid_field_value(p, len) != !want)
						cr_assert_fail("byte %#x at %zu of %zu (background %#x): "
							       "got %d, want %d",
							       b, pos, len, bg[g], !want, want);
				}
	/* a zero-length value is valid and reads nothing */
	cr_assert(zh__valid_field_value(at_guard("", 0), 0));
}

static bytes_row_t token_rows[] = {
	BYTES("empty is not a token", "", false),
	BYTES("GET", "GET", true),
	BYTES("every tchar", "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
	      true),
	BYTES("space", "a b", false),
	BYTES("tab", "a\tb", false),
	BYTES("colon", "Host:", false),
	BYTES("'('", "(", false),
	BYTES("')'", "a)", false),
	BYTES("','", "a,", false),
	BYTES("'/'", "a/", false),
	BYTES("';'", "a;", false),
	BYTES("'<'", "<", false),
	BYTES("'='", "a=b", false),
	BYTES("'>'", ">", false),
	BYTES("'?'", "?", false),
	BYTES("'@'", "@", false),
	BYTES("'['", "[", false),
	BYTES("'\\'", "\\", false),
	BYTES("']'", "]", false),
	BYTES("'{'", "{", false),
	BYTES("'}'", "}", false),
	BYTES("'\"'", "\"", false),
	BYTES("NUL", "a\0", false),
	BYTES("DEL", "a\x7f", false),
	BYTES("obs-text", "a\xc3\xa9", false),
};

ParameterizedTestParameters(classes, token)
{
	ROW_INDICES(token_rows);
}
ParameterizedTest(size_t *idx, classes, token)
{
	const bytes_row_t *row = &token_rows[*idx];
	const char *p = at_guard(row->s, row->len);
	cr_assert(zh__valid_token(p, row->len) == row->expect, "%s: got %d", row->desc,
		  !row->expect);
}

static bool ref_tchar(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

Test(classes, token_exhaustive)
{
	for (int b = 0; b < 256; b++) {
		char s[3] = {'x', (char)b, 'y'};
		bool want = ref_tchar((unsigned char)b);
		cr_assert_eq(!!zh__token_char[b], want, "zh__token_char[%#x]", b);
		cr_assert_eq(zh__valid_token(at_guard(s, 3), 3), want, "token x%#xy", b);
		cr_assert_eq(zh__valid_token(at_guard(s + 1, 1), 1), want, "token %#x", b);
	}
}

typedef struct ieq_row {
	const char *desc;
	const char *a, *b;
	size_t len;
	bool expect;
} ieq_row_t;

static ieq_row_t ieq_rows[] = {
	{"identical", "content-length", "content-length", 14, true},
	{"different case", "Content-Length", "cONTENT-lENGTH", 14, true},
	{"all upper vs all lower letters", "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz",
	 26, true},
	{"one letter differs", "chunked", "chunkex", 7, false},
	{"only the first len bytes are compared", "keep-alive", "KEEP-xxxxx", 4, true},
	{"zero length is equal", "a", "b", 0, true},
	{"'@' vs '`' differ only by 0x20 but are not letters", "@", "`", 1, false},
	{"'[' vs '{'", "[", "{", 1, false},
	{"']' vs '}'", "]", "}", 1, false},
	{"'^' vs '~'", "^", "~", 1, false},
	{"'_' vs DEL", "_", "\x7f", 1, false},
	{"NUL vs space", "\0", " ", 1, false},
	{"'0' vs 0x10", "0", "\x10", 1, false},
	{"'-' vs CR", "-", "\r", 1, false},
	{"0xc1 vs 0xe1 (Latin-1 letters are not folded)", "\xc1", "\xe1", 1, false},
	{"identical non-ASCII", "\xc3\xa9", "\xc3\xa9", 2, true},
};

ParameterizedTestParameters(classes, ieq)
{
	ROW_INDICES(ieq_rows);
}
ParameterizedTest(size_t *idx, classes, ieq)
{
	const ieq_row_t *row = &ieq_rows[*idx];
	char *b = out_guard(row->len);
	memcpy(b, row->b, row->len);
	const char *a = at_guard(row->a, row->len);
	cr_assert(zh__ieq(a, b, row->len) == row->expect, "%s: got %d", row->desc, !row->expect);
	cr_assert(zh__ieq(b, a, row->len) == row->expect, "%s (swapped): got %d", row->desc,
		  !row->expect);
}

Test(classes, ieq_exhaustive)
{
	for (int x = 0; x < 256; x++)
		for (int y = 0; y < 256; y++) {
			char a = (char)x, b = (char)y;
			int lx = (x >= 'A' && x <= 'Z') ? x + 32 : x;
			int ly = (y >= 'A' && y <= 'Z') ? y + 32 : y;
			bool want = lx == ly;
			if (zh__ieq(&a, &b, 1) != want)
				cr_assert_fail("zh__ieq(%#x, %#x) = %d, want %d", x, y, !want, want);
		}
}
