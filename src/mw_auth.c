/* mw_auth.c — Basic (htpasswd, crypt(3)) and Bearer (token file) authentication; see
 * zerohttp.h.
 *
 * Tables. The files are parsed into one immutable table (allocated at load, never on the
 * request path). Names and tokens sit in fixed-width slots, zero-padded to the longest
 * one, so a lookup compares every slot over the same width without an early exit: its
 * time depends on the table, never on the credential offered or on which entry matches.
 * The table also keeps the files' bytes, so a reload can tell that nothing changed.
 *
 * Reload. zh_auth_reload() builds a new table off to the side and publishes it with one
 * atomic pointer store (release); a hook loads the pointer once (acquire) and uses that
 * table to its end. A replaced table cannot be freed while a worker may still be inside
 * a hook that loaded it, and the library has no quiescent points to learn when none is,
 * so replaced tables are kept until zh_auth_free() (a reload whose files did not change
 * publishes nothing and keeps nothing). Memory grows by one table per effective reload:
 * the size of the two files, twice, plus the slots.
 *
 * Secrets. A password is decoded onto the stack and wiped after crypt; nothing here logs,
 * and error texts name a file and a line, never its content.
 */
#include "ext.h"

#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum {
	NAME_MAX_LEN = 255,	  /* user names and tokens, bytes */
	PASS_MAX_LEN = CRYPT_MAX_PASSPHRASE_SIZE - 1,
	BASIC_MAX_B64 = 4 * ((NAME_MAX_LEN + 1 + PASS_MAX_LEN + 2) / 3),
	FILE_MAX = 16 << 20,	  /* bytes per credentials file */
	PATH_DECODED_MAX = 2048,  /* longer paths are not classified: they need credentials */
};

/* n entries of width bytes each, zero-padded, with their lengths. */
typedef struct slots {
	size_t n, width;
	unsigned char *bytes;
	uint16_t *len;
} slots_t;

typedef struct table {
	struct table *older; /* replaced tables, kept until zh_auth_free (see above) */
	char *htpasswd_raw, *tokens_raw; /* the files as read, to spot an unchanged reload */
	size_t htpasswd_len, tokens_len;
	slots_t users, tokens;
	char **hash;	     /* users.n crypt(3) strings, NUL-terminated, in hash_pool */
	char *hash_pool;
	/* who each entry is: user names, token names (empty for an unnamed token), pointing
	 * into the raw files. A request's auth slot points at one of these, published under
	 * zh_identity_key() (the table outlives every request: see Reload) */
	zh_slice_t *user_ids, *token_ids;
} table_t;

struct zh_auth {
	table_t *cur; /* read with __atomic_load_n (acquire); replaced under reload_lock */
	pthread_mutex_t reload_lock;
	char *htpasswd_file, *tokens_file, *prefix, *realm;
	size_t prefix_len;
	char *errbuf;
	size_t errbuf_len;
	/* WWW-Authenticate values, formatted once */
	char basic_challenge[300], bearer_challenge[300], bearer_invalid[340];
};

static long decode_path(zh_slice_t path, char *out, size_t cap);

/* crypt_rn's scratch (32 KiB): one per thread, so workers never share or lock it. */
static _Thread_local struct crypt_data crypt_scratch;

/* ---- constant-time helpers -------------------------------------------------------------- */

static unsigned ct_is_zero(unsigned x) /* 1 if x == 0, else 0, without a branch */
{
	return 1u & ((x - 1u) & ~x) >> (sizeof x * 8 - 1);
}

static unsigned ct_diff(const unsigned char *a, const unsigned char *b, size_t n)
{
	unsigned d = 0;
	for (size_t i = 0; i < n; i++)
		d |= (unsigned)(a[i] ^ b[i]);
	return d;
}

/* Index of the first slot equal to key[0..klen) (key zero-padded to s->width by the
 * caller), or s->n. Every slot is compared in full. */
