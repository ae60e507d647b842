/*
 * groupbuys.c - GET /v1/groupbuys/{id}: a campaign's live progress for apps
 * and dashboards (participants, the tier reached, the next tier and how
 * many neighbours it still needs, time left), read from the settler's hot
 * state through libdomain's key layout, in one Redis round trip. A campaign
 * belongs to its app: another app gets 404, as for orders.
 *
 * GET /v1/groupbuys/{id}/events streams the same progress as Server-Sent
 * Events. Its source is the same hash, polled every GB_POLL_MS per stream:
 * the settler's state is what decided the joins (distinct users, limits,
 * the tier announced), and it is where the settlement lands, so the
 * stream can never show a count the settler did not make. An event goes
 * out when participants, the tier or the state change; a settled or failed
 * campaign ends the stream with its last event.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>

#include "domain/groupbuy_state.h"
#include "gateway.h"
#include "linli/clock.h"
#include "linli/error.h"
#include "linli/log.h"

/* How often a stream reads the campaign's state, and every how many polls
 * it sends a comment line (15 s) to keep proxies and dead peers honest. */
#define GB_POLL_MS 500
#define GB_PING_POLLS 30

struct gb_ctx {
  struct gw_req r;
};

/* The campaign hash's fields, in the order HMGET asks for them. */
enum { F_ST, F_APP, F_SKU, F_WH, F_TIERS, F_N, F_CAP, F_LIM, F_DL, F_LIST,
       F_TIER, NFIELDS };
static const char *const FIELDS[NFIELDS] = {
    "st", "app", "sku", "wh", "tiers", "n", "cap", "lim", "dl", "list",
    "tier"};

static const char *field(const redisReply *rep, int i) {
  const redisReply *e = rep->element[i];
  return e->type == REDIS_REPLY_STRING ? e->str : NULL;
}

static long long num(const redisReply *rep, int i) {
  const char *s = field(rep, i);
  return s ? atoll(s) : 0;
}

static json_t *tier_json(const struct dom_gb_tier *t, int index) {
  return json_pack("{s:i,s:i,s:I}", "index", index, "min_participants",
                   (int)t->min, "unit_price_fen", (json_int_t)t->price_fen);
}

static json_t *progress(const redisReply *rep, const char *id) {
  struct dom_gb_tier tiers[DOM_GB_MAX_TIERS];
  size_t ntiers = 0;
  if (dom_gb_tiers_parse(field(rep, F_TIERS), tiers, DOM_GB_MAX_TIERS,
                         &ntiers) != LINLI_OK)
    return NULL;
  int64_t n = num(rep, F_N);
  const char *st = field(rep, F_ST);
  int ended = strcmp(st, "OPEN") != 0;
  int t = ended ? (int)num(rep, F_TIER) : dom_gb_tier_for(tiers, ntiers, n);
  int64_t left = num(rep, F_DL) - linli_clock_now_ms();
  json_t *arr = json_array();
  for (size_t i = 0; i < ntiers; i++)
    json_array_append_new(arr, tier_json(&tiers[i], (int)i));
  json_t *o = json_pack(
      "{s:s,s:s,s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:o}", "campaign_id", id,
      "app_id", field(rep, F_APP) ? field(rep, F_APP) : "", "sku_id",
      field(rep, F_SKU) ? field(rep, F_SKU) : "", "warehouse_id",
      field(rep, F_WH) ? field(rep, F_WH) : "", "state", st, "participants",
      (json_int_t)n, "max_participants", (json_int_t)num(rep, F_CAP),
      "per_user_limit", (json_int_t)num(rep, F_LIM), "list_price_fen",
      (json_int_t)num(rep, F_LIST), "deadline_ms", (json_int_t)num(rep, F_DL),
      "time_left_ms", (json_int_t)(ended || left < 0 ? 0 : left), "tiers",
      arr);
  if (!o)
    return NULL;
  json_object_set_new(o, "current_tier",
                      t >= 0 && (size_t)t < ntiers ? tier_json(&tiers[t], t)
                                                   : json_null());
  int next = t + 1;
  json_object_set_new(o, "next_tier",
                      !ended && (size_t)next < ntiers
                          ? tier_json(&tiers[next], next)
                          : json_null());
  json_object_set_new(
      o, "needed_for_next_tier",
      json_integer(ended ? 0 : dom_gb_needed_for_next(tiers, ntiers, n)));
  return o;
}

