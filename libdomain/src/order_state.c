/*
 * order_state.c - the order state machine (see order_state.h).
 *
 * PLACED -> RESERVED|REJECTED -> PAID -> READY -> OUT_FOR_DELIVERY|
 * AT_PICKUP_POINT -> DELIVERED|PICKED_UP, CANCELLED/EXPIRED only before
 * PAID, DELIVERY_FAILED after a delivery attempt; a failed group-buy also
 * cancels a PAID order (its payment is refunded).
 *
 * Each state has a rank: an event whose target is a later step moves the
 * order on, one whose target is an earlier step only joins the history.
 * What can never happen to the same order in any arrival order is
 * illegal: progress after REJECTED, CANCELLED or EXPIRED (a dead order was
 * never paid, or was refunded), a release after payment (except a failed
 * group-buy), a rejection of an order that was reserved, and both
 * DELIVERED and PICKED_UP. A failed delivery may be retried: DELIVERY_FAILED
 * -> OUT_FOR_DELIVERY moves the order on although its rank is lower.
 *
 * A delivery step recorded while the order still looks unpaid (PLACED,
 * RESERVED) moves it on: its payment is on another topic and may simply not
 * have been read yet (a rebuild from the log reads topics at different
 * speeds). An order that can no longer be paid is dead, and progress on a
 * dead order is illegal.
 */
#include "domain/order_state.h"

#include <stddef.h>
#include <string.h>

static const char *const STATE_NAMES[DOM_ST_COUNT] = {
    "NONE",      "PLACED",           "RESERVED",        "REJECTED",
    "PAID",      "READY",            "OUT_FOR_DELIVERY", "AT_PICKUP_POINT",
    "DELIVERED", "PICKED_UP",        "CANCELLED",       "EXPIRED",
    "DELIVERY_FAILED",
};

static const char *const EVENT_NAMES[DOM_OEV_COUNT] = {
    "NONE",      "PLACED",    "RESERVED",         "REJECTED",
    "PAID",      "CANCELLED", "EXPIRED",          "GROUP_FAILED",
    "READY",     "OUT_FOR_DELIVERY", "AT_PICKUP_POINT", "PICKED_UP",
    "DELIVERED", "DELIVERY_FAILED",
};

static const int TARGETS[DOM_OEV_COUNT] = {
    [DOM_OEV_NONE] = DOM_ST_NONE,
    [DOM_OEV_PLACED] = DOM_ST_PLACED,
    [DOM_OEV_RESERVED] = DOM_ST_RESERVED,
    [DOM_OEV_REJECTED] = DOM_ST_REJECTED,
    [DOM_OEV_PAID] = DOM_ST_PAID,
    [DOM_OEV_CANCELLED] = DOM_ST_CANCELLED,
    [DOM_OEV_EXPIRED] = DOM_ST_EXPIRED,
    [DOM_OEV_GROUP_FAILED] = DOM_ST_CANCELLED,
    [DOM_OEV_READY] = DOM_ST_READY,
    [DOM_OEV_OUT_FOR_DELIVERY] = DOM_ST_OUT_FOR_DELIVERY,
    [DOM_OEV_AT_PICKUP_POINT] = DOM_ST_AT_PICKUP_POINT,
    [DOM_OEV_PICKED_UP] = DOM_ST_PICKED_UP,
    [DOM_OEV_DELIVERED] = DOM_ST_DELIVERED,
    [DOM_OEV_DELIVERY_FAILED] = DOM_ST_DELIVERY_FAILED,
};

const char *dom_order_state_name(int state) {
  return state >= 0 && state < DOM_ST_COUNT ? STATE_NAMES[state] : NULL;
}

int dom_order_state_parse(const char *name) {
  for (int i = 1; name && i < DOM_ST_COUNT; i++)
    if (strcmp(STATE_NAMES[i], name) == 0)
      return i;
  return DOM_ST_NONE;
}

