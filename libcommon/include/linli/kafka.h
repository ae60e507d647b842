/*
 * kafka.h - Kafka for linli: an idempotent producer with delivery reports,
 * and the consumer runner that implements DESIGN.md's exactly-once rules
 * once, for every consumer.
 *
 * The runner: read_committed consumer (group "linli-<name>"), transactional
 * producer; each batch of input records is handed whole to the consumer's
 * handle_batch() callback, whose output events (linli_emit) and the batch's
 * input offsets commit in one Kafka transaction (send_offsets_to_transaction).
 * A record that handle() rejects as bad input goes to linli.dlq.v1 with its
 * reason, in the same transaction that moves the offset past it. A transient
 * failure aborts the transaction, rewinds the partitions to the batch start
 * and retries after a backoff. Rebalances finish (revoke) or abort (lost
 * assignment) the open transaction. SIGTERM/SIGINT drain: the open batch is
 * committed and the consumer leaves its group cleanly.
 *
 * All linli producers use the murmur2_random partitioner, the Java client's,
 * so that a key lands in the same partition whoever produced it.
 */
#ifndef LINLI_KAFKA_H
#define LINLI_KAFKA_H

#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>
#include <protobuf-c/protobuf-c.h>

#include "linli/config.h"
#include "linli/owned.h"

/* ---------------------------------------------------------------- producer */

typedef struct linli_producer linli_producer_t;

/* Called from linli_producer_poll()/flush for each delivered (or failed)
 * message that was sent with linli_producer_send_async. */
typedef void (*linli_delivery_fn)(void *opaque, rd_kafka_resp_err_t err,
                                  int32_t partition, int64_t offset);

/* The same with librdkafka's persistence status of the message
 * (rd_kafka_message_status): on a failed delivery,
 * RD_KAFKA_MSG_STATUS_POSSIBLY_PERSISTED means the write may still be in the
 * log - a timeout is not a "no". */
typedef void (*linli_delivery_status_fn)(void *opaque, rd_kafka_resp_err_t err,
                                         rd_kafka_msg_status_t status,
                                         int32_t partition, int64_t offset);

/* Idempotent producer (acks=all), configured from [kafka]. client_id names
 * the process in broker logs. *out owned by the caller. */
int linli_producer_new(const linli_config_t *cfg, const char *client_id,
                       linli_producer_t **out, char *err, size_t errlen);
/* The same, with n librdkafka properties (name, value) that the caller's
 * contract needs applied after [kafka] (e.g. a bounded message.timeout.ms).
 * acks and idempotence stay forced. */
int linli_producer_new_with(const linli_config_t *cfg, const char *client_id,
                            const char *const (*props)[2], size_t n,
                            linli_producer_t **out, char *err, size_t errlen);

/* Send and wait until the broker acknowledged the write (or timeout_ms).
 * hdrs (may be NULL) is owned by the producer afterwards, also on error.
 * partition may be RD_KAFKA_PARTITION_UA (partition by key). On success
 * *partition_out / *offset_out (may be NULL) tell where it was written. */
int linli_producer_send_sync(linli_producer_t *p, const char *topic,
                             int32_t partition, const void *key,
                             size_t keylen, const void *value, size_t vallen,
                             rd_kafka_headers_t *hdrs, int timeout_ms,
                             int32_t *partition_out, int64_t *offset_out,
                             char *err, size_t errlen);

/* Enqueue; cb(opaque, ...) runs from a later poll/flush. Retries on a full
 * queue by polling, up to timeout_ms. hdrs ownership as above. */
int linli_producer_send_async(linli_producer_t *p, const char *topic,
                              int32_t partition, const void *key,
                              size_t keylen, const void *value, size_t vallen,
                              rd_kafka_headers_t *hdrs, linli_delivery_fn cb,
                              void *opaque, int timeout_ms, char *err,
                              size_t errlen);

/* linli_producer_send_async with a status-aware callback. */
int linli_producer_send_async_status(linli_producer_t *p, const char *topic,
                                     int32_t partition, const void *key,
                                     size_t keylen, const void *value,
                                     size_t vallen, rd_kafka_headers_t *hdrs,
                                     linli_delivery_status_fn cb, void *opaque,
                                     int timeout_ms, char *err, size_t errlen);

