/*
 * audit_orders.c - rules for orders (the state machine, one live
 * reservation, paid once) and for refunds (every refund owed is requested
 * exactly once), folded from orders, reservations, fulfillment, delivery
 * and refunds topics, checked against PostgreSQL (orders.state) and the
 * reserver's Redis order records; and the rebuild of those Redis records.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "delivery.pb-c.h"
#include "fulfillment.pb-c.h"
#include "linli/error.h"
#include "domain/reserver_keys.h"
#include "domain/schema.h"
#include "audit.h"
#include "domain/order_state.h"
#include "orders.pb-c.h"
#include "refunds.pb-c.h"
#include "reservations.pb-c.h"

/* The ledger's state machine (libdomain): an event it would refuse (to
 * the DLQ) leaves the fold's state as it is, as it leaves the record's. */
static void advance(struct order_fold *o, enum dom_order_event ev) {
  int next;
  if (dom_order_step(o->state, ev, &next) == DOM_ORDER_APPLY)
    o->state = next;
}

static const char *state_name(int s) {
  const char *n = dom_order_state_name(s);
  return n ? n : "?";
}

static struct order_fold *order(struct fold *f, const char *id) {
  int created = 0;
  struct order_fold *o = linli_strmap_get_or_add(f->orders, id, &created, NULL);
  if (o && created)
    o->orders_partition = -1;
  return o;
}

static const char *const order_topics[] = {
    LINLI_TOPIC_ORDERS, LINLI_TOPIC_RESERVATIONS, LINLI_TOPIC_FULFILLMENT,
    LINLI_TOPIC_DELIVERY, NULL};

static void observe_orders(struct fold *f, const rd_kafka_message_t *m,
                           const ProtobufCMessage *env) {
  if (!env)
    return;
  const char *topic = rd_kafka_topic_name(m->rkt);
  if (strcmp(topic, LINLI_TOPIC_ORDERS) == 0) {
    const Linli__OrderEvent *ev = (const Linli__OrderEvent *)env;
    if (ev->event_case == LINLI__ORDER_EVENT__EVENT_ORDER_PLACED) {
      const Linli__OrderPlaced *p = ev->order_placed;
      struct order_fold *o = order(f, p->order_id);
      if (!o || o->placed++)
        return; /* a duplicate placement keeps the first order */
      snprintf(o->user, sizeof o->user, "%s", p->user_id);
      snprintf(o->app, sizeof o->app, "%s", p->app_id);
      snprintf(o->campaign, sizeof o->campaign, "%s", p->campaign_id);
      if (!o->warehouse[0])
        snprintf(o->warehouse, sizeof o->warehouse, "%s", p->warehouse_id);
      o->orders_partition = m->partition;
      o->placed_pb_len = linli__order_placed__get_packed_size(p);
      o->placed_pb = malloc(o->placed_pb_len ? o->placed_pb_len : 1);
      if (o->placed_pb)
        linli__order_placed__pack(p, o->placed_pb);
      advance(o, DOM_OEV_PLACED);
    } else if (ev->event_case == LINLI__ORDER_EVENT__EVENT_ORDER_CANCELLED) {
      struct order_fold *o = order(f, ev->order_cancelled->order_id);
      if (o)
        o->cancelled_seen = 1;
    } else if (ev->event_case == LINLI__ORDER_EVENT__EVENT_ORDER_EXPIRED) {
      struct order_fold *o = order(f, ev->order_expired->order_id);
      if (o)
        o->expired_seen = 1;
    }
  } else if (strcmp(topic, LINLI_TOPIC_RESERVATIONS) == 0) {
    const Linli__ReservationEvent *ev = (const Linli__ReservationEvent *)env;
    if (ev->event_case != LINLI__RESERVATION_EVENT__EVENT_RESERVATION_RESULT)
      return;
    const Linli__ReservationResult *r = ev->reservation_result;
    struct order_fold *o = order(f, r->order_id);
    if (!o)
      return;
    if (!o->user[0] && r->user_id[0])
      snprintf(o->user, sizeof o->user, "%s", r->user_id);
    enum dom_order_event oev = dom_order_event_of_result(r, NULL);
    switch (r->status) {
    case LINLI__RESERVATION_RESULT__STATUS__RESERVED:
      o->reserved++;
      o->expires_at = r->expires_at_ms;
      o->total = r->total_fen;
      break;
    case LINLI__RESERVATION_RESULT__STATUS__COMMITTED:
      o->committed++;
      snprintf(o->txn, sizeof o->txn, "%s", r->payment_txn_id);
      o->amount = r->amount_fen;
      break;
    case LINLI__RESERVATION_RESULT__STATUS__RELEASED:
      o->released++;
      if (oev == DOM_OEV_GROUP_FAILED)
        o->group_failed = 1;
      break;
    case LINLI__RESERVATION_RESULT__STATUS__REJECTED:
      if (r->reason == LINLI__RESERVATION_RESULT__REASON__DUPLICATE) {
        o->duplicates++;
      } else if (oev == DOM_OEV_REJECTED) {
        o->rejected_at_place++;
      } else if (r->payment_txn_id[0] &&
                 r->reason != LINLI__RESERVATION_RESULT__REASON__GROUP_FAILED) {
        /* A refused payment: owed back once (one refused after its campaign
         * failed is returned by the settler's GROUP_FAILED refund). */
        char key[160];
        snprintf(key, sizeof key, "%s|%s", r->order_id, r->payment_txn_id);
        int *n = linli_strmap_get_or_add(f->refunds, key, NULL, NULL);
        if (n)
          n[0]++;
        o->refunds_owed++;
      }
      break;
    default:
      break;
    }
    advance(o, oev);
  } else if (strcmp(topic, LINLI_TOPIC_FULFILLMENT) == 0) {
    const Linli__FulfillmentEvent *ev = (const Linli__FulfillmentEvent *)env;
    if (ev->event_case == LINLI__FULFILLMENT_EVENT__EVENT_FULFILLMENT_ITEM) {
      struct order_fold *o = order(f, ev->fulfillment_item->order_id);
      if (o) {
        o->storage_class = ev->fulfillment_item->storage_class;
        advance(o, DOM_OEV_READY);
      }
    }
  } else if (strcmp(topic, LINLI_TOPIC_DELIVERY) == 0) {
    const char *id = NULL;
    enum dom_order_event oev =
        dom_order_event_of_delivery((const Linli__DeliveryEvent *)env, &id);
    struct order_fold *o = id ? order(f, id) : NULL;
    if (o)
      advance(o, oev);
  }
}

