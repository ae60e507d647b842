/*
 * orders_check.c - the order events' rules (see orders.h).
 */
#include "domain/orders.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "linli/error.h"
#include "linli/hash.h"

#define LAT_MAX 90000000
#define LNG_MAX 180000000

static int line_ok(const Linli__OrderLine *l) {
  return l && l->quantity >= 1 && l->quantity <= DOM_MAX_QUANTITY &&
         l->unit_price_fen >= 0 && l->unit_price_fen <= DOM_MAX_PRICE_FEN;
}

static int lines_total(Linli__OrderLine *const *lines, size_t n,
                       int64_t *total) {
  int64_t sum = 0;
  for (size_t i = 0; i < n; i++) {
    const Linli__OrderLine *l = lines[i];
    if (!line_ok(l))
      return LINLI_ERR_INVALID;
    /* Both factors are bounded (1e11 * 1e6 < 2^63) and the running sum
     * stays at most DOM_MAX_ORDER_FEN: neither overflows. */
    sum += l->unit_price_fen * l->quantity;
    if (sum > DOM_MAX_ORDER_FEN)
      return LINLI_ERR_INVALID;
  }
  *total = sum;
  return LINLI_OK;
}

int dom_order_total(const Linli__OrderPlaced *p, int64_t *total) {
  return lines_total(p->lines, p->n_lines, total);
}

static int check_phone(const char *field, const char *v, dom_err_fn err,
                       void *arg) {
  size_t n = v ? strlen(v) : 0;
  if (n == 0)
    return dom_report(field, "required", err, arg);
  size_t digits = 0;
  for (size_t i = 0; i < n; i++) {
    if (v[i] >= '0' && v[i] <= '9')
      digits++;
    else if (!(i == 0 && v[i] == '+'))
      return dom_report(field, "digits with an optional leading '+'", err, arg);
  }
  if (digits < 3 || digits > 20)
    return dom_report(field, "3 to 20 digits", err, arg);
  return 0;
}

static int check_delivery(const Linli__OrderPlaced *p, dom_err_fn err,
                          void *arg) {
  int bad = 0;
  switch (p->delivery_case) {
  case LINLI__ORDER_PLACED__DELIVERY_PICKUP:
    return dom_check_id("pickup.pickup_point_id",
                        p->pickup ? p->pickup->pickup_point_id : NULL, err,
                        arg);
  case LINLI__ORDER_PLACED__DELIVERY_HOME:
    if (!p->home)
      return dom_report("home", "required", err, arg);
    bad += dom_check_req_label("home.recipient_name", p->home->recipient_name,
                               DOM_TEXT_SHORT, err, arg);
    bad += check_phone("home.phone", p->home->phone, err, arg);
    bad += dom_check_req_label("home.address", p->home->address,
                               DOM_TEXT_LONG, err, arg);
    bad += dom_check_range("home.lat_e6", p->home->lat_e6, -LAT_MAX, LAT_MAX,
                           err, arg);
    bad += dom_check_range("home.lng_e6", p->home->lng_e6, -LNG_MAX, LNG_MAX,
                           err, arg);
    return bad;
  default:
    return dom_report("delivery", "choose pickup or home delivery", err, arg);
  }
}

