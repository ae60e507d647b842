/*
 * outbox.c - what the ledger publishes, and when: only what a committed
 * database transaction wrote.
 *
 * Inside the batch transaction the ledger queues rows in ledger_outbox: the
 * new state of every order the batch touched (an OrderStatusEvent for
 * linli.order-status.v1, read from the orders row in the same transaction,
 * so it is a state the record holds) and a DLQ record for every input it
 * refused. After COMMIT it publishes those rows with the idempotent
 * producer, waits for the broker, and deletes them. A crash or a broker
 * outage in between leaves the rows, and the sweep publishes them again
 * later: a republished order status is harmless (compacted by order id, the
 * same version and event id), a republished DLQ record is a duplicate with
 * the same key, value and headers (the ledger records DLQ records by their
 * position, so both copies are recorded; a reader can tell them apart by
 * the source_* headers).
 *
 * The DLQ record itself reaches dlq_records when the ledger consumes it
 * back from linli.dlq.v1 (the table is keyed by DLQ position, known only
 * once written).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ledger.h"
#include "linli/error.h"
#include "linli/log.h"
#include "domain/schema.h"
#include "order_status.pb-c.h"

static const struct ledger_stmt QUEUE = {
    "ledger_outbox_queue",
    "INSERT INTO ledger_outbox (topic, msg_key, msg_value, headers) VALUES "
    "($1, $2::bytea, $3::bytea, $4::jsonb) RETURNING seq",
    4, 0, NULL, NULL, 0, 0, NULL};

/* Many rows of one topic at once; keys and values as hex text arrays. */
static const struct ledger_stmt QUEUE_MANY = {
    "ledger_outbox_queue_many",
    "INSERT INTO ledger_outbox (topic, msg_key, msg_value, headers) "
    "SELECT $1, decode(k, 'hex'), decode(v, 'hex'), '[]'::jsonb FROM "
    "unnest($2::text[], $3::text[]) WITH ORDINALITY AS r(k, v, n) "
    "ORDER BY n RETURNING seq",
    3, 0, NULL, NULL, 0, 0, NULL};

static const struct ledger_stmt STATUSES = {
    "ledger_order_statuses",
    "SELECT order_id, coalesce(app_id, ''), coalesce(user_id, ''), "
    "coalesce(warehouse_id, ''), coalesce(pickup_point_id, ''), state, "
    "coalesce(reason, ''), total_fen, paid_fen, "
    "coalesce(payment_txn_id, ''), (extract(epoch FROM "
    "coalesce(state_changed_at, updated_at)) * 1000)::bigint, last_event_id, "
    "version FROM orders WHERE order_id = ANY($1::text[]) ORDER BY order_id",
    1, 1, NULL, NULL, 0, 0, NULL};

static const struct ledger_stmt PENDING_SEQ = {
    "ledger_outbox_rows",
    "SELECT seq, topic, msg_key, msg_value, headers::text FROM ledger_outbox "
    "WHERE seq = ANY($1::bigint[]) ORDER BY seq",
    1, 0, NULL, NULL, 0, 0, NULL};

static const struct ledger_stmt PENDING_AGE = {
    "ledger_outbox_old",
    "SELECT seq, topic, msg_key, msg_value, headers::text FROM ledger_outbox "
    "WHERE created_at <= now() - make_interval(secs => $1::int) "
    "ORDER BY seq LIMIT 1000",
    1, 0, NULL, NULL, 0, 0, NULL};

static const struct ledger_stmt DONE = {
    "ledger_outbox_done",
    "DELETE FROM ledger_outbox WHERE seq = ANY($1::bigint[])", 1,
    0, NULL, NULL, 0, 0, NULL};

/* --------------------------------------------------------------- helpers */

static char *bytea_hex(const void *v, size_t len) {
  char *s = malloc(2 + 2 * len + 1);
  if (s == NULL)
    return NULL;
  s[0] = '\\';
  s[1] = 'x';
  sodium_bin2hex(s + 2, 2 * len + 1, v, len);
  return s;
}

