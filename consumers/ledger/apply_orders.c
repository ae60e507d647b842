/*
 * apply_orders.c - what apps say about an order, into the record:
 * linli.orders.v1 (OrderPlaced fills in the order, its lines and its
 * encrypted personal data; payment notices, cancels and expiries join the
 * history) and linli.refunds.v1 (every refund owed, once). The reserver's
 * judgement of them is apply_reservations.c.
 *
 * A payment notice (OrderPaid) does not change an order's state: the
 * reserver judges it, and its ReservationResult (COMMITTED, or REJECTED for
 * a late or double payment) is what the record follows.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apply.h"
#include "domain/orders.h"
#include "linli/error.h"
#include "orders.pb-c.h"
#include "refunds.pb-c.h"

/* --------------------------------------------------------------- lines */

struct merged *ev_merge_lines(Linli__OrderLine *const *lines, size_t n) {
  struct merged *mg = calloc(1, sizeof *mg + (n ? n : 1) * sizeof mg->l[0]);
  struct dom_sku_units *m = malloc((n ? n : 1) * sizeof *m);
  size_t nm = 0;
  if (mg == NULL || m == NULL ||
      dom_order_lines_merge(lines, n, m, &nm) != LINLI_OK) {
    free(m);
    free(mg);
    return NULL;
  }
  /* Judged with the record (dom_order_check_lines): every factor and the
   * sum are within DOM_MAX_ORDER_FEN, nothing here overflows. */
  for (size_t i = 0; i < n; i++)
    mg->total += (long long)lines[i]->unit_price_fen * lines[i]->quantity;
  for (size_t j = 0; j < nm; j++) {
    const Linli__OrderLine *first = lines[m[j].first];
    mg->l[j].sku = m[j].sku;
    mg->l[j].price = first->unit_price_fen;
    mg->l[j].line_no = (int)m[j].first;
    mg->l[j].qty = m[j].units;
  }
  mg->n = nm;
  free(m);
  return mg;
}

/* ---------------------------------------------------------- OrderPlaced */