/* The count, each line, and the units of a SKU listed more than once. */
int dom_order_check_lines(Linli__OrderLine *const *lines, size_t n,
                          int max_lines, dom_err_fn err, void *arg) {
  if (n > (size_t)max_lines) {
    char msg[96];
    snprintf(msg, sizeof msg, "%zu lines, at most %d allowed", n, max_lines);
    return dom_report("lines", msg, err, arg);
  }
  int bad = 0;
  char f[64];
  for (size_t i = 0; i < n; i++) {
    const Linli__OrderLine *l = lines[i];
    snprintf(f, sizeof f, "lines[%zu].sku_id", i);
    bad += dom_check_id(f, l ? l->sku_id : NULL, err, arg);
    snprintf(f, sizeof f, "lines[%zu].quantity", i);
    bad += dom_check_range(f, l ? l->quantity : 0, 1, DOM_MAX_QUANTITY, err,
                           arg);
    snprintf(f, sizeof f, "lines[%zu].unit_price_fen", i);
    bad += dom_check_range(f, l ? l->unit_price_fen : -1, 0,
                           DOM_MAX_PRICE_FEN, err, arg);
  }
  if (bad)
    return bad;
  /* A SKU listed twice is merged by the consumers: its units together are
   * bounded too. */
  struct dom_sku_units *m = malloc((n ? n : 1) * sizeof *m);
  size_t nm = 0;
  if (m == NULL || dom_order_lines_merge(lines, n, m, &nm)) {
    free(m);
    return bad +
           dom_report("lines", "out of memory checking the lines", err, arg);
  }
  for (size_t i = 0; i < nm; i++)
    if (m[i].units > DOM_MAX_QUANTITY) {
      char msg[96];
      snprintf(f, sizeof f, "lines[%zu].quantity", m[i].first);
      snprintf(msg, sizeof msg, "%lld units of this SKU over all lines, at "
               "most %d", (long long)m[i].units, DOM_MAX_QUANTITY);
      bad += dom_report(f, msg, err, arg);
    }
  free(m);
  int64_t total;
  if (!bad && lines_total(lines, n, &total) != LINLI_OK) {
    char msg[128];
    snprintf(msg, sizeof msg, "the order total (sum of quantity * "
             "unit_price_fen) is more than %lld fen",
             (long long)DOM_MAX_ORDER_FEN);
    bad += dom_report("lines", msg, err, arg);
  }
  return bad;
}

int dom_order_check_placed(const Linli__OrderPlaced *p, int max_lines,
                           dom_err_fn err, void *arg) {
  if (!p)
    return dom_report("order_placed", "required", err, arg);
  if (max_lines < 1 || max_lines > DOM_ORDER_MAX_LINES)
    max_lines = DOM_ORDER_MAX_LINES;
  int bad = dom_check_id("order_id", p->order_id, err, arg);
  bad += dom_check_opt_id("app_id", p->app_id, err, arg);
  bad += dom_check_id("user_id", p->user_id, err, arg);
  bad += dom_check_id("warehouse_id", p->warehouse_id, err, arg);
  bad += dom_check_opt_id("campaign_id", p->campaign_id, err, arg);
  if (p->n_lines == 0)
    bad += dom_report("lines", "an order needs at least one line", err, arg);
  else
    bad += dom_order_check_lines(p->lines, p->n_lines, max_lines, err, arg);
  bad += dom_check_range("total_fen", p->total_fen, 0, DOM_MAX_ORDER_FEN, err,
                         arg);
  bad += check_delivery(p, err, arg);
  bad += dom_check_range("placed_at_ms", p->placed_at_ms, 0, DOM_MAX_TIME_MS,
                         err, arg);
  return bad;
}

int dom_order_check_paid(const Linli__OrderPaid *p, dom_err_fn err,
                         void *arg) {
  static const int methods[] = {LINLI__ORDER_PAID__METHOD__WECHAT_PAY,
                                LINLI__ORDER_PAID__METHOD__ALIPAY,
                                LINLI__ORDER_PAID__METHOD__BANK_CARD};
  if (!p)
    return dom_report("order_paid", "required", err, arg);
  int bad = dom_check_id("order_id", p->order_id, err, arg);
  bad += dom_check_enum("method", (int)p->method, methods, 3,
                        "WECHAT_PAY, ALIPAY or BANK_CARD", err, arg);
  bad += dom_check_id("payment_txn_id", p->payment_txn_id, err, arg);
  bad += dom_check_range("amount_fen", p->amount_fen, 1, DOM_MAX_ORDER_FEN,
                         err, arg);
  bad += dom_check_range("paid_at_ms", p->paid_at_ms, 0, DOM_MAX_TIME_MS, err,
                         arg);
  return bad;
}

