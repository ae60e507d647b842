/*
 * apply_groupbuy.c - group-buys into the record: linli.groupbuy.v1
 * (campaigns and their tiers, neighbours joining and leaving, the deadline)
 * and linli.groupbuy.settlements.v1 (tier reached, settled or failed, once).
 *
 * Joins, leaves and the deadline share the campaign's partition, so they
 * arrive in order; a settlement comes on another topic and may be recorded
 * before the campaign it settles (the row is created and filled in later).
 * A join after the recorded deadline, or beyond the per-user limit, is kept
 * as REJECTED. Until the campaign settles, participants counts distinct
 * users who joined; the settlement's count is final.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apply.h"
#include "groupbuy.pb-c.h"
#include "linli/error.h"
#include "settlements.pb-c.h"

static const struct ledger_stmt OPEN = {
    "ledger_campaign_open",
    "INSERT INTO campaigns (campaign_id, app_id, sku_id, warehouse_id, "
    "title, list_price_fen, deadline_at, per_user_limit, pickup_point_id, "
    "opened_event_id, last_event_id) VALUES ($1, $2, $3, $4, $5, $6, "
    "to_timestamp($7::bigint / 1000.0), $8, $9, $10, $10) "
    "ON CONFLICT (campaign_id) DO UPDATE SET app_id = EXCLUDED.app_id, "
    "sku_id = EXCLUDED.sku_id, warehouse_id = EXCLUDED.warehouse_id, "
    "title = EXCLUDED.title, list_price_fen = EXCLUDED.list_price_fen, "
    "deadline_at = EXCLUDED.deadline_at, "
    "per_user_limit = EXCLUDED.per_user_limit, "
    "pickup_point_id = EXCLUDED.pickup_point_id, "
    "opened_event_id = EXCLUDED.opened_event_id, updated_at = now() "
    "WHERE campaigns.opened_event_id IS NULL RETURNING 1",
    10, 0, NULL, NULL, 0, 0, NULL};

static const struct ledger_stmt TIER = {
    "ledger_campaign_tier",
    "INSERT INTO campaign_tiers (campaign_id, tier, min_participants, "
    "unit_price_fen) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
    4, 0, NULL, NULL, 0, 0, NULL};

static const struct ledger_stmt PLACEHOLDER = {
    "ledger_campaign_placeholder",
    "INSERT INTO campaigns (campaign_id, last_event_id) VALUES ($1, $2) "
    "ON CONFLICT DO NOTHING",
    2, 0, NULL, NULL, 0, 0, NULL};

static const struct ledger_stmt CAMPAIGN_LOCK = {
    "ledger_campaign_lock",
    "SELECT closed_at IS NOT NULL, per_user_limit, "
    "coalesce(settled_event_id, '') FROM campaigns WHERE campaign_id = $1 "
    "FOR UPDATE",
    1, 0, NULL, NULL, 0, 0, NULL};

static const struct ledger_stmt USER_UNITS = {
    "ledger_participant_units",
    "SELECT coalesce(sum(quantity), 0) FROM campaign_participants WHERE "
    "campaign_id = $1 AND user_id = $2 AND state = 'JOINED' AND "
    "order_id <> $3",
    3, 0, NULL, NULL, 0, 0, NULL};

static const struct ledger_stmt JOIN = {
    "ledger_participant_join",
    "INSERT INTO campaign_participants (campaign_id, order_id, user_id, "
    "quantity, state, reason, joined_at, join_event_id, last_event_id) "
    "VALUES ($1, $2, $3, $4, $5, $6, to_timestamp($7::bigint / 1000.0), $8, "
    "$8) ON CONFLICT (campaign_id, order_id) DO UPDATE SET "
    "user_id = EXCLUDED.user_id, quantity = EXCLUDED.quantity, "
    "state = EXCLUDED.state, reason = EXCLUDED.reason, "
    "joined_at = EXCLUDED.joined_at, left_at = NULL, "
    "join_event_id = EXCLUDED.join_event_id, "
    "last_event_id = EXCLUDED.last_event_id, updated_at = now() "
    "WHERE campaign_participants.state <> 'JOINED'",
    8, 0, NULL, NULL, 0, 0, NULL};

static const struct ledger_stmt LEAVE = {
    "ledger_participant_leave",
    "UPDATE campaign_participants SET state = 'LEFT', "
    "left_at = to_timestamp($3::bigint / 1000.0), last_event_id = $4, "
    "updated_at = now() WHERE campaign_id = $1 AND order_id = $2 AND "
    "state = 'JOINED'",
    4, 0, NULL, NULL, 0, 0, NULL};

static const struct ledger_stmt RECOUNT = {
    "ledger_campaign_recount",
    "UPDATE campaigns SET participants = (SELECT count(DISTINCT user_id) "
    "FROM campaign_participants WHERE campaign_id = $1 AND "
    "state = 'JOINED'), last_event_id = $2, updated_at = now() "
    "WHERE campaign_id = $1 AND settled_at IS NULL",
    2, 0, NULL, NULL, 0, 0, NULL};

static const struct ledger_stmt DEADLINE = {
    "ledger_campaign_deadline",
    "UPDATE campaigns SET closed_at = coalesce(closed_at, "
    "to_timestamp($2::bigint / 1000.0)), state = CASE WHEN state = 'OPEN' "
    "THEN 'CLOSED' ELSE state END, last_event_id = $3, updated_at = now() "
    "WHERE campaign_id = $1",
    3, 0, NULL, NULL, 0, 0, NULL};

static const struct ledger_stmt THRESHOLD = {
    "ledger_campaign_threshold",
    "UPDATE campaigns SET tier_reached = greatest(coalesce(tier_reached, -1), "
    "$2::int), last_event_id = $3, updated_at = now() "
    "WHERE campaign_id = $1 AND settled_at IS NULL",
    3, 0, NULL, NULL, 0, 0, NULL};

static const struct ledger_stmt SETTLE = {
    "ledger_campaign_settle",
    "UPDATE campaigns SET state = $2, tier_reached = $3, "
    "settled_unit_price_fen = $4, participants = $5, failure_reason = $6, "
    "settled_at = to_timestamp($7::bigint / 1000.0), settled_event_id = $8, "
    "last_event_id = $8, updated_at = now() WHERE campaign_id = $1",
    8, 0, NULL, NULL, 0, 0, NULL};

/* ------------------------------------------------------------ campaigns */

