/*
 * publish.c - the gateway's POST endpoints: body -> protobuf message
 * (linli/json.h), field rules (validate.c), idempotency, tenant checks and
 * per-user caps (guard.c), then one event to its topic.
 *
 * After the synchronous part (parse, validate) a publish is a struct pub
 * that walks its steps, each one a Redis round trip answered by callback
 * (guard.c), so nothing blocks the loop: idempotency key, order-id claim
 * (POST /v1/orders), order ownership, per-user cap, then the send. Which
 * steps run is set per endpoint; the envelope is built by the endpoint's
 * send function from the parsed message, which the pub owns.
 *
 * The answer is sent from the producer's delivery report (polled from a
 * libevent timer in main.c): 202 with the event id once Kafka acknowledged
 * the write (acks=all, idempotent producer), 503 if it could not be written
 * within message.timeout.ms. On any failure after a claim (idempotency key,
 * order ownership, cap slot) the claim is undone, so a 503 leaves nothing
 * behind and the client may retry with the same Idempotency-Key.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <sodium.h>

#include "catalog.pb-c.h"
#include "delivery.pb-c.h"
#include "gateway.h"
#include "groupbuy.pb-c.h"
#include "inventory.pb-c.h"
#include "linli/clock.h"
#include "linli/error.h"
#include "linli/ids.h"
#include "linli/json.h"
#include "linli/log.h"
#include "linli/schema.h"
#include "orders.pb-c.h"

#define IDEM_MAX 255

enum { STEP_IDEM, STEP_CLAIM, STEP_OWN, STEP_CAP, STEP_SEND };

/* One publish in flight: everything needed to go on, to answer and to
 * undo. */
struct pub {
  struct gw *gw;
  struct evhttp_request *req;
  const struct gw_key *key;
  int64_t started_us;
  int step;
  ProtobufCMessage *m; /* the parsed body (owned; freed once sent) */
  /* Steps to run (NULL: skip); they point into m. */
  const char *claim;                           /* order id to claim */
  const char *own;                             /* order id that must be ours */
  const char *campaign, *cap_for_user, *order; /* cap: count order */
  void (*send)(struct pub *p);
  char trace[65];
  const char *topic;
  char event_id[LINLI_ID_BUFSZ];
  char msg_key[LINLI_ID_BUFSZ];
  int has_idem;
  char idem[IDEM_MAX + 1];
  char hash[65];
  char claimed_order[LINLI_ID_BUFSZ]; /* unclaim on failure ("" = none) */
  int cap_added;                      /* give the cap slot back on failure */
  char cap_campaign[LINLI_ID_BUFSZ], cap_user[LINLI_ID_BUFSZ],
      cap_order[LINLI_ID_BUFSZ];
};

static struct gw_req as_req(struct pub *p) {
  struct gw_req r;
  memset(&r, 0, sizeof r);
  r.gw = p->gw;
  r.req = p->req;
  r.key = p->key;
  r.started_us = p->started_us;
  return r;
}

static void pub_free(struct pub *p) {
  if (p->m)
    protobuf_c_message_free_unpacked(p->m, NULL);
  free(p);
}

/* Undo the claims, answer with an error, free. */
static void pub_fail(struct pub *p, int status, const char *code,
                     const char *msg) {
  struct gw *gw = p->gw;
  if (p->claimed_order[0])
    gw_order_unclaim(gw, p->claimed_order);
  if (p->cap_added)
    gw_cap_give_back(gw, p->cap_campaign, p->cap_user, p->cap_order);
  if (p->has_idem)
    gw_idem_abort(gw, p->key->app_id, p->idem);
  struct gw_req r = as_req(p);
  gw_reply_error(&r, status, code, msg);
  pub_free(p);
}

static void redis_down(struct pub *p) {
  pub_fail(p, 503, "unavailable", "shared state (Redis) is unreachable");
}

/* --------------------------------------------------------------- body */

