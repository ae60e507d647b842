/*
 * testenv.c - helpers for tests that run against the real stack: the
 * stack's config, unique names, topic creation through the Kafka admin API,
 * and spawning/killing helper processes.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "linli/error.h"
#include "linli/kafka.h"
#include "linli_test.h"

extern char **environ;

static linli_config_t *test_cfg;
static linli_producer_t *test_producer;

static void free_test_producer_wrapper(void) {
  linli_producer_free(test_producer);
  test_producer = NULL;
}

static void free_test_cfg(void) {
  linli_config_free(test_cfg);
  test_cfg = NULL;
}

static const char *env_or(const char *name, const char *dflt) {
  const char *v = getenv(name);
  return v && v[0] ? v : dflt;
}

const char *linli_test_source_path(const char *rel, char *buf, size_t len) {
  snprintf(buf, len, "%s/%s", env_or("LINLI_SOURCE_DIR", "."), rel);
  return buf;
}

const char *linli_test_binary_path(const char *rel, char *buf, size_t len) {
  snprintf(buf, len, "%s/%s", env_or("LINLI_BINARY_DIR", "."), rel);
  return buf;
}

const linli_config_t *linli_test_config(void) {
  if (test_cfg)
    return test_cfg;
  char path[1024], err[1024];
  const char *explicit_path = getenv("LINLI_CONFIG");
  if (!explicit_path || !explicit_path[0])
    explicit_path = linli_test_source_path("config/linli.conf", path,
                                           sizeof path);
  if (linli_config_load(explicit_path, &test_cfg, err, sizeof err) !=
      LINLI_OK) {
    fprintf(stderr, "test config: %s\n", err);
    return NULL;
  }
  atexit(free_test_cfg);
  return test_cfg;
}

const char *linli_test_unique(const char *prefix, char *buf, size_t len) {
  static int counter;
  snprintf(buf, len, "%s-%d-%lld-%d", prefix, (int)getpid(),
           (long long)time(NULL), ++counter);
  return buf;
}

int linli_test_create_topic(const char *topic, int partitions) {
  const linli_config_t *cfg = linli_test_config();
  if (!cfg)
    return -1;
  char err[512];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  if (linli_config_kafka_apply(cfg, conf, err, sizeof err) != LINLI_OK) {
    fprintf(stderr, "create topic: %s\n", err);
    rd_kafka_conf_destroy(conf);
    return -1;
  }
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  if (!rk) {
    fprintf(stderr, "create topic: %s\n", err);
    rd_kafka_conf_destroy(conf);
    return -1;
  }
  rd_kafka_NewTopic_t *nt =
      rd_kafka_NewTopic_new(topic, partitions, 1, err, sizeof err);
  rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
  rd_kafka_CreateTopics(rk, &nt, 1, NULL, q);
  int rc = -1;
  rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
  if (ev) {
    const rd_kafka_CreateTopics_result_t *res =
        rd_kafka_event_CreateTopics_result(ev);
    size_t n = 0;
    const rd_kafka_topic_result_t **tr =
        res ? rd_kafka_CreateTopics_result_topics(res, &n) : NULL;
    if (rd_kafka_event_error(ev)) {
      fprintf(stderr, "create topic %s: %s\n", topic,
              rd_kafka_event_error_string(ev));
    } else if (n == 1 &&
               (rd_kafka_topic_result_error(tr[0]) ==
                    RD_KAFKA_RESP_ERR_NO_ERROR ||
                rd_kafka_topic_result_error(tr[0]) ==
                    RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)) {
      rc = 0;
    } else if (n == 1) {
      fprintf(stderr, "create topic %s: %s\n", topic,
              rd_kafka_topic_result_error_string(tr[0]));
    }
    rd_kafka_event_destroy(ev);
  }
  rd_kafka_queue_destroy(q);
  rd_kafka_NewTopic_destroy(nt);
  /* Wait until the topic's partitions have leaders, so that producers and
   * consumers started right after do not race topic creation. */
  for (int i = 0; rc == 0 && i < 100; i++) {
    rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
    const rd_kafka_metadata_t *md = NULL;
    int ready = 0;
    if (rd_kafka_metadata(rk, 0, t, &md, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
      if (md->topic_cnt == 1 && md->topics[0].err == 0 &&
          md->topics[0].partition_cnt == partitions) {
        ready = 1;
        for (int p = 0; p < md->topics[0].partition_cnt; p++)
          if (md->topics[0].partitions[p].leader < 0)
            ready = 0;
      }
      rd_kafka_metadata_destroy(md);
    }
    rd_kafka_topic_destroy(t);
    if (ready)
      break;
    usleep(100 * 1000);
  }
  rd_kafka_destroy(rk);
  return rc;
}

