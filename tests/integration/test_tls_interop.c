/*
 * Interop with TLS stacks nobody here wrote: `openssl s_client` against
 * the echo_server example (echo, close_notify on server shutdown,
 * session resumption, client certificates as identity) and
 * mosquitto_sub/mosquitto_pub against the mqtt_gateway example over TLS.
 *
 * The programs come from VIGIL_BUILD_DIR (set by ctest); a missing
 * example or client tool makes the test SKIP, not fail.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tlsfix.h"

#define OUT_CAP 65536

typedef struct proc {
  pid_t pid;
  int in, out, err; /* our ends; -1 once closed */
  char obuf[OUT_CAP], ebuf[OUT_CAP];
  size_t olen, elen;
  int status;       /* wait status once reaped */
  int reaped;
} proc;

static char echo_server[TF_PATH], mqtt_gateway[TF_PATH];

static int have_program(const char *name) {
  char cmd[TF_PATH + 32];
  snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", name);
  return system(cmd) == 0;
}

static int setup(void **state) {
  (void)state;
  const char *b = getenv("VIGIL_BUILD_DIR");
  if (!b) vt_skip("VIGIL_BUILD_DIR not set (run through ctest)");
  snprintf(echo_server, sizeof echo_server, "%s/examples/echo_server", b);
  snprintf(mqtt_gateway, sizeof mqtt_gateway, "%s/examples/mqtt_gateway", b);
  if (access(echo_server, X_OK) != 0) vt_skip("echo_server not built");
  if (!have_program("openssl")) vt_skip("no openssl command");
  signal(SIGPIPE, SIG_IGN);
  return tf_setup(state);
}

static int teardown(void **state) {
  return tf_teardown(state);
}

static void proc_start(proc *p, char *const argv[]) {
  int in[2], out[2], err[2];
  assert_int_equal(pipe(in), 0);
  assert_int_equal(pipe(out), 0);
  assert_int_equal(pipe(err), 0);
  memset(p, 0, sizeof *p);
  p->pid = fork();
  assert_true(p->pid >= 0);
  if (p->pid == 0) {
    dup2(in[0], 0);
    dup2(out[1], 1);
    dup2(err[1], 2);
    for (int fd = 3; fd < 256; fd++) close(fd);
    execvp(argv[0], argv);
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  close(err[1]);
  p->in = in[1];
  p->out = out[0];
  p->err = err[0];
  fcntl(p->out, F_SETFL, O_NONBLOCK);
  fcntl(p->err, F_SETFL, O_NONBLOCK);
}

/* Reads what the child wrote (up to ms of waiting); 0 = both pipes at EOF. */
static int proc_pump(proc *p, int ms) {
  struct pollfd pf[2] = {{.fd = p->out, .events = POLLIN},
                         {.fd = p->err, .events = POLLIN}};
  if (p->out < 0 && p->err < 0) return 0;
  poll(pf, 2, ms);
  int *fds[2] = {&p->out, &p->err};
  char *bufs[2] = {p->obuf, p->ebuf};
  size_t *lens[2] = {&p->olen, &p->elen};
  for (int i = 0; i < 2; i++) {
    if (*fds[i] < 0) continue;
    ssize_t n = read(*fds[i], bufs[i] + *lens[i], OUT_CAP - 1 - *lens[i]);
    if (n > 0) {
      *lens[i] += (size_t)n;
      bufs[i][*lens[i]] = '\0';
    } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
      close(*fds[i]);
      *fds[i] = -1;
    }
  }
  return p->out >= 0 || p->err >= 0;
}

/* Waits until needle shows up on stdout (err_too: or stderr). */
static int proc_expect(proc *p, const char *needle, int err_too, int ms) {
  uint64_t end = vt_now_ms() + (uint64_t)ms;
  while (vt_now_ms() < end) {
    if (strstr(p->obuf, needle) || (err_too && strstr(p->ebuf, needle)))
      return 1;
    if (!proc_pump(p, 20) && !strstr(p->obuf, needle)) break;
  }
  return strstr(p->obuf, needle) || (err_too && strstr(p->ebuf, needle));
}

/* Waits for the child to exit on its own within ms; kills it otherwise.
 * Returns its exit code, or -1 when it had to be killed. */
static int proc_wait(proc *p, int ms) {
  uint64_t end = vt_now_ms() + (uint64_t)ms;
  while (!p->reaped && vt_now_ms() < end) {
    proc_pump(p, 10);
    if (waitpid(p->pid, &p->status, WNOHANG) == p->pid) p->reaped = 1;
  }
  if (!p->reaped) {
    kill(p->pid, SIGKILL);
    waitpid(p->pid, &p->status, 0);
    p->reaped = 1;
    while (proc_pump(p, 10)) {
    }
    return -1;
  }
  while (proc_pump(p, 10)) {
  }
  return WIFEXITED(p->status) ? WEXITSTATUS(p->status) : -1;
}

