/* Identity claims and takeover (internal; takeover.c). */
#ifndef VIGIL_TAKEOVER_H
#define VIGIL_TAKEOVER_H

#include <stddef.h>

#include "vigil.h"

/* vigil_conn_identify without the bracket (its returns, vigil.h): the
 * frame codec's HELLO and a TLS certificate's identity claim through it
 * too. Closes c when the claim is refused, and the displaced holder under
 * NEWEST_WINS. */
int vigil__identify(vigil_conn *c, const void *id, size_t len);

#endif
