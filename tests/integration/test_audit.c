/*
 * test_audit.c - linli-replay audit and rebuild against the real stack,
 * driven through a real linli-reserver:
 *  - after a small day of orders (reserved, out of stock, paid, cancelled,
 *    paid twice) the audit of the warehouse passes;
 *  - a deliberate change to Redis makes it fail, naming the SKU and values;
 *  - after the warehouse's hot state is wiped, rebuild restores it, the
 *    audit passes again, and a restarted reserver continues with no
 *    oversell;
 *  - records libdomain refuses (sent to the DLQ by the ledger) leave no
 *    difference.
 * A real linli-ledger records the same day in PostgreSQL, so the audit
 * compares the log with both the hot state and the record; a deliberate
 * change to PostgreSQL is named too.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "catalog.pb-c.h"
#include "inventory.pb-c.h"
#include "linli/error.h"
#include "linli/ids.h"
#include "linli/pg.h"
#include "linli/redis.h"
#include "domain/schema.h"
#include "linli_test.h"
#include "orders.pb-c.h"
#include "reservations.pb-c.h"
#include "domain/reserver_keys.h"

static char wh[80], sku[80], group[112], inst[112], run[48];
static char env_group[160], env_inst[160], ledger_group[112];
static char env_ledger_group[160], env_ledger_inst[160];

static const char *const inputs[] = {LINLI_TOPIC_CATALOG, LINLI_TOPIC_INVENTORY,
                                     LINLI_TOPIC_ORDERS, NULL};

static int produce_env(const char *topic, const char *key,
                       const ProtobufCMessage *msg) {
  uint8_t buf[4096];
  size_t len = protobuf_c_message_pack(msg, buf);
  return linli_test_produce(topic, key, buf, len);
}

static void meta_init(Linli__Meta *m, char *id) {
  linli_id_new(id, LINLI_ID_BUFSZ);
  m->event_id = id;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  m->occurred_at_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
  m->producer = "test-audit";
  m->schema_version = 1;
}

static int list_sku(void) {
  Linli__CatalogEvent ev = LINLI__CATALOG_EVENT__INIT;
  Linli__Meta meta = LINLI__META__INIT;
  Linli__Sku s = LINLI__SKU__INIT;
  char id[LINLI_ID_BUFSZ];
  meta_init(&meta, id);
  s.sku_id = sku;
  s.name = "rice 5kg";
  s.storage_class = LINLI__STORAGE_CLASS__AMBIENT;
  s.weight_g = 5000;
  s.list_price_fen = 3990;
  s.status = LINLI__SKU__STATUS__LISTED;
  ev.meta = &meta;
  ev.event_case = LINLI__CATALOG_EVENT__EVENT_SKU;
  ev.sku = &s;
  return produce_env(LINLI_TOPIC_CATALOG, sku, &ev.base);
}

static int restock(int qty) {
  Linli__InventoryEvent ev = LINLI__INVENTORY_EVENT__INIT;
  Linli__Meta meta = LINLI__META__INIT;
  Linli__StockAdjusted a = LINLI__STOCK_ADJUSTED__INIT;
  char id[LINLI_ID_BUFSZ];
  meta_init(&meta, id);
  a.adjustment_id = id;
  a.warehouse_id = wh;
  a.sku_id = sku;
  a.quantity = qty;
  a.reason = LINLI__STOCK_ADJUSTED__REASON__RESTOCK;
  ev.meta = &meta;
  ev.event_case = LINLI__INVENTORY_EVENT__EVENT_STOCK_ADJUSTED;
  ev.stock_adjusted = &a;
  return produce_env(LINLI_TOPIC_INVENTORY, wh, &ev.base);
}

static void order_id(char *buf, size_t len, int n) {
  snprintf(buf, len, "%s-o%d", run, n);
}

static int place(int n, int qty) {
  Linli__OrderEvent ev = LINLI__ORDER_EVENT__INIT;
  Linli__Meta meta = LINLI__META__INIT;
  Linli__OrderPlaced p = LINLI__ORDER_PLACED__INIT;
  Linli__OrderLine line = LINLI__ORDER_LINE__INIT;
  Linli__OrderLine *lines[] = {&line};
  Linli__PickupDelivery pickup = LINLI__PICKUP_DELIVERY__INIT;
  char id[LINLI_ID_BUFSZ], oid[96], user[32];
  meta_init(&meta, id);
  order_id(oid, sizeof oid, n);
  snprintf(user, sizeof user, "u%d", n);
  line.sku_id = sku;
  line.quantity = qty;
  line.unit_price_fen = 3990;
  pickup.pickup_point_id = "pp-1";
  p.order_id = oid;
  p.app_id = "app-test";
  p.user_id = user;
  p.warehouse_id = wh;
  p.n_lines = 1;
  p.lines = lines;
  p.delivery_case = LINLI__ORDER_PLACED__DELIVERY_PICKUP;
  p.pickup = &pickup;
  p.placed_at_ms = meta.occurred_at_ms;
  ev.meta = &meta;
  ev.event_case = LINLI__ORDER_EVENT__EVENT_ORDER_PLACED;
  ev.order_placed = &p;
  return produce_env(LINLI_TOPIC_ORDERS, oid, &ev.base);
}

/* A ReservationResult libdomain refuses (a payment deadline past the
 * year 3000) for an order of the warehouse that was never placed. */
