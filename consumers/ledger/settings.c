/*
 * settings.c - the keys linli-ledger owns ([crypto], [ledger]): defaults,
 * bounds and checks. libcommon holds only the domain-free keys; docs/config.md
 * lists these too, and linli-settings check-docs (a ctest) keeps it in sync.
 */
#include "settings.h"

#include "domain/settings.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

/* crypto.key: empty, or 32 bytes as 64 hex characters. The reason never
 * echoes the value: it is a secret. */
static int check_hex_key(const char *v, char *why, size_t whylen) {
  size_t n = strlen(v);
  if (n == 0)
    return 0;
  if (n != 64) {
    snprintf(why, whylen, "must be 64 hex characters (got %zu characters)", n);
    return -1;
  }
  for (size_t i = 0; i < n; i++) {
    if (!isxdigit((unsigned char)v[i])) {
      snprintf(why, whylen, "must be 64 hex characters (bad character at %zu)",
               i + 1);
      return -1;
    }
  }
  return 0;
}

static const linli_setting_t KEYS[] = {
    {"crypto.key", LINLI_SETTING_STR, "", 0, 0, 0, check_hex_key,
     "key for personal data at rest: 64 hex characters (32 bytes); empty "
     "disables encryption-dependent features"},
    {"ledger.topic_suffix", LINLI_SETTING_STR,
     "", 0, 0, 0, linli_setting_check_topic_suffix,
     "appended to every topic name the ledger reads and writes (isolated "
     "test topics); empty in production"},
};

const linli_settings_t ledger_settings = {"linli-ledger", KEYS,
                                          sizeof(KEYS) / sizeof(KEYS[0])};

void ledger_settings_register(void) {
  linli_config_register(&domain_settings_orders);
  linli_config_register(&ledger_settings);
}
