/*
 * test_gateway_kafka.c - the gateway across a Kafka outage, on a private
 * single-node broker so the shared one is never touched: 202 while Kafka is
 * up; Kafka stopped -> 503 within message.timeout.ms and nothing accepted
 * (no owner claim, no record, the Idempotency-Key free again); Kafka
 * started again on the same data -> the retried request (same key) and a
 * new one are accepted, the earlier answer still replays, and the private
 * topic holds each order exactly once.
 *
 * The broker is started and stopped with the project's own
 * scripts/kafka.sh (jars cached in .cache/kafka-jars by `kafka.sh fetch`),
 * pointed by LINLI_CONFIG/LINLI_STACK_DIR at a temporary folder and a port
 * of its own. Redis and PostgreSQL are the shared dev services (ids are
 * unique per run). Nothing outlives the test: the suite cleanup stops the
 * gateway and the broker and removes the folder; if this process dies
 * before its cleanup runs (crash, ctest timeout), the gateway and kafka.sh
 * die with it (PR_SET_PDEATHSIG) and a detached watchdog stops the broker
 * and removes the folder.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <librdkafka/rdkafka.h>

#include "domain/schema.h"
#include "linli_test.h"

#define TOK_A "dev-shop-a-token"
#define TIMEOUT_MS "3000" /* gateway.publish_timeout_ms */

static char dir[64];          /* the private folder ("" until made) */
static char conf_path[128];   /* its linli.conf */
static char bootstrap[64];    /* 127.0.0.1:<port> of the private broker */
static char env_conf[160], env_stack[160], env_bs[100];
static int kport, gport;      /* broker, gateway */
static pid_t gw_pid;
static int watchdog_fd = -1;  /* write end: its EOF wakes the watchdog */
static char run_id[48];
static pid_t stopped_broker = -1; /* a SIGSTOPped broker: SIGCONT at cleanup */

/* ------------------------------------------------------------- ports */

/* A port p with p..p+n-1 all free, starting near 30000 + pid % 10000. */
static int pick_ports(int start, int n) {
  for (int p = start; p < start + 400; p += n) {
    int ok = 1;
    for (int i = 0; i < n && ok; i++)
      ok = linli_test_port_free(p + i);
    if (ok)
      return p;
  }
  return -1;
}

static int port_open(int port) {
  int fd = linli_test_dial(port);
  if (fd >= 0)
    close(fd);
  return fd >= 0;
}

/* ----------------------------------------------------- private broker */

/* `bash scripts/kafka.sh cmd` against the private folder; its exit status
 * (-1 if it did not finish within 120 s: kafka.sh bounds start and stop at
 * 60 s each itself). */
static int kafka_sh(const char *cmd) {
  char script[512], log[128];
  linli_test_source_path("scripts/kafka.sh", script, sizeof script);
  snprintf(log, sizeof log, "%s/kafka-sh.log", dir);
  char *argv[] = {"/bin/bash", script, (char *)cmd, NULL};
  char *env[] = {env_conf, env_stack, env_bs, NULL};
  pid_t pid = linli_test_spawn_tied(argv, env, log);
  if (pid <= 0)
    return -1;
  int st = 0;
  for (int i = 0; i < 1200; i++) {
    if (waitpid(pid, &st, WNOHANG) == pid)
      return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    usleep(100 * 1000);
  }
  kill(pid, SIGKILL);
  waitpid(pid, &st, 0);
  return -1;
}

/* Copy config/linli.conf with [kafka] bootstrap.servers replaced. */
static int write_config(void) {
  char src[512];
  linli_test_source_path("config/linli.conf", src, sizeof src);
  FILE *in = fopen(src, "r");
  FILE *out = fopen(conf_path, "w");
  int rc = in && out ? 0 : -1;
  char line[1024];
  while (rc == 0 && fgets(line, sizeof line, in)) {
    const char *s = line + strspn(line, " \t");
    if (strncmp(s, "bootstrap.servers", 17) == 0)
      fprintf(out, "bootstrap.servers = %s\n", bootstrap);
    else
      fputs(line, out);
  }
  if (in)
    fclose(in);
  if (out && fclose(out) != 0)
    rc = -1;
  return rc;
}

