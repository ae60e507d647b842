/*
 * owned.h - which partitions of one topic this process owns right now, for
 * a consumer that also works on its own clock (expiries, deadlines, wave
 * closes) and must touch only the state of partitions its group gave it.
 * Put a linli_owned_t in the consumer's struct and hand the runner a
 * pointer (linli_runner_spec_t.owned): the runner keeps it current on
 * every assignment and revocation, before the next tick.
 */
#ifndef LINLI_OWNED_H
#define LINLI_OWNED_H

#include <stdint.h>

#include <librdkafka/rdkafka.h>

/* Partitions numbered from LINLI_OWNED_MAX on are never tracked. */
#define LINLI_OWNED_MAX 1024

typedef struct linli_owned {
  const char *topic; /* the tracked topic (borrowed, e.g. a LINLI_TOPIC_*) */
  unsigned char map[LINLI_OWNED_MAX]; /* 1 = owned */
} linli_owned_t;

/* Mark the partitions of o->topic in parts owned (owned 1) or not (0);
 * other topics and out-of-range partitions are ignored. */
void linli_owned_update(linli_owned_t *o,
                        const rd_kafka_topic_partition_list_t *parts,
                        int owned);

/* The first owned partition numbered from or above, or -1 if none:
 * `for (p = linli_owned_next(o, 0); p >= 0; p = linli_owned_next(o, p + 1))`.
 */
int linli_owned_next(const linli_owned_t *o, int from);

/* A tick's work for every owned partition, in order: fn(app, emit,
 * partition, now_ms) until one returns non-zero, which is returned (0 when
 * all succeeded). emit is the tick's linli_emit_t (linli/kafka.h). */
struct linli_emit;
typedef int (*linli_owned_fn)(void *app, struct linli_emit *emit,
                              int32_t partition, int64_t now_ms);
int linli_owned_each(const linli_owned_t *o, linli_owned_fn fn, void *app,
                     struct linli_emit *emit, int64_t now_ms);

#endif
