/*
 * test_settler.c - linli-settler against the real stack (Kafka, Redis):
 * joins counted per distinct user through two instances, one
 * ThresholdReached per tier, FULL / DUPLICATE / OVER_USER_LIMIT answers,
 * ladder pricing with refunds to the fen, a failed campaign refunded in
 * full and closed to later joins, a SIGKILL right after a deadline, bad
 * input on the DLQ, and a replay of the log into an empty Redis that
 * reproduces every output event.
 *
 * The settlers read linli.groupbuy.v1 from this run's start (a group set to
 * the topic's end first); every id of this run starts with RUN, and only
 * those records are looked at. Deadlines are driven by an injected clock
 * (LINLI_FAKE_CLOCK_FILE), never by sleeping.
 */
#include <CUnit/CUnit.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "domain/groupbuy_state.h"
#include "groupbuy.pb-c.h"
#include "linli/clock.h"
#include "linli/error.h"
#include "linli/ids.h"
#include "linli/kafka.h"
#include "linli/redis.h"
#include "linli_test.h"
#include "refunds.pb-c.h"
#include "settlements.pb-c.h"
#include "domain/topics.h"

#define T_GROUPBUY LINLI_TOPIC_GROUPBUY
#define T_SETTLEMENTS LINLI_TOPIC_SETTLEMENTS
#define T_REFUNDS LINLI_TOPIC_REFUNDS
#define T_DLQ LINLI_TOPIC_DLQ

#define JOINED LINLI__JOIN_RESULT__STATUS__JOINED
#define LEFT LINLI__JOIN_RESULT__STATUS__LEFT
#define REJECTED LINLI__JOIN_RESULT__STATUS__REJECTED
#define ANY (-1)

static const char *const INPUTS[] = {T_GROUPBUY, NULL};

/* ================================================================ store */

struct rjoin {
  char campaign[72], order[72], eid[72];
  int status, reason, participants, needed, quantity;
};
struct rtier {
  char campaign[72];
  int tier, participants;
  int64_t price;
};
struct rend {
  char campaign[72];
  int settled, tier, participants;
  int64_t price;
  size_t nrefunds;
  int64_t refund_sum;
};
struct rrefund {
  char campaign[72], order[72], id[72];
  int reason;
  int64_t amount;
};
/* Every settlement-topic event of this run: id and a content signature,
 * to compare a replay with the first pass. */
struct revent {
  char id[72];
  char sig[512];
  int seen, first; /* first: times seen in the first pass */
};

#define VEC(T)                                                                 \
  struct {                                                                     \
    T *v;                                                                      \
    size_t n, cap;                                                             \
  }

static struct {
  VEC(struct rjoin) joins;
  VEC(struct rtier) tiers;
  VEC(struct rend) ends;
  VEC(struct rrefund) refunds;
  VEC(struct revent) events;
  int deadlines, dlq;
  char dlq_reason[600];
} st;

static char RUN[48];
static linli_test_reader_t *reader;
static linli_redis_t *redis;
static char clock_file[256], group[96], replay_group[96];
static char wh[80]; /* the warehouse of this run's campaigns (audit scope) */
static int64_t T0;

#define PUSH(vec) LINLI_TEST_PUSH(vec)

static int ours(const char *id) {
  return id && strncmp(id, RUN, strlen(RUN)) == 0;
}

static void cpy(char *dst, size_t len, const char *src) {
  snprintf(dst, len, "%s", src ? src : "");
}

static char planted_id[LINLI_ID_BUFSZ]; /* test_audit's fake settlement */

static void record_event(const char *id, const char *sig) {
  if (strcmp(id, planted_id) == 0)
    return; /* not the settler's: a replay does not reproduce it */
  for (size_t i = 0; i < st.events.n; i++)
    if (strcmp(st.events.v[i].id, id) == 0) {
      st.events.v[i].seen++;
      CU_ASSERT_STRING_EQUAL(st.events.v[i].sig, sig);
      return;
    }
  struct revent *e = PUSH(st.events);
  cpy(e->id, sizeof e->id, id);
  cpy(e->sig, sizeof e->sig, sig);
  e->seen = 1;
}

static void collect_settlement(const rd_kafka_message_t *m) {
  Linli__SettlementEvent *ev =
      linli__settlement_event__unpack(NULL, m->len, m->payload);
  if (!ev)
    return;
  char sig[512] = "";
  const char *eid = ev->meta ? ev->meta->event_id : "";
  if (ev->event_case == LINLI__SETTLEMENT_EVENT__EVENT_JOIN_RESULT &&
      ours(ev->join_result->campaign_id)) {
    const Linli__JoinResult *j = ev->join_result;
    struct rjoin *e = PUSH(st.joins);
    cpy(e->campaign, sizeof e->campaign, j->campaign_id);
    cpy(e->order, sizeof e->order, j->order_id);
    cpy(e->eid, sizeof e->eid, eid);
    e->status = j->status;
    e->reason = j->reason;
    e->participants = j->participants;
    e->needed = j->needed_for_next_tier;
    e->quantity = j->quantity;
    snprintf(sig, sizeof sig, "J|%s|%s|%d|%d|%d|%d|%d", j->campaign_id,
             j->order_id, j->status, j->reason, j->participants,
             j->needed_for_next_tier, j->quantity);
  } else if (ev->event_case ==
                 LINLI__SETTLEMENT_EVENT__EVENT_THRESHOLD_REACHED &&
             ours(ev->threshold_reached->campaign_id)) {
    const Linli__ThresholdReached *t = ev->threshold_reached;
    struct rtier *e = PUSH(st.tiers);
    cpy(e->campaign, sizeof e->campaign, t->campaign_id);
    e->tier = t->tier;
    e->participants = t->participants;
    e->price = t->unit_price_fen;
    snprintf(sig, sizeof sig, "T|%s|%d|%d|%lld", t->campaign_id, t->tier,
             t->participants, (long long)t->unit_price_fen);
  } else if (ev->event_case ==
                 LINLI__SETTLEMENT_EVENT__EVENT_CAMPAIGN_SETTLED &&
             ours(ev->campaign_settled->campaign_id)) {
    const Linli__CampaignSettled *s = ev->campaign_settled;
    /* The reserver routes a settlement to its warehouse's orders. */
    CU_ASSERT_STRING_EQUAL(s->warehouse_id, wh);
    struct rend *e = PUSH(st.ends);
    cpy(e->campaign, sizeof e->campaign, s->campaign_id);
    e->settled = 1;
    e->tier = s->tier;
    e->price = s->unit_price_fen;
    e->participants = s->participants;
    e->nrefunds = s->n_refunds;
    for (size_t i = 0; i < s->n_refunds; i++)
      e->refund_sum += s->refunds[i]->amount_fen;
    snprintf(sig, sizeof sig, "S|%s|%d|%lld|%d|%zu|%lld", s->campaign_id,
             s->tier, (long long)s->unit_price_fen, s->participants,
             s->n_refunds, (long long)e->refund_sum);
  } else if (ev->event_case == LINLI__SETTLEMENT_EVENT__EVENT_CAMPAIGN_FAILED &&
             ours(ev->campaign_failed->campaign_id)) {
    const Linli__CampaignFailed *f = ev->campaign_failed;
    CU_ASSERT_STRING_EQUAL(f->warehouse_id, wh);
    struct rend *e = PUSH(st.ends);
    cpy(e->campaign, sizeof e->campaign, f->campaign_id);
    e->tier = -1;
    e->participants = f->participants;
    e->nrefunds = f->n_refunds;
    for (size_t i = 0; i < f->n_refunds; i++)
      e->refund_sum += f->refunds[i]->amount_fen;
    snprintf(sig, sizeof sig, "F|%s|%d|%zu|%lld", f->campaign_id,
             f->participants, f->n_refunds, (long long)e->refund_sum);
  }
  if (sig[0])
    record_event(eid, sig);
  linli__settlement_event__free_unpacked(ev, NULL);
}

