/*
 * test_ledger_pgstop.c - linli-ledger through a PostgreSQL outage: the
 * database is stopped for 10 s in the middle of an ingest, while events go
 * on arriving; the same ledger process waits, retries, and in the end has
 * recorded every event exactly once.
 *
 * The outage must not touch the shared dev server, so the test runs a
 * private PostgreSQL 15 of its own: initdb into /tmp/linli-pgstop-<pid>
 * (trust auth, 127.0.0.1 only, a free port below 32768, its Unix socket in
 * that directory), run as the postgres user when the test runs as root
 * (PostgreSQL refuses root), as scripts/stack.sh does. The ledger reads
 * topics of its own (ledger.topic_suffix, created from config/topics.conf
 * and deleted at the end), as in test_ledger.c.
 *
 * Everything is stopped at the end, also when a test fails: the ledger,
 * the private server (no process left whose working directory is in the
 * temporary directory), the directory itself, the topics.
 */
#define _XOPEN_SOURCE 700 /* nftw */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <sodium.h>

#include "inventory.pb-c.h"
#include "linli/error.h"
#include "linli/ids.h"
#include "linli/kafka.h"
#include "domain/schema.h"
#include "linli_test.h"
#include "orders.pb-c.h"
#include "reservations.pb-c.h"

#define PG_BIN "/usr/lib/postgresql/15/bin"
#define OUTAGE_MS 10000
#define T 60000 /* ms to wait for the ledger */

/* ------------------------------------------------------- the private PG */

static char pg_dir[96];     /* /tmp/linli-pgstop-<pid> */
static char pg_data[128];   /* its data directory */
static char pg_sock[128];   /* its Unix socket directory */
static char pg_log[128];    /* the server's log */
static char tool_log[160];  /* initdb, pg_ctl, migrate, ledger output */
static int pg_port;
static char conninfo[256];  /* as linli, to db linli */
static int cleaned_up;

/* Run a PostgreSQL binary (args[0], an absolute path) as its owner, from /
 * (the postgres user may not read the test's working directory); wait up
 * to timeout_ms. Exit status, or -1. */
static int pg_as(const char *const *args, int timeout_ms) {
  const char *argv[24];
  int n = 0;
  if (geteuid() == 0) {
    argv[n++] = "/usr/sbin/runuser";
    argv[n++] = "-u";
    argv[n++] = "postgres";
    argv[n++] = "--";
  }
  for (int i = 0; args[i] != NULL && n < 23; i++)
    argv[n++] = args[i];
  argv[n] = NULL;
  pid_t pid = fork();
  if (pid < 0)
    return -1;
  if (pid == 0) {
    if (chdir("/") != 0)
      _exit(127);
    int fd = open(tool_log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
      close(fd);
    }
    execv(argv[0], (char *const *)argv);
    _exit(127);
  }
  int status = 0;
  int64_t deadline = linli_test_now_ms() + timeout_ms;
  for (;;) {
    pid_t w = waitpid(pid, &status, WNOHANG);
    if (w == pid)
      return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    if (linli_test_now_ms() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return -1;
    }
    usleep(20000);
  }
}

/* A port on 127.0.0.1, below 32768 (under the kernel's ephemeral range),
 * that nothing listens on right now. */
static int free_port(void) {
  for (int attempt = 0; attempt < 200; attempt++) {
    int port = 20000 + (int)(randombytes_uniform(12000));
    if (linli_test_port_free(port))
      return port;
  }
  return -1;
}

static int pg_ctl_start(void) {
  char opts[400];
  snprintf(opts, sizeof opts,
           "-p %d -c listen_addresses=127.0.0.1 -c unix_socket_directories=%s "
           "-c max_connections=40",
           pg_port, pg_sock);
  const char *args[] = {PG_BIN "/pg_ctl", "start", "-D", pg_data, "-l",
                        pg_log,          "-w",    "-t", "60",    "-o",
                        opts,            NULL};
  return pg_as(args, 90000);
}

static int pg_ctl_stop_at(const char *data, const char *mode) {
  const char *args[] = {PG_BIN "/pg_ctl", "stop", "-D", data, "-m",
                        mode,            "-w",   "-t", "60", NULL};
  return pg_as(args, 90000);
}

static int pg_ctl_stop(const char *mode) {
  return pg_ctl_stop_at(pg_data, mode);
}

