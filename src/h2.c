/* h2.c — an HTTP/2 connection (RFC 9113) behind the protocol seam: one nghttp2 server
 * session per socket, whose streams are exchanges run by conn.c (h2_stream.c).
 *
 * A turn (conn_event): read what the socket has and feed it to nghttp2 (frames, HPACK;
 * request heads and body bytes land in each stream's own I/O context), drive every stream
 * that has something new (its handler runs, its response is queued in its context), then
 * let nghttp2 serialize: control frames and HEADERS are copied into the connection's copy
 * area, DATA frames are their 9-byte header plus references to the streams' queued entries
 * (NGHTTP2_DATA_FLAG_NO_COPY, send_data callback), so the frames of every stream that
 * answered in this turn leave in one writev. A file entry leaves by sendfile after the
 * frame header before it. As the socket takes bytes, each stream's queue is consumed as
 * conn.c's flush would have (entries released in order).
 *
 * Limits (each counted in zh_stats_t and ended with GOAWAY): rapid resets, control-frame
 * floods (and nghttp2's own outbound-ACK bound), CONTINUATION floods, oversized header
 * lists, streams over SETTINGS_MAX_CONCURRENT_STREAMS, slow headers (the header timer of
 * the connection while a header block is open), zero-window readers (h2_stream.c).
 *
 * Ownership: the session, this struct and its streams come from the worker's pool
 * (h2_mem.c), freed when the connection closes; the receive buffer is the connection's I/O
 * context, held for the connection's life.
 */
#include "h2_int.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#define STAT(h, f) ZH__STAT_ADD((h)->w, f, 1)

/* ---- per worker ----------------------------------------------------------------------------- */

static void set_callbacks(nghttp2_session_callbacks *cb);
static __thread zh__h2w_t *here; /* one worker per thread */

zh__h2w_t *zh__h2w_here(void)
{
	return here;
}

/* Created by the worker on its first HTTP/2 connection: the pool and the slot map come from
 * mmap, the callbacks and options from nghttp2 (with the pool as its allocator). */
