/*
 * Allocation failures around the identity steps of a TLS handshake:
 * copying the certificate identity (tls_ident.c) and claiming it
 * (vigil_conn_identify). Whichever allocation fails, a conn whose
 * verified certificate names a device either closes with a clear reason
 * (io_error with errno ENOMEM, or tls_error) or is OPEN holding that
 * identity. It is never OPEN looking certificate-less or unclaimed: a
 * plain claim of another identity would then pass identity_proof, and the
 * device's ghost would never be taken over.
 *
 * Injection (the same in the plain and the ASan build):
 *  - vigil's allocations: this target links with -Wl,--wrap=malloc,
 *    --wrap=calloc and --wrap=realloc (tests/tls.cmake), so every such
 *    call in the statically linked library, and in this program, goes
 *    through __wrap_* below; __real_* is the C library's (or ASan's)
 *    function. libev, cmocka and OpenSSL are shared libraries and keep
 *    their own allocator. The window opens just before the handshake.
 *  - OpenSSL's allocations: CRYPTO_set_mem_functions, installed in main()
 *    before OpenSSL allocates anything. The window is vigil's reading of
 *    the peer certificate: it opens at vigil's SSL_get1_peer_certificate
 *    call and closes at its X509_free (both wrapped too), so what fails
 *    is the reading of the subject name or the subjectAltName extension.
 * A sweep fails allocation n = 1, 2, ... of its window, one handshake per
 * n, until a handshake in which nothing failed.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "tlsfix.h"

#define MAX_SWEEP 400 /* far above the allocations in either window */

/* ---- injection ---- */

typedef struct injector {
  long countdown; /* the countdown-th allocation from arming fails; 0 = off */
  int fired;
} injector;

static injector vigil_allocs, openssl_allocs;
static long openssl_arm_pending; /* countdown for the OpenSSL window */

static int fail_now(injector *in, size_t n) {
  if (in->countdown <= 0 || n == 0) return 0;
  if (--in->countdown > 0) return 0;
  in->fired = 1;
  return 1;
}

void *__real_malloc(size_t n);
void *__real_calloc(size_t k, size_t n);
void *__real_realloc(void *p, size_t n);

void *__wrap_malloc(size_t n) {
  return fail_now(&vigil_allocs, n) ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t k, size_t n) {
  return fail_now(&vigil_allocs, k * n) ? NULL : __real_calloc(k, n);
}

void *__wrap_realloc(void *p, size_t n) {
  return fail_now(&vigil_allocs, n) ? NULL : __real_realloc(p, n);
}

static void *openssl_malloc(size_t n, const char *file, int line) {
  (void)file, (void)line;
  return fail_now(&openssl_allocs, n) ? NULL : __real_malloc(n);
}

static void *openssl_realloc(void *p, size_t n, const char *file, int line) {
  (void)file, (void)line;
  return fail_now(&openssl_allocs, n) ? NULL : __real_realloc(p, n);
}

static void openssl_free(void *p, const char *file, int line) {
  (void)file, (void)line;
  free(p);
}

#if OPENSSL_VERSION_NUMBER >= 0x30000000L /* 1.1.1: see main() */
X509 *__real_SSL_get1_peer_certificate(const SSL *s);
void __real_X509_free(X509 *x);

X509 *__wrap_SSL_get1_peer_certificate(const SSL *s) {
  if (openssl_arm_pending) {
    openssl_allocs.countdown = openssl_arm_pending;
    openssl_arm_pending = 0;
  }
  return __real_SSL_get1_peer_certificate(s);
}

void __wrap_X509_free(X509 *x) {
  openssl_allocs.countdown = 0;
  __real_X509_free(x);
}
#endif

static void disarm(void) {
  vigil_allocs.countdown = openssl_allocs.countdown = 0;
  openssl_arm_pending = 0;
}

/* ---- fixture ---- */

static SSL_CTX *sctx;      /* requires client certificates */
static SSL_CTX *device_ctx; /* CN=device-1, SAN URI:urn:dev:1 */

static int setup(void **state) {
  tf_setup(state);
  sctx = tf_server_ctx(&tf_test_pki, 1);
  char cert[TF_PATH], key[TF_PATH];
  tf_pki_client(&tf_test_pki, "dev1", "device-1", "URI:urn:dev:1", 0, cert,
                key);
  device_ctx = tf_client_ctx(&tf_test_pki, cert, key);
  return 0;
}

static int teardown(void **state) {
  SSL_CTX_free(device_ctx);
  SSL_CTX_free(sctx);
  return tf_teardown(state);
}

typedef struct pair {
  cf_conn *cc;
  tf_peer *peer;
} pair;

/* The server conn is OPEN or closed (the device is driven meanwhile). */
static int settled(void *arg) {
  pair *p = arg;
  tf_peer_step(p->peer);
  return p->cc->closed ||
         vigil_conn_get_state(p->cc->conn) == VIGIL_CONN_OPEN;
}

typedef struct tally {
  int open;        /* OPEN with the identity */
  int enomem;      /* closed before ready: io_error, errno ENOMEM */
  int tls_error;   /* closed before ready: tls_error */
  int later;       /* closed after ready (a later failure) */
} tally;

