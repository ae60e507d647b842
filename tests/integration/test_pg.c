/*
 * test_pg.c - integration tests of libcommon's PostgreSQL module against the
 * dev database: statements and parameters, SQLSTATE mapping, and
 * linli_pg_txn's retries through a killed backend and serialization
 * failures, with the transaction's effect landing exactly once.
 *
 * Rows live in one shared table keyed by a run id unique to this process,
 * so the SQL stays constant text (no table names built with snprintf);
 * the run's rows are deleted at the end.
 */
#include <CUnit/CUnit.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "linli/config.h"
#include "linli/error.h"
#include "linli/pg.h"
#include "linli_test.h"

static char g_conninfo[512];
static int g_timeout_ms;
static char g_run[96];

static const char SQL_CREATE[] =
    "CREATE TABLE IF NOT EXISTS linli_test_pg ("
    " run text NOT NULL, k text NOT NULL, v text, n bigint NOT NULL DEFAULT 0,"
    " PRIMARY KEY (run, k))";
static const char SQL_INSERT[] =
    "INSERT INTO linli_test_pg (run, k, v) VALUES ($1, $2, $3)";
static const char SQL_SELECT_V[] =
    "SELECT v FROM linli_test_pg WHERE run = $1 AND k = $2";
static const char SQL_COUNT[] =
    "SELECT count(*) FROM linli_test_pg WHERE run = $1 AND k = $2";

/* ------------------------------------------------------------------------ */
/* Set-up                                                                    */
/* ------------------------------------------------------------------------ */

/* Where PostgreSQL is: the stack's config, or env/defaults. */
static void pg_params(void) {
  const linli_config_t *cfg = linli_test_config();
  if (cfg != NULL) {
    snprintf(g_conninfo, sizeof g_conninfo, "%s",
             linli_config_str(cfg, "pg.conninfo"));
    g_timeout_ms = (int)linli_config_int(cfg, "pg.connect_timeout_ms");
    return;
  }
  const char *c = getenv("LINLI_PG_CONNINFO");
  snprintf(g_conninfo, sizeof g_conninfo, "%s",
           c != NULL && c[0] ? c
                             : "host=127.0.0.1 port=15432 dbname=linli "
                               "user=linli");
  g_timeout_ms = 10000;
}

static linli_pg_t *connect_or_fail(void) {
  linli_pg_t *pg = NULL;
  char err[512] = "";
  int rc = linli_pg_connect(g_conninfo, g_timeout_ms, &pg, err, sizeof err);
  if (rc != LINLI_OK)
    fprintf(stderr, "pg connect: %s\n", err);
  CU_ASSERT_EQUAL_FATAL(rc, LINLI_OK);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pg);
  return pg;
}

/* Rows of (run, k); -1 on error. */
static long count_rows(linli_pg_t *pg, const char *k) {
  const char *params[2] = {g_run, k};
  PGresult *res = NULL;
  char err[512];
  int rc = linli_pg_exec(pg, SQL_COUNT, 2, params, &res, err, sizeof err);
  CU_ASSERT_EQUAL(rc, LINLI_OK);
  if (rc != LINLI_OK)
    return -1;
  long n = atol(PQgetvalue(res, 0, 0));
  PQclear(res);
  return n;
}

static int insert_row(linli_pg_t *pg, const char *k, const char *v, char *err,
                      size_t errlen) {
  const char *params[3] = {g_run, k, v};
  return linli_pg_exec(pg, SQL_INSERT, 3, params, NULL, err, errlen);
}

static int suite_init(void) {
  pg_params();
  linli_test_unique("pg", g_run, sizeof g_run);
  linli_pg_t *pg = NULL;
  char err[512];
  if (linli_pg_connect(g_conninfo, g_timeout_ms, &pg, err, sizeof err) !=
      LINLI_OK) {
    fprintf(stderr, "pg connect: %s\n", err);
    return 1;
  }
  int rc = linli_pg_exec(pg, SQL_CREATE, 0, NULL, NULL, err, sizeof err);
  if (rc != LINLI_OK)
    fprintf(stderr, "create: %s\n", err);
  linli_pg_free(pg);
  return rc == LINLI_OK ? 0 : 1;
}

