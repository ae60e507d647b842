/*
 * test_runner.c - the consumer runner's exactly-once rules on the real
 * broker and Redis, driven through tests/helpers/linli_test_consumer:
 *  - every input is consumed once and produces exactly one output;
 *  - a consumer SIGKILLed between processing and commit, then restarted,
 *    produces no duplicate output and no duplicate Redis effect;
 *  - a malformed record lands in the DLQ with its reason and coordinates,
 *    and the partition keeps flowing;
 *  - SIGTERM drains and exits 0;
 *  - two live instances sharing an instance id: one is fenced and stops
 *    with a hint, the other consumes every input once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "linli/error.h"
#include "linli/kafka.h"
#include "linli/redis.h"
#include "linli_test.h"

struct outputs {
  int count;
  int by_input[3][1024]; /* outputs naming each input (partition, offset) */
  long max_counter;
};

static void collect_output(void *arg, const rd_kafka_message_t *m) {
  struct outputs *o = arg;
  char buf[128];
  size_t n = m->len < sizeof buf - 1 ? m->len : sizeof buf - 1;
  memcpy(buf, m->payload, n);
  buf[n] = '\0';
  int part = -1, replayed = 0;
  long long off = -1;
  long counter = 0;
  if (sscanf(buf, "%d:%lld:%ld:%d", &part, &off, &counter, &replayed) == 4 &&
      part >= 0 && part < 3 && off >= 0 && off < 1024)
    o->by_input[part][off]++;
  if (counter > o->max_counter)
    o->max_counter = counter;
  o->count++;
}

struct dlq {
  int count;
  char reason[256];
  char source_topic[256];
  char source_offset[32];
  char consumer[64];
};

static void header_str(const rd_kafka_message_t *m, const char *name, char *out,
                       size_t len) {
  rd_kafka_headers_t *h = NULL;
  const void *v = NULL;
  size_t vlen = 0;
  out[0] = '\0';
  if (rd_kafka_message_headers(m, &h) != RD_KAFKA_RESP_ERR_NO_ERROR)
    return;
  if (rd_kafka_header_get_last(h, name, &v, &vlen) !=
      RD_KAFKA_RESP_ERR_NO_ERROR)
    return;
  size_t n = vlen < len - 1 ? vlen : len - 1;
  memcpy(out, v, n);
  out[n] = '\0';
}

static void collect_dlq(void *arg, const rd_kafka_message_t *m) {
  struct dlq *d = arg;
  d->count++;
  header_str(m, LINLI_DLQ_H_REASON, d->reason, sizeof d->reason);
  header_str(m, LINLI_DLQ_H_TOPIC, d->source_topic, sizeof d->source_topic);
  header_str(m, LINLI_DLQ_H_OFFSET, d->source_offset, sizeof d->source_offset);
  header_str(m, LINLI_DLQ_H_CONSUMER, d->consumer, sizeof d->consumer);
}

struct scenario {
  char in[128], out[128], dlq[128], tag[128], group[128];
  char env_in[200], env_out[200], env_dlq[200], env_tag[200], env_group[200];
  char env_batch[64], env_flush[64], env_crash[64], env_inst[128];
  char log[256];
};

static void scenario_init(struct scenario *s, const char *name) {
  char base[96];
  linli_test_unique(name, base, sizeof base);
  snprintf(s->in, sizeof s->in, "t.%s.in", base);
  snprintf(s->out, sizeof s->out, "t.%s.out", base);
  snprintf(s->dlq, sizeof s->dlq, "t.%s.dlq", base);
  snprintf(s->tag, sizeof s->tag, "t:%s", base);
  snprintf(s->group, sizeof s->group, "g-%s", base);
  snprintf(s->env_in, sizeof s->env_in, "LINLI_TEST_IN=%s", s->in);
  snprintf(s->env_out, sizeof s->env_out, "LINLI_TEST_OUT=%s", s->out);
  snprintf(s->env_dlq, sizeof s->env_dlq, "LINLI_RUNNER_DLQ_TOPIC=%s", s->dlq);
  snprintf(s->env_tag, sizeof s->env_tag, "LINLI_TEST_TAG=%s", s->tag);
  snprintf(s->env_group, sizeof s->env_group, "LINLI_TEST_GROUP=%s", s->group);
  snprintf(s->env_inst, sizeof s->env_inst, "LINLI_RUNNER_INSTANCE_ID=%s",
           base);
  snprintf(s->log, sizeof s->log, "/tmp/%s.log", base);
  snprintf(s->env_batch, sizeof s->env_batch, "LINLI_RUNNER_BATCH_SIZE=20");
  snprintf(s->env_flush, sizeof s->env_flush,
           "LINLI_RUNNER_FLUSH_INTERVAL_MS=200");
  s->env_crash[0] = '\0';
  CU_ASSERT_EQUAL_FATAL(linli_test_create_topic(s->in, 3), 0);
  CU_ASSERT_EQUAL_FATAL(linli_test_create_topic(s->out, 3), 0);
  CU_ASSERT_EQUAL_FATAL(linli_test_create_topic(s->dlq, 1), 0);
}

