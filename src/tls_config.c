/* tls_config.c — zh_tls_t: the TLS settings a listener serves (zerohttp.h, "Listeners and
 * TLS"). Certificates and keys (one SSL_CTX per pair, chosen by SNI), the protocol
 * profile, ALPN, session tickets with rotating keys, reload, counters and their /metrics
 * text. The transport itself is transport_tls.c.
 *
 * Profile, in the spirit of Mozilla's "intermediate" configuration (v5.7): TLS 1.2 and 1.3
 * only; for TLS 1.2 ECDHE key exchange with AES-GCM or ChaCha20-Poly1305 (no CBC, no
 * static RSA, no DHE: it would need a dhparam file), in the server's order (AES-GCM, then
 * ChaCha20 unless the client prefers it); groups X25519, P-256, P-384. No compression (CRIME), no
 * renegotiation (RFC 5746 attacks; TLS 1.3 has none), no 0-RTT.
 *
 * Resumption is stateless: tickets (RFC 5077 for 1.2; the PSK of RFC 8446 §4.6.1 for 1.3)
 * sealed with keys kept here, not in an SSL_CTX, so that every worker and every generation
 * of certificates (a reload) accepts them. A new key every ticket_rotate_s; the previous
 * key still opens tickets (and the client gets a fresh one), older tickets mean a full
 * handshake. No server-side session cache: nothing to share between workers or to lock.
 */
#include "tls_int.h"

#include <errno.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char ciphers12[] = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
				"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
				"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
static const char suites13[] = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:"
			       "TLS_CHACHA20_POLY1305_SHA256";

const char *const zh_tls_cipher_names[ZH_TLS_CIPHERS] = {
	"TLS_AES_128_GCM_SHA256",	 "TLS_AES_256_GCM_SHA384",
	"TLS_CHACHA20_POLY1305_SHA256", "ECDHE-ECDSA-AES128-GCM-SHA256",
	"ECDHE-RSA-AES128-GCM-SHA256",	 "ECDHE-ECDSA-AES256-GCM-SHA384",
	"ECDHE-RSA-AES256-GCM-SHA384",	 "ECDHE-ECDSA-CHACHA20-POLY1305",
	"other",
};

const uint32_t zh_tls_hs_bounds_us[ZH_TLS_HS_BUCKETS - 1] = {
	100, 250, 500, 1000, 2500, 5000, 10000, 25000, 100000, 1000000, 10000000};

int zh__tls_cipher_index(const char *name)
{
	for (int i = 0; i < ZH_TLS_CIPHERS - 1; i++)
		if (strcmp(zh_tls_cipher_names[i], name) == 0)
			return i;
	return ZH_TLS_CIPHERS - 1;
}

void zh__tls_hs_latency(zh_tls_t *tls, uint64_t us)
{
	unsigned b = 0;
	while (b < ZH_TLS_HS_BUCKETS - 1 && us > zh_tls_hs_bounds_us[b])
		b++;
	ZH__TLS_ADD(tls, hs_buckets[b], 1);
	ZH__TLS_ADD(tls, hs_sum_us, us);
	ZH__TLS_ADD(tls, hs_count, 1);
}

void zh_tls_options_init(zh_tls_options_t *opt)
{
	memset(opt, 0, sizeof *opt);
	opt->min_version = ZH_TLS_1_2;
	opt->ticket_rotate_s = 3600;
}

/* ---- why something failed: one line for the operator -------------------------------------- */

/* why = "<what> <path>: <OpenSSL's last error>" */
static int fail(char *why, size_t cap, int err, const char *what, const char *path)
{
	unsigned long e = ERR_peek_last_error();
	if (why && cap) {
		int n = snprintf(why, cap, "%s%s%s", what, path ? " " : "", path ? path : "");
		if (e && n >= 0 && (size_t)n < cap) {
			why[n++] = ':';
			if ((size_t)n < cap) {
				why[n++] = ' ';
				ERR_error_string_n(e, why + n, cap - (size_t)n);
			}
		}
	}
	ERR_clear_error();
	return err;
}

/* ---- callbacks ------------------------------------------------------------------------------ */

static zh_tls_t *tls_of(SSL *s)
{
	return SSL_CTX_get_app_data(SSL_get_SSL_CTX(s));
}

/* SNI (RFC 6066 §3): the first pair whose certificate covers the name; none, or no name:
 * the default pair, already in place. */