static int suite_cleanup(void) {
  linli_pg_t *pg = NULL;
  char err[512];
  if (linli_pg_connect(g_conninfo, g_timeout_ms, &pg, err, sizeof err) !=
      LINLI_OK)
    return 0;
  const char *params[1] = {g_run};
  linli_pg_exec(pg, "DELETE FROM linli_test_pg WHERE run = $1", 1, params,
                NULL, err, sizeof err);
  /* Drop the shared table once no run uses it any more. */
  linli_pg_exec(pg,
                "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM linli_test_pg) "
                "THEN DROP TABLE linli_test_pg; END IF; END $$",
                0, NULL, NULL, err, sizeof err);
  linli_pg_free(pg);
  return 0;
}

/* Kill pg's backend from another connection, as an operator or a failover
 * would. */
static void terminate_backend(linli_pg_t *killer, linli_pg_t *victim) {
  char pid[24];
  snprintf(pid, sizeof pid, "%d", PQbackendPID(linli_pg_conn(victim)));
  const char *params[1] = {pid};
  PGresult *res = NULL;
  char err[512];
  int rc = linli_pg_exec(killer, "SELECT pg_terminate_backend($1::int)", 1,
                         params, &res, err, sizeof err);
  CU_ASSERT_EQUAL_FATAL(rc, LINLI_OK);
  CU_ASSERT_STRING_EQUAL(PQgetvalue(res, 0, 0), "t");
  PQclear(res);
  /* Let the backend act on the signal before the victim's next call. */
  struct timespec ts = {0, 100 * 1000000L};
  nanosleep(&ts, NULL);
}

/* ------------------------------------------------------------------------ */
/* Connection, statements, errors                                            */
/* ------------------------------------------------------------------------ */

static void test_connect_exec(void) {
  linli_pg_t *pg = connect_or_fail();
  CU_ASSERT_PTR_NOT_NULL(linli_pg_conn(pg));
  const char *params[1] = {"41"};
  PGresult *res = NULL;
  char err[512];
  CU_ASSERT_EQUAL_FATAL(linli_pg_exec(pg, "SELECT $1::int + 1", 1, params,
                                      &res, err, sizeof err),
                        LINLI_OK);
  CU_ASSERT_STRING_EQUAL(PQgetvalue(res, 0, 0), "42");
  PQclear(res);
  linli_pg_free(pg);
}

static void test_connect_failures(void) {
  linli_pg_t *pg = NULL;
  char err[512] = "";
  CU_ASSERT_EQUAL(linli_pg_connect("nonsense", 1000, &pg, err, sizeof err),
                  LINLI_ERR_CONFIG);
  CU_ASSERT_PTR_NULL(pg);
  int64_t t0 = linli_test_now_ms();
  CU_ASSERT_EQUAL(linli_pg_connect("host=127.0.0.1 port=1 dbname=x", 500, &pg,
                                   err, sizeof err),
                  LINLI_ERR_TRANSIENT);
  int64_t took = linli_test_now_ms() - t0;
  CU_ASSERT_PTR_NULL(pg);
  CU_ASSERT_TRUE(took >= 400 && took < 5000);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "08001: "));
}

