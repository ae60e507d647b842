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

void reserver_expiry_key(char *buf, size_t len, int32_t partition) {
  snprintf(buf, len, "%s%d", RESERVER_KEY_EXPIRY, (int)partition);
}

/* When each due order was last announced, so that an OrderExpired not yet
 * processed is re-announced only every EXPIRY_RETRY_MS, not every tick. */
void reserver_announced_key(char *buf, size_t len, int32_t partition) {
  snprintf(buf, len, "%s%d:ann", RESERVER_KEY_EXPIRY, (int)partition);
}

static int expire_partition(struct reserver *rs, linli_emit_t *emit,
                            int32_t partition, int64_t now_ms) {
  char key[96], ann[96], now_s[32];
  reserver_expiry_key(key, sizeof key, partition);
  reserver_announced_key(ann, sizeof ann, partition);
  snprintf(now_s, sizeof now_s, "%lld", (long long)now_ms);
  const char *argv[] = {"ZRANGEBYSCORE", key, "-inf", now_s, "WITHSCORES",
                        "LIMIT", "0", EXPIRY_BATCH};
  redisReply *r = NULL;
  if (linli_redis_command(rs->redis, 8, argv, NULL, &r) != LINLI_OK)
    return LINLI_ERR_TRANSIENT;
  if (r->type != REDIS_REPLY_ARRAY) {
    freeReplyObject(r);
    return LINLI_ERR_TRANSIENT;
  }
  int rc = LINLI_OK;
  for (size_t i = 0; i + 1 < r->elements && rc == LINLI_OK; i += 2) {
    const char *order_id = r->element[i]->str;
    long long deadline = atoll(r->element[i + 1]->str);
    const char *hget[] = {"HGET", ann, order_id};
    redisReply *a = NULL;
    if (linli_redis_command(rs->redis, 3, hget, NULL, &a) != LINLI_OK) {
      rc = LINLI_ERR_TRANSIENT;
      break;
    }
    long long last = a->type == REDIS_REPLY_STRING ? atoll(a->str) : 0;
    freeReplyObject(a);
    if (last > 0 && now_ms - last < EXPIRY_RETRY_MS)
      continue;
    rc = out_order_expired(emit, partition, order_id, deadline, now_ms);
    if (rc == LINLI_OK) {
      const char *hset[] = {"HSET", ann, order_id, now_s};
      reserver_redis_simple(rs, 4, hset, NULL);
      LINLI_INFO("payment deadline passed", "order=%s partition=%d", order_id,
                 (int)partition);
    }
  }
  freeReplyObject(r);
  return rc;
}

int reserver_tick(void *app, linli_emit_t *emit, int64_t now_ms) {
  struct reserver *rs = app;
  for (int p = 0; p < RESERVER_MAX_PARTITIONS; p++) {
    if (!rs->owned[p])
      continue;
    int rc = expire_partition(rs, emit, p, now_ms);
    if (rc != LINLI_OK)
      return rc;
  }
  return LINLI_OK;
}
