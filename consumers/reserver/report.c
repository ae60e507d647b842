/*
 * report.c - after the shards ran: each record's outcome (replies.h) turned
 * into its output events, in input order, and the global index writes it
 * calls for (order -> warehouse index, expiry index) queued for one
 * pipeline. A record whose effect was applied and committed long ago
 * (FORGOTTEN) reports nothing again.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "domain/orders.h"
#include "linli/error.h"
#include "linli/owned.h"
#include "linli/log.h"
#include "replies.h"

typedef Linli__ReservationResult Result;

static char *cstr(struct rsv_batch *b, struct rsv_str s) {
  char *d = arena_alloc(&b->arena, s.n + 1);
  if (d && s.n)
    memcpy(d, s.p, s.n);
  return d;
}

/* Record r's outcome: 1 to report it, 0 when there is nothing to report
 * (forgotten, or a script error sent to the DLQ). */
static int outcome(struct rsv_batch *b, linli_batch_t *in, size_t i,
                   const struct rec *r, struct rsv_str *o) {
  int effect = 0;
  if (linli_redis_batch_result(b->shards[r->shard], (size_t)r->slot, &effect,
                               &o->p, &o->n) != LINLI_OK)
    return 0;
  if (effect == LINLI_REDIS_FORGOTTEN)
    return 0;
  struct rsv_str msg;
  if (rsv_is_error(o->p, o->n, &msg)) {
    char why[300];
    snprintf(why, sizeof why, "redis: %.*s", (int)msg.n, msg.p);
    linli_batch_reject(in, i, LINLI_ERR_INVALID, why);
    return 0;
  }
  return 1;
}

static int unexpected(linli_batch_t *in, size_t i, struct rsv_str o) {
  char why[200];
  snprintf(why, sizeof why, "unexpected script outcome '%.*s'",
           (int)(o.n > 64 ? 64 : o.n), o.p);
  linli_batch_reject(in, i, LINLI_ERR_INVALID, why);
  return LINLI_OK;
}

/* ---------------------------------------------------------------- indexes */

/* The order's deadline leaves the expiry index (decided or moot). */
int rsv_expiry_forget(struct rsv_batch *b, const struct rec *r) {
  char key[96], ann[96];
  dom_rsv_expiry_key(key, sizeof key, r->m->partition);
  dom_rsv_expiry_ann_key(ann, sizeof ann, r->m->partition);
  const char *zrem[] = {"ZREM", key, r->order_id};
  const char *hdel[] = {"HDEL", ann, r->order_id};
  int rc = rsv_queue(b, 3, zrem);
  return rc == LINLI_OK ? rsv_queue(b, 3, hdel) : rc;
}

static int expiry_set(struct rsv_batch *b, const struct rec *r,
                      int64_t deadline) {
  char key[96], score[32];
  dom_rsv_expiry_key(key, sizeof key, r->m->partition);
  snprintf(score, sizeof score, "%lld", (long long)deadline);
  const char *zadd[] = {"ZADD", key, score, r->order_id};
  return rsv_queue(b, 4, zadd);
}

/* The order reached a final state: its index entry expires with it. */
static int index_final(struct reserver *rs, struct rsv_batch *b,
                       const struct rec *r) {
  char key[128];
  dom_rsv_order_wh_key(key, sizeof key, r->order_id);
  const char *exp[] = {"EXPIRE", key, rs->retention_s};
  return rsv_queue(b, 3, exp);
}

/* The first placement of an order id writes "<wh>|<offset>" (NX: a
 * duplicate must not repoint it); a rejected order is final at once. */
static int index_placed(struct reserver *rs, struct rsv_batch *b,
                        const struct rec *r, int final) {
  char key[128], val[128];
  dom_rsv_order_wh_key(key, sizeof key, r->order_id);
  snprintf(val, sizeof val, "%s|%lld", r->wh, (long long)r->m->offset);
  const char *set[] = {"SET", key, val, "NX", "EX", rs->retention_s};
  return rsv_queue(b, final ? 6 : 4, set);
}

/* ---------------------------------------------------------------- placed */

