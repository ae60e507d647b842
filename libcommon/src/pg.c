/*
 * pg.c - the PostgreSQL connection behind linli's record.
 *
 * One libpq connection per linli_pg_t (not thread-safe: one per thread).
 * A lost connection is replaced lazily, before the next statement, with
 * retry and backoff (100 ms doubling to 2 s) bounded by the connect timeout
 * - except inside linli_pg_txn, where a silent reconnect would run the rest
 * of the transaction's statements in autocommit: there the statement fails
 * with LINLI_ERR_TRANSIENT and the transaction helper starts over. (A
 * transaction opened by hand with linli_pg_exec("BEGIN") gets no such
 * protection: use linli_pg_txn.)
 *
 * Prepared statements live in a registry and are prepared again on a new
 * connection just before their first use there (a connection generation
 * counter tells which session a statement was prepared on).
 *
 * Errors map by SQLSTATE: serialization failure / deadlock and every kind
 * of lost connection are transient, a unique violation is a conflict, the
 * rest is invalid input. SQL is always constant text with $n parameters.
 */
#include "linli/pg.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "linli/clock.h"
#include "linli/error.h"
#include "linli/log.h"

/* ------------------------------------------------------------------------ */
/* Types and constants                                                       */
/* ------------------------------------------------------------------------ */

#define PG_BACKOFF_FIRST_MS 100
#define PG_BACKOFF_MAX_MS 2000
#define PG_SLEEP_SLICE_MS 50
/* libpq's own minimum for connect_timeout, in seconds. */
#define PG_MIN_CONNECT_TIMEOUT_S 2

typedef struct pg_stmt {
  char *name;
  char *sql;
  int nparams;
  uint64_t prepared_gen;      /* pg->gen it was prepared on; 0 = never */
  struct pg_stmt *next;
} pg_stmt_t;

struct linli_pg {
  char *conninfo;
  int conninfo_has_timeout;   /* conninfo sets connect_timeout itself */
  int connect_timeout_ms;
  PGconn *conn;               /* NULL or CONNECTION_BAD while disconnected */
  uint64_t gen;               /* bumped on every new connection */
  pg_stmt_t *stmts;           /* registry, owned */
  const char *begin_sql;      /* one of the constants below */
  int in_txn;                 /* inside linli_pg_txn's BEGIN..COMMIT */
  int pipe;                   /* in pipeline mode (linli_pg_pipeline_*) */
  int pipe_unflushed;         /* sent since the last flush request */
  unsigned char *pipe_q;      /* per queued command: 1 = our own prepare */
  pg_stmt_t **pipe_stmt;      /* per queued command: the statement our own
                                 prepare is for (NULL: a user command) */
  size_t pipe_head, pipe_n, pipe_cap;
  size_t pipe_user;           /* queued commands that are the caller's */
  volatile sig_atomic_t cancel; /* set from a signal handler */
};

static const char BEGIN_READ_COMMITTED[] =
    "BEGIN ISOLATION LEVEL READ COMMITTED";
static const char BEGIN_REPEATABLE_READ[] =
    "BEGIN ISOLATION LEVEL REPEATABLE READ";
static const char BEGIN_SERIALIZABLE[] = "BEGIN ISOLATION LEVEL SERIALIZABLE";

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */
/* ------------------------------------------------------------------------ */

static void set_err(char *err, size_t errlen, const char *fmt, const char *a,
                    const char *b) {
  if (err != NULL && errlen > 0)
    snprintf(err, errlen, fmt, a != NULL ? a : "", b != NULL ? b : "");
}

/* libpq messages end with a newline (and may span lines): keep the first
 * line, which is the message proper. */
static void first_line(char *dst, size_t len, const char *src) {
  if (len == 0)
    return;
  if (src == NULL)
    src = "";
  size_t n = strcspn(src, "\n");
  if (n >= len)
    n = len - 1;
  memcpy(dst, src, n);
  dst[n] = '\0';
}

