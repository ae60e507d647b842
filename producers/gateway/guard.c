/*
 * guard.c - the gateway's shared state in Redis, so that any number of
 * gateway instances behind a load balancer agree:
 *   gw:idem:<app>:<sha256(Idempotency-Key)>  "P <hash> <deadline_ms>
 *       <event_id> <event base64>" from the first request on, then
 *       "D <hash> <status> <body>" once answered; both live
 *       gateway.idempotency_ttl_s. A "P" past its deadline (the publish
 *       window: the producer's message.timeout.ms plus a margin) means the
 *       outcome is unknown: a retry republishes the same bytes;
 *   gw:rl:<key id>:<unix second>   fixed one-second window per API key;
 *   gw:order:<order_id>            the app that placed the order (tenant
 *       isolation before the ledger has recorded it; PostgreSQL after,
 *       read through pgq.c, also without blocking);
 *   gw:campaign:<campaign_id>      the app a campaign belongs to (the
 *       record's campaigns table when Redis does not know it);
 *   gw:cap:<app>:<campaign>:<user> set of the orders one user sent to a
 *       campaign (orders with campaign_id and joins; one order counts once).
 *
 * A publish runs every guard in one script (gw_guard): one round trip per
 * request, so concurrent requests share Redis's fsync. The script touches
 * up to five keys in different slots: the gateway's state lives on one
 * Redis node (it is small), not on a Redis Cluster.
 *
 * Every check is asynchronous (rds.c): it copies what it needs into a
 * small context, sends, and answers its caller from the reply's callback.
 * Undo operations (abort, unclaim, give back) are fire and forget: if Redis
 * is down they are lost, and the TTLs above bound what is left behind.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "gateway.h"
#include "linli/error.h"
#include "linli/clock.h"
#include "linli/ids.h"
#include "linli/log.h"

#define CAP_TTL_S "2592000"   /* 30 days: longer than any campaign */
#define OWNER_TTL_S "2592000" /* the ledger has the order long before */

static const char RL_LUA[] =
    "local n = redis.call('INCR', KEYS[1])\n"
    "if n == 1 then redis.call('EXPIRE', KEYS[1], 2) end\n"
    "return n\n";

static void hex(const unsigned char *b, size_t n, char *out) {
  static const char d[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = d[b[i] >> 4];
    out[2 * i + 1] = d[b[i] & 15];
  }
  out[2 * n] = '\0';
}

static void rl_key(char *k, size_t len, const struct gw_key *key) {
  char id[17];
  hex(key->hash, 8, id);
  snprintf(k, len, "gw:rl:%s:%lld", id, (long long)time(NULL));
}

static void idem_key(char *k, size_t len, const char *app,
                     const char *idem) {
  unsigned char h[crypto_hash_sha256_BYTES];
  char hx[2 * sizeof h + 1];
  crypto_hash_sha256(h, (const unsigned char *)idem, strlen(idem));
  hex(h, sizeof h, hx);
  snprintf(k, len, "gw:idem:%s:%s", app, hx);
}

static void cap_key(char *k, size_t len, const char *app,
                    const char *campaign, const char *user) {
  snprintf(k, len, "gw:cap:%s:%s:%s", app, campaign, user);
}

/* A reply that is not an answer: Redis unreachable, or an error reply. */
static int failed(const redisReply *rep) {
  return !rep || rep->type == REDIS_REPLY_ERROR;
}

/* ------------------------------------------------------------ rate limit */

struct rate_ctx {
  gw_rate_fn fn;
  void *arg;
};

static void on_rate(struct gw *gw, const redisReply *rep, void *arg) {
  struct rate_ctx *c = arg;
  int wait = -1;
  if (rep && rep->type == REDIS_REPLY_INTEGER)
    wait = rep->integer > gw->rate_limit ? 1 : 0; /* one-second window */
  c->fn(gw, wait, c->arg);
  free(c);
}

