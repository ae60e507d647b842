/*
 * decode.c - the reserver's input records, decoded and validated in memory
 * before anything touches Redis. A record whose content cannot be processed
 * (undecodable, bad ids, strings that are not UTF-8, quantities, money or
 * times out of range) goes to the DLQ with its reason here, so no record
 * can stop a partition; what passes is safe to copy into outputs.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "linli/error.h"
#include "linli/ids.h"

#define MAX_QTY 1000000
#define MAX_TEXT 512 /* bytes of a free-text field passed on */
/* A check passed and decoding goes on (bad() returns LINLI_OK: the record
 * is handled; errors are negative). */
#define GO_ON 1

/* Reject record i with a formatted reason. Always returns LINLI_OK: a bad
 * record is handled, the batch goes on. */
__attribute__((format(printf, 4, 5))) static int
bad(linli_batch_t *in, size_t i, struct rec *r, const char *fmt, ...) {
  char reason[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(reason, sizeof reason, fmt, ap);
  va_end(ap);
  linli_batch_reject(in, i, LINLI_ERR_INVALID, reason);
  r->kind = REC_SKIP;
  return LINLI_OK;
}

#define ID_RULE "must be 1-64 characters of [A-Za-z0-9_-]"

static int id_ok(const char *v) { return v && linli_id_valid(v); }
static int opt_id_ok(const char *v) { return !v || !v[0] || id_ok(v); }

/* Well-formed UTF-8 (no overlongs, no surrogates), at most max bytes. */
static int utf8_ok(const char *s, size_t max) {
  const unsigned char *p = (const unsigned char *)s;
  size_t n = 0;
  while (p[n]) {
    unsigned c = p[n];
    size_t k;
    unsigned min;
    if (c < 0x80) {
      n++;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      k = 1, min = 0x80, c &= 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      k = 2, min = 0x800, c &= 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      k = 3, min = 0x10000, c &= 0x07;
    } else {
      return 0;
    }
    for (size_t j = 1; j <= k; j++) {
      if ((p[n + j] & 0xC0) != 0x80)
        return 0;
      c = c << 6 | (p[n + j] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
      return 0;
    n += k + 1;
  }
  return n <= max;
}

/* The input's Meta: its id (copied into every output's causation_id and
 * the seed of their ids), trace id and time. */
static int meta_ok(linli_batch_t *in, size_t i, struct rec *r,
                   const Linli__Meta *meta) {
  r->ctx.in = r->m;
  r->ctx.cause_event_id = meta ? meta->event_id : "";
  r->ctx.trace_id = meta ? meta->trace_id : "";
  r->ctx.occurred_at_ms = meta ? meta->occurred_at_ms : 0;
  if (r->ctx.cause_event_id[0] && !linli_id_valid(r->ctx.cause_event_id))
    return bad(in, i, r, "meta.event_id: " ID_RULE);
  if (!utf8_ok(r->ctx.trace_id, 128))
    return bad(in, i, r, "meta.trace_id: must be UTF-8, at most 128 bytes");
  if (r->ctx.occurred_at_ms < 0 ||
      r->ctx.occurred_at_ms > RESERVER_MAX_TIME_MS)
    return bad(in, i, r, "meta.occurred_at_ms: %lld is out of range",
               (long long)r->ctx.occurred_at_ms);
  if (r->ctx.occurred_at_ms == 0) {
    rd_kafka_timestamp_type_t tt;
    int64_t ts = rd_kafka_message_timestamp(r->m, &tt);
    r->ctx.occurred_at_ms =
        ts > 0 && ts <= RESERVER_MAX_TIME_MS ? ts : 0;
  }
  return GO_ON;
}

/* ------------------------------------------------------------ OrderPlaced */

static int delivery_ok(linli_batch_t *in, size_t i, struct rec *r,
                       const Linli__OrderPlaced *p) {
  switch (p->delivery_case) {
  case LINLI__ORDER_PLACED__DELIVERY_PICKUP:
    if (!id_ok(p->pickup ? p->pickup->pickup_point_id : NULL))
      return bad(in, i, r, "order_placed.pickup.pickup_point_id: " ID_RULE);
    return GO_ON;
  case LINLI__ORDER_PLACED__DELIVERY_HOME:
    if (p->home->lat_e6 < -90000000 || p->home->lat_e6 > 90000000 ||
        p->home->lng_e6 < -180000000 || p->home->lng_e6 > 180000000)
      return bad(in, i, r, "order_placed.home: coordinates out of range");
    if (!utf8_ok(p->home->recipient_name, MAX_TEXT) ||
        !utf8_ok(p->home->phone, MAX_TEXT) ||
        !utf8_ok(p->home->address, MAX_TEXT))
      return bad(in, i, r, "order_placed.home: name, phone and address must "
                 "be UTF-8, at most %d bytes each", MAX_TEXT);
    return GO_ON;
  default:
    return bad(in, i, r, "order_placed.delivery: choose pickup or home "
               "delivery");
  }
}

/* Lines merged per SKU (quantities summed) and the total, every sum
 * checked: price <= 10^11 and quantity <= 10^6 keep a product below 2^63,
 * and the total stays below RESERVER_MAX_FEN. */
static int lines_ok(struct rsv_batch *b, linli_batch_t *in, size_t i,
                    struct rec *r, const Linli__OrderPlaced *p) {
  r->lines = arena_alloc(&b->arena, p->n_lines * sizeof *r->lines);
  if (!r->lines)
    return LINLI_ERR_TRANSIENT;
  r->nlines = 0;
  r->total = 0;
  for (size_t k = 0; k < p->n_lines; k++) {
    const Linli__OrderLine *l = p->lines[k];
    if (!id_ok(l->sku_id))
      return bad(in, i, r, "order_placed.lines[%zu].sku_id: " ID_RULE, k);
    if (l->quantity <= 0)
      return bad(in, i, r, "order_placed.lines[%zu].quantity: must be "
                 "positive, got %d", k, (int)l->quantity);
    if (l->quantity > MAX_QTY)
      return bad(in, i, r, "order_placed.lines[%zu].quantity: more than %d "
                 "units", k, MAX_QTY);
    if (l->unit_price_fen < 0 || l->unit_price_fen > INT64_C(100000000000))
      return bad(in, i, r, "order_placed.lines[%zu].unit_price_fen: out of "
                 "range", k);
    int64_t amount = l->unit_price_fen * l->quantity;
    if (amount > RESERVER_MAX_FEN - r->total)
      return bad(in, i, r, "order_placed.lines[%zu]: the order's total "
                 "exceeds %lld fen", k, (long long)RESERVER_MAX_FEN);
    r->total += amount;
    size_t j = 0;
    while (j < r->nlines && strcmp(r->lines[j].sku, l->sku_id) != 0)
      j++;
    if (j == r->nlines)
      r->lines[r->nlines++].sku = l->sku_id;
    r->lines[j].qty += l->quantity;
    if (r->lines[j].qty > MAX_QTY)
      return bad(in, i, r, "order_placed.lines[%zu].quantity: more than %d "
                 "units of %s", k, MAX_QTY, l->sku_id);
  }
  return GO_ON;
}

static int decode_placed(struct reserver *rs, struct rsv_batch *b,
                         linli_batch_t *in, size_t i, struct rec *r,
                         const Linli__OrderPlaced *p) {
  if (!id_ok(p->order_id))
    return bad(in, i, r, "order_placed.order_id: " ID_RULE);
  if (!id_ok(p->user_id))
    return bad(in, i, r, "order_placed.user_id: " ID_RULE);
  if (!id_ok(p->warehouse_id))
    return bad(in, i, r, "order_placed.warehouse_id: " ID_RULE);
  if (!opt_id_ok(p->app_id))
    return bad(in, i, r, "order_placed.app_id: " ID_RULE);
  if (!opt_id_ok(p->campaign_id))
    return bad(in, i, r, "order_placed.campaign_id: " ID_RULE);
  if (p->n_lines == 0)
    return bad(in, i, r, "order_placed.lines: an order needs at least one "
               "line");
  if (p->n_lines > (size_t)rs->max_lines)
    return bad(in, i, r, "order_placed.lines: %zu lines, at most %d allowed "
               "(orders.max_lines)", p->n_lines, rs->max_lines);
  int rc = delivery_ok(in, i, r, p);
  if (rc == GO_ON)
    rc = lines_ok(b, in, i, r, p);
  if (rc != GO_ON)
    return rc;
  r->kind = REC_PLACED;
  r->placed = p;
  r->order_id = p->order_id;
  r->wh = p->warehouse_id;
  /* occurred_at_ms <= RESERVER_MAX_TIME_MS and the timeout <= 1 day: no
   * overflow. */
  r->expires_at = r->ctx.occurred_at_ms + rs->payment_timeout_ms;
  r->reject = "";
  if (p->total_fen != 0 && p->total_fen != r->total)
    r->reject = arena_printf(&b->arena,
                             "INVALID_ORDER|total_fen %lld does not match "
                             "the lines (%lld)",
                             (long long)p->total_fen, (long long)r->total);
  return r->reject ? LINLI_OK : LINLI_ERR_TRANSIENT;
}

/* --------------------------------------------------- paid, cancel, expire */

static int decode_paid(linli_batch_t *in, size_t i, struct rec *r,
                       const Linli__OrderPaid *p) {
  if (!id_ok(p->order_id))
    return bad(in, i, r, "order_paid.order_id: " ID_RULE);
  if (!id_ok(p->payment_txn_id))
    return bad(in, i, r, "order_paid.payment_txn_id: " ID_RULE);
  if (p->amount_fen <= 0 || p->amount_fen > RESERVER_MAX_FEN)
    return bad(in, i, r, "order_paid.amount_fen: must be 1..%lld",
               (long long)RESERVER_MAX_FEN);
  if (p->method != LINLI__ORDER_PAID__METHOD__WECHAT_PAY &&
      p->method != LINLI__ORDER_PAID__METHOD__ALIPAY &&
      p->method != LINLI__ORDER_PAID__METHOD__BANK_CARD)
    return bad(in, i, r, "order_paid.method: WECHAT_PAY, ALIPAY or "
               "BANK_CARD");
  r->kind = REC_PAID;
  r->paid = p;
  r->order_id = p->order_id;
  return LINLI_OK;
}

static int decode_release(linli_batch_t *in, size_t i, struct rec *r,
                          const char *order_id, int expiry,
                          int64_t deadline) {
  if (!id_ok(order_id))
    return bad(in, i, r, "%s.order_id: " ID_RULE,
               expiry ? "order_expired" : "order_cancelled");
  if (deadline < 0 || deadline > RESERVER_MAX_TIME_MS)
    return bad(in, i, r, "order_expired.deadline_ms: out of range");
  r->kind = REC_RELEASE;
  r->order_id = order_id;
  r->expiry = expiry;
  r->deadline = deadline;
  return LINLI_OK;
}

static int decode_order(struct reserver *rs, struct rsv_batch *b,
                        linli_batch_t *in, size_t i, struct rec *r) {
  const rd_kafka_message_t *m = r->m;
  if (!m->payload || m->len == 0)
    return bad(in, i, r, "empty record: expected an OrderEvent");
  Linli__OrderEvent *ev =
      linli__order_event__unpack(NULL, m->len, (const uint8_t *)m->payload);
  if (!ev)
    return bad(in, i, r, "undecodable record: not an OrderEvent (%zu bytes)",
               m->len);
  r->ev = ev;
  int rc = meta_ok(in, i, r, ev->meta);
  if (rc != GO_ON)
    return rc;
  switch (ev->event_case) {
  case LINLI__ORDER_EVENT__EVENT_ORDER_PLACED:
    return decode_placed(rs, b, in, i, r, ev->order_placed);
  case LINLI__ORDER_EVENT__EVENT_ORDER_PAID:
    return decode_paid(in, i, r, ev->order_paid);
  case LINLI__ORDER_EVENT__EVENT_ORDER_CANCELLED:
    return decode_release(in, i, r, ev->order_cancelled->order_id, 0, 0);
  case LINLI__ORDER_EVENT__EVENT_ORDER_EXPIRED:
    return decode_release(in, i, r, ev->order_expired->order_id, 1,
                          ev->order_expired->deadline_ms);
  default:
    return bad(in, i, r, "OrderEvent carries no event");
  }
}

/* -------------------------------------------------- inventory and catalog */

static int decode_inventory(linli_batch_t *in, size_t i, struct rec *r) {
  const rd_kafka_message_t *m = r->m;
  if (!m->payload || m->len == 0)
    return bad(in, i, r, "empty record: expected an InventoryEvent");
  Linli__InventoryEvent *ev = linli__inventory_event__unpack(
      NULL, m->len, (const uint8_t *)m->payload);
  if (!ev)
    return bad(in, i, r, "undecodable record: not an InventoryEvent (%zu "
               "bytes)", m->len);
  r->ev = ev;
  const Linli__StockAdjusted *a = ev->stock_adjusted;
  if (ev->event_case != LINLI__INVENTORY_EVENT__EVENT_STOCK_ADJUSTED)
    return bad(in, i, r, "InventoryEvent carries no event");
  if (!id_ok(a->warehouse_id))
    return bad(in, i, r, "stock_adjusted.warehouse_id: " ID_RULE);
  if (!id_ok(a->sku_id))
    return bad(in, i, r, "stock_adjusted.sku_id: " ID_RULE);
  if (a->quantity == 0)
    return bad(in, i, r, "stock_adjusted.quantity: must not be 0");
  if (a->quantity < -MAX_QTY * 1000 || a->quantity > MAX_QTY * 1000)
    return bad(in, i, r, "stock_adjusted.quantity: out of range");
  if (a->reason == LINLI__STOCK_ADJUSTED__REASON__RESTOCK && a->quantity < 0)
    return bad(in, i, r, "stock_adjusted.quantity: a RESTOCK must be "
               "positive");
  if ((a->reason == LINLI__STOCK_ADJUSTED__REASON__DAMAGE ||
       a->reason == LINLI__STOCK_ADJUSTED__REASON__RECALL) &&
      a->quantity > 0)
    return bad(in, i, r, "stock_adjusted.quantity: DAMAGE and RECALL must be "
               "negative");
  if (a->reason != LINLI__STOCK_ADJUSTED__REASON__RESTOCK &&
      a->reason != LINLI__STOCK_ADJUSTED__REASON__DAMAGE &&
      a->reason != LINLI__STOCK_ADJUSTED__REASON__RECALL &&
      a->reason != LINLI__STOCK_ADJUSTED__REASON__COUNT)
    return bad(in, i, r, "stock_adjusted.reason: RESTOCK, DAMAGE, RECALL or "
               "COUNT");
  r->kind = REC_ADJUST;
  r->adj = a;
  r->wh = a->warehouse_id;
  return LINLI_OK;
}

static int decode_catalog(linli_batch_t *in, size_t i, struct rec *r) {
  const rd_kafka_message_t *m = r->m;
  if (!m->payload || m->len == 0)
    return LINLI_OK; /* a tombstone on the compacted catalog: nothing */
  Linli__CatalogEvent *ev = linli__catalog_event__unpack(
      NULL, m->len, (const uint8_t *)m->payload);
  if (!ev)
    return bad(in, i, r, "undecodable record: not a CatalogEvent (%zu bytes)",
               m->len);
  r->ev = ev;
  if (ev->event_case != LINLI__CATALOG_EVENT__EVENT_SKU)
    return bad(in, i, r, "CatalogEvent carries no event");
  const Linli__Sku *s = ev->sku;
  if (!id_ok(s->sku_id))
    return bad(in, i, r, "sku.sku_id: " ID_RULE);
  if (s->status != LINLI__SKU__STATUS__LISTED &&
      s->status != LINLI__SKU__STATUS__DELISTED)
    return bad(in, i, r, "sku.status: LISTED or DELISTED");
  if (s->list_price_fen < 0 || s->list_price_fen > INT64_C(100000000000))
    return bad(in, i, r, "sku.list_price_fen: out of range");
  r->kind = REC_CATALOG;
  r->sku = s;
  return LINLI_OK;
}

/* ------------------------------------------------------------ settlements */

/* The settler's refunds of a failed campaign as "order:fen,..." (the
 * script subtracts them from a later payment of the same order). */
static int refunds_arg(struct rsv_batch *b, linli_batch_t *in, size_t i,
                       struct rec *r, Linli__CampaignRefund **rf, size_t n) {
  size_t len = 1;
  for (size_t k = 0; k < n; k++) {
    if (!rf[k] || !id_ok(rf[k]->order_id))
      return bad(in, i, r, "campaign_failed.refunds[%zu].order_id: " ID_RULE,
                 k);
    if (rf[k]->amount_fen < 0 || rf[k]->amount_fen > RESERVER_MAX_FEN)
      return bad(in, i, r, "campaign_failed.refunds[%zu].amount_fen: must be "
                 "0..%lld", k, (long long)RESERVER_MAX_FEN);
    len += strlen(rf[k]->order_id) + 22;
  }
  char *s = arena_alloc(&b->arena, len);
  if (!s)
    return LINLI_ERR_TRANSIENT;
  size_t off = 0;
  for (size_t k = 0; k < n; k++)
    off += (size_t)snprintf(s + off, len - off, "%s%s:%lld", k ? "," : "",
                            rf[k]->order_id, (long long)rf[k]->amount_fen);
  r->campaign_refunds = s;
  return GO_ON;
}

/* CampaignSettled and CampaignFailed decide the campaign's orders in its
 * warehouse's shard; the topic's other events are not the reserver's. */
static int decode_settlement(struct rsv_batch *b, linli_batch_t *in, size_t i,
                             struct rec *r) {
  const rd_kafka_message_t *m = r->m;
  if (!m->payload || m->len == 0)
    return bad(in, i, r, "empty record: expected a SettlementEvent");
  Linli__SettlementEvent *ev = linli__settlement_event__unpack(
      NULL, m->len, (const uint8_t *)m->payload);
  if (!ev)
    return bad(in, i, r, "undecodable record: not a SettlementEvent (%zu "
               "bytes)", m->len);
  r->ev = ev;
  const char *what, *campaign, *wh;
  if (ev->event_case == LINLI__SETTLEMENT_EVENT__EVENT_CAMPAIGN_SETTLED) {
    what = "campaign_settled";
    campaign = ev->campaign_settled->campaign_id;
    wh = ev->campaign_settled->warehouse_id;
    r->settled = 1;
    r->price = ev->campaign_settled->unit_price_fen;
  } else if (ev->event_case ==
             LINLI__SETTLEMENT_EVENT__EVENT_CAMPAIGN_FAILED) {
    what = "campaign_failed";
    campaign = ev->campaign_failed->campaign_id;
    wh = ev->campaign_failed->warehouse_id;
  } else {
    return LINLI_OK; /* ThresholdReached, JoinResult: kind REC_SKIP */
  }
  int rc = meta_ok(in, i, r, ev->meta);
  if (rc != GO_ON)
    return rc;
  if (!id_ok(campaign))
    return bad(in, i, r, "%s.campaign_id: " ID_RULE, what);
  if (!id_ok(wh))
    return bad(in, i, r, "%s.warehouse_id: " ID_RULE " (a settlement "
               "written before the field existed cannot be routed to its "
               "warehouse)", what);
  if (r->price < 0 || r->price > INT64_C(100000000000))
    return bad(in, i, r, "campaign_settled.unit_price_fen: out of range");
  r->campaign_refunds = "";
  if (!r->settled) {
    rc = refunds_arg(b, in, i, r, ev->campaign_failed->refunds,
                     ev->campaign_failed->n_refunds);
    if (rc != GO_ON)
      return rc;
  }
  r->kind = REC_CAMPAIGN;
  r->campaign_id = campaign;
  r->wh = wh;
  return LINLI_OK;
}

int rsv_decode(struct reserver *rs, struct rsv_batch *b, linli_batch_t *in,
               size_t i, struct rec *r) {
  memset(r, 0, sizeof *r);
  r->m = linli_batch_msg(in, i);
  r->order = r->shard = r->slot = -1;
  const char *topic = rd_kafka_topic_name(r->m->rkt);
  if (strcmp(topic, RESERVER_TOPIC_ORDERS) == 0)
    return decode_order(rs, b, in, i, r);
  if (strcmp(topic, RESERVER_TOPIC_INVENTORY) == 0)
    return decode_inventory(in, i, r);
  if (strcmp(topic, RESERVER_TOPIC_CATALOG) == 0)
    return decode_catalog(in, i, r);
  if (strcmp(topic, RESERVER_TOPIC_SETTLEMENTS) == 0)
    return decode_settlement(b, in, i, r);
  return bad(in, i, r, "unexpected topic %s", topic);
}

void rsv_rec_release(struct rec *r) {
  if (!r->ev)
    return;
  const char *topic = rd_kafka_topic_name(r->m->rkt);
  if (strcmp(topic, RESERVER_TOPIC_ORDERS) == 0)
    linli__order_event__free_unpacked(r->ev, NULL);
  else if (strcmp(topic, RESERVER_TOPIC_INVENTORY) == 0)
    linli__inventory_event__free_unpacked(r->ev, NULL);
  else if (strcmp(topic, RESERVER_TOPIC_SETTLEMENTS) == 0)
    linli__settlement_event__free_unpacked(r->ev, NULL);
  else
    linli__catalog_event__free_unpacked(r->ev, NULL);
  r->ev = NULL;
}
