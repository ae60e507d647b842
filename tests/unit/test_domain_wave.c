/*
 * test_domain_wave.c - unit tests of libdomain's waves (domain/wave.h):
 * reference data accepted, and every bad entry rejected with
 * "file:line: reason"; the shipped config/router-reference.conf loads; the
 * schedule (latest cutoff, wave ids, departures, opening hours); item
 * validation naming the field; records and script outcomes round-trip.
 */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domain/wave.h"
#include "linli/error.h"
#include "linli_test.h"

/* 2026-12-06 00:00 UTC */
#define DAY0 INT64_C(1796515200000)
#define MIN INT64_C(60000)
#define HOUR (60 * MIN)

static const char GOOD[] =
    "# a comment\n"
    "warehouse W1 lat=30.2741 lng=120.1551 cutoffs=22:00,10:00 depart=07:00 "
    "express_every_min=15 utc_offset_min=480\n"
    "\n"
    "pickup PP1 community=xixi lat=30.2705 lng=120.0803 hours=08:00-21:00 "
    "capacity=3  # trailing comment\n"
    "vehicle V2 warehouse=W1 kg=800 items=250 refrigerated=yes shift_min=480\n"
    "vehicle V1 warehouse=W1 kg=1200 items=400 refrigerated=no shift_min=600\n";

static void test_ref_good(void) {
  struct dom_ref ref;
  char err[256] = "";
  CU_ASSERT_EQUAL_FATAL(dom_ref_parse(GOOD, "ref.conf", &ref, err, sizeof err),
                        LINLI_OK);
  CU_ASSERT_EQUAL(ref.nwh, 1);
  CU_ASSERT_EQUAL(ref.npp, 1);
  CU_ASSERT_EQUAL(ref.nveh, 2);
  const struct dom_ref_warehouse *w = dom_ref_warehouse(&ref, "W1");
  CU_ASSERT_PTR_NOT_NULL_FATAL(w);
  CU_ASSERT_EQUAL(w->lat_e6, 30274100);
  CU_ASSERT_EQUAL(w->lng_e6, 120155100);
  CU_ASSERT_EQUAL(w->ncutoffs, 2);
  CU_ASSERT_EQUAL(w->cutoff_min[0], 600); /* sorted */
  CU_ASSERT_EQUAL(w->cutoff_min[1], 1320);
  const struct dom_ref_pickup *p = dom_ref_pickup(&ref, "PP1");
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  CU_ASSERT_STRING_EQUAL(p->community, "xixi");
  CU_ASSERT_EQUAL(p->capacity, 3);
  CU_ASSERT_PTR_NULL(dom_ref_pickup(&ref, "PP2"));
  size_t n = 0;
  const struct dom_ref_vehicle *v = dom_ref_vehicles(&ref, "W1", &n);
  CU_ASSERT_EQUAL_FATAL(n, 2);
  CU_ASSERT_STRING_EQUAL(v[0].id, "V1");
  CU_ASSERT_EQUAL(v[1].cap_weight_g, 800000);
  CU_ASSERT(v[1].refrigerated);
  CU_ASSERT_EQUAL(v[1].shift_ms, 480 * MIN);
  dom_ref_free(&ref);
}

static void test_ref_shipped(void) {
  char path[512];
  linli_test_source_path("config/router-reference.conf", path, sizeof path);
  FILE *f = fopen(path, "r");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  char *text = calloc(1, 1 << 16);
  CU_ASSERT_PTR_NOT_NULL_FATAL(text);
  size_t got = fread(text, 1, (1 << 16) - 1, f);
  fclose(f);
  CU_ASSERT(got > 0);
  struct dom_ref ref;
  char err[256] = "";
  int rc = dom_ref_parse(text, path, &ref, err, sizeof err);
  if (rc != LINLI_OK)
    fprintf(stderr, "%s\n", err);
  CU_ASSERT_EQUAL(rc, LINLI_OK);
  CU_ASSERT(ref.nwh >= 1 && ref.npp >= 1 && ref.nveh >= 1);
  dom_ref_free(&ref);
  free(text);
}

static void expect_bad(const char *text, const char *want) {
  struct dom_ref ref;
  char err[256] = "";
  CU_ASSERT_EQUAL(dom_ref_parse(text, "ref.conf", &ref, err, sizeof err),
                  LINLI_ERR_CONFIG);
  if (!strstr(err, want)) {
    fprintf(stderr, "\n  want '%s', got '%s'\n", want, err);
    CU_FAIL("wrong reason");
  }
}

