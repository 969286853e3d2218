/* mw_limit.c — rate limiting and load shedding as middleware (zh_limit_*, see zerohttp.h).
 *
 * RATE. A token bucket per client address, kept as GCRA (the "generic cell rate algorithm"):
 * one number per client, its theoretical arrival time `tat`, the instant its bucket will be
 * full again. With interval T = 1/rps and tolerance tau = burst * T, a request at `now` is
 * admitted when max(tat, now) + T - now <= tau, and tat then advances by T. That is exactly
 * a bucket of `burst` tokens refilled at rps per second, in one word and without a separate
 * refill step. A refused request's next token comes at max(tat, now) + T - tau (its
 * Retry-After, rounded up to whole seconds). An entry whose tat has passed is a full bucket:
 * it carries no information, so it may be overwritten at any time.
 *
 * TABLE. Sized at zh_limit_new() and never grown. It is mmap'd, so pages that are never
 * touched cost no RSS. It holds 2^k sets of 5 entries, one set per 128 bytes (two cache
 * lines): a 4-byte lock, then five entries of {16-byte address, 8-byte tat}. An address
 * hashes to one set, with a random seed chosen at creation, so that a client cannot choose
 * addresses that crowd a victim out of its set. (The mix is not a cryptographic PRF.)
 * Inserting into a full set reuses a full bucket if there is one, else evicts the stalest
 * entry: the smallest tat, which is the client closest to a full bucket and so loses least
 * by being forgotten. Memory is fixed whatever the number of clients.
 *
 * CONCURRENCY. All workers share one table: SO_REUSEPORT spreads one client's connections
 * over workers, so its bucket must be shared. Each set has its own spinlock, which gives
 * striped locking with 16,384 stripes for 65,536 clients and no global lock. Two workers
 * meet on a lock only when they serve clients of the same set at the same moment (the same
 * client, in the case that matters). The critical section scans five entries and stores one
 * word: tens of nanoseconds, with no syscall and no allocation. Spinning costs less there
 * than a mutex would (40 bytes per stripe, and a futex syscall when contended). Why not
 * lock-free: a CAS on tat alone would do while an entry keeps its client. But eviction
 * rewrites address and tat together (24 bytes, beyond any CAS), and a worker racing with it
 * could then charge one client's request to another client. With a lock per set, lookup,
 * insert and eviction are one atomic step. If a lock holder is preempted inside the
 * section, the others spin for a while, then sched_yield().
 *
 * LIMITS. rps and burst are kept as (T, tau) under a seqlock. zh_limit_set() can change
 * both at once from any thread, and no request sees T from one setting with tau from
 * another. Writers serialize on a mutex that the request path never takes. max_inflight is
 * one atomic word. A change of (T, tau) also bumps an epoch kept with them. Each set
 * records the epoch it was last used in, and a set from an older epoch is emptied when it
 * is next locked. So a change gives every client a full bucket, at O(1) cost to the
 * writer: debts measured at the old rate would mean nothing at the new one. A client seen
 * just before the change might otherwise stay refused for its whole old debt (up to burst
 * times the old interval) after the operator has raised its limit.
 *
 * IN FLIGHT. One atomic counter for all workers, on its own cache line. Requests are
 * counted only while max_inflight is set. The before hook takes a place with a CAS, which
 * never overshoots, so a burst of refusals cannot refuse others spuriously. The done hook
 * gives the place back when the response ends: queued whole, the last chunk of a streamed
 * body, or a deferred response once resumed and finished, or its connection died first
 * (the core runs the done hooks then too). The request remembers, in the middleware's own
 * per-request slot (zh_mw_slot), that it holds a place, so only counted requests are counted
 * out. Answers made before this hook ran (parse errors, an earlier middleware's) are not
 * counted out: their slot is still empty.
 */
#include "ext.h"

#include <errno.h>
#include <math.h> /* isfinite: a macro, no libm */
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

