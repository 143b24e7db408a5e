/*
 * An example program (examples/) run by a test as a child process: the
 * stream on which it announces its port ("... listening on HOST:PORT") is
 * read through a pipe, everything else it writes goes to a temporary log
 * file that the test polls for lines. The child dies with the test
 * (PR_SET_PDEATHSIG).
 */
#ifndef VIGIL_EXPROC_H
#define VIGIL_EXPROC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct vt_proc {
  pid_t pid;
  uint16_t port;
  char log[64]; /* the log file's path */
} vt_proc;

/* The path of examples/<name> in $VIGIL_BUILD_DIR, or $env_var when that
 * is set (env_var may be NULL). Returns 1, or 0 when it is not built. */
int vt_example_path(const char *name, const char *env_var, char *path,
                    size_t cap);

/* Runs argv (argv[0] the program, NULL-terminated). port_fd (1 or 2) is
 * the stream that announces the port; the other one goes to p->log.
 * Asserts that the port came within 5 s. */
void vt_proc_start(vt_proc *p, const char *const *argv, int port_fd);

/* Waits until a line of the log holds every needle (NULL-terminated) and
 * copies it to out (may be NULL). Returns 1, or 0 after timeout_ms. */
int vt_proc_wait_line(const vt_proc *p, char *out, size_t cap,
                      uint32_t timeout_ms, ...);

/* SIGTERM, then waits up to 5 s (SIGKILL and a test failure after that).
 * Returns the waitpid status; the log file stays until
 * vt_proc_remove_log. */
int vt_proc_stop(vt_proc *p);
void vt_proc_remove_log(vt_proc *p);

#endif
