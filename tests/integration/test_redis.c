/*
 * test_redis.c - integration tests of libcommon's Redis module against the
 * dev Redis: commands, the script registry (including recovery from SCRIPT
 * FLUSH), the high-water-mark wrapper of DESIGN.md rule 2, and transparent
 * reconnection after the server kills our connection. Every key lives under
 * a hash tag unique to this run and is deleted at the end.
 */
#include <CUnit/CUnit.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "linli/config.h"
#include "linli/error.h"
#include "linli/redis.h"
#include "linli_test.h"

#define TOPIC "linli.test.v1"

static char g_tag[128];     /* unique hash tag content of this run */
static char g_host[256];
static int g_port;
static char g_password[256];
static int g_timeout_ms;

/* ------------------------------------------------------------------------ */
/* Set-up                                                                    */
/* ------------------------------------------------------------------------ */

/* Where Redis is: the stack's config, or env/defaults if it cannot load. */
static void redis_params(void) {
  const linli_config_t *cfg = linli_test_config();
  if (cfg != NULL) {
    snprintf(g_host, sizeof g_host, "%s", linli_config_str(cfg, "redis.host"));
    g_port = (int)linli_config_int(cfg, "redis.port");
    snprintf(g_password, sizeof g_password, "%s",
             linli_config_str(cfg, "redis.password"));
    g_timeout_ms = (int)linli_config_int(cfg, "redis.connect_timeout_ms");
    return;
  }
  const char *h = getenv("LINLI_REDIS_HOST");
  const char *p = getenv("LINLI_REDIS_PORT");
  const char *pw = getenv("LINLI_REDIS_PASSWORD");
  snprintf(g_host, sizeof g_host, "%s", h != NULL && h[0] ? h : "127.0.0.1");
  g_port = p != NULL && p[0] ? atoi(p) : 16379;
  snprintf(g_password, sizeof g_password, "%s", pw != NULL ? pw : "");
  g_timeout_ms = 5000;
}

static linli_redis_t *connect_or_fail(void) {
  linli_redis_t *r = NULL;
  char err[256] = "";
  int rc = linli_redis_connect(g_host, g_port, g_password, g_timeout_ms, &r,
                               err, sizeof err);
  if (rc != LINLI_OK)
    fprintf(stderr, "redis connect: %s\n", err);
  CU_ASSERT_EQUAL_FATAL(rc, LINLI_OK);
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  return r;
}

/* "{tag}:suffix" into buf. */
static const char *key(char *buf, size_t len, const char *suffix) {
  int rc = linli_redis_key(buf, len, g_tag, suffix);
  CU_ASSERT_EQUAL(rc, LINLI_OK);
  return buf;
}

/* Run a command given as a NULL-terminated list of strings. */
static redisReply *cmd(linli_redis_t *r, const char *a0, ...) {
  const char *argv[16];
  int argc = 0;
  va_list ap;
  va_start(ap, a0);
  for (const char *a = a0; a != NULL && argc < 16; a = va_arg(ap, const char *))
    argv[argc++] = a;
  va_end(ap);
  redisReply *rep = NULL;
  int rc = linli_redis_command(r, argc, argv, NULL, &rep);
  CU_ASSERT_EQUAL(rc, LINLI_OK);
  CU_ASSERT_PTR_NOT_NULL(rep);
  return rep;
}

/* GET as a string into buf ("" and 0 when missing); returns 1 if present. */
static int get_str(linli_redis_t *r, const char *k, char *buf, size_t len) {
  redisReply *rep = cmd(r, "GET", k, NULL);
  int present = rep != NULL && rep->type == REDIS_REPLY_STRING;
  snprintf(buf, len, "%s", present ? rep->str : "");
  freeReplyObject(rep);
  return present;
}

static int hget_str(linli_redis_t *r, const char *k, const char *field,
                    char *buf, size_t len) {
  redisReply *rep = cmd(r, "HGET", k, field, NULL);
  int present = rep != NULL && rep->type == REDIS_REPLY_STRING;
  snprintf(buf, len, "%s", present ? rep->str : "");
  freeReplyObject(rep);
  return present;
}

static long long client_id(linli_redis_t *r) {
  redisReply *rep = cmd(r, "CLIENT", "ID", NULL);
  long long id = rep != NULL && rep->type == REDIS_REPLY_INTEGER
                     ? rep->integer
                     : -1;
  freeReplyObject(rep);
  return id;
}

static int suite_init(void) {
  redis_params();
  char buf[96];
  snprintf(g_tag, sizeof g_tag, "t:%s", linli_test_unique("redis", buf,
                                                          sizeof buf));
  return 0;
}

