/*
 * apply.c - one record into the record: decode it with the topic's
 * envelope (linli/schema.h), find its event id and time, hand it to the
 * applier of its topic, and send it to the DLQ (through the outbox) when
 * the applier or the decoder refuses it. Also the helpers every order
 * applier uses: the duplicate check on order_events, the row lock, the
 * state machine, and the history row with personal data removed.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "apply.h"
#include "linli/error.h"
#include "linli/json.h"
#include "linli/log.h"
#include "linli/schema.h"

/* ------------------------------------------------------------------ SQL */

int ledger_prepare(struct ledger *lg, const struct ledger_stmt *st) {
  return linli_pg_prepare(lg->pg, st->name, st->sql, st->nparams);
}

int ledger_sql(struct ledger *lg, const struct ledger_stmt *st,
               const char *const *params, PGresult **res, char *err,
               size_t errlen) {
  int rc = linli_pg_exec_prepared(lg->pg, st->name, st->nparams, params, res,
                                  err, errlen);
  if (rc == LINLI_ERR_INVALID && strstr(err, "no such prepared statement")) {
    /* First use: register it (prepared now and after every reconnect). */
    rc = ledger_prepare(lg, st);
    if (rc == LINLI_OK)
      rc = linli_pg_exec_prepared(lg->pg, st->name, st->nparams, params, res,
                                  err, errlen);
    else if (rc != LINLI_ERR_TRANSIENT)
      snprintf(err, errlen, "XX000: statement %s does not prepare", st->name);
    else
      snprintf(err, errlen, "08006: connection lost preparing %s", st->name);
  }
  return rc;
}

int ev_sql(struct ledger_ev *ev, const struct ledger_stmt *st,
           const char *const *params, PGresult **res) {
  return ledger_sql(ev->lg, st, params, res, ev->err, ev->errlen);
}

int ev_dlq(struct ledger_ev *ev, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(ev->reason, sizeof ev->reason, fmt, ap);
  va_end(ap);
  ev->dlq = 1;
  return LINLI_ERR_INVALID;
}

int ev_check_id(struct ledger_ev *ev, const char *s, const char *field) {
  if (s != NULL && linli_id_valid(s))
    return 1;
  ev_dlq(ev, "%s: must be 1-64 characters of [A-Za-z0-9_-]", field);
  return 0;
}

const char *opt(const char *s) { return s != NULL && s[0] ? s : NULL; }

const char *ev_enum_name(const ProtobufCEnumDescriptor *d, int v) {
  const ProtobufCEnumValue *e = protobuf_c_enum_descriptor_get_value(d, v);
  return e ? e->name : "UNKNOWN";
}

const char *ledger_topic_base(const struct ledger *lg, const char *topic,
                              char *buf, size_t len) {
  size_t tl = strlen(topic), sl = strlen(lg->suffix);
  if (sl == 0 || tl <= sl || strcmp(topic + tl - sl, lg->suffix) != 0 ||
      tl - sl >= len)
    return topic;
  memcpy(buf, topic, tl - sl);
  buf[tl - sl] = '\0';
  return buf;
}

int ledger_touch(struct ledger *lg, const char *order_id) {
  struct ledger_txn *t = &lg->txn;
  for (size_t i = 0; i < t->ntouched; i++)
    if (strcmp(t->touched[i], order_id) == 0)
      return LINLI_OK;
  if (t->ntouched == t->captouched) {
    size_t cap = t->captouched ? t->captouched * 2 : 64;
    char **n = realloc(t->touched, cap * sizeof *n);
    if (n == NULL)
      return LINLI_ERR_NOMEM;
    t->touched = n;
    t->captouched = cap;
  }
  t->touched[t->ntouched] = strdup(order_id);
  if (t->touched[t->ntouched] == NULL)
    return LINLI_ERR_NOMEM;
  t->ntouched++;
  return LINLI_OK;
}

/* -------------------------------------------------------------- history */

static const struct ledger_stmt SEEN = {
    "ledger_seen", "SELECT 1 FROM order_events WHERE event_id = $1", 1};

static const struct ledger_stmt LOCK = {
    "ledger_order_lock",
    "SELECT state, coalesce(payment_txn_id, ''), placed_event_id IS NOT NULL "
    "FROM orders WHERE order_id = $1 FOR UPDATE",
    1};

static const struct ledger_stmt CREATE = {
    "ledger_order_create",
    "INSERT INTO orders (order_id, state, reason, last_event_id, "
    "state_changed_at, refunded_fen) VALUES ($1::text, $2, $3, $4, "
    "to_timestamp($5::bigint / 1000.0), (SELECT coalesce(sum(amount_fen), 0) "
    "FROM refunds WHERE order_id = $1::text))",
    5};

static const struct ledger_stmt MOVE = {
    "ledger_order_move",
    "UPDATE orders SET state = $2, reason = $3, last_event_id = $4, "
    "state_changed_at = to_timestamp($5::bigint / 1000.0), "
    "version = version + 1, updated_at = now() WHERE order_id = $1",
    5};

