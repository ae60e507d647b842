/*
 * kafka_runner.c - the consume-transform-produce loop behind every linli
 * consumer: DESIGN.md's exactly-once rules implemented once.
 *
 * One transaction covers a batch of input records: the handler's output
 * events, DLQ records for bad input, and the batch's input offsets
 * (send_offsets_to_transaction) commit together or not at all. On an abort
 * the partitions are rewound to where the batch started, so the records are
 * processed again; handlers make that safe (Redis effects go through the
 * offset high-water mark, outputs carry derived event ids).
 *
 * The transactional.id is "linli-<name>-<instance>" and must be stable
 * across restarts of one instance: init_transactions() then fences a
 * crashed predecessor and aborts its open transaction at once, instead of
 * leaving read_committed readers stuck behind it until the transaction
 * times out. Two live instances must have different runner.instance_id.
 */
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kafka_internal.h"
#include "linli/clock.h"
#include "linli/error.h"
#include "linli/kafka.h"
#include "linli/log.h"
#include "linli/metrics.h"

#define RUNNER_API_TIMEOUT_MS 30000

struct linli_emit {
  linli_runner_t *r;
};

struct linli_batch {
  linli_runner_t *r;
  rd_kafka_message_t **msgs; /* owned until the batch is done */
  size_t n, cap;
  int *verdict;              /* per record: LINLI_OK or the reject code */
  char **reason;             /* per record: malloc'd reject reason or NULL */
};

struct linli_runner {
  linli_runner_spec_t spec;
  const linli_config_t *cfg;
  char group[256];
  char instance[128];
  char txn_id[320];
  char dlq_topic[256];
  int batch_size;
  int flush_ms;
  int tick_ms;
  int backoff_ms;
  int txn_timeout_ms;

  rd_kafka_t *consumer;
  rd_kafka_t *producer;      /* NULL with an external offset store */
  struct linli_emit emit;
  struct linli_batch batch;  /* the records collected for the next batch */
  long fault_kill_at, fault_commits; /* see fault_before_commit */
  int64_t collect_started_ms;

  volatile sig_atomic_t stop;
  int fatal;
  char fatal_reason[1024];

  int txn_open;
  int batch_count;
  /* Per partition touched in the open transaction: .offset = the first
   * offset consumed (where to rewind on abort); the parallel list `next`
   * holds last processed + 1 (what to commit). */
  rd_kafka_topic_partition_list_t *start;
  rd_kafka_topic_partition_list_t *next;

  linli_counter_t *m_consumed;
  linli_counter_t *m_dlq;
  linli_counter_t *m_produced;
  linli_counter_t *m_commits;
  linli_counter_t *m_aborts;
  linli_counter_t *m_retries;
  linli_histogram_t *m_commit_s;
  linli_histogram_t *m_batch_records;
  linli_gauge_t *m_assigned;
};

static linli_runner_t *signal_runner;

static void runner_signal(int sig) {
  (void)sig;
  if (signal_runner)
    signal_runner->stop = 1;
}

void linli_runner_stop(linli_runner_t *r) { r->stop = 1; }

void linli_runner_handle_signals(linli_runner_t *r) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = runner_signal;
  sigemptyset(&sa.sa_mask);
  signal_runner = r;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
}

const char *linli_runner_instance(const linli_runner_t *r) {
  return r->instance;
}

/* what went wrong and why; code is Kafka's error code when there is one
 * (RD_KAFKA_RESP_ERR_NO_ERROR otherwise), which tells fencing apart. */
static void set_fatal(linli_runner_t *r, const char *what, const char *why,
                      rd_kafka_resp_err_t code) {
  if (r->fatal)
    return;
  r->fatal = 1;
  snprintf(r->fatal_reason, sizeof r->fatal_reason, "%s: %s", what, why);
  LINLI_ERROR("runner fatal", "consumer=%s what=\"%s\" reason=\"%s\"",
              r->spec.name, what, why);
  /* Fencing is right when this process is a zombie its restart replaced;
   * two live instances sharing one id fence each other for ever. */
  if (code == RD_KAFKA_RESP_ERR__FENCED ||
      code == RD_KAFKA_RESP_ERR_PRODUCER_FENCED ||
      code == RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH)
    LINLI_ERROR("fenced by another producer with this transactional.id",
                "transactional_id=%s hint=\"every live instance needs its own "
                "runner.instance_id (default: the host name)\"",
                r->txn_id);
}

/* -------------------------------------------------------- offset tracking */

static rd_kafka_topic_partition_t *
find_part(rd_kafka_topic_partition_list_t *l, const char *topic, int32_t p) {
  return rd_kafka_topic_partition_list_find(l, topic, p);
}

static void track_start(linli_runner_t *r, const rd_kafka_message_t *m) {
  const char *topic = rd_kafka_topic_name(m->rkt);
  if (!find_part(r->start, topic, m->partition))
    rd_kafka_topic_partition_list_add(r->start, topic, m->partition)->offset =
        m->offset;
}

