/*
 * ledger.h - linli-ledger: every topic into PostgreSQL, the record.
 *
 * The ledger runs on libcommon's runner with an external offset store: its
 * offsets live in PostgreSQL (table consumer_offsets) and commit in the same
 * database transaction as the rows the records produced (DESIGN.md rule 3).
 * A batch of records is applied in one linli_pg_txn; after it committed, the ledger
 * publishes what the transaction queued in ledger_outbox: the new state of
 * every order it touched (linli.order-status.v1, of which it is the single
 * writer) and its own DLQ records.
 *
 * Files: main.c (process, runner spec), batch.c (a batch's transaction,
 * offsets, the outbox clock), sql.c (statements in the batch's pipeline),
 * apply.c (one record: decode, dedupe, dispatch to its topic's applier,
 * DLQ), the appliers per topic family (apply_orders.c, apply_reservations.c,
 * apply_logistics.c, apply_stock.c, apply_groupbuy.c), the helpers they
 * share (order_ops.c: checks, duplicates, row locks, the state machine of
 * libdomain's domain/order_state.h, history; stock_move.c), crypto.c
 * (personal data at rest), outbox.c (order-status and DLQ publishing).
 * Calls go one way: batch.c -> apply.c -> appliers -> helpers -> sql.c.
 */
#ifndef LEDGER_H
#define LEDGER_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>
#include <protobuf-c/protobuf-c.h>
#include <sodium.h>

#include "linli/config.h"
#include "linli/ids.h"
#include "linli/kafka.h"
#include "linli/metrics.h"
#include "linli/pg.h"

#define LEDGER_NAME "ledger"            /* DLQ "consumer" header, producer */
#define LEDGER_APP_NAME "linli-ledger"  /* PostgreSQL application_name */
#define LEDGER_RESERVER "reserver"      /* the reserver's DLQ consumer name */

/* ------------------------------------------------------------------ crypto */

struct ledger_crypto {
  unsigned char key[crypto_secretbox_KEYBYTES];
  char key_id[24]; /* "k" + 16 hex of a hash of the key: names it, reveals
                      nothing */
};

/* Load crypto.key (64 hex). An empty key is an error naming the key. */
int ledger_crypto_init(struct ledger_crypto *c, const char *hex, char *err,
                       size_t errlen);
/* nonce || secretbox(plain) as a bytea text literal ("\x..."), malloc'd;
 * NULL on allocation failure. */
char *ledger_encrypt_bytea(const struct ledger_crypto *c, const char *plain,
                           size_t len);
/* nonce || secretbox(plain), *outlen bytes, malloc'd (NULL: no memory). */
unsigned char *ledger_encrypt(const struct ledger_crypto *c, const void *plain,
                              size_t len, size_t *outlen);
/* The plaintext of ledger_encrypt's output, malloc'd; NULL if box is not
 * one under this key (or no memory). */
unsigned char *ledger_decrypt(const struct ledger_crypto *c,
                              const unsigned char *box, size_t blen,
                              size_t *outlen);
void ledger_crypto_wipe(struct ledger_crypto *c);

/* ------------------------------------------------------------- SQL helper */

/* A prepared statement, registered with linli_pg on first use. */
struct ledger_stmt {
  const char *name;
  const char *sql;
  int nparams;
  int per_batch; /* once per batch, over many keys: planned each time */
  /* A write that may wait: with bulk_sql, the rows of the batch are kept
   * in memory and sent as one statement over arrays ($k: the k-th
   * parameter of every row, as a text[] literal), just before any
   * statement that names a table it writes (bulk_table), and at the end
   * of the batch (sql.c). NULL: sent at once. */
  const char *bulk_sql;
  const char *bulk_table; /* the tables it writes or reads, space-separated
                             (words of other SQL) */
  int bulk_order;         /* flush rank: parents (lower) before children */
  /* The first bulk_key parameters identify the row: a second row with
   * the same key is folded into the first by bulk_merge (NULL: the rows
   * kept so far are sent first). 0: rows never collide. */
  int bulk_key;
  int (*bulk_merge)(char **row, const char *const *params);
};

/* Rows of one bulk statement kept for the open batch (sql.c). */
struct ledger_bulk {
  const struct ledger_stmt *st;
  char **vals; /* n rows of st->nparams values (malloc'd, NULL = NULL) */
  size_t n, cap;
  /* With bulk_key: the rows by key (open addressing, row + 1; 0 empty), so
   * finding a row of the same key costs no scan of the batch's rows. */
  size_t *slot;
  size_t nslot; /* a power of two, more than twice n */
};
#define LEDGER_MAX_BULK 12

/* ------------------------------------------------------------------ ledger */

/* One consumed record of the open batch. */
struct ledger_rec {
  const rd_kafka_message_t *m; /* borrowed from the runner's batch */
  char *poison; /* SQL error an earlier attempt hit on it: DLQ it, malloc'd */
  int redact;   /* its DLQ row was refused too: store it redacted */
  char *dlq_reason; /* sent to the DLQ by this attempt (malloc'd) */
};

