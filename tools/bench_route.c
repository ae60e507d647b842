/*
 * bench_route.c - linli-bench_route: how long libdomain's router takes to
 * plan one wave, and how much its improvement saves over the construction
 * alone. Not a test: it prints measurements (scripts/bench.sh runs it on a
 * Release build).
 *
 * Usage: linli-bench_route [--stops N[,N...]] [--seed S] [--windows]
 *                          [--cold PCT] [--fleet PCT] [--dump FILE]
 * Each N is a seeded random wave of home deliveries within 15 km of the
 * warehouse (1-4 items each, PCT% cold chain), with vehicles of 150 items
 * (a fifth of them refrigerated) for --fleet percent of the items (130:
 * room for all of it; below 100 some stops must come back unassigned). --dump writes the
 * instance (depot, stops, vehicles) as CSV so that another solver can be
 * run on exactly the same stops.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "domain/route.h"
#include "linli/error.h"

#define T0 INT64_C(1800000000000)
#define HOUR INT64_C(3600000)
#define DEPOT_LAT 30274000
#define DEPOT_LNG 120155000
#define RADIUS_E6 135000 /* about 15 km */
#define VEHICLE_ITEMS 150

static uint64_t next_rand(uint64_t *s) {
  *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
  return *s >> 33;
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void dump(const char *path, const struct dom_rt_params *p,
                 const struct dom_rt_stop *s, size_t n,
                 const struct dom_rt_vehicle *v, size_t nv) {
  FILE *f = fopen(path, "w");
  if (!f) {
    perror(path);
    return;
  }
  fprintf(f, "depot,%d,%d,%d\n", (int)p->depot_lat_e6, (int)p->depot_lng_e6,
          (int)p->speed_kmh);
  for (size_t i = 0; i < n; i++)
    fprintf(f, "stop,%d,%d,%lld,%lld,%d,%lld,%lld,%lld\n", (int)s[i].lat_e6,
            (int)s[i].lng_e6, (long long)s[i].weight_g,
            (long long)s[i].items, s[i].cold,
            (long long)(s[i].open_ms ? s[i].open_ms - T0 : 0),
            (long long)(s[i].close_ms ? s[i].close_ms - T0 : 0),
            (long long)s[i].service_ms);
  for (size_t k = 0; k < nv; k++)
    fprintf(f, "vehicle,%lld,%lld,%d,%lld\n", (long long)v[k].cap_weight_g,
            (long long)v[k].cap_items, v[k].refrigerated,
            (long long)v[k].shift_ms);
  fclose(f);
}

static int run(size_t n, uint64_t seed, int windows, int cold_pct,
               int fleet_pct, const char *dump_path) {
  struct dom_rt_stop *s = calloc(n, sizeof *s);
  uint64_t r = seed;
  int64_t items = 0;
  for (size_t i = 0; i < n; i++) {
    s[i].lat_e6 = DEPOT_LAT + (int32_t)(next_rand(&r) % (2 * RADIUS_E6)) -
                  RADIUS_E6;
    s[i].lng_e6 = DEPOT_LNG + (int32_t)(next_rand(&r) % (2 * RADIUS_E6)) -
                  RADIUS_E6;
    s[i].items = 1 + (int64_t)(next_rand(&r) % 4);
    s[i].weight_g = s[i].items * 900;
    s[i].cold = (int)(next_rand(&r) % 100) < cold_pct;
    s[i].service_ms = 120000;
    if (windows && i % 3 == 0) {
      s[i].open_ms = T0 + (int64_t)(next_rand(&r) % 6) * HOUR;
      s[i].close_ms = s[i].open_ms + 2 * HOUR;
    }
    items += s[i].items;
  }
  size_t nv = (size_t)(items * fleet_pct / 100 / VEHICLE_ITEMS) + 2;
  struct dom_rt_vehicle *v = calloc(nv, sizeof *v);
  for (size_t k = 0; k < nv; k++) {
    v[k].cap_items = VEHICLE_ITEMS;
    v[k].cap_weight_g = VEHICLE_ITEMS * 1000;
    v[k].refrigerated = k % 5 == 0;
    v[k].shift_ms = 10 * HOUR;
  }
  struct dom_rt_params p = {.depot_lat_e6 = DEPOT_LAT,
                            .depot_lng_e6 = DEPOT_LNG,
                            .depart_ms = T0,
                            .speed_kmh = 25};
  if (dump_path)
    dump(dump_path, &p, s, n, v, nv);
  struct dom_rt_plan cons, imp;
  double t0 = now_ms();
  int rc = dom_rt_solve(&p, s, n, v, nv, &cons);
  double t1 = now_ms();
  p.improve = 1;
  if (rc == LINLI_OK)
    rc = dom_rt_solve(&p, s, n, v, nv, &imp);
  double t2 = now_ms();
  if (rc != LINLI_OK) {
    fprintf(stderr, "solve failed: %d\n", rc);
    free(s);
    free(v);
    return 1;
  }
  printf("route_bench stops=%zu vehicles=%zu routes=%zu unassigned=%zu "
         "construction_m=%lld improved_m=%lld saved_pct=%.1f "
         "construction_ms=%.0f total_ms=%.0f\n",
         n, nv, imp.nroutes, imp.nunassigned, (long long)cons.distance_m,
         (long long)imp.distance_m,
         100.0 * (double)(cons.distance_m - imp.distance_m) /
             (double)(cons.distance_m ? cons.distance_m : 1),
         t1 - t0, t2 - t1);
  dom_rt_plan_free(&cons);
  dom_rt_plan_free(&imp);
  free(s);
  free(v);
  return 0;
}

int main(int argc, char **argv) {
  const char *sizes = "1000,10000", *dump_path = NULL;
  uint64_t seed = 42;
  int windows = 0, cold = 10, fleet = 130;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--stops") == 0 && i + 1 < argc) {
      sizes = argv[++i];
    } else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
      seed = strtoull(argv[++i], NULL, 10);
    } else if (strcmp(argv[i], "--cold") == 0 && i + 1 < argc) {
      cold = atoi(argv[++i]);
    } else if (strcmp(argv[i], "--fleet") == 0 && i + 1 < argc) {
      fleet = atoi(argv[++i]);
      if (fleet < 1 || fleet > 1000)
        fleet = 130;
    } else if (strcmp(argv[i], "--windows") == 0) {
      windows = 1;
    } else if (strcmp(argv[i], "--dump") == 0 && i + 1 < argc) {
      dump_path = argv[++i];
    } else {
      fprintf(stderr, "usage: linli-bench_route [--stops N[,N...]] "
                      "[--seed S] [--windows] [--cold PCT] [--fleet PCT] "
                      "[--dump FILE]\n");
      return 2;
    }
  }
  char *list = strdup(sizes), *save = NULL;
  int rc = 0;
  for (char *tok = strtok_r(list, ",", &save); tok && rc == 0;
       tok = strtok_r(NULL, ",", &save)) {
    long n = strtol(tok, NULL, 10);
    if (n <= 0 || n > DOM_RT_MAX_STOPS) {
      fprintf(stderr, "bad stop count %s\n", tok);
      rc = 2;
      break;
    }
    rc = run((size_t)n, seed, windows, cold, fleet, dump_path);
  }
  free(list);
  return rc;
}
