/*
 * loadgen.c - linli-loadgen: synthetic flash-sale load for benchmarks
 * (scripts/bench.sh, scripts/bench_reserver.sh). Three modes:
 *
 *   linli-loadgen [--config FILE] --run-id R --warehouse W --sku S
 *                 [--stock N] [--orders M] [--users U] [--lines L]
 *                 [--price FEN] [--rate PER_S] [--orders-topic T]
 *       With --stock N: lists the order's SKUs in linli.catalog.v1 and
 *       restocks N units of each in W via linli.inventory.v1 (each write
 *       acknowledged before the next step). Then publishes M OrderPlaced
 *       to linli.orders.v1 as fast as the producer takes them (--rate 0,
 *       the default) or paced at PER_S: order ids "<R>-<i>", users
 *       "<R>-u<i mod U>", L lines of one unit each (SKU S, then "<S>-2"...
 *       "<S>-<L>"), keyed by order id. --orders-topic T sends them to T
 *       instead (e.g. the input of linli-txcopy). Uses libcommon's
 *       producer: idempotent, acks=all.
 *       Prints one line of key=value: acknowledged count, first send and
 *       last acknowledgement times (epoch ms) and the produce rate.
 *
 *       With --campaigns C it publishes group-buy load instead: C
 *       CampaignOpened "<R>-c<k>" (tiers 5/20/50, an hour to go, no caps),
 *       then M GroupBuyJoined to linli.groupbuy.v1: order "<R>-<i>" of user
 *       "<R>-u<i>" joins "<R>-c<i mod C>" (count them with --kind join).
 *
 *   linli-loadgen [--config FILE] --start-at-end GROUP [--topics T1,T2..]
 *       Commits the current end offsets of every partition of the topics
 *       (default: the reserver's inputs) for consumer group GROUP, so that
 *       a consumer started later in that group reads only what comes after.
 *       GROUP must have no committed offset yet: an existing group is never
 *       moved. It never joins the group. Prints one line
 *       "end topic=T partition=P offset=O" per partition, then a summary.
 *
 *   linli-loadgen [--config FILE] --count-results R --expect M
 *                 [--since MS] [--timeout S] [--kind K] [--topic T]
 *                 [--until-end]
 *       Reads a topic (read_committed) from epoch time MS (default now)
 *       until it has seen an outcome for each of the orders
 *       "<R>-0".."<R>-<M-1>", then prints key=value: how many were
 *       RESERVED / OUT_OF_STOCK / otherwise, repeated outcomes
 *       (exactly-once says 0), and when the last one was read (epoch ms).
 *       The outcome depends on --kind:
 *         result  a ReservationResult (default; topic linli.reservations.v1)
 *         status  an OrderStatus in state RESERVED or REJECTED (topic
 *                 linli.order-status.v1); earlier states are not counted
 *         key     any record keyed by the order id (e.g. linli-txcopy's
 *                 copies; --topic required), counted as "other"
 *         join    a JoinResult (topic linli.groupbuy.settlements.v1):
 *                 JOINED counted as reserved, FULL as out of stock
 *       --until-end stops at the end the topic had when it started instead
 *       of waiting for all M (then M is only the bound of the ids), and
 *       succeeds with fewer.
 *
 * Exit status: 0 done, 1 failed (unacknowledged sends, timeout, a group
 * that already has offsets), 2 usage, configuration or connection error.
 */
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

#include "catalog.pb-c.h"
#include "groupbuy.pb-c.h"
#include "inventory.pb-c.h"
#include "linli/clock.h"
#include "linli/config.h"
#include "linli/error.h"
#include "linli/ids.h"
#include "linli/kafka.h"
#include "linli/log.h"
#include "order_status.pb-c.h"
#include "orders.pb-c.h"
#include "reservations.pb-c.h"
#include "settlements.pb-c.h"
#include "domain/topics.h"

#define PROG "linli-loadgen"
#define T_CATALOG LINLI_TOPIC_CATALOG
#define T_INVENTORY LINLI_TOPIC_INVENTORY
#define T_ORDERS LINLI_TOPIC_ORDERS
#define T_RESERVATIONS LINLI_TOPIC_RESERVATIONS
#define T_ORDER_STATUS LINLI_TOPIC_ORDER_STATUS
#define T_GROUPBUY LINLI_TOPIC_GROUPBUY
#define T_SETTLEMENTS LINLI_TOPIC_SETTLEMENTS
#define MAX_TOPICS 16
#define META_TIMEOUT_MS 10000

enum { EXIT_FAILED = 1, EXIT_SETUP = 2 };

struct opts {
  const char *config, *run_id, *warehouse, *sku, *group, *count_run, *topics;
  const char *orders_topic, *topic, *kind;
  long long stock, orders, users, lines, price, rate, expect, since, timeout;
  long long campaigns;
  int until_end;
};

static void usage(FILE *f) {
  fprintf(f,
          "usage: " PROG " [--config FILE] --run-id R --warehouse W --sku S\n"
          "                     [--stock N] [--orders M] [--users U] "
          "[--lines L]\n"
          "                     [--price FEN] [--rate PER_S] "
          "[--orders-topic T] [--campaigns C]\n"
          "       " PROG " [--config FILE] --start-at-end GROUP "
          "[--topics T1,T2]\n"
          "       " PROG " [--config FILE] --count-results R --expect M\n"
          "                     [--since EPOCH_MS] [--timeout S]\n"
          "                     [--kind result|status|key|join] [--topic T] "
          "[--until-end]\n");
}

/* A whole decimal number in [lo, hi]; the error names the option. */
static int parse_num(const char *opt, const char *s, long long lo,
                     long long hi, long long *out) {
  char *end = NULL;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || end == s || *end != '\0' || v < lo || v > hi) {
    fprintf(stderr, PROG ": --%s: must be a whole number from %lld to %lld, "
            "got '%s'\n", opt, lo, hi, s);
    return -1;
  }
  *out = v;
  return 0;
}