static void proc_done(proc *p) {
  if (!p->reaped) proc_wait(p, 0);
  if (p->in >= 0) close(p->in);
  if (p->out >= 0) close(p->out);
  if (p->err >= 0) close(p->err);
}

static void say(proc *p, const char *s) {
  assert_int_equal(write(p->in, s, strlen(s)), (ssize_t)strlen(s));
}

/* Starts a server printing "listening on HOST:PORT"; returns the port. */
static unsigned start_server(proc *srv, char *const argv[]) {
  proc_start(srv, argv);
  if (!proc_expect(srv, "\n", 0, 5000))
    fprintf(stderr, "server stderr:\n%s\n", srv->ebuf);
  const char *colon = strrchr(srv->obuf, ':');
  assert_non_null(colon);
  unsigned port = (unsigned)strtoul(colon + 1, NULL, 10);
  assert_true(port > 0);
  return port;
}

static void s_client_argv(char *argv[], char *target, unsigned port,
                          const char *extra1, const char *extra2,
                          const char *extra3, const char *extra4) {
  snprintf(target, 32, "127.0.0.1:%u", port);
  int i = 0;
  argv[i++] = "openssl";
  argv[i++] = "s_client";
  argv[i++] = "-connect";
  argv[i++] = target;
  argv[i++] = "-servername";
  argv[i++] = "localhost";
  argv[i++] = "-CAfile";
  argv[i++] = tf_test_pki.ca;
  argv[i++] = "-verify_return_error";
  argv[i++] = "-quiet";
  const char *extra[] = {extra1, extra2, extra3, extra4};
  for (int k = 0; k < 4; k++)
    if (extra[k]) argv[i++] = (char *)extra[k];
  argv[i] = NULL;
}

static void test_s_client_echo_and_close_notify(void **state) {
  (void)state;
  char *sargv[] = {echo_server, "--listen", "127.0.0.1:0", "--tls-cert",
                   tf_test_pki.server_cert, "--tls-key", tf_test_pki.server_key, NULL};
  proc srv;
  unsigned port = start_server(&srv, sargv);
  char sess[TF_PATH + 32], target[32];
  snprintf(sess, sizeof sess, "%s/s_client.sess", tf_test_pki.dir);

  /* 1: full handshake, echo, keep the session. */
  char *cargv[16];
  s_client_argv(cargv, target, port, "-sess_out", sess, NULL, NULL);
  proc cli;
  proc_start(&cli, cargv);
  say(&cli, "hello vigil\n");
  assert_true(proc_expect(&cli, "hello vigil\n", 0, 5000));
  assert_true(proc_expect(&srv, "tls_resumed=0 detail=tls", 1, 2000));
  kill(cli.pid, SIGTERM);
  proc_wait(&cli, 2000);
  proc_done(&cli);

  /* 2: resumed from the saved session; then the server shuts down. */
  s_client_argv(cargv, target, port, "-sess_in", sess, NULL, NULL);
  proc_start(&cli, cargv);
  say(&cli, "again\n");
  assert_true(proc_expect(&cli, "again\n", 0, 5000));
  assert_true(proc_expect(&srv, "tls_resumed=1 detail=tls", 1, 2000));
  kill(srv.pid, SIGTERM);
  /* s_client ends by itself, cleanly, with stdin still open: it got
   * close_notify. A truncation would exit 1 with "unexpected eof". */
  int rc = proc_wait(&cli, 5000);
  if (rc != 0) fprintf(stderr, "s_client stderr:\n%s\n", cli.ebuf);
  assert_int_equal(rc, 0);
  assert_null(strstr(cli.ebuf, "unexpected eof"));
  assert_null(strstr(cli.ebuf, ":error:"));
  assert_int_equal(proc_wait(&srv, 5000), 0);
  /* The first client was killed without close_notify: truncation. The
   * second one saw our close_notify and answered; no truncation. */
  const char *c1 = strstr(srv.ebuf, "event=close conn=1 ");
  const char *c2 = strstr(srv.ebuf, "event=close conn=2 ");
  assert_non_null(c1);
  assert_non_null(c2);
  assert_true(strstr(c1, "truncated=1") < strchr(c1, '\n'));
  assert_non_null(strstr(c2, "reason=shutdown"));
  const char *t2 = strstr(c2, "truncated=1");
  assert_true(!t2 || t2 > strchr(c2, '\n'));
  proc_done(&cli);
  proc_done(&srv);
}

