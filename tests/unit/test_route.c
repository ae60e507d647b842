/*
 * test_route.c - unit tests of libdomain's routing (domain/route.h): every
 * stop in exactly one route or unassigned with its reason; no route over
 * capacity, shift or a window; cold chain only in refrigerated vehicles and
 * never mixed; on 200 seeded random stops the improvement never lengthens
 * the construction and lands within 5% of the best of 50 random restarts;
 * the same input gives the same plan.
 */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domain/route.h"
#include "linli/error.h"
#include "linli_test.h"

#define T0 INT64_C(1800000000000) /* departure */
#define HOUR INT64_C(3600000)
/* Depot in Hangzhou. */
#define DEPOT_LAT 30274000
#define DEPOT_LNG 120155000

static uint64_t rng_next(uint64_t *s) {
  *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
  return *s >> 33;
}

static struct dom_rt_params params(int improve) {
  struct dom_rt_params p = {.depot_lat_e6 = DEPOT_LAT,
                            .depot_lng_e6 = DEPOT_LNG,
                            .depart_ms = T0,
                            .speed_kmh = 30,
                            .improve = improve};
  return p;
}

/* n stops within about +-radius_m of the depot, 1-4 items each. */
static void random_stops(struct dom_rt_stop *s, size_t n, uint64_t seed,
                         int32_t radius_e6, int cold_every, int windows) {
  uint64_t r = seed;
  for (size_t i = 0; i < n; i++) {
    memset(&s[i], 0, sizeof s[i]);
    s[i].lat_e6 = DEPOT_LAT + (int32_t)(rng_next(&r) % (2 * radius_e6)) -
                  radius_e6;
    s[i].lng_e6 = DEPOT_LNG + (int32_t)(rng_next(&r) % (2 * radius_e6)) -
                  radius_e6;
    s[i].items = 1 + (int64_t)(rng_next(&r) % 4);
    s[i].weight_g = s[i].items * 800;
    s[i].cold = cold_every > 0 && i % (size_t)cold_every == 0;
    s[i].service_ms = 120000;
    if (windows && i % 3 == 0) {
      int64_t start = T0 + (int64_t)(rng_next(&r) % 3) * HOUR;
      s[i].open_ms = start;
      s[i].close_ms = start + 2 * HOUR;
    }
  }
}

static struct dom_rt_vehicle vehicle(int64_t items, int refrigerated) {
  struct dom_rt_vehicle v = {.cap_weight_g = items * 1000,
                             .cap_items = items,
                             .refrigerated = refrigerated,
                             .shift_ms = 8 * HOUR};
  return v;
}

/* Every invariant of a plan; returns the number of violations (each one
 * is also a CUnit failure). */
