/*
 * Strict parsers for checking vigil's log lines in tests (JSON per RFC
 * 8259 with UTF-8 validation, and logfmt as vigil_event_format writes it).
 */
#ifndef VIGIL_LINECHECK_H
#define VIGIL_LINECHECK_H

#include <stddef.h>

/* 1 if s is exactly one valid JSON object (unique keys, well-formed UTF-8,
 * no raw control characters) and nothing else; 0 otherwise. */
int vt_json_valid_object(const char *s);

/* Decodes the top-level string field key of a valid flat JSON object into
 * out (NUL-terminated, truncated to cap). Returns 0, or -1 if absent or
 * not a string. \u escapes decode only below U+0080 and U+FFFD. */
int vt_json_get_string(const char *s, const char *key, char *out,
                       size_t cap);

/* Checks a logfmt line: single-space separated key=value pairs, keys
 * [a-z0-9_]+ and unique, values bare (no space, '=', '"', '\\', control
 * byte or DEL) or quoted with \" \\ \n \r \t \u00XX escapes. If want_key
 * is non-NULL its decoded value goes to out (cap bytes). Returns 0 if the
 * line is well-formed, -1 otherwise. */
int vt_logfmt_parse(const char *line, const char *want_key, char *out,
                    size_t cap);

#endif
