#include "promcheck.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int vt_promtool_check(const char *text, char *why, size_t whylen) {
  if (whylen) why[0] = '\0';
  if (system("command -v promtool >/dev/null 2>&1") != 0) return -1;
  char in[] = "/tmp/vigil-promcheck-in-XXXXXX";
  char out[] = "/tmp/vigil-promcheck-out-XXXXXX";
  int fin = mkstemp(in);
  if (fin < 0) return -1;
  int fout = mkstemp(out);
  if (fout < 0) {
    close(fin);
    unlink(in);
    return -1;
  }
  size_t len = strlen(text);
  int ok = write(fin, text, len) == (ssize_t)len;
  close(fin);
  close(fout);
  char cmd[256];
  snprintf(cmd, sizeof cmd, "promtool check metrics <%s >%s 2>&1", in, out);
  int status = ok ? system(cmd) : -1;
  FILE *f = fopen(out, "r");
  if (f && whylen) {
    size_t n = fread(why, 1, whylen - 1, f);
    why[n] = '\0';
  }
  if (f) fclose(f);
  unlink(in);
  unlink(out);
  if (status == -1 || !WIFEXITED(status)) return -1;
  return WEXITSTATUS(status) == 0 ? 0 : 1;
}