/* Serve delivery reports; returns the number served. */
int linli_producer_poll(linli_producer_t *p, int timeout_ms);
/* Wait for every outstanding message; LINLI_ERR_TRANSIENT if some remain. */
int linli_producer_flush(linli_producer_t *p, int timeout_ms);
/* Non-zero after a fatal producer error (the producer must be recreated). */
int linli_producer_fatal(linli_producer_t *p);
/* Flushes (up to 10 s), reports undelivered messages, destroys. */
void linli_producer_free(linli_producer_t *p);
rd_kafka_t *linli_producer_handle(linli_producer_t *p);

/* ------------------------------------------------------------------ runner */

typedef struct linli_runner linli_runner_t;
/* Where a handler or a clock writes its output events: the open transaction. */
typedef struct linli_emit linli_emit_t;

/*
 * The batch contract. The runner hands a consumer every input record that
 * one Kafka transaction will commit, at once, so that the consumer can
 * decide all their effects in memory and apply them with one round trip per
 * shard (linli_redis_batch_*), not one per record. The handler marks bad
 * records with linli_batch_reject (they go to the DLQ, in the same
 * transaction, with their reason); the others must have taken effect and
 * written their outputs (linli_emit) when it returns LINLI_OK.
 */
typedef struct linli_batch linli_batch_t;

/* Records in the batch, in the order consumed (per partition: by offset). */
size_t linli_batch_count(const linli_batch_t *b);
const rd_kafka_message_t *linli_batch_msg(const linli_batch_t *b, size_t i);
/* The offset this batch starts at in (topic, partition): every record
 * before it is committed. -1 if the batch holds no record of it. */
int64_t linli_batch_start(const linli_batch_t *b, const char *topic,
                          int32_t partition);
/* Send record i to the DLQ with reason (copied) and error code (usually
 * LINLI_ERR_INVALID); the batch goes on without it. */
void linli_batch_reject(linli_batch_t *b, size_t i, int code,
                        const char *reason);
/* Unpack record i as a message of type d (*out owned by the caller, free
 * with protobuf_c_message_free_unpacked). An empty or undecodable record is
 * rejected ("empty record: expected a <Type>", "undecodable record: not a
 * <Type> (<n> bytes)") and LINLI_ERR_INVALID returned with *out NULL. */
int linli_batch_unpack(linli_batch_t *b, size_t i,
                       const ProtobufCMessageDescriptor *d,
                       ProtobufCMessage **out);
/* LINLI_OK, or the code record i was rejected with (*reason set, may be
 * NULL). */
int linli_batch_verdict(const linli_batch_t *b, size_t i, const char **reason);
/* Per partition in the batch: last offset + 1, what commits it. */
const rd_kafka_topic_partition_list_t *
linli_batch_next_offsets(const linli_batch_t *b);

