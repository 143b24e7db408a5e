#include "redisfix.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

#define READY_TIMEOUT_MS 10000
#define START_TRIES 5

static char server_path[512];

int vt_redis_available(void) {
  const char *env = getenv("VIGIL_REDIS_SERVER");
  if (env && *env) {
    snprintf(server_path, sizeof server_path, "%s", env);
    return access(server_path, X_OK) == 0;
  }
  const char *path = getenv("PATH");
  if (!path) path = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin";
  while (*path) {
    const char *end = strchr(path, ':');
    size_t n = end ? (size_t)(end - path) : strlen(path);
    snprintf(server_path, sizeof server_path, "%.*s/redis-server", (int)n,
             path);
    if (n && access(server_path, X_OK) == 0) return 1;
    path += n + (end ? 1 : 0);
  }
  return 0;
}

static uint16_t free_port(void) {
  struct sockaddr_in a;
  socklen_t len = sizeof a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 ||
      getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
    close(fd);
    return 0;
  }
  close(fd);
  return ntohs(a.sin_port);
}

static pid_t spawn(vt_redis *r) {
  char port[8], log[128];
  snprintf(port, sizeof port, "%u", (unsigned)r->port);
  snprintf(log, sizeof log, "%s/redis.log", r->dir);
  const char *argv[48] = {server_path, "--port", port, "--bind", "127.0.0.1",
                          "--save", "", "--appendonly", "no", "--dir",
                          r->dir, "--logfile", log, "--unixsocket", r->sock,
                          "--unixsocketperm", "700", "--daemonize", "no"};
  int n = 19;
  for (int i = 0; r->extra[i] && n < 46; i++) argv[n++] = r->extra[i];
  argv[n] = NULL;
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid != 0) return pid;
  /* Child. A test that crashes must not leave its server behind: the
   * kernel kills the server when the test's thread dies (and if the test
   * died before prctl, the server is not started). The server's output
   * goes to its log file, so it holds none of the test's pipes (ctest
   * waits for those to close) and none of its sockets. */
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent) _exit(127);
  int null = open("/dev/null", O_RDWR);
  if (null >= 0) {
    dup2(null, 0);
    dup2(null, 1);
    dup2(null, 2);
  }
  closefrom(3);
  execv(server_path, (char *const *)argv);
  _exit(127);
}

/* 1 once the server answers PING (+PONG, or -NOAUTH with requirepass). */
static int answers(const vt_redis *r) {
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons(r->port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  struct timeval tv = {0, 200000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  int ok = 0;
  char buf[64];
  if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
      write(fd, "PING\r\n", 6) == 6) {
    ssize_t n = read(fd, buf, sizeof buf - 1);
    if (n > 0) {
      buf[n] = '\0';
      ok = strncmp(buf, "+PONG", 5) == 0 || strncmp(buf, "-NOAUTH", 7) == 0;
    }
  }
  close(fd);
  return ok;
}

static int wait_ready(vt_redis *r) {
  uint64_t deadline = vt_now_ms() + READY_TIMEOUT_MS;
  while (vt_now_ms() < deadline) {
    int status;
    if (waitpid(r->pid, &status, WNOHANG) == r->pid) {
      r->pid = 0; /* exited: port taken, or a bad argument */
      return -1;
    }
    if (answers(r)) return 0;
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  vt_redis_kill(r);
  return -1;
}

/* One try: 0 once it answers, -1 to try again (it exited: port taken),
 * -2 when it cannot even be spawned. */
static int launch(vt_redis *r) {
  r->pid = spawn(r);
  if (r->pid < 0) {
    r->pid = 0;
    return -2;
  }
  return wait_ready(r);
}

int vt_redis_start(vt_redis *r, const char *const *extra) {
  if (!vt_redis_available())
    vt_skip("redis-server not found (Debian: redis-server)");
  memset(r, 0, sizeof *r);
  for (int i = 0; extra && extra[i] && i < 15; i++) r->extra[i] = extra[i];
  snprintf(r->dir, sizeof r->dir, "/tmp/vigil-redis-XXXXXX");
  if (!mkdtemp(r->dir)) return -1;
  snprintf(r->sock, sizeof r->sock, "%s/redis.sock", r->dir);
  snprintf(r->unix_url, sizeof r->unix_url, "unix://%s", r->sock);
  for (int i = 0; i < START_TRIES; i++) {
    r->port = free_port();
    if (!r->port) continue;
    snprintf(r->url, sizeof r->url, "redis://127.0.0.1:%u",
             (unsigned)r->port);
    int rc = launch(r);
    if (rc != -1) return rc == 0 ? 0 : -1;
  }
  return -1;
}

void vt_redis_kill(vt_redis *r) {
  if (r->pid <= 0) return;
  kill(r->pid, SIGKILL);
  while (waitpid(r->pid, NULL, 0) < 0 && errno == EINTR) {
  }
  r->pid = 0;
}

int vt_redis_restart(vt_redis *r) {
  vt_redis_kill(r);
  unlink(r->sock);
  /* The old server's port may linger a moment for a new bind: retry. */
  for (int i = 0; i < START_TRIES; i++) {
    int rc = launch(r);
    if (rc != -1) return rc == 0 ? 0 : -1;
  }
  return -1;
}

int vt_redis_signal(vt_redis *r, int sig) {
  return r->pid > 0 ? kill(r->pid, sig) : -1;
}

void vt_redis_stop(vt_redis *r) {
  vt_redis_kill(r);
  if (!r->dir[0]) return;
  DIR *dir = opendir(r->dir);
  if (dir) {
    struct dirent *e;
    char path[400];
    while ((e = readdir(dir)) != NULL) {
      if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
      snprintf(path, sizeof path, "%s/%s", r->dir, e->d_name);
      unlink(path);
    }
    closedir(dir);
  }
  rmdir(r->dir);
  r->dir[0] = '\0';
}