/* The postmaster's pid from data/postmaster.pid (0 if there is none). */
static pid_t postmaster_pid_at(const char *data) {
  char path[200];
  snprintf(path, sizeof path, "%s/postmaster.pid", data);
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return 0;
  long pid = 0;
  if (fscanf(f, "%ld", &pid) != 1)
    pid = 0;
  fclose(f);
  return (pid_t)pid;
}

/* pid is running (not gone, not a zombie its reaper has not collected:
 * PID 1 of a container may be slow to). */
static int running(pid_t pid) {
  char path[64], buf[256];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return 0;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  const char *end = strrchr(buf, ')'); /* "pid (comm) S ..." */
  return end != NULL && end[1] == ' ' && end[2] != 'Z' && end[2] != 'X';
}

/* Processes whose working directory is under dir: a server there and its
 * children (they chdir to the data directory; their titles hide it). */
static int pg_processes_at(const char *dir, pid_t *first) {
  int n = 0;
  size_t dl = strlen(dir);
  DIR *d = opendir("/proc");
  if (d == NULL)
    return -1;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    char *end = NULL;
    long pid = strtol(e->d_name, &end, 10);
    if (pid <= 0 || *end != '\0')
      continue;
    char link[64], cwd[512];
    snprintf(link, sizeof link, "/proc/%ld/cwd", pid);
    ssize_t l = readlink(link, cwd, sizeof cwd - 1);
    if (l <= 0)
      continue;
    cwd[l] = '\0';
    if (strncmp(cwd, dir, dl) == 0 && (cwd[dl] == '/' || cwd[dl] == '\0')) {
      if (n++ == 0 && first != NULL)
        *first = (pid_t)pid;
    }
  }
  closedir(d);
  return n;
}

static int pg_processes(pid_t *first) { return pg_processes_at(pg_dir, first); }

static int rm_entry(const char *path, const struct stat *sb, int flag,
                    struct FTW *ftw) {
  (void)sb;
  (void)flag;
  (void)ftw;
  remove(path);
  return 0;
}

/* Stop a private server in dir whatever state it is in, and remove the
 * directory. 0 if nothing of it is left. */
static int destroy_dir(const char *dir) {
  char data[160];
  snprintf(data, sizeof data, "%s/data", dir);
  if (postmaster_pid_at(data) > 0)
    pg_ctl_stop_at(data, "immediate");
  for (int i = 0; i < 50; i++) {
    pid_t p = 0;
    if (pg_processes_at(dir, &p) <= 0)
      break;
    if (i >= 20) /* 2 s after an immediate stop: not going by itself */
      kill(p, SIGKILL);
    usleep(100000);
  }
  nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  struct stat sb;
  return pg_processes_at(dir, NULL) == 0 && stat(dir, &sb) != 0 ? 0 : -1;
}

static int pg_destroy(void) { return pg_dir[0] ? destroy_dir(pg_dir) : 0; }

/* The directories of runs that died without cleaning up (SIGKILL, a
 * timeout): their servers would run on forever. */
static void sweep_dead_runs(void) {
  DIR *d = opendir("/tmp");
  if (d == NULL)
    return;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    int pid = 0, used = 0;
    if (sscanf(e->d_name, "linli-pgstop-%d%n", &pid, &used) != 1 ||
        e->d_name[used] != '\0' || pid <= 0 || pid == (int)getpid() ||
        running((pid_t)pid))
      continue;
    char dir[300];
    snprintf(dir, sizeof dir, "/tmp/%s", e->d_name);
    fprintf(stderr, "removing %s, left by a dead run\n", dir);
    destroy_dir(dir);
  }
  closedir(d);
}

