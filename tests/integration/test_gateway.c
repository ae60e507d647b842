/*
 * test_gateway.c - linli-gateway end to end against the real stack: the
 * gateway runs as a child process on a port derived from the test's pid and
 * is spoken to over loopback by a tiny HTTP/1.1 client written here. Every
 * publish endpoint's 202 is checked in its topic (decodable, right key,
 * Meta filled by the gateway); every error code; idempotent retries; tenant
 * isolation on writes and reads (reads from rows put into PostgreSQL the
 * way the ledger writes them); rate limit and per-user cap; hostile bodies
 * (10 MB, invalid UTF-8, deep nesting, injection strings); Kafka
 * unreachable -> 503 with nothing accepted; Redis down or stalled, or
 * PostgreSQL stalled -> 503 within a bounded time while the loop keeps
 * serving, then recovery once they answer again; the SSE stream with filters,
 * tenant isolation, Last-Event-ID resume and the slow-client cut-off; and
 * that the server's routes agree with docs/openapi.yaml.
 *
 * Each gateway is stopped with SIGTERM and must exit 0: under ASan a leak
 * makes that fail.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>

#include "catalog.pb-c.h"
#include "delivery.pb-c.h"
#include "groupbuy.pb-c.h"
#include "inventory.pb-c.h"
#include "linli/config.h"
#include "linli/clock.h"
#include "linli/redis.h"
#include "linli/json.h"
#include "domain/groupbuy_state.h"
#include "domain/schema.h"
#include "linli_test.h"
#include "order_status.pb-c.h"
#include "orders.pb-c.h"

#define TOK_A "dev-shop-a-token"
#define TOK_B "dev-shop-b-token"
#define TOK_LOG "dev-courier-x-token"
#define TOK_ADMIN "dev-ops-admin-token"

struct gwproc {
  pid_t pid;
  int port;
  char log[256];
};

static struct gwproc main_gw;
static char run_id[64]; /* unique per run: prefixes every id we make */

/* ------------------------------------------------------------- HTTP */

/* One request; extra is more header lines ("K: v\r\n..."), may be NULL. */
static int http_on(int port, const char *method, const char *path,
                   const char *token, const char *extra, const char *body,
                   size_t bodylen, struct linli_test_resp *out) {
  memset(out, 0, sizeof *out);
  return linli_test_http_ex(port, method, path, token, extra, body, bodylen,
                            out);
}

static int http(const char *method, const char *path, const char *token,
                const char *extra, const char *body, struct linli_test_resp *out) {
  return http_on(main_gw.port, method, path, token, extra, body,
                 body ? strlen(body) : 0, out);
}

/* A field of the JSON body (string or integer as text) into buf. */
static const char *jfield(const struct linli_test_resp *r, const char *name, char *buf,
                          size_t len) {
  json_error_t e;
  json_t *j = json_loadb(r->body, r->len, 0, &e);
  buf[0] = '\0';
  json_t *v = j ? json_object_get(j, name) : NULL;
  if (json_is_string(v))
    snprintf(buf, len, "%s", json_string_value(v));
  else if (json_is_integer(v))
    snprintf(buf, len, "%lld", (long long)json_integer_value(v));
  else if (json_is_boolean(v))
    snprintf(buf, len, "%s", json_is_true(v) ? "true" : "false");
  json_decref(j);
  return buf;
}

/* Does the 400 body name field? */
static int names_field(const struct linli_test_resp *r, const char *field) {
  json_error_t e;
  json_t *j = json_loadb(r->body, r->len, 0, &e);
  json_t *fs = j ? json_object_get(j, "fields") : NULL;
  int found = 0;
  for (size_t i = 0; i < json_array_size(fs); i++) {
    const char *f = json_string_value(json_object_get(json_array_get(fs, i),
                                                      "field"));
    if (f && strcmp(f, field) == 0)
      found = 1;
  }
  json_decref(j);
  return found;
}

/* ------------------------------------------------------ gateway procs */

static int start_gateway(struct gwproc *g, int port, char *const extra[]) {
  char bin[512], keys[512], keys_env[600], port_env[64];
  linli_test_binary_path("producers/gateway/linli-gateway", bin, sizeof bin);
  linli_test_source_path("config/gateway-keys.conf", keys, sizeof keys);
  snprintf(keys_env, sizeof keys_env, "LINLI_GATEWAY_KEYS_FILE=%s", keys);
  snprintf(port_env, sizeof port_env, "LINLI_GATEWAY_PORT=%d", port);
  char *env[24];
  int n = 0;
  env[n++] = keys_env;
  env[n++] = port_env;
  env[n++] = "LINLI_METRICS_PORT=-1";
  env[n++] = "LINLI_GATEWAY_DEV_KEYS=true";
  for (int i = 0; extra && extra[i] && n < 22; i++)
    env[n++] = extra[i];
  env[n] = NULL;
  char *argv[] = {bin, NULL};
  g->port = port;
  snprintf(g->log, sizeof g->log, "gateway-%d-%d.log", (int)getpid(), port);
  unlink(g->log);
  g->pid = linli_test_spawn(argv, env, g->log);
  if (g->pid <= 0)
    return -1;
  int64_t end = linli_test_now_ms() + 20000;
  while (linli_test_now_ms() < end) {
    struct linli_test_resp r;
    if (http_on(port, "GET", "/healthz", NULL, NULL, NULL, 0, &r) == 0 &&
        r.status == 200) {
      linli_test_resp_free(&r);
      return 0;
    }
    linli_test_resp_free(&r);
    int st;
    if (waitpid(g->pid, &st, WNOHANG) == g->pid) {
      fprintf(stderr, "gateway exited early, see %s\n", g->log);
      g->pid = 0;
      return -1;
    }
    usleep(100 * 1000);
  }
  return -1;
}

/* SIGTERM; 0 if it exited 0 (no leaks under ASan). */
static int stop_gateway(struct gwproc *g) {
  if (g->pid <= 0)
    return -1;
  int st = linli_test_stop(g->pid, 0);
  g->pid = 0;
  if (st < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    fprintf(stderr, "gateway on port %d did not exit cleanly (status %d); "
                    "log: %s\n", g->port, st, g->log);
    return -1;
  }
  return 0;
}

/* Eight ports per test process (n = 0..7): a block found free at the start
 * (see pick_port_base), apart from other runs' and other tests' ports. */
static int port_base;
static int port_for(int n) { return port_base + n; }

static void pick_port_base(void) {
  int slot = (int)(getpid() % 5000);
  for (int tries = 0; tries < 100; tries++, slot = (slot + 1) % 5000) {
    int base = 20000 + slot * 8, ok = 1;
    for (int i = 0; i < 8 && ok; i++)
      ok = linli_test_port_free(base + i);
    if (ok) {
      port_base = base;
      return;
    }
  }
  port_base = 20000 + (int)(getpid() % 5000) * 8; /* and hope */
}

/* ------------------------------------------------------------- Kafka */

static rd_kafka_t *new_consumer(void) {
  char err[512];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  const linli_config_t *cfg = linli_test_config();
  const char *bs = linli_config_kafka_get(cfg, "bootstrap.servers");
  rd_kafka_conf_set(conf, "bootstrap.servers", bs ? bs : "127.0.0.1:9092",
                    err, sizeof err);
  rd_kafka_conf_set(conf, "group.id", "linli-test-gateway", err, sizeof err);
  rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof err);
  return rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
}

/* A copy of one record. */
struct rec {
  char *key;
  size_t key_len;
  uint8_t *val;
  size_t len;
};

static void rec_free(struct rec *r) {
  free(r->key);
  free(r->val);
}

/* The record at topic/partition/offset; 0 if found within 10 s. */
static int fetch_at(const char *topic, int partition, int64_t offset,
                    struct rec *out) {
  memset(out, 0, sizeof *out);
  rd_kafka_t *rk = new_consumer();
  if (!rk)
    return -1;
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(l, topic, partition)->offset = offset;
  rd_kafka_assign(rk, l);
  rd_kafka_topic_partition_list_destroy(l);
  int found = 0;
  int64_t end = linli_test_now_ms() + 10000;
  while (!found && linli_test_now_ms() < end) {
    rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
    if (!m)
      continue;
    if (!m->err && m->offset == offset) {
      out->key = malloc(m->key_len + 1);
      memcpy(out->key, m->key, m->key_len);
      out->key[m->key_len] = '\0';
      out->key_len = m->key_len;
      out->val = malloc(m->len ? m->len : 1);
      memcpy(out->val, m->payload, m->len);
      out->len = m->len;
      found = 1;
    }
    rd_kafka_message_destroy(m);
  }
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
  return found ? 0 : -1;
}

/* Count records with key in topic/partition from offset for ms. */
static int count_key_from(const char *topic, int partition, int64_t offset,
                          const char *key, int ms) {
  rd_kafka_t *rk = new_consumer();
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(l, topic, partition)->offset = offset;
  rd_kafka_assign(rk, l);
  rd_kafka_topic_partition_list_destroy(l);
  int n = 0;
  int64_t end = linli_test_now_ms() + ms;
  while (linli_test_now_ms() < end) {
    rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
    if (!m)
      continue;
    if (!m->err && m->key_len == strlen(key) &&
        memcmp(m->key, key, m->key_len) == 0)
      n++;
    rd_kafka_message_destroy(m);
  }
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
  return n;
}

/*
 * POST, expect 202, then find the event in Kafka where the answer says it
 * is: right key, decodable envelope of the topic, Meta from the gateway,
 * the expected oneof member. Returns the decoded envelope (caller frees
 * with protobuf_c_message_free_unpacked) or NULL.
 */
static ProtobufCMessage *publish_ok(const char *path, const char *token,
                                    const char *extra, const char *body,
                                    const char *topic, const char *key,
                                    const char *member) {
  struct linli_test_resp r;
  CU_ASSERT_FATAL(http("POST", path, token, extra, body, &r) == 0);
  CU_ASSERT_EQUAL(r.status, 202);
  if (r.status != 202) {
    fprintf(stderr, "POST %s -> %d %.*s\n", path, r.status, (int)r.len,
            r.body);
    linli_test_resp_free(&r);
    return NULL;
  }
  char ev_id[64], t[128], k[128], p[16], o[32];
  jfield(&r, "event_id", ev_id, sizeof ev_id);
  jfield(&r, "topic", t, sizeof t);
  jfield(&r, "key", k, sizeof k);
  jfield(&r, "partition", p, sizeof p);
  jfield(&r, "offset", o, sizeof o);
  linli_test_resp_free(&r);
  CU_ASSERT_STRING_EQUAL(t, topic);
  CU_ASSERT_STRING_EQUAL(k, key);
  CU_ASSERT_EQUAL(strlen(ev_id), 26);
  struct rec m;
  CU_ASSERT_FATAL(fetch_at(topic, atoi(p), atoll(o), &m) == 0);
  CU_ASSERT_STRING_EQUAL(m.key, key);
  const linli_topic_schema_t *ts = linli_schema_topic(topic);
  ProtobufCMessage *env =
      protobuf_c_message_unpack(ts->envelope, NULL, m.len, m.val);
  rec_free(&m);
  CU_ASSERT_PTR_NOT_NULL_FATAL(env);
  const Linli__Meta *meta = linli_schema_meta(env);
  CU_ASSERT_PTR_NOT_NULL_FATAL(meta);
  CU_ASSERT_STRING_EQUAL(meta->event_id, ev_id);
  CU_ASSERT_STRING_EQUAL(meta->producer, "linli-gateway");
  CU_ASSERT_EQUAL(meta->schema_version, 1);
  CU_ASSERT(meta->occurred_at_ms > 0);
  const char *type = NULL;
  CU_ASSERT_EQUAL(linli_schema_event_type(env, &type), 0);
  CU_ASSERT_STRING_EQUAL(type, member);
  return env;
}

/* ------------------------------------------------------------- ids */

static const char *uid(const char *what, char *buf, size_t len) {
  static int n;
  snprintf(buf, len, "%s-%s-%d", run_id, what, ++n);
  return buf;
}

static char *order_body(const char *order, const char *user,
                        const char *campaign) {
  char *b = malloc(1024);
  snprintf(b, 1024,
           "{\"order_id\":\"%s\",\"user_id\":\"%s\",\"warehouse_id\":\"W1\","
           "\"lines\":[{\"sku_id\":\"SKU-1\",\"quantity\":2,"
           "\"unit_price_fen\":150},{\"sku_id\":\"SKU-2\",\"quantity\":1,"
           "\"unit_price_fen\":\"999\"}],\"pickup\":{\"pickup_point_id\":"
           "\"P1\"}%s%s%s}",
           order, user, campaign ? ",\"campaign_id\":\"" : "",
           campaign ? campaign : "", campaign ? "\"" : "");
  return b;
}

/* Place an order as token's app; 1 on 202. */
static int place(const char *token, const char *order, const char *user,
                 const char *campaign) {
  char *b = order_body(order, user, campaign);
  struct linli_test_resp r;
  http("POST", "/v1/orders", token, NULL, b, &r);
  free(b);
  int ok = r.status == 202;
  if (!ok)
    fprintf(stderr, "place %s -> %d %.*s\n", order, r.status, (int)r.len,
            r.body);
  linli_test_resp_free(&r);
  return ok;
}

