/*
 * groupbuy.h - the group-buy rules, in one home: what makes a campaign,
 * a join, a leave and a deadline well-formed, which price tier a number of
 * participants reaches, and what each participant is owed back.
 *
 * The gateway answers 400 with the same field and message that a consumer
 * writes into a DLQ reason, because both call these functions: what one
 * accepts, no other refuses. Pure functions, no I/O.
 *
 * Money model: a participant prepays the first tier's unit price (the
 * highest group price) for each unit when joining. At the deadline the
 * campaign settles at the tier its participants reached, and everyone is
 * refunded the difference to that tier's price; a campaign that reached no
 * tier refunds every prepayment in full; a participant who leaves before the
 * deadline is refunded in full at once.
 */
#ifndef DOMAIN_GROUPBUY_H
#define DOMAIN_GROUPBUY_H

#include <stddef.h>
#include <stdint.h>

#include "domain/check.h"
#include "groupbuy.pb-c.h"

#define DOM_GB_MAX_TIERS 32
/* A settlement lists every join with its refund in one event: these bounds
 * keep it well under Kafka's 1 MB message limit. */
#define DOM_GB_MAX_PARTICIPANTS 10000
#define DOM_GB_MAX_JOINS 10000
/* A campaign runs at most this long after it is opened. */
#define DOM_GB_MAX_DURATION_MS (INT64_C(366) * 24 * 3600 * 1000)
#define DOM_GB_TITLE_MAX 200

/* One price tier: reached with at least min participants. */
struct dom_gb_tier {
  int32_t min;
  int64_t price_fen;
};

/* Each check calls err (may be NULL) once per problem and returns how many
 * it found (0 = valid). now_ms is the time the event is judged at (its
 * occurred_at_ms), so that a replay judges it the same way. */
int dom_gb_check_opened(const Linli__CampaignOpened *c, int64_t now_ms,
                        dom_err_fn err, void *arg);
int dom_gb_check_joined(const Linli__GroupBuyJoined *j, dom_err_fn err,
                        void *arg);
int dom_gb_check_left(const Linli__GroupBuyLeft *l, dom_err_fn err, void *arg);
int dom_gb_check_deadline(const Linli__CampaignDeadline *d, dom_err_fn err,
                          void *arg);

/* A whole record of linli.groupbuy.v1: its Meta, then the event it
 * carries (a CampaignOpened judged at its meta.occurred_at_ms). Fields are
 * named as the member checks name them ("campaign_id"), as the settler's
 * DLQ reasons always have. */
int dom_gb_event_check(const Linli__GroupBuyEvent *e, dom_err_fn err,
                       void *arg);

/* The 0-based tier reached with n participants, or -1 (tiers ascend by
 * min). */
int dom_gb_tier_for(const struct dom_gb_tier *tiers, size_t ntiers,
                    int64_t n);
/* Participants still needed to reach the next tier above the one n reaches;
 * 0 once the top tier is reached. */
int64_t dom_gb_needed_for_next(const struct dom_gb_tier *tiers, size_t ntiers,
                               int64_t n);

/* Tiers as stored in hot state: "min:price,min:price,..." (ascending).
 * dom_gb_tiers_format writes it (LINLI_ERR_TOOBIG if buf is short);
 * dom_gb_tiers_parse reads at most max tiers into out (*n set) and refuses
 * anything malformed with LINLI_ERR_INVALID. */
int dom_gb_tiers_format(const Linli__CampaignOpened *c, char *buf,
                        size_t len);
int dom_gb_tiers_parse(const char *s, struct dom_gb_tier *out, size_t max,
                       size_t *n);

/* What a participant with qty units prepaid: tiers[0].price * qty. */
int dom_gb_prepaid(const struct dom_gb_tier *tiers, size_t ntiers,
                   int64_t qty, int64_t *out);
/* Refund owed to a participant with qty units when the campaign ends at
 * tier (-1: failed, the whole prepayment). LINLI_ERR_INVALID on an
 * out-of-range tier or quantity, or an overflow. */
int dom_gb_refund(const struct dom_gb_tier *tiers, size_t ntiers, int tier,
                  int64_t qty, int64_t *out);

/* ------------------------------------------------ the campaign's life */

/*
 * The campaign state machine, as the settler's script (DOM_GB_LUA) applies
 * it in Redis. This C twin is what linli-replay audit folds the log with:
 * wherever the two disagree, the audit names the campaign. The caller keeps
 * the per-order and per-user tallies (the script's {c:ID}:o and :u hashes).
 */
enum dom_gb_state { DOM_GB_UNKNOWN = 0, DOM_GB_OPEN, DOM_GB_SETTLED,
                    DOM_GB_FAILED };

struct dom_gb_campaign {
  enum dom_gb_state state;
  struct dom_gb_tier tiers[DOM_GB_MAX_TIERS];
  size_t ntiers;
  int64_t cap;          /* most participants (DOM_GB_MAX_PARTICIPANTS if
                           the campaign set none) */
  int64_t limit;        /* per-user units, 0 = none */
  int64_t deadline_ms;
  int64_t participants; /* distinct users with units */
  int64_t joins;        /* live joins (orders) */
  int announced;        /* highest tier announced, -1 none */
  int tier;             /* the tier it ended at (-1: failed) */
};

/* Open from a valid CampaignOpened. */
void dom_gb_open(struct dom_gb_campaign *c, const Linli__CampaignOpened *o);

/* A join of qty units by a user who holds user_units already; order_known:
 * this order already joined. Returns 0 when counted (c updated; *new_tier
 * is the tier this join announces, or -1) or the JoinResult reason
 * (LINLI__JOIN_RESULT__REASON__*) it is refused with. */
int dom_gb_join(struct dom_gb_campaign *c, int64_t user_units, int order_known,
                int32_t qty, int *new_tier);

/* A leave of an order that holds qty units of a user who then holds
 * user_units_after (qty 0: the order is not in the campaign). Returns 0
 * when withdrawn or the refusal reason. */
int dom_gb_leave(struct dom_gb_campaign *c, int32_t qty,
                 int64_t user_units_after);

/* A deadline judged at deadline_ms: 1 when the campaign ends now (state and
 * tier set), 0 when it ended already or the deadline is early. */
int dom_gb_end(struct dom_gb_campaign *c, int64_t deadline_ms);

#endif
