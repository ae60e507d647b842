/*
 * apply_logistics.c - from paid order to the customer's door:
 * linli.fulfillment.v1 (FulfillmentItem: the order is READY; WaveClosed),
 * linli.routes.v1 (routes with their ordered stops and the orders handed
 * over at each; SortingList in apply_sorting.c), linli.delivery.v1 (what
 * partners report: the order moves to OUT_FOR_DELIVERY, AT_PICKUP_POINT,
 * DELIVERED, PICKED_UP or DELIVERY_FAILED) and linli.notifications.v1 (every notification written).
 *
 * Pickup codes are a collection secret and are never stored; home
 * addresses of a FulfillmentItem are already in the order (encrypted).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "apply.h"
#include "delivery.pb-c.h"
#include "fulfillment.pb-c.h"
#include "linli/error.h"
#include "notifications.pb-c.h"
#include "routes.pb-c.h"

/* --------------------------------------------------------- fulfillment */

static const struct ledger_stmt ITEM = {
    "ledger_fulfillment_item",
    "INSERT INTO fulfillment_items (order_id, warehouse_id, wave_id, "
    "storage_class, express, campaign_id, event_id) VALUES ($1, $2, $3, $4, "
    "$5, $6, $7) ON CONFLICT DO NOTHING",
    7, 0, NULL, NULL, 0, 0, NULL};

static const struct ledger_stmt WAVE = {
    "ledger_wave",
    "INSERT INTO waves (warehouse_id, wave_id) VALUES ($1, $2) "
    "ON CONFLICT DO NOTHING",
    2, 0, NULL, NULL, 0, 0, NULL};

static const struct ledger_stmt WAVE_CLOSED = {
    "ledger_wave_closed",
    "INSERT INTO waves (warehouse_id, wave_id, cutoff_at, event_id) VALUES "
    "($1, $2, to_timestamp($3::bigint / 1000.0), $4) "
    "ON CONFLICT (warehouse_id, wave_id) DO UPDATE SET "
    "cutoff_at = coalesce(waves.cutoff_at, EXCLUDED.cutoff_at), "
    "event_id = coalesce(waves.event_id, EXCLUDED.event_id)",
    4, 0, NULL, NULL, 0, 0, NULL};

static int apply_item(struct ledger_ev *ev, const Linli__FulfillmentItem *it) {
  if (!ev_check_id(ev, it->order_id, "fulfillment_item.order_id") ||
      !ev_check_id(ev, it->warehouse_id, "fulfillment_item.warehouse_id") ||
      (opt(it->user_id) &&
       !ev_check_id(ev, it->user_id, "fulfillment_item.user_id")) ||
      (opt(it->wave_id) &&
       !ev_check_id(ev, it->wave_id, "fulfillment_item.wave_id")) ||
      (opt(it->campaign_id) &&
       !ev_check_id(ev, it->campaign_id, "fulfillment_item.campaign_id")))
    return LINLI_ERR_INVALID;
  int seen = 0;
  int rc = ev_seen(ev, &seen);
  if (rc != LINLI_OK || seen)
    return rc;
  struct order_row row;
  if ((rc = ev_order_lock(ev, it->order_id, &row)) != LINLI_OK ||
      (rc = ev_order_advance(ev, it->order_id, &row, DOM_OEV_READY, NULL)) !=
          LINLI_OK ||
      (rc = ev_history(ev, it->order_id)) != LINLI_OK)
    return rc;
  if (!row.placed &&
      (rc = ev_order_hints(ev, it->order_id, it->user_id, it->warehouse_id,
                           NULL, it->campaign_id, 0)) != LINLI_OK)
    return rc;
  const char *p[] = {it->order_id,
                     it->warehouse_id,
                     opt(it->wave_id),
                     /* The coldest class of the lines: none known means
                      * none needs cold (the reserver sends 0 then). */
                     it->storage_class ==
                             LINLI__STORAGE_CLASS__STORAGE_CLASS_UNSPECIFIED
                         ? "AMBIENT"
                         : ev_enum_name(&linli__storage_class__descriptor,
                                     it->storage_class),
                     it->express ? "true" : "false",
                     opt(it->campaign_id),
                     ev->event_id};
  if ((rc = ev_sql(ev, &ITEM, p, NULL)) != LINLI_OK)
    return rc;
  if (opt(it->wave_id)) {
    const char *wp[] = {it->warehouse_id, it->wave_id};
    rc = ev_sql(ev, &WAVE, wp, NULL);
  }
  return rc;
}

