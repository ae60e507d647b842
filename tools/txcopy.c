/*
 * txcopy.c - linli-txcopy: the throughput ceiling for scripts/bench.sh. A
 * transactional consume-produce copy of records from one topic into
 * another, with no Redis and no database: what Kafka and librdkafka alone
 * allow for exactly-once at a given transaction size. A consumer that does
 * real work in the same loop (linli-reserver) can at best approach it.
 *
 *   linli-txcopy [--config FILE] --from IN --into OUT --expect N
 *                [--create PARTITIONS] [--batch B] [--flush-ms MS]
 *                [--timeout S] [-X key=value]...
 *   linli-txcopy [--config FILE] --from IN --into OUT --drop
 *
 * Reads IN from its beginning with isolation.level=read_committed and
 * copies every record (key, value, partition) into OUT, B records per
 * Kafka transaction (default runner.batch_size, as the runner commits),
 * a smaller one when no record came for MS ms (default
 * runner.flush_interval_ms), each transaction carrying its input offsets
 * (send_offsets_to_transaction) like the runner's. The producer gets the
 * same settings as the runner's transactional producer (idempotent,
 * acks=all, transaction.timeout.ms = runner.transaction_timeout_ms); -X
 * sets any other librdkafka producer property, to try client settings.
 *
 * --create P creates IN and OUT with P partitions first (an existing topic
 * is an error: counts must not include old records); with --expect 0 it
 * only creates them (e.g. a topic to measure plain produce). Once it reads
 * IN it prints "ready" on stdout, so that a caller can start producing;
 * after N records it prints one line of key=value: records copied,
 * transactions, first record and last commit times (epoch ms), records/s
 * between them, the mean and longest commit in ms, and its peak RSS. Stops with status 1 on any
 * transaction error or when N records did not come within S seconds
 * (default 300): a benchmark that lost a transaction has no figure.
 *
 * --drop only deletes IN and OUT (a benchmark's topics, once counted).
 *
 * Exit status: 0 done, 1 failed, 2 usage, configuration or connection error.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <librdkafka/rdkafka.h>

#include "linli/clock.h"
#include "linli/config.h"
#include "linli/error.h"
#include "linli/ids.h"
#include "linli/log.h"

#define PROG "linli-txcopy"
#define META_TIMEOUT_MS 10000
#define MAX_X 32

enum { EXIT_FAILED = 1, EXIT_SETUP = 2 };

struct opts {
  const char *config, *from, *into;
  const char *x[MAX_X]; /* "key=value" producer properties */
  int nx;
  long long expect, create, batch, flush_ms, timeout;
  int drop;
};

static volatile sig_atomic_t run = 1;

static void on_signal(int sig) {
  (void)sig;
  run = 0;
}

static void usage(FILE *f) {
  fprintf(f, "usage: " PROG " [--config FILE] --from IN --into OUT "
             "--expect N\n"
             "                    [--create PARTITIONS] [--batch B] "
             "[--flush-ms MS]\n"
             "                    [--timeout S] [-X key=value]...\n"
             "       " PROG " [--config FILE] --from IN --into OUT --drop\n");
}

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

/* ------------------------------------------------------------ clients */

static int set(rd_kafka_conf_t *conf, const char *k, const char *v) {
  char err[512];
  if (rd_kafka_conf_set(conf, k, v, err, sizeof err) == RD_KAFKA_CONF_OK)
    return 0;
  fprintf(stderr, PROG ": %s=%s: %s\n", k, v, err);
  return -1;
}

/* A client with the config's [kafka] section, then extra pairs, then (for
 * the producer) the -X properties. */
static rd_kafka_t *new_client(const linli_config_t *cfg, rd_kafka_type_t type,
                              const char *const *extra, const struct opts *o) {
  char err[512];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  if (linli_config_kafka_apply(cfg, conf, err, sizeof err) != LINLI_OK) {
    fprintf(stderr, PROG ": kafka: %s\n", err);
    goto fail;
  }
  for (int i = 0; extra[i]; i += 2)
    if (set(conf, extra[i], extra[i + 1]) != 0)
      goto fail;
  for (int i = 0; o && i < o->nx; i++) {
    char kv[512];
    snprintf(kv, sizeof kv, "%s", o->x[i]);
    char *eq = strchr(kv, '=');
    *eq = '\0';
    if (set(conf, kv, eq + 1) != 0)
      goto fail;
  }
  rd_kafka_t *rk = rd_kafka_new(type, conf, err, sizeof err);
  if (rk)
    return rk; /* rd_kafka_new took conf */
  fprintf(stderr, PROG ": kafka: %s\n", err);
fail:
  rd_kafka_conf_destroy(conf);
  return NULL;
}

