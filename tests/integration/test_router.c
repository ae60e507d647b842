/*
 * test_router.c - linli-router against the real stack (Kafka, Redis):
 * 1,000 items for 3 warehouses and 40 pickup points across two waves give
 * one stop per pickup point per wave, every order in exactly one route of
 * exactly one wave, and sorting lists that add up to the items; bad input
 * on the DLQ with its reason; a router SIGKILLed before its first commit
 * (after its clock closed a wave) and restarted loses and doubles nothing;
 * express items leave in their own 5-minute wave; orders that cannot be
 * placed come back in WavePlanned with their reasons; a replay of the log
 * into an empty Redis reproduces every output event byte for byte; a bad
 * reference entry stops the router with "file:line: reason".
 *
 * linli.fulfillment.v1 is shared with other tests: this run's warehouses,
 * pickup points and orders all start with RUN, the router skips every
 * other warehouse (router.skip_unknown_warehouses), and only this run's
 * records are looked at. Cutoffs are driven by an injected clock
 * (LINLI_FAKE_CLOCK_FILE), never by sleeping.
 */
#include <CUnit/CUnit.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "domain/wave.h"
#include "fulfillment.pb-c.h"
#include "linli/clock.h"
#include "linli/error.h"
#include "linli/ids.h"
#include "linli/kafka.h"
#include "linli/redis.h"
#include "linli_test.h"
#include "routes.pb-c.h"
#include "domain/topics.h"

#define T_FULFILLMENT LINLI_TOPIC_FULFILLMENT
#define T_ROUTES LINLI_TOPIC_ROUTES
#define T_DLQ LINLI_TOPIC_DLQ

#define NWH 3
#define NPP 40
#define NSKU 10
#define MAX_ITEMS 1400
#define MINUTE INT64_C(60000)

static const char *const INPUTS[] = {T_FULFILLMENT, NULL};

/* ================================================================ store */

struct item {
  char order[72], pp[72];
  int wh, wave, cold;
  int nlines;
  int sku[3], qty[3];
};

struct stop_rec {
  int wh;
  char wave[24], pp[72], route[72];
};

struct order_rec {
  int wh;
  char wave[24], order[72], pp[72];
};

struct line_rec {
  int wh;
  char wave[24], pp[72], order[72], sku[32];
  int qty;
};

struct planned_rec {
  int wh;
  char wave[24];
  int routes, orders, unassigned;
};

struct ev_rec {
  char id[72];
  int seen;
  uint64_t hash;  /* of the record's bytes: a replay must match */
  int mismatch;
};

struct left_rec {
  char wave[24], order[72];
  int reason;
};

#define VEC(T)                                                                 \
  struct {                                                                     \
    T *v;                                                                      \
    size_t n, cap;                                                             \
  }

static struct {
  VEC(struct stop_rec) stops;
  VEC(struct order_rec) orders;
  VEC(struct line_rec) lines;
  VEC(struct planned_rec) planned;
  VEC(struct ev_rec) events;
  VEC(struct left_rec) left;
  int routes, dlq;
  char dlq_reason[600];
} st;

static struct item items[MAX_ITEMS];
static size_t nitems;

static char RUN[48], WH[NWH][72], PP[NPP][72];
static linli_test_reader_t *reader;
static linli_redis_t *redis;
static char clock_file[256], ref_file[256], group[96], replay_group[96];
static const char *spawn_group = group;
static int64_t T0, CUT[3]; /* the three cutoffs, UTC ms */
static char WAVE[3][24];   /* their wave ids */

#define PUSH(vec) LINLI_TEST_PUSH(vec)

static void cpy(char *dst, size_t len, const char *src) {
  snprintf(dst, len, "%s", src ? src : "");
}

static int wh_index(const char *id) {
  for (int i = 0; i < NWH; i++)
    if (id && strcmp(WH[i], id) == 0)
      return i;
  return -1;
}

/* Count an output event; a second copy of one id is a duplicate (or,
 * after a replay, must be the same bytes). */
static void record_event(const char *id, uint64_t hash) {
  for (size_t i = 0; i < st.events.n; i++)
    if (strcmp(st.events.v[i].id, id) == 0) {
      st.events.v[i].seen++;
      st.events.v[i].mismatch += st.events.v[i].hash != hash;
      return;
    }
  struct ev_rec *e = PUSH(st.events);
  cpy(e->id, sizeof e->id, id);
  e->seen = 1;
  e->hash = hash;
}

static uint64_t fnv1a(const void *p, size_t n) {
  uint64_t h = 1469598103934665603ULL;
  for (size_t i = 0; i < n; i++)
    h = (h ^ ((const unsigned char *)p)[i]) * 1099511628211ULL;
  return h;
}

