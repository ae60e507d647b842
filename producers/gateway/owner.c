/*
 * owner.c - which app owns an order or a campaign, from the record
 * (PostgreSQL): the look-ups that the tenant guard (guard.c), the publish
 * handlers and the read endpoints all need, kept apart from any of them so
 * that none depends on another. Orders claimed in one loop turn are looked
 * up together in one query.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "gateway.h"
#include "linli/error.h"
#include "linli/ids.h"

static const char SQL_APP[] = "SELECT app_id FROM gateway_order_owner WHERE order_id = $1";

struct app_ctx {
  gw_app_fn fn;
  void *arg;
};

static void on_app(struct gw *gw, const PGresult *res, void *arg) {
  struct app_ctx *c = arg;
  if (!res)
    c->fn(gw, LINLI_ERR_TRANSIENT, NULL, c->arg);
  else if (PQntuples(res) == 1)
    c->fn(gw, LINLI_OK, PQgetvalue(res, 0, 0), c->arg);
  else
    c->fn(gw, LINLI_ERR_NOTFOUND, NULL, c->arg);
  free(c);
}

void gw_pg_campaign_app(struct gw *gw, const char *campaign_id, gw_app_fn fn,
                        void *arg) {
  struct app_ctx *c = malloc(sizeof *c);
  if (!c) {
    fn(gw, LINLI_ERR_TRANSIENT, NULL, arg);
    return;
  }
  c->fn = fn;
  c->arg = arg;
  const char *p[] = {campaign_id};
  gw_pg_query(gw, "SELECT app_id FROM gateway_campaign_owner WHERE campaign_id = $1", 1, p,
              on_app, c);
}

void gw_pg_order_app(struct gw *gw, const char *order_id, gw_app_fn fn,
                     void *arg) {
  struct app_ctx *c = malloc(sizeof *c);
  if (!c) {
    fn(gw, LINLI_ERR_TRANSIENT, NULL, arg);
    return;
  }
  c->fn = fn;
  c->arg = arg;
  const char *p[] = {order_id};
  gw_pg_query(gw, SQL_APP, 1, p, on_app, c);
}

/* ------------------------------------------------- batched owner look-up */

/* The order ids that POST /v1/orders claims in one loop turn are looked up
 * in the record with one query (orders.order_id = ANY($1)), so the record's
 * check costs one PostgreSQL round trip per turn, not one per request. */
#define OB_MAX 500

struct ob_item {
  struct ob_item *next;
  gw_app_fn fn;
  void *arg;
  char order[LINLI_ID_BUFSZ];
};

struct ob_batch {
  struct ob_item *head;
};

static void ob_answer(struct gw *gw, struct ob_item *it, const PGresult *res) {
  while (it) {
    struct ob_item *next = it->next;
    int row = -1;
    for (int i = 0; res && i < PQntuples(res) && row < 0; i++)
      if (strcmp(PQgetvalue(res, i, 0), it->order) == 0)
        row = i;
    if (!res)
      it->fn(gw, LINLI_ERR_TRANSIENT, NULL, it->arg);
    else if (row >= 0)
      it->fn(gw, LINLI_OK, PQgetvalue(res, row, 1), it->arg);
    else
      it->fn(gw, LINLI_ERR_NOTFOUND, NULL, it->arg);
    free(it);
    it = next;
  }
}

static void on_ob(struct gw *gw, const PGresult *res, void *arg) {
  struct ob_batch *b = arg;
  ob_answer(gw, b->head, res);
  free(b);
}

static void ob_flush(struct gw *gw) {
  struct ob_item *head = gw->ob_head;
  gw->ob_head = NULL;
  gw->ob_tail = &gw->ob_head;
  gw->ob_n = 0;
  if (!head)
    return;
  struct ob_batch *b = malloc(sizeof *b);
  size_t len = 3;
  for (struct ob_item *it = head; it; it = it->next)
    len += strlen(it->order) + 1;
  char *arr = b ? malloc(len) : NULL;
  if (!arr) {
    free(b);
    ob_answer(gw, head, NULL);
    return;
  }
  /* Ids are [A-Za-z0-9_-]: an array literal needs no quoting. */
  size_t n = 0;
  arr[n++] = '{';
  for (struct ob_item *it = head; it; it = it->next) {
    size_t l = strlen(it->order);
    memcpy(arr + n, it->order, l);
    n += l;
    arr[n++] = it->next ? ',' : '}';
  }
  arr[n] = '\0';
  b->head = head;
  const char *p[] = {arr};
  gw_pg_query(gw,
              "SELECT order_id, app_id FROM gateway_order_owner "
              "WHERE order_id = ANY($1::text[])",
              1, p, on_ob, b);
  free(arr);
}

static void on_ob_timer(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  ob_flush(arg);
}

void gw_pg_order_app_batched(struct gw *gw, const char *order_id,
                             gw_app_fn fn, void *arg) {
  struct ob_item *it = calloc(1, sizeof *it);
  if (!gw->ob_ev)
    gw->ob_ev = event_new(gw->base, -1, 0, on_ob_timer, gw);
  if (!it || !gw->ob_ev) {
    free(it);
    fn(gw, LINLI_ERR_TRANSIENT, NULL, arg);
    return;
  }
  it->fn = fn;
  it->arg = arg;
  snprintf(it->order, sizeof it->order, "%s", order_id);
  if (!gw->ob_tail)
    gw->ob_tail = &gw->ob_head;
  *gw->ob_tail = it;
  gw->ob_tail = &it->next;
  /* Sent after this loop turn's other requests have joined. */
  if (gw->ob_n++ == 0) {
    struct timeval now = {0, 0};
    event_add(gw->ob_ev, &now);
  }
  if (gw->ob_n >= OB_MAX) {
    event_del(gw->ob_ev);
    ob_flush(gw);
  }
}

void gw_pg_order_app_batch_stop(struct gw *gw) {
  if (gw->ob_ev) {
    event_del(gw->ob_ev);
    ob_flush(gw); /* answered NULL at once if PostgreSQL is stopped */
    event_free(gw->ob_ev);
    gw->ob_ev = NULL;
  }
}
