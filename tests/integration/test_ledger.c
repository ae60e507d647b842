/*
 * test_ledger.c - linli-ledger against the real stack: Kafka, and
 * PostgreSQL in a fresh database (linli_ledger_<pid>) that linli-migrate
 * creates, dropped at the end.
 *
 * The ledger runs under its own consumer group (runner.group) on topics of
 * its own (ledger.topic_suffix, created from config/topics.conf and deleted
 * at the end): on the shared dev broker other tests run reservers that
 * would otherwise judge this test's orders too. The group's offsets are
 * seeded in consumer_offsets (at 0), so the ledger resumes where PostgreSQL
 * says from its first assignment on.
 *
 * What is asserted:
 *  - every transition of libdomain's state machine through the ledger and
 *    through the audit's fold of the same events: the same state in both;
 *  - an order's life into orders, order_lines, order_events, reservations,
 *    payments, stock and delivery_events, with order-status published;
 *  - events of one order arriving out of topic order;
 *  - an illegal transition and a second payment go to linli.dlq.v1 with
 *    their reason, and not into the record;
 *  - personal fields are ciphertext that decrypts with the key, and never
 *    in the history;
 *  - replayed duplicates change nothing;
 *  - a StockAdjusted refused by the reserver is taken back out;
 *  - SIGKILL mid-ingest and restart, and PostgreSQL sessions terminated
 *    mid-ingest, lose and duplicate nothing;
 *  - a missing crypto.key is a start-up error; SIGTERM exits 0.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <sodium.h>

#include "delivery.pb-c.h"
#include "fulfillment.pb-c.h"
#include "inventory.pb-c.h"
#include "linli/config.h"
#include "linli/error.h"
#include "linli/ids.h"
#include "linli/kafka.h"
#include "domain/schema.h"
#include "linli_test.h"
#include "order_status.pb-c.h"
#include "orders.pb-c.h"
#include "reservations.pb-c.h"

/* The audit's rules (linli-replay), driven directly on the same events. */
#include "audit.h"
#include "domain/order_state.h"

/* ------------------------------------------------------------- fixture */

static char db_name[64];
static char *test_conninfo;
static char *admin_conninfo;
static PGconn *db;
static char group[128];
static char key_hex[2 * crypto_secretbox_KEYBYTES + 1];
static char run_id[64]; /* prefix of every id this run creates */
static char log_path[256];
static pid_t ledger_pid = -1;
static linli_producer_t *prod;
static char sfx[80]; /* ledger.topic_suffix of this run */

/* The run's name of a linli topic (base + suffix). */
static const char *tn(const char *base) {
  static char names[16][192];
  size_t n = 0;
  const linli_topic_schema_t *all = linli_schema_topics(&n);
  for (size_t i = 0; i < n && i < 16; i++)
    if (strcmp(all[i].name, base) == 0) {
      snprintf(names[i], sizeof names[i], "%s%s", base, sfx);
      return names[i];
    }
  return base;
}

/* Ends of the order-status and DLQ topics when the suite started. */
#define MAXP 16
static int64_t status_start[MAXP], dlq_start[MAXP];
static int status_parts, dlq_parts;

static char *join3(const char *a, const char *b, const char *c) {
  size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
  char *s = malloc(la + lb + lc + 1);
  if (s == NULL)
    return NULL;
  memcpy(s, a, la);
  memcpy(s + la, b, lb);
  memcpy(s + la + lb, c, lc + 1);
  return s;
}

/* base conninfo with dbname (and user, if non-NULL) replaced; malloc'd. */
static char *conninfo_with(const char *base, const char *dbname,
                           const char *user) {
  char *errmsg = NULL;
  PQconninfoOption *opts = PQconninfoParse(base, &errmsg);
  if (opts == NULL) {
    PQfreemem(errmsg);
    return NULL;
  }
  size_t cap = 1024, len = 0;
  char *acc = malloc(cap);
  if (acc == NULL) {
    PQconninfoFree(opts);
    return NULL;
  }
  acc[0] = '\0';
  for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
    const char *val = o->val;
    if (strcmp(o->keyword, "dbname") == 0)
      val = dbname;
    else if (user != NULL && strcmp(o->keyword, "user") == 0)
      val = user;
    if (val == NULL)
      continue;
    size_t need = len + strlen(o->keyword) + 2 * strlen(val) + 8;
    if (need > cap) {
      cap = need * 2;
      char *n = realloc(acc, cap);
      if (n == NULL) {
        free(acc);
        PQconninfoFree(opts);
        return NULL;
      }
      acc = n;
    }
    char *p = acc + len;
    if (len > 0)
      *p++ = ' ';
    size_t kl = strlen(o->keyword);
    memcpy(p, o->keyword, kl);
    p += kl;
    *p++ = '=';
    *p++ = '\'';
    for (const char *v = val; *v; v++) {
      if (*v == '\'' || *v == '\\')
        *p++ = '\\';
      *p++ = *v;
    }
    *p++ = '\'';
    *p = '\0';
    len = (size_t)(p - acc);
  }
  PQconninfoFree(opts);
  return acc;
}

static int exec_sql(PGconn *c, const char *sql) {
  PGresult *r = PQexec(c, sql);
  int ok = PQresultStatus(r) == PGRES_COMMAND_OK ||
           PQresultStatus(r) == PGRES_TUPLES_OK;
  if (!ok)
    fprintf(stderr, "SQL failed: %s", PQerrorMessage(c));
  PQclear(r);
  return ok;
}

/* One value of a query with up to three text parameters; malloc'd or NULL. */
static char *q_text(const char *sql, const char *a, const char *b,
                    const char *c) {
  const char *p[3] = {a, b, c};
  int n = c ? 3 : b ? 2 : a ? 1 : 0;
  PGresult *r = PQexecParams(db, sql, n, NULL, p, NULL, NULL, 0);
  char *v = NULL;
  if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) >= 1 &&
      !PQgetisnull(r, 0, 0))
    v = strdup(PQgetvalue(r, 0, 0));
  else if (PQresultStatus(r) != PGRES_TUPLES_OK)
    fprintf(stderr, "query failed: %s", PQerrorMessage(db));
  PQclear(r);
  return v;
}

static long q_long(const char *sql, const char *a, const char *b) {
  char *v = q_text(sql, a, b, NULL);
  long n = v ? strtol(v, NULL, 10) : -1;
  free(v);
  return n;
}

static int q_is(const char *sql, const char *a, const char *want) {
  char *v = q_text(sql, a, NULL, NULL);
  int yes = v && strcmp(v, want) == 0;
  if (!yes)
    fprintf(stderr, "  (got '%s', want '%s' for %s)\n", v ? v : "NULL", want,
            a ? a : "");
  free(v);
  return yes;
}

/* Poll until the query (one parameter) returns want, up to timeout_ms. */
static int wait_text(const char *sql, const char *a, const char *want,
                     int timeout_ms) {
  int64_t deadline = linli_test_now_ms() + timeout_ms;
  for (;;) {
    char *v = q_text(sql, a, NULL, NULL);
    int yes = v && strcmp(v, want) == 0;
    free(v);
    if (yes)
      return 1;
    if (linli_test_now_ms() > deadline)
      return q_is(sql, a, want);
    usleep(50000);
  }
}

static int wait_long(const char *sql, const char *a, long want,
                     int timeout_ms) {
  char w[32];
  snprintf(w, sizeof w, "%ld", want);
  return wait_text(sql, a, w, timeout_ms);
}

/* Until the ledger has committed the record at (topic, partition, offset). */
static int wait_consumed(const char *topic, int32_t part, int64_t off,
                         int timeout_ms) {
  char p[16], o[24];
  snprintf(p, sizeof p, "%d", (int)part);
  snprintf(o, sizeof o, "%lld", (long long)off);
  const char *params[] = {group, topic, p};
  int64_t deadline = linli_test_now_ms() + timeout_ms;
  for (;;) {
    PGresult *r = PQexecParams(db,
                               "SELECT next_offset FROM consumer_offsets "
                               "WHERE consumer_group = $1 AND topic = $2 AND "
                               "partition = $3",
                               3, NULL, params, NULL, NULL, 0);
    long long next = -1;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
      next = atoll(PQgetvalue(r, 0, 0));
    PQclear(r);
    if (next > off)
      return 1;
    if (linli_test_now_ms() > deadline) {
      fprintf(stderr, "  %s[%d]@%s not consumed (next %lld)\n", topic,
              (int)part, o, next);
      return 0;
    }
    usleep(50000);
  }
}

/* Run a built tool and wait for it (up to timeout_ms); exit status or -1. */
static int run_wait(char *const argv[], char *const env[], int timeout_ms) {
  pid_t pid = linli_test_spawn(argv, env, log_path);
  if (pid < 0)
    return -1;
  int status = 0;
  int64_t deadline = linli_test_now_ms() + timeout_ms;
  for (;;) {
    pid_t w = waitpid(pid, &status, WNOHANG);
    if (w == pid)
      return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    if (linli_test_now_ms() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return -1;
    }
    usleep(20000);
  }
}

/* ------------------------------------------------------- the ledger */

static char env_pg[2048], env_key[128], env_group[200], env_inst[200],
    env_batch[64], env_flush[64], env_log[64], env_sfx[128], env_dlq[256];

/* The ledger with extra (a test-only fault hook "NAME=value", or NULL). */
static pid_t start_ledger_with(const char *batch_size, const char *extra) {
  char bin[1024];
  static char env_extra[128];
  linli_test_binary_path("consumers/ledger/linli-ledger", bin, sizeof bin);
  snprintf(env_batch, sizeof env_batch, "LINLI_RUNNER_BATCH_SIZE=%s",
           batch_size);
  snprintf(env_extra, sizeof env_extra, "%s", extra ? extra : "");
  char *argv[] = {bin, NULL};
  char *env[] = {env_pg,    env_key, env_group, env_inst, env_batch,
                 env_flush, env_log, env_sfx,   env_dlq,  extra ? env_extra
                                                                : NULL,
                 NULL};
  return linli_test_spawn(argv, env, log_path);
}

static pid_t start_ledger(const char *batch_size) {
  return start_ledger_with(batch_size, NULL);
}

static void dump_log_tail(void) {
  char cmd[400];
  snprintf(cmd, sizeof cmd, "tail -n 40 '%s' >&2", log_path);
  if (system(cmd) != 0)
    fprintf(stderr, "(no ledger log)\n");
}

/* ------------------------------------------------------------- topics */

/* High watermarks of every partition of topic into ends[] (count in *n). */
static int topic_ends(const char *topic, int64_t *ends, int *n) {
  rd_kafka_t *rk = linli_producer_handle(prod);
  rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
  const rd_kafka_metadata_t *md = NULL;
  *n = 0;
  if (rd_kafka_metadata(rk, 0, t, &md, 10000) == 0) {
    if (md->topic_cnt == 1)
      *n = md->topics[0].partition_cnt;
    rd_kafka_metadata_destroy(md);
  }
  rd_kafka_topic_destroy(t);
  if (*n <= 0 || *n > MAXP)
    return -1;
  for (int p = 0; p < *n; p++) {
    int64_t lo = 0, hi = 0;
    if (rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, 10000))
      return -1;
    ends[p] = hi;
  }
  return 0;
}

/* The ledger's group starts at the topics' current ends. */
static int seed_offsets(void) {
  size_t n = 0;
  const linli_topic_schema_t *all = linli_schema_topics(&n);
  for (size_t i = 0; i < n; i++) {
    int64_t ends[MAXP];
    int np = 0;
    if (strcmp(all[i].name, LINLI_TOPIC_ORDER_STATUS) == 0)
      continue;
    const char *name = tn(all[i].name);
    if (topic_ends(name, ends, &np) != 0) {
      fprintf(stderr, "no metadata for %s\n", name);
      return -1;
    }
    for (int p = 0; p < np; p++) {
      char ps[16], os[24];
      snprintf(ps, sizeof ps, "%d", p);
      snprintf(os, sizeof os, "%lld", (long long)ends[p]);
      const char *params[] = {group, name, ps, os};
      PGresult *r = PQexecParams(db,
                                 "INSERT INTO consumer_offsets (consumer_group, "
                                 "topic, partition, next_offset) VALUES ($1, "
                                 "$2, $3, $4)",
                                 4, NULL, params, NULL, NULL, 0);
      int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
      PQclear(r);
      if (!ok)
        return -1;
    }
  }
  return 0;
}

/* ---------------------------------------------------- building events */

struct sent {
  char topic[64];
  char key[80];
  uint8_t *buf;
  size_t len;
  int32_t partition;
  int64_t offset;
};

/* Pack and produce env under key; returns where it landed. *out (may be
 * NULL) receives a copy to replay later (owned by the caller). */
static int produce(const char *topic, const char *key,
                   const ProtobufCMessage *env, struct sent *out) {
  size_t len = protobuf_c_message_get_packed_size(env);
  uint8_t *buf = malloc(len ? len : 1);
  if (buf == NULL)
    return -1;
  protobuf_c_message_pack(env, buf);
  char err[256];
  int32_t part = -1;
  int64_t off = -1;
  int rc = linli_producer_send_sync(prod, topic, RD_KAFKA_PARTITION_UA, key,
                                    strlen(key), buf, len, NULL, 30000, &part,
                                    &off, err, sizeof err);
  if (rc != LINLI_OK)
    fprintf(stderr, "produce %s: %s\n", topic, err);
  if (out != NULL && rc == LINLI_OK) {
    snprintf(out->topic, sizeof out->topic, "%s", topic);
    snprintf(out->key, sizeof out->key, "%s", key);
    out->buf = buf;
    out->len = len;
    out->partition = part;
    out->offset = off;
  } else {
    free(buf);
  }
  return rc == LINLI_OK ? 0 : -1;
}

/* Produce the same bytes again (a duplicate with the same event id). */
static int reproduce(struct sent *s) {
  char err[256];
  int rc = linli_producer_send_sync(prod, s->topic, RD_KAFKA_PARTITION_UA,
                                    s->key, strlen(s->key), s->buf, s->len,
                                    NULL, 30000, &s->partition, &s->offset,
                                    err, sizeof err);
  return rc == LINLI_OK ? 0 : -1;
}

struct ev {
  Linli__Meta meta;
  char id[LINLI_ID_BUFSZ];
};

static Linli__Meta *meta(struct ev *e) {
  linli__meta__init(&e->meta);
  linli_id_new(e->id, sizeof e->id);
  e->meta.event_id = e->id;
  e->meta.occurred_at_ms = 1790000000000LL;
  e->meta.producer = (char *)"test";
  e->meta.trace_id = (char *)"";
  e->meta.schema_version = 1;
  e->meta.causation_id = (char *)"";
  return &e->meta;
}

static void mkid(char *buf, size_t len, const char *what) {
  snprintf(buf, len, "%s-%s", run_id, what);
}