static void collect_route(const Linli__RouteEvent *ev, uint64_t hash) {
  int wh = -1;
  switch (ev->event_case) {
  case LINLI__ROUTE_EVENT__EVENT_ROUTE_BATCH: {
    const Linli__RouteBatch *r = ev->route_batch;
    if ((wh = wh_index(r->warehouse_id)) < 0)
      return;
    st.routes++;
    for (size_t k = 0; k < r->n_stops; k++) {
      const Linli__RouteBatch__Stop *s = r->stops[k];
      int pickup =
          s->place_case == LINLI__ROUTE_BATCH__STOP__PLACE_PICKUP_POINT_ID;
      struct stop_rec *sr = PUSH(st.stops);
      sr->wh = wh;
      cpy(sr->wave, sizeof sr->wave, r->wave_id);
      cpy(sr->pp, sizeof sr->pp, pickup ? s->pickup_point_id : "");
      cpy(sr->route, sizeof sr->route, r->route_id);
      CU_ASSERT_EQUAL(s->seq, (int32_t)k + 1);
      CU_ASSERT(s->eta_ms >= r->departs_at_ms);
      for (size_t q = 0; q < s->n_order_ids; q++) {
        struct order_rec *o = PUSH(st.orders);
        o->wh = wh;
        cpy(o->wave, sizeof o->wave, r->wave_id);
        cpy(o->order, sizeof o->order, s->order_ids[q]);
        cpy(o->pp, sizeof o->pp, sr->pp);
      }
    }
    break;
  }
  case LINLI__ROUTE_EVENT__EVENT_SORTING_LIST: {
    const Linli__SortingList *l = ev->sorting_list;
    if ((wh = wh_index(l->warehouse_id)) < 0)
      return;
    for (size_t k = 0; k < l->n_lines; k++) {
      struct line_rec *lr = PUSH(st.lines);
      lr->wh = wh;
      cpy(lr->wave, sizeof lr->wave, l->wave_id);
      cpy(lr->pp, sizeof lr->pp, l->pickup_point_id);
      cpy(lr->order, sizeof lr->order, l->lines[k]->order_id);
      cpy(lr->sku, sizeof lr->sku, l->lines[k]->sku_id);
      lr->qty = l->lines[k]->quantity;
    }
    break;
  }
  case LINLI__ROUTE_EVENT__EVENT_WAVE_PLANNED: {
    const Linli__WavePlanned *p = ev->wave_planned;
    if ((wh = wh_index(p->warehouse_id)) < 0)
      return;
    struct planned_rec *pr = PUSH(st.planned);
    pr->wh = wh;
    cpy(pr->wave, sizeof pr->wave, p->wave_id);
    pr->routes = p->routes;
    pr->orders = p->orders;
    pr->unassigned = (int)p->n_unassigned;
    for (size_t k = 0; k < p->n_unassigned; k++) {
      struct left_rec *l = PUSH(st.left);
      cpy(l->wave, sizeof l->wave, p->wave_id);
      cpy(l->order, sizeof l->order, p->unassigned[k]->order_id);
      l->reason = p->unassigned[k]->reason;
      CU_ASSERT(p->unassigned[k]->detail[0] != '\0');
    }
    break;
  }
  default:
    return;
  }
  record_event(ev->meta ? ev->meta->event_id : "", hash);
}

static void collect(void *arg, const rd_kafka_message_t *m) {
  (void)arg;
  const char *topic = rd_kafka_topic_name(m->rkt);
  if (strcmp(topic, T_ROUTES) == 0) {
    Linli__RouteEvent *ev = linli__route_event__unpack(NULL, m->len,
                                                       m->payload);
    if (!ev)
      return;
    collect_route(ev, fnv1a(m->payload, m->len));
    linli__route_event__free_unpacked(ev, NULL);
  } else if (strcmp(topic, T_DLQ) == 0) {
    char key[80] = "", consumer[64];
    size_t kl = m->key_len < sizeof key - 1 ? m->key_len : sizeof key - 1;
    if (m->key)
      memcpy(key, m->key, kl);
    key[kl] = '\0';
    linli_test_header(m, LINLI_DLQ_H_CONSUMER, consumer, sizeof consumer);
    if (wh_index(key) < 0 || strcmp(consumer, "router") != 0)
      return;
    st.dlq++;
    linli_test_header(m, LINLI_DLQ_H_REASON, st.dlq_reason,
                      sizeof st.dlq_reason);
  }
}

static int n_planned(const char *wave) {
  int n = 0;
  for (size_t i = 0; i < st.planned.n; i++)
    n += strcmp(st.planned.v[i].wave, wave) == 0;
  return n;
}

static int have_planned(void *a) { return n_planned(a) >= NWH; }
static int have_dlq(void *a) { return st.dlq >= *(int *)a; }

static int wait_until(linli_test_until_fn fn, void *arg, int timeout_ms) {
  linli_test_reader_poll(reader, timeout_ms, collect, arg, fn);
  return fn(arg);
}

static void settle(int ms) {
  linli_test_reader_poll(reader, ms, collect, NULL, NULL);
}

/* ================================================================ input */

