/*
 * Adoption (internal; adopt.c): a connected socket becomes a vigil conn.
 * Every check that can fail runs before the fd is touched, so on error
 * the fd is exactly as the caller left it and still the caller's.
 * Neither function brackets re-entrancy: callers are entry points that
 * hold the hub's bracket (vigil_adopt, the listener, the client).
 */
#ifndef VIGIL_ADOPT_H
#define VIGIL_ADOPT_H

#include "vigil.h"

struct sockaddr;

/* A host's fd (vigil_adopt): classified, made non-blocking, given the
 * policy's options (put back if the kernel refuses one). opts->policy
 * NULL = the hub's. */
int vigil__adopt_fd(vigil_hub *hub, int fd, const vigil_adopt_options *opts,
                    vigil_conn **out);

/* A connected non-blocking socket whose peer is known (the listener's
 * accept4): `policy` is a shared policy the conn takes a reference to
 * (opts->policy is not read); `have` the socket options fd is known to
 * carry (inherited from its listener; NULL = unknown): only the others
 * are written. */
int vigil__adopt(vigil_hub *hub, int fd, const struct sockaddr *peer,
                 const vigil_policy *policy, const vigil_sockopts *have,
                 const vigil_adopt_options *opts, vigil_conn **out);

#endif
