/*
 * order_ops.c - the helpers every applier uses (apply.h): SQL on behalf of
 * the record being applied, the DLQ verdict, field checks, the duplicate
 * check on order_events, the order row lock, the state machine
 * (libdomain's), and the history row with personal data removed. The
 * duplicate check and the row lock are prefetched for the whole batch in
 * one statement each (batch.c), then answered from memory.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "apply.h"
#include "linli/error.h"
#include "domain/schema.h"

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

/* -------------------------------------------------------------- history */

static const struct ledger_stmt SEEN = {
    "ledger_seen", "SELECT 1 FROM order_events WHERE event_id = $1", 1,
    0, NULL, NULL, 0, 0, NULL};

static const struct ledger_stmt LOCK = {
    "ledger_order_lock",
    "SELECT state, coalesce(payment_txn_id, ''), placed_event_id IS NOT NULL "
    "FROM orders WHERE order_id = $1 FOR UPDATE",
    1, 0, NULL, NULL, 0, 0, NULL};

/* Plain INSERT also in bulk: a row another instance created meanwhile is a
 * unique violation, and the batch runs again a row at a time, where it is
 * a race to retry (ev_order_advance). */
static const struct ledger_stmt CREATE = {
    "ledger_order_create",
    "INSERT INTO orders (order_id, state, reason, last_event_id, "
    "state_changed_at, refunded_fen) VALUES ($1::text, $2, $3, $4, "
    "to_timestamp($5::bigint / 1000.0), (SELECT coalesce(sum(amount_fen), 0) "
    "FROM refunds WHERE order_id = $1::text))",
    5, 0,
    "INSERT INTO orders (order_id, state, reason, last_event_id, "
    "state_changed_at, refunded_fen) SELECT u.id, u.st, u.why, u.ev, "
    "to_timestamp(u.ms / 1000.0), (SELECT coalesce(sum(amount_fen), 0) FROM "
    "refunds f WHERE f.order_id = u.id) FROM unnest($1::text[], $2::text[], "
    "$3::text[], $4::text[], $5::bigint[]) AS u(id, st, why, ev, ms)",
    "orders", LEDGER_RANK_CREATE, 0, NULL};

/* The batch's changes of one order folded into one row version: the
 * latest state (n: how many moves, each a version), and expires_at. */
static int move_merge(char **row, const char *const *p) {
  long long n = atoll(p[5]);
  if (n > 0)
    for (int k = 1; k <= 4; k++) {
      char *v = p[k] ? strdup(p[k]) : NULL;
      if (p[k] && v == NULL)
        return LINLI_ERR_NOMEM;
      free(row[k]);
      row[k] = v;
    }
  char sum[24];
  snprintf(sum, sizeof sum, "%lld", atoll(row[5]) + n);
  char *v = strdup(sum);
  if (v == NULL)
    return LINLI_ERR_NOMEM;
  free(row[5]);
  row[5] = v;
  if (p[6] != NULL)
    for (int k = 6; k <= 7; k++) {
      if ((v = p[k] ? strdup(p[k]) : NULL) == NULL && p[k])
        return LINLI_ERR_NOMEM;
      free(row[k]);
      row[k] = v;
    }
  return LINLI_OK;
}

/* $6 moves (0: none, only $7) to state $2 ($3 reason, $4 event, $5 time),
 * and expires_at $7 (NULL: unchanged) if event $8 is the one that reserved
 * the order (its reservations row, written before: the first reservation
 * of the order sets its deadline, a later one does not). */
