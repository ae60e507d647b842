/*
 * test_produce.c - linli-produce against the real broker: the built binary
 * is spawned on an input file, its output is parsed, and the topic is read
 * back from the offsets it had before the run:
 *  - the event ids, partitions and offsets printed are exactly the records
 *    that landed, keyed right, with Meta filled in and fields round-tripping;
 *  - bad lines (bad JSON, unknown field, wrong type, bad enum, missing or
 *    conflicting key, no event) are reported with line number and field,
 *    nothing is sent for them, the good lines around them are, exit 1;
 *  - --type (with and without --topic) wraps bare messages into the
 *    envelope and derives the key; --quiet prints nothing on success;
 *  - --dry-run sends nothing; usage errors exit 2.
 * The topics are the real shared ones (the envelope follows from the topic
 * name), so every run uses ids with a unique prefix and matches on them.
 */
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "linli/clock.h"
#include "linli/error.h"
#include "linli/json.h"
#include "domain/schema.h"
#include "linli_test.h"

#include "catalog.pb-c.h"
#include "inventory.pb-c.h"
#include "orders.pb-c.h"

#define MAX_PARTS 32
#define MAX_SENT 32
#define MAX_RECS 64

/* ------------------------------------------------------------- running */

/* One "<line> <event_id> <topic> <partition> <offset>" output line. */
typedef struct sent {
  long line;
  char event_id[80];
  char topic[80];
  int partition;
  long long offset;
} sent_t;

typedef struct run {
  int status;      /* exit status; -1 if it did not exit normally */
  char input[64];  /* the input file, as errors name it */
  char *log;       /* stdout + stderr */
  sent_t sent[MAX_SENT];
  int nsent;
} run_t;

static void run_free(run_t *r) {
  free(r->log);
  r->log = NULL;
}

/* Copy tmpl into out with every '@' replaced by id. */
static void expand(const char *tmpl, const char *id, char *out, size_t len) {
  size_t n = 0, idlen = strlen(id);
  for (const char *p = tmpl; *p != '\0' && n + 1 < len; p++) {
    if (*p == '@' && n + idlen + 1 < len) {
      memcpy(out + n, id, idlen);
      n += idlen;
    } else if (*p != '@') {
      out[n++] = *p;
    }
  }
  out[n] = '\0';
}

static char *read_all(const char *path) {
  FILE *f = fopen(path, "r");
  if (!f)
    return NULL;
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap);
  size_t got;
  while (buf && (got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
    n += got;
    if (n + 1 >= cap) {
      char *bigger = realloc(buf, cap * 2);
      if (!bigger) {
        free(buf);
        buf = NULL;
        break;
      }
      buf = bigger;
      cap *= 2;
    }
  }
  fclose(f);
  if (buf)
    buf[n] = '\0';
  return buf;
}

static void parse_sent(run_t *r) {
  r->nsent = 0;
  for (const char *l = r->log; l && *l;) {
    const char *nl = strchr(l, '\n');
    size_t len = nl ? (size_t)(nl - l) : strlen(l);
    char buf[512];
    sent_t s;
    int used = 0;
    if (len < sizeof buf) {
      memcpy(buf, l, len);
      buf[len] = '\0';
      if (sscanf(buf, "%ld %79s %79s %d %lld%n", &s.line, s.event_id, s.topic,
                 &s.partition, &s.offset, &used) == 5 &&
          buf[used] == '\0' && r->nsent < MAX_SENT)
        r->sent[r->nsent++] = s;
    }
    l = nl ? nl + 1 : NULL;
  }
}

/*
 * Write input to a temp file and run linli-produce with args (NULL-ended;
 * "@IN" stands for the input file), waiting up to 60 s for it to exit.
 */