static void track_done(linli_runner_t *r, const rd_kafka_message_t *m) {
  const char *topic = rd_kafka_topic_name(m->rkt);
  rd_kafka_topic_partition_t *n = find_part(r->next, topic, m->partition);
  if (!n)
    n = rd_kafka_topic_partition_list_add(r->next, topic, m->partition);
  n->offset = m->offset + 1;
}

static void reset_tracking(linli_runner_t *r) {
  rd_kafka_topic_partition_list_destroy(r->start);
  rd_kafka_topic_partition_list_destroy(r->next);
  r->start = rd_kafka_topic_partition_list_new(16);
  r->next = rd_kafka_topic_partition_list_new(16);
  r->batch_count = 0;
}

/* ------------------------------------------------------------ transactions */

static int txn_begin(linli_runner_t *r) {
  if (r->txn_open)
    return LINLI_OK;
  rd_kafka_error_t *e =
      r->producer ? rd_kafka_begin_transaction(r->producer) : NULL;
  if (e) {
    set_fatal(r, "begin_transaction", rd_kafka_error_string(e),
              rd_kafka_error_code(e));
    rd_kafka_error_destroy(e);
    return LINLI_ERR_FATAL;
  }
  r->txn_open = 1;
  reset_tracking(r);
  return LINLI_OK;
}

/*
 * Abort the open transaction and, if rewind, seek every partition touched
 * by it back to the batch's first offset so those records come again.
 */
static void txn_abort(linli_runner_t *r, int rewind) {
  if (!r->txn_open)
    return;
  /* A timed-out abort is still in progress inside librdkafka: retry it
   * (the call resumes the same abort) before anything else begins. */
  rd_kafka_error_t *e = NULL;
  for (int attempt = 0; r->producer; attempt++) {
    e = rd_kafka_abort_transaction(r->producer, RUNNER_API_TIMEOUT_MS);
    if (!e || !rd_kafka_error_is_retriable(e) || attempt >= 10)
      break;
    LINLI_WARN("abort_transaction retried", "consumer=%s reason=\"%s\"",
               r->spec.name, rd_kafka_error_string(e));
    rd_kafka_error_destroy(e);
  }
  if (e) {
    /* Neither fatal nor retriable means the abort cannot complete: the
     * next begin_transaction would fail, so stop and let a restart fence
     * this producer. */
    set_fatal(r, "abort_transaction", rd_kafka_error_string(e),
              rd_kafka_error_code(e));
    rd_kafka_error_destroy(e);
  }
  r->txn_open = 0;
  linli_counter_add(r->m_aborts, 1);
  if (r->spec.on_abort)
    r->spec.on_abort(r->spec.app);
  if (rewind && r->start->cnt > 0) {
    rd_kafka_error_t *se =
        rd_kafka_seek_partitions(r->consumer, r->start, RUNNER_API_TIMEOUT_MS);
    if (se) {
      set_fatal(r, "seek after abort", rd_kafka_error_string(se),
                rd_kafka_error_code(se));
      rd_kafka_error_destroy(se);
    } else {
      for (int i = 0; i < r->start->cnt; i++) {
        rd_kafka_topic_partition_t *p = &r->start->elems[i];
        if (p->err == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION ||
            p->err == RD_KAFKA_RESP_ERR__STATE) {
          /* Not assigned any more: the new owner reads it from the
           * committed offset, which this transaction never moved. */
          LINLI_INFO("rewind skipped", "topic=%s partition=%d reason=\"%s\"",
                     p->topic, (int)p->partition, rd_kafka_err2str(p->err));
        } else if (p->err) {
          /* Still ours but not rewound: going on would commit offsets past
           * the aborted records. Stop; a restart reads from the commit. */
          set_fatal(r, "seek after abort", rd_kafka_err2str(p->err), p->err);
        }
      }
    }
  }
  reset_tracking(r);
}

/* Commit the open transaction with the batch's offsets. On an abortable
 * error the batch is aborted and rewound; LINLI_OK only when committed. */
static int txn_commit(linli_runner_t *r) {
  if (!r->txn_open)
    return LINLI_OK;
  int64_t t0 = linli_clock_mono_ms();
  rd_kafka_error_t *e = NULL;
  if (!r->producer)
    goto committed; /* the handler committed its own store */
  if (r->next->cnt > 0) {
    rd_kafka_consumer_group_metadata_t *md =
        rd_kafka_consumer_group_metadata(r->consumer);
    e = rd_kafka_send_offsets_to_transaction(r->producer, r->next, md,
                                             RUNNER_API_TIMEOUT_MS);
    rd_kafka_consumer_group_metadata_destroy(md);
  }
  for (int attempt = 0; !e; attempt++) {
    e = rd_kafka_commit_transaction(r->producer, RUNNER_API_TIMEOUT_MS);
    if (!e)
      break;
    if (rd_kafka_error_is_retriable(e) && attempt < 5) {
      rd_kafka_error_destroy(e);
      e = NULL;
      continue;
    }
  }
  if (e) {
    if (rd_kafka_error_is_fatal(e)) {
      set_fatal(r, "commit_transaction", rd_kafka_error_string(e),
                rd_kafka_error_code(e));
      rd_kafka_error_destroy(e);
      r->txn_open = 0;
      return LINLI_ERR_FATAL;
    }
    LINLI_WARN("transaction aborted", "consumer=%s reason=\"%s\"",
               r->spec.name, rd_kafka_error_string(e));
    rd_kafka_error_destroy(e);
    txn_abort(r, 1);
    return LINLI_ERR_TRANSIENT;
  }
committed:
  r->txn_open = 0;
  linli_counter_add(r->m_commits, 1);
  linli_histogram_observe(r->m_commit_s,
                          (double)(linli_clock_mono_ms() - t0) / 1000.0);
  LINLI_DEBUG("transaction committed", "consumer=%s records=%d partitions=%d",
              r->spec.name, r->batch_count, r->next->cnt);
  reset_tracking(r);
  if (r->spec.on_commit)
    r->spec.on_commit(r->spec.app);
  return LINLI_OK;
}