enum {
	LIMIT_WAYS = 5,
	LIMIT_DEFAULT_CLIENTS = 65536,
	LIMIT_MAX_CLIENTS = 1 << 26, /* a 2 GiB table: beyond, surely a typo */
	LIMIT_EXEMPT_MAX = 8,
	LIMIT_EXEMPT_LEN = 128,
	LIMIT_SPINS = 512, /* pauses before a waiter yields its CPU */
};

typedef struct {
	uint64_t key[2]; /* the address; IPv4 as ::ffff:a.b.c.d, so both forms meet */
	uint64_t tat;	 /* ns on CLOCK_MONOTONIC; 0: empty */
} entry_t;

typedef struct {
	_Alignas(64) uint32_t lock;
	uint32_t epoch; /* of the rate its entries were charged at; see LIMITS */
	entry_t e[LIMIT_WAYS];
} set_t;
_Static_assert(sizeof(set_t) == 128, "a set is two cache lines");

struct zh_limit {
	set_t *sets;	  /* mmap'd at zh_limit_new(), unmapped by zh_limit_free() */
	size_t mask;	  /* sets - 1 */
	size_t map_len;
	uint64_t seed[2];
	/* Read by every request; written only by zh_limit_set(), under set_mutex. */
	uint32_t seq;		/* seqlock over the three below: odd while they change */
	uint64_t interval_ns;	/* T; 0: no rate limit */
	uint64_t tolerance_ns;	/* tau = burst * T */
	uint32_t epoch;		/* bumped when T or tau changes */
	uint32_t max_inflight;	/* 0: no limit, nothing counted */
	uint32_t v6_prefix;	/* IPv6 clients are keyed on this many leading bits */
	pthread_mutex_t set_mutex;
	unsigned nexempt;
	size_t exempt_len[LIMIT_EXEMPT_MAX];
	char exempt[LIMIT_EXEMPT_MAX][LIMIT_EXEMPT_LEN];
	/* Written by every counted request, so it gets a cache line of its own, away from
	 * the read-mostly fields above. */
	_Alignas(64) uint32_t inflight;
};

/* ---- the table ----------------------------------------------------------------------------- */

