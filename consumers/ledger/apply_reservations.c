/*
 * apply_reservations.c - linli.reservations.v1 into the record: the
 * reserver's judgement moves the order through RESERVED, REJECTED, PAID and
 * CANCELLED/EXPIRED, records the reservation and the payment (accepted or
 * refused), and moves stock exactly as the reserver did: RESERVED moves its
 * lines available -> reserved, COMMITTED reserved -> sold, RELEASED
 * reserved -> available (the lines of the reservation, as RELEASED carries
 * none); RELEASED GROUP_FAILED (the order's campaign failed) cancels a
 * reserved or paid order, a paid one's lines sold -> available. A duplicate placement or a refused payment leaves the order's
 * state as it is.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "apply.h"
#include "linli/error.h"
#include "reservations.pb-c.h"

typedef Linli__ReservationResult Result;

static const struct ledger_stmt RSV_FIRST = {
    "ledger_reservation_first",
    "INSERT INTO reservations (order_id, warehouse_id, status, reason, "
    "detail, shortages, expires_at, reserved_at, last_event_id) VALUES ($1, "
    "$2, $3, $4, $5, $6::jsonb, to_timestamp($7::bigint / 1000.0), "
    "CASE WHEN $3 = 'RESERVED' THEN to_timestamp($8::bigint / 1000.0) END, "
    "$9) ON CONFLICT (order_id) DO NOTHING RETURNING 1",
    9, 0,
    "INSERT INTO reservations (order_id, warehouse_id, status, reason, "
    "detail, shortages, expires_at, reserved_at, last_event_id) SELECT o, w, "
    "st, r, d, sh::jsonb, to_timestamp(e / 1000.0), CASE WHEN st = "
    "'RESERVED' THEN to_timestamp(at / 1000.0) END, ev FROM unnest("
    "$1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], "
    "$7::bigint[], $8::bigint[], $9::text[]) AS u(o, w, st, r, d, sh, e, at, "
    "ev) ON CONFLICT (order_id) DO NOTHING",
    "reservations", LEDGER_RANK_CHILD, 0, NULL};

static const struct ledger_stmt RSV_END = {
    "ledger_reservation_end",
    "INSERT INTO reservations (order_id, warehouse_id, status, detail, "
    "released_at, committed_at, last_event_id) VALUES ($1, $2, $3, $4, "
    "CASE WHEN $3 = 'RELEASED' THEN to_timestamp($5::bigint / 1000.0) END, "
    "CASE WHEN $3 = 'COMMITTED' THEN to_timestamp($5::bigint / 1000.0) END, "
    "$6) ON CONFLICT (order_id) DO UPDATE SET status = EXCLUDED.status, "
    "detail = EXCLUDED.detail, released_at = EXCLUDED.released_at, "
    "committed_at = EXCLUDED.committed_at, "
    "last_event_id = EXCLUDED.last_event_id, updated_at = now()",
    6, 0, NULL, NULL, 0, 0, NULL};

static const struct ledger_stmt PAYMENT_JUDGED = {
    "ledger_payment_judged",
    "INSERT INTO payments (payment_txn_id, order_id, amount_fen, status, "
    "refusal_reason, paid_at) VALUES ($1, $2, $3, $4, $5, "
    "to_timestamp($6::bigint / 1000.0)) ON CONFLICT (payment_txn_id) DO "
    "UPDATE SET status = EXCLUDED.status, "
    "refusal_reason = EXCLUDED.refusal_reason",
    6, 0, NULL, NULL, 0, 0, NULL};

static const struct ledger_stmt ORDER_PAID = {
    "ledger_order_paid",
    "UPDATE orders o SET paid_fen = $3, payment_txn_id = $2, "
    "payment_method = p.method, paid_at = p.paid_at, updated_at = now() "
    "FROM payments p WHERE o.order_id = $1 AND p.payment_txn_id = $2",
    3, 0, NULL, NULL, 0, 0, NULL};

static const struct ledger_stmt CAUSE = {
    "ledger_cause_type", "SELECT type FROM order_events WHERE event_id = $1",
    1, 0, NULL, NULL, 0, 0, NULL};

static const struct ledger_stmt RESERVED_LINES = {
    "ledger_reserved_lines",
    "SELECT warehouse_id, sku_id, quantity, (SELECT count(*) FROM "
    "stock_movements e WHERE e.order_id = $1 AND e.kind IN ('COMMIT', "
    "'RELEASE')) FROM stock_movements WHERE order_id = $1 AND kind = "
    "'RESERVE' ORDER BY movement_id",
    1, 0, NULL, NULL, 0, 0, NULL};

/* A failed campaign's paid order: its sold lines (COMMIT movements) back
 * to available, once. */
