/*
 * audit_stock.c - the reserver's rule: stock per SKU and warehouse.
 *
 * From the log alone: initial = every StockAdjusted the reserver applied
 * (those it refused are in the DLQ with its name), reserved and sold from
 * its ReservationResults. Checked: initial = available + reserved + sold
 * with none negative, and the same numbers in Redis ({w:W}:avail, resv,
 * sold, init) and in PostgreSQL (inventory).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.pb-c.h"
#include "inventory.pb-c.h"
#include "linli/error.h"
#include "linli/kafka.h"
#include "domain/reserver_keys.h"
#include "domain/schema.h"
#include "audit.h"
#include "reservations.pb-c.h"

static const char *const stock_topics[] = {
    LINLI_TOPIC_INVENTORY, LINLI_TOPIC_RESERVATIONS, LINLI_TOPIC_CATALOG,
    LINLI_TOPIC_DLQ, NULL};

static void header(const rd_kafka_message_t *m, const char *name, char *out,
                   size_t len) {
  rd_kafka_headers_t *h = NULL;
  const void *v = NULL;
  size_t vlen = 0;
  out[0] = '\0';
  if (rd_kafka_message_headers(m, &h) == RD_KAFKA_RESP_ERR_NO_ERROR &&
      rd_kafka_header_get_last(h, name, &v, &vlen) ==
          RD_KAFKA_RESP_ERR_NO_ERROR &&
      v)
    snprintf(out, len, "%.*s", (int)vlen, (const char *)v);
}

static void observe(struct fold *f, const rd_kafka_message_t *m,
                    const ProtobufCMessage *env) {
  const char *topic = rd_kafka_topic_name(m->rkt);
  char key[64];
  if (strcmp(topic, LINLI_TOPIC_DLQ) == 0) {
    char src[128], consumer[64], part[16], off[32];
    header(m, LINLI_DLQ_H_TOPIC, src, sizeof src);
    header(m, LINLI_DLQ_H_CONSUMER, consumer, sizeof consumer);
    header(m, LINLI_DLQ_H_PARTITION, part, sizeof part);
    header(m, LINLI_DLQ_H_OFFSET, off, sizeof off);
    if (strcmp(src, LINLI_TOPIC_INVENTORY) == 0 &&
        strcmp(consumer, "reserver") == 0) {
      snprintf(key, sizeof key, "%s:%s", part, off);
      int *n = linli_strmap_get_or_add(f->refused, key, NULL, NULL);
      if (n)
        (*n)++;
    }
    return;
  }
  if (!env)
    return;
  if (strcmp(topic, LINLI_TOPIC_INVENTORY) == 0) {
    const Linli__InventoryEvent *ev = (const Linli__InventoryEvent *)env;
    if (ev->event_case != LINLI__INVENTORY_EVENT__EVENT_STOCK_ADJUSTED)
      return;
    snprintf(key, sizeof key, "%d:%lld", (int)m->partition,
             (long long)m->offset);
    struct adjustment *a = linli_strmap_get_or_add(f->adjustments, key, NULL, NULL);
    if (a) {
      snprintf(a->warehouse, sizeof a->warehouse, "%s",
               ev->stock_adjusted->warehouse_id);
      snprintf(a->sku, sizeof a->sku, "%s", ev->stock_adjusted->sku_id);
      a->delta = ev->stock_adjusted->quantity;
    }
  } else if (strcmp(topic, LINLI_TOPIC_CATALOG) == 0) {
    const Linli__CatalogEvent *ev = (const Linli__CatalogEvent *)env;
    if (ev->event_case != LINLI__CATALOG_EVENT__EVENT_SKU ||
        !ev->sku->sku_id[0])
      return;
    char *v = linli_strmap_get_or_add(f->catalog, ev->sku->sku_id, NULL, NULL);
    if (v)
      snprintf(v, 64, "%c|%d|%d",
               ev->sku->status == LINLI__SKU__STATUS__DELISTED ? 'D' : 'L',
               (int)ev->sku->storage_class, (int)ev->sku->weight_g);
  } else if (strcmp(topic, LINLI_TOPIC_RESERVATIONS) == 0) {
    const Linli__ReservationEvent *ev = (const Linli__ReservationEvent *)env;
    if (ev->event_case != LINLI__RESERVATION_EVENT__EVENT_RESERVATION_RESULT)
      return;
    const Linli__ReservationResult *r = ev->reservation_result;
    struct order_fold *o = linli_strmap_get_or_add(f->orders, r->order_id, NULL, NULL);
    if (!o)
      return;
    switch (r->status) {
    case LINLI__RESERVATION_RESULT__STATUS__RESERVED: {
      size_t off = 0;
      o->lines[0] = '\0';
      for (size_t i = 0; i < r->n_lines && !o->lines_truncated; i++) {
        int n = snprintf(o->lines + off, sizeof o->lines - off, "%s%s:%d",
                         i ? "," : "", r->lines[i]->sku_id,
                         (int)r->lines[i]->quantity);
        if (n < 0 || (size_t)n >= sizeof o->lines - off) {
          /* Never fold a cut line into the stock: say so instead. */
          o->lines_truncated = 1;
          o->lines[off] = '\0';
        } else {
          off += (size_t)n;
        }
      }
      snprintf(o->warehouse, sizeof o->warehouse, "%s", r->warehouse_id);
      fold_apply_lines(f, r->warehouse_id, o->lines, +1, 0);
      break;
    }
    case LINLI__RESERVATION_RESULT__STATUS__COMMITTED:
      fold_apply_lines(f, o->warehouse, o->lines, -1, +1);
      o->sold = 1;
      break;
    case LINLI__RESERVATION_RESULT__STATUS__RELEASED:
      /* A failed campaign returns a paid order's sold stock too. */
      if (o->sold)
        fold_apply_lines(f, o->warehouse, o->lines, 0, -1);
      else
        fold_apply_lines(f, o->warehouse, o->lines, -1, 0);
      break;
    default:
      break;
    }
  }
}

