/*
 * test_replay.c - linli-replay export and republish against the real broker:
 * an export of a known set of events reproduces them field for field in
 * JSONL and CSV, time and offset ranges select exactly the events inside,
 * undecodable records become error rows, republish copies a slice and
 * refuses a live topic without --force.
 *
 * Events go to a sandbox topic of this run and are decoded with
 * --as linli.orders.v1, so runs never see each other's records.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "linli/error.h"
#include "linli/kafka.h"
#include "linli_test.h"
#include "orders.pb-c.h"
#include "domain/topics.h"

#define NEVENTS 10
#define BASE_TS INT64_C(1790000000000) /* a fixed past instant, 2026-09 */

static char topic[128];

/* Produce with an explicit timestamp (the test producer cannot). */
static int produce_at(rd_kafka_t *rk, const char *t, const char *key,
                      const void *val, size_t len, int64_t ts) {
  rd_kafka_resp_err_t e = rd_kafka_producev(
      rk, RD_KAFKA_V_TOPIC(t), RD_KAFKA_V_KEY(key, strlen(key)),
      RD_KAFKA_V_VALUE((void *)val, len),
      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_TIMESTAMP(ts),
      RD_KAFKA_V_END);
  return e == RD_KAFKA_RESP_ERR_NO_ERROR ? 0 : -1;
}

static int setup(void) {
  linli_test_unique("t.replay", topic, sizeof topic);
  if (linli_test_create_topic(topic, 3) != 0)
    return -1;
  const linli_config_t *cfg = linli_test_config();
  char err[256];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  linli_config_kafka_apply(cfg, conf, err, sizeof err);
  rd_kafka_conf_set(conf, "enable.idempotence", "true", err, sizeof err);
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  if (!rk)
    return -1;
  for (int i = 0; i < NEVENTS; i++) {
    Linli__OrderEvent ev = LINLI__ORDER_EVENT__INIT;
    Linli__Meta meta = LINLI__META__INIT;
    Linli__OrderPaid paid = LINLI__ORDER_PAID__INIT;
    char id[32], order[32], txn[32];
    snprintf(id, sizeof id, "ev%02d", i);
    snprintf(order, sizeof order, "o%02d", i);
    snprintf(txn, sizeof txn, "tx,\"%02d", i); /* CSV must quote this */
    meta.event_id = id;
    meta.occurred_at_ms = BASE_TS + i * 1000;
    paid.order_id = order;
    paid.method = LINLI__ORDER_PAID__METHOD__ALIPAY;
    paid.payment_txn_id = txn;
    paid.amount_fen = 100 + i;
    ev.meta = &meta;
    ev.event_case = LINLI__ORDER_EVENT__EVENT_ORDER_PAID;
    ev.order_paid = &paid;
    uint8_t buf[256];
    size_t len = linli__order_event__pack(&ev, buf);
    /* Everything in one partition (same key) keeps offsets = i. */
    if (produce_at(rk, topic, "same", buf, len, BASE_TS + i * 1000) != 0)
      return -1;
  }
  /* One undecodable record after the good ones, at offset NEVENTS. */
  produce_at(rk, topic, "same", "\x0a\xff\xff", 3, BASE_TS + NEVENTS * 1000);
  rd_kafka_flush(rk, 30000);
  int left = rd_kafka_outq_len(rk);
  rd_kafka_destroy(rk);
  return left == 0 ? 0 : -1;
}

