/*
 * report.c - what each recorded outcome means to the outside world: the
 * JoinResult a joining app reads, the ThresholdReached an app shows as
 * "3 more neighbours to unlock ¥9.90", the settlement with its refunds, and
 * the deadline index the clock reads. A replayed outcome reports exactly
 * what the first run reported (same events, same derived ids).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "linli/array.h"
#include "linli/error.h"
#include "linli/log.h"
#include "linli/redis.h"
#include "domain/schema.h"
#include "outputs.h"
#include "settler.h"

/* ---------------------------------------------------------------- index */

static int index_push(struct settler_index *idx, int argc, const char **argv) {
  struct settler_index_cmd *c =
      linli_grow(idx->cmds, &idx->cap, idx->n + 1, sizeof *c, 16);
  if (!c)
    return LINLI_ERR_NOMEM;
  idx->cmds = c;
  c = &idx->cmds[idx->n];
  memset(c, 0, sizeof *c);
  for (int i = 0; i < argc; i++) {
    c->argv[i] = strdup(argv[i]);
    if (!c->argv[i]) {
      for (int k = 0; k < i; k++)
        free(c->argv[k]);
      return LINLI_ERR_NOMEM;
    }
  }
  c->argc = argc;
  idx->n++;
  return LINLI_OK;
}

int settler_index_add(struct settler_index *idx, int32_t partition,
                      const char *campaign_id, int64_t deadline_ms) {
  char key[64], score[32];
  snprintf(key, sizeof key, DOM_GB_KEY_DEADLINES "%d", (int)partition);
  snprintf(score, sizeof score, "%lld", (long long)deadline_ms);
  const char *argv[] = {"ZADD", key, score, campaign_id};
  return index_push(idx, 4, argv);
}

int settler_index_remove(struct settler_index *idx, int32_t partition,
                         const char *campaign_id) {
  char key[64], ann[72];
  snprintf(key, sizeof key, DOM_GB_KEY_DEADLINES "%d", (int)partition);
  snprintf(ann, sizeof ann, "%s:ann", key);
  const char *zrem[] = {"ZREM", key, campaign_id};
  const char *hdel[] = {"HDEL", ann, campaign_id};
  int rc = index_push(idx, 3, zrem);
  return rc == LINLI_OK ? index_push(idx, 3, hdel) : rc;
}

int settler_index_flush(struct settler *st, struct settler_index *idx) {
  if (idx->n == 0)
    return LINLI_OK;
  linli_redis_cmd_t *cmds = calloc(idx->n, sizeof *cmds);
  redisReply **reps = calloc(idx->n, sizeof *reps);
  int rc = LINLI_ERR_NOMEM;
  if (cmds && reps) {
    for (size_t i = 0; i < idx->n; i++) {
      cmds[i].argc = idx->cmds[i].argc;
      cmds[i].argv = (const char **)idx->cmds[i].argv;
    }
    rc = linli_redis_pipeline(st->redis, (int)idx->n, cmds, reps);
    for (size_t i = 0; rc == LINLI_OK && i < idx->n; i++)
      if (reps[i]->type == REDIS_REPLY_ERROR)
        rc = LINLI_ERR_TRANSIENT;
    if (reps[0])
      for (size_t i = 0; i < idx->n; i++)
        freeReplyObject(reps[i]);
  }
  free(cmds);
  free(reps);
  return rc;
}

void settler_index_free(struct settler_index *idx) {
  for (size_t i = 0; i < idx->n; i++)
    for (int k = 0; k < idx->cmds[i].argc; k++)
      free(idx->cmds[i].argv[k]);
  free(idx->cmds);
  memset(idx, 0, sizeof *idx);
}

/* ------------------------------------------------------------- reports */

static int join_result(linli_emit_t *emit, const struct out_ctx *ctx,
                       const char *campaign, const char *user,
                       const char *order, int status, int reason,
                       const struct dom_gb_outcome *o, int32_t qty,
                       const char *detail) {
  Linli__SettlementEvent ev = LINLI__SETTLEMENT_EVENT__INIT;
  Linli__JoinResult jr = LINLI__JOIN_RESULT__INIT;
  jr.campaign_id = (char *)campaign;
  jr.user_id = (char *)user;
  jr.order_id = (char *)order;
  jr.status = status;
  jr.reason = reason;
  jr.participants = (int32_t)o->participants;
  jr.quantity = qty;
  jr.needed_for_next_tier =
      o->ntiers ? (int32_t)dom_gb_needed_for_next(o->tiers, o->ntiers,
                                                  o->participants)
                : 0;
  jr.detail = (char *)detail;
  ev.event_case = LINLI__SETTLEMENT_EVENT__EVENT_JOIN_RESULT;
  ev.join_result = &jr;
  return out_settlement(emit, ctx, 0, &ev, campaign);
}