static int create_topics(rd_kafka_t *rk, const struct opts *o) {
  char err[512];
  const char *names[2] = {o->from, o->into};
  rd_kafka_NewTopic_t *nt[2] = {NULL, NULL};
  rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
  int rc = -1;
  for (int i = 0; i < 2; i++) {
    nt[i] = rd_kafka_NewTopic_new(names[i], (int)o->create, -1, err,
                                  sizeof err);
    if (!nt[i]) {
      fprintf(stderr, PROG ": topic %s: %s\n", names[i], err);
      goto done;
    }
  }
  rd_kafka_CreateTopics(rk, nt, 2, NULL, q);
  rd_kafka_event_t *ev = rd_kafka_queue_poll(q, META_TIMEOUT_MS * 3);
  const rd_kafka_CreateTopics_result_t *res =
      ev ? rd_kafka_event_CreateTopics_result(ev) : NULL;
  if (!res) {
    fprintf(stderr, PROG ": creating topics: %s\n",
            ev ? rd_kafka_event_error_string(ev) : "timed out");
  } else {
    size_t n = 0;
    const rd_kafka_topic_result_t **tr = rd_kafka_CreateTopics_result_topics(
        res, &n);
    rc = 0;
    for (size_t i = 0; i < n; i++)
      if (rd_kafka_topic_result_error(tr[i])) {
        fprintf(stderr, PROG ": creating %s: %s\n",
                rd_kafka_topic_result_name(tr[i]),
                rd_kafka_topic_result_error_string(tr[i]));
        rc = -1;
      }
  }
  if (ev)
    rd_kafka_event_destroy(ev);
done:
  for (int i = 0; i < 2; i++)
    if (nt[i])
      rd_kafka_NewTopic_destroy(nt[i]);
  rd_kafka_queue_destroy(q);
  return rc;
}

static int drop_topics(const linli_config_t *cfg, const struct opts *o) {
  const char *none[] = {NULL};
  rd_kafka_t *rk = new_client(cfg, RD_KAFKA_PRODUCER, none, NULL);
  if (!rk)
    return EXIT_SETUP;
  rd_kafka_DeleteTopic_t *dt[2] = {rd_kafka_DeleteTopic_new(o->from),
                                   rd_kafka_DeleteTopic_new(o->into)};
  rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
  rd_kafka_DeleteTopics(rk, dt, 2, NULL, q);
  rd_kafka_event_t *ev = rd_kafka_queue_poll(q, META_TIMEOUT_MS * 3);
  const rd_kafka_DeleteTopics_result_t *res =
      ev ? rd_kafka_event_DeleteTopics_result(ev) : NULL;
  int rc = res ? 0 : EXIT_FAILED;
  if (!res)
    fprintf(stderr, PROG ": deleting topics: %s\n",
            ev ? rd_kafka_event_error_string(ev) : "timed out");
  size_t n = 0;
  const rd_kafka_topic_result_t **tr =
      res ? rd_kafka_DeleteTopics_result_topics(res, &n) : NULL;
  for (size_t i = 0; i < n; i++)
    if (rd_kafka_topic_result_error(tr[i])) {
      fprintf(stderr, PROG ": deleting %s: %s\n",
              rd_kafka_topic_result_name(tr[i]),
              rd_kafka_topic_result_error_string(tr[i]));
      rc = EXIT_FAILED;
    }
  if (ev)
    rd_kafka_event_destroy(ev);
  rd_kafka_DeleteTopic_destroy_array(dt, 2);
  rd_kafka_queue_destroy(q);
  rd_kafka_destroy(rk);
  return rc;
}

