/*
 * Redis URLs for the identity directory: every accepted form with the
 * fields it yields, and bad URLs refused with a message that names the
 * part at fault.
 */
#include <stdio.h>
#include <string.h>

#include "cluster/redis_url.h"
#include "testutil.h"
#include "vigil.h"

typedef struct good_case {
  const char *url;
  int is_unix;
  const char *host;
  unsigned port;
  const char *path;
  const char *user;
  const char *password; /* NULL = no AUTH */
  unsigned db;
  const char *described;
} good_case;

static const good_case goods[] = {
    {"redis://127.0.0.1", 0, "127.0.0.1", 6379, "", "", NULL, 0,
     "redis://127.0.0.1:6379/0"},
    {"redis://127.0.0.1:7000", 0, "127.0.0.1", 7000, "", "", NULL, 0,
     "redis://127.0.0.1:7000/0"},
    {"redis://localhost:7000/", 0, "localhost", 7000, "", "", NULL, 0,
     "redis://localhost:7000/0"},
    {"redis://redis-1.example_net:1/15", 0, "redis-1.example_net", 1, "", "",
     NULL, 15, "redis://redis-1.example_net:1/15"},
    {"REDIS://h:65535/2147483647", 0, "h", 65535, "", "", NULL, 2147483647u,
     "redis://h:65535/2147483647"},
    {"redis://[::1]:6380/3", 0, "::1", 6380, "", "", NULL, 3,
     "redis://[::1]:6380/3"},
    {"redis://[fe80::1]", 0, "fe80::1", 6379, "", "", NULL, 0,
     "redis://[fe80::1]:6379/0"},
    {"redis://:s3cret@10.0.0.5:6379/1", 0, "10.0.0.5", 6379, "", "", "s3cret",
     1, "redis://10.0.0.5:6379/1"},
    {"redis://dir:pw@h", 0, "h", 6379, "", "dir", "pw", 0,
     "redis://h:6379/0"},
    {"redis://:p%40ss%3Aw%25rd@h:1", 0, "h", 1, "", "", "p@ss:w%rd", 0,
     "redis://h:1/0"},
    {"redis://:a@b@h", 0, "h", 6379, "", "", "a@b", 0, "redis://h:6379/0"},
    {"unix:///run/redis/redis.sock", 1, "", 0, "/run/redis/redis.sock", "",
     NULL, 0, "unix:///run/redis/redis.sock"},
    {"unix:///tmp/r.sock?db=4", 1, "", 0, "/tmp/r.sock", "", NULL, 4,
     "unix:///tmp/r.sock?db=4"},
    {"unix://:pw@/tmp/r@x.sock", 1, "", 0, "/tmp/r@x.sock", "", "pw", 0,
     "unix:///tmp/r@x.sock"},
};

static void accepts_good_urls(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof goods / sizeof goods[0]; i++) {
    const good_case *g = &goods[i];
    vigil__redis_url u;
    char err[200], desc[300];
    int rc = vigil__redis_url_parse(g->url, &u, err, sizeof err);
    if (rc) fprintf(stderr, "%s: %s\n", g->url, err);
    assert_int_equal(rc, 0);
    assert_int_equal(u.is_unix, g->is_unix);
    assert_string_equal(u.host, g->host);
    if (!g->is_unix) assert_int_equal(u.port, g->port);
    assert_string_equal(u.path, g->path);
    assert_string_equal(u.user, g->user);
    assert_int_equal(u.has_password, g->password != NULL);
    if (g->password) assert_string_equal(u.password, g->password);
    assert_int_equal(u.db, g->db);
    vigil__redis_url_describe(&u, desc, sizeof desc);
    assert_string_equal(desc, g->described);
    assert_null(strstr(desc, "s3cret")); /* never the password */
  }
}

typedef struct bad_case {
  const char *url;
  const char *says; /* a piece of the message */
} bad_case;

