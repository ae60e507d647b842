/*
 * main.c - linli-router's process: config, reference data, the Redis
 * script, and the runner that feeds linli.fulfillment.v1 to the batch
 * handler.
 *
 * Usage: linli-router [--config FILE]
 * Run one instance per share of partitions; give each instance on a host
 * its own runner.instance_id (LINLI_RUNNER_INSTANCE_ID).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "linli/error.h"
#include "linli/log.h"
#include "linli/process.h"
#include "domain/schema.h"
#include "router.h"
#include "settings.h"

/* Read and validate the reference data file ("path:line: reason"). */
static int load_reference(const char *path, struct dom_ref *ref, char *err,
                          size_t errlen) {
  FILE *f = fopen(path, "r");
  if (!f) {
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    return LINLI_ERR_CONFIG;
  }
  size_t cap = 4096, n = 0;
  char *text = malloc(cap);
  int rc = LINLI_OK;
  while (text) {
    size_t got = fread(text + n, 1, cap - n - 1, f);
    n += got;
    if (n < cap - 1)
      break;
    char *nt = realloc(text, cap * 2);
    if (!nt) {
      free(text);
      text = NULL;
      break;
    }
    text = nt;
    cap *= 2;
  }
  if (ferror(f) || !text) {
    snprintf(err, errlen, "%s: cannot read", path);
    rc = LINLI_ERR_CONFIG;
  }
  fclose(f);
  if (rc == LINLI_OK) {
    text[n] = '\0';
    if (strlen(text) != n) {
      snprintf(err, errlen, "%s: holds a NUL byte", path);
      rc = LINLI_ERR_CONFIG;
    } else {
      rc = dom_ref_parse(text, path, ref, err, errlen);
    }
  }
  free(text);
  return rc;
}

static void metrics(struct router *rt) {
  rt->m_unassigned = linli_metrics_counter(
      "linli_router_unassigned_orders_total", NULL,
      "orders a wave could not place (see WavePlanned for why)");
  rt->m_routes = linli_metrics_counter("linli_router_routes_total", NULL,
                                       "RouteBatch events written");
  rt->m_waves = linli_metrics_counter("linli_router_waves_total", NULL,
                                      "waves planned");
  rt->m_skipped = linli_metrics_counter(
      "linli_router_skipped_total", NULL,
      "input for warehouses absent from the reference data, skipped");
  rt->m_dups = linli_metrics_counter(
      "linli_router_duplicate_items_total", NULL,
      "FulfillmentItems for an order already in the open wave");
}

int main(int argc, char **argv) {
  linli_config_t *cfg = NULL;
  router_settings_register();
  if (linli_process_main(argc, argv, "router", &cfg) != LINLI_OK)
    return 2;

  struct router rt = {.cfg = cfg, .owned.topic = LINLI_TOPIC_FULFILLMENT};
  rt.retention_s = linli_config_int(cfg, "router.retention_s");
  rt.close_retry_ms = linli_config_int(cfg, "router.close_retry_ms");
  rt.express_delay_ms = linli_config_int(cfg, "router.express_depart_s") * 1000;
  rt.speed_kmh = (int32_t)linli_config_int(cfg, "router.speed_kmh");
  rt.stop_service_ms = linli_config_int(cfg, "router.stop_service_s") * 1000;
  rt.order_service_ms = linli_config_int(cfg, "router.order_service_s") * 1000;
  rt.default_item_g = linli_config_int(cfg, "router.default_item_weight_g");
  rt.skip_unknown = linli_config_bool(cfg, "router.skip_unknown_warehouses");
  metrics(&rt);
  char err[1024] = "";
  int rc = load_reference(linli_config_str(cfg, "router.reference_file"),
                          &rt.ref, err, sizeof err);
  if (rc != LINLI_OK) {
    LINLI_ERROR("bad reference data", "reason=\"%s\"", err);
    linli_process_exit(cfg);
    return 2;
  }
  LINLI_INFO("reference data loaded", "warehouses=%zu pickup_points=%zu "
             "vehicles=%zu", rt.ref.nwh, rt.ref.npp, rt.ref.nveh);
  rc = linli_redis_start_batch(cfg, "route", DOM_WAVE_LUA, &rt.redis,
                               &rt.script);
  if (rc != LINLI_OK)
    goto out;

  const char *topics[] = {LINLI_TOPIC_FULFILLMENT, NULL};
  linli_runner_spec_t spec = {
      .name = "router",
      .topics = topics,
      .app = &rt,
      .handle_batch = router_handle_batch,
      .tick = router_tick,
      .owned = &rt.owned,
  };
  rc = linli_runner_main(cfg, &spec);
out:
  linli_redis_free(rt.redis);
  dom_ref_free(&rt.ref);
  linli_process_exit(cfg);
  return rc == LINLI_OK ? 0 : 1;
}