static void test_s_client_certificates(void **state) {
  (void)state;
  char cert[TF_PATH], key[TF_PATH], target[32];
  tf_pki_client(&tf_test_pki, "device42", "device-42", NULL, 0, cert, key);
  char *sargv[] = {echo_server, "--listen", "127.0.0.1:0", "--tls-cert",
                   tf_test_pki.server_cert, "--tls-key", tf_test_pki.server_key, "--tls-ca",
                   tf_test_pki.ca, "--require-client-cert", "--identity-from-cert",
                   NULL};
  proc srv;
  unsigned port = start_server(&srv, sargv);
  char *cargv[16];
  s_client_argv(cargv, target, port, "-cert", cert, "-key", key);
  proc cli;
  proc_start(&cli, cargv);
  say(&cli, "who am i\n");
  assert_true(proc_expect(&cli, "who am i\n", 0, 5000));
  assert_true(proc_expect(&srv, "identity=device-42", 1, 2000));
  /* The client ends the session properly: no truncation reported. */
  close(cli.in);
  cli.in = -1;
  kill(cli.pid, SIGTERM);
  proc_wait(&cli, 2000);
  proc_done(&cli);
  /* Without a certificate: refused, with OpenSSL's reason logged. */
  s_client_argv(cargv, target, port, NULL, NULL, NULL, NULL);
  proc_start(&cli, cargv);
  say(&cli, "anyone?\n");
  assert_true(proc_expect(&srv, "detail=\"peer did not return a certificate\"",
                          1, 5000));
  assert_non_null(strstr(srv.ebuf, "reason=tls_error"));
  assert_true(proc_wait(&cli, 5000) != 0);
  proc_done(&cli);
  kill(srv.pid, SIGTERM);
  assert_int_equal(proc_wait(&srv, 5000), 0);
  proc_done(&srv);
}

static void test_mosquitto_over_tls(void **state) {
  (void)state;
  if (access(mqtt_gateway, X_OK) != 0) vt_skip("mqtt_gateway not built");
  if (!have_program("mosquitto_sub") || !have_program("mosquitto_pub"))
    vt_skip("no mosquitto clients");
  char cert[TF_PATH], key[TF_PATH];
  tf_pki_client(&tf_test_pki, "sensor7", "sensor-7", NULL, 0, cert, key);
  char *gargv[] = {mqtt_gateway, "--listen", "127.0.0.1:0", "--tls-cert",
                   tf_test_pki.server_cert, "--tls-key", tf_test_pki.server_key, "--tls-ca",
                   tf_test_pki.ca, "--identity-from-cert", NULL};
  proc gw;
  unsigned port = start_server(&gw, gargv);
  char portstr[8];
  snprintf(portstr, sizeof portstr, "%u", port);
  /* A subscriber with a certificate whose CN is its client id. */
  char *sub_argv[] = {"mosquitto_sub", "-h", "127.0.0.1", "-p", portstr,
                      "--cafile", tf_test_pki.ca, "--cert", cert, "--key", key,
                      "-i", "sensor-7", "-t", "lab/+/temp", "-C", "1",
                      "-W", "8", NULL};
  proc sub;
  proc_start(&sub, sub_argv);
  assert_true(proc_expect(&gw, "identity=sensor-7", 1, 5000));
  assert_true(proc_expect(&gw, "mqtt_connect", 1, 5000) ||
              strstr(gw.obuf, "mqtt_connect"));
  /* Give the SUBSCRIBE a moment to land before publishing. */
  proc_expect(&gw, "mqtt_subscribe", 1, 1000);
  char *pub_argv[] = {"mosquitto_pub", "-h", "127.0.0.1", "-p", portstr,
                      "--cafile", tf_test_pki.ca, "-i", "pub-1", "-t",
                      "lab/3/temp", "-m", "21.5", NULL};
  proc pub;
  proc_start(&pub, pub_argv);
  int rc = proc_wait(&pub, 5000);
  if (rc != 0)
    fprintf(stderr, "mosquitto_pub: %s%s\ngateway:\n%s%s\n", pub.obuf,
            pub.ebuf, gw.obuf, gw.ebuf);
  assert_int_equal(rc, 0);
  assert_int_equal(proc_wait(&sub, 5000), 0);
  assert_non_null(strstr(sub.obuf, "21.5"));
  /* A client whose id is not the one its certificate proves. */
  char *liar_argv[] = {"mosquitto_pub", "-h", "127.0.0.1", "-p", portstr,
                       "--cafile", tf_test_pki.ca, "--cert", cert, "--key", key,
                       "-i", "sensor-8", "-t", "lab/3/temp", "-m", "x",
                       NULL};
  proc liar;
  proc_start(&liar, liar_argv);
  assert_true(proc_wait(&liar, 5000) != 0);
  assert_true(proc_expect(&gw, "reason=takeover_rejected", 1, 2000));
  assert_true(proc_expect(&gw, "identity not proven by certificate", 1, 100));
  proc_done(&pub);
  proc_done(&sub);
  proc_done(&liar);
  kill(gw.pid, SIGTERM);
  assert_int_equal(proc_wait(&gw, 8000), 0);
  proc_done(&gw);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_s_client_echo_and_close_notify),
      cmocka_unit_test(test_s_client_certificates),
      cmocka_unit_test(test_mosquitto_over_tls),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
