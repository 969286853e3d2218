/* fuzz_common.h — what the libFuzzer harnesses share: a failed invariant aborts (libFuzzer
 * then saves the input as a crash reproducer), input slicing, a deterministic split stream.
 * Harness-only: never linked into the library. */
#ifndef ZH_FUZZ_COMMON_H
#define ZH_FUZZ_COMMON_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* abort(), not assert(): it must fire in every build, and the message names the invariant */
__attribute__((noreturn, format(printf, 3, 4))) static inline void
fuzz_fail(const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "\nINVARIANT FAILED at %s:%d: ", file, line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}
#define CHECK(cond, ...)                                                                       \
	do {                                                                                   \
		if (!(cond))                                                                   \
			fuzz_fail(__FILE__, __LINE__, "(" #cond ") " __VA_ARGS__);             \
	} while (0)

/* Reads from the front of the fuzzer's input; past the end it yields zeros, so every input
 * is a valid program for the harness. */
typedef struct {
	const uint8_t *p;
	size_t n;
} fz_in_t;
static inline uint8_t fz_u8(fz_in_t *in)
{
	if (in->n == 0)
		return 0;
	in->n--;
	return *in->p++;
}
static inline uint64_t fz_u64(fz_in_t *in)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | fz_u8(in);
	return v;
}

/* Chunk sizes for feeding bytes in pieces: a small PRNG seeded from input bytes, so a
 * reproducer replays the same split. Mostly short pieces (the interesting boundaries sit a
 * few bytes apart), sometimes long ones. */
typedef struct {
	uint64_t s;
} fz_split_t;
static inline size_t fz_next_piece(fz_split_t *sp)
{
	uint64_t x = sp->s ? sp->s : 0x9e3779b97f4a7c15ull;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	sp->s = x;
	switch (x & 3) {
	case 0:
		return 1;
	case 1:
		return 1 + (x >> 8) % 4;
	case 2:
		return 1 + (x >> 8) % 17;
	default:
		return 1 + (x >> 8) % 200;
	}
}

/* An exact-size heap copy: the byte after len is out of bounds for ASan, so a parser that
 * looks one byte too far is caught (the fuzzer's own buffer is exact-size too, but pieces
 * fed incrementally are prefixes of something longer). */
static inline char *fz_dup(const void *p, size_t len)
{
	char *d = malloc(len ? len : 1);
	if (d == NULL)
		abort();
	if (len)
		memcpy(d, p, len);
	return d;
}

#endif