static void check_orders(struct fold *f, struct audit_ctx *ctx) {
  const char *rule = "orders";
  for (size_t i = 0; i < linli_strmap_capacity(f->orders); i++) {
    const char *id = NULL;
    struct order_fold *o = linli_strmap_at(f->orders, i, &id);
    if (!o || (!o->placed && o->state == DOM_ST_NONE))
      continue; /* only mentioned (e.g. a refund): nothing to check */
    if (!audit_in_scope(ctx, o->warehouse))
      continue;
    if (o->lines_truncated)
      audit_diff(ctx, rule, "order %s has more lines than the audit can "
                 "fold; its stock movements are not checked", id);
    if (o->reserved > 1)
      audit_diff(ctx, rule, "order %s was RESERVED %d times", id, o->reserved);
    if (o->committed > 1)
      audit_diff(ctx, rule, "order %s was paid (COMMITTED) %d times", id,
                 o->committed);
    if (o->released > 1)
      audit_diff(ctx, rule, "order %s was RELEASED %d times", id, o->released);
    if (o->committed && o->released && !o->group_failed)
      audit_diff(ctx, rule, "order %s was both paid and released", id);
    if ((o->committed || o->released) && !o->reserved)
      audit_diff(ctx, rule, "order %s was paid or released without a "
                 "reservation", id);
    if (o->reserved && o->rejected_at_place)
      audit_diff(ctx, rule, "order %s was both reserved and rejected", id);
    if (ctx->pg && o->placed) {
      const char *params[] = {id};
      PGresult *res = NULL;
      char err[256];
      if (linli_pg_exec(ctx->pg,
                        "SELECT state FROM replay_order_state "
                        "WHERE order_id = $1",
                        1, params, &res, err, sizeof err) == LINLI_OK) {
        if (PQntuples(res) != 1)
          audit_diff(ctx, rule, "order %s (%s in the log) is missing from "
                     "PostgreSQL", id, state_name(o->state));
        else if (strcmp(PQgetvalue(res, 0, 0), state_name(o->state)))
          audit_diff(ctx, rule, "order %s: PostgreSQL state %s, the log says "
                     "%s", id, PQgetvalue(res, 0, 0),
                     state_name(o->state));
      }
      if (res)
        PQclear(res);
    }
    if (ctx->redis && o->warehouse[0] && (o->reserved || o->rejected_at_place)) {
      const char *want = o->group_failed ? "GFAILED"
                         : o->committed ? "COMMITTED"
                         : o->released ? (o->state == DOM_ST_EXPIRED ? "EXPIRED"
                                                                 : "CANCELLED")
                         : o->reserved ? "RESERVED"
                                       : "REJECTED";
      char key[256];
      dom_rsv_order_key(key, sizeof key, o->warehouse, id);
      const char *argv[] = {"HGET", key, "st"};
      redisReply *r = NULL;
      if (linli_redis_command(ctx->redis, 3, argv, NULL, &r) == LINLI_OK) {
        const char *got = r->type == REDIS_REPLY_STRING ? r->str : "(none)";
        if (strcmp(got, want) != 0)
          audit_diff(ctx, rule, "order %s: Redis says %s, the log says %s", id,
                     got, want);
        freeReplyObject(r);
      }
    }
  }
}

