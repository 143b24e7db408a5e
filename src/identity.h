/* Identity index and takeover (internal; identity.c). */
#ifndef VIGIL_IDENTITY_H
#define VIGIL_IDENTITY_H

#include "vigil.h"

/* Gives c's identity back to the index (epoch-guarded). */
void vigil__identity_release(vigil_conn *c);
/* Frees the hub's index. */
void vigil__identity_hub_free(vigil_hub *hub);

#endif
