/*
 * Table-driven tests: each row of a case table runs as a cmocka test of
 * its own, named after the row. A failing row is reported by its name
 * ("[  FAILED  ] untrusted client certificate") and the rows after it
 * still run, which a loop over the rows inside one test cannot give.
 *
 * A row type starts with its name; the runner gets the row as its state:
 *
 *   typedef struct refusal { const char *name; ... } refusal;
 *   static const refusal refusals[] = {{"untrusted", ...}, ...};
 *   static void run_refusal(void **state) {
 *     const refusal *r = *state;
 *     ...
 *   }
 *   int main(void) {
 *     static const struct CMUnitTest tests[] = {cmocka_unit_test(test_a)};
 *     vt_suite s = {0};
 *     VT_TESTS(&s, tests);
 *     VT_ROWS(&s, run_refusal, refusals);
 *     return vt_suite_run(&s, tf_setup, tf_teardown);
 *   }
 */
#ifndef VIGIL_ROWTEST_H
#define VIGIL_ROWTEST_H

#include "testutil.h"

#define VT_MAX_TESTS 160

typedef struct vt_suite {
  struct CMUnitTest tests[VT_MAX_TESTS];
  size_t n;
} vt_suite;

/* Appends plain cmocka tests. */
void vt_suite_add(vt_suite *s, const struct CMUnitTest *tests, size_t n);
/* Appends one test per row: run(state) with *state = the row (or, when
 * setup is given, whatever setup makes of it, as cmocka's prestate). */
void vt_suite_add_rows(vt_suite *s, CMUnitTestFunction run, const void *rows,
                       size_t row_size, size_t nrows, CMFixtureFunction setup,
                       CMFixtureFunction teardown);
/* Runs them all as one cmocka group; returns the number that failed. */
int vt_suite_run(vt_suite *s, CMFixtureFunction group_setup,
                 CMFixtureFunction group_teardown);

#define VT_TESTS(s, tests) \
  vt_suite_add((s), (tests), sizeof(tests) / sizeof((tests)[0]))
#define VT_ROWS(s, run, rows)                                            \
  vt_suite_add_rows((s), (run), (rows), sizeof((rows)[0]),               \
                    sizeof(rows) / sizeof((rows)[0]), NULL, NULL)
#define VT_ROWS_SETUP_TEARDOWN(s, run, rows, setup, teardown)            \
  vt_suite_add_rows((s), (run), (rows), sizeof((rows)[0]),               \
                    sizeof(rows) / sizeof((rows)[0]), (setup), (teardown))

/* For small tables walked in a loop inside one test (pure checks where a
 * cmocka test per row would be noise): assert_int_equal that names the
 * row when it fails. a and b are evaluated once. */
#define vt_row_int_equal(row, a, b)                                      \
  do {                                                                   \
    uintmax_t vt_a_ = (uintmax_t)(a), vt_b_ = (uintmax_t)(b);            \
    if (vt_a_ != vt_b_) print_error("row \"%s\":\n", (row));            \
    assert_int_equal(vt_a_, vt_b_);                                      \
  } while (0)

#endif
