/* The frame codec protocol (internal; proto_frame.c). Its hooks are
 * vigil__protocol_frame (protocol.h). */
#ifndef VIGIL_PROTO_FRAME_H
#define VIGIL_PROTO_FRAME_H

#include <stddef.h>

#include "vigil.h"

/* vigil_send_data without the argument checks and the bracket (the
 * client sends through it). */
int vigil__frame_send_data(vigil_conn *c, const void *payload, size_t len);

#endif
