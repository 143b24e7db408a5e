/* Suspicion from TCP_INFO (internal; suspect.c). */
#ifndef VIGIL_SUSPECT_H
#define VIGIL_SUSPECT_H

#include "vigil.h"

/* suspect_after of receive silence: reads TCP_INFO and emits "suspect"
 * on evidence. Returns 1 when the caller should ask for a ping now
 * (suspect_ping at the first check of an idle conn, whose silence gives
 * no evidence). */
int vigil__conn_suspect_check(vigil_conn *c);
/* Reads TCP_INFO to tell a keepalive kill from a user-timeout kill. */
vigil_reason vigil__timedout_reason(vigil_conn *c);

#endif