/* ------------------------------------------------------- raw HTTP */

/* Send raw bytes on a fresh connection and read until the server closes
 * or wait_ms pass; the answer's status (0: none) and body in *out. */
static int raw_on(int port, const char *data, size_t len, int wait_ms,
                  struct linli_test_resp *out) {
  memset(out, 0, sizeof *out);
  int fd = linli_test_dial(port);
  if (fd < 0)
    return -1;
  struct timeval tv = {wait_ms / 1000, (wait_ms % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  linli_test_write_all(fd, data, len);
  linli_test_read_response(fd, out);
  close(fd);
  return 0;
}

/* A JSON answer with {"error": code}? */
static int json_error_is(const struct linli_test_resp *r, const char *code) {
  char buf[64];
  return strstr(r->raw, "Content-Type: application/json") &&
         strcmp(jfield(r, "error", buf, sizeof buf), code) == 0;
}

/* What evhttp and the connection layer refuse: JSON, never HTML; a NUL in
 * a header never authenticates; conflicting Content-Length; no or another
 * Content-Type is 415; a big body without a valid key is refused before
 * it is sent. */
static void test_http_hardening(void) {
  struct linli_test_resp r;
  int port = main_gw.port;
  /* "Bearer <valid token>\0junk" would authenticate if the header were cut
   * at the NUL. */
  static const char nul[] = "GET /v1/orders/x HTTP/1.1\r\nHost: x\r\n"
                            "Authorization: Bearer " TOK_A "\0junk\r\n"
                            "Connection: close\r\n\r\n";
  raw_on(port, nul, sizeof nul - 1, 5000, &r);
  CU_ASSERT_EQUAL(r.status, 400);
  CU_ASSERT(json_error_is(&r, "bad_request"));
  linli_test_resp_free(&r);
  static const char twocl[] = "POST /v1/orders HTTP/1.1\r\nHost: x\r\n"
                              "Authorization: Bearer " TOK_A "\r\n"
                              "Content-Type: application/json\r\n"
                              "Content-Length: 2\r\nContent-Length: 20\r\n"
                              "\r\n{}";
  raw_on(port, twocl, sizeof twocl - 1, 5000, &r);
  CU_ASSERT_EQUAL(r.status, 400);
  CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "Content-Length"));
  linli_test_resp_free(&r);
  /* libevent's own refusals: a broken request line, an unknown method, a
   * body over gateway.max_body_bytes (with a valid key). */
  static const char garbage[] = "GARBAGE\r\n\r\n";
  raw_on(port, garbage, sizeof garbage - 1, 5000, &r);
  CU_ASSERT_EQUAL(r.status, 400);
  CU_ASSERT(json_error_is(&r, "bad_request"));
  CU_ASSERT_PTR_NULL(strstr(r.raw, "<HTML>"));
  linli_test_resp_free(&r);
  static const char brew[] = "BREW /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
  raw_on(port, brew, sizeof brew - 1, 5000, &r);
  CU_ASSERT_EQUAL(r.status, 501);
  CU_ASSERT(json_error_is(&r, "not_implemented"));
  linli_test_resp_free(&r);
  static const char big[] = "POST /v1/orders HTTP/1.1\r\nHost: x\r\n"
                            "Authorization: Bearer " TOK_A "\r\n"
                            "Content-Type: application/json\r\n"
                            "Content-Length: 50000000\r\n\r\n";
  raw_on(port, big, sizeof big - 1, 5000, &r);
  CU_ASSERT_EQUAL(r.status, 413);
  CU_ASSERT(json_error_is(&r, "payload_too_large"));
  linli_test_resp_free(&r);
  /* 1 MB announced without a key: refused at once, before any body. */
  static const char unauth[] = "POST /v1/orders HTTP/1.1\r\nHost: x\r\n"
                               "Content-Type: application/json\r\n"
                               "Content-Length: 1000000\r\n\r\n";
  raw_on(port, unauth, sizeof unauth - 1, 5000, &r);
  CU_ASSERT_EQUAL(r.status, 401);
  CU_ASSERT(json_error_is(&r, "unauthorized"));
  linli_test_resp_free(&r);
  /* Content-Type: missing or not JSON is 415. */
  char order[96];
  uid("ct", order, sizeof order);
  char *b = order_body(order, "u-ct", NULL);
  char req[2048];
  int n = snprintf(req, sizeof req,
                   "POST /v1/orders HTTP/1.1\r\nHost: x\r\n"
                   "Authorization: Bearer " TOK_A "\r\nConnection: close\r\n"
                   "Content-Length: %zu\r\n\r\n%s", strlen(b), b);
  raw_on(port, req, (size_t)n, 5000, &r);
  CU_ASSERT_EQUAL(r.status, 415);
  linli_test_resp_free(&r);
  n = snprintf(req, sizeof req,
               "POST /v1/orders HTTP/1.1\r\nHost: x\r\n"
               "Authorization: Bearer " TOK_A "\r\nConnection: close\r\n"
               "Content-Type: text/plain\r\n"
               "Content-Length: %zu\r\n\r\n%s", strlen(b), b);
  raw_on(port, req, (size_t)n, 5000, &r);
  CU_ASSERT_EQUAL(r.status, 415);
  linli_test_resp_free(&r);
  n = snprintf(req, sizeof req,
               "POST /v1/orders HTTP/1.1\r\nHost: x\r\n"
               "Authorization: Bearer " TOK_A "\r\nConnection: close\r\n"
               "Content-Type: application/jsonx\r\n"
               "Content-Length: %zu\r\n\r\n%s", strlen(b), b);
  raw_on(port, req, (size_t)n, 5000, &r);
  CU_ASSERT_EQUAL(r.status, 415);
  linli_test_resp_free(&r);
  /* With it, accepted; also after "Expect: 100-continue" (curl sends it
   * for bodies over 1 KiB): the 100 comes first, then the 202. */
  n = snprintf(req, sizeof req,
               "POST /v1/orders HTTP/1.1\r\nHost: x\r\n"
               "Authorization: Bearer " TOK_A "\r\nConnection: close\r\n"
               "Content-Type: application/json; charset=utf-8\r\n"
               "Expect: 100-continue\r\n"
               "Content-Length: %zu\r\n\r\n%s", strlen(b), b);
  raw_on(port, req, (size_t)n, 10000, &r);
  CU_ASSERT(r.status == 100 || r.status == 202);
  CU_ASSERT_PTR_NOT_NULL(strstr(r.raw, "HTTP/1.1 202"));
  linli_test_resp_free(&r);
  free(b);
}

/* Close with a reset: no TIME_WAIT left on an ephemeral port that a later
 * test's listener may want (this suite's ports lie in that range). */
static void close_rst(int fd) {
  struct linger l = {1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  close(fd);
}

/* Connections held open (no bytes, a trickled head, a trickled body) are
 * closed after gateway.request_deadline_s; more than
 * gateway.max_connections_per_ip from one address are refused; at the
 * descriptor limit (ulimit -n 120) and far past gateway.max_connections,
 * /healthz still answers and the log does not flood. */
static void test_connection_limits(void) {
  struct gwproc g;
  char bin[512], keys[512], keys_env[600], port_env[64];
  linli_test_binary_path("producers/gateway/linli-gateway", bin, sizeof bin);
  linli_test_source_path("config/gateway-keys.conf", keys, sizeof keys);
  snprintf(keys_env, sizeof keys_env, "LINLI_GATEWAY_KEYS_FILE=%s", keys);
  g.port = port_for(3);
  snprintf(port_env, sizeof port_env, "LINLI_GATEWAY_PORT=%d", g.port);
  char *env[] = {keys_env, port_env, "LINLI_METRICS_PORT=-1",
                 "LINLI_GATEWAY_DEV_KEYS=true",
                 "LINLI_GATEWAY_REQUEST_DEADLINE_S=2",
                 "LINLI_GATEWAY_MAX_CONNECTIONS_PER_IP=8", NULL};
  char *argv[] = {"/bin/sh", "-c", "ulimit -n 120 && exec \"$0\"", bin, NULL};
  snprintf(g.log, sizeof g.log, "gateway-%d-limits.log", (int)getpid());
  unlink(g.log);
  g.pid = linli_test_spawn(argv, env, g.log);
  CU_ASSERT_FATAL(g.pid > 0);
  struct linli_test_resp r;
  int up = 0;
  for (int i = 0; i < 200 && !up; i++) {
    up = http_on(g.port, "GET", "/healthz", NULL, NULL, NULL, 0, &r) == 0 &&
         r.status == 200;
    linli_test_resp_free(&r);
    if (!up)
      usleep(100 * 1000);
  }
  CU_ASSERT_FATAL(up);

  /* A head trickled a byte every 300 ms: closed at the deadline. */
  int fd = linli_test_dial(g.port);
  CU_ASSERT_FATAL(fd >= 0);
  static const char head[] = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ";
  linli_test_write_all(fd, head, sizeof head - 1);
  int64_t t0 = linli_test_now_ms(), closed_at = 0;
  while (linli_test_now_ms() - t0 < 8000) {
    usleep(300 * 1000);
    if (send(fd, "a", 1, MSG_NOSIGNAL) != 1) {
      closed_at = linli_test_now_ms() - t0;
      break;
    }
    struct pollfd pfd = {fd, POLLIN, 0};
    char c;
    if (poll(&pfd, 1, 0) == 1 && recv(fd, &c, 1, MSG_DONTWAIT) <= 0) {
      closed_at = linli_test_now_ms() - t0;
      break;
    }
  }
  close_rst(fd);
  fprintf(stderr, "trickled head closed after %lld ms\n", (long long)closed_at);
  CU_ASSERT(closed_at > 0 && closed_at < 5000);

  /* A body trickled a byte every 300 ms: the same. */
  fd = linli_test_dial(g.port);
  CU_ASSERT_FATAL(fd >= 0);
  static const char post[] = "POST /v1/orders HTTP/1.1\r\nHost: x\r\n"
                             "Authorization: Bearer " TOK_A "\r\n"
                             "Content-Type: application/json\r\n"
                             "Content-Length: 1000\r\n\r\n{";
  linli_test_write_all(fd, post, sizeof post - 1);
  t0 = linli_test_now_ms();
  closed_at = 0;
  while (linli_test_now_ms() - t0 < 8000) {
    usleep(300 * 1000);
    struct pollfd pfd = {fd, POLLIN, 0};
    char c;
    if (send(fd, " ", 1, MSG_NOSIGNAL) != 1 ||
        (poll(&pfd, 1, 0) == 1 && recv(fd, &c, 1, MSG_DONTWAIT) <= 0)) {
      closed_at = linli_test_now_ms() - t0;
      break;
    }
  }
  close_rst(fd);
  fprintf(stderr, "trickled body closed after %lld ms\n", (long long)closed_at);
  CU_ASSERT(closed_at > 0 && closed_at < 5000);

  /* Eight connections from 127.0.0.1 that started a request: the ninth
   * is refused (429) before authentication. */
  int held[8];
  for (int i = 0; i < 8; i++) {
    held[i] = linli_test_dial(g.port);
    linli_test_write_all(held[i], "GET /he", 7);
  }
  usleep(300 * 1000);
  static const char hz[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n"
                           "Connection: close\r\n\r\n";
  raw_on(g.port, hz, sizeof hz - 1, 5000, &r);
  CU_ASSERT_EQUAL(r.status, 429);
  CU_ASSERT(json_error_is(&r, "too_many_connections"));
  linli_test_resp_free(&r);
  for (int i = 0; i < 8; i++)
    close_rst(held[i]);
  usleep(300 * 1000);
  raw_on(g.port, hz, sizeof hz - 1, 5000, &r);
  CU_ASSERT_EQUAL(r.status, 200);
  linli_test_resp_free(&r);

  /* 300 idle connections against a limit of 120 descriptors: the oldest
   * idle ones make room, /healthz answers, nothing floods the log. */
  int idle[300], opened = 0;
  for (int i = 0; i < 300; i++) {
    idle[i] = linli_test_dial(g.port);
    opened += idle[i] >= 0;
  }
  fprintf(stderr, "%d idle connections opened\n", opened);
  raw_on(g.port, hz, sizeof hz - 1, 10000, &r);
  CU_ASSERT_EQUAL(r.status, 200);
  linli_test_resp_free(&r);
  for (int i = 0; i < 300; i++)
    if (idle[i] >= 0)
      close_rst(idle[i]);
  raw_on(g.port, hz, sizeof hz - 1, 10000, &r);
  CU_ASSERT_EQUAL(r.status, 200);
  linli_test_resp_free(&r);
  CU_ASSERT(stop_gateway(&g) == 0);
  char cmd[1200];
  snprintf(cmd, sizeof cmd,
           "test $(wc -l < %s) -lt 200 && ! grep -q 'Too many open files' %s",
           g.log, g.log);
  CU_ASSERT(system(cmd) == 0);
}

/* The published development keys: refused unless gateway.dev_keys. */
static void test_dev_keys_refused(void) {
  char bin[512], keys[512], keys_env[600], port_env[64], log[128];
  linli_test_binary_path("producers/gateway/linli-gateway", bin, sizeof bin);
  linli_test_source_path("config/gateway-keys.conf", keys, sizeof keys);
  snprintf(keys_env, sizeof keys_env, "LINLI_GATEWAY_KEYS_FILE=%s", keys);
  snprintf(port_env, sizeof port_env, "LINLI_GATEWAY_PORT=%d", port_for(3));
  snprintf(log, sizeof log, "gateway-%d-devkeys.log", (int)getpid());
  unlink(log);
  /* config/linli.conf (the local stack's) sets dev_keys; a deployment's
   * configuration does not. */
  char *env[] = {keys_env, port_env, "LINLI_METRICS_PORT=-1",
                 "LINLI_GATEWAY_DEV_KEYS=false", NULL};
  char *argv[] = {bin, NULL};
  pid_t pid = linli_test_spawn(argv, env, log);
  CU_ASSERT_FATAL(pid > 0);
  int st = -1;
  for (int i = 0; i < 200; i++) {
    if (waitpid(pid, &st, WNOHANG) == pid)
      break;
    st = -1;
    usleep(100 * 1000);
  }
  if (st == -1) {
    linli_test_stop(pid, 0);
    CU_FAIL("the gateway started with the development keys");
    return;
  }
  CU_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) != 0);
  char cmd[400];
  snprintf(cmd, sizeof cmd,
           "grep -q 'refusing the published development API keys' %s", log);
  CU_ASSERT(system(cmd) == 0);
}

