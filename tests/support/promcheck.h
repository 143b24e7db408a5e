/*
 * Cross-checks Prometheus text with promtool (Debian's prometheus
 * package): the format parser and the naming lint Prometheus ships.
 */
#ifndef VIGIL_PROMCHECK_H
#define VIGIL_PROMCHECK_H

#include <stddef.h>

/* Runs `promtool check metrics` on text. Returns 0 when it passes, 1 when
 * it reports a problem (its output, cut to whylen, in why), -1 when
 * promtool is not installed or cannot be run. */
int vt_promtool_check(const char *text, char *why, size_t whylen);

#endif