static int send_placed(const char *order, const char *wh, const char *sku,
                       int qty, const Linli__HomeDelivery *home,
                       struct sent *out) {
  struct ev e;
  Linli__OrderEvent env = LINLI__ORDER_EVENT__INIT;
  Linli__OrderPlaced p = LINLI__ORDER_PLACED__INIT;
  Linli__OrderLine l = LINLI__ORDER_LINE__INIT;
  Linli__OrderLine *lines[] = {&l};
  Linli__PickupDelivery pk = LINLI__PICKUP_DELIVERY__INIT;
  l.sku_id = (char *)sku;
  l.quantity = qty;
  l.unit_price_fen = 250;
  p.order_id = (char *)order;
  p.app_id = (char *)"app-1";
  p.user_id = (char *)"user-1";
  p.warehouse_id = (char *)wh;
  p.n_lines = 1;
  p.lines = lines;
  p.total_fen = 250LL * qty;
  p.campaign_id = (char *)"";
  p.placed_at_ms = 1790000000000LL;
  if (home != NULL) {
    p.delivery_case = LINLI__ORDER_PLACED__DELIVERY_HOME;
    p.home = (Linli__HomeDelivery *)home;
  } else {
    pk.pickup_point_id = (char *)"pp-1";
    p.delivery_case = LINLI__ORDER_PLACED__DELIVERY_PICKUP;
    p.pickup = &pk;
  }
  env.meta = meta(&e);
  env.event_case = LINLI__ORDER_EVENT__EVENT_ORDER_PLACED;
  env.order_placed = &p;
  return produce(tn(LINLI_TOPIC_ORDERS), order, &env.base, out);
}

static int send_paid(const char *order, const char *txn, int64_t amount,
                     struct sent *out) {
  struct ev e;
  Linli__OrderEvent env = LINLI__ORDER_EVENT__INIT;
  Linli__OrderPaid p = LINLI__ORDER_PAID__INIT;
  p.order_id = (char *)order;
  p.method = LINLI__ORDER_PAID__METHOD__ALIPAY;
  p.payment_txn_id = (char *)txn;
  p.amount_fen = amount;
  p.paid_at_ms = 1790000001000LL;
  env.meta = meta(&e);
  env.event_case = LINLI__ORDER_EVENT__EVENT_ORDER_PAID;
  env.order_paid = &p;
  return produce(tn(LINLI_TOPIC_ORDERS), order, &env.base, out);
}

static int send_result(const char *order, const char *wh,
                       Linli__ReservationResult__Status status,
                       const char *sku, int qty, const char *txn,
                       int64_t amount, const char *detail, struct sent *out) {
  struct ev e;
  Linli__ReservationEvent env = LINLI__RESERVATION_EVENT__INIT;
  Linli__ReservationResult r = LINLI__RESERVATION_RESULT__INIT;
  Linli__OrderLine l = LINLI__ORDER_LINE__INIT;
  Linli__OrderLine *lines[] = {&l};
  l.sku_id = (char *)sku;
  l.quantity = qty;
  l.unit_price_fen = 250;
  r.order_id = (char *)order;
  r.warehouse_id = (char *)wh;
  r.user_id = (char *)"user-1";
  r.status = status;
  if (sku != NULL && status != LINLI__RESERVATION_RESULT__STATUS__RELEASED) {
    r.n_lines = 1;
    r.lines = lines;
  }
  if (status == LINLI__RESERVATION_RESULT__STATUS__RESERVED)
    r.expires_at_ms = 1790000900000LL;
  r.detail = (char *)(detail ? detail : "");
  r.payment_txn_id = (char *)(txn ? txn : "");
  r.amount_fen = amount;
  r.total_fen = 250LL * qty;
  r.app_id = (char *)"app-1";
  r.campaign_id = (char *)"";
  env.meta = meta(&e);
  env.event_case = LINLI__RESERVATION_EVENT__EVENT_RESERVATION_RESULT;
  env.reservation_result = &r;
  return produce(tn(LINLI_TOPIC_RESERVATIONS), order, &env.base, out);
}

static int send_item(const char *order, const char *wh, struct sent *out) {
  struct ev e;
  Linli__FulfillmentEvent env = LINLI__FULFILLMENT_EVENT__INIT;
  Linli__FulfillmentItem it = LINLI__FULFILLMENT_ITEM__INIT;
  Linli__PickupDelivery pk = LINLI__PICKUP_DELIVERY__INIT;
  pk.pickup_point_id = (char *)"pp-1";
  it.order_id = (char *)order;
  it.warehouse_id = (char *)wh;
  it.user_id = (char *)"user-1";
  it.storage_class = LINLI__STORAGE_CLASS__CHILLED;
  it.delivery_case = LINLI__FULFILLMENT_ITEM__DELIVERY_PICKUP;
  it.pickup = &pk;
  it.wave_id = (char *)"";
  it.campaign_id = (char *)"";
  env.meta = meta(&e);
  env.event_case = LINLI__FULFILLMENT_EVENT__EVENT_FULFILLMENT_ITEM;
  env.fulfillment_item = &it;
  return produce(tn(LINLI_TOPIC_FULFILLMENT), wh, &env.base, out);
}

enum dkind { D_OUT, D_ARRIVED, D_PICKED, D_DELIVERED, D_FAILED };

static int send_delivery(const char *order, enum dkind k, struct sent *out,
                         char *event_id, size_t idlen) {
  struct ev e;
  Linli__DeliveryEvent env = LINLI__DELIVERY_EVENT__INIT;
  Linli__OutForDelivery o = LINLI__OUT_FOR_DELIVERY__INIT;
  Linli__ArrivedAtPickupPoint a = LINLI__ARRIVED_AT_PICKUP_POINT__INIT;
  Linli__PickedUp pu = LINLI__PICKED_UP__INIT;
  Linli__Delivered d = LINLI__DELIVERED__INIT;
  Linli__DeliveryFailed f = LINLI__DELIVERY_FAILED__INIT;
  env.meta = meta(&e);
  switch (k) {
  case D_FAILED:
    f.order_id = (char *)order;
    f.reason = (char *)"nobody home";
    env.event_case = LINLI__DELIVERY_EVENT__EVENT_DELIVERY_FAILED;
    env.delivery_failed = &f;
    break;
  case D_OUT:
    o.order_id = (char *)order;
    o.route_id = (char *)"route-1";
    o.courier_id = (char *)"courier-1";
    env.event_case = LINLI__DELIVERY_EVENT__EVENT_OUT_FOR_DELIVERY;
    env.out_for_delivery = &o;
    break;
  case D_ARRIVED:
    a.order_id = (char *)order;
    a.pickup_point_id = (char *)"pp-1";
    a.pickup_code = (char *)"SECRET-CODE-4711";
    env.event_case = LINLI__DELIVERY_EVENT__EVENT_ARRIVED_AT_PICKUP_POINT;
    env.arrived_at_pickup_point = &a;
    break;
  case D_PICKED:
    pu.order_id = (char *)order;
    pu.pickup_code = (char *)"SECRET-CODE-4711";
    env.event_case = LINLI__DELIVERY_EVENT__EVENT_PICKED_UP;
    env.picked_up = &pu;
    break;
  case D_DELIVERED:
    d.order_id = (char *)order;
    d.proof = (char *)"photo-1";
    env.event_case = LINLI__DELIVERY_EVENT__EVENT_DELIVERED;
    env.delivered = &d;
    break;
  }
  if (event_id != NULL)
    snprintf(event_id, idlen, "%s", e.id);
  return produce(tn(LINLI_TOPIC_DELIVERY), order, &env.base, out);
}

static uint8_t *pack_adjust(const char *wh, const char *sku, int qty,
                            Linli__StockAdjusted__Reason reason, size_t *len) {
  struct ev e;
  Linli__InventoryEvent env = LINLI__INVENTORY_EVENT__INIT;
  Linli__StockAdjusted a = LINLI__STOCK_ADJUSTED__INIT;
  char adj[LINLI_ID_BUFSZ];
  linli_id_new(adj, sizeof adj);
  a.adjustment_id = adj;
  a.warehouse_id = (char *)wh;
  a.sku_id = (char *)sku;
  a.quantity = qty;
  a.reason = reason;
  a.note = (char *)"";
  env.meta = meta(&e);
  env.event_case = LINLI__INVENTORY_EVENT__EVENT_STOCK_ADJUSTED;
  env.stock_adjusted = &a;
  *len = linli__inventory_event__get_packed_size(&env);
  uint8_t *buf = malloc(*len);
  if (buf != NULL)
    linli__inventory_event__pack(&env, buf);
  return buf;
}

static int send_adjust(const char *wh, const char *sku, int qty,
                       Linli__StockAdjusted__Reason reason, struct sent *out) {
  size_t len = 0;
  uint8_t *buf = pack_adjust(wh, sku, qty, reason, &len);
  if (buf == NULL)
    return -1;
  char err[256];
  int32_t part = -1;
  int64_t off = -1;
  int rc = linli_producer_send_sync(prod, tn(LINLI_TOPIC_INVENTORY),
                                    RD_KAFKA_PARTITION_UA, wh, strlen(wh), buf,
                                    len, NULL, 30000, &part, &off, err,
                                    sizeof err);
  if (rc == LINLI_OK && out != NULL) {
    snprintf(out->topic, sizeof out->topic, "%s", tn(LINLI_TOPIC_INVENTORY));
    snprintf(out->key, sizeof out->key, "%s", wh);
    out->buf = buf;
    out->len = len;
    out->partition = part;
    out->offset = off;
    return 0;
  }
  free(buf);
  return rc == LINLI_OK ? 0 : -1;
}

/* ---------------------------------------------------- reading topics */

struct status_seen {
  const char *order_id;
  int found;
  int state;
  int64_t version, paid_fen;
  int64_t last_offset;
};

struct dlq_seen {
  const char *key;
  const char *source_topic;
  int count;
  char reason[512];
  char consumer[64];
  char source_offset[32];
};

static void header_str(const rd_kafka_message_t *m, const char *name, char *out,
                       size_t len) {
  rd_kafka_headers_t *h = NULL;
  const void *v = NULL;
  size_t vlen = 0;
  out[0] = '\0';
  if (rd_kafka_message_headers(m, &h) != RD_KAFKA_RESP_ERR_NO_ERROR ||
      rd_kafka_header_get_last(h, name, &v, &vlen) !=
          RD_KAFKA_RESP_ERR_NO_ERROR)
    return;
  size_t n = vlen < len - 1 ? vlen : len - 1;
  memcpy(out, v, n);
  out[n] = '\0';
}

static int key_is(const rd_kafka_message_t *m, const char *key) {
  return m->key_len == strlen(key) && memcmp(m->key, key, m->key_len) == 0;
}

static void on_status(void *arg, const rd_kafka_message_t *m) {
  struct status_seen *s = arg;
  if (!key_is(m, s->order_id) || m->payload == NULL)
    return;
  Linli__OrderStatusEvent *e = linli__order_status_event__unpack(
      NULL, m->len, (const uint8_t *)m->payload);
  if (e == NULL || e->order_status == NULL) {
    if (e)
      linli__order_status_event__free_unpacked(e, NULL);
    return;
  }
  if (m->offset >= s->last_offset) { /* one key, one partition: in order */
    s->found = 1;
    s->state = e->order_status->state;
    s->version = e->order_status->version;
    s->paid_fen = e->order_status->paid_fen;
    s->last_offset = m->offset;
  }
  linli__order_status_event__free_unpacked(e, NULL);
}

static void on_dlq(void *arg, const rd_kafka_message_t *m) {
  struct dlq_seen *d = arg;
  char topic[128];
  header_str(m, LINLI_DLQ_H_TOPIC, topic, sizeof topic);
  if (!key_is(m, d->key) || strcmp(topic, d->source_topic) != 0)
    return;
  d->count++;
  header_str(m, LINLI_DLQ_H_REASON, d->reason, sizeof d->reason);
  header_str(m, LINLI_DLQ_H_CONSUMER, d->consumer, sizeof d->consumer);
  header_str(m, LINLI_DLQ_H_OFFSET, d->source_offset, sizeof d->source_offset);
}

/* Read topic from the offsets the suite started at, for read_ms. */
static void read_since(const char *topic, const int64_t *start, int nparts,
                       int read_ms, linli_test_record_fn cb, void *arg) {
  const linli_config_t *cfg = linli_test_config();
  char err[512], g[128];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  linli_test_unique("ledger-reader", g, sizeof g);
  if (linli_config_kafka_apply(cfg, conf, err, sizeof err) != LINLI_OK ||
      rd_kafka_conf_set(conf, "group.id", g, err, sizeof err) ||
      rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof err)) {
    rd_kafka_conf_destroy(conf);
    return;
  }
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  if (rk == NULL) {
    rd_kafka_conf_destroy(conf);
    return;
  }
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(nparts);
  for (int p = 0; p < nparts; p++)
    rd_kafka_topic_partition_list_add(l, topic, p)->offset = start[p];
  rd_kafka_assign(rk, l);
  rd_kafka_topic_partition_list_destroy(l);
  int64_t deadline = linli_test_now_ms() + read_ms;
  while (linli_test_now_ms() < deadline) {
    rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
    if (m == NULL)
      continue;
    if (!m->err)
      cb(arg, m);
    rd_kafka_message_destroy(m);
  }
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
}

/* The latest order-status of order_id, waiting up to timeout_ms for it to
 * reach state want. */
static int wait_status(const char *order_id, int want,
                       struct status_seen *out, int timeout_ms) {
  int64_t deadline = linli_test_now_ms() + timeout_ms;
  do {
    memset(out, 0, sizeof *out);
    out->order_id = order_id;
    out->last_offset = -1;
    read_since(tn(LINLI_TOPIC_ORDER_STATUS), status_start, status_parts, 1500,
               on_status, out);
    if (out->found && out->state == want)
      return 1;
  } while (linli_test_now_ms() < deadline);
  fprintf(stderr, "  order-status of %s: found=%d state=%d (want %d)\n",
          order_id, out->found, out->state, want);
  return 0;
}

static int wait_dlq(const char *key, const char *source_topic,
                    struct dlq_seen *out, int timeout_ms) {
  int64_t deadline = linli_test_now_ms() + timeout_ms;
  do {
    memset(out, 0, sizeof *out);
    out->key = key;
    out->source_topic = source_topic;
    read_since(tn(LINLI_TOPIC_DLQ), dlq_start, dlq_parts, 1500, on_dlq, out);
    if (out->count > 0)
      return 1;
  } while (linli_test_now_ms() < deadline);
  return 0;
}

/* ----------------------------------------------------- suite set-up */

static int create_database(void) {
  const linli_config_t *cfg = linli_test_config();
  if (cfg == NULL)
    return -1;
  const char *env = getenv("LINLI_PG_CONNINFO");
  const char *base = (env && *env) ? env : linli_config_str(cfg, "pg.conninfo");
  snprintf(db_name, sizeof db_name, "linli_ledger_%d", (int)getpid());
  PGconn *c = PQconnectdb(base);
  if (PQstatus(c) != CONNECTION_OK) {
    fprintf(stderr, "connect: %s", PQerrorMessage(c));
    PQfinish(c);
    return -1;
  }
  PGresult *r = PQexec(c, "SELECT current_user");
  char *role = PQresultStatus(r) == PGRES_TUPLES_OK
                   ? strdup(PQgetvalue(r, 0, 0))
                   : NULL;
  PQclear(r);
  char *qdb = PQescapeIdentifier(c, db_name, strlen(db_name));
  char *qrole = role ? PQescapeIdentifier(c, role, strlen(role)) : NULL;
  char *create = (qdb && qrole) ? join3("CREATE DATABASE ", qdb, " OWNER ")
                                : NULL;
  char *full = create ? join3(create, qrole, "") : NULL;
  int ok = 0;
  if (full != NULL) {
    /* As the configured role if it may, else as the superuser for it. */
    PGresult *cr = PQexec(c, full);
    ok = PQresultStatus(cr) == PGRES_COMMAND_OK;
    PQclear(cr);
    if (ok) {
      admin_conninfo = strdup(base);
    } else {
      admin_conninfo = conninfo_with(base, "postgres", "postgres");
      PGconn *a = admin_conninfo ? PQconnectdb(admin_conninfo) : NULL;
      if (a != NULL && PQstatus(a) == CONNECTION_OK)
        ok = exec_sql(a, full);
      PQfinish(a);
    }
  }
  PQfreemem(qdb);
  PQfreemem(qrole);
  free(create);
  free(full);
  free(role);
  PQfinish(c);
  if (!ok)
    return -1;
  test_conninfo = conninfo_with(base, db_name, NULL);
  db = test_conninfo ? PQconnectdb(test_conninfo) : NULL;
  return db != NULL && PQstatus(db) == CONNECTION_OK ? 0 : -1;
}

