/*
 * A conn's hold on an identity: the conn side of the directory
 * (directory.h). A holder is made by a claim (takeover.c) and lives in
 * c->ext->holder until the conn closes; this file reports what changes it
 * on the owning hub's thread.
 *
 * Epoch guard: a conn gives its identity back only if the directory still
 * names its holder (compare-and-release), so a displaced or leaving conn
 * whose close completes later can never remove its successor's record (the
 * race where an old session's late FIN tore down the new one).
 */
#include "conn.h"
#include "hub.h"
#include "identity.h"

vigil__dir *vigil__identity_dir(vigil_hub *hub) {
  if (hub->link) return hub->link->dir;
  if (!hub->own_dir) hub->own_dir = vigil__dir_local_new(0);
  return hub->own_dir;
}

static vigil__holder *holder_of(const vigil_conn *c) {
  return c->ext ? c->ext->holder : NULL;
}

void vigil__identity_leaving(vigil_conn *c) {
  vigil__holder *h = holder_of(c);
  if (!h || h->left) return;
  h->left = 1;
  vigil__dir *d = vigil__identity_dir(c->hub);
  d->ops->update(d, h, 0, h->proven);
}

void vigil__identity_proven(vigil_conn *c) {
  vigil__holder *h = holder_of(c);
  if (!h || h->proven) return;
  vigil__dir *d = vigil__identity_dir(c->hub);
  d->ops->update(d, h, !h->left, 1);
}

void vigil__identity_release(vigil_conn *c) {
  vigil__holder *h = holder_of(c);
  if (!h) return;
  vigil__dir *d = vigil__identity_dir(c->hub);
  h->conn = NULL; /* an eviction still in flight finds nobody */
  d->ops->release(d, h, c->hub->now_ms);
  c->ext->holder = NULL;
  vigil__holder_unref(h);
}

vigil_conn *vigil__identity_holder(vigil_hub *hub, const void *id,
                                   size_t len) {
  vigil__dir *d = hub->link ? hub->link->dir : hub->own_dir;
  return d ? d->ops->find(d, id, len, hub) : NULL;
}

void vigil__identity_hub_free(vigil_hub *hub) {
  if (!hub->own_dir) return;
  hub->own_dir->ops->destroy(hub->own_dir);
  hub->own_dir = NULL;
}
