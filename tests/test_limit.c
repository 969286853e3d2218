/* test_limit.c — the rate limiter's table (src/mw_limit.c) without a server: exact bursts
 * and refills, Retry-After arithmetic, eviction in a full set, validation, and exactness
 * under concurrency (no token lost or created by racing workers, no torn reload). */
#include <criterion/criterion.h>

#include "internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <string.h>

static const uint64_t S = 1000000000ull; /* one second in ns */
static const uint64_t T0 = 1000 * 1000000000ull;

static void key_of(uint8_t key[16], uint32_t n)
{
	memset(key, 0, 16);
	key[10] = key[11] = 0xff;
	memcpy(key + 12, &n, 4);
}

static unsigned take_n(zh_limit_t *l, const uint8_t key[16], uint64_t now, unsigned n)
{
	unsigned ok = 0;
	uint64_t wait;
	for (unsigned i = 0; i < n; i++)
		ok += (unsigned)zh__limit_take(l, key, now, &wait);
	return ok;
}

Test(limit, a_burst_passes_whole_then_one_token_per_interval)
{
	zh_limit_t *l = zh_limit_new(0, NULL);
	uint8_t a[16];
	uint64_t wait = 0;
	cr_assert_not_null(l);
	key_of(a, 1);
	cr_assert_eq(zh_limit_set(l, 10, 5, 0), 0);
	cr_assert_eq(take_n(l, a, T0, 5), 5, "the whole burst passes at once");
	cr_assert_eq(zh__limit_take(l, a, T0, &wait), 0);
	cr_assert_eq(wait, S / 10, "the next token is one interval away: %llu",
		     (unsigned long long)wait);
	cr_assert_eq(zh__limit_take(l, a, T0 + S / 10 - 1, &wait), 0);
	cr_assert_eq(wait, 1);
	cr_assert_eq(take_n(l, a, T0 + S / 10, 3), 1, "one interval refills one token");
	cr_assert_eq(take_n(l, a, T0 + 100 * S, 9), 5, "a long pause refills the bucket, no more");
	zh_limit_free(l);
}

Test(limit, whole_bursts_survive_rounding_of_the_interval)
{
	/* 1/1.5 s and 1/3 s are not whole nanoseconds: a burst of 3 must still be 3 */
	static const double rates[] = {1.5, 3, 7, 0.3, 999999.7};
	zh_limit_t *l = zh_limit_new(1000, NULL);
	cr_assert_not_null(l);
	for (unsigned i = 0; i < sizeof rates / sizeof rates[0]; i++) {
		uint8_t k[16];
		key_of(k, 100 + i);
		cr_assert_eq(zh_limit_set(l, rates[i], 3, 0), 0);
		cr_assert_eq(take_n(l, k, T0, 10), 3, "rate %g", rates[i]);
	}
	zh_limit_free(l);
}

Test(limit, fractional_and_default_bursts)
{
	zh_limit_t *l = zh_limit_new(1000, NULL);
	uint8_t a[16], b[16], c[16];
	key_of(a, 1);
	key_of(b, 2);
	key_of(c, 3);
	cr_assert_eq(zh_limit_set(l, 1, 2.5, 0), 0);
	cr_assert_eq(take_n(l, a, T0, 10), 2, "a bucket of 2.5 tokens holds 2 whole ones");
	cr_assert_eq(zh_limit_set(l, 4, 0, 0), 0);
	cr_assert_eq(take_n(l, b, T0, 10), 4, "burst 0 means burst = rps");
	cr_assert_eq(zh_limit_set(l, 0.5, 0, 0), 0);
	cr_assert_eq(take_n(l, c, T0, 10), 1, "and at least 1");
	zh_limit_free(l);
}

Test(limit, clients_have_their_own_buckets)
{
	zh_limit_t *l = zh_limit_new(0, NULL);
	uint8_t k[16];
	cr_assert_eq(zh_limit_set(l, 1, 2, 0), 0);
	for (uint32_t i = 0; i < 1000; i++) {
		key_of(k, i);
		cr_assert_eq(take_n(l, k, T0, 3), 2, "client %u", i);
	}
	zh_limit_free(l);
}

