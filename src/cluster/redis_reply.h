/*
 * Bounded RESP replies (internal): hiredis's incremental reader with object
 * functions that refuse what a directory store never legitimately sends.
 *
 * The store is untrusted input. hiredis's default objects would allocate
 * whatever a reply announces ("*2000000000" is a 16 GB calloc); these
 * refuse, per reply, a string longer than max_string, an array of more
 * than max_elements or more than max_values values in all. A refusal makes
 * the reader fail (redisReaderGetReply returns REDIS_ERR) and leaves its
 * reason in the guard; the caller drops the connection. The reader itself
 * refuses nesting deeper than 7 and malformed framing.
 *
 * Replies are hiredis's redisReply structs (type, integer, len, str,
 * elements, element); free them with vigil__redis_reply_free.
 */
#ifndef VIGIL_REDIS_REPLY_H
#define VIGIL_REDIS_REPLY_H

#include <stddef.h>

#include <hiredis/hiredis.h>

typedef struct vigil__reply_guard {
  size_t max_string;   /* bytes in one bulk/status/error string */
  size_t max_elements; /* elements in one array */
  size_t max_values;   /* values (arrays, strings, ...) in one reply */
  size_t values;       /* counted for the reply being read */
  char refused[96];    /* why the last value was refused; "" = none */
} vigil__reply_guard;

/* A reader whose replies g bounds; g must outlive it. NULL on ENOMEM. */
redisReader *vigil__redis_reader_new(vigil__reply_guard *g);

/* Frees a reply from such a reader (NULL is fine). */
void vigil__redis_reply_free(redisReply *r);

/* "string", "array", "integer", "nil", "status", "error" or "unknown". */
const char *vigil__redis_reply_type_name(int type);

/* 1 if r is a string-like reply (bulk or status) equal to s. */
int vigil__redis_reply_is(const redisReply *r, const char *s);

#endif