/* Partition count of topic (waits for a topic just created), or -1. */
static int partitions_of(rd_kafka_t *rk, const char *topic) {
  int64_t deadline = linli_clock_mono_ms() + META_TIMEOUT_MS * 3;
  do {
    rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
    const rd_kafka_metadata_t *md = NULL;
    int n = -1;
    if (rd_kafka_metadata(rk, 0, t, &md, META_TIMEOUT_MS) ==
            RD_KAFKA_RESP_ERR_NO_ERROR &&
        md->topic_cnt == 1 && !md->topics[0].err)
      n = md->topics[0].partition_cnt;
    if (md)
      rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(t);
    if (n > 0)
      return n;
  } while (linli_clock_mono_ms() < deadline);
  fprintf(stderr, PROG ": topic %s: no partitions\n", topic);
  return -1;
}

/* A transactional call's error: printed, and its status. */
static int txn_failed(const char *what, rd_kafka_error_t *e) {
  if (!e)
    return 0;
  fprintf(stderr, PROG ": %s: %s%s\n", what, rd_kafka_error_string(e),
          rd_kafka_error_txn_requires_abort(e) ? " (abortable)" : "");
  rd_kafka_error_destroy(e);
  return -1;
}

/* ---------------------------------------------------------------- copy */

struct stats {
  long long copied, txns;
  int64_t first_ms, done_ms, commit_ms_sum, commit_ms_max;
};

/* Produce one copy, waiting for queue space like the runner's emit. */
static int copy_one(rd_kafka_t *p, const char *into,
                    const rd_kafka_message_t *m) {
  for (;;) {
    rd_kafka_resp_err_t e = rd_kafka_producev(
        p, RD_KAFKA_V_TOPIC(into), RD_KAFKA_V_PARTITION(m->partition),
        RD_KAFKA_V_KEY(m->key, m->key_len),
        RD_KAFKA_V_VALUE(m->payload, m->len),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
      return 0;
    if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
      fprintf(stderr, PROG ": produce: %s\n", rd_kafka_err2str(e));
      return -1;
    }
    rd_kafka_poll(p, 10);
  }
}

static int copy(rd_kafka_t *c, rd_kafka_t *p, const struct opts *o,
                struct stats *st) {
  rd_kafka_consumer_group_metadata_t *gm =
      rd_kafka_consumer_group_metadata(c);
  rd_kafka_topic_partition_list_t *pos = NULL;
  int64_t deadline = linli_clock_mono_ms() + o->timeout * 1000;
  int rc = -1;
  while (run && st->copied < o->expect) {
    if (linli_clock_mono_ms() > deadline) {
      fprintf(stderr, PROG ": timed out after %lld s: %lld of %lld records\n",
              o->timeout, st->copied, o->expect);
      goto done;
    }
    /* Wait for the first record of the next transaction outside it. */
    rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 100);
    if (!m)
      continue;
    if (txn_failed("begin", rd_kafka_begin_transaction(p))) {
      rd_kafka_message_destroy(m);
      goto done;
    }
    if (!st->first_ms)
      st->first_ms = linli_clock_now_ms();
    pos = rd_kafka_topic_partition_list_new(16);
    long long n = 0;
    int64_t started = linli_clock_mono_ms();
    while (m || (n < o->batch && run)) {
      if (m && m->err) {
        if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
          fprintf(stderr, PROG ": consume: %s\n", rd_kafka_message_errstr(m));
      } else if (m) {
        if (copy_one(p, o->into, m) != 0) {
          rd_kafka_message_destroy(m);
          goto done;
        }
        rd_kafka_topic_partition_t *tp = rd_kafka_topic_partition_list_find(
            pos, rd_kafka_topic_name(m->rkt), m->partition);
        if (!tp)
          tp = rd_kafka_topic_partition_list_add(
              pos, rd_kafka_topic_name(m->rkt), m->partition);
        tp->offset = m->offset + 1;
        n++;
      }
      if (m)
        rd_kafka_message_destroy(m);
      m = NULL;
      if (n >= o->batch || st->copied + n >= o->expect)
        break;
      int64_t left = started + o->flush_ms - linli_clock_mono_ms();
      if (left <= 0)
        break;
      m = rd_kafka_consumer_poll(c, left < 100 ? (int)left : 100);
      rd_kafka_poll(p, 0);
    }
    if (n == 0) {
      if (txn_failed("abort", rd_kafka_abort_transaction(p, -1)))
        goto done;
    } else {
      int64_t t0 = linli_clock_mono_ms();
      if (txn_failed("send offsets",
                     rd_kafka_send_offsets_to_transaction(p, pos, gm, -1)) ||
          txn_failed("commit", rd_kafka_commit_transaction(p, -1)))
        goto done;
      int64_t took = linli_clock_mono_ms() - t0;
      st->commit_ms_sum += took;
      if (took > st->commit_ms_max)
        st->commit_ms_max = took;
      st->copied += n;
      st->txns++;
      st->done_ms = linli_clock_now_ms();
    }
    rd_kafka_topic_partition_list_destroy(pos);
    pos = NULL;
  }
  rc = st->copied >= o->expect ? 0 : -1;