/* Sleep ms, waking early when retries are cancelled. */
static void sleep_cancellable(linli_pg_t *pg, int64_t ms) {
  while (ms > 0 && !pg->cancel) {
    int64_t slice = ms < PG_SLEEP_SLICE_MS ? ms : PG_SLEEP_SLICE_MS;
    struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)slice * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
      if (pg->cancel)
        return;
    }
    ms -= slice;
  }
}

static int conn_ok(const linli_pg_t *pg) {
  return pg->conn != NULL && PQstatus(pg->conn) == CONNECTION_OK;
}

static void notice_processor(void *arg, const char *message) {
  (void)arg;
  char line[256];
  first_line(line, sizeof line, message);
  /* Notices may quote data: debug level only. */
  LINLI_DEBUG("pg notice", "notice=\"%s\"", line);
}

/* ------------------------------------------------------------------------ */
/* Error mapping                                                             */
/* ------------------------------------------------------------------------ */

static int sqlstate_code(const char *state) {
  if (state == NULL)
    return LINLI_ERR_INVALID;
  if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0)
    return LINLI_ERR_TRANSIENT; /* serialization failure, deadlock */
  if (strncmp(state, "08", 2) == 0)
    return LINLI_ERR_TRANSIENT; /* connection exception */
  if (strcmp(state, "57P01") == 0 || strcmp(state, "57P02") == 0 ||
      strcmp(state, "57P03") == 0)
    return LINLI_ERR_TRANSIENT; /* admin/crash shutdown, cannot connect now */
  if (strcmp(state, "23505") == 0)
    return LINLI_ERR_CONFLICT; /* unique violation */
  return LINLI_ERR_INVALID;
}

/* Turn a result into a linli code and "SQLSTATE: message". A failure that
 * libpq detected itself (no SQLSTATE, connection gone) reports 08006
 * (connection_failure). Consumes res unless it is handed to *out. */
static int finish(linli_pg_t *pg, PGresult *res, PGresult **out, char *err,
                  size_t errlen) {
  if (out != NULL)
    *out = NULL;
  ExecStatusType st = res != NULL ? PQresultStatus(res) : PGRES_FATAL_ERROR;
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
    if (out != NULL)
      *out = res;
    else
      PQclear(res);
    return LINLI_OK;
  }
  const char *state =
      res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
  const char *msg =
      res != NULL ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
  int bad = !conn_ok(pg);
  int rc = bad ? LINLI_ERR_TRANSIENT : sqlstate_code(state);
  char line[512];
  if (msg != NULL)
    first_line(line, sizeof line, msg);
  else if (res != NULL && PQresultErrorMessage(res)[0] != '\0')
    first_line(line, sizeof line, PQresultErrorMessage(res));
  else
    first_line(line, sizeof line,
               pg->conn != NULL ? PQerrorMessage(pg->conn) : "no connection");
  if (state == NULL)
    state = bad ? "08006" : "XX000";
  set_err(err, errlen, "%s: %s", state, line);
  PQclear(res);
  return rc;
}

/* ------------------------------------------------------------------------ */
/* Connection                                                                */
/* ------------------------------------------------------------------------ */

static PGconn *connect_once(linli_pg_t *pg, int64_t attempt_ms) {
  char timeout_s[24];
  int64_t secs = (attempt_ms + 999) / 1000;
  if (secs < PG_MIN_CONNECT_TIMEOUT_S)
    secs = PG_MIN_CONNECT_TIMEOUT_S;
  snprintf(timeout_s, sizeof timeout_s, "%lld", (long long)secs);
  /* expand_dbname: the conninfo string (or URI) in "dbname" is expanded;
   * connect_timeout after it bounds an attempt against a silent host,
   * unless the conninfo chose its own. */
  const char *keys[3] = {"dbname", NULL, NULL};
  const char *vals[3] = {pg->conninfo, NULL, NULL};
  if (!pg->conninfo_has_timeout) {
    keys[1] = "connect_timeout";
    vals[1] = timeout_s;
  }
  return PQconnectdbParams(keys, vals, 1);
}

