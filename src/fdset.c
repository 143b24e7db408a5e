/* A lock-free set of fds; see fdset.h. */
#include "fdset.h"

#include <stdlib.h>
#include <sys/resource.h>

#include "vigil.h"

#define CHUNK_BITS 65536u
#define CHUNK_WORDS (CHUNK_BITS / 64u)
/* Upper bound of the table: the kernel's own fs.nr_open ceiling. */
#define MAX_FDS (1u << 30)

int vigil__fdset_init(vigil__fdset *s) {
  struct rlimit rl;
  size_t max = 1u << 20; /* when the limit cannot be read */
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
    max = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > MAX_FDS
              ? MAX_FDS
              : (size_t)rl.rlim_max;
  s->nchunks = (max + CHUNK_BITS - 1) / CHUNK_BITS;
  if (s->nchunks == 0) s->nchunks = 1;
  s->chunks = calloc(s->nchunks, sizeof *s->chunks);
  return s->chunks ? VIGIL_OK : VIGIL_ENOMEM;
}

void vigil__fdset_destroy(vigil__fdset *s) {
  if (!s->chunks) return;
  for (size_t i = 0; i < s->nchunks; i++) free(s->chunks[i]);
  free(s->chunks);
  s->chunks = NULL;
}

static uint64_t *chunk_of(const vigil__fdset *s, int fd) {
  if (fd < 0 || (size_t)fd / CHUNK_BITS >= s->nchunks) return NULL;
  return __atomic_load_n(&s->chunks[(size_t)fd / CHUNK_BITS],
                         __ATOMIC_ACQUIRE);
}

void vigil__fdset_add(vigil__fdset *s, int fd) {
  if (fd < 0 || (size_t)fd / CHUNK_BITS >= s->nchunks) return;
  uint64_t *c = chunk_of(s, fd);
  if (!c) {
    uint64_t *fresh = calloc(CHUNK_WORDS, sizeof *fresh);
    if (!fresh) return;
    uint64_t *expected = NULL;
    /* Another thread may install the chunk first: use theirs. */
    if (__atomic_compare_exchange_n(&s->chunks[(size_t)fd / CHUNK_BITS],
                                    &expected, fresh, 0, __ATOMIC_ACQ_REL,
                                    __ATOMIC_ACQUIRE)) {
      c = fresh;
    } else {
      free(fresh);
      c = expected;
    }
  }
  unsigned bit = (unsigned)fd % CHUNK_BITS;
  __atomic_fetch_or(&c[bit / 64u], (uint64_t)1 << (bit % 64u),
                    __ATOMIC_RELEASE);
}

void vigil__fdset_del(vigil__fdset *s, int fd) {
  uint64_t *c = chunk_of(s, fd);
  if (!c) return;
  unsigned bit = (unsigned)fd % CHUNK_BITS;
  __atomic_fetch_and(&c[bit / 64u], ~((uint64_t)1 << (bit % 64u)),
                     __ATOMIC_RELEASE);
}

int vigil__fdset_has(const vigil__fdset *s, int fd) {
  uint64_t *c = chunk_of(s, fd);
  if (!c) return 0;
  unsigned bit = (unsigned)fd % CHUNK_BITS;
  return (__atomic_load_n(&c[bit / 64u], __ATOMIC_ACQUIRE) >> (bit % 64u)) &
         1u;
}

size_t vigil__fdset_each(const vigil__fdset *s, void (*fn)(int fd, void *arg),
                         void *arg) {
  size_t n = 0;
  for (size_t i = 0; i < s->nchunks; i++) {
    uint64_t *c = __atomic_load_n(&s->chunks[i], __ATOMIC_ACQUIRE);
    if (!c) continue;
    for (size_t w = 0; w < CHUNK_WORDS; w++) {
      uint64_t bits = __atomic_load_n(&c[w], __ATOMIC_ACQUIRE);
      while (bits) {
        unsigned b = (unsigned)__builtin_ctzll(bits);
        bits &= bits - 1;
        n++;
        if (fn) fn((int)(i * CHUNK_BITS + w * 64u + b), arg);
      }
    }
  }
  return n;
}
