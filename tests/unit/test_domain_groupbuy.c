/*
 * test_domain_groupbuy.c - unit tests of libdomain's group-buy rules:
 * campaign, join, leave and deadline validation (field named as the gateway
 * and the DLQ name it), tiers, the stored tier format, prepayments and
 * refunds to the fen.
 */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <string.h>

#include "domain/groupbuy.h"
#include "domain/groupbuy_state.h"
#include "settlements.pb-c.h"
#include "linli/error.h"
#include "linli_test.h"

#define NOW INT64_C(1800000000000)

struct campaign {
  Linli__CampaignOpened c;
  Linli__CampaignOpened__Tier t[4];
  Linli__CampaignOpened__Tier *tp[4];
};

/* tiers 5/20/50 at 1200/1000/900 fen, list 1500, deadline in an hour. */
static void campaign_init(struct campaign *k) {
  linli__campaign_opened__init(&k->c);
  static const int mins[] = {5, 20, 50};
  static const long long prices[] = {1200, 1000, 900};
  for (int i = 0; i < 3; i++) {
    linli__campaign_opened__tier__init(&k->t[i]);
    k->t[i].min_participants = mins[i];
    k->t[i].unit_price_fen = prices[i];
    k->tp[i] = &k->t[i];
  }
  k->c.campaign_id = "gb-1";
  k->c.app_id = "shop_a";
  k->c.sku_id = "rice-5kg";
  k->c.warehouse_id = "W1";
  k->c.list_price_fen = 1500;
  k->c.n_tiers = 3;
  k->c.tiers = k->tp;
  k->c.deadline_ms = NOW + 3600000;
  k->c.per_user_limit = 3;
  k->c.title = "五常大米";
}

struct errs {
  int n;
  char first[256];
};

static void collect(void *arg, const char *field, const char *msg) {
  struct errs *e = arg;
  if (e->n++ == 0)
    snprintf(e->first, sizeof e->first, "%s: %s", field, msg);
}

/* The check's first complaint names field (NULL: no complaint). */
static void expect_opened(struct campaign *k, const char *field) {
  struct errs e = {0};
  int n = dom_gb_check_opened(&k->c, NOW, collect, &e);
  CU_ASSERT_EQUAL(n, e.n);
  if (!field) {
    CU_ASSERT_EQUAL(n, 0);
    if (n)
      fprintf(stderr, "unexpected: %s\n", e.first);
    return;
  }
  CU_ASSERT_TRUE(n > 0);
  CU_ASSERT_EQUAL(strncmp(e.first, field, strlen(field)), 0);
  if (strncmp(e.first, field, strlen(field)) != 0)
    fprintf(stderr, "expected %s, got %s\n", field, e.first);
}

static void test_opened(void) {
  struct campaign k;
  campaign_init(&k);
  expect_opened(&k, NULL);

  campaign_init(&k);
  k.c.campaign_id = "bad id";
  expect_opened(&k, "campaign_id");
  campaign_init(&k);
  k.c.deadline_ms = NOW;
  expect_opened(&k, "deadline_ms");
  campaign_init(&k);
  k.c.deadline_ms = INT64_MAX;
  expect_opened(&k, "deadline_ms");
  campaign_init(&k);
  k.t[1].min_participants = 5; /* not strictly ascending */
  expect_opened(&k, "tiers[1].min_participants");
  campaign_init(&k);
  k.t[2].unit_price_fen = 1000; /* not strictly cheaper */
  expect_opened(&k, "tiers[2].unit_price_fen");
  campaign_init(&k);
  k.t[0].unit_price_fen = 1600; /* above list price */
  expect_opened(&k, "tiers[0].unit_price_fen");
  campaign_init(&k);
  k.t[0].unit_price_fen = INT64_MAX;
  expect_opened(&k, "tiers[0].unit_price_fen");
  campaign_init(&k);
  k.c.n_tiers = 0;
  expect_opened(&k, "tiers");
  campaign_init(&k);
  k.c.max_participants = 40; /* the 50-tier could never be reached */
  expect_opened(&k, "max_participants");
  campaign_init(&k);
  k.c.max_participants = 50;
  expect_opened(&k, NULL);
  campaign_init(&k);
  k.c.per_user_limit = -1;
  expect_opened(&k, "per_user_limit");
  campaign_init(&k);
  k.c.title = "\xff\xfe";
  expect_opened(&k, "title");
  campaign_init(&k);
  k.c.list_price_fen = 0;
  expect_opened(&k, "list_price_fen");
  /* Counting: every problem is reported, not just the first. */
  campaign_init(&k);
  k.c.sku_id = "";
  k.c.warehouse_id = "";
  struct errs e = {0};
  CU_ASSERT_EQUAL(dom_gb_check_opened(&k.c, NOW, collect, &e), 2);
  CU_ASSERT_EQUAL(dom_gb_check_opened(&k.c, NOW, NULL, NULL), 2);
}