static void test_prepare_and_errors(void) {
  linli_pg_t *pg = connect_or_fail();
  char err[512] = "";
  CU_ASSERT_EQUAL_FATAL(linli_pg_prepare(pg, "ins", SQL_INSERT, 3), LINLI_OK);
  CU_ASSERT_EQUAL_FATAL(linli_pg_prepare(pg, "sel", SQL_SELECT_V, 2), LINLI_OK);
  /* Same definition again is fine; a different one under the name is not. */
  CU_ASSERT_EQUAL(linli_pg_prepare(pg, "ins", SQL_INSERT, 3), LINLI_OK);
  CU_ASSERT_EQUAL(linli_pg_prepare(pg, "ins", SQL_SELECT_V, 2),
                  LINLI_ERR_INVALID);
  /* SQL the server rejects is not registered. */
  CU_ASSERT_EQUAL(linli_pg_prepare(pg, "broken", "SELEC 1", 0),
                  LINLI_ERR_INVALID);
  CU_ASSERT_EQUAL(linli_pg_exec_prepared(pg, "broken", 0, NULL, NULL, err,
                                         sizeof err),
                  LINLI_ERR_INVALID);

  /* Parameters are data, never SQL. */
  const char *tricky = "x'); DROP TABLE linli_test_pg; --";
  const char *p1[3] = {g_run, "a", tricky};
  CU_ASSERT_EQUAL(
      linli_pg_exec_prepared(pg, "ins", 3, p1, NULL, err, sizeof err),
      LINLI_OK);
  const char *p2[3] = {g_run, "null", NULL};
  CU_ASSERT_EQUAL(
      linli_pg_exec_prepared(pg, "ins", 3, p2, NULL, err, sizeof err),
      LINLI_OK);
  PGresult *res = NULL;
  const char *s1[2] = {g_run, "a"};
  CU_ASSERT_EQUAL_FATAL(
      linli_pg_exec_prepared(pg, "sel", 2, s1, &res, err, sizeof err),
      LINLI_OK);
  CU_ASSERT_EQUAL_FATAL(PQntuples(res), 1);
  CU_ASSERT_STRING_EQUAL(PQgetvalue(res, 0, 0), tricky);
  PQclear(res);
  const char *s2[2] = {g_run, "null"};
  CU_ASSERT_EQUAL_FATAL(
      linli_pg_exec_prepared(pg, "sel", 2, s2, &res, err, sizeof err),
      LINLI_OK);
  CU_ASSERT_TRUE(PQgetisnull(res, 0, 0));
  PQclear(res);

  /* Unique violation -> conflict, "SQLSTATE: message". */
  res = (PGresult *)1;
  CU_ASSERT_EQUAL(
      linli_pg_exec_prepared(pg, "ins", 3, p1, &res, err, sizeof err),
      LINLI_ERR_CONFLICT);
  CU_ASSERT_PTR_NULL(res);
  CU_ASSERT_EQUAL(strncmp(err, "23505: ", 7), 0);
  /* Other errors -> invalid. */
  CU_ASSERT_EQUAL(linli_pg_exec(pg, "SELECT * FROM linli_no_such_table", 0,
                                NULL, NULL, err, sizeof err),
                  LINLI_ERR_INVALID);
  CU_ASSERT_EQUAL(strncmp(err, "42P01: ", 7), 0);
  /* Wrong parameter count / unknown statement. */
  CU_ASSERT_EQUAL(
      linli_pg_exec_prepared(pg, "sel", 1, s1, NULL, err, sizeof err),
      LINLI_ERR_INVALID);
  CU_ASSERT_EQUAL(
      linli_pg_exec_prepared(pg, "nope", 0, NULL, NULL, err, sizeof err),
      LINLI_ERR_INVALID);
  /* SQLSTATEs raised on purpose map as documented. */
  CU_ASSERT_EQUAL(
      linli_pg_exec(pg,
                    "DO $$ BEGIN RAISE EXCEPTION 'x' USING ERRCODE = '40P01';"
                    " END $$",
                    0, NULL, NULL, err, sizeof err),
      LINLI_ERR_TRANSIENT);
  CU_ASSERT_EQUAL(strncmp(err, "40P01: ", 7), 0);
  CU_ASSERT_EQUAL(linli_pg_set_isolation(pg, "SNAPSHOT"), LINLI_ERR_INVALID);
  CU_ASSERT_EQUAL(linli_pg_set_isolation(pg, "serializable"), LINLI_OK);
  linli_pg_free(pg);
}

static void test_reconnect_outside_txn(void) {
  linli_pg_t *pg = connect_or_fail();
  linli_pg_t *killer = connect_or_fail();
  char err[512] = "";
  CU_ASSERT_EQUAL_FATAL(linli_pg_prepare(pg, "sel", SQL_SELECT_V, 2), LINLI_OK);
  int pid1 = PQbackendPID(linli_pg_conn(pg));
  terminate_backend(killer, pg);
  /* The statement that meets the dead session fails, transiently... */
  const char *s[2] = {g_run, "none"};
  CU_ASSERT_EQUAL(
      linli_pg_exec_prepared(pg, "sel", 2, s, NULL, err, sizeof err),
      LINLI_ERR_TRANSIENT);
  /* ...the next one reconnects and re-prepares before use. */
  PGresult *res = NULL;
  CU_ASSERT_EQUAL(
      linli_pg_exec_prepared(pg, "sel", 2, s, &res, err, sizeof err),
      LINLI_OK);
  CU_ASSERT_EQUAL(PQntuples(res), 0);
  PQclear(res);
  CU_ASSERT_NOT_EQUAL(PQbackendPID(linli_pg_conn(pg)), pid1);
  linli_pg_free(killer);
  linli_pg_free(pg);
}

