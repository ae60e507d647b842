/*
 * clock.c - the settler's clock. A campaign's deadline is decided by
 * writing CampaignDeadline into the campaign's own partition of
 * linli.groupbuy.v1; processing that event (in log order, after every join
 * that came first) settles the campaign. The index of open campaigns'
 * deadlines is a sorted set per groupbuy partition, so each instance looks
 * only at the partitions it owns.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "linli/error.h"
#include "linli/log.h"
#include "outputs.h"
#include "settler.h"

#define DUE_BATCH "200"

/* Due campaigns of one partition: CampaignDeadline for each that was not
 * announced within the retry interval. Three Redis commands per partition
 * and tick, however many campaigns are due: ZRANGEBYSCORE, HMGET of when
 * each was last announced, one HSET of the new announcements. */
static int due_partition(void *app, linli_emit_t *emit, int32_t partition,
                         int64_t now_ms) {
  struct settler *st = app;
  char key[64], ann[72], now_s[32];
  snprintf(key, sizeof key, DOM_GB_KEY_DEADLINES "%d", (int)partition);
  snprintf(ann, sizeof ann, "%s:ann", key);
  snprintf(now_s, sizeof now_s, "%lld", (long long)now_ms);
  const char *argv[] = {"ZRANGEBYSCORE", key,  "-inf", now_s, "WITHSCORES",
                        "LIMIT",         "0",  DUE_BATCH};
  redisReply *r = NULL;
  if (linli_redis_command(st->redis, 8, argv, NULL, &r) != LINLI_OK)
    return LINLI_ERR_TRANSIENT;
  if (r->type != REDIS_REPLY_ARRAY || r->elements == 0) {
    int rc = r->type == REDIS_REPLY_ARRAY ? LINLI_OK : LINLI_ERR_TRANSIENT;
    freeReplyObject(r);
    return rc;
  }
  size_t n = r->elements / 2;
  const char **hmget = calloc(n + 2, sizeof *hmget);
  const char **hset = calloc(2 * n + 2, sizeof *hset);
  int rc = LINLI_ERR_TRANSIENT;
  redisReply *a = NULL;
  if (!hmget || !hset)
    goto done;
  hmget[0] = "HMGET";
  hmget[1] = ann;
  for (size_t i = 0; i < n; i++)
    hmget[i + 2] = r->element[2 * i]->str;
  if (linli_redis_command(st->redis, (int)n + 2, hmget, NULL, &a) != LINLI_OK)
    goto done;
  if (a->type != REDIS_REPLY_ARRAY || a->elements != n)
    goto done;
  rc = LINLI_OK;
  hset[0] = "HSET";
  hset[1] = ann;
  int nset = 2;
  for (size_t i = 0; i < n && rc == LINLI_OK; i++) {
    const char *campaign = r->element[2 * i]->str;
    long long deadline = atoll(r->element[2 * i + 1]->str);
    long long last = a->element[i]->type == REDIS_REPLY_STRING
                         ? atoll(a->element[i]->str)
                         : 0;
    if (last > 0 && now_ms - last < st->deadline_retry_ms)
      continue;
    rc = out_deadline(emit, partition, campaign, deadline, now_ms);
    if (rc != LINLI_OK)
      break;
    hset[nset++] = campaign;
    hset[nset++] = now_s;
    LINLI_INFO("campaign deadline passed", "campaign=%s partition=%d",
               campaign, (int)partition);
  }
  /* Only when every announcement is in the transaction: a failed tick
   * announces again at the next one. A lost HSET only means an early
   * re-announcement, which the deadline's processing ignores. */
  if (rc == LINLI_OK && nset > 2) {
    redisReply *h = NULL;
    if (linli_redis_command(st->redis, nset, hset, NULL, &h) == LINLI_OK)
      freeReplyObject(h);
  }
done:
  if (a)
    freeReplyObject(a);
  freeReplyObject(r);
  free(hmget);
  free(hset);
  return rc;
}

int settler_tick(void *app, linli_emit_t *emit, int64_t now_ms) {
  struct settler *st = app;
  return linli_owned_each(&st->owned, due_partition, st, emit, now_ms);
}