void gw_rate_check(struct gw *gw, const struct gw_key *key, gw_rate_fn fn,
                   void *arg) {
  if (gw->rate_limit <= 0) {
    fn(gw, 0, arg);
    return;
  }
  struct rate_ctx *c = malloc(sizeof *c);
  if (!c) {
    fn(gw, -1, arg);
    return;
  }
  c->fn = fn;
  c->arg = arg;
  char k[96];
  rl_key(k, sizeof k, key);
  const char *keys[] = {k};
  gw_redis_eval(gw, RL_LUA, on_rate, c, 1, keys, 0, NULL);
}

/* ---------------------------------------------------------- idempotency */

static void on_idem_done(struct gw *gw, const redisReply *rep, void *arg) {
  (void)gw;
  (void)arg;
  if (failed(rep))
    LINLI_WARN("idempotency answer not recorded", NULL);
}

void gw_idem_done(struct gw *gw, const char *app_id, const char *key,
                  const char *req_hash, int status, const char *body) {
  char k[192], ttl[32];
  idem_key(k, sizeof k, app_id, key);
  size_t n = strlen(req_hash) + strlen(body) + 16;
  char *val = malloc(n);
  if (!val)
    return;
  snprintf(val, n, "D %s %d %s", req_hash, status, body);
  snprintf(ttl, sizeof ttl, "%lld", (long long)gw->idem_ttl_s);
  const char *set[] = {"SET", k, val, "EX", ttl};
  gw_redis_cmd(gw, on_idem_done, NULL, 5, set); /* hiredis copied argv */
  free(val);
}

void gw_idem_abort(struct gw *gw, const char *app_id, const char *key) {
  char k[192];
  idem_key(k, sizeof k, app_id, key);
  const char *del[] = {"DEL", k};
  gw_redis_cmd(gw, NULL, NULL, 2, del);
}

/* -------------------------------------------------------------- guard */

/* KEYS: 1 rate window, 2 idempotency, 3 order, 4 campaign, 5 cap set.
 * ARGV: 1 app, 2 rate limit (0: none), 3 request hash ('' : no key),
 * 4 order mode ('', claim, own), 5 campaign mode ('', check, open),
 * 6 campaign owner (open), 7 cap (0: none), 8 cap member, 9 now (ms),
 * 10 publish window (ms), 11 event id, 12 event (base64), 13 key TTL (s),
 * 14 owner/campaign/cap TTL (s).
 * Checks first, writes last: a refused request leaves nothing behind but
 * its rate-window count. */
