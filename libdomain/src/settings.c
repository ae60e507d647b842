/*
 * settings.c - the [orders] table (see domain/settings.h).
 */
#include "domain/settings.h"

static const linli_setting_t ORDERS_KEYS[] = {
    {"orders.payment_timeout_s", LINLI_SETTING_INT, "900", 1, 86400, 0, NULL,
     "seconds an order may stay unpaid before it expires"},
    {"orders.max_lines", LINLI_SETTING_INT, "100", 1, 10000, 0, NULL,
     "most lines one order may hold; a larger OrderPlaced is rejected"},
    {"orders.retention_s", LINLI_SETTING_INT, "604800", 1, 31536000, 0, NULL,
     "seconds the reserver keeps an order's Redis state (and its index "
     "entry) after the order reached a final state"},
};

const linli_settings_t domain_settings_orders = {
    "libdomain [orders]", ORDERS_KEYS,
    sizeof(ORDERS_KEYS) / sizeof(ORDERS_KEYS[0])};
