/*
 * test_notifier.c - linli-notifier against the real stack (Kafka, Redis)
 * and a test webhook (tests/helpers/linli_test_webhook):
 *   - every user-visible state change yields exactly one notification per
 *     channel, in the user's locale, with the right text;
 *   - a notifier SIGKILLed five times during a burst of 2,000: the webhook
 *     receives every id, repeats only what was in flight (total <= distinct
 *     + kills, with one request in flight at a time), the topic holds every
 *     notification exactly once;
 *   - a webhook answering 500 for 30 s then recovering receives every id,
 *     each with a valid signature, and none after it was acknowledged;
 *   - quiet hours delay a reminder and let a pickup code through (injected
 *     clock);
 *   - a template error stops the notifier at start, naming file and line.
 *
 * Each scenario runs its own notifier with its own consumer group (started
 * at the end of the shared input topics), its own Redis prefix (one shard),
 * and ids that start with this run's RUN; only those records are looked at.
 */
#include <CUnit/CUnit.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "delivery.pb-c.h"
#include "linli/clock.h"
#include "linli/error.h"
#include "linli/ids.h"
#include "linli/kafka.h"
#include "linli/redis.h"
#include "linli_test.h"
#include "notifications.pb-c.h"
#include "reservations.pb-c.h"
#include "routes.pb-c.h"
#include "settlements.pb-c.h"
#include "domain/topics.h"
#include "domain/notifier_keys.h"

#define T_RES LINLI_TOPIC_RESERVATIONS
#define T_SET LINLI_TOPIC_SETTLEMENTS
#define T_ROUTES LINLI_TOPIC_ROUTES
#define T_DEL LINLI_TOPIC_DELIVERY
#define T_NOTES LINLI_TOPIC_NOTIFICATIONS
#define T_DLQ LINLI_TOPIC_DLQ
#define SECRET "test-webhook-secret-0123456789abcdef"

static const char *const INPUTS[] = {T_RES, T_SET, T_ROUTES, T_DEL, NULL};

static char RUN[48];
static linli_redis_t *redis;
static linli_test_reader_t *reader;

/* ============================================================ the topic */

struct note {
  char id[72], user[80], tpl[40], chan[16], locale[16], order[80], text[512];
  int seen;
};
static struct {
  struct note *v;
  size_t n, cap;
} notes;

static int ours(const char *s) {
  return s && strncmp(s, RUN, strlen(RUN)) == 0;
}

/* Webhook notifications given up to the DLQ: (notification id, reason). */
static struct {
  char id[72], reason[300];
} dlq[16];
static size_t ndlq;

static void on_note(void *arg, const rd_kafka_message_t *m) {
  (void)arg;
  if (strcmp(rd_kafka_topic_name(m->rkt), T_DLQ) == 0) {
    char consumer[64], id[72];
    linli_test_header(m, LINLI_DLQ_H_CONSUMER, consumer, sizeof consumer);
    linli_test_header(m, "notification_id", id, sizeof id);
    if (strcmp(consumer, "notifier-webhook") == 0 && ndlq < 16 &&
        m->key_len > strlen(RUN) && memcmp(m->key, RUN, strlen(RUN)) == 0) {
      snprintf(dlq[ndlq].id, sizeof dlq[ndlq].id, "%s", id);
      linli_test_header(m, LINLI_DLQ_H_REASON, dlq[ndlq].reason,
                        sizeof dlq[ndlq].reason);
      ndlq++;
    }
    return;
  }
  if (strcmp(rd_kafka_topic_name(m->rkt), T_NOTES) != 0)
    return;
  Linli__NotificationEvent *ev =
      linli__notification_event__unpack(NULL, m->len, m->payload);
  if (!ev)
    return;
  const Linli__Notification *n = ev->notification;
  if (n && ours(n->user_id)) {
    struct note *e = NULL;
    for (size_t i = 0; i < notes.n && !e; i++)
      if (strcmp(notes.v[i].id, n->notification_id) == 0)
        e = &notes.v[i];
    if (!e) {
      if (notes.n == notes.cap) {
        notes.cap = notes.cap ? notes.cap * 2 : 256;
        notes.v = realloc(notes.v, notes.cap * sizeof *notes.v);
        if (!notes.v)
          abort();
      }
      e = &notes.v[notes.n++];
      memset(e, 0, sizeof *e);
      snprintf(e->id, sizeof e->id, "%s", n->notification_id);
      snprintf(e->user, sizeof e->user, "%s", n->user_id);
      snprintf(e->tpl, sizeof e->tpl, "%s", n->template_);
      snprintf(e->chan, sizeof e->chan, "%s",
               n->channel == LINLI__NOTIFICATION__CHANNEL__SMS ? "sms"
               : n->channel == LINLI__NOTIFICATION__CHANNEL__WECHAT
                   ? "wechat"
                   : "app_push");
      snprintf(e->locale, sizeof e->locale, "%s", n->locale);
      snprintf(e->order, sizeof e->order, "%s", n->order_id);
      snprintf(e->text, sizeof e->text, "%s", n->text);
    }
    e->seen++;
  }
  linli__notification_event__free_unpacked(ev, NULL);
}

static size_t count_notes(const char *user_prefix, const char *tpl) {
  size_t k = 0;
  for (size_t i = 0; i < notes.n; i++)
    if (strncmp(notes.v[i].user, user_prefix, strlen(user_prefix)) == 0 &&
        (!tpl || strcmp(notes.v[i].tpl, tpl) == 0))
      k++;
  return k;
}

static const struct note *find_note(const char *user, const char *tpl,
                                    const char *chan) {
  for (size_t i = 0; i < notes.n; i++)
    if (strcmp(notes.v[i].user, user) == 0 &&
        strcmp(notes.v[i].tpl, tpl) == 0 &&
        (!chan || strcmp(notes.v[i].chan, chan) == 0))
      return &notes.v[i];
  return NULL;
}

struct want {
  const char *prefix, *tpl;
  size_t n;
};
static int have_notes(void *arg) {
  const struct want *w = arg;
  return count_notes(w->prefix, w->tpl) >= w->n;
}

static void wait_notes(const char *prefix, const char *tpl, size_t n,
                       int timeout_ms) {
  struct want w = {prefix, tpl, n};
  int64_t end = linli_test_now_ms() + timeout_ms;
  while (!have_notes(&w) && linli_test_now_ms() < end)
    linli_test_reader_poll(reader, 500, on_note, &w, have_notes);
  if (!have_notes(&w))
    fprintf(stderr, "\nwaited for %zu %s notifications of %s: have %zu\n", n,
            tpl ? tpl : "any", prefix, count_notes(prefix, tpl));
  CU_ASSERT_FATAL(have_notes(&w));
}

/* ========================================================== the inputs */

static void meta(Linli__Meta *m, char *id, int64_t at) {
  linli__meta__init(m);
  linli_id_new(id, LINLI_ID_BUFSZ);
  m->event_id = id;
  m->occurred_at_ms = at;
  m->producer = (char *)"test";
  m->schema_version = 1;
}

static void send_pb(const char *topic, const char *key,
                    const ProtobufCMessage *msg) {
  size_t len = protobuf_c_message_get_packed_size(msg);
  uint8_t *buf = malloc(len);
  CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
  protobuf_c_message_pack(msg, buf);
  CU_ASSERT_EQUAL(linli_test_produce(topic, key, buf, len), 0);
  free(buf);
}