/* ------------------------------------------------------------------------ */
/* Transactions                                                              */
/* ------------------------------------------------------------------------ */

struct lost_ctx {
  linli_pg_t *killer;
  int calls;
  int second_failure_rc; /* what a statement after the loss returned */
};

/* Insert a row; on the first call, lose the session mid-transaction. */
static int fn_lost(linli_pg_t *pg, void *arg, char *err, size_t errlen) {
  struct lost_ctx *c = arg;
  c->calls++;
  const char *p[3] = {g_run, "lost", "once"};
  int rc = linli_pg_exec_prepared(pg, "ins", 3, p, NULL, err, errlen);
  if (rc != LINLI_OK)
    return rc;
  if (c->calls == 1) {
    terminate_backend(c->killer, pg);
    rc = linli_pg_exec(pg, "SELECT 1", 0, NULL, NULL, err, errlen);
    /* Inside the transaction nothing may reconnect silently. */
    c->second_failure_rc =
        linli_pg_exec(pg, "SELECT 1", 0, NULL, NULL, err, errlen);
    return rc;
  }
  return linli_pg_exec(pg, "SELECT 1", 0, NULL, NULL, err, errlen);
}

static void test_txn_lost_connection(void) {
  linli_pg_t *pg = connect_or_fail();
  struct lost_ctx c = {.killer = connect_or_fail()};
  char err[512] = "";
  CU_ASSERT_EQUAL_FATAL(linli_pg_prepare(pg, "ins", SQL_INSERT, 3), LINLI_OK);
  int rc = linli_pg_txn(pg, fn_lost, &c, 0, err, sizeof err);
  if (rc != LINLI_OK)
    fprintf(stderr, "txn: %s\n", err);
  CU_ASSERT_EQUAL(rc, LINLI_OK);
  CU_ASSERT_EQUAL(c.calls, 2);
  CU_ASSERT_EQUAL(c.second_failure_rc, LINLI_ERR_TRANSIENT);
  CU_ASSERT_EQUAL(count_rows(c.killer, "lost"), 1);
  linli_pg_free(c.killer);
  linli_pg_free(pg);
}

struct ser_ctx {
  linli_pg_t *other;
  int calls;
  int first_rc;
};

/* Read the row, let another session update it, then update it ourselves:
 * under SERIALIZABLE the first attempt fails with 40001. */
static int fn_serial(linli_pg_t *pg, void *arg, char *err, size_t errlen) {
  struct ser_ctx *c = arg;
  c->calls++;
  const char *p[2] = {g_run, "ser"};
  int rc = linli_pg_exec(pg, SQL_SELECT_V, 2, p, NULL, err, errlen);
  if (rc != LINLI_OK)
    return rc;
  if (c->calls == 1) {
    char oerr[512];
    rc = linli_pg_exec(c->other,
                       "UPDATE linli_test_pg SET n = n + 100 "
                       "WHERE run = $1 AND k = $2",
                       2, p, NULL, oerr, sizeof oerr);
    CU_ASSERT_EQUAL(rc, LINLI_OK);
  }
  rc = linli_pg_exec(pg,
                     "UPDATE linli_test_pg SET n = n + 1 "
                     "WHERE run = $1 AND k = $2",
                     2, p, NULL, err, errlen);
  if (c->calls == 1) {
    c->first_rc = rc;
    if (rc == LINLI_ERR_TRANSIENT)
      CU_ASSERT_EQUAL(strncmp(err, "40001: ", 7), 0);
  }
  return rc;
}

static void test_txn_serialization_failure(void) {
  linli_pg_t *pg = connect_or_fail();
  struct ser_ctx c = {.other = connect_or_fail()};
  char err[512] = "";
  CU_ASSERT_EQUAL_FATAL(insert_row(c.other, "ser", "x", err, sizeof err),
                        LINLI_OK);
  CU_ASSERT_EQUAL_FATAL(linli_pg_set_isolation(pg, "SERIALIZABLE"), LINLI_OK);
  CU_ASSERT_EQUAL(linli_pg_txn(pg, fn_serial, &c, 5, err, sizeof err),
                  LINLI_OK);
  CU_ASSERT_EQUAL(c.calls, 2);
  CU_ASSERT_EQUAL(c.first_rc, LINLI_ERR_TRANSIENT);
  PGresult *res = NULL;
  const char *p[2] = {g_run, "ser"};
  CU_ASSERT_EQUAL_FATAL(
      linli_pg_exec(pg, "SELECT n FROM linli_test_pg WHERE run = $1 AND k = $2",
                    2, p, &res, err, sizeof err),
      LINLI_OK);
  CU_ASSERT_STRING_EQUAL(PQgetvalue(res, 0, 0), "101");
  PQclear(res);
  linli_pg_free(c.other);
  linli_pg_free(pg);
}

