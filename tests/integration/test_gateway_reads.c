/*
 * test_gateway_reads.c - the gateway's reads of what the router and the
 * settler decided, against the real stack:
 *  - sorting lists end to end: pickup-point and home-delivery items go
 *    through a real linli-router (a wave closed by its injected clock), a
 *    real linli-ledger records its SortingList events, and
 *    GET /v1/warehouses/{id}/waves/{wave}/sorting-list (warehouse key)
 *    answers them grouped by pickup point, adding up to the items line by
 *    line; a redelivered SortingList adds nothing; roles other than
 *    warehouse and admin get 403, an unknown warehouse or wave 404;
 *  - GET /v1/groupbuys/{id}/events: progress, tier, settled and failed
 *    events follow the settler's state in Redis (written here the way the
 *    settler writes it), the stream ends with the campaign, and another
 *    app's or an unknown campaign is 404.
 *
 * Shared topics: every id starts with this run's RUN; the router skips
 * other warehouses (router.skip_unknown_warehouses) and starts at the end
 * of linli.fulfillment.v1 in a group of its own; the ledger's group starts
 * at the current end of every topic (its offsets live in PostgreSQL).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>
#include <libpq-fe.h>
#include <sodium.h>

#include "domain/groupbuy_state.h"
#include "domain/wave.h"
#include "fulfillment.pb-c.h"
#include "linli/clock.h"
#include "linli/error.h"
#include "linli/ids.h"
#include "linli/kafka.h"
#include "linli/redis.h"
#include "domain/schema.h"
#include "domain/topics.h"
#include "linli_test.h"
#include "routes.pb-c.h"

#define T_FULFILLMENT LINLI_TOPIC_FULFILLMENT
#define T_ROUTES LINLI_TOPIC_ROUTES
#define T_DLQ LINLI_TOPIC_DLQ
#define TOK_A "dev-shop-a-token"
#define TOK_B "dev-shop-b-token"
#define TOK_LOG "dev-courier-x-token"
#define TOK_ADMIN "dev-ops-admin-token"
#define TOK_WH "dev-warehouse-token"
#define MINUTE INT64_C(60000)
#define NPP 3
#define NPICK 24 /* pickup-point items, spread over the NPP points */
#define NHOME 2  /* home deliveries: routed, never on a sorting list */

static char RUN[48], WH[72], PP[NPP][72], WAVE[24];
static char ledger_group[96], router_group[96];
static char clock_file[256], ref_file[256];
static int64_t T0, CUT;
static PGconn *db;
static linli_redis_t *redis;
static pid_t gw_pid, ledger_pid, router_pid;
static int gw_port;

struct item {
  char order[96], user[96], pp[72];
  int nlines, sku[3], qty[3], cold;
};
static struct item items[NPICK + NHOME];

/* ---------------------------------------------------------------- HTTP */

static int send_get(int fd, const char *path, const char *token) {
  char req[1024];
  int n = snprintf(req, sizeof req,
                   "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close"
                   "\r\nAuthorization: Bearer %s\r\n\r\n",
                   path, token);
  return send(fd, req, (size_t)n, MSG_NOSIGNAL) == n ? 0 : -1;
}

/* GET path; the whole answer (read until the server closes). */
static int get(const char *path, const char *token,
               struct linli_test_resp *out) {
  memset(out, 0, sizeof *out);
  int fd = linli_test_dial(gw_port);
  if (fd < 0 || send_get(fd, path, token) != 0) {
    if (fd >= 0)
      close(fd);
    return -1;
  }
  int rc = linli_test_read_response(fd, out);
  close(fd);
  return rc;
}

static int get_status(const char *path, const char *token) {
  struct linli_test_resp r;
  int st = get(path, token, &r) == 0 ? r.status : -1;
  free(r.raw);
  return st;
}

/* Read fd until needle is in what was read (appended to *acc), the peer
 * closes, or ms pass. 1 if found. */