/* ------------------------------------------------------------------- emit */

int linli_emit(linli_emit_t *e, const char *topic, int32_t partition,
               const void *key, size_t keylen, const void *value,
               size_t vallen, rd_kafka_headers_t *hdrs) {
  linli_runner_t *r = e->r;
  int64_t deadline = linli_clock_mono_ms() + 10000;
  for (;;) {
    rd_kafka_resp_err_t err = rd_kafka_producev(
        r->producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
        RD_KAFKA_V_KEY(key, keylen), RD_KAFKA_V_VALUE((void *)value, vallen),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(hdrs),
        RD_KAFKA_V_END);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      linli_counter_add(r->m_produced, 1);
      return LINLI_OK;
    }
    if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL &&
        linli_clock_mono_ms() < deadline) {
      rd_kafka_poll(r->producer, 50);
      continue;
    }
    if (hdrs)
      rd_kafka_headers_destroy(hdrs);
    LINLI_WARN("emit failed", "consumer=%s topic=%s reason=\"%s\"",
               r->spec.name, topic, rd_kafka_err2str(err));
    return LINLI_ERR_TRANSIENT;
  }
}

int linli_emit_message(linli_emit_t *e, const char *topic, int32_t partition,
                       const char *key, const ProtobufCMessage *msg) {
  size_t len = protobuf_c_message_get_packed_size(msg);
  uint8_t *buf = malloc(len ? len : 1);
  if (!buf)
    return LINLI_ERR_TRANSIENT;
  protobuf_c_message_pack(msg, buf);
  int rc = linli_emit(e, topic, partition, key, strlen(key), buf, len, NULL);
  free(buf);
  return rc;
}

static int emit_dlq(linli_runner_t *r, const rd_kafka_message_t *m, int code,
                    const char *reason) {
  char part[16], off[32];
  snprintf(part, sizeof part, "%d", (int)m->partition);
  snprintf(off, sizeof off, "%lld", (long long)m->offset);
  const char *topic = rd_kafka_topic_name(m->rkt);
  rd_kafka_headers_t *h = rd_kafka_headers_new(6);
  rd_kafka_header_add(h, LINLI_DLQ_H_TOPIC, -1, topic, -1);
  rd_kafka_header_add(h, LINLI_DLQ_H_PARTITION, -1, part, -1);
  rd_kafka_header_add(h, LINLI_DLQ_H_OFFSET, -1, off, -1);
  rd_kafka_header_add(h, LINLI_DLQ_H_CONSUMER, -1, r->spec.name, -1);
  rd_kafka_header_add(h, LINLI_DLQ_H_ERROR, -1, linli_strerror(code), -1);
  rd_kafka_header_add(h, LINLI_DLQ_H_REASON, -1, reason, -1);
  LINLI_WARN("record sent to DLQ",
             "consumer=%s topic=%s partition=%d offset=%lld reason=\"%s\"",
             r->spec.name, topic, (int)m->partition, (long long)m->offset,
             reason);
  int rc = linli_emit(&r->emit, r->dlq_topic, RD_KAFKA_PARTITION_UA, m->key,
                      m->key_len, m->payload, m->len, h);
  if (rc == LINLI_OK)
    linli_counter_add(r->m_dlq, 1);
  return rc;
}

/* -------------------------------------------------------------- rebalance */

/* Forget collected records of partitions this instance no longer owns:
 * nothing was applied for them yet, and their new owner reads them from the
 * committed offset. */
