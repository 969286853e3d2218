/* h2_mem.c — nghttp2's allocator (nghttp2_mem) routed to a per-worker pool, so that an
 * open HTTP/2 connection serves requests without a malloc-family call: nghttp2 allocates
 * per stream (its stream object, header fields, frames) and frees it at the stream's end;
 * here each block returns to its size class's LIFO free list and the next stream reuses it.
 *
 * Laid out for idle connections, which keep what nghttp2 allocated at session start (the
 * session, its stream map, the HPACK tables' rings, a 16 KiB frame buffer) and touch little
 * of it:
 *  - Each size class has regions of its own (1 MiB, mmap'd on demand, never unmapped while
 *    the worker runs), so blocks of one class sit side by side with no header between them:
 *    an idle session's untouched bytes (most of its frame buffer, an HPACK ring nothing was
 *    indexed into) are untouched pages, which cost no memory. A block's class is found from
 *    the header of its region, which is aligned to its size (the pointer, masked).
 *  - Four classes per power of two (16-byte steps up to 64, then +25%), so a block wastes
 *    at most a fifth of itself.
 *  - calloc of a block never handed out before skips the memset: mmap's pages are zero,
 *    and writing zeros would make them resident (nghttp2's 4 KiB stream map, say).
 * Measured with bench/h2_idle_rss.py (5,000 idle h2c connections, docs/performance.md):
 * 26,073 bytes per connection with one region for all classes, 16-byte headers and
 * power-of-two classes; see the figure there now.
 *
 * Blocks over 64 KiB are mapped alone (aligned the same way, their header in front) and
 * unmapped when freed. One pool per worker, touched only by its thread: no locks.
 */
#include "h2_int.h"

#include <string.h>
#include <sys/mman.h>

/* At the start of every region: which class it serves (or a large block's mapping). */
typedef struct {
	uint64_t size;	/* the class's block size, or the mapping's length for a large block */
	uint32_t cls;	/* the class, or ZH__H2_CLASSES for a large block (mapped alone) */
	uint32_t pad;
	void *next; /* the pool's list of regions (zh__h2mem_unmap) */
} region_t;

enum { LARGE_OFF = 64 }; /* a large block's distance from its mapping's start */

/* The class of size bytes (> 0): 16, 32, 48, 64, then four steps per power of two. */
static unsigned class_of(size_t size)
{
	unsigned p;
	if (size <= 64)
		return size ? (unsigned)((size - 1) >> 4) : 0;
	p = 63u - (unsigned)__builtin_clzll((unsigned long long)size - 1); /* 2^p < size */
	return 4 + (p - 6) * 4 + (unsigned)(((size - 1) >> (p - 2)) & 3);
}

/* class_size[c]: 16 (c + 1) below 4, then 2^p + (q + 1) 2^(p-2), p = 6 + (c-4)/4, q = (c-4)%4 */
#define ZH__H2_STEPS(p) (1u << (p)) + (1u << ((p) - 2)), (1u << (p)) + (2u << ((p) - 2)), \
			(1u << (p)) + (3u << ((p) - 2)), (1u << (p)) + (4u << ((p) - 2))
static const uint32_t class_size[ZH__H2_CLASSES] = {
	16, 32, 48, 64, ZH__H2_STEPS(6), ZH__H2_STEPS(7), ZH__H2_STEPS(8), ZH__H2_STEPS(9),
	ZH__H2_STEPS(10), ZH__H2_STEPS(11), ZH__H2_STEPS(12), ZH__H2_STEPS(13), ZH__H2_STEPS(14),
	ZH__H2_STEPS(15)};

static region_t *region_of(const void *p)
{
	return (region_t *)((uintptr_t)p & ~(uintptr_t)(ZH__H2_REGION - 1));
}

/* len bytes (a multiple of the page size) at an address aligned to ZH__H2_REGION: twice as
 * many mapped, the excess unmapped at once. NULL when the kernel refuses. */
static void *map_aligned(size_t len)
{
	size_t span = len + ZH__H2_REGION;
	char *p = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *a;
	if (p == MAP_FAILED)
		return NULL;
	a = (char *)(((uintptr_t)p + ZH__H2_REGION - 1) & ~(uintptr_t)(ZH__H2_REGION - 1));
	if ((a > p && munmap(p, (size_t)(a - p)) != 0) ||
	    (p + span > a + len && munmap(a + len, (size_t)(p + span - (a + len))) != 0))
		abort(); /* our own mapping's ends: cannot fail */
	return a;
}