static int read_until(int fd, char **acc, size_t *len, const char *needle,
                      int ms) {
  struct timeval tv = {0, 200000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  int64_t end = linli_test_now_ms() + ms;
  for (;;) {
    if (*acc && strstr(*acc, needle))
      return 1;
    if (linli_test_now_ms() >= end)
      return 0;
    char chunk[4096];
    ssize_t n = recv(fd, chunk, sizeof chunk, 0);
    if (n == 0)
      return *acc && strstr(*acc, needle) != NULL;
    if (n < 0)
      continue;
    char *g = realloc(*acc, *len + (size_t)n + 1);
    if (!g)
      return 0;
    memcpy(g + *len, chunk, (size_t)n);
    *len += (size_t)n;
    g[*len] = '\0';
    *acc = g;
  }
}

/* ----------------------------------------------------------- processes */

static int start_gateway(void) {
  char bin[512], keys[512], e_keys[600], e_port[64], log[256];
  for (gw_port = 41000 + (int)(getpid() % 4000); !linli_test_port_free(gw_port);)
    gw_port++;
  linli_test_binary_path("producers/gateway/linli-gateway", bin, sizeof bin);
  linli_test_source_path("config/gateway-keys.conf", keys, sizeof keys);
  snprintf(e_keys, sizeof e_keys, "LINLI_GATEWAY_KEYS_FILE=%s", keys);
  snprintf(e_port, sizeof e_port, "LINLI_GATEWAY_PORT=%d", gw_port);
  snprintf(log, sizeof log, "/tmp/%s-gateway.log", RUN);
  char *env[] = {e_keys, e_port, (char *)"LINLI_METRICS_PORT=-1",
                 (char *)"LINLI_GATEWAY_DEV_KEYS=true", NULL};
  char *argv[] = {bin, NULL};
  gw_pid = linli_test_spawn_tied(argv, env, log);
  if (gw_pid <= 0)
    return -1;
  int64_t end = linli_test_now_ms() + 20000;
  while (linli_test_now_ms() < end) {
    struct linli_test_resp r;
    int ok = get("/healthz", TOK_A, &r) == 0 && r.status == 200;
    free(r.raw);
    if (ok)
      return 0;
    usleep(100 * 1000);
  }
  fprintf(stderr, "gateway did not come up: see %s\n", log);
  return -1;
}


static pid_t spawn_ledger(void) {
  char inst[160], log[256];
  snprintf(inst, sizeof inst, "%s-l", RUN);
  snprintf(log, sizeof log, "/tmp/%s-ledger.log", RUN);
  return linli_test_spawn_ledger(ledger_group, inst, log,
                                 "LINLI_RUNNER_FLUSH_INTERVAL_MS=50");
}

static pid_t spawn_router(void) {
  char path[512], e_group[160], e_inst[160], e_clock[320], e_ref[320],
      log[256];
  linli_test_binary_path("consumers/router/linli-router", path, sizeof path);
  snprintf(e_group, sizeof e_group, "LINLI_RUNNER_GROUP=%s", router_group);
  snprintf(e_inst, sizeof e_inst, "LINLI_RUNNER_INSTANCE_ID=%s-r", RUN);
  snprintf(e_clock, sizeof e_clock, "LINLI_FAKE_CLOCK_FILE=%s", clock_file);
  snprintf(e_ref, sizeof e_ref, "LINLI_ROUTER_REFERENCE_FILE=%s", ref_file);
  snprintf(log, sizeof log, "/tmp/%s-router.log", RUN);
  char *env[] = {e_group,
                 e_inst,
                 e_clock,
                 e_ref,
                 (char *)"LINLI_METRICS_PORT=0",
                 (char *)"LINLI_RUNNER_FLUSH_INTERVAL_MS=50",
                 (char *)"LINLI_RUNNER_TICK_INTERVAL_MS=200",
                 (char *)"LINLI_ROUTER_CLOSE_RETRY_MS=2000",
                 (char *)"LINLI_ROUTER_SKIP_UNKNOWN_WAREHOUSES=true",
                 NULL};
  char *argv[] = {path, NULL};
  return linli_test_spawn_tied(argv, env, log);
}

static int stopped_ok(pid_t *pid, const char *what) {
  if (*pid <= 0)
    return 1;
  int st = linli_test_stop(*pid, 0);
  *pid = 0;
  int ok = st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0;
  if (!ok)
    fprintf(stderr, "\n  %s exited with status %d: see /tmp/%s-*.log\n", what,
            st, RUN);
  return ok;
}

/* ------------------------------------------------------------ fixture */

static int write_clock(int64_t ms) {
  char tmp[300];
  snprintf(tmp, sizeof tmp, "%s.tmp", clock_file);
  FILE *f = fopen(tmp, "w");
  if (!f)
    return -1;
  fprintf(f, "%lld\n", (long long)ms);
  if (fclose(f) != 0)
    return -1;
  return rename(tmp, clock_file);
}

static int write_reference(void) {
  FILE *f = fopen(ref_file, "w");
  if (!f)
    return -1;
  int64_t m = (CUT % (24 * 60 * MINUTE)) / MINUTE;
  fprintf(f, "warehouse %s lat=30.250000 lng=120.150000 cutoffs=%02d:%02d "
             "depart=07:00 utc_offset_min=0 express_every_min=0\n",
          WH, (int)(m / 60), (int)(m % 60));
  fprintf(f, "vehicle %s-van warehouse=%s kg=2000 items=600 "
             "refrigerated=no shift_min=1440\n", WH, WH);
  fprintf(f, "vehicle %s-cold warehouse=%s kg=2000 items=600 "
             "refrigerated=yes shift_min=1440\n", WH, WH);
  for (int p = 0; p < NPP; p++)
    fprintf(f, "pickup %s community=%s-c%d lat=30.%06d lng=120.%06d "
               "hours=00:00-24:00 capacity=1000\n",
            PP[p], RUN, p, 240000 + 5000 * p, 140000 + 7000 * p);
  return fclose(f);
}

static int suite_init(void) {
  if (sodium_init() < 0)
    return -1;
  linli_test_unique("gwr", RUN, sizeof RUN);
  snprintf(WH, sizeof WH, "%s-W", RUN);
  for (int p = 0; p < NPP; p++)
    snprintf(PP[p], sizeof PP[p], "%s-PP%d", RUN, p);
  snprintf(ledger_group, sizeof ledger_group, "%s-lg", RUN);
  snprintf(router_group, sizeof router_group, "%s-rg", RUN);
  snprintf(clock_file, sizeof clock_file, "/tmp/%s-clock", RUN);
  snprintf(ref_file, sizeof ref_file, "/tmp/%s-ref.conf", RUN);
  const linli_config_t *cfg = linli_test_config();
  char err[256];
  if (!cfg || linli_test_ensure_topic(T_FULFILLMENT, 6, NULL) ||
      linli_test_ensure_topic(T_ROUTES, 6, NULL) ||
      linli_redis_connect_config(cfg, &redis, err, sizeof err) != LINLI_OK)
    return -1;
  db = PQconnectdb(linli_config_str(cfg, "pg.conninfo"));
  if (PQstatus(db) != CONNECTION_OK) {
    fprintf(stderr, "postgres: %s", PQerrorMessage(db));
    return -1;
  }
  /* One daily cutoff 10 minutes ahead (UTC); the fake clock starts now. */
  T0 = linli_clock_now_ms();
  CUT = (T0 / MINUTE + 10) * MINUTE;
  struct dom_ref_warehouse w = {.utc_offset_min = 0};
  dom_wave_id(&w, DOM_WAVE_DAILY, CUT, WAVE, sizeof WAVE);
  const char *const inputs[] = {T_FULFILLMENT, NULL};
  if (write_clock(T0) || write_reference() ||
      linli_test_group_start_at_end(router_group, inputs) ||
      linli_test_ledger_start_at_end(ledger_group) || start_gateway())
    return -1;
  return 0;
}

static int suite_cleanup(void) {
  int ok = stopped_ok(&gw_pid, "gateway");
  ok &= stopped_ok(&router_pid, "router");
  ok &= stopped_ok(&ledger_pid, "ledger");
  if (db) {
    const char *p[] = {ledger_group};
    PQclear(PQexecParams(db,
                         "DELETE FROM consumer_offsets WHERE consumer_group "
                         "= $1",
                         1, NULL, p, NULL, NULL, 0));
  }
  /* This run's warehouse leaves the router clock's index. */
  for (int p = 0; redis && p < 64; p++) {
    char key[48];
    snprintf(key, sizeof key, DOM_WAVE_KEY_INDEX "%d", p);
    const char *argv[] = {"SREM", key, WH};
    redisReply *r = NULL;
    if (linli_redis_command(redis, 3, argv, NULL, &r) == LINLI_OK)
      freeReplyObject(r);
  }
  PQfinish(db);
  linli_redis_free(redis);
  unlink(clock_file);
  unlink(ref_file);
  return ok ? 0 : -1;
}

/* ------------------------------------------------------- sorting lists */

static long q_long(const char *sql, int n, const char *const *p) {
  PGresult *r = PQexecParams(db, sql, n, NULL, p, NULL, NULL, 0);
  long v = -1;
  if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
      !PQgetisnull(r, 0, 0))
    v = atol(PQgetvalue(r, 0, 0));
  PQclear(r);
  return v;
}