static size_t ct_find(const slots_t *s, const unsigned char *key, size_t klen)
{
	size_t found = s->n;
	unsigned seen = 0;
	for (size_t i = 0; i < s->n; i++) {
		unsigned d = ct_diff(s->bytes + i * s->width, key, s->width) |
			     (unsigned)(s->len[i] ^ klen);
		unsigned hit = ct_is_zero(d) & ~seen & 1u;
		size_t mask = (size_t)0 - (size_t)hit;
		found = (found & ~mask) | (i & mask);
		seen |= hit;
	}
	return found;
}

/* ---- files -------------------------------------------------------------------------------- */

static void set_error(zh_auth_t *a, const char *what, const char *file, size_t line)
{
	if (a->errbuf == NULL || a->errbuf_len == 0)
		return;
	if (line)
		snprintf(a->errbuf, a->errbuf_len, "%s line %zu: %s", file, line, what);
	else
		snprintf(a->errbuf, a->errbuf_len, "%s: %s", file, what);
}

static int read_file(zh_auth_t *a, const char *path, char **out, size_t *len)
{
	struct stat st;
	char *buf = NULL, msg[128];
	size_t got = 0;
	int r = 0, fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0)
		r = -errno;
	else if (!S_ISREG(st.st_mode))
		r = -EINVAL;
	else if (st.st_size > FILE_MAX)
		r = -EFBIG;
	else if ((buf = malloc((size_t)st.st_size + 1)) == NULL)
		r = -ENOMEM;
	while (r == 0 && got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = n < 0 ? -errno : 0; /* a file that shrank meanwhile: what is there */
			break;
		}
		got += (size_t)n;
	}
	if (fd >= 0)
		close(fd);
	if (r < 0) {
		free(buf);
		set_error(a, r == -EINVAL ? "not a regular file"
			  : r == -EFBIG	  ? "larger than 16 MiB"
					  : strerror_r(-r, msg, sizeof msg),
			  path, 0);
		return r;
	}
	buf[got] = '\0';
	*out = buf;
	*len = got;
	return 0;
}

/* Calls fn on each line with surrounding blanks (and a CR) removed, skipping empty lines
 * and lines starting with '#'. Stops at the first error fn returns. */
typedef int (*line_fn)(zh_auth_t *a, table_t *t, const char *p, size_t len, size_t lineno);

static int each_line(zh_auth_t *a, table_t *t, const char *buf, size_t len, line_fn fn)
{
	size_t lineno = 0, i = 0;
	while (i < len) {
		const char *p = buf + i, *nl = memchr(p, '\n', len - i);
		size_t n = nl ? (size_t)(nl - p) : len - i;
		int r;
		i += n + 1;
		lineno++;
		while (n && (p[n - 1] == '\r' || p[n - 1] == ' ' || p[n - 1] == '\t'))
			n--;
		while (n && (*p == ' ' || *p == '\t'))
			p++, n--;
		if (n == 0 || *p == '#')
			continue;
		if ((r = fn(a, t, p, n, lineno)) < 0)
			return r;
	}
	return 0;
}

static size_t count_lines(const char *buf, size_t len)
{
	size_t n = 0;
	for (size_t i = 0; i < len; i++)
		n += buf[i] == '\n';
	return n + 1;
}

static int slots_alloc(slots_t *s, size_t n, size_t width)
{
	s->width = width ? width : 1;
	s->bytes = calloc(n ? n : 1, s->width);
	s->len = calloc(n ? n : 1, sizeof *s->len);
	return s->bytes && s->len ? 0 : -ENOMEM;
}

static void slots_put(slots_t *s, const char *p, size_t len)
{
	memcpy(s->bytes + s->n * s->width, p, len);
	s->len[s->n++] = (uint16_t)len;
}

/* RFC 6750 b64token: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=" */
static bool b64token_ok(const char *p, size_t len)
{
	size_t i = 0;
	while (i < len && p[i] != '\0' &&
	       ((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= 'A' && p[i] <= 'Z') ||
		(p[i] >= '0' && p[i] <= '9') || strchr("-._~+/", p[i]) != NULL))
		i++;
	if (i == 0)
		return false;
	while (i < len && p[i] == '=')
		i++;
	return i == len;
}

/* "token" or "name:token": ':' is no b64token character, so the split is unambiguous. The
 * name (an RFC 9110 token, up to 255 bytes) is what logs and handlers see; the token never. */
