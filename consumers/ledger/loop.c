/*
 * loop.c - the ledger's consumer: batches of records applied in one
 * PostgreSQL transaction that also moves the ledger's offsets, which live
 * in PostgreSQL (consumer_offsets), not in Kafka.
 *
 * Exactly once, through crashes, rebalances and zombies:
 *  - on assignment, each partition starts at the next_offset PostgreSQL
 *    holds for it (the beginning if none): what the record holds decides
 *    where reading resumes, never Kafka's committed offset;
 *  - a batch's transaction first locks the offset rows of its partitions
 *    (FOR UPDATE) and skips every record below the stored next_offset: a
 *    record is applied at most once even if a previous owner of the
 *    partition, or a COMMIT whose reply was lost, already applied it;
 *  - the offset rows move to last + 1 in the same transaction as the rows
 *    the records produced.
 * Kafka offsets are committed too (asynchronously, after the database
 * commit), only so that consumer lag shows in Kafka tooling.
 *
 * A PostgreSQL outage makes linli_pg_txn wait and retry the batch (the
 * transaction function is re-runnable: all its state is reset per attempt).
 * A record whose SQL fails with a data error (SQLSTATE class 22 or 23) is
 * poisoned: the batch runs again and that record goes to the DLQ instead.
 * Any other SQL error (a missing table, a bug) stops the process: the batch
 * is not committed, and a restart redoes it.
 *
 * Rebalances are eager: on revocation the open batch is committed if the
 * partitions were revoked cleanly (dropped if they were lost; its offsets
 * were not committed, the next owner redoes it from PostgreSQL).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ledger.h"
#include "linli/clock.h"
#include "linli/error.h"
#include "linli/log.h"
#include "linli/schema.h"

#define SWEEP_INTERVAL_MS 30000
#define SWEEP_MIN_AGE_S 30

/* --------------------------------------------------------------- batch */

struct part {
  const char *topic; /* borrowed from the batch's first record of it */
  int32_t partition;
  int64_t first, last;
  int64_t fence; /* next_offset stored in PostgreSQL (locked) */
};

/* Partitions of the open batch (rebuilt for every batch). */
static struct part *parts;
static int nparts, capparts;

static void txn_reset(struct ledger *lg) {
  struct ledger_txn *t = &lg->txn;
  for (size_t i = 0; i < t->ntouched; i++)
    free(t->touched[i]);
  for (size_t i = 0; i < t->noutbox; i++)
    free(t->outbox[i]);
  t->ntouched = t->noutbox = 0;
  t->cur = -1;
  t->poison_idx = -1;
  t->poison_reason[0] = '\0';
  t->applied = t->skipped = t->dlq = 0;
}

static void batch_drop(struct ledger *lg) {
  for (int i = 0; i < lg->nrecs; i++) {
    rd_kafka_message_destroy(lg->recs[i].m);
    free(lg->recs[i].poison);
  }
  lg->nrecs = 0;
}

static int batch_add(struct ledger *lg, rd_kafka_message_t *m) {
  if (lg->nrecs == lg->caprecs) {
    int cap = lg->caprecs ? lg->caprecs * 2 : 256;
    struct ledger_rec *n = realloc(lg->recs, (size_t)cap * sizeof *n);
    if (n == NULL)
      return LINLI_ERR_NOMEM;
    lg->recs = n;
    lg->caprecs = cap;
  }
  if (lg->nrecs == 0)
    lg->batch_started_ms = linli_clock_mono_ms();
  lg->recs[lg->nrecs].m = m;
  lg->recs[lg->nrecs].poison = NULL;
  lg->nrecs++;
  return LINLI_OK;
}

static int part_cmp(const void *a, const void *b) {
  const struct part *x = a, *y = b;
  int c = strcmp(x->topic, y->topic);
  if (c != 0)
    return c;
  return (x->partition > y->partition) - (x->partition < y->partition);
}

static struct part *part_find(const char *topic, int32_t partition) {
  for (int i = 0; i < nparts; i++)
    if (parts[i].partition == partition && strcmp(parts[i].topic, topic) == 0)
      return &parts[i];
  return NULL;
}

/* Partitions of the batch, sorted, so that two instances lock offset rows
 * in the same order. */
