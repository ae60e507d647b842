/*
 * plan.c - a closed wave becomes routes: one stop per pickup point with all
 * of its orders (up to the point's parcel capacity), one stop per home
 * delivery, planned by libdomain's router with the warehouse's vehicles;
 * then RouteBatch per route, SortingList per pickup point and one
 * WavePlanned with every order left out and why.
 *
 * Everything here is a function of the wave's items (in log order), the
 * reference data and the [router] config: a replay of the WaveClosed
 * recomputes the same events with the same ids (derived from the
 * WaveClosed's own event id and the output's index).
 */
#define _GNU_SOURCE /* qsort_r: sort with the wave as context */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domain/route.h"
#include "linli/error.h"
#include "linli/ids.h"
#include "linli/log.h"
#include "domain/schema.h"
#include "router.h"
#include "routes.pb-c.h"

#define PRODUCER_NAME "linli-router"
#define WAVE_PLANNED_MAX_BYTES 900000

/* ------------------------------------------------------------ the stops */

/* A stop of the wave before routing: a pickup point's orders or one home
 * delivery; item indices into the wave. */
struct wstop {
  const struct dom_ref_pickup *pp; /* NULL: home */
  size_t *items;
  size_t nitems;
};

/* An order left out of the wave. */
struct left {
  size_t item;
  int reason; /* LINLI__WAVE_PLANNED__REASON__* */
};

struct wave_ctx {
  const struct dom_wave_outcome *w;
  size_t *order;          /* item indices, sorted for grouping */
  struct wstop *stops;
  size_t nstops;
  struct left *left;
  size_t nleft;
};

static int by_place(const void *a, const void *b, void *wave) {
  const struct dom_wave_outcome *w = wave;
  const struct dom_wave_item *x = &w->items[*(const size_t *)a];
  const struct dom_wave_item *y = &w->items[*(const size_t *)b];
  /* Pickup points first (by id, then log order), then homes by order id. */
  if ((x->pickup_point_id == NULL) != (y->pickup_point_id == NULL))
    return x->pickup_point_id ? -1 : 1;
  if (x->pickup_point_id) {
    int c = strcmp(x->pickup_point_id, y->pickup_point_id);
    if (c)
      return c;
    return *(const size_t *)a < *(const size_t *)b ? -1 : 1;
  }
  int c = strcmp(x->order_id, y->order_id);
  if (c)
    return c;
  return *(const size_t *)a < *(const size_t *)b ? -1 : 1;
}

static int by_order_id(const void *a, const void *b, void *wave) {
  const struct dom_wave_outcome *w = wave;
  const struct dom_wave_item *x = &w->items[*(const size_t *)a];
  const struct dom_wave_item *y = &w->items[*(const size_t *)b];
  int c = strcmp(x->order_id, y->order_id);
  if (c)
    return c;
  return *(const size_t *)a < *(const size_t *)b ? -1 : 1;
}

static int left_cmp(const void *a, const void *b, void *wave) {
  const struct dom_wave_outcome *w = wave;
  const struct left *x = a, *y = b;
  int c = strcmp(w->items[x->item].order_id, w->items[y->item].order_id);
  if (c)
    return c;
  return x->item < y->item ? -1 : x->item > y->item;
}

/* Group the wave's items into stops; what cannot be a stop goes left. */
static int group(struct router *rt, struct wave_ctx *c) {
  size_t n = c->w->nitems;
  c->order = malloc((n + 1) * sizeof *c->order);
  c->stops = calloc(n + 1, sizeof *c->stops);
  c->left = calloc(n + 1, sizeof *c->left);
  if (!c->order || !c->stops || !c->left)
    return LINLI_ERR_NOMEM;
  for (size_t i = 0; i < n; i++)
    c->order[i] = i;
  qsort_r(c->order, n, sizeof *c->order, by_place, (void *)c->w);
  for (size_t a = 0; a < n;) {
    const struct dom_wave_item *it = &c->w->items[c->order[a]];
    size_t b = a + 1;
    if (it->pickup_point_id)
      while (b < n && c->w->items[c->order[b]].pickup_point_id &&
             strcmp(c->w->items[c->order[b]].pickup_point_id,
                    it->pickup_point_id) == 0)
        b++;
    const struct dom_ref_pickup *pp =
        it->pickup_point_id ? dom_ref_pickup(&rt->ref, it->pickup_point_id)
                            : NULL;
    if (it->pickup_point_id && !pp) {
      for (size_t k = a; k < b; k++) {
        c->left[c->nleft].item = c->order[k];
        c->left[c->nleft++].reason =
            LINLI__WAVE_PLANNED__REASON__UNKNOWN_PICKUP_POINT;
      }
      a = b;
      continue;
    }
    /* A pickup point takes its capacity in parcels, first come (log
     * order) first served; the rest is reported unassigned
     * (PICKUP_POINT_FULL) in WavePlanned. */
    size_t take = b - a;
    if (pp && take > (size_t)pp->capacity)
      take = (size_t)pp->capacity;
    struct wstop *s = &c->stops[c->nstops++];
    s->pp = pp;
    s->items = &c->order[a];
    s->nitems = take;
    for (size_t k = a + take; k < b; k++) {
      c->left[c->nleft].item = c->order[k];
      c->left[c->nleft++].reason =
          LINLI__WAVE_PLANNED__REASON__PICKUP_POINT_FULL;
    }
    /* The stop's orders, by order id, for the route and the list. */
    qsort_r(s->items, take, sizeof *s->items, by_order_id, (void *)c->w);
    a = b;
  }
  return LINLI_OK;
}