/* Delete every key of this run's tag. */
static int suite_cleanup(void) {
  linli_redis_t *r = NULL;
  char err[256];
  if (linli_redis_connect(g_host, g_port, g_password, g_timeout_ms, &r, err,
                          sizeof err) != LINLI_OK)
    return 0;
  char pattern[160];
  snprintf(pattern, sizeof pattern, "{%s}:*", g_tag);
  char cursor[32] = "0";
  do {
    const char *argv[6] = {"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"};
    redisReply *rep = NULL;
    if (linli_redis_command(r, 6, argv, NULL, &rep) != LINLI_OK)
      break;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2) {
      freeReplyObject(rep);
      break;
    }
    snprintf(cursor, sizeof cursor, "%s", rep->element[0]->str);
    redisReply *keys = rep->element[1];
    for (size_t i = 0; i < keys->elements; i++) {
      const char *del[2] = {"DEL", keys->element[i]->str};
      redisReply *d = NULL;
      if (linli_redis_command(r, 2, del, NULL, &d) == LINLI_OK)
        freeReplyObject(d);
    }
    freeReplyObject(rep);
  } while (strcmp(cursor, "0") != 0);
  linli_redis_free(r);
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Connection and commands                                                   */
/* ------------------------------------------------------------------------ */

static void test_connect_and_command(void) {
  linli_redis_t *r = connect_or_fail();
  CU_ASSERT_PTR_NOT_NULL(linli_redis_context(r));
  char k[160], v[64];
  key(k, sizeof k, "plain");
  /* Binary-safe argv: a value with a NUL and a '%' passes untouched. */
  const char *argv[3] = {"SET", k, "a%s\0b"};
  size_t lens[3] = {3, strlen(k), 5};
  redisReply *rep = NULL;
  CU_ASSERT_EQUAL(linli_redis_command(r, 3, argv, lens, &rep), LINLI_OK);
  CU_ASSERT_EQUAL(rep->type, REDIS_REPLY_STATUS);
  freeReplyObject(rep);
  rep = cmd(r, "STRLEN", k, NULL);
  CU_ASSERT_EQUAL(rep->type, REDIS_REPLY_INTEGER);
  CU_ASSERT_EQUAL(rep->integer, 5);
  freeReplyObject(rep);
  /* An error reply is LINLI_OK with an error-typed reply. */
  rep = cmd(r, "INCR", k, NULL);
  CU_ASSERT_EQUAL(rep->type, REDIS_REPLY_ERROR);
  freeReplyObject(rep);
  rep = cmd(r, "SET", k, "v1", NULL);
  freeReplyObject(rep);
  CU_ASSERT_TRUE(get_str(r, k, v, sizeof v));
  CU_ASSERT_STRING_EQUAL(v, "v1");
  linli_redis_free(r);
}

static void test_connect_unreachable(void) {
  linli_redis_t *r = NULL;
  char err[256] = "";
  int64_t t0 = linli_test_now_ms();
  /* Port 1 on loopback refuses at once: the budget is spent in backoff. */
  int rc = linli_redis_connect("127.0.0.1", 1, NULL, 500, &r, err, sizeof err);
  int64_t took = linli_test_now_ms() - t0;
  CU_ASSERT_EQUAL(rc, LINLI_ERR_TRANSIENT);
  CU_ASSERT_PTR_NULL(r);
  CU_ASSERT_TRUE(err[0] != '\0');
  CU_ASSERT_TRUE(took >= 400 && took < 3000);

  /* A refused password is a configuration error, not retried. */
  t0 = linli_test_now_ms();
  rc = linli_redis_connect(g_host, g_port, "linli-wrong-password", 5000, &r,
                           err, sizeof err);
  CU_ASSERT_EQUAL(rc, LINLI_ERR_CONFIG);
  CU_ASSERT_PTR_NULL(r);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "AUTH"));
  CU_ASSERT_TRUE(linli_test_now_ms() - t0 < 1000);
}

static void test_key_helper(void) {
  char buf[32];
  CU_ASSERT_EQUAL(linli_redis_key(buf, sizeof buf, "w:W1", "stock:S1"),
                  LINLI_OK);
  CU_ASSERT_STRING_EQUAL(buf, "{w:W1}:stock:S1");
  CU_ASSERT_EQUAL(linli_redis_key(buf, 8, "w:W1", "stock:S1"),
                  LINLI_ERR_TOOBIG);
  CU_ASSERT_EQUAL(linli_redis_key(buf, sizeof buf, "w}x", "a"),
                  LINLI_ERR_INVALID);
  CU_ASSERT_EQUAL(linli_redis_key(buf, sizeof buf, "", "a"),
                  LINLI_ERR_INVALID);
}

/* ------------------------------------------------------------------------ */
/* Scripts                                                                   */
/* ------------------------------------------------------------------------ */