static int run_produce(const char *input, const char *const args[],
                       run_t *r) {
  memset(r, 0, sizeof *r);
  r->status = -1;
  snprintf(r->input, sizeof r->input, "/tmp/linli-produce-in-XXXXXX");
  char log_path[] = "/tmp/linli-produce-log-XXXXXX";
  int fd = mkstemp(r->input);
  if (fd < 0)
    return -1;
  size_t len = strlen(input);
  if (write(fd, input, len) != (ssize_t)len) {
    close(fd);
    return -1;
  }
  close(fd);
  fd = mkstemp(log_path);
  if (fd < 0)
    return -1;
  close(fd);

  char bin[1024];
  linli_test_binary_path("producers/produce/linli-produce", bin, sizeof bin);
  if (access(bin, X_OK) != 0) {
    fprintf(stderr, "%s not built (cmake --build --target linli-produce)\n",
            bin);
    return -1;
  }
  char *argv[24];
  int argc = 0;
  argv[argc++] = bin;
  for (int i = 0; args[i] && argc < 23; i++)
    argv[argc++] = strcmp(args[i], "@IN") == 0 ? r->input : (char *)args[i];
  argv[argc] = NULL;
  pid_t pid = linli_test_spawn(argv, NULL, log_path);
  if (pid < 0)
    return -1;
  int status = 0, exited = 0;
  int64_t deadline = linli_test_now_ms() + 60000;
  while (linli_test_now_ms() < deadline) {
    if (waitpid(pid, &status, WNOHANG) == pid) {
      exited = 1;
      break;
    }
    usleep(20 * 1000);
  }
  if (!exited)
    linli_test_stop(pid, 1);
  else if (WIFEXITED(status))
    r->status = WEXITSTATUS(status);
  r->log = read_all(log_path);
  unlink(log_path);
  unlink(r->input);
  if (!r->log)
    return -1;
  parse_sent(r);
  return 0;
}

/* The output line for input line `line`, or NULL. */
static const sent_t *sent_for(const run_t *r, long line) {
  for (int i = 0; i < r->nsent; i++)
    if (r->sent[i].line == line)
      return &r->sent[i];
  return NULL;
}

/* 1 if the log has an error line "<input>:<line>: <what>..." */
static int has_error(const run_t *r, long line, const char *what) {
  char prefix[1024];
  snprintf(prefix, sizeof prefix, "%s:%ld: %s", r->input, line, what);
  const char *p = r->log;
  while (p && *p) {
    if (strncmp(p, prefix, strlen(prefix)) == 0)
      return 1;
    p = strchr(p, '\n');
    if (p)
      p++;
  }
  fprintf(stderr, "expected error \"%s\" in:\n%s\n", prefix, r->log);
  return 0;
}

/* ------------------------------------------------------- reading topics */

typedef struct rec {
  int partition;
  long long offset;
  char key[80];
  uint8_t *value;
  size_t len;
} rec_t;

typedef struct recs {
  rec_t r[MAX_RECS];
  int n;
} recs_t;

static void recs_free(recs_t *rs) {
  for (int i = 0; i < rs->n; i++)
    free(rs->r[i].value);
  rs->n = 0;
}

static const rec_t *rec_at(const recs_t *rs, int partition, long long offset) {
  for (int i = 0; i < rs->n; i++)
    if (rs->r[i].partition == partition && rs->r[i].offset == offset)
      return &rs->r[i];
  return NULL;
}

static const rec_t *rec_with_key(const recs_t *rs, const char *key) {
  for (int i = 0; i < rs->n; i++)
    if (strcmp(rs->r[i].key, key) == 0)
      return &rs->r[i];
  return NULL;
}

/* A consumer that sees everything written (read_uncommitted: records of
 * other people's open transactions must not hide ours) and reports the end
 * of each partition. */
static rd_kafka_t *new_reader(void) {
  const linli_config_t *cfg = linli_test_config();
  if (!cfg)
    return NULL;
  char err[512], group[128];
  linli_test_unique("produce-reader", group, sizeof group);
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  if (linli_config_kafka_apply(cfg, conf, err, sizeof err) != LINLI_OK ||
      rd_kafka_conf_set(conf, "group.id", group, err, sizeof err) ||
      rd_kafka_conf_set(conf, "isolation.level", "read_uncommitted", err,
                        sizeof err) ||
      rd_kafka_conf_set(conf, "enable.partition.eof", "true", err,
                        sizeof err) ||
      rd_kafka_conf_set(conf, "enable.auto.commit", "false", err,
                        sizeof err)) {
    fprintf(stderr, "reader: %s\n", err);
    rd_kafka_conf_destroy(conf);
    return NULL;
  }
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  if (!rk) {
    fprintf(stderr, "reader: %s\n", err);
    rd_kafka_conf_destroy(conf);
  }
  return rk;
}

/* The end offset of every partition of topic; returns the partition count
 * (0 on error). Retried for a while: right after a topic was created, its
 * metadata and leaders may not have reached every broker connection yet. */
