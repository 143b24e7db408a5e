/*
 * Error names and messages, and the per-thread record of an error's cause
 * (vigil_last_error).
 *
 * One row per vigil_err, indexed by -code. Codes are only ever appended
 * (vigil.h), so a new code is a new row at the end; the static assert below
 * catches a table that falls out of step with the enum.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "error.h"
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
    [-VIGIL_ESYS] = {"VIGIL_ESYS",
                     "system call failed (see vigil_last_error)"},
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

/* ---- the cause of the last error ---- */

/* Per thread: a hub is single-threaded, and a host reading the record
 * right after a failed call sees that call's cause. */
static __thread struct {
  vigil_error_info info;
  char call[64];
  char message[256];
} last = {{VIGIL_OK, 0, "", ""}, "", ""};

const vigil_error_info *vigil_last_error(void) { return &last.info; }

/* Fills the record; message is "call<sep>text". */
static int record(int code, const char *call, int err, const char *sep,
                  const char *text) {
  int saved = errno;
  snprintf(last.call, sizeof last.call, "%s", call);
  snprintf(last.message, sizeof last.message, "%s%s%s", call, sep, text);
  last.info.code = code;
  last.info.sys_errno = err;
  last.info.call = last.call;
  last.info.message = last.message;
  errno = saved;
  return code;
}

int vigil__error_set(int code, const char *call, int err) {
  char buf[128];
  const char *text = err ? strerror_r(err, buf, sizeof buf) : "failed";
  return record(code, call, err, ": ", text);
}

int vigil__error_detail(int code, const char *call, const char *detail) {
  return record(code, call, 0, ": ", detail);
}

int vigil__err_from_errno(int e) {
  switch (e) {
  case EBADF: return VIGIL_EBADF;
  case ENOTSOCK: return VIGIL_ENOTSOCK;
  case ENOTCONN: return VIGIL_ENOTCONN;
  case ENOMEM:
  case ENOBUFS: return VIGIL_ENOMEM;
  case EPERM:
  case EACCES: return VIGIL_EPERM;
  case ENOPROTOOPT:
  case EOPNOTSUPP: return VIGIL_ENOTSUP;
  default: return VIGIL_ESYS;
  }
}

int vigil__error_sys(const char *call, int err) {
  return vigil__error_set(vigil__err_from_errno(err), call, err);
}

int vigil__textf(char *buf, size_t len, int rc, const char *fmt, ...) {
  if (buf && len) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
  }
  return rc;
}
