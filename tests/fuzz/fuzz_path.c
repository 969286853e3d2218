/* fuzz_path.c — libFuzzer target for the static-file path normalizer, normalize() in
 * static.c (a static function: static.c is included here, and the harness links the other
 * library sources without it).
 *
 * Input: byte 0 holds flags (bit 0: dotfiles on; bit 1: a tiny output capacity, 1 + bits
 * 2-7), the rest is the request path as the router hands it over (any bytes: the parser
 * already limits them, the normalizer must not rely on it).
 *
 * normalize() returns "a/b/c": relative, decoded once, no dot segments, "" for the root.
 * Checked:
 *  - a reference written here (split at '/', percent-decode each segment, drop "" and ".",
 *    refuse "..", refuse dotfiles unless allowed) gives the same verdict and bytes;
 *  - the result: no leading or trailing '/', no "//", no "." or ".." segment (so it cannot
 *    climb out of the root), no control byte, NUL or backslash, no dot-segment when
 *    dotfiles are off, never longer than the capacity; a tiny capacity gives either 414 or
 *    the same result as a large one;
 *  - the redirect target the handler would send ("/" + the result re-encoded, as
 *    redirect() builds it) is a valid request-target path, normalizes to the same result and
 *    is canonical (no redirect loop); an input the handler deems canonical is that target
 *    once RFC 3986 §6.2.2 normalized (unreserved triplets decoded, hex digits upper-case):
 *    one spelling per file up to URI equivalence, which the router applies too, so no
 *    other route's path reaches a file;
 *  - idempotence: normalizing the redirect target again changes nothing.
 */
#include "../../src/static.c"

#include "fuzz_common.h"

/* in with RFC 3986 §6.2.2.1/§6.2.2.2 applied, written independently of static.c: triplets
 * of unreserved characters decoded, the hex digits of the others in upper case. */
static size_t uri_normalized(const char *in, size_t len, char *out)
{
	static const char unreserved[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
					 "0123456789-._~";
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		int hi = i + 2 < len && in[i] == '%' ? zh__hexval((unsigned char)in[i + 1]) : -1;
		int lo = hi >= 0 ? zh__hexval((unsigned char)in[i + 2]) : -1;
		if (lo < 0) {
			out[o++] = in[i];
		} else if ((hi << 4 | lo) != 0 && strchr(unreserved, hi << 4 | lo)) {
			out[o++] = (char)(hi << 4 | lo);
			i += 2;
		} else {
			out[o++] = '%';
			out[o++] = "0123456789ABCDEF"[hi];
			out[o++] = "0123456789ABCDEF"[lo];
			i += 2;
		}
	}
	return o;
}

/* Returns the length or -status, like normalize(). */
static int reference(const char *in, size_t len, bool dotfiles, char *out)
{
	size_t o = 0, i = 0;
	for (;;) {
		size_t s = i, seg = o;
		char *d;
		while (i < len && in[i] != '/')
			i++;
		/* decode the segment [s, i) */
		d = out + o;
		for (size_t k = s; k < i; k++) {
			unsigned char c = (unsigned char)in[k];
			if (c == '%') {
				int hi, lo;
				if (k + 2 >= i)
					return -400;
				hi = zh__hexval((unsigned char)in[k + 1]);
				lo = zh__hexval((unsigned char)in[k + 2]);
				if (hi < 0 || lo < 0)
					return -400;
				c = (unsigned char)(hi << 4 | lo);
				k += 2;
				if (c == '/')
					return -400;
			}
			if (c < 0x20 || c == 0x7f || c == '\\')
				return -400;
			*d++ = (char)c;
		}
		{
			size_t n = (size_t)(d - (out + seg));
			if (n == 0 || (n == 1 && out[seg] == '.')) {
				/* empty or ".": nothing */
			} else if (n == 2 && out[seg] == '.' && out[seg + 1] == '.') {
				return -400;
			} else if (out[seg] == '.' && !dotfiles) {
				return -404;
			} else {
				o = seg + n;
				out[o++] = '/';
			}
		}
		if (i == len)
			break;
		i++;
	}
	if (o > 0)
		o--; /* the last separator */
	return (int)o;
}

