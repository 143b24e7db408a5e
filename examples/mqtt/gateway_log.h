/*
 * mqtt_gateway's own log lines (gateway_log.c), in the format of vigil's
 * event lines (vigil_event_format): ts, event, worker with --workers, then
 * the fields, as logfmt or JSON. Lines go out through linelog (one write
 * per loop iteration).
 */
#ifndef GATEWAY_LOG_H
#define GATEWAY_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "vigil.h"

#define LOG_LINE_MAX 2048

typedef struct logline {
  char buf[LOG_LINE_MAX];
  size_t n;
  vigil_log_format fmt;
} logline;

/* Starts a line: ts, event and, when worker >= 0, worker. */
void ll_start(logline *l, vigil_log_format fmt, int32_t worker,
              const char *event);
void ll_strn(logline *l, const char *key, const char *v, size_t n);
void ll_str(logline *l, const char *key, const char *v);
void ll_u64(logline *l, const char *key, uint64_t v);
/* Ends the line and hands it to linelog. */
void ll_end(logline *l);

#endif