/* One handshake of the device against a server conn claiming the
 * identity from `from`, with allocation n of the injector's window
 * failing. Checks the outcome; returns 1 if the failure happened. */
static int one_handshake(injector *in, long n, vigil_tls_id_source from,
                         const char *want, tally *t) {
  tf_hub h;
  tf_hub_init(&h, NULL);
  vigil_tls_options to;
  vigil_tls_options_init(&to);
  to.identity_from = from;
  int s, c;
  assert_int_equal(vt_tcp_pair(&s, &c), 0);
  cf_conn cc = {0};
  assert_int_equal(tf_adopt(&h, s, &cc, sctx, 0, &to, NULL), VIGIL_OK);
  uint64_t id = vigil_conn_id(cc.conn);
  tf_peer peer;
  tf_peer_init(&peer, device_ctx, c, 1, "localhost");
  *in = (injector){0, 0};
  if (in == &vigil_allocs)
    in->countdown = n;
  else
    openssl_arm_pending = n;
  pair pr = {&cc, &peer};
  assert_true(vt_run_until(h.loop, settled, &pr, 3000));
  disarm();
  int fired = in->fired;

  /* Ready only ever with the certificate's identity. */
  const tf_event *ready = tf_last(&h, VIGIL_EV_READY, id);
  if (ready) assert_string_equal(ready->identity, want);
  if (!cc.closed) {
    assert_int_equal(vigil_conn_get_state(cc.conn), VIGIL_CONN_OPEN);
    assert_string_equal(vigil_conn_tls_identity(cc.conn), want);
    assert_string_equal(vigil_conn_identity(cc.conn), want);
    assert_ptr_equal(vigil_hub_find_identity(h.hub, want, strlen(want)),
                     cc.conn);
    /* identity_proof holds: the certificate says who this is. */
    assert_int_equal(vigil_conn_identify(cc.conn, "intruder", 8),
                     VIGIL_EREJECTED);
    t->open++;
  } else if (ready) {
    t->later++;
  } else {
    const tf_event *cl = tf_last(&h, VIGIL_EV_CLOSE, id);
    assert_non_null(cl);
    if (cl->reason == VIGIL_REASON_IO_ERROR) {
      assert_int_equal(cl->sys_errno, ENOMEM);
      t->enomem++;
    } else {
      assert_int_equal(cl->reason, VIGIL_REASON_TLS_ERROR);
      assert_true(cl->detail[0] != '\0');
      t->tls_error++;
    }
  }
  tf_peer_free(&peer);
  tf_hub_done(&h);
  cf_conn_free(&cc);
  return fired;
}

/* Fails allocation 1, 2, ... until a handshake goes through untouched. */
static tally sweep(injector *in, vigil_tls_id_source from, const char *want) {
  tally t = {0};
  long n = 1;
  while (one_handshake(in, n, from, want, &t)) {
    n++;
    assert_true(n < MAX_SWEEP);
  }
  assert_int_equal(t.open, 1); /* the untouched handshake */
  return t;
}

/* ---- tests ---- */

/* vigil's own allocations: the identity copy and the claim's (index,
 * entry, the conn's copy). Each failure closes the conn with ENOMEM. */
static void test_vigil_allocation_failures(void **state) {
  (void)state;
  tally t = sweep(&vigil_allocs, VIGIL_TLS_ID_CN, "device-1");
  assert_true(t.enomem >= 2); /* at least the copy and one claim step */
  assert_int_equal(t.tls_error + t.later, 0);
  t = sweep(&vigil_allocs, VIGIL_TLS_ID_SAN_URI, "urn:dev:1");
  assert_true(t.enomem >= 2);
  assert_int_equal(t.tls_error + t.later, 0);
}

/* OpenSSL's allocations while vigil reads the certificate: each failure
 * closes the conn with tls_error. */
static void test_openssl_allocation_failures(void **state) {
  (void)state;
  tally t = sweep(&openssl_allocs, VIGIL_TLS_ID_CN, "device-1");
  assert_true(t.tls_error >= 1);
  assert_int_equal(t.enomem + t.later, 0);
  t = sweep(&openssl_allocs, VIGIL_TLS_ID_SAN_URI, "urn:dev:1");
  assert_true(t.tls_error >= 1);
  assert_int_equal(t.enomem + t.later, 0);
}

int main(void) {
#if OPENSSL_VERSION_NUMBER < 0x30000000L
  /* vigil reads the certificate with SSL_get_peer_certificate there, and
   * this test opens its OpenSSL window on SSL_get1_peer_certificate. */
  vt_skip("allocation failure injection needs OpenSSL 3");
#endif
  /* Must precede OpenSSL's first allocation. */
  if (!CRYPTO_set_mem_functions(openssl_malloc, openssl_realloc,
                                openssl_free)) {
    fprintf(stderr, "CRYPTO_set_mem_functions refused\n");
    return 1;
  }
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_vigil_allocation_failures),
      cmocka_unit_test(test_openssl_allocation_failures),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
