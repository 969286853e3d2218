/* test_pool.c — fixed-size pools: LIFO reuse, lazy carving, exhaustion, accounting. */
#include <criterion/criterion.h>

#include "internal.h"

static _Alignas(64) char region[8 * 256];

Test(pool, hands_out_distinct_objects_until_exhausted)
{
	zh__pool_t p;
	void *got[8];
	zh__pool_init(&p, region, 256, 8);
	for (int i = 0; i < 8; i++) {
		got[i] = zh__pool_get(&p);
		cr_assert_not_null(got[i]);
		cr_assert_eq(((char *)got[i] - region) % 256, 0, "objects are carved at obj_size");
		for (int k = 0; k < i; k++)
			cr_assert_neq(got[i], got[k]);
	}
	cr_assert_null(zh__pool_get(&p), "exhaustion returns NULL, never allocates");
	cr_assert_eq(p.in_use, 8);
	cr_assert_eq(p.high_water, 8);
}

Test(pool, reuses_the_most_recently_returned_object_first)
{
	zh__pool_t p;
	zh__pool_init(&p, region, 256, 8);
	void *a = zh__pool_get(&p), *b = zh__pool_get(&p);
	zh__pool_put(&p, a);
	zh__pool_put(&p, b);
	cr_assert_eq(zh__pool_get(&p), b, "LIFO: the warmest object comes back first");
	cr_assert_eq(zh__pool_get(&p), a);
	cr_assert_eq(p.carved, 2, "no object is carved while a returned one is available");
}

Test(pool, carves_lazily_and_tracks_high_water)
{
	zh__pool_t p;
	zh__pool_init(&p, region, 256, 8);
	cr_assert_eq(p.carved, 0, "init touches no object");
	void *a = zh__pool_get(&p);
	void *b = zh__pool_get(&p);
	void *c = zh__pool_get(&p);
	zh__pool_put(&p, a);
	zh__pool_put(&p, b);
	zh__pool_put(&p, c);
	cr_assert_eq(p.in_use, 0);
	cr_assert_eq(p.high_water, 3);
	cr_assert_eq(p.carved, 3);
	for (int i = 0; i < 3; i++)
		(void)zh__pool_get(&p);
	cr_assert_eq(p.carved, 3, "steady state reuses, never carves further");
}