static const char GUARD_LUA[] =
    "local app, hash, now = ARGV[1], ARGV[3], tonumber(ARGV[9])\n"
    "local lim = tonumber(ARGV[2])\n"
    "if lim > 0 then\n"
    "  local n = redis.call('INCR', KEYS[1])\n"
    "  if n == 1 then redis.call('EXPIRE', KEYS[1], 2) end\n"
    "  if n > lim then return {'RATE'} end\n"
    "end\n"
    "if hash ~= '' then\n"
    "  local v = redis.call('GET', KEYS[2])\n"
    "  if v then\n"
    "    if string.sub(v, 3, 2 + #hash) ~= hash then return {'REUSED'} end\n"
    "    if string.sub(v, 1, 1) == 'D' then\n"
    "      return {'DONE', string.sub(v, 4 + #hash)} end\n"
    "    local d, e, pl = string.match(v, '^P %S+ (%d+) (%S+) (%S+)$')\n"
    "    if not d then return {'REUSED'} end\n"
    "    if tonumber(d) > now then return {'BUSY'} end\n"
    "    redis.call('SET', KEYS[2], 'P ' .. hash .. ' ' ..\n"
    "      string.format('%d', now + tonumber(ARGV[10])) .. ' ' .. e .. ' ' ..\n"
    "      pl, 'KEEPTTL')\n"
    "    return {'REPUB', e, pl}\n"
    "  end\n"
    "end\n"
    "local om, owner = ARGV[4], false\n"
    "if om ~= '' then\n"
    "  owner = redis.call('GET', KEYS[3])\n"
    "  if om == 'own' then\n"
    "    if not owner then return {'NOOWNER'} end\n"
    "    if owner ~= app then return {'NOTOURS'} end\n"
    "  elseif owner and owner ~= app then return {'TAKEN'} end\n"
    "end\n"
    "local cm, camp = ARGV[5], false\n"
    "if cm ~= '' then\n"
    "  camp = redis.call('GET', KEYS[4])\n"
    "  if cm == 'check' then\n"
    "    if not camp then return {'NOCAMPAIGN'} end\n"
    "    if camp ~= app then return {'CAMPAIGN_NOTOURS'} end\n"
    "  elseif camp and camp ~= ARGV[6] then return {'CAMPAIGN_TAKEN'} end\n"
    "end\n"
    "local cap, cap_added = tonumber(ARGV[7]), 0\n"
    "if cap > 0 and redis.call('SISMEMBER', KEYS[5], ARGV[8]) == 0 then\n"
    "  if redis.call('SCARD', KEYS[5]) >= cap then return {'CAP'} end\n"
    "  cap_added = 1\n"
    "end\n"
    "if hash ~= '' then\n"
    "  redis.call('SET', KEYS[2], 'P ' .. hash .. ' ' ..\n"
    "    string.format('%d', now + tonumber(ARGV[10])) .. ' ' .. ARGV[11] ..\n"
    "    ' ' .. ARGV[12], 'EX', ARGV[13])\n"
    "end\n"
    "local fresh, cfresh = 0, 0\n"
    "if om == 'claim' and not owner then\n"
    "  redis.call('SET', KEYS[3], app, 'EX', ARGV[14]) fresh = 1 end\n"
    "if cm == 'open' and not camp then\n"
    "  redis.call('SET', KEYS[4], ARGV[6], 'EX', ARGV[14]) cfresh = 1 end\n"
    "if cap_added == 1 then\n"
    "  redis.call('SADD', KEYS[5], ARGV[8])\n"
    "  redis.call('EXPIRE', KEYS[5], ARGV[14])\n"
    "end\n"
    "return {'OK', fresh, cfresh, cap_added}\n";

struct guard_ctx {
  gw_guard_fn fn;
  void *arg;
};

static const struct {
  const char *word;
  enum gw_guard_rc rc;
} GUARD_WORDS[] = {
    {"OK", GW_G_OK},
    {"RATE", GW_G_RATE},
    {"DONE", GW_G_DONE},
    {"BUSY", GW_G_BUSY},
    {"REUSED", GW_G_REUSED},
    {"REPUB", GW_G_REPUB},
    {"TAKEN", GW_G_TAKEN},
    {"NOOWNER", GW_G_NOOWNER},
    {"NOTOURS", GW_G_NOTOURS},
    {"NOCAMPAIGN", GW_G_NOCAMPAIGN},
    {"CAMPAIGN_NOTOURS", GW_G_CAMPAIGN_NOTOURS},
    {"CAMPAIGN_TAKEN", GW_G_CAMPAIGN_TAKEN},
    {"CAP", GW_G_CAP},
};

static int el_str(const redisReply *rep, size_t i) {
  return i < rep->elements && rep->element[i]->type == REDIS_REPLY_STRING;
}

static int el_int(const redisReply *rep, size_t i) {
  return i < rep->elements && rep->element[i]->type == REDIS_REPLY_INTEGER
             ? (int)rep->element[i]->integer
             : 0;
}

