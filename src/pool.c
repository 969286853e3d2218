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

void zh__pool_init(zh__pool_t *p, char *base, size_t obj_size, uint32_t count)
{
	p->base = base;
	p->obj_size = obj_size;
	p->count = count;
	p->carved = 0;
	p->in_use = 0;
	p->high_water = 0;
	p->free_list = NULL;
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
	if (++p->in_use > p->high_water)
		p->high_water = p->in_use;
	return obj;
}

void zh__pool_put(zh__pool_t *p, void *obj)
{
	assert((char *)obj >= p->base && (char *)obj < p->base + p->obj_size * p->count);
	*(void **)obj = p->free_list;
	p->free_list = obj;
	p->in_use--;
}