static int check_id_opt(const char *opt, const char *v) {
  if (v && !linli_id_valid(v)) {
    fprintf(stderr, PROG ": --%s: must be 1-64 characters of "
            "[A-Za-z0-9_-], got '%s'\n", opt, v);
    return -1;
  }
  return 0;
}

/* A Kafka topic name: 1..249 of [A-Za-z0-9._-]. */
static int topic_name_valid(const char *t) {
  size_t n = strlen(t);
  if (n == 0 || n > 249)
    return 0;
  for (size_t i = 0; i < n; i++)
    if (!(t[i] == '.' || t[i] == '_' || t[i] == '-' ||
          (t[i] >= '0' && t[i] <= '9') || (t[i] >= 'a' && t[i] <= 'z') ||
          (t[i] >= 'A' && t[i] <= 'Z')))
      return 0;
  return 1;
}

/* The longest id built from prefix + separator + number must stay valid. */
static int check_derived(const char *opt, const char *prefix, const char *sep,
                         long long n) {
  char id[256];
  snprintf(id, sizeof id, "%s%s%lld", prefix, sep, n);
  if (!linli_id_valid(id)) {
    fprintf(stderr, PROG ": --%s: '%s' is too long: derived ids such as "
            "'%s' must stay within 64 characters\n", opt, prefix, id);
    return -1;
  }
  return 0;
}

/* ------------------------------------------------------------ kafka */

static rd_kafka_t *new_handle(const linli_config_t *cfg, rd_kafka_type_t type,
                              const char *const *extra) {
  char err[512];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  if (linli_config_kafka_apply(cfg, conf, err, sizeof err) != LINLI_OK)
    goto fail;
  for (int i = 0; extra && extra[i]; i += 2)
    if (rd_kafka_conf_set(conf, extra[i], extra[i + 1], err, sizeof err) !=
        RD_KAFKA_CONF_OK)
      goto fail;
  rd_kafka_t *rk = rd_kafka_new(type, conf, err, sizeof err);
  if (rk)
    return rk;
fail:
  fprintf(stderr, PROG ": kafka: %s\n", err);
  rd_kafka_conf_destroy(conf);
  return NULL;
}

/* Partition count of topic, or -1 (message printed). */
static int partitions_of(rd_kafka_t *rk, const char *topic) {
  rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
  const rd_kafka_metadata_t *md = NULL;
  int n = -1;
  rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, t, &md, META_TIMEOUT_MS);
  if (e == RD_KAFKA_RESP_ERR_NO_ERROR && md->topic_cnt == 1) {
    if (md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR)
      n = md->topics[0].partition_cnt;
    else
      e = md->topics[0].err;
  }
  if (md)
    rd_kafka_metadata_destroy(md);
  rd_kafka_topic_destroy(t);
  if (n <= 0)
    fprintf(stderr, PROG ": topic %s: %s\n", topic,
            e ? rd_kafka_err2str(e) : "no partitions");
  return n;
}

/* Every partition of topics at its high watermark. NULL on error. */
static rd_kafka_topic_partition_list_t *
end_offsets(rd_kafka_t *rk, const char *const *topics, int ntopics) {
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(16);
  for (int i = 0; i < ntopics; i++) {
    int n = partitions_of(rk, topics[i]);
    if (n <= 0)
      goto err;
    for (int p = 0; p < n; p++) {
      int64_t lo = 0, hi = 0;
      rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(
          rk, topics[i], p, &lo, &hi, META_TIMEOUT_MS);
      if (e) {
        fprintf(stderr, PROG ": end offset of %s[%d]: %s\n", topics[i], p,
                rd_kafka_err2str(e));
        goto err;
      }
      rd_kafka_topic_partition_list_add(l, topics[i], p)->offset = hi;
    }
  }
  return l;
err:
  rd_kafka_topic_partition_list_destroy(l);
  return NULL;
}

/* ---------------------------------------------------- --start-at-end */

/* Split "a,b,c" into at most MAX_TOPICS names inside buf. */
static int split_topics(char *buf, const char **out) {
  int n = 0;
  char *s = buf;
  while (n < MAX_TOPICS) {
    char *comma = strchr(s, ',');
    if (comma)
      *comma = '\0';
    if (*s == '\0') {
      fprintf(stderr, PROG ": --topics: empty topic name\n");
      return -1;
    }
    out[n++] = s;
    if (!comma)
      return n;
    s = comma + 1;
  }
  fprintf(stderr, PROG ": --topics: at most %d topics\n", MAX_TOPICS);
  return -1;
}