const char *dom_order_event_name(enum dom_order_event ev) {
  return (int)ev >= 0 && ev < DOM_OEV_COUNT ? EVENT_NAMES[ev] : NULL;
}

int dom_order_event_target(enum dom_order_event ev) {
  return (int)ev >= 0 && ev < DOM_OEV_COUNT ? TARGETS[ev] : DOM_ST_NONE;
}

/* Position in the forward chain; alternatives share a rank. */
static int rank(int s) {
  switch (s) {
  case DOM_ST_PLACED:
    return 0;
  case DOM_ST_RESERVED:
  case DOM_ST_REJECTED:
  case DOM_ST_CANCELLED:
  case DOM_ST_EXPIRED:
    return 1;
  case DOM_ST_PAID:
    return 2;
  case DOM_ST_READY:
    return 3;
  case DOM_ST_OUT_FOR_DELIVERY:
    return 4;
  case DOM_ST_DELIVERY_FAILED:
  case DOM_ST_AT_PICKUP_POINT:
    return 5;
  case DOM_ST_DELIVERED:
  case DOM_ST_PICKED_UP:
    return 6;
  default:
    return -1;
  }
}

/* REJECTED, CANCELLED, EXPIRED: never paid (or refunded), never will be. */
static int dead(int s) {
  return s == DOM_ST_REJECTED || s == DOM_ST_CANCELLED || s == DOM_ST_EXPIRED;
}

static enum dom_order_verdict judge(int cur, enum dom_order_event ev,
                                    int target) {
  if (rank(target) < 0)
    return DOM_ORDER_ILLEGAL;
  if (cur == DOM_ST_NONE)
    return DOM_ORDER_APPLY; /* the first event recorded creates the order */
  if (rank(cur) < 0)
    return DOM_ORDER_ILLEGAL;
  if (cur == target)
    return DOM_ORDER_HISTORY;
  switch (target) {
  case DOM_ST_PLACED:
    return DOM_ORDER_HISTORY; /* OrderPlaced read after a later step */
  case DOM_ST_REJECTED:
    return cur == DOM_ST_PLACED ? DOM_ORDER_APPLY : DOM_ORDER_ILLEGAL;
  case DOM_ST_CANCELLED:
  case DOM_ST_EXPIRED:
    if (cur == DOM_ST_PLACED || cur == DOM_ST_RESERVED)
      return DOM_ORDER_APPLY;
    /* A failed group-buy cancels a paid order too (and refunds it). */
    return ev == DOM_OEV_GROUP_FAILED && cur == DOM_ST_PAID
               ? DOM_ORDER_APPLY
               : DOM_ORDER_ILLEGAL;
  case DOM_ST_RESERVED:
    if (cur == DOM_ST_PLACED)
      return DOM_ORDER_APPLY;
    /* A rejected order was never reserved; a released or paid one was. */
    return cur == DOM_ST_REJECTED ? DOM_ORDER_ILLEGAL : DOM_ORDER_HISTORY;
  default:
    break;
  }
  /* target is PAID or a later step */
  if (dead(cur))
    return DOM_ORDER_ILLEGAL;
  if (cur == DOM_ST_DELIVERY_FAILED && target == DOM_ST_OUT_FOR_DELIVERY)
    return DOM_ORDER_APPLY; /* another delivery attempt */
  if (rank(target) > rank(cur))
    return DOM_ORDER_APPLY;
  if (rank(target) < rank(cur))
    return DOM_ORDER_HISTORY;
  if ((cur == DOM_ST_DELIVERED && target == DOM_ST_PICKED_UP) ||
      (cur == DOM_ST_PICKED_UP && target == DOM_ST_DELIVERED))
    return DOM_ORDER_ILLEGAL;
  return DOM_ORDER_APPLY; /* AT_PICKUP_POINT <-> DELIVERY_FAILED: latest */
}

