/*
 * linli_test_consumer.c - a minimal consumer built on libcommon's runner,
 * spawned by tests/integration/test_runner.c to prove the exactly-once
 * rules on the real broker and Redis.
 *
 * Each input value is a decimal amount ("7") or anything else (bad input).
 * An amount is added to a Redis counter under the shard tag through the
 * offset high-water mark, and one output event "<partition>:<offset>:<outcome>:<replayed>"
 * is written to the output topic with a derived id as its key. Bad input
 * goes to the DLQ. LINLI_TEST_CRASH_AFTER=N makes the process SIGKILL
 * itself right after handling its N-th record, i.e. after the Redis effect
 * and before the transaction commits.
 *
 * Environment: LINLI_TEST_IN, LINLI_TEST_OUT, LINLI_TEST_TAG (all required),
 * LINLI_TEST_GROUP (optional), plus the usual LINLI_* config overrides.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "linli/error.h"
#include "linli/ids.h"
#include "linli/kafka.h"
#include "linli/log.h"
#include "linli/process.h"
#include "linli/redis.h"

struct app {
  linli_redis_t *redis;
  linli_redis_script_t *add;
  const char *out_topic;
  const char *tag;
  long crash_after;
  long handled;
};

/* KEYS[3] = counter; ARGV[4] = amount. Outcome: the counter after adding. */
static const char ADD_LUA[] =
    "return tostring(redis.call('INCRBY', KEYS[3], ARGV[4]))";

static int parse_amount(const rd_kafka_message_t *m, long *amount) {
  char buf[32];
  if (!m->payload || m->len == 0 || m->len >= sizeof buf)
    return -1;
  memcpy(buf, m->payload, m->len);
  buf[m->len] = '\0';
  char *end = NULL;
  long v = strtol(buf, &end, 10);
  if (*end != '\0' || v <= 0 || v > 1000000)
    return -1;
  *amount = v;
  return 0;
}

static int handle(void *arg, const rd_kafka_message_t *m, linli_emit_t *emit,
                  char *reason, size_t reasonlen) {
  struct app *a = arg;
  long amount = 0;
  if (parse_amount(m, &amount) != 0) {
    snprintf(reason, reasonlen, "value is not a positive amount (%zu bytes)",
             m->len);
    return LINLI_ERR_INVALID;
  }
  const char *topic = rd_kafka_topic_name(m->rkt);
  char counter[256], amount_s[32], err[512];
  linli_redis_key(counter, sizeof counter, a->tag, "counter");
  snprintf(amount_s, sizeof amount_s, "%ld", amount);
  const char *keys[] = {counter};
  const char *args[] = {amount_s};
  int replayed = 0;
  char *outcome = NULL;
  size_t outlen = 0;
  int rc = linli_redis_eval_hwm(a->redis, a->add, a->tag, topic, m->partition,
                                m->offset, 1, keys, 1, args, NULL, &replayed,
                                &outcome, &outlen, err, sizeof err);
  if (rc != LINLI_OK) {
    snprintf(reason, reasonlen, "redis: %s", err);
    return rc == LINLI_ERR_INVALID ? LINLI_ERR_INVALID : LINLI_ERR_TRANSIENT;
  }
  char id[LINLI_ID_BUFSZ], value[128];
  linli_id_derive(topic, m->partition, m->offset, 0, id, sizeof id);
  int n = snprintf(value, sizeof value, "%d:%lld:%s:%d", (int)m->partition,
                   (long long)m->offset, outcome, replayed);
  free(outcome);
  rc = linli_emit(emit, a->out_topic, RD_KAFKA_PARTITION_UA, id, strlen(id),
                  value, (size_t)n, NULL);
  if (rc != LINLI_OK)
    return rc;
  a->handled++;
  if (a->crash_after > 0 && a->handled >= a->crash_after) {
    LINLI_WARN("crashing on purpose", "handled=%ld", a->handled);
    raise(SIGKILL);
  }
  return LINLI_OK;
}

int main(void) {
  struct app a = {0};
  const char *in = getenv("LINLI_TEST_IN");
  a.out_topic = getenv("LINLI_TEST_OUT");
  a.tag = getenv("LINLI_TEST_TAG");
  if (!in || !a.out_topic || !a.tag) {
    fprintf(stderr, "LINLI_TEST_IN, LINLI_TEST_OUT, LINLI_TEST_TAG needed\n");
    return 2;
  }
  const char *crash = getenv("LINLI_TEST_CRASH_AFTER");
  a.crash_after = crash ? atol(crash) : 0;

  linli_config_t *cfg = NULL;
  if (linli_process_start("test-consumer", NULL, &cfg) != LINLI_OK)
    return 2;
  char err[512];
  int rc = linli_redis_connect(linli_config_str(cfg, "redis.host"),
                               (int)linli_config_int(cfg, "redis.port"),
                               linli_config_str(cfg, "redis.password"), 5000,
                               &a.redis, err, sizeof err);
  if (rc == LINLI_OK)
    rc = linli_redis_script_hwm(a.redis, "test-add", ADD_LUA, &a.add);
  if (rc != LINLI_OK) {
    fprintf(stderr, "redis: %s\n", err);
    linli_redis_free(a.redis);
    linli_process_exit(cfg);
    return 2;
  }
  const char *topics[] = {in, NULL};
  linli_runner_spec_t spec = {
      .name = "test-consumer",
      .group_id = getenv("LINLI_TEST_GROUP"),
      .topics = topics,
      .app = &a,
      .handle = handle,
  };
  linli_runner_t *r = NULL;
  rc = linli_runner_new(cfg, &spec, &r, err, sizeof err);
  if (rc == LINLI_OK) {
    linli_runner_handle_signals(r);
    rc = linli_runner_run(r, err, sizeof err);
  }
  if (rc != LINLI_OK)
    fprintf(stderr, "runner: %s\n", err);
  linli_runner_free(r);
  linli_redis_free(a.redis);
  linli_process_exit(cfg);
  return rc == LINLI_OK ? 0 : 1;
}
