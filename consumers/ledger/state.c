/*
 * state.c - the order state machine (see state.h).
 *
 * PLACED -> RESERVED|REJECTED -> PAID -> READY -> OUT_FOR_DELIVERY|
 * AT_PICKUP_POINT -> DELIVERED|PICKED_UP, CANCELLED/EXPIRED only before
 * PAID (and PAID -> CANCELLED when the order's group-buy campaign failed),
 * DELIVERY_FAILED after a delivery attempt.
 *
 * The events of one order come from several topics (OrderPlaced from
 * linli.orders.v1, ReservationResult from linli.reservations.v1, the
 * FulfillmentItem from linli.fulfillment.v1, delivery reports from
 * linli.delivery.v1) and Kafka orders records only within a partition, so
 * a later step may be recorded before an earlier one. Each state therefore
 * has a rank: an event whose target is a later step moves the order on, one
 * whose target is an earlier step only joins the history. What can never
 * happen to the same order in any arrival order is illegal: progress after
 * REJECTED, CANCELLED or EXPIRED (a dead order was never paid), a release
 * after payment, a rejection of an order that was reserved, and both
 * DELIVERED and PICKED_UP.
 *
 * A delivery step recorded while the order still looks unpaid (PLACED,
 * RESERVED) moves it on: its payment is on another topic and may simply not
 * have been read yet (a rebuild from the log reads topics at different
 * speeds). An order that can no longer be paid is dead, and progress on a
 * dead order is illegal.
 */
#include "state.h"

#include <stddef.h>
#include <string.h>

static const char *const NAMES[] = {
    "NONE",     "PLACED",           "RESERVED",        "REJECTED",
    "PAID",     "READY",            "OUT_FOR_DELIVERY", "AT_PICKUP_POINT",
    "DELIVERED", "PICKED_UP",       "CANCELLED",       "EXPIRED",
    "DELIVERY_FAILED",
};
#define NSTATES ((int)(sizeof NAMES / sizeof NAMES[0]))

const char *ledger_state_name(int state) {
  return state >= 0 && state < NSTATES ? NAMES[state] : NULL;
}

int ledger_state_parse(const char *name) {
  for (int i = 1; name && i < NSTATES; i++)
    if (strcmp(NAMES[i], name) == 0)
      return i;
  return ST_NONE;
}

/* Position in the forward chain; alternatives share a rank. */
static int rank(int s) {
  switch (s) {
  case ST_PLACED:
    return 0;
  case ST_RESERVED:
  case ST_REJECTED:
  case ST_CANCELLED:
  case ST_EXPIRED:
    return 1;
  case ST_PAID:
    return 2;
  case ST_READY:
    return 3;
  case ST_OUT_FOR_DELIVERY:
    return 4;
  case ST_DELIVERY_FAILED:
  case ST_AT_PICKUP_POINT:
    return 5;
  case ST_DELIVERED:
  case ST_PICKED_UP:
    return 6;
  default:
    return -1;
  }
}

/* REJECTED, CANCELLED, EXPIRED: never paid, never will be. */
static int dead(int s) {
  return s == ST_REJECTED || s == ST_CANCELLED || s == ST_EXPIRED;
}

enum ledger_verdict ledger_transition(int cur, int target) {
  if (rank(target) < 0)
    return LEDGER_ILLEGAL;
  if (cur == ST_NONE)
    return LEDGER_APPLY; /* the first event recorded creates the order */
  if (rank(cur) < 0)
    return LEDGER_ILLEGAL;
  if (cur == target)
    return LEDGER_HISTORY;
  switch (target) {
  case ST_PLACED:
    return LEDGER_HISTORY; /* OrderPlaced read after a later step */
  case ST_REJECTED:
    return cur == ST_PLACED ? LEDGER_APPLY : LEDGER_ILLEGAL;
  case ST_CANCELLED:
  case ST_EXPIRED:
    return cur == ST_PLACED || cur == ST_RESERVED ? LEDGER_APPLY
                                                  : LEDGER_ILLEGAL;
  case ST_RESERVED:
    if (cur == ST_PLACED)
      return LEDGER_APPLY;
    /* A rejected order was never reserved; a released or paid one was. */
    return cur == ST_REJECTED ? LEDGER_ILLEGAL : LEDGER_HISTORY;
  default:
    break;
  }
  /* target is PAID or a later step */
  if (dead(cur))
    return LEDGER_ILLEGAL;
  if (cur == ST_DELIVERY_FAILED && target == ST_OUT_FOR_DELIVERY)
    return LEDGER_APPLY; /* another delivery attempt */
  if (rank(target) > rank(cur))
    return LEDGER_APPLY;
  if (rank(target) < rank(cur))
    return LEDGER_HISTORY;
  if ((cur == ST_DELIVERED && target == ST_PICKED_UP) ||
      (cur == ST_PICKED_UP && target == ST_DELIVERED))
    return LEDGER_ILLEGAL;
  return LEDGER_APPLY; /* AT_PICKUP_POINT <-> DELIVERY_FAILED: latest wins */
}

enum ledger_verdict ledger_transition_reason(int cur, int target,
                                             const char *reason) {
  if (target == ST_CANCELLED && cur == ST_PAID && reason &&
      strcmp(reason, LEDGER_REASON_GROUP_FAILED) == 0)
    return LEDGER_APPLY;
  return ledger_transition(cur, target);
}