/*
 * A detached process that waits for EOF on a pipe whose only write end is
 * ours (close-on-exec, so no child inherits it), then stops the private
 * broker and removes the folder. A normal run closes the pipe after having
 * done both itself; a test killed by ctest's timeout or a crash closes it
 * by dying. Double fork: it is nobody's child, so a process-tree kill of
 * this test does not take it along.
 */
static int start_watchdog(void) {
  int fds[2];
  if (pipe(fds) != 0)
    return -1;
  fcntl(fds[1], F_SETFD, FD_CLOEXEC);
  char script[512];
  linli_test_source_path("scripts/kafka.sh", script, sizeof script);
  pid_t pid = fork();
  if (pid < 0)
    return -1;
  if (pid == 0) {
    if (fork() != 0)
      _exit(0);
    setsid();
    dup2(fds[0], 0);
    close(fds[0]);
    int null = open("/dev/null", O_WRONLY);
    if (null >= 0) {
      dup2(null, 1);
      dup2(null, 2);
    }
    putenv(env_conf);
    putenv(env_stack);
    putenv(env_bs);
    char *argv[] = {"/bin/bash", "-c",
                    "cat >/dev/null; [ -d \"$0\" ] || exit 0; "
                    "bash \"$1\" stop; rm -rf -- \"$0\"",
                    dir, script, NULL};
    execv(argv[0], argv);
    _exit(127);
  }
  close(fds[0]);
  waitpid(pid, NULL, 0); /* the middle child; the watchdog is detached */
  watchdog_fd = fds[1];
  return 0;
}

static rd_kafka_t *client(rd_kafka_type_t type) {
  char err[512];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, err,
                        sizeof err) != RD_KAFKA_CONF_OK ||
      (type == RD_KAFKA_CONSUMER &&
       (rd_kafka_conf_set(conf, "group.id", "linli-test-gwk", err,
                          sizeof err) != RD_KAFKA_CONF_OK ||
        rd_kafka_conf_set(conf, "enable.auto.commit", "false", err,
                          sizeof err) != RD_KAFKA_CONF_OK))) {
    rd_kafka_conf_destroy(conf);
    return NULL;
  }
  rd_kafka_t *rk = rd_kafka_new(type, conf, err, sizeof err);
  if (!rk) {
    fprintf(stderr, "rd_kafka_new: %s\n", err);
    rd_kafka_conf_destroy(conf);
  }
  return rk;
}

/* Create topic on the private broker and wait for its leaders; 0 on
 * success. (linli_test_create_topic talks to the shared broker.) */