/* One partition of the open batch. */
struct ledger_part {
  const char *topic; /* borrowed from the runner's batch */
  int32_t partition;
  int64_t first;     /* the batch's first offset */
  int64_t next;      /* what commits the batch (last + 1) */
  int64_t fence;     /* next_offset stored in PostgreSQL (locked) */
};

/* A message queued in ledger_outbox by the open transaction, kept in
 * memory so that it is published after COMMIT without reading it back. */
struct ledger_outmsg {
  const char *topic; /* lg->status_topic or lg->dlq_topic */
  unsigned char *key, *val; /* malloc'd; val is the clear DLQ record */
  size_t klen, vlen;
  char *headers; /* JSON array of {key, value}, malloc'd, or NULL */
};

/* The rows of one committed batch whose messages are on their way to the
 * broker: deleted from ledger_outbox once every delivery report is in and
 * none failed; on a failure they stay, and the sweep publishes them again.
 * The delivery reports point here, so it lives until the last one. A row
 * may hold many messages (a batch's order statuses). */
struct ledger_flight {
  struct ledger_flight *next;
  char **seqs;
  size_t n;           /* rows (seqs) */
  size_t nmsgs;       /* messages sent for them */
  size_t outstanding; /* deliveries not reported yet */
  int failed;         /* deliveries that failed */
};

/* State of one transaction attempt; reset at the start of every attempt,
 * because linli_pg_txn may run the attempt again. */
struct ledger_txn {
  char **touched; /* order ids whose row changed (for order-status) */
  size_t ntouched, captouched;
  char **outbox; /* ledger_outbox seqs written (text) */
  size_t noutbox, capoutbox;
  struct ledger_outmsg *outmsg; /* the messages those rows hold */
  size_t noutmsg, capoutmsg;
  int cur;           /* index of the record being applied, -1 outside */
  int poison_idx;    /* record whose SQL failed (-1: none) */
  int err_owner;     /* record whose pipelined statement failed (-1) */
  char poison_reason[512];
  size_t applied, skipped, dlq;
  /* Event ids of the batch looked up in order_events at once (sorted,
   * unique), and which of them are there (or were added since). */
  char **seen_ids;
  unsigned char *seen;
  size_t nseen, capseen;
  /* Order rows of the batch locked at once (sorted ids, unique), kept up
   * to date by the state machine's writes; an entry whose row changed in
   * a way not followed here is dropped (the next lock reads it). */
  char **lock_ids;
  struct order_row *lock_rows;
  unsigned char *lock_known;
  size_t nlock, caplock;
};

struct ledger {
  const linli_config_t *cfg;
  linli_pg_t *pg;
  linli_producer_t *producer; /* outbox relay (idempotent, not transactional) */
  linli_runner_t *runner;
  struct ledger_crypto crypto;
  char group[256];
  char dlq_topic[256];
  char suffix[64];        /* ledger.topic_suffix: isolated test topics */
  char status_topic[320]; /* linli.order-status.v1 + suffix */
  char instance[128];
  int backoff_ms;
  int max_lines; /* orders.max_lines: the reserver's bound, shared */
  volatile sig_atomic_t stop;
  struct ledger_flight *flights; /* published, reports pending (outbox.c) */
  char **done_seqs; /* published and acknowledged: to delete (outbox.c) */
  size_t ndone, capdone;
  int swept;          /* the outbox was swept once since start-up */
  int fault_rows;     /* test hook (batch.c); 0 unread, -1 off */

  struct ledger_rec *recs; /* the open batch */
  int nrecs, caprecs;
  struct ledger_part *parts; /* its partitions */
  int nparts, capparts;
  struct ledger_txn txn;
  int pipe; /* the batch's statements go through libpq's pipeline */
  int serial; /* this batch runs again a statement per row: a bulk write
                 failed and only single rows tell which record is at fault */
  int bulk_failed; /* a bulk write of this attempt failed */
  struct ledger_bulk bulk[LEDGER_MAX_BULK];
  int nbulk;
  /* Whether a statement's SQL names a bulk statement's tables, by the
   * pair: the statements are static, so each pair is scanned once, not
   * once per record (direct-mapped; a collision scans again). */
  struct ledger_names_memo {
    const struct ledger_stmt *st, *bulk;
    int names;
  } names_memo[128];
  int *pipe_owner; /* per pipelined statement: its record (-1: none) */
  size_t pipe_head, pipe_n, pipe_cap;

  linli_counter_t *m_records, *m_dlq, *m_batches, *m_published,
      *m_duplicates;
  linli_histogram_t *m_batch_s;
  linli_gauge_t *m_assigned;
};

/* The schema's name of topic (topic without ledger.topic_suffix); buf holds
 * it if it had to be copied. */
const char *ledger_topic_base(const struct ledger *lg, const char *topic,
                              char *buf, size_t len);

