/*
 * settings.h - the configuration linli-reserver reads besides libcommon's:
 * libdomain's [orders] (payment window, lines per order, and how long an ended
 * order's hot state stays). It owns no section of its own yet; a reserver-only
 * key would get a table here.
 */
#ifndef LINLI_RESERVER_SETTINGS_H
#define LINLI_RESERVER_SETTINGS_H

#include "linli/config.h"

/* Register every table linli-reserver reads. Call before
 * linli_process_start(). */
void reserver_settings_register(void);

#endif
