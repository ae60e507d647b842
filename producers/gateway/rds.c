/*
 * rds.c - the gateway's non-blocking Redis connection: hiredis 0.14.1's
 * async API on the gateway's own libevent loop (adapters/libevent.h), so a
 * slow or dead Redis parks only the requests that wait for it while every
 * other request, the Kafka delivery reports and the SSE streams go on.
 *
 * Every command goes through gw_redis_cmd() and gets exactly one callback:
 * the reply, or NULL when Redis is unreachable, the connection dropped, or
 * nothing came back within GW_REDIS_TIMEOUT_MS (hiredis 0.14 has no command
 * timeout of its own: a 100 ms timer drops a connection that has had
 * commands outstanding and no reply for that long, which answers all of
 * them with NULL). Without a connection commands fail at once (from the
 * loop, never inside the caller) and a timer reconnects with backoff
 * (100 ms doubling to 2 s). The reply belongs to hiredis: callbacks read
 * it and never free it.
 *
 * The connection's owner (struct gw_redis) is in ac->data; it is cleared
 * from every path that ends a connection, so a late hiredis callback never
 * touches a connection that is gone.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "gateway.h"
#include "linli/error.h"
#include "linli/log.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000

/* One command waiting for its reply (or queued to fail). */
struct rcmd {
  struct gw_redis *R;
  gw_redis_fn fn; /* NULL: fire and forget */
  void *arg;
  struct rcmd *next; /* in R->failed */
};

struct gw_redis {
  struct gw *gw;
  char host[256];
  int port;
  char password[256];
  int connect_timeout_ms;
  redisAsyncContext *ac; /* NULL while disconnected */
  int connected;         /* onConnect said OK */
  int stopping;
  int64_t connect_started_us;
  int64_t last_progress_us; /* last reply, or the first command sent */
  int outstanding;          /* commands sent, callback not yet run */
  int backoff_ms;
  int quiet; /* a failed attempt was logged: say nothing until connected */
  struct rcmd *failed, **failed_tail; /* to answer NULL from the loop */
  struct event *fail_ev, *reconnect_ev, *check_ev;
};

static int64_t now_us(void) {
  struct timeval tv;
  gettimeofday(&tv, NULL);
  return (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
}

static void schedule_reconnect(struct gw_redis *R) {
  if (R->stopping)
    return;
  struct timeval tv = {R->backoff_ms / 1000, (R->backoff_ms % 1000) * 1000};
  event_add(R->reconnect_ev, &tv);
  R->backoff_ms *= 2;
  if (R->backoff_ms > BACKOFF_MAX_MS)
    R->backoff_ms = BACKOFF_MAX_MS;
}

/* End the current connection on our side: every outstanding command gets
 * its NULL callback now (hiredis runs them from redisAsyncFree). */
static void drop(struct gw_redis *R, const char *why) {
  redisAsyncContext *ac = R->ac;
  if (!ac)
    return;
  LINLI_WARN("redis connection dropped", "reason=\"%s\" outstanding=%d", why,
             R->outstanding);
  R->ac = NULL; /* commands issued from the callbacks below fail fast */
  R->connected = 0;
  ac->data = NULL;
  redisAsyncFree(ac);
  schedule_reconnect(R);
}

/* ------------------------------------------------------------ callbacks */

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata) {
  (void)ac;
  struct rcmd *c = privdata;
  struct gw_redis *R = c->R;
  R->outstanding--;
  R->last_progress_us = now_us();
  if (c->fn)
    c->fn(R->gw, reply, c->arg);
  free(c);
}

static void on_connect(const redisAsyncContext *ac, int status) {
  struct gw_redis *R = ac->data;
  if (!R || R->ac != ac)
    return; /* a connection we already dropped */
  if (status != REDIS_OK) {
    /* hiredis frees ac after this returns (pending commands get NULL). */
    if (!R->quiet)
      LINLI_WARN("redis connect failed, retrying quietly", "reason=\"%s\"",
                 ac->errstr[0] ? ac->errstr : "unknown");
    R->quiet = 1;
    R->ac = NULL;
    R->connected = 0;
    schedule_reconnect(R);
    return;
  }
  R->connected = 1;
  R->quiet = 0;
  R->backoff_ms = BACKOFF_MIN_MS;
  LINLI_INFO("redis connected", "host=%s port=%d", R->host, R->port);
}

