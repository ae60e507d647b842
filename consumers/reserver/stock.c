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
#include "scripts.h"

/* More warehouses than this per process are simply not cached. */
#define LOADED_CACHE_MAX 4096

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

int reserver_redis_pipeline(struct reserver *rs, int n,
                            const struct reserver_cmd *cmds,
                            redisReply **replies) {
  for (int attempt = 0; attempt < 2; attempt++) {
    redisContext *c = linli_redis_context(rs->redis);
    int sent = 0, got = 0;
    if (c) {
      while (sent < n && redisAppendCommandArgv(c, cmds[sent].argc,
                                                cmds[sent].argv,
                                                cmds[sent].lens) == REDIS_OK)
        sent++;
      while (sent == n && got < n &&
             redisGetReply(c, (void **)&replies[got]) == REDIS_OK &&
             replies[got])
        got++;
      if (got == n)
        return LINLI_OK;
      for (int i = 0; i < got; i++)
        freeReplyObject(replies[i]);
      LINLI_WARN("redis pipeline failed", "reason=\"%s\" retry=%d",
                 c->err ? c->errstr : "no reply", attempt == 0);
    }
    /* The broken (or missing) connection is replaced by the next command
     * that goes through linli_redis, which reconnects. */
    const char *ping[] = {"PING"};
    redisReply *r = NULL;
    if (linli_redis_command(rs->redis, 1, ping, NULL, &r) != LINLI_OK)
      return LINLI_ERR_TRANSIENT;
    freeReplyObject(r);
  }
  return LINLI_ERR_TRANSIENT;
}

static int loaded_cached(const struct reserver *rs, const char *wh) {
  for (size_t i = 0; i < rs->nloaded; i++)
    if (strcmp(rs->loaded[i], wh) == 0)
      return 1;
  return 0;
}

static void loaded_remember(struct reserver *rs, const char *wh) {
  if (rs->nloaded >= LOADED_CACHE_MAX || loaded_cached(rs, wh))
    return;
  if (rs->nloaded == rs->loaded_cap) {
    size_t cap = rs->loaded_cap ? rs->loaded_cap * 2 : 16;
    char **v = realloc(rs->loaded, cap * sizeof *v);
    if (!v)
      return; /* not cached: only costs a round trip later */
    rs->loaded = v;
    rs->loaded_cap = cap;
  }
  char *copy = strdup(wh);
  if (copy)
    rs->loaded[rs->nloaded++] = copy;
}

static void loaded_forget(struct reserver *rs, const char *wh) {
  for (size_t i = 0; i < rs->nloaded; i++)
    if (strcmp(rs->loaded[i], wh) == 0) {
      free(rs->loaded[i]);
      rs->loaded[i] = rs->loaded[--rs->nloaded];
      return;
    }
}

void reserver_loaded_free(struct reserver *rs) {
  for (size_t i = 0; i < rs->nloaded; i++)
    free(rs->loaded[i]);
  free(rs->loaded);
  rs->loaded = NULL;
  rs->nloaded = rs->loaded_cap = 0;
}

#define EFFECT_MAX_KEYS 8

int reserver_effect(struct reserver *rs, linli_redis_script_t *script,
                    const char *wh, const rd_kafka_message_t *m, int nkeys,
                    const char **keys, int nargs, const char **args,
                    const size_t *lens, int *replayed, char **outcome,
                    size_t *outlen, char *err, size_t errlen) {
  char tag[96], k_loaded[160];
  const char *all[EFFECT_MAX_KEYS + 1];
  if (nkeys < 0 || nkeys > EFFECT_MAX_KEYS) {
    snprintf(err, errlen, "too many keys for an effect");
    return LINLI_ERR_FATAL;
  }
  snprintf(tag, sizeof tag, "w:%s", wh);
  linli_redis_key(k_loaded, sizeof k_loaded, tag, "loaded");
  for (int i = 0; i < nkeys; i++)
    all[i] = keys[i];
  all[nkeys] = k_loaded;
  int rc = LINLI_OK;
  for (int attempt = 0; attempt < 2; attempt++) {
    rc = linli_redis_eval_hwm(rs->redis, script, tag,
                              rd_kafka_topic_name(m->rkt), m->partition,
                              m->offset, nkeys + 1, all, nargs, args, lens,
                              replayed, outcome, outlen, err, errlen);
    if (rc != LINLI_ERR_TRANSIENT || !strstr(err, RESERVER_NOT_LOADED))
      return rc;
    /* Redis lost the warehouse since we saw it loaded (a flush, a
     * rebuild in progress): load it from the record, as on first use. */
    LINLI_WARN("warehouse stock missing from redis: loading it",
               "warehouse=%s", wh);
    loaded_forget(rs, wh);
    char lerr[256];
    if (reserver_ensure_stock(rs, wh, lerr, sizeof lerr) != LINLI_OK) {
      snprintf(err, errlen, "%s", lerr);
      return LINLI_ERR_TRANSIENT;
    }
  }
  return rc;
}