static int topic_ends_once(rd_kafka_t *rk, const char *topic, int64_t *ends) {
  rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
  const rd_kafka_metadata_t *md = NULL;
  int n = 0;
  if (rd_kafka_metadata(rk, 0, t, &md, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
    if (md->topic_cnt == 1 && md->topics[0].err == 0)
      n = md->topics[0].partition_cnt;
    rd_kafka_metadata_destroy(md);
  }
  rd_kafka_topic_destroy(t);
  if (n > MAX_PARTS)
    n = MAX_PARTS;
  for (int p = 0; p < n; p++) {
    int64_t lo = 0, hi = 0;
    if (rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, 10000) !=
        RD_KAFKA_RESP_ERR_NO_ERROR)
      return 0;
    ends[p] = hi;
  }
  return n;
}

static int topic_ends(const char *topic, int64_t *ends) {
  rd_kafka_t *rk = new_reader();
  if (!rk)
    return 0;
  int n = 0;
  int64_t deadline = linli_test_now_ms() + 20000;
  while ((n = topic_ends_once(rk, topic, ends)) == 0 &&
         linli_test_now_ms() < deadline)
    usleep(200 * 1000);
  rd_kafka_destroy(rk);
  if (n == 0)
    fprintf(stderr, "%s: no partitions or end offsets\n", topic);
  return n;
}

/* Every record of topic from starts[] to the end whose key begins with
 * prefix. 0 on success. */
static int read_since(const char *topic, const int64_t *starts, int nparts,
                      const char *prefix, recs_t *out) {
  out->n = 0;
  rd_kafka_t *rk = new_reader();
  if (!rk)
    return -1;
  rd_kafka_topic_partition_list_t *parts =
      rd_kafka_topic_partition_list_new(nparts);
  for (int p = 0; p < nparts; p++)
    rd_kafka_topic_partition_list_add(parts, topic, p)->offset = starts[p];
  rd_kafka_assign(rk, parts);
  rd_kafka_topic_partition_list_destroy(parts);
  int at_end[MAX_PARTS] = {0}, ends = 0;
  size_t plen = strlen(prefix);
  int64_t deadline = linli_test_now_ms() + 30000;
  while (ends < nparts && linli_test_now_ms() < deadline) {
    rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
    if (!m)
      continue;
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      if (m->partition >= 0 && m->partition < nparts && !at_end[m->partition]) {
        at_end[m->partition] = 1;
        ends++;
      }
    } else if (!m->err && m->key_len >= plen && m->key_len < 80 &&
               memcmp(m->key, prefix, plen) == 0 && out->n < MAX_RECS) {
      rec_t *r = &out->r[out->n++];
      r->partition = m->partition;
      r->offset = m->offset;
      memcpy(r->key, m->key, m->key_len);
      r->key[m->key_len] = '\0';
      r->len = m->len;
      r->value = malloc(m->len ? m->len : 1);
      if (r->value && m->len)
        memcpy(r->value, m->payload, m->len);
    }
    rd_kafka_message_destroy(m);
  }
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
  if (ends < nparts) {
    fprintf(stderr, "read %s: end of partitions not reached\n", topic);
    return -1;
  }
  return 0;
}

/* Compare a message's JSON with the expected JSON text. */
static int json_matches(const ProtobufCMessage *msg, const char *expected) {
  json_t *want = json_loads(expected, 0, NULL);
  json_t *got = NULL;
  int ok = want && linli_pb_to_json(msg, &got) == LINLI_OK &&
           json_equal(want, got);
  if (!ok) {
    char *g = got ? json_dumps(got, JSON_COMPACT) : NULL;
    fprintf(stderr, "JSON differs:\n want %s\n got  %s\n", expected,
            g ? g : "(none)");
    free(g);
  }
  json_decref(want);
  json_decref(got);
  return ok;
}

/* Meta as linli-produce fills it. */
static void assert_meta_filled(const Linli__Meta *m, const char *event_id,
                               int64_t t0, int64_t t1) {
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  CU_ASSERT_STRING_EQUAL(m->event_id, event_id);
  CU_ASSERT(m->occurred_at_ms >= t0 && m->occurred_at_ms <= t1);
  CU_ASSERT_STRING_EQUAL(m->producer, "linli-produce");
  CU_ASSERT_EQUAL(m->schema_version, LINLI_SCHEMA_VERSION);
}

/* ---------------------------------------------------------------- tests */

