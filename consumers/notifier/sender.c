/*
 * sender.c - the webhook sink: delivers every queued notification at least
 * once, and never again once the receiver acknowledged it.
 *
 * Its own thread, event loop (libevent's evhttp client, non-blocking),
 * Redis connection and DLQ producer: a webhook that is slow or down only
 * makes this queue longer, never the Kafka partitions slower. A claim
 * leases due notifications (the lease outlasts a request), so several
 * senders never send one at the same time and a sender that dies loses only
 * its leases. After a 2xx the delivery is recorded (and the notification
 * forgotten) before anything else; a repeat can only come from a crash
 * between the receiver's answer and that record. A failure is retried with
 * exponential backoff and full jitter; one that has failed for longer than
 * notifier.fail_after_s goes to the DLQ with its last error. Quiet hours
 * and the per-user rate limit move a notification's due time (counted as
 * delayed), never drop it; pickup_ready is never held back.
 */
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "domain/notifier_keys.h"
#include "linli/clock.h"
#include "linli/error.h"
#include "linli/log.h"
#include "domain/schema.h"
#include "notifier.h"

#define PUMP_INTERVAL_US 10000
#define DEPTH_INTERVAL_MS 1000

struct slot {
  struct nt_sender *s;
  struct evhttp_connection *conn;
  int busy;
  int done;  /* answered; result waits for the next pump */
  int code;  /* HTTP status, 0 = no answer */
  const char *why;
  int shard;
  char id[72], user[72], tpl[40], chan[16];
  long attempts;
};

struct nt_sender {
  struct notifier *nt;
  const linli_config_t *cfg;
  pthread_t thread;
  int started;
  atomic_int stop;
  struct event_base *base;
  struct event *pump_ev;
  linli_redis_t *redis;
  linli_redis_script_t *claim, *ack, *ack_many, *fail, *drop, *delay;
  struct event *soon_ev; /* pump once the answers of this loop turn are in */
  linli_producer_t *dlq;
  const char *dlq_topic;
  char host[256], path[1024];
  int port;
  const char *secret;
  int timeout_ms;
  int64_t base_ms, max_ms, fail_after_ms, lease_ms;
  struct dom_quiet quiet;
  int quiet_tpl[DOM_TPL_COUNT];
  int64_t rate;
  struct slot *slots;
  int nslots;
  int next_shard;
  int64_t depth_at;
  linli_gauge_t *depth;
};

static int chan_index(const char *c) {
  return strcmp(c, "sms") == 0 ? 1 : strcmp(c, "wechat") == 0 ? 2 : 3;
}

/* Every script takes KEYS[1] = the shard's queue, ARGV[1] = its prefix. */
static int eval(struct nt_sender *s, linli_redis_script_t *sc, int shard,
                int nargs, const char **rest, redisReply **reply) {
  char tag[96], q[128], prefix[128];
  nt_tag(s->nt, shard, tag, sizeof tag);
  linli_redis_key(q, sizeof q, tag, DOM_NT_QUEUE);
  linli_redis_key(prefix, sizeof prefix, tag, "");
  const char *args[8];
  args[0] = prefix;
  for (int i = 0; i < nargs && i < 7; i++)
    args[i + 1] = rest[i];
  const char *keys[] = {q};
  int rc = linli_redis_eval(s->redis, sc, 1, keys, nargs + 1, args, NULL,
                            reply);
  if (rc == LINLI_OK && (*reply)->type == REDIS_REPLY_ERROR) {
    LINLI_WARN("webhook queue script failed", "reply=\"%s\"", (*reply)->str);
    freeReplyObject(*reply);
    *reply = NULL;
    return LINLI_ERR_TRANSIENT;
  }
  return rc;
}

static void delay_until(struct nt_sender *s, int shard, const char *id,
                        int64_t when) {
  char w[32];
  snprintf(w, sizeof w, "%lld", (long long)when);
  const char *a[] = {id, w};
  redisReply *r = NULL;
  if (eval(s, s->delay, shard, 2, a, &r) == LINLI_OK)
    freeReplyObject(r);
}

/* Exponential backoff with full jitter: uniform in [d/2, d], d = base *
 * 2^(attempt-1) capped at max. */