static int suite_init(void) {
  if (sodium_init() < 0 || create_database() != 0)
    return -1;
  snprintf(log_path, sizeof log_path, "/tmp/linli_test_ledger_%d.log",
           (int)getpid());
  unlink(log_path);
  snprintf(env_pg, sizeof env_pg, "LINLI_PG_CONNINFO=%s", test_conninfo);

  /* The record's schema, by the real tool. */
  char bin[1024], dir[1024];
  linli_test_binary_path("tools/linli-migrate", bin, sizeof bin);
  linli_test_source_path("schemas/sql", dir, sizeof dir);
  char *margv[] = {bin, (char *)"--dir", dir, NULL};
  char *menv[] = {env_pg, NULL};
  if (run_wait(margv, menv, 120000) != 0) {
    fprintf(stderr, "linli-migrate failed\n");
    dump_log_tail();
    return -1;
  }

  char err[512];
  if (linli_producer_new(linli_test_config(), "test-ledger", &prod, err,
                         sizeof err) != LINLI_OK) {
    fprintf(stderr, "producer: %s\n", err);
    return -1;
  }
  linli_test_unique("tl", run_id, sizeof run_id);
  for (char *p = run_id; *p; p++)
    if (*p == '-')
      *p = '_';
  snprintf(sfx, sizeof sfx, ".%s", run_id);
  snprintf(group, sizeof group, "linli-ledger-test-%s", run_id);
  if (linli_test_suffixed_topics(sfx, 0) != 0 || seed_offsets() != 0 ||
      topic_ends(tn(LINLI_TOPIC_ORDER_STATUS), status_start, &status_parts) !=
          0 ||
      topic_ends(tn(LINLI_TOPIC_DLQ), dlq_start, &dlq_parts) != 0)
    return -1;
  snprintf(env_sfx, sizeof env_sfx, "LINLI_LEDGER_TOPIC_SUFFIX=%s", sfx);
  snprintf(env_dlq, sizeof env_dlq, "LINLI_RUNNER_DLQ_TOPIC=%s",
           tn(LINLI_TOPIC_DLQ));

  unsigned char key[crypto_secretbox_KEYBYTES];
  randombytes_buf(key, sizeof key);
  sodium_bin2hex(key_hex, sizeof key_hex, key, sizeof key);
  snprintf(env_key, sizeof env_key, "LINLI_CRYPTO_KEY=%s", key_hex);
  snprintf(env_group, sizeof env_group, "LINLI_RUNNER_GROUP=%s", group);
  snprintf(env_inst, sizeof env_inst, "LINLI_RUNNER_INSTANCE_ID=%s", run_id);
  snprintf(env_flush, sizeof env_flush, "LINLI_RUNNER_FLUSH_INTERVAL_MS=50");
  snprintf(env_log, sizeof env_log, "LINLI_LOG_LEVEL=info");
  ledger_pid = start_ledger("500");
  return ledger_pid > 0 ? 0 : -1;
}

static int suite_cleanup(void) {
  if (ledger_pid > 0)
    linli_test_stop(ledger_pid, 1);
  ledger_pid = -1;
  if (prod != NULL && sfx[0])
    linli_test_suffixed_topics(sfx, 1);
  linli_producer_free(prod);
  prod = NULL;
  PQfinish(db);
  db = NULL;
  if (admin_conninfo != NULL) {
    PGconn *a = PQconnectdb(admin_conninfo);
    if (PQstatus(a) == CONNECTION_OK) {
      char *q = PQescapeIdentifier(a, db_name, strlen(db_name));
      char *drop = q ? join3("DROP DATABASE IF EXISTS ", q, " WITH (FORCE)")
                     : NULL;
      if (drop != NULL)
        exec_sql(a, drop);
      free(drop);
      PQfreemem(q);
    }
    PQfinish(a);
  }
  free(admin_conninfo);
  admin_conninfo = NULL;
  free(test_conninfo);
  test_conninfo = NULL;
  if (CU_get_number_of_failures() == 0)
    unlink(log_path); /* kept for a look when something failed */
  return 0;
}

/* ---------------------------------------------------------------- tests */

#define ORDER_STATE "SELECT state FROM orders WHERE order_id = $1"
#define T 60000 /* ms to wait for the ledger */

/* The events of the lifecycle order, kept for the replay test. */
static struct sent life[12];
static int nlife;
static char life_order[80], life_wh[80], life_sku[80];

static void test_lifecycle(void) {
  mkid(life_order, sizeof life_order, "life");
  mkid(life_wh, sizeof life_wh, "w1");
  mkid(life_sku, sizeof life_sku, "rice");
  const char *o = life_order;
  char txn[96];
  mkid(txn, sizeof txn, "txn1");
  nlife = 0;
  CU_ASSERT_EQUAL_FATAL(send_adjust(life_wh, life_sku, 10,
                                    LINLI__STOCK_ADJUSTED__REASON__RESTOCK,
                                    &life[nlife++]),
                        0);
  CU_ASSERT_EQUAL_FATAL(send_placed(o, life_wh, life_sku, 3, NULL,
                                    &life[nlife++]),
                        0);
  CU_ASSERT_EQUAL_FATAL(
      send_result(o, life_wh, LINLI__RESERVATION_RESULT__STATUS__RESERVED,
                  life_sku, 3, NULL, 0, NULL, &life[nlife++]),
      0);
  CU_ASSERT_EQUAL_FATAL(send_paid(o, txn, 750, &life[nlife++]), 0);
  CU_ASSERT_EQUAL_FATAL(
      send_result(o, life_wh, LINLI__RESERVATION_RESULT__STATUS__COMMITTED,
                  life_sku, 3, txn, 750, NULL, &life[nlife++]),
      0);
  CU_ASSERT_EQUAL_FATAL(send_item(o, life_wh, &life[nlife++]), 0);
  CU_ASSERT_EQUAL_FATAL(send_delivery(o, D_OUT, &life[nlife++], NULL, 0), 0);
  CU_ASSERT_EQUAL_FATAL(send_delivery(o, D_ARRIVED, &life[nlife++], NULL, 0),
                        0);
  CU_ASSERT_EQUAL_FATAL(send_delivery(o, D_PICKED, &life[nlife++], NULL, 0),
                        0);

  CU_ASSERT_TRUE(wait_text(ORDER_STATE, o, "PICKED_UP", T));
  for (int i = 0; i < nlife; i++)
    CU_ASSERT_TRUE(wait_consumed(life[i].topic, life[i].partition,
                                 life[i].offset, T));
  CU_ASSERT_EQUAL(q_long("SELECT count(*) FROM order_events WHERE "
                         "order_id = $1", o, NULL),
                  8);
  CU_ASSERT_EQUAL(q_long("SELECT quantity FROM order_lines WHERE "
                         "order_id = $1 AND line_no = 0", o, NULL),
                  3);
  char want[400];
  snprintf(want, sizeof want, "user-1|%s|PICKUP|pp-1|750|750|%s|ALIPAY",
           life_wh, txn);
  CU_ASSERT_TRUE(q_is("SELECT concat_ws('|', user_id, warehouse_id, "
                      "delivery_kind, pickup_point_id, total_fen, paid_fen, "
                      "payment_txn_id, payment_method) FROM orders WHERE "
                      "order_id = $1",
                      o, want));
  CU_ASSERT_TRUE(q_is("SELECT status FROM reservations WHERE order_id = $1",
                      o, "COMMITTED"));
  CU_ASSERT_TRUE(q_is("SELECT status || '|' || method FROM payments WHERE "
                      "order_id = $1",
                      o, "ACCEPTED|ALIPAY"));
  /* stock: restocked 10, reserved 3, sold 3 */
  char inv[200];
  snprintf(inv, sizeof inv, "%s", life_wh);
  CU_ASSERT_TRUE(q_is("SELECT concat_ws('|', initial, available, reserved, "
                      "sold) FROM inventory WHERE warehouse_id = $1",
                      inv, "10|7|0|3"));
  CU_ASSERT_EQUAL(q_long("SELECT count(*) FROM stock_movements WHERE "
                         "warehouse_id = $1", life_wh, NULL),
                  3);
  CU_ASSERT_EQUAL(q_long("SELECT count(*) FROM delivery_events WHERE "
                         "order_id = $1", o, NULL),
                  3);
  CU_ASSERT_EQUAL(q_long("SELECT count(*) FROM fulfillment_items WHERE "
                         "order_id = $1 AND storage_class = 'CHILLED'", o,
                         NULL),
                  1);
  /* the pickup code is a secret: nowhere in the history */
  CU_ASSERT_EQUAL(q_long("SELECT count(*) FROM order_events WHERE "
                         "order_id = $1 AND payload::text LIKE "
                         "'%SECRET-CODE%'", o, NULL),
                  0);

  struct status_seen st;
  CU_ASSERT_TRUE(wait_status(o, LINLI__ORDER_STATUS__STATE__PICKED_UP, &st,
                             T));
  CU_ASSERT_EQUAL(st.paid_fen, 750);
  char version[24];
  snprintf(version, sizeof version, "%lld", (long long)st.version);
  CU_ASSERT_TRUE(q_is("SELECT version FROM orders WHERE order_id = $1", o,
                      version));
}

/* Replaying the very same records (same event ids) changes nothing. */
static void test_replay(void) {
  CU_ASSERT_FATAL(nlife > 0);
  const char *o = life_order;
  char *before = q_text("SELECT concat_ws('|', state, version, paid_fen, "
                        "refunded_fen, (SELECT count(*) FROM order_events e "
                        "WHERE e.order_id = o.order_id), (SELECT "
                        "count(*) FROM payments p WHERE p.order_id = "
                        "o.order_id)) FROM orders o WHERE order_id = $1",
                        o, NULL, NULL);
  for (int i = 0; i < nlife; i++)
    CU_ASSERT_EQUAL(reproduce(&life[i]), 0);
  for (int i = 0; i < nlife; i++)
    CU_ASSERT_TRUE(wait_consumed(life[i].topic, life[i].partition,
                                 life[i].offset, T));
  char *after = q_text("SELECT concat_ws('|', state, version, paid_fen, "
                       "refunded_fen, (SELECT count(*) FROM order_events e "
                       "WHERE e.order_id = o.order_id), (SELECT "
                       "count(*) FROM payments p WHERE p.order_id = "
                       "o.order_id)) FROM orders o WHERE order_id = $1",
                       o, NULL, NULL);
  CU_ASSERT_PTR_NOT_NULL(before);
  CU_ASSERT_PTR_NOT_NULL(after);
  if (before && after)
    CU_ASSERT_STRING_EQUAL(before, after);
  CU_ASSERT_TRUE(q_is("SELECT concat_ws('|', initial, available, reserved, "
                      "sold) FROM inventory WHERE warehouse_id = $1",
                      life_wh, "10|7|0|3"));
  CU_ASSERT_EQUAL(q_long("SELECT count(*) FROM stock_movements WHERE "
                         "warehouse_id = $1", life_wh, NULL),
                  3);
  CU_ASSERT_EQUAL(q_long("SELECT count(*) FROM delivery_events WHERE "
                         "order_id = $1", o, NULL),
                  3);
  free(before);
  free(after);
  for (int i = 0; i < nlife; i++)
    free(life[i].buf);
  nlife = 0;
}

/* A delivery report read before the order's other events. */
static void test_out_of_order(void) {
  char o[80], wh[80], sku[80], txn[96];
  mkid(o, sizeof o, "ooo");
  mkid(wh, sizeof wh, "w2");
  mkid(sku, sizeof sku, "tea");
  mkid(txn, sizeof txn, "txn-ooo");
  struct sent s;
  CU_ASSERT_EQUAL_FATAL(send_item(o, wh, &s), 0);
  free(s.buf);
  CU_ASSERT_TRUE(wait_text(ORDER_STATE, o, "READY", T));
  /* a row created by a later step has no details yet */
  CU_ASSERT_EQUAL(q_long("SELECT count(*) FROM orders WHERE order_id = $1 "
                         "AND placed_event_id IS NULL", o, NULL),
                  1);
  CU_ASSERT_EQUAL(send_placed(o, wh, sku, 2, NULL, NULL), 0);
  CU_ASSERT_EQUAL(send_result(o, wh,
                              LINLI__RESERVATION_RESULT__STATUS__RESERVED, sku,
                              2, NULL, 0, NULL, NULL),
                  0);
  CU_ASSERT_EQUAL(send_result(o, wh,
                              LINLI__RESERVATION_RESULT__STATUS__COMMITTED, sku,
                              2, txn, 500, NULL, &s),
                  0);
  CU_ASSERT_TRUE(wait_consumed(s.topic, s.partition, s.offset, T));
  free(s.buf);
  CU_ASSERT_TRUE(wait_long("SELECT count(*) FROM order_events WHERE "
                           "order_id = $1", o, 4, T));
  /* the state stays at the latest step; details and payment are filled */
  CU_ASSERT_TRUE(q_is(ORDER_STATE, o, "READY"));
  CU_ASSERT_TRUE(wait_text("SELECT concat_ws('|', delivery_kind, total_fen, "
                           "paid_fen, placed_event_id IS NOT NULL) FROM "
                           "orders WHERE order_id = $1",
                           o, "PICKUP|500|500|t", T));
  CU_ASSERT_TRUE(q_is("SELECT concat_ws('|', available, reserved, sold) FROM "
                      "inventory WHERE warehouse_id = $1",
                      wh, "-2|0|2"));
}

