/*
 * event_ids.c - the ids events are about (see domain/event_ids.h).
 */
#include "domain/event_ids.h"

const char *dom_delivery_order_id(const Linli__DeliveryEvent *e) {
  switch (e->event_case) {
  case LINLI__DELIVERY_EVENT__EVENT_OUT_FOR_DELIVERY:
    return e->out_for_delivery->order_id;
  case LINLI__DELIVERY_EVENT__EVENT_ARRIVED_AT_PICKUP_POINT:
    return e->arrived_at_pickup_point->order_id;
  case LINLI__DELIVERY_EVENT__EVENT_PICKED_UP:
    return e->picked_up->order_id;
  case LINLI__DELIVERY_EVENT__EVENT_DELIVERED:
    return e->delivered->order_id;
  case LINLI__DELIVERY_EVENT__EVENT_DELIVERY_FAILED:
    return e->delivery_failed->order_id;
  default:
    return "";
  }
}
