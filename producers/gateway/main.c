/*
 * main.c - linli-gateway: start-up, the event loop and shut-down.
 *
 *   linli-gateway [--config FILE]   serve (docs/api.md)
 *   linli-gateway --routes          print "METHOD /path" per route and exit
 *
 * One thread runs the libevent loop. The Kafka producer's delivery reports
 * wake the loop through a pipe (rd_kafka_queue_io_event_enable), so a
 * publish request is answered from its own delivery report at once and
 * without ever blocking the loop;
 * Redis and PostgreSQL are asynchronous on the same loop (rds.c, pgq.c).
 * SIGTERM/SIGINT: stop accepting connections, keep the loop running until
 * every parked request (waiting for Redis, PostgreSQL or Kafka) has its
 * answer and the fire-and-forget Redis writes are out (at most DRAIN_S),
 * then tear down.
 */
#define _GNU_SOURCE /* pipe2 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <sodium.h>

#include "gateway.h"
#include "linli/args.h"
#include "linli/error.h"
#include "linli/log.h"
#include "linli/process.h"
#include "settings.h"

#define DRAIN_S 15

static void on_poll(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  struct gw *gw = arg;
  linli_producer_poll(gw->producer, 0);
  linli_metrics_set_healthy(!linli_producer_fatal(gw->producer));
}

/* librdkafka wrote to the pipe: delivery reports are waiting. */
static void on_kafka_io(evutil_socket_t fd, short what, void *arg) {
  (void)what;
  struct gw *gw = arg;
  char buf[256];
  while (read(fd, buf, sizeof buf) > 0)
    ;
  linli_producer_poll(gw->producer, 0);
}

/* Delivery reports wake the loop through a pipe (no polling delay on a
 * request's answer); the timer stays as a safety net. */
static int kafka_io_start(struct gw *gw, int fds[2], struct event **ev) {
  if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0)
    return -1;
  *ev = event_new(gw->base, fds[0], EV_READ | EV_PERSIST, on_kafka_io, gw);
  if (!*ev || event_add(*ev, NULL) != 0)
    return -1;
  rd_kafka_queue_t *q =
      rd_kafka_queue_get_main(linli_producer_handle(gw->producer));
  rd_kafka_queue_io_event_enable(q, fds[1], "1", 1);
  rd_kafka_queue_destroy(q);
  return 0;
}

static void on_drain(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  struct gw *gw = arg;
  static int ticks, idle;
  int busy = gw->inflight > 0 || gw->ob_n > 0 || gw_redis_busy(gw) ||
             gw_pg_busy(gw);
  idle = busy ? 0 : idle + 1;
  /* Idle for 100 ms: the last answers have left their output buffers. */
  if (idle >= 10 || ++ticks > DRAIN_S * 100)
    event_base_loopexit(gw->base, NULL);
}

static void on_signal(evutil_socket_t sig, short what, void *arg) {
  (void)what;
  struct gw *gw = arg;
  if (gw->stopping)
    return;
  gw->stopping = 1;
  LINLI_INFO("stopping", "signal=%d inflight=%d", (int)sig, gw->inflight);
  gw_http_close_listener(gw);
  struct timeval tick = {0, 10000};
  if (!gw->drain_ev)
    gw->drain_ev = event_new(gw->base, -1, EV_PERSIST, on_drain, gw);
  if (!gw->drain_ev || event_add(gw->drain_ev, &tick) != 0)
    event_base_loopexit(gw->base, NULL);
}

static void register_metrics(struct gw *gw) {
  static const char *const cls[] = {NULL, NULL, "code=\"2xx\"", "code=\"3xx\"",
                                    "code=\"4xx\"", "code=\"5xx\""};
  for (int i = 2; i <= 5; i++)
    gw->m_requests[i] = linli_metrics_counter(
        "linli_gateway_requests_total", cls[i], "HTTP requests answered");
  gw->m_published = linli_metrics_counter(
      "linli_gateway_published_total", NULL,
      "events acknowledged by Kafka and answered 202");
  gw->m_kafka_failed = linli_metrics_counter(
      "linli_gateway_publish_failed_total", NULL,
      "events Kafka did not acknowledge (answered 503)");
  gw->m_latency = linli_metrics_histogram(
      "linli_gateway_request_seconds", NULL,
      "time from request to answer (publishes include the Kafka ack)", NULL,
      0);
}

