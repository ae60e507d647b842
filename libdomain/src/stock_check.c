/*
 * stock_check.c - the catalog's and the inventory's rules (see stock.h).
 */
#include "domain/stock.h"

#include "domain/orders.h"

int dom_stock_check_sku(const Linli__Sku *s, dom_err_fn err, void *arg) {
  static const int classes[] = {LINLI__STORAGE_CLASS__AMBIENT,
                                LINLI__STORAGE_CLASS__CHILLED,
                                LINLI__STORAGE_CLASS__FROZEN};
  static const int statuses[] = {LINLI__SKU__STATUS__LISTED,
                                 LINLI__SKU__STATUS__DELISTED};
  if (!s)
    return dom_report("sku", "required", err, arg);
  int bad = dom_check_id("sku_id", s->sku_id, err, arg);
  bad += dom_check_req_label("name", s->name, DOM_TEXT_SHORT, err, arg);
  bad += dom_check_label("category", s->category, DOM_TEXT_SHORT, err, arg);
  bad += dom_check_enum("storage_class", (int)s->storage_class, classes, 3,
                        "AMBIENT, CHILLED or FROZEN", err, arg);
  bad += dom_check_range("weight_g", s->weight_g, 1, DOM_MAX_UNIT_WEIGHT_G,
                         err, arg);
  bad += dom_check_range("list_price_fen", s->list_price_fen, 0,
                         DOM_MAX_PRICE_FEN, err, arg);
  bad += dom_check_label("origin", s->origin, DOM_TEXT_SHORT, err, arg);
  bad += dom_check_enum("status", (int)s->status, statuses, 2,
                        "LISTED or DELISTED", err, arg);
  return bad;
}

int dom_stock_check_adjusted(const Linli__StockAdjusted *a, dom_err_fn err,
                             void *arg) {
  static const int reasons[] = {LINLI__STOCK_ADJUSTED__REASON__RESTOCK,
                                LINLI__STOCK_ADJUSTED__REASON__DAMAGE,
                                LINLI__STOCK_ADJUSTED__REASON__RECALL,
                                LINLI__STOCK_ADJUSTED__REASON__COUNT};
  if (!a)
    return dom_report("stock_adjusted", "required", err, arg);
  int bad = dom_check_id("adjustment_id", a->adjustment_id, err, arg);
  bad += dom_check_id("warehouse_id", a->warehouse_id, err, arg);
  bad += dom_check_id("sku_id", a->sku_id, err, arg);
  int reason_bad = dom_check_enum("reason", (int)a->reason, reasons, 4,
                                  "RESTOCK, DAMAGE, RECALL or COUNT", err,
                                  arg);
  bad += reason_bad;
  if (a->quantity == 0)
    bad += dom_report("quantity", "must not be 0", err, arg);
  else if (dom_check_range("quantity", a->quantity, -DOM_MAX_ADJUST,
                           DOM_MAX_ADJUST, err, arg))
    bad++;
  else if (!reason_bad &&
           a->reason == LINLI__STOCK_ADJUSTED__REASON__RESTOCK &&
           a->quantity < 0)
    bad += dom_report("quantity", "a RESTOCK must be positive", err, arg);
  else if (!reason_bad && a->reason != LINLI__STOCK_ADJUSTED__REASON__RESTOCK &&
           a->reason != LINLI__STOCK_ADJUSTED__REASON__COUNT && a->quantity > 0)
    bad +=
        dom_report("quantity", "DAMAGE and RECALL must be negative", err, arg);
  bad += dom_check_label("note", a->note, DOM_TEXT_LONG, err, arg);
  return bad;
}

int dom_catalog_event_check(const Linli__CatalogEvent *e, dom_err_fn err,
                            void *arg) {
  if (!e)
    return dom_report("event", "required", err, arg);
  int bad = dom_check_meta(e->meta, err, arg);
  if (e->event_case != LINLI__CATALOG_EVENT__EVENT_SKU)
    return bad + dom_report("event", "a CatalogEvent carries sku", err, arg);
  struct dom_prefix px = {"sku", err, arg};
  return bad + dom_stock_check_sku(e->sku, dom_prefixed, &px);
}

int dom_inventory_event_check(const Linli__InventoryEvent *e, dom_err_fn err,
                              void *arg) {
  if (!e)
    return dom_report("event", "required", err, arg);
  int bad = dom_check_meta(e->meta, err, arg);
  if (e->event_case != LINLI__INVENTORY_EVENT__EVENT_STOCK_ADJUSTED)
    return bad + dom_report("event", "an InventoryEvent carries stock_adjusted",
                            err, arg);
  struct dom_prefix px = {"stock_adjusted", err, arg};
  return bad + dom_stock_check_adjusted(e->stock_adjusted, dom_prefixed, &px);
}