static void collect(void *arg, const rd_kafka_message_t *m) {
  (void)arg;
  const char *topic = rd_kafka_topic_name(m->rkt);
  if (strcmp(topic, T_SETTLEMENTS) == 0) {
    collect_settlement(m);
  } else if (strcmp(topic, T_REFUNDS) == 0) {
    Linli__RefundEvent *ev = linli__refund_event__unpack(NULL, m->len,
                                                         m->payload);
    if (!ev)
      return;
    const Linli__RefundRequested *r = ev->refund_requested;
    if (r && ours(r->campaign_id)) {
      struct rrefund *e = PUSH(st.refunds);
      cpy(e->campaign, sizeof e->campaign, r->campaign_id);
      cpy(e->order, sizeof e->order, r->order_id);
      cpy(e->id, sizeof e->id, r->refund_id);
      e->reason = r->reason;
      e->amount = r->amount_fen;
      char sig[256];
      snprintf(sig, sizeof sig, "R|%s|%d|%lld", r->order_id, r->reason,
               (long long)r->amount_fen);
      record_event(ev->meta ? ev->meta->event_id : "", sig);
    }
    linli__refund_event__free_unpacked(ev, NULL);
  } else if (strcmp(topic, T_GROUPBUY) == 0) {
    Linli__GroupBuyEvent *ev =
        linli__group_buy_event__unpack(NULL, m->len, m->payload);
    if (!ev)
      return;
    if (ev->event_case == LINLI__GROUP_BUY_EVENT__EVENT_CAMPAIGN_DEADLINE &&
        ours(ev->campaign_deadline->campaign_id))
      st.deadlines++;
    linli__group_buy_event__free_unpacked(ev, NULL);
  } else if (strcmp(topic, T_DLQ) == 0) {
    char key[80] = "", consumer[64];
    size_t kl = m->key_len < sizeof key - 1 ? m->key_len : sizeof key - 1;
    if (m->key)
      memcpy(key, m->key, kl);
    key[kl] = '\0';
    linli_test_header(m, LINLI_DLQ_H_CONSUMER, consumer, sizeof consumer);
    if (!ours(key) || strcmp(consumer, "settler") != 0)
      return;
    st.dlq++;
    linli_test_header(m, LINLI_DLQ_H_REASON, st.dlq_reason,
                      sizeof st.dlq_reason);
  }
}

/* ---------------------------------------------------------- store queries */

static int n_joins(const char *campaign, int status, int reason) {
  int n = 0;
  for (size_t i = 0; i < st.joins.n; i++) {
    const struct rjoin *j = &st.joins.v[i];
    if (strcmp(j->campaign, campaign) == 0 &&
        (status == ANY || j->status == status) &&
        (reason == ANY || j->reason == reason))
      n++;
  }
  return n;
}

static const struct rjoin *find_join(const char *order) {
  for (size_t i = 0; i < st.joins.n; i++)
    if (strcmp(st.joins.v[i].order, order) == 0)
      return &st.joins.v[i];
  return NULL;
}

static int n_tiers(const char *campaign, int tier) {
  int n = 0;
  for (size_t i = 0; i < st.tiers.n; i++)
    if (strcmp(st.tiers.v[i].campaign, campaign) == 0 &&
        (tier == ANY || st.tiers.v[i].tier == tier))
      n++;
  return n;
}

static const struct rend *find_end(const char *campaign, int *count) {
  const struct rend *found = NULL;
  *count = 0;
  for (size_t i = 0; i < st.ends.n; i++)
    if (strcmp(st.ends.v[i].campaign, campaign) == 0) {
      found = &st.ends.v[i];
      (*count)++;
    }
  return found;
}

static int n_refunds(const char *campaign, int reason, int64_t *sum) {
  int n = 0;
  if (sum)
    *sum = 0;
  for (size_t i = 0; i < st.refunds.n; i++)
    if (strcmp(st.refunds.v[i].campaign, campaign) == 0 &&
        (reason == ANY || st.refunds.v[i].reason == reason)) {
      n++;
      if (sum)
        *sum += st.refunds.v[i].amount;
    }
  return n;
}

struct want {
  const char *campaign;
  int n;
};
static int have_joins(void *a) {
  const struct want *w = a;
  return n_joins(w->campaign, ANY, ANY) >= w->n;
}
static int have_end(void *a) {
  const struct want *w = a;
  int c;
  return find_end(w->campaign, &c) != NULL;
}
static int have_dlq(void *a) { return st.dlq >= *(int *)a; }
static int have_refunds(void *a) {
  const struct want *w = a;
  return n_refunds(w->campaign, ANY, NULL) >= w->n;
}

static int wait_until(linli_test_until_fn fn, void *arg, int timeout_ms) {
  linli_test_reader_poll(reader, timeout_ms, collect, arg, fn);
  return fn(arg);
}

/* Keep reading for ms: catches late or duplicate records. */
static void settle(int ms) {
  linli_test_reader_poll(reader, ms, collect, NULL, NULL);
}

/* ================================================================ events */

