/*
 * state.h - the order state machine of DESIGN.md, as the ledger enforces it
 * on events that arrive from several topics with no order between them.
 *
 * States are the OrderStatus.State numbers (order_status.proto), so a state
 * goes to linli.order-status.v1 as is. Pure functions: no I/O.
 */
#ifndef LEDGER_STATE_H
#define LEDGER_STATE_H

#include "order_status.pb-c.h"

#define ST_NONE LINLI__ORDER_STATUS__STATE__STATE_UNSPECIFIED /* no row yet */
#define ST_PLACED LINLI__ORDER_STATUS__STATE__PLACED
#define ST_RESERVED LINLI__ORDER_STATUS__STATE__RESERVED
#define ST_REJECTED LINLI__ORDER_STATUS__STATE__REJECTED
#define ST_PAID LINLI__ORDER_STATUS__STATE__PAID
#define ST_READY LINLI__ORDER_STATUS__STATE__READY
#define ST_OUT_FOR_DELIVERY LINLI__ORDER_STATUS__STATE__OUT_FOR_DELIVERY
#define ST_AT_PICKUP_POINT LINLI__ORDER_STATUS__STATE__AT_PICKUP_POINT
#define ST_DELIVERED LINLI__ORDER_STATUS__STATE__DELIVERED
#define ST_PICKED_UP LINLI__ORDER_STATUS__STATE__PICKED_UP
#define ST_CANCELLED LINLI__ORDER_STATUS__STATE__CANCELLED
#define ST_EXPIRED LINLI__ORDER_STATUS__STATE__EXPIRED
#define ST_DELIVERY_FAILED LINLI__ORDER_STATUS__STATE__DELIVERY_FAILED

/* What an event that leads to `target` does to an order in `cur`. */
enum ledger_verdict {
  LEDGER_APPLY,   /* the order moves to target */
  LEDGER_HISTORY, /* an earlier step (or the same state) arriving late:
                     recorded in the history, the state stays */
  LEDGER_ILLEGAL, /* impossible: to the DLQ, not into the record */
};

enum ledger_verdict ledger_transition(int cur, int target);

/* The state reason of an order whose group-buy campaign failed. */
#define LEDGER_REASON_GROUP_FAILED "GROUP_FAILED"
/* ledger_transition, plus the one way out of PAID that is not progress: a
 * failed campaign cancels its paid orders (PAID -> CANCELLED with reason
 * LEDGER_REASON_GROUP_FAILED; the settler refunds them). */
enum ledger_verdict ledger_transition_reason(int cur, int target,
                                             const char *reason);

/* "PAID" for ST_PAID; "NONE" for ST_NONE; NULL if unknown. */
const char *ledger_state_name(int state);
/* ST_* for a name; ST_NONE if unknown. */
int ledger_state_parse(const char *name);

#endif
