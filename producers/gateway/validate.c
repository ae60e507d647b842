/*
 * validate.c - the gateway's field rules, on top of what the JSON layer
 * already enforces (types, ranges of the wire types, UTF-8, unknown
 * fields). Every failed rule is recorded, not just the first, so that a 400
 * names each field at fault. The rules follow DESIGN.md and what the
 * consumers enforce (consumers/reserver/orders.c validate_placed): nothing
 * the gateway accepts is bad input downstream.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "catalog.pb-c.h"
#include "delivery.pb-c.h"
#include "gateway.h"
#include "groupbuy.pb-c.h"
#include "inventory.pb-c.h"
#include "linli/error.h"
#include "linli/ids.h"
#include "domain/schema.h"
#include "orders.pb-c.h"

/* Money above 10^11 fen (a billion yuan) is a typo, not an order. */
#define MAX_FEN INT64_C(100000000000)
#define MAX_QTY 1000000
#define TEXT_SHORT 256
#define TEXT_LONG 1024

void gw_verr(json_t *errs, const char *field, const char *fmt, ...) {
  char reason[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(reason, sizeof reason, fmt, ap);
  va_end(ap);
  json_array_append_new(errs,
                        json_pack("{s:s, s:s}", "field", field, "reason", reason));
}

void gw_check_id(json_t *errs, const char *field, const char *v) {
  if (!v || !v[0])
    gw_verr(errs, field, "required");
  else if (!linli_id_valid(v))
    gw_verr(errs, field, "must be 1-64 characters of [A-Za-z0-9_-]");
}

void gw_check_opt_id(json_t *errs, const char *field, const char *v) {
  if (v && v[0])
    gw_check_id(errs, field, v);
}

/* Free text: any UTF-8 (already checked) but no control characters, and a
 * sane length. Injection strings pass: they are stored inert (Kafka holds
 * bytes, the ledger uses $n parameters). */
void gw_check_text(json_t *errs, const char *field, const char *v,
                   size_t max) {
  if (!v)
    return;
  size_t n = strlen(v);
  if (n > max) {
    gw_verr(errs, field, "at most %zu bytes", max);
    return;
  }
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)v[i];
    if (c < 0x20 || c == 0x7f) {
      gw_verr(errs, field, "control characters are not allowed");
      return;
    }
  }
}

static void check_fen(json_t *errs, const char *field, int64_t v, int positive) {
  if (positive ? v <= 0 : v < 0)
    gw_verr(errs, field, positive ? "must be positive (fen)"
                                  : "must not be negative (fen)");
  else if (v > MAX_FEN)
    gw_verr(errs, field, "more than %lld fen", (long long)MAX_FEN);
}

static void check_coords(json_t *errs, const char *field, int32_t lat,
                         int32_t lng) {
  char f[64];
  if (lat < -90000000 || lat > 90000000) {
    snprintf(f, sizeof f, "%s.lat_e6", field);
    gw_verr(errs, f, "latitude must be within -90e6..90e6 microdegrees");
  }
  if (lng < -180000000 || lng > 180000000) {
    snprintf(f, sizeof f, "%s.lng_e6", field);
    gw_verr(errs, f, "longitude must be within -180e6..180e6 microdegrees");
  }
}

static void check_phone(json_t *errs, const char *field, const char *v) {
  size_t n = v ? strlen(v) : 0;
  if (n == 0) {
    gw_verr(errs, field, "required");
    return;
  }
  size_t digits = 0;
  for (size_t i = 0; i < n; i++) {
    if (v[i] >= '0' && v[i] <= '9')
      digits++;
    else if (!(i == 0 && v[i] == '+')) {
      gw_verr(errs, field, "digits with an optional leading '+'");
      return;
    }
  }
  if (digits < 3 || digits > 20)
    gw_verr(errs, field, "3 to 20 digits");
}

