/*
 * stock.c - the reserver's stock and catalog inputs: StockAdjusted from
 * linli.inventory.v1 (restock, damage, recall, count corrections go through
 * the same warehouse shard as reservations, so they never race them), Sku
 * from linli.catalog.v1 (listed/delisted, storage class), and loading a
 * warehouse's stock from PostgreSQL when its hot state is missing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.pb-c.h"
#include "inventory.pb-c.h"
#include "linli/error.h"
#include "linli/ids.h"
#include "linli/log.h"
#include "reserver.h"

int reserver_redis_simple(struct reserver *rs, int argc, const char **argv,
                          const size_t *lens) {
  redisReply *r = NULL;
  if (linli_redis_command(rs->redis, argc, argv, lens, &r) != LINLI_OK)
    return LINLI_ERR_TRANSIENT;
  int rc = r->type == REDIS_REPLY_ERROR ? LINLI_ERR_TRANSIENT : LINLI_OK;
  if (rc != LINLI_OK)
    LINLI_WARN("redis command failed", "cmd=%s reason=\"%s\"", argv[0], r->str);
  freeReplyObject(r);
  return rc;
}

/* Redis "init" is everything ever added (initial stock + adjustments),
 * so that init = avail + resv + sold holds in Redis as in the record. */
static const char LOAD_SQL[] =
    "SELECT sku_id, available, reserved, sold, initial + adjusted "
    "FROM inventory WHERE warehouse_id = $1";

int reserver_ensure_stock(struct reserver *rs, const char *wh, char *err,
                          size_t errlen) {
  char tag[96], k_loaded[160], k_avail[160], k_resv[160], k_sold[160],
      k_init[160];
  snprintf(tag, sizeof tag, "w:%s", wh);
  linli_redis_key(k_loaded, sizeof k_loaded, tag, "loaded");
  const char *ex[] = {"EXISTS", k_loaded};
  redisReply *r = NULL;
  if (linli_redis_command(rs->redis, 2, ex, NULL, &r) != LINLI_OK) {
    snprintf(err, errlen, "redis unavailable");
    return LINLI_ERR_TRANSIENT;
  }
  int loaded = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
  freeReplyObject(r);
  if (loaded)
    return LINLI_OK;

  /* Hot state missing: load what the record holds for this warehouse. */
  if (!rs->pg) {
    int rc = linli_pg_connect(linli_config_str(rs->cfg, "pg.conninfo"),
                              (int)linli_config_int(rs->cfg,
                                                    "pg.connect_timeout_ms"),
                              &rs->pg, err, errlen);
    if (rc != LINLI_OK)
      return LINLI_ERR_TRANSIENT;
  }
  const char *params[] = {wh};
  PGresult *res = NULL;
  int rc = linli_pg_exec(rs->pg, LOAD_SQL, 1, params, &res, err, errlen);
  if (rc != LINLI_OK) {
    if (res)
      PQclear(res);
    /* No inventory table yet means nothing recorded: start empty. */
    if (strstr(err, "42P01") == NULL)
      return LINLI_ERR_TRANSIENT;
    res = NULL;
  }
  int rows = res ? PQntuples(res) : 0;
  const char **argv = calloc((size_t)rows * 5 + 8, sizeof *argv);
  if (!argv) {
    if (res)
      PQclear(res);
    return LINLI_ERR_TRANSIENT;
  }
  linli_redis_key(k_avail, sizeof k_avail, tag, "avail");
  linli_redis_key(k_resv, sizeof k_resv, tag, "resv");
  linli_redis_key(k_sold, sizeof k_sold, tag, "sold");
  linli_redis_key(k_init, sizeof k_init, tag, "init");
  const char *keys[] = {k_loaded, k_avail, k_resv, k_sold, k_init};
  for (int i = 0; i < rows; i++)
    for (int c = 0; c < 5; c++)
      argv[i * 5 + c] = PQgetvalue(res, i, c);
  r = NULL;
  rc = linli_redis_eval(rs->redis, rs->load, 5, keys, rows * 5, argv, NULL,
                        &r);
  free(argv);
  if (res)
    PQclear(res);
  if (rc != LINLI_OK || r->type == REDIS_REPLY_ERROR) {
    snprintf(err, errlen, "loading stock of %s: %s", wh,
             r && r->type == REDIS_REPLY_ERROR ? r->str : "redis unavailable");
    if (r)
      freeReplyObject(r);
    return LINLI_ERR_TRANSIENT;
  }
  if (r->type == REDIS_REPLY_INTEGER && r->integer == 1)
    LINLI_INFO("stock loaded from the record", "warehouse=%s skus=%d", wh,
               rows);
  freeReplyObject(r);
  return LINLI_OK;
}