#define PLACED                                                                 \
  "{\"order_id\":\"@-1\",\"app_id\":\"app-1\",\"user_id\":\"u-@\","           \
  "\"warehouse_id\":\"w-1\",\"lines\":[{\"sku_id\":\"sku-1\",\"quantity\":2," \
  "\"unit_price_fen\":\"150\"},{\"sku_id\":\"sku-2\",\"quantity\":1,"         \
  "\"unit_price_fen\":\"990\"}],\"total_fen\":\"1290\",\"pickup\":{"         \
  "\"pickup_point_id\":\"pp-1\"},\"express\":true,\"placed_at_ms\":"          \
  "\"1700000000000\"}"

static const char wrapper_input[] =
    "# linli-produce test input\n"                                         /* 1 */
    "{\"topic\":\"linli.orders.v1\",\"event\":{\"order_placed\":" PLACED "}}\n"
    "\n"                                                                   /* 3 */
    "{\"topic\":\"linli.orders.v1\",\"event\":{\"order_paid\":{\"order_id\""
    ":\"@-bad1\"}\n"                                                       /* 4 */
    "{\"topic\":\"linli.orders.v1\",\"event\":{\"order_paid\":{\"order_id\""
    ":\"@-bad2\",\"methd\":\"ALIPAY\"}}}\n"                                /* 5 */
    "{\"topic\":\"linli.orders.v1\",\"event\":{\"order_paid\":{\"order_id\""
    ":\"@-bad3\",\"amount_fen\":true}}}\n"                                 /* 6 */
    "{\"topic\":\"linli.orders.v1\",\"event\":{\"order_paid\":{\"order_id\""
    ":\"@-bad4\",\"method\":\"PAYPAL\"}}}\n"                               /* 7 */
    "{\"topic\":\"linli.orders.v1\",\"event\":{\"order_paid\":{\"method\":"
    "\"ALIPAY\",\"amount_fen\":1290}}}\n"                                  /* 8 */
    "{\"topic\":\"linli.orders.v1\",\"event\":{\"meta\":{\"event_id\":"
    "\"@-ev\",\"trace_id\":\"trace-1\"},\"order_paid\":{\"order_id\":"
    "\"@-1\",\"method\":\"ALIPAY\",\"payment_txn_id\":\"txn-1\","
    "\"amount_fen\":1290,\"paid_at_ms\":1700000001000}}}\n"                /* 9 */
    "{\"topic\":\"linli.orders.v1\",\"key\":\"@-2\",\"event\":{"
    "\"order_cancelled\":{\"order_id\":\"@-2\",\"reason\":\"customer "
    "request\"}}}\n"                                                       /* 10 */
    "{\"topic\":\"linli.orders.v1\",\"key\":\"@-bad5\",\"event\":{"
    "\"order_cancelled\":{\"order_id\":\"@-3\"}}}\n"                       /* 11 */
    "{\"topic\":\"linli.orders.v1\",\"event\":{\"meta\":{\"event_id\":"
    "\"@-ev2\"}}}\n"                                                       /* 12 */
    "{\"topic\":\"linli.orders.v1\",\"key\":\"@ bad6\",\"event\":{"
    "\"order_expired\":{}}}\n"                                             /* 13 */
    "  # an indented comment\n"                                            /* 14 */
    "{\"topic\":\"linli.nope.v1\",\"event\":{}}\n";                        /* 15 */

