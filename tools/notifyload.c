/*
 * notifyload.c - linli-notifyload: load for linli-notifier's benchmark
 * (scripts/bench_notifier.sh). Two modes:
 *
 *   linli-notifyload [--config FILE] --produce R --count N
 *       Publishes N ReservationResult RESERVED to linli.reservations.v1 as
 *       fast as the producer takes them: order and user "<R>-<i>", keyed by
 *       order (each becomes one order_confirmed per notifier channel).
 *       Prints key=value: acknowledged, produce rate.
 *
 *   linli-notifyload [--config FILE] --measure R --count N [--timeout S]
 *       Reads linli.notifications.v1 (read_committed) from its end offsets
 *       at start until N notifications to users "<R>-..." were read, then
 *       prints key=value: count, repeated ids, the broker timestamps of the
 *       first and last, and the rate between them (notifications/s written
 *       by the notifier, independent of its start-up).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "linli/clock.h"
#include "linli/config.h"
#include "linli/error.h"
#include "linli/ids.h"
#include "linli/kafka.h"
#include "domain/schema.h"
#include "notifications.pb-c.h"
#include "reservations.pb-c.h"

#define PROG "linli-notifyload"

struct acks {
  long long ok, failed;
};

static void on_delivery(void *opaque, rd_kafka_resp_err_t err, int32_t p,
                        int64_t off) {
  (void)p;
  (void)off;
  struct acks *a = opaque;
  if (err)
    a->failed++;
  else
    a->ok++;
}

static int produce(const linli_config_t *cfg, const char *run, long long n) {
  linli_producer_t *p = NULL;
  char err[512];
  if (linli_producer_new(cfg, PROG, &p, err, sizeof err) != LINLI_OK) {
    fprintf(stderr, PROG ": %s\n", err);
    return 2;
  }
  struct acks acks = {0, 0};
  int64_t t0 = linli_clock_now_ms();
  uint8_t *buf = NULL;
  size_t cap = 0;
  for (long long i = 0; i < n; i++) {
    char id[LINLI_ID_BUFSZ], eid[LINLI_ID_BUFSZ];
    snprintf(id, sizeof id, "%s-%lld", run, i);
    linli_id_new(eid, sizeof eid);
    Linli__ReservationEvent ev = LINLI__RESERVATION_EVENT__INIT;
    Linli__ReservationResult r = LINLI__RESERVATION_RESULT__INIT;
    Linli__Meta m = LINLI__META__INIT;
    m.event_id = eid;
    m.occurred_at_ms = linli_clock_now_ms();
    m.producer = (char *)PROG;
    m.schema_version = 1;
    r.order_id = id;
    r.user_id = id;
    r.warehouse_id = (char *)"bench-wh";
    r.status = LINLI__RESERVATION_RESULT__STATUS__RESERVED;
    r.total_fen = 1000 + i % 1000;
    r.expires_at_ms = m.occurred_at_ms + 3600000;
    ev.meta = &m;
    ev.event_case = LINLI__RESERVATION_EVENT__EVENT_RESERVATION_RESULT;
    ev.reservation_result = &r;
    size_t len = linli__reservation_event__get_packed_size(&ev);
    if (len > cap) {
      free(buf);
      cap = len * 2;
      buf = malloc(cap);
      if (!buf)
        break;
    }
    linli__reservation_event__pack(&ev, buf);
    if (linli_producer_send_async(p, LINLI_TOPIC_RESERVATIONS,
                                  RD_KAFKA_PARTITION_UA, id, strlen(id), buf,
                                  len, NULL, on_delivery, &acks, 30000, err,
                                  sizeof err) != LINLI_OK) {
      fprintf(stderr, PROG ": %s\n", err);
      break;
    }
    if (i % 1000 == 0)
      linli_producer_poll(p, 0);
  }
  linli_producer_flush(p, 60000);
  int64_t el = linli_clock_now_ms() - t0;
  printf("run=%s acknowledged=%lld failed=%lld produce_rate=%.0f\n", run,
         acks.ok, acks.failed, el > 0 ? acks.ok * 1000.0 / (double)el : 0.0);
  free(buf);
  linli_producer_free(p);
  return acks.ok == n ? 0 : 1;
}

/* Ids seen, for repeats: open addressing over 2n slots. */
static int seen_add(char **tab, size_t cap, const char *id) {
  uint64_t h = 1469598103934665603ULL;
  for (const char *s = id; *s; s++)
    h = (h ^ (unsigned char)*s) * 1099511628211ULL;
  for (size_t i = h & (cap - 1);; i = (i + 1) & (cap - 1)) {
    if (!tab[i]) {
      tab[i] = strdup(id);
      return 0;
    }
    if (strcmp(tab[i], id) == 0)
      return 1;
  }
}

