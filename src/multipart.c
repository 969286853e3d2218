/* multipart.c — a streaming multipart/form-data parser (RFC 7578; framing of RFC 2046
 * §5.1.1), restartable at any byte: all its state is in the caller's zh_multipart_t.
 *
 * The body is a sequence of parts, each opened by a delimiter, CRLF "--" boundary, then
 * transport padding and CRLF; the last delimiter is followed by "--" instead. The first
 * delimiter may start the body without its CRLF (the CRLF belongs to the delimiter, so a
 * part's body never includes the line break before the next boundary).
 *
 * Finding the delimiter without holding body bytes: a boundary is made of bchars, which
 * never include CR, so no proper suffix of a partly matched delimiter can begin another
 * one. A failed partial match therefore only has to hand over the bytes matched so far
 * (which are the delimiter's own first bytes: emitted from mp->delim, not remembered) and
 * rescan from the byte that failed. Inside one fed buffer the scan jumps from CR to CR with
 * memchr and hands body bytes over as slices of that buffer.
 */
#include "ext.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

enum {
	S_PREAMBLE,    /* before the first delimiter: bytes ignored */
	S_AFTER_DELIM, /* a delimiter matched: "--", padding or CRLF next */
	S_CLOSE_DASH,  /* "--boundary-": the second '-' of the close delimiter */
	S_PAD,	       /* transport padding: blanks, then CR */
	S_DELIM_LF,    /* the LF that ends the delimiter line */
	S_HEADERS,     /* a part's header block, up to its empty line */
	S_IN_PART_CB,  /* inside ops->part: zh_multipart_part_to_sink is allowed */
	S_BODY,	       /* a part's body bytes */
	S_DONE,	       /* after the close delimiter: the epilogue, ignored */
	S_FAILED,      /* mp->err says why */
};
enum { MAX_PADDING = 256 }; /* transport padding is a few blanks at most; more is abuse */

/* ---- Content-Type and Content-Disposition parameters (RFC 9110 §5.6.6) ------------------ */

static bool ows(char c)
{
	return c == ' ' || c == '\t';
}

/* bchars (RFC 2046 §5.1.1): DIGIT / ALPHA / "'()+_,-./:=?" and space */
static bool bchar(unsigned char c)
{
	return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') ||
	       (c != 0 && strchr("'()+_,-./:=? ", c) != NULL);
}

typedef struct {
	zh_slice_t name, value;
	bool quoted; /* value is a quoted-string's inside, with its quoted-pairs still in */
} param_t;

/* The next `; name=value` at *p (before end): 1 and *out, 0 at the end, -1 if malformed. */
static int next_param(const char **pp, const char *end, param_t *out)
{
	const char *p = *pp, *s;
	while (p < end && ows(*p))
		p++;
	if (p == end)
		return 0;
	if (*p++ != ';')
		return -1;
	while (p < end && ows(*p))
		p++;
	for (s = p; p < end && zh__token_char[(unsigned char)*p]; p++)
		;
	if (p == s || p == end || *p != '=')
		return -1;
	out->name = (zh_slice_t){s, (size_t)(p - s)};
	p++;
	out->quoted = p < end && *p == '"';
	if (out->quoted) {
		for (s = ++p; p < end && *p != '"'; p++)
			if (*p == '\\' && p + 1 < end)
				p++;
		if (p == end)
			return -1;
		out->value = (zh_slice_t){s, (size_t)(p - s)};
		p++;
	} else {
		for (s = p; p < end && zh__token_char[(unsigned char)*p]; p++)
			;
		if (p == s)
			return -1;
		out->value = (zh_slice_t){s, (size_t)(p - s)};
	}
	*pp = p;
	return 1;
}

/* A quoted-string's inside without its quoted-pairs, into out (room for v.len bytes).
 * Only a backslash before '"' or '\' escapes: browsers (WHATWG "multipart/form-data
 * encoding") send a filename's own backslashes bare and percent-encode '"', while curl
 * escapes both; Go's mime package reads them the same way. */
