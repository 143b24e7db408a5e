/*
 * Policies shared by reference (internal; policy_share.c). A shared policy
 * is immutable: replacing one makes a new copy.
 */
#ifndef VIGIL_POLICY_SHARE_H
#define VIGIL_POLICY_SHARE_H

#include "vigil.h"

/* A shared copy of p (vigil_policy_init() defaults for NULL) with one
 * reference; NULL on ENOMEM. */
const vigil_policy *vigil__policy_new(const vigil_policy *p);
const vigil_policy *vigil__policy_ref(const vigil_policy *p);
/* Drops a reference (NULL is ignored). */
void vigil__policy_unref(const vigil_policy *p);

#endif
