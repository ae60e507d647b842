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

/* A growing array literal of double-quoted elements ({"a",NULL,"b"}).
 * Elements are ids, numbers or enum names: nothing to escape. */
struct lit {
  char *s;
  size_t len, cap;
};

static int lit_add(struct lit *l, const char *v) {
  size_t need = (v ? strlen(v) + 2 : 4) + 3;
  if (l->len + need > l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 256;
    while (cap < l->len + need)
      cap *= 2;
    char *n = realloc(l->s, cap);
    if (n == NULL)
      return LINLI_ERR_NOMEM;
    l->s = n;
    l->cap = cap;
  }
  if (l->len == 0)
    l->s[l->len++] = '{';
  else
    l->s[l->len++] = ',';
  l->len += (size_t)(v ? sprintf(l->s + l->len, "\"%s\"", v)
                       : sprintf(l->s + l->len, "NULL"));
  return LINLI_OK;
}

static int lit_end(struct lit *l) {
  if (l->len == 0 && lit_add(l, "") != LINLI_OK) /* never: lines >= 1 */
    return LINLI_ERR_NOMEM;
  l->s[l->len++] = '}';
  l->s[l->len] = '\0';
  return LINLI_OK;
}

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
  struct lit o = {0}, u = {0}, k = {0}, q = {0}, c = {0};
  for (size_t i = 0; i < s->n_lines && rc == LINLI_OK; i++) {
    const Linli__SortingList__Line *l = s->lines[i];
    char qty[16];
    snprintf(qty, sizeof qty, "%d", (int)l->quantity);
    if ((rc = lit_add(&o, l->order_id)) == LINLI_OK &&
        (rc = lit_add(&u, opt(l->user_id))) == LINLI_OK &&
        (rc = lit_add(&k, l->sku_id)) == LINLI_OK &&
        (rc = lit_add(&q, qty)) == LINLI_OK)
      rc = lit_add(&c, storage_name(l->storage_class));
  }
  if (rc == LINLI_OK && (rc = lit_end(&o)) == LINLI_OK &&
      (rc = lit_end(&u)) == LINLI_OK && (rc = lit_end(&k)) == LINLI_OK &&
      (rc = lit_end(&q)) == LINLI_OK && (rc = lit_end(&c)) == LINLI_OK) {
    const char *p[] = {s->warehouse_id, s->wave_id,   s->pickup_point_id,
                       opt(s->community), s->route_id, ev->event_id,
                       o.s,              u.s,          k.s,
                       q.s,              c.s};
    rc = ev_sql(ev, &SORTING, p, NULL);
  }
  free(o.s);
  free(u.s);
  free(k.s);
  free(q.s);
  free(c.s);
  return rc;
}