static void test_wrapper_lines(void) {
  CU_ASSERT_EQUAL_FATAL(linli_test_create_topic(LINLI_TOPIC_ORDERS, 6), 0);
  char id[64], input[8192], placed[2048];
  linli_test_unique("pt", id, sizeof id);
  expand(wrapper_input, id, input, sizeof input);
  expand(PLACED, id, placed, sizeof placed);

  int64_t starts[MAX_PARTS];
  int nparts = topic_ends(LINLI_TOPIC_ORDERS, starts);
  CU_ASSERT_FATAL(nparts > 0);
  int64_t t0 = linli_clock_now_ms();
  run_t r;
  const char *const args[] = {"--file", "@IN", NULL};
  CU_ASSERT_EQUAL_FATAL(run_produce(input, args, &r), 0);
  int64_t t1 = linli_clock_now_ms();

  /* Every bad line reported with its number and field; exit 1. */
  CU_ASSERT_EQUAL(r.status, 1);
  CU_ASSERT(has_error(&r, 4, "(json): "));
  CU_ASSERT(has_error(&r, 5, "event.order_paid.methd: unknown field"));
  CU_ASSERT(has_error(&r, 6, "event.order_paid.amount_fen: "));
  CU_ASSERT(has_error(&r, 7, "event.order_paid.method: unknown value"));
  CU_ASSERT(has_error(&r, 8, "event.order_paid.order_id: missing"));
  CU_ASSERT(has_error(&r, 11, "key: "));
  CU_ASSERT(has_error(&r, 12, "event: no event set"));
  CU_ASSERT(has_error(&r, 13, "key: not a valid id"));
  CU_ASSERT(has_error(&r, 15, "topic: unknown topic"));

  /* The good lines, and only they, were sent and printed. */
  CU_ASSERT_EQUAL_FATAL(r.nsent, 3);
  const sent_t *s_placed = sent_for(&r, 2), *s_paid = sent_for(&r, 9),
               *s_cancel = sent_for(&r, 10);
  CU_ASSERT_PTR_NOT_NULL_FATAL(s_placed);
  CU_ASSERT_PTR_NOT_NULL_FATAL(s_paid);
  CU_ASSERT_PTR_NOT_NULL_FATAL(s_cancel);
  for (int i = 0; i < r.nsent; i++)
    CU_ASSERT_STRING_EQUAL(r.sent[i].topic, LINLI_TOPIC_ORDERS);

  recs_t recs;
  CU_ASSERT_EQUAL_FATAL(
      read_since(LINLI_TOPIC_ORDERS, starts, nparts, id, &recs), 0);
  CU_ASSERT_EQUAL(recs.n, 3); /* nothing from the bad lines */

  /* Line 2: OrderPlaced, key = order_id, Meta filled, fields round-trip. */
  char key[96];
  snprintf(key, sizeof key, "%s-1", id);
  const rec_t *rec = rec_at(&recs, s_placed->partition, s_placed->offset);
  CU_ASSERT_PTR_NOT_NULL_FATAL(rec);
  CU_ASSERT_STRING_EQUAL(rec->key, key);
  Linli__OrderEvent *ev = linli__order_event__unpack(NULL, rec->len, rec->value);
  CU_ASSERT_PTR_NOT_NULL_FATAL(ev);
  CU_ASSERT_EQUAL(ev->event_case, LINLI__ORDER_EVENT__EVENT_ORDER_PLACED);
  assert_meta_filled(ev->meta, s_placed->event_id, t0, t1);
  CU_ASSERT_EQUAL(strlen(s_placed->event_id), 26); /* a new ULID */
  CU_ASSERT(json_matches(&ev->order_placed->base, placed));
  linli__order_event__free_unpacked(ev, NULL);

  /* Line 9: the given event_id and trace_id are kept; same key, so same
   * partition, after the order. */
  rec = rec_at(&recs, s_paid->partition, s_paid->offset);
  CU_ASSERT_PTR_NOT_NULL_FATAL(rec);
  CU_ASSERT_STRING_EQUAL(rec->key, key);
  CU_ASSERT_EQUAL(s_paid->partition, s_placed->partition);
  CU_ASSERT(s_paid->offset > s_placed->offset);
  char evid[96];
  snprintf(evid, sizeof evid, "%s-ev", id);
  CU_ASSERT_STRING_EQUAL(s_paid->event_id, evid);
  ev = linli__order_event__unpack(NULL, rec->len, rec->value);
  CU_ASSERT_PTR_NOT_NULL_FATAL(ev);
  CU_ASSERT_EQUAL_FATAL(ev->event_case, LINLI__ORDER_EVENT__EVENT_ORDER_PAID);
  assert_meta_filled(ev->meta, evid, t0, t1);
  CU_ASSERT_STRING_EQUAL(ev->meta->trace_id, "trace-1");
  CU_ASSERT_STRING_EQUAL(ev->order_paid->order_id, key);
  CU_ASSERT_EQUAL(ev->order_paid->method, LINLI__ORDER_PAID__METHOD__ALIPAY);
  CU_ASSERT_STRING_EQUAL(ev->order_paid->payment_txn_id, "txn-1");
  CU_ASSERT_EQUAL(ev->order_paid->amount_fen, 1290);
  CU_ASSERT_EQUAL(ev->order_paid->paid_at_ms, 1700000001000LL);
  linli__order_event__free_unpacked(ev, NULL);

  /* Line 10: the explicit key. */
  snprintf(key, sizeof key, "%s-2", id);
  rec = rec_at(&recs, s_cancel->partition, s_cancel->offset);
  CU_ASSERT_PTR_NOT_NULL_FATAL(rec);
  CU_ASSERT_STRING_EQUAL(rec->key, key);
  ev = linli__order_event__unpack(NULL, rec->len, rec->value);
  CU_ASSERT_PTR_NOT_NULL_FATAL(ev);
  CU_ASSERT_EQUAL_FATAL(ev->event_case,
                        LINLI__ORDER_EVENT__EVENT_ORDER_CANCELLED);
  assert_meta_filled(ev->meta, s_cancel->event_id, t0, t1);
  CU_ASSERT_STRING_EQUAL(ev->order_cancelled->reason, "customer request");
  linli__order_event__free_unpacked(ev, NULL);

  recs_free(&recs);
  run_free(&r);
}

