/*
 * settings.h - linli-router's own configuration keys ([router]), and the call
 * that makes them known before the file is read.
 */
#ifndef LINLI_ROUTER_SETTINGS_H
#define LINLI_ROUTER_SETTINGS_H

#include "linli/config.h"

extern const linli_settings_t router_settings;

/* Register every table linli-router reads (its own). Call before
 * linli_process_start(). */
void router_settings_register(void);

#endif