/* A packed ReservationResult (malloc'd). */
static uint8_t *pack_res(const char *order, const char *user, int status,
                         int reason, int64_t total, int64_t expires,
                         int64_t at, size_t *len) {
  Linli__ReservationEvent ev = LINLI__RESERVATION_EVENT__INIT;
  Linli__ReservationResult r = LINLI__RESERVATION_RESULT__INIT;
  Linli__ReservationResult__ShortLine sl =
      LINLI__RESERVATION_RESULT__SHORT_LINE__INIT;
  Linli__ReservationResult__ShortLine *slp[] = {&sl};
  Linli__Meta m;
  char id[LINLI_ID_BUFSZ];
  meta(&m, id, at);
  r.order_id = (char *)order;
  r.user_id = (char *)user;
  r.warehouse_id = (char *)"W1";
  r.status = status;
  r.reason = reason;
  r.total_fen = total;
  r.expires_at_ms = expires;
  if (reason == LINLI__RESERVATION_RESULT__REASON__OUT_OF_STOCK) {
    sl.sku_id = (char *)"SKU-EGGS";
    sl.requested = 3;
    sl.available = 1;
    r.n_shortages = 1;
    r.shortages = slp;
  }
  ev.meta = &m;
  ev.event_case = LINLI__RESERVATION_EVENT__EVENT_RESERVATION_RESULT;
  ev.reservation_result = &r;
  *len = linli__reservation_event__get_packed_size(&ev);
  uint8_t *buf = malloc(*len);
  if (buf)
    linli__reservation_event__pack(&ev, buf);
  return buf;
}

static void res(const char *order, const char *user, int status, int reason,
                int64_t total, int64_t expires, int64_t at) {
  size_t len = 0;
  uint8_t *b = pack_res(order, user, status, reason, total, expires, at, &len);
  CU_ASSERT_PTR_NOT_NULL_FATAL(b);
  CU_ASSERT_EQUAL(linli_test_produce(T_RES, order, b, len), 0);
  free(b);
}

/* n RESERVED results for orders/users "<RUN>-<tag>-<i>" in one go. */
static void res_burst(const char *tag, int n) {
  char **keys = calloc((size_t)n, sizeof *keys);
  uint8_t **vals = calloc((size_t)n, sizeof *vals);
  size_t *lens = calloc((size_t)n, sizeof *lens);
  CU_ASSERT_FATAL(keys && vals && lens);
  int64_t now = linli_clock_now_ms();
  for (int i = 0; i < n; i++) {
    char user[96];
    keys[i] = malloc(96);
    snprintf(keys[i], 96, "%s-%s-o%d", RUN, tag, i);
    snprintf(user, sizeof user, "%s-%s-u%d", RUN, tag, i);
    vals[i] = pack_res(keys[i], user, LINLI__RESERVATION_RESULT__STATUS__RESERVED,
                       0, 1000 + i, now + 3600000, now, &lens[i]);
    CU_ASSERT_PTR_NOT_NULL_FATAL(vals[i]);
  }
  CU_ASSERT_EQUAL(linli_test_produce_batch(T_RES, (size_t)n,
                                           (const char *const *)keys,
                                           (const void *const *)vals, lens),
                  0);
  for (int i = 0; i < n; i++) {
    free(keys[i]);
    free(vals[i]);
  }
  free(keys);
  free(vals);
  free(lens);
}

static void route(const char *order, const char *pickup, int64_t eta) {
  Linli__RouteEvent ev = LINLI__ROUTE_EVENT__INIT;
  Linli__RouteBatch rb = LINLI__ROUTE_BATCH__INIT;
  Linli__RouteBatch__Stop st = LINLI__ROUTE_BATCH__STOP__INIT;
  Linli__RouteBatch__Stop *stp[] = {&st};
  char *orders[] = {(char *)order};
  Linli__Meta m;
  char id[LINLI_ID_BUFSZ];
  meta(&m, id, linli_clock_now_ms());
  char rid[96];
  snprintf(rid, sizeof rid, "%s-route", RUN);
  rb.route_id = rid;
  rb.warehouse_id = (char *)"W1";
  rb.wave_id = rid;
  rb.vehicle_id = (char *)"V1";
  st.seq = 1;
  st.place_case = LINLI__ROUTE_BATCH__STOP__PLACE_PICKUP_POINT_ID;
  st.pickup_point_id = (char *)pickup;
  st.n_order_ids = 1;
  st.order_ids = orders;
  st.eta_ms = eta;
  rb.n_stops = 1;
  rb.stops = stp;
  ev.meta = &m;
  ev.event_case = LINLI__ROUTE_EVENT__EVENT_ROUTE_BATCH;
  ev.route_batch = &rb;
  send_pb(T_ROUTES, "W1", &ev.base);
}

/* The other events of the routes topic (a wave's SortingList and
 * WavePlanned): they tell no resident anything. They share the oneof with
 * RouteBatch, so a notifier that read them as one read past their end. */
static void route_others(const char *order, const char *user_id) {
  Linli__Meta m;
  char id[LINLI_ID_BUFSZ], wave[96];
  snprintf(wave, sizeof wave, "%s-wave", RUN);
  meta(&m, id, linli_clock_now_ms());
  Linli__RouteEvent ev = LINLI__ROUTE_EVENT__INIT;
  Linli__SortingList sl = LINLI__SORTING_LIST__INIT;
  Linli__SortingList__Line ln = LINLI__SORTING_LIST__LINE__INIT;
  Linli__SortingList__Line *lines[] = {&ln};
  ln.order_id = (char *)order;
  ln.user_id = (char *)user_id;
  ln.sku_id = (char *)"S1";
  ln.quantity = 1;
  sl.warehouse_id = (char *)"W1";
  sl.wave_id = wave;
  sl.pickup_point_id = (char *)"PP-7";
  sl.route_id = wave;
  sl.n_lines = 1;
  sl.lines = lines;
  ev.meta = &m;
  ev.event_case = LINLI__ROUTE_EVENT__EVENT_SORTING_LIST;
  ev.sorting_list = &sl;
  send_pb(T_ROUTES, "W1", &ev.base);
  Linli__RouteEvent ev2 = LINLI__ROUTE_EVENT__INIT;
  Linli__WavePlanned wp = LINLI__WAVE_PLANNED__INIT;
  char id2[LINLI_ID_BUFSZ];
  Linli__Meta m2;
  meta(&m2, id2, linli_clock_now_ms());
  wp.warehouse_id = (char *)"W1";
  wp.wave_id = wave;
  wp.orders = 1;
  wp.routes = 1;
  ev2.meta = &m2;
  ev2.event_case = LINLI__ROUTE_EVENT__EVENT_WAVE_PLANNED;
  ev2.wave_planned = &wp;
  send_pb(T_ROUTES, "W1", &ev2.base);
}

enum dkind { D_OUT, D_PICKUP, D_DELIVERED, D_FAILED };
static void delivery(enum dkind k, const char *order, const char *extra) {
  Linli__DeliveryEvent ev = LINLI__DELIVERY_EVENT__INIT;
  Linli__OutForDelivery o = LINLI__OUT_FOR_DELIVERY__INIT;
  Linli__ArrivedAtPickupPoint p = LINLI__ARRIVED_AT_PICKUP_POINT__INIT;
  Linli__Delivered d = LINLI__DELIVERED__INIT;
  Linli__DeliveryFailed f = LINLI__DELIVERY_FAILED__INIT;
  Linli__Meta m;
  char id[LINLI_ID_BUFSZ];
  meta(&m, id, linli_clock_now_ms());
  ev.meta = &m;
  switch (k) {
  case D_OUT:
    o.order_id = (char *)order;
    o.route_id = (char *)"R1";
    o.courier_id = (char *)"C1";
    ev.event_case = LINLI__DELIVERY_EVENT__EVENT_OUT_FOR_DELIVERY;
    ev.out_for_delivery = &o;
    break;
  case D_PICKUP:
    p.order_id = (char *)order;
    p.pickup_point_id = (char *)"PP-7";
    p.pickup_code = (char *)extra;
    ev.event_case = LINLI__DELIVERY_EVENT__EVENT_ARRIVED_AT_PICKUP_POINT;
    ev.arrived_at_pickup_point = &p;
    break;
  case D_DELIVERED:
    d.order_id = (char *)order;
    ev.event_case = LINLI__DELIVERY_EVENT__EVENT_DELIVERED;
    ev.delivered = &d;
    break;
  case D_FAILED:
    f.order_id = (char *)order;
    f.reason = (char *)extra;
    ev.event_case = LINLI__DELIVERY_EVENT__EVENT_DELIVERY_FAILED;
    ev.delivery_failed = &f;
    break;
  }
  send_pb(T_DEL, order, &ev.base);
}

