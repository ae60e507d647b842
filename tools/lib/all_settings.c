/*
 * all_settings.c - the list of every program's settings table
 * (all_settings.h).
 */
#include "all_settings.h"

#include "consumers/ledger/settings.h"
#include "consumers/notifier/settings.h"
#include "consumers/router/settings.h"
#include "consumers/settler/settings.h"
#include "domain/settings.h"
#include "producers/gateway/settings.h"

static const linli_settings_t *const TABLES[] = {
    &linli_settings_common, &domain_settings_orders, &gateway_settings,
    &ledger_settings,       &settler_settings,       &router_settings,
    &notifier_settings,
};

const linli_settings_t *const *all_settings(size_t *n) {
  *n = sizeof TABLES / sizeof TABLES[0];
  return TABLES;
}

void all_settings_register(void) {
  size_t n = 0;
  const linli_settings_t *const *t = all_settings(&n);
  for (size_t i = 1; i < n; i++) /* [0] is libcommon's: always in */
    linli_config_register(t[i]);
}