static int build_parts(struct ledger *lg) {
  nparts = 0;
  for (int i = 0; i < lg->nrecs; i++) {
    const rd_kafka_message_t *m = lg->recs[i].m;
    const char *topic = rd_kafka_topic_name(m->rkt);
    struct part *p = part_find(topic, m->partition);
    if (p == NULL) {
      if (nparts == capparts) {
        int cap = capparts ? capparts * 2 : 32;
        struct part *n = realloc(parts, (size_t)cap * sizeof *n);
        if (n == NULL)
          return LINLI_ERR_NOMEM;
        parts = n;
        capparts = cap;
      }
      p = &parts[nparts++];
      p->topic = topic;
      p->partition = m->partition;
      p->first = m->offset;
      p->last = m->offset;
      p->fence = 0;
    }
    if (m->offset < p->first)
      p->first = m->offset;
    if (m->offset > p->last)
      p->last = m->offset;
  }
  qsort(parts, (size_t)nparts, sizeof *parts, part_cmp);
  return LINLI_OK;
}

/* ------------------------------------------------------------- offsets */

static const struct ledger_stmt OFFSET_INIT = {
    "ledger_offset_init",
    "INSERT INTO consumer_offsets (consumer_group, topic, partition, "
    "next_offset) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
    4};

static const struct ledger_stmt OFFSET_LOCK = {
    "ledger_offset_lock",
    "SELECT next_offset FROM consumer_offsets WHERE consumer_group = $1 AND "
    "topic = $2 AND partition = $3 FOR UPDATE",
    3};

static const struct ledger_stmt OFFSET_SET = {
    "ledger_offset_set",
    "UPDATE consumer_offsets SET next_offset = greatest(next_offset, "
    "$4::bigint), updated_at = now() WHERE consumer_group = $1 AND "
    "topic = $2 AND partition = $3",
    4};

static const struct ledger_stmt OFFSET_ALL = {
    "ledger_offsets",
    "SELECT topic, partition, next_offset FROM consumer_offsets WHERE "
    "consumer_group = $1",
    1};

/* Data errors belong to the record; anything else is ours to fix. */
static int is_data_error(const char *err) {
  return strncmp(err, "22", 2) == 0 || strncmp(err, "23", 2) == 0;
}

/* The transaction of one batch; runs again after a transient failure. */
static int apply_batch(linli_pg_t *pg, void *arg, char *err, size_t errlen) {
  (void)pg;
  struct ledger *lg = arg;
  txn_reset(lg);
  int rc;
  char part[16], off[24];
  for (int i = 0; i < nparts; i++) {
    struct part *p = &parts[i];
    snprintf(part, sizeof part, "%d", (int)p->partition);
    snprintf(off, sizeof off, "%lld", (long long)p->first);
    const char *ip[] = {lg->group, p->topic, part, off};
    if ((rc = ledger_sql(lg, &OFFSET_INIT, ip, NULL, err, errlen)) != LINLI_OK)
      return rc;
    PGresult *res = NULL;
    if ((rc = ledger_sql(lg, &OFFSET_LOCK, ip, &res, err, errlen)) !=
        LINLI_OK)
      return rc;
    p->fence = PQntuples(res) == 1 ? atoll(PQgetvalue(res, 0, 0)) : 0;
    PQclear(res);
  }
  for (int i = 0; i < lg->nrecs; i++) {
    const rd_kafka_message_t *m = lg->recs[i].m;
    const struct part *p = part_find(rd_kafka_topic_name(m->rkt), m->partition);
    if (m->offset < p->fence) {
      lg->txn.skipped++; /* applied by an earlier transaction */
      continue;
    }
    lg->txn.cur = i;
    rc = ledger_apply(lg, i, err, errlen);
    if (rc == LINLI_OK)
      continue;
    if (rc != LINLI_ERR_TRANSIENT && is_data_error(err)) {
      lg->txn.poison_idx = i;
      snprintf(lg->txn.poison_reason, sizeof lg->txn.poison_reason,
               "the record refused it: %s", err);
    }
    return rc == LINLI_ERR_TRANSIENT ? rc : LINLI_ERR_INVALID;
  }
  lg->txn.cur = -1;
  if ((rc = ledger_outbox_statuses(lg, err, errlen)) != LINLI_OK)
    return rc;
  for (int i = 0; i < nparts; i++) {
    const struct part *p = &parts[i];
    snprintf(part, sizeof part, "%d", (int)p->partition);
    snprintf(off, sizeof off, "%lld", (long long)(p->last + 1));
    const char *sp[] = {lg->group, p->topic, part, off};
    if ((rc = ledger_sql(lg, &OFFSET_SET, sp, NULL, err, errlen)) != LINLI_OK)
      return rc;
  }
  return LINLI_OK;
}

