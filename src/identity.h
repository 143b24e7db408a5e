/*
 * The identity index (internal; identity.c): identity bytes -> the entry
 * naming the conn that holds it. The takeover rules that decide who may
 * hold an identity are takeover.c's.
 */
#ifndef VIGIL_IDENTITY_H
#define VIGIL_IDENTITY_H

#include <stddef.h>
#include <stdint.h>

#include "vigil.h"

/* Identities longer than this are refused (MQTT client ids fit). */
#define VIGIL__ID_MAX_LEN 65535u
/* Slices of the flapping window (takeover.c). */
#define VIGIL__FLAP_SLICES 16u

typedef struct vigil__id_entry vigil__id_entry;

struct vigil__id_entry {
  vigil__id_entry *next;
  uint64_t hash;
  vigil_conn *conn;      /* current holder; NULL = none (ban only) */
  uint64_t epoch;        /* holder's epoch; 0 with no holder */
  uint64_t ban_until;    /* hub clock ms; 0 = not banned */
  /* flapping bookkeeping (takeover.c) */
  uint64_t slice_head;   /* index (now / slice_ms) of the newest slice */
  uint32_t slice_ms;     /* slice width the counts were taken with */
  uint32_t slices[VIGIL__FLAP_SLICES];
  uint8_t flapping;      /* "flapping" reported for this episode */
  uint8_t pinned;        /* inside a host callback: do not free */
  size_t len;
  char id[];             /* len bytes + NUL */
};

/* The entry for id at `now`, created without a holder if there is none;
 * a ban that ran out is lifted first. NULL on ENOMEM. */
vigil__id_entry *vigil__identity_entry(vigil_hub *hub, const void *id,
                                       size_t len, uint64_t now);
/* Makes c the holder of e under a fresh epoch. */
void vigil__identity_install(vigil_hub *hub, vigil__id_entry *e,
                             vigil_conn *c);
/* Frees e if nothing needs it any more: no holder, no running ban, not
 * pinned. */
void vigil__identity_drop_idle(vigil_hub *hub, vigil__id_entry *e,
                               uint64_t now);
/* The conn holding id, or NULL. */
vigil_conn *vigil__identity_holder(vigil_hub *hub, const void *id,
                                   size_t len);
/* Gives c's identity back to the index (epoch-guarded): at close. */
void vigil__identity_release(vigil_conn *c);
/* Frees the hub's index. */
void vigil__identity_hub_free(vigil_hub *hub);

#endif
