/* Frame codec layer on a connection (policy.frame_codec). */
#include "internal.h"

void vigil__codec_feed(vigil_conn *c, const void *data, size_t len) {
  if (c->cb->on_data) c->cb->on_data(c, data, len, c->user_data);
}

void vigil__codec_send_ping(vigil_conn *c) { (void)c; }

void vigil__codec_free(vigil_conn *c) { (void)c; }
