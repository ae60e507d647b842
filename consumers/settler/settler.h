/*
 * settler.h - linli-settler: decides group-buys.
 *
 * Consumes linli.groupbuy.v1 (keyed by campaign, so one campaign's events
 * arrive in order in one partition). Each batch is decoded and validated in
 * memory (libdomain's group-buy rules), then applied with one batch HWM
 * script per campaign, all campaigns in one Redis round trip. The outcomes
 * become JoinResult answers and ThresholdReached / CampaignSettled /
 * CampaignFailed on linli.groupbuy.settlements.v1 and RefundRequested on
 * linli.refunds.v1, in the runner's transaction. The settler's clock writes
 * CampaignDeadline into the campaign's own partition when its deadline
 * passes; processing that event settles the campaign exactly once.
 */
#ifndef SETTLER_H
#define SETTLER_H

#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "domain/groupbuy_state.h"
#include "groupbuy.pb-c.h"
#include "linli/config.h"
#include "linli/kafka.h"
#include "linli/redis.h"


struct settler {
  const linli_config_t *cfg;
  linli_redis_t *redis;
  linli_redis_script_t *script;
  int64_t retention_s;       /* how long an ended campaign's state stays */
  int64_t deadline_retry_ms; /* re-announce an unprocessed deadline after */
  linli_owned_t owned; /* groupbuy partitions (the runner keeps it) */
};

/* One input record of a batch, decoded. */
enum settler_op { OP_NONE, OP_OPEN, OP_JOIN, OP_LEAVE, OP_DEADLINE };

struct settler_rec {
  const rd_kafka_message_t *msg;
  Linli__GroupBuyEvent *ev;  /* owned; NULL when rejected before decoding */
  enum settler_op op;
  const char *campaign_id;   /* points into ev */
  int shard;                 /* index of the campaign's Redis batch, -1 none */
  int slot;                  /* the record's index in that batch */
};

/* The runner's batch handler. */
int settler_handle_batch(void *app, linli_batch_t *batch, linli_emit_t *emit,
                         char *reason, size_t reasonlen);

/* Turn record r's outcome into output events (and index updates, appended
 * to idx as Redis commands). LINLI_OK, LINLI_ERR_INVALID (r goes to the DLQ
 * with reason), or an error that retries the batch. */
struct settler_index;
int settler_report(struct settler *st, linli_emit_t *emit,
                   const struct settler_rec *r, int effect, char *outcome,
                   size_t outlen, struct settler_index *idx, char *reason,
                   size_t reasonlen);

/* Deadline index updates collected over a batch, sent in one pipeline. */
struct settler_index {
  size_t n, cap;
  struct settler_index_cmd {
    char *argv[5];
    int argc;
  } *cmds;
};
int settler_index_add(struct settler_index *idx, int32_t partition,
                      const char *campaign_id, int64_t deadline_ms);
int settler_index_remove(struct settler_index *idx, int32_t partition,
                         const char *campaign_id);
int settler_index_flush(struct settler *st, struct settler_index *idx);
void settler_index_free(struct settler_index *idx);

/* The clock (runner tick): CampaignDeadline for every due campaign in the
 * partitions this instance owns. */
int settler_tick(void *app, linli_emit_t *emit, int64_t now_ms);

#endif