static void test_script_register_eval(void) {
  linli_redis_t *r = connect_or_fail();
  linli_redis_script_t *s = NULL, *s2 = NULL;
  const char *lua = "return {KEYS[1], ARGV[1], #ARGV}";
  CU_ASSERT_EQUAL_FATAL(linli_redis_script_register(r, "echo", lua, &s),
                        LINLI_OK);
  CU_ASSERT_EQUAL(linli_redis_script_register(r, "echo2", lua, &s2), LINLI_OK);
  CU_ASSERT_PTR_EQUAL(s, s2); /* same source, one entry */
  char k[160];
  const char *keys[1] = {key(k, sizeof k, "echo")};
  const char *args[2] = {"a1", "a2"};
  redisReply *rep = NULL;
  CU_ASSERT_EQUAL_FATAL(linli_redis_eval(r, s, 1, keys, 2, args, NULL, &rep),
                        LINLI_OK);
  CU_ASSERT_EQUAL_FATAL(rep->type, REDIS_REPLY_ARRAY);
  CU_ASSERT_EQUAL_FATAL(rep->elements, 3);
  CU_ASSERT_STRING_EQUAL(rep->element[0]->str, k);
  CU_ASSERT_STRING_EQUAL(rep->element[1]->str, "a1");
  CU_ASSERT_EQUAL(rep->element[2]->integer, 2);
  freeReplyObject(rep);

  /* No args at all. */
  linli_redis_script_t *one = NULL;
  CU_ASSERT_EQUAL_FATAL(
      linli_redis_script_register(r, "one", "return 1", &one), LINLI_OK);
  CU_ASSERT_EQUAL(linli_redis_eval(r, one, 0, NULL, 0, NULL, NULL, &rep),
                  LINLI_OK);
  CU_ASSERT_EQUAL(rep->type, REDIS_REPLY_INTEGER);
  CU_ASSERT_EQUAL(rep->integer, 1);
  freeReplyObject(rep);

  /* A script Redis cannot compile is refused and not registered. */
  linli_redis_script_t *bad = NULL;
  CU_ASSERT_EQUAL(linli_redis_script_register(r, "bad", "return (", &bad),
                  LINLI_ERR_INVALID);
  CU_ASSERT_PTR_NULL(bad);
  linli_redis_free(r);
}

static void test_script_flush_recovers(void) {
  linli_redis_t *r = connect_or_fail();
  linli_redis_script_t *s = NULL;
  CU_ASSERT_EQUAL_FATAL(
      linli_redis_script_register(r, "add", "return tonumber(ARGV[1]) + 1",
                                  &s),
      LINLI_OK);
  redisReply *rep = cmd(r, "SCRIPT", "FLUSH", NULL);
  freeReplyObject(rep);
  const char *args[1] = {"41"};
  rep = NULL;
  CU_ASSERT_EQUAL_FATAL(linli_redis_eval(r, s, 0, NULL, 1, args, NULL, &rep),
                        LINLI_OK);
  CU_ASSERT_EQUAL(rep->type, REDIS_REPLY_INTEGER);
  CU_ASSERT_EQUAL(rep->integer, 42);
  freeReplyObject(rep);
  linli_redis_free(r);
}

/* ------------------------------------------------------------------------ */
/* High-water mark                                                           */
/* ------------------------------------------------------------------------ */

/* Adds ARGV[4] to KEYS[3] and reports the new value. */
static const char INCR_BODY[] =
    "local n = redis.call('INCRBY', KEYS[3], tonumber(ARGV[4]))\n"
    "return 'n=' .. n";

struct hwm_result {
  int rc;
  int replayed;
  char outcome[128];
  char err[256];
};

static struct hwm_result run_hwm(linli_redis_t *r, linli_redis_script_t *s,
                                 int32_t partition, int64_t offset,
                                 const char *extra_key, const char *arg) {
  struct hwm_result res;
  memset(&res, 0, sizeof res);
  const char *keys[1] = {extra_key};
  const char *args[1] = {arg};
  char *outcome = NULL;
  size_t outcome_len = 0;
  res.replayed = -1;
  res.rc = linli_redis_eval_hwm(r, s, g_tag, TOPIC, partition, offset, 1, keys,
                                1, args, NULL, &res.replayed, &outcome,
                                &outcome_len, res.err, sizeof res.err);
  if (res.rc == LINLI_OK) {
    CU_ASSERT_PTR_NOT_NULL(outcome);
    if (outcome != NULL) {
      CU_ASSERT_EQUAL(strlen(outcome), outcome_len);
      snprintf(res.outcome, sizeof res.outcome, "%s", outcome);
    }
  } else {
    CU_ASSERT_PTR_NULL(outcome);
  }
  free(outcome);
  return res;
}

static void out_key(char *buf, size_t len, int32_t partition, int64_t offset) {
  char suffix[96];
  snprintf(suffix, sizeof suffix, "out:%s:%" PRId32 ":%" PRId64, TOPIC,
           partition, offset);
  key(buf, len, suffix);
}