static int enum_reason(const char *name) {
  const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value_by_name(
      &linli__reservation_result__reason__descriptor, name);
  return v ? v->value : LINLI__RESERVATION_RESULT__REASON__INVALID_ORDER;
}

static int shortages(struct rsv_batch *b, struct rsv_str rest, Result *res) {
  size_t n = 1;
  for (size_t k = 0; k < rest.n; k++)
    n += rest.p[k] == ';';
  Linli__ReservationResult__ShortLine *sl =
      arena_alloc(&b->arena, n * sizeof *sl);
  Linli__ReservationResult__ShortLine **ptrs =
      arena_alloc(&b->arena, n * sizeof *ptrs);
  if (!sl || !ptrs)
    return LINLI_ERR_NOMEM;
  struct rsv_short s;
  size_t k = 0;
  while (k < n && rsv_short_next(&rest, &s) == 1) {
    linli__reservation_result__short_line__init(&sl[k]);
    if (!(sl[k].sku_id = cstr(b, s.sku)))
      return LINLI_ERR_NOMEM;
    sl[k].requested = (int32_t)s.requested;
    sl[k].available = (int32_t)s.available;
    ptrs[k] = &sl[k];
    k++;
  }
  res->n_shortages = k;
  res->shortages = ptrs;
  return LINLI_OK;
}

/* The result of a placement from its typed outcome. */
static int decide_placed(struct rsv_batch *b, const struct rec *r,
                         const struct rsv_place *pl, Result *res) {
  const Linli__OrderPlaced *p = r->placed;
  res->order_id = p->order_id;
  res->warehouse_id = p->warehouse_id;
  res->user_id = p->user_id;
  res->app_id = p->app_id;
  res->campaign_id = p->campaign_id;
  res->total_fen = r->total;
  res->n_lines = p->n_lines;
  res->lines = p->lines;
  res->detail = (char *)"";
  res->status = LINLI__RESERVATION_RESULT__STATUS__REJECTED;
  switch (pl->kind) {
  case RSV_PLACE_RESERVED:
    res->status = LINLI__RESERVATION_RESULT__STATUS__RESERVED;
    res->expires_at_ms = r->expires_at;
    return LINLI_OK;
  case RSV_PLACE_DUP:
    res->reason = LINLI__RESERVATION_RESULT__REASON__DUPLICATE;
    res->detail = (char *)"an order with this id was already placed";
    return LINLI_OK;
  case RSV_PLACE_REJ: {
    char *name = cstr(b, pl->reason);
    if (!name || !(res->detail = cstr(b, pl->detail)))
      return LINLI_ERR_NOMEM;
    res->reason = enum_reason(name);
    return LINLI_OK;
  }
  case RSV_PLACE_SHORT:
    res->reason = LINLI__RESERVATION_RESULT__REASON__OUT_OF_STOCK;
    res->detail = (char *)"not enough stock";
    return shortages(b, pl->shorts, res);
  }
  return LINLI_ERR_FATAL;
}

static int report_placed(struct reserver *rs, struct rsv_batch *b,
                         linli_batch_t *in, size_t i, const struct rec *r,
                         linli_emit_t *emit) {
  struct rsv_str o;
  struct rsv_place pl;
  if (!outcome(b, in, i, r, &o))
    return LINLI_OK;
  if (rsv_parse_place(o.p, o.n, &pl) != LINLI_OK)
    return unexpected(in, i, o);
  Result res = LINLI__RESERVATION_RESULT__INIT;
  int rc = decide_placed(b, r, &pl, &res);
  if (rc == LINLI_OK)
    rc = out_reservation(emit, &r->ctx, &res);
  if (rc != LINLI_OK || pl.same || pl.kind == RSV_PLACE_DUP)
    return rc;
  int reserved = pl.kind == RSV_PLACE_RESERVED;
  rc = index_placed(rs, b, r, !reserved);
  if (rc == LINLI_OK && reserved)
    rc = expiry_set(b, r, r->expires_at);
  return rc;
}

/* ------------------------------------------------------------------- paid */

