/*
 * reader.c - the fenced log reader behind every replay subcommand.
 *
 * It assigns partitions explicitly (never subscribes) under a throwaway
 * group name, so it never joins, rebalances or commits for a live consumer
 * group; the range
 * is fixed when the read starts (the current end of the log at that
 * moment), so an export of a busy topic terminates.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "linli/clock.h"
#include "linli/error.h"
#include "replay.h"

#define QUERY_TIMEOUT_MS 10000
#define IDLE_TIMEOUT_MS 30000

struct part_state {
  int64_t end; /* exclusive */
  int done;
};

static int resolve_time(rd_kafka_t *rk, const char *topic, int32_t p,
                        int64_t ms, int64_t high, int64_t *offset, char *err,
                        size_t errlen) {
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(l, topic, p)->offset = ms;
  rd_kafka_resp_err_t e = rd_kafka_offsets_for_times(rk, l, QUERY_TIMEOUT_MS);
  if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
    e = l->elems[0].err;
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    snprintf(err, errlen, "offsets_for_times %s [%d]: %s", topic, (int)p,
             rd_kafka_err2str(e));
    rd_kafka_topic_partition_list_destroy(l);
    return -1;
  }
  /* -1 (END): no record at or after that time. */
  *offset = l->elems[0].offset < 0 ? high : l->elems[0].offset;
  rd_kafka_topic_partition_list_destroy(l);
  return 0;
}

static int partition_count(rd_kafka_t *rk, const char *topic, char *err,
                           size_t errlen) {
  rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
  const rd_kafka_metadata_t *md = NULL;
  int n = -1;
  rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, t, &md, QUERY_TIMEOUT_MS);
  if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
    if (md->topic_cnt == 1 && md->topics[0].err == 0)
      n = md->topics[0].partition_cnt;
    else
      snprintf(err, errlen, "topic %s: %s", topic,
               md->topic_cnt == 1 ? rd_kafka_err2str(md->topics[0].err)
                                  : "not found");
    rd_kafka_metadata_destroy(md);
  } else {
    snprintf(err, errlen, "metadata for %s: %s", topic, rd_kafka_err2str(e));
  }
  rd_kafka_topic_destroy(t);
  return n;
}

