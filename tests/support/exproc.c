/* See exproc.h. */
#include "exproc.h"

#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

int vt_example_path(const char *name, const char *env_var, char *path,
                    size_t cap) {
  const char *given = env_var ? getenv(env_var) : NULL;
  const char *dir = getenv("VIGIL_BUILD_DIR");
  if (given)
    snprintf(path, cap, "%s", given);
  else
    snprintf(path, cap, "%s/examples/%s", dir ? dir : ".", name);
  return access(path, X_OK) == 0;
}

void vt_proc_start(vt_proc *p, const char *const *argv, int port_fd) {
  memset(p, 0, sizeof *p);
  snprintf(p->log, sizeof p->log, "/tmp/vigil-example-XXXXXX");
  int logfd = mkstemp(p->log);
  assert_true(logfd >= 0);
  int out[2];
  assert_int_equal(pipe(out), 0);
  p->pid = fork();
  assert_true(p->pid >= 0);
  if (p->pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a crashed test */
    dup2(out[1], port_fd);
    dup2(logfd, port_fd == 1 ? 2 : 1);
    close(out[0]);
    execv(argv[0], (char *const *)argv);
    _exit(127);
  }
  close(out[1]);
  close(logfd);
  char line[256] = {0};
  size_t n = 0;
  struct pollfd pfd = {out[0], POLLIN, 0};
  while (n < sizeof line - 1 && !strchr(line, '\n') &&
         poll(&pfd, 1, 5000) == 1) {
    ssize_t r = read(out[0], line + n, sizeof line - 1 - n);
    if (r <= 0) break;
    n += (size_t)r;
  }
  close(out[0]);
  const char *colon = strrchr(line, ':');
  if (!colon) fail_msg("%s announced no port: '%s'", argv[0], line);
  p->port = (uint16_t)atoi(colon + 1);
  assert_true(p->port > 0);
}

int vt_proc_wait_line(const vt_proc *p, char *out, size_t cap,
                      uint32_t timeout_ms, ...) {
  const char *needles[8];
  size_t nn = 0;
  va_list ap;
  va_start(ap, timeout_ms);
  const char *s;
  while ((s = va_arg(ap, const char *)) && nn < 8) needles[nn++] = s;
  va_end(ap);
  uint64_t until = vt_now_ms() + timeout_ms;
  do {
    FILE *f = fopen(p->log, "r");
    char line[4096];
    while (f && fgets(line, sizeof line, f)) {
      size_t k = 0;
      while (k < nn && strstr(line, needles[k])) k++;
      if (k < nn) continue;
      if (out) snprintf(out, cap, "%s", line);
      fclose(f);
      return 1;
    }
    if (f) fclose(f);
    usleep(10000);
  } while (vt_now_ms() < until);
  return 0;
}

int vt_proc_stop(vt_proc *p) {
  int status = 0;
  if (p->pid <= 0) return 0;
  kill(p->pid, SIGTERM);
  uint64_t until = vt_now_ms() + 5000;
  pid_t r;
  while ((r = waitpid(p->pid, &status, WNOHANG)) == 0 && vt_now_ms() < until)
    usleep(10000);
  if (r == 0) {
    kill(p->pid, SIGKILL);
    waitpid(p->pid, &status, 0);
    fail_msg("%s did not exit within 5 s of SIGTERM", p->log);
  }
  p->pid = 0;
  return status;
}

void vt_proc_remove_log(vt_proc *p) {
  if (p->log[0]) unlink(p->log);
  p->log[0] = '\0';
}