static void join_status(const char *camp, const char *user, const char *order,
                        int status) {
  Linli__SettlementEvent ev = LINLI__SETTLEMENT_EVENT__INIT;
  Linli__JoinResult j = LINLI__JOIN_RESULT__INIT;
  Linli__Meta m;
  char id[LINLI_ID_BUFSZ];
  meta(&m, id, linli_clock_now_ms());
  j.campaign_id = (char *)camp;
  j.user_id = (char *)user;
  j.order_id = (char *)order;
  j.status = status;
  j.quantity = 1;
  ev.meta = &m;
  ev.event_case = LINLI__SETTLEMENT_EVENT__EVENT_JOIN_RESULT;
  ev.join_result = &j;
  send_pb(T_SET, camp, &ev.base);
}

static void join(const char *camp, const char *user, const char *order) {
  join_status(camp, user, order, LINLI__JOIN_RESULT__STATUS__JOINED);
}

static void tier(const char *camp, int t, int participants, int64_t price) {
  Linli__SettlementEvent ev = LINLI__SETTLEMENT_EVENT__INIT;
  Linli__ThresholdReached r = LINLI__THRESHOLD_REACHED__INIT;
  Linli__Meta m;
  char id[LINLI_ID_BUFSZ];
  meta(&m, id, linli_clock_now_ms());
  r.campaign_id = (char *)camp;
  r.tier = t;
  r.participants = participants;
  r.unit_price_fen = price;
  ev.meta = &m;
  ev.event_case = LINLI__SETTLEMENT_EVENT__EVENT_THRESHOLD_REACHED;
  ev.threshold_reached = &r;
  send_pb(T_SET, camp, &ev.base);
}

/* Settled (settled != 0) or failed, refunding `each` to every user. */
static void end_campaign(const char *camp, int settled, const char *u1,
                         const char *o1, const char *u2, const char *o2,
                         int64_t each) {
  Linli__SettlementEvent ev = LINLI__SETTLEMENT_EVENT__INIT;
  Linli__CampaignSettled s = LINLI__CAMPAIGN_SETTLED__INIT;
  Linli__CampaignFailed f = LINLI__CAMPAIGN_FAILED__INIT;
  Linli__CampaignRefund r1 = LINLI__CAMPAIGN_REFUND__INIT,
                        r2 = LINLI__CAMPAIGN_REFUND__INIT;
  Linli__CampaignRefund *rp[] = {&r1, &r2};
  size_t nr = u2 ? 2 : 1;
  Linli__Meta m;
  char id[LINLI_ID_BUFSZ];
  meta(&m, id, linli_clock_now_ms());
  r1.user_id = (char *)u1;
  r1.order_id = (char *)o1;
  r1.amount_fen = each;
  r2.user_id = (char *)(u2 ? u2 : "");
  r2.order_id = (char *)(o2 ? o2 : "");
  r2.amount_fen = each;
  ev.meta = &m;
  if (settled) {
    s.campaign_id = (char *)camp;
    s.tier = 1;
    s.unit_price_fen = 800;
    s.participants = (int)nr;
    s.n_refunds = nr;
    s.refunds = rp;
    ev.event_case = LINLI__SETTLEMENT_EVENT__EVENT_CAMPAIGN_SETTLED;
    ev.campaign_settled = &s;
  } else {
    f.campaign_id = (char *)camp;
    f.participants = (int)nr;
    f.reason = (char *)"minimum not reached";
    f.n_refunds = nr;
    f.refunds = rp;
    ev.event_case = LINLI__SETTLEMENT_EVENT__EVENT_CAMPAIGN_FAILED;
    ev.campaign_failed = &f;
  }
  send_pb(T_SET, camp, &ev.base);
}

/* ========================================================== processes */

struct proc {
  pid_t pid;
  char log[200];
};

struct hook {
  struct proc p;
  char log[200], port_file[200], fail_file[200], url[128];
};

static void webhook_start(struct hook *h, const char *name) {
  char path[512];
  linli_test_binary_path("tests/linli_test_webhook", path, sizeof path);
  snprintf(h->log, sizeof h->log, "/tmp/%s-%s-hook.txt", RUN, name);
  snprintf(h->port_file, sizeof h->port_file, "/tmp/%s-%s-port", RUN, name);
  snprintf(h->fail_file, sizeof h->fail_file, "/tmp/%s-%s-fail", RUN, name);
  snprintf(h->p.log, sizeof h->p.log, "/tmp/%s-%s-hook.log", RUN, name);
  char *argv[] = {path,         (char *)"--port-file", h->port_file,
                  (char *)"--log", h->log, (char *)"--secret", (char *)SECRET,
                  (char *)"--fail-file", h->fail_file, NULL};
  h->p.pid = linli_test_spawn_tied(argv, NULL, h->p.log);
  CU_ASSERT_FATAL(h->p.pid > 0);
  int port = 0;
  for (int i = 0; i < 200 && port == 0; i++) {
    FILE *f = fopen(h->port_file, "r");
    if (f) {
      if (fscanf(f, "%d", &port) != 1)
        port = 0;
      fclose(f);
    }
    if (!port)
      usleep(50000);
  }
  CU_ASSERT_FATAL(port > 0);
  snprintf(h->url, sizeof h->url, "http://127.0.0.1:%d/hooks/linli", port);
}

static void webhook_stop(struct hook *h) {
  if (h->p.pid > 0)
    linli_test_stop(h->p.pid, 0);
  h->p.pid = 0;
  unlink(h->log);
  unlink(h->port_file);
  unlink(h->fail_file);
  unlink(h->p.log);
}

/* What the webhook saw, per id. */
struct seen {
  char id[72];
  int requests, oks, bad_sig, after_ok;
};
struct hookstat {
  struct seen *v;
  size_t n, cap;
  long total;
};

static struct seen *seen_of(struct hookstat *s, const char *id) {
  for (size_t i = s->n; i-- > 0;)
    if (strcmp(s->v[i].id, id) == 0)
      return &s->v[i];
  if (s->n == s->cap) {
    s->cap = s->cap ? s->cap * 2 : 256;
    s->v = realloc(s->v, s->cap * sizeof *s->v);
    if (!s->v)
      abort();
  }
  struct seen *e = &s->v[s->n++];
  memset(e, 0, sizeof *e);
  snprintf(e->id, sizeof e->id, "%.70s", id);
  return e;
}

/* The requests for users whose id starts with user_prefix (the stack is
 * shared: the notifier also tells other tests' users). */
static void hook_read(const struct hook *h, struct hookstat *s,
                      const char *user_prefix) {
  free(s->v);
  memset(s, 0, sizeof *s);
  FILE *f = fopen(h->log, "r");
  if (!f)
    return;
  char id[128], user[128];
  int ok, code;
  long long at;
  while (fscanf(f, "%127s %d %d %127s %lld", id, &ok, &code, user, &at) ==
         5) {
    if (strncmp(user, user_prefix, strlen(user_prefix)) != 0)
      continue;
    struct seen *e = seen_of(s, id);
    if (e->oks > 0)
      e->after_ok++;
    e->requests++;
    e->bad_sig += !ok;
    e->oks += code == 200;
    s->total++;
  }
  fclose(f);
}

