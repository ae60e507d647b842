/*
 * test_domain_events.c - unit tests of libdomain's validation of every
 * upstream event kind (domain/orders.h, stock.h, delivery.h): a table of
 * bad events, each with one field at fault, judged by the member check
 * (what the gateway answers 400 with) and by the envelope check (what the
 * reserver and the ledger write into a DLQ reason), which must name the
 * same field with the same message.
 */
#include <CUnit/CUnit.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "domain/delivery.h"
#include "domain/orders.h"
#include "domain/stock.h"
#include "linli/error.h"
#include "linli_test.h"

#define NOW INT64_C(1800000000000)
#define MAX_LINES 100 /* orders.max_lines as configured */
#define BIG (DOM_ORDER_MAX_LINES + 1)

struct fx {
  Linli__Meta meta;
  Linli__OrderLine l[3];
  Linli__OrderLine *lp[3];
  Linli__PickupDelivery pick;
  Linli__HomeDelivery home;
  Linli__OrderPlaced placed;
  Linli__OrderPaid paid;
  Linli__OrderCancelled cancelled;
  Linli__OrderExpired expired;
  Linli__OrderEvent oe;
  Linli__Sku sku;
  Linli__CatalogEvent ce;
  Linli__StockAdjusted adj;
  Linli__InventoryEvent ie;
  Linli__OutForDelivery ofd;
  Linli__ArrivedAtPickupPoint arr;
  Linli__DeliveryFailed dfail;
  Linli__DeliveryEvent de;
};

static Linli__OrderLine *big_lines[BIG];

/* Valid events of every kind. */
static void fx_init(struct fx *f) {
  memset(f, 0, sizeof *f);
  linli__meta__init(&f->meta);
  f->meta.event_id = "ev-1";
  f->meta.occurred_at_ms = NOW;
  f->meta.producer = "test";
  f->meta.trace_id = "";
  f->meta.causation_id = "";
  static const char *skus[] = {"rice-5kg", "eggs-30", "milk-1l"};
  for (int i = 0; i < 3; i++) {
    linli__order_line__init(&f->l[i]);
    f->l[i].sku_id = (char *)skus[i];
    f->l[i].quantity = 2;
    f->l[i].unit_price_fen = 1500;
    f->lp[i] = &f->l[i];
  }
  linli__pickup_delivery__init(&f->pick);
  f->pick.pickup_point_id = "pp-7";
  linli__home_delivery__init(&f->home);
  f->home.recipient_name = "李雷";
  f->home.phone = "+8613911112222";
  f->home.address = "Room 301, Building 2, Hongqiao Road";
  f->home.lat_e6 = 31200000;
  f->home.lng_e6 = 121470000;
  linli__order_placed__init(&f->placed);
  f->placed.order_id = "o-1";
  f->placed.app_id = "shop_a";
  f->placed.user_id = "u-1";
  f->placed.warehouse_id = "W1";
  f->placed.n_lines = 3;
  f->placed.lines = f->lp;
  f->placed.total_fen = 9000;
  f->placed.delivery_case = LINLI__ORDER_PLACED__DELIVERY_PICKUP;
  f->placed.pickup = &f->pick;
  f->placed.campaign_id = "";
  f->placed.placed_at_ms = NOW;
  linli__order_paid__init(&f->paid);
  f->paid.order_id = "o-1";
  f->paid.method = LINLI__ORDER_PAID__METHOD__ALIPAY;
  f->paid.payment_txn_id = "txn-1";
  f->paid.amount_fen = 9000;
  f->paid.paid_at_ms = NOW;
  linli__order_cancelled__init(&f->cancelled);
  f->cancelled.order_id = "o-1";
  f->cancelled.reason = "changed my mind";
  linli__order_expired__init(&f->expired);
  f->expired.order_id = "o-1";
  f->expired.deadline_ms = NOW;
  linli__order_event__init(&f->oe);
  f->oe.meta = &f->meta;
  f->oe.event_case = LINLI__ORDER_EVENT__EVENT_ORDER_PLACED;
  f->oe.order_placed = &f->placed;
  linli__sku__init(&f->sku);
  f->sku.sku_id = "rice-5kg";
  f->sku.name = "东北大米 5kg";
  f->sku.category = "grain/rice";
  f->sku.storage_class = LINLI__STORAGE_CLASS__AMBIENT;
  f->sku.weight_g = 5000;
  f->sku.list_price_fen = 4990;
  f->sku.origin = "";
  f->sku.status = LINLI__SKU__STATUS__LISTED;
  linli__catalog_event__init(&f->ce);
  f->ce.meta = &f->meta;
  f->ce.event_case = LINLI__CATALOG_EVENT__EVENT_SKU;
  f->ce.sku = &f->sku;
  linli__stock_adjusted__init(&f->adj);
  f->adj.adjustment_id = "adj-1";
  f->adj.warehouse_id = "W1";
  f->adj.sku_id = "rice-5kg";
  f->adj.quantity = 100;
  f->adj.reason = LINLI__STOCK_ADJUSTED__REASON__RESTOCK;
  f->adj.note = "";
  linli__inventory_event__init(&f->ie);
  f->ie.meta = &f->meta;
  f->ie.event_case = LINLI__INVENTORY_EVENT__EVENT_STOCK_ADJUSTED;
  f->ie.stock_adjusted = &f->adj;
  linli__out_for_delivery__init(&f->ofd);
  f->ofd.order_id = "o-1";
  f->ofd.route_id = "R1";
  f->ofd.courier_id = "C1";
  linli__arrived_at_pickup_point__init(&f->arr);
  f->arr.order_id = "o-1";
  f->arr.pickup_point_id = "pp-7";
  f->arr.pickup_code = "4711";
  linli__delivery_failed__init(&f->dfail);
  f->dfail.order_id = "o-1";
  f->dfail.reason = "nobody home";
  linli__delivery_event__init(&f->de);
  f->de.meta = &f->meta;
  f->de.event_case = LINLI__DELIVERY_EVENT__EVENT_OUT_FOR_DELIVERY;
  f->de.out_for_delivery = &f->ofd;
}