static void drop_collected(linli_runner_t *r,
                           const rd_kafka_topic_partition_list_t *parts) {
  size_t kept = 0;
  for (size_t i = 0; i < r->batch.n; i++) {
    rd_kafka_message_t *m = r->batch.msgs[i];
    if (rd_kafka_topic_partition_list_find(parts, rd_kafka_topic_name(m->rkt),
                                           m->partition))
      rd_kafka_message_destroy(m);
    else
      r->batch.msgs[kept++] = m;
  }
  r->batch.n = kept;
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts,
                         void *opaque) {
  linli_runner_t *r = opaque;
  switch (err) {
  case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS:
    LINLI_INFO("partitions assigned", "consumer=%s count=%d", r->spec.name,
               parts->cnt);
    if (r->spec.offsets_load) {
      /* External store: read from where the store says each partition
       * stands. Until it answers, nothing is assigned: a failure stops the
       * runner rather than reading from a guessed offset. */
      for (int i = 0; i < parts->cnt; i++)
        parts->elems[i].offset = RD_KAFKA_OFFSET_BEGINNING;
      if (r->spec.offsets_load(r->spec.app, parts) != LINLI_OK) {
        set_fatal(r, "offsets_load", "the offset store did not answer",
                  RD_KAFKA_RESP_ERR_NO_ERROR);
        rd_kafka_assign(rk, NULL);
        break;
      }
    }
    rd_kafka_assign(rk, parts);
    linli_gauge_set(r->m_assigned, parts->cnt);
    if (r->spec.owned)
      linli_owned_update(r->spec.owned, parts, 1);
    if (r->spec.on_assign)
      r->spec.on_assign(r->spec.app, parts);
    break;
  case RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS:
    LINLI_INFO("partitions revoked", "consumer=%s count=%d lost=%d",
               r->spec.name, parts->cnt, rd_kafka_assignment_lost(rk));
    /* Batches are processed and committed between polls, so no
     * transaction is open here; only collected records can be pending. */
    if (r->txn_open)
      txn_abort(r, 0);
    drop_collected(r, parts);
    if (r->spec.owned)
      linli_owned_update(r->spec.owned, parts, 0);
    if (r->spec.on_revoke)
      r->spec.on_revoke(r->spec.app, parts);
    rd_kafka_assign(rk, NULL);
    linli_gauge_set(r->m_assigned, 0);
    break;
  default:
    LINLI_ERROR("rebalance error", "consumer=%s reason=\"%s\"", r->spec.name,
                rd_kafka_err2str(err));
    drop_collected(r, parts);
    rd_kafka_assign(rk, NULL);
    break;
  }
}

static void consumer_error_cb(rd_kafka_t *rk, int err, const char *reason,
                              void *opaque) {
  linli_runner_t *r = opaque;
  if (err == RD_KAFKA_RESP_ERR__FATAL) {
    char why[512];
    rd_kafka_resp_err_t code = rd_kafka_fatal_error(rk, why, sizeof why);
    set_fatal(r, "consumer", why, code);
    return;
  }
  LINLI_WARN("kafka error", "consumer=%s code=%s reason=\"%s\"", r->spec.name,
             rd_kafka_err2name(err), reason);
}

static void producer_error_cb(rd_kafka_t *rk, int err, const char *reason,
                              void *opaque) {
  linli_runner_t *r = opaque;
  if (err == RD_KAFKA_RESP_ERR__FATAL) {
    char why[512];
    rd_kafka_resp_err_t code = rd_kafka_fatal_error(rk, why, sizeof why);
    set_fatal(r, "producer", why, code);
    return;
  }
  LINLI_WARN("kafka producer error", "consumer=%s code=%s reason=\"%s\"",
             r->spec.name, rd_kafka_err2name(err), reason);
}

/* ------------------------------------------------------------- lifecycle */

