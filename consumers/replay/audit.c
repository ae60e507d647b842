/*
 * audit.c - `linli-replay audit` and `linli-replay rebuild --target redis`.
 *
 * Both fold the log through the rules table below. audit compares the fold
 * with PostgreSQL and Redis and checks DESIGN.md's invariants, printing
 * every difference and exiting 1 on any. rebuild writes the consumers' hot
 * state into Redis (and nothing else) for when Redis was lost, with the
 * consumers stopped. Offsets high-water marks are deliberately not
 * restored: the fold reflects exactly the inputs the consumers committed,
 * and every later input is still unprocessed, so it must apply afresh.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "linli/error.h"
#include "linli/log.h"
#include "domain/records.h"
#include "domain/schema.h"
#include "replay.h"

/* The rules, one block per consumer. New consumers append theirs. */
static const struct audit_rule *const rules[] = {
    &audit_rule_stock,
    &audit_rule_orders,
    &audit_rule_refunds,
    &audit_rule_settler,
};
#define NRULES (sizeof rules / sizeof rules[0])

static int fold_init(struct fold *f) {
  memset(f, 0, sizeof *f);
  struct {
    linli_strmap_t **map;
    size_t value_size;
  } maps[] = {
      {&f->stock, sizeof(struct stock_cell)},
      {&f->orders, sizeof(struct order_fold)},
      {&f->adjustments, sizeof(struct adjustment)},
      {&f->refused, sizeof(int)},
      {&f->refunds, 2 * sizeof(int)},
      {&f->refund_ids, sizeof(int)},
      {&f->catalog, 64},
      {&f->campaigns, audit_settler_fold_size()},
      {&f->campaign_users, sizeof(int64_t)},
      {&f->campaign_joins, audit_settler_join_size()},
  };
  for (size_t i = 0; i < sizeof maps / sizeof maps[0]; i++)
    if (linli_strmap_new(maps[i].value_size, 0, maps[i].map) != LINLI_OK)
      return -1;
  return 0;
}

static void fold_free(struct fold *f) {
  if (f->orders)
    for (size_t i = 0; i < linli_strmap_capacity(f->orders); i++) {
      struct order_fold *o = linli_strmap_at(f->orders, i, NULL);
      if (o)
        free(o->placed_pb);
    }
  linli_strmap_free(f->stock);
  linli_strmap_free(f->orders);
  linli_strmap_free(f->adjustments);
  linli_strmap_free(f->refused);
  linli_strmap_free(f->refunds);
  linli_strmap_free(f->refund_ids);
  linli_strmap_free(f->catalog);
  linli_strmap_free(f->campaigns);
  linli_strmap_free(f->campaign_users);
  linli_strmap_free(f->campaign_joins);
}

/* Adjustments count unless the reserver refused them (DLQ). */
static void fold_finish(struct fold *f) {
  for (size_t i = 0; i < linli_strmap_capacity(f->adjustments); i++) {
    const char *key = NULL;
    struct adjustment *a = linli_strmap_at(f->adjustments, i, &key);
    if (!a || linli_strmap_find(f->refused, key))
      continue;
    struct stock_cell *c = fold_cell(f, a->warehouse, a->sku);
    if (c)
      c->initial += a->delta;
  }
}

static int observe_record(void *arg, const rd_kafka_message_t *m) {
  struct fold *f = arg;
  const char *topic = rd_kafka_topic_name(m->rkt);
  const linli_topic_schema_t *ts = linli_schema_topic(topic);
  ProtobufCMessage *env = NULL;
  if (ts && ts->envelope && m->payload)
    env = protobuf_c_message_unpack(ts->envelope, NULL, m->len,
                                    (const uint8_t *)m->payload);
  /* A record libdomain refuses goes to the DLQ from every reader (the
   * ledger keeps nothing of it): the fold leaves it out too. */
  if (env && dom_record_check(topic, env, f->max_lines, NULL, NULL) > 0) {
    protobuf_c_message_free_unpacked(env, NULL);
    return 0;
  }
  for (size_t r = 0; r < NRULES; r++)
    for (const char *const *t = rules[r]->topics; *t; t++)
      if (strcmp(*t, topic) == 0) {
        rules[r]->observe(f, m, env);
        break;
      }
  if (env)
    protobuf_c_message_free_unpacked(env, NULL);
  return 0;
}

