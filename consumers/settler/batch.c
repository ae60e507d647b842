/*
 * batch.c - the settler's batch handler: decide every record in memory,
 * apply them with one script per campaign in one Redis round trip, then
 * report the outcomes in input order.
 *
 * A record whose content the settler cannot process (undecodable, a field
 * out of range, invalid UTF-8, a time that would overflow) is rejected to
 * the DLQ before it reaches Redis; only well-formed events change state.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domain/check.h"
#include "linli/error.h"
#include "linli/log.h"
#include "linli/shards.h"
#include "settler.h"

/* ------------------------------------------------------------- decoding */

/* Decode and validate record r; on bad input reject it (reason -> DLQ). */
static void decode(linli_batch_t *b, size_t i, struct settler_rec *r) {
  char why[512] = "";
  struct dom_first_err fe = {why, sizeof why, 0};
  ProtobufCMessage *pm = NULL;
  if (linli_batch_unpack(b, i, &linli__group_buy_event__descriptor, &pm) !=
      LINLI_OK)
    return;
  r->ev = (Linli__GroupBuyEvent *)pm;
  Linli__GroupBuyEvent *ev = r->ev;
  /* libdomain's judgement, the one the gateway and the ledger use too. */
  if (dom_gb_event_check(ev, dom_first_err, &fe) == 0) {
    switch (ev->event_case) {
    case LINLI__GROUP_BUY_EVENT__EVENT_CAMPAIGN_OPENED:
      r->op = OP_OPEN;
      r->campaign_id = ev->campaign_opened->campaign_id;
      break;
    case LINLI__GROUP_BUY_EVENT__EVENT_GROUP_BUY_JOINED:
      r->op = OP_JOIN;
      r->campaign_id = ev->group_buy_joined->campaign_id;
      break;
    case LINLI__GROUP_BUY_EVENT__EVENT_GROUP_BUY_LEFT:
      r->op = OP_LEAVE;
      r->campaign_id = ev->group_buy_left->campaign_id;
      break;
    default: /* LINLI__GROUP_BUY_EVENT__EVENT_CAMPAIGN_DEADLINE */
      r->op = OP_DEADLINE;
      r->campaign_id = ev->campaign_deadline->campaign_id;
      break;
    }
  }
  if (r->op == OP_NONE)
    linli_batch_reject(b, i, LINLI_ERR_INVALID,
                       why[0] ? why : "invalid GroupBuyEvent");
}

/* The script arguments of a decoded record (see DOM_GB_LUA). */
static int script_args(const struct settler *st, const struct settler_rec *r,
                       const char **args, char (*num)[32], char *tiers,
                       size_t tierslen) {
  const Linli__GroupBuyEvent *ev = r->ev;
  switch (r->op) {
  case OP_OPEN: {
    const Linli__CampaignOpened *c = ev->campaign_opened;
    if (dom_gb_tiers_format(c, tiers, tierslen) != LINLI_OK)
      return -1;
    snprintf(num[0], 32, "%d",
             c->max_participants > 0 ? (int)c->max_participants
                                     : DOM_GB_MAX_PARTICIPANTS);
    snprintf(num[1], 32, "%d", (int)c->per_user_limit);
    snprintf(num[2], 32, "%lld", (long long)c->deadline_ms);
    snprintf(num[3], 32, "%lld", (long long)c->list_price_fen);
    const char *a[] = {"open", tiers,          num[0],      num[1], num[2],
                       c->sku_id, c->warehouse_id, c->app_id, num[3]};
    memcpy(args, a, sizeof a);
    return 9;
  }
  case OP_JOIN: {
    const Linli__GroupBuyJoined *j = ev->group_buy_joined;
    snprintf(num[0], 32, "%d", (int)j->quantity);
    const char *a[] = {"join", j->user_id, j->order_id, num[0],
                       ev->meta->event_id};
    memcpy(args, a, sizeof a);
    return 5;
  }
  case OP_LEAVE: {
    const Linli__GroupBuyLeft *l = ev->group_buy_left;
    const char *a[] = {"leave", l->user_id, l->order_id};
    memcpy(args, a, sizeof a);
    return 3;
  }
  case OP_DEADLINE:
    snprintf(num[0], 32, "%lld", (long long)ev->campaign_deadline->deadline_ms);
    snprintf(num[1], 32, "%lld", (long long)st->retention_s);
    args[0] = "deadline";
    args[1] = num[0];
    args[2] = num[1];
    return 3;
  default:
    return -1;
  }
}

/* ------------------------------------------------------- campaign shards */