/* A campaign deadline the settler accepts (at most 366 days ahead: the
 * gateway judges campaigns with libdomain's rules, as the settler does). */
static int64_t deadline_in_30_days(void) {
  return linli_clock_now_ms() + INT64_C(30) * 24 * 3600 * 1000;
}

/* An admin opens campaign for app (202 expected). */
static int open_campaign(const char *campaign, const char *app) {
  char body[640];
  snprintf(body, sizeof body,
           "{\"campaign_id\":\"%s\",\"app_id\":\"%s\",\"sku_id\":\"SKU-1\","
           "\"warehouse_id\":\"W1\",\"list_price_fen\":\"1000\",\"tiers\":["
           "{\"min_participants\":2,\"unit_price_fen\":\"900\"}],"
           "\"deadline_ms\":\"%lld\",\"per_user_limit\":3}",
           campaign, app, (long long)deadline_in_30_days());
  struct linli_test_resp r;
  http("POST", "/v1/groupbuys", TOK_ADMIN, NULL, body, &r);
  int ok = r.status == 202;
  if (!ok)
    fprintf(stderr, "open campaign %s -> %d %.*s\n", campaign, r.status,
            (int)r.len, r.body);
  linli_test_resp_free(&r);
  return ok;
}

/* ------------------------------------------------------------ suite */

static int suite_init(void) {
  pick_port_base();
  snprintf(run_id, sizeof run_id, "gwt%d-%lld", (int)getpid(),
           (long long)(time(NULL) % 100000));
  /* The stack's tables (idempotent; scripts/stack.sh up does the same). */
  char tool[512], sql[512], cmd[1200];
  linli_test_binary_path("tools/linli-migrate", tool, sizeof tool);
  linli_test_source_path("schemas/sql", sql, sizeof sql);
  snprintf(cmd, sizeof cmd, "'%s' --dir '%s' >/dev/null", tool, sql);
  if (system(cmd) != 0)
    fprintf(stderr, "linli-migrate failed (tables may be missing)\n");
  char *extra[] = {"LINLI_GATEWAY_RATE_LIMIT_PER_S=100000",
                   "LINLI_GATEWAY_CAMPAIGN_USER_CAP=2",
                   "LINLI_GATEWAY_MAX_BODY_BYTES=65536", NULL};
  return start_gateway(&main_gw, port_for(0), extra);
}

static int suite_clean(void) { return stop_gateway(&main_gw) == 0 ? 0 : -1; }

/* ------------------------------------------------------------ tests */

static void test_routes_and_errors(void) {
  struct linli_test_resp r;
  http("GET", "/v1/nope", TOK_A, NULL, NULL, &r);
  CU_ASSERT_EQUAL(r.status, 404);
  CU_ASSERT_PTR_NOT_NULL(strstr(r.raw, "application/json"));
  linli_test_resp_free(&r);
  http("DELETE", "/v1/orders", TOK_A, NULL, NULL, &r);
  CU_ASSERT_EQUAL(r.status, 405);
  CU_ASSERT_PTR_NOT_NULL(strstr(r.raw, "Allow: POST, GET"));
  linli_test_resp_free(&r);
  http("GET", "/v1/orders/x/payment", TOK_A, NULL, NULL, &r);
  CU_ASSERT_EQUAL(r.status, 405);
  linli_test_resp_free(&r);
  http("GET", "/v1/orders/bad%20id", TOK_A, NULL, NULL, &r);
  CU_ASSERT_EQUAL(r.status, 404);
  linli_test_resp_free(&r);
  http("GET", "/healthz", NULL, NULL, NULL, &r);
  CU_ASSERT_EQUAL(r.status, 200);
  linli_test_resp_free(&r);
  http("GET", "/metrics", NULL, NULL, NULL, &r);
  CU_ASSERT_EQUAL(r.status, 200);
  CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "linli_gateway_requests_total"));
  linli_test_resp_free(&r);
}

static void test_auth(void) {
  struct linli_test_resp r;
  char *b = order_body("o1", "u1", NULL);
  http("POST", "/v1/orders", NULL, NULL, b, &r);
  CU_ASSERT_EQUAL(r.status, 401);
  CU_ASSERT_PTR_NOT_NULL(strstr(r.raw, "WWW-Authenticate: Bearer"));
  linli_test_resp_free(&r);
  http("POST", "/v1/orders", "not-a-key", NULL, b, &r);
  CU_ASSERT_EQUAL(r.status, 401);
  linli_test_resp_free(&r);
  http("POST", "/v1/orders", TOK_LOG, NULL, b, &r);
  CU_ASSERT_EQUAL(r.status, 403);
  linli_test_resp_free(&r);
  http("POST", "/v1/orders", TOK_ADMIN, NULL, b, &r);
  CU_ASSERT_EQUAL(r.status, 403);
  linli_test_resp_free(&r);
  http("POST", "/v1/groupbuys", TOK_A, NULL, "{}", &r);
  CU_ASSERT_EQUAL(r.status, 403);
  linli_test_resp_free(&r);
  http("POST", "/v1/catalog/skus", TOK_A, NULL, "{}", &r);
  CU_ASSERT_EQUAL(r.status, 403);
  linli_test_resp_free(&r);
  http("POST", "/v1/deliveries/events", TOK_A, NULL, "{}", &r);
  CU_ASSERT_EQUAL(r.status, 403);
  linli_test_resp_free(&r);
  free(b);
}

static void test_publish_every_endpoint(void) {
  char order[96], camp[96], user[96], path[256], body[2048];
  uid("o", order, sizeof order);
  uid("c", camp, sizeof camp);
  uid("u", user, sizeof user);

  /* Admin: catalog, inventory, a campaign. */
  snprintf(body, sizeof body,
           "{\"sku_id\":\"%s-sku\",\"name\":\"东北大米 5kg\",\"category\":"
           "\"grain/rice\",\"storage_class\":\"AMBIENT\",\"weight_g\":5000,"
           "\"list_price_fen\":\"4990\",\"status\":\"LISTED\"}", run_id);
  char skukey[128];
  snprintf(skukey, sizeof skukey, "%s-sku", run_id);
  ProtobufCMessage *e = publish_ok("/v1/catalog/skus", TOK_ADMIN, NULL, body,
                                   LINLI_TOPIC_CATALOG, skukey, "Sku");
  if (e) {
    CU_ASSERT_STRING_EQUAL(((Linli__CatalogEvent *)e)->sku->name,
                           "东北大米 5kg");
    protobuf_c_message_free_unpacked(e, NULL);
  }
  snprintf(body, sizeof body,
           "{\"adjustment_id\":\"%s-adj\",\"warehouse_id\":\"%s-W\","
           "\"sku_id\":\"SKU-1\",\"quantity\":100,\"reason\":\"RESTOCK\"}",
           run_id, run_id);
  char whkey[128];
  snprintf(whkey, sizeof whkey, "%s-W", run_id);
  e = publish_ok("/v1/inventory/adjustments", TOK_ADMIN, NULL, body,
                 LINLI_TOPIC_INVENTORY, whkey, "StockAdjusted");
  if (e)
    protobuf_c_message_free_unpacked(e, NULL);
  snprintf(body, sizeof body,
           "{\"campaign_id\":\"%s\",\"app_id\":\"shop_a\",\"sku_id\":\"SKU-1\","
           "\"warehouse_id\":\"W1\",\"list_price_fen\":\"1000\",\"tiers\":["
           "{\"min_participants\":2,\"unit_price_fen\":\"900\"},"
           "{\"min_participants\":5,\"unit_price_fen\":\"800\"}],"
           "\"deadline_ms\":\"%lld\",\"per_user_limit\":3}",
           camp, (long long)deadline_in_30_days());
  e = publish_ok("/v1/groupbuys", TOK_ADMIN, NULL, body, LINLI_TOPIC_GROUPBUY,
                 camp, "CampaignOpened");
  if (e)
    protobuf_c_message_free_unpacked(e, NULL);

  /* App: order (app_id from the key, total filled), pay, join, leave,
   * cancel. */
  char *ob = order_body(order, user, NULL);
  e = publish_ok("/v1/orders", TOK_A,
                 "traceparent: 00-0af7651916cd43dd8448eb211c80319c-"
                 "b7ad6b7169203331-01\r\n",
                 ob, LINLI_TOPIC_ORDERS, order, "OrderPlaced");
  free(ob);
  if (e) {
    Linli__OrderEvent *oe = (Linli__OrderEvent *)e;
    CU_ASSERT_STRING_EQUAL(oe->order_placed->app_id, "shop_a");
    CU_ASSERT_EQUAL(oe->order_placed->total_fen, 2 * 150 + 999);
    CU_ASSERT_EQUAL(oe->order_placed->n_lines, 2);
    CU_ASSERT_STRING_EQUAL(oe->meta->trace_id,
                           "0af7651916cd43dd8448eb211c80319c");
    CU_ASSERT(oe->order_placed->placed_at_ms > 0);
    protobuf_c_message_free_unpacked(e, NULL);
  }
  snprintf(path, sizeof path, "/v1/orders/%s/payment", order);
  e = publish_ok(path, TOK_A, "X-Request-Id: req-42\r\n",
                 "{\"method\":\"WECHAT_PAY\",\"payment_txn_id\":\"tx-1\","
                 "\"amount_fen\":\"1299\"}",
                 LINLI_TOPIC_ORDERS, order, "OrderPaid");
  if (e) {
    Linli__OrderEvent *oe = (Linli__OrderEvent *)e;
    CU_ASSERT_STRING_EQUAL(oe->order_paid->order_id, order);
    CU_ASSERT_EQUAL(oe->order_paid->amount_fen, 1299);
    CU_ASSERT_STRING_EQUAL(oe->meta->trace_id, "req-42");
    protobuf_c_message_free_unpacked(e, NULL);
  }
  snprintf(path, sizeof path, "/v1/groupbuys/%s/join", camp);
  snprintf(body, sizeof body,
           "{\"user_id\":\"%s\",\"order_id\":\"%s\",\"quantity\":1}", user,
           order);
  e = publish_ok(path, TOK_A, NULL, body, LINLI_TOPIC_GROUPBUY, camp,
                 "GroupBuyJoined");
  if (e) {
    CU_ASSERT_STRING_EQUAL(((Linli__GroupBuyEvent *)e)->group_buy_joined->campaign_id,
                           camp);
    protobuf_c_message_free_unpacked(e, NULL);
  }
  snprintf(path, sizeof path, "/v1/groupbuys/%s/leave", camp);
  snprintf(body, sizeof body, "{\"user_id\":\"%s\",\"order_id\":\"%s\"}",
           user, order);
  e = publish_ok(path, TOK_A, NULL, body, LINLI_TOPIC_GROUPBUY, camp,
                 "GroupBuyLeft");
  if (e)
    protobuf_c_message_free_unpacked(e, NULL);
  snprintf(path, sizeof path, "/v1/orders/%s/cancel", order);
  e = publish_ok(path, TOK_A, NULL, "{\"reason\":\"customer request\"}",
                 LINLI_TOPIC_ORDERS, order, "OrderCancelled");
  if (e)
    protobuf_c_message_free_unpacked(e, NULL);

  /* Logistics: a delivery event. */
  snprintf(body, sizeof body,
           "{\"arrived_at_pickup_point\":{\"order_id\":\"%s\","
           "\"pickup_point_id\":\"P1\",\"pickup_code\":\"A1B2\"}}",
           order);
  e = publish_ok("/v1/deliveries/events", TOK_LOG, NULL, body,
                 LINLI_TOPIC_DELIVERY, order, "ArrivedAtPickupPoint");
  if (e)
    protobuf_c_message_free_unpacked(e, NULL);
}