static int token_line(zh_auth_t *a, table_t *t, const char *p, size_t len, size_t lineno)
{
	const char *colon = memchr(p, ':', len);
	zh_slice_t name = {p, 0};
	if (colon) {
		name.len = (size_t)(colon - p);
		if (name.len == 0 || name.len > NAME_MAX_LEN || !zh__valid_token(p, name.len)) {
			set_error(a, "token name not an RFC 9110 token of 1..255 bytes",
				  a->tokens_file, lineno);
			return -EINVAL;
		}
		len -= name.len + 1;
		p = colon + 1;
	}
	if (len > NAME_MAX_LEN || !b64token_ok(p, len)) {
		set_error(a, len > NAME_MAX_LEN ? "token longer than 255 bytes"
						: "token with a byte outside RFC 6750 b64token",
			  a->tokens_file, lineno);
		return -EINVAL;
	}
	if (t->tokens.bytes == NULL) {
		t->tokens.width = len > t->tokens.width ? len : t->tokens.width;
	} else {
		t->token_ids[t->tokens.n] = name;
		slots_put(&t->tokens, p, len);
	}
	return 0;
}

/* Two passes: the first finds the widest token, the second fills the slots. */
static int load_tokens(zh_auth_t *a, table_t *t)
{
	int r = each_line(a, t, t->tokens_raw, t->tokens_len, token_line);
	if (r < 0)
		return r;
	size_t n = count_lines(t->tokens_raw, t->tokens_len);
	if (slots_alloc(&t->tokens, n, t->tokens.width) < 0 ||
	    (t->token_ids = calloc(n, sizeof *t->token_ids)) == NULL)
		return -ENOMEM;
	return each_line(a, t, t->tokens_raw, t->tokens_len, token_line);
}

/* Whether libxcrypt can verify this hash ($2b$/$2y$ bcrypt, $6$, $5$, $1$, ...). */
static bool hash_supported(const char *h)
{
#ifdef CRYPT_CHECKSALT_AVAILABLE
	int k = crypt_checksalt(h);
	return k == CRYPT_SALT_OK || k == CRYPT_SALT_METHOD_LEGACY || k == CRYPT_SALT_TOO_CHEAP;
#else
	return h[0] != '\0' && h[0] != '*' && h[0] != '!';
#endif
}

static int user_line(zh_auth_t *a, table_t *t, const char *p, size_t len, size_t lineno)
{
	const char *colon = memchr(p, ':', len);
	size_t ulen = colon ? (size_t)(colon - p) : 0, hlen = colon ? len - ulen - 1 : 0;
	char *h;
	if (colon == NULL || ulen == 0 || ulen > NAME_MAX_LEN || hlen == 0 ||
	    hlen >= CRYPT_OUTPUT_SIZE) {
		set_error(a, "not user:hash (user 1..255 bytes)", a->htpasswd_file, lineno);
		return -EINVAL;
	}
	if (t->users.bytes == NULL) {
		t->users.width = ulen > t->users.width ? ulen : t->users.width;
		return 0;
	}
	h = t->hash_pool + (colon + 1 - t->htpasswd_raw);
	memcpy(h, colon + 1, hlen);
	h[hlen] = '\0';
	if (memchr(h, '\0', hlen) || !hash_supported(h)) {
		set_error(a, "hash method not supported by crypt(3) (use bcrypt $2y$ or "
			     "sha512crypt $6$)", a->htpasswd_file, lineno);
		return -ENOTSUP;
	}
	t->hash[t->users.n] = h;
	t->user_ids[t->users.n] = (zh_slice_t){p, ulen};
	slots_put(&t->users, p, ulen);
	return 0;
}

static int load_users(zh_auth_t *a, table_t *t)
{
	size_t n;
	int r = each_line(a, t, t->htpasswd_raw, t->htpasswd_len, user_line);
	if (r < 0)
		return r;
	n = count_lines(t->htpasswd_raw, t->htpasswd_len);
	if (slots_alloc(&t->users, n, t->users.width) < 0 ||
	    (t->hash = calloc(n, sizeof *t->hash)) == NULL ||
	    (t->user_ids = calloc(n, sizeof *t->user_ids)) == NULL ||
	    (t->hash_pool = malloc(t->htpasswd_len + 1)) == NULL)
		return -ENOMEM;
	return each_line(a, t, t->htpasswd_raw, t->htpasswd_len, user_line);
}

