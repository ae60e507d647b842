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
 * auth), keys.c (API keys), rds.c (the non-blocking Redis connection),
 * pgq.c (non-blocking PostgreSQL queries), guard.c (Redis: idempotency,
 * rate limit, caps, order ownership), publish.c (POST endpoints),
 * validate.c (field rules), reads.c (GET from PostgreSQL), sse.c
 * (order-status stream).
 *
 * Nothing on the loop waits for Redis or PostgreSQL: a request that needs
 * them parks in a small heap context and goes on from the answer's
 * callback (guard.c's and reads.c's functions take a callback).
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
#include <hiredis/hiredis.h>
#include <libpq-fe.h>

#define GW_PRODUCER "linli-gateway"
/* A Redis connection with commands outstanding and no reply for this long
 * is dropped: its requests answer 503 and it reconnects. */
#define GW_REDIS_TIMEOUT_MS 2000
/* The same for a PostgreSQL query (its connection is closed and opened
 * again), and the number of PostgreSQL connections. */
#define GW_PG_TIMEOUT_MS 2000
#define GW_PG_CONNS 4

/* Roles of API keys; a route lists the roles it admits. */
/* warehouse: warehouse staff (sorting lists). */
enum gw_role {
  GW_ROLE_APP = 1,
  GW_ROLE_LOGISTICS = 2,
  GW_ROLE_ADMIN = 4,
  GW_ROLE_WAREHOUSE = 8
};

struct gw_key {
  char app_id[65];
  int role;
  unsigned char hash[32]; /* SHA-256 of the bearer token */
};

struct gw_keys {
  size_t n;
  struct gw_key *k;
};

struct sse;      /* sse.c */
struct gb_stream; /* groupbuys.c */
struct gw_redis; /* rds.c */
struct gw_pg;    /* pgq.c */
struct gw_conns; /* conn.c */
struct bufferevent;

struct gw {
  linli_config_t *cfg;
  struct event_base *base;
  struct evhttp *http;
  linli_producer_t *producer;
  struct gw_redis *rds;
  struct gw_pg *pgq;
  struct gw_keys keys;
  struct gw_conns *conns;
  struct sse *sse;
  struct gb_stream *gb_streams; /* groupbuys.c: open group-buy streams */
  struct event *poll_ev;
  struct event *drain_ev; /* SIGTERM: waits for parked requests */
  struct evhttp_bound_socket *listener;
  int stopping; /* SIGTERM seen: draining */
  int port;     /* bound port */
  int max_lines;
  int64_t rate_limit;
  int64_t user_cap;
  int64_t idem_ttl_s;
  int64_t publish_timeout_ms; /* message.timeout.ms of the producer */
  int inflight; /* publish requests waiting for Kafka */
  struct ob_item *ob_head, **ob_tail; /* reads.c: owner look-ups to batch */
  int ob_n;
  struct event *ob_ev;
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
  const char *param2;       /* the {wave} path segment, or NULL */
  char param2_buf[65];
  int64_t started_us;
};

/* ------------------------------------------------------------- http.c */
int gw_http_start(struct gw *gw, char *err, size_t errlen);
/* Stop accepting connections (SIGTERM: the loop drains what is parked). */
void gw_http_close_listener(struct gw *gw);
void gw_http_stop(struct gw *gw);
/* Print "METHOD /path/{id}" for every route (for --routes and the test that
 * checks docs/openapi.yaml against the server). */
void gw_http_print_routes(void);

/* ------------------------------------------------------------ reply.c */
/* Microseconds since the epoch (a request's start, for its latency). */
int64_t gw_now_us(void);
/* Count an answer of status and its latency (replies sent otherwise than
 * through gw_reply_*, like /metrics). */
void gw_reply_count(struct gw_req *r, int status);
/* *dst := *src, with dst->param pointing into dst (contexts that outlive
 * the dispatch copy the request this way). */
void gw_req_copy(struct gw_req *dst, const struct gw_req *src);
/* Send a JSON reply (takes a reference of body: the caller's is consumed)
 * and count it. */