static void test_join_leave_deadline(void) {
  Linli__GroupBuyJoined j = LINLI__GROUP_BUY_JOINED__INIT;
  j.campaign_id = "gb-1";
  j.user_id = "u1";
  j.order_id = "o1";
  j.quantity = 2;
  CU_ASSERT_EQUAL(dom_gb_check_joined(&j, NULL, NULL), 0);
  j.quantity = 0;
  CU_ASSERT_EQUAL(dom_gb_check_joined(&j, NULL, NULL), 1);
  j.quantity = DOM_MAX_QUANTITY + 1;
  CU_ASSERT_EQUAL(dom_gb_check_joined(&j, NULL, NULL), 1);
  j.quantity = 1;
  j.user_id = "u\xe4";
  struct errs e = {0};
  CU_ASSERT_EQUAL(dom_gb_check_joined(&j, collect, &e), 1);
  CU_ASSERT_EQUAL(strncmp(e.first, "user_id", 7), 0);

  Linli__GroupBuyLeft l = LINLI__GROUP_BUY_LEFT__INIT;
  l.campaign_id = "gb-1";
  l.user_id = "u1";
  l.order_id = "";
  CU_ASSERT_EQUAL(dom_gb_check_left(&l, NULL, NULL), 1);

  Linli__CampaignDeadline d = LINLI__CAMPAIGN_DEADLINE__INIT;
  d.campaign_id = "gb-1";
  d.deadline_ms = NOW;
  CU_ASSERT_EQUAL(dom_gb_check_deadline(&d, NULL, NULL), 0);
  d.deadline_ms = INT64_MAX;
  CU_ASSERT_EQUAL(dom_gb_check_deadline(&d, NULL, NULL), 1);
  CU_ASSERT_EQUAL(dom_gb_check_deadline(NULL, NULL, NULL), 1);
}