/* (Re)connect with backoff for up to the connect timeout. */
static int pg_open(linli_pg_t *pg, char *err, size_t errlen) {
  if (pg->conn != NULL) {
    PQfinish(pg->conn);
    pg->conn = NULL;
  }
  int64_t deadline = linli_clock_mono_ms() +
                     (pg->connect_timeout_ms > 0 ? pg->connect_timeout_ms : 0);
  int64_t backoff = PG_BACKOFF_FIRST_MS;
  int attempts = 0;
  char line[512] = "";
  for (;;) {
    attempts++;
    PGconn *c = connect_once(pg, deadline - linli_clock_mono_ms());
    if (c == NULL) {
      set_err(err, errlen, "%s: %s", "08006", "out of memory");
      return LINLI_ERR_NOMEM;
    }
    if (PQstatus(c) == CONNECTION_OK) {
      PQsetNoticeProcessor(c, notice_processor, NULL);
      pg->pipe = 0;
      pg->pipe_head = pg->pipe_n = pg->pipe_user = 0;
      pg->conn = c;
      pg->gen++;
      if (attempts > 1)
        LINLI_INFO("pg connected", "attempts=%d", attempts);
      return LINLI_OK;
    }
    first_line(line, sizeof line, PQerrorMessage(c));
    PQfinish(c);
    int64_t now = linli_clock_mono_ms();
    if (now >= deadline || pg->cancel) {
      /* conninfo may hold a password: log the attempt count only */
      LINLI_WARN("pg unreachable", "attempts=%d", attempts);
      set_err(err, errlen, "%s: %s", "08001", line);
      return LINLI_ERR_TRANSIENT;
    }
    sleep_cancellable(pg, backoff < deadline - now ? backoff : deadline - now);
    backoff = backoff * 2 > PG_BACKOFF_MAX_MS ? PG_BACKOFF_MAX_MS : backoff * 2;
  }
}

/* A usable connection before a statement. */
static int pg_ensure(linli_pg_t *pg, char *err, size_t errlen) {
  if (conn_ok(pg))
    return LINLI_OK;
  if (pg->in_txn) {
    /* The server rolled the transaction back with the session; what runs
     * next must not run outside it. linli_pg_txn starts over. */
    set_err(err, errlen, "%s: %s", "08003",
            "connection lost inside a transaction");
    return LINLI_ERR_TRANSIENT;
  }
  if (pg->conn != NULL)
    LINLI_WARN("pg connection lost", "%s", "reconnect=1");
  return pg_open(pg, err, errlen);
}

int linli_pg_connect(const char *conninfo, int connect_timeout_ms,
                     linli_pg_t **out, char *err, size_t errlen) {
  if (conninfo == NULL || out == NULL) {
    set_err(err, errlen, "%s%s", "pg connect: bad arguments", NULL);
    return LINLI_ERR_INVALID;
  }
  *out = NULL;
  /* A malformed conninfo is a configuration error: no point retrying. */
  char *perr = NULL;
  PQconninfoOption *opts = PQconninfoParse(conninfo, &perr);
  if (opts == NULL) {
    char line[256];
    first_line(line, sizeof line, perr != NULL ? perr : "out of memory");
    set_err(err, errlen, "pg conninfo: %s%s", line, NULL);
    PQfreemem(perr);
    return perr != NULL ? LINLI_ERR_CONFIG : LINLI_ERR_NOMEM;
  }
  int has_timeout = 0;
  for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
    if (strcmp(o->keyword, "connect_timeout") == 0 && o->val != NULL &&
        o->val[0] != '\0')
      has_timeout = 1;
  }
  PQconninfoFree(opts);

  int rc = LINLI_ERR_NOMEM;
  linli_pg_t *pg = calloc(1, sizeof *pg);
  if (pg == NULL)
    goto err;
  pg->conninfo = strdup(conninfo);
  if (pg->conninfo == NULL)
    goto err;
  pg->conninfo_has_timeout = has_timeout;
  pg->connect_timeout_ms = connect_timeout_ms;
  pg->begin_sql = BEGIN_READ_COMMITTED;
  rc = pg_open(pg, err, errlen);
  if (rc != LINLI_OK)
    goto err_quiet;
  *out = pg;
  return LINLI_OK;
