/* parse_scalar.c — src/parse.c once more, without SIMD and with its external names
 * renamed, so that fuzz_parse can run both paths on the same input and compare them. */
#define ZH_NO_SIMD 1
#define zh__parse_head zh__parse_head_scalar
#define zh__chunked_decode zh__chunked_decode_scalar
#define zh__token_char zh__token_char_scalar
#define zh__valid_field_value zh__valid_field_value_scalar
#define zh__valid_token zh__valid_token_scalar
#define zh__ieq zh__ieq_scalar
#include "../../src/parse.c"
