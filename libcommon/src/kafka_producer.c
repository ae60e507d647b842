/*
 * kafka_producer.c - the idempotent producer every linli publisher uses
 * (linli-produce, the gateway, the ledger's order-status publisher).
 *
 * acks=all and enable.idempotence are forced: a write that the caller was
 * told succeeded is on every in-sync replica exactly once. Delivery reports
 * carry a small heap "ticket" per message, so a synchronous send that times
 * out never leaves librdkafka pointing at a dead stack frame.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kafka_internal.h"
#include "linli/clock.h"
#include "linli/error.h"
#include "linli/kafka.h"
#include "linli/log.h"

struct linli_producer {
  rd_kafka_t *rk;
  atomic_int fatal;
};

/* One per produced message; freed by whichever side lets go last. */
struct ticket {
  int is_sync;
  int done;      /* delivery report arrived */
  int abandoned; /* sync caller timed out and left: the report frees it */
  rd_kafka_resp_err_t err;
  int32_t partition;
  int64_t offset;
  linli_delivery_fn cb;
  linli_delivery_status_fn scb;
  void *opaque;
};

static void producer_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m,
                           void *conf_opaque) {
  (void)rk;
  (void)conf_opaque;
  struct ticket *t = m->_private;
  if (!t)
    return;
  if (!t->is_sync) {
    if (t->cb)
      t->cb(t->opaque, m->err, m->partition, m->offset);
    else if (t->scb)
      t->scb(t->opaque, m->err, rd_kafka_message_status(m), m->partition,
             m->offset);
    free(t);
    return;
  }
  if (t->abandoned) {
    free(t);
    return;
  }
  t->err = m->err;
  t->partition = m->partition;
  t->offset = m->offset;
  t->done = 1;
}

static void producer_error_cb(rd_kafka_t *rk, int err, const char *reason,
                              void *opaque) {
  linli_producer_t *p = opaque;
  if (err == RD_KAFKA_RESP_ERR__FATAL) {
    char why[512];
    rd_kafka_fatal_error(rk, why, sizeof why);
    atomic_store(&p->fatal, 1);
    LINLI_ERROR("kafka producer fatal error", "reason=\"%s\"", why);
    return;
  }
  /* Transport hiccups are retried by librdkafka itself; log for operators. */
  LINLI_WARN("kafka producer error", "code=%s reason=\"%s\"",
             rd_kafka_err2name(err), reason);
}

int linli_kafka_conf_base(const linli_config_t *cfg, rd_kafka_conf_t *conf,
                          const char *client_id, char *err, size_t errlen) {
  /* Defaults first, so that [kafka] in the config can override them. */
  static const char *const defaults[][2] = {
      {"compression.type", "lz4"},
      {"partitioner", "murmur2_random"},
      {"linger.ms", "5"},
      {"socket.keepalive.enable", "true"},
  };
  for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++) {
    if (rd_kafka_conf_set(conf, defaults[i][0], defaults[i][1], err, errlen) !=
        RD_KAFKA_CONF_OK)
      return LINLI_ERR_CONFIG;
  }
  /* Without bootstrap.servers librdkafka would wait forever, silently:
   * default to the local stack's broker (docs/config.md). */
  if ((!cfg || !linli_config_kafka_get(cfg, "bootstrap.servers")) &&
      rd_kafka_conf_set(conf, "bootstrap.servers", "127.0.0.1:9092", err,
                        errlen) != RD_KAFKA_CONF_OK)
    return LINLI_ERR_CONFIG;
  if (cfg) {
    int rc = linli_config_kafka_apply(cfg, conf, err, errlen);
    if (rc != LINLI_OK)
      return rc;
  }
  if (client_id &&
      rd_kafka_conf_set(conf, "client.id", client_id, err, errlen) !=
          RD_KAFKA_CONF_OK)
    return LINLI_ERR_CONFIG;
  return LINLI_OK;
}

