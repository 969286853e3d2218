/* test_h2_mem.c — the pool nghttp2 allocates from (src/h2_mem.c): blocks that hold what was
 * asked, class by class; calloc's zeros; realloc; reuse without growth; blocks over 64 KiB
 * mapped alone; and the layout idle HTTP/2 connections rely on: bytes never touched cost no
 * memory (mincore), a fresh calloc'd block included.
 */
#include <criterion/criterion.h>

#include "h2_int.h"

#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static zh__h2mem_t pool;
static nghttp2_mem mem;

static void setup(void)
{
	memset(&pool, 0, sizeof pool);
	zh__h2mem_bind(&mem, &pool);
}

static void teardown(void)
{
	zh__h2mem_unmap(&pool);
}

TestSuite(h2_mem, .init = setup, .fini = teardown);

/* Pages of [p, p + len) resident now. */
static size_t resident_pages(const void *p, size_t len)
{
	long pg = sysconf(_SC_PAGESIZE);
	uintptr_t a = (uintptr_t)p & ~(uintptr_t)(pg - 1);
	size_t n = ((uintptr_t)p + len - a + (size_t)pg - 1) / (size_t)pg, in = 0;
	unsigned char v[64];
	cr_assert_leq(n, sizeof v);
	cr_assert_eq(mincore((void *)a, n * (size_t)pg, v), 0);
	for (size_t i = 0; i < n; i++)
		in += v[i] & 1;
	return in;
}

/* Sizes across every class and past the largest: each block holds its size (filled whole,
 * then checked once all are allocated: a block that overlapped another fails), 16-aligned. */
Test(h2_mem, blocks_hold_what_was_asked)
{
	enum { N = 600 };
	static void *p[N];
	static size_t sz[N];
	for (size_t i = 0; i < N; i++) {
		sz[i] = 1 + i * i * 3 % 90000;
		p[i] = mem.malloc(sz[i], mem.mem_user_data);
		cr_assert_not_null(p[i]);
		cr_assert_eq((uintptr_t)p[i] % 16, 0, "size %zu", sz[i]);
		memset(p[i], (int)(i & 0xff), sz[i]);
	}
	for (size_t i = 0; i < N; i++) {
		const unsigned char *b = p[i];
		cr_assert(b[0] == (i & 0xff) && b[sz[i] - 1] == (i & 0xff), "block %zu", i);
		mem.free(p[i], mem.mem_user_data);
	}
	cr_assert_eq(pool.in_use, 0);
}

/* calloc zeroes a reused block (a fresh one is mmap's zeros already) */
Test(h2_mem, calloc_is_zero_fresh_or_reused)
{
	unsigned char *a = mem.calloc(3, 1000, mem.mem_user_data), *b;
	for (size_t i = 0; i < 3000; i++)
		cr_assert_eq(a[i], 0);
	memset(a, 0xff, 3000);
	mem.free(a, mem.mem_user_data);
	b = mem.calloc(1, 3000, mem.mem_user_data);
	cr_assert_eq(b, a); /* the same class's LIFO list */
	for (size_t i = 0; i < 3000; i++)
		cr_assert_eq(b[i], 0, "byte %zu", i);
	mem.free(b, mem.mem_user_data);
}

Test(h2_mem, realloc_keeps_the_bytes)
{
	char *p = mem.realloc(NULL, 100, mem.mem_user_data), *q;
	memset(p, 'x', 100);
	cr_assert_eq(mem.realloc(p, 60, mem.mem_user_data), p); /* shrinks in place */
	q = mem.realloc(p, 70000, mem.mem_user_data);	       /* to a large block */
	cr_assert_not_null(q);
	for (int i = 0; i < 100; i++)
		cr_assert_eq(q[i], 'x');
	memset(q + 100, 'y', 69900);
	p = mem.realloc(q, 200000, mem.mem_user_data);
	cr_assert_eq(p[99], 'x');
	cr_assert_eq(p[69999], 'y');
	mem.free(p, mem.mem_user_data);
	cr_assert_eq(pool.in_use, 0);
}

/* Streams come and go: the same blocks serve them, the pool does not grow; a large block's
 * mapping goes when it is freed. */
Test(h2_mem, reuse_without_growth)
{
	uint64_t mapped;
	void *a = mem.malloc(500, mem.mem_user_data), *b = mem.malloc(9000, mem.mem_user_data);
	mem.free(a, mem.mem_user_data);
	mem.free(b, mem.mem_user_data);
	mapped = pool.mapped;
	for (int i = 0; i < 10000; i++) {
		a = mem.malloc(500, mem.mem_user_data);
		b = mem.malloc(9000, mem.mem_user_data);
		mem.free(b, mem.mem_user_data);
		mem.free(a, mem.mem_user_data);
	}
	cr_assert_eq(pool.mapped, mapped);
	a = mem.malloc(1 << 20, mem.mem_user_data);
	cr_assert_gt(pool.mapped, mapped);
	mem.free(a, mem.mem_user_data);
	cr_assert_eq(pool.mapped, mapped);
}

/* What an idle session keeps: a frame buffer of which it wrote a frame header, a 4 KiB
 * calloc'd table it never wrote, a 1 KiB ring it never wrote (an HPACK table nothing was
 * indexed into). 200 of each: a frame buffer costs its first page, the others nothing
 * (a header in front of each block, or a memset of fresh zeros, would touch them all). */
Test(h2_mem, untouched_bytes_cost_nothing)
{
	enum { N = 200, FRAMEBUF = 16394 };
	static char *fb[N], *tab[N], *ring[N];
	size_t fb_pages = 0, tab_pages = 0, ring_pages = 0;
	for (int i = 0; i < N; i++) {
		fb[i] = mem.malloc(FRAMEBUF, mem.mem_user_data);
		memset(fb[i], 1, 9 + 64);
		tab[i] = mem.calloc(256, 16, mem.mem_user_data);
		ring[i] = mem.malloc(1024, mem.mem_user_data);
	}
	for (int i = 0; i < N; i++) {
		fb_pages += resident_pages(fb[i], FRAMEBUF);
		tab_pages += resident_pages(tab[i], 4096);
		ring_pages += resident_pages(ring[i], 1024);
	}
	cr_assert_leq(fb_pages, N + N / 4, "%zu pages for %d frame buffers", fb_pages, N);
	/* the region header's page holds the first few blocks of a small class */
	cr_assert_leq(tab_pages, 4, "%zu pages for %d fresh tables", tab_pages, N);
	cr_assert_leq(ring_pages, 4, "%zu pages for %d rings", ring_pages, N);
	for (int i = 0; i < N; i++) {
		mem.free(fb[i], mem.mem_user_data);
		mem.free(tab[i], mem.mem_user_data);
		mem.free(ring[i], mem.mem_user_data);
	}
}
