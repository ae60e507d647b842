/*
 * outbox.c - what the ledger publishes, and when: only what a committed
 * database transaction wrote.
 *
 * Inside the batch transaction the ledger queues rows in ledger_outbox: one
 * row holding the new state of every order the batch touched (an
 * OrderStatusEvent each for linli.order-status.v1, read from the orders row
 * in the same transaction, so it is a state the record holds; framed in
 * `messages` as migration 016 says) and a row for the DLQ record of every
 * input it refused, and keeps every message in memory. After COMMIT it
 * publishes those messages with the idempotent producer and goes on with
 * the next batch without waiting for the broker (waiting, then reading the
 * rows back and deleting them in a transaction of their own cost each
 * batch about a seventh of its time): the delivery reports come in while
 * the next batch runs, and the rows of a batch whose every message was
 * acknowledged are deleted together on the runner's clock, about once a
 * second (the clock waits for the reports first, so nothing the sweep
 * reads is still on its way). A crash or a broker outage in between leaves
 * the rows, and the sweep publishes them again later: a republished order
 * status is harmless (compacted by order id, the
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
#include "linli/array.h"
#include "linli/error.h"
#include "linli/log.h"
#include "domain/schema.h"
#include "order_status.pb-c.h"

static const struct ledger_stmt QUEUE = {
    "ledger_outbox_queue",
    "INSERT INTO ledger_outbox (topic, msg_key, msg_value, headers) VALUES "
    "($1, $2::bytea, $3::bytea, $4::jsonb) RETURNING seq",
    4, 0, NULL, NULL, 0, 0, NULL};

/* Many messages of one topic in one row (framed, as bytea hex text). */
static const struct ledger_stmt QUEUE_MANY = {
    "ledger_outbox_queue_many",
    "INSERT INTO ledger_outbox (topic, messages) VALUES ($1, $2::bytea) "
    "RETURNING seq",
    2, 0, NULL, NULL, 0, 0, NULL};

static const struct ledger_stmt STATUSES = {
    "ledger_order_statuses",
    "SELECT order_id, coalesce(app_id, ''), coalesce(user_id, ''), "
    "coalesce(warehouse_id, ''), coalesce(pickup_point_id, ''), state, "
    "coalesce(reason, ''), total_fen, paid_fen, "
    "coalesce(payment_txn_id, ''), (extract(epoch FROM "
    "coalesce(state_changed_at, updated_at)) * 1000)::bigint, last_event_id, "
    "version FROM orders WHERE order_id = ANY($1::text[]) ORDER BY order_id",
    1, 1, NULL, NULL, 0, 0, NULL};

/* Rows the sweep reads at once, and the bytes of statuses it holds: a row
 * holds a whole batch's statuses (about 100 KB at 500 records, but some
 * 20 MB at runner.batch_size's maximum), and the sweep keeps what it read
 * in memory until the broker acknowledged it. The first row is always read,
 * the next ones while the rows before them hold less than SWEEP_BYTES.
 * "got" is how many rows the LIMIT found: fewer read than that, or a full
 * LIMIT, and the sweep reads again. */
#define SWEEP_ROWS 32
#define SWEEP_BYTES (8 * 1024 * 1024)
#define SQL_INT(n) #n
#define SQL_STR(n) SQL_INT(n)
#define ROW_BYTES "coalesce(octet_length(messages), 0) + " \
                  "coalesce(octet_length(msg_value), 0)"