static int produce_event(Linli__FulfillmentEvent *ev, const char *key,
                         int64_t at) {
  Linli__Meta meta = LINLI__META__INIT;
  char eid[LINLI_ID_BUFSZ];
  linli_id_new(eid, sizeof eid);
  meta.event_id = eid;
  meta.occurred_at_ms = at;
  meta.producer = (char *)"test_router";
  meta.schema_version = 1;
  ev->meta = &meta;
  size_t n = linli__fulfillment_event__get_packed_size(ev);
  uint8_t *buf = malloc(n ? n : 1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
  linli__fulfillment_event__pack(ev, buf);
  ev->meta = NULL;
  int rc = linli_test_produce(T_FULFILLMENT, key, buf, n);
  free(buf);
  return rc;
}

/* n random pickup-point items for the given wave (seeded: the same run
 * always makes the same items), produced in one go. */
static void produce_items(size_t n, int wave, int64_t at, uint64_t seed) {
  uint64_t r = seed;
  size_t first = nitems;
  uint8_t **bufs = calloc(n, sizeof *bufs);
  size_t *lens = calloc(n, sizeof *lens);
  const char **keys = calloc(n, sizeof *keys);
  CU_ASSERT_FATAL(bufs && lens && keys && nitems + n <= MAX_ITEMS);
  for (size_t i = 0; i < n; i++) {
    struct item *it = &items[nitems++];
    r = r * 6364136223846793005ULL + 1442695040888963407ULL;
    it->wh = (int)((r >> 33) % NWH);
    int pp = (int)((r >> 40) % NPP);
    it->wave = wave;
    it->cold = ((r >> 20) % 5) == 0;
    it->nlines = 1 + (int)((r >> 25) % 3);
    for (int l = 0; l < it->nlines; l++) {
      it->sku[l] = (int)(((r >> (10 + 3 * l)) % 3) + 3 * l); /* distinct */
      it->qty[l] = 1 + (int)((r >> (5 + l)) % 2);
    }
    snprintf(it->order, sizeof it->order, "%s-o%zu", RUN, nitems);
    cpy(it->pp, sizeof it->pp, PP[pp]);
    Linli__FulfillmentEvent ev = LINLI__FULFILLMENT_EVENT__INIT;
    Linli__FulfillmentItem fi = LINLI__FULFILLMENT_ITEM__INIT;
    Linli__OrderLine ol[3], *olp[3];
    char skus[3][16], user[96];
    for (int l = 0; l < it->nlines; l++) {
      linli__order_line__init(&ol[l]);
      snprintf(skus[l], sizeof skus[l], "sku-%d", it->sku[l]);
      ol[l].sku_id = skus[l];
      ol[l].quantity = it->qty[l];
      ol[l].unit_price_fen = 100;
      olp[l] = &ol[l];
    }
    Linli__PickupDelivery pd = LINLI__PICKUP_DELIVERY__INIT;
    pd.pickup_point_id = it->pp;
    snprintf(user, sizeof user, "%s-u%zu", RUN, nitems % 97);
    fi.order_id = it->order;
    fi.warehouse_id = WH[it->wh];
    fi.user_id = user;
    fi.n_lines = (size_t)it->nlines;
    fi.lines = olp;
    fi.storage_class = it->cold ? LINLI__STORAGE_CLASS__CHILLED
                                : LINLI__STORAGE_CLASS__AMBIENT;
    fi.delivery_case = LINLI__FULFILLMENT_ITEM__DELIVERY_PICKUP;
    fi.pickup = &pd;
    fi.weight_g = 1000;
    Linli__Meta meta = LINLI__META__INIT;
    char eid[LINLI_ID_BUFSZ];
    linli_id_new(eid, sizeof eid);
    meta.event_id = eid;
    meta.occurred_at_ms = at;
    meta.producer = (char *)"test_router";
    meta.schema_version = 1;
    ev.meta = &meta;
    ev.event_case = LINLI__FULFILLMENT_EVENT__EVENT_FULFILLMENT_ITEM;
    ev.fulfillment_item = &fi;
    lens[i] = linli__fulfillment_event__get_packed_size(&ev);
    bufs[i] = malloc(lens[i]);
    CU_ASSERT_PTR_NOT_NULL_FATAL(bufs[i]);
    linli__fulfillment_event__pack(&ev, bufs[i]);
    keys[i] = WH[it->wh];
  }
  CU_ASSERT_EQUAL(linli_test_produce_batch(T_FULFILLMENT, n, keys,
                                           (const void *const *)bufs, lens),
                  0);
  for (size_t i = 0; i < n; i++)
    free(bufs[i]);
  free(bufs);
  free(lens);
  free(keys);
  (void)first;
}

/* ============================================================ processes */

struct proc {
  pid_t pid;
  char inst[96], log[160];
};
static struct proc router_a;

static int write_clock(int64_t ms) {
  return linli_test_write_clock(clock_file, ms);
}

static void spawn_router(struct proc *p, const char *name, const char *ref,
                         const char *extra) {
  char path[512], e_group[160], e_inst[160], e_clock[320], e_ref[320];
  linli_test_binary_path("consumers/router/linli-router", path, sizeof path);
  snprintf(p->inst, sizeof p->inst, "%s-%s", RUN, name);
  snprintf(p->log, sizeof p->log, "/tmp/%s.log", p->inst);
  snprintf(e_group, sizeof e_group, "LINLI_RUNNER_GROUP=%s", spawn_group);
  snprintf(e_inst, sizeof e_inst, "LINLI_RUNNER_INSTANCE_ID=%s", p->inst);
  snprintf(e_clock, sizeof e_clock, "LINLI_FAKE_CLOCK_FILE=%s", clock_file);
  snprintf(e_ref, sizeof e_ref, "LINLI_ROUTER_REFERENCE_FILE=%s", ref);
  char *env[] = {e_group,
                 e_inst,
                 e_clock,
                 e_ref,
                 (char *)"LINLI_METRICS_PORT=0",
                 (char *)"LINLI_RUNNER_FLUSH_INTERVAL_MS=50",
                 (char *)"LINLI_RUNNER_TICK_INTERVAL_MS=200",
                 (char *)"LINLI_ROUTER_CLOSE_RETRY_MS=2000",
                 (char *)"LINLI_ROUTER_SKIP_UNKNOWN_WAREHOUSES=true",
                 (char *)extra,
                 NULL};
  char *argv[] = {path, NULL};
  p->pid = linli_test_spawn_tied(argv, env, p->log);
  CU_ASSERT_FATAL(p->pid > 0);
}

/* SIGTERM: a router drains and exits 0 (and leaks nothing, under ASan). */
static void stop_router(struct proc *p) {
  CU_ASSERT(linli_test_stop_clean(&p->pid, p->inst, p->log));
}

/* ================================================================ suite */

static void hhmm(int64_t ms, char *buf, size_t len) {
  int64_t m = (ms % (24 * 60 * MINUTE)) / MINUTE;
  snprintf(buf, len, "%02d:%02d", (int)(m / 60), (int)(m % 60));
}

static int write_reference(void) {
  FILE *f = fopen(ref_file, "w");
  if (!f)
    return -1;
  char c[3][8];
  for (int i = 0; i < 3; i++)
    hhmm(CUT[i], c[i], sizeof c[i]);
  for (int w = 0; w < NWH; w++) {
    /* The last warehouse also runs express waves every 5 minutes. */
    fprintf(f, "warehouse %s lat=30.%06d lng=120.%06d cutoffs=%s,%s,%s "
               "depart=07:00 utc_offset_min=0 express_every_min=%d\n",
            WH[w], 200000 + 40000 * w, 100000 + 30000 * w, c[0], c[1], c[2],
            w == NWH - 1 ? 5 : 0);
    for (int v = 0; v < 4; v++)
      fprintf(f, "vehicle %s-v%d warehouse=%s kg=2000 items=600 "
                 "refrigerated=%s shift_min=1440\n",
              WH[w], v, WH[w], v == 0 ? "yes" : "no");
  }
  for (int p = 0; p < NPP; p++)
    fprintf(f, "pickup %s community=%s-c%d lat=30.%06d lng=120.%06d "
               "hours=00:00-24:00 capacity=1000\n",
            PP[p], RUN, p % 7, 150000 + (p * 7919) % 200000,
            50000 + (p * 104729) % 200000);
  /* A small pickup point: two parcels a wave. */
  fprintf(f, "pickup %s-PPS community=%s-c0 lat=30.250000 lng=120.150000 "
             "hours=00:00-24:00 capacity=2\n",
          RUN, RUN);
  return fclose(f);
}

static int suite_init(void) {
  linli_test_unique("rtr", RUN, sizeof RUN);
  for (int w = 0; w < NWH; w++)
    snprintf(WH[w], sizeof WH[w], "%s-W%d", RUN, w);
  for (int p = 0; p < NPP; p++)
    snprintf(PP[p], sizeof PP[p], "%s-PP%02d", RUN, p);
  if (linli_test_ensure_topic(T_FULFILLMENT, 6, NULL) ||
      linli_test_ensure_topic(T_ROUTES, 6, NULL) ||
      linli_test_ensure_topic(T_DLQ, 3, NULL))
    return -1;
  const linli_config_t *cfg = linli_test_config();
  char err[256];
  if (!cfg ||
      linli_redis_connect(linli_config_str(cfg, "redis.host"),
                          (int)linli_config_int(cfg, "redis.port"),
                          linli_config_str(cfg, "redis.password"), 5000,
                          &redis, err, sizeof err) != LINLI_OK)
    return -1;
  /* Both groups start where this run starts: the second one replays the
   * run's log into an empty Redis at the end. */
  linli_test_unique("rtr-g", group, sizeof group);
  linli_test_unique("rtr-replay", replay_group, sizeof replay_group);
  if (linli_test_group_start_at_end(group, INPUTS) ||
      linli_test_group_start_at_end(replay_group, INPUTS))
    return -1;
  const char *out[] = {T_ROUTES, T_DLQ, NULL};
  reader = linli_test_reader_new(out, 1);
  /* Three cutoffs a day, on whole minutes 10, 70 and 130 minutes ahead
   * (UTC); the fake clock starts now. */
  T0 = linli_clock_now_ms();
  int64_t base = (T0 / MINUTE + 10) * MINUTE;
  for (int i = 0; i < 3; i++)
    CUT[i] = base + i * 60 * MINUTE;
  snprintf(clock_file, sizeof clock_file, "/tmp/%s-clock", RUN);
  snprintf(ref_file, sizeof ref_file, "/tmp/%s-ref.conf", RUN);
  if (!reader || write_clock(T0) || write_reference())
    return -1;
  struct dom_ref_warehouse w = {.utc_offset_min = 0};
  for (int i = 0; i < 3; i++)
    dom_wave_id(&w, DOM_WAVE_DAILY, CUT[i], WAVE[i], sizeof WAVE[i]);
  return 0;
}

static int suite_cleanup(void) {
  if (router_a.pid > 0)
    linli_test_stop(router_a.pid, 1);
  linli_test_reader_free(reader);
  /* This run's warehouses leave the clock's index. */
  for (int p = 0; redis && p < 64; p++) {
    char key[48];
    snprintf(key, sizeof key, DOM_WAVE_KEY_INDEX "%d", p);
    const char *argv[] = {"SREM", key, WH[0], WH[1], WH[2]};
    redisReply *r = NULL;
    if (linli_redis_command(redis, 5, argv, NULL, &r) == LINLI_OK)
      freeReplyObject(r);
  }
  linli_redis_free(redis);
  unlink(clock_file);
  unlink(ref_file);
  free(st.stops.v);
  free(st.orders.v);
  free(st.lines.v);
  free(st.planned.v);
  free(st.events.v);
  free(st.left.v);
  return 0;
}

/* ================================================================ tests */

/* A reference file with a bad entry: the router refuses to start and
 * names the file, the line and why. */
static void test_bad_reference(void) {
  char bad[300];
  snprintf(bad, sizeof bad, "/tmp/%s-bad.conf", RUN);
  FILE *f = fopen(bad, "w");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  fprintf(f, "warehouse W1 lat=30 lng=120 cutoffs=22:00 depart=07:00\n"
             "vehicle V1 warehouse=W1 kg=1 items=1 refrigerated=no "
             "shift_min=60\n"
             "pickup P1 community=c lat=30 lng=120 hours=08:00-20:00 "
             "capacity=-3\n");
  fclose(f);
  struct proc p;
  spawn_router(&p, "badref", bad, NULL);
  int status = 0;
  linli_test_wait_exit(p.pid, 30000, &status);
  CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 2);
  FILE *log = fopen(p.log, "r");
  CU_ASSERT_PTR_NOT_NULL_FATAL(log);
  char text[8192] = "";
  size_t got = fread(text, 1, sizeof text - 1, log);
  text[got] = '\0';
  fclose(log);
  char want[400];
  snprintf(want, sizeof want, "%s:3: pickup P1: capacity", bad);
  CU_ASSERT_PTR_NOT_NULL(strstr(text, want));
  unlink(bad);
}

