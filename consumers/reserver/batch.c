/*
 * batch.c - linli-reserver's handle_batch: the steps of one input batch.
 *
 *   decode    every record decoded and validated in memory (bad -> DLQ)
 *   lookup    one pipelined round trip: the batch's catalog records
 *             written, the catalog entries of its SKUs and the order index
 *             entries of its order ids read
 *   resolve   in memory, in input order: which warehouse each order event
 *             goes to (an OrderPaid may follow its OrderPlaced in the same
 *             batch: same order id, same partition, so in order),
 *             duplicates and catalog rejections decided
 *   apply     one batch script per warehouse shard with all that shard's
 *             effects in input order, every shard in one round trip
 *             (linli_redis_batch_exec: at most once per input, first
 *             outcome again on redelivery)
 *   report    the outputs in input order (report.c), then one pipeline of
 *             global index writes (order -> warehouse, expiry index)
 *
 * The order index entry is "<warehouse>|<offset of the OrderPlaced>": a
 * redelivered batch reads entries that its first attempt wrote, and the
 * offset tells an event that came before the placement (an unknown order
 * then) from one after it, so the decisions do not depend on the attempt.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "linli/error.h"
#include "linli/log.h"
#include "scripts.h"

static int fail(char *reason, size_t len, int rc, const char *what) {
  snprintf(reason, len, "%s", what);
  return rc;
}

/* ------------------------------------------------------------------ decode */

static int decode_all(struct reserver *rs, struct rsv_batch *b,
                      linli_batch_t *in) {
  b->nrecs = linli_batch_count(in);
  b->recs = arena_alloc(&b->arena, (b->nrecs ? b->nrecs : 1) * sizeof *b->recs);
  if (!b->recs)
    return LINLI_ERR_NOMEM;
  for (size_t i = 0; i < b->nrecs; i++) {
    int rc = rsv_decode(rs, b, in, i, &b->recs[i]);
    if (rc != LINLI_OK)
      return rc;
  }
  return LINLI_OK;
}

/* ------------------------------------------------------------------ lookup */

/* Index the batch's distinct SKUs (of orders) and order ids. */
static int collect_keys(struct rsv_batch *b) {
  size_t nlines = 0;
  for (size_t i = 0; i < b->nrecs; i++)
    nlines += b->recs[i].nlines;
  if (strmap_init(&b->skus, &b->arena, nlines) ||
      strmap_init(&b->order_ids, &b->arena, b->nrecs))
    return LINLI_ERR_NOMEM;
  b->sku_list = arena_alloc(&b->arena, (nlines + 1) * sizeof *b->sku_list);
  b->orders = arena_alloc(&b->arena, (b->nrecs + 1) * sizeof *b->orders);
  if (!b->sku_list || !b->orders)
    return LINLI_ERR_NOMEM;
  b->nskus = b->norders = 0;
  for (size_t i = 0; i < b->nrecs; i++) {
    struct rec *r = &b->recs[i];
    for (size_t k = 0; k < r->nlines; k++)
      if (strmap_put(&b->skus, r->lines[k].sku, (int)b->nskus) ==
          (int)b->nskus)
        b->sku_list[b->nskus++] = r->lines[k].sku;
    if (r->order_id) {
      r->order = strmap_put(&b->order_ids, r->order_id, (int)b->norders);
      if (r->order == (int)b->norders)
        b->norders++;
    }
  }
  return LINLI_OK;
}

/* The catalog's value of a SKU: "L|<storage class>|<weight g>|<list price>"
 * ("D|..." when delisted). */
static int queue_catalog(struct rsv_batch *b, const struct rec *r) {
  const Linli__Sku *s = r->sku;
  char value[96];
  snprintf(value, sizeof value, "%c|%d|%d|%lld",
           s->status == LINLI__SKU__STATUS__DELISTED ? 'D' : 'L',
           (int)s->storage_class, (int)s->weight_g,
           (long long)s->list_price_fen);
  const char *argv[] = {"HSET", DOM_RSV_KEY_CATALOG, s->sku_id, value};
  return rsv_queue(b, 4, argv);
}

