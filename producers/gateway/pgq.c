/*
 * pgq.c - the gateway's non-blocking PostgreSQL reads: libpq's async API
 * on the gateway's libevent loop, over a small pool of connections
 * (GW_PG_CONNS), so a slow or dead database parks only the requests that
 * read from it.
 *
 * Connections are opened with PQconnectStart/PQconnectPoll driven by
 * events on PQsocket; a query is PQsendQueryParams (constant SQL, $n
 * parameters, text results), flushed when the socket is writable and read
 * with PQconsumeInput/PQisBusy/PQgetResult when it is readable. Queries
 * wait in one FIFO for an idle connection. Each gets exactly one callback,
 * from the loop: the tuples, or NULL when the database is unreachable, the
 * query failed (logged) or took longer than GW_PG_TIMEOUT_MS - a
 * connection that overruns is closed (libpq's cancel would block) and
 * opened again. With no connection up or on its way, queries fail at once.
 * A closed connection reconnects on its own timer with backoff (100 ms
 * doubling to 2 s). The result belongs to this module: callbacks read it
 * and never PQclear it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <event2/event.h>
#include <libpq-fe.h>

#include "gateway.h"
#include "linli/error.h"
#include "linli/log.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000
#define CONNECT_TIMEOUT_MS 5000

/* One query: waiting in the FIFO, running on a connection, or failed. */
struct pgq {
  struct pgq *next;
  gw_pg_fn fn;
  void *arg;
  const char *sql; /* constant text */
  int n;
  char **params;   /* n copies (NULL = SQL NULL), one block with the pgq */
  int64_t queued_us;
};

enum { C_DOWN, C_CONNECTING, C_IDLE, C_BUSY };

struct pgc {
  struct gw_pg *P;
  PGconn *c;
  int state;
  int64_t since_us;        /* connect started / query sent */
  struct event *io;        /* while connecting: what PQconnectPoll wants */
  struct event *rev, *wev; /* once connected */
  struct event *retry_ev;
  int backoff_ms;
  int quiet;               /* a failed attempt was logged */
  struct pgq *q;           /* running */
  PGresult *res;           /* its first result */
};

struct gw_pg {
  struct gw *gw;
  char *conninfo;
  struct pgc conns[GW_PG_CONNS];
  struct pgq *head, **tail; /* waiting for a connection */
  struct pgq *failed, **failed_tail;
  struct event *fail_ev, *check_ev;
  int stopping;
};