static long lines_recorded(void) {
  const char *p[] = {WH, WAVE};
  return q_long("SELECT count(*) FROM sorting_list_lines WHERE "
                "warehouse_id = $1 AND wave_id = $2",
                2, p);
}

static long lists_recorded(void) {
  const char *p[] = {WH, WAVE};
  return q_long("SELECT count(*) FROM sorting_lists WHERE warehouse_id = $1 "
                "AND wave_id = $2",
                2, p);
}

/* The WaveClosed is recorded (its cutoff is in the answer). */
static long wave_closed(void) {
  const char *p[] = {WH, WAVE};
  return q_long("SELECT count(*) FROM waves WHERE warehouse_id = $1 AND "
                "wave_id = $2 AND cutoff_at IS NOT NULL",
                2, p);
}

static int produce_items(void) {
  uint64_t r = 0x9e3779b97f4a7c15ULL ^ (uint64_t)getpid();
  size_t n = NPICK + NHOME;
  uint8_t *bufs[NPICK + NHOME];
  size_t lens[NPICK + NHOME];
  const char *keys[NPICK + NHOME];
  for (size_t i = 0; i < n; i++) {
    struct item *it = &items[i];
    r = r * 6364136223846793005ULL + 1442695040888963407ULL;
    int home = i >= NPICK;
    snprintf(it->order, sizeof it->order, "%s-o%02zu", RUN, i);
    snprintf(it->user, sizeof it->user, "%s-u%zu", RUN, i % 5);
    snprintf(it->pp, sizeof it->pp, "%s", home ? "" : PP[i % NPP]);
    it->cold = ((r >> 20) % 4) == 0;
    it->nlines = 1 + (int)((r >> 25) % 3);
    Linli__OrderLine ol[3], *olp[3];
    char skus[3][32];
    for (int l = 0; l < it->nlines; l++) {
      it->sku[l] = 3 * l + (int)((r >> (10 + 3 * l)) % 3); /* distinct */
      it->qty[l] = 1 + (int)((r >> (5 + l)) % 4);
      linli__order_line__init(&ol[l]);
      snprintf(skus[l], sizeof skus[l], "sku-%d", it->sku[l]);
      ol[l].sku_id = skus[l];
      ol[l].quantity = it->qty[l];
      ol[l].unit_price_fen = 100;
      olp[l] = &ol[l];
    }
    Linli__FulfillmentEvent ev = LINLI__FULFILLMENT_EVENT__INIT;
    Linli__FulfillmentItem fi = LINLI__FULFILLMENT_ITEM__INIT;
    Linli__PickupDelivery pd = LINLI__PICKUP_DELIVERY__INIT;
    Linli__HomeDelivery hd = LINLI__HOME_DELIVERY__INIT;
    fi.order_id = it->order;
    fi.warehouse_id = WH;
    fi.user_id = it->user;
    fi.n_lines = (size_t)it->nlines;
    fi.lines = olp;
    fi.storage_class = it->cold ? LINLI__STORAGE_CLASS__CHILLED
                                : LINLI__STORAGE_CLASS__AMBIENT;
    fi.weight_g = 1000;
    if (home) {
      hd.lat_e6 = 30260000 + (int)i * 1000;
      hd.lng_e6 = 120160000 + (int)i * 1000;
      fi.delivery_case = LINLI__FULFILLMENT_ITEM__DELIVERY_HOME;
      fi.home = &hd;
    } else {
      pd.pickup_point_id = it->pp;
      fi.delivery_case = LINLI__FULFILLMENT_ITEM__DELIVERY_PICKUP;
      fi.pickup = &pd;
    }
    Linli__Meta meta = LINLI__META__INIT;
    char eid[LINLI_ID_BUFSZ];
    linli_id_new(eid, sizeof eid);
    meta.event_id = eid;
    meta.occurred_at_ms = T0;
    meta.producer = (char *)"test_gateway_reads";
    meta.schema_version = 1;
    ev.meta = &meta;
    ev.event_case = LINLI__FULFILLMENT_EVENT__EVENT_FULFILLMENT_ITEM;
    ev.fulfillment_item = &fi;
    lens[i] = linli__fulfillment_event__get_packed_size(&ev);
    bufs[i] = malloc(lens[i]);
    if (!bufs[i])
      return -1;
    linli__fulfillment_event__pack(&ev, bufs[i]);
    keys[i] = WH;
  }
  int rc = linli_test_produce_batch(T_FULFILLMENT, n, keys,
                                    (const void *const *)bufs, lens);
  for (size_t i = 0; i < n; i++)
    free(bufs[i]);
  return rc;
}