static int refund(linli_emit_t *emit, const struct rec *r, const char *user,
                  int64_t amount, int reason) {
  Linli__RefundRequested rf = LINLI__REFUND_REQUESTED__INIT;
  rf.order_id = (char *)r->order_id;
  rf.user_id = (char *)user;
  rf.amount_fen = amount;
  rf.reason = reason;
  rf.payment_txn_id = r->paid->payment_txn_id;
  rf.campaign_id = (char *)"";
  return out_refund(emit, &r->ctx, &rf);
}

/* A paid order: COMMITTED, then its FulfillmentItem unless it is held for
 * its campaign (HELD); an order paid after its campaign settled is picked
 * at the settled price. */
static int report_committed(const struct rec *r, const struct rsv_pay *py,
                            Result *res, linli_emit_t *emit) {
  Linli__OrderPlaced *placed = linli__order_placed__unpack(
      NULL, py->pb.n, (const uint8_t *)py->pb.p);
  if (!placed)
    return LINLI_ERR_FATAL; /* our own record: Redis holds garbage */
  res->status = LINLI__RESERVATION_RESULT__STATUS__COMMITTED;
  res->user_id = placed->user_id;
  res->app_id = placed->app_id;
  res->campaign_id = placed->campaign_id;
  res->n_lines = placed->n_lines;
  res->lines = placed->lines;
  if (dom_order_total(placed, &res->total_fen) != LINLI_OK)
    res->total_fen = 0; /* judged at placement: cannot fail */
  if (py->kind == RSV_PAY_HELD)
    res->detail = (char *)"paid: held until the group-buy campaign settles";
  int rc = out_reservation(emit, &r->ctx, res);
  if (rc == LINLI_OK && py->kind != RSV_PAY_HELD)
    rc = out_fulfillment_at(emit, &r->ctx, 2, placed, py->storage_class,
                            py->kind == RSV_PAY_SETTLED ? py->price : -1);
  if (rc == LINLI_OK && py->over > 0)
    rc = refund(emit, r, placed->user_id, py->over,
                LINLI__REFUND_REQUESTED__REASON__OVERPAYMENT);
  linli__order_placed__free_unpacked(placed, NULL);
  return rc;
}

/* A refused payment: the result says why, the whole amount goes back. */
static int report_refused(const struct rec *r, const struct rsv_pay *py,
                          Result *res, const char *user,
                          linli_emit_t *emit) {
  static const struct {
    int result, refund;
    const char *detail;
  } why[] = {
      [RSV_PAY_UNDER] = {LINLI__RESERVATION_RESULT__REASON__UNDERPAID,
                         LINLI__REFUND_REQUESTED__REASON__UNDERPAYMENT,
                         "paid less than the order's total: refund"},
      [RSV_PAY_DOUBLE] = {LINLI__RESERVATION_RESULT__REASON__DOUBLE_PAYMENT,
                          LINLI__REFUND_REQUESTED__REASON__DOUBLE_PAYMENT,
                          "order already paid with another transaction"},
      [RSV_PAY_LATE] = {LINLI__RESERVATION_RESULT__REASON__PAYMENT_AFTER_EXPIRY,
                        LINLI__REFUND_REQUESTED__REASON__LATE_PAYMENT,
                        "order expired before payment: refund"},
      [RSV_PAY_CANCELLED] =
          {LINLI__RESERVATION_RESULT__REASON__PAYMENT_AFTER_CANCEL,
           LINLI__REFUND_REQUESTED__REASON__CANCELLED_AFTER_PAYMENT,
           "order was cancelled before payment: refund"},
      [RSV_PAY_REJECTED] = {LINLI__RESERVATION_RESULT__REASON__NOT_RESERVED,
                            LINLI__REFUND_REQUESTED__REASON__LATE_PAYMENT,
                            "order holds no reservation: refund"},
      [RSV_PAY_NOORDER] = {LINLI__RESERVATION_RESULT__REASON__NOT_RESERVED,
                           LINLI__REFUND_REQUESTED__REASON__UNKNOWN_ORDER,
                           "order no longer known: refund"},
  };
  res->status = LINLI__RESERVATION_RESULT__STATUS__REJECTED;
  res->user_id = (char *)user;
  res->reason = why[py->kind].result;
  res->detail = (char *)why[py->kind].detail;
  int rc = out_reservation(emit, &r->ctx, res);
  return rc == LINLI_OK ? refund(emit, r, user, r->paid->amount_fen,
                                 why[py->kind].refund)
                        : rc;
}

