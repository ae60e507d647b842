/*
 * test_reserver.c - linli-reserver against the real broker, Redis and
 * PostgreSQL: the spawned binary consumes linli.orders/inventory/catalog.v1
 * and the test reads what it wrote to linli.reservations/fulfillment/
 * refunds/dlq.v1 (and the OrderExpired its clock wrote to linli.orders.v1).
 *
 * The topics are the fixed, shared linli.*.v1 ones, so every id in this
 * file starts with a prefix unique to the run and the test reads only what
 * was written after it started. Each suite runs its reservers in a consumer
 * group of its own (runner.group) that starts at the current end of the
 * input topics. Suites never overlap: two groups processing the same orders
 * would both report them.
 *
 * Suites:
 *  - scenarios: catalog rejections, all-or-nothing multi-line orders,
 *    duplicates (also across warehouses), payment (repeat, double), cancel,
 *    bad input to the DLQ, a warehouse Redis loses while the reserver runs
 *    (reloaded from the record), expiry with an injected clock (it moves the
 *    clock: after the others), a drained stop, and a new group re-reading
 *    the log (same events again; an input whose outcome expired skipped);
 *  - flash sale: 2,000 one-unit orders for 100 units over 3 instances, once
 *    undisturbed and once with an instance SIGKILLed mid-way; then a
 *    warehouse whose first restock the record (the ledger) holds before
 *    any reserver saw it: loaded once, not counted twice.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "catalog.pb-c.h"
#include "fulfillment.pb-c.h"
#include "inventory.pb-c.h"
#include "linli/clock.h"
#include "linli/error.h"
#include "linli/ids.h"
#include "linli/kafka.h"
#include "linli/pg.h"
#include "linli/redis.h"
#include "linli_test.h"
#include "orders.pb-c.h"
#include "refunds.pb-c.h"
#include "reservations.pb-c.h"
#include "domain/topics.h"
#include "domain/reserver_keys.h"

#define T_ORDERS LINLI_TOPIC_ORDERS
#define T_INVENTORY LINLI_TOPIC_INVENTORY
#define T_CATALOG LINLI_TOPIC_CATALOG
#define T_RESERVATIONS LINLI_TOPIC_RESERVATIONS
#define T_FULFILLMENT LINLI_TOPIC_FULFILLMENT
#define T_REFUNDS LINLI_TOPIC_REFUNDS
#define T_DLQ LINLI_TOPIC_DLQ

#define ST_RESERVED LINLI__RESERVATION_RESULT__STATUS__RESERVED
#define ST_REJECTED LINLI__RESERVATION_RESULT__STATUS__REJECTED
#define ST_RELEASED LINLI__RESERVATION_RESULT__STATUS__RELEASED
#define ST_COMMITTED LINLI__RESERVATION_RESULT__STATUS__COMMITTED
#define ANY (-1)

/* The reserver's inputs (its group starts at their end). */
static const char *const INPUTS[] = {T_CATALOG, T_INVENTORY, T_ORDERS,
                                     LINLI_TOPIC_SETTLEMENTS, NULL};

/* ================================================================ store */

/* What the reserver wrote, decoded; only records of this run are kept. */
struct rres {
  char order[72], user[72], txn[72], detail[200], eid[72];
  int status, reason;
  int64_t expires, total, amount;
  size_t nlines;
  int nshort;
  char ssku[4][72];
  int sreq[4], savail[4];
};
struct rrefund {
  char order[72], txn[72], refund_id[72], cause_topic[64];
  int reason;
  int64_t amount;
};
struct rful {
  char order[72], wh[72], key[72];
  int sc;
  size_t nlines;
};
struct rexp {
  char order[72], eid[72];
  int32_t part;
  int64_t deadline;
};
struct rdlq {
  char key[80], topic[64], part[16], off[32], consumer[64], code[32];
  char reason[600];
  size_t len;
};

#define VEC(T)                                                                 \
  struct {                                                                     \
    T *v;                                                                      \
    size_t n, cap;                                                             \
  }

static struct {
  VEC(struct rres) res;
  VEC(struct rrefund) ref;
  VEC(struct rful) ful;
  VEC(struct rexp) exp;
  VEC(struct rdlq) dlq;
} st;

static char RUN[48];                /* prefix of every id of this run */
static linli_test_reader_t *reader; /* outputs + orders, from the run start */
static linli_redis_t *redis;

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
    CU_ASSERT_PTR_NOT_NULL(ev);
    if (!ev)
      return;
    const Linli__ReservationResult *r = ev->reservation_result;
    if (r && ours(r->order_id)) {
      struct rres *e = PUSH(st.res);
      cpy(e->order, sizeof e->order, r->order_id);
      cpy(e->user, sizeof e->user, r->user_id);
      cpy(e->txn, sizeof e->txn, r->payment_txn_id);
      cpy(e->detail, sizeof e->detail, r->detail);
      cpy(e->eid, sizeof e->eid, ev->meta ? ev->meta->event_id : "");
      e->status = r->status;
      e->reason = r->reason;
      e->expires = r->expires_at_ms;
      e->total = r->total_fen;
      e->amount = r->amount_fen;
      e->nlines = r->n_lines;
      /* The record's key is the order (same partition as its history). */
      CU_ASSERT(m->key_len == strlen(r->order_id) &&
                memcmp(m->key, r->order_id, m->key_len) == 0);
      for (size_t i = 0; i < r->n_shortages && i < 4; i++) {
        cpy(e->ssku[i], sizeof e->ssku[i], r->shortages[i]->sku_id);
        e->sreq[i] = r->shortages[i]->requested;
        e->savail[i] = r->shortages[i]->available;
      }
      e->nshort = (int)r->n_shortages;
    }
    linli__reservation_event__free_unpacked(ev, NULL);
  } else if (strcmp(topic, T_REFUNDS) == 0) {
    Linli__RefundEvent *ev = linli__refund_event__unpack(NULL, m->len, p);
    CU_ASSERT_PTR_NOT_NULL(ev);
    if (!ev)
      return;
    const Linli__RefundRequested *r = ev->refund_requested;
    if (r && ours(r->order_id)) {
      struct rrefund *e = PUSH(st.ref);
      cpy(e->order, sizeof e->order, r->order_id);
      cpy(e->txn, sizeof e->txn, r->payment_txn_id);
      cpy(e->refund_id, sizeof e->refund_id, r->refund_id);
      cpy(e->cause_topic, sizeof e->cause_topic, r->cause_topic);
      e->reason = r->reason;
      e->amount = r->amount_fen;
    }
    linli__refund_event__free_unpacked(ev, NULL);
  } else if (strcmp(topic, T_FULFILLMENT) == 0) {
    Linli__FulfillmentEvent *ev =
        linli__fulfillment_event__unpack(NULL, m->len, p);
    if (!ev)
      return; /* other producers' test garbage is not ours to judge */
    const Linli__FulfillmentItem *f = ev->fulfillment_item;
    if (f && ours(f->order_id)) {
      struct rful *e = PUSH(st.ful);
      cpy(e->order, sizeof e->order, f->order_id);
      cpy(e->wh, sizeof e->wh, f->warehouse_id);
      size_t kl = m->key_len < sizeof e->key - 1 ? m->key_len
                                                 : sizeof e->key - 1;
      memcpy(e->key, m->key, kl);
      e->sc = f->storage_class;
      e->nlines = f->n_lines;
    }
    linli__fulfillment_event__free_unpacked(ev, NULL);
  } else if (strcmp(topic, T_ORDERS) == 0) {
    Linli__OrderEvent *ev = linli__order_event__unpack(NULL, m->len, p);
    if (!ev)
      return; /* our own bad input */
    if (ev->event_case == LINLI__ORDER_EVENT__EVENT_ORDER_EXPIRED &&
        ours(ev->order_expired->order_id)) {
      struct rexp *e = PUSH(st.exp);
      cpy(e->order, sizeof e->order, ev->order_expired->order_id);
      cpy(e->eid, sizeof e->eid, ev->meta ? ev->meta->event_id : "");
      e->part = m->partition;
      e->deadline = ev->order_expired->deadline_ms;
    }
    linli__order_event__free_unpacked(ev, NULL);
  } else if (strcmp(topic, T_DLQ) == 0) {
    char key[80] = "";
    size_t kl = m->key_len < sizeof key - 1 ? m->key_len : sizeof key - 1;
    if (m->key)
      memcpy(key, m->key, kl);
    key[kl] = '\0';
    if (!ours(key))
      return;
    struct rdlq *e = PUSH(st.dlq);
    cpy(e->key, sizeof e->key, key);
    linli_test_header(m, LINLI_DLQ_H_TOPIC, e->topic, sizeof e->topic);
    linli_test_header(m, LINLI_DLQ_H_PARTITION, e->part, sizeof e->part);
    linli_test_header(m, LINLI_DLQ_H_OFFSET, e->off, sizeof e->off);
    linli_test_header(m, LINLI_DLQ_H_CONSUMER, e->consumer,
                      sizeof e->consumer);
    linli_test_header(m, LINLI_DLQ_H_ERROR, e->code, sizeof e->code);
    linli_test_header(m, LINLI_DLQ_H_REASON, e->reason, sizeof e->reason);
    e->len = m->len;
  }
}

/* ---------------------------------------------------------- store queries */

static int n_res(const char *order, int status, int reason) {
  int n = 0;
  for (size_t i = 0; i < st.res.n; i++) {
    const struct rres *r = &st.res.v[i];
    if (strcmp(r->order, order) == 0 && (status == ANY || r->status == status) &&
        (reason == ANY || r->reason == reason))
      n++;
  }
  return n;
}

static const struct rres *find_res(const char *order, int status) {
  for (size_t i = 0; i < st.res.n; i++)
    if (strcmp(st.res.v[i].order, order) == 0 &&
        (status == ANY || st.res.v[i].status == status))
      return &st.res.v[i];
  return NULL;
}

static int n_refunds(const char *order, int reason) {
  int n = 0;
  for (size_t i = 0; i < st.ref.n; i++)
    if (strcmp(st.ref.v[i].order, order) == 0 &&
        (reason == ANY || st.ref.v[i].reason == reason))
      n++;
  return n;
}

static int n_ful(const char *order) {
  int n = 0;
  for (size_t i = 0; i < st.ful.n; i++)
    n += strcmp(st.ful.v[i].order, order) == 0;
  return n;
}

static int n_exp(const char *order) {
  int n = 0;
  for (size_t i = 0; i < st.exp.n; i++)
    n += strcmp(st.exp.v[i].order, order) == 0;
  return n;
}

static int n_dlq(const char *consumer) {
  int n = 0;
  for (size_t i = 0; i < st.dlq.n; i++)
    n += strcmp(st.dlq.v[i].consumer, consumer) == 0;
  return n;
}

/* ------------------------------------------------------------ waiting */

typedef int (*cond_fn)(const void *arg);
struct waiter {
  cond_fn fn;
  const void *arg;
};

static int waiter_done(void *arg) {
  const struct waiter *w = arg;
  return w->fn(w->arg);
}

/* Read outputs until cond holds or timeout; 1 if it holds. */
static int wait_for(cond_fn fn, const void *arg, int timeout_ms) {
  struct waiter w = {fn, arg};
  linli_test_reader_poll(reader, timeout_ms, collect, &w, waiter_done);
  return fn(arg);
}

/* Keep reading for ms: catches late or duplicate records. */
static void settle(int ms) {
  linli_test_reader_poll(reader, ms, collect, NULL, NULL);
}

struct want_res {
  const char *order;
  int status, reason, n;
};
static int have_res(const void *a) {
  const struct want_res *w = a;
  return n_res(w->order, w->status, w->reason) >= w->n;
}
static int wait_res(const char *order, int status, int reason) {
  struct want_res w = {order, status, reason, 1};
  return wait_for(have_res, &w, 30000);
}

struct want_count {
  const char *order;
  int reason, n;
};
static int have_refund(const void *a) {
  const struct want_count *w = a;
  return n_refunds(w->order, w->reason) >= w->n;
}
static int have_ful(const void *a) {
  const struct want_count *w = a;
  return n_ful(w->order) >= w->n;
}
static int have_exp(const void *a) {
  const struct want_count *w = a;
  return n_exp(w->order) >= w->n;
}

/* ================================================================ events */

struct buf {
  uint8_t *p;
  size_t n;
};

