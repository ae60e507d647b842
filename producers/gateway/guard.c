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
 *       isolation before the ledger has recorded it; PostgreSQL after).
 * Single-key commands and scripts only, so Redis Cluster works unchanged.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "gateway.h"
#include "linli/error.h"
#include "linli/log.h"

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

int gw_guard_init(struct gw *gw, char *err, size_t errlen) {
  if (linli_redis_script_register(gw->redis, "gateway-rate", RL_LUA,
                                  &gw->rl_script) != LINLI_OK ||
      linli_redis_script_register(gw->redis, "gateway-cap", CAP_LUA,
                                  &gw->cap_script) != LINLI_OK) {
    snprintf(err, errlen, "cannot load the gateway's Redis scripts");
    return LINLI_ERR_TRANSIENT;
  }
  return LINLI_OK;
}

static void hex(const unsigned char *b, size_t n, char *out) {
  static const char d[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = d[b[i] >> 4];
    out[2 * i + 1] = d[b[i] & 15];
  }
  out[2 * n] = '\0';
}

int gw_rate_check(struct gw *gw, const struct gw_key *key) {
  if (gw->rate_limit <= 0)
    return 0;
  char id[17], k[96];
  hex(key->hash, 8, id);
  snprintf(k, sizeof k, "gw:rl:%s:%lld", id, (long long)time(NULL));
  const char *keys[] = {k};
  redisReply *rep = NULL;
  if (linli_redis_eval(gw->redis, gw->rl_script, 1, keys, 0, NULL, NULL,
                       &rep) != LINLI_OK)
    return -1;
  int rc = 0;
  if (rep->type != REDIS_REPLY_INTEGER)
    rc = -1;
  else if (rep->integer > gw->rate_limit)
    rc = 1; /* the window is one second: retry in the next */
  freeReplyObject(rep);
  return rc;
}

static void cap_key(char *k, size_t len, const char *campaign,
                    const char *user) {
  snprintf(k, len, "gw:cap:%s:%s", campaign, user);
}

int gw_cap_take(struct gw *gw, const char *campaign_id, const char *user_id,
                const char *order_id, int *added) {
  *added = 0;
  if (gw->user_cap <= 0 || !campaign_id || !campaign_id[0])
    return LINLI_OK;
  char k[160], cap[32];
  cap_key(k, sizeof k, campaign_id, user_id);
  snprintf(cap, sizeof cap, "%lld", (long long)gw->user_cap);
  const char *keys[] = {k};
  const char *args[] = {cap, CAP_TTL_S, order_id};
  redisReply *rep = NULL;
  if (linli_redis_eval(gw->redis, gw->cap_script, 1, keys, 3, args, NULL,
                       &rep) != LINLI_OK)
    return LINLI_ERR_TRANSIENT;
  int rc = LINLI_OK;
  if (rep->type != REDIS_REPLY_INTEGER)
    rc = LINLI_ERR_TRANSIENT;
  else if (rep->integer == 0)
    rc = LINLI_ERR_CONFLICT;
  else
    *added = rep->integer == 2;
  freeReplyObject(rep);
  return rc;
}

void gw_cap_give_back(struct gw *gw, const char *campaign_id,
                      const char *user_id, const char *order_id) {
  char k[160];
  cap_key(k, sizeof k, campaign_id, user_id);
  const char *argv[] = {"SREM", k, order_id};
  redisReply *rep = NULL;
  if (linli_redis_command(gw->redis, 3, argv, NULL, &rep) == LINLI_OK)
    freeReplyObject(rep);
}

/* ---------------------------------------------------------- idempotency */

static void idem_key(char *k, size_t len, const char *app,
                     const char *idem) {
  unsigned char h[crypto_hash_sha256_BYTES];
  char hx[2 * sizeof h + 1];
  crypto_hash_sha256(h, (const unsigned char *)idem, strlen(idem));
  hex(h, sizeof h, hx);
  snprintf(k, len, "gw:idem:%s:%s", app, hx);
}