/* One SortingList the router wrote for this run (its bytes and key). */
struct captured {
  uint8_t *bytes;
  size_t len;
  int lists;
};

static void capture(void *arg, const rd_kafka_message_t *m) {
  struct captured *c = arg;
  Linli__RouteEvent *ev = linli__route_event__unpack(NULL, m->len, m->payload);
  if (!ev)
    return;
  if (ev->event_case == LINLI__ROUTE_EVENT__EVENT_SORTING_LIST &&
      strcmp(ev->sorting_list->warehouse_id, WH) == 0) {
    c->lists++;
    if (!c->bytes && (c->bytes = malloc(m->len)) != NULL) {
      memcpy(c->bytes, m->payload, m->len);
      c->len = m->len;
    }
  }
  linli__route_event__free_unpacked(ev, NULL);
}

static int have_all_lists(void *arg) {
  return ((struct captured *)arg)->lists >= NPP;
}

/* The ledger's DLQ record for a bad SortingList of this run. */
struct dlq_seen {
  char offset[32], reason[600];
};

static void dlq_capture(void *arg, const rd_kafka_message_t *m) {
  struct dlq_seen *d = arg;
  char consumer[64], key[96] = "";
  size_t kl = m->key_len < sizeof key - 1 ? m->key_len : sizeof key - 1;
  if (m->key)
    memcpy(key, m->key, kl);
  key[kl] = '\0';
  linli_test_header(m, LINLI_DLQ_H_CONSUMER, consumer, sizeof consumer);
  if (strcmp(key, WH) != 0 || strcmp(consumer, "ledger") != 0)
    return;
  linli_test_header(m, LINLI_DLQ_H_OFFSET, d->offset, sizeof d->offset);
  linli_test_header(m, LINLI_DLQ_H_REASON, d->reason, sizeof d->reason);
}