static struct buf pack(const ProtobufCMessage *msg) {
  struct buf b;
  b.n = protobuf_c_message_get_packed_size(msg);
  b.p = malloc(b.n ? b.n : 1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(b.p);
  protobuf_c_message_pack(msg, b.p);
  return b;
}

static void meta_fill(Linli__Meta *m, char *eid, int64_t at) {
  linli_id_new(eid, LINLI_ID_BUFSZ);
  m->event_id = eid;
  m->occurred_at_ms = at;
  m->producer = (char *)"test_reserver";
  m->schema_version = 1;
}

/* OrderPlaced with n lines (sku, quantity) at 100 fen a unit. */
static struct buf placed_ev(const char *order, const char *user,
                            const char *wh, size_t n, const char *const *skus,
                            const int *qty, int64_t at) {
  Linli__OrderEvent ev = LINLI__ORDER_EVENT__INIT;
  Linli__Meta meta = LINLI__META__INIT;
  Linli__OrderPlaced op = LINLI__ORDER_PLACED__INIT;
  Linli__PickupDelivery pick = LINLI__PICKUP_DELIVERY__INIT;
  char eid[LINLI_ID_BUFSZ];
  meta_fill(&meta, eid, at);
  Linli__OrderLine *lines = calloc(n ? n : 1, sizeof *lines);
  Linli__OrderLine **lp = calloc(n ? n : 1, sizeof *lp);
  CU_ASSERT_FATAL(lines && lp);
  int64_t total = 0;
  for (size_t i = 0; i < n; i++) {
    linli__order_line__init(&lines[i]);
    lines[i].sku_id = (char *)skus[i];
    lines[i].quantity = qty[i];
    lines[i].unit_price_fen = 100;
    total += 100 * (int64_t)qty[i];
    lp[i] = &lines[i];
  }
  pick.pickup_point_id = (char *)"pp-1";
  op.order_id = (char *)order;
  op.user_id = (char *)user;
  op.warehouse_id = (char *)wh;
  op.n_lines = n;
  op.lines = lp;
  op.total_fen = total;
  op.delivery_case = LINLI__ORDER_PLACED__DELIVERY_PICKUP;
  op.pickup = &pick;
  op.placed_at_ms = at;
  ev.meta = &meta;
  ev.event_case = LINLI__ORDER_EVENT__EVENT_ORDER_PLACED;
  ev.order_placed = &op;
  struct buf b = pack(&ev.base);
  free(lines);
  free(lp);
  return b;
}

/* OrderPlaced of qty units of one sku at price fen, for the poison and
 * money scenarios: meta.event_id eid (NULL: a new one), occurred_at_ms at,
 * home delivery to addr (NULL: pickup), campaign (NULL: none). */
static struct buf placed_one(const char *order, const char *wh,
                             const char *sku, int qty, int64_t price,
                             const char *eid, int64_t at, const char *addr,
                             const char *campaign) {
  Linli__OrderEvent ev = LINLI__ORDER_EVENT__INIT;
  Linli__Meta meta = LINLI__META__INIT;
  Linli__OrderPlaced op = LINLI__ORDER_PLACED__INIT;
  Linli__PickupDelivery pick = LINLI__PICKUP_DELIVERY__INIT;
  Linli__HomeDelivery home = LINLI__HOME_DELIVERY__INIT;
  Linli__OrderLine line = LINLI__ORDER_LINE__INIT;
  Linli__OrderLine *lp[] = {&line};
  char own[LINLI_ID_BUFSZ];
  meta_fill(&meta, own, at);
  if (eid)
    meta.event_id = (char *)eid;
  line.sku_id = (char *)sku;
  line.quantity = qty;
  line.unit_price_fen = price;
  op.order_id = (char *)order;
  op.user_id = (char *)"user-9";
  op.warehouse_id = (char *)wh;
  op.n_lines = 1;
  op.lines = lp;
  op.total_fen = price * qty;
  op.campaign_id = (char *)(campaign ? campaign : "");
  if (addr) {
    home.recipient_name = (char *)"Li";
    home.phone = (char *)"13800000000";
    home.address = (char *)addr;
    op.delivery_case = LINLI__ORDER_PLACED__DELIVERY_HOME;
    op.home = &home;
  } else {
    pick.pickup_point_id = (char *)"pp-1";
    op.delivery_case = LINLI__ORDER_PLACED__DELIVERY_PICKUP;
    op.pickup = &pick;
  }
  op.placed_at_ms = at;
  ev.meta = &meta;
  ev.event_case = LINLI__ORDER_EVENT__EVENT_ORDER_PLACED;
  ev.order_placed = &op;
  return pack(&ev.base);
}

static struct buf paid_ev(const char *order, const char *txn, int64_t amount,
                          int64_t at) {
  Linli__OrderEvent ev = LINLI__ORDER_EVENT__INIT;
  Linli__Meta meta = LINLI__META__INIT;
  Linli__OrderPaid pd = LINLI__ORDER_PAID__INIT;
  char eid[LINLI_ID_BUFSZ];
  meta_fill(&meta, eid, at);
  pd.order_id = (char *)order;
  pd.method = LINLI__ORDER_PAID__METHOD__WECHAT_PAY;
  pd.payment_txn_id = (char *)txn;
  pd.amount_fen = amount;
  pd.paid_at_ms = at;
  ev.meta = &meta;
  ev.event_case = LINLI__ORDER_EVENT__EVENT_ORDER_PAID;
  ev.order_paid = &pd;
  return pack(&ev.base);
}

static struct buf cancelled_ev(const char *order, int64_t at) {
  Linli__OrderEvent ev = LINLI__ORDER_EVENT__INIT;
  Linli__Meta meta = LINLI__META__INIT;
  Linli__OrderCancelled oc = LINLI__ORDER_CANCELLED__INIT;
  char eid[LINLI_ID_BUFSZ];
  meta_fill(&meta, eid, at);
  oc.order_id = (char *)order;
  oc.reason = (char *)"changed my mind";
  oc.cancelled_at_ms = at;
  ev.meta = &meta;
  ev.event_case = LINLI__ORDER_EVENT__EVENT_ORDER_CANCELLED;
  ev.order_cancelled = &oc;
  return pack(&ev.base);
}

static struct buf sku_ev(const char *sku, Linli__Sku__Status status,
                         Linli__StorageClass sc) {
  Linli__CatalogEvent ev = LINLI__CATALOG_EVENT__INIT;
  Linli__Meta meta = LINLI__META__INIT;
  Linli__Sku s = LINLI__SKU__INIT;
  char eid[LINLI_ID_BUFSZ];
  meta_fill(&meta, eid, linli_clock_now_ms());
  s.sku_id = (char *)sku;
  s.name = (char *)"test goods";
  s.storage_class = sc;
  s.weight_g = 500;
  s.list_price_fen = 100;
  s.status = status;
  ev.meta = &meta;
  ev.event_case = LINLI__CATALOG_EVENT__EVENT_SKU;
  ev.sku = &s;
  return pack(&ev.base);
}

/* StockAdjusted; its meta.event_id into eid_out (may be NULL). */
static struct buf stock_ev_id(const char *wh, const char *sku, int qty,
                              Linli__StockAdjusted__Reason reason,
                              char *eid_out) {
  Linli__InventoryEvent ev = LINLI__INVENTORY_EVENT__INIT;
  Linli__Meta meta = LINLI__META__INIT;
  Linli__StockAdjusted a = LINLI__STOCK_ADJUSTED__INIT;
  char eid[LINLI_ID_BUFSZ], adj[LINLI_ID_BUFSZ];
  meta_fill(&meta, eid, linli_clock_now_ms());
  if (eid_out)
    snprintf(eid_out, LINLI_ID_BUFSZ, "%s", eid);
  linli_id_new(adj, sizeof adj);
  a.adjustment_id = adj;
  a.warehouse_id = (char *)wh;
  a.sku_id = (char *)sku;
  a.quantity = qty;
  a.reason = reason;
  ev.meta = &meta;
  ev.event_case = LINLI__INVENTORY_EVENT__EVENT_STOCK_ADJUSTED;
  ev.stock_adjusted = &a;
  return pack(&ev.base);
}

static struct buf stock_ev(const char *wh, const char *sku, int qty,
                           Linli__StockAdjusted__Reason reason) {
  return stock_ev_id(wh, sku, qty, reason, NULL);
}

/* Produce and free; where it landed into part/off (may be NULL). */
static void send_at(const char *topic, const char *key, struct buf b,
                    int32_t *part, int64_t *off) {
  int rc = linli_test_produce_at(topic, key, b.p, b.n, part, off);
  free(b.p);
  CU_ASSERT_EQUAL_FATAL(rc, 0);
}
static void put(const char *topic, const char *key, struct buf b) {
  send_at(topic, key, b, NULL, NULL);
}

static void place(const char *order, const char *wh, size_t n,
                  const char *const *skus, const int *qty, int64_t at) {
  put(T_ORDERS, order, placed_ev(order, "user-1", wh, n, skus, qty, at));
}

/* ================================================================ redis */

/* {w:<wh>}:<hash> field as a number; -1 if absent. */
static long long stock(const char *wh, const char *hash, const char *sku) {
  char tag[128], key[256];
  dom_rsv_tag(tag, sizeof tag, wh);
  linli_redis_key(key, sizeof key, tag, hash);
  const char *argv[] = {"HGET", key, sku};
  redisReply *r = NULL;
  long long v = -1;
  if (linli_redis_command(redis, 3, argv, NULL, &r) == LINLI_OK && r) {
    if (r->type == REDIS_REPLY_STRING)
      v = atoll(r->str);
    freeReplyObject(r);
  }
  return v;
}

/* Catalog entry of sku ("L|..." listed, "D|..." delisted), "" if absent. */
static void catalog(const char *sku, char *out, size_t len) {
  const char *argv[] = {"HGET", DOM_RSV_KEY_CATALOG, sku};
  redisReply *r = NULL;
  out[0] = '\0';
  if (linli_redis_command(redis, 3, argv, NULL, &r) == LINLI_OK && r) {
    if (r->type == REDIS_REPLY_STRING)
      snprintf(out, len, "%s", r->str);
    freeReplyObject(r);
  }
}

/* 1 if order is in the reserver's expiry index of orders partition part
 * (-1: any partition), 0 if not, -1 on error. */
static int pending_deadline(int part, const char *order) {
  int found = 0;
  for (int p = part < 0 ? 0 : part; p < (part < 0 ? 6 : part + 1); p++) {
    char key[64];
    dom_rsv_expiry_key(key, sizeof key, p);
    const char *argv[] = {"ZSCORE", key, order};
    redisReply *r = NULL;
    if (linli_redis_command(redis, 3, argv, NULL, &r) != LINLI_OK || !r)
      return -1;
    found |= r->type == REDIS_REPLY_STRING;
    freeReplyObject(r);
  }
  return found;
}

/* Wait until avail of sku in wh is `want` (the reserver consumed our
 * inventory), up to timeout_ms. */
static int wait_stock(const char *wh, const char *sku, long long want,
                      int timeout_ms) {
  int64_t deadline = linli_test_now_ms() + timeout_ms;
  while (stock(wh, "avail", sku) != want && linli_test_now_ms() < deadline)
    usleep(100 * 1000);
  return stock(wh, "avail", sku) == want;
}

static int wait_catalog(const char *sku, char status, int timeout_ms) {
  int64_t deadline = linli_test_now_ms() + timeout_ms;
  char v[64];
  for (;;) {
    catalog(sku, v, sizeof v);
    if (v[0] == status || linli_test_now_ms() >= deadline)
      return v[0] == status;
    usleep(100 * 1000);
  }
}

/* ============================================================ reservers */

struct rsv {
  pid_t pid;
  char inst[96];
  char log[256];
};

/* Spawn linli-reserver in group with instance id r->inst (set by the
 * caller) and extra "K=V" entries (NULL-terminated, may be NULL). */
static void spawn_reserver(struct rsv *r, const char *group,
                           const char *const *extra) {
  char path[512], e_group[160], e_inst[160];
  linli_test_binary_path("consumers/reserver/linli-reserver", path,
                         sizeof path);
  snprintf(e_group, sizeof e_group, "LINLI_RUNNER_GROUP=%s", group);
  snprintf(e_inst, sizeof e_inst, "LINLI_RUNNER_INSTANCE_ID=%s", r->inst);
  snprintf(r->log, sizeof r->log, "/tmp/%s.log", r->inst);
  char *env[16];
  int n = 0;
  env[n++] = e_group;
  env[n++] = e_inst;
  env[n++] = (char *)"LINLI_METRICS_PORT=0";
  env[n++] = (char *)"LINLI_RUNNER_FLUSH_INTERVAL_MS=50";
  env[n++] = (char *)"LINLI_RUNNER_BATCH_SIZE=500";
  for (int i = 0; extra && extra[i] && n < 15; i++)
    env[n++] = (char *)extra[i];
  env[n] = NULL;
  char *argv[] = {path, NULL};
  r->pid = linli_test_spawn_tied(argv, env, r->log);
  CU_ASSERT_FATAL(r->pid > 0);
}

/* SIGTERM: the reserver must drain and exit 0 (also: no leak reported by
 * its own LeakSanitizer). */
static void stop_reserver(struct rsv *r) {
  CU_ASSERT(linli_test_stop_clean(&r->pid, r->inst, r->log));
}

/* ======================================================== common set-up */

/* Another run's consumer of linli.orders.v1 (a reserver of a concurrent
 * test on the same dev broker) would process our orders too and report
 * them a second time: wait, within reason, until nobody else consumes. */
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

static int setup_once(void) {
  if (reader)
    return 0;
  linli_test_unique("rsv", RUN, sizeof RUN);
  /* Partitions as in config/topics.conf. */
  struct {
    const char *t;
    int p;
    const char *policy;
  } topics[] = {{T_ORDERS, 6, NULL},       {T_INVENTORY, 6, NULL},
                {T_CATALOG, 3, "compact"}, {T_RESERVATIONS, 6, NULL},
                {T_FULFILLMENT, 6, NULL},  {T_REFUNDS, 6, NULL},
                {T_DLQ, 3, NULL}};
  for (size_t i = 0; i < sizeof topics / sizeof topics[0]; i++)
    if (linli_test_ensure_topic(topics[i].t, topics[i].p, topics[i].policy))
      return -1;
  const linli_config_t *cfg = linli_test_config();
  char err[256];
  if (!cfg ||
      linli_redis_connect(linli_config_str(cfg, "redis.host"),
                          (int)linli_config_int(cfg, "redis.port"),
                          linli_config_str(cfg, "redis.password"), 5000,
                          &redis, err, sizeof err) != LINLI_OK) {
    fprintf(stderr, "redis: %s\n", cfg ? err : "no config");
    return -1;
  }
  const char *out[] = {T_RESERVATIONS, T_REFUNDS, T_FULFILLMENT,
                       T_ORDERS,       T_DLQ,     NULL};
  reader = linli_test_reader_new(out, 1);
  return reader ? 0 : -1;
}

static void teardown(void) {
  linli_test_reader_free(reader);
  reader = NULL;
  linli_redis_free(redis);
  redis = NULL;
  free(st.res.v);
  free(st.ref.v);
  free(st.ful.v);
  free(st.exp.v);
  free(st.dlq.v);
  memset(&st, 0, sizeof st);
}

/* =========================================================== scenarios */

/* One reserver for the scenario suite, with an injected clock frozen at
 * T0 until the expiry test moves it, and a 30 s payment timeout. */
static struct rsv sc_rsv;
static char sc_clock[256], sc_wh[72], sc_wh2[72], sc_group[96];
static char sku_a[72], sku_b[72], sku_d[72], sku_e[72], sku_unknown[72];
static int64_t T0;

static void id(char *buf, size_t len, const char *what) {
  snprintf(buf, len, "%s-%s", RUN, what);
}

static int write_clock(int64_t ms) {
  return linli_test_write_clock(sc_clock, ms);
}

static int scenarios_init(void) {
  if (setup_once())
    return -1;
  wait_orders_idle();
  char group[96];
  linli_test_unique("rsv-sc", group, sizeof group);
  if (linli_test_group_start_at_end(group, INPUTS))
    return -1;
  T0 = linli_clock_now_ms();
  snprintf(sc_clock, sizeof sc_clock, "/tmp/%s-clock", RUN);
  if (write_clock(T0))
    return -1;
  id(sc_wh, sizeof sc_wh, "W1");
  id(sc_wh2, sizeof sc_wh2, "W2");
  id(sku_a, sizeof sku_a, "A");
  id(sku_b, sizeof sku_b, "B");
  id(sku_d, sizeof sku_d, "D");
  id(sku_e, sizeof sku_e, "E");
  id(sku_unknown, sizeof sku_unknown, "U");

  snprintf(sc_group, sizeof sc_group, "%s", group);
  return 0;
}

/* The first scenario: start the reserver, publish the catalog and stock
 * every later scenario uses, and see them applied. */
static void spawn_scenario_reserver(struct rsv *r, const char *group,
                                    const char *name) {
  char e_clock[320];
  snprintf(e_clock, sizeof e_clock, "LINLI_FAKE_CLOCK_FILE=%s", sc_clock);
  const char *extra[] = {e_clock, "LINLI_ORDERS_PAYMENT_TIMEOUT_S=30",
                         "LINLI_RUNNER_TICK_INTERVAL_MS=200", NULL};
  snprintf(r->inst, sizeof r->inst, "%s-%s", RUN, name);
  spawn_reserver(r, group, extra);
}

static void test_setup(void) {
  spawn_scenario_reserver(&sc_rsv, sc_group, "sc");

  /* The catalog and stock every scenario uses. D is listed, stocked, then
   * delisted (same key: the delisting comes after in its partition). */
  put(T_CATALOG, sku_a,
       sku_ev(sku_a, LINLI__SKU__STATUS__LISTED, LINLI__STORAGE_CLASS__AMBIENT));
  put(T_CATALOG, sku_b,
       sku_ev(sku_b, LINLI__SKU__STATUS__LISTED, LINLI__STORAGE_CLASS__CHILLED));
  put(T_CATALOG, sku_d,
       sku_ev(sku_d, LINLI__SKU__STATUS__LISTED, LINLI__STORAGE_CLASS__AMBIENT));
  put(T_CATALOG, sku_d,
       sku_ev(sku_d, LINLI__SKU__STATUS__DELISTED,
              LINLI__STORAGE_CLASS__AMBIENT));
  put(T_CATALOG, sku_e,
       sku_ev(sku_e, LINLI__SKU__STATUS__LISTED, LINLI__STORAGE_CLASS__FROZEN));
  put(T_INVENTORY, sc_wh,
       stock_ev(sc_wh, sku_a, 10, LINLI__STOCK_ADJUSTED__REASON__RESTOCK));
  put(T_INVENTORY, sc_wh,
       stock_ev(sc_wh, sku_b, 5, LINLI__STOCK_ADJUSTED__REASON__RESTOCK));
  put(T_INVENTORY, sc_wh,
       stock_ev(sc_wh, sku_d, 5, LINLI__STOCK_ADJUSTED__REASON__RESTOCK));
  put(T_INVENTORY, sc_wh,
       stock_ev(sc_wh, sku_e, 7, LINLI__STOCK_ADJUSTED__REASON__RESTOCK));
  put(T_INVENTORY, sc_wh2,
      stock_ev(sc_wh2, sku_a, 5, LINLI__STOCK_ADJUSTED__REASON__RESTOCK));
  /* A count correction: E ends at 5 (7 - 2). */
  put(T_INVENTORY, sc_wh,
       stock_ev(sc_wh, sku_e, -2, LINLI__STOCK_ADJUSTED__REASON__COUNT));
  int ok = wait_catalog(sku_a, 'L', 60000) && wait_catalog(sku_b, 'L', 10000) &&
           wait_catalog(sku_d, 'D', 10000) && wait_catalog(sku_e, 'L', 10000) &&
           wait_stock(sc_wh, sku_a, 10, 30000) &&
           wait_stock(sc_wh, sku_b, 5, 10000) &&
           wait_stock(sc_wh, sku_d, 5, 10000) &&
           wait_stock(sc_wh, sku_e, 5, 10000) &&
           wait_stock(sc_wh2, sku_a, 5, 10000);
  if (!ok)
    fprintf(stderr, "\n  catalog/stock not applied; see %s\n", sc_rsv.log);
  CU_ASSERT_FATAL(ok);
  CU_ASSERT_EQUAL(stock(sc_wh, "init", sku_e), 5); /* 7 - 2 */
}

static int scenarios_cleanup(void) {
  /* Still running only if a fatal assertion cut the suite short; the
   * flash sale must not share the orders with it. */
  if (sc_rsv.pid > 0)
    linli_test_stop(sc_rsv.pid, 1);
  sc_rsv.pid = 0;
  unlink(sc_clock);
  return 0;
}

static void test_catalog_rejections(void) {
  char o_unknown[96], o_delisted[96], o_mixed[96];
  id(o_unknown, sizeof o_unknown, "unknown");
  id(o_delisted, sizeof o_delisted, "delisted");
  id(o_mixed, sizeof o_mixed, "mixed");
  const char *s1[] = {sku_unknown};
  const char *s2[] = {sku_d};
  const char *s3[] = {sku_a, sku_d};
  const int q1[] = {1}, q3[] = {2, 1};
  place(o_unknown, sc_wh, 1, s1, q1, T0);
  place(o_delisted, sc_wh, 1, s2, q1, T0);
  place(o_mixed, sc_wh, 2, s3, q3, T0);

  CU_ASSERT(wait_res(o_unknown, ST_REJECTED,
                     LINLI__RESERVATION_RESULT__REASON__UNKNOWN_SKU));
  CU_ASSERT(wait_res(o_delisted, ST_REJECTED,
                     LINLI__RESERVATION_RESULT__REASON__DELISTED));
  CU_ASSERT(wait_res(o_mixed, ST_REJECTED,
                     LINLI__RESERVATION_RESULT__REASON__DELISTED));
  const struct rres *r = find_res(o_unknown, ST_REJECTED);
  CU_ASSERT(r && strstr(r->detail, sku_unknown) != NULL);
  r = find_res(o_delisted, ST_REJECTED);
  CU_ASSERT(r && strstr(r->detail, sku_d) != NULL);
  settle(500);
  CU_ASSERT_EQUAL(n_res(o_unknown, ANY, ANY), 1);
  CU_ASSERT_EQUAL(n_res(o_delisted, ANY, ANY), 1);
  CU_ASSERT_EQUAL(n_res(o_mixed, ANY, ANY), 1);
  /* Nothing moved. */
  CU_ASSERT_EQUAL(stock(sc_wh, "avail", sku_a), 10);
  CU_ASSERT_EQUAL(stock(sc_wh, "avail", sku_d), 5);
  CU_ASSERT(stock(sc_wh, "resv", sku_a) <= 0);
  CU_ASSERT(stock(sc_wh, "resv", sku_d) <= 0);
}

static void test_multi_line(void) {
  char o_short[96], o_ok[96], o_two[96];
  id(o_short, sizeof o_short, "short");
  id(o_ok, sizeof o_ok, "ok");
  id(o_two, sizeof o_two, "twoshort");
  const char *s_short[] = {sku_a, sku_b};
  const int q_short[] = {3, 6}; /* B has 5 */
  const char *s_ok[] = {sku_a, sku_b, sku_a};
  const int q_ok[] = {3, 2, 1}; /* A 4, B 2 */
  const char *s_dup[] = {sku_a};
  const int q_dup[] = {1};
  const char *s_two[] = {sku_a, sku_b};
  const int q_two[] = {7, 4}; /* after o_ok: A 6, B 3 */
  place(o_short, sc_wh, 2, s_short, q_short, T0);
  place(o_ok, sc_wh, 3, s_ok, q_ok, T0);
  /* The same order id again (a different event): reserves nothing, also
   * when it names another warehouse (W2 has A in stock). */
  put(T_ORDERS, o_ok, placed_ev(o_ok, "user-2", sc_wh, 1, s_dup, q_dup, T0));
  put(T_ORDERS, o_ok, placed_ev(o_ok, "user-2", sc_wh2, 1, s_dup, q_dup, T0));
  place(o_two, sc_wh, 2, s_two, q_two, T0);

  CU_ASSERT(wait_res(o_short, ST_REJECTED,
                     LINLI__RESERVATION_RESULT__REASON__OUT_OF_STOCK));
  CU_ASSERT(wait_res(o_ok, ST_RESERVED, ANY));
  struct want_res wd = {o_ok, ST_REJECTED,
                        LINLI__RESERVATION_RESULT__REASON__DUPLICATE, 2};
  CU_ASSERT(wait_for(have_res, &wd, 30000));
  CU_ASSERT(wait_res(o_two, ST_REJECTED,
                     LINLI__RESERVATION_RESULT__REASON__OUT_OF_STOCK));
  settle(500);

  const struct rres *r = find_res(o_short, ST_REJECTED);
  CU_ASSERT_FATAL(r != NULL);
  CU_ASSERT_EQUAL(r->nshort, 1);
  CU_ASSERT_STRING_EQUAL(r->ssku[0], sku_b);
  CU_ASSERT_EQUAL(r->sreq[0], 6);
  CU_ASSERT_EQUAL(r->savail[0], 5);

  r = find_res(o_ok, ST_RESERVED);
  CU_ASSERT_FATAL(r != NULL);
  CU_ASSERT_EQUAL(r->total, 600);
  CU_ASSERT_EQUAL(r->nlines, 3);
  CU_ASSERT_EQUAL(r->expires, T0 + 30000);

  r = find_res(o_two, ST_REJECTED);
  CU_ASSERT_FATAL(r != NULL);
  CU_ASSERT_EQUAL(r->nshort, 2);
  int seen_a = 0, seen_b = 0;
  for (int i = 0; i < r->nshort && i < 4; i++) {
    if (strcmp(r->ssku[i], sku_a) == 0 && r->sreq[i] == 7 &&
        r->savail[i] == 6)
      seen_a = 1;
    if (strcmp(r->ssku[i], sku_b) == 0 && r->sreq[i] == 4 &&
        r->savail[i] == 3)
      seen_b = 1;
  }
  CU_ASSERT(seen_a && seen_b);

  /* Exactly one result of each kind. */
  CU_ASSERT_EQUAL(n_res(o_short, ANY, ANY), 1);
  CU_ASSERT_EQUAL(n_res(o_ok, ANY, ANY), 3);
  CU_ASSERT_EQUAL(n_res(o_two, ANY, ANY), 1);
  /* Only o_ok holds stock. */
  CU_ASSERT_EQUAL(stock(sc_wh, "avail", sku_a), 6);
  CU_ASSERT_EQUAL(stock(sc_wh, "resv", sku_a), 4);
  CU_ASSERT_EQUAL(stock(sc_wh, "avail", sku_b), 3);
  CU_ASSERT_EQUAL(stock(sc_wh, "resv", sku_b), 2);
  CU_ASSERT_EQUAL(stock(sc_wh2, "avail", sku_a), 5);
  CU_ASSERT(stock(sc_wh2, "resv", sku_a) <= 0);
}

static void test_payment(void) {
  char o[96], t1[96], t2[96];
  id(o, sizeof o, "paid");
  id(t1, sizeof t1, "txn1");
  id(t2, sizeof t2, "txn2");
  const char *s[] = {sku_a};
  const int q[] = {1};
  long long a0 = stock(sc_wh, "avail", sku_a);
  long long r0 = stock(sc_wh, "resv", sku_a);
  long long sold0 = stock(sc_wh, "sold", sku_a);
  if (sold0 < 0)
    sold0 = 0;
  /* One partition (key = order): placed, paid, the same notice again, a
   * second different payment, and that one again. */
  place(o, sc_wh, 1, s, q, T0);
  put(T_ORDERS, o, paid_ev(o, t1, 100, T0));
  CU_ASSERT(wait_res(o, ST_COMMITTED, ANY));
  struct want_count wf = {o, 0, 1};
  CU_ASSERT(wait_for(have_ful, &wf, 30000));
  CU_ASSERT_EQUAL(stock(sc_wh, "sold", sku_a), sold0 + 1);

  put(T_ORDERS, o, paid_ev(o, t1, 100, T0));
  settle(2000);
  CU_ASSERT_EQUAL(n_res(o, ANY, ANY), 2); /* RESERVED, COMMITTED */
  CU_ASSERT_EQUAL(n_ful(o), 1);
  CU_ASSERT_EQUAL(n_refunds(o, ANY), 0);

  put(T_ORDERS, o, paid_ev(o, t2, 100, T0));
  put(T_ORDERS, o, paid_ev(o, t2, 100, T0));
  CU_ASSERT(wait_res(o, ST_REJECTED,
                     LINLI__RESERVATION_RESULT__REASON__DOUBLE_PAYMENT));
  struct want_count wr = {o, LINLI__REFUND_REQUESTED__REASON__DOUBLE_PAYMENT,
                          1};
  CU_ASSERT(wait_for(have_refund, &wr, 30000));
  settle(2000);

  CU_ASSERT_EQUAL(n_res(o, ST_RESERVED, ANY), 1);
  CU_ASSERT_EQUAL(n_res(o, ST_COMMITTED, ANY), 1);
  CU_ASSERT_EQUAL(n_res(o, ST_REJECTED, ANY), 1);
  CU_ASSERT_EQUAL(n_res(o, ANY, ANY), 3);
  CU_ASSERT_EQUAL(n_ful(o), 1);
  CU_ASSERT_EQUAL(n_refunds(o, ANY), 1);
  const struct rres *c = find_res(o, ST_COMMITTED);
  CU_ASSERT(c && strcmp(c->txn, t1) == 0 && c->amount == 100 &&
            c->total == 100);
  for (size_t i = 0; i < st.ref.n; i++) {
    const struct rrefund *f = &st.ref.v[i];
    if (strcmp(f->order, o) != 0)
      continue;
    CU_ASSERT_STRING_EQUAL(f->txn, t2);
    CU_ASSERT_EQUAL(f->amount, 100);
    CU_ASSERT_STRING_EQUAL(f->cause_topic, T_ORDERS);
    CU_ASSERT(f->refund_id[0] != '\0');
  }
  for (size_t i = 0; i < st.ful.n; i++) {
    const struct rful *f = &st.ful.v[i];
    if (strcmp(f->order, o) != 0)
      continue;
    CU_ASSERT_STRING_EQUAL(f->key, sc_wh); /* keyed by warehouse */
    CU_ASSERT_STRING_EQUAL(f->wh, sc_wh);
    CU_ASSERT_EQUAL(f->sc, LINLI__STORAGE_CLASS__AMBIENT);
    CU_ASSERT_EQUAL(f->nlines, 1);
  }
  /* Sold once; the reservation became the sale. */
  CU_ASSERT_EQUAL(stock(sc_wh, "avail", sku_a), a0 - 1);
  CU_ASSERT_EQUAL(stock(sc_wh, "resv", sku_a), r0);
  CU_ASSERT_EQUAL(stock(sc_wh, "sold", sku_a), sold0 + 1);

  /* Cancelling a paid order is refused (after-sales business). */
  put(T_ORDERS, o, cancelled_ev(o, T0));
  CU_ASSERT(wait_res(o, ST_REJECTED,
                     LINLI__RESERVATION_RESULT__REASON__NOT_RESERVED));
  CU_ASSERT_EQUAL(stock(sc_wh, "sold", sku_a), sold0 + 1);
}

static void test_cancel(void) {
  char o[96], t[96];
  id(o, sizeof o, "cancelled");
  id(t, sizeof t, "txn3");
  const char *s[] = {sku_b};
  const int q[] = {2};
  long long b0 = stock(sc_wh, "avail", sku_b);
  long long r0 = stock(sc_wh, "resv", sku_b);
  place(o, sc_wh, 1, s, q, T0);
  CU_ASSERT(wait_res(o, ST_RESERVED, ANY));
  CU_ASSERT_EQUAL(stock(sc_wh, "avail", sku_b), b0 - 2);
  put(T_ORDERS, o, cancelled_ev(o, T0));
  CU_ASSERT(wait_res(o, ST_RELEASED, ANY));
  CU_ASSERT_EQUAL(stock(sc_wh, "avail", sku_b), b0);
  CU_ASSERT_EQUAL(stock(sc_wh, "resv", sku_b), r0);

  put(T_ORDERS, o, paid_ev(o, t, 200, T0));
  put(T_ORDERS, o, cancelled_ev(o, T0)); /* a second cancel: no effect */
  CU_ASSERT(wait_res(o, ST_REJECTED,
                     LINLI__RESERVATION_RESULT__REASON__PAYMENT_AFTER_CANCEL));
  struct want_count wr = {
      o, LINLI__REFUND_REQUESTED__REASON__CANCELLED_AFTER_PAYMENT, 1};
  CU_ASSERT(wait_for(have_refund, &wr, 30000));
  settle(1500);
  CU_ASSERT_EQUAL(n_res(o, ANY, ANY), 3); /* RESERVED, RELEASED, REJECTED */
  CU_ASSERT_EQUAL(n_refunds(o, ANY), 1);
  CU_ASSERT_EQUAL(n_ful(o), 0);
  CU_ASSERT_EQUAL(stock(sc_wh, "avail", sku_b), b0);
  CU_ASSERT_EQUAL(stock(sc_wh, "resv", sku_b), r0);
}

/* ------------------------------------------------------------ lost state */

static int pg_run(linli_pg_t *pg, const char *sql, int n, const char **params) {
  PGresult *res = NULL;
  char err[256];
  int rc = linli_pg_exec(pg, sql, n, params, &res, err, sizeof err);
  if (res)
    PQclear(res);
  if (rc != LINLI_OK)
    fprintf(stderr, "\n  postgres: %s\n", err);
  return rc;
}

/* Redis loses a warehouse while the reserver runs. The reserver saw it
 * loaded before and may remember that, but must not place the next order
 * on the missing stock (OUT_OF_STOCK): it loads the warehouse from the
 * record (PostgreSQL) and serves the order from there. The warehouse's
 * stock comes from the record alone (as if imported), so that a ledger
 * running on the same database never changes it during the test. */
static void test_lost_state(void) {
  char wh[96], o1[96], o2[96], tag[128], key[256];
  id(wh, sizeof wh, "W3");
  id(o1, sizeof o1, "lost1");
  id(o2, sizeof o2, "lost2");
  const char *s[] = {sku_a};
  const int q1[] = {100}, q2[] = {2};
  const linli_config_t *cfg = linli_test_config();
  linli_pg_t *pg = NULL;
  char err[256];
  CU_ASSERT_FATAL(cfg != NULL);
  CU_ASSERT_EQUAL_FATAL(linli_pg_connect(linli_config_str(cfg, "pg.conninfo"),
                                         5000, &pg, err, sizeof err),
                        LINLI_OK);
  const char *row[] = {wh, sku_a};
  int ok = pg_run(pg,
                  "INSERT INTO inventory (warehouse_id, sku_id, initial, "
                  "adjusted, available, reserved, sold) "
                  "VALUES ($1, $2, 7, 0, 7, 0, 0)",
                  2, row) == LINLI_OK;
  CU_ASSERT_FATAL(ok);
  /* An order the reserver cannot serve: it loads the warehouse (and may
   * remember that it did) without moving stock. */
  place(o1, wh, 1, s, q1, T0);
  CU_ASSERT(wait_res(o1, ST_REJECTED,
                     LINLI__RESERVATION_RESULT__REASON__OUT_OF_STOCK));
  CU_ASSERT_EQUAL(stock(wh, "avail", sku_a), 7);

  /* The loss. */
  dom_rsv_tag(tag, sizeof tag, wh);
  const char *hashes[] = {"avail", "resv", "sold", "init", "loaded"};
  for (size_t i = 0; i < 5; i++) {
    linli_redis_key(key, sizeof key, tag, hashes[i]);
    const char *del[] = {"DEL", key};
    redisReply *r = NULL;
    CU_ASSERT_EQUAL(linli_redis_command(redis, 2, del, NULL, &r), LINLI_OK);
    if (r)
      freeReplyObject(r);
  }

  place(o2, wh, 1, s, q2, T0);
  CU_ASSERT(wait_res(o2, ST_RESERVED, ANY));
  CU_ASSERT_EQUAL(n_res(o2, ST_REJECTED, ANY), 0);
  CU_ASSERT_EQUAL(stock(wh, "avail", sku_a), 5);
  CU_ASSERT_EQUAL(stock(wh, "resv", sku_a), 2);
  CU_ASSERT_EQUAL(stock(wh, "init", sku_a), 7);
  linli_redis_key(key, sizeof key, tag, "loaded");
  const char *ex[] = {"EXISTS", key};
  redisReply *r = NULL;
  CU_ASSERT_EQUAL(linli_redis_command(redis, 2, ex, NULL, &r), LINLI_OK);
  CU_ASSERT(r && r->type == REDIS_REPLY_INTEGER && r->integer == 1);
  if (r)
    freeReplyObject(r);
  /* Release it, so that the expiry test's clock finds nothing here. */
  put(T_ORDERS, o2, cancelled_ev(o2, T0));
  CU_ASSERT(wait_res(o2, ST_RELEASED, ANY));
  CU_ASSERT_EQUAL(stock(wh, "avail", sku_a), 7);
  CU_ASSERT_EQUAL(stock(wh, "resv", sku_a), 0);
  pg_run(pg, "DELETE FROM inventory WHERE warehouse_id = $1", 1, row);
  linli_pg_free(pg);
}

/* ------------------------------------------------------------ bad input */

struct bad {
  const char *what;
  const char *topic;
  const char *reason; /* expected in the DLQ reason */
  struct buf b;
  int32_t part;
  int64_t off;
};

static void test_bad_input(void) {
  char good[96], bad_order[96];
  id(good, sizeof good, "good-after-bad");
  snprintf(bad_order, sizeof bad_order, "%s bad!", RUN);
  const char *s[] = {sku_a};
  const int one[] = {1}, neg[] = {-3};

  struct bad bad[12];
  int nb = 0;
  /* Random bytes (wire type 7 does not exist: never decodable). */
  uint8_t *rnd = malloc(64);
  CU_ASSERT_FATAL(rnd != NULL);
  srand((unsigned)getpid());
  for (int i = 0; i < 64; i++)
    rnd[i] = (uint8_t)rand();
  rnd[0] = 0x0f;
  bad[nb++] = (struct bad){"random bytes", T_ORDERS, "undecodable",
                           {rnd, 64}, 0, 0};
  /* A good order cut short inside its OrderPlaced. */
  struct buf tr = placed_ev(good, "user-1", sc_wh, 1, s, one, T0);
  tr.n -= 5;
  bad[nb++] = (struct bad){"truncated", T_ORDERS, "undecodable", tr, 0, 0};
  bad[nb++] = (struct bad){"negative quantity", T_ORDERS,
                           "quantity: must be between 1 and",
                           placed_ev(good, "user-1", sc_wh, 1, s, neg, T0),
                           0, 0};
  /* 10,000 lines. */
  const char **many = malloc(10000 * sizeof *many);
  int *many_q = malloc(10000 * sizeof *many_q);
  CU_ASSERT_FATAL(many && many_q);
  for (int i = 0; i < 10000; i++) {
    many[i] = sku_a;
    many_q[i] = 1;
  }
  bad[nb++] = (struct bad){"10000 lines", T_ORDERS, "10000 lines",
                           placed_ev(good, "user-1", sc_wh, 10000, many,
                                     many_q, T0),
                           0, 0};
  free(many);
  free(many_q);
  bad[nb++] = (struct bad){"bad order id", T_ORDERS, "order_placed.order_id",
                           placed_ev(bad_order, "user-1", sc_wh, 1, s, one,
                                     T0),
                           0, 0};
  const char *s_bad[] = {"x:y|z"};
  bad[nb++] = (struct bad){"bad sku id", T_ORDERS, "sku_id",
                           placed_ev(good, "user-1", sc_wh, 1, s_bad, one, T0),
                           0, 0};
  bad[nb++] = (struct bad){"empty record", T_ORDERS, "empty record",
                           {NULL, 0}, 0, 0};
  /* Inventory: a RESTOCK that takes stock away. */
  bad[nb++] = (struct bad){"negative restock", T_INVENTORY,
                           "RESTOCK must be positive",
                           stock_ev(sc_wh, sku_a, -4,
                                    LINLI__STOCK_ADJUSTED__REASON__RESTOCK),
                           0, 0};
  /* Poison (issue 9 item 7): a time whose payment deadline overflows, and
   * strings that are not UTF-8 where the reserver would pass them on. */
  bad[nb++] = (struct bad){"occurred_at_ms INT64_MAX", T_ORDERS,
                           "meta.occurred_at_ms",
                           placed_one(good, sc_wh, sku_a, 1, 100, NULL,
                                      INT64_MAX, NULL, NULL),
                           0, 0};
  bad[nb++] = (struct bad){"event id not UTF-8", T_ORDERS, "meta.event_id",
                           placed_one(good, sc_wh, sku_a, 1, 100,
                                      "ev\xff\xfe", T0, NULL, NULL),
                           0, 0};
  bad[nb++] = (struct bad){"address not UTF-8", T_ORDERS,
                           "order_placed.home",
                           placed_one(good, sc_wh, sku_a, 1, 100, NULL, T0,
                                      "Road \xc3\x28 1", NULL),
                           0, 0};
  long long a0 = stock(sc_wh, "avail", sku_a);

  /* Every bad record shares the good order's key (its partition): the
   * good order comes after them in the same partition. */
  for (int i = 0; i < nb; i++)
    send_at(bad[i].topic, good, bad[i].b, &bad[i].part, &bad[i].off);
  place(good, sc_wh, 1, s, one, T0);
  CU_ASSERT(wait_res(good, ST_RESERVED, ANY));

  /* Wait for all DLQ records, then check each one's headers. Other
   * consumers of these topics (a ledger running on the same broker)
   * dead-letter the same records under their own name: count ours. */
  int64_t deadline = linli_test_now_ms() + 30000;
  while (n_dlq("reserver") < nb && linli_test_now_ms() < deadline)
    settle(200);
  settle(500);
  CU_ASSERT_EQUAL(n_dlq("reserver"), nb);
  for (int i = 0; i < nb; i++) {
    char off[32], part[16];
    snprintf(off, sizeof off, "%lld", (long long)bad[i].off);
    snprintf(part, sizeof part, "%d", (int)bad[i].part);
    const struct rdlq *d = NULL;
    for (size_t k = 0; k < st.dlq.n; k++)
      if (strcmp(st.dlq.v[k].topic, bad[i].topic) == 0 &&
          strcmp(st.dlq.v[k].consumer, "reserver") == 0 &&
          strcmp(st.dlq.v[k].off, off) == 0 &&
          strcmp(st.dlq.v[k].part, part) == 0)
        d = &st.dlq.v[k];
    CU_ASSERT_PTR_NOT_NULL(d);
    if (!d) {
      fprintf(stderr, "\n  no DLQ record for %s\n", bad[i].what);
      continue;
    }
    CU_ASSERT_STRING_EQUAL(d->key, good);
    CU_ASSERT_STRING_EQUAL(d->consumer, "reserver");
    CU_ASSERT_STRING_EQUAL(d->code, "invalid");
    CU_ASSERT_EQUAL(d->len, bad[i].b.n);
    if (!strstr(d->reason, bad[i].reason)) {
      fprintf(stderr, "\n  %s: DLQ reason \"%s\", expected \"%s\"\n",
              bad[i].what, d->reason, bad[i].reason);
      CU_FAIL("DLQ reason");
    }
  }
  /* Nothing else came out of the bad records, and the stock only moved for
   * the good order. */
  CU_ASSERT_EQUAL(n_res(good, ANY, ANY), 1);
  CU_ASSERT_EQUAL(n_res(bad_order, ANY, ANY), 0);
  CU_ASSERT_EQUAL(stock(sc_wh, "avail", sku_a), a0 - 1);
}

/* ----------------------------------------------- issue 9: money, events */

static char sku_f[72];

/* F: listed at 100 fen, 20 units in W1, for the scenarios below. */
static void money_stock(void) {
  if (sku_f[0])
    return;
  id(sku_f, sizeof sku_f, "F");
  put(T_CATALOG, sku_f,
      sku_ev(sku_f, LINLI__SKU__STATUS__LISTED, LINLI__STORAGE_CLASS__AMBIENT));
  put(T_INVENTORY, sc_wh,
      stock_ev(sc_wh, sku_f, 20, LINLI__STOCK_ADJUSTED__REASON__RESTOCK));
  CU_ASSERT_FATAL(wait_catalog(sku_f, 'L', 30000) &&
                  wait_stock(sc_wh, sku_f, 20, 30000));
}

static const struct rrefund *find_refund(const char *order, int reason) {
  for (size_t i = 0; i < st.ref.n; i++)
    if (strcmp(st.ref.v[i].order, order) == 0 &&
        st.ref.v[i].reason == reason)
      return &st.ref.v[i];
  return NULL;
}

/* Item 3: a payment for an order linli never accepted (unknown id, or an
 * OrderPlaced that went to the DLQ) is refunded, not only dead-lettered. */
static void test_unknown_order_payment(void) {
  money_stock();
  char o[96], t[96], bo[96], bt[96];
  id(o, sizeof o, "never-placed");
  id(t, sizeof t, "txn-never");
  id(bo, sizeof bo, "placed-to-dlq");
  id(bt, sizeof bt, "txn-dlq");
  put(T_ORDERS, o, paid_ev(o, t, 300, T0));
  put(T_ORDERS, bo, placed_one(bo, sc_wh, sku_f, -1, 100, NULL, T0, NULL,
                               NULL));
  put(T_ORDERS, bo, paid_ev(bo, bt, 100, T0));
  struct want_count w1 = {o, LINLI__REFUND_REQUESTED__REASON__UNKNOWN_ORDER,
                          1};
  struct want_count w2 = {bo, LINLI__REFUND_REQUESTED__REASON__UNKNOWN_ORDER,
                          1};
  CU_ASSERT(wait_for(have_refund, &w1, 30000));
  CU_ASSERT(wait_for(have_refund, &w2, 30000));
  settle(1000);
  const struct rrefund *f = find_refund(o, w1.reason);
  CU_ASSERT(f && f->amount == 300 && strcmp(f->txn, t) == 0);
  f = find_refund(bo, w2.reason);
  CU_ASSERT(f && f->amount == 100 && strcmp(f->txn, bt) == 0);
  CU_ASSERT_EQUAL(n_refunds(o, ANY), 1);
  CU_ASSERT_EQUAL(n_refunds(bo, ANY), 1);
  CU_ASSERT_EQUAL(n_res(o, ANY, ANY), 0);
  CU_ASSERT_EQUAL(n_res(bo, ANY, ANY), 0);
  CU_ASSERT_EQUAL(stock(sc_wh, "avail", sku_f), 20);
}

/* Item 2: the same OrderPlaced event again (same meta.event_id, e.g. a
 * gateway retry) gets the first result back, as the same event; a
 * different event with the same order id is a DUPLICATE. */
static void test_same_event(void) {
  money_stock();
  char o[96], eid[LINLI_ID_BUFSZ];
  id(o, sizeof o, "same-event");
  linli_id_new(eid, sizeof eid);
  long long f0 = stock(sc_wh, "avail", sku_f);
  put(T_ORDERS, o, placed_one(o, sc_wh, sku_f, 1, 100, eid, T0, NULL, NULL));
  put(T_ORDERS, o, placed_one(o, sc_wh, sku_f, 1, 100, eid, T0, NULL, NULL));
  put(T_ORDERS, o, placed_one(o, sc_wh, sku_f, 1, 100, NULL, T0, NULL, NULL));
  struct want_res w = {o, ST_RESERVED, ANY, 2};
  CU_ASSERT(wait_for(have_res, &w, 30000));
  CU_ASSERT(wait_res(o, ST_REJECTED,
                     LINLI__RESERVATION_RESULT__REASON__DUPLICATE));
  settle(1000);
  CU_ASSERT_EQUAL(n_res(o, ST_RESERVED, ANY), 2);
  CU_ASSERT_EQUAL(n_res(o, ANY, ANY), 3);
  const char *first = NULL;
  for (size_t i = 0; i < st.res.n; i++)
    if (strcmp(st.res.v[i].order, o) == 0 &&
        st.res.v[i].status == ST_RESERVED) {
      if (!first)
        first = st.res.v[i].eid;
      else
        CU_ASSERT_STRING_EQUAL(st.res.v[i].eid, first);
    }
  CU_ASSERT_EQUAL(stock(sc_wh, "avail", sku_f), f0 - 1);
}

/* Item 9: an underpayment is refused and refunded (the order stays
 * reserved), an overpayment commits and refunds the difference, and a
 * line price other than the catalog's is rejected; an order of a campaign
 * keeps its own price (the campaign's price is the settler's to check). */
static void test_money(void) {
  money_stock();
  char o[96], t1[96], t2[96], pm[96], cp[96];
  id(o, sizeof o, "underpaid");
  id(t1, sizeof t1, "txn-under");
  id(t2, sizeof t2, "txn-over");
  id(pm, sizeof pm, "price-mismatch");
  id(cp, sizeof cp, "campaign-price");
  long long f0 = stock(sc_wh, "avail", sku_f);
  long long s0 = stock(sc_wh, "sold", sku_f);
  if (s0 < 0)
    s0 = 0;
  put(T_ORDERS, o, placed_one(o, sc_wh, sku_f, 2, 100, NULL, T0, NULL, NULL));
  put(T_ORDERS, o, paid_ev(o, t1, 150, T0));
  CU_ASSERT(wait_res(o, ST_REJECTED,
                     LINLI__RESERVATION_RESULT__REASON__UNDERPAID));
  struct want_count wu = {o, LINLI__REFUND_REQUESTED__REASON__UNDERPAYMENT, 1};
  CU_ASSERT(wait_for(have_refund, &wu, 30000));
  const struct rrefund *f = find_refund(o, wu.reason);
  CU_ASSERT(f && f->amount == 150 && strcmp(f->txn, t1) == 0);
  CU_ASSERT_EQUAL(n_ful(o), 0);
  CU_ASSERT_EQUAL(stock(sc_wh, "resv", sku_f) >= 2, 1);

  put(T_ORDERS, o, paid_ev(o, t2, 250, T0));
  CU_ASSERT(wait_res(o, ST_COMMITTED, ANY));
  struct want_count wo = {o, LINLI__REFUND_REQUESTED__REASON__OVERPAYMENT, 1};
  CU_ASSERT(wait_for(have_refund, &wo, 30000));
  f = find_refund(o, wo.reason);
  CU_ASSERT(f && f->amount == 50 && strcmp(f->txn, t2) == 0);
  const struct rres *c = find_res(o, ST_COMMITTED);
  CU_ASSERT(c && c->amount == 250 && c->total == 200);
  CU_ASSERT_EQUAL(stock(sc_wh, "sold", sku_f), s0 + 2);

  put(T_ORDERS, pm, placed_one(pm, sc_wh, sku_f, 1, 90, NULL, T0, NULL,
                               NULL));
  put(T_ORDERS, cp, placed_one(cp, sc_wh, sku_f, 1, 90, NULL, T0, NULL,
                               "camp-1"));
  CU_ASSERT(wait_res(pm, ST_REJECTED,
                     LINLI__RESERVATION_RESULT__REASON__PRICE_MISMATCH));
  CU_ASSERT(wait_res(cp, ST_RESERVED, ANY));
  const struct rres *r = find_res(pm, ST_REJECTED);
  CU_ASSERT(r && strstr(r->detail, "100") != NULL);
  settle(1000);
  CU_ASSERT_EQUAL(n_ful(o), 1);
  CU_ASSERT_EQUAL(n_refunds(o, ANY), 2);
  CU_ASSERT_EQUAL(n_res(pm, ANY, ANY), 1);
  CU_ASSERT_EQUAL(stock(sc_wh, "avail", sku_f), f0 - 3);
}

/* Item 1: an order never gets UNKNOWN_SKU for a SKU whose listing Kafka
 * acknowledged before the order, also when the listing's catalog partition
 * belongs to another member of the group that has not applied it yet. The
 * other member here is a plain consumer of the catalog in the reserver's
 * group that applies nothing; once it leaves, the reserver takes its
 * partition over, applies the listing, and the order is reserved. */
static void test_catalog_lag(void) {
  char sku[96], o[96], err[256];
  id(sku, sizeof sku, "late-listed");
  id(o, sizeof o, "after-listing");
  put(T_INVENTORY, sc_wh,
      stock_ev(sc_wh, sku, 3, LINLI__STOCK_ADJUSTED__REASON__RESTOCK));
  CU_ASSERT_FATAL(wait_stock(sc_wh, sku, 3, 30000));

  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  CU_ASSERT_EQUAL_FATAL(
      linli_config_kafka_apply(linli_test_config(), conf, err, sizeof err),
      LINLI_OK);
  CU_ASSERT_EQUAL_FATAL(rd_kafka_conf_set(conf, "group.id", sc_group, err,
                                          sizeof err), RD_KAFKA_CONF_OK);
  rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof err);
  rd_kafka_t *x = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  CU_ASSERT_PTR_NOT_NULL_FATAL(x);
  rd_kafka_poll_set_consumer(x);
  rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(sub, T_CATALOG, RD_KAFKA_PARTITION_UA);
  CU_ASSERT_EQUAL_FATAL(rd_kafka_subscribe(x, sub), 0);
  rd_kafka_topic_partition_list_destroy(sub);
  int32_t mine = -1;
  int64_t deadline = linli_test_now_ms() + 60000;
  while (mine < 0 && linli_test_now_ms() < deadline) {
    rd_kafka_message_t *m = rd_kafka_consumer_poll(x, 200);
    if (m)
      rd_kafka_message_destroy(m); /* read, never applied nor committed */
    rd_kafka_topic_partition_list_t *a = NULL;
    if (rd_kafka_assignment(x, &a) == 0 && a) {
      if (a->cnt > 0)
        mine = a->elems[0].partition;
      rd_kafka_topic_partition_list_destroy(a);
    }
  }
  CU_ASSERT_FATAL(mine >= 0);