static void table_free(table_t *t)
{
	while (t) {
		table_t *older = t->older;
		if (t->tokens_raw) /* the tokens themselves: wiped before their memory goes */
			explicit_bzero(t->tokens_raw, t->tokens_len);
		if (t->tokens.bytes)
			explicit_bzero(t->tokens.bytes, t->tokens.n * t->tokens.width);
		free(t->users.bytes);
		free(t->users.len);
		free(t->tokens.bytes);
		free(t->tokens.len);
		free(t->hash);
		free(t->hash_pool);
		free(t->user_ids);
		free(t->token_ids);
		free(t->tokens_raw);
		free(t->htpasswd_raw);
		free(t);
		t = older;
	}
}

static bool same_bytes(const char *a, size_t alen, const char *b, size_t blen)
{
	return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

/* Reads both files. Returns a new table, or NULL with *err; *unchanged when the files
 * hold what cur was built from (no table is built then). */
static table_t *table_load(zh_auth_t *a, const table_t *cur, bool *unchanged, int *err)
{
	table_t *t = calloc(1, sizeof *t);
	int r = t ? 0 : -ENOMEM;
	*unchanged = false;
	if (a->errbuf && a->errbuf_len)
		a->errbuf[0] = '\0';
	if (r == 0 && a->htpasswd_file)
		r = read_file(a, a->htpasswd_file, &t->htpasswd_raw, &t->htpasswd_len);
	if (r == 0 && a->tokens_file)
		r = read_file(a, a->tokens_file, &t->tokens_raw, &t->tokens_len);
	if (r == 0 && cur &&
	    same_bytes(t->htpasswd_raw, t->htpasswd_len, cur->htpasswd_raw, cur->htpasswd_len) &&
	    same_bytes(t->tokens_raw, t->tokens_len, cur->tokens_raw, cur->tokens_len)) {
		*unchanged = true;
		table_free(t);
		return NULL;
	}
	if (r == 0 && a->htpasswd_file)
		r = load_users(a, t);
	if (r == 0 && a->tokens_file)
		r = load_tokens(a, t);
	if (r < 0) {
		if (r == -ENOMEM)
			set_error(a, "out of memory", a->htpasswd_file ? a->htpasswd_file
								       : a->tokens_file, 0);
		table_free(t);
		*err = r;
		return NULL;
	}
	return t;
}

/* ---- public: set-up --------------------------------------------------------------------- */

void zh_auth_options_init(zh_auth_options_t *o)
{
	memset(o, 0, sizeof *o);
	o->prefix = "/";
	o->realm = "zerohttp";
}

static char *dup_or_null(const char *s, bool *failed)
{
	char *d = s ? strdup(s) : NULL;
	*failed |= s && !d;
	return d;
}

/* A realm goes inside a quoted-string: no quote, backslash or control byte. */
static bool realm_ok(const char *r)
{
	return strlen(r) < 200 && zh__valid_field_value(r, strlen(r)) && !strpbrk(r, "\"\\\t");
}

static int check_options(const zh_auth_options_t *o)
{
	const char *prefix = o && o->prefix ? o->prefix : "/";
	const char *realm = o && o->realm ? o->realm : "zerohttp";
	if (o == NULL || (o->htpasswd_file == NULL && o->tokens_file == NULL) ||
	    prefix[0] != '/' || !realm_ok(realm))
		return -EINVAL;
	return 0;
}

/* Paths are compared decoded and collapsed, so the prefix must be in that form itself: a
 * "//", an escape or a dot segment in it could never match (and would fail open). */
static bool prefix_ok(const char *p, size_t len)
{
	char buf[PATH_DECODED_MAX];
	long n = decode_path((zh_slice_t){p, len}, buf, sizeof buf);
	if (len == 1)
		return true; /* "/" */
	/* decode_path ends its output with one '/' of its own */
	return n == (long)len + 1 && memcmp(buf, p, len) == 0 && !memchr(p, '%', len);
}

static void format_challenges(zh_auth_t *a)
{
	snprintf(a->basic_challenge, sizeof a->basic_challenge,
		 "Basic realm=\"%s\", charset=\"UTF-8\"", a->realm);
	snprintf(a->bearer_challenge, sizeof a->bearer_challenge, "Bearer realm=\"%s\"",
		 a->realm);
	snprintf(a->bearer_invalid, sizeof a->bearer_invalid,
		 "Bearer realm=\"%s\", error=\"invalid_token\"", a->realm);
}

/* Copies what the auth keeps of the options. 0, -ENOMEM, or -EINVAL for a prefix that is
 * not a clean path. */
static int copy_options(zh_auth_t *a, const zh_auth_options_t *o)
{
	bool failed = false;
	a->errbuf = o->errbuf;
	a->errbuf_len = o->errbuf_len;
	a->htpasswd_file = dup_or_null(o->htpasswd_file, &failed);
	a->tokens_file = dup_or_null(o->tokens_file, &failed);
	a->prefix = dup_or_null(o->prefix ? o->prefix : "/", &failed);
	a->realm = dup_or_null(o->realm ? o->realm : "zerohttp", &failed);
	if (failed)
		return -ENOMEM;
	/* "/api/" covers "/api" and "/api/x" alike: compare without trailing '/' ("/" stays) */
	a->prefix_len = strlen(a->prefix);
	while (a->prefix_len > 1 && a->prefix[a->prefix_len - 1] == '/')
		a->prefix[--a->prefix_len] = '\0';
	return prefix_ok(a->prefix, a->prefix_len) ? 0 : -EINVAL;
}

zh_auth_t *zh_auth_new(const zh_auth_options_t *o, int *err)
{
	zh_auth_t *a = NULL;
	bool unchanged;
	int r = check_options(o);
	if (r == 0 && (a = calloc(1, sizeof *a)) == NULL)
		r = -ENOMEM;
	if (r == 0) {
		pthread_mutex_init(&a->reload_lock, NULL);
		r = copy_options(a, o);
	}
	if (r == -EINVAL && o && o->errbuf && o->errbuf_len)
		snprintf(o->errbuf, o->errbuf_len, "options: need a file, a clean path prefix "
			 "starting with '/', a realm without '\"', '\\' or control bytes");
	if (r == 0) {
		format_challenges(a);
		a->cur = table_load(a, NULL, &unchanged, &r);
	}
	if (r < 0) {
		zh_auth_free(a);
		if (err)
			*err = r;
		return NULL;
	}
	return a;
}

int zh_auth_reload(zh_auth_t *a)
{
	table_t *t, *cur;
	bool unchanged;
	int r = 0;
	pthread_mutex_lock(&a->reload_lock);
	cur = a->cur; /* only reloads write it, and they hold the lock */
	t = table_load(a, cur, &unchanged, &r);
	if (t) {
		t->older = cur;
		__atomic_store_n(&a->cur, t, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&a->reload_lock);
	return t || unchanged ? 0 : r;
}

void zh_auth_free(zh_auth_t *a)
{
	if (a == NULL)
		return;
	table_free(a->cur);
	pthread_mutex_destroy(&a->reload_lock);
	free(a->htpasswd_file);
	free(a->tokens_file);
	free(a->prefix);
	free(a->realm);
	free(a);
}

/* ---- request path ---------------------------------------------------------------------------- */

/* Percent-decodes path into out, collapsing runs of '/'. Returns the length, or -1 when the
 * path cannot be classified safely: a bad escape, a NUL, a "." or ".." segment, too long. */
static long decode_path(zh_slice_t path, char *out, size_t cap)
{
	size_t n = 0, seg = 0; /* seg: where the current segment starts in out */
	for (size_t i = 0; i <= path.len; i++) {
		int ch = i < path.len ? (unsigned char)path.ptr[i] : '/';
		if (ch == '%') {
			int hi = i + 2 < path.len ? zh__hexval((unsigned char)path.ptr[i + 1]) : -1;
			int lo = hi >= 0 ? zh__hexval((unsigned char)path.ptr[i + 2]) : -1;
			if (lo < 0 || (ch = hi << 4 | lo) == 0)
				return -1;
			i += 2;
		}
		if (ch == '/' || ch == '\\') {
			size_t len = n - seg;
			if (len && out[seg] == '.' && (len == 1 || (len == 2 && out[seg + 1] == '.')))
				return -1;
			if (n && out[n - 1] == '/')
				continue;
			ch = '/';
		}
		if (n == cap)
			return -1;
		out[n++] = (char)ch;
		if (ch == '/')
			seg = n;
	}
	return (long)n; /* ends with the '/' added above */
}

static bool exact(zh_slice_t p, const char *s)
{
	return p.len == strlen(s) && memcmp(p.ptr, s, p.len) == 0;
}

/* Whether path lies under the prefix. Compared on the decoded, collapsed path, so that
 * "/%61dmin" or "//admin" cannot slip past "/admin"; what cannot be classified needs
 * credentials (fail closed). /healthz and /readyz never do. */
static bool needs_auth(const zh_auth_t *a, zh_slice_t path)
{
	char buf[PATH_DECODED_MAX];
	const char *pre = a->prefix;
	size_t plen = a->prefix_len;
	long n;
	if (exact(path, "/healthz") || exact(path, "/readyz"))
		return false;
	if (plen == 1)
		return true;
	if ((n = decode_path(path, buf, sizeof buf)) < 0)
		return true;
	/* a string prefix, like ZH_ROUTE_PREFIX routing: "/api" also covers "/apix", so no
	 * prefix route can be reached past the check by a longer name (fails closed) */
	return (size_t)n >= plen && memcmp(buf, pre, plen) == 0;
}

static int b64val(unsigned char ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	return ch == '+' ? 62 : ch == '/' ? 63 : -1;
}

/* Standard base64, padding optional. Returns the decoded length, or -1. */
static long b64decode(const char *in, size_t len, char *out, size_t cap)
{
	uint32_t acc = 0;
	size_t n = 0, bits = 0;
	while (len && in[len - 1] == '=' && len % 4 != 1)
		len--;
	if (len % 4 == 1)
		return -1;
	for (size_t i = 0; i < len; i++) {
		int v = b64val((unsigned char)in[i]);
		if (v < 0)
			return -1;
		acc = acc << 6 | (uint32_t)v;
		if ((bits += 6) >= 8) {
			if (n == cap)
				return -1;
			out[n++] = (char)(acc >> (bits -= 8));
		}
	}
	return (long)n;
}

/* "user:password", checked against the htpasswd table. A user who does not exist costs a
 * crypt all the same (of the first user's hash), so the time does not tell who exists. */
static bool basic_ok(const table_t *t, const char *cred, size_t len, const zh_slice_t **who)
{
	char buf[NAME_MAX_LEN + 1 + PASS_MAX_LEN + 1];
	unsigned char name[NAME_MAX_LEN + 1] = {0};
	long n = len <= BASIC_MAX_B64 ? b64decode(cred, len, buf, sizeof buf - 1) : -1;
	const char *colon, *out, *setting;
	size_t ulen, idx;
	bool ok = false;
	if (n < 0 || t->users.n == 0 || (colon = memchr(buf, ':', (size_t)n)) == NULL ||
	    (ulen = (size_t)(colon - buf)) > NAME_MAX_LEN ||
	    (size_t)n - ulen - 1 > PASS_MAX_LEN || memchr(buf, '\0', (size_t)n)) {
		explicit_bzero(buf, sizeof buf);
		return false;
	}
	buf[n] = '\0';
	memcpy(name, buf, ulen < t->users.width ? ulen : t->users.width);
	idx = ct_find(&t->users, name, ulen);
	setting = t->hash[idx < t->users.n ? idx : 0];
	out = crypt_rn(colon + 1, setting, &crypt_scratch, sizeof crypt_scratch);
	if (out && idx < t->users.n) {
		size_t olen = strlen(out), slen = strlen(setting);
		ok = olen == slen &&
		     ct_diff((const unsigned char *)out, (const unsigned char *)setting, olen) == 0;
		*who = &t->user_ids[idx];
	}
	/* the password, and whatever crypt derived from it (32 KiB: little next to a crypt) */
	explicit_bzero(buf, sizeof buf);
	explicit_bzero(&crypt_scratch, sizeof crypt_scratch);
	return ok;
}

static bool bearer_ok(const table_t *t, const char *tok, size_t len, const zh_slice_t **who)
{
	unsigned char key[NAME_MAX_LEN + 1] = {0};
	size_t idx;
	if (len == 0 || len > NAME_MAX_LEN || t->tokens.n == 0)
		return false;
	memcpy(key, tok, len < t->tokens.width ? len : t->tokens.width);
	idx = ct_find(&t->tokens, key, len);
	explicit_bzero(key, sizeof key);
	if (idx >= t->tokens.n)
		return false;
	*who = &t->token_ids[idx];
	return true;
}

enum { CRED_NONE, CRED_BAD, CRED_BAD_BEARER, CRED_OK };

/* Splits "Scheme SP credentials" (RFC 9110 §11.4) and checks the credentials. */
static int check(const zh_auth_t *a, const table_t *t, zh_slice_t v, const zh_slice_t **who)
{
	size_t i = 0, sp;
	while (i < v.len && v.ptr[i] != ' ')
		i++;
	sp = i;
	while (i < v.len && v.ptr[i] == ' ')
		i++;
	if (sp == v.len || i == v.len || memchr(v.ptr + i, ' ', v.len - i) ||
	    memchr(v.ptr + i, '\t', v.len - i))
		return CRED_BAD;
	if (a->htpasswd_file && sp == 5 && zh__ieq(v.ptr, "Basic", 5))
		return basic_ok(t, v.ptr + i, v.len - i, who) ? CRED_OK : CRED_BAD;
	if (a->tokens_file && sp == 6 && zh__ieq(v.ptr, "Bearer", 6))
		return bearer_ok(t, v.ptr + i, v.len - i, who) ? CRED_OK : CRED_BAD_BEARER;
	return CRED_BAD;
}

static int deny(const zh_auth_t *a, zh_response_t *resp, int why)
{
	static const char body[] = "401 Unauthorized\n";
	/* A failed set has failed resp (the sticky rule): it is answered 500 instead, which
	 * still refuses the request; only the 401 itself is then skipped. */
	if ((a->htpasswd_file &&
	     zh_resp_header_add(resp, "WWW-Authenticate", a->basic_challenge) < 0) ||
	    (a->tokens_file &&
	     zh_resp_header_add(resp, "WWW-Authenticate", why == CRED_BAD_BEARER
								  ? a->bearer_invalid
								  : a->bearer_challenge) < 0) ||
	    zh_resp_header_set(resp, "Cache-Control", "no-store") < 0)
		return ZH_MW_ANSWERED;
	(void)zh_reply(resp, 401, "text/plain; charset=utf-8", body, sizeof body - 1);
	return ZH_MW_ANSWERED;
}

static int auth_before(zh_request_t *req, zh_response_t *resp, void *arg)
{
	const zh_auth_t *a = arg;
	const table_t *t;
	const zh_slice_t *who = NULL;
	zh_slice_t v;
	int why = CRED_NONE;
	if (!needs_auth(a, zh_req_path(req)))
		return ZH_MW_NEXT;
	t = __atomic_load_n(&a->cur, __ATOMIC_ACQUIRE);
	if (zh_req_header(req, "Authorization", &v) && (why = check(a, t, v, &who)) == CRED_OK) {
		/* published under zh_identity_key(): the handler and the access log see who */
		*zh_mw_slot(req) = (void *)(uintptr_t)who;
		return ZH_MW_NEXT;
	}
	return deny(a, resp, why);
}

zh_middleware_t zh_auth_middleware(zh_auth_t *a)
{
	return (zh_middleware_t){.before = auth_before, .arg = a, .key = zh_identity_key()};
}
