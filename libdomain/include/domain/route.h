/*
 * route.h - delivery routing for one wave of one warehouse: which vehicle
 * visits which stops, in which order, and when. Pure C, no I/O and no
 * Kafka, so linli-router, the unit tests and the benchmark share it.
 *
 * A stop is a pickup point (all of its orders in one stop) or a home
 * address. A plan respects, per route: the vehicle's capacity in grams and
 * in items, its shift (departure to return), every stop's time window
 * (arrival may wait for the window to open, never pass its close), and the
 * cold chain (a cold stop rides only in a refrigerated vehicle; a route is
 * either all cold or all ambient). Everything that cannot be placed comes
 * back in `unassigned` with a reason: nothing is dropped.
 *
 * Algorithm: Clarke-Wright savings over a K-nearest-neighbour list (built
 * on a spatial grid), vehicles assigned to the routes biggest first, what
 * is left inserted cheapest-first, then or-opt (segments of 1-3 stops,
 * within and between routes), 2-opt (within a route), 2-opt* and exchange
 * (between routes), all driven by the neighbour lists and don't-look bits,
 * so 10,000 stops stay far from O(n^2). The whole is run for three savings
 * shapes and the best plan kept. Distances are haversine great-circle metres rounded per leg;
 * every comparison is on integers and every tie is broken by input index,
 * so the same input always gives the same plan.
 */
#ifndef DOMAIN_ROUTE_H
#define DOMAIN_ROUTE_H

#include <stddef.h>
#include <stdint.h>

/* Mean Earth radius used by the haversine distance, metres. */
#define DOM_RT_EARTH_RADIUS_M 6371008.8
/* Bounds of one stop's demand and of the whole problem, so that every sum
 * of loads, distances and times stays far from INT64_MAX. */
#define DOM_RT_MAX_STOPS 200000
#define DOM_RT_MAX_VEHICLES 10000
#define DOM_RT_MAX_WEIGHT_G INT64_C(1000000000) /* 1,000 t */
#define DOM_RT_MAX_ITEMS INT64_C(100000000)
#define DOM_RT_MAX_SERVICE_MS (INT64_C(24) * 3600 * 1000)
#define DOM_RT_MAX_SHIFT_MS (INT64_C(7) * 24 * 3600 * 1000)

/* One place to visit. */
struct dom_rt_stop {
  int32_t lat_e6, lng_e6; /* microdegrees; both 0 = not geocoded */
  int64_t weight_g;       /* total weight delivered there, >= 0 */
  int64_t items;          /* total item count, >= 0 */
  int cold;               /* needs a refrigerated vehicle */
  int64_t open_ms;        /* earliest service start, UTC ms; 0 = none */
  int64_t close_ms;       /* latest arrival, UTC ms; 0 = none */
  int64_t service_ms;     /* time spent at the stop, >= 0 */
};

struct dom_rt_vehicle {
  int64_t cap_weight_g; /* > 0 */
  int64_t cap_items;    /* > 0 */
  int refrigerated;
  int64_t shift_ms;     /* longest route, departure to return; > 0 */
};

struct dom_rt_params {
  int32_t depot_lat_e6, depot_lng_e6; /* the warehouse */
  int64_t depart_ms;                  /* every vehicle leaves then */
  int32_t speed_kmh;                  /* average driving speed, > 0 */
  int improve;  /* 0: construction only; else or-opt and 2-opt too */
  uint64_t seed; /* 0: the deterministic plan; else savings are perturbed
                    by a seeded noise (random restarts, for tests) */
  int neighbours; /* neighbour list length; 0 = default (24) */
};

/* Why a stop was not placed (in the order they are checked). */
enum dom_rt_reason {
  DOM_RT_NO_LOCATION = 1,   /* not geocoded or coordinates out of range */
  DOM_RT_NO_REFRIGERATED,   /* cold chain and no refrigerated vehicle */
  DOM_RT_TOO_LARGE,         /* bigger than every eligible vehicle */
  DOM_RT_WINDOW,            /* window closed even driving straight there */
  DOM_RT_SHIFT,             /* out and back exceeds every eligible shift */
  DOM_RT_NO_VEHICLE,        /* the fleet is full: no vehicle has room left */
};

/* A stable upper-case name ("NO_VEHICLE") and a sentence. */
const char *dom_rt_reason_name(enum dom_rt_reason r);
const char *dom_rt_reason_text(enum dom_rt_reason r);

struct dom_rt_route {
  size_t vehicle;      /* index into the vehicles */
  int cold;            /* carries cold stops (vehicle refrigerated) */
  size_t nstops;
  size_t *stops;       /* indices into the stops, in driving order */
  int64_t *eta_ms;     /* service start at each stop (after any wait) */
  int64_t distance_m;  /* depot -> stops -> depot */
  int64_t return_ms;   /* back at the depot */
  int64_t weight_g, items;
};

struct dom_rt_unassigned {
  size_t stop;
  enum dom_rt_reason reason;
};

struct dom_rt_plan {
  struct dom_rt_route *routes; /* ascending vehicle index */
  size_t nroutes;
  struct dom_rt_unassigned *unassigned; /* ascending stop index */
  size_t nunassigned;
  int64_t distance_m; /* sum over routes */
};

/*
 * Plan a wave. LINLI_OK and *out filled (free with dom_rt_plan_free);
 * LINLI_ERR_INVALID for parameters or data out of bounds (a negative
 * weight, a vehicle without capacity, a zero speed, too many stops);
 * LINLI_ERR_NOMEM. Stops that are fine but cannot be served are not an
 * error: they are in out->unassigned.
 */
int dom_rt_solve(const struct dom_rt_params *p, const struct dom_rt_stop *stops,
                 size_t nstops, const struct dom_rt_vehicle *vehicles,
                 size_t nvehicles, struct dom_rt_plan *out);
void dom_rt_plan_free(struct dom_rt_plan *plan);

/* Haversine distance between two points in microdegrees, metres. */
double dom_rt_haversine_m(int32_t lat1_e6, int32_t lng1_e6, int32_t lat2_e6,
                          int32_t lng2_e6);

/* Driving time for a distance at a speed, ms (rounded up). */
int64_t dom_rt_travel_ms(int64_t distance_m, int32_t speed_kmh);

#endif