/* Redis "init" is everything ever added (initial stock + adjustments),
 * so that init = avail + resv + sold holds in Redis as in the record.
 * One statement, one snapshot: 'S' rows are the stock of each SKU, 'H'
 * rows the last offset of each linli.inventory.v1 partition whose
 * adjustments of this warehouse the record already holds. The record
 * (the ledger) may be ahead of this reserver: an adjustment in both the
 * loaded stock and the reserver's input would otherwise count twice. */
static const char LOAD_SQL[] =
    "SELECT 'S', sku_id::text, available::text, reserved::text, sold::text, "
    "(initial + adjusted)::text FROM inventory WHERE warehouse_id = $1 "
    "UNION ALL "
    "SELECT 'H', partition::text, max(kafka_offset)::text, '', '', '' "
    "FROM stock_movements WHERE warehouse_id = $1 AND topic = $2 "
    "AND kind = 'ADJUST' GROUP BY partition";

#define HWM_FIELD_MAX 300

int reserver_ensure_stock(struct reserver *rs, const char *wh, char *err,
                          size_t errlen) {
  char tag[96], k_loaded[160], k_avail[160], k_resv[160], k_sold[160],
      k_init[160], k_hwm[160];
  if (loaded_cached(rs, wh))
    return LINLI_OK;
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
  if (loaded) {
    loaded_remember(rs, wh);
    return LINLI_OK;
  }

  /* Hot state missing: load what the record holds for this warehouse. */
  if (!rs->pg) {
    int rc = linli_pg_connect(linli_config_str(rs->cfg, "pg.conninfo"),
                              (int)linli_config_int(rs->cfg,
                                                    "pg.connect_timeout_ms"),
                              &rs->pg, err, errlen);
    if (rc != LINLI_OK)
      return LINLI_ERR_TRANSIENT;
  }
  const char *params[] = {wh, RESERVER_TOPIC_INVENTORY};
  PGresult *res = NULL;
  int rc = linli_pg_exec(rs->pg, LOAD_SQL, 2, params, &res, err, errlen);
  if (rc != LINLI_OK) {
    if (res)
      PQclear(res);
    /* No inventory table yet means nothing recorded: start empty. */
    if (strstr(err, "42P01") == NULL)
      return LINLI_ERR_TRANSIENT;
    res = NULL;
  }
  int rows = res ? PQntuples(res) : 0, nstock = 0, nhwm = 0;
  for (int i = 0; i < rows; i++)
    nstock += PQgetvalue(res, i, 0)[0] == 'S';
  nhwm = rows - nstock;
  /* ARGV: the number of SKUs, 5 values per SKU, then (field, offset) per
   * inventory partition for the warehouse's high-water mark. */
  const char **argv = calloc((size_t)rows * 5 + 8, sizeof *argv);
  char(*fields)[HWM_FIELD_MAX] = calloc((size_t)nhwm + 1, sizeof *fields);
  char nstock_s[16];
  if (!argv || !fields) {
    free(argv);
    free(fields);
    if (res)
      PQclear(res);
    return LINLI_ERR_TRANSIENT;
  }
  snprintf(nstock_s, sizeof nstock_s, "%d", nstock);
  int n = 0, h = 0;
  argv[n++] = nstock_s;
  for (int i = 0; i < rows; i++)
    if (PQgetvalue(res, i, 0)[0] == 'S')
      for (int c = 1; c <= 5; c++)
        argv[n++] = PQgetvalue(res, i, c);
  for (int i = 0; i < rows; i++)
    if (PQgetvalue(res, i, 0)[0] == 'H') {
      snprintf(fields[h], sizeof fields[h], "%s:%s", RESERVER_TOPIC_INVENTORY,
               PQgetvalue(res, i, 1));
      argv[n++] = fields[h++];
      argv[n++] = PQgetvalue(res, i, 2);
    }
  linli_redis_key(k_avail, sizeof k_avail, tag, "avail");
  linli_redis_key(k_resv, sizeof k_resv, tag, "resv");
  linli_redis_key(k_sold, sizeof k_sold, tag, "sold");
  linli_redis_key(k_init, sizeof k_init, tag, "init");
  linli_redis_key(k_hwm, sizeof k_hwm, tag, "hwm"); /* see linli/redis.h */
  const char *keys[] = {k_loaded, k_avail, k_resv, k_sold, k_init, k_hwm};
  r = NULL;
  rc = linli_redis_eval(rs->redis, rs->load, 6, keys, n, argv, NULL, &r);
  free(argv);
  free(fields);
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
    LINLI_INFO("stock loaded from the record",
               "warehouse=%s skus=%d inventory_partitions_recorded=%d", wh,
               nstock, nhwm);
  freeReplyObject(r);
  loaded_remember(rs, wh);
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
    rc = reserver_effect(rs, rs->adjust, a->warehouse_id, m, 2, keys, 2, args,
                         NULL, &replayed, &outcome, &outlen, err, sizeof err);
    if (rc != LINLI_OK) {
      snprintf(reason, reasonlen, "redis: %s", err);
      goto done;
    }
    if (replayed && outcome[0] == '\0') {
      /* Applied long ago (its recorded outcome expired), or already in
       * the record the warehouse was loaded from: nothing to do. */
      LINLI_INFO("adjustment already applied: skipped",
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
