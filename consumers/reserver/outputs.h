/*
 * outputs.h - building and emitting the reserver's output events. Every
 * output carries a Meta whose event_id is derived from the input record
 * (topic, partition, offset, index), so a re-produced output is recognisably
 * the same event.
 */
#ifndef RESERVER_OUTPUTS_H
#define RESERVER_OUTPUTS_H

#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "linli/kafka.h"
#include "reservations.pb-c.h"
#include "refunds.pb-c.h"
#include "orders.pb-c.h"

/* What every output needs to know about its input. */
struct out_ctx {
  const rd_kafka_message_t *in;
  const char *cause_event_id; /* input's meta.event_id ("" if none) */
  const char *trace_id;
  int64_t occurred_at_ms;     /* the input's time: outputs reuse it */
};

/* Emit a ReservationResult (index 0). */
int out_reservation(linli_emit_t *emit, const struct out_ctx *ctx,
                    Linli__ReservationResult *res);
/* Emit a RefundRequested (index 1) keyed by its order. */
int out_refund(linli_emit_t *emit, const struct out_ctx *ctx,
               Linli__RefundRequested *refund);
/* Emit a FulfillmentItem (index 2) built from the stored OrderPlaced. */
int out_fulfillment(linli_emit_t *emit, const struct out_ctx *ctx,
                    const Linli__OrderPlaced *placed, int storage_class);
/* The same, as output `index` (a settlement emits one per order), with
 * every line at unit_price_fen `price` (the campaign's settled price; -1:
 * the lines as placed). */
int out_reservation_at(linli_emit_t *emit, const struct out_ctx *ctx,
                       int index, Linli__ReservationResult *res);
int out_fulfillment_at(linli_emit_t *emit, const struct out_ctx *ctx,
                       int index, const Linli__OrderPlaced *placed,
                       int storage_class, int64_t price);
/* Emit OrderExpired for an order into its own orders partition. */
int out_order_expired(linli_emit_t *emit, int32_t partition,
                      const char *order_id, int64_t deadline_ms,
                      int64_t now_ms);

#endif
