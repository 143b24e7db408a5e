/*
 * MQTT 3.1.1 topic names and topic filters (section 4.7).
 *
 *   name    "sensors/kitchen/temp"   what a PUBLISH is sent to; no
 *                                    wildcards (MQTT-3.3.2-2)
 *   filter  "sensors/+/temp"         '+' stands for exactly one level and
 *           "sensors/#"              must fill it; '#' stands for any
 *                                    number of levels, including the
 *                                    parent's ("sensors/#" matches
 *                                    "sensors"), and must be the last
 *                                    level (MQTT-4.7.1-2/3)
 *
 * Levels are separated by '/'; empty levels are levels ("a//b" has three).
 * Both must be at least one byte long (MQTT-4.7.3-1). Topics starting with
 * '$' (broker internals such as "$SYS/...") are not matched by a filter
 * that starts with a wildcard (MQTT-4.7.2-1).
 *
 * Matching is byte-wise and case-sensitive; UTF-8 validity is the codec's
 * job (mqtt_utf8_valid), not this module's.
 */
#ifndef MQTT_TOPIC_H
#define MQTT_TOPIC_H

#include <stddef.h>
#include <stdint.h>

/* 1 if t[0..len) is a usable topic name: non-empty, no '+' or '#'. */
int mqtt_topic_name_valid(const uint8_t *t, size_t len);

/* 1 if f[0..len) is a well-formed topic filter (wildcard rules above). */
int mqtt_topic_filter_valid(const uint8_t *f, size_t len);

/* 1 if f[0..len) holds '+' or '#'. */
int mqtt_topic_has_wildcard(const uint8_t *f, size_t len);

/* 1 if the topic name t matches the filter f. Both must be valid. */
int mqtt_topic_match(const uint8_t *f, size_t flen, const uint8_t *t,
                     size_t tlen);

#endif
