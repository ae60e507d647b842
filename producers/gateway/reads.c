/*
 * reads.c - GET /v1/orders/{id} and GET /v1/orders?user=&since= from the
 * record (PostgreSQL tables written by the ledger: orders, order_lines,
 * reservations, payments, delivery_events), with tenant isolation: an app
 * key sees only orders whose orders.app_id is its app; anything else is 404
 * exactly as if it did not exist. An order the gateway accepted but the
 * ledger has not recorded yet answers state ACCEPTED, recorded false.
 *
 * Queries are constant SQL with $n parameters, run without blocking the
 * loop (pgq.c): a request parks in a context and is answered from the
 * callbacks. A found order's four detail tables are read in parallel.
 * int64 values (money, times) are JSON strings, like everywhere in linli.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <sys/queue.h>

#include "gateway.h"
#include "linli/error.h"
#include "linli/ids.h"
#include "linli/log.h"

#define MS(col) "(extract(epoch from " col ") * 1000)::bigint::text"

static const char SQL_ORDER[] =
    "SELECT order_id, app_id, user_id, warehouse_id, campaign_id, state, "
    "reason, total_fen::text, paid_fen::text, refunded_fen::text, "
    "payment_txn_id, payment_method, delivery_kind, pickup_point_id, "
    "express::text, " MS("placed_at") ", " MS("expires_at") ", " MS(
        "paid_at") ", version::text, last_event_id, " MS("updated_at") " "
    "FROM gateway_order WHERE order_id = $1";

static const char SQL_LINES[] =
    "SELECT sku_id, quantity::text, unit_price_fen::text "
    "FROM gateway_order_lines "
    "WHERE order_id = $1 ORDER BY line_no";

static const char SQL_RESERVATION[] =
    "SELECT status, reason, detail, " MS("expires_at") ", " MS(
        "reserved_at") ", " MS("released_at") ", " MS("committed_at") " "
    "FROM gateway_order_reservation WHERE order_id = $1";

static const char SQL_PAYMENTS[] =
    "SELECT payment_txn_id, method, amount_fen::text, status, refusal_reason, "
    MS("paid_at") " FROM gateway_order_payments WHERE order_id = $1 "
    "ORDER BY paid_at, "
    "payment_txn_id";

static const char SQL_DELIVERY[] =
    "SELECT event_id, type, route_id, courier_id, pickup_point_id, proof, "
    "reason, " MS("occurred_at") " FROM gateway_order_delivery "
    "WHERE order_id = $1 "
    "ORDER BY occurred_at, event_id";

/* Keyset pagination, newest first: cursor = placed_at in microseconds and
 * the order id of the last row of the previous page. */
static const char SQL_LIST[] =
    "SELECT order_id, app_id, warehouse_id, campaign_id, state, "
    "total_fen::text, paid_fen::text, delivery_kind, pickup_point_id, "
    MS("placed_at") ", (extract(epoch from placed_at) * 1000000)::bigint::text "
    "FROM gateway_user_orders "
    "WHERE user_id = $1 AND ($2::text IS NULL OR app_id = $2) "
    "AND placed_at >= timestamptz 'epoch' + $3::bigint * interval "
    "'1 millisecond' "
    "AND ($4::bigint IS NULL OR (placed_at, order_id) < "
    "(timestamptz 'epoch' + $4::bigint * interval '1 microsecond', $5::text)) "
    "ORDER BY placed_at DESC, order_id DESC LIMIT $6::int";

/* Put column c of row i into o as a string (skipped when NULL). */
static void put(json_t *o, const char *name, const PGresult *res, int i,
                int c) {
  if (!PQgetisnull(res, i, c))
    json_object_set_new(o, name, json_string(PQgetvalue(res, i, c)));
}

static void put_int(json_t *o, const char *name, const PGresult *res, int i,
                    int c) {
  if (!PQgetisnull(res, i, c))
    json_object_set_new(o, name,
                        json_integer(strtoll(PQgetvalue(res, i, c), NULL, 10)));
}

/* The caller may see orders of app (admins see every app). */
static int visible(const struct gw_req *r, const char *app) {
  return r->key->role == GW_ROLE_ADMIN || strcmp(r->key->app_id, app) == 0;
}

static json_t *rows_of(const PGresult *res, const char *const *names,
                       const int *is_int) {
  json_t *arr = json_array();
  for (int i = 0; i < PQntuples(res); i++) {
    json_t *o = json_object();
    for (int c = 0; names[c]; c++) {
      if (is_int && is_int[c])
        put_int(o, names[c], res, i, c);
      else
        put(o, names[c], res, i, c);
    }
    json_array_append_new(arr, o);
  }
  return arr;
}

/* ------------------------------------------------------------ one order */

static const char *const LCOLS[] = {"sku_id", "quantity", "unit_price_fen",
                                    NULL};
static const int LINT[] = {0, 1, 0};
static const char *const RCOLS[] = {"status",          "reason",
                                    "detail",          "expires_at_ms",
                                    "reserved_at_ms",  "released_at_ms",
                                    "committed_at_ms", NULL};