static int64_t now_us(void) {
  struct timeval tv;
  gettimeofday(&tv, NULL);
  return (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
}

static void dispatch(struct gw_pg *P);

/* ------------------------------------------------------------- answers */

static void fail_later(struct gw_pg *P, struct pgq *q) {
  q->next = NULL;
  *P->failed_tail = q;
  P->failed_tail = &q->next;
  if (P->fail_ev)
    event_active(P->fail_ev, EV_TIMEOUT, 0);
}

static void on_failed(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  struct gw_pg *P = arg;
  struct pgq *q = P->failed;
  P->failed = NULL;
  P->failed_tail = &P->failed;
  while (q) {
    struct pgq *next = q->next;
    q->fn(P->gw, NULL, q->arg);
    free(q);
    q = next;
  }
}

/* ---------------------------------------------------------- connections */

static void on_io(evutil_socket_t fd, short what, void *arg);
static void on_retry(evutil_socket_t fd, short what, void *arg);

static void conn_close(struct pgc *pc) {
  if (pc->io)
    event_free(pc->io);
  if (pc->rev)
    event_free(pc->rev);
  if (pc->wev)
    event_free(pc->wev);
  pc->io = pc->rev = pc->wev = NULL;
  if (pc->res)
    PQclear(pc->res);
  pc->res = NULL;
  if (pc->c)
    PQfinish(pc->c);
  pc->c = NULL;
  pc->state = C_DOWN;
}

/* The connection is lost or given up: its query (if any) answers NULL,
 * and it reconnects after the backoff. */
static void conn_fail(struct pgc *pc, const char *why) {
  struct gw_pg *P = pc->P;
  /* libpq's messages span lines: the first says it. */
  if (!pc->quiet || pc->state != C_CONNECTING)
    LINLI_WARN("postgresql connection lost", "reason=\"%.*s\"",
               (int)strcspn(why, "\n"), why);
  if (pc->state == C_CONNECTING)
    pc->quiet = 1;
  struct pgq *q = pc->q;
  pc->q = NULL;
  conn_close(pc);
  if (q)
    fail_later(P, q);
  if (P->stopping)
    return;
  struct timeval tv = {pc->backoff_ms / 1000, (pc->backoff_ms % 1000) * 1000};
  evtimer_add(pc->retry_ev, &tv);
  pc->backoff_ms *= 2;
  if (pc->backoff_ms > BACKOFF_MAX_MS)
    pc->backoff_ms = BACKOFF_MAX_MS;
}

/* Wait for what PQconnectPoll asked (the socket may change meanwhile). */
static int watch(struct pgc *pc, short what) {
  if (pc->io)
    event_free(pc->io);
  pc->io = event_new(pc->P->gw->base, PQsocket(pc->c), what, on_io, pc);
  return pc->io && event_add(pc->io, NULL) == 0 ? 0 : -1;
}

static void connected(struct pgc *pc) {
  struct gw_pg *P = pc->P;
  event_free(pc->io);
  pc->io = NULL;
  int fd = PQsocket(pc->c);
  /* Read interest stays on while connected: a server that closes an idle
   * connection is noticed at once. */
  pc->rev = event_new(P->gw->base, fd, EV_READ | EV_PERSIST, on_io, pc);
  pc->wev = event_new(P->gw->base, fd, EV_WRITE, on_io, pc);
  if (!pc->rev || !pc->wev || event_add(pc->rev, NULL) != 0) {
    conn_fail(pc, "cannot watch the socket");
    return;
  }
  if (pc->quiet || pc->backoff_ms > BACKOFF_MIN_MS)
    LINLI_INFO("postgresql connected again", NULL);
  pc->state = C_IDLE;
  pc->quiet = 0;
  pc->backoff_ms = BACKOFF_MIN_MS;
  dispatch(P);
}

static void conn_start(struct pgc *pc) {
  pc->c = PQconnectStart(pc->P->conninfo);
  pc->state = C_CONNECTING;
  pc->since_us = now_us();
  if (!pc->c || PQstatus(pc->c) == CONNECTION_BAD) {
    conn_fail(pc, pc->c ? PQerrorMessage(pc->c) : "out of memory");
    return;
  }
  if (PQsetnonblocking(pc->c, 1) != 0 || watch(pc, EV_WRITE) != 0)
    conn_fail(pc, "cannot set up the connection");
}

static void on_retry(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  struct pgc *pc = arg;
  if (pc->state == C_DOWN && !pc->P->stopping)
    conn_start(pc);
}

/* The running query is complete: answer it, take the next. */
static void finish(struct pgc *pc) {
  struct gw_pg *P = pc->P;
  struct pgq *q = pc->q;
  PGresult *res = pc->res;
  pc->q = NULL;
  pc->res = NULL;
  pc->state = C_IDLE;
  if (res && PQresultStatus(res) != PGRES_TUPLES_OK &&
      PQresultStatus(res) != PGRES_COMMAND_OK) {
    const char *why = PQresultErrorMessage(res);
    LINLI_WARN("postgresql query failed", "reason=\"%.*s\"",
               (int)strcspn(why, "\n"), why);
    PQclear(res);
    res = NULL;
  }
  q->fn(P->gw, res, q->arg);
  if (res)
    PQclear(res);
  free(q);
  dispatch(P);
}

static void on_io(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  struct pgc *pc = arg;
  if (pc->state == C_CONNECTING) {
    switch (PQconnectPoll(pc->c)) {
    case PGRES_POLLING_READING:
      if (watch(pc, EV_READ) != 0)
        conn_fail(pc, "cannot watch the socket");
      return;
    case PGRES_POLLING_WRITING:
      if (watch(pc, EV_WRITE) != 0)
        conn_fail(pc, "cannot watch the socket");
      return;
    case PGRES_POLLING_OK:
      connected(pc);
      return;
    default:
      conn_fail(pc, PQerrorMessage(pc->c));
      return;
    }
  }
  if (pc->state != C_IDLE && pc->state != C_BUSY)
    return;
  if (what & EV_WRITE) {
    int f = PQflush(pc->c);
    if (f < 0) {
      conn_fail(pc, PQerrorMessage(pc->c));
      return;
    }
    if (f == 1)
      event_add(pc->wev, NULL);
  }
  if (!(what & EV_READ))
    return;
  if (!PQconsumeInput(pc->c)) {
    conn_fail(pc, PQerrorMessage(pc->c));
    return;
  }
  if (pc->state == C_IDLE) {
    /* Nothing asked: a notice, or the server went away. */
    if (PQstatus(pc->c) == CONNECTION_BAD)
      conn_fail(pc, "closed by the server");
    return;
  }
  while (!PQisBusy(pc->c)) {
    PGresult *r = PQgetResult(pc->c);
    if (!r) {
      finish(pc);
      return;
    }
    if (!pc->res)
      pc->res = r;
    else
      PQclear(r); /* one statement per query: not expected */
  }
}

/* Send waiting queries on idle connections. */
static void dispatch(struct gw_pg *P) {
  for (int i = 0; i < GW_PG_CONNS && P->head; i++) {
    struct pgc *pc = &P->conns[i];
    if (pc->state != C_IDLE)
      continue;
    struct pgq *q = P->head;
    P->head = q->next;
    if (!P->head)
      P->tail = &P->head;
    q->next = NULL;
    pc->q = q;
    pc->state = C_BUSY;
    pc->since_us = now_us();
    if (!PQsendQueryParams(pc->c, q->sql, q->n, NULL,
                           (const char *const *)q->params, NULL, NULL, 0)) {
      conn_fail(pc, PQerrorMessage(pc->c));
      continue;
    }
    int f = PQflush(pc->c);
    if (f < 0)
      conn_fail(pc, PQerrorMessage(pc->c));
    else if (f == 1)
      event_add(pc->wev, NULL);
  }
}

/* Overrunning queries and stuck connects are given up; queries that wait
 * too long for a connection answer NULL. */
static void on_check(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  struct gw_pg *P = arg;
  int64_t now = now_us();
  for (int i = 0; i < GW_PG_CONNS; i++) {
    struct pgc *pc = &P->conns[i];
    if (pc->state == C_BUSY &&
        now - pc->since_us > (int64_t)GW_PG_TIMEOUT_MS * 1000)
      conn_fail(pc, "no answer in time");
    else if (pc->state == C_CONNECTING &&
             now - pc->since_us > (int64_t)CONNECT_TIMEOUT_MS * 1000)
      conn_fail(pc, "connect timed out");
  }
  while (P->head &&
         now - P->head->queued_us > (int64_t)GW_PG_TIMEOUT_MS * 1000) {
    struct pgq *q = P->head;
    P->head = q->next;
    if (!P->head)
      P->tail = &P->head;
    fail_later(P, q);
  }
}

/* ------------------------------------------------------------------ API */

void gw_pg_query(struct gw *gw, const char *sql, int n,
                 const char *const *params, gw_pg_fn fn, void *arg) {
  struct gw_pg *P = gw->pgq;
  size_t size = sizeof(struct pgq) + (size_t)n * sizeof(char *);
  for (int i = 0; i < n; i++)
    if (params[i])
      size += strlen(params[i]) + 1;
  struct pgq *q = P ? calloc(1, size) : NULL;
  if (!q) {
    fn(gw, NULL, arg); /* stopped, or out of memory: answered now */
    return;
  }
  q->fn = fn;
  q->arg = arg;
  q->sql = sql;
  q->n = n;
  q->params = (char **)(q + 1);
  char *s = (char *)(q->params + n);
  for (int i = 0; i < n; i++) {
    if (!params[i])
      continue;
    size_t len = strlen(params[i]) + 1;
    memcpy(s, params[i], len);
    q->params[i] = s;
    s += len;
  }
  q->queued_us = now_us();
  int alive = 0;
  for (int i = 0; i < GW_PG_CONNS; i++)
    alive |= P->conns[i].state != C_DOWN;
  if (!alive || P->stopping) {
    fail_later(P, q);
    return;
  }
  *P->tail = q;
  P->tail = &q->next;
  dispatch(P);
}

int gw_pg_up(const struct gw *gw) {
  if (!gw->pgq)
    return 0;
  for (int i = 0; i < GW_PG_CONNS; i++)
    if (gw->pgq->conns[i].state >= C_IDLE)
      return 1;
  return 0;
}

int gw_pg_busy(const struct gw *gw) {
  struct gw_pg *P = gw->pgq;
  if (!P)
    return 0;
  if (P->head || P->failed)
    return 1;
  for (int i = 0; i < GW_PG_CONNS; i++)
    if (P->conns[i].state == C_BUSY)
      return 1;
  return 0;
}

int gw_pg_start(struct gw *gw, char *err, size_t errlen) {
  struct gw_pg *P = calloc(1, sizeof *P);
  if (!P) {
    snprintf(err, errlen, "out of memory");
    return LINLI_ERR_NOMEM;
  }
  gw->pgq = P;
  P->gw = gw;
  P->tail = &P->head;
  P->failed_tail = &P->failed;
  P->conninfo = strdup(linli_config_str(gw->cfg, "pg.conninfo"));
  struct timeval check = {0, 100000};
  P->fail_ev = event_new(gw->base, -1, 0, on_failed, P);
  P->check_ev = event_new(gw->base, -1, EV_PERSIST, on_check, P);
  int ok = P->conninfo && P->fail_ev && P->check_ev &&
           event_add(P->check_ev, &check) == 0;
  for (int i = 0; ok && i < GW_PG_CONNS; i++) {
    struct pgc *pc = &P->conns[i];
    pc->P = P;
    pc->backoff_ms = BACKOFF_MIN_MS;
    pc->retry_ev = evtimer_new(gw->base, on_retry, pc);
    ok = pc->retry_ev != NULL;
  }
  if (!ok) {
    snprintf(err, errlen, "cannot set up PostgreSQL events");
    gw_pg_stop(gw);
    return LINLI_ERR_FATAL;
  }
  /* Not fatal if the database is down now: reads answer 503 meanwhile. */
  for (int i = 0; i < GW_PG_CONNS; i++)
    conn_start(&P->conns[i]);
  return LINLI_OK;
}

void gw_pg_stop(struct gw *gw) {
  struct gw_pg *P = gw->pgq;
  if (!P)
    return;
  P->stopping = 1;
  for (int i = 0; i < GW_PG_CONNS; i++) {
    struct pgc *pc = &P->conns[i];
    if (pc->P) {
      struct pgq *q = pc->q;
      pc->q = NULL;
      conn_close(pc);
      if (q)
        fail_later(P, q);
    }
    if (pc->retry_ev)
      event_free(pc->retry_ev);
  }
  while (P->head) {
    struct pgq *q = P->head;
    P->head = q->next;
    fail_later(P, q);
  }
  P->tail = &P->head;
  while (P->failed)
    on_failed(-1, 0, P); /* callbacks may add more: they fail too */
  if (P->fail_ev)
    event_free(P->fail_ev);
  if (P->check_ev)
    event_free(P->check_ev);
  free(P->conninfo);
  free(P);
  gw->pgq = NULL;
}
