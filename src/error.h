/*
 * Recording why an error happened (internal; error.c): the thread's
 * vigil_last_error() record. Every place that returns an error that came
 * from a system call or OpenSSL records it on the way out; errno is left
 * as the failed call set it.
 */
#ifndef VIGIL_ERROR_H
#define VIGIL_ERROR_H

#include "vigil.h"

/* Records that `call` failed with errno err (0: none) as the cause of
 * code; returns code. The message is "call: strerror(err)". */
int vigil__error_set(int code, const char *call, int err);
/* Records a failure OpenSSL (or another library without errno) described
 * in detail: message "call: detail"; returns code. */
int vigil__error_detail(int code, const char *call, const char *detail);
/* Formats into buf (NUL-terminated when len > 0; NULL buf is fine) and
 * returns rc, so that a check can say why and fail in one statement:
 * every validator's "names the field and its range" message. */
int vigil__textf(char *buf, size_t len, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Maps an errno value to a vigil_err: EBADF, ENOTSOCK, ENOTCONN,
 * ENOMEM/ENOBUFS, EPERM/EACCES, ENOPROTOOPT/EOPNOTSUPP (-> VIGIL_ENOTSUP)
 * get their own codes; everything else is VIGIL_ESYS. */
int vigil__err_from_errno(int e);
/* vigil__error_set(vigil__err_from_errno(err), call, err). */
int vigil__error_sys(const char *call, int err);

#endif