/* initdb, start, role and database linli. */
static int pg_create(void) {
  snprintf(pg_dir, sizeof pg_dir, "/tmp/linli-pgstop-%d", (int)getpid());
  snprintf(pg_data, sizeof pg_data, "%s/data", pg_dir);
  snprintf(pg_sock, sizeof pg_sock, "%s/run", pg_dir);
  snprintf(pg_log, sizeof pg_log, "%s/postgres.log", pg_dir);
  snprintf(tool_log, sizeof tool_log, "/tmp/linli_test_ledger_pgstop_%d.log",
           (int)getpid());
  unlink(tool_log);
  sweep_dead_runs();
  pg_destroy(); /* a leftover of an earlier process with our pid */
  if (mkdir(pg_dir, 0700) != 0 || mkdir(pg_sock, 0700) != 0) {
    fprintf(stderr, "mkdir %s: %s\n", pg_dir, strerror(errno));
    return -1;
  }
  if (geteuid() == 0) {
    /* /tmp is open to everybody: the postgres user reaches its directory
     * (unlike, say, a data directory under /root). */
    struct passwd *pw = getpwnam("postgres");
    if (pw == NULL || chown(pg_dir, pw->pw_uid, pw->pw_gid) != 0 ||
        chown(pg_sock, pw->pw_uid, pw->pw_gid) != 0) {
      fprintf(stderr, "no postgres user to own %s\n", pg_dir);
      return -1;
    }
  }
  const char *initdb[] = {PG_BIN "/initdb", "-D", pg_data, "-U", "postgres",
                          "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8",
                          "--no-sync", NULL};
  if (pg_as(initdb, 120000) != 0) {
    fprintf(stderr, "initdb failed: see %s\n", tool_log);
    return -1;
  }
  int started = -1;
  for (int attempt = 0; attempt < 3 && started != 0; attempt++) {
    /* Another process may take the probed port first: probe again. */
    if ((pg_port = free_port()) < 0)
      return -1;
    started = pg_ctl_start();
  }
  if (started != 0) {
    fprintf(stderr, "pg_ctl start failed: see %s and %s\n", tool_log, pg_log);
    return -1;
  }
  char admin[256];
  snprintf(admin, sizeof admin,
           "host=127.0.0.1 port=%d dbname=postgres user=postgres", pg_port);
  PGconn *c = PQconnectdb(admin);
  int ok = PQstatus(c) == CONNECTION_OK;
  const char *sql[] = {"CREATE ROLE linli LOGIN SUPERUSER",
                       "CREATE DATABASE linli OWNER linli"};
  for (size_t i = 0; ok && i < 2; i++) {
    PGresult *r = PQexec(c, sql[i]);
    ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
  }
  if (!ok)
    fprintf(stderr, "private postgres: %s", PQerrorMessage(c));
  PQfinish(c);
  snprintf(conninfo, sizeof conninfo,
           "host=127.0.0.1 port=%d dbname=linli user=linli", pg_port);
  return ok ? 0 : -1;
}

/* ------------------------------------------------------------ queries */

static PGconn *db;

/* The test's session; a new one after the server came back. */
static PGconn *conn(void) {
  if (db != NULL && PQstatus(db) == CONNECTION_OK)
    return db;
  PQfinish(db);
  db = PQconnectdb(conninfo);
  return db;
}

/* One value of a query with up to two text parameters; malloc'd or NULL. */
static char *q_text(const char *sql, const char *a, const char *b) {
  const char *p[2] = {a, b};
  int n = b ? 2 : a ? 1 : 0;
  PGresult *r = PQexecParams(conn(), sql, n, NULL, p, NULL, NULL, 0);
  char *v = NULL;
  if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) >= 1 &&
      !PQgetisnull(r, 0, 0))
    v = strdup(PQgetvalue(r, 0, 0));
  else if (PQresultStatus(r) != PGRES_TUPLES_OK)
    fprintf(stderr, "query failed: %s", PQerrorMessage(db));
  PQclear(r);
  if (v == NULL && PQstatus(db) != CONNECTION_OK) {
    PQfinish(db); /* the next query reconnects */
    db = NULL;
  }
  return v;
}

static long q_long(const char *sql, const char *a, const char *b) {
  char *v = q_text(sql, a, b);
  long n = v ? strtol(v, NULL, 10) : -1;
  free(v);
  return n;
}

static int q_is(const char *sql, const char *a, const char *want) {
  char *v = q_text(sql, a, NULL);
  int yes = v && strcmp(v, want) == 0;
  if (!yes)
    fprintf(stderr, "  (got '%s', want '%s' for %s)\n", v ? v : "NULL", want,
            sql);
  free(v);
  return yes;
}

/* ------------------------------------------------------------- topics */

static linli_producer_t *prod;
static char run_id[64]; /* prefix of every id; topic suffix */
static char sfx[80];
static char group[128];
static pid_t ledger_pid = -1;

static const char *tn(const char *base, char *buf, size_t len) {
  snprintf(buf, len, "%s%s", base, sfx);
  return buf;
}

/* ------------------------------------------------------------- events */

#define N_ORDERS 120
#define MAX_EVENTS 400
static char sent_ids[MAX_EVENTS][LINLI_ID_BUFSZ]; /* order events sent */
static int n_sent;
static char wh[96], sku[96];

static int qty_of(int i) { return 1 + i % 3; }
static int is_paid(int i) { return i % 3 == 0; }

static void order_name(char *buf, size_t len, int i) {
  snprintf(buf, len, "%s-o%d", run_id, i);
}

