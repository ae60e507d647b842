/*
 * batch.c - the router's batch handler: decode and validate every record in
 * memory, apply them with one script per warehouse in one Redis round trip,
 * then report the outcomes in input order (a closed wave is routed there).
 *
 * A record whose content the router cannot process (undecodable, a field
 * out of range, a wave id that does not match its cutoff, a warehouse
 * absent from the reference data) goes to the DLQ before it reaches Redis.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domain/check.h"
#include "linli/error.h"
#include "linli/log.h"
#include "linli/shards.h"
#include "router.h"

enum op { OP_NONE, OP_ITEM, OP_CLOSE, OP_SKIP };

struct rec {
  const rd_kafka_message_t *msg;
  Linli__FulfillmentEvent *ev; /* owned */
  enum op op;
  const struct dom_ref_warehouse *wh;
  char kind;
  int shard, slot;
};

/* ------------------------------------------------------------- decoding */

static void decode(struct router *rt, linli_batch_t *b, size_t i,
                   struct rec *r) {
  char why[512] = "";
  struct dom_first_err fe = {why, sizeof why, 0};
  ProtobufCMessage *pm = NULL;
  if (linli_batch_unpack(b, i, &linli__fulfillment_event__descriptor, &pm) !=
      LINLI_OK)
    return;
  r->ev = (Linli__FulfillmentEvent *)pm;
  Linli__FulfillmentEvent *ev = r->ev;
  const char *warehouse = NULL;
  if (dom_check_meta(ev->meta, dom_first_err, &fe) == 0) {
    switch (ev->event_case) {
    case LINLI__FULFILLMENT_EVENT__EVENT_FULFILLMENT_ITEM:
      if (dom_wave_check_item(ev->fulfillment_item, dom_first_err, &fe) == 0) {
        r->op = OP_ITEM;
        warehouse = ev->fulfillment_item->warehouse_id;
      }
      break;
    case LINLI__FULFILLMENT_EVENT__EVENT_WAVE_CLOSED:
      if (dom_wave_check_closed(ev->wave_closed, dom_first_err, &fe) == 0) {
        r->op = OP_CLOSE;
        warehouse = ev->wave_closed->warehouse_id;
      }
      break;
    default:
      snprintf(why, sizeof why, "FulfillmentEvent carries no event this "
                                "router knows");
      break;
    }
  }
  if (r->op != OP_NONE) {
    r->wh = dom_ref_warehouse(&rt->ref, warehouse);
    if (!r->wh && rt->skip_unknown) {
      r->op = OP_SKIP;
      linli_counter_add(rt->m_skipped, 1);
      return;
    }
    if (!r->wh) {
      snprintf(why, sizeof why, "warehouse_id: %s is not in the router's "
               "reference data", warehouse);
      r->op = OP_NONE;
    }
  }
  if (r->op == OP_ITEM) {
    r->kind = dom_wave_kind(r->wh, ev->fulfillment_item->express);
  } else if (r->op == OP_CLOSE) {
    const Linli__WaveClosed *c = ev->wave_closed;
    r->kind = c->express ? DOM_WAVE_EXPRESS : DOM_WAVE_DAILY;
    char want[32];
    dom_wave_id(r->wh, r->kind, c->cutoff_ms, want, sizeof want);
    if (strcmp(want, c->wave_id) != 0) {
      snprintf(why, sizeof why, "wave_id: %s does not match cutoff_ms "
               "(expected %s)", c->wave_id, want);
      r->op = OP_NONE;
    }
  }
  if (r->op == OP_NONE)
    linli_batch_reject(b, i, LINLI_ERR_INVALID,
                       why[0] ? why : "invalid FulfillmentEvent");
}

/* ------------------------------------------------------ warehouse shards */