static int cmd(struct audit_ctx *ctx, int argc, const char **argv,
               const size_t *lens) {
  redisReply *r = NULL;
  if (linli_redis_command(ctx->redis, argc, argv, lens, &r) != LINLI_OK)
    return -1;
  int rc = r->type == REDIS_REPLY_ERROR ? -1 : 0;
  freeReplyObject(r);
  return rc;
}

/* The reserver's order records, order index and expiry index. */
static int rebuild_orders(struct fold *f, struct audit_ctx *ctx) {
  for (size_t i = 0; i < linli_strmap_capacity(f->orders); i++) {
    const char *id = NULL;
    struct order_fold *o = linli_strmap_at(f->orders, i, &id);
    if (!o || !o->warehouse[0] || !(o->reserved || o->rejected_at_place) ||
        !audit_in_scope(ctx, o->warehouse))
      continue;
    char key[256], idx[128];
    dom_rsv_order_key(key, sizeof key, o->warehouse, id);
    const char *st = o->group_failed ? "GFAILED"
                     : o->committed ? "COMMITTED"
                     : o->released ? (o->state == DOM_ST_EXPIRED ? "EXPIRED"
                                                             : "CANCELLED")
                     : o->reserved ? "RESERVED"
                                   : "REJECTED";
    char exp[32], tot[32], sc[8], amt[32];
    snprintf(exp, sizeof exp, "%lld", (long long)o->expires_at);
    snprintf(tot, sizeof tot, "%lld", (long long)o->total);
    snprintf(sc, sizeof sc, "%d", o->storage_class);
    snprintf(amt, sizeof amt, "%lld", (long long)o->amount);
    const char *argv[] = {"HSET", key, "st", st, "usr", o->user, "ln",
                          o->lines, "exp", exp, "tot", tot, "sc", sc, "pb",
                          (const char *)(o->placed_pb ? o->placed_pb
                                                      : (uint8_t *)""),
                          "txn", o->txn, "amt", amt};
    size_t lens[20];
    for (int j = 0; j < 20; j++) /* argv[15] is bytes, not a string */
      lens[j] = j == 15 ? (o->placed_pb ? o->placed_pb_len : 0)
                        : strlen(argv[j]);
    int n = o->reserved ? 20 : 6;
    if (cmd(ctx, n, argv, lens) != 0)
      return -1;
    /* An order of an undecided campaign: held when paid, and in the
     * campaign's set (a decided campaign's marker is not rebuilt: its
     * later orders are judged as undecided). */
    if (o->campaign[0] && o->reserved && !o->released &&
        (o->state == DOM_ST_RESERVED || o->state == DOM_ST_PAID)) {
      char part[16], skey[256], ssuf[128];
      snprintf(part, sizeof part, "%d", (int)o->orders_partition);
      const char *cargv[] = {"HSET", key, "cmp", o->campaign, "op", part,
                             "hold", "1"};
      snprintf(ssuf, sizeof ssuf, "cmo:%s", o->campaign);
      dom_rsv_key(skey, sizeof skey, o->warehouse, ssuf);
      const char *sargv[] = {"SADD", skey, id};
      if (cmd(ctx, o->committed ? 8 : 6, cargv, NULL) != 0 ||
          cmd(ctx, 3, sargv, NULL) != 0)
        return -1;
    }
    dom_rsv_order_wh_key(idx, sizeof idx, id);
    const char *iargv[] = {"SET", idx, o->warehouse};
    if (cmd(ctx, 3, iargv, NULL) != 0)
      return -1;
    if (o->reserved && !o->committed && !o->released &&
        o->orders_partition >= 0) {
      char zkey[64];
      dom_rsv_expiry_key(zkey, sizeof zkey, o->orders_partition);
      const char *zargv[] = {"ZADD", zkey, exp, id};
      if (cmd(ctx, 4, zargv, NULL) != 0)
        return -1;
    }
  }
  /* Refunds already requested: the same payment notice again must not
   * ask for a second one. */
  for (size_t i = 0; i < linli_strmap_capacity(f->refunds); i++) {
    const char *k = NULL;
    int *n = linli_strmap_at(f->refunds, i, &k);
    if (!n || n[0] == 0)
      continue;
    char order_id[80];
    const char *bar = strchr(k, '|');
    if (!bar)
      continue;
    snprintf(order_id, sizeof order_id, "%.*s", (int)(bar - k), k);
    struct order_fold *o = linli_strmap_find(f->orders, order_id);
    if (!o || !o->warehouse[0] || !audit_in_scope(ctx, o->warehouse))
      continue;
    char key[256], field[96];
    dom_rsv_order_key(key, sizeof key, o->warehouse, order_id);
    snprintf(field, sizeof field, "rf:%s", bar + 1);
    const char *argv[] = {"HSET", key, field, "1"};
    if (cmd(ctx, 4, argv, NULL) != 0)
      return -1;
  }
  return 0;
}