static void home(struct fx *f) {
  f->placed.delivery_case = LINLI__ORDER_PLACED__DELIVERY_HOME;
  f->placed.home = &f->home;
}

enum kind { PLACED, PAID, CANCELLED, EXPIRED, SKU, ADJUST, DELIVERY };

/* The problems a check reported. */
struct errs {
  int n;
  char first[400];
};

static void collect(void *arg, const char *field, const char *msg) {
  struct errs *e = arg;
  if (e->n++ == 0)
    snprintf(e->first, sizeof e->first, "%s: %s", field, msg);
}

/* The member check (the gateway's), fields relative to the member. */
static int member_check(struct fx *f, enum kind k, struct errs *e) {
  switch (k) {
  case PLACED:
    return dom_order_check_placed(&f->placed, MAX_LINES, collect, e);
  case PAID:
    return dom_order_check_paid(&f->paid, collect, e);
  case CANCELLED:
    return dom_order_check_cancelled(&f->cancelled, collect, e);
  case EXPIRED:
    return dom_order_check_expired(&f->expired, collect, e);
  case SKU:
    return dom_stock_check_sku(&f->sku, collect, e);
  case ADJUST:
    return dom_stock_check_adjusted(&f->adj, collect, e);
  default:
    return dom_delivery_check(&f->de, collect, e);
  }
}

/* The envelope check (the consumers'): Meta and the member, named from
 * the envelope. */
