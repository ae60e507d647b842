/*
 * reserver.h - linli-reserver: turns orders into stock reservations.
 *
 * Consumes linli.orders.v1 (OrderPlaced / OrderPaid / OrderCancelled /
 * OrderExpired), linli.inventory.v1 (StockAdjusted) and linli.catalog.v1
 * (Sku listed/delisted) and linli.groupbuy.settlements.v1 (CampaignSettled,
 * CampaignFailed: the orders of a campaign are held until it is decided)
 * on the runner's batch contract: per batch, every
 * record is decoded and validated in memory, one pipelined round trip reads
 * what the batch needs (catalog, order index), dependencies inside the batch
 * are resolved in memory, then one batch script per warehouse shard applies
 * all that shard's effects in input order (all shards in one round trip),
 * one pipeline writes the global indexes, and the outputs are emitted in
 * input order: results to linli.reservations.v1, paid orders to
 * linli.fulfillment.v1, refunds owed to linli.refunds.v1, all in the
 * runner's Kafka transaction. Its clock writes OrderExpired into the order's
 * own partition when a reservation's payment deadline passes.
 */
#ifndef RESERVER_H
#define RESERVER_H

#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "domain/reserver_keys.h"
#include "domain/topics.h"
#include "linli/config.h"
#include "linli/kafka.h"
#include "linli/pg.h"
#include "linli/redis.h"

/* Money and time bounds that keep every sum exact (also in Lua's doubles). */
#define RESERVER_MAX_FEN INT64_C(1000000000000000)   /* 10^15 fen */
#define RESERVER_MAX_TIME_MS INT64_C(253402300799999) /* 9999-12-31 */

struct rsv_batch; /* batch.c: one input batch's working state */

struct reserver {
  const linli_config_t *cfg;
  linli_redis_t *redis;
  linli_pg_t *pg; /* NULL until needed (loading a warehouse's stock) */
  linli_redis_script_t *stock, *load;
  int64_t payment_timeout_ms;
  char retention_s[24]; /* orders.retention_s, as sent to Redis */
  int max_lines;
  struct rsv_batch *batch; /* reused from batch to batch */
  rd_kafka_t *kmeta;       /* catalog.c: committed offsets, watermarks */
  int catalog_parts;
  int64_t catalog_wait_since; /* ms; 0 when not waiting */
  /* orders partitions this instance owns (for the expiry clock) */
  linli_owned_t owned; /* orders partitions (the runner keeps it) */
  /* Warehouses whose `loaded` marker this process has seen, so that an
   * order costs no EXISTS round trip. Safe because every stock script
   * checks the marker itself (see scripts.h) and a miss reloads. */
  char **loaded;
  size_t nloaded, loaded_cap;
};

/* The runner's handle_batch (batch.c). */
int reserver_handle_batch(void *app, linli_batch_t *batch, linli_emit_t *emit,
                          char *reason, size_t reasonlen);
void reserver_batch_free(struct reserver *rs);

/* Before rejecting orders for UNKNOWN_SKU/DELISTED (catalog.c): LINLI_OK
 * when the group applied every catalog record written so far (or has
 * waited long enough), LINLI_ERR_TRANSIENT to retry the batch. */
int reserver_catalog_wait(struct reserver *rs, linli_batch_t *batch,
                          char *reason, size_t reasonlen);
void reserver_catalog_free(struct reserver *rs);

/* Make sure warehouse's stock is in Redis (load it from PostgreSQL once). */
int reserver_ensure_stock(struct reserver *rs, const char *warehouse_id,
                          char *err, size_t errlen);
/* Forget the cached `loaded` markers (at exit). */
void reserver_loaded_free(struct reserver *rs);

/* The warehouse is no longer known loaded (its shard refused). */
void reserver_loaded_forget(struct reserver *rs, const char *warehouse_id);

/* The expiry clock (runner tick). */
int reserver_tick(void *app, linli_emit_t *emit, int64_t now_ms);

/* Redis helper: run a command given as argv, ignore the reply; 0 or error. */
int reserver_redis_simple(struct reserver *rs, int argc, const char **argv,
                          const size_t *lens);

#endif