static int create_topic(const char *topic, int partitions) {
  char err[256];
  rd_kafka_t *rk = client(RD_KAFKA_PRODUCER);
  if (!rk)
    return -1;
  rd_kafka_NewTopic_t *nt =
      rd_kafka_NewTopic_new(topic, partitions, 1, err, sizeof err);
  rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
  rd_kafka_CreateTopics(rk, &nt, 1, NULL, q);
  int rc = -1;
  rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
  if (ev) {
    size_t n = 0;
    const rd_kafka_CreateTopics_result_t *res =
        rd_kafka_event_CreateTopics_result(ev);
    const rd_kafka_topic_result_t **tr =
        res ? rd_kafka_CreateTopics_result_topics(res, &n) : NULL;
    if (!rd_kafka_event_error(ev) && n == 1 &&
        (rd_kafka_topic_result_error(tr[0]) == RD_KAFKA_RESP_ERR_NO_ERROR ||
         rd_kafka_topic_result_error(tr[0]) ==
             RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS))
      rc = 0; /* an earlier test of this suite made it */
    else
      fprintf(stderr, "create topic %s: %s\n", topic,
              rd_kafka_event_error(ev) ? rd_kafka_event_error_string(ev)
              : n == 1 ? rd_kafka_topic_result_error_string(tr[0])
                       : "no result");
    rd_kafka_event_destroy(ev);
  }
  rd_kafka_queue_destroy(q);
  rd_kafka_NewTopic_destroy(nt);
  int ready = 0;
  for (int i = 0; rc == 0 && !ready && i < 100; i++) {
    rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
    const rd_kafka_metadata_t *md = NULL;
    if (rd_kafka_metadata(rk, 0, t, &md, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
      ready = md->topic_cnt == 1 && md->topics[0].err == 0 &&
              md->topics[0].partition_cnt == partitions;
      for (int p = 0; ready && p < md->topics[0].partition_cnt; p++)
        ready = md->topics[0].partitions[p].leader >= 0;
      rd_kafka_metadata_destroy(md);
    }
    rd_kafka_topic_destroy(t);
    if (!ready)
      usleep(100 * 1000);
  }
  rd_kafka_destroy(rk);
  return rc == 0 && ready ? 0 : -1;
}

/* How many records of each key in keys[] the private topic holds (all of
 * it: nobody else writes there); *total counts every record. Reads until
 * the high watermarks are reached. */
static int count_keys(const char *topic, int partitions, const char **keys,
                      int *counts, int nkeys, int *total) {
  rd_kafka_t *rk = client(RD_KAFKA_CONSUMER);
  if (!rk)
    return -1;
  rd_kafka_topic_partition_list_t *l =
      rd_kafka_topic_partition_list_new(partitions);
  int64_t high[16] = {0};
  int rc = 0;
  for (int p = 0; p < partitions && p < 16; p++) {
    int64_t lo = 0;
    if (rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &high[p],
                                         10000) != RD_KAFKA_RESP_ERR_NO_ERROR)
      rc = -1;
    rd_kafka_topic_partition_list_add(l, topic, p)->offset =
        RD_KAFKA_OFFSET_BEGINNING;
  }
  rd_kafka_assign(rk, l);
  rd_kafka_topic_partition_list_destroy(l);
  int64_t next[16] = {0};
  *total = 0;
  memset(counts, 0, sizeof *counts * (size_t)nkeys);
  int64_t end = linli_test_now_ms() + 15000;
  for (;;) {
    int done = 1;
    for (int p = 0; p < partitions; p++)
      done &= next[p] >= high[p];
    if (done || rc != 0 || linli_test_now_ms() > end)
      break;
    rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
    if (!m)
      continue;
    if (!m->err && m->partition >= 0 && m->partition < partitions) {
      next[m->partition] = m->offset + 1;
      (*total)++;
      for (int i = 0; i < nkeys; i++)
        if (m->key_len == strlen(keys[i]) &&
            memcmp(m->key, keys[i], m->key_len) == 0)
          counts[i]++;
    }
    rd_kafka_message_destroy(m);
  }
  for (int p = 0; p < partitions; p++)
    if (next[p] < high[p])
      rc = -1;
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
  return rc;
}

/* Copies (up to max) of the records of key in the private topic, read up
 * to the high watermarks; their number in *n. */
static int records_of(const char *topic, int partitions, const char *key,
                      char **vals, size_t *lens, int max, int *n) {
  rd_kafka_t *rk = client(RD_KAFKA_CONSUMER);
  if (!rk)
    return -1;
  rd_kafka_topic_partition_list_t *l =
      rd_kafka_topic_partition_list_new(partitions);
  int64_t high[16] = {0}, next[16] = {0};
  int rc = 0;
  for (int p = 0; p < partitions && p < 16; p++) {
    int64_t lo = 0;
    if (rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &high[p],
                                         10000) != RD_KAFKA_RESP_ERR_NO_ERROR)
      rc = -1;
    rd_kafka_topic_partition_list_add(l, topic, p)->offset =
        RD_KAFKA_OFFSET_BEGINNING;
  }
  rd_kafka_assign(rk, l);
  rd_kafka_topic_partition_list_destroy(l);
  *n = 0;
  int64_t end = linli_test_now_ms() + 15000;
  for (;;) {
    int done = 1;
    for (int p = 0; p < partitions; p++)
      done &= next[p] >= high[p];
    if (done || rc != 0 || linli_test_now_ms() > end)
      break;
    rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
    if (!m)
      continue;
    if (!m->err && m->partition >= 0 && m->partition < partitions) {
      next[m->partition] = m->offset + 1;
      if (m->key_len == strlen(key) && memcmp(m->key, key, m->key_len) == 0 &&
          *n < max) {
        vals[*n] = malloc(m->len ? m->len : 1);
        memcpy(vals[*n], m->payload, m->len);
        lens[(*n)++] = m->len;
      }
    }
    rd_kafka_message_destroy(m);
  }
  for (int p = 0; p < partitions; p++)
    if (next[p] < high[p])
      rc = -1;
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
  return rc;
}