static int have_dlq(void *arg) {
  return ((struct dlq_seen *)arg)->reason[0] != '\0';
}

/* A SortingList with a line of quantity 0 (otherwise valid): its offset. */
static int64_t produce_bad_list(void) {
  Linli__SortingList__Line l = LINLI__SORTING_LIST__LINE__INIT, *lp = &l;
  Linli__SortingList sl = LINLI__SORTING_LIST__INIT;
  Linli__RouteEvent ev = LINLI__ROUTE_EVENT__INIT;
  Linli__Meta meta = LINLI__META__INIT;
  char eid[LINLI_ID_BUFSZ], pp[96], order[96];
  linli_id_new(eid, sizeof eid);
  snprintf(pp, sizeof pp, "%s-PPX", RUN);
  snprintf(order, sizeof order, "%s-ox", RUN);
  l.order_id = order;
  l.sku_id = (char *)"sku-0";
  l.quantity = 0;
  l.storage_class = LINLI__STORAGE_CLASS__AMBIENT;
  sl.warehouse_id = WH;
  sl.wave_id = WAVE;
  sl.pickup_point_id = pp;
  sl.route_id = (char *)"r-x";
  sl.n_lines = 1;
  sl.lines = &lp;
  meta.event_id = eid;
  meta.occurred_at_ms = T0;
  meta.producer = (char *)"test_gateway_reads";
  meta.schema_version = 1;
  ev.meta = &meta;
  ev.event_case = LINLI__ROUTE_EVENT__EVENT_SORTING_LIST;
  ev.sorting_list = &sl;
  size_t n = linli__route_event__get_packed_size(&ev);
  uint8_t *buf = malloc(n);
  if (!buf)
    return -1;
  linli__route_event__pack(&ev, buf);
  int64_t off = -1;
  int rc = linli_test_produce_at(T_ROUTES, WH, buf, n, NULL, &off);
  free(buf);
  return rc == 0 ? off : -1;
}

/* Is the JSON line (order, sku, quantity, class) one of the items'? Marks
 * it used; 0 if it is not, or was already used. */
static int take_line(int used[][3], const char *pp, const char *order,
                     const char *user, const char *sku, long long qty,
                     const char *cls) {
  for (size_t i = 0; i < NPICK; i++) {
    const struct item *it = &items[i];
    if (strcmp(it->order, order) != 0)
      continue;
    if (strcmp(it->pp, pp) != 0 || strcmp(it->user, user) != 0 ||
        strcmp(cls, it->cold ? "CHILLED" : "AMBIENT") != 0)
      return 0;
    for (int l = 0; l < it->nlines; l++) {
      char s[32];
      snprintf(s, sizeof s, "sku-%d", it->sku[l]);
      if (strcmp(s, sku) == 0 && it->qty[l] == qty && !used[i][l]) {
        used[i][l] = 1;
        return 1;
      }
    }
    return 0;
  }
  return 0;
}