/* The bucket an address is charged to, as the before hook computes it. */
static void key_v6(const zh_limit_t *l, const char *text, uint8_t key[16])
{
	uint8_t a[16];
	cr_assert_eq(inet_pton(AF_INET6, text, a), 1, "%s", text);
	zh__limit_key(l, AF_INET6, a, key);
}

/* Two requests from a; true if the second one from b was refused (a's bucket is b's). */
static bool shares_bucket(zh_limit_t *l, const char *a, const char *b, uint64_t now)
{
	uint8_t ka[16], kb[16];
	key_v6(l, a, ka);
	key_v6(l, b, kb);
	cr_assert_eq(take_n(l, ka, now, 2), 2, "a fresh bucket of 2 for %s", a);
	return take_n(l, kb, now, 1) == 0;
}

Test(limit, ipv6_clients_are_keyed_per_64_by_default)
{
	zh_limit_t *l = zh_limit_new(0, NULL);
	cr_assert_eq(zh_limit_set(l, 1, 2, 0), 0);
	/* one holder of 2001:db8:1:2::/64 rotating its interface identifier */
	cr_assert(shares_bucket(l, "2001:db8:1:2::1", "2001:db8:1:2:ffff:abcd:1234:5678", T0));
	/* the neighbouring /64 is another client */
	cr_assert(!shares_bucket(l, "2001:db8:1:3::1", "2001:db8:1:4::1", T0));
	zh_limit_free(l);
}

Test(limit, ipv6_prefix_is_configurable)
{
	zh_limit_t *l = zh_limit_new(0, NULL);
	uint8_t k1[16], k2[16];
	cr_assert_eq(zh_limit_set(l, 1, 2, 0), 0);
	cr_assert_eq(zh_limit_ipv6_prefix(l, 48), 0);
	cr_assert(shares_bucket(l, "2001:db8:5:1::1", "2001:db8:5:ff00::9", T0), "one /48");
	cr_assert(!shares_bucket(l, "2001:db8:6::1", "2001:db8:7::1", T0), "two /48s");
	/* a prefix that does not end on a byte: /60 keeps the top nibble of the 8th byte */
	cr_assert_eq(zh_limit_ipv6_prefix(l, 60), 0);
	key_v6(l, "2001:db8:9:10f::1", k1);
	key_v6(l, "2001:db8:9:100::2", k2);
	cr_assert_arr_eq(k1, k2, 16, "one /60");
	key_v6(l, "2001:db8:9:110::1", k2);
	cr_assert(memcmp(k1, k2, 16) != 0, "the next /60");
	/* /128: every address its own client, as before */
	cr_assert_eq(zh_limit_ipv6_prefix(l, 128), 0);
	cr_assert(!shares_bucket(l, "2001:db8:8::1", "2001:db8:8::2", T0));
	cr_assert_eq(zh_limit_ipv6_prefix(l, 31), -EINVAL);
	cr_assert_eq(zh_limit_ipv6_prefix(l, 129), -EINVAL);
	cr_assert_eq(zh_limit_ipv6_prefix(NULL, 64), -EINVAL);
	zh_limit_free(l);
}

Test(limit, ipv4_and_ipv4_mapped_are_one_client_per_address)
{
	zh_limit_t *l = zh_limit_new(0, NULL);
	uint8_t v4[16] = {192, 0, 2, 7}, k4[16], km[16];
	cr_assert_eq(zh_limit_set(l, 1, 2, 0), 0);
	zh__limit_key(l, AF_INET, v4, k4);
	key_v6(l, "::ffff:192.0.2.7", km);
	cr_assert_arr_eq(k4, km, 16, "the mapped form is the same client");
	/* never masked to a /64 (which would lump every IPv4 client together) */
	cr_assert(!shares_bucket(l, "::ffff:192.0.2.7", "::ffff:192.0.2.8", T0));
	zh_limit_free(l);
}

Test(limit, retry_after_counts_from_the_debt)
{
	zh_limit_t *l = zh_limit_new(0, NULL);
	uint8_t a[16];
	uint64_t wait = 0;
	key_of(a, 9);
	cr_assert_eq(zh_limit_set(l, 0.5, 3, 0), 0); /* a token every 2 s */
	cr_assert_eq(take_n(l, a, T0, 3), 3);
	cr_assert_eq(zh__limit_take(l, a, T0 + S / 2, &wait), 0);
	cr_assert_eq(wait, 3 * S / 2, "2 s after the burst, less the 0.5 s gone by");
	zh_limit_free(l);
}

