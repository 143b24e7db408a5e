/*
 * SHA-1 (FIPS 180-4), for naming the directory's Lua script the way Redis
 * does (EVALSHA, SCRIPT LOAD). Not for security: Redis's choice of hash,
 * not ours. Built in so that the library needs OpenSSL only for TLS.
 */
#ifndef VIGIL_SHA1_H
#define VIGIL_SHA1_H

#include <stddef.h>
#include <stdint.h>

/* The 20-byte digest of len bytes at data. */
void vigil__sha1(const void *data, size_t len, uint8_t out[20]);

#endif
