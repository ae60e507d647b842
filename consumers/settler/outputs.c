/*
 * outputs.c - the settler's output events (see outputs.h).
 */
#include "outputs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "groupbuy.pb-c.h"
#include "linli/error.h"
#include "linli/ids.h"
#include "domain/schema.h"

#define PRODUCER_NAME "linli-settler"

static void fill_meta(Linli__Meta *meta, char *id, const struct out_ctx *ctx,
                      int index) {
  linli_id_derive_event(ctx->cause_event_id, index, id, LINLI_ID_BUFSZ);
  meta->event_id = id;
  meta->occurred_at_ms = ctx->occurred_at_ms;
  meta->producer = (char *)PRODUCER_NAME;
  meta->trace_id = (char *)(ctx->trace_id ? ctx->trace_id : "");
  meta->schema_version = 1;
  meta->causation_id = (char *)ctx->cause_event_id;
}

int out_settlement(linli_emit_t *emit, const struct out_ctx *ctx, int index,
                   Linli__SettlementEvent *ev, const char *campaign_id) {
  Linli__Meta meta = LINLI__META__INIT;
  char id[LINLI_ID_BUFSZ];
  fill_meta(&meta, id, ctx, index);
  ev->meta = &meta;
  int rc = linli_emit_message(emit, LINLI_TOPIC_SETTLEMENTS, RD_KAFKA_PARTITION_UA,
                       campaign_id, &ev->base);
  ev->meta = NULL;
  return rc;
}

int out_refund(linli_emit_t *emit, const struct out_ctx *ctx, int index,
               Linli__RefundRequested *refund) {
  Linli__RefundEvent ev = LINLI__REFUND_EVENT__INIT;
  Linli__Meta meta = LINLI__META__INIT;
  char id[LINLI_ID_BUFSZ];
  fill_meta(&meta, id, ctx, index);
  refund->refund_id = id;
  refund->cause_event_id = (char *)ctx->cause_event_id;
  refund->cause_topic = (char *)ctx->cause_topic;
  ev.meta = &meta;
  ev.event_case = LINLI__REFUND_EVENT__EVENT_REFUND_REQUESTED;
  ev.refund_requested = refund;
  return linli_emit_message(emit, LINLI_TOPIC_REFUNDS, RD_KAFKA_PARTITION_UA,
                     refund->order_id, &ev.base);
}

int out_deadline(linli_emit_t *emit, int32_t partition,
                 const char *campaign_id, int64_t deadline_ms, int64_t now_ms) {
  Linli__GroupBuyEvent ev = LINLI__GROUP_BUY_EVENT__INIT;
  Linli__CampaignDeadline d = LINLI__CAMPAIGN_DEADLINE__INIT;
  Linli__Meta meta = LINLI__META__INIT;
  /* The decision's id depends only on the campaign and its deadline: two
   * instances (or a retry) writing the same decision write the same id. */
  char seed[LINLI_ID_BUFSZ + 16], id[LINLI_ID_BUFSZ];
  snprintf(seed, sizeof seed, "deadline/%s", campaign_id);
  linli_schema_decision_meta(&meta, id, seed, 0, deadline_ms, now_ms,
                             PRODUCER_NAME);
  d.campaign_id = (char *)campaign_id;
  d.deadline_ms = deadline_ms;
  ev.meta = &meta;
  ev.event_case = LINLI__GROUP_BUY_EVENT__EVENT_CAMPAIGN_DEADLINE;
  ev.campaign_deadline = &d;
  return linli_emit_message(emit, LINLI_TOPIC_GROUPBUY, partition, campaign_id,
                     &ev.base);
}
