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
#include "linli/schema.h"
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
  linli_id_derive(seed, 0, cutoff, 0, id, sizeof id);
  dom_wave_id(w, kind, cutoff, wave, sizeof wave);
  meta.event_id = id;
  meta.occurred_at_ms = now_ms;
  meta.producer = (char *)"linli-router";
  meta.schema_version = 1;
  c.warehouse_id = (char *)w->id;
  c.wave_id = wave;
  c.cutoff_ms = cutoff;
  c.express = kind == DOM_WAVE_EXPRESS;
  ev.meta = &meta;
  ev.event_case = LINLI__FULFILLMENT_EVENT__EVENT_WAVE_CLOSED;
  ev.wave_closed = &c;
  int rc = router_emit(emit, LINLI_TOPIC_FULFILLMENT, partition, w->id,
                       &ev.base);
  if (rc == LINLI_OK)
    LINLI_INFO("wave cutoff passed", "warehouse=%s wave=%s partition=%d",
               w->id, wave, (int)partition);
  return rc;
}

/* One warehouse and kind: close the open wave if its cutoff passed. */
static int due_wave(struct router *rt, linli_emit_t *emit, int32_t partition,
                    const struct dom_ref_warehouse *w, char kind,
                    int64_t now_ms) {
  int64_t due = dom_wave_cutoff_before(w, kind, now_ms);
  if (due < 0)
    return LINLI_OK;
  char st[96], q[96], cutf[8], annf[8], atf[10];
  snprintf(st, sizeof st, "{" DOM_WAVE_TAG_FMT "}:st", w->id);
  snprintf(q, sizeof q, "{" DOM_WAVE_TAG_FMT "}:q:%c", w->id, kind);
  snprintf(cutf, sizeof cutf, "cut:%c", kind);
  snprintf(annf, sizeof annf, "ann:%c", kind);
  snprintf(atf, sizeof atf, "annat:%c", kind);
  const char *hm[] = {"HMGET", st, cutf, annf, atf};
  const char *ll[] = {"LLEN", q};
  linli_redis_cmd_t cmds[2] = {{5, hm, NULL}, {2, ll, NULL}};
  redisReply *rep[2] = {NULL, NULL};
  if (linli_redis_pipeline(rt->redis, 2, cmds, rep) != LINLI_OK)
    return LINLI_ERR_TRANSIENT;
  int rc = LINLI_OK;
  if (rep[0]->type != REDIS_REPLY_ARRAY || rep[0]->elements != 3 ||
      rep[1]->type != REDIS_REPLY_INTEGER) {
    rc = LINLI_ERR_TRANSIENT;
    goto out;
  }
  long long v[3];
  for (int i = 0; i < 3; i++)
    v[i] = rep[0]->element[i]->type == REDIS_REPLY_STRING
               ? atoll(rep[0]->element[i]->str)
               : -1;
  long long cut = v[0], ann = v[1], annat = v[2];
  /* Nothing waiting, or this cutoff already closed the open wave. */
  if (rep[1]->integer == 0 || due <= cut)
    goto out;
  if (ann == due && annat >= 0 && now_ms - annat < rt->close_retry_ms)
    goto out;
  rc = write_close(emit, partition, w, kind, due, now_ms);
  if (rc != LINLI_OK)
    goto out;
  char dues[32], nows[32];
  snprintf(dues, sizeof dues, "%lld", (long long)due);
  snprintf(nows, sizeof nows, "%lld", (long long)now_ms);
  const char *hs[] = {"HSET", st, annf, dues, atf, nows};
  redisReply *h = NULL;
  if (linli_redis_command(rt->redis, 6, hs, NULL, &h) == LINLI_OK)
    freeReplyObject(h);
out:
  for (int i = 0; i < 2; i++)
    if (rep[i])
      freeReplyObject(rep[i]);
  return rc;
}

static int due_partition(struct router *rt, linli_emit_t *emit,
                         int32_t partition, int64_t now_ms) {
  char key[48];
  snprintf(key, sizeof key, DOM_WAVE_KEY_INDEX "%d", (int)partition);
  const char *argv[] = {"SMEMBERS", key};
  redisReply *r = NULL;
  if (linli_redis_command(rt->redis, 2, argv, NULL, &r) != LINLI_OK)
    return LINLI_ERR_TRANSIENT;
  int rc = r->type == REDIS_REPLY_ARRAY ? LINLI_OK : LINLI_ERR_TRANSIENT;
  for (size_t i = 0; rc == LINLI_OK && i < r->elements; i++) {
    if (r->element[i]->type != REDIS_REPLY_STRING)
      continue;
    const struct dom_ref_warehouse *w =
        dom_ref_warehouse(&rt->ref, r->element[i]->str);
    if (!w)
      continue; /* another router's warehouse */
    rc = due_wave(rt, emit, partition, w, DOM_WAVE_DAILY, now_ms);
    if (rc == LINLI_OK && w->express_every_min > 0)
      rc = due_wave(rt, emit, partition, w, DOM_WAVE_EXPRESS, now_ms);
  }
  freeReplyObject(r);
  return rc;
}

int router_tick(void *app, linli_emit_t *emit, int64_t now_ms) {
  struct router *rt = app;
  for (int p = 0; p < ROUTER_MAX_PARTITIONS; p++) {
    if (!rt->owned[p])
      continue;
    int rc = due_partition(rt, emit, p, now_ms);
    if (rc != LINLI_OK)
      return rc;
  }
  return LINLI_OK;
}
