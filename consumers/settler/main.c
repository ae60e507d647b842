/*
 * main.c - linli-settler's process: config, the Redis script, and the
 * runner that feeds linli.groupbuy.v1 to the batch handler.
 *
 * Usage: linli-settler [--config FILE]
 * Run one instance per share of partitions; give each instance on a host
 * its own runner.instance_id (LINLI_RUNNER_INSTANCE_ID).
 */
#include <stdio.h>
#include <string.h>

#include "linli/args.h"
#include "linli/error.h"
#include "linli/log.h"
#include "linli/process.h"
#include "domain/schema.h"
#include "settler.h"

int main(int argc, char **argv) {
  const char *config_path = NULL;
  const linli_arg_t opts[] = {{"--config", &config_path, NULL},
                              {NULL, NULL, NULL}};
  if (linli_args_parse(argc, argv, opts, "linli-settler [--config FILE]") != LINLI_OK)
    return 2;
  linli_config_t *cfg = NULL;
  if (linli_process_start("settler", config_path, &cfg) != LINLI_OK)
    return 2;

  struct settler st;
  memset(&st, 0, sizeof st);
  st.cfg = cfg;
  st.owned.topic = LINLI_TOPIC_GROUPBUY;
  st.retention_s = linli_config_int(cfg, "groupbuy.retention_s");
  st.deadline_retry_ms = linli_config_int(cfg, "groupbuy.deadline_retry_ms");
  char err[1024] = "script registration failed";
  int rc = linli_redis_connect_config(cfg, &st.redis, err, sizeof err);
  if (rc == LINLI_OK)
    rc = linli_redis_script_batch(st.redis, "settle", DOM_GB_LUA, &st.script);
  if (rc != LINLI_OK) {
    LINLI_ERROR("redis start-up failed", "reason=\"%s\"", err);
    goto out;
  }

  const char *topics[] = {LINLI_TOPIC_GROUPBUY, NULL};
  linli_runner_spec_t spec = {
      .name = "settler",
      .topics = topics,
      .app = &st,
      .handle_batch = settler_handle_batch,
      .tick = settler_tick,
      .owned = &st.owned,
  };
  rc = linli_runner_main(cfg, &spec);
out:
  linli_redis_free(st.redis);
  linli_process_exit(cfg);
  return rc == LINLI_OK ? 0 : 1;
}