static const char *arena_dup(struct arena *a, const char *s, size_t n) {
  char *d = arena_alloc(a, n + 1);
  if (d && n)
    memcpy(d, s, n);
  return d;
}

/* "<wh>|<offset>", or an older entry "<wh>" (offset -1). */
static int take_index(struct rsv_batch *b, struct order_state *os,
                      const redisReply *e) {
  os->idx_off = -1;
  if (e->type != REDIS_REPLY_STRING)
    return e->type == REDIS_REPLY_NIL ? LINLI_OK : LINLI_ERR_TRANSIENT;
  const char *bar = memchr(e->str, '|', e->len);
  size_t n = bar ? (size_t)(bar - e->str) : e->len;
  os->idx_wh = arena_dup(&b->arena, e->str, n);
  if (bar)
    os->idx_off = atoll(bar + 1);
  return os->idx_wh ? LINLI_OK : LINLI_ERR_NOMEM;
}

static int take_lookups(struct rsv_batch *b, redisReply **rep, size_t first) {
  size_t k = first;
  if (b->nskus) {
    const redisReply *r = rep[k++];
    if (r->type != REDIS_REPLY_ARRAY || r->elements != b->nskus)
      return LINLI_ERR_TRANSIENT;
    for (size_t i = 0; i < b->nskus; i++) {
      const redisReply *e = r->element[i];
      if (e->type == REDIS_REPLY_STRING &&
          !(b->sku_cat[i] = arena_dup(&b->arena, e->str, e->len)))
        return LINLI_ERR_NOMEM;
    }
  }
  if (b->norders) {
    const redisReply *r = rep[k];
    if (r->type != REDIS_REPLY_ARRAY || r->elements != b->norders)
      return LINLI_ERR_TRANSIENT;
    for (size_t i = 0; i < b->norders; i++) {
      int rc = take_index(b, &b->orders[i], r->element[i]);
      if (rc != LINLI_OK)
        return rc;
    }
  }
  return LINLI_OK;
}

static const char **key_argv(struct rsv_batch *b, const char *cmd,
                             const char *key, const char *prefix,
                             const char **names, size_t n) {
  const char **v = arena_alloc(&b->arena, (n + 2) * sizeof *v);
  if (!v)
    return NULL;
  size_t k = 0;
  v[k++] = cmd;
  if (key)
    v[k++] = key;
  for (size_t i = 0; i < n; i++) {
    v[k] = prefix ? arena_printf(&b->arena, "%s%s", prefix, names[i])
                  : names[i];
    if (!v[k++])
      return NULL;
  }
  return v;
}

static int run_pipeline(struct reserver *rs, struct rsv_batch *b,
                        size_t first, int lookups) {
  size_t n = b->ncmds - first;
  if (n == 0)
    return LINLI_OK;
  redisReply **rep = arena_alloc(&b->arena, n * sizeof *rep);
  if (!rep)
    return LINLI_ERR_NOMEM;
  int rc = linli_redis_pipeline(rs->redis, (int)n, b->cmds + first, rep);
  if (rc != LINLI_OK)
    return LINLI_ERR_TRANSIENT;
  for (size_t i = 0; i < n && rc == LINLI_OK; i++)
    if (rep[i]->type == REDIS_REPLY_ERROR) {
      LINLI_WARN("redis command failed", "cmd=%s reason=\"%s\"",
                 b->cmds[first + i].argv[0], rep[i]->str);
      rc = LINLI_ERR_TRANSIENT;
    }
  if (rc == LINLI_OK && lookups)
    rc = take_lookups(b, rep, n - (b->nskus > 0) - (b->norders > 0));
  for (size_t i = 0; i < n; i++)
    freeReplyObject(rep[i]);
  return rc;
}

/* One round trip: the batch's catalog records, then HMGET of its SKUs and
 * MGET of its order ids' index entries. */
