/*
 * produce.h - linli-produce's line parser: one line of JSON in, one event
 * ready to send out (topic, key, envelope with a complete Meta), or an error
 * naming the field at fault. Kept apart from main.c so that the rules for a
 * line live in one place and nothing here talks to Kafka.
 */
#ifndef LINLI_PRODUCE_H
#define LINLI_PRODUCE_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "domain/schema.h"

/* Written into Meta.producer when a line leaves it empty. */
#define PRODUCE_NAME "linli-produce"
/* Longest line accepted (bytes, without the newline). */
#define PRODUCE_MAX_LINE (1024 * 1024)

/* What the command line says every line holds. */
typedef struct produce_mode {
  /* --topic: every line is an event of this topic; NULL: every line is a
   * wrapper {"topic": ..., "key": ..., "event": {...}}. */
  const linli_topic_schema_t *topic;
  /* --type: every line is this member of the topic's envelope (the oneof
   * field whose message type was named); NULL: with --topic, every line is
   * the envelope itself. */
  const ProtobufCFieldDescriptor *member;
} produce_mode_t;

/* One parsed line, ready to send. */
typedef struct produce_event {
  const linli_topic_schema_t *topic;
  char *key;                  /* malloc'd, a valid id */
  ProtobufCMessage *envelope; /* the topic's envelope, Meta filled in */
  const char *event_id;       /* borrowed from the envelope's Meta */
  const char *type_name;      /* "OrderPlaced": static descriptor data */
} produce_event_t;

/*
 * Parse one line (len bytes, no newline) into *ev. Meta gets what a line
 * leaves out: a new event_id, occurred_at_ms = now_ms, producer
 * PRODUCE_NAME, schema_version LINLI_SCHEMA_VERSION. Returns LINLI_OK;
 * LINLI_ERR_INVALID with "path: reason" in err (path names the field as
 * written in the line, e.g. "event.order_placed.lines[0].quantity");
 * LINLI_ERR_NOMEM. *ev is empty unless LINLI_OK.
 */
int produce_parse_line(const produce_mode_t *mode, const char *line,
                       size_t len, int64_t now_ms, produce_event_t *ev,
                       char *err, size_t errlen);

/* Free what *ev owns and zero it. */
void produce_event_clear(produce_event_t *ev);

/* The oneof field of topic's envelope whose message type is type; NULL if
 * the envelope has none. */
const ProtobufCFieldDescriptor *
produce_member_field(const linli_topic_schema_t *topic,
                     const ProtobufCMessageDescriptor *type);

#endif