  /* The listing into the stalled member's partition, acknowledged; then
   * the order. */
  linli_producer_t *prod = NULL;
  CU_ASSERT_EQUAL_FATAL(linli_producer_new(linli_test_config(), "test-lag",
                                           &prod, err, sizeof err), LINLI_OK);
  struct buf l = sku_ev(sku, LINLI__SKU__STATUS__LISTED,
                        LINLI__STORAGE_CLASS__AMBIENT);
  CU_ASSERT_EQUAL(linli_producer_send_sync(prod, T_CATALOG, mine, sku,
                                           strlen(sku), l.p, l.n, NULL, 10000,
                                           NULL, NULL, err, sizeof err),
                  LINLI_OK);
  free(l.p);
  linli_producer_free(prod);
  put(T_ORDERS, o, placed_one(o, sc_wh, sku, 1, 100, NULL, T0, NULL, NULL));

  /* While the listing waits in the stalled member's partition, the order
   * waits too: no UNKNOWN_SKU. */
  for (int i = 0; i < 15; i++) {
    rd_kafka_message_t *m = rd_kafka_consumer_poll(x, 200);
    if (m)
      rd_kafka_message_destroy(m);
    settle(100);
  }
  CU_ASSERT_EQUAL(n_res(o, ANY, ANY), 0);
  rd_kafka_consumer_close(x);
  rd_kafka_destroy(x);
  CU_ASSERT(wait_res(o, ST_RESERVED, ANY));
  settle(500);
  CU_ASSERT_EQUAL(n_res(o, ANY, ANY), 1);
  CU_ASSERT_EQUAL(stock(sc_wh, "avail", sku), 2);
}

