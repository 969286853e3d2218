/* tls_int.h — what the files of libzerohttp-tls share (transport_tls.c, tls_config.c,
 * tls_alloc.c). Never installed; the core never includes it (it knows a TLS listener only
 * through the zh__tr_provider_t that struct zh_tls begins with, see internal.h).
 *
 * Ownership:
 *   zh_tls_t         the application's (zh_tls_new .. zh_tls_free): options, the paths of
 *                    the certificate pairs, the ticket keys, the counters, the current
 *                    generation.
 *   zh__tls_gen_t    one loading of every pair (an SSL_CTX each). Reference counted: one
 *                    reference while current, one per connection still in its handshake
 *                    (the SNI callback reads it then). Established connections hold their
 *                    SSL_CTX through OpenSSL's own reference, not the generation, so a
 *                    reload frees the old generation once the last handshake begun under
 *                    it has ended.
 *   zh__tls_conn_t   one connection's state, from the transport's open() to its close(),
 *                    found by descriptor (zh__tls_conn_of): the 72-byte connection slot
 *                    stays as it is for plain connections.
 */
#ifndef ZH_TLS_INT_H
#define ZH_TLS_INT_H

#include "internal.h"

#include <openssl/ssl.h>
#include <pthread.h>
#include <time.h>

enum { ZH__TLS_CERTS_MAX = 16 };

typedef struct zh__tls_gen {
	unsigned refs; /* atomic */
	unsigned n;
	SSL_CTX *ctx[ZH__TLS_CERTS_MAX];
	X509 *leaf[ZH__TLS_CERTS_MAX]; /* borrowed from ctx[i] */
} zh__tls_gen_t;

struct zh__ticket_key {
	unsigned char name[16], aes[32], hmac[32];
	uint64_t born_ms; /* CLOCK_MONOTONIC; 0: no key (keys[1] before the first rotation) */
};

struct zh_tls {
	zh__tr_provider_t provider; /* first: the core reads it (internal.h) */
	zh_tls_options_t opt;
	pthread_mutex_t lock; /* gen (the swap and taking a reference), keys */
	zh__tls_gen_t *gen;
	unsigned npairs;
	char *cert[ZH__TLS_CERTS_MAX], *key[ZH__TLS_CERTS_MAX];
	struct zh__ticket_key keys[2]; /* [0] issues tickets, [1] the previous one */
	EVP_CIPHER *ticket_cipher;     /* AES-256-CBC, fetched once (not per ticket) */
	zh_tls_stats_t st; /* updated with relaxed atomic adds: per handshake, not per request */
};

enum zh__tls_mode { ZH__TLS_HS, ZH__TLS_OPEN, ZH__TLS_PLAIN, ZH__TLS_FAILED };

typedef struct zh__tls_conn {
	SSL *ssl;
	zh__conn_t *c;
	const zh__transport_t *lower; /* moves the records: the plain socket or io_uring */
	zh_tls_t *tls;
	zh__tls_gen_t *gen;	/* until the handshake ends */
	uint64_t start_us;	/* accept, for the handshake latency */
	uint8_t mode;		/* enum zh__tls_mode */
	uint8_t want;		/* ZH__WANT_*: what the last blocked call waits for */
	bool sniffed;		/* the first byte was seen to be a TLS handshake record */
	bool short_read;	/* a BIO read of this tls_recv call came back short: drained */
	uint32_t data_allocs;	/* pool allocations not yet added to the shared counter */
} zh__tls_conn_t;

#define ZH__TLS_ADD(tls, field, n) __atomic_fetch_add(&(tls)->st.field, (n), __ATOMIC_RELAXED)

/* tls_config.c */
zh__tls_gen_t *zh__tls_gen_get(zh_tls_t *tls); /* the current one, with a reference */
void zh__tls_gen_put(zh__tls_gen_t *g);
int zh__tls_cipher_index(const char *name);
void zh__tls_hs_latency(zh_tls_t *tls, uint64_t us);

/* transport_tls.c */
extern const zh__transport_t zh__transport_tls;
BIO_METHOD *zh__tls_bio_method(void); /* NULL when out of memory */

/* tls_alloc.c: the pools (zh_tls_memory_init). The counter is this thread's number of
 * pool allocations so far: the transport takes differences around its OpenSSL calls. */
uint64_t zh__tls_allocs_here(void);
bool zh__tls_pools_active(void);
void zh__tls_pool_usage(uint64_t *regions, uint64_t *bytes);

#endif
