/* malloc_count.c — LD_PRELOAD shim that counts heap calls, for the zero-allocation test.
 *
 * Every malloc-family call (malloc, calloc, realloc, reallocarray, free, posix_memalign,
 * aligned_alloc, memalign, valloc, pvalloc) increments one counter, then goes to glibc's
 * own __libc_* entry points (no dlsym, which could itself allocate and recurse).
 * On SIGRTMIN+3 the current count is written, in decimal, to $ZH_MALLOC_COUNT_FILE: the
 * test reads it before and after the measured phase and asserts the difference is 0. (A
 * real-time signal: zerohttpd uses SIGUSR1, SIGUSR2 and SIGHUP itself.)
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
extern void *__libc_memalign(size_t, size_t);

static atomic_ulong calls;
static char path[256];

static void count(void)
{
	atomic_fetch_add_explicit(&calls, 1, memory_order_relaxed);
}

void *malloc(size_t n)
{
	count();
	return __libc_malloc(n);
}

void *calloc(size_t a, size_t b)
{
	count();
	return __libc_calloc(a, b);
}

void *realloc(void *p, size_t n)
{
	count();
	return __libc_realloc(p, n);
}

void *reallocarray(void *p, size_t a, size_t b)
{
	size_t n;
	if (__builtin_mul_overflow(a, b, &n)) {
		errno = ENOMEM;
		return NULL;
	}
	count();
	return __libc_realloc(p, n);
}

void free(void *p)
{
	count();
	__libc_free(p);
}

void *memalign(size_t align, size_t n)
{
	count();
	return __libc_memalign(align, n);
}

void *aligned_alloc(size_t align, size_t n)
{
	count();
	return __libc_memalign(align, n);
}

int posix_memalign(void **out, size_t align, size_t n)
{
	void *p;
	count();
	if (align < sizeof(void *) || (align & (align - 1)))
		return EINVAL;
	p = __libc_memalign(align, n);
	if (p == NULL)
		return ENOMEM;
	*out = p;
	return 0;
}

void *valloc(size_t n)
{
	count();
	return __libc_memalign((size_t)sysconf(_SC_PAGESIZE), n);
}

void *pvalloc(size_t n)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	count();
	return __libc_memalign(page, (n + page - 1) / page * page);
}

/* async-signal-safe: open/write/close and hand-made decimal */
static void dump(int sig)
{
	char buf[24];
	int i = (int)sizeof buf;
	unsigned long v = atomic_load_explicit(&calls, memory_order_relaxed);
	int fd, saved = errno;
	(void)sig;
	do {
		buf[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd >= 0) {
		(void)!write(fd, buf + i, sizeof buf - (size_t)i);
		close(fd);
	}
	errno = saved;
}

__attribute__((constructor)) static void init(void)
{
	const char *p = getenv("ZH_MALLOC_COUNT_FILE");
	struct sigaction sa;
	if (p == NULL || strlen(p) >= sizeof path)
		return;
	memcpy(path, p, strlen(p) + 1);
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = dump;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGRTMIN + 3, &sa, NULL);
}
