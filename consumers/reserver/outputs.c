/*
 * outputs.c - the reserver's output events (see outputs.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domain/schema.h"
#include "fulfillment.pb-c.h"
#include "linli/error.h"
#include "linli/ids.h"
#include "outputs.h"
#include "reserver.h"

#define PRODUCER_NAME "linli-reserver"

static void fill_meta(Linli__Meta *meta, char *id, const struct out_ctx *ctx,
                      int index) {
  /* From the input's own event id (a position repeats when a topic is
   * recreated; an event id does not); by position only for an input that
   * carries no id. */
  if (ctx->cause_event_id && ctx->cause_event_id[0])
    linli_id_derive_event(ctx->cause_event_id, index, id, LINLI_ID_BUFSZ);
  else
    linli_id_derive(rd_kafka_topic_name(ctx->in->rkt), ctx->in->partition,
                    ctx->in->offset, index, id, LINLI_ID_BUFSZ);
  meta->event_id = id;
  meta->occurred_at_ms = ctx->occurred_at_ms;
  meta->producer = (char *)PRODUCER_NAME;
  meta->trace_id = (char *)(ctx->trace_id ? ctx->trace_id : "");
  meta->schema_version = 1;
  meta->causation_id = (char *)(ctx->cause_event_id ? ctx->cause_event_id : "");
}

int out_reservation(linli_emit_t *emit, const struct out_ctx *ctx,
                    Linli__ReservationResult *res) {
  return out_reservation_at(emit, ctx, 0, res);
}

int out_reservation_at(linli_emit_t *emit, const struct out_ctx *ctx,
                       int index, Linli__ReservationResult *res) {
  Linli__ReservationEvent ev = LINLI__RESERVATION_EVENT__INIT;
  Linli__Meta meta = LINLI__META__INIT;
  char id[LINLI_ID_BUFSZ];
  fill_meta(&meta, id, ctx, index);
  ev.meta = &meta;
  ev.event_case = LINLI__RESERVATION_EVENT__EVENT_RESERVATION_RESULT;
  ev.reservation_result = res;
  return linli_emit_message(emit, LINLI_TOPIC_RESERVATIONS, RD_KAFKA_PARTITION_UA,
                     res->order_id, &ev.base);
}

int out_refund(linli_emit_t *emit, const struct out_ctx *ctx,
               Linli__RefundRequested *refund) {
  Linli__RefundEvent ev = LINLI__REFUND_EVENT__INIT;
  Linli__Meta meta = LINLI__META__INIT;
  char id[LINLI_ID_BUFSZ];
  fill_meta(&meta, id, ctx, 1);
  refund->refund_id = id; /* one refund per input: its id is the event's */
  refund->cause_event_id =
      (char *)(ctx->cause_event_id ? ctx->cause_event_id : "");
  refund->cause_topic = (char *)rd_kafka_topic_name(ctx->in->rkt);
  ev.meta = &meta;
  ev.event_case = LINLI__REFUND_EVENT__EVENT_REFUND_REQUESTED;
  ev.refund_requested = refund;
  return linli_emit_message(emit, LINLI_TOPIC_REFUNDS, RD_KAFKA_PARTITION_UA,
                     refund->order_id, &ev.base);
}

int out_fulfillment(linli_emit_t *emit, const struct out_ctx *ctx,
                    const Linli__OrderPlaced *placed, int storage_class) {
  return out_fulfillment_at(emit, ctx, 2, placed, storage_class, -1);
}

int out_fulfillment_at(linli_emit_t *emit, const struct out_ctx *ctx,
                       int index, const Linli__OrderPlaced *placed,
                       int storage_class, int64_t price) {
  Linli__FulfillmentEvent ev = LINLI__FULFILLMENT_EVENT__INIT;
  Linli__FulfillmentItem item = LINLI__FULFILLMENT_ITEM__INIT;
  Linli__Meta meta = LINLI__META__INIT;
  char id[LINLI_ID_BUFSZ];
  fill_meta(&meta, id, ctx, index);
  item.order_id = placed->order_id;
  item.warehouse_id = placed->warehouse_id;
  item.user_id = placed->user_id;
  item.n_lines = placed->n_lines;
  item.lines = placed->lines;
  /* A campaign order is picked at the price its campaign settled at. */
  Linli__OrderLine *copy = NULL, **ptrs = NULL;
  if (price >= 0 && placed->n_lines > 0) {
    copy = calloc(placed->n_lines, sizeof *copy);
    ptrs = calloc(placed->n_lines, sizeof *ptrs);
    if (!copy || !ptrs) {
      free(copy);
      free(ptrs);
      return LINLI_ERR_NOMEM;
    }
    for (size_t k = 0; k < placed->n_lines; k++) {
      copy[k] = *placed->lines[k];
      copy[k].unit_price_fen = price;
      ptrs[k] = &copy[k];
    }
    item.lines = ptrs;
  }
  item.storage_class = (Linli__StorageClass)storage_class;
  item.express = placed->express;
  item.campaign_id = placed->campaign_id;
  item.wave_id = (char *)"";
  switch (placed->delivery_case) {
  case LINLI__ORDER_PLACED__DELIVERY_PICKUP:
    item.delivery_case = LINLI__FULFILLMENT_ITEM__DELIVERY_PICKUP;
    item.pickup = placed->pickup;
    break;
  case LINLI__ORDER_PLACED__DELIVERY_HOME:
    item.delivery_case = LINLI__FULFILLMENT_ITEM__DELIVERY_HOME;
    item.home = placed->home;
    break;
  default:
    break;
  }
  ev.meta = &meta;
  ev.event_case = LINLI__FULFILLMENT_EVENT__EVENT_FULFILLMENT_ITEM;
  ev.fulfillment_item = &item;
  int rc = linli_emit_message(emit, LINLI_TOPIC_FULFILLMENT,
                              RD_KAFKA_PARTITION_UA, placed->warehouse_id,
                              &ev.base);
  free(copy);
  free(ptrs);
  return rc;
}

int out_order_expired(linli_emit_t *emit, int32_t partition,
                      const char *order_id, int64_t deadline_ms,
                      int64_t now_ms) {
  Linli__OrderEvent ev = LINLI__ORDER_EVENT__INIT;
  Linli__OrderExpired exp = LINLI__ORDER_EXPIRED__INIT;
  Linli__Meta meta = LINLI__META__INIT;
  /* The decision's id depends only on the order: a second instance (or a
   * retry) writing the same decision writes the same event id. */
  char seed[128], id[LINLI_ID_BUFSZ];
  snprintf(seed, sizeof seed, "expire/%s", order_id);
  linli_schema_decision_meta(&meta, id, seed, partition, deadline_ms, now_ms,
                             PRODUCER_NAME);
  exp.order_id = (char *)order_id;
  exp.deadline_ms = deadline_ms;
  ev.meta = &meta;
  ev.event_case = LINLI__ORDER_EVENT__EVENT_ORDER_EXPIRED;
  ev.order_expired = &exp;
  return linli_emit_message(emit, LINLI_TOPIC_ORDERS, partition, order_id,
                     &ev.base);
}
