/*
 * gateway.h - linli-gateway: the HTTP front door through which upstream
 * apps, logistics partners and admins publish events to Kafka and read
 * orders back (docs/api.md). One libevent loop serves everything: the
 * idempotent producer is polled from a timer and each publish request is
 * answered from its delivery report, so a 202 always means "acknowledged by
 * every in-sync replica".
 *
 * Shared state between the gateway's files lives in struct gw; each file
 * owns one concern: main.c (start-up, loop), http.c (routing, replies,
 * auth), keys.c (API keys), guard.c (Redis: idempotency, rate limit, caps,
 * order ownership), publish.c (POST endpoints), validate.c (field rules),
 * reads.c (GET from PostgreSQL), sse.c (order-status stream).
 */
#ifndef LINLI_GATEWAY_H
#define LINLI_GATEWAY_H

#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <event2/http.h>
#include <jansson.h>
#include <protobuf-c/protobuf-c.h>

#include "linli/config.h"
#include "linli/kafka.h"
#include "linli/metrics.h"
#include "linli/pg.h"
#include "linli/redis.h"

#define GW_PRODUCER "linli-gateway"

/* Roles of API keys; a route lists the roles it admits. */
enum gw_role { GW_ROLE_APP = 1, GW_ROLE_LOGISTICS = 2, GW_ROLE_ADMIN = 4 };

struct gw_key {
  char app_id[65];
  int role;
  unsigned char hash[32]; /* SHA-256 of the bearer token */
};

struct gw_keys {
  size_t n;
  struct gw_key *k;
};

struct sse; /* sse.c */

struct gw {
  linli_config_t *cfg;
  struct event_base *base;
  struct evhttp *http;
  linli_producer_t *producer;
  linli_redis_t *redis;
  linli_pg_t *pg; /* NULL until connected; reads answer 503 without it */
  struct gw_keys keys;
  struct sse *sse;
  struct event *poll_ev;
  int port; /* bound port */
  int max_lines;
  int64_t rate_limit;
  int64_t user_cap;
  int64_t idem_ttl_s;
  int inflight; /* publish requests waiting for Kafka */
  linli_redis_script_t *rl_script;
  linli_redis_script_t *cap_script;
  linli_counter_t *m_requests[6]; /* by status class: 2xx..5xx, index 2..5 */
  linli_counter_t *m_published;
  linli_counter_t *m_kafka_failed;
  linli_histogram_t *m_latency;
};

/* A request as the handlers see it: authenticated, routed. */
struct gw_req {
  struct gw *gw;
  struct evhttp_request *req;
  const struct gw_key *key; /* NULL for open routes (/healthz, /metrics) */
  const char *param;        /* the {id} path segment, or NULL */
  char param_buf[65];
  int64_t started_us;
};

/* ------------------------------------------------------------- http.c */
int gw_http_start(struct gw *gw, char *err, size_t errlen);
void gw_http_stop(struct gw *gw);
/* Print "METHOD /path/{id}" for every route (for --routes and the test that
 * checks docs/openapi.yaml against the server). */
void gw_http_print_routes(void);

/* Send a JSON reply (takes a reference of body: the caller's is consumed)
 * and count it. */
void gw_reply_json(struct gw_req *r, int status, json_t *body);
/* {"error": code, "message": msg} with status. */
void gw_reply_error(struct gw_req *r, int status, const char *code,
                    const char *msg);
/* Reply from a raw JSON text (idempotent replays). */
void gw_reply_text(struct gw_req *r, int status, const char *json_text);
/* The request body as a NUL-terminated copy (malloc'd), its length in *len. */
char *gw_body(struct gw_req *r, size_t *len);
/* A request header (case-insensitive), or NULL. */
const char *gw_header(struct gw_req *r, const char *name);

/* ------------------------------------------------------------- keys.c */
int gw_keys_load(struct gw_keys *keys, const char *path, char *err,
                 size_t errlen);
void gw_keys_free(struct gw_keys *keys);
/* The key whose token is token (constant-time over every key), or NULL. */
const struct gw_key *gw_keys_find(const struct gw_keys *keys,
                                  const char *token);
int gw_role_parse(const char *s);
const char *gw_role_name(int role);