static int envelope_check(struct fx *f, enum kind k, struct errs *e,
                          const char **prefix) {
  *prefix = "";
  switch (k) {
  case PLACED:
  case PAID:
  case CANCELLED:
  case EXPIRED:
    f->oe.event_case = k == PLACED ? LINLI__ORDER_EVENT__EVENT_ORDER_PLACED
                     : k == PAID   ? LINLI__ORDER_EVENT__EVENT_ORDER_PAID
                     : k == CANCELLED
                         ? LINLI__ORDER_EVENT__EVENT_ORDER_CANCELLED
                         : LINLI__ORDER_EVENT__EVENT_ORDER_EXPIRED;
    f->oe.order_placed = &f->placed; /* the oneof shares one pointer */
    if (k == PAID)
      f->oe.order_paid = &f->paid;
    else if (k == CANCELLED)
      f->oe.order_cancelled = &f->cancelled;
    else if (k == EXPIRED)
      f->oe.order_expired = &f->expired;
    *prefix = k == PLACED ? "order_placed." : k == PAID ? "order_paid."
              : k == CANCELLED ? "order_cancelled." : "order_expired.";
    return dom_order_event_check(&f->oe, MAX_LINES, collect, e);
  case SKU:
    *prefix = "sku.";
    return dom_catalog_event_check(&f->ce, collect, e);
  case ADJUST:
    *prefix = "stock_adjusted.";
    return dom_inventory_event_check(&f->ie, collect, e);
  default:
    return dom_delivery_event_check(&f->de, collect, e);
  }
}

/* ------------------------------------------------------ the bad events */

#define MUT(name, body)                                                        \
  static void name(struct fx *f) { body; }

MUT(p_order_id, f->placed.order_id = "o 1")
MUT(p_app_id, f->placed.app_id = "shop|a")
MUT(p_user_id, f->placed.user_id = "")
MUT(p_wh, f->placed.warehouse_id = "W\xff")
MUT(p_campaign, f->placed.campaign_id = "gb:1")
MUT(p_no_lines, f->placed.n_lines = 0)
MUT(p_101_lines, f->placed.n_lines = MAX_LINES + 1;
    for (int i = 0; i < MAX_LINES + 1; i++) big_lines[i] = &f->l[0];
    f->placed.lines = big_lines)
MUT(p_10001_lines, f->placed.n_lines = BIG;
    for (int i = 0; i < BIG; i++) big_lines[i] = &f->l[0];
    f->placed.lines = big_lines)
MUT(p_sku, f->l[1].sku_id = "x:y|z")
MUT(p_qty0, f->l[2].quantity = 0)
MUT(p_qty_neg, f->l[0].quantity = -3)
MUT(p_qty_big, f->l[0].quantity = DOM_MAX_QUANTITY + 1)
MUT(p_price_neg, f->l[1].unit_price_fen = -5)
MUT(p_price_max, f->l[0].unit_price_fen = INT64_MAX)
MUT(p_merged, f->l[1].sku_id = "rice-5kg"; f->l[0].quantity = 600000;
    f->l[1].quantity = 600000)
MUT(p_total_overflow, f->l[0].quantity = DOM_MAX_QUANTITY;
    f->l[0].unit_price_fen = DOM_MAX_PRICE_FEN;
    f->l[1].quantity = DOM_MAX_QUANTITY;
    f->l[1].unit_price_fen = DOM_MAX_PRICE_FEN)
MUT(p_total_neg, f->placed.total_fen = -1)
MUT(p_no_delivery, f->placed.delivery_case =
                       LINLI__ORDER_PLACED__DELIVERY__NOT_SET)
MUT(p_pickup_point, f->pick.pickup_point_id = "")
MUT(p_lat, home(f); f->home.lat_e6 = 100000000)
MUT(p_lng, home(f); f->home.lng_e6 = -180000001)
MUT(p_name, home(f); f->home.recipient_name = "")
MUT(p_name_ctrl, home(f); f->home.recipient_name = "Li\nLei")
MUT(p_phone, home(f); f->home.phone = "call me")
MUT(p_address_utf8, home(f); f->home.address = "Road \xc3\x28 1")
MUT(p_placed_at, f->placed.placed_at_ms = -1)
MUT(m_event_id, f->meta.event_id = "ev\xff\xfe")
MUT(m_no_event_id, f->meta.event_id = "")
MUT(m_time, f->meta.occurred_at_ms = INT64_MAX)
MUT(m_time0, f->meta.occurred_at_ms = 0)
MUT(pay_method99, f->paid.method = 99)
MUT(pay_method0, f->paid.method = 0)
MUT(pay_txn, f->paid.payment_txn_id = "")
MUT(pay_amount0, f->paid.amount_fen = 0)
MUT(pay_amount_big, f->paid.amount_fen = DOM_MAX_ORDER_FEN + 1)
MUT(pay_order, f->paid.order_id = "o/1")
MUT(pay_at, f->paid.paid_at_ms = INT64_MAX)
MUT(c_reason_utf8, f->cancelled.reason = "changed my mind \xff\xfe")
MUT(c_reason_long, static char r[300]; memset(r, 'x', 299); r[299] = 0;
    f->cancelled.reason = r)
