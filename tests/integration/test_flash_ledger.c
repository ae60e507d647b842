/*
 * test_flash_ledger.c - the flash sale, recorded: 2,000 one-unit orders
 * from 500 users for 100 units, judged by 3 real linli-reserver instances
 * on the 6 partitions of linli.orders.v1, and recorded by a real
 * linli-ledger in PostgreSQL. The ledger agrees with Redis:
 *  - PostgreSQL inventory (available, reserved, sold) of the SKU equals the
 *    reserver's {w:W}:avail/resv/sold, and both are 0/100/0;
 *  - exactly 100 orders RESERVED and 1,900 REJECTED (out of stock) in
 *    PostgreSQL's orders and reservations, every event recorded once;
 *  - `linli-replay audit --warehouse W` (log vs PostgreSQL vs Redis)
 *    exits 0.
 *
 * The topics are the shared linli.*.v1 ones: every id starts with a prefix
 * unique to the run; the reservers run in a consumer group of their own
 * that starts at the current end of their inputs, and the ledger's group
 * starts at the current end of every topic (its offsets live in
 * PostgreSQL), so it records this run and not the whole shared log. No
 * other reserver may consume linli.orders.v1 meanwhile (it would judge the
 * orders too): the test waits until none does.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <sodium.h>

#include "catalog.pb-c.h"
#include "inventory.pb-c.h"
#include "linli/clock.h"
#include "linli/error.h"
#include "linli/ids.h"
#include "linli/redis.h"
#include "domain/schema.h"
#include "linli_test.h"
#include "orders.pb-c.h"
#include "reservations.pb-c.h"
#include "domain/reserver_keys.h"

#define FS_ORDERS 2000
#define FS_USERS 500
#define FS_UNITS 100
#define FS_INSTANCES 3

#define T_ORDERS LINLI_TOPIC_ORDERS
#define T_INVENTORY LINLI_TOPIC_INVENTORY
#define T_CATALOG LINLI_TOPIC_CATALOG
#define T_RESERVATIONS LINLI_TOPIC_RESERVATIONS

/* The reserver's inputs (its group starts at their end). */
static const char *const INPUTS[] = {T_CATALOG, T_INVENTORY, T_ORDERS,
                                     "linli.groupbuy.settlements.v1", NULL};

static char RUN[48], wh[80], sku[80], prefix[80];
static char rsv_group[96], ledger_group[96];
static PGconn *db;
static linli_redis_t *redis;
static linli_test_reader_t *reader;

/* ------------------------------------------------------------- events */

static void meta_fill(Linli__Meta *m, char *eid) {
  linli_id_new(eid, LINLI_ID_BUFSZ);
  m->event_id = eid;
  m->occurred_at_ms = linli_clock_now_ms();
  m->producer = (char *)"test_flash_ledger";
  m->schema_version = 1;
}

/* Pack msg into a malloc'd buffer. */
static uint8_t *pack(const ProtobufCMessage *msg, size_t *len) {
  *len = protobuf_c_message_get_packed_size(msg);
  uint8_t *p = malloc(*len ? *len : 1);
  if (p != NULL)
    protobuf_c_message_pack(msg, p);
  return p;
}