/* Parse the body as desc; on failure answers 400 (or 415) and returns NULL. */
static ProtobufCMessage *parse_body(struct gw_req *r,
                                    const ProtobufCMessageDescriptor *desc) {
  const char *ct = gw_header(r, "Content-Type");
  if (ct && strncmp(ct, "application/json", 16) != 0) {
    gw_reply_error(r, 415, "unsupported_media_type",
                   "send the body as application/json");
    return NULL;
  }
  size_t len = 0;
  char *body = gw_body(r, &len);
  if (!body) {
    gw_reply_error(r, 500, "internal", "out of memory");
    return NULL;
  }
  ProtobufCMessage *m = NULL;
  char err[512];
  int rc = linli_json_text_to_pb(desc, body, len, &m, err, sizeof err);
  free(body);
  if (rc == LINLI_OK)
    return m;
  if (rc == LINLI_ERR_NOMEM) {
    gw_reply_error(r, 500, "internal", "out of memory");
    return NULL;
  }
  /* "path: reason" names the field; other messages are about the text. */
  const char *sep = strstr(err, ": ");
  json_t *errs = json_array();
  if (sep && !memchr(err, ' ', (size_t)(sep - err))) {
    char field[256];
    snprintf(field, sizeof field, "%.*s", (int)(sep - err), err);
    gw_verr(errs, field, "%s", sep + 2);
  } else {
    gw_verr(errs, "(body)", "%s", err);
  }
  gw_reply_invalid(r, errs, "the body does not match the schema");
  return NULL;
}

/* 400 naming every field in errs (consumed); returns 1 if it replied. */
static int reject_invalid(struct gw_req *r, json_t *errs) {
  return gw_reply_invalid(r, errs, "some fields are invalid");
}

/* *field := value (a string field of a message from the JSON layer, which
 * allocates non-empty strings with malloc). */
static int set_str(char **field, const char *value) {
  char *copy = strdup(value);
  if (!copy)
    return LINLI_ERR_NOMEM;
  if (*field && *field != protobuf_c_empty_string)
    free(*field);
  *field = copy;
  return LINLI_OK;
}

/* The path's id fills an empty body field; a different one is an error. */
static void path_id(struct gw_req *r, char **field, const char *name,
                    json_t *errs) {
  if (!*field || !(*field)[0]) {
    if (set_str(field, r->param) != LINLI_OK)
      gw_verr(errs, name, "out of memory");
  } else if (strcmp(*field, r->param) != 0) {
    gw_verr(errs, name, "must match the id in the path");
  }
}

/* ------------------------------------------------------- idempotency */

static int valid_idem_key(const char *k) {
  size_t n = strlen(k);
  if (n == 0 || n > IDEM_MAX)
    return 0;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)k[i] < 0x21 || (unsigned char)k[i] > 0x7e)
      return 0;
  return 1;
}

/* A trace id from traceparent (W3C) or X-Request-Id, else "". */
static void trace_id(struct gw_req *r, char *buf, size_t len) {
  const char *tp = gw_header(r, "traceparent");
  buf[0] = '\0';
  if (tp && strlen(tp) >= 55 && tp[2] == '-' && tp[35] == '-') {
    for (int i = 3; i < 35; i++)
      if (!strchr("0123456789abcdef", tp[i]) || !tp[i])
        return;
    snprintf(buf, len, "%.32s", tp + 3);
    return;
  }
  const char *rid = gw_header(r, "X-Request-Id");
  if (rid && linli_id_valid(rid))
    snprintf(buf, len, "%s", rid);
}

/* A publish for the parsed message m (taken: freed by the pub, or here if
 * this replies). NULL if it already replied (400 on a bad
 * Idempotency-Key, 500). */
