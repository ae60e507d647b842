/*
 * reservations_check.c - see domain/reservations.h.
 */
#include "domain/reservations.h"

#include <stdio.h>

#include "domain/order_state.h"
#include "domain/orders.h"

static int present(const char *s) { return s != NULL && s[0] != '\0'; }

int dom_reservation_check_result(const Linli__ReservationResult *r,
                                 dom_err_fn err, void *arg) {
  if (r == NULL)
    return dom_report("reservation_result", "required", err, arg);
  int bad = dom_check_id("order_id", r->order_id, err, arg);
  if (r->status == LINLI__RESERVATION_RESULT__STATUS__STATUS_UNSPECIFIED)
    bad += dom_report("status", "RESERVED, REJECTED, RELEASED or COMMITTED",
                      err, arg);
  int payment = r->status == LINLI__RESERVATION_RESULT__STATUS__REJECTED &&
                dom_order_is_payment_reason(r->reason);
  bad += payment ? dom_check_opt_id("warehouse_id", r->warehouse_id, err, arg)
                 : dom_check_id("warehouse_id", r->warehouse_id, err, arg);
  bad += dom_check_opt_id("user_id", r->user_id, err, arg);
  bad += dom_check_opt_id("app_id", r->app_id, err, arg);
  bad += dom_check_opt_id("campaign_id", r->campaign_id, err, arg);
  if (r->status == LINLI__RESERVATION_RESULT__STATUS__COMMITTED &&
      (!present(r->payment_txn_id) || r->amount_fen <= 0))
    bad += dom_report(
        "payment_txn_id",
        "COMMITTED needs payment_txn_id and a positive amount_fen", err, arg);
  bad += dom_check_opt_id("payment_txn_id", r->payment_txn_id, err, arg);
  bad += dom_check_range("expires_at_ms", r->expires_at_ms, 0,
                         DOM_MAX_TIME_MS, err, arg);
  bad += dom_check_range("total_fen", r->total_fen, 0, DOM_MAX_ORDER_FEN, err,
                         arg);
  bad += dom_check_range("amount_fen", r->amount_fen, 0, DOM_MAX_ORDER_FEN,
                         err, arg);
  bad += dom_order_check_lines(r->lines, r->n_lines, DOM_ORDER_MAX_LINES, err,
                                arg);
  for (size_t i = 0; i < r->n_shortages; i++) {
    char field[48];
    snprintf(field, sizeof field, "shortages[%zu].sku_id", i);
    bad += r->shortages[i] == NULL
               ? dom_report(field, "required", err, arg)
               : dom_check_id(field, r->shortages[i]->sku_id, err, arg);
  }
  return bad;
}

int dom_reservation_event_check(const Linli__ReservationEvent *e,
                                dom_err_fn err, void *arg) {
  if (e == NULL)
    return dom_report("event", "required", err, arg);
  if (e->event_case != LINLI__RESERVATION_EVENT__EVENT_RESERVATION_RESULT)
    return 0;
  struct dom_prefix px = {"reservation_result", err, arg};
  return dom_reservation_check_result(e->reservation_result,
                                      err ? dom_prefixed : NULL, &px);
}