int linli_runner_new(const linli_config_t *cfg, const linli_runner_spec_t *spec,
                     linli_runner_t **out, char *err, size_t errlen) {
  if (!spec || !spec->name || !spec->topics || !spec->topics[0] ||
      !spec->handle == !spec->handle_batch) {
    snprintf(err, errlen, "runner spec needs a name, topics and one of "
                          "handle_batch() or handle()");
    return LINLI_ERR_INVALID;
  }
  linli_runner_t *r = calloc(1, sizeof *r);
  if (!r) {
    snprintf(err, errlen, "out of memory");
    return LINLI_ERR_NOMEM;
  }
  r->spec = *spec;
  r->cfg = cfg;
  r->emit.r = r;
  r->batch.r = r;
  const char *cfg_group = linli_config_str(cfg, "runner.group");
  if (spec->group_id)
    snprintf(r->group, sizeof r->group, "%s", spec->group_id);
  else if (cfg_group && cfg_group[0])
    snprintf(r->group, sizeof r->group, "%s", cfg_group);
  else
    snprintf(r->group, sizeof r->group, "linli-%s", spec->name);
  const char *inst = linli_config_str(cfg, "runner.instance_id");
  if (inst && inst[0]) {
    snprintf(r->instance, sizeof r->instance, "%s", inst);
  } else {
    char host[64] = "host";
    gethostname(host, sizeof host - 1);
    snprintf(r->instance, sizeof r->instance, "%s", host);
  }
  snprintf(r->txn_id, sizeof r->txn_id, "linli-%s-%s", spec->name,
           r->instance);
  snprintf(r->dlq_topic, sizeof r->dlq_topic, "%s",
           linli_config_str(cfg, "runner.dlq_topic"));
  r->batch_size = (int)linli_config_int(cfg, "runner.batch_size");
  r->flush_ms = (int)linli_config_int(cfg, "runner.flush_interval_ms");
  r->tick_ms = (int)linli_config_int(cfg, "runner.tick_interval_ms");
  r->backoff_ms = (int)linli_config_int(cfg, "runner.retry_backoff_ms");
  r->txn_timeout_ms = (int)linli_config_int(cfg, "runner.transaction_timeout_ms");
  r->start = rd_kafka_topic_partition_list_new(16);
  r->next = rd_kafka_topic_partition_list_new(16);

  char labels[160];
  snprintf(labels, sizeof labels, "consumer=\"%s\"", spec->name);
  r->m_consumed = linli_metrics_counter("linli_runner_records_total", labels,
                                        "Input records processed");
  r->m_dlq = linli_metrics_counter("linli_runner_dlq_total", labels,
                                   "Input records sent to the DLQ");
  r->m_produced = linli_metrics_counter("linli_runner_emitted_total", labels,
                                        "Output events written");
  r->m_commits = linli_metrics_counter("linli_runner_commits_total", labels,
                                       "Transactions committed");
  r->m_aborts = linli_metrics_counter("linli_runner_aborts_total", labels,
                                      "Transactions aborted");
  r->m_retries = linli_metrics_counter("linli_runner_retries_total", labels,
                                       "Batches retried after a transient error");
  r->m_commit_s = linli_metrics_histogram("linli_runner_commit_seconds", labels,
                                          "Transaction commit latency", NULL, 0);
  static const double batch_buckets[] = {1,   10,   100,  500,
                                         1000, 2000, 5000, 10000};
  r->m_batch_records = linli_metrics_histogram(
      "linli_runner_batch_records", labels, "Records per batch",
      batch_buckets, sizeof batch_buckets / sizeof batch_buckets[0]);
  r->m_assigned = linli_metrics_gauge("linli_runner_assigned_partitions",
                                      labels, "Partitions assigned");
  *out = r;
  return LINLI_OK;
}

/* Set key=value on conf unless the config's [kafka] section sets key: the
 * runner's tuning defaults, which an operator may still override. */
static int conf_default(const linli_config_t *cfg, rd_kafka_conf_t *conf,
                        const char *key, const char *value, char *err,
                        size_t errlen) {
  if (cfg && linli_config_kafka_get(cfg, key))
    return 0;
  return rd_kafka_conf_set(conf, key, value, err, errlen) != RD_KAFKA_CONF_OK;
}

static int create_clients(linli_runner_t *r, char *err, size_t errlen) {
  char client_id[400];
  char num[32];
  snprintf(client_id, sizeof client_id, "%s", r->txn_id);

  /* Transactional producer (none with an external offset store). */
  rd_kafka_conf_t *pc = NULL;
  if (!r->spec.offsets_load) {
    pc = rd_kafka_conf_new();
    if (linli_kafka_conf_base(r->cfg, pc, client_id, err, errlen) != LINLI_OK)
      goto perr;
    snprintf(num, sizeof num, "%d", r->txn_timeout_ms);
    /* librdkafka 2.0.2 retries AddOffsetsToTxn, refused with
     * CONCURRENT_TRANSACTIONS while the previous commit completes on the
     * broker, after retry.backoff.ms (100 ms by default): that wait, not
     * the commit, would bound small transactions. */
    if (conf_default(r->cfg, pc, "retry.backoff.ms", "5", err, errlen) ||
        rd_kafka_conf_set(pc, "transactional.id", r->txn_id, err, errlen) ||
        rd_kafka_conf_set(pc, "transaction.timeout.ms", num, err, errlen) ||
        rd_kafka_conf_set(pc, "enable.idempotence", "true", err, errlen) ||
        rd_kafka_conf_set(pc, "acks", "all", err, errlen))
      goto perr;
    rd_kafka_conf_set_error_cb(pc, producer_error_cb);
    rd_kafka_conf_set_opaque(pc, r);
    r->producer = rd_kafka_new(RD_KAFKA_PRODUCER, pc, err, errlen);
    if (!r->producer)
      goto perr;
    pc = NULL;
  }

  /* read_committed consumer, offsets only through transactions (or the
   * external store). */
  rd_kafka_conf_t *cc = rd_kafka_conf_new();
  if (linli_kafka_conf_base(r->cfg, cc, client_id, err, errlen) != LINLI_OK)
    goto cerr;
  /* Fetched batches dominate a consumer's memory: linli compresses with
   * lz4, and every fetched batch (up to max.partition.fetch.bytes, 1 MiB,
   * per partition) is held decompressed until its last record is
   * destroyed. A settler starting on a backlog of one topic reached 116 MB
   * with librdkafka's defaults, 35 MB with 256 KiB per partition
   * (measured). The queue limits bound what is prefetched besides. */
  if (conf_default(r->cfg, cc, "max.partition.fetch.bytes", "262144", err,
                   errlen) ||
      conf_default(r->cfg, cc, "fetch.max.bytes", "2097152", err, errlen) ||
      conf_default(r->cfg, cc, "queued.max.messages.kbytes", "1024", err,
                   errlen) ||
      conf_default(r->cfg, cc, "queued.min.messages", "10000", err, errlen) ||
      rd_kafka_conf_set(cc, "group.id", r->group, err, errlen) ||
      rd_kafka_conf_set(cc, "isolation.level", "read_committed", err,
                        errlen) ||
      rd_kafka_conf_set(cc, "enable.auto.commit", "false", err, errlen) ||
      rd_kafka_conf_set(cc, "enable.auto.offset.store", "false", err,
                        errlen) ||
      rd_kafka_conf_set(cc, "auto.offset.reset", "earliest", err, errlen) ||
      rd_kafka_conf_set(cc, "enable.partition.eof", "false", err, errlen))
    goto cerr;
  rd_kafka_conf_set_rebalance_cb(cc, rebalance_cb);
  rd_kafka_conf_set_error_cb(cc, consumer_error_cb);
  rd_kafka_conf_set_opaque(cc, r);
  r->consumer = rd_kafka_new(RD_KAFKA_CONSUMER, cc, err, errlen);
  if (!r->consumer)
    goto cerr;
  cc = NULL;
  rd_kafka_poll_set_consumer(r->consumer);
  return LINLI_OK;

perr:
  if (pc)
    rd_kafka_conf_destroy(pc);
  return LINLI_ERR_CONFIG;
cerr:
  if (cc)
    rd_kafka_conf_destroy(cc);
  return LINLI_ERR_CONFIG;
}