/* Add record i to its warehouse's Redis batch (one shard per warehouse). */
static int shard_add(struct router *rt, linli_batch_t *b, size_t i,
                     linli_shards_t *sh, struct rec *r) {
  char tag[80];
  snprintf(tag, sizeof tag, DOM_WAVE_TAG_FMT, r->wh->id);
  char kind[2] = {r->kind, '\0'}, cut[32], ret[32];
  snprintf(ret, sizeof ret, "%lld", (long long)rt->retention_s);
  const char *args[6];
  int nargs;
  char *record = NULL;
  if (r->op == OP_ITEM) {
    const Linli__FulfillmentItem *it = r->ev->fulfillment_item;
    size_t cap = 512 + it->n_lines * 80;
    record = malloc(cap);
    if (!record)
      return LINLI_ERR_NOMEM;
    if (dom_wave_record(it, record, cap) != LINLI_OK) {
      free(record);
      return LINLI_ERR_INVALID;
    }
    snprintf(cut, sizeof cut, "%lld",
             (long long)dom_wave_cutoff_before(r->wh, r->kind,
                                               r->ev->meta->occurred_at_ms));
    const char *a[] = {"item", kind, it->order_id, record, cut, ret};
    memcpy(args, a, sizeof a);
    nargs = 6;
  } else {
    snprintf(cut, sizeof cut, "%lld",
             (long long)r->ev->wave_closed->cutoff_ms);
    const char *a[] = {"close", kind, cut, ret};
    memcpy(args, a, sizeof a);
    nargs = 4;
  }
  int s = -1;
  int slot = linli_shards_add_record(sh, tag, b, i, nargs, args, NULL, &s);
  free(record);
  if (slot < 0)
    return slot;
  r->shard = s;
  r->slot = slot;
  return LINLI_OK;
}

/* --------------------------------------------------------------- index */

/* (partition, warehouse) pairs that received items in this batch: the
 * clock's index, written once per batch (idempotent SADDs). */
struct index {
  size_t n;
  int32_t *part;
  const char **wh;
};

static void index_add(struct index *x, int32_t p, const char *wh) {
  for (size_t i = 0; i < x->n; i++)
    if (x->part[i] == p && strcmp(x->wh[i], wh) == 0)
      return;
  x->part[x->n] = p;
  x->wh[x->n++] = wh;
}

static int index_flush(struct router *rt, const struct index *x) {
  if (x->n == 0)
    return LINLI_OK;
  linli_redis_cmd_t *cmds = calloc(x->n, sizeof *cmds);
  const char **argv = calloc(3 * x->n, sizeof *argv);
  char (*keys)[40] = calloc(x->n, sizeof *keys);
  redisReply **rep = calloc(x->n, sizeof *rep);
  int rc = LINLI_ERR_TRANSIENT;
  if (!cmds || !argv || !keys || !rep)
    goto out;
  for (size_t i = 0; i < x->n; i++) {
    snprintf(keys[i], sizeof keys[i], DOM_WAVE_KEY_INDEX "%d",
             (int)x->part[i]);
    argv[3 * i] = "SADD";
    argv[3 * i + 1] = keys[i];
    argv[3 * i + 2] = x->wh[i];
    cmds[i].argc = 3;
    cmds[i].argv = &argv[3 * i];
  }
  if (linli_redis_pipeline(rt->redis, (int)x->n, cmds, rep) != LINLI_OK)
    goto out;
  rc = LINLI_OK;
  for (size_t i = 0; i < x->n; i++) {
    if (rep[i]->type == REDIS_REPLY_ERROR)
      rc = LINLI_ERR_TRANSIENT;
    freeReplyObject(rep[i]);
  }
out:
  free(cmds);
  free(argv);
  free(keys);
  free(rep);
  return rc;
}

/* ---------------------------------------------------------------- batch */