struct count_ctx {
  int calls;
  int cancel_at;   /* call linli_pg_cancel_retries on this call (0 = never) */
  int fail_until;  /* raise 40001 on calls <= fail_until */
  int result;      /* what to return after inserting (when not failing) */
  const char *k;
};

static int fn_counted(linli_pg_t *pg, void *arg, char *err, size_t errlen) {
  struct count_ctx *c = arg;
  c->calls++;
  if (c->cancel_at > 0 && c->calls == c->cancel_at)
    linli_pg_cancel_retries(pg);
  int rc = insert_row(pg, c->k, "v", err, errlen);
  if (rc != LINLI_OK)
    return rc;
  if (c->calls <= c->fail_until)
    return linli_pg_exec(
        pg,
        "DO $$ BEGIN RAISE EXCEPTION 'forced' USING ERRCODE = '40001'; END $$",
        0, NULL, NULL, err, errlen);
  return c->result;
}

static void test_txn_forced_retry(void) {
  linli_pg_t *pg = connect_or_fail();
  char err[512] = "";
  struct count_ctx c = {.fail_until = 2, .result = LINLI_OK, .k = "forced"};
  CU_ASSERT_EQUAL(linli_pg_txn(pg, fn_counted, &c, 0, err, sizeof err),
                  LINLI_OK);
  CU_ASSERT_EQUAL(c.calls, 3);
  CU_ASSERT_EQUAL(count_rows(pg, "forced"), 1);

  /* max_attempts bounds the retries; fn's last result comes back. */
  struct count_ctx d = {.fail_until = 100, .result = LINLI_OK, .k = "bounded"};
  CU_ASSERT_EQUAL(linli_pg_txn(pg, fn_counted, &d, 3, err, sizeof err),
                  LINLI_ERR_TRANSIENT);
  CU_ASSERT_EQUAL(d.calls, 3);
  CU_ASSERT_EQUAL(strncmp(err, "40001: ", 7), 0);
  CU_ASSERT_EQUAL(count_rows(pg, "bounded"), 0);
  linli_pg_free(pg);
}

static void test_txn_cancel(void) {
  linli_pg_t *pg = connect_or_fail();
  char err[512] = "";
  struct count_ctx c = {
      .fail_until = 1000, .cancel_at = 4, .result = LINLI_OK, .k = "cancel"};
  CU_ASSERT_EQUAL(linli_pg_txn(pg, fn_counted, &c, 0, err, sizeof err),
                  LINLI_ERR_TRANSIENT);
  CU_ASSERT_EQUAL(c.calls, 4);
  CU_ASSERT_EQUAL(count_rows(pg, "cancel"), 0);
  linli_pg_free(pg);
}

static int fn_nested(linli_pg_t *pg, void *arg, char *err, size_t errlen) {
  int *rc = arg;
  struct count_ctx c = {.result = LINLI_OK, .k = "nested"};
  *rc = linli_pg_txn(pg, fn_counted, &c, 1, err, errlen);
  return LINLI_OK;
}

static void test_txn_rollback(void) {
  linli_pg_t *pg = connect_or_fail();
  char err[512] = "";
  /* fn's error rolls back and comes back as is, without a retry. */
  struct count_ctx c = {.result = LINLI_ERR_INVALID, .k = "rolled"};
  CU_ASSERT_EQUAL(linli_pg_txn(pg, fn_counted, &c, 0, err, sizeof err),
                  LINLI_ERR_INVALID);
  CU_ASSERT_EQUAL(c.calls, 1);
  CU_ASSERT_EQUAL(count_rows(pg, "rolled"), 0);

  /* A conflict from fn is not retried either. */
  CU_ASSERT_EQUAL_FATAL(insert_row(pg, "dup", "v", err, sizeof err), LINLI_OK);
  struct count_ctx d = {.result = LINLI_OK, .k = "dup"};
  CU_ASSERT_EQUAL(linli_pg_txn(pg, fn_counted, &d, 0, err, sizeof err),
                  LINLI_ERR_CONFLICT);
  CU_ASSERT_EQUAL(d.calls, 1);
  linli_pg_free(pg);
}