static int cmd_start_at_end(const linli_config_t *cfg, const struct opts *o) {
  char buf[2048];
  const char *topics[MAX_TOPICS];
  snprintf(buf, sizeof buf, "%s",
           o->topics ? o->topics : T_CATALOG "," T_INVENTORY "," T_ORDERS);
  int ntopics = split_topics(buf, topics);
  if (ntopics < 0)
    return EXIT_SETUP;
  const char *extra[] = {"group.id", o->group, "enable.auto.commit", "false",
                         NULL};
  rd_kafka_t *rk = new_handle(cfg, RD_KAFKA_CONSUMER, extra);
  if (!rk)
    return EXIT_SETUP;
  int rc = EXIT_SETUP;
  rd_kafka_topic_partition_list_t *ends = end_offsets(rk, topics, ntopics);
  rd_kafka_topic_partition_list_t *seen = NULL;
  if (!ends)
    goto done;
  /* Never move a group that already consumed something: it may be a
   * production group (a typo of linli-reserver) or another run's. */
  seen = rd_kafka_topic_partition_list_copy(ends);
  rd_kafka_resp_err_t e = rd_kafka_committed(rk, seen, META_TIMEOUT_MS);
  if (e) {
    fprintf(stderr, PROG ": committed offsets of group %s: %s\n", o->group,
            rd_kafka_err2str(e));
    goto done;
  }
  for (int i = 0; i < seen->cnt; i++)
    if (seen->elems[i].offset >= 0) {
      fprintf(stderr, PROG ": --start-at-end: group %s already has offset "
              "%lld on %s[%d]; give a new group\n", o->group,
              (long long)seen->elems[i].offset, seen->elems[i].topic,
              (int)seen->elems[i].partition);
      rc = EXIT_FAILED;
      goto done;
    }
  /* A commit outside any group generation: accepted while the group has
   * no members. */
  e = rd_kafka_commit(rk, ends, 0);
  if (e) {
    fprintf(stderr, PROG ": committing end offsets for group %s: %s\n",
            o->group, rd_kafka_err2str(e));
    goto done;
  }
  rd_kafka_topic_partition_list_destroy(seen);
  seen = rd_kafka_topic_partition_list_copy(ends);
  e = rd_kafka_committed(rk, seen, META_TIMEOUT_MS);
  for (int i = 0; !e && i < seen->cnt; i++)
    if (seen->elems[i].offset != ends->elems[i].offset)
      e = RD_KAFKA_RESP_ERR__FAIL;
  if (e) {
    fprintf(stderr, PROG ": group %s: end offsets not committed (%s)\n",
            o->group, rd_kafka_err2str(e));
    goto done;
  }
  for (int i = 0; i < ends->cnt; i++)
    printf("end topic=%s partition=%d offset=%lld\n", ends->elems[i].topic,
           (int)ends->elems[i].partition, (long long)ends->elems[i].offset);
  printf("group=%s partitions=%d at=end\n", o->group, ends->cnt);
  rc = 0;
done:
  if (seen)
    rd_kafka_topic_partition_list_destroy(seen);
  if (ends)
    rd_kafka_topic_partition_list_destroy(ends);
  rd_kafka_destroy(rk);
  return rc;
}

/* ------------------------------------------------------------ produce */

struct acks {
  long long ok, failed;
  int64_t last_ms;
  rd_kafka_resp_err_t first_err;
};

static void on_delivery(void *opaque, rd_kafka_resp_err_t err,
                        int32_t partition, int64_t offset) {
  (void)partition;
  (void)offset;
  struct acks *a = opaque;
  if (err) {
    if (!a->failed++)
      a->first_err = err;
  } else {
    a->ok++;
  }
  a->last_ms = linli_clock_now_ms();
}

struct buf {
  uint8_t *p;
  size_t n;
};

static int pack(const ProtobufCMessage *msg, struct buf *b) {
  b->n = protobuf_c_message_get_packed_size(msg);
  uint8_t *p = realloc(b->p, b->n ? b->n : 1);
  if (!p)
    return LINLI_ERR_NOMEM;
  b->p = p;
  protobuf_c_message_pack(msg, b->p);
  return LINLI_OK;
}

static void meta_fill(Linli__Meta *m, char *eid, const char *trace) {
  linli_id_new(eid, LINLI_ID_BUFSZ);
  m->event_id = eid;
  m->occurred_at_ms = linli_clock_now_ms();
  m->producer = (char *)PROG;
  m->trace_id = (char *)trace;
  m->schema_version = 1;
}

/* The SKU of line j (0-based): S, then S-2, S-3... */
static void line_sku(char *buf, size_t len, const char *sku, long long j) {
  if (j == 0)
    snprintf(buf, len, "%s", sku);
  else
    snprintf(buf, len, "%s-%lld", sku, j + 1);
}

static int send_sync(linli_producer_t *p, const char *topic, const char *key,
                     const struct buf *b) {
  char err[512];
  int rc = linli_producer_send_sync(p, topic, RD_KAFKA_PARTITION_UA, key,
                                    strlen(key), b->p, b->n, NULL, 30000, NULL,
                                    NULL, err, sizeof err);
  if (rc != LINLI_OK)
    fprintf(stderr, PROG ": %s: %s\n", topic, err);
  return rc;
}

/* List each SKU of the order and restock it: catalog and inventory writes,
 * each acknowledged. */
static int setup_stock(linli_producer_t *p, const struct opts *o,
                       struct buf *b) {
  for (long long j = 0; j < o->lines; j++) {
    char sku[LINLI_ID_BUFSZ], eid[LINLI_ID_BUFSZ], adj[LINLI_ID_BUFSZ];
    line_sku(sku, sizeof sku, o->sku, j);

    Linli__CatalogEvent cev = LINLI__CATALOG_EVENT__INIT;
    Linli__Meta meta = LINLI__META__INIT;
    Linli__Sku s = LINLI__SKU__INIT;
    meta_fill(&meta, eid, o->run_id);
    s.sku_id = sku;
    s.name = (char *)"loadgen goods";
    s.storage_class = LINLI__STORAGE_CLASS__AMBIENT;
    s.weight_g = 500;
    s.list_price_fen = o->price;
    s.status = LINLI__SKU__STATUS__LISTED;
    cev.meta = &meta;
    cev.event_case = LINLI__CATALOG_EVENT__EVENT_SKU;
    cev.sku = &s;
    if (pack(&cev.base, b) || send_sync(p, T_CATALOG, sku, b))
      return -1;

    Linli__InventoryEvent iev = LINLI__INVENTORY_EVENT__INIT;
    Linli__StockAdjusted a = LINLI__STOCK_ADJUSTED__INIT;
    meta_fill(&meta, eid, o->run_id);
    linli_id_new(adj, sizeof adj);
    a.adjustment_id = adj;
    a.warehouse_id = (char *)o->warehouse;
    a.sku_id = sku;
    a.quantity = (int32_t)o->stock;
    a.reason = LINLI__STOCK_ADJUSTED__REASON__RESTOCK;
    a.note = (char *)"linli-loadgen";
    iev.meta = &meta;
    iev.event_case = LINLI__INVENTORY_EVENT__EVENT_STOCK_ADJUSTED;
    iev.stock_adjusted = &a;
    if (pack(&iev.base, b) || send_sync(p, T_INVENTORY, o->warehouse, b))
      return -1;
  }
  fprintf(stderr, PROG ": listed %lld SKU(s) and restocked %lld units each "
          "in %s\n", o->lines, o->stock, o->warehouse);
  return 0;
}

