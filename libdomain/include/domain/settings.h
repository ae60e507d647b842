/*
 * settings.h - the [orders] keys: rules about an order that the gateway, the
 * reserver and the ledger all apply (lines per order, payment window), so
 * that what one accepts no other refuses. Each of those programs registers
 * this table with its own.
 */
#ifndef LINLI_DOMAIN_SETTINGS_H
#define LINLI_DOMAIN_SETTINGS_H

#include "linli/config.h"

extern const linli_settings_t domain_settings_orders;

#endif
