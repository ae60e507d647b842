/*
 * catalog.c - the catalog guard (issue 9 item 1): an order never gets
 * UNKNOWN_SKU or DELISTED for a SKU whose latest catalog record Kafka
 * acknowledged before the order. Catalog partitions may belong to other
 * instances of the group, so before such a rejection the reserver asks
 * Kafka where every catalog partition ends (high watermark) and where the
 * group stands in it (committed offset, or this batch's own position): if
 * the group has not applied everything written so far, the batch is
 * retried instead of rejecting. A catalog that does not catch up within
 * CATALOG_WAIT_MS (its consumer is down) no longer holds orders back.
 */
#include <stdio.h>
#include <string.h>

#include "linli/clock.h"
#include "linli/error.h"
#include "linli/log.h"
#include "reserver.h"

#define CATALOG_WAIT_MS 30000
#define KAFKA_TIMEOUT_MS 5000

/* A consumer handle of the reserver's group that never joins it: only for
 * committed offsets and watermarks. */
static int meta_handle(struct reserver *rs, char *err, size_t errlen) {
  if (rs->kmeta)
    return LINLI_OK;
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  const char *group = linli_config_str(rs->cfg, "runner.group");
  char errstr[256];
  if (linli_config_kafka_apply(rs->cfg, conf, err, errlen) != LINLI_OK ||
      rd_kafka_conf_set(conf, "group.id",
                        group && group[0] ? group : "linli-reserver", errstr,
                        sizeof errstr) != RD_KAFKA_CONF_OK ||
      rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof errstr) !=
          RD_KAFKA_CONF_OK) {
    rd_kafka_conf_destroy(conf);
    return LINLI_ERR_TRANSIENT;
  }
  rs->kmeta = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
  if (!rs->kmeta) {
    rd_kafka_conf_destroy(conf);
    snprintf(err, errlen, "kafka: %.200s", errstr);
    return LINLI_ERR_TRANSIENT;
  }
  return LINLI_OK;
}

static int catalog_partitions(struct reserver *rs) {
  if (rs->catalog_parts > 0)
    return rs->catalog_parts;
  rd_kafka_topic_t *t = rd_kafka_topic_new(rs->kmeta, LINLI_TOPIC_CATALOG,
                                           NULL);
  const struct rd_kafka_metadata *md = NULL;
  if (t && rd_kafka_metadata(rs->kmeta, 0, t, &md, KAFKA_TIMEOUT_MS) ==
               RD_KAFKA_RESP_ERR_NO_ERROR &&
      md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR)
    rs->catalog_parts = md->topics[0].partition_cnt;
  if (md)
    rd_kafka_metadata_destroy(md);
  if (t)
    rd_kafka_topic_destroy(t);
  return rs->catalog_parts;
}

/* Where the group stands in each catalog partition: its committed offset,
 * or further where this batch holds records of it. */
static int64_t group_position(const rd_kafka_topic_partition_list_t *committed,
                              linli_batch_t *in, int32_t p) {
  int64_t at = committed->elems[p].offset;
  const rd_kafka_topic_partition_list_t *next = linli_batch_next_offsets(in);
  for (int i = 0; next && i < next->cnt; i++)
    if (next->elems[i].partition == p &&
        strcmp(next->elems[i].topic, LINLI_TOPIC_CATALOG) == 0 &&
        next->elems[i].offset > at)
      at = next->elems[i].offset;
  return at;
}

/* 1 when some catalog record is not applied yet (why says where), 0 when
 * the catalog is caught up, negative when Kafka cannot tell. */
static int behind(struct reserver *rs, linli_batch_t *in, char *why,
                  size_t len) {
  int rc = meta_handle(rs, why, len);
  int n = rc == LINLI_OK ? catalog_partitions(rs) : 0;
  if (n <= 0)
    return LINLI_ERR_TRANSIENT;
  rd_kafka_topic_partition_list_t *c = rd_kafka_topic_partition_list_new(n);
  for (int p = 0; p < n; p++)
    rd_kafka_topic_partition_list_add(c, LINLI_TOPIC_CATALOG, p);
  int res = 0;
  if (rd_kafka_committed(rs->kmeta, c, KAFKA_TIMEOUT_MS) !=
      RD_KAFKA_RESP_ERR_NO_ERROR)
    res = LINLI_ERR_TRANSIENT;
  for (int p = 0; res == 0 && p < n; p++) {
    int64_t lo = 0, hi = 0;
    if (rd_kafka_query_watermark_offsets(rs->kmeta, LINLI_TOPIC_CATALOG, p,
                                         &lo, &hi, KAFKA_TIMEOUT_MS) !=
        RD_KAFKA_RESP_ERR_NO_ERROR) {
      res = LINLI_ERR_TRANSIENT;
      break;
    }
    int64_t at = group_position(c, in, p);
    /* No committed offset: the group never read this partition, so it
     * cannot be waited for. */
    if (at >= 0 && at < hi) {
      snprintf(why, len, "catalog partition %d applied up to %lld of %lld",
               (int)p, (long long)at, (long long)hi);
      res = 1;
    }
  }
  rd_kafka_topic_partition_list_destroy(c);
  return res;
}

int reserver_catalog_wait(struct reserver *rs, linli_batch_t *in, char *reason,
                          size_t reasonlen) {
  char why[256] = "";
  int b = behind(rs, in, why, sizeof why);
  if (b == 0) {
    rs->catalog_wait_since = 0;
    return LINLI_OK;
  }
  int64_t now = linli_clock_now_ms();
  if (rs->catalog_wait_since == 0)
    rs->catalog_wait_since = now;
  if (now - rs->catalog_wait_since > CATALOG_WAIT_MS) {
    LINLI_WARN("catalog not caught up: rejecting anyway",
               "waited_ms=%lld reason=\"%s\"",
               (long long)(now - rs->catalog_wait_since),
               b > 0 ? why : "kafka cannot tell");
    rs->catalog_wait_since = 0;
    return LINLI_OK;
  }
  snprintf(reason, reasonlen, "an order names a SKU the catalog may not "
           "have applied yet: %s", b > 0 ? why : "kafka cannot tell");
  return LINLI_ERR_TRANSIENT;
}

void reserver_catalog_free(struct reserver *rs) {
  if (rs->kmeta)
    rd_kafka_destroy(rs->kmeta);
  rs->kmeta = NULL;
}