/* The group-buy records here passed dom_gb_event_check (apply.c), as
 * the settler's do. */
static int apply_opened(struct ledger_ev *ev, const Linli__CampaignOpened *c) {
  char price[24], deadline[24], limit[16];
  snprintf(price, sizeof price, "%lld", (long long)c->list_price_fen);
  snprintf(deadline, sizeof deadline, "%lld", (long long)c->deadline_ms);
  snprintf(limit, sizeof limit, "%d", (int)c->per_user_limit);
  const char *p[] = {c->campaign_id, c->app_id, c->sku_id, c->warehouse_id,
                     c->title ? c->title : "", price, deadline, limit,
                     opt(c->pickup_point_id), ev->event_id};
  PGresult *res = NULL;
  int rc = ev_sql(ev, &OPEN, p, &res);
  if (rc != LINLI_OK)
    return rc;
  int filled = PQntuples(res) == 1;
  PQclear(res);
  for (size_t i = 0; filled && i < c->n_tiers && rc == LINLI_OK; i++) {
    char t[24], mp[16], up[24];
    snprintf(t, sizeof t, "%zu", i);
    snprintf(mp, sizeof mp, "%d", (int)c->tiers[i]->min_participants);
    snprintf(up, sizeof up, "%lld", (long long)c->tiers[i]->unit_price_fen);
    const char *tp[] = {c->campaign_id, t, mp, up};
    rc = ev_sql(ev, &TIER, tp, NULL);
  }
  return rc;
}

/* The campaign row (created empty if its CampaignOpened is not recorded),
 * locked. */
struct campaign_row {
  int closed;
  int per_user_limit;
  char settled_event[LINLI_ID_BUFSZ + 64];
};