static const struct seen *hook_find(const struct hookstat *s, const char *id) {
  for (size_t i = 0; i < s->n; i++)
    if (strcmp(s->v[i].id, id) == 0)
      return &s->v[i];
  return NULL;
}

static size_t hook_acked(const struct hookstat *s) {
  size_t k = 0;
  for (size_t i = 0; i < s->n; i++)
    k += s->v[i].oks > 0;
  return k;
}

struct nconf {
  const char *name, *channels, *url, *clock_file;
  const char *extra[6];
};

static void notifier_start(struct proc *p, const struct nconf *c,
                           const char *group, const char *prefix) {
  char path[512], e_group[160], e_inst[160], e_prefix[160], e_chan[120],
      e_url[200], e_clock[300], e_tpl[600], tpl[512];
  linli_test_source_path("config/templates", tpl, sizeof tpl);
  snprintf(e_tpl, sizeof e_tpl, "LINLI_NOTIFIER_TEMPLATES_DIR=%s", tpl);
  linli_test_binary_path("consumers/notifier/linli-notifier", path,
                         sizeof path);
  snprintf(p->log, sizeof p->log, "/tmp/%s-%s-notifier.log", RUN, c->name);
  snprintf(e_group, sizeof e_group, "LINLI_RUNNER_GROUP=%s", group);
  snprintf(e_inst, sizeof e_inst, "LINLI_RUNNER_INSTANCE_ID=%s-%s", RUN,
           c->name);
  snprintf(e_prefix, sizeof e_prefix, "LINLI_NOTIFIER_REDIS_PREFIX=%s", prefix);
  snprintf(e_chan, sizeof e_chan, "LINLI_NOTIFIER_CHANNELS=%s", c->channels);
  snprintf(e_url, sizeof e_url, "LINLI_NOTIFIER_WEBHOOK_URL=%s",
           c->url ? c->url : "");
  snprintf(e_clock, sizeof e_clock, "LINLI_FAKE_CLOCK_FILE=%s",
           c->clock_file ? c->clock_file : "");
  char *env[20] = {e_tpl,
                   e_group,
                   e_inst,
                   e_prefix,
                   e_chan,
                   e_url,
                   (char *)"LINLI_NOTIFIER_WEBHOOK_SECRET=" SECRET,
                   (char *)"LINLI_NOTIFIER_SHARDS=1",
                   (char *)"LINLI_METRICS_PORT=0",
                   (char *)"LINLI_RUNNER_FLUSH_INTERVAL_MS=50",
                   (char *)"LINLI_RUNNER_TICK_INTERVAL_MS=200"};
  int k = 11;
  if (c->clock_file)
    env[k++] = e_clock;
  for (int i = 0; i < 6 && c->extra[i]; i++)
    env[k++] = (char *)c->extra[i];
  env[k] = NULL;
  char *argv[] = {path, NULL};
  p->pid = linli_test_spawn_tied(argv, env, p->log);
  CU_ASSERT_FATAL(p->pid > 0);
}

/* SIGTERM: the notifier drains and exits 0 (ASan: no leak). */
static void notifier_stop(struct proc *p) {
  CU_ASSERT(linli_test_stop_clean(&p->pid, "notifier", p->log));
}

static void fresh_group(char *group, size_t glen, char *prefix, size_t plen,
                        const char *name) {
  char tmp[64];
  snprintf(tmp, sizeof tmp, "ntf-%s", name);
  linli_test_unique(tmp, group, glen);
  snprintf(prefix, plen, "t%s-%s", RUN, name);
  CU_ASSERT_EQUAL_FATAL(linli_test_group_start_at_end(group, INPUTS), 0);
}

static void user(char *buf, size_t len, const char *what) {
  snprintf(buf, len, "%s-%s", RUN, what);
}

/* ============================================================ scenarios */