void gw_reply_json(struct gw_req *r, int status, json_t *body);
/* {"error": code, "message": msg} with status. */
/* 400 "invalid_request" naming every field in errs (consumed) with
 * message; returns 1 if it replied, 0 (errs freed) when errs is empty. */
int gw_reply_invalid(struct gw_req *r, json_t *errs, const char *message);
void gw_reply_error(struct gw_req *r, int status, const char *code,
                    const char *msg);
/* Reply from a raw JSON text (idempotent replays). */
void gw_reply_text(struct gw_req *r, int status, const char *json_text);
/* The request body as a NUL-terminated copy (malloc'd), its length in *len. */
char *gw_body(struct gw_req *r, size_t *len);
/* A request header (case-insensitive), or NULL. */
const char *gw_header(struct gw_req *r, const char *name);

/* ------------------------------------------------------------- conn.c */
/* Listen on gateway.addr/port with limits on connections, time and early
 * refusals (conn.c's opening comment); make (NULL: plain sockets) makes
 * each connection's bufferevent (TLS). *bound is evhttp's handle. */
int gw_conn_start(struct gw *gw,
                  struct bufferevent *(*make)(struct event_base *, void *),
                  void *make_arg, struct evhttp_bound_socket **bound,
                  char *err, size_t errlen);
/* evhttp freed the listener (SIGTERM). */
void gw_conn_listener_gone(struct gw *gw);
/* After gw_http_stop. */
void gw_conn_stop(struct gw *gw);
/* First thing for every request: 1 if it was refused below evhttp and is
 * answered now; marks the request as whole (its deadline stops). */
int gw_conn_check(struct gw_req *r);

/* ------------------------------------------------------------- keys.c */
int gw_keys_load(struct gw_keys *keys, const char *path, char *err,
                 size_t errlen);
void gw_keys_free(struct gw_keys *keys);
/* The key whose token is token (constant-time over every key), or NULL. */
const struct gw_key *gw_keys_find(const struct gw_keys *keys,
                                  const char *token);
/* The app_id of a key whose token is published (docs/api.md's development
 * keys), or NULL. */
const char *gw_keys_published(const struct gw_keys *keys);
int gw_role_parse(const char *s);
const char *gw_role_name(int role);

/* -------------------------------------------------------------- rds.c */
/* The reply (owned by hiredis: read it, never free it, never keep it), or
 * NULL when Redis is unreachable or too slow. */
typedef void (*gw_redis_fn)(struct gw *gw, const redisReply *reply,
                            void *arg);
/* Start connecting (Redis down is not an error: it reconnects). */
int gw_redis_start(struct gw *gw, char *err, size_t errlen);
/* Drop the connection: outstanding commands get their NULL callback. */
void gw_redis_stop(struct gw *gw);
/* Send argv (never a format string with user data). fn (NULL: fire and
 * forget) runs exactly once, from the loop, never before this returns
 * (except after gw_redis_stop or out of memory: NULL at once). */
void gw_redis_cmd(struct gw *gw, gw_redis_fn fn, void *arg, int argc,
                  const char **argv);
/* EVAL lua with nkeys keys then nargs args (at most 21 in all). */
void gw_redis_eval(struct gw *gw, const char *lua, gw_redis_fn fn, void *arg,
                   int nkeys, const char **keys, int nargs,
                   const char **args);
int gw_redis_up(const struct gw *gw);
/* Commands outstanding or failures still to answer (shutdown drains). */
int gw_redis_busy(const struct gw *gw);

/* -------------------------------------------------------------- pgq.c */
/* Tuples (owned by pgq.c: read, never PQclear, never keep), or NULL when
 * PostgreSQL is unreachable, too slow, or the query failed (logged). */