static const struct ledger_stmt PENDING_AGE = {
    "ledger_outbox_old",
    "SELECT seq, topic, msg_key, msg_value, headers::text, messages, got FROM "
    "(SELECT *, count(*) OVER () AS got, sum(" ROW_BYTES ") OVER (ORDER BY "
    "seq) - (" ROW_BYTES ") AS before FROM (SELECT seq, topic, msg_key, "
    "msg_value, headers, messages FROM ledger_outbox WHERE created_at <= "
    "now() - make_interval(secs => $1::int) ORDER BY seq LIMIT "
    SQL_STR(SWEEP_ROWS) ") o) r WHERE before < " SQL_STR(SWEEP_BYTES)
    " ORDER BY seq",
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

static unsigned char *dup_bytes(const void *p, size_t n) {
  unsigned char *d = malloc(n ? n : 1);
  if (d != NULL && n > 0)
    memcpy(d, p, n);
  return d;
}

static void outmsg_free(struct ledger_outmsg *m) {
  free(m->key);
  free(m->val);
  free(m->headers);
  memset(m, 0, sizeof *m);
}

void ledger_outbox_txn_reset(struct ledger_txn *t) {
  for (size_t i = 0; i < t->noutbox; i++)
    free(t->outbox[i]);
  t->noutbox = 0;
  for (size_t i = 0; i < t->noutmsg; i++)
    outmsg_free(&t->outmsg[i]);
  t->noutmsg = 0;
}

/* A ledger_outbox row this transaction wrote and the n messages it holds,
 * which are owned from here on (freed on failure too). */
static int remember(struct ledger *lg, const char *seq,
                    struct ledger_outmsg *msgs, size_t n) {
  struct ledger_txn *t = &lg->txn;
  struct ledger_outmsg *nm = linli_grow(t->outmsg, &t->capoutmsg,
                                       t->noutmsg + n, sizeof *nm, 64);
  if (nm != NULL)
    t->outmsg = nm;
  char *s = nm != NULL ? strdup(seq) : NULL;
  if (s == NULL ||
      ledger_strv_push(&t->outbox, &t->noutbox, &t->capoutbox, s) !=
          LINLI_OK) {
    free(s);
    for (size_t i = 0; i < n; i++)
      outmsg_free(&msgs[i]);
    return LINLI_ERR_NOMEM;
  }
  for (size_t i = 0; i < n; i++) {
    t->outmsg[t->noutmsg++] = msgs[i];
    memset(&msgs[i], 0, sizeof msgs[i]);
  }
  return LINLI_OK;
}

/* One row into ledger_outbox (value: what the row holds, which for a DLQ
 * record is the encrypted box) and its message into memory. */
static int queue(struct ledger *lg, const char *topic, const void *key,
                 size_t keylen, const void *value, size_t vallen,
                 const char *headers, struct ledger_outmsg *msg, char *err,
                 size_t errlen) {
  char *k = key ? bytea_hex(key, keylen) : NULL;
  char *v = value ? bytea_hex(value, vallen) : NULL;
  if ((key && !k) || (value && !v)) {
    free(k);
    free(v);
    outmsg_free(msg);
    return LINLI_ERR_NOMEM;
  }
  const char *p[] = {topic, k, v, headers ? headers : "[]"};
  PGresult *res = NULL;
  int rc = ledger_sql(lg, &QUEUE, p, &res, err, errlen);
  free(k);
  free(v);
  if (rc != LINLI_OK) {
    outmsg_free(msg);
    return rc;
  }
  rc = remember(lg, PQgetvalue(res, 0, 0), msg, 1);
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
  struct ledger_outmsg msg = {.topic = lg->dlq_topic, .headers = headers};
  int keep = !redact && m->payload != NULL;
  if ((keep && (box = ledger_encrypt(&lg->crypto, m->payload, m->len,
                                     &boxlen)) == NULL) ||
      (m->key && (msg.key = dup_bytes(m->key, m->key_len)) == NULL) ||
      (keep && (msg.val = dup_bytes(m->payload, m->len)) == NULL)) {
    free(box);
    outmsg_free(&msg);
    return LINLI_ERR_NOMEM;
  }
  msg.klen = m->key ? m->key_len : 0;
  msg.vlen = keep ? m->len : 0;
  int rc = queue(lg, lg->dlq_topic, m->key, m->key_len, box, boxlen,
                 msg.headers, &msg, err, errlen);
  free(box);
  return rc;
}

/* ---------------------------------------------------------- order status */

/* The framing of ledger_outbox.messages (migration 016): per message a
 * 4-byte big-endian key length, the key, a 4-byte big-endian value length,
 * the value. */
static void put_be32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)(v >> 24);
  p[1] = (unsigned char)(v >> 16);
  p[2] = (unsigned char)(v >> 8);
  p[3] = (unsigned char)v;
}

static uint32_t get_be32(const unsigned char *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
         (uint32_t)p[3];
}

/* msgs framed as one bytea hex text ("\\x..."), malloc'd; NULL: out of
 * memory. */
