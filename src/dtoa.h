/* dtoa.h — shortest round-trip text for a double, in JSON number syntax (see dtoa.c). */
#ifndef ZH_DTOA_H
#define ZH_DTOA_H
#include <stddef.h>
enum { ZH__DTOA_MAX = 32 };            /* longest output incl. sign and exponent, no NUL */
/* Writes finite v as the shortest decimal that reads back (strtod) as exactly v, in JSON
 * number syntax; returns the length. No NUL is written. v must be finite. */
size_t zh__dtoa(double v, char *out);
#endif