/* Impossible transitions go to the DLQ with their reason, not the record. */
static void test_illegal(void) {
  char o[80], wh[80], sku[80], event_id[LINLI_ID_BUFSZ];
  mkid(o, sizeof o, "cancel");
  mkid(wh, sizeof wh, "w3");
  mkid(sku, sizeof sku, "milk");
  CU_ASSERT_EQUAL(send_placed(o, wh, sku, 1, NULL, NULL), 0);
  CU_ASSERT_EQUAL(send_result(o, wh,
                              LINLI__RESERVATION_RESULT__STATUS__RESERVED, sku,
                              1, NULL, 0, NULL, NULL),
                  0);
  CU_ASSERT_EQUAL(send_result(o, wh, LINLI__RESERVATION_RESULT__STATUS__RELEASED,
                              NULL, 0, NULL, 0, "cancelled before payment",
                              NULL),
                  0);
  CU_ASSERT_TRUE(wait_text(ORDER_STATE, o, "CANCELLED", T));
  struct sent s;
  CU_ASSERT_EQUAL_FATAL(
      send_delivery(o, D_DELIVERED, &s, event_id, sizeof event_id), 0);
  CU_ASSERT_TRUE(wait_consumed(s.topic, s.partition, s.offset, T));
  free(s.buf);

  struct dlq_seen d;
  CU_ASSERT_TRUE(wait_dlq(o, tn(LINLI_TOPIC_DELIVERY), &d, T));
  char reason[300];
  snprintf(reason, sizeof reason,
           "illegal transition CANCELLED -> DELIVERED for order %s", o);
  CU_ASSERT_STRING_EQUAL(d.reason, reason);
  CU_ASSERT_STRING_EQUAL(d.consumer, "ledger");
  CU_ASSERT_EQUAL(d.count, 1);
  char off[24];
  snprintf(off, sizeof off, "%lld", (long long)s.offset);
  CU_ASSERT_STRING_EQUAL(d.source_offset, off);
  /* not in the record */
  CU_ASSERT_TRUE(q_is(ORDER_STATE, o, "CANCELLED"));
  CU_ASSERT_EQUAL(q_long("SELECT count(*) FROM order_events WHERE "
                         "event_id = $1", event_id, NULL),
                  0);
  CU_ASSERT_EQUAL(q_long("SELECT count(*) FROM delivery_events WHERE "
                         "order_id = $1", o, NULL),
                  0);
  /* stock went back on release */
  CU_ASSERT_TRUE(q_is("SELECT concat_ws('|', available, reserved, sold) FROM "
                      "inventory WHERE warehouse_id = $1",
                      wh, "0|0|0"));
  /* the ledger reads the DLQ too: its own record is recorded once */
  CU_ASSERT_TRUE(wait_long("SELECT count(*) FROM dlq_records WHERE "
                           "source_topic LIKE 'linli.delivery.v1%' AND "
                           "consumer = 'ledger' AND msg_key = "
                           "convert_to($1, 'UTF8')",
                           o, 1, T));

  /* A second, different payment accepted for a paid order. */
  char o2[80], t1[96], t2[96];
  mkid(o2, sizeof o2, "double");
  mkid(t1, sizeof t1, "t1");
  mkid(t2, sizeof t2, "t2");
  CU_ASSERT_EQUAL(send_placed(o2, wh, sku, 1, NULL, NULL), 0);
  CU_ASSERT_EQUAL(send_result(o2, wh,
                              LINLI__RESERVATION_RESULT__STATUS__RESERVED, sku,
                              1, NULL, 0, NULL, NULL),
                  0);
  CU_ASSERT_EQUAL(send_result(o2, wh,
                              LINLI__RESERVATION_RESULT__STATUS__COMMITTED,
                              sku, 1, t1, 250, NULL, NULL),
                  0);
  CU_ASSERT_EQUAL(send_result(o2, wh,
                              LINLI__RESERVATION_RESULT__STATUS__COMMITTED,
                              sku, 1, t2, 250, NULL, NULL),
                  0);
  CU_ASSERT_TRUE(wait_dlq(o2, tn(LINLI_TOPIC_RESERVATIONS), &d, T));
  CU_ASSERT_PTR_NOT_NULL(strstr(d.reason, "already paid"));
  CU_ASSERT_TRUE(q_is("SELECT payment_txn_id FROM orders WHERE order_id = $1",
                      o2, t1));
  CU_ASSERT_EQUAL(q_long("SELECT count(*) FROM payments WHERE order_id = $1",
                         o2, NULL),
                  1);
}

static int contains_bytes(const unsigned char *hay, size_t n,
                          const char *needle) {
  size_t k = strlen(needle);
  for (size_t i = 0; k <= n && i + k <= n; i++)
    if (memcmp(hay + i, needle, k) == 0)
      return 1;
  return 0;
}

/* Personal fields: ciphertext in PostgreSQL, plaintext nowhere. */
static void test_personal_data(void) {
  char o[80], wh[80], sku[80];
  mkid(o, sizeof o, "home");
  mkid(wh, sizeof wh, "w4");
  mkid(sku, sizeof sku, "eggs");
  Linli__HomeDelivery h = LINLI__HOME_DELIVERY__INIT;
  h.recipient_name = (char *)"Wang Xiaoming";
  h.phone = (char *)"+8613800138000";
  h.address = (char *)"Building 7, Lane 99, Ruijin Road";
  h.lat_e6 = 31210000;
  h.lng_e6 = 121470000;
  CU_ASSERT_EQUAL_FATAL(send_placed(o, wh, sku, 1, &h, NULL), 0);
  CU_ASSERT_TRUE(wait_text(ORDER_STATE, o, "PLACED", T));
  CU_ASSERT_TRUE(q_is("SELECT delivery_kind FROM orders WHERE order_id = $1",
                      o, "HOME"));
  struct {
    const char *col, *plain;
  } f[] = {{"recipient_name_enc", h.recipient_name},
           {"phone_enc", h.phone},
           {"address_enc", h.address},
           {"location_enc", "31210000,121470000"}};
  unsigned char key[crypto_secretbox_KEYBYTES];
  CU_ASSERT_EQUAL_FATAL(sodium_hex2bin(key, sizeof key, key_hex,
                                       strlen(key_hex), NULL, NULL, NULL),
                        0);
  for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
    char sql[200];
    snprintf(sql, sizeof sql,
             "SELECT encode(%s, 'hex') FROM orders WHERE order_id = $1",
             f[i].col);
    char *hex = q_text(sql, o, NULL, NULL);
    CU_ASSERT_PTR_NOT_NULL(hex);
    if (hex == NULL)
      continue;
    size_t hl = strlen(hex);
    unsigned char *box = malloc(hl / 2 + 1);
    size_t blen = 0;
    CU_ASSERT_EQUAL(sodium_hex2bin(box, hl / 2 + 1, hex, hl, NULL, &blen,
                                   NULL),
                    0);
    /* not the plaintext */
    CU_ASSERT_FALSE(contains_bytes(box, blen, f[i].plain));
    CU_ASSERT_TRUE(blen > crypto_secretbox_NONCEBYTES +
                              crypto_secretbox_MACBYTES);
    size_t plen = blen - crypto_secretbox_NONCEBYTES -
                  crypto_secretbox_MACBYTES;
    char *plain = malloc(plen + 1);
    CU_ASSERT_EQUAL(crypto_secretbox_open_easy(
                        (unsigned char *)plain,
                        box + crypto_secretbox_NONCEBYTES,
                        blen - crypto_secretbox_NONCEBYTES, box, key),
                    0);
    plain[plen] = '\0';
    CU_ASSERT_STRING_EQUAL(plain, f[i].plain);
    free(plain);
    free(box);
    free(hex);
  }
  CU_ASSERT_EQUAL(q_long("SELECT count(*) FROM orders WHERE order_id = $1 "
                         "AND pii_key_id LIKE 'k%'", o, NULL),
                  1);
  /* the history holds the event without the personal fields */
  char *payload = q_text("SELECT payload::text FROM order_events WHERE "
                         "order_id = $1", o, NULL, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL(payload);
  CU_ASSERT_PTR_NULL(strstr(payload, "Xiaoming"));
  CU_ASSERT_PTR_NULL(strstr(payload, "13800138000"));
  CU_ASSERT_PTR_NULL(strstr(payload, "Ruijin"));
  CU_ASSERT_PTR_NULL(strstr(payload, "31210000"));
  CU_ASSERT_PTR_NOT_NULL(strstr(payload, "[encrypted]"));
  free(payload);
}

/* ------------------------------------------------------ poison input */

/* An OrderPlaced for pickup with n lines (SKU "<sku>-<i>", qty, price). */
static int send_placed_lines(const char *order, const char *wh,
                             const char *sku, size_t n, int qty,
                             int64_t price, const Linli__HomeDelivery *home,
                             int64_t occurred_at_ms, struct sent *out) {
  struct ev e;
  Linli__OrderEvent env = LINLI__ORDER_EVENT__INIT;
  Linli__OrderPlaced p = LINLI__ORDER_PLACED__INIT;
  Linli__PickupDelivery pk = LINLI__PICKUP_DELIVERY__INIT;
  Linli__OrderLine *ls = calloc(n, sizeof *ls);
  Linli__OrderLine **lines = calloc(n, sizeof *lines);
  char(*skus)[96] = calloc(n, sizeof *skus);
  if (ls == NULL || lines == NULL || skus == NULL) {
    free(ls);
    free(lines);
    free(skus);
    return -1;
  }
  for (size_t i = 0; i < n; i++) {
    linli__order_line__init(&ls[i]);
    snprintf(skus[i], sizeof skus[i], "%s-%zu", sku, i);
    ls[i].sku_id = skus[i];
    ls[i].quantity = qty;
    ls[i].unit_price_fen = price;
    lines[i] = &ls[i];
  }
  p.order_id = (char *)order;
  p.app_id = (char *)"app-1";
  p.user_id = (char *)"user-1";
  p.warehouse_id = (char *)wh;
  p.n_lines = n;
  p.lines = lines;
  p.campaign_id = (char *)"";
  p.placed_at_ms = 1790000000000LL;
  if (home != NULL) {
    p.delivery_case = LINLI__ORDER_PLACED__DELIVERY_HOME;
    p.home = (Linli__HomeDelivery *)home;
  } else {
    pk.pickup_point_id = (char *)"pp-1";
    p.delivery_case = LINLI__ORDER_PLACED__DELIVERY_PICKUP;
    p.pickup = &pk;
  }
  env.meta = meta(&e);
  if (occurred_at_ms != 0)
    env.meta->occurred_at_ms = occurred_at_ms;
  env.event_case = LINLI__ORDER_EVENT__EVENT_ORDER_PLACED;
  env.order_placed = &p;
  int rc = produce(tn(LINLI_TOPIC_ORDERS), order, &env.base, out);
  free(ls);
  free(lines);
  free(skus);
  return rc;
}

/* The DLQ record the ledger wrote for key from source topic contains
 * want in its reason. */
static void expect_dlq(const char *key, const char *topic, const char *want) {
  struct dlq_seen d;
  CU_ASSERT_TRUE(wait_dlq(key, topic, &d, T));
  CU_ASSERT_STRING_EQUAL(d.consumer, "ledger");
  CU_ASSERT_PTR_NOT_NULL(strstr(d.reason, want));
  if (strstr(d.reason, want) == NULL)
    fprintf(stderr, "  DLQ reason for %s: \"%s\" (want \"%s\")\n", key,
            d.reason, want);
}

/* No record content stops the ledger: each goes to the DLQ with its
 * reason, and the ledger goes on with the next record. */