static void test_hwm_exactly_once(void) {
  linli_redis_t *r = connect_or_fail();
  linli_redis_script_t *s = NULL;
  CU_ASSERT_EQUAL_FATAL(linli_redis_script_hwm(r, "incr", INCR_BODY, &s),
                        LINLI_OK);
  char counter[160], hwm[160], ok[160], v[64];
  key(counter, sizeof counter, "counter");
  key(hwm, sizeof hwm, "hwm");

  /* First delivery applies. */
  struct hwm_result a = run_hwm(r, s, 0, 10, counter, "5");
  CU_ASSERT_EQUAL(a.rc, LINLI_OK);
  CU_ASSERT_EQUAL(a.replayed, 0);
  CU_ASSERT_STRING_EQUAL(a.outcome, "n=5");
  get_str(r, counter, v, sizeof v);
  CU_ASSERT_STRING_EQUAL(v, "5");
  CU_ASSERT_TRUE(hget_str(r, hwm, TOPIC ":0", v, sizeof v));
  CU_ASSERT_STRING_EQUAL(v, "10");
  out_key(ok, sizeof ok, 0, 10);
  redisReply *rep = cmd(r, "TTL", ok, NULL);
  CU_ASSERT_TRUE(rep->integer > 0 && rep->integer <= 7 * 24 * 3600);
  freeReplyObject(rep);

  /* Redelivery: the recorded outcome, no second increment. */
  struct hwm_result b = run_hwm(r, s, 0, 10, counter, "5");
  CU_ASSERT_EQUAL(b.rc, LINLI_OK);
  CU_ASSERT_EQUAL(b.replayed, 1);
  CU_ASSERT_STRING_EQUAL(b.outcome, "n=5");
  get_str(r, counter, v, sizeof v);
  CU_ASSERT_STRING_EQUAL(v, "5");

  /* A lower offset that never had an outcome: replayed, empty outcome. */
  struct hwm_result c = run_hwm(r, s, 0, 3, counter, "5");
  CU_ASSERT_EQUAL(c.rc, LINLI_OK);
  CU_ASSERT_EQUAL(c.replayed, 1);
  CU_ASSERT_STRING_EQUAL(c.outcome, "");
  get_str(r, counter, v, sizeof v);
  CU_ASSERT_STRING_EQUAL(v, "5");

  /* The next offset applies. */
  struct hwm_result d = run_hwm(r, s, 0, 11, counter, "5");
  CU_ASSERT_EQUAL(d.rc, LINLI_OK);
  CU_ASSERT_EQUAL(d.replayed, 0);
  CU_ASSERT_STRING_EQUAL(d.outcome, "n=10");

  /* Another partition has its own mark: offset 5 < 11 still applies. */
  struct hwm_result e = run_hwm(r, s, 1, 5, counter, "5");
  CU_ASSERT_EQUAL(e.rc, LINLI_OK);
  CU_ASSERT_EQUAL(e.replayed, 0);
  CU_ASSERT_STRING_EQUAL(e.outcome, "n=15");
  struct hwm_result f = run_hwm(r, s, 1, 5, counter, "5");
  CU_ASSERT_EQUAL(f.replayed, 1);
  CU_ASSERT_STRING_EQUAL(f.outcome, "n=15");
  CU_ASSERT_TRUE(hget_str(r, hwm, TOPIC ":0", v, sizeof v));
  CU_ASSERT_STRING_EQUAL(v, "11");
  CU_ASSERT_TRUE(hget_str(r, hwm, TOPIC ":1", v, sizeof v));
  CU_ASSERT_STRING_EQUAL(v, "5");

  /* The outcome key expired: still a replay (nothing applied), outcome
   * unknown. */
  rep = cmd(r, "DEL", ok, NULL);
  CU_ASSERT_EQUAL(rep->integer, 1);
  freeReplyObject(rep);
  struct hwm_result g = run_hwm(r, s, 0, 10, counter, "5");
  CU_ASSERT_EQUAL(g.rc, LINLI_OK);
  CU_ASSERT_EQUAL(g.replayed, 1);
  CU_ASSERT_STRING_EQUAL(g.outcome, "");
  get_str(r, counter, v, sizeof v);
  CU_ASSERT_STRING_EQUAL(v, "15");

  /* The TTL setting reaches the outcome key. */
  linli_redis_set_outcome_ttl(r, 60);
  struct hwm_result h = run_hwm(r, s, 0, 12, counter, "1");
  CU_ASSERT_EQUAL(h.replayed, 0);
  out_key(ok, sizeof ok, 0, 12);
  rep = cmd(r, "TTL", ok, NULL);
  CU_ASSERT_TRUE(rep->integer > 0 && rep->integer <= 60);
  freeReplyObject(rep);
  linli_redis_free(r);
}

