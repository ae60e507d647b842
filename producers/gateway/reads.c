/*
 * reads.c - GET /v1/orders/{id} and GET /v1/orders?user=&since= from the
 * record (PostgreSQL tables written by the ledger: orders, order_lines,
 * reservations, payments, delivery_events), with tenant isolation: an app
 * key sees only orders whose orders.app_id is its app; anything else is 404
 * exactly as if it did not exist. An order the gateway accepted but the
 * ledger has not recorded yet answers state ACCEPTED, recorded false.
 *
 * Queries are prepared constant SQL with $n parameters. They run
 * synchronously on the event loop: each is an index lookup on loopback
 * (sub-millisecond); a gateway that must survive a slow database would move
 * them to libpq's async API (documented limitation in docs/api.md).
 * int64 values (money, times) are JSON strings, like everywhere in linli.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <sys/queue.h>

#include "gateway.h"
#include "linli/error.h"
#include "linli/ids.h"
#include "linli/log.h"

#define MS(col) "(extract(epoch from " col ") * 1000)::bigint::text"

static const char SQL_APP[] = "SELECT app_id FROM orders WHERE order_id = $1";

static const char SQL_ORDER[] =
    "SELECT order_id, app_id, user_id, warehouse_id, campaign_id, state, "
    "reason, total_fen::text, paid_fen::text, refunded_fen::text, "
    "payment_txn_id, payment_method, delivery_kind, pickup_point_id, "
    "express::text, " MS("placed_at") ", " MS("expires_at") ", " MS(
        "paid_at") ", version::text, last_event_id, " MS("updated_at") " "
    "FROM orders WHERE order_id = $1";

static const char SQL_LINES[] =
    "SELECT sku_id, quantity::text, unit_price_fen::text FROM order_lines "
    "WHERE order_id = $1 ORDER BY line_no";

static const char SQL_RESERVATION[] =
    "SELECT status, reason, detail, " MS("expires_at") ", " MS(
        "reserved_at") ", " MS("released_at") ", " MS("committed_at") " "
    "FROM reservations WHERE order_id = $1";

static const char SQL_PAYMENTS[] =
    "SELECT payment_txn_id, method, amount_fen::text, status, refusal_reason, "
    MS("paid_at") " FROM payments WHERE order_id = $1 ORDER BY paid_at, "
    "payment_txn_id";

static const char SQL_DELIVERY[] =
    "SELECT event_id, type, route_id, courier_id, pickup_point_id, proof, "
    "reason, " MS("occurred_at") " FROM delivery_events WHERE order_id = $1 "
    "ORDER BY occurred_at, event_id";

/* Keyset pagination, newest first: cursor = placed_at in microseconds and
 * the order id of the last row of the previous page. */
static const char SQL_LIST[] =
    "SELECT order_id, app_id, warehouse_id, campaign_id, state, "
    "total_fen::text, paid_fen::text, delivery_kind, pickup_point_id, "
    MS("placed_at") ", (extract(epoch from placed_at) * 1000000)::bigint::text "
    "FROM orders WHERE user_id = $1 AND ($2::text IS NULL OR app_id = $2) "
    "AND placed_at >= timestamptz 'epoch' + $3::bigint * interval "
    "'1 millisecond' "
    "AND ($4::bigint IS NULL OR (placed_at, order_id) < "
    "(timestamptz 'epoch' + $4::bigint * interval '1 microsecond', $5::text)) "
    "ORDER BY placed_at DESC, order_id DESC LIMIT $6::int";

static const struct {
  const char *name, *sql;
  int n;
} STMTS[] = {
    {"gw_app", SQL_APP, 1},
    {"gw_order", SQL_ORDER, 1},
    {"gw_lines", SQL_LINES, 1},
    {"gw_reservation", SQL_RESERVATION, 1},
    {"gw_payments", SQL_PAYMENTS, 1},
    {"gw_delivery", SQL_DELIVERY, 1},
    {"gw_list", SQL_LIST, 6},
};