static void check_body(const struct linli_test_resp *r) {
  json_error_t e;
  json_t *j = json_loadb(r->body, r->len, 0, &e);
  CU_ASSERT_PTR_NOT_NULL_FATAL(j);
  int used[NPICK][3];
  memset(used, 0, sizeof used);
  long long want_units = 0, want_lines = 0;
  for (size_t i = 0; i < NPICK; i++)
    for (int l = 0; l < items[i].nlines; l++) {
      want_units += items[i].qty[l];
      want_lines++;
    }
  CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "warehouse_id")),
                         WH);
  CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "wave_id")),
                         WAVE);
  CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "cutoff_ms")), CUT);
  CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "lines")),
                  want_lines);
  CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "units")),
                  want_units);
  json_t *pps = json_object_get(j, "pickup_points");
  CU_ASSERT_EQUAL(json_array_size(pps), NPP);
  int bad = 0;
  long long units = 0;
  for (size_t p = 0; p < json_array_size(pps); p++) {
    json_t *pp = json_array_get(pps, p);
    const char *id = json_string_value(json_object_get(pp, "pickup_point_id"));
    CU_ASSERT_PTR_NOT_NULL_FATAL(id);
    /* Sorted by pickup point, each with its community and route. */
    CU_ASSERT_STRING_EQUAL(id, PP[p]);
    char community[96];
    snprintf(community, sizeof community, "%s-c%zu", RUN, p);
    CU_ASSERT_STRING_EQUAL(
        json_string_value(json_object_get(pp, "community")), community);
    CU_ASSERT_PTR_NOT_NULL(json_string_value(json_object_get(pp, "route_id")));
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(pp, "orders")),
                    NPICK / NPP);
    json_t *lines = json_object_get(pp, "lines");
    long long pp_units = 0;
    for (size_t k = 0; k < json_array_size(lines); k++) {
      json_t *l = json_array_get(lines, k);
      const char *order = json_string_value(json_object_get(l, "order_id"));
      const char *user = json_string_value(json_object_get(l, "user_id"));
      const char *sku = json_string_value(json_object_get(l, "sku_id"));
      const char *cls = json_string_value(json_object_get(l, "storage_class"));
      long long q = json_integer_value(json_object_get(l, "quantity"));
      pp_units += q;
      bad += !order || !user || !sku || !cls ||
             !take_line(used, id, order, user, sku, q, cls);
    }
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(pp, "units")),
                    pp_units);
    units += pp_units;
  }
  /* Every line of every pickup item exactly once, and nothing else. */
  int missing = 0;
  for (size_t i = 0; i < NPICK; i++)
    for (int l = 0; l < items[i].nlines; l++)
      missing += !used[i][l];
  CU_ASSERT_EQUAL(bad, 0);
  CU_ASSERT_EQUAL(missing, 0);
  CU_ASSERT_EQUAL(units, want_units);
  if (bad || missing)
    fprintf(stderr, "\n  sorting list: %d unexpected, %d missing lines\n%s\n",
            bad, missing, r->body);
  /* Home deliveries are routed, never on a sorting list. */
  for (size_t i = NPICK; i < NPICK + NHOME; i++)
    CU_ASSERT_PTR_NULL(strstr(r->body, items[i].order));
  json_decref(j);
}