/* Every state change -> one notification per channel, in the locale. */
static void test_each_change_once(void) {
  char group[128], prefix[128];
  fresh_group(group, sizeof group, prefix, sizeof prefix, "once");
  struct proc p = {0};
  struct nconf c = {.name = "once",
                    .channels = "app_push,sms",
                    .extra = {"LINLI_NOTIFIER_REMINDER_LEAD_S=0"}};
  notifier_start(&p, &c, group, prefix);

  char u1[96], u2[96], u3[96], o1[96], o2[96], o3[96], o4[96], o5[96],
      o6[96], o9[96], c1[96], c2[96], key[160];
  user(u1, sizeof u1, "a-en");
  user(u2, sizeof u2, "a-zh");
  user(u3, sizeof u3, "a-sentinel");
  user(o1, sizeof o1, "o1");
  user(o2, sizeof o2, "o2");
  user(o3, sizeof o3, "o3");
  user(o4, sizeof o4, "o4");
  user(o5, sizeof o5, "o5");
  user(o6, sizeof o6, "o6");
  user(o9, sizeof o9, "o9");
  user(c1, sizeof c1, "c1");
  user(c2, sizeof c2, "c2");
  /* u1 reads English (a per-user override); u2 gets the default. */
  snprintf(key, sizeof key, "linli:locale:%s", u1);
  const char *set[] = {"SET", key, "en", "EX", "3600"};
  redisReply *r = NULL;
  CU_ASSERT_EQUAL_FATAL(linli_redis_command(redis, 5, set, NULL, &r), LINLI_OK);
  freeReplyObject(r);

  int64_t now = linli_clock_now_ms();
  res(o1, u1, LINLI__RESERVATION_RESULT__STATUS__RESERVED, 0, 1250,
      now + 3600000, now);
  res(o2, u2, LINLI__RESERVATION_RESULT__STATUS__REJECTED,
      LINLI__RESERVATION_RESULT__REASON__OUT_OF_STOCK, 900, 0, now);
  res(o3, u2, LINLI__RESERVATION_RESULT__STATUS__RESERVED, 0, 500, now - 1000,
      now - 900000);
  res(o3, u2, LINLI__RESERVATION_RESULT__STATUS__RELEASED, 0, 0, 0, now);
  /* A campaign order paid, then released because its group-buy failed
   * after the payment deadline had passed: not an expiry. */
  char u4[96], o10[96];
  user(u4, sizeof u4, "a-gfailed");
  user(o10, sizeof o10, "o10");
  res(o10, u4, LINLI__RESERVATION_RESULT__STATUS__RESERVED, 0, 700,
      now - 1000, now - 900000);
  res(o10, u4, LINLI__RESERVATION_RESULT__STATUS__COMMITTED, 0, 700, 0,
      now - 800000);
  res(o10, u4, LINLI__RESERVATION_RESULT__STATUS__RELEASED,
      LINLI__RESERVATION_RESULT__REASON__GROUP_FAILED, 0, 0, now);
  wait_notes(u2, "order_expired", 2, 60000);
  wait_notes(u4, "order_confirmed", 2, 60000);
  wait_notes(u1, "order_confirmed", 2, 60000);
  /* The wave's sorting list and summary come first (nothing to tell);
   * then a route brings the ETA: the notifier learns it before delivery. */
  route_others(o1, u1);
  route(o1, "PP-7", now + 7200000);
  char okey[400];
  snprintf(okey, sizeof okey, "{%s:0}:o:%s", prefix, o1);
  const char *hget[] = {"HGET", okey, "eta"};
  int have_eta = 0;
  for (int i = 0; i < 600 && !have_eta; i++) {
    CU_ASSERT_EQUAL_FATAL(linli_redis_command(redis, 3, hget, NULL, &r),
                          LINLI_OK);
    have_eta = r->type == REDIS_REPLY_STRING;
    freeReplyObject(r);
    if (!have_eta)
      usleep(100000);
  }
  CU_ASSERT_FATAL(have_eta);
  delivery(D_OUT, o1, NULL);
  delivery(D_PICKUP, o1, "4821");
  delivery(D_DELIVERED, o1, NULL);
  delivery(D_FAILED, o3, "nobody home");
  char ul[96], ol[96];
  user(ul, sizeof ul, "a-left");
  user(ol, sizeof ol, "o-left");
  join(c1, u1, o4);
  join(c1, ul, ol);
  join(c1, u2, o5);
  /* Left before the tier: told nothing about the campaign. */
  join_status(c1, ul, ol, LINLI__JOIN_RESULT__STATUS__LEFT);
  tier(c1, 0, 2, 1000);
  tier(c1, 1, 2, 800);
  end_campaign(c1, 1, u1, o4, u2, o5, 200);
  join(c2, u1, o6);
  end_campaign(c2, 0, u1, o6, NULL, NULL, 1000);
  /* u1: confirmed, out, pickup, delivered, formed, tier, settled, failed;
   * u2: rejected, confirmed and expired (o3), delivery failed, formed,
   * tier, settled. Then a
   * sentinel written last. */
  wait_notes(u1, NULL, 16, 60000);
  wait_notes(u2, NULL, 14, 60000);
  res(o9, u3, LINLI__RESERVATION_RESULT__STATUS__RESERVED, 0, 100,
      now + 3600000, now);
  wait_notes(u3, NULL, 2, 60000);
  /* Anything the notifier would duplicate has had its chance: a second
   * batch of the sentinel's partition and the runner's other partitions
   * committed with it. */
  linli_test_reader_poll(reader, 1000, on_note, NULL, NULL);

  static const char *const U1[] = {
      "order_confirmed",  "out_for_delivery",       "pickup_ready",
      "delivered",        "groupbuy_formed",        "groupbuy_tier_unlocked",
      "groupbuy_settled", "groupbuy_failed"};
  static const char *const U2[] = {
      "order_rejected",  "order_confirmed",        "order_expired",
      "delivery_failed", "groupbuy_formed",        "groupbuy_tier_unlocked",
      "groupbuy_settled", "groupbuy_settled"};
  static const char *const CH[] = {"app_push", "sms"};
  CU_ASSERT_EQUAL(kill(p.pid, 0), 0); /* alive after every record */
  CU_ASSERT_EQUAL(count_notes(u4, "order_confirmed"), 2);
  CU_ASSERT_EQUAL(count_notes(u4, "order_expired"), 0);
  CU_ASSERT_EQUAL(count_notes(u1, NULL), 16);
  CU_ASSERT_EQUAL(count_notes(u2, NULL), 14);
  CU_ASSERT_EQUAL(count_notes(ul, NULL), 0);
  for (size_t i = 0; i < notes.n; i++) {
    const struct note *n = &notes.v[i];
    if (strcmp(n->user, u1) != 0 && strcmp(n->user, u2) != 0)
      continue;
    CU_ASSERT_EQUAL(n->seen, 1);
    CU_ASSERT_STRING_EQUAL(n->locale, strcmp(n->user, u1) == 0 ? "en"
                                                               : "zh-CN");
  }
  for (size_t t = 0; t < 8; t++)
    for (size_t ch = 0; ch < 2; ch++) {
      CU_ASSERT_PTR_NOT_NULL(find_note(u1, U1[t], CH[ch]));
      if (t < 7)
        CU_ASSERT_PTR_NOT_NULL(find_note(u2, U2[t], CH[ch]));
    }
  const struct note *n = find_note(u1, "order_confirmed", "sms");
  CU_ASSERT(n && strstr(n->text, "12.50") && strstr(n->text, o1));
  n = find_note(u1, "pickup_ready", "app_push");
  CU_ASSERT(n && strstr(n->text, "Pickup code 4821") &&
            strstr(n->text, "08:00-21:00"));
  n = find_note(u1, "out_for_delivery", "app_push");
  CU_ASSERT(n && !strstr(n->text, "at -."));
  n = find_note(u1, "groupbuy_settled", "app_push");
  CU_ASSERT(n && strstr(n->text, "8.00") && strstr(n->text, "refund ¥2.00"));
  n = find_note(u1, "groupbuy_failed", "app_push");
  CU_ASSERT(n && strstr(n->text, "10.00"));
  n = find_note(u2, "order_rejected", "app_push");
  CU_ASSERT(n && strstr(n->text, "库存不足") && strstr(n->text, "SKU-EGGS"));
  /* Ids differ per channel and are stable: id(event, template, channel). */
  const struct note *a = find_note(u2, "order_expired", "app_push");
  const struct note *b = find_note(u2, "order_expired", "sms");
  CU_ASSERT(a && b && strcmp(a->id, b->id) != 0);
  notifier_stop(&p);
}

/* Five SIGKILLs during a burst of 2,000. */
static struct hookstat hs_kill, hs_down, hs_quiet;

static void test_kills(void) {
  enum { N = 2000, KILLS = 5 };
  char group[128], prefix[128];
  fresh_group(group, sizeof group, prefix, sizeof prefix, "kill");
  char want[96];
  snprintf(want, sizeof want, "%s-k-", RUN);
  struct hook h = {0};
  webhook_start(&h, "kill");
  struct proc p = {0};
  struct nconf c = {.name = "kill",
                    .channels = "app_push",
                    .url = h.url,
                    .extra = {"LINLI_NOTIFIER_WEBHOOK_CONCURRENCY=1",
                              "LINLI_NOTIFIER_REMINDER_LEAD_S=0",
                              "LINLI_RUNNER_BATCH_SIZE=100"}};
  notifier_start(&p, &c, group, prefix);
  res_burst("k", N);
  static const size_t at[KILLS] = {250, 600, 1000, 1400, 1800};
  int kills = 0;
  struct hookstat *const S = &hs_kill;
  int64_t end = linli_test_now_ms() + 300000;
  while (linli_test_now_ms() < end) {
    hook_read(&h, S, want);
    if (kills < KILLS && hook_acked(S) >= at[kills]) {
      linli_test_stop(p.pid, 1);
      kills++;
      notifier_start(&p, &c, group, prefix);
    }
    if (kills == KILLS && hook_acked(S) >= N)
      break;
    usleep(20000);
  }
  hook_read(&h, S, want);
  size_t acked = 0;
  int bad = 0;
  for (size_t i = 0; i < S->n; i++) {
    acked += S->v[i].oks > 0;
    bad += S->v[i].bad_sig;
  }
  fprintf(stderr, "\n[kills] %d kills, %zu distinct ids acked, %ld requests\n",
          kills, acked, S->total);
  CU_ASSERT_EQUAL(kills, KILLS);
  CU_ASSERT_EQUAL(acked, N);
  CU_ASSERT_EQUAL(S->n, N);
  CU_ASSERT(S->total <= (long)S->n + KILLS);
  CU_ASSERT_EQUAL(bad, 0);
  /* The topic: each of the 2,000 exactly once, and the webhook's ids are
   * the topic'S-> */
  wait_notes(want, NULL, N, 120000);
  linli_test_reader_poll(reader, 1000, on_note, NULL, NULL);
  CU_ASSERT_EQUAL(count_notes(want, NULL), N);
  size_t once = 0, matched = 0;
  for (size_t i = 0; i < notes.n; i++)
    if (strncmp(notes.v[i].user, want, strlen(want)) == 0) {
      once += notes.v[i].seen == 1;
      matched += hook_find(S, notes.v[i].id) != NULL;
    }
  CU_ASSERT_EQUAL(once, N);
  CU_ASSERT_EQUAL(matched, N);
  free(S->v);
  memset(S, 0, sizeof *S);
  notifier_stop(&p);
  webhook_stop(&h);
}