static int campaign_lock(struct ledger_ev *ev, const char *id,
                         struct campaign_row *c) {
  const char *pp[] = {id, ev->event_id};
  int rc = ev_sql(ev, &PLACEHOLDER, pp, NULL);
  if (rc != LINLI_OK)
    return rc;
  const char *p[] = {id};
  PGresult *res = NULL;
  if ((rc = ev_sql(ev, &CAMPAIGN_LOCK, p, &res)) != LINLI_OK)
    return rc;
  memset(c, 0, sizeof *c);
  if (PQntuples(res) == 1) {
    c->closed = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    c->per_user_limit = atoi(PQgetvalue(res, 0, 1));
    snprintf(c->settled_event, sizeof c->settled_event, "%s",
             PQgetvalue(res, 0, 2));
  }
  PQclear(res);
  return LINLI_OK;
}

static int recount(struct ledger_ev *ev, const char *campaign_id) {
  const char *p[] = {campaign_id, ev->event_id};
  return ev_sql(ev, &RECOUNT, p, NULL);
}

static int apply_joined(struct ledger_ev *ev, const Linli__GroupBuyJoined *j) {
  int seen = 0;
  int rc = ev_seen(ev, &seen);
  if (rc != LINLI_OK || seen)
    return rc;
  struct campaign_row c;
  if ((rc = campaign_lock(ev, j->campaign_id, &c)) != LINLI_OK ||
      (rc = ev_history(ev, j->order_id)) != LINLI_OK)
    return rc;
  const char *state = "JOINED", *why = NULL;
  if (c.closed) {
    state = "REJECTED";
    why = "joined after the deadline";
  } else if (c.per_user_limit > 0) {
    const char *up[] = {j->campaign_id, j->user_id, j->order_id};
    PGresult *res = NULL;
    if ((rc = ev_sql(ev, &USER_UNITS, up, &res)) != LINLI_OK)
      return rc;
    long long held = atoll(PQgetvalue(res, 0, 0));
    PQclear(res);
    if (held + j->quantity > c.per_user_limit) {
      state = "REJECTED";
      why = "over the per-user limit";
    }
  }
  char q[16];
  snprintf(q, sizeof q, "%d", (int)j->quantity);
  const char *p[] = {j->campaign_id, j->order_id, j->user_id,     q,
                     state,          why,         ev->occurred_ms, ev->event_id};
  if ((rc = ev_sql(ev, &JOIN, p, NULL)) != LINLI_OK)
    return rc;
  return recount(ev, j->campaign_id);
}

static int apply_left(struct ledger_ev *ev, const Linli__GroupBuyLeft *l) {
  int seen = 0;
  int rc = ev_seen(ev, &seen);
  if (rc != LINLI_OK || seen)
    return rc;
  struct campaign_row c;
  if ((rc = campaign_lock(ev, l->campaign_id, &c)) != LINLI_OK ||
      (rc = ev_history(ev, l->order_id)) != LINLI_OK)
    return rc;
  const char *p[] = {l->campaign_id, l->order_id, ev->occurred_ms,
                     ev->event_id};
  if ((rc = ev_sql(ev, &LEAVE, p, NULL)) != LINLI_OK)
    return rc;
  return recount(ev, l->campaign_id);
}

int apply_groupbuy(struct ledger_ev *ev) {
  const Linli__GroupBuyEvent *e = (const Linli__GroupBuyEvent *)ev->env;
  switch (e->event_case) {
  case LINLI__GROUP_BUY_EVENT__EVENT_CAMPAIGN_OPENED:
    return apply_opened(ev, e->campaign_opened);
  case LINLI__GROUP_BUY_EVENT__EVENT_GROUP_BUY_JOINED:
    return apply_joined(ev, e->group_buy_joined);
  case LINLI__GROUP_BUY_EVENT__EVENT_GROUP_BUY_LEFT:
    return apply_left(ev, e->group_buy_left);
  case LINLI__GROUP_BUY_EVENT__EVENT_CAMPAIGN_DEADLINE: {
    const Linli__CampaignDeadline *d = e->campaign_deadline;
    struct campaign_row c;
    int rc = campaign_lock(ev, d->campaign_id, &c);
    if (rc != LINLI_OK)
      return rc;
    char dl[24];
    snprintf(dl, sizeof dl, "%lld",
             d->deadline_ms > 0 ? (long long)d->deadline_ms
                                : atoll(ev->occurred_ms));
    const char *p[] = {d->campaign_id, dl, ev->event_id};
    return ev_sql(ev, &DEADLINE, p, NULL);
  }
  default:
    return ev_dlq(ev, "GroupBuyEvent carries no event");
  }
}