/* -------------------------------------------------------------- HTTP */

/* One request over a fresh connection (Connection: close), replacing
 * what out held (zero it before its first use). -1 if no answer. */
static int http(const char *method, const char *path, const char *idem,
                const char *body, struct linli_test_resp *out) {
  char key[320] = "";
  if (idem)
    snprintf(key, sizeof key, "Idempotency-Key: %s\r\n", idem);
  return linli_test_http_ex(gport, method, path, TOK_A, idem ? key : NULL,
                            body, body ? strlen(body) : 0, out);
}

static void order_body(char *buf, size_t len, const char *order) {
  snprintf(buf, len,
           "{\"order_id\":\"%s\",\"user_id\":\"u-%s\",\"warehouse_id\":\"W1\","
           "\"lines\":[{\"sku_id\":\"SKU-1\",\"quantity\":1,"
           "\"unit_price_fen\":100}],\"pickup\":{\"pickup_point_id\":\"P1\"}}",
           order, run_id);
}

static int post_order(const char *order, const char *idem, struct linli_test_resp *r) {
  char body[512];
  order_body(body, sizeof body, order);
  return http("POST", "/v1/orders", idem, body, r);
}

/* A JSON string field of a body, into buf ("" if absent). */
static const char *jstr(const char *body, const char *name, char *buf,
                        size_t len) {
  json_error_t e;
  json_t *j = json_loads(body, 0, &e);
  const char *v = json_string_value(json_object_get(j, name));
  snprintf(buf, len, "%s", v ? v : "");
  json_decref(j);
  return buf;
}

/* ----------------------------------------------------------- gateway */

static int start_gateway(void) {
  char bin[512], keys[512], keys_env[600], port_env[64], log[128];
  linli_test_binary_path("producers/gateway/linli-gateway", bin, sizeof bin);
  linli_test_source_path("config/gateway-keys.conf", keys, sizeof keys);
  snprintf(keys_env, sizeof keys_env, "LINLI_GATEWAY_KEYS_FILE=%s", keys);
  snprintf(port_env, sizeof port_env, "LINLI_GATEWAY_PORT=%d", gport);
  snprintf(log, sizeof log, "%s/gateway.log", dir);
  /* gateway.publish_timeout_ms bounds the answer, whatever [kafka] says
   * (its 300 s message.timeout.ms here must not win); a short reconnect
   * backoff lets the gateway find the restarted broker within a second or
   * two. */
  char *env[] = {env_conf,
                 env_bs,
                 keys_env,
                 port_env,
                 "LINLI_METRICS_PORT=-1",
                 "LINLI_GATEWAY_RATE_LIMIT_PER_S=100000",
                 "LINLI_KAFKA_MESSAGE_TIMEOUT_MS=300000",
                 "LINLI_GATEWAY_PUBLISH_TIMEOUT_MS=" TIMEOUT_MS,
                 "LINLI_GATEWAY_DEV_KEYS=true",
                 "LINLI_KAFKA_RECONNECT_BACKOFF_MAX_MS=1000",
                 NULL};
  char *argv[] = {bin, NULL};
  gw_pid = linli_test_spawn_tied(argv, env, log);
  if (gw_pid <= 0)
    return -1;
  int64_t end = linli_test_now_ms() + 20000;
  while (linli_test_now_ms() < end) {
    struct linli_test_resp r = {0};
    int up = http("GET", "/healthz", NULL, NULL, &r) == 0 && r.status == 200;
    linli_test_resp_free(&r);
    if (up)
      return 0;
    int st;
    if (waitpid(gw_pid, &st, WNOHANG) == gw_pid) {
      gw_pid = 0;
      return -1;
    }
    usleep(100 * 1000);
  }
  return -1;
}

/* The last lines of a file in the private folder, for a failure report. */
static void dump_tail(const char *name) {
  char cmd[256];
  snprintf(cmd, sizeof cmd,
           "echo '----- %s/%s -----' >&2; tail -n 30 '%s/%s' >&2", dir, name,
           dir, name);
  if (system(cmd) != 0)
    fprintf(stderr, "(no %s)\n", name);
}