const struct audit_rule audit_rule_orders = {
    "orders (reserver, ledger)", order_topics, observe_orders, check_orders,
    rebuild_orders};

/* ---------------------------------------------------------------- refunds */

static const char *const refund_topics[] = {LINLI_TOPIC_REFUNDS, NULL};

static void observe_refunds(struct fold *f, const rd_kafka_message_t *m,
                            const ProtobufCMessage *env) {
  (void)m;
  if (!env)
    return;
  const Linli__RefundEvent *ev = (const Linli__RefundEvent *)env;
  if (ev->event_case != LINLI__REFUND_EVENT__EVENT_REFUND_REQUESTED)
    return;
  const Linli__RefundRequested *r = ev->refund_requested;
  if (r->campaign_id && r->campaign_id[0])
    return; /* a group-buy refund: the settler's rule judges it */
  char key[160];
  snprintf(key, sizeof key, "%s|%s", r->order_id, r->payment_txn_id);
  int *n = linli_strmap_get_or_add(f->refunds, key, NULL, NULL);
  if (n)
    n[1]++;
  int *c = linli_strmap_get_or_add(f->refund_ids, r->refund_id, NULL, NULL);
  if (c)
    (*c)++;
}

static void check_refunds(struct fold *f, struct audit_ctx *ctx) {
  const char *rule = "refunds";
  for (size_t i = 0; i < linli_strmap_capacity(f->refunds); i++) {
    const char *k = NULL;
    int *n = linli_strmap_at(f->refunds, i, &k);
    if (!n)
      continue;
    if (ctx->warehouse) {
      char order_id[80];
      const char *bar = strchr(k, '|');
      snprintf(order_id, sizeof order_id, "%.*s",
               (int)(bar ? bar - k : (long)strlen(k)), k);
      const struct order_fold *o = linli_strmap_find(f->orders, order_id);
      if (!o || !audit_in_scope(ctx, o->warehouse))
        continue;
    }
    /* n[0]: refused payments owed back; n[1]: RefundRequested seen. */
    if (n[0] > 0 && n[1] != 1)
      audit_diff(ctx, rule, "payment %s was refused but %d refunds were "
                 "requested (want exactly 1)", k, n[1]);
    if (n[0] == 0 && n[1] > 0)
      audit_diff(ctx, rule, "payment %s got %d refund(s) nobody owed", k,
                 n[1]);
  }
  for (size_t i = 0; i < linli_strmap_capacity(f->refund_ids) && !ctx->warehouse;
       i++) {
    const char *k = NULL;
    int *c = linli_strmap_at(f->refund_ids, i, &k);
    if (c && *c > 1)
      audit_diff(ctx, rule, "refund %s was requested %d times", k, *c);
  }
}

const struct audit_rule audit_rule_refunds = {
    "refunds (reserver)", refund_topics, observe_refunds, check_refunds, NULL};
