/*
 * clock.c - the router's clock. A wave's cutoff is decided by writing
 * WaveClosed into the warehouse's own partition of linli.fulfillment.v1;
 * processing that event (in log order, after every item that came first)
 * closes the wave and routes it. The clock looks only at warehouses that
 * have items waiting in the partitions this instance owns (the index
 * linli:rt:wh:<partition>), and writes a close again if the last one was
 * not processed within router.close_retry_ms (a transaction that aborted).
 * A repeated WaveClosed is harmless: the wave is already closed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "linli/error.h"
#include "linli/ids.h"
#include "linli/log.h"
#include "domain/schema.h"
#include "router.h"

static int write_close(linli_emit_t *emit, int32_t partition,
                       const struct dom_ref_warehouse *w, char kind,
                       int64_t cutoff, int64_t now_ms) {
  Linli__FulfillmentEvent ev = LINLI__FULFILLMENT_EVENT__INIT;
  Linli__WaveClosed c = LINLI__WAVE_CLOSED__INIT;
  Linli__Meta meta = LINLI__META__INIT;
  /* The decision's id depends only on the warehouse, the kind and the
   * cutoff: two instances (or a retry) write the same event. */
  char seed[LINLI_ID_BUFSZ + 16], id[LINLI_ID_BUFSZ], wave[32];
  snprintf(seed, sizeof seed, "wave/%s/%c", w->id, kind);
  linli_schema_decision_meta(&meta, id, seed, 0, cutoff, now_ms,
                             "linli-router");
  dom_wave_id(w, kind, cutoff, wave, sizeof wave);
  c.warehouse_id = (char *)w->id;
  c.wave_id = wave;
  c.cutoff_ms = cutoff;
  c.express = kind == DOM_WAVE_EXPRESS;
  ev.meta = &meta;
  ev.event_case = LINLI__FULFILLMENT_EVENT__EVENT_WAVE_CLOSED;
  ev.wave_closed = &c;
  int rc = linli_emit_message(emit, LINLI_TOPIC_FULFILLMENT, partition, w->id,
                       &ev.base);
  if (rc == LINLI_OK)
    LINLI_INFO("wave cutoff passed", "warehouse=%s wave=%s partition=%d",
               w->id, wave, (int)partition);
  return rc;
}

/* One warehouse and kind of a partition's index, with its Redis reads. */
struct probe {
  const struct dom_ref_warehouse *w;
  char kind;
  char st[96], q[96], cutf[8], annf[8], atf[10];
  const char *hm[5], *ll[2];
};

/* Close the probed wave if its cutoff passed: rep is the HMGET of cut,
 * ann, annat and the LLEN of its queue. *due_out is the cutoff of the
 * WaveClosed written, or -1 when none was. */
static int due_wave(struct router *rt, linli_emit_t *emit, int32_t partition,
                    const struct probe *pr, redisReply *const *rep,
                    int64_t now_ms, int64_t *due_out) {
  *due_out = -1;
  int64_t due = dom_wave_cutoff_before(pr->w, pr->kind, now_ms);
  if (due < 0)
    return LINLI_OK;
  if (rep[0]->type != REDIS_REPLY_ARRAY || rep[0]->elements != 3 ||
      rep[1]->type != REDIS_REPLY_INTEGER)
    return LINLI_ERR_TRANSIENT;
  long long v[3];
  for (int i = 0; i < 3; i++)
    v[i] = rep[0]->element[i]->type == REDIS_REPLY_STRING
               ? atoll(rep[0]->element[i]->str)
               : -1;
  long long cut = v[0], ann = v[1], annat = v[2];
  /* Nothing waiting, or this cutoff already closed the open wave. */
  if (rep[1]->integer == 0 || due <= cut)
    return LINLI_OK;
  if (ann == due && annat >= 0 && now_ms - annat < rt->close_retry_ms)
    return LINLI_OK;
  int rc = write_close(emit, partition, pr->w, pr->kind, due, now_ms);
  if (rc == LINLI_OK)
    *due_out = due;
  return rc;
}

/* Every warehouse of one partition's index: one pipeline of reads, the
 * closes that are due, one pipeline of announcements. */
