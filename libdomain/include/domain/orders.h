/*
 * orders.h - what makes an order event well-formed (linli.orders.v1:
 * OrderPlaced, OrderPaid, OrderCancelled, OrderExpired), in one home.
 *
 * The gateway answers 400 with the field and message these report, and the
 * reserver and the ledger send a record they refuse to the DLQ with the
 * same text ("order_placed.lines[3].quantity: must be between 1 and
 * 1000000, got 0"), because all three call these functions: what one
 * accepts, no other refuses. Pure functions, no I/O.
 */
#ifndef DOMAIN_ORDERS_H
#define DOMAIN_ORDERS_H

#include <stddef.h>
#include <stdint.h>

#include "domain/check.h"
#include "orders.pb-c.h"

/* The most lines an order may have whatever orders.max_lines says (the
 * configured bound is applied below it). */
#define DOM_ORDER_MAX_LINES 10000
/* An order's total and a payment: at most a billion yuan. */
#define DOM_MAX_ORDER_FEN DOM_MAX_PRICE_FEN
#define DOM_TEXT_SHORT 256 /* names, reasons, categories */
#define DOM_TEXT_LONG 1024 /* addresses, notes */

/* Each check calls err (may be NULL) once per problem and returns how many
 * it found (0 = valid). Fields are named relative to the message checked
 * ("lines[2].unit_price_fen", "home.phone"). max_lines is orders.max_lines
 * (clamped to DOM_ORDER_MAX_LINES).
 *
 * OrderPlaced: ids; 1..max_lines lines, each a SKU id, a quantity in
 * 1..DOM_MAX_QUANTITY (also per SKU when a SKU is listed twice: the
 * consumers merge such lines) and a unit price in 0..DOM_MAX_PRICE_FEN;
 * the order total in 0..DOM_MAX_ORDER_FEN; total_fen in the same range (0
 * = "use the lines"; whether it matches the lines is a business decision,
 * see dom_order_total); exactly one delivery: a pickup point id, or a home
 * address with name, phone, address and coordinates in range; times in
 * 0..DOM_MAX_TIME_MS. */
int dom_order_check_placed(const Linli__OrderPlaced *p, int max_lines,
                           dom_err_fn err, void *arg);
/* An order's lines, wherever they travel (OrderPlaced, a
 * ReservationResult's echo): at most max_lines of them, each a SKU id, a
 * quantity in 1..DOM_MAX_QUANTITY (also per SKU over the lines), a unit
 * price in 0..DOM_MAX_PRICE_FEN, and their total at most DOM_MAX_ORDER_FEN.
 * Fields "lines", "lines[i].quantity". Whether none is allowed is the
 * caller's. */
int dom_order_check_lines(Linli__OrderLine *const *lines, size_t n,
                          int max_lines, dom_err_fn err, void *arg);
/* OrderPaid: order and payment transaction ids, a known method, an amount
 * in 1..DOM_MAX_ORDER_FEN, paid_at_ms in 0..DOM_MAX_TIME_MS. */
int dom_order_check_paid(const Linli__OrderPaid *p, dom_err_fn err,
                         void *arg);
int dom_order_check_cancelled(const Linli__OrderCancelled *c, dom_err_fn err,
                              void *arg);
int dom_order_check_expired(const Linli__OrderExpired *x, dom_err_fn err,
                            void *arg);

/* A whole record of linli.orders.v1: its Meta (dom_check_meta) and the
 * event it carries, fields named from the envelope ("meta.event_id",
 * "order_paid.method"). */
int dom_order_event_check(const Linli__OrderEvent *e, int max_lines,
                          dom_err_fn err, void *arg);

/* Sum of quantity * unit_price_fen over the lines: LINLI_ERR_INVALID when
 * a line is out of range or the sum exceeds DOM_MAX_ORDER_FEN (never on an
 * order dom_order_check_placed accepts). */
int dom_order_total(const Linli__OrderPlaced *p, int64_t *total);

/* One SKU of an order's lines: its units over every line that lists it,
 * and the index of its first line (whose unit price it keeps). */
struct dom_sku_units {
  const char *sku; /* borrowed from the line */
  int64_t units;
  size_t first;
};

/* The n lines merged per SKU into out (room for n), in the order of their
 * first lines; *nout entries. Lines must have a SKU and a quantity (the
 * per-line rules hold); the caller bounds each entry's units (consumers
 * merge a SKU listed twice, DOM_MAX_QUANTITY applies to the sum). Linear
 * in n: LINLI_ERR_NOMEM is its only failure. */
int dom_order_lines_merge(Linli__OrderLine *const *lines, size_t n,
                          struct dom_sku_units *out, size_t *nout);

#endif