zh__h2w_t *zh__h2w(zh__worker_t *w)
{
	zh__h2w_t *x = w->h2;
	const zh__h2cfg_t *cfg = w->srv->h2_cfg;
	size_t slots_len;
	if (x)
		return x;
	slots_len = ((size_t)w->conn_pool.count * sizeof(void *) + sizeof *x + 4095) & ~(size_t)4095;
	x = mmap(NULL, slots_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (x == MAP_FAILED)
		return NULL;
	x->w = w;
	x->map_len = slots_len;
	x->slots = (void **)(void *)(x + 1);
	x->nslots = w->conn_pool.count;
	x->cbs = cfg->cbs;
	x->opt = cfg->opt;
	zh__h2mem_bind(&x->ngmem, &x->mem);
	x->mem.st = &w->stats;
	w->h2 = x;
	here = x;
	return x;
}

uint32_t zh__h2_slot(const zh__worker_t *w, const zh__conn_t *c)
{
	return (uint32_t)(((const char *)c - w->conn_pool.base) / (ptrdiff_t)w->conn_pool.obj_size);
}

static zh__h2c_t *session_of(zh__worker_t *w, zh__conn_t *c)
{
	return ((zh__h2w_t *)w->h2)->slots[zh__h2_slot(w, c)];
}

/* ---- abuse accounting ------------------------------------------------------------------------ */

static void window_roll(zh__h2c_t *h)
{
	uint64_t now = h->w->now_ms;
	if (now - h->window_start_ms >= 1000) {
		h->window_start_ms = now;
		h->resets = h->control = 0;
	}
}

void zh__h2_terminate(zh__h2c_t *h, uint32_t code)
{
	if (!h->goaway)
		(void)nghttp2_session_terminate_session(h->s, code);
	h->goaway = true;
}

/* ---- nghttp2 callbacks: input ---------------------------------------------------------------- */

static int on_begin_headers(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
	zh__h2c_t *h = ud;
	zh__h2s_t *st;
	if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	h->headers_open = true;
	/* nghttp2 enforces SETTINGS_MAX_CONCURRENT_STREAMS (on_invalid_frame); exchanges
	 * whose stream nghttp2 has closed may still be finishing, up to as many again */
	st = h->nstreams < 2 * h->cfg->cfg.max_concurrent_streams ? zh__h2s_open(h, f->hd.stream_id)
								 : NULL;
	if (st == NULL) {
		/* no slot or context: this stream is refused, the connection goes on */
		(void)nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, f->hd.stream_id,
						NGHTTP2_REFUSED_STREAM);
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	}
	return nghttp2_session_set_stream_user_data(s, f->hd.stream_id, st) == 0
		       ? 0
		       : NGHTTP2_ERR_CALLBACK_FAILURE;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name,
		     size_t nlen, const uint8_t *value, size_t vlen, uint8_t flags, void *ud)
{
	zh__h2c_t *h = ud;
	zh__h2s_t *st = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
	(void)flags;
	if (st == NULL || st->head_done)
		return 0; /* request trailers: not kept */
	if (zh__h2s_header(st, name, nlen, value, vlen) < 0) {
		/* RFC 9113 §10.5.1: more than we said we would take (an HPACK bomb expands a
		 * small block into a huge list): the decoding work is bounded by ending here */
		STAT(h, h2_header_lists_too_large);
		zh__h2_terminate(h, NGHTTP2_ENHANCE_YOUR_CALM);
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	}
	return 0;
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
	zh__h2c_t *h = ud;
	zh__h2s_t *st = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
	switch (f->hd.type) {
	case NGHTTP2_HEADERS:
		h->headers_open = false;
		if (st && !st->head_done &&
		    zh__h2s_head_end(st, (f->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0) < 0)
			return NGHTTP2_ERR_CALLBACK_FAILURE;
		else if (st && st->head_done && (f->hd.flags & NGHTTP2_FLAG_END_STREAM))
			return zh__h2s_data_end(st); /* after trailers */
		return 0;
	case NGHTTP2_DATA:
		if (st && (f->hd.flags & NGHTTP2_FLAG_END_STREAM))
			return zh__h2s_data_end(st);
		return 0;
	case NGHTTP2_RST_STREAM:
		/* CVE-2023-44487: a stream opened and cancelled costs us its setup; a client
		 * that does it in a loop gets a bounded number a second */
		window_roll(h);
		if (++h->resets > h->cfg->cfg.max_resets_per_s) {
			STAT(h, h2_rapid_resets);
			zh__h2_terminate(h, NGHTTP2_ENHANCE_YOUR_CALM);
		}
		return 0;
	case NGHTTP2_SETTINGS:
	case NGHTTP2_PING:
	case NGHTTP2_WINDOW_UPDATE:
	case NGHTTP2_PRIORITY:
		window_roll(h);
		if (++h->control > h->cfg->cfg.max_control_per_s) {
			STAT(h, h2_floods);
			zh__h2_terminate(h, NGHTTP2_ENHANCE_YOUR_CALM);
		}
		return 0;
	default:
		return 0;
	}
}

static int on_data_chunk(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data,
			 size_t len, void *ud)
{
	zh__h2c_t *h = ud;
	zh__h2s_t *st = nghttp2_session_get_stream_user_data(s, id);
	size_t taken;
	int r;
	(void)flags;
	if (st == NULL || st->sc == NULL) {
		/* nobody reads it: give the window back all the same */
		(void)nghttp2_session_consume(s, id, len);
		return 0;
	}
	r = zh__h2s_data(st, data, len, &taken);
	if (r == NGHTTP2_ERR_PAUSE) {
		h->paused = st;
		h->paused_id = id;
		h->paused_data = data + taken; /* in our receive buffer, kept until delivered */
		h->paused_len = len - taken;
		st->busy = true;
	}
	return r;
}

/* A paused chunk again: true once delivered (or its stream is gone). */
static bool deliver_paused(zh__h2c_t *h)
{
	zh__h2s_t *st = h->paused;
	size_t taken = 0;
	if (st == NULL)
		return true;
	if (st->sc &&
	    zh__h2s_data(st, h->paused_data, h->paused_len, &taken) == NGHTTP2_ERR_PAUSE) {
		h->paused_data += taken;
		h->paused_len -= taken;
		return false;
	}
	if (st->sc == NULL)
		(void)nghttp2_session_consume(h->s, h->paused_id, h->paused_len);
	h->paused = NULL;
	st->busy = false;
	zh__h2s_maybe_free(st);
	return true;
}

static int on_stream_close(nghttp2_session *s, int32_t id, uint32_t code, void *ud)
{
	zh__h2s_t *st = nghttp2_session_get_stream_user_data(s, id);
	(void)ud;
	if (st == NULL)
		return 0;
	st->closed = true;
	if (code != NGHTTP2_NO_ERROR || !st->eof_framed) {
		st->reset = true; /* the client cancelled: its exchange ends (when nothing of it
				     is still in our output) */
		st->kill = true;
		if (st->sc)
			zh__h2_ready(st);
	}
	zh__h2s_maybe_free(st);
	return 0;
}

/* RFC 9113 §5.1.2: a client that opens more streams than SETTINGS_MAX_CONCURRENT_STREAMS
 * allows gets a connection error from nghttp2 (GOAWAY PROTOCOL_ERROR); counted here. */
static int on_invalid_frame(nghttp2_session *s, const nghttp2_frame *f, int lib_error,
			    void *ud)
{
	zh__h2c_t *h = ud;
	if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST &&
	    nghttp2_session_get_remote_settings(s, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS) &&
	    lib_error == NGHTTP2_ERR_PROTO && !h->goaway &&
	    nghttp2_session_get_local_settings(s, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS) <=
		    h->nstreams)
		STAT(h, h2_streams_refused);
	return 0;
}