static int lookup(struct reserver *rs, struct rsv_batch *b) {
  int rc = collect_keys(b);
  if (rc != LINLI_OK)
    return rc;
  b->sku_cat = arena_alloc(&b->arena, (b->nskus + 1) * sizeof *b->sku_cat);
  if (!b->sku_cat)
    return LINLI_ERR_NOMEM;
  for (size_t i = 0; i < b->nrecs && rc == LINLI_OK; i++)
    if (b->recs[i].kind == REC_CATALOG)
      rc = queue_catalog(b, &b->recs[i]);
  if (rc == LINLI_OK && b->nskus) {
    const char **v = key_argv(b, "HMGET", DOM_RSV_KEY_CATALOG, NULL,
                              b->sku_list, b->nskus);
    rc = v ? rsv_queue_owned(b, (int)b->nskus + 2, v) : LINLI_ERR_NOMEM;
  }
  if (rc == LINLI_OK && b->norders) {
    const char **ids = arena_alloc(&b->arena, b->norders * sizeof *ids);
    if (!ids)
      return LINLI_ERR_NOMEM;
    for (size_t i = 0; i < b->nrecs; i++)
      if (b->recs[i].order >= 0)
        ids[b->recs[i].order] = b->recs[i].order_id;
    const char **v = key_argv(b, "MGET", NULL, DOM_RSV_KEY_ORDER_WH, ids,
                              b->norders);
    rc = v ? rsv_queue_owned(b, (int)b->norders + 1, v) : LINLI_ERR_NOMEM;
  }
  b->nlookups = b->ncmds;
  return rc == LINLI_OK ? run_pipeline(rs, b, 0, 1) : rc;
}

/* ----------------------------------------------------------------- resolve */

/* The order's warehouse as the record at offset off sees it: placed earlier
 * in this batch, or in the index by an earlier OrderPlaced; NULL if none. */
static const char *known_wh(const struct order_state *os, int64_t off) {
  if (os->new_wh)
    return os->new_wh;
  return os->idx_wh && os->idx_off < off ? os->idx_wh : NULL;
}

/* The list price in a catalog value "L|sc|weight|price"; -1 when the
 * value predates prices. */
static int64_t list_price(const char *cat) {
  const char *p = cat;
  for (int bars = 0; bars < 3; bars++) {
    p = strchr(p, '|');
    if (!p)
      return -1;
    p++;
  }
  return atoll(p);
}

/* A line's price must be the catalog's list price. Orders of a campaign
 * keep their own price: the campaign's price is the settler's to check. */
static int check_prices(struct rsv_batch *b, struct rec *r) {
  const Linli__OrderPlaced *p = r->placed;
  if (p->campaign_id && p->campaign_id[0])
    return LINLI_OK;
  for (size_t k = 0; k < p->n_lines; k++) {
    const Linli__OrderLine *l = p->lines[k];
    int64_t list = list_price(b->sku_cat[strmap_get(&b->skus, l->sku_id)]);
    if (list >= 0 && l->unit_price_fen != list) {
      r->reject = arena_printf(&b->arena,
                               "PRICE_MISMATCH|%s: %lld fen a unit, the "
                               "catalog lists %lld",
                               l->sku_id, (long long)l->unit_price_fen,
                               (long long)list);
      return r->reject ? LINLI_OK : LINLI_ERR_NOMEM;
    }
  }
  return LINLI_OK;
}

/* UNKNOWN_SKU / DELISTED / PRICE_MISMATCH from the catalog, and the
 * coldest storage class. */
static int check_catalog(struct rsv_batch *b, struct rec *r) {
  r->storage_class = 0;
  for (size_t k = 0; k < r->nlines; k++) {
    const char *sku = r->lines[k].sku;
    const char *cat = b->sku_cat[strmap_get(&b->skus, sku)];
    if (!cat)
      r->reject = arena_printf(&b->arena,
                               "UNKNOWN_SKU|%s is not in the catalog", sku);
    else if (cat[0] == 'D')
      r->reject = arena_printf(&b->arena, "DELISTED|%s is delisted", sku);
    else if (strlen(cat) > 2 && atoi(cat + 2) > r->storage_class)
      r->storage_class = atoi(cat + 2);
    if (!r->reject)
      return LINLI_ERR_NOMEM;
    if (r->reject[0])
      return LINLI_OK;
  }
  return check_prices(b, r);
}