static int64_t backoff_ms(const struct nt_sender *s, long attempt) {
  int64_t d = s->base_ms;
  for (long i = 1; i < attempt && d < s->max_ms; i++)
    d = d > INT64_MAX / 2 ? s->max_ms : d * 2;
  if (d > s->max_ms)
    d = s->max_ms;
  uint32_t half = (uint32_t)(d / 2 > UINT32_MAX - 1 ? UINT32_MAX - 1 : d / 2);
  return d - half + (int64_t)randombytes_uniform(half + 1);
}

static int write_dlq(struct nt_sender *s, const char *id, const char *user,
                     const char *body, const char *why) {
  rd_kafka_headers_t *h = rd_kafka_headers_new(5);
  rd_kafka_header_add(h, LINLI_DLQ_H_TOPIC, -1, LINLI_TOPIC_NOTIFICATIONS, -1);
  rd_kafka_header_add(h, LINLI_DLQ_H_CONSUMER, -1, "notifier-webhook", -1);
  rd_kafka_header_add(h, LINLI_DLQ_H_ERROR, -1, "transient", -1);
  rd_kafka_header_add(h, LINLI_DLQ_H_REASON, -1, why, -1);
  rd_kafka_header_add(h, "notification_id", -1, id, -1);
  char err[256];
  if (linli_producer_send_sync(s->dlq, s->dlq_topic, RD_KAFKA_PARTITION_UA,
                               user, strlen(user), body, strlen(body), h,
                               10000, NULL, NULL, err, sizeof err) != LINLI_OK) {
    LINLI_ERROR("webhook DLQ write failed", "id=%s reason=\"%s\"", id, err);
    return LINLI_ERR_TRANSIENT;
  }
  return LINLI_OK;
}

static void pump(struct nt_sender *s);

static void finish(struct slot *sl, int code, const char *why) {
  struct nt_sender *s = sl->s;
  int ci = chan_index(sl->chan);
  int64_t now = linli_clock_now_ms();
  redisReply *r = NULL;
  if (code >= 200 && code < 300) {
    char ttl[32];
    snprintf(ttl, sizeof ttl, "%lld", (long long)s->nt->ttl_s);
    const char *a[] = {sl->id, ttl};
    /* If this record fails the lease runs out and the id is sent again:
     * the one way a receiver sees a repeat. */
    if (eval(s, s->ack, sl->shard, 2, a, &r) == LINLI_OK)
      freeReplyObject(r);
    else
      LINLI_WARN("webhook delivery not recorded", "id=%s", sl->id);
    linli_counter_add(s->nt->m[ci].sent, 1);
  } else {
    char err[160];
    if (code > 0)
      snprintf(err, sizeof err, "HTTP %d", code);
    else
      snprintf(err, sizeof err, "%s", why);
    char now_s[32], next_s[32], after_s[32];
    snprintf(now_s, sizeof now_s, "%lld", (long long)now);
    snprintf(next_s, sizeof next_s, "%lld",
             (long long)(now + backoff_ms(s, sl->attempts + 1)));
    snprintf(after_s, sizeof after_s, "%lld", (long long)s->fail_after_ms);
    const char *a[] = {sl->id, now_s, next_s, after_s, err};
    linli_counter_add(s->nt->m[ci].failed, 1);
    if (eval(s, s->fail, sl->shard, 5, a, &r) == LINLI_OK) {
      if (r->type == REDIS_REPLY_ARRAY && r->elements >= 3 &&
          strcmp(r->element[0]->str, "DLQ") == 0) {
        char why2[256];
        snprintf(why2, sizeof why2, "webhook failed for %llds: %s",
                 (long long)(s->fail_after_ms / 1000), err);
        /* Dropped only once the DLQ has it; otherwise its lease runs out
         * and it comes round again. */
        if (write_dlq(s, sl->id, r->element[2]->str, r->element[1]->str,
                      why2) == LINLI_OK) {
          redisReply *d = NULL;
          const char *b[] = {sl->id};
          if (eval(s, s->drop, sl->shard, 1, b, &d) == LINLI_OK)
            freeReplyObject(d);
          linli_counter_add(s->nt->m[ci].dlq, 1);
          LINLI_WARN("webhook notification to the DLQ", "id=%s error=\"%s\"",
                     sl->id, err);
        }
      }
      freeReplyObject(r);
    }
  }
  sl->busy = 0;
}

