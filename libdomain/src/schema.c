/*
 * schema.c - the topic registry (see domain/schema.h): one static table of
 * topics and their envelope descriptors, and descriptor walks that find a
 * message by name or name the oneof member set in an envelope.
 *
 * No state: message lookups walk the descriptor graph from the envelopes on
 * each call (about fifty descriptors), so nothing needs initialising or
 * locking.
 */
#include "domain/schema.h"

#include <stdint.h>
#include <string.h>

#include "linli/error.h"
#include "linli/ids.h"

#include "catalog.pb-c.h"
#include "common.pb-c.h"
#include "delivery.pb-c.h"
#include "fulfillment.pb-c.h"
#include "groupbuy.pb-c.h"
#include "inventory.pb-c.h"
#include "notifications.pb-c.h"
#include "order_status.pb-c.h"
#include "orders.pb-c.h"
#include "refunds.pb-c.h"
#include "reservations.pb-c.h"
#include "routes.pb-c.h"
#include "settlements.pb-c.h"

/* ---------------------------------------------------------------- topics */

static const linli_topic_schema_t topics[] = {
    {LINLI_TOPIC_CATALOG, "sku_id", 1, &linli__catalog_event__descriptor},
    {LINLI_TOPIC_INVENTORY, "warehouse_id", 0,
     &linli__inventory_event__descriptor},
    {LINLI_TOPIC_ORDERS, "order_id", 0, &linli__order_event__descriptor},
    {LINLI_TOPIC_GROUPBUY, "campaign_id", 0,
     &linli__group_buy_event__descriptor},
    {LINLI_TOPIC_RESERVATIONS, "order_id", 0,
     &linli__reservation_event__descriptor},
    {LINLI_TOPIC_SETTLEMENTS, "campaign_id", 0,
     &linli__settlement_event__descriptor},
    {LINLI_TOPIC_FULFILLMENT, "warehouse_id", 0,
     &linli__fulfillment_event__descriptor},
    {LINLI_TOPIC_ROUTES, "warehouse_id", 0, &linli__route_event__descriptor},
    {LINLI_TOPIC_DELIVERY, "order_id", 0, &linli__delivery_event__descriptor},
    {LINLI_TOPIC_REFUNDS, "order_id", 0, &linli__refund_event__descriptor},
    {LINLI_TOPIC_NOTIFICATIONS, "user_id", 0,
     &linli__notification_event__descriptor},
    {LINLI_TOPIC_ORDER_STATUS, "order_id", 1,
     &linli__order_status_event__descriptor},
    {LINLI_TOPIC_DLQ, "(original key)", 0, NULL},
};

#define NTOPICS (sizeof(topics) / sizeof(topics[0]))

const linli_topic_schema_t *linli_schema_topic(const char *topic) {
  if (topic == NULL)
    return NULL;
  for (size_t i = 0; i < NTOPICS; i++)
    if (strcmp(topics[i].name, topic) == 0)
      return &topics[i];
  return NULL;
}

const linli_topic_schema_t *linli_schema_topics(size_t *n) {
  if (n != NULL)
    *n = NTOPICS;
  return topics;
}

const linli_topic_schema_t *
linli_schema_topic_for_envelope(const ProtobufCMessageDescriptor *desc) {
  if (desc == NULL)
    return NULL;
  for (size_t i = 0; i < NTOPICS; i++)
    if (topics[i].envelope == desc)
      return &topics[i];
  return NULL;
}

/* ------------------------------------------------------- message lookup */

/* Upper bound on distinct message types; the walk stops adding beyond it
 * (the unit test asserts every message is found, so a schema that outgrows
 * it fails there). */
#define MAX_DESCS 256

typedef struct desc_set {
  const ProtobufCMessageDescriptor *d[MAX_DESCS];
  size_t n;
} desc_set_t;

static int desc_set_has(const desc_set_t *s,
                        const ProtobufCMessageDescriptor *d) {
  for (size_t i = 0; i < s->n; i++)
    if (s->d[i] == d)
      return 1;
  return 0;
}