static int resolve_placed(struct rsv_batch *b, struct rec *r) {
  struct order_state *os = &b->orders[r->order];
  const char *known = known_wh(os, r->m->offset);
  /* The order key lives under the warehouse's tag, so the script alone
   * sees only a duplicate in the same warehouse. */
  if (known && strcmp(known, r->wh) != 0) {
    r->reject = "DUPLICATE";
    return LINLI_OK;
  }
  if (!os->new_wh)
    os->new_wh = r->wh;
  return r->reject[0] ? LINLI_OK : check_catalog(b, r);
}

static int resolve(struct rsv_batch *b, linli_batch_t *in) {
  for (size_t i = 0; i < b->nrecs; i++) {
    struct rec *r = &b->recs[i];
    if (r->kind == REC_PLACED) {
      int rc = resolve_placed(b, r);
      if (rc != LINLI_OK)
        return rc;
    } else if (r->kind == REC_PAID || r->kind == REC_RELEASE) {
      r->wh = known_wh(&b->orders[r->order], r->m->offset);
      if (!r->wh && r->kind == REC_RELEASE) {
        /* A cancel or expiry of an order nobody knows is bad input; an
         * expiry decided for it must not be announced again and again. */
        char why[160];
        snprintf(why, sizeof why, "%s.order_id: unknown order %s",
                 r->expiry ? "order_expired" : "order_cancelled",
                 r->order_id);
        linli_batch_reject(in, i, LINLI_ERR_INVALID, why);
        int rc = r->expiry ? rsv_expiry_forget(b, r) : LINLI_OK;
        r->kind = REC_SKIP;
        if (rc != LINLI_OK)
          return rc;
      }
    }
  }
  return LINLI_OK;
}

/* Whether the batch would reject an order for its catalog entries. */
static int catalog_rejects(const struct rsv_batch *b) {
  for (size_t i = 0; i < b->nrecs; i++) {
    const struct rec *r = &b->recs[i];
    if (r->kind == REC_PLACED && (strncmp(r->reject, "UNKNOWN_SKU|", 12) == 0 ||
                                  strncmp(r->reject, "DELISTED|", 9) == 0))
      return 1;
  }
  return 0;
}

/* ------------------------------------------------------------------- apply */

static int shard_of(struct reserver *rs, struct rsv_batch *b, struct rec *r) {
  int s = strmap_put(&b->shard_ids, r->wh, (int)b->nshards);
  if (s < (int)b->nshards)
    return s;
  char tag[96];
  dom_rsv_tag(tag, sizeof tag, r->wh);
  if (linli_redis_batch_new(rs->stock, tag, &b->shards[s]) != LINLI_OK)
    return LINLI_ERR_NOMEM;
  b->shard_wh[s] = r->wh;
  b->nshards++;
  return s;
}

/* "sku:qty,..." of the merged lines. */
static char *lines_arg(struct rsv_batch *b, const struct rec *r) {
  size_t len = 1;
  for (size_t k = 0; k < r->nlines; k++)
    len += strlen(r->lines[k].sku) + 10;
  char *s = arena_alloc(&b->arena, len);
  if (!s)
    return NULL;
  size_t off = 0;
  for (size_t k = 0; k < r->nlines; k++)
    off += (size_t)snprintf(s + off, len - off, "%s%s:%lld", k ? "," : "",
                            r->lines[k].sku, (long long)r->lines[k].qty);
  return s;
}