static int check_plan(const struct dom_rt_params *p,
                      const struct dom_rt_stop *s, size_t n,
                      const struct dom_rt_vehicle *v, size_t nv,
                      const struct dom_rt_plan *plan) {
  int bad = 0;
  int *seen = calloc(n, sizeof *seen);
  int *vseen = calloc(nv, sizeof *vseen);
  CU_ASSERT_PTR_NOT_NULL_FATAL(seen);
  CU_ASSERT_PTR_NOT_NULL_FATAL(vseen);
  int64_t total = 0;
  for (size_t r = 0; r < plan->nroutes; r++) {
    const struct dom_rt_route *rt = &plan->routes[r];
    CU_ASSERT(rt->vehicle < nv);
    CU_ASSERT(rt->nstops > 0);
    bad += rt->vehicle >= nv || rt->nstops == 0;
    if (rt->vehicle >= nv)
      continue;
    const struct dom_rt_vehicle *vh = &v[rt->vehicle];
    bad += vseen[rt->vehicle]++ != 0; /* one route per vehicle */
    int64_t w = 0, items = 0, d = 0, now = p->depart_ms;
    int32_t plat = p->depot_lat_e6, plng = p->depot_lng_e6;
    for (size_t k = 0; k < rt->nstops; k++) {
      size_t i = rt->stops[k];
      CU_ASSERT_FATAL(i < n);
      bad += seen[i]++ != 0;
      w += s[i].weight_g;
      items += s[i].items;
      /* Cold chain: a cold stop only in a refrigerated vehicle's cold
       * route, and a route never mixes. */
      bad += s[i].cold != rt->cold;
      bad += s[i].cold && !vh->refrigerated;
      int64_t leg = (int64_t)(dom_rt_haversine_m(plat, plng, s[i].lat_e6,
                                                 s[i].lng_e6) + 0.5);
      d += leg;
      now += dom_rt_travel_ms(leg, p->speed_kmh);
      /* The ETA is the service start: after arrival, inside the window. */
      bad += rt->eta_ms[k] + 5 < now; /* +-1 m per leg of rounding */
      if (s[i].open_ms > 0)
        bad += rt->eta_ms[k] < s[i].open_ms;
      if (s[i].close_ms > 0)
        bad += rt->eta_ms[k] > s[i].close_ms;
      now = rt->eta_ms[k] + s[i].service_ms;
      plat = s[i].lat_e6, plng = s[i].lng_e6;
    }
    int64_t leg = (int64_t)(dom_rt_haversine_m(plat, plng, p->depot_lat_e6,
                                               p->depot_lng_e6) + 0.5);
    d += leg;
    bad += w != rt->weight_g || items != rt->items;
    bad += w > vh->cap_weight_g || items > vh->cap_items;
    bad += rt->return_ms - p->depart_ms > vh->shift_ms;
    bad += rt->cold && !vh->refrigerated;
    /* Haversine per leg agrees with the solver's to a metre a leg. */
    int64_t diff = d - rt->distance_m;
    bad += diff > (int64_t)rt->nstops + 1 || -diff > (int64_t)rt->nstops + 1;
    total += rt->distance_m;
  }
  bad += total != plan->distance_m;
  for (size_t u = 0; u < plan->nunassigned; u++) {
    size_t i = plan->unassigned[u].stop;
    CU_ASSERT_FATAL(i < n);
    bad += seen[i]++ != 0;
    bad += plan->unassigned[u].reason < DOM_RT_NO_LOCATION ||
           plan->unassigned[u].reason > DOM_RT_NO_VEHICLE;
  }
  for (size_t i = 0; i < n; i++)
    bad += seen[i] != 1; /* exactly once: a route or unassigned */
  free(seen);
  free(vseen);
  CU_ASSERT_EQUAL(bad, 0);
  return bad;
}

static int same_plan(const struct dom_rt_plan *a, const struct dom_rt_plan *b) {
  if (a->nroutes != b->nroutes || a->nunassigned != b->nunassigned ||
      a->distance_m != b->distance_m)
    return 0;
  for (size_t r = 0; r < a->nroutes; r++) {
    const struct dom_rt_route *x = &a->routes[r], *y = &b->routes[r];
    if (x->vehicle != y->vehicle || x->nstops != y->nstops ||
        x->distance_m != y->distance_m || x->cold != y->cold ||
        memcmp(x->stops, y->stops, x->nstops * sizeof *x->stops) != 0 ||
        memcmp(x->eta_ms, y->eta_ms, x->nstops * sizeof *x->eta_ms) != 0)
      return 0;
  }
  for (size_t u = 0; u < a->nunassigned; u++)
    if (a->unassigned[u].stop != b->unassigned[u].stop ||
        a->unassigned[u].reason != b->unassigned[u].reason)
      return 0;
  return 1;
}

/* ------------------------------------------------------------- tests */

static void test_haversine(void) {
  /* One degree of latitude is about 111.2 km. */
  double d = dom_rt_haversine_m(30000000, 120000000, 31000000, 120000000);
  CU_ASSERT(d > 111100 && d < 111300);
  /* Beijing -> Shanghai, about 1,067 km. */
  d = dom_rt_haversine_m(39904200, 116407400, 31230400, 121473700);
  CU_ASSERT(d > 1060000 && d < 1075000);
  CU_ASSERT_EQUAL(dom_rt_haversine_m(1, 2, 1, 2), 0.0);
  CU_ASSERT_EQUAL(dom_rt_travel_ms(1000, 36), 100000); /* 1 km at 36 km/h */
  CU_ASSERT_EQUAL(dom_rt_travel_ms(1, 36), 100);
}

static void test_invariants(void) {
  enum { N = 300 };
  struct dom_rt_stop s[N];
  random_stops(s, N, 7, 60000, 4, 1);
  /* A fleet too small for everything: some stops must come back
   * unassigned, none may vanish. */
  struct dom_rt_vehicle v[6] = {vehicle(60, 0), vehicle(80, 0),
                                vehicle(40, 1), vehicle(60, 0),
                                vehicle(30, 1), vehicle(50, 0)};
  v[5].shift_ms = 3 * HOUR;
  for (int improve = 0; improve < 2; improve++) {
    struct dom_rt_params p = params(improve);
    struct dom_rt_plan plan;
    CU_ASSERT_EQUAL_FATAL(dom_rt_solve(&p, s, N, v, 6, &plan), LINLI_OK);
    check_plan(&p, s, N, v, 6, &plan);
    CU_ASSERT(plan.nroutes > 0);
    CU_ASSERT(plan.nunassigned > 0);
    int cold_routes = 0;
    for (size_t r = 0; r < plan.nroutes; r++)
      cold_routes += plan.routes[r].cold;
    CU_ASSERT(cold_routes > 0 && cold_routes < (int)plan.nroutes);
    for (size_t u = 0; u < plan.nunassigned; u++)
      CU_ASSERT_EQUAL(plan.unassigned[u].reason, DOM_RT_NO_VEHICLE);
    dom_rt_plan_free(&plan);
  }
}

