/* Identity index and takeover; see vigil_conn_identify in vigil.h. */
#include "internal.h"

void vigil__identity_release(vigil_conn *c) { (void)c; }

void vigil__identity_hub_free(vigil_hub *hub) { (void)hub; }
