#include "rowtest.h"

#include <stdio.h>
#include <stdlib.h>

static struct CMUnitTest *next_slot(vt_suite *s) {
  if (s->n >= VT_MAX_TESTS) {
    fprintf(stderr, "rowtest: more than %d tests in one file\n",
            VT_MAX_TESTS);
    abort();
  }
  return &s->tests[s->n++];
}

void vt_suite_add(vt_suite *s, const struct CMUnitTest *tests, size_t n) {
  for (size_t i = 0; i < n; i++) *next_slot(s) = tests[i];
}

void vt_suite_add_rows(vt_suite *s, CMUnitTestFunction run, const void *rows,
                       size_t row_size, size_t nrows, CMFixtureFunction setup,
                       CMFixtureFunction teardown) {
  for (size_t i = 0; i < nrows; i++) {
    const void *row = (const char *)rows + i * row_size;
    struct CMUnitTest *t = next_slot(s);
    /* Every row type starts with its name. */
    t->name = *(const char *const *)row;
    t->test_func = run;
    t->setup_func = setup;
    t->teardown_func = teardown;
    t->initial_state = (void *)row;
  }
}

int vt_suite_run(vt_suite *s, CMFixtureFunction group_setup,
                 CMFixtureFunction group_teardown) {
  /* What cmocka_run_group_tests() expands to, with a count known only at
   * run time. */
  return _cmocka_run_group_tests("tests", s->tests, s->n, group_setup,
                                 group_teardown);
}
