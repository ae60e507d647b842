/*
 * audit_settler.c - the settler's audit rule: fold linli.groupbuy.v1 with
 * libdomain's campaign state machine (the C twin of the settler's script)
 * and compare what the log's own settlements topic and refunds say, and
 * what Redis holds, with it. Every campaign whose joins, tiers, settlement
 * or refunds differ is named.
 *
 * Only money and counts are compared, not event ids: a campaign must end
 * once, at the tier its participants reached, with every refund to the fen.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "domain/check.h"
#include "domain/groupbuy_state.h"
#include "groupbuy.pb-c.h"
#include "linli/error.h"
#include "linli/hash.h"
#include "domain/schema.h"
#include "refunds.pb-c.h"
#include "settlements.pb-c.h"

/* One campaign: what the fold expects and what the log reports. */
struct camp_fold {
  struct dom_gb_campaign c;
  char warehouse[72];
  int64_t units;            /* live units (sum over live joins) */
  long want_results;        /* JoinResults the inputs owe */
  unsigned want_tiers;      /* bit t: tier t announced */
  long want_refunds;        /* RefundRequested the inputs owe */
  int64_t want_refund_fen;
  int ended;                /* the fold ended it: c.tier, c.participants */
  int64_t end_participants, end_refund_fen;
  long end_refunds;
  /* reported */
  long got_results, got_ends, got_refunds;
  int got_tier_count[DOM_GB_MAX_TIERS];
  int got_tier, got_failed;
  int64_t got_participants, got_refund_fen, got_end_refund_fen;
  long got_end_refunds;
  /* The first sum that did not fit in int64 (refunds read from the log can
   * hold any amount): the campaign is then reported with this reason
   * instead of being compared. */
  char overflow[96];
};

/* *sum += v, or note why not (the sum keeps its last value). */
static void add_fen(struct camp_fold *k, int64_t *sum, int64_t v,
                    const char *what) {
  if (__builtin_add_overflow(*sum, v, sum) && !k->overflow[0])
    snprintf(k->overflow, sizeof k->overflow, "%s overflows int64", what);
}

/* An order's entry: "campaign|order" -> user and units while it is a live
 * join; eid is a hash of the event of its last answer the settler keeps (a
 * live join, or a refusal FULL / OVER_USER_LIMIT; 0 none): that event
 * again changes nothing. A hash, not the id: the fold holds every join of
 * the log. */
struct join_fold {
  char user[72];
  int32_t qty;
  uint64_t eid;
};

static uint64_t eid_hash(const char *s) {
  uint64_t h = linli_hash_str(s);
  return h ? h : 1; /* 0 means "none" */
}

static const char *const settler_topics[] = {
    LINLI_TOPIC_GROUPBUY, LINLI_TOPIC_SETTLEMENTS, LINLI_TOPIC_REFUNDS, NULL};

static struct camp_fold *camp(struct fold *f, const char *id) {
  return linli_strmap_get_or_add(f->campaigns, id, NULL, NULL);
}

static int64_t *user_units(struct fold *f, const char *campaign,
                           const char *user) {
  char key[160];
  snprintf(key, sizeof key, "%s|%s", campaign, user);
  return linli_strmap_get_or_add(f->campaign_users, key, NULL, NULL);
}

static struct join_fold *join_of(struct fold *f, const char *campaign,
                                 const char *order) {
  char key[160];
  snprintf(key, sizeof key, "%s|%s", campaign, order);
  return linli_strmap_get_or_add(f->campaign_joins, key, NULL, NULL);
}

static void fold_join(struct fold *f, const Linli__GroupBuyJoined *j,
                      const char *eid) {
  struct camp_fold *k = camp(f, j->campaign_id);
  struct join_fold *jf = join_of(f, j->campaign_id, j->order_id);
  int64_t *units = user_units(f, j->campaign_id, j->user_id);
  if (!k || !jf || !units)
    return;
  k->want_results++;
  uint64_t h = eid_hash(eid);
  if (jf->eid == h && k->c.state != DOM_GB_UNKNOWN)
    return; /* the same event again: its first answer, nothing changes */
  int tier = -1;
  int why = dom_gb_join(&k->c, *units, jf->qty > 0, j->quantity, &tier);
  if (why == LINLI__JOIN_RESULT__REASON__FULL ||
      why == LINLI__JOIN_RESULT__REASON__OVER_USER_LIMIT)
    jf->eid = h;
  if (why != 0)
    return;
  jf->eid = h;
  snprintf(jf->user, sizeof jf->user, "%s", j->user_id);
  jf->qty = j->quantity;
  add_fen(k, units, j->quantity, "a user's units");
  add_fen(k, &k->units, j->quantity, "the live units");
  if (tier >= 0)
    k->want_tiers |= 1u << tier;
}