int linli_producer_new(const linli_config_t *cfg, const char *client_id,
                       linli_producer_t **out, char *err, size_t errlen) {
  return linli_producer_new_with(cfg, client_id, NULL, 0, out, err, errlen);
}

int linli_producer_new_with(const linli_config_t *cfg, const char *client_id,
                            const char *const (*props)[2], size_t n,
                            linli_producer_t **out, char *err, size_t errlen) {
  linli_producer_t *p = calloc(1, sizeof *p);
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  if (!p || !conf) {
    snprintf(err, errlen, "out of memory");
    goto err;
  }
  if (linli_kafka_conf_base(cfg, conf, client_id, err, errlen) != LINLI_OK)
    goto err;
  for (size_t i = 0; i < n; i++)
    if (rd_kafka_conf_set(conf, props[i][0], props[i][1], err, errlen) !=
        RD_KAFKA_CONF_OK)
      goto err;
  /* Forced after the user's [kafka]: exactly-once writes are not optional. */
  if (rd_kafka_conf_set(conf, "enable.idempotence", "true", err, errlen) !=
          RD_KAFKA_CONF_OK ||
      rd_kafka_conf_set(conf, "acks", "all", err, errlen) != RD_KAFKA_CONF_OK)
    goto err;
  rd_kafka_conf_set_dr_msg_cb(conf, producer_dr_cb);
  rd_kafka_conf_set_error_cb(conf, producer_error_cb);
  rd_kafka_conf_set_opaque(conf, p);
  p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, errlen);
  if (!p->rk)
    goto err;
  conf = NULL; /* rd_kafka_new took ownership */
  *out = p;
  return LINLI_OK;
err:
  if (conf)
    rd_kafka_conf_destroy(conf);
  free(p);
  return LINLI_ERR_CONFIG;
}

/* producev with a retry on a full local queue; hdrs are consumed either way. */
static int produce_one(rd_kafka_t *rk, const char *topic, int32_t partition,
                       const void *key, size_t keylen, const void *value,
                       size_t vallen, rd_kafka_headers_t *hdrs, void *opaque,
                       int timeout_ms, char *err, size_t errlen) {
  /* poll() returns early when it serves anything: count time, not turns. */
  int64_t deadline = linli_clock_mono_ms() + timeout_ms;
  for (;;) {
    rd_kafka_resp_err_t e = rd_kafka_producev(
        rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
        RD_KAFKA_V_KEY(key, keylen),
        RD_KAFKA_V_VALUE((void *)value, vallen),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(hdrs),
        RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
      return LINLI_OK;
    if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL &&
        linli_clock_mono_ms() < deadline) {
      rd_kafka_poll(rk, 50);
      continue;
    }
    if (hdrs)
      rd_kafka_headers_destroy(hdrs); /* not taken on failure */
    snprintf(err, errlen, "produce to %s: %s", topic, rd_kafka_err2str(e));
    return e == RD_KAFKA_RESP_ERR__QUEUE_FULL ? LINLI_ERR_TRANSIENT
                                              : LINLI_ERR_INVALID;
  }
}

/* A ticket for one message, or NULL with err set (hdrs then consumed). */
static struct ticket *ticket_new(linli_producer_t *p, rd_kafka_headers_t *hdrs,
                                 int *rc, char *err, size_t errlen) {
  struct ticket *t = NULL;
  if (atomic_load(&p->fatal)) {
    snprintf(err, errlen, "producer is in a fatal state");
    *rc = LINLI_ERR_FATAL;
  } else if (!(t = calloc(1, sizeof *t))) {
    snprintf(err, errlen, "out of memory");
    *rc = LINLI_ERR_NOMEM;
  }
  if (!t && hdrs)
    rd_kafka_headers_destroy(hdrs);
  return t;
}