Test(limit, a_full_set_forgets_the_client_nearest_to_a_full_bucket)
{
	/* 5 clients: one set of 5 entries; every key lands in it. A token every 10 s. */
	zh_limit_t *l = zh_limit_new(5, NULL);
	uint8_t k[8][16];
	uint64_t wait;
	cr_assert_eq(zh_limit_set(l, 0.1, 1, 0), 0);
	for (uint32_t i = 0; i < 8; i++)
		key_of(k[i], i);
	for (uint32_t i = 0; i < 5; i++) /* client i's bucket is full again at T0 + (10 + i) s */
		cr_assert_eq(zh__limit_take(l, k[i], T0 + i * S, &wait), 1);
	cr_assert_eq(zh__limit_take(l, k[4], T0 + 4 * S, &wait), 0, "client 4 is in debt");
	cr_assert_eq(zh__limit_take(l, k[5], T0 + 4 * S, &wait), 1, "a new client gets in");
	/* client 5 took client 0's place, the nearest to a full bucket */
	cr_assert_eq(zh__limit_take(l, k[1], T0 + 4 * S, &wait), 0, "client 1 is remembered");
	cr_assert_eq(zh__limit_take(l, k[0], T0 + 4 * S, &wait), 1, "client 0 was forgotten");
	/* ... and took client 1's. At 12.5 s client 2's bucket is full: a new client takes
	 * that entry, and every client in debt is still known */
	cr_assert_eq(zh__limit_take(l, k[6], T0 + 12 * S + S / 2, &wait), 1);
	for (uint32_t i = 0; i < 6; i++)
		if (i != 1 && i != 2)
			cr_assert_eq(zh__limit_take(l, k[i], T0 + 12 * S + S / 2, &wait), 0,
				     "client %u is remembered", i);
	cr_assert_eq(zh__limit_take(l, k[1], T0 + 12 * S + S / 2, &wait), 1);
	zh_limit_free(l);
}

Test(limit, a_new_rate_refills_every_bucket_the_same_rate_does_not)
{
	zh_limit_t *l = zh_limit_new(0, NULL);
	uint8_t a[16], b[16];
	key_of(a, 1);
	key_of(b, 2);
	cr_assert_eq(zh_limit_set(l, 0.01, 3, 0), 0); /* a token per 100 s */
	cr_assert_eq(take_n(l, a, T0, 5), 3);
	cr_assert_eq(take_n(l, b, T0, 5), 3);
	cr_assert_eq(zh_limit_set(l, 0.01, 3, 7), 0, "same rate (new max_inflight)");
	cr_assert_eq(take_n(l, a, T0, 5), 0, "the debt stays");
	cr_assert_eq(zh_limit_set(l, 0.02, 4, 7), 0);
	cr_assert_eq(take_n(l, a, T0, 9), 4, "a full bucket at the new rate");
	cr_assert_eq(take_n(l, b, T0 + 1, 9), 4);
	cr_assert_eq(zh_limit_set(l, 0, 0, 0), 0);
	cr_assert_eq(zh_limit_set(l, 0.02, 4, 0), 0);
	cr_assert_eq(take_n(l, a, T0 + 2, 9), 4, "off and on again: full");
	zh_limit_free(l);
}

Test(limit, settings_are_checked)
{
	zh_limit_t *l = zh_limit_new(0, NULL);
	uint8_t a[16];
	cr_assert_eq(zh_limit_set(l, -1, 1, 0), -EINVAL);
	cr_assert_eq(zh_limit_set(l, NAN, 1, 0), -EINVAL);
	cr_assert_eq(zh_limit_set(l, INFINITY, 1, 0), -EINVAL);
	cr_assert_eq(zh_limit_set(l, 1, 0.5, 0), -EINVAL);
	cr_assert_eq(zh_limit_set(l, 1e-4, 1, 0), -EINVAL);
	cr_assert_eq(zh_limit_set(l, 2e9, 1, 0), -EINVAL);
	cr_assert_eq(zh_limit_set(l, 1, -1, 0), -EINVAL);
	cr_assert_eq(zh_limit_set(l, 0, 0, 0), 0, "0: off");
	key_of(a, 1);
	cr_assert_eq(take_n(l, a, T0, 1000), 1000, "no rate limit: everything passes");
	cr_assert_eq(zh_limit_exempt(l, "healthz"), -EINVAL);
	for (int i = 0; i < 8; i++)
		cr_assert_eq(zh_limit_exempt(l, "/x"), 0);
	cr_assert_eq(zh_limit_exempt(l, "/y"), -ENOSPC);
	cr_assert_eq(zh_limit_inflight(l), 0);
	cr_assert_null(zh_limit_new(1u << 30, NULL));
	zh_limit_free(l);
}