static size_t unquote(zh_slice_t v, char *out)
{
	size_t n = 0;
	for (size_t i = 0; i < v.len; i++) {
		if (v.ptr[i] == '\\' && i + 1 < v.len && (v.ptr[i + 1] == '"' || v.ptr[i + 1] == '\\'))
			i++;
		out[n++] = v.ptr[i];
	}
	return n;
}

/* The value's leading token (a media type, a disposition type) and where its parameters
 * start. */
static zh_slice_t leading_value(zh_slice_t v, const char **params)
{
	const char *p = v.ptr, *end = v.ptr + v.len, *s;
	while (p < end && ows(*p))
		p++;
	for (s = p; p < end && *p != ';' && !ows(*p); p++)
		;
	*params = p;
	return (zh_slice_t){s, (size_t)(p - s)};
}

/* ---- init, limits ------------------------------------------------------------------------ */

static int set_boundary(zh_multipart_t *mp, const param_t *pm)
{
	size_t n;
	if (pm->value.len > 2 * ZH_MULTIPART_BOUNDARY_MAX)
		return -EINVAL;
	{
		char b[2 * ZH_MULTIPART_BOUNDARY_MAX];
		n = pm->quoted ? unquote(pm->value, b) : pm->value.len;
		if (!pm->quoted)
			memcpy(b, pm->value.ptr, n);
		if (n == 0 || n > ZH_MULTIPART_BOUNDARY_MAX || b[n - 1] == ' ')
			return -EINVAL;
		for (size_t i = 0; i < n; i++)
			if (!bchar((unsigned char)b[i]))
				return -EINVAL;
		memcpy(mp->delim, "\r\n--", 4);
		memcpy(mp->delim + 4, b, n);
	}
	mp->dlen = (unsigned)(4 + n);
	return 0;
}

int zh_multipart_init(zh_multipart_t *mp, zh_slice_t content_type,
		      const zh_multipart_ops_t *ops, void *arg)
{
	const char *p, *end = content_type.ptr + content_type.len;
	zh_slice_t type = leading_value(content_type, &p);
	param_t pm;
	int r;
	memset(mp, 0, offsetof(zh_multipart_t, hdr));
	mp->max_parts = 128;
	mp->max_header_bytes = ZH_MULTIPART_HEADER_MAX;
	mp->ops = ops;
	mp->arg = arg;
	mp->sink_fd = -1;
	mp->state = S_FAILED;
	mp->err = -EINVAL;
	if (!zh_slice_ieq_str(type, "multipart/form-data"))
		return -EINVAL;
	while ((r = next_param(&p, end, &pm)) > 0) {
		if (zh_slice_ieq_str(pm.name, "boundary")) {
			if (set_boundary(mp, &pm) < 0)
				return -EINVAL;
			/* the body may open with "--boundary": start as if its CRLF had come */
			mp->state = S_PREAMBLE;
			mp->match = 2;
			mp->err = 0;
			return 0;
		}
	}
	return -EINVAL;
}

static int fail(zh_multipart_t *mp, int err)
{
	mp->state = S_FAILED;
	mp->err = err;
	return err;
}

/* ---- part headers ------------------------------------------------------------------------ */

int zh_multipart_header(const zh_multipart_part_t *part, const char *name, zh_slice_t *value)
{
	const char *p = part->headers.ptr, *end = p + part->headers.len;
	size_t nlen = strlen(name);
	while (p < end) {
		const char *eol = memchr(p, '\r', (size_t)(end - p)), *colon;
		if (eol == NULL)
			return 0;
		colon = memchr(p, ':', (size_t)(eol - p));
		if (colon && (size_t)(colon - p) == nlen && zh__ieq(p, name, nlen)) {
			const char *v = colon + 1, *ve = eol;
			while (v < ve && ows(*v))
				v++;
			while (ve > v && ows(ve[-1]))
				ve--;
			*value = (zh_slice_t){v, (size_t)(ve - v)};
			return 1;
		}
		p = eol + 2;
	}
	return 0;
}

