/*
 * sorting.c - GET /v1/warehouses/{id}/waves/{wave}/sorting-list: what the
 * warehouse packs for each pickup point of one wave (order, user, SKU,
 * quantity, storage class), for warehouse staff keys and admins. Read in
 * one query from the view wave_sorting_lists (schemas/sql/010), which the
 * ledger fills from the router's SortingList events: no row is a wave the
 * record does not know (404); a wave with no pickup-point orders gives one
 * row without a list (200, no pickup points).
 */
#include <stdlib.h>
#include <string.h>

#include "gateway.h"
#include "linli/error.h"

static const char SQL[] =
    "SELECT pickup_point_id, community, route_id, order_id, user_id, sku_id, "
    "quantity, storage_class, "
    "(extract(epoch FROM cutoff_at) * 1000)::bigint::text "
    "FROM wave_sorting_lists WHERE warehouse_id = $1 AND wave_id = $2 "
    "ORDER BY pickup_point_id, line_no";

enum { C_PP, C_COMMUNITY, C_ROUTE, C_ORDER, C_USER, C_SKU, C_QTY, C_CLASS,
       C_CUTOFF };

struct sl_ctx {
  struct gw_req r;
};

static json_t *str_or_null(const PGresult *res, int row, int col) {
  return PQgetisnull(res, row, col) ? json_null()
                                    : json_string(PQgetvalue(res, row, col));
}

/* The rows (ordered by pickup point, then line) grouped by pickup point. */
static json_t *grouped(const PGresult *res, const struct gw_req *r) {
  json_t *points = json_array();
  json_t *pp = NULL, *lines = NULL, *orders = NULL;
  long long total_qty = 0, pp_qty = 0, nlines = 0;
  const char *cur = NULL;
  int ok = points != NULL;
  for (int i = 0; ok && i < PQntuples(res); i++) {
    if (PQgetisnull(res, i, C_PP))
      continue; /* the wave, known, without lists */
    const char *id = PQgetvalue(res, i, C_PP);
    if (!cur || strcmp(cur, id) != 0) {
      if (pp) {
        json_object_set_new(pp, "orders",
                            json_integer((json_int_t)json_object_size(orders)));
        json_object_set_new(pp, "units", json_integer(pp_qty));
        json_decref(orders);
      }
      cur = id;
      pp_qty = 0;
      lines = json_array();
      orders = json_object(); /* a set of the point's order ids */
      pp = json_pack("{s:s,s:o,s:o,s:o}", "pickup_point_id", id,
                     "community", str_or_null(res, i, C_COMMUNITY),
                     "route_id", str_or_null(res, i, C_ROUTE), "lines",
                     lines);
      ok = pp && lines && orders && json_array_append_new(points, pp) == 0;
      if (!ok)
        break;
    }
    /* quantity is a positive int4 (its CHECK): the sums stay far from
     * overflow in a long long, whatever the number of lines. */
    long long q = atoll(PQgetvalue(res, i, C_QTY));
    pp_qty += q;
    total_qty += q;
    nlines++;
    json_object_set_new(orders, PQgetvalue(res, i, C_ORDER), json_true());
    ok = json_array_append_new(
             lines,
             json_pack("{s:s,s:o,s:s,s:I,s:s}", "order_id",
                       PQgetvalue(res, i, C_ORDER), "user_id",
                       str_or_null(res, i, C_USER), "sku_id",
                       PQgetvalue(res, i, C_SKU), "quantity", (json_int_t)q,
                       "storage_class", PQgetvalue(res, i, C_CLASS))) == 0;
  }
  if (pp) {
    json_object_set_new(pp, "orders",
                        json_integer((json_int_t)json_object_size(orders)));
    json_object_set_new(pp, "units", json_integer(pp_qty));
  }
  json_decref(orders);
  if (!ok) {
    json_decref(points);
    return NULL;
  }
  json_t *cutoff = PQgetisnull(res, 0, C_CUTOFF)
                       ? json_null()
                       : json_integer(atoll(PQgetvalue(res, 0, C_CUTOFF)));
  return json_pack("{s:s,s:s,s:o,s:I,s:I,s:o}", "warehouse_id", r->param,
                   "wave_id", r->param2, "cutoff_ms", cutoff, "lines",
                   (json_int_t)nlines, "units", (json_int_t)total_qty,
                   "pickup_points", points);
}

static void on_rows(struct gw *gw, const PGresult *res, void *arg) {
  (void)gw;
  struct sl_ctx *c = arg;
  struct gw_req *r = &c->r;
  if (!res) {
    gw_reply_error(r, 503, "unavailable", "the record is unreachable");
  } else if (PQntuples(res) == 0) {
    gw_reply_error(r, 404, "not_found", "no such warehouse or wave");
  } else {
    json_t *body = grouped(res, r);
    if (body)
      gw_reply_json(r, 200, body);
    else
      gw_reply_error(r, 500, "internal", "out of memory");
  }
  free(c);
}

void gw_get_sorting_list(struct gw_req *r) {
  struct sl_ctx *c = calloc(1, sizeof *c);
  if (!c) {
    gw_reply_error(r, 500, "internal", "out of memory");
    return;
  }
  gw_req_copy(&c->r, r);
  const char *p[] = {c->r.param, c->r.param2};
  gw_pg_query(r->gw, SQL, 2, p, on_rows, c);
}
