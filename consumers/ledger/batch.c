/*
 * batch.c - the ledger on libcommon's runner, with PostgreSQL as the
 * external offset store: each batch the runner hands over is applied in one
 * PostgreSQL transaction that also moves the ledger's offsets
 * (consumer_offsets), so the record and the position in the log commit
 * together or not at all (DESIGN.md rule 3).
 *
 * Exactly once, through crashes, rebalances and zombies:
 *  - on assignment, each partition starts at the next_offset PostgreSQL
 *    holds for it (the beginning if none): what the record holds decides
 *    where reading resumes, never Kafka's committed offset (offsets_load);
 *  - a batch's transaction first locks the offset rows of its partitions
 *    (FOR UPDATE) and skips every record below the stored next_offset: a
 *    record is applied at most once even if a previous owner of the
 *    partition, or a COMMIT whose reply was lost, already applied it;
 *  - the offset rows move to the batch's next offsets in the same
 *    transaction as the rows the records produced and their DLQ rows.
 *
 * A PostgreSQL outage makes linli_pg_txn wait and retry the batch (the
 * transaction function is re-runnable: all its state is reset per attempt).
 * A record whose SQL fails with a data error (SQLSTATE class 22 or 23) is
 * poisoned: the batch runs again and that record goes to the DLQ instead;
 * if even its DLQ row is refused, the row is stored redacted. Any other SQL
 * error (a missing table, a bug) stops the process: the batch is not
 * committed, and a restart redoes it.
 *
 * The runner's clock (tick, no transaction: emit is NULL) publishes outbox
 * rows a crash or a broker outage left behind.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ledger.h"
#include "linli/clock.h"
#include "linli/error.h"
#include "linli/log.h"
#include "domain/schema.h"

#define SWEEP_MIN_AGE_S 30

/* --------------------------------------------------------------- batch */

static void txn_reset(struct ledger *lg) {
  struct ledger_txn *t = &lg->txn;
  for (size_t i = 0; i < t->ntouched; i++)
    free(t->touched[i]);
  ledger_outbox_txn_reset(t);
  t->ntouched = 0;
  t->cur = -1;
  t->poison_idx = -1;
  t->err_owner = -1;
  t->poison_reason[0] = '\0';
  t->applied = t->skipped = t->dlq = 0;
  ledger_bulk_clear(lg);
  lg->bulk_failed = 0;
  for (int i = 0; i < lg->nrecs; i++) {
    free(lg->recs[i].dlq_reason);
    lg->recs[i].dlq_reason = NULL;
  }
}

static void batch_drop(struct ledger *lg) {
  for (int i = 0; i < lg->nrecs; i++) {
    free(lg->recs[i].poison);
    free(lg->recs[i].dlq_reason);
  }
  lg->nrecs = 0;
}

/* The runner's batch as the ledger's records (borrowed messages). */
static int batch_load(struct ledger *lg, const linli_batch_t *b) {
  size_t n = linli_batch_count(b);
  if (n > (size_t)lg->caprecs) {
    struct ledger_rec *r = realloc(lg->recs, n * sizeof *r);
    if (r == NULL)
      return LINLI_ERR_NOMEM;
    lg->recs = r;
    lg->caprecs = (int)n;
  }
  for (size_t i = 0; i < n; i++) {
    lg->recs[i].m = linli_batch_msg(b, i);
    lg->recs[i].poison = NULL;
    lg->recs[i].redact = 0;
    lg->recs[i].dlq_reason = NULL;
  }
  lg->nrecs = (int)n;
  return LINLI_OK;
}

static int part_cmp(const void *a, const void *b) {
  const struct ledger_part *x = a, *y = b;
  int c = strcmp(x->topic, y->topic);
  if (c != 0)
    return c;
  return (x->partition > y->partition) - (x->partition < y->partition);
}

static struct ledger_part *part_find(struct ledger *lg, const char *topic,
                                     int32_t partition) {
  for (int i = 0; i < lg->nparts; i++)
    if (lg->parts[i].partition == partition &&
        strcmp(lg->parts[i].topic, topic) == 0)
      return &lg->parts[i];
  return NULL;
}

/* Partitions of the batch, sorted, so that two instances lock offset rows
 * in the same order; next is what the runner says commits each. */
