/*
 * test_campaign_orders.c - the orders behind a group-buy campaign, against
 * the real stack: a real linli-reserver holds a campaign's paid orders
 * (COMMITTED, no FulfillmentItem) until linli.groupbuy.settlements.v1
 * decides the campaign, and a real linli-ledger records the outcome.
 *  - failed: every order of the campaign (paid or only reserved) is
 *    RELEASED GROUP_FAILED once, its stock back in the warehouse (exact
 *    Redis counts, PostgreSQL agrees), the orders CANCELLED (GROUP_FAILED)
 *    in the record; a payment after the failure is refunded once, less what
 *    the settler's GROUP_FAILED refund already returns; an order placed
 *    after the failure is rejected;
 *  - settled: each held order gets exactly one FulfillmentItem, at the
 *    settled unit price, and none before; an order paid after the
 *    settlement goes to fulfilment at once; a second settlement record
 *    changes nothing;
 *  - a reserver SIGKILLed right before committing (the settlement waiting
 *    in its input), then restarted: every order decided once;
 *  - `linli-replay audit --warehouse W` finds no difference.
 *
 * The settlements are written by the test (the settler's own tests cover
 * how it decides; CampaignSettled/Failed carry warehouse_id since this
 * change). Topics are the shared linli.*.v1 ones: every id starts with a
 * prefix unique to the run; the reserver's group starts at the end of its
 * inputs and the ledger's at the end of every topic; no other reserver may
 * consume meanwhile (it would judge the same orders and settlements in the
 * same Redis).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <sodium.h>

#include "catalog.pb-c.h"
#include "fulfillment.pb-c.h"
#include "inventory.pb-c.h"
#include "linli/clock.h"
#include "linli/error.h"
#include "linli/kafka.h"
#include "linli/ids.h"
#include "linli/redis.h"
#include "domain/reserver_keys.h"
#include "domain/schema.h"
#include "domain/topics.h"
#include "linli_test.h"
#include "orders.pb-c.h"
#include "refunds.pb-c.h"
#include "reservations.pb-c.h"
#include "settlements.pb-c.h"

#define T_ORDERS LINLI_TOPIC_ORDERS
#define T_INVENTORY LINLI_TOPIC_INVENTORY
#define T_CATALOG LINLI_TOPIC_CATALOG
#define T_SETTLEMENTS LINLI_TOPIC_SETTLEMENTS
#define T_RESERVATIONS LINLI_TOPIC_RESERVATIONS
#define T_FULFILLMENT LINLI_TOPIC_FULFILLMENT
#define T_REFUNDS LINLI_TOPIC_REFUNDS

#define S_RESERVED LINLI__RESERVATION_RESULT__STATUS__RESERVED
#define S_REJECTED LINLI__RESERVATION_RESULT__STATUS__REJECTED
#define S_RELEASED LINLI__RESERVATION_RESULT__STATUS__RELEASED
#define S_COMMITTED LINLI__RESERVATION_RESULT__STATUS__COMMITTED
#define R_GROUP_FAILED LINLI__RESERVATION_RESULT__REASON__GROUP_FAILED
#define ANY (-1)

#define STOCK 100
#define PREPAID 120 /* fen a unit: the campaign's first tier */

static const char *const INPUTS[] = {T_CATALOG, T_INVENTORY, T_ORDERS,
                                     T_SETTLEMENTS, NULL};

static char RUN[48], wh[80], sku[80], rsv_group[96], ledger_group[96];
static PGconn *db;
static linli_redis_t *redis;
static linli_test_reader_t *reader;
static pid_t ledger, rsv;
static int n_rsv;

/* ================================================================ store */

struct rres {
  char order[72], txn[72];
  int status, reason;
};
struct rful {
  char order[72];
  int64_t price; /* unit price of its first line */
};
struct rdlq {
  char key[96];
  char consumer[64];
  char reason[600];
};
struct rref {
  char order[72], txn[72];
  int reason;
  int64_t amount;
};

#define VEC(T)                                                                 \
  struct {                                                                     \
    T *v;                                                                      \
    size_t n, cap;                                                             \
  }

static struct {
  VEC(struct rres) res;
  VEC(struct rful) ful;
  VEC(struct rref) ref;
  VEC(struct rdlq) dlq;
} st;

#define PUSH(vec) LINLI_TEST_PUSH(vec)

static int ours(const char *id) {
  return id && strncmp(id, RUN, strlen(RUN)) == 0;
}

static void cpy(char *dst, size_t len, const char *src) {
  snprintf(dst, len, "%s", src ? src : "");
}