/* Answers are recorded in a batch by the next pump: one script per shard
 * for every 2xx of a loop turn, not one round trip per answer. */
static void on_done(struct evhttp_request *req, void *arg) {
  struct slot *sl = arg;
  sl->code = req ? evhttp_request_get_response_code(req) : 0;
  sl->why = "connection failed or timed out";
  sl->done = 1;
  event_active(sl->s->soon_ev, EV_TIMEOUT, 0);
}

/* Record the answers in: every 2xx of a shard in one script, then each
 * failure. */
static void settle(struct nt_sender *s) {
  char ttl[32];
  snprintf(ttl, sizeof ttl, "%lld", (long long)s->nt->ttl_s);
  const char **args = calloc((size_t)s->nslots + 2, sizeof *args);
  for (int i = 0; i < s->nslots; i++) {
    struct slot *first = &s->slots[i];
    if (!first->done || first->code < 200 || first->code >= 300 || !args)
      continue;
    char tag[96], q[128], prefix[128];
    nt_tag(s->nt, first->shard, tag, sizeof tag);
    linli_redis_key(q, sizeof q, tag, DOM_NT_QUEUE);
    linli_redis_key(prefix, sizeof prefix, tag, "");
    int n = 0;
    args[n++] = prefix;
    args[n++] = ttl;
    for (int j = i; j < s->nslots; j++) {
      struct slot *sl = &s->slots[j];
      if (sl->done && sl->code >= 200 && sl->code < 300 &&
          sl->shard == first->shard) {
        args[n++] = sl->id;
        linli_counter_add(s->nt->m[chan_index(sl->chan)].sent, 1);
        sl->done = 0;
        sl->busy = 0;
      }
    }
    const char *keys[] = {q};
    redisReply *r = NULL;
    /* If this record fails the leases run out and the ids are sent again:
     * the one way a receiver sees a repeat. */
    if (linli_redis_eval(s->redis, s->ack_many, 1, keys, n, args, NULL, &r) ==
        LINLI_OK)
      freeReplyObject(r);
    else
      LINLI_WARN("webhook deliveries not recorded", "count=%d", n - 2);
  }
  free(args);
  for (int i = 0; i < s->nslots; i++)
    if (s->slots[i].done) {
      s->slots[i].done = 0;
      finish(&s->slots[i], s->slots[i].code, s->slots[i].why);
    }
}

/* Stripe-style: "t=<unix seconds>,v1=<hex HMAC-SHA256(key, t "." body)>". */
static void sign(const struct nt_sender *s, const char *body, char *out,
                 size_t len) {
  char t[24];
  snprintf(t, sizeof t, "%lld", (long long)time(NULL));
  crypto_auth_hmacsha256_state st;
  unsigned char mac[crypto_auth_hmacsha256_BYTES];
  crypto_auth_hmacsha256_init(&st, (const unsigned char *)s->secret,
                              strlen(s->secret));
  crypto_auth_hmacsha256_update(&st, (const unsigned char *)t, strlen(t));
  crypto_auth_hmacsha256_update(&st, (const unsigned char *)".", 1);
  crypto_auth_hmacsha256_update(&st, (const unsigned char *)body,
                                strlen(body));
  crypto_auth_hmacsha256_final(&st, mac);
  char hex[2 * sizeof mac + 1];
  sodium_bin2hex(hex, sizeof hex, mac, sizeof mac);
  snprintf(out, len, "t=%s,v1=%s", t, hex);
}

static int dispatch(struct nt_sender *s, struct slot *sl, const char *body) {
  struct evhttp_request *req = evhttp_request_new(on_done, sl);
  if (!req)
    return LINLI_ERR_NOMEM;
  char sig[160], hostport[300];
  sign(s, body, sig, sizeof sig);
  snprintf(hostport, sizeof hostport, "%s:%d", s->host, s->port);
  struct evkeyvalq *h = evhttp_request_get_output_headers(req);
  evhttp_add_header(h, "Host", hostport);
  evhttp_add_header(h, "Content-Type", "application/json");
  evhttp_add_header(h, "Linli-Notification-Id", sl->id);
  evhttp_add_header(h, "Linli-Signature", sig);
  evbuffer_add(evhttp_request_get_output_buffer(req), body, strlen(body));
  sl->busy = 1;
  if (evhttp_make_request(sl->conn, req, EVHTTP_REQ_POST, s->path) != 0) {
    /* libevent frees the request when it cannot make it. */
    finish(sl, 0, "request could not be made");
    return LINLI_ERR_TRANSIENT;
  }
  return LINLI_OK;
}