static int build_parts(struct ledger *lg, const linli_batch_t *b) {
  const rd_kafka_topic_partition_list_t *next = linli_batch_next_offsets(b);
  lg->nparts = 0;
  if (next->cnt > lg->capparts) {
    struct ledger_part *n =
        realloc(lg->parts, (size_t)next->cnt * sizeof *n);
    if (n == NULL)
      return LINLI_ERR_NOMEM;
    lg->parts = n;
    lg->capparts = next->cnt;
  }
  for (int i = 0; i < next->cnt; i++) {
    struct ledger_part *p = &lg->parts[lg->nparts++];
    p->topic = next->elems[i].topic;
    p->partition = next->elems[i].partition;
    p->first = linli_batch_start(b, p->topic, p->partition);
    p->next = next->elems[i].offset;
    p->fence = 0;
  }
  qsort(lg->parts, (size_t)lg->nparts, sizeof *lg->parts, part_cmp);
  return LINLI_OK;
}

/* ------------------------------------------------------------- offsets */

/* The batch's partitions, as arrays ($2 topics, $3 partitions, $4
 * offsets): one statement each for all of them, rows in (topic,
 * partition) order so that two instances lock them in the same order. */
static const struct ledger_stmt OFFSET_INIT = {
    "ledger_offset_init",
    "INSERT INTO consumer_offsets (consumer_group, topic, partition, "
    "next_offset) SELECT $1, t, p, o FROM unnest($2::text[], $3::int[], "
    "$4::bigint[]) AS u(t, p, o) ORDER BY t, p ON CONFLICT DO NOTHING",
    4, 0, NULL, NULL, 0, 0, NULL};

static const struct ledger_stmt OFFSET_LOCK = {
    "ledger_offset_lock",
    "SELECT topic, partition, next_offset FROM consumer_offsets WHERE "
    "consumer_group = $1 AND (topic, partition) IN (SELECT * FROM "
    "unnest($2::text[], $3::int[])) ORDER BY topic, partition FOR UPDATE",
    3, 0, NULL, NULL, 0, 0, NULL};

static const struct ledger_stmt OFFSET_SET = {
    "ledger_offset_set",
    "UPDATE consumer_offsets c SET next_offset = greatest(c.next_offset, "
    "u.o), updated_at = now() FROM unnest($2::text[], $3::int[], "
    "$4::bigint[]) AS u(t, p, o) WHERE c.consumer_group = $1 AND "
    "c.topic = u.t AND c.partition = u.p",
    4, 0, NULL, NULL, 0, 0, NULL};

/* The batch's partitions as the arrays of OFFSET_*: offsets are the first
 * offsets (next = 0) or what commits each (next = 1). */
static int part_arrays(struct ledger *lg, int next, char *lit[3]) {
  int n = lg->nparts;
  const char **t = calloc((size_t)n + 1, sizeof *t);
  char (*num)[2][24] = calloc((size_t)n + 1, sizeof *num);
  const char **p = calloc((size_t)n + 1, sizeof *p);
  const char **o = calloc((size_t)n + 1, sizeof *o);
  int rc = t && num && p && o ? LINLI_OK : LINLI_ERR_NOMEM;
  for (int i = 0; rc == LINLI_OK && i < n; i++) {
    const struct ledger_part *x = &lg->parts[i];
    snprintf(num[i][0], sizeof num[i][0], "%d", (int)x->partition);
    snprintf(num[i][1], sizeof num[i][1], "%lld",
             (long long)(next ? x->next : x->first));
    t[i] = x->topic;
    p[i] = num[i][0];
    o[i] = num[i][1];
  }
  lit[0] = lit[1] = lit[2] = NULL;
  if (rc == LINLI_OK) {
    lit[0] = ledger_text_array(t, (size_t)n);
    lit[1] = ledger_text_array(p, (size_t)n);
    lit[2] = ledger_text_array(o, (size_t)n);
    if (!lit[0] || !lit[1] || !lit[2])
      rc = LINLI_ERR_NOMEM;
  }
  free(t);
  free(num);
  free(p);
  free(o);
  return rc;
}

static void part_arrays_free(char *lit[3]) {
  for (int i = 0; i < 3; i++)
    free(lit[i]);
}