static const struct ledger_stmt SOLD_LINES = {
    "ledger_sold_lines",
    "SELECT warehouse_id, sku_id, quantity, (SELECT count(*) FROM "
    "stock_movements e WHERE e.order_id = $1 AND e.kind = 'RELEASE') FROM "
    "stock_movements WHERE order_id = $1 AND kind = 'COMMIT' ORDER BY "
    "movement_id",
    1, 0, NULL, NULL, 0, 0, NULL};

/* What the result means for the order: a RELEASED says "cancelled" or
 * "expired" through its cause (an OrderCancelled or OrderExpired, if the
 * record has it), its reason (GROUP_FAILED) or its detail. */
static int result_event(struct ledger_ev *ev, const Result *r,
                        enum dom_order_event *event) {
  *event = dom_order_event_of_result(r, NULL);
  if (r->status != LINLI__RESERVATION_RESULT__STATUS__RELEASED ||
      *event == DOM_OEV_GROUP_FAILED || ev->meta == NULL ||
      !opt(ev->meta->causation_id))
    return LINLI_OK;
  const char *p[] = {ev->meta->causation_id};
  PGresult *res = NULL;
  int rc = ev_sql(ev, &CAUSE, p, &res);
  if (rc != LINLI_OK)
    return rc;
  if (PQntuples(res) == 1)
    *event = dom_order_event_of_result(r, PQgetvalue(res, 0, 0));
  PQclear(res);
  return LINLI_OK;
}

/* Move the order's reserved lines to sold (COMMIT) or back to available
 * (RELEASE), once: a reservation ends only once. */
static int end_reservation(struct ledger_ev *ev, const char *order_id,
                           int commit) {
  const char *p[] = {order_id};
  PGresult *res = NULL;
  int rc = ev_sql(ev, &RESERVED_LINES, p, &res);
  if (rc != LINLI_OK)
    return rc;
  for (int i = 0; i < PQntuples(res) && rc == LINLI_OK; i++) {
    if (atoll(PQgetvalue(res, i, 3)) > 0)
      break; /* already committed or released */
    long long q = atoll(PQgetvalue(res, i, 2));
    struct stock_move mv = {
        .event_id = ev->event_id,
        .warehouse_id = PQgetvalue(res, i, 0),
        .sku_id = PQgetvalue(res, i, 1),
        .kind = commit ? "COMMIT" : "RELEASE",
        .quantity = q,
        .order_id = order_id,
        .d_reserved = -q,
        .d_sold = commit ? q : 0,
        .d_available = commit ? 0 : q,
    };
    int inserted = 0;
    rc = ev_stock_move(ev, &mv, &inserted);
  }
  PQclear(res);
  return rc;
}

/* A failed campaign's paid order: its sold lines back to available, once
 * (a RELEASE movement with d_sold -q). */
static int return_sold(struct ledger_ev *ev, const char *order_id) {
  const char *p[] = {order_id};
  PGresult *res = NULL;
  int rc = ev_sql(ev, &SOLD_LINES, p, &res);
  if (rc != LINLI_OK)
    return rc;
  for (int i = 0; i < PQntuples(res) && rc == LINLI_OK; i++) {
    if (atoll(PQgetvalue(res, i, 3)) > 0)
      break; /* already returned */
    long long q = atoll(PQgetvalue(res, i, 2));
    struct stock_move mv = {
        .event_id = ev->event_id,
        .warehouse_id = PQgetvalue(res, i, 0),
        .sku_id = PQgetvalue(res, i, 1),
        .kind = "RELEASE",
        .quantity = q,
        .order_id = order_id,
        .d_sold = -q,
        .d_available = q,
    };
    int inserted = 0;
    rc = ev_stock_move(ev, &mv, &inserted);
  }
  PQclear(res);
  return rc;
}