/* Fails before writing for 'bad' (error reply) and 'boom' (Lua error);
 * returns a table for 'table'; otherwise records ARGV[4]. */
static const char CHECK_BODY[] =
    "if ARGV[4] == 'bad' then return redis.error_reply('bad input: ' .. "
    "ARGV[4]) end\n"
    "if ARGV[4] == 'boom' then error('body exploded') end\n"
    "if ARGV[4] == 'table' then return {1, 2} end\n"
    "redis.call('SET', KEYS[3], ARGV[4])\n"
    "return 'ok:' .. ARGV[4]";

static void test_hwm_lua_error(void) {
  linli_redis_t *r = connect_or_fail();
  linli_redis_script_t *s = NULL;
  CU_ASSERT_EQUAL_FATAL(linli_redis_script_hwm(r, "check", CHECK_BODY, &s),
                        LINLI_OK);
  char state[160], hwm[160], ok[160], v[64];
  key(state, sizeof state, "check-state");
  key(hwm, sizeof hwm, "hwm");
  out_key(ok, sizeof ok, 7, 1);

  struct hwm_result a = run_hwm(r, s, 7, 1, state, "bad");
  CU_ASSERT_EQUAL(a.rc, LINLI_ERR_INVALID);
  CU_ASSERT_PTR_NOT_NULL(strstr(a.err, "bad input: bad"));
  struct hwm_result b = run_hwm(r, s, 7, 1, state, "boom");
  CU_ASSERT_EQUAL(b.rc, LINLI_ERR_INVALID);
  CU_ASSERT_PTR_NOT_NULL(strstr(b.err, "body exploded"));
  struct hwm_result c = run_hwm(r, s, 7, 1, state, "table");
  CU_ASSERT_EQUAL(c.rc, LINLI_ERR_INVALID);
  CU_ASSERT_PTR_NOT_NULL(strstr(c.err, "must return a string"));
  /* No mark, no outcome, no state. */
  CU_ASSERT_FALSE(hget_str(r, hwm, TOPIC ":7", v, sizeof v));
  CU_ASSERT_FALSE(get_str(r, ok, v, sizeof v));
  CU_ASSERT_FALSE(get_str(r, state, v, sizeof v));

  /* The same offset then applies normally. */
  struct hwm_result d = run_hwm(r, s, 7, 1, state, "good");
  CU_ASSERT_EQUAL(d.rc, LINLI_OK);
  CU_ASSERT_EQUAL(d.replayed, 0);
  CU_ASSERT_STRING_EQUAL(d.outcome, "ok:good");
  CU_ASSERT_TRUE(get_str(r, state, v, sizeof v));
  CU_ASSERT_STRING_EQUAL(v, "good");

  /* eval_hwm refuses a script that is not HWM-wrapped. */
  linli_redis_script_t *plain = NULL;
  CU_ASSERT_EQUAL_FATAL(
      linli_redis_script_register(r, "plain", "return 'x'", &plain), LINLI_OK);
  struct hwm_result e = run_hwm(r, plain, 7, 2, state, "good");
  CU_ASSERT_EQUAL(e.rc, LINLI_ERR_INVALID);
  linli_redis_free(r);
}

/* ------------------------------------------------------------------------ */
/* Reconnection                                                              */
/* ------------------------------------------------------------------------ */

static void kill_client(linli_redis_t *killer, long long id) {
  char ids[32];
  snprintf(ids, sizeof ids, "%lld", id);
  redisReply *rep = cmd(killer, "CLIENT", "KILL", "ID", ids, NULL);
  CU_ASSERT_EQUAL(rep->type, REDIS_REPLY_INTEGER);
  CU_ASSERT_EQUAL(rep->integer, 1);
  freeReplyObject(rep);
}

static void test_client_kill_reconnects(void) {
  linli_redis_t *r = connect_or_fail();
  linli_redis_t *killer = connect_or_fail();
  long long id1 = client_id(r);
  CU_ASSERT_TRUE_FATAL(id1 > 0);
  kill_client(killer, id1);

  /* The next command reconnects and succeeds. */
  redisReply *rep = cmd(r, "PING", NULL);
  CU_ASSERT_EQUAL(rep->type, REDIS_REPLY_STATUS);
  CU_ASSERT_STRING_EQUAL(rep->str, "PONG");
  freeReplyObject(rep);
  long long id2 = client_id(r);
  CU_ASSERT_TRUE(id2 > 0 && id2 != id1);

  /* An HWM script after a kill: reconnect, run once. */
  linli_redis_script_t *s = NULL;
  CU_ASSERT_EQUAL_FATAL(linli_redis_script_hwm(r, "incr", INCR_BODY, &s),
                        LINLI_OK);
  char counter[160], v[64];
  key(counter, sizeof counter, "kill-counter");
  kill_client(killer, id2);
  struct hwm_result a = run_hwm(r, s, 3, 100, counter, "2");
  CU_ASSERT_EQUAL(a.rc, LINLI_OK);
  CU_ASSERT_EQUAL(a.replayed, 0);
  CU_ASSERT_STRING_EQUAL(a.outcome, "n=2");
  kill_client(killer, client_id(r));
  struct hwm_result b = run_hwm(r, s, 3, 100, counter, "2");
  CU_ASSERT_EQUAL(b.rc, LINLI_OK);
  CU_ASSERT_EQUAL(b.replayed, 1);
  CU_ASSERT_STRING_EQUAL(b.outcome, "n=2");
  get_str(r, counter, v, sizeof v);
  CU_ASSERT_STRING_EQUAL(v, "2");

  linli_redis_free(killer);
  linli_redis_free(r);
}