static int report(struct router *rt, linli_batch_t *b, linli_emit_t *emit,
                  size_t i, struct rec *r, linli_shards_t *sh,
                  struct index *idx, char *reason, size_t reasonlen) {
  const char *msg = NULL;
  linli_redis_batch_t *shard = linli_shards_batch(sh, (size_t)r->shard);
  int status = linli_redis_batch_status(shard, &msg);
  if (status == LINLI_ERR_TRANSIENT || status == LINLI_ERR_NOMEM) {
    snprintf(reason, reasonlen, "redis: warehouse %s: %s", r->wh->id,
             msg ? msg : "unavailable");
    return LINLI_ERR_TRANSIENT;
  }
  if (status != LINLI_OK) {
    char why[512];
    snprintf(why, sizeof why, "redis refused warehouse %s: %s", r->wh->id,
             msg ? msg : "error");
    linli_batch_reject(b, i, LINLI_ERR_INVALID, why);
    return LINLI_OK;
  }
  int effect = 0;
  const char *outcome = NULL;
  size_t len = 0;
  linli_redis_batch_result(shard, (size_t)r->slot, &effect, &outcome, &len);
  if (effect == LINLI_REDIS_FORGOTTEN)
    return LINLI_OK; /* its batch committed: outputs already written */
  char *copy = malloc(len + 1);
  if (!copy) {
    snprintf(reason, reasonlen, "out of memory");
    return LINLI_ERR_TRANSIENT;
  }
  memcpy(copy, outcome, len);
  copy[len] = '\0';
  struct dom_wave_outcome o;
  int rc = dom_wave_outcome_parse(copy, len, &o);
  if (rc == LINLI_ERR_NOMEM) {
    free(copy);
    snprintf(reason, reasonlen, "out of memory");
    return LINLI_ERR_TRANSIENT;
  }
  if (rc != LINLI_OK) {
    char why[512];
    snprintf(why, sizeof why, "warehouse %s: malformed script outcome",
             r->wh->id);
    linli_batch_reject(b, i, LINLI_ERR_INVALID, why);
    free(copy);
    return LINLI_OK;
  }
  switch (o.kind) {
  case DOM_WAVE_ADDED:
    index_add(idx, r->msg->partition, r->wh->id);
    break;
  case DOM_WAVE_DUP:
    linli_counter_add(rt->m_dups, 1);
    LINLI_INFO("order already in the open wave", "order=%s warehouse=%s",
               r->ev->fulfillment_item->order_id, r->wh->id);
    break;
  case DOM_WAVE_ALREADY:
    break;
  case DOM_WAVE_ERROR: {
    char why[512];
    snprintf(why, sizeof why, "warehouse %s: %s", r->wh->id, o.detail);
    linli_batch_reject(b, i, LINLI_ERR_INVALID, why);
    break;
  }
  case DOM_WAVE_CLOSED:
    rc = router_plan_wave(rt, emit, r->ev, r->wh, r->kind, &o, reason,
                          reasonlen);
    break;
  }
  dom_wave_outcome_free(&o);
  free(copy);
  return rc;
}

int router_handle_batch(void *app, linli_batch_t *b, linli_emit_t *emit,
                        char *reason, size_t reasonlen) {
  struct router *rt = app;
  size_t n = linli_batch_count(b);
  struct rec *recs = calloc(n ? n : 1, sizeof *recs);
  linli_shards_t *sh = NULL;
  struct index idx = {0};
  int rc = LINLI_ERR_TRANSIENT;
  snprintf(reason, reasonlen, "out of memory");
  idx.part = calloc(n ? n : 1, sizeof *idx.part);
  idx.wh = calloc(n ? n : 1, sizeof *idx.wh);
  if (!recs || !idx.part || !idx.wh ||
      linli_shards_new(rt->script, n, &sh) != LINLI_OK)
    goto done;
  reason[0] = '\0';
  rc = LINLI_OK;
  for (size_t i = 0; i < n && rc == LINLI_OK; i++) {
    struct rec *r = &recs[i];
    r->msg = linli_batch_msg(b, i);
    r->shard = -1;
    decode(rt, b, i, r);
    if (r->op == OP_ITEM || r->op == OP_CLOSE)
      rc = linli_shards_admit(b, i, shard_add(rt, b, i, sh, r),
                              "item does not fit the hot state", reason,
                              reasonlen);
  }
  if (rc == LINLI_OK)
    rc = linli_shards_exec(rt->redis, sh, reason, reasonlen);
  for (size_t i = 0; i < n && rc == LINLI_OK; i++)
    if (recs[i].shard >= 0)
      rc = report(rt, b, emit, i, &recs[i], sh, &idx, reason, reasonlen);
  /* The clock's index follows the applied items: idempotent writes before
   * the transaction commits, so a failure retries the batch. */
  if (rc == LINLI_OK && index_flush(rt, &idx) != LINLI_OK) {
    snprintf(reason, reasonlen, "redis unavailable (wave index)");
    rc = LINLI_ERR_TRANSIENT;
  }
done:
  for (size_t i = 0; recs && i < n; i++)
    if (recs[i].ev)
      linli__fulfillment_event__free_unpacked(recs[i].ev, NULL);
  free(recs);
  linli_shards_free(sh);
  free(idx.part);
  free(idx.wh);
  return rc;
}