static int reason_of(enum dom_rt_reason r) {
  switch (r) {
  case DOM_RT_NO_LOCATION: return LINLI__WAVE_PLANNED__REASON__NO_LOCATION;
  case DOM_RT_NO_REFRIGERATED:
    return LINLI__WAVE_PLANNED__REASON__NO_REFRIGERATED;
  case DOM_RT_TOO_LARGE: return LINLI__WAVE_PLANNED__REASON__TOO_LARGE;
  case DOM_RT_WINDOW: return LINLI__WAVE_PLANNED__REASON__WINDOW;
  case DOM_RT_SHIFT: return LINLI__WAVE_PLANNED__REASON__SHIFT;
  case DOM_RT_NO_VEHICLE: return LINLI__WAVE_PLANNED__REASON__NO_VEHICLE;
  }
  return LINLI__WAVE_PLANNED__REASON__REASON_UNSPECIFIED;
}

static const char *reason_text(int r) {
  switch (r) {
  case LINLI__WAVE_PLANNED__REASON__UNKNOWN_PICKUP_POINT:
    return "pickup point not in the reference data";
  case LINLI__WAVE_PLANNED__REASON__PICKUP_POINT_FULL:
    return "over the pickup point's parcel capacity for this wave";
  case LINLI__WAVE_PLANNED__REASON__NO_LOCATION:
    return dom_rt_reason_text(DOM_RT_NO_LOCATION);
  case LINLI__WAVE_PLANNED__REASON__NO_REFRIGERATED:
    return dom_rt_reason_text(DOM_RT_NO_REFRIGERATED);
  case LINLI__WAVE_PLANNED__REASON__TOO_LARGE:
    return dom_rt_reason_text(DOM_RT_TOO_LARGE);
  case LINLI__WAVE_PLANNED__REASON__WINDOW:
    return dom_rt_reason_text(DOM_RT_WINDOW);
  case LINLI__WAVE_PLANNED__REASON__SHIFT:
    return dom_rt_reason_text(DOM_RT_SHIFT);
  default:
    return dom_rt_reason_text(DOM_RT_NO_VEHICLE);
  }
}

/* The routing problem of the stops. */
static void to_stop(const struct router *rt, const struct dom_ref_warehouse *w,
                    const struct wave_ctx *c, const struct wstop *s,
                    int64_t depart, struct dom_rt_stop *o) {
  memset(o, 0, sizeof *o);
  for (size_t k = 0; k < s->nitems; k++) {
    const struct dom_wave_item *it = &c->w->items[s->items[k]];
    /* Bounded: weight_g <= 1e9 per item, quantities <= 1e6 per line,
     * items <= 1e8 per wave: the sums stay far below INT64_MAX. */
    o->weight_g += it->weight_g > 0 ? it->weight_g
                                    : it->items * rt->default_item_g;
    o->items += it->items;
    o->cold |= it->storage_class >= LINLI__STORAGE_CLASS__CHILLED;
  }
  o->service_ms = rt->stop_service_ms +
                  (int64_t)s->nitems * rt->order_service_ms;
  if (o->service_ms > DOM_RT_MAX_SERVICE_MS)
    o->service_ms = DOM_RT_MAX_SERVICE_MS;
  if (o->weight_g > DOM_RT_MAX_WEIGHT_G)
    o->weight_g = DOM_RT_MAX_WEIGHT_G; /* too large for any vehicle anyway */
  if (o->items > DOM_RT_MAX_ITEMS)
    o->items = DOM_RT_MAX_ITEMS;
  if (s->pp) {
    o->lat_e6 = s->pp->lat_e6;
    o->lng_e6 = s->pp->lng_e6;
    dom_wave_pickup_window(s->pp, w->utc_offset_min, depart, &o->open_ms,
                           &o->close_ms);
  } else {
    const struct dom_wave_item *it = &c->w->items[s->items[0]];
    o->lat_e6 = it->lat_e6;
    o->lng_e6 = it->lng_e6;
    o->open_ms = it->slot_start_ms;
    o->close_ms = it->slot_end_ms;
  }
}

