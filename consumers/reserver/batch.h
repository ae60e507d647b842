/*
 * batch.h - the working state of one input batch of linli-reserver
 * (private to decode.c, batch.c and report.c). Everything a batch needs
 * comes from one arena that is reset, not freed, between batches, so a
 * record costs no malloc of its own beyond protobuf decoding.
 */
#ifndef RESERVER_BATCH_H
#define RESERVER_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "catalog.pb-c.h"
#include "inventory.pb-c.h"
#include "linli/redis.h"
#include "orders.pb-c.h"
#include "settlements.pb-c.h"
#include "outputs.h"
#include "reserver.h"

/* ----------------------------------------------------------------- arena */
struct arena_block {
  struct arena_block *next;
  size_t size, used;
  _Alignas(16) unsigned char data[];
};

struct arena {
  struct arena_block *head, *cur;
};

void *arena_alloc(struct arena *a, size_t size); /* zeroed; NULL: no memory */
char *arena_printf(struct arena *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void arena_reset(struct arena *a);
void arena_free(struct arena *a);

/* A string -> int map in the arena (open addressing, never shrinks). */
struct strmap {
  const char **keys;
  int *vals;
  size_t cap;
};

int strmap_init(struct strmap *m, struct arena *a, size_t n);
/* The value of key, or -1. */
int strmap_get(const struct strmap *m, const char *key);
/* Value of key, inserting val first when absent. */
int strmap_put(struct strmap *m, const char *key, int val);

/* ------------------------------------------------------------- records */
enum rec_kind {
  REC_SKIP,    /* rejected (DLQ) or nothing to do (a catalog tombstone) */
  REC_PLACED,
  REC_PAID,
  REC_RELEASE, /* cancel or expiry */
  REC_ADJUST,
  REC_CATALOG,
  REC_CAMPAIGN, /* CampaignSettled or CampaignFailed */
};

struct line {
  const char *sku;
  int64_t qty;
};

struct rec {
  enum rec_kind kind;
  const rd_kafka_message_t *m;
  void *ev; /* decoded event: an OrderEvent, InventoryEvent, CatalogEvent
               or SettlementEvent */
  struct out_ctx ctx;
  const char *order_id;
  const char *wh;  /* shard of the effect (NULL: no Redis effect) */
  int order;       /* index into the batch's orders (order records), or -1 */
  int shard, slot; /* shard batch and input index in it, or -1 */
  /* OrderPlaced */
  const Linli__OrderPlaced *placed;
  struct line *lines;
  size_t nlines;
  int64_t total, expires_at;
  const char *reject; /* pre-decided "REASON|detail" or "DUPLICATE", or "" */
  int storage_class;
  /* OrderPaid */
  const Linli__OrderPaid *paid;
  /* OrderCancelled / OrderExpired */
  int expiry;
  int64_t deadline;
  /* StockAdjusted */
  const Linli__StockAdjusted *adj;
  /* Sku */
  const Linli__Sku *sku;
  /* CampaignSettled / CampaignFailed */
  const char *campaign_id;
  int settled;     /* 1 settled, 0 failed */
  int64_t price;   /* settled unit price */
  const char *campaign_refunds; /* "order:fen,..." (failed) */
};

/* What the batch knows about one order id. */
struct order_state {
  const char *idx_wh; /* from the order index before the batch, or NULL */
  int64_t idx_off;    /* offset of the OrderPlaced that wrote it (-1: older
                         entry without one) */
  const char *new_wh; /* placed earlier in this batch, or NULL */
};

struct rsv_batch {
  struct arena arena;
  struct rec *recs;
  size_t nrecs;
  struct strmap order_ids; /* order id -> index into orders */
  struct order_state *orders;
  size_t norders;
  struct strmap skus; /* sku -> index into sku_cat */
  const char **sku_list;
  const char **sku_cat; /* catalog value per sku (NULL: not in it) */
  size_t nskus;
  struct strmap shard_ids; /* warehouse -> index into shards */
  const char **shard_wh;
  linli_redis_batch_t **shards;
  size_t nshards;
  linli_redis_cmd_t *cmds; /* the lookups, then the global index writes */
  size_t ncmds, cmd_cap;
  size_t nlookups; /* cmds[0..nlookups) are the lookups */
};

/* decode.c: decode and validate record i into r (kind REC_SKIP and the
 * record rejected to the DLQ when it is bad). LINLI_ERR_TRANSIENT when out
 * of memory. */
int rsv_decode(struct reserver *rs, struct rsv_batch *b, linli_batch_t *in,
               size_t i, struct rec *r);
/* Free r's decoded event. */
void rsv_rec_release(struct rec *r);

/* report.c: the outputs and the index writes of record r after the shards
 * ran. LINLI_OK or a transient/fatal error (reason set). */
int rsv_report(struct reserver *rs, struct rsv_batch *b, linli_batch_t *in,
               size_t i, struct rec *r, linli_emit_t *emit, char *reason,
               size_t reasonlen);

/* commands.c: queue a command for the batch's next pipeline; rsv_queue
 * copies argv and its strings into the arena, rsv_queue_owned takes an argv
 * that already lives there. */
int rsv_queue(struct rsv_batch *b, int argc, const char **argv);
int rsv_queue_owned(struct rsv_batch *b, int argc, const char **argv);
/* Queue the removal of r's order from the expiry index (report.c). */
int rsv_expiry_forget(struct rsv_batch *b, const struct rec *r);

#endif
