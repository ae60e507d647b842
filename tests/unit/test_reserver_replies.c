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

/* Campaign orders: held and settled payments, a payment after the
 * failure, and a campaign's decision with its orders. */
static void test_campaign(void) {
  struct rsv_pay p;
  const char h[] = "HELD|1|0|\x0a|\x00";
  CU_ASSERT_EQUAL(rsv_parse_pay(h, sizeof h - 1, &p), LINLI_OK);
  CU_ASSERT_EQUAL(p.kind, RSV_PAY_HELD);
  CU_ASSERT_EQUAL(p.storage_class, 1);
  CU_ASSERT_EQUAL(p.pb.n, 3);
  const char c[] = "CPAID|90|2|30|\x0a|z";
  CU_ASSERT_EQUAL(rsv_parse_pay(c, sizeof c - 1, &p), LINLI_OK);
  CU_ASSERT_EQUAL(p.kind, RSV_PAY_SETTLED);
  CU_ASSERT_EQUAL(p.price, 90);
  CU_ASSERT_EQUAL(p.storage_class, 2);
  CU_ASSERT_EQUAL(p.over, 30);
  CU_ASSERT_EQUAL(p.pb.n, 3);
  CU_ASSERT_EQUAL(rsv_parse_pay(S("GFAIL|u1|240"), &p), LINLI_OK);
  CU_ASSERT(p.kind == RSV_PAY_GFAILED && eq(p.usr, "u1") && p.covered == 240);
  const char *badp[] = {"HELD|1|0", "CPAID|x|1|0|", "CPAID|90|1|0",
                        "GFAIL|u1", "GFAIL|u1|-1"};
  for (size_t i = 0; i < sizeof badp / sizeof *badp; i++)
    CU_ASSERT_EQUAL(rsv_parse_pay(badp[i], strlen(badp[i]), &p),
                    LINLI_ERR_INVALID);

  struct rsv_camp k;
  struct rsv_camp_order o;
  /* two orders; the second's stored bytes hold ':' and '|' */
  const char s[] = "SETTLED|90|2|o1:1:0:2:ab" "o2:0:3:3::|x";
  CU_ASSERT_EQUAL(rsv_parse_camp(s, sizeof s - 1, &k), LINLI_OK);
  CU_ASSERT_EQUAL(k.kind, RSV_CAMP_SETTLED);
  CU_ASSERT_EQUAL(k.price, 90);
  CU_ASSERT_EQUAL(k.count, 2);
  struct rsv_str rest = k.entries;
  CU_ASSERT_EQUAL(rsv_camp_next(&rest, &o), 1);
  CU_ASSERT(eq(o.order_id, "o1") && o.a == 1 && o.b == 0 && eq(o.pb, "ab"));
  CU_ASSERT_EQUAL(rsv_camp_next(&rest, &o), 1);
  CU_ASSERT(eq(o.order_id, "o2") && o.a == 0 && o.b == 3 && eq(o.pb, ":|x"));
  CU_ASSERT_EQUAL(rsv_camp_next(&rest, &o), 0);
  CU_ASSERT_EQUAL(rsv_parse_camp(S("FAILED|0|1|o1:0:-1:0:"), &k), LINLI_OK);
  CU_ASSERT_EQUAL(k.kind, RSV_CAMP_FAILED);
  rest = k.entries;
  CU_ASSERT_EQUAL(rsv_camp_next(&rest, &o), 1);
  CU_ASSERT(o.b == -1 && o.pb.n == 0);
  CU_ASSERT_EQUAL(rsv_parse_camp(S("ALREADY|SETTLED"), &k), LINLI_OK);
  CU_ASSERT(k.kind == RSV_CAMP_ALREADY && eq(k.state, "SETTLED"));
  const char *badc[] = {"SETTLED|90|1", "DONE|0|0|", "FAILED|0|x|", ""};
  for (size_t i = 0; i < sizeof badc / sizeof *badc; i++)
    CU_ASSERT_EQUAL(rsv_parse_camp(badc[i], strlen(badc[i]), &k),
                    LINLI_ERR_INVALID);
  /* a length past the end, a missing field */
  const char *bade[] = {"o1:0:0:9:ab", "o1:0:0", ":0:0:0:"};
  for (size_t i = 0; i < sizeof bade / sizeof *bade; i++) {
    rest = (struct rsv_str){bade[i], strlen(bade[i])};
    CU_ASSERT_EQUAL(rsv_camp_next(&rest, &o), LINLI_ERR_INVALID);
  }
}

int linli_test_register(void) {
  CU_pSuite s = CU_add_suite("reserver script outcomes", NULL, NULL);
  if (!s)
    return -1;
  CU_add_test(s, "placement", test_place);
  CU_add_test(s, "payment", test_pay);
  CU_add_test(s, "release", test_release);
  CU_add_test(s, "adjustment and script errors", test_adjust_and_errors);
  CU_add_test(s, "campaign orders", test_campaign);
  return CU_get_error() == CUE_SUCCESS ? 0 : -1;
}