err:
  set_err(err, errlen, "%s%s", "pg connect: out of memory", NULL);
err_quiet:
  linli_pg_free(pg);
  return rc;
}

void linli_pg_free(linli_pg_t *pg) {
  if (pg == NULL)
    return;
  if (pg->conn != NULL)
    PQfinish(pg->conn);
  free(pg->pipe_q);
  free(pg->pipe_stmt);
  pg_stmt_t *s = pg->stmts;
  while (s != NULL) {
    pg_stmt_t *next = s->next;
    free(s->name);
    free(s->sql);
    free(s);
    s = next;
  }
  free(pg->conninfo);
  free(pg);
}

PGconn *linli_pg_conn(linli_pg_t *pg) { return pg != NULL ? pg->conn : NULL; }

void linli_pg_cancel_retries(linli_pg_t *pg) {
  if (pg != NULL)
    pg->cancel = 1;
}

int linli_pg_set_isolation(linli_pg_t *pg, const char *level) {
  if (pg == NULL || level == NULL)
    return LINLI_ERR_INVALID;
  /* Mapped onto constant statements: the level never becomes SQL text. */
  if (strcasecmp(level, "READ COMMITTED") == 0)
    pg->begin_sql = BEGIN_READ_COMMITTED;
  else if (strcasecmp(level, "REPEATABLE READ") == 0)
    pg->begin_sql = BEGIN_REPEATABLE_READ;
  else if (strcasecmp(level, "SERIALIZABLE") == 0)
    pg->begin_sql = BEGIN_SERIALIZABLE;
  else
    return LINLI_ERR_INVALID;
  return LINLI_OK;
}

/* ------------------------------------------------------------------------ */
/* Statements                                                                */
/* ------------------------------------------------------------------------ */

static pg_stmt_t *stmt_find(linli_pg_t *pg, const char *name) {
  for (pg_stmt_t *s = pg->stmts; s != NULL; s = s->next) {
    if (strcmp(s->name, name) == 0)
      return s;
  }
  return NULL;
}

/* Prepare s on the current connection (which must be usable). */
static int stmt_prepare(linli_pg_t *pg, pg_stmt_t *s, char *err,
                        size_t errlen) {
  PGresult *res = PQprepare(pg->conn, s->name, s->sql, s->nparams, NULL);
  int rc = finish(pg, res, NULL, err, errlen);
  if (rc == LINLI_OK)
    s->prepared_gen = pg->gen;
  return rc;
}