static void test_poison(void) {
  char wh[80], sku[80], o[16][96];
  mkid(wh, sizeof wh, "wp");
  mkid(sku, sizeof sku, "px");
  for (int i = 0; i < 16; i++) {
    char what[16];
    snprintf(what, sizeof what, "poison%d", i);
    mkid(o[i], sizeof o[i], what);
  }
  const char *orders = tn(LINLI_TOPIC_ORDERS);
  /* 0: a cancel whose reason is not UTF-8 */
  {
    struct ev e;
    Linli__OrderEvent env = LINLI__ORDER_EVENT__INIT;
    Linli__OrderCancelled c = LINLI__ORDER_CANCELLED__INIT;
    c.order_id = o[0];
    c.reason = (char *)"changed my mind \xff\xfe";
    env.meta = meta(&e);
    env.event_case = LINLI__ORDER_EVENT__EVENT_ORDER_CANCELLED;
    env.order_cancelled = &c;
    CU_ASSERT_EQUAL(produce(orders, o[0], &env.base, NULL), 0);
  }
  /* 1: a line at INT64_MAX fen */
  CU_ASSERT_EQUAL(
      send_placed_lines(o[1], wh, sku, 1, 1, INT64_MAX, NULL, 0, NULL), 0);
  /* 2: 100 lines whose total overflows int64 (each 1e6 x 1e11 fen) */
  CU_ASSERT_EQUAL(send_placed_lines(o[2], wh, sku, 100, 1000000,
                                    INT64_C(100000000000), NULL, 0, NULL),
                  0);
  /* 3: more lines than orders.max_lines (100) */
  CU_ASSERT_EQUAL(send_placed_lines(o[3], wh, sku, 101, 1, 100, NULL, 0, NULL),
                  0);
  /* 4: home coordinates out of range */
  Linli__HomeDelivery h = LINLI__HOME_DELIVERY__INIT;
  h.recipient_name = (char *)"Li Lei";
  h.phone = (char *)"+8613911112222";
  h.address = (char *)"Room 301, Building 2, Hongqiao Road";
  h.lat_e6 = 100000000;
  h.lng_e6 = 121470000;
  struct sent s4;
  CU_ASSERT_EQUAL(send_placed_lines(o[4], wh, sku, 1, 1, 100, &h, 0, &s4), 0);
  /* 5: an event time PostgreSQL cannot hold */
  CU_ASSERT_EQUAL(
      send_placed_lines(o[5], wh, sku, 1, 1, 100, NULL, INT64_MAX, NULL), 0);
  /* 6: bytes that are not an OrderEvent */
  CU_ASSERT_EQUAL(linli_test_produce(orders, o[6], "\xff\xff\xff\xff", 4), 0);
  /* 7: a reservation result whose meta.event_id is not UTF-8 */
  {
    struct ev e;
    Linli__ReservationEvent env = LINLI__RESERVATION_EVENT__INIT;
    Linli__ReservationResult r = LINLI__RESERVATION_RESULT__INIT;
    r.order_id = o[7];
    r.warehouse_id = wh;
    r.user_id = (char *)"user-1";
    r.status = LINLI__RESERVATION_RESULT__STATUS__REJECTED;
    r.detail = (char *)"";
    r.payment_txn_id = (char *)"";
    r.app_id = (char *)"app-1";
    r.campaign_id = (char *)"";
    env.meta = meta(&e);
    env.meta->event_id = (char *)"evt-\xc3\x28";
    env.event_case = LINLI__RESERVATION_EVENT__EVENT_RESERVATION_RESULT;
    env.reservation_result = &r;
    CU_ASSERT_EQUAL(
        produce(tn(LINLI_TOPIC_RESERVATIONS), o[7], &env.base, NULL), 0);
  }
  /* 9: a count of -2^31 units (whose reversal int32 cannot hold) */
  CU_ASSERT_EQUAL(send_adjust(wh, sku, INT32_MIN,
                              LINLI__STOCK_ADJUSTED__REASON__COUNT, NULL),
                  0);
  /* and a good order after them all: the ledger is still going */
  struct sent good;
  CU_ASSERT_EQUAL_FATAL(send_placed(o[8], wh, sku, 1, NULL, &good), 0);
  CU_ASSERT_TRUE(wait_consumed(good.topic, good.partition, good.offset, T));
  free(good.buf);
  CU_ASSERT_TRUE(q_is(ORDER_STATE, o[8], "PLACED"));
  CU_ASSERT_TRUE(ledger_pid > 0 && waitpid(ledger_pid, NULL, WNOHANG) == 0);

  expect_dlq(o[0], orders, "not valid UTF-8");
  expect_dlq(o[1], orders,
             "order_placed.lines[0].unit_price_fen: must be between 0 and");
  expect_dlq(o[2], orders, "order_placed.lines: the order total");
  expect_dlq(o[3], orders, "101 lines, at most 100 allowed");
  expect_dlq(o[4], orders, "order_placed.home.lat_e6: must be between");
  expect_dlq(o[5], orders, "meta.occurred_at_ms: must be between 1 and");
  expect_dlq(o[6], orders, "undecodable record: not an OrderEvent");
  expect_dlq(o[7], tn(LINLI_TOPIC_RESERVATIONS), "not valid UTF-8");
  expect_dlq(wh, tn(LINLI_TOPIC_INVENTORY),
             "stock_adjusted.quantity: must be between");
  CU_ASSERT_EQUAL(q_long("SELECT count(*) FROM inventory WHERE "
                         "warehouse_id = $1",
                         wh, NULL),
                  0);
  for (int i = 0; i < 8; i++)
    CU_ASSERT_EQUAL(q_long("SELECT count(*) FROM orders WHERE order_id = $1",
                           o[i], NULL),
                    0);

  /* The DLQ copy of the home order is in dlq_records, its bytes
   * encrypted: name, phone and address are nowhere in clear. */
  CU_ASSERT_TRUE(wait_long("SELECT count(*) FROM dlq_records WHERE "
                           "consumer = 'ledger' AND msg_key = "
                           "convert_to($1, 'UTF8')",
                           o[4], 1, T));
  char *hex = q_text("SELECT encode(msg_value, 'hex') FROM dlq_records WHERE "
                     "msg_key = convert_to($1, 'UTF8') AND consumer = "
                     "'ledger'",
                     o[4], NULL, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL(hex);
  size_t hl = strlen(hex), blen = 0;
  unsigned char *box = malloc(hl / 2 + 1);
  CU_ASSERT_EQUAL(
      sodium_hex2bin(box, hl / 2 + 1, hex, hl, NULL, &blen, NULL), 0);
  CU_ASSERT_FALSE(contains_bytes(box, blen, "Li Lei"));
  CU_ASSERT_FALSE(contains_bytes(box, blen, "13911112222"));
  CU_ASSERT_FALSE(contains_bytes(box, blen, "Hongqiao"));
  unsigned char key[crypto_secretbox_KEYBYTES];
  CU_ASSERT_EQUAL(sodium_hex2bin(key, sizeof key, key_hex, strlen(key_hex),
                                 NULL, NULL, NULL),
                  0);
  CU_ASSERT_FATAL(blen == crypto_secretbox_NONCEBYTES +
                              crypto_secretbox_MACBYTES + s4.len);
  unsigned char *plain = malloc(s4.len + 1);
  CU_ASSERT_EQUAL(crypto_secretbox_open_easy(
                      plain, box + crypto_secretbox_NONCEBYTES,
                      blen - crypto_secretbox_NONCEBYTES, box, key),
                  0);
  CU_ASSERT_EQUAL(memcmp(plain, s4.buf, s4.len), 0);
  free(plain);
  free(box);
  free(hex);
  free(s4.buf);
}

/* A SKU listed twice at two prices: the record keeps both lines as
 * placed, and the total is the lines' (the reserver's) sum. */
static void test_sku_twice(void) {
  char o[96], wh[80], sku[80];
  mkid(o, sizeof o, "twice");
  mkid(wh, sizeof wh, "wt");
  mkid(sku, sizeof sku, "tea");
  struct ev e;
  Linli__OrderEvent env = LINLI__ORDER_EVENT__INIT;
  Linli__OrderPlaced p = LINLI__ORDER_PLACED__INIT;
  Linli__PickupDelivery pk = LINLI__PICKUP_DELIVERY__INIT;
  Linli__OrderLine a = LINLI__ORDER_LINE__INIT, b = LINLI__ORDER_LINE__INIT;
  Linli__OrderLine *lines[] = {&a, &b};
  a.sku_id = sku;
  a.quantity = 1;
  a.unit_price_fen = 100;
  b.sku_id = sku;
  b.quantity = 2;
  b.unit_price_fen = 150;
  p.order_id = o;
  p.app_id = (char *)"app-1";
  p.user_id = (char *)"user-1";
  p.warehouse_id = wh;
  p.n_lines = 2;
  p.lines = lines;
  p.campaign_id = (char *)"";
  pk.pickup_point_id = (char *)"pp-1";
  p.delivery_case = LINLI__ORDER_PLACED__DELIVERY_PICKUP;
  p.pickup = &pk;
  env.meta = meta(&e);
  env.event_case = LINLI__ORDER_EVENT__EVENT_ORDER_PLACED;
  env.order_placed = &p;
  CU_ASSERT_EQUAL_FATAL(produce(tn(LINLI_TOPIC_ORDERS), o, &env.base, NULL),
                        0);
  CU_ASSERT_TRUE(wait_text(ORDER_STATE, o, "PLACED", T));
  CU_ASSERT_TRUE(q_is("SELECT total_fen FROM orders WHERE order_id = $1", o,
                      "400"));
  char want[256];
  snprintf(want, sizeof want, "0|%s|1|100;1|%s|2|150", sku, sku);
  CU_ASSERT_TRUE(q_is("SELECT string_agg(concat_ws('|', line_no, sku_id, "
                      "quantity, unit_price_fen), ';' ORDER BY line_no) "
                      "FROM order_lines WHERE order_id = $1",
                      o, want));
}

/* A DLQ row waiting in the outbox (its deletion refused by a trigger in
 * this test's database) holds the record's bytes encrypted; the DLQ topic
 * gets the original bytes. */
static void test_outbox_dlq_encrypted(void) {
  char o[96], wh[80], sku[80], sql[1024];
  mkid(o, sizeof o, "held");
  mkid(wh, sizeof wh, "wh-held");
  mkid(sku, sizeof sku, "hx");
  snprintf(sql, sizeof sql,
           "CREATE FUNCTION test_hold_outbox() RETURNS trigger LANGUAGE "
           "plpgsql AS $$ BEGIN IF OLD.msg_key = convert_to('%s', 'UTF8') "
           "THEN RAISE EXCEPTION 'held by test'; END IF; RETURN OLD; END $$",
           o);
  CU_ASSERT_TRUE_FATAL(exec_sql(db, sql));
  CU_ASSERT_TRUE_FATAL(
      exec_sql(db, "CREATE TRIGGER test_hold_outbox BEFORE DELETE ON "
                   "ledger_outbox FOR EACH ROW EXECUTE FUNCTION "
                   "test_hold_outbox()"));
  Linli__HomeDelivery h = LINLI__HOME_DELIVERY__INIT;
  h.recipient_name = (char *)"Han Meimei";
  h.phone = (char *)"+8613722223333";
  h.address = (char *)"Flat 12, Zhongshan North Road";
  h.lat_e6 = 95000000; /* out of range: to the DLQ */
  h.lng_e6 = 121470000;
  struct sent s;
  CU_ASSERT_EQUAL_FATAL(
      send_placed_lines(o, wh, sku, 1, 1, 100, &h, 0, &s), 0);
  expect_dlq(o, tn(LINLI_TOPIC_ORDERS), "order_placed.home.lat_e6");
  /* the published copy is the original record */
  CU_ASSERT_TRUE(wait_long("SELECT count(*) FROM dlq_records WHERE "
                           "consumer = 'ledger' AND msg_key = "
                           "convert_to($1, 'UTF8')",
                           o, 1, T));
  unsigned char key[crypto_secretbox_KEYBYTES];
  CU_ASSERT_EQUAL(sodium_hex2bin(key, sizeof key, key_hex, strlen(key_hex),
                                 NULL, NULL, NULL),
                  0);
  const char *which[] = {
      "SELECT encode(msg_value, 'hex') FROM dlq_records WHERE msg_key = "
      "convert_to($1, 'UTF8') AND consumer = 'ledger'",
      "SELECT encode(msg_value, 'hex') FROM ledger_outbox WHERE msg_key = "
      "convert_to($1, 'UTF8')"};
  for (int w = 0; w < 2; w++) {
    char *hex = q_text(which[w], o, NULL, NULL);
    CU_ASSERT_PTR_NOT_NULL(hex);
    if (hex == NULL)
      continue;
    size_t hl = strlen(hex), blen = 0;
    unsigned char *box = malloc(hl / 2 + 1);
    CU_ASSERT_EQUAL(
        sodium_hex2bin(box, hl / 2 + 1, hex, hl, NULL, &blen, NULL), 0);
    CU_ASSERT_FALSE(contains_bytes(box, blen, "Meimei"));
    CU_ASSERT_FALSE(contains_bytes(box, blen, "13722223333"));
    CU_ASSERT_FALSE(contains_bytes(box, blen, "Zhongshan"));
    CU_ASSERT_EQUAL(blen, crypto_secretbox_NONCEBYTES +
                              crypto_secretbox_MACBYTES + s.len);
    unsigned char *plain = malloc(s.len + 1);
    if (blen == crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES +
                    s.len) {
      CU_ASSERT_EQUAL(crypto_secretbox_open_easy(
                          plain, box + crypto_secretbox_NONCEBYTES,
                          blen - crypto_secretbox_NONCEBYTES, box, key),
                      0);
      CU_ASSERT_EQUAL(memcmp(plain, s.buf, s.len), 0);
    }
    free(plain);
    free(box);
    free(hex);
  }
  exec_sql(db, "DROP TRIGGER test_hold_outbox ON ledger_outbox");
  free(s.buf);
}

/* A record the database refuses, whose DLQ row the database refuses too
 * (triggers in this test's own database): the DLQ row is stored redacted
 * and the ledger goes on. */
static void test_dlq_row_refused(void) {
  char o[96], wh[80], sku[80];
  mkid(o, sizeof o, "refused2");
  mkid(wh, sizeof wh, "wr");
  mkid(sku, sizeof sku, "rr");
  char sql[1024];
  /* Two functions: orders by order id, the outbox by key with a payload. */
  snprintf(sql, sizeof sql,
           "CREATE FUNCTION test_refuse_order() RETURNS trigger LANGUAGE "
           "plpgsql AS $$ BEGIN IF NEW.order_id = '%s' THEN RAISE EXCEPTION "
           "'refused by test' USING ERRCODE = '22023'; END IF; RETURN NEW; "
           "END $$",
           o);
  CU_ASSERT_TRUE_FATAL(exec_sql(db, sql));
  snprintf(sql, sizeof sql,
           "CREATE FUNCTION test_refuse_outbox() RETURNS trigger LANGUAGE "
           "plpgsql AS $$ BEGIN IF NEW.msg_key = convert_to('%s', 'UTF8') AND "
           "NEW.msg_value IS NOT NULL THEN RAISE EXCEPTION 'refused by test' "
           "USING ERRCODE = '22023'; END IF; RETURN NEW; END $$",
           o);
  CU_ASSERT_TRUE_FATAL(exec_sql(db, sql));
  CU_ASSERT_TRUE_FATAL(
      exec_sql(db, "CREATE TRIGGER test_refuse_order BEFORE INSERT ON orders "
                   "FOR EACH ROW EXECUTE FUNCTION test_refuse_order()"));
  CU_ASSERT_TRUE_FATAL(
      exec_sql(db, "CREATE TRIGGER test_refuse_outbox BEFORE INSERT ON "
                   "ledger_outbox FOR EACH ROW EXECUTE FUNCTION "
                   "test_refuse_outbox()"));
  struct sent bad, good;
  char o2[96];
  mkid(o2, sizeof o2, "after-refused");
  CU_ASSERT_EQUAL_FATAL(send_placed(o, wh, sku, 1, NULL, &bad), 0);
  CU_ASSERT_EQUAL_FATAL(send_placed(o2, wh, sku, 1, NULL, &good), 0);
  CU_ASSERT_TRUE(wait_consumed(good.topic, good.partition, good.offset, T));
  CU_ASSERT_TRUE(q_is(ORDER_STATE, o2, "PLACED"));
  CU_ASSERT_TRUE(ledger_pid > 0 && waitpid(ledger_pid, NULL, WNOHANG) == 0);
  expect_dlq(o, tn(LINLI_TOPIC_ORDERS), "stored without its payload");
  CU_ASSERT_EQUAL(q_long("SELECT count(*) FROM orders WHERE order_id = $1", o,
                         NULL),
                  0);
  exec_sql(db, "DROP TRIGGER test_refuse_order ON orders");
  exec_sql(db, "DROP TRIGGER test_refuse_outbox ON ledger_outbox");
  free(bad.buf);
  free(good.buf);
}

/* Appends v (len bytes) as hex to out (at *at; room checked by the
 * caller). */
static void hex_append(char *out, size_t *at, const void *v, size_t len) {
  static const char digits[] = "0123456789abcdef";
  const unsigned char *b = v;
  for (size_t i = 0; i < len; i++) {
    out[(*at)++] = digits[b[i] >> 4];
    out[(*at)++] = digits[b[i] & 15];
  }
  out[*at] = '\0';
}

static void frame_append(char *out, size_t *at, const void *key, size_t klen,
                         const void *val, size_t vlen) {
  unsigned char be[4] = {(unsigned char)(klen >> 24),
                         (unsigned char)(klen >> 16),
                         (unsigned char)(klen >> 8), (unsigned char)klen};
  hex_append(out, at, be, 4);
  hex_append(out, at, key, klen);
  be[0] = (unsigned char)(vlen >> 24);
  be[1] = (unsigned char)(vlen >> 16);
  be[2] = (unsigned char)(vlen >> 8);
  be[3] = (unsigned char)vlen;
  hex_append(out, at, be, 4);
  hex_append(out, at, val, vlen);
}

/* A batch's statuses left in one outbox row (migration 016's framing), as a
 * crash between COMMIT and the broker leaves them: the sweep publishes
 * every message of the row and deletes it; a row whose framing is cut
 * short gives what it holds up to the cut, and the ledger goes on. */
static void test_outbox_batch_row(void) {
  char o1[96], o2[96];
  mkid(o1, sizeof o1, "swept-a");
  mkid(o2, sizeof o2, "swept-b");
  const char *ids[] = {o1, o2};
  const int states[] = {LINLI__ORDER_STATUS__STATE__PAID,
                        LINLI__ORDER_STATUS__STATE__RESERVED};
  char hex[4096];
  size_t at = 0;
  for (int i = 0; i < 2; i++) {
    Linli__OrderStatus st = LINLI__ORDER_STATUS__INIT;
    Linli__OrderStatusEvent ev = LINLI__ORDER_STATUS_EVENT__INIT;
    st.order_id = (char *)ids[i];
    st.state = (Linli__OrderStatus__State)states[i];
    st.version = 3;
    ev.event_case = LINLI__ORDER_STATUS_EVENT__EVENT_ORDER_STATUS;
    ev.order_status = &st;
    size_t len = linli__order_status_event__get_packed_size(&ev);
    uint8_t buf[512];
    CU_ASSERT_FATAL(len <= sizeof buf);
    linli__order_status_event__pack(&ev, buf);
    frame_append(hex, &at, ids[i], strlen(ids[i]), buf, len);
  }
  /* a third message whose key claims 200 bytes and has 3 */
  hex_append(hex, &at, "\0\0\0\310abc", 7);
  const char *insert =
      "WITH i AS (INSERT INTO ledger_outbox (topic, messages, created_at) "
      "VALUES ($1, decode($2, 'hex'), now() - interval '1 hour') RETURNING 1) "
      "SELECT count(*) FROM i";
  CU_ASSERT_EQUAL_FATAL(q_long(insert, tn(LINLI_TOPIC_ORDER_STATUS), hex), 1);
  struct status_seen st;
  CU_ASSERT_TRUE(wait_status(o1, LINLI__ORDER_STATUS__STATE__PAID, &st, T));
  CU_ASSERT_EQUAL(st.version, 3);
  CU_ASSERT_TRUE(
      wait_status(o2, LINLI__ORDER_STATUS__STATE__RESERVED, &st, T));
  CU_ASSERT_TRUE(wait_long("SELECT count(*) FROM ledger_outbox WHERE "
                           "created_at < now() - interval '30 minutes'",
                           NULL, 0, T));
  CU_ASSERT_TRUE(ledger_pid > 0 && waitpid(ledger_pid, NULL, WNOHANG) == 0);
}

static long log_size(void) {
  struct stat st;
  return stat(log_path, &st) == 0 ? (long)st.st_size : 0;
}

/* 1 if the ledger's log, from byte `from` on, has a line holding needle. */
static int log_since_has(long from, const char *needle) {
  FILE *f = fopen(log_path, "r");
  if (f == NULL)
    return 0;
  char line[2048];
  int found = 0;
  if (fseek(f, from, SEEK_SET) == 0)
    while (!found && fgets(line, sizeof line, f))
      found = strstr(line, needle) != NULL;
  fclose(f);
  return found;
}

/* Outbox rows larger than the sweep holds at once (three of some 5.6 MB of
 * statuses each, past its 8 MiB budget): it reads two (the second begins
 * below the budget), publishes them, reads the third, and every row's
 * statuses reach the topic. */
static void test_outbox_big_rows(void) {
  char ids[3][96], reason[1001], frames[3 * 2400 + 3];
  memset(reason, 'r', sizeof reason - 1);
  reason[sizeof reason - 1] = '\0';
  size_t at = 0;
  for (int i = 0; i < 3; i++) {
    char name[16];
    snprintf(name, sizeof name, "big-%d", i);
    mkid(ids[i], sizeof ids[i], name);
    Linli__OrderStatus st = LINLI__ORDER_STATUS__INIT;
    Linli__OrderStatusEvent ev = LINLI__ORDER_STATUS_EVENT__INIT;
    st.order_id = ids[i];
    st.state = LINLI__ORDER_STATUS__STATE__REJECTED;
    st.reason = reason;
    st.version = 2;
    ev.event_case = LINLI__ORDER_STATUS_EVENT__EVENT_ORDER_STATUS;
    ev.order_status = &st;
    uint8_t buf[1200];
    size_t len = linli__order_status_event__get_packed_size(&ev);
    CU_ASSERT_FATAL(len <= sizeof buf);
    linli__order_status_event__pack(&ev, buf);
    if (i > 0)
      frames[at++] = ',';
    frame_append(frames, &at, ids[i], strlen(ids[i]), buf, len);
  }
  /* each row: its order's status framed 5,000 times */
  const char *insert =
      "WITH i AS (INSERT INTO ledger_outbox (topic, messages, created_at) "
      "SELECT $1, decode(repeat(f, 5000), 'hex'), now() - interval '1 hour' "
      "FROM unnest(string_to_array($2, ',')) WITH ORDINALITY AS u(f, n) "
      "ORDER BY n RETURNING octet_length(messages) AS b) "
      "SELECT count(*) FILTER (WHERE b > 5000000) FROM i";
  long from = log_size();
  CU_ASSERT_EQUAL_FATAL(q_long(insert, tn(LINLI_TOPIC_ORDER_STATUS), frames),
                        3);
  struct status_seen st;
  for (int i = 0; i < 3; i++)
    CU_ASSERT_TRUE(
        wait_status(ids[i], LINLI__ORDER_STATUS__STATE__REJECTED, &st, 2 * T));
  CU_ASSERT_TRUE(wait_long("SELECT count(*) FROM ledger_outbox WHERE "
                           "created_at < now() - interval '30 minutes'",
                           NULL, 0, 2 * T));
  CU_ASSERT_TRUE(
      log_since_has(from, "msg=\"publishing pending outbox rows\" rows=2"));
  CU_ASSERT_FALSE(
      log_since_has(from, "msg=\"publishing pending outbox rows\" rows=3"));
  CU_ASSERT_TRUE(ledger_pid > 0 && waitpid(ledger_pid, NULL, WNOHANG) == 0);
}

/* The broker takes none of a batch's statuses (the order-status topic is
 * gone, deliveries time out): the batch's outbox row stays, and once the
 * topic is back the sweep publishes it and deletes the row. */
static void test_outbox_publish_failed(void) {
  int st = linli_test_stop(ledger_pid, 0);
  ledger_pid = -1;
  CU_ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  const char *topic = tn(LINLI_TOPIC_ORDER_STATUS);
  int parts = status_parts;
  CU_ASSERT_EQUAL(linli_test_delete_topic(topic), 0);
  int64_t ends[MAXP];
  int np = 0;
  int64_t deadline = linli_test_now_ms() + T;
  while (topic_ends(topic, ends, &np) == 0 && linli_test_now_ms() < deadline)
    usleep(200000);
  CU_ASSERT_FATAL(topic_ends(topic, ends, &np) != 0);
  ledger_pid = start_ledger_with("500", "LINLI_KAFKA_MESSAGE_TIMEOUT_MS=2000");
  CU_ASSERT_FATAL(ledger_pid > 0);
  char o[96], wh[80], sku[80];
  mkid(o, sizeof o, "unsent");
  mkid(wh, sizeof wh, "wu");
  mkid(sku, sizeof sku, "us");
  struct sent s;
  CU_ASSERT_EQUAL_FATAL(send_placed(o, wh, sku, 1, NULL, &s), 0);
  CU_ASSERT_TRUE(wait_consumed(s.topic, s.partition, s.offset, T));
  CU_ASSERT_TRUE(q_is(ORDER_STATE, o, "PLACED"));
  /* past the message timeout and a clock tick: an acknowledged batch's
   * row would be gone by now */
  usleep(5 * 1000 * 1000);
  CU_ASSERT(q_long("SELECT count(*) FROM ledger_outbox WHERE messages IS "
                   "NOT NULL", NULL, NULL) >= 1);
  CU_ASSERT_EQUAL_FATAL(linli_test_create_topic(topic, parts), 0);
  for (int p = 0; p < MAXP; p++)
    status_start[p] = 0;
  struct status_seen seen;
  CU_ASSERT_TRUE(
      wait_status(o, LINLI__ORDER_STATUS__STATE__PLACED, &seen, 4 * T));
  CU_ASSERT_TRUE(
      wait_long("SELECT count(*) FROM ledger_outbox", NULL, 0, 4 * T));
  CU_ASSERT_TRUE(waitpid(ledger_pid, NULL, WNOHANG) == 0);
  st = linli_test_stop(ledger_pid, 0);
  CU_ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  ledger_pid = start_ledger("500");
  CU_ASSERT_FATAL(ledger_pid > 0);
  free(s.buf);
}

/* The reserver refused an adjustment (to the DLQ): the record drops it. */
static void test_refused_adjustment(void) {
  char wh[80], sku[80];
  mkid(wh, sizeof wh, "w5");
  mkid(sku, sizeof sku, "oil");
  struct sent s;
  CU_ASSERT_EQUAL_FATAL(send_adjust(wh, sku, 4,
                                    LINLI__STOCK_ADJUSTED__REASON__RESTOCK, NULL),
                        0);
  CU_ASSERT_EQUAL_FATAL(send_adjust(wh, sku, -9,
                                    LINLI__STOCK_ADJUSTED__REASON__DAMAGE, &s),
                        0);
  CU_ASSERT_TRUE(wait_consumed(s.topic, s.partition, s.offset, T));
  CU_ASSERT_TRUE(q_is("SELECT concat_ws('|', initial, available) FROM "
                      "inventory WHERE warehouse_id = $1",
                      wh, "-5|-5"));
  /* what the reserver writes to the DLQ for it */
  char part[16], off[24], err[256];
  snprintf(part, sizeof part, "%d", (int)s.partition);
  snprintf(off, sizeof off, "%lld", (long long)s.offset);
  rd_kafka_headers_t *h = rd_kafka_headers_new(6);
  rd_kafka_header_add(h, LINLI_DLQ_H_TOPIC, -1, tn(LINLI_TOPIC_INVENTORY), -1);
  rd_kafka_header_add(h, LINLI_DLQ_H_PARTITION, -1, part, -1);
  rd_kafka_header_add(h, LINLI_DLQ_H_OFFSET, -1, off, -1);
  rd_kafka_header_add(h, LINLI_DLQ_H_CONSUMER, -1, "reserver", -1);
  rd_kafka_header_add(h, LINLI_DLQ_H_ERROR, -1, "invalid", -1);
  rd_kafka_header_add(h, LINLI_DLQ_H_REASON, -1, "would make stock negative",
                      -1);
  int32_t dp = -1;
  int64_t doff = -1;
  CU_ASSERT_EQUAL_FATAL(linli_producer_send_sync(
                            prod, tn(LINLI_TOPIC_DLQ), RD_KAFKA_PARTITION_UA, wh,
                            strlen(wh), s.buf, s.len, h, 30000, &dp, &doff,
                            err, sizeof err),
                        LINLI_OK);
  CU_ASSERT_TRUE(wait_consumed(tn(LINLI_TOPIC_DLQ), dp, doff, T));
  CU_ASSERT_TRUE(q_is("SELECT concat_ws('|', initial, available) FROM "
                      "inventory WHERE warehouse_id = $1",
                      wh, "4|4"));
  CU_ASSERT_EQUAL(q_long("SELECT count(*) FROM dlq_records WHERE "
                         "consumer = 'reserver' AND source_offset = $1::bigint "
                         "AND source_partition = $2::int",
                         off, part),
                  1);
  /* the same DLQ record again (a duplicate at another position): once */
  h = rd_kafka_headers_new(4);
  rd_kafka_header_add(h, LINLI_DLQ_H_TOPIC, -1, tn(LINLI_TOPIC_INVENTORY), -1);
  rd_kafka_header_add(h, LINLI_DLQ_H_PARTITION, -1, part, -1);
  rd_kafka_header_add(h, LINLI_DLQ_H_OFFSET, -1, off, -1);
  rd_kafka_header_add(h, LINLI_DLQ_H_CONSUMER, -1, "reserver", -1);
  CU_ASSERT_EQUAL(linli_producer_send_sync(prod, tn(LINLI_TOPIC_DLQ),
                                           RD_KAFKA_PARTITION_UA, wh,
                                           strlen(wh), s.buf, s.len, h, 30000,
                                           &dp, &doff, err, sizeof err),
                  LINLI_OK);
  free(s.buf);
  CU_ASSERT_TRUE(wait_consumed(tn(LINLI_TOPIC_DLQ), dp, doff, T));
  CU_ASSERT_TRUE(q_is("SELECT concat_ws('|', initial, available) FROM "
                      "inventory WHERE warehouse_id = $1",
                      wh, "4|4"));
}

/* N orders placed and reserved from one warehouse's stock. */
struct load {
  char prefix[96];
  char wh[128], sku[128];
  int n;
};

static int produce_load(struct load *ld, const char *tag, int n,
                        void (*every10)(void)) {
  snprintf(ld->prefix, sizeof ld->prefix, "%s-%s", run_id, tag);
  snprintf(ld->wh, sizeof ld->wh, "%s-wh", ld->prefix);
  snprintf(ld->sku, sizeof ld->sku, "%s-sku", ld->prefix);
  ld->n = n;
  if (send_adjust(ld->wh, ld->sku, 10 * n,
                  LINLI__STOCK_ADJUSTED__REASON__RESTOCK, NULL) != 0)
    return -1;
  for (int i = 0; i < n; i++) {
    char o[128];
    snprintf(o, sizeof o, "%s-o%d", ld->prefix, i);
    struct sent a, b;
    if (send_placed(o, ld->wh, ld->sku, 1 + i % 3, NULL, &a) != 0 ||
        send_result(o, ld->wh, LINLI__RESERVATION_RESULT__STATUS__RESERVED,
                    ld->sku, 1 + i % 3, NULL, 0, NULL, &b) != 0)
      return -1;
    free(a.buf);
    free(b.buf);
    if (every10 != NULL && i % 10 == 9)
      every10();
  }
  return 0;
}

/* Everything of the load is in the record exactly once. */
static void check_load(const struct load *ld) {
  char like[128];
  snprintf(like, sizeof like, "%s-o%%", ld->prefix);
  CU_ASSERT_TRUE(wait_long("SELECT count(*) FROM order_events WHERE "
                           "order_id LIKE $1",
                           like, 2L * ld->n, 4 * T));
  CU_ASSERT_TRUE(wait_long("SELECT count(*) FROM orders WHERE order_id LIKE "
                           "$1 AND state = 'RESERVED'",
                           like, ld->n, T));
  long units = 0;
  for (int i = 0; i < ld->n; i++)
    units += 1 + i % 3;
  char want[64];
  snprintf(want, sizeof want, "%ld|%ld|%ld|0", 10L * ld->n,
           10L * ld->n - units, units);
  CU_ASSERT_TRUE(wait_text("SELECT concat_ws('|', initial, available, "
                           "reserved, sold) FROM inventory WHERE "
                           "warehouse_id = $1",
                           ld->wh, want, T));
  CU_ASSERT_EQUAL(q_long("SELECT count(*) FROM stock_movements WHERE "
                         "warehouse_id = $1", ld->wh, NULL),
                  ld->n + 1);
  CU_ASSERT_EQUAL(q_long("SELECT count(*) FROM order_lines WHERE "
                         "order_id LIKE $1", like, NULL),
                  ld->n);
  CU_ASSERT_EQUAL(q_long("SELECT count(*) FROM orders WHERE order_id LIKE $1 "
                         "AND version = 2", like, NULL),
                  ld->n);
}

static long count_like(const char *prefix) {
  char like[128];
  snprintf(like, sizeof like, "%s-o%%", prefix);
  return q_long("SELECT count(*) FROM order_events WHERE order_id LIKE $1",
                like, NULL);
}

/* SIGKILL mid-ingest, restart: nothing lost, nothing twice. */
static void test_sigkill(void) {
  /* A graceful stop first: exit 0 (and no leak reports under ASan). */
  int st = linli_test_stop(ledger_pid, 0);
  ledger_pid = -1;
  CU_ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0))
    dump_log_tail();

  struct load ld;
  CU_ASSERT_EQUAL_FATAL(produce_load(&ld, "kill", 150, NULL), 0);
  ledger_pid = start_ledger("7");
  CU_ASSERT_FATAL(ledger_pid > 0);
  int64_t deadline = linli_test_now_ms() + T;
  long seen = 0;
  while ((seen = count_like(ld.prefix)) < 40 && linli_test_now_ms() < deadline)
    usleep(5000);
  linli_test_stop(ledger_pid, 1);
  ledger_pid = -1;
  long at_kill = count_like(ld.prefix);
  fprintf(stderr, "  killed with %ld of %d events recorded\n", at_kill,
          2 * ld.n);
  CU_ASSERT_TRUE(at_kill > 0);
  ledger_pid = start_ledger("7");
  CU_ASSERT_FATAL(ledger_pid > 0);
  check_load(&ld);
  /* the outbox drains: every touched order's status was published */
  CU_ASSERT_TRUE(wait_long("SELECT count(*) FROM ledger_outbox", NULL, 0, T));
}