/* ------------------------------------------------------------- suite */

static int suite_init(void) {
  snprintf(run_id, sizeof run_id, "gwk%d-%lld", (int)getpid(),
           (long long)(time(NULL) % 100000));
  snprintf(dir, sizeof dir, "/tmp/linli-gwk-XXXXXX");
  if (!mkdtemp(dir)) {
    dir[0] = '\0';
    return -1;
  }
  kport = pick_ports(30000 + (int)(getpid() % 10000), 2);
  gport = kport > 0 ? pick_ports(kport + 2, 1) : -1;
  if (kport < 0 || gport < 0) {
    rmdir(dir);
    dir[0] = '\0';
    return -1;
  }
  snprintf(bootstrap, sizeof bootstrap, "127.0.0.1:%d", kport);
  snprintf(conf_path, sizeof conf_path, "%s/linli.conf", dir);
  snprintf(env_conf, sizeof env_conf, "LINLI_CONFIG=%s", conf_path);
  snprintf(env_stack, sizeof env_stack, "LINLI_STACK_DIR=%s/stack", dir);
  /* Wins over a LINLI_KAFKA_BOOTSTRAP_SERVERS the test may have inherited. */
  snprintf(env_bs, sizeof env_bs, "LINLI_KAFKA_BOOTSTRAP_SERVERS=%s",
           bootstrap);
  if (write_config() != 0 || start_watchdog() != 0) {
    /* CUnit skips the cleanup of a suite whose init failed. */
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf -- '%s'", dir);
    if (system(cmd) != 0)
      fprintf(stderr, "could not remove %s\n", dir);
    dir[0] = '\0';
    return -1;
  }
  return 0;
}

static int suite_clean(void) {
  int rc = 0;
  if (stopped_broker > 0)
    kill(stopped_broker, SIGCONT);
  if (CU_get_number_of_failures() > 0) {
    dump_tail("gateway.log");
    dump_tail("kafka-sh.log");
    dump_tail("stack/kafka/broker.log");
  }
  if (gw_pid > 0) {
    int st = linli_test_stop(gw_pid, 0);
    gw_pid = 0;
    if (st < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
      fprintf(stderr, "gateway did not exit cleanly (status %d)\n", st);
      rc = -1;
    }
  }
  if (dir[0]) {
    if (kafka_sh("stop") != 0) {
      fprintf(stderr, "kafka.sh stop failed\n");
      dump_tail("kafka-sh.log");
      rc = -1;
    }
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf -- '%s'", dir);
    if (system(cmd) != 0)
      rc = -1;
  }
  if (watchdog_fd >= 0)
    close(watchdog_fd); /* it finds the folder gone and exits */
  watchdog_fd = -1;
  return rc;
}

/* ------------------------------------------------------------- test */