done:
  if (pos)
    rd_kafka_topic_partition_list_destroy(pos);
  rd_kafka_consumer_group_metadata_destroy(gm);
  return rc;
}

/* VmHWM of this process, as the bench reads it from other processes. */
static long peak_rss_kb(void) {
  struct rusage ru;
  return getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : -1;
}

static int txcopy(const linli_config_t *cfg, const struct opts *o) {
  char uniq[LINLI_ID_BUFSZ], group[128], txn_id[128], tmo[32];
  linli_id_new(uniq, sizeof uniq);
  snprintf(group, sizeof group, PROG "-%s", uniq);
  snprintf(txn_id, sizeof txn_id, PROG "-%s", uniq);
  snprintf(tmo, sizeof tmo, "%lld",
           (long long)linli_config_int(cfg, "runner.transaction_timeout_ms"));
  const char *cx[] = {"group.id", group,
                      "isolation.level", "read_committed",
                      "enable.auto.commit", "false",
                      "enable.partition.eof", "false",
                      "auto.offset.reset", "earliest",
                      NULL};
  const char *px[] = {"transactional.id", txn_id,
                      "transaction.timeout.ms", tmo,
                      "enable.idempotence", "true",
                      "acks", "all",
                      NULL};
  rd_kafka_t *c = new_client(cfg, RD_KAFKA_CONSUMER, cx, NULL);
  rd_kafka_t *p = c ? new_client(cfg, RD_KAFKA_PRODUCER, px, o) : NULL;
  rd_kafka_topic_partition_list_t *assign = NULL;
  struct stats st = {0, 0, 0, 0, 0, 0};
  int rc = EXIT_SETUP;
  if (!p)
    goto done;
  rd_kafka_poll_set_consumer(c);
  if (o->create && create_topics(p, o) != 0)
    goto done;
  int parts = partitions_of(c, o->from);
  if (parts <= 0 || partitions_of(c, o->into) < parts) {
    if (parts > 0)
      fprintf(stderr, PROG ": %s has fewer partitions than %s\n", o->into,
              o->from);
    goto done;
  }
  /* All of IN from its beginning, without a group rebalance to wait out;
   * the group id only names the transactions' offsets. */
  assign = rd_kafka_topic_partition_list_new(parts);
  for (int i = 0; i < parts; i++)
    rd_kafka_topic_partition_list_add(assign, o->from, i)->offset =
        RD_KAFKA_OFFSET_BEGINNING;
  rd_kafka_resp_err_t e = rd_kafka_assign(c, assign);
  if (e) {
    fprintf(stderr, PROG ": assign: %s\n", rd_kafka_err2str(e));
    goto done;
  }
  if (txn_failed("init transactions",
                 rd_kafka_init_transactions(p, META_TIMEOUT_MS * 3)))
    goto done;
  if (o->expect == 0) {
    rc = 0; /* created (or found) and readable: nothing to copy */
    goto done;
  }
  printf("ready from=%s into=%s partitions=%d batch=%lld flush_ms=%lld\n",
         o->from, o->into, parts, o->batch, o->flush_ms);
  fflush(stdout);
  rc = copy(c, p, o, &st) == 0 ? 0 : EXIT_FAILED;
  int64_t el = st.done_ms - st.first_ms;
  printf("copied=%lld expected=%lld transactions=%lld batch=%lld "
         "first_ms=%lld done_ms=%lld elapsed_ms=%lld records_per_s=%.0f "
         "commit_ms_mean=%.1f commit_ms_max=%lld peak_rss_kb=%ld\n",
         st.copied, o->expect, st.txns, o->batch, (long long)st.first_ms,
         (long long)st.done_ms, (long long)el,
         el > 0 ? (double)st.copied * 1000.0 / (double)el : 0.0,
         st.txns ? (double)st.commit_ms_sum / (double)st.txns : 0.0,
         (long long)st.commit_ms_max, peak_rss_kb());
done:
  if (assign)
    rd_kafka_topic_partition_list_destroy(assign);
  if (c) {
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
  }
  if (p)
    rd_kafka_destroy(p);
  return rc;
}