int linli_producer_send_sync(linli_producer_t *p, const char *topic,
                             int32_t partition, const void *key,
                             size_t keylen, const void *value, size_t vallen,
                             rd_kafka_headers_t *hdrs, int timeout_ms,
                             int32_t *partition_out, int64_t *offset_out,
                             char *err, size_t errlen) {
  int rc = LINLI_OK;
  struct ticket *t = ticket_new(p, hdrs, &rc, err, errlen);
  if (!t)
    return rc;
  t->is_sync = 1;
  rc = produce_one(p->rk, topic, partition, key, keylen, value, vallen,
                       hdrs, t, timeout_ms, err, errlen);
  if (rc != LINLI_OK) {
    free(t);
    return rc;
  }
  int64_t deadline = linli_clock_mono_ms() + timeout_ms;
  while (!t->done && linli_clock_mono_ms() < deadline)
    rd_kafka_poll(p->rk, 20);
  if (!t->done) {
    t->abandoned = 1; /* the delivery report frees it later */
    snprintf(err, errlen, "no acknowledgement from Kafka within %d ms",
             timeout_ms);
    return LINLI_ERR_TRANSIENT;
  }
  rd_kafka_resp_err_t e = t->err;
  if (partition_out)
    *partition_out = t->partition;
  if (offset_out)
    *offset_out = t->offset;
  free(t);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    snprintf(err, errlen, "delivery to %s failed: %s", topic,
             rd_kafka_err2str(e));
    return atomic_load(&p->fatal) ? LINLI_ERR_FATAL : LINLI_ERR_TRANSIENT;
  }
  return LINLI_OK;
}

int linli_producer_send_async(linli_producer_t *p, const char *topic,
                              int32_t partition, const void *key,
                              size_t keylen, const void *value, size_t vallen,
                              rd_kafka_headers_t *hdrs, linli_delivery_fn cb,
                              void *opaque, int timeout_ms, char *err,
                              size_t errlen) {
  int rc = LINLI_OK;
  struct ticket *t = ticket_new(p, hdrs, &rc, err, errlen);
  if (!t)
    return rc;
  t->cb = cb;
  t->opaque = opaque;
  rc = produce_one(p->rk, topic, partition, key, keylen, value, vallen,
                       hdrs, t, timeout_ms, err, errlen);
  if (rc != LINLI_OK)
    free(t);
  return rc;
}

int linli_producer_send_async_status(linli_producer_t *p, const char *topic,
                                     int32_t partition, const void *key,
                                     size_t keylen, const void *value,
                                     size_t vallen, rd_kafka_headers_t *hdrs,
                                     linli_delivery_status_fn cb, void *opaque,
                                     int timeout_ms, char *err, size_t errlen) {
  int rc = LINLI_OK;
  struct ticket *t = ticket_new(p, hdrs, &rc, err, errlen);
  if (!t)
    return rc;
  t->scb = cb;
  t->opaque = opaque;
  rc = produce_one(p->rk, topic, partition, key, keylen, value, vallen, hdrs,
                   t, timeout_ms, err, errlen);
  if (rc != LINLI_OK)
    free(t);
  return rc;
}

int linli_producer_poll(linli_producer_t *p, int timeout_ms) {
  return rd_kafka_poll(p->rk, timeout_ms);
}

int linli_producer_flush(linli_producer_t *p, int timeout_ms) {
  rd_kafka_flush(p->rk, timeout_ms);
  return rd_kafka_outq_len(p->rk) == 0 ? LINLI_OK : LINLI_ERR_TRANSIENT;
}

int linli_producer_fatal(linli_producer_t *p) { return atomic_load(&p->fatal); }

rd_kafka_t *linli_producer_handle(linli_producer_t *p) { return p->rk; }

void linli_producer_free(linli_producer_t *p) {
  if (!p)
    return;
  rd_kafka_flush(p->rk, 10000);
  int left = rd_kafka_outq_len(p->rk);
  if (left > 0) {
    LINLI_ERROR("kafka producer closing with undelivered messages",
                "count=%d", left);
    /* Purge so that their delivery reports run and free their tickets. */
    rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_poll(p->rk, 100);
  }
  rd_kafka_destroy(p->rk);
  free(p);
}