static char *frame_hex(const struct ledger_outmsg *msgs, size_t n) {
  size_t total = 0;
  for (size_t i = 0; i < n; i++)
    total += 8 + msgs[i].klen + msgs[i].vlen;
  unsigned char *buf = malloc(total ? total : 1);
  if (buf == NULL)
    return NULL;
  unsigned char *p = buf;
  for (size_t i = 0; i < n; i++) {
    put_be32(p, (uint32_t)msgs[i].klen);
    memcpy(p + 4, msgs[i].key, msgs[i].klen);
    p += 4 + msgs[i].klen;
    put_be32(p, (uint32_t)msgs[i].vlen);
    if (msgs[i].vlen > 0)
      memcpy(p + 4, msgs[i].val, msgs[i].vlen);
    p += 4 + msgs[i].vlen;
  }
  char *hex = bytea_hex(buf, total);
  free(buf);
  return hex;
}

/* The next framed message of [*p, end): key and value point into the
 * buffer. -1: the framing is cut short (nothing more is read). */
static int unframe(const unsigned char **p, const unsigned char *end,
                   const unsigned char **key, size_t *klen,
                   const unsigned char **val, size_t *vlen) {
  if (end - *p < 4)
    return -1;
  *klen = get_be32(*p);
  if ((size_t)(end - *p - 4) < *klen)
    return -1;
  *key = *p + 4;
  *p += 4 + *klen;
  if (end - *p < 4)
    return -1;
  *vlen = get_be32(*p);
  if ((size_t)(end - *p - 4) < *vlen)
    return -1;
  *val = *p + 4;
  *p += 4 + *vlen;
  return 0;
}

/* Row i of STATUSES as a packed OrderStatusEvent: the message to publish
 * (msg). */
static int pack_status(struct ledger *lg, PGresult *res, int i,
                       struct ledger_outmsg *msg) {
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
  size_t klen = strlen(st.order_id);
  *msg = (struct ledger_outmsg){.topic = lg->status_topic,
                                .key = dup_bytes(st.order_id, klen),
                                .klen = klen,
                                .val = buf,
                                .vlen = len};
  return msg->key == NULL ? LINLI_ERR_NOMEM : LINLI_OK;
}

/* Every touched order's status, in one outbox row. */
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
  int n = PQntuples(res);
  struct ledger_outmsg *msgs = calloc(n > 0 ? (size_t)n : 1, sizeof *msgs);
  if (msgs == NULL)
    rc = LINLI_ERR_NOMEM;
  for (int i = 0; i < n && rc == LINLI_OK; i++)
    rc = pack_status(lg, res, i, &msgs[i]);
  PQclear(res);
  char *hex = NULL;
  if (rc == LINLI_OK && n > 0 &&
      (hex = frame_hex(msgs, (size_t)n)) == NULL)
    rc = LINLI_ERR_NOMEM;
  if (rc == LINLI_OK && n > 0) {
    const char *qp[] = {lg->status_topic, hex};
    res = NULL;
    rc = ledger_sql(lg, &QUEUE_MANY, qp, &res, err, errlen);
    if (rc == LINLI_OK)
      rc = remember(lg, PQgetvalue(res, 0, 0), msgs, (size_t)n);
    PQclear(res);
  }
  free(hex);
  for (int i = 0; msgs != NULL && i < n; i++)
    outmsg_free(&msgs[i]); /* the ones not remembered */
  free(msgs);
  return rc;
}

/* -------------------------------------------------------------- publish */

/* opaque is the flight (on the heap: a report may arrive after a flush
 * that timed out, or from linli_producer_free). */
static void on_delivery(void *opaque, rd_kafka_resp_err_t err,
                        int32_t partition, int64_t offset) {
  (void)partition;
  (void)offset;
  struct ledger_flight *f = opaque;
  if (f->outstanding > 0)
    f->outstanding--;
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    f->failed++;
    LINLI_WARN("outbox delivery failed", "reason=\"%s\"", rd_kafka_err2str(err));
  }
}

