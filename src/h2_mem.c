/* h2_mem.c — nghttp2's allocator (nghttp2_mem) routed to a per-worker pool, so that an
 * open HTTP/2 connection serves requests without a malloc-family call: nghttp2 allocates
 * per stream (its stream object, header fields, frames) and frees it at the stream's end;
 * here each block returns to its size class's LIFO free list and the next stream reuses it.
 *
 * Blocks of 2^5 .. 2^16 bytes come from 1 MiB regions mapped with mmap on demand (mmap is
 * not a malloc-family call, and a region is never unmapped: the pool's size is the high
 * water of what the worker's connections held at once). A larger block is mapped alone and
 * unmapped when freed. Every block has a 16-byte header in front that names its class (or
 * its mapped length), so free and realloc need no lookup. One pool per worker, touched only
 * by its thread: no locks.
 */
#include "h2_int.h"

#include <string.h>
#include <sys/mman.h>

typedef struct {
	uint64_t size; /* the class's block size, or the mapping's length for a large block */
	uint64_t large;
} hdr_t;

/* The class whose blocks (32 << c bytes) hold size bytes: ceil(log2(size)) - 5, at least 0 */
static unsigned class_of(size_t size)
{
	if (size <= 32)
		return 0;
	return (unsigned)(64 - __builtin_clzll((unsigned long long)size - 1)) - 5;
}

/* /metrics reads them from another thread: relaxed stores of the owner's values */
static void gauges(zh__h2mem_t *pool)
{
	if (pool->st) {
		__atomic_store_n(&pool->st->h2_pool_in_use, pool->in_use, __ATOMIC_RELAXED);
		__atomic_store_n(&pool->st->h2_pool_mapped, pool->mapped, __ATOMIC_RELAXED);
	}
}

void *zh__h2mem_alloc(zh__h2mem_t *pool, size_t size)
{
	size_t need = size + sizeof(hdr_t);
	unsigned c = class_of(need);
	hdr_t *h;
	if (c >= ZH__H2_CLASSES) {
		size_t len = (need + 4095) & ~(size_t)4095;
		void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			return NULL;
		h = p;
		h->size = len;
		h->large = 1;
		pool->mapped += len;
		pool->in_use += len;
		gauges(pool);
		return h + 1;
	}
	if (pool->free_list[c]) {
		h = pool->free_list[c];
		pool->free_list[c] = *(void **)(void *)(h + 1);
	} else {
		size_t bsz = (size_t)32 << c;
		if (pool->bump == NULL || (size_t)(pool->bump_end - pool->bump) < bsz) {
			/* the rest of the old region stays unused: at most one block's worth */
			char *r = mmap(NULL, ZH__H2_REGION, PROT_READ | PROT_WRITE,
				       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			if (r == MAP_FAILED)
				return NULL;
			*(void **)(void *)r = pool->regions; /* the list zh__h2mem_unmap walks */
			pool->regions = r;
			pool->bump = r + 64;
			pool->bump_end = r + ZH__H2_REGION;
			pool->mapped += ZH__H2_REGION;
		}
		h = (hdr_t *)(void *)pool->bump;
		pool->bump += bsz;
	}
	h->size = (uint64_t)32 << c;
	h->large = 0;
	pool->in_use += h->size;
	gauges(pool);
	return h + 1;
}

void zh__h2mem_free(zh__h2mem_t *pool, void *p)
{
	hdr_t *h;
	if (p == NULL)
		return;
	h = (hdr_t *)p - 1;
	pool->in_use -= h->size;
	if (h->large) {
		pool->mapped -= h->size;
		gauges(pool);
		if (munmap(h, h->size) != 0)
			abort(); /* not our mapping: memory corruption */
		return;
	}
	*(void **)p = pool->free_list[class_of(h->size)];
	pool->free_list[class_of(h->size)] = h;
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
	void *p;
	if (size && n > SIZE_MAX / size)
		return NULL;
	p = zh__h2mem_alloc(ud, n * size);
	if (p)
		memset(p, 0, n * size);
	return p;
}

static void *m_realloc(void *p, size_t size, void *ud)
{
	hdr_t *h;
	void *q;
	size_t have;
	if (p == NULL)
		return zh__h2mem_alloc(ud, size);
	h = (hdr_t *)p - 1;
	have = (size_t)h->size - sizeof(hdr_t);
	if (size <= have)
		return p; /* its class still holds it */
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
		void *r = pool->regions;
		pool->regions = *(void **)r;
		if (munmap(r, ZH__H2_REGION) != 0)
			abort();
	}
	memset(pool, 0, sizeof *pool);
}
