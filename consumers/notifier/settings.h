/*
 * settings.h - linli-notifier's own configuration keys ([notifier]), and the
 * call that makes them known before the file is read.
 */
#ifndef LINLI_NOTIFIER_SETTINGS_H
#define LINLI_NOTIFIER_SETTINGS_H

#include "linli/config.h"

extern const linli_settings_t notifier_settings;

/* Register every table linli-notifier reads (its own). Call before
 * linli_process_start(). */
void notifier_settings_register(void);

#endif