/* A parameter value as the part will show it: the raw bytes, or an unescaped copy in the
 * second half of mp->hdr (at *spare) when it has quoted-pairs. */
static zh_slice_t param_value(zh_multipart_t *mp, const param_t *pm, size_t *spare)
{
	char *out;
	size_t n;
	if (!pm->quoted || memchr(pm->value.ptr, '\\', pm->value.len) == NULL)
		return pm->value;
	out = mp->hdr + ZH_MULTIPART_HEADER_MAX + *spare;
	n = unquote(pm->value, out);
	*spare += n;
	return (zh_slice_t){out, n};
}

/* Content-Disposition: form-data; name="..."[; filename="..."] (RFC 7578 §4.2). */
static int disposition(zh_multipart_t *mp, zh_slice_t v)
{
	const char *p, *end = v.ptr + v.len;
	size_t spare = 0;
	bool have_name = false, have_file = false;
	param_t pm;
	int r;
	if (!zh_slice_ieq_str(leading_value(v, &p), "form-data"))
		return -EPROTO;
	while ((r = next_param(&p, end, &pm)) > 0) {
		if (!have_name && zh_slice_ieq_str(pm.name, "name")) {
			mp->part.name = param_value(mp, &pm, &spare);
			have_name = true;
		} else if (!have_file && zh_slice_ieq_str(pm.name, "filename")) {
			mp->part.filename = param_value(mp, &pm, &spare);
			have_file = true;
		}
	}
	return r < 0 || !have_name ? -EPROTO : 0;
}

/* Every line of the block is "name: value" with a token name (RFC 9110 §5.1, as RFC 7578
 * §4.8 keeps MIME's header syntax); no folding. */
static int check_lines(const char *p, const char *end)
{
	while (p < end) {
		const char *eol = memchr(p, '\r', (size_t)(end - p));
		const char *colon = memchr(p, ':', (size_t)(eol - p));
		/* the block ends in CRLF, so eol[1] exists; a CR alone inside a line is refused */
		if (eol[1] != '\n' || colon == NULL || colon == p ||
		    !zh__valid_token(p, (size_t)(colon - p)) || memchr(p, '\n', (size_t)(eol - p)))
			return -EPROTO;
		p = eol + 2;
	}
	return 0;
}

/* The header block mp->hdr[0, hlen) is complete (it ends in an empty line): fill mp->part. */
static int parse_headers(zh_multipart_t *mp)
{
	zh_slice_t cd, ct;
	int r;
	mp->part.headers = (zh_slice_t){mp->hdr, mp->hlen - 2}; /* without the empty line */
	mp->part.name = (zh_slice_t){"", 0};
	mp->part.filename = (zh_slice_t){NULL, 0};
	mp->part.content_type = (zh_slice_t){"", 0};
	if ((r = check_lines(mp->hdr, mp->hdr + mp->hlen - 2)) < 0)
		return r;
	if (!zh_multipart_header(&mp->part, "Content-Disposition", &cd))
		return -EPROTO;
	if ((r = disposition(mp, cd)) < 0)
		return r;
	if (zh_multipart_header(&mp->part, "Content-Type", &ct))
		mp->part.content_type = ct;
	return 0;
}

/* ---- body bytes: the data callback or a sink ---------------------------------------------- */

static int emit(zh_multipart_t *mp, const char *p, size_t len)
{
	if (len == 0)
		return 0;
	if (mp->sink) {
		if (len > mp->sink_left)
			return -EFBIG;
		mp->sink_left -= len;
		return mp->sink(mp->sink_arg, p, len);
	}
	return mp->ops && mp->ops->data ? mp->ops->data(mp->arg, &mp->part, p, len) : 0;
}