/* Until pid exits by itself (up to timeout_ms): its wait status, or -1. */
static int wait_exit(pid_t pid, int timeout_ms) {
  int64_t deadline = linli_test_now_ms() + timeout_ms;
  int status = 0;
  while (linli_test_now_ms() < deadline) {
    if (waitpid(pid, &status, WNOHANG) == pid)
      return status;
    usleep(20000);
  }
  return -1;
}

/* The ledger's stored offsets of topic are exactly the topic's ends. */
static void check_offsets_at_end(const char *topic) {
  int64_t ends[MAXP];
  int n = 0;
  CU_ASSERT_EQUAL_FATAL(topic_ends(topic, ends, &n), 0);
  for (int p = 0; p < n; p++) {
    if (ends[p] == 0)
      continue;
    char part[16], want[24];
    snprintf(part, sizeof part, "%d", p);
    snprintf(want, sizeof want, "%lld", (long long)ends[p]);
    const char *params[] = {group, topic, part};
    char *got = NULL;
    int64_t deadline = linli_test_now_ms() + T;
    do {
      free(got);
      got = NULL;
      PGresult *r = PQexecParams(db,
                                 "SELECT next_offset FROM consumer_offsets "
                                 "WHERE consumer_group = $1 AND topic = $2 "
                                 "AND partition = $3::int",
                                 3, NULL, params, NULL, NULL, 0);
      if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
        got = strdup(PQgetvalue(r, 0, 0));
      PQclear(r);
      if (got != NULL && strcmp(got, want) == 0)
        break;
      usleep(50000);
    } while (linli_test_now_ms() < deadline);
    CU_ASSERT_PTR_NOT_NULL(got);
    if (got != NULL) {
      CU_ASSERT_STRING_EQUAL(got, want);
      if (strcmp(got, want) != 0)
        fprintf(stderr, "  %s[%d]: next_offset %s, end %s\n", topic, p, got,
                want);
    }
    free(got);
  }
}