/* ---------------------------------------------------------------- main */

int main(int argc, char **argv) {
  static const struct option longopts[] = {
      {"config", required_argument, NULL, 'c'},
      {"from", required_argument, NULL, 'f'},
      {"into", required_argument, NULL, 'i'},
      {"expect", required_argument, NULL, 'e'},
      {"create", required_argument, NULL, 'P'},
      {"batch", required_argument, NULL, 'b'},
      {"flush-ms", required_argument, NULL, 'F'},
      {"timeout", required_argument, NULL, 't'},
      {"drop", no_argument, NULL, 'D'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  struct opts o;
  memset(&o, 0, sizeof o);
  o.expect = -1;
  o.batch = -1;
  o.flush_ms = -1;
  o.timeout = 300;
  int c, bad = 0;
  while ((c = getopt_long(argc, argv, "hX:", longopts, NULL)) != -1) {
    switch (c) {
    case 'c': o.config = optarg; break;
    case 'f': o.from = optarg; break;
    case 'i': o.into = optarg; break;
    case 'e': bad |= parse_num("expect", optarg, 0, 1000000000, &o.expect); break;
    case 'P': bad |= parse_num("create", optarg, 1, 1000, &o.create); break;
    case 'b': bad |= parse_num("batch", optarg, 1, 1000000, &o.batch); break;
    case 'F': bad |= parse_num("flush-ms", optarg, 1, 60000, &o.flush_ms); break;
    case 't': bad |= parse_num("timeout", optarg, 1, 86400, &o.timeout); break;
    case 'X':
      if (o.nx == MAX_X || !strchr(optarg, '=') || optarg[0] == '=' ||
          strlen(optarg) >= 512) {
        fprintf(stderr, PROG ": -X: key=value (at most %d), got '%s'\n",
                MAX_X, optarg);
        bad = 1;
      } else {
        o.x[o.nx++] = optarg;
      }
      break;
    case 'D': o.drop = 1; break;
    case 'h': usage(stdout); return 0;
    default: usage(stderr); return EXIT_SETUP;
    }
  }
  if (bad)
    return EXIT_SETUP;
  if (optind < argc || !o.from || !o.into || (o.expect < 0 && !o.drop)) {
    if (optind < argc)
      fprintf(stderr, PROG ": unexpected argument '%s'\n", argv[optind]);
    else
      fprintf(stderr, PROG ": --from, --into and --expect are required\n");
    usage(stderr);
    return EXIT_SETUP;
  }
  if (strcmp(o.from, o.into) == 0) {
    fprintf(stderr, PROG ": --from and --into name the same topic\n");
    return EXIT_SETUP;
  }

  linli_log_init(PROG, LINLI_LOG_WARN);
  char err[1024];
  linli_config_t *cfg = NULL;
  if (linli_config_load(o.config, &cfg, err, sizeof err) != LINLI_OK) {
    fprintf(stderr, PROG ": %s\n", err);
    return EXIT_SETUP;
  }
  if (o.batch < 0)
    o.batch = linli_config_int(cfg, "runner.batch_size");
  if (o.flush_ms < 0)
    o.flush_ms = linli_config_int(cfg, "runner.flush_interval_ms");
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  int rc = o.drop ? drop_topics(cfg, &o) : txcopy(cfg, &o);
  linli_config_free(cfg);
  return rc;
}