static struct pub *pub_new(struct gw_req *r, ProtobufCMessage *m,
                           void (*send)(struct pub *p)) {
  struct pub *p = calloc(1, sizeof *p);
  if (!p) {
    protobuf_c_message_free_unpacked(m, NULL);
    gw_reply_error(r, 500, "internal", "out of memory");
    return NULL;
  }
  p->gw = r->gw;
  p->req = r->req;
  p->key = r->key;
  p->started_us = r->started_us;
  p->m = m;
  p->send = send;
  trace_id(r, p->trace, sizeof p->trace);
  const char *idem = gw_header(r, "Idempotency-Key");
  if (!idem)
    return p;
  if (!valid_idem_key(idem)) {
    pub_free(p);
    gw_reply_error(r, 400, "invalid_idempotency_key",
                   "Idempotency-Key must be 1-255 printable ASCII characters");
    return NULL;
  }
  /* The request is the method-less route + body: same key, other body = 409. */
  unsigned char h[crypto_hash_sha256_BYTES];
  crypto_hash_sha256_state st;
  size_t len = 0;
  char *body = gw_body(r, &len);
  const char *uri = evhttp_request_get_uri(r->req);
  crypto_hash_sha256_init(&st);
  crypto_hash_sha256_update(&st, (const unsigned char *)uri, strlen(uri) + 1);
  if (body)
    crypto_hash_sha256_update(&st, (const unsigned char *)body, len);
  crypto_hash_sha256_final(&st, h);
  free(body);
  sodium_bin2hex(p->hash, sizeof p->hash, h, sizeof h);
  snprintf(p->idem, sizeof p->idem, "%s", idem);
  return p;
}

/* ------------------------------------------------------------ the steps */

static void pub_step(struct pub *p);

static void on_idem(struct gw *gw, int rc, int status, const char *answer,
                    void *arg) {
  (void)gw;
  struct pub *p = arg;
  if (rc == LINLI_OK) {
    p->has_idem = 1;
    pub_step(p);
    return;
  }
  struct gw_req r = as_req(p);
  if (rc == 1) {
    evhttp_add_header(evhttp_request_get_output_headers(p->req),
                      "Idempotent-Replayed", "true");
    gw_reply_text(&r, status, answer);
  } else if (rc == 2) {
    gw_reply_error(&r, 409, "idempotency_in_flight",
                   "a request with this Idempotency-Key is still in flight; "
                   "retry shortly");
  } else if (rc == LINLI_ERR_CONFLICT) {
    gw_reply_error(&r, 409, "idempotency_key_reused",
                   "this Idempotency-Key was used with a different request");
  } else {
    gw_reply_error(&r, 503, "unavailable",
                   "shared state (Redis) is unreachable");
  }
  pub_free(p); /* nothing was claimed */
}

static void on_claim(struct gw *gw, int rc, int fresh, void *arg) {
  (void)gw;
  struct pub *p = arg;
  if (rc == LINLI_ERR_CONFLICT) {
    pub_fail(p, 409, "order_id_taken", "this order id is already in use");
    return;
  }
  if (rc != LINLI_OK) {
    redis_down(p);
    return;
  }
  if (fresh)
    snprintf(p->claimed_order, sizeof p->claimed_order, "%s", p->claim);
  pub_step(p);
}

/* The order must exist and belong to the caller's app. */
static void on_owner(struct gw *gw, int rc, const char *owner, void *arg) {
  (void)gw;
  struct pub *p = arg;
  if (rc == LINLI_OK && strcmp(owner, p->key->app_id) == 0)
    pub_step(p);
  else if (rc == LINLI_ERR_TRANSIENT)
    pub_fail(p, 503, "unavailable", "cannot look the order up right now");
  else /* another app's order answers exactly like an unknown one */
    pub_fail(p, 404, "not_found", "no such order");
}

/* Count the order against the user's cap on the campaign. */
static void on_cap(struct gw *gw, int rc, int added, void *arg) {
  struct pub *p = arg;
  if (rc == LINLI_ERR_TRANSIENT) {
    redis_down(p);
    return;
  }
  if (rc == LINLI_ERR_CONFLICT) {
    char msg[160];
    snprintf(msg, sizeof msg,
             "this user already has %lld orders in this campaign "
             "(gateway.campaign_user_cap)",
             (long long)gw->user_cap);
    pub_fail(p, 429, "user_cap_reached", msg);
    return;
  }
  if (added) {
    p->cap_added = 1;
    snprintf(p->cap_campaign, sizeof p->cap_campaign, "%s", p->campaign);
    snprintf(p->cap_user, sizeof p->cap_user, "%s", p->cap_for_user);
    snprintf(p->cap_order, sizeof p->cap_order, "%s", p->order);
  }
  pub_step(p);
}