static const struct ledger_stmt MOVE = {
    "ledger_order_move",
    "UPDATE orders SET "
    "state = CASE WHEN $6::int > 0 THEN $2 ELSE state END, "
    "reason = CASE WHEN $6::int > 0 THEN $3 ELSE reason END, "
    "last_event_id = CASE WHEN $6::int > 0 THEN $4 ELSE last_event_id END, "
    "state_changed_at = CASE WHEN $6::int > 0 THEN "
    "to_timestamp($5::bigint / 1000.0) ELSE state_changed_at END, "
    "version = version + $6::int, "
    "updated_at = CASE WHEN $6::int > 0 THEN now() ELSE updated_at END, "
    "expires_at = CASE WHEN $7::bigint IS NOT NULL AND EXISTS (SELECT 1 "
    "FROM reservations r WHERE r.order_id = $1 AND r.last_event_id = $8) "
    "THEN to_timestamp($7::bigint / 1000.0) ELSE expires_at END "
    "WHERE order_id = $1",
    8, 0,
    "UPDATE orders o SET "
    "state = CASE WHEN u.n > 0 THEN u.st ELSE o.state END, "
    "reason = CASE WHEN u.n > 0 THEN u.why ELSE o.reason END, "
    "last_event_id = CASE WHEN u.n > 0 THEN u.ev ELSE o.last_event_id END, "
    "state_changed_at = CASE WHEN u.n > 0 THEN to_timestamp(u.ms / 1000.0) "
    "ELSE o.state_changed_at END, version = o.version + u.n, "
    "updated_at = CASE WHEN u.n > 0 THEN now() ELSE o.updated_at END, "
    "expires_at = CASE WHEN u.exp IS NOT NULL AND EXISTS (SELECT 1 FROM "
    "reservations r WHERE r.order_id = u.id AND r.last_event_id = u.expev) "
    "THEN to_timestamp(u.exp / 1000.0) ELSE o.expires_at END "
    "FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], "
    "$5::bigint[], $6::int[], $7::bigint[], $8::text[]) AS u(id, st, why, "
    "ev, ms, n, exp, expev) WHERE o.order_id = u.id",
    "orders reservations", LEDGER_RANK_MOVE, 1, move_merge};

static const struct ledger_stmt CHANGED = {
    "ledger_order_changed",
    "UPDATE orders SET version = version + 1, updated_at = now() "
    "WHERE order_id = $1",
    1, 0, NULL, NULL, 0, 0, NULL};

static const struct ledger_stmt HISTORY = {
    "ledger_history",
    "INSERT INTO order_events (event_id, order_id, topic, partition, "
    "kafka_offset, type, occurred_at, producer, trace_id, causation_id, "
    "payload) VALUES ($1, $2, $3, $4, $5, $6, "
    "to_timestamp($7::bigint / 1000.0), $8, $9, $10, $11::jsonb) "
    "ON CONFLICT (event_id) DO NOTHING",
    11, 0,
    "INSERT INTO order_events (event_id, order_id, topic, partition, "
    "kafka_offset, type, occurred_at, producer, trace_id, causation_id, "
    "payload) SELECT a, b, c, d, e, f, to_timestamp(g / 1000.0), h, i, j, "
    "k::jsonb FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], "
    "$5::bigint[], $6::text[], $7::bigint[], $8::text[], $9::text[], "
    "$10::text[], $11::text[]) AS u(a, b, c, d, e, f, g, h, i, j, k) "
    "ON CONFLICT (event_id) DO NOTHING",
    "order_events", LEDGER_RANK_CHILD, 0, NULL};

/* ------------------------------------------------------- seen, batched */

static const struct ledger_stmt SEEN_MANY = {
    "ledger_seen_many",
    "SELECT event_id FROM order_events WHERE event_id = ANY($1::text[])", 1,
    1, NULL, NULL, 0, 0, NULL};

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

void ledger_seen_clear(struct ledger_txn *t) {
  for (size_t i = 0; i < t->nseen; i++)
    free(t->seen_ids[i]);
  t->nseen = 0;
}

/* Index of id among the batch's looked-up ids, or -1. */
static long seen_find(const struct ledger_txn *t, const char *id) {
  if (t->nseen == 0)
    return -1;
  char *const *hit =
      bsearch(&id, t->seen_ids, t->nseen, sizeof *t->seen_ids, cmp_str);
  return hit != NULL ? (long)(hit - t->seen_ids) : -1;
}