static void expect_400(const char *path, const char *token, const char *body,
                       const char *field) {
  struct linli_test_resp r;
  http("POST", path, token, NULL, body, &r);
  CU_ASSERT_EQUAL(r.status, 400);
  if (field && !names_field(&r, field)) {
    fprintf(stderr, "400 for %s does not name %s: %.*s\n", path, field,
            (int)r.len, r.body);
    CU_FAIL("field not named");
  }
  linli_test_resp_free(&r);
}

static void test_validation(void) {
  char order[96];
  uid("v", order, sizeof order);
  char b[2048];
  /* Every field at fault is named. */
  snprintf(b, sizeof b,
           "{\"order_id\":\"a b\",\"user_id\":\"\",\"warehouse_id\":\"W1\","
           "\"lines\":[{\"sku_id\":\"S1\",\"quantity\":0,\"unit_price_fen\":-5}],"
           "\"home\":{\"recipient_name\":\"x\",\"phone\":\"12345\","
           "\"address\":\"y\",\"lat_e6\":95000000,\"lng_e6\":0}}");
  struct linli_test_resp r;
  http("POST", "/v1/orders", TOK_A, NULL, b, &r);
  CU_ASSERT_EQUAL(r.status, 400);
  CU_ASSERT(names_field(&r, "order_id"));
  CU_ASSERT(names_field(&r, "user_id"));
  CU_ASSERT(names_field(&r, "lines[0].quantity"));
  CU_ASSERT(names_field(&r, "lines[0].unit_price_fen"));
  CU_ASSERT(names_field(&r, "home.lat_e6"));
  linli_test_resp_free(&r);
  /* No lines, no delivery, unknown field, wrong type, spoofed app. */
  snprintf(b, sizeof b,
           "{\"order_id\":\"%s\",\"user_id\":\"u\",\"warehouse_id\":\"W1\"}",
           order);
  expect_400("/v1/orders", TOK_A, b, "lines");
  expect_400("/v1/orders", TOK_A, b, "delivery");
  expect_400("/v1/orders", TOK_A, "{\"order_id\":\"x\",\"evil\":1}", "evil");
  expect_400("/v1/orders", TOK_A, "{\"order_id\":7}", "order_id");
  char *ob = order_body(order, "u", NULL);
  char spoof[1200];
  snprintf(spoof, sizeof spoof, "{\"app_id\":\"shop_b\",%s", ob + 1);
  free(ob);
  expect_400("/v1/orders", TOK_A, spoof, "app_id");
  /* Too many lines (orders.max_lines = 100). */
  size_t cap = 200 * 80 + 512, n = 0;
  char *big = malloc(cap);
  n += (size_t)snprintf(big + n, cap - n,
                        "{\"order_id\":\"%s\",\"user_id\":\"u\",\"warehouse_id\":"
                        "\"W1\",\"pickup\":{\"pickup_point_id\":\"P\"},\"lines\":[",
                        order);
  for (int i = 0; i < 101; i++)
    n += (size_t)snprintf(big + n, cap - n,
                          "%s{\"sku_id\":\"S%d\",\"quantity\":1,"
                          "\"unit_price_fen\":1}", i ? "," : "", i);
  snprintf(big + n, cap - n, "]}");
  expect_400("/v1/orders", TOK_A, big, "lines");
  free(big);
  /* Other endpoints' rules. */
  expect_400("/v1/orders/x1/payment", TOK_A,
             "{\"method\":\"ALIPAY\",\"payment_txn_id\":\"t\",\"amount_fen\":0}",
             "amount_fen");
  expect_400("/v1/orders/x1/payment", TOK_A,
             "{\"order_id\":\"x2\",\"method\":\"ALIPAY\",\"payment_txn_id\":"
             "\"t\",\"amount_fen\":5}",
             "order_id");
  expect_400("/v1/orders/x1/payment", TOK_A,
             "{\"method\":\"CASH\",\"payment_txn_id\":\"t\",\"amount_fen\":5}",
             "method");
  expect_400("/v1/groupbuys", TOK_ADMIN,
             "{\"campaign_id\":\"c\",\"sku_id\":\"s\",\"warehouse_id\":\"w\","
             "\"tiers\":[{\"min_participants\":5,\"unit_price_fen\":9},"
             "{\"min_participants\":2,\"unit_price_fen\":8}],"
             "\"deadline_ms\":1}",
             "tiers[1].min_participants");
  expect_400("/v1/groupbuys/c1/join", TOK_A,
             "{\"user_id\":\"u\",\"order_id\":\"o\",\"quantity\":-1}",
             "quantity");
  expect_400("/v1/inventory/adjustments", TOK_ADMIN,
             "{\"adjustment_id\":\"a\",\"warehouse_id\":\"w\",\"sku_id\":\"s\","
             "\"quantity\":0,\"reason\":\"COUNT\"}",
             "quantity");
  expect_400("/v1/catalog/skus", TOK_ADMIN,
             "{\"sku_id\":\"s\",\"name\":\"n\",\"storage_class\":\"AMBIENT\","
             "\"weight_g\":-1,\"list_price_fen\":1,\"status\":\"LISTED\"}",
             "weight_g");
  expect_400("/v1/deliveries/events", TOK_LOG, "{}", "(body)");
  expect_400("/v1/deliveries/events", TOK_LOG,
             "{\"meta\":{\"event_id\":\"x\"},\"delivered\":{\"order_id\":\"o\"}}",
             "meta");
}

static void test_hostile_bodies(void) {
  struct linli_test_resp r;
  /* 10 MB body: 413 (limit 64 KiB here), server still up. */
  size_t big = 10u * 1024 * 1024;
  char *b = malloc(big);
  memset(b, 'a', big);
  b[0] = '{';
  http_on(main_gw.port, "POST", "/v1/orders", TOK_A, NULL, b, big, &r);
  CU_ASSERT_EQUAL(r.status, 413);
  linli_test_resp_free(&r);
  free(b);
  /* Invalid UTF-8. */
  const char bad_utf8[] = "{\"order_id\":\"o\",\"user_id\":\"\xc3\x28\"}";
  http("POST", "/v1/orders", TOK_A, NULL, bad_utf8, &r);
  CU_ASSERT_EQUAL(r.status, 400);
  linli_test_resp_free(&r);
  /* Deeply nested JSON. */
  size_t depth = 20000; /* 40 KB: under the body limit */
  char *deep = malloc(2 * depth + 32);
  size_t n = 0;
  n += (size_t)snprintf(deep, 32, "{\"lines\":");
  for (size_t i = 0; i < depth; i++)
    deep[n++] = '[';
  for (size_t i = 0; i < depth; i++)
    deep[n++] = ']';
  deep[n++] = '}';
  deep[n] = '\0';
  http("POST", "/v1/orders", TOK_A, NULL, deep, &r);
  CU_ASSERT_EQUAL(r.status, 400);
  linli_test_resp_free(&r);
  free(deep);
  /* Not JSON at all; empty body. */
  http("POST", "/v1/orders", TOK_A, NULL, "<script>alert(1)</script>", &r);
  CU_ASSERT_EQUAL(r.status, 400);
  linli_test_resp_free(&r);
  http("POST", "/v1/orders", TOK_A, NULL, "", &r);
  CU_ASSERT_EQUAL(r.status, 400);
  linli_test_resp_free(&r);
  http("GET", "/healthz", NULL, NULL, NULL, &r);
  CU_ASSERT_EQUAL(r.status, 200);
  linli_test_resp_free(&r);
}

static const char *const INJECT[] = {
    "'; DROP TABLE orders; --",
    "<script>alert(1)</script>",
    "\\\" OR 1=1 --",
    "${jndi:ldap://x/a}",
};

static void test_injection(void) {
  char order[96], path[256], b[2048];
  uid("inj", order, sizeof order);
  CU_ASSERT_FATAL(place(TOK_A, order, "u-inj", NULL));
  for (size_t i = 0; i < sizeof INJECT / sizeof INJECT[0]; i++) {
    json_t *s = json_string(INJECT[i]);
    char *q = json_dumps(s, JSON_ENCODE_ANY);
    json_decref(s);
    /* In every id field: rejected. */
    snprintf(b, sizeof b,
             "{\"order_id\":%s,\"user_id\":%s,\"warehouse_id\":%s,\"lines\":"
             "[{\"sku_id\":%s,\"quantity\":1,\"unit_price_fen\":1}],"
             "\"pickup\":{\"pickup_point_id\":%s},\"campaign_id\":%s}",
             q, q, q, q, q, q);
    struct linli_test_resp r;
    http("POST", "/v1/orders", TOK_A, NULL, b, &r);
    CU_ASSERT_EQUAL(r.status, 400);
    CU_ASSERT(names_field(&r, "order_id") && names_field(&r, "user_id") &&
              names_field(&r, "warehouse_id") &&
              names_field(&r, "lines[0].sku_id") &&
              names_field(&r, "pickup.pickup_point_id") &&
              names_field(&r, "campaign_id"));
    linli_test_resp_free(&r);
    snprintf(path, sizeof path, "/v1/orders/%s/payment", order);
    snprintf(b, sizeof b,
             "{\"method\":\"ALIPAY\",\"payment_txn_id\":%s,\"amount_fen\":1}",
             q);
    expect_400(path, TOK_A, b, "payment_txn_id");
    /* In free text: published as the same inert bytes. */
    snprintf(path, sizeof path, "/v1/orders/%s/cancel", order);
    snprintf(b, sizeof b, "{\"reason\":%s}", q);
    ProtobufCMessage *e = publish_ok(path, TOK_A, NULL, b, LINLI_TOPIC_ORDERS,
                                     order, "OrderCancelled");
    if (e) {
      CU_ASSERT_STRING_EQUAL(((Linli__OrderEvent *)e)->order_cancelled->reason,
                             INJECT[i]);
      protobuf_c_message_free_unpacked(e, NULL);
    }
    char sku[96];
    snprintf(sku, sizeof sku, "%s-isku%zu", run_id, i);
    snprintf(b, sizeof b,
             "{\"sku_id\":\"%s\",\"name\":%s,\"category\":%s,\"origin\":%s,"
             "\"storage_class\":\"FROZEN\",\"weight_g\":1,\"list_price_fen\":1,"
             "\"status\":\"DELISTED\"}", sku, q, q, q);
    e = publish_ok("/v1/catalog/skus", TOK_ADMIN, NULL, b, LINLI_TOPIC_CATALOG,
                   sku, "Sku");
    if (e) {
      CU_ASSERT_STRING_EQUAL(((Linli__CatalogEvent *)e)->sku->origin,
                             INJECT[i]);
      protobuf_c_message_free_unpacked(e, NULL);
    }
    free(q);
  }
  struct linli_test_resp r;
  http("GET", "/healthz", NULL, NULL, NULL, &r);
  CU_ASSERT_EQUAL(r.status, 200);
  linli_test_resp_free(&r);
}

static void test_idempotency(void) {
  char order[96], hdr[256];
  uid("idem", order, sizeof order);
  snprintf(hdr, sizeof hdr, "Idempotency-Key: %s-key\r\n", order);
  char *b = order_body(order, "u-idem", NULL);
  struct linli_test_resp r1, r2, r3;
  http("POST", "/v1/orders", TOK_A, hdr, b, &r1);
  CU_ASSERT_EQUAL_FATAL(r1.status, 202);
  http("POST", "/v1/orders", TOK_A, hdr, b, &r2);
  CU_ASSERT_EQUAL(r2.status, 202);
  CU_ASSERT_PTR_NOT_NULL(strstr(r2.raw, "Idempotent-Replayed: true"));
  CU_ASSERT_EQUAL(r1.len, r2.len);
  CU_ASSERT(r1.len == r2.len && memcmp(r1.body, r2.body, r1.len) == 0);
  /* Nothing more was published for this order. */
  char p[16], o[32];
  jfield(&r1, "partition", p, sizeof p);
  jfield(&r1, "offset", o, sizeof o);
  CU_ASSERT_EQUAL(count_key_from(LINLI_TOPIC_ORDERS, atoi(p), atoll(o), order,
                                 2500),
                  1);
  /* Same key, different body: 409. The same key under another app is
   * another key. */
  b[strlen(b) - 1] = '\0';
  char other[1200];
  snprintf(other, sizeof other, "%s,\"express\":true}", b);
  http("POST", "/v1/orders", TOK_A, hdr, other, &r3);
  CU_ASSERT_EQUAL(r3.status, 409);
  linli_test_resp_free(&r1);
  linli_test_resp_free(&r2);
  linli_test_resp_free(&r3);
  free(b);
}

