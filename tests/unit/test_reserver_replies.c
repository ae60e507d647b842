/*
 * test_reserver_replies.c - the typed parsers of the reserver's script
 * outcomes (consumers/reserver/replies.h): every outcome the scripts write
 * parses into the right fields, and text no script writes is refused.
 */
#include <CUnit/CUnit.h>
#include <string.h>

#include "linli/error.h"
#include "linli_test.h"
#include "replies.h"

#define S(lit) lit, sizeof(lit) - 1

static int eq(struct rsv_str s, const char *want) {
  return s.n == strlen(want) && memcmp(s.p, want, s.n) == 0;
}

static void test_place(void) {
  struct rsv_place p;
  CU_ASSERT_EQUAL(rsv_parse_place(S("RESERVED"), &p), LINLI_OK);
  CU_ASSERT_EQUAL(p.kind, RSV_PLACE_RESERVED);
  CU_ASSERT_FALSE(p.same);
  CU_ASSERT_EQUAL(rsv_parse_place(S("DUP"), &p), LINLI_OK);
  CU_ASSERT_EQUAL(p.kind, RSV_PLACE_DUP);
  CU_ASSERT_EQUAL(rsv_parse_place(S("REJ|UNKNOWN_SKU|s1 is not in the "
                                    "catalog"), &p), LINLI_OK);
  CU_ASSERT_EQUAL(p.kind, RSV_PLACE_REJ);
  CU_ASSERT(eq(p.reason, "UNKNOWN_SKU"));
  CU_ASSERT(eq(p.detail, "s1 is not in the catalog"));
  /* a detail may hold '|' */
  CU_ASSERT_EQUAL(rsv_parse_place(S("REJ|INVALID_ORDER|a|b"), &p), LINLI_OK);
  CU_ASSERT(eq(p.detail, "a|b"));
  CU_ASSERT_EQUAL(rsv_parse_place(S("REJ|DELISTED"), &p), LINLI_OK);
  CU_ASSERT(eq(p.reason, "DELISTED"));
  CU_ASSERT_EQUAL(p.detail.n, 0);

  CU_ASSERT_EQUAL(rsv_parse_place(S("SHORT|a:3:1;b-2:10:0"), &p), LINLI_OK);
  CU_ASSERT_EQUAL(p.kind, RSV_PLACE_SHORT);
  struct rsv_str rest = p.shorts;
  struct rsv_short sh;
  CU_ASSERT_EQUAL(rsv_short_next(&rest, &sh), 1);
  CU_ASSERT(eq(sh.sku, "a"));
  CU_ASSERT_EQUAL(sh.requested, 3);
  CU_ASSERT_EQUAL(sh.available, 1);
  CU_ASSERT_EQUAL(rsv_short_next(&rest, &sh), 1);
  CU_ASSERT(eq(sh.sku, "b-2"));
  CU_ASSERT_EQUAL(sh.requested, 10);
  CU_ASSERT_EQUAL(sh.available, 0);
  CU_ASSERT_EQUAL(rsv_short_next(&rest, &sh), 0);

  /* the same event again: the first outcome, marked */
  CU_ASSERT_EQUAL(rsv_parse_place(S("SAME|SHORT|a:3:1"), &p), LINLI_OK);
  CU_ASSERT(p.same);
  CU_ASSERT_EQUAL(p.kind, RSV_PLACE_SHORT);
  CU_ASSERT_EQUAL(rsv_parse_place(S("SAME|RESERVED"), &p), LINLI_OK);
  CU_ASSERT(p.same && p.kind == RSV_PLACE_RESERVED);

  const char *badv[] = {"", "RESERVED|x", "DUP|", "REJ|", "SHORT|", "SAME",
                        "reserved", "OK|1"};
  for (size_t i = 0; i < sizeof badv / sizeof *badv; i++)
    CU_ASSERT_EQUAL(rsv_parse_place(badv[i], strlen(badv[i]), &p),
                    LINLI_ERR_INVALID);
  rest = (struct rsv_str){S("a:x:1")};
  CU_ASSERT_EQUAL(rsv_short_next(&rest, &sh), LINLI_ERR_INVALID);
  rest = (struct rsv_str){S("a:1")};
  CU_ASSERT_EQUAL(rsv_short_next(&rest, &sh), LINLI_ERR_INVALID);
  rest = (struct rsv_str){S(":1:1")};
  CU_ASSERT_EQUAL(rsv_short_next(&rest, &sh), LINLI_ERR_INVALID);
}