static pid_t scenario_spawn(struct scenario *s) {
  char path[512];
  linli_test_binary_path("tests/linli_test_consumer", path, sizeof path);
  char *argv[] = {path, NULL};
  char *env[] = {s->env_in,    s->env_out,   s->env_dlq,  s->env_tag,
                 s->env_group, s->env_batch, s->env_flush, s->env_inst,
                 s->env_crash[0] ? s->env_crash : NULL, NULL};
  return linli_test_spawn_tied(argv, env, s->log);
}

static long redis_counter(const char *tag) {
  const linli_config_t *cfg = linli_test_config();
  linli_redis_t *r = NULL;
  char err[256], key[256];
  if (linli_redis_connect(linli_config_str(cfg, "redis.host"),
                          (int)linli_config_int(cfg, "redis.port"),
                          linli_config_str(cfg, "redis.password"), 5000, &r,
                          err, sizeof err) != LINLI_OK)
    return -1;
  linli_redis_key(key, sizeof key, tag, "counter");
  const char *argv[] = {"GET", key};
  redisReply *reply = NULL;
  long v = -1;
  if (linli_redis_command(r, 2, argv, NULL, &reply) == LINLI_OK && reply) {
    if (reply->type == REDIS_REPLY_STRING)
      v = atol(reply->str);
    freeReplyObject(reply);
  }
  linli_redis_free(r);
  return v;
}

static void produce_amounts(const char *topic, int from, int n, int amount) {
  for (int i = from; i < from + n; i++) {
    char key[32], val[32];
    snprintf(key, sizeof key, "k%d", i);
    int len = snprintf(val, sizeof val, "%d", amount);
    CU_ASSERT_EQUAL_FATAL(linli_test_produce(topic, key, val, (size_t)len), 0);
  }
}

static int all_once(const struct outputs *o, int n) {
  /* Every input (partition, offset) named by exactly one output, and as
   * many inputs as were produced. */
  int total = 0;
  for (int p = 0; p < 3; p++)
    for (int i = 0; i < 1024; i++) {
      if (o->by_input[p][i] > 1)
        return 0;
      total += o->by_input[p][i];
    }
  return total == n;
}

static void test_consumed_once(void) {
  struct scenario s;
  scenario_init(&s, "once");
  produce_amounts(s.in, 0, 60, 1);
  pid_t pid = scenario_spawn(&s);
  CU_ASSERT_FATAL(pid > 0);
  struct outputs *o = calloc(1, sizeof *o);
  int n = linli_test_read_topic(s.out, 60, 60000, collect_output, o);
  CU_ASSERT_EQUAL(n, 60);
  CU_ASSERT(all_once(o, 60));
  /* Graceful drain: SIGTERM exits 0. */
  int status = linli_test_stop(pid, 0);
  CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  CU_ASSERT_EQUAL(redis_counter(s.tag), 60);
  free(o);
}

