/* fuzz_form.c — libFuzzer target for the query string / urlencoded form reader (query.c:
 * zh_form_next, zh_form_decode, zh_form_get_raw, zh_form_get), linked with the library.
 *
 * Input: byte 0 picks the name looked up (bits 0-5: the index of a pair whose decoded name
 * is used, bit 6: a name no pair has, bit 7: decode with a one-byte-short buffer); the rest
 * is the query or body, fed as an exact-size heap copy (reading past it is an ASan report).
 *
 * A reference decoder written here (split at '&', skip empty pieces, split at the first
 * '=', '+' is a space, %XX needs two hex digits) predicts every pair. Checked:
 *  - the iterator yields exactly the reference's pairs (raw slices inside the input, in
 *    order), then 0, or -E2BIG after ZH_FORM_MAX_PAIRS of them, or -EMSGSIZE for an input
 *    over ZH_FORM_MAX_LEN; errors repeat;
 *  - zh_form_decode of each name and value gives the reference's bytes or -EILSEQ exactly
 *    when the reference finds a bad escape; never more bytes than the raw slice; in place
 *    gives the same; a buffer one byte short gives -ENOSPC;
 *  - zh_form_get(_raw) of a name finds the reference's first match, or -ENOENT, or
 *    -EILSEQ when a name before it (or the sought value) has a bad escape.
 */
#include "zerohttp.h"

#include "fuzz_common.h"

#include <errno.h>
#include <stdbool.h>

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

/* the reference: decoded length, or -1 for a bad escape */
static long ref_decode(const char *p, size_t n, char *out)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '+') {
			out[o++] = ' ';
		} else if (p[i] == '%') {
			if (i + 2 >= n)
				return -1;
			if (hexv((unsigned char)p[i + 1]) < 0 || hexv((unsigned char)p[i + 2]) < 0)
				return -1;
			out[o++] = (char)(hexv((unsigned char)p[i + 1]) << 4 | hexv((unsigned char)p[i + 2]));
			i += 2;
		} else {
			out[o++] = p[i];
		}
	}
	return (long)o;
}

typedef struct {
	size_t noff, nlen, voff, vlen;
} ref_pair_t;

enum { MAX_REF = ZH_FORM_MAX_PAIRS + 1 };
static ref_pair_t ref[MAX_REF];

/* the reference's pairs (at most MAX_REF): their count */
static size_t ref_pairs(const char *s, size_t n)
{
	size_t count = 0, at = 0;
	while (at < n && count < MAX_REF) {
		size_t end = at, eq;
		while (end < n && s[end] != '&')
			end++;
		if (end > at) {
			for (eq = at; eq < end && s[eq] != '='; eq++)
				;
			ref[count].noff = at;
			ref[count].nlen = eq - at;
			ref[count].voff = eq < end ? eq + 1 : end;
			ref[count].vlen = eq < end ? end - eq - 1 : 0;
			count++;
		}
		at = end + 1;
	}
	return count;
}

static void check_decode(const char *s, size_t off, size_t len, bool short_buf)
{
	static char want[ZH_FORM_MAX_LEN + 1], got[ZH_FORM_MAX_LEN + 1];
	long w = ref_decode(s + off, len, want);
	ssize_t g = zh_form_decode((zh_slice_t){s + off, len}, got, sizeof got);
	char *copy;
	if (w < 0) {
		CHECK(g == -EILSEQ, "bad escape: %zd", g);
		return;
	}
	CHECK(g == w && memcmp(got, want, (size_t)w) == 0, "decoded %zd, want %ld", g, w);
	CHECK((size_t)g <= len, "longer than the raw slice");
	copy = fz_dup(s + off, len);
	g = zh_form_decode((zh_slice_t){copy, len}, copy, len);
	CHECK(g == w && memcmp(copy, want, (size_t)w) == 0, "in place: %zd", g);
	free(copy);
	if (short_buf && w > 0)
		CHECK(zh_form_decode((zh_slice_t){s + off, len}, got, (size_t)w - 1) == -ENOSPC,
		      "short buffer");
}

/* the reference's answer to a lookup of name (nlen bytes, no NUL): the index, or -1 for
 * none, or -2 for a bad escape in a name before the match */