static int on_frame_send(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
	zh__h2c_t *h = ud;
	(void)s;
	if (f->hd.type == NGHTTP2_GOAWAY) {
		STAT(h, h2_goaway_sent);
		h->goaway = h->goaway_sent = true;
	}
	return 0;
}

/* ---- nghttp2 callbacks: output ------------------------------------------------------------ */

/* The output buffer, lent from the pool on first use (NULL: the pool cannot map more). */
static zh__h2obuf_t *obuf(zh__h2c_t *h)
{
	if (h->ob == NULL)
		h->ob = zh__h2mem_alloc(&((zh__h2w_t *)h->w->h2)->mem, sizeof *h->ob);
	return h->ob;
}

/* Everything queued has left (or is dropped): the buffer goes back to the pool. */
static void obuf_return(zh__h2c_t *h)
{
	h->out_head = h->nout = 0;
	h->copy_used = 0;
	zh__h2mem_free(&((zh__h2w_t *)h->w->h2)->mem, h->ob);
	h->ob = NULL;
}

static zh__h2out_t *out_push(zh__h2c_t *h)
{
	zh__h2out_t *o;
	if (h->nout == ZH__H2_OUT || obuf(h) == NULL)
		return NULL;
	o = &h->ob->out[h->nout++];
	o->owner = NULL;
	o->fd = -1;
	o->off = 0;
	return o;
}

/* Serialized bytes (control frames, HEADERS, a DATA frame's header): copied, coalesced
 * with the copy before them. Partial takes are allowed (nghttp2 offers the rest again). */
static ssize_t out_copy(zh__h2c_t *h, const uint8_t *data, size_t len)
{
	size_t n = ZH__H2_COPY - h->copy_used;
	zh__h2out_t *last;
	char *dst;
	if (obuf(h) == NULL)
		return NGHTTP2_ERR_CALLBACK_FAILURE; /* no memory for output: the session ends */
	last = h->nout ? &h->ob->out[h->nout - 1] : NULL;
	dst = h->ob->copy + h->copy_used;
	if (n == 0)
		return NGHTTP2_ERR_WOULDBLOCK;
	if (n > len)
		n = len;
	if (last == NULL || last->owner || last->fd >= 0 || last->base + last->len != dst) {
		if ((last = out_push(h)) == NULL)
			return NGHTTP2_ERR_WOULDBLOCK;
		last->base = dst;
		last->len = 0;
	}
	memcpy(dst, data, n);
	last->len += n;
	h->copy_used += (uint32_t)n;
	return (ssize_t)n;
}

static ssize_t send_cb(nghttp2_session *s, const uint8_t *data, size_t len, int flags, void *ud)
{
	(void)s;
	(void)flags;
	return out_copy(ud, data, len);
}

static int send_data_cb(nghttp2_session *s, nghttp2_frame *f, const uint8_t *framehd,
			size_t length, nghttp2_data_source *src, void *ud)
{
	zh__h2c_t *h = ud;
	(void)s;
	(void)f; /* no padding is ever selected */
	/* the header and every reference must fit now: a frame is never split */
	if (ZH__H2_COPY - h->copy_used < 9 || h->nout + ZH__IOV_CAP + 2 > ZH__H2_OUT)
		return NGHTTP2_ERR_WOULDBLOCK;
	if (out_copy(h, framehd, 9) != 9)
		return NGHTTP2_ERR_WOULDBLOCK;
	return zh__h2s_send_data(src->ptr, framehd, length);
}