static void fold_leave(struct fold *f, const Linli__GroupBuyLeft *l) {
  struct camp_fold *k = camp(f, l->campaign_id);
  struct join_fold *jf = join_of(f, l->campaign_id, l->order_id);
  int64_t *units = user_units(f, l->campaign_id, l->user_id);
  if (!k || !jf || !units)
    return;
  k->want_results++;
  int32_t qty = strcmp(jf->user, l->user_id) == 0 ? jf->qty : 0;
  if (dom_gb_leave(&k->c, qty, *units - qty) != 0)
    return;
  int64_t prepaid = 0;
  if (dom_gb_prepaid(k->c.tiers, k->c.ntiers, qty, &prepaid) == LINLI_OK) {
    k->want_refunds++;
    add_fen(k, &k->want_refund_fen, prepaid, "the refunds owed");
  }
  *units -= qty;
  k->units -= qty;
  jf->qty = 0;
  jf->eid = 0;
}

static void fold_end(struct fold *f, const Linli__CampaignDeadline *d) {
  struct camp_fold *k = camp(f, d->campaign_id);
  if (!k || !dom_gb_end(&k->c, d->deadline_ms))
    return;
  k->ended = 1;
  k->end_participants = k->c.participants;
  /* Every live join is owed (first price - final price) x its units, so
   * the total is that difference times the live units. */
  int64_t per_unit = 0;
  if (k->c.ntiers > 0 &&
      dom_gb_refund(k->c.tiers, k->c.ntiers, k->c.tier, 1, &per_unit) !=
          LINLI_OK)
    per_unit = 0;
  if (__builtin_mul_overflow(per_unit, k->units, &k->end_refund_fen) &&
      !k->overflow[0])
    snprintf(k->overflow, sizeof k->overflow,
             "the settlement's refunds owed overflow int64");
  k->end_refunds = per_unit > 0 ? k->c.joins : 0;
  k->want_refunds += k->end_refunds;
  add_fen(k, &k->want_refund_fen, k->end_refund_fen, "the refunds owed");
}

static void observe_groupbuy(struct fold *f, const Linli__GroupBuyEvent *ev) {
  /* The settler's own validation: what it sent to the DLQ changed
   * nothing. */
  if (dom_check_meta(ev->meta, NULL, NULL))
    return;
  switch (ev->event_case) {
  case LINLI__GROUP_BUY_EVENT__EVENT_CAMPAIGN_OPENED: {
    const Linli__CampaignOpened *o = ev->campaign_opened;
    if (dom_gb_check_opened(o, ev->meta->occurred_at_ms, NULL, NULL))
      return;
    struct camp_fold *k = camp(f, o->campaign_id);
    if (!k || k->c.state != DOM_GB_UNKNOWN)
      return; /* opened twice: the second went to the DLQ */
    dom_gb_open(&k->c, o);
    snprintf(k->warehouse, sizeof k->warehouse, "%s", o->warehouse_id);
    return;
  }
  case LINLI__GROUP_BUY_EVENT__EVENT_GROUP_BUY_JOINED:
    if (!dom_gb_check_joined(ev->group_buy_joined, NULL, NULL))
      fold_join(f, ev->group_buy_joined, ev->meta->event_id);
    return;
  case LINLI__GROUP_BUY_EVENT__EVENT_GROUP_BUY_LEFT:
    if (!dom_gb_check_left(ev->group_buy_left, NULL, NULL))
      fold_leave(f, ev->group_buy_left);
    return;
  case LINLI__GROUP_BUY_EVENT__EVENT_CAMPAIGN_DEADLINE:
    if (!dom_gb_check_deadline(ev->campaign_deadline, NULL, NULL))
      fold_end(f, ev->campaign_deadline);
    return;
  default:
    return;
  }
}