/* Held back now? Returns the due time to move to, or 0 to send now. */
static int64_t hold(struct nt_sender *s, const char *user, const char *tpl,
                    int64_t now) {
  int t = dom_tpl_lookup(tpl);
  if (t == DOM_TPL_PICKUP_READY)
    return 0; /* a pickup code is never held back */
  if (t >= 0 && s->quiet_tpl[t]) {
    int64_t until = dom_quiet_until(&s->quiet, now);
    if (until > 0)
      return until;
  }
  if (s->rate > 0) {
    char key[160], minute[24];
    long long m = (long long)(now / 60000);
    snprintf(minute, sizeof minute, "%lld", m);
    snprintf(key, sizeof key, "linli:%s:rl:%s:%s", s->nt->prefix, user,
             minute);
    const char *incr[] = {"INCR", key};
    const char *exp[] = {"EXPIRE", key, "120"};
    linli_redis_cmd_t cmds[] = {{2, incr, NULL}, {3, exp, NULL}};
    redisReply *rep[2] = {NULL, NULL};
    if (linli_redis_pipeline(s->redis, 2, cmds, rep) == LINLI_OK) {
      long long n = rep[0]->type == REDIS_REPLY_INTEGER ? rep[0]->integer : 0;
      freeReplyObject(rep[0]);
      freeReplyObject(rep[1]);
      if (n > s->rate)
        return (m + 1) * 60000;
    }
  }
  return 0;
}

static void update_depth(struct nt_sender *s) {
  int64_t mono = linli_clock_mono_ms();
  if (mono - s->depth_at < DEPTH_INTERVAL_MS)
    return;
  s->depth_at = mono;
  int n = s->nt->nshards;
  linli_redis_cmd_t *cmds = calloc((size_t)n, sizeof *cmds);
  char(*keys)[128] = calloc((size_t)n, sizeof *keys);
  const char **argv = calloc(2 * (size_t)n, sizeof *argv);
  redisReply **rep = calloc((size_t)n, sizeof *rep);
  if (cmds && keys && argv && rep) {
    for (int i = 0; i < n; i++) {
      char tag[96];
      nt_tag(s->nt, i, tag, sizeof tag);
      linli_redis_key(keys[i], sizeof keys[i], tag, DOM_NT_QUEUE);
      argv[2 * i] = "ZCARD";
      argv[2 * i + 1] = keys[i];
      cmds[i].argc = 2;
      cmds[i].argv = &argv[2 * i];
    }
    if (linli_redis_pipeline(s->redis, n, cmds, rep) == LINLI_OK) {
      int64_t total = 0;
      for (int i = 0; i < n; i++) {
        if (rep[i]->type == REDIS_REPLY_INTEGER)
          total += rep[i]->integer;
        freeReplyObject(rep[i]);
      }
      linli_gauge_set(s->depth, total);
    }
  }
  free(cmds);
  free(keys);
  free(argv);
  free(rep);
}

