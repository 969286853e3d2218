/* static_int.h — what static.c (request handling) and static_cache.c (setup, content types,
 * opening beneath the root, the per-worker open-file cache) share. Internal to the static
 * handler: nothing else includes it.
 */
#ifndef ZH_STATIC_INT_H
#define ZH_STATIC_INT_H

#include "ext.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

enum { PATH_MAX_CACHED = 240, PATH_MAX_DECODED = 4096 };

typedef struct {
	const char *ext;
	zh__hlines_t line; /* "Content-Type: type\r\n" */
} mime_t;

typedef struct cache cache_t;

typedef struct entry {
	struct entry *hnext;		/* hash chain, or the free list */
	cache_t *cache;
	struct entry *lprev, *lnext;	/* LRU, most recent first */
	int fd;
	uint32_t refs;			/* queued responses still sending from fd */
	bool hashed;			/* reachable by lookup; false: closed on last release */
	bool used;
	uint64_t size, validated_ms;
	dev_t dev;
	ino_t ino;
	struct timespec mtime;
	const mime_t *ctype;
	uint8_t etag_len;
	uint16_t plen;
	uint32_t hash;
	uint8_t variants;		/* bit k: path + suffix[k] exists (see pick_variant) */
	uint64_t variants_ms;		/* when variants was probed; 0: never */
	/* "ETag: ...\r\nLast-Modified: ...\r\nAccept-Ranges: bytes\r\n", formatted at fill time
	 * and appended to each response with one memcpy (hl indexes it); the ETag value starts
	 * at lines + 6 */
	zh__hlines_t hl;
	char lines[136];
	char path[PATH_MAX_CACHED];
} entry_t;

struct cache {
	entry_t *entries;
	entry_t **buckets;
	entry_t *free_list; /* entries that held a file and were given back */
	uint32_t nbuckets;
	uint32_t carved, nentries; /* entries[0..carved) have been used; the rest untouched */
	entry_t *lru_head, *lru_tail;
	uint64_t multipart_seq;	  /* counts multipart responses: the boundary's input */
	uint64_t boundary_key[2]; /* random (getrandom) per worker: see multipart_boundary */
};

struct zh_static {
	int root_fd;
	char index[64];
	size_t index_len;
	uint32_t ttl_ms, nentries;
	bool precompressed, dotfiles, no_openat2;
	unsigned nworkers;
	cache_t *caches; /* one per worker: no locks */
};

/* The ETag value (quotes included) in e's preformatted lines: after "ETag: ". */
#define ETAG(e) ((e)->lines + 6)
#define MIME_VALUE(m) ((m)->line.text + (m)->line.idx[0].voff)
#define MIME_VALUE_LEN(m) ((m)->line.idx[0].vlen)

/* Opens root-relative path without leaving the root (openat2 RESOLVE_BENEATH, else one
 * O_NOFOLLOW component at a time). Returns the fd or -1 with errno. */
int zh__static_open_beneath(const zh_static_t *st, const char *path, int flags);
/* The cached entry for path, revalidated if older than the TTL; or NULL with *status set
 * (see static_cache.c). */
entry_t *zh__static_lookup(zh_static_t *st, cache_t *c, uint64_t now, const char *path,
			   size_t plen, int *status, bool *isdir, entry_t *scratch);
/* Fills e's size, identity and mtime from st and preformats its ETag, Last-Modified and
 * Accept-Ranges lines (static_cache.c; the fuzz harness builds real entries with it). */
void zh__static_fill_metadata(entry_t *e, const struct stat *st);
/* zh_send_file's release: drops a queued response's reference to the entry (arg). */
void zh__static_release_ref(void *arg);

#endif