struct buf {
  uint8_t *p;
  size_t n;
};

static struct buf pack_event(Linli__GroupBuyEvent *ev, int64_t at) {
  Linli__Meta meta = LINLI__META__INIT;
  char eid[LINLI_ID_BUFSZ];
  linli_id_new(eid, sizeof eid);
  meta.event_id = eid;
  meta.occurred_at_ms = at;
  meta.producer = (char *)"test_settler";
  meta.schema_version = 1;
  ev->meta = &meta;
  struct buf b;
  b.n = linli__group_buy_event__get_packed_size(ev);
  b.p = malloc(b.n ? b.n : 1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(b.p);
  linli__group_buy_event__pack(ev, b.p);
  ev->meta = NULL;
  return b;
}

static void put(const char *key, struct buf b) {
  int rc = linli_test_produce(T_GROUPBUY, key, b.p, b.n);
  free(b.p);
  CU_ASSERT_EQUAL_FATAL(rc, 0);
}

/* Tiers 5/20/50 at 1200/1000/900 fen (list 1500), per-user limit 3. */
static void open_campaign(const char *campaign, int64_t deadline, int cap) {
  Linli__GroupBuyEvent ev = LINLI__GROUP_BUY_EVENT__INIT;
  Linli__CampaignOpened c = LINLI__CAMPAIGN_OPENED__INIT;
  Linli__CampaignOpened__Tier t[3], *tp[3];
  static const int mins[] = {5, 20, 50};
  static const long long prices[] = {1200, 1000, 900};
  for (int i = 0; i < 3; i++) {
    linli__campaign_opened__tier__init(&t[i]);
    t[i].min_participants = mins[i];
    t[i].unit_price_fen = prices[i];
    tp[i] = &t[i];
  }
  c.campaign_id = (char *)campaign;
  c.app_id = (char *)"shop_a";
  c.sku_id = (char *)"rice-5kg";
  c.warehouse_id = wh;
  c.list_price_fen = 1500;
  c.n_tiers = 3;
  c.tiers = tp;
  c.deadline_ms = deadline;
  c.per_user_limit = 3;
  c.max_participants = cap;
  ev.event_case = LINLI__GROUP_BUY_EVENT__EVENT_CAMPAIGN_OPENED;
  ev.campaign_opened = &c;
  put(campaign, pack_event(&ev, T0));
}

static struct buf join_ev(const char *campaign, const char *user,
                          const char *order, int qty) {
  Linli__GroupBuyEvent ev = LINLI__GROUP_BUY_EVENT__INIT;
  Linli__GroupBuyJoined j = LINLI__GROUP_BUY_JOINED__INIT;
  j.campaign_id = (char *)campaign;
  j.user_id = (char *)user;
  j.order_id = (char *)order;
  j.quantity = qty;
  ev.event_case = LINLI__GROUP_BUY_EVENT__EVENT_GROUP_BUY_JOINED;
  ev.group_buy_joined = &j;
  return pack_event(&ev, T0 + 1000);
}

static void join(const char *campaign, const char *user, const char *order,
                 int qty) {
  put(campaign, join_ev(campaign, user, order, qty));
}

static void leave(const char *campaign, const char *user, const char *order) {
  Linli__GroupBuyEvent ev = LINLI__GROUP_BUY_EVENT__INIT;
  Linli__GroupBuyLeft l = LINLI__GROUP_BUY_LEFT__INIT;
  l.campaign_id = (char *)campaign;
  l.user_id = (char *)user;
  l.order_id = (char *)order;
  ev.event_case = LINLI__GROUP_BUY_EVENT__EVENT_GROUP_BUY_LEFT;
  ev.group_buy_left = &l;
  put(campaign, pack_event(&ev, T0 + 2000));
}

/* n joins of users RUN-<tag>-u<i>, orders RUN-<tag>-o<i>, quantity
 * 1 + i % 3, produced together (one fast batch). */
static void join_many(const char *campaign, const char *tag, int n) {
  const char **keys = calloc((size_t)n, sizeof *keys);
  const void **vals = calloc((size_t)n, sizeof *vals);
  size_t *lens = calloc((size_t)n, sizeof *lens);
  struct buf *bufs = calloc((size_t)n, sizeof *bufs);
  CU_ASSERT_FATAL(keys && vals && lens && bufs);
  for (int i = 0; i < n; i++) {
    char user[96], order[96];
    snprintf(user, sizeof user, "%s-%s-u%d", RUN, tag, i);
    snprintf(order, sizeof order, "%s-%s-o%d", RUN, tag, i);
    bufs[i] = join_ev(campaign, user, order, 1 + i % 3);
    keys[i] = campaign;
    vals[i] = bufs[i].p;
    lens[i] = bufs[i].n;
  }
  CU_ASSERT_EQUAL(linli_test_produce_batch(T_GROUPBUY, (size_t)n, keys, vals,
                                           lens),
                  0);
  for (int i = 0; i < n; i++)
    free(bufs[i].p);
  free(keys);
  free(vals);
  free(lens);
  free(bufs);
}

static void id(char *buf, size_t len, const char *what) {
  snprintf(buf, len, "%s-%s", RUN, what);
}

/* ============================================================ processes */

struct proc {
  pid_t pid;
  char inst[96], log[160];
};
static struct proc settler_a, settler_b;

static int write_clock(int64_t ms) {
  return linli_test_write_clock(clock_file, ms);
}

static void spawn_settler(struct proc *p, const char *name, const char *grp,
                          const char *extra) {
  char path[512], e_group[160], e_inst[160], e_clock[320];
  linli_test_binary_path("consumers/settler/linli-settler", path, sizeof path);
  snprintf(p->inst, sizeof p->inst, "%s-%s", RUN, name);
  snprintf(p->log, sizeof p->log, "/tmp/%s.log", p->inst);
  snprintf(e_group, sizeof e_group, "LINLI_RUNNER_GROUP=%s", grp);
  snprintf(e_inst, sizeof e_inst, "LINLI_RUNNER_INSTANCE_ID=%s", p->inst);
  snprintf(e_clock, sizeof e_clock, "LINLI_FAKE_CLOCK_FILE=%s", clock_file);
  /* extra: "NAME=value" settings separated by ';', ahead of the defaults
   * (the first of two equal names wins). */
  char extras[256] = "", *env[16];
  int ne = 0;
  snprintf(extras, sizeof extras, "%s", extra ? extra : "");
  char *save = NULL;
  for (char *tok = strtok_r(extras, ";", &save); tok && ne < 8;
       tok = strtok_r(NULL, ";", &save))
    env[ne++] = tok;
  char *defaults[] = {e_group,
                      e_inst,
                      e_clock,
                      (char *)"LINLI_METRICS_PORT=0",
                      (char *)"LINLI_RUNNER_FLUSH_INTERVAL_MS=50",
                      (char *)"LINLI_RUNNER_TICK_INTERVAL_MS=200",
                      (char *)"LINLI_GROUPBUY_DEADLINE_RETRY_MS=2000"};
  for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++)
    env[ne++] = defaults[i];
  env[ne] = NULL;
  char *argv[] = {path, NULL};
  p->pid = linli_test_spawn_tied(argv, env, p->log);
  CU_ASSERT_FATAL(p->pid > 0);
}

