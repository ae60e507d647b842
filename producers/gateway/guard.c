/*
 * guard.c - the gateway's shared state in Redis, so that any number of
 * gateway instances behind a load balancer agree:
 *   gw:idem:<app>:<sha256(Idempotency-Key)>  "P <hash>" while the first
 *       request is in flight (short TTL, in case the gateway dies), then
 *       "D <hash> <status> <body>" for gateway.idempotency_ttl_s;
 *   gw:rl:<key id>:<unix second>   fixed one-second window per API key;
 *   gw:cap:<campaign>:<user>       set of the orders one user sent to a
 *       campaign (orders with campaign_id and joins; one order counts once);
 *   gw:order:<order_id>            the app that placed the order (tenant
 *       isolation before the ledger has recorded it; PostgreSQL after,
 *       read through pgq.c, also without blocking).
 * Single-key commands and scripts only, so Redis Cluster works unchanged.
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
#include "linli/log.h"
#include "linli/ids.h"

#define PENDING_TTL_S "120"
#define CAP_TTL_S "2592000"   /* 30 days: longer than any campaign */
#define OWNER_TTL_S "2592000" /* the ledger has the order long before */

static const char RL_LUA[] =
    "local n = redis.call('INCR', KEYS[1])\n"
    "if n == 1 then redis.call('EXPIRE', KEYS[1], 2) end\n"
    "return n\n";

/* The set of orders one user sent to a campaign (an order and its join
 * count once). Returns 2 when order ARGV[3] was added now, 1 when it was
 * there already, 0 when adding it would pass the cap ARGV[1]. */
static const char CAP_LUA[] =
    "if redis.call('SADD', KEYS[1], ARGV[3]) == 0 then return 1 end\n"
    "if redis.call('SCARD', KEYS[1]) > tonumber(ARGV[1]) then\n"
    "  redis.call('SREM', KEYS[1], ARGV[3]) return 0 end\n"
    "redis.call('EXPIRE', KEYS[1], ARGV[2])\n"
    "return 2\n";

static void hex(const unsigned char *b, size_t n, char *out) {
  static const char d[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = d[b[i] >> 4];
    out[2 * i + 1] = d[b[i] & 15];
  }
  out[2 * n] = '\0';
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
  char id[17], k[96];
  hex(key->hash, 8, id);
  snprintf(k, sizeof k, "gw:rl:%s:%lld", id, (long long)time(NULL));
  const char *keys[] = {k};
  gw_redis_eval(gw, RL_LUA, on_rate, c, 1, keys, 0, NULL);
}

/* ------------------------------------------------------------------ caps */

struct cap_ctx {
  gw_cap_fn fn;
  void *arg;
};

static void cap_key(char *k, size_t len, const char *campaign,
                    const char *user) {
  snprintf(k, len, "gw:cap:%s:%s", campaign, user);
}

static void on_cap(struct gw *gw, const redisReply *rep, void *arg) {
  struct cap_ctx *c = arg;
  int rc = LINLI_OK, added = 0;
  if (!rep || rep->type != REDIS_REPLY_INTEGER)
    rc = LINLI_ERR_TRANSIENT;
  else if (rep->integer == 0)
    rc = LINLI_ERR_CONFLICT;
  else
    added = rep->integer == 2;
  c->fn(gw, rc, added, c->arg);
  free(c);
}

void gw_cap_take(struct gw *gw, const char *campaign_id, const char *user_id,
                 const char *order_id, gw_cap_fn fn, void *arg) {
  if (gw->user_cap <= 0 || !campaign_id || !campaign_id[0]) {
    fn(gw, LINLI_OK, 0, arg);
    return;
  }
  struct cap_ctx *c = malloc(sizeof *c);
  if (!c) {
    fn(gw, LINLI_ERR_TRANSIENT, 0, arg);
    return;
  }
  c->fn = fn;
  c->arg = arg;
  char k[160], cap[32];
  cap_key(k, sizeof k, campaign_id, user_id);
  snprintf(cap, sizeof cap, "%lld", (long long)gw->user_cap);
  const char *keys[] = {k};
  const char *args[] = {cap, CAP_TTL_S, order_id};
  gw_redis_eval(gw, CAP_LUA, on_cap, c, 1, keys, 3, args);
}

void gw_cap_give_back(struct gw *gw, const char *campaign_id,
                      const char *user_id, const char *order_id) {
  char k[160];
  cap_key(k, sizeof k, campaign_id, user_id);
  const char *argv[] = {"SREM", k, order_id};
  gw_redis_cmd(gw, NULL, NULL, 3, argv);
}

/* ---------------------------------------------------------- idempotency */

struct idem_ctx {
  gw_idem_fn fn;
  void *arg;
  char k[192];
  char hash[65];
};

static void idem_key(char *k, size_t len, const char *app,
                     const char *idem) {
  unsigned char h[crypto_hash_sha256_BYTES];
  char hx[2 * sizeof h + 1];
  crypto_hash_sha256(h, (const unsigned char *)idem, strlen(idem));
  hex(h, sizeof h, hx);
  snprintf(k, len, "gw:idem:%s:%s", app, hx);
}

static void idem_answer(struct gw *gw, struct idem_ctx *c, int rc,
                        int status, const char *body) {
  c->fn(gw, rc, status, body, c->arg);
  free(c);
}

