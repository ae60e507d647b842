/*
 * order_state.h - the order state machine of DESIGN.md, one copy for the
 * ledger (which records it in PostgreSQL) and the audit (which folds it
 * from the log and compares): the same events in the same order give the
 * same state in both.
 *
 * States are the OrderStatus.State numbers (order_status.proto), so a state
 * goes to linli.order-status.v1 as is. Events are what a record means for
 * its order (dom_order_event_of_*), whatever topic carried it. Pure: no I/O.
 *
 * The events of one order come from several topics (OrderPlaced from
 * linli.orders.v1, ReservationResult from linli.reservations.v1, the
 * FulfillmentItem from linli.fulfillment.v1, delivery reports from
 * linli.delivery.v1) and Kafka orders records only within a partition, so
 * a later step may arrive before an earlier one: an event for an earlier
 * step only joins the history (DOM_ORDER_HISTORY).
 */
#ifndef DOMAIN_ORDER_STATE_H
#define DOMAIN_ORDER_STATE_H

#include "delivery.pb-c.h"
#include "order_status.pb-c.h"
#include "reservations.pb-c.h"

#define DOM_ST_NONE LINLI__ORDER_STATUS__STATE__STATE_UNSPECIFIED /* no row */
#define DOM_ST_PLACED LINLI__ORDER_STATUS__STATE__PLACED
#define DOM_ST_RESERVED LINLI__ORDER_STATUS__STATE__RESERVED
#define DOM_ST_REJECTED LINLI__ORDER_STATUS__STATE__REJECTED
#define DOM_ST_PAID LINLI__ORDER_STATUS__STATE__PAID
#define DOM_ST_READY LINLI__ORDER_STATUS__STATE__READY
#define DOM_ST_OUT_FOR_DELIVERY LINLI__ORDER_STATUS__STATE__OUT_FOR_DELIVERY
#define DOM_ST_AT_PICKUP_POINT LINLI__ORDER_STATUS__STATE__AT_PICKUP_POINT
#define DOM_ST_DELIVERED LINLI__ORDER_STATUS__STATE__DELIVERED
#define DOM_ST_PICKED_UP LINLI__ORDER_STATUS__STATE__PICKED_UP
#define DOM_ST_CANCELLED LINLI__ORDER_STATUS__STATE__CANCELLED
#define DOM_ST_EXPIRED LINLI__ORDER_STATUS__STATE__EXPIRED
#define DOM_ST_DELIVERY_FAILED LINLI__ORDER_STATUS__STATE__DELIVERY_FAILED
#define DOM_ST_COUNT 13 /* states 0 .. DOM_ST_DELIVERY_FAILED */

/* What a record means for its order's state. */
enum dom_order_event {
  DOM_OEV_NONE = 0,      /* nothing (a duplicate placement, a refused
                            payment, a notice the reserver judges) */
  DOM_OEV_PLACED,        /* OrderPlaced */
  DOM_OEV_RESERVED,      /* ReservationResult RESERVED */
  DOM_OEV_REJECTED,      /* ReservationResult REJECTED (the order) */
  DOM_OEV_PAID,          /* ReservationResult COMMITTED */
  DOM_OEV_CANCELLED,     /* RELEASED: cancelled before payment */
  DOM_OEV_EXPIRED,       /* RELEASED: the payment deadline passed */
  DOM_OEV_GROUP_FAILED,  /* RELEASED, reason GROUP_FAILED: the group-buy
                            failed; a held (RESERVED) or PAID order ends
                            CANCELLED (its payment is refunded) */
  DOM_OEV_READY,         /* FulfillmentItem */
  DOM_OEV_OUT_FOR_DELIVERY,
  DOM_OEV_AT_PICKUP_POINT,
  DOM_OEV_PICKED_UP,
  DOM_OEV_DELIVERED,
  DOM_OEV_DELIVERY_FAILED,
  DOM_OEV_COUNT
};

enum dom_order_verdict {
  DOM_ORDER_APPLY,   /* the order moves to *next */
  DOM_ORDER_HISTORY, /* an earlier step (or the same state) arriving late:
                        recorded in the history, the state stays */
  DOM_ORDER_ILLEGAL, /* impossible: to the DLQ, not into the record */
};

/* The state an event leads to (DOM_ST_NONE for DOM_OEV_NONE). */
int dom_order_event_target(enum dom_order_event ev);

/* What ev does to an order in state cur; *next is the state after it
 * (cur unless DOM_ORDER_APPLY). DOM_OEV_NONE is always HISTORY. */
enum dom_order_verdict dom_order_step(int cur, enum dom_order_event ev,
                                      int *next);

/* "PAID" for DOM_ST_PAID, "NONE" for DOM_ST_NONE; NULL if unknown. */
const char *dom_order_state_name(int state);
/* DOM_ST_* for a name; DOM_ST_NONE if unknown. */
int dom_order_state_parse(const char *name);
/* "GROUP_FAILED" for DOM_OEV_GROUP_FAILED; NULL if unknown. */
const char *dom_order_event_name(enum dom_order_event ev);

/* What a ReservationResult means for its order. cause_type is the type of
 * the event that caused a RELEASED ("OrderCancelled", "OrderExpired"), if
 * the caller knows it (NULL: judged by the result's reason and detail). */
enum dom_order_event dom_order_event_of_result(
    const Linli__ReservationResult *r, const char *cause_type);
/* What a delivery report means for its order, and that order (*order_id,
 * NULL for an envelope that carries no report). */
enum dom_order_event dom_order_event_of_delivery(const Linli__DeliveryEvent *e,
                                                 const char **order_id);
/* 1 if a REJECTED with this ReservationResult reason refuses a payment
 * (the order stays as it is, the payment is refunded), 0 if it rejects
 * the order itself. */
int dom_order_is_payment_reason(int reason);

#endif
