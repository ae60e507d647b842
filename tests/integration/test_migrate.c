/*
 * test_migrate.c - linli-migrate against the dev PostgreSQL, in a fresh
 * database (linli_test_<pid>, owned by the linli role, dropped at the end):
 * the first run creates every table of schemas/sql, the second applies
 * nothing; --status lists them; an edited applied migration and a broken
 * new one fail with the file named and leave nothing half-applied.
 *
 * The database is created as the configured role; a role without CREATEDB
 * (the dev stack's linli) falls back to the postgres superuser, creating the
 * database WITH OWNER the configured role, so that linli-migrate itself
 * still runs as that role.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "linli/config.h"
#include "linli_test.h"

static char db_name[64];        /* linli_test_<pid> */
static char *test_conninfo;     /* conninfo of the test database */
static char *admin_conninfo;    /* conninfo that created it (for DROP) */
static PGconn *test_conn;       /* our own session on the test database */
static char tmp_dir[256];       /* scratch copies of the migrations */

/* ------------------------------------------------------------- helpers */

/* a + b + c, malloc'd (no SQL built with snprintf: identifiers are escaped
 * by libpq and joined here). */
static char *join3(const char *a, const char *b, const char *c) {
  size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
  char *s = malloc(la + lb + lc + 1);
  if (s == NULL)
    return NULL;
  memcpy(s, a, la);
  memcpy(s + la, b, lb);
  memcpy(s + la + lb, c, lc + 1);
  return s;
}

/* Append " key='value'" with libpq's quoting rules. */
static int append_kv(char **acc, size_t *len, size_t *cap, const char *key,
                     const char *val) {
  size_t need = *len + strlen(key) + 2 * strlen(val) + 8;
  if (need > *cap) {
    size_t ncap = need * 2;
    char *n = realloc(*acc, ncap);
    if (n == NULL)
      return -1;
    *acc = n;
    *cap = ncap;
  }
  char *p = *acc + *len;
  if (*len > 0)
    *p++ = ' ';
  size_t kl = strlen(key);
  memcpy(p, key, kl);
  p += kl;
  *p++ = '=';
  *p++ = '\'';
  for (const char *v = val; *v; v++) {
    if (*v == '\'' || *v == '\\')
      *p++ = '\\';
    *p++ = *v;
  }
  *p++ = '\'';
  *p = '\0';
  *len = (size_t)(p - *acc);
  return 0;
}

/* base conninfo (key=value or URI) with dbname and, if non-NULL, user
 * replaced; malloc'd. */
static char *conninfo_with(const char *base, const char *dbname,
                           const char *user) {
  char *errmsg = NULL;
  PQconninfoOption *opts = PQconninfoParse(base, &errmsg);
  if (opts == NULL) {
    fprintf(stderr, "conninfo: %s\n", errmsg ? errmsg : "parse error");
    PQfreemem(errmsg);
    return NULL;
  }
  char *acc = NULL;
  size_t len = 0, cap = 0;
  int bad = 0;
  for (PQconninfoOption *o = opts; o->keyword != NULL && !bad; o++) {
    const char *val = o->val;
    if (strcmp(o->keyword, "dbname") == 0)
      val = dbname;
    else if (user != NULL && strcmp(o->keyword, "user") == 0)
      val = user;
    if (val != NULL)
      bad = append_kv(&acc, &len, &cap, o->keyword, val);
  }
  PQconninfoFree(opts);
  if (bad) {
    free(acc);
    return NULL;
  }
  return acc;
}

/* Run constant SQL; 1 if it succeeded. The SQLSTATE goes to state. */
static int exec_sql(PGconn *c, const char *sql, char *state, size_t slen) {
  PGresult *r = PQexec(c, sql);
  ExecStatusType st = PQresultStatus(r);
  int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
  if (state != NULL) {
    const char *s = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    snprintf(state, slen, "%s", s ? s : "");
  }
  if (!ok)
    fprintf(stderr, "SQL failed: %s", PQerrorMessage(c));
  PQclear(r);
  return ok;
}

