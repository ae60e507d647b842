/*
 * validate.c - the gateway's field rules, on top of what the JSON layer
 * already enforces (types, ranges of the wire types, UTF-8, unknown
 * fields). Each event kind is judged by libdomain's check for it
 * (domain/orders.h, stock.h, delivery.h, groupbuy.h), the very functions
 * the reserver, the settler and the ledger judge the record with: a 400
 * names the field with the message a consumer's DLQ reason would carry,
 * and nothing the gateway accepts is bad input downstream. Every problem
 * is recorded, not just the first. The few rules that are the API's own
 * (a SKU once per order, total_fen matching the lines) come on top.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "domain/delivery.h"
#include "domain/groupbuy.h"
#include "domain/orders.h"
#include "domain/stock.h"
#include "gateway.h"
#include "linli/clock.h"
#include "linli/error.h"

void gw_verr(json_t *errs, const char *field, const char *fmt, ...) {
  char reason[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(reason, sizeof reason, fmt, ap);
  va_end(ap);
  json_array_append_new(errs,
                        json_pack("{s:s, s:s}", "field", field, "reason", reason));
}

/* libdomain's problems into the 400's field list. */
static void dom_err(void *arg, const char *field, const char *msg) {
  gw_verr((json_t *)arg, field, "%s", msg);
}

/* An id in a path or a query (the rule of every id in every event). */
void gw_check_id(json_t *errs, const char *field, const char *v) {
  if (!v || !v[0])
    gw_verr(errs, field, "required");
  else
    dom_check_id(field, v, dom_err, errs);
}

void gw_check_opt_id(json_t *errs, const char *field, const char *v) {
  if (v && v[0])
    gw_check_id(errs, field, v);
}

void gw_validate_placed(json_t *errs, const ProtobufCMessage *m,
                        int max_lines) {
  const Linli__OrderPlaced *p = (const Linli__OrderPlaced *)m;
  if (dom_order_check_placed(p, max_lines, dom_err, errs))
    return;
  /* The API's own rules, on a valid order: the consumers merge a SKU
   * listed twice, but a client that does so has a bug worth telling. */
  for (size_t i = 1; i < p->n_lines; i++)
    for (size_t j = 0; j < i; j++)
      if (strcmp(p->lines[j]->sku_id, p->lines[i]->sku_id) == 0) {
        char f[64];
        snprintf(f, sizeof f, "lines[%zu].sku_id", i);
        gw_verr(errs, f, "SKU %s appears in lines[%zu] already",
                p->lines[i]->sku_id, j);
        break;
      }
  int64_t total = 0;
  if (dom_order_total(p, &total) == LINLI_OK && p->total_fen != 0 &&
      p->total_fen != total)
    gw_verr(errs, "total_fen",
            "must equal the sum of quantity * unit_price_fen (%lld), or be "
            "omitted", (long long)total);
}

void gw_validate_paid(json_t *errs, const ProtobufCMessage *m) {
  dom_order_check_paid((const Linli__OrderPaid *)m, dom_err, errs);
}

void gw_validate_cancelled(json_t *errs, const ProtobufCMessage *m) {
  dom_order_check_cancelled((const Linli__OrderCancelled *)m, dom_err, errs);
}

void gw_validate_campaign(json_t *errs, const ProtobufCMessage *m) {
  /* Judged at now, as the settler judges it at the occurred_at_ms the
   * gateway is about to write. */
  dom_gb_check_opened((const Linli__CampaignOpened *)m, linli_clock_now_ms(),
                      dom_err, errs);
}

void gw_validate_joined(json_t *errs, const ProtobufCMessage *m) {
  dom_gb_check_joined((const Linli__GroupBuyJoined *)m, dom_err, errs);
}

void gw_validate_left(json_t *errs, const ProtobufCMessage *m) {
  dom_gb_check_left((const Linli__GroupBuyLeft *)m, dom_err, errs);
}

/* The body of a delivery report is the envelope: a missing event is the
 * body's fault, named "(body)" as every other 400 about the whole body. */
static void dom_err_body(void *arg, const char *field, const char *msg) {
  gw_verr((json_t *)arg, strcmp(field, "event") == 0 ? "(body)" : field, "%s",
          msg);
}

void gw_validate_delivery(json_t *errs, const ProtobufCMessage *envelope) {
  const Linli__DeliveryEvent *e = (const Linli__DeliveryEvent *)envelope;
  dom_delivery_check(e, dom_err_body, errs);
  if (e->meta)
    gw_verr(errs, "meta", "set by the gateway, not by the caller");
}

void gw_validate_sku(json_t *errs, const ProtobufCMessage *m) {
  dom_stock_check_sku((const Linli__Sku *)m, dom_err, errs);
}

void gw_validate_adjustment(json_t *errs, const ProtobufCMessage *m) {
  dom_stock_check_adjusted((const Linli__StockAdjusted *)m, dom_err, errs);
}
