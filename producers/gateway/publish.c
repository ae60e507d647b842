/*
 * publish.c - the gateway's POST endpoints: body -> protobuf message
 * (linli/json.h), field rules (validate.c), then every guard in one Redis
 * round trip (guard.c: rate limit, Idempotency-Key, order-id claim or
 * ownership, the campaign's app, per-user cap), then one event to its
 * topic.
 *
 * The event is built and packed (event id, meta) before the guard runs,
 * because a request with an Idempotency-Key stores the packed event with
 * its key: a retry whose first publish had an unknown outcome republishes
 * exactly the same bytes under the same event id, so consumers see one
 * event however often it is written.
 *
 * The answer is sent from the producer's delivery report (polled from a
 * libevent timer in main.c), at the latest gateway.publish_timeout_ms
 * after the send (the producer's message.timeout.ms):
 *   202 with the event id once Kafka acknowledged the write (acks=all,
 *       idempotent producer);
 *   503 when librdkafka says the event was NOT persisted (or it could not
 *       even be queued): the claims are undone and a retry starts afresh;
 *   504 "outcome_unknown" otherwise (a timeout, or "possibly persisted"):
 *       the event may be in the log. Nothing is undone; a retry with the
 *       same Idempotency-Key republishes the same event (docs/api.md).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <sodium.h>

#include "catalog.pb-c.h"
#include "delivery.pb-c.h"
#include "domain/orders.h"
#include "gateway.h"
#include "groupbuy.pb-c.h"
#include "inventory.pb-c.h"
#include "linli/clock.h"
#include "linli/error.h"
#include "linli/ids.h"
#include "linli/json.h"
#include "linli/log.h"
#include "domain/event_ids.h"
#include "domain/schema.h"
#include "orders.pb-c.h"

#define IDEM_MAX 255

/* One publish in flight: everything needed to go on, to answer and to
 * undo. */
struct pub {
  struct gw *gw;
  struct evhttp_request *req;
  const struct gw_key *key;
  int64_t started_us;
  ProtobufCMessage *m; /* the parsed body (owned; the guard reads its ids) */
  void (*build)(struct pub *p); /* packs the envelope (pub_pack) */
  struct gw_guard_req q;        /* what the guard checks (points into m) */
  char trace[65];
  const char *topic;
  char event_id[LINLI_ID_BUFSZ];
  char msg_key[LINLI_ID_BUFSZ];
  uint8_t *payload; /* the packed envelope (owned) */
  size_t len;
  char *payload64; /* base64 of payload, kept with the Idempotency-Key */
  int has_idem;
  char idem[IDEM_MAX + 1];
  char hash[65];
  int rate_checked; /* the guard counted this request's rate already */
  /* The record's word on a claimed order id (POST /v1/orders asks
   * PostgreSQL at the same time as Redis): 0 waiting or not asked, 1 free
   * or ours, 2 another app's. */
  int pg_asked, pg_waiting, pg_other;
  int guard_waiting;
  struct gw_guard_res res; /* the guard's answer (ints only kept) */
  char *done_body;         /* GW_G_DONE: the recorded answer */
  /* Claims taken now, undone when nothing was written. */
  int order_fresh, campaign_fresh, cap_added;
  int republished; /* sending the stored event of an unknown outcome */
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
  free(p->payload);
  free(p->payload64);
  free(p->done_body);
  free(p);
}

/* Undo the claims taken now, answer with an error, free. Only for
 * answers that promise nothing was written. */
static void pub_fail(struct pub *p, int status, const char *code,
                     const char *msg) {
  struct gw *gw = p->gw;
  if (p->order_fresh)
    gw_order_unclaim(gw, p->q.order);
  if (p->campaign_fresh)
    gw_campaign_unclaim(gw, p->q.campaign);
  if (p->cap_added)
    gw_cap_give_back(gw, p->q.app, p->q.campaign, p->q.cap_user,
                     p->q.cap_member);
  if (p->has_idem && !p->republished)
    gw_idem_abort(gw, p->key->app_id, p->idem);
  struct gw_req r = as_req(p);
  gw_reply_error(&r, status, code, msg);
  pub_free(p);
}

/* --------------------------------------------------------------- body */

