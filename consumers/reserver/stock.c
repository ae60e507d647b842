/*
 * stock.c - a warehouse's stock in Redis: loading it from PostgreSQL (the
 * record) when its hot state is missing, and the process's cache of
 * warehouses known to be loaded.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "linli/error.h"
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

void reserver_loaded_forget(struct reserver *rs, const char *wh) {
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

/* Redis "init" is everything ever added (initial stock + adjustments),
 * so that init = avail + resv + sold holds in Redis as in the record.
 * One statement, one snapshot: 'S' rows are the stock of each SKU, 'H'
 * rows the last offset of each linli.inventory.v1 partition whose
 * adjustments of this warehouse the record already holds. The record
 * (the ledger) may be ahead of this reserver: an adjustment in both the
 * loaded stock and the reserver's input would otherwise count twice.
 * Both are views of schemas/sql/011_reader_views.sql: the ledger's tables
 * are its own. */
static const char LOAD_SQL[] =
    "SELECT 'S', sku_id::text, available::text, reserved::text, sold::text, "
    "added::text FROM reserver_stock WHERE warehouse_id = $1 "
    "UNION ALL "
    "SELECT 'H', partition::text, last_offset::text, '', '', '' "
    "FROM reserver_adjustment_marks WHERE warehouse_id = $1 AND topic = $2";

#define HWM_FIELD_MAX 300

/* Whether the warehouse's `loaded` marker (key k_loaded) is in Redis. */
static int marked_loaded(struct reserver *rs, const char *k_loaded,
                         int *loaded, char *err, size_t errlen) {
  const char *ex[] = {"EXISTS", k_loaded};
  redisReply *r = NULL;
  if (linli_redis_command(rs->redis, 2, ex, NULL, &r) != LINLI_OK) {
    snprintf(err, errlen, "redis unavailable");
    return LINLI_ERR_TRANSIENT;
  }
  *loaded = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
  freeReplyObject(r);
  return LINLI_OK;
}

/* What the record holds for warehouse wh (LOAD_SQL's rows); *res NULL when
 * the record has no inventory table yet. */
static int read_record(struct reserver *rs, const char *wh, PGresult **res,
                       char *err, size_t errlen) {
  *res = NULL;
  if (!rs->pg) {
    int rc = linli_pg_connect(linli_config_str(rs->cfg, "pg.conninfo"),
                              (int)linli_config_int(rs->cfg,
                                                    "pg.connect_timeout_ms"),
                              &rs->pg, err, errlen);
    if (rc != LINLI_OK)
      return LINLI_ERR_TRANSIENT;
  }
  const char *params[] = {wh, LINLI_TOPIC_INVENTORY};
  int rc = linli_pg_exec(rs->pg, LOAD_SQL, 2, params, res, err, errlen);
  if (rc != LINLI_OK) {
    if (*res)
      PQclear(*res);
    *res = NULL;
    /* No inventory table yet means nothing recorded: start empty. */
    if (strstr(err, "42P01") == NULL)
      return LINLI_ERR_TRANSIENT;
  }
  return LINLI_OK;
}

/* The load script's ARGV from the record's rows: the number of SKUs
 * (into nstock_s), 5 values per SKU, then (field, offset) per inventory
 * partition for the warehouse's high-water mark (fields: room for one
 * field per 'H' row). Returns the count; values point into res. */
static int load_args(const PGresult *res, const char **argv,
                     char (*fields)[HWM_FIELD_MAX], char *nstock_s,
                     size_t nstock_len, int *nstock) {
  int rows = res ? PQntuples(res) : 0, n = 0, h = 0;
  *nstock = 0;
  for (int i = 0; i < rows; i++)
    *nstock += PQgetvalue(res, i, 0)[0] == 'S';
  snprintf(nstock_s, nstock_len, "%d", *nstock);
  argv[n++] = nstock_s;
  for (int i = 0; i < rows; i++)
    if (PQgetvalue(res, i, 0)[0] == 'S')
      for (int c = 1; c <= 5; c++)
        argv[n++] = PQgetvalue(res, i, c);
  for (int i = 0; i < rows; i++)
    if (PQgetvalue(res, i, 0)[0] == 'H') {
      snprintf(fields[h], sizeof fields[h], "%s:%s", LINLI_TOPIC_INVENTORY,
               PQgetvalue(res, i, 1));
      argv[n++] = fields[h++];
      argv[n++] = PQgetvalue(res, i, 2);
    }
  return n;
}

/* Run the load script (RESERVER_LUA_LOAD) of the warehouse tagged tag with
 * the record's rows res (may be NULL). */
static int load_stock(struct reserver *rs, const char *wh, const char *tag,
                      const PGresult *res, char *err, size_t errlen) {
  char k_loaded[160], k_avail[160], k_resv[160], k_sold[160], k_init[160],
      k_hwm[160], nstock_s[16];
  int rows = res ? PQntuples(res) : 0, nstock = 0;
  const char **argv = calloc((size_t)rows * 5 + 8, sizeof *argv);
  char(*fields)[HWM_FIELD_MAX] = calloc((size_t)rows + 1, sizeof *fields);
  if (!argv || !fields) {
    free(argv);
    free(fields);
    return LINLI_ERR_TRANSIENT;
  }
  int n = load_args(res, argv, fields, nstock_s, sizeof nstock_s, &nstock);
  linli_redis_key(k_loaded, sizeof k_loaded, tag, DOM_RSV_LOADED);
  linli_redis_key(k_avail, sizeof k_avail, tag, DOM_RSV_AVAIL);
  linli_redis_key(k_resv, sizeof k_resv, tag, DOM_RSV_RESV);
  linli_redis_key(k_sold, sizeof k_sold, tag, DOM_RSV_SOLD);
  linli_redis_key(k_init, sizeof k_init, tag, DOM_RSV_INIT);
  linli_redis_key(k_hwm, sizeof k_hwm, tag, "hwm"); /* see linli/redis.h */
  const char *keys[] = {k_loaded, k_avail, k_resv, k_sold, k_init, k_hwm};
  redisReply *r = NULL;
  int rc = linli_redis_eval(rs->redis, rs->load, 6, keys, n, argv, NULL, &r);
  free(argv);
  free(fields);
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
               nstock, rows - nstock);
  freeReplyObject(r);
  return LINLI_OK;
}

int reserver_ensure_stock(struct reserver *rs, const char *wh, char *err,
                          size_t errlen) {
  char tag[96], k_loaded[160];
  if (loaded_cached(rs, wh))
    return LINLI_OK;
  dom_rsv_tag(tag, sizeof tag, wh);
  linli_redis_key(k_loaded, sizeof k_loaded, tag, DOM_RSV_LOADED);
  int loaded = 0;
  int rc = marked_loaded(rs, k_loaded, &loaded, err, errlen);
  if (rc == LINLI_OK && !loaded) {
    /* Hot state missing: load what the record holds for this warehouse. */
    PGresult *res = NULL;
    rc = read_record(rs, wh, &res, err, errlen);
    if (rc == LINLI_OK)
      rc = load_stock(rs, wh, tag, res, err, errlen);
    if (res)
      PQclear(res);
  }
  if (rc == LINLI_OK)
    loaded_remember(rs, wh);
  return rc;
}