/* A stream's body bytes [skip, skip + len) of its queue, referenced in place. */
int zh__h2_out_refs(zh__h2c_t *h, zh__h2s_t *st, uint64_t skip, size_t len)
{
	zh__ctx_t *ctx = st->sc->ctx;
	for (uint16_t i = ctx->iov_head; i < ctx->iov_n && len; i++) {
		size_t el = ctx->iov[i].iov_len, n;
		zh__h2out_t *o;
		if (skip >= el) {
			skip -= el;
			continue;
		}
		n = el - (size_t)skip < len ? el - (size_t)skip : len;
		if ((o = out_push(h)) == NULL)
			return -1;
		o->owner = st;
		o->len = n;
		if (ctx->rel[i].file_fd >= 0) {
			o->base = NULL;
			o->fd = ctx->rel[i].file_fd;
			o->off = ctx->rel[i].file_off + skip;
		} else {
			o->base = (char *)ctx->iov[i].iov_base + skip;
		}
		skip = 0;
		len -= n;
		st->inflight += n;
	}
	return len ? -1 : 0;
}

ssize_t zh__h2_read_cb(nghttp2_session *s, int32_t id, uint8_t *buf, size_t length,
		       uint32_t *flags, nghttp2_data_source *src, void *ud)
{
	(void)s;
	(void)id;
	(void)ud;
	return zh__h2s_read(src->ptr, buf, length, flags);
}

static void set_callbacks(nghttp2_session_callbacks *cb)
{
	nghttp2_session_callbacks_set_send_callback(cb, send_cb);
	nghttp2_session_callbacks_set_send_data_callback(cb, send_data_cb);
	nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
	nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
	nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(cb, on_invalid_frame);
}

/* ---- the socket ------------------------------------------------------------------------------ */

/* The socket took n bytes from the front of the output: consume the owners' queues. */
static void out_taken(zh__h2c_t *h, size_t n)
{
	while (n && h->out_head < h->nout) {
		zh__h2out_t *o = &h->ob->out[h->out_head];
		size_t k = n < o->len ? n : o->len;
		if (o->owner) {
			zh__h2s_t *st = o->owner;
			st->inflight -= k;
			if (st->sc)
				zh__out_consume(st->sc->ctx, k);
			zh__h2_ready(st);
		}
		o->len -= k;
		if (o->fd >= 0)
			o->off += k;
		else
			o->base += k;
		n -= k;
		if (o->len == 0)
			h->out_head++;
	}
	if (h->out_head == h->nout)
		obuf_return(h);
}

/* 1 all sent, 0 the socket is full, -1 broken */
static int out_write(zh__h2c_t *h)
{
	zh__conn_t *c = h->c;
	struct iovec *iov = ((zh__h2w_t *)h->w->h2)->iov;
	while (h->out_head < h->nout) {
		zh__h2out_t *o = &h->ob->out[h->out_head];
		ssize_t n;
		if (o->fd >= 0) {
			uint64_t off = o->off;
			n = zh__tr(c)->send_file(c, o->fd, &off, o->len);
			ZH__STAT_ADD(h->w, sendfile_calls, 1);
			if (n == 0)
				return -1; /* the file shrank: the frame cannot be completed */
		} else {
			int cnt = 0;
			uint16_t i = h->out_head;
			while (i < h->nout && h->ob->out[i].fd < 0) {
				iov[cnt].iov_base = h->ob->out[i].base;
				iov[cnt++].iov_len = h->ob->out[i].len;
				i++;
			}
			n = zh__tr_send(c, iov, cnt, i < h->nout);
			ZH__STAT_ADD(h->w, writev_calls, 1);
		}
		if (n < 0)
			return n == -EAGAIN ? 0 : -1;
		ZH__STAT_ADD(h->w, bytes_out, (uint64_t)n);
		out_taken(h, (size_t)n);
	}
	return 1;
}

/* Serialize what nghttp2 has into the output and send it; until the socket is full or
 * nghttp2 has nothing more. 1 done, 0 socket full, -1 broken. */
static int write_all(zh__h2c_t *h)
{
	int r = 1;
	if (h->broken)
		return -1; /* its references may point at released memory: nothing more leaves */
	if (h->writing)
		return 1;
	if (h->dead)
		return out_write(h); /* nghttp2 is not called after a fatal error */
	h->writing = true;
	for (int rounds = 0; rounds < 64; rounds++) {
		if (nghttp2_session_send(h->s) != 0) {
			r = -1;
			break;
		}
		if (h->nout == h->out_head)
			break;
		if ((r = out_write(h)) <= 0)
			break;
	}
	h->writing = false;
	h->blocked = r == 0;
	return r;
}

