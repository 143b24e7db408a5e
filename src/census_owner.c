/*
 * Who holds a socket: the kernel's sock_diag reports a socket's inode but
 * not its process. The only way to map back is the one netstat -p and ss -p
 * use: every fd in /proc/[pid]/fd is a symlink, and a socket's reads
 * "socket:[<inode>]". Reading another user's fd directory needs
 * CAP_SYS_PTRACE-level access (or root); those processes are counted, not
 * treated as errors.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "census_internal.h"

int vigil__inode_set_add(vigil__inode_set *s, uint64_t inode) {
  if (s->n == s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 64;
    uint64_t *v = realloc(s->v, cap * sizeof *v);
    if (!v) return VIGIL_ENOMEM;
    s->v = v;
    s->cap = cap;
  }
  s->v[s->n++] = inode;
  return VIGIL_OK;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

void vigil__inode_set_sort(vigil__inode_set *s) {
  if (s->n > 1) qsort(s->v, s->n, sizeof *s->v, cmp_u64);
}

int vigil__inode_set_has(const vigil__inode_set *s, uint64_t inode) {
  return s->n && bsearch(&inode, s->v, s->n, sizeof *s->v, cmp_u64) != NULL;
}

void vigil__inode_set_free(vigil__inode_set *s) {
  free(s->v);
  memset(s, 0, sizeof *s);
}

int vigil__census_link_inode(const char *link, size_t len, uint64_t *inode) {
  static const char prefix[] = "socket:[";
  const size_t plen = sizeof prefix - 1;
  uint64_t v = 0;
  size_t i = plen;
  if (len < plen + 2 || memcmp(link, prefix, plen) != 0) return 0;
  if (link[len - 1] != ']') return 0;
  for (; i < len - 1; i++) {
    if (link[i] < '0' || link[i] > '9') return 0;
    uint64_t d = (uint64_t)(link[i] - '0');
    if (v > (UINT64_MAX - d) / 10) return 0;
    v = v * 10 + d;
  }
  if (i == plen) return 0; /* "socket:[]" */
  *inode = v;
  return 1;
}

/* An fd directory entry's name as an fd number; -1 if it is not one. */
static int parse_fd(const char *name) {
  long v = 0;
  if (!*name) return -1;
  for (const char *p = name; *p; p++) {
    if (*p < '0' || *p > '9' || v > INT_MAX / 10) return -1;
    v = v * 10 + (*p - '0');
  }
  return (int)v;
}

/* Calls fn(fd, inode, ctx) for every socket fd in the open fd directory
 * dirfd (consumed). Returns 0 or a negative value from fn. */
static int for_each_socket_fd(int dirfd, int (*fn)(int, uint64_t, void *),
                              void *ctx) {
  DIR *d = fdopendir(dirfd);
  if (!d) {
    close(dirfd);
    return 0;
  }
  int rc = 0;
  struct dirent *e;
  while (rc == 0 && (e = readdir(d)) != NULL) {
    char link[64];
    uint64_t inode;
    if (e->d_name[0] == '.') continue;
    ssize_t n = readlinkat(dirfd, e->d_name, link, sizeof link);
    if (n <= 0 || (size_t)n >= sizeof link) continue; /* closed meanwhile */
    if (vigil__census_link_inode(link, (size_t)n, &inode))
      rc = fn(parse_fd(e->d_name), inode, ctx);
  }
  closedir(d);
  return rc;
}

typedef struct fd_filter {
  vigil__inode_set *set;
  int (*keep)(int fd, void *ctx); /* NULL = every socket fd */
  void *ctx;
} fd_filter;

static int add_to_set(int fd, uint64_t inode, void *arg) {
  fd_filter *f = arg;
  if (f->keep && (fd < 0 || !f->keep(fd, f->ctx))) return 0;
  return vigil__inode_set_add(f->set, inode);
}

int vigil__census_fd_inodes(int (*keep)(int fd, void *ctx), void *ctx,
                            vigil__inode_set *set) {
  int fd = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return vigil__census_sys("open /proc/self/fd", errno);
  fd_filter f = {set, keep, ctx};
  int rc = for_each_socket_fd(fd, add_to_set, &f);
  vigil__inode_set_sort(set);
  return rc;
}

int vigil__census_self_inodes(vigil__inode_set *set) {
  return vigil__census_fd_inodes(NULL, NULL, set);
}

/* Listed sockets sorted by inode, for the per-fd lookups of the scan. */
typedef struct owner_index {
  uint64_t inode;
  size_t socket;
} owner_index;