/* Union of the rules' topics, minus those in `skip` (may be NULL). */
static void rule_topics(struct range *range, const char *skip) {
  for (size_t r = 0; r < NRULES; r++)
    for (const char *const *t = rules[r]->topics; *t; t++) {
      int seen = skip && strcmp(*t, skip) == 0;
      for (int i = 0; i < range->ntopics && !seen; i++)
        seen = strcmp(range->topics[i], *t) == 0;
      if (!seen && range->ntopics < REPLAY_MAX_TOPICS)
        range->topics[range->ntopics++] = *t;
    }
}

static int connect_stores(const linli_config_t *cfg, struct audit_ctx *ctx,
                          int want_redis, int want_pg) {
  char err[512];
  if (want_redis &&
      linli_redis_connect(linli_config_str(cfg, "redis.host"),
                          (int)linli_config_int(cfg, "redis.port"),
                          linli_config_str(cfg, "redis.password"),
                          (int)linli_config_int(cfg, "redis.connect_timeout_ms"),
                          &ctx->redis, err, sizeof err) != LINLI_OK) {
    fprintf(stderr, "redis: %s\n", err);
    return -1;
  }
  if (want_pg &&
      linli_pg_connect(linli_config_str(cfg, "pg.conninfo"),
                       (int)linli_config_int(cfg, "pg.connect_timeout_ms"),
                       &ctx->pg, err, sizeof err) != LINLI_OK) {
    fprintf(stderr, "postgresql: %s\n", err);
    return -1;
  }
  return 0;
}