int main(int argc, char **argv) {
  const char *config_path = NULL;
  int routes = 0;
  const linli_arg_t opts[] = {{"--config", &config_path, NULL},
                              {"--routes", NULL, &routes},
                              {NULL, NULL, NULL}};
  if (linli_args_parse(argc, argv, opts,
                       "linli-gateway [--config FILE] | --routes") != LINLI_OK)
    return 2;
  if (routes) {
    gw_http_print_routes();
    return 0;
  }
  struct gw gw;
  memset(&gw, 0, sizeof gw);
  gateway_settings_register();
  if (linli_process_start("gateway", config_path, &gw.cfg) != LINLI_OK)
    return 2;
  int status = 1;
  char err[512];
  struct event *sig_int = NULL, *sig_term = NULL, *kio_ev = NULL;
  int kio[2] = {-1, -1};
  signal(SIGPIPE, SIG_IGN);
  if (sodium_init() < 0) {
    LINLI_ERROR("libsodium init failed", NULL);
    goto out;
  }
  gw.max_lines = (int)linli_config_int(gw.cfg, "orders.max_lines");
  gw.rate_limit = linli_config_int(gw.cfg, "gateway.rate_limit_per_s");
  gw.user_cap = linli_config_int(gw.cfg, "gateway.campaign_user_cap");
  gw.idem_ttl_s = linli_config_int(gw.cfg, "gateway.idempotency_ttl_s");
  gw.publish_timeout_ms =
      linli_config_int(gw.cfg, "gateway.publish_timeout_ms");
  /* A "P" Idempotency-Key marker must outlive the publish it guards, or a
   * retry could publish a second event while the first may still land. */
  if (gw.publish_timeout_ms / 1000 + 60 > gw.idem_ttl_s) {
    LINLI_ERROR("gateway.publish_timeout_ms must be at least 60 s below "
                "gateway.idempotency_ttl_s",
                "publish_timeout_ms=%lld idempotency_ttl_s=%lld",
                (long long)gw.publish_timeout_ms, (long long)gw.idem_ttl_s);
    goto out;
  }
  register_metrics(&gw);
  if (gw_keys_load(&gw.keys, linli_config_str(gw.cfg, "gateway.keys_file"),
                   err, sizeof err) != LINLI_OK) {
    LINLI_ERROR("cannot load API keys", "reason=\"%s\"", err);
    goto out;
  }
  /* Anyone can read the development tokens: they open the local stack
   * only, never a gateway someone did not explicitly mark as such. */
  const char *dev = gw_keys_published(&gw.keys);
  if (dev && !linli_config_bool(gw.cfg, "gateway.dev_keys")) {
    LINLI_ERROR("refusing the published development API keys",
                "app_id=%s keys_file=%s hint=\"make your own keys "
                "(docs/api.md) or set gateway.dev_keys=true on a local "
                "stack\"",
                dev, linli_config_str(gw.cfg, "gateway.keys_file"));
    goto out;
  }
  LINLI_INFO("api keys loaded", "count=%zu development=%s", gw.keys.n,
             dev ? "yes" : "no");
  gw.base = event_base_new();
  if (!gw.base) {
    LINLI_ERROR("event_base_new failed", NULL);
    goto out;
  }
  /* A request waits for its delivery report: bound it by
   * publish_timeout_ms, and keep the linger short (a request's latency)
   * unless [kafka] says otherwise; concurrent requests still batch. */
  char mto[24];
  snprintf(mto, sizeof mto, "%lld", (long long)gw.publish_timeout_ms);
  const char *const props[][2] = {
      {"message.timeout.ms", mto},
      {"linger.ms", linli_config_kafka_get(gw.cfg, "linger.ms")
                        ? linli_config_kafka_get(gw.cfg, "linger.ms")
                        : "1"},
  };
  if (linli_producer_new_with(gw.cfg, GW_PRODUCER, props,
                              sizeof props / sizeof props[0], &gw.producer,
                              err, sizeof err) != LINLI_OK) {
    LINLI_ERROR("cannot create the kafka producer", "reason=\"%s\"", err);
    goto out;
  }
  if (gw_redis_start(&gw, err, sizeof err) != LINLI_OK ||
      gw_pg_start(&gw, err, sizeof err) != LINLI_OK ||
      gw_sse_start(&gw, err, sizeof err) != LINLI_OK ||
      gw_http_start(&gw, err, sizeof err) != LINLI_OK) {
    LINLI_ERROR("start-up failed", "reason=\"%s\"", err);
    goto out;
  }
  if (kafka_io_start(&gw, kio, &kio_ev) != 0) {
    LINLI_ERROR("cannot watch the kafka queue", NULL);
    goto out;
  }
  struct timeval tick = {0, 50000};
  gw.poll_ev = event_new(gw.base, -1, EV_PERSIST, on_poll, &gw);
  sig_int = evsignal_new(gw.base, SIGINT, on_signal, &gw);
  sig_term = evsignal_new(gw.base, SIGTERM, on_signal, &gw);
  if (!gw.poll_ev || !sig_int || !sig_term ||
      event_add(gw.poll_ev, &tick) != 0 || event_add(sig_int, NULL) != 0 ||
      event_add(sig_term, NULL) != 0) {
    LINLI_ERROR("cannot set up events", NULL);
    goto out;
  }
  event_base_dispatch(gw.base);
  status = 0;
out:
  /* Normally nothing is left (the drain waited). Commands and queries
   * still outstanding answer NULL now (503 to their requests); then the
   * last delivery reports answer theirs - evhttp still holds them all. */
  gw_redis_stop(&gw);
  gw_pg_order_app_batch_stop(&gw);
  gw_pg_stop(&gw);
  if (gw.producer) {
    linli_producer_flush(gw.producer, 5000);
    linli_producer_poll(gw.producer, 0);
  }
  gw_sse_stop(&gw);
  gw_groupbuy_streams_stop(&gw);
  gw_http_stop(&gw);
  gw_conn_stop(&gw);
  if (gw.producer) {
    rd_kafka_queue_t *q =
        rd_kafka_queue_get_main(linli_producer_handle(gw.producer));
    rd_kafka_queue_io_event_enable(q, -1, NULL, 0);
    rd_kafka_queue_destroy(q);
    linli_producer_free(gw.producer);
  }
  if (kio_ev)
    event_free(kio_ev);
  for (int i = 0; i < 2; i++)
    if (kio[i] >= 0)
      close(kio[i]);
  if (gw.poll_ev)
    event_free(gw.poll_ev);
  if (sig_int)
    event_free(sig_int);
  if (sig_term)
    event_free(sig_term);
  if (gw.drain_ev)
    event_free(gw.drain_ev);
  if (gw.base)
    event_base_free(gw.base);
  gw_keys_free(&gw.keys);
  LINLI_INFO("stopped", "status=%d", status);
  linli_process_exit(gw.cfg);
  return status;
}