static int bad_result(void) {
  Linli__ReservationEvent ev = LINLI__RESERVATION_EVENT__INIT;
  Linli__Meta meta = LINLI__META__INIT;
  Linli__ReservationResult r = LINLI__RESERVATION_RESULT__INIT;
  char id[LINLI_ID_BUFSZ], oid[96];
  meta_init(&meta, id);
  snprintf(oid, sizeof oid, "bad-%s", run);
  r.order_id = oid;
  r.warehouse_id = wh;
  r.user_id = "u-bad";
  r.status = LINLI__RESERVATION_RESULT__STATUS__RESERVED;
  r.expires_at_ms = INT64_MAX;
  ev.meta = &meta;
  ev.event_case = LINLI__RESERVATION_EVENT__EVENT_RESERVATION_RESULT;
  ev.reservation_result = &r;
  return produce_env(LINLI_TOPIC_RESERVATIONS, oid, &ev.base);
}

static int pay(int n, const char *txn, int64_t amount) {
  Linli__OrderEvent ev = LINLI__ORDER_EVENT__INIT;
  Linli__Meta meta = LINLI__META__INIT;
  Linli__OrderPaid p = LINLI__ORDER_PAID__INIT;
  char id[LINLI_ID_BUFSZ], oid[96];
  meta_init(&meta, id);
  order_id(oid, sizeof oid, n);
  p.order_id = oid;
  p.method = LINLI__ORDER_PAID__METHOD__WECHAT_PAY;
  p.payment_txn_id = (char *)txn;
  p.amount_fen = amount;
  ev.meta = &meta;
  ev.event_case = LINLI__ORDER_EVENT__EVENT_ORDER_PAID;
  ev.order_paid = &p;
  return produce_env(LINLI_TOPIC_ORDERS, oid, &ev.base);
}

static int cancel(int n) {
  Linli__OrderEvent ev = LINLI__ORDER_EVENT__INIT;
  Linli__Meta meta = LINLI__META__INIT;
  Linli__OrderCancelled c = LINLI__ORDER_CANCELLED__INIT;
  char id[LINLI_ID_BUFSZ], oid[96];
  meta_init(&meta, id);
  order_id(oid, sizeof oid, n);
  c.order_id = oid;
  c.reason = "changed my mind";
  ev.meta = &meta;
  ev.event_case = LINLI__ORDER_EVENT__EVENT_ORDER_CANCELLED;
  ev.order_cancelled = &c;
  return produce_env(LINLI_TOPIC_ORDERS, oid, &ev.base);
}

/* Reservation results of this run's orders. */
struct results {
  int count, reserved, rejected, committed, released;
};

static void count_result(void *arg, const rd_kafka_message_t *m) {
  struct results *r = arg;
  Linli__ReservationEvent *ev = linli__reservation_event__unpack(
      NULL, m->len, (const uint8_t *)m->payload);
  if (!ev)
    return;
  if (ev->event_case == LINLI__RESERVATION_EVENT__EVENT_RESERVATION_RESULT &&
      strncmp(ev->reservation_result->order_id, run, strlen(run)) == 0) {
    r->count++;
    switch (ev->reservation_result->status) {
    case LINLI__RESERVATION_RESULT__STATUS__RESERVED: r->reserved++; break;
    case LINLI__RESERVATION_RESULT__STATUS__REJECTED: r->rejected++; break;
    case LINLI__RESERVATION_RESULT__STATUS__COMMITTED: r->committed++; break;
    case LINLI__RESERVATION_RESULT__STATUS__RELEASED: r->released++; break;
    default: break;
    }
  }
  linli__reservation_event__free_unpacked(ev, NULL);
}

static int want_count;
static int reached(void *arg) {
  return ((struct results *)arg)->count >= want_count;
}

