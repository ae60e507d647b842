/*
 * shards.h - a sharded batch: the Redis batches (linli_redis_batch_t) of
 * one consumer batch, one per shard, found by the shard's hash tag and run
 * together in one round trip.
 *
 * For the consumers that apply a whole input batch with one batch HWM
 * script per shard (a warehouse, a campaign, a hash bucket): each record
 * goes to the batch of its shard, made on first use, and
 * linli_shards_exec runs them all. Shards are numbered 0.. in order of
 * first use, so a consumer keeps (shard, slot) per record and reads its
 * outcome afterwards with linli_redis_batch_status/_result on
 * linli_shards_batch(sh, shard).
 */
#ifndef LINLI_SHARDS_H
#define LINLI_SHARDS_H

#include <stddef.h>
#include <stdint.h>

#include "linli/kafka.h"
#include "linli/redis.h"

typedef struct linli_shards linli_shards_t;

/* An empty sharded batch whose shards run script (a batch HWM script,
 * linli_redis_script_batch). hint: the shards expected (e.g. the records
 * of the batch); it only sizes the first table. *out owned by the caller
 * (linli_shards_free, which frees every shard's batch). */
int linli_shards_new(linli_redis_script_t *script, size_t hint,
                     linli_shards_t **out);
void linli_shards_free(linli_shards_t *sh);

/* Shards made so far, and shard i's batch (borrowed; NULL when i is out of
 * range). */
size_t linli_shards_count(const linli_shards_t *sh);
linli_redis_batch_t *linli_shards_batch(const linli_shards_t *sh, size_t i);

/*
 * Add the effect of input (topic, partition, offset) with its arguments to
 * the batch of the shard tagged tag (linli_redis_key's tag), made on first
 * use: as linli_redis_batch_add, whose rules hold. Returns the input's slot
 * in that shard's batch (>= 0), its shard in *shard; or a negative error:
 * LINLI_ERR_INVALID for a tag Redis keys cannot carry or an input the
 * batch refuses, LINLI_ERR_NOMEM.
 */
int linli_shards_add(linli_shards_t *sh, const char *tag, const char *topic,
                     int32_t partition, int64_t offset, int64_t start,
                     int nargs, const char **args, const size_t *lens,
                     int *shard);

/* linli_shards_add for record i of the consumer batch b: its topic,
 * partition and offset, and b's start in that partition. */
int linli_shards_add_record(linli_shards_t *sh, const char *tag,
                            linli_batch_t *b, size_t i, int nargs,
                            const char **args, const size_t *lens,
                            int *shard);

/*
 * What a consumer does with the result add_rc of putting record i of b in
 * its shard, the same in every consumer: LINLI_OK (or the slot
 * linli_shards_add returned) goes on, LINLI_OK;
 * LINLI_ERR_INVALID (the record cannot be carried to Redis, e.g. too large
 * or a key Redis cannot hold) rejects the record with misfit, to the DLQ,
 * and the batch goes on (LINLI_OK); anything else can only be memory:
 * reason "out of memory" and LINLI_ERR_TRANSIENT, to retry the batch.
 */
int linli_shards_admit(linli_batch_t *b, size_t i, int add_rc,
                       const char *misfit, char *reason, size_t reasonlen);

/*
 * Run every shard's batch in one pipelined round trip
 * (linli_redis_batch_exec); nothing to do (LINLI_OK) when no shard was
 * made. LINLI_OK: each shard then has its own status. Otherwise
 * LINLI_ERR_TRANSIENT with why in reason: the consumer retries the batch
 * (safe: the marks make a second run a replay).
 */
int linli_shards_exec(linli_redis_t *r, linli_shards_t *sh, char *reason,
                      size_t reasonlen);

#endif
