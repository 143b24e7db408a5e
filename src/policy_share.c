/*
 * Policies shared by reference. A policy is immutable once shared: the
 * hub's current policy, a listener's adoption policy and every conn
 * adopted under one of them point at the same copy. Replacing a policy
 * (vigil_hub_set_policy, vigil_conn_set_policy) makes a new copy, so a
 * live conn keeps the policy it was adopted with until it is given
 * another one itself, and a conn costs no policy allocation of its own.
 */
#include <stdlib.h>

#include "policy_share.h"
#include "util.h"

typedef struct shared_policy {
  uint32_t refs;
  vigil_policy p;
} shared_policy;

static shared_policy *shared_of(const vigil_policy *p) {
  return vigil__container_of(p, shared_policy, p);
}

const vigil_policy *vigil__policy_new(const vigil_policy *p) {
  shared_policy *s = malloc(sizeof *s);
  if (!s) return NULL;
  s->refs = 1;
  if (p)
    s->p = *p;
  else
    vigil_policy_init(&s->p);
  return &s->p;
}

const vigil_policy *vigil__policy_ref(const vigil_policy *p) {
  shared_of(p)->refs++;
  return p;
}

void vigil__policy_unref(const vigil_policy *p) {
  if (p && --shared_of(p)->refs == 0) free(shared_of(p));
}