static void test_outage(void) {
  char a[96], b[96], c[96], ka[128], kb[128], path[160];
  snprintf(a, sizeof a, "%s-before", run_id);
  snprintf(b, sizeof b, "%s-during", run_id);
  snprintf(c, sizeof c, "%s-after", run_id);
  snprintf(ka, sizeof ka, "idem-%s", a);
  snprintf(kb, sizeof kb, "idem-%s", b);
  struct linli_test_resp r = {0};

  int64_t t0 = linli_test_now_ms();
  CU_ASSERT_FATAL(kafka_sh("start") == 0);
  fprintf(stderr, "private broker %s up in %lld ms\n", bootstrap,
          (long long)(linli_test_now_ms() - t0));
  CU_ASSERT_FATAL(create_topic(LINLI_TOPIC_ORDERS, 2) == 0);
  CU_ASSERT_FATAL(start_gateway() == 0);

  /* Kafka up: accepted. */
  CU_ASSERT_FATAL(post_order(a, ka, &r) == 0);
  CU_ASSERT_EQUAL_FATAL(r.status, 202);

  /* Kafka stopped: 503 within message.timeout.ms, nothing accepted. */
  CU_ASSERT_FATAL(kafka_sh("stop") == 0);
  CU_ASSERT(!port_open(kport));
  t0 = linli_test_now_ms();
  CU_ASSERT_FATAL(post_order(b, kb, &r) == 0);
  int64_t took = linli_test_now_ms() - t0;
  CU_ASSERT_EQUAL(r.status, 503);
  CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "nothing was written"));
  CU_ASSERT(took >= 2000 && took < 10000);
  fprintf(stderr, "503 after %lld ms with Kafka down\n", (long long)took);
  /* Its claim on the order id was undone: unknown to the gateway. */
  snprintf(path, sizeof path, "/v1/orders/%s", b);
  CU_ASSERT(http("GET", path, NULL, NULL, &r) == 0);
  CU_ASSERT_EQUAL(r.status, 404);
  /* The answer given while Kafka was up still replays, without Kafka. */
  CU_ASSERT(post_order(a, ka, &r) == 0);
  CU_ASSERT_EQUAL(r.status, 202);
  CU_ASSERT_PTR_NOT_NULL(strstr(r.raw, "Idempotent-Replayed: true"));

  /* Kafka back on the same data: the 503'd request, retried with its
   * key, is accepted as new (not replayed, not 409), and so is a new
   * order. A client retries a 503; the gateway reconnects within about a
   * second, so few attempts are needed. */
  t0 = linli_test_now_ms();
  CU_ASSERT_FATAL(kafka_sh("start") == 0);
  fprintf(stderr, "private broker restarted in %lld ms\n",
          (long long)(linli_test_now_ms() - t0));
  int attempts = 0;
  t0 = linli_test_now_ms();
  do {
    attempts++;
    CU_ASSERT_FATAL(post_order(b, kb, &r) == 0);
    CU_ASSERT(r.status == 202 || r.status == 503);
  } while (r.status == 503 && linli_test_now_ms() - t0 < 30000);
  CU_ASSERT_EQUAL(r.status, 202);
  CU_ASSERT_PTR_NULL(strstr(r.raw, "Idempotent-Replayed"));
  fprintf(stderr, "retried request accepted after %d attempt(s), %lld ms\n",
          attempts, (long long)(linli_test_now_ms() - t0));
  CU_ASSERT(post_order(c, NULL, &r) == 0);
  CU_ASSERT_EQUAL(r.status, 202);
  /* A second retry of b now replays the recorded answer. */
  CU_ASSERT(post_order(b, kb, &r) == 0);
  CU_ASSERT_EQUAL(r.status, 202);
  CU_ASSERT_PTR_NOT_NULL(strstr(r.raw, "Idempotent-Replayed: true"));

  /* The broker kept its data, and the outage wrote nothing: each order
   * exactly once, nothing else. */
  const char *keys[] = {a, b, c};
  int counts[3] = {0}, total = 0;
  CU_ASSERT(count_keys(LINLI_TOPIC_ORDERS, 2, keys, counts, 3, &total) == 0);
  CU_ASSERT_EQUAL(counts[0], 1);
  CU_ASSERT_EQUAL(counts[1], 1);
  CU_ASSERT_EQUAL(counts[2], 1);
  CU_ASSERT_EQUAL(total, 3);

  /* Down for good: the broker leaves nothing running. */
  int st = linli_test_stop(gw_pid, 0);
  gw_pid = 0;
  CU_ASSERT(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
  CU_ASSERT(kafka_sh("stop") == 0);
  CU_ASSERT(!port_open(kport));
  CU_ASSERT(!port_open(kport + 1));
  linli_test_resp_free(&r);
}

/* The broker's pid (kafka.sh's pid file), or -1. */
static pid_t broker_pid(void) {
  char path[160];
  snprintf(path, sizeof path, "%s/stack/kafka/kafka.pid", dir);
  FILE *f = fopen(path, "r");
  long pid = -1;
  if (f) {
    if (fscanf(f, "%ld", &pid) != 1)
      pid = -1;
    fclose(f);
  }
  return pid > 1 ? (pid_t)pid : -1;
}

/* A hung broker (SIGSTOP) receives the event but cannot acknowledge it:
 * the answer is 504 outcome_unknown within gateway.publish_timeout_ms (not
 * a "nothing accepted"), the claims stay, and once the broker runs again
 * (SIGCONT) the retry with the same Idempotency-Key publishes the same
 * event: every record of the order in the topic has the same bytes and
 * the event id the 504 named, and the retry's 202 names it too. */