/* Connect (once; linli_pg reconnects by itself afterwards). */
static int pg_ready(struct gw *gw) {
  if (gw->pg)
    return 1;
  char err[256];
  if (linli_pg_connect(linli_config_str(gw->cfg, "pg.conninfo"), 1000,
                       &gw->pg, err, sizeof err) != LINLI_OK) {
    LINLI_WARN("postgresql unreachable", "reason=\"%s\"", err);
    gw->pg = NULL;
    return 0;
  }
  for (size_t i = 0; i < sizeof STMTS / sizeof STMTS[0]; i++)
    linli_pg_prepare(gw->pg, STMTS[i].name, STMTS[i].sql, STMTS[i].n);
  return 1;
}

int gw_reads_init(struct gw *gw, char *err, size_t errlen) {
  (void)err;
  (void)errlen;
  /* Not fatal: publishing works without the record. */
  pg_ready(gw);
  return LINLI_OK;
}

static int query(struct gw *gw, const char *stmt, int n,
                 const char *const *params, PGresult **res) {
  char err[256];
  if (!pg_ready(gw))
    return LINLI_ERR_TRANSIENT;
  int rc = linli_pg_exec_prepared(gw->pg, stmt, n, params, res, err,
                                  sizeof err);
  if (rc != LINLI_OK)
    LINLI_WARN("read query failed", "stmt=%s reason=\"%s\"", stmt, err);
  return rc;
}

int gw_pg_order_app(struct gw *gw, const char *order_id, char *app,
                    size_t applen) {
  PGresult *res = NULL;
  const char *p[] = {order_id};
  int rc = query(gw, "gw_app", 1, p, &res);
  if (rc != LINLI_OK)
    return LINLI_ERR_TRANSIENT;
  if (PQntuples(res) == 1) {
    snprintf(app, applen, "%s", PQgetvalue(res, 0, 0));
    rc = LINLI_OK;
  } else {
    rc = LINLI_ERR_NOTFOUND;
  }
  PQclear(res);
  return rc;
}

/* Put column c of row i into o as a string (skipped when NULL). */
static void put(json_t *o, const char *name, PGresult *res, int i, int c) {
  if (!PQgetisnull(res, i, c))
    json_object_set_new(o, name, json_string(PQgetvalue(res, i, c)));
}

static void put_int(json_t *o, const char *name, PGresult *res, int i, int c) {
  if (!PQgetisnull(res, i, c))
    json_object_set_new(o, name,
                        json_integer(strtoll(PQgetvalue(res, i, c), NULL, 10)));
}

/* The caller may see orders of app (admins see every app). */
static int visible(const struct gw_req *r, const char *app) {
  return r->key->role == GW_ROLE_ADMIN || strcmp(r->key->app_id, app) == 0;
}

static json_t *rows_of(struct gw *gw, const char *stmt, const char *id,
                       const char *const *names, const int *is_int, int *rc) {
  PGresult *res = NULL;
  const char *p[] = {id};
  *rc = query(gw, stmt, 1, p, &res);
  if (*rc != LINLI_OK)
    return NULL;
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
  PQclear(res);
  return arr;
}