static char *shortages_json(const Result *r) {
  if (r->n_shortages == 0)
    return NULL;
  json_t *a = json_array();
  for (size_t i = 0; a && i < r->n_shortages; i++)
    json_array_append_new(
        a, json_pack("{s:s, s:i, s:i}", "sku_id", r->shortages[i]->sku_id,
                     "requested", (int)r->shortages[i]->requested, "available",
                     (int)r->shortages[i]->available));
  char *s = a ? json_dumps(a, JSON_COMPACT) : NULL;
  json_decref(a);
  return s;
}

/* Writes of a result whose transition was accepted. */
static int result_effects(struct ledger_ev *ev, const Result *r,
                          int state_changed) {
  const char *oid = r->order_id;
  int rc = LINLI_OK;
  char n1[24], n2[24];
  switch (r->status) {
  case LINLI__RESERVATION_RESULT__STATUS__RESERVED:
  case LINLI__RESERVATION_RESULT__STATUS__REJECTED: {
    if (dom_order_is_payment_reason(r->reason) ||
        r->reason == LINLI__RESERVATION_RESULT__REASON__DUPLICATE)
      break;
    int reserved = r->status == LINLI__RESERVATION_RESULT__STATUS__RESERVED;
    char *shortages = shortages_json(r);
    snprintf(n1, sizeof n1, "%lld", (long long)r->expires_at_ms);
    const char *p[] = {
        oid,
        r->warehouse_id,
        reserved ? "RESERVED" : "REJECTED",
        reserved ? NULL
                 : ev_enum_name(&linli__reservation_result__reason__descriptor,
                             r->reason),
        opt(r->detail),
        shortages,
        r->expires_at_ms > 0 ? n1 : NULL,
        ev->occurred_ms,
        ev->event_id};
    /* With bulk writes the row goes with the batch, and PostgreSQL tells
     * the first reservation by it (ev_stock_reserve); else its reply. */
    int bulk = ledger_bulk_on(ev->lg);
    PGresult *res = NULL;
    rc = ev_sql(ev, &RSV_FIRST, p, bulk ? NULL : &res);
    free(shortages);
    int first = bulk || (rc == LINLI_OK && PQntuples(res) == 1);
    PQclear(res);
    /* An order has at most one reservation: stock moves for the first. */
    if (rc != LINLI_OK || !reserved || !first)
      break;
    if (r->expires_at_ms > 0 &&
        (rc = ev_order_expires(ev, oid, n1)) != LINLI_OK)
      break;
    struct merged *mg = ev_merge_lines(r->lines, r->n_lines);
    if (mg == NULL) {
      rc = LINLI_ERR_NOMEM;
      break;
    }
    for (size_t i = 0; i < mg->n && rc == LINLI_OK; i++) {
      struct stock_move mv = {.event_id = ev->event_id,
                              .warehouse_id = r->warehouse_id,
                              .sku_id = mg->l[i].sku,
                              .kind = "RESERVE",
                              .quantity = mg->l[i].qty,
                              .order_id = oid,
                              .d_available = -mg->l[i].qty,
                              .d_reserved = mg->l[i].qty};
      rc = ev_stock_reserve(ev, &mv);
    }
    free(mg);
    break;
  }
  case LINLI__RESERVATION_RESULT__STATUS__COMMITTED:
  case LINLI__RESERVATION_RESULT__STATUS__RELEASED: {
    int commit = r->status == LINLI__RESERVATION_RESULT__STATUS__COMMITTED;
    const char *p[] = {oid,
                       r->warehouse_id,
                       commit ? "COMMITTED" : "RELEASED",
                       opt(r->detail),
                       ev->occurred_ms,
                       ev->event_id};
    if ((rc = ev_sql(ev, &RSV_END, p, NULL)) != LINLI_OK)
      break;
    if (commit) {
      snprintf(n1, sizeof n1, "%lld", (long long)r->amount_fen);
      const char *pp[] = {r->payment_txn_id, oid,  n1, "ACCEPTED",
                          NULL,              ev->occurred_ms};
      if ((rc = ev_sql(ev, &PAYMENT_JUDGED, pp, NULL)) != LINLI_OK)
        break;
      const char *op[] = {oid, r->payment_txn_id, n1};
      if ((rc = ev_sql(ev, &ORDER_PAID, op, NULL)) != LINLI_OK)
        break;
      ev_order_forget(ev, oid); /* payment_txn_id: read it again */
      if (!state_changed && (rc = ev_order_changed(ev, oid)) != LINLI_OK)
        break;
    }
    rc = end_reservation(ev, oid, commit);
    /* A paid order of a failed campaign: sold -> available. */
    if (rc == LINLI_OK && !commit &&
        r->reason == LINLI__RESERVATION_RESULT__REASON__GROUP_FAILED)
      rc = return_sold(ev, oid);
    break;
  }
  default:
    break;
  }
  /* A refused payment is recorded against its transaction. */
  if (rc == LINLI_OK &&
      r->status == LINLI__RESERVATION_RESULT__STATUS__REJECTED &&
      dom_order_is_payment_reason(r->reason) && opt(r->payment_txn_id) &&
      r->amount_fen > 0) {
    snprintf(n2, sizeof n2, "%lld", (long long)r->amount_fen);
    const char *pp[] = {
        r->payment_txn_id, oid, n2, "REFUSED",
        ev_enum_name(&linli__reservation_result__reason__descriptor, r->reason),
        ev->occurred_ms};
    rc = ev_sql(ev, &PAYMENT_JUDGED, pp, NULL);
  }
  return rc;
}