static void test_hung_broker(void) {
  char a[96], ka[128], ev[64], ev2[64];
  snprintf(a, sizeof a, "%s-hung", run_id);
  snprintf(ka, sizeof ka, "idem-%s", a);
  struct linli_test_resp r = {0};
  CU_ASSERT_FATAL(kafka_sh("start") == 0);
  CU_ASSERT_FATAL(create_topic(LINLI_TOPIC_ORDERS, 2) == 0);
  CU_ASSERT_FATAL(start_gateway() == 0);
  /* A first publish: the producer is connected to the partition leader. */
  char warm[96];
  snprintf(warm, sizeof warm, "%s-warm", run_id);
  CU_ASSERT_FATAL(post_order(warm, NULL, &r) == 0);
  CU_ASSERT_EQUAL_FATAL(r.status, 202);

  pid_t bp = broker_pid();
  CU_ASSERT_FATAL(bp > 0);
  CU_ASSERT_FATAL(kill(bp, SIGSTOP) == 0);
  stopped_broker = bp;
  int64_t t0 = linli_test_now_ms();
  CU_ASSERT_FATAL(post_order(a, ka, &r) == 0);
  int64_t took = linli_test_now_ms() - t0;
  fprintf(stderr, "hung broker: %d after %lld ms: %s\n", r.status,
          (long long)took, r.body);
  CU_ASSERT_EQUAL(r.status, 504);
  CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "outcome_unknown"));
  CU_ASSERT_PTR_NULL(strstr(r.body, "retry is safe"));
  CU_ASSERT(took < 10000);
  jstr(r.body, "event_id", ev, sizeof ev);
  CU_ASSERT(ev[0] != '\0');
  CU_ASSERT_FATAL(kill(bp, SIGCONT) == 0);
  stopped_broker = -1;

  /* Retry with the same key until Kafka answers: the same event. */
  int attempts = 0;
  t0 = linli_test_now_ms();
  do {
    attempts++;
    CU_ASSERT_FATAL(post_order(a, ka, &r) == 0);
    CU_ASSERT(r.status == 202 || r.status == 504 || r.status == 503);
    if (r.status != 202)
      usleep(200 * 1000);
  } while (r.status != 202 && linli_test_now_ms() - t0 < 30000);
  CU_ASSERT_EQUAL(r.status, 202);
  jstr(r.body, "event_id", ev2, sizeof ev2);
  CU_ASSERT_STRING_EQUAL(ev2, ev);
  fprintf(stderr, "retry accepted after %d attempt(s): event %s\n",
          attempts, ev2);
  /* And once more: the recorded answer. */
  CU_ASSERT(post_order(a, ka, &r) == 0);
  CU_ASSERT_EQUAL(r.status, 202);
  CU_ASSERT_PTR_NOT_NULL(strstr(r.raw, "Idempotent-Replayed: true"));

  char *vals[8];
  size_t lens[8];
  int n = 0;
  CU_ASSERT(records_of(LINLI_TOPIC_ORDERS, 2, a, vals, lens, 8, &n) == 0);
  fprintf(stderr, "order %s is in the topic %d time(s)\n", a, n);
  CU_ASSERT(n >= 1 && n <= 2);
  for (int i = 0; i < n; i++) {
    CU_ASSERT(lens[i] == lens[0] && memcmp(vals[i], vals[0], lens[0]) == 0);
    int has_id = 0;
    for (size_t o = 0; o + strlen(ev) <= lens[i] && !has_id; o++)
      has_id = memcmp(vals[i] + o, ev, strlen(ev)) == 0;
    CU_ASSERT(has_id);
  }
  for (int i = 0; i < n; i++)
    free(vals[i]);
  int st = linli_test_stop(gw_pid, 0);
  gw_pid = 0;
  CU_ASSERT(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
  CU_ASSERT(kafka_sh("stop") == 0);
  linli_test_resp_free(&r);
}

int linli_test_register(void) {
  CU_pSuite s = CU_add_suite("gateway_kafka", suite_init, suite_clean);
  if (!s)
    return -1;
  CU_add_test(s, "kafka stopped -> 503, accepted again after restart",
              test_outage);
  CU_add_test(s, "kafka hung -> 504 outcome unknown, retry republishes the "
                 "same event", test_hung_broker);
  return 0;
}