/* A ledger_outbox row this transaction wrote (published after COMMIT). */
static int remember_seq(struct ledger *lg, const char *seq) {
  struct ledger_txn *t = &lg->txn;
  if (t->noutbox == t->capoutbox) {
    size_t cap = t->capoutbox ? t->capoutbox * 2 : 64;
    char **n = realloc(t->outbox, cap * sizeof *n);
    if (n == NULL)
      return LINLI_ERR_NOMEM;
    t->outbox = n;
    t->capoutbox = cap;
  }
  if ((t->outbox[t->noutbox] = strdup(seq)) == NULL)
    return LINLI_ERR_NOMEM;
  t->noutbox++;
  return LINLI_OK;
}

static int queue(struct ledger *lg, const char *topic, const void *key,
                 size_t keylen, const void *value, size_t vallen,
                 const char *headers, char *err, size_t errlen) {
  char *k = key ? bytea_hex(key, keylen) : NULL;
  char *v = value ? bytea_hex(value, vallen) : NULL;
  if ((key && !k) || (value && !v)) {
    free(k);
    free(v);
    return LINLI_ERR_NOMEM;
  }
  const char *p[] = {topic, k, v, headers ? headers : "[]"};
  PGresult *res = NULL;
  int rc = ledger_sql(lg, &QUEUE, p, &res, err, errlen);
  free(k);
  free(v);
  if (rc != LINLI_OK)
    return rc;
  rc = remember_seq(lg, PQgetvalue(res, 0, 0));
  PQclear(res);
  return rc;
}

/* ------------------------------------------------------------------- DLQ */

static void add_header(json_t *a, const char *key, const char *value) {
  json_t *v = json_string(value);
  if (v == NULL)
    v = json_string("(not UTF-8)");
  json_array_append_new(a, json_pack("{s:s, s:o}", "key", key, "value", v));
}

int ledger_outbox_dlq(struct ledger *lg, const rd_kafka_message_t *m,
                      const char *reason, int redact, char *err,
                      size_t errlen) {
  const char *topic = rd_kafka_topic_name(m->rkt);
  char part[16], off[24];
  snprintf(part, sizeof part, "%d", (int)m->partition);
  snprintf(off, sizeof off, "%lld", (long long)m->offset);
  json_t *h = json_array();
  if (h == NULL)
    return LINLI_ERR_NOMEM;
  add_header(h, LINLI_DLQ_H_TOPIC, topic);
  add_header(h, LINLI_DLQ_H_PARTITION, part);
  add_header(h, LINLI_DLQ_H_OFFSET, off);
  add_header(h, LINLI_DLQ_H_CONSUMER, LEDGER_NAME);
  add_header(h, LINLI_DLQ_H_ERROR, linli_strerror(LINLI_ERR_INVALID));
  /* A redacted row keeps the key (bytea: never refused) and what the
   * ledger wrote itself: the row with the record's bytes and reason was
   * refused once already. */
  add_header(h, LINLI_DLQ_H_REASON,
             redact ? "refused by the database, and so was its DLQ row: "
                      "stored without its payload"
                    : reason);
  char *headers = json_dumps(h, JSON_COMPACT | JSON_ENSURE_ASCII);
  json_decref(h);
  if (headers == NULL)
    return LINLI_ERR_NOMEM;
  /* The record's bytes may hold personal data (a home delivery's name,
   * phone, address): encrypted while they wait in the outbox, decrypted
   * when published (the DLQ topic carries the original bytes). */
  unsigned char *box = NULL;
  size_t boxlen = 0;
  if (!redact && m->payload != NULL &&
      (box = ledger_encrypt(&lg->crypto, m->payload, m->len, &boxlen)) ==
          NULL) {
    free(headers);
    return LINLI_ERR_NOMEM;
  }
  int rc = queue(lg, lg->dlq_topic, m->key, m->key_len, box, boxlen, headers,
                 err, errlen);
  free(box);
  free(headers);
  return rc;
}

/* ---------------------------------------------------------- order status */

/* A growing "{a,b,...}" literal of hex strings (no quoting needed). */
struct hexarr {
  char *s;
  size_t len, cap;
};