/* A webhook down (500) for 30 s, then back. */
static void test_outage(void) {
  enum { N = 50 };
  char group[128], prefix[128];
  fresh_group(group, sizeof group, prefix, sizeof prefix, "down");
  struct hook h = {0};
  webhook_start(&h, "down");
  FILE *f = fopen(h.fail_file, "w");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  fclose(f);
  int64_t t0 = linli_test_now_ms();
  struct proc p = {0};
  struct nconf c = {.name = "down",
                    .channels = "app_push",
                    .url = h.url,
                    .extra = {"LINLI_NOTIFIER_RETRY_BASE_MS=200",
                              "LINLI_NOTIFIER_RETRY_MAX_MS=3000",
                              "LINLI_NOTIFIER_REMINDER_LEAD_S=0"}};
  notifier_start(&p, &c, group, prefix);
  res_burst("d", N);
  /* Every id is tried and refused at least twice while the webhook is
   * down: the sender keeps retrying, and the partition keeps moving (all
   * N are on the topic meanwhile). */
  char want[96];
  snprintf(want, sizeof want, "%s-d-", RUN);
  wait_notes(want, NULL, N, 60000);
  struct hookstat *const S = &hs_down;
  int refused_twice = 0;
  while (linli_test_now_ms() - t0 < 30000 || !refused_twice) {
    hook_read(&h, S, want);
    size_t k = 0;
    for (size_t i = 0; i < S->n; i++)
      k += S->v[i].requests >= 2;
    refused_twice = S->n == N && k == N;
    if (linli_test_now_ms() - t0 > 120000)
      break;
    usleep(200000);
  }
  CU_ASSERT_FATAL(refused_twice);
  hook_read(&h, S, want);
  CU_ASSERT_EQUAL(hook_acked(S), 0);
  unlink(h.fail_file);
  int64_t end = linli_test_now_ms() + 60000;
  while (hook_acked(S) < N && linli_test_now_ms() < end) {
    usleep(200000);
    hook_read(&h, S, want);
  }
  CU_ASSERT_EQUAL(hook_acked(S), N);
  /* A sentinel sent after every id was acknowledged, and acknowledged
   * itself: a wrongful resend of an acknowledged id would have come
   * before it (it was due earlier). */
  res_burst("d-sentinel", 1);
  char sid[96];
  snprintf(sid, sizeof sid, "%s-d-sentinel-", RUN);
  wait_notes(sid, NULL, 1, 60000);
  const struct note *sn = NULL;
  for (size_t i = 0; i < notes.n && !sn; i++)
    if (strncmp(notes.v[i].user, sid, strlen(sid)) == 0)
      sn = &notes.v[i];
  CU_ASSERT_PTR_NOT_NULL_FATAL(sn);
  end = linli_test_now_ms() + 60000;
  const struct seen *ss = NULL;
  while (!(ss && ss->oks) && linli_test_now_ms() < end) {
    usleep(100000);
    hook_read(&h, S, want);
    ss = hook_find(S, sn->id);
  }
  CU_ASSERT_FATAL(ss && ss->oks == 1);
  int bad = 0, after = 0;
  for (size_t i = 0; i < S->n; i++) {
    bad += S->v[i].bad_sig;
    after += S->v[i].after_ok;
    CU_ASSERT_EQUAL(S->v[i].oks, 1);
  }
  CU_ASSERT_EQUAL(bad, 0);
  CU_ASSERT_EQUAL(after, 0);
  fprintf(stderr, "\n[outage] %zu ids, %ld requests\n", S->n, S->total);
  free(S->v);
  memset(S, 0, sizeof *S);
  notifier_stop(&p);
  webhook_stop(&h);
}

/* Killed right before its first commit, after the batch's Redis effects
 * and webhook enqueue: the redelivered batch replays the recorded
 * outcome, so the topic holds each notification once and the webhook
 * queue gets nothing twice. */