/* --------------------------------------------------------------- expiry */

static void test_expiry(void) {
  char late[96], paid[96], tp[96], tl[96];
  id(late, sizeof late, "expires");
  id(paid, sizeof paid, "paid-in-time");
  id(tp, sizeof tp, "txn-in-time");
  id(tl, sizeof tl, "txn-late");
  const char *s[] = {sku_e};
  const int q[] = {1};
  int32_t part = -1;
  send_at(T_ORDERS, late, placed_ev(late, "user-9", sc_wh, 1, s, q, T0), &part,
          NULL);
  place(paid, sc_wh, 1, s, q, T0);
  put(T_ORDERS, paid, paid_ev(paid, tp, 100, T0));
  CU_ASSERT(wait_res(late, ST_RESERVED, ANY));
  CU_ASSERT(wait_res(paid, ST_COMMITTED, ANY));
  const struct rres *r = find_res(late, ST_RESERVED);
  CU_ASSERT(r && r->expires == T0 + 30000);
  CU_ASSERT_EQUAL(stock(sc_wh, "avail", sku_e), 3);

  /* A deadline pending for an order nobody knows (its state is gone): the
   * decision is written once, dead-lettered, and the entry dropped, not
   * announced again and again. */
  char ghost[96], gkey[64], gscore[32];
  id(ghost, sizeof ghost, "ghost");
  dom_rsv_expiry_key(gkey, sizeof gkey, 0);
  snprintf(gscore, sizeof gscore, "%lld", (long long)(T0 - 1));
  const char *zadd[] = {"ZADD", gkey, gscore, ghost};
  redisReply *zr = NULL;
  CU_ASSERT_EQUAL_FATAL(linli_redis_command(redis, 4, zadd, NULL, &zr),
                        LINLI_OK);
  freeReplyObject(zr);

  /* The clock stands still at T0: nothing else expires. */
  settle(1000);
  CU_ASSERT_EQUAL(n_exp(late), 0);
  CU_ASSERT_EQUAL(n_res(late, ST_RELEASED, ANY), 0);

  /* Past the deadline: the reserver writes OrderExpired into the order's
   * own partition, then processes it and releases the stock. */
  CU_ASSERT_EQUAL_FATAL(write_clock(T0 + 31000), 0);
  struct want_count we = {late, 0, 1};
  CU_ASSERT(wait_for(have_exp, &we, 30000));
  CU_ASSERT(wait_res(late, ST_RELEASED, ANY));
  for (size_t i = 0; i < st.exp.n; i++)
    if (strcmp(st.exp.v[i].order, late) == 0) {
      CU_ASSERT_EQUAL(st.exp.v[i].part, part);
      CU_ASSERT_EQUAL(st.exp.v[i].deadline, T0 + 30000);
    }
  CU_ASSERT_EQUAL(stock(sc_wh, "avail", sku_e), 4);
  CU_ASSERT_EQUAL(stock(sc_wh, "resv", sku_e), 0);
  CU_ASSERT_EQUAL(stock(sc_wh, "sold", sku_e), 1);

  /* Paying after the expiry: refused and refunded. */
  put(T_ORDERS, late, paid_ev(late, tl, 100, T0 + 31000));
  CU_ASSERT(wait_res(late, ST_REJECTED,
                     LINLI__RESERVATION_RESULT__REASON__PAYMENT_AFTER_EXPIRY));
  struct want_count wr = {late, LINLI__REFUND_REQUESTED__REASON__LATE_PAYMENT,
                          1};
  CU_ASSERT(wait_for(have_refund, &wr, 30000));

  /* Earlier scenarios' unpaid reservations expire too. */
  char ok[96], good[96];
  id(ok, sizeof ok, "ok");
  id(good, sizeof good, "good-after-bad");
  CU_ASSERT(wait_res(ok, ST_RELEASED, ANY));
  CU_ASSERT(wait_res(good, ST_RELEASED, ANY));

  /* Decided once; a paid order never expires. */
  settle(1500);
  CU_ASSERT_EQUAL(n_exp(ghost), 1);
  CU_ASSERT_EQUAL(pending_deadline(0, ghost), 0);
  int ghost_dlq = 0;
  for (size_t i = 0; i < st.dlq.n; i++)
    if (strcmp(st.dlq.v[i].key, ghost) == 0 &&
        strcmp(st.dlq.v[i].consumer, "reserver") == 0) {
      ghost_dlq++;
      CU_ASSERT(strstr(st.dlq.v[i].reason, "unknown order") != NULL);
      CU_ASSERT_STRING_EQUAL(st.dlq.v[i].part, "0");
    }
  CU_ASSERT_EQUAL(ghost_dlq, 1);
  CU_ASSERT_EQUAL(n_exp(late), 1);
  CU_ASSERT_EQUAL(n_res(late, ST_RELEASED, ANY), 1);
  CU_ASSERT_EQUAL(n_res(late, ANY, ANY), 3);
  CU_ASSERT_EQUAL(n_refunds(late, ANY), 1);
  CU_ASSERT_EQUAL(n_exp(paid), 0);
  CU_ASSERT_EQUAL(n_res(paid, ANY, ANY), 2);
  CU_ASSERT_EQUAL(stock(sc_wh, "avail", sku_e), 4);
  CU_ASSERT_EQUAL(stock(sc_wh, "sold", sku_e), 1);
  /* Everything released: A and B hold nothing any more. */
  CU_ASSERT_EQUAL(stock(sc_wh, "resv", sku_a), 0);
  CU_ASSERT_EQUAL(stock(sc_wh, "resv", sku_b), 0);
  /* And no deadline is left pending for them. */
  CU_ASSERT_EQUAL(pending_deadline(part, late), 0);
  CU_ASSERT_EQUAL(pending_deadline(-1, paid), 0);
  CU_ASSERT_EQUAL(pending_deadline(-1, ok), 0);
}