/* Meta with a new event id; an order event's id is kept in sent_ids. */
static Linli__Meta *meta(Linli__Meta *m, int order_event) {
  static char other_id[LINLI_ID_BUFSZ];
  linli__meta__init(m);
  char *id = order_event && n_sent < MAX_EVENTS ? sent_ids[n_sent++]
                                                : other_id;
  linli_id_new(id, LINLI_ID_BUFSZ);
  m->event_id = id;
  m->occurred_at_ms = 1790000000000LL;
  m->producer = (char *)"test";
  m->trace_id = (char *)"";
  m->schema_version = 1;
  m->causation_id = (char *)"";
  return m;
}

static int produce(const char *base, const char *key,
                   const ProtobufCMessage *env) {
  uint8_t buf[2048];
  size_t len = protobuf_c_message_get_packed_size(env);
  if (len > sizeof buf)
    return -1;
  protobuf_c_message_pack(env, buf);
  char topic[256], err[256];
  tn(base, topic, sizeof topic);
  int rc = linli_producer_send_sync(prod, topic, RD_KAFKA_PARTITION_UA, key,
                                    strlen(key), buf, len, NULL, 30000, NULL,
                                    NULL, err, sizeof err);
  if (rc != LINLI_OK)
    fprintf(stderr, "produce %s: %s\n", topic, err);
  return rc == LINLI_OK ? 0 : -1;
}

static int send_restock(int qty) {
  Linli__Meta m;
  Linli__InventoryEvent env = LINLI__INVENTORY_EVENT__INIT;
  Linli__StockAdjusted a = LINLI__STOCK_ADJUSTED__INIT;
  char adj[LINLI_ID_BUFSZ];
  linli_id_new(adj, sizeof adj);
  a.adjustment_id = adj;
  a.warehouse_id = wh;
  a.sku_id = sku;
  a.quantity = qty;
  a.reason = LINLI__STOCK_ADJUSTED__REASON__RESTOCK;
  a.note = (char *)"";
  env.meta = meta(&m, 0);
  env.event_case = LINLI__INVENTORY_EVENT__EVENT_STOCK_ADJUSTED;
  env.stock_adjusted = &a;
  return produce(LINLI_TOPIC_INVENTORY, wh, &env.base);
}

static int send_placed(int i) {
  char o[96];
  order_name(o, sizeof o, i);
  Linli__Meta m;
  Linli__OrderEvent env = LINLI__ORDER_EVENT__INIT;
  Linli__OrderPlaced p = LINLI__ORDER_PLACED__INIT;
  Linli__OrderLine l = LINLI__ORDER_LINE__INIT;
  Linli__OrderLine *lines[] = {&l};
  Linli__PickupDelivery pk = LINLI__PICKUP_DELIVERY__INIT;
  l.sku_id = sku;
  l.quantity = qty_of(i);
  l.unit_price_fen = 250;
  pk.pickup_point_id = (char *)"pp-1";
  p.order_id = o;
  p.app_id = (char *)"app-1";
  p.user_id = (char *)"user-1";
  p.warehouse_id = wh;
  p.n_lines = 1;
  p.lines = lines;
  p.total_fen = 250LL * qty_of(i);
  p.campaign_id = (char *)"";
  p.placed_at_ms = 1790000000000LL;
  p.delivery_case = LINLI__ORDER_PLACED__DELIVERY_PICKUP;
  p.pickup = &pk;
  env.meta = meta(&m, 1);
  env.event_case = LINLI__ORDER_EVENT__EVENT_ORDER_PLACED;
  env.order_placed = &p;
  return produce(LINLI_TOPIC_ORDERS, o, &env.base);
}

static int send_paid(int i) {
  char o[96], txn[112];
  order_name(o, sizeof o, i);
  snprintf(txn, sizeof txn, "%s-txn", o);
  Linli__Meta m;
  Linli__OrderEvent env = LINLI__ORDER_EVENT__INIT;
  Linli__OrderPaid p = LINLI__ORDER_PAID__INIT;
  p.order_id = o;
  p.method = LINLI__ORDER_PAID__METHOD__ALIPAY;
  p.payment_txn_id = txn;
  p.amount_fen = 250LL * qty_of(i);
  p.paid_at_ms = 1790000001000LL;
  env.meta = meta(&m, 1);
  env.event_case = LINLI__ORDER_EVENT__EVENT_ORDER_PAID;
  env.order_paid = &p;
  return produce(LINLI_TOPIC_ORDERS, o, &env.base);
}