int dom_order_check_cancelled(const Linli__OrderCancelled *c, dom_err_fn err,
                              void *arg) {
  if (!c)
    return dom_report("order_cancelled", "required", err, arg);
  int bad = dom_check_id("order_id", c->order_id, err, arg);
  bad += dom_check_label("reason", c->reason, DOM_TEXT_SHORT, err, arg);
  bad += dom_check_range("cancelled_at_ms", c->cancelled_at_ms, 0,
                         DOM_MAX_TIME_MS, err, arg);
  return bad;
}

int dom_order_check_expired(const Linli__OrderExpired *x, dom_err_fn err,
                            void *arg) {
  if (!x)
    return dom_report("order_expired", "required", err, arg);
  int bad = dom_check_id("order_id", x->order_id, err, arg);
  bad += dom_check_range("deadline_ms", x->deadline_ms, 0, DOM_MAX_TIME_MS, err,
                         arg);
  return bad;
}

int dom_order_event_check(const Linli__OrderEvent *e, int max_lines,
                          dom_err_fn err, void *arg) {
  if (!e)
    return dom_report("event", "required", err, arg);
  int bad = dom_check_meta(e->meta, err, arg);
  struct dom_prefix px = {NULL, err, arg};
  switch (e->event_case) {
  case LINLI__ORDER_EVENT__EVENT_ORDER_PLACED:
    px.prefix = "order_placed";
    return bad + dom_order_check_placed(e->order_placed, max_lines,
                                        dom_prefixed, &px);
  case LINLI__ORDER_EVENT__EVENT_ORDER_PAID:
    px.prefix = "order_paid";
    return bad + dom_order_check_paid(e->order_paid, dom_prefixed, &px);
  case LINLI__ORDER_EVENT__EVENT_ORDER_CANCELLED:
    px.prefix = "order_cancelled";
    return bad + dom_order_check_cancelled(e->order_cancelled, dom_prefixed,
                                           &px);
  case LINLI__ORDER_EVENT__EVENT_ORDER_EXPIRED:
    px.prefix = "order_expired";
    return bad + dom_order_check_expired(e->order_expired, dom_prefixed,
                                         &px);
  default:
    return bad + dom_report("event",
                            "an OrderEvent carries order_placed, "
                            "order_paid, order_cancelled or order_expired",
                            err, arg);
  }
}

int dom_order_lines_merge(Linli__OrderLine *const *lines, size_t n,
                          struct dom_sku_units *out, size_t *nout) {
  *nout = 0;
  if (n == 0)
    return LINLI_OK;
  /* Open addressing over the SKUs (entry + 1; 0 empty), at most half
   * full: one hash and few compares per line, whatever n is. */
  size_t nslot = 16;
  while (nslot < 2 * n)
    nslot *= 2;
  /* Most orders have a few lines: their table is on the stack, so merging
   * costs no allocation per order. */
  size_t small[64];
  size_t *slot = nslot <= 64 ? small : calloc(nslot, sizeof *slot);
  if (slot == NULL)
    return LINLI_ERR_NOMEM;
  if (slot == small)
    memset(small, 0, nslot * sizeof *slot);
  for (size_t i = 0; i < n; i++) {
    const char *sku = lines[i]->sku_id;
    size_t at = (size_t)linli_hash_str(sku) & (nslot - 1);
    while (slot[at] != 0 && strcmp(out[slot[at] - 1].sku, sku) != 0)
      at = (at + 1) & (nslot - 1);
    if (slot[at] == 0) {
      out[*nout] = (struct dom_sku_units){sku, 0, i};
      slot[at] = ++*nout;
    }
    out[slot[at] - 1].units += lines[i]->quantity;
  }
  if (slot != small)
    free(slot);
  return LINLI_OK;
}
