/*
 * sse.c - GET /v1/stream/order-status: Server-Sent Events fed from
 * linli.order-status.v1 (the ledger's compacted order state).
 *
 * One Kafka consumer per gateway (no consumer group: every partition
 * assigned, read_committed, nothing committed) is polled from a libevent
 * timer. Each record becomes one event
 *   id: <partition>-<offset>
 *   event: order-status
 *   data: <OrderStatus as JSON>
 * sent to every client whose filter matches (?warehouse=, ?pickup_point=;
 * an app key only ever sees its own app's orders). The last
 * gateway.sse_backlog events stay in a ring, so a client reconnecting with
 * Last-Event-ID gets what it missed, in this gateway's arrival order; if
 * the id is no longer in the ring it gets an "event: reset" first (refetch
 * state, then follow live). At start the ring is primed with the tail of
 * each partition.
 *
 * A slow client is cut off: when the unsent bytes queued for it pass
 * gateway.sse_max_buffer_bytes its connection is closed, so no client can
 * grow the server's memory. A comment line every 15 s keeps proxies from
 * timing the stream out and finds dead peers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <sys/queue.h>

#include "gateway.h"
#include "linli/error.h"
#include "linli/ids.h"
#include "linli/json.h"
#include "linli/log.h"
#include "domain/schema.h"
#include "order_status.pb-c.h"

#define PING_S 15

struct entry {
  int32_t partition;
  int64_t offset;
  char app[LINLI_ID_BUFSZ], warehouse[LINLI_ID_BUFSZ], pickup[LINLI_ID_BUFSZ];
  char *frame; /* the whole SSE frame, ready to send */
  size_t len;
};

struct client {
  struct sse *sse;
  struct evhttp_request *req;
  struct evhttp_connection *evcon;
  char app[LINLI_ID_BUFSZ]; /* "" = every app */
  char warehouse[LINLI_ID_BUFSZ], pickup[LINLI_ID_BUFSZ];
  struct client *next;
};

struct sse {
  struct gw *gw;
  rd_kafka_t *rk;
  int assigned;
  struct event *poll_ev, *ping_ev;
  struct entry *ring;
  size_t cap, head, n; /* ring: oldest at head, n used */
  size_t max_buffer;
  struct client *clients;
  linli_gauge_t *m_clients;
  linli_counter_t *m_cut;
  linli_counter_t *m_events;
};

/* ------------------------------------------------------------- clients */

static void client_unlink(struct client *c) {
  struct client **pp = &c->sse->clients;
  while (*pp && *pp != c)
    pp = &(*pp)->next;
  if (*pp)
    *pp = c->next;
  linli_gauge_add(c->sse->m_clients, -1);
}

/* evhttp is closing the connection (peer gone, write error or timeout, or
 * we cut it off). If evhttp already detached the request (peer gone), it
 * is ours to free; otherwise evhttp frees it with the connection. */
static void on_close(struct evhttp_connection *evcon, void *arg) {
  struct client *c = arg;
  (void)evcon;
  client_unlink(c);
  if (evhttp_request_get_connection(c->req) == NULL)
    evhttp_send_reply_end(c->req);
  free(c);
}

static void cut_off(struct client *c) {
  struct evhttp_connection *evcon = c->evcon;
  linli_counter_add(c->sse->m_cut, 1);
  LINLI_WARN("sse client too slow: cut off", "app=%s", c->app);
  /* on_close runs from here and frees c. */
  evhttp_connection_free(evcon);
}

void gw_sse_reply_start(struct evhttp_request *req) {
  struct evkeyvalq *h = evhttp_request_get_output_headers(req);
  evhttp_add_header(h, "Content-Type", "text/event-stream");
  evhttp_add_header(h, "Cache-Control", "no-store");
  evhttp_add_header(h, "X-Accel-Buffering", "no");
  evhttp_send_reply_start(req, 200, "OK");
}

