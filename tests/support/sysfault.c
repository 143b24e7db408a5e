/* See sysfault.h. The __real_ symbols are provided by the linker's
 * --wrap (tests/CMakeLists.txt). */
#include "sysfault.h"

#include <errno.h>
#include <string.h>

int __real_socket(int domain, int type, int protocol);
ssize_t __real_sendto(int fd, const void *buf, size_t len, int flags,
                      const struct sockaddr *to, socklen_t tolen);
int __real_getsockname(int fd, struct sockaddr *sa, socklen_t *len);
int __real_setsockopt(int fd, int level, int name, const void *val,
                      socklen_t len);

int __wrap_socket(int domain, int type, int protocol);
ssize_t __wrap_sendto(int fd, const void *buf, size_t len, int flags,
                      const struct sockaddr *to, socklen_t tolen);
int __wrap_getsockname(int fd, struct sockaddr *sa, socklen_t *len);
int __wrap_setsockopt(int fd, int level, int name, const void *val,
                      socklen_t len);

typedef struct fault {
  int err;         /* 0 = disarmed */
  unsigned skip;   /* calls still to let through */
  unsigned count;  /* failures still to give; 0 = unlimited */
  unsigned calls;
} fault;

static fault faults[SF__COUNT];
static int sso_level, sso_name;
static sf_socket_hook socket_hook;
static sf_sendto_hook sendto_hook;

void sf_fail(sf_call call, int err, unsigned skip, unsigned count) {
  faults[call].err = err;
  faults[call].skip = skip;
  faults[call].count = count;
}

void sf_fail_setsockopt(int level, int name, int err) {
  sso_level = level;
  sso_name = name;
  sf_fail(SF_SETSOCKOPT, err, 0, 0);
}

/* Group workers make these calls from several threads at once: the call
 * counts are atomic (faults themselves are set up by single-threaded
 * tests). */
static void count_call(sf_call call) {
  __atomic_fetch_add(&faults[call].calls, 1, __ATOMIC_RELAXED);
}

unsigned sf_calls(sf_call call) {
  return __atomic_load_n(&faults[call].calls, __ATOMIC_RELAXED);
}
void sf_set_socket_hook(sf_socket_hook hook) { socket_hook = hook; }
void sf_set_sendto_hook(sf_sendto_hook hook) { sendto_hook = hook; }

void sf_reset(void) {
  memset(faults, 0, sizeof faults);
  sso_level = sso_name = 0;
  socket_hook = NULL;
  sendto_hook = NULL;
}

/* 1 if this call must fail (errno is then set). */
static int should_fail(sf_call call) {
  fault *f = &faults[call];
  count_call(call);
  if (!f->err) return 0;
  if (f->skip > 0) {
    f->skip--;
    return 0;
  }
  int err = f->err;
  if (f->count > 0 && --f->count == 0) f->err = 0;
  errno = err;
  return 1;
}

int __wrap_socket(int domain, int type, int protocol) {
  if (should_fail(SF_SOCKET)) return -1;
  if (socket_hook) {
    int r = socket_hook(domain, type, protocol);
    if (r != -2) return r;
  }
  return __real_socket(domain, type, protocol);
}

ssize_t __wrap_sendto(int fd, const void *buf, size_t len, int flags,
                      const struct sockaddr *to, socklen_t tolen) {
  if (should_fail(SF_SENDTO)) return -1;
  if (sendto_hook) {
    ssize_t r = sendto_hook(fd, buf, len, flags, to, tolen);
    if (r != -2) return r;
  }
  return __real_sendto(fd, buf, len, flags, to, tolen);
}

int __wrap_getsockname(int fd, struct sockaddr *sa, socklen_t *len) {
  if (should_fail(SF_GETSOCKNAME)) return -1;
  return __real_getsockname(fd, sa, len);
}

int __wrap_setsockopt(int fd, int level, int name, const void *val,
                      socklen_t len) {
  if ((sso_level || sso_name) && (level != sso_level || name != sso_name)) {
    count_call(SF_SETSOCKOPT);
    return __real_setsockopt(fd, level, name, val, len);
  }
  if (should_fail(SF_SETSOCKOPT)) return -1;
  return __real_setsockopt(fd, level, name, val, len);
}
