/*
 * replay.h - linli-replay's shared pieces: parsed command-line ranges, the
 * fenced log reader (assign-only consumer: it never joins a consumer group
 * and never commits an offset), and the subcommands.
 */
#ifndef REPLAY_H
#define REPLAY_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <librdkafka/rdkafka.h>
#include <protobuf-c/protobuf-c.h>

#include "linli/config.h"

#define REPLAY_MAX_TOPICS 32

/* A bound given on the command line: an offset, a time, or nothing. */
enum bound_kind { BOUND_NONE, BOUND_OFFSET, BOUND_TIME };
struct bound {
  enum bound_kind kind;
  int64_t value; /* offset, or UTC ms */
};

/* Parse "123" (offset), "2026-11-24T08:00:00Z" / "2026-11-24T08:00:00.250Z"
 * / "2026-11-24" (UTC time) or "@1795508000000" (UTC ms). 0 or -1. */
int replay_parse_bound(const char *s, struct bound *b);

/* What to read: topics and an optional [from, to] range. */
struct range {
  const char *topics[REPLAY_MAX_TOPICS];
  int ntopics;
  struct bound from, to; /* from inclusive; to: offset inclusive, time
                            exclusive (events strictly before it) */
  /* If set, stop each partition at this consumer group's committed offset
   * (read with OffsetFetch only: the group is not joined). */
  const char *end_at_group;
};

/* Called for every record inside the range, in partition order per topic.
 * Return 0 to continue, non-zero to stop. */
typedef int (*replay_record_fn)(void *arg, const rd_kafka_message_t *m);

/*
 * Read every record of the range across all partitions of every topic,
 * up to the end of the range or the current end of the log (taken when
 * the read starts), read_committed. Progress goes to stderr when
 * `progress` is set. Returns 0, or -1 with err set.
 */
int replay_read(const linli_config_t *cfg, const struct range *range,
                replay_record_fn fn, void *arg, int progress, char *err,
                size_t errlen);

/* Subcommands: argc/argv after the subcommand name. Exit codes. */
int replay_cmd_export(const linli_config_t *cfg, int argc, char **argv);
int replay_cmd_republish(const linli_config_t *cfg, int argc, char **argv);

/* CSV: the flattened header for a set of envelopes, and one row. */
struct csv_columns;
int csv_columns_new(const char *const *topics, int ntopics,
                    struct csv_columns **out);
void csv_columns_free(struct csv_columns *c);
void csv_write_header(FILE *out, const struct csv_columns *c);
/* event may be NULL (an error row: err set). */
void csv_write_row(FILE *out, const struct csv_columns *c,
                   const rd_kafka_message_t *m, const char *type,
                   const ProtobufCMessage *event, const char *err);

#endif
