/*
 * test_order_state.c - unit tests of libdomain's order state machine
 * (domain/order_state.h), the one the ledger records and the audit folds:
 * forward steps, late earlier steps joining the history, what is illegal
 * in any arrival order, a retried delivery, a failed group-buy cancelling
 * a held or paid order, and what each ReservationResult and delivery
 * report means for its order. (test_ledger's "every transition through
 * the ledger and the audit" runs the same table through both consumers.)
 */
#include <CUnit/CUnit.h>

#include "domain/order_state.h"
#include "linli_test.h"

static enum dom_order_verdict v(int cur, enum dom_order_event ev) {
  int next;
  return dom_order_step(cur, ev, &next);
}

static int after(int cur, enum dom_order_event ev) {
  int next;
  dom_order_step(cur, ev, &next);
  return next;
}

static void test_forward(void) {
  CU_ASSERT_EQUAL(v(DOM_ST_NONE, DOM_OEV_DELIVERED), DOM_ORDER_APPLY);
  CU_ASSERT_EQUAL(v(DOM_ST_PLACED, DOM_OEV_RESERVED), DOM_ORDER_APPLY);
  CU_ASSERT_EQUAL(v(DOM_ST_RESERVED, DOM_OEV_PAID), DOM_ORDER_APPLY);
  CU_ASSERT_EQUAL(v(DOM_ST_PAID, DOM_OEV_READY), DOM_ORDER_APPLY);
  CU_ASSERT_EQUAL(v(DOM_ST_READY, DOM_OEV_AT_PICKUP_POINT), DOM_ORDER_APPLY);
  CU_ASSERT_EQUAL(v(DOM_ST_AT_PICKUP_POINT, DOM_OEV_PICKED_UP),
                  DOM_ORDER_APPLY);
  CU_ASSERT_EQUAL(v(DOM_ST_OUT_FOR_DELIVERY, DOM_OEV_DELIVERY_FAILED),
                  DOM_ORDER_APPLY);
  CU_ASSERT_EQUAL(v(DOM_ST_PLACED, DOM_OEV_REJECTED), DOM_ORDER_APPLY);
  CU_ASSERT_EQUAL(v(DOM_ST_RESERVED, DOM_OEV_EXPIRED), DOM_ORDER_APPLY);
  CU_ASSERT_EQUAL(v(DOM_ST_PLACED, DOM_OEV_CANCELLED), DOM_ORDER_APPLY);
  CU_ASSERT_EQUAL(after(DOM_ST_PAID, DOM_OEV_READY), DOM_ST_READY);
  /* a step recorded before its payment was read moves the order on */
  CU_ASSERT_EQUAL(v(DOM_ST_RESERVED, DOM_OEV_READY), DOM_ORDER_APPLY);
}

static void test_late(void) {
  CU_ASSERT_EQUAL(v(DOM_ST_READY, DOM_OEV_PLACED), DOM_ORDER_HISTORY);
  CU_ASSERT_EQUAL(v(DOM_ST_READY, DOM_OEV_PAID), DOM_ORDER_HISTORY);
  CU_ASSERT_EQUAL(v(DOM_ST_PAID, DOM_OEV_RESERVED), DOM_ORDER_HISTORY);
  CU_ASSERT_EQUAL(v(DOM_ST_DELIVERED, DOM_OEV_OUT_FOR_DELIVERY),
                  DOM_ORDER_HISTORY);
  CU_ASSERT_EQUAL(v(DOM_ST_PAID, DOM_OEV_PAID), DOM_ORDER_HISTORY);
  CU_ASSERT_EQUAL(v(DOM_ST_PAID, DOM_OEV_NONE), DOM_ORDER_HISTORY);
  CU_ASSERT_EQUAL(after(DOM_ST_READY, DOM_OEV_PAID), DOM_ST_READY);
}