static int put(const char *topic, const char *key,
               const ProtobufCMessage *msg) {
  size_t len = 0;
  uint8_t *p = pack(msg, &len);
  int rc = p ? linli_test_produce(topic, key, p, len) : -1;
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
  s.name = (char *)"flash sale strawberries";
  s.storage_class = LINLI__STORAGE_CLASS__CHILLED;
  s.weight_g = 500;
  s.list_price_fen = 100;
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

/* A one-unit OrderPlaced of order i (user i % FS_USERS); malloc'd. */
static uint8_t *placed(int i, char *order, size_t olen, size_t *len) {
  Linli__OrderEvent ev = LINLI__ORDER_EVENT__INIT;
  Linli__Meta meta = LINLI__META__INIT;
  Linli__OrderPlaced op = LINLI__ORDER_PLACED__INIT;
  Linli__OrderLine line = LINLI__ORDER_LINE__INIT;
  Linli__OrderLine *lines[] = {&line};
  Linli__PickupDelivery pick = LINLI__PICKUP_DELIVERY__INIT;
  char eid[LINLI_ID_BUFSZ], user[96];
  meta_fill(&meta, eid);
  snprintf(order, olen, "%s%d", prefix, i);
  snprintf(user, sizeof user, "%s-u%d", RUN, i % FS_USERS);
  line.sku_id = sku;
  line.quantity = 1;
  line.unit_price_fen = 100;
  pick.pickup_point_id = (char *)"pp-1";
  op.order_id = order;
  op.app_id = (char *)"app-flash";
  op.user_id = user;
  op.warehouse_id = wh;
  op.n_lines = 1;
  op.lines = lines;
  op.total_fen = 100;
  op.delivery_case = LINLI__ORDER_PLACED__DELIVERY_PICKUP;
  op.pickup = &pick;
  op.placed_at_ms = meta.occurred_at_ms;
  ev.meta = &meta;
  ev.event_case = LINLI__ORDER_EVENT__EVENT_ORDER_PLACED;
  ev.order_placed = &op;
  return pack(&ev.base, len);
}

/* --------------------------------------------------------- reservers */

/* What the reservers decided for this run's orders. */
static int *decided; /* per order: results seen */
static int n_results, n_reserved, n_rejected;

static void collect(void *arg, const rd_kafka_message_t *m) {
  (void)arg;
  Linli__ReservationEvent *ev = linli__reservation_event__unpack(
      NULL, m->len, (const uint8_t *)m->payload);
  if (ev == NULL)
    return;
  const Linli__ReservationResult *r = ev->reservation_result;
  size_t pl = strlen(prefix);
  if (ev->event_case == LINLI__RESERVATION_EVENT__EVENT_RESERVATION_RESULT &&
      r->order_id && strncmp(r->order_id, prefix, pl) == 0) {
    int i = atoi(r->order_id + pl);
    if (i >= 0 && i < FS_ORDERS)
      decided[i]++;
    n_results++;
    n_reserved += r->status == LINLI__RESERVATION_RESULT__STATUS__RESERVED;
    n_rejected += r->status == LINLI__RESERVATION_RESULT__STATUS__REJECTED;
  }
  linli__reservation_event__free_unpacked(ev, NULL);
}

static int all_decided(void *arg) {
  (void)arg;
  return n_results >= FS_ORDERS;
}

static pid_t spawn_reserver(int i) {
  char path[512], e_group[160], e_inst[160], log[256];
  linli_test_binary_path("consumers/reserver/linli-reserver", path,
                         sizeof path);
  snprintf(e_group, sizeof e_group, "LINLI_RUNNER_GROUP=%s", rsv_group);
  snprintf(e_inst, sizeof e_inst, "LINLI_RUNNER_INSTANCE_ID=%s-r%d", RUN, i);
  snprintf(log, sizeof log, "/tmp/%s-r%d.log", RUN, i);
  char *env[] = {e_group,
                 e_inst,
                 (char *)"LINLI_METRICS_PORT=0",
                 (char *)"LINLI_RUNNER_FLUSH_INTERVAL_MS=50",
                 NULL};
  char *argv[] = {path, NULL};
  return linli_test_spawn_tied(argv, env, log);
}

/* Another run's reserver on linli.orders.v1 would judge our orders too:
 * wait, within reason, until nobody else consumes it. */
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
  if (n > 0)
    fprintf(stderr, "\n  other consumers of %s still running (%s): "
            "results may be reported twice\n", T_ORDERS, names);
}

/* ------------------------------------------------------------ ledger */


static pid_t spawn_ledger(void) {
  char inst[160], log[256];
  snprintf(inst, sizeof inst, "%s-l", RUN);
  snprintf(log, sizeof log, "/tmp/%s-ledger.log", RUN);
  return linli_test_spawn_ledger(ledger_group, inst, log, NULL);
}

/* ------------------------------------------------------------ stores */

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

static long q_long(const char *sql, const char *a, const char *b) {
  char *v = q_text(sql, a, b);
  long n = v ? strtol(v, NULL, 10) : -1;
  free(v);
  return n;
}

/* {w:<wh>}:<hash> field sku as a number; 0 if absent, -1 on error. */
static long long stock(const char *hash) {
  char tag[128], key[256];
  dom_rsv_tag(tag, sizeof tag, wh);
  linli_redis_key(key, sizeof key, tag, hash);
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

/* "RESERVED|REJECTED" counts of this run's orders in PostgreSQL. */
static char *pg_states(void) {
  char like[96];
  snprintf(like, sizeof like, "%s%%", prefix);
  return q_text("SELECT concat_ws('|', count(*) FILTER (WHERE state = "
                "'RESERVED'), count(*) FILTER (WHERE state = 'REJECTED')) "
                "FROM orders WHERE order_id LIKE $1",
                like, NULL);
}

/* ------------------------------------------------------------- suite */

/* Every topic of config/topics.conf exists (the ledger reads them all). */
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
  decided = calloc(FS_ORDERS, sizeof *decided);
  return decided ? 0 : -1;
}

