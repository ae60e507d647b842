/*
 * main.c - linli-reserver's process: config, Redis scripts, and the runner
 * that feeds batches of orders, inventory and catalog records to batch.c.
 *
 * Usage: linli-reserver [--config FILE]
 * Run one instance per share of partitions; give each instance on a host
 * its own runner.instance_id (LINLI_RUNNER_INSTANCE_ID).
 */
#include <stdio.h>
#include <string.h>

#include "linli/error.h"
#include "linli/log.h"
#include "linli/process.h"
#include "reserver.h"
#include "scripts.h"
#include "settings.h"

int main(int argc, char **argv) {
  linli_config_t *cfg = NULL;
  reserver_settings_register();
  if (linli_process_main(argc, argv, "reserver", &cfg) != LINLI_OK)
    return 2;

  struct reserver rs = {.cfg = cfg, .owned.topic = LINLI_TOPIC_ORDERS};
  rs.payment_timeout_ms =
      linli_config_int(cfg, "orders.payment_timeout_s") * 1000;
  rs.max_lines = (int)linli_config_int(cfg, "orders.max_lines");
  snprintf(rs.retention_s, sizeof rs.retention_s, "%lld",
           (long long)linli_config_int(cfg, "orders.retention_s"));
  int rc = linli_redis_start_batch(cfg, "stock", RESERVER_LUA_STOCK,
                                   &rs.redis, &rs.stock);
  if (rc == LINLI_OK) {
    rc = linli_redis_script_register(rs.redis, "load", RESERVER_LUA_LOAD,
                                     &rs.load);
    if (rc != LINLI_OK)
      LINLI_ERROR("redis start-up failed", "reason=\"load script\"");
  }
  if (rc != LINLI_OK)
    goto out;

  const char *topics[] = {LINLI_TOPIC_CATALOG, LINLI_TOPIC_INVENTORY,
                          LINLI_TOPIC_ORDERS, LINLI_TOPIC_SETTLEMENTS, NULL};
  linli_runner_spec_t spec = {
      .name = "reserver",
      .topics = topics,
      .app = &rs,
      .handle_batch = reserver_handle_batch,
      .tick = reserver_tick,
      .owned = &rs.owned,
  };
  rc = linli_runner_main(cfg, &spec);
out:
  reserver_batch_free(&rs);
  reserver_catalog_free(&rs);
  reserver_loaded_free(&rs);
  linli_redis_free(rs.redis);
  linli_pg_free(rs.pg);
  linli_process_exit(cfg);
  return rc == LINLI_OK ? 0 : 1;
}