/* A payment for an order whose campaign failed (the order was released
 * then). The settler's GROUP_FAILED refund returns what the order's join
 * prepaid; the reserver refunds the rest of this payment, so the money
 * comes back exactly once. Nothing left owed: REJECTED GROUP_FAILED with
 * no refund. */
static int report_group_failed(const struct rec *r, const struct rsv_pay *py,
                               Result *res, const char *user,
                               linli_emit_t *emit) {
  int64_t owed = r->paid->amount_fen - py->covered;
  res->status = LINLI__RESERVATION_RESULT__STATUS__REJECTED;
  res->user_id = (char *)user;
  if (owed <= 0) {
    res->reason = LINLI__RESERVATION_RESULT__REASON__GROUP_FAILED;
    res->detail = (char *)"the group-buy campaign failed: the settler's "
                          "GROUP_FAILED refund returns this payment";
    return out_reservation(emit, &r->ctx, res);
  }
  res->reason = LINLI__RESERVATION_RESULT__REASON__PAYMENT_AFTER_CANCEL;
  res->detail = (char *)"the group-buy campaign failed before payment: "
                        "refund";
  int rc = out_reservation(emit, &r->ctx, res);
  return rc == LINLI_OK
             ? refund(emit, r, user, owed,
                      LINLI__REFUND_REQUESTED__REASON__GROUP_FAILED)
             : rc;
}

static int report_paid(struct reserver *rs, struct rsv_batch *b,
                       linli_batch_t *in, size_t i, const struct rec *r,
                       linli_emit_t *emit) {
  if (!r->wh) /* no order was ever accepted under this id: money back */
    return refund(emit, r, "", r->paid->amount_fen,
                  LINLI__REFUND_REQUESTED__REASON__UNKNOWN_ORDER);
  struct rsv_str o;
  struct rsv_pay py;
  if (!outcome(b, in, i, r, &o))
    return LINLI_OK;
  if (rsv_parse_pay(o.p, o.n, &py) != LINLI_OK)
    return unexpected(in, i, o);
  if (py.kind == RSV_PAY_REPEAT)
    return LINLI_OK; /* the same notice again changes nothing */
  Result res = LINLI__RESERVATION_RESULT__INIT;
  res.order_id = (char *)r->order_id;
  res.warehouse_id = (char *)r->wh;
  res.payment_txn_id = r->paid->payment_txn_id;
  res.amount_fen = r->paid->amount_fen;
  res.detail = (char *)"";
  if (py.kind == RSV_PAY_GFAILED) {
    char *user = cstr(b, py.usr);
    return user ? report_group_failed(r, &py, &res, user, emit)
                : LINLI_ERR_NOMEM;
  }
  if (py.kind != RSV_PAY_COMMITTED && py.kind != RSV_PAY_HELD &&
      py.kind != RSV_PAY_SETTLED) {
    char *user = cstr(b, py.usr);
    return user ? report_refused(r, &py, &res, user, emit) : LINLI_ERR_NOMEM;
  }
  int rc = report_committed(r, &py, &res, emit);
  if (rc == LINLI_OK)
    rc = rsv_expiry_forget(b, r);
  /* A held order is not final: its campaign's settlement finds it through
   * the index. */
  if (rc != LINLI_OK || py.kind == RSV_PAY_HELD)
    return rc;
  return index_final(rs, b, r);
}

/* ---------------------------------------------------------------- release */