int linli_pg_prepare(linli_pg_t *pg, const char *name, const char *sql,
                     int nparams) {
  if (pg == NULL || name == NULL || name[0] == '\0' || sql == NULL ||
      nparams < 0)
    return LINLI_ERR_INVALID;
  char err[512];
  pg_stmt_t *s = stmt_find(pg, name);
  if (s != NULL) {
    if (strcmp(s->sql, sql) != 0 || s->nparams != nparams) {
      LINLI_ERROR("pg statement redefined", "name=%s", name);
      return LINLI_ERR_INVALID;
    }
  } else {
    s = calloc(1, sizeof *s);
    if (s == NULL)
      return LINLI_ERR_NOMEM;
    s->name = strdup(name);
    s->sql = strdup(sql);
    if (s->name == NULL || s->sql == NULL) {
      free(s->name);
      free(s->sql);
      free(s);
      return LINLI_ERR_NOMEM;
    }
    s->nparams = nparams;
    s->next = pg->stmts;
    pg->stmts = s;
  }
  if ((s->prepared_gen == pg->gen && conn_ok(pg)) || pg->pipe)
    return LINLI_OK; /* in a pipeline: prepared when first sent */
  int rc = pg_ensure(pg, err, sizeof err);
  if (rc == LINLI_OK)
    rc = stmt_prepare(pg, s, err, sizeof err);
  if (rc == LINLI_OK || rc == LINLI_ERR_TRANSIENT) {
    /* TRANSIENT: stays registered and is prepared before its first use
     * once the server is back. */
    if (rc != LINLI_OK)
      LINLI_WARN("pg prepare deferred", "name=%s err=\"%s\"", name, err);
    return rc;
  }
  /* The server rejected the SQL: forget it, so that a fixed definition
   * can be registered under the same name. */
  LINLI_ERROR("pg prepare failed", "name=%s err=\"%s\"", name, err);
  for (pg_stmt_t **p = &pg->stmts; *p != NULL; p = &(*p)->next) {
    if (*p == s) {
      *p = s->next;
      break;
    }
  }
  free(s->name);
  free(s->sql);
  free(s);
  return rc;
}

int linli_pg_exec_prepared(linli_pg_t *pg, const char *name, int nparams,
                           const char *const *params, PGresult **res,
                           char *err, size_t errlen) {
  if (res != NULL)
    *res = NULL;
  if (pg == NULL || name == NULL || nparams < 0 ||
      (nparams > 0 && params == NULL)) {
    set_err(err, errlen, "%s%s", "pg exec: bad arguments", NULL);
    return LINLI_ERR_INVALID;
  }
  pg_stmt_t *s = stmt_find(pg, name);
  if (s == NULL || s->nparams != nparams) {
    set_err(err, errlen, "pg exec: %s: %s", name,
            s == NULL ? "no such prepared statement" : "wrong parameter count");
    return LINLI_ERR_INVALID;
  }
  int rc = pg_ensure(pg, err, errlen);
  if (rc != LINLI_OK)
    return rc;
  if (s->prepared_gen != pg->gen) {
    rc = stmt_prepare(pg, s, err, errlen);
    if (rc != LINLI_OK)
      return rc;
  }
  PGresult *r =
      PQexecPrepared(pg->conn, s->name, nparams, params, NULL, NULL, 0);
  return finish(pg, r, res, err, errlen);
}

int linli_pg_exec(linli_pg_t *pg, const char *sql, int nparams,
                  const char *const *params, PGresult **res, char *err,
                  size_t errlen) {
  if (res != NULL)
    *res = NULL;
  if (pg == NULL || sql == NULL || nparams < 0 ||
      (nparams > 0 && params == NULL)) {
    set_err(err, errlen, "%s%s", "pg exec: bad arguments", NULL);
    return LINLI_ERR_INVALID;
  }
  int rc = pg_ensure(pg, err, errlen);
  if (rc != LINLI_OK)
    return rc;
  PGresult *r =
      PQexecParams(pg->conn, sql, nparams, NULL, params, NULL, NULL, 0);
  return finish(pg, r, res, err, errlen);
}

/* ------------------------------------------------------------------------ */
/* Pipeline mode                                                             */
/* ------------------------------------------------------------------------ */

/* Lost connection in a pipeline: nothing more can be read; the next
 * pg_ensure reconnects (outside the transaction). */
static int pipe_lost(linli_pg_t *pg, char *err, size_t errlen) {
  pg->pipe = 0;
  pg->pipe_head = pg->pipe_n = pg->pipe_user = 0;
  pg->pipe_unflushed = 0;
  return finish(pg, NULL, NULL, err, errlen);
}