/* A SIGKILL while a batch's rows are in an open transaction (after 200
 * records of a 500-record batch, before COMMIT), then a restart: nothing of
 * the batch was kept, and after the restart every event is recorded once
 * and the offsets stand exactly at the ends. */
static void test_kill_mid_batch(void) {
  int st = linli_test_stop(ledger_pid, 0);
  ledger_pid = -1;
  CU_ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  struct load ld;
  CU_ASSERT_EQUAL_FATAL(produce_load(&ld, "midb", 300, NULL), 0);
  pid_t pid = start_ledger_with("500", "LEDGER_FAULT_KILL_AFTER_ROWS=200");
  CU_ASSERT_FATAL(pid > 0);
  st = wait_exit(pid, T);
  CU_ASSERT_TRUE(st != -1 && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
  if (st == -1)
    linli_test_stop(pid, 1);
  long at_kill = count_like(ld.prefix);
  fprintf(stderr, "  killed inside a batch with %ld of %d events recorded\n",
          at_kill, 2 * ld.n);
  CU_ASSERT_TRUE(at_kill < 2L * ld.n);
  ledger_pid = start_ledger("500");
  CU_ASSERT_FATAL(ledger_pid > 0);
  check_load(&ld);
  check_offsets_at_end(tn(LINLI_TOPIC_ORDERS));
  check_offsets_at_end(tn(LINLI_TOPIC_RESERVATIONS));
  check_offsets_at_end(tn(LINLI_TOPIC_INVENTORY));
}

/* Which orders <prefix>-o<i> of a load have a RESERVED status at version
 * 2 on linli.order-status.v1 (reserved[i] set). */
struct load_statuses {
  const char *prefix;
  int n;
  unsigned char *reserved;
};

static void on_load_status(void *arg, const rd_kafka_message_t *m) {
  struct load_statuses *ls = arg;
  char key[160];
  size_t pl = strlen(ls->prefix);
  if (m->key == NULL || m->key_len >= sizeof key || m->payload == NULL)
    return;
  memcpy(key, m->key, m->key_len);
  key[m->key_len] = '\0';
  if (strncmp(key, ls->prefix, pl) != 0 || strncmp(key + pl, "-o", 2) != 0)
    return;
  int i = atoi(key + pl + 2);
  Linli__OrderStatusEvent *e = linli__order_status_event__unpack(
      NULL, m->len, (const uint8_t *)m->payload);
  if (e != NULL && e->order_status != NULL && i >= 0 && i < ls->n &&
      e->order_status->state == LINLI__ORDER_STATUS__STATE__RESERVED &&
      e->order_status->version == 2)
    ls->reserved[i] = 1;
  if (e != NULL)
    linli__order_status_event__free_unpacked(e, NULL);
}

/* Every order of ld has had its RESERVED status published (up to
 * timeout_ms). */
static int load_statuses_published(const struct load *ld, int timeout_ms) {
  struct load_statuses ls = {ld->prefix, ld->n, calloc((size_t)ld->n, 1)};
  int64_t deadline = linli_test_now_ms() + timeout_ms;
  int missing = ld->n;
  while (ls.reserved != NULL && missing > 0 &&
         linli_test_now_ms() < deadline) {
    read_since(tn(LINLI_TOPIC_ORDER_STATUS), status_start, status_parts,
               3000, on_load_status, &ls);
    missing = 0;
    for (int i = 0; i < ld->n; i++)
      missing += !ls.reserved[i];
  }
  if (missing > 0)
    fprintf(stderr, "  %d of %d order statuses of %s not published\n",
            missing, ld->n, ld->prefix);
  free(ls.reserved);
  return missing == 0;
}

/* A SIGKILL right after a batch's database commit (the runner's
 * LINLI_FAULT_KILL_BEFORE_COMMIT), then a restart: the committed batch is
 * not applied again, the rest once, and the order statuses the killed
 * process had not published come from the outbox (one row per batch). */
static void test_kill_after_commit(void) {
  int st = linli_test_stop(ledger_pid, 0);
  ledger_pid = -1;
  CU_ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  struct load ld;
  CU_ASSERT_EQUAL_FATAL(produce_load(&ld, "aftc", 300, NULL), 0);
  pid_t pid = start_ledger_with("500", "LINLI_FAULT_KILL_BEFORE_COMMIT=1");
  CU_ASSERT_FATAL(pid > 0);
  st = wait_exit(pid, T);
  CU_ASSERT_TRUE(st != -1 && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
  if (st == -1)
    linli_test_stop(pid, 1);
  long at_kill = count_like(ld.prefix);
  fprintf(stderr, "  killed after a commit with %ld of %d events recorded\n",
          at_kill, 2 * ld.n);
  CU_ASSERT_TRUE(at_kill > 0);
  ledger_pid = start_ledger("500");
  CU_ASSERT_FATAL(ledger_pid > 0);
  check_load(&ld);
  check_offsets_at_end(tn(LINLI_TOPIC_ORDERS));
  check_offsets_at_end(tn(LINLI_TOPIC_RESERVATIONS));
  check_offsets_at_end(tn(LINLI_TOPIC_INVENTORY));
  CU_ASSERT_TRUE(wait_long("SELECT count(*) FROM ledger_outbox", NULL, 0, T));
  CU_ASSERT_TRUE(load_statuses_published(&ld, T));
}

static uint8_t *pack(const ProtobufCMessage *m, size_t *len) {
  *len = protobuf_c_message_get_packed_size(m);
  uint8_t *b = malloc(*len ? *len : 1);
  if (b != NULL)
    protobuf_c_message_pack(m, b);
  return b;
}

/* Ingest rate: N orders placed and reserved (2N order events, N = env
 * LEDGER_TEST_BULK, default 2000) produced while the ledger is stopped,
 * then read by one ledger with 500-record batches. Asserts the counts;
 * the rate is printed for orientation (scripts/bench.sh measures it). */
static void test_bulk(void) {
  linli_test_stop(ledger_pid, 0); /* may still be starting (bulk alone) */
  ledger_pid = -1;
  const char *nv = getenv("LEDGER_TEST_BULK");
  int n = nv && atoi(nv) > 0 ? atoi(nv) : 2000;
  struct load ld;
  snprintf(ld.prefix, sizeof ld.prefix, "%s-bulk", run_id);
  snprintf(ld.wh, sizeof ld.wh, "%s-wh", ld.prefix);
  snprintf(ld.sku, sizeof ld.sku, "%s-sku", ld.prefix);
  ld.n = n;
  CU_ASSERT_EQUAL_FATAL(send_adjust(ld.wh, ld.sku, 10 * n,
                                    LINLI__STOCK_ADJUSTED__REASON__RESTOCK,
                                    NULL),
                        0);
  char **keys = calloc((size_t)n, sizeof *keys);
  void **pv = calloc((size_t)n, sizeof *pv), **rv = calloc((size_t)n, sizeof *rv);
  size_t *pl = calloc((size_t)n, sizeof *pl), *rl = calloc((size_t)n, sizeof *rl);
  CU_ASSERT_FATAL(keys && pv && rv && pl && rl);
  for (int i = 0; i < n; i++) {
    char o[128];
    snprintf(o, sizeof o, "%s-o%d", ld.prefix, i);
    keys[i] = strdup(o);
    int qty = 1 + i % 3;
    struct ev e1, e2;
    Linli__OrderEvent oe = LINLI__ORDER_EVENT__INIT;
    Linli__OrderPlaced p = LINLI__ORDER_PLACED__INIT;
    Linli__OrderLine l = LINLI__ORDER_LINE__INIT;
    Linli__OrderLine *lines[] = {&l};
    Linli__PickupDelivery pk = LINLI__PICKUP_DELIVERY__INIT;
    l.sku_id = ld.sku;
    l.quantity = qty;
    l.unit_price_fen = 250;
    p.order_id = keys[i];
    p.app_id = (char *)"app-1";
    p.user_id = (char *)"user-1";
    p.warehouse_id = ld.wh;
    p.n_lines = 1;
    p.lines = lines;
    p.total_fen = 250LL * qty;
    p.campaign_id = (char *)"";
    p.placed_at_ms = 1790000000000LL;
    pk.pickup_point_id = (char *)"pp-1";
    p.delivery_case = LINLI__ORDER_PLACED__DELIVERY_PICKUP;
    p.pickup = &pk;
    oe.meta = meta(&e1);
    oe.event_case = LINLI__ORDER_EVENT__EVENT_ORDER_PLACED;
    oe.order_placed = &p;
    pv[i] = pack(&oe.base, &pl[i]);
    Linli__ReservationEvent re = LINLI__RESERVATION_EVENT__INIT;
    Linli__ReservationResult r = LINLI__RESERVATION_RESULT__INIT;
    r.order_id = keys[i];
    r.warehouse_id = ld.wh;
    r.user_id = (char *)"user-1";
    r.status = LINLI__RESERVATION_RESULT__STATUS__RESERVED;
    r.n_lines = 1;
    r.lines = lines;
    r.expires_at_ms = 1790000900000LL;
    r.detail = (char *)"";
    r.payment_txn_id = (char *)"";
    r.total_fen = 250LL * qty;
    r.app_id = (char *)"app-1";
    r.campaign_id = (char *)"";
    re.meta = meta(&e2);
    re.event_case = LINLI__RESERVATION_EVENT__EVENT_RESERVATION_RESULT;
    re.reservation_result = &r;
    rv[i] = pack(&re.base, &rl[i]);
    CU_ASSERT_FATAL(keys[i] && pv[i] && rv[i]);
  }
  CU_ASSERT_EQUAL(linli_test_produce_batch(
                      tn(LINLI_TOPIC_ORDERS), (size_t)n,
                      (const char *const *)keys, (const void *const *)pv, pl),
                  0);
  CU_ASSERT_EQUAL(linli_test_produce_batch(
                      tn(LINLI_TOPIC_RESERVATIONS), (size_t)n,
                      (const char *const *)keys, (const void *const *)rv, rl),
                  0);
  for (int i = 0; i < n; i++) {
    free(keys[i]);
    free(pv[i]);
    free(rv[i]);
  }
  free(keys);
  free(pv);
  free(rv);
  free(pl);
  free(rl);
  int64_t t0 = linli_test_now_ms();
  ledger_pid = start_ledger("500");
  CU_ASSERT_FATAL(ledger_pid > 0);
  char like[128];
  snprintf(like, sizeof like, "%s-o%%", ld.prefix);
  /* The first assignment after a clean leave is immediate; time from the
   * first recorded event to the last. */
  int64_t first = 0;
  while (first == 0 && linli_test_now_ms() < t0 + T) {
    if (count_like(ld.prefix) > 0)
      first = linli_test_now_ms();
    else
      usleep(2000);
  }
  CU_ASSERT_TRUE(wait_long("SELECT count(*) FROM order_events WHERE "
                           "order_id LIKE $1",
                           like, 2L * n, 10 * T));
  int64_t t1 = linli_test_now_ms();
  fprintf(stderr, "  %d order events recorded in %lld ms from the first "
                  "(%.0f events/s; %lld ms from start)\n",
          2 * n, (long long)(t1 - first),
          t1 > first ? 2000.0 * n / (double)(t1 - first) : 0.0,
          (long long)(t1 - t0));
  check_load(&ld);
}

static long kills;

static void terminate_ledger_sessions(void) {
  const char *p[] = {db_name};
  PGresult *r = PQexecParams(
      db,
      "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
      "WHERE datname = $1 AND application_name = 'linli-ledger'",
      1, NULL, p, NULL, NULL, 0);
  if (PQresultStatus(r) == PGRES_TUPLES_OK)
    kills += atol(PQgetvalue(r, 0, 0));
  PQclear(r);
}

/* PostgreSQL sessions terminated while the ledger ingests. */
static void test_pg_terminate(void) {
  struct load ld;
  kills = 0;
  CU_ASSERT_EQUAL_FATAL(
      produce_load(&ld, "term", 150, terminate_ledger_sessions), 0);
  int64_t deadline = linli_test_now_ms() + 4 * T;
  while (count_like(ld.prefix) < 2L * ld.n && linli_test_now_ms() < deadline) {
    terminate_ledger_sessions();
    usleep(150000);
  }
  fprintf(stderr, "  terminated %ld ledger sessions\n", kills);
  CU_ASSERT_TRUE(kills > 0);
  check_load(&ld);
  CU_ASSERT_TRUE(ledger_pid > 0 && waitpid(ledger_pid, NULL, WNOHANG) == 0);
}

/* ------------------------------------------- ledger = audit, per step */

/* Every transition of the state machine (each state reached by its usual
 * path, then each event), run through the real ledger and through the
 * audit's fold (linli-replay's orders rule, observe) of the same records
 * in the same order: the state in PostgreSQL and the state the audit
 * folds must be the same, and the one libdomain's table gives. Each step
 * of every order is produced as one wave, and the next wave waits until
 * the ledger committed the previous one, so both see one arrival order. */

#define NSTEPS 8

struct tcase {
  char order[96];
  enum dom_order_event steps[NSTEPS];
  int n;
  struct sent sent[NSTEPS];
};

/* The usual path to each state (DOM_ST_NONE: no event yet). */
static int path_to(int st, enum dom_order_event *p) {
  int n = 0;
  if (st == DOM_ST_NONE)
    return 0;
  p[n++] = DOM_OEV_PLACED;
  switch (st) {
  case DOM_ST_PLACED:
    return n;
  case DOM_ST_REJECTED:
    p[n++] = DOM_OEV_REJECTED;
    return n;
  default:
    break;
  }
  p[n++] = DOM_OEV_RESERVED;
  if (st == DOM_ST_RESERVED)
    return n;
  if (st == DOM_ST_CANCELLED || st == DOM_ST_EXPIRED) {
    p[n++] = st == DOM_ST_CANCELLED ? DOM_OEV_CANCELLED : DOM_OEV_EXPIRED;
    return n;
  }
  p[n++] = DOM_OEV_PAID;
  if (st == DOM_ST_PAID)
    return n;
  p[n++] = DOM_OEV_READY;
  switch (st) {
  case DOM_ST_READY:
    return n;
  case DOM_ST_AT_PICKUP_POINT:
  case DOM_ST_PICKED_UP:
    p[n++] = DOM_OEV_AT_PICKUP_POINT;
    if (st == DOM_ST_PICKED_UP)
      p[n++] = DOM_OEV_PICKED_UP;
    return n;
  default:
    break;
  }
  p[n++] = DOM_OEV_OUT_FOR_DELIVERY;
  if (st == DOM_ST_DELIVERED)
    p[n++] = DOM_OEV_DELIVERED;
  else if (st == DOM_ST_DELIVERY_FAILED)
    p[n++] = DOM_OEV_DELIVERY_FAILED;
  return n;
}

/* A ReservationResult with every field a real one has. */
static int send_judged(const char *order, const char *wh, const char *sku,
                       Linli__ReservationResult__Status status,
                       Linli__ReservationResult__Reason reason,
                       const char *detail, struct sent *out) {
  struct ev e;
  Linli__ReservationEvent env = LINLI__RESERVATION_EVENT__INIT;
  Linli__ReservationResult r = LINLI__RESERVATION_RESULT__INIT;
  Linli__OrderLine l = LINLI__ORDER_LINE__INIT;
  Linli__OrderLine *lines[] = {&l};
  char txn[128];
  snprintf(txn, sizeof txn, "txn-%s", order);
  l.sku_id = (char *)sku;
  l.quantity = 1;
  l.unit_price_fen = 250;
  r.order_id = (char *)order;
  r.warehouse_id = (char *)wh;
  r.user_id = (char *)"user-1";
  r.status = status;
  r.reason = reason;
  r.detail = (char *)detail;
  r.payment_txn_id = (char *)"";
  r.total_fen = 250;
  r.app_id = (char *)"app-1";
  r.campaign_id = (char *)"";
  if (status == LINLI__RESERVATION_RESULT__STATUS__RESERVED) {
    r.n_lines = 1;
    r.lines = lines;
    r.expires_at_ms = 1790000900000LL;
  }
  if (status == LINLI__RESERVATION_RESULT__STATUS__COMMITTED) {
    r.payment_txn_id = txn;
    r.amount_fen = 250;
  }
  env.meta = meta(&e);
  env.event_case = LINLI__RESERVATION_EVENT__EVENT_RESERVATION_RESULT;
  env.reservation_result = &r;
  return produce(tn(LINLI_TOPIC_RESERVATIONS), order, &env.base, out);
}

static int send_step(const char *order, const char *wh, const char *sku,
                     enum dom_order_event ev, struct sent *out) {
  typedef Linli__ReservationResult__Status S;
  const S RSV = LINLI__RESERVATION_RESULT__STATUS__RESERVED,
          REJ = LINLI__RESERVATION_RESULT__STATUS__REJECTED,
          COM = LINLI__RESERVATION_RESULT__STATUS__COMMITTED,
          REL = LINLI__RESERVATION_RESULT__STATUS__RELEASED;
  const Linli__ReservationResult__Reason NONE =
      LINLI__RESERVATION_RESULT__REASON__REASON_UNSPECIFIED;
  switch (ev) {
  case DOM_OEV_PLACED:
    return send_placed(order, wh, sku, 1, NULL, out);
  case DOM_OEV_RESERVED:
    return send_judged(order, wh, sku, RSV, NONE, "", out);
  case DOM_OEV_REJECTED:
    return send_judged(order, wh, sku, REJ,
                       LINLI__RESERVATION_RESULT__REASON__OUT_OF_STOCK,
                       "short", out);
  case DOM_OEV_PAID:
    return send_judged(order, wh, sku, COM, NONE, "", out);
  case DOM_OEV_CANCELLED:
    return send_judged(order, wh, sku, REL, NONE, "cancelled before payment",
                       out);
  case DOM_OEV_EXPIRED:
    return send_judged(order, wh, sku, REL, NONE, "payment deadline passed",
                       out);
  case DOM_OEV_GROUP_FAILED:
    return send_judged(order, wh, sku, REL,
                       LINLI__RESERVATION_RESULT__REASON__GROUP_FAILED,
                       "the group-buy reached no tier", out);
  case DOM_OEV_READY:
    return send_item(order, wh, out);
  case DOM_OEV_OUT_FOR_DELIVERY:
    return send_delivery(order, D_OUT, out, NULL, 0);
  case DOM_OEV_AT_PICKUP_POINT:
    return send_delivery(order, D_ARRIVED, out, NULL, 0);
  case DOM_OEV_PICKED_UP:
    return send_delivery(order, D_PICKED, out, NULL, 0);
  case DOM_OEV_DELIVERED:
    return send_delivery(order, D_DELIVERED, out, NULL, 0);
  case DOM_OEV_DELIVERY_FAILED:
    return send_delivery(order, D_FAILED, out, NULL, 0);
  default:
    return -1;
  }
}

/* Feed one produced record to the audit's orders rule, under the topic
 * name the audit reads (without this run's suffix). */
static void audit_observe(struct fold *f, rd_kafka_t *rk,
                          const struct sent *s) {
  char base[256];
  size_t tl = strlen(s->topic), sl = strlen(sfx);
  snprintf(base, sizeof base, "%.*s", (int)(tl - sl), s->topic);
  const linli_topic_schema_t *ts = linli_schema_topic(base);
  CU_ASSERT_PTR_NOT_NULL_FATAL(ts);
  rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, base, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL(rkt);
  rd_kafka_message_t m;
  memset(&m, 0, sizeof m);
  m.rkt = rkt;
  m.partition = s->partition;
  m.offset = s->offset;
  m.payload = s->buf;
  m.len = s->len;
  ProtobufCMessage *env =
      protobuf_c_message_unpack(ts->envelope, NULL, s->len, s->buf);
  CU_ASSERT_PTR_NOT_NULL(env);
  for (const char *const *t = audit_rule_orders.topics; env && *t; t++)
    if (strcmp(*t, base) == 0)
      audit_rule_orders.observe(f, &m, env);
  if (env)
    protobuf_c_message_free_unpacked(env, NULL);
  rd_kafka_topic_destroy(rkt);
}

static void test_transitions_audit(void) {
  enum { NCASES = DOM_ST_COUNT * (DOM_OEV_COUNT - 1) };
  struct tcase *tc = calloc(NCASES, sizeof *tc);
  CU_ASSERT_PTR_NOT_NULL_FATAL(tc);
  char wh[80], sku[80];
  mkid(wh, sizeof wh, "tr-wh");
  mkid(sku, sizeof sku, "tr-sku");
  struct sent stock;
  CU_ASSERT_EQUAL_FATAL(send_adjust(wh, sku, 10000,
                                    LINLI__STOCK_ADJUSTED__REASON__RESTOCK,
                                    &stock),
                        0);
  CU_ASSERT_TRUE_FATAL(
      wait_consumed(stock.topic, stock.partition, stock.offset, T));
  free(stock.buf);
  int n = 0;
  for (int st = 0; st < DOM_ST_COUNT; st++)
    for (int ev = 1; ev < DOM_OEV_COUNT; ev++) {
      struct tcase *c = &tc[n++];
      char what[16];
      snprintf(what, sizeof what, "tr%02d-%02d", st % 100, ev % 100);
      mkid(c->order, sizeof c->order, what);
      c->n = path_to(st, c->steps);
      c->steps[c->n++] = (enum dom_order_event)ev;
    }
  /* Waves: step w of every order, then wait for the ledger to commit it. */
  for (int w = 0; w < NSTEPS; w++) {
    struct sent *last[NCASES];
    int nl = 0;
    for (int i = 0; i < n; i++) {
      if (w >= tc[i].n)
        continue;
      CU_ASSERT_EQUAL_FATAL(send_step(tc[i].order, wh, sku, tc[i].steps[w],
                                      &tc[i].sent[w]),
                            0);
      last[nl++] = &tc[i].sent[w];
    }
    for (int i = 0; i < nl; i++) {
      int newest = 1; /* wait once per partition, on its newest record */
      for (int j = 0; j < nl && newest; j++)
        newest = !(strcmp(last[j]->topic, last[i]->topic) == 0 &&
                   last[j]->partition == last[i]->partition &&
                   last[j]->offset > last[i]->offset);
      if (newest)
        CU_ASSERT_TRUE_FATAL(wait_consumed(last[i]->topic, last[i]->partition,
                                           last[i]->offset, 2 * T));
    }
  }
  /* The audit's fold of the same records, in the same order. */
  struct fold f;
  memset(&f, 0, sizeof f);
  CU_ASSERT_EQUAL_FATAL(
      linli_strmap_new(sizeof(struct order_fold), 0, &f.orders), LINLI_OK);
  CU_ASSERT_EQUAL_FATAL(linli_strmap_new(2 * sizeof(int), 0, &f.refunds),
                        LINLI_OK);
  char errstr[256];
  /* A handle for topic names only: it never connects. */
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "log_level", "3", NULL, 0);
  rd_kafka_t *rk =
      rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
  CU_ASSERT_PTR_NOT_NULL_FATAL(rk);
  for (int w = 0; w < NSTEPS; w++)
    for (int i = 0; i < n; i++)
      if (w < tc[i].n)
        audit_observe(&f, rk, &tc[i].sent[w]);
  int differ = 0, retry_checked = 0, group_checked = 0;
  for (int i = 0; i < n; i++) {
    const struct tcase *c = &tc[i];
    int want = DOM_ST_NONE;
    for (int k = 0; k < c->n; k++)
      dom_order_step(want, c->steps[k], &want);
    char *pg = q_text(ORDER_STATE, c->order, NULL, NULL);
    const struct order_fold *o = linli_strmap_find(f.orders, c->order);
    const char *audit = o ? dom_order_state_name(o->state) : "(none)";
    if (pg == NULL || strcmp(pg, audit) != 0 ||
        strcmp(pg, dom_order_state_name(want)) != 0) {
      fprintf(stderr, "  %s: PostgreSQL %s, audit %s, state machine %s\n",
              c->order, pg ? pg : "(none)", audit,
              dom_order_state_name(want));
      differ++;
    }
    /* The two cases issue 10 names. */
    enum dom_order_event prev = c->n > 1 ? c->steps[c->n - 2] : DOM_OEV_NONE;
    if (prev == DOM_OEV_DELIVERY_FAILED &&
        c->steps[c->n - 1] == DOM_OEV_OUT_FOR_DELIVERY) {
      CU_ASSERT_STRING_EQUAL(audit, "OUT_FOR_DELIVERY");
      retry_checked++;
    }
    if ((prev == DOM_OEV_RESERVED || prev == DOM_OEV_PAID) &&
        c->steps[c->n - 1] == DOM_OEV_GROUP_FAILED) {
      CU_ASSERT_PTR_NOT_NULL(pg);
      if (pg != NULL)
        CU_ASSERT_STRING_EQUAL(pg, "CANCELLED");
      group_checked++;
    }
    free(pg);
  }
  fprintf(stderr, "  %d transitions, %d differ\n", n, differ);
  CU_ASSERT_EQUAL(differ, 0);
  CU_ASSERT_EQUAL(retry_checked, 1);
  CU_ASSERT_EQUAL(group_checked, 2);
  for (size_t i = 0; i < linli_strmap_capacity(f.orders); i++) {
    struct order_fold *o = linli_strmap_at(f.orders, i, NULL);
    if (o)
      free(o->placed_pb);
  }
  linli_strmap_free(f.orders);
  linli_strmap_free(f.refunds);
  rd_kafka_destroy(rk);
  for (int i = 0; i < n; i++)
    for (int k = 0; k < tc[i].n; k++)
      free(tc[i].sent[k].buf);
  free(tc);
}

/* No key, no start: personal data is never stored in clear. */
static void test_missing_key(void) {
  char bin[1024];
  linli_test_binary_path("consumers/ledger/linli-ledger", bin, sizeof bin);
  char *argv[] = {bin, NULL};
  char *env[] = {env_pg, (char *)"LINLI_CRYPTO_KEY=", env_group, NULL};
  int rc = run_wait(argv, env, 30000);
  CU_ASSERT_EQUAL(rc, 2);
  char cmd[400];
  snprintf(cmd, sizeof cmd, "grep -q 'crypto.key is not set' '%s'", log_path);
  CU_ASSERT_EQUAL(system(cmd), 0);
}

static void test_stop(void) {
  int st = linli_test_stop(ledger_pid, 0);
  ledger_pid = -1;
  CU_ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0))
    dump_log_tail();
}