static int report_release(struct reserver *rs, struct rsv_batch *b,
                          linli_batch_t *in, size_t i, const struct rec *r,
                          linli_emit_t *emit) {
  struct rsv_str o;
  struct rsv_release rl;
  if (!outcome(b, in, i, r, &o))
    return LINLI_OK;
  if (rsv_parse_release(o.p, o.n, &rl) != LINLI_OK)
    return unexpected(in, i, o);
  Result res = LINLI__RESERVATION_RESULT__INIT;
  res.order_id = (char *)r->order_id;
  res.warehouse_id = (char *)r->wh;
  res.user_id = cstr(b, rl.usr);
  res.detail = (char *)"";
  if (!res.user_id)
    return LINLI_ERR_NOMEM;
  int rc = LINLI_OK;
  if (rl.kind == RSV_REL_RELEASED) {
    res.status = LINLI__RESERVATION_RESULT__STATUS__RELEASED;
    res.detail = r->expiry ? (char *)"payment deadline passed"
                           : (char *)"cancelled before payment";
    rc = out_reservation(emit, &r->ctx, &res);
    if (rc == LINLI_OK)
      rc = index_final(rs, b, r);
  } else if (rl.kind == RSV_REL_PAID && !r->expiry) {
    res.status = LINLI__RESERVATION_RESULT__STATUS__REJECTED;
    res.reason = LINLI__RESERVATION_RESULT__REASON__NOT_RESERVED;
    res.detail = (char *)"order already paid: cancel through after-sales";
    rc = out_reservation(emit, &r->ctx, &res);
  } else if (rl.kind == RSV_REL_EARLY && r->expiry) {
    /* The index held an earlier deadline than the order's (e.g. written
     * under another payment timeout): re-index it at its own. */
    return expiry_set(b, r, rl.deadline);
  } else {
    LINLI_INFO("release without effect", "order=%s outcome=%.*s",
               r->order_id, (int)(o.n > 32 ? 32 : o.n), o.p);
    if (!r->expiry && rl.kind != RSV_REL_PAID)
      return LINLI_OK;
  }
  /* A decided order must not stay in the expiry index: a stale entry would
   * be announced again and again. */
  return rc == LINLI_OK ? rsv_expiry_forget(b, r) : rc;
}

/* ----------------------------------------------------------------- adjust */

static int report_adjust(struct rsv_batch *b, linli_batch_t *in, size_t i,
                         const struct rec *r) {
  struct rsv_str o;
  struct rsv_adjust ad;
  if (!outcome(b, in, i, r, &o))
    return LINLI_OK;
  if (rsv_parse_adjust(o.p, o.n, &ad) != LINLI_OK)
    return unexpected(in, i, o);
  const Linli__StockAdjusted *a = r->adj;
  if (ad.kind == RSV_ADJ_NEG) {
    char why[300];
    snprintf(why, sizeof why,
             "stock_adjusted.quantity: %d would make available stock of %s "
             "in %s negative (available %lld)",
             (int)a->quantity, a->sku_id, a->warehouse_id,
             (long long)ad.available);
    linli_batch_reject(in, i, LINLI_ERR_INVALID, why);
    return LINLI_OK;
  }
  LINLI_INFO("stock adjusted", "warehouse=%s sku=%s delta=%d available=%lld",
             a->warehouse_id, a->sku_id, (int)a->quantity,
             (long long)ad.available);
  return LINLI_OK;
}

/* --------------------------------------------------------------- campaign */

/* The orders a campaign's decision released in this shard, one output each
 * (output index = the order's place in the sorted list, so a redelivered
 * decision re-produces the same events): a settled campaign's held orders
 * go to fulfilment at the settled price; a failed campaign's orders get
 * RELEASED GROUP_FAILED (their stock is back in the warehouse). */