/* internal: our own prepare of s (NULL for a user command). */
static int pipe_push(linli_pg_t *pg, unsigned char internal, pg_stmt_t *s) {
  if (pg->pipe_n == 0)
    pg->pipe_head = 0;
  if (pg->pipe_head + pg->pipe_n == pg->pipe_cap) {
    size_t cap = pg->pipe_cap ? pg->pipe_cap * 2 : 256;
    unsigned char *q = realloc(pg->pipe_q, cap);
    if (q == NULL)
      return LINLI_ERR_NOMEM;
    pg->pipe_q = q;
    pg_stmt_t **st = realloc(pg->pipe_stmt, cap * sizeof *st);
    if (st == NULL)
      return LINLI_ERR_NOMEM;
    pg->pipe_stmt = st;
    pg->pipe_cap = cap;
  }
  pg->pipe_stmt[pg->pipe_head + pg->pipe_n] = s;
  pg->pipe_q[pg->pipe_head + pg->pipe_n++] = internal;
  if (!internal)
    pg->pipe_user++;
  pg->pipe_unflushed = 1;
  return LINLI_OK;
}

int linli_pg_pipeline_enter(linli_pg_t *pg, char *err, size_t errlen) {
  if (pg == NULL || pg->pipe) {
    set_err(err, errlen, "%s%s", "pg pipeline: bad state", NULL);
    return LINLI_ERR_INVALID;
  }
  int rc = pg_ensure(pg, err, errlen);
  if (rc != LINLI_OK)
    return rc;
  if (PQenterPipelineMode(pg->conn) != 1)
    return finish(pg, NULL, NULL, err, errlen);
  pg->pipe = 1;
  pg->pipe_head = pg->pipe_n = pg->pipe_user = 0;
  pg->pipe_unflushed = 0;
  return LINLI_OK;
}

int linli_pg_pipeline_send(linli_pg_t *pg, const char *name, int nparams,
                           const char *const *params, char *err,
                           size_t errlen) {
  if (pg == NULL || !pg->pipe || name == NULL || nparams < 0 ||
      (nparams > 0 && params == NULL)) {
    set_err(err, errlen, "%s%s", "pg pipeline send: bad arguments", NULL);
    return LINLI_ERR_INVALID;
  }
  pg_stmt_t *s = stmt_find(pg, name);
  if (s == NULL || s->nparams != nparams) {
    set_err(err, errlen, "pg exec: %s: %s", name,
            s == NULL ? "no such prepared statement" : "wrong parameter count");
    return LINLI_ERR_INVALID;
  }
  if (!conn_ok(pg))
    return pipe_lost(pg, err, errlen);
  if (s->prepared_gen != pg->gen) {
    if (PQsendPrepare(pg->conn, s->name, s->sql, s->nparams, NULL) != 1)
      return pipe_lost(pg, err, errlen);
    int rc = pipe_push(pg, 1, s);
    if (rc != LINLI_OK)
      return rc;
    s->prepared_gen = pg->gen; /* a failure shows in its result */
  }
  if (PQsendQueryPrepared(pg->conn, s->name, nparams, params, NULL, NULL,
                          0) != 1)
    return conn_ok(pg) ? finish(pg, NULL, NULL, err, errlen)
                       : pipe_lost(pg, err, errlen);
  return pipe_push(pg, 0, NULL);
}

int linli_pg_pipeline_send_sql(linli_pg_t *pg, const char *sql, int nparams,
                               const char *const *params, char *err,
                               size_t errlen) {
  if (pg == NULL || !pg->pipe || sql == NULL || nparams < 0 ||
      (nparams > 0 && params == NULL)) {
    set_err(err, errlen, "%s%s", "pg pipeline send: bad arguments", NULL);
    return LINLI_ERR_INVALID;
  }
  if (!conn_ok(pg))
    return pipe_lost(pg, err, errlen);
  if (PQsendQueryParams(pg->conn, sql, nparams, NULL, params, NULL, NULL,
                        0) != 1)
    return conn_ok(pg) ? finish(pg, NULL, NULL, err, errlen)
                       : pipe_lost(pg, err, errlen);
  return pipe_push(pg, 0, NULL);
}