/* SIGTERM drains, exit 0 (and no leak). */
static void test_stop(void) { stop_reserver(&sc_rsv); }

/* A new consumer group re-reading the log (from a position the first group
 * also processed and committed) applies nothing twice. Outcomes are kept
 * only until the next batch of their shard and partition (issue 8): an
 * input of the last batch gets its recorded outcome back and is reported
 * again as the same event (same id), an older one is skipped. Runs after
 * test_stop: the first reserver is gone. */
static char rr_group[96], rr_order[96], rr_txn[96];
static int32_t rr_part = -1;
static int64_t rr_placed_off = -1;

/* Part one, while the first reserver runs: mark the re-read position, then
 * an order placed and paid. */
static void test_reread_prepare(void) {
  linli_test_unique("rsv-rr", rr_group, sizeof rr_group);
  CU_ASSERT_EQUAL_FATAL(linli_test_group_start_at_end(rr_group, INPUTS), 0);
  id(rr_order, sizeof rr_order, "reread");
  id(rr_txn, sizeof rr_txn, "txn-reread");
  const char *s[] = {sku_a};
  const int q[] = {1};
  send_at(T_ORDERS, rr_order, placed_ev(rr_order, "user-5", sc_wh, 1, s, q, T0),
          &rr_part, &rr_placed_off);
  put(T_ORDERS, rr_order, paid_ev(rr_order, rr_txn, 100, T0));
  CU_ASSERT(wait_res(rr_order, ST_COMMITTED, ANY));
  struct want_count wf = {rr_order, 0, 1};
  CU_ASSERT(wait_for(have_ful, &wf, 30000));
}