static void sleep_ms(int64_t ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* One OrderPlaced per i; lines_buf holds the L lines, reused. */
static int cmd_produce(const linli_config_t *cfg, const struct opts *o) {
  char err[512];
  linli_producer_t *p = NULL;
  struct buf b = {NULL, 0};
  Linli__OrderLine *lines = NULL;
  Linli__OrderLine **lp = NULL;
  char(*skus)[LINLI_ID_BUFSZ] = NULL;
  struct acks acks = {0, 0, 0, RD_KAFKA_RESP_ERR_NO_ERROR};
  int rc = EXIT_SETUP;

  if (linli_producer_new(cfg, PROG, &p, err, sizeof err) != LINLI_OK) {
    fprintf(stderr, PROG ": producer: %s\n", err);
    goto done;
  }
  if (o->stock > 0 && setup_stock(p, o, &b) != 0)
    goto done;
  if (o->orders == 0) {
    rc = 0;
    goto done;
  }
  lines = calloc((size_t)o->lines, sizeof *lines);
  lp = calloc((size_t)o->lines, sizeof *lp);
  skus = calloc((size_t)o->lines, sizeof *skus);
  if (!lines || !lp || !skus) {
    fprintf(stderr, PROG ": out of memory\n");
    goto done;
  }
  for (long long j = 0; j < o->lines; j++) {
    line_sku(skus[j], sizeof skus[j], o->sku, j);
    linli__order_line__init(&lines[j]);
    lines[j].sku_id = skus[j];
    lines[j].quantity = 1;
    lines[j].unit_price_fen = o->price;
    lp[j] = &lines[j];
  }

  rc = EXIT_FAILED;
  int64_t first_ms = 0;
  long long sent = 0;
  for (long long i = 0; i < o->orders; i++) {
    char order_id[LINLI_ID_BUFSZ], user_id[LINLI_ID_BUFSZ];
    char eid[LINLI_ID_BUFSZ];
    snprintf(order_id, sizeof order_id, "%s-%lld", o->run_id, i);
    snprintf(user_id, sizeof user_id, "%s-u%lld", o->run_id, i % o->users);
    if (o->rate > 0 && first_ms) {
      /* Pace against the schedule, not the previous send, so that a slow
       * send is caught up. */
      int64_t due = first_ms + i * 1000 / o->rate;
      int64_t now = linli_clock_now_ms();
      if (due > now) {
        linli_producer_poll(p, 0);
        sleep_ms(due - now);
      }
    }
    Linli__OrderEvent ev = LINLI__ORDER_EVENT__INIT;
    Linli__Meta meta = LINLI__META__INIT;
    Linli__OrderPlaced op = LINLI__ORDER_PLACED__INIT;
    Linli__PickupDelivery pick = LINLI__PICKUP_DELIVERY__INIT;
    meta_fill(&meta, eid, o->run_id);
    pick.pickup_point_id = (char *)"PP-1";
    op.order_id = order_id;
    op.user_id = user_id;
    op.app_id = (char *)"loadgen";
    op.warehouse_id = (char *)o->warehouse;
    op.n_lines = (size_t)o->lines;
    op.lines = lp;
    op.total_fen = o->price * o->lines;
    op.delivery_case = LINLI__ORDER_PLACED__DELIVERY_PICKUP;
    op.pickup = &pick;
    op.placed_at_ms = meta.occurred_at_ms;
    ev.meta = &meta;
    ev.event_case = LINLI__ORDER_EVENT__EVENT_ORDER_PLACED;
    ev.order_placed = &op;
    if (pack(&ev.base, &b) != LINLI_OK) {
      fprintf(stderr, PROG ": out of memory\n");
      break;
    }
    if (!first_ms)
      first_ms = linli_clock_now_ms();
    if (linli_producer_send_async(p, o->orders_topic, RD_KAFKA_PARTITION_UA,
                                  order_id, strlen(order_id), b.p, b.n, NULL,
                                  on_delivery, &acks, 30000, err,
                                  sizeof err) != LINLI_OK) {
      fprintf(stderr, PROG ": sending %s: %s\n", order_id, err);
      break;
    }
    sent++;
    if (sent % 1000 == 0)
      linli_producer_poll(p, 0);
  }
  if (linli_producer_flush(p, 60000) != LINLI_OK)
    fprintf(stderr, PROG ": %lld sends still unacknowledged after 60 s\n",
            sent - acks.ok - acks.failed);
  if (acks.failed)
    fprintf(stderr, PROG ": %lld sends failed, first: %s\n", acks.failed,
            rd_kafka_err2str(acks.first_err));
  int64_t elapsed = acks.last_ms > first_ms ? acks.last_ms - first_ms : 0;
  double rate = elapsed > 0 ? (double)acks.ok * 1000.0 / (double)elapsed : 0;
  printf("run=%s orders=%lld acknowledged=%lld failed=%lld "
         "first_send_ms=%lld last_ack_ms=%lld elapsed_ms=%lld "
         "produce_rate=%.0f\n",
         o->run_id, o->orders, acks.ok, acks.failed, (long long)first_ms,
         (long long)acks.last_ms, (long long)elapsed, rate);
  if (acks.ok == o->orders)
    rc = 0;
done:
  linli_producer_free(p);
  free(b.p);
  free(lines);
  free(lp);
  free(skus);
  return rc;
}

/* --campaigns C: C group-buys "<R>-c<k>" (tiers 5/20/50 at 1200/1000/900
 * fen, deadline in an hour, no caps), then the M joins: order "<R>-<i>" of
 * user "<R>-u<i>" joins campaign "<R>-c<i mod C>" with one unit. Keyed by
 * campaign, so each campaign's events are in order in one partition. */
static int send_groupbuy(linli_producer_t *p, const struct opts *o,
                         const char *campaign, Linli__GroupBuyEvent *ev,
                         struct buf *b, struct acks *acks) {
  char err[256];
  if (pack(&ev->base, b) != LINLI_OK)
    return -1;
  if (linli_producer_send_async(p, T_GROUPBUY, RD_KAFKA_PARTITION_UA,
                                campaign, strlen(campaign), b->p, b->n, NULL,
                                on_delivery, acks, 30000, err,
                                sizeof err) != LINLI_OK) {
    fprintf(stderr, PROG ": sending to %s: %s\n", campaign, err);
    return -1;
  }
  (void)o;
  return 0;
}

static int cmd_produce_joins(const linli_config_t *cfg, const struct opts *o) {
  char err[512];
  linli_producer_t *p = NULL;
  struct buf b = {NULL, 0};
  struct acks acks = {0, 0, 0, RD_KAFKA_RESP_ERR_NO_ERROR};
  if (linli_producer_new(cfg, PROG, &p, err, sizeof err) != LINLI_OK) {
    fprintf(stderr, PROG ": producer: %s\n", err);
    return EXIT_SETUP;
  }
  int rc = EXIT_FAILED;
  Linli__CampaignOpened__Tier t[3], *tp[3];
  static const int mins[] = {5, 20, 50};
  static const long long prices[] = {1200, 1000, 900};
  for (int i = 0; i < 3; i++) {
    linli__campaign_opened__tier__init(&t[i]);
    t[i].min_participants = mins[i];
    t[i].unit_price_fen = prices[i];
    tp[i] = &t[i];
  }
  long long sent = 0;
  int64_t first_ms = linli_clock_now_ms();
  for (long long k = 0; k < o->campaigns; k++, sent++) {
    char campaign[LINLI_ID_BUFSZ], eid[LINLI_ID_BUFSZ];
    snprintf(campaign, sizeof campaign, "%s-c%lld", o->run_id, k);
    Linli__GroupBuyEvent ev = LINLI__GROUP_BUY_EVENT__INIT;
    Linli__Meta meta = LINLI__META__INIT;
    Linli__CampaignOpened c = LINLI__CAMPAIGN_OPENED__INIT;
    meta_fill(&meta, eid, o->run_id);
    c.campaign_id = campaign;
    c.app_id = (char *)"loadgen";
    c.sku_id = (char *)o->sku;
    c.warehouse_id = (char *)o->warehouse;
    c.list_price_fen = 1500;
    c.n_tiers = 3;
    c.tiers = tp;
    c.deadline_ms = meta.occurred_at_ms + 3600000;
    ev.meta = &meta;
    ev.event_case = LINLI__GROUP_BUY_EVENT__EVENT_CAMPAIGN_OPENED;
    ev.campaign_opened = &c;
    if (send_groupbuy(p, o, campaign, &ev, &b, &acks) != 0)
      goto done;
  }
  for (long long i = 0; i < o->orders; i++, sent++) {
    char campaign[LINLI_ID_BUFSZ], order[LINLI_ID_BUFSZ], user[LINLI_ID_BUFSZ];
    char eid[LINLI_ID_BUFSZ];
    snprintf(campaign, sizeof campaign, "%s-c%lld", o->run_id,
             i % o->campaigns);
    snprintf(order, sizeof order, "%s-%lld", o->run_id, i);
    snprintf(user, sizeof user, "%s-u%lld", o->run_id, i);
    Linli__GroupBuyEvent ev = LINLI__GROUP_BUY_EVENT__INIT;
    Linli__Meta meta = LINLI__META__INIT;
    Linli__GroupBuyJoined j = LINLI__GROUP_BUY_JOINED__INIT;
    meta_fill(&meta, eid, o->run_id);
    j.campaign_id = campaign;
    j.user_id = user;
    j.order_id = order;
    j.quantity = 1;
    ev.meta = &meta;
    ev.event_case = LINLI__GROUP_BUY_EVENT__EVENT_GROUP_BUY_JOINED;
    ev.group_buy_joined = &j;
    if (send_groupbuy(p, o, campaign, &ev, &b, &acks) != 0)
      goto done;
    if (i % 1000 == 0)
      linli_producer_poll(p, 0);
  }
  if (linli_producer_flush(p, 60000) != LINLI_OK)
    fprintf(stderr, PROG ": sends still unacknowledged after 60 s\n");
  int64_t elapsed = acks.last_ms > first_ms ? acks.last_ms - first_ms : 0;
  printf("run=%s campaigns=%lld joins=%lld acknowledged=%lld failed=%lld "
         "first_send_ms=%lld last_ack_ms=%lld elapsed_ms=%lld\n",
         o->run_id, o->campaigns, o->orders, acks.ok, acks.failed,
         (long long)first_ms, (long long)acks.last_ms, (long long)elapsed);
  if (acks.ok == sent)
    rc = 0;
done:
  linli_producer_free(p);
  free(b.p);
  return rc;
}

/* ---------------------------------------------------- --count-results */

/* Index i of an order id "<run>-<i>" with i < expect, or -1. */
static long long run_index(const char *order_id, const char *run,
                           size_t runlen, long long expect) {
  if (strncmp(order_id, run, runlen) != 0 || order_id[runlen] != '-')
    return -1;
  const char *d = order_id + runlen + 1;
  if (*d < '0' || *d > '9' || (d[0] == '0' && d[1] != '\0'))
    return -1;
  long long v = 0;
  for (; *d; d++) {
    if (*d < '0' || *d > '9' || v > expect)
      return -1;
    v = v * 10 + (*d - '0');
  }
  return v < expect ? v : -1;
}

enum { OC_RESERVED, OC_OUT_OF_STOCK, OC_OTHER };

struct outcome {
  char order_id[LINLI_ID_BUFSZ];
  int what; /* OC_* */
  int code; /* status * 100 + reason, for OC_OTHER */
};

/* The outcome a record carries for --kind, or -1 if it carries none. */
static int outcome_of(const char *kind, const rd_kafka_message_t *m,
                      struct outcome *oc) {
  const uint8_t *v = m->payload;
  int rc = -1;
  oc->what = OC_OTHER;
  oc->code = 0;
  if (strcmp(kind, "key") == 0) {
    if (!m->key || m->key_len == 0 || m->key_len >= sizeof oc->order_id)
      return -1;
    memcpy(oc->order_id, m->key, m->key_len);
    oc->order_id[m->key_len] = '\0';
    return 0;
  }
  if (!v)
    return -1;
  if (strcmp(kind, "join") == 0) {
    /* A JoinResult: JOINED counts as "reserved", FULL as "out of stock". */
    Linli__SettlementEvent *ev =
        linli__settlement_event__unpack(NULL, m->len, v);
    if (ev && ev->event_case == LINLI__SETTLEMENT_EVENT__EVENT_JOIN_RESULT) {
      const Linli__JoinResult *j = ev->join_result;
      snprintf(oc->order_id, sizeof oc->order_id, "%s", j->order_id);
      if (j->status == LINLI__JOIN_RESULT__STATUS__JOINED)
        oc->what = OC_RESERVED;
      else if (j->reason == LINLI__JOIN_RESULT__REASON__FULL)
        oc->what = OC_OUT_OF_STOCK;
      oc->code = j->status * 100 + j->reason;
      rc = 0;
    }
    if (ev)
      linli__settlement_event__free_unpacked(ev, NULL);
    return rc;
  }
  if (strcmp(kind, "result") == 0) {
    Linli__ReservationEvent *ev =
        linli__reservation_event__unpack(NULL, m->len, v);
    if (ev && ev->event_case ==
                  LINLI__RESERVATION_EVENT__EVENT_RESERVATION_RESULT) {
      const Linli__ReservationResult *r = ev->reservation_result;
      snprintf(oc->order_id, sizeof oc->order_id, "%s", r->order_id);
      if (r->status == LINLI__RESERVATION_RESULT__STATUS__RESERVED)
        oc->what = OC_RESERVED;
      else if (r->reason == LINLI__RESERVATION_RESULT__REASON__OUT_OF_STOCK)
        oc->what = OC_OUT_OF_STOCK;
      oc->code = r->status * 100 + r->reason;
      rc = 0;
    }
    if (ev)
      linli__reservation_event__free_unpacked(ev, NULL);
    return rc;
  }
  Linli__OrderStatusEvent *ev =
      linli__order_status_event__unpack(NULL, m->len, v);
  if (ev &&
      ev->event_case == LINLI__ORDER_STATUS_EVENT__EVENT_ORDER_STATUS) {
    const Linli__OrderStatus *s = ev->order_status;
    if (s->state == LINLI__ORDER_STATUS__STATE__RESERVED ||
        s->state == LINLI__ORDER_STATUS__STATE__REJECTED) {
      snprintf(oc->order_id, sizeof oc->order_id, "%s", s->order_id);
      if (s->state == LINLI__ORDER_STATUS__STATE__RESERVED)
        oc->what = OC_RESERVED;
      else if (strcmp(s->reason, "OUT_OF_STOCK") == 0)
        oc->what = OC_OUT_OF_STOCK;
      oc->code = s->state * 100;
      rc = 0;
    }
  }
  if (ev)
    linli__order_status_event__free_unpacked(ev, NULL);
  return rc;
}

/* --until-end: partitions that reported their end at or past ends (the
 * position alone stays short of the end when the last record is a
 * transaction marker, which read_committed never hands out). */
static int eofs_done(const unsigned char *eof, int n) {
  for (int i = 0; i < n; i++)
    if (!eof[i])
      return 0;
  return 1;
}

static int cmd_count(const linli_config_t *cfg, const struct opts *o) {
  char group[128];
  char uniq[LINLI_ID_BUFSZ];
  linli_id_new(uniq, sizeof uniq);
  /* Never commits: the group only names this reader in broker logs. */
  snprintf(group, sizeof group, PROG "-count-%s", uniq);
  const char *extra[] = {"group.id",           group,
                         "isolation.level",    "read_committed",
                         "enable.auto.commit", "false",
                         "enable.partition.eof", "true",
                         NULL};
  rd_kafka_t *rk = new_handle(cfg, RD_KAFKA_CONSUMER, extra);
  if (!rk)
    return EXIT_SETUP;
  rd_kafka_poll_set_consumer(rk);
  unsigned char *eof = NULL;
  int rc = EXIT_SETUP;
  unsigned char *seen = calloc((size_t)o->expect, 1);
  const char *topics[] = {o->topic};
  /* The end offsets first: a partition with nothing written since `since`
   * starts there, and whatever arrives later lies beyond it. */
  rd_kafka_topic_partition_list_t *ends = end_offsets(rk, topics, 1);
  rd_kafka_topic_partition_list_t *from = NULL;
  if (!seen || !ends)
    goto done;
  from = rd_kafka_topic_partition_list_copy(ends);
  for (int i = 0; i < from->cnt; i++)
    from->elems[i].offset = o->since;
  rd_kafka_resp_err_t e = rd_kafka_offsets_for_times(rk, from, META_TIMEOUT_MS);
  if (e) {
    fprintf(stderr, PROG ": offsets for time %lld: %s\n", o->since,
            rd_kafka_err2str(e));
    goto done;
  }
  for (int i = 0; i < from->cnt; i++)
    if (from->elems[i].err || from->elems[i].offset < 0)
      from->elems[i].offset = ends->elems[i].offset;
  if ((e = rd_kafka_assign(rk, from))) {
    fprintf(stderr, PROG ": assign: %s\n", rd_kafka_err2str(e));
    goto done;
  }

  size_t runlen = strlen(o->count_run);
  long long distinct = 0, reserved = 0, out_of_stock = 0, other = 0;
  long long repeats = 0, records = 0;
  int other_reason = 0;
  int64_t done_ms = 0;
  int64_t deadline = linli_clock_now_ms() + o->timeout * 1000;
  eof = calloc((size_t)ends->cnt, 1);
  if (!eof)
    goto done;
  while (distinct < o->expect && linli_clock_now_ms() < deadline) {
    if (o->until_end && eofs_done(eof, ends->cnt))
      break;
    rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
    if (!m)
      continue;
    if (m->err) {
      if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        for (int i = 0; i < ends->cnt; i++)
          if (ends->elems[i].partition == m->partition &&
              m->offset >= ends->elems[i].offset)
            eof[i] = 1;
      } else {
        fprintf(stderr, PROG ": consume: %s\n", rd_kafka_message_errstr(m));
      }
      rd_kafka_message_destroy(m);
      continue;
    }
    records++;
    struct outcome oc;
    if (outcome_of(o->kind, m, &oc) == 0) {
      long long i = run_index(oc.order_id, o->count_run, runlen, o->expect);
      if (i >= 0 && seen[i]) {
        repeats++;
      } else if (i >= 0) {
        seen[i] = 1;
        distinct++;
        if (oc.what == OC_RESERVED)
          reserved++;
        else if (oc.what == OC_OUT_OF_STOCK)
          out_of_stock++;
        else if (!other++)
          other_reason = oc.code;
        if (distinct == o->expect)
          done_ms = linli_clock_now_ms();
      }
    }
    rd_kafka_message_destroy(m);
  }
  printf("run=%s expected=%lld results=%lld reserved=%lld out_of_stock=%lld "
         "other=%lld repeated=%lld records_read=%lld since_ms=%lld "
         "done_ms=%lld\n",
         o->count_run, o->expect, distinct, reserved, out_of_stock, other,
         repeats, records, o->since, (long long)done_ms);
  if (other && strcmp(o->kind, "key") != 0)
    fprintf(stderr, PROG ": %lld outcomes neither RESERVED nor OUT_OF_STOCK, "
            "first status %d reason %d\n", other, other_reason / 100,
            other_reason % 100);
  if (distinct < o->expect && o->until_end && eofs_done(eof, ends->cnt)) {
    rc = 0;
  } else if (distinct < o->expect) {
    fprintf(stderr, PROG ": timed out after %lld s: %lld of %lld results\n",
            o->timeout, distinct, o->expect);
    rc = EXIT_FAILED;
  } else {
    rc = 0;
  }
done:
  if (from)
    rd_kafka_topic_partition_list_destroy(from);
  if (ends)
    rd_kafka_topic_partition_list_destroy(ends);
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
  free(seen);
  free(eof);
  return rc;
}