/* Run the next step that applies; each answers through a callback that
 * comes back here, or fails the publish. */
static void pub_step(struct pub *p) {
  struct gw *gw = p->gw;
  for (;;) {
    switch (p->step++) {
    case STEP_IDEM:
      if (p->idem[0]) {
        gw_idem_begin(gw, p->key->app_id, p->idem, p->hash, on_idem, p);
        return;
      }
      break;
    case STEP_CLAIM:
      if (p->claim) {
        gw_order_claim(gw, p->claim, p->key->app_id, on_claim, p);
        return;
      }
      break;
    case STEP_OWN:
      if (p->own) {
        gw_order_owner(gw, p->own, on_owner, p);
        return;
      }
      break;
    case STEP_CAP:
      if (p->campaign) {
        gw_cap_take(gw, p->campaign, p->cap_for_user, p->order, on_cap, p);
        return;
      }
      break;
    default:
      p->send(p);
      return;
    }
  }
}

/* ---------------------------------------------------------- sending */

static void on_delivery(void *opaque, rd_kafka_resp_err_t err,
                        int32_t partition, int64_t offset) {
  struct pub *p = opaque;
  struct gw *gw = p->gw;
  gw->inflight--;
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    linli_counter_add(gw->m_kafka_failed, 1);
    LINLI_WARN("publish failed", "topic=%s event_id=%s err=%s", p->topic,
               p->event_id, rd_kafka_err2name(err));
    pub_fail(p, 503, "unavailable",
             "Kafka did not acknowledge the event; nothing was accepted");
    return;
  }
  linli_counter_add(gw->m_published, 1);
  json_t *body = json_pack("{s:s, s:s, s:s, s:i, s:I}", "event_id",
                           p->event_id, "topic", p->topic, "key", p->msg_key,
                           "partition", (int)partition, "offset",
                           (json_int_t)offset);
  char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
  json_decref(body);
  struct gw_req r = as_req(p);
  if (!text) {
    gw_reply_error(&r, 500, "internal", "out of memory");
    pub_free(p);
    return;
  }
  if (p->has_idem)
    gw_idem_done(gw, p->key->app_id, p->idem, p->hash, 202, text);
  gw_reply_text(&r, 202, text);
  free(text);
  pub_free(p);
}

/* Fill meta, pack envelope, send; answers 503 itself if the event cannot
 * even be queued. envelope's meta field is set here. p->m is freed once
 * packed: only the delivery report is awaited after this. */
static void pub_send(struct pub *p, const char *topic, const char *key,
                     ProtobufCMessage *envelope, Linli__Meta **meta_field) {
  Linli__Meta meta = LINLI__META__INIT;
  if (linli_id_new(p->event_id, sizeof p->event_id) != LINLI_OK) {
    pub_fail(p, 500, "internal", "cannot make an event id");
    return;
  }
  meta.event_id = p->event_id;
  meta.occurred_at_ms = linli_clock_now_ms();
  meta.producer = (char *)GW_PRODUCER;
  meta.trace_id = p->trace;
  meta.schema_version = LINLI_SCHEMA_VERSION;
  *meta_field = &meta;
  size_t len = protobuf_c_message_get_packed_size(envelope);
  uint8_t *buf = malloc(len ? len : 1);
  if (!buf) {
    *meta_field = NULL;
    pub_fail(p, 500, "internal", "out of memory");
    return;
  }
  protobuf_c_message_pack(envelope, buf);
  *meta_field = NULL;
  p->topic = topic;
  snprintf(p->msg_key, sizeof p->msg_key, "%s", key);
  /* key and envelope point into p->m: not used after this. */
  protobuf_c_message_free_unpacked(p->m, NULL);
  p->m = NULL;
  char err[256];
  int rc = linli_producer_send_async(p->gw->producer, topic,
                                     RD_KAFKA_PARTITION_UA, p->msg_key,
                                     strlen(p->msg_key), buf, len, NULL,
                                     on_delivery, p, 0, err, sizeof err);
  free(buf);
  if (rc != LINLI_OK) {
    LINLI_WARN("publish not queued", "topic=%s reason=\"%s\"", topic, err);
    linli_counter_add(p->gw->m_kafka_failed, 1);
    pub_fail(p, 503, "unavailable", "the event could not be queued for Kafka");
    return;
  }
  p->gw->inflight++;
}