static const char *reason_text(int reason) {
  switch (reason) {
  case LINLI__JOIN_RESULT__REASON__CLOSED:
    return "the campaign's deadline has passed";
  case LINLI__JOIN_RESULT__REASON__FULL:
    return "the campaign has all the participants it takes";
  case LINLI__JOIN_RESULT__REASON__OVER_USER_LIMIT:
    return "more units than the campaign's per-user limit";
  case LINLI__JOIN_RESULT__REASON__UNKNOWN_CAMPAIGN:
    return "no such campaign";
  case LINLI__JOIN_RESULT__REASON__DUPLICATE:
    return "this order already joined the campaign";
  case LINLI__JOIN_RESULT__REASON__NOT_JOINED:
    return "this order is not in the campaign";
  default:
    return "";
  }
}

static int report_join(linli_emit_t *emit, const struct out_ctx *ctx,
                       const Linli__GroupBuyJoined *j,
                       const struct dom_gb_outcome *o) {
  if (o->kind == DOM_GB_REJECTED)
    return join_result(emit, ctx, j->campaign_id, j->user_id, j->order_id,
                       LINLI__JOIN_RESULT__STATUS__REJECTED, o->reason, o,
                       j->quantity, reason_text(o->reason));
  int rc = join_result(emit, ctx, j->campaign_id, j->user_id, j->order_id,
                       LINLI__JOIN_RESULT__STATUS__JOINED, 0, o, j->quantity,
                       "");
  if (rc != LINLI_OK || o->tier < 0)
    return rc;
  Linli__SettlementEvent ev = LINLI__SETTLEMENT_EVENT__INIT;
  Linli__ThresholdReached t = LINLI__THRESHOLD_REACHED__INIT;
  t.campaign_id = j->campaign_id;
  t.tier = o->tier;
  t.participants = (int32_t)o->participants;
  t.unit_price_fen = o->tiers[o->tier].price_fen;
  ev.event_case = LINLI__SETTLEMENT_EVENT__EVENT_THRESHOLD_REACHED;
  ev.threshold_reached = &t;
  LINLI_INFO("tier reached", "campaign=%s tier=%d participants=%lld",
             j->campaign_id, o->tier, (long long)o->participants);
  return out_settlement(emit, ctx, 1, &ev, j->campaign_id);
}

static int report_leave(linli_emit_t *emit, const struct out_ctx *ctx,
                        const Linli__GroupBuyLeft *l,
                        const struct dom_gb_outcome *o) {
  if (o->kind == DOM_GB_REJECTED)
    return join_result(emit, ctx, l->campaign_id, l->user_id, l->order_id,
                       LINLI__JOIN_RESULT__STATUS__REJECTED, o->reason, o, 0,
                       reason_text(o->reason));
  int rc = join_result(emit, ctx, l->campaign_id, l->user_id, l->order_id,
                       LINLI__JOIN_RESULT__STATUS__LEFT, 0, o, o->quantity,
                       "");
  int64_t amount = 0;
  if (rc != LINLI_OK ||
      dom_gb_prepaid(o->tiers, o->ntiers, o->quantity, &amount) != LINLI_OK)
    return rc;
  /* A participant who leaves before the deadline gets the prepayment back
   * at once. */
  Linli__RefundRequested refund = LINLI__REFUND_REQUESTED__INIT;
  refund.order_id = l->order_id;
  refund.user_id = l->user_id;
  refund.amount_fen = amount;
  refund.reason = LINLI__REFUND_REQUESTED__REASON__CANCELLED_AFTER_PAYMENT;
  refund.payment_txn_id = (char *)"";
  refund.campaign_id = l->campaign_id;
  return out_refund(emit, ctx, 1, &refund);
}

/* CampaignSettled or CampaignFailed with one refund per join owed money,
 * then each refund on linli.refunds.v1 (the payment service's feed). */
