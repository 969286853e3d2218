/* ext_exports.h — the core internals that the feature libraries (libzerohttp-gzip,
 * -protobuf, -auth; see the Makefile's "Libraries") call across the shared-library boundary.
 *
 * The library is compiled with -fvisibility=hidden, so only ZH_API names leave
 * libzerohttp.so; a hidden symbol cannot be linked from another .so. The Makefile forces this
 * header in (-include) before each PIC object's own includes, so these first declarations
 * give the functions below default visibility and the later ones in internal.h keep it.
 * Nothing else includes it; the static archives do not need it (one link, no boundary).
 *
 * The list is the features' remaining reach into the core beyond the public API: each name
 * that becomes public (or leaves the features) leaves this list. Keep it in step with
 * internal.h; the feature .so files link with --no-undefined, so a missing entry fails the
 * build rather than a program at load time. */
#ifndef ZH_EXT_EXPORTS_H
#define ZH_EXT_EXPORTS_H
#include <stdbool.h>
#include <stddef.h>
#include "zerohttp.h"

ZH_API bool zh__ieq(const char *a, const char *b, size_t len);                 /* gzip, auth */
ZH_API int zh__coding_q(zh_slice_t accept_encoding, const char *coding);      /* gzip */
ZH_API bool zh__valid_field_value(const char *p, size_t len);                  /* auth */
ZH_API int zh__resp_content_type(zh_response_t *resp, const char *type);      /* protobuf */
ZH_API int zh__write_encoded(zh_response_t *resp, const void *data, size_t len); /* protobuf */

#endif
