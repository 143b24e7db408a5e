/*
 * The socket BIO under every TLS conn.
 *
 * OpenSSL's own socket BIO writes with write(2): a peer that reset the
 * connection would raise SIGPIPE and kill a host that did not ignore it,
 * while vigil's plain path promises EPIPE instead (MSG_NOSIGNAL). This BIO
 * sends with MSG_NOSIGNAL, and since every byte passes through it, it is
 * also where raw bytes count as activity: a record trickling in byte by
 * byte is still life for dead_after, exactly as on plain TCP.
 *
 * EOF: OpenSSL 3 asks BIO_eof() after a read returned 0 to tell a TCP
 * close (then "unexpected eof while reading", our truncation signal) from
 * a failed read; the flag is kept in the conn's TLS state.
 */
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>

#include "tls_internal.h"

static BIO_METHOD *method;
static CRYPTO_ONCE method_once = CRYPTO_ONCE_STATIC_INIT;

static int bio_write(BIO *b, const char *buf, int len) {
  vigil_conn *c = BIO_get_data(b);
  BIO_clear_retry_flags(b);
  ssize_t n;
  do
    n = send(c->io.fd, buf, (size_t)len, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  if (n >= 0) {
    if (n > 0) vigil__conn_note_tx(c, (size_t)n);
    return (int)n;
  }
  if (errno == EAGAIN || errno == EWOULDBLOCK)
    BIO_set_retry_write(b);
  else
    vigil__tls_of(c)->bio_errno = errno;
  return -1;
}

static int bio_read(BIO *b, char *buf, int len) {
  vigil_conn *c = BIO_get_data(b);
  BIO_clear_retry_flags(b);
  ssize_t n;
  do
    n = recv(c->io.fd, buf, (size_t)len, 0);
  while (n < 0 && errno == EINTR);
  if (n > 0) {
    vigil__conn_note_rx(c, (size_t)n);
    return (int)n;
  }
  if (n == 0) {
    vigil__tls_of(c)->flags |= VIGIL__TLS_EOF;
    return 0;
  }
  if (errno == EAGAIN || errno == EWOULDBLOCK)
    BIO_set_retry_read(b);
  else
    vigil__tls_of(c)->bio_errno = errno;
  return -1;
}

static int bio_puts(BIO *b, const char *s) {
  size_t n = strlen(s);
  return bio_write(b, s, n > INT_MAX ? INT_MAX : (int)n);
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr) {
  vigil_conn *c = BIO_get_data(b);
  (void)num;
  switch (cmd) {
  case BIO_CTRL_FLUSH:
    return 1; /* nothing buffered here */
  case BIO_CTRL_EOF:
    return (vigil__tls_of(c)->flags & VIGIL__TLS_EOF) != 0;
  case BIO_C_GET_FD: /* SSL_get_fd() */
    if (ptr) *(int *)ptr = c->io.fd;
    return c->io.fd;
  default:
    return 0;
  }
}

static int bio_create(BIO *b) {
  BIO_set_init(b, 0);
  return 1;
}

static int bio_destroy(BIO *b) {
  BIO_set_data(b, NULL); /* the fd belongs to the conn */
  return 1;
}

static void make_method(void) {
  BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK |
                                   BIO_TYPE_DESCRIPTOR,
                               "vigil socket");
  if (!m) return;
  if (!BIO_meth_set_write(m, bio_write) || !BIO_meth_set_read(m, bio_read) ||
      !BIO_meth_set_puts(m, bio_puts) || !BIO_meth_set_ctrl(m, bio_ctrl) ||
      !BIO_meth_set_create(m, bio_create) ||
      !BIO_meth_set_destroy(m, bio_destroy)) {
    BIO_meth_free(m);
    return;
  }
  method = m; /* lives as long as the process, like OpenSSL's own */
}

BIO *vigil__tls_bio_new(vigil_conn *c) {
  if (!CRYPTO_THREAD_run_once(&method_once, make_method) || !method)
    return NULL;
  BIO *b = BIO_new(method);
  if (!b) return NULL;
  BIO_set_data(b, c);
  BIO_set_init(b, 1);
  return b;
}