/* Swallows a statement error and returns OK: the server rolls back at
 * COMMIT, and the helper must not report success. */
static int fn_swallow(linli_pg_t *pg, void *arg, char *err, size_t errlen) {
  (void)arg;
  CU_ASSERT_EQUAL(insert_row(pg, "swallow", "v", err, errlen), LINLI_OK);
  CU_ASSERT_EQUAL(insert_row(pg, "swallow", "v", err, errlen),
                  LINLI_ERR_CONFLICT);
  return LINLI_OK; /* ignores the error */
}

static void test_txn_swallowed_error(void) {
  linli_pg_t *pg = connect_or_fail();
  char err[512] = "";
  CU_ASSERT_EQUAL(linli_pg_txn(pg, fn_swallow, NULL, 0, err, sizeof err),
                  LINLI_ERR_INVALID);
  CU_ASSERT_EQUAL(count_rows(pg, "swallow"), 0);
  /* The connection is usable afterwards, outside any transaction. */
  CU_ASSERT_EQUAL(PQtransactionStatus(linli_pg_conn(pg)), PQTRANS_IDLE);
  int nested_rc = 0;
  CU_ASSERT_EQUAL(linli_pg_txn(pg, fn_nested, &nested_rc, 1, err, sizeof err),
                  LINLI_OK);
  CU_ASSERT_EQUAL(nested_rc, LINLI_ERR_INVALID);
  linli_pg_free(pg);
}


/* A statement first prepared inside a pipeline after an earlier statement
 * of the same pipeline failed: the server skips that prepare, and the
 * statement must be prepared again on its next use, not reported as
 * missing ("prepared statement ... does not exist"). */
static void test_pipeline_prepare_skipped(void) {
  linli_pg_t *pg = connect_or_fail();
  char err[512] = "";
  char name[128];
  snprintf(name, sizeof name, "late_%s", g_run);
  CU_ASSERT_EQUAL_FATAL(linli_pg_pipeline_enter(pg, err, sizeof err),
                        LINLI_OK);
  CU_ASSERT_EQUAL_FATAL(linli_pg_prepare(pg, name, "SELECT $1::int + 1", 1),
                        LINLI_OK);
  CU_ASSERT_EQUAL(linli_pg_pipeline_send_sql(pg, "SELECT 1/0", 0, NULL, err,
                                             sizeof err),
                  LINLI_OK);
  const char *one[1] = {"1"};
  CU_ASSERT_EQUAL(linli_pg_pipeline_send(pg, name, 1, one, err, sizeof err),
                  LINLI_OK);
  CU_ASSERT_NOT_EQUAL(linli_pg_pipeline_next(pg, NULL, err, sizeof err),
                      LINLI_OK); /* division by zero */
  CU_ASSERT_NOT_EQUAL(linli_pg_pipeline_exit(pg, err, sizeof err), LINLI_OK);
  PGresult *res = NULL;
  CU_ASSERT_EQUAL(linli_pg_exec_prepared(pg, name, 1, one, &res, err,
                                         sizeof err),
                  LINLI_OK);
  if (res != NULL)
    CU_ASSERT_STRING_EQUAL(PQgetvalue(res, 0, 0), "2");
  PQclear(res);
  linli_pg_free(pg);
}

/* ------------------------------------------------------------------------ */
/* Outage: a TCP proxy in front of PostgreSQL that the test can take down    */
/* ------------------------------------------------------------------------ */

/* The dev PostgreSQL must keep running for everyone else, so an outage is
 * played by a proxy: while it is down, open sessions are cut and new
 * connections are refused, which is what a client sees of a stopped
 * server. */
#define PROXY_MAX_PAIRS 8

struct proxy {
  pthread_t thread;
  int port;                   /* the proxy's port (fixed across restarts) */
  char target_host[64];
  int target_port;
  int listen_fd;              /* -1 while down */
  int pairs[PROXY_MAX_PAIRS][2]; /* client fd, server fd; -1 when free */
  atomic_int stop;
  atomic_llong down_until_ms; /* down while now < down_until_ms */
};