/* ---------------------------------------------------------- settlements */

static int settle(struct ledger_ev *ev, const char *campaign_id,
                  const char *state, int tier, long long price,
                  int participants, const char *why) {
  struct campaign_row c;
  int rc = campaign_lock(ev, campaign_id, &c);
  if (rc != LINLI_OK)
    return rc;
  if (strcmp(c.settled_event, ev->event_id) == 0)
    return LINLI_OK; /* recorded already */
  if (c.settled_event[0])
    return ev_dlq(ev,
                  "campaign %s is already settled or failed (event %s): a "
                  "campaign ends once",
                  campaign_id, c.settled_event);
  char t[16], pr[24], n[16];
  snprintf(t, sizeof t, "%d", tier);
  snprintf(pr, sizeof pr, "%lld", price);
  snprintf(n, sizeof n, "%d", participants);
  const char *p[] = {campaign_id,         state, tier >= 0 ? t : NULL,
                     price >= 0 ? pr : NULL, n,   why,
                     ev->occurred_ms,     ev->event_id};
  return ev_sql(ev, &SETTLE, p, NULL);
}

int apply_settlements(struct ledger_ev *ev) {
  const Linli__SettlementEvent *e = (const Linli__SettlementEvent *)ev->env;
  switch (e->event_case) {
  case LINLI__SETTLEMENT_EVENT__EVENT_THRESHOLD_REACHED: {
    const Linli__ThresholdReached *t = e->threshold_reached;
    if (!ev_check_id(ev, t->campaign_id, "threshold_reached.campaign_id"))
      return LINLI_ERR_INVALID;
    if (t->tier < 0)
      return ev_dlq(ev, "threshold_reached.tier: must not be negative");
    struct campaign_row c;
    int rc = campaign_lock(ev, t->campaign_id, &c);
    if (rc != LINLI_OK)
      return rc;
    char tier[16];
    snprintf(tier, sizeof tier, "%d", (int)t->tier);
    const char *p[] = {t->campaign_id, tier, ev->event_id};
    return ev_sql(ev, &THRESHOLD, p, NULL);
  }
  case LINLI__SETTLEMENT_EVENT__EVENT_CAMPAIGN_SETTLED: {
    const Linli__CampaignSettled *s = e->campaign_settled;
    if (!ev_check_id(ev, s->campaign_id, "campaign_settled.campaign_id"))
      return LINLI_ERR_INVALID;
    if (s->tier < 0 || s->unit_price_fen < 0 || s->participants < 0)
      return ev_dlq(ev, "campaign_settled: tier, unit_price_fen and "
                        "participants must not be negative");
    return settle(ev, s->campaign_id, "SETTLED", (int)s->tier,
                  (long long)s->unit_price_fen, (int)s->participants, NULL);
  }
  case LINLI__SETTLEMENT_EVENT__EVENT_CAMPAIGN_FAILED: {
    const Linli__CampaignFailed *f = e->campaign_failed;
    if (!ev_check_id(ev, f->campaign_id, "campaign_failed.campaign_id"))
      return LINLI_ERR_INVALID;
    if (f->participants < 0)
      return ev_dlq(ev, "campaign_failed.participants: must not be negative");
    return settle(ev, f->campaign_id, "FAILED", -1, -1, (int)f->participants,
                  opt(f->reason) ? f->reason : "no tier reached");
  }
  case LINLI__SETTLEMENT_EVENT__EVENT_JOIN_RESULT:
    /* The settler's answer to a join; the record keeps participants from
     * linli.groupbuy.v1 itself. */
    return LINLI_OK;
  default:
    return ev_dlq(ev, "SettlementEvent carries no event");
  }
}
