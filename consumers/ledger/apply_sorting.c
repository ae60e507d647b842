/*
 * apply_sorting.c - SortingList (linli.routes.v1) into sorting_lists and
 * sorting_list_lines (schemas/sql/010_sorting_lists.sql): what the
 * warehouse packs for one pickup point in one wave, read back by the
 * gateway (GET /v1/warehouses/{id}/waves/{wave}/sorting-list).
 *
 * A list is one statement in the batch's pipeline, whatever its length:
 * the lines travel as parallel arrays and are unnested by PostgreSQL, and
 * they are inserted only together with a new list row, so a redelivered
 * or replayed SortingList (same warehouse, wave and pickup point) records
 * nothing twice, with no read back.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apply.h"
#include "linli/error.h"
#include "routes.pb-c.h"

static const struct ledger_stmt SORTING = {
    .name = "ledger_sorting_list",
    .sql = "WITH w AS (INSERT INTO waves (warehouse_id, wave_id) VALUES ($1, $2) "
    "ON CONFLICT DO NOTHING), "
    "h AS (INSERT INTO sorting_lists (warehouse_id, wave_id, "
    "pickup_point_id, community, route_id, event_id) VALUES ($1, $2, $3, $4, "
    "$5, $6) ON CONFLICT DO NOTHING RETURNING warehouse_id, wave_id, "
    "pickup_point_id) "
    "INSERT INTO sorting_list_lines (warehouse_id, wave_id, "
    "pickup_point_id, line_no, order_id, user_id, sku_id, quantity, "
    "storage_class) SELECT h.warehouse_id, h.wave_id, h.pickup_point_id, "
    "l.n - 1, l.o, l.u, l.s, l.q, l.c FROM h CROSS JOIN unnest($7::text[], "
    "$8::text[], $9::text[], $10::int[], $11::text[]) WITH ORDINALITY "
    "AS l(o, u, s, q, c, n)",
    .nparams = 11,
    .per_batch = 0};

static const char *storage_name(int c) {
  switch (c) {
  case LINLI__STORAGE_CLASS__STORAGE_CLASS_UNSPECIFIED:
    return "AMBIENT"; /* as for FulfillmentItem: none known needs no cold */
  case LINLI__STORAGE_CLASS__AMBIENT:
    return "AMBIENT";
  case LINLI__STORAGE_CLASS__CHILLED:
    return "CHILLED";
  case LINLI__STORAGE_CLASS__FROZEN:
    return "FROZEN";
  default:
    return NULL;
  }
}

/* Every check before the write: a bad list goes to the DLQ whole. */
static int validate(struct ledger_ev *ev, const Linli__SortingList *s) {
  if (!ev_check_id(ev, s->warehouse_id, "sorting_list.warehouse_id") ||
      !ev_check_id(ev, s->wave_id, "sorting_list.wave_id") ||
      !ev_check_id(ev, s->pickup_point_id, "sorting_list.pickup_point_id") ||
      !ev_check_id(ev, s->route_id, "sorting_list.route_id") ||
      (opt(s->community) &&
       !ev_check_id(ev, s->community, "sorting_list.community")))
    return LINLI_ERR_INVALID;
  if (s->n_lines == 0)
    return ev_dlq(ev, "sorting_list.lines: at least one line");
  if (s->n_lines > INT32_MAX)
    return ev_dlq(ev, "sorting_list.lines: too many lines");
  for (size_t i = 0; i < s->n_lines; i++) {
    const Linli__SortingList__Line *l = s->lines[i];
    char f[64];
    snprintf(f, sizeof f, "sorting_list.lines[%zu].order_id", i);
    if (!ev_check_id(ev, l->order_id, f))
      return LINLI_ERR_INVALID;
    snprintf(f, sizeof f, "sorting_list.lines[%zu].sku_id", i);
    if (!ev_check_id(ev, l->sku_id, f))
      return LINLI_ERR_INVALID;
    snprintf(f, sizeof f, "sorting_list.lines[%zu].user_id", i);
    if (opt(l->user_id) && !ev_check_id(ev, l->user_id, f))
      return LINLI_ERR_INVALID;
    if (l->quantity <= 0)
      return ev_dlq(ev, "sorting_list.lines[%zu].quantity: must be positive",
                    i);
    if (storage_name(l->storage_class) == NULL)
      return ev_dlq(ev, "sorting_list.lines[%zu].storage_class: AMBIENT, "
                        "CHILLED or FROZEN", i);
  }
  return LINLI_OK;
}

int apply_sorting(struct ledger_ev *ev) {
  const Linli__RouteEvent *e = (const Linli__RouteEvent *)ev->env;
  const Linli__SortingList *s = e->sorting_list;
  int rc = validate(ev, s);
  if (rc != LINLI_OK)
    return rc;
  /* Five columns of the list's lines, each one text[] literal. */
  size_t n = s->n_lines;
  const char **col = malloc(5 * n * sizeof *col);
  char(*qty)[16] = malloc(n * sizeof *qty);
  char *lit[5] = {NULL};
  rc = col && qty ? LINLI_OK : LINLI_ERR_NOMEM;
  for (size_t i = 0; i < n && rc == LINLI_OK; i++) {
    const Linli__SortingList__Line *l = s->lines[i];
    snprintf(qty[i], sizeof qty[i], "%d", (int)l->quantity);
    col[i] = l->order_id;
    col[n + i] = opt(l->user_id);
    col[2 * n + i] = l->sku_id;
    col[3 * n + i] = qty[i];
    col[4 * n + i] = storage_name(l->storage_class);
  }
  for (int k = 0; k < 5 && rc == LINLI_OK; k++)
    if ((lit[k] = ledger_text_array(col + (size_t)k * n, n)) == NULL)
      rc = LINLI_ERR_NOMEM;
  if (rc == LINLI_OK) {
    const char *p[] = {s->warehouse_id, s->wave_id,   s->pickup_point_id,
                       opt(s->community), s->route_id, ev->event_id,
                       lit[0],           lit[1],       lit[2],
                       lit[3],           lit[4]};
    rc = ev_sql(ev, &SORTING, p, NULL);
  }
  for (int k = 0; k < 5; k++)
    free(lit[k]);
  free(col);
  free(qty);
  return rc;
}