static void test_reasons(void) {
  struct dom_rt_stop s[7];
  random_stops(s, 7, 3, 5000, 0, 0);
  s[0].lat_e6 = s[0].lng_e6 = 0;          /* not geocoded */
  s[1].cold = 1;                          /* no refrigerated vehicle */
  s[2].items = 500;                       /* bigger than any vehicle */
  s[3].close_ms = T0 + 1000;              /* closes before anyone arrives */
  s[4].lat_e6 = DEPOT_LAT + 2000000;      /* 222 km away: 15 h round trip */
  s[5].items = s[6].items = 20;           /* one vehicle of 30: one waits */
  s[5].weight_g = s[6].weight_g = 1000;
  struct dom_rt_vehicle v[1] = {vehicle(30, 0)};
  struct dom_rt_params p = params(1);
  struct dom_rt_plan plan;
  CU_ASSERT_EQUAL_FATAL(dom_rt_solve(&p, s, 7, v, 1, &plan), LINLI_OK);
  check_plan(&p, s, 7, v, 1, &plan);
  CU_ASSERT_EQUAL_FATAL(plan.nunassigned, 6);
  enum dom_rt_reason want[] = {DOM_RT_NO_LOCATION, DOM_RT_NO_REFRIGERATED,
                               DOM_RT_TOO_LARGE,   DOM_RT_WINDOW,
                               DOM_RT_SHIFT,       DOM_RT_NO_VEHICLE};
  for (size_t u = 0; u < 5; u++) {
    CU_ASSERT_EQUAL(plan.unassigned[u].stop, u);
    CU_ASSERT_EQUAL(plan.unassigned[u].reason, want[u]);
  }
  CU_ASSERT_EQUAL(plan.unassigned[5].reason, DOM_RT_NO_VEHICLE);
  CU_ASSERT(plan.unassigned[5].stop == 5 || plan.unassigned[5].stop == 6);
  CU_ASSERT_STRING_EQUAL(dom_rt_reason_name(DOM_RT_WINDOW), "WINDOW");
  dom_rt_plan_free(&plan);
}

static void test_windows_respected(void) {
  /* Tight slots in reverse order of distance: the plan must wait or
   * reorder, never arrive late. */
  enum { N = 40 };
  struct dom_rt_stop s[N];
  random_stops(s, N, 11, 20000, 0, 0);
  for (size_t i = 0; i < N; i++) {
    s[i].open_ms = T0 + (int64_t)(i % 5) * HOUR;
    s[i].close_ms = s[i].open_ms + HOUR;
  }
  struct dom_rt_vehicle v[4] = {vehicle(100, 0), vehicle(100, 0),
                                vehicle(100, 0), vehicle(100, 0)};
  struct dom_rt_params p = params(1);
  struct dom_rt_plan plan;
  CU_ASSERT_EQUAL_FATAL(dom_rt_solve(&p, s, N, v, 4, &plan), LINLI_OK);
  check_plan(&p, s, N, v, 4, &plan);
  CU_ASSERT_EQUAL(plan.nunassigned, 0);
  dom_rt_plan_free(&plan);
}