static const struct ledger_stmt PLACE = {
    "ledger_order_place",
    "INSERT INTO orders (order_id, app_id, user_id, warehouse_id, "
    "campaign_id, state, total_fen, delivery_kind, pickup_point_id, express, "
    "recipient_name_enc, phone_enc, address_enc, location_enc, pii_key_id, "
    "placed_at, last_event_id, placed_event_id, state_changed_at, "
    "refunded_fen) VALUES ($1::text, $2, $3, $4, $5, 'PLACED', $6, $7, $8, "
    "$9, "
    "$10::bytea, $11::bytea, $12::bytea, $13::bytea, $14, "
    "to_timestamp($15::bigint / 1000.0), $16, $16, "
    "to_timestamp($17::bigint / 1000.0), (SELECT coalesce(sum(amount_fen), "
    "0) FROM refunds WHERE order_id = $1::text)) "
    "ON CONFLICT (order_id) DO UPDATE SET app_id = EXCLUDED.app_id, "
    "user_id = EXCLUDED.user_id, warehouse_id = EXCLUDED.warehouse_id, "
    "campaign_id = EXCLUDED.campaign_id, total_fen = EXCLUDED.total_fen, "
    "delivery_kind = EXCLUDED.delivery_kind, "
    "pickup_point_id = EXCLUDED.pickup_point_id, express = EXCLUDED.express, "
    "recipient_name_enc = EXCLUDED.recipient_name_enc, "
    "phone_enc = EXCLUDED.phone_enc, address_enc = EXCLUDED.address_enc, "
    "location_enc = EXCLUDED.location_enc, pii_key_id = EXCLUDED.pii_key_id, "
    "placed_at = EXCLUDED.placed_at, "
    "placed_event_id = EXCLUDED.placed_event_id, "
    "version = orders.version + 1, updated_at = now() "
    "WHERE orders.placed_event_id IS NULL",
    17, 0,
    "INSERT INTO orders (order_id, app_id, user_id, warehouse_id, "
    "campaign_id, state, total_fen, delivery_kind, pickup_point_id, express, "
    "recipient_name_enc, phone_enc, address_enc, location_enc, pii_key_id, "
    "placed_at, last_event_id, placed_event_id, state_changed_at, "
    "refunded_fen) SELECT u.id, u.app, u.usr, u.wh, u.camp, 'PLACED', "
    "u.total, u.kind, u.pp, u.express, u.nm::bytea, u.ph::bytea, "
    "u.ad::bytea, u.loc::bytea, u.key, to_timestamp(u.placed / 1000.0), "
    "u.ev, u.ev, to_timestamp(u.at / 1000.0), (SELECT "
    "coalesce(sum(amount_fen), 0) FROM refunds f WHERE f.order_id = u.id) "
    "FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], "
    "$6::bigint[], $7::text[], $8::text[], $9::boolean[], $10::text[], "
    "$11::text[], $12::text[], $13::text[], $14::text[], $15::bigint[], "
    "$16::text[], $17::bigint[]) AS u(id, app, usr, wh, camp, total, kind, "
    "pp, express, nm, ph, ad, loc, key, placed, ev, at) "
    "ON CONFLICT (order_id) DO UPDATE SET app_id = EXCLUDED.app_id, "
    "user_id = EXCLUDED.user_id, warehouse_id = EXCLUDED.warehouse_id, "
    "campaign_id = EXCLUDED.campaign_id, total_fen = EXCLUDED.total_fen, "
    "delivery_kind = EXCLUDED.delivery_kind, "
    "pickup_point_id = EXCLUDED.pickup_point_id, express = EXCLUDED.express, "
    "recipient_name_enc = EXCLUDED.recipient_name_enc, "
    "phone_enc = EXCLUDED.phone_enc, address_enc = EXCLUDED.address_enc, "
    "location_enc = EXCLUDED.location_enc, pii_key_id = EXCLUDED.pii_key_id, "
    "placed_at = EXCLUDED.placed_at, "
    "placed_event_id = EXCLUDED.placed_event_id, "
    "version = orders.version + 1, updated_at = now() "
    "WHERE orders.placed_event_id IS NULL",
    /* One OrderPlaced per order and batch: a second one for the same id
     * finds the row placed (history only), so keys never collide. */
    "orders", LEDGER_RANK_PLACE, 1, NULL};

static const struct ledger_stmt LINE = {
    "ledger_order_line",
    "INSERT INTO order_lines (order_id, line_no, sku_id, quantity, "
    "unit_price_fen) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
    5, 0,
    "INSERT INTO order_lines (order_id, line_no, sku_id, quantity, "
    "unit_price_fen) SELECT * FROM unnest($1::text[], $2::int[], $3::text[], "
    "$4::int[], $5::bigint[]) ON CONFLICT DO NOTHING",
    "order_lines", LEDGER_RANK_CHILD, 0, NULL};

/* Encrypted personal fields of a home delivery, as bytea literals. */
struct pii {
  char *name, *phone, *address, *location;
};

static void pii_free(struct pii *p) {
  free(p->name);
  free(p->phone);
  free(p->address);
  free(p->location);
}

static int pii_encrypt(struct ledger_ev *ev, const Linli__HomeDelivery *h,
                       struct pii *p) {
  const struct ledger_crypto *c = &ev->lg->crypto;
  memset(p, 0, sizeof *p);
  if (h == NULL)
    return LINLI_OK;
  if (opt(h->recipient_name) &&
      !(p->name = ledger_encrypt_bytea(c, h->recipient_name,
                                       strlen(h->recipient_name))))
    return LINLI_ERR_NOMEM;
  if (opt(h->phone) &&
      !(p->phone = ledger_encrypt_bytea(c, h->phone, strlen(h->phone))))
    return LINLI_ERR_NOMEM;
  if (opt(h->address) &&
      !(p->address = ledger_encrypt_bytea(c, h->address, strlen(h->address))))
    return LINLI_ERR_NOMEM;
  if (h->lat_e6 != 0 || h->lng_e6 != 0) {
    char loc[32];
    snprintf(loc, sizeof loc, "%d,%d", (int)h->lat_e6, (int)h->lng_e6);
    if (!(p->location = ledger_encrypt_bytea(c, loc, strlen(loc))))
      return LINLI_ERR_NOMEM;
  }
  return LINLI_OK;
}

