/*
 * Error names and messages.
 *
 * One row per vigil_err, indexed by -code. Codes are only ever appended
 * (vigil.h), so a new code is a new row at the end; the static assert below
 * catches a table that falls out of step with the enum.
 */
#include <stddef.h>

#include "vigil.h"

typedef struct err_row {
  const char *name;
  const char *text;
} err_row;

static const err_row k_errors[] = {
    [0] = {"VIGIL_OK", "success"},
    [-VIGIL_EINVAL] = {"VIGIL_EINVAL", "invalid argument or policy"},
    [-VIGIL_ENOMEM] = {"VIGIL_ENOMEM", "out of memory"},
    [-VIGIL_EBADF] = {"VIGIL_EBADF", "file descriptor is not open"},
    [-VIGIL_ENOTSOCK] = {"VIGIL_ENOTSOCK", "file descriptor is not a socket"},
    [-VIGIL_ENOTTCP] = {"VIGIL_ENOTTCP",
                        "socket is not a TCP stream socket"},
    [-VIGIL_ENOTCONN] = {"VIGIL_ENOTCONN", "socket is not connected"},
    [-VIGIL_ECLOSED] = {"VIGIL_ECLOSED", "connection is closing or closed"},
    [-VIGIL_EOVERFLOW] = {"VIGIL_EOVERFLOW",
                          "output queue limit would be exceeded"},
    [-VIGIL_ESYS] = {"VIGIL_ESYS", "system call failed (see errno)"},
    [-VIGIL_EEXIST] = {"VIGIL_EEXIST", "already set or already exists"},
    [-VIGIL_ENOENT] = {"VIGIL_ENOENT", "no such object"},
    [-VIGIL_EPERM] = {"VIGIL_EPERM", "operation not permitted"},
    [-VIGIL_ENOTSUP] = {"VIGIL_ENOTSUP",
                        "not supported by this kernel or build"},
    [-VIGIL_ETLS] = {"VIGIL_ETLS", "TLS library error"},
    [-VIGIL_EREJECTED] = {"VIGIL_EREJECTED",
                          "identity claim rejected by takeover policy"},
    [-VIGIL_EBANNED] = {"VIGIL_EBANNED",
                        "identity is banned after flapping"},
    [-VIGIL_EPROTO] = {"VIGIL_EPROTO", "malformed protocol input"},
    [-VIGIL_EAGAIN] = {"VIGIL_EAGAIN", "resource temporarily unavailable"},
    [-VIGIL_ESTATE] = {"VIGIL_ESTATE",
                       "operation not valid in the connection's state"},
    [-VIGIL_EADDR] = {"VIGIL_EADDR", "bad or unresolvable address"},
};

#define ERR_COUNT (sizeof k_errors / sizeof k_errors[0])

_Static_assert(ERR_COUNT == (size_t)(-VIGIL_EADDR) + 1,
               "k_errors must have one row per vigil_err");

/* The row for err, or NULL when err is not a known code. */
static const err_row *find(int err) {
  if (err > 0 || err < -(int)(ERR_COUNT - 1)) return NULL;
  const err_row *r = &k_errors[-err];
  return r->name ? r : NULL;
}

const char *vigil_strerror(int err) {
  const err_row *r = find(err);
  return r ? r->text : "unknown error";
}

const char *vigil_err_name(int err) {
  const err_row *r = find(err);
  return r ? r->name : "VIGIL_E?";
}