static void test_quality(void) {
  enum { N = 200, NV = 12 };
  struct dom_rt_stop s[N];
  random_stops(s, N, 20261206, 50000, 0, 0);
  struct dom_rt_vehicle v[NV];
  for (size_t k = 0; k < NV; k++)
    v[k] = vehicle(60, 0);
  struct dom_rt_params pc = params(0), pi = params(1);
  struct dom_rt_plan cons, imp;
  CU_ASSERT_EQUAL_FATAL(dom_rt_solve(&pc, s, N, v, NV, &cons), LINLI_OK);
  CU_ASSERT_EQUAL_FATAL(dom_rt_solve(&pi, s, N, v, NV, &imp), LINLI_OK);
  check_plan(&pc, s, N, v, NV, &cons);
  check_plan(&pi, s, N, v, NV, &imp);
  CU_ASSERT_EQUAL(cons.nunassigned, 0);
  CU_ASSERT_EQUAL(imp.nunassigned, 0);
  CU_ASSERT(imp.distance_m <= cons.distance_m);
  int64_t best = INT64_MAX;
  for (uint64_t seed = 1; seed <= 50; seed++) {
    struct dom_rt_params pr = params(1);
    pr.seed = seed;
    struct dom_rt_plan r;
    CU_ASSERT_EQUAL_FATAL(dom_rt_solve(&pr, s, N, v, NV, &r), LINLI_OK);
    CU_ASSERT_EQUAL(r.nunassigned, 0);
    if (r.distance_m < best)
      best = r.distance_m;
    dom_rt_plan_free(&r);
  }
  printf("\n    construction %lld m, improved %lld m, best of 50 restarts "
         "%lld m ",
         (long long)cons.distance_m, (long long)imp.distance_m,
         (long long)best);
  CU_ASSERT(imp.distance_m * 100 <= best * 105);
  dom_rt_plan_free(&cons);
  dom_rt_plan_free(&imp);
}

static void test_deterministic(void) {
  enum { N = 500 };
  struct dom_rt_stop *s = malloc(N * sizeof *s);
  CU_ASSERT_PTR_NOT_NULL_FATAL(s);
  random_stops(s, N, 99, 40000, 5, 1);
  struct dom_rt_vehicle v[10];
  for (size_t k = 0; k < 10; k++)
    v[k] = vehicle(50 + (int64_t)k * 5, k % 3 == 0);
  struct dom_rt_params p = params(1);
  struct dom_rt_plan a, b;
  CU_ASSERT_EQUAL_FATAL(dom_rt_solve(&p, s, N, v, 10, &a), LINLI_OK);
  CU_ASSERT_EQUAL_FATAL(dom_rt_solve(&p, s, N, v, 10, &b), LINLI_OK);
  check_plan(&p, s, N, v, 10, &a);
  CU_ASSERT(same_plan(&a, &b));
  dom_rt_plan_free(&a);
  dom_rt_plan_free(&b);
  free(s);
}

static void test_invalid_and_empty(void) {
  struct dom_rt_params p = params(1);
  struct dom_rt_plan plan;
  struct dom_rt_stop s[1];
  random_stops(s, 1, 1, 1000, 0, 0);
  struct dom_rt_vehicle v[1] = {vehicle(10, 0)};
  CU_ASSERT_EQUAL(dom_rt_solve(&p, s, 0, v, 1, &plan), LINLI_OK);
  CU_ASSERT_EQUAL(plan.nroutes, 0);
  CU_ASSERT_EQUAL(plan.nunassigned, 0);
  dom_rt_plan_free(&plan);
  /* No vehicle at all: the stop is kept, with its reason. */
  CU_ASSERT_EQUAL(dom_rt_solve(&p, s, 1, v, 0, &plan), LINLI_OK);
  CU_ASSERT_EQUAL(plan.nunassigned, 1);
  CU_ASSERT_EQUAL(plan.unassigned[0].reason, DOM_RT_TOO_LARGE);
  dom_rt_plan_free(&plan);
  s[0].weight_g = -1;
  CU_ASSERT_EQUAL(dom_rt_solve(&p, s, 1, v, 1, &plan), LINLI_ERR_INVALID);
  s[0].weight_g = 1;
  v[0].cap_items = 0;
  CU_ASSERT_EQUAL(dom_rt_solve(&p, s, 1, v, 1, &plan), LINLI_ERR_INVALID);
  v[0].cap_items = 10;
  p.speed_kmh = 0;
  CU_ASSERT_EQUAL(dom_rt_solve(&p, s, 1, v, 1, &plan), LINLI_ERR_INVALID);
}

int linli_test_register(void) {
  CU_pSuite s = CU_add_suite("domain: routing", NULL, NULL);
  if (!s)
    return -1;
  CU_add_test(s, "haversine and travel time", test_haversine);
  CU_add_test(s, "every stop once; capacity, shift, windows, cold chain",
              test_invariants);
  CU_add_test(s, "unassigned reasons", test_reasons);
  CU_add_test(s, "time windows respected", test_windows_respected);
  CU_add_test(s, "200 stops: improvement and 50 random restarts",
              test_quality);
  CU_add_test(s, "same input, same plan", test_deterministic);
  CU_add_test(s, "invalid and empty input", test_invalid_and_empty);
  return CU_get_error() == CUE_SUCCESS ? 0 : -1;
}
