/*
 * groupbuy.c - the group-buy rules (see groupbuy.h).
 */
#include "domain/groupbuy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "linli/error.h"
#include "settlements.pb-c.h"

static int check_tiers(const Linli__CampaignOpened *c, dom_err_fn err,
                       void *arg) {
  if (c->n_tiers == 0)
    return dom_report("tiers", "at least one tier", err, arg);
  if (c->n_tiers > DOM_GB_MAX_TIERS)
    return dom_report("tiers", "at most 32 tiers", err, arg);
  int bad = 0;
  for (size_t i = 0; i < c->n_tiers; i++) {
    const Linli__CampaignOpened__Tier *t = c->tiers[i];
    const Linli__CampaignOpened__Tier *prev = i ? c->tiers[i - 1] : NULL;
    char f[64];
    snprintf(f, sizeof f, "tiers[%zu].min_participants", i);
    if (dom_check_range(f, t->min_participants, 1, DOM_GB_MAX_PARTICIPANTS,
                        err, arg))
      bad++;
    else if (prev && t->min_participants <= prev->min_participants)
      bad += dom_report(f, "tiers must ascend strictly by min_participants",
                        err, arg);
    snprintf(f, sizeof f, "tiers[%zu].unit_price_fen", i);
    if (dom_check_range(f, t->unit_price_fen, 1, DOM_MAX_PRICE_FEN, err, arg))
      bad++;
    else if (t->unit_price_fen > c->list_price_fen)
      bad += dom_report(f, "a group price may not exceed list_price_fen", err,
                        arg);
    else if (prev && t->unit_price_fen >= prev->unit_price_fen)
      bad +=
          dom_report(f, "each higher tier must cost strictly less", err, arg);
  }
  return bad;
}

int dom_gb_check_opened(const Linli__CampaignOpened *c, int64_t now_ms,
                        dom_err_fn err, void *arg) {
  if (!c)
    return dom_report("campaign_opened", "required", err, arg);
  int bad = dom_check_id("campaign_id", c->campaign_id, err, arg);
  bad += dom_check_opt_id("app_id", c->app_id, err, arg);
  bad += dom_check_id("sku_id", c->sku_id, err, arg);
  bad += dom_check_id("warehouse_id", c->warehouse_id, err, arg);
  bad += dom_check_range("list_price_fen", c->list_price_fen, 1,
                         DOM_MAX_PRICE_FEN, err, arg);
  bad += check_tiers(c, err, arg);
  if (c->deadline_ms <= now_ms)
    bad += dom_report("deadline_ms", "must be in the future", err, arg);
  else if (c->deadline_ms - now_ms > DOM_GB_MAX_DURATION_MS)
    bad += dom_report("deadline_ms", "at most 366 days ahead", err, arg);
  bad += dom_check_range("per_user_limit", c->per_user_limit, 0,
                         DOM_MAX_QUANTITY, err, arg);
  if (dom_check_range("max_participants", c->max_participants, 0,
                      DOM_GB_MAX_PARTICIPANTS, err, arg))
    bad++;
  else if (c->max_participants > 0 && c->n_tiers > 0 &&
           c->n_tiers <= DOM_GB_MAX_TIERS &&
           c->max_participants < c->tiers[c->n_tiers - 1]->min_participants)
    bad +=
        dom_report("max_participants",
                   "below the top tier's min_participants: it could never be "
                   "reached",
                   err, arg);
  bad += dom_check_opt_id("pickup_point_id", c->pickup_point_id, err, arg);
  bad += dom_check_text("title", c->title, DOM_GB_TITLE_MAX, err, arg);
  return bad;
}

int dom_gb_check_joined(const Linli__GroupBuyJoined *j, dom_err_fn err,
                        void *arg) {
  if (!j)
    return dom_report("group_buy_joined", "required", err, arg);
  int bad = dom_check_id("campaign_id", j->campaign_id, err, arg);
  bad += dom_check_id("user_id", j->user_id, err, arg);
  bad += dom_check_id("order_id", j->order_id, err, arg);
  bad += dom_check_range("quantity", j->quantity, 1, DOM_MAX_QUANTITY, err,
                         arg);
  return bad;
}

int dom_gb_check_left(const Linli__GroupBuyLeft *l, dom_err_fn err,
                      void *arg) {
  if (!l)
    return dom_report("group_buy_left", "required", err, arg);
  int bad = dom_check_id("campaign_id", l->campaign_id, err, arg);
  bad += dom_check_id("user_id", l->user_id, err, arg);
  bad += dom_check_id("order_id", l->order_id, err, arg);
  return bad;
}