/* ------------------------------------------------------------------------ */
/* Batch high-water-mark scripts                                             */
/* ------------------------------------------------------------------------ */

/* A counter per shard: A[1] = amount; 'boom' raises a Lua error;
 * before() refuses the whole shard while P..'closed' exists. */
static const char BATCH_BODY[] =
    "before = function(P)\n"
    "  if redis.call('EXISTS', P .. 'closed') == 1 then\n"
    "    return redis.error_reply('TRYAGAIN shard closed')\n"
    "  end\n"
    "end\n"
    "apply = function(P, A)\n"
    "  if A[1] == 'boom' then error('body exploded') end\n"
    "  return 'n=' .. redis.call('INCRBY', P .. 'bc', A[1])\n"
    "end\n";

/* One shard batch over partition p of TOPIC: offsets[i] with amount
 * amounts[i], the consumer batch starting at start. */
static linli_redis_batch_t *make_batch(linli_redis_script_t *s, int32_t p,
                                       int64_t start, int n,
                                       const int64_t *offsets,
                                       const char *const *amounts) {
  linli_redis_batch_t *b = NULL;
  CU_ASSERT_EQUAL_FATAL(linli_redis_batch_new(s, g_tag, &b), LINLI_OK);
  for (int i = 0; i < n; i++) {
    const char *a[1] = {amounts[i]};
    CU_ASSERT_EQUAL(linli_redis_batch_add(b, TOPIC, p, offsets[i], start, 1,
                                          a, NULL),
                    i);
  }
  return b;
}

static void expect_result(linli_redis_batch_t *b, size_t i, int effect,
                          const char *outcome) {
  int e = -1;
  const char *o = NULL;
  size_t len = 0;
  CU_ASSERT_EQUAL_FATAL(linli_redis_batch_result(b, i, &e, &o, &len),
                        LINLI_OK);
  CU_ASSERT_EQUAL(e, effect);
  CU_ASSERT_STRING_EQUAL(o, outcome);
  CU_ASSERT_EQUAL(len, strlen(outcome));
}

static long long hlen(linli_redis_t *r, const char *k) {
  redisReply *rep = cmd(r, "HLEN", k, NULL);
  long long n = rep != NULL && rep->type == REDIS_REPLY_INTEGER ? rep->integer
                                                                 : -1;
  freeReplyObject(rep);
  return n;
}

