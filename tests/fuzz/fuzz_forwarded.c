/* fuzz_forwarded.c — libFuzzer target for the Forwarded (RFC 7239) and X-Forwarded-For
 * parsers of src/proxy.c (zh__fwd_parse) and the CIDR parser.
 *
 * Input: byte 0 holds flags (bit 0: Forwarded syntax, else X-Forwarded-For; bit 1: also
 * parse the rest as a CIDR list), the rest is one field value (any bytes).
 *
 * Checked:
 *  - the parser stays inside the value (the harness hands it an exact-size copy: ASan sees
 *    any read past it), and never reports more than ZH__FWD_MAX hops;
 *  - it is deterministic: a second parse of the same value gives the same hops;
 *  - every address it reports is a real one: written as text (inet_ntop) and parsed again
 *    as an X-Forwarded-For value, it is the same single hop; an IPv4 hop's dotted quad
 *    appears in the input (only canonical dotted decimal is taken, so no other spelling
 *    can smuggle an address in);
 *  - an X-Forwarded-For value has at most one hop per comma-separated item;
 *  - a CIDR that parses matches its own address, and its host bits are clear.
 */
#include "internal.h"

#include "fuzz_common.h"

#include <arpa/inet.h>

static void same_hop(const uint8_t a[16])
{
	static const uint8_t v4[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	char text[INET6_ADDRSTRLEN];
	zh__fwd_t g = {0};
	bool is4 = memcmp(a, v4, 12) == 0;
	CHECK(inet_ntop(is4 ? AF_INET : AF_INET6, is4 ? a + 12 : a, text, sizeof text));
	CHECK(zh__fwd_parse(&g, false, text, strlen(text)) == 0, "%s", text);
	CHECK(g.n == 1 && g.hop[0].known && memcmp(g.hop[0].addr, a, 16) == 0, "%s", text);
}

static void check_cidrs(const char *s, size_t len)
{
	zh__cidr_t c[8];
	char *z = malloc(len + 1);
	int n;
	CHECK(z != NULL);
	memcpy(z, s, len);
	z[len] = '\0';
	n = zh__cidr_list_parse(z, c, 8);
	for (int i = 0; i < n; i++) {
		CHECK(c[i].bits <= 128);
		CHECK(zh__cidr_match(&c[i], 1, c[i].addr));
		for (unsigned b = c[i].bits; b < 128; b++)
			CHECK(!(c[i].addr[b >> 3] & (0x80u >> (b & 7))), "host bit %u", b);
	}
	free(z);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	zh__fwd_t f = {0}, again = {0};
	bool forwarded;
	char *v;
	size_t len, items = 1;
	int r, r2;
	if (size == 0)
		return 0;
	forwarded = data[0] & 1;
	len = size - 1;
	v = malloc(len ? len : 1);
	CHECK(v != NULL);
	memcpy(v, data + 1, len);
	r = zh__fwd_parse(&f, forwarded, v, len);
	r2 = zh__fwd_parse(&again, forwarded, v, len);
	CHECK(r == 0 || r == -EINVAL || r == -E2BIG, "%d", r);
	CHECK(r == r2 && f.n == again.n, "not deterministic");
	CHECK(f.n <= ZH__FWD_MAX);
	for (size_t i = 0; i < len; i++)
		items += v[i] == ',';
	if (r == 0 && !forwarded)
		CHECK(f.n <= items, "%u hops from %zu items", f.n, items);
	for (unsigned i = 0; r == 0 && i < f.n; i++) {
		static const uint8_t v4[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
		CHECK(f.hop[i].known == again.hop[i].known);
		if (!f.hop[i].known)
			continue;
		CHECK(memcmp(f.hop[i].addr, again.hop[i].addr, 16) == 0);
		same_hop(f.hop[i].addr);
		if (memcmp(f.hop[i].addr, v4, 12) == 0 && !memmem(v, len, "::", 2)) {
			char text[INET_ADDRSTRLEN];
			inet_ntop(AF_INET, f.hop[i].addr + 12, text, sizeof text);
			CHECK(memmem(v, len, text, strlen(text)) != NULL, "%s not in the input", text);
		}
	}
	if (data[0] & 2)
		check_cidrs(v, len);
	free(v);
	return 0;
}