int apply_fulfillment(struct ledger_ev *ev) {
  const Linli__FulfillmentEvent *e = (const Linli__FulfillmentEvent *)ev->env;
  if (e->event_case == LINLI__FULFILLMENT_EVENT__EVENT_FULFILLMENT_ITEM)
    return apply_item(ev, e->fulfillment_item);
  if (e->event_case != LINLI__FULFILLMENT_EVENT__EVENT_WAVE_CLOSED)
    return ev_dlq(ev, "FulfillmentEvent carries no event");
  const Linli__WaveClosed *w = e->wave_closed;
  if (!ev_check_id(ev, w->warehouse_id, "wave_closed.warehouse_id") ||
      !ev_check_id(ev, w->wave_id, "wave_closed.wave_id"))
    return LINLI_ERR_INVALID;
  char cutoff[24];
  snprintf(cutoff, sizeof cutoff, "%lld",
           w->cutoff_ms > 0 ? (long long)w->cutoff_ms
                            : atoll(ev->occurred_ms));
  const char *p[] = {w->warehouse_id, w->wave_id, cutoff, ev->event_id};
  return ev_sql(ev, &WAVE_CLOSED, p, NULL);
}

/* -------------------------------------------------------------- routes */

static const struct ledger_stmt ROUTE = {
    "ledger_route",
    "INSERT INTO routes (route_id, warehouse_id, wave_id, vehicle_id, "
    "cold_chain, distance_m, departs_at, event_id) VALUES ($1, $2, $3, $4, "
    "$5, $6, to_timestamp($7::bigint / 1000.0), $8) ON CONFLICT DO NOTHING "
    "RETURNING route_id",
    8, 0, NULL, NULL, 0, 0, NULL};

static const struct ledger_stmt STOP = {
    "ledger_route_stop",
    "INSERT INTO route_stops (route_id, seq, pickup_point_id, lat_e6, "
    "lng_e6, eta) VALUES ($1, $2, $3, $4, $5, "
    "to_timestamp($6::bigint / 1000.0)) ON CONFLICT DO NOTHING",
    6, 0, NULL, NULL, 0, 0, NULL};

static const struct ledger_stmt STOP_ORDER = {
    "ledger_route_stop_order",
    "INSERT INTO route_stop_orders (route_id, seq, order_id) VALUES ($1, $2, "
    "$3) ON CONFLICT DO NOTHING",
    3, 0, NULL, NULL, 0, 0, NULL};

static const struct ledger_stmt ITEM_WAVE = {
    "ledger_item_wave",
    "UPDATE fulfillment_items SET wave_id = $2, updated_at = now() "
    "WHERE order_id = $1 AND wave_id IS DISTINCT FROM $2",
    2, 0, NULL, NULL, 0, 0, NULL};

static int validate_route(struct ledger_ev *ev, const Linli__RouteBatch *r) {
  if (!ev_check_id(ev, r->route_id, "route_batch.route_id") ||
      !ev_check_id(ev, r->warehouse_id, "route_batch.warehouse_id") ||
      !ev_check_id(ev, r->wave_id, "route_batch.wave_id") ||
      !ev_check_id(ev, r->vehicle_id, "route_batch.vehicle_id"))
    return LINLI_ERR_INVALID;
  if (r->distance_m < 0)
    return ev_dlq(ev, "route_batch.distance_m: must not be negative");
  for (size_t i = 0; i < r->n_stops; i++) {
    const Linli__RouteBatch__Stop *s = r->stops[i];
    char f[96];
    if (s->seq <= 0)
      return ev_dlq(ev, "route_batch.stops[%zu].seq: must be positive", i);
    snprintf(f, sizeof f, "route_batch.stops[%zu].pickup_point_id", i);
    if (s->place_case == LINLI__ROUTE_BATCH__STOP__PLACE_PICKUP_POINT_ID) {
      if (!ev_check_id(ev, s->pickup_point_id, f))
        return LINLI_ERR_INVALID;
    } else if (s->place_case != LINLI__ROUTE_BATCH__STOP__PLACE_LOCATION ||
               s->location == NULL) {
      return ev_dlq(ev, "route_batch.stops[%zu]: a pickup point or a "
                        "location", i);
    }
    for (size_t k = 0; k < s->n_order_ids; k++) {
      snprintf(f, sizeof f, "route_batch.stops[%zu].order_ids[%zu]", i, k);
      if (!ev_check_id(ev, s->order_ids[k], f))
        return LINLI_ERR_INVALID;
    }
  }
  return LINLI_OK;
}