static int measure(const linli_config_t *cfg, const char *run, long long n,
                   int timeout_s) {
  char err[512], group[96], uniq[LINLI_ID_BUFSZ];
  linli_id_new(uniq, sizeof uniq);
  snprintf(group, sizeof group, PROG "-%s", uniq);
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  if (linli_config_kafka_apply(cfg, conf, err, sizeof err) != LINLI_OK ||
      rd_kafka_conf_set(conf, "group.id", group, err, sizeof err) ||
      rd_kafka_conf_set(conf, "isolation.level", "read_committed", err,
                        sizeof err) ||
      rd_kafka_conf_set(conf, "enable.auto.commit", "false", err,
                        sizeof err)) {
    fprintf(stderr, PROG ": %s\n", err);
    rd_kafka_conf_destroy(conf);
    return 2;
  }
  /* Producer-only properties of [kafka] only warn in a consumer. */
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  if (!rk) {
    fprintf(stderr, PROG ": %s\n", err);
    return 2;
  }
  rd_kafka_poll_set_consumer(rk);
  const struct rd_kafka_metadata *md = NULL;
  rd_kafka_topic_t *t = rd_kafka_topic_new(rk, LINLI_TOPIC_NOTIFICATIONS, NULL);
  rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(16);
  int rc = 2;
  if (rd_kafka_metadata(rk, 0, t, &md, 10000) || md->topic_cnt != 1)
    goto done;
  for (int i = 0; i < md->topics[0].partition_cnt; i++) {
    int64_t lo = 0, hi = 0;
    rd_kafka_query_watermark_offsets(rk, LINLI_TOPIC_NOTIFICATIONS, i, &lo, &hi,
                                     10000);
    rd_kafka_topic_partition_list_add(parts, LINLI_TOPIC_NOTIFICATIONS, i)
        ->offset = hi;
  }
  if (rd_kafka_assign(rk, parts))
    goto done;
  printf("ready\n");
  fflush(stdout);
  size_t cap = 1;
  while (cap < (size_t)n * 2 + 2)
    cap *= 2;
  char **tab = calloc(cap, sizeof *tab);
  if (!tab)
    goto done;
  size_t prefix = strlen(run);
  long long got = 0, repeats = 0;
  int64_t first = 0, last = 0, end = linli_clock_mono_ms() + timeout_s * 1000LL;
  while (got < n && linli_clock_mono_ms() < end) {
    rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
    if (!m)
      continue;
    if (!m->err && m->key_len > prefix &&
        memcmp(m->key, run, prefix) == 0) {
      Linli__NotificationEvent *ev =
          linli__notification_event__unpack(NULL, m->len, m->payload);
      if (ev && ev->notification) {
        if (seen_add(tab, cap, ev->notification->notification_id)) {
          repeats++;
        } else {
          int64_t ts = rd_kafka_message_timestamp(m, NULL);
          if (!first || ts < first)
            first = ts;
          if (ts > last)
            last = ts;
          got++;
        }
      }
      if (ev)
        linli__notification_event__free_unpacked(ev, NULL);
    }
    rd_kafka_message_destroy(m);
  }
  printf("run=%s notifications=%lld repeated=%lld first_ms=%lld last_ms=%lld "
         "rate=%.0f\n",
         run, got, repeats, (long long)first, (long long)last,
         last > first ? got * 1000.0 / (double)(last - first) : 0.0);
  for (size_t i = 0; i < cap; i++)
    free(tab[i]);
  free(tab);
  rc = got == n && repeats == 0 ? 0 : 1;
done:
  if (md)
    rd_kafka_metadata_destroy(md);
  rd_kafka_topic_partition_list_destroy(parts);
  rd_kafka_topic_destroy(t);
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
  return rc;
}

int main(int argc, char **argv) {
  const char *config = NULL, *prod = NULL, *meas = NULL;
  long long n = 0;
  int timeout = 300;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
      config = argv[++i];
    else if (strcmp(argv[i], "--produce") == 0 && i + 1 < argc)
      prod = argv[++i];
    else if (strcmp(argv[i], "--measure") == 0 && i + 1 < argc)
      meas = argv[++i];
    else if (strcmp(argv[i], "--count") == 0 && i + 1 < argc)
      n = atoll(argv[++i]);
    else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc)
      timeout = atoi(argv[++i]);
    else
      n = -1;
  }
  if (n <= 0 || n > 100000000 || !prod == !meas) {
    fprintf(stderr, "usage: " PROG " [--config F] (--produce R | --measure R) "
                    "--count N [--timeout S]\n");
    return 2;
  }
  linli_config_t *cfg = NULL;
  char err[512];
  if (linli_config_load(config, &cfg, err, sizeof err) != LINLI_OK) {
    fprintf(stderr, PROG ": %s\n", err);
    return 2;
  }
  int rc = prod ? produce(cfg, prod, n) : measure(cfg, meas, n, timeout);
  linli_config_free(cfg);
  return rc;
}