/* The script's reply as a result; GW_G_DOWN for anything malformed. */
static void guard_parse(const redisReply *rep, struct gw_guard_res *res) {
  memset(res, 0, sizeof *res);
  res->rc = GW_G_DOWN;
  if (failed(rep) || rep->type != REDIS_REPLY_ARRAY || !el_str(rep, 0))
    return;
  const char *w = rep->element[0]->str;
  size_t i;
  for (i = 0; i < sizeof GUARD_WORDS / sizeof GUARD_WORDS[0]; i++)
    if (strcmp(w, GUARD_WORDS[i].word) == 0)
      break;
  if (i == sizeof GUARD_WORDS / sizeof GUARD_WORDS[0])
    return;
  enum gw_guard_rc rc = GUARD_WORDS[i].rc;
  if (rc == GW_G_DONE) {
    /* "<status> <body>"; hiredis NUL-terminates the string. */
    char *end = NULL;
    long st = el_str(rep, 1) ? strtol(rep->element[1]->str, &end, 10) : 0;
    if (!end || *end != ' ' || st < 100 || st > 599)
      return;
    res->status = (int)st;
    res->body = end + 1;
  } else if (rc == GW_G_REPUB) {
    if (!el_str(rep, 1) || !el_str(rep, 2))
      return;
    res->event_id = rep->element[1]->str;
    res->payload64 = rep->element[2]->str;
  } else if (rc == GW_G_OK) {
    res->order_fresh = el_int(rep, 1);
    res->campaign_fresh = el_int(rep, 2);
    res->cap_added = el_int(rep, 3);
  }
  res->rc = rc;
}

static void on_guard(struct gw *gw, const redisReply *rep, void *arg) {
  struct guard_ctx *c = arg;
  struct gw_guard_res res;
  guard_parse(rep, &res);
  if (rep && rep->type == REDIS_REPLY_ERROR)
    LINLI_WARN("guard script failed", "reason=\"%.200s\"", rep->str);
  c->fn(gw, &res, c->arg);
  free(c);
}

void gw_guard(struct gw *gw, const struct gw_guard_req *q, gw_guard_fn fn,
              void *arg) {
  static const char *const OM[] = {"", "claim", "own"};
  static const char *const CM[] = {"", "check", "open"};
  struct guard_ctx *c = malloc(sizeof *c);
  if (!c) {
    struct gw_guard_res res = {.rc = GW_G_DOWN};
    fn(gw, &res, arg);
    return;
  }
  c->fn = fn;
  c->arg = arg;
  char krl[96] = "gw:rl:-", kid[192] = "gw:idem:-", kord[96] = "gw:order:-",
       kcamp[96] = "gw:campaign:-", kcap[256] = "gw:cap:-";
  char lim[24] = "0", cap[24] = "0", now[24], win[24], ttl[24];
  if (q->rate_key && gw->rate_limit > 0) {
    rl_key(krl, sizeof krl, q->rate_key);
    snprintf(lim, sizeof lim, "%lld", (long long)gw->rate_limit);
  }
  if (q->idem)
    idem_key(kid, sizeof kid, q->app, q->idem);
  if (q->order_mode != GW_ORDER_NONE)
    snprintf(kord, sizeof kord, "gw:order:%s", q->order);
  if (q->campaign_mode != GW_CAMPAIGN_NONE)
    snprintf(kcamp, sizeof kcamp, "gw:campaign:%s", q->campaign);
  if (q->cap_user && gw->user_cap > 0) {
    cap_key(kcap, sizeof kcap, q->app, q->campaign, q->cap_user);
    snprintf(cap, sizeof cap, "%lld", (long long)gw->user_cap);
  }
  snprintf(now, sizeof now, "%lld", (long long)linli_clock_now_ms());
  /* The delivery report comes by message.timeout.ms after the send; the
   * margin covers the loop and the script's own round trip. */
  snprintf(win, sizeof win, "%lld", (long long)gw->publish_timeout_ms + 2000);
  snprintf(ttl, sizeof ttl, "%lld", (long long)gw->idem_ttl_s);
  const char *keys[] = {krl, kid, kord, kcamp, kcap};
  const char *args[] = {q->app,
                        lim,
                        q->idem ? q->hash : "",
                        OM[q->order_mode],
                        CM[q->campaign_mode],
                        q->campaign_app ? q->campaign_app : "",
                        cap,
                        q->cap_member ? q->cap_member : "",
                        now,
                        win,
                        q->event_id ? q->event_id : "-",
                        q->payload64 ? q->payload64 : "-",
                        ttl,
                        CAP_TTL_S};
  gw_redis_eval(gw, GUARD_LUA, on_guard, c, 5, keys,
                (int)(sizeof args / sizeof args[0]), args);
}

