/*
 * stock.h - what makes a catalog record (linli.catalog.v1: Sku) and a
 * stock adjustment (linli.inventory.v1: StockAdjusted) well-formed, in one
 * home for the gateway, the reserver and the ledger (see orders.h for how
 * the field names and messages are shared). Pure functions, no I/O.
 */
#ifndef DOMAIN_STOCK_H
#define DOMAIN_STOCK_H

#include <stddef.h>
#include <stdint.h>

#include "catalog.pb-c.h"
#include "domain/check.h"
#include "inventory.pb-c.h"

/* The most units one adjustment moves either way. Far inside int32, so
 * that every adjustment has an opposite (its reversal), and sums of
 * adjustments in int64 never overflow. */
#define DOM_MAX_ADJUST INT64_C(1000000000)
/* One unit weighs at most a tonne. */
#define DOM_MAX_UNIT_WEIGHT_G 1000000

/* Each returns how many problems it found (0 = valid), calling err (may be
 * NULL) for each.
 *
 * Sku: sku_id; name required; name, category, origin at most 256 bytes of
 * UTF-8 without control characters; a known storage_class and status;
 * weight_g in 1..DOM_MAX_UNIT_WEIGHT_G; list_price_fen in
 * 0..DOM_MAX_PRICE_FEN. */
int dom_stock_check_sku(const Linli__Sku *s, dom_err_fn err, void *arg);
/* StockAdjusted: adjustment, warehouse and SKU ids; quantity non-zero and
 * within DOM_MAX_ADJUST either way; a known reason (a RESTOCK adds, DAMAGE
 * and RECALL remove, a COUNT goes either way); note at most 1024 bytes. */
int dom_stock_check_adjusted(const Linli__StockAdjusted *a, dom_err_fn err,
                             void *arg);

/* Whole records, Meta included, fields named from the envelope
 * ("sku.status", "stock_adjusted.quantity"). */
int dom_catalog_event_check(const Linli__CatalogEvent *e, dom_err_fn err,
                            void *arg);
int dom_inventory_event_check(const Linli__InventoryEvent *e, dom_err_fn err,
                              void *arg);

#endif