MUT(c_order, f->cancelled.order_id = "")
MUT(c_at, f->cancelled.cancelled_at_ms = -5)
MUT(x_order, f->expired.order_id = "o 1")
MUT(x_deadline, f->expired.deadline_ms = INT64_MAX)
MUT(s_id, f->sku.sku_id = "")
MUT(s_name, f->sku.name = "")
MUT(s_class0, f->sku.storage_class = 0)
MUT(s_class9, f->sku.storage_class = 9)
MUT(s_status, f->sku.status = 7)
MUT(s_weight0, f->sku.weight_g = 0)
MUT(s_weight_neg, f->sku.weight_g = -1)
MUT(s_price_neg, f->sku.list_price_fen = -1)
MUT(s_price_big, f->sku.list_price_fen = DOM_MAX_PRICE_FEN + 1)
MUT(s_origin, f->sku.origin = "\xc0\xaf")
MUT(a_int32_min, f->adj.quantity = INT32_MIN;
    f->adj.reason = LINLI__STOCK_ADJUSTED__REASON__COUNT)
MUT(a_int32_max, f->adj.quantity = INT32_MAX)
MUT(a_zero, f->adj.quantity = 0)
MUT(a_restock_neg, f->adj.quantity = -4)
MUT(a_damage_pos, f->adj.reason = LINLI__STOCK_ADJUSTED__REASON__DAMAGE)
MUT(a_reason0, f->adj.reason = 0)
MUT(a_reason9, f->adj.reason = 9)
MUT(a_adj_id, f->adj.adjustment_id = "")
MUT(a_wh, f->adj.warehouse_id = "W 1")
MUT(a_sku, f->adj.sku_id = "")
MUT(a_note, f->adj.note = "bad \xff")
MUT(d_order, f->ofd.order_id = "")
MUT(d_route, f->ofd.route_id = "r|1")
MUT(d_courier, f->ofd.courier_id = "")
MUT(d_code, f->de.event_case =
                LINLI__DELIVERY_EVENT__EVENT_ARRIVED_AT_PICKUP_POINT;
    f->de.arrived_at_pickup_point = &f->arr; f->arr.pickup_code = "")
MUT(d_reason, f->de.event_case = LINLI__DELIVERY_EVENT__EVENT_DELIVERY_FAILED;
    f->de.delivery_failed = &f->dfail; f->dfail.reason = "no\xff")
MUT(d_none, f->de.event_case = LINLI__DELIVERY_EVENT__EVENT__NOT_SET)

struct bad {
  const char *what;
  enum kind kind;
  void (*mut)(struct fx *);
  const char *field; /* as the member check names it ("" for Meta) */
  const char *msg;   /* in its message */
};

