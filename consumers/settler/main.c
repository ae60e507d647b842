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

#include "linli/error.h"
#include "linli/log.h"
#include "linli/process.h"
#include "domain/schema.h"
#include "settler.h"
#include "settings.h"

int main(int argc, char **argv) {
  linli_config_t *cfg = NULL;
  settler_settings_register();
  if (linli_process_main(argc, argv, "settler", &cfg) != LINLI_OK)
    return 2;

  struct settler st = {.cfg = cfg, .owned.topic = LINLI_TOPIC_GROUPBUY};
  st.retention_s = linli_config_int(cfg, "groupbuy.retention_s");
  st.deadline_retry_ms = linli_config_int(cfg, "groupbuy.deadline_retry_ms");
  int rc = linli_redis_start_batch(cfg, "settle", DOM_GB_LUA, &st.redis,
                                   &st.script);
  if (rc != LINLI_OK)
    goto out;

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
