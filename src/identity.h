/*
 * A conn's hold on an identity (internal; identity.c): the directory a hub
 * claims in (its group's, or its own), and what the conn side tells it as
 * the conn lives on: that it stops staying (leaving), that it closed
 * (release). Which claims may take an identity is takeover.c's.
 */
#ifndef VIGIL_IDENTITY_H
#define VIGIL_IDENTITY_H

#include <stddef.h>

#include "directory.h"
#include "vigil.h"

/* The directory the hub's conns claim in: the group's, or the hub's own,
 * made on first use (NULL on ENOMEM). */
vigil__dir *vigil__identity_dir(vigil_hub *hub);
/* c stops staying (peer FIN, or closing): its identity is no longer
 * contested. Once per conn; no-op without an identity. */
void vigil__identity_leaving(vigil_conn *c);
/* c's certificate now proves the identity it holds. */
void vigil__identity_proven(vigil_conn *c);
/* c closed: gives its identity back (if it still holds it) and drops its
 * hold. */
void vigil__identity_release(vigil_conn *c);
/* The conn of hub holding id, or NULL. */
vigil_conn *vigil__identity_holder(vigil_hub *hub, const void *id,
                                   size_t len);
/* Frees the hub's own directory. */
void vigil__identity_hub_free(vigil_hub *hub);

#endif