static int seen_add(struct ledger_txn *t, const char *id) {
  if (t->nseen == t->capseen) {
    size_t cap = t->capseen ? t->capseen * 2 : 512;
    char **n = realloc(t->seen_ids, cap * sizeof *n);
    if (n == NULL)
      return LINLI_ERR_NOMEM;
    t->seen_ids = n;
    unsigned char *f = realloc(t->seen, cap);
    if (f == NULL)
      return LINLI_ERR_NOMEM;
    t->seen = f;
    t->capseen = cap;
  }
  if ((t->seen_ids[t->nseen] = strdup(id)) == NULL)
    return LINLI_ERR_NOMEM;
  t->seen[t->nseen++] = 0;
  return LINLI_OK;
}

/* The record's own event id (meta), if it is a well-formed id: what
 * decode_and_apply will use (a missing one is derived, never in the
 * history under another record). */
static int record_event_id(struct ledger *lg, const rd_kafka_message_t *m,
                           struct ledger_txn *t) {
  if (m->payload == NULL || m->len == 0)
    return LINLI_OK;
  char base_buf[256];
  const char *base = ledger_topic_base(lg, rd_kafka_topic_name(m->rkt),
                                       base_buf, sizeof base_buf);
  const linli_topic_schema_t *sc = linli_schema_topic(base);
  if (sc == NULL || sc->envelope == NULL)
    return LINLI_OK;
  ProtobufCMessage *env = protobuf_c_message_unpack(
      sc->envelope, NULL, m->len, (const uint8_t *)m->payload);
  if (env == NULL)
    return LINLI_OK;
  const Linli__Meta *mt = linli_schema_meta(env);
  int rc = LINLI_OK;
  if (mt != NULL && mt->event_id != NULL && linli_id_valid(mt->event_id))
    rc = seen_add(t, mt->event_id);
  protobuf_c_message_free_unpacked(env, NULL);
  return rc;
}

int ledger_prefetch_seen(struct ledger *lg, char *err, size_t errlen) {
  struct ledger_txn *t = &lg->txn;
  ledger_seen_clear(t);
  int rc = LINLI_OK;
  for (int i = 0; i < lg->nrecs && rc == LINLI_OK; i++)
    if (lg->recs[i].poison == NULL &&
        strcmp(rd_kafka_topic_name(lg->recs[i].m->rkt), lg->dlq_topic) != 0)
      rc = record_event_id(lg, lg->recs[i].m, t);
  if (rc != LINLI_OK || t->nseen == 0)
    return rc;
  /* Every flag is still 0: only the ids move. */
  t->nseen = ledger_ids_unique(t->seen_ids, t->nseen);
  char *lit =
      ledger_text_array((const char *const *)t->seen_ids, t->nseen);
  if (lit == NULL)
    return LINLI_ERR_NOMEM;
  const char *p[] = {lit};
  PGresult *res = NULL;
  rc = ledger_sql(lg, &SEEN_MANY, p, &res, err, errlen);
  free(lit);
  if (rc != LINLI_OK)
    return rc;
  for (int r = 0; r < PQntuples(res); r++) {
    long k = seen_find(t, PQgetvalue(res, r, 0));
    if (k >= 0)
      t->seen[k] = 1;
  }
  PQclear(res);
  return LINLI_OK;
}

int ev_seen(struct ledger_ev *ev, int *seen) {
  long k = seen_find(&ev->lg->txn, ev->event_id);
  int rc;
  if (k >= 0) {
    *seen = ev->lg->txn.seen[k];
  } else {
    const char *p[] = {ev->event_id};
    PGresult *res = NULL;
    if ((rc = ev_sql(ev, &SEEN, p, &res)) != LINLI_OK)
      return rc;
    *seen = PQntuples(res) > 0;
    PQclear(res);
  }
  if (*seen) {
    ev->lg->txn.skipped++;
    linli_counter_add(ev->lg->m_duplicates, 1);
  }
  return LINLI_OK;
}

/* ------------------------------------------------------ locks, batched */

static const struct ledger_stmt LOCK_MANY = {
    "ledger_order_lock_many",
    "SELECT order_id, state, coalesce(payment_txn_id, ''), "
    "placed_event_id IS NOT NULL FROM orders WHERE order_id = "
    "ANY($1::text[]) ORDER BY order_id FOR UPDATE",
    1, 1, NULL, NULL, 0, 0, NULL};