typedef void (*gw_pg_fn)(struct gw *gw, const PGresult *res, void *arg);
/* Open the connections (PostgreSQL down is not an error: they retry). */
int gw_pg_start(struct gw *gw, char *err, size_t errlen);
/* Close them: queued and running queries get their NULL callback. */
void gw_pg_stop(struct gw *gw);
/* Run constant sql with n text params (copied; NULL = SQL NULL). fn runs
 * exactly once, from the loop, never before this returns (except after
 * gw_pg_stop or out of memory: NULL at once). */
void gw_pg_query(struct gw *gw, const char *sql, int n,
                 const char *const *params, gw_pg_fn fn, void *arg);
int gw_pg_up(const struct gw *gw);
/* Queries queued, running or still to answer (shutdown drains). */
int gw_pg_busy(const struct gw *gw);

/* ------------------------------------------------------------ guard.c */
/* Each check answers through its callback, which may run before the call
 * returns (when no Redis round trip is needed): call them last. */

/* wait: 0 allowed; >0 denied: seconds to wait (Retry-After); <0 Redis
 * down. */
typedef void (*gw_rate_fn)(struct gw *gw, int wait, void *arg);
void gw_rate_check(struct gw *gw, const struct gw_key *key, gw_rate_fn fn,
                   void *arg);

/* Every guard of one publish in one Redis round trip (one script), so
 * concurrent publishes share Redis's fsync: the rate limit, the
 * Idempotency-Key, the order id (claim for OrderPlaced, ownership for the
 * rest), the campaign's app (record it when opening, check it when
 * ordering or joining) and the per-user campaign cap. Nothing is written
 * unless every check passes. */
enum gw_order_mode { GW_ORDER_NONE, GW_ORDER_CLAIM, GW_ORDER_OWN };
enum gw_campaign_mode { GW_CAMPAIGN_NONE, GW_CAMPAIGN_CHECK, GW_CAMPAIGN_OPEN };

struct gw_guard_req {
  const char *app;              /* the caller's app */
  const struct gw_key *rate_key; /* NULL: no rate limit here */
  const char *idem, *hash;      /* NULL idem: no Idempotency-Key */
  const char *event_id;         /* the event to publish ... */
  const char *payload64;        /* ... as base64 (kept with the key) */
  enum gw_order_mode order_mode;
  const char *order;
  enum gw_campaign_mode campaign_mode;
  const char *campaign;
  const char *campaign_app;     /* OPEN: the app that owns it */
  const char *cap_user;         /* non-NULL: count cap_member against the */
  const char *cap_member;       /* user's cap on campaign */
};

enum gw_guard_rc {
  GW_G_OK,       /* claimed: publish */
  GW_G_DOWN,     /* Redis unreachable or the script failed */
  GW_G_RATE,     /* 429 */
  GW_G_DONE,     /* the key's recorded answer: status, body */
  GW_G_BUSY,     /* the key's first request is still in flight */
  GW_G_REUSED,   /* the key was used with another request */
  GW_G_REPUB,    /* the key's event's outcome is unknown: publish it again
                    (event_id, payload64) */
  GW_G_TAKEN,    /* the order id belongs to another app */
  GW_G_NOOWNER,  /* the order is not in Redis: ask the record */
  GW_G_NOTOURS,  /* the order belongs to another app */
  GW_G_NOCAMPAIGN,       /* the campaign is not in Redis: ask the record */
  GW_G_CAMPAIGN_NOTOURS, /* the campaign belongs to another app */
  GW_G_CAMPAIGN_TAKEN,   /* opening a campaign id another app holds */
  GW_G_CAP,      /* the user's cap on the campaign is reached */
};

struct gw_guard_res {
  enum gw_guard_rc rc;
  int status;             /* DONE */
  const char *body;       /* DONE: valid during the callback */
  const char *event_id;   /* REPUB: valid during the callback */
  const char *payload64;  /* REPUB: valid during the callback */
  int order_fresh;        /* OK: the order id was claimed now */
  int campaign_fresh;     /* OK: the campaign id was recorded now */
  int cap_added;          /* OK: the cap slot was taken now */
};