static int sni_cb(SSL *s, int *alert, void *arg)
{
	zh__tls_gen_t *g = arg;
	const char *name = SSL_get_servername(s, TLSEXT_NAMETYPE_host_name);
	(void)alert;
	if (name == NULL)
		return SSL_TLSEXT_ERR_NOACK;
	for (unsigned i = 0; i < g->n; i++) {
		if (X509_check_host(g->leaf[i], name, strlen(name), 0, NULL) != 1)
			continue;
		if (i > 0 && SSL_set_SSL_CTX(s, g->ctx[i]) == NULL)
			return SSL_TLSEXT_ERR_ALERT_FATAL;
		return SSL_TLSEXT_ERR_OK;
	}
	return SSL_TLSEXT_ERR_NOACK;
}

/* ALPN (RFC 7301). "h2" first when the server serves HTTP/2 (conn.c set ZH__TRF_H2 on the
 * connection), so a client offering both gets HTTP/2 (our preference decides, §3.2);
 * "http/1.1" alone otherwise. A client that offers no protocol we speak gets the
 * no_application_protocol alert (§3.2). */
static const unsigned char alpn_h2[] = "\x02h2\x08http/1.1";
static const unsigned char alpn_h1[] = "\x08http/1.1";

static int alpn_cb(SSL *s, const unsigned char **out, unsigned char *outlen,
		   const unsigned char *in, unsigned inlen, void *arg)
{
	/* transport_tls.c's open() sets it; an SSL made elsewhere (the fuzzer's, over a memory
	 * BIO) has none and is offered HTTP/1.1 only */
	zh__tls_conn_t *t = SSL_get_app_data(s);
	bool h2 = t && t->c->trflags & ZH__TRF_H2;
	unsigned char *sel;
	(void)arg;
	if (SSL_select_next_proto(&sel, outlen, h2 ? alpn_h2 : alpn_h1,
				  h2 ? sizeof alpn_h2 - 1 : sizeof alpn_h1 - 1, in,
				  inlen) != OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	if (h2 && *outlen == 2 && memcmp(sel, "h2", 2) == 0)
		t->c->trflags |= ZH__TRF_ALPN_H2;
	*out = sel;
	return SSL_TLSEXT_ERR_OK;
}

/* CLOCK_MONOTONIC in milliseconds, never 0 (0 marks an empty key slot) */
static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u + 1;
}

static int key_new(struct zh__ticket_key *k, uint64_t now)
{
	k->born_ms = now;
	return RAND_bytes(k->name, sizeof k->name) == 1 && RAND_bytes(k->aes, sizeof k->aes) == 1 &&
			       RAND_bytes(k->hmac, sizeof k->hmac) == 1
		       ? 0
		       : -EIO;
}

/* Under tls->lock. A failed draw keeps the current key (tickets stay valid longer). */
static void keys_rotate(zh_tls_t *tls, uint64_t now)
{
	struct zh__ticket_key k;
	if (now - tls->keys[0].born_ms < (uint64_t)tls->opt.ticket_rotate_s * 1000u)
		return;
	if (key_new(&k, now) < 0) {
		ERR_clear_error();
		return;
	}
	tls->keys[1] = tls->keys[0];
	tls->keys[0] = k;
}

static int ticket_setup(const EVP_CIPHER *aes, const struct zh__ticket_key *k,
			unsigned char *iv, EVP_CIPHER_CTX *cc, EVP_MAC_CTX *hc, int enc)
{
	OSSL_PARAM params[3];
	params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, (void *)(uintptr_t)k->hmac,
						      sizeof k->hmac);
	params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
	params[2] = OSSL_PARAM_construct_end();
	if (EVP_MAC_CTX_set_params(hc, params) != 1)
		return -1;
	if (enc)
		return EVP_EncryptInit_ex(cc, aes, NULL, k->aes, iv) == 1 ? 0 : -1;
	return EVP_DecryptInit_ex(cc, aes, NULL, k->aes, iv) == 1 ? 0 : -1;
}

/* OpenSSL's ticket key callback: enc 1 seals a new ticket (1, or -1 on error); enc 0 opens
 * one: 1 with the current key, 2 with the previous (OpenSSL then issues a fresh ticket),
 * 0 for an unknown key (a full handshake). */
static int ticket_cb(SSL *s, unsigned char name[16], unsigned char *iv, EVP_CIPHER_CTX *cc,
		     EVP_MAC_CTX *hc, int enc)
{
	zh_tls_t *tls = tls_of(s);
	struct zh__ticket_key k;
	int which = 0;
	pthread_mutex_lock(&tls->lock);
	keys_rotate(tls, now_ms());
	if (enc) {
		k = tls->keys[0];
		which = 1;
	} else {
		for (int i = 0; i < 2 && !which; i++)
			if (tls->keys[i].born_ms && memcmp(name, tls->keys[i].name, 16) == 0) {
				k = tls->keys[i];
				which = i + 1;
			}
	}
	pthread_mutex_unlock(&tls->lock);
	if (!which)
		return 0;
	if (enc) {
		memcpy(name, k.name, 16);
		if (RAND_bytes(iv, 16) != 1)
			return -1;
	}
	if (ticket_setup(tls->ticket_cipher, &k, iv, cc, hc, enc) < 0)
		return -1;
	return which;
}