size_t linli_pg_pipeline_pending(const linli_pg_t *pg) {
  return pg != NULL ? pg->pipe_user : 0;
}

/* The next queued command's result (and the NULL that ends it). */
static int pipe_read(linli_pg_t *pg, PGresult **out, char *err,
                     size_t errlen) {
  if (pg->pipe_unflushed) {
    if (PQsendFlushRequest(pg->conn) != 1 || PQflush(pg->conn) != 0)
      return pipe_lost(pg, err, errlen);
    pg->pipe_unflushed = 0;
  }
  PGresult *r = PQgetResult(pg->conn);
  if (r == NULL)
    return pipe_lost(pg, err, errlen);
  PGresult *extra;
  while ((extra = PQgetResult(pg->conn)) != NULL)
    PQclear(extra);
  pg_stmt_t *prepared = pg->pipe_stmt[pg->pipe_head];
  if (!pg->pipe_q[pg->pipe_head])
    pg->pipe_user--;
  pg->pipe_head++;
  pg->pipe_n--;
  /* Our own prepare that did not happen (skipped after an earlier error
   * of the pipeline, or refused): prepare it again on its next use. */
  if (prepared != NULL && PQresultStatus(r) != PGRES_COMMAND_OK)
    prepared->prepared_gen = 0;
  if (PQresultStatus(r) == PGRES_PIPELINE_ABORTED) {
    PQclear(r);
    set_err(err, errlen, "%s: %s", "25P02",
            "skipped: an earlier statement of the pipeline failed");
    return LINLI_ERR_INVALID;
  }
  return finish(pg, r, out, err, errlen);
}

int linli_pg_pipeline_next(linli_pg_t *pg, PGresult **res, char *err,
                           size_t errlen) {
  if (res != NULL)
    *res = NULL;
  if (pg == NULL || !pg->pipe || pg->pipe_n == 0) {
    set_err(err, errlen, "%s%s", "pg pipeline: nothing queued", NULL);
    return LINLI_ERR_INVALID;
  }
  for (;;) {
    int internal = pg->pipe_q[pg->pipe_head];
    int rc = pipe_read(pg, internal ? NULL : res, err, errlen);
    if (!internal || rc != LINLI_OK)
      return rc; /* a failed prepare fails the statement it was for */
    if (!pg->pipe || pg->pipe_n == 0)
      return pipe_lost(pg, err, errlen);
  }
}

int linli_pg_pipeline_exit(linli_pg_t *pg, char *err, size_t errlen) {
  if (pg == NULL || !pg->pipe)
    return LINLI_OK;
  if (!conn_ok(pg) || PQpipelineSync(pg->conn) != 1)
    return pipe_lost(pg, err, errlen);
  pg->pipe_unflushed = 0;
  int rc = LINLI_OK;
  char e2[512];
  while (pg->pipe_n > 0) {
    int r = pipe_read(pg, NULL, e2, sizeof e2);
    if (!pg->pipe)
      return pipe_lost(pg, err, errlen);
    if (r != LINLI_OK && rc == LINLI_OK) {
      rc = r;
      set_err(err, errlen, "%s%s", e2, NULL);
    }
  }
  for (;;) {
    PGresult *r = PQgetResult(pg->conn);
    if (r == NULL) {
      if (!conn_ok(pg))
        return pipe_lost(pg, err, errlen);
      continue;
    }
    ExecStatusType st = PQresultStatus(r);
    PQclear(r);
    if (st == PGRES_PIPELINE_SYNC)
      break;
  }
  if (PQexitPipelineMode(pg->conn) != 1)
    return pipe_lost(pg, err, errlen);
  pg->pipe = 0;
  return rc;
}

/* ------------------------------------------------------------------------ */
/* Transactions                                                              */
/* ------------------------------------------------------------------------ */