static void test_pay(void) {
  struct rsv_pay p;
  /* the stored OrderPlaced bytes are binary and may hold '|' and NUL */
  const char c[] = "COMMITTED|2|150|\x0a\x03|\x00z";
  CU_ASSERT_EQUAL(rsv_parse_pay(c, sizeof c - 1, &p), LINLI_OK);
  CU_ASSERT_EQUAL(p.kind, RSV_PAY_COMMITTED);
  CU_ASSERT_EQUAL(p.storage_class, 2);
  CU_ASSERT_EQUAL(p.over, 150);
  CU_ASSERT_EQUAL(p.pb.n, 5);
  CU_ASSERT_EQUAL(memcmp(p.pb.p, "\x0a\x03|\x00z", 5), 0);
  CU_ASSERT_EQUAL(rsv_parse_pay(S("COMMITTED|0|0|"), &p), LINLI_OK);
  CU_ASSERT_EQUAL(p.pb.n, 0);

  CU_ASSERT_EQUAL(rsv_parse_pay(S("UNDER|u1|9980"), &p), LINLI_OK);
  CU_ASSERT_EQUAL(p.kind, RSV_PAY_UNDER);
  CU_ASSERT(eq(p.usr, "u1"));
  CU_ASSERT_EQUAL(p.total, 9980);
  CU_ASSERT_EQUAL(rsv_parse_pay(S("DOUBLE|u1|txn-1"), &p), LINLI_OK);
  CU_ASSERT_EQUAL(p.kind, RSV_PAY_DOUBLE);
  CU_ASSERT(eq(p.usr, "u1") && eq(p.txn, "txn-1"));
  CU_ASSERT_EQUAL(rsv_parse_pay(S("LATE|u2"), &p), LINLI_OK);
  CU_ASSERT(p.kind == RSV_PAY_LATE && eq(p.usr, "u2"));
  CU_ASSERT_EQUAL(rsv_parse_pay(S("CANCELLED|u3"), &p), LINLI_OK);
  CU_ASSERT_EQUAL(p.kind, RSV_PAY_CANCELLED);
  CU_ASSERT_EQUAL(rsv_parse_pay(S("REJECTED|"), &p), LINLI_OK);
  CU_ASSERT(p.kind == RSV_PAY_REJECTED && p.usr.n == 0);
  CU_ASSERT_EQUAL(rsv_parse_pay(S("REPEAT"), &p), LINLI_OK);
  CU_ASSERT_EQUAL(p.kind, RSV_PAY_REPEAT);
  CU_ASSERT_EQUAL(rsv_parse_pay(S("NOORDER"), &p), LINLI_OK);
  CU_ASSERT_EQUAL(p.kind, RSV_PAY_NOORDER);

  const char *badv[] = {"COMMITTED|x|0|", "COMMITTED|1|-5|", "COMMITTED|1",
                        "COMMITTED|99|0|", "UNDER|u1", "UNDER|u1|x",
                        "LATE", "REPEAT|x", "PAID|u", ""};
  for (size_t i = 0; i < sizeof badv / sizeof *badv; i++)
    CU_ASSERT_EQUAL(rsv_parse_pay(badv[i], strlen(badv[i]), &p),
                    LINLI_ERR_INVALID);
}

static void test_release(void) {
  struct rsv_release r;
  CU_ASSERT_EQUAL(rsv_parse_release(S("RELEASED|u1"), &r), LINLI_OK);
  CU_ASSERT(r.kind == RSV_REL_RELEASED && eq(r.usr, "u1"));
  CU_ASSERT_EQUAL(rsv_parse_release(S("PAID|u1"), &r), LINLI_OK);
  CU_ASSERT_EQUAL(r.kind, RSV_REL_PAID);
  CU_ASSERT_EQUAL(rsv_parse_release(S("ALREADY|EXPIRED"), &r), LINLI_OK);
  CU_ASSERT(r.kind == RSV_REL_ALREADY && eq(r.state, "EXPIRED"));
  CU_ASSERT_EQUAL(rsv_parse_release(S("EARLY|1700000000000"), &r), LINLI_OK);
  CU_ASSERT(r.kind == RSV_REL_EARLY && r.deadline == 1700000000000LL);
  CU_ASSERT_EQUAL(rsv_parse_release(S("NOORDER"), &r), LINLI_OK);
  CU_ASSERT_EQUAL(r.kind, RSV_REL_NOORDER);
  const char *badv[] = {"EARLY|", "EARLY|12a", "RELEASED", "GONE", ""};
  for (size_t i = 0; i < sizeof badv / sizeof *badv; i++)
    CU_ASSERT_EQUAL(rsv_parse_release(badv[i], strlen(badv[i]), &r),
                    LINLI_ERR_INVALID);
}

static void test_adjust_and_errors(void) {
  struct rsv_adjust a;
  CU_ASSERT_EQUAL(rsv_parse_adjust(S("OK|42"), &a), LINLI_OK);
  CU_ASSERT(a.kind == RSV_ADJ_OK && a.available == 42);
  CU_ASSERT_EQUAL(rsv_parse_adjust(S("NEG|-3"), &a), LINLI_OK);
  CU_ASSERT(a.kind == RSV_ADJ_NEG && a.available == -3);
  CU_ASSERT_EQUAL(rsv_parse_adjust(S("OK"), &a), LINLI_ERR_INVALID);
  CU_ASSERT_EQUAL(rsv_parse_adjust(S("OK|"), &a), LINLI_ERR_INVALID);
  CU_ASSERT_EQUAL(rsv_parse_adjust(S("OK|-"), &a), LINLI_ERR_INVALID);
  CU_ASSERT_EQUAL(rsv_parse_adjust(S("OK|1234567890123456789"), &a),
                  LINLI_ERR_INVALID);
  struct rsv_str msg;
  CU_ASSERT(rsv_is_error(S("ERR|user_script:1: boom"), &msg));
  CU_ASSERT(eq(msg, "user_script:1: boom"));
  CU_ASSERT_FALSE(rsv_is_error(S("ERR"), &msg));
  CU_ASSERT_FALSE(rsv_is_error(S("RESERVED"), &msg));
}

int linli_test_register(void) {
  CU_pSuite s = CU_add_suite("reserver script outcomes", NULL, NULL);
  if (!s)
    return -1;
  CU_add_test(s, "placement", test_place);
  CU_add_test(s, "payment", test_pay);
  CU_add_test(s, "release", test_release);
  CU_add_test(s, "adjustment and script errors", test_adjust_and_errors);
  return CU_get_error() == CUE_SUCCESS ? 0 : -1;
}