/* nghttp2 failed fatally (a flood it bounds itself, a callback's refusal): the session
 * is unusable, so a GOAWAY it queued before (our own terminate) is sent if it can be,
 * else one is written here by hand (RFC 9113 §6.8: last stream id, error code). */
static void fatal_goaway(zh__h2c_t *h, uint32_t code)
{
	int32_t last = nghttp2_session_get_last_proc_stream_id(h->s);
	uint8_t f[17] = {0, 0, 8, NGHTTP2_GOAWAY, 0, 0, 0, 0, 0,
			 (uint8_t)(last >> 24), (uint8_t)(last >> 16), (uint8_t)(last >> 8),
			 (uint8_t)last, (uint8_t)(code >> 24), (uint8_t)(code >> 16),
			 (uint8_t)(code >> 8), (uint8_t)code};
	if (h->goaway && !h->goaway_sent)
		(void)write_all(h);
	if (!h->goaway_sent && out_copy(h, f, sizeof f) == (ssize_t)sizeof f) {
		STAT(h, h2_goaway_sent);
		h->goaway_sent = true;
	}
	h->goaway = true;
	/* 0: the socket is full, or (io_uring) a send is still in flight: the frame leaves at
	 * the next writable turn, and the close lingers after it (settle) */
	if (out_write(h) < 0)
		h->broken = true; /* the frame cannot leave: no lingering for it */
	else
		h->blocked = h->out_head < h->nout;
}

/* 1 read something, 0 nothing (drained, or input paused), -1 broken or EOF */
static int read_some(zh__h2c_t *h)
{
	zh__conn_t *c = h->c;
	zh__ctx_t *ctx = c->ctx;
	ssize_t n, used;
	if (h->paused || h->in_off < h->in_len) {
		/* input paused by a stream without room: its chunk first, then the rest (also
		 * none: nghttp2 completes the paused frame, END_STREAM, on its next call) */
		if (!deliver_paused(h))
			return 0;
		n = h->in_len - h->in_off;
	} else {
		if (!c->readable)
			return 0;
		/* the receive buffer is lent for the turn (settle gives it back) */
		if (ctx == NULL && (ctx = zh__conn_ctx_attach(h->w, c)) == NULL) {
			STAT(h, pool_exhausted);
			return -1;
		}
		n = zh__tr_recv(c, ctx->rbuf, ctx->rcap);
		ZH__STAT_ADD(h->w, read_calls, 1);
		if (n == -EAGAIN) {
			c->readable = false;
			return 0;
		}
		if (n <= 0)
			return -1;
		ZH__STAT_ADD(h->w, bytes_in, (uint64_t)n);
		h->in_off = 0;
		h->in_len = (uint32_t)n;
	}
	used = nghttp2_session_mem_recv(h->s, (const uint8_t *)ctx->rbuf + h->in_off, (size_t)n);
	if (used >= 0) {
		h->in_off += (uint32_t)used;
		if (h->in_off == h->in_len)
			h->in_off = h->in_len = 0;
	}
	if (used < 0) {
		uint32_t code = NGHTTP2_PROTOCOL_ERROR;
		if (used == NGHTTP2_ERR_FLOODED) {
			STAT(h, h2_floods);
			code = NGHTTP2_ENHANCE_YOUR_CALM;
		} else if (used == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS) {
			STAT(h, h2_continuation_floods);
			code = NGHTTP2_ENHANCE_YOUR_CALM;
		} else if (used == NGHTTP2_ERR_CALLBACK_FAILURE) {
			code = NGHTTP2_INTERNAL_ERROR;
		}
		fatal_goaway(h, code);
		h->dead = true; /* nghttp2 may not be called again but to delete it */
		return -1;
	}
	return 1;
}

int zh__h2_io(zh__h2c_t *h)
{
	int r = write_all(h);
	if (r < 0 || h->broken)
		return -1;
	if (read_some(h) < 0)
		return -1;
	return 0;
}

/* ---- streams to drive ------------------------------------------------------------------------ */

void zh__h2_ready(zh__h2s_t *s)
{
	zh__h2c_t *h = s->h;
	if (s->on_ready)
		return;
	s->on_ready = true;
	s->ready_next = NULL;
	if (h->ready_tail)
		h->ready_tail->ready_next = s;
	else
		h->ready = s;
	h->ready_tail = s;
}