/* ---- concurrency ---------------------------------------------------------------------------- */

enum { THREADS = 4 };

struct race {
	zh_limit_t *l;
	unsigned keys, per_thread;
	unsigned admitted;
	int stop;
	unsigned refused_fresh;
	uint32_t next_key;
};

static void *hammer(void *arg)
{
	struct race *r = arg;
	uint8_t k[16];
	uint64_t wait;
	unsigned ok = 0;
	for (unsigned i = 0; i < r->per_thread; i++) {
		key_of(k, i % r->keys);
		ok += (unsigned)zh__limit_take(r->l, k, T0, &wait);
	}
	__atomic_add_fetch(&r->admitted, ok, __ATOMIC_RELAXED);
	return NULL;
}

static unsigned race(zh_limit_t *l, unsigned keys, unsigned per_thread)
{
	struct race r = {.l = l, .keys = keys, .per_thread = per_thread};
	pthread_t t[THREADS];
	for (int i = 0; i < THREADS; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, hammer, &r), 0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	return r.admitted;
}

Test(limit, racing_workers_take_exactly_the_burst_of_one_client)
{
	zh_limit_t *l = zh_limit_new(0, NULL);
	cr_assert_eq(zh_limit_set(l, 0.001, 20000, 0), 0); /* no refill during the test */
	cr_assert_eq(race(l, 1, 100000), 20000, "every token taken once, none created");
	zh_limit_free(l);
}

Test(limit, racing_workers_take_exactly_every_clients_burst)
{
	zh_limit_t *l = zh_limit_new(0, NULL);
	cr_assert_eq(zh_limit_set(l, 0.001, 50, 0), 0);
	cr_assert_eq(race(l, 300, 60000), 300 * 50);
	zh_limit_free(l);
}

/* A reload changes (T, tau) together: (1 s, 1 s) or (1 ms, 10 ms). A fresh client passes
 * under either; only a torn read, T of one with tau of the other, could refuse it. */
static void *fresh_clients(void *arg)
{
	struct race *r = arg;
	uint8_t k[16];
	uint64_t wait;
	unsigned refused = 0;
	for (uint32_t i = 1; !__atomic_load_n(&r->stop, __ATOMIC_RELAXED); i++) {
		key_of(k, __atomic_add_fetch(&r->next_key, 1, __ATOMIC_RELAXED)); /* never seen */
		refused += zh__limit_take(r->l, k, T0 + i, &wait) == 0;
	}
	__atomic_add_fetch(&r->refused_fresh, refused, __ATOMIC_RELAXED);
	return NULL;
}

Test(limit, a_reload_is_never_seen_half_done)
{
	struct race r = {.l = zh_limit_new(1 << 20, NULL)};
	pthread_t t[THREADS - 1];
	cr_assert_eq(zh_limit_set(r.l, 1, 1, 0), 0);
	for (int i = 0; i < THREADS - 1; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, fresh_clients, &r), 0);
	for (int n = 0; n < 200000; n++)
		cr_assert_eq(zh_limit_set(r.l, n % 2 ? 1 : 1000, n % 2 ? 1 : 10, (unsigned)n), 0);
	__atomic_store_n(&r.stop, 1, __ATOMIC_RELAXED);
	for (int i = 0; i < THREADS - 1; i++)
		pthread_join(t[i], NULL);
	cr_assert_eq(r.refused_fresh, 0, "%u fresh clients refused: a torn (T, tau)",
		     r.refused_fresh);
	zh_limit_free(r.l);
}