static int effect_args(struct reserver *rs, struct rsv_batch *b,
                       struct rec *r, const char **a, size_t *lens) {
  int n = 0;
  char *num[3] = {0};
  switch (r->kind) {
  case REC_PLACED: {
    const Linli__OrderPlaced *p = r->placed;
    size_t pblen = linli__order_placed__get_packed_size(p);
    uint8_t *pb = arena_alloc(&b->arena, pblen + 1);
    char *ln = lines_arg(b, r);
    char *part = arena_printf(&b->arena, "%d", (int)r->m->partition);
    num[0] = arena_printf(&b->arena, "%lld", (long long)r->expires_at);
    num[1] = arena_printf(&b->arena, "%lld", (long long)r->total);
    num[2] = arena_printf(&b->arena, "%d", r->storage_class);
    if (!pb || !ln || !part || !num[0] || !num[1] || !num[2])
      return LINLI_ERR_NOMEM;
    linli__order_placed__pack(p, pb);
    const char *v[] = {"P",    p->order_id, ln,         num[0],
                       num[1], num[2],      (char *)pb, r->reject,
                       rs->retention_s, p->user_id, r->ctx.cause_event_id,
                       p->campaign_id ? p->campaign_id : "", part};
    for (n = 0; n < 13; n++) {
      a[n] = v[n];
      lens[n] = n == 6 ? pblen : strlen(v[n]);
    }
    return n;
  }
  case REC_PAID:
    num[0] = arena_printf(&b->arena, "%lld", (long long)r->paid->amount_fen);
    a[n++] = "Y", a[n++] = r->order_id, a[n++] = r->paid->payment_txn_id;
    a[n++] = num[0], a[n++] = rs->retention_s;
    break;
  case REC_RELEASE:
    num[0] = arena_printf(&b->arena, "%lld", (long long)r->deadline);
    a[n++] = "R", a[n++] = r->order_id;
    a[n++] = r->expiry ? "EXPIRED" : "CANCELLED";
    a[n++] = num[0], a[n++] = rs->retention_s;
    break;
  case REC_ADJUST:
    num[0] = arena_printf(&b->arena, "%d", (int)r->adj->quantity);
    a[n++] = "A", a[n++] = r->adj->sku_id, a[n++] = num[0];
    break;
  case REC_CAMPAIGN:
    num[0] = arena_printf(&b->arena, "%lld", (long long)r->price);
    a[n++] = r->settled ? "S" : "F", a[n++] = r->campaign_id;
    a[n++] = num[0], a[n++] = rs->retention_s;
    a[n++] = r->campaign_refunds;
    break;
  default:
    return 0;
  }
  if (!num[0])
    return LINLI_ERR_NOMEM;
  for (int k = 0; k < n; k++)
    lens[k] = strlen(a[k]);
  return n;
}

/* Every effect into its warehouse's shard batch, in input order. */
static int build_shards(struct reserver *rs, struct rsv_batch *b,
                        linli_batch_t *in) {
  if (strmap_init(&b->shard_ids, &b->arena, b->nrecs))
    return LINLI_ERR_NOMEM;
  b->shards = arena_alloc(&b->arena, (b->nrecs + 1) * sizeof *b->shards);
  b->shard_wh = arena_alloc(&b->arena, (b->nrecs + 1) * sizeof *b->shard_wh);
  if (!b->shards || !b->shard_wh)
    return LINLI_ERR_NOMEM;
  for (size_t i = 0; i < b->nrecs; i++) {
    struct rec *r = &b->recs[i];
    if (r->kind == REC_SKIP || r->kind == REC_CATALOG || !r->wh)
      continue;
    const char *a[16];
    size_t lens[16];
    int n = effect_args(rs, b, r, a, lens);
    if (n < 0)
      return n;
    if ((r->shard = shard_of(rs, b, r)) < 0)
      return r->shard;
    const char *topic = rd_kafka_topic_name(r->m->rkt);
    r->slot = linli_redis_batch_add(
        b->shards[r->shard], topic, r->m->partition, r->m->offset,
        linli_batch_start(in, topic, r->m->partition), n, a, lens);
    if (r->slot < 0)
      return r->slot;
  }
  return LINLI_OK;
}

static int ensure_loaded(struct reserver *rs, struct rsv_batch *b,
                         char *reason, size_t reasonlen) {
  for (size_t s = 0; s < b->nshards; s++) {
    int rc = reserver_ensure_stock(rs, b->shard_wh[s], reason, reasonlen);
    if (rc != LINLI_OK)
      return rc;
  }
  return LINLI_OK;
}

/* Run the shards; a shard whose stock Redis lost since we saw it loaded is
 * loaded from the record and run once more. */
