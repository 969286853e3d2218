/* ext_exports.h — the core internals that the feature libraries (libzerohttp-gzip,
 * -protobuf, -auth; see the Makefile's "Libraries") call across the shared-library boundary:
 * the extension interface of src/ext.h.
 *
 * The library is compiled with -fvisibility=hidden, so only ZH_API names leave
 * libzerohttp.so; a hidden symbol cannot be linked from another .so. The Makefile forces this
 * header in (-include) before each PIC object's own includes, so ext.h's declarations are
 * seen first with default visibility and keep it. Nothing else includes it; the static
 * archives do not need it (one link, no boundary). The feature .so files link with
 * --no-undefined, so a feature that reaches past ext.h fails the build rather than a
 * program at load time. */
#ifndef ZH_EXT_EXPORTS_H
#define ZH_EXT_EXPORTS_H

#pragma GCC visibility push(default)
#include "ext.h"
#include "proto_exports.h"
#pragma GCC visibility pop

#endif