/* What the parser lets through in a path (parse.c's target_char, without '?'). */
static bool target_byte(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c && strchr("-._~!$&'()*+,;=:@/%", c));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fz_in_t in = {data, size};
	uint8_t flags = fz_u8(&in);
	bool dotfiles = flags & 1, slash, slash2;
	size_t len = in.n, cap = len + 1;
	char *raw = fz_dup(in.p, len);
	char *out = malloc(cap), *ref = malloc(2 * len + 2);
	int n, rn;

	n = normalize(raw, len, out, cap, dotfiles, &slash);
	rn = reference(raw, len, dotfiles, ref);
	CHECK(n == rn, "normalize %d, reference %d", n, rn);
	CHECK(n != -414, "414 with room for the whole input");
	if (n >= 0) {
		CHECK(memcmp(out, ref, (size_t)n) == 0, "normalize and reference differ: %.*s | %.*s",
		      n, out, n, ref);
		CHECK(slash == (len > 0 && raw[len - 1] == '/'), "dir_slash");
	}

	if (flags & 2) { /* the same path into a tiny buffer */
		size_t small = 1 + (flags >> 2);
		char *o2 = malloc(small);
		bool s2;
		int n2 = normalize(raw, len, o2, small, dotfiles, &s2);
		CHECK(n2 == -414 || n2 == n, "capacity %zu: %d, large: %d", small, n2, n);
		CHECK(n2 < 0 || (size_t)n2 <= small, "longer than the capacity");
		if (n2 >= 0)
			CHECK(memcmp(o2, out, (size_t)n2) == 0, "capacity changed the result");
		free(o2);
	}

	if (n >= 0) {
		size_t plen = (size_t)n, ln;
		char *loc = malloc(3 * plen + 4), *o3 = malloc(3 * plen + 4);
		int n3;
		/* the result itself */
		CHECK(plen == 0 || (out[0] != '/' && out[plen - 1] != '/'), "leading/trailing '/'");
		for (size_t i = 0; i < plen; i++) {
			unsigned char c = (unsigned char)out[i];
			CHECK(c >= 0x20 && c != 0x7f && c != '\\', "byte 0x%02x in the result", c);
			if (c == '/' || i == 0) {
				const char *sg = out + (c == '/' ? i + 1 : i);
				size_t left = plen - (size_t)(sg - out);
				size_t sl = (size_t)((const char *)memchr(sg, '/', left) ?
							     (const char *)memchr(sg, '/', left) - sg :
							     (ptrdiff_t)left);
				CHECK(sl > 0, "empty segment");
				CHECK(!(sl == 1 && sg[0] == '.') && !(sl == 2 && sg[0] == '.' && sg[1] == '.'),
				      "dot segment in the result");
				CHECK(dotfiles || sg[0] != '.', "dotfile segment with dotfiles off");
			}
		}
		/* redirect()'s target for it */
		ln = encode_path(out, plen, loc, 3 * plen + 2);
		if (slash && loc[ln - 1] != '/')
			loc[ln++] = '/';
		for (size_t i = 0; i < ln; i++)
			CHECK(target_byte((unsigned char)loc[i]), "redirect byte 0x%02x",
			      (unsigned char)loc[i]);
		n3 = normalize(loc, ln, o3, 3 * plen + 4, dotfiles, &slash2);
		CHECK(n3 == n && memcmp(o3, out, plen) == 0, "redirect target normalizes to %d",
		      n3);
		CHECK(is_canonical((zh_slice_t){loc, ln}, o3, plen, slash2),
		      "redirect target is not canonical: a redirect loop");
		if (is_canonical((zh_slice_t){raw, len}, out, plen, slash)) {
			char *eq = malloc(len + 1);
			size_t en = uri_normalized(raw, len, eq);
			CHECK(ln == en && memcmp(loc, eq, en) == 0,
			      "a canonical input that is not the canonical spelling");
			free(eq);
		}
		free(loc);
		free(o3);
	}
	free(raw);
	free(out);
	free(ref);
	return 0;
}