static void observe_ended(struct camp_fold *k, int tier, int32_t participants,
                          Linli__CampaignRefund **refunds, size_t n) {
  k->got_ends++;
  k->got_tier = tier;
  k->got_failed = tier < 0;
  k->got_participants = participants;
  k->got_end_refunds = (long)n;
  k->got_end_refund_fen = 0;
  for (size_t i = 0; i < n; i++)
    add_fen(k, &k->got_end_refund_fen, refunds[i]->amount_fen,
            "the settlement's refunds");
}

static void observe_settlement(struct fold *f,
                               const Linli__SettlementEvent *ev) {
  switch (ev->event_case) {
  case LINLI__SETTLEMENT_EVENT__EVENT_JOIN_RESULT: {
    struct camp_fold *k = camp(f, ev->join_result->campaign_id);
    if (k)
      k->got_results++;
    return;
  }
  case LINLI__SETTLEMENT_EVENT__EVENT_THRESHOLD_REACHED: {
    const Linli__ThresholdReached *t = ev->threshold_reached;
    struct camp_fold *k = camp(f, t->campaign_id);
    if (k && t->tier >= 0 && t->tier < DOM_GB_MAX_TIERS)
      k->got_tier_count[t->tier]++;
    return;
  }
  case LINLI__SETTLEMENT_EVENT__EVENT_CAMPAIGN_SETTLED: {
    const Linli__CampaignSettled *s = ev->campaign_settled;
    struct camp_fold *k = camp(f, s->campaign_id);
    if (k)
      observe_ended(k, s->tier, s->participants, s->refunds, s->n_refunds);
    return;
  }
  case LINLI__SETTLEMENT_EVENT__EVENT_CAMPAIGN_FAILED: {
    const Linli__CampaignFailed *x = ev->campaign_failed;
    struct camp_fold *k = camp(f, x->campaign_id);
    if (k)
      observe_ended(k, -1, x->participants, x->refunds, x->n_refunds);
    return;
  }
  default:
    return;
  }
}

static void observe_settler(struct fold *f, const rd_kafka_message_t *m,
                            const ProtobufCMessage *env) {
  if (!env)
    return;
  const char *topic = rd_kafka_topic_name(m->rkt);
  if (strcmp(topic, LINLI_TOPIC_GROUPBUY) == 0) {
    observe_groupbuy(f, (const Linli__GroupBuyEvent *)env);
  } else if (strcmp(topic, LINLI_TOPIC_SETTLEMENTS) == 0) {
    observe_settlement(f, (const Linli__SettlementEvent *)env);
  } else {
    const Linli__RefundEvent *ev = (const Linli__RefundEvent *)env;
    const Linli__RefundRequested *r = ev->refund_requested;
    if (ev->event_case != LINLI__REFUND_EVENT__EVENT_REFUND_REQUESTED ||
        !r->campaign_id || !r->campaign_id[0])
      return; /* not a group-buy refund */
    struct camp_fold *k = camp(f, r->campaign_id);
    if (k) {
      k->got_refunds++;
      add_fen(k, &k->got_refund_fen, r->amount_fen,
              "the refunds requested");
    }
  }
}

static const char *state_name(enum dom_gb_state s) {
  switch (s) {
  case DOM_GB_OPEN:
    return "OPEN";
  case DOM_GB_SETTLED:
    return "SETTLED";
  case DOM_GB_FAILED:
    return "FAILED";
  default:
    return "UNKNOWN";
  }
}