static void run_ready(zh__h2c_t *h)
{
	zh__h2s_t *s;
	while ((s = h->ready) != NULL) {
		h->ready = s->ready_next;
		if (h->ready == NULL)
			h->ready_tail = NULL;
		s->on_ready = false;
		s->busy = true; /* not freed under its own drive (its slot may close in it) */
		if (s->sc && s->kill && s->inflight == 0)
			zh__conn_close(h->w, s->sc); /* cancelled by the client */
		else if (s->sc)
			zh__conn_drive(h->w, s->sc);
		if (s->sc && s->term_pending && zh__h2s_term(s))
			zh__h2_ready(s); /* the body's end found room: run it again */
		s->busy = false;
		zh__h2s_maybe_free(s);
	}
}

/* Outside a turn (a deferred response resumed, a stream's timer): the connection asks the
 * worker for a turn after the current events, like a yielded producer. */
void zh__h2_kick(zh__h2c_t *h)
{
	zh__worker_t *w = h->w;
	if (h->in_turn || h->yielded)
		return;
	if (w->nyielded < ZH__YIELD_CAP) {
		w->yielded[w->nyielded++] = h->c;
		h->yielded = true;
	} else if (write_all(h) < 0) {
		h->broken = true;
	}
}

/* ---- the connection ---------------------------------------------------------------------- */

static void session_free(zh__worker_t *w, zh__conn_t *c);

/* After a GOAWAY that left whole, the connection lingers (conn.c), so the peer reads the
 * frame rather than the RST a close with its bytes unread would bring; otherwise, or
 * after an I/O error, it closes at once. */
static void close_session(zh__h2c_t *h)
{
	zh__worker_t *w = h->w;
	zh__conn_t *c = h->c;
	if (h->goaway && !h->broken && h->out_head == h->nout) {
		session_free(w, c);
		c->proto = 0; /* plain bytes from here on: discarded */
		zh__conn_linger(w, c);
		return;
	}
	zh__conn_close(w, c); /* conn_closing below frees the session */
}

static void settle(zh__h2c_t *h)
{
	zh__conn_t *c = h->c;
	zh__worker_t *w = h->w;
	bool want = !h->dead &&
		    (nghttp2_session_want_read(h->s) || nghttp2_session_want_write(h->s));
	if (h->broken || (!want && h->out_head == h->nout) ||
	    (h->goaway && h->nstreams == 0 && h->out_head == h->nout)) {
		close_session(h);
		return;
	}
	if (c->ctx && h->in_off == h->in_len && h->paused == NULL)
		zh__conn_ctx_detach(w, c); /* no input kept: an idle connection holds no context */
	if (h->blocked)
		zh__conn_set_timer(w, c, ZH__T_WRITE);
	else if (h->headers_open) {
		if (c->timer != ZH__T_HEADER) /* not moved by each CONTINUATION */
			zh__conn_set_timer(w, c, ZH__T_HEADER);
	} else if (h->nstreams == 0)
		zh__conn_set_timer(w, c, ZH__T_IDLE);
	else
		zh__conn_set_timer(w, c, ZH__T_NONE);
}

static void turn(zh__h2c_t *h)
{
	zh__worker_t *w = h->w;
	h->in_turn = true;
	h->yielded = false;
	if (w->draining && !h->goaway) {
		/* RFC 9113 §6.8: the streams already begun are served, no new one is */
		(void)nghttp2_submit_goaway(h->s, NGHTTP2_FLAG_NONE,
					    nghttp2_session_get_last_proc_stream_id(h->s),
					    NGHTTP2_NO_ERROR, NULL, 0);
		h->goaway = true;
	}
	for (int i = 0; i < 16 && !h->broken; i++) {
		int r = 0;
		if (!h->blocked)
			r = read_some(h);
		if (r < 0) {
			/* EOF, an I/O error, or a fatal error after its GOAWAY (fatal_goaway) */
			if (!h->goaway_sent)
				h->broken = true;
			break;
		}
		run_ready(h);
		if (write_all(h) < 0) {
			h->broken = true;
			break;
		}
		if (h->ready == NULL && (h->blocked || (!h->c->readable && h->in_off == h->in_len &&
							 h->paused == NULL)))
			break;
	}
	h->in_turn = false;
	/* fairness: the others' events first. Input left unread after the last round (a
	 * burst of small TLS records: SSL_read gives one per call) raises no new edge on the
	 * edge-triggered socket, so it asks for a turn too, unless the output is blocked
	 * (EPOLLOUT wakes the connection then). */
	if ((h->ready || h->paused || h->in_off < h->in_len || (h->c->readable && !h->blocked)) &&
	    !h->broken)
		zh__h2_kick(h);
	settle(h);
}

