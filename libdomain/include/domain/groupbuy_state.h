/*
 * groupbuy_state.h - the settler's hot state in Redis: its key layout, the
 * Lua body that applies group-buy events to it, and the typed outcomes that
 * body returns, with their parser. The settler, the audit and the tests all
 * read the state through this header, so nobody retypes a key.
 *
 * Every key of one campaign carries the hash tag {c:<campaign_id>}, so the
 * batch script of a campaign touches one Redis Cluster slot:
 *   {c:ID}:c    hash  st (OPEN|SETTLED|FAILED), tiers ("min:price,..."), cap,
 *                     lim, dl (deadline ms), n (distinct participants),
 *                     ann (highest tier announced, -1 none), sku, wh, app,
 *                     list, tier (settled tier), j (live joins)
 *   {c:ID}:o    hash  order_id -> "user_id:quantity:event_id:participants"
 *                     (live joins, with the event and the participant
 *                     count of their JoinResult), or "!event_id|REASON|
 *                     participants" (a join refused FULL or
 *                     OVER_USER_LIMIT: the same event again gets the same
 *                     answer)
 *   {c:ID}:u    hash  user_id -> units joined
 *   {c:ID}:hwm, {c:ID}:out:...  the batch wrapper's marks and outcomes
 * When a campaign ends, all of them expire after the retention
 * (groupbuy.retention_s): Redis keeps live campaigns, not history.
 *
 * The deadline index (global, one per groupbuy partition, read by the
 * instance that owns the partition):
 *   linli:stl:dl:<partition>      zset  campaign_id scored by deadline ms
 *   linli:stl:dl:<partition>:ann  hash  campaign_id -> when its
 *                                       CampaignDeadline was last written
 */
#ifndef DOMAIN_GROUPBUY_STATE_H
#define DOMAIN_GROUPBUY_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "domain/groupbuy.h"

#define DOM_GB_TAG_FMT "c:%s"              /* hash tag content */
/* The campaign hash's suffix (the Lua body builds the same key from it),
 * and printf formats of a campaign's keys, with its id. */
#define DOM_GB_SUFFIX_CAMPAIGN "c"
#define DOM_GB_KEY_FMT "{" DOM_GB_TAG_FMT "}:" /* + a key's suffix */
#define DOM_GB_KEY_CAMPAIGN_FMT DOM_GB_KEY_FMT DOM_GB_SUFFIX_CAMPAIGN
#define DOM_GB_KEY_DEADLINES "linli:stl:dl:" /* + partition [+ ":ann"] */

/* The batch HWM body (linli_redis_script_batch). Inputs, A[1] = op:
 *   open     A[2] tiers, A[3] participant cap (max_participants, or
 *            DOM_GB_MAX_PARTICIPANTS when it has none), A[4] per-user
 *            limit, A[5] deadline ms, A[6] sku, A[7] warehouse, A[8] app,
 *            A[9] list price
 *   join     A[2] user, A[3] order, A[4] quantity, A[5] the join's event
 *            id (at most DOM_GB_MAX_JOINS live joins: in the body)
 *   leave    A[2] user, A[3] order
 *   deadline A[2] deadline ms judged, A[3] retention seconds */
extern const char DOM_GB_LUA[];

enum dom_gb_outcome_kind {
  DOM_GB_OPENED,   /* the campaign is open */
  DOM_GB_DUPOPEN,  /* a second CampaignOpened for an open campaign id */
  DOM_GB_JOINED,   /* counted: participants, new_tier (-1 none), tiers */
  DOM_GB_LEFT,     /* withdrawn: participants, quantity, tiers */
  DOM_GB_REJECTED, /* reason (JoinResult.Reason), participants */
  DOM_GB_ENDED,    /* settled (tier >= 0) or failed (-1): participants,
                      tiers, warehouse_id, and every live join in `joins` */
  DOM_GB_ALREADY,  /* a deadline for a campaign that already ended */
  DOM_GB_EARLY,    /* a deadline judged before the campaign's own */
  DOM_GB_ERROR,    /* the body failed for this input: detail says why */
};

/* One join in an ENDED outcome. */
struct dom_gb_join {
  const char *order_id; /* point into the parsed outcome buffer */
  const char *user_id;
  int32_t quantity;
};

struct dom_gb_outcome {
  enum dom_gb_outcome_kind kind;
  int reason;           /* REJECTED: a LINLI__JOIN_RESULT__REASON__* value */
  int64_t participants;
  int tier;             /* JOINED: tier newly announced; ENDED: tier; else -1 */
  int32_t quantity;     /* LEFT */
  int64_t deadline_ms;  /* EARLY: the campaign's deadline */
  struct dom_gb_tier tiers[DOM_GB_MAX_TIERS];
  size_t ntiers;
  struct dom_gb_join *joins; /* ENDED: njoins of them, sorted by order id */
  size_t njoins;
  const char *detail;   /* ERROR, ALREADY: text from the script */
  const char *warehouse_id; /* ENDED: the campaign's warehouse ("" when the
                               outcome predates it) */
};

/* Parse an outcome of DOM_GB_LUA in place (buf is modified and must outlive
 * out; out->joins is malloc'd: dom_gb_outcome_free). LINLI_ERR_INVALID for
 * anything that is not a well-formed outcome, LINLI_ERR_NOMEM. */
int dom_gb_outcome_parse(char *buf, struct dom_gb_outcome *out);
void dom_gb_outcome_free(struct dom_gb_outcome *out);

#endif