static void test_reread(void) {
  CU_ASSERT_FATAL(rr_placed_off >= 0);
  long long sold = stock(sc_wh, "sold", sku_a);
  long long avail = stock(sc_wh, "avail", sku_a);
  /* An order after them in the same partition (same key), which only the
   * new group processes: once it is reported, the re-read is done. */
  char after[96];
  id(after, sizeof after, "reread-after");
  const char *s[] = {sku_a};
  const int q[] = {1};
  struct rsv again;
  memset(&again, 0, sizeof again);
  spawn_scenario_reserver(&again, rr_group, "reread");
  put(T_ORDERS, rr_order, placed_ev(after, "user-5", sc_wh, 1, s, q, T0));
  CU_ASSERT(wait_res(after, ST_RESERVED, ANY));
  settle(500);
  /* Reported again only as the same events; no effect on the stock. */
  for (int stt = ST_RESERVED; stt <= ST_COMMITTED; stt++) {
    const char *first = NULL;
    for (size_t i = 0; i < st.res.n; i++) {
      if (strcmp(st.res.v[i].order, rr_order) != 0 ||
          st.res.v[i].status != stt)
        continue;
      if (!first)
        first = st.res.v[i].eid;
      else
        CU_ASSERT_STRING_EQUAL(st.res.v[i].eid, first);
    }
  }
  CU_ASSERT(n_res(rr_order, ST_RESERVED, ANY) >= 1);
  CU_ASSERT(n_res(rr_order, ST_COMMITTED, ANY) >= 1);
  CU_ASSERT(n_ful(rr_order) >= 1);
  CU_ASSERT_EQUAL(stock(sc_wh, "sold", sku_a), sold);
  CU_ASSERT_EQUAL(stock(sc_wh, "avail", sku_a), avail - 1);
  stop_reserver(&again); /* it kept running: exit 0 */
}

/* ========================================================== flash sale */

#define FS_ORDERS 2000
#define FS_USERS 500
#define FS_UNITS 100
#define FS_INSTANCES 3

struct fs {
  char prefix[72]; /* order ids: <prefix><i> */
  int *count;      /* results per order and status [i * 5 + status] */
};

static int fs_index(const struct fs *f, const char *order) {
  size_t pl = strlen(f->prefix);
  if (strncmp(order, f->prefix, pl) != 0)
    return -1;
  char *end = NULL;
  long i = strtol(order + pl, &end, 10);
  return (*end == '\0' && i >= 0 && i < FS_ORDERS) ? (int)i : -1;
}

/* Recount from the store: per order and status. Returns orders with at
 * least one result. */
static int fs_recount(const struct fs *f) {
  memset(f->count, 0, sizeof *f->count * FS_ORDERS * 5);
  for (size_t k = 0; k < st.res.n; k++) {
    int i = fs_index(f, st.res.v[k].order);
    int s = st.res.v[k].status;
    if (i >= 0 && s >= 0 && s < 5)
      f->count[i * 5 + s]++;
  }
  int done = 0;
  for (int i = 0; i < FS_ORDERS; i++) {
    int any = 0;
    for (int s = 0; s < 5; s++)
      any += f->count[i * 5 + s];
    done += any > 0;
  }
  return done;
}

struct fs_want {
  const struct fs *f;
  int n;
};
static int fs_have(const void *a) {
  const struct fs_want *w = a;
  return fs_recount(w->f) >= w->n;
}

