#include "slack.h"

#include <stdlib.h>
#include <string.h>

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define VT_HAVE_VALGRIND_H 1
#endif
#endif

int vt_under_valgrind(void) {
  static int cached = -1;
  if (cached < 0) {
    const char *env = getenv("VIGIL_UNDER_VALGRIND");
    cached = env && strcmp(env, "1") == 0;
#ifdef VT_HAVE_VALGRIND_H
    if (RUNNING_ON_VALGRIND) cached = 1;
#endif
  }
  return cached;
}

uint32_t vt_slack_ms(uint32_t ms) {
  return vt_under_valgrind() ? ms * VT_VALGRIND_SLACK_FACTOR : ms;
}