static int send_result(int i, Linli__ReservationResult__Status status) {
  char o[96], txn[112];
  order_name(o, sizeof o, i);
  snprintf(txn, sizeof txn, "%s-txn", o);
  int committed = status == LINLI__RESERVATION_RESULT__STATUS__COMMITTED;
  Linli__Meta m;
  Linli__ReservationEvent env = LINLI__RESERVATION_EVENT__INIT;
  Linli__ReservationResult r = LINLI__RESERVATION_RESULT__INIT;
  Linli__OrderLine l = LINLI__ORDER_LINE__INIT;
  Linli__OrderLine *lines[] = {&l};
  l.sku_id = sku;
  l.quantity = qty_of(i);
  l.unit_price_fen = 250;
  r.order_id = o;
  r.warehouse_id = wh;
  r.user_id = (char *)"user-1";
  r.status = status;
  r.n_lines = 1;
  r.lines = lines;
  if (!committed)
    r.expires_at_ms = 1790000900000LL;
  r.detail = (char *)"";
  r.payment_txn_id = committed ? txn : (char *)"";
  r.amount_fen = committed ? 250LL * qty_of(i) : 0;
  r.total_fen = 250LL * qty_of(i);
  r.app_id = (char *)"app-1";
  r.campaign_id = (char *)"";
  env.meta = meta(&m, 1);
  env.event_case = LINLI__RESERVATION_EVENT__EVENT_RESERVATION_RESULT;
  env.reservation_result = &r;
  return produce(LINLI_TOPIC_RESERVATIONS, o, &env.base);
}

/* Orders [from, to) placed and reserved. */
static int send_orders(int from, int to) {
  for (int i = from; i < to; i++)
    if (send_placed(i) != 0 ||
        send_result(i, LINLI__RESERVATION_RESULT__STATUS__RESERVED) != 0)
      return -1;
  return 0;
}

/* The paid orders among [from, to) paid, and their reservations
 * committed. */
static int send_payments(int from, int to) {
  for (int i = from; i < to; i++)
    if (is_paid(i) &&
        (send_paid(i) != 0 ||
         send_result(i, LINLI__RESERVATION_RESULT__STATUS__COMMITTED) != 0))
      return -1;
  return 0;
}

/* ------------------------------------------------------------ ledger */

static char env_pg[320], env_key[128], env_group[200], env_inst[200],
    env_sfx[128], env_dlq[300];

static pid_t start_ledger(void) {
  char bin[1024];
  linli_test_binary_path("consumers/ledger/linli-ledger", bin, sizeof bin);
  char *argv[] = {bin, NULL};
  char *env[] = {env_pg,
                 env_key,
                 env_group,
                 env_inst,
                 env_sfx,
                 env_dlq,
                 (char *)"LINLI_RUNNER_BATCH_SIZE=50",
                 (char *)"LINLI_RUNNER_FLUSH_INTERVAL_MS=50",
                 (char *)"LINLI_METRICS_PORT=0",
                 (char *)"LINLI_LOG_LEVEL=info",
                 NULL};
  return linli_test_spawn_tied(argv, env, tool_log);
}

static int log_contains(const char *needle) {
  FILE *f = fopen(tool_log, "r");
  if (f == NULL)
    return 0;
  char line[4096];
  int found = 0;
  while (!found && fgets(line, sizeof line, f) != NULL)
    found = strstr(line, needle) != NULL;
  fclose(f);
  return found;
}

/* Every partition of the run's input topics: 1 if the ledger's stored
 * next_offset equals the partition's end (0 if it is behind; -1 if it is
 * ahead or on error). */
static int offsets_at_end(int verbose) {
  rd_kafka_t *rk = linli_producer_handle(prod);
  size_t n = 0;
  const linli_topic_schema_t *all = linli_schema_topics(&n);
  int result = 1;
  for (size_t t = 0; t < n && result >= 0; t++) {
    if (strcmp(all[t].name, LINLI_TOPIC_ORDER_STATUS) == 0)
      continue; /* the ledger's output */
    char topic[256];
    tn(all[t].name, topic, sizeof topic);
    for (int p = 0; p < 64; p++) {
      int64_t lo = 0, hi = 0;
      if (rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, 10000) !=
          RD_KAFKA_RESP_ERR_NO_ERROR)
        break; /* past the last partition */
      char ps[16];
      snprintf(ps, sizeof ps, "%d", p);
      const char *params[] = {group, topic, ps};
      PGresult *r = PQexecParams(conn(),
                                 "SELECT next_offset FROM consumer_offsets "
                                 "WHERE consumer_group = $1 AND topic = $2 "
                                 "AND partition = $3::int",
                                 3, NULL, params, NULL, NULL, 0);
      long long next = 0; /* no row: nothing read yet */
      int rows = PQresultStatus(r) == PGRES_TUPLES_OK ? PQntuples(r) : -1;
      if (rows == 1)
        next = atoll(PQgetvalue(r, 0, 0));
      PQclear(r);
      if (rows < 0)
        return -1;
      if (next > hi) {
        fprintf(stderr, "  %s[%d]: next_offset %lld past the end %lld\n",
                topic, p, next, (long long)hi);
        return -1;
      }
      if (next < hi) {
        if (verbose)
          fprintf(stderr, "  %s[%d]: next_offset %lld, end %lld\n", topic, p,
                  next, (long long)hi);
        result = 0;
      }
    }
  }
  return result;
}