int dom_gb_check_deadline(const Linli__CampaignDeadline *d, dom_err_fn err,
                          void *arg) {
  if (!d)
    return dom_report("campaign_deadline", "required", err, arg);
  int bad = dom_check_id("campaign_id", d->campaign_id, err, arg);
  bad += dom_check_range("deadline_ms", d->deadline_ms, 1, DOM_MAX_TIME_MS, err,
                         arg);
  return bad;
}

int dom_gb_event_check(const Linli__GroupBuyEvent *e, dom_err_fn err,
                       void *arg) {
  if (!e)
    return dom_report("event", "required", err, arg);
  int bad = dom_check_meta(e->meta, err, arg);
  if (bad)
    return bad; /* a CampaignOpened is judged at meta.occurred_at_ms */
  switch (e->event_case) {
  case LINLI__GROUP_BUY_EVENT__EVENT_CAMPAIGN_OPENED:
    return dom_gb_check_opened(e->campaign_opened, e->meta->occurred_at_ms,
                               err, arg);
  case LINLI__GROUP_BUY_EVENT__EVENT_GROUP_BUY_JOINED:
    return dom_gb_check_joined(e->group_buy_joined, err, arg);
  case LINLI__GROUP_BUY_EVENT__EVENT_GROUP_BUY_LEFT:
    return dom_gb_check_left(e->group_buy_left, err, arg);
  case LINLI__GROUP_BUY_EVENT__EVENT_CAMPAIGN_DEADLINE:
    return dom_gb_check_deadline(e->campaign_deadline, err, arg);
  default:
    return dom_report("event",
                      "a GroupBuyEvent carries campaign_opened, "
                      "group_buy_joined, group_buy_left or campaign_deadline",
                      err, arg);
  }
}

int dom_gb_tier_for(const struct dom_gb_tier *tiers, size_t ntiers,
                    int64_t n) {
  int t = -1;
  for (size_t i = 0; i < ntiers && n >= tiers[i].min; i++)
    t = (int)i;
  return t;
}

int64_t dom_gb_needed_for_next(const struct dom_gb_tier *tiers, size_t ntiers,
                               int64_t n) {
  int t = dom_gb_tier_for(tiers, ntiers, n);
  if ((size_t)(t + 1) >= ntiers)
    return 0;
  return tiers[t + 1].min - n;
}

int dom_gb_tiers_format(const Linli__CampaignOpened *c, char *buf,
                        size_t len) {
  size_t off = 0;
  if (len == 0)
    return LINLI_ERR_TOOBIG;
  buf[0] = '\0';
  for (size_t i = 0; i < c->n_tiers; i++) {
    int w = snprintf(buf + off, len - off, "%s%d:%lld", i ? "," : "",
                     (int)c->tiers[i]->min_participants,
                     (long long)c->tiers[i]->unit_price_fen);
    if (w < 0 || (size_t)w >= len - off)
      return LINLI_ERR_TOOBIG;
    off += (size_t)w;
  }
  return LINLI_OK;
}

/* A decimal in [lo, hi] ending at *end (one of stops). */
static int parse_num(const char *s, char **end, long long lo, long long hi,
                     long long *out) {
  if (*s < '0' || *s > '9')
    return LINLI_ERR_INVALID;
  errno = 0;
  long long v = strtoll(s, end, 10);
  if (errno || v < lo || v > hi)
    return LINLI_ERR_INVALID;
  *out = v;
  return LINLI_OK;
}

int dom_gb_tiers_parse(const char *s, struct dom_gb_tier *out, size_t max,
                       size_t *n) {
  *n = 0;
  if (!s || !*s)
    return LINLI_ERR_INVALID;
  for (;;) {
    long long min, price;
    char *end = NULL;
    if (*n >= max || parse_num(s, &end, 1, DOM_GB_MAX_PARTICIPANTS, &min) ||
        *end != ':' || parse_num(end + 1, &end, 1, DOM_MAX_PRICE_FEN, &price))
      return LINLI_ERR_INVALID;
    if (*n > 0 && (min <= out[*n - 1].min || price >= out[*n - 1].price_fen))
      return LINLI_ERR_INVALID;
    out[*n].min = (int32_t)min;
    out[*n].price_fen = price;
    (*n)++;
    if (*end == '\0')
      return LINLI_OK;
    if (*end != ',')
      return LINLI_ERR_INVALID;
    s = end + 1;
  }
}