static void on_campaign(struct gw *gw, const redisReply *rep, void *arg) {
  (void)gw;
  struct gb_ctx *c = arg;
  struct gw_req *r = &c->r;
  if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != NFIELDS) {
    gw_reply_error(r, 503, "unavailable", "the hot state is unreachable");
  } else if (!field(rep, F_ST) ||
             (r->key->role != GW_ROLE_ADMIN &&
              strcmp(field(rep, F_APP) ? field(rep, F_APP) : "",
                     r->key->app_id) != 0)) {
    /* Unknown, and another app's campaign, look the same. */
    gw_reply_error(r, 404, "not_found", "no such group-buy");
  } else {
    json_t *body = progress(rep, r->param);
    if (body)
      gw_reply_json(r, 200, body);
    else
      gw_reply_error(r, 500, "internal", "unreadable campaign state");
  }
  free(c);
}

/* HMGET of the campaign's fields, answered to fn. */
static void read_campaign(struct gw *gw, const char *id, gw_redis_fn fn,
                          void *arg) {
  char key[128];
  snprintf(key, sizeof key, DOM_GB_KEY_CAMPAIGN_FMT, id);
  const char *argv[2 + NFIELDS] = {"HMGET", key};
  for (int i = 0; i < NFIELDS; i++)
    argv[2 + i] = FIELDS[i];
  gw_redis_cmd(gw, fn, arg, 2 + NFIELDS, argv);
}

void gw_get_groupbuy(struct gw_req *r) {
  struct gb_ctx *c = calloc(1, sizeof *c);
  if (!c) {
    gw_reply_error(r, 500, "internal", "out of memory");
    return;
  }
  gw_req_copy(&c->r, r);
  read_campaign(r->gw, r->param, on_campaign, c);
}

/* ------------------------------------------------------------- streams */

struct gb_stream {
  struct gw *gw;
  struct gw_req r; /* the request (answered with an error before start) */
  struct evhttp_connection *evcon;
  struct event *tick;
  char last[128]; /* state|participants|tier of the last event sent */
  int tier;       /* current tier index of the last event sent */
  int started;    /* the 200 and its headers went out */
  int inflight;   /* an HMGET is outstanding: its callback frees a gone one */
  int gone;       /* the connection is closed */
  int polls;
  size_t max_buffer; /* gateway.sse_max_buffer_bytes */
  struct gb_stream *next;
};

static void stream_unlink(struct gb_stream *s) {
  struct gb_stream **pp = &s->gw->gb_streams;
  while (*pp && *pp != s)
    pp = &(*pp)->next;
  if (*pp)
    *pp = s->next;
}

static void stream_free(struct gb_stream *s) {
  if (s->tick)
    event_free(s->tick);
  free(s);
}

/* The peer went away (or we cut it off). As in sse.c: a request evhttp
 * already detached is ours to end. */
static void on_stream_close(struct evhttp_connection *evcon, void *arg) {
  (void)evcon;
  struct gb_stream *s = arg;
  stream_unlink(s);
  s->gone = 1;
  if (evhttp_request_get_connection(s->r.req) == NULL)
    evhttp_send_reply_end(s->r.req);
  if (s->tick)
    event_del(s->tick);
  if (!s->inflight)
    stream_free(s);
}

/* The campaign ended (or its state expired): the last event went out. */
static void stream_end(struct gb_stream *s) {
  stream_unlink(s);
  evhttp_connection_set_closecb(s->evcon, NULL, NULL);
  evhttp_send_reply_end(s->r.req);
  stream_free(s);
}

/* Queue bytes; 0 if the client was too slow and is cut off (and s is
 * freed or left to its callback). */
static int stream_send(struct gb_stream *s, const char *data, size_t len) {
  if (gw_sse_queue(s->evcon, s->r.req, data, len, s->max_buffer))
    return 1;
  LINLI_WARN("group-buy stream client too slow: cut off", "campaign=%s",
             s->r.param);
  evhttp_connection_free(s->evcon); /* on_stream_close runs from here */
  return 0;
}

static int stream_event(struct gb_stream *s, const char *type, json_t *o) {
  char *data = json_dumps(o, JSON_COMPACT);
  if (!data)
    return 1; /* out of memory: skip, the next change sends again */
  size_t cap = strlen(data) + strlen(type) + 32;
  char *frame = malloc(cap);
  int ok = 1;
  if (frame) {
    int n = snprintf(frame, cap, "event: %s\ndata: %s\n\n", type, data);
    ok = stream_send(s, frame, (size_t)n);
  }
  free(frame);
  free(data);
  return ok;
}

/* The state expired (retention after the end) or cannot be read: nothing
 * left to follow. Ends the stream (s is freed). */
static void stream_gone(struct gb_stream *s) {
  static const char gone[] =
      "event: gone\ndata: {\"reason\":\"the campaign's live state is no "
      "longer held\"}\n\n";
  if (stream_send(s, gone, sizeof gone - 1))
    stream_end(s);
}

/* Send what changed since the last event; 0 if the stream is over (s is
 * freed). */