int apply_routes(struct ledger_ev *ev) {
  const Linli__RouteEvent *e = (const Linli__RouteEvent *)ev->env;
  if (e->event_case == LINLI__ROUTE_EVENT__EVENT_SORTING_LIST)
    return apply_sorting(ev);
  /* The router's wave plans live in the log (linli-replay exports them);
   * the record keeps the routes and sorting lists. */
  if (e->event_case == LINLI__ROUTE_EVENT__EVENT_WAVE_PLANNED)
    return LINLI_OK;
  if (e->event_case != LINLI__ROUTE_EVENT__EVENT_ROUTE_BATCH)
    return ev_dlq(ev, "RouteEvent carries no event");
  const Linli__RouteBatch *r = e->route_batch;
  int rc = validate_route(ev, r);
  if (rc != LINLI_OK)
    return rc;
  char dist[16], departs[24];
  snprintf(dist, sizeof dist, "%d", (int)r->distance_m);
  snprintf(departs, sizeof departs, "%lld",
           r->departs_at_ms > 0 ? (long long)r->departs_at_ms
                                : atoll(ev->occurred_ms));
  const char *p[] = {r->route_id, r->warehouse_id, r->wave_id,
                     r->vehicle_id, r->cold_chain ? "true" : "false", dist,
                     departs,       ev->event_id};
  PGresult *res = NULL;
  if ((rc = ev_sql(ev, &ROUTE, p, &res)) != LINLI_OK)
    return rc;
  int inserted = PQntuples(res) == 1;
  PQclear(res);
  if (!inserted)
    return LINLI_OK; /* this route is recorded already */
  const char *wp[] = {r->warehouse_id, r->wave_id};
  if ((rc = ev_sql(ev, &WAVE, wp, NULL)) != LINLI_OK)
    return rc;
  for (size_t i = 0; i < r->n_stops && rc == LINLI_OK; i++) {
    const Linli__RouteBatch__Stop *s = r->stops[i];
    int pickup = s->place_case == LINLI__ROUTE_BATCH__STOP__PLACE_PICKUP_POINT_ID;
    char seq[16], lat[16], lng[16], eta[24];
    snprintf(seq, sizeof seq, "%d", (int)s->seq);
    snprintf(lat, sizeof lat, "%d", pickup ? 0 : (int)s->location->lat_e6);
    snprintf(lng, sizeof lng, "%d", pickup ? 0 : (int)s->location->lng_e6);
    snprintf(eta, sizeof eta, "%lld",
             s->eta_ms > 0 ? (long long)s->eta_ms : atoll(departs));
    const char *sp[] = {r->route_id, seq, pickup ? s->pickup_point_id : NULL,
                        pickup ? NULL : lat, pickup ? NULL : lng, eta};
    if ((rc = ev_sql(ev, &STOP, sp, NULL)) != LINLI_OK)
      break;
    for (size_t k = 0; k < s->n_order_ids && rc == LINLI_OK; k++) {
      const char *op[] = {r->route_id, seq, s->order_ids[k]};
      const char *ip[] = {s->order_ids[k], r->wave_id};
      if ((rc = ev_sql(ev, &STOP_ORDER, op, NULL)) == LINLI_OK)
        rc = ev_sql(ev, &ITEM_WAVE, ip, NULL);
    }
  }
  return rc;
}

/* ------------------------------------------------------------ delivery */

static const struct ledger_stmt DELIVERY = {
    "ledger_delivery_event",
    "INSERT INTO delivery_events (event_id, order_id, type, route_id, "
    "courier_id, pickup_point_id, proof, reason, topic, partition, "
    "kafka_offset, occurred_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, "
    "$10, $11, to_timestamp($12::bigint / 1000.0)) ON CONFLICT DO NOTHING",
    12, 0, NULL, NULL, 0, 0, NULL};

