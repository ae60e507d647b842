/*
 * records_check.c - see domain/records.h.
 */
#include "domain/records.h"

#include <string.h>

#include "domain/delivery.h"
#include "domain/groupbuy.h"
#include "domain/orders.h"
#include "domain/reservations.h"
#include "domain/stock.h"
#include "domain/topics.h"

int dom_record_check(const char *base_topic, const ProtobufCMessage *env,
                     int max_lines, dom_err_fn err, void *arg) {
  if (base_topic == NULL || env == NULL)
    return 0;
  if (strcmp(base_topic, LINLI_TOPIC_ORDERS) == 0)
    return dom_order_event_check((const Linli__OrderEvent *)env, max_lines,
                                 err, arg);
  if (strcmp(base_topic, LINLI_TOPIC_INVENTORY) == 0)
    return dom_inventory_event_check((const Linli__InventoryEvent *)env, err,
                                     arg);
  if (strcmp(base_topic, LINLI_TOPIC_CATALOG) == 0)
    return dom_catalog_event_check((const Linli__CatalogEvent *)env, err, arg);
  if (strcmp(base_topic, LINLI_TOPIC_DELIVERY) == 0)
    return dom_delivery_event_check((const Linli__DeliveryEvent *)env, err,
                                    arg);
  if (strcmp(base_topic, LINLI_TOPIC_GROUPBUY) == 0)
    return dom_gb_event_check((const Linli__GroupBuyEvent *)env, err, arg);
  if (strcmp(base_topic, LINLI_TOPIC_RESERVATIONS) == 0)
    return dom_reservation_event_check((const Linli__ReservationEvent *)env,
                                       err, arg);
  return 0;
}