/* After the database commit: tell Kafka too (for lag monitoring only). */
static void commit_to_kafka(struct ledger *lg) {
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(nparts);
  for (int i = 0; i < nparts; i++)
    rd_kafka_topic_partition_list_add(l, parts[i].topic, parts[i].partition)
        ->offset = parts[i].last + 1;
  rd_kafka_commit(lg->consumer, l, 1);
  rd_kafka_topic_partition_list_destroy(l);
}

/* Apply and commit the open batch; attempts as linli_pg_txn (0 = until it
 * works or the process is asked to stop). The batch is gone afterwards
 * (committed, or dropped for its next reader to redo). */
static int commit_batch(struct ledger *lg, int attempts) {
  if (lg->nrecs == 0)
    return LINLI_OK;
  char err[1024] = "";
  int64_t t0 = linli_clock_mono_ms();
  int rc = build_parts(lg);
  while (rc == LINLI_OK) {
    rc = linli_pg_txn(lg->pg, apply_batch, lg, attempts, err, sizeof err);
    int idx = lg->txn.poison_idx;
    if (rc == LINLI_ERR_INVALID && idx >= 0 && lg->recs[idx].poison == NULL) {
      const rd_kafka_message_t *m = lg->recs[idx].m;
      LINLI_WARN("record refused by the database: to the DLQ",
                 "topic=%s partition=%d offset=%lld sqlstate=%.5s",
                 rd_kafka_topic_name(m->rkt), (int)m->partition,
                 (long long)m->offset, err);
      lg->recs[idx].poison = strdup(lg->txn.poison_reason);
      rc = lg->recs[idx].poison ? LINLI_OK : LINLI_ERR_NOMEM;
      continue;
    }
    break;
  }
  if (rc != LINLI_OK) {
    if (rc == LINLI_ERR_TRANSIENT) {
      LINLI_WARN("batch dropped, not committed", "records=%d sqlstate=%.5s",
                 lg->nrecs, err);
    } else {
      /* err may quote data: the SQLSTATE and the first words only. */
      LINLI_ERROR("batch failed", "records=%d error=\"%.120s\"", lg->nrecs,
                  err);
      lg->fatal = 1;
    }
    batch_drop(lg);
    txn_reset(lg);
    return rc;
  }
  linli_counter_add(lg->m_batches, 1);
  linli_counter_add(lg->m_records, (uint64_t)lg->nrecs);
  linli_counter_add(lg->m_dlq, lg->txn.dlq);
  linli_histogram_observe(lg->m_batch_s,
                          (double)(linli_clock_mono_ms() - t0) / 1000.0);
  LINLI_DEBUG("batch committed",
              "records=%d applied=%zu skipped=%zu dlq=%zu orders=%zu",
              lg->nrecs, lg->txn.applied, lg->txn.skipped, lg->txn.dlq,
              lg->txn.ntouched);
  commit_to_kafka(lg);
  if (ledger_outbox_publish_txn(lg) != LINLI_OK)
    LINLI_WARN("outbox publish deferred", "rows=%zu", lg->txn.noutbox);
  batch_drop(lg);
  txn_reset(lg);
  return LINLI_OK;
}