void gw_get_order(struct gw_req *r) {
  struct gw *gw = r->gw;
  PGresult *res = NULL;
  const char *p[] = {r->param};
  if (query(gw, "gw_order", 1, p, &res) != LINLI_OK) {
    gw_reply_error(r, 503, "unavailable", "the record is unreachable");
    return;
  }
  if (PQntuples(res) != 1 || !visible(r, PQgetvalue(res, 0, 1))) {
    int found = PQntuples(res) == 1;
    PQclear(res);
    char owner[LINLI_ID_BUFSZ];
    /* Accepted by a gateway, not yet in the record. */
    if (!found &&
        gw_order_owner(gw, r->param, owner, sizeof owner) == LINLI_OK &&
        visible(r, owner)) {
      gw_reply_json(r, 200,
                    json_pack("{s:s, s:s, s:s, s:b}", "order_id", r->param,
                              "app_id", owner, "state", "ACCEPTED",
                              "recorded", 0));
      return;
    }
    gw_reply_error(r, 404, "not_found", "no such order");
    return;
  }
  static const char *const cols[] = {
      "order_id",      "app_id",         "user_id",     "warehouse_id",
      "campaign_id",   "state",          "reason",      "total_fen",
      "paid_fen",      "refunded_fen",   "payment_txn_id", "payment_method",
      "delivery_kind", "pickup_point_id", NULL,          "placed_at_ms",
      "expires_at_ms", "paid_at_ms",     "version",     "last_event_id",
      "updated_at_ms"};
  json_t *o = json_object();
  for (int c = 0; c < (int)(sizeof cols / sizeof cols[0]); c++)
    if (cols[c])
      put(o, cols[c], res, 0, c);
  json_object_set_new(o, "express",
                      json_boolean(strcmp(PQgetvalue(res, 0, 14), "true") == 0));
  json_object_set_new(o, "recorded", json_true());
  PQclear(res);

  static const char *const lcols[] = {"sku_id", "quantity", "unit_price_fen",
                                      NULL};
  static const int lint[] = {0, 1, 0};
  static const char *const rcols[] = {"status",         "reason",
                                      "detail",         "expires_at_ms",
                                      "reserved_at_ms", "released_at_ms",
                                      "committed_at_ms", NULL};
  static const char *const pcols[] = {"payment_txn_id", "method",
                                      "amount_fen",     "status",
                                      "refusal_reason", "paid_at_ms", NULL};
  static const char *const dcols[] = {"event_id",        "type",
                                      "route_id",        "courier_id",
                                      "pickup_point_id", "proof",
                                      "reason",          "occurred_at_ms",
                                      NULL};
  int rc1, rc2, rc3, rc4;
  json_t *lines = rows_of(gw, "gw_lines", r->param, lcols, lint, &rc1);
  json_t *resv = rows_of(gw, "gw_reservation", r->param, rcols, NULL, &rc2);
  json_t *pays = rows_of(gw, "gw_payments", r->param, pcols, NULL, &rc3);
  json_t *dels = rows_of(gw, "gw_delivery", r->param, dcols, NULL, &rc4);
  if (rc1 || rc2 || rc3 || rc4) {
    json_decref(o);
    json_decref(lines);
    json_decref(resv);
    json_decref(pays);
    json_decref(dels);
    gw_reply_error(r, 503, "unavailable", "the record is unreachable");
    return;
  }
  json_object_set_new(o, "lines", lines);
  if (json_array_size(resv) > 0)
    json_object_set(o, "reservation", json_array_get(resv, 0));
  json_decref(resv);
  json_object_set_new(o, "payments", pays);
  json_object_set_new(o, "delivery", dels);
  gw_reply_json(r, 200, o);
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
  if (json_array_size(errs) > 0) {
    evhttp_clear_headers(&q);
    gw_reply_json(r, 400,
                  json_pack("{s:s, s:s, s:o}", "error", "invalid_request",
                            "message", "some query parameters are invalid",
                            "fields", errs));
    return;
  }
  json_decref(errs);
  char since_t[24], cur_t[24], limit_t[24];
  snprintf(since_t, sizeof since_t, "%lld", (long long)since);
  snprintf(cur_t, sizeof cur_t, "%lld", (long long)cur_us);
  snprintf(limit_t, sizeof limit_t, "%lld", (long long)limit);
  const char *params[6] = {
      user, r->key->role == GW_ROLE_ADMIN ? NULL : r->key->app_id, since_t,
      cursor ? cur_t : NULL, cursor ? cur_id : NULL, limit_t};
  PGresult *res = NULL;
  int rc = query(r->gw, "gw_list", 6, params, &res);
  evhttp_clear_headers(&q);
  if (rc != LINLI_OK) {
    gw_reply_error(r, 503, "unavailable", "the record is unreachable");
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
    for (int c = 0; c < (int)(sizeof cols / sizeof cols[0]); c++)
      put(o, cols[c], res, i, c);
    json_array_append_new(arr, o);
  }
  json_t *body = json_pack("{s:o}", "orders", arr);
  if (n == limit) {
    char next[96];
    snprintf(next, sizeof next, "%s.%s", PQgetvalue(res, n - 1, 10),
             PQgetvalue(res, n - 1, 0));
    json_object_set_new(body, "next_cursor", json_string(next));
  }
  PQclear(res);
  gw_reply_json(r, 200, body);
}
