/* Frame codec layer on a connection (internal; conn_codec.c,
 * policy.frame_codec). */
#ifndef VIGIL_CONN_CODEC_H
#define VIGIL_CONN_CODEC_H

#include <stddef.h>

#include "vigil.h"

/* Parses received bytes into frames: DATA -> on_data, HELLO -> on_hello,
 * PING -> PONG reply, GOODBYE -> peer-first close. */
void vigil__codec_feed(vigil_conn *c, const void *data, size_t len);
/* Sends a PING frame (ping_interval with the codec on). */
void vigil__codec_send_ping(vigil_conn *c);
/* Releases codec state (parser buffer) at free time. */
void vigil__codec_free(vigil_conn *c);
/* Graceful close starting (reason set, state not yet FLUSHING): sends
 * GOODBYE for policy reasons, to make the peer close first. */
void vigil__codec_before_close(vigil_conn *c);
/* Queue empty in FLUSHING: 1 = keep our FIN until the peer's (GOODBYE). */
int vigil__codec_holds_fin(vigil_conn *c);
/* The hold's drain bound passed: 1 = go on with shutdown(SHUT_WR). */
int vigil__codec_release_fin(vigil_conn *c);

#endif
