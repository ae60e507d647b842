/*
 * event_ids.h - the ids an event is about, read from whichever oneof
 * member it carries, for code that handles every kind of an envelope the
 * same way (the notifier's shard key, the gateway's tenant check).
 */
#ifndef DOMAIN_EVENT_IDS_H
#define DOMAIN_EVENT_IDS_H

#include "delivery.pb-c.h"

/* The order a delivery event is about; "" when no member is set. */
const char *dom_delivery_order_id(const Linli__DeliveryEvent *e);

#endif