/* The record is valid (apply.c judged it with dom_order_event_check). */
static int apply_placed(struct ledger_ev *ev, const Linli__OrderPlaced *p) {
  int rc;
  struct merged *mg = ev_merge_lines(p->lines, p->n_lines);
  if (mg == NULL)
    return LINLI_ERR_NOMEM;
  struct pii pii = {0};
  int seen = 0;
  struct order_row row;
  if ((rc = ev_seen(ev, &seen)) != LINLI_OK || seen)
    goto done;
  if ((rc = ev_order_lock(ev, p->order_id, &row)) != LINLI_OK)
    goto done;
  if ((rc = ev_history(ev, p->order_id)) != LINLI_OK)
    goto done;
  if (row.placed)
    goto done; /* a second OrderPlaced for this id: history only */

  long long total = mg->total;
  if (p->total_fen > 0)
    total = p->total_fen;
  int home = p->delivery_case == LINLI__ORDER_PLACED__DELIVERY_HOME;
  if ((rc = pii_encrypt(ev, home ? p->home : NULL, &pii)) != LINLI_OK)
    goto done;
  char total_s[24], placed_s[24];
  snprintf(total_s, sizeof total_s, "%lld", total);
  snprintf(placed_s, sizeof placed_s, "%lld",
           p->placed_at_ms > 0 ? (long long)p->placed_at_ms
                               : atoll(ev->occurred_ms));
  const char *params[] = {p->order_id,
                          opt(p->app_id),
                          p->user_id,
                          p->warehouse_id,
                          opt(p->campaign_id),
                          total_s,
                          home ? "HOME" : "PICKUP",
                          home ? NULL : p->pickup->pickup_point_id,
                          p->express ? "true" : "false",
                          pii.name,
                          pii.phone,
                          pii.address,
                          pii.location,
                          home ? ev->lg->crypto.key_id : NULL,
                          placed_s,
                          ev->event_id,
                          ev->occurred_ms};
  if ((rc = ev_sql(ev, &PLACE, params, NULL)) != LINLI_OK)
    goto done;
  /* inserted as PLACED, or the row of a later event filled in */
  ev_order_cached(ev, p->order_id,
                  row.state == DOM_ST_NONE ? DOM_ST_PLACED : DOM_ST_NONE, 1);
  /* The lines as placed (a SKU listed twice keeps both prices); the
   * merged ones only bound quantities and total. */
  for (size_t i = 0; i < p->n_lines; i++) {
    char no[24], q[24], pr[24];
    snprintf(no, sizeof no, "%zu", i);
    snprintf(q, sizeof q, "%d", (int)p->lines[i]->quantity);
    snprintf(pr, sizeof pr, "%lld", (long long)p->lines[i]->unit_price_fen);
    const char *lp[] = {p->order_id, no, p->lines[i]->sku_id, q, pr};
    if ((rc = ev_sql(ev, &LINE, lp, NULL)) != LINLI_OK)
      goto done;
  }
  rc = ledger_touch(ev->lg, p->order_id);
done:
  pii_free(&pii);
  free(mg);
  return rc;
}

/* ------------------------------------------------------------ OrderPaid */

static const struct ledger_stmt PAYMENT_NOTICE = {
    "ledger_payment_notice",
    "INSERT INTO payments (payment_txn_id, order_id, method, amount_fen, "
    "paid_at, event_id) VALUES ($1, $2, $3, $4, "
    "to_timestamp($5::bigint / 1000.0), $6) "
    "ON CONFLICT (payment_txn_id) DO UPDATE SET "
    "method = coalesce(payments.method, EXCLUDED.method), "
    "paid_at = CASE WHEN payments.event_id IS NULL THEN EXCLUDED.paid_at "
    "ELSE payments.paid_at END, "
    "event_id = coalesce(payments.event_id, EXCLUDED.event_id)",
    6, 0, NULL, NULL, 0, 0, NULL};