int apply_reservations(struct ledger_ev *ev) {
  const Linli__ReservationEvent *e = (const Linli__ReservationEvent *)ev->env;
  if (e->event_case != LINLI__RESERVATION_EVENT__EVENT_RESERVATION_RESULT)
    return ev_dlq(ev, "ReservationEvent carries no event");
  /* apply.c judged the result with libdomain (dom_record_check). */
  const Result *r = e->reservation_result;
  int rc;
  int seen = 0;
  if ((rc = ev_seen(ev, &seen)) != LINLI_OK || seen)
    return rc;
  struct order_row row;
  if ((rc = ev_order_lock(ev, r->order_id, &row)) != LINLI_OK)
    return rc;

  enum dom_order_event event = DOM_OEV_NONE;
  const char *why = NULL;
  if (r->status == LINLI__RESERVATION_RESULT__STATUS__COMMITTED &&
      row.payment_txn[0] && strcmp(row.payment_txn, r->payment_txn_id) != 0)
    return ev_dlq(ev,
                  "order %s is already paid by transaction %s: a second "
                  "payment %s cannot be accepted",
                  r->order_id, row.payment_txn, r->payment_txn_id);
  if ((rc = result_event(ev, r, &event)) != LINLI_OK)
    return rc;
  if (event == DOM_OEV_REJECTED)
    why = ev_enum_name(&linli__reservation_result__reason__descriptor,
                       r->reason);
  else if (event == DOM_OEV_GROUP_FAILED)
    why = "GROUP_FAILED";
  else if (event == DOM_OEV_CANCELLED || event == DOM_OEV_EXPIRED)
    why = opt(r->detail);
  int before = row.state;
  if (event != DOM_OEV_NONE &&
      (rc = ev_order_advance(ev, r->order_id, &row, event, why)) != LINLI_OK)
    return rc;
  if ((rc = ev_history(ev, r->order_id)) != LINLI_OK)
    return rc;
  if (row.state != DOM_ST_NONE && !row.placed &&
      (rc = ev_order_hints(ev, r->order_id, r->user_id, r->warehouse_id,
                           r->app_id, r->campaign_id, r->total_fen)) !=
          LINLI_OK)
    return rc;
  return result_effects(ev, r, row.state != before);
}