static void flash_sale(int kill_one) {
  struct fs f;
  char wh[96], sku[96], group[96], tag[16];
  snprintf(tag, sizeof tag, "fs%d", kill_one);
  snprintf(wh, sizeof wh, "%s-%s-W", RUN, tag);
  snprintf(sku, sizeof sku, "%s-%s-S", RUN, tag);
  snprintf(f.prefix, sizeof f.prefix, "%s-%s-o", RUN, tag);
  f.count = calloc(FS_ORDERS * 5, sizeof *f.count);
  CU_ASSERT_FATAL(f.count != NULL);
  wait_orders_idle();
  linli_test_unique("rsv-fs", group, sizeof group);
  CU_ASSERT_EQUAL_FATAL(linli_test_group_start_at_end(group, INPUTS), 0);

  /* A dead member's partitions move after its session times out: keep it
   * short so the SIGKILL case does not wait 45 s. */
  const char *extra[] = {"LINLI_KAFKA_SESSION_TIMEOUT_MS=6000",
                         "LINLI_KAFKA_HEARTBEAT_INTERVAL_MS=1000", NULL};
  struct rsv rs[FS_INSTANCES];
  memset(rs, 0, sizeof rs);
  for (int i = 0; i < FS_INSTANCES; i++) {
    snprintf(rs[i].inst, sizeof rs[i].inst, "%s-%s-%d", RUN, tag, i);
    spawn_reserver(&rs[i], group, extra);
  }

  put(T_CATALOG, sku,
       sku_ev(sku, LINLI__SKU__STATUS__LISTED, LINLI__STORAGE_CLASS__CHILLED));
  put(T_INVENTORY, wh,
       stock_ev(wh, sku, 60, LINLI__STOCK_ADJUSTED__REASON__RESTOCK));
  put(T_INVENTORY, wh,
       stock_ev(wh, sku, FS_UNITS - 60, LINLI__STOCK_ADJUSTED__REASON__RESTOCK));
  CU_ASSERT_FATAL(wait_catalog(sku, 'L', 60000));
  CU_ASSERT_FATAL(wait_stock(wh, sku, FS_UNITS, 30000));

  /* 2,000 one-unit orders from 500 users, all at once. */
  char(*ids)[96] = calloc(FS_ORDERS, sizeof *ids);
  const char **keys = calloc(FS_ORDERS, sizeof *keys);
  const void **vals = calloc(FS_ORDERS, sizeof *vals);
  size_t *lens = calloc(FS_ORDERS, sizeof *lens);
  struct buf *bufs = calloc(FS_ORDERS, sizeof *bufs);
  CU_ASSERT_FATAL(ids && keys && vals && lens && bufs);
  const char *s[] = {sku};
  const int q[] = {1};
  int64_t now = linli_clock_now_ms();
  for (int i = 0; i < FS_ORDERS; i++) {
    char user[96];
    snprintf(ids[i], sizeof ids[i], "%s%d", f.prefix, i);
    snprintf(user, sizeof user, "%s-u%d", RUN, i % FS_USERS);
    bufs[i] = placed_ev(ids[i], user, wh, 1, s, q, now);
    keys[i] = ids[i];
    vals[i] = bufs[i].p;
    lens[i] = bufs[i].n;
  }
  if (!kill_one) {
    CU_ASSERT_EQUAL_FATAL(
        linli_test_produce_batch(T_ORDERS, FS_ORDERS, keys, vals, lens), 0);
  } else {
    /* Kill an instance in the middle: once results of the first half are
     * coming out, SIGKILL it (its open transaction, if any, dies with it),
     * send the second half, and restart it under the same instance id (it
     * fences its dead self and aborts that transaction). */
    size_t half = FS_ORDERS / 2;
    CU_ASSERT_EQUAL_FATAL(
        linli_test_produce_batch(T_ORDERS, half, keys, vals, lens), 0);
    struct fs_want w = {&f, 200};
    CU_ASSERT(wait_for(fs_have, &w, 60000));
    linli_test_stop(rs[0].pid, 1);
    rs[0].pid = 0;
    CU_ASSERT_EQUAL_FATAL(linli_test_produce_batch(T_ORDERS, FS_ORDERS - half,
                                                   keys + half, vals + half,
                                                   lens + half),
                          0);
    spawn_reserver(&rs[0], group, extra);
  }
  for (int i = 0; i < FS_ORDERS; i++)
    free(bufs[i].p);
  free(bufs);
  free(lens);
  free(vals);
  free(keys);
  free(ids);

  struct fs_want all = {&f, FS_ORDERS};
  int complete = wait_for(fs_have, &all, kill_one ? 120000 : 90000);
  CU_ASSERT(complete);
  settle(2000); /* any duplicate would show now */
  int done = fs_recount(&f);
  CU_ASSERT_EQUAL(done, FS_ORDERS);

  int reserved = 0, rejected = 0, dups = 0, other = 0;
  for (int i = 0; i < FS_ORDERS; i++) {
    for (int s2 = 0; s2 < 5; s2++)
      if (f.count[i * 5 + s2] > 1)
        dups++;
    reserved += f.count[i * 5 + ST_RESERVED] > 0;
    rejected += f.count[i * 5 + ST_REJECTED] > 0;
    other += f.count[i * 5 + ST_RELEASED] + f.count[i * 5 + ST_COMMITTED] +
             f.count[i * 5 + 0];
  }
  int oos = 0, neg = 0;
  for (size_t k = 0; k < st.res.n; k++) {
    const struct rres *r = &st.res.v[k];
    if (fs_index(&f, r->order) < 0 || r->status != ST_REJECTED)
      continue;
    if (r->reason == LINLI__RESERVATION_RESULT__REASON__OUT_OF_STOCK &&
        r->nshort == 1 && r->sreq[0] == 1)
      oos++;
    /* A one-unit order is refused only when nothing is left, never when
     * the count went below zero. */
    if (r->nshort != 1 || r->savail[0] != 0)
      neg++;
  }
  CU_ASSERT_EQUAL(reserved, FS_UNITS);
  CU_ASSERT_EQUAL(rejected, FS_ORDERS - FS_UNITS);
  CU_ASSERT_EQUAL(oos, FS_ORDERS - FS_UNITS);
  CU_ASSERT_EQUAL(neg, 0);
  CU_ASSERT_EQUAL(dups, 0);
  CU_ASSERT_EQUAL(other, 0);
  CU_ASSERT_EQUAL(stock(wh, "avail", sku), 0);
  CU_ASSERT_EQUAL(stock(wh, "resv", sku), FS_UNITS);
  CU_ASSERT(stock(wh, "sold", sku) <= 0);
  if (reserved != FS_UNITS || dups || done != FS_ORDERS)
    fprintf(stderr, "\n  flash sale: %d done, %d reserved, %d rejected, "
            "%d duplicates; logs /tmp/%s-%s-*.log\n",
            done, reserved, rejected, dups, RUN, tag);

  for (int i = 0; i < FS_INSTANCES; i++)
    stop_reserver(&rs[i]);
  free(f.count);
}

static void test_flash_sale(void) { flash_sale(0); }
static void test_flash_sale_sigkill(void) { flash_sale(1); }

/* -------------------------------------------------- record ahead */

/* The ledger may record a restock before any reserver has seen the
 * warehouse. The reserver then loads the warehouse from the record, which
 * already holds that restock, and must not add it a second time when it
 * reads it; later adjustments still apply. */
static void test_record_ahead(void) {
  char wh[96], sku[96], group[96], eid[LINLI_ID_BUFSZ], part[16], off[24];
  snprintf(wh, sizeof wh, "%s-ra-W", RUN);
  snprintf(sku, sizeof sku, "%s-ra-S", RUN);
  /* Another group's reserver would load the warehouse first. */
  wait_orders_idle();
  linli_test_unique("rsv-ra", group, sizeof group);
  CU_ASSERT_EQUAL_FATAL(linli_test_group_start_at_end(group, INPUTS), 0);
  put(T_CATALOG, sku,
      sku_ev(sku, LINLI__SKU__STATUS__LISTED, LINLI__STORAGE_CLASS__AMBIENT));
  int32_t p = -1;
  int64_t o = -1;
  send_at(T_INVENTORY, wh,
          stock_ev_id(wh, sku, 5, LINLI__STOCK_ADJUSTED__REASON__RESTOCK, eid),
          &p, &o);
  snprintf(part, sizeof part, "%d", (int)p);
  snprintf(off, sizeof off, "%lld", (long long)o);

  /* Record it as the ledger does (consumers/ledger/apply_stock.c): the
   * movement once per event id, the stock only with a new movement, under
   * the same lock, so a ledger running on this database agrees. */
  const linli_config_t *cfg = linli_test_config();
  linli_pg_t *pg = NULL;
  char err[256];
  CU_ASSERT_FATAL(cfg != NULL);
  CU_ASSERT_EQUAL_FATAL(linli_pg_connect(linli_config_str(cfg, "pg.conninfo"),
                                         5000, &pg, err, sizeof err),
                        LINLI_OK);
  const char *params[] = {wh, sku, eid, part, off};
  int rc = pg_run(
      pg,
      "WITH lk AS (SELECT pg_advisory_xact_lock(hashtext($1 || '/' || $2))), "
      "mv AS (INSERT INTO stock_movements (event_id, warehouse_id, sku_id, "
      "kind, quantity, reason, topic, partition, kafka_offset, occurred_at) "
      "SELECT $3, $1, $2, 'ADJUST', 5, 'RESTOCK', 'linli.inventory.v1', "
      "$4::int, $5::bigint, now() FROM lk "
      "ON CONFLICT (event_id, sku_id) DO NOTHING RETURNING 1) "
      "INSERT INTO inventory (warehouse_id, sku_id, initial, available) "
      "SELECT $1, $2, 5, 5 FROM mv ON CONFLICT (warehouse_id, sku_id) DO "
      "UPDATE SET initial = inventory.initial + 5, "
      "available = inventory.available + 5",
      5, params);
  linli_pg_free(pg);
  CU_ASSERT_EQUAL_FATAL(rc, LINLI_OK);

  struct rsv r;
  memset(&r, 0, sizeof r);
  snprintf(r.inst, sizeof r.inst, "%s-ra", RUN);
  spawn_reserver(&r, group, NULL);
  CU_ASSERT(wait_catalog(sku, 'L', 60000));
  CU_ASSERT(wait_stock(wh, sku, 5, 60000));
  put(T_INVENTORY, wh,
      stock_ev(wh, sku, 3, LINLI__STOCK_ADJUSTED__REASON__RESTOCK));
  CU_ASSERT(wait_stock(wh, sku, 8, 30000));
  settle(1000);
  CU_ASSERT_EQUAL(stock(wh, "avail", sku), 8); /* not 13 */
  CU_ASSERT_EQUAL(stock(wh, "init", sku), 8);
  stop_reserver(&r);
  /* It was this reserver that loaded the warehouse from the record. */
  FILE *f = fopen(r.log, "r");
  char line[1024];
  int loaded = 0;
  while (f && fgets(line, sizeof line, f))
    loaded |= strstr(line, "stock loaded from the record") != NULL &&
              strstr(line, wh) != NULL;
  if (f)
    fclose(f);
  CU_ASSERT(loaded);
}

static int flash_init(void) { return setup_once(); }

/* ============================================== batches (issue 8 tests) */

/* One warehouse, one SKU, `units` in stock; orders of one unit; payments
 * for the first npaid of them right after (same key: same partition, so
 * often in the same batch as their OrderPlaced). */
struct br {
  char tag[16], wh[96], sku[96], prefix[96], group[96];
  int units, norders, npaid;
  int round; /* orders <prefix><round>-<i> */
};

static void br_setup(struct br *b, const char *tag, int units) {
  memset(b, 0, sizeof *b);
  snprintf(b->tag, sizeof b->tag, "%s", tag);
  snprintf(b->wh, sizeof b->wh, "%s-%s-W", RUN, tag);
  snprintf(b->sku, sizeof b->sku, "%s-%s-S", RUN, tag);
  b->units = units;
  wait_orders_idle();
  linli_test_unique("rsv-br", b->group, sizeof b->group);
  CU_ASSERT_EQUAL_FATAL(linli_test_group_start_at_end(b->group, INPUTS), 0);
  /* Catalog and stock applied by a first instance, which then leaves:
   * the group's position is past them. */
  struct rsv r0;
  memset(&r0, 0, sizeof r0);
  snprintf(r0.inst, sizeof r0.inst, "%s-%s-setup", RUN, tag);
  spawn_reserver(&r0, b->group, NULL);
  put(T_CATALOG, b->sku,
      sku_ev(b->sku, LINLI__SKU__STATUS__LISTED,
             LINLI__STORAGE_CLASS__AMBIENT));
  put(T_INVENTORY, b->wh,
      stock_ev(b->wh, b->sku, units, LINLI__STOCK_ADJUSTED__REASON__RESTOCK));
  CU_ASSERT_FATAL(wait_catalog(b->sku, 'L', 60000));
  CU_ASSERT_FATAL(wait_stock(b->wh, b->sku, units, 30000));
  stop_reserver(&r0);
}

static void br_order_id(const struct br *b, int round, int i, char *buf,
                        size_t len) {
  snprintf(buf, len, "%s-%s-r%d-o%d", RUN, b->tag, round, i);
}

/* Produce a round of n orders and npaid payments (100 fen each). */
static void br_produce(struct br *b, int n, int npaid) {
  b->round++;
  b->norders = n;
  b->npaid = npaid;
  size_t total = (size_t)n + (size_t)npaid;
  char(*ids)[96] = calloc(total, sizeof *ids);
  const char **keys = calloc(total, sizeof *keys);
  const void **vals = calloc(total, sizeof *vals);
  size_t *lens = calloc(total, sizeof *lens);
  struct buf *bufs = calloc(total, sizeof *bufs);
  CU_ASSERT_FATAL(ids && keys && vals && lens && bufs);
  const char *sk[] = {b->sku};
  const int q[] = {1};
  for (size_t k = 0; k < total; k++) {
    int i = k < (size_t)n ? (int)k : (int)(k - (size_t)n);
    br_order_id(b, b->round, i, ids[k], sizeof ids[k]);
    if (k < (size_t)n) {
      bufs[k] = placed_ev(ids[k], "user-b", b->wh, 1, sk, q, T0);
    } else {
      char txn[112];
      snprintf(txn, sizeof txn, "%s-t", ids[k]);
      bufs[k] = paid_ev(ids[k], txn, 100, T0);
    }
    keys[k] = ids[k];
    vals[k] = bufs[k].p;
    lens[k] = bufs[k].n;
  }
  CU_ASSERT_EQUAL_FATAL(linli_test_produce_batch(T_ORDERS, total, keys, vals,
                                                 lens), 0);
  for (size_t k = 0; k < total; k++)
    free(bufs[k].p);
  free(bufs);
  free(lens);
  free(vals);
  free(keys);
  free(ids);
}

/* Per order of the current round: results by kind, refunds, fulfilment
 * items, counted in one pass over what was read (the store is large). */
enum { BR_RES, BR_OOS, BR_COMMIT, BR_NOTRES, BR_ALL, BR_REF, BR_FUL, BR_N };

static int br_index(const struct br *b, const char *order) {
  char prefix[112];
  int n = snprintf(prefix, sizeof prefix, "%s-%s-r%d-o", RUN, b->tag,
                   b->round);
  if (strncmp(order, prefix, (size_t)n) != 0)
    return -1;
  char *end = NULL;
  long i = strtol(order + n, &end, 10);
  return *end == '\0' && i >= 0 && i < b->norders ? (int)i : -1;
}