/* -------------------------------------------------------------- orders */

static void send_order(struct pub *p) {
  Linli__OrderPlaced *o = (Linli__OrderPlaced *)p->m;
  Linli__OrderEvent ev = LINLI__ORDER_EVENT__INIT;
  ev.event_case = LINLI__ORDER_EVENT__EVENT_ORDER_PLACED;
  ev.order_placed = o;
  pub_send(p, LINLI_TOPIC_ORDERS, o->order_id, &ev.base, &ev.meta);
}

void gw_post_order(struct gw_req *r) {
  ProtobufCMessage *m = parse_body(r, &linli__order_placed__descriptor);
  if (!m)
    return;
  Linli__OrderPlaced *o = (Linli__OrderPlaced *)m;
  json_t *errs = json_array();
  if (o->app_id && o->app_id[0] && strcmp(o->app_id, r->key->app_id) != 0)
    gw_verr(errs, "app_id", "set by the gateway from the API key; omit it");
  else if (set_str(&o->app_id, r->key->app_id) != LINLI_OK)
    gw_verr(errs, "app_id", "out of memory");
  gw_validate_placed(errs, m, r->gw->max_lines);
  if (reject_invalid(r, errs)) {
    protobuf_c_message_free_unpacked(m, NULL);
    return;
  }
  if (o->total_fen == 0)
    for (size_t i = 0; i < o->n_lines; i++)
      o->total_fen += o->lines[i]->unit_price_fen * o->lines[i]->quantity;
  if (o->placed_at_ms == 0)
    o->placed_at_ms = linli_clock_now_ms();
  struct pub *p = pub_new(r, m, send_order);
  if (!p)
    return;
  p->claim = o->order_id;
  if (o->campaign_id && o->campaign_id[0]) {
    p->campaign = o->campaign_id;
    p->cap_for_user = o->user_id;
    p->order = o->order_id;
  }
  pub_step(p);
}

static void send_paid(struct pub *p) {
  Linli__OrderPaid *o = (Linli__OrderPaid *)p->m;
  Linli__OrderEvent ev = LINLI__ORDER_EVENT__INIT;
  ev.event_case = LINLI__ORDER_EVENT__EVENT_ORDER_PAID;
  ev.order_paid = o;
  pub_send(p, LINLI_TOPIC_ORDERS, o->order_id, &ev.base, &ev.meta);
}

void gw_post_payment(struct gw_req *r) {
  ProtobufCMessage *m = parse_body(r, &linli__order_paid__descriptor);
  if (!m)
    return;
  Linli__OrderPaid *o = (Linli__OrderPaid *)m;
  json_t *errs = json_array();
  path_id(r, &o->order_id, "order_id", errs);
  gw_validate_paid(errs, m);
  if (reject_invalid(r, errs)) {
    protobuf_c_message_free_unpacked(m, NULL);
    return;
  }
  if (o->paid_at_ms == 0)
    o->paid_at_ms = linli_clock_now_ms();
  struct pub *p = pub_new(r, m, send_paid);
  if (!p)
    return;
  p->own = o->order_id;
  pub_step(p);
}

static void send_cancelled(struct pub *p) {
  Linli__OrderCancelled *o = (Linli__OrderCancelled *)p->m;
  Linli__OrderEvent ev = LINLI__ORDER_EVENT__INIT;
  ev.event_case = LINLI__ORDER_EVENT__EVENT_ORDER_CANCELLED;
  ev.order_cancelled = o;
  pub_send(p, LINLI_TOPIC_ORDERS, o->order_id, &ev.base, &ev.meta);
}