void gw_cap_give_back(struct gw *gw, const char *app, const char *campaign_id,
                      const char *user_id, const char *order_id) {
  char k[256];
  cap_key(k, sizeof k, app, campaign_id, user_id);
  const char *argv[] = {"SREM", k, order_id};
  gw_redis_cmd(gw, NULL, NULL, 3, argv);
}

void gw_campaign_unclaim(struct gw *gw, const char *campaign_id) {
  char k[96];
  snprintf(k, sizeof k, "gw:campaign:%s", campaign_id);
  const char *del[] = {"DEL", k};
  gw_redis_cmd(gw, NULL, NULL, 2, del);
}

/* Zero the in-flight deadline of our own "P" marker. */
static const char UNKNOWN_LUA[] =
    "local v = redis.call('GET', KEYS[1])\n"
    "if not v or string.sub(v, 1, 2 + #ARGV[1]) ~= 'P ' .. ARGV[1] then\n"
    "  return 0 end\n"
    "local e, pl = string.match(v, '^P %S+ %d+ (%S+) (%S+)$')\n"
    "if not e then return 0 end\n"
    "redis.call('SET', KEYS[1], 'P ' .. ARGV[1] .. ' 0 ' .. e .. ' ' .. pl,\n"
    "  'KEEPTTL')\n"
    "return 1\n";

void gw_idem_unknown(struct gw *gw, const char *app_id, const char *key,
                     const char *req_hash) {
  char k[192];
  idem_key(k, sizeof k, app_id, key);
  const char *keys[] = {k};
  const char *args[] = {req_hash};
  gw_redis_eval(gw, UNKNOWN_LUA, NULL, NULL, 1, keys, 1, args);
}

/* ------------------------------------------------------ order ownership */

struct owner_ctx {
  gw_owner_fn fn;
  void *arg;
  char order[LINLI_ID_BUFSZ];
};

static void on_owner_pg(struct gw *gw, int rc, const char *app, void *arg) {
  struct owner_ctx *c = arg;
  c->fn(gw, rc, app, c->arg);
  free(c);
}

static void on_owner(struct gw *gw, const redisReply *rep, void *arg) {
  struct owner_ctx *c = arg;
  if (failed(rep)) {
    c->fn(gw, LINLI_ERR_TRANSIENT, NULL, c->arg);
  } else if (rep->type == REDIS_REPLY_STRING) {
    c->fn(gw, LINLI_OK, rep->str, c->arg);
  } else {
    /* Placed through another producer, or long ago: the record knows. */
    gw_pg_order_app(gw, c->order, on_owner_pg, c);
    return;
  }
  free(c);
}

void gw_order_owner(struct gw *gw, const char *order_id, gw_owner_fn fn,
                    void *arg) {
  struct owner_ctx *c = malloc(sizeof *c);
  if (!c) {
    fn(gw, LINLI_ERR_TRANSIENT, NULL, arg);
    return;
  }
  c->fn = fn;
  c->arg = arg;
  snprintf(c->order, sizeof c->order, "%s", order_id);
  char k[96];
  snprintf(k, sizeof k, "gw:order:%s", order_id);
  const char *get[] = {"GET", k};
  gw_redis_cmd(gw, on_owner, c, 2, get);
}

void gw_order_unclaim(struct gw *gw, const char *order_id) {
  char k[96];
  snprintf(k, sizeof k, "gw:order:%s", order_id);
  const char *del[] = {"DEL", k};
  gw_redis_cmd(gw, NULL, NULL, 2, del);
}
