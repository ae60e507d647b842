/*
 * redis.c - the synchronous Redis connection behind linli's hot state.
 *
 * One hiredis context per linli_redis_t (not thread-safe: one per thread).
 * A lost connection is replaced transparently: the failed command is retried
 * once after a reconnect with backoff (100 ms doubling to 2 s, bounded by the
 * connect timeout). Scripts are kept in a registry (Lua source + SHA1) and
 * run with EVALSHA; a NOSCRIPT reply (SCRIPT FLUSH, restart, failover to a
 * replica whose cache is empty) reloads the script and retries, which is how
 * scripts get loaded again after a reconnect. The high-water-mark wrapper
 * implements DESIGN.md "Exactly-once effects" rule 2.
 *
 * Commands always go through the argv API: user data is never a format
 * string.
 */
#include "linli/redis.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "linli/clock.h"
#include "linli/config.h"
#include "linli/error.h"
#include "linli/log.h"

/* ------------------------------------------------------------------------ */
/* Types and constants                                                       */
/* ------------------------------------------------------------------------ */

#define REDIS_BACKOFF_FIRST_MS 100
#define REDIS_BACKOFF_MAX_MS 2000
/* A connect attempt when the caller gave no budget (connect_timeout <= 0). */
#define REDIS_SINGLE_ATTEMPT_MS 2000
/* Floor of the per-command I/O timeout: a hung server must not block a
 * consumer forever, but a slow fsync (appendfsync always) must not trip it. */
#define REDIS_MIN_COMMAND_TIMEOUT_MS 5000
#define REDIS_DEFAULT_OUTCOME_TTL_S (7 * 24 * 3600)

struct linli_redis_script {
  char *name;                     /* for logs */
  char *lua;                      /* the full source sent by SCRIPT LOAD */
  char sha[41];                   /* hex SHA1 as Redis reported it */
  int hwm; /* 1: linli_redis_script_hwm, 2: linli_redis_script_batch */
  struct linli_redis_script *next;
};

struct linli_redis {
  char *host;
  int port;
  char *password;                 /* NULL when none */
  int connect_timeout_ms;
  int command_timeout_ms;
  int64_t outcome_ttl_s;
  redisContext *ctx;              /* NULL while disconnected */
  linli_redis_script_t *scripts;  /* registry, owned */
  char errstr[256];               /* last connection-level error */
};

/* The HWM wrapper around a body (see redis.h). The body becomes a local
 * function so that its `return` yields the outcome. A body error (error()
 * or `return redis.error_reply(...)`) propagates before the mark and the
 * outcome are written, so a failed input leaves no HWM state behind (writes
 * the body itself made before failing are NOT undone: Redis has no rollback,
 * so bodies validate before they write).
 *
 * Offsets compare as Lua numbers (doubles): exact up to 2^53, far beyond
 * any Kafka offset; the mark itself is stored as the decimal string.
 *
 * When offset <= mark but the outcome key has expired (older than the TTL)
 * or never existed (an offset skipped over), the reply is {1, ''}: the
 * effect is known to be applied or superseded, its outcome is unknown. */
static const char HWM_PROLOGUE[] =
    "local hwm = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '-1')\n"
    "if tonumber(ARGV[2]) <= hwm then\n"
    "  local o = redis.call('GET', KEYS[2])\n"
    "  if o then return {1, o} end\n"
    "  return {1, ''}\n"
    "end\n"
    "local outcome = (function()\n";
static const char HWM_EPILOGUE[] =
    "\nend)()\n"
    "if type(outcome) == 'table' then\n"
    "  if outcome.err then return outcome end\n"
    "  if outcome.ok then outcome = outcome.ok end\n"
    "end\n"
    "if type(outcome) == 'number' then outcome = tostring(outcome) end\n"
    "if type(outcome) ~= 'string' then\n"
    "  return redis.error_reply('linli hwm: body must return a string')\n"
    "end\n"
    "redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])\n"
    "redis.call('SET', KEYS[2], outcome, 'EX', ARGV[3])\n"
    "return {0, outcome}\n";

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */
/* ------------------------------------------------------------------------ */

static void set_err(char *err, size_t errlen, const char *fmt, const char *a) {
  if (err != NULL && errlen > 0)
    snprintf(err, errlen, fmt, a != NULL ? a : "");
}

