/*
 * decode.c - the reserver's input records, decoded and validated in memory
 * before anything touches Redis. Each record is judged by libdomain's check
 * for its kind (domain/orders.h, domain/stock.h), the same functions the
 * gateway and the ledger call: a record whose content cannot be processed
 * goes to the DLQ here with the reason they would give ("field: what is
 * wrong"), so no record can stop a partition and what the gateway accepts
 * the reserver never refuses. What passes is safe to copy into outputs.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "domain/check.h"
#include "domain/orders.h"
#include "domain/stock.h"
#include "linli/error.h"

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

/* The first problem libdomain's check found, as the DLQ reason. */
struct verdict {
  char reason[400];
  struct dom_first_err fe;
};

static void verdict_init(struct verdict *v) {
  v->reason[0] = '\0';
  v->fe.buf = v->reason;
  v->fe.len = sizeof v->reason;
  v->fe.n = 0;
}

/* The input's Meta (valid: checked with the event): its id (copied into
 * every output's causation_id and the seed of their ids), trace id and
 * time. */
static void meta_ctx(struct rec *r, const Linli__Meta *meta) {
  r->ctx.in = r->m;
  r->ctx.cause_event_id = meta->event_id;
  r->ctx.trace_id = meta->trace_id ? meta->trace_id : "";
  r->ctx.occurred_at_ms = meta->occurred_at_ms;
}

/* ------------------------------------------------------------ OrderPlaced */

/* Lines merged per SKU (quantities summed) and the total. The order is
 * valid (dom_order_check_placed): every product, sum and merged quantity
 * is in range. */
static int merge_lines(struct rsv_batch *b, struct rec *r,
                       const Linli__OrderPlaced *p) {
  r->lines = arena_alloc(&b->arena, p->n_lines * sizeof *r->lines);
  if (!r->lines)
    return LINLI_ERR_TRANSIENT;
  r->nlines = 0;
  r->total = 0;
  if (dom_order_total(p, &r->total) != LINLI_OK)
    return LINLI_ERR_INVALID; /* not reached: the order was checked */
  struct dom_sku_units *m = malloc(p->n_lines * sizeof *m);
  size_t nm = 0;
  if (m == NULL || dom_order_lines_merge(p->lines, p->n_lines, m, &nm)) {
    free(m);
    return LINLI_ERR_TRANSIENT;
  }
  /* Each SKU's units are at most DOM_MAX_QUANTITY (the order's check). */
  for (size_t j = 0; j < nm; j++) {
    r->lines[j].sku = m[j].sku;
    r->lines[j].qty = m[j].units;
  }
  r->nlines = nm;
  free(m);
  return LINLI_OK;
}

static int decode_placed(struct reserver *rs, struct rsv_batch *b,
                         struct rec *r, const Linli__OrderPlaced *p) {
  int rc = merge_lines(b, r, p);
  if (rc != LINLI_OK)
    return rc;
  r->kind = REC_PLACED;
  r->placed = p;
  r->order_id = p->order_id;
  r->wh = p->warehouse_id;
  /* occurred_at_ms <= DOM_MAX_TIME_MS and the timeout <= 1 day: no
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

static void decode_paid(struct rec *r, const Linli__OrderPaid *p) {
  r->kind = REC_PAID;
  r->paid = p;
  r->order_id = p->order_id;
}

static void decode_release(struct rec *r, const char *order_id, int expiry,
                           int64_t deadline) {
  r->kind = REC_RELEASE;
  r->order_id = order_id;
  r->expiry = expiry;
  r->deadline = deadline;
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
  struct verdict v;
  verdict_init(&v);
  if (dom_order_event_check(ev, rs->max_lines, dom_first_err, &v.fe))
    return bad(in, i, r, "%s", v.reason);
  meta_ctx(r, ev->meta);
  switch (ev->event_case) {
  case LINLI__ORDER_EVENT__EVENT_ORDER_PLACED:
    return decode_placed(rs, b, r, ev->order_placed);
  case LINLI__ORDER_EVENT__EVENT_ORDER_PAID:
    decode_paid(r, ev->order_paid);
    return LINLI_OK;
  case LINLI__ORDER_EVENT__EVENT_ORDER_CANCELLED:
    decode_release(r, ev->order_cancelled->order_id, 0, 0);
    return LINLI_OK;
  default: /* LINLI__ORDER_EVENT__EVENT_ORDER_EXPIRED: the check knows */
    decode_release(r, ev->order_expired->order_id, 1,
                   ev->order_expired->deadline_ms);
    return LINLI_OK;
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
  struct verdict v;
  verdict_init(&v);
  if (dom_inventory_event_check(ev, dom_first_err, &v.fe))
    return bad(in, i, r, "%s", v.reason);
  const Linli__StockAdjusted *a = ev->stock_adjusted;
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
  struct verdict v;
  verdict_init(&v);
  if (dom_catalog_event_check(ev, dom_first_err, &v.fe))
    return bad(in, i, r, "%s", v.reason);
  const Linli__Sku *s = ev->sku;
  r->kind = REC_CATALOG;
  r->sku = s;
  return LINLI_OK;
}