/* ------------------------------------------------------------ guard.c */
int gw_guard_init(struct gw *gw, char *err, size_t errlen);
/* 0 allowed; >0 denied: seconds to wait (Retry-After); <0 Redis down. */
int gw_rate_check(struct gw *gw, const struct gw_key *key);
/* Per-user cap on the orders (placed or joined) one user sends to one
 * campaign: LINLI_OK (*added = 1 if order_id was counted now),
 * LINLI_ERR_CONFLICT over the cap, LINLI_ERR_TRANSIENT. */
int gw_cap_take(struct gw *gw, const char *campaign_id, const char *user_id,
                const char *order_id, int *added);
void gw_cap_give_back(struct gw *gw, const char *campaign_id,
                      const char *user_id, const char *order_id);

/* Idempotency: begin claims key for (app, idem_key) with the request hash.
 * LINLI_OK: claimed, go on (finish with gw_idem_done or gw_idem_abort).
 * LINLI_ERR_CONFLICT: the same key with another body (409).
 * LINLI_ERR_NOTFOUND never. 1: a recorded answer exists (*status, *body
 * malloc'd, to replay). 2: the first request is still in flight (409).
 * LINLI_ERR_TRANSIENT: Redis unreachable. */
int gw_idem_begin(struct gw *gw, const char *app_id, const char *idem_key,
                  const char *req_hash, int *status, char **body);
void gw_idem_done(struct gw *gw, const char *app_id, const char *idem_key,
                  const char *req_hash, int status, const char *body);
void gw_idem_abort(struct gw *gw, const char *app_id, const char *idem_key);

/* Order ownership (tenant isolation): the app that placed order_id.
 * LINLI_OK with app in buf; LINLI_ERR_NOTFOUND; LINLI_ERR_TRANSIENT. */
int gw_order_owner(struct gw *gw, const char *order_id, char *app,
                   size_t applen);
/* Claim order_id for app before publishing OrderPlaced: LINLI_OK (claimed
 * now, *fresh = 1, or already ours), LINLI_ERR_CONFLICT (another app's). */
int gw_order_claim(struct gw *gw, const char *order_id, const char *app,
                   int *fresh);
void gw_order_unclaim(struct gw *gw, const char *order_id);

/* ---------------------------------------------------------- publish.c */
void gw_post_order(struct gw_req *r);
void gw_post_payment(struct gw_req *r);
void gw_post_cancel(struct gw_req *r);
void gw_post_campaign(struct gw_req *r);
void gw_post_join(struct gw_req *r);
void gw_post_leave(struct gw_req *r);
void gw_post_delivery(struct gw_req *r);
void gw_post_sku(struct gw_req *r);
void gw_post_adjustment(struct gw_req *r);

/* --------------------------------------------------------- validate.c */
/* Field errors collect into a JSON array of {"field","reason"}. */
void gw_verr(json_t *errs, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void gw_check_id(json_t *errs, const char *field, const char *v);
void gw_check_opt_id(json_t *errs, const char *field, const char *v);
void gw_check_text(json_t *errs, const char *field, const char *v,
                   size_t max);
/* Member message checks; field names are relative to the request body. */
void gw_validate_placed(json_t *errs, const ProtobufCMessage *m,
                        int max_lines);
void gw_validate_paid(json_t *errs, const ProtobufCMessage *m);
void gw_validate_cancelled(json_t *errs, const ProtobufCMessage *m);
void gw_validate_campaign(json_t *errs, const ProtobufCMessage *m);
void gw_validate_joined(json_t *errs, const ProtobufCMessage *m);
void gw_validate_left(json_t *errs, const ProtobufCMessage *m);
void gw_validate_delivery(json_t *errs, const ProtobufCMessage *envelope);
void gw_validate_sku(json_t *errs, const ProtobufCMessage *m);
void gw_validate_adjustment(json_t *errs, const ProtobufCMessage *m);

/* ------------------------------------------------------------ reads.c */
int gw_reads_init(struct gw *gw, char *err, size_t errlen);
/* orders.app_id of order_id from the record: LINLI_OK, LINLI_ERR_NOTFOUND,
 * LINLI_ERR_TRANSIENT (PostgreSQL unreachable). */
int gw_pg_order_app(struct gw *gw, const char *order_id, char *app,
                    size_t applen);
void gw_get_order(struct gw_req *r);
void gw_list_orders(struct gw_req *r);

/* -------------------------------------------------------------- sse.c */
int gw_sse_start(struct gw *gw, char *err, size_t errlen);
void gw_sse_stop(struct gw *gw);
void gw_get_stream(struct gw_req *r);

#endif