static void sleep_ms(int64_t ms) {
  if (ms <= 0)
    return;
  struct timespec ts = {.tv_sec = (time_t)(ms / 1000),
                        .tv_nsec = (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

static struct timeval ms_to_tv(int64_t ms) {
  struct timeval tv = {.tv_sec = (time_t)(ms / 1000),
                       .tv_usec = (suseconds_t)((ms % 1000) * 1000)};
  return tv;
}

static void drop_ctx(linli_redis_t *r) {
  if (r->ctx != NULL) {
    redisFree(r->ctx);
    r->ctx = NULL;
  }
}

static int is_error_reply(const redisReply *rep) {
  return rep != NULL && rep->type == REDIS_REPLY_ERROR;
}

/* Error replies that mean "the server cannot serve this right now", as
 * opposed to "this script/command is wrong". */
static int error_reply_is_transient(const redisReply *rep) {
  static const char *const prefixes[] = {
      "LOADING",  "BUSY",       "READONLY",    "MASTERDOWN", "TRYAGAIN",
      "CLUSTERDOWN", "NOREPLICAS", "MOVED",    "ASK",        "OOM",
  };
  if (rep->str == NULL)
    return 0;
  for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++) {
    size_t n = strlen(prefixes[i]);
    if (rep->len >= n && strncmp(rep->str, prefixes[i], n) == 0 &&
        (rep->len == n || rep->str[n] == ' '))
      return 1;
  }
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Connection                                                                */
/* ------------------------------------------------------------------------ */

/* One connect attempt. LINLI_OK with r->ctx set, LINLI_ERR_CONFIG when the
 * server rejects the password (retrying cannot help), else TRANSIENT. */
static int redis_connect_once(linli_redis_t *r, int64_t attempt_ms) {
  redisContext *c = redisConnectWithTimeout(r->host, r->port,
                                            ms_to_tv(attempt_ms));
  if (c == NULL) {
    snprintf(r->errstr, sizeof r->errstr, "out of memory");
    return LINLI_ERR_NOMEM;
  }
  if (c->err) {
    snprintf(r->errstr, sizeof r->errstr, "connect %s:%d: %s", r->host,
             r->port, c->errstr);
    redisFree(c);
    return LINLI_ERR_TRANSIENT;
  }
  if (redisSetTimeout(c, ms_to_tv(r->command_timeout_ms)) != REDIS_OK ||
      redisEnableKeepAlive(c) != REDIS_OK) {
    snprintf(r->errstr, sizeof r->errstr, "socket options: %s", c->errstr);
    redisFree(c);
    return LINLI_ERR_TRANSIENT;
  }
  if (r->password != NULL) {
    const char *argv[2] = {"AUTH", r->password};
    size_t lens[2] = {4, strlen(r->password)};
    redisReply *rep = redisCommandArgv(c, 2, argv, lens);
    if (rep == NULL) {
      snprintf(r->errstr, sizeof r->errstr, "AUTH: %s", c->errstr);
      redisFree(c);
      return LINLI_ERR_TRANSIENT;
    }
    if (is_error_reply(rep)) {
      int rc = error_reply_is_transient(rep) ? LINLI_ERR_TRANSIENT
                                             : LINLI_ERR_CONFIG;
      snprintf(r->errstr, sizeof r->errstr, "AUTH refused: %s", rep->str);
      freeReplyObject(rep);
      redisFree(c);
      return rc;
    }
    freeReplyObject(rep);
  }
  r->ctx = c;
  return LINLI_OK;
}

/* (Re)connect with backoff 100 ms doubling to 2 s, for up to the connect
 * timeout. Registered scripts are not loaded here: the first EVALSHA that
 * meets NOSCRIPT loads its script, so scripts never used again cost
 * nothing and a reconnect stays fast. */
static int redis_open(linli_redis_t *r) {
  drop_ctx(r);
  int64_t start = linli_clock_mono_ms();
  int64_t deadline =
      start + (r->connect_timeout_ms > 0 ? r->connect_timeout_ms : 0);
  int64_t backoff = REDIS_BACKOFF_FIRST_MS;
  int attempts = 0;
  for (;;) {
    int64_t now = linli_clock_mono_ms();
    int64_t attempt_ms = deadline - now;
    if (r->connect_timeout_ms <= 0)
      attempt_ms = REDIS_SINGLE_ATTEMPT_MS;
    else if (attempt_ms < REDIS_BACKOFF_FIRST_MS)
      attempt_ms = REDIS_BACKOFF_FIRST_MS; /* never a zero/negative timeout */
    attempts++;
    int rc = redis_connect_once(r, attempt_ms);
    if (rc == LINLI_OK) {
      if (attempts > 1)
        LINLI_INFO("redis connected", "host=%s port=%d attempts=%d", r->host,
                   r->port, attempts);
      return LINLI_OK;
    }
    if (rc != LINLI_ERR_TRANSIENT)
      return rc;
    now = linli_clock_mono_ms();
    if (now >= deadline) {
      LINLI_WARN("redis unreachable", "host=%s port=%d attempts=%d", r->host,
                 r->port, attempts);
      return LINLI_ERR_TRANSIENT;
    }
    int64_t wait = backoff < deadline - now ? backoff : deadline - now;
    sleep_ms(wait);
    backoff = backoff * 2 > REDIS_BACKOFF_MAX_MS ? REDIS_BACKOFF_MAX_MS
                                                 : backoff * 2;
  }
}

int linli_redis_connect(const char *host, int port, const char *password,
                        int connect_timeout_ms, linli_redis_t **out,
                        char *err, size_t errlen) {
  if (out == NULL || host == NULL || host[0] == '\0' || port <= 0 ||
      port > 65535) {
    set_err(err, errlen, "redis connect: %s", "bad host or port");
    return LINLI_ERR_INVALID;
  }
  *out = NULL;
  int rc = LINLI_ERR_NOMEM;
  linli_redis_t *r = calloc(1, sizeof *r);
  if (r == NULL)
    goto err;
  r->host = strdup(host);
  if (r->host == NULL)
    goto err;
  if (password != NULL && password[0] != '\0') {
    r->password = strdup(password);
    if (r->password == NULL)
      goto err;
  }
  r->port = port;
  r->connect_timeout_ms = connect_timeout_ms;
  r->command_timeout_ms = connect_timeout_ms > REDIS_MIN_COMMAND_TIMEOUT_MS
                              ? connect_timeout_ms
                              : REDIS_MIN_COMMAND_TIMEOUT_MS;
  r->outcome_ttl_s = REDIS_DEFAULT_OUTCOME_TTL_S;
  rc = redis_open(r);
  if (rc != LINLI_OK)
    goto err;
  *out = r;
  return LINLI_OK;
err:
  set_err(err, errlen, "redis: %s",
          r != NULL && r->errstr[0] != '\0' ? r->errstr : linli_strerror(rc));
  linli_redis_free(r);
  return rc;
}

int linli_redis_connect_config(const struct linli_config *cfg,
                               linli_redis_t **out, char *err, size_t errlen) {
  return linli_redis_connect(
      linli_config_str(cfg, "redis.host"),
      (int)linli_config_int(cfg, "redis.port"),
      linli_config_str(cfg, "redis.password"),
      (int)linli_config_int(cfg, "redis.connect_timeout_ms"), out, err,
      errlen);
}

void linli_redis_free(linli_redis_t *r) {
  if (r == NULL)
    return;
  drop_ctx(r);
  linli_redis_script_t *s = r->scripts;
  while (s != NULL) {
    linli_redis_script_t *next = s->next;
    free(s->name);
    free(s->lua);
    free(s);
    s = next;
  }
  free(r->host);
  free(r->password);
  free(r);
}

redisContext *linli_redis_context(linli_redis_t *r) {
  return r != NULL ? r->ctx : NULL;
}

void linli_redis_set_outcome_ttl(linli_redis_t *r, int64_t seconds) {
  if (r != NULL)
    r->outcome_ttl_s = seconds >= 1 ? seconds : 1; /* SET EX needs >= 1 */
}

/* ------------------------------------------------------------------------ */
/* Commands                                                                  */
/* ------------------------------------------------------------------------ */

/*
 * The retry after a reconnect can run a command twice when the first copy
 * reached the server and only its reply was lost (a killed connection, a
 * timeout). That is harmless for reads, for idempotent writes and for HWM
 * scripts (the mark makes the second run a replay); plain non-idempotent
 * writes (INCR...) that must not double belong in an HWM script.
 */
int linli_redis_command(linli_redis_t *r, int argc, const char **argv,
                        const size_t *argvlen, redisReply **reply) {
  if (r == NULL || argc <= 0 || argv == NULL || reply == NULL)
    return LINLI_ERR_INVALID;
  *reply = NULL;
  r->errstr[0] = '\0';
  for (int attempt = 0; attempt < 2; attempt++) {
    if (r->ctx == NULL) {
      int rc = redis_open(r);
      if (rc != LINLI_OK)
        return rc;
    }
    redisReply *rep = redisCommandArgv(r->ctx, argc, argv, argvlen);
    if (rep != NULL) {
      *reply = rep;
      return LINLI_OK;
    }
    if (r->ctx->err == REDIS_ERR_OOM) {
      snprintf(r->errstr, sizeof r->errstr, "out of memory");
      drop_ctx(r); /* the reader state is unknown: do not reuse it */
      return LINLI_ERR_NOMEM;
    }
    snprintf(r->errstr, sizeof r->errstr, "%s", r->ctx->errstr);
    LINLI_WARN("redis connection lost", "host=%s port=%d err=\"%s\" retry=%d",
               r->host, r->port, r->errstr, attempt == 0);
    drop_ctx(r);
  }
  return LINLI_ERR_TRANSIENT;
}

/* ------------------------------------------------------------------------ */
/* Scripts                                                                   */
/* ------------------------------------------------------------------------ */

/* SCRIPT LOAD s->lua and remember the SHA1 Redis reports. */
static int script_load(linli_redis_t *r, linli_redis_script_t *s) {
  const char *argv[3] = {"SCRIPT", "LOAD", s->lua};
  size_t lens[3] = {6, 4, strlen(s->lua)};
  redisReply *rep = NULL;
  int rc = linli_redis_command(r, 3, argv, lens, &rep);
  if (rc != LINLI_OK)
    return rc;
  if (is_error_reply(rep)) {
    rc = error_reply_is_transient(rep) ? LINLI_ERR_TRANSIENT
                                       : LINLI_ERR_INVALID;
    snprintf(r->errstr, sizeof r->errstr, "%s", rep->str);
    LINLI_ERROR("redis SCRIPT LOAD failed", "script=%s err=\"%s\"", s->name,
                r->errstr);
  } else if (rep->type != REDIS_REPLY_STRING || rep->len != 40) {
    snprintf(r->errstr, sizeof r->errstr, "unexpected SCRIPT LOAD reply");
    rc = LINLI_ERR_INVALID;
  } else {
    memcpy(s->sha, rep->str, 40);
    s->sha[40] = '\0';
  }
  freeReplyObject(rep);
  return rc;
}

/* Takes ownership of lua (freed on failure too). */
static int script_add(linli_redis_t *r, const char *name, char *lua, int hwm,
                      linli_redis_script_t **out) {
  for (linli_redis_script_t *s = r->scripts; s != NULL; s = s->next) {
    if (s->hwm == hwm && strcmp(s->lua, lua) == 0) {
      free(lua); /* the same source registered twice: share one entry */
      *out = s;
      return LINLI_OK;
    }
  }
  int rc = LINLI_ERR_NOMEM;
  linli_redis_script_t *s = calloc(1, sizeof *s);
  if (s == NULL)
    goto err;
  s->lua = lua;
  lua = NULL;
  s->name = strdup(name != NULL ? name : "unnamed");
  if (s->name == NULL)
    goto err;
  s->hwm = hwm;
  rc = script_load(r, s);
  if (rc != LINLI_OK)
    goto err;
  s->next = r->scripts;
  r->scripts = s;
  *out = s;
  return LINLI_OK;
err:
  free(lua);
  if (s != NULL) {
    free(s->lua);
    free(s->name);
    free(s);
  }
  return rc;
}

int linli_redis_script_register(linli_redis_t *r, const char *name,
                                const char *lua, linli_redis_script_t **out) {
  if (r == NULL || lua == NULL || out == NULL)
    return LINLI_ERR_INVALID;
  *out = NULL;
  char *copy = strdup(lua);
  if (copy == NULL)
    return LINLI_ERR_NOMEM;
  return script_add(r, name, copy, 0, out);
}

int linli_redis_script_hwm(linli_redis_t *r, const char *name,
                           const char *body_lua, linli_redis_script_t **out) {
  if (r == NULL || body_lua == NULL || out == NULL)
    return LINLI_ERR_INVALID;
  *out = NULL;
  size_t n1 = strlen(HWM_PROLOGUE), n2 = strlen(body_lua),
         n3 = strlen(HWM_EPILOGUE);
  char *lua = malloc(n1 + n2 + n3 + 1);
  if (lua == NULL)
    return LINLI_ERR_NOMEM;
  memcpy(lua, HWM_PROLOGUE, n1);
  memcpy(lua + n1, body_lua, n2);
  memcpy(lua + n1 + n2, HWM_EPILOGUE, n3 + 1);
  return script_add(r, name, lua, 1, out);
}

static int is_noscript(const redisReply *rep) {
  return is_error_reply(rep) && rep->len >= 8 &&
         strncmp(rep->str, "NOSCRIPT", 8) == 0;
}

int linli_redis_eval(linli_redis_t *r, linli_redis_script_t *s, int nkeys,
                     const char **keys, int nargs, const char **args,
                     const size_t *argslen, redisReply **reply) {
  if (r == NULL || s == NULL || reply == NULL || nkeys < 0 || nargs < 0 ||
      (nkeys > 0 && keys == NULL) || (nargs > 0 && args == NULL))
    return LINLI_ERR_INVALID;
  *reply = NULL;
  int argc = 3 + nkeys + nargs;
  const char **argv = malloc(sizeof *argv * (size_t)argc);
  size_t *lens = malloc(sizeof *lens * (size_t)argc);
  if (argv == NULL || lens == NULL) {
    free(argv);
    free(lens);
    return LINLI_ERR_NOMEM;
  }
  char numkeys[16];
  snprintf(numkeys, sizeof numkeys, "%d", nkeys);
  argv[0] = "EVALSHA";
  lens[0] = 7;
  argv[1] = s->sha; /* a reload rewrites s->sha in place: still valid */
  lens[1] = 40;
  argv[2] = numkeys;
  lens[2] = strlen(numkeys);
  for (int i = 0; i < nkeys; i++) {
    argv[3 + i] = keys[i];
    lens[3 + i] = strlen(keys[i]);
  }
  for (int i = 0; i < nargs; i++) {
    argv[3 + nkeys + i] = args[i];
    lens[3 + nkeys + i] = argslen != NULL ? argslen[i] : strlen(args[i]);
  }
  redisReply *rep = NULL;
  int rc = linli_redis_command(r, argc, argv, lens, &rep);
  if (rc == LINLI_OK && is_noscript(rep)) {
    /* The server forgot the script (SCRIPT FLUSH, restart, new connection
     * to a failed-over replica): load it again and retry once. */
    LINLI_INFO("redis script reload", "script=%s", s->name);
    freeReplyObject(rep);
    rep = NULL;
    rc = script_load(r, s);
    if (rc == LINLI_OK)
      rc = linli_redis_command(r, argc, argv, lens, &rep);
  }
  free(argv);
  free(lens);
  if (rc != LINLI_OK)
    return rc;
  *reply = rep;
  return LINLI_OK;
}

/* ------------------------------------------------------------------------ */
/* High-water-mark scripts                                                   */
/* ------------------------------------------------------------------------ */

static int valid_tag(const char *tag) {
  return tag != NULL && tag[0] != '\0' && strchr(tag, '{') == NULL &&
         strchr(tag, '}') == NULL;
}

int linli_redis_key(char *buf, size_t len, const char *tag,
                    const char *suffix) {
  if (buf == NULL || len == 0 || !valid_tag(tag) || suffix == NULL)
    return LINLI_ERR_INVALID;
  int n = snprintf(buf, len, "{%s}:%s", tag, suffix);
  if (n < 0)
    return LINLI_ERR_INVALID;
  if ((size_t)n >= len)
    return LINLI_ERR_TOOBIG;
  return LINLI_OK;
}

/* "{tag}:" + printf-built suffix into a malloc'd string. */
static char *key_printf(const char *tag, const char *topic, int32_t partition,
                        int64_t offset, int with_offset) {
  int n = with_offset
              ? snprintf(NULL, 0, "{%s}:out:%s:%" PRId32 ":%" PRId64, tag,
                         topic, partition, offset)
              : snprintf(NULL, 0, "{%s}:hwm", tag);
  if (n < 0)
    return NULL;
  char *k = malloc((size_t)n + 1);
  if (k == NULL)
    return NULL;
  if (with_offset)
    snprintf(k, (size_t)n + 1, "{%s}:out:%s:%" PRId32 ":%" PRId64, tag, topic,
             partition, offset);
  else
    snprintf(k, (size_t)n + 1, "{%s}:hwm", tag);
  return k;
}

/*
 * The whole call is safe to retry after an ambiguous failure (connection
 * lost after the script may have run): the HWM makes the second run a replay
 * that returns the outcome the first run recorded. linli_redis_eval's
 * reconnect-and-retry relies on that.
 */
int linli_redis_eval_hwm(linli_redis_t *r, linli_redis_script_t *s,
                         const char *tag, const char *topic,
                         int32_t partition, int64_t offset, int nextra_keys,
                         const char **extra_keys, int nextra_args,
                         const char **extra_args, const size_t *extra_argslen,
                         int *replayed, char **outcome, size_t *outcome_len,
                         char *err, size_t errlen) {
  if (replayed != NULL)
    *replayed = 0;
  if (outcome != NULL)
    *outcome = NULL;
  if (outcome_len != NULL)
    *outcome_len = 0;
  if (r == NULL || s == NULL || s->hwm != 1 || !valid_tag(tag) || topic == NULL ||
      partition < 0 || offset < 0 || nextra_keys < 0 || nextra_args < 0 ||
      (nextra_keys > 0 && extra_keys == NULL) ||
      (nextra_args > 0 && extra_args == NULL) || replayed == NULL ||
      outcome == NULL) {
    set_err(err, errlen, "redis hwm: %s",
            s != NULL && s->hwm != 1 ? "script is not an HWM script"
                                 : "bad arguments");
    return LINLI_ERR_INVALID;
  }

  int rc = LINLI_ERR_NOMEM;
  const char **keys = NULL, **args = NULL;
  size_t *argslen = NULL;
  char *hwm_key = NULL, *out_key = NULL, *field = NULL;
  redisReply *rep = NULL;
  char offset_s[24], ttl_s[24];

  hwm_key = key_printf(tag, topic, partition, offset, 0);
  out_key = key_printf(tag, topic, partition, offset, 1);
  int fn = snprintf(NULL, 0, "%s:%" PRId32, topic, partition);
  if (hwm_key == NULL || out_key == NULL || fn < 0)
    goto done;
  field = malloc((size_t)fn + 1);
  keys = malloc(sizeof *keys * (size_t)(2 + nextra_keys));
  args = malloc(sizeof *args * (size_t)(3 + nextra_args));
  argslen = malloc(sizeof *argslen * (size_t)(3 + nextra_args));
  if (field == NULL || keys == NULL || args == NULL || argslen == NULL)
    goto done;
  snprintf(field, (size_t)fn + 1, "%s:%" PRId32, topic, partition);
  snprintf(offset_s, sizeof offset_s, "%" PRId64, offset);
  snprintf(ttl_s, sizeof ttl_s, "%" PRId64, r->outcome_ttl_s);

  keys[0] = hwm_key;
  keys[1] = out_key;
  for (int i = 0; i < nextra_keys; i++)
    keys[2 + i] = extra_keys[i];
  args[0] = field;
  args[1] = offset_s;
  args[2] = ttl_s;
  for (int i = 0; i < 3; i++)
    argslen[i] = strlen(args[i]);
  for (int i = 0; i < nextra_args; i++) {
    args[3 + i] = extra_args[i];
    argslen[3 + i] =
        extra_argslen != NULL ? extra_argslen[i] : strlen(extra_args[i]);
  }

  rc = linli_redis_eval(r, s, 2 + nextra_keys, keys, 3 + nextra_args, args,
                        argslen, &rep);
  if (rc != LINLI_OK) {
    set_err(err, errlen, "redis hwm: %s",
            r->errstr[0] != '\0' ? r->errstr : linli_strerror(rc));
    goto done;
  }
  if (is_error_reply(rep)) {
    /* A Lua error from the body (or a bad key/argument): the input is at
     * fault, unless the server said it cannot serve right now. */
    rc = error_reply_is_transient(rep) ? LINLI_ERR_TRANSIENT
                                       : LINLI_ERR_INVALID;
    set_err(err, errlen, "%s", rep->str);
    goto done;
  }
  if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
      rep->element[0]->type != REDIS_REPLY_INTEGER ||
      rep->element[1]->type != REDIS_REPLY_STRING) {
    set_err(err, errlen, "redis hwm: %s", "unexpected script reply");
    rc = LINLI_ERR_INVALID;
    goto done;
  }
  char *o = malloc(rep->element[1]->len + 1);
  if (o == NULL) {
    rc = LINLI_ERR_NOMEM;
    goto done;
  }
  memcpy(o, rep->element[1]->str, rep->element[1]->len);
  o[rep->element[1]->len] = '\0';
  *outcome = o;
  if (outcome_len != NULL)
    *outcome_len = rep->element[1]->len;
  *replayed = rep->element[0]->integer != 0;
  rc = LINLI_OK;
done:
  if (rc == LINLI_ERR_NOMEM)
    set_err(err, errlen, "redis hwm: %s", "out of memory");
  if (rep != NULL)
    freeReplyObject(rep);
  free(hwm_key);
  free(out_key);
  free(field);
  free(keys);
  free(args);
  free(argslen);
  return rc;
}

/* ------------------------------------------------------------------------ */
/* Pipelines                                                                 */
/* ------------------------------------------------------------------------ */

int linli_redis_pipeline(linli_redis_t *r, int n, const linli_redis_cmd_t *cmds,
                         redisReply **replies) {
  if (r == NULL || n <= 0 || cmds == NULL || replies == NULL)
    return LINLI_ERR_INVALID;
  for (int attempt = 0; attempt < 2; attempt++) {
    if (r->ctx == NULL && redis_open(r) != LINLI_OK)
      return LINLI_ERR_TRANSIENT;
    redisContext *c = r->ctx;
    int sent = 0, got = 0;
    while (sent < n && redisAppendCommandArgv(c, cmds[sent].argc,
                                              cmds[sent].argv,
                                              cmds[sent].lens) == REDIS_OK)
      sent++;
    while (sent == n && got < n) {
      void *rep = NULL;
      if (redisGetReply(c, &rep) != REDIS_OK || rep == NULL)
        break;
      replies[got++] = rep;
    }
    if (got == n)
      return LINLI_OK;
    for (int i = 0; i < got; i++)
      freeReplyObject(replies[i]);
    snprintf(r->errstr, sizeof r->errstr, "%s",
             c->err ? c->errstr : "no reply");
    LINLI_WARN("redis pipeline failed", "host=%s port=%d err=\"%s\" retry=%d",
               r->host, r->port, r->errstr, attempt == 0);
    /* The reader's state is unknown after a partial read: never reuse it. */
    drop_ctx(r);
  }
  return LINLI_ERR_TRANSIENT;
}

/* ------------------------------------------------------------------------ */
/* Batch high-water-mark scripts                                            */
/* ------------------------------------------------------------------------ */

/* ARGV: [1] key prefix "{tag}:", [2] outcome TTL (s), [3] number of
 * partitions np, then np pairs (field "topic:partition", batch start
 * offset), then per input: partition index (1-based), offset, nargs, args.
 * KEYS: [1] the shard's mark hash, [1 + p] partition p's outcome hash. */
static const char BATCH_PROLOGUE[] =
    "local P = ARGV[1]\n"
    "local before = nil\n"
    "local apply = nil\n";
static const char BATCH_EPILOGUE[] =
    "\nif before then\n"
    "  local e = before(P)\n"
    "  if e then return e end\n"
    "end\n"
    "local ttl = ARGV[2]\n"
    "local np = tonumber(ARGV[3])\n"
    "local fields, marks, touched = {}, {}, {}\n"
    "local i = 4\n"
    "for p = 1, np do\n"
    "  fields[p] = ARGV[i]\n"
    "  local start = tonumber(ARGV[i + 1])\n"
    "  i = i + 2\n"
    "  local mx = redis.call('HGET', KEYS[1 + p], 'max')\n"
    "  if mx and tonumber(mx) < start then redis.call('DEL', KEYS[1 + p]) end\n"
    "  marks[p] = tonumber(redis.call('HGET', KEYS[1], fields[p]) or '-1')\n"
    "end\n"
    "local out = {}\n"
    "while i <= #ARGV do\n"
    "  local p = tonumber(ARGV[i])\n"
    "  local off = ARGV[i + 1]\n"
    "  local n = tonumber(ARGV[i + 2])\n"
    "  local A = {}\n"
    "  for j = 1, n do A[j] = ARGV[i + 2 + j] end\n"
    "  i = i + 3 + n\n"
    "  if tonumber(off) <= marks[p] then\n"
    "    local o = redis.call('HGET', KEYS[1 + p], off)\n"
    "    if o then out[#out + 1] = 1; out[#out + 1] = o\n"
    "    else out[#out + 1] = 2; out[#out + 1] = '' end\n"
    "  else\n"
    "    local ok, o = pcall(apply, P, A)\n"
    "    if not ok then\n"
    "      local msg = type(o) == 'table' and (o.err or '?') or tostring(o)\n"
    "      if string.find(msg, '^OOM') then return redis.error_reply(msg) end\n"
    "      o = 'ERR|' .. msg\n"
    "    elseif type(o) == 'number' then o = tostring(o)\n"
    "    elseif type(o) ~= 'string' then o = 'ERR|body returned no string' end\n"
    /* The mark moves with each effect: a later error reply must not
     * leave an applied effect unmarked (Redis keeps a script's writes). */
    "    redis.call('HSET', KEYS[1], fields[p], off)\n"
    "    redis.call('HSET', KEYS[1 + p], off, o, 'max', off)\n"
    "    if not touched[p] then\n"
    "      redis.call('EXPIRE', KEYS[1 + p], ttl)\n"
    "      touched[p] = true\n"
    "    end\n"
    "    marks[p] = tonumber(off)\n"
    "    out[#out + 1] = 0; out[#out + 1] = o\n"
    "  end\n"
    "end\n"
    "return out\n";

int linli_redis_script_batch(linli_redis_t *r, const char *name,
                             const char *body_lua, linli_redis_script_t **out) {
  if (r == NULL || body_lua == NULL || out == NULL)
    return LINLI_ERR_INVALID;
  *out = NULL;
  size_t n1 = strlen(BATCH_PROLOGUE), n2 = strlen(body_lua),
         n3 = strlen(BATCH_EPILOGUE);
  char *lua = malloc(n1 + n2 + n3 + 1);
  if (lua == NULL)
    return LINLI_ERR_NOMEM;
  memcpy(lua, BATCH_PROLOGUE, n1);
  memcpy(lua + n1, body_lua, n2);
  memcpy(lua + n1 + n2, BATCH_EPILOGUE, n3 + 1);
  return script_add(r, name, lua, 2, out);
}

struct batch_part {
  char *field; /* "topic:partition" */
  char *key;   /* "{tag}:out:topic:partition" */
  int64_t start;
};

struct batch_result {
  int effect;
  char *outcome; /* owned */
  size_t len;
};

struct linli_redis_batch {
  linli_redis_script_t *script;
  char *tag;
  char *prefix; /* "{tag}:" */
  char *hwm_key;
  struct batch_part *parts;
  size_t nparts, parts_cap;
  /* Input arguments, flattened: argument strings in one growing buffer,
   * addressed by (offset, length) so that growing it moves nothing that
   * is referenced by pointer. */
  char *buf;
  size_t buflen, bufcap;
  size_t *arg_off, *arg_len;
  size_t nargs, args_cap;
  size_t ninputs;
  struct batch_result *results; /* ninputs of them after exec */
  int status;
  char *status_msg;
};

static int buf_reserve(char **buf, size_t *cap, size_t need) {
  if (need <= *cap)
    return LINLI_OK;
  size_t c = *cap ? *cap : 256;
  while (c < need)
    c *= 2;
  char *n = realloc(*buf, c);
  if (n == NULL)
    return LINLI_ERR_NOMEM;
  *buf = n;
  *cap = c;
  return LINLI_OK;
}

static int batch_push_arg(linli_redis_batch_t *b, const char *s, size_t len) {
  if (b->nargs == b->args_cap) {
    size_t c = b->args_cap ? b->args_cap * 2 : 64;
    size_t *o = realloc(b->arg_off, c * sizeof *o);
    if (o == NULL)
      return LINLI_ERR_NOMEM;
    b->arg_off = o;
    size_t *l = realloc(b->arg_len, c * sizeof *l);
    if (l == NULL)
      return LINLI_ERR_NOMEM;
    b->arg_len = l;
    b->args_cap = c;
  }
  if (buf_reserve(&b->buf, &b->bufcap, b->buflen + len + 1) != LINLI_OK)
    return LINLI_ERR_NOMEM;
  if (len > 0)
    memcpy(b->buf + b->buflen, s, len);
  b->buf[b->buflen + len] = '\0';
  b->arg_off[b->nargs] = b->buflen;
  b->arg_len[b->nargs] = len;
  b->buflen += len + 1;
  b->nargs++;
  return LINLI_OK;
}

static void batch_clear_results(linli_redis_batch_t *b) {
  if (b->results != NULL)
    for (size_t i = 0; i < b->ninputs; i++)
      free(b->results[i].outcome);
  free(b->results);
  b->results = NULL;
  free(b->status_msg);
  b->status_msg = NULL;
  b->status = LINLI_ERR_TRANSIENT; /* not run yet */
}

static char *str_printf2(const char *fmt, const char *a, const char *b2) {
  int n = snprintf(NULL, 0, fmt, a, b2);
  if (n < 0)
    return NULL;
  char *s = malloc((size_t)n + 1);
  if (s != NULL)
    snprintf(s, (size_t)n + 1, fmt, a, b2);
  return s;
}

int linli_redis_batch_new(linli_redis_script_t *s, const char *tag,
                          linli_redis_batch_t **out) {
  if (s == NULL || s->hwm != 2 || !valid_tag(tag) || out == NULL)
    return LINLI_ERR_INVALID;
  *out = NULL;
  linli_redis_batch_t *b = calloc(1, sizeof *b);
  if (b == NULL)
    return LINLI_ERR_NOMEM;
  b->script = s;
  b->status = LINLI_ERR_TRANSIENT;
  b->tag = strdup(tag);
  b->prefix = str_printf2("{%s}:%s", tag, "");
  b->hwm_key = str_printf2("{%s}:%s", tag, "hwm");
  if (b->tag == NULL || b->prefix == NULL || b->hwm_key == NULL) {
    linli_redis_batch_free(b);
    return LINLI_ERR_NOMEM;
  }
  *out = b;
  return LINLI_OK;
}

void linli_redis_batch_free(linli_redis_batch_t *b) {
  if (b == NULL)
    return;
  batch_clear_results(b);
  for (size_t i = 0; i < b->nparts; i++) {
    free(b->parts[i].field);
    free(b->parts[i].key);
  }
  free(b->parts);
  free(b->buf);
  free(b->arg_off);
  free(b->arg_len);
  free(b->tag);
  free(b->prefix);
  free(b->hwm_key);
  free(b);
}

const char *linli_redis_batch_tag(const linli_redis_batch_t *b) {
  return b != NULL ? b->tag : NULL;
}

size_t linli_redis_batch_count(const linli_redis_batch_t *b) {
  return b != NULL ? b->ninputs : 0;
}

/* Index (1-based, as the script numbers them) of the batch's partition. */
static int batch_part(linli_redis_batch_t *b, const char *topic,
                      int32_t partition, int64_t start) {
  char field[320];
  int n = snprintf(field, sizeof field, "%s:%" PRId32, topic, partition);
  if (n < 0 || (size_t)n >= sizeof field)
    return LINLI_ERR_TOOBIG;
  for (size_t i = 0; i < b->nparts; i++)
    if (strcmp(b->parts[i].field, field) == 0)
      return (int)i + 1;
  if (b->nparts == b->parts_cap) {
    size_t c = b->parts_cap ? b->parts_cap * 2 : 4;
    struct batch_part *p = realloc(b->parts, c * sizeof *p);
    if (p == NULL)
      return LINLI_ERR_NOMEM;
    b->parts = p;
    b->parts_cap = c;
  }
  struct batch_part *p = &b->parts[b->nparts];
  p->field = strdup(field);
  p->key = str_printf2("{%s}:out:%s", b->tag, field);
  p->start = start;
  if (p->field == NULL || p->key == NULL) {
    free(p->field);
    free(p->key);
    return LINLI_ERR_NOMEM;
  }
  b->nparts++;
  return (int)b->nparts;
}

int linli_redis_batch_add(linli_redis_batch_t *b, const char *topic,
                          int32_t partition, int64_t offset, int64_t start,
                          int nargs, const char **args, const size_t *lens) {
  if (b == NULL || topic == NULL || partition < 0 || offset < 0 ||
      start < 0 || start > offset || nargs < 0 || (nargs > 0 && args == NULL))
    return LINLI_ERR_INVALID;
  batch_clear_results(b);
  int p = batch_part(b, topic, partition, start);
  if (p < 0)
    return p;
  char num[3][24];
  snprintf(num[0], sizeof num[0], "%d", p);
  snprintf(num[1], sizeof num[1], "%" PRId64, offset);
  snprintf(num[2], sizeof num[2], "%d", nargs);
  for (int i = 0; i < 3; i++)
    if (batch_push_arg(b, num[i], strlen(num[i])) != LINLI_OK)
      return LINLI_ERR_NOMEM;
  for (int i = 0; i < nargs; i++) {
    const char *a = args[i] != NULL ? args[i] : "";
    size_t len = lens != NULL ? lens[i] : strlen(a);
    if (batch_push_arg(b, a, len) != LINLI_OK)
      return LINLI_ERR_NOMEM;
  }
  return (int)b->ninputs++;
}

/* The EVALSHA argv of one batch (pointers into b; freed by the caller). */
static int batch_argv(linli_redis_t *r, linli_redis_batch_t *b,
                      linli_redis_cmd_t *cmd, char *numkeys, size_t nklen,
                      char *ttl, size_t ttllen, char *np, size_t nplen,
                      char (*starts)[24]) {
  size_t nkeys = 1 + b->nparts;
  size_t argc = 3 + nkeys + 3 + 2 * b->nparts + b->nargs;
  const char **argv = malloc(argc * sizeof *argv);
  size_t *lens = malloc(argc * sizeof *lens);
  if (argv == NULL || lens == NULL) {
    free(argv);
    free(lens);
    return LINLI_ERR_NOMEM;
  }
  snprintf(numkeys, nklen, "%zu", nkeys);
  snprintf(ttl, ttllen, "%" PRId64, r->outcome_ttl_s);
  snprintf(np, nplen, "%zu", b->nparts);
  size_t k = 0;
  argv[k++] = "EVALSHA";
  argv[k++] = b->script->sha;
  argv[k++] = numkeys;
  argv[k++] = b->hwm_key;
  for (size_t i = 0; i < b->nparts; i++)
    argv[k++] = b->parts[i].key;
  argv[k++] = b->prefix;
  argv[k++] = ttl;
  argv[k++] = np;
  for (size_t i = 0; i < b->nparts; i++) {
    argv[k++] = b->parts[i].field;
    snprintf(starts[i], 24, "%" PRId64, b->parts[i].start);
    argv[k++] = starts[i];
  }
  for (size_t i = 0; i < k; i++)
    lens[i] = strlen(argv[i]);
  for (size_t i = 0; i < b->nargs; i++, k++) {
    argv[k] = b->buf + b->arg_off[i];
    lens[k] = b->arg_len[i];
  }
  cmd->argc = (int)argc;
  cmd->argv = argv;
  cmd->lens = lens;
  return LINLI_OK;
}

/* Take one batch's reply apart into its results and status. */
static void batch_take_reply(linli_redis_batch_t *b, const redisReply *rep) {
  batch_clear_results(b);
  if (is_error_reply(rep)) {
    b->status = error_reply_is_transient(rep) ? LINLI_ERR_TRANSIENT
                                              : LINLI_ERR_INVALID;
    b->status_msg = strdup(rep->str != NULL ? rep->str : "error");
    return;
  }
  if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 * b->ninputs) {
    b->status = LINLI_ERR_INVALID;
    b->status_msg = strdup("batch script: unexpected reply");
    return;
  }
  b->results = calloc(b->ninputs ? b->ninputs : 1, sizeof *b->results);
  if (b->results == NULL) {
    b->status = LINLI_ERR_NOMEM;
    return;
  }
  for (size_t i = 0; i < b->ninputs; i++) {
    const redisReply *e = rep->element[2 * i];
    const redisReply *o = rep->element[2 * i + 1];
    if (e->type != REDIS_REPLY_INTEGER || o->type != REDIS_REPLY_STRING) {
      batch_clear_results(b);
      b->status = LINLI_ERR_INVALID;
      b->status_msg = strdup("batch script: unexpected reply element");
      return;
    }
    b->results[i].effect = (int)e->integer;
    b->results[i].outcome = malloc(o->len + 1);
    if (b->results[i].outcome == NULL) {
      batch_clear_results(b);
      b->status = LINLI_ERR_NOMEM;
      return;
    }
    memcpy(b->results[i].outcome, o->str, o->len);
    b->results[i].outcome[o->len] = '\0';
    b->results[i].len = o->len;
  }
  b->status = LINLI_OK;
}

int linli_redis_batch_exec(linli_redis_t *r, linli_redis_batch_t *const *bs,
                           size_t n, char *err, size_t errlen) {
  if (r == NULL || (n > 0 && bs == NULL))
    return LINLI_ERR_INVALID;
  if (n == 0)
    return LINLI_OK;
  int rc = LINLI_ERR_NOMEM;
  linli_redis_cmd_t *cmds = calloc(n, sizeof *cmds);
  redisReply **reps = calloc(n, sizeof *reps);
  char (*nums)[3][24] = calloc(n, sizeof *nums);
  char(**starts)[24] = calloc(n, sizeof *starts);
  if (cmds == NULL || reps == NULL || nums == NULL || starts == NULL)
    goto done;
  for (size_t i = 0; i < n; i++) {
    if (bs[i] == NULL || bs[i]->ninputs == 0) {
      rc = LINLI_ERR_INVALID;
      set_err(err, errlen, "redis batch: %s", "an empty or missing batch");
      goto done;
    }
    starts[i] = calloc(bs[i]->nparts, sizeof *starts[i]);
    if (starts[i] == NULL ||
        batch_argv(r, bs[i], &cmds[i], nums[i][0], 24, nums[i][1], 24,
                   nums[i][2], 24, starts[i]) != LINLI_OK)
      goto done;
  }
  for (int attempt = 0; attempt < 2; attempt++) {
    rc = linli_redis_pipeline(r, (int)n, cmds, reps);
    if (rc != LINLI_OK) {
      set_err(err, errlen, "redis batch: %s",
              r->errstr[0] ? r->errstr : linli_strerror(rc));
      goto done;
    }
    int reload = 0;
    for (size_t i = 0; i < n; i++)
      if (is_noscript(reps[i]))
        reload = 1;
    if (!reload || attempt == 1)
      break;
    /* Redis forgot a script (restart, SCRIPT FLUSH, failover): load and
     * send the whole pipeline again; shards that ran replay their
     * outcomes. */
    for (size_t i = 0; i < n; i++) {
      if (is_noscript(reps[i])) {
        LINLI_INFO("redis script reload", "script=%s", bs[i]->script->name);
        int lrc = script_load(r, bs[i]->script);
        if (lrc != LINLI_OK) {
          rc = lrc;
          set_err(err, errlen, "redis batch: %s", r->errstr);
          goto done;
        }
      }
      freeReplyObject(reps[i]);
      reps[i] = NULL;
    }
  }
  for (size_t i = 0; i < n; i++)
    batch_take_reply(bs[i], reps[i]);
  rc = LINLI_OK;
done:
  if (rc == LINLI_ERR_NOMEM)
    set_err(err, errlen, "redis batch: %s", "out of memory");
  if (cmds != NULL)
    for (size_t i = 0; i < n; i++) {
      free((void *)cmds[i].argv);
      free((void *)cmds[i].lens);
    }
  if (reps != NULL)
    for (size_t i = 0; i < n; i++)
      if (reps[i] != NULL)
        freeReplyObject(reps[i]);
  if (starts != NULL)
    for (size_t i = 0; i < n; i++)
      free(starts[i]);
  free(cmds);
  free(reps);
  free(nums);
  free(starts);
  return rc;
}

int linli_redis_batch_status(const linli_redis_batch_t *b, const char **msg) {
  if (msg != NULL)
    *msg = b != NULL && b->status_msg != NULL ? b->status_msg : "";
  return b != NULL ? b->status : LINLI_ERR_INVALID;
}

int linli_redis_batch_result(const linli_redis_batch_t *b, size_t i,
                             int *effect, const char **outcome, size_t *len) {
  if (b == NULL || b->status != LINLI_OK || b->results == NULL ||
      i >= b->ninputs)
    return LINLI_ERR_INVALID;
  if (effect != NULL)
    *effect = b->results[i].effect;
  if (outcome != NULL)
    *outcome = b->results[i].outcome;
  if (len != NULL)
    *len = b->results[i].len;
  return LINLI_OK;
}