static void test_start(void) {
  spawn_router(&router_a, "a", ref_file, NULL);
}

/* Every order of wave w exactly once, at its pickup point's single stop,
 * and the sorting lists add up to the items. */
static void check_wave(int w) {
  int bad_stops = 0, bad_orders = 0, bad_lines = 0;
  for (int wh = 0; wh < NWH; wh++) {
    /* One stop per pickup point with items in this wave. */
    for (int p = 0; p < NPP; p++) {
      int want = 0, got = 0;
      for (size_t i = 0; i < nitems; i++)
        want |= items[i].wave == w && items[i].wh == wh &&
                strcmp(items[i].pp, PP[p]) == 0;
      for (size_t s = 0; s < st.stops.n; s++)
        got += st.stops.v[s].wh == wh &&
               strcmp(st.stops.v[s].wave, WAVE[w]) == 0 &&
               strcmp(st.stops.v[s].pp, PP[p]) == 0;
      bad_stops += got != want;
    }
  }
  for (size_t i = 0; i < nitems; i++) {
    const struct item *it = &items[i];
    if (it->wave != w)
      continue;
    int seen = 0, elsewhere = 0;
    for (size_t o = 0; o < st.orders.n; o++) {
      if (strcmp(st.orders.v[o].order, it->order) != 0)
        continue;
      if (strcmp(st.orders.v[o].wave, WAVE[w]) == 0 &&
          st.orders.v[o].wh == it->wh && strcmp(st.orders.v[o].pp, it->pp) == 0)
        seen++;
      else
        elsewhere++;
    }
    bad_orders += seen != 1 || elsewhere != 0;
    /* Its sorting lines: exactly its own lines, once. */
    int lines = 0, match = 0;
    for (size_t l = 0; l < st.lines.n; l++) {
      const struct line_rec *lr = &st.lines.v[l];
      if (strcmp(lr->order, it->order) != 0)
        continue;
      lines++;
      for (int k = 0; k < it->nlines; k++) {
        char sku[16];
        snprintf(sku, sizeof sku, "sku-%d", it->sku[k]);
        match += strcmp(lr->sku, sku) == 0 && lr->qty == it->qty[k] &&
                 strcmp(lr->pp, it->pp) == 0 &&
                 strcmp(lr->wave, WAVE[w]) == 0;
      }
    }
    bad_lines += lines != it->nlines || match != it->nlines;
  }
  CU_ASSERT_EQUAL(bad_stops, 0);
  CU_ASSERT_EQUAL(bad_orders, 0);
  CU_ASSERT_EQUAL(bad_lines, 0);
  int orders = 0;
  for (size_t p = 0; p < st.planned.n; p++)
    if (strcmp(st.planned.v[p].wave, WAVE[w]) == 0) {
      CU_ASSERT_EQUAL(st.planned.v[p].unassigned, 0);
      orders += st.planned.v[p].orders;
    }
  int want = 0;
  for (size_t i = 0; i < nitems; i++)
    want += items[i].wave == w;
  CU_ASSERT_EQUAL(orders, want);
  CU_ASSERT_EQUAL(n_planned(WAVE[w]), NWH);
  if (bad_stops || bad_orders || bad_lines)
    fprintf(stderr, "\n  wave %s: %d stop, %d order, %d line problems\n",
            WAVE[w], bad_stops, bad_orders, bad_lines);
}