static void session_event(zh__worker_t *w, zh__conn_t *c, uint32_t events)
{
	zh__h2c_t *h = session_of(w, c);
	(void)events;
	if (h == NULL || h->in_turn)
		return;
	turn(h);
}

static void session_timeout(zh__worker_t *w, zh__conn_t *c)
{
	zh__h2c_t *h = session_of(w, c);
	uint8_t kind = c->timer;
	ZH__STAT_ADD(w, timeouts, 1);
	zh__conn_set_timer(w, c, ZH__T_NONE);
	if (h == NULL) {
		zh__conn_close(w, c);
		return;
	}
	if (kind == ZH__T_HEADER && h->headers_open) {
		STAT(h, h2_slow_headers);
		zh__h2_terminate(h, NGHTTP2_ENHANCE_YOUR_CALM);
	} else if (kind == ZH__T_IDLE) {
		zh__h2_terminate(h, NGHTTP2_NO_ERROR);
	} else {
		close_session(h); /* a write stall: nothing more can leave */
		return;
	}
	(void)write_all(h);
	if (!h->broken && h->out_head < h->nout) {
		/* the GOAWAY waits for room (or, on io_uring, for the send in flight): the
		 * writable turn sends it and settles, lingering then; the write timeout bounds it */
		h->blocked = true;
		zh__conn_set_timer(w, c, ZH__T_WRITE);
		return;
	}
	close_session(h);
}

static void session_drain(zh__worker_t *w, zh__conn_t *c)
{
	session_event(w, c, 0); /* the turn sees w->draining and sends GOAWAY */
}

/* The session connection is closing (zh__conn_close): its streams end first (an exchange
 * still open is abandoned: its done hooks see 499), then the session is freed. */
static void session_closing(zh__worker_t *w, zh__conn_t *c)
{
	session_free(w, c);
}

static void session_free(zh__worker_t *w, zh__conn_t *c)
{
	zh__h2w_t *x = w->h2;
	zh__h2c_t *h = session_of(w, c);
	if (h == NULL)
		return;
	h->broken = true;
	obuf_return(h); /* references into the streams' queues are dropped unsent */
	while (h->streams) {
		zh__h2s_t *s = h->streams;
		s->inflight = 0;
		s->closed = true;
		s->on_ready = s->busy = false;
		if (s->sc)
			zh__conn_close(w, s->sc); /* its transport's close unlinks and frees s */
		else
			zh__h2s_maybe_free(s);
	}
	nghttp2_session_del(h->s);
	x->slots[zh__h2_slot(w, c)] = NULL;
	zh__h2mem_free(&x->mem, h);
}