static const struct bad BAD[] = {
    {"order id", PLACED, p_order_id, "order_id", "[A-Za-z0-9_-]"},
    {"app id", PLACED, p_app_id, "app_id", "[A-Za-z0-9_-]"},
    {"user id missing", PLACED, p_user_id, "user_id", "[A-Za-z0-9_-]"},
    {"warehouse not UTF-8", PLACED, p_wh, "warehouse_id", "[A-Za-z0-9_-]"},
    {"campaign id", PLACED, p_campaign, "campaign_id", "[A-Za-z0-9_-]"},
    {"no lines", PLACED, p_no_lines, "lines", "at least one line"},
    {"101 lines", PLACED, p_101_lines, "lines", "101 lines, at most 100"},
    {"sku id", PLACED, p_sku, "lines[1].sku_id", "[A-Za-z0-9_-]"},
    {"quantity 0", PLACED, p_qty0, "lines[2].quantity", "between 1 and"},
    {"quantity -3", PLACED, p_qty_neg, "lines[0].quantity", "got -3"},
    {"quantity 1e6+1", PLACED, p_qty_big, "lines[0].quantity",
     "between 1 and 1000000"},
    {"price -5", PLACED, p_price_neg, "lines[1].unit_price_fen",
     "between 0 and 100000000000"},
    {"price INT64_MAX", PLACED, p_price_max, "lines[0].unit_price_fen",
     "between 0 and"},
    {"a SKU twice over 1e6 units", PLACED, p_merged, "lines[0].quantity",
     "1200000 units of this SKU"},
    {"total over 1e11 fen", PLACED, p_total_overflow, "lines",
     "order total"},
    {"total_fen -1", PLACED, p_total_neg, "total_fen", "between 0 and"},
    {"no delivery", PLACED, p_no_delivery, "delivery", "pickup or home"},
    {"pickup point", PLACED, p_pickup_point, "pickup.pickup_point_id",
     "[A-Za-z0-9_-]"},
    {"latitude 100e6", PLACED, p_lat, "home.lat_e6", "between -90000000"},
    {"longitude", PLACED, p_lng, "home.lng_e6", "between -180000000"},
    {"recipient missing", PLACED, p_name, "home.recipient_name", "required"},
    {"recipient newline", PLACED, p_name_ctrl, "home.recipient_name",
     "control characters"},
    {"phone", PLACED, p_phone, "home.phone", "digits"},
    {"address not UTF-8", PLACED, p_address_utf8, "home.address",
     "not valid UTF-8"},
    {"placed_at_ms -1", PLACED, p_placed_at, "placed_at_ms", "between 0"},
    {"method 99", PAID, pay_method99, "method",
     "WECHAT_PAY, ALIPAY or BANK_CARD, got 99"},
    {"method unspecified", PAID, pay_method0, "method", "got 0"},
    {"txn id", PAID, pay_txn, "payment_txn_id", "[A-Za-z0-9_-]"},
    {"amount 0", PAID, pay_amount0, "amount_fen", "between 1 and"},
    {"amount 1e11+1", PAID, pay_amount_big, "amount_fen", "between 1 and"},
    {"paid order id", PAID, pay_order, "order_id", "[A-Za-z0-9_-]"},
    {"paid_at INT64_MAX", PAID, pay_at, "paid_at_ms", "between 0"},
    {"cancel reason not UTF-8", CANCELLED, c_reason_utf8, "reason",
     "not valid UTF-8"},
    {"cancel reason 299 bytes", CANCELLED, c_reason_long, "reason",
     "at most 256 bytes"},
    {"cancel order id", CANCELLED, c_order, "order_id", "[A-Za-z0-9_-]"},
    {"cancelled_at -5", CANCELLED, c_at, "cancelled_at_ms", "got -5"},
    {"expired order id", EXPIRED, x_order, "order_id", "[A-Za-z0-9_-]"},
    {"expiry deadline", EXPIRED, x_deadline, "deadline_ms", "between 0"},
    {"sku id", SKU, s_id, "sku_id", "[A-Za-z0-9_-]"},
    {"sku name", SKU, s_name, "name", "required"},
    {"storage class 0", SKU, s_class0, "storage_class", "got 0"},
    {"storage class 9", SKU, s_class9, "storage_class",
     "AMBIENT, CHILLED or FROZEN, got 9"},
    {"status 7", SKU, s_status, "status", "LISTED or DELISTED, got 7"},
    {"weight 0", SKU, s_weight0, "weight_g", "between 1"},
    {"weight -1", SKU, s_weight_neg, "weight_g", "got -1"},
    {"list price -1", SKU, s_price_neg, "list_price_fen", "between 0"},
    {"list price 1e11+1", SKU, s_price_big, "list_price_fen", "between 0"},
    {"origin overlong UTF-8", SKU, s_origin, "origin", "not valid UTF-8"},
    {"adjustment -2^31", ADJUST, a_int32_min, "quantity",
     "between -1000000000 and 1000000000, got -2147483648"},
    {"adjustment 2^31-1", ADJUST, a_int32_max, "quantity", "got 2147483647"},
    {"adjustment 0", ADJUST, a_zero, "quantity", "must not be 0"},
    {"restock -4", ADJUST, a_restock_neg, "quantity",
     "a RESTOCK must be positive"},
    {"damage +100", ADJUST, a_damage_pos, "quantity",
     "DAMAGE and RECALL must be negative"},
    {"reason unspecified", ADJUST, a_reason0, "reason", "got 0"},
    {"reason 9", ADJUST, a_reason9, "reason", "got 9"},
    {"adjustment id", ADJUST, a_adj_id, "adjustment_id", "[A-Za-z0-9_-]"},
    {"adjustment warehouse", ADJUST, a_wh, "warehouse_id", "[A-Za-z0-9_-]"},
    {"adjustment sku", ADJUST, a_sku, "sku_id", "[A-Za-z0-9_-]"},
    {"note not UTF-8", ADJUST, a_note, "note", "not valid UTF-8"},
    {"out for delivery: order", DELIVERY, d_order,
     "out_for_delivery.order_id", "[A-Za-z0-9_-]"},
    {"out for delivery: route", DELIVERY, d_route,
     "out_for_delivery.route_id", "[A-Za-z0-9_-]"},
    {"out for delivery: courier", DELIVERY, d_courier,
     "out_for_delivery.courier_id", "[A-Za-z0-9_-]"},
    {"arrived: pickup code", DELIVERY, d_code,
     "arrived_at_pickup_point.pickup_code", "[A-Za-z0-9_-]"},
    {"failed: reason not UTF-8", DELIVERY, d_reason,
     "delivery_failed.reason", "not valid UTF-8"},
    {"no event", DELIVERY, d_none, "event", "one of"},
};

