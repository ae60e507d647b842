/*
 * settings.c - the keys linli-router owns ([router]): defaults, bounds and
 * checks. libcommon holds only the domain-free keys; docs/config.md lists
 * these too, and linli-settings check-docs (a ctest) keeps it in sync.
 */
#include "settings.h"

static const linli_setting_t KEYS[] = {
    {"router.reference_file", LINLI_SETTING_STR,
     "config/router-reference.conf", 0, 0, 0, linli_setting_check_nonempty,
     "linli-router's reference data: warehouses with their wave schedule, "
     "pickup points, vehicles (docs/delivery.md)"},
    {"router.speed_kmh", LINLI_SETTING_INT, "25", 1, 200, 0, NULL,
     "average driving speed linli-router plans ETAs with, km/h"},
    {"router.stop_service_s", LINLI_SETTING_INT, "180", 0, 3600, 0, NULL,
     "seconds a vehicle spends at each stop (parking, walking)"},
    {"router.order_service_s", LINLI_SETTING_INT, "20", 0, 600, 0, NULL,
     "extra seconds per order handed over at a stop"},
    {"router.default_item_weight_g", LINLI_SETTING_INT,
     "500", 0, 1000000, 0, NULL,
     "grams per item when a FulfillmentItem carries no weight_g"},
    {"router.express_depart_s", LINLI_SETTING_INT, "600", 0, 86400, 0, NULL,
     "an express wave's vehicles leave this long after its cutoff"},
    {"router.retention_s", LINLI_SETTING_INT, "172800", 60, 31536000, 0, NULL,
     "seconds a warehouse's wave state stays in Redis after its last write"},
    {"router.close_retry_ms", LINLI_SETTING_INT, "30000", 100, 3600000, 0, NULL,
     "linli-router writes a wave's WaveClosed again if it was not processed "
     "after this long"},
    {"router.skip_unknown_warehouses", LINLI_SETTING_BOOL,
     "false", 0, 1, 0, NULL,
     "skip (log, count) input for warehouses absent from the reference data "
     "instead of sending it to the DLQ (another router serves them)"},
};

const linli_settings_t router_settings = {"linli-router", KEYS,
                                          sizeof(KEYS) / sizeof(KEYS[0])};

void router_settings_register(void) {
  linli_config_register(&router_settings);
}