static rd_kafka_headers_t *headers_from_json(const char *text) {
  json_t *a = text ? json_loads(text, 0, NULL) : NULL;
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

/* A flight for n rows whose seqs are taken over (NULL entries stay NULL:
 * an allocation failed, the row is left to the sweep); send_one counts
 * its messages. */
static struct ledger_flight *flight_new(struct ledger *lg, char **seqs,
                                        size_t n) {
  struct ledger_flight *f = calloc(1, sizeof *f);
  if (f == NULL) {
    for (size_t i = 0; i < n; i++)
      free(seqs[i]);
    free(seqs);
    return NULL;
  }
  f->seqs = seqs;
  f->n = n;
  f->next = lg->flights;
  lg->flights = f;
  return f;
}

static void send_one(struct ledger *lg, struct ledger_flight *f,
                     const char *topic, const void *key, size_t klen,
                     const void *val, size_t vlen, rd_kafka_headers_t *h) {
  char err[512];
  if (strcmp(topic, lg->dlq_topic) == 0)
    log_dlq(h);
  f->outstanding++;
  f->nmsgs++;
  if (linli_producer_send_async(lg->producer, topic, RD_KAFKA_PARTITION_UA,
                                key, klen, val, vlen, h, on_delivery, f,
                                10000, err, sizeof err) != LINLI_OK) {
    f->outstanding--;
    f->failed++;
    LINLI_WARN("outbox publish failed", "reason=\"%s\"", err);
  }
}

int ledger_outbox_publish_txn(struct ledger *lg) {
  struct ledger_txn *t = &lg->txn;
  if (t->noutbox == 0)
    return LINLI_OK;
  char **seqs = malloc(t->noutbox * sizeof *seqs);
  if (seqs == NULL)
    return LINLI_ERR_NOMEM; /* the rows wait for the sweep */
  memcpy(seqs, t->outbox, t->noutbox * sizeof *seqs);
  size_t n = t->noutbox;
  for (size_t i = 0; i < n; i++)
    t->outbox[i] = NULL; /* the flight's now */
  struct ledger_flight *f = flight_new(lg, seqs, n);
  if (f == NULL)
    return LINLI_ERR_NOMEM;
  for (size_t i = 0; i < t->noutmsg; i++) {
    struct ledger_outmsg *m = &t->outmsg[i];
    send_one(lg, f, m->topic, m->key, m->klen, m->val, m->vlen,
             headers_from_json(m->headers));
  }
  linli_producer_poll(lg->producer, 0);
  ledger_outbox_settle(lg, 0);
  return LINLI_OK;
}

void ledger_outbox_settle(struct ledger *lg, int wait_ms) {
  if (lg->flights == NULL)
    return;
  if (wait_ms > 0)
    linli_producer_flush(lg->producer, wait_ms);
  else
    linli_producer_poll(lg->producer, 0);
  struct ledger_flight **pp = &lg->flights;
  while (*pp != NULL) {
    struct ledger_flight *f = *pp;
    if (f->outstanding > 0) {
      pp = &f->next;
      continue;
    }
    *pp = f->next;
    if (f->failed > 0)
      LINLI_WARN("outbox publish deferred", "rows=%zu failed=%d", f->n,
                 f->failed);
    else
      linli_counter_add(lg->m_published, (uint64_t)f->nmsgs);
    for (size_t i = 0; i < f->n; i++)
      if (f->failed > 0 || f->seqs[i] == NULL ||
          ledger_strv_push(&lg->done_seqs, &lg->ndone, &lg->capdone,
                           f->seqs[i]) != LINLI_OK)
        free(f->seqs[i]); /* left for the sweep */
    free(f->seqs);
    free(f);
  }
}

int ledger_outbox_cleanup(struct ledger *lg) {
  if (lg->ndone == 0)
    return LINLI_OK;
  char err[512];
  char *lit = ledger_text_array((const char *const *)lg->done_seqs, lg->ndone);
  const char *p[] = {lit};
  int rc = lit ? ledger_sql(lg, &DONE, p, NULL, err, sizeof err)
               : LINLI_ERR_NOMEM;
  if (rc != LINLI_OK)
    LINLI_WARN("outbox cleanup failed (rows are published again later)",
               "rows=%zu reason=\"%.5s\"", lg->ndone,
               rc == LINLI_ERR_NOMEM ? "nomem" : err);
  free(lit);
  for (size_t i = 0; i < lg->ndone; i++)
    free(lg->done_seqs[i]);
  lg->ndone = 0;
  return rc;
}

static unsigned char *unescape(PGresult *res, int i, int col, size_t *len) {
  *len = 0;
  if (PQgetisnull(res, i, col))
    return NULL;
  return PQunescapeBytea((const unsigned char *)PQgetvalue(res, i, col), len);
}

/* The messages of row i's `messages` (a batch's statuses), sent. */
static void send_framed(struct ledger *lg, struct ledger_flight *f,
                        PGresult *res, int i) {
  size_t len = 0;
  unsigned char *buf = unescape(res, i, 5, &len);
  const unsigned char *p = buf, *end = buf ? buf + len : NULL;
  const char *topic = PQgetvalue(res, i, 1);
  while (p != NULL && p < end) {
    const unsigned char *key, *val;
    size_t klen, vlen;
    if (unframe(&p, end, &key, &klen, &val, &vlen) != 0) {
      /* Only a damaged row reads so: what it holds is lost to the
       * republish (the orders' next changes publish their state again). */
      LINLI_ERROR("outbox row cut short", "seq=%s offset=%td",
                  PQgetvalue(res, i, 0), p - buf);
      break;
    }
    send_one(lg, f, topic, key, klen, val, vlen, NULL);
  }
  PQfreemem(buf);
}

/* Publish the rows of res (seq, topic, key, value, headers, messages) as
 * one flight, wait for it, and delete them if every one was
 * acknowledged. */
static int publish_rows(struct ledger *lg, PGresult *res) {
  int n = PQntuples(res);
  if (n == 0)
    return LINLI_OK;
  char **seqs = calloc((size_t)n, sizeof *seqs);
  if (seqs == NULL)
    return LINLI_ERR_NOMEM;
  for (int i = 0; i < n; i++)
    seqs[i] = strdup(PQgetvalue(res, i, 0));
  struct ledger_flight *f = flight_new(lg, seqs, (size_t)n);
  if (f == NULL)
    return LINLI_ERR_NOMEM;
  for (int i = 0; i < n; i++) {
    if (!PQgetisnull(res, i, 5)) {
      send_framed(lg, f, res, i);
      continue;
    }
    size_t klen, vlen;
    unsigned char *key = unescape(res, i, 2, &klen);
    unsigned char *val = unescape(res, i, 3, &vlen);
    const char *topic = PQgetvalue(res, i, 1);
    /* A DLQ row is encrypted in the outbox (rows queued before that was
     * so are published as they are: they do not open under the key). */
    size_t plen = 0;
    unsigned char *plain = val && strcmp(topic, lg->dlq_topic) == 0
                               ? ledger_decrypt(&lg->crypto, val, vlen, &plen)
                               : NULL;
    send_one(lg, f, topic, key, klen, plain ? plain : val, plain ? plen : vlen,
             headers_from_json(PQgetvalue(res, i, 4)));
    free(plain);
    PQfreemem(key);
    PQfreemem(val);
  }
  linli_producer_flush(lg->producer, 30000);
  int ok = f->outstanding == 0 && f->failed == 0;
  ledger_outbox_settle(lg, 0); /* f is freed here once settled */
  ledger_outbox_cleanup(lg);
  return ok ? LINLI_OK : LINLI_ERR_TRANSIENT;
}

int ledger_outbox_sweep(struct ledger *lg, int min_age_s) {
  /* What batches published is acknowledged and deleted first, or it
   * would be published again. */
  ledger_outbox_settle(lg, 30000);
  ledger_outbox_cleanup(lg);
  char age[16], err[512];
  snprintf(age, sizeof age, "%d", min_age_s);
  for (;;) {
    const char *p[] = {age};
    PGresult *res = NULL;
    int rc = ledger_sql(lg, &PENDING_AGE, p, &res, err, sizeof err);
    if (rc != LINLI_OK)
      return rc;
    int n = PQntuples(res);
    long got = n > 0 ? atol(PQgetvalue(res, 0, 6)) : 0;
    if (n > 0)
      LINLI_INFO("publishing pending outbox rows", "rows=%d", n);
    rc = publish_rows(lg, res);
    PQclear(res);
    if (rc != LINLI_OK || n == 0 || (n == got && got < SWEEP_ROWS))
      return rc;
  }
}

void ledger_outbox_finish(struct ledger *lg) {
  if (lg->producer == NULL || lg->pg == NULL)
    return;
  ledger_outbox_settle(lg, 30000);
  ledger_outbox_cleanup(lg);
}

void ledger_outbox_free(struct ledger *lg) {
  while (lg->flights != NULL) {
    struct ledger_flight *f = lg->flights;
    lg->flights = f->next;
    for (size_t i = 0; i < f->n; i++)
      free(f->seqs[i]);
    free(f->seqs);
    free(f);
  }
  for (size_t i = 0; i < lg->ndone; i++)
    free(lg->done_seqs[i]);
  free(lg->done_seqs);
  lg->done_seqs = NULL;
  lg->ndone = lg->capdone = 0;
}