static const char *const PCOLS[] = {"payment_txn_id", "method",
                                    "amount_fen",     "status",
                                    "refusal_reason", "paid_at_ms", NULL};
static const char *const DCOLS[] = {"event_id",        "type",
                                    "route_id",        "courier_id",
                                    "pickup_point_id", "proof",
                                    "reason",          "occurred_at_ms",
                                    NULL};

/* The order's detail tables, read in parallel once the order is found. */
static const struct {
  const char *sql;
  const char *const *cols;
  const int *is_int;
} PARTS[] = {
    {SQL_LINES, LCOLS, LINT},
    {SQL_RESERVATION, RCOLS, NULL},
    {SQL_PAYMENTS, PCOLS, NULL},
    {SQL_DELIVERY, DCOLS, NULL},
};
#define NPARTS (sizeof PARTS / sizeof PARTS[0])

struct get_ctx;
struct part {
  struct get_ctx *g;
  size_t i;
};

struct get_ctx {
  struct gw_req r;
  json_t *o;
  json_t *rows[NPARTS];
  struct part parts[NPARTS];
  size_t pending;
  int failed;
};

static void get_free(struct get_ctx *g) {
  json_decref(g->o);
  for (size_t i = 0; i < NPARTS; i++)
    json_decref(g->rows[i]);
  free(g);
}

static void on_accepted_owner(struct gw *gw, int rc, const char *owner,
                              void *arg) {
  (void)gw;
  struct get_ctx *g = arg;
  struct gw_req *r = &g->r;
  if (rc == LINLI_OK && visible(r, owner))
    gw_reply_json(r, 200,
                  json_pack("{s:s, s:s, s:s, s:b}", "order_id", r->param,
                            "app_id", owner, "state", "ACCEPTED", "recorded",
                            0));
  else if (rc == LINLI_ERR_TRANSIENT)
    gw_reply_error(r, 503, "unavailable", "shared state is unreachable");
  else
    gw_reply_error(r, 404, "not_found", "no such order");
  get_free(g);
}

static void on_part(struct gw *gw, const PGresult *res, void *arg) {
  (void)gw;
  struct part *pt = arg;
  struct get_ctx *g = pt->g;
  if (res)
    g->rows[pt->i] = rows_of(res, PARTS[pt->i].cols, PARTS[pt->i].is_int);
  else
    g->failed = 1;
  if (--g->pending > 0)
    return;
  if (g->failed) {
    gw_reply_error(&g->r, 503, "unavailable", "the record is unreachable");
    get_free(g);
    return;
  }
  json_t *o = g->o;
  json_object_set(o, "lines", g->rows[0]);
  if (json_array_size(g->rows[1]) > 0)
    json_object_set(o, "reservation", json_array_get(g->rows[1], 0));
  json_object_set(o, "payments", g->rows[2]);
  json_object_set(o, "delivery", g->rows[3]);
  g->o = NULL;
  gw_reply_json(&g->r, 200, o);
  get_free(g);
}

static void on_order(struct gw *gw, const PGresult *res, void *arg) {
  struct get_ctx *g = arg;
  struct gw_req *r = &g->r;
  if (!res) {
    gw_reply_error(r, 503, "unavailable", "the record is unreachable");
    get_free(g);
    return;
  }
  if (PQntuples(res) != 1) {
    /* Perhaps accepted by a gateway, not yet in the record: Redis knows. */
    gw_order_owner(gw, r->param, on_accepted_owner, g);
    return;
  }
  if (!visible(r, PQgetvalue(res, 0, 1))) {
    gw_reply_error(r, 404, "not_found", "no such order");
    get_free(g);
    return;
  }
  static const char *const cols[] = {
      "order_id",      "app_id",          "user_id",        "warehouse_id",
      "campaign_id",   "state",           "reason",         "total_fen",
      "paid_fen",      "refunded_fen",    "payment_txn_id", "payment_method",
      "delivery_kind", "pickup_point_id", NULL,             "placed_at_ms",
      "expires_at_ms", "paid_at_ms",      "version",        "last_event_id",
      "updated_at_ms"};
  g->o = json_object();
  for (int c = 0; c < (int)(sizeof cols / sizeof cols[0]); c++)
    if (cols[c])
      put(g->o, cols[c], res, 0, c);
  json_object_set_new(g->o, "express",
                      json_boolean(strcmp(PQgetvalue(res, 0, 14), "true") ==
                                   0));
  json_object_set_new(g->o, "recorded", json_true());
  const char *p[] = {r->param};
  g->pending = NPARTS;
  for (size_t i = 0; i < NPARTS; i++) {
    g->parts[i].g = g;
    g->parts[i].i = i;
    gw_pg_query(gw, PARTS[i].sql, 1, p, on_part, &g->parts[i]);
  }
}

