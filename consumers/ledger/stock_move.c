/*
 * stock_move.c - one stock movement into the record (stock_movements) and
 * its effect on inventory, applied only if the movement (event_id, sku) is
 * new. Used by the stock appliers (apply_stock.c) and the reservation
 * applier (apply_reservations.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    12, 0,
    "INSERT INTO stock_movements (event_id, warehouse_id, sku_id, kind, "
    "quantity, reason, order_id, adjustment_id, topic, partition, "
    "kafka_offset, occurred_at) SELECT a, b, c, d, e, f, g, h, i, j, k, "
    "to_timestamp(l / 1000.0) FROM unnest($1::text[], $2::text[], "
    "$3::text[], $4::text[], $5::int[], $6::text[], $7::text[], $8::text[], "
    "$9::text[], $10::int[], $11::bigint[], $12::bigint[]) AS u(a, b, c, d, "
    "e, f, g, h, i, j, k, l) ON CONFLICT (event_id, sku_id) DO NOTHING",
    "stock_movements", 4, 0, NULL};

/* UPDATE, else INSERT: an INSERT .. ON CONFLICT would check the proposed
 * row (e.g. reserved -1) against the CHECK constraints before it finds the
 * conflict. A concurrent INSERT of the same row is a unique violation: the
 * batch runs again. */
/* The batch's deltas of one (warehouse, SKU) summed: inventory is
 * updated once per SKU and batch. */
static int delta_merge(char **row, const char *const *p) {
  for (int k = 2; k < 6; k++) {
    char sum[24];
    /* Each delta is a quantity (<= 1e6 per line, checked): a batch's sum
     * stays far from overflow. */
    snprintf(sum, sizeof sum, "%lld", atoll(row[k]) + atoll(p[k]));
    char *v = strdup(sum);
    if (v == NULL)
      return LINLI_ERR_NOMEM;
    free(row[k]);
    row[k] = v;
  }
  return LINLI_OK;
}

static const struct ledger_stmt STOCK = {
    "ledger_stock",
    "WITH up AS (UPDATE inventory SET initial = initial + $3, "
    "available = available + $4, reserved = reserved + $5, "
    "sold = sold + $6, updated_at = now() WHERE warehouse_id = $1 AND "
    "sku_id = $2 RETURNING 1) "
    "INSERT INTO inventory (warehouse_id, sku_id, initial, available, "
    "reserved, sold) SELECT $1, $2, $3, $4, $5, $6 "
    "WHERE NOT EXISTS (SELECT 1 FROM up)",
    6, 0,
    "WITH d AS (SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], "
    "$4::bigint[], $5::bigint[], $6::bigint[]) AS d(w, s, di, da, dr, ds) "
    "ORDER BY w, s), up AS (UPDATE inventory i SET initial = initial + "
    "d.di, available = available + d.da, reserved = reserved + d.dr, "
    "sold = sold + d.ds, updated_at = now() FROM d WHERE i.warehouse_id = "
    "d.w AND i.sku_id = d.s RETURNING i.warehouse_id, i.sku_id) "
    "INSERT INTO inventory (warehouse_id, sku_id, initial, available, "
    "reserved, sold) SELECT w, s, di, da, dr, ds FROM d WHERE NOT EXISTS "
    "(SELECT 1 FROM up WHERE up.warehouse_id = d.w AND up.sku_id = d.s)",
    "inventory", 5, 2, delta_merge};

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

int ev_stock_move_new(struct ledger_ev *ev, const struct stock_move *mv) {
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
                     ev->partition, ev->offset,       ev->occurred_ms};
  int rc = ev_sql(ev, &MOVEMENT, p, NULL);
  if (rc != LINLI_OK)
    return rc;
  const char *sp[] = {mv->warehouse_id, mv->sku_id, d[0], d[1], d[2], d[3]};
  return ev_sql(ev, &STOCK, sp, NULL);
}