pid_t linli_test_spawn(char *const argv[], char *const extra_env[],
                       const char *log_path) {
  pid_t pid = fork();
  if (pid < 0)
    return -1;
  if (pid == 0) {
    /* Children read the same config as the test, wherever they run. */
    if (!getenv("LINLI_CONFIG")) {
      char path[1024];
      setenv("LINLI_CONFIG",
             linli_test_source_path("config/linli.conf", path, sizeof path),
             1);
    }
    for (int i = 0; extra_env && extra_env[i]; i++)
      putenv(extra_env[i]);
    if (log_path) {
      int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        close(fd);
      }
    }
    execv(argv[0], argv);
    fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  return pid;
}

int linli_test_stop(pid_t pid, int hard) {
  if (pid <= 0)
    return -1;
  kill(pid, hard ? SIGKILL : SIGTERM);
  int status = 0;
  for (int i = 0; i < 600; i++) { /* up to 60 s for a graceful drain */
    pid_t w = waitpid(pid, &status, WNOHANG);
    if (w == pid)
      return status;
    usleep(100 * 1000);
  }
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  return -1;
}

int64_t linli_test_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int linli_test_read_topic(const char *topic, int expect, int timeout_ms,
                          linli_test_record_fn cb, void *arg) {
  const linli_config_t *cfg = linli_test_config();
  if (!cfg)
    return -1;
  char err[512], group[128];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  linli_test_unique("reader", group, sizeof group);
  if (linli_config_kafka_apply(cfg, conf, err, sizeof err) != LINLI_OK ||
      rd_kafka_conf_set(conf, "group.id", group, err, sizeof err) ||
      rd_kafka_conf_set(conf, "isolation.level", "read_committed", err,
                        sizeof err) ||
      rd_kafka_conf_set(conf, "enable.auto.commit", "false", err,
                        sizeof err)) {
    fprintf(stderr, "read topic: %s\n", err);
    rd_kafka_conf_destroy(conf);
    return -1;
  }
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  if (!rk) {
    rd_kafka_conf_destroy(conf);
    return -1;
  }
  /* Assign every partition explicitly: no group rebalance to wait for. */
  rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
  const rd_kafka_metadata_t *md = NULL;
  int nparts = 0;
  if (rd_kafka_metadata(rk, 0, t, &md, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
    if (md->topic_cnt == 1)
      nparts = md->topics[0].partition_cnt;
    rd_kafka_metadata_destroy(md);
  }
  rd_kafka_topic_destroy(t);
  rd_kafka_topic_partition_list_t *parts =
      rd_kafka_topic_partition_list_new(nparts > 0 ? nparts : 1);
  for (int p = 0; p < nparts; p++)
    rd_kafka_topic_partition_list_add(parts, topic, p)->offset =
        RD_KAFKA_OFFSET_BEGINNING;
  rd_kafka_assign(rk, parts);
  rd_kafka_topic_partition_list_destroy(parts);
  int seen = 0;
  int64_t deadline = linli_test_now_ms() + timeout_ms;
  while (seen < expect && linli_test_now_ms() < deadline) {
    rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
    if (!m)
      continue;
    if (!m->err) {
      seen++;
      if (cb)
        cb(arg, m);
    }
    rd_kafka_message_destroy(m);
  }
  /* Linger briefly to catch records beyond the expected count. */
  int64_t extra = linli_test_now_ms() + (seen >= expect ? 500 : 0);
  while (linli_test_now_ms() < extra) {
    rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
    if (!m)
      continue;
    if (!m->err) {
      seen++;
      if (cb)
        cb(arg, m);
    }
    rd_kafka_message_destroy(m);
  }
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
  return seen;
}

int linli_test_produce(const char *topic, const char *key, const void *value,
                       size_t len) {
  static linli_producer_t *p;
  char err[512];
  if (!p) {
    const linli_config_t *cfg = linli_test_config();
    if (!cfg || linli_producer_new(cfg, "linli-test", &p, err, sizeof err)) {
      fprintf(stderr, "test producer: %s\n", cfg ? err : "no config");
      return -1;
    }
    atexit(free_test_producer_wrapper);
    test_producer = p;
  }
  if (linli_producer_send_sync(p, topic, RD_KAFKA_PARTITION_UA, key,
                               key ? strlen(key) : 0, value, len, NULL, 30000,
                               NULL, NULL, err, sizeof err) != LINLI_OK) {
    fprintf(stderr, "test produce: %s\n", err);
    return -1;
  }
  return 0;
}