void gw_get_order(struct gw_req *r) {
  struct get_ctx *g = calloc(1, sizeof *g);
  if (!g) {
    gw_reply_error(r, 500, "internal", "out of memory");
    return;
  }
  gw_req_copy(&g->r, r);
  const char *p[] = {r->param};
  gw_pg_query(r->gw, SQL_ORDER, 1, p, on_order, g);
}

/* ---------------------------------------------------------------- list */

static int parse_i64(const char *s, int64_t min, int64_t max, int64_t *out) {
  if (!s || !*s)
    return 0;
  int64_t v = 0;
  for (const char *p = s; *p; p++) {
    if (*p < '0' || *p > '9' || v > INT64_C(100000000000000000))
      return 0;
    v = v * 10 + (*p - '0');
  }
  if (v < min || v > max)
    return 0;
  *out = v;
  return 1;
}

struct list_ctx {
  struct gw_req r;
  int limit;
};

static void on_list(struct gw *gw, const PGresult *res, void *arg) {
  (void)gw;
  struct list_ctx *c = arg;
  if (!res) {
    gw_reply_error(&c->r, 503, "unavailable", "the record is unreachable");
    free(c);
    return;
  }
  static const char *const cols[] = {
      "order_id", "app_id",       "warehouse_id",    "campaign_id",
      "state",    "total_fen",    "paid_fen",        "delivery_kind",
      "pickup_point_id", "placed_at_ms"};
  json_t *arr = json_array();
  int n = PQntuples(res);
  for (int i = 0; i < n; i++) {
    json_t *o = json_object();
    for (int k = 0; k < (int)(sizeof cols / sizeof cols[0]); k++)
      put(o, cols[k], res, i, k);
    json_array_append_new(arr, o);
  }
  json_t *body = json_pack("{s:o}", "orders", arr);
  if (n == c->limit) {
    char next[96];
    snprintf(next, sizeof next, "%s.%s", PQgetvalue(res, n - 1, 10),
             PQgetvalue(res, n - 1, 0));
    json_object_set_new(body, "next_cursor", json_string(next));
  }
  gw_reply_json(&c->r, 200, body);
  free(c);
}

void gw_list_orders(struct gw_req *r) {
  struct evkeyvalq q;
  const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(r->req);
  const char *qs = evhttp_uri_get_query(uri);
  TAILQ_INIT(&q);
  if (qs && evhttp_parse_query_str(qs, &q) != 0) {
    gw_reply_error(r, 400, "invalid_request", "unparseable query string");
    return;
  }
  json_t *errs = json_array();
  const char *user = evhttp_find_header(&q, "user");
  const char *since_s = evhttp_find_header(&q, "since");
  const char *limit_s = evhttp_find_header(&q, "limit");
  const char *cursor = evhttp_find_header(&q, "cursor");
  int64_t since = 0, limit = 50, cur_us = 0;
  char cur_id[LINLI_ID_BUFSZ] = "";
  gw_check_id(errs, "user", user);
  if (since_s && !parse_i64(since_s, 0, INT64_C(32503680000000), &since))
    gw_verr(errs, "since", "UTC milliseconds, a non-negative integer");
  if (limit_s && !parse_i64(limit_s, 1, 200, &limit))
    gw_verr(errs, "limit", "an integer within 1..200");
  if (cursor) {
    const char *dot = strchr(cursor, '.');
    char num[24];
    if (!dot || (size_t)(dot - cursor) >= sizeof num) {
      gw_verr(errs, "cursor", "use next_cursor of the previous page");
    } else {
      snprintf(num, sizeof num, "%.*s", (int)(dot - cursor), cursor);
      if (!parse_i64(num, 0, INT64_MAX / 2, &cur_us) ||
          !linli_id_valid(dot + 1))
        gw_verr(errs, "cursor", "use next_cursor of the previous page");
      else
        snprintf(cur_id, sizeof cur_id, "%s", dot + 1);
    }
  }
  if (gw_reply_invalid(r, errs, "some query parameters are invalid")) {
    evhttp_clear_headers(&q);
    return;
  }
  char since_t[24], cur_t[24], limit_t[24];
  snprintf(since_t, sizeof since_t, "%lld", (long long)since);
  snprintf(cur_t, sizeof cur_t, "%lld", (long long)cur_us);
  snprintf(limit_t, sizeof limit_t, "%lld", (long long)limit);
  const char *params[6] = {
      user, r->key->role == GW_ROLE_ADMIN ? NULL : r->key->app_id, since_t,
      cursor ? cur_t : NULL, cursor ? cur_id : NULL, limit_t};
  struct list_ctx *c = malloc(sizeof *c);
  if (!c) {
    evhttp_clear_headers(&q);
    gw_reply_error(r, 500, "internal", "out of memory");
    return;
  }
  gw_req_copy(&c->r, r);
  c->limit = (int)limit;
  gw_pg_query(r->gw, SQL_LIST, 6, params, on_list, c); /* copies params */
  evhttp_clear_headers(&q);
}
