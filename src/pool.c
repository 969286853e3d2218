/* pool.c — fixed-size object pools carved from a worker's region.
 *
 * The region is mapped once at start-up (server.c); a pool never grows and never calls
 * malloc. The free list is LIFO and threaded through the free objects themselves, so the
 * most recently used (cache- and TLB-warm) object is lent first and objects never lent stay
 * untouched, costing no RSS. Objects are handed out at the size they were carved: anything
 * larger is not this pool's business (the caller answers 413/431/503 instead).
 */
#include "internal.h"

#include <assert.h>

/* Sanitizer builds: ASan only knows malloc, so the pool tells it which objects are not lent
 * (never carved, or returned). Touching one, or overflowing into a free neighbour, is then
 * reported like a use-after-free. The free-list link word stays addressable. */
#if defined(__SANITIZE_ADDRESS__)
#define ZH__ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ZH__ASAN 1
#endif
#endif
#ifdef ZH__ASAN
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

void zh__pool_init(zh__pool_t *p, char *base, size_t obj_size, uint32_t count)
{
	p->base = base;
	p->obj_size = obj_size;
	p->count = count;
	p->carved = 0;
	p->in_use = 0;
	p->high_water = 0;
	p->free_list = NULL;
	p->poison = true;
	POISON(base, obj_size * count);
}

void zh__pool_keep_readable(zh__pool_t *p)
{
	p->poison = false;
	UNPOISON(p->base, p->obj_size * p->count);
}

void *zh__pool_get(zh__pool_t *p)
{
	void **obj = p->free_list;
	if (obj != NULL) {
		p->free_list = *obj;
	} else if (p->carved < p->count) {
		/* never lent before: carve it now, so untouched objects cost no RSS */
		obj = (void **)(void *)(p->base + (size_t)p->carved++ * p->obj_size);
	} else {
		return NULL;
	}
	if (p->poison)
		UNPOISON(obj, p->obj_size);
	if (++p->in_use > p->high_water)
		p->high_water = p->in_use;
	return obj;
}

void zh__pool_put(zh__pool_t *p, void *obj)
{
	assert((char *)obj >= p->base && (char *)obj < p->base + p->obj_size * p->count);
	if (p->poison) {
		POISON((char *)obj + sizeof(void *), p->obj_size - sizeof(void *));
		UNPOISON(obj, sizeof(void *));
	}
	*(void **)obj = p->free_list;
	p->free_list = obj;
	p->in_use--;
}
