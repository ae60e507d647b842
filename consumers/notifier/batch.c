/*
 * batch.c - the notifier's batch handler.
 *
 * 1. Decode and validate every record (bad input -> DLQ).
 * 2. Read, in one pipeline, what the notifier knows about every order and
 *    campaign the batch touches; later records see the writes of earlier
 *    ones through an in-memory overlay, so the batch decides exactly what
 *    one-at-a-time processing would.
 * 3. Decide each record's state writes and notifications; read the users'
 *    locales (one pipeline); build each notification once per channel.
 * 4. Apply everything with one batch HWM script per shard, all shards in
 *    one round trip; the script enqueues new notifications for the webhook.
 * 5. Write the notifications the outcomes list, in input order. A
 *    redelivered record gets its recorded outcome back, so it writes the
 *    same events again (in a transaction that replaces the aborted one) and
 *    enqueues nothing twice.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "delivery.pb-c.h"
#include "domain/event_ids.h"
#include "domain/check.h"
#include "domain/delivery.h"
#include "domain/reservations.h"
#include "linli/array.h"
#include "linli/clock.h"
#include "linli/error.h"
#include "linli/ids.h"
#include "linli/log.h"
#include "linli/shards.h"
#include "linli/strmap.h"
#include "domain/schema.h"
#include "notifier.h"
#include "reservations.pb-c.h"
#include "routes.pb-c.h"
#include "settlements.pb-c.h"

#define LOCALE_KEY_PREFIX "linli:locale:"

/* ------------------------------------------------------------ utilities */

/* Strings owned by the batch, freed together. */
struct arena {
  char **v;
  size_t n, cap;
};

static char *arena_keep(struct arena *a, char *s) {
  if (!s)
    return NULL;
  if (a->n == a->cap) {
    size_t nc = a->cap ? a->cap * 2 : 256;
    char **nv = realloc(a->v, nc * sizeof *nv);
    if (!nv) {
      free(s);
      return NULL;
    }
    a->v = nv;
    a->cap = nc;
  }
  return a->v[a->n++] = s;
}