int reserver_handle_inventory(struct reserver *rs, const rd_kafka_message_t *m,
                              linli_emit_t *emit, char *reason,
                              size_t reasonlen) {
  (void)emit;
  if (!m->payload || m->len == 0) {
    snprintf(reason, reasonlen, "empty record: expected an InventoryEvent");
    return LINLI_ERR_INVALID;
  }
  Linli__InventoryEvent *ev = linli__inventory_event__unpack(
      NULL, m->len, (const uint8_t *)m->payload);
  if (!ev) {
    snprintf(reason, reasonlen,
             "undecodable record: not an InventoryEvent (%zu bytes)", m->len);
    return LINLI_ERR_INVALID;
  }
  int rc = LINLI_ERR_INVALID;
  const Linli__StockAdjusted *a = ev->stock_adjusted;
  if (ev->event_case != LINLI__INVENTORY_EVENT__EVENT_STOCK_ADJUSTED) {
    snprintf(reason, reasonlen, "InventoryEvent carries no event");
  } else if (!linli_id_valid(a->warehouse_id)) {
    snprintf(reason, reasonlen, "stock_adjusted.warehouse_id: must be 1-64 "
             "characters of [A-Za-z0-9_-]");
  } else if (!linli_id_valid(a->sku_id)) {
    snprintf(reason, reasonlen, "stock_adjusted.sku_id: must be 1-64 "
             "characters of [A-Za-z0-9_-]");
  } else if (a->quantity == 0) {
    snprintf(reason, reasonlen, "stock_adjusted.quantity: must not be 0");
  } else if (a->reason == LINLI__STOCK_ADJUSTED__REASON__REASON_UNSPECIFIED) {
    snprintf(reason, reasonlen,
             "stock_adjusted.reason: RESTOCK, DAMAGE, RECALL or COUNT");
  } else if (a->reason == LINLI__STOCK_ADJUSTED__REASON__RESTOCK &&
             a->quantity < 0) {
    snprintf(reason, reasonlen,
             "stock_adjusted.quantity: a RESTOCK must be positive");
  } else if ((a->reason == LINLI__STOCK_ADJUSTED__REASON__DAMAGE ||
              a->reason == LINLI__STOCK_ADJUSTED__REASON__RECALL) &&
             a->quantity > 0) {
    snprintf(reason, reasonlen,
             "stock_adjusted.quantity: DAMAGE and RECALL must be negative");
  } else {
    char err[256];
    rc = reserver_ensure_stock(rs, a->warehouse_id, err, sizeof err);
    if (rc != LINLI_OK) {
      snprintf(reason, reasonlen, "%s", err);
      goto done;
    }
    char tag[96], k_avail[160], k_init[160], delta[16];
    snprintf(tag, sizeof tag, "w:%s", a->warehouse_id);
    linli_redis_key(k_avail, sizeof k_avail, tag, "avail");
    linli_redis_key(k_init, sizeof k_init, tag, "init");
    snprintf(delta, sizeof delta, "%d", (int)a->quantity);
    const char *keys[] = {k_avail, k_init};
    const char *args[] = {a->sku_id, delta};
    int replayed = 0;
    char *outcome = NULL;
    size_t outlen = 0;
    rc = linli_redis_eval_hwm(rs->redis, rs->adjust, tag,
                              rd_kafka_topic_name(m->rkt), m->partition,
                              m->offset, 2, keys, 2, args, NULL, &replayed,
                              &outcome, &outlen, err, sizeof err);
    if (rc != LINLI_OK) {
      snprintf(reason, reasonlen, "redis: %s", err);
      goto done;
    }
    if (replayed && outcome[0] == '\0') {
      /* Applied long ago (its recorded outcome expired): nothing to do. */
      LINLI_WARN("adjustment already applied, outcome forgotten",
                 "topic=%s partition=%d offset=%lld",
                 rd_kafka_topic_name(m->rkt), (int)m->partition,
                 (long long)m->offset);
    } else if (strncmp(outcome, "NEG|", 4) == 0) {
      snprintf(reason, reasonlen,
               "stock_adjusted.quantity: %d would make available stock of %s "
               "in %s negative (available %s)",
               (int)a->quantity, a->sku_id, a->warehouse_id, outcome + 4);
      rc = LINLI_ERR_INVALID;
    } else {
      LINLI_INFO("stock adjusted", "warehouse=%s sku=%s delta=%d result=%s",
                 a->warehouse_id, a->sku_id, (int)a->quantity, outcome);
    }
    free(outcome);
  }
done:
  linli__inventory_event__free_unpacked(ev, NULL);
  return rc;
}

int reserver_handle_catalog(struct reserver *rs, const rd_kafka_message_t *m,
                            char *reason, size_t reasonlen) {
  if (!m->payload || m->len == 0)
    return LINLI_OK; /* a tombstone on the compacted catalog: nothing to do */
  Linli__CatalogEvent *ev = linli__catalog_event__unpack(
      NULL, m->len, (const uint8_t *)m->payload);
  if (!ev) {
    snprintf(reason, reasonlen,
             "undecodable record: not a CatalogEvent (%zu bytes)", m->len);
    return LINLI_ERR_INVALID;
  }
  int rc = LINLI_ERR_INVALID;
  const Linli__Sku *s = ev->sku;
  if (ev->event_case != LINLI__CATALOG_EVENT__EVENT_SKU) {
    snprintf(reason, reasonlen, "CatalogEvent carries no event");
  } else if (!linli_id_valid(s->sku_id)) {
    snprintf(reason, reasonlen,
             "sku.sku_id: must be 1-64 characters of [A-Za-z0-9_-]");
  } else if (s->status == LINLI__SKU__STATUS__STATUS_UNSPECIFIED) {
    snprintf(reason, reasonlen, "sku.status: LISTED or DELISTED");
  } else {
    /* Setting the latest state is idempotent: a redelivery rewrites it. */
    char value[64];
    snprintf(value, sizeof value, "%c|%d|%d",
             s->status == LINLI__SKU__STATUS__DELISTED ? 'D' : 'L',
             (int)s->storage_class, (int)s->weight_g);
    const char *argv[] = {"HSET", RESERVER_KEY_CATALOG, s->sku_id, value};
    rc = reserver_redis_simple(rs, 4, argv, NULL);
    if (rc != LINLI_OK)
      snprintf(reason, reasonlen, "redis unavailable (catalog)");
  }
  linli__catalog_event__free_unpacked(ev, NULL);
  return rc;
}
