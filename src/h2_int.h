/* h2_int.h — what the HTTP/2 files share (libzerohttp-h2: h2.c the connection, h2_stream.c
 * the exchange of each stream, h2_mem.c nghttp2's allocator). Inside the core's wall: it
 * sees internal.h, since a protocol writes the output queue and drives connections.
 *
 * Shape (docs/design.md, "HTTP/2"): the socket's connection slot holds one nghttp2 server
 * session (zh__h2c_t, its I/O context lends the receive buffer); each stream whose request
 * head has begun holds a slot of its own (c->virt) with an I/O context, run by conn.c's
 * driver exactly as an HTTP/1.1 connection with one request. The stream's transport
 * (h2_stream.c) hands its output queue to the session, whose DATA frames reference the
 * queue's entries (NGHTTP2_DATA_FLAG_NO_COPY) until the socket took them.
 */
#ifndef ZH_H2_INT_H
#define ZH_H2_INT_H

#include "internal.h"

#include <nghttp2/nghttp2.h>

typedef struct zh__h2c zh__h2c_t;
typedef struct zh__h2s zh__h2s_t;

/* ---- allocator (h2_mem.c) ------------------------------------------------------------------- */

/* 44 size classes of 16 B .. 64 KiB, each carved from 1 MiB mmap'd regions of its own
 * with a LIFO free list; larger blocks are mapped alone. One per worker, used by its
 * thread only. */
enum { ZH__H2_CLASSES = 44, ZH__H2_REGION = 1 << 20 };
typedef struct zh__h2mem {
	void *free_list[ZH__H2_CLASSES];
	char *bump[ZH__H2_CLASSES], *bump_end[ZH__H2_CLASSES]; /* each class's current region */
	void *regions; /* mapped regions, linked through their headers */
	uint64_t mapped, in_use; /* bytes: regions mapped, blocks handed out */
	zh_stats_t *st;		 /* the worker's: both, as gauges for /metrics */
} zh__h2mem_t;
void zh__h2mem_bind(nghttp2_mem *m, zh__h2mem_t *pool);
void *zh__h2mem_alloc(zh__h2mem_t *pool, size_t size);
void zh__h2mem_free(zh__h2mem_t *pool, void *p);
void zh__h2mem_unmap(zh__h2mem_t *pool);

enum { ZH__H2_OUT = 256, ZH__H2_COPY = 16384 }; /* output entries and copy bytes (zh__h2obuf_t) */

/* ---- per worker ---------------------------------------------------------------------------- */

typedef struct zh__h2w {
	zh__h2mem_t mem;
	nghttp2_mem ngmem;
	nghttp2_session_callbacks *cbs;
	nghttp2_option *opt;
	zh__worker_t *w;
	void **slots; /* by connection slot index: the session (zh__h2c_t) or stream (zh__h2s_t) */
	struct iovec iov[ZH__H2_OUT]; /* one writev's vector, filled and used within out_write */
	uint32_t nslots;
	size_t map_len;
} zh__h2w_t;

typedef struct zh__h2cfg {
	zh_http2_config_t cfg;
	nghttp2_session_callbacks *cbs;
	nghttp2_option *opt;
	uint8_t proto_session, proto_stream, tr_stream; /* their indexes in the tables */
} zh__h2cfg_t;

/* ---- a connection ---------------------------------------------------------------------------- */

/* One entry of the connection's output: bytes nghttp2 serialized (copied into copy[], owner
 * NULL), or a stream's queued body bytes referenced in place (owner: that stream, whose
 * queue is consumed as the socket takes them), or a file range of a stream (fd >= 0). */
typedef struct zh__h2out {
	char *base;
	size_t len;
	zh__h2s_t *owner;
	int fd;
	uint64_t off;
} zh__h2out_t;

/* The connection's output while it has some: entries and the copies they point at. Lent
 * from the worker's pool when a frame is first queued and given back once the socket took
 * everything, so an idle connection holds none of its ~26 KiB. */
typedef struct zh__h2obuf {
	zh__h2out_t out[ZH__H2_OUT];
	char copy[ZH__H2_COPY];
} zh__h2obuf_t;

