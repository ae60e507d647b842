/*
 * outputs.h - the settler's output events. Each carries a Meta whose
 * event_id is derived from the input's own event_id and the output's index
 * (DESIGN.md rule 4), so a re-produced output is the same event and ids
 * never repeat when a topic is recreated.
 */
#ifndef SETTLER_OUTPUTS_H
#define SETTLER_OUTPUTS_H

#include <stdint.h>

#include "linli/kafka.h"
#include "refunds.pb-c.h"
#include "settlements.pb-c.h"

/* What every output needs to know about its input. */
struct out_ctx {
  const char *cause_event_id; /* the input's meta.event_id (valid id) */
  const char *trace_id;
  const char *cause_topic;
  int64_t occurred_at_ms;
};

/* SettlementEvent member (join_result, threshold_reached, campaign_settled
 * or campaign_failed already set by the caller in ev) as output `index`. */
int out_settlement(linli_emit_t *emit, const struct out_ctx *ctx, int index,
                   Linli__SettlementEvent *ev, const char *campaign_id);
/* RefundRequested as output `index` (its refund_id is the event id). */
int out_refund(linli_emit_t *emit, const struct out_ctx *ctx, int index,
               Linli__RefundRequested *refund);
/* CampaignDeadline into the campaign's own partition (the clock). */
int out_deadline(linli_emit_t *emit, int32_t partition,
                 const char *campaign_id, int64_t deadline_ms, int64_t now_ms);

#endif