static const struct ledger_stmt ORDER_METHOD = {
    "ledger_order_method",
    "UPDATE orders SET payment_method = $3, paid_at = to_timestamp($4::bigint "
    "/ 1000.0), updated_at = now() WHERE order_id = $1 AND "
    "payment_txn_id = $2 AND payment_method IS NULL",
    4, 0, NULL, NULL, 0, 0, NULL};

static int apply_paid(struct ledger_ev *ev, const Linli__OrderPaid *p) {
  int seen = 0;
  int rc = ev_seen(ev, &seen);
  if (rc != LINLI_OK || seen)
    return rc;
  if ((rc = ev_history(ev, p->order_id)) != LINLI_OK)
    return rc;
  char amount[24], paid_at[24];
  snprintf(amount, sizeof amount, "%lld", (long long)p->amount_fen);
  snprintf(paid_at, sizeof paid_at, "%lld",
           p->paid_at_ms > 0 ? (long long)p->paid_at_ms
                             : atoll(ev->occurred_ms));
  const char *method =
      ev_enum_name(&linli__order_paid__method__descriptor, p->method);
  const char *pp[] = {p->payment_txn_id, p->order_id, method,
                      amount,            paid_at,     ev->event_id};
  if ((rc = ev_sql(ev, &PAYMENT_NOTICE, pp, NULL)) != LINLI_OK)
    return rc;
  const char *op[] = {p->order_id, p->payment_txn_id, method, paid_at};
  return ev_sql(ev, &ORDER_METHOD, op, NULL);
}

/* Cancels and expiries are requests and clock decisions: the reserver's
 * RELEASED (or refusal) decides. They join the history. */
static int apply_history_only(struct ledger_ev *ev, const char *order_id) {
  int seen = 0;
  int rc = ev_seen(ev, &seen);
  if (rc != LINLI_OK || seen)
    return rc;
  return ev_history(ev, order_id);
}

/* Every record here passed dom_order_event_check (apply.c): ids, amounts,
 * enums, texts and times are valid. */
int apply_orders(struct ledger_ev *ev) {
  const Linli__OrderEvent *e = (const Linli__OrderEvent *)ev->env;
  switch (e->event_case) {
  case LINLI__ORDER_EVENT__EVENT_ORDER_PLACED:
    return apply_placed(ev, e->order_placed);
  case LINLI__ORDER_EVENT__EVENT_ORDER_PAID:
    return apply_paid(ev, e->order_paid);
  case LINLI__ORDER_EVENT__EVENT_ORDER_CANCELLED:
    return apply_history_only(ev, e->order_cancelled->order_id);
  case LINLI__ORDER_EVENT__EVENT_ORDER_EXPIRED:
    return apply_history_only(ev, e->order_expired->order_id);
  default:
    return ev_dlq(ev, "OrderEvent carries no event");
  }
}

/* Hints of one order in a batch, folded as the single-row statement
 * would apply them one after another: the first known id stays, the last
 * positive total wins. */
static int hints_merge(char **row, const char *const *p) {
  for (int k = 1; k <= 5; k++) {
    int take = k < 5 ? row[k] == NULL && p[k] != NULL : atoll(p[k]) > 0;
    if (!take)
      continue;
    char *v = strdup(p[k]);
    if (v == NULL)
      return LINLI_ERR_NOMEM;
    free(row[k]);
    row[k] = v;
  }
  return LINLI_OK;
}

static const struct ledger_stmt HINTS = {
    "ledger_order_hints",
    "UPDATE orders SET user_id = coalesce(user_id, $2), "
    "warehouse_id = coalesce(warehouse_id, $3), "
    "app_id = coalesce(app_id, $4), campaign_id = coalesce(campaign_id, $5), "
    "total_fen = CASE WHEN $6::bigint > 0 THEN $6::bigint ELSE total_fen END "
    "WHERE order_id = $1 AND placed_event_id IS NULL",
    6, 0,
    "UPDATE orders o SET user_id = coalesce(o.user_id, u.usr), "
    "warehouse_id = coalesce(o.warehouse_id, u.wh), "
    "app_id = coalesce(o.app_id, u.app), "
    "campaign_id = coalesce(o.campaign_id, u.camp), "
    "total_fen = CASE WHEN u.total > 0 THEN u.total ELSE o.total_fen END "
    "FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], "
    "$5::text[], $6::bigint[]) AS u(id, usr, wh, app, camp, total) "
    "WHERE o.order_id = u.id AND o.placed_event_id IS NULL",
    "orders", LEDGER_RANK_HINTS, 1, hints_merge};