static const struct ledger_stmt OFFSET_ALL = {
    "ledger_offsets",
    "SELECT topic, partition, next_offset FROM consumer_offsets WHERE "
    "consumer_group = $1",
    1, 0, NULL, NULL, 0, 0, NULL};

/* Data errors belong to the record; anything else is ours to fix. */
static int is_data_error(const char *err) {
  return strncmp(err, "22", 2) == 0 || strncmp(err, "23", 2) == 0;
}

/* Test-only fault hook: LEDGER_FAULT_KILL_AFTER_ROWS=N SIGKILLs the
 * process once the N-th record of a batch was applied (its rows sent to
 * PostgreSQL), before the batch's COMMIT. Read once; unset in production. */
static void fault_after_rows(struct ledger *lg, int applied) {
  if (lg->fault_rows == 0) {
    const char *v = getenv("LEDGER_FAULT_KILL_AFTER_ROWS");
    lg->fault_rows = v && atoi(v) > 0 ? atoi(v) : -1;
  }
  if (lg->fault_rows > 0 && applied >= lg->fault_rows) {
    LINLI_WARN("fault injection: SIGKILL inside a batch", "rows=%d", applied);
    raise(SIGKILL);
  }
}

/* A failed statement: poison the record it belongs to if the failure is
 * the record's (a data error), so that the batch runs again without it. */
static int failed(struct ledger *lg, int rc, int cur, const char *err) {
  if (rc == LINLI_ERR_TRANSIENT)
    return rc;
  if (lg->bulk_failed)
    return LINLI_ERR_INVALID; /* no record to blame: run it row by row */
  int owner = lg->txn.err_owner >= 0 ? lg->txn.err_owner : cur;
  if (owner >= 0 && is_data_error(err)) {
    lg->txn.poison_idx = owner;
    snprintf(lg->txn.poison_reason, sizeof lg->txn.poison_reason,
             "the record refused it: %s", err);
    return LINLI_ERR_INVALID;
  }
  return cur >= 0 ? LINLI_ERR_INVALID : rc;
}

static int apply_records(struct ledger *lg, char *err, size_t errlen);

/* The transaction of one batch; runs again after a transient failure. Its
 * statements go through libpq's pipeline: writes do not wait for their
 * replies, only reads do. */
static int apply_batch(linli_pg_t *pg, void *arg, char *err, size_t errlen) {
  struct ledger *lg = arg;
  txn_reset(lg);
  lg->pipe_n = 0;
  int rc = linli_pg_pipeline_enter(pg, err, errlen);
  if (rc != LINLI_OK)
    return rc;
  lg->pipe = 1;
  rc = apply_records(lg, err, errlen);
  if (rc == LINLI_OK && (rc = ledger_pipe_drain(lg, NULL, err, errlen)) !=
                            LINLI_OK)
    rc = failed(lg, rc, -1, err);
  lg->pipe = 0;
  lg->pipe_n = 0;
  char e2[512];
  int prc = linli_pg_pipeline_exit(pg, e2, sizeof e2);
  if (rc == LINLI_OK && prc != LINLI_OK) {
    rc = prc;
    snprintf(err, errlen, "%s", e2);
  }
  return rc;
}