/* ------------------------------------------------------------ settlements */

/* The settler's refunds of a failed campaign as "order:fen,..." (the
 * script subtracts them from a later payment of the same order). 0 or
 * LINLI_ERR_TRANSIENT; *ok says whether the record may go on. */
static int refunds_arg(struct rsv_batch *b, linli_batch_t *in, size_t i,
                       struct rec *r, Linli__CampaignRefund **rf, size_t n,
                       int *ok) {
  struct verdict v;
  verdict_init(&v);
  size_t len = 1;
  char field[96];
  *ok = 0;
  for (size_t k = 0; k < n && v.fe.n == 0; k++) {
    if (!rf[k])
      return bad(in, i, r, "campaign_failed.refunds[%zu]: missing", k);
    snprintf(field, sizeof field, "campaign_failed.refunds[%zu].order_id", k);
    dom_check_id(field, rf[k]->order_id, dom_first_err, &v.fe);
    snprintf(field, sizeof field, "campaign_failed.refunds[%zu].amount_fen",
             k);
    dom_check_range(field, rf[k]->amount_fen, 0, DOM_MAX_PRICE_FEN,
                    dom_first_err, &v.fe);
    if (v.fe.n == 0)
      len += strlen(rf[k]->order_id) + 22;
  }
  if (v.fe.n)
    return bad(in, i, r, "%s", v.reason);
  char *s = arena_alloc(&b->arena, len);
  if (!s)
    return LINLI_ERR_TRANSIENT;
  size_t off = 0;
  s[0] = '\0';
  for (size_t k = 0; k < n; k++)
    off += (size_t)snprintf(s + off, len - off, "%s%s:%lld", k ? "," : "",
                            rf[k]->order_id, (long long)rf[k]->amount_fen);
  r->campaign_refunds = s;
  *ok = 1;
  return LINLI_OK;
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
  struct verdict v;
  verdict_init(&v);
  char field[64];
  if (dom_check_meta(ev->meta, dom_first_err, &v.fe))
    return bad(in, i, r, "%s", v.reason);
  snprintf(field, sizeof field, "%s.campaign_id", what);
  if (dom_check_id(field, campaign, dom_first_err, &v.fe))
    return bad(in, i, r, "%s", v.reason);
  snprintf(field, sizeof field, "%s.warehouse_id", what);
  if (dom_check_id(field, wh, dom_first_err, &v.fe))
    return bad(in, i, r, "%s (a settlement written before the field "
               "existed cannot be routed to its warehouse)", v.reason);
  if (dom_check_range("campaign_settled.unit_price_fen", r->price, 0,
                      DOM_MAX_PRICE_FEN, dom_first_err, &v.fe))
    return bad(in, i, r, "%s", v.reason);
  meta_ctx(r, ev->meta);
  r->campaign_refunds = "";
  if (!r->settled) {
    int ok = 0;
    int rc = refunds_arg(b, in, i, r, ev->campaign_failed->refunds,
                         ev->campaign_failed->n_refunds, &ok);
    if (rc != LINLI_OK || !ok)
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
  if (strcmp(topic, LINLI_TOPIC_ORDERS) == 0)
    return decode_order(rs, b, in, i, r);
  if (strcmp(topic, LINLI_TOPIC_INVENTORY) == 0)
    return decode_inventory(in, i, r);
  if (strcmp(topic, LINLI_TOPIC_CATALOG) == 0)
    return decode_catalog(in, i, r);
  if (strcmp(topic, LINLI_TOPIC_SETTLEMENTS) == 0)
    return decode_settlement(b, in, i, r);
  return bad(in, i, r, "unexpected topic %s", topic);
}

void rsv_rec_release(struct rec *r) {
  if (!r->ev)
    return;
  const char *topic = rd_kafka_topic_name(r->m->rkt);
  if (strcmp(topic, LINLI_TOPIC_ORDERS) == 0)
    linli__order_event__free_unpacked(r->ev, NULL);
  else if (strcmp(topic, LINLI_TOPIC_INVENTORY) == 0)
    linli__inventory_event__free_unpacked(r->ev, NULL);
  else if (strcmp(topic, LINLI_TOPIC_SETTLEMENTS) == 0)
    linli__settlement_event__free_unpacked(r->ev, NULL);
  else
    linli__catalog_event__free_unpacked(r->ev, NULL);
  r->ev = NULL;
}
