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

static void track(struct reserver *rs,
                  const rd_kafka_topic_partition_list_t *parts, int owned) {
  for (int i = 0; i < parts->cnt; i++) {
    const rd_kafka_topic_partition_t *p = &parts->elems[i];
    if (strcmp(p->topic, RESERVER_TOPIC_ORDERS) == 0 && p->partition >= 0 &&
        p->partition < RESERVER_MAX_PARTITIONS)
      rs->owned[p->partition] = (unsigned char)owned;
  }
}

static void on_assign(void *app, const rd_kafka_topic_partition_list_t *p) {
  track(app, p, 1);
}

static void on_revoke(void *app, const rd_kafka_topic_partition_list_t *p) {
  track(app, p, 0);
}

static void usage(void) {
  fprintf(stderr, "usage: linli-reserver [--config FILE]\n");
}

int main(int argc, char **argv) {
  const char *config_path = NULL;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
      config_path = argv[++i];
    } else {
      usage();
      return 2;
    }
  }
  linli_config_t *cfg = NULL;
  if (linli_process_start("reserver", config_path, &cfg) != LINLI_OK)
    return 2;

  struct reserver rs;
  memset(&rs, 0, sizeof rs);
  rs.cfg = cfg;
  rs.payment_timeout_ms =
      linli_config_int(cfg, "orders.payment_timeout_s") * 1000;
  rs.max_lines = (int)linli_config_int(cfg, "orders.max_lines");
  snprintf(rs.retention_s, sizeof rs.retention_s, "%lld",
           (long long)linli_config_int(cfg, "orders.retention_s"));
  char err[1024] = "script registration failed";
  int rc = linli_redis_connect_config(cfg, &rs.redis, err, sizeof err);
  if (rc == LINLI_OK)
    rc = linli_redis_script_batch(rs.redis, "stock", RESERVER_LUA_STOCK,
                                  &rs.stock);
  if (rc == LINLI_OK)
    rc = linli_redis_script_register(rs.redis, "load", RESERVER_LUA_LOAD,
                                     &rs.load);
  if (rc != LINLI_OK) {
    LINLI_ERROR("redis start-up failed", "reason=\"%s\"", err);
    goto out;
  }

  const char *topics[] = {RESERVER_TOPIC_CATALOG, RESERVER_TOPIC_INVENTORY,
                          RESERVER_TOPIC_ORDERS, RESERVER_TOPIC_SETTLEMENTS,
                          NULL};
  linli_runner_spec_t spec = {
      .name = "reserver",
      .topics = topics,
      .app = &rs,
      .handle_batch = reserver_handle_batch,
      .tick = reserver_tick,
      .on_assign = on_assign,
      .on_revoke = on_revoke,
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
