/*
 * stock_move.c - one stock movement into the record (stock_movements) and
 * its effect on inventory, applied only if the movement (event_id, sku) is
 * new. Used by the stock appliers (apply_stock.c) and the reservation
 * applier (apply_reservations.c), whose first reservation of an order
 * moves stock with the batch's bulk writes (ev_stock_reserve).
 */
#include <stdio.h>

#include "apply.h"
#include "linli/error.h"

/* -------------------------------------------------------------- moves */

static const struct ledger_stmt MOVEMENT = {
    "ledger_stock_movement",
    "INSERT INTO stock_movements (event_id, warehouse_id, sku_id, kind, "
    "quantity, reason, order_id, adjustment_id, topic, partition, "
    "kafka_offset, occurred_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, "
    "$10, $11, to_timestamp($12::bigint / 1000.0)) "
    "ON CONFLICT (event_id, sku_id) DO NOTHING RETURNING movement_id",
    12, 0, NULL, NULL, 0, 0, NULL};

/* UPDATE, else INSERT: an INSERT .. ON CONFLICT would check the proposed
 * row (e.g. reserved -1) against the CHECK constraints before it finds the
 * conflict. A concurrent INSERT of the same row is a unique violation: the
 * batch runs again. */
static const struct ledger_stmt STOCK = {
    "ledger_stock",
    "WITH up AS (UPDATE inventory SET initial = initial + $3, "
    "available = available + $4, reserved = reserved + $5, "
    "sold = sold + $6, updated_at = now() WHERE warehouse_id = $1 AND "
    "sku_id = $2 RETURNING 1) "
    "INSERT INTO inventory (warehouse_id, sku_id, initial, available, "
    "reserved, sold) SELECT $1, $2, $3, $4, $5, $6 "
    "WHERE NOT EXISTS (SELECT 1 FROM up)",
    6, 0, NULL, NULL, 0, 0, NULL};

/* The reservation's movements of a batch, and their inventory deltas
 * summed per SKU, in one statement. PostgreSQL decides which apply, as the
 * row-by-row path does with its replies: a movement is written only for
 * the event whose reservation row this is (the order's first reservation:
 * reservations.last_event_id is that event until the reservation ends; the
 * reservation rows of the batch are sent before, see bulk_order), only
 * once per (event, SKU), and only movements written move stock. So a
 * second reservation of the order, or the same event recorded meanwhile
 * by another instance, changes nothing. $1..$12 are MOVEMENT's, $13..$16
 * the deltas (initial, available, reserved, sold). */
#define RESERVE_MOVE_BODY(U)                                                  \
  "WITH u AS (" U "), m AS (INSERT INTO stock_movements (event_id, "          \
  "warehouse_id, sku_id, kind, quantity, reason, order_id, adjustment_id, "  \
  "topic, partition, kafka_offset, occurred_at) SELECT a, b, c, d, e, f, g, " \
  "h, i, j, k, to_timestamp(l / 1000.0) FROM u WHERE EXISTS (SELECT 1 FROM " \
  "reservations r WHERE r.order_id = u.g AND r.last_event_id = u.a) "        \
  "ON CONFLICT (event_id, sku_id) DO NOTHING RETURNING event_id, sku_id), "  \
  "d AS (SELECT u.b AS w, u.c AS s, sum(u.di) AS di, sum(u.da) AS da, "       \
  "sum(u.dr) AS dr, sum(u.ds) AS ds FROM u JOIN m ON m.event_id = u.a AND "   \
  "m.sku_id = u.c GROUP BY u.b, u.c), up AS (UPDATE inventory i SET "       \
  "initial = i.initial + d.di, available = i.available + d.da, "             \
  "reserved = i.reserved + d.dr, sold = i.sold + d.ds, updated_at = now() "  \
  "FROM d WHERE i.warehouse_id = d.w AND i.sku_id = d.s RETURNING "          \
  "i.warehouse_id, i.sku_id) INSERT INTO inventory (warehouse_id, sku_id, "  \
  "initial, available, reserved, sold) SELECT w, s, di, da, dr, ds FROM d "  \
  "WHERE NOT EXISTS (SELECT 1 FROM up WHERE up.warehouse_id = d.w AND "      \
  "up.sku_id = d.s)"

