/* test_proxy.c — src/proxy.c: CIDR parsing and matching, the Forwarded (RFC 7239) and
 * X-Forwarded-For parsers (table-driven), and zh_req_client_addr on a real server in this
 * process (127.0.0.1) with 127.0.0.0/8 trusted or not.
 */
#include <criterion/criterion.h>

#include "internal.h"
#include "zh_test_client.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

/* The hops as text: "1.2.3.4 ? 2001:db8::1" ("?" for an unknown hop), or "ERR". */
static const char *hops(bool forwarded, const char *v)
{
	static char out[1024];
	zh__fwd_t f = {0};
	size_t n = 0;
	if (zh__fwd_parse(&f, forwarded, v, strlen(v)) < 0)
		return "ERR";
	out[0] = '\0';
	for (unsigned i = 0; i < f.n; i++) {
		char t[INET6_ADDRSTRLEN] = "?";
		static const uint8_t v4[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
		if (f.hop[i].known) {
			if (memcmp(f.hop[i].addr, v4, 12) == 0)
				inet_ntop(AF_INET, f.hop[i].addr + 12, t, sizeof t);
			else
				inet_ntop(AF_INET6, f.hop[i].addr, t, sizeof t);
		}
		n += (size_t)snprintf(out + n, sizeof out - n, "%s%s", i ? " " : "", t);
	}
	return out;
}

static const struct {
	const char *desc, *in, *out;
} forwarded_rows[] = {
	{"one for", "for=192.0.2.60", "192.0.2.60"},
	{"RFC 7239 §4 example", "for=192.0.2.60;proto=http;by=203.0.113.43", "192.0.2.60"},
	{"a list", "for=192.0.2.43, for=198.51.100.17", "192.0.2.43 198.51.100.17"},
	{"quoted IPv6 with port", "for=\"[2001:db8:cafe::17]:4711\"", "2001:db8:cafe::17"},
	{"quoted IPv4 with port", "for=\"192.0.2.43:47011\"", "192.0.2.43"},
	{"case-insensitive name", "For=10.0.0.1", "10.0.0.1"},
	{"unknown", "for=unknown, for=10.0.0.1", "? 10.0.0.1"},
	{"obfuscated", "for=_hidden, for=10.0.0.1", "? 10.0.0.1"},
	{"obfuscated port", "for=\"10.0.0.1:_p1\"", "10.0.0.1"},
	{"no for= is an unknown hop", "proto=https;by=10.0.0.9", "?"},
	{"empty elements skipped", " , for=10.0.0.1 ,, ", "10.0.0.1"},
	{"OWS around ';'", "for=10.0.0.1 ; proto=http", "10.0.0.1"},
	{"comma inside quotes", "for=10.0.0.1;x=\"a,b\", for=10.0.0.2", "10.0.0.1 10.0.0.2"},
	{"unquoted IPv6 is malformed", "for=[2001:db8::1]", "ERR"},
	{"bare IPv6 is malformed", "for=\"2001:db8::1\"", "ERR"},
	{"hostname is malformed", "for=example.com", "ERR"},
	{"for twice", "for=10.0.0.1;for=10.0.0.2", "ERR"},
	{"no value", "for=", "ERR"},
	{"no '='", "for", "ERR"},
	{"unterminated quote", "for=\"10.0.0.1", "ERR"},
	{"escape in quotes", "for=\"10.0.0\\.1\"", "ERR"},
	{"junk after value", "for=10.0.0.1 x", "ERR"},
	{"bad port", "for=\"10.0.0.1:123456\"", "ERR"},
	{"IPv4 with leading junk", "for=010.0.0.1x", "ERR"},
	{"v4 in brackets", "for=\"[10.0.0.1]\"", "ERR"},
	{"empty brackets", "for=\"[]\"", "ERR"},
	{"empty field", "", ""},
};

static const struct {
	const char *desc, *in, *out;
} xff_rows[] = {
	{"one", "203.0.113.7", "203.0.113.7"},
	{"a chain", "203.0.113.7, 10.0.0.1,10.0.0.2", "203.0.113.7 10.0.0.1 10.0.0.2"},
	{"bare IPv6", "2001:db8::1, ::1", "2001:db8::1 ::1"},
	{"bracketed IPv6 with port", "[2001:db8::1]:443", "2001:db8::1"},
	{"IPv4 with port", "203.0.113.7:5555", "203.0.113.7"},
	{"v4-mapped", "::ffff:203.0.113.7", "203.0.113.7"},
	{"unknown", "unknown, 10.0.0.1", "? 10.0.0.1"},
	{"empty items", ", 10.0.0.1 ,", "10.0.0.1"},
	{"hostname", "proxy.example", "ERR"},
	{"garbage", "1.2.3.4.5", "ERR"},
	{"space inside", "10.0.0.1 10.0.0.2", "ERR"},
	{"zone id", "fe80::1%eth0", "ERR"},
};

Test(proxy, forwarded_table)
{
	for (size_t i = 0; i < sizeof forwarded_rows / sizeof forwarded_rows[0]; i++)
		cr_expect_str_eq(hops(true, forwarded_rows[i].in), forwarded_rows[i].out, "%s: %s",
				 forwarded_rows[i].desc, forwarded_rows[i].in);
}

Test(proxy, x_forwarded_for_table)
{
	for (size_t i = 0; i < sizeof xff_rows / sizeof xff_rows[0]; i++)
		cr_expect_str_eq(hops(false, xff_rows[i].in), xff_rows[i].out, "%s: %s",
				 xff_rows[i].desc, xff_rows[i].in);
}

Test(proxy, at_most_32_hops)
{
	char v[64 * 12] = "";
	zh__fwd_t f = {0};
	for (int i = 0; i < 33; i++)
		strcat(v, i ? ",10.0.0.1" : "10.0.0.1");
	cr_assert_eq(zh__fwd_parse(&f, false, v, strlen(v)), -E2BIG);
}

static bool in(const char *cidr, const char *ip)
{
	zh__cidr_t c;
	zh__fwd_t f = {0};
	cr_assert(zh__cidr_parse(cidr, strlen(cidr), &c), "%s", cidr);
	cr_assert_eq(zh__fwd_parse(&f, false, ip, strlen(ip)), 0, "%s", ip);
	return zh__cidr_match(&c, 1, f.hop[0].addr);
}

Test(proxy, cidrs)
{
	zh__cidr_t list[4];
	cr_assert(in("127.0.0.0/8", "127.9.9.9"));
	cr_assert(!in("127.0.0.0/8", "128.0.0.1"));
	cr_assert(in("10.1.2.3/8", "10.200.0.1"), "host bits are cleared");
	cr_assert(in("192.0.2.1", "192.0.2.1"));
	cr_assert(!in("192.0.2.1", "192.0.2.2"));
	cr_assert(in("192.0.2.0/25", "192.0.2.127"));
	cr_assert(!in("192.0.2.0/25", "192.0.2.128"));
	cr_assert(in("0.0.0.0/0", "8.8.8.8"));
	cr_assert(!in("0.0.0.0/0", "2001:db8::1"), "IPv4 /0 is every IPv4 address only");
	cr_assert(in("::/0", "8.8.8.8"), "IPv6 /0 is everything, mapped IPv4 included");
	cr_assert(in("2001:db8::/32", "2001:db8:ffff::1"));
	cr_assert(!in("2001:db8::/33", "2001:db8:8000::1"));
	cr_assert(in("::1", "::1"));
	cr_assert(in("::ffff:127.0.0.0/104", "127.0.0.5"));
	for (size_t i = 0; i < 9; i++) {
		static const char *const bad[] = {"", "10.0.0.0/33", "::/129", "10.0.0.0/",
						  "10.0.0.0/-1", "10.0.0/8", "host/8", "1.2.3.4/08x",
						  "[::1]"};
		zh__cidr_t c;
		cr_assert(!zh__cidr_parse(bad[i], strlen(bad[i]), &c), "%s", bad[i]);
	}
	cr_assert_eq(zh__cidr_list_parse("10.0.0.0/8, ::1 192.168.0.0/16,", list, 4), 3);
	cr_assert_eq(zh__cidr_list_parse("10.0.0.0/8, nope", list, 4), -EINVAL);
	cr_assert_eq(zh__cidr_list_parse("1.1.1.1 2.2.2.2 3.3.3.3 4.4.4.4 5.5.5.5", list, 4),
		     -ENOSPC);
	cr_assert_eq(zh__cidr_list_parse("", list, 4), 0);
}

/* ---- zh_req_client_addr on a server --------------------------------------------------------- */

static zh_server_t *srv;
static pthread_t runner;

static void h_client(zh_request_t *req, zh_response_t *resp, void *arg)
{
	char body[128], c[INET6_ADDRSTRLEN], p[INET6_ADDRSTRLEN];
	int n;
	(void)arg;
	zh_req_client_str(req, c, sizeof c);
	zh_req_peer_str(req, p, sizeof p);
	n = snprintf(body, sizeof body, "client=%s peer=%s", c, p);
	(void)zh_reply(resp, 200, "text/plain", body, (size_t)n);
}

static void start_with(const char *trusted)
{
	zh_config_t cfg;
	int err = 0;
	zh_tc_config(&cfg);
	cfg.trusted_proxies = trusted;
	srv = zh_server_new(&cfg, &err);
	cr_assert_not_null(srv, "zh_server_new: %d", err);
	cr_assert_eq(zh_server_route(srv, ZH_GET, "/c", 0, h_client, NULL), 0);
	cr_assert_eq(pthread_create(&runner, NULL, zh_tc_run, srv), 0);
}

static void stop(void)
{
	zh_server_stop(srv);
	pthread_join(runner, NULL);
	zh_server_free(srv);
}

static const char *client_of(const char *headers)
{
	static char buf[4096];
	char req[1024];
	int fd = zh_tc_connect(zh_server_port(srv), 5, 0);
	snprintf(req, sizeof req, "GET /c HTTP/1.1\r\nHost: x\r\n%sConnection: close\r\n\r\n",
		 headers);
	send_all(fd, req);
	zh_tc_read_to_close(fd, buf, sizeof buf);
	close(fd);
	return zh_tc_body_of(buf);
}

Test(client, trusted_peer_names_the_client)
{
	start_with("127.0.0.0/8, 10.0.0.0/8");
	cr_assert_str_eq(client_of(""), "client=127.0.0.1 peer=127.0.0.1");
	cr_assert_str_eq(client_of("X-Forwarded-For: 203.0.113.7\r\n"),
			 "client=203.0.113.7 peer=127.0.0.1");
	/* the rightmost untrusted: a client cannot pose as anyone by prepending */
	cr_assert_str_eq(client_of("X-Forwarded-For: 6.6.6.6, 203.0.113.7, 10.1.1.1\r\n"),
			 "client=203.0.113.7 peer=127.0.0.1");
	/* two field lines are one list */
	cr_assert_str_eq(client_of("X-Forwarded-For: 198.51.100.1\r\n"
				   "X-Forwarded-For: 10.0.0.1\r\n"),
			 "client=198.51.100.1 peer=127.0.0.1");
	/* every hop trusted: the leftmost */
	cr_assert_str_eq(client_of("X-Forwarded-For: 10.0.0.5, 10.0.0.6\r\n"),
			 "client=10.0.0.5 peer=127.0.0.1");
	/* Forwarded wins over X-Forwarded-For */
	cr_assert_str_eq(client_of("X-Forwarded-For: 198.51.100.1\r\n"
				   "Forwarded: for=\"[2001:db8::7]:99\";proto=https\r\n"),
			 "client=2001:db8::7 peer=127.0.0.1");
	/* malformed, unknown, obfuscated: the peer */
	cr_assert_str_eq(client_of("X-Forwarded-For: evil.example\r\n"),
			 "client=127.0.0.1 peer=127.0.0.1");
	cr_assert_str_eq(client_of("Forwarded: for=unknown\r\n"), "client=127.0.0.1 peer=127.0.0.1");
	cr_assert_str_eq(client_of("Forwarded: for=_x, for=10.0.0.1\r\n"),
			 "client=127.0.0.1 peer=127.0.0.1");
	cr_assert_str_eq(client_of("Forwarded: for=198.51.100.1, for=x.y\r\n"),
			 "client=127.0.0.1 peer=127.0.0.1");
	stop();
}

Test(client, untrusted_peer_is_the_client)
{
	start_with("10.0.0.0/8");
	cr_assert_str_eq(client_of("X-Forwarded-For: 203.0.113.7\r\n"),
			 "client=127.0.0.1 peer=127.0.0.1");
	cr_assert_str_eq(client_of("Forwarded: for=203.0.113.7\r\n"),
			 "client=127.0.0.1 peer=127.0.0.1");
	stop();
}

Test(client, bad_trusted_proxies_are_refused)
{
	zh_config_t cfg;
	int err = 0;
	zh_tc_config(&cfg);
	cfg.trusted_proxies = "127.0.0.0/8, 10.0.0.0/99";
	cr_assert_null(zh_server_new(&cfg, &err));
	cr_assert_eq(err, -EINVAL);
}