static void test_illegal(void) {
  CU_ASSERT_EQUAL(v(DOM_ST_CANCELLED, DOM_OEV_DELIVERED), DOM_ORDER_ILLEGAL);
  CU_ASSERT_EQUAL(v(DOM_ST_REJECTED, DOM_OEV_DELIVERED), DOM_ORDER_ILLEGAL);
  CU_ASSERT_EQUAL(v(DOM_ST_EXPIRED, DOM_OEV_OUT_FOR_DELIVERY),
                  DOM_ORDER_ILLEGAL);
  CU_ASSERT_EQUAL(v(DOM_ST_PAID, DOM_OEV_EXPIRED), DOM_ORDER_ILLEGAL);
  CU_ASSERT_EQUAL(v(DOM_ST_PAID, DOM_OEV_CANCELLED), DOM_ORDER_ILLEGAL);
  CU_ASSERT_EQUAL(v(DOM_ST_READY, DOM_OEV_CANCELLED), DOM_ORDER_ILLEGAL);
  CU_ASSERT_EQUAL(v(DOM_ST_RESERVED, DOM_OEV_REJECTED), DOM_ORDER_ILLEGAL);
  CU_ASSERT_EQUAL(v(DOM_ST_REJECTED, DOM_OEV_RESERVED), DOM_ORDER_ILLEGAL);
  CU_ASSERT_EQUAL(v(DOM_ST_CANCELLED, DOM_OEV_PAID), DOM_ORDER_ILLEGAL);
  CU_ASSERT_EQUAL(v(DOM_ST_DELIVERED, DOM_OEV_PICKED_UP), DOM_ORDER_ILLEGAL);
  CU_ASSERT_EQUAL(v(DOM_ST_EXPIRED, DOM_OEV_CANCELLED), DOM_ORDER_ILLEGAL);
  CU_ASSERT_EQUAL(after(DOM_ST_EXPIRED, DOM_OEV_CANCELLED), DOM_ST_EXPIRED);
  CU_ASSERT_EQUAL(v(99, DOM_OEV_PAID), DOM_ORDER_ILLEGAL);
  CU_ASSERT_EQUAL(v(DOM_ST_PAID, (enum dom_order_event)99), DOM_ORDER_ILLEGAL);
}

/* Issue 10: a failed delivery that is retried ends OUT_FOR_DELIVERY. */
static void test_delivery_retry(void) {
  int s = DOM_ST_PAID;
  enum dom_order_event path[] = {DOM_OEV_READY, DOM_OEV_OUT_FOR_DELIVERY,
                                 DOM_OEV_DELIVERY_FAILED,
                                 DOM_OEV_OUT_FOR_DELIVERY};
  for (size_t i = 0; i < sizeof path / sizeof path[0]; i++) {
    CU_ASSERT_EQUAL(dom_order_step(s, path[i], &s), DOM_ORDER_APPLY);
  }
  CU_ASSERT_EQUAL(s, DOM_ST_OUT_FOR_DELIVERY);
  CU_ASSERT_EQUAL(after(s, DOM_OEV_DELIVERED), DOM_ST_DELIVERED);
}

/* A failed group-buy cancels a held (RESERVED) or PAID order, never a
 * later one. */
static void test_group_failed(void) {
  CU_ASSERT_EQUAL(after(DOM_ST_RESERVED, DOM_OEV_GROUP_FAILED),
                  DOM_ST_CANCELLED);
  CU_ASSERT_EQUAL(after(DOM_ST_PAID, DOM_OEV_GROUP_FAILED), DOM_ST_CANCELLED);
  CU_ASSERT_EQUAL(after(DOM_ST_PLACED, DOM_OEV_GROUP_FAILED),
                  DOM_ST_CANCELLED);
  CU_ASSERT_EQUAL(v(DOM_ST_CANCELLED, DOM_OEV_GROUP_FAILED),
                  DOM_ORDER_HISTORY);
  CU_ASSERT_EQUAL(v(DOM_ST_READY, DOM_OEV_GROUP_FAILED), DOM_ORDER_ILLEGAL);
  CU_ASSERT_EQUAL(v(DOM_ST_EXPIRED, DOM_OEV_GROUP_FAILED), DOM_ORDER_ILLEGAL);
  CU_ASSERT_EQUAL(v(DOM_ST_REJECTED, DOM_OEV_GROUP_FAILED),
                  DOM_ORDER_ILLEGAL);
  /* a refunded order does not come back */
  CU_ASSERT_EQUAL(v(DOM_ST_CANCELLED, DOM_OEV_READY), DOM_ORDER_ILLEGAL);
}

static void test_names(void) {
  CU_ASSERT_STRING_EQUAL(dom_order_state_name(DOM_ST_OUT_FOR_DELIVERY),
                         "OUT_FOR_DELIVERY");
  CU_ASSERT_STRING_EQUAL(dom_order_state_name(DOM_ST_NONE), "NONE");
  CU_ASSERT_PTR_NULL(dom_order_state_name(DOM_ST_COUNT));
  CU_ASSERT_EQUAL(dom_order_state_parse("DELIVERY_FAILED"),
                  DOM_ST_DELIVERY_FAILED);
  CU_ASSERT_EQUAL(dom_order_state_parse("nope"), DOM_ST_NONE);
  CU_ASSERT_EQUAL(dom_order_state_parse(NULL), DOM_ST_NONE);
  CU_ASSERT_STRING_EQUAL(dom_order_event_name(DOM_OEV_GROUP_FAILED),
                         "GROUP_FAILED");
  CU_ASSERT_EQUAL(dom_order_event_target(DOM_OEV_GROUP_FAILED),
                  DOM_ST_CANCELLED);
  for (int e = 0; e < DOM_OEV_COUNT; e++)
    CU_ASSERT_PTR_NOT_NULL(dom_order_event_name((enum dom_order_event)e));
}