#define WH "warehouse W1 lat=30 lng=120 cutoffs=22:00 depart=07:00\n"
#define VEH "vehicle V1 warehouse=W1 kg=1 items=1 refrigerated=no shift_min=60\n"

static void test_ref_bad(void) {
  expect_bad(WH VEH "pickup P1 community=c lat=91 lng=1 hours=08:00-20:00 "
                    "capacity=1\n",
             "ref.conf:3: pickup P1: lat:");
  expect_bad(WH VEH "pickup P1 community=c lat=30.1234567 lng=1 "
                    "hours=08:00-20:00 capacity=1\n",
             "ref.conf:3: pickup P1: lat:");
  expect_bad(WH VEH "pickup P1 community=c lat=30 lng=1 hours=20:00-08:00 "
                    "capacity=1\n",
             "ref.conf:3: pickup P1: hours:");
  expect_bad(WH VEH "pickup P1 community=c lat=30 lng=1 hours=08:00-20:00 "
                    "capacity=0\n",
             "ref.conf:3: pickup P1: capacity:");
  expect_bad(WH VEH "pickup P1 community=c lat=30 lng=1 hours=08:00-20:00 "
                    "capacity=5 colour=red\n",
             "ref.conf:3: pickup P1: unknown key 'colour'");
  expect_bad(WH "vehicle V1 warehouse=W9 kg=1 items=1 refrigerated=no "
                "shift_min=60\n",
             "ref.conf:2: vehicle V1: unknown warehouse W9");
  expect_bad(WH VEH "vehicle V2 warehouse=W1 kg=1 items=1 refrigerated=maybe "
                    "shift_min=60\n",
             "ref.conf:3: vehicle V2: refrigerated:");
  expect_bad(WH VEH "vehicle V2 warehouse=W1 kg=-5 items=1 refrigerated=no "
                    "shift_min=60\n",
             "ref.conf:3: vehicle V2: kg:");
  expect_bad(WH VEH VEH, "ref.conf:3: vehicle V1: defined twice");
  expect_bad(WH, "ref.conf:1: warehouse W1: has no vehicle");
  expect_bad("warehouse W1 lat=30 lng=120 cutoffs=25:00 depart=07:00\n",
             "ref.conf:1: warehouse W1: cutoffs: '25:00' is not HH:MM");
  expect_bad("truck T1\n", "ref.conf:1: unknown entry 'truck'");
  expect_bad("pickup bad/id\n", "ref.conf:1: pickup: need an id");
  expect_bad(WH VEH "pickup P1 community=c community=d\n",
             "ref.conf:3: community given twice");
}

static void test_schedule(void) {
  struct dom_ref ref;
  char err[256];
  CU_ASSERT_EQUAL_FATAL(dom_ref_parse(GOOD, "r", &ref, err, sizeof err),
                        LINLI_OK);
  const struct dom_ref_warehouse *w = dom_ref_warehouse(&ref, "W1");
  /* Local = UTC+8: cutoffs 10:00 and 22:00 local are 02:00 and 14:00 UTC. */
  CU_ASSERT_EQUAL(dom_wave_cutoff_before(w, 'd', DAY0 + 3 * HOUR),
                  DAY0 + 2 * HOUR);
  CU_ASSERT_EQUAL(dom_wave_cutoff_before(w, 'd', DAY0 + 2 * HOUR),
                  DAY0 + 2 * HOUR);
  CU_ASSERT_EQUAL(dom_wave_cutoff_before(w, 'd', DAY0 + HOUR),
                  DAY0 - 10 * HOUR); /* yesterday 22:00 local */
  CU_ASSERT_EQUAL(dom_wave_cutoff_before(w, 'x', DAY0 + 7 * MIN), DAY0);
  CU_ASSERT_EQUAL(dom_wave_cutoff_before(w, 'x', DAY0 + 16 * MIN),
                  DAY0 + 15 * MIN);
  char id[32];
  dom_wave_id(w, 'd', DAY0 + 14 * HOUR, id, sizeof id);
  CU_ASSERT_STRING_EQUAL(id, "d20261206-2200");
  dom_wave_id(w, 'x', DAY0 + 16 * HOUR + 15 * MIN, id, sizeof id);
  CU_ASSERT_STRING_EQUAL(id, "x20261207-0015");
  /* Daily waves leave at the next 07:00 local (23:00 UTC). */
  CU_ASSERT_EQUAL(dom_wave_depart_ms(w, 'd', DAY0 + 14 * HOUR, 0),
                  DAY0 + 23 * HOUR);
  CU_ASSERT_EQUAL(dom_wave_depart_ms(w, 'x', DAY0, 600000), DAY0 + 600000);
  CU_ASSERT_EQUAL(dom_wave_kind(w, 1), 'x');
  CU_ASSERT_EQUAL(dom_wave_kind(w, 0), 'd');
  /* Opening hours 08:00-21:00 local on the departure's day, or the next
   * day's once they closed. */
  const struct dom_ref_pickup *p = dom_ref_pickup(&ref, "PP1");
  int64_t o = 0, c = 0;
  dom_wave_pickup_window(p, 480, DAY0 + 23 * HOUR, &o, &c);
  CU_ASSERT_EQUAL(o, DAY0 + 24 * HOUR);
  CU_ASSERT_EQUAL(c, DAY0 + 37 * HOUR);
  dom_wave_pickup_window(p, 480, DAY0 + 14 * HOUR, &o, &c);
  CU_ASSERT_EQUAL(o, DAY0 + 24 * HOUR); /* 22:00 local: closed, tomorrow */
  dom_ref_free(&ref);
}