/* Meta is the consumers' alone (the gateway writes it). */
static const struct bad BAD_META[] = {
    {"event id not UTF-8", PLACED, m_event_id, "meta.event_id",
     "[A-Za-z0-9_-]"},
    {"no event id", PAID, m_no_event_id, "meta.event_id", "[A-Za-z0-9_-]"},
    {"occurred_at INT64_MAX", CANCELLED, m_time, "meta.occurred_at_ms",
     "between 1 and"},
    {"occurred_at 0", SKU, m_time0, "meta.occurred_at_ms", "got 0"},
    {"event id of an adjustment", ADJUST, m_no_event_id, "meta.event_id",
     "[A-Za-z0-9_-]"},
    {"time of a delivery", DELIVERY, m_time, "meta.occurred_at_ms",
     "between 1 and"},
};

static void test_valid(void) {
  for (int k = PLACED; k <= DELIVERY; k++) {
    struct fx f;
    fx_init(&f);
    struct errs e = {0};
    const char *prefix;
    CU_ASSERT_EQUAL(member_check(&f, (enum kind)k, &e), 0);
    CU_ASSERT_EQUAL(envelope_check(&f, (enum kind)k, &e, &prefix), 0);
    if (e.n)
      fprintf(stderr, "\n  kind %d: unexpected \"%s\"\n", k, e.first);
  }
  /* A home delivery, a SKU listed twice within bounds, DAMAGE and COUNT
   * that take stock away, a 10,000-line order where that many are
   * allowed. */
  struct fx f;
  fx_init(&f);
  home(&f);
  f.l[1].sku_id = "rice-5kg";
  f.placed.total_fen = 0;
  CU_ASSERT_EQUAL(dom_order_check_placed(&f.placed, MAX_LINES, NULL, NULL), 0);
  f.adj.reason = LINLI__STOCK_ADJUSTED__REASON__DAMAGE;
  f.adj.quantity = -3;
  CU_ASSERT_EQUAL(dom_stock_check_adjusted(&f.adj, NULL, NULL), 0);
  f.adj.reason = LINLI__STOCK_ADJUSTED__REASON__COUNT;
  f.adj.quantity = -(int32_t)DOM_MAX_ADJUST;
  CU_ASSERT_EQUAL(dom_stock_check_adjusted(&f.adj, NULL, NULL), 0);
  fx_init(&f);
  f.placed.n_lines = DOM_ORDER_MAX_LINES;
  for (int i = 0; i < DOM_ORDER_MAX_LINES; i++)
    big_lines[i] = &f.l[0];
  f.placed.lines = big_lines;
  f.placed.total_fen = 0;
  f.l[0].quantity = 1;
  CU_ASSERT_EQUAL(
      dom_order_check_placed(&f.placed, DOM_ORDER_MAX_LINES, NULL, NULL), 0);
  int64_t total = 0;
  CU_ASSERT_EQUAL(dom_order_total(&f.placed, &total), LINLI_OK);
  CU_ASSERT_EQUAL(total, INT64_C(1500) * DOM_ORDER_MAX_LINES);
}

