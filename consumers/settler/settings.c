/*
 * settings.c - the keys linli-settler owns ([groupbuy]): defaults, bounds and
 * checks. libcommon holds only the domain-free keys; docs/config.md lists
 * these too, and linli-settings check-docs (a ctest) keeps it in sync.
 */
#include "settings.h"

static const linli_setting_t KEYS[] = {
    {"groupbuy.retention_s", LINLI_SETTING_INT, "604800", 1, 31536000, 0, NULL,
     "seconds an ended campaign's hot state stays in Redis (the settler)"},
    {"groupbuy.deadline_retry_ms", LINLI_SETTING_INT,
     "30000", 100, 3600000, 0, NULL,
     "the settler writes a campaign's CampaignDeadline again if it was not "
     "processed after this long"},
};

const linli_settings_t settler_settings = {"linli-settler", KEYS,
                                          sizeof(KEYS) / sizeof(KEYS[0])};

void settler_settings_register(void) {
  linli_config_register(&settler_settings);
}