static void test_tiers(void) {
  const struct dom_gb_tier t[] = {{5, 1200}, {20, 1000}, {50, 900}};
  CU_ASSERT_EQUAL(dom_gb_tier_for(t, 3, 0), -1);
  CU_ASSERT_EQUAL(dom_gb_tier_for(t, 3, 4), -1);
  CU_ASSERT_EQUAL(dom_gb_tier_for(t, 3, 5), 0);
  CU_ASSERT_EQUAL(dom_gb_tier_for(t, 3, 23), 1);
  CU_ASSERT_EQUAL(dom_gb_tier_for(t, 3, 50), 2);
  CU_ASSERT_EQUAL(dom_gb_tier_for(t, 3, 5000), 2);
  CU_ASSERT_EQUAL(dom_gb_needed_for_next(t, 3, 0), 5);
  CU_ASSERT_EQUAL(dom_gb_needed_for_next(t, 3, 17), 3);
  CU_ASSERT_EQUAL(dom_gb_needed_for_next(t, 3, 50), 0);

  struct campaign k;
  campaign_init(&k);
  char buf[128];
  CU_ASSERT_EQUAL(dom_gb_tiers_format(&k.c, buf, sizeof buf), LINLI_OK);
  CU_ASSERT_STRING_EQUAL(buf, "5:1200,20:1000,50:900");
  CU_ASSERT_EQUAL(dom_gb_tiers_format(&k.c, buf, 8), LINLI_ERR_TOOBIG);
  struct dom_gb_tier p[DOM_GB_MAX_TIERS];
  size_t n = 0;
  CU_ASSERT_EQUAL(dom_gb_tiers_parse("5:1200,20:1000,50:900", p, 32, &n),
                  LINLI_OK);
  CU_ASSERT_EQUAL(n, 3);
  CU_ASSERT_EQUAL(p[1].min, 20);
  CU_ASSERT_EQUAL(p[2].price_fen, 900);
  static const char *const bad[] = {"",         "5",        "5:",
                                    "5:12,",    "5:12,4:10", "5:12,6:12",
                                    "a:1",      "5:-1",      "0:10",
                                    "5:1x",     "5:999999999999999999999"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    CU_ASSERT_EQUAL(dom_gb_tiers_parse(bad[i], p, 32, &n), LINLI_ERR_INVALID);
  CU_ASSERT_EQUAL(dom_gb_tiers_parse("1:3,2:2,3:1", p, 2, &n),
                  LINLI_ERR_INVALID);
}

static void test_refunds(void) {
  const struct dom_gb_tier t[] = {{5, 1200}, {20, 1000}, {50, 900}};
  int64_t v = -1;
  CU_ASSERT_EQUAL(dom_gb_prepaid(t, 3, 3, &v), LINLI_OK);
  CU_ASSERT_EQUAL(v, 3600);
  CU_ASSERT_EQUAL(dom_gb_refund(t, 3, 1, 3, &v), LINLI_OK);
  CU_ASSERT_EQUAL(v, 600); /* (1200 - 1000) * 3 */
  CU_ASSERT_EQUAL(dom_gb_refund(t, 3, 0, 3, &v), LINLI_OK);
  CU_ASSERT_EQUAL(v, 0);
  CU_ASSERT_EQUAL(dom_gb_refund(t, 3, -1, 2, &v), LINLI_OK);
  CU_ASSERT_EQUAL(v, 2400); /* failed: everything back */
  CU_ASSERT_EQUAL(dom_gb_refund(t, 3, 3, 1, &v), LINLI_ERR_INVALID);
  CU_ASSERT_EQUAL(dom_gb_refund(t, 3, 0, 0, &v), LINLI_ERR_INVALID);
  CU_ASSERT_EQUAL(dom_gb_refund(t, 3, 0, DOM_MAX_QUANTITY + 1, &v),
                  LINLI_ERR_INVALID);
  /* The largest allowed amounts do not overflow. */
  const struct dom_gb_tier big[] = {{1, DOM_MAX_PRICE_FEN}, {2, 1}};
  CU_ASSERT_EQUAL(dom_gb_refund(big, 2, 1, DOM_MAX_QUANTITY, &v), LINLI_OK);
  CU_ASSERT_EQUAL(v, (DOM_MAX_PRICE_FEN - 1) * DOM_MAX_QUANTITY);
}

/* Parse a copy of text; returns the parser's code (out filled). */
static int parse_text(const char *text, char *buf, size_t len,
                      struct dom_gb_outcome *out) {
  snprintf(buf, len, "%s", text);
  return dom_gb_outcome_parse(buf, out);
}

static void test_outcomes(void) {
  char buf[512];
  struct dom_gb_outcome o;
  CU_ASSERT_EQUAL(parse_text("OPENED", buf, sizeof buf, &o), LINLI_OK);
  CU_ASSERT_EQUAL(o.kind, DOM_GB_OPENED);
  CU_ASSERT_EQUAL(parse_text("DUPOPEN", buf, sizeof buf, &o), LINLI_OK);
  CU_ASSERT_EQUAL(o.kind, DOM_GB_DUPOPEN);

  CU_ASSERT_EQUAL(parse_text("JOINED|20|1|5:1200,20:1000", buf, sizeof buf, &o),
                  LINLI_OK);
  CU_ASSERT_EQUAL(o.kind, DOM_GB_JOINED);
  CU_ASSERT_EQUAL(o.participants, 20);
  CU_ASSERT_EQUAL(o.tier, 1);
  CU_ASSERT_EQUAL(o.ntiers, 2);
  CU_ASSERT_EQUAL(o.tiers[1].price_fen, 1000);
  CU_ASSERT_EQUAL(parse_text("JOINED|3|-1|5:1200", buf, sizeof buf, &o),
                  LINLI_OK);
  CU_ASSERT_EQUAL(o.tier, -1);
  /* A tier the campaign does not have. */
  CU_ASSERT_EQUAL(parse_text("JOINED|3|2|5:1200", buf, sizeof buf, &o),
                  LINLI_ERR_INVALID);

  CU_ASSERT_EQUAL(parse_text("LEFT|4|2|5:1200", buf, sizeof buf, &o), LINLI_OK);
  CU_ASSERT_EQUAL(o.kind, DOM_GB_LEFT);
  CU_ASSERT_EQUAL(o.quantity, 2);

  CU_ASSERT_EQUAL(parse_text("REJ|FULL|50", buf, sizeof buf, &o), LINLI_OK);
  CU_ASSERT_EQUAL(o.kind, DOM_GB_REJECTED);
  CU_ASSERT_EQUAL(o.reason, LINLI__JOIN_RESULT__REASON__FULL);
  CU_ASSERT_EQUAL(o.participants, 50);
  CU_ASSERT_EQUAL(parse_text("REJ|NOPE|50", buf, sizeof buf, &o),
                  LINLI_ERR_INVALID);

  CU_ASSERT_EQUAL(parse_text("END|1|23|5:1200,20:1000,50:900|o1:u1:2;o2:u2:1",
                             buf, sizeof buf, &o),
                  LINLI_OK);
  CU_ASSERT_EQUAL(o.kind, DOM_GB_ENDED);
  CU_ASSERT_EQUAL(o.tier, 1);
  CU_ASSERT_EQUAL(o.participants, 23);
  CU_ASSERT_EQUAL_FATAL(o.njoins, 2);
  CU_ASSERT_STRING_EQUAL(o.joins[0].order_id, "o1");
  CU_ASSERT_STRING_EQUAL(o.joins[0].user_id, "u1");
  CU_ASSERT_EQUAL(o.joins[0].quantity, 2);
  CU_ASSERT_STRING_EQUAL(o.joins[1].order_id, "o2");
  dom_gb_outcome_free(&o);
  /* A field a newer script adds before the joins (the warehouse) is
   * skipped: a replayed outcome of another version parses. */
  CU_ASSERT_EQUAL(parse_text("END|0|6|5:1200|W1|o1:u1:2", buf, sizeof buf,
                             &o),
                  LINLI_OK);
  CU_ASSERT_EQUAL_FATAL(o.njoins, 1);
  CU_ASSERT_STRING_EQUAL(o.joins[0].order_id, "o1");
  CU_ASSERT_EQUAL(o.joins[0].quantity, 2);
  dom_gb_outcome_free(&o);
  CU_ASSERT_EQUAL(parse_text("END|-1|0|5:1200|", buf, sizeof buf, &o),
                  LINLI_OK);
  CU_ASSERT_EQUAL(o.tier, -1);
  CU_ASSERT_EQUAL(o.njoins, 0);
  dom_gb_outcome_free(&o);
  CU_ASSERT_EQUAL(parse_text("END|0|1|5:1200|o1:u1", buf, sizeof buf, &o),
                  LINLI_ERR_INVALID);
  CU_ASSERT_EQUAL(parse_text("END|0|1|5:1200|o1:u1:0", buf, sizeof buf, &o),
                  LINLI_ERR_INVALID);
  CU_ASSERT_EQUAL(parse_text("END|0|1|5:1200|:u1:1", buf, sizeof buf, &o),
                  LINLI_ERR_INVALID);

  CU_ASSERT_EQUAL(parse_text("EARLY|1800000000000", buf, sizeof buf, &o),
                  LINLI_OK);
  CU_ASSERT_EQUAL(o.deadline_ms, INT64_C(1800000000000));
  CU_ASSERT_EQUAL(parse_text("ALREADY|SETTLED", buf, sizeof buf, &o),
                  LINLI_OK);
  CU_ASSERT_STRING_EQUAL(o.detail, "SETTLED");
  CU_ASSERT_EQUAL(parse_text("ERR|user_script:1: a|b", buf, sizeof buf, &o),
                  LINLI_OK);
  CU_ASSERT_EQUAL(o.kind, DOM_GB_ERROR);
  CU_ASSERT_STRING_EQUAL(o.detail, "user_script:1: a|b");
  static const char *const bad[] = {"", "OPENED|x", "JOINED|1|0", "WHAT",
                                    "REJ|FULL", "EARLY|x", "LEFT|1|0|5:10"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    CU_ASSERT_EQUAL(parse_text(bad[i], buf, sizeof buf, &o), LINLI_ERR_INVALID);
}

/* The C twin of the settler's script: the same decisions in the same
 * order (UNKNOWN, CLOSED, DUPLICATE, FULL, OVER_USER_LIMIT). */
static void test_campaign_machine(void) {
  struct campaign k;
  campaign_init(&k);
  k.c.max_participants = 50;
  struct dom_gb_campaign c;
  memset(&c, 0, sizeof c);
  int t = 0;
  CU_ASSERT_EQUAL(dom_gb_join(&c, 0, 0, 1, &t),
                  LINLI__JOIN_RESULT__REASON__UNKNOWN_CAMPAIGN);
  dom_gb_open(&c, &k.c);
  CU_ASSERT_EQUAL(c.cap, 50);
  for (int i = 0; i < 4; i++) {
    CU_ASSERT_EQUAL(dom_gb_join(&c, 0, 0, 1, &t), 0);
    CU_ASSERT_EQUAL(t, -1);
  }
  CU_ASSERT_EQUAL(dom_gb_join(&c, 0, 0, 1, &t), 0);
  CU_ASSERT_EQUAL(t, 0); /* the 5th participant announces tier 0 */
  CU_ASSERT_EQUAL(dom_gb_join(&c, 1, 1, 1, &t),
                  LINLI__JOIN_RESULT__REASON__DUPLICATE);
  CU_ASSERT_EQUAL(dom_gb_join(&c, 1, 0, 3, &t),
                  LINLI__JOIN_RESULT__REASON__OVER_USER_LIMIT);
  CU_ASSERT_EQUAL(dom_gb_join(&c, 1, 0, 2, &t), 0); /* same user, 3 units */
  CU_ASSERT_EQUAL(c.participants, 5);
  CU_ASSERT_EQUAL(c.joins, 6);
  /* A leave back below tier 0 does not announce it again later. */
  CU_ASSERT_EQUAL(dom_gb_leave(&c, 1, 0), 0);
  CU_ASSERT_EQUAL(c.participants, 4);
  CU_ASSERT_EQUAL(dom_gb_join(&c, 0, 0, 1, &t), 0);
  CU_ASSERT_EQUAL(t, -1);
  CU_ASSERT_EQUAL(dom_gb_leave(&c, 0, 0),
                  LINLI__JOIN_RESULT__REASON__NOT_JOINED);
  /* Full: a new user is refused, an existing one may add units. */
  c.participants = 50;
  CU_ASSERT_EQUAL(dom_gb_join(&c, 0, 0, 1, &t),
                  LINLI__JOIN_RESULT__REASON__FULL);
  CU_ASSERT_EQUAL(dom_gb_join(&c, 1, 0, 1, &t), 0);
  /* Early deadline: nothing; on time: settled at the tier reached. */
  c.participants = 23;
  CU_ASSERT_EQUAL(dom_gb_end(&c, k.c.deadline_ms - 1), 0);
  CU_ASSERT_EQUAL(c.state, DOM_GB_OPEN);
  CU_ASSERT_EQUAL(dom_gb_end(&c, k.c.deadline_ms), 1);
  CU_ASSERT_EQUAL(c.state, DOM_GB_SETTLED);
  CU_ASSERT_EQUAL(c.tier, 1);
  CU_ASSERT_EQUAL(dom_gb_end(&c, k.c.deadline_ms + 5), 0); /* once */
  CU_ASSERT_EQUAL(dom_gb_join(&c, 0, 0, 1, &t),
                  LINLI__JOIN_RESULT__REASON__CLOSED);
  CU_ASSERT_EQUAL(dom_gb_leave(&c, 1, 0), LINLI__JOIN_RESULT__REASON__CLOSED);
  /* Below the minimum: failed. */
  dom_gb_open(&c, &k.c);
  c.participants = 4;
  CU_ASSERT_EQUAL(dom_gb_end(&c, k.c.deadline_ms), 1);
  CU_ASSERT_EQUAL(c.state, DOM_GB_FAILED);
  CU_ASSERT_EQUAL(c.tier, -1);
}

int linli_test_register(void) {
  CU_pSuite s = CU_add_suite("domain: group-buy", NULL, NULL);
  if (!s)
    return -1;
  CU_add_test(s, "campaign opened", test_opened);
  CU_add_test(s, "join, leave, deadline", test_join_leave_deadline);
  CU_add_test(s, "tiers", test_tiers);
  CU_add_test(s, "prepayments and refunds", test_refunds);
  CU_add_test(s, "script outcomes", test_outcomes);
  CU_add_test(s, "campaign state machine", test_campaign_machine);
  return CU_get_error() == CUE_SUCCESS ? 0 : -1;
}
