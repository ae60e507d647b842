/*
 * audit.h - the fold of the log that `audit` compares with PostgreSQL and
 * Redis and that `rebuild` writes into Redis, and the table of rules.
 *
 * Each consumer owns rules: the topics it needs from the log, how a record
 * changes the fold (observe), how the fold is checked against the record
 * and the hot state and DESIGN.md's invariants (check), and optionally how
 * the fold restores its hot state (rebuild). A consumer added later (the
 * group-buy settler, the router, the notifier) appends its rules to the
 * table in audit.c and touches nothing else.
 */
#ifndef REPLAY_AUDIT_H
#define REPLAY_AUDIT_H

#include <stdint.h>
#include <stdio.h>

#include <librdkafka/rdkafka.h>
#include <protobuf-c/protobuf-c.h>

#include "linli/config.h"
#include "linli/pg.h"
#include "linli/redis.h"
#include "linli/strmap.h"

/* One stock cell: a SKU in a warehouse, as the log says it must be. */
struct stock_cell {
  char warehouse[72], sku[72];
  int64_t initial;  /* sum of applied StockAdjusted */
  int64_t reserved; /* held by live reservations */
  int64_t sold;
};

/* One order, folded from every topic that speaks of it. */
struct order_fold {
  char warehouse[72], user[72], app[72];
  char lines[1024];       /* "sku:qty,..." of the reservation */
  int lines_truncated;    /* too many lines for `lines`: not auditable */
  char txn[72];           /* the accepted payment */
  int64_t amount, total, expires_at;
  int32_t orders_partition; /* where OrderPlaced was, -1 unknown */
  int placed;             /* OrderPlaced seen */
  int state;              /* DOM_ST_* (domain/order_state.h) */
  int group_failed;       /* released because its group-buy failed */
  int reserved, committed, released, rejected_at_place, duplicates;
  int cancelled_seen, expired_seen;
  int refunds_owed;       /* rejected payments */
  int storage_class;
  int sold;               /* COMMITTED seen by the stock rule */
  char campaign[72];      /* OrderPlaced.campaign_id */
  uint8_t *placed_pb;     /* OrderPlaced bytes (owned) for rebuild */
  size_t placed_pb_len;
};

/* A StockAdjusted seen in the log, applied unless the reserver refused it. */
struct adjustment {
  char warehouse[72], sku[72];
  int64_t delta;
};

struct fold {
  int max_lines; /* orders.max_lines: what the ledger accepts */
  linli_strmap_t *stock;       /* "W|SKU" -> stock_cell */
  linli_strmap_t *orders;      /* order_id -> order_fold */
  linli_strmap_t *adjustments; /* "partition:offset" -> adjustment */
  linli_strmap_t *refused;     /* "partition:offset" -> int (reserver DLQ) */
  linli_strmap_t *refunds;     /* "order|txn" -> int count */
  linli_strmap_t *refund_ids;  /* refund_id -> int count */
  linli_strmap_t *catalog;     /* sku -> char[64] "L|class|weight" */
  linli_strmap_t *campaigns;      /* campaign_id -> audit_settler.c's fold */
  linli_strmap_t *campaign_users; /* "campaign|user" -> int64_t units */
  linli_strmap_t *campaign_joins; /* "campaign|order" -> audit_settler.c's join */
};


/* Where a check reports: one line per difference, counted. */
struct audit_ctx {
  const linli_config_t *cfg;
  linli_redis_t *redis; /* NULL if Redis is not reachable */
  linli_pg_t *pg;       /* NULL if PostgreSQL is not reachable */
  FILE *out;
  long differences;
  const char *warehouse; /* only this warehouse (NULL: all) */
};

/* 1 if the warehouse is inside the audit's or rebuild's scope. */
int audit_in_scope(const struct audit_ctx *ctx, const char *warehouse);
void audit_diff(struct audit_ctx *ctx, const char *rule, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

struct audit_rule {
  const char *name;
  const char *const *topics; /* NULL-terminated */
  /* env is the decoded envelope (NULL for the DLQ, whose values are raw). */
  void (*observe)(struct fold *f, const rd_kafka_message_t *m,
                  const ProtobufCMessage *env);
  void (*check)(struct fold *f, struct audit_ctx *ctx);
  int (*rebuild)(struct fold *f, struct audit_ctx *ctx); /* may be NULL */
};

/* Rules of the reserver (stock) and of orders, payments and refunds. */
extern const struct audit_rule audit_rule_stock;
extern const struct audit_rule audit_rule_orders;
extern const struct audit_rule audit_rule_refunds;
/* Rule of the group-buy settler (campaigns, tiers, settlements, refunds). */
extern const struct audit_rule audit_rule_settler;
size_t audit_settler_fold_size(void);
size_t audit_settler_join_size(void);

/* fold.c: helpers shared by the rules (audit.c holds the table of rules
 * and the fold's life; no rule calls into it). */
struct stock_cell *fold_cell(struct fold *f, const char *wh, const char *sku);
void fold_apply_lines(struct fold *f, const char *wh, const char *lines,
                      int64_t d_reserved, int64_t d_sold);
int redis_hget_int(linli_redis_t *r, const char *key, const char *field,
                   int64_t *out);

int replay_cmd_audit(const linli_config_t *cfg, int argc, char **argv);
int replay_cmd_rebuild(const linli_config_t *cfg, int argc, char **argv);

#endif