static void test_sorting_list(void) {
  const char *outs[] = {T_ROUTES, NULL};
  linli_test_reader_t *reader = linli_test_reader_new(outs, 1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(reader);
  ledger_pid = spawn_ledger();
  router_pid = spawn_router();
  CU_ASSERT_FATAL(ledger_pid > 0 && router_pid > 0);
  CU_ASSERT_EQUAL_FATAL(produce_items(), 0);
  /* The router's clock passes the cutoff: WaveClosed, then the wave's
   * routes and one sorting list per pickup point. */
  CU_ASSERT_EQUAL_FATAL(write_clock(CUT + 1000), 0);
  struct captured cap = {0};
  linli_test_reader_poll(reader, 120000, capture, &cap, have_all_lists);
  CU_ASSERT_EQUAL(cap.lists, NPP);
  CU_ASSERT_PTR_NOT_NULL_FATAL(cap.bytes);

  /* Wait for exactly what the GET depends on: the ledger's lines. */
  long want = 0;
  for (size_t i = 0; i < NPICK; i++)
    want += items[i].nlines;
  int64_t end = linli_test_now_ms() + 120000;
  while ((lines_recorded() < want || wave_closed() != 1) &&
         linli_test_now_ms() < end)
    usleep(100 * 1000);
  CU_ASSERT_EQUAL_FATAL(lines_recorded(), want);
  CU_ASSERT_EQUAL_FATAL(wave_closed(), 1);
  CU_ASSERT_EQUAL(lists_recorded(), NPP);

  char path[256];
  snprintf(path, sizeof path, "/v1/warehouses/%s/waves/%s/sorting-list", WH,
           WAVE);
  struct linli_test_resp r;
  CU_ASSERT_EQUAL_FATAL(get(path, TOK_WH, &r), 0);
  CU_ASSERT_EQUAL(r.status, 200);
  if (r.status == 200)
    check_body(&r);
  free(r.raw);

  /* A redelivered SortingList (the same record again) adds nothing: wait
   * until the ledger's offset passed it, then count again. */
  int32_t part = -1;
  int64_t off = -1;
  CU_ASSERT_EQUAL_FATAL(linli_test_produce_at(T_ROUTES, WH, cap.bytes,
                                              cap.len, &part, &off),
                        0);
  free(cap.bytes);
  char ps[16], os[32];
  snprintf(ps, sizeof ps, "%d", (int)part);
  snprintf(os, sizeof os, "%lld", (long long)off);
  const char *op[] = {ledger_group, T_ROUTES, ps, os};
  end = linli_test_now_ms() + 60000;
  while (q_long("SELECT count(*) FROM consumer_offsets WHERE consumer_group "
                "= $1 AND topic = $2 AND partition = $3 AND next_offset > "
                "$4::bigint",
                4, op) != 1 &&
         linli_test_now_ms() < end)
    usleep(100 * 1000);
  CU_ASSERT_EQUAL(q_long("SELECT count(*) FROM consumer_offsets WHERE "
                         "consumer_group = $1 AND topic = $2 AND partition = "
                         "$3 AND next_offset > $4::bigint",
                         4, op),
                  1);
  CU_ASSERT_EQUAL(lines_recorded(), want);
  CU_ASSERT_EQUAL(lists_recorded(), NPP);

  /* A bad list goes to the DLQ with its reason and source offset, and
   * nothing of it into the record. */
  const char *dlqs[] = {T_DLQ, NULL};
  linli_test_reader_t *dr = linli_test_reader_new(dlqs, 1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(dr);
  int64_t bad_off = produce_bad_list();
  CU_ASSERT_FATAL(bad_off >= 0);
  struct dlq_seen d = {"", ""};
  linli_test_reader_poll(dr, 60000, dlq_capture, &d, have_dlq);
  linli_test_reader_free(dr);
  CU_ASSERT_PTR_NOT_NULL(
      strstr(d.reason, "sorting_list.lines[0].quantity: must be positive"));
  CU_ASSERT_EQUAL(atoll(d.offset), bad_off);
  CU_ASSERT_EQUAL(lists_recorded(), NPP);
  CU_ASSERT_EQUAL(lines_recorded(), want);

  /* Admins read it too; other roles may not; unknown is 404. */
  CU_ASSERT_EQUAL(get_status(path, TOK_ADMIN), 200);
  CU_ASSERT_EQUAL(get_status(path, TOK_A), 403);
  CU_ASSERT_EQUAL(get_status(path, TOK_LOG), 403);
  snprintf(path, sizeof path, "/v1/warehouses/%s/waves/d20000101-2200/"
           "sorting-list", WH);
  CU_ASSERT_EQUAL(get_status(path, TOK_WH), 404);
  snprintf(path, sizeof path, "/v1/warehouses/%s-none/waves/%s/sorting-list",
           WH, WAVE);
  CU_ASSERT_EQUAL(get_status(path, TOK_WH), 404);
  CU_ASSERT_EQUAL(get_status("/v1/warehouses/W1/waves/bad.id/sorting-list",
                             TOK_WH), 404);
  /* The warehouse key reads sorting lists only. */
  CU_ASSERT_EQUAL(get_status("/v1/orders/x", TOK_WH), 403);
  linli_test_reader_free(reader);
  CU_ASSERT(stopped_ok(&router_pid, "router"));
  CU_ASSERT(stopped_ok(&ledger_pid, "ledger"));
}

/* ------------------------------------------------------ group-buy SSE */

static int hset(const char *key, int n, const char *const *fv) {
  const char *argv[32] = {"HSET", key};
  for (int i = 0; i < n && i < 30; i++)
    argv[2 + i] = fv[i];
  redisReply *rep = NULL;
  int rc = linli_redis_command(redis, 2 + n, argv, NULL, &rep);
  if (rep)
    freeReplyObject(rep);
  return rc;
}

static void del(const char *key) {
  const char *argv[] = {"DEL", key};
  redisReply *rep = NULL;
  if (linli_redis_command(redis, 2, argv, NULL, &rep) == LINLI_OK)
    freeReplyObject(rep);
}

/* A campaign as the settler keeps it: tiers 3 and 5, n participants. */
static void open_campaign(const char *key, const char *n) {
  char dl[32];
  snprintf(dl, sizeof dl, "%lld", (long long)(linli_clock_now_ms() + 600000));
  const char *fv[] = {"st",  "OPEN", "app",  "shop_a",        "sku",
                      "rice", "wh",  "W1",   "tiers", "3:900,5:800",
                      "n",   n,      "cap",  "50",   "lim",
                      "2",   "dl",   dl,     "list", "1000",
                      "ann", "-1"};
  CU_ASSERT_EQUAL_FATAL(hset(key, 22, fv), 0);
}

static int stream_open(const char *id, const char *token) {
  char path[160];
  snprintf(path, sizeof path, "/v1/groupbuys/%s/events", id);
  int fd = linli_test_dial(gw_port);
  if (fd >= 0 && send_get(fd, path, token) != 0) {
    close(fd);
    fd = -1;
  }
  return fd;
}

static void test_groupbuy_events(void) {
  char id[96], key[160], path[160];
  snprintf(id, sizeof id, "%s-gb", RUN);
  snprintf(key, sizeof key, DOM_GB_KEY_CAMPAIGN_FMT, id);
  open_campaign(key, "1");
  int fd = stream_open(id, TOK_A);
  CU_ASSERT_FATAL(fd >= 0);
  char *acc = NULL;
  size_t len = 0;
  /* The current state first. */
  CU_ASSERT(read_until(fd, &acc, &len, "\"participants\":1,", 10000));
  CU_ASSERT_PTR_NOT_NULL(strstr(acc, "text/event-stream"));
  CU_ASSERT_PTR_NOT_NULL(strstr(acc, "event: progress\ndata: {"));
  CU_ASSERT_PTR_NOT_NULL(strstr(acc, "\"needed_for_next_tier\":2"));
  /* A join counted: progress; the first tier reached: tier. */
  const char *two[] = {"n", "2"};
  CU_ASSERT_EQUAL_FATAL(hset(key, 2, two), 0);
  CU_ASSERT(read_until(fd, &acc, &len, "\"participants\":2,", 10000));
  CU_ASSERT_PTR_NULL(strstr(acc, "event: tier"));
  const char *three[] = {"n", "3"};
  CU_ASSERT_EQUAL_FATAL(hset(key, 2, three), 0);
  CU_ASSERT(read_until(fd, &acc, &len, "event: tier\n", 10000));
  CU_ASSERT_PTR_NOT_NULL(strstr(acc, "\"current_tier\":{\"index\":0"));
  /* Settled at the first tier: the last event, then the stream ends. */
  const char *settled[] = {"st", "SETTLED", "tier", "0"};
  CU_ASSERT_EQUAL_FATAL(hset(key, 4, settled), 0);
  CU_ASSERT(read_until(fd, &acc, &len, "event: settled\n", 10000));
  CU_ASSERT(read_until(fd, &acc, &len, "\r\n0\r\n\r\n", 10000));
  CU_ASSERT_PTR_NOT_NULL(strstr(acc, "\"state\":\"SETTLED\""));
  free(acc);
  close(fd);

  /* A campaign that fails. */
  char id2[96], key2[160];
  snprintf(id2, sizeof id2, "%s-gbf", RUN);
  snprintf(key2, sizeof key2, DOM_GB_KEY_CAMPAIGN_FMT, id2);
  open_campaign(key2, "2");
  fd = stream_open(id2, TOK_ADMIN); /* admins follow any campaign */
  CU_ASSERT_FATAL(fd >= 0);
  acc = NULL;
  len = 0;
  CU_ASSERT(read_until(fd, &acc, &len, "\"participants\":2,", 10000));
  const char *failed[] = {"st", "FAILED", "tier", "-1"};
  CU_ASSERT_EQUAL_FATAL(hset(key2, 4, failed), 0);
  CU_ASSERT(read_until(fd, &acc, &len, "event: failed\n", 10000));
  CU_ASSERT(read_until(fd, &acc, &len, "\r\n0\r\n\r\n", 10000));
  free(acc);
  close(fd);

  /* Tenants: another app's campaign and an unknown one look the same. */
  snprintf(path, sizeof path, "/v1/groupbuys/%s/events", id);
  CU_ASSERT_EQUAL(get_status(path, TOK_B), 404);
  CU_ASSERT_EQUAL(get_status(path, TOK_LOG), 403);
  CU_ASSERT_EQUAL(get_status(path, TOK_WH), 403);
  snprintf(path, sizeof path, "/v1/groupbuys/%s-none/events", id);
  CU_ASSERT_EQUAL(get_status(path, TOK_A), 404);

  /* A client that hangs up mid-stream is forgotten (the gateway exits 0
   * at the end: nothing leaked under ASan). */
  open_campaign(key, "1");
  fd = stream_open(id, TOK_A);
  acc = NULL;
  len = 0;
  CU_ASSERT(read_until(fd, &acc, &len, "event: progress", 10000));
  free(acc);
  close(fd);
  del(key);
  del(key2);
}

int linli_test_register(void) {
  CU_pSuite s = CU_add_suite("gateway_reads", suite_init, suite_cleanup);
  if (!s)
    return -1;
  CU_add_test(s, "sorting list: router -> ledger -> gateway",
              test_sorting_list);
  CU_add_test(s, "group-buy events stream", test_groupbuy_events);
  return 0;
}