static long recorded(void) {
  char like[96];
  snprintf(like, sizeof like, "%s-o%%", run_id);
  return q_long("SELECT count(*) FROM order_events WHERE order_id LIKE $1",
                like, NULL);
}

/* ------------------------------------------------------------- suite */

static void cleanup_all(void) {
  if (cleaned_up)
    return;
  cleaned_up = 1;
  if (ledger_pid > 0)
    linli_test_stop(ledger_pid, 1);
  ledger_pid = -1;
  PQfinish(db);
  db = NULL;
  pg_destroy();
  if (prod != NULL && sfx[0])
    linli_test_suffixed_topics(sfx, 1);
  linli_producer_free(prod);
  prod = NULL;
}

static int suite_init(void) {
  if (sodium_init() < 0)
    return -1;
  atexit(cleanup_all); /* also when the runner exits early */
  if (pg_create() != 0)
    return -1;
  snprintf(env_pg, sizeof env_pg, "LINLI_PG_CONNINFO=%s", conninfo);

  /* The record's schema, by the real tool. */
  char bin[1024], dir[1024];
  linli_test_binary_path("tools/linli-migrate", bin, sizeof bin);
  linli_test_source_path("schemas/sql", dir, sizeof dir);
  char *margv[] = {bin, (char *)"--dir", dir, NULL};
  char *menv[] = {env_pg, NULL};
  pid_t mp = linli_test_spawn_tied(margv, menv, tool_log);
  int st = -1;
  if (mp < 0 || waitpid(mp, &st, 0) != mp || !WIFEXITED(st) ||
      WEXITSTATUS(st) != 0) {
    fprintf(stderr, "linli-migrate failed: see %s\n", tool_log);
    return -1;
  }

  char err[512];
  if (linli_producer_new(linli_test_config(), "test-ledger-pgstop", &prod, err,
                         sizeof err) != LINLI_OK) {
    fprintf(stderr, "producer: %s\n", err);
    return -1;
  }
  linli_test_unique("tlps", run_id, sizeof run_id);
  for (char *p = run_id; *p; p++)
    if (*p == '-')
      *p = '_';
  snprintf(sfx, sizeof sfx, ".%s", run_id);
  snprintf(group, sizeof group, "linli-ledger-test-%s", run_id);
  snprintf(wh, sizeof wh, "%s-wh", run_id);
  snprintf(sku, sizeof sku, "%s-sku", run_id);
  if (linli_test_suffixed_topics(sfx, 0) != 0)
    return -1;
  char dlq[256];
  snprintf(env_sfx, sizeof env_sfx, "LINLI_LEDGER_TOPIC_SUFFIX=%s", sfx);
  snprintf(env_dlq, sizeof env_dlq, "LINLI_RUNNER_DLQ_TOPIC=%s",
           tn(LINLI_TOPIC_DLQ, dlq, sizeof dlq));
  unsigned char key[32];
  char key_hex[65];
  randombytes_buf(key, sizeof key);
  sodium_bin2hex(key_hex, sizeof key_hex, key, sizeof key);
  snprintf(env_key, sizeof env_key, "LINLI_CRYPTO_KEY=%s", key_hex);
  snprintf(env_group, sizeof env_group, "LINLI_RUNNER_GROUP=%s", group);
  snprintf(env_inst, sizeof env_inst, "LINLI_RUNNER_INSTANCE_ID=%s", run_id);
  /* Fresh topics, fresh record: the ledger reads from the beginning. */
  ledger_pid = start_ledger();
  return ledger_pid > 0 ? 0 : -1;
}

static int suite_cleanup(void) {
  cleanup_all();
  if (CU_get_number_of_failures() == 0)
    unlink(tool_log); /* kept for a look when something failed */
  return 0;
}

