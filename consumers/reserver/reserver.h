/*
 * reserver.h - linli-reserver: turns orders into stock reservations.
 *
 * Consumes linli.orders.v1 (OrderPlaced / OrderPaid / OrderCancelled /
 * OrderExpired), linli.inventory.v1 (StockAdjusted) and linli.catalog.v1
 * (Sku listed/delisted). Every stock effect is one Lua script on the
 * warehouse's Redis shard, behind the offset high-water mark; results go to
 * linli.reservations.v1, paid orders to linli.fulfillment.v1, refunds owed
 * to linli.refunds.v1, all in the runner's Kafka transaction. Its clock
 * writes OrderExpired into the order's own partition when a reservation's
 * payment deadline passes.
 */
#ifndef RESERVER_H
#define RESERVER_H

#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "linli/config.h"
#include "linli/kafka.h"
#include "linli/pg.h"
#include "linli/redis.h"

#define RESERVER_TOPIC_ORDERS "linli.orders.v1"
#define RESERVER_TOPIC_INVENTORY "linli.inventory.v1"
#define RESERVER_TOPIC_CATALOG "linli.catalog.v1"
#define RESERVER_TOPIC_RESERVATIONS "linli.reservations.v1"
#define RESERVER_TOPIC_FULFILLMENT "linli.fulfillment.v1"
#define RESERVER_TOPIC_REFUNDS "linli.refunds.v1"

/* Global keys (no shard): catalog, order -> warehouse index, expiry index. */
#define RESERVER_KEY_CATALOG "linli:catalog"
#define RESERVER_KEY_ORDER_WH "linli:rsv:ow:"   /* + order_id */
#define RESERVER_KEY_EXPIRY "linli:rsv:exp:"    /* + orders partition */

#define RESERVER_MAX_PARTITIONS 1024
#define RESERVER_FINISHED_TTL_S "2592000" /* 30 days */
/* The order -> warehouse index outlives every order record it points to
 * (a paid order's record is kept 30 days from its payment). */
#define RESERVER_INDEX_TTL_S "7776000" /* 90 days */

struct reserver {
  const linli_config_t *cfg;
  linli_redis_t *redis;
  linli_pg_t *pg; /* NULL until needed (loading a warehouse's stock) */
  linli_redis_script_t *place, *pay, *release, *adjust, *load;
  int64_t payment_timeout_ms;
  int max_lines;
  /* orders partitions this instance owns (for the expiry clock) */
  unsigned char owned[RESERVER_MAX_PARTITIONS];
  /* Warehouses whose `loaded` marker this process has seen, so that an
   * order costs no EXISTS round trip. Safe because every stock script
   * checks the marker itself (see scripts.h) and a miss reloads. */
  char **loaded;
  size_t nloaded, loaded_cap;
};

/* One command of a pipeline (argv form; lens may be NULL). */
struct reserver_cmd {
  int argc;
  const char **argv;
  const size_t *lens;
};

/* Handlers for one decoded input; same contract as the runner's handle(). */
int reserver_handle_order(struct reserver *rs, const rd_kafka_message_t *m,
                          linli_emit_t *emit, char *reason, size_t reasonlen);
int reserver_handle_inventory(struct reserver *rs, const rd_kafka_message_t *m,
                              linli_emit_t *emit, char *reason,
                              size_t reasonlen);
int reserver_handle_catalog(struct reserver *rs, const rd_kafka_message_t *m,
                            char *reason, size_t reasonlen);

/* Make sure warehouse's stock is in Redis (load it from PostgreSQL once). */
int reserver_ensure_stock(struct reserver *rs, const char *warehouse_id,
                          char *err, size_t errlen);
/* Forget the cached `loaded` markers (at exit). */
void reserver_loaded_free(struct reserver *rs);

/* linli_redis_eval_hwm for an effect on warehouse wh's stock: appends the
 * `loaded` key to keys and, if the script finds the stock gone from Redis,
 * loads it and runs the script once more. Same results as eval_hwm. */
int reserver_effect(struct reserver *rs, linli_redis_script_t *script,
                    const char *wh, const rd_kafka_message_t *m, int nkeys,
                    const char **keys, int nargs, const char **args,
                    const size_t *lens, int *replayed, char **outcome,
                    size_t *outlen, char *err, size_t errlen);

/* The expiry clock (runner tick). */
int reserver_tick(void *app, linli_emit_t *emit, int64_t now_ms);

/* Expiry index maintenance after an outcome. */
void reserver_expiry_add(struct reserver *rs, int32_t partition,
                         const char *order_id, int64_t expires_at_ms);
void reserver_expiry_remove(struct reserver *rs, int32_t partition,
                            const char *order_id);

/* Redis helper: run a command given as argv, ignore the reply; 0 or error. */
int reserver_redis_simple(struct reserver *rs, int argc, const char **argv,
                          const size_t *lens);

/* Send n commands in one write and read their n replies (one round trip;
 * Redis applies them in one event-loop turn, so writes share one fsync).
 * Only for commands that are safe to send twice: after a lost connection
 * it reconnects and sends them all again once. On LINLI_OK replies[0..n-1]
 * are owned by the caller (freeReplyObject); else none is set. */
int reserver_redis_pipeline(struct reserver *rs, int n,
                            const struct reserver_cmd *cmds,
                            redisReply **replies);

#endif
