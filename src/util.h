/* Small helpers every internal module may use (internal). */
#ifndef VIGIL_UTIL_H
#define VIGIL_UTIL_H

#include <stddef.h>

#define vigil__container_of(ptr, type, member)                              \
  ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

#endif