static void test_type_flag(void) {
  CU_ASSERT_EQUAL_FATAL(linli_test_create_topic(LINLI_TOPIC_INVENTORY, 6), 0);
  char id[64], input[4096];
  linli_test_unique("pt", id, sizeof id);
  expand("{\"adjustment_id\":\"@-a1\",\"warehouse_id\":\"@-w1\",\"sku_id\":"
         "\"sku-1\",\"quantity\":-3,\"reason\":\"DAMAGE\",\"note\":\"crushed\"}\n"
         "{\"adjustment_id\":\"@-a2\",\"sku_id\":\"sku-1\",\"quantity\":5,"
         "\"reason\":\"RESTOCK\"}\n"
         "{\"adjustment_id\":\"@-a3\",\"warehouse_id\":\"@-w1\",\"sku_id\":"
         "\"sku-2\",\"quantity\":7,\"reason\":\"RESTOCK\"}\n"
         "{\"stock_adjusted\":{\"warehouse_id\":\"@-w2\"}}\n"
         "{\"adjustment_id\":\"@-a5\",\"warehouse_id\":\"@-w3\",\"quantity\":"
         "2.5}\n",
         id, input, sizeof input);
  int64_t starts[MAX_PARTS];
  int nparts = topic_ends(LINLI_TOPIC_INVENTORY, starts);
  CU_ASSERT_FATAL(nparts > 0);
  int64_t t0 = linli_clock_now_ms();
  run_t r;
  /* No --topic: StockAdjusted belongs to linli.inventory.v1 alone. */
  const char *const args[] = {"--type", "StockAdjusted", "--file", "@IN",
                              NULL};
  CU_ASSERT_EQUAL_FATAL(run_produce(input, args, &r), 0);
  int64_t t1 = linli_clock_now_ms();
  CU_ASSERT_EQUAL(r.status, 1);
  CU_ASSERT(has_error(&r, 2, "warehouse_id: missing"));
  CU_ASSERT(has_error(&r, 4, "stock_adjusted: unknown field"));
  CU_ASSERT(has_error(&r, 5, "quantity: "));
  CU_ASSERT_EQUAL_FATAL(r.nsent, 2);
  const sent_t *a = sent_for(&r, 1), *b = sent_for(&r, 3);
  CU_ASSERT_PTR_NOT_NULL_FATAL(a);
  CU_ASSERT_PTR_NOT_NULL_FATAL(b);
  CU_ASSERT_STRING_EQUAL(a->topic, LINLI_TOPIC_INVENTORY);
  CU_ASSERT_EQUAL(a->partition, b->partition); /* same warehouse key */
  CU_ASSERT(b->offset > a->offset);

  recs_t recs;
  CU_ASSERT_EQUAL_FATAL(
      read_since(LINLI_TOPIC_INVENTORY, starts, nparts, id, &recs), 0);
  CU_ASSERT_EQUAL(recs.n, 2);
  char key[96];
  snprintf(key, sizeof key, "%s-w1", id);
  const rec_t *rec = rec_at(&recs, a->partition, a->offset);
  CU_ASSERT_PTR_NOT_NULL_FATAL(rec);
  CU_ASSERT_STRING_EQUAL(rec->key, key);
  Linli__InventoryEvent *ev =
      linli__inventory_event__unpack(NULL, rec->len, rec->value);
  CU_ASSERT_PTR_NOT_NULL_FATAL(ev);
  CU_ASSERT_EQUAL_FATAL(ev->event_case,
                        LINLI__INVENTORY_EVENT__EVENT_STOCK_ADJUSTED);
  assert_meta_filled(ev->meta, a->event_id, t0, t1);
  CU_ASSERT_EQUAL(ev->stock_adjusted->quantity, -3);
  CU_ASSERT_EQUAL(ev->stock_adjusted->reason,
                  LINLI__STOCK_ADJUSTED__REASON__DAMAGE);
  CU_ASSERT_STRING_EQUAL(ev->stock_adjusted->note, "crushed");
  linli__inventory_event__free_unpacked(ev, NULL);
  rec = rec_at(&recs, b->partition, b->offset);
  CU_ASSERT_PTR_NOT_NULL_FATAL(rec);
  CU_ASSERT_STRING_EQUAL(rec->key, key);
  ev = linli__inventory_event__unpack(NULL, rec->len, rec->value);
  CU_ASSERT_PTR_NOT_NULL_FATAL(ev);
  CU_ASSERT_EQUAL(ev->stock_adjusted->quantity, 7);
  CU_ASSERT_STRING_EQUAL(ev->meta->event_id, b->event_id);
  linli__inventory_event__free_unpacked(ev, NULL);
  recs_free(&recs);
  run_free(&r);
}