/* Sleep in small steps so that a stop request is honoured promptly. */
static void backoff(linli_runner_t *r) {
  for (int slept = 0; slept < r->backoff_ms && !r->stop; slept += 20) {
    struct timespec ts = {0, 20 * 1000000L};
    nanosleep(&ts, NULL);
    if (r->producer)
      rd_kafka_poll(r->producer, 0);
  }
}

/* ------------------------------------------------------------------ batch */

size_t linli_batch_count(const linli_batch_t *b) { return b->n; }

const rd_kafka_message_t *linli_batch_msg(const linli_batch_t *b, size_t i) {
  return i < b->n ? b->msgs[i] : NULL;
}

int64_t linli_batch_start(const linli_batch_t *b, const char *topic,
                          int32_t partition) {
  const rd_kafka_topic_partition_t *p =
      rd_kafka_topic_partition_list_find(b->r->start, topic, partition);
  return p ? p->offset : -1;
}

void linli_batch_reject(linli_batch_t *b, size_t i, int code,
                        const char *reason) {
  if (i >= b->n)
    return;
  b->verdict[i] = code != LINLI_OK ? code : LINLI_ERR_INVALID;
  free(b->reason[i]);
  b->reason[i] = strdup(reason && reason[0] ? reason : "rejected");
}

int linli_batch_verdict(const linli_batch_t *b, size_t i, const char **reason) {
  if (reason)
    *reason = i < b->n ? b->reason[i] : NULL;
  return i < b->n ? b->verdict[i] : LINLI_ERR_INVALID;
}

const rd_kafka_topic_partition_list_t *
linli_batch_next_offsets(const linli_batch_t *b) {
  return b->r->next;
}

static int batch_reserve(linli_batch_t *b, size_t need) {
  if (need <= b->cap)
    return LINLI_OK;
  size_t cap = b->cap ? b->cap * 2 : 256;
  while (cap < need)
    cap *= 2;
  rd_kafka_message_t **m = realloc(b->msgs, cap * sizeof *m);
  if (!m)
    return LINLI_ERR_NOMEM;
  b->msgs = m;
  int *v = realloc(b->verdict, cap * sizeof *v);
  if (!v)
    return LINLI_ERR_NOMEM;
  b->verdict = v;
  char **rs = realloc(b->reason, cap * sizeof *rs);
  if (!rs)
    return LINLI_ERR_NOMEM;
  b->reason = rs;
  b->cap = cap;
  return LINLI_OK;
}

/* Destroy the batch's records and verdicts (the batch is done). */
static void batch_clear(linli_batch_t *b) {
  for (size_t i = 0; i < b->n; i++) {
    rd_kafka_message_destroy(b->msgs[i]);
    free(b->reason[i]);
  }
  b->n = 0;
}

/* The single-record contract as a batch handler: one record after the
 * other, stopping the batch at the first transient or fatal failure. */
static int handle_each(linli_runner_t *r, linli_batch_t *b, char *reason,
                       size_t reasonlen) {
  for (size_t i = 0; i < b->n; i++) {
    const rd_kafka_message_t *m = b->msgs[i];
    reason[0] = '\0';
    int rc = r->spec.handle(r->spec.app, m, &r->emit, reason, reasonlen);
    if (rc == LINLI_OK)
      continue;
    if (rc == LINLI_ERR_INVALID) {
      linli_batch_reject(b, i, rc, reason);
      continue;
    }
    if (rc != LINLI_ERR_FATAL) {
      LINLI_WARN("record failed", "consumer=%s topic=%s partition=%d "
                 "offset=%lld reason=\"%s\"",
                 r->spec.name, rd_kafka_topic_name(m->rkt), (int)m->partition,
                 (long long)m->offset, reason);
      return LINLI_ERR_TRANSIENT;
    }
    return rc;
  }
  return LINLI_OK;
}

