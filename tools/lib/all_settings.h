/*
 * all_settings.h - every program's settings table in one list: the one
 * place that knows them all, for what checks them together (linli-settings
 * list/check/check-docs, test_config, fuzz_config). A new program adds its
 * table in all_settings.c only.
 */
#ifndef LINLI_ALL_SETTINGS_H
#define LINLI_ALL_SETTINGS_H

#include <stddef.h>

#include "linli/config.h"

/* The tables, libcommon's first; *n gets the count. */
const linli_settings_t *const *all_settings(size_t *n);

/* Register every table but libcommon's (always in), as if one process ran
 * every program. */
void all_settings_register(void);

#endif