static void test_topic_type_quiet(void) {
  CU_ASSERT_EQUAL_FATAL(linli_test_create_topic(LINLI_TOPIC_CATALOG, 3), 0);
  char id[64], input[2048], sku[1024];
  linli_test_unique("pt", id, sizeof id);
  expand("{\"sku_id\":\"@-s1\",\"name\":\"东北大米 5kg\",\"category\":"
         "\"grain/rice\",\"storage_class\":\"AMBIENT\",\"weight_g\":5000,"
         "\"list_price_fen\":\"3990\",\"status\":\"LISTED\"}",
         id, sku, sizeof sku);
  snprintf(input, sizeof input, "%s\n", sku);
  int64_t starts[MAX_PARTS];
  int nparts = topic_ends(LINLI_TOPIC_CATALOG, starts);
  CU_ASSERT_FATAL(nparts > 0);
  run_t r;
  const char *const args[] = {"--topic", LINLI_TOPIC_CATALOG, "--type", "Sku",
                              "--quiet", "--file", "@IN", NULL};
  CU_ASSERT_EQUAL_FATAL(run_produce(input, args, &r), 0);
  CU_ASSERT_EQUAL(r.status, 0);
  CU_ASSERT_EQUAL(r.nsent, 0); /* --quiet */
  CU_ASSERT_STRING_EQUAL(r.log, "");

  recs_t recs;
  CU_ASSERT_EQUAL_FATAL(
      read_since(LINLI_TOPIC_CATALOG, starts, nparts, id, &recs), 0);
  CU_ASSERT_EQUAL_FATAL(recs.n, 1);
  char key[96];
  snprintf(key, sizeof key, "%s-s1", id);
  const rec_t *rec = rec_with_key(&recs, key);
  CU_ASSERT_PTR_NOT_NULL_FATAL(rec);
  Linli__CatalogEvent *ev =
      linli__catalog_event__unpack(NULL, rec->len, rec->value);
  CU_ASSERT_PTR_NOT_NULL_FATAL(ev);
  CU_ASSERT_EQUAL_FATAL(ev->event_case, LINLI__CATALOG_EVENT__EVENT_SKU);
  CU_ASSERT(json_matches(&ev->sku->base, sku));
  CU_ASSERT_STRING_EQUAL(ev->meta->producer, "linli-produce");
  linli__catalog_event__free_unpacked(ev, NULL);
  recs_free(&recs);
  run_free(&r);
}