static void collect(void *arg, const rd_kafka_message_t *m) {
  (void)arg;
  const char *topic = rd_kafka_topic_name(m->rkt);
  const uint8_t *p = m->payload;
  if (strcmp(topic, T_RESERVATIONS) == 0) {
    Linli__ReservationEvent *ev =
        linli__reservation_event__unpack(NULL, m->len, p);
    if (!ev)
      return;
    const Linli__ReservationResult *r = ev->reservation_result;
    if (r && ours(r->order_id)) {
      struct rres *e = PUSH(st.res);
      cpy(e->order, sizeof e->order, r->order_id);
      cpy(e->txn, sizeof e->txn, r->payment_txn_id);
      e->status = r->status;
      e->reason = r->reason;
    }
    linli__reservation_event__free_unpacked(ev, NULL);
  } else if (strcmp(topic, T_FULFILLMENT) == 0) {
    Linli__FulfillmentEvent *ev =
        linli__fulfillment_event__unpack(NULL, m->len, p);
    if (!ev)
      return;
    const Linli__FulfillmentItem *f = ev->fulfillment_item;
    if (f && ours(f->order_id)) {
      struct rful *e = PUSH(st.ful);
      cpy(e->order, sizeof e->order, f->order_id);
      e->price = f->n_lines ? f->lines[0]->unit_price_fen : -1;
    }
    linli__fulfillment_event__free_unpacked(ev, NULL);
  } else if (strcmp(topic, LINLI_TOPIC_DLQ) == 0) {
    char key[96] = "";
    if (m->key && m->key_len < sizeof key)
      memcpy(key, m->key, m->key_len);
    if (ours(key)) {
      struct rdlq *e = PUSH(st.dlq);
      cpy(e->key, sizeof e->key, key);
      linli_test_header(m, LINLI_DLQ_H_CONSUMER, e->consumer,
                        sizeof e->consumer);
      linli_test_header(m, LINLI_DLQ_H_REASON, e->reason, sizeof e->reason);
    }
  } else if (strcmp(topic, T_REFUNDS) == 0) {
    Linli__RefundEvent *ev = linli__refund_event__unpack(NULL, m->len, p);
    if (!ev)
      return;
    const Linli__RefundRequested *r = ev->refund_requested;
    if (r && ours(r->order_id)) {
      struct rref *e = PUSH(st.ref);
      cpy(e->order, sizeof e->order, r->order_id);
      cpy(e->txn, sizeof e->txn, r->payment_txn_id);
      e->reason = r->reason;
      e->amount = r->amount_fen;
    }
    linli__refund_event__free_unpacked(ev, NULL);
  }
}

static int n_res(const char *order, int status, int reason) {
  int n = 0;
  for (size_t i = 0; i < st.res.n; i++)
    n += strcmp(st.res.v[i].order, order) == 0 &&
         (status == ANY || st.res.v[i].status == status) &&
         (reason == ANY || st.res.v[i].reason == reason);
  return n;
}

static int n_ful(const char *order, int64_t price) {
  int n = 0;
  for (size_t i = 0; i < st.ful.n; i++)
    n += strcmp(st.ful.v[i].order, order) == 0 &&
         (price < 0 || st.ful.v[i].price == price);
  return n;
}

static int n_ref(const char *order) {
  int n = 0;
  for (size_t i = 0; i < st.ref.n; i++)
    n += strcmp(st.ref.v[i].order, order) == 0;
  return n;
}

static const struct rref *find_ref(const char *order) {
  for (size_t i = 0; i < st.ref.n; i++)
    if (strcmp(st.ref.v[i].order, order) == 0)
      return &st.ref.v[i];
  return NULL;
}

/* Wait for: every order in ids has a result (status, reason). */
struct want {
  const char *const *ids;
  size_t n;
  int status, reason;
};
static int have_all(void *arg) {
  const struct want *w = arg;
  for (size_t i = 0; i < w->n; i++)
    if (n_res(w->ids[i], w->status, w->reason) == 0)
      return 0;
  return 1;
}
static int wait_all(const char *const *ids, size_t n, int status,
                    int reason) {
  struct want w = {ids, n, status, reason};
  linli_test_reader_poll(reader, 60000, collect, &w, have_all);
  return have_all(&w);
}
static int wait_one(const char *id, int status, int reason) {
  const char *ids[] = {id};
  return wait_all(ids, 1, status, reason);
}

struct want_ful {
  const char *const *ids;
  size_t n;
};
static int have_ful(void *arg) {
  const struct want_ful *w = arg;
  for (size_t i = 0; i < w->n; i++)
    if (n_ful(w->ids[i], -1) == 0)
      return 0;
  return 1;
}

/* Keep reading for ms: late or duplicate records. */
static void linger(int ms) {
  linli_test_reader_poll(reader, ms, collect, NULL, NULL);
}

/* ================================================================ events */

static void meta_fill(Linli__Meta *m, char *eid) {
  linli_id_new(eid, LINLI_ID_BUFSZ);
  m->event_id = eid;
  m->occurred_at_ms = linli_clock_now_ms();
  m->producer = (char *)"test_campaign_orders";
  m->schema_version = 1;
}

static int put(const char *topic, const char *key,
               const ProtobufCMessage *msg) {
  size_t len = protobuf_c_message_get_packed_size(msg);
  uint8_t *p = malloc(len ? len : 1);
  if (!p)
    return -1;
  protobuf_c_message_pack(msg, p);
  int rc = linli_test_produce(topic, key, p, len);
  free(p);
  return rc;
}

static int list_sku(void) {
  Linli__CatalogEvent ev = LINLI__CATALOG_EVENT__INIT;
  Linli__Meta meta = LINLI__META__INIT;
  Linli__Sku s = LINLI__SKU__INIT;
  char eid[LINLI_ID_BUFSZ];
  meta_fill(&meta, eid);
  s.sku_id = sku;
  s.name = (char *)"group-buy peaches";
  s.storage_class = LINLI__STORAGE_CLASS__CHILLED;
  s.weight_g = 500;
  s.list_price_fen = 150;
  s.status = LINLI__SKU__STATUS__LISTED;
  ev.meta = &meta;
  ev.event_case = LINLI__CATALOG_EVENT__EVENT_SKU;
  ev.sku = &s;
  return put(T_CATALOG, sku, &ev.base);
}