/* ---------------------------------------------------------------- tests */

static int wait_offsets(int timeout_ms) {
  int64_t deadline = linli_test_now_ms() + timeout_ms;
  int r;
  while ((r = offsets_at_end(0)) == 0 && linli_test_now_ms() < deadline)
    usleep(100000);
  if (r == 0)
    offsets_at_end(1);
  return r == 1;
}

static void test_outage(void) {
  /* Part A: a restock and a third of the orders, a third of those paid;
   * ingested before anything goes wrong. */
  CU_ASSERT_EQUAL_FATAL(send_restock(1000), 0);
  CU_ASSERT_EQUAL_FATAL(send_orders(0, 40), 0);
  CU_ASSERT_EQUAL_FATAL(send_payments(0, 40), 0);
  CU_ASSERT_FATAL(wait_offsets(T));
  long before = recorded();
  CU_ASSERT_EQUAL(before, 80 + 2 * 14);

  /* Part B arrives, and PostgreSQL stops (fast: sessions are terminated,
   * open transactions roll back) while the ledger ingests it. */
  CU_ASSERT_EQUAL_FATAL(send_orders(40, 80), 0);
  long at_stop = recorded();
  int64_t stopped_at = linli_test_now_ms();
  CU_ASSERT_EQUAL_FATAL(pg_ctl_stop("fast"), 0);
  PQfinish(db);
  db = NULL;
  fprintf(stderr, "\n  PostgreSQL stopped with %ld of %d events recorded\n",
          at_stop, n_sent);

  /* Part C while it is down: the last third of the orders, and the
   * payments of parts B and C. */
  CU_ASSERT_EQUAL(send_orders(80, N_ORDERS), 0);
  CU_ASSERT_EQUAL(send_payments(40, N_ORDERS), 0);
  int64_t left = stopped_at + OUTAGE_MS - linli_test_now_ms();
  if (left > 0)
    usleep((useconds_t)left * 1000);
  /* The ledger is waiting, not gone. */
  CU_ASSERT_EQUAL(waitpid(ledger_pid, NULL, WNOHANG), 0);
  CU_ASSERT_EQUAL_FATAL(pg_ctl_start(), 0);
  fprintf(stderr, "  PostgreSQL back after %lld ms\n",
          (long long)(linli_test_now_ms() - stopped_at));

  /* Everything recorded: every partition's offset at its end. */
  CU_ASSERT_TRUE(wait_offsets(T));
  CU_ASSERT_EQUAL(n_sent, 2 * N_ORDERS + 2 * 40);
  CU_ASSERT_EQUAL(waitpid(ledger_pid, NULL, WNOHANG), 0); /* same process */
  /* It met the outage and waited it out: pg.c logs a lost connection, an
   * unreachable server or a retried transaction, depending on where the
   * outage caught it. */
  CU_ASSERT_TRUE(log_contains("pg transaction retry") ||
                 log_contains("pg connection lost") ||
                 log_contains("pg unreachable"));

  /* Every event once: each id sent is in order_events, and nothing else. */
  size_t cap = (size_t)n_sent * (LINLI_ID_BUFSZ + 1) + 4;
  char *arr = malloc(cap);
  CU_ASSERT_PTR_NOT_NULL_FATAL(arr);
  size_t len = 0;
  arr[len++] = '{';
  for (int i = 0; i < n_sent; i++)
    len += (size_t)snprintf(arr + len, cap - len, "%s%s", i ? "," : "",
                            sent_ids[i]);
  snprintf(arr + len, cap - len, "}");
  char like[96], want[128];
  snprintf(like, sizeof like, "%s-o%%", run_id);
  CU_ASSERT_EQUAL(q_long("SELECT count(*) FROM order_events WHERE event_id = "
                         "ANY($1::text[])", arr, NULL),
                  n_sent);
  free(arr);
  CU_ASSERT_EQUAL(recorded(), n_sent);
  /* ... each at its own position in the log */
  CU_ASSERT_EQUAL(q_long("SELECT count(DISTINCT (topic, partition, "
                         "kafka_offset)) FROM order_events WHERE order_id "
                         "LIKE $1", like, NULL),
                  n_sent);

  /* No row twice, no change applied twice. */
  long units = 0, sold = 0;
  for (int i = 0; i < N_ORDERS; i++) {
    units += qty_of(i);
    if (is_paid(i))
      sold += qty_of(i);
  }
  CU_ASSERT_EQUAL(q_long("SELECT count(*) FROM orders WHERE order_id LIKE $1",
                         like, NULL),
                  N_ORDERS);
  CU_ASSERT_EQUAL(q_long("SELECT count(*) FROM orders WHERE order_id LIKE $1 "
                         "AND state = 'RESERVED' AND version = 2",
                         like, NULL),
                  80);
  /* placed (1), reserved (2), committed (3); the payment notice itself
   * only joins the history and sets the method */
  long paid = q_long("SELECT count(*) FROM orders WHERE order_id LIKE $1 "
                     "AND state = 'PAID' AND version = 3 AND paid_fen = "
                     "total_fen AND payment_method = 'ALIPAY'",
                     like, NULL);
  CU_ASSERT_EQUAL(paid, 40);
  if (paid != 40) {
    char *states = q_text("SELECT string_agg(s, ', ') FROM (SELECT "
                          "concat_ws(':', state, version, paid_fen = "
                          "total_fen, count(*)) s FROM orders WHERE order_id "
                          "LIKE $1 GROUP BY state, version, paid_fen = "
                          "total_fen) x",
                          like, NULL);
    fprintf(stderr, "  orders (state:version:paid in full:count): %s\n",
            states ? states : "?");
    free(states);
  }
  CU_ASSERT_EQUAL(q_long("SELECT count(*) FROM order_lines WHERE order_id "
                         "LIKE $1", like, NULL),
                  N_ORDERS);
  CU_ASSERT_EQUAL(q_long("SELECT count(*) FROM reservations WHERE order_id "
                         "LIKE $1 AND status = 'COMMITTED'", like, NULL),
                  40);
  CU_ASSERT_EQUAL(q_long("SELECT count(*) FROM reservations WHERE order_id "
                         "LIKE $1 AND status = 'RESERVED'", like, NULL),
                  80);
  CU_ASSERT_EQUAL(q_long("SELECT count(*) FROM payments WHERE order_id LIKE "
                         "$1 AND status = 'ACCEPTED'", like, NULL),
                  40);
  CU_ASSERT_EQUAL(q_long("SELECT count(*) FROM payments", NULL, NULL), 40);
  snprintf(want, sizeof want, "1000|%ld|%ld|%ld", 1000 - units, units - sold,
           sold);
  CU_ASSERT_TRUE(q_is("SELECT concat_ws('|', initial, available, reserved, "
                      "sold) FROM inventory WHERE warehouse_id = $1",
                      wh, want));
  CU_ASSERT_EQUAL(q_long("SELECT count(*) FROM stock_movements WHERE "
                         "warehouse_id = $1", wh, NULL),
                  1 + N_ORDERS + 40);
  CU_ASSERT_EQUAL(q_long("SELECT count(*) FROM dlq_records", NULL, NULL), 0);
  /* The order-status outbox drained after the outage too. */
  int64_t deadline = linli_test_now_ms() + T;
  while (q_long("SELECT count(*) FROM ledger_outbox", NULL, NULL) != 0 &&
         linli_test_now_ms() < deadline)
    usleep(100000);
  CU_ASSERT_EQUAL(q_long("SELECT count(*) FROM ledger_outbox", NULL, NULL), 0);
}