/* One row: the member check names the field first, and the envelope check
 * names "<member>.<field>" with the very same message. */
static void check_row(const struct bad *b, int member) {
  struct fx f;
  fx_init(&f);
  b->mut(&f);
  struct errs m = {0}, env = {0};
  const char *prefix;
  int ne = envelope_check(&f, b->kind, &env, &prefix);
  CU_ASSERT_TRUE(ne > 0);
  CU_ASSERT_EQUAL(ne, env.n);
  char want[400];
  if (member) {
    int nm = member_check(&f, b->kind, &m);
    CU_ASSERT_TRUE(nm > 0);
    CU_ASSERT_EQUAL(nm, m.n);
    size_t fl = strlen(b->field);
    int ok = strncmp(m.first, b->field, fl) == 0 &&
             strncmp(m.first + fl, ": ", 2) == 0 &&
             strstr(m.first, b->msg) != NULL;
    CU_ASSERT_TRUE(ok);
    if (!ok)
      fprintf(stderr, "\n  %s: member check said \"%s\", want %s: ...%s...\n",
              b->what, m.first, b->field, b->msg);
    snprintf(want, sizeof want, "%s%s", prefix, m.first);
  } else {
    snprintf(want, sizeof want, "%s: ", b->field);
  }
  int same = member ? strcmp(env.first, want) == 0
                    : strncmp(env.first, want, strlen(want)) == 0 &&
                          strstr(env.first, b->msg) != NULL;
  CU_ASSERT_TRUE(same);
  if (!same)
    fprintf(stderr, "\n  %s: envelope check said \"%s\", want \"%s\"\n",
            b->what, env.first, want);
}

static void test_bad_events(void) {
  for (size_t i = 0; i < sizeof BAD / sizeof BAD[0]; i++)
    check_row(&BAD[i], 1);
}

static void test_bad_meta(void) {
  for (size_t i = 0; i < sizeof BAD_META / sizeof BAD_META[0]; i++)
    check_row(&BAD_META[i], 0);
}

/* orders.max_lines bounds an order, and nothing beyond 10,000 lines is
 * ever allowed, whatever the configuration says. */
static void test_max_lines(void) {
  struct fx f;
  fx_init(&f);
  p_10001_lines(&f);
  struct errs e = {0};
  CU_ASSERT_TRUE(dom_order_check_placed(&f.placed, 0, collect, &e) > 0);
  CU_ASSERT_PTR_NOT_NULL(strstr(e.first, "10001 lines, at most 10000"));
  struct errs e2 = {0};
  CU_ASSERT_TRUE(dom_order_check_placed(&f.placed, 50000, collect, &e2) > 0);
  CU_ASSERT_PTR_NOT_NULL(strstr(e2.first, "at most 10000"));
}

