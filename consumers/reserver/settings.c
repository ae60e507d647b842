/*
 * settings.c - registers the tables linli-reserver reads (settings.h).
 */
#include "settings.h"

#include "domain/settings.h"

void reserver_settings_register(void) {
  linli_config_register(&domain_settings_orders);
}