static int hexarr_add(struct hexarr *a, const void *v, size_t n) {
  size_t need = a->len + 2 * n + 3;
  if (need > a->cap) {
    size_t cap = a->cap ? a->cap * 2 : 4096;
    while (cap < need)
      cap *= 2;
    char *s = realloc(a->s, cap);
    if (s == NULL)
      return LINLI_ERR_NOMEM;
    a->s = s;
    a->cap = cap;
  }
  char sep = a->len == 0 ? '{' : ',';
  a->s[a->len++] = sep;
  sodium_bin2hex(a->s + a->len, 2 * n + 1, v, n);
  a->len += 2 * n;
  a->s[a->len] = '\0';
  return LINLI_OK;
}

static int hexarr_close(struct hexarr *a) {
  if (a->len == 0 && hexarr_add(a, "", 0) != LINLI_OK)
    return LINLI_ERR_NOMEM;
  a->s[a->len++] = '}';
  a->s[a->len] = '\0';
  return LINLI_OK;
}

/* Row i of STATUSES as a packed OrderStatusEvent into keys and values. */
static int pack_status(PGresult *res, int i, struct hexarr *keys,
                       struct hexarr *vals) {
  Linli__OrderStatus st = LINLI__ORDER_STATUS__INIT;
  Linli__OrderStatusEvent ev = LINLI__ORDER_STATUS_EVENT__INIT;
  Linli__Meta meta = LINLI__META__INIT;
  const ProtobufCEnumValue *state = protobuf_c_enum_descriptor_get_value_by_name(
      &linli__order_status__state__descriptor, PQgetvalue(res, i, 5));
  st.order_id = PQgetvalue(res, i, 0);
  st.app_id = PQgetvalue(res, i, 1);
  st.user_id = PQgetvalue(res, i, 2);
  st.warehouse_id = PQgetvalue(res, i, 3);
  st.pickup_point_id = PQgetvalue(res, i, 4);
  st.state = state ? (Linli__OrderStatus__State)state->value
                   : LINLI__ORDER_STATUS__STATE__STATE_UNSPECIFIED;
  st.reason = PQgetvalue(res, i, 6);
  st.total_fen = atoll(PQgetvalue(res, i, 7));
  st.paid_fen = atoll(PQgetvalue(res, i, 8));
  st.payment_txn_id = PQgetvalue(res, i, 9);
  st.updated_at_ms = atoll(PQgetvalue(res, i, 10));
  st.last_event_id = PQgetvalue(res, i, 11);
  st.version = atoll(PQgetvalue(res, i, 12));

  /* The event id is a function of (order, version): a republish of the
   * same state carries the same id. */
  char id[LINLI_ID_BUFSZ], basis[LINLI_ID_BUFSZ + 32];
  snprintf(basis, sizeof basis, "%s/%s", LINLI_TOPIC_ORDER_STATUS,
           st.order_id);
  linli_id_derive(basis, 0, st.version, 0, id, sizeof id);
  meta.event_id = id;
  meta.occurred_at_ms = st.updated_at_ms;
  meta.producer = (char *)LEDGER_NAME;
  meta.trace_id = (char *)"";
  meta.schema_version = LINLI_SCHEMA_VERSION;
  meta.causation_id = st.last_event_id;
  ev.meta = &meta;
  ev.event_case = LINLI__ORDER_STATUS_EVENT__EVENT_ORDER_STATUS;
  ev.order_status = &st;

  size_t len = linli__order_status_event__get_packed_size(&ev);
  uint8_t *buf = malloc(len ? len : 1);
  if (buf == NULL)
    return LINLI_ERR_NOMEM;
  linli__order_status_event__pack(&ev, buf);
  int rc = hexarr_add(keys, st.order_id, strlen(st.order_id));
  if (rc == LINLI_OK)
    rc = hexarr_add(vals, buf, len);
  free(buf);
  return rc;
}

/* Every touched order's status in one INSERT (the seqs come back in the
 * order of the rows). */