int gw_sse_queue(struct evhttp_connection *evcon, struct evhttp_request *req,
                 const char *data, size_t len, size_t max) {
  struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
  struct bufferevent *under = bufferevent_get_underlying(bev);
  size_t queued = evbuffer_get_length(bufferevent_get_output(bev));
  if (under)
    queued += evbuffer_get_length(bufferevent_get_output(under));
  if (queued + len > max)
    return 0;
  struct evbuffer *b = evbuffer_new();
  if (!b)
    return 1; /* out of memory: this frame is lost, the stream goes on */
  evbuffer_add(b, data, len);
  evhttp_send_reply_chunk(req, b);
  evbuffer_free(b);
  return 1;
}

/* Queue bytes for c; 0 if c was cut off (and freed). */
static int client_send(struct client *c, const char *data, size_t len) {
  if (gw_sse_queue(c->evcon, c->req, data, len, c->sse->max_buffer))
    return 1;
  cut_off(c);
  return 0;
}

static int matches(const struct client *c, const struct entry *e) {
  return (!c->app[0] || strcmp(c->app, e->app) == 0) &&
         (!c->warehouse[0] || strcmp(c->warehouse, e->warehouse) == 0) &&
         (!c->pickup[0] || strcmp(c->pickup, e->pickup) == 0);
}

/* ---------------------------------------------------------------- ring */

static struct entry *ring_at(struct sse *s, size_t i) {
  return &s->ring[(s->head + i) % s->cap];
}

static struct entry *ring_push(struct sse *s) {
  struct entry *e;
  if (s->n == s->cap) {
    e = ring_at(s, 0);
    free(e->frame);
    s->head = (s->head + 1) % s->cap;
    s->n--;
  }
  e = ring_at(s, s->n);
  s->n++;
  memset(e, 0, sizeof *e);
  return e;
}

/* Decode one order-status record into a new ring entry; 0 if skipped. */
static int ingest(struct sse *s, const rd_kafka_message_t *m) {
  if (!m->payload)
    return 0; /* tombstone */
  Linli__OrderStatusEvent *ev =
      linli__order_status_event__unpack(NULL, m->len, m->payload);
  if (!ev)
    return 0;
  int ok = 0;
  char *json = NULL;
  if (ev->event_case == LINLI__ORDER_STATUS_EVENT__EVENT_ORDER_STATUS &&
      linli_pb_to_json_text(&ev->order_status->base, &json) == LINLI_OK) {
    size_t cap = strlen(json) + 96;
    char *frame = malloc(cap);
    if (frame) {
      int n = snprintf(frame, cap, "id: %d-%lld\nevent: order-status\ndata: %s\n\n",
                       (int)m->partition, (long long)m->offset, json);
      struct entry *e = ring_push(s);
      e->partition = m->partition;
      e->offset = m->offset;
      snprintf(e->app, sizeof e->app, "%s", ev->order_status->app_id);
      snprintf(e->warehouse, sizeof e->warehouse, "%s",
               ev->order_status->warehouse_id);
      snprintf(e->pickup, sizeof e->pickup, "%s",
               ev->order_status->pickup_point_id);
      e->frame = frame;
      e->len = (size_t)n;
      ok = 1;
    }
  }
  free(json);
  linli__order_status_event__free_unpacked(ev, NULL);
  return ok;
}

static void fan_out(struct sse *s, const struct entry *e) {
  struct client *c = s->clients, *next;
  for (; c; c = next) {
    next = c->next; /* c may be cut off and freed */
    if (matches(c, e))
      client_send(c, e->frame, e->len);
  }
}

/* --------------------------------------------------------------- kafka */

static int assign_all(struct sse *s) {
  const struct rd_kafka_metadata *md = NULL;
  rd_kafka_topic_t *t = rd_kafka_topic_new(s->rk, LINLI_TOPIC_ORDER_STATUS,
                                           NULL);
  if (!t)
    return -1;
  rd_kafka_resp_err_t err = rd_kafka_metadata(s->rk, 0, t, &md, 2000);
  rd_kafka_topic_destroy(t);
  if (err || md->topic_cnt != 1 || md->topics[0].err ||
      md->topics[0].partition_cnt == 0) {
    if (md)
      rd_kafka_metadata_destroy(md);
    return -1;
  }
  int np = md->topics[0].partition_cnt;
  rd_kafka_topic_partition_list_t *parts =
      rd_kafka_topic_partition_list_new(np);
  /* Prime the ring with the recent tail of every partition. */
  int64_t tail = (int64_t)(s->cap / (size_t)np) + 1;
  for (int i = 0; i < np; i++)
    rd_kafka_topic_partition_list_add(parts, LINLI_TOPIC_ORDER_STATUS,
                                      md->topics[0].partitions[i].id)
        ->offset = RD_KAFKA_OFFSET_TAIL(tail);
  rd_kafka_metadata_destroy(md);
  err = rd_kafka_assign(s->rk, parts);
  rd_kafka_topic_partition_list_destroy(parts);
  if (err)
    return -1;
  LINLI_INFO("sse following", "topic=%s partitions=%d",
             LINLI_TOPIC_ORDER_STATUS, np);
  return 0;
}

