/*
 * expiry.c - the reserver's clock. A reservation's payment deadline is
 * decided by writing OrderExpired into the order's own partition of
 * linli.orders.v1; processing that event (in log order, after any payment
 * that came first) releases the stock. The index of pending deadlines is a
 * sorted set per orders partition, so each instance looks only at the
 * partitions it owns.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "linli/error.h"
#include "linli/log.h"
#include "outputs.h"
#include "reserver.h"

/* Re-announce a decision not yet processed after this long. */
#define EXPIRY_RETRY_MS 30000
#define EXPIRY_BATCH "200"

/* When each of the n due orders (ids at r->element[0, 2, ...]) was last
 * announced: one HMGET. *out owned by the caller. */
static int last_announced(struct reserver *rs, const char *ann,
                          const redisReply *due, size_t n, redisReply **out) {
  const char **argv = calloc(n + 2, sizeof *argv);
  if (!argv)
    return LINLI_ERR_NOMEM;
  argv[0] = "HMGET";
  argv[1] = ann;
  for (size_t i = 0; i < n; i++)
    argv[i + 2] = due->element[2 * i]->str;
  int rc = linli_redis_command(rs->redis, (int)n + 2, argv, NULL, out);
  free(argv);
  if (rc == LINLI_OK && ((*out)->type != REDIS_REPLY_ARRAY ||
                         (*out)->elements != n)) {
    freeReplyObject(*out);
    rc = LINLI_ERR_TRANSIENT;
  }
  return rc == LINLI_OK ? LINLI_OK : LINLI_ERR_TRANSIENT;
}

/* Announce every due order of the partition not announced within
 * EXPIRY_RETRY_MS: three round trips per tick, whatever their number. */
static int expire_partition(void *app, linli_emit_t *emit, int32_t partition,
                            int64_t now_ms) {
  struct reserver *rs = app;
  char key[96], ann[96], now_s[32];
  dom_rsv_expiry_key(key, sizeof key, partition);
  /* When each due order was last announced, so that an OrderExpired not yet
   * processed is re-announced only every EXPIRY_RETRY_MS, not every tick. */
  dom_rsv_expiry_ann_key(ann, sizeof ann, partition);
  snprintf(now_s, sizeof now_s, "%lld", (long long)now_ms);
  const char *argv[] = {"ZRANGEBYSCORE", key, "-inf", now_s, "WITHSCORES",
                        "LIMIT", "0", EXPIRY_BATCH};
  redisReply *r = NULL, *last = NULL;
  if (linli_redis_command(rs->redis, 8, argv, NULL, &r) != LINLI_OK)
    return LINLI_ERR_TRANSIENT;
  size_t n = r->type == REDIS_REPLY_ARRAY ? r->elements / 2 : 0;
  int rc = r->type == REDIS_REPLY_ARRAY ? LINLI_OK : LINLI_ERR_TRANSIENT;
  if (rc == LINLI_OK && n > 0)
    rc = last_announced(rs, ann, r, n, &last);
  const char **hset = rc == LINLI_OK && n > 0
                          ? calloc(2 * n + 2, sizeof *hset)
                          : NULL;
  if (n > 0 && rc == LINLI_OK && !hset)
    rc = LINLI_ERR_NOMEM;
  int nset = 2;
  for (size_t i = 0; rc == LINLI_OK && i < n; i++) {
    const char *order_id = r->element[2 * i]->str;
    long long deadline = atoll(r->element[2 * i + 1]->str);
    const redisReply *a = last->element[i];
    long long when = a->type == REDIS_REPLY_STRING ? atoll(a->str) : 0;
    if (when > 0 && now_ms - when < EXPIRY_RETRY_MS)
      continue;
    rc = out_order_expired(emit, partition, order_id, deadline, now_ms);
    hset[nset++] = order_id;
    hset[nset++] = now_s;
  }
  if (rc == LINLI_OK && nset > 2) {
    hset[0] = "HSET";
    hset[1] = ann;
    reserver_redis_simple(rs, nset, hset, NULL);
    LINLI_INFO("payment deadlines passed", "partition=%d orders=%d",
               (int)partition, (nset - 2) / 2);
  }
  free(hset);
  if (last)
    freeReplyObject(last);
  freeReplyObject(r);
  return rc == LINLI_ERR_NOMEM ? LINLI_ERR_TRANSIENT : rc;
}

int reserver_tick(void *app, linli_emit_t *emit, int64_t now_ms) {
  struct reserver *rs = app;
  return linli_owned_each(&rs->owned, expire_partition, rs, emit, now_ms);
}