static void test_batch_exactly_once(void) {
  linli_redis_t *r = connect_or_fail();
  linli_redis_script_t *s = NULL;
  CU_ASSERT_EQUAL_FATAL(linli_redis_script_batch(r, "bcount", BATCH_BODY, &s),
                        LINLI_OK);
  char counter[160], outk[200], v[64], err[256];
  key(counter, sizeof counter, "bc");
  key(outk, sizeof outk, "out:" TOPIC ":0");

  /* A batch of three, one of them broken: applied, the broken one is an
   * ERR outcome that moves the mark like any other. */
  const int64_t off1[] = {100, 101, 102};
  const char *const amt1[] = {"1", "boom", "2"};
  linli_redis_batch_t *b = make_batch(s, 0, 100, 3, off1, amt1);
  CU_ASSERT_EQUAL_FATAL(linli_redis_batch_exec(r, &b, 1, err, sizeof err),
                        LINLI_OK);
  CU_ASSERT_EQUAL(linli_redis_batch_status(b, NULL), LINLI_OK);
  expect_result(b, 0, LINLI_REDIS_APPLIED, "n=1");
  int e = -1;
  const char *o = NULL;
  CU_ASSERT_EQUAL(linli_redis_batch_result(b, 1, &e, &o, NULL), LINLI_OK);
  CU_ASSERT_EQUAL(e, LINLI_REDIS_APPLIED);
  CU_ASSERT_PTR_NOT_NULL(strstr(o, "ERR|"));
  CU_ASSERT_PTR_NOT_NULL(strstr(o, "body exploded"));
  expect_result(b, 2, LINLI_REDIS_APPLIED, "n=3");

  /* The same batch again (the Kafka commit was lost): every outcome comes
   * back as first recorded, nothing applies twice. */
  CU_ASSERT_EQUAL_FATAL(linli_redis_batch_exec(r, &b, 1, err, sizeof err),
                        LINLI_OK);
  expect_result(b, 0, LINLI_REDIS_REPLAYED, "n=1");
  expect_result(b, 2, LINLI_REDIS_REPLAYED, "n=3");
  get_str(r, counter, v, sizeof v);
  CU_ASSERT_STRING_EQUAL(v, "3");
  linli_redis_batch_free(b);

  /* Redelivered at other boundaries: 101..104 from start 101: the first
   * two replay, the rest apply. */
  const int64_t off2[] = {101, 102, 103, 104};
  const char *const amt2[] = {"boom", "2", "10", "20"};
  b = make_batch(s, 0, 101, 4, off2, amt2);
  CU_ASSERT_EQUAL_FATAL(linli_redis_batch_exec(r, &b, 1, err, sizeof err),
                        LINLI_OK);
  CU_ASSERT_EQUAL(linli_redis_batch_result(b, 0, &e, &o, NULL), LINLI_OK);
  CU_ASSERT_EQUAL(e, LINLI_REDIS_REPLAYED);
  expect_result(b, 1, LINLI_REDIS_REPLAYED, "n=3");
  expect_result(b, 2, LINLI_REDIS_APPLIED, "n=13");
  expect_result(b, 3, LINLI_REDIS_APPLIED, "n=33");
  linli_redis_batch_free(b);
  CU_ASSERT_TRUE(hget_str(r, outk, "max", v, sizeof v));
  CU_ASSERT_STRING_EQUAL(v, "104");

  /* The next batch starts past every recorded offset: the outcomes of the
   * committed batches are dropped, only this batch's stay. */
  const int64_t off3[] = {105, 106};
  const char *const amt3[] = {"1", "1"};
  b = make_batch(s, 0, 105, 2, off3, amt3);
  CU_ASSERT_EQUAL_FATAL(linli_redis_batch_exec(r, &b, 1, err, sizeof err),
                        LINLI_OK);
  expect_result(b, 1, LINLI_REDIS_APPLIED, "n=35");
  linli_redis_batch_free(b);
  CU_ASSERT_EQUAL(hlen(r, outk), 3); /* 105, 106, max */
  redisReply *rep = cmd(r, "TTL", outk, NULL);
  CU_ASSERT_TRUE(rep->integer > 0);
  freeReplyObject(rep);

  /* A zombie's stale batch below the mark whose outcomes are gone:
   * FORGOTTEN, nothing applied. */
  const int64_t off4[] = {103};
  const char *const amt4[] = {"10"};
  b = make_batch(s, 0, 103, 1, off4, amt4);
  CU_ASSERT_EQUAL_FATAL(linli_redis_batch_exec(r, &b, 1, err, sizeof err),
                        LINLI_OK);
  expect_result(b, 0, LINLI_REDIS_FORGOTTEN, "");
  linli_redis_batch_free(b);
  get_str(r, counter, v, sizeof v);
  CU_ASSERT_STRING_EQUAL(v, "35");
  linli_redis_free(r);
}

/* Outcome memory does not grow with the number of batches. */
static void test_batch_outcomes_bounded(void) {
  linli_redis_t *r = connect_or_fail();
  linli_redis_script_t *s = NULL;
  CU_ASSERT_EQUAL_FATAL(linli_redis_script_batch(r, "bcount", BATCH_BODY, &s),
                        LINLI_OK);
  char pattern[200], err[256];
  snprintf(pattern, sizeof pattern, "{%s}:out:*", g_tag);
  long long first_keys = -1, first_fields = -1;
  int64_t off = 1000;
  for (int batch = 0; batch < 40; batch++) {
    linli_redis_batch_t *b[2] = {NULL, NULL};
    /* Two partitions, 50 inputs each, per batch. */
    for (int p = 0; p < 2; p++) {
      CU_ASSERT_EQUAL_FATAL(linli_redis_batch_new(s, g_tag, &b[p]), LINLI_OK);
      for (int i = 0; i < 50; i++) {
        const char *a[1] = {"1"};
        linli_redis_batch_add(b[p], TOPIC, 10 + p, off + i, off, 1, a, NULL);
      }
    }
    CU_ASSERT_EQUAL_FATAL(linli_redis_batch_exec(r, b, 2, err, sizeof err),
                          LINLI_OK);
    CU_ASSERT_EQUAL(linli_redis_batch_status(b[0], NULL), LINLI_OK);
    CU_ASSERT_EQUAL(linli_redis_batch_status(b[1], NULL), LINLI_OK);
    linli_redis_batch_free(b[0]);
    linli_redis_batch_free(b[1]);
    off += 50;
    redisReply *rep = cmd(r, "KEYS", pattern, NULL);
    long long nkeys = (long long)rep->elements;
    long long fields = 0;
    for (size_t k = 0; k < rep->elements; k++)
      fields += hlen(r, rep->element[k]->str);
    freeReplyObject(rep);
    if (batch == 0) {
      first_keys = nkeys;
      first_fields = fields;
    } else {
      CU_ASSERT_EQUAL(nkeys, first_keys);
      CU_ASSERT_TRUE(fields <= first_fields);
    }
  }
  CU_ASSERT_TRUE(first_keys >= 2);
  linli_redis_free(r);
}