static int suite_cleanup(void) {
  if (db != NULL && ledger_group[0]) {
    /* The run's ledger group is never used again. */
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
  free(decided);
  decided = NULL;
  return 0;
}

/* ---------------------------------------------------------------- test */

static int stopped_ok(pid_t pid, const char *what) {
  char log[128];
  snprintf(log, sizeof log, "/tmp/%s-*.log", RUN);
  return linli_test_stop_clean(&pid, what, log);
}

static void test_flash_sale_recorded(void) {
  linli_test_unique("fsl", RUN, sizeof RUN);
  snprintf(wh, sizeof wh, "%s-W", RUN);
  snprintf(sku, sizeof sku, "%s-S", RUN);
  snprintf(prefix, sizeof prefix, "%s-o", RUN);
  snprintf(rsv_group, sizeof rsv_group, "%s-rg", RUN);
  snprintf(ledger_group, sizeof ledger_group, "%s-lg", RUN);
  const char *outs[] = {T_RESERVATIONS, NULL};
  reader = linli_test_reader_new(outs, 1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(reader);

  /* The recorder first, then the judges. */
  CU_ASSERT_EQUAL_FATAL(linli_test_ledger_start_at_end(ledger_group), 0);
  pid_t ledger = spawn_ledger();
  CU_ASSERT_FATAL(ledger > 0);
  wait_orders_idle();
  CU_ASSERT_EQUAL_FATAL(linli_test_group_start_at_end(rsv_group, INPUTS), 0);
  pid_t rs[FS_INSTANCES];
  for (int i = 0; i < FS_INSTANCES; i++) {
    rs[i] = spawn_reserver(i);
    CU_ASSERT_FATAL(rs[i] > 0);
  }

  /* 100 units in two restocks, then 2,000 orders all at once. */
  CU_ASSERT_EQUAL_FATAL(list_sku(), 0);
  CU_ASSERT_EQUAL_FATAL(restock(60), 0);
  CU_ASSERT_EQUAL_FATAL(restock(FS_UNITS - 60), 0);
  int64_t deadline = linli_test_now_ms() + 60000;
  while (stock("avail") != FS_UNITS && linli_test_now_ms() < deadline)
    usleep(100 * 1000);
  CU_ASSERT_EQUAL_FATAL(stock("avail"), FS_UNITS);

  char(*ids)[96] = calloc(FS_ORDERS, sizeof *ids);
  const char **keys = calloc(FS_ORDERS, sizeof *keys);
  const void **vals = calloc(FS_ORDERS, sizeof *vals);
  size_t *lens = calloc(FS_ORDERS, sizeof *lens);
  CU_ASSERT_FATAL(ids && keys && vals && lens);
  int packed = 0;
  for (int i = 0; i < FS_ORDERS; i++) {
    vals[i] = placed(i, ids[i], sizeof ids[i], &lens[i]);
    keys[i] = ids[i];
    packed += vals[i] != NULL;
  }
  CU_ASSERT_EQUAL_FATAL(packed, FS_ORDERS);
  int64_t t0 = linli_test_now_ms();
  CU_ASSERT_EQUAL(linli_test_produce_batch(T_ORDERS, FS_ORDERS, keys, vals,
                                           lens),
                  0);
  for (int i = 0; i < FS_ORDERS; i++)
    free((void *)vals[i]);
  free(lens);
  free(vals);
  free(keys);
  free(ids);

  /* The reservers' judgement: one result per order, 100 reserved. */
  linli_test_reader_poll(reader, 90000, collect, NULL, all_decided);
  int64_t judged = linli_test_now_ms() - t0;
  linli_test_reader_poll(reader, 1000, collect, NULL, NULL); /* duplicates */
  int once = 0;
  for (int i = 0; i < FS_ORDERS; i++)
    once += decided[i] == 1;
  CU_ASSERT_EQUAL(n_results, FS_ORDERS);
  CU_ASSERT_EQUAL(once, FS_ORDERS);
  CU_ASSERT_EQUAL(n_reserved, FS_UNITS);
  CU_ASSERT_EQUAL(n_rejected, FS_ORDERS - FS_UNITS);

  /* The record catches up: 100 RESERVED, 1,900 REJECTED. */
  char want[32];
  snprintf(want, sizeof want, "%d|%d", FS_UNITS, FS_ORDERS - FS_UNITS);
  deadline = linli_test_now_ms() + 90000;
  char *states = NULL;
  for (;;) {
    free(states);
    states = pg_states();
    if ((states && strcmp(states, want) == 0) ||
        linli_test_now_ms() > deadline)
      break;
    usleep(200 * 1000);
  }
  fprintf(stderr, "\n  judged in %lld ms, recorded in %lld ms\n",
          (long long)judged, (long long)(linli_test_now_ms() - t0));
  CU_ASSERT_PTR_NOT_NULL(states);
  if (states != NULL)
    CU_ASSERT_STRING_EQUAL(states, want);
  free(states);

  /* The ledger agrees with Redis. */
  char *inv = q_text("SELECT concat_ws('|', available, reserved, sold) FROM "
                     "inventory WHERE warehouse_id = $1 AND sku_id = $2",
                     wh, sku);
  char hot[96];
  snprintf(hot, sizeof hot, "%lld|%lld|%lld", stock("avail"), stock("resv"),
           stock("sold"));
  CU_ASSERT_PTR_NOT_NULL(inv);
  if (inv != NULL) {
    CU_ASSERT_STRING_EQUAL(inv, hot);
    CU_ASSERT_STRING_EQUAL(inv, "0|100|0");
    if (strcmp(inv, hot) != 0)
      fprintf(stderr, "  PostgreSQL %s, Redis %s\n", inv, hot);
  }
  free(inv);
  char like[96];
  snprintf(like, sizeof like, "%s%%", prefix);
  CU_ASSERT_EQUAL(q_long("SELECT count(*) FROM reservations WHERE order_id "
                         "LIKE $1 AND status = 'RESERVED'", like, NULL),
                  FS_UNITS);
  CU_ASSERT_EQUAL(q_long("SELECT count(*) FROM reservations WHERE order_id "
                         "LIKE $1 AND status = 'REJECTED' AND reason = "
                         "'OUT_OF_STOCK'", like, NULL),
                  FS_ORDERS - FS_UNITS);
  /* every placement and every result once */
  CU_ASSERT_EQUAL(q_long("SELECT count(*) FROM order_events WHERE order_id "
                         "LIKE $1", like, NULL),
                  2 * FS_ORDERS);
  CU_ASSERT_EQUAL(q_long("SELECT count(*) FROM stock_movements WHERE "
                         "warehouse_id = $1 AND sku_id = $2", wh, sku),
                  2 + FS_UNITS);
  CU_ASSERT_EQUAL(q_long("SELECT count(DISTINCT user_id) FROM orders WHERE "
                         "order_id LIKE $1", like, NULL),
                  FS_USERS);

  /* The log, the record and the hot state agree. */
  char out[256];
  snprintf(out, sizeof out, "/tmp/%s-audit.out", RUN);
  char *audit[] = {(char *)"audit", (char *)"--warehouse", wh, NULL};
  int arc = -1;
  for (int i = 0; i < 3 && arc != 0; i++) {
    if (i)
      sleep(2);
    arc = linli_test_replay(audit, out);
  }
  CU_ASSERT_EQUAL(arc, 0);
  if (arc != 0) {
    char cmd[400];
    snprintf(cmd, sizeof cmd, "tail -n 20 '%s' >&2", out);
    if (system(cmd) != 0)
      fprintf(stderr, "  (no audit output)\n");
  }

  /* Everything drains and exits 0 (and no leak under ASan). */
  for (int i = 0; i < FS_INSTANCES; i++)
    CU_ASSERT(stopped_ok(rs[i], "reserver"));
  CU_ASSERT(stopped_ok(ledger, "ledger"));
  if (CU_get_number_of_failures() == 0) {
    char log[256];
    for (int i = 0; i < FS_INSTANCES; i++) {
      snprintf(log, sizeof log, "/tmp/%s-r%d.log", RUN, i);
      unlink(log);
    }
    snprintf(log, sizeof log, "/tmp/%s-ledger.log", RUN);
    unlink(log);
    unlink(out);
  }
}

int linli_test_register(void) {
  CU_pSuite s = CU_add_suite("flash sale recorded by the ledger (real stack)",
                             suite_init, suite_cleanup);
  if (s == NULL ||
      CU_add_test(s, "2000 orders, 500 users, 100 units, 3 reservers: the "
                     "ledger agrees with Redis",
                  test_flash_sale_recorded) == NULL)
    return -1;
  return 0;
}