static int apply_records(struct ledger *lg, char *err, size_t errlen) {
  int rc;
  char *lit[3];
  if ((rc = part_arrays(lg, 0, lit)) != LINLI_OK) {
    part_arrays_free(lit);
    return rc;
  }
  const char *ip[] = {lg->group, lit[0], lit[1], lit[2]};
  PGresult *res = NULL;
  if ((rc = ledger_sql(lg, &OFFSET_INIT, ip, NULL, err, errlen)) == LINLI_OK)
    rc = ledger_sql(lg, &OFFSET_LOCK, ip, &res, err, errlen);
  part_arrays_free(lit);
  if (rc != LINLI_OK)
    return failed(lg, rc, -1, err);
  for (int r = 0; r < PQntuples(res); r++) {
    struct ledger_part *p =
        part_find(lg, PQgetvalue(res, r, 0), atoi(PQgetvalue(res, r, 1)));
    if (p != NULL)
      p->fence = atoll(PQgetvalue(res, r, 2));
  }
  PQclear(res);
  if ((rc = ledger_prefetch_seen(lg, err, errlen)) != LINLI_OK ||
      (rc = ledger_prefetch_locks(lg, err, errlen)) != LINLI_OK)
    return failed(lg, rc, -1, err);
  int done = 0;
  for (int i = 0; i < lg->nrecs; i++) {
    const rd_kafka_message_t *m = lg->recs[i].m;
    const struct ledger_part *p =
        part_find(lg, rd_kafka_topic_name(m->rkt), m->partition);
    if (p != NULL && m->offset < p->fence) {
      lg->txn.skipped++; /* applied by an earlier transaction */
      continue;
    }
    lg->txn.cur = i;
    rc = ledger_apply(lg, i, err, errlen);
    if (rc != LINLI_OK)
      return failed(lg, rc, i, err);
    fault_after_rows(lg, ++done);
  }
  lg->txn.cur = -1;
  if ((rc = ledger_bulk_flush(lg, err, errlen)) != LINLI_OK ||
      (rc = ledger_outbox_statuses(lg, err, errlen)) != LINLI_OK)
    return failed(lg, rc, -1, err);
  if ((rc = part_arrays(lg, 1, lit)) == LINLI_OK) {
    const char *sp[] = {lg->group, lit[0], lit[1], lit[2]};
    rc = ledger_sql(lg, &OFFSET_SET, sp, NULL, err, errlen);
  }
  part_arrays_free(lit);
  if (rc != LINLI_OK)
    return failed(lg, rc, -1, err);
  return LINLI_OK;
}

/* A record whose SQL failed: the first time it goes to the DLQ instead;
 * if its DLQ row failed too, that row is stored redacted. 1 if the batch
 * should run again, 0 if there is nothing left to try. */
static int poison(struct ledger *lg) {
  int idx = lg->txn.poison_idx;
  if (idx < 0)
    return 0;
  struct ledger_rec *r = &lg->recs[idx];
  const rd_kafka_message_t *m = r->m;
  if (r->poison == NULL) {
    LINLI_WARN("record refused by the database: to the DLQ",
               "topic=%s partition=%d offset=%lld reason=\"%.120s\"",
               rd_kafka_topic_name(m->rkt), (int)m->partition,
               (long long)m->offset, lg->txn.poison_reason);
    r->poison = strdup(lg->txn.poison_reason);
    return r->poison != NULL;
  }
  if (!r->redact) {
    LINLI_WARN("DLQ row refused by the database: stored redacted",
               "topic=%s partition=%d offset=%lld",
               rd_kafka_topic_name(m->rkt), (int)m->partition,
               (long long)m->offset);
    r->redact = 1;
    return 1;
  }
  return 0;
}

/* ------------------------------------------------------------- runner */