static const struct ledger_stmt CHANGED = {
    "ledger_order_changed",
    "UPDATE orders SET version = version + 1, updated_at = now() "
    "WHERE order_id = $1",
    1};

static const struct ledger_stmt HISTORY = {
    "ledger_history",
    "INSERT INTO order_events (event_id, order_id, topic, partition, "
    "kafka_offset, type, occurred_at, producer, trace_id, causation_id, "
    "payload) VALUES ($1, $2, $3, $4, $5, $6, "
    "to_timestamp($7::bigint / 1000.0), $8, $9, $10, $11::jsonb) "
    "ON CONFLICT (event_id) DO NOTHING",
    11};

int ev_seen(struct ledger_ev *ev, int *seen) {
  const char *p[] = {ev->event_id};
  PGresult *res = NULL;
  int rc = ev_sql(ev, &SEEN, p, &res);
  if (rc != LINLI_OK)
    return rc;
  *seen = PQntuples(res) > 0;
  PQclear(res);
  if (*seen) {
    ev->lg->txn.skipped++;
    linli_counter_add(ev->lg->m_duplicates, 1);
  }
  return LINLI_OK;
}

int ev_order_lock(struct ledger_ev *ev, const char *order_id,
                  struct order_row *row) {
  memset(row, 0, sizeof *row);
  const char *p[] = {order_id};
  PGresult *res = NULL;
  int rc = ev_sql(ev, &LOCK, p, &res);
  if (rc != LINLI_OK)
    return rc;
  if (PQntuples(res) == 1) {
    row->state = ledger_state_parse(PQgetvalue(res, 0, 0));
    snprintf(row->payment_txn, sizeof row->payment_txn, "%s",
             PQgetvalue(res, 0, 1));
    row->placed = strcmp(PQgetvalue(res, 0, 2), "t") == 0;
  }
  PQclear(res);
  return LINLI_OK;
}

int ev_order_advance(struct ledger_ev *ev, const char *order_id,
                     struct order_row *row, int target, const char *reason) {
  switch (ledger_transition(row->state, target)) {
  case LEDGER_ILLEGAL:
    return ev_dlq(ev, "illegal transition %s -> %s for order %s",
                  ledger_state_name(row->state), ledger_state_name(target),
                  order_id);
  case LEDGER_HISTORY:
    return LINLI_OK;
  case LEDGER_APPLY:
    break;
  }
  const char *p[] = {order_id, ledger_state_name(target), opt(reason),
                     ev->event_id, ev->occurred_ms};
  int rc = ev_sql(ev, row->state == ST_NONE ? &CREATE : &MOVE, p, NULL);
  /* Another instance created the row first (it read another topic of the
   * same order): run the batch again, it will find the row. */
  if (rc == LINLI_ERR_CONFLICT)
    rc = LINLI_ERR_TRANSIENT;
  if (rc != LINLI_OK)
    return rc;
  row->state = target;
  return ledger_touch(ev->lg, order_id);
}

int ev_order_changed(struct ledger_ev *ev, const char *order_id) {
  const char *p[] = {order_id};
  PGresult *res = NULL;
  int rc = ev_sql(ev, &CHANGED, p, &res);
  if (rc != LINLI_OK)
    return rc;
  int n = atoi(PQcmdTuples(res));
  PQclear(res);
  return n > 0 ? ledger_touch(ev->lg, order_id) : LINLI_OK;
}

/* Personal data never reaches order_events: names, phones and addresses
 * become "[encrypted]" (they are in orders.*_enc), home coordinates and
 * pickup codes (a collection secret) are removed. Applies to any event. */
static void strip_personal(json_t *j) {
  static const char *const secret[] = {"recipient_name", "phone", "address"};
  if (json_is_object(j)) {
    for (size_t i = 0; i < 3; i++)
      if (json_object_get(j, secret[i]) != NULL)
        json_object_set_new(j, secret[i], json_string("[encrypted]"));
    json_object_del(j, "pickup_code");
    json_t *home = json_object_get(j, "home");
    if (json_is_object(home)) {
      json_object_del(home, "lat_e6");
      json_object_del(home, "lng_e6");
    }
    const char *k;
    json_t *v;
    json_object_foreach(j, k, v) strip_personal(v);
  } else if (json_is_array(j)) {
    size_t i;
    json_t *v;
    json_array_foreach(j, i, v) strip_personal(v);
  }
}

int ev_history(struct ledger_ev *ev, const char *order_id) {
  json_t *j = ev->json; /* converted (and so checked) before any write */
  strip_personal(j);
  char *payload = json_dumps(j, JSON_COMPACT);
  if (payload == NULL)
    return LINLI_ERR_NOMEM;
  const Linli__Meta *mt = ev->meta;
  const char *p[] = {ev->event_id,
                     order_id,
                     ev->topic,
                     ev->partition,
                     ev->offset,
                     ev->type,
                     ev->occurred_ms,
                     mt ? mt->producer : "",
                     mt ? mt->trace_id : "",
                     mt ? mt->causation_id : "",
                     payload};
  int rc = ev_sql(ev, &HISTORY, p, NULL);
  free(payload);
  return rc;
}

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