static int restock(int qty) {
  Linli__InventoryEvent ev = LINLI__INVENTORY_EVENT__INIT;
  Linli__Meta meta = LINLI__META__INIT;
  Linli__StockAdjusted a = LINLI__STOCK_ADJUSTED__INIT;
  char eid[LINLI_ID_BUFSZ], adj[LINLI_ID_BUFSZ];
  meta_fill(&meta, eid);
  linli_id_new(adj, sizeof adj);
  a.adjustment_id = adj;
  a.warehouse_id = wh;
  a.sku_id = sku;
  a.quantity = qty;
  a.reason = LINLI__STOCK_ADJUSTED__REASON__RESTOCK;
  a.note = (char *)"";
  ev.meta = &meta;
  ev.event_case = LINLI__INVENTORY_EVENT__EVENT_STOCK_ADJUSTED;
  ev.stock_adjusted = &a;
  return put(T_INVENTORY, wh, &ev.base);
}

/* OrderPlaced of qty units at PREPAID fen for campaign. */
static int place(const char *order, const char *campaign, int qty) {
  Linli__OrderEvent ev = LINLI__ORDER_EVENT__INIT;
  Linli__Meta meta = LINLI__META__INIT;
  Linli__OrderPlaced op = LINLI__ORDER_PLACED__INIT;
  Linli__OrderLine line = LINLI__ORDER_LINE__INIT;
  Linli__OrderLine *lines[] = {&line};
  Linli__PickupDelivery pick = LINLI__PICKUP_DELIVERY__INIT;
  char eid[LINLI_ID_BUFSZ], user[96];
  meta_fill(&meta, eid);
  snprintf(user, sizeof user, "%s-u-%s", RUN, order + strlen(RUN));
  line.sku_id = sku;
  line.quantity = qty;
  line.unit_price_fen = PREPAID;
  pick.pickup_point_id = (char *)"pp-1";
  op.order_id = (char *)order;
  op.app_id = (char *)"app-gb";
  op.user_id = user;
  op.warehouse_id = wh;
  op.n_lines = 1;
  op.lines = lines;
  op.total_fen = (int64_t)PREPAID * qty;
  op.delivery_case = LINLI__ORDER_PLACED__DELIVERY_PICKUP;
  op.pickup = &pick;
  op.campaign_id = (char *)campaign;
  op.placed_at_ms = meta.occurred_at_ms;
  ev.meta = &meta;
  ev.event_case = LINLI__ORDER_EVENT__EVENT_ORDER_PLACED;
  ev.order_placed = &op;
  return put(T_ORDERS, order, &ev.base);
}

static int pay(const char *order, const char *txn, int64_t amount) {
  Linli__OrderEvent ev = LINLI__ORDER_EVENT__INIT;
  Linli__Meta meta = LINLI__META__INIT;
  Linli__OrderPaid pd = LINLI__ORDER_PAID__INIT;
  char eid[LINLI_ID_BUFSZ];
  meta_fill(&meta, eid);
  pd.order_id = (char *)order;
  pd.method = LINLI__ORDER_PAID__METHOD__ALIPAY;
  pd.payment_txn_id = (char *)txn;
  pd.amount_fen = amount;
  pd.paid_at_ms = meta.occurred_at_ms;
  ev.meta = &meta;
  ev.event_case = LINLI__ORDER_EVENT__EVENT_ORDER_PAID;
  ev.order_paid = &pd;
  return put(T_ORDERS, order, &ev.base);
}

/* CampaignSettled at price (settled) or CampaignFailed with a GROUP_FAILED
 * refund of `amount` for each order in refunded (n of them). */
static int decide(const char *campaign, int settled, int64_t price,
                  const char *const *refunded, size_t n, int64_t amount) {
  Linli__SettlementEvent ev = LINLI__SETTLEMENT_EVENT__INIT;
  Linli__Meta meta = LINLI__META__INIT;
  Linli__CampaignSettled s = LINLI__CAMPAIGN_SETTLED__INIT;
  Linli__CampaignFailed f = LINLI__CAMPAIGN_FAILED__INIT;
  Linli__CampaignRefund rf[8];
  Linli__CampaignRefund *rp[8];
  char eid[LINLI_ID_BUFSZ];
  meta_fill(&meta, eid);
  for (size_t i = 0; i < n && i < 8; i++) {
    linli__campaign_refund__init(&rf[i]);
    rf[i].order_id = (char *)refunded[i];
    rf[i].user_id = (char *)"u";
    rf[i].amount_fen = amount;
    rp[i] = &rf[i];
  }
  ev.meta = &meta;
  if (settled) {
    s.campaign_id = (char *)campaign;
    s.tier = 1;
    s.unit_price_fen = price;
    s.participants = 3;
    s.warehouse_id = wh;
    ev.event_case = LINLI__SETTLEMENT_EVENT__EVENT_CAMPAIGN_SETTLED;
    ev.campaign_settled = &s;
  } else {
    f.campaign_id = (char *)campaign;
    f.participants = (int32_t)n;
    f.reason = (char *)"minimum not reached";
    f.n_refunds = n;
    f.refunds = rp;
    f.warehouse_id = wh;
    ev.event_case = LINLI__SETTLEMENT_EVENT__EVENT_CAMPAIGN_FAILED;
    ev.campaign_failed = &f;
  }
  return put(T_SETTLEMENTS, campaign, &ev.base);
}