static pid_t start_reserver(void) {
  char bin[512], log[256];
  linli_test_binary_path("consumers/reserver/linli-reserver", bin, sizeof bin);
  snprintf(log, sizeof log, "/tmp/%s-reserver.log", run);
  char *argv[] = {bin, NULL};
  char *env[] = {env_group, env_inst, "LINLI_METRICS_PORT=0",
                 "LINLI_RUNNER_FLUSH_INTERVAL_MS=50", NULL};
  return linli_test_spawn_tied(argv, env, log);
}


static pid_t start_ledger(void) {
  char bin[512], log[256];
  linli_test_binary_path("consumers/ledger/linli-ledger", bin, sizeof bin);
  snprintf(log, sizeof log, "/tmp/%s-ledger.log", run);
  char *argv[] = {bin, NULL};
  char *env[] = {env_ledger_group, env_ledger_inst, "LINLI_METRICS_PORT=0",
                 "LINLI_CRYPTO_KEY="
                 "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
                 NULL};
  return linli_test_spawn_tied(argv, env, log);
}

static int pg_exec(const char *sql, const char *a, const char *b) {
  const linli_config_t *cfg = linli_test_config();
  linli_pg_t *pg = NULL;
  char err[256];
  if (linli_pg_connect(linli_config_str(cfg, "pg.conninfo"), 10000, &pg, err,
                       sizeof err) != LINLI_OK)
    return -1;
  const char *params[] = {a, b};
  int rc = linli_pg_exec(pg, sql, 2, params, NULL, err, sizeof err);
  linli_pg_free(pg);
  return rc;
}

static linli_redis_t *redis(void) {
  const linli_config_t *cfg = linli_test_config();
  linli_redis_t *r = NULL;
  char err[256];
  if (linli_redis_connect(linli_config_str(cfg, "redis.host"),
                          (int)linli_config_int(cfg, "redis.port"),
                          linli_config_str(cfg, "redis.password"), 5000, &r,
                          err, sizeof err) != LINLI_OK)
    return NULL;
  return r;
}

static long long redis_int(linli_redis_t *r, const char *argv0,
                           const char *key, const char *field) {
  const char *argv[] = {argv0, key, field};
  redisReply *rep = NULL;
  long long v = -1;
  if (linli_redis_command(r, 3, argv, NULL, &rep) == LINLI_OK) {
    if (rep->type == REDIS_REPLY_STRING)
      v = atoll(rep->str);
    else if (rep->type == REDIS_REPLY_INTEGER)
      v = rep->integer;
    else if (rep->type == REDIS_REPLY_NIL)
      v = 0;
    freeReplyObject(rep);
  }
  return v;
}

static void wh_key(char *buf, size_t len, const char *what) {
  char tag[96];
  dom_rsv_tag(tag, sizeof tag, wh);
  linli_redis_key(buf, len, tag, what);
}

/* Delete every key of the warehouse and this run's order index entries:
 * the warehouse's hot state is lost. */
static void wipe_warehouse(linli_redis_t *r) {
  char pattern[128];
  dom_rsv_key(pattern, sizeof pattern, wh, "*");
  const char *cursor = "0";
  char next[32];
  do {
    const char *argv[] = {"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"};
    redisReply *rep = NULL;
    if (linli_redis_command(r, 6, argv, NULL, &rep) != LINLI_OK)
      return;
    snprintf(next, sizeof next, "%s", rep->element[0]->str);
    for (size_t i = 0; i < rep->element[1]->elements; i++) {
      const char *del[] = {"DEL", rep->element[1]->element[i]->str};
      redisReply *d = NULL;
      if (linli_redis_command(r, 2, del, NULL, &d) == LINLI_OK)
        freeReplyObject(d);
    }
    freeReplyObject(rep);
    cursor = next;
  } while (strcmp(cursor, "0") != 0);
  for (int n = 1; n <= 12; n++) {
    char oid[96], key[160];
    order_id(oid, sizeof oid, n);
    dom_rsv_order_wh_key(key, sizeof key, oid);
    const char *del[] = {"DEL", key};
    redisReply *d = NULL;
    if (linli_redis_command(r, 2, del, NULL, &d) == LINLI_OK)
      freeReplyObject(d);
  }
}

