/* Bounded RESP replies; see redis_reply.h. */
#include "redis_reply.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static vigil__reply_guard *guard_of(const redisReadTask *t) {
  return (vigil__reply_guard *)t->privdata;
}

/* Counts one more value of the current reply (a task without a parent
 * starts a new reply); NULL with the reason recorded when over budget. */
static redisReply *new_value(const redisReadTask *t, int type) {
  vigil__reply_guard *g = guard_of(t);
  if (!t->parent) g->values = 0;
  if (++g->values > g->max_values) {
    snprintf(g->refused, sizeof g->refused,
             "reply holds more than %zu values", g->max_values);
    return NULL;
  }
  redisReply *r = calloc(1, sizeof *r);
  if (!r) {
    snprintf(g->refused, sizeof g->refused, "out of memory");
    return NULL;
  }
  r->type = type;
  return r;
}

static void *attach(const redisReadTask *t, redisReply *r) {
  if (t->parent) {
    redisReply *parent = t->parent->obj;
    parent->element[t->idx] = r;
  }
  return r;
}

static void *create_string(const redisReadTask *t, char *str, size_t len) {
  vigil__reply_guard *g = guard_of(t);
  if (len > g->max_string) {
    snprintf(g->refused, sizeof g->refused,
             "string of %zu bytes, more than %zu", len, g->max_string);
    return NULL;
  }
  redisReply *r = new_value(t, t->type);
  if (!r) return NULL;
  r->str = malloc(len + 1);
  if (!r->str) {
    free(r);
    snprintf(g->refused, sizeof g->refused, "out of memory");
    return NULL;
  }
  memcpy(r->str, str, len);
  r->str[len] = '\0';
  r->len = len;
  return attach(t, r);
}

static void *create_array(const redisReadTask *t, int elements) {
  vigil__reply_guard *g = guard_of(t);
  if (elements < 0 || (size_t)elements > g->max_elements) {
    snprintf(g->refused, sizeof g->refused,
             "array of %d elements, allowed 0..%zu", elements,
             g->max_elements);
    return NULL;
  }
  redisReply *r = new_value(t, REDIS_REPLY_ARRAY);
  if (!r) return NULL;
  if (elements > 0) {
    r->element = calloc((size_t)elements, sizeof *r->element);
    if (!r->element) {
      free(r);
      snprintf(g->refused, sizeof g->refused, "out of memory");
      return NULL;
    }
  }
  r->elements = (size_t)elements;
  return attach(t, r);
}

static void *create_integer(const redisReadTask *t, long long value) {
  redisReply *r = new_value(t, REDIS_REPLY_INTEGER);
  if (!r) return NULL;
  r->integer = value;
  return attach(t, r);
}

static void *create_nil(const redisReadTask *t) {
  redisReply *r = new_value(t, REDIS_REPLY_NIL);
  if (!r) return NULL;
  return attach(t, r);
}

void vigil__redis_reply_free(redisReply *r) {
  if (!r) return;
  for (size_t i = 0; i < r->elements; i++)
    vigil__redis_reply_free(r->element[i]); /* unset slots are NULL */
  free(r->element);
  free(r->str);
  free(r);
}

static void free_object(void *obj) { vigil__redis_reply_free(obj); }

static redisReplyObjectFunctions bounded_functions = {
    create_string, create_array, create_integer, create_nil, free_object};

redisReader *vigil__redis_reader_new(vigil__reply_guard *g) {
  redisReader *r = redisReaderCreateWithFunctions(&bounded_functions);
  if (!r) return NULL;
  g->values = 0;
  g->refused[0] = '\0';
  r->privdata = g; /* copied into every read task */
  return r;
}

const char *vigil__redis_reply_type_name(int type) {
  switch (type) {
  case REDIS_REPLY_STRING: return "string";
  case REDIS_REPLY_ARRAY: return "array";
  case REDIS_REPLY_INTEGER: return "integer";
  case REDIS_REPLY_NIL: return "nil";
  case REDIS_REPLY_STATUS: return "status";
  case REDIS_REPLY_ERROR: return "error";
  default: return "unknown";
  }
}

int vigil__redis_reply_is(const redisReply *r, const char *s) {
  size_t n = strlen(s);
  return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) &&
         r->len == n && memcmp(r->str, s, n) == 0;
}