static int due_partition(void *app, linli_emit_t *emit, int32_t partition,
                         int64_t now_ms) {
  struct router *rt = app;
  char key[48];
  snprintf(key, sizeof key, DOM_WAVE_KEY_INDEX "%d", (int)partition);
  const char *argv[] = {"SMEMBERS", key};
  redisReply *r = NULL;
  if (linli_redis_command(rt->redis, 2, argv, NULL, &r) != LINLI_OK)
    return LINLI_ERR_TRANSIENT;
  if (r->type != REDIS_REPLY_ARRAY) {
    freeReplyObject(r);
    return LINLI_ERR_TRANSIENT;
  }
  size_t n = 0, cap = 2 * r->elements + 1;
  struct probe *pr = calloc(cap, sizeof *pr);
  linli_redis_cmd_t *cmds = calloc(2 * cap, sizeof *cmds);
  redisReply **rep = calloc(2 * cap, sizeof *rep);
  linli_redis_cmd_t *ann = calloc(cap, sizeof *ann);
  const char *(*annv)[6] = calloc(cap, sizeof *annv);
  char (*nums)[2][32] = calloc(cap, sizeof *nums);
  int rc = LINLI_ERR_TRANSIENT, got = 0;
  if (!pr || !cmds || !rep || !ann || !annv || !nums)
    goto out;
  for (size_t i = 0; i < r->elements; i++) {
    if (r->element[i]->type != REDIS_REPLY_STRING)
      continue;
    const struct dom_ref_warehouse *w =
        dom_ref_warehouse(&rt->ref, r->element[i]->str);
    if (!w)
      continue; /* another router's warehouse */
    for (int k = 0; k < (w->express_every_min > 0 ? 2 : 1); k++) {
      struct probe *p = &pr[n];
      p->w = w;
      p->kind = k == 0 ? DOM_WAVE_DAILY : DOM_WAVE_EXPRESS;
      snprintf(p->st, sizeof p->st, DOM_WAVE_KEY_STATE_FMT, w->id);
      snprintf(p->q, sizeof p->q, DOM_WAVE_KEY_QUEUE_FMT, w->id,
               p->kind);
      snprintf(p->cutf, sizeof p->cutf, "cut:%c", p->kind);
      snprintf(p->annf, sizeof p->annf, "ann:%c", p->kind);
      snprintf(p->atf, sizeof p->atf, "annat:%c", p->kind);
      const char *hm[] = {"HMGET", p->st, p->cutf, p->annf, p->atf};
      const char *ll[] = {"LLEN", p->q};
      memcpy(p->hm, hm, sizeof hm);
      memcpy(p->ll, ll, sizeof ll);
      cmds[2 * n] = (linli_redis_cmd_t){5, p->hm, NULL};
      cmds[2 * n + 1] = (linli_redis_cmd_t){2, p->ll, NULL};
      n++;
    }
  }
  rc = LINLI_OK;
  if (n == 0)
    goto out;
  rc = LINLI_ERR_TRANSIENT;
  if (linli_redis_pipeline(rt->redis, (int)(2 * n), cmds, rep) != LINLI_OK)
    goto out;
  got = 1;
  rc = LINLI_OK;
  size_t nann = 0;
  for (size_t i = 0; i < n && rc == LINLI_OK; i++) {
    int64_t due = -1;
    rc = due_wave(rt, emit, partition, &pr[i], &rep[2 * i], now_ms, &due);
    if (rc != LINLI_OK || due < 0)
      continue;
    snprintf(nums[nann][0], sizeof nums[nann][0], "%lld", (long long)due);
    snprintf(nums[nann][1], sizeof nums[nann][1], "%lld", (long long)now_ms);
    const char *hs[] = {"HSET",        pr[i].st,  pr[i].annf,
                        nums[nann][0], pr[i].atf, nums[nann][1]};
    memcpy(annv[nann], hs, sizeof hs);
    ann[nann] = (linli_redis_cmd_t){6, annv[nann], NULL};
    nann++;
  }
  /* Announcements only pace the retries: losing one writes the close
   * again later, which is harmless. A failed tick's transaction is
   * aborted, so its closes are not announced: the next tick writes them
   * again at once instead of after router.close_retry_ms. */
  if (rc == LINLI_OK && nann > 0) {
    redisReply **arep = calloc(nann, sizeof *arep);
    if (arep &&
        linli_redis_pipeline(rt->redis, (int)nann, ann, arep) == LINLI_OK)
      for (size_t i = 0; i < nann; i++)
        freeReplyObject(arep[i]);
    free(arep);
  }
out:
  for (size_t i = 0; got && i < 2 * n; i++)
    freeReplyObject(rep[i]);
  free(pr);
  free(cmds);
  free(rep);
  free(ann);
  free(annv);
  free(nums);
  freeReplyObject(r);
  return rc;
}

int router_tick(void *app, linli_emit_t *emit, int64_t now_ms) {
  struct router *rt = app;
  return linli_owned_each(&rt->owned, due_partition, rt, emit, now_ms);
}