static void first_err(void *arg, const char *field, const char *msg) {
  char *buf = arg;
  (void)msg;
  if (!buf[0])
    snprintf(buf, 128, "%s", field);
}

static void test_item_and_record(void) {
  Linli__FulfillmentItem it = LINLI__FULFILLMENT_ITEM__INIT;
  Linli__OrderLine l1 = LINLI__ORDER_LINE__INIT, l2 = LINLI__ORDER_LINE__INIT;
  Linli__OrderLine *lines[] = {&l1, &l2};
  Linli__PickupDelivery pd = LINLI__PICKUP_DELIVERY__INIT;
  l1.sku_id = "milk-1l", l1.quantity = 2;
  l2.sku_id = "rice-5kg", l2.quantity = 1;
  pd.pickup_point_id = "PP1";
  it.order_id = "o-1", it.warehouse_id = "W1", it.user_id = "u-1";
  it.n_lines = 2, it.lines = lines;
  it.storage_class = LINLI__STORAGE_CLASS__CHILLED;
  it.delivery_case = LINLI__FULFILLMENT_ITEM__DELIVERY_PICKUP;
  it.pickup = &pd;
  it.weight_g = 6000;
  char field[128] = "";
  CU_ASSERT_EQUAL(dom_wave_check_item(&it, first_err, field), 0);
  l2.quantity = 0;
  CU_ASSERT(dom_wave_check_item(&it, first_err, field) > 0);
  CU_ASSERT_STRING_EQUAL(field, "lines[1].quantity");
  l2.quantity = 1;
  field[0] = '\0';
  it.slot_start_ms = 5, it.slot_end_ms = 4;
  CU_ASSERT(dom_wave_check_item(&it, first_err, field) > 0);
  CU_ASSERT_STRING_EQUAL(field, "slot_end_ms");
  it.slot_start_ms = it.slot_end_ms = 0;
  field[0] = '\0';
  it.delivery_case = LINLI__FULFILLMENT_ITEM__DELIVERY__NOT_SET;
  CU_ASSERT(dom_wave_check_item(&it, first_err, field) > 0);
  CU_ASSERT_STRING_EQUAL(field, "delivery");
  it.delivery_case = LINLI__FULFILLMENT_ITEM__DELIVERY_PICKUP;
  /* No class known (the reserver sends 0): ambient, not an error. */
  it.storage_class = LINLI__STORAGE_CLASS__STORAGE_CLASS_UNSPECIFIED;
  CU_ASSERT_EQUAL(dom_wave_check_item(&it, first_err, field), 0);
  char r0[256];
  CU_ASSERT_EQUAL(dom_wave_record(&it, r0, sizeof r0), LINLI_OK);
  CU_ASSERT_PTR_NOT_NULL(strstr(r0, "|P:PP1|1|"));
  it.storage_class = LINLI__STORAGE_CLASS__CHILLED;

  /* Two records in a closed wave's outcome, parsed back. */
  char r1[256], r2[256], out[600];
  CU_ASSERT_EQUAL(dom_wave_record(&it, r1, sizeof r1), LINLI_OK);
  Linli__HomeDelivery hd = LINLI__HOME_DELIVERY__INIT;
  hd.lat_e6 = 30123456, hd.lng_e6 = -120000001;
  it.order_id = "o-2";
  it.delivery_case = LINLI__FULFILLMENT_ITEM__DELIVERY_HOME;
  it.home = &hd;
  it.slot_start_ms = 1000, it.slot_end_ms = 2000;
  CU_ASSERT_EQUAL(dom_wave_record(&it, r2, sizeof r2), LINLI_OK);
  CU_ASSERT_EQUAL(dom_wave_record(&it, r2, 10), LINLI_ERR_TOOBIG);
  CU_ASSERT_EQUAL(dom_wave_record(&it, r2, sizeof r2), LINLI_OK);
  snprintf(out, sizeof out, "WAVE|2|%s\n%s", r1, r2);
  struct dom_wave_outcome o;
  CU_ASSERT_EQUAL_FATAL(dom_wave_outcome_parse(out, strlen(out), &o),
                        LINLI_OK);
  CU_ASSERT_EQUAL(o.kind, DOM_WAVE_CLOSED);
  CU_ASSERT_EQUAL_FATAL(o.nitems, 2);
  CU_ASSERT_STRING_EQUAL(o.items[0].order_id, "o-1");
  CU_ASSERT_STRING_EQUAL(o.items[0].pickup_point_id, "PP1");
  CU_ASSERT_EQUAL(o.items[0].storage_class, LINLI__STORAGE_CLASS__CHILLED);
  CU_ASSERT_EQUAL(o.items[0].weight_g, 6000);
  CU_ASSERT_EQUAL(o.items[0].items, 3);
  CU_ASSERT_EQUAL_FATAL(o.items[0].nlines, 2);
  CU_ASSERT_STRING_EQUAL(o.items[0].lines[1].sku_id, "rice-5kg");
  CU_ASSERT_PTR_NULL(o.items[1].pickup_point_id);
  CU_ASSERT_EQUAL(o.items[1].lat_e6, 30123456);
  CU_ASSERT_EQUAL(o.items[1].lng_e6, -120000001);
  CU_ASSERT_EQUAL(o.items[1].slot_end_ms, 2000);
  dom_wave_outcome_free(&o);

  char empty[] = "WAVE|0|", added[] = "ADDED|3", dup[] = "DUP",
       already[] = "ALREADY|5", errs[] = "ERR|boom", bad1[] = "WAVE|2|x",
       bad2[] = "NOPE";
  CU_ASSERT_EQUAL(dom_wave_outcome_parse(empty, strlen(empty), &o), LINLI_OK);
  CU_ASSERT_EQUAL(o.kind, DOM_WAVE_CLOSED);
  CU_ASSERT_EQUAL(o.nitems, 0);
  CU_ASSERT_EQUAL(dom_wave_outcome_parse(added, strlen(added), &o), LINLI_OK);
  CU_ASSERT_EQUAL(o.kind, DOM_WAVE_ADDED);
  CU_ASSERT_EQUAL(dom_wave_outcome_parse(dup, strlen(dup), &o), LINLI_OK);
  CU_ASSERT_EQUAL(o.kind, DOM_WAVE_DUP);
  CU_ASSERT_EQUAL(dom_wave_outcome_parse(already, strlen(already), &o),
                  LINLI_OK);
  CU_ASSERT_EQUAL(o.kind, DOM_WAVE_ALREADY);
  CU_ASSERT_EQUAL(dom_wave_outcome_parse(errs, strlen(errs), &o), LINLI_OK);
  CU_ASSERT_EQUAL(o.kind, DOM_WAVE_ERROR);
  CU_ASSERT_STRING_EQUAL(o.detail, "boom");
  /* a count the text does not hold is refused before it sizes anything
   * (found by fuzz_replies: 55 million items asked for 4.9 GB) */
  char huge[600];
  snprintf(huge, sizeof huge, "WAVE|55577777|%s", r1);
  CU_ASSERT_EQUAL(dom_wave_outcome_parse(huge, strlen(huge), &o),
                  LINLI_ERR_INVALID);
  snprintf(huge, sizeof huge, "WAVE|1|%s\n%s", r1, r1);
  CU_ASSERT_EQUAL(dom_wave_outcome_parse(huge, strlen(huge), &o),
                  LINLI_ERR_INVALID);
  CU_ASSERT_EQUAL(dom_wave_outcome_parse(bad1, strlen(bad1), &o),
                  LINLI_ERR_INVALID);
  CU_ASSERT_EQUAL(dom_wave_outcome_parse(bad2, strlen(bad2), &o),
                  LINLI_ERR_INVALID);
}

int linli_test_register(void) {
  CU_pSuite s = CU_add_suite("domain: waves", NULL, NULL);
  if (!s)
    return -1;
  CU_add_test(s, "reference data", test_ref_good);
  CU_add_test(s, "config/router-reference.conf loads", test_ref_shipped);
  CU_add_test(s, "bad reference entries name file:line and why",
              test_ref_bad);
  CU_add_test(s, "schedule", test_schedule);
  CU_add_test(s, "items, records and outcomes", test_item_and_record);
  return CU_get_error() == CUE_SUCCESS ? 0 : -1;
}
