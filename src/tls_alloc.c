/* tls_alloc.c — OpenSSL's heap, routed to per-thread pools (zh_tls_memory_init).
 *
 * OpenSSL allocates while it works: SSL_MODE_RELEASE_BUFFERS (which keeps an idle
 * connection free of its two ~17 KiB record buffers) makes every SSL_read and SSL_write
 * take a record buffer and give it back, and a handshake makes a few hundred small
 * allocations. Through CRYPTO_set_mem_functions they land here instead of malloc:
 *
 *   - size classes from 16 bytes to 64 KiB (steps of 1/2 and 3/4 of each power of two);
 *     each block has a 16-byte header saying its class, so free() needs no lookup;
 *   - one free list per class per thread (thread-local, no lock): a worker's record
 *     buffers go back to its own list and are the next ones it takes (LIFO, cache-hot);
 *   - blocks are carved from 1 MiB regions mmap'd when a thread's lists are empty. Memory
 *     is never given back to the kernel: the pools hold the high-water mark of what
 *     OpenSSL used at once, the way the core's pools do;
 *   - a block freed on another thread than the one that took it joins the freeing
 *     thread's list (the SSL_CTX is built on the main thread, connections on workers):
 *     nothing is lost, memory only changes hands;
 *   - anything larger than the largest class is mmap'd and munmap'd on its own.
 *
 * So in steady state a keep-alive TLS request costs two free-list pops and pushes and no
 * system call for memory. Builds with AddressSanitizer keep malloc, so that ASan sees the
 * lifetimes of OpenSSL's objects.
 */
#include "tls_int.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <string.h>
#include <sys/mman.h>

#if defined(__SANITIZE_ADDRESS__)
#define ZH__TLS_NO_POOLS 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ZH__TLS_NO_POOLS 1
#endif
#endif

enum {
	HDR = 16,
	NCLASS = 24,
	MAX_CLASS_SIZE = 65536,
	REGION = 1 << 20,
	MAGIC = 0x7a68746c, /* "zhtl" */
	BIG = 0xffff,
};

typedef struct hdr {
	uint32_t cls, magic;
	uint64_t size; /* BIG: the mapping's length */
} hdr_t;

struct arena {
	void *free[NCLASS];
	char *bump, *end;
	uint64_t allocs;
};

/* the default TLS model: the library may be dlopen'd (zerohttpd does); the first access
 * on a thread then sets up its block, once */
static __thread struct arena arena;
static uint64_t regions, region_bytes; /* atomic */
static bool active;

uint64_t zh__tls_allocs_here(void)
{
	return arena.allocs;
}

bool zh__tls_pools_active(void)
{
	return __atomic_load_n(&active, __ATOMIC_ACQUIRE);
}

void zh__tls_pool_usage(uint64_t *r, uint64_t *b)
{
	*r = __atomic_load_n(&regions, __ATOMIC_RELAXED);
	*b = __atomic_load_n(&region_bytes, __ATOMIC_RELAXED);
}

#ifndef ZH__TLS_NO_POOLS /* the allocator proper: not built under ASan */
static const uint32_t class_size[NCLASS] = {
	16,   32,   48,   64,    96,    128,   192,   256,   384,   512,   768,   1024,
	1536, 2048, 3072, 4096, 6144, 8192, 12288, 16384, 24576, 32768, 49152, 65536};

static unsigned class_of(size_t n)
{
	unsigned lo = 0, hi = NCLASS - 1;
	while (lo < hi) { /* the first class that holds n */
		unsigned mid = (lo + hi) / 2;
		if (class_size[mid] >= n)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

static void *map(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	__atomic_fetch_add(&regions, 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&region_bytes, len, __ATOMIC_RELAXED);
	return p;
}

static void *alloc_big(size_t n)
{
	size_t len = (n + HDR + 4095) & ~(size_t)4095;
	hdr_t *h = map(len);
	if (h == NULL)
		return NULL;
	h->cls = BIG;
	h->magic = MAGIC;
	h->size = len;
	return (char *)h + HDR;
}

static void *carve(unsigned cls)
{
	size_t block = class_size[cls] + HDR;
	hdr_t *h;
	if ((size_t)(arena.end - arena.bump) < block) {
		/* the tail of the old region is abandoned: at most one block's worth */
		char *r = map(REGION);
		if (r == NULL)
			return NULL;
		arena.bump = r;
		arena.end = r + REGION;
	}
	h = (hdr_t *)(void *)arena.bump;
	arena.bump += block;
	h->cls = cls;
	h->magic = MAGIC;
	return h;
}

static void *pool_malloc(size_t n, const char *file, int line)
{
	unsigned cls;
	hdr_t *h;
	(void)file, (void)line;
	arena.allocs++;
	if (n > MAX_CLASS_SIZE)
		return alloc_big(n);
	cls = class_of(n ? n : 1);
	h = arena.free[cls];
	if (h != NULL)
		arena.free[cls] = *(void **)(void *)((char *)h + HDR);
	else if ((h = carve(cls)) == NULL)
		return NULL;
	return (char *)h + HDR;
}

static void pool_free(void *p, const char *file, int line)
{
	hdr_t *h;
	(void)file, (void)line;
	if (p == NULL)
		return;
	h = (hdr_t *)(void *)((char *)p - HDR);
	if (h->cls == BIG) {
		__atomic_fetch_sub(&region_bytes, h->size, __ATOMIC_RELAXED);
		__atomic_fetch_sub(&regions, 1, __ATOMIC_RELAXED);
		munmap(h, h->size);
		return;
	}
	*(void **)p = arena.free[h->cls];
	arena.free[h->cls] = h;
}

static size_t usable(const hdr_t *h)
{
	return h->cls == BIG ? h->size - HDR : class_size[h->cls];
}

static void *pool_realloc(void *p, size_t n, const char *file, int line)
{
	void *q;
	size_t have;
	if (p == NULL)
		return pool_malloc(n, file, line);
	if (n == 0) {
		pool_free(p, file, line);
		return NULL;
	}
	have = usable((const hdr_t *)(const void *)((const char *)p - HDR));
	if (n <= have && (have <= MAX_CLASS_SIZE || n > MAX_CLASS_SIZE))
		return p; /* still fits its block */
	if ((q = pool_malloc(n, file, line)) == NULL)
		return NULL;
	memcpy(q, p, have < n ? have : n);
	pool_free(p, file, line);
	return q;
}
#endif

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int init_result;

static void install(void)
{
#ifdef ZH__TLS_NO_POOLS
	init_result = 0; /* ASan: malloc stays, on purpose */
#else
	/* fails (returns 0) once OpenSSL has allocated anything: its blocks would reach
	 * pool_free without our header */
	if (CRYPTO_set_mem_functions(pool_malloc, pool_realloc, pool_free)) {
		__atomic_store_n(&active, true, __ATOMIC_RELEASE);
		init_result = 0;
	} else {
		init_result = -EBUSY;
	}
#endif
}

int zh_tls_memory_init(void)
{
	pthread_once(&once, install);
	return init_result;
}