static int apply(struct reserver *rs, struct rsv_batch *b, char *reason,
                 size_t reasonlen) {
  int rc = ensure_loaded(rs, b, reason, reasonlen);
  size_t n = b->nshards;
  linli_redis_batch_t **todo = arena_alloc(&b->arena, (n + 1) * sizeof *todo);
  if (!todo)
    return LINLI_ERR_NOMEM;
  memcpy(todo, b->shards, n * sizeof *todo);
  for (int attempt = 0; rc == LINLI_OK && n > 0 && attempt < 2; attempt++) {
    rc = linli_redis_batch_exec(rs->redis, todo, n, reason, reasonlen);
    size_t again = 0;
    for (size_t s = 0; rc == LINLI_OK && s < n; s++) {
      const char *msg = NULL;
      if (linli_redis_batch_status(todo[s], &msg) == LINLI_OK)
        continue;
      snprintf(reason, reasonlen, "redis: %s", msg ? msg : "shard failed");
      if (!msg || !strstr(msg, RESERVER_NOT_LOADED) || attempt > 0)
        return LINLI_ERR_TRANSIENT;
      const char *wh = dom_rsv_tag_warehouse(linli_redis_batch_tag(todo[s]));
      LINLI_WARN("warehouse stock missing from redis: loading it",
                 "warehouse=%s", wh);
      reserver_loaded_forget(rs, wh);
      rc = reserver_ensure_stock(rs, wh, reason, reasonlen);
      todo[again++] = todo[s];
    }
    n = again;
  }
  return rc;
}

/* ----------------------------------------------------------------- handler */

static struct rsv_batch *batch_state(struct reserver *rs) {
  if (!rs->batch)
    rs->batch = calloc(1, sizeof *rs->batch);
  if (rs->batch) {
    struct arena keep = rs->batch->arena;
    arena_reset(&keep);
    memset(rs->batch, 0, sizeof *rs->batch);
    rs->batch->arena = keep;
  }
  return rs->batch;
}

static void batch_done(struct rsv_batch *b) {
  for (size_t i = 0; i < b->nrecs; i++)
    rsv_rec_release(&b->recs[i]);
  for (size_t s = 0; s < b->nshards; s++)
    linli_redis_batch_free(b->shards[s]);
  b->nrecs = b->nshards = 0;
}

void reserver_batch_free(struct reserver *rs) {
  if (!rs->batch)
    return;
  batch_done(rs->batch);
  arena_free(&rs->batch->arena);
  free(rs->batch);
  rs->batch = NULL;
}

static int report_all(struct reserver *rs, struct rsv_batch *b,
                      linli_batch_t *in, linli_emit_t *emit, char *reason,
                      size_t reasonlen) {
  size_t first = b->nlookups;
  for (size_t i = 0; i < b->nrecs; i++) {
    int rc = rsv_report(rs, b, in, i, &b->recs[i], emit, reason, reasonlen);
    if (rc != LINLI_OK)
      return rc;
  }
  int rc = run_pipeline(rs, b, first, 0);
  if (rc != LINLI_OK)
    snprintf(reason, reasonlen, "redis unavailable (order and expiry index)");
  return rc;
}

int reserver_handle_batch(void *app, linli_batch_t *in, linli_emit_t *emit,
                          char *reason, size_t reasonlen) {
  struct reserver *rs = app;
  struct rsv_batch *b = batch_state(rs);
  if (!b)
    return fail(reason, reasonlen, LINLI_ERR_TRANSIENT, "out of memory");
  int rc = decode_all(rs, b, in);
  if (rc == LINLI_OK && (rc = lookup(rs, b)) != LINLI_OK)
    snprintf(reason, reasonlen, "redis unavailable (catalog, order index)");
  if (rc == LINLI_OK)
    rc = resolve(b, in);
  if (rc == LINLI_OK && catalog_rejects(b))
    rc = reserver_catalog_wait(rs, in, reason, reasonlen);
  if (rc == LINLI_OK)
    rc = build_shards(rs, b, in);
  if (rc == LINLI_OK)
    rc = apply(rs, b, reason, reasonlen);
  if (rc == LINLI_OK)
    rc = report_all(rs, b, in, emit, reason, reasonlen);
  batch_done(b);
  if (rc == LINLI_ERR_NOMEM)
    snprintf(reason, reasonlen, "out of memory");
  if (rc == LINLI_OK || rc == LINLI_ERR_FATAL)
    return rc;
  return LINLI_ERR_TRANSIENT;
}