/* Parse the body as desc; on failure answers 400 (or 415) and returns NULL. */
static ProtobufCMessage *parse_body(struct gw_req *r,
                                    const ProtobufCMessageDescriptor *desc) {
  /* application/json, optionally with parameters (charset=utf-8). */
  const char *ct = gw_header(r, "Content-Type");
  if (!ct || strncasecmp(ct, "application/json", 16) != 0 ||
      (ct[16] != '\0' && ct[16] != ';' && ct[16] != ' ')) {
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
                           void (*build)(struct pub *p)) {
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
  p->build = build;
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
  p->has_idem = 1;
  return p;
}

/* ------------------------------------------------------------ the steps */

static void pub_guard(struct pub *p);
static void pub_produce(struct pub *p);

/* The order is not in Redis (placed through another producer, or long
 * ago): the record decides, then the guard runs again without that check. */
static void on_owner_pg(struct gw *gw, int rc, const char *app, void *arg) {
  (void)gw;
  struct pub *p = arg;
  if (rc == LINLI_OK && strcmp(app, p->key->app_id) == 0) {
    p->q.order_mode = GW_ORDER_NONE;
    pub_guard(p);
  } else if (rc == LINLI_ERR_TRANSIENT) {
    pub_fail(p, 503, "unavailable", "cannot look the order up right now");
  } else { /* another app's order answers exactly like an unknown one */
    pub_fail(p, 404, "not_found", "no such order");
  }
}

static void on_campaign_pg(struct gw *gw, int rc, const char *app,
                           void *arg) {
  (void)gw;
  struct pub *p = arg;
  if (rc == LINLI_OK && strcmp(app, p->key->app_id) == 0) {
    p->q.campaign_mode = GW_CAMPAIGN_NONE;
    pub_guard(p);
  } else if (rc == LINLI_ERR_TRANSIENT) {
    pub_fail(p, 503, "unavailable", "cannot look the campaign up right now");
  } else { /* another app's campaign answers like an unknown one */
    pub_fail(p, 404, "not_found", "no such campaign");
  }
}

/* Both answers are in (the guard's, and the record's when asked). */
static void pub_decide(struct pub *p) {
  struct gw *gw = p->gw;
  struct gw_req r = as_req(p);
  const struct gw_guard_res *res = &p->res;
  char msg[200];
  switch (res->rc) {
  case GW_G_OK:
    p->order_fresh = res->order_fresh;
    p->campaign_fresh = res->campaign_fresh;
    p->cap_added = res->cap_added;
    if (p->pg_other && p->order_fresh) {
      /* Redis lost the claim of an order the record holds. */
      pub_fail(p, 409, "order_id_taken", "this order id is already in use");
      return;
    }
    pub_produce(p);
    return;
  case GW_G_REPUB:
    p->republished = 1;
    pub_produce(p);
    return;
  case GW_G_DONE:
    evhttp_add_header(evhttp_request_get_output_headers(p->req),
                      "Idempotent-Replayed", "true");
    gw_reply_text(&r, res->status, p->done_body);
    break;
  case GW_G_RATE:
    evhttp_add_header(evhttp_request_get_output_headers(p->req),
                      "Retry-After", "1");
    gw_reply_error(&r, 429, "rate_limited",
                   "too many requests for this API key "
                   "(gateway.rate_limit_per_s)");
    break;
  case GW_G_BUSY:
    gw_reply_error(&r, 409, "idempotency_in_flight",
                   "a request with this Idempotency-Key is still in flight; "
                   "retry shortly");
    break;
  case GW_G_REUSED:
    gw_reply_error(&r, 409, "idempotency_key_reused",
                   "this Idempotency-Key was used with a different request");
    break;
  case GW_G_TAKEN:
    gw_reply_error(&r, 409, "order_id_taken",
                   "this order id is already in use");
    break;
  case GW_G_NOOWNER:
    gw_pg_order_app(gw, p->q.order, on_owner_pg, p);
    return;
  case GW_G_NOTOURS:
    gw_reply_error(&r, 404, "not_found", "no such order");
    break;
  case GW_G_NOCAMPAIGN:
    gw_pg_campaign_app(gw, p->q.campaign, on_campaign_pg, p);
    return;
  case GW_G_CAMPAIGN_NOTOURS:
    gw_reply_error(&r, 404, "not_found", "no such campaign");
    break;
  case GW_G_CAMPAIGN_TAKEN:
    gw_reply_error(&r, 409, "campaign_id_taken",
                   "this campaign id belongs to another app");
    break;
  case GW_G_CAP:
    snprintf(msg, sizeof msg,
             "this user already has %lld orders in this campaign "
             "(gateway.campaign_user_cap)",
             (long long)gw->user_cap);
    gw_reply_error(&r, 429, "user_cap_reached", msg);
    break;
  case GW_G_DOWN:
  default:
    gw_reply_error(&r, 503, "unavailable",
                   "shared state (Redis) is unreachable");
    break;
  }
  pub_free(p); /* nothing was claimed */
}

static void on_guard(struct gw *gw, const struct gw_guard_res *res,
                     void *arg) {
  (void)gw;
  struct pub *p = arg;
  p->guard_waiting = 0;
  p->res = *res;
  p->res.body = p->res.event_id = p->res.payload64 = NULL;
  if (res->rc == GW_G_DONE && !(p->done_body = strdup(res->body)))
    p->res.rc = GW_G_DOWN;
  if (res->rc == GW_G_REPUB) {
    /* The stored event replaces the one built for this request. */
    size_t cap = strlen(res->payload64), n = 0;
    uint8_t *bin = malloc(cap ? cap : 1);
    if (!bin || !linli_id_valid(res->event_id) ||
        sodium_base642bin(bin, cap, res->payload64, cap, NULL, &n, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0) {
      free(bin);
      LINLI_WARN("stored event unreadable", "event_id=%.64s",
                 res->event_id);
      p->res.rc = GW_G_DOWN;
    } else {
      free(p->payload);
      p->payload = bin;
      p->len = n;
      snprintf(p->event_id, sizeof p->event_id, "%s", res->event_id);
    }
  }
  if (!p->pg_waiting)
    pub_decide(p);
}

static void on_claim_pg(struct gw *gw, int rc, const char *app, void *arg) {
  (void)gw;
  struct pub *p = arg;
  p->pg_waiting = 0;
  /* Not in the record, or the record unreachable: the Redis claim holds
   * (the ledger checks the record again). */
  p->pg_other = rc == LINLI_OK && strcmp(app, p->key->app_id) != 0;
  if (!p->guard_waiting)
    pub_decide(p);
}

static void pub_guard(struct pub *p) {
  p->guard_waiting = 1;
  p->q.rate_key = p->rate_checked ? NULL : p->key;
  p->rate_checked = 1;
  gw_guard(p->gw, &p->q, on_guard, p);
}

/* Build the event, then the guard; POST /v1/orders asks the record about
 * its order id at the same time (Redis may have lost an old claim). */
static void pub_start(struct pub *p) {
  p->build(p);
  if (!p->payload)
    return; /* build answered */
  if (p->has_idem) {
    size_t n = sodium_base64_encoded_len(p->len,
                                         sodium_base64_VARIANT_ORIGINAL);
    p->payload64 = malloc(n);
    if (!p->payload64) {
      pub_fail(p, 500, "internal", "out of memory");
      return;
    }
    sodium_bin2base64(p->payload64, n, p->payload, p->len,
                      sodium_base64_VARIANT_ORIGINAL);
    p->q.idem = p->idem;
    p->q.hash = p->hash;
    p->q.payload64 = p->payload64;
  }
  p->q.app = p->key->app_id;
  p->q.event_id = p->event_id;
  if (p->q.order_mode == GW_ORDER_CLAIM) {
    p->pg_asked = p->pg_waiting = 1;
    gw_pg_order_app_batched(p->gw, p->q.order, on_claim_pg, p);
  }
  pub_guard(p);
}

/* ---------------------------------------------------------- sending */

static void on_delivery(void *opaque, rd_kafka_resp_err_t err,
                        rd_kafka_msg_status_t status, int32_t partition,
                        int64_t offset) {
  struct pub *p = opaque;
  struct gw *gw = p->gw;
  gw->inflight--;
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    linli_counter_add(gw->m_kafka_failed, 1);
    LINLI_WARN("publish failed", "topic=%s event_id=%s err=%s status=%d",
               p->topic, p->event_id, rd_kafka_err2name(err), (int)status);
    /* A republished event may have been written by its first send. */
    if (status == RD_KAFKA_MSG_STATUS_NOT_PERSISTED && !p->republished) {
      pub_fail(p, 503, "unavailable",
               "Kafka did not accept the event; nothing was written and a "
               "retry is safe");
      return;
    }
    if (p->has_idem)
      gw_idem_unknown(gw, p->key->app_id, p->idem, p->hash);
    struct gw_req r = as_req(p);
    gw_reply_json(
        &r, 504,
        json_pack("{s:s, s:s, s:s, s:s}", "error", "outcome_unknown",
                  "message",
                  "Kafka did not acknowledge the event in time: it may or "
                  "may not have been written. Retry with the same "
                  "Idempotency-Key to publish the same event again "
                  "(docs/api.md)",
                  "event_id", p->event_id, "topic", p->topic));
    pub_free(p);
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

/* Fill meta and pack the envelope into p->payload (answers 500 itself on
 * failure, leaving p->payload NULL). envelope's meta field is set here and
 * cleared again; envelope points into p->m. */
static void pub_pack(struct pub *p, const char *topic, const char *key,
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
  p->payload = buf;
  p->len = len;
}

static void pub_produce(struct pub *p) {
  char err[256];
  int rc = linli_producer_send_async_status(
      p->gw->producer, p->topic, RD_KAFKA_PARTITION_UA, p->msg_key,
      strlen(p->msg_key), p->payload, p->len, NULL, on_delivery, p, 0, err,
      sizeof err);
  if (rc != LINLI_OK) {
    LINLI_WARN("publish not queued", "topic=%s reason=\"%s\"", p->topic, err);
    linli_counter_add(p->gw->m_kafka_failed, 1);
    if (!p->republished) {
      pub_fail(p, 503, "unavailable",
               "the event could not be queued for Kafka; nothing was "
               "written");
      return;
    }
    /* The stored event's first send may still be in the log. */
    if (p->has_idem)
      gw_idem_unknown(p->gw, p->key->app_id, p->idem, p->hash);
    struct gw_req r = as_req(p);
    gw_reply_error(&r, 504, "outcome_unknown",
                   "the event could not be queued again; its first publish "
                   "may be in the log: retry with the same Idempotency-Key");
    pub_free(p);
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
  pub_pack(p, LINLI_TOPIC_ORDERS, o->order_id, &ev.base, &ev.meta);
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
  /* dom_order_check_placed bounded the sum: it cannot overflow. */
  if (o->total_fen == 0 && dom_order_total(o, &o->total_fen) != LINLI_OK) {
    gw_reply_error(r, 400, "invalid_request", "the order total overflows");
    protobuf_c_message_free_unpacked(m, NULL);
    return;
  }
  if (o->placed_at_ms == 0)
    o->placed_at_ms = linli_clock_now_ms();
  struct pub *p = pub_new(r, m, send_order);
  if (!p)
    return;
  p->q.order_mode = GW_ORDER_CLAIM;
  p->q.order = o->order_id;
  if (o->campaign_id && o->campaign_id[0]) {
    p->q.campaign_mode = GW_CAMPAIGN_CHECK;
    p->q.campaign = o->campaign_id;
    p->q.cap_user = o->user_id;
    p->q.cap_member = o->order_id;
  }
  pub_start(p);
}

static void send_paid(struct pub *p) {
  Linli__OrderPaid *o = (Linli__OrderPaid *)p->m;
  Linli__OrderEvent ev = LINLI__ORDER_EVENT__INIT;
  ev.event_case = LINLI__ORDER_EVENT__EVENT_ORDER_PAID;
  ev.order_paid = o;
  pub_pack(p, LINLI_TOPIC_ORDERS, o->order_id, &ev.base, &ev.meta);
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
  p->q.order_mode = GW_ORDER_OWN;
  p->q.order = o->order_id;
  pub_start(p);
}

static void send_cancelled(struct pub *p) {
  Linli__OrderCancelled *o = (Linli__OrderCancelled *)p->m;
  Linli__OrderEvent ev = LINLI__ORDER_EVENT__INIT;
  ev.event_case = LINLI__ORDER_EVENT__EVENT_ORDER_CANCELLED;
  ev.order_cancelled = o;
  pub_pack(p, LINLI_TOPIC_ORDERS, o->order_id, &ev.base, &ev.meta);
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
  p->q.order_mode = GW_ORDER_OWN;
  p->q.order = o->order_id;
  pub_start(p);
}

/* ----------------------------------------------------------- group-buys */

static void send_campaign(struct pub *p) {
  Linli__CampaignOpened *c = (Linli__CampaignOpened *)p->m;
  Linli__GroupBuyEvent ev = LINLI__GROUP_BUY_EVENT__INIT;
  ev.event_case = LINLI__GROUP_BUY_EVENT__EVENT_CAMPAIGN_OPENED;
  ev.campaign_opened = c;
  pub_pack(p, LINLI_TOPIC_GROUPBUY, c->campaign_id, &ev.base, &ev.meta);
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
  if (!p)
    return;
  /* The campaign belongs to its app: other apps' orders and joins 404. */
  p->q.campaign_mode = GW_CAMPAIGN_OPEN;
  p->q.campaign = c->campaign_id;
  p->q.campaign_app = c->app_id;
  pub_start(p);
}

static void send_joined(struct pub *p) {
  Linli__GroupBuyJoined *j = (Linli__GroupBuyJoined *)p->m;
  Linli__GroupBuyEvent ev = LINLI__GROUP_BUY_EVENT__INIT;
  ev.event_case = LINLI__GROUP_BUY_EVENT__EVENT_GROUP_BUY_JOINED;
  ev.group_buy_joined = j;
  pub_pack(p, LINLI_TOPIC_GROUPBUY, j->campaign_id, &ev.base, &ev.meta);
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
  p->q.order_mode = GW_ORDER_OWN;
  p->q.order = j->order_id;
  p->q.campaign_mode = GW_CAMPAIGN_CHECK;
  p->q.campaign = j->campaign_id;
  p->q.cap_user = j->user_id;
  p->q.cap_member = j->order_id;
  pub_start(p);
}

static void send_left(struct pub *p) {
  Linli__GroupBuyLeft *l = (Linli__GroupBuyLeft *)p->m;
  Linli__GroupBuyEvent ev = LINLI__GROUP_BUY_EVENT__INIT;
  ev.event_case = LINLI__GROUP_BUY_EVENT__EVENT_GROUP_BUY_LEFT;
  ev.group_buy_left = l;
  pub_pack(p, LINLI_TOPIC_GROUPBUY, l->campaign_id, &ev.base, &ev.meta);
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
  p->q.order_mode = GW_ORDER_OWN;
  p->q.order = l->order_id;
  p->q.campaign_mode = GW_CAMPAIGN_CHECK;
  p->q.campaign = l->campaign_id;
  pub_start(p);
}

/* ---------------------------------------------- deliveries, admin feeds */

static void send_delivery(struct pub *p) {
  /* The body is the envelope itself, without meta. */
  Linli__DeliveryEvent *e = (Linli__DeliveryEvent *)p->m;
  pub_pack(p, LINLI_TOPIC_DELIVERY, dom_delivery_order_id(e), p->m, &e->meta);
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
    pub_start(p);
}

static void send_sku(struct pub *p) {
  Linli__Sku *s = (Linli__Sku *)p->m;
  Linli__CatalogEvent ev = LINLI__CATALOG_EVENT__INIT;
  ev.event_case = LINLI__CATALOG_EVENT__EVENT_SKU;
  ev.sku = s;
  pub_pack(p, LINLI_TOPIC_CATALOG, s->sku_id, &ev.base, &ev.meta);
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
    pub_start(p);
}

static void send_adjustment(struct pub *p) {
  Linli__StockAdjusted *a = (Linli__StockAdjusted *)p->m;
  Linli__InventoryEvent ev = LINLI__INVENTORY_EVENT__INIT;
  ev.event_case = LINLI__INVENTORY_EVENT__EVENT_STOCK_ADJUSTED;
  ev.stock_adjusted = a;
  pub_pack(p, LINLI_TOPIC_INVENTORY, a->warehouse_id, &ev.base, &ev.meta);
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
    pub_start(p);
}