static int session_start(zh__worker_t *w, zh__conn_t *c)
{
	const zh__h2cfg_t *cfg = w->srv->h2_cfg;
	zh__h2w_t *x = zh__h2w(w);
	zh__ctx_t *ctx = c->ctx;
	zh__h2c_t *h;
	nghttp2_settings_entry iv[] = {
		{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, cfg->cfg.max_concurrent_streams},
		/* what a stream's receive buffer holds beside its head (h2_stream.c) */
		{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, ZH__RBUF_SIZE / 2},
		{NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, cfg->cfg.max_header_list},
		{NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
	};
	if (x == NULL || (h = zh__h2mem_alloc(&x->mem, sizeof *h)) == NULL)
		return -ENOMEM;
	memset(h, 0, sizeof *h);
	h->w = w;
	h->c = c;
	h->cfg = cfg;
	h->window_start_ms = w->now_ms;
	if (nghttp2_session_server_new3(&h->s, x->cbs, h, x->opt, &x->ngmem) != 0) {
		zh__h2mem_free(&x->mem, h);
		return -ENOMEM;
	}
	c->proto = cfg->proto_session;
	x->slots[zh__h2_slot(w, c)] = h;
	STAT(h, h2_connections);
	if (nghttp2_submit_settings(h->s, NGHTTP2_FLAG_NONE, iv, sizeof iv / sizeof iv[0]) != 0)
		return -ENOMEM; /* the caller closes c, and session_closing frees h */
	/* the bytes read so far (the preface, and whatever followed it) are the first input */
	if (ctx->rstart)
		memmove(ctx->rbuf, ctx->rbuf + ctx->rstart, ctx->rlen - ctx->rstart);
	h->in_off = 0;
	h->in_len = ctx->rlen - ctx->rstart;
	ctx->rlen = ctx->rstart = 0;
	turn(h);
	return 0;
}

/* ---- registration ------------------------------------------------------------------------- */

static const zh__proto_t session_proto = {
	.name = "h2-connection",
	.conn_event = session_event,
	.conn_timeout = session_timeout,
	.conn_drain = session_drain,
	.conn_closing = session_closing,
};

/* zh_server_free: the worker's connections are all closed by now */
static void worker_free(zh__worker_t *w)
{
	zh__h2w_t *x = w->h2;
	zh__h2mem_unmap(&x->mem);
	w->h2 = NULL;
	if (munmap(x, x->map_len) != 0)
		abort();
}

/* zh_server_free, after the workers: the settings and what zh_http2_enable made */
static void cfg_free(void *p)
{
	zh__h2cfg_t *k = p;
	if (k == NULL)
		return;
	nghttp2_session_callbacks_del(k->cbs);
	nghttp2_option_del(k->opt);
	free(k);
}

static const zh__h2_hooks_t hooks = {.start = session_start, .worker_free = worker_free,
				     .cfg_free = cfg_free};

void zh_http2_config_init(zh_http2_config_t *cfg)
{
	memset(cfg, 0, sizeof *cfg);
	cfg->max_concurrent_streams = 100;
	cfg->max_header_list = 8192;
	cfg->max_resets_per_s = 200;
	cfg->max_control_per_s = 1000;
}

int zh_http2_enable(zh_server_t *srv, const zh_http2_config_t *cfg)
{
	zh__h2cfg_t *k;
	int ps, pst, tr;
	zh_http2_config_t def;
	if (cfg == NULL) {
		zh_http2_config_init(&def);
		cfg = &def;
	}
	if (srv->running || cfg->max_concurrent_streams == 0 || cfg->max_header_list == 0 ||
	    cfg->max_header_list > ZH__RBUF_SIZE / 2 || cfg->max_resets_per_s == 0 ||
	    cfg->max_control_per_s == 0)
		return -EINVAL;
	if ((ps = zh__proto_register(&session_proto)) < 0 ||
	    (pst = zh__proto_register(&zh__h2_stream_proto)) < 0 ||
	    (tr = zh__transport_register(&zh__h2_stream_transport)) < 0)
		return -ENOSPC;
	if ((k = calloc(1, sizeof *k)) == NULL)
		return -ENOMEM;
	/* made once, here (malloc'd by nghttp2), read by every worker's sessions: a worker's
	 * first HTTP/2 connection then costs mmap, no malloc */
	if (nghttp2_session_callbacks_new(&k->cbs) != 0 || nghttp2_option_new(&k->opt) != 0) {
		nghttp2_session_callbacks_del(k->cbs);
		free(k);
		return -ENOMEM;
	}
	set_callbacks(k->cbs);
	/* window updates are ours: a stream's window opens as its exchange consumes the body
	 * (h2_stream.c), so a slow streaming handler is not sent more than it can hold */
	nghttp2_option_set_no_auto_window_update(k->opt, 1);
	nghttp2_option_set_max_settings(k->opt, 32);
	nghttp2_option_set_max_continuations(k->opt, 8);
	nghttp2_option_set_max_outbound_ack(k->opt, 1000);
	nghttp2_option_set_max_deflate_dynamic_table_size(k->opt, 4096);
	/* no closed streams kept for RFC 7540's priority tree (deprecated by RFC 9113
	 * §5.3.2): less work per stream, no stream objects left behind by idle connections */
	nghttp2_option_set_no_closed_streams(k->opt, 1);
	nghttp2_option_set_stream_reset_rate_limit(k->opt, cfg->max_resets_per_s * 2,
						   cfg->max_resets_per_s);
	k->cfg = *cfg;
	k->proto_session = (uint8_t)ps;
	k->proto_stream = (uint8_t)pst;
	k->tr_stream = (uint8_t)tr;
	cfg_free(srv->h2_cfg); /* enabled twice: the newer settings */
	srv->h2_cfg = k;
	srv->h2 = &hooks;
	return 0;
}
