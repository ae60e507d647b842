/*
 * linli_test_consumer.c - a minimal consumer built on libcommon's runner,
 * spawned by tests/integration/test_runner.c to prove the exactly-once
 * rules on the real broker and Redis.
 *
 * Each input value is a decimal amount ("7") or anything else (bad input).
 * Each batch adds its amounts to a Redis counter under the shard tag in one
 * round trip (a batch HWM script), and one output event
 * "<partition>:<offset>:<outcome>:<effect>" is written to the output topic
 * per record with a derived id as its key. Bad input goes to the DLQ.
 * LINLI_TEST_CRASH_AFTER=N makes the process SIGKILL itself at the end of
 * the batch in which it handled its N-th record: after the Redis round trip
 * and the outputs, before the transaction commits.
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

/* A[1] = amount. Outcome: the shard's counter after adding. */
static const char ADD_LUA[] =
    "apply = function(P, A)\n"
    "  return tostring(redis.call('INCRBY', P .. 'counter', A[1]))\n"
    "end\n";

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

/* The batch contract as a consumer uses it: decide per record (bad input
 * rejected), one Redis round trip for the shard, then the outputs. */
static int handle_batch(void *arg, linli_batch_t *batch, linli_emit_t *emit,
                        char *reason, size_t reasonlen) {
  struct app *a = arg;
  size_t n = linli_batch_count(batch);
  linli_redis_batch_t *rb = NULL;
  int *slot = calloc(n ? n : 1, sizeof *slot);
  int rc = slot ? linli_redis_batch_new(a->add, a->tag, &rb) : LINLI_ERR_NOMEM;
  for (size_t i = 0; rc == LINLI_OK && i < n; i++) {
    const rd_kafka_message_t *m = linli_batch_msg(batch, i);
    long amount = 0;
    slot[i] = -1;
    if (parse_amount(m, &amount) != 0) {
      char why[128];
      snprintf(why, sizeof why, "value is not a positive amount (%zu bytes)",
               m->len);
      linli_batch_reject(batch, i, LINLI_ERR_INVALID, why);
      continue;
    }
    const char *topic = rd_kafka_topic_name(m->rkt);
    char amount_s[32];
    snprintf(amount_s, sizeof amount_s, "%ld", amount);
    const char *args[] = {amount_s};
    slot[i] = linli_redis_batch_add(
        rb, topic, m->partition, m->offset,
        linli_batch_start(batch, topic, m->partition), 1, args, NULL);
    if (slot[i] < 0)
      rc = slot[i];
  }
  char err[512] = "";
  if (rc == LINLI_OK && linli_redis_batch_count(rb) > 0) {
    rc = linli_redis_batch_exec(a->redis, &rb, 1, err, sizeof err);
    const char *msg = NULL;
    if (rc == LINLI_OK && linli_redis_batch_status(rb, &msg) != LINLI_OK) {
      snprintf(err, sizeof err, "%s", msg);
      rc = LINLI_ERR_TRANSIENT;
    }
  }
  for (size_t i = 0; rc == LINLI_OK && i < n; i++) {
    if (slot[i] < 0)
      continue;
    const rd_kafka_message_t *m = linli_batch_msg(batch, i);
    int effect = 0;
    const char *outcome = NULL;
    linli_redis_batch_result(rb, (size_t)slot[i], &effect, &outcome, NULL);
    if (effect == LINLI_REDIS_FORGOTTEN)
      continue; /* applied and committed long ago */
    char id[LINLI_ID_BUFSZ], value[128];
    linli_id_derive(rd_kafka_topic_name(m->rkt), m->partition, m->offset, 0,
                    id, sizeof id);
    int len = snprintf(value, sizeof value, "%d:%lld:%s:%d", (int)m->partition,
                       (long long)m->offset, outcome, effect);
    rc = linli_emit(emit, a->out_topic, RD_KAFKA_PARTITION_UA, id, strlen(id),
                    value, (size_t)len, NULL);
    a->handled++;
  }
  linli_redis_batch_free(rb);
  free(slot);
  if (rc != LINLI_OK) {
    snprintf(reason, reasonlen, "%s", err[0] ? err : linli_strerror(rc));
    return rc == LINLI_ERR_FATAL ? rc : LINLI_ERR_TRANSIENT;
  }
  /* Between the Redis round trip and the Kafka commit. */
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
    rc = linli_redis_script_batch(a.redis, "test-add", ADD_LUA, &a.add);
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
      .handle_batch = handle_batch,
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