static void check_no_duplicates(void) {
  int dups = 0;
  for (size_t i = 0; i < st.events.n; i++)
    dups += st.events.v[i].seen != 1;
  CU_ASSERT_EQUAL(dups, 0);
}

/* 1,000 items, 3 warehouses, 40 pickup points, two waves. */
static void test_two_waves(void) {
  produce_items(500, 0, T0, 1);
  CU_ASSERT_EQUAL_FATAL(write_clock(CUT[0] + 1000), 0);
  CU_ASSERT_FATAL(wait_until(have_planned, WAVE[0], 120000));
  /* Items after the first WaveClosed go to the second wave. */
  produce_items(500, 1, CUT[0] + 2000, 2);
  CU_ASSERT_EQUAL_FATAL(write_clock(CUT[1] + 1000), 0);
  CU_ASSERT_FATAL(wait_until(have_planned, WAVE[1], 120000));
  settle(1000);
  check_wave(0);
  check_wave(1);
  check_no_duplicates();
  CU_ASSERT(st.routes > 0);
  /* Redis keeps open waves only: the routed ones are gone. */
  for (int w = 0; w < NWH; w++) {
    char q[256];
    snprintf(q, sizeof q, "{" DOM_WAVE_TAG_FMT "}:q:d", WH[w]);
    const char *argv[] = {"EXISTS", q};
    redisReply *r = NULL;
    CU_ASSERT_EQUAL_FATAL(linli_redis_command(redis, 2, argv, NULL, &r),
                          LINLI_OK);
    CU_ASSERT_EQUAL(r->integer, 0);
    freeReplyObject(r);
  }
}

