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
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <sodium.h>

#include "linli/error.h"
#include "linli/kafka.h"
#include "linli/pg.h"
#include "domain/schema.h"
#include "domain/topics.h"
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

int linli_test_delete_topic(const char *topic) {
  const linli_config_t *cfg = linli_test_config();
  if (!cfg)
    return -1;
  char err[512];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  rd_kafka_t *rk = NULL;
  if (linli_config_kafka_apply(cfg, conf, err, sizeof err) != LINLI_OK ||
      (rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err)) == NULL) {
    fprintf(stderr, "delete topic: %s\n", err);
    rd_kafka_conf_destroy(conf);
    return -1;
  }
  rd_kafka_DeleteTopic_t *dt = rd_kafka_DeleteTopic_new(topic);
  rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
  rd_kafka_DeleteTopics(rk, &dt, 1, NULL, q);
  int rc = -1;
  rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 10000);
  if (ev != NULL) {
    rc = rd_kafka_event_error(ev) ? -1 : 0;
    rd_kafka_event_destroy(ev);
  }
  rd_kafka_queue_destroy(q);
  rd_kafka_DeleteTopic_destroy(dt);
  rd_kafka_destroy(rk);
  return rc;
}

int linli_test_suffixed_topics(const char *suffix, int del) {
  char path[1024], line[512], name[320];
  linli_test_source_path("config/topics.conf", path, sizeof path);
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return -1;
  int rc = 0;
  while (fgets(line, sizeof line, f) != NULL) {
    int parts = 0;
    char base[192];
    if (line[0] == '#' || sscanf(line, "%191s %d", base, &parts) != 2)
      continue;
    snprintf(name, sizeof name, "%s%s", base, suffix);
    if ((del ? linli_test_delete_topic(name)
             : linli_test_create_topic(name, parts)) != 0)
      rc = -1;
  }
  fclose(f);
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

int linli_test_wait_exit(pid_t pid, int timeout_ms, int *status) {
  int64_t deadline = linli_test_now_ms() + timeout_ms;
  for (;;) {
    if (waitpid(pid, status, WNOHANG) == pid)
      return 0;
    if (linli_test_now_ms() >= deadline)
      return -1;
    usleep(100 * 1000);
  }
}

int linli_test_stop(pid_t pid, int hard) {
  if (pid <= 0)
    return -1;
  kill(pid, hard ? SIGKILL : SIGTERM);
  int status = 0;
  /* up to 60 s for a graceful drain */
  if (linli_test_wait_exit(pid, 60000, &status) == 0)
    return status;
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  return -1;
}

int linli_test_stop_clean(pid_t *pid, const char *what, const char *log) {
  if (*pid <= 0)
    return 1;
  int status = linli_test_stop(*pid, 0);
  *pid = 0;
  int ok = status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
  if (!ok)
    fprintf(stderr, "\n%s exited with status %d: see %s\n", what, status,
            log);
  return ok;
}

int linli_test_replay(char *const args[], const char *out_path) {
  char bin[512];
  linli_test_binary_path("consumers/replay/linli-replay", bin, sizeof bin);
  char *argv[16];
  int a = 0;
  argv[a++] = bin;
  for (int i = 0; args[i] && a < 15; i++)
    argv[a++] = args[i];
  argv[a] = NULL;
  unlink(out_path);
  pid_t pid = linli_test_spawn_tied(argv, NULL, out_path);
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) != pid)
    return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int linli_test_file_contains(const char *path, const char *needle) {
  FILE *f = fopen(path, "r");
  if (!f)
    return 0;
  char line[2048];
  int found = 0;
  while (!found && fgets(line, sizeof line, f))
    found = strstr(line, needle) != NULL;
  fclose(f);
  return found;
}