/* Run linli-replay with args; output file path returned in out. */
static int run_replay(char *const extra[], char *out, size_t outlen) {
  char bin[512], log[256];
  static int n;
  linli_test_binary_path("consumers/replay/linli-replay", bin, sizeof bin);
  snprintf(out, outlen, "/tmp/replay-%d-%d.out", (int)getpid(), ++n);
  snprintf(log, sizeof log, "/tmp/replay-%d-%d.log", (int)getpid(), n);
  char *argv[32];
  int a = 0;
  argv[a++] = bin;
  for (int i = 0; extra[i] && a < 28; i++)
    argv[a++] = extra[i];
  if (strcmp(extra[0], "export") == 0) {
    argv[a++] = "--out";
    argv[a++] = out;
  }
  argv[a] = NULL;
  pid_t pid = linli_test_spawn(argv, NULL, log);
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static json_t **read_jsonl(const char *path, int *n) {
  FILE *f = fopen(path, "r");
  json_t **rows = calloc(64, sizeof *rows);
  *n = 0;
  char line[8192];
  while (f && fgets(line, sizeof line, f) && *n < 64)
    rows[(*n)++] = json_loads(line, 0, NULL);
  if (f)
    fclose(f);
  return rows;
}

static void free_rows(json_t **rows, int n) {
  for (int i = 0; i < n; i++)
    json_decref(rows[i]);
  free(rows);
}

static void test_export_jsonl_all(void) {
  char out[256];
  char *args[] = {"export", "--topic", topic, "--as", LINLI_TOPIC_ORDERS,
                  "--quiet", NULL};
  CU_ASSERT_EQUAL_FATAL(run_replay(args, out, sizeof out), 0);
  int n = 0;
  json_t **rows = read_jsonl(out, &n);
  CU_ASSERT_EQUAL(n, NEVENTS + 1);
  for (int i = 0; i < n && i < NEVENTS; i++) {
    json_t *r = rows[i];
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(r, "topic")),
                           topic);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(r, "offset")), i);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(r, "timestamp")),
                    BASE_TS + i * 1000);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(r, "key")),
                           "same");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(r, "type")),
                           "OrderPaid");
    json_t *paid = json_object_get(json_object_get(r, "event"), "order_paid");
    char order[32], amount[32], txn[32];
    snprintf(order, sizeof order, "o%02d", i);
    snprintf(amount, sizeof amount, "%d", 100 + i);
    snprintf(txn, sizeof txn, "tx,\"%02d", i);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(paid, "order_id")),
                           order);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(paid, "method")),
                           "ALIPAY");
    CU_ASSERT_STRING_EQUAL(
        json_string_value(json_object_get(paid, "payment_txn_id")), txn);
    CU_ASSERT_STRING_EQUAL(
        json_string_value(json_object_get(paid, "amount_fen")), amount);
  }
  /* The undecodable record is an error row with its coordinates. */
  if (n == NEVENTS + 1) {
    json_t *bad = rows[NEVENTS];
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(bad, "offset")),
                    NEVENTS);
    CU_ASSERT_PTR_NOT_NULL(json_object_get(bad, "error"));
    CU_ASSERT_PTR_NULL(json_object_get(bad, "event"));
  }
  free_rows(rows, n);
  unlink(out);
}

static void test_export_time_range(void) {
  char out[256], from[32], to[32];
  snprintf(from, sizeof from, "@%lld", (long long)(BASE_TS + 3000));
  snprintf(to, sizeof to, "@%lld", (long long)(BASE_TS + 7000));
  char *args[] = {"export", "--topic", topic, "--as", LINLI_TOPIC_ORDERS,
                  "--from", from, "--to", to, "--quiet", NULL};
  CU_ASSERT_EQUAL_FATAL(run_replay(args, out, sizeof out), 0);
  int n = 0;
  json_t **rows = read_jsonl(out, &n);
  CU_ASSERT_EQUAL(n, 4); /* 3, 4, 5, 6: from inclusive, to exclusive */
  for (int i = 0; i < n; i++)
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(rows[i], "offset")),
                    3 + i);
  free_rows(rows, n);
  unlink(out);

  /* ISO-8601 times select the same slice. */
  char *args2[] = {"export", "--topic", topic, "--as", LINLI_TOPIC_ORDERS,
                   "--from", "2026-09-21T14:13:23Z", "--to",
                   "2026-09-21T14:13:27Z", "--quiet", NULL};
  CU_ASSERT_EQUAL_FATAL(run_replay(args2, out, sizeof out), 0);
  rows = read_jsonl(out, &n);
  CU_ASSERT_EQUAL(n, 4);
  if (n > 0)
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(rows[0], "offset")), 3);
  free_rows(rows, n);
  unlink(out);

  /* Offsets: --to is inclusive. */
  char *args3[] = {"export", "--topic", topic, "--as", LINLI_TOPIC_ORDERS,
                   "--from", "2", "--to", "4", "--quiet", NULL};
  CU_ASSERT_EQUAL_FATAL(run_replay(args3, out, sizeof out), 0);
  rows = read_jsonl(out, &n);
  CU_ASSERT_EQUAL(n, 3);
  free_rows(rows, n);
  unlink(out);

  /* --type filters on the event type. */
  char *args4[] = {"export", "--topic", topic, "--as", LINLI_TOPIC_ORDERS,
                   "--type", "OrderPlaced", "--quiet", NULL};
  CU_ASSERT_EQUAL_FATAL(run_replay(args4, out, sizeof out), 0);
  rows = read_jsonl(out, &n);
  CU_ASSERT_EQUAL(n, 0);
  free_rows(rows, n);
  unlink(out);
}