typedef struct owner_scan {
  vigil_census *c;
  owner_index *idx;
  size_t n;
  int procfd; /* open /proc */
  pid_t pid;  /* process being scanned */
  char comm[VIGIL_CENSUS_COMMLEN];
  int comm_read;     /* comm of pid loaded */
  size_t unresolved; /* listed sockets still without owner */
} owner_scan;

static int cmp_index(const void *a, const void *b) {
  const owner_index *x = a, *y = b;
  return x->inode < y->inode ? -1 : x->inode > y->inode;
}

/* Loads /proc/<pid>/comm into scan->comm ("" if it vanished). */
static void read_comm(owner_scan *scan) {
  char path[32];
  scan->comm[0] = '\0';
  scan->comm_read = 1;
  snprintf(path, sizeof path, "%d/comm", (int)scan->pid);
  int fd = openat(scan->procfd, path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  ssize_t n = read(fd, scan->comm, sizeof scan->comm - 1);
  close(fd);
  if (n < 0) n = 0;
  scan->comm[n] = '\0';
  char *nl = strchr(scan->comm, '\n');
  if (nl) *nl = '\0';
}

/* for_each_socket_fd callback: gives a listed socket its first owner. */
static int scan_owner_fd(int fd, uint64_t inode, void *ctx) {
  owner_scan *scan = ctx;
  (void)fd;
  owner_index key = {.inode = inode, .socket = 0};
  owner_index *hit = bsearch(&key, scan->idx, scan->n, sizeof key, cmp_index);
  if (!hit) return 0;
  vigil_census_socket *s = &scan->c->sockets[hit->socket];
  if (s->owner_pid) return 0; /* shared after fork: keep the first */
  if (!scan->comm_read) read_comm(scan);
  s->owner_pid = scan->pid;
  memcpy(s->owner_comm, scan->comm, sizeof s->owner_comm);
  if (scan->unresolved) scan->unresolved--;
  return 0;
}

/* Parses a /proc entry name as a pid; 0 if it is not one. */
static pid_t parse_pid(const char *name) {
  long v = 0;
  if (!*name) return 0;
  for (const char *p = name; *p; p++) {
    if (*p < '0' || *p > '9' || v > 4194304) return 0;
    v = v * 10 + (*p - '0');
  }
  return (pid_t)v;
}

int vigil__census_resolve_owners(vigil_census *c) {
  owner_scan scan;
  memset(&scan, 0, sizeof scan);
  scan.c = c;
  c->owners_resolved = 1;
  c->unreadable_processes = 0;
  if (c->nsockets == 0) return VIGIL_OK;
  scan.idx = malloc(c->nsockets * sizeof *scan.idx);
  if (!scan.idx) return VIGIL_ENOMEM;
  for (size_t i = 0; i < c->nsockets; i++) {
    if (c->sockets[i].inode == 0) continue; /* orphans have no fd */
    scan.idx[scan.n].inode = c->sockets[i].inode;
    scan.idx[scan.n].socket = i;
    scan.n++;
  }
  if (scan.n == 0) {
    free(scan.idx);
    return VIGIL_OK;
  }
  qsort(scan.idx, scan.n, sizeof *scan.idx, cmp_index);
  scan.unresolved = scan.n;

  int procfd = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (procfd < 0) {
    int rc = vigil__census_sys("open /proc", errno);
    free(scan.idx);
    return rc;
  }
  DIR *proc = fdopendir(procfd);
  if (!proc) {
    int rc = vigil__census_sys("fdopendir /proc", errno);
    close(procfd);
    free(scan.idx);
    return rc;
  }
  scan.procfd = procfd;
  struct dirent *e;
  /* Keep walking after everything is resolved only to count unreadable
   * processes: the caller wants to know what it could not see. */
  while ((e = readdir(proc)) != NULL) {
    pid_t pid = parse_pid(e->d_name);
    if (pid <= 0) continue;
    char path[32];
    snprintf(path, sizeof path, "%d/fd", (int)pid);
    int fd = openat(procfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
      if (errno == EACCES || errno == EPERM) c->unreadable_processes++;
      continue; /* ENOENT: the process exited meanwhile */
    }
    if (scan.unresolved == 0) {
      close(fd);
      continue;
    }
    scan.pid = pid;
    scan.comm_read = 0;
    for_each_socket_fd(fd, scan_owner_fd, &scan);
  }
  closedir(proc);
  free(scan.idx);
  return VIGIL_OK;
}
