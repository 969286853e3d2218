/* heap_count.c — counts the malloc-family calls made on worker threads, for /metrics
 * (zerohttp_heap_allocations_total). The library allocates nothing on the request path;
 * this proves it in production, for everything a worker runs (handlers, libc, zlib).
 *
 * zerohttpd defines the allocation entry points itself and forwards each call to the next
 * definition (dlsym RTLD_NEXT: glibc, or a preloaded shim such as the test suite's
 * malloc_count.so, which thus still sees every call). The forward pointers are resolved by
 * a constructor before any thread exists; dlsym's own allocations during that resolution go
 * to glibc's __libc_* entry points. zh_note_alloc() counts only on worker threads, in the
 * worker's own stats (no atomics). free() is not counted: it cannot allocate.
 *
 * Sanitizer builds (ZH_NO_HEAP_COUNT) leave malloc to the sanitizer: clang links its
 * interceptors into the executable, where these definitions would clash with them.
 */
#ifndef ZH_NO_HEAP_COUNT
#include "zerohttp.h"

#include <dlfcn.h>
#include <errno.h>
#include <malloc.h> /* memalign */
#include <stddef.h>
#include <stdlib.h> /* the prototypes defined here */
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
extern void *__libc_memalign(size_t, size_t);

static void *(*next_malloc)(size_t);
static void *(*next_calloc)(size_t, size_t);
static void *(*next_realloc)(void *, size_t);
static void (*next_free)(void *);
static int (*next_posix_memalign)(void **, size_t, size_t);
static void *(*next_aligned_alloc)(size_t, size_t);
static void *(*next_memalign)(size_t, size_t);

__attribute__((constructor)) static void resolve(void)
{
	/* each assignment takes effect once complete: until then the __libc_* fallbacks run */
	next_malloc = (void *(*)(size_t))dlsym(RTLD_NEXT, "malloc");
	next_calloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "calloc");
	next_realloc = (void *(*)(void *, size_t))dlsym(RTLD_NEXT, "realloc");
	next_free = (void (*)(void *))dlsym(RTLD_NEXT, "free");
	next_posix_memalign = (int (*)(void **, size_t, size_t))dlsym(RTLD_NEXT, "posix_memalign");
	next_aligned_alloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "aligned_alloc");
	next_memalign = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "memalign");
}

void *malloc(size_t n)
{
	zh_note_alloc();
	return next_malloc ? next_malloc(n) : __libc_malloc(n);
}

void *calloc(size_t a, size_t b)
{
	zh_note_alloc();
	return next_calloc ? next_calloc(a, b) : __libc_calloc(a, b);
}

void *realloc(void *p, size_t n)
{
	zh_note_alloc();
	return next_realloc ? next_realloc(p, n) : __libc_realloc(p, n);
}

void *reallocarray(void *p, size_t a, size_t b)
{
	size_t n;
	if (__builtin_mul_overflow(a, b, &n)) {
		errno = ENOMEM;
		return NULL;
	}
	return realloc(p, n);
}

void free(void *p)
{
	if (next_free)
		next_free(p);
	else
		__libc_free(p);
}

int posix_memalign(void **out, size_t align, size_t n)
{
	void *p;
	zh_note_alloc();
	if (next_posix_memalign)
		return next_posix_memalign(out, align, n);
	if (align < sizeof(void *) || (align & (align - 1)))
		return EINVAL;
	if ((p = __libc_memalign(align, n)) == NULL)
		return ENOMEM;
	*out = p;
	return 0;
}

void *aligned_alloc(size_t align, size_t n)
{
	zh_note_alloc();
	return next_aligned_alloc ? next_aligned_alloc(align, n) : __libc_memalign(align, n);
}

void *memalign(size_t align, size_t n)
{
	zh_note_alloc();
	return next_memalign ? next_memalign(align, n) : __libc_memalign(align, n);
}
#endif /* ZH_NO_HEAP_COUNT */