/* Redis against the fold: the campaign's state and participants. */
static void check_redis(struct audit_ctx *ctx, const char *rule,
                        const char *id, const struct camp_fold *k) {
  char key[160];
  snprintf(key, sizeof key, DOM_GB_KEY_CAMPAIGN_FMT, id);
  const char *argv[] = {"HMGET", key, "st", "n"};
  redisReply *r = NULL;
  if (linli_redis_command(ctx->redis, 4, argv, NULL, &r) != LINLI_OK)
    return;
  if (r->type == REDIS_REPLY_ARRAY && r->elements == 2) {
    const redisReply *st = r->element[0], *n = r->element[1];
    if (st->type != REDIS_REPLY_STRING) {
      if (k->c.state == DOM_GB_OPEN)
        audit_diff(ctx, rule, "campaign %s: open in the log, missing from "
                   "Redis", id);
    } else if (strcmp(st->str, state_name(k->c.state)) != 0) {
      audit_diff(ctx, rule, "campaign %s: Redis says %s, the log says %s", id,
                 st->str, state_name(k->c.state));
    } else if (n->type == REDIS_REPLY_STRING &&
               atoll(n->str) != k->c.participants) {
      audit_diff(ctx, rule, "campaign %s: Redis counts %s participants, the "
                 "log %lld", id, n->str, (long long)k->c.participants);
    }
  }
  freeReplyObject(r);
}

static void check_campaign(struct audit_ctx *ctx, const char *id,
                           const struct camp_fold *k) {
  const char *rule = "campaigns";
  /* A sum that overflowed cannot be compared: the campaign is named with
   * that reason, and its counts are still compared. */
  int money = !k->overflow[0];
  if (!money)
    audit_diff(ctx, rule, "campaign %s: %s: its refunds cannot be compared",
               id, k->overflow);
  if (k->got_results != k->want_results)
    audit_diff(ctx, rule, "campaign %s: %ld join answers for %ld joins and "
               "leaves", id, k->got_results, k->want_results);
  for (int t = 0; t < DOM_GB_MAX_TIERS; t++) {
    int want = (k->want_tiers >> t) & 1u;
    if (k->got_tier_count[t] != want)
      audit_diff(ctx, rule, "campaign %s: tier %d announced %d times, want "
                 "%d", id, t, k->got_tier_count[t], want);
  }
  if (!k->ended) {
    if (k->got_ends)
      audit_diff(ctx, rule, "campaign %s: ended %ld times, but the log never "
                 "ends it", id, k->got_ends);
  } else if (k->got_ends != 1) {
    audit_diff(ctx, rule, "campaign %s: ended %ld times, want exactly once",
               id, k->got_ends);
  } else if (k->got_tier != k->c.tier ||
             k->got_participants != k->end_participants) {
    audit_diff(ctx, rule, "campaign %s: ended at tier %d with %lld "
               "participants, the log says tier %d with %lld", id,
               k->got_tier, (long long)k->got_participants, k->c.tier,
               (long long)k->end_participants);
  } else if (money && (k->got_end_refunds != k->end_refunds ||
                       k->got_end_refund_fen != k->end_refund_fen)) {
    audit_diff(ctx, rule, "campaign %s: settlement refunds %ld for %lld fen, "
               "the log says %ld for %lld fen", id, k->got_end_refunds,
               (long long)k->got_end_refund_fen, k->end_refunds,
               (long long)k->end_refund_fen);
  }
  if (money && (k->got_refunds != k->want_refunds ||
                k->got_refund_fen != k->want_refund_fen))
    audit_diff(ctx, rule, "campaign %s: %ld refunds requested for %lld fen, "
               "want %ld for %lld fen", id, k->got_refunds,
               (long long)k->got_refund_fen, k->want_refunds,
               (long long)k->want_refund_fen);
  if (ctx->redis)
    check_redis(ctx, rule, id, k);
}

static void check_settler(struct fold *f, struct audit_ctx *ctx) {
  for (size_t i = 0; i < linli_strmap_capacity(f->campaigns); i++) {
    const char *id = NULL;
    const struct camp_fold *k = linli_strmap_at(f->campaigns, i, &id);
    /* Campaigns opened before the log's start cannot be judged. */
    if (!k || k->c.state == DOM_GB_UNKNOWN ||
        !audit_in_scope(ctx, k->warehouse))
      continue;
    check_campaign(ctx, id, k);
  }
}

const struct audit_rule audit_rule_settler = {
    "campaigns (settler)", settler_topics, observe_settler, check_settler,
    NULL};

size_t audit_settler_fold_size(void) { return sizeof(struct camp_fold); }
size_t audit_settler_join_size(void) { return sizeof(struct join_fold); }
