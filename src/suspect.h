/* Suspicion from TCP_INFO (internal; conn_suspect.c). */
#ifndef VIGIL_SUSPECT_H
#define VIGIL_SUSPECT_H

#include "vigil.h"

void vigil__conn_suspect_check(vigil_conn *c);
/* Reads TCP_INFO to tell a keepalive kill from a user-timeout kill. */
vigil_reason vigil__timedout_reason(vigil_conn *c);

#endif