int ev_order_hints(struct ledger_ev *ev, const char *order_id,
                   const char *user_id, const char *warehouse_id,
                   const char *app_id, const char *campaign_id,
                   long long total_fen) {
  char total[24];
  snprintf(total, sizeof total, "%lld", total_fen);
  const char *p[] = {order_id,    opt(user_id),     opt(warehouse_id),
                     opt(app_id), opt(campaign_id), total};
  return ev_sql(ev, &HINTS, p, NULL);
}

/* ------------------------------------------------------ RefundRequested */

static const struct ledger_stmt REFUND = {
    "ledger_refund",
    "INSERT INTO refunds (refund_id, order_id, user_id, amount_fen, reason, "
    "cause_event_id, cause_topic, payment_txn_id, campaign_id, event_id, "
    "requested_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, "
    "to_timestamp($11::bigint / 1000.0)) ON CONFLICT DO NOTHING "
    "RETURNING refund_id",
    11, 0, NULL, NULL, 0, 0, NULL};

static const struct ledger_stmt REFUNDED = {
    "ledger_order_refunded",
    "UPDATE orders SET refunded_fen = refunded_fen + $2, updated_at = now() "
    "WHERE order_id = $1",
    2, 0, NULL, NULL, 0, 0, NULL};

int apply_refunds(struct ledger_ev *ev) {
  const Linli__RefundEvent *e = (const Linli__RefundEvent *)ev->env;
  if (e->event_case != LINLI__REFUND_EVENT__EVENT_REFUND_REQUESTED)
    return ev_dlq(ev, "RefundEvent carries no event");
  const Linli__RefundRequested *r = e->refund_requested;
  if (!ev_check_id(ev, r->refund_id, "refund_requested.refund_id") ||
      !ev_check_id(ev, r->order_id, "refund_requested.order_id") ||
      /* A payment for an order linli never accepted is refunded to a user
       * nobody knows: the notice carries none. */
      (!(r->reason == LINLI__REFUND_REQUESTED__REASON__UNKNOWN_ORDER &&
         !opt(r->user_id)) &&
       !ev_check_id(ev, r->user_id, "refund_requested.user_id")) ||
      (opt(r->campaign_id) &&
       !ev_check_id(ev, r->campaign_id, "refund_requested.campaign_id")))
    return LINLI_ERR_INVALID;
  if (r->amount_fen <= 0)
    return ev_dlq(ev, "refund_requested.amount_fen: must be positive");
  if (r->reason == LINLI__REFUND_REQUESTED__REASON__REASON_UNSPECIFIED)
    return ev_dlq(ev, "refund_requested.reason: must be set");
  int seen = 0;
  int rc = ev_seen(ev, &seen);
  if (rc != LINLI_OK || seen)
    return rc;
  if ((rc = ev_history(ev, r->order_id)) != LINLI_OK)
    return rc;
  char amount[24];
  snprintf(amount, sizeof amount, "%lld", (long long)r->amount_fen);
  const char *p[] = {
      r->refund_id,
      r->order_id,
      opt(r->user_id),
      amount,
      ev_enum_name(&linli__refund_requested__reason__descriptor, r->reason),
      r->cause_event_id ? r->cause_event_id : "",
      r->cause_topic ? r->cause_topic : "",
      opt(r->payment_txn_id),
      opt(r->campaign_id),
      ev->event_id,
      ev->occurred_ms};
  PGresult *res = NULL;
  if ((rc = ev_sql(ev, &REFUND, p, &res)) != LINLI_OK)
    return rc;
  int inserted = PQntuples(res) == 1;
  PQclear(res);
  if (!inserted)
    return LINLI_OK; /* the same refund under another event: owed once */
  const char *op[] = {r->order_id, amount};
  return ev_sql(ev, &REFUNDED, op, NULL);
}