static void check(struct fold *f, struct audit_ctx *ctx) {
  const char *rule = "stock";
  for (size_t i = 0; i < linli_strmap_capacity(f->stock); i++) {
    struct stock_cell *c = linli_strmap_at(f->stock, i, NULL);
    if (!c || !audit_in_scope(ctx, c->warehouse))
      continue;
    int64_t avail = c->initial - c->reserved - c->sold;
    if (avail < 0 || c->reserved < 0 || c->sold < 0)
      audit_diff(ctx, rule,
                 "%s/%s: negative stock in the log's own numbers "
                 "(available %lld, reserved %lld, sold %lld)",
                 c->warehouse, c->sku, (long long)avail,
                 (long long)c->reserved, (long long)c->sold);
    if (ctx->redis) {
      char k[4][200];
      int64_t v[4] = {0};
      const char *names[] = {DOM_RSV_AVAIL, DOM_RSV_RESV, DOM_RSV_SOLD,
                           DOM_RSV_INIT};
      int64_t want[] = {avail, c->reserved, c->sold, c->initial};
      for (int j = 0; j < 4; j++) {
        dom_rsv_key(k[j], sizeof k[j], c->warehouse, names[j]);
        if (redis_hget_int(ctx->redis, k[j], c->sku, &v[j]) != 0)
          v[j] = -1;
        if (v[j] != want[j])
          audit_diff(ctx, rule, "%s/%s: Redis %s = %lld, the log says %lld",
                     c->warehouse, c->sku, names[j], (long long)v[j],
                     (long long)want[j]);
      }
    }
    if (ctx->pg) {
      const char *params[] = {c->warehouse, c->sku};
      PGresult *res = NULL;
      char err[256];
      if (linli_pg_exec(ctx->pg,
                        "SELECT available, reserved, sold, added "
                        "FROM replay_stock WHERE warehouse_id = $1 AND "
                        "sku_id = $2",
                        2, params, &res, err, sizeof err) == LINLI_OK) {
        int64_t got[4] = {0, 0, 0, 0};
        if (PQntuples(res) == 1)
          for (int j = 0; j < 4; j++)
            got[j] = atoll(PQgetvalue(res, 0, j));
        int64_t want[] = {avail, c->reserved, c->sold, c->initial};
        const char *names[] = {"available", "reserved", "sold", "initial"};
        for (int j = 0; j < 4; j++)
          if (got[j] != want[j])
            audit_diff(ctx, rule,
                       "%s/%s: PostgreSQL inventory.%s = %lld, the log says "
                       "%lld",
                       c->warehouse, c->sku, names[j], (long long)got[j],
                       (long long)want[j]);
      }
      if (res)
        PQclear(res);
    }
  }
}

static int rebuild(struct fold *f, struct audit_ctx *ctx) {
  for (size_t i = 0; i < linli_strmap_capacity(f->stock); i++) {
    struct stock_cell *c = linli_strmap_at(f->stock, i, NULL);
    if (!c || !audit_in_scope(ctx, c->warehouse))
      continue;
    char k[200], v[32];
    const char *names[] = {DOM_RSV_AVAIL, DOM_RSV_RESV, DOM_RSV_SOLD,
                           DOM_RSV_INIT};
    int64_t vals[] = {c->initial - c->reserved - c->sold, c->reserved, c->sold,
                      c->initial};
    for (int j = 0; j < 4; j++) {
      dom_rsv_key(k, sizeof k, c->warehouse, names[j]);
      snprintf(v, sizeof v, "%lld", (long long)vals[j]);
      const char *argv[] = {"HSET", k, c->sku, v};
      redisReply *r = NULL;
      if (linli_redis_command(ctx->redis, 4, argv, NULL, &r) != LINLI_OK)
        return -1;
      freeReplyObject(r);
    }
    dom_rsv_key(k, sizeof k, c->warehouse, DOM_RSV_LOADED);
    const char *argv[] = {"SET", k, "1"};
    redisReply *r = NULL;
    if (linli_redis_command(ctx->redis, 3, argv, NULL, &r) != LINLI_OK)
      return -1;
    freeReplyObject(r);
  }
  for (size_t i = 0; i < linli_strmap_capacity(f->catalog); i++) {
    const char *sku = NULL;
    char *v = linli_strmap_at(f->catalog, i, &sku);
    if (!v)
      continue;
    const char *argv[] = {"HSET", DOM_RSV_KEY_CATALOG, sku, v};
    redisReply *r = NULL;
    if (linli_redis_command(ctx->redis, 4, argv, NULL, &r) != LINLI_OK)
      return -1;
    freeReplyObject(r);
  }
  return 0;
}

const struct audit_rule audit_rule_stock = {
    "stock (reserver)", stock_topics, observe, check, rebuild};