static long ref_lookup(const char *s, size_t count, const char *name, size_t nlen)
{
	static char d[ZH_FORM_MAX_LEN + 1];
	for (size_t i = 0; i < count && i < ZH_FORM_MAX_PAIRS; i++) {
		long n = ref_decode(s + ref[i].noff, ref[i].nlen, d);
		if (n < 0)
			return -2;
		if ((size_t)n == nlen && memcmp(d, name, nlen) == 0)
			return (long)i;
	}
	return count > ZH_FORM_MAX_PAIRS ? -3 : -1;
}

static void check_lookup(const char *s, size_t len, size_t count, uint8_t sel)
{
	static char name[ZH_FORM_MAX_LEN + 2], buf[ZH_FORM_MAX_LEN + 1];
	zh_slice_t src = {s, len}, raw;
	long nl, want;
	int r;
	if (sel & 0x40 || count == 0) {
		memcpy(name, "\x01no such name", 14);
		nl = 13;
	} else {
		size_t usable = count < ZH_FORM_MAX_PAIRS ? count : ZH_FORM_MAX_PAIRS;
		const ref_pair_t *p = &ref[(sel & 0x3f) % usable];
		nl = ref_decode(s + p->noff, p->nlen, name);
		if (nl < 0 || memchr(name, '\0', (size_t)nl))
			return; /* not a C string: cannot be looked up */
	}
	name[nl] = '\0';
	want = ref_lookup(s, count, name, (size_t)nl);
	r = zh_form_get_raw(src, name, &raw);
	if (want == -2) {
		CHECK(r == -EILSEQ, "bad name before the match: %d", r);
	} else if (want == -3) {
		CHECK(r == -E2BIG, "past the pair limit: %d", r);
	} else if (want == -1) {
		CHECK(r == 0, "absent: %d", r);
		CHECK(zh_form_get(src, name, buf, sizeof buf) == -ENOENT, "absent: -ENOENT");
	} else {
		const ref_pair_t *p = &ref[want];
		long v = ref_decode(s + p->voff, p->vlen, buf);
		ssize_t g;
		CHECK(r == 1 && raw.ptr == s + p->voff && raw.len == p->vlen, "pair %ld: %d", want, r);
		g = zh_form_get(src, name, buf, sizeof buf);
		CHECK(v < 0 ? g == -EILSEQ : g == v, "value of pair %ld: %zd, want %ld", want, g, v);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	zh_form_iter_t it;
	zh_slice_t n, v;
	uint8_t sel;
	size_t len, count, i = 0;
	char *s;
	int r;
	if (size == 0)
		return 0;
	sel = data[0];
	len = size - 1;
	s = fz_dup(data + 1, len);
	zh_form_iter_init(&it, (zh_slice_t){s, len});
	if (len > ZH_FORM_MAX_LEN) {
		CHECK(zh_form_next(&it, &n, &v) == -EMSGSIZE, "over the length limit");
		CHECK(zh_form_get_raw((zh_slice_t){s, len}, "a", &n) == -EMSGSIZE, "lookup too");
		free(s);
		return 0;
	}
	count = ref_pairs(s, len);
	while ((r = zh_form_next(&it, &n, &v)) > 0) {
		CHECK(i < count && i < ZH_FORM_MAX_PAIRS, "an extra pair (%zu)", i);
		CHECK(n.ptr == s + ref[i].noff && n.len == ref[i].nlen, "pair %zu name", i);
		CHECK(v.ptr == s + ref[i].voff && v.len == ref[i].vlen, "pair %zu value", i);
		check_decode(s, ref[i].noff, ref[i].nlen, sel & 0x80);
		check_decode(s, ref[i].voff, ref[i].vlen, sel & 0x80);
		i++;
	}
	if (count > ZH_FORM_MAX_PAIRS) {
		CHECK(r == -E2BIG && i == ZH_FORM_MAX_PAIRS, "limit: %d after %zu", r, i);
		CHECK(zh_form_next(&it, &n, &v) == -E2BIG, "the error repeats");
	} else {
		CHECK(r == 0 && i == count, "end: %d after %zu of %zu", r, i, count);
		CHECK(zh_form_next(&it, &n, &v) == 0, "the end repeats");
	}
	check_lookup(s, len, count, sel);
	free(s);
	return 0;
}
