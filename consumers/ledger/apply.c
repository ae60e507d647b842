/*
 * apply.c - one record into the record: decode it with the topic's
 * envelope (domain/schema.h), find its event id and time, hand it to the
 * applier of its topic (the dispatch table below), and send it to the DLQ
 * (through the outbox) when the applier or the decoder refuses it. The
 * helpers the appliers call are in order_ops.c, stock_move.c and sql.c:
 * nothing calls back into this file but batch.c.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "apply.h"
#include "domain/records.h"
#include "linli/error.h"
#include "linli/json.h"
#include "linli/log.h"
#include "domain/schema.h"

/* ------------------------------------------------------------- dispatch */

/* The latest time PostgreSQL's timestamptz holds comfortably: 9999-12-31
 * in UTC ms. */
#define MAX_TIME_MS INT64_C(253402300799999)

/* "an" before a vowel, "a" otherwise: "not an OrderEvent". */
static const char *article(const char *noun) {
  return noun != NULL && strchr("AEIOUaeiou", noun[0]) != NULL && noun[0]
             ? "an"
             : "a";
}

struct route {
  const char *topic;
  int (*fn)(struct ledger_ev *ev);
};

static const struct route ROUTES[] = {
    {LINLI_TOPIC_CATALOG, apply_catalog},
    {LINLI_TOPIC_INVENTORY, apply_inventory},
    {LINLI_TOPIC_ORDERS, apply_orders},
    {LINLI_TOPIC_GROUPBUY, apply_groupbuy},
    {LINLI_TOPIC_RESERVATIONS, apply_reservations},
    {LINLI_TOPIC_SETTLEMENTS, apply_settlements},
    {LINLI_TOPIC_FULFILLMENT, apply_fulfillment},
    {LINLI_TOPIC_ROUTES, apply_routes},
    {LINLI_TOPIC_DELIVERY, apply_delivery},
    {LINLI_TOPIC_REFUNDS, apply_refunds},
    {LINLI_TOPIC_NOTIFICATIONS, apply_notifications},
};

/* libdomain's judgement of the record (domain/records.h), the one every
 * other reader of its topic makes: 1 (reason set) when it is bad. */
static int domain_bad(const struct ledger_ev *ev, const char *base,
                      const ProtobufCMessage *env, char *reason, size_t len) {
  struct dom_first_err fe = {reason, len, 0};
  return dom_record_check(base, env, ev->lg->max_lines, dom_first_err, &fe) >
         0;
}