static void test_redelivery(void) {
  enum { N = 10 };
  char group[128], prefix[128];
  fresh_group(group, sizeof group, prefix, sizeof prefix, "redo");
  struct hook h = {0};
  webhook_start(&h, "redo");
  char want[96];
  snprintf(want, sizeof want, "%s-r-", RUN);
  res_burst("r", N);
  struct proc p = {0};
  struct nconf c = {.name = "redo",
                    .channels = "app_push",
                    .url = h.url,
                    .extra = {"LINLI_FAULT_KILL_BEFORE_COMMIT=1",
                              "LINLI_NOTIFIER_WEBHOOK_CONCURRENCY=1",
                              "LINLI_NOTIFIER_REMINDER_LEAD_S=0"}};
  notifier_start(&p, &c, group, prefix);
  int status = 0;
  CU_ASSERT_EQUAL_FATAL(waitpid(p.pid, &status, 0), p.pid);
  CU_ASSERT(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  p.pid = 0;
  c.extra[0] = "LINLI_NOTIFIER_WEBHOOK_CONCURRENCY=1";
  notifier_start(&p, &c, group, prefix);
  wait_notes(want, NULL, N, 60000);
  struct hookstat *const S = &hs_down;
  int64_t end = linli_test_now_ms() + 60000;
  do {
    usleep(100000);
    hook_read(&h, S, want);
  } while (hook_acked(S) < N && linli_test_now_ms() < end);
  /* A sentinel after them: anything written twice would be read first. */
  res_burst("r-z", 1);
  char sid[96];
  snprintf(sid, sizeof sid, "%s-r-z-", RUN);
  wait_notes(sid, NULL, 1, 60000);
  linli_test_reader_poll(reader, 1000, on_note, NULL, NULL);
  size_t once = 0;
  for (size_t i = 0; i < notes.n; i++)
    if (strncmp(notes.v[i].user, want, strlen(want)) == 0 &&
        strncmp(notes.v[i].user, sid, strlen(sid)) != 0)
      once += notes.v[i].seen == 1;
  CU_ASSERT_EQUAL(count_notes(want, NULL), N + 1);
  CU_ASSERT_EQUAL(once, N);
  hook_read(&h, S, want);
  CU_ASSERT(hook_acked(S) >= N);
  CU_ASSERT(S->total <= (long)S->n + 1);
  fprintf(stderr, "\n[redelivery] %zu ids at the webhook, %ld requests\n",
          S->n, S->total);
  free(S->v);
  memset(S, 0, sizeof *S);
  notifier_stop(&p);
  webhook_stop(&h);
}

static int have_dlq(void *arg) {
  (void)arg;
  return ndlq > 0;
}

/* A webhook that never recovers: after fail_after_s the notification goes
 * to the DLQ with its last error, and is no longer tried. */
static void test_gives_up(void) {
  char group[128], prefix[128];
  fresh_group(group, sizeof group, prefix, sizeof prefix, "dlq");
  struct hook h = {0};
  webhook_start(&h, "dlq");
  FILE *f = fopen(h.fail_file, "w");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  fclose(f);
  struct proc p = {0};
  struct nconf c = {.name = "dlq",
                    .channels = "app_push",
                    .url = h.url,
                    .extra = {"LINLI_NOTIFIER_RETRY_BASE_MS=100",
                              "LINLI_NOTIFIER_RETRY_MAX_MS=500",
                              "LINLI_NOTIFIER_FAIL_AFTER_S=2",
                              "LINLI_NOTIFIER_REMINDER_LEAD_S=0"}};
  notifier_start(&p, &c, group, prefix);
  res_burst("g", 1);
  char want[96];
  snprintf(want, sizeof want, "%s-g-", RUN);
  wait_notes(want, NULL, 1, 60000);
  int64_t end = linli_test_now_ms() + 60000;
  while (!ndlq && linli_test_now_ms() < end)
    linli_test_reader_poll(reader, 500, on_note, NULL, have_dlq);
  CU_ASSERT_EQUAL_FATAL(ndlq, 1);
  const struct note *n = find_note(notes.v[notes.n - 1].user, "order_confirmed",
                                   NULL);
  CU_ASSERT(n && strcmp(dlq[0].id, n->id) == 0);
  CU_ASSERT(strstr(dlq[0].reason, "HTTP 500") != NULL);
  /* Given up: the queue no longer holds it. The sender drops it right
   * after the DLQ acknowledged the record, so the DLQ can be read a moment
   * before the queue is empty: wait for exactly that. */
  char q[200];
  dom_nt_key(q, sizeof q, prefix, 0, DOM_NT_QUEUE);
  const char *zc[] = {"ZCARD", q};
  long long left = -1;
  int64_t until = linli_test_now_ms() + 10000;
  do {
    redisReply *r = NULL;
    CU_ASSERT_EQUAL_FATAL(linli_redis_command(redis, 2, zc, NULL, &r),
                          LINLI_OK);
    left = r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    freeReplyObject(r);
    if (left != 0)
      usleep(100 * 1000);
  } while (left != 0 && linli_test_now_ms() < until);
  CU_ASSERT_EQUAL(left, 0);
  notifier_stop(&p);
  webhook_stop(&h);
}

static int write_clock(const char *file, int64_t ms) {
  return linli_test_write_clock(file, ms);
}

/* Quiet hours hold a reminder and let a pickup code through. */
static void test_quiet_hours(void) {
  char group[128], prefix[128], clock_file[200];
  fresh_group(group, sizeof group, prefix, sizeof prefix, "quiet");
  char want[96];
  snprintf(want, sizeof want, "%s-q-", RUN);
  snprintf(clock_file, sizeof clock_file, "/tmp/%s-clock", RUN);
  /* 23:00 in UTC+8 today (15:00 UTC). */
  const int64_t day = 86400000, h8 = 8 * 3600000;
  int64_t real = linli_clock_now_ms();
  int64_t local_midnight = (real + h8) / day * day - h8;
  int64_t t23 = local_midnight + 23 * 3600000;
  int64_t t07 = local_midnight + day + 7 * 3600000;
  CU_ASSERT_EQUAL_FATAL(write_clock(clock_file, t23), 0);
  struct hook h = {0};
  webhook_start(&h, "quiet");
  struct proc p = {0};
  struct nconf c = {.name = "quiet",
                    .channels = "app_push",
                    .url = h.url,
                    .clock_file = clock_file,
                    .extra = {"LINLI_NOTIFIER_QUIET_HOURS=22:00-07:00",
                              "LINLI_NOTIFIER_REMINDER_LEAD_S=600"}};
  notifier_start(&p, &c, group, prefix);
  char ur[96], up[96], or[96], op[96];
  user(ur, sizeof ur, "q-remind");
  user(up, sizeof up, "q-pickup");
  user(or, sizeof or, "q-or");
  user(op, sizeof op, "q-op");
  /* Due for a reminder at once: 5 minutes left to pay. */
  res(or, ur, LINLI__RESERVATION_RESULT__STATUS__RESERVED, 0, 1999,
      t23 + 300000, t23);
  res(op, up, LINLI__RESERVATION_RESULT__STATUS__RESERVED, 0, 2999,
      t23 + 3600000, t23);
  wait_notes(up, "order_confirmed", 1, 60000);
  delivery(D_PICKUP, op, "7777");
  wait_notes(up, "pickup_ready", 1, 60000);
  wait_notes(ur, "payment_reminder", 1, 60000);
  const struct note *pick = find_note(up, "pickup_ready", NULL);
  const struct note *rem = find_note(ur, "payment_reminder", NULL);
  CU_ASSERT_FATAL(pick && rem);
  CU_ASSERT(strstr(rem->text, "19.99") != NULL);
  /* The pickup code reaches the webhook during quiet hours. */
  struct hookstat *const S = &hs_quiet;
  int64_t end = linli_test_now_ms() + 60000;
  while (!hook_find(S, pick->id) && linli_test_now_ms() < end) {
    usleep(100000);
    hook_read(&h, S, want);
  }
  CU_ASSERT_PTR_NOT_NULL(hook_find(S, pick->id));
  /* The reminder waits in the queue until 07:00, not sent. */
  char q[200], score[32];
  dom_nt_key(q, sizeof q, prefix, 0, DOM_NT_QUEUE);
  snprintf(score, sizeof score, "%lld", (long long)t07);
  const char *zs[] = {"ZSCORE", q, rem->id};
  int held = 0;
  end = linli_test_now_ms() + 60000;
  while (!held && linli_test_now_ms() < end) {
    redisReply *r = NULL;
    CU_ASSERT_EQUAL_FATAL(linli_redis_command(redis, 3, zs, NULL, &r),
                          LINLI_OK);
    held = r->type == REDIS_REPLY_STRING && strcmp(r->str, score) == 0;
    freeReplyObject(r);
    if (!held)
      usleep(100000);
  }
  CU_ASSERT_FATAL(held);
  hook_read(&h, S, want);
  CU_ASSERT_PTR_NULL(hook_find(S, rem->id));
  /* Morning: the reminder goes out. */
  CU_ASSERT_EQUAL_FATAL(write_clock(clock_file, t07 + 1000), 0);
  end = linli_test_now_ms() + 60000;
  while (!hook_find(S, rem->id) && linli_test_now_ms() < end) {
    usleep(100000);
    hook_read(&h, S, want);
  }
  const struct seen *e = hook_find(S, rem->id);
  CU_ASSERT(e && e->oks == 1 && e->bad_sig == 0);
  free(S->v);
  memset(S, 0, sizeof *S);
  notifier_stop(&p);
  webhook_stop(&h);
  unlink(clock_file);
}

/* The value of metric line `series` (name{labels}) on the notifier's
 * /metrics (port from its log), or -1. */
static double metric(const struct proc *p, const char *series) {
  FILE *f = fopen(p->log, "r");
  char line[1024];
  int port = 0;
  while (f && fgets(line, sizeof line, f)) {
    const char *m = strstr(line, "msg=\"metrics listening\"");
    const char *q = m ? strstr(m, "port=") : NULL;
    if (q)
      port = atoi(q + 5);
  }
  if (f)
    fclose(f);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (port <= 0 || fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a)) {
    if (fd >= 0)
      close(fd);
    return -1;
  }
  const char req[] = "GET /metrics HTTP/1.0\r\n\r\n";
  if (write(fd, req, sizeof req - 1) != (ssize_t)sizeof req - 1) {
    close(fd);
    return -1;
  }
  static char buf[1 << 20];
  size_t n = 0;
  ssize_t r;
  while (n < sizeof buf - 1 && (r = read(fd, buf + n, sizeof buf - 1 - n)) > 0)
    n += (size_t)r;
  close(fd);
  buf[n] = '\0';
  size_t sl = strlen(series);
  for (char *l = buf; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
    if (strncmp(l, series, sl) == 0 && l[sl] == ' ')
      return atof(l + sl + 1);
  return -1;
}

/* The per-user rate limit delays (never drops) and never holds a pickup
 * code. */
static void test_rate_limit(void) {
  char group[128], prefix[128], clock_file[200];
  fresh_group(group, sizeof group, prefix, sizeof prefix, "rate");
  snprintf(clock_file, sizeof clock_file, "/tmp/%s-rclock", RUN);
  /* 12:00:10 local: outside quiet hours, far from a minute's end. */
  const int64_t day = 86400000, h8 = 8 * 3600000;
  int64_t real = linli_clock_now_ms();
  int64_t t = (real + h8) / day * day - h8 + 12 * 3600000 + 10000;
  int64_t next_minute = (t / 60000 + 1) * 60000;
  CU_ASSERT_EQUAL_FATAL(write_clock(clock_file, t), 0);
  struct hook h = {0};
  webhook_start(&h, "rate");
  struct proc p = {0};
  struct nconf c = {.name = "rate",
                    .channels = "app_push",
                    .url = h.url,
                    .clock_file = clock_file,
                    .extra = {"LINLI_NOTIFIER_RATE_PER_USER_MIN=2",
                              "LINLI_NOTIFIER_REMINDER_LEAD_S=0"}};
  notifier_start(&p, &c, group, prefix);
  char u[96], o[3][96], want[96];
  user(u, sizeof u, "l-user");
  snprintf(want, sizeof want, "%s-l-", RUN);
  for (int i = 0; i < 3; i++) {
    snprintf(o[i], sizeof o[i], "%s-l-o%d", RUN, i);
    res(o[i], u, LINLI__RESERVATION_RESULT__STATUS__RESERVED, 0, 100,
        t + 3600000, t);
  }
  wait_notes(u, "order_confirmed", 3, 60000);
  delivery(D_PICKUP, o[0], "5555");
  wait_notes(u, "pickup_ready", 1, 60000);
  const struct note *pick = find_note(u, "pickup_ready", NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pick);
  struct hookstat *const S = &hs_quiet;
  int64_t end = linli_test_now_ms() + 60000;
  size_t confirmed = 0;
  while (linli_test_now_ms() < end) {
    hook_read(&h, S, want);
    confirmed = 0;
    for (size_t i = 0; i < notes.n; i++)
      if (strcmp(notes.v[i].user, u) == 0 &&
          strcmp(notes.v[i].tpl, "order_confirmed") == 0 &&
          hook_find(S, notes.v[i].id))
        confirmed++;
    if (confirmed >= 2 && hook_find(S, pick->id))
      break;
    usleep(100000);
  }
  /* Two sent, the pickup code through despite the limit, the third held
   * until the next minute. */
  CU_ASSERT_EQUAL(confirmed, 2);
  CU_ASSERT_PTR_NOT_NULL(hook_find(S, pick->id));
  const struct note *held = NULL;
  for (size_t i = 0; i < notes.n && !held; i++)
    if (strcmp(notes.v[i].user, u) == 0 &&
        strcmp(notes.v[i].tpl, "order_confirmed") == 0 &&
        !hook_find(S, notes.v[i].id))
      held = &notes.v[i];
  CU_ASSERT_PTR_NOT_NULL_FATAL(held);
  char q[200], score[32];
  dom_nt_key(q, sizeof q, prefix, 0, DOM_NT_QUEUE);
  snprintf(score, sizeof score, "%lld", (long long)next_minute);
  const char *zs[] = {"ZSCORE", q, held->id};
  int ok = 0;
  end = linli_test_now_ms() + 30000;
  while (!ok && linli_test_now_ms() < end) {
    redisReply *r = NULL;
    CU_ASSERT_EQUAL_FATAL(linli_redis_command(redis, 3, zs, NULL, &r),
                          LINLI_OK);
    ok = r->type == REDIS_REPLY_STRING && strcmp(r->str, score) == 0;
    freeReplyObject(r);
    if (!ok)
      usleep(100000);
  }
  CU_ASSERT(ok);
  CU_ASSERT_EQUAL_FATAL(write_clock(clock_file, next_minute + 1000), 0);
  end = linli_test_now_ms() + 60000;
  while (!hook_find(S, held->id) && linli_test_now_ms() < end) {
    usleep(100000);
    hook_read(&h, S, want);
  }
  CU_ASSERT_PTR_NOT_NULL(hook_find(S, held->id));
  /* Per channel: written, sent, delayed; the queue depth is a gauge. */
  CU_ASSERT(metric(&p, "linli_notifier_written_total{channel=\"app_push\"}") >= 4);
  CU_ASSERT(metric(&p, "linli_notifier_sent_total{channel=\"app_push\"}") >= 4);
  CU_ASSERT(metric(&p, "linli_notifier_delayed_total{channel=\"app_push\"}") >= 1);
  CU_ASSERT(metric(&p, "linli_notifier_retry_queue_depth{channel=\"webhook\"}") >= 0);
  free(S->v);
  memset(S, 0, sizeof *S);
  notifier_stop(&p);
  webhook_stop(&h);
  unlink(clock_file);
}

/* A template error is reported at start, naming file and line. */
static void test_template_error(void) {
  char dir[200], cmd[1200], src[400], env_dir[260];
  snprintf(dir, sizeof dir, "/tmp/%s-tpl", RUN);
  linli_test_source_path("config/templates", src, sizeof src);
  snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -r '%s' '%s' && "
                            "printf 'Order {order_id}\\nby {courier}\\n' > "
                            "'%s/en/delivered.txt'",
           dir, src, dir, dir);
  CU_ASSERT_EQUAL_FATAL(system(cmd), 0);
  snprintf(env_dir, sizeof env_dir, "LINLI_NOTIFIER_TEMPLATES_DIR=%s", dir);
  struct proc p = {0};
  struct nconf c = {
      .name = "tpl", .channels = "app_push", .extra = {env_dir}};
  notifier_start(&p, &c, "unused-group", "unused");
  int status = 0;
  CU_ASSERT_EQUAL(waitpid(p.pid, &status, 0), p.pid);
  CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 2);
  char want[400], line[1024];
  snprintf(want, sizeof want, "%s/en/delivered.txt:2: unknown placeholder "
                              "{courier}",
           dir);
  FILE *f = fopen(p.log, "r");
  int found = 0;
  while (f && fgets(line, sizeof line, f))
    found |= strstr(line, want) != NULL;
  if (f)
    fclose(f);
  CU_ASSERT(found);
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  CU_ASSERT_EQUAL(system(cmd), 0);
}