static void on_idem_get(struct gw *gw, const redisReply *rep, void *arg) {
  struct idem_ctx *c = arg;
  size_t hl = strlen(c->hash);
  if (failed(rep)) {
    idem_answer(gw, c, LINLI_ERR_TRANSIENT, 0, NULL);
  } else if (rep->type != REDIS_REPLY_STRING) {
    /* Expired between SET and GET: the caller may simply retry. */
    idem_answer(gw, c, 2, 0, NULL);
  } else if (rep->len < hl + 2 || memcmp(rep->str + 2, c->hash, hl) != 0) {
    idem_answer(gw, c, LINLI_ERR_CONFLICT, 0, NULL);
  } else if (rep->str[0] == 'P') {
    idem_answer(gw, c, 2, 0, NULL);
  } else {
    /* "D <hash> <status> <body>"; hiredis NUL-terminates the string. */
    const char *p = rep->str + 2 + hl;
    char *end = NULL;
    long st = strtol(p, &end, 10);
    if (!end || *end != ' ' || st < 100 || st > 599)
      idem_answer(gw, c, LINLI_ERR_TRANSIENT, 0, NULL);
    else
      idem_answer(gw, c, 1, (int)st, end + 1);
  }
}

static void on_idem_set(struct gw *gw, const redisReply *rep, void *arg) {
  struct idem_ctx *c = arg;
  if (failed(rep)) {
    idem_answer(gw, c, LINLI_ERR_TRANSIENT, 0, NULL);
  } else if (rep->type == REDIS_REPLY_STATUS) {
    idem_answer(gw, c, LINLI_OK, 0, NULL); /* claimed */
  } else {
    const char *get[] = {"GET", c->k};
    gw_redis_cmd(gw, on_idem_get, c, 2, get);
  }
}

void gw_idem_begin(struct gw *gw, const char *app_id, const char *key,
                   const char *req_hash, gw_idem_fn fn, void *arg) {
  struct idem_ctx *c = malloc(sizeof *c);
  if (!c) {
    fn(gw, LINLI_ERR_TRANSIENT, 0, NULL, arg);
    return;
  }
  c->fn = fn;
  c->arg = arg;
  idem_key(c->k, sizeof c->k, app_id, key);
  snprintf(c->hash, sizeof c->hash, "%s", req_hash);
  char val[96];
  snprintf(val, sizeof val, "P %s", req_hash);
  const char *set[] = {"SET", c->k, val, "NX", "EX", PENDING_TTL_S};
  gw_redis_cmd(gw, on_idem_set, c, 6, set);
}

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

struct claim_ctx {
  gw_claim_fn fn;
  void *arg;
  char order[LINLI_ID_BUFSZ];
  char app[LINLI_ID_BUFSZ];
  int tries;
};

static void claim_answer(struct gw *gw, struct claim_ctx *c, int rc,
                         int fresh) {
  c->fn(gw, rc, fresh, c->arg);
  free(c);
}

static void claim_send(struct gw *gw, struct claim_ctx *c);

static void on_claim_owner(struct gw *gw, int rc, const char *owner,
                           void *arg) {
  struct claim_ctx *c = arg;
  if (rc == LINLI_ERR_NOTFOUND && c->tries < 3)
    claim_send(gw, c); /* expired in between: claim again */
  else if (rc == LINLI_OK)
    claim_answer(gw, c,
                 strcmp(owner, c->app) == 0 ? LINLI_OK : LINLI_ERR_CONFLICT,
                 0);
  else
    claim_answer(gw, c, LINLI_ERR_TRANSIENT, 0);
}

static void on_claim_pg(struct gw *gw, int rc, const char *owner,
                        void *arg) {
  struct claim_ctx *c = arg;
  if (rc == LINLI_OK && strcmp(owner, c->app) != 0) {
    gw_order_unclaim(gw, c->order);
    claim_answer(gw, c, LINLI_ERR_CONFLICT, 0);
    return;
  }
  /* Not in the record, or the record unreachable: the Redis claim holds
   * (the record is checked again by the ledger). */
  claim_answer(gw, c, LINLI_OK, 1);
}

static void on_claim_set(struct gw *gw, const redisReply *rep, void *arg) {
  struct claim_ctx *c = arg;
  if (failed(rep)) {
    claim_answer(gw, c, LINLI_ERR_TRANSIENT, 0);
    return;
  }
  if (rep->type != REDIS_REPLY_STATUS) {
    gw_order_owner(gw, c->order, on_claim_owner, c);
    return;
  }
  /* Redis may have lost the claim of an order the record already holds. */
  gw_pg_order_app(gw, c->order, on_claim_pg, c);
}

static void claim_send(struct gw *gw, struct claim_ctx *c) {
  char k[96];
  c->tries++;
  snprintf(k, sizeof k, "gw:order:%s", c->order);
  const char *set[] = {"SET", k, c->app, "NX", "EX", OWNER_TTL_S};
  gw_redis_cmd(gw, on_claim_set, c, 6, set);
}

void gw_order_claim(struct gw *gw, const char *order_id, const char *app,
                    gw_claim_fn fn, void *arg) {
  struct claim_ctx *c = calloc(1, sizeof *c);
  if (!c) {
    fn(gw, LINLI_ERR_TRANSIENT, 0, arg);
    return;
  }
  c->fn = fn;
  c->arg = arg;
  snprintf(c->order, sizeof c->order, "%s", order_id);
  snprintf(c->app, sizeof c->app, "%s", app);
  claim_send(gw, c);
}

void gw_order_unclaim(struct gw *gw, const char *order_id) {
  char k[96];
  snprintf(k, sizeof k, "gw:order:%s", order_id);
  const char *del[] = {"DEL", k};
  gw_redis_cmd(gw, NULL, NULL, 2, del);
}