static void on_disconnect(const redisAsyncContext *ac, int status) {
  struct gw_redis *R = ac->data;
  if (!R || R->ac != ac)
    return;
  LINLI_WARN("redis disconnected", "reason=\"%s\"",
             status == REDIS_OK ? "closed" : ac->errstr);
  R->ac = NULL;
  R->connected = 0;
  schedule_reconnect(R);
}

static void on_auth(struct gw *gw, const redisReply *reply, void *arg) {
  (void)gw;
  struct gw_redis *R = arg;
  if (reply && reply->type == REDIS_REPLY_ERROR) {
    LINLI_ERROR("redis AUTH refused", "reason=\"%s\"", reply->str);
    drop(R, "AUTH refused");
  }
}

/* Answer the commands that could not be sent (callback NULL). */
static void on_failed(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  struct gw_redis *R = arg;
  struct rcmd *c = R->failed;
  R->failed = NULL;
  R->failed_tail = &R->failed;
  while (c) {
    struct rcmd *next = c->next;
    if (c->fn)
      c->fn(R->gw, NULL, c->arg); /* may queue more: they wait a turn */
    free(c);
    c = next;
  }
}

static void try_connect(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  struct gw_redis *R = arg;
  if (R->ac || R->stopping)
    return;
  redisAsyncContext *ac = redisAsyncConnect(R->host, R->port);
  if (!ac || ac->err) {
    if (!R->quiet)
      LINLI_WARN("redis connect failed, retrying quietly", "reason=\"%s\"",
                 ac ? ac->errstr : "out of memory");
    R->quiet = 1;
    if (ac)
      redisAsyncFree(ac);
    schedule_reconnect(R);
    return;
  }
  ac->data = R;
  if (redisLibeventAttach(ac, R->gw->base) != REDIS_OK ||
      redisAsyncSetConnectCallback(ac, on_connect) != REDIS_OK ||
      redisAsyncSetDisconnectCallback(ac, on_disconnect) != REDIS_OK) {
    ac->data = NULL;
    redisAsyncFree(ac);
    schedule_reconnect(R);
    return;
  }
  R->ac = ac;
  R->connected = 0;
  R->connect_started_us = now_us();
  /* Queued before the connection completes; sent first once it does. */
  if (R->password[0]) {
    const char *argv[] = {"AUTH", R->password};
    gw_redis_cmd(R->gw, on_auth, R, 2, argv);
  }
}

/* Stuck connect or a Redis that stopped answering: drop, which answers
 * every waiting request (503) and reconnects. */
static void on_check(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  struct gw_redis *R = arg;
  int64_t now = now_us();
  if (!R->ac)
    return;
  if (!R->connected &&
      now - R->connect_started_us > (int64_t)R->connect_timeout_ms * 1000)
    drop(R, "connect timed out (redis.connect_timeout_ms)");
  else if (R->outstanding > 0 &&
           now - R->last_progress_us > (int64_t)GW_REDIS_TIMEOUT_MS * 1000)
    drop(R, "no reply in time");
}

/* ------------------------------------------------------------------ API */

/* c cannot be sent: its NULL callback runs from the loop, next turn. */
static void fail_later(struct gw_redis *R, struct rcmd *c) {
  *R->failed_tail = c;
  R->failed_tail = &c->next;
  event_active(R->fail_ev, EV_TIMEOUT, 0);
}