/* One-value query (constant SQL, optional single $1); malloc'd text or
 * NULL. */
static char *query_value(const char *sql, const char *param) {
  const char *params[1] = {param};
  PGresult *r = PQexecParams(test_conn, sql, param ? 1 : 0, NULL,
                             param ? params : NULL, NULL, NULL, 0);
  char *v = NULL;
  if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
      !PQgetisnull(r, 0, 0))
    v = strdup(PQgetvalue(r, 0, 0));
  else if (PQresultStatus(r) != PGRES_TUPLES_OK)
    fprintf(stderr, "query failed: %s", PQerrorMessage(test_conn));
  PQclear(r);
  return v;
}

static long query_long(const char *sql, const char *param) {
  char *v = query_value(sql, param);
  long n = v ? strtol(v, NULL, 10) : -1;
  free(v);
  return n;
}

static int table_exists(const char *name) {
  char *v = query_value("SELECT to_regclass($1) IS NOT NULL", name);
  int yes = v != NULL && strcmp(v, "t") == 0;
  free(v);
  return yes;
}

/*
 * Run the built linli-migrate with args against the test database; the
 * combined stdout+stderr lands in *out (malloc'd). Returns the exit status,
 * or -1 if it could not run or did not finish within 120 s.
 */
static int run_migrate(const char *const *args, char **out) {
  *out = NULL;
  char bin[1024], log_path[512], envbuf[2048];
  linli_test_binary_path("tools/linli-migrate", bin, sizeof bin);
  snprintf(log_path, sizeof log_path, "%s/migrate-%d.log", tmp_dir,
           (int)getpid());
  unlink(log_path);
  snprintf(envbuf, sizeof envbuf, "LINLI_PG_CONNINFO=%s", test_conninfo);
  char *argv[8];
  int n = 0;
  argv[n++] = bin;
  for (int i = 0; args != NULL && args[i] != NULL && n < 7; i++)
    argv[n++] = (char *)args[i];
  argv[n] = NULL;
  char *env[] = {envbuf, NULL};
  pid_t pid = linli_test_spawn(argv, env, log_path);
  if (pid < 0)
    return -1;
  int status = 0;
  int64_t deadline = linli_test_now_ms() + 120000;
  for (;;) {
    pid_t w = waitpid(pid, &status, WNOHANG);
    if (w == pid)
      break;
    if (w < 0 && errno != EINTR)
      return -1;
    if (linli_test_now_ms() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      fprintf(stderr, "linli-migrate did not finish in 120 s\n");
      return -1;
    }
    usleep(20000);
  }
  FILE *f = fopen(log_path, "r");
  if (f != NULL) {
    size_t cap = 65536;
    char *buf = malloc(cap);
    if (buf != NULL) {
      size_t len = fread(buf, 1, cap - 1, f);
      buf[len] = '\0';
      *out = buf;
    }
    fclose(f);
  }
  unlink(log_path);
  if (*out != NULL)
    fprintf(stderr, "--- linli-migrate %s%s---\n%s", args && args[0] ? args[0] : "",
            args && args[0] ? " " : "", *out);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Copy every file of the real migration directory into dst. */
static int copy_migrations(const char *dst) {
  char src[1024];
  linli_test_source_path("schemas/sql", src, sizeof src);
  if (mkdir(dst, 0700) != 0 && errno != EEXIST)
    return -1;
  char cmd[4096];
  /* Test scaffolding (paths we made), not SQL. */
  snprintf(cmd, sizeof cmd, "cp '%s'/*.sql '%s'/", src, dst);
  return system(cmd) == 0 ? 0 : -1;
}

static size_t count_sql_files(void) {
  char src[1024], cmd[1200];
  linli_test_source_path("schemas/sql", src, sizeof src);
  snprintf(cmd, sizeof cmd, "ls '%s'/*.sql | wc -l", src);
  FILE *p = popen(cmd, "r");
  if (p == NULL)
    return 0;
  unsigned long n = 0;
  if (fscanf(p, "%lu", &n) != 1)
    n = 0;
  pclose(p);
  return n;
}

static int contains(const char *hay, const char *needle) {
  return hay != NULL && strstr(hay, needle) != NULL;
}

/* ------------------------------------------------------- suite set-up */

static int suite_init(void) {
  const linli_config_t *cfg = linli_test_config();
  if (cfg == NULL)
    return -1;
  const char *env = getenv("LINLI_PG_CONNINFO");
  const char *base = (env && *env) ? env : linli_config_str(cfg, "pg.conninfo");
  snprintf(db_name, sizeof db_name, "linli_test_%d", (int)getpid());
  snprintf(tmp_dir, sizeof tmp_dir, "/tmp/linli_test_migrate_%d",
           (int)getpid());
  if (mkdir(tmp_dir, 0700) != 0 && errno != EEXIST)
    return -1;

  /* Who are we? The test database is owned by this role. */
  PGconn *c = PQconnectdb(base);
  if (PQstatus(c) != CONNECTION_OK) {
    fprintf(stderr, "connect: %s", PQerrorMessage(c));
    PQfinish(c);
    return -1;
  }
  PGresult *r = PQexec(c, "SELECT current_user");
  char *role = NULL;
  if (PQresultStatus(r) == PGRES_TUPLES_OK)
    role = strdup(PQgetvalue(r, 0, 0));
  PQclear(r);
  char *qdb = PQescapeIdentifier(c, db_name, strlen(db_name));
  char *qrole = role ? PQescapeIdentifier(c, role, strlen(role)) : NULL;
  char *create = qdb ? join3("CREATE DATABASE ", qdb, "") : NULL;
  char *create_owned = (qdb && qrole) ? join3("CREATE DATABASE ", qdb, " OWNER ")
                                      : NULL;
  char *create_owned_full =
      create_owned ? join3(create_owned, qrole, "") : NULL;
  int ok = 0;
  char state[8];
  if (create != NULL && create_owned_full != NULL) {
    if (exec_sql(c, create, state, sizeof state)) {
      ok = 1;
      admin_conninfo = strdup(base);
    } else if (strcmp(state, "42501") == 0) {
      /* No CREATEDB: the superuser creates it for this role. */
      fprintf(stderr, "(role %s lacks CREATEDB; creating %s as postgres)\n",
              role, db_name);
      admin_conninfo = conninfo_with(base, "postgres", "postgres");
      PGconn *a = admin_conninfo ? PQconnectdb(admin_conninfo) : NULL;
      if (a != NULL && PQstatus(a) == CONNECTION_OK)
        ok = exec_sql(a, create_owned_full, NULL, 0);
      else if (a != NULL)
        fprintf(stderr, "connect as postgres: %s", PQerrorMessage(a));
      PQfinish(a);
    }
  }
  PQfreemem(qdb);
  PQfreemem(qrole);
  free(create);
  free(create_owned);
  free(create_owned_full);
  free(role);
  PQfinish(c);
  if (!ok)
    return -1;
  test_conninfo = conninfo_with(base, db_name, NULL);
  if (test_conninfo == NULL)
    return -1;
  test_conn = PQconnectdb(test_conninfo);
  if (PQstatus(test_conn) != CONNECTION_OK) {
    fprintf(stderr, "connect to %s: %s", db_name, PQerrorMessage(test_conn));
    return -1;
  }
  return 0;
}

static int suite_cleanup(void) {
  PQfinish(test_conn);
  test_conn = NULL;
  if (admin_conninfo != NULL) {
    PGconn *a = PQconnectdb(admin_conninfo);
    if (PQstatus(a) == CONNECTION_OK) {
      char *q = PQescapeIdentifier(a, db_name, strlen(db_name));
      char *drop = q ? join3("DROP DATABASE IF EXISTS ", q, " WITH (FORCE)")
                     : NULL;
      if (drop != NULL)
        exec_sql(a, drop, NULL, 0);
      free(drop);
      PQfreemem(q);
    }
    PQfinish(a);
  }
  free(admin_conninfo);
  admin_conninfo = NULL;
  free(test_conninfo);
  test_conninfo = NULL;
  char cmd[400];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
  if (tmp_dir[0] != '\0' && system(cmd) != 0)
    fprintf(stderr, "could not remove %s\n", tmp_dir);
  return 0;
}

/* ---------------------------------------------------------------- tests */

static const char *const tables[] = {
    "schema_migrations", "skus", "inventory", "stock_movements", "orders",
    "order_lines", "order_events", "reservations", "payments", "refunds",
    "campaigns", "campaign_tiers", "campaign_participants", "waves",
    "fulfillment_items", "routes", "route_stops", "route_stop_orders",
    "delivery_events", "notifications", "consumer_offsets", "dlq_records",
    "sorting_lists", "sorting_list_lines",
};

static char dir_arg[1100];

/* Runs in order: fresh database -> apply all -> apply none. */
static void test_apply_then_nothing(void) {
  linli_test_source_path("schemas/sql", dir_arg, sizeof dir_arg);
  size_t nfiles = count_sql_files();
  CU_ASSERT_FATAL(nfiles > 0);
  CU_ASSERT_FALSE(table_exists("orders"));

  char *out = NULL;
  const char *args1[] = {"--dir", dir_arg, NULL};
  CU_ASSERT_EQUAL(run_migrate(args1, &out), 0);
  CU_ASSERT_TRUE(contains(out, "applied  001_base"));
  free(out);

  for (size_t i = 0; i < sizeof tables / sizeof tables[0]; i++) {
    CU_ASSERT_TRUE(table_exists(tables[i]));
    if (!table_exists(tables[i]))
      fprintf(stderr, "missing table %s\n", tables[i]);
  }
  CU_ASSERT_EQUAL(query_long("SELECT count(*) FROM schema_migrations", NULL),
                  (long)nfiles);
  char *first = query_value("SELECT max(applied_at)::text FROM "
                            "schema_migrations", NULL);

  /* Second run: nothing to apply, nothing changes. */
  CU_ASSERT_EQUAL(run_migrate(args1, &out), 0);
  CU_ASSERT_TRUE(contains(out, "nothing to apply"));
  CU_ASSERT_FALSE(contains(out, "applied  0"));
  free(out);
  CU_ASSERT_EQUAL(query_long("SELECT count(*) FROM schema_migrations", NULL),
                  (long)nfiles);
  char *second = query_value("SELECT max(applied_at)::text FROM "
                             "schema_migrations", NULL);
  CU_ASSERT_PTR_NOT_NULL(first);
  CU_ASSERT_PTR_NOT_NULL(second);
  if (first && second)
    CU_ASSERT_STRING_EQUAL(first, second);
  free(first);
  free(second);

  /* --status: everything applied, exit 0. */
  const char *args2[] = {"--dir", dir_arg, "--status", NULL};
  CU_ASSERT_EQUAL(run_migrate(args2, &out), 0);
  CU_ASSERT_TRUE(contains(out, "0 pending"));
  CU_ASSERT_FALSE(contains(out, "pending  0"));
  free(out);
}

/* The record's constraints behave as documented. */
static void test_constraints(void) {
  CU_ASSERT_TRUE(exec_sql(test_conn,
                          "INSERT INTO inventory (warehouse_id, sku_id, "
                          "initial, available) VALUES ('w-1', 'sku-1', 10, 10)",
                          NULL, 0));
  char state[8];
  /* Negative reserved stock is refused (available may be transiently
   * negative since 007_ledger: the audit checks it). */
  CU_ASSERT_FALSE(exec_sql(test_conn,
                           "UPDATE inventory SET reserved = reserved - 1, "
                           "available = available + 1",
                           state, sizeof state));
  CU_ASSERT_STRING_EQUAL(state, "23514");
  /* Unbalanced stock is refused. */
  CU_ASSERT_FALSE(exec_sql(test_conn,
                           "UPDATE inventory SET available = available - 1",
                           state, sizeof state));
  CU_ASSERT_STRING_EQUAL(state, "23514");
  /* A balanced move is fine. */
  CU_ASSERT_TRUE(exec_sql(test_conn,
                          "UPDATE inventory SET available = available - 3, "
                          "reserved = reserved + 3",
                          NULL, 0));
  /* Offsets and partitions are never negative. */
  CU_ASSERT_FALSE(exec_sql(test_conn,
                           "INSERT INTO consumer_offsets VALUES "
                           "('g', 't', -1, 0, now())",
                           state, sizeof state));
  CU_ASSERT_STRING_EQUAL(state, "23514");
  /* Ids follow the id rule. */
  CU_ASSERT_FALSE(exec_sql(test_conn,
                           "INSERT INTO skus (sku_id, name, storage_class, "
                           "weight_g, list_price_fen, status, last_event_id) "
                           "VALUES ('bad id!', 'x', 'AMBIENT', 1, 1, 'LISTED', "
                           "'e')",
                           state, sizeof state));
  CU_ASSERT_STRING_EQUAL(state, "23514");
  /* History is append-only. */
  CU_ASSERT_TRUE(exec_sql(test_conn,
                          "INSERT INTO order_events (event_id, order_id, "
                          "topic, partition, kafka_offset, type, occurred_at, "
                          "payload) VALUES ('e-1', 'o-1', 'linli.orders.v1', "
                          "0, 0, 'OrderPlaced', now(), '{}')",
                          NULL, 0));
  CU_ASSERT_FALSE(exec_sql(test_conn, "DELETE FROM order_events", state,
                           sizeof state));
  CU_ASSERT_FALSE(exec_sql(test_conn,
                           "UPDATE order_events SET type = 'OrderPaid'",
                           state, sizeof state));
  CU_ASSERT_EQUAL(query_long("SELECT count(*) FROM order_events", NULL), 1);
  /* An order is paid once. */
  CU_ASSERT_TRUE(exec_sql(test_conn,
                          "INSERT INTO payments (payment_txn_id, order_id, "
                          "method, amount_fen, status, paid_at, event_id) "
                          "VALUES ('tx-1', 'o-1', 'ALIPAY', 100, 'ACCEPTED', "
                          "now(), 'e-2')",
                          NULL, 0));
  CU_ASSERT_FALSE(exec_sql(test_conn,
                           "INSERT INTO payments (payment_txn_id, order_id, "
                           "method, amount_fen, status, paid_at, event_id) "
                           "VALUES ('tx-2', 'o-1', 'ALIPAY', 100, 'ACCEPTED', "
                           "now(), 'e-3')",
                           state, sizeof state));
  CU_ASSERT_STRING_EQUAL(state, "23505");
}

/* An applied migration edited afterwards: error naming the file, nothing
 * runs (not even a pending migration after it). */
static void test_changed_migration(void) {
  char dir[400], path[600];
  snprintf(dir, sizeof dir, "%s/changed", tmp_dir);
  CU_ASSERT_EQUAL_FATAL(copy_migrations(dir), 0);
  snprintf(path, sizeof path, "%s/003_orders.sql", dir);
  FILE *f = fopen(path, "a");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  fputs("-- an edit after the fact\n", f);
  fclose(f);
  snprintf(path, sizeof path, "%s/900_after.sql", dir);
  f = fopen(path, "w");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  fputs("CREATE TABLE must_not_exist (a int);\n", f);
  fclose(f);

  char *out = NULL;
  const char *args[] = {"--dir", dir, NULL};
  int rc = run_migrate(args, &out);
  CU_ASSERT_NOT_EQUAL(rc, 0);
  CU_ASSERT_NOT_EQUAL(rc, -1);
  CU_ASSERT_TRUE(contains(out, "003_orders.sql"));
  CU_ASSERT_TRUE(contains(out, "changed"));
  free(out);
  CU_ASSERT_FALSE(table_exists("must_not_exist"));

  const char *sargs[] = {"--dir", dir, "--status", NULL};
  rc = run_migrate(sargs, &out);
  CU_ASSERT_NOT_EQUAL(rc, 0);
  CU_ASSERT_TRUE(contains(out, "CHANGED  003_orders"));
  CU_ASSERT_TRUE(contains(out, "pending  900_after"));
  free(out);
}

/* A broken new migration: error with file and line, none of it applied or
 * recorded; a good one before it is applied and recorded. */
static void test_failing_migration(void) {
  char dir[400], path[600];
  snprintf(dir, sizeof dir, "%s/failing", tmp_dir);
  CU_ASSERT_EQUAL_FATAL(copy_migrations(dir), 0);
  snprintf(path, sizeof path, "%s/901_good.sql", dir);
  FILE *f = fopen(path, "w");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  fputs("CREATE TABLE good_one (a int);\n", f);
  fclose(f);
  snprintf(path, sizeof path, "%s/902_bad.sql", dir);
  f = fopen(path, "w");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  fputs("CREATE TABLE half_done (a int);\n\nCREATE TABLE broken (a "
        "no_such_type);\n",
        f);
  fclose(f);

  char *out = NULL;
  const char *args[] = {"--dir", dir, NULL};
  int rc = run_migrate(args, &out);
  CU_ASSERT_NOT_EQUAL(rc, 0);
  CU_ASSERT_NOT_EQUAL(rc, -1);
  CU_ASSERT_TRUE(contains(out, "902_bad.sql:3:"));
  free(out);
  CU_ASSERT_TRUE(table_exists("good_one"));
  CU_ASSERT_FALSE(table_exists("half_done"));
  CU_ASSERT_EQUAL(query_long("SELECT count(*) FROM schema_migrations WHERE "
                             "version = $1",
                             "901_good"),
                  1);
  CU_ASSERT_EQUAL(query_long("SELECT count(*) FROM schema_migrations WHERE "
                             "version = $1",
                             "902_bad"),
                  0);

  /* A file that controls the transaction itself is refused up front. */
  f = fopen(path, "w");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  fputs("CREATE TABLE half_done (a int);\nCOMMIT;\n", f);
  fclose(f);
  rc = run_migrate(args, &out);
  CU_ASSERT_NOT_EQUAL(rc, 0);
  CU_ASSERT_TRUE(contains(out, "902_bad.sql:2:"));
  free(out);
  CU_ASSERT_FALSE(table_exists("half_done"));
}

/* Configuration and directory errors exit non-zero with a message. */
static void test_usage_errors(void) {
  char *out = NULL;
  const char *args[] = {"--dir", "/nonexistent/linli/sql", NULL};
  int rc = run_migrate(args, &out);
  CU_ASSERT_NOT_EQUAL(rc, 0);
  CU_ASSERT_NOT_EQUAL(rc, -1);
  CU_ASSERT_TRUE(contains(out, "/nonexistent/linli/sql"));
  free(out);
  const char *bad[] = {"--bogus", NULL};
  rc = run_migrate(bad, &out);
  CU_ASSERT_NOT_EQUAL(rc, 0);
  CU_ASSERT_TRUE(contains(out, "usage"));
  free(out);
}

int linli_test_register(void) {
  CU_pSuite s = CU_add_suite("migrate", suite_init, suite_cleanup);
  if (s == NULL)
    return -1;
  if (CU_add_test(s, "apply all, then nothing", test_apply_then_nothing) ==
          NULL ||
      CU_add_test(s, "constraints of the record", test_constraints) == NULL ||
      CU_add_test(s, "changed applied migration", test_changed_migration) ==
          NULL ||
      CU_add_test(s, "failing migration", test_failing_migration) == NULL ||
      CU_add_test(s, "usage errors", test_usage_errors) == NULL)
    return -1;
  return 0;
}