/* Everything stops cleanly, and nothing of the private server is left. */
static void test_stop_all(void) {
  CU_ASSERT_FATAL(ledger_pid > 0);
  int st = linli_test_stop(ledger_pid, 0);
  ledger_pid = -1;
  CU_ASSERT_TRUE(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
  PQfinish(db);
  db = NULL;
  pid_t pm = postmaster_pid_at(pg_data);
  CU_ASSERT_TRUE(pm > 0);
  CU_ASSERT_EQUAL(pg_ctl_stop("fast"), 0);
  CU_ASSERT_TRUE(pm > 0 && !running(pm));
  CU_ASSERT_EQUAL(pg_processes(NULL), 0);
  CU_ASSERT_EQUAL(pg_destroy(), 0);
  struct stat sb;
  CU_ASSERT_NOT_EQUAL(stat(pg_dir, &sb), 0);
}

int linli_test_register(void) {
  CU_pSuite s = CU_add_suite("ledger through a PostgreSQL outage (private "
                             "PostgreSQL 15)",
                             suite_init, suite_cleanup);
  if (s == NULL ||
      CU_add_test(s, "PostgreSQL stopped for 10 s during ingest",
                  test_outage) == NULL ||
      CU_add_test(s, "everything stops; no postgres process left",
                  test_stop_all) == NULL)
    return -1;
  return 0;
}