/* SIGTERM: a settler drains and exits 0 (and leaks nothing, under ASan). */
static void stop_settler(struct proc *p) {
  CU_ASSERT(linli_test_stop_clean(&p->pid, p->inst, p->log));
}

/* ================================================================ suite */

static int suite_init(void) {
  linli_test_unique("stl", RUN, sizeof RUN);
  snprintf(wh, sizeof wh, "%s-W", RUN);
  struct {
    const char *t;
    int p;
  } topics[] = {{T_GROUPBUY, 6}, {T_SETTLEMENTS, 6}, {T_REFUNDS, 6},
                {T_DLQ, 3}};
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
  /* Both groups start where this run starts: the second one replays the
   * run's log later. */
  linli_test_unique("stl-g", group, sizeof group);
  linli_test_unique("stl-replay", replay_group, sizeof replay_group);
  if (linli_test_group_start_at_end(group, INPUTS) ||
      linli_test_group_start_at_end(replay_group, INPUTS))
    return -1;
  const char *out[] = {T_SETTLEMENTS, T_REFUNDS, T_GROUPBUY, T_DLQ, NULL};
  reader = linli_test_reader_new(out, 1);
  T0 = linli_clock_now_ms();
  snprintf(clock_file, sizeof clock_file, "/tmp/%s-clock", RUN);
  if (!reader || write_clock(T0))
    return -1;
  return 0;
}

static int suite_cleanup(void) {
  if (settler_a.pid > 0)
    linli_test_stop(settler_a.pid, 1);
  if (settler_b.pid > 0)
    linli_test_stop(settler_b.pid, 1);
  linli_test_reader_free(reader);
  linli_redis_free(redis);
  unlink(clock_file);
  free(st.joins.v);
  free(st.tiers.v);
  free(st.ends.v);
  free(st.refunds.v);
  free(st.events.v);
  return 0;
}

static char c_cap[72], c_ladder[72], c_fail[72], c_kill[72], c_rep[72],
    c_big[72];

static void test_start(void) {
  spawn_settler(&settler_a, "a", group, NULL);
  spawn_settler(&settler_b, "b", group, NULL);
  id(c_cap, sizeof c_cap, "cap");
  id(c_ladder, sizeof c_ladder, "ladder");
  id(c_fail, sizeof c_fail, "fail");
  id(c_kill, sizeof c_kill, "kill");
  id(c_rep, sizeof c_rep, "rep");
  id(c_big, sizeof c_big, "big");
}

/* 60 distinct users join a campaign capped at 50 at once: 50 counted, 10
 * FULL, one ThresholdReached per tier (5, 20, 50); a user's second order
 * counts up to the per-user limit; the same order again is DUPLICATE. */