static int stream_update(struct gb_stream *s, const redisReply *rep) {
  const char *st = field(rep, F_ST);
  json_t *o = st ? progress(rep, s->r.param) : NULL;
  if (!o) {
    stream_gone(s);
    return 0;
  }
  json_t *ct = json_object_get(o, "current_tier");
  int tier = json_is_object(ct)
                 ? (int)json_integer_value(json_object_get(ct, "index"))
                 : -1;
  char fp[sizeof s->last];
  snprintf(fp, sizeof fp, "%s|%lld|%d", st, num(rep, F_N), tier);
  int ended = strcmp(st, "OPEN") != 0;
  int alive = 1;
  if (strcmp(fp, s->last) != 0) {
    int tier_up = s->last[0] && tier != s->tier;
    snprintf(s->last, sizeof s->last, "%s", fp);
    s->tier = tier;
    alive = stream_event(s, "progress", o) &&
            (!tier_up || stream_event(s, "tier", o));
    if (alive && ended)
      alive = stream_event(s, strcmp(st, "SETTLED") == 0 ? "settled"
                                                         : "failed",
                           o);
  }
  json_decref(o);
  if (!alive)
    return 0;
  if (ended) {
    stream_end(s);
    return 0;
  }
  return 1;
}

static void on_stream_poll(struct gw *gw, const redisReply *rep, void *arg) {
  (void)gw;
  struct gb_stream *s = arg;
  s->inflight = 0;
  if (s->gone) {
    stream_free(s);
    return;
  }
  /* Redis unreachable or slow: say nothing, read again next time. */
  if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != NFIELDS)
    return;
  stream_update(s, rep);
}

static void on_stream_tick(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  struct gb_stream *s = arg;
  if (s->inflight || s->gw->stopping)
    return;
  if (++s->polls % GB_PING_POLLS == 0 && !stream_send(s, ": ping\n\n", 8))
    return;
  s->inflight = 1;
  read_campaign(s->gw, s->r.param, on_stream_poll, s);
}

static void on_stream_first(struct gw *gw, const redisReply *rep,
                            void *arg) {
  struct gb_stream *s = arg;
  struct gw_req *r = &s->r;
  s->inflight = 0;
  if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != NFIELDS) {
    gw_reply_error(r, 503, "unavailable", "the hot state is unreachable");
    stream_free(s);
    return;
  }
  if (!field(rep, F_ST) ||
      (r->key->role != GW_ROLE_ADMIN &&
       strcmp(field(rep, F_APP) ? field(rep, F_APP) : "", r->key->app_id) !=
           0)) {
    /* The same rule as GET /v1/groupbuys/{id}. */
    gw_reply_error(r, 404, "not_found", "no such group-buy");
    stream_free(s);
    return;
  }
  struct timeval every = {GB_POLL_MS / 1000, (GB_POLL_MS % 1000) * 1000};
  s->evcon = evhttp_request_get_connection(r->req);
  s->tick = event_new(gw->base, -1, EV_PERSIST, on_stream_tick, s);
  if (!s->evcon || !s->tick || event_add(s->tick, &every) != 0) {
    gw_reply_error(r, 500, "internal", "cannot start the stream");
    stream_free(s);
    return;
  }
  gw_sse_reply_start(r->req);
  evhttp_connection_set_closecb(s->evcon, on_stream_close, s);
  s->started = 1;
  s->next = gw->gb_streams;
  gw->gb_streams = s;
  LINLI_INFO("group-buy stream connected", "app=%s campaign=%s",
             r->key->app_id, r->param);
  /* Every connection starts with the current state, so a reconnecting
   * client needs no Last-Event-ID. */
  if (stream_send(s, "retry: 2000\n\n", 13))
    stream_update(s, rep);
}

void gw_get_groupbuy_events(struct gw_req *r) {
  struct gb_stream *s = calloc(1, sizeof *s);
  if (!s) {
    gw_reply_error(r, 500, "internal", "out of memory");
    return;
  }
  s->gw = r->gw;
  s->tier = -1;
  s->max_buffer = (size_t)linli_config_int(r->gw->cfg,
                                           "gateway.sse_max_buffer_bytes");
  gw_req_copy(&s->r, r);
  s->inflight = 1;
  read_campaign(r->gw, r->param, on_stream_first, s);
}

void gw_groupbuy_streams_stop(struct gw *gw) {
  while (gw->gb_streams) {
    struct gb_stream *s = gw->gb_streams;
    gw->gb_streams = s->next;
    evhttp_connection_set_closecb(s->evcon, NULL, NULL);
    evhttp_send_reply_end(s->r.req);
    if (s->inflight) {
      s->gone = 1; /* its callback frees it */
      if (s->tick)
        event_del(s->tick);
    } else {
      stream_free(s);
    }
  }
}
