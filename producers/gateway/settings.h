/*
 * settings.h - linli-gateway's own configuration keys ([gateway]), and the
 * call that makes them known before the file is read.
 */
#ifndef LINLI_GATEWAY_SETTINGS_H
#define LINLI_GATEWAY_SETTINGS_H

#include "linli/config.h"

extern const linli_settings_t gateway_settings;

/* Register every table linli-gateway reads (its own, libdomain's [orders]).
 * Call before linli_process_start(). */
void gateway_settings_register(void);

#endif