static int *br_count(const struct br *b) {
  int *c = calloc((size_t)b->norders * BR_N, sizeof *c);
  CU_ASSERT_FATAL(c != NULL);
  for (size_t k = 0; k < st.res.n; k++) {
    const struct rres *r = &st.res.v[k];
    int i = br_index(b, r->order);
    if (i < 0)
      continue;
    int *e = c + i * BR_N;
    e[BR_ALL]++;
    if (r->status == ST_RESERVED)
      e[BR_RES]++;
    else if (r->status == ST_COMMITTED)
      e[BR_COMMIT]++;
    else if (r->reason == LINLI__RESERVATION_RESULT__REASON__OUT_OF_STOCK)
      e[BR_OOS]++;
    else if (r->reason == LINLI__RESERVATION_RESULT__REASON__NOT_RESERVED)
      e[BR_NOTRES]++;
  }
  for (size_t k = 0; k < st.ref.n; k++) {
    int i = br_index(b, st.ref.v[k].order);
    if (i >= 0)
      c[i * BR_N + BR_REF]++;
  }
  for (size_t k = 0; k < st.ful.n; k++) {
    int i = br_index(b, st.ful.v[k].order);
    if (i >= 0)
      c[i * BR_N + BR_FUL]++;
  }
  return c;
}

/* Every order of the round has its placement result (and, if paid, its
 * payment result). */
static int br_all_decided(const struct br *b) {
  int *c = br_count(b), n = 0;
  for (int i = 0; i < b->norders; i++) {
    const int *e = c + i * BR_N;
    n += e[BR_RES] + e[BR_OOS] >= 1 &&
         (i >= b->npaid || e[BR_COMMIT] + e[BR_NOTRES] >= 1);
  }
  free(c);
  return n >= b->norders;
}

/* The same while reading: counted at most twice a second. */
static int br_decided(const void *arg) {
  static int64_t last;
  int64_t now = linli_test_now_ms();
  if (now - last < 500)
    return 0;
  last = now;
  return br_all_decided(arg);
}

/* Every order of the round decided exactly once, payments judged once. */
static void br_check(const struct br *b, int *reserved_out,
                     int *committed_out) {
  int64_t deadline = linli_test_now_ms() + 120000;
  while (!br_all_decided(b) && linli_test_now_ms() < deadline)
    wait_for(br_decided, b, 2000);
  settle(2000); /* a duplicate would show now */
  int *c = br_count(b);
  int reserved = 0, committed = 0, bad = 0;
  for (int i = 0; i < b->norders; i++) {
    const int *e = c + i * BR_N;
    int ok = e[BR_RES] + e[BR_OOS] == 1 &&
             e[BR_ALL] == 1 + (i < b->npaid);
    if (i < b->npaid)
      ok = ok && e[BR_COMMIT] == e[BR_RES] && e[BR_NOTRES] == e[BR_OOS] &&
           e[BR_REF] == e[BR_OOS] && e[BR_FUL] == e[BR_COMMIT];
    else
      ok = ok && e[BR_REF] == 0 && e[BR_FUL] == 0;
    if (!ok && bad++ < 5)
      fprintf(stderr, "\n  order %d: reserved %d, out of stock %d, "
              "committed %d, not reserved %d, all %d, refunds %d\n", i,
              e[BR_RES], e[BR_OOS], e[BR_COMMIT], e[BR_NOTRES], e[BR_ALL],
              e[BR_REF]);
    reserved += e[BR_RES];
    committed += e[BR_COMMIT];
  }
  free(c);
  CU_ASSERT_EQUAL(bad, 0);
  if (reserved_out)
    *reserved_out = reserved;
  if (committed_out)
    *committed_out = committed;
}

static void br_check_stock(const struct br *b, int reserved, int committed) {
  long long a = stock(b->wh, "avail", b->sku), r = stock(b->wh, "resv", b->sku),
            s = stock(b->wh, "sold", b->sku);
  if (r < 0)
    r = 0;
  if (s < 0)
    s = 0;
  CU_ASSERT_EQUAL(a + r + s, b->units);
  CU_ASSERT_EQUAL(s, committed);
  CU_ASSERT_EQUAL(r, reserved - committed);
  CU_ASSERT_EQUAL(stock(b->wh, "init", b->sku), b->units);
}

/* Wait (up to timeout_ms) for a child to end by itself; its status. */
static int wait_exit(pid_t pid, int timeout_ms) {
  int64_t deadline = linli_test_now_ms() + timeout_ms;
  int status = 0;
  while (linli_test_now_ms() < deadline) {
    pid_t w = waitpid(pid, &status, WNOHANG);
    if (w == pid)
      return status;
    usleep(100 * 1000);
  }
  return -1;
}

/* (a) SIGKILL between the Redis round trip and the Kafka commit of a
 * 500-record batch, then a restart: every order decided exactly once, the
 * same results (the recorded outcomes come back), stock exact. */
static void test_batch_sigkill(void) {
  struct br b;
  br_setup(&b, "bk", 300);
  br_produce(&b, 400, 100); /* 500 records */
  const char *fault[] = {"LINLI_FAULT_KILL_BEFORE_COMMIT=1",
                         "LINLI_RUNNER_FLUSH_INTERVAL_MS=10000",
                         "LINLI_KAFKA_SESSION_TIMEOUT_MS=6000",
                         "LINLI_KAFKA_HEARTBEAT_INTERVAL_MS=1000", NULL};
  struct rsv r;
  memset(&r, 0, sizeof r);
  snprintf(r.inst, sizeof r.inst, "%s-bk-1", RUN);
  spawn_reserver(&r, b.group, fault);
  /* spawn_reserver's own flush interval comes first in the environment;
   * the fault list's later entry wins (setenv order). */
  int status = wait_exit(r.pid, 90000);
  CU_ASSERT(status >= 0 && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  r.pid = 0;
  /* Its effects are in Redis, its outputs were never committed. */
  settle(1000);
  int *c = br_count(&b), seen = 0;
  for (int i = 0; i < b.norders; i++)
    seen += c[i * BR_N + BR_ALL];
  free(c);
  CU_ASSERT_EQUAL(seen, 0);
  long long moved = stock(b.wh, "avail", b.sku);
  CU_ASSERT(moved < b.units); /* the killed batch did apply its effects */

  spawn_reserver(&r, b.group, NULL); /* same instance id: fences the dead */
  int reserved = 0, committed = 0;
  br_check(&b, &reserved, &committed);
  CU_ASSERT_EQUAL(reserved, 300);
  CU_ASSERT(committed > 0);
  br_check_stock(&b, reserved, committed);
  /* The restart re-applied nothing: the stock stands where the killed
   * batch left it. */
  CU_ASSERT_EQUAL(stock(b.wh, "avail", b.sku), moved);
  stop_reserver(&r);
}

/* (b) A second instance joins while the first holds an open batch: every
 * order decided once, stock exact. */
static void test_batch_rebalance(void) {
  struct br b;
  br_setup(&b, "rb", 500);
  const char *slow[] = {"LINLI_RUNNER_FLUSH_INTERVAL_MS=3000",
                        "LINLI_KAFKA_SESSION_TIMEOUT_MS=6000",
                        "LINLI_KAFKA_HEARTBEAT_INTERVAL_MS=1000", NULL};
  struct rsv r1, r2;
  memset(&r1, 0, sizeof r1);
  memset(&r2, 0, sizeof r2);
  snprintf(r1.inst, sizeof r1.inst, "%s-rb-1", RUN);
  snprintf(r2.inst, sizeof r2.inst, "%s-rb-2", RUN);
  spawn_reserver(&r1, b.group, slow);
  usleep(3000 * 1000); /* r1 owns every partition (no assertion on it) */
  br_produce(&b, 800, 200);
  spawn_reserver(&r2, b.group, slow);
  int reserved = 0, committed = 0;
  br_check(&b, &reserved, &committed);
  CU_ASSERT_EQUAL(reserved, 500);
  br_check_stock(&b, reserved, committed);
  stop_reserver(&r2);
  stop_reserver(&r1);
}

/* Outcome fields kept in the warehouse shard's outcome hashes (one per
 * input partition: config/topics.conf has 6 of orders and of inventory),
 * and whether every such hash expires. */
static long long outcome_fields(const char *wh, int *all_expire) {
  long long fields = 0;
  *all_expire = 1;
  const char *topics[] = {T_ORDERS, T_INVENTORY};
  for (int t = 0; t < 2; t++)
    for (int p = 0; p < 6; p++) {
      char suffix[192], key[256];
      snprintf(suffix, sizeof suffix, "out:%s:%d", topics[t], p);
      CU_ASSERT_EQUAL(dom_rsv_key(key, sizeof key, wh, suffix), LINLI_OK);
      const char *hlen[] = {"HLEN", key};
      const char *ttl[] = {"TTL", key};
      redisReply *h = NULL, *x = NULL;
      CU_ASSERT_EQUAL(linli_redis_command(redis, 2, hlen, NULL, &h), LINLI_OK);
      CU_ASSERT_EQUAL(linli_redis_command(redis, 2, ttl, NULL, &x), LINLI_OK);
      if (h && h->type == REDIS_REPLY_INTEGER)
        fields += h->integer;
      /* -2: no such key; -1: a key that never expires */
      if (x && x->type == REDIS_REPLY_INTEGER && x->integer == -1)
        *all_expire = 0;
      freeReplyObject(h);
      freeReplyObject(x);
    }
  return fields;
}

/* (c) After N batches the outcomes kept in Redis do not grow with N: only
 * the latest batch's per partition (plus one mark field each), and no key
 * per input record. */
static void test_outcome_memory(void) {
  struct br b;
  br_setup(&b, "om", 10000);
  struct rsv r;
  memset(&r, 0, sizeof r);
  snprintf(r.inst, sizeof r.inst, "%s-om-1", RUN);
  spawn_reserver(&r, b.group, NULL);
  const int rounds = 6, per_round = 100;
  long long first = -1, last = -1;
  for (int k = 0; k < rounds; k++) {
    br_produce(&b, per_round, 0);
    br_check(&b, NULL, NULL);
    int expire = 0;
    last = outcome_fields(b.wh, &expire);
    CU_ASSERT(expire);
    if (first < 0)
      first = last;
  }
  /* 600 records processed; at most two rounds' worth (a partition that saw
   * nothing in the last round keeps its previous batch) and one "max" field
   * per orders and inventory partition. */
  fprintf(stderr, "\n  outcome fields after round 1: %lld, after round %d: "
          "%lld\n", first, rounds, last);
  CU_ASSERT(last <= 2 * per_round + 12);
  CU_ASSERT(last < (long long)rounds * per_round / 2);
  stop_reserver(&r);
}

/* ============================================================ register */

int linli_test_register(void) {
  atexit(teardown);
  /* LINLI_TEST_SUITE=<part of a suite name> runs only that suite. */
  const char *only = getenv("LINLI_TEST_SUITE");
#define WANT(name) (!only || strstr(name, only))
  CU_pSuite s = CU_add_suite("reserver scenarios (real stack)", scenarios_init,
                             scenarios_cleanup);
  if (!s)
    return -1;
  if (!WANT("reserver scenarios"))
    CU_set_suite_active(s, CU_FALSE);
  CU_add_test(s, "start; catalog and stock applied", test_setup);
  CU_add_test(s, "unknown and delisted SKUs", test_catalog_rejections);
  CU_add_test(s, "multi-line orders are all-or-nothing; duplicates",
              test_multi_line);
  CU_add_test(s, "payment, repeated notice, double payment", test_payment);
  CU_add_test(s, "cancel, then payment after cancel", test_cancel);
  CU_add_test(s, "bad input goes to the DLQ; the partition flows",
              test_bad_input);
  CU_add_test(s, "a warehouse lost from Redis is reloaded, not sold out",
              test_lost_state);
  CU_add_test(s, "a payment for an unknown order is refunded",
              test_unknown_order_payment);
  CU_add_test(s, "the same event again: the same result; another: DUPLICATE",
              test_same_event);
  CU_add_test(s, "underpaid, overpaid, a price not the catalog's",
              test_money);
  CU_add_test(s, "a listing acknowledged before the order is waited for",
              test_catalog_lag);
  CU_add_test(s, "expiry by the injected clock; late payment",
              test_expiry);
  CU_add_test(s, "(re-read position marked; an order paid)",
              test_reread_prepare);
  CU_add_test(s, "SIGTERM drains and exits 0", test_stop);
  CU_add_test(s, "a new group re-reads: nothing applied or reported twice",
              test_reread);
  CU_pSuite f = CU_add_suite("reserver flash sale (real stack)", flash_init,
                             NULL);
  if (!f)
    return -1;
  if (!WANT("reserver flash sale"))
    CU_set_suite_active(f, CU_FALSE);
  CU_add_test(f, "2000 orders, 100 units, 3 instances", test_flash_sale);
  CU_add_test(f, "the same with an instance SIGKILLed and restarted",
              test_flash_sale_sigkill);
  CU_add_test(f, "a warehouse the record holds ahead of the reserver",
              test_record_ahead);
  CU_pSuite bs = CU_add_suite("reserver batches (real stack)", flash_init,
                              NULL);
  if (!bs)
    return -1;
  if (!WANT("reserver batches"))
    CU_set_suite_active(bs, CU_FALSE);
  CU_add_test(bs, "SIGKILL between Redis and the commit of a 500-record batch",
              test_batch_sigkill);
  CU_add_test(bs, "a second instance joins during a batch",
              test_batch_rebalance);
  CU_add_test(bs, "outcome memory does not grow with the number of batches",
              test_outcome_memory);
  /* LINLI_TEST_NAME=<part of a test name> runs only the tests named so
   * (with the suite's earlier tests that set up state, at your risk). */
  const char *name = getenv("LINLI_TEST_NAME");
  if (only || name)
    CU_set_fail_on_inactive(CU_FALSE);
  for (CU_pSuite su = CU_get_registry()->pSuite; name && su; su = su->pNext)
    for (CU_pTest t = su->pTest; t; t = t->pNext)
      if (!strstr(t->pName, name))
        CU_set_test_active(t, CU_FALSE);
  return 0;
}