static void txn_rollback(linli_pg_t *pg) {
  if (!conn_ok(pg) || PQtransactionStatus(pg->conn) == PQTRANS_IDLE)
    return; /* a lost session took its transaction with it */
  PQclear(PQexec(pg->conn, "ROLLBACK"));
}

static int txn_commit(linli_pg_t *pg, char *err, size_t errlen) {
  PGresult *res = PQexec(pg->conn, "COMMIT");
  if (res != NULL && PQresultStatus(res) == PGRES_COMMAND_OK &&
      strcmp(PQcmdStatus(res), "ROLLBACK") == 0) {
    /* COMMIT of a transaction aborted by an earlier error that fn chose
     * to ignore: the server rolled back; do not report success. */
    PQclear(res);
    set_err(err, errlen, "%s: %s", "25P02",
            "transaction was aborted; COMMIT rolled back");
    return LINLI_ERR_INVALID;
  }
  return finish(pg, res, NULL, err, errlen);
}

/* One BEGIN .. fn .. COMMIT. */
static int txn_attempt(linli_pg_t *pg, linli_pg_txn_fn fn, void *arg,
                       char *err, size_t errlen) {
  if (err != NULL && errlen > 0)
    err[0] = '\0'; /* fn may fail without a message */
  int rc = pg_ensure(pg, err, errlen);
  if (rc != LINLI_OK)
    return rc;
  rc = finish(pg, PQexec(pg->conn, pg->begin_sql), NULL, err, errlen);
  if (rc != LINLI_OK)
    return rc;
  pg->in_txn = 1;
  rc = fn(pg, arg, err, errlen);
  if (pg->pipe) { /* fn left a pipeline open: close it before COMMIT */
    char e2[512];
    int prc = linli_pg_pipeline_exit(pg, e2, sizeof e2);
    if (rc == LINLI_OK && prc != LINLI_OK) {
      rc = prc;
      set_err(err, errlen, "%s%s", e2, NULL);
    }
  }
  /*
   * A COMMIT whose reply is lost (connection gone) has an unknown outcome:
   * it is reported transient and fn runs again. That is why fn must be
   * idempotent against its own committed effect (DESIGN.md rule 3: offsets
   * committed in the same transaction, or upserts keyed by event_id).
   */
  if (rc == LINLI_OK && conn_ok(pg))
    rc = txn_commit(pg, err, errlen);
  else if (rc == LINLI_OK)
    rc = finish(pg, NULL, NULL, err, errlen); /* lost: transient */
  if (rc != LINLI_OK)
    txn_rollback(pg);
  pg->in_txn = 0;
  return rc;
}

int linli_pg_txn(linli_pg_t *pg, linli_pg_txn_fn fn, void *arg,
                 int max_attempts, char *err, size_t errlen) {
  if (pg == NULL || fn == NULL || max_attempts < 0 || pg->in_txn) {
    set_err(err, errlen, "%s%s",
            pg != NULL && pg->in_txn ? "pg txn: nested transaction"
                                     : "pg txn: bad arguments",
            NULL);
    return LINLI_ERR_INVALID;
  }
  int64_t backoff = PG_BACKOFF_FIRST_MS;
  for (int attempt = 1;; attempt++) {
    int rc = txn_attempt(pg, fn, arg, err, errlen);
    if (rc != LINLI_ERR_TRANSIENT)
      return rc;
    if ((max_attempts > 0 && attempt >= max_attempts) || pg->cancel)
      return rc;
    /* err starts with the SQLSTATE; the message itself may quote data. */
    LINLI_WARN("pg transaction retry",
               "attempt=%d sqlstate=%.5s backoff_ms=%lld", attempt,
               err != NULL && errlen > 0 ? err : "", (long long)backoff);
    sleep_cancellable(pg, backoff);
    if (pg->cancel)
      return rc;
    backoff = backoff * 2 > PG_BACKOFF_MAX_MS ? PG_BACKOFF_MAX_MS : backoff * 2;
  }
}