void gw_post_cancel(struct gw_req *r) {
  ProtobufCMessage *m = parse_body(r, &linli__order_cancelled__descriptor);
  if (!m)
    return;
  Linli__OrderCancelled *o = (Linli__OrderCancelled *)m;
  json_t *errs = json_array();
  path_id(r, &o->order_id, "order_id", errs);
  gw_validate_cancelled(errs, m);
  if (reject_invalid(r, errs)) {
    protobuf_c_message_free_unpacked(m, NULL);
    return;
  }
  struct pub *p = pub_new(r, m, send_cancelled);
  if (!p)
    return;
  p->own = o->order_id;
  pub_step(p);
}

/* ----------------------------------------------------------- group-buys */

static void send_campaign(struct pub *p) {
  Linli__CampaignOpened *c = (Linli__CampaignOpened *)p->m;
  Linli__GroupBuyEvent ev = LINLI__GROUP_BUY_EVENT__INIT;
  ev.event_case = LINLI__GROUP_BUY_EVENT__EVENT_CAMPAIGN_OPENED;
  ev.campaign_opened = c;
  pub_send(p, LINLI_TOPIC_GROUPBUY, c->campaign_id, &ev.base, &ev.meta);
}

void gw_post_campaign(struct gw_req *r) {
  ProtobufCMessage *m = parse_body(r, &linli__campaign_opened__descriptor);
  if (!m)
    return;
  Linli__CampaignOpened *c = (Linli__CampaignOpened *)m;
  json_t *errs = json_array();
  /* Admins open campaigns for an app (app_id), by default their own. */
  if ((!c->app_id || !c->app_id[0]) &&
      set_str(&c->app_id, r->key->app_id) != LINLI_OK)
    gw_verr(errs, "app_id", "out of memory");
  gw_validate_campaign(errs, m);
  if (reject_invalid(r, errs)) {
    protobuf_c_message_free_unpacked(m, NULL);
    return;
  }
  struct pub *p = pub_new(r, m, send_campaign);
  if (p)
    pub_step(p);
}

static void send_joined(struct pub *p) {
  Linli__GroupBuyJoined *j = (Linli__GroupBuyJoined *)p->m;
  Linli__GroupBuyEvent ev = LINLI__GROUP_BUY_EVENT__INIT;
  ev.event_case = LINLI__GROUP_BUY_EVENT__EVENT_GROUP_BUY_JOINED;
  ev.group_buy_joined = j;
  pub_send(p, LINLI_TOPIC_GROUPBUY, j->campaign_id, &ev.base, &ev.meta);
}

void gw_post_join(struct gw_req *r) {
  ProtobufCMessage *m = parse_body(r, &linli__group_buy_joined__descriptor);
  if (!m)
    return;
  Linli__GroupBuyJoined *j = (Linli__GroupBuyJoined *)m;
  json_t *errs = json_array();
  path_id(r, &j->campaign_id, "campaign_id", errs);
  gw_validate_joined(errs, m);
  if (reject_invalid(r, errs)) {
    protobuf_c_message_free_unpacked(m, NULL);
    return;
  }
  struct pub *p = pub_new(r, m, send_joined);
  if (!p)
    return;
  p->own = j->order_id;
  p->campaign = j->campaign_id;
  p->cap_for_user = j->user_id;
  p->order = j->order_id;
  pub_step(p);
}

static void send_left(struct pub *p) {
  Linli__GroupBuyLeft *l = (Linli__GroupBuyLeft *)p->m;
  Linli__GroupBuyEvent ev = LINLI__GROUP_BUY_EVENT__INIT;
  ev.event_case = LINLI__GROUP_BUY_EVENT__EVENT_GROUP_BUY_LEFT;
  ev.group_buy_left = l;
  pub_send(p, LINLI_TOPIC_GROUPBUY, l->campaign_id, &ev.base, &ev.meta);
}