void ledger_locks_clear(struct ledger_txn *t) {
  for (size_t i = 0; i < t->nlock; i++)
    free(t->lock_ids[i]);
  t->nlock = 0;
}

static long lock_find(const struct ledger_txn *t, const char *id) {
  if (t->nlock == 0)
    return -1;
  char *const *hit =
      bsearch(&id, t->lock_ids, t->nlock, sizeof *t->lock_ids, cmp_str);
  return hit != NULL ? (long)(hit - t->lock_ids) : -1;
}

static int lock_add(struct ledger_txn *t, const char *id) {
  if (t->nlock == t->caplock) {
    size_t cap = t->caplock ? t->caplock * 2 : 512;
    char **n = realloc(t->lock_ids, cap * sizeof *n);
    if (n == NULL)
      return LINLI_ERR_NOMEM;
    t->lock_ids = n;
    struct order_row *r = realloc(t->lock_rows, cap * sizeof *r);
    if (r == NULL)
      return LINLI_ERR_NOMEM;
    t->lock_rows = r;
    unsigned char *k = realloc(t->lock_known, cap);
    if (k == NULL)
      return LINLI_ERR_NOMEM;
    t->lock_known = k;
    t->caplock = cap;
  }
  if ((t->lock_ids[t->nlock] = strdup(id)) == NULL)
    return LINLI_ERR_NOMEM;
  memset(&t->lock_rows[t->nlock], 0, sizeof t->lock_rows[0]);
  t->lock_known[t->nlock++] = 1;
  return LINLI_OK;
}

/* Topics keyed by order id whose appliers lock the order. */
static int keyed_by_order(const char *base) {
  return strcmp(base, LINLI_TOPIC_ORDERS) == 0 ||
         strcmp(base, LINLI_TOPIC_RESERVATIONS) == 0 ||
         strcmp(base, LINLI_TOPIC_DELIVERY) == 0;
}

int ledger_prefetch_locks(struct ledger *lg, char *err, size_t errlen) {
  struct ledger_txn *t = &lg->txn;
  ledger_locks_clear(t);
  int rc = LINLI_OK;
  char id[LINLI_ID_BUFSZ + 8], base_buf[256];
  for (int i = 0; i < lg->nrecs && rc == LINLI_OK; i++) {
    const rd_kafka_message_t *m = lg->recs[i].m;
    if (m->key == NULL || m->key_len == 0 || m->key_len >= sizeof id)
      continue;
    if (!keyed_by_order(ledger_topic_base(lg, rd_kafka_topic_name(m->rkt),
                                          base_buf, sizeof base_buf)))
      continue;
    memcpy(id, m->key, m->key_len);
    id[m->key_len] = '\0';
    if (linli_id_valid(id))
      rc = lock_add(t, id);
  }
  if (rc != LINLI_OK || t->nlock == 0)
    return rc;
  /* Rows are still blank and all known: only the ids move. */
  t->nlock = ledger_ids_unique(t->lock_ids, t->nlock);
  char *lit =
      ledger_text_array((const char *const *)t->lock_ids, t->nlock);
  if (lit == NULL)
    return LINLI_ERR_NOMEM;
  const char *p[] = {lit};
  PGresult *res = NULL;
  rc = ledger_sql(lg, &LOCK_MANY, p, &res, err, errlen);
  free(lit);
  if (rc != LINLI_OK)
    return rc;
  for (int r = 0; r < PQntuples(res); r++) {
    long k = lock_find(t, PQgetvalue(res, r, 0));
    if (k < 0)
      continue;
    struct order_row *row = &t->lock_rows[k];
    row->state = dom_order_state_parse(PQgetvalue(res, r, 1));
    snprintf(row->payment_txn, sizeof row->payment_txn, "%s",
             PQgetvalue(res, r, 2));
    row->placed = strcmp(PQgetvalue(res, r, 3), "t") == 0;
  }
  PQclear(res);
  return LINLI_OK;
}

