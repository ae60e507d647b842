/*
 * ids.h - event ids and id validation.
 *
 * A new event id is time-ordered and unique: 26 characters of Crockford
 * base32 (ULID layout: 48-bit millisecond time, 80 random bits, monotonic
 * within a millisecond in one process), so ids sort by creation time.
 * A derived event id (DESIGN.md rule 4) is a pure function of the input,
 * so a re-produced output carries the same id and a duplicate is
 * recognisable anywhere. Derive it from the input event's own id
 * (linli_id_derive_event): a position (topic, partition, offset) repeats
 * when a topic is recreated, an event id does not.
 */
#ifndef LINLI_IDS_H
#define LINLI_IDS_H

#include <stddef.h>
#include <stdint.h>

#define LINLI_ID_MAX 64
/* Buffer size for any id plus its NUL. */
#define LINLI_ID_BUFSZ (LINLI_ID_MAX + 1)

/* Write a new time-ordered id into buf (>= 27 bytes). 0 or LINLI_ERR_*. */
int linli_id_new(char *buf, size_t len);

/* Deterministic id of the index-th event derived from an input record:
 * "d" + 16 hex of a hash of the topic + "-" partition "-" offset "-" index.
 * buf >= LINLI_ID_BUFSZ. */
int linli_id_derive(const char *topic, int32_t partition, int64_t offset,
                    int index, char *buf, size_t len);

/* Deterministic id of the index-th event derived from the input event
 * whose meta.event_id is event_id (non-empty): "e" + 32 hex of a 128-bit
 * hash of event_id + "-" + index. buf >= LINLI_ID_BUFSZ. */
int linli_id_derive_event(const char *event_id, int index, char *buf,
                          size_t len);

/* 1 if s is a valid id: 1..64 characters from [A-Za-z0-9_-]. */
int linli_id_valid(const char *s);

#endif