int replay_read(const linli_config_t *cfg, const struct range *range,
                replay_record_fn fn, void *arg, int progress, char *err,
                size_t errlen) {
  /* librdkafka wants a group.id even for assign(); a throwaway name that
   * no live consumer uses, never joined (no subscribe) and never
   * committed to. */
  char group[96];
  snprintf(group, sizeof group, "linli-replay-%d-%lld", (int)getpid(),
           (long long)linli_clock_now_ms());
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  if (linli_config_kafka_apply(cfg, conf, err, errlen) != LINLI_OK ||
      rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, errlen) ||
      rd_kafka_conf_set(conf, "enable.partition.eof", "true", err, errlen) ||
      rd_kafka_conf_set(conf, "isolation.level", "read_committed", err,
                        errlen) ||
      rd_kafka_conf_set(conf, "client.id", "linli-replay", err, errlen) ||
      rd_kafka_conf_set(conf, "group.id", group, err, errlen)) {
    rd_kafka_conf_destroy(conf);
    return -1;
  }
  if (!linli_config_kafka_get(cfg, "bootstrap.servers"))
    rd_kafka_conf_set(conf, "bootstrap.servers", "127.0.0.1:9092", NULL, 0);
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, errlen);
  if (!rk) {
    rd_kafka_conf_destroy(conf);
    return -1;
  }
  rd_kafka_poll_set_consumer(rk);

  int rc = -1;
  rd_kafka_t *grp = NULL; /* OffsetFetch for end_at_group */
  if (range->end_at_group) {
    rd_kafka_conf_t *gc = rd_kafka_conf_new();
    if (linli_config_kafka_apply(cfg, gc, err, errlen) != LINLI_OK ||
        rd_kafka_conf_set(gc, "group.id", range->end_at_group, err, errlen) ||
        rd_kafka_conf_set(gc, "enable.auto.commit", "false", err, errlen)) {
      rd_kafka_conf_destroy(gc);
      rd_kafka_destroy(rk);
      return -1;
    }
    if (!linli_config_kafka_get(cfg, "bootstrap.servers"))
      rd_kafka_conf_set(gc, "bootstrap.servers", "127.0.0.1:9092", NULL, 0);
    grp = rd_kafka_new(RD_KAFKA_CONSUMER, gc, err, errlen);
    if (!grp) {
      rd_kafka_conf_destroy(gc);
      rd_kafka_destroy(rk);
      return -1;
    }
  }
  rd_kafka_topic_partition_list_t *assign =
      rd_kafka_topic_partition_list_new(16);
  /* Per assigned partition, parallel to `assign`. */
  struct part_state *st = NULL;
  size_t nst = 0;
  for (int t = 0; t < range->ntopics; t++) {
    const char *topic = range->topics[t];
    int n = partition_count(rk, topic, err, errlen);
    if (n < 0)
      goto out;
    for (int p = 0; p < n; p++) {
      int64_t low = 0, high = 0;
      rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(
          rk, topic, p, &low, &high, QUERY_TIMEOUT_MS);
      if (e) {
        snprintf(err, errlen, "watermarks %s [%d]: %s", topic, p,
                 rd_kafka_err2str(e));
        goto out;
      }
      int64_t start = low, end = high;
      if (range->from.kind == BOUND_OFFSET)
        start = range->from.value > low ? range->from.value : low;
      else if (range->from.kind == BOUND_TIME &&
               resolve_time(rk, topic, p, range->from.value, high, &start, err,
                            errlen) != 0)
        goto out;
      if (range->to.kind == BOUND_OFFSET)
        end = range->to.value + 1 < high ? range->to.value + 1 : high;
      else if (range->to.kind == BOUND_TIME &&
               resolve_time(rk, topic, p, range->to.value, high, &end, err,
                            errlen) != 0)
        goto out;
      if (grp) {
        rd_kafka_topic_partition_list_t *c =
            rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(c, topic, p);
        rd_kafka_resp_err_t ce = rd_kafka_committed(grp, c, QUERY_TIMEOUT_MS);
        int64_t committed = ce ? -1 : c->elems[0].offset;
        rd_kafka_topic_partition_list_destroy(c);
        if (ce) {
          snprintf(err, errlen, "committed offsets of %s: %s",
                   range->end_at_group, rd_kafka_err2str(ce));
          goto out;
        }
        /* No committed offset: the group never processed this partition. */
        int64_t limit = committed < 0 ? low : committed;
        if (limit < end)
          end = limit;
      }
      if (start >= end)
        continue;
      struct part_state *grown = realloc(st, (nst + 1) * sizeof *st);
      if (!grown) {
        snprintf(err, errlen, "out of memory");
        goto out;
      }
      st = grown;
      st[nst].end = end;
      st[nst].done = 0;
      nst++;
      rd_kafka_topic_partition_list_add(assign, topic, p)->offset = start;
    }
  }
  if (nst == 0) {
    rc = 0;
    goto out;
  }
  rd_kafka_resp_err_t ae = rd_kafka_assign(rk, assign);
  if (ae) {
    snprintf(err, errlen, "assign: %s", rd_kafka_err2str(ae));
    goto out;
  }
  size_t left = nst;
  long long records = 0;
  int64_t last_progress = linli_clock_mono_ms(), last_record = last_progress;
  rc = 0;
  while (left > 0) {
    rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
    int64_t now = linli_clock_mono_ms();
    if (progress && now - last_progress >= 2000) {
      fprintf(stderr, "linli-replay: %lld records, %zu of %zu partitions left\n",
              records, left, nst);
      last_progress = now;
    }
    if (!m) {
      if (now - last_record > IDLE_TIMEOUT_MS) {
        fprintf(stderr,
                "linli-replay: no record for %d s with %zu partitions not at "
                "their end (an open transaction?); stopping\n",
                IDLE_TIMEOUT_MS / 1000, left);
        break;
      }
      continue;
    }
    last_record = now;
    int idx = -1;
    if (m->rkt) {
      const char *tn = rd_kafka_topic_name(m->rkt);
      for (int i = 0; i < assign->cnt; i++)
        if (assign->elems[i].partition == m->partition &&
            strcmp(assign->elems[i].topic, tn) == 0)
          idx = i;
    }
    if (idx < 0 || st[idx].done) {
      rd_kafka_message_destroy(m);
      continue;
    }
    int finished = 0;
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      finished = 1;
    } else if (m->err) {
      fprintf(stderr, "linli-replay: %s\n", rd_kafka_message_errstr(m));
    } else if (m->offset >= st[idx].end) {
      finished = 1;
    } else {
      records++;
      if (fn(arg, m) != 0) {
        rd_kafka_message_destroy(m);
        break;
      }
      finished = m->offset + 1 >= st[idx].end;
    }
    if (finished) {
      st[idx].done = 1;
      left--;
      rd_kafka_topic_partition_list_t *one =
          rd_kafka_topic_partition_list_new(1);
      rd_kafka_topic_partition_list_add(one, assign->elems[idx].topic,
                                        assign->elems[idx].partition);
      rd_kafka_pause_partitions(rk, one);
      rd_kafka_topic_partition_list_destroy(one);
    }
    rd_kafka_message_destroy(m);
  }
  if (progress)
    fprintf(stderr, "linli-replay: %lld records read\n", records);
out:
  if (grp) {
    rd_kafka_destroy(grp);
  }
  rd_kafka_topic_partition_list_destroy(assign);
  free(st);
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
  return rc;
}