/* Fault injection for the exactly-once tests: LINLI_FAULT_KILL_BEFORE_COMMIT=N
 * makes the process SIGKILL itself right before its N-th batch commit, after
 * every effect and output of that batch (with an external offset store: after
 * the handler committed its store). Read once; unset in production. */
static void fault_before_commit(linli_runner_t *r) {
  if (r->fault_kill_at == 0) {
    const char *v = getenv("LINLI_FAULT_KILL_BEFORE_COMMIT");
    r->fault_kill_at = v && atol(v) > 0 ? atol(v) : -1;
  }
  if (r->fault_kill_at > 0 && ++r->fault_commits >= r->fault_kill_at) {
    LINLI_WARN("fault injection: SIGKILL before commit",
               "consumer=%s batch=%ld", r->spec.name, r->fault_commits);
    raise(SIGKILL);
  }
}

/* Give up the open batch: abort, rewind, count a retry, back off. */
static void batch_retry(linli_runner_t *r) {
  txn_abort(r, 1);
  linli_counter_add(r->m_retries, 1);
  backoff(r);
}

/*
 * Process the collected batch in one transaction: the handler decides and
 * applies every record, the rejected ones go to the DLQ, and the outputs
 * commit with the offsets. Any failure before the commit rewinds the
 * partitions to the batch start, so the same records come again.
 */
static void process_batch(linli_runner_t *r) {
  linli_batch_t *b = &r->batch;
  if (b->n == 0)
    return;
  if (txn_begin(r) != LINLI_OK) {
    batch_clear(b);
    return;
  }
  for (size_t i = 0; i < b->n; i++) {
    track_start(r, b->msgs[i]);
    track_done(r, b->msgs[i]);
  }
  r->batch_count = (int)b->n;
  linli_histogram_observe(r->m_batch_records, (double)b->n);

  char reason[512] = "";
  int rc = r->spec.handle_batch
               ? r->spec.handle_batch(r->spec.app, b,
                                      r->producer ? &r->emit : NULL, reason,
                                      sizeof reason)
               : handle_each(r, b, reason, sizeof reason);
  linli_counter_add(r->m_consumed, b->n);
  if (rc == LINLI_ERR_FATAL) {
    set_fatal(r, "handler", reason[0] ? reason : "fatal error",
              RD_KAFKA_RESP_ERR_NO_ERROR);
    batch_clear(b);
    return;
  }
  if (rc != LINLI_OK) {
    LINLI_WARN("batch retried", "consumer=%s records=%zu reason=\"%s\"",
               r->spec.name, b->n, reason);
    batch_clear(b);
    batch_retry(r);
    return;
  }
  for (size_t i = 0; i < b->n; i++) {
    if (b->verdict[i] == LINLI_OK)
      continue;
    if (!r->producer) {
      linli_counter_add(r->m_dlq, 1); /* the handler stored it */
      continue;
    }
    if (emit_dlq(r, b->msgs[i], b->verdict[i], b->reason[i]) != LINLI_OK) {
      batch_clear(b);
      batch_retry(r);
      return;
    }
  }
  batch_clear(b);
  fault_before_commit(r);
  if (txn_commit(r) == LINLI_ERR_TRANSIENT) {
    linli_counter_add(r->m_retries, 1);
    backoff(r);
  }
}

/* Collect records until the batch is full or runner.flush_interval_ms has
 * passed since its first record (or a stop was asked). */
static void collect(linli_runner_t *r) {
  linli_batch_t *b = &r->batch;
  while (!r->stop && !r->fatal && b->n < (size_t)r->batch_size) {
    int timeout = 100;
    if (b->n > 0) {
      int64_t left =
          r->collect_started_ms + r->flush_ms - linli_clock_mono_ms();
      if (left <= 0)
        break;
      timeout = left < 100 ? (int)left : 100;
    }
    rd_kafka_message_t *m = rd_kafka_consumer_poll(r->consumer, timeout);
    if (r->producer)
      rd_kafka_poll(r->producer, 0);
    if (!m) {
      if (b->n == 0)
        break; /* idle: give the clock its turn */
      continue;
    }
    if (m->err) {
      if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
        LINLI_WARN("consume error", "consumer=%s reason=\"%s\"", r->spec.name,
                   rd_kafka_message_errstr(m));
      rd_kafka_message_destroy(m);
      continue;
    }
    if (batch_reserve(b, b->n + 1) != LINLI_OK) {
      /* Not taken: rewind to it so it comes again after this batch. */
      rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
      rd_kafka_topic_partition_list_add(l, rd_kafka_topic_name(m->rkt),
                                        m->partition)
          ->offset = m->offset;
      rd_kafka_error_t *se = rd_kafka_seek_partitions(r->consumer, l, 5000);
      if (se) {
        set_fatal(r, "seek", rd_kafka_error_string(se),
                  rd_kafka_error_code(se));
        rd_kafka_error_destroy(se);
      }
      rd_kafka_topic_partition_list_destroy(l);
      rd_kafka_message_destroy(m);
      break;
    }
    if (b->n == 0)
      r->collect_started_ms = linli_clock_mono_ms();
    b->verdict[b->n] = LINLI_OK;
    b->reason[b->n] = NULL;
    b->msgs[b->n++] = m;
  }
}