static void test_export_csv(void) {
  char out[256];
  char *args[] = {"export", "--topic", topic, "--as", LINLI_TOPIC_ORDERS,
                  "--format", "csv", "--to", "9", "--quiet", NULL};
  CU_ASSERT_EQUAL_FATAL(run_replay(args, out, sizeof out), 0);
  FILE *f = fopen(out, "r");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  char line[8192];
  CU_ASSERT_PTR_NOT_NULL(fgets(line, sizeof line, f));
  CU_ASSERT(strncmp(line, "topic,partition,offset,timestamp,key,type,error,",
                    48) == 0);
  CU_ASSERT(strstr(line, "meta.event_id") != NULL);
  CU_ASSERT(strstr(line, "order_paid.payment_txn_id") != NULL);
  CU_ASSERT(strstr(line, "order_placed.pickup.pickup_point_id") != NULL);
  int rows = 0;
  int found = 0;
  while (fgets(line, sizeof line, f)) {
    rows++;
    /* A quoted cell with an embedded comma and doubled quote. */
    if (strstr(line, ",\"tx,\"\"03\",") && strstr(line, ",o03,") &&
        strstr(line, ",ALIPAY,") && strstr(line, ",103,"))
      found = 1;
  }
  fclose(f);
  CU_ASSERT_EQUAL(rows, NEVENTS);
  CU_ASSERT(found);
  unlink(out);
}

/* Text cells that a spreadsheet would run as formulas come out with a
 * leading apostrophe (and quoted); numbers keep their sign. Events go to
 * a topic of their own so the other tests' counts stay as they are. */
static void test_export_csv_formula(void) {
  static const char *const evil[] = {"=HYPERLINK(\"http://x\")", "+1+2",
                                     "-3-4", "@SUM(A1)", "\tcmd", "\r=1"};
  enum { NEVIL = sizeof evil / sizeof evil[0] };
  char t[128], out[256];
  linli_test_unique("t.replaycsv", t, sizeof t);
  CU_ASSERT_EQUAL_FATAL(linli_test_create_topic(t, 1), 0);
  const linli_config_t *cfg = linli_test_config();
  char err[256];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  linli_config_kafka_apply(cfg, conf, err, sizeof err);
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  CU_ASSERT_PTR_NOT_NULL_FATAL(rk);
  for (int i = 0; i < NEVIL; i++) {
    Linli__OrderEvent ev = LINLI__ORDER_EVENT__INIT;
    Linli__Meta meta = LINLI__META__INIT;
    Linli__OrderPaid paid = LINLI__ORDER_PAID__INIT;
    char id[32], order[32];
    snprintf(id, sizeof id, "fx%02d", i);
    snprintf(order, sizeof order, "ox%02d", i);
    meta.event_id = id;
    meta.occurred_at_ms = BASE_TS;
    paid.order_id = order;
    paid.payment_txn_id = (char *)evil[i];
    paid.amount_fen = -5; /* a number: never neutralised */
    ev.meta = &meta;
    ev.event_case = LINLI__ORDER_EVENT__EVENT_ORDER_PAID;
    ev.order_paid = &paid;
    uint8_t buf[256];
    size_t len = linli__order_event__pack(&ev, buf);
    /* The record key is text from the data as well. */
    CU_ASSERT_EQUAL(produce_at(rk, t, "=2+3", buf, len, BASE_TS), 0);
  }
  rd_kafka_flush(rk, 30000);
  CU_ASSERT_EQUAL(rd_kafka_outq_len(rk), 0);
  rd_kafka_destroy(rk);

  char to[16];
  snprintf(to, sizeof to, "%d", NEVIL - 1);
  char *args[] = {"export", "--topic", t, "--as", LINLI_TOPIC_ORDERS,
                  "--format", "csv", "--to", to, "--quiet", NULL};
  CU_ASSERT_EQUAL_FATAL(run_replay(args, out, sizeof out), 0);
  FILE *f = fopen(out, "r");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  char body[16384];
  size_t n = fread(body, 1, sizeof body - 1, f);
  body[n] = '\0';
  fclose(f);
  unlink(out);
  static const char *const want[] = {
      ",\"'=HYPERLINK(\"\"http://x\"\")\",", ",\"'+1+2\",", ",\"'-3-4\",",
      ",\"'@SUM(A1)\",", ",\"'\tcmd\",", ",\"'\r=1\","};
  for (int i = 0; i < NEVIL; i++) {
    if (!strstr(body, want[i]))
      fprintf(stderr, "missing neutralised cell %s\n", want[i]);
    CU_ASSERT_PTR_NOT_NULL(strstr(body, want[i]));
  }
  CU_ASSERT_PTR_NOT_NULL(strstr(body, ",\"'=2+3\",")); /* the key */
  CU_ASSERT_PTR_NOT_NULL(strstr(body, ",-5,"));         /* the amount */
  /* No cell starts with a bare formula character. */
  CU_ASSERT_PTR_NULL(strstr(body, ",="));
  CU_ASSERT_PTR_NULL(strstr(body, ",+"));
  CU_ASSERT_PTR_NULL(strstr(body, ",@"));
  CU_ASSERT_PTR_NULL(strstr(body, ",\"="));
  CU_ASSERT_PTR_NULL(strstr(body, ",\"-3"));
}