static void test_bad_input(void) {
  /* A line of quantity 0, and a WaveClosed whose id is not its cutoff's. */
  Linli__FulfillmentEvent ev = LINLI__FULFILLMENT_EVENT__INIT;
  Linli__FulfillmentItem fi = LINLI__FULFILLMENT_ITEM__INIT;
  Linli__OrderLine ol = LINLI__ORDER_LINE__INIT, *olp = &ol;
  Linli__PickupDelivery pd = LINLI__PICKUP_DELIVERY__INIT;
  char order[96], user[96];
  snprintf(order, sizeof order, "%s-bad", RUN);
  snprintf(user, sizeof user, "%s-u", RUN);
  ol.sku_id = (char *)"sku-1";
  ol.quantity = 0;
  pd.pickup_point_id = PP[0];
  fi.order_id = order;
  fi.warehouse_id = WH[0];
  fi.user_id = user;
  fi.n_lines = 1;
  fi.lines = &olp;
  fi.storage_class = LINLI__STORAGE_CLASS__AMBIENT;
  fi.delivery_case = LINLI__FULFILLMENT_ITEM__DELIVERY_PICKUP;
  fi.pickup = &pd;
  ev.event_case = LINLI__FULFILLMENT_EVENT__EVENT_FULFILLMENT_ITEM;
  ev.fulfillment_item = &fi;
  CU_ASSERT_EQUAL_FATAL(produce_event(&ev, WH[0], CUT[1] + 3000), 0);
  int want = st.dlq + 1;
  CU_ASSERT_FATAL(wait_until(have_dlq, &want, 30000));
  CU_ASSERT_PTR_NOT_NULL(strstr(st.dlq_reason, "lines[0].quantity"));
  Linli__FulfillmentEvent ev2 = LINLI__FULFILLMENT_EVENT__INIT;
  Linli__WaveClosed wc = LINLI__WAVE_CLOSED__INIT;
  wc.warehouse_id = WH[1];
  wc.wave_id = (char *)"d19990101-0000";
  wc.cutoff_ms = CUT[1];
  ev2.event_case = LINLI__FULFILLMENT_EVENT__EVENT_WAVE_CLOSED;
  ev2.wave_closed = &wc;
  CU_ASSERT_EQUAL_FATAL(produce_event(&ev2, WH[1], CUT[1] + 3000), 0);
  want = st.dlq + 1;
  CU_ASSERT_FATAL(wait_until(have_dlq, &want, 30000));
  CU_ASSERT_PTR_NOT_NULL(strstr(st.dlq_reason, "does not match cutoff_ms"));
}

/* Sum of the open daily waves' lengths of this run's warehouses. */
static long long queued(void) {
  long long n = 0;
  for (int w = 0; w < NWH; w++) {
    char q[256];
    snprintf(q, sizeof q, "{" DOM_WAVE_TAG_FMT "}:q:d", WH[w]);
    const char *argv[] = {"LLEN", q};
    redisReply *r = NULL;
    if (linli_redis_command(redis, 2, argv, NULL, &r) != LINLI_OK)
      return -1;
    n += r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
    freeReplyObject(r);
  }
  return n;
}

/* A router dies (SIGKILL) right before its first commit, after its clock
 * wrote the third wave's closes and it applied what it read: the restarted
 * router routes the wave once, every order in it exactly once. */