/* ---- one pair, one SSL_CTX ------------------------------------------------------------------ */

static int readable(const char *path, char *why, size_t cap)
{
	int e;
	if (access(path, R_OK) == 0)
		return 0;
	e = errno;
	if (why && cap)
		snprintf(why, cap, "cannot read %s: %s", path, strerror(e));
	return -e;
}

static SSL_CTX *ctx_new(zh_tls_t *tls, zh__tls_gen_t *g, const char *cert, const char *key,
			char *why, size_t cap, int *err)
{
	SSL_CTX *ctx;
	if ((*err = readable(cert, why, cap)) < 0 || (*err = readable(key, why, cap)) < 0)
		return NULL;
	*err = -EINVAL;
	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		*err = fail(why, cap, -ENOMEM, "cannot create an SSL_CTX", NULL);
		return NULL;
	}
	SSL_CTX_set_app_data(ctx, tls);
	if (!SSL_CTX_set_min_proto_version(ctx, tls->opt.min_version == ZH_TLS_1_3 ? TLS1_3_VERSION
										  : TLS1_2_VERSION) ||
	    !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) ||
	    !SSL_CTX_set_cipher_list(ctx, ciphers12) || !SSL_CTX_set_ciphersuites(ctx, suites13) ||
	    !SSL_CTX_set1_groups_list(ctx, "X25519:P-256:P-384") ||
	    !SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"zerohttp", 8)) {
		*err = fail(why, cap, -EINVAL, "cannot set the TLS profile", NULL);
		goto bad;
	}
	/* the server's order (AES-GCM first: hardware AES), unless the client puts
	 * ChaCha20 first (no AES instructions there); testssl.sh rates no server order HIGH */
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
					 SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_CIPHER_SERVER_PREFERENCE |
					 SSL_OP_PRIORITIZE_CHACHA);
	/* RELEASE_BUFFERS: an idle connection holds no record buffer (they come back from the
	 * pools, tls_alloc.c); PARTIAL_WRITE: one record per send; MOVING: see transport;
	 * NO_AUTO_CHAIN: the chain is the certificate file's, sent as it is, instead of a
	 * chain that OpenSSL would build (X509_verify_cert) again on every handshake */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
				      SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_NO_AUTO_CHAIN);
	SSL_CTX_set_read_ahead(ctx, 1);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_num_tickets(ctx, 1);
	SSL_CTX_set_timeout(ctx, (long)tls->opt.ticket_rotate_s * 2);
	SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_cb);
	SSL_CTX_set_alpn_select_cb(ctx, alpn_cb, NULL);
	SSL_CTX_set_tlsext_servername_callback(ctx, sni_cb);
	SSL_CTX_set_tlsext_servername_arg(ctx, g);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		*err = fail(why, cap, -EINVAL, "bad certificate file", cert);
		goto bad;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		bool mismatch = ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH;
		*err = fail(why, cap, -EINVAL,
			    mismatch ? "the key does not match its certificate:" : "bad key file", key);
		goto bad;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		*err = fail(why, cap, -EINVAL, "the key does not match its certificate:", key);
		goto bad;
	}
	return ctx;
bad:
	SSL_CTX_free(ctx);
	return NULL;
}

/* ---- generations ---------------------------------------------------------------------------- */

static void gen_free(zh__tls_gen_t *g)
{
	for (unsigned i = 0; i < g->n; i++)
		SSL_CTX_free(g->ctx[i]);
	OPENSSL_free(g);
}

void zh__tls_gen_put(zh__tls_gen_t *g)
{
	if (__atomic_sub_fetch(&g->refs, 1, __ATOMIC_ACQ_REL) == 0)
		gen_free(g);
}

zh__tls_gen_t *zh__tls_gen_get(zh_tls_t *tls)
{
	zh__tls_gen_t *g;
	pthread_mutex_lock(&tls->lock); /* against a swap freeing it in between */
	g = tls->gen;
	__atomic_add_fetch(&g->refs, 1, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&tls->lock);
	return g;
}

