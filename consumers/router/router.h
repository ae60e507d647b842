/*
 * router.h - linli-router: delivery waves, routes and sorting lists.
 *
 * Consumes linli.fulfillment.v1 (keyed by warehouse, so one warehouse's
 * items and wave closes arrive in order in one partition). Each batch is
 * decoded and validated in memory, then applied with one batch HWM script
 * per warehouse ({r:<warehouse>}), all warehouses in one Redis round trip:
 * an item joins its warehouse's open daily or express wave; a WaveClosed
 * hands the wave's items back as its outcome and empties the wave. The
 * routes are computed in C from that outcome (libdomain's route.h), so a
 * redelivered or replayed WaveClosed recomputes the same routes: RouteBatch
 * per route, SortingList per pickup point and WavePlanned (with every order
 * left out, and why) on linli.routes.v1, in the runner's transaction. The
 * router's clock writes WaveClosed into the warehouse's own partition at
 * each cutoff (DESIGN.md, decisions are events).
 */
#ifndef ROUTER_H
#define ROUTER_H

#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "domain/wave.h"
#include "fulfillment.pb-c.h"
#include "linli/config.h"
#include "linli/kafka.h"
#include "linli/metrics.h"
#include "linli/redis.h"

struct router {
  const linli_config_t *cfg;
  linli_redis_t *redis;
  linli_redis_script_t *script;
  struct dom_ref ref;
  int64_t retention_s;
  int64_t close_retry_ms;
  int64_t express_delay_ms;
  int32_t speed_kmh;
  int64_t stop_service_ms, order_service_ms;
  int64_t default_item_g;
  int skip_unknown;
  linli_counter_t *m_unassigned, *m_routes, *m_waves, *m_skipped, *m_dups;
  linli_owned_t owned; /* fulfillment partitions (the runner keeps it) */
};

/* The runner's batch handler. */
int router_handle_batch(void *app, linli_batch_t *batch, linli_emit_t *emit,
                        char *reason, size_t reasonlen);

/* Route a closed wave and write its outputs (ev is the WaveClosed event).
 * LINLI_OK or an error that retries the batch. */
int router_plan_wave(struct router *rt, linli_emit_t *emit,
                     const Linli__FulfillmentEvent *ev,
                     const struct dom_ref_warehouse *w, char kind,
                     const struct dom_wave_outcome *wave, char *reason,
                     size_t reasonlen);

/* The clock (runner tick): WaveClosed for every due wave of the warehouses
 * in the partitions this instance owns. */
int router_tick(void *app, linli_emit_t *emit, int64_t now_ms);

#endif