static void test_kill_mid_wave(void) {
  produce_items(200, 2, CUT[1] + 4000, 3);
  int64_t deadline = linli_test_now_ms() + 60000;
  while (queued() < 200 && linli_test_now_ms() < deadline)
    usleep(100 * 1000);
  CU_ASSERT_EQUAL_FATAL(queued(), 200);
  stop_router(&router_a);
  CU_ASSERT_EQUAL_FATAL(write_clock(CUT[2] + 1000), 0);
  /* The clock's WaveClosed commits on its own (ticks are not batches);
   * the batch that applies it is the one that dies. Should another run's
   * record come first and take the bullet, start another. */
  for (int attempt = 0; attempt < 5 && queued() == 200; attempt++) {
    struct proc k;
    spawn_router(&k, "k", ref_file, "LINLI_FAULT_KILL_BEFORE_COMMIT=1");
    int status = 0;
    linli_test_wait_exit(k.pid, 60000, &status);
    CU_ASSERT_FATAL(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  }
  CU_ASSERT_FATAL(queued() < 200); /* a wave closed in Redis, uncommitted */
  settle(500);
  CU_ASSERT_EQUAL(n_planned(WAVE[2]), 0); /* nothing of it committed */
  /* Past the close retry, should a close not have been written. */
  CU_ASSERT_EQUAL_FATAL(write_clock(CUT[2] + 10000), 0);
  spawn_router(&router_a, "a2", ref_file, NULL);
  CU_ASSERT_FATAL(wait_until(have_planned, WAVE[2], 120000));
  settle(2000);
  check_wave(2);
  check_no_duplicates();
  stop_router(&router_a);
}

/* Express items leave in their own wave at the next express cutoff (every
 * 5 minutes), not at the next daily cutoff (tomorrow), and the daily wave
 * opened meanwhile keeps its own items. */
static void test_express(void) {
  spawn_router(&router_a, "a3", ref_file, NULL);
  int64_t at = CUT[2] + 20000, every = 5 * MINUTE;
  int64_t cut = (at / every + 1) * every;
  char wave[24];
  struct dom_ref_warehouse w = {.utc_offset_min = 0};
  dom_wave_id(&w, DOM_WAVE_EXPRESS, cut, wave, sizeof wave);
  char orders[5][96], user[96];
  snprintf(user, sizeof user, "%s-xu", RUN);
  for (int i = 0; i < 5; i++) {
    Linli__FulfillmentEvent ev = LINLI__FULFILLMENT_EVENT__INIT;
    Linli__FulfillmentItem fi = LINLI__FULFILLMENT_ITEM__INIT;
    Linli__OrderLine ol = LINLI__ORDER_LINE__INIT, *olp = &ol;
    Linli__PickupDelivery pd = LINLI__PICKUP_DELIVERY__INIT;
    snprintf(orders[i], sizeof orders[i], "%s-x%d", RUN, i);
    ol.sku_id = (char *)"sku-fresh";
    ol.quantity = 1;
    pd.pickup_point_id = PP[i % 2];
    fi.order_id = orders[i];
    fi.warehouse_id = WH[NWH - 1];
    fi.user_id = user;
    fi.n_lines = 1;
    fi.lines = &olp;
    fi.storage_class = LINLI__STORAGE_CLASS__CHILLED;
    fi.delivery_case = LINLI__FULFILLMENT_ITEM__DELIVERY_PICKUP;
    fi.pickup = &pd;
    fi.express = 1;
    ev.event_case = LINLI__FULFILLMENT_EVENT__EVENT_FULFILLMENT_ITEM;
    ev.fulfillment_item = &fi;
    CU_ASSERT_EQUAL_FATAL(produce_event(&ev, WH[NWH - 1], at), 0);
  }
  CU_ASSERT_EQUAL_FATAL(write_clock(cut + 1000), 0);
  int64_t deadline = linli_test_now_ms() + 60000;
  while (n_planned(wave) < 1 && linli_test_now_ms() < deadline)
    settle(200);
  CU_ASSERT_EQUAL_FATAL(n_planned(wave), 1);
  settle(1000);
  CU_ASSERT_EQUAL(n_planned(wave), 1);
  for (int i = 0; i < 5; i++) {
    int seen = 0;
    for (size_t o = 0; o < st.orders.n; o++)
      seen += strcmp(st.orders.v[o].order, orders[i]) == 0 &&
              strcmp(st.orders.v[o].wave, wave) == 0;
    CU_ASSERT_EQUAL(seen, 1);
  }
  /* Two pickup points, one cold stop each. */
  int stops = 0;
  for (size_t s = 0; s < st.stops.n; s++)
    stops += strcmp(st.stops.v[s].wave, wave) == 0;
  CU_ASSERT_EQUAL(stops, 2);
  check_no_duplicates();
  stop_router(&router_a);
}

static int left_reason(const char *wave, const char *order) {
  for (size_t i = 0; i < st.left.n; i++)
    if (strcmp(st.left.v[i].wave, wave) == 0 &&
        strcmp(st.left.v[i].order, order) == 0)
      return st.left.v[i].reason;
  return 0;
}

/* What cannot be placed is reported with its reason, never dropped: an
 * unknown pickup point, parcels over a pickup point's capacity, a home
 * delivery without coordinates; a geocoded home delivery is a stop at its
 * coordinates. */
static void test_unassigned(void) {
  spawn_router(&router_a, "a4", ref_file, NULL);
  int64_t every = 5 * MINUTE;
  int64_t at = ((CUT[2] + 20000) / every + 1) * every + 2000;
  int64_t cut = (at / every + 1) * every;
  char wave[24], pps[96], ppx[96], user[96];
  struct dom_ref_warehouse w = {.utc_offset_min = 0};
  dom_wave_id(&w, DOM_WAVE_EXPRESS, cut, wave, sizeof wave);
  snprintf(pps, sizeof pps, "%s-PPS", RUN);
  snprintf(ppx, sizeof ppx, "%s-PPX", RUN);
  snprintf(user, sizeof user, "%s-uu", RUN);
  char orders[6][96];
  for (int i = 0; i < 6; i++) {
    Linli__FulfillmentEvent ev = LINLI__FULFILLMENT_EVENT__INIT;
    Linli__FulfillmentItem fi = LINLI__FULFILLMENT_ITEM__INIT;
    Linli__OrderLine ol = LINLI__ORDER_LINE__INIT, *olp = &ol;
    Linli__PickupDelivery pd = LINLI__PICKUP_DELIVERY__INIT;
    Linli__HomeDelivery hd = LINLI__HOME_DELIVERY__INIT;
    snprintf(orders[i], sizeof orders[i], "%s-u%d", RUN, i);
    ol.sku_id = (char *)"sku-1";
    ol.quantity = 1;
    fi.order_id = orders[i];
    fi.warehouse_id = WH[NWH - 1];
    fi.user_id = user;
    fi.n_lines = 1;
    fi.lines = &olp;
    fi.storage_class = LINLI__STORAGE_CLASS__AMBIENT;
    fi.express = 1;
    if (i < 4) { /* 0-2: the small point (one too many); 3: unknown */
      pd.pickup_point_id = i < 3 ? pps : ppx;
      fi.delivery_case = LINLI__FULFILLMENT_ITEM__DELIVERY_PICKUP;
      fi.pickup = &pd;
    } else { /* 4: not geocoded; 5: at coordinates */
      hd.recipient_name = (char *)"X";
      hd.phone = (char *)"+8613800000000";
      hd.address = (char *)"somewhere";
      hd.lat_e6 = i == 4 ? 0 : 30260000;
      hd.lng_e6 = i == 4 ? 0 : 120170000;
      fi.delivery_case = LINLI__FULFILLMENT_ITEM__DELIVERY_HOME;
      fi.home = &hd;
    }
    ev.event_case = LINLI__FULFILLMENT_EVENT__EVENT_FULFILLMENT_ITEM;
    ev.fulfillment_item = &fi;
    CU_ASSERT_EQUAL_FATAL(produce_event(&ev, WH[NWH - 1], at), 0);
  }
  CU_ASSERT_EQUAL_FATAL(write_clock(cut + 1000), 0);
  int64_t deadline = linli_test_now_ms() + 60000;
  while (n_planned(wave) < 1 && linli_test_now_ms() < deadline)
    settle(200);
  CU_ASSERT_EQUAL_FATAL(n_planned(wave), 1);
  settle(500);
  CU_ASSERT_EQUAL(left_reason(wave, orders[2]),
                  LINLI__WAVE_PLANNED__REASON__PICKUP_POINT_FULL);
  CU_ASSERT_EQUAL(left_reason(wave, orders[3]),
                  LINLI__WAVE_PLANNED__REASON__UNKNOWN_PICKUP_POINT);
  CU_ASSERT_EQUAL(left_reason(wave, orders[4]),
                  LINLI__WAVE_PLANNED__REASON__NO_LOCATION);
  /* The others ride: each exactly once, in this wave. */
  for (int i = 0; i < 6; i++) {
    if (i >= 2 && i <= 4)
      continue;
    int seen = 0;
    for (size_t o = 0; o < st.orders.n; o++)
      seen += strcmp(st.orders.v[o].order, orders[i]) == 0 &&
              strcmp(st.orders.v[o].wave, wave) == 0;
    CU_ASSERT_EQUAL(seen, 1);
    CU_ASSERT_EQUAL(left_reason(wave, orders[i]), 0);
  }
  check_no_duplicates();
  stop_router(&router_a);
}

/* Replaying the run's log into an empty Redis (this run's warehouses
 * forgotten, a new group from the run's start) reproduces every route,
 * sorting list and wave summary: the same event ids, the same bytes, and
 * nothing new. */
static void test_replay(void) {
  for (int w = 0; w < NWH; w++) {
    char match[256];
    snprintf(match, sizeof match, "{" DOM_WAVE_TAG_FMT "}*", WH[w]);
    char cursor[32] = "0";
    do {
      const char *argv[] = {"SCAN", cursor, "MATCH", match, "COUNT", "1000"};
      redisReply *r = NULL;
      CU_ASSERT_EQUAL_FATAL(linli_redis_command(redis, 6, argv, NULL, &r),
                            LINLI_OK);
      CU_ASSERT_FATAL(r->type == REDIS_REPLY_ARRAY && r->elements == 2);
      cpy(cursor, sizeof cursor, r->element[0]->str);
      for (size_t k = 0; k < r->element[1]->elements; k++) {
        const char *del[] = {"DEL", r->element[1]->element[k]->str};
        redisReply *d = NULL;
        if (linli_redis_command(redis, 2, del, NULL, &d) == LINLI_OK)
          freeReplyObject(d);
      }
      freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
  }
  size_t originals = st.events.n;
  CU_ASSERT_FATAL(originals > 0);
  spawn_group = replay_group;
  spawn_router(&router_a, "replay", ref_file, NULL);
  int64_t deadline = linli_test_now_ms() + 120000;
  size_t twice = 0;
  while (linli_test_now_ms() < deadline) {
    settle(500);
    twice = 0;
    for (size_t i = 0; i < originals; i++)
      twice += st.events.v[i].seen >= 2;
    if (twice == originals)
      break;
  }
  settle(2000);
  CU_ASSERT_EQUAL(twice, originals);
  int mismatch = 0, extra = 0;
  for (size_t i = 0; i < st.events.n; i++) {
    mismatch += st.events.v[i].mismatch;
    extra += i >= originals || st.events.v[i].seen != 2;
  }
  CU_ASSERT_EQUAL(mismatch, 0);
  CU_ASSERT_EQUAL(extra, 0);
  if (mismatch || extra || twice != originals)
    fprintf(stderr, "\n  replay: %zu of %zu again, %d differ, %d extra\n",
            twice, originals, mismatch, extra);
  stop_router(&router_a);
  spawn_group = group;
}

int linli_test_register(void) {
  CU_pSuite s = CU_add_suite("linli-router", suite_init, suite_cleanup);
  if (!s)
    return -1;
  CU_add_test(s, "bad reference entry stops the router", test_bad_reference);
  CU_add_test(s, "start", test_start);
  CU_add_test(s, "1,000 items, 3 warehouses, 40 pickup points, two waves",
              test_two_waves);
  CU_add_test(s, "bad input goes to the DLQ with its reason", test_bad_input);
  CU_add_test(s, "SIGKILL before the first commit, restart: exactly once",
              test_kill_mid_wave);
  CU_add_test(s, "express items leave in their express wave", test_express);
  CU_add_test(s, "unassigned orders come back with their reasons",
              test_unassigned);
  CU_add_test(s, "a replay into an empty Redis reproduces every output",
              test_replay);
  return CU_get_error() == CUE_SUCCESS ? 0 : -1;
}