/* Loads every pair; NULL with *err and why when one fails. */
static zh__tls_gen_t *gen_load(zh_tls_t *tls, unsigned n, char *why, size_t cap, int *err)
{
	zh__tls_gen_t *g = OPENSSL_zalloc(sizeof *g);
	if (g == NULL) {
		*err = -ENOMEM;
		return NULL;
	}
	g->refs = 1;
	for (unsigned i = 0; i < n; i++) {
		if ((g->ctx[i] = ctx_new(tls, g, tls->cert[i], tls->key[i], why, cap, err)) == NULL) {
			gen_free(g);
			return NULL;
		}
		g->leaf[i] = SSL_CTX_get0_certificate(g->ctx[i]);
		g->n = i + 1;
	}
	return g;
}

static void gen_install(zh_tls_t *tls, zh__tls_gen_t *g)
{
	zh__tls_gen_t *old;
	pthread_mutex_lock(&tls->lock);
	old = tls->gen;
	tls->gen = g;
	pthread_mutex_unlock(&tls->lock);
	if (old)
		zh__tls_gen_put(old); /* its "current" reference */
}

/* ---- public --------------------------------------------------------------------------------- */

zh_tls_t *zh_tls_new(const zh_tls_options_t *opt, int *err)
{
	zh_tls_t *tls;
	int r = -EINVAL;
	(void)zh_tls_memory_init(); /* -EBUSY only means malloc stays in use: not an error */
	if (opt == NULL || (opt->min_version != ZH_TLS_1_2 && opt->min_version != ZH_TLS_1_3) ||
	    opt->ticket_rotate_s == 0 || zh__tls_bio_method() == NULL)
		goto fail;
	r = -ENOMEM;
	if ((tls = calloc(1, sizeof *tls)) == NULL)
		goto fail;
	tls->provider.transport = &zh__transport_tls;
	tls->opt = *opt;
	pthread_mutex_init(&tls->lock, NULL);
	if (key_new(&tls->keys[0], now_ms()) < 0 ||
	    (tls->ticket_cipher = EVP_CIPHER_fetch(NULL, "AES-256-CBC", NULL)) == NULL) {
		ERR_clear_error();
		r = -EIO;
		zh_tls_free(tls);
		goto fail;
	}
	return tls;
fail:
	if (err)
		*err = r;
	return NULL;
}

static char *dup_str(const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = malloc(n);
	if (d)
		memcpy(d, s, n);
	return d;
}

int zh_tls_add_cert(zh_tls_t *tls, const char *cert_file, const char *key_file, char *why,
		    size_t why_len)
{
	zh__tls_gen_t *g;
	unsigned n = tls->npairs;
	int r;
	if (n == ZH__TLS_CERTS_MAX)
		return -ENOSPC;
	if ((tls->cert[n] = dup_str(cert_file)) == NULL ||
	    (tls->key[n] = dup_str(key_file)) == NULL) {
		free(tls->cert[n]);
		tls->cert[n] = NULL;
		return -ENOMEM;
	}
	if ((g = gen_load(tls, n + 1, why, why_len, &r)) == NULL) {
		free(tls->cert[n]);
		free(tls->key[n]);
		tls->cert[n] = tls->key[n] = NULL;
		return r;
	}
	tls->npairs = n + 1;
	gen_install(tls, g);
	return 0;
}

int zh_tls_reload(zh_tls_t *tls, char *why, size_t why_len)
{
	zh__tls_gen_t *g;
	int r;
	if (tls->npairs == 0)
		return 0;
	if ((g = gen_load(tls, tls->npairs, why, why_len, &r)) == NULL) {
		ZH__TLS_ADD(tls, reload_failures, 1);
		return r;
	}
	gen_install(tls, g);
	ZH__TLS_ADD(tls, reloads, 1);
	return 0;
}

void zh_tls_stats(const zh_tls_t *tls, zh_tls_stats_t *out)
{
	enum { N = offsetof(zh_tls_stats_t, pools_active) / sizeof(uint64_t) };
	const uint64_t *src = (const uint64_t *)(const void *)&tls->st;
	uint64_t *dst = (uint64_t *)(void *)out;
	memset(out, 0, sizeof *out);
	for (unsigned k = 0; k < N; k++)
		dst[k] = __atomic_load_n(&src[k], __ATOMIC_RELAXED);
	zh__tls_pool_usage(&out->pool_regions, &out->pool_bytes);
	out->pools_active = zh__tls_pools_active();
}

void zh_tls_free(zh_tls_t *tls)
{
	if (tls == NULL)
		return;
	if (tls->gen)
		zh__tls_gen_put(tls->gen);
	for (unsigned i = 0; i < tls->npairs; i++) {
		free(tls->cert[i]);
		free(tls->key[i]);
	}
	EVP_CIPHER_free(tls->ticket_cipher);
	pthread_mutex_destroy(&tls->lock);
	OPENSSL_cleanse(tls->keys, sizeof tls->keys);
	free(tls);
}