/* Every problem is reported, not just the first (a 400 names them all). */
static void test_all_reported(void) {
  struct fx f;
  fx_init(&f);
  f.placed.order_id = "";
  f.l[0].quantity = 0;
  f.l[2].unit_price_fen = -1;
  home(&f);
  f.home.phone = "x";
  struct errs e = {0};
  CU_ASSERT_EQUAL(dom_order_check_placed(&f.placed, MAX_LINES, collect, &e),
                  4);
  CU_ASSERT_EQUAL(dom_order_check_placed(&f.placed, MAX_LINES, NULL, NULL), 4);
  int64_t total;
  CU_ASSERT_EQUAL(dom_order_total(&f.placed, &total), LINLI_ERR_INVALID);
  CU_ASSERT_EQUAL(dom_order_check_paid(NULL, NULL, NULL), 1);
  CU_ASSERT_EQUAL(dom_stock_check_sku(NULL, NULL, NULL), 1);
  CU_ASSERT_EQUAL(dom_delivery_event_check(NULL, NULL, NULL), 1);
}

/* Lines merged per SKU: first-line order, units summed, one entry per SKU
 * however many lines (the merge every consumer uses). */
static void test_lines_merge(void) {
  static const char *skus[] = {"b", "a", "b", "c", "a", "b"};
  Linli__OrderLine l[6], *lp[6];
  for (int i = 0; i < 6; i++) {
    linli__order_line__init(&l[i]);
    l[i].sku_id = (char *)skus[i];
    l[i].quantity = i + 1;
    lp[i] = &l[i];
  }
  struct dom_sku_units m[6];
  size_t n = 99;
  CU_ASSERT_EQUAL_FATAL(dom_order_lines_merge(lp, 6, m, &n), LINLI_OK);
  CU_ASSERT_EQUAL_FATAL(n, 3);
  CU_ASSERT_STRING_EQUAL(m[0].sku, "b");
  CU_ASSERT_EQUAL(m[0].units, 1 + 3 + 6);
  CU_ASSERT_EQUAL(m[0].first, 0);
  CU_ASSERT_STRING_EQUAL(m[1].sku, "a");
  CU_ASSERT_EQUAL(m[1].units, 2 + 5);
  CU_ASSERT_EQUAL(m[1].first, 1);
  CU_ASSERT_STRING_EQUAL(m[2].sku, "c");
  CU_ASSERT_EQUAL(m[2].units, 4);
  CU_ASSERT_EQUAL(m[2].first, 3);
  CU_ASSERT_EQUAL(dom_order_lines_merge(lp, 0, m, &n), LINLI_OK);
  CU_ASSERT_EQUAL(n, 0);
  /* As many distinct SKUs as lines: each its own entry. */
  static Linli__OrderLine many[DOM_ORDER_MAX_LINES];
  static Linli__OrderLine *mp[DOM_ORDER_MAX_LINES];
  static char names[DOM_ORDER_MAX_LINES][16];
  static struct dom_sku_units mm[DOM_ORDER_MAX_LINES];
  for (int i = 0; i < DOM_ORDER_MAX_LINES; i++) {
    linli__order_line__init(&many[i]);
    snprintf(names[i], sizeof names[i], "sku-%d", i);
    many[i].sku_id = names[i];
    many[i].quantity = 1;
    mp[i] = &many[i];
  }
  CU_ASSERT_EQUAL_FATAL(
      dom_order_lines_merge(mp, DOM_ORDER_MAX_LINES, mm, &n), LINLI_OK);
  CU_ASSERT_EQUAL(n, DOM_ORDER_MAX_LINES);
  CU_ASSERT_STRING_EQUAL(mm[DOM_ORDER_MAX_LINES - 1].sku,
                         names[DOM_ORDER_MAX_LINES - 1]);
}

int linli_test_register(void) {
  CU_pSuite s = CU_add_suite("domain: event validation", NULL, NULL);
  if (!s)
    return -1;
  CU_add_test(s, "valid events pass", test_valid);
  CU_add_test(s, "each bad field is named, the same by gateway and DLQ",
              test_bad_events);
  CU_add_test(s, "bad Meta", test_bad_meta);
  CU_add_test(s, "orders.max_lines and the hard bound", test_max_lines);
  CU_add_test(s, "every problem reported", test_all_reported);
  CU_add_test(s, "lines merged per SKU", test_lines_merge);
  return CU_get_error() == CUE_SUCCESS ? 0 : -1;
}