static void test_sigkill_before_commit(void) {
  struct scenario s;
  scenario_init(&s, "kill");
  produce_amounts(s.in, 0, 600, 2);
  /* One batch of 600 (the flush interval never cuts it short): the process
   * dies after the batch's Redis round trip and its 600 produced,
   * uncommitted outputs. */
  snprintf(s.env_batch, sizeof s.env_batch, "LINLI_RUNNER_BATCH_SIZE=600");
  snprintf(s.env_flush, sizeof s.env_flush,
           "LINLI_RUNNER_FLUSH_INTERVAL_MS=60000");
  snprintf(s.env_crash, sizeof s.env_crash, "LINLI_TEST_CRASH_AFTER=600");
  pid_t pid = scenario_spawn(&s);
  CU_ASSERT_FATAL(pid > 0);
  int status = 0;
  linli_test_wait_exit(pid, 90000, &status);
  CU_ASSERT_FATAL(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  /* The effects happened in Redis before the crash ... */
  CU_ASSERT_EQUAL(redis_counter(s.tag), 1200);

  /* ... and the restarted instance (same instance id: it fences the dead
   * one's transaction) must neither repeat them nor duplicate outputs. */
  s.env_crash[0] = '\0';
  snprintf(s.env_batch, sizeof s.env_batch, "LINLI_RUNNER_BATCH_SIZE=20");
  snprintf(s.env_flush, sizeof s.env_flush,
           "LINLI_RUNNER_FLUSH_INTERVAL_MS=200");
  pid = scenario_spawn(&s);
  CU_ASSERT_FATAL(pid > 0);
  struct outputs *o = calloc(1, sizeof *o);
  int n = linli_test_read_topic(s.out, 600, 90000, collect_output, o);
  CU_ASSERT_EQUAL(n, 600);
  CU_ASSERT(all_once(o, 600));
  CU_ASSERT_EQUAL(o->max_counter, 1200);
  CU_ASSERT_EQUAL(redis_counter(s.tag), 1200);
  status = linli_test_stop(pid, 0);
  CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  free(o);
}

static void test_bad_input_to_dlq(void) {
  struct scenario s;
  scenario_init(&s, "dlq");
  /* One partition's worth of keys is enough: same key, same partition. */
  CU_ASSERT_EQUAL_FATAL(linli_test_produce(s.in, "same", "5", 1), 0);
  CU_ASSERT_EQUAL_FATAL(linli_test_produce(s.in, "same", "\xff\x00garbage", 9),
                        0);
  CU_ASSERT_EQUAL_FATAL(linli_test_produce(s.in, "same", "7", 1), 0);
  pid_t pid = scenario_spawn(&s);
  CU_ASSERT_FATAL(pid > 0);
  struct outputs *o = calloc(1, sizeof *o);
  int n = linli_test_read_topic(s.out, 2, 60000, collect_output, o);
  CU_ASSERT_EQUAL(n, 2); /* the record after the bad one still flowed */
  struct dlq d = {0};
  int nd = linli_test_read_topic(s.dlq, 1, 30000, collect_dlq, &d);
  CU_ASSERT_EQUAL(nd, 1);
  CU_ASSERT_STRING_EQUAL(d.source_topic, s.in);
  CU_ASSERT_STRING_EQUAL(d.source_offset, "1");
  CU_ASSERT_STRING_EQUAL(d.consumer, "test-consumer");
  CU_ASSERT(strstr(d.reason, "not a positive amount") != NULL);
  int status = linli_test_stop(pid, 0);
  CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  CU_ASSERT_EQUAL(redis_counter(s.tag), 12);
  free(o);
}

/* Two live instances with one runner.instance_id share a transactional.id:
 * the second to start fences the first, which stops (a zombie must not go
 * on) and says why and what to change; the one left consumes everything,
 * each input once, and the fenced one's open transaction never shows. */
static void test_shared_instance_id(void) {
  struct scenario a, b;
  scenario_init(&a, "fence");
  produce_amounts(a.in, 0, 60, 1);
  pid_t pa = scenario_spawn(&a);
  CU_ASSERT_FATAL(pa > 0);
  struct outputs *o = calloc(1, sizeof *o);
  CU_ASSERT_EQUAL_FATAL(linli_test_read_topic(a.out, 60, 60000,
                                              collect_output, o),
                        60);
  free(o);
  b = a; /* same topics, group and instance id; its own log */
  size_t loglen = strlen(a.log);
  CU_ASSERT_FATAL(loglen + sizeof ".2" <= sizeof b.log);
  memcpy(b.log + loglen, ".2", sizeof ".2");
  pid_t pb = scenario_spawn(&b);
  CU_ASSERT_FATAL(pb > 0);
  /* Input for every partition until one of the two has stopped. */
  int status = 0, produced = 60;
  pid_t gone = 0;
  for (int round = 0; round < 60 && gone == 0; round++) {
    produce_amounts(a.in, produced, 6, 1);
    produced += 6;
    if (linli_test_wait_exit(pa, 1000, &status) == 0)
      gone = pa;
    else if (linli_test_wait_exit(pb, 1, &status) == 0)
      gone = pb;
  }
  CU_ASSERT_FATAL(gone != 0);
  CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) != 0);
  const char *log = gone == pa ? a.log : b.log;
  CU_ASSERT(linli_test_file_contains(log, "fenced by another producer"));
  CU_ASSERT(linli_test_file_contains(
      log, "every live instance needs its own runner.instance_id"));
  pid_t left = gone == pa ? pb : pa;
  o = calloc(1, sizeof *o);
  CU_ASSERT_EQUAL(linli_test_read_topic(a.out, produced, 90000,
                                        collect_output, o),
                  produced);
  CU_ASSERT(all_once(o, produced));
  free(o);
  CU_ASSERT_EQUAL(redis_counter(a.tag), produced);
  status = linli_test_stop(left, 0);
  CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

int linli_test_register(void) {
  CU_pSuite s = CU_add_suite("runner (real broker)", NULL, NULL);
  if (!s)
    return -1;
  CU_add_test(s, "consumed once", test_consumed_once);
  CU_add_test(s, "SIGKILL before commit: no duplicates", test_sigkill_before_commit);
  CU_add_test(s, "bad input goes to the DLQ", test_bad_input_to_dlq);
  CU_add_test(s, "two live instances, one instance id",
              test_shared_instance_id);
  return 0;
}