static void test_cap_and_tiers(void) {
  open_campaign(c_cap, T0 + 3600000, 50);
  join_many(c_cap, "cap", 60);
  struct want w = {c_cap, 60};
  CU_ASSERT_FATAL(wait_until(have_joins, &w, 60000));
  CU_ASSERT_EQUAL(n_joins(c_cap, JOINED, ANY), 50);
  CU_ASSERT_EQUAL(n_joins(c_cap, REJECTED, LINLI__JOIN_RESULT__REASON__FULL),
                  10);
  char o[96], u[96];
  snprintf(o, sizeof o, "%s-cap-o50", RUN); /* the 51st user */
  const struct rjoin *j = find_join(o);
  CU_ASSERT_PTR_NOT_NULL_FATAL(j);
  CU_ASSERT_EQUAL(j->status, REJECTED);
  CU_ASSERT_EQUAL(j->reason, LINLI__JOIN_RESULT__REASON__FULL);
  CU_ASSERT_EQUAL(j->participants, 50);
  CU_ASSERT_EQUAL(n_tiers(c_cap, 0), 1);
  CU_ASSERT_EQUAL(n_tiers(c_cap, 1), 1);
  CU_ASSERT_EQUAL(n_tiers(c_cap, 2), 1);
  snprintf(o, sizeof o, "%s-cap-o4", RUN); /* the 5th user reached tier 0 */
  j = find_join(o);
  CU_ASSERT_PTR_NOT_NULL_FATAL(j);
  CU_ASSERT_EQUAL(j->participants, 5);
  CU_ASSERT_EQUAL(j->needed, 15); /* 15 more to unlock the 20-tier */

  /* u0 (quantity 1) buys 2 more with a second order: counted, though the
   * campaign is full (not a new participant); a third exceeds the limit;
   * the first order again is a duplicate. */
  snprintf(u, sizeof u, "%s-cap-u0", RUN);
  char o2[96], o3[96], o1[96];
  snprintf(o1, sizeof o1, "%s-cap-o0", RUN);
  snprintf(o2, sizeof o2, "%s-cap-o0b", RUN);
  snprintf(o3, sizeof o3, "%s-cap-o0c", RUN);
  join(c_cap, u, o2, 2);
  join(c_cap, u, o3, 1);
  join(c_cap, u, o1, 1);
  w.n = 63;
  CU_ASSERT_FATAL(wait_until(have_joins, &w, 30000));
  j = find_join(o2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(j);
  CU_ASSERT_EQUAL(j->status, JOINED);
  CU_ASSERT_EQUAL(j->participants, 50);
  j = find_join(o3);
  CU_ASSERT_PTR_NOT_NULL_FATAL(j);
  CU_ASSERT_EQUAL(j->reason, LINLI__JOIN_RESULT__REASON__OVER_USER_LIMIT);
  CU_ASSERT_EQUAL(n_joins(c_cap, REJECTED,
                          LINLI__JOIN_RESULT__REASON__DUPLICATE),
                  1);
  settle(1000);
  CU_ASSERT_EQUAL(n_tiers(c_cap, ANY), 3); /* still one per tier */
  CU_ASSERT_EQUAL(n_joins(c_cap, ANY, ANY), 63);
}

/* 23 participants on tiers 5/20/50 settle at the 20-tier price; each is
 * refunded (1200 - 1000) x quantity, to the fen. One leaves first and is
 * refunded in full. */
static void test_ladder(void) {
  open_campaign(c_ladder, T0 + 600000, 0);
  join_many(c_ladder, "lad", 24);
  char u[96], o[96];
  snprintf(u, sizeof u, "%s-lad-u23", RUN);
  snprintf(o, sizeof o, "%s-lad-o23", RUN);
  leave(c_ladder, u, o); /* quantity 1 + 23 % 3 = 3 */
  struct want w = {c_ladder, 25};
  CU_ASSERT_FATAL(wait_until(have_joins, &w, 60000));
  CU_ASSERT_EQUAL(n_joins(c_ladder, LEFT, ANY), 1);
  struct want wr = {c_ladder, 1};
  CU_ASSERT(wait_until(have_refunds, &wr, 30000));
  int64_t sum = 0;
  CU_ASSERT_EQUAL(n_refunds(c_ladder,
                            LINLI__REFUND_REQUESTED__REASON__CANCELLED_AFTER_PAYMENT,
                            &sum),
                  1);
  CU_ASSERT_EQUAL(sum, 3 * 1200);

  CU_ASSERT_EQUAL_FATAL(write_clock(T0 + 600001), 0);
  CU_ASSERT_FATAL(wait_until(have_end, &w, 60000));
  int count = 0;
  const struct rend *e = find_end(c_ladder, &count);
  CU_ASSERT_EQUAL(e->settled, 1);
  CU_ASSERT_EQUAL(e->tier, 1);
  CU_ASSERT_EQUAL(e->price, 1000);
  CU_ASSERT_EQUAL(e->participants, 23);
  /* Quantities 1,2,3 repeating over 23 users: 8x1 + 8x2 + 7x3 = 45 units. */
  CU_ASSERT_EQUAL(e->nrefunds, 23);
  CU_ASSERT_EQUAL(e->refund_sum, 45 * 200);
  settle(1500);
  CU_ASSERT_EQUAL(n_refunds(c_ladder,
                            LINLI__REFUND_REQUESTED__REASON__TIER_DIFFERENCE,
                            &sum),
                  23);
  CU_ASSERT_EQUAL(sum, 45 * 200);
  find_end(c_ladder, &count);
  CU_ASSERT_EQUAL(count, 1); /* settled once, though the clock may repeat */
}

/* Below its minimum at the deadline: failed, everyone refunded in full; a
 * join written after the deadline is CLOSED. */
static void test_failed(void) {
  open_campaign(c_fail, T0 + 700000, 0);
  join_many(c_fail, "fail", 3); /* quantities 1, 2, 3 */
  struct want w = {c_fail, 3};
  CU_ASSERT_FATAL(wait_until(have_joins, &w, 60000));
  CU_ASSERT_EQUAL_FATAL(write_clock(T0 + 700001), 0);
  CU_ASSERT_FATAL(wait_until(have_end, &w, 60000));
  int count = 0;
  const struct rend *e = find_end(c_fail, &count);
  CU_ASSERT_EQUAL(e->settled, 0);
  CU_ASSERT_EQUAL(e->participants, 3);
  CU_ASSERT_EQUAL(e->nrefunds, 3);
  CU_ASSERT_EQUAL(e->refund_sum, 6 * 1200);
  char u[96], o[96];
  snprintf(u, sizeof u, "%s-fail-late", RUN);
  snprintf(o, sizeof o, "%s-fail-late-o", RUN);
  join(c_fail, u, o, 1);
  w.n = 4;
  CU_ASSERT_FATAL(wait_until(have_joins, &w, 30000));
  const struct rjoin *j = find_join(o);
  CU_ASSERT_PTR_NOT_NULL_FATAL(j);
  CU_ASSERT_EQUAL(j->reason, LINLI__JOIN_RESULT__REASON__CLOSED);
  settle(1000);
  int64_t sum = 0;
  CU_ASSERT_EQUAL(n_refunds(c_fail, LINLI__REFUND_REQUESTED__REASON__GROUP_FAILED,
                            &sum),
                  3);
  CU_ASSERT_EQUAL(sum, 6 * 1200);
}

/* Malformed events go to the DLQ with their reason; the partition flows. */
static void test_bad_input(void) {
  char bad[72];
  id(bad, sizeof bad, "bad");
  /* Tiers not descending in price, and a join of quantity 0. */
  Linli__GroupBuyEvent ev = LINLI__GROUP_BUY_EVENT__INIT;
  Linli__CampaignOpened c = LINLI__CAMPAIGN_OPENED__INIT;
  Linli__CampaignOpened__Tier t[2], *tp[2];
  for (int i = 0; i < 2; i++) {
    linli__campaign_opened__tier__init(&t[i]);
    t[i].min_participants = 5 * (i + 1);
    t[i].unit_price_fen = 1000;
    tp[i] = &t[i];
  }
  c.campaign_id = bad;
  c.sku_id = (char *)"rice";
  c.warehouse_id = (char *)"W1";
  c.list_price_fen = 1500;
  c.n_tiers = 2;
  c.tiers = tp;
  c.deadline_ms = T0 + 3600000;
  ev.event_case = LINLI__GROUP_BUY_EVENT__EVENT_CAMPAIGN_OPENED;
  ev.campaign_opened = &c;
  put(bad, pack_event(&ev, T0));
  int want = 1;
  CU_ASSERT_FATAL(wait_until(have_dlq, &want, 30000));
  CU_ASSERT_PTR_NOT_NULL(strstr(st.dlq_reason, "tiers[1].unit_price_fen"));
  put(bad, (struct buf){(uint8_t *)strdup("\x0a\xff garbage"), 10});
  want = 2;
  CU_ASSERT_FATAL(wait_until(have_dlq, &want, 30000));
  CU_ASSERT_PTR_NOT_NULL(strstr(st.dlq_reason, "GroupBuyEvent"));
  char u[96], o[96];
  snprintf(u, sizeof u, "%s-bad-u", RUN);
  snprintf(o, sizeof o, "%s-bad-o", RUN);
  join(bad, u, o, 1); /* well-formed: unknown campaign, answered */
  struct want w = {bad, 1};
  CU_ASSERT_FATAL(wait_until(have_joins, &w, 30000));
  CU_ASSERT_EQUAL(n_joins(bad, REJECTED,
                          LINLI__JOIN_RESULT__REASON__UNKNOWN_CAMPAIGN),
                  1);
}

static int n_order(const char *order) {
  int n = 0;
  for (size_t i = 0; i < st.joins.n; i++)
    n += strcmp(st.joins.v[i].order, order) == 0;
  return n;
}

static const struct rjoin *nth_join(const char *order, int k) {
  for (size_t i = 0; i < st.joins.n; i++)
    if (strcmp(st.joins.v[i].order, order) == 0 && k-- == 0)
      return &st.joins.v[i];
  return NULL;
}

static void put_copy(const char *key, struct buf b) {
  uint8_t *p = malloc(b.n);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  memcpy(p, b.p, b.n);
  put(key, (struct buf){p, b.n});
}

/* A join republished byte for byte (a gateway retry after a timeout: the
 * same event id) gets its first answer back, the same JoinResult with the
 * same event id, and announces no tier again; a new event for the same
 * order is DUPLICATE. A refused join republished is refused the same way. */
static void test_republished(void) {
  open_campaign(c_rep, T0 + 3600000, 0);
  join_many(c_rep, "rep", 4);
  char u4[96], o4[96], u5[96], o5[96], u6[96], o6[96];
  snprintf(u4, sizeof u4, "%s-rep-u4", RUN);
  snprintf(o4, sizeof o4, "%s-rep-o4", RUN);
  snprintf(u5, sizeof u5, "%s-rep-u5", RUN);
  snprintf(o5, sizeof o5, "%s-rep-o5", RUN);
  snprintf(u6, sizeof u6, "%s-rep-u6", RUN);
  snprintf(o6, sizeof o6, "%s-rep-o6", RUN);
  struct buf fifth = join_ev(c_rep, u4, o4, 1);   /* reaches tier 0 */
  struct buf over = join_ev(c_rep, u6, o6, 4);    /* limit 3 */
  put_copy(c_rep, fifth);
  put_copy(c_rep, over);
  struct want w = {c_rep, 6};
  CU_ASSERT_FATAL(wait_until(have_joins, &w, 60000));
  join(c_rep, u5, o5, 1); /* 6 participants now */
  put_copy(c_rep, fifth);
  put_copy(c_rep, over);
  w.n = 9;
  CU_ASSERT_FATAL(wait_until(have_joins, &w, 60000));
  join(c_rep, u4, o4, 1); /* the same order, a new event */
  w.n = 10;
  CU_ASSERT_FATAL(wait_until(have_joins, &w, 60000));
  settle(1000);
  free(fifth.p);
  free(over.p);

  CU_ASSERT_EQUAL_FATAL(n_order(o4), 3);
  const struct rjoin *a = nth_join(o4, 0), *b = nth_join(o4, 1),
                     *c = nth_join(o4, 2);
  CU_ASSERT_EQUAL(a->status, JOINED);
  CU_ASSERT_EQUAL(a->participants, 5);
  CU_ASSERT_EQUAL(a->needed, 15);
  /* The retry: the first answer, not today's count (6). */
  CU_ASSERT_EQUAL(b->status, JOINED);
  CU_ASSERT_EQUAL(b->participants, 5);
  CU_ASSERT_EQUAL(b->needed, 15);
  CU_ASSERT_EQUAL(b->quantity, 1);
  CU_ASSERT_STRING_EQUAL(a->eid, b->eid);
  CU_ASSERT_EQUAL(c->status, REJECTED);
  CU_ASSERT_EQUAL(c->reason, LINLI__JOIN_RESULT__REASON__DUPLICATE);
  CU_ASSERT_STRING_NOT_EQUAL(a->eid, c->eid);
  CU_ASSERT_EQUAL(n_tiers(c_rep, 0), 1); /* announced once */
  CU_ASSERT_EQUAL(n_tiers(c_rep, ANY), 1);

  CU_ASSERT_EQUAL_FATAL(n_order(o6), 2);
  a = nth_join(o6, 0);
  b = nth_join(o6, 1);
  CU_ASSERT_EQUAL(a->reason, LINLI__JOIN_RESULT__REASON__OVER_USER_LIMIT);
  CU_ASSERT_EQUAL(b->reason, LINLI__JOIN_RESULT__REASON__OVER_USER_LIMIT);
  CU_ASSERT_EQUAL(a->participants, 5);
  CU_ASSERT_EQUAL(b->participants, 5);
  CU_ASSERT_STRING_EQUAL(a->eid, b->eid);
  CU_ASSERT_EQUAL(n_joins(c_rep, JOINED, ANY), 7); /* 4 + o4 (twice) + o5 */

  /* Redis counts the participants once. */
  char key[160];
  snprintf(key, sizeof key, DOM_GB_KEY_CAMPAIGN_FMT, c_rep);
  const char *argv[] = {"HMGET", key, "n", "j"};
  redisReply *r = NULL;
  CU_ASSERT_EQUAL_FATAL(linli_redis_command(redis, 4, argv, NULL, &r),
                        LINLI_OK);
  CU_ASSERT_FATAL(r->type == REDIS_REPLY_ARRAY && r->elements == 2);
  CU_ASSERT_STRING_EQUAL(r->element[0]->str, "6");
  CU_ASSERT_STRING_EQUAL(r->element[1]->str, "6");
  freeReplyObject(r);
}

/* A settler (env: its fault hooks) that must die by SIGKILL before its
 * first commit; then field of Redis hash key into buf ("" if absent). */
static void killed_before_commit(const char *name, const char *env,
                                 const char *key, const char *field,
                                 char *buf, size_t len) {
  struct proc k;
  spawn_settler(&k, name, group, env);
  int status = 0;
  linli_test_wait_exit(k.pid, 60000, &status);
  CU_ASSERT_FATAL(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  const char *argv[] = {"HGET", key, field};
  redisReply *r = NULL;
  CU_ASSERT_EQUAL_FATAL(linli_redis_command(redis, 3, argv, NULL, &r),
                        LINLI_OK);
  snprintf(buf, len, "%s", r->type == REDIS_REPLY_STRING ? r->str : "");
  freeReplyObject(r);
}
/* Killed right after processing a deadline, before committing: the
 * restarted settler settles the campaign exactly once, one refund each. */
static void test_kill_after_deadline(void) {
  open_campaign(c_kill, T0 + 800000, 0);
  join_many(c_kill, "kill", 6); /* tier 0 (5): settles at 1200 */
  struct want w = {c_kill, 6};
  CU_ASSERT_FATAL(wait_until(have_joins, &w, 60000));
  stop_settler(&settler_a);
  stop_settler(&settler_b);
  /* One settler that dies before its first batch commit: the batch that
   * holds the CampaignDeadline its own clock writes (should another run's
   * record come first and take the bullet, start another). */
  CU_ASSERT_EQUAL_FATAL(write_clock(T0 + 800001), 0);
  char key[160];
  snprintf(key, sizeof key, DOM_GB_KEY_CAMPAIGN_FMT, c_kill);
  int settled_in_redis = 0;
  for (int attempt = 0; attempt < 5 && !settled_in_redis; attempt++) {
    /* Was the effect applied in Redis before the kill? */
    char st[16];
    killed_before_commit("k", "LINLI_FAULT_KILL_BEFORE_COMMIT=1", key, "st",
                         st, sizeof st);
    settled_in_redis = strcmp(st, "SETTLED") == 0;
  }
  CU_ASSERT_FATAL(settled_in_redis);
  int count = 0;
  settle(500);
  CU_ASSERT_PTR_NULL(find_end(c_kill, &count)); /* nothing committed yet */
  spawn_settler(&settler_a, "a", group, NULL);
  CU_ASSERT_FATAL(wait_until(have_end, &w, 60000));
  settle(2000);
  const struct rend *e = find_end(c_kill, &count);
  CU_ASSERT_EQUAL(count, 1);
  CU_ASSERT_EQUAL(e->tier, 0);
  CU_ASSERT_EQUAL(e->nrefunds, 0); /* settled at the prepaid price */
  CU_ASSERT_EQUAL(n_refunds(c_kill, ANY, NULL), 0);
}

/* A settler killed before committing a batch of 600 joins (applied in
 * Redis, nothing published), then restarted: every join is answered
 * exactly once with the answer the first run decided, each tier is
 * announced once, and Redis counts every participant once. */
static void test_kill_big_batch(void) {
  enum { N = 600 };
  stop_settler(&settler_a);
  open_campaign(c_big, T0 + 3600000, 0);
  join_many(c_big, "big", N);
  char key[160];
  snprintf(key, sizeof key, DOM_GB_KEY_CAMPAIGN_FMT, c_big);
  long long applied = 0;
  for (int attempt = 0; attempt < 5 && applied < N; attempt++) {
    /* Room for the whole backlog in the first batch. */
    char n[32];
    killed_before_commit("kb",
                         "LINLI_FAULT_KILL_BEFORE_COMMIT=1;"
                         "LINLI_RUNNER_BATCH_SIZE=2000;"
                         "LINLI_RUNNER_FLUSH_INTERVAL_MS=3000",
                         key, "n", n, sizeof n);
    applied = atoll(n);
  }
  /* The whole batch was applied before the kill: one batch of 600. */
  CU_ASSERT_EQUAL_FATAL(applied, N);
  settle(500);
  CU_ASSERT_EQUAL(n_joins(c_big, ANY, ANY), 0); /* nothing committed */
  spawn_settler(&settler_a, "a", group, NULL);
  struct want w = {c_big, N};
  CU_ASSERT_FATAL(wait_until(have_joins, &w, 90000));
  settle(2000);
  CU_ASSERT_EQUAL(n_joins(c_big, ANY, ANY), N);
  CU_ASSERT_EQUAL(n_joins(c_big, JOINED, ANY), N);
  static char seen[N + 1];
  int distinct = 0;
  for (size_t i = 0; i < st.joins.n; i++) {
    const struct rjoin *j = &st.joins.v[i];
    if (strcmp(j->campaign, c_big) == 0 && j->participants >= 1 &&
        j->participants <= N && !seen[j->participants]++)
      distinct++;
  }
  CU_ASSERT_EQUAL(distinct, N); /* participants 1..600, each once */
  CU_ASSERT_EQUAL(n_tiers(c_big, 0), 1);
  CU_ASSERT_EQUAL(n_tiers(c_big, 1), 1);
  CU_ASSERT_EQUAL(n_tiers(c_big, 2), 1);
  const char *argv[] = {"HMGET", key, "n", "j"};
  redisReply *r = NULL;
  CU_ASSERT_EQUAL_FATAL(linli_redis_command(redis, 4, argv, NULL, &r),
                        LINLI_OK);
  CU_ASSERT_STRING_EQUAL(r->element[0]->str, "600");
  CU_ASSERT_STRING_EQUAL(r->element[1]->str, "600");
  freeReplyObject(r);
}

static int file_contains(const char *path, const char *needle) {
  int found = linli_test_file_contains(path, needle);
  if (!found)
    fprintf(stderr, "\n  %s does not say: %s\n", path, needle);
  return found;
}

/* The audit folds the log with the campaign state machine and agrees with
 * every settlement; a planted difference in Redis, and a settlement nobody
 * decided, are named. */
static void test_audit(void) {
  char out[256];
  snprintf(out, sizeof out, "/tmp/%s-audit.out", RUN);
  char *audit[] = {"audit", "--no-pg", "--warehouse", wh, NULL};
  CU_ASSERT_EQUAL(linli_test_replay(audit, out), 0);
  CU_ASSERT(file_contains(out, "rule campaigns (settler)"));

  char key[160];
  snprintf(key, sizeof key, DOM_GB_KEY_CAMPAIGN_FMT, c_cap);
  const char *set[] = {"HINCRBY", key, "n", "-1"};
  redisReply *r = NULL;
  CU_ASSERT_EQUAL_FATAL(linli_redis_command(redis, 4, set, NULL, &r), LINLI_OK);
  freeReplyObject(r);
  CU_ASSERT_EQUAL(linli_test_replay(audit, out), 1);
  char needle[256];
  snprintf(needle, sizeof needle,
           "campaign %s: Redis counts 49 participants, the log 50", c_cap);
  CU_ASSERT(file_contains(out, needle));
  const char *undo[] = {"HINCRBY", key, "n", "1"};
  CU_ASSERT_EQUAL_FATAL(linli_redis_command(redis, 4, undo, NULL, &r),
                        LINLI_OK);
  freeReplyObject(r);

  /* A CampaignSettled for the open campaign that no deadline decided. */
  Linli__SettlementEvent ev = LINLI__SETTLEMENT_EVENT__INIT;
  Linli__CampaignSettled fake = LINLI__CAMPAIGN_SETTLED__INIT;
  Linli__Meta meta = LINLI__META__INIT;
  linli_id_new(planted_id, sizeof planted_id);
  meta.event_id = planted_id;
  meta.occurred_at_ms = T0;
  fake.campaign_id = c_cap;
  fake.warehouse_id = wh; /* as the settler writes it */
  fake.tier = 2;
  fake.unit_price_fen = 900;
  fake.participants = 50;
  ev.meta = &meta;
  ev.event_case = LINLI__SETTLEMENT_EVENT__EVENT_CAMPAIGN_SETTLED;
  ev.campaign_settled = &fake;
  size_t len = linli__settlement_event__get_packed_size(&ev);
  uint8_t *buf = malloc(len);
  CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
  linli__settlement_event__pack(&ev, buf);
  CU_ASSERT_EQUAL(linli_test_produce(T_SETTLEMENTS, c_cap, buf, len), 0);
  free(buf);
  CU_ASSERT_EQUAL(linli_test_replay(audit, out), 1);
  snprintf(needle, sizeof needle,
           "campaign %s: ended 1 times, but the log never ends it", c_cap);
  CU_ASSERT(file_contains(out, needle));

  /* Refunds for a campaign whose sum does not fit in int64: named with
   * that reason (no signed overflow in the audit, UBSan watches). The
   * campaign's ids do not start with RUN: the collector ignores it. */
  char c_ovf[96];
  snprintf(c_ovf, sizeof c_ovf, "x%s-ovf", RUN);
  open_campaign(c_ovf, T0 + 3600000, 0);
  for (int i = 0; i < 2; i++) {
    Linli__RefundEvent rev = LINLI__REFUND_EVENT__INIT;
    Linli__RefundRequested rr = LINLI__REFUND_REQUESTED__INIT;
    Linli__Meta rm = LINLI__META__INIT;
    char rid[LINLI_ID_BUFSZ], order[128];
    linli_id_new(rid, sizeof rid);
    snprintf(order, sizeof order, "%s-o%d", c_ovf, i);
    rm.event_id = rid;
    rm.occurred_at_ms = T0;
    rm.schema_version = 1;
    rr.refund_id = rid;
    rr.order_id = order;
    rr.user_id = order;
    rr.campaign_id = c_ovf;
    rr.amount_fen = INT64_MAX / 2 + 1;
    rr.reason = LINLI__REFUND_REQUESTED__REASON__TIER_DIFFERENCE;
    rev.meta = &rm;
    rev.event_case = LINLI__REFUND_EVENT__EVENT_REFUND_REQUESTED;
    rev.refund_requested = &rr;
    len = linli__refund_event__get_packed_size(&rev);
    buf = malloc(len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
    linli__refund_event__pack(&rev, buf);
    CU_ASSERT_EQUAL(linli_test_produce(T_REFUNDS, order, buf, len), 0);
    free(buf);
  }
  CU_ASSERT_EQUAL(linli_test_replay(audit, out), 1);
  snprintf(needle, sizeof needle,
           "campaign %s: the refunds requested overflows int64: its refunds "
           "cannot be compared",
           c_ovf);
  CU_ASSERT(file_contains(out, needle));
}

/* Replaying the run's log into an empty Redis reproduces every output:
 * the same event ids with the same content. */
static void test_replay(void) {
  stop_settler(&settler_a);
  settle(1000);
  /* Forget the hot state of this run's campaigns. */
  const char *campaigns[] = {c_cap, c_ladder, c_fail, c_kill, c_rep, c_big};
  for (size_t i = 0; i < 6; i++) {
    char pattern[160];
    snprintf(pattern, sizeof pattern, "{" DOM_GB_TAG_FMT "}:*", campaigns[i]);
    const char *argv[] = {"KEYS", pattern};
    redisReply *r = NULL;
    CU_ASSERT_EQUAL_FATAL(linli_redis_command(redis, 2, argv, NULL, &r),
                          LINLI_OK);
    for (size_t k = 0; k < r->elements; k++) {
      const char *del[] = {"DEL", r->element[k]->str};
      redisReply *d = NULL;
      if (linli_redis_command(redis, 2, del, NULL, &d) == LINLI_OK)
        freeReplyObject(d);
    }
    freeReplyObject(r);
  }
  size_t before = st.events.n;
  CU_ASSERT_TRUE(before > 100);
  /* A republished input's output is seen once per copy. */
  for (size_t i = 0; i < before; i++) {
    st.events.v[i].first = st.events.v[i].seen;
    st.events.v[i].seen = 0;
  }
  struct proc rp;
  spawn_settler(&rp, "replay", replay_group, NULL);
  /* Wait until every first-pass event was seen again. */
  int64_t deadline = linli_test_now_ms() + 90000;
  size_t missing = before;
  while (missing > 0 && linli_test_now_ms() < deadline) {
    settle(500);
    missing = 0;
    for (size_t i = 0; i < before; i++)
      missing += st.events.v[i].seen < st.events.v[i].first;
  }
  settle(1000);
  CU_ASSERT_EQUAL(missing, 0);
  size_t again = 0;
  for (size_t i = 0; i < before; i++)
    again += st.events.v[i].seen == st.events.v[i].first;
  CU_ASSERT_EQUAL(again, before); /* each exactly as often again */
  CU_ASSERT_EQUAL(st.events.n, before); /* and nothing new */
  stop_settler(&rp);
}

int linli_test_register(void) {
  CU_pSuite s = CU_add_suite("settler (real stack)", suite_init,
                             suite_cleanup);
  if (!s)
    return -1;
  CU_add_test(s, "two settlers start", test_start);
  CU_add_test(s, "60 users on a cap of 50; one ThresholdReached per tier",
              test_cap_and_tiers);
  CU_add_test(s, "ladder pricing: 23 participants settle at the 20-tier",
              test_ladder);
  CU_add_test(s, "below the minimum: failed, refunded, closed", test_failed);
  CU_add_test(s, "bad input goes to the DLQ", test_bad_input);
  CU_add_test(s, "a republished join gets its first answer back",
              test_republished);
  CU_add_test(s, "SIGKILL right after a deadline: settled once",
              test_kill_after_deadline);
  CU_add_test(s, "SIGKILL before committing a batch of 600 joins: each "
                 "answered once",
              test_kill_big_batch);
  CU_add_test(s, "the audit agrees and names planted differences",
              test_audit);
  CU_add_test(s, "replay into an empty Redis reproduces every output",
              test_replay);
  return CU_get_error() == CUE_SUCCESS ? 0 : -1;
}
