/*
 * delivery_check.c - the delivery reports' rules (see delivery.h).
 */
#include "domain/delivery.h"

#include "domain/orders.h"

int dom_delivery_check(const Linli__DeliveryEvent *e, dom_err_fn err,
                       void *arg) {
  if (!e)
    return dom_report("event", "required", err, arg);
  int bad = 0;
  switch (e->event_case) {
  case LINLI__DELIVERY_EVENT__EVENT_OUT_FOR_DELIVERY:
    bad += dom_check_id("out_for_delivery.order_id",
                        e->out_for_delivery->order_id, err, arg);
    bad += dom_check_id("out_for_delivery.route_id",
                        e->out_for_delivery->route_id, err, arg);
    bad += dom_check_id("out_for_delivery.courier_id",
                        e->out_for_delivery->courier_id, err, arg);
    return bad;
  case LINLI__DELIVERY_EVENT__EVENT_ARRIVED_AT_PICKUP_POINT:
    bad += dom_check_id("arrived_at_pickup_point.order_id",
                        e->arrived_at_pickup_point->order_id, err, arg);
    bad += dom_check_id("arrived_at_pickup_point.pickup_point_id",
                        e->arrived_at_pickup_point->pickup_point_id, err, arg);
    bad += dom_check_id("arrived_at_pickup_point.pickup_code",
                        e->arrived_at_pickup_point->pickup_code, err, arg);
    return bad;
  case LINLI__DELIVERY_EVENT__EVENT_PICKED_UP:
    bad += dom_check_id("picked_up.order_id", e->picked_up->order_id, err,
                        arg);
    bad += dom_check_id("picked_up.pickup_code", e->picked_up->pickup_code,
                        err, arg);
    return bad;
  case LINLI__DELIVERY_EVENT__EVENT_DELIVERED:
    bad += dom_check_id("delivered.order_id", e->delivered->order_id, err,
                        arg);
    bad += dom_check_label("delivered.proof", e->delivered->proof,
                           DOM_TEXT_SHORT, err, arg);
    return bad;
  case LINLI__DELIVERY_EVENT__EVENT_DELIVERY_FAILED:
    bad += dom_check_id("delivery_failed.order_id",
                        e->delivery_failed->order_id, err, arg);
    bad += dom_check_label("delivery_failed.reason",
                           e->delivery_failed->reason, DOM_TEXT_SHORT, err,
                           arg);
    return bad;
  default:
    return dom_report("event",
                      "one of out_for_delivery, arrived_at_pickup_point, "
                      "picked_up, delivered, delivery_failed",
                      err, arg);
  }
}

int dom_delivery_event_check(const Linli__DeliveryEvent *e, dom_err_fn err,
                             void *arg) {
  if (!e)
    return dom_report("event", "required", err, arg);
  return dom_check_meta(e->meta, err, arg) + dom_delivery_check(e, err, arg);
}