void gw_validate_placed(json_t *errs, const ProtobufCMessage *m,
                        int max_lines) {
  const Linli__OrderPlaced *p = (const Linli__OrderPlaced *)m;
  gw_check_id(errs, "order_id", p->order_id);
  gw_check_id(errs, "user_id", p->user_id);
  gw_check_id(errs, "warehouse_id", p->warehouse_id);
  gw_check_opt_id(errs, "campaign_id", p->campaign_id);
  if (p->n_lines == 0)
    gw_verr(errs, "lines", "an order needs at least one line");
  else if (p->n_lines > (size_t)max_lines)
    gw_verr(errs, "lines", "%zu lines, at most %d allowed", p->n_lines,
            max_lines);
  int64_t total = 0;
  int overflow = 0;
  for (size_t i = 0; i < p->n_lines && i <= (size_t)max_lines; i++) {
    const Linli__OrderLine *l = p->lines[i];
    char f[64];
    snprintf(f, sizeof f, "lines[%zu].sku_id", i);
    gw_check_id(errs, f, l->sku_id);
    for (size_t j = 0; j < i && l->sku_id[0]; j++) {
      if (strcmp(p->lines[j]->sku_id, l->sku_id) == 0) {
        gw_verr(errs, f, "SKU %s appears in lines[%zu] already",
                linli_id_valid(l->sku_id) ? l->sku_id : "?", j);
        break;
      }
    }
    snprintf(f, sizeof f, "lines[%zu].quantity", i);
    if (l->quantity <= 0)
      gw_verr(errs, f, "must be positive");
    else if (l->quantity > MAX_QTY)
      gw_verr(errs, f, "at most %d", MAX_QTY);
    snprintf(f, sizeof f, "lines[%zu].unit_price_fen", i);
    check_fen(errs, f, l->unit_price_fen, 0);
    int64_t line;
    if (l->quantity > 0 && l->quantity <= MAX_QTY && l->unit_price_fen >= 0 &&
        l->unit_price_fen <= MAX_FEN &&
        !__builtin_mul_overflow(l->unit_price_fen, (int64_t)l->quantity,
                                &line) &&
        !__builtin_add_overflow(total, line, &total))
      continue;
    overflow = 1;
  }
  if (!overflow && total > MAX_FEN) {
    overflow = 1;
    gw_verr(errs, "lines",
            "the order total (sum of quantity * unit_price_fen) is %lld fen, "
            "more than %lld", (long long)total, (long long)MAX_FEN);
  } else if (overflow && p->n_lines <= (size_t)max_lines &&
             json_array_size(errs) == 0) {
    gw_verr(errs, "lines",
            "the order total (sum of quantity * unit_price_fen) is more "
            "than %lld fen", (long long)MAX_FEN);
  }
  if (p->total_fen < 0)
    gw_verr(errs, "total_fen", "must not be negative (fen)");
  else if (!overflow && p->n_lines > 0 && p->total_fen != 0 &&
           p->total_fen != total)
    gw_verr(errs, "total_fen",
            "must equal the sum of quantity * unit_price_fen (%lld), or be "
            "omitted", (long long)total);
  switch (p->delivery_case) {
  case LINLI__ORDER_PLACED__DELIVERY_PICKUP:
    gw_check_id(errs, "pickup.pickup_point_id", p->pickup->pickup_point_id);
    break;
  case LINLI__ORDER_PLACED__DELIVERY_HOME:
    gw_check_text(errs, "home.recipient_name", p->home->recipient_name,
                  TEXT_SHORT);
    if (!p->home->recipient_name[0])
      gw_verr(errs, "home.recipient_name", "required");
    check_phone(errs, "home.phone", p->home->phone);
    gw_check_text(errs, "home.address", p->home->address, TEXT_LONG);
    if (!p->home->address[0])
      gw_verr(errs, "home.address", "required");
    check_coords(errs, "home", p->home->lat_e6, p->home->lng_e6);
    break;
  default:
    gw_verr(errs, "delivery", "choose pickup or home delivery");
  }
  if (p->placed_at_ms < 0)
    gw_verr(errs, "placed_at_ms", "must not be negative");
}

int gw_order_total(const Linli__OrderPlaced *o, int64_t *total) {
  int64_t sum = 0, line;
  for (size_t i = 0; i < o->n_lines; i++) {
    if (__builtin_mul_overflow(o->lines[i]->unit_price_fen,
                               (int64_t)o->lines[i]->quantity, &line) ||
        __builtin_add_overflow(sum, line, &sum))
      return LINLI_ERR_INVALID;
  }
  *total = sum;
  return LINLI_OK;
}

