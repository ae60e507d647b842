/*
 * test_domain_reservations.c - unit tests of dom_reservation_check_result
 * (domain/reservations.h), the one rule the ledger and the notifier apply
 * to a ReservationResult: what passes, and the field named for each
 * refusal; and dom_record_check (domain/records.h), the judgement of a
 * whole record by its topic that the ledger and the audit share.
 */
#include <CUnit/CUnit.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "domain/records.h"
#include "domain/reservations.h"
#include "domain/topics.h"
#include "orders.pb-c.h"
#include "linli_test.h"

static Linli__ReservationResult good(void) {
  Linli__ReservationResult r = LINLI__RESERVATION_RESULT__INIT;
  r.order_id = (char *)"o-1";
  r.warehouse_id = (char *)"wh-1";
  r.user_id = (char *)"u-1";
  r.status = LINLI__RESERVATION_RESULT__STATUS__RESERVED;
  r.expires_at_ms = 1796556000000;
  r.total_fen = 1250;
  return r;
}

/* The first problem reported, "field: msg" ("" when none), and the count. */
static int judge(const Linli__ReservationResult *r, char *first,
                 size_t len) {
  first[0] = '\0';
  struct dom_first_err fe = {first, len, 0};
  return dom_reservation_check_result(r, dom_first_err, &fe);
}

static void test_good_ones(void) {
  char why[256];
  Linli__ReservationResult r = good();
  CU_ASSERT_EQUAL(judge(&r, why, sizeof why), 0);
  CU_ASSERT_STRING_EQUAL(why, "");
  /* user, app and campaign are optional */
  r.user_id = (char *)"";
  CU_ASSERT_EQUAL(judge(&r, why, sizeof why), 0);
  /* a payment's rejection may name no warehouse */
  r = good();
  r.status = LINLI__RESERVATION_RESULT__STATUS__REJECTED;
  r.reason = LINLI__RESERVATION_RESULT__REASON__PAYMENT_AFTER_EXPIRY;
  r.warehouse_id = (char *)"";
  r.payment_txn_id = (char *)"txn-9";
  r.amount_fen = 1250;
  CU_ASSERT_EQUAL(judge(&r, why, sizeof why), 0);
  r = good();
  r.status = LINLI__RESERVATION_RESULT__STATUS__COMMITTED;
  r.payment_txn_id = (char *)"txn-9";
  r.amount_fen = 1250;
  CU_ASSERT_EQUAL(judge(&r, why, sizeof why), 0);
}