static uint64_t mix64(uint64_t x) /* splitmix64's finalizer */
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static set_t *set_of(const zh_limit_t *l, const uint64_t k[2])
{
	uint64_t h = mix64(mix64(k[0] ^ l->seed[0]) ^ k[1] ^ l->seed[1]);
	return &l->sets[h & l->mask];
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

static void set_lock(set_t *s)
{
	unsigned spins = 0;
	while (__atomic_exchange_n(&s->lock, 1, __ATOMIC_ACQUIRE)) {
		while (__atomic_load_n(&s->lock, __ATOMIC_RELAXED)) {
			cpu_relax();
			if (++spins == LIMIT_SPINS) {
				spins = 0;
				sched_yield(); /* the holder was preempted: let it run */
			}
		}
	}
}

static void set_unlock(set_t *s)
{
	__atomic_store_n(&s->lock, 0, __ATOMIC_RELEASE);
}

/* The client's entry, or the one it takes over: an empty entry or a full bucket (no
 * information is lost), else the stalest. Called with the set locked. */
static entry_t *find_or_claim(set_t *s, const uint64_t k[2], uint64_t now)
{
	entry_t *victim = &s->e[0];
	for (unsigned i = 0; i < LIMIT_WAYS; i++) {
		entry_t *e = &s->e[i];
		if (e->tat != 0 && e->key[0] == k[0] && e->key[1] == k[1])
			return e;
		if (victim->tat > now && e->tat < victim->tat)
			victim = e;
	}
	victim->key[0] = k[0];
	victim->key[1] = k[1];
	victim->tat = 0; /* max(tat, now) is now: a full bucket */
	return victim;
}

typedef struct {
	uint64_t t, tau; /* t 0: no rate limit */
	uint32_t epoch;
} rate_t;

/* One setting, never parts of two. */
static void read_rate(const zh_limit_t *l, rate_t *r)
{
	uint32_t s0, s1;
	do {
		s0 = __atomic_load_n(&l->seq, __ATOMIC_ACQUIRE);
		r->t = __atomic_load_n(&l->interval_ns, __ATOMIC_RELAXED);
		r->tau = __atomic_load_n(&l->tolerance_ns, __ATOMIC_RELAXED);
		r->epoch = __atomic_load_n(&l->epoch, __ATOMIC_RELAXED);
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		s1 = __atomic_load_n(&l->seq, __ATOMIC_RELAXED);
	} while ((s0 & 1) || s0 != s1);
}

/* 1: a token was taken; 0: none, and *wait_ns until the next. */
static int take(zh_limit_t *l, const rate_t *r, const uint8_t key[16], uint64_t now_ns,
		uint64_t *wait_ns)
{
	uint64_t k[2], tat, next;
	set_t *s;
	entry_t *e;
	int ok = 1;
	memcpy(k, key, sizeof k);
	s = set_of(l, k);
	set_lock(s);
	if ((int32_t)(r->epoch - s->epoch) > 0) {
		/* charged at an older rate: everyone here starts with a full bucket. (A worker
		 * that read the rate just before a change only sees a newer set: left alone.) */
		memset(s->e, 0, sizeof s->e);
		s->epoch = r->epoch;
	}
	e = find_or_claim(s, k, now_ns);
	tat = e->tat > now_ns ? e->tat : now_ns;
	next = tat + r->t;
	if (next - now_ns <= r->tau) {
		e->tat = next;
	} else {
		*wait_ns = next - r->tau - now_ns;
		ok = 0;
	}
	set_unlock(s);
	return ok;
}

int zh__limit_take(zh_limit_t *l, const uint8_t key[16], uint64_t now_ns, uint64_t *wait_ns)
{
	rate_t r;
	read_rate(l, &r);
	return r.t == 0 ? 1 : take(l, &r, key, now_ns, wait_ns);
}

/* ---- in flight ------------------------------------------------------------------------------ */

static bool inflight_enter(zh_limit_t *l, uint32_t max)
{
	uint32_t n = __atomic_load_n(&l->inflight, __ATOMIC_RELAXED);
	do {
		if (n >= max)
			return false;
	} while (!__atomic_compare_exchange_n(&l->inflight, &n, n + 1, true, __ATOMIC_RELAXED,
					      __ATOMIC_RELAXED));
	return true;
}

static void inflight_leave(zh_limit_t *l)
{
	__atomic_sub_fetch(&l->inflight, 1, __ATOMIC_RELAXED);
}

unsigned zh_limit_inflight(const zh_limit_t *l)
{
	return __atomic_load_n(&l->inflight, __ATOMIC_RELAXED);
}

/* ---- the hooks ------------------------------------------------------------------------------ */

static bool exempt(const zh_limit_t *l, const zh_request_t *req)
{
	zh_slice_t path;
	if (l->nexempt == 0)
		return false;
	path = zh_req_path(req);
	for (unsigned i = 0; i < l->nexempt; i++)
		if (path.len == l->exempt_len[i] && memcmp(path.ptr, l->exempt[i], path.len) == 0)
			return true;
	return false;
}

/* The bucket a client address is charged to. IPv4 is one client per address (/32), kept
 * as ::ffff:a.b.c.d, so a client reaching a dual-stack socket by its IPv4-mapped form
 * meets its IPv4 self. An IPv6 address is only the bottom of its holder's allocation: a
 * single subscriber normally gets a /64 (RFC 6177; often a /56 or /48), picks any of its
 * 2^64 interface identifiers at will and rotates them by design (RFC 8981). Keyed per /128,
 * one client would have fresh buckets without end; so IPv6 is keyed on its leading
 * v6_prefix bits (default 64), the rest zeroed. */
void zh__limit_key(const zh_limit_t *l, int family, const uint8_t addr[16], uint8_t key[16])
{
	static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	unsigned bits;
	if (family != AF_INET6) {
		memcpy(key, mapped, 12);
		memcpy(key + 12, addr, 4);
		return;
	}
	memcpy(key, addr, 16);
	if (memcmp(addr, mapped, 12) == 0)
		return; /* IPv4-mapped: an IPv4 client, /32 */
	bits = __atomic_load_n(&l->v6_prefix, __ATOMIC_RELAXED);
	if (bits < 128) {
		key[bits / 8] &= (uint8_t)(0xff00u >> (bits % 8));
		memset(key + bits / 8 + 1, 0, 15 - bits / 8);
	}
}

static void client_key(const zh_limit_t *l, const zh_request_t *req, uint8_t key[16])
{
	uint8_t a[16];
	int family = zh_req_client_addr(req, a);
	zh__limit_key(l, family, a, key);
}

static uint64_t now_ns(const zh_request_t *req)
{
	/* the head's arrival, when latency metrics took it already: same clock, no second read */
	uint64_t us = zh__ext_started_us(req);
	return (us ? us : zh__now_us()) * 1000u;
}

static size_t format_u64(char out[24], uint64_t v)
{
	char d[24];
	size_t n = 0, len = 0;
	do
		d[n++] = (char)('0' + v % 10);
	while ((v /= 10) != 0);
	while (n)
		out[len++] = d[--n];
	return len;
}

/* A refusal: static body, nothing copied, nothing allocated. The connection stays open. */
static void refuse(zh_response_t *resp, int status, uint64_t retry_s)
{
	static const char body_429[] = "Too Many Requests\n", body_503[] = "Service Unavailable\n";
	char v[24];
	/* a failed set has failed resp (the sticky rule): the refusal becomes a 500 */
	if (zh_resp_header_setn(resp, "Retry-After", 11, v, format_u64(v, retry_s)) < 0 ||
	    zh_resp_header_set(resp, "Content-Type", "text/plain; charset=utf-8") < 0)
		return;
	(void)zh_write_header(resp, status);
	if (status == 429)
		(void)zh_write_static(resp, body_429, sizeof body_429 - 1);
	else
		(void)zh_write_static(resp, body_503, sizeof body_503 - 1);
}

static int limit_before(zh_request_t *req, zh_response_t *resp, void *arg)
{
	zh_limit_t *l = arg;
	zh_stats_t *stats = zh__ext_stats(zh__ext_worker(req));
	uint32_t max;
	uint64_t wait;
	uint8_t key[16];
	rate_t r;

	if (exempt(l, req))
		return ZH_MW_NEXT;
	read_rate(l, &r);
	if (r.t != 0) {
		client_key(l, req, key);
		if (!take(l, &r, key, now_ns(req), &wait)) {
			ZH__STATS_ADD(stats, shed_429, 1);
			refuse(resp, 429, (wait + 999999999u) / 1000000000u);
			return ZH_MW_ANSWERED;
		}
	}
	max = __atomic_load_n(&l->max_inflight, __ATOMIC_RELAXED);
	if (max != 0) {
		if (!inflight_enter(l, max)) {
			ZH__STATS_ADD(stats, shed_503, 1);
			refuse(resp, 503, 1);
			return ZH_MW_ANSWERED;
		}
		*zh_mw_slot(req) = l; /* a place held: the done hook gives it back */
	}
	return ZH_MW_NEXT;
}

static void limit_done(zh_request_t *req, zh_response_t *resp, void *arg)
{
	void **slot = zh_mw_slot(req);
	(void)resp;
	if (*slot) {
		inflight_leave(arg);
		*slot = NULL;
	}
}

zh_middleware_t zh_limit_middleware(zh_limit_t *l)
{
	return (zh_middleware_t){.before = limit_before, .done = limit_done, .arg = l};
}

/* ---- set-up --------------------------------------------------------------------------------- */

static void seed(zh_limit_t *l)
{
	if (getrandom(l->seed, sizeof l->seed, GRND_NONBLOCK) != (ssize_t)sizeof l->seed) {
		/* no entropy yet (early boot): still unpredictable enough from outside */
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		l->seed[0] = mix64((uint64_t)ts.tv_nsec ^ (uint64_t)(uintptr_t)l);
		l->seed[1] = mix64((uint64_t)ts.tv_sec ^ (uint64_t)getpid());
	}
}

zh_limit_t *zh_limit_new(unsigned clients, int *err)
{
	zh_limit_t *l;
	size_t sets = 1, want;
	int e;
	if (clients == 0)
		clients = LIMIT_DEFAULT_CLIENTS;
	if (clients > LIMIT_MAX_CLIENTS) {
		e = -EINVAL;
		goto fail;
	}
	want = (clients + LIMIT_WAYS - 1) / LIMIT_WAYS;
	while (sets < want)
		sets <<= 1;
	l = aligned_alloc(64, sizeof *l);
	if (l == NULL) {
		e = -ENOMEM;
		goto fail;
	}
	memset(l, 0, sizeof *l);
	l->map_len = sets * sizeof(set_t);
	l->sets = mmap(NULL, l->map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (l->sets == MAP_FAILED) {
		e = -errno;
		free(l);
		goto fail;
	}
	l->mask = sets - 1;
	l->v6_prefix = 64;
	seed(l);
	pthread_mutex_init(&l->set_mutex, NULL);
	return l;
fail:
	if (err)
		*err = e;
	return NULL;
}

/* tau = burst * T, exact for whole bursts (so a burst of b admits b, not b - 1), saturated
 * far beyond any real burst. */
static uint64_t tolerance(double burst, uint64_t t)
{
	const double cap = (double)(UINT64_C(1) << 62);
	if (burst * (double)t >= cap)
		return (uint64_t)cap;
	if (burst == (double)(uint64_t)burst)
		return (uint64_t)burst * t;
	return (uint64_t)(burst * (double)t) + 1;
}

int zh_limit_set(zh_limit_t *l, double rps, double burst, unsigned max_inflight)
{
	uint64_t t = 0, tau = 0;
	uint32_t s;
	if (l == NULL || !isfinite(rps) || !isfinite(burst) || rps < 0 || burst < 0 ||
	    (rps > 0 && (rps < 1e-3 || rps > 1e9)))
		return -EINVAL;
	if (rps > 0) {
		if (burst == 0)
			burst = rps > 1 ? rps : 1;
		if (burst < 1)
			return -EINVAL; /* no request could ever pass */
		t = (uint64_t)(1e9 / rps + 0.5); /* no libm: rps is in range, so this rounds */
		tau = tolerance(burst, t);
	}
	pthread_mutex_lock(&l->set_mutex);
	if (t != l->interval_ns || tau != l->tolerance_ns) { /* the same again: debts stay */
		s = __atomic_load_n(&l->seq, __ATOMIC_RELAXED);
		__atomic_store_n(&l->seq, s + 1, __ATOMIC_RELAXED);
		__atomic_thread_fence(__ATOMIC_RELEASE);
		__atomic_store_n(&l->interval_ns, t, __ATOMIC_RELAXED);
		__atomic_store_n(&l->tolerance_ns, tau, __ATOMIC_RELAXED);
		__atomic_store_n(&l->epoch, l->epoch + 1, __ATOMIC_RELAXED);
		__atomic_store_n(&l->seq, s + 2, __ATOMIC_RELEASE);
	}
	__atomic_store_n(&l->max_inflight, (uint32_t)max_inflight, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&l->set_mutex);
	return 0;
}

int zh_limit_ipv6_prefix(zh_limit_t *l, unsigned bits)
{
	if (l == NULL || bits < 32 || bits > 128)
		return -EINVAL;
	__atomic_store_n(&l->v6_prefix, (uint32_t)bits, __ATOMIC_RELAXED);
	return 0;
}

int zh_limit_exempt(zh_limit_t *l, const char *path)
{
	size_t len = path ? strlen(path) : 0;
	if (len == 0 || path[0] != '/' || len > LIMIT_EXEMPT_LEN)
		return -EINVAL;
	if (l->nexempt == LIMIT_EXEMPT_MAX)
		return -ENOSPC;
	memcpy(l->exempt[l->nexempt], path, len);
	l->exempt_len[l->nexempt++] = len;
	return 0;
}

void zh_limit_free(zh_limit_t *l)
{
	if (l == NULL)
		return;
	munmap(l->sets, l->map_len);
	pthread_mutex_destroy(&l->set_mutex);
	free(l);
}