/* A shard whose before() refuses fails alone; the others in the same
 * pipeline apply. */
static void test_batch_shard_refused(void) {
  linli_redis_t *r = connect_or_fail();
  linli_redis_script_t *s = NULL;
  CU_ASSERT_EQUAL_FATAL(linli_redis_script_batch(r, "bcount", BATCH_BODY, &s),
                        LINLI_OK);
  char closed_tag[160], ck[200], err[256];
  snprintf(closed_tag, sizeof closed_tag, "%s-closed", g_tag);
  snprintf(ck, sizeof ck, "{%s}:closed", closed_tag);
  redisReply *rep = cmd(r, "SET", ck, "1", NULL);
  freeReplyObject(rep);
  linli_redis_batch_t *b[2] = {NULL, NULL};
  CU_ASSERT_EQUAL_FATAL(linli_redis_batch_new(s, g_tag, &b[0]), LINLI_OK);
  CU_ASSERT_EQUAL_FATAL(linli_redis_batch_new(s, closed_tag, &b[1]), LINLI_OK);
  const char *a[1] = {"1"};
  linli_redis_batch_add(b[0], TOPIC, 20, 1, 1, 1, a, NULL);
  linli_redis_batch_add(b[1], TOPIC, 20, 1, 1, 1, a, NULL);
  /* Redis forgot the script: the pipeline reloads it and goes on. */
  rep = cmd(r, "SCRIPT", "FLUSH", NULL);
  freeReplyObject(rep);
  CU_ASSERT_EQUAL_FATAL(linli_redis_batch_exec(r, b, 2, err, sizeof err),
                        LINLI_OK);
  const char *msg = NULL;
  CU_ASSERT_EQUAL(linli_redis_batch_status(b[0], NULL), LINLI_OK);
  CU_ASSERT_EQUAL(linli_redis_batch_status(b[1], &msg), LINLI_ERR_TRANSIENT);
  CU_ASSERT_PTR_NOT_NULL(strstr(msg, "shard closed"));
  CU_ASSERT_EQUAL(linli_redis_batch_result(b[1], 0, NULL, NULL, NULL),
                  LINLI_ERR_INVALID);
  /* Bad arguments are refused. */
  CU_ASSERT_EQUAL(linli_redis_batch_add(b[0], TOPIC, 20, 5, 6, 0, NULL, NULL),
                  LINLI_ERR_INVALID);
  linli_redis_batch_free(b[0]);
  linli_redis_batch_free(b[1]);
  rep = cmd(r, "DEL", ck, NULL);
  freeReplyObject(rep);
  char pattern[200];
  snprintf(pattern, sizeof pattern, "{%s}:*", closed_tag);
  rep = cmd(r, "KEYS", pattern, NULL);
  CU_ASSERT_EQUAL(rep->elements, 0); /* the refused shard wrote nothing */
  freeReplyObject(rep);
  linli_redis_free(r);
}

int linli_test_register(void) {
  CU_pSuite suite = CU_add_suite("redis", suite_init, suite_cleanup);
  if (suite == NULL)
    return -1;
  if (CU_add_test(suite, "connect and command", test_connect_and_command) ==
          NULL ||
      CU_add_test(suite, "connect unreachable", test_connect_unreachable) ==
          NULL ||
      CU_add_test(suite, "key helper", test_key_helper) == NULL ||
      CU_add_test(suite, "script register and eval",
                  test_script_register_eval) == NULL ||
      CU_add_test(suite, "SCRIPT FLUSH recovered",
                  test_script_flush_recovers) == NULL ||
      CU_add_test(suite, "hwm exactly once", test_hwm_exactly_once) == NULL ||
      CU_add_test(suite, "hwm lua error leaves no state", test_hwm_lua_error) ==
          NULL ||
      CU_add_test(suite, "client kill reconnects",
                  test_client_kill_reconnects) == NULL ||
      CU_add_test(suite, "batch exactly once", test_batch_exactly_once) ==
          NULL ||
      CU_add_test(suite, "batch outcomes bounded",
                  test_batch_outcomes_bounded) == NULL ||
      CU_add_test(suite, "batch shard refused", test_batch_shard_refused) ==
          NULL)
    return -1;
  return 0;
}
