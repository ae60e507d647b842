/*
 * settings.h - linli-settler's own configuration keys ([groupbuy]), and the
 * call that makes them known before the file is read.
 */
#ifndef LINLI_SETTLER_SETTINGS_H
#define LINLI_SETTLER_SETTINGS_H

#include "linli/config.h"

extern const linli_settings_t settler_settings;

/* Register every table linli-settler reads (its own). Call before
 * linli_process_start(). */
void settler_settings_register(void);

#endif