static int proxy_listen(struct proxy *p) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0)
    return -1;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)p->port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t alen = sizeof a;
  if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 8) != 0 ||
      getsockname(fd, (struct sockaddr *)&a, &alen) != 0) {
    close(fd);
    return -1;
  }
  p->port = ntohs(a.sin_port);
  return fd;
}

static int proxy_dial(const struct proxy *p) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0)
    return -1;
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)p->target_port)};
  if (inet_pton(AF_INET, p->target_host, &a.sin_addr) != 1 ||
      connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

static void proxy_close_pair(struct proxy *p, int i) {
  close(p->pairs[i][0]);
  close(p->pairs[i][1]);
  p->pairs[i][0] = p->pairs[i][1] = -1;
}

static void *proxy_main(void *arg) {
  struct proxy *p = arg;
  while (!atomic_load(&p->stop)) {
    int down = linli_test_now_ms() < atomic_load(&p->down_until_ms);
    if (down && p->listen_fd >= 0) {
      close(p->listen_fd);
      p->listen_fd = -1;
      for (int i = 0; i < PROXY_MAX_PAIRS; i++)
        if (p->pairs[i][0] >= 0)
          proxy_close_pair(p, i);
    } else if (!down && p->listen_fd < 0) {
      p->listen_fd = proxy_listen(p);
    }
    struct pollfd fds[1 + 2 * PROXY_MAX_PAIRS];
    int n = 0;
    if (p->listen_fd >= 0)
      fds[n++] = (struct pollfd){.fd = p->listen_fd, .events = POLLIN};
    for (int i = 0; i < PROXY_MAX_PAIRS; i++) {
      if (p->pairs[i][0] < 0)
        continue;
      fds[n++] = (struct pollfd){.fd = p->pairs[i][0], .events = POLLIN};
      fds[n++] = (struct pollfd){.fd = p->pairs[i][1], .events = POLLIN};
    }
    if (poll(fds, (nfds_t)n, 20) <= 0)
      continue;
    for (int k = 0; k < n; k++) {
      if (fds[k].revents == 0)
        continue;
      if (fds[k].fd == p->listen_fd) {
        int c = accept(p->listen_fd, NULL, NULL);
        int s = c >= 0 ? proxy_dial(p) : -1;
        int slot = -1;
        for (int i = 0; i < PROXY_MAX_PAIRS && slot < 0; i++)
          if (p->pairs[i][0] < 0)
            slot = i;
        if (c < 0 || s < 0 || slot < 0) {
          if (c >= 0)
            close(c);
          if (s >= 0)
            close(s);
          continue;
        }
        p->pairs[slot][0] = c;
        p->pairs[slot][1] = s;
        continue;
      }
      for (int i = 0; i < PROXY_MAX_PAIRS; i++) {
        for (int side = 0; side < 2; side++) {
          if (p->pairs[i][side] != fds[k].fd)
            continue;
          char buf[16384];
          ssize_t got = read(fds[k].fd, buf, sizeof buf);
          ssize_t off = 0;
          while (got > 0 && off < got) {
            ssize_t w = write(p->pairs[i][1 - side], buf + off,
                              (size_t)(got - off));
            if (w <= 0)
              break;
            off += w;
          }
          if (got <= 0 || off < got)
            proxy_close_pair(p, i);
          side = 2; /* fd handled */
          i = PROXY_MAX_PAIRS;
        }
      }
    }
  }
  if (p->listen_fd >= 0)
    close(p->listen_fd);
  for (int i = 0; i < PROXY_MAX_PAIRS; i++)
    if (p->pairs[i][0] >= 0)
      proxy_close_pair(p, i);
  return NULL;
}

/* Start the proxy towards the host/port of g_conninfo. */
static int proxy_start(struct proxy *p) {
  memset(p, 0, sizeof *p);
  snprintf(p->target_host, sizeof p->target_host, "127.0.0.1");
  p->target_port = 5432;
  PQconninfoOption *opts = PQconninfoParse(g_conninfo, NULL);
  for (PQconninfoOption *o = opts; o != NULL && o->keyword != NULL; o++) {
    if (o->val == NULL || o->val[0] == '\0')
      continue;
    if (strcmp(o->keyword, "host") == 0 || strcmp(o->keyword, "hostaddr") == 0)
      snprintf(p->target_host, sizeof p->target_host, "%s", o->val);
    else if (strcmp(o->keyword, "port") == 0)
      p->target_port = atoi(o->val);
  }
  PQconninfoFree(opts);
  if (strcmp(p->target_host, "localhost") == 0)
    snprintf(p->target_host, sizeof p->target_host, "127.0.0.1");
  for (int i = 0; i < PROXY_MAX_PAIRS; i++)
    p->pairs[i][0] = p->pairs[i][1] = -1;
  p->listen_fd = proxy_listen(p);
  if (p->listen_fd < 0)
    return -1;
  if (pthread_create(&p->thread, NULL, proxy_main, p) != 0) {
    close(p->listen_fd);
    return -1;
  }
  return 0;
}

static void proxy_stop(struct proxy *p) {
  atomic_store(&p->stop, 1);
  pthread_join(p->thread, NULL);
}

struct outage_ctx {
  int calls;
};

static int fn_outage(linli_pg_t *pg, void *arg, char *err, size_t errlen) {
  struct outage_ctx *c = arg;
  c->calls++;
  return insert_row(pg, "outage", "v", err, errlen);
}

static void test_txn_waits_out_outage(void) {
  struct proxy p;
  if (proxy_start(&p) != 0) {
    CU_FAIL("proxy start");
    return;
  }
  /* Later keywords override earlier ones in a conninfo string. */
  char conninfo[640];
  snprintf(conninfo, sizeof conninfo, "%s host=127.0.0.1 port=%d", g_conninfo,
           p.port);
  linli_pg_t *pg = NULL;
  char err[512] = "";
  int rc = linli_pg_connect(conninfo, 1000, &pg, err, sizeof err);
  if (rc != LINLI_OK)
    fprintf(stderr, "connect through proxy: %s\n", err);
  CU_ASSERT_EQUAL(rc, LINLI_OK);
  if (rc == LINLI_OK) {
    CU_ASSERT_EQUAL(linli_pg_exec(pg, "SELECT 1", 0, NULL, NULL, err,
                                  sizeof err),
                    LINLI_OK);
    /* The server "stops" for 2.5 s: longer than the 1 s connect timeout,
     * so linli_pg_txn has to keep retrying the reconnect itself. */
    int64_t t0 = linli_test_now_ms();
    atomic_store(&p.down_until_ms, t0 + 2500);
    struct timespec ts = {0, 100 * 1000000L};
    nanosleep(&ts, NULL);
    struct outage_ctx c = {0};
    rc = linli_pg_txn(pg, fn_outage, &c, 0, err, sizeof err);
    int64_t took = linli_test_now_ms() - t0;
    if (rc != LINLI_OK)
      fprintf(stderr, "txn through outage: %s\n", err);
    CU_ASSERT_EQUAL(rc, LINLI_OK);
    CU_ASSERT_TRUE(took >= 2400);
    CU_ASSERT_EQUAL(c.calls, 1); /* fn never ran while the server was away */
    CU_ASSERT_EQUAL(count_rows(pg, "outage"), 1);
  }
  linli_pg_free(pg);
  proxy_stop(&p);
}

int linli_test_register(void) {
  CU_pSuite suite = CU_add_suite("pg", suite_init, suite_cleanup);
  if (suite == NULL)
    return -1;
  if (CU_add_test(suite, "connect and exec", test_connect_exec) == NULL ||
      CU_add_test(suite, "connect failures", test_connect_failures) == NULL ||
      CU_add_test(suite, "prepare and error mapping",
                  test_prepare_and_errors) == NULL ||
      CU_add_test(suite, "reconnect outside txn",
                  test_reconnect_outside_txn) == NULL ||
      CU_add_test(suite, "txn survives lost connection",
                  test_txn_lost_connection) == NULL ||
      CU_add_test(suite, "txn retries serialization failure",
                  test_txn_serialization_failure) == NULL ||
      CU_add_test(suite, "txn forced retry and max_attempts",
                  test_txn_forced_retry) == NULL ||
      CU_add_test(suite, "txn cancel", test_txn_cancel) == NULL ||
      CU_add_test(suite, "pipeline: a prepare skipped after an error",
                  test_pipeline_prepare_skipped) == NULL ||
      CU_add_test(suite, "txn waits out an outage",
                  test_txn_waits_out_outage) == NULL ||
      CU_add_test(suite, "txn rollback on fn error", test_txn_rollback) ==
          NULL ||
      CU_add_test(suite, "txn swallowed error and nesting",
                  test_txn_swallowed_error) == NULL)
    return -1;
  return 0;
}
