/* protobuf.c — zh_send_protobuf(): protobuf-c packs a message straight into the response.
 *
 * protobuf_c_message_pack_to_buffer() walks the message once and hands its output to a
 * ProtobufCBuffer in small pieces (tags, varints, string bytes). Our buffer's append puts
 * each piece in the connection's send area with zh__write_encoded(), where adjacent pieces
 * coalesce into one iovec: no intermediate buffer, no heap allocation, no second copy.
 */
#include "ext.h"

#include <errno.h>
#include <protobuf-c/protobuf-c.h>

typedef struct {
	ProtobufCBuffer base; /* first: protobuf-c calls append with &sink->base */
	zh_response_t *resp;
	int err;	      /* sticky: the first failed write; later pieces are dropped */
} sink_t;

static void sink_append(ProtobufCBuffer *buf, size_t len, const uint8_t *data)
{
	sink_t *s = (sink_t *)buf;
	if (ZH__LIKELY(s->err == 0) && len)
		s->err = zh__write_encoded(s->resp, data, len);
}

int zh_send_protobuf(zh_response_t *resp, const struct ProtobufCMessage *msg)
{
	sink_t sink = {{sink_append}, resp, 0};
	int r;
	if (msg == NULL)
		return -EINVAL;
	/* also after an explicit zh_write_header(), while the head has not left */
	if (!zh__ext_in_hooks(resp) && (r = zh__resp_content_type(resp, "application/x-protobuf")) < 0)
		return r;
	/* commits (an empty message packs to no bytes at all) and refuses what zh_write
	 * refuses (204/304, commit hooks, a failed response) before anything is packed */
	if ((r = zh__write_encoded(resp, NULL, 0)) < 0)
		return r;
	protobuf_c_message_pack_to_buffer(msg, &sink.base);
	return sink.err;
}