/* batch.c: the runner's callbacks (spec.handle_batch, offsets_load, tick),
 * and freeing the batch state at exit. */
int ledger_handle_batch(void *app, linli_batch_t *b, linli_emit_t *emit,
                        char *reason, size_t reasonlen);
int ledger_offsets_load(void *app, rd_kafka_topic_partition_list_t *parts);
int ledger_tick(void *app, linli_emit_t *emit, int64_t now_ms);
void ledger_batch_free(struct ledger *lg);

/* Run a prepared statement inside the open transaction; err gets
 * "SQLSTATE: message". Same return codes as linli_pg_exec_prepared. st is
 * a static statement (sql.c remembers facts about it by its address). */
int ledger_sql(struct ledger *lg, const struct ledger_stmt *st,
               const char *const *params, PGresult **res, char *err,
               size_t errlen);
/* In the batch's pipeline: read every pending statement's reply (the last
 * one into *res, may be NULL); a failure names its record in
 * txn.err_owner. */
int ledger_pipe_drain(struct ledger *lg, PGresult **res, char *err,
                      size_t errlen);
/* Register every statement with linli_pg (at start-up). */
int ledger_prepare(struct ledger *lg, const struct ledger_stmt *st);
/* 1 if bulk statements wait for the batch's flush (in the pipeline, not
 * serial): a caller may then count on its own bookkeeping instead of a
 * statement's reply. */
int ledger_bulk_on(const struct ledger *lg);
/* Send every bulk row kept (at the end of the batch's statements). */
int ledger_bulk_flush(struct ledger *lg, char *err, size_t errlen);
/* Drop the rows kept (a new attempt, or exit). */
void ledger_bulk_clear(struct ledger *lg);
/* A text[] literal of n values (NULL: SQL NULL), malloc'd; NULL: no
 * memory. */
char *ledger_text_array(const char *const *v, size_t n);
/* Sort n malloc'd ids and free the repeats; the number left. */
size_t ledger_ids_unique(char **ids, size_t n);

/* apply.c: look up the batch's event ids in order_events in one
 * statement (ev_seen then answers from memory). */
int ledger_prefetch_seen(struct ledger *lg, char *err, size_t errlen);
void ledger_seen_clear(struct ledger_txn *t);
/* apply.c: lock the order rows of the batch (keys of the topics keyed by
 * order id) in one statement (ev_order_lock then answers from memory). */
int ledger_prefetch_locks(struct ledger *lg, char *err, size_t errlen);
void ledger_locks_clear(struct ledger_txn *t);

/* Remember order_id as touched by this attempt (for order-status). */
int ledger_touch(struct ledger *lg, const char *order_id);
/* Append s to the growable vector (*v, *n, *cap); s is the vector's only
 * on success. */
int ledger_strv_push(char ***v, size_t *n, size_t *cap, char *s);
/* Sort the touched ids and drop the repeats (once per batch, before
 * they are read). */
void ledger_touched_unique(struct ledger *lg);

/* apply.c: apply record i of the batch inside the open transaction.
 * LINLI_OK (applied, skipped as a duplicate, or sent to the DLQ);
 * LINLI_ERR_TRANSIENT to retry the batch; any other code is an SQL error
 * on this record (the caller poisons it and runs the batch again). */
int ledger_apply(struct ledger *lg, int i, char *err, size_t errlen);

/* outbox.c */
/* Queue a DLQ record for the input m (in the open transaction). redact:
 * keep no payload (its row was refused once already). */
int ledger_outbox_dlq(struct ledger *lg, const rd_kafka_message_t *m,
                      const char *reason, int redact, char *err,
                      size_t errlen);
/* Queue the current state of every touched order (in the transaction). */
int ledger_outbox_statuses(struct ledger *lg, char *err, size_t errlen);
/* After COMMIT: publish what this transaction queued, from memory, without
 * waiting for the broker (ledger_outbox_settle collects the reports). */
int ledger_outbox_publish_txn(struct ledger *lg);
/* Serve delivery reports (waiting up to wait_ms for the outstanding
 * ones); the rows of batches fully acknowledged become deletable. */
void ledger_outbox_settle(struct ledger *lg, int wait_ms);
/* Delete the acknowledged rows (one statement). A failure leaves them for
 * the sweep: a republished message is harmless (see outbox.c). */
int ledger_outbox_cleanup(struct ledger *lg);
/* Publish rows older than min_age_s (rows left by a crash or a failed
 * publish), in queue order, and delete them. */
int ledger_outbox_sweep(struct ledger *lg, int min_age_s);
/* At stop: wait for the reports, delete what was acknowledged. */
void ledger_outbox_finish(struct ledger *lg);
/* After the producer is freed (its last reports may name a flight). */
void ledger_outbox_free(struct ledger *lg);
/* A new attempt of the batch: forget the rows and messages it queued. */
void ledger_outbox_txn_reset(struct ledger_txn *t);

#endif