/* ---------------------------------------------------------------- main */

int main(int argc, char **argv) {
  static const struct option longopts[] = {
      {"config", required_argument, NULL, 'c'},
      {"run-id", required_argument, NULL, 'R'},
      {"warehouse", required_argument, NULL, 'w'},
      {"sku", required_argument, NULL, 's'},
      {"stock", required_argument, NULL, 'n'},
      {"orders", required_argument, NULL, 'm'},
      {"users", required_argument, NULL, 'u'},
      {"lines", required_argument, NULL, 'l'},
      {"price", required_argument, NULL, 'p'},
      {"rate", required_argument, NULL, 'r'},
      {"start-at-end", required_argument, NULL, 'g'},
      {"topics", required_argument, NULL, 'T'},
      {"count-results", required_argument, NULL, 'C'},
      {"expect", required_argument, NULL, 'e'},
      {"since", required_argument, NULL, 'S'},
      {"timeout", required_argument, NULL, 't'},
      {"orders-topic", required_argument, NULL, 'O'},
      {"topic", required_argument, NULL, 'P'},
      {"kind", required_argument, NULL, 'K'},
      {"until-end", no_argument, NULL, 'U'},
      {"campaigns", required_argument, NULL, 'G'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  struct opts o = {0};
  o.users = 1000;
  o.lines = 1;
  o.price = 990;
  o.expect = -1;
  o.since = -1;
  o.timeout = 300;
  int c, bad = 0;
  while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
    const char *name = NULL; /* a numeric option */
    long long *dst = NULL, lo = 0, hi = 0;
    switch (c) {
    case 'c': o.config = optarg; break;
    case 'R': o.run_id = optarg; break;
    case 'w': o.warehouse = optarg; break;
    case 's': o.sku = optarg; break;
    case 'g': o.group = optarg; break;
    case 'T': o.topics = optarg; break;
    case 'C': o.count_run = optarg; break;
    case 'O': o.orders_topic = optarg; break;
    case 'P': o.topic = optarg; break;
    case 'K': o.kind = optarg; break;
    case 'U': o.until_end = 1; break;
    case 'n': name = "stock", dst = &o.stock, hi = 1000000000; break;
    case 'm': name = "orders", dst = &o.orders, hi = 100000000; break;
    case 'u': name = "users", dst = &o.users, lo = 1, hi = 100000000; break;
    case 'l': name = "lines", dst = &o.lines, lo = 1, hi = 100; break;
    case 'p': name = "price", dst = &o.price, hi = 100000000000LL; break;
    case 'r': name = "rate", dst = &o.rate, hi = 10000000; break;
    case 'G': name = "campaigns", dst = &o.campaigns, lo = 1, hi = 1000000;
      break;
    case 'e': name = "expect", dst = &o.expect, lo = 1, hi = 100000000; break;
    case 'S': name = "since", dst = &o.since, hi = 4102444800000LL; break;
    case 't': name = "timeout", dst = &o.timeout, lo = 1, hi = 86400; break;
    case 'h': usage(stdout); return 0;
    default: usage(stderr); return EXIT_SETUP;
    }
    if (name)
      bad |= parse_num(name, optarg, lo, hi, dst);
  }
  if (bad)
    return EXIT_SETUP;
  if (optind < argc) {
    fprintf(stderr, PROG ": unexpected argument '%s'\n", argv[optind]);
    usage(stderr);
    return EXIT_SETUP;
  }
  int modes = (o.group != NULL) + (o.count_run != NULL);
  int produce_opts = o.run_id || o.warehouse || o.sku || o.orders || o.stock;
  if (modes > 1 || (modes && produce_opts)) {
    fprintf(stderr, PROG ": --start-at-end, --count-results and producing "
            "(--run-id ...) are separate modes: choose one\n");
    return EXIT_SETUP;
  }
  if (o.topics && !o.group) {
    fprintf(stderr, PROG ": --topics: only with --start-at-end\n");
    return EXIT_SETUP;
  }
  if ((o.expect >= 0 || o.since >= 0 || o.kind || o.topic || o.until_end) &&
      !o.count_run) {
    fprintf(stderr, PROG ": --%s: only with --count-results\n",
            o.expect >= 0 ? "expect" : o.since >= 0 ? "since"
            : o.kind ? "kind" : o.topic ? "topic" : "until-end");
    return EXIT_SETUP;
  }
  if (o.orders_topic && (modes || !topic_name_valid(o.orders_topic))) {
    fprintf(stderr, PROG ": --orders-topic: a Kafka topic name, only when "
            "producing\n");
    return EXIT_SETUP;
  }
  if (!o.orders_topic)
    o.orders_topic = T_ORDERS;
  if (o.count_run) {
    if (!o.kind)
      o.kind = "result";
    if (strcmp(o.kind, "result") && strcmp(o.kind, "status") &&
        strcmp(o.kind, "key") && strcmp(o.kind, "join")) {
      fprintf(stderr, PROG ": --kind: result, status, key or join, got '%s'\n",
              o.kind);
      return EXIT_SETUP;
    }
    if (!o.topic && strcmp(o.kind, "key") == 0) {
      fprintf(stderr, PROG ": --kind key: --topic is required\n");
      return EXIT_SETUP;
    }
    if (!o.topic)
      o.topic = strcmp(o.kind, "status") == 0 ? T_ORDER_STATUS
                : strcmp(o.kind, "join") == 0   ? T_SETTLEMENTS
                                                : T_RESERVATIONS;
    if (!topic_name_valid(o.topic)) {
      fprintf(stderr, PROG ": --topic: not a Kafka topic name: '%s'\n",
              o.topic);
      return EXIT_SETUP;
    }
  }
  if (o.group && check_id_opt("start-at-end", o.group))
    return EXIT_SETUP;
  if (o.count_run) {
    if (check_id_opt("count-results", o.count_run))
      return EXIT_SETUP;
    if (o.expect < 0) {
      fprintf(stderr, PROG ": --expect: required with --count-results\n");
      return EXIT_SETUP;
    }
    if (o.since < 0)
      o.since = linli_clock_now_ms();
  }
  if (!modes) {
    const char *missing = !o.run_id ? "run-id" : !o.warehouse ? "warehouse"
                          : !o.sku  ? "sku" : NULL;
    if (missing) {
      fprintf(stderr, PROG ": --%s: required\n", missing);
      usage(stderr);
      return EXIT_SETUP;
    }
    if (o.orders == 0 && o.stock == 0) {
      fprintf(stderr, PROG ": --orders: nothing to do (give --orders M "
              "and/or --stock N)\n");
      return EXIT_SETUP;
    }
    if (check_id_opt("run-id", o.run_id) ||
        check_id_opt("warehouse", o.warehouse) || check_id_opt("sku", o.sku) ||
        check_derived("run-id", o.run_id, "-",
                      o.orders > 0 ? o.orders - 1 : 0) ||
        check_derived("run-id", o.run_id, "-u", o.users - 1) ||
        (o.lines > 1 && check_derived("sku", o.sku, "-", o.lines)))
      return EXIT_SETUP;
  }

  linli_log_init(PROG, LINLI_LOG_WARN);
  char err[1024];
  linli_config_t *cfg = NULL;
  if (linli_config_load(o.config, &cfg, err, sizeof err) != LINLI_OK) {
    fprintf(stderr, PROG ": %s\n", err);
    return EXIT_SETUP;
  }
  int rc = o.group       ? cmd_start_at_end(cfg, &o)
           : o.count_run ? cmd_count(cfg, &o)
           : o.campaigns ? cmd_produce_joins(cfg, &o)
                         : cmd_produce(cfg, &o);
  linli_config_free(cfg);
  return rc;
}