static void test_tenant_isolation_writes(void) {
  char order[96], path[256], body[512];
  uid("ten", order, sizeof order);
  CU_ASSERT_FATAL(place(TOK_A, order, "u-ten", NULL));
  struct linli_test_resp r;
  snprintf(path, sizeof path, "/v1/orders/%s/payment", order);
  http("POST", path, TOK_B, NULL,
       "{\"method\":\"ALIPAY\",\"payment_txn_id\":\"t9\",\"amount_fen\":5}",
       &r);
  CU_ASSERT_EQUAL(r.status, 404);
  linli_test_resp_free(&r);
  snprintf(path, sizeof path, "/v1/orders/%s/cancel", order);
  http("POST", path, TOK_B, NULL, "{}", &r);
  CU_ASSERT_EQUAL(r.status, 404);
  linli_test_resp_free(&r);
  snprintf(body, sizeof body,
           "{\"user_id\":\"u\",\"order_id\":\"%s\",\"quantity\":1}", order);
  http("POST", "/v1/groupbuys/camp-x/join", TOK_B, NULL, body, &r);
  CU_ASSERT_EQUAL(r.status, 404);
  linli_test_resp_free(&r);
  /* Unknown order: the same 404. */
  http("POST", "/v1/orders/no-such-order-zz/cancel", TOK_A, NULL, "{}", &r);
  CU_ASSERT_EQUAL(r.status, 404);
  linli_test_resp_free(&r);
  /* Another app's order id cannot be placed again. */
  char *b = order_body(order, "u-ten", NULL);
  http("POST", "/v1/orders", TOK_B, NULL, b, &r);
  CU_ASSERT_EQUAL(r.status, 409);
  linli_test_resp_free(&r);
  free(b);
  /* Reads: the owner sees it (accepted, maybe not yet recorded), B does not. */
  snprintf(path, sizeof path, "/v1/orders/%s", order);
  http("GET", path, TOK_A, NULL, NULL, &r);
  CU_ASSERT_EQUAL(r.status, 200);
  linli_test_resp_free(&r);
  http("GET", path, TOK_B, NULL, NULL, &r);
  CU_ASSERT_EQUAL(r.status, 404);
  linli_test_resp_free(&r);
}

/* ------------------------------------------------------ reads (PG) */

static PGconn *pg(void) {
  const linli_config_t *cfg = linli_test_config();
  PGconn *c = PQconnectdb(linli_config_str(cfg, "pg.conninfo"));
  if (PQstatus(c) != CONNECTION_OK) {
    fprintf(stderr, "pg: %s\n", PQerrorMessage(c));
    PQfinish(c);
    return NULL;
  }
  return c;
}

static int pg_exec(PGconn *c, const char *sql, int n, const char *const *p) {
  PGresult *res = PQexecParams(c, sql, n, NULL, p, NULL, NULL, 0);
  int ok = PQresultStatus(res) == PGRES_COMMAND_OK ||
           PQresultStatus(res) == PGRES_TUPLES_OK;
  if (!ok)
    fprintf(stderr, "pg: %s\n", PQresultErrorMessage(res));
  PQclear(res);
  return ok ? 0 : -1;
}

static void test_reads(void) {
  PGconn *c = pg();
  CU_ASSERT_PTR_NOT_NULL_FATAL(c);
  char o1[96], o2[96], user[96];
  uid("r1", o1, sizeof o1);
  uid("r2", o2, sizeof o2);
  uid("ru", user, sizeof user);
  /* Rows as the ledger writes them. */
  const char *ins =
      "INSERT INTO orders (order_id, app_id, user_id, warehouse_id, state, "
      "total_fen, paid_fen, payment_txn_id, payment_method, delivery_kind, "
      "pickup_point_id, placed_at, last_event_id) VALUES ($1, 'shop_a', $2, "
      "'W1', $3, 1299, $4, $5, $6, 'PICKUP', 'P1', "
      "timestamptz 'epoch' + $7::bigint * interval '1 millisecond', 'ev')";
  const char *p1[] = {o1, user, "PAID", "1299", "tx-r1", "ALIPAY",
                      "1700000000000"};
  const char *p2[] = {o2, user, "RESERVED", "0", NULL, NULL, "1700000100000"};
  CU_ASSERT_FATAL(pg_exec(c, ins, 7, p1) == 0);
  CU_ASSERT_FATAL(pg_exec(c, ins, 7, p2) == 0);
  const char *pl[] = {o1};
  CU_ASSERT(pg_exec(c,
                    "INSERT INTO order_lines VALUES ($1, 0, 'SKU-1', 2, 150), "
                    "($1, 1, 'SKU-2', 1, 999)",
                    1, pl) == 0);
  CU_ASSERT(pg_exec(c,
                    "INSERT INTO reservations (order_id, warehouse_id, status, "
                    "reserved_at, last_event_id) VALUES ($1, 'W1', "
                    "'COMMITTED', now(), 'ev')",
                    1, pl) == 0);
  CU_ASSERT(pg_exec(c,
                    "INSERT INTO payments (payment_txn_id, order_id, method, "
                    "amount_fen, status, paid_at, event_id) VALUES ('tx-' || "
                    "$1, $1, 'ALIPAY', 1299, 'ACCEPTED', now(), 'ev-' || $1)",
                    1, pl) == 0);

  char path[512], buf[128];
  struct linli_test_resp r;
  snprintf(path, sizeof path, "/v1/orders/%s", o1);
  http("GET", path, TOK_A, NULL, NULL, &r);
  CU_ASSERT_EQUAL(r.status, 200);
  CU_ASSERT_STRING_EQUAL(jfield(&r, "state", buf, sizeof buf), "PAID");
  CU_ASSERT_STRING_EQUAL(jfield(&r, "total_fen", buf, sizeof buf), "1299");
  CU_ASSERT_STRING_EQUAL(jfield(&r, "placed_at_ms", buf, sizeof buf),
                         "1700000000000");
  CU_ASSERT_STRING_EQUAL(jfield(&r, "recorded", buf, sizeof buf), "true");
  CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "\"sku_id\":\"SKU-2\""));
  CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "\"status\":\"COMMITTED\""));
  CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "\"status\":\"ACCEPTED\""));
  linli_test_resp_free(&r);
  http("GET", path, TOK_B, NULL, NULL, &r);
  CU_ASSERT_EQUAL(r.status, 404);
  linli_test_resp_free(&r);
  http("GET", path, TOK_ADMIN, NULL, NULL, &r);
  CU_ASSERT_EQUAL(r.status, 200);
  linli_test_resp_free(&r);
  http("GET", path, TOK_LOG, NULL, NULL, &r);
  CU_ASSERT_EQUAL(r.status, 403);
  linli_test_resp_free(&r);

  /* The list, newest first, one per page. */
  snprintf(path, sizeof path, "/v1/orders?user=%s&since=0&limit=1", user);
  http("GET", path, TOK_A, NULL, NULL, &r);
  CU_ASSERT_EQUAL(r.status, 200);
  CU_ASSERT_PTR_NOT_NULL(strstr(r.body, o2));
  CU_ASSERT_PTR_NULL(strstr(r.body, o1));
  char cursor[160];
  jfield(&r, "next_cursor", cursor, sizeof cursor);
  CU_ASSERT(cursor[0] != '\0');
  linli_test_resp_free(&r);
  snprintf(path, sizeof path, "/v1/orders?user=%s&limit=1&cursor=%s", user,
           cursor);
  http("GET", path, TOK_A, NULL, NULL, &r);
  CU_ASSERT_EQUAL(r.status, 200);
  CU_ASSERT_PTR_NOT_NULL(strstr(r.body, o1));
  CU_ASSERT_PTR_NULL(strstr(r.body, o2));
  linli_test_resp_free(&r);
  snprintf(path, sizeof path, "/v1/orders?user=%s&since=1700000050000", user);
  http("GET", path, TOK_A, NULL, NULL, &r);
  CU_ASSERT_PTR_NOT_NULL(strstr(r.body, o2));
  CU_ASSERT_PTR_NULL(strstr(r.body, o1));
  linli_test_resp_free(&r);
  snprintf(path, sizeof path, "/v1/orders?user=%s", user);
  http("GET", path, TOK_B, NULL, NULL, &r);
  CU_ASSERT_EQUAL(r.status, 200);
  CU_ASSERT_PTR_NULL(strstr(r.body, o1));
  CU_ASSERT_PTR_NULL(strstr(r.body, o2));
  linli_test_resp_free(&r);
  http("GET", "/v1/orders?user=a%20b&limit=999", TOK_A, NULL, NULL, &r);
  CU_ASSERT_EQUAL(r.status, 400);
  CU_ASSERT(names_field(&r, "user") && names_field(&r, "limit"));
  linli_test_resp_free(&r);
  /* SQL in a query parameter is just a bad id. */
  http("GET", "/v1/orders?user=x%27%3B%20DROP%20TABLE%20orders%3B--", TOK_A,
       NULL, NULL, &r);
  CU_ASSERT_EQUAL(r.status, 400);
  linli_test_resp_free(&r);

  const char *del[] = {o1, o2};
  pg_exec(c, "DELETE FROM payments WHERE order_id = $1", 1, del);
  pg_exec(c, "DELETE FROM reservations WHERE order_id = $1", 1, del);
  pg_exec(c, "DELETE FROM orders WHERE order_id IN ($1, $2)", 2, del);
  PQfinish(c);
}

/* ------------------------------------------------- limits and caps */

static void test_user_cap(void) {
  char camp[96], user[96], o[3][96];
  uid("cap", camp, sizeof camp);
  uid("capu", user, sizeof user);
  for (int i = 0; i < 3; i++)
    uid("capo", o[i], sizeof o[i]);
  CU_ASSERT_FATAL(open_campaign(camp, "shop_a"));
  CU_ASSERT(place(TOK_A, o[0], user, camp));
  CU_ASSERT(place(TOK_A, o[1], user, camp));
  /* Joining with an order already counted does not count again. */
  char path[256], body[512];
  snprintf(path, sizeof path, "/v1/groupbuys/%s/join", camp);
  snprintf(body, sizeof body,
           "{\"user_id\":\"%s\",\"order_id\":\"%s\",\"quantity\":1}", user,
           o[0]);
  struct linli_test_resp r;
  http("POST", path, TOK_A, NULL, body, &r);
  CU_ASSERT_EQUAL(r.status, 202);
  linli_test_resp_free(&r);
  char *b = order_body(o[2], user, camp);
  http("POST", "/v1/orders", TOK_A, NULL, b, &r);
  CU_ASSERT_EQUAL(r.status, 429);
  CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "user_cap_reached"));
  linli_test_resp_free(&r);
  free(b);
  /* Another user is not affected. */
  CU_ASSERT(place(TOK_A, o[2], "someone-else", camp));
}

/* A campaign belongs to its app: another app's orders, joins and leaves
 * get the 404 of an unknown campaign, its users' caps are their own, and
 * the campaign id cannot be opened again for another app. */
static void test_campaign_isolation(void) {
  char camp[96], ob[96], oa[96], user[96], path[256], body[512];
  uid("iso", camp, sizeof camp);
  uid("isob", ob, sizeof ob);
  uid("isoa", oa, sizeof oa);
  uid("isou", user, sizeof user);
  CU_ASSERT_FATAL(open_campaign(camp, "shop_a"));
  struct linli_test_resp r;
  /* B orders into A's campaign: 404, and the order id stays free. */
  char *b = order_body(ob, user, camp);
  http("POST", "/v1/orders", TOK_B, NULL, b, &r);
  CU_ASSERT_EQUAL(r.status, 404);
  CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "no such campaign"));
  linli_test_resp_free(&r);
  free(b);
  /* B joins A's campaign with an order of its own: 404, however often
   * (no cap of A's user is touched). */
  CU_ASSERT_FATAL(place(TOK_B, ob, user, NULL));
  snprintf(path, sizeof path, "/v1/groupbuys/%s/join", camp);
  snprintf(body, sizeof body,
           "{\"user_id\":\"%s\",\"order_id\":\"%s\",\"quantity\":1}", user,
           ob);
  for (int i = 0; i < 7; i++) {
    http("POST", path, TOK_B, NULL, body, &r);
    CU_ASSERT_EQUAL(r.status, 404);
    linli_test_resp_free(&r);
  }
  snprintf(path, sizeof path, "/v1/groupbuys/%s/leave", camp);
  snprintf(body, sizeof body, "{\"user_id\":\"%s\",\"order_id\":\"%s\"}",
           user, ob);
  http("POST", path, TOK_B, NULL, body, &r);
  CU_ASSERT_EQUAL(r.status, 404);
  linli_test_resp_free(&r);
  /* A's user with the same user id is not capped by any of that. */
  CU_ASSERT(place(TOK_A, oa, user, camp));
  /* The campaign id cannot be opened for another app. */
  CU_ASSERT(!open_campaign(camp, "shop_b"));
  /* An unknown campaign: the same 404. */
  char none[96];
  uid("isonone", none, sizeof none);
  snprintf(path, sizeof path, "/v1/groupbuys/%s/join", none);
  snprintf(body, sizeof body,
           "{\"user_id\":\"%s\",\"order_id\":\"%s\",\"quantity\":1}", user,
           oa);
  http("POST", path, TOK_A, NULL, body, &r);
  CU_ASSERT_EQUAL(r.status, 404);
  linli_test_resp_free(&r);
}