/* ================================================================ stores */

/* {w:<wh>}:<hash> of sku; 0 if absent, -1 on error. */
static long long stock(const char *hash) {
  char key[256];
  dom_rsv_key(key, sizeof key, wh, hash);
  const char *argv[] = {"HGET", key, sku};
  redisReply *r = NULL;
  long long v = -1;
  if (linli_redis_command(redis, 3, argv, NULL, &r) == LINLI_OK && r) {
    if (r->type == REDIS_REPLY_STRING)
      v = atoll(r->str);
    else if (r->type == REDIS_REPLY_NIL)
      v = 0;
    freeReplyObject(r);
  }
  return v;
}

/* 1 if the reserver's shard holds campaign's decision. */
static int decided_in_redis(const char *campaign) {
  char suffix[128], key[256];
  snprintf(suffix, sizeof suffix, "cmp:%s", campaign);
  dom_rsv_key(key, sizeof key, wh, suffix);
  const char *argv[] = {"EXISTS", key};
  redisReply *r = NULL;
  int v = 0;
  if (linli_redis_command(redis, 2, argv, NULL, &r) == LINLI_OK && r) {
    v = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    freeReplyObject(r);
  }
  return v;
}

static char *q_text(const char *sql, const char *a, const char *b) {
  const char *p[2] = {a, b};
  PGresult *r = PQexecParams(db, sql, b ? 2 : a ? 1 : 0, NULL, p, NULL, NULL,
                             0);
  char *v = NULL;
  if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) >= 1 &&
      !PQgetisnull(r, 0, 0))
    v = strdup(PQgetvalue(r, 0, 0));
  else if (PQresultStatus(r) != PGRES_TUPLES_OK)
    fprintf(stderr, "query failed: %s", PQerrorMessage(db));
  PQclear(r);
  return v;
}

/* How long the record may lag: the ledger reads every shared topic, and
 * other runs (a benchmark's joins) may have written a lot. */
#define LEDGER_WAIT_MS 420000

/* Wait until the ledger has order in state|reason `want`; 1 if it has. */
static int wait_order_state(const char *order, const char *want) {
  int64_t deadline = linli_test_now_ms() + LEDGER_WAIT_MS;
  for (;;) {
    /* want "STATE|REASON", or "STATE" alone */
    char *v = q_text(strchr(want, '|')
                         ? "SELECT concat_ws('|', state, reason) FROM orders "
                           "WHERE order_id = $1"
                         : "SELECT state FROM orders WHERE order_id = $1",
                     order, NULL);
    int ok = v && strcmp(v, want) == 0;
    if (!ok && linli_test_now_ms() > deadline)
      fprintf(stderr, "\n  order %s: ledger says %s, want %s\n", order,
              v ? v : "(none)", want);
    free(v);
    if (ok)
      return 1;
    if (linli_test_now_ms() > deadline)
      return 0;
    usleep(200 * 1000);
  }
}

/* PostgreSQL's inventory equals Redis's (the ledger caught up): 1 if so
 * within the timeout. */
static int wait_ledger_stock(void) {
  int64_t deadline = linli_test_now_ms() + LEDGER_WAIT_MS;
  for (;;) {
    char hot[96];
    snprintf(hot, sizeof hot, "%lld|%lld|%lld", stock("avail"), stock("resv"),
             stock("sold"));
    char *inv = q_text("SELECT concat_ws('|', available, reserved, sold) "
                       "FROM inventory WHERE warehouse_id = $1 AND sku_id = "
                       "$2",
                       wh, sku);
    int ok = inv && strcmp(inv, hot) == 0;
    if (!ok && linli_test_now_ms() > deadline)
      fprintf(stderr, "\n  PostgreSQL %s, Redis %s\n", inv ? inv : "(none)",
              hot);
    free(inv);
    if (ok)
      return 1;
    if (linli_test_now_ms() > deadline)
      return 0;
    usleep(200 * 1000);
  }
}

/* ============================================================ processes */


static pid_t spawn_ledger(void) {
  char inst[160], log[256];
  snprintf(inst, sizeof inst, "%s-l", RUN);
  snprintf(log, sizeof log, "/tmp/%s-ledger.log", RUN);
  return linli_test_spawn_ledger(ledger_group, inst, log, NULL);
}

/* A reserver in the run's group; kill_at > 0: SIGKILLed by the runner
 * right before its kill_at-th batch commit. */
static pid_t spawn_reserver(int kill_at) {
  char path[512], e_group[160], e_inst[160], e_kill[64], log[256];
  linli_test_binary_path("consumers/reserver/linli-reserver", path,
                         sizeof path);
  snprintf(e_group, sizeof e_group, "LINLI_RUNNER_GROUP=%s", rsv_group);
  snprintf(e_inst, sizeof e_inst, "LINLI_RUNNER_INSTANCE_ID=%s-r%d", RUN,
           n_rsv);
  snprintf(e_kill, sizeof e_kill, "LINLI_FAULT_KILL_BEFORE_COMMIT=%d",
           kill_at);
  snprintf(log, sizeof log, "/tmp/%s-r%d.log", RUN, n_rsv++);
  char *env[] = {e_group,
                 e_inst,
                 (char *)"LINLI_METRICS_PORT=0",
                 (char *)"LINLI_RUNNER_FLUSH_INTERVAL_MS=50",
                 kill_at > 0 ? e_kill : NULL,
                 NULL};
  char *argv[] = {path, NULL};
  return linli_test_spawn_tied(argv, env, log);
}