static int report_end(linli_emit_t *emit, const struct out_ctx *ctx,
                      const char *campaign, const struct dom_gb_outcome *o,
                      char *reason, size_t reasonlen) {
  Linli__CampaignRefund *refunds = calloc(o->njoins + 1, sizeof *refunds);
  Linli__CampaignRefund **ptrs = calloc(o->njoins + 1, sizeof *ptrs);
  int rc = LINLI_ERR_TRANSIENT;
  if (!refunds || !ptrs)
    goto done;
  size_t nr = 0;
  for (size_t i = 0; i < o->njoins; i++) {
    int64_t amount = 0;
    if (dom_gb_refund(o->tiers, o->ntiers, o->tier, o->joins[i].quantity,
                      &amount) != LINLI_OK) {
      snprintf(reason, reasonlen, "campaign %s: refund of order %s out of "
               "range", campaign, o->joins[i].order_id);
      rc = LINLI_ERR_INVALID;
      goto done;
    }
    if (amount == 0)
      continue;
    linli__campaign_refund__init(&refunds[nr]);
    refunds[nr].order_id = (char *)o->joins[i].order_id;
    refunds[nr].user_id = (char *)o->joins[i].user_id;
    refunds[nr].amount_fen = amount;
    ptrs[nr] = &refunds[nr];
    nr++;
  }
  Linli__SettlementEvent ev = LINLI__SETTLEMENT_EVENT__INIT;
  Linli__CampaignSettled s = LINLI__CAMPAIGN_SETTLED__INIT;
  Linli__CampaignFailed f = LINLI__CAMPAIGN_FAILED__INIT;
  if (o->tier >= 0) {
    s.campaign_id = (char *)campaign;
    s.tier = o->tier;
    s.unit_price_fen = o->tiers[o->tier].price_fen;
    s.participants = (int32_t)o->participants;
    s.n_refunds = nr;
    s.refunds = ptrs;
    s.warehouse_id = (char *)o->warehouse_id;
    ev.event_case = LINLI__SETTLEMENT_EVENT__EVENT_CAMPAIGN_SETTLED;
    ev.campaign_settled = &s;
  } else {
    f.campaign_id = (char *)campaign;
    f.participants = (int32_t)o->participants;
    f.reason = (char *)"minimum not reached";
    f.n_refunds = nr;
    f.refunds = ptrs;
    f.warehouse_id = (char *)o->warehouse_id;
    ev.event_case = LINLI__SETTLEMENT_EVENT__EVENT_CAMPAIGN_FAILED;
    ev.campaign_failed = &f;
  }
  LINLI_INFO("campaign ended", "campaign=%s tier=%d participants=%lld "
             "refunds=%zu",
             campaign, o->tier, (long long)o->participants, nr);
  rc = out_settlement(emit, ctx, 0, &ev, campaign);
  for (size_t i = 0; rc == LINLI_OK && i < nr; i++) {
    Linli__RefundRequested refund = LINLI__REFUND_REQUESTED__INIT;
    refund.order_id = refunds[i].order_id;
    refund.user_id = refunds[i].user_id;
    refund.amount_fen = refunds[i].amount_fen;
    refund.reason = o->tier >= 0
                        ? LINLI__REFUND_REQUESTED__REASON__TIER_DIFFERENCE
                        : LINLI__REFUND_REQUESTED__REASON__GROUP_FAILED;
    refund.payment_txn_id = (char *)"";
    refund.campaign_id = (char *)campaign;
    rc = out_refund(emit, ctx, (int)i + 1, &refund);
  }
done:
  free(refunds);
  free(ptrs);
  return rc;
}

int settler_report(struct settler *st, linli_emit_t *emit,
                   const struct settler_rec *r, int effect, char *outcome,
                   size_t outlen, struct settler_index *idx, char *reason,
                   size_t reasonlen) {
  (void)st;
  (void)outlen;
  if (effect == LINLI_REDIS_FORGOTTEN)
    return LINLI_OK; /* applied and committed long ago: reported then */
  struct dom_gb_outcome o;
  if (dom_gb_outcome_parse(outcome, &o) != LINLI_OK) {
    snprintf(reason, reasonlen, "unexpected settler outcome '%.64s'", outcome);
    return LINLI_ERR_FATAL;
  }
  const Linli__GroupBuyEvent *ev = r->ev;
  struct out_ctx ctx = {
      .cause_event_id = ev->meta->event_id,
      .trace_id = ev->meta->trace_id,
      .cause_topic = rd_kafka_topic_name(r->msg->rkt),
      .occurred_at_ms = ev->meta->occurred_at_ms,
  };
  int32_t part = r->msg->partition;
  int rc = LINLI_OK;
  if (o.kind == DOM_GB_ERROR) {
    snprintf(reason, reasonlen, "settler script failed: %s", o.detail);
    rc = LINLI_ERR_INVALID;
  } else if (r->op == OP_OPEN) {
    if (o.kind == DOM_GB_DUPOPEN) {
      snprintf(reason, reasonlen,
               "campaign_id: campaign %s is already open (a campaign opens "
               "once)",
               r->campaign_id);
      rc = LINLI_ERR_INVALID;
    } else {
      rc = settler_index_add(idx, part, r->campaign_id,
                             ev->campaign_opened->deadline_ms);
    }
  } else if (r->op == OP_JOIN) {
    rc = report_join(emit, &ctx, ev->group_buy_joined, &o);
  } else if (r->op == OP_LEAVE) {
    rc = report_leave(emit, &ctx, ev->group_buy_left, &o);
  } else if (o.kind == DOM_GB_ENDED) {
    rc = report_end(emit, &ctx, r->campaign_id, &o, reason, reasonlen);
    if (rc == LINLI_OK)
      rc = settler_index_remove(idx, part, r->campaign_id);
  } else if (o.kind == DOM_GB_EARLY) {
    /* Judged against an earlier deadline than the campaign's own: index it
     * at its own. */
    rc = settler_index_add(idx, part, r->campaign_id, o.deadline_ms);
  } else {
    /* Ended already (or never opened): the decision taken stands. */
    rc = settler_index_remove(idx, part, r->campaign_id);
  }
  dom_gb_outcome_free(&o);
  return rc == LINLI_ERR_NOMEM ? LINLI_ERR_TRANSIENT : rc;
}