/* -------------------------------------------------------------- outputs */

struct out {
  linli_emit_t *emit;
  const Linli__FulfillmentEvent *cause;
  const char *warehouse;
  int index;
};

static int emit_route_event(struct out *o, Linli__RouteEvent *ev) {
  Linli__Meta meta = LINLI__META__INIT;
  char id[LINLI_ID_BUFSZ];
  linli_id_derive_event(o->cause->meta->event_id, o->index++, id, sizeof id);
  meta.event_id = id;
  meta.occurred_at_ms = o->cause->meta->occurred_at_ms;
  meta.producer = (char *)PRODUCER_NAME;
  meta.trace_id = o->cause->meta->trace_id ? o->cause->meta->trace_id : "";
  meta.schema_version = 1;
  meta.causation_id = o->cause->meta->event_id;
  ev->meta = &meta;
  int rc = linli_emit_message(o->emit, LINLI_TOPIC_ROUTES, RD_KAFKA_PARTITION_UA,
                       o->warehouse, &ev->base);
  ev->meta = NULL;
  return rc;
}

static int emit_sorting(struct out *o, const struct wave_ctx *c,
                        const struct wstop *s, const char *wave,
                        const char *route_id) {
  size_t nl = 0;
  for (size_t k = 0; k < s->nitems; k++)
    nl += c->w->items[s->items[k]].nlines;
  Linli__SortingList sl = LINLI__SORTING_LIST__INIT;
  Linli__SortingList__Line *lines = calloc(nl + 1, sizeof *lines);
  Linli__SortingList__Line **lp = calloc(nl + 1, sizeof *lp);
  if (!lines || !lp) {
    free(lines);
    free(lp);
    return LINLI_ERR_TRANSIENT;
  }
  size_t q = 0;
  for (size_t k = 0; k < s->nitems; k++) {
    const struct dom_wave_item *it = &c->w->items[s->items[k]];
    for (size_t l = 0; l < it->nlines; l++, q++) {
      linli__sorting_list__line__init(&lines[q]);
      lines[q].order_id = (char *)it->order_id;
      lines[q].user_id = (char *)it->user_id;
      lines[q].sku_id = (char *)it->lines[l].sku_id;
      lines[q].quantity = it->lines[l].quantity;
      lines[q].storage_class = (Linli__StorageClass)it->storage_class;
      lp[q] = &lines[q];
    }
  }
  sl.warehouse_id = (char *)o->warehouse;
  sl.wave_id = (char *)wave;
  sl.pickup_point_id = (char *)s->pp->id;
  sl.community = (char *)s->pp->community;
  sl.route_id = (char *)route_id;
  sl.n_lines = nl;
  sl.lines = lp;
  Linli__RouteEvent ev = LINLI__ROUTE_EVENT__INIT;
  ev.event_case = LINLI__ROUTE_EVENT__EVENT_SORTING_LIST;
  ev.sorting_list = &sl;
  int rc = emit_route_event(o, &ev);
  free(lines);
  free(lp);
  return rc;
}

