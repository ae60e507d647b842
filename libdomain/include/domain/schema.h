/*
 * schema.h - the registry of linli's topics: for every topic its name, what
 * its message key is, whether it is compacted, and the protobuf-c descriptor
 * of its envelope message (one `oneof event` envelope per topic, see
 * schemas/ and docs/schemas.md).
 *
 * Tools that handle any topic (ledger, replay, produce, the DLQ) look a
 * topic up here instead of keeping their own tables, and name an event by
 * the oneof member that is set ("OrderPlaced") in logs and the record.
 * Everything here is static data: no allocation, safe from any thread.
 */
#ifndef DOMAIN_SCHEMA_H
#define DOMAIN_SCHEMA_H

#include <stddef.h>

#include <protobuf-c/protobuf-c.h>

#include "common.pb-c.h"

/* Topic names: LINLI_TOPIC_* (generated from config/topics.conf). */
#include "domain/topics.h"

/* Version written into Meta.schema_version by producers of today's schemas. */
#define LINLI_SCHEMA_VERSION 1

typedef struct linli_topic_schema {
  const char *name;      /* topic name, e.g. "linli.orders.v1" */
  const char *key_field; /* what the message key is, e.g. "order_id"; for the
                            DLQ "(original key)" */
  int compacted;         /* 1 if cleanup.policy=compact (latest per key) */
  /* The envelope message (e.g. linli__order_event__descriptor); NULL for
   * linli.dlq.v1, whose values are the original bytes. */
  const ProtobufCMessageDescriptor *envelope;
} linli_topic_schema_t;

/* The topic named topic, or NULL if linli has no such topic. */
const linli_topic_schema_t *linli_schema_topic(const char *topic);

/* Every topic, in DESIGN.md order (DLQ last); *n gets the count. */
const linli_topic_schema_t *linli_schema_topics(size_t *n);

/* The topic whose envelope is desc, or NULL. */
const linli_topic_schema_t *
linli_schema_topic_for_envelope(const ProtobufCMessageDescriptor *desc);

/*
 * Any linli message descriptor by name: short name ("OrderPlaced",
 * "OrderEvent", "Meta", "Tier"), name relative to the package
 * ("CampaignOpened.Tier") or full name ("linli.OrderPlaced"). NULL if
 * unknown (or name is NULL).
 */
const ProtobufCMessageDescriptor *linli_schema_message(const char *name);

/*
 * The name of the oneof member set in an envelope: the short name of the
 * member's message type, e.g. "OrderPlaced" for an OrderEvent carrying
 * order_placed. The name is static (descriptor data).
 * Returns LINLI_OK; LINLI_ERR_NOTFOUND if no member is set (*type_name =
 * NULL); LINLI_ERR_INVALID if envelope is NULL or its type has no oneof.
 */
int linli_schema_event_type(const ProtobufCMessage *envelope,
                            const char **type_name);

/*
 * The member message set in an envelope's oneof (borrowed from the
 * envelope), with the same return codes as linli_schema_event_type.
 * type_name may be NULL.
 */
int linli_schema_event_member(const ProtobufCMessage *envelope,
                              const ProtobufCMessage **member,
                              const char **type_name);

/* The envelope's Meta (field `meta`), borrowed; NULL if absent or if msg has
 * no meta field. */
const Linli__Meta *linli_schema_meta(const ProtobufCMessage *envelope);

/*
 * Fill meta for a decision a consumer takes on its own clock (an order's
 * payment deadline passed, a campaign's deadline, a wave's cutoff): the
 * event id derives from seed (what was decided, e.g. "expire/<order_id>"),
 * partition and at_ms only, so two instances or a retry writing the same
 * decision write the same event. id (LINLI_ID_BUFSZ bytes) holds the id
 * that meta->event_id points to; producer must outlive meta.
 */
void linli_schema_decision_meta(Linli__Meta *meta, char *id, const char *seed,
                                int32_t partition, int64_t at_ms,
                                int64_t now_ms, const char *producer);

#endif