/* ----------------------------------------------------------- rebalance */

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* Where each assigned partition resumes: PostgreSQL's next_offset. */
static int seek_from_record(struct ledger *lg,
                            rd_kafka_topic_partition_list_t *assigned) {
  char err[512];
  for (;;) {
    const char *p[] = {lg->group};
    PGresult *res = NULL;
    int rc = ledger_sql(lg, &OFFSET_ALL, p, &res, err, sizeof err);
    if (rc == LINLI_OK) {
      for (int i = 0; i < assigned->cnt; i++) {
        rd_kafka_topic_partition_t *tp = &assigned->elems[i];
        tp->offset = RD_KAFKA_OFFSET_BEGINNING;
        for (int r = 0; r < PQntuples(res); r++)
          if (atoi(PQgetvalue(res, r, 1)) == tp->partition &&
              strcmp(PQgetvalue(res, r, 0), tp->topic) == 0)
            tp->offset = atoll(PQgetvalue(res, r, 2));
      }
      PQclear(res);
      return LINLI_OK;
    }
    if (rc != LINLI_ERR_TRANSIENT || lg->stop) {
      LINLI_ERROR("cannot read offsets from the record",
                  "sqlstate=%.5s", err);
      return rc;
    }
    LINLI_WARN("waiting for PostgreSQL to read offsets", "sqlstate=%.5s",
               err);
    sleep_ms(lg->backoff_ms);
  }
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *list, void *opaque) {
  struct ledger *lg = opaque;
  switch (err) {
  case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS:
    if (seek_from_record(lg, list) != LINLI_OK) {
      if (!lg->stop)
        lg->fatal = 1;
      rd_kafka_assign(rk, NULL);
      return;
    }
    LINLI_INFO("partitions assigned", "count=%d", list->cnt);
    rd_kafka_assign(rk, list);
    linli_gauge_set(lg->m_assigned, list->cnt);
    break;
  case RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS:
    LINLI_INFO("partitions revoked", "count=%d lost=%d batch=%d", list->cnt,
               rd_kafka_assignment_lost(rk), lg->nrecs);
    if (rd_kafka_assignment_lost(rk))
      batch_drop(lg);
    else
      commit_batch(lg, 3); /* dropped if the database is not there */
    rd_kafka_assign(rk, NULL);
    linli_gauge_set(lg->m_assigned, 0);
    break;
  default:
    LINLI_ERROR("rebalance error", "reason=\"%s\"", rd_kafka_err2str(err));
    batch_drop(lg);
    rd_kafka_assign(rk, NULL);
    break;
  }
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason,
                     void *opaque) {
  struct ledger *lg = opaque;
  if (err == RD_KAFKA_RESP_ERR__FATAL) {
    char why[512];
    rd_kafka_fatal_error(rk, why, sizeof why);
    LINLI_ERROR("kafka fatal error", "reason=\"%s\"", why);
    lg->fatal = 1;
    return;
  }
  LINLI_WARN("kafka error", "code=%s reason=\"%s\"", rd_kafka_err2name(err),
             reason);
}

/* ---------------------------------------------------------------- run */

static int create_consumer(struct ledger *lg, char *err, size_t errlen) {
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  char client_id[200];
  snprintf(client_id, sizeof client_id, "linli-ledger-%s", lg->instance);
  if ((!linli_config_kafka_get(lg->cfg, "bootstrap.servers") &&
       rd_kafka_conf_set(conf, "bootstrap.servers", "127.0.0.1:9092", err,
                         errlen)) ||
      linli_config_kafka_apply(lg->cfg, conf, err, errlen) != LINLI_OK ||
      rd_kafka_conf_set(conf, "client.id", client_id, err, errlen) ||
      rd_kafka_conf_set(conf, "group.id", lg->group, err, errlen) ||
      rd_kafka_conf_set(conf, "isolation.level", "read_committed", err,
                        errlen) ||
      rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, errlen) ||
      rd_kafka_conf_set(conf, "enable.auto.offset.store", "false", err,
                        errlen) ||
      rd_kafka_conf_set(conf, "auto.offset.reset", "earliest", err, errlen) ||
      rd_kafka_conf_set(conf, "enable.partition.eof", "false", err, errlen) ||
      /* Eager, and partition n of every topic to the same member: the
       * topics keyed by order id then have one ledger per order. */
      rd_kafka_conf_set(conf, "partition.assignment.strategy", "range", err,
                        errlen)) {
    rd_kafka_conf_destroy(conf);
    return LINLI_ERR_CONFIG;
  }
  rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
  rd_kafka_conf_set_error_cb(conf, error_cb);
  rd_kafka_conf_set_opaque(conf, lg);
  lg->consumer = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, errlen);
  if (lg->consumer == NULL) {
    rd_kafka_conf_destroy(conf);
    return LINLI_ERR_CONFIG;
  }
  rd_kafka_poll_set_consumer(lg->consumer);
  return LINLI_OK;
}