static void test_audit_and_rebuild(void) {
  linli_test_unique("aud", run, sizeof run);
  snprintf(wh, sizeof wh, "%s-w", run);
  snprintf(sku, sizeof sku, "%s-rice", run);
  snprintf(group, sizeof group, "%s-g", run);
  snprintf(inst, sizeof inst, "%s-i", run);
  snprintf(env_group, sizeof env_group, "LINLI_RUNNER_GROUP=%s", group);
  snprintf(env_inst, sizeof env_inst, "LINLI_RUNNER_INSTANCE_ID=%s", inst);
  snprintf(ledger_group, sizeof ledger_group, "%s-lg", run);
  snprintf(env_ledger_group, sizeof env_ledger_group, "LINLI_RUNNER_GROUP=%s",
           ledger_group);
  snprintf(env_ledger_inst, sizeof env_ledger_inst,
           "LINLI_RUNNER_INSTANCE_ID=%s-l", run);
  CU_ASSERT_EQUAL_FATAL(linli_test_ensure_topic(LINLI_TOPIC_CATALOG, 3,
                                                "compact"), 0);
  const char *others[] = {LINLI_TOPIC_INVENTORY, LINLI_TOPIC_ORDERS,
                          LINLI_TOPIC_RESERVATIONS, LINLI_TOPIC_FULFILLMENT,
                          LINLI_TOPIC_REFUNDS, LINLI_TOPIC_DELIVERY, NULL};
  for (int i = 0; others[i]; i++)
    CU_ASSERT_EQUAL_FATAL(linli_test_ensure_topic(others[i], 6, NULL), 0);
  CU_ASSERT_EQUAL_FATAL(linli_test_ensure_topic(LINLI_TOPIC_DLQ, 3, NULL), 0);
  CU_ASSERT_EQUAL_FATAL(linli_test_group_start_at_end(group, inputs), 0);
  CU_ASSERT_EQUAL_FATAL(linli_test_ledger_start_at_end(ledger_group), 0);
  pid_t ledger = start_ledger();
  CU_ASSERT_FATAL(ledger > 0);
  const char *outs[] = {LINLI_TOPIC_RESERVATIONS, NULL};
  linli_test_reader_t *reader = linli_test_reader_new(outs, 1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(reader);

  /* The day: 10 units; 6 orders of 2 (5 reserved, 1 out of stock); two
   * paid, one of them twice with another transaction (refund), one
   * cancelled. */
  CU_ASSERT_EQUAL_FATAL(list_sku(), 0);
  CU_ASSERT_EQUAL_FATAL(restock(10), 0);
  pid_t pid = start_reserver();
  CU_ASSERT_FATAL(pid > 0);
  /* Topics are read in no particular order: let the reserver take the
   * catalog and the stock before the first order arrives. */
  linli_redis_t *r = redis();
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  char k_avail[160];
  wh_key(k_avail, sizeof k_avail, "avail");
  int64_t deadline = linli_test_now_ms() + 60000;
  while ((redis_int(r, "HGET", k_avail, sku) != 10 ||
          redis_int(r, "HEXISTS", DOM_RSV_KEY_CATALOG, sku) != 1) &&
         linli_test_now_ms() < deadline)
    usleep(100 * 1000);
  CU_ASSERT_EQUAL_FATAL(redis_int(r, "HGET", k_avail, sku), 10);
  struct results res = {0};
  want_count = 1;
  CU_ASSERT_EQUAL_FATAL(place(1, 2), 0);
  linli_test_reader_poll(reader, 60000, count_result, &res, reached);
  CU_ASSERT_EQUAL_FATAL(res.reserved, 1); /* catalog and stock were loaded */
  for (int n = 2; n <= 6; n++)
    CU_ASSERT_EQUAL(place(n, 2), 0);
  CU_ASSERT_EQUAL(pay(1, "tx-1", 7980), 0);
  CU_ASSERT_EQUAL(pay(2, "tx-2", 7980), 0);
  CU_ASSERT_EQUAL(pay(1, "tx-1b", 7980), 0); /* double payment */
  CU_ASSERT_EQUAL(cancel(3), 0);
  want_count = 10; /* 6 placements, 2 commits, 1 double, 1 release */
  linli_test_reader_poll(reader, 60000, count_result, &res, reached);
  CU_ASSERT_EQUAL(res.count, 10);
  CU_ASSERT_EQUAL(res.reserved, 5);
  CU_ASSERT_EQUAL(res.rejected, 2); /* out of stock + double payment */
  CU_ASSERT_EQUAL(res.committed, 2);
  CU_ASSERT_EQUAL(res.released, 1);
  int status = linli_test_stop(pid, 0);
  CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);

  /* Records every reader refuses (libdomain), in the warehouse's log: an
   * order of zero units and a result no reserver wrote. The ledger sends
   * them to the DLQ; the audit leaves them out as it does, and passes. */
  CU_ASSERT_EQUAL(place(99, 0), 0);
  CU_ASSERT_EQUAL(bad_result(), 0);

  char out[256];
  snprintf(out, sizeof out, "/tmp/%s-audit.out", run);
  char *audit[] = {"audit", "--warehouse", wh, NULL};
  /* The ledger records asynchronously: the audit passes once it caught up. */
  int arc = -1;
  for (int i = 0; i < 60 && arc != 0; i++) {
    if (i)
      sleep(1);
    arc = linli_test_replay(audit, out);
  }
  CU_ASSERT_EQUAL(arc, 0);

  /* A deliberate change to PostgreSQL: the audit names it. */
  CU_ASSERT_EQUAL(pg_exec("UPDATE inventory SET sold = sold + 1, available = available - 1 "
                          "WHERE "
                          "warehouse_id = $1 AND sku_id = $2", wh, sku),
                  LINLI_OK);
  CU_ASSERT_EQUAL(linli_test_replay(audit, out), 1);
  char pg_needle[256];
  snprintf(pg_needle, sizeof pg_needle,
           "%s/%s: PostgreSQL inventory.sold = 5, the log says 4", wh, sku);
  CU_ASSERT(linli_test_file_contains(out, pg_needle));
  CU_ASSERT_EQUAL(pg_exec("UPDATE inventory SET sold = sold - 1, available = available + 1 "
                          "WHERE "
                          "warehouse_id = $1 AND sku_id = $2", wh, sku),
                  LINLI_OK);
  CU_ASSERT_EQUAL(linli_test_replay(audit, out), 0);

  /* A deliberate change to Redis: the audit names it. */
  CU_ASSERT_EQUAL(redis_int(r, "HGET", k_avail, sku), 2);
  const char *bump[] = {"HINCRBY", k_avail, sku, "3"};
  redisReply *rep = NULL;
  CU_ASSERT_EQUAL(linli_redis_command(r, 4, bump, NULL, &rep), LINLI_OK);
  freeReplyObject(rep);
  CU_ASSERT_EQUAL(linli_test_replay(audit, out), 1);
  char needle[256];
  snprintf(needle, sizeof needle, "%s/%s: Redis avail = 5, the log says 2", wh,
           sku);
  CU_ASSERT(linli_test_file_contains(out, needle));

  /* Lose the warehouse's hot state; rebuild restores it exactly. */
  wipe_warehouse(r);
  CU_ASSERT_EQUAL(redis_int(r, "HGET", k_avail, sku), 0);
  char *rebuild[] = {"rebuild", "--target", "redis", "--warehouse", wh,
                     "--group", group, "--force", NULL};
  CU_ASSERT_EQUAL(linli_test_replay(rebuild, out), 0);
  CU_ASSERT_EQUAL(redis_int(r, "HGET", k_avail, sku), 2);
  CU_ASSERT_EQUAL(linli_test_replay(audit, out), 0);

  /* The pipeline continues with no oversell: 2 units left, three more
   * orders of 2 -> exactly one reserved; a payment for a rebuilt order
   * still commits; the double payment is not refunded twice. */
  pid = start_reserver();
  CU_ASSERT_FATAL(pid > 0);
  for (int n = 7; n <= 9; n++)
    CU_ASSERT_EQUAL(place(n, 2), 0);
  CU_ASSERT_EQUAL(pay(4, "tx-4", 7980), 0);
  CU_ASSERT_EQUAL(pay(1, "tx-1b", 7980), 0); /* same notice again: nothing */
  want_count = 14;
  linli_test_reader_poll(reader, 60000, count_result, &res, reached);
  CU_ASSERT_EQUAL(res.count, 14);
  CU_ASSERT_EQUAL(res.reserved, 6);
  CU_ASSERT_EQUAL(res.committed, 3);
  CU_ASSERT_EQUAL(redis_int(r, "HGET", k_avail, sku), 0);
  status = linli_test_stop(pid, 0);
  CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  arc = -1;
  for (int i = 0; i < 60 && arc != 0; i++) {
    if (i)
      sleep(1);
    arc = linli_test_replay(audit, out);
  }
  CU_ASSERT_EQUAL(arc, 0);
  status = linli_test_stop(ledger, 0);
  CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  linli_redis_free(r);
  linli_test_reader_free(reader);
}

int linli_test_register(void) {
  CU_pSuite s = CU_add_suite("audit and rebuild (real stack)", NULL, NULL);
  if (!s)
    return -1;
  CU_add_test(s, "audit, deliberate change, rebuild, continue",
              test_audit_and_rebuild);
  return 0;
}