static int emit_route(struct router *rt, struct out *o,
                      const struct wave_ctx *c, const struct dom_rt_route *r,
                      const struct dom_ref_vehicle *veh, const char *wave,
                      int64_t depart, int ordinal) {
  char seed[160], route_id[LINLI_ID_BUFSZ];
  snprintf(seed, sizeof seed, "route/%s/%s", o->warehouse, wave);
  linli_id_derive(seed, 0, 0, ordinal, route_id, sizeof route_id);
  Linli__RouteBatch rb = LINLI__ROUTE_BATCH__INIT;
  Linli__RouteBatch__Stop *stops = calloc(r->nstops, sizeof *stops);
  Linli__RouteBatch__Stop **sp = calloc(r->nstops, sizeof *sp);
  Linli__GeoPoint *geo = calloc(r->nstops, sizeof *geo);
  char ***ids = calloc(r->nstops, sizeof *ids);
  int rc = LINLI_ERR_TRANSIENT;
  if (!stops || !sp || !geo || !ids)
    goto out;
  for (size_t k = 0; k < r->nstops; k++) {
    const struct wstop *s = &c->stops[r->stops[k]];
    linli__route_batch__stop__init(&stops[k]);
    stops[k].seq = (int32_t)k + 1;
    if (s->pp) {
      stops[k].place_case = LINLI__ROUTE_BATCH__STOP__PLACE_PICKUP_POINT_ID;
      stops[k].pickup_point_id = (char *)s->pp->id;
    } else {
      linli__geo_point__init(&geo[k]);
      geo[k].lat_e6 = c->w->items[s->items[0]].lat_e6;
      geo[k].lng_e6 = c->w->items[s->items[0]].lng_e6;
      stops[k].place_case = LINLI__ROUTE_BATCH__STOP__PLACE_LOCATION;
      stops[k].location = &geo[k];
    }
    ids[k] = calloc(s->nitems, sizeof **ids);
    if (!ids[k])
      goto out;
    for (size_t q = 0; q < s->nitems; q++)
      ids[k][q] = (char *)c->w->items[s->items[q]].order_id;
    stops[k].n_order_ids = s->nitems;
    stops[k].order_ids = ids[k];
    stops[k].eta_ms = r->eta_ms[k];
    sp[k] = &stops[k];
  }
  rb.route_id = route_id;
  rb.warehouse_id = (char *)o->warehouse;
  rb.wave_id = (char *)wave;
  rb.vehicle_id = (char *)veh->id;
  rb.cold_chain = r->cold;
  rb.n_stops = r->nstops;
  rb.stops = sp;
  /* A shift is at most 7 days at 200 km/h: 3.4e7 m fits an int32. */
  rb.distance_m = (int32_t)r->distance_m;
  rb.departs_at_ms = depart;
  Linli__RouteEvent ev = LINLI__ROUTE_EVENT__INIT;
  ev.event_case = LINLI__ROUTE_EVENT__EVENT_ROUTE_BATCH;
  ev.route_batch = &rb;
  rc = emit_route_event(o, &ev);
  for (size_t k = 0; k < r->nstops && rc == LINLI_OK; k++) {
    const struct wstop *s = &c->stops[r->stops[k]];
    if (s->pp)
      rc = emit_sorting(o, c, s, wave, route_id);
  }
  linli_counter_add(rt->m_routes, 1);
out:
  for (size_t k = 0; ids && k < r->nstops; k++)
    free(ids[k]);
  free(ids);
  free(stops);
  free(sp);
  free(geo);
  return rc;
}

static int emit_planned(struct out *o, const struct wave_ctx *c,
                        const Linli__WaveClosed *wc, size_t nroutes,
                        int64_t distance) {
  Linli__WavePlanned wp = LINLI__WAVE_PLANNED__INIT;
  Linli__WavePlanned__Unassigned *u = calloc(c->nleft + 1, sizeof *u);
  Linli__WavePlanned__Unassigned **up = calloc(c->nleft + 1, sizeof *up);
  if (!u || !up) {
    free(u);
    free(up);
    return LINLI_ERR_TRANSIENT;
  }
  for (size_t k = 0; k < c->nleft; k++) {
    const struct dom_wave_item *it = &c->w->items[c->left[k].item];
    linli__wave_planned__unassigned__init(&u[k]);
    u[k].order_id = (char *)it->order_id;
    u[k].pickup_point_id = (char *)(it->pickup_point_id ? it->pickup_point_id
                                                        : "");
    u[k].reason = (Linli__WavePlanned__Reason)c->left[k].reason;
    u[k].detail = (char *)reason_text(c->left[k].reason);
    up[k] = &u[k];
  }
  wp.warehouse_id = (char *)o->warehouse;
  wp.wave_id = wc->wave_id;
  wp.cutoff_ms = wc->cutoff_ms;
  wp.express = wc->express;
  wp.orders = (int32_t)c->w->nitems;
  wp.routes = (int32_t)nroutes;
  wp.distance_m = distance;
  wp.n_unassigned = c->nleft;
  wp.unassigned = up;
  Linli__RouteEvent ev = LINLI__ROUTE_EVENT__INIT;
  ev.event_case = LINLI__ROUTE_EVENT__EVENT_WAVE_PLANNED;
  ev.wave_planned = &wp;
  /* Kafka's default record limit is 1 MB: a wave with very many orders
   * left out keeps their reason codes and drops the words (about 5,000
   * unassigned orders with words, 15,000 without). */
  if (protobuf_c_message_get_packed_size(&ev.base) > WAVE_PLANNED_MAX_BYTES)
    for (size_t k = 0; k < c->nleft; k++)
      u[k].detail = (char *)"";
  int rc = emit_route_event(o, &ev);
  free(u);
  free(up);
  return rc;
}

