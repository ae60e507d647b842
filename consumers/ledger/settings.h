/*
 * settings.h - linli-ledger's own configuration keys ([crypto], [ledger]), and
 * the call that makes them known before the file is read.
 */
#ifndef LINLI_LEDGER_SETTINGS_H
#define LINLI_LEDGER_SETTINGS_H

#include "linli/config.h"

extern const linli_settings_t ledger_settings;

/* Register every table linli-ledger reads (its own, libdomain's [orders]).
 * Call before linli_process_start(). */
void ledger_settings_register(void);

#endif
