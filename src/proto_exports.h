/* proto_exports.h — the core internals a protocol in a library of its own (libzerohttp-h2)
 * calls across the shared-library boundary: the protocol and transport seams and the
 * connection driver (declared, with their contracts, in internal.h). ext_exports.h gives
 * them default visibility in the PIC objects; the features never include internal.h, so
 * the wall of ext.h stands for them. */
#ifndef ZH_PROTO_EXPORTS_H
#define ZH_PROTO_EXPORTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct zh__conn;
struct zh__ctx;
struct zh__worker;
struct zh__proto;
struct zh__transport;
struct zh__limits;
struct zh_request;

extern const struct zh__proto *zh__protos[4];
extern const struct zh__transport *zh__transports[4];
int zh__proto_register(const struct zh__proto *p);
int zh__transport_register(const struct zh__transport *t);
struct zh__conn *zh__conn_virtual_open(struct zh__worker *w, const struct zh__conn *parent,
				       uint8_t tr, uint8_t proto);
void zh__conn_drive(struct zh__worker *w, struct zh__conn *c);
void zh__conn_close(struct zh__worker *w, struct zh__conn *c);
void zh__conn_linger(struct zh__worker *w, struct zh__conn *c);
struct zh__ctx *zh__conn_ctx_attach(struct zh__worker *w, struct zh__conn *c);
void zh__conn_ctx_detach(struct zh__worker *w, struct zh__conn *c);
void zh__out_consume(struct zh__ctx *ctx, size_t n);
bool zh__body_read_target(struct zh__ctx *ctx, char **dst, size_t *cap);
int zh__h1_body_start(struct zh__ctx *ctx);
int zh__h1_body_feed(struct zh__ctx *ctx);
ssize_t zh__h1_body_read(struct zh_request *req, char *buf, size_t cap);
void zh__conn_set_timer(struct zh__worker *w, struct zh__conn *c, int kind);

#endif