/* ------------------------------------------------------------- the wave */

int router_plan_wave(struct router *rt, linli_emit_t *emit,
                     const Linli__FulfillmentEvent *ev,
                     const struct dom_ref_warehouse *w, char kind,
                     const struct dom_wave_outcome *wave, char *reason,
                     size_t reasonlen) {
  const Linli__WaveClosed *wc = ev->wave_closed;
  struct wave_ctx c = {.w = wave};
  struct dom_rt_stop *stops = NULL;
  struct dom_rt_vehicle *veh = NULL;
  struct dom_rt_plan plan = {0};
  int rc = group(rt, &c);
  int64_t depart = dom_wave_depart_ms(w, kind, wc->cutoff_ms,
                                      rt->express_delay_ms);
  size_t nveh = 0;
  const struct dom_ref_vehicle *rv = dom_ref_vehicles(&rt->ref, w->id, &nveh);
  if (rc == LINLI_OK) {
    stops = calloc(c.nstops + 1, sizeof *stops);
    veh = calloc(nveh + 1, sizeof *veh);
    if (!stops || !veh)
      rc = LINLI_ERR_NOMEM;
  }
  if (rc == LINLI_OK) {
    for (size_t k = 0; k < c.nstops; k++)
      to_stop(rt, w, &c, &c.stops[k], depart, &stops[k]);
    for (size_t k = 0; k < nveh; k++) {
      veh[k].cap_weight_g = rv[k].cap_weight_g;
      veh[k].cap_items = rv[k].cap_items;
      veh[k].refrigerated = rv[k].refrigerated;
      veh[k].shift_ms = rv[k].shift_ms;
    }
    struct dom_rt_params p = {.depot_lat_e6 = w->lat_e6,
                              .depot_lng_e6 = w->lng_e6,
                              .depart_ms = depart,
                              .speed_kmh = rt->speed_kmh,
                              .improve = 1};
    rc = dom_rt_solve(&p, stops, c.nstops, veh, nveh, &plan);
  }
  if (rc != LINLI_OK) {
    /* Parameters and data are validated before they get here: only
     * memory can fail. */
    snprintf(reason, reasonlen, "wave %s of %s: routing failed (%d)",
             wc->wave_id, w->id, rc);
    rc = LINLI_ERR_TRANSIENT;
    goto out;
  }
  for (size_t u = 0; u < plan.nunassigned; u++) {
    const struct wstop *s = &c.stops[plan.unassigned[u].stop];
    for (size_t k = 0; k < s->nitems; k++) {
      c.left[c.nleft].item = s->items[k];
      c.left[c.nleft++].reason = reason_of(plan.unassigned[u].reason);
    }
  }
  qsort_r(c.left, c.nleft, sizeof *c.left, left_cmp, (void *)wave);
  struct out o = {emit, ev, w->id, 0};
  for (size_t r = 0; r < plan.nroutes && rc == LINLI_OK; r++)
    rc = emit_route(rt, &o, &c, &plan.routes[r], &rv[plan.routes[r].vehicle],
                    wc->wave_id, depart, (int)r);
  if (rc == LINLI_OK)
    rc = emit_planned(&o, &c, wc, plan.nroutes, plan.distance_m);
  if (rc != LINLI_OK) {
    snprintf(reason, reasonlen, "wave %s of %s: emit failed", wc->wave_id,
             w->id);
    rc = rc == LINLI_ERR_FATAL ? rc : LINLI_ERR_TRANSIENT;
    goto out;
  }
  linli_counter_add(rt->m_waves, 1);
  linli_counter_add(rt->m_unassigned, c.nleft);
  LINLI_INFO("wave planned", "warehouse=%s wave=%s orders=%zu routes=%zu "
             "unassigned=%zu distance_m=%lld", w->id, wc->wave_id,
             wave->nitems, plan.nroutes, c.nleft,
             (long long)plan.distance_m);
out:
  dom_rt_plan_free(&plan);
  free(stops);
  free(veh);
  free(c.order);
  free(c.stops);
  free(c.left);
  return rc;
}