static void test_republish(void) {
  char sandbox[128], out[256];
  linli_test_unique("t.sandbox", sandbox, sizeof sandbox);
  CU_ASSERT_EQUAL_FATAL(linli_test_create_topic(sandbox, 1), 0);
  char *args[] = {"republish", "--topic", topic, "--from", "2", "--to", "5",
                  "--into", sandbox, NULL};
  CU_ASSERT_EQUAL(run_replay(args, out, sizeof out), 0);
  /* The copy decodes like the original and keeps timestamps. */
  char *exp[] = {"export", "--topic", sandbox, "--as", LINLI_TOPIC_ORDERS,
                 "--quiet", NULL};
  CU_ASSERT_EQUAL_FATAL(run_replay(exp, out, sizeof out), 0);
  int n = 0;
  json_t **rows = read_jsonl(out, &n);
  CU_ASSERT_EQUAL(n, 4);
  if (n == 4)
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(rows[0], "timestamp")),
                    BASE_TS + 2000);
  free_rows(rows, n);
  unlink(out);
  /* A live topic is refused without --force. */
  char *live[] = {"republish", "--topic", topic, "--into", LINLI_TOPIC_ORDERS,
                  NULL};
  CU_ASSERT_EQUAL(run_replay(live, out, sizeof out), 2);
}

static void test_bad_arguments(void) {
  char out[256];
  char *a1[] = {"export", "--topic", topic, "--from", "yesterday", NULL};
  CU_ASSERT_EQUAL(run_replay(a1, out, sizeof out), 2);
  char *a2[] = {"export", "--topic", topic, NULL}; /* not a linli topic */
  CU_ASSERT_EQUAL(run_replay(a2, out, sizeof out), 2);
  char *a3[] = {"export", "--topic", topic, "--as", LINLI_TOPIC_ORDERS,
                "--type", "NoSuchMessage", NULL};
  CU_ASSERT_EQUAL(run_replay(a3, out, sizeof out), 2);
}

int linli_test_register(void) {
  CU_pSuite s = CU_add_suite("replay (real broker)", setup, NULL);
  if (!s)
    return -1;
  CU_add_test(s, "export JSONL reproduces every event", test_export_jsonl_all);
  CU_add_test(s, "time and offset ranges", test_export_time_range);
  CU_add_test(s, "export CSV", test_export_csv);
  CU_add_test(s, "export CSV neutralises formula cells",
              test_export_csv_formula);
  CU_add_test(s, "republish into a sandbox", test_republish);
  CU_add_test(s, "bad arguments", test_bad_arguments);
  return 0;
}
