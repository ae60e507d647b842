/*
 * pg.h - PostgreSQL for the record: a libpq connection that reconnects,
 * prepared statements that are re-prepared after a reconnect, and a
 * transaction helper that retries on serialization failures, deadlocks and
 * lost connections. SQL text is always constant with $1 placeholders: never
 * build SQL with snprintf.
 */
#ifndef LINLI_PG_H
#define LINLI_PG_H

#include <stddef.h>

#include <libpq-fe.h>

typedef struct linli_pg linli_pg_t;

/* Connect with conninfo; retries with backoff for up to connect_timeout_ms.
 * *out owned by the caller (linli_pg_free). */
int linli_pg_connect(const char *conninfo, int connect_timeout_ms,
                     linli_pg_t **out, char *err, size_t errlen);
void linli_pg_free(linli_pg_t *pg);

/* Register a prepared statement by name (prepared now and after every
 * reconnect). */
int linli_pg_prepare(linli_pg_t *pg, const char *name, const char *sql,
                     int nparams);

/*
 * Execute a prepared statement with text parameters (NULL = SQL NULL).
 * *res (may be NULL if the caller does not need it) is owned by the caller
 * (PQclear). Returns LINLI_OK on PGRES_COMMAND_OK/TUPLES_OK,
 * LINLI_ERR_TRANSIENT on a lost connection or a serialization failure /
 * deadlock (SQLSTATE 40001, 40P01), LINLI_ERR_CONFLICT on a unique
 * violation (23505), LINLI_ERR_INVALID on other errors; err gets the
 * SQLSTATE and message.
 */
int linli_pg_exec_prepared(linli_pg_t *pg, const char *name, int nparams,
                           const char *const *params, PGresult **res,
                           char *err, size_t errlen);

/* Execute constant SQL with $n parameters (not prepared). Same rules. */
int linli_pg_exec(linli_pg_t *pg, const char *sql, int nparams,
                  const char *const *params, PGresult **res, char *err,
                  size_t errlen);

/*
 * Run fn inside BEGIN ... COMMIT. fn returns LINLI_OK to commit, anything
 * else to roll back. On LINLI_ERR_TRANSIENT (from fn or COMMIT) the helper
 * rolls back, reconnects if needed (waiting with backoff), and calls fn
 * again, up to max_attempts (0 = retry forever, until the process is asked
 * to stop through linli_pg_cancel_retries). Returns fn's final result.
 * fn must be safe to run more than once (no side effects outside the
 * transaction).
 */
typedef int (*linli_pg_txn_fn)(linli_pg_t *pg, void *arg, char *err,
                               size_t errlen);
int linli_pg_txn(linli_pg_t *pg, linli_pg_txn_fn fn, void *arg,
                 int max_attempts, char *err, size_t errlen);

/* Isolation level of linli_pg_txn's BEGIN: "READ COMMITTED" (default),
 * "REPEATABLE READ" or "SERIALIZABLE" (case-insensitive); LINLI_ERR_INVALID
 * for anything else. */
int linli_pg_set_isolation(linli_pg_t *pg, const char *level);

/* Make retry loops in linli_pg_txn give up (e.g. from a signal handler). */
void linli_pg_cancel_retries(linli_pg_t *pg);

/*
 * Pipeline mode (libpq 15), for many statements in one round trip inside
 * linli_pg_txn's fn: enter, send prepared statements (registered with
 * linli_pg_prepare; one registered while the pipeline is open is prepared
 * when first sent), read their results in the order sent with
 * linli_pg_pipeline_next (same codes and err as linli_pg_exec_prepared;
 * after a failure, the rest of the pipeline reports 25P02 "skipped"), and
 * exit, which reads what is left and returns the first failure among it.
 * linli_pg_txn closes a pipeline fn left open before COMMIT. A lost
 * connection ends the pipeline (LINLI_ERR_TRANSIENT).
 */
int linli_pg_pipeline_enter(linli_pg_t *pg, char *err, size_t errlen);
int linli_pg_pipeline_send(linli_pg_t *pg, const char *name, int nparams,
                           const char *const *params, char *err,
                           size_t errlen);
/* Constant SQL, planned for these parameters at every execution (not
 * prepared): for a statement over a batch whose best plan depends on the
 * table's current size (a generic plan made while a table was small keeps
 * scanning it whole). */
int linli_pg_pipeline_send_sql(linli_pg_t *pg, const char *sql, int nparams,
                               const char *const *params, char *err,
                               size_t errlen);
/* Statements sent whose results were not read yet. */
size_t linli_pg_pipeline_pending(const linli_pg_t *pg);
int linli_pg_pipeline_next(linli_pg_t *pg, PGresult **res, char *err,
                           size_t errlen);
int linli_pg_pipeline_exit(linli_pg_t *pg, char *err, size_t errlen);

/* The underlying libpq connection (valid until the next reconnect). */
PGconn *linli_pg_conn(linli_pg_t *pg);

#endif