static void pump(struct nt_sender *s) {
  settle(s);
  int busy = 0;
  for (int i = 0; i < s->nslots; i++)
    busy += s->slots[i].busy;
  if (atomic_load(&s->stop)) {
    if (busy == 0)
      event_base_loopbreak(s->base);
    return;
  }
  update_depth(s);
  int64_t now = linli_clock_now_ms();
  char now_s[32], lease_s[32];
  snprintf(now_s, sizeof now_s, "%lld", (long long)now);
  snprintf(lease_s, sizeof lease_s, "%lld", (long long)(now + s->lease_ms));
  for (int tries = 0; tries < s->nt->nshards && busy < s->nslots; tries++) {
    int shard = s->next_shard;
    s->next_shard = (s->next_shard + 1) % s->nt->nshards;
    char want[16];
    snprintf(want, sizeof want, "%d", s->nslots - busy);
    const char *a[] = {now_s, lease_s, want};
    redisReply *r = NULL;
    if (eval(s, s->claim, shard, 3, a, &r) != LINLI_OK)
      return; /* Redis away: the next pump tries again */
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i + 6 < r->elements;
         i += 7) {
      const char *id = r->element[i]->str, *body = r->element[i + 1]->str,
                 *user = r->element[i + 2]->str, *tpl = r->element[i + 3]->str,
                 *chan = r->element[i + 4]->str;
      int64_t until = hold(s, user, tpl, now);
      if (until > 0) {
        delay_until(s, shard, id, until);
        linli_counter_add(s->nt->m[chan_index(chan)].delayed, 1);
        continue;
      }
      struct slot *sl = NULL;
      for (int k = 0; k < s->nslots && !sl; k++)
        if (!s->slots[k].busy)
          sl = &s->slots[k];
      if (!sl) /* cannot happen: claimed at most the free slots */
        break;
      sl->shard = shard;
      snprintf(sl->id, sizeof sl->id, "%s", id);
      snprintf(sl->user, sizeof sl->user, "%s", user);
      snprintf(sl->tpl, sizeof sl->tpl, "%s", tpl);
      snprintf(sl->chan, sizeof sl->chan, "%s", chan);
      sl->attempts = atol(r->element[i + 6]->str);
      if (dispatch(s, sl, body) == LINLI_OK)
        busy++;
    }
    freeReplyObject(r);
  }
}

static void on_pump(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  pump(arg);
}

static void *run(void *arg) {
  struct nt_sender *s = arg;
  event_base_dispatch(s->base);
  return NULL;
}

static void sender_free(struct nt_sender *s) {
  if (!s)
    return;
  for (int i = 0; s->slots && i < s->nslots; i++)
    if (s->slots[i].conn)
      evhttp_connection_free(s->slots[i].conn);
  free(s->slots);
  if (s->pump_ev)
    event_free(s->pump_ev);
  if (s->soon_ev)
    event_free(s->soon_ev);
  if (s->base)
    event_base_free(s->base);
  linli_producer_free(s->dlq);
  linli_redis_free(s->redis);
  free(s);
}

static int parse_url(struct nt_sender *s, const char *url, char *err,
                     size_t errlen) {
  struct evhttp_uri *u = evhttp_uri_parse(url);
  int rc = LINLI_ERR_CONFIG;
  if (!u || !evhttp_uri_get_scheme(u) ||
      strcmp(evhttp_uri_get_scheme(u), "http") != 0 ||
      !evhttp_uri_get_host(u)) {
    snprintf(err, errlen, "notifier.webhook_url: not an http://host[:port]/path "
                          "URL");
    goto out;
  }
  snprintf(s->host, sizeof s->host, "%s", evhttp_uri_get_host(u));
  s->port = evhttp_uri_get_port(u) > 0 ? evhttp_uri_get_port(u) : 80;
  const char *path = evhttp_uri_get_path(u);
  const char *q = evhttp_uri_get_query(u);
  snprintf(s->path, sizeof s->path, "%s%s%s", path && *path ? path : "/",
           q ? "?" : "", q ? q : "");
  rc = LINLI_OK;
out:
  if (u)
    evhttp_uri_free(u);
  return rc;
}