/* ================================================================ suite */

static int suite_init(void) {
  linli_test_unique("ntf", RUN, sizeof RUN);
  struct {
    const char *t;
    int p;
  } topics[] = {{T_RES, 6},   {T_SET, 6}, {T_ROUTES, 6},
                {T_DEL, 6},   {T_NOTES, 6}, {T_DLQ, 3}};
  for (size_t i = 0; i < sizeof topics / sizeof topics[0]; i++)
    if (linli_test_ensure_topic(topics[i].t, topics[i].p, NULL))
      return -1;
  const linli_config_t *cfg = linli_test_config();
  char err[256];
  if (!cfg ||
      linli_redis_connect(linli_config_str(cfg, "redis.host"),
                          (int)linli_config_int(cfg, "redis.port"),
                          linli_config_str(cfg, "redis.password"), 5000,
                          &redis, err, sizeof err) != LINLI_OK)
    return -1;
  const char *out[] = {T_NOTES, T_DLQ, NULL};
  reader = linli_test_reader_new(out, 1);
  return reader ? 0 : -1;
}

static int suite_cleanup(void) {
  linli_test_reader_free(reader);
  linli_redis_free(redis);
  free(notes.v);
  free(hs_kill.v);
  free(hs_down.v);
  free(hs_quiet.v);
  return 0;
}

int linli_test_register(void) {
  CU_pSuite s = CU_add_suite("notifier", suite_init, suite_cleanup);
  if (!s)
    return -1;
  static const struct {
    const char *name;
    void (*fn)(void);
  } T[] = {
      {"template error at start", test_template_error},
      {"one notification per channel per change, in the locale",
       test_each_change_once},
      {"quiet hours hold a reminder, not a pickup code", test_quiet_hours},
      {"per-user rate limit delays, never a pickup code", test_rate_limit},
      {"five SIGKILLs during 2,000", test_kills},
      {"killed before the first commit: redelivery", test_redelivery},
      {"webhook down for 30 s", test_outage},
      {"webhook that stays down: DLQ with the last error", test_gives_up},
  };
  /* LINLI_TEST_ONLY=<word> runs the scenarios whose name holds it. */
  const char *only = getenv("LINLI_TEST_ONLY");
  for (size_t i = 0; i < sizeof T / sizeof T[0]; i++)
    if (!only || strstr(T[i].name, only))
      CU_add_test(s, T[i].name, T[i].fn);
  return CU_get_error() == CUE_SUCCESS ? 0 : -1;
}