/* The cached row of order_id, if the batch locked it and it is current. */
static struct order_row *lock_cached(struct ledger *lg, const char *order_id) {
  long k = lock_find(&lg->txn, order_id);
  return k >= 0 && lg->txn.lock_known[k] ? &lg->txn.lock_rows[k] : NULL;
}

void ev_order_cached(struct ledger_ev *ev, const char *order_id, int state,
                     int placed) {
  struct order_row *c = lock_cached(ev->lg, order_id);
  if (c == NULL)
    return;
  if (state != DOM_ST_NONE)
    c->state = state;
  if (placed)
    c->placed = 1;
}

void ev_order_forget(struct ledger_ev *ev, const char *order_id) {
  long k = lock_find(&ev->lg->txn, order_id);
  if (k >= 0)
    ev->lg->txn.lock_known[k] = 0;
}

int ev_order_lock(struct ledger_ev *ev, const char *order_id,
                  struct order_row *row) {
  const struct order_row *c = lock_cached(ev->lg, order_id);
  if (c != NULL) {
    *row = *c;
    return LINLI_OK;
  }
  memset(row, 0, sizeof *row);
  const char *p[] = {order_id};
  PGresult *res = NULL;
  int rc = ev_sql(ev, &LOCK, p, &res);
  if (rc != LINLI_OK)
    return rc;
  if (PQntuples(res) == 1) {
    row->state = dom_order_state_parse(PQgetvalue(res, 0, 0));
    snprintf(row->payment_txn, sizeof row->payment_txn, "%s",
             PQgetvalue(res, 0, 1));
    row->placed = strcmp(PQgetvalue(res, 0, 2), "t") == 0;
  }
  PQclear(res);
  return LINLI_OK;
}

int ev_order_advance(struct ledger_ev *ev, const char *order_id,
                     struct order_row *row, enum dom_order_event event,
                     const char *reason) {
  int target;
  switch (dom_order_step(row->state, event, &target)) {
  case DOM_ORDER_ILLEGAL:
    return ev_dlq(ev, "illegal transition %s -> %s for order %s",
                  dom_order_state_name(row->state),
                  dom_order_state_name(dom_order_event_target(event)),
                  order_id);
  case DOM_ORDER_HISTORY:
    return LINLI_OK;
  case DOM_ORDER_APPLY:
    break;
  }
  int rc;
  if (row->state == DOM_ST_NONE) {
    const char *p[] = {order_id, dom_order_state_name(target), opt(reason),
                       ev->event_id, ev->occurred_ms};
    /* Read back at once (a unique violation is a race to handle), unless
     * the row waits for the batch's bulk insert. */
    PGresult *res = NULL;
    rc = ev_sql(ev, &CREATE, p, ledger_bulk_on(ev->lg) ? NULL : &res);
    PQclear(res);
  } else {
    const char *p[] = {order_id,     dom_order_state_name(target),
                       opt(reason),  ev->event_id,
                       ev->occurred_ms, "1",
                       NULL,         NULL};
    rc = ev_sql(ev, &MOVE, p, NULL);
  }
  /* Another instance created the row first (it read another topic of the
   * same order): run the batch again, it will find the row. */
  if (rc == LINLI_ERR_CONFLICT)
    rc = LINLI_ERR_TRANSIENT;
  if (rc != LINLI_OK)
    return rc;
  row->state = target;
  ev_order_cached(ev, order_id, target, 0);
  return ledger_touch(ev->lg, order_id);
}

int ev_order_expires(struct ledger_ev *ev, const char *order_id,
                     const char *expires_ms) {
  const char *p[] = {order_id, NULL, NULL,       NULL,
                     NULL,     "0",  expires_ms, ev->event_id};
  return ev_sql(ev, &MOVE, p, NULL);
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
  long k = seen_find(&ev->lg->txn, ev->event_id);
  if (rc == LINLI_OK && k >= 0)
    ev->lg->txn.seen[k] = 1; /* in order_events now (this transaction) */
  return rc;
}