static void test_of_result(void) {
  Linli__ReservationResult r = LINLI__RESERVATION_RESULT__INIT;
  r.detail = (char *)"";
  r.status = LINLI__RESERVATION_RESULT__STATUS__RESERVED;
  CU_ASSERT_EQUAL(dom_order_event_of_result(&r, NULL), DOM_OEV_RESERVED);
  r.status = LINLI__RESERVATION_RESULT__STATUS__COMMITTED;
  CU_ASSERT_EQUAL(dom_order_event_of_result(&r, NULL), DOM_OEV_PAID);
  r.status = LINLI__RESERVATION_RESULT__STATUS__REJECTED;
  r.reason = LINLI__RESERVATION_RESULT__REASON__OUT_OF_STOCK;
  CU_ASSERT_EQUAL(dom_order_event_of_result(&r, NULL), DOM_OEV_REJECTED);
  r.reason = LINLI__RESERVATION_RESULT__REASON__PRICE_MISMATCH;
  CU_ASSERT_EQUAL(dom_order_event_of_result(&r, NULL), DOM_OEV_REJECTED);
  r.reason = LINLI__RESERVATION_RESULT__REASON__DUPLICATE;
  CU_ASSERT_EQUAL(dom_order_event_of_result(&r, NULL), DOM_OEV_NONE);
  /* refused payments leave the order as it is (UNDERPAID too: the order
   * stays reserved) */
  r.reason = LINLI__RESERVATION_RESULT__REASON__UNDERPAID;
  CU_ASSERT_EQUAL(dom_order_event_of_result(&r, NULL), DOM_OEV_NONE);
  r.reason = LINLI__RESERVATION_RESULT__REASON__DOUBLE_PAYMENT;
  CU_ASSERT_EQUAL(dom_order_event_of_result(&r, NULL), DOM_OEV_NONE);
  r.status = LINLI__RESERVATION_RESULT__STATUS__RELEASED;
  r.reason = LINLI__RESERVATION_RESULT__REASON__REASON_UNSPECIFIED;
  CU_ASSERT_EQUAL(dom_order_event_of_result(&r, NULL), DOM_OEV_CANCELLED);
  r.detail = (char *)"payment deadline passed";
  CU_ASSERT_EQUAL(dom_order_event_of_result(&r, NULL), DOM_OEV_EXPIRED);
  CU_ASSERT_EQUAL(dom_order_event_of_result(&r, "OrderCancelled"),
                  DOM_OEV_CANCELLED);
  r.detail = (char *)"";
  CU_ASSERT_EQUAL(dom_order_event_of_result(&r, "OrderExpired"),
                  DOM_OEV_EXPIRED);
  r.reason = LINLI__RESERVATION_RESULT__REASON__GROUP_FAILED;
  CU_ASSERT_EQUAL(dom_order_event_of_result(&r, "OrderExpired"),
                  DOM_OEV_GROUP_FAILED);
  r.status = LINLI__RESERVATION_RESULT__STATUS__STATUS_UNSPECIFIED;
  CU_ASSERT_EQUAL(dom_order_event_of_result(&r, NULL), DOM_OEV_NONE);
}

static void test_of_delivery(void) {
  Linli__DeliveryEvent e = LINLI__DELIVERY_EVENT__INIT;
  Linli__DeliveryFailed f = LINLI__DELIVERY_FAILED__INIT;
  const char *id = "x";
  CU_ASSERT_EQUAL(dom_order_event_of_delivery(&e, &id), DOM_OEV_NONE);
  CU_ASSERT_PTR_NULL(id);
  f.order_id = (char *)"o-1";
  e.event_case = LINLI__DELIVERY_EVENT__EVENT_DELIVERY_FAILED;
  e.delivery_failed = &f;
  CU_ASSERT_EQUAL(dom_order_event_of_delivery(&e, &id),
                  DOM_OEV_DELIVERY_FAILED);
  CU_ASSERT_STRING_EQUAL(id, "o-1");
}

int linli_test_register(void) {
  CU_pSuite s = CU_add_suite("domain: order state machine", NULL, NULL);
  if (!s)
    return -1;
  CU_add_test(s, "forward steps", test_forward);
  CU_add_test(s, "earlier steps arriving late", test_late);
  CU_add_test(s, "illegal in any arrival order", test_illegal);
  CU_add_test(s, "a failed delivery retried", test_delivery_retry);
  CU_add_test(s, "a failed group-buy", test_group_failed);
  CU_add_test(s, "names", test_names);
  CU_add_test(s, "what a ReservationResult means", test_of_result);
  CU_add_test(s, "what a delivery report means", test_of_delivery);
  return 0;
}
