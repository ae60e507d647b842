/*
 * reservations.h - what every reader of linli.reservations.v1 requires of a
 * ReservationResult (the reserver's verdicts): the ledger records it, the
 * notifier tells residents about it, and both refuse the same records with
 * the same reasons.
 */
#ifndef DOMAIN_RESERVATIONS_H
#define DOMAIN_RESERVATIONS_H

#include "domain/check.h"
#include "reservations.pb-c.h"

/* A ReservationResult: an order id; a status; a warehouse id, except on a
 * payment's rejection (the payment may name an order the reserver never
 * saw); user, app and campaign ids when present; COMMITTED with a payment
 * transaction and a positive amount; expires_at_ms in 0..DOM_MAX_TIME_MS,
 * total_fen and amount_fen in 0..DOM_MAX_ORDER_FEN; the lines it echoes
 * as dom_order_check_lines judges an order's (at most DOM_ORDER_MAX_LINES);
 * each shortage's SKU an id. Fields are named as in the .proto ("shortages[0].sku_id"). Returns
 * the number of problems reported (0: good). */
int dom_reservation_check_result(const Linli__ReservationResult *r,
                                 dom_err_fn err, void *arg);

/* A record of linli.reservations.v1: a ReservationResult is judged by
 * dom_reservation_check_result, its fields named from the envelope
 * ("reservation_result.order_id"); other members pass. */
int dom_reservation_event_check(const Linli__ReservationEvent *e,
                                dom_err_fn err, void *arg);

#endif