/* /metrics reads them from another thread: relaxed stores of the owner's values */
static void gauges(zh__h2mem_t *pool)
{
	if (pool->st) {
		__atomic_store_n(&pool->st->h2_pool_in_use, pool->in_use, __ATOMIC_RELAXED);
		__atomic_store_n(&pool->st->h2_pool_mapped, pool->mapped, __ATOMIC_RELAXED);
	}
}

static void *alloc_large(zh__h2mem_t *pool, size_t size)
{
	size_t len = (size + LARGE_OFF + 4095) & ~(size_t)4095;
	region_t *r = map_aligned(len);
	if (r == NULL)
		return NULL;
	r->size = len;
	r->cls = ZH__H2_CLASSES;
	pool->mapped += len;
	pool->in_use += len;
	gauges(pool);
	return (char *)r + LARGE_OFF;
}

/* A block of class c; *fresh says it was never handed out (its bytes are mmap's zeros). */
static void *alloc_block(zh__h2mem_t *pool, unsigned c, bool *fresh)
{
	size_t bsz = class_size[c];
	char *b = pool->free_list[c];
	*fresh = b == NULL;
	if (b) {
		pool->free_list[c] = *(void **)(void *)b;
	} else {
		if (pool->bump[c] == NULL || (size_t)(pool->bump_end[c] - pool->bump[c]) < bsz) {
			/* the rest of the old region stays unused: less than one block */
			region_t *r = map_aligned(ZH__H2_REGION);
			/* past the header, 16-byte aligned as every class size is */
			size_t first = bsz < 32 ? 32 : bsz < 4096 ? bsz : 4096;
			if (r == NULL)
				return NULL;
			r->size = bsz;
			r->cls = c;
			r->next = pool->regions;
			pool->regions = r;
			pool->bump[c] = (char *)r + first;
			pool->bump_end[c] = (char *)r + ZH__H2_REGION;
			pool->mapped += ZH__H2_REGION;
		}
		b = pool->bump[c];
		pool->bump[c] += bsz;
	}
	pool->in_use += bsz;
	gauges(pool);
	return b;
}

void *zh__h2mem_alloc(zh__h2mem_t *pool, size_t size)
{
	unsigned c = class_of(size);
	bool fresh;
	return c < ZH__H2_CLASSES ? alloc_block(pool, c, &fresh) : alloc_large(pool, size);
}

void zh__h2mem_free(zh__h2mem_t *pool, void *p)
{
	region_t *r;
	if (p == NULL)
		return;
	r = region_of(p);
	pool->in_use -= r->size;
	if (r->cls == ZH__H2_CLASSES) {
		pool->mapped -= r->size;
		gauges(pool);
		if (munmap(r, r->size) != 0)
			abort(); /* not our mapping: memory corruption */
		return;
	}
	*(void **)p = pool->free_list[r->cls];
	pool->free_list[r->cls] = p;
	gauges(pool);
}

static void *m_malloc(size_t size, void *ud)
{
	return zh__h2mem_alloc(ud, size);
}

static void m_free(void *p, void *ud)
{
	zh__h2mem_free(ud, p);
}

static void *m_calloc(size_t n, size_t size, void *ud)
{
	zh__h2mem_t *pool = ud;
	unsigned c;
	bool fresh = false;
	void *p;
	if (size && n > SIZE_MAX / size)
		return NULL;
	c = class_of(n * size);
	p = c < ZH__H2_CLASSES ? alloc_block(pool, c, &fresh) : alloc_large(pool, n * size);
	if (p && !fresh && c < ZH__H2_CLASSES) /* a large block is a new mapping: zeros */
		memset(p, 0, n * size);
	return p;
}

static void *m_realloc(void *p, size_t size, void *ud)
{
	region_t *r;
	void *q;
	size_t have;
	if (p == NULL)
		return zh__h2mem_alloc(ud, size);
	r = region_of(p);
	have = r->cls == ZH__H2_CLASSES ? r->size - LARGE_OFF : r->size;
	if (size <= have)
		return p; /* its block still holds it */
	if ((q = zh__h2mem_alloc(ud, size)) == NULL)
		return NULL;
	memcpy(q, p, have);
	zh__h2mem_free(ud, p);
	return q;
}

void zh__h2mem_bind(nghttp2_mem *m, zh__h2mem_t *pool)
{
	m->mem_user_data = pool;
	m->malloc = m_malloc;
	m->free = m_free;
	m->calloc = m_calloc;
	m->realloc = m_realloc;
}

/* The worker ends: every region goes (large blocks were unmapped as they were freed). */
void zh__h2mem_unmap(zh__h2mem_t *pool)
{
	while (pool->regions) {
		region_t *r = pool->regions;
		pool->regions = r->next;
		if (munmap(r, ZH__H2_REGION) != 0)
			abort();
	}
	memset(pool, 0, sizeof *pool);
}