/* Add d and every message type reachable from its fields. */
static void desc_collect(desc_set_t *s, const ProtobufCMessageDescriptor *d) {
  if (d == NULL || desc_set_has(s, d) || s->n >= MAX_DESCS)
    return;
  s->d[s->n++] = d;
  for (unsigned i = 0; i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = &d->fields[i];
    if (f->type == PROTOBUF_C_TYPE_MESSAGE)
      desc_collect(s, (const ProtobufCMessageDescriptor *)f->descriptor);
  }
}

static int name_matches(const ProtobufCMessageDescriptor *d,
                        const char *name) {
  static const char pkg[] = "linli.";
  if (strcmp(d->short_name, name) == 0 || strcmp(d->name, name) == 0)
    return 1;
  /* Relative to the package: "CampaignOpened.Tier". */
  return strncmp(d->name, pkg, sizeof(pkg) - 1) == 0 &&
         strcmp(d->name + sizeof(pkg) - 1, name) == 0;
}

const ProtobufCMessageDescriptor *linli_schema_message(const char *name) {
  if (name == NULL || *name == '\0')
    return NULL;
  desc_set_t set;
  set.n = 0;
  for (size_t i = 0; i < NTOPICS; i++)
    desc_collect(&set, topics[i].envelope);
  for (size_t i = 0; i < set.n; i++)
    if (name_matches(set.d[i], name))
      return set.d[i];
  return NULL;
}

/* ------------------------------------------------------------ envelopes */

int linli_schema_event_member(const ProtobufCMessage *envelope,
                              const ProtobufCMessage **member,
                              const char **type_name) {
  if (member != NULL)
    *member = NULL;
  if (type_name != NULL)
    *type_name = NULL;
  if (envelope == NULL || envelope->descriptor == NULL)
    return LINLI_ERR_INVALID;
  const ProtobufCMessageDescriptor *d = envelope->descriptor;
  const char *base = (const char *)envelope;
  int has_oneof = 0;
  for (unsigned i = 0; i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = &d->fields[i];
    if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) == 0)
      continue;
    has_oneof = 1;
    /* protobuf-c stores a oneof's case as a 32-bit enum holding the number
     * of the member set (0 = none). */
    uint32_t which;
    memcpy(&which, base + f->quantifier_offset, sizeof(which));
    if (which != f->id)
      continue;
    if (f->type != PROTOBUF_C_TYPE_MESSAGE)
      return LINLI_ERR_INVALID; /* not an envelope: scalar oneof member */
    const ProtobufCMessage *m;
    memcpy(&m, base + f->offset, sizeof(m));
    if (m == NULL)
      return LINLI_ERR_NOTFOUND;
    if (member != NULL)
      *member = m;
    if (type_name != NULL)
      *type_name =
          ((const ProtobufCMessageDescriptor *)f->descriptor)->short_name;
    return LINLI_OK;
  }
  return has_oneof ? LINLI_ERR_NOTFOUND : LINLI_ERR_INVALID;
}

int linli_schema_event_type(const ProtobufCMessage *envelope,
                            const char **type_name) {
  if (type_name == NULL)
    return LINLI_ERR_INVALID;
  return linli_schema_event_member(envelope, NULL, type_name);
}

const Linli__Meta *linli_schema_meta(const ProtobufCMessage *envelope) {
  if (envelope == NULL || envelope->descriptor == NULL)
    return NULL;
  const ProtobufCFieldDescriptor *f =
      protobuf_c_message_descriptor_get_field_by_name(envelope->descriptor,
                                                      "meta");
  if (f == NULL || f->type != PROTOBUF_C_TYPE_MESSAGE ||
      f->descriptor != &linli__meta__descriptor)
    return NULL;
  const Linli__Meta *meta;
  memcpy(&meta, (const char *)envelope + f->offset, sizeof(meta));
  return meta;
}

void linli_schema_decision_meta(Linli__Meta *meta, char *id, const char *seed,
                                int32_t partition, int64_t at_ms,
                                int64_t now_ms, const char *producer) {
  linli_id_derive(seed, partition, at_ms, 0, id, LINLI_ID_BUFSZ);
  meta->event_id = id;
  meta->occurred_at_ms = now_ms;
  meta->producer = (char *)producer;
  meta->schema_version = LINLI_SCHEMA_VERSION;
}