enum dom_order_verdict dom_order_step(int cur, enum dom_order_event ev,
                                      int *next) {
  *next = cur;
  if (ev == DOM_OEV_NONE)
    return DOM_ORDER_HISTORY;
  if ((int)ev < 0 || ev >= DOM_OEV_COUNT)
    return DOM_ORDER_ILLEGAL;
  int target = TARGETS[ev];
  enum dom_order_verdict v = judge(cur, ev, target);
  if (v == DOM_ORDER_APPLY)
    *next = target;
  return v;
}

int dom_order_is_payment_reason(int reason) {
  switch (reason) {
  case LINLI__RESERVATION_RESULT__REASON__PAYMENT_AFTER_EXPIRY:
  case LINLI__RESERVATION_RESULT__REASON__PAYMENT_AFTER_CANCEL:
  case LINLI__RESERVATION_RESULT__REASON__DOUBLE_PAYMENT:
  case LINLI__RESERVATION_RESULT__REASON__NOT_RESERVED:
  case LINLI__RESERVATION_RESULT__REASON__UNDERPAID:
  case LINLI__RESERVATION_RESULT__REASON__GROUP_FAILED: /* paid after the
                                                          campaign failed */
    return 1;
  default:
    return 0;
  }
}

enum dom_order_event dom_order_event_of_result(
    const Linli__ReservationResult *r, const char *cause_type) {
  switch (r->status) {
  case LINLI__RESERVATION_RESULT__STATUS__RESERVED:
    return DOM_OEV_RESERVED;
  case LINLI__RESERVATION_RESULT__STATUS__COMMITTED:
    return DOM_OEV_PAID;
  case LINLI__RESERVATION_RESULT__STATUS__REJECTED:
    /* A duplicate placement or a refused payment leaves the order as is. */
    if (dom_order_is_payment_reason(r->reason) ||
        r->reason == LINLI__RESERVATION_RESULT__REASON__DUPLICATE)
      return DOM_OEV_NONE;
    return DOM_OEV_REJECTED;
  case LINLI__RESERVATION_RESULT__STATUS__RELEASED:
    if (r->reason == LINLI__RESERVATION_RESULT__REASON__GROUP_FAILED)
      return DOM_OEV_GROUP_FAILED;
    /* The cause (an OrderCancelled or OrderExpired) says which, else the
     * reserver's detail ("payment deadline passed"). */
    if (cause_type != NULL && strcmp(cause_type, "OrderExpired") == 0)
      return DOM_OEV_EXPIRED;
    if (cause_type != NULL && strcmp(cause_type, "OrderCancelled") == 0)
      return DOM_OEV_CANCELLED;
    if (r->detail != NULL &&
        (strstr(r->detail, "deadline") || strstr(r->detail, "expir")))
      return DOM_OEV_EXPIRED;
    return DOM_OEV_CANCELLED;
  default:
    return DOM_OEV_NONE;
  }
}

enum dom_order_event dom_order_event_of_delivery(const Linli__DeliveryEvent *e,
                                                 const char **order_id) {
  *order_id = NULL;
  switch (e->event_case) {
  case LINLI__DELIVERY_EVENT__EVENT_OUT_FOR_DELIVERY:
    *order_id = e->out_for_delivery->order_id;
    return DOM_OEV_OUT_FOR_DELIVERY;
  case LINLI__DELIVERY_EVENT__EVENT_ARRIVED_AT_PICKUP_POINT:
    *order_id = e->arrived_at_pickup_point->order_id;
    return DOM_OEV_AT_PICKUP_POINT;
  case LINLI__DELIVERY_EVENT__EVENT_PICKED_UP:
    *order_id = e->picked_up->order_id;
    return DOM_OEV_PICKED_UP;
  case LINLI__DELIVERY_EVENT__EVENT_DELIVERED:
    *order_id = e->delivered->order_id;
    return DOM_OEV_DELIVERED;
  case LINLI__DELIVERY_EVENT__EVENT_DELIVERY_FAILED:
    *order_id = e->delivery_failed->order_id;
    return DOM_OEV_DELIVERY_FAILED;
  default:
    return DOM_OEV_NONE;
  }
}