int apply_delivery(struct ledger_ev *ev) {
  const Linli__DeliveryEvent *e = (const Linli__DeliveryEvent *)ev->env;
  const char *order_id = NULL, *route = NULL, *courier = NULL, *point = NULL,
             *proof = NULL, *why = NULL;
  enum dom_order_event event = dom_order_event_of_delivery(e, &order_id);
  switch (e->event_case) {
  case LINLI__DELIVERY_EVENT__EVENT_OUT_FOR_DELIVERY:
    route = opt(e->out_for_delivery->route_id);
    courier = opt(e->out_for_delivery->courier_id);
    break;
  case LINLI__DELIVERY_EVENT__EVENT_ARRIVED_AT_PICKUP_POINT:
    point = opt(e->arrived_at_pickup_point->pickup_point_id);
    break;
  case LINLI__DELIVERY_EVENT__EVENT_DELIVERED:
    proof = opt(e->delivered->proof);
    break;
  case LINLI__DELIVERY_EVENT__EVENT_DELIVERY_FAILED:
    why = opt(e->delivery_failed->reason);
    break;
  default:
    break;
  }
  if (event == DOM_OEV_NONE)
    return ev_dlq(ev, "DeliveryEvent carries no event");
  /* ids valid: apply.c judged it with dom_delivery_event_check */
  int seen = 0;
  int rc = ev_seen(ev, &seen);
  if (rc != LINLI_OK || seen)
    return rc;
  struct order_row row;
  if ((rc = ev_order_lock(ev, order_id, &row)) != LINLI_OK ||
      (rc = ev_order_advance(ev, order_id, &row, event, why)) != LINLI_OK ||
      (rc = ev_history(ev, order_id)) != LINLI_OK)
    return rc;
  const char *p[] = {ev->event_id, order_id,      ev->type,  route,
                     courier,      point,         proof,     why,
                     ev->topic,    ev->partition, ev->offset, ev->occurred_ms};
  return ev_sql(ev, &DELIVERY, p, NULL);
}

/* ------------------------------------------------------- notifications */

static const struct ledger_stmt NOTIFICATION = {
    "ledger_notification",
    "INSERT INTO notifications (notification_id, user_id, channel, template, "
    "locale, params, order_id, event_id, created_at) VALUES ($1, $2, $3, $4, "
    "$5, $6::jsonb, $7, $8, to_timestamp($9::bigint / 1000.0)) "
    "ON CONFLICT DO NOTHING",
    9, 0, NULL, NULL, 0, 0, NULL};

int apply_notifications(struct ledger_ev *ev) {
  const Linli__NotificationEvent *e = (const Linli__NotificationEvent *)ev->env;
  if (e->event_case != LINLI__NOTIFICATION_EVENT__EVENT_NOTIFICATION)
    return ev_dlq(ev, "NotificationEvent carries no event");
  const Linli__Notification *n = e->notification;
  if (!opt(n->notification_id) || strlen(n->notification_id) > 200)
    return ev_dlq(ev, "notification.notification_id: 1-200 characters");
  if (!ev_check_id(ev, n->user_id, "notification.user_id") ||
      (opt(n->order_id) &&
       !ev_check_id(ev, n->order_id, "notification.order_id")))
    return LINLI_ERR_INVALID;
  if (n->channel == LINLI__NOTIFICATION__CHANNEL__CHANNEL_UNSPECIFIED)
    return ev_dlq(ev, "notification.channel: SMS, WECHAT or APP_PUSH");
  json_t *a = json_array();
  for (size_t i = 0; a && i < n->n_params; i++)
    json_array_append_new(a, json_pack("{s:s, s:s}", "key",
                                       n->params[i]->key, "value",
                                       n->params[i]->value));
  char *params = a ? json_dumps(a, JSON_COMPACT) : NULL;
  json_decref(a);
  if (params == NULL)
    return LINLI_ERR_NOMEM;
  const char *p[] = {n->notification_id,
                     n->user_id,
                     ev_enum_name(&linli__notification__channel__descriptor,
                               n->channel),
                     n->template_ ? n->template_ : "",
                     n->locale ? n->locale : "",
                     params,
                     opt(n->order_id),
                     ev->event_id,
                     ev->occurred_ms};
  int rc = ev_sql(ev, &NOTIFICATION, p, NULL);
  free(params);
  return rc;
}