int zh_multipart_part_to_sink(zh_multipart_t *mp, zh_multipart_sink_fn sink, void *sink_arg,
			      uint64_t max)
{
	if (mp->state != S_IN_PART_CB || sink == NULL)
		return -EINVAL;
	mp->sink = sink;
	mp->sink_arg = sink_arg;
	mp->sink_left = max ? max : UINT64_MAX;
	return 0;
}

static int fd_sink(void *arg, const void *p, size_t len)
{
	const zh_multipart_t *mp = arg;
	const char *c = p;
	while (len > 0) {
		ssize_t n = write(mp->sink_fd, c, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		c += n;
		len -= (size_t)n;
	}
	return 0;
}

int zh_multipart_part_to_fd(zh_multipart_t *mp, int fd, uint64_t max)
{
	int r;
	if (fd < 0)
		return -EINVAL;
	r = zh_multipart_part_to_sink(mp, fd_sink, mp, max);
	if (r == 0)
		mp->sink_fd = fd;
	return r;
}

/* ---- the scanner ------------------------------------------------------------------------- */

/* Searches [p, end) for the delimiter, continuing a partial match carried in mp->match.
 * Bytes that turn out not to belong to a delimiter are body bytes, emitted if body is set.
 * Returns the bytes consumed (all of them, or up to the end of a whole delimiter, then
 * mp->match == mp->dlen), or a negative errno from emit. */
static long scan(zh_multipart_t *mp, const char *p, const char *end, bool body)
{
	const char *s = p, *from;
	int r;
	/* a match carried over from the previous piece: byte by byte until it is decided */
	while (mp->match > 0 && p < end && mp->match < mp->dlen) {
		if (*p == mp->delim[mp->match]) {
			mp->match++;
			p++;
			continue;
		}
		/* the held bytes were the delimiter's first ones; *p is rescanned below */
		if (body && (r = emit(mp, mp->delim, mp->match)) < 0)
			return r;
		mp->match = 0;
	}
	if (mp->match > 0) /* whole, or the piece ended inside it */
		return p - s;
	for (from = p; p < end;) {
		const char *cr = memchr(p, '\r', (size_t)(end - p));
		size_t avail;
		if (cr == NULL)
			break;
		avail = (size_t)(end - cr) < mp->dlen ? (size_t)(end - cr) : mp->dlen;
		if (memcmp(cr, mp->delim, avail) == 0) {
			if (body && (r = emit(mp, from, (size_t)(cr - from))) < 0)
				return r;
			mp->match = (unsigned)avail;
			return cr + avail - s;
		}
		p = cr + 1;
	}
	if (body && (r = emit(mp, from, (size_t)(end - from))) < 0)
		return r;
	return end - s;
}

/* A delimiter has just matched whole: the part before it (if any) has ended. */
static int delimiter_seen(zh_multipart_t *mp)
{
	int r = 0;
	mp->match = 0;
	if (mp->state == S_BODY) {
		mp->sink = NULL;
		mp->sink_fd = -1;
		if (mp->ops && mp->ops->part_end)
			r = mp->ops->part_end(mp->arg, &mp->part);
	}
	mp->state = S_AFTER_DELIM;
	return r;
}

/* One byte of the delimiter line's tail or of a header block. */
static int line_byte(zh_multipart_t *mp, char c)
{
	switch (mp->state) {
	case S_AFTER_DELIM:
		mp->pad = 0;
		if (c == '-')
			mp->state = S_CLOSE_DASH;
		else if (ows(c))
			mp->state = S_PAD;
		else if (c == '\r')
			mp->state = S_DELIM_LF;
		else
			return -EPROTO; /* "--boundaryX": the RFC forbids it inside a part */
		return 0;
	case S_CLOSE_DASH:
		if (c != '-')
			return -EPROTO;
		mp->state = S_DONE;
		return 0;
	case S_PAD:
		if (c == '\r')
			mp->state = S_DELIM_LF;
		else if (!ows(c) || ++mp->pad > MAX_PADDING)
			return -EPROTO;
		return 0;
	case S_DELIM_LF:
		if (c != '\n')
			return -EPROTO;
		if (mp->parts >= mp->max_parts)
			return -E2BIG;
		mp->parts++;
		mp->hlen = 0;
		mp->state = S_HEADERS;
		return 0;
	default:
		return -EPROTO;
	}
}

/* One byte of a part's header block; at its empty line the part callback runs. */
static int header_byte(zh_multipart_t *mp, char c)
{
	unsigned n;
	int r;
	if (mp->hlen >= mp->max_header_bytes)
		return -EMSGSIZE;
	mp->hdr[mp->hlen++] = c;
	n = mp->hlen;
	if (c != '\n')
		return 0;
	if (n < 2 || mp->hdr[n - 2] != '\r')
		return -EPROTO; /* a bare LF: RFC 7578 §4.1 lines end in CRLF */
	if (n != 2 && (n < 4 || memcmp(mp->hdr + n - 4, "\r\n\r\n", 4) != 0))
		return 0;
	if ((r = parse_headers(mp)) < 0)
		return r;
	mp->part.index = mp->parts - 1;
	mp->state = S_IN_PART_CB;
	r = mp->ops && mp->ops->part ? mp->ops->part(mp->arg, &mp->part) : 0;
	mp->state = S_BODY;
	return r;
}

int zh_multipart_feed(zh_multipart_t *mp, const void *data, size_t len)
{
	const char *p = data, *end = p + len;
	while (p < end) {
		int r = 0;
		long used;
		switch (mp->state) {
		case S_FAILED:
			return mp->err;
		case S_DONE:
			return 1;
		case S_PREAMBLE:
		case S_BODY:
			used = scan(mp, p, end, mp->state == S_BODY);
			if (used < 0)
				return fail(mp, (int)used);
			p += used;
			if (mp->match == mp->dlen)
				r = delimiter_seen(mp);
			break;
		case S_HEADERS:
			r = header_byte(mp, *p++);
			break;
		default:
			r = line_byte(mp, *p++);
			break;
		}
		if (r < 0)
			return fail(mp, r);
	}
	return mp->state == S_DONE ? 1 : mp->state == S_FAILED ? mp->err : 0;
}

int zh_multipart_finish(zh_multipart_t *mp)
{
	if (mp->state == S_FAILED)
		return mp->err;
	if (mp->state != S_DONE)
		return fail(mp, -EPROTO);
	return 0;
}

/* ---- in a handler ------------------------------------------------------------------------ */

int zh_multipart_pump(zh_multipart_t *mp, zh_request_t *req, void *buf, size_t cap)
{
	for (;;) {
		ssize_t n = zh_body_read(req, buf, cap);
		int r;
		if (n == 0)
			return zh_multipart_finish(mp) == 0 ? 1 : mp->err;
		if (n < 0)
			return (int)n;
		/* after the close delimiter the epilogue is read and ignored: the body must
		 * still end for the connection to carry the next request */
		r = zh_multipart_feed(mp, buf, (size_t)n);
		if (r < 0)
			return r;
	}
}

int zh_multipart_reply_error(zh_response_t *resp, int err)
{
	static const char *const texts[] = {
		"400 Bad Request: malformed multipart body\n", "413 Content Too Large\n",
		"408 Request Timeout\n", "503 Service Unavailable\n"};
	int status = 400, i = 0;
	if (err == -EMSGSIZE || err == -E2BIG || err == -EFBIG)
		status = 413, i = 1;
	else if (err == -ETIMEDOUT)
		status = 408, i = 2;
	else if (err == -ENOBUFS)
		status = 503, i = 3;
	if (zh_resp_committed(resp))
		return -EALREADY;
	/* the rest of the body was not read: this connection cannot carry another request */
	zh_resp_header_set(resp, "Connection", "close");
	return zh_reply(resp, status, "text/plain", texts[i], strlen(texts[i]));
}
