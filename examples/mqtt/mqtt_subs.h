/*
 * Subscription registry: which subscribers hold which topic filters, and
 * who receives a message published to a topic name.
 *
 * Filters without wildcards live in a hash table (a publish costs one
 * lookup for them); filters with '+' or '#' live in a list that every
 * publish scans with mqtt_topic_match. A gateway whose devices subscribe
 * to their own exact command topic therefore pays O(1) per publish no
 * matter how many devices are connected.
 *
 * Subscribers are opaque pointers. A subscriber holding two filters that
 * both match a topic is reported twice; MQTT 3.1.1 allows one copy per
 * matching subscription (section 3.3.5).
 */
#ifndef MQTT_SUBS_H
#define MQTT_SUBS_H

#include <stddef.h>
#include <stdint.h>

typedef struct mqtt_subs mqtt_subs;

/* A new, empty registry, or NULL without memory. */
mqtt_subs *mqtt_subs_new(void);
/* Frees the registry (not the subscribers); NULL is fine. */
void mqtt_subs_free(mqtt_subs *s);

/* Adds (filter, who). Returns 1 if added, 0 if who already held that
 * filter (MQTT-3.8.4-3: a resubscription replaces, it does not duplicate),
 * -1 without memory. The filter must be valid (mqtt_topic_filter_valid). */
int mqtt_subs_add(mqtt_subs *s, const uint8_t *filter, size_t len, void *who);

/* Removes (filter, who). Returns 1 if it was there, else 0. */
int mqtt_subs_remove(mqtt_subs *s, const uint8_t *filter, size_t len,
                     void *who);

typedef void (*mqtt_subs_cb)(void *who, void *user_data);

/* Calls cb once per matching (filter, subscriber) pair; returns how many.
 * cb must not add or remove subscriptions. */
size_t mqtt_subs_match(const mqtt_subs *s, const uint8_t *topic, size_t len,
                       mqtt_subs_cb cb, void *user_data);

/* Number of distinct filters and of (filter, subscriber) pairs held. */
size_t mqtt_subs_filters(const mqtt_subs *s);
size_t mqtt_subs_pairs(const mqtt_subs *s);

#endif