void gw_redis_cmd(struct gw *gw, gw_redis_fn fn, void *arg, int argc,
                  const char **argv) {
  struct gw_redis *R = gw->rds;
  struct rcmd *c = R ? calloc(1, sizeof *c) : NULL;
  if (!c) {
    /* Stopped (shutdown), or nowhere to remember the callback: answer now,
     * the only synchronous callbacks. */
    if (fn)
      fn(gw, NULL, arg);
    return;
  }
  c->R = R;
  c->fn = fn;
  c->arg = arg;
  if (argc > 0 && R->ac &&
      redisAsyncCommandArgv(R->ac, on_reply, c, argc, argv, NULL) ==
          REDIS_OK) {
    if (R->outstanding++ == 0)
      R->last_progress_us = now_us();
    return;
  }
  fail_later(R, c);
}

void gw_redis_eval(struct gw *gw, const char *lua, gw_redis_fn fn, void *arg,
                   int nkeys, const char **keys, int nargs,
                   const char **args) {
  /* EVAL with the text every time: the scripts are a few hundred bytes,
   * Redis caches them by hash, and there is no NOSCRIPT state to recover
   * after a restart or failover. */
  const char *argv[24];
  char nk[16];
  int n = 0;
  if (nkeys + nargs + 3 > (int)(sizeof argv / sizeof argv[0])) {
    gw_redis_cmd(gw, fn, arg, 0, NULL); /* a bug: answered NULL */
    return;
  }
  snprintf(nk, sizeof nk, "%d", nkeys);
  argv[n++] = "EVAL";
  argv[n++] = lua;
  argv[n++] = nk;
  for (int i = 0; i < nkeys; i++)
    argv[n++] = keys[i];
  for (int i = 0; i < nargs; i++)
    argv[n++] = args[i];
  gw_redis_cmd(gw, fn, arg, n, argv);
}

int gw_redis_up(const struct gw *gw) {
  return gw->rds && gw->rds->connected;
}

int gw_redis_busy(const struct gw *gw) {
  return gw->rds && (gw->rds->outstanding > 0 || gw->rds->failed);
}

int gw_redis_start(struct gw *gw, char *err, size_t errlen) {
  struct gw_redis *R = calloc(1, sizeof *R);
  if (!R) {
    snprintf(err, errlen, "out of memory");
    return LINLI_ERR_NOMEM;
  }
  R->gw = gw;
  snprintf(R->host, sizeof R->host, "%s",
           linli_config_str(gw->cfg, "redis.host"));
  R->port = (int)linli_config_int(gw->cfg, "redis.port");
  snprintf(R->password, sizeof R->password, "%s",
           linli_config_str(gw->cfg, "redis.password"));
  R->connect_timeout_ms =
      (int)linli_config_int(gw->cfg, "redis.connect_timeout_ms");
  R->backoff_ms = BACKOFF_MIN_MS;
  R->failed_tail = &R->failed;
  struct timeval check = {0, 100000};
  R->fail_ev = event_new(gw->base, -1, 0, on_failed, R);
  R->reconnect_ev = evtimer_new(gw->base, try_connect, R);
  R->check_ev = event_new(gw->base, -1, EV_PERSIST, on_check, R);
  gw->rds = R;
  if (!R->fail_ev || !R->reconnect_ev || !R->check_ev ||
      event_add(R->check_ev, &check) != 0) {
    snprintf(err, errlen, "cannot set up Redis events");
    gw_redis_stop(gw);
    return LINLI_ERR_FATAL;
  }
  /* Not fatal if Redis is down now: requests answer 503 until it is up. */
  try_connect(-1, 0, R);
  return LINLI_OK;
}

void gw_redis_stop(struct gw *gw) {
  struct gw_redis *R = gw->rds;
  if (!R)
    return;
  R->stopping = 1;
  if (R->ac) {
    redisAsyncContext *ac = R->ac;
    R->ac = NULL;
    R->connected = 0;
    ac->data = NULL;
    redisAsyncFree(ac); /* outstanding commands: NULL callbacks now */
  }
  while (R->failed)
    on_failed(-1, 0, R);
  if (R->fail_ev)
    event_free(R->fail_ev);
  if (R->reconnect_ev)
    event_free(R->reconnect_ev);
  if (R->check_ev)
    event_free(R->check_ev);
  free(R);
  gw->rds = NULL;
}