int linli_test_write_clock(const char *file, int64_t ms) {
  char tmp[1100];
  snprintf(tmp, sizeof tmp, "%s.tmp", file);
  FILE *f = fopen(tmp, "w");
  if (!f)
    return -1;
  fprintf(f, "%lld\n", (long long)ms);
  if (fclose(f) != 0)
    return -1;
  return rename(tmp, file);
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

/* ------------------------------------------------------------------------
 * Shared topics: idempotent creation, group start offsets, incremental
 * readers, fast producing.
 * --------------------------------------------------------------------- */

/* A librdkafka handle configured from the stack's [kafka] section, with
 * extra properties (NULL-terminated name/value pairs). NULL on error. */
static rd_kafka_t *new_handle(rd_kafka_type_t type, const char *const *extra) {
  const linli_config_t *cfg = linli_test_config();
  if (!cfg)
    return NULL;
  char err[512];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  if (linli_config_kafka_apply(cfg, conf, err, sizeof err) != LINLI_OK)
    goto fail;
  for (int i = 0; extra && extra[i]; i += 2)
    if (rd_kafka_conf_set(conf, extra[i], extra[i + 1], err, sizeof err))
      goto fail;
  rd_kafka_t *rk = rd_kafka_new(type, conf, err, sizeof err);
  if (rk)
    return rk;
fail:
  fprintf(stderr, "kafka handle: %s\n", err);
  rd_kafka_conf_destroy(conf);
  return NULL;
}

/* Partition count of topic (0 if it does not exist, -1 on error); with
 * leaders_out, whether every partition has a leader. */
static int topic_partitions(rd_kafka_t *rk, const char *topic,
                            int *leaders_out) {
  rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
  const rd_kafka_metadata_t *md = NULL;
  int n = -1, leaders = 0;
  if (rd_kafka_metadata(rk, 0, t, &md, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
    if (md->topic_cnt == 1) {
      rd_kafka_resp_err_t te = md->topics[0].err;
      if (te == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
        n = 0;
      else if (te == RD_KAFKA_RESP_ERR_NO_ERROR)
        n = md->topics[0].partition_cnt;
      leaders = n > 0;
      for (int p = 0; p < md->topics[0].partition_cnt; p++)
        if (md->topics[0].partitions[p].leader < 0)
          leaders = 0;
    }
    rd_kafka_metadata_destroy(md);
  }
  rd_kafka_topic_destroy(t);
  if (leaders_out)
    *leaders_out = leaders;
  return n;
}

/* Wait for an admin result event on q; 0 when the topic's result is OK or
 * `tolerated`. */
static int admin_result(rd_kafka_queue_t *q, const char *what,
                        const char *topic, rd_kafka_resp_err_t tolerated) {
  rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
  if (!ev) {
    fprintf(stderr, "%s %s: timed out\n", what, topic);
    return -1;
  }
  int rc = -1;
  const rd_kafka_topic_result_t **tr = NULL;
  size_t n = 0;
  if (rd_kafka_event_error(ev)) {
    fprintf(stderr, "%s %s: %s\n", what, topic,
            rd_kafka_event_error_string(ev));
  } else {
    if (rd_kafka_event_type(ev) == RD_KAFKA_EVENT_CREATETOPICS_RESULT)
      tr = rd_kafka_CreateTopics_result_topics(
          rd_kafka_event_CreateTopics_result(ev), &n);
    else if (rd_kafka_event_type(ev) == RD_KAFKA_EVENT_CREATEPARTITIONS_RESULT)
      tr = rd_kafka_CreatePartitions_result_topics(
          rd_kafka_event_CreatePartitions_result(ev), &n);
    if (n == 1 && (rd_kafka_topic_result_error(tr[0]) ==
                       RD_KAFKA_RESP_ERR_NO_ERROR ||
                   rd_kafka_topic_result_error(tr[0]) == tolerated))
      rc = 0;
    else if (n == 1)
      fprintf(stderr, "%s %s: %s\n", what, topic,
              rd_kafka_topic_result_error_string(tr[0]));
  }
  rd_kafka_event_destroy(ev);
  return rc;
}

int linli_test_ensure_topic(const char *topic, int partitions,
                            const char *cleanup_policy) {
  rd_kafka_t *rk = new_handle(RD_KAFKA_PRODUCER, NULL);
  if (!rk)
    return -1;
  char err[512];
  int rc = 0;
  int have = topic_partitions(rk, topic, NULL);
  rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
  if (have == 0) {
    rd_kafka_NewTopic_t *nt =
        rd_kafka_NewTopic_new(topic, partitions, 1, err, sizeof err);
    if (!nt) {
      fprintf(stderr, "create topic %s: %s\n", topic, err);
      rc = -1;
    } else {
      if (cleanup_policy)
        rd_kafka_NewTopic_set_config(nt, "cleanup.policy", cleanup_policy);
      rd_kafka_CreateTopics(rk, &nt, 1, NULL, q);
      rc = admin_result(q, "create topic", topic,
                        RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS);
      rd_kafka_NewTopic_destroy(nt);
    }
  } else if (have > 0 && have < partitions) {
    rd_kafka_NewPartitions_t *np =
        rd_kafka_NewPartitions_new(topic, (size_t)partitions, err, sizeof err);
    if (!np) {
      fprintf(stderr, "grow topic %s: %s\n", topic, err);
      rc = -1;
    } else {
      rd_kafka_CreatePartitions(rk, &np, 1, NULL, q);
      rc = admin_result(q, "grow topic", topic,
                        RD_KAFKA_RESP_ERR_INVALID_PARTITIONS);
      rd_kafka_NewPartitions_destroy(np);
    }
  } else if (have < 0) {
    fprintf(stderr, "ensure topic %s: no metadata\n", topic);
    rc = -1;
  }
  rd_kafka_queue_destroy(q);
  /* Wait until the partitions exist and have leaders (at least as many as
   * asked for: a topic someone made bigger is fine). */
  for (int i = 0; rc == 0 && i < 100; i++) {
    int leaders = 0;
    int n = topic_partitions(rk, topic, &leaders);
    if (n >= partitions && leaders)
      break;
    usleep(100 * 1000);
  }
  rd_kafka_destroy(rk);
  return rc;
}

/* Every partition of the topics, at their current end offsets (high
 * watermarks). NULL on error. */
static rd_kafka_topic_partition_list_t *
end_offsets(rd_kafka_t *rk, const char *const *topics, int from_end) {
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(16);
  for (int i = 0; topics[i]; i++) {
    int n = topic_partitions(rk, topics[i], NULL);
    if (n <= 0) {
      fprintf(stderr, "topic %s: no partitions\n", topics[i]);
      rd_kafka_topic_partition_list_destroy(l);
      return NULL;
    }
    for (int p = 0; p < n; p++) {
      int64_t lo = 0, hi = 0;
      if (from_end) {
        rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(
            rk, topics[i], p, &lo, &hi, 10000);
        if (e) {
          fprintf(stderr, "watermarks %s[%d]: %s\n", topics[i], p,
                  rd_kafka_err2str(e));
          rd_kafka_topic_partition_list_destroy(l);
          return NULL;
        }
      } else {
        hi = RD_KAFKA_OFFSET_BEGINNING;
      }
      rd_kafka_topic_partition_list_add(l, topics[i], p)->offset = hi;
    }
  }
  return l;
}

int linli_test_group_start_at_end(const char *group,
                                  const char *const *topics) {
  const char *extra[] = {"group.id", group, "enable.auto.commit", "false",
                         NULL};
  rd_kafka_t *rk = new_handle(RD_KAFKA_CONSUMER, extra);
  if (!rk)
    return -1;
  int rc = -1;
  rd_kafka_topic_partition_list_t *l = end_offsets(rk, topics, 1);
  if (l) {
    /* A commit outside any group generation: accepted while the group has
     * no members. */
    rd_kafka_resp_err_t e = rd_kafka_commit(rk, l, 0);
    if (e)
      fprintf(stderr, "commit start offsets for %s: %s\n", group,
              rd_kafka_err2str(e));
    else
      rc = 0;
    rd_kafka_topic_partition_list_destroy(l);
  }
  rd_kafka_destroy(rk);
  return rc;
}

struct linli_test_reader {
  rd_kafka_t *rk;
};

linli_test_reader_t *linli_test_reader_new(const char *const *topics,
                                           int from_end) {
  char group[128];
  linli_test_unique("reader", group, sizeof group);
  const char *extra[] = {"group.id",           group,
                         "isolation.level",    "read_committed",
                         "enable.auto.commit", "false",
                         NULL};
  linli_test_reader_t *r = calloc(1, sizeof *r);
  if (!r)
    return NULL;
  r->rk = new_handle(RD_KAFKA_CONSUMER, extra);
  if (!r->rk) {
    free(r);
    return NULL;
  }
  rd_kafka_topic_partition_list_t *l = end_offsets(r->rk, topics, from_end);
  if (!l || rd_kafka_assign(r->rk, l)) {
    if (l)
      rd_kafka_topic_partition_list_destroy(l);
    linli_test_reader_free(r);
    return NULL;
  }
  rd_kafka_topic_partition_list_destroy(l);
  return r;
}

int linli_test_reader_poll(linli_test_reader_t *r, int timeout_ms,
                           linli_test_record_fn cb, void *arg,
                           linli_test_until_fn until) {
  int seen = 0;
  int64_t deadline = linli_test_now_ms() + timeout_ms;
  while (!(until && until(arg)) && linli_test_now_ms() < deadline) {
    rd_kafka_message_t *m = rd_kafka_consumer_poll(r->rk, 50);
    if (!m)
      continue;
    if (!m->err) {
      seen++;
      if (cb)
        cb(arg, m);
    }
    rd_kafka_message_destroy(m);
  }
  return seen;
}

void linli_test_reader_free(linli_test_reader_t *r) {
  if (!r)
    return;
  if (r->rk) {
    rd_kafka_consumer_close(r->rk);
    rd_kafka_destroy(r->rk);
  }
  free(r);
}

static linli_producer_t *batch_producer;

static void free_batch_producer(void) {
  linli_producer_free(batch_producer);
  batch_producer = NULL;
}

static linli_producer_t *get_batch_producer(void) {
  if (batch_producer)
    return batch_producer;
  char err[512];
  const linli_config_t *cfg = linli_test_config();
  if (!cfg || linli_producer_new(cfg, "linli-test-batch", &batch_producer, err,
                                 sizeof err)) {
    fprintf(stderr, "test producer: %s\n", cfg ? err : "no config");
    batch_producer = NULL;
    return NULL;
  }
  atexit(free_batch_producer);
  return batch_producer;
}

int linli_test_produce_at(const char *topic, const char *key,
                          const void *value, size_t len, int32_t *partition,
                          int64_t *offset) {
  linli_producer_t *p = get_batch_producer();
  char err[512];
  if (!p)
    return -1;
  if (linli_producer_send_sync(p, topic, RD_KAFKA_PARTITION_UA, key,
                               key ? strlen(key) : 0, value, len, NULL, 30000,
                               partition, offset, err,
                               sizeof err) != LINLI_OK) {
    fprintf(stderr, "test produce: %s\n", err);
    return -1;
  }
  return 0;
}

struct batch_state {
  size_t failed;
};

static void batch_delivered(void *opaque, rd_kafka_resp_err_t err,
                            int32_t partition, int64_t offset) {
  (void)partition;
  (void)offset;
  struct batch_state *st = opaque;
  if (err)
    st->failed++;
}

int linli_test_produce_batch(const char *topic, size_t n,
                             const char *const *keys,
                             const void *const *values, const size_t *lens) {
  linli_producer_t *p = get_batch_producer();
  if (!p)
    return -1;
  struct batch_state st = {0};
  char err[512];
  for (size_t i = 0; i < n; i++) {
    const char *key = keys ? keys[i] : NULL;
    if (linli_producer_send_async(p, topic, RD_KAFKA_PARTITION_UA, key,
                                  key ? strlen(key) : 0, values[i], lens[i],
                                  NULL, batch_delivered, &st, 30000, err,
                                  sizeof err) != LINLI_OK) {
      fprintf(stderr, "test produce batch: %s\n", err);
      linli_producer_flush(p, 30000);
      return -1;
    }
  }
  if (linli_producer_flush(p, 60000) != LINLI_OK || st.failed) {
    fprintf(stderr, "test produce batch: %zu of %zu not delivered\n",
            st.failed, n);
    return -1;
  }
  return 0;
}

void linli_test_header(const rd_kafka_message_t *m, const char *name,
                       char *out, size_t len) {
  rd_kafka_headers_t *h = NULL;
  const void *v = NULL;
  size_t vlen = 0;
  out[0] = '\0';
  if (rd_kafka_message_headers(m, &h) != RD_KAFKA_RESP_ERR_NO_ERROR ||
      rd_kafka_header_get_last(h, name, &v, &vlen) !=
          RD_KAFKA_RESP_ERR_NO_ERROR || !v)
    return;
  size_t n = vlen < len - 1 ? vlen : len - 1;
  memcpy(out, v, n);
  out[n] = '\0';
}

pid_t linli_test_spawn_tied(char *const argv[], char *const extra_env[],
                            const char *log_path) {
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0)
    return -1;
  if (pid == 0) {
    /* Die with the test; if it is already gone, do not start at all. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
      _exit(127);
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

int linli_test_topic_consumers(const char *topic, const char *client_prefix,
                               char *names, size_t len) {
  if (names && len)
    names[0] = '\0';
  rd_kafka_t *rk = new_handle(RD_KAFKA_PRODUCER, NULL);
  if (!rk)
    return -1;
  int found = -1;
  rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
  rd_kafka_event_t *ev = NULL, *dev = NULL;
  const char **ids = NULL;
  rd_kafka_ListConsumerGroups(rk, NULL, q);
  ev = rd_kafka_queue_poll(q, 15000);
  if (!ev || rd_kafka_event_error(ev))
    goto done;
  size_t n = 0;
  const rd_kafka_ConsumerGroupListing_t **gl =
      rd_kafka_ListConsumerGroups_result_valid(
          rd_kafka_event_ListConsumerGroups_result(ev), &n);
  ids = calloc(n ? n : 1, sizeof *ids);
  if (!ids)
    goto done;
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    rd_kafka_consumer_group_state_t s = rd_kafka_ConsumerGroupListing_state(gl[i]);
    if (s != RD_KAFKA_CONSUMER_GROUP_STATE_EMPTY &&
        s != RD_KAFKA_CONSUMER_GROUP_STATE_DEAD)
      ids[k++] = rd_kafka_ConsumerGroupListing_group_id(gl[i]);
  }
  found = 0;
  if (k == 0)
    goto done;
  rd_kafka_DescribeConsumerGroups(rk, ids, k, NULL, q);
  dev = rd_kafka_queue_poll(q, 15000);
  if (!dev || rd_kafka_event_error(dev)) {
    found = -1;
    goto done;
  }
  size_t m = 0;
  const rd_kafka_ConsumerGroupDescription_t **gd =
      rd_kafka_DescribeConsumerGroups_result_groups(
          rd_kafka_event_DescribeConsumerGroups_result(dev), &m);
  for (size_t i = 0; i < m; i++) {
    int uses = 0;
    size_t mc = rd_kafka_ConsumerGroupDescription_member_count(gd[i]);
    for (size_t j = 0; j < mc && !uses; j++) {
      const rd_kafka_MemberDescription_t *md =
          rd_kafka_ConsumerGroupDescription_member(gd[i], j);
      const char *cid = rd_kafka_MemberDescription_client_id(md);
      if (client_prefix &&
          (!cid || strncmp(cid, client_prefix, strlen(client_prefix)) != 0))
        continue;
      const rd_kafka_MemberAssignment_t *a =
          rd_kafka_MemberDescription_assignment(md);
      const rd_kafka_topic_partition_list_t *pl =
          a ? rd_kafka_MemberAssignment_partitions(a) : NULL;
      for (int p = 0; pl && p < pl->cnt; p++)
        if (strcmp(pl->elems[p].topic, topic) == 0)
          uses = 1;
    }
    if (!uses)
      continue;
    found++;
    if (names && len) {
      size_t used = strlen(names);
      snprintf(names + used, len - used, "%s%s", used ? "," : "",
               rd_kafka_ConsumerGroupDescription_group_id(gd[i]));
    }
  }
done:
  if (dev)
    rd_kafka_event_destroy(dev);
  if (ev)
    rd_kafka_event_destroy(ev);
  free(ids);
  rd_kafka_queue_destroy(q);
  rd_kafka_destroy(rk);
  return found;
}

/* ---------------------------------------------------------------- ledger */

int linli_test_ledger_start_at_end(const char *group) {
  const linli_config_t *cfg = linli_test_config();
  char err[256];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  if (linli_config_kafka_apply(cfg, conf, err, sizeof err) != LINLI_OK) {
    rd_kafka_conf_destroy(conf);
    fprintf(stderr, "ledger start: %s\n", err);
    return -1;
  }
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  if (rk == NULL)
    rd_kafka_conf_destroy(conf);
  linli_pg_t *pg = NULL;
  if (!rk || linli_pg_connect(linli_config_str(cfg, "pg.conninfo"), 10000, &pg,
                              err, sizeof err) != LINLI_OK) {
    fprintf(stderr, "ledger start: %s\n", err);
    if (rk)
      rd_kafka_destroy(rk);
    return -1;
  }
  int rc = 0;
  size_t n = 0;
  const linli_topic_schema_t *topics = linli_schema_topics(&n);
  for (size_t t = 0; t < n && rc == 0; t++) {
    if (strcmp(topics[t].name, LINLI_TOPIC_ORDER_STATUS) == 0)
      continue; /* the ledger writes it, never reads it */
    for (int p = 0; p < 64 && rc == 0; p++) {
      int64_t lo = 0, hi = 0;
      if (rd_kafka_query_watermark_offsets(rk, topics[t].name, p, &lo, &hi,
                                           10000) != RD_KAFKA_RESP_ERR_NO_ERROR)
        break; /* past the last partition */
      char part[16], off[32];
      snprintf(part, sizeof part, "%d", p);
      snprintf(off, sizeof off, "%lld", (long long)hi);
      const char *params[] = {group, topics[t].name, part, off};
      if (linli_pg_exec(pg,
                        "INSERT INTO consumer_offsets (consumer_group, topic, "
                        "partition, next_offset) VALUES ($1, $2, $3, $4) "
                        "ON CONFLICT (consumer_group, topic, partition) DO "
                        "UPDATE SET next_offset = EXCLUDED.next_offset",
                        4, params, NULL, err, sizeof err) != LINLI_OK) {
        fprintf(stderr, "ledger start: %s\n", err);
        rc = -1;
      }
    }
  }
  linli_pg_free(pg);
  rd_kafka_destroy(rk);
  return rc;
}

pid_t linli_test_spawn_ledger(const char *group, const char *instance,
                              const char *log, const char *extra) {
  char path[512], e_group[160], e_inst[160], e_key[128], hex[65];
  unsigned char key[32];
  if (sodium_init() < 0)
    return -1;
  randombytes_buf(key, sizeof key);
  sodium_bin2hex(hex, sizeof hex, key, sizeof key);
  linli_test_binary_path("consumers/ledger/linli-ledger", path, sizeof path);
  snprintf(e_group, sizeof e_group, "LINLI_RUNNER_GROUP=%s", group);
  snprintf(e_inst, sizeof e_inst, "LINLI_RUNNER_INSTANCE_ID=%s", instance);
  snprintf(e_key, sizeof e_key, "LINLI_CRYPTO_KEY=%s", hex);
  char *env[] = {e_group, e_inst, e_key, (char *)"LINLI_METRICS_PORT=0",
                 (char *)extra, NULL};
  char *argv[] = {path, NULL};
  return linli_test_spawn_tied(argv, env, log);
}

/* ---------------------------------------------------------------- vectors */

void *linli_test_vec_push(void **v, size_t *n, size_t *cap, size_t sz) {
  if (*n == *cap) {
    size_t nc = *cap ? *cap * 2 : 64;
    void *nv = realloc(*v, nc * sz);
    if (!nv)
      abort(); /* a test without memory has nothing left to say */
    *v = nv;
    *cap = nc;
  }
  void *e = (char *)*v + (*n)++ * sz;
  memset(e, 0, sz);
  return e;
}
