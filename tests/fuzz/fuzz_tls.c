/* fuzz_tls.c — libFuzzer target for the TLS front (libzerohttp-tls): handshake-record
 * garbage fed to a server SSL object made from the SSL_CTX that zh_tls_add_cert builds
 * (our profile, SNI, ALPN and session-ticket callbacks), through a memory BIO.
 *
 * The input is the client's side of the connection. Its first byte chooses how it
 * arrives: all at once, or cut into pieces (the next input bytes give their lengths) with
 * a handshake step after each, so that record and message reassembly across reads is
 * exercised. Invariants:
 *   - the handshake never completes: no input can produce a client Finished that verifies
 *     without the handshake's keys (nor a ticket sealed with our random keys);
 *   - what the server writes is a sequence of whole TLS records (content type 20-23,
 *     length <= 2^14 + 256 for a TLSCiphertext, RFC 8446 §5.2), never a
 *     truncated one;
 *   - the thread's OpenSSL error queue is emptied after each step (as the transport does),
 *     and everything is freed (LeakSanitizer checks at exit).
 * The certificate pairs (P-256, "localhost" and "other.test") are generated in memory at
 * start-up and written to a temporary directory for zh_tls_add_cert.
 */
#include "fuzz_common.h"
#include "tls_int.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <unistd.h>

static zh_tls_t *tls;
static char dir[] = "/tmp/zh-fuzz-tls-XXXXXX";
static char paths[4][64];

static void cleanup(void)
{
	for (int i = 0; i < 4; i++)
		unlink(paths[i]);
	rmdir(dir);
	zh_tls_free(tls);
}

static void write_pair(const char *name, const char *cert_path, const char *key_path)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_NAME *n;
	X509V3_CTX v3;
	X509_EXTENSION *ext;
	char san[64];
	FILE *f;
	CHECK(k && x);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, k);
	n = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)name, -1, -1, 0);
	X509_set_issuer_name(x, n);
	snprintf(san, sizeof san, "DNS:%s", name);
	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, san);
	CHECK(ext && X509_add_ext(x, ext, -1));
	X509_EXTENSION_free(ext);
	CHECK(X509_sign(x, k, EVP_sha256()) > 0);
	CHECK((f = fopen(cert_path, "w")) && PEM_write_X509(f, x));
	fclose(f);
	CHECK((f = fopen(key_path, "w")) && PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL));
	fclose(f);
	X509_free(x);
	EVP_PKEY_free(k);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	zh_tls_options_t opt;
	char why[256] = "";
	int err = 0;
	(void)argc, (void)argv;
	CHECK(mkdtemp(dir) != NULL);
	for (int i = 0; i < 4; i++)
		snprintf(paths[i], sizeof paths[i], "%s/%d.pem", dir, i);
	write_pair("localhost", paths[0], paths[1]);
	write_pair("other.test", paths[2], paths[3]);
	zh_tls_options_init(&opt);
	CHECK((tls = zh_tls_new(&opt, &err)) != NULL, "err %d", err);
	CHECK(zh_tls_add_cert(tls, paths[0], paths[1], why, sizeof why) == 0, "%s", why);
	CHECK(zh_tls_add_cert(tls, paths[2], paths[3], why, sizeof why) == 0, "%s", why);
	atexit(cleanup);
	return 0;
}

/* The server's output so far: whole records only, each well-formed. */
static void check_records(BIO *out)
{
	char *p;
	long n = BIO_get_mem_data(out, &p);
	const uint8_t *b = (const uint8_t *)p;
	long i = 0;
	while (i < n) {
		unsigned len;
		CHECK(n - i >= 5, "a truncated record header at %ld of %ld", i, n);
		CHECK(b[i] >= 20 && b[i] <= 23, "content type %u", b[i]);
		/* the version is not checked: an alert sent before a version is agreed
		 * carries the ClientHello's own legacy_version, whatever it was (0.0 seen) */
		len = (unsigned)b[i + 3] << 8 | b[i + 4];
		CHECK(len <= 16384 + 256, "record length %u", len);
		CHECK(n - i - 5 >= (long)len, "a truncated record of %u bytes", len);
		i += 5 + (long)len;
	}
	(void)BIO_reset(out);
}

static void step(SSL *ssl, BIO *out)
{
	int r = SSL_do_handshake(ssl);
	CHECK(r != 1, "a handshake completed from garbage");
	ERR_clear_error();
	CHECK(ERR_peek_error() == 0);
	check_records(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	zh__tls_gen_t *g = zh__tls_gen_get(tls);
	SSL *ssl = SSL_new(g->ctx[0]);
	BIO *in = BIO_new(BIO_s_mem()), *out = BIO_new(BIO_s_mem());
	fz_in_t cut;
	size_t pos = 1;
	CHECK(ssl && in && out);
	SSL_set_bio(ssl, in, out); /* SSL owns both now */
	SSL_set_accept_state(ssl);
	if (size == 0)
		goto done;
	cut.p = data + 1;
	cut.n = size - 1;
	if (data[0] & 1) {
		CHECK(BIO_write(in, data + 1, (int)(size - 1)) == (int)(size - 1) || size == 1);
		step(ssl, out);
	} else {
		/* pieces of 1..256 bytes, their lengths read from the input itself */
		while (pos < size) {
			size_t len = (size_t)fz_u8(&cut) + 1;
			if (len > size - pos)
				len = size - pos;
			CHECK(BIO_write(in, data + pos, (int)len) == (int)len);
			pos += len;
			step(ssl, out);
		}
	}
done:
	SSL_free(ssl);
	zh__tls_gen_put(g);
	return 0;
}