int gw_idem_begin(struct gw *gw, const char *app_id, const char *key,
                  const char *req_hash, int *status, char **body) {
  char k[192], val[96];
  idem_key(k, sizeof k, app_id, key);
  snprintf(val, sizeof val, "P %s", req_hash);
  const char *set[] = {"SET", k, val, "NX", "EX", PENDING_TTL_S};
  redisReply *rep = NULL;
  if (linli_redis_command(gw->redis, 6, set, NULL, &rep) != LINLI_OK)
    return LINLI_ERR_TRANSIENT;
  int claimed = rep->type == REDIS_REPLY_STATUS;
  int error = rep->type == REDIS_REPLY_ERROR;
  freeReplyObject(rep);
  if (error)
    return LINLI_ERR_TRANSIENT;
  if (claimed)
    return LINLI_OK;
  const char *get[] = {"GET", k};
  if (linli_redis_command(gw->redis, 2, get, NULL, &rep) != LINLI_OK)
    return LINLI_ERR_TRANSIENT;
  int rc;
  size_t hl = strlen(req_hash);
  if (rep->type != REDIS_REPLY_STRING) {
    /* Expired between SET and GET: the caller may simply retry. */
    rc = 2;
  } else if (rep->len < hl + 2 || memcmp(rep->str + 2, req_hash, hl) != 0) {
    rc = LINLI_ERR_CONFLICT;
  } else if (rep->str[0] == 'P') {
    rc = 2;
  } else {
    /* "D <hash> <status> <body>" */
    const char *p = rep->str + 2 + hl;
    char *end = NULL;
    long st = strtol(p, &end, 10);
    if (!end || *end != ' ' || st < 100 || st > 599) {
      rc = LINLI_ERR_TRANSIENT;
    } else {
      *status = (int)st;
      *body = strdup(end + 1);
      rc = *body ? 1 : LINLI_ERR_NOMEM;
    }
  }
  freeReplyObject(rep);
  return rc;
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
  redisReply *rep = NULL;
  if (linli_redis_command(gw->redis, 5, set, NULL, &rep) == LINLI_OK)
    freeReplyObject(rep);
  else
    LINLI_WARN("idempotency answer not recorded", "app=%s", app_id);
  free(val);
}

void gw_idem_abort(struct gw *gw, const char *app_id, const char *key) {
  char k[192];
  idem_key(k, sizeof k, app_id, key);
  const char *del[] = {"DEL", k};
  redisReply *rep = NULL;
  if (linli_redis_command(gw->redis, 2, del, NULL, &rep) == LINLI_OK)
    freeReplyObject(rep);
}

/* ------------------------------------------------------ order ownership */

int gw_order_owner(struct gw *gw, const char *order_id, char *app,
                   size_t applen) {
  char k[96];
  snprintf(k, sizeof k, "gw:order:%s", order_id);
  const char *get[] = {"GET", k};
  redisReply *rep = NULL;
  if (linli_redis_command(gw->redis, 2, get, NULL, &rep) != LINLI_OK)
    return LINLI_ERR_TRANSIENT;
  if (rep->type == REDIS_REPLY_STRING) {
    snprintf(app, applen, "%s", rep->str);
    freeReplyObject(rep);
    return LINLI_OK;
  }
  freeReplyObject(rep);
  /* Placed through another producer, or long ago: the record knows. */
  return gw_pg_order_app(gw, order_id, app, applen);
}

int gw_order_claim(struct gw *gw, const char *order_id, const char *app,
                   int *fresh) {
  char k[96], owner[72];
  *fresh = 0;
  snprintf(k, sizeof k, "gw:order:%s", order_id);
  const char *set[] = {"SET", k, app, "NX", "EX", OWNER_TTL_S};
  redisReply *rep = NULL;
  if (linli_redis_command(gw->redis, 6, set, NULL, &rep) != LINLI_OK)
    return LINLI_ERR_TRANSIENT;
  int claimed = rep->type == REDIS_REPLY_STATUS;
  freeReplyObject(rep);
  if (!claimed) {
    int rc = gw_order_owner(gw, order_id, owner, sizeof owner);
    if (rc == LINLI_ERR_NOTFOUND) /* expired in between: claim again */
      return gw_order_claim(gw, order_id, app, fresh);
    if (rc != LINLI_OK)
      return rc;
    return strcmp(owner, app) == 0 ? LINLI_OK : LINLI_ERR_CONFLICT;
  }
  /* Redis may have lost the claim of an order the record already holds. */
  int rc = gw_pg_order_app(gw, order_id, owner, sizeof owner);
  if (rc == LINLI_OK && strcmp(owner, app) != 0) {
    gw_order_unclaim(gw, order_id);
    return LINLI_ERR_CONFLICT;
  }
  *fresh = 1;
  return LINLI_OK;
}

void gw_order_unclaim(struct gw *gw, const char *order_id) {
  char k[96];
  snprintf(k, sizeof k, "gw:order:%s", order_id);
  const char *del[] = {"DEL", k};
  redisReply *rep = NULL;
  if (linli_redis_command(gw->redis, 2, del, NULL, &rep) == LINLI_OK)
    freeReplyObject(rep);
}