int dom_gb_prepaid(const struct dom_gb_tier *tiers, size_t ntiers,
                   int64_t qty, int64_t *out) {
  if (ntiers == 0 || qty < 1 || qty > DOM_MAX_QUANTITY ||
      tiers[0].price_fen < 1 || tiers[0].price_fen > DOM_MAX_PRICE_FEN)
    return LINLI_ERR_INVALID;
  /* Both factors are bounded (1e11 * 1e6 = 1e17 < 9.2e18): no overflow. */
  *out = tiers[0].price_fen * qty;
  return LINLI_OK;
}

int dom_gb_refund(const struct dom_gb_tier *tiers, size_t ntiers, int tier,
                  int64_t qty, int64_t *out) {
  int64_t prepaid;
  if (tier < -1 || tier >= (int)ntiers ||
      dom_gb_prepaid(tiers, ntiers, qty, &prepaid) != LINLI_OK)
    return LINLI_ERR_INVALID;
  if (tier < 0) {
    *out = prepaid;
    return LINLI_OK;
  }
  /* Tier prices descend from tiers[0]: the difference is not negative. */
  *out = prepaid - tiers[tier].price_fen * qty;
  return *out >= 0 ? LINLI_OK : LINLI_ERR_INVALID;
}

/* ------------------------------------------------ the campaign's life */

void dom_gb_open(struct dom_gb_campaign *c, const Linli__CampaignOpened *o) {
  memset(c, 0, sizeof *c);
  c->state = DOM_GB_OPEN;
  for (size_t i = 0; i < o->n_tiers && i < DOM_GB_MAX_TIERS; i++) {
    c->tiers[i].min = o->tiers[i]->min_participants;
    c->tiers[i].price_fen = o->tiers[i]->unit_price_fen;
    c->ntiers++;
  }
  c->cap = o->max_participants > 0 ? o->max_participants
                                   : DOM_GB_MAX_PARTICIPANTS;
  c->limit = o->per_user_limit;
  c->deadline_ms = o->deadline_ms;
  c->announced = -1;
  c->tier = -1;
}

int dom_gb_join(struct dom_gb_campaign *c, int64_t user_units, int order_known,
                int32_t qty, int *new_tier) {
  *new_tier = -1;
  if (c->state == DOM_GB_UNKNOWN)
    return LINLI__JOIN_RESULT__REASON__UNKNOWN_CAMPAIGN;
  /* A live order is a duplicate even after the deadline (as in the
   * settler's script, which looks the order up first). */
  if (order_known)
    return LINLI__JOIN_RESULT__REASON__DUPLICATE;
  if (c->state != DOM_GB_OPEN)
    return LINLI__JOIN_RESULT__REASON__CLOSED;
  if (c->joins >= DOM_GB_MAX_JOINS)
    return LINLI__JOIN_RESULT__REASON__FULL;
  if (c->limit > 0 && user_units + qty > c->limit)
    return LINLI__JOIN_RESULT__REASON__OVER_USER_LIMIT;
  if (user_units == 0) {
    if (c->participants >= c->cap)
      return LINLI__JOIN_RESULT__REASON__FULL;
    c->participants++;
  }
  c->joins++;
  int t = dom_gb_tier_for(c->tiers, c->ntiers, c->participants);
  if (t > c->announced) {
    c->announced = t;
    *new_tier = t;
  }
  return 0;
}

int dom_gb_leave(struct dom_gb_campaign *c, int32_t qty,
                 int64_t user_units_after) {
  if (c->state == DOM_GB_UNKNOWN)
    return LINLI__JOIN_RESULT__REASON__UNKNOWN_CAMPAIGN;
  if (c->state != DOM_GB_OPEN)
    return LINLI__JOIN_RESULT__REASON__CLOSED;
  if (qty <= 0)
    return LINLI__JOIN_RESULT__REASON__NOT_JOINED;
  c->joins--;
  if (user_units_after <= 0)
    c->participants--;
  return 0;
}

int dom_gb_end(struct dom_gb_campaign *c, int64_t deadline_ms) {
  if (c->state != DOM_GB_OPEN || deadline_ms < c->deadline_ms)
    return 0;
  c->tier = dom_gb_tier_for(c->tiers, c->ntiers, c->participants);
  c->state = c->tier >= 0 ? DOM_GB_SETTLED : DOM_GB_FAILED;
  return 1;
}