static int report_campaign_order(struct reserver *rs, struct rsv_batch *b,
                                 const struct rec *r,
                                 const struct rsv_camp *c,
                                 const struct rsv_camp_order *co, int index,
                                 linli_emit_t *emit) {
  Linli__OrderPlaced *placed = linli__order_placed__unpack(
      NULL, co->pb.n, (const uint8_t *)co->pb.p);
  if (!placed)
    return LINLI_ERR_FATAL; /* our own record: Redis holds garbage */
  int rc;
  if (c->kind == RSV_CAMP_SETTLED) {
    rc = out_fulfillment_at(emit, &r->ctx, index, placed, (int)co->a,
                            c->price);
  } else {
    Result res = LINLI__RESERVATION_RESULT__INIT;
    res.order_id = placed->order_id;
    res.warehouse_id = placed->warehouse_id;
    res.user_id = placed->user_id;
    res.app_id = placed->app_id;
    res.campaign_id = placed->campaign_id;
    res.status = LINLI__RESERVATION_RESULT__STATUS__RELEASED;
    res.reason = LINLI__RESERVATION_RESULT__REASON__GROUP_FAILED;
    res.detail = co->a ? (char *)"the group-buy campaign failed: sold stock "
                                 "returned (the settler refunds the payment)"
                       : (char *)"the group-buy campaign failed: reserved "
                                 "stock returned";
    res.n_lines = placed->n_lines;
    res.lines = placed->lines;
    if (dom_order_total(placed, &res.total_fen) != LINLI_OK)
      res.total_fen = 0; /* judged at placement: cannot overflow */
    rc = out_reservation_at(emit, &r->ctx, index, &res);
    if (rc == LINLI_OK && !co->a && co->b >= 0 &&
        co->b < LINLI_OWNED_MAX) {
      /* A released reservation leaves its orders partition's expiry
       * index. */
      struct rec tmp = *r;
      rd_kafka_message_t m = *r->m;
      m.partition = (int32_t)co->b;
      tmp.m = &m;
      tmp.order_id = placed->order_id;
      rc = rsv_expiry_forget(b, &tmp);
    }
  }
  if (rc == LINLI_OK) {
    struct rec tmp = *r;
    tmp.order_id = placed->order_id;
    rc = index_final(rs, b, &tmp);
  }
  linli__order_placed__free_unpacked(placed, NULL);
  return rc;
}

static int report_campaign(struct reserver *rs, struct rsv_batch *b,
                           linli_batch_t *in, size_t i, const struct rec *r,
                           linli_emit_t *emit) {
  struct rsv_str o;
  struct rsv_camp c;
  if (!outcome(b, in, i, r, &o))
    return LINLI_OK;
  if (rsv_parse_camp(o.p, o.n, &c) != LINLI_OK)
    return unexpected(in, i, o);
  if (c.kind == RSV_CAMP_ALREADY) {
    LINLI_INFO("campaign decided before", "campaign=%s warehouse=%s "
               "state=%.*s", r->campaign_id, r->wh, (int)c.state.n,
               c.state.p);
    return LINLI_OK;
  }
  struct rsv_str rest = c.entries;
  struct rsv_camp_order co;
  int k = 0, got, rc = LINLI_OK;
  while (rc == LINLI_OK && (got = rsv_camp_next(&rest, &co)) == 1)
    rc = report_campaign_order(rs, b, r, &c, &co, k++, emit);
  if (rc == LINLI_OK && (got < 0 || k != c.count))
    return unexpected(in, i, o);
  LINLI_INFO("campaign orders decided", "campaign=%s warehouse=%s "
             "outcome=%s orders=%d",
             r->campaign_id, r->wh,
             c.kind == RSV_CAMP_SETTLED ? "SETTLED" : "FAILED", k);
  return rc;
}

int rsv_report(struct reserver *rs, struct rsv_batch *b, linli_batch_t *in,
               size_t i, struct rec *r, linli_emit_t *emit, char *reason,
               size_t reasonlen) {
  int rc = LINLI_OK;
  switch (r->kind) {
  case REC_PLACED:
    rc = report_placed(rs, b, in, i, r, emit);
    break;
  case REC_PAID:
    rc = report_paid(rs, b, in, i, r, emit);
    break;
  case REC_RELEASE:
    rc = report_release(rs, b, in, i, r, emit);
    break;
  case REC_ADJUST:
    rc = report_adjust(b, in, i, r);
    break;
  case REC_CAMPAIGN:
    rc = report_campaign(rs, b, in, i, r, emit);
    break;
  default:
    break;
  }
  if (rc == LINLI_ERR_FATAL)
    snprintf(reason, reasonlen, "stored order %s is unreadable",
             r->order_id ? r->order_id : r->campaign_id);
  else if (rc != LINLI_OK)
    snprintf(reason, reasonlen, "emitting outputs: %s", linli_strerror(rc));
  return rc;
}