static int decode_and_apply(struct ledger_ev *ev) {
  const rd_kafka_message_t *m = ev->m;
  if (strcmp(ev->topic, ev->lg->dlq_topic) == 0)
    return apply_dlq(ev); /* original bytes: never decoded as an event */
  char base_buf[256];
  const char *base =
      ledger_topic_base(ev->lg, ev->topic, base_buf, sizeof base_buf);
  int (*fn)(struct ledger_ev *) = NULL;
  for (size_t i = 0; i < sizeof ROUTES / sizeof ROUTES[0]; i++)
    if (strcmp(ROUTES[i].topic, base) == 0)
      fn = ROUTES[i].fn;
  const linli_topic_schema_t *sc = linli_schema_topic(base);
  if (fn == NULL || sc == NULL || sc->envelope == NULL)
    return ev_dlq(ev, "the ledger does not read %s", ev->topic);
  if (m->payload == NULL || m->len == 0) {
    if (sc->compacted)
      return LINLI_OK; /* a tombstone: the record keeps what it had */
    return ev_dlq(ev, "empty record: expected %s %s",
                  article(sc->envelope->short_name),
                  sc->envelope->short_name);
  }
  ProtobufCMessage *env = protobuf_c_message_unpack(
      sc->envelope, NULL, m->len, (const uint8_t *)m->payload);
  if (env == NULL)
    return ev_dlq(ev, "undecodable record: not %s %s (%zu bytes)",
                  article(sc->envelope->short_name), sc->envelope->short_name,
                  m->len);
  int rc;
  /* Before anything else, so the reason is the one every other part
   * gives (a string that is not UTF-8 included). */
  char why[400];
  if (domain_bad(ev, base, env, why, sizeof why)) {
    rc = ev_dlq(ev, "%s", why);
    goto done;
  }
  if (linli_schema_event_member(env, &ev->member, &ev->type) != LINLI_OK) {
    rc = ev_dlq(ev, "%s carries no event", sc->envelope->short_name);
    goto done;
  }
  /* Whatever the record holds must convert before anything is written:
   * a string that is not UTF-8 (or a value JSON cannot hold) is the
   * record's fault, not a reason to stop (DESIGN.md rule 5). */
  if (linli_pb_to_json(env, &ev->json) != LINLI_OK) {
    rc = ev_dlq(ev, "%s: a string is not valid UTF-8 (the event does not "
                    "convert to JSON)",
                sc->envelope->short_name);
    goto done;
  }
  ev->env = env;
  ev->meta = linli_schema_meta(env);
  if (ev->meta != NULL && ev->meta->event_id != NULL &&
      ev->meta->event_id[0] != '\0') {
    ev->event_id = ev->meta->event_id;
  } else {
    /* No event id: derive one from the position, so that this record is
     * still recorded once (a copy elsewhere is a different event). */
    linli_id_derive(ev->topic, m->partition, m->offset, 0, ev->event_id_buf,
                    sizeof ev->event_id_buf);
    ev->event_id = ev->event_id_buf;
  }
  int64_t at = ev->meta ? ev->meta->occurred_at_ms : 0;
  if (at <= 0) {
    rd_kafka_timestamp_type_t tt;
    at = rd_kafka_message_timestamp(m, &tt);
  }
  snprintf(ev->occurred_ms, sizeof ev->occurred_ms, "%lld",
           (long long)(at > 0 ? at : 0));
  if (at > MAX_TIME_MS) {
    rc = ev_dlq(ev, "meta.occurred_at_ms: out of range (after 9999-12-31)");
    goto done;
  }
  rc = fn(ev);
done:
  json_decref(ev->json);
  ev->json = NULL;
  protobuf_c_message_free_unpacked(env, NULL);
  ev->env = NULL;
  ev->member = NULL;
  ev->meta = NULL;
  return rc;
}

int ledger_apply(struct ledger *lg, int i, char *err, size_t errlen) {
  struct ledger_rec *r = &lg->recs[i];
  struct ledger_ev ev;
  memset(&ev, 0, sizeof ev);
  ev.lg = lg;
  ev.m = r->m;
  ev.topic = rd_kafka_topic_name(r->m->rkt);
  ev.err = err;
  ev.errlen = errlen;
  snprintf(ev.partition, sizeof ev.partition, "%d", (int)r->m->partition);
  snprintf(ev.offset, sizeof ev.offset, "%lld", (long long)r->m->offset);
  int rc;
  if (r->poison != NULL)
    rc = ev_dlq(&ev, "%s", r->poison);
  else
    rc = decode_and_apply(&ev);
  if (rc == LINLI_ERR_INVALID && ev.dlq) {
    if (strcmp(ev.topic, lg->dlq_topic) == 0) {
      /* Never feed the DLQ from the DLQ: log and move on. */
      LINLI_ERROR("DLQ record not recorded",
                  "partition=%s offset=%s reason=\"%s\"", ev.partition,
                  ev.offset, ev.reason);
      return LINLI_OK;
    }
    rc = ledger_outbox_dlq(lg, r->m, ev.reason, r->redact, err, errlen);
    if (rc == LINLI_OK) {
      lg->txn.dlq++;
      free(r->dlq_reason);
      r->dlq_reason = strdup(ev.reason);
      if (r->dlq_reason == NULL)
        rc = LINLI_ERR_NOMEM;
    }
    return rc;
  }
  if (rc == LINLI_OK)
    lg->txn.applied++;
  return rc;
}
