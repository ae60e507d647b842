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

/* Pipelined statements whose results were not read, at most: writes are
 * read back in groups, a read (res wanted) drains the pipeline at once. */
#define PIPE_MAX 512

static int owner_push(struct ledger *lg, int owner) {
  if (lg->pipe_n == 0)
    lg->pipe_head = 0;
  if (lg->pipe_head + lg->pipe_n == lg->pipe_cap) {
    size_t cap = lg->pipe_cap ? lg->pipe_cap * 2 : 1024;
    int *n = realloc(lg->pipe_owner, cap * sizeof *n);
    if (n == NULL)
      return LINLI_ERR_NOMEM;
    lg->pipe_owner = n;
    lg->pipe_cap = cap;
  }
  lg->pipe_owner[lg->pipe_head + lg->pipe_n++] = owner;
  return LINLI_OK;
}

int ledger_pipe_drain(struct ledger *lg, PGresult **res, char *err,
                      size_t errlen) {
  if (res != NULL)
    *res = NULL;
  while (lg->pipe_n > 0) {
    int owner = lg->pipe_owner[lg->pipe_head++];
    int last = --lg->pipe_n == 0;
    int rc = linli_pg_pipeline_next(lg->pg, last ? res : NULL, err, errlen);
    if (rc == LINLI_OK)
      continue;
    lg->txn.err_owner = owner;
    lg->pipe_n = 0;
    /* A write nobody waited for: a unique violation there is the record's
     * data error like any other (the reads that expect one wait). */
    if (rc == LINLI_ERR_CONFLICT && !(last && res != NULL))
      rc = LINLI_ERR_INVALID;
    return rc;
  }
  return LINLI_OK;
}

static int sql_pipelined(struct ledger *lg, const struct ledger_stmt *st,
                         const char *const *params, PGresult **res,
                         char *err, size_t errlen) {
  int rc = st->per_batch
               ? linli_pg_pipeline_send_sql(lg->pg, st->sql, st->nparams,
                                            params, err, errlen)
               : linli_pg_pipeline_send(lg->pg, st->name, st->nparams,
                                        params, err, errlen);
  if (rc == LINLI_ERR_INVALID && strstr(err, "no such prepared statement")) {
    rc = ledger_prepare(lg, st); /* registered; prepared when sent */
    if (rc == LINLI_OK)
      rc = linli_pg_pipeline_send(lg->pg, st->name, st->nparams, params, err,
                                  errlen);
  }
  if (rc == LINLI_OK)
    rc = owner_push(lg, lg->txn.cur);
  if (rc != LINLI_OK)
    return rc;
  if (res == NULL && lg->pipe_n < PIPE_MAX)
    return LINLI_OK;
  return ledger_pipe_drain(lg, res, err, errlen);
}

int ledger_sql(struct ledger *lg, const struct ledger_stmt *st,
               const char *const *params, PGresult **res, char *err,
               size_t errlen) {
  if (lg->pipe)
    return sql_pipelined(lg, st, params, res, err, errlen);
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
    "ledger_seen", "SELECT 1 FROM order_events WHERE event_id = $1", 1, 0};

static const struct ledger_stmt LOCK = {
    "ledger_order_lock",
    "SELECT state, coalesce(payment_txn_id, ''), placed_event_id IS NOT NULL "
    "FROM orders WHERE order_id = $1 FOR UPDATE",
    1, 0};

static const struct ledger_stmt CREATE = {
    "ledger_order_create",
    "INSERT INTO orders (order_id, state, reason, last_event_id, "
    "state_changed_at, refunded_fen) VALUES ($1::text, $2, $3, $4, "
    "to_timestamp($5::bigint / 1000.0), (SELECT coalesce(sum(amount_fen), 0) "
    "FROM refunds WHERE order_id = $1::text))",
    5, 0};

static const struct ledger_stmt MOVE = {
    "ledger_order_move",
    "UPDATE orders SET state = $2, reason = $3, last_event_id = $4, "
    "state_changed_at = to_timestamp($5::bigint / 1000.0), "
    "version = version + 1, updated_at = now() WHERE order_id = $1",
    5, 0};

static const struct ledger_stmt CHANGED = {
    "ledger_order_changed",
    "UPDATE orders SET version = version + 1, updated_at = now() "
    "WHERE order_id = $1",
    1, 0};

static const struct ledger_stmt HISTORY = {
    "ledger_history",
    "INSERT INTO order_events (event_id, order_id, topic, partition, "
    "kafka_offset, type, occurred_at, producer, trace_id, causation_id, "
    "payload) VALUES ($1, $2, $3, $4, $5, $6, "
    "to_timestamp($7::bigint / 1000.0), $8, $9, $10, $11::jsonb) "
    "ON CONFLICT (event_id) DO NOTHING",
    11, 0};

/* ------------------------------------------------------- seen, batched */

static const struct ledger_stmt SEEN_MANY = {
    "ledger_seen_many",
    "SELECT event_id FROM order_events WHERE event_id = ANY($1::text[])", 1,
    1};

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
  qsort(t->seen_ids, t->nseen, sizeof *t->seen_ids, cmp_str);
  size_t u = 0;
  for (size_t i = 0; i < t->nseen; i++) {
    if (u > 0 && strcmp(t->seen_ids[u - 1], t->seen_ids[i]) == 0) {
      free(t->seen_ids[i]);
      continue;
    }
    t->seen_ids[u++] = t->seen_ids[i];
  }
  t->nseen = u;
  /* "{a,b,...}": ids are [A-Za-z0-9_-], no quoting needed. */
  size_t len = 3;
  for (size_t i = 0; i < t->nseen; i++)
    len += strlen(t->seen_ids[i]) + 1;
  char *lit = malloc(len);
  if (lit == NULL)
    return LINLI_ERR_NOMEM;
  size_t off = 0;
  lit[off++] = '{';
  for (size_t i = 0; i < t->nseen; i++) {
    size_t l = strlen(t->seen_ids[i]);
    if (i > 0)
      lit[off++] = ',';
    memcpy(lit + off, t->seen_ids[i], l);
    off += l;
  }
  lit[off++] = '}';
  lit[off] = '\0';
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
    1, 1};

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
  qsort(t->lock_ids, t->nlock, sizeof *t->lock_ids, cmp_str);
  size_t u = 0, len = 3;
  for (size_t i = 0; i < t->nlock; i++) {
    if (u > 0 && strcmp(t->lock_ids[u - 1], t->lock_ids[i]) == 0) {
      free(t->lock_ids[i]);
      continue;
    }
    t->lock_ids[u++] = t->lock_ids[i];
    len += strlen(t->lock_ids[i]) + 1;
  }
  t->nlock = u;
  char *lit = malloc(len);
  if (lit == NULL)
    return LINLI_ERR_NOMEM;
  size_t off = 0;
  lit[off++] = '{';
  for (size_t i = 0; i < t->nlock; i++) {
    size_t l = strlen(t->lock_ids[i]);
    if (i > 0)
      lit[off++] = ',';
    memcpy(lit + off, t->lock_ids[i], l);
    off += l;
  }
  lit[off++] = '}';
  lit[off] = '\0';
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
    row->state = ledger_state_parse(PQgetvalue(res, r, 1));
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
  if (state != ST_NONE)
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
  switch (ledger_transition_reason(row->state, target, reason)) {
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
  /* Read back at once: a unique violation here is a race to handle. */
  PGresult *res = NULL;
  int rc = ev_sql(ev, row->state == ST_NONE ? &CREATE : &MOVE, p,
                  row->state == ST_NONE ? &res : NULL);
  PQclear(res);
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