/* Add record i to its campaign's Redis batch (one shard per campaign). */
static int shard_add(struct settler *st, linli_batch_t *b, size_t i,
                     linli_shards_t *sh, struct settler_rec *r) {
  char tag[80];
  snprintf(tag, sizeof tag, DOM_GB_TAG_FMT, r->campaign_id);
  const char *args[12];
  char num[4][32], tiers[DOM_GB_MAX_TIERS * 24];
  int nargs = script_args(st, r, args, num, tiers, sizeof tiers);
  if (nargs < 0)
    return LINLI_ERR_INVALID;
  int s = -1;
  int slot = linli_shards_add_record(sh, tag, b, i, nargs, args, NULL, &s);
  if (slot < 0)
    return slot;
  r->shard = s;
  r->slot = slot;
  return LINLI_OK;
}

/* ---------------------------------------------------------------- batch */

/* Report every applied record in input order; collect index updates. */
static int report_all(struct settler *st, linli_batch_t *b, linli_emit_t *emit,
                      struct settler_rec *recs, size_t n, linli_shards_t *sh,
                      char *reason, size_t reasonlen) {
  struct settler_index idx = {0};
  int rc = LINLI_OK;
  for (size_t i = 0; i < n && rc == LINLI_OK; i++) {
    struct settler_rec *r = &recs[i];
    if (r->shard < 0)
      continue;
    const char *msg = NULL;
    linli_redis_batch_t *shard = linli_shards_batch(sh, (size_t)r->shard);
    int status = linli_redis_batch_status(shard, &msg);
    if (status == LINLI_ERR_TRANSIENT || status == LINLI_ERR_NOMEM) {
      snprintf(reason, reasonlen, "redis: campaign %s: %s", r->campaign_id,
               msg);
      rc = LINLI_ERR_TRANSIENT;
      break;
    }
    if (status != LINLI_OK) {
      /* The script refused this campaign's whole batch for a reason that
       * will not go away: keep the partition moving. */
      char why[512];
      snprintf(why, sizeof why, "redis refused campaign %s: %s",
               r->campaign_id, msg);
      linli_batch_reject(b, i, LINLI_ERR_INVALID, why);
      continue;
    }
    int effect = 0;
    const char *outcome = NULL;
    size_t len = 0;
    linli_redis_batch_result(shard, (size_t)r->slot, &effect, &outcome,
                             &len);
    /* The parser splits its buffer in place: a join's outcome fits the
     * stack; only a settlement's list of joins needs the heap. */
    char small[512], *copy = small;
    if (len >= sizeof small && !(copy = malloc(len + 1))) {
      rc = LINLI_ERR_TRANSIENT;
      break;
    }
    memcpy(copy, outcome, len + 1);
    char why[512] = "";
    int rrc = settler_report(st, emit, r, effect, copy, len, &idx, why,
                             sizeof why);
    if (copy != small)
      free(copy);
    if (rrc == LINLI_ERR_INVALID) {
      linli_batch_reject(b, i, rrc, why);
    } else if (rrc != LINLI_OK) {
      snprintf(reason, reasonlen, "%s", why[0] ? why : "emit failed");
      rc = rrc == LINLI_ERR_FATAL ? rrc : LINLI_ERR_TRANSIENT;
    }
  }
  /* The deadline index follows the committed state: idempotent writes,
   * before the transaction commits, so a failure retries the batch. */
  if (rc == LINLI_OK && settler_index_flush(st, &idx) != LINLI_OK) {
    snprintf(reason, reasonlen, "redis unavailable (deadline index)");
    rc = LINLI_ERR_TRANSIENT;
  }
  settler_index_free(&idx);
  return rc;
}

int settler_handle_batch(void *app, linli_batch_t *b, linli_emit_t *emit,
                         char *reason, size_t reasonlen) {
  struct settler *st = app;
  size_t n = linli_batch_count(b);
  struct settler_rec *recs = calloc(n ? n : 1, sizeof *recs);
  linli_shards_t *sh = NULL;
  int rc = LINLI_ERR_TRANSIENT;
  snprintf(reason, reasonlen, "out of memory");
  if (!recs || linli_shards_new(st->script, n, &sh) != LINLI_OK)
    goto done;
  reason[0] = '\0';
  rc = LINLI_OK;
  for (size_t i = 0; i < n && rc == LINLI_OK; i++) {
    struct settler_rec *r = &recs[i];
    r->msg = linli_batch_msg(b, i);
    r->shard = -1;
    decode(b, i, r);
    if (r->op != OP_NONE)
      rc = linli_shards_admit(b, i, shard_add(st, b, i, sh, r),
                              "campaign does not fit the hot state", reason,
                              reasonlen);
  }
  if (rc == LINLI_OK)
    rc = linli_shards_exec(st->redis, sh, reason, reasonlen);
  if (rc == LINLI_OK)
    rc = report_all(st, b, emit, recs, n, sh, reason, reasonlen);
done:
  for (size_t i = 0; recs && i < n; i++)
    if (recs[i].ev)
      linli__group_buy_event__free_unpacked(recs[i].ev, NULL);
  free(recs);
  linli_shards_free(sh);
  return rc;
}