typedef void (*gw_guard_fn)(struct gw *gw, const struct gw_guard_res *res,
                            void *arg);
void gw_guard(struct gw *gw, const struct gw_guard_req *q, gw_guard_fn fn,
              void *arg);

/* Undo (fire and forget; TTLs bound what a lost undo leaves). */
void gw_cap_give_back(struct gw *gw, const char *app, const char *campaign_id,
                      const char *user_id, const char *order_id);
void gw_campaign_unclaim(struct gw *gw, const char *campaign_id);
/* Record the answer of an Idempotency-Key's request. */
void gw_idem_done(struct gw *gw, const char *app_id, const char *idem_key,
                  const char *req_hash, int status, const char *body);
/* Forget the key (nothing was written: a retry starts afresh). */
void gw_idem_abort(struct gw *gw, const char *app_id, const char *idem_key);
/* The outcome of the key's publish is unknown: a retry republishes the
 * recorded event at once instead of waiting for the in-flight window. */
void gw_idem_unknown(struct gw *gw, const char *app_id, const char *idem_key,
                     const char *req_hash);

/* Order ownership (tenant isolation): the app that placed order_id.
 * rc LINLI_OK with app (valid during the callback); LINLI_ERR_NOTFOUND;
 * LINLI_ERR_TRANSIENT. Redis first, then the record (PostgreSQL). */
typedef void (*gw_owner_fn)(struct gw *gw, int rc, const char *app,
                            void *arg);
void gw_order_owner(struct gw *gw, const char *order_id, gw_owner_fn fn,
                    void *arg);
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
/* Member message checks (libdomain's, see validate.c); field names are
 * relative to the request body. */
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

/* ------------------------------------------------------------ owner.c */
/* orders.app_id of order_id from the record: rc LINLI_OK with app (valid
 * during the callback), LINLI_ERR_NOTFOUND, LINLI_ERR_TRANSIENT. */
typedef void (*gw_app_fn)(struct gw *gw, int rc, const char *app, void *arg);
void gw_pg_order_app(struct gw *gw, const char *order_id, gw_app_fn fn,
                     void *arg);
/* The same for the ids claimed in one loop turn, in one query. */
void gw_pg_order_app_batched(struct gw *gw, const char *order_id,
                             gw_app_fn fn, void *arg);
/* Send what is waiting (before gw_pg_stop). */
void gw_pg_order_app_batch_stop(struct gw *gw);
/* campaigns.app_id of campaign_id, the same way. */
void gw_pg_campaign_app(struct gw *gw, const char *campaign_id, gw_app_fn fn,
                        void *arg);

/* ------------------------------------------------------------ reads.c */
void gw_get_order(struct gw_req *r);
/* groupbuys.c: a campaign's live progress from the settler's hot state. */
void gw_get_groupbuy(struct gw_req *r);
void gw_list_orders(struct gw_req *r);
/* sorting.c: a wave's sorting lists from the record, by pickup point. */
void gw_get_sorting_list(struct gw_req *r);
/* groupbuys.c: SSE of a campaign's progress (polls the settler's state). */
void gw_get_groupbuy_events(struct gw_req *r);
/* Stop every group-buy stream (shutdown). */
void gw_groupbuy_streams_stop(struct gw *gw);

/* -------------------------------------------------------------- sse.c */
int gw_sse_start(struct gw *gw, char *err, size_t errlen);
/* What every event stream does (the order-status stream here, the
 * group-buy stream in groupbuys.c): answer 200 text/event-stream and keep
 * the reply open; queue a frame unless the connection's backlog (in its
 * bufferevent and, under conn.c's filter, the socket's) would pass max
 * bytes: then 0, and the caller cuts the slow client off. */
void gw_sse_reply_start(struct evhttp_request *req);
int gw_sse_queue(struct evhttp_connection *evcon, struct evhttp_request *req,
                 const char *data, size_t len, size_t max);
void gw_sse_stop(struct gw *gw);
void gw_get_stream(struct gw_req *r);

#endif