int linli_test_register(void) {
  CU_pSuite s = CU_add_suite("ledger", suite_init, suite_cleanup);
  if (getenv("LEDGER_TEST_TRANSITIONS") != NULL) /* that test alone */
    return s == NULL ||
                   CU_add_test(s, "every transition: ledger = audit",
                               test_transitions_audit) == NULL ||
                   CU_add_test(s, "SIGTERM exits 0", test_stop) == NULL
               ? -1
               : 0;
  if (getenv("LEDGER_TEST_BULK") != NULL) /* the ingest rate alone */
    return s == NULL || CU_add_test(s, "bulk ingest", test_bulk) == NULL ||
                   CU_add_test(s, "SIGTERM exits 0", test_stop) == NULL
               ? -1
               : 0;
  if (s == NULL ||
      CU_add_test(s, "an order's life", test_lifecycle) == NULL ||
      CU_add_test(s, "replayed records change nothing", test_replay) == NULL ||
      CU_add_test(s, "events out of topic order", test_out_of_order) == NULL ||
      CU_add_test(s, "illegal transitions to the DLQ", test_illegal) == NULL ||
      CU_add_test(s, "every transition: ledger = audit",
                  test_transitions_audit) == NULL ||
      CU_add_test(s, "personal data encrypted", test_personal_data) == NULL ||
      CU_add_test(s, "poison records to the DLQ", test_poison) == NULL ||
      CU_add_test(s, "a SKU listed twice", test_sku_twice) == NULL ||
      CU_add_test(s, "DLQ payload encrypted in the outbox",
                  test_outbox_dlq_encrypted) == NULL ||
      CU_add_test(s, "a DLQ row refused too", test_dlq_row_refused) == NULL ||
      CU_add_test(s, "a batch's statuses in one outbox row",
                  test_outbox_batch_row) == NULL ||
      CU_add_test(s, "outbox rows past the sweep's budget",
                  test_outbox_big_rows) == NULL ||
      CU_add_test(s, "statuses the broker did not take",
                  test_outbox_publish_failed) == NULL ||
      CU_add_test(s, "adjustment refused by the reserver",
                  test_refused_adjustment) == NULL ||
      CU_add_test(s, "SIGKILL and restart", test_sigkill) == NULL ||
      CU_add_test(s, "SIGKILL inside a batch", test_kill_mid_batch) == NULL ||
      CU_add_test(s, "SIGKILL after a batch's commit",
                  test_kill_after_commit) == NULL ||
      CU_add_test(s, "bulk ingest", test_bulk) == NULL ||
      CU_add_test(s, "PostgreSQL sessions terminated", test_pg_terminate) ==
          NULL ||
      CU_add_test(s, "missing crypto.key", test_missing_key) == NULL ||
      CU_add_test(s, "SIGTERM exits 0", test_stop) == NULL)
    return -1;
  return 0;
}