struct zh__h2c {
	zh__worker_t *w;
	zh__conn_t *c;
	const zh__h2cfg_t *cfg;
	nghttp2_session *s;
	zh__h2s_t *streams;	   /* every stream with state, for teardown */
	zh__h2s_t *ready, *ready_tail; /* streams to drive after this turn's I/O */
	uint32_t nstreams;
	bool in_turn, writing, broken, goaway, goaway_sent, dead, headers_open, blocked, yielded;
	/* abuse accounting: a one-second window */
	uint64_t window_start_ms;
	uint32_t resets, control;
	/* input paused by a stream without room (zh__h2s_data): its chunk, and the rest of
	 * the receive buffer still to feed to nghttp2 */
	zh__h2s_t *paused;
	int32_t paused_id;
	const uint8_t *paused_data;
	size_t paused_len;
	uint32_t in_off, in_len;
	uint16_t nout, out_head;
	uint32_t copy_used;
	zh__h2obuf_t *ob; /* lent while output waits (nout > out_head), else NULL */
};

/* ---- a stream ------------------------------------------------------------------------------- */

struct zh__h2s {
	zh__h2c_t *h;
	int32_t id;
	zh__conn_t *sc;	   /* the exchange's slot; NULL once it ended */
	zh__h2s_t *next, *prev, *ready_next;
	uint64_t inflight; /* bytes of sc's queue in the connection's output, not yet sent */
	uint64_t promised; /* bytes a read callback announced, not yet placed */
	uint32_t fill;	   /* head bytes written into sc's receive buffer */
	char *tr_buf;	   /* trailer lines kept until the body ends (pool), or NULL */
	uint32_t tr_len;
	uint64_t chunk_size; /* a body without content-length, as chunked coding: the chunk */
	uint32_t chunk_off;  /* being written (its DATA frame) and the place in its phase: */
	uint8_t chunk_phase; /* 0 none, 1 size line, 2 data, 3 CRLF */
	bool on_ready, busy, closed, reset, head_done, delivered, submitted, body_done, eof_framed,
		kill, too_large, no_body, cl, term_pending, trailers;
};

/* h2_stream.c */
extern const zh__proto_t zh__h2_stream_proto;
extern const zh__transport_t zh__h2_stream_transport;
zh__h2s_t *zh__h2s_open(zh__h2c_t *h, int32_t id);
void zh__h2s_maybe_free(zh__h2s_t *s);
int zh__h2s_header(zh__h2s_t *s, const uint8_t *name, size_t nlen, const uint8_t *value,
		   size_t vlen);
int zh__h2s_head_end(zh__h2s_t *s, bool end_stream);
int zh__h2s_data(zh__h2s_t *s, const uint8_t *data, size_t len, size_t *taken);
int zh__h2s_data_end(zh__h2s_t *s);
bool zh__h2s_term(zh__h2s_t *s);
void zh__h2s_drop_trailers(zh__h2s_t *s);
ssize_t zh__h2s_read(zh__h2s_t *s, uint8_t *buf, size_t length, uint32_t *flags);
int zh__h2s_send_data(zh__h2s_t *s, const uint8_t *framehd, size_t length);

/* h2.c */
zh__h2w_t *zh__h2w(zh__worker_t *w);
zh__h2w_t *zh__h2w_here(void); /* this worker thread's, once it served HTTP/2 */
int zh__h2_out_refs(zh__h2c_t *h, zh__h2s_t *st, uint64_t skip, size_t len);
ssize_t zh__h2_read_cb(nghttp2_session *s, int32_t id, uint8_t *buf, size_t length,
		       uint32_t *flags, nghttp2_data_source *src, void *ud);
uint32_t zh__h2_slot(const zh__worker_t *w, const zh__conn_t *c);
void zh__h2_ready(zh__h2s_t *s);		/* drive s's exchange after this turn's I/O */
void zh__h2_kick(zh__h2c_t *h);		/* output waits: a turn soon if not in one */
int zh__h2_io(zh__h2c_t *h);		/* the socket now: write, read; -1 broken */
void zh__h2_terminate(zh__h2c_t *h, uint32_t code); /* GOAWAY with code, then close */

#endif