int ledger_outbox_statuses(struct ledger *lg, char *err, size_t errlen) {
  if (lg->txn.ntouched == 0)
    return LINLI_OK;
  ledger_touched_unique(lg);
  char *ids = ledger_text_array((const char *const *)lg->txn.touched,
                                lg->txn.ntouched);
  if (ids == NULL)
    return LINLI_ERR_NOMEM;
  const char *p[] = {ids};
  PGresult *res = NULL;
  int rc = ledger_sql(lg, &STATUSES, p, &res, err, errlen);
  free(ids);
  if (rc != LINLI_OK)
    return rc;
  struct hexarr keys = {0}, vals = {0};
  int n = PQntuples(res);
  for (int i = 0; i < n && rc == LINLI_OK; i++)
    rc = pack_status(res, i, &keys, &vals);
  PQclear(res);
  if (rc == LINLI_OK && n > 0 &&
      (rc = hexarr_close(&keys)) == LINLI_OK &&
      (rc = hexarr_close(&vals)) == LINLI_OK) {
    const char *qp[] = {lg->status_topic, keys.s, vals.s};
    res = NULL;
    rc = ledger_sql(lg, &QUEUE_MANY, qp, &res, err, errlen);
    for (int i = 0; rc == LINLI_OK && i < PQntuples(res); i++)
      rc = remember_seq(lg, PQgetvalue(res, i, 0));
    PQclear(res);
  }
  free(keys.s);
  free(vals.s);
  return rc;
}

/* -------------------------------------------------------------- publish */

/* opaque is the ledger (not a stack frame: a report may arrive after a
 * flush that timed out). */
static void on_delivery(void *opaque, rd_kafka_resp_err_t err,
                        int32_t partition, int64_t offset) {
  (void)partition;
  (void)offset;
  struct ledger *lg = opaque;
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    lg->publish_failed++;
    LINLI_WARN("outbox delivery failed", "reason=\"%s\"", rd_kafka_err2str(err));
  }
}

static rd_kafka_headers_t *headers_from_json(const char *text) {
  json_t *a = json_loads(text, 0, NULL);
  if (!json_is_array(a) || json_array_size(a) == 0) {
    json_decref(a);
    return NULL;
  }
  rd_kafka_headers_t *h = rd_kafka_headers_new(json_array_size(a));
  size_t i;
  json_t *e;
  json_array_foreach(a, i, e) {
    const char *k = json_string_value(json_object_get(e, "key"));
    const char *v = json_string_value(json_object_get(e, "value"));
    if (k != NULL)
      rd_kafka_header_add(h, k, -1, v, v ? -1 : 0);
  }
  json_decref(a);
  return h;
}

static const char *header(rd_kafka_headers_t *h, const char *name) {
  const void *v = NULL;
  size_t len = 0;
  if (h == NULL ||
      rd_kafka_header_get_last(h, name, &v, &len) != RD_KAFKA_RESP_ERR_NO_ERROR)
    return "";
  return v ? v : "";
}

/* Logged when published (a batch may run more than once before it
 * commits). Reasons name ids and fields, never personal data. */
static void log_dlq(rd_kafka_headers_t *h) {
  LINLI_WARN("record sent to DLQ",
             "topic=%s partition=%s offset=%s reason=\"%s\"",
             header(h, LINLI_DLQ_H_TOPIC), header(h, LINLI_DLQ_H_PARTITION),
             header(h, LINLI_DLQ_H_OFFSET), header(h, LINLI_DLQ_H_REASON));
}

static unsigned char *unescape(PGresult *res, int i, int col, size_t *len) {
  *len = 0;
  if (PQgetisnull(res, i, col))
    return NULL;
  return PQunescapeBytea((const unsigned char *)PQgetvalue(res, i, col), len);
}

/* Publish the rows of res (seq, topic, key, value, headers) and delete
 * them once every one was acknowledged. */