int replay_cmd_audit(const linli_config_t *cfg, int argc, char **argv) {
  static const struct option opts[] = {
      {"no-redis", no_argument, NULL, 'r'},
      {"no-pg", no_argument, NULL, 'p'},
      {"warehouse", required_argument, NULL, 'w'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  int want_redis = 1, want_pg = 1, c;
  const char *warehouse = NULL;
  optind = 1;
  while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (c) {
    case 'r': want_redis = 0; break;
    case 'p': want_pg = 0; break;
    case 'w': warehouse = optarg; break;
    default:
      fprintf(stderr, "usage: linli-replay audit [--warehouse W] [--no-redis] "
              "[--no-pg]\n"
              "  Rebuilds stock and order states from the log and compares\n"
              "  them with PostgreSQL and Redis; exit 1 on any difference.\n");
      return c == 'h' ? 0 : 2;
    }
  }
  struct fold f;
  struct audit_ctx ctx = {.cfg = cfg, .out = stdout, .warehouse = warehouse};
  int rc = 2;
  if (fold_init(&f) != 0)
    goto out;
  f.max_lines = (int)linli_config_int(cfg, "orders.max_lines");
  if (connect_stores(cfg, &ctx, want_redis, want_pg) != 0)
    goto out;
  struct range range = {0};
  rule_topics(&range, NULL);
  char err[512];
  if (replay_read(cfg, &range, observe_record, &f, 1, err, sizeof err) != 0) {
    fprintf(stderr, "audit: %s\n", err);
    goto out;
  }
  fold_finish(&f);
  for (size_t r = 0; r < NRULES; r++) {
    long before = ctx.differences;
    rules[r]->check(&f, &ctx);
    fprintf(stdout, "rule %-28s %s (%ld differences)\n", rules[r]->name,
            ctx.differences == before ? "ok" : "FAILED",
            ctx.differences - before);
  }
  fprintf(stdout, "audit: %zu orders, %zu stock cells, %zu campaigns, %ld "
          "differences\n",
          linli_strmap_count(f.orders), linli_strmap_count(f.stock), linli_strmap_count(f.campaigns),
          ctx.differences);
  rc = ctx.differences ? 1 : 0;
out:
  fold_free(&f);
  linli_redis_free(ctx.redis);
  linli_pg_free(ctx.pg);
  return rc;
}

/* Members of a live group mean its consumers are running. */
static int group_members(const linli_config_t *cfg, const char *group) {
  char err[256];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  if (linli_config_kafka_apply(cfg, conf, err, sizeof err) != LINLI_OK) {
    rd_kafka_conf_destroy(conf);
    return -1;
  }
  if (!linli_config_kafka_get(cfg, "bootstrap.servers"))
    rd_kafka_conf_set(conf, "bootstrap.servers", "127.0.0.1:9092", NULL, 0);
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  if (!rk) {
    rd_kafka_conf_destroy(conf);
    return -1;
  }
  const struct rd_kafka_group_list *gl = NULL;
  int members = -1;
  if (rd_kafka_list_groups(rk, group, &gl, 10000) ==
      RD_KAFKA_RESP_ERR_NO_ERROR) {
    members = gl->group_cnt == 1 ? gl->groups[0].member_cnt : 0;
    rd_kafka_group_list_destroy(gl);
  }
  rd_kafka_destroy(rk);
  return members;
}

int replay_cmd_rebuild(const linli_config_t *cfg, int argc, char **argv) {
  static const struct option opts[] = {
      {"target", required_argument, NULL, 't'},
      {"force", no_argument, NULL, 'f'},
      {"warehouse", required_argument, NULL, 'w'},
      {"group", required_argument, NULL, 'g'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  const char *target = NULL, *warehouse = NULL, *group = "linli-reserver";
  int force = 0, c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (c) {
    case 't': target = optarg; break;
    case 'f': force = 1; break;
    case 'w': warehouse = optarg; break;
    case 'g': group = optarg; break;
    default:
      fprintf(stderr,
              "usage: linli-replay rebuild --target redis [--warehouse W] "
              "[--group G] [--force]\n"
              "  Restores the consumers' hot state in Redis from the log.\n"
              "  Stop the consumers first; Redis should be empty (--force\n"
              "  overrides both checks).\n");
      return c == 'h' ? 0 : 2;
    }
  }
  if (!target || strcmp(target, "redis") != 0) {
    fprintf(stderr, "rebuild: --target redis is the only target\n");
    return 2;
  }
  int members = group_members(cfg, group);
  if (members != 0 && !force) {
    fprintf(stderr, "rebuild: %s %s; stop the consumers first (or --force)\n",
            members < 0 ? "cannot tell whether this group is running:"
                        : "live members in",
            group);
    return 2;
  }
  struct fold f;
  struct audit_ctx ctx = {.cfg = cfg, .out = stderr, .warehouse = warehouse};
  int rc = 2;
  if (fold_init(&f) != 0)
    goto out;
  f.max_lines = (int)linli_config_int(cfg, "orders.max_lines");
  if (connect_stores(cfg, &ctx, 1, 0) != 0)
    goto out;
  const char *dbsize[] = {"DBSIZE"};
  redisReply *r = NULL;
  if (linli_redis_command(ctx.redis, 1, dbsize, NULL, &r) != LINLI_OK)
    goto out;
  long long keys = r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
  freeReplyObject(r);
  if (keys != 0 && !force) {
    fprintf(stderr, "rebuild: Redis holds %lld keys; rebuild expects an "
            "empty Redis (or --force)\n", keys);
    goto out;
  }
  char err[512];
  /* Stock adjustments count only up to what the reserver committed: the
   * rest are still ahead of it and will apply when it resumes. */
  struct range inv = {0};
  inv.topics[inv.ntopics++] = LINLI_TOPIC_INVENTORY;
  inv.end_at_group = group;
  struct range rest = {0};
  rule_topics(&rest, LINLI_TOPIC_INVENTORY);
  if (replay_read(cfg, &inv, observe_record, &f, 1, err, sizeof err) != 0 ||
      replay_read(cfg, &rest, observe_record, &f, 1, err, sizeof err) != 0) {
    fprintf(stderr, "rebuild: %s\n", err);
    goto out;
  }
  fold_finish(&f);
  for (size_t i = 0; i < NRULES; i++) {
    if (!rules[i]->rebuild)
      continue;
    if (rules[i]->rebuild(&f, &ctx) != 0) {
      fprintf(stderr, "rebuild: %s failed (Redis error)\n", rules[i]->name);
      goto out;
    }
    fprintf(stderr, "rebuild: %s restored\n", rules[i]->name);
  }
  fprintf(stderr, "rebuild: %zu orders, %zu stock cells written to Redis\n",
          linli_strmap_count(f.orders), linli_strmap_count(f.stock));
  rc = 0;
out:
  fold_free(&f);
  linli_redis_free(ctx.redis);
  return rc;
}