typedef struct linli_runner_spec {
  /* Consumer name: group "linli-<name>" (unless group_id or the config's
   * runner.group), DLQ "consumer" header, transactional.id
   * "linli-<name>-<instance>", metrics labels. */
  const char *name;
  const char *group_id;        /* optional override of the group (wins over
                                  runner.group) */
  const char *const *topics;   /* NULL-terminated input topics */
  void *app;                   /* passed to every callback */

  /*
   * Process one batch (runner.batch_size records at most, or what arrived
   * within runner.flush_interval_ms). Return LINLI_OK (rejected records go
   * to the DLQ, the rest is committed); LINLI_ERR_TRANSIENT to abort and
   * retry the whole batch later (after a rewind); LINLI_ERR_FATAL to stop.
   * reason says why for the last two. Must be deterministic in the
   * records: a redelivered batch (possibly cut at other boundaries) has to
   * produce the same outputs.
   */
  int (*handle_batch)(void *app, linli_batch_t *batch, linli_emit_t *emit,
                      char *reason, size_t reasonlen);

  /*
   * Or one record at a time (value may be NULL for a tombstone), a thin
   * adapter over the batch contract: LINLI_OK; LINLI_ERR_INVALID for bad
   * input (reason -> DLQ); LINLI_ERR_TRANSIENT aborts and retries the whole
   * batch; LINLI_ERR_FATAL stops the runner. Set exactly one of the two.
   */
  int (*handle)(void *app, const rd_kafka_message_t *msg, linli_emit_t *emit,
                char *reason, size_t reasonlen);

  /* Optional clock: called about every runner.tick_interval_ms inside an
   * open transaction, to write decision events (e.g. OrderExpired). Same
   * return codes as handle (LINLI_ERR_INVALID is treated as transient).
   * With an external offset store there is no transaction: emit is NULL. */
  int (*tick)(void *app, linli_emit_t *emit, int64_t now_ms);

  /*
   * Optional external offset store (e.g. the ledger's PostgreSQL table),
   * for a consumer whose effects commit in a database rather than in Kafka.
   * On assign the runner asks offsets_load() where each partition stands
   * (set .offset; RD_KAFKA_OFFSET_BEGINNING when the store has nothing) and
   * reads from there. It then opens no Kafka transaction and commits no
   * offsets: handle_batch must commit, in one database transaction, its
   * effects, linli_batch_next_offsets() and its rejected records (DLQ) —
   * emit is NULL. A transient failure rewinds to the batch start as usual.
   */
  int (*offsets_load)(void *app, rd_kafka_topic_partition_list_t *parts);

  /* Optional: after partitions were assigned / before they are revoked. */
  void (*on_assign)(void *app, const rd_kafka_topic_partition_list_t *parts);
  void (*on_revoke)(void *app, const rd_kafka_topic_partition_list_t *parts);
  /* Optional: a map of one topic's owned partitions (linli/owned.h) that
   * the runner updates on assign and revoke, before on_assign/on_revoke. */
  linli_owned_t *owned;
  /* Optional: after a transaction committed / aborted (drop batch state). */
  void (*on_commit)(void *app);
  void (*on_abort)(void *app);
} linli_runner_spec_t;

/* Build the runner from config ([kafka], [runner]). Nothing connects until
 * linli_runner_run(). *out owned by the caller. */
int linli_runner_new(const linli_config_t *cfg, const linli_runner_spec_t *spec,
                     linli_runner_t **out, char *err, size_t errlen);

/* Consume until linli_runner_stop() or a fatal error. LINLI_OK after a
 * graceful drain, LINLI_ERR_FATAL otherwise (err says why). */
int linli_runner_run(linli_runner_t *r, char *err, size_t errlen);

/* Ask the runner to drain and return. Async-signal-safe. */
void linli_runner_stop(linli_runner_t *r);
/* Route SIGTERM and SIGINT to linli_runner_stop(r). */
void linli_runner_handle_signals(linli_runner_t *r);

void linli_runner_free(linli_runner_t *r);

/* A consumer process's whole run: build the runner from spec, route
 * SIGTERM/SIGINT to its drain, consume until stopped, free it. Logs why it
 * stopped. LINLI_OK after a graceful drain. */
int linli_runner_main(const linli_config_t *cfg,
                      const linli_runner_spec_t *spec);

/* This instance's id (runner.instance_id, default "<hostname>-<pid>"). */
const char *linli_runner_instance(const linli_runner_t *r);

/* Write an output event in the open transaction. partition may be
 * RD_KAFKA_PARTITION_UA (by key). hdrs (may be NULL) is owned afterwards. */
int linli_emit(linli_emit_t *e, const char *topic, int32_t partition,
               const void *key, size_t keylen, const void *value,
               size_t vallen, rd_kafka_headers_t *hdrs);

/* Pack a protobuf message and write it with linli_emit. */
int linli_emit_message(linli_emit_t *e, const char *topic, int32_t partition,
                       const char *key, const ProtobufCMessage *msg);

/* DLQ header names (values are strings). */
#define LINLI_DLQ_H_TOPIC "source_topic"
#define LINLI_DLQ_H_PARTITION "source_partition"
#define LINLI_DLQ_H_OFFSET "source_offset"
#define LINLI_DLQ_H_CONSUMER "consumer"
#define LINLI_DLQ_H_ERROR "error_code"
#define LINLI_DLQ_H_REASON "reason"

#endif