static int publish_rows(struct ledger *lg, PGresult *res) {
  int n = PQntuples(res);
  if (n == 0)
    return LINLI_OK;
  lg->publish_failed = 0;
  char err[512];
  char **seqs = calloc((size_t)n, sizeof *seqs);
  if (seqs == NULL)
    return LINLI_ERR_NOMEM;
  int rc = LINLI_OK;
  for (int i = 0; i < n && rc == LINLI_OK; i++) {
    seqs[i] = PQgetvalue(res, i, 0);
    size_t klen, vlen;
    unsigned char *key = unescape(res, i, 2, &klen);
    unsigned char *val = unescape(res, i, 3, &vlen);
    rd_kafka_headers_t *h = headers_from_json(PQgetvalue(res, i, 4));
    if (strcmp(PQgetvalue(res, i, 1), lg->dlq_topic) == 0) {
      log_dlq(h);
      /* Encrypted in the outbox (rows queued before that was so are
       * published as they are: they do not open under the key). */
      size_t plen = 0;
      unsigned char *plain =
          val ? ledger_decrypt(&lg->crypto, val, vlen, &plen) : NULL;
      if (plain != NULL) {
        PQfreemem(val);
        val = NULL;
        rc = linli_producer_send_async(lg->producer, PQgetvalue(res, i, 1),
                                       RD_KAFKA_PARTITION_UA, key, klen, plain,
                                       plen, h, on_delivery, lg, 10000, err,
                                       sizeof err);
        free(plain);
        PQfreemem(key);
        if (rc != LINLI_OK)
          LINLI_WARN("outbox publish failed", "reason=\"%s\"", err);
        continue;
      }
    }
    rc = linli_producer_send_async(lg->producer, PQgetvalue(res, i, 1),
                                   RD_KAFKA_PARTITION_UA, key, klen, val, vlen,
                                   h, on_delivery, lg, 10000, err, sizeof err);
    PQfreemem(key);
    PQfreemem(val);
    if (rc != LINLI_OK)
      LINLI_WARN("outbox publish failed", "reason=\"%s\"", err);
  }
  if (linli_producer_flush(lg->producer, 30000) != LINLI_OK)
    rc = LINLI_ERR_TRANSIENT;
  if (rc == LINLI_OK && lg->publish_failed == 0) {
    char *lit = ledger_text_array((const char *const *)seqs, (size_t)n);
    const char *p[] = {lit};
    rc = lit ? ledger_sql(lg, &DONE, p, NULL, err, sizeof err)
             : LINLI_ERR_NOMEM;
    if (rc != LINLI_OK)
      LINLI_WARN("outbox cleanup failed (rows are published again later)",
                 "reason=\"%.5s\"", err);
    free(lit);
    linli_counter_add(lg->m_published, (uint64_t)n);
  } else if (rc == LINLI_OK) {
    rc = LINLI_ERR_TRANSIENT;
  }
  free(seqs);
  return rc;
}

int ledger_outbox_publish_txn(struct ledger *lg) {
  if (lg->txn.noutbox == 0)
    return LINLI_OK;
  char *lit = ledger_text_array((const char *const *)lg->txn.outbox,
                               lg->txn.noutbox);
  if (lit == NULL)
    return LINLI_ERR_NOMEM;
  const char *p[] = {lit};
  PGresult *res = NULL;
  char err[512];
  int rc = ledger_sql(lg, &PENDING_SEQ, p, &res, err, sizeof err);
  free(lit);
  if (rc != LINLI_OK)
    return rc;
  rc = publish_rows(lg, res);
  PQclear(res);
  return rc;
}

int ledger_outbox_sweep(struct ledger *lg, int min_age_s) {
  char age[16], err[512];
  snprintf(age, sizeof age, "%d", min_age_s);
  for (;;) {
    const char *p[] = {age};
    PGresult *res = NULL;
    int rc = ledger_sql(lg, &PENDING_AGE, p, &res, err, sizeof err);
    if (rc != LINLI_OK)
      return rc;
    int n = PQntuples(res);
    if (n > 0)
      LINLI_INFO("publishing pending outbox rows", "rows=%d", n);
    rc = publish_rows(lg, res);
    PQclear(res);
    if (rc != LINLI_OK || n < 1000)
      return rc;
  }
}