static int stopped_ok(pid_t pid, const char *what) {
  int s = linli_test_stop(pid, 0);
  int ok = s >= 0 && WIFEXITED(s) && WEXITSTATUS(s) == 0;
  if (!ok)
    fprintf(stderr, "\n  %s exited with status %d: see /tmp/%s-*.log\n", what,
            s, RUN);
  return ok;
}

/* Another run's reserver would judge our orders and settlements in the same
 * Redis: wait, within reason, until nobody else consumes. */
static void wait_orders_idle(void) {
  char names[512];
  int64_t deadline = linli_test_now_ms() + 120000;
  int n, told = 0;
  while ((n = linli_test_topic_consumers(T_ORDERS, "linli-reserver", names,
                                          sizeof names)) > 0 &&
         linli_test_now_ms() < deadline) {
    if (!told++)
      fprintf(stderr, "\n  waiting for other consumers of %s to finish: %s\n",
              T_ORDERS, names);
    usleep(500 * 1000);
  }
}

static int ensure_topics(void) {
  char path[1024], line[512];
  linli_test_source_path("config/topics.conf", path, sizeof path);
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return -1;
  int rc = 0;
  while (rc == 0 && fgets(line, sizeof line, f) != NULL) {
    char name[192], retention[32], policy[32];
    int parts = 0;
    if (line[0] == '#' || sscanf(line, "%191s %d %31s %31s", name, &parts,
                                 retention, policy) != 4)
      continue;
    rc = linli_test_ensure_topic(name, parts, policy);
  }
  fclose(f);
  return rc;
}

static void id(char *buf, size_t len, const char *what) {
  snprintf(buf, len, "%s-%s", RUN, what);
}

/* ================================================================ suite */

static int suite_init(void) {
  if (sodium_init() < 0 || ensure_topics() != 0)
    return -1;
  const linli_config_t *cfg = linli_test_config();
  char err[256];
  if (cfg == NULL ||
      linli_redis_connect(linli_config_str(cfg, "redis.host"),
                          (int)linli_config_int(cfg, "redis.port"),
                          linli_config_str(cfg, "redis.password"), 5000,
                          &redis, err, sizeof err) != LINLI_OK) {
    fprintf(stderr, "redis: %s\n", cfg ? err : "no config");
    return -1;
  }
  db = PQconnectdb(linli_config_str(cfg, "pg.conninfo"));
  if (PQstatus(db) != CONNECTION_OK) {
    fprintf(stderr, "postgres: %s", PQerrorMessage(db));
    return -1;
  }
  linli_test_unique("gbo", RUN, sizeof RUN);
  id(wh, sizeof wh, "W");
  id(sku, sizeof sku, "S");
  id(rsv_group, sizeof rsv_group, "rg");
  id(ledger_group, sizeof ledger_group, "lg");
  const char *outs[] = {T_RESERVATIONS, T_FULFILLMENT, T_REFUNDS,
                        LINLI_TOPIC_DLQ, NULL};
  reader = linli_test_reader_new(outs, 1);
  if (!reader || linli_test_ledger_start_at_end(ledger_group) != 0)
    return -1;
  ledger = spawn_ledger();
  wait_orders_idle();
  if (ledger <= 0 || linli_test_group_start_at_end(rsv_group, INPUTS) != 0)
    return -1;
  rsv = spawn_reserver(0);
  return rsv > 0 ? 0 : -1;
}

static int suite_cleanup(void) {
  if (rsv > 0)
    linli_test_stop(rsv, 1);
  if (ledger > 0)
    linli_test_stop(ledger, 1);
  if (db != NULL && ledger_group[0]) {
    const char *p[] = {ledger_group};
    PQclear(PQexecParams(db,
                         "DELETE FROM consumer_offsets WHERE consumer_group "
                         "= $1",
                         1, NULL, p, NULL, NULL, 0));
  }
  PQfinish(db);
  db = NULL;
  linli_redis_free(redis);
  redis = NULL;
  linli_test_reader_free(reader);
  reader = NULL;
  free(st.res.v);
  free(st.ful.v);
  free(st.ref.v);
  free(st.dlq.v);
  memset(&st, 0, sizeof st);
  return 0;
}

static void test_setup(void) {
  CU_ASSERT_EQUAL_FATAL(list_sku(), 0);
  CU_ASSERT_EQUAL_FATAL(restock(STOCK), 0);
  int64_t deadline = linli_test_now_ms() + 60000;
  while (stock("avail") != STOCK && linli_test_now_ms() < deadline)
    usleep(100 * 1000);
  CU_ASSERT_EQUAL_FATAL(stock("avail"), STOCK);
}

/* ------------------------------------------------------- bad input */

/* The reserver's DLQ record of the input keyed key (the ledger judges
 * the same topic by its own rules). */
static const struct rdlq *find_dlq(const char *key) {
  for (size_t i = 0; i < st.dlq.n; i++)
    if (strcmp(st.dlq.v[i].key, key) == 0 &&
        strstr(st.dlq.v[i].consumer, "reserver"))
      return &st.dlq.v[i];
  return NULL;
}
static int have_dlq2(void *arg) {
  const char *const *k = arg;
  return find_dlq(k[0]) && find_dlq(k[1]);
}