static void test_refusals(void) {
  char why[256];
  Linli__ReservationResult r = good();
  r.order_id = (char *)"bad id";
  CU_ASSERT_EQUAL(judge(&r, why, sizeof why), 1);
  CU_ASSERT_EQUAL(strncmp(why, "order_id: ", 10), 0);
  r = good();
  r.status = LINLI__RESERVATION_RESULT__STATUS__STATUS_UNSPECIFIED;
  CU_ASSERT(judge(&r, why, sizeof why) >= 1);
  CU_ASSERT_EQUAL(strncmp(why, "status: ", 8), 0);
  r = good();
  r.warehouse_id = (char *)""; /* not a payment's rejection */
  CU_ASSERT_EQUAL(judge(&r, why, sizeof why), 1);
  CU_ASSERT_EQUAL(strncmp(why, "warehouse_id: ", 14), 0);
  r = good();
  r.campaign_id = (char *)"camp\n1";
  CU_ASSERT_EQUAL(judge(&r, why, sizeof why), 1);
  CU_ASSERT_EQUAL(strncmp(why, "campaign_id: ", 13), 0);
  r = good();
  r.status = LINLI__RESERVATION_RESULT__STATUS__COMMITTED;
  r.amount_fen = 100; /* no payment transaction */
  CU_ASSERT_EQUAL(judge(&r, why, sizeof why), 1);
  CU_ASSERT_EQUAL(strncmp(why, "payment_txn_id: ", 16), 0);
  r = good();
  r.expires_at_ms = INT64_MAX;
  CU_ASSERT_EQUAL(judge(&r, why, sizeof why), 1);
  CU_ASSERT_EQUAL(strncmp(why, "expires_at_ms: ", 15), 0);
  r = good();
  r.total_fen = -1;
  CU_ASSERT_EQUAL(judge(&r, why, sizeof why), 1);
  CU_ASSERT_EQUAL(strncmp(why, "total_fen: ", 11), 0);
  r = good();
  Linli__ReservationResult__ShortLine s0 =
      LINLI__RESERVATION_RESULT__SHORT_LINE__INIT;
  Linli__ReservationResult__ShortLine s1 =
      LINLI__RESERVATION_RESULT__SHORT_LINE__INIT;
  s0.sku_id = (char *)"rice";
  s1.sku_id = (char *)"";
  Linli__ReservationResult__ShortLine *sh[] = {&s0, &s1};
  r.status = LINLI__RESERVATION_RESULT__STATUS__REJECTED;
  r.reason = LINLI__RESERVATION_RESULT__REASON__OUT_OF_STOCK;
  r.n_shortages = 2;
  r.shortages = sh;
  CU_ASSERT_EQUAL(judge(&r, why, sizeof why), 1);
  CU_ASSERT_EQUAL(strncmp(why, "shortages[1].sku_id: ", 21), 0);
  /* the lines it echoes, as an order's */
  r = good();
  Linli__OrderLine l0 = LINLI__ORDER_LINE__INIT, l1 = LINLI__ORDER_LINE__INIT;
  l0.sku_id = (char *)"rice";
  l0.quantity = 600000;
  l0.unit_price_fen = 100;
  l1 = l0;
  Linli__OrderLine *lines[] = {&l0, &l1};
  r.lines = lines;
  r.n_lines = 1;
  CU_ASSERT_EQUAL(judge(&r, why, sizeof why), 0);
  r.n_lines = 2; /* 1,200,000 units of one SKU over two lines */
  CU_ASSERT(judge(&r, why, sizeof why) >= 1);
  CU_ASSERT_EQUAL(strncmp(why, "lines[0].quantity: ", 19), 0);
  l1.sku_id = (char *)"oil";
  l1.quantity = 0;
  CU_ASSERT_EQUAL(judge(&r, why, sizeof why), 1);
  CU_ASSERT_EQUAL(strncmp(why, "lines[1].quantity: ", 19), 0);
  CU_ASSERT_EQUAL(dom_reservation_check_result(NULL, NULL, NULL), 1);
}

static void test_records(void) {
  char why[256] = "";
  struct dom_first_err fe = {why, sizeof why, 0};
  Linli__ReservationResult r = good();
  r.order_id = (char *)"";
  Linli__ReservationEvent e = LINLI__RESERVATION_EVENT__INIT;
  e.event_case = LINLI__RESERVATION_EVENT__EVENT_RESERVATION_RESULT;
  e.reservation_result = &r;
  CU_ASSERT(dom_record_check(LINLI_TOPIC_RESERVATIONS, &e.base, 100,
                             dom_first_err, &fe) > 0);
  CU_ASSERT_EQUAL(strncmp(why, "reservation_result.order_id: ", 29), 0);
  r = good();
  CU_ASSERT_EQUAL(
      dom_record_check(LINLI_TOPIC_RESERVATIONS, &e.base, 100, NULL, NULL), 0);
  /* an order event without its Meta: refused on the orders topic */
  Linli__OrderEvent o = LINLI__ORDER_EVENT__INIT;
  CU_ASSERT(dom_record_check(LINLI_TOPIC_ORDERS, &o.base, 100, NULL, NULL) >
            0);
  /* topics without a rule here, and nothing to judge */
  CU_ASSERT_EQUAL(
      dom_record_check(LINLI_TOPIC_ORDER_STATUS, &o.base, 100, NULL, NULL), 0);
  CU_ASSERT_EQUAL(dom_record_check(LINLI_TOPIC_ORDERS, NULL, 100, NULL, NULL),
                  0);
  CU_ASSERT_EQUAL(dom_record_check(NULL, &o.base, 100, NULL, NULL), 0);
}

int linli_test_register(void) {
  CU_pSuite s = CU_add_suite("domain reservations", NULL, NULL);
  if (!s)
    return -1;
  CU_add_test(s, "results every reader takes", test_good_ones);
  CU_add_test(s, "results refused, and the field named", test_refusals);
  CU_add_test(s, "a record judged by its topic", test_records);
  return CU_get_error() == CUE_SUCCESS ? 0 : -1;
}
