/*
 * delivery.h - what makes a logistics partner's report well-formed
 * (linli.delivery.v1: OutForDelivery, ArrivedAtPickupPoint, PickedUp,
 * Delivered, DeliveryFailed), in one home for the gateway, the ledger and
 * the notifier (see orders.h for how field names and messages are shared).
 * Pure functions, no I/O.
 */
#ifndef DOMAIN_DELIVERY_H
#define DOMAIN_DELIVERY_H

#include "delivery.pb-c.h"
#include "domain/check.h"

/* The event an envelope carries, Meta aside (the gateway writes Meta
 * itself): fields named from the envelope ("out_for_delivery.route_id").
 * Every id is required (proof may be ""); proof and reason are at most 256
 * bytes of UTF-8 without control characters. Returns how many problems it
 * found (0 = valid), calling err (may be NULL) for each. */
int dom_delivery_check(const Linli__DeliveryEvent *e, dom_err_fn err,
                       void *arg);
/* The whole record: dom_check_meta and dom_delivery_check. */
int dom_delivery_event_check(const Linli__DeliveryEvent *e, dom_err_fn err,
                             void *arg);

#endif