int nt_sender_start(const linli_config_t *cfg, struct notifier *nt,
                    nt_sender_t **out, char *err, size_t errlen) {
  *out = NULL;
  struct nt_sender *s = calloc(1, sizeof *s);
  if (!s)
    return LINLI_ERR_NOMEM;
  s->nt = nt;
  s->cfg = cfg;
  s->secret = linli_config_str(cfg, "notifier.webhook_secret");
  s->timeout_ms = (int)linli_config_int(cfg, "notifier.webhook_timeout_ms");
  s->base_ms = linli_config_int(cfg, "notifier.retry_base_ms");
  s->max_ms = linli_config_int(cfg, "notifier.retry_max_ms");
  s->fail_after_ms = linli_config_int(cfg, "notifier.fail_after_s") * 1000;
  s->lease_ms = s->timeout_ms + 5000;
  s->rate = linli_config_int(cfg, "notifier.rate_per_user_min");
  s->dlq_topic = linli_config_str(cfg, "runner.dlq_topic");
  s->nslots = (int)linli_config_int(cfg, "notifier.webhook_concurrency");
  s->depth = linli_metrics_gauge("linli_notifier_retry_queue_depth",
                                 "channel=\"webhook\"",
                                 "notifications waiting for the webhook");
  int rc = parse_url(s, linli_config_str(cfg, "notifier.webhook_url"), err,
                     errlen);
  if (rc != LINLI_OK)
    goto fail;
  dom_quiet_parse(linli_config_str(cfg, "notifier.quiet_hours"),
                  nt->utc_offset_min, &s->quiet);
  const char *qt = linli_config_str(cfg, "notifier.quiet_templates");
  for (int t = 0; t < DOM_TPL_COUNT; t++) {
    const char *name = dom_tpl_name(t);
    size_t nl = strlen(name);
    for (const char *p = qt; (p = strstr(p, name)) != NULL; p += nl)
      if ((p == qt || p[-1] == ',') && (p[nl] == ',' || p[nl] == '\0'))
        s->quiet_tpl[t] = 1;
  }
  rc = linli_redis_connect(
      linli_config_str(cfg, "redis.host"),
      (int)linli_config_int(cfg, "redis.port"),
      linli_config_str(cfg, "redis.password"),
      (int)linli_config_int(cfg, "redis.connect_timeout_ms"), &s->redis, err,
      errlen);
  if (rc == LINLI_OK)
    rc = linli_redis_script_register(s->redis, "nt_claim", NT_LUA_CLAIM,
                                     &s->claim);
  if (rc == LINLI_OK)
    rc = linli_redis_script_register(s->redis, "nt_ack", NT_LUA_ACK, &s->ack);
  if (rc == LINLI_OK)
    rc = linli_redis_script_register(s->redis, "nt_ack_many", NT_LUA_ACK_MANY,
                                     &s->ack_many);
  if (rc == LINLI_OK)
    rc = linli_redis_script_register(s->redis, "nt_fail", NT_LUA_FAIL,
                                     &s->fail);
  if (rc == LINLI_OK)
    rc = linli_redis_script_register(s->redis, "nt_drop", NT_LUA_DROP,
                                     &s->drop);
  if (rc == LINLI_OK)
    rc = linli_redis_script_register(s->redis, "nt_delay", NT_LUA_DELAY,
                                     &s->delay);
  if (rc == LINLI_OK)
    rc = linli_producer_new(cfg, "linli-notifier-webhook", &s->dlq, err,
                            errlen);
  if (rc != LINLI_OK)
    goto fail;
  rc = LINLI_ERR_NOMEM;
  s->base = event_base_new();
  s->slots = calloc((size_t)s->nslots, sizeof *s->slots);
  if (!s->base || !s->slots)
    goto fail;
  struct timeval tv = {s->timeout_ms / 1000, (s->timeout_ms % 1000) * 1000};
  for (int i = 0; i < s->nslots; i++) {
    s->slots[i].s = s;
    s->slots[i].conn =
        evhttp_connection_base_new(s->base, NULL, s->host, (uint16_t)s->port);
    if (!s->slots[i].conn)
      goto fail;
    evhttp_connection_set_timeout_tv(s->slots[i].conn, &tv);
    evhttp_connection_set_retries(s->slots[i].conn, 0);
  }
  struct timeval ptv = {0, PUMP_INTERVAL_US};
  s->pump_ev = event_new(s->base, -1, EV_PERSIST, on_pump, s);
  s->soon_ev = event_new(s->base, -1, 0, on_pump, s);
  if (!s->pump_ev || !s->soon_ev || event_add(s->pump_ev, &ptv) != 0)
    goto fail;
  if (pthread_create(&s->thread, NULL, run, s) != 0)
    goto fail;
  s->started = 1;
  LINLI_INFO("webhook sender started", "host=%s port=%d concurrency=%d",
             s->host, s->port, s->nslots);
  *out = s;
  return LINLI_OK;
fail:
  if (rc == LINLI_ERR_NOMEM)
    snprintf(err, errlen, "webhook sender: out of memory");
  sender_free(s);
  return rc == LINLI_OK ? LINLI_ERR_FATAL : rc;
}

void nt_sender_stop(nt_sender_t *s) {
  if (!s)
    return;
  atomic_store(&s->stop, 1);
  if (s->started)
    pthread_join(s->thread, NULL);
  sender_free(s);
}