/* Every linli topic but the ledger's own output. */
static int subscribe(struct ledger *lg, char *err, size_t errlen) {
  size_t n = 0;
  const linli_topic_schema_t *all = linli_schema_topics(&n);
  rd_kafka_topic_partition_list_t *l =
      rd_kafka_topic_partition_list_new((int)n);
  for (size_t i = 0; i < n; i++) {
    char t[320];
    if (strcmp(all[i].name, LINLI_TOPIC_ORDER_STATUS) == 0)
      continue;
    if (strcmp(all[i].name, LINLI_TOPIC_DLQ) == 0)
      snprintf(t, sizeof t, "%s", lg->dlq_topic);
    else
      snprintf(t, sizeof t, "%s%s", all[i].name, lg->suffix);
    rd_kafka_topic_partition_list_add(l, t, RD_KAFKA_PARTITION_UA);
  }
  rd_kafka_resp_err_t e = rd_kafka_subscribe(lg->consumer, l);
  rd_kafka_topic_partition_list_destroy(l);
  if (e) {
    snprintf(err, errlen, "subscribe: %s", rd_kafka_err2str(e));
    return LINLI_ERR_FATAL;
  }
  return LINLI_OK;
}

int ledger_run(struct ledger *lg, char *err, size_t errlen) {
  txn_reset(lg);
  int rc = create_consumer(lg, err, errlen);
  if (rc == LINLI_OK)
    rc = subscribe(lg, err, errlen);
  if (rc != LINLI_OK)
    goto out;
  LINLI_INFO("ledger started", "group=%s instance=%s batch_size=%d "
             "flush_interval_ms=%d",
             lg->group, lg->instance, lg->batch_size, lg->flush_ms);
  /* What a previous run committed but could not publish. */
  if (ledger_outbox_sweep(lg, 0) != LINLI_OK)
    LINLI_WARN("outbox not published yet", "%s", "retry=later");
  int64_t next_sweep = linli_clock_mono_ms() + SWEEP_INTERVAL_MS;
  int64_t last_warn = 0;
  while (!lg->stop && !lg->fatal) {
    int timeout = 100;
    if (lg->nrecs > 0) {
      int64_t left = lg->batch_started_ms + lg->flush_ms - linli_clock_mono_ms();
      timeout = left < 0 ? 0 : (left < 100 ? (int)left : 100);
    }
    rd_kafka_message_t *m = rd_kafka_consumer_poll(lg->consumer, timeout);
    if (m != NULL && m->err) {
      int64_t now = linli_clock_mono_ms();
      if (now - last_warn > 10000) { /* e.g. a topic not created yet */
        LINLI_WARN("consume error", "reason=\"%s\"",
                   rd_kafka_message_errstr(m));
        last_warn = now;
      }
      rd_kafka_message_destroy(m);
    } else if (m != NULL && batch_add(lg, m) != LINLI_OK) {
      rd_kafka_message_destroy(m);
      lg->fatal = 1;
      break;
    }
    linli_producer_poll(lg->producer, 0);
    int64_t now = linli_clock_mono_ms();
    if (lg->nrecs >= lg->batch_size ||
        (lg->nrecs > 0 && now - lg->batch_started_ms >= lg->flush_ms))
      commit_batch(lg, 0);
    if (now >= next_sweep && !lg->fatal) {
      next_sweep = now + SWEEP_INTERVAL_MS;
      ledger_outbox_sweep(lg, SWEEP_MIN_AGE_S);
    }
  }
  if (!lg->fatal) {
    LINLI_INFO("ledger draining", "batch=%d", lg->nrecs);
    commit_batch(lg, 0);
  } else {
    batch_drop(lg);
  }
  rd_kafka_consumer_close(lg->consumer);
  rc = lg->fatal ? LINLI_ERR_FATAL : LINLI_OK;
  if (lg->fatal)
    snprintf(err, errlen, "stopped after a fatal error (see the log)");
out:
  batch_drop(lg);
  if (lg->consumer != NULL)
    rd_kafka_destroy(lg->consumer);
  lg->consumer = NULL;
  free(lg->recs);
  lg->recs = NULL;
  lg->caprecs = 0;
  free(parts);
  parts = NULL;
  nparts = capparts = 0;
  txn_reset(lg);
  free(lg->txn.touched);
  free(lg->txn.outbox);
  memset(&lg->txn, 0, sizeof lg->txn);
  return rc;
}