static void run_tick(linli_runner_t *r) {
  if (txn_begin(r) != LINLI_OK)
    return;
  int rc = r->spec.tick(r->spec.app, r->producer ? &r->emit : NULL,
                        linli_clock_now_ms());
  if (rc == LINLI_ERR_FATAL) {
    set_fatal(r, "tick", "fatal error", RD_KAFKA_RESP_ERR_NO_ERROR);
  } else if (rc != LINLI_OK) {
    txn_abort(r, 1);
    backoff(r);
  } else if (txn_commit(r) == LINLI_ERR_TRANSIENT) {
    backoff(r);
  }
}

int linli_runner_run(linli_runner_t *r, char *err, size_t errlen) {
  if (create_clients(r, err, errlen) != LINLI_OK)
    return LINLI_ERR_CONFIG;
  if (r->producer) {
    rd_kafka_error_t *e =
        rd_kafka_init_transactions(r->producer, RUNNER_API_TIMEOUT_MS * 2);
    if (e) {
      snprintf(err, errlen, "init_transactions (%s): %s", r->txn_id,
               rd_kafka_error_string(e));
      rd_kafka_error_destroy(e);
      return LINLI_ERR_FATAL;
    }
  }
  int n = 0;
  while (r->spec.topics[n])
    n++;
  rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(n);
  for (int i = 0; i < n; i++)
    rd_kafka_topic_partition_list_add(sub, r->spec.topics[i],
                                      RD_KAFKA_PARTITION_UA);
  rd_kafka_resp_err_t se = rd_kafka_subscribe(r->consumer, sub);
  rd_kafka_topic_partition_list_destroy(sub);
  if (se) {
    snprintf(err, errlen, "subscribe: %s", rd_kafka_err2str(se));
    return LINLI_ERR_FATAL;
  }
  LINLI_INFO("runner started",
             "consumer=%s group=%s transactional_id=%s batch_size=%d "
             "flush_interval_ms=%d offsets=%s",
             r->spec.name, r->group, r->producer ? r->txn_id : "-",
             r->batch_size, r->flush_ms,
             r->spec.offsets_load ? "external" : "kafka");

  int64_t next_tick = linli_clock_mono_ms() + r->tick_ms;
  while (!r->stop && !r->fatal) {
    collect(r);
    if (r->fatal)
      break;
    /* A stop during collection still processes what was collected: the
     * graceful drain finishes the batch in hand. */
    process_batch(r);
    if (r->fatal)
      break;
    int64_t now = linli_clock_mono_ms();
    if (r->spec.tick && now >= next_tick && !r->stop) {
      next_tick = now + r->tick_ms;
      run_tick(r);
    }
  }

  int rc = LINLI_OK;
  if (r->fatal) {
    if (r->txn_open)
      txn_abort(r, 0);
    snprintf(err, errlen, "%s", r->fatal_reason);
    rc = LINLI_ERR_FATAL;
  } else {
    LINLI_INFO("runner draining", "consumer=%s", r->spec.name);
  }
  batch_clear(&r->batch);
  rd_kafka_consumer_close(r->consumer);
  batch_clear(&r->batch); /* anything a last rebalance left */
  if (r->txn_open)
    txn_abort(r, 0);
  return rc;
}

void linli_runner_free(linli_runner_t *r) {
  if (!r)
    return;
  batch_clear(&r->batch);
  free(r->batch.msgs);
  free(r->batch.verdict);
  free(r->batch.reason);
  if (r->consumer)
    rd_kafka_destroy(r->consumer);
  if (r->producer) {
    rd_kafka_flush(r->producer, 5000);
    rd_kafka_destroy(r->producer);
  }
  rd_kafka_topic_partition_list_destroy(r->start);
  rd_kafka_topic_partition_list_destroy(r->next);
  if (signal_runner == r)
    signal_runner = NULL;
  free(r);
}

int linli_runner_main(const linli_config_t *cfg,
                      const linli_runner_spec_t *spec) {
  char err[1024] = "";
  linli_runner_t *r = NULL;
  int rc = linli_runner_new(cfg, spec, &r, err, sizeof err);
  if (rc == LINLI_OK) {
    linli_runner_handle_signals(r);
    rc = linli_runner_run(r, err, sizeof err);
  }
  if (rc != LINLI_OK)
    LINLI_ERROR("consumer stopped", "consumer=%s reason=\"%s\"", spec->name,
                err);
  linli_runner_free(r);
  return rc;
}