void gw_post_leave(struct gw_req *r) {
  ProtobufCMessage *m = parse_body(r, &linli__group_buy_left__descriptor);
  if (!m)
    return;
  Linli__GroupBuyLeft *l = (Linli__GroupBuyLeft *)m;
  json_t *errs = json_array();
  path_id(r, &l->campaign_id, "campaign_id", errs);
  gw_validate_left(errs, m);
  if (reject_invalid(r, errs)) {
    protobuf_c_message_free_unpacked(m, NULL);
    return;
  }
  struct pub *p = pub_new(r, m, send_left);
  if (!p)
    return;
  p->own = l->order_id;
  pub_step(p);
}

/* ---------------------------------------------- deliveries, admin feeds */

static const char *delivery_order(const Linli__DeliveryEvent *e) {
  switch (e->event_case) {
  case LINLI__DELIVERY_EVENT__EVENT_OUT_FOR_DELIVERY:
    return e->out_for_delivery->order_id;
  case LINLI__DELIVERY_EVENT__EVENT_ARRIVED_AT_PICKUP_POINT:
    return e->arrived_at_pickup_point->order_id;
  case LINLI__DELIVERY_EVENT__EVENT_PICKED_UP:
    return e->picked_up->order_id;
  case LINLI__DELIVERY_EVENT__EVENT_DELIVERED:
    return e->delivered->order_id;
  case LINLI__DELIVERY_EVENT__EVENT_DELIVERY_FAILED:
    return e->delivery_failed->order_id;
  default:
    return "";
  }
}

static void send_delivery(struct pub *p) {
  /* The body is the envelope itself, without meta. */
  Linli__DeliveryEvent *e = (Linli__DeliveryEvent *)p->m;
  pub_send(p, LINLI_TOPIC_DELIVERY, delivery_order(e), p->m, &e->meta);
}

void gw_post_delivery(struct gw_req *r) {
  /* The body is the envelope without meta: {"delivered": {...}}. */
  ProtobufCMessage *m = parse_body(r, &linli__delivery_event__descriptor);
  if (!m)
    return;
  json_t *errs = json_array();
  gw_validate_delivery(errs, m);
  if (reject_invalid(r, errs)) {
    protobuf_c_message_free_unpacked(m, NULL);
    return;
  }
  struct pub *p = pub_new(r, m, send_delivery);
  if (p)
    pub_step(p);
}

static void send_sku(struct pub *p) {
  Linli__Sku *s = (Linli__Sku *)p->m;
  Linli__CatalogEvent ev = LINLI__CATALOG_EVENT__INIT;
  ev.event_case = LINLI__CATALOG_EVENT__EVENT_SKU;
  ev.sku = s;
  pub_send(p, LINLI_TOPIC_CATALOG, s->sku_id, &ev.base, &ev.meta);
}

void gw_post_sku(struct gw_req *r) {
  ProtobufCMessage *m = parse_body(r, &linli__sku__descriptor);
  if (!m)
    return;
  json_t *errs = json_array();
  gw_validate_sku(errs, m);
  if (reject_invalid(r, errs)) {
    protobuf_c_message_free_unpacked(m, NULL);
    return;
  }
  struct pub *p = pub_new(r, m, send_sku);
  if (p)
    pub_step(p);
}

static void send_adjustment(struct pub *p) {
  Linli__StockAdjusted *a = (Linli__StockAdjusted *)p->m;
  Linli__InventoryEvent ev = LINLI__INVENTORY_EVENT__INIT;
  ev.event_case = LINLI__INVENTORY_EVENT__EVENT_STOCK_ADJUSTED;
  ev.stock_adjusted = a;
  pub_send(p, LINLI_TOPIC_INVENTORY, a->warehouse_id, &ev.base, &ev.meta);
}

void gw_post_adjustment(struct gw_req *r) {
  ProtobufCMessage *m = parse_body(r, &linli__stock_adjusted__descriptor);
  if (!m)
    return;
  json_t *errs = json_array();
  gw_validate_adjustment(errs, m);
  if (reject_invalid(r, errs)) {
    protobuf_c_message_free_unpacked(m, NULL);
    return;
  }
  struct pub *p = pub_new(r, m, send_adjustment);
  if (p)
    pub_step(p);
}