static const bad_case bads[] = {
    {"", "scheme must be redis:// or unix://"},
    {"http://h", "scheme must be redis:// or unix://"},
    {"redis:/h", "scheme must be"},
    {"rediss://h", "TLS (rediss://) is not supported"},
    {"redis://", "host must not be empty"},
    {"redis://:6379", "host must not be empty"},
    {"redis://h:0", "port must be 1..65535, got \"0\""},
    {"redis://h:65536", "port must be 1..65535, got \"65536\""},
    {"redis://h:", "port must be 1..65535, got \"\""},
    {"redis://h:12a", "port must be 1..65535"},
    {"redis://h:-1", "port must be 1..65535"},
    {"redis://h/x", "db must be 0..2147483647, got \"x\""},
    {"redis://h/2147483648", "db must be 0..2147483647"},
    {"redis://h/1/2", "db must be 0..2147483647"},
    {"redis://h?db=1", "takes no '?query'"},
    {"redis://h#frag", "takes no '?query'"},
    {"redis://h o", "no spaces or control characters"},
    {"redis://h\to", "no spaces or control characters"},
    {"redis://ho$t", "host may hold only letters"},
    {"redis://[::1", "closed with ']'"},
    {"redis://[]:1", "IPv6 host must not be empty"},
    {"redis://[::g]", "IPv6 host may hold only hex digits"},
    {"redis://[::1]x", "expected ':port' after ']'"},
    {"redis://secret@h", "credentials must be written ':password@'"},
    {"redis://:@h", "password must not be empty"},
    {"redis://:%zz@h", "password has a bad %-escape"},
    {"redis://:%4@h", "password has a bad %-escape"},
    {"redis://:a%00b@h", "password has a bad %-escape"},
    {"redis://u%g1:p@h", "user has a bad %-escape"},
    {"unix://relative.sock", "absolute socket path"},
    {"unix:///tmp/s?database=1", "takes only the query '?db=N'"},
    {"unix:///tmp/s?db=", "db must be 0..2147483647"},
    {"unix:///tmp/s?db=1x", "db must be 0..2147483647"},
};

static void refuses_bad_urls(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof bads / sizeof bads[0]; i++) {
    vigil__redis_url u;
    char err[200];
    memset(&u, 0x5a, sizeof u);
    int rc = vigil__redis_url_parse(bads[i].url, &u, err, sizeof err);
    if (rc != VIGIL_EINVAL || !strstr(err, bads[i].says))
      fprintf(stderr, "\"%s\": rc %d, \"%s\"; want \"%s\"\n", bads[i].url, rc,
              err, bads[i].says);
    assert_int_equal(rc, VIGIL_EINVAL);
    assert_non_null(strstr(err, bads[i].says));
    assert_non_null(strstr(err, "redis URL: "));
  }
}

static void refuses_over_long_parts(void **state) {
  (void)state;
  char url[1200], err[200];
  vigil__redis_url u;
  memset(url, 0, sizeof url);
  strcpy(url, "redis://");
  memset(url + 8, 'h', 256); /* host of 256 */
  assert_int_equal(vigil__redis_url_parse(url, &u, err, sizeof err),
                   VIGIL_EINVAL);
  assert_non_null(strstr(err, "host must be at most 255 bytes"));
  url[8 + 255] = '\0'; /* 255 is fine */
  assert_int_equal(vigil__redis_url_parse(url, &u, err, sizeof err), 0);

  strcpy(url, "redis://:");
  memset(url + 9, 'p', 257);
  strcpy(url + 9 + 257, "@h");
  assert_int_equal(vigil__redis_url_parse(url, &u, err, sizeof err),
                   VIGIL_EINVAL);
  assert_non_null(strstr(err, "password must be at most 256 bytes"));

  strcpy(url, "redis://");
  memset(url + 8, 'u', 129);
  strcpy(url + 8 + 129, ":p@h");
  assert_int_equal(vigil__redis_url_parse(url, &u, err, sizeof err),
                   VIGIL_EINVAL);
  assert_non_null(strstr(err, "user must be at most 128 bytes"));

  strcpy(url, "unix:///");
  memset(url + 8, 's', 107);
  assert_int_equal(vigil__redis_url_parse(url, &u, err, sizeof err),
                   VIGIL_EINVAL);
  assert_non_null(strstr(err, "socket path must be at most 107 bytes"));

  /* A tiny error buffer is still NUL-terminated, NULLs are refused. */
  char tiny[8];
  assert_int_equal(vigil__redis_url_parse("x", &u, tiny, sizeof tiny),
                   VIGIL_EINVAL);
  assert_int_equal(strlen(tiny), sizeof tiny - 1);
  assert_int_equal(vigil__redis_url_parse(NULL, &u, err, sizeof err),
                   VIGIL_EINVAL);
  assert_int_equal(vigil__redis_url_parse("redis://h", NULL, NULL, 0),
                   VIGIL_EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(accepts_good_urls),
      cmocka_unit_test(refuses_bad_urls),
      cmocka_unit_test(refuses_over_long_parts),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