/* 100 lines of quantity 1,000,000 at 10^11 fen overflow int64: a 400
 * naming the field, never a crash or a wrapped total. */
static void test_money_overflow(void) {
  char order[96];
  uid("ovf", order, sizeof order);
  size_t cap = 16384, n = 0;
  char *b = malloc(cap);
  n += (size_t)snprintf(b + n, cap - n,
                        "{\"order_id\":\"%s\",\"user_id\":\"u\","
                        "\"warehouse_id\":\"W1\",\"lines\":[",
                        order);
  for (int i = 0; i < 100; i++)
    n += (size_t)snprintf(b + n, cap - n,
                          "%s{\"sku_id\":\"S%d\",\"quantity\":1000000,"
                          "\"unit_price_fen\":\"100000000000\"}",
                          i ? "," : "", i);
  snprintf(b + n, cap - n, "],\"pickup\":{\"pickup_point_id\":\"P1\"}}");
  expect_400("/v1/orders", TOK_A, b, "lines");
  /* Two lines whose sum passes the bound (each line alone is fine). */
  snprintf(b, cap,
           "{\"order_id\":\"%s\",\"user_id\":\"u\",\"warehouse_id\":\"W1\","
           "\"lines\":[{\"sku_id\":\"S1\",\"quantity\":1000000,"
           "\"unit_price_fen\":\"100000000000\"},{\"sku_id\":\"S2\","
           "\"quantity\":1,\"unit_price_fen\":\"1\"}],"
           "\"pickup\":{\"pickup_point_id\":\"P1\"}}", order);
  expect_400("/v1/orders", TOK_A, b, "lines");
  free(b);
  /* The gateway is still there. */
  struct linli_test_resp r;
  http("GET", "/healthz", NULL, NULL, NULL, &r);
  CU_ASSERT_EQUAL(r.status, 200);
  linli_test_resp_free(&r);
}

static void test_rate_limit(void) {
  struct gwproc g;
  char *extra[] = {"LINLI_GATEWAY_RATE_LIMIT_PER_S=3", NULL};
  CU_ASSERT_FATAL(start_gateway(&g, port_for(1), extra) == 0);
  /* The window is one wall-clock second per key, shared through Redis by
   * every gateway: start in a fresh one, so that this key's requests from
   * the tests before do not count. */
  struct timeval now;
  gettimeofday(&now, NULL);
  usleep((useconds_t)(1000000 - now.tv_usec) + 20000);
  int limited = 0, ok = 0;
  for (int i = 0; i < 12; i++) {
    struct linli_test_resp r;
    http_on(g.port, "GET", "/v1/orders/rl-none", TOK_B, NULL, NULL, 0, &r);
    if (r.status == 429) {
      limited++;
      CU_ASSERT_PTR_NOT_NULL(strstr(r.raw, "Retry-After: 1"));
    } else if (r.status == 404) {
      ok++;
    } else {
      fprintf(stderr, "rate limit test: unexpected %d %.*s\n", r.status,
              (int)r.len, r.body);
    }
    linli_test_resp_free(&r);
  }
  CU_ASSERT(limited > 0);
  CU_ASSERT(ok >= 3);
  /* Another key has its own budget. */
  struct linli_test_resp r;
  http_on(g.port, "GET", "/v1/orders/rl-none", TOK_ADMIN, NULL, NULL, 0, &r);
  CU_ASSERT_EQUAL(r.status, 404);
  linli_test_resp_free(&r);
  CU_ASSERT(stop_gateway(&g) == 0);
}

static void test_kafka_down(void) {
  struct gwproc g;
  char *extra[] = {"LINLI_KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:1",
                   "LINLI_KAFKA_MESSAGE_TIMEOUT_MS=3000", NULL};
  CU_ASSERT_FATAL(start_gateway(&g, port_for(2), extra) == 0);
  char order[96], hdr[160], path[160];
  uid("down", order, sizeof order);
  snprintf(hdr, sizeof hdr, "Idempotency-Key: %s\r\n", order);
  char *b = order_body(order, "u-down", NULL);
  struct linli_test_resp r;
  int64_t t0 = linli_test_now_ms();
  http_on(g.port, "POST", "/v1/orders", TOK_A, hdr, b, strlen(b), &r);
  CU_ASSERT_EQUAL(r.status, 503);
  CU_ASSERT(linli_test_now_ms() - t0 < 15000);
  linli_test_resp_free(&r);
  /* SIGTERM while a request waits for Kafka: it still gets its answer
   * before the gateway exits (0, no leaks). */
  char order2[96];
  uid("down", order2, sizeof order2);
  char *b2 = order_body(order2, "u-down", NULL);
  int parked = linli_test_dial(g.port);
  CU_ASSERT_FATAL(parked >= 0);
  char head[512];
  int hn = snprintf(head, sizeof head,
                    "POST /v1/orders HTTP/1.1\r\nHost: x\r\nConnection: "
                    "close\r\nAuthorization: Bearer " TOK_A "\r\n"
                    "Content-Type: application/json\r\nContent-Length: "
                    "%zu\r\n\r\n",
                    strlen(b2));
  CU_ASSERT(linli_test_write_all(parked, head, (size_t)hn) == 0);
  CU_ASSERT(linli_test_write_all(parked, b2, strlen(b2)) == 0);
  free(b2);
  usleep(300 * 1000);
  kill(g.pid, SIGTERM);
  linli_test_read_response(parked, &r);
  close(parked);
  CU_ASSERT_EQUAL(r.status, 503);
  CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "nothing was written"));
  linli_test_resp_free(&r);
  CU_ASSERT(stop_gateway(&g) == 0);
  /* Nothing was accepted: the order is unknown, the key is free again, and
   * a healthy gateway accepts the same request with the same key. */
  snprintf(path, sizeof path, "/v1/orders/%s", order);
  http("GET", path, TOK_A, NULL, NULL, &r);
  CU_ASSERT_EQUAL(r.status, 404);
  linli_test_resp_free(&r);
  http("POST", "/v1/orders", TOK_A, hdr, b, &r);
  CU_ASSERT_EQUAL(r.status, 202);
  CU_ASSERT_PTR_NULL(strstr(r.raw, "Idempotent-Replayed"));
  linli_test_resp_free(&r);
  free(b);
}

/* ------------------------------------------------ Redis down or slow */

/*
 * A fake server in front of the real Redis or PostgreSQL, on a loopback
 * port: in STALL mode it accepts connections and never reads or answers
 * them (a server stuck in a long command, or behind a dead network path);
 * in RELAY mode it relays connections to the real server; in FREEZE mode
 * it stops relaying the established ones and holds new ones. Leaving STALL
 * or FREEZE for RELAY closes the connections held or frozen.
 */
enum { FAKE_STALL, FAKE_RELAY, FAKE_FREEZE };

struct fake_server {
  int lfd, port, up_port;
  char up_host[64];
  atomic_int mode, stop;
  pthread_t th;
};

static int fake_connect_up(struct fake_server *f) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)f->up_port);
  inet_pton(AF_INET, f->up_host, &a.sin_addr);
  if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0)
    return fd;
  if (fd >= 0)
    close(fd);
  return -1;
}

static void *fake_run(void *arg) {
  struct fake_server *f = arg;
  enum { MAXC = 32 };
  int held[MAXC], nheld = 0, pa[MAXC], pb[MAXC], npairs = 0;
  char buf[65536];
  int last = atomic_load(&f->mode);
  while (!atomic_load(&f->stop)) {
    int mode = atomic_load(&f->mode);
    if (mode == FAKE_RELAY)
      while (nheld > 0)
        close(held[--nheld]);
    if (mode == FAKE_RELAY && last == FAKE_FREEZE) {
      for (int i = 0; i < npairs; i++) {
        close(pa[i]);
        close(pb[i]);
      }
      npairs = 0;
    }
    last = mode;
    struct pollfd pf[1 + 2 * MAXC];
    int n = 0;
    pf[n++] = (struct pollfd){f->lfd, POLLIN, 0};
    for (int i = 0; mode == FAKE_RELAY && i < npairs; i++) {
      pf[n++] = (struct pollfd){pa[i], POLLIN, 0};
      pf[n++] = (struct pollfd){pb[i], POLLIN, 0};
    }
    if (poll(pf, (nfds_t)n, 50) <= 0)
      continue;
    for (int i = 0; mode == FAKE_RELAY && i < npairs; i++) {
      for (int dir = 0; dir < 2; dir++) {
        short ev = pf[1 + 2 * i + dir].revents;
        int from = dir ? pb[i] : pa[i], to = dir ? pa[i] : pb[i];
        if (from < 0 || !(ev & (POLLIN | POLLHUP | POLLERR)))
          continue;
        ssize_t r = recv(from, buf, sizeof buf, 0);
        if (r <= 0 || linli_test_write_all(to, buf, (size_t)r) != 0) {
          close(pa[i]);
          close(pb[i]);
          pa[i] = pb[i] = -1;
        }
      }
    }
    int k = 0;
    for (int i = 0; i < npairs; i++)
      if (pa[i] >= 0) {
        pa[k] = pa[i];
        pb[k++] = pb[i];
      }
    npairs = k;
    if (pf[0].revents & POLLIN) {
      int c = accept(f->lfd, NULL, NULL);
      if (c < 0)
        continue;
      int u = mode == FAKE_RELAY ? fake_connect_up(f) : -1;
      if (mode != FAKE_RELAY && nheld < MAXC) {
        held[nheld++] = c;
      } else if (u >= 0 && npairs < MAXC) {
        pa[npairs] = c;
        pb[npairs++] = u;
      } else {
        close(c);
        if (u >= 0)
          close(u);
      }
    }
  }
  while (nheld > 0)
    close(held[--nheld]);
  for (int i = 0; i < npairs; i++) {
    close(pa[i]);
    close(pb[i]);
  }
  return NULL;
}

/* In front of up_host:up_port, listening on port, in mode. */
static int fake_start(struct fake_server *f, int port, const char *up_host,
                      int up_port, int mode) {
  memset(f, 0, sizeof *f);
  snprintf(f->up_host, sizeof f->up_host, "%s", up_host);
  f->up_port = up_port;
  f->port = port;
  f->lfd = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(f->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(f->lfd, (struct sockaddr *)&a, sizeof a) != 0 ||
      listen(f->lfd, 16) != 0) {
    close(f->lfd);
    return -1;
  }
  atomic_store(&f->mode, mode);
  if (pthread_create(&f->th, NULL, fake_run, f) != 0) {
    close(f->lfd);
    return -1;
  }
  return 0;
}

static void fake_stop(struct fake_server *f) {
  atomic_store(&f->stop, 1);
  pthread_join(f->th, NULL);
  close(f->lfd);
}

static void test_redis_down(void) {
  /* Nothing listens: every Redis-backed request is a fast 503, and the
   * gateway still serves and says so. */
  struct gwproc g;
  char *extra[] = {"LINLI_REDIS_PORT=1", NULL};
  CU_ASSERT_FATAL(start_gateway(&g, port_for(5), extra) == 0);
  struct linli_test_resp r;
  int64_t t0 = linli_test_now_ms();
  http_on(g.port, "GET", "/v1/orders/redis-down", TOK_A, NULL, NULL, 0, &r);
  CU_ASSERT_EQUAL(r.status, 503);
  CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "Redis"));
  CU_ASSERT(linli_test_now_ms() - t0 < 1000);
  linli_test_resp_free(&r);
  char *b = order_body("redis-down-order", "u", NULL);
  http_on(g.port, "POST", "/v1/orders", TOK_A, NULL, b, strlen(b), &r);
  CU_ASSERT_EQUAL(r.status, 503);
  linli_test_resp_free(&r);
  free(b);
  http_on(g.port, "GET", "/healthz", NULL, NULL, NULL, 0, &r);
  CU_ASSERT_EQUAL(r.status, 200);
  CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "\"redis\":\"down\""));
  linli_test_resp_free(&r);
  CU_ASSERT(stop_gateway(&g) == 0);
}