void gw_validate_paid(json_t *errs, const ProtobufCMessage *m) {
  const Linli__OrderPaid *p = (const Linli__OrderPaid *)m;
  gw_check_id(errs, "order_id", p->order_id);
  if (p->method == LINLI__ORDER_PAID__METHOD__METHOD_UNSPECIFIED)
    gw_verr(errs, "method", "required: WECHAT_PAY, ALIPAY or BANK_CARD");
  gw_check_id(errs, "payment_txn_id", p->payment_txn_id);
  check_fen(errs, "amount_fen", p->amount_fen, 1);
  if (p->paid_at_ms < 0)
    gw_verr(errs, "paid_at_ms", "must not be negative");
}

void gw_validate_cancelled(json_t *errs, const ProtobufCMessage *m) {
  const Linli__OrderCancelled *c = (const Linli__OrderCancelled *)m;
  gw_check_id(errs, "order_id", c->order_id);
  gw_check_text(errs, "reason", c->reason, TEXT_SHORT);
  if (c->cancelled_at_ms < 0)
    gw_verr(errs, "cancelled_at_ms", "must not be negative");
}

void gw_validate_campaign(json_t *errs, const ProtobufCMessage *m) {
  const Linli__CampaignOpened *c = (const Linli__CampaignOpened *)m;
  gw_check_id(errs, "campaign_id", c->campaign_id);
  gw_check_opt_id(errs, "app_id", c->app_id);
  gw_check_id(errs, "sku_id", c->sku_id);
  gw_check_id(errs, "warehouse_id", c->warehouse_id);
  check_fen(errs, "list_price_fen", c->list_price_fen, 0);
  if (c->n_tiers == 0)
    gw_verr(errs, "tiers", "at least one tier");
  else if (c->n_tiers > 32)
    gw_verr(errs, "tiers", "at most 32 tiers");
  for (size_t i = 0; i < c->n_tiers && i < 33; i++) {
    char f[64];
    const Linli__CampaignOpened__Tier *t = c->tiers[i];
    snprintf(f, sizeof f, "tiers[%zu].min_participants", i);
    if (t->min_participants <= 0)
      gw_verr(errs, f, "must be positive");
    else if (i > 0 && t->min_participants <= c->tiers[i - 1]->min_participants)
      gw_verr(errs, f, "tiers must ascend by min_participants");
    snprintf(f, sizeof f, "tiers[%zu].unit_price_fen", i);
    check_fen(errs, f, t->unit_price_fen, 1);
    if (i > 0 && t->unit_price_fen > c->tiers[i - 1]->unit_price_fen)
      gw_verr(errs, f, "a higher tier may not cost more");
  }
  if (c->deadline_ms <= 0)
    gw_verr(errs, "deadline_ms", "required (UTC ms)");
  if (c->per_user_limit < 0)
    gw_verr(errs, "per_user_limit", "must not be negative");
  gw_check_opt_id(errs, "pickup_point_id", c->pickup_point_id);
  gw_check_text(errs, "title", c->title, TEXT_SHORT);
}

void gw_validate_joined(json_t *errs, const ProtobufCMessage *m) {
  const Linli__GroupBuyJoined *j = (const Linli__GroupBuyJoined *)m;
  gw_check_id(errs, "campaign_id", j->campaign_id);
  gw_check_id(errs, "user_id", j->user_id);
  gw_check_id(errs, "order_id", j->order_id);
  if (j->quantity <= 0)
    gw_verr(errs, "quantity", "must be positive");
  else if (j->quantity > MAX_QTY)
    gw_verr(errs, "quantity", "at most %d", MAX_QTY);
}

void gw_validate_left(json_t *errs, const ProtobufCMessage *m) {
  const Linli__GroupBuyLeft *l = (const Linli__GroupBuyLeft *)m;
  gw_check_id(errs, "campaign_id", l->campaign_id);
  gw_check_id(errs, "user_id", l->user_id);
  gw_check_id(errs, "order_id", l->order_id);
}