static void test_dry_run(void) {
  CU_ASSERT_EQUAL_FATAL(linli_test_create_topic(LINLI_TOPIC_ORDERS, 6), 0);
  char id[64], input[2048];
  linli_test_unique("pt", id, sizeof id);
  expand("{\"topic\":\"linli.orders.v1\",\"event\":{\"order_cancelled\":{"
         "\"order_id\":\"@-1\"}}}\n"
         "{\"topic\":\"linli.orders.v1\",\"event\":{\"meta\":{\"event_id\":"
         "\"@-e2\",\"producer\":\"ops\"},\"order_expired\":{\"order_id\":"
         "\"@-2\",\"deadline_ms\":5}}}\n",
         id, input, sizeof input);
  int64_t starts[MAX_PARTS];
  int nparts = topic_ends(LINLI_TOPIC_ORDERS, starts);
  CU_ASSERT_FATAL(nparts > 0);
  run_t r;
  const char *const args[] = {"--dry-run", "--file", "@IN", NULL};
  CU_ASSERT_EQUAL_FATAL(run_produce(input, args, &r), 0);
  CU_ASSERT_EQUAL(r.status, 0);

  /* "<line> <event_id> <topic> <key> <envelope JSON>" per line. */
  char want[256];
  snprintf(want, sizeof want, "2 %s-e2 linli.orders.v1 %s-2 {", id, id);
  CU_ASSERT_PTR_NOT_NULL(strstr(r.log, want));
  const char *line1 = strstr(r.log, "1 ");
  CU_ASSERT_PTR_NOT_NULL_FATAL(line1);
  char evid[80], topic[80], key[96];
  int used = 0;
  CU_ASSERT_EQUAL_FATAL(
      sscanf(line1, "1 %79s %79s %95s %n", evid, topic, key, &used), 3);
  json_error_t jerr;
  json_t *j = json_loadb(line1 + used, strcspn(line1 + used, "\n"), 0, &jerr);
  CU_ASSERT_PTR_NOT_NULL_FATAL(j);
  CU_ASSERT_STRING_EQUAL(
      json_string_value(json_object_get(json_object_get(j, "meta"),
                                        "event_id")),
      evid);
  CU_ASSERT_STRING_EQUAL(
      json_string_value(json_object_get(json_object_get(j, "meta"),
                                        "producer")),
      "linli-produce");
  CU_ASSERT_PTR_NOT_NULL(json_object_get(j, "order_cancelled"));
  json_decref(j);
  char key1[96];
  snprintf(key1, sizeof key1, "%s-1", id);
  CU_ASSERT_STRING_EQUAL(key, key1);

  /* Nothing was sent. */
  recs_t recs;
  CU_ASSERT_EQUAL_FATAL(
      read_since(LINLI_TOPIC_ORDERS, starts, nparts, id, &recs), 0);
  CU_ASSERT_EQUAL(recs.n, 0);
  recs_free(&recs);
  run_free(&r);
}

/* Exit status and message of a run with args on an empty input. */
static void expect_usage(const char *const args[], int status,
                         const char *message) {
  run_t r;
  CU_ASSERT_EQUAL_FATAL(run_produce("", args, &r), 0);
  CU_ASSERT_EQUAL(r.status, status);
  if (!strstr(r.log, message)) {
    fprintf(stderr, "expected \"%s\" in:\n%s\n", message, r.log);
    CU_FAIL("message missing");
  }
  run_free(&r);
}

static void test_usage(void) {
  const char *const help[] = {"--help", NULL};
  expect_usage(help, 0, "usage: linli-produce");
  const char *const topic[] = {"--topic", "linli.nope.v1", NULL};
  expect_usage(topic, 2, "--topic linli.nope.v1: unknown topic");
  const char *const dlq[] = {"--topic", LINLI_TOPIC_DLQ, NULL};
  expect_usage(dlq, 2, "raw bytes");
  const char *const type[] = {"--type", "NoSuchEvent", NULL};
  expect_usage(type, 2, "--type NoSuchEvent: unknown message type");
  const char *const mismatch[] = {"--topic", LINLI_TOPIC_ORDERS, "--type",
                                  "Sku", NULL};
  expect_usage(mismatch, 2, "not an event of linli.orders.v1");
  const char *const bogus[] = {"--bogus", NULL};
  expect_usage(bogus, 2, "unknown option --bogus");
  const char *const missing[] = {"--file", "/nonexistent/linli-in", NULL};
  expect_usage(missing, 2, "/nonexistent/linli-in");
  const char *const extra[] = {"--file", "@IN", "events.jsonl", NULL};
  expect_usage(extra, 2, "unexpected argument events.jsonl");
  /* An empty input is fine: nothing to send. */
  const char *const empty[] = {"--file", "@IN", NULL};
  expect_usage(empty, 0, "");
}

int linli_test_register(void) {
  CU_pSuite s = CU_add_suite("linli-produce (real broker)", NULL, NULL);
  if (!s)
    return -1;
  CU_add_test(s, "wrapper lines: sent, reported, round-trip",
              test_wrapper_lines);
  CU_add_test(s, "--type wraps the member and derives the key",
              test_type_flag);
  CU_add_test(s, "--topic --type --quiet", test_topic_type_quiet);
  CU_add_test(s, "--dry-run sends nothing", test_dry_run);
  CU_add_test(s, "usage errors exit 2", test_usage);
  return 0;
}