static void test_redis_stalled(void) {
  struct fake_server f;
  int fport = port_for(6);
  const linli_config_t *cfg = linli_test_config();
  CU_ASSERT_FATAL(fake_start(&f, fport, linli_config_str(cfg, "redis.host"),
                             (int)linli_config_int(cfg, "redis.port"),
                             FAKE_STALL) == 0);
  char env_port[64];
  snprintf(env_port, sizeof env_port, "LINLI_REDIS_PORT=%d", fport);
  char *extra[] = {env_port, NULL};
  struct gwproc g;
  if (start_gateway(&g, port_for(7), extra) != 0) {
    fake_stop(&f);
    CU_FAIL_FATAL("gateway did not start");
  }
  /* A request parks on the stalled Redis (its rate-limit check)... */
  int parked = linli_test_dial(g.port);
  CU_ASSERT_FATAL(parked >= 0);
  static const char req[] =
      "GET /v1/orders/stalled HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
      "Authorization: Bearer " TOK_A "\r\n\r\n";
  int64_t t0 = linli_test_now_ms();
  CU_ASSERT(linli_test_write_all(parked, req, sizeof req - 1) == 0);
  usleep(200 * 1000);
  /* ...while the loop goes on serving everything else at once. */
  for (int i = 0; i < 5; i++) {
    struct linli_test_resp r;
    int64_t t1 = linli_test_now_ms();
    http_on(g.port, "GET", "/healthz", NULL, NULL, NULL, 0, &r);
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT(linli_test_now_ms() - t1 < 500);
    linli_test_resp_free(&r);
  }
  /* The parked request gets its 503 once the connection is given up
   * (GW_REDIS_TIMEOUT_MS, 2 s), not never. */
  struct linli_test_resp pr;
  linli_test_read_response(parked, &pr);
  close(parked);
  int64_t took = linli_test_now_ms() - t0;
  CU_ASSERT_EQUAL(pr.status, 503);
  CU_ASSERT(took >= 1500 && took < 6000);
  linli_test_resp_free(&pr);
  /* Redis answers again: the gateway reconnects by itself. */
  atomic_store(&f.mode, FAKE_RELAY);
  int status = 0;
  int64_t end = linli_test_now_ms() + 15000;
  while (status != 404 && linli_test_now_ms() < end) {
    struct linli_test_resp r;
    http_on(g.port, "GET", "/v1/orders/stalled-none", TOK_A, NULL, NULL, 0,
            &r);
    status = r.status;
    CU_ASSERT(status == 404 || status == 503);
    linli_test_resp_free(&r);
    if (status != 404)
      usleep(100 * 1000);
  }
  CU_ASSERT_EQUAL(status, 404);
  char order[96];
  uid("stall", order, sizeof order);
  char *b = order_body(order, "u-stall", NULL);
  struct linli_test_resp r;
  http_on(g.port, "POST", "/v1/orders", TOK_A, NULL, b, strlen(b), &r);
  CU_ASSERT_EQUAL(r.status, 202);
  linli_test_resp_free(&r);
  free(b);
  CU_ASSERT(stop_gateway(&g) == 0);
  fake_stop(&f);
}

/* GET /v1/orders/{missing} until it answers want (15 s at most). */
static int get_until(int port, const char *id, int want) {
  char path[160];
  snprintf(path, sizeof path, "/v1/orders/%s", id);
  int status = 0;
  int64_t end = linli_test_now_ms() + 15000;
  while (status != want && linli_test_now_ms() < end) {
    struct linli_test_resp r;
    http_on(port, "GET", path, TOK_A, NULL, NULL, 0, &r);
    status = r.status;
    linli_test_resp_free(&r);
    if (status != want)
      usleep(100 * 1000);
  }
  return status;
}

static void test_pg_stalled(void) {
  /* The gateway's PostgreSQL connections go through a relay that can
   * freeze them mid-session (a database that stopped answering). */
  struct fake_server f;
  int fport = port_for(6);
  char conninfo[512], host[64] = "127.0.0.1", env_pg[600];
  const linli_config_t *cfg = linli_test_config();
  const char *ci = linli_config_str(cfg, "pg.conninfo");
  int up_port = 5432;
  const char *hp = strstr(ci, "host=");
  if (hp)
    sscanf(hp, "host=%63[^ ]", host);
  const char *pp = strstr(ci, "port=");
  if (pp)
    sscanf(pp, "port=%d", &up_port);
  CU_ASSERT_FATAL(fake_start(&f, fport, host, up_port, FAKE_RELAY) == 0);
  /* The same conninfo with the relay's host and port last (libpq: the last
   * one wins). */
  snprintf(conninfo, sizeof conninfo, "%s host=127.0.0.1 port=%d", ci, fport);
  snprintf(env_pg, sizeof env_pg, "LINLI_PG_CONNINFO=%s", conninfo);
  char *extra[] = {env_pg, NULL};
  struct gwproc g;
  if (start_gateway(&g, port_for(7), extra) != 0) {
    fake_stop(&f);
    CU_FAIL_FATAL("gateway did not start");
  }
  CU_ASSERT_EQUAL(get_until(g.port, "pg-none", 404), 404);
  atomic_store(&f.mode, FAKE_FREEZE);
  usleep(100 * 1000);
  int parked = linli_test_dial(g.port);
  CU_ASSERT_FATAL(parked >= 0);
  static const char req[] =
      "GET /v1/orders/pg-stalled HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
      "Authorization: Bearer " TOK_A "\r\n\r\n";
  int64_t t0 = linli_test_now_ms();
  CU_ASSERT(linli_test_write_all(parked, req, sizeof req - 1) == 0);
  usleep(200 * 1000);
  for (int i = 0; i < 5; i++) {
    struct linli_test_resp r;
    int64_t t1 = linli_test_now_ms();
    http_on(g.port, "GET", "/healthz", NULL, NULL, NULL, 0, &r);
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT(linli_test_now_ms() - t1 < 500);
    linli_test_resp_free(&r);
  }
  struct linli_test_resp pr;
  linli_test_read_response(parked, &pr);
  close(parked);
  int64_t took = linli_test_now_ms() - t0;
  CU_ASSERT_EQUAL(pr.status, 503);
  CU_ASSERT(took >= 1500 && took < 6000);
  linli_test_resp_free(&pr);
  /* The database answers again: the pool reconnects by itself. */
  atomic_store(&f.mode, FAKE_RELAY);
  CU_ASSERT_EQUAL(get_until(g.port, "pg-none-2", 404), 404);
  CU_ASSERT(stop_gateway(&g) == 0);
  fake_stop(&f);
}

/* ------------------------------------------------------------ SSE */

static void produce_status(const char *order, const char *app,
                           const char *warehouse, int pad) {
  Linli__OrderStatusEvent ev = LINLI__ORDER_STATUS_EVENT__INIT;
  Linli__OrderStatus st = LINLI__ORDER_STATUS__INIT;
  Linli__Meta meta = LINLI__META__INIT;
  char reason[8192];
  memset(reason, 'r', sizeof reason);
  reason[pad < (int)sizeof reason ? pad : (int)sizeof reason - 1] = '\0';
  meta.event_id = (char *)order;
  meta.producer = "test";
  st.order_id = (char *)order;
  st.app_id = (char *)app;
  st.user_id = "u";
  st.warehouse_id = (char *)warehouse;
  st.state = LINLI__ORDER_STATUS__STATE__PAID;
  st.reason = reason;
  st.version = 1;
  ev.meta = &meta;
  ev.event_case = LINLI__ORDER_STATUS_EVENT__EVENT_ORDER_STATUS;
  ev.order_status = &st;
  size_t len = protobuf_c_message_get_packed_size(&ev.base);
  uint8_t *buf = malloc(len);
  protobuf_c_message_pack(&ev.base, buf);
  CU_ASSERT(linli_test_produce(LINLI_TOPIC_ORDER_STATUS, order, buf, len) == 0);
  free(buf);
}

/* Open a stream; returns the socket (headers sent, not read). */
static int stream_open(int port, const char *token, const char *query,
                       const char *last_id) {
  int fd = linli_test_dial(port);
  if (fd < 0)
    return -1;
  char req[1024], lei[160] = "";
  if (last_id)
    snprintf(lei, sizeof lei, "Last-Event-ID: %s\r\n", last_id);
  int n = snprintf(req, sizeof req,
                   "GET /v1/stream/order-status%s HTTP/1.1\r\nHost: x\r\n"
                   "Authorization: Bearer %s\r\nAccept: text/event-stream\r\n"
                   "%s\r\n",
                   query, token, lei);
  linli_test_write_all(fd, req, (size_t)n);
  return fd;
}

/* Read from fd until needle appears or ms pass; returns a malloc'd copy of
 * everything read (caller frees) and *found. */