void gw_validate_delivery(json_t *errs, const ProtobufCMessage *envelope) {
  const Linli__DeliveryEvent *e = (const Linli__DeliveryEvent *)envelope;
  switch (e->event_case) {
  case LINLI__DELIVERY_EVENT__EVENT_OUT_FOR_DELIVERY:
    gw_check_id(errs, "out_for_delivery.order_id",
                e->out_for_delivery->order_id);
    gw_check_id(errs, "out_for_delivery.route_id",
                e->out_for_delivery->route_id);
    gw_check_id(errs, "out_for_delivery.courier_id",
                e->out_for_delivery->courier_id);
    break;
  case LINLI__DELIVERY_EVENT__EVENT_ARRIVED_AT_PICKUP_POINT:
    gw_check_id(errs, "arrived_at_pickup_point.order_id",
                e->arrived_at_pickup_point->order_id);
    gw_check_id(errs, "arrived_at_pickup_point.pickup_point_id",
                e->arrived_at_pickup_point->pickup_point_id);
    gw_check_id(errs, "arrived_at_pickup_point.pickup_code",
                e->arrived_at_pickup_point->pickup_code);
    break;
  case LINLI__DELIVERY_EVENT__EVENT_PICKED_UP:
    gw_check_id(errs, "picked_up.order_id", e->picked_up->order_id);
    gw_check_id(errs, "picked_up.pickup_code", e->picked_up->pickup_code);
    break;
  case LINLI__DELIVERY_EVENT__EVENT_DELIVERED:
    gw_check_id(errs, "delivered.order_id", e->delivered->order_id);
    gw_check_text(errs, "delivered.proof", e->delivered->proof, TEXT_SHORT);
    break;
  case LINLI__DELIVERY_EVENT__EVENT_DELIVERY_FAILED:
    gw_check_id(errs, "delivery_failed.order_id",
                e->delivery_failed->order_id);
    gw_check_text(errs, "delivery_failed.reason", e->delivery_failed->reason,
                  TEXT_SHORT);
    break;
  default:
    gw_verr(errs, "(body)",
            "one of out_for_delivery, arrived_at_pickup_point, picked_up, "
            "delivered, delivery_failed");
  }
  if (e->meta)
    gw_verr(errs, "meta", "set by the gateway, not by the caller");
}

void gw_validate_sku(json_t *errs, const ProtobufCMessage *m) {
  const Linli__Sku *s = (const Linli__Sku *)m;
  gw_check_id(errs, "sku_id", s->sku_id);
  gw_check_text(errs, "name", s->name, TEXT_SHORT);
  if (!s->name[0])
    gw_verr(errs, "name", "required");
  gw_check_text(errs, "category", s->category, TEXT_SHORT);
  gw_check_text(errs, "origin", s->origin, TEXT_SHORT);
  if (s->storage_class == LINLI__STORAGE_CLASS__STORAGE_CLASS_UNSPECIFIED)
    gw_verr(errs, "storage_class", "required: AMBIENT, CHILLED or FROZEN");
  if (s->weight_g <= 0)
    gw_verr(errs, "weight_g", "must be positive");
  check_fen(errs, "list_price_fen", s->list_price_fen, 0);
  if (s->status == LINLI__SKU__STATUS__STATUS_UNSPECIFIED)
    gw_verr(errs, "status", "required: LISTED or DELISTED");
}

void gw_validate_adjustment(json_t *errs, const ProtobufCMessage *m) {
  const Linli__StockAdjusted *a = (const Linli__StockAdjusted *)m;
  gw_check_id(errs, "adjustment_id", a->adjustment_id);
  gw_check_id(errs, "warehouse_id", a->warehouse_id);
  gw_check_id(errs, "sku_id", a->sku_id);
  if (a->quantity == 0)
    gw_verr(errs, "quantity", "must not be 0");
  else if (a->quantity > MAX_QTY || a->quantity < -MAX_QTY)
    gw_verr(errs, "quantity", "at most %d units either way", MAX_QTY);
  if (a->reason == LINLI__STOCK_ADJUSTED__REASON__REASON_UNSPECIFIED)
    gw_verr(errs, "reason", "required: RESTOCK, DAMAGE, RECALL or COUNT");
  else if (a->reason == LINLI__STOCK_ADJUSTED__REASON__RESTOCK &&
           a->quantity < 0)
    gw_verr(errs, "quantity", "a restock adds stock (positive)");
  else if ((a->reason == LINLI__STOCK_ADJUSTED__REASON__DAMAGE ||
            a->reason == LINLI__STOCK_ADJUSTED__REASON__RECALL) &&
           a->quantity > 0)
    gw_verr(errs, "quantity", "damage and recalls remove stock (negative)");
  gw_check_text(errs, "note", a->note, TEXT_LONG);
}