/* A CampaignFailed the reserver cannot route (no warehouse, as written
 * before the field existed) and one whose refund is out of range: each on
 * the DLQ with its reason, no stock moved. */
static void test_bad_settlements(void) {
  char c1[96], c2[96], eid1[LINLI_ID_BUFSZ], eid2[LINLI_ID_BUFSZ];
  id(c1, sizeof c1, "gbad-nowh");
  id(c2, sizeof c2, "gbad-fen");
  long long avail = stock("avail");
  Linli__CampaignRefund rf = LINLI__CAMPAIGN_REFUND__INIT;
  Linli__CampaignRefund *rp[] = {&rf};
  rf.order_id = c2;
  rf.user_id = (char *)"u";
  rf.amount_fen = INT64_MAX;
  for (int k = 0; k < 2; k++) {
    Linli__SettlementEvent ev = LINLI__SETTLEMENT_EVENT__INIT;
    Linli__Meta meta = LINLI__META__INIT;
    Linli__CampaignFailed f = LINLI__CAMPAIGN_FAILED__INIT;
    meta_fill(&meta, k ? eid2 : eid1);
    f.campaign_id = k ? c2 : c1;
    f.reason = (char *)"minimum not reached";
    f.warehouse_id = k ? wh : (char *)"";
    f.n_refunds = k ? 1 : 0;
    f.refunds = k ? rp : NULL;
    ev.meta = &meta;
    ev.event_case = LINLI__SETTLEMENT_EVENT__EVENT_CAMPAIGN_FAILED;
    ev.campaign_failed = &f;
    CU_ASSERT_EQUAL_FATAL(put(T_SETTLEMENTS, f.campaign_id, &ev.base), 0);
  }
  const char *keys[] = {c1, c2};
  linli_test_reader_poll(reader, 60000, collect, keys, have_dlq2);
  const struct rdlq *d1 = find_dlq(c1), *d2 = find_dlq(c2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(d1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(d2);
  CU_ASSERT_PTR_NOT_NULL(strstr(d1->reason, "campaign_failed.warehouse_id"));
  CU_ASSERT_PTR_NOT_NULL(
      strstr(d2->reason, "campaign_failed.refunds[0].amount_fen"));
  CU_ASSERT_EQUAL(stock("avail"), avail);
}

/* ------------------------------------------------------------ failed */

static void test_failed(void) {
  char camp[96], o[6][80], txn[96];
  id(camp, sizeof camp, "CF");
  for (int i = 0; i < 6; i++) {
    char w[16];
    snprintf(w, sizeof w, "f%d", i);
    id(o[i], sizeof o[i], w);
  }
  /* f0..f2 paid (held), f3 and f4 only reserved; 2 units each. */
  for (int i = 0; i < 5; i++)
    CU_ASSERT_EQUAL_FATAL(place(o[i], camp, 2), 0);
  for (int i = 0; i < 3; i++) {
    snprintf(txn, sizeof txn, "%.70s-t", o[i]);
    CU_ASSERT_EQUAL_FATAL(pay(o[i], txn, 2 * PREPAID), 0);
  }
  const char *paid[] = {o[0], o[1], o[2]};
  const char *all[] = {o[0], o[1], o[2], o[3], o[4]};
  CU_ASSERT_FATAL(wait_all(paid, 3, S_COMMITTED, ANY));
  CU_ASSERT_FATAL(wait_all(all, 5, S_RESERVED, ANY));
  linger(500);
  for (int i = 0; i < 3; i++)
    CU_ASSERT_EQUAL(n_ful(o[i], -1), 0); /* held */
  CU_ASSERT_EQUAL(stock("avail"), STOCK - 10);
  CU_ASSERT_EQUAL(stock("resv"), 4);
  CU_ASSERT_EQUAL(stock("sold"), 6);

  /* The campaign fails. The settler refunds its joins: f0, f1 and f3 (f3
   * joined before its payment reached the reserver); f2's join was
   * refused, f4 never joined. */
  const char *refunded[] = {o[0], o[1], o[3]};
  CU_ASSERT_EQUAL_FATAL(decide(camp, 0, 0, refunded, 3, 2 * PREPAID), 0);
  CU_ASSERT_FATAL(wait_all(all, 5, S_RELEASED, R_GROUP_FAILED));
  CU_ASSERT_EQUAL(stock("avail"), STOCK);
  CU_ASSERT_EQUAL(stock("resv"), 0);
  CU_ASSERT_EQUAL(stock("sold"), 0);

  /* Payments after the failure: f3's is what the settler refunds already
   * (no second refund); f4's is refunded by the reserver, once, even when
   * the notice comes twice; an order placed now is refused. */
  char t3[96], t4[96];
  snprintf(t3, sizeof t3, "%.70s-t", o[3]);
  snprintf(t4, sizeof t4, "%.70s-t", o[4]);
  CU_ASSERT_EQUAL_FATAL(pay(o[3], t3, 2 * PREPAID), 0);
  CU_ASSERT_EQUAL_FATAL(pay(o[4], t4, 2 * PREPAID), 0);
  CU_ASSERT_EQUAL_FATAL(pay(o[4], t4, 2 * PREPAID), 0);
  CU_ASSERT_EQUAL_FATAL(place(o[5], camp, 1), 0);
  CU_ASSERT(wait_one(o[3], S_REJECTED, R_GROUP_FAILED));
  CU_ASSERT(wait_one(o[4], S_REJECTED,
                     LINLI__RESERVATION_RESULT__REASON__PAYMENT_AFTER_CANCEL));
  CU_ASSERT(wait_one(o[5], S_REJECTED,
                     LINLI__RESERVATION_RESULT__REASON__INVALID_ORDER));
  linger(1500);
  CU_ASSERT_EQUAL(n_ref(o[3]), 0);
  CU_ASSERT_EQUAL(n_ref(o[4]), 1);
  const struct rref *rf = find_ref(o[4]);
  if (rf) {
    CU_ASSERT_EQUAL(rf->amount, 2 * PREPAID);
    CU_ASSERT_EQUAL(rf->reason, LINLI__REFUND_REQUESTED__REASON__GROUP_FAILED);
    CU_ASSERT_STRING_EQUAL(rf->txn, t4);
  }
  /* A paid order leaves PAID only this way; a reserved one may have been
   * recorded CANCELLED first by another run's ledger (same record) that
   * names the detail, not the reason. */
  for (int i = 0; i < 5; i++) {
    CU_ASSERT_EQUAL(n_res(o[i], S_RELEASED, ANY), 1);
    CU_ASSERT_EQUAL(n_ful(o[i], -1), 0);
    CU_ASSERT(wait_order_state(o[i], i < 3 ? "CANCELLED|GROUP_FAILED"
                                           : "CANCELLED"));
  }
  CU_ASSERT_EQUAL(stock("avail"), STOCK);
  CU_ASSERT(wait_ledger_stock());
}

/* ----------------------------------------------------------- settled */

static void test_settled(void) {
  char camp[96], o[4][80], txn[96];
  id(camp, sizeof camp, "CS");
  for (int i = 0; i < 4; i++) {
    char w[16];
    snprintf(w, sizeof w, "s%d", i);
    id(o[i], sizeof o[i], w);
  }
  /* s0..s2 paid (held), s3 only reserved. */
  for (int i = 0; i < 4; i++)
    CU_ASSERT_EQUAL_FATAL(place(o[i], camp, 1), 0);
  for (int i = 0; i < 3; i++) {
    snprintf(txn, sizeof txn, "%.70s-t", o[i]);
    CU_ASSERT_EQUAL_FATAL(pay(o[i], txn, PREPAID), 0);
  }
  const char *held[] = {o[0], o[1], o[2]};
  CU_ASSERT_FATAL(wait_all(held, 3, S_COMMITTED, ANY));
  CU_ASSERT_FATAL(wait_one(o[3], S_RESERVED, ANY));
  linger(500);
  for (int i = 0; i < 4; i++)
    CU_ASSERT_EQUAL(n_ful(o[i], -1), 0); /* none before the settlement */
  CU_ASSERT_EQUAL(stock("avail"), STOCK - 4);
  CU_ASSERT_EQUAL(stock("sold"), 3);

  /* Settled at 90 fen a unit: each held order to fulfilment once. */
  CU_ASSERT_EQUAL_FATAL(decide(camp, 1, 90, NULL, 0, 0), 0);
  struct want_ful w = {held, 3};
  linli_test_reader_poll(reader, 60000, collect, &w, have_ful);
  CU_ASSERT_FATAL(have_ful(&w));
  /* Paid after the settlement: to fulfilment at once, at the same price.
   * A second settlement record (another event) changes nothing. */
  snprintf(txn, sizeof txn, "%.70s-t", o[3]);
  CU_ASSERT_EQUAL_FATAL(pay(o[3], txn, PREPAID), 0);
  CU_ASSERT_EQUAL_FATAL(decide(camp, 1, 90, NULL, 0, 0), 0);
  const char *late[] = {o[3]};
  struct want_ful w3 = {late, 1};
  linli_test_reader_poll(reader, 60000, collect, &w3, have_ful);
  linger(1500);
  for (int i = 0; i < 4; i++) {
    CU_ASSERT_EQUAL(n_ful(o[i], -1), 1);
    CU_ASSERT_EQUAL(n_ful(o[i], 90), 1);
    CU_ASSERT_EQUAL(n_res(o[i], S_COMMITTED, ANY), 1);
    CU_ASSERT_EQUAL(n_res(o[i], S_RELEASED, ANY), 0);
    CU_ASSERT(wait_order_state(o[i], "READY"));
  }
  CU_ASSERT_EQUAL(stock("avail"), STOCK - 4);
  CU_ASSERT_EQUAL(stock("resv"), 0);
  CU_ASSERT_EQUAL(stock("sold"), 4);
  CU_ASSERT(wait_ledger_stock());
}

/* ------------------------------------------------------------- crash */

#define K_ORDERS 12

static void test_killed(void) {
  char camp[96], camp2[96], o[K_ORDERS][80], txn[96];
  id(camp, sizeof camp, "CK");
  id(camp2, sizeof camp2, "CK2");
  const char *ids[K_ORDERS];
  for (int i = 0; i < K_ORDERS; i++) {
    char w[16];
    snprintf(w, sizeof w, "k%d", i);
    id(o[i], sizeof o[i], w);
    ids[i] = o[i];
  }
  /* Half for a campaign that fails, half for one that settles; all paid
   * and held. */
  long long avail0 = stock("avail"), sold0 = stock("sold");
  for (int i = 0; i < K_ORDERS; i++)
    CU_ASSERT_EQUAL_FATAL(place(o[i], i % 2 ? camp2 : camp, 1), 0);
  for (int i = 0; i < K_ORDERS; i++) {
    snprintf(txn, sizeof txn, "%.70s-t", o[i]);
    CU_ASSERT_EQUAL_FATAL(pay(o[i], txn, PREPAID), 0);
  }
  CU_ASSERT_FATAL(wait_all(ids, K_ORDERS, S_COMMITTED, ANY));
  CU_ASSERT_EQUAL(stock("sold"), sold0 + K_ORDERS);

  /* The settlements wait in the input of a reserver that dies right before
   * committing its first batch; another takes over. */
  CU_ASSERT(stopped_ok(rsv, "reserver"));
  rsv = 0;
  CU_ASSERT_EQUAL_FATAL(decide(camp, 0, 0, NULL, 0, 0), 0);
  CU_ASSERT_EQUAL_FATAL(decide(camp2, 1, 100, NULL, 0, 0), 0);
  pid_t doomed = spawn_reserver(1);
  CU_ASSERT_FATAL(doomed > 0);
  int status = 0;
  CU_ASSERT_EQUAL(waitpid(doomed, &status, 0), doomed);
  CU_ASSERT(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  /* It died after the batch's Redis effects: the decisions it applied are
   * in Redis, their outputs were never committed. */
  int applied = decided_in_redis(camp) + decided_in_redis(camp2);
  CU_ASSERT(applied >= 1);
  rsv = spawn_reserver(0);
  CU_ASSERT_FATAL(rsv > 0);

  const char *failed[K_ORDERS / 2], *settled[K_ORDERS / 2];
  for (int i = 0; i < K_ORDERS / 2; i++) {
    failed[i] = o[2 * i];
    settled[i] = o[2 * i + 1];
  }
  CU_ASSERT(wait_all(failed, K_ORDERS / 2, S_RELEASED, R_GROUP_FAILED));
  struct want_ful w = {settled, K_ORDERS / 2};
  linli_test_reader_poll(reader, 60000, collect, &w, have_ful);
  linger(2000);
  for (int i = 0; i < K_ORDERS / 2; i++) {
    CU_ASSERT_EQUAL(n_res(failed[i], S_RELEASED, R_GROUP_FAILED), 1);
    CU_ASSERT_EQUAL(n_ful(failed[i], -1), 0);
    CU_ASSERT_EQUAL(n_ful(settled[i], 100), 1);
    CU_ASSERT_EQUAL(n_res(settled[i], S_RELEASED, ANY), 0);
  }
  CU_ASSERT_EQUAL(stock("avail"), avail0 - K_ORDERS / 2);
  CU_ASSERT_EQUAL(stock("sold"), sold0 + K_ORDERS / 2);
  CU_ASSERT_EQUAL(stock("resv"), 0);
  for (int i = 0; i < K_ORDERS / 2; i++) {
    CU_ASSERT(wait_order_state(failed[i], "CANCELLED|GROUP_FAILED"));
    CU_ASSERT(wait_order_state(settled[i], "READY"));
  }
  CU_ASSERT(wait_ledger_stock());
}

/* ------------------------------------------------------------- audit */

static int replay(char *const args[], const char *out_path) {
  char bin[512];
  linli_test_binary_path("consumers/replay/linli-replay", bin, sizeof bin);
  char *argv[16];
  int a = 0;
  argv[a++] = bin;
  for (int i = 0; args[i] && a < 15; i++)
    argv[a++] = args[i];
  argv[a] = NULL;
  unlink(out_path);
  pid_t pid = linli_test_spawn_tied(argv, NULL, out_path);
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) != pid)
    return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void test_audit(void) {
  char out[256];
  snprintf(out, sizeof out, "/tmp/%s-audit.out", RUN);
  char *audit[] = {(char *)"audit", (char *)"--warehouse", wh, NULL};
  int arc = -1;
  for (int i = 0; i < 3 && arc != 0; i++) {
    if (i)
      sleep(2);
    arc = replay(audit, out);
  }
  CU_ASSERT_EQUAL(arc, 0);
  if (arc != 0) {
    char cmd[400];
    snprintf(cmd, sizeof cmd, "tail -n 20 '%s' >&2", out);
    if (system(cmd) != 0)
      fprintf(stderr, "  (no audit output)\n");
  }
  CU_ASSERT(stopped_ok(rsv, "reserver"));
  rsv = 0;
  CU_ASSERT(stopped_ok(ledger, "ledger"));
  ledger = 0;
  if (CU_get_number_of_failures() == 0) {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -f /tmp/%s-*.log /tmp/%s-audit.out", RUN,
             RUN);
    if (system(cmd) != 0)
      fprintf(stderr, "  (logs not removed)\n");
  }
}

int linli_test_register(void) {
  CU_pSuite s = CU_add_suite("orders behind a group-buy campaign (real stack)",
                             suite_init, suite_cleanup);
  if (s == NULL ||
      !CU_add_test(s, "catalog and stock", test_setup) ||
      !CU_add_test(s, "a settlement it cannot apply goes to the DLQ",
                   test_bad_settlements) ||
      !CU_add_test(s, "a failed campaign releases its orders, paid or not",
                   test_failed) ||
      !CU_add_test(s, "a settled campaign's held orders go to fulfilment "
                      "once, at the settled price",
                   test_settled) ||
      !CU_add_test(s, "a reserver killed before its commit: each order "
                      "decided once",
                   test_killed) ||
      !CU_add_test(s, "the audit finds no difference", test_audit))
    return -1;
  return 0;
}