static char *stream_until(int fd, const char *needle, int ms, int *found) {
  size_t cap = 65536, len = 0;
  char *buf = malloc(cap);
  buf[0] = '\0';
  *found = 0;
  struct timeval tv = {0, 200000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  int64_t end = linli_test_now_ms() + ms;
  while (linli_test_now_ms() < end) {
    if (len + 4096 > cap) {
      cap *= 2;
      buf = realloc(buf, cap);
    }
    ssize_t n = recv(fd, buf + len, cap - len - 1, 0);
    if (n > 0) {
      len += (size_t)n;
      buf[len] = '\0';
      if (strstr(buf, needle)) {
        *found = 1;
        break;
      }
    } else if (n == 0) {
      break;
    }
  }
  return buf;
}

static void test_sse(void) {
  char oa[96], ob[96], oc[96], wh[96];
  uid("sa", oa, sizeof oa);
  uid("sb", ob, sizeof ob);
  uid("sc", oc, sizeof oc);
  uid("swh", wh, sizeof wh);
  char q[160];
  snprintf(q, sizeof q, "?warehouse=%s", wh);
  int fa = stream_open(main_gw.port, TOK_A, q, NULL);
  int fadm = stream_open(main_gw.port, TOK_ADMIN, q, NULL);
  CU_ASSERT_FATAL(fa >= 0 && fadm >= 0);
  int found;
  char *got = stream_until(fa, "retry: 2000", 5000, &found);
  CU_ASSERT(found);
  CU_ASSERT_PTR_NOT_NULL(strstr(got, "text/event-stream"));
  free(got);
  free(stream_until(fadm, "retry: 2000", 5000, &found));
  produce_status(ob, "shop_b", wh, 10); /* not shop_a's */
  produce_status("other-wh-order", "shop_a", "W-elsewhere", 10);
  produce_status(oa, "shop_a", wh, 10);
  got = stream_until(fa, oa, 15000, &found);
  CU_ASSERT(found);
  CU_ASSERT_PTR_NULL(strstr(got, ob));
  CU_ASSERT_PTR_NULL(strstr(got, "other-wh-order"));
  /* The id of shop_a's event, to resume from. */
  char last[64] = "";
  char *at = strstr(got, oa);
  char *idl = NULL;
  for (char *p = got; p && p < at; p = strstr(p + 1, "id: "))
    if (strncmp(p, "id: ", 4) == 0)
      idl = p;
  if (idl)
    sscanf(idl, "id: %63s", last);
  CU_ASSERT(last[0] != '\0');
  free(got);
  /* The admin sees both apps' events. */
  got = stream_until(fadm, oa, 10000, &found);
  CU_ASSERT(found);
  CU_ASSERT_PTR_NOT_NULL(strstr(got, ob));
  free(got);
  close(fadm);
  close(fa);
  /* Missed while away: replayed after Last-Event-ID. */
  produce_status(oc, "shop_a", wh, 10);
  usleep(1500 * 1000); /* let the gateway read it */
  fa = stream_open(main_gw.port, TOK_A, q, last);
  got = stream_until(fa, oc, 10000, &found);
  CU_ASSERT(found);
  CU_ASSERT_PTR_NULL(strstr(got, "event: reset"));
  free(got);
  close(fa);
  /* An unknown resume point says so. */
  fa = stream_open(main_gw.port, TOK_A, q, "0-999999999999");
  got = stream_until(fa, "event: reset", 5000, &found);
  CU_ASSERT(found);
  free(got);
  close(fa);
  /* Bad filter. */
  struct linli_test_resp r;
  http("GET", "/v1/stream/order-status?warehouse=a%20b", TOK_A, NULL, NULL,
       &r);
  CU_ASSERT_EQUAL(r.status, 400);
  linli_test_resp_free(&r);
}

static void test_sse_slow_client(void) {
  struct gwproc g;
  char *extra[] = {"LINLI_GATEWAY_SSE_MAX_BUFFER_BYTES=65536", NULL};
  CU_ASSERT_FATAL(start_gateway(&g, port_for(3), extra) == 0);
  char wh[96];
  uid("slow", wh, sizeof wh);
  char q[160];
  snprintf(q, sizeof q, "?warehouse=%s", wh);
  /* A tiny receive window and a client that never reads. */
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  int small = 4096;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)g.port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  CU_ASSERT_FATAL(connect(fd, (struct sockaddr *)&a, sizeof a) == 0);
  char req[512];
  int n = snprintf(req, sizeof req,
                   "GET /v1/stream/order-status%s HTTP/1.1\r\nHost: x\r\n"
                   "Authorization: Bearer " TOK_ADMIN "\r\n\r\n", q);
  linli_test_write_all(fd, req, (size_t)n);
  usleep(500 * 1000);
  /* ~8 MB of events for this warehouse: far more than socket buffers and
   * the 64 KiB allowance. */
  for (int i = 0; i < 1000; i++) {
    char o[128];
    snprintf(o, sizeof o, "%s-%d", wh, i);
    produce_status(o, "shop_a", wh, 8000);
  }
  /* The gateway cut the client off and is still serving. */
  int cut = 0;
  for (int i = 0; i < 100 && !cut; i++) {
    struct linli_test_resp r;
    http_on(g.port, "GET", "/metrics", NULL, NULL, NULL, 0, &r);
    char *m = strstr(r.body ? r.body : "", "\nlinli_gateway_sse_cut_total ");
    if (m && atoi(m + strlen("\nlinli_gateway_sse_cut_total ")) >= 1)
      cut = 1;
    linli_test_resp_free(&r);
    if (!cut)
      usleep(100 * 1000);
  }
  CU_ASSERT(cut);
  /* Draining the socket ends in EOF: the connection was closed. */
  struct timeval tv = {5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char buf[65536];
  ssize_t got;
  int64_t end = linli_test_now_ms() + 20000;
  while ((got = recv(fd, buf, sizeof buf, 0)) > 0 &&
         linli_test_now_ms() < end)
    ;
  CU_ASSERT_EQUAL(got, 0);
  close(fd);
  CU_ASSERT(stop_gateway(&g) == 0);
}

/* ------------------------------------------------------------ TLS */

/* HTTPS with a throw-away self-signed certificate (openssl and curl CLIs;
 * the test client here speaks plain HTTP only). */
static void test_tls(void) {
  char cert[128], key[128], cmd[1024];
  snprintf(cert, sizeof cert, "gw-tls-%d.crt", (int)getpid());
  snprintf(key, sizeof key, "gw-tls-%d.key", (int)getpid());
  snprintf(cmd, sizeof cmd,
           "openssl req -x509 -newkey rsa:2048 -nodes -keyout %s -out %s "
           "-days 1 -subj /CN=127.0.0.1 >/dev/null 2>&1", key, cert);
  if (system(cmd) != 0 || system("command -v curl >/dev/null") != 0) {
    fprintf(stderr, "test_tls: openssl or curl missing, skipped\n");
    return;
  }
  char cert_env[200], key_env[200];
  snprintf(cert_env, sizeof cert_env, "LINLI_GATEWAY_TLS_CERT=%s", cert);
  snprintf(key_env, sizeof key_env, "LINLI_GATEWAY_TLS_KEY=%s", key);
  char *extra[] = {cert_env, key_env, NULL};
  struct gwproc g;
  /* start_gateway polls plain /healthz, which a TLS server refuses: start
   * and probe by hand. */
  char bin[512], keys[512], keys_env[600], port_env[64];
  linli_test_binary_path("producers/gateway/linli-gateway", bin, sizeof bin);
  linli_test_source_path("config/gateway-keys.conf", keys, sizeof keys);
  snprintf(keys_env, sizeof keys_env, "LINLI_GATEWAY_KEYS_FILE=%s", keys);
  g.port = port_for(4);
  snprintf(port_env, sizeof port_env, "LINLI_GATEWAY_PORT=%d", g.port);
  char *env[] = {keys_env, port_env, "LINLI_METRICS_PORT=-1",
                 "LINLI_GATEWAY_DEV_KEYS=true", extra[0], extra[1], NULL};
  char *argv[] = {bin, NULL};
  snprintf(g.log, sizeof g.log, "gateway-%d-tls.log", (int)getpid());
  g.pid = linli_test_spawn(argv, env, g.log);
  CU_ASSERT_FATAL(g.pid > 0);
  int ok = 0;
  for (int i = 0; i < 100 && !ok; i++) {
    snprintf(cmd, sizeof cmd,
             "curl -sk --max-time 2 https://127.0.0.1:%d/healthz | "
             "grep -q '\"ok\"'", g.port);
    ok = system(cmd) == 0;
    if (!ok)
      usleep(100 * 1000);
  }
  CU_ASSERT(ok);
  /* An authenticated publish over TLS. */
  char order[96];
  uid("tls", order, sizeof order);
  snprintf(cmd, sizeof cmd,
           "curl -sk --max-time 10 -o /dev/null -w '%%{http_code}' -X POST "
           "https://127.0.0.1:%d/v1/orders -H 'Authorization: Bearer "
           TOK_A "' -H 'Content-Type: application/json' -d '{\"order_id\":"
           "\"%s\",\"user_id\":\"u\",\"warehouse_id\":\"W1\",\"lines\":"
           "[{\"sku_id\":\"S\",\"quantity\":1,\"unit_price_fen\":1}],"
           "\"pickup\":{\"pickup_point_id\":\"P\"}}' | grep -q 202",
           g.port, order);
  CU_ASSERT(system(cmd) == 0);
  /* Plain HTTP gets no answer. */
  struct linli_test_resp r;
  http_on(g.port, "GET", "/healthz", NULL, NULL, NULL, 0, &r);
  CU_ASSERT_NOT_EQUAL(r.status, 200);
  linli_test_resp_free(&r);
  CU_ASSERT(stop_gateway(&g) == 0);
  unlink(cert);
  unlink(key);
}

/* ------------------------------------------------------- OpenAPI */

static void test_routes_match_openapi(void) {
  char bin[512], spec[512], cmd[1200];
  linli_test_binary_path("producers/gateway/linli-gateway", bin, sizeof bin);
  linli_test_source_path("docs/openapi.yaml", spec, sizeof spec);
  snprintf(cmd, sizeof cmd, "'%s' --routes | sort", bin);
  FILE *p = popen(cmd, "r");
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  char server[4096] = "";
  size_t used = 0;
  char line[256];
  while (fgets(line, sizeof line, p) && used + strlen(line) < sizeof server) {
    memcpy(server + used, line, strlen(line) + 1);
    used += strlen(line);
  }
  pclose(p);
  /* paths:\n  /x:\n    get:\n -> "GET /x", the same shape as --routes. */
  FILE *f = fopen(spec, "r");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  char entries[64][160];
  int n = 0, in_paths = 0;
  char cur[128] = "";
  while (fgets(line, sizeof line, f)) {
    line[strcspn(line, "\r\n")] = '\0';
    if (strcmp(line, "paths:") == 0) {
      in_paths = 1;
      continue;
    }
    if (!in_paths)
      continue;
    if (line[0] && line[0] != ' ' && line[0] != '#')
      break; /* next top-level key */
    if (strncmp(line, "  /", 3) == 0 && line[strlen(line) - 1] == ':') {
      snprintf(cur, sizeof cur, "%.*s", (int)strlen(line) - 3, line + 2);
      continue;
    }
    static const char *const methods[] = {"get", "post", "put", "delete",
                                          "patch"};
    for (int i = 0; i < 5; i++) {
      char want[32];
      snprintf(want, sizeof want, "    %s:", methods[i]);
      if (strcmp(line, want) == 0 && n < 64 && cur[0]) {
        char up[8];
        size_t k = 0;
        for (; methods[i][k]; k++)
          up[k] = (char)(methods[i][k] - 32);
        up[k] = '\0';
        snprintf(entries[n++], sizeof entries[0], "%s %s", up, cur);
      }
    }
  }
  fclose(f);
  /* Same set both ways. */
  int server_n = 0;
  for (char *s = server; *s; s = strchr(s, '\n') + 1) {
    char e[160];
    snprintf(e, sizeof e, "%.*s", (int)strcspn(s, "\n"), s);
    server_n++;
    int hit = 0;
    for (int i = 0; i < n; i++)
      hit |= strcmp(entries[i], e) == 0;
    if (!hit)
      fprintf(stderr, "route missing from docs/openapi.yaml: %s\n", e);
    CU_ASSERT(hit);
  }
  for (int i = 0; i < n; i++) {
    char e[170];
    snprintf(e, sizeof e, "%.160s\n", entries[i]);
    if (!strstr(server, e))
      fprintf(stderr, "docs/openapi.yaml has a route the server lacks: %s\n",
              entries[i]);
    CU_ASSERT_PTR_NOT_NULL(strstr(server, e));
  }
  CU_ASSERT_EQUAL(server_n, n);
  CU_ASSERT(n >= 14);
}

/* GET /v1/groupbuys/{id}: progress from the settler's hot state (written
 * here as the settler writes it), owner app 200, another app 404. */
static void test_groupbuy_progress(void) {
  char id[96], tag[112], key[160], dl[32];
  snprintf(id, sizeof id, "%s-gbp", run_id);
  snprintf(tag, sizeof tag, DOM_GB_TAG_FMT, id);
  linli_redis_key(key, sizeof key, tag, "c");
  snprintf(dl, sizeof dl, "%lld", (long long)(linli_clock_now_ms() + 600000));
  linli_redis_t *rd = NULL;
  char err[256];
  CU_ASSERT_EQUAL_FATAL(
      linli_redis_connect_config(linli_test_config(), &rd, err, sizeof err),
      0);
  const char *argv[] = {"HSET", key,     "st",  "OPEN",   "app",  "shop_a",
                        "sku",  "rice",  "wh",  "W1",     "tiers",
                        "5:1200,20:1000,50:900", "n", "17", "cap", "50",
                        "lim",  "3",     "dl",  dl,       "list", "1500",
                        "ann",  "0"};
  redisReply *rep = NULL;
  CU_ASSERT_EQUAL_FATAL(
      linli_redis_command(rd, (int)(sizeof argv / sizeof argv[0]), argv, NULL,
                          &rep),
      0);
  freeReplyObject(rep);
  char path[160], buf[64];
  snprintf(path, sizeof path, "/v1/groupbuys/%s", id);
  struct linli_test_resp r;
  CU_ASSERT_EQUAL(http("GET", path, TOK_A, NULL, NULL, &r), 0);
  CU_ASSERT_EQUAL(r.status, 200);
  CU_ASSERT_STRING_EQUAL(jfield(&r, "participants", buf, sizeof buf), "17");
  CU_ASSERT_STRING_EQUAL(jfield(&r, "needed_for_next_tier", buf, sizeof buf),
                         "3");
  CU_ASSERT_STRING_EQUAL(jfield(&r, "state", buf, sizeof buf), "OPEN");
  CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "\"next_tier\":{"));
  CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "\"unit_price_fen\":1000"));
  long long left = atoll(jfield(&r, "time_left_ms", buf, sizeof buf));
  CU_ASSERT(left > 0 && left <= 600000);
  linli_test_resp_free(&r);
  CU_ASSERT_EQUAL(http("GET", path, TOK_B, NULL, NULL, &r), 0);
  CU_ASSERT_EQUAL(r.status, 404); /* another app's campaign */
  linli_test_resp_free(&r);
  CU_ASSERT_EQUAL(http("GET", path, TOK_ADMIN, NULL, NULL, &r), 0);
  CU_ASSERT_EQUAL(r.status, 200);
  linli_test_resp_free(&r);
  snprintf(path, sizeof path, "/v1/groupbuys/%s-none", id);
  CU_ASSERT_EQUAL(http("GET", path, TOK_A, NULL, NULL, &r), 0);
  CU_ASSERT_EQUAL(r.status, 404);
  linli_test_resp_free(&r);
  const char *del[] = {"DEL", key};
  if (linli_redis_command(rd, 2, del, NULL, &rep) == 0)
    freeReplyObject(rep);
  linli_redis_free(rd);
}

int linli_test_register(void) {
  CU_pSuite s = CU_add_suite("gateway", suite_init, suite_clean);
  if (!s)
    return -1;
  CU_add_test(s, "routes: 404, 405, healthz, metrics", test_routes_and_errors);
  CU_add_test(s, "auth: 401, 403", test_auth);
  CU_add_test(s, "every publish endpoint end to end", test_publish_every_endpoint);
  CU_add_test(s, "validation names every field", test_validation);
  CU_add_test(s, "hostile bodies: 413, UTF-8, nesting", test_hostile_bodies);
  CU_add_test(s, "injection strings rejected or inert", test_injection);
  CU_add_test(s, "idempotent retry and 409", test_idempotency);
  CU_add_test(s, "tenant isolation on writes", test_tenant_isolation_writes);
  CU_add_test(s, "reads from PostgreSQL", test_reads);
  CU_add_test(s, "per-user campaign cap", test_user_cap);
  CU_add_test(s, "campaigns belong to their app", test_campaign_isolation);
  CU_add_test(s, "money overflow is a 400", test_money_overflow);
  CU_add_test(s, "rate limit 429", test_rate_limit);
  CU_add_test(s, "http: JSON refusals, NUL, Content-Length, 415",
              test_http_hardening);
  CU_add_test(s, "connections: deadlines, per-IP, descriptor limit",
              test_connection_limits);
  CU_add_test(s, "development keys refused without gateway.dev_keys",
              test_dev_keys_refused);
  CU_add_test(s, "kafka unreachable: 503, nothing accepted, SIGTERM drains",
              test_kafka_down);
  CU_add_test(s, "redis unreachable: fast 503, still serving", test_redis_down);
  CU_add_test(s, "redis stalled: loop not blocked, 503, recovers",
              test_redis_stalled);
  CU_add_test(s, "postgresql stalled: loop not blocked, 503, recovers",
              test_pg_stalled);
  CU_add_test(s, "sse: filters, tenants, resume", test_sse);
  CU_add_test(s, "sse: slow client cut off", test_sse_slow_client);
  CU_add_test(s, "tls", test_tls);
  CU_add_test(s, "routes agree with docs/openapi.yaml", test_routes_match_openapi);
  CU_add_test(s, "group-buy progress", test_groupbuy_progress);
  return 0;
}