static const struct ledger_stmt RESERVE_MOVE = {
    "ledger_reserve_move",
    RESERVE_MOVE_BODY(
        "SELECT * FROM (VALUES ($1::text, $2::text, $3::text, $4::text, "
        "$5::int, $6::text, $7::text, $8::text, $9::text, $10::int, "
        "$11::bigint, $12::bigint, $13::bigint, $14::bigint, $15::bigint, "
        "$16::bigint)) AS u(a, b, c, d, e, f, g, h, i, j, k, l, di, da, dr, "
        "ds)"),
    16, 0,
    RESERVE_MOVE_BODY(
        "SELECT * FROM unnest($1::text[], $2::text[], $3::text[], "
        "$4::text[], $5::int[], $6::text[], $7::text[], $8::text[], "
        "$9::text[], $10::int[], $11::bigint[], $12::bigint[], "
        "$13::bigint[], $14::bigint[], $15::bigint[], $16::bigint[]) AS "
        "u(a, b, c, d, e, f, g, h, i, j, k, l, di, da, dr, ds)"),
    "stock_movements inventory reservations", LEDGER_RANK_STOCK, 0,
    NULL};

int ev_stock_move(struct ledger_ev *ev, const struct stock_move *mv,
                  int *inserted) {
  char q[24], d[4][24];
  snprintf(q, sizeof q, "%lld", mv->quantity);
  snprintf(d[0], sizeof d[0], "%lld", mv->d_initial);
  snprintf(d[1], sizeof d[1], "%lld", mv->d_available);
  snprintf(d[2], sizeof d[2], "%lld", mv->d_reserved);
  snprintf(d[3], sizeof d[3], "%lld", mv->d_sold);
  const char *p[] = {mv->event_id,  mv->warehouse_id, mv->sku_id,
                     mv->kind,      q,                mv->reason,
                     mv->order_id,  mv->adjustment_id, ev->topic,
                     ev->partition, ev->offset,       ev->occurred_ms};
  PGresult *res = NULL;
  int rc = ev_sql(ev, &MOVEMENT, p, &res);
  if (rc != LINLI_OK)
    return rc;
  *inserted = PQntuples(res) == 1;
  PQclear(res);
  if (!*inserted)
    return LINLI_OK;
  const char *sp[] = {mv->warehouse_id, mv->sku_id, d[0], d[1], d[2], d[3]};
  res = NULL; /* read back at once: a unique violation is a race */
  rc = ev_sql(ev, &STOCK, sp, &res);
  PQclear(res);
  return rc == LINLI_ERR_CONFLICT ? LINLI_ERR_TRANSIENT : rc;
}

int ev_stock_reserve(struct ledger_ev *ev, const struct stock_move *mv) {
  if (!ledger_bulk_on(ev->lg)) {
    int inserted = 0;
    return ev_stock_move(ev, mv, &inserted);
  }
  char q[24], d[4][24];
  snprintf(q, sizeof q, "%lld", mv->quantity);
  snprintf(d[0], sizeof d[0], "%lld", mv->d_initial);
  snprintf(d[1], sizeof d[1], "%lld", mv->d_available);
  snprintf(d[2], sizeof d[2], "%lld", mv->d_reserved);
  snprintf(d[3], sizeof d[3], "%lld", mv->d_sold);
  const char *p[] = {mv->event_id,  mv->warehouse_id, mv->sku_id,
                     mv->kind,      q,                mv->reason,
                     mv->order_id,  mv->adjustment_id, ev->topic,
                     ev->partition, ev->offset,       ev->occurred_ms,
                     d[0],          d[1],             d[2],
                     d[3]};
  return ev_sql(ev, &RESERVE_MOVE, p, NULL);
}