int ledger_handle_batch(void *app, linli_batch_t *b, linli_emit_t *emit,
                        char *reason, size_t reasonlen) {
  (void)emit; /* NULL: the ledger's offsets live in PostgreSQL */
  struct ledger *lg = app;
  char err[1024] = "";
  int64_t t0 = linli_clock_mono_ms();
  int rc = batch_load(lg, b);
  if (rc == LINLI_OK)
    rc = build_parts(lg, b);
  lg->serial = 0;
  while (rc == LINLI_OK) {
    rc = linli_pg_txn(lg->pg, apply_batch, lg, 0, err, sizeof err);
    if (rc == LINLI_ERR_INVALID && lg->bulk_failed && !lg->serial) {
      LINLI_INFO("bulk write refused: the batch again, a row at a time",
                 "records=%d error=\"%.120s\"", lg->nrecs, err);
      lg->serial = 1;
      rc = LINLI_OK;
      continue;
    }
    if (rc != LINLI_ERR_INVALID || !poison(lg))
      break;
    rc = LINLI_OK; /* again, with the poisoned record to the DLQ */
  }
  lg->serial = 0;
  if (rc != LINLI_OK) {
    if (rc == LINLI_ERR_TRANSIENT) {
      snprintf(reason, reasonlen, "PostgreSQL unavailable: %.200s", err);
    } else {
      LINLI_ERROR("batch failed: the ledger stops (restart redoes it)",
                  "records=%d error=\"%.120s\"", lg->nrecs, err);
      snprintf(reason, reasonlen, "batch failed: %.400s", err);
      rc = LINLI_ERR_FATAL;
    }
    batch_drop(lg);
    txn_reset(lg);
    return rc;
  }
  for (int i = 0; i < lg->nrecs; i++)
    if (lg->recs[i].dlq_reason != NULL)
      linli_batch_reject(b, (size_t)i, LINLI_ERR_INVALID,
                         lg->recs[i].dlq_reason);
  linli_counter_add(lg->m_batches, 1);
  linli_counter_add(lg->m_records, (uint64_t)lg->nrecs);
  linli_counter_add(lg->m_dlq, lg->txn.dlq);
  int64_t t1 = linli_clock_mono_ms();
  linli_histogram_observe(lg->m_batch_s, (double)(t1 - t0) / 1000.0);
  if (ledger_outbox_publish_txn(lg) != LINLI_OK)
    LINLI_WARN("outbox publish deferred", "rows=%zu messages=%zu",
               lg->txn.noutbox, lg->txn.noutmsg);
  LINLI_DEBUG("batch committed",
              "records=%d applied=%zu skipped=%zu dlq=%zu orders=%zu "
              "txn_ms=%lld publish_ms=%lld",
              lg->nrecs, lg->txn.applied, lg->txn.skipped, lg->txn.dlq,
              lg->txn.ntouched, (long long)(t1 - t0),
              (long long)(linli_clock_mono_ms() - t1));
  batch_drop(lg);
  txn_reset(lg);
  return LINLI_OK;
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* Where each assigned partition resumes: PostgreSQL's next_offset. Waits
 * for PostgreSQL (a restart during an outage) until stopped. */
int ledger_offsets_load(void *app, rd_kafka_topic_partition_list_t *parts) {
  struct ledger *lg = app;
  char err[512];
  for (;;) {
    const char *p[] = {lg->group};
    PGresult *res = NULL;
    int rc = ledger_sql(lg, &OFFSET_ALL, p, &res, err, sizeof err);
    if (rc == LINLI_OK) {
      for (int i = 0; i < parts->cnt; i++) {
        rd_kafka_topic_partition_t *tp = &parts->elems[i];
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
      LINLI_ERROR("cannot read offsets from the record", "sqlstate=%.5s",
                  err);
      return rc;
    }
    LINLI_WARN("waiting for PostgreSQL to read offsets", "sqlstate=%.5s",
               err);
    sleep_ms(lg->backoff_ms);
  }
}

/* The clock: publish what a crash or a broker outage left in the outbox. */
int ledger_tick(void *app, linli_emit_t *emit, int64_t now_ms) {
  (void)emit;
  (void)now_ms;
  struct ledger *lg = app;
  linli_producer_poll(lg->producer, 0);
  if (ledger_outbox_sweep(lg, lg->swept ? SWEEP_MIN_AGE_S : 0) == LINLI_OK)
    lg->swept = 1;
  else
    LINLI_WARN("outbox not published yet", "%s", "retry=later");
  return LINLI_OK;
}

void ledger_batch_free(struct ledger *lg) {
  batch_drop(lg);
  txn_reset(lg);
  free(lg->recs);
  lg->recs = NULL;
  lg->caprecs = 0;
  free(lg->parts);
  lg->parts = NULL;
  lg->nparts = lg->capparts = 0;
  ledger_seen_clear(&lg->txn);
  free(lg->txn.seen_ids);
  free(lg->txn.seen);
  ledger_locks_clear(&lg->txn);
  free(lg->txn.lock_ids);
  free(lg->txn.lock_rows);
  free(lg->txn.lock_known);
  free(lg->txn.touched);
  free(lg->txn.outbox);
  free(lg->txn.outmsg);
  memset(&lg->txn, 0, sizeof lg->txn);
  ledger_bulk_clear(lg);
  for (int i = 0; i < lg->nbulk; i++) {
    free(lg->bulk[i].vals);
    free(lg->bulk[i].slot);
  }
  lg->nbulk = 0;
  free(lg->pipe_owner);
  lg->pipe_owner = NULL;
  lg->pipe_cap = lg->pipe_n = lg->pipe_head = 0;
}