static void on_poll(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  struct sse *s = arg;
  if (!s->assigned) {
    static int64_t tries;
    /* Topic missing (stack not up yet): look again about every 5 s. */
    if (tries++ % 250 == 0 && assign_all(s) == 0)
      s->assigned = 1;
    return;
  }
  for (int i = 0; i < 1000; i++) {
    rd_kafka_message_t *m = rd_kafka_consumer_poll(s->rk, 0);
    if (!m)
      break;
    if (!m->err && ingest(s, m)) {
      linli_counter_add(s->m_events, 1);
      fan_out(s, ring_at(s, s->n - 1));
    }
    rd_kafka_message_destroy(m);
  }
}

static void on_ping(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  struct sse *s = arg;
  struct client *c = s->clients, *next;
  for (; c; c = next) {
    next = c->next;
    client_send(c, ": ping\n\n", 8);
  }
}

int gw_sse_start(struct gw *gw, char *err, size_t errlen) {
  struct sse *s = calloc(1, sizeof *s);
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  char group[96];
  if (!s || !conf) {
    snprintf(err, errlen, "out of memory");
    goto err;
  }
  s->gw = gw;
  s->cap = (size_t)linli_config_int(gw->cfg, "gateway.sse_backlog");
  s->max_buffer = (size_t)linli_config_int(gw->cfg,
                                           "gateway.sse_max_buffer_bytes");
  s->ring = calloc(s->cap, sizeof *s->ring);
  if (!s->ring) {
    snprintf(err, errlen, "out of memory (gateway.sse_backlog)");
    goto err;
  }
  /* A group id is needed by librdkafka but never joined: partitions are
   * assigned by hand and no offsets are committed. */
  snprintf(group, sizeof group, "linli-gateway-sse-%d", (int)getpid());
  if (rd_kafka_conf_set(conf, "bootstrap.servers", "127.0.0.1:9092", err,
                        errlen) != RD_KAFKA_CONF_OK ||
      linli_config_kafka_apply(gw->cfg, conf, err, errlen) != LINLI_OK ||
      rd_kafka_conf_set(conf, "group.id", group, err, errlen) !=
          RD_KAFKA_CONF_OK ||
      rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, errlen) !=
          RD_KAFKA_CONF_OK ||
      rd_kafka_conf_set(conf, "isolation.level", "read_committed", err,
                        errlen) != RD_KAFKA_CONF_OK ||
      rd_kafka_conf_set(conf, "client.id", "linli-gateway-sse", err,
                        errlen) != RD_KAFKA_CONF_OK)
    goto err;
  s->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, errlen);
  if (!s->rk)
    goto err;
  conf = NULL;
  s->m_clients = linli_metrics_gauge("linli_gateway_sse_clients", NULL,
                                     "connected SSE clients");
  s->m_cut = linli_metrics_counter("linli_gateway_sse_cut_total", NULL,
                                   "SSE clients cut off for being too slow");
  s->m_events = linli_metrics_counter("linli_gateway_sse_events_total", NULL,
                                      "order-status events read for SSE");
  struct timeval poll = {0, 20000}, ping = {PING_S, 0};
  s->poll_ev = event_new(gw->base, -1, EV_PERSIST, on_poll, s);
  s->ping_ev = event_new(gw->base, -1, EV_PERSIST, on_ping, s);
  if (!s->poll_ev || !s->ping_ev || event_add(s->poll_ev, &poll) != 0 ||
      event_add(s->ping_ev, &ping) != 0) {
    snprintf(err, errlen, "cannot set up SSE events");
    gw->sse = s;
    gw_sse_stop(gw);
    return LINLI_ERR_FATAL;
  }
  gw->sse = s;
  return LINLI_OK;