static char *arena_fmt(struct arena *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static char *arena_fmt(struct arena *a, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  char *s = n < 0 ? NULL : malloc((size_t)n + 1);
  if (!s)
    return NULL;
  va_start(ap, fmt);
  vsnprintf(s, (size_t)n + 1, fmt, ap);
  va_end(ap);
  return arena_keep(a, s);
}

static void arena_free(struct arena *a) {
  for (size_t i = 0; i < a->n; i++)
    free(a->v[i]);
  free(a->v);
}

/* Binary-safe argument vector of one script input. */
struct args {
  char **v;
  size_t *len;
  size_t n, cap;
};

static int args_push(struct args *a, const void *p, size_t len) {
  if (a->n == a->cap) {
    size_t nc = a->cap ? a->cap * 2 : 16;
    char **nv = realloc(a->v, nc * sizeof *nv);
    if (!nv)
      return LINLI_ERR_NOMEM;
    a->v = nv;
    size_t *nl = realloc(a->len, nc * sizeof *nl);
    if (!nl)
      return LINLI_ERR_NOMEM;
    a->len = nl;
    a->cap = nc;
  }
  char *c = malloc(len + 1);
  if (!c)
    return LINLI_ERR_NOMEM;
  memcpy(c, p, len);
  c[len] = '\0';
  a->v[a->n] = c;
  a->len[a->n++] = len;
  return LINLI_OK;
}

static int args_str(struct args *a, const char *s) {
  return args_push(a, s, strlen(s));
}

static void args_free(struct args *a) {
  for (size_t i = 0; i < a->n; i++)
    free(a->v[i]);
  free(a->v);
  free(a->len);
}

/* ------------------------------------------------------ state overlay */

/* What the notifier knows about one order ("o:<id>") or campaign
 * ("c:<id>") in one shard: the stored hash, then this batch's writes. */
struct kv {
  char *f, *v;
};
struct state {
  const char *key; /* suffix after the shard prefix (the map's copy) */
  int shard;
  struct kv *kv;
  size_t n, cap;
};

/* The state of key in map (made empty on first use: *created, may be
 * NULL); NULL when out of memory. */
static struct state *state_get(linli_strmap_t *map, const char *key,
                               int shard, int *created_out) {
  int created = 0;
  const char *stored = NULL;
  struct state *s = linli_strmap_get_or_add(map, key, &created, &stored);
  if (created_out != NULL)
    *created_out = created;
  if (s != NULL && created) {
    s->key = stored;
    s->shard = shard;
  }
  return s;
}

static void states_free(linli_strmap_t *map) {
  for (size_t i = 0; i < linli_strmap_capacity(map); i++) {
    struct state *s = linli_strmap_at(map, i, NULL);
    for (size_t j = 0; s && j < s->n; j++) {
      free(s->kv[j].f);
      free(s->kv[j].v);
    }
    if (s)
      free(s->kv);
  }
  linli_strmap_free(map);
}

static const char *st_get(const struct state *s, const char *f) {
  for (size_t i = 0; s && i < s->n; i++)
    if (strcmp(s->kv[i].f, f) == 0)
      return s->kv[i].v;
  return NULL;
}

static int st_set(struct state *s, const char *f, const char *v) {
  for (size_t i = 0; i < s->n; i++)
    if (strcmp(s->kv[i].f, f) == 0) {
      char *c = strdup(v);
      if (!c)
        return LINLI_ERR_NOMEM;
      free(s->kv[i].v);
      s->kv[i].v = c;
      return LINLI_OK;
    }
  struct kv *nk = linli_grow(s->kv, &s->cap, s->n + 1, sizeof *nk, 8);
  if (!nk)
    return LINLI_ERR_NOMEM;
  s->kv = nk;
  s->kv[s->n].f = strdup(f);
  s->kv[s->n].v = strdup(v);
  if (!s->kv[s->n].f || !s->kv[s->n].v) {
    free(s->kv[s->n].f);
    free(s->kv[s->n].v);
    return LINLI_ERR_NOMEM;
  }
  s->n++;
  return LINLI_OK;
}

static void st_del(struct state *s, const char *f) {
  for (size_t i = 0; i < s->n; i++)
    if (strcmp(s->kv[i].f, f) == 0) {
      free(s->kv[i].f);
      free(s->kv[i].v);
      s->kv[i] = s->kv[--s->n];
      return;
    }
}

/* ------------------------------------------------------------- records */

enum kind { K_NONE, K_RES, K_SET, K_ROUTE, K_DEL };

/* A record's effect in one shard: state writes, reminder index updates and
 * notifications, as the script's arguments. */
struct part {
  int shard, slot;
  int batch; /* the shard's place in the batch's linli_shards */
  struct args sets, dels, rems, notes;
  int nsets, ndels, nrems, nnotes;
};

struct rec {
  const rd_kafka_message_t *msg;
  enum kind kind;
  void *ev; /* the decoded envelope (owned) */
  const Linli__Meta *meta;
  struct part *parts;
  size_t nparts;
  struct nt_note *notes; /* decided notifications (strings in the arena) */
  size_t nnotes, capnotes;
  int note_part; /* part index the notes belong to */
};

static void rec_free(struct rec *r) {
  if (r->ev)
    protobuf_c_message_free_unpacked(r->ev, NULL);
  for (size_t i = 0; i < r->nparts; i++) {
    args_free(&r->parts[i].sets);
    args_free(&r->parts[i].dels);
    args_free(&r->parts[i].rems);
    args_free(&r->parts[i].notes);
  }
  free(r->parts);
  free(r->notes);
}

static struct part *rec_part(struct rec *r, int shard) {
  for (size_t i = 0; i < r->nparts; i++)
    if (r->parts[i].shard == shard)
      return &r->parts[i];
  struct part *np = realloc(r->parts, (r->nparts + 1) * sizeof *np);
  if (!np)
    return NULL;
  r->parts = np;
  struct part *p = &r->parts[r->nparts++];
  memset(p, 0, sizeof *p);
  p->shard = shard;
  p->slot = -1;
  return p;
}

static struct nt_note *rec_note(struct rec *r, enum dom_tpl_id tpl,
                                const char *user) {
  if (r->nnotes == r->capnotes) {
    size_t nc = r->capnotes ? r->capnotes * 2 : 4;
    struct nt_note *nn = realloc(r->notes, nc * sizeof *nn);
    if (!nn)
      return NULL;
    r->notes = nn;
    r->capnotes = nc;
  }
  struct nt_note *n = &r->notes[r->nnotes++];
  memset(n, 0, sizeof *n);
  n->tpl = tpl;
  n->user = user;
  n->cause_event_id = r->meta->event_id;
  n->trace_id = r->meta->trace_id;
  n->occurred_at_ms = r->meta->occurred_at_ms;
  n->order_id = "";
  n->campaign_id = "";
  return n;
}

static void note_param(struct nt_note *n, const char *k, const char *v) {
  if (n->nparams < DOM_TPL_MAX_PARAMS) {
    n->params[n->nparams].key = k;
    n->params[n->nparams].value = v ? v : "";
    n->nparams++;
  }
}

/* ------------------------------------------------------------- decoding */

static void decode(linli_batch_t *b, size_t i, struct rec *r) {
  const rd_kafka_message_t *m = r->msg;
  const char *topic = rd_kafka_topic_name(m->rkt);
  char why[512] = "";
  struct dom_first_err fe = {why, sizeof why, 0};
  enum kind k = K_NONE;
  if (strcmp(topic, LINLI_TOPIC_RESERVATIONS) == 0)
    k = K_RES;
  else if (strcmp(topic, LINLI_TOPIC_SETTLEMENTS) == 0)
    k = K_SET;
  else if (strcmp(topic, LINLI_TOPIC_ROUTES) == 0)
    k = K_ROUTE;
  else if (strcmp(topic, LINLI_TOPIC_DELIVERY) == 0)
    k = K_DEL;
  if (k == K_NONE || !m->payload || m->len == 0) {
    linli_batch_reject(b, i, LINLI_ERR_INVALID,
                       k == K_NONE ? "topic the notifier does not read"
                                   : "empty record");
    return;
  }
  const ProtobufCMessageDescriptor *d =
      k == K_RES   ? &linli__reservation_event__descriptor
      : k == K_SET ? &linli__settlement_event__descriptor
      : k == K_ROUTE ? &linli__route_event__descriptor
                     : &linli__delivery_event__descriptor;
  r->ev = protobuf_c_message_unpack(d, NULL, m->len, m->payload);
  if (!r->ev) {
    snprintf(why, sizeof why, "undecodable record: not a %s (%zu bytes)",
             d->short_name, m->len);
    linli_batch_reject(b, i, LINLI_ERR_INVALID, why);
    return;
  }
  r->kind = k;
  r->meta = linli_schema_meta(r->ev);
  int bad = dom_check_meta(r->meta, dom_first_err, &fe);
  const ProtobufCMessage *member = NULL;
  if (!bad && linli_schema_event_member(r->ev, &member, NULL) != LINLI_OK) {
    if (((ProtobufCMessage *)r->ev)->n_unknown_fields > 0) {
      /* An event kind added to the schema after this notifier was built:
       * not bad input, just nothing this notifier knows to tell anyone. */
      r->kind = K_NONE;
      return;
    }
    snprintf(why, sizeof why, "%s carries no event", d->short_name);
    bad = 1;
  }
  if (!bad && k == K_ROUTE &&
      ((Linli__RouteEvent *)r->ev)->event_case !=
          LINLI__ROUTE_EVENT__EVENT_ROUTE_BATCH) {
    /* WavePlanned and SortingList tell no resident anything (and are not
     * a RouteBatch: the oneof's other members must not be read as one). */
    r->kind = K_NONE;
    return;
  }
  if (!bad && k == K_RES) {
    const Linli__ReservationResult *x =
        ((Linli__ReservationEvent *)r->ev)->reservation_result;
    /* The ledger's rule (libdomain), and the notifier's own need: a
     * resident to tell. */
    bad = dom_reservation_check_result(x, dom_first_err, &fe) > 0 ||
          dom_check_id("user_id", x->user_id, dom_first_err, &fe);
  } else if (!bad && k == K_SET) {
    Linli__SettlementEvent *s = r->ev;
    const char *camp = s->event_case ==
                               LINLI__SETTLEMENT_EVENT__EVENT_THRESHOLD_REACHED
                           ? s->threshold_reached->campaign_id
                       : s->event_case ==
                               LINLI__SETTLEMENT_EVENT__EVENT_CAMPAIGN_SETTLED
                           ? s->campaign_settled->campaign_id
                       : s->event_case ==
                               LINLI__SETTLEMENT_EVENT__EVENT_CAMPAIGN_FAILED
                           ? s->campaign_failed->campaign_id
                           : s->join_result->campaign_id;
    bad = dom_check_id("campaign_id", camp, dom_first_err, &fe);
    if (!bad && s->event_case == LINLI__SETTLEMENT_EVENT__EVENT_JOIN_RESULT)
      bad = dom_check_id("user_id", s->join_result->user_id, dom_first_err,
                         &fe) ||
            dom_check_id("order_id", s->join_result->order_id, dom_first_err,
                         &fe);
    Linli__CampaignRefund **rf = NULL;
    size_t nrf = 0;
    if (s->event_case == LINLI__SETTLEMENT_EVENT__EVENT_CAMPAIGN_SETTLED) {
      rf = s->campaign_settled->refunds;
      nrf = s->campaign_settled->n_refunds;
    } else if (s->event_case ==
               LINLI__SETTLEMENT_EVENT__EVENT_CAMPAIGN_FAILED) {
      rf = s->campaign_failed->refunds;
      nrf = s->campaign_failed->n_refunds;
    }
    for (size_t j = 0; !bad && j < nrf; j++)
      bad = dom_check_id("refunds.user_id", rf[j]->user_id, dom_first_err,
                         &fe) ||
            dom_check_range("refunds.amount_fen", rf[j]->amount_fen, 0,
                            DOM_MAX_PRICE_FEN, dom_first_err, &fe);
  } else if (!bad && k == K_ROUTE) {
    const Linli__RouteBatch *rb = ((Linli__RouteEvent *)r->ev)->route_batch;
    for (size_t s = 0; !bad && s < rb->n_stops; s++) {
      const Linli__RouteBatch__Stop *st = rb->stops[s];
      bad = dom_check_range("stops.eta_ms", st->eta_ms, 0, DOM_MAX_TIME_MS,
                            dom_first_err, &fe) ||
            (st->place_case ==
                 LINLI__ROUTE_BATCH__STOP__PLACE_PICKUP_POINT_ID &&
             dom_check_id("stops.pickup_point_id", st->pickup_point_id,
                          dom_first_err, &fe));
      for (size_t o = 0; !bad && o < st->n_order_ids; o++)
        bad = dom_check_id("stops.order_ids", st->order_ids[o], dom_first_err,
                           &fe);
    }
  } else if (!bad && k == K_DEL) {
    /* libdomain's judgement, the one the gateway and the ledger use. */
    bad = dom_delivery_check(r->ev, dom_first_err, &fe) > 0;
  }
  if (bad) {
    linli_batch_reject(b, i, LINLI_ERR_INVALID,
                       why[0] ? why : "invalid record");
    r->kind = K_NONE;
  }
}

/* -------------------------------------------------------------- reading */

/* The state keys record r reads or writes: fn(arg, "o:<id>" or "c:<id>",
 * shard id source). */
typedef int (*key_fn)(void *arg, const char *prefix, const char *id);

static const char *settlement_campaign(const Linli__SettlementEvent *s) {
  switch (s->event_case) {
  case LINLI__SETTLEMENT_EVENT__EVENT_THRESHOLD_REACHED:
    return s->threshold_reached->campaign_id;
  case LINLI__SETTLEMENT_EVENT__EVENT_CAMPAIGN_SETTLED:
    return s->campaign_settled->campaign_id;
  case LINLI__SETTLEMENT_EVENT__EVENT_CAMPAIGN_FAILED:
    return s->campaign_failed->campaign_id;
  case LINLI__SETTLEMENT_EVENT__EVENT_JOIN_RESULT:
    return s->join_result->campaign_id;
  default:
    return "";
  }
}

static int rec_keys(const struct rec *r, key_fn fn, void *arg) {
  int rc = LINLI_OK;
  switch (r->kind) {
  case K_RES:
    return fn(arg, "o:",
              ((Linli__ReservationEvent *)r->ev)->reservation_result->order_id);
  case K_SET:
    return fn(arg, "c:", settlement_campaign(r->ev));
  case K_DEL:
    return fn(arg, "o:", dom_delivery_order_id(r->ev));
  case K_ROUTE: {
    const Linli__RouteBatch *rb = ((Linli__RouteEvent *)r->ev)->route_batch;
    for (size_t s = 0; rc == LINLI_OK && s < rb->n_stops; s++)
      for (size_t o = 0; rc == LINLI_OK && o < rb->stops[s]->n_order_ids; o++)
        rc = fn(arg, "o:", rb->stops[s]->order_ids[o]);
    return rc;
  }
  default:
    return LINLI_OK;
  }
}

struct loader {
  struct notifier *nt;
  linli_strmap_t *map;
  struct state **fresh; /* states made now, to read from Redis */
  size_t nfresh;
};

static int load_key(void *arg, const char *prefix, const char *id) {
  struct loader *l = arg;
  char key[96];
  snprintf(key, sizeof key, "%s%s", prefix, id);
  int created = 0;
  struct state *s = state_get(l->map, key, nt_shard(l->nt, id), &created);
  if (!s)
    return LINLI_ERR_NOMEM;
  if (created)
    l->fresh[l->nfresh++] = s;
  return LINLI_OK;
}

/* HGETALL every state key of the batch in one pipeline. */
static int load_states(struct notifier *nt, struct rec *recs, size_t n,
                       linli_strmap_t **map) {
  size_t nkeys = 0;
  for (size_t i = 0; i < n; i++) {
    if (recs[i].kind == K_ROUTE) {
      const Linli__RouteBatch *rb =
          ((Linli__RouteEvent *)recs[i].ev)->route_batch;
      for (size_t s = 0; s < rb->n_stops; s++)
        nkeys += rb->stops[s]->n_order_ids;
    } else {
      nkeys++;
    }
  }
  int rc = linli_strmap_new(sizeof(struct state), nkeys, map);
  struct loader l = {nt, *map, calloc(nkeys + 1, sizeof(struct state *)), 0};
  if (rc != LINLI_OK || !l.fresh) {
    free(l.fresh);
    return LINLI_ERR_NOMEM;
  }
  for (size_t i = 0; rc == LINLI_OK && i < n; i++)
    rc = rec_keys(&recs[i], load_key, &l);
  linli_redis_cmd_t *cmds = calloc(l.nfresh + 1, sizeof *cmds);
  char (*keys)[200] = calloc(l.nfresh + 1, sizeof *keys);
  const char **argv = calloc(2 * (l.nfresh + 1), sizeof *argv);
  redisReply **rep = calloc(l.nfresh + 1, sizeof *rep);
  if (!cmds || !keys || !argv || !rep)
    rc = LINLI_ERR_NOMEM;
  for (size_t i = 0; rc == LINLI_OK && i < l.nfresh; i++) {
    char tag[96];
    nt_tag(nt, l.fresh[i]->shard, tag, sizeof tag);
    rc = linli_redis_key(keys[i], sizeof keys[i], tag, l.fresh[i]->key);
    argv[2 * i] = "HGETALL";
    argv[2 * i + 1] = keys[i];
    cmds[i].argc = 2;
    cmds[i].argv = &argv[2 * i];
  }
  if (rc == LINLI_OK && l.nfresh > 0)
    rc = linli_redis_pipeline(nt->redis, (int)l.nfresh, cmds, rep);
  if (rc == LINLI_OK && l.nfresh > 0) {
    for (size_t i = 0; i < l.nfresh; i++) {
      redisReply *x = rep[i];
      if (x->type != REDIS_REPLY_ARRAY)
        rc = LINLI_ERR_TRANSIENT;
      for (size_t j = 0; rc == LINLI_OK && j + 1 < x->elements; j += 2)
        rc = st_set(l.fresh[i], x->element[j]->str, x->element[j + 1]->str);
      freeReplyObject(x);
    }
  }
  free(cmds);
  free(keys);
  free(argv);
  free(rep);
  free(l.fresh);
  return rc;
}

/* ------------------------------------------------------------ deciding */

/* Write field=value of state s (the overlay and the script's arguments). */
static int w_set(struct rec *r, struct state *s, const char *f,
                 const char *v) {
  struct part *p = rec_part(r, s->shard);
  if (!p || st_set(s, f, v) != LINLI_OK || args_str(&p->sets, s->key) ||
      args_str(&p->sets, f) || args_str(&p->sets, v))
    return LINLI_ERR_NOMEM;
  p->nsets++;
  return LINLI_OK;
}

static int w_del(struct rec *r, struct state *s, const char *f) {
  struct part *p = rec_part(r, s->shard);
  if (!p || args_str(&p->dels, s->key) || args_str(&p->dels, f))
    return LINLI_ERR_NOMEM;
  st_del(s, f);
  p->ndels++;
  return LINLI_OK;
}

static int w_rem(struct rec *r, struct state *s, const char *op,
                 const char *order, int64_t due) {
  struct part *p = rec_part(r, s->shard);
  char num[32];
  snprintf(num, sizeof num, "%lld", (long long)due);
  if (!p || args_str(&p->rems, op) || args_str(&p->rems, order) ||
      args_str(&p->rems, num))
    return LINLI_ERR_NOMEM;
  p->nrems++;
  return LINLI_OK;
}

static struct state *state_of(struct notifier *nt, linli_strmap_t *m,
                              const char *prefix, const char *id) {
  char key[96];
  snprintf(key, sizeof key, "%s%s", prefix, id);
  return state_get(m, key, nt_shard(nt, id), NULL);
}

/* Rejections a customer is told about (the others concern payments, which
 * the refund flow handles, or duplicates of an order already answered). */
static const char *reject_code(int reason) {
  switch (reason) {
  case LINLI__RESERVATION_RESULT__REASON__OUT_OF_STOCK:
    return "out_of_stock";
  case LINLI__RESERVATION_RESULT__REASON__UNKNOWN_SKU:
    return "unknown_sku";
  case LINLI__RESERVATION_RESULT__REASON__DELISTED:
    return "delisted";
  case LINLI__RESERVATION_RESULT__REASON__INVALID_ORDER:
    return "invalid_order";
  default:
    return NULL;
  }
}

static int decide_reservation(struct notifier *nt, struct rec *r,
                              linli_strmap_t *m, struct arena *a) {
  const Linli__ReservationResult *x =
      ((Linli__ReservationEvent *)r->ev)->reservation_result;
  struct state *s = state_of(nt, m, "o:", x->order_id);
  if (!s)
    return LINLI_ERR_NOMEM;
  r->note_part = -1;
  int rc = LINLI_OK;
  char num[32];
  switch (x->status) {
  case LINLI__RESERVATION_RESULT__STATUS__RESERVED: {
    rc = w_set(r, s, "u", x->user_id);
    rc = rc ? rc : w_set(r, s, "ev", r->meta->event_id);
    snprintf(num, sizeof num, "%lld", (long long)x->total_fen);
    rc = rc ? rc : w_set(r, s, "tot", num);
    snprintf(num, sizeof num, "%lld", (long long)x->expires_at_ms);
    rc = rc ? rc : w_set(r, s, "exp", num);
    rc = rc ? rc : w_set(r, s, "st", "R");
    if (rc == LINLI_OK && nt->reminder_lead_ms > 0 && x->expires_at_ms > 0)
      rc = w_rem(r, s, "+", x->order_id,
                 x->expires_at_ms > nt->reminder_lead_ms
                     ? x->expires_at_ms - nt->reminder_lead_ms
                     : 0);
    struct nt_note *n = rec_note(r, DOM_TPL_ORDER_CONFIRMED, x->user_id);
    if (!n || rc)
      return LINLI_ERR_NOMEM;
    char money[32], when[32];
    dom_fmt_money(x->total_fen, money, sizeof money);
    dom_fmt_time(x->expires_at_ms, nt->utc_offset_min, when, sizeof when);
    n->order_id = x->order_id;
    note_param(n, "order_id", x->order_id);
    note_param(n, "total", arena_fmt(a, "%s", money));
    note_param(n, "pay_by", arena_fmt(a, "%s", when));
    break;
  }
  case LINLI__RESERVATION_RESULT__STATUS__REJECTED: {
    const char *code = reject_code(x->reason);
    if (!code)
      break;
    rc = w_set(r, s, "u", x->user_id);
    rc = rc ? rc : w_set(r, s, "st", "X");
    struct nt_note *n = rec_note(r, DOM_TPL_ORDER_REJECTED, x->user_id);
    if (!n || rc)
      return LINLI_ERR_NOMEM;
    /* "SKU×requested (available)" for every short line. */
    char items[1024] = "";
    size_t off = 0;
    for (size_t j = 0; j < x->n_shortages && off < sizeof items; j++) {
      int w = snprintf(items + off, sizeof items - off, "%s%s\xc3\x97%d (%d)",
                       j ? ", " : "", x->shortages[j]->sku_id,
                       (int)x->shortages[j]->requested,
                       (int)x->shortages[j]->available);
      if (w < 0)
        break;
      off += (size_t)w;
    }
    if (off >= sizeof items) /* keep whole UTF-8 sequences */
      snprintf(items + sizeof items - 8, 8, "...");
    n->order_id = x->order_id;
    note_param(n, "order_id", x->order_id);
    note_param(n, "reason", code); /* localized when built */
    note_param(n, "items", arena_fmt(a, "%s", items));
    break;
  }
  case LINLI__RESERVATION_RESULT__STATUS__RELEASED:
  case LINLI__RESERVATION_RESULT__STATUS__COMMITTED: {
    int released = x->status == LINLI__RESERVATION_RESULT__STATUS__RELEASED;
    const char *exp = st_get(s, "exp");
    long long exp_ms = exp ? atoll(exp) : 0;
    const char *user = st_get(s, "u");
    const char *was = st_get(s, "st");
    int was_paid = was && strcmp(was, "C") == 0;
    rc = w_set(r, s, "st", released ? "X" : "C");
    rc = rc ? rc : w_rem(r, s, "-", x->order_id, 0);
    if (rc)
      return rc;
    /* A release at or after the payment deadline is the expiry (a cancel
     * comes before it); a paid order never expires, and one released
     * because its group-buy failed is told by groupbuy_failed. */
    if (released && !was_paid &&
        x->reason != LINLI__RESERVATION_RESULT__REASON__GROUP_FAILED &&
        exp_ms > 0 && r->meta->occurred_at_ms >= exp_ms) {
      struct nt_note *n = rec_note(r, DOM_TPL_ORDER_EXPIRED,
                                   x->user_id[0] ? x->user_id
                                                 : arena_fmt(a, "%s", user));
      if (!n)
        return LINLI_ERR_NOMEM;
      n->order_id = x->order_id;
      note_param(n, "order_id", x->order_id);
    }
    break;
  }
  default:
    break;
  }
  if (r->nnotes > 0)
    r->note_part = (int)(rec_part(r, s->shard) - r->parts);
  return rc;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Fan a group-buy outcome out to every participant (and every user owed a
 * refund), once per user, with that user's refund. */
static int fan_out(struct notifier *nt, struct rec *r, struct state *s,
                   struct arena *a, enum dom_tpl_id tpl, const char *camp,
                   Linli__CampaignRefund **rf, size_t nrf, char *reason,
                   size_t reasonlen) {
  (void)nt;
  size_t nu = s->n + nrf;
  const char **users = calloc(nu + 1, sizeof *users);
  if (!users)
    return LINLI_ERR_NOMEM;
  size_t k = 0;
  for (size_t i = 0; i < s->n; i++)
    users[k++] = s->kv[i].v;
  for (size_t i = 0; i < nrf; i++)
    users[k++] = rf[i]->user_id;
  qsort(users, k, sizeof *users, cmp_str);
  int rc = LINLI_OK;
  for (size_t i = 0; rc == LINLI_OK && i < k; i++) {
    if (i > 0 && strcmp(users[i], users[i - 1]) == 0)
      continue;
    int64_t refund = 0;
    for (size_t j = 0; j < nrf; j++)
      if (strcmp(rf[j]->user_id, users[i]) == 0 &&
          __builtin_add_overflow(refund, rf[j]->amount_fen, &refund)) {
        snprintf(reason, reasonlen, "refunds of user %s overflow int64",
                 users[i]);
        free(users);
        return LINLI_ERR_INVALID;
      }
    /* A copy: a later record of the batch may change the overlay the
     * participant's id lives in. */
    char *u = arena_fmt(a, "%s", users[i]);
    struct nt_note *n = u ? rec_note(r, tpl, u) : NULL;
    if (!n) {
      rc = LINLI_ERR_NOMEM;
      break;
    }
    n->campaign_id = camp;
    note_param(n, "campaign_id", camp);
    if (tpl == DOM_TPL_GROUPBUY_SETTLED || tpl == DOM_TPL_GROUPBUY_FAILED) {
      char money[32];
      dom_fmt_money(refund, money, sizeof money);
      char *v = arena_fmt(a, "%s", money);
      if (!v)
        rc = LINLI_ERR_NOMEM;
      note_param(n, "refund", v);
    }
  }
  free(users);
  return rc;
}

static int decide_settlement(struct notifier *nt, struct rec *r,
                             linli_strmap_t *m, struct arena *a, char *reason,
                             size_t reasonlen) {
  Linli__SettlementEvent *e = r->ev;
  const char *camp = settlement_campaign(e);
  struct state *s = state_of(nt, m, "c:", camp);
  if (!s)
    return LINLI_ERR_NOMEM;
  int rc = LINLI_OK;
  char money[32];
  size_t first = r->nnotes;
  switch (e->event_case) {
  case LINLI__SETTLEMENT_EVENT__EVENT_JOIN_RESULT: {
    const Linli__JoinResult *j = e->join_result;
    if (j->status == LINLI__JOIN_RESULT__STATUS__JOINED)
      rc = w_set(r, s, j->order_id, j->user_id);
    else if (j->status == LINLI__JOIN_RESULT__STATUS__LEFT)
      rc = w_del(r, s, j->order_id);
    break;
  }
  case LINLI__SETTLEMENT_EVENT__EVENT_THRESHOLD_REACHED: {
    const Linli__ThresholdReached *t = e->threshold_reached;
    enum dom_tpl_id tpl =
        t->tier == 0 ? DOM_TPL_GROUPBUY_FORMED : DOM_TPL_GROUPBUY_TIER;
    rc = fan_out(nt, r, s, a, tpl, camp, NULL, 0, reason, reasonlen);
    dom_fmt_money(t->unit_price_fen, money, sizeof money);
    char *price = arena_fmt(a, "%s", money);
    char *parts = arena_fmt(a, "%d", (int)t->participants);
    char *tier = arena_fmt(a, "%d", (int)t->tier + 1);
    for (size_t i = first; rc == LINLI_OK && i < r->nnotes; i++) {
      if (tpl == DOM_TPL_GROUPBUY_TIER)
        note_param(&r->notes[i], "tier", tier);
      note_param(&r->notes[i], "participants", parts);
      note_param(&r->notes[i], "unit_price", price);
    }
    break;
  }
  case LINLI__SETTLEMENT_EVENT__EVENT_CAMPAIGN_SETTLED: {
    const Linli__CampaignSettled *c = e->campaign_settled;
    rc = fan_out(nt, r, s, a, DOM_TPL_GROUPBUY_SETTLED, camp, c->refunds,
                 c->n_refunds, reason, reasonlen);
    dom_fmt_money(c->unit_price_fen, money, sizeof money);
    char *price = arena_fmt(a, "%s", money);
    char *parts = arena_fmt(a, "%d", (int)c->participants);
    for (size_t i = first; rc == LINLI_OK && i < r->nnotes; i++) {
      note_param(&r->notes[i], "unit_price", price);
      note_param(&r->notes[i], "participants", parts);
    }
    break;
  }
  case LINLI__SETTLEMENT_EVENT__EVENT_CAMPAIGN_FAILED: {
    const Linli__CampaignFailed *c = e->campaign_failed;
    rc = fan_out(nt, r, s, a, DOM_TPL_GROUPBUY_FAILED, camp, c->refunds,
                 c->n_refunds, reason, reasonlen);
    break;
  }
  default:
    break;
  }
  if (rc == LINLI_OK) {
    struct part *p = rec_part(r, s->shard);
    if (!p)
      return LINLI_ERR_NOMEM;
    r->note_part = (int)(p - r->parts);
  }
  return rc;
}

static int decide_route(struct notifier *nt, struct rec *r, linli_strmap_t *m) {
  const Linli__RouteBatch *rb = ((Linli__RouteEvent *)r->ev)->route_batch;
  int rc = LINLI_OK;
  r->note_part = -1;
  for (size_t i = 0; rc == LINLI_OK && i < rb->n_stops; i++) {
    const Linli__RouteBatch__Stop *st = rb->stops[i];
    char eta[32];
    snprintf(eta, sizeof eta, "%lld", (long long)st->eta_ms);
    for (size_t o = 0; rc == LINLI_OK && o < st->n_order_ids; o++) {
      struct state *s = state_of(nt, m, "o:", st->order_ids[o]);
      if (!s)
        return LINLI_ERR_NOMEM;
      rc = w_set(r, s, "eta", eta);
      if (rc == LINLI_OK &&
          st->place_case == LINLI__ROUTE_BATCH__STOP__PLACE_PICKUP_POINT_ID)
        rc = w_set(r, s, "pp", st->pickup_point_id);
    }
  }
  return rc;
}

static int decide_delivery(struct notifier *nt, struct rec *r, linli_strmap_t *m,
                           struct arena *a, char *reason, size_t reasonlen) {
  Linli__DeliveryEvent *e = r->ev;
  const char *order = dom_delivery_order_id(e);
  struct state *s = state_of(nt, m, "o:", order);
  if (!s)
    return LINLI_ERR_NOMEM;
  const char *user = st_get(s, "u");
  r->note_part = -1;
  if (e->event_case == LINLI__DELIVERY_EVENT__EVENT_PICKED_UP)
    return LINLI_OK;
  if (!user) {
    snprintf(reason, reasonlen,
             "order %s: no ReservationResult seen for it (recipient unknown)",
             order);
    return LINLI_ERR_INVALID;
  }
  user = arena_fmt(a, "%s", user);
  if (!user)
    return LINLI_ERR_NOMEM;
  struct nt_note *n = NULL;
  switch (e->event_case) {
  case LINLI__DELIVERY_EVENT__EVENT_OUT_FOR_DELIVERY: {
    const char *eta = st_get(s, "eta");
    char when[32] = "-";
    if (eta)
      dom_fmt_time(atoll(eta), nt->utc_offset_min, when, sizeof when);
    n = rec_note(r, DOM_TPL_OUT_FOR_DELIVERY, user);
    if (n) {
      note_param(n, "order_id", order);
      note_param(n, "eta", arena_fmt(a, "%s", when));
    }
    break;
  }
  case LINLI__DELIVERY_EVENT__EVENT_ARRIVED_AT_PICKUP_POINT: {
    const Linli__ArrivedAtPickupPoint *p = e->arrived_at_pickup_point;
    n = rec_note(r, DOM_TPL_PICKUP_READY, user);
    if (n) {
      note_param(n, "order_id", order);
      note_param(n, "pickup_point", p->pickup_point_id);
      note_param(n, "pickup_code", p->pickup_code);
      note_param(n, "opening_hours", nt->pickup_hours);
    }
    break;
  }
  case LINLI__DELIVERY_EVENT__EVENT_DELIVERED:
    n = rec_note(r, DOM_TPL_DELIVERED, user);
    if (n)
      note_param(n, "order_id", order);
    break;
  case LINLI__DELIVERY_EVENT__EVENT_DELIVERY_FAILED:
    n = rec_note(r, DOM_TPL_DELIVERY_FAILED, user);
    if (n) {
      note_param(n, "order_id", order);
      note_param(n, "reason", e->delivery_failed->reason);
    }
    break;
  default:
    return LINLI_OK;
  }
  if (!n)
    return LINLI_ERR_NOMEM;
  n->order_id = order;
  struct part *p = rec_part(r, s->shard);
  if (!p)
    return LINLI_ERR_NOMEM;
  r->note_part = (int)(p - r->parts);
  return LINLI_OK;
}

/* ------------------------------------------------------------- locales */

/* Localized text of a rejection code for order_rejected's {reason}. */
static const char *reason_text(const char *locale, const char *code) {
  static const struct {
    const char *code, *zh, *en;
  } T[] = {
      {"out_of_stock", "部分商品库存不足", "some items are out of stock"},
      {"unknown_sku", "包含未上架的商品", "an item is not in the catalogue"},
      {"delisted", "部分商品已下架", "an item is no longer sold"},
      {"invalid_order", "订单信息有误", "the order is not valid"},
  };
  for (size_t i = 0; i < sizeof T / sizeof T[0]; i++)
    if (strcmp(T[i].code, code) == 0)
      return strncmp(locale, "zh", 2) == 0 ? T[i].zh : T[i].en;
  return code;
}

/* Resolve every note's locale: the user's override under
 * "linli:locale:<user>" if it names a loaded locale, else the default. */
static int resolve_locales(struct notifier *nt, struct rec *recs, size_t n,
                           struct arena *a) {
  size_t total = 0;
  for (size_t i = 0; i < n; i++)
    total += recs[i].nnotes;
  if (total == 0)
    return LINLI_OK;
  linli_redis_cmd_t *cmds = calloc(total, sizeof *cmds);
  const char **argv = calloc(2 * total, sizeof *argv);
  redisReply **rep = calloc(total, sizeof *rep);
  int rc = cmds && argv && rep ? LINLI_OK : LINLI_ERR_NOMEM;
  size_t k = 0;
  for (size_t i = 0; rc == LINLI_OK && i < n; i++)
    for (size_t j = 0; rc == LINLI_OK && j < recs[i].nnotes; j++, k++) {
      argv[2 * k] = "GET";
      argv[2 * k + 1] =
          arena_fmt(a, LOCALE_KEY_PREFIX "%s", recs[i].notes[j].user);
      if (!argv[2 * k + 1])
        rc = LINLI_ERR_NOMEM;
      cmds[k].argc = 2;
      cmds[k].argv = &argv[2 * k];
    }
  if (rc == LINLI_OK)
    rc = linli_redis_pipeline(nt->redis, (int)total, cmds, rep);
  if (rc == LINLI_OK) {
    k = 0;
    for (size_t i = 0; i < n; i++)
      for (size_t j = 0; j < recs[i].nnotes; j++, k++) {
        const char *want =
            rep[k]->type == REDIS_REPLY_STRING ? rep[k]->str : NULL;
        recs[i].notes[j].locale = dom_tpl_locale(nt->tpl, want);
        freeReplyObject(rep[k]);
      }
  }
  free(cmds);
  free(argv);
  free(rep);
  return rc;
}

/* Build every note of r for every channel into its part's arguments. */
static int build_notes(struct notifier *nt, struct rec *r) {
  if (r->nnotes == 0 || r->note_part < 0)
    return LINLI_OK;
  struct part *p = &r->parts[r->note_part];
  for (size_t j = 0; j < r->nnotes; j++) {
    struct nt_note n = r->notes[j];
    for (size_t q = 0; q < n.nparams; q++)
      if (n.tpl == DOM_TPL_ORDER_REJECTED &&
          strcmp(n.params[q].key, "reason") == 0)
        n.params[q].value = reason_text(n.locale, n.params[q].value);
    for (int c = 0; c < nt->nchannels; c++) {
      char id[LINLI_ID_BUFSZ];
      uint8_t *packed = NULL;
      size_t plen = 0;
      char *body = NULL;
      int rc = nt_note_build(nt, &n, nt->channels[c], id, &packed, &plen,
                             nt->webhook_on ? &body : NULL);
      if (rc == LINLI_OK)
        rc = args_str(&p->notes, id);
      if (rc == LINLI_OK)
        rc = args_str(&p->notes, n.user);
      if (rc == LINLI_OK)
        rc = args_str(&p->notes, dom_tpl_name(n.tpl));
      if (rc == LINLI_OK)
        rc = args_str(&p->notes, nt_channel_name(nt->channels[c]));
      if (rc == LINLI_OK)
        rc = args_push(&p->notes, packed, plen);
      if (rc == LINLI_OK)
        rc = args_str(&p->notes, body ? body : "");
      free(packed);
      free(body);
      if (rc != LINLI_OK)
        return rc;
      p->nnotes++;
    }
  }
  return LINLI_OK;
}

/* ------------------------------------------------------------ reporting */

static int emit_dlq_note(linli_emit_t *emit, const char *user,
                         const uint8_t *packed, size_t len, const char *why) {
  rd_kafka_headers_t *h = rd_kafka_headers_new(4);
  rd_kafka_header_add(h, LINLI_DLQ_H_TOPIC, -1, LINLI_TOPIC_NOTIFICATIONS, -1);
  rd_kafka_header_add(h, LINLI_DLQ_H_CONSUMER, -1, "notifier-webhook", -1);
  rd_kafka_header_add(h, LINLI_DLQ_H_ERROR, -1, "transient", -1);
  rd_kafka_header_add(h, LINLI_DLQ_H_REASON, -1, why, -1);
  return linli_emit(emit, LINLI_TOPIC_DLQ, RD_KAFKA_PARTITION_UA, user,
                    strlen(user), packed, len, h);
}

/* Write the notifications an outcome lists (see NT_LUA_BATCH). */
static int emit_outcome(struct notifier *nt, linli_emit_t *emit, int effect,
                        const char *o, size_t len, const struct part *p) {
  size_t pos = 0;
  struct dom_nt_entry e;
  int k = 0, more;
  while ((more = dom_nt_outcome_next(o, len, &pos, &e)) == 1) {
    char user[LINLI_ID_BUFSZ];
    if (e.userlen >= sizeof user)
      return LINLI_ERR_FATAL;
    memcpy(user, e.user, e.userlen);
    user[e.userlen] = '\0';
    /* The channel this note was built for (for the metrics; six arguments
     * per note, the channel fourth). */
    const char *chan = (size_t)k * 6 + 3 < p->notes.n
                           ? p->notes.v[(size_t)k * 6 + 3]
                           : "app_push";
    int ci = strcmp(chan, "sms") == 0      ? 1
             : strcmp(chan, "wechat") == 0 ? 2
                                            : 3;
    k++;
    int rc = linli_emit(emit, LINLI_TOPIC_NOTIFICATIONS, RD_KAFKA_PARTITION_UA,
                        user, e.userlen, e.packed, e.packedlen, NULL);
    if (rc != LINLI_OK)
      return rc;
    if (effect == LINLI_REDIS_APPLIED && e.flag != 'D')
      linli_counter_add(nt->m[ci].written, 1);
    else
      linli_counter_add(nt->m[ci].deduplicated, 1);
    if (e.flag == 'F') {
      LINLI_ERROR("webhook retry queue full: notification to the DLQ",
                  "user=%s", user);
      rc = emit_dlq_note(emit, user, e.packed, e.packedlen,
                         "webhook retry queue full");
      if (rc != LINLI_OK)
        return rc;
    }
  }
  return more == 0 ? LINLI_OK : LINLI_ERR_FATAL;
}

/* ---------------------------------------------------------------- batch */

static int add_parts(struct notifier *nt, linli_batch_t *b, size_t ri,
                     struct rec *r, linli_shards_t *shards,
                     const char *now_s) {
  char ttl[32], qmax[32];
  snprintf(ttl, sizeof ttl, "%lld", (long long)nt->ttl_s);
  snprintf(qmax, sizeof qmax, "%lld", (long long)nt->queue_max);
  for (size_t i = 0; i < r->nparts; i++) {
    struct part *p = &r->parts[i];
    size_t na = 3 + 4 + p->sets.n + p->dels.n + p->rems.n + p->notes.n;
    const char **args = calloc(na, sizeof *args);
    size_t *lens = calloc(na, sizeof *lens);
    char cnt[4][16];
    if (!args || !lens) {
      free(args);
      free(lens);
      return LINLI_ERR_NOMEM;
    }
    size_t k = 0;
#define A(s, l) (args[k] = (s), lens[k] = (l), k++)
    A(ttl, strlen(ttl));
    A(qmax, strlen(qmax));
    A(now_s, strlen(now_s));
    const struct args *lists[] = {&p->sets, &p->dels, &p->rems, &p->notes};
    int counts[] = {p->nsets, p->ndels, p->nrems, p->nnotes};
    for (int l = 0; l < 4; l++) {
      snprintf(cnt[l], sizeof cnt[l], "%d", counts[l]);
      A(cnt[l], strlen(cnt[l]));
      for (size_t j = 0; j < lists[l]->n; j++)
        A(lists[l]->v[j], lists[l]->len[j]);
    }
#undef A
    char tag[96];
    nt_tag(nt, p->shard, tag, sizeof tag);
    int slot = linli_shards_add_record(shards, tag, b, ri, (int)k, args, lens,
                                       &p->batch);
    free(args);
    free(lens);
    if (slot < 0)
      return slot;
    p->slot = slot;
  }
  return LINLI_OK;
}

static int decide(struct notifier *nt, struct rec *r, linli_strmap_t *m,
                  struct arena *a, char *why, size_t whylen) {
  switch (r->kind) {
  case K_RES:
    return decide_reservation(nt, r, m, a);
  case K_SET:
    return decide_settlement(nt, r, m, a, why, whylen);
  case K_ROUTE:
    return decide_route(nt, r, m);
  case K_DEL:
    return decide_delivery(nt, r, m, a, why, whylen);
  default:
    return LINLI_OK;
  }
}

int nt_handle_batch(void *app, linli_batch_t *b, linli_emit_t *emit,
                    char *reason, size_t reasonlen) {
  struct notifier *nt = app;
  size_t n = linli_batch_count(b);
  struct rec *recs = calloc(n ? n : 1, sizeof *recs);
  linli_shards_t *shards = NULL;
  linli_strmap_t *map = NULL;
  struct arena arena = {0};
  int rc = LINLI_ERR_TRANSIENT;
  snprintf(reason, reasonlen, "out of memory");
  if (!recs || linli_shards_new(nt->script, (size_t)nt->nshards, &shards) !=
                   LINLI_OK)
    goto done;
  for (size_t i = 0; i < n; i++) {
    recs[i].msg = linli_batch_msg(b, i);
    recs[i].note_part = -1;
    decode(b, i, &recs[i]);
  }
  rc = load_states(nt, recs, n, &map);
  if (rc != LINLI_OK) {
    snprintf(reason, reasonlen, "redis: reading order/campaign state failed");
    rc = LINLI_ERR_TRANSIENT;
    goto done;
  }
  for (size_t i = 0; i < n; i++) {
    struct rec *r = &recs[i];
    if (r->kind == K_NONE)
      continue;
    char why[512] = "";
    int drc = decide(nt, r, map, &arena, why, sizeof why);
    if (drc == LINLI_ERR_INVALID) {
      linli_batch_reject(b, i, drc, why);
      r->kind = K_NONE;
      r->nnotes = 0;
      for (size_t j = 0; j < r->nparts; j++) {
        args_free(&r->parts[j].sets);
        args_free(&r->parts[j].dels);
        args_free(&r->parts[j].rems);
        args_free(&r->parts[j].notes);
      }
      r->nparts = 0;
    } else if (drc != LINLI_OK) {
      rc = LINLI_ERR_TRANSIENT;
      snprintf(reason, reasonlen, "out of memory deciding a record");
      goto done;
    }
  }
  if (resolve_locales(nt, recs, n, &arena) != LINLI_OK) {
    snprintf(reason, reasonlen, "redis: reading locales failed");
    rc = LINLI_ERR_TRANSIENT;
    goto done;
  }
  char now_s[32];
  snprintf(now_s, sizeof now_s, "%lld", (long long)linli_clock_now_ms());
  for (size_t i = 0; i < n; i++) {
    if (recs[i].kind == K_NONE)
      continue;
    if (build_notes(nt, &recs[i]) != LINLI_OK ||
        add_parts(nt, b, i, &recs[i], shards, now_s) != LINLI_OK) {
      snprintf(reason, reasonlen, "out of memory building notifications");
      rc = LINLI_ERR_TRANSIENT;
      goto done;
    }
  }
  rc = linli_shards_exec(nt->redis, shards, reason, reasonlen);
  if (rc != LINLI_OK)
    goto done;
  reason[0] = '\0';
  for (size_t i = 0; rc == LINLI_OK && i < n; i++) {
    struct rec *r = &recs[i];
    if (r->kind == K_NONE)
      continue;
    for (size_t j = 0; rc == LINLI_OK && j < r->nparts; j++) {
      struct part *p = &r->parts[j];
      const char *msg = NULL;
      linli_redis_batch_t *shard = linli_shards_batch(shards, (size_t)p->batch);
      int status = linli_redis_batch_status(shard, &msg);
      if (status != LINLI_OK) {
        snprintf(reason, reasonlen, "redis shard %d: %s", p->shard,
                 msg ? msg : "error");
        rc = LINLI_ERR_TRANSIENT;
        break;
      }
      int effect = 0;
      const char *out = NULL;
      size_t len = 0;
      linli_redis_batch_result(shard, (size_t)p->slot, &effect, &out, &len);
      if (effect == LINLI_REDIS_FORGOTTEN)
        continue;
      if (len >= 4 && memcmp(out, "ERR|", 4) == 0) {
        char why[512];
        snprintf(why, sizeof why, "notifier script: %.*s",
                 (int)(len > 400 ? 400 : len), out + 4);
        linli_batch_reject(b, i, LINLI_ERR_INVALID, why);
        break;
      }
      int erc = emit_outcome(nt, emit, effect, out, len, p);
      if (erc == LINLI_ERR_FATAL) {
        snprintf(reason, reasonlen, "malformed script outcome");
        rc = LINLI_ERR_FATAL;
      } else if (erc != LINLI_OK) {
        snprintf(reason, reasonlen, "emit failed");
        rc = LINLI_ERR_TRANSIENT;
      }
    }
  }
done:
  for (size_t i = 0; recs && i < n; i++)
    rec_free(&recs[i]);
  free(recs);
  linli_shards_free(shards);
  states_free(map);
  arena_free(&arena);
  return rc;
}