err:
  if (conf)
    rd_kafka_conf_destroy(conf);
  if (s)
    free(s->ring);
  free(s);
  return LINLI_ERR_CONFIG;
}

void gw_sse_stop(struct gw *gw) {
  struct sse *s = gw->sse;
  if (!s)
    return;
  while (s->clients) {
    struct client *c = s->clients;
    s->clients = c->next;
    evhttp_connection_set_closecb(c->evcon, NULL, NULL);
    evhttp_send_reply_end(c->req);
    free(c);
  }
  if (s->poll_ev)
    event_free(s->poll_ev);
  if (s->ping_ev)
    event_free(s->ping_ev);
  if (s->rk) {
    rd_kafka_consumer_close(s->rk);
    rd_kafka_destroy(s->rk);
  }
  for (size_t i = 0; i < s->n; i++)
    free(ring_at(s, i)->frame);
  free(s->ring);
  free(s);
  gw->sse = NULL;
}

/* ------------------------------------------------------------- request */

void gw_get_stream(struct gw_req *r) {
  struct sse *s = r->gw->sse;
  struct evkeyvalq q;
  const char *qs = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(r->req));
  TAILQ_INIT(&q);
  if (qs && evhttp_parse_query_str(qs, &q) != 0) {
    gw_reply_error(r, 400, "invalid_request", "unparseable query string");
    return;
  }
  const char *wh = evhttp_find_header(&q, "warehouse");
  const char *pp = evhttp_find_header(&q, "pickup_point");
  json_t *errs = json_array();
  gw_check_opt_id(errs, "warehouse", wh);
  gw_check_opt_id(errs, "pickup_point", pp);
  if (gw_reply_invalid(r, errs, "some query parameters are invalid")) {
    evhttp_clear_headers(&q);
    return;
  }
  struct client *c = calloc(1, sizeof *c);
  if (!c) {
    evhttp_clear_headers(&q);
    gw_reply_error(r, 500, "internal", "out of memory");
    return;
  }
  c->sse = s;
  c->req = r->req;
  c->evcon = evhttp_request_get_connection(r->req);
  if (r->key->role == GW_ROLE_APP)
    snprintf(c->app, sizeof c->app, "%s", r->key->app_id);
  snprintf(c->warehouse, sizeof c->warehouse, "%s", wh ? wh : "");
  snprintf(c->pickup, sizeof c->pickup, "%s", pp ? pp : "");
  evhttp_clear_headers(&q);

  gw_sse_reply_start(r->req);
  evhttp_connection_set_closecb(c->evcon, on_close, c);
  c->next = s->clients;
  s->clients = c;
  linli_gauge_add(s->m_clients, 1);
  LINLI_INFO("sse client connected", "app=%s warehouse=%s pickup_point=%s",
             r->key->app_id, c->warehouse, c->pickup);

  /* Tell the client how to come back, then replay what it missed. */
  if (!client_send(c, "retry: 2000\n\n", 13))
    return;
  const char *last = gw_header(r, "Last-Event-ID");
  if (!last)
    return;
  int part = -1;
  long long off = -1;
  char tail;
  size_t from = s->n; /* nothing to replay unless found */
  if (sscanf(last, "%d-%lld%c", &part, &off, &tail) == 2) {
    for (size_t i = s->n; i-- > 0;) {
      struct entry *e = ring_at(s, i);
      if (e->partition == part && e->offset == off) {
        from = i + 1;
        break;
      }
    }
  }
  if (from == s->n && !(s->n > 0 && ring_at(s, s->n - 1)->partition == part &&
                        ring_at(s, s->n - 1)->offset == off)) {
    static const char reset[] =
        "event: reset\ndata: {\"reason\":\"Last-Event-ID is no longer held; "
        "fetch current state, then follow\"}\n\n";
    if (!client_send(c, reset, sizeof reset - 1))
      return;
  }
  for (size_t i = from; i < s->n; i++) {
    struct entry *e = ring_at(s, i);
    if (matches(c, e) && !client_send(c, e->frame, e->len))
      return;
  }
}
