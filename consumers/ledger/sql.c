/*
 * sql.c - the ledger's statements inside the batch's transaction: prepared
 * on first use, sent through libpq's pipeline (writes do not wait for
 * their replies; a read drains the pipeline), each failure tied to the
 * record that sent it; and the batch's bookkeeping every part shares
 * (topic names without the test suffix, orders touched).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledger.h"
#include "linli/error.h"

/* ------------------------------------------------------------------ SQL */

int ledger_prepare(struct ledger *lg, const struct ledger_stmt *st) {
  return linli_pg_prepare(lg->pg, st->name, st->sql, st->nparams);
}

/* Pipelined statements whose results were not read, at most: writes are
 * read back in groups, a read (res wanted) drains the pipeline at once. */
#define PIPE_MAX 512

static int owner_push(struct ledger *lg, int owner) {
  if (lg->pipe_n == 0)
    lg->pipe_head = 0;
  if (lg->pipe_head + lg->pipe_n == lg->pipe_cap) {
    size_t cap = lg->pipe_cap ? lg->pipe_cap * 2 : 1024;
    int *n = realloc(lg->pipe_owner, cap * sizeof *n);
    if (n == NULL)
      return LINLI_ERR_NOMEM;
    lg->pipe_owner = n;
    lg->pipe_cap = cap;
  }
  lg->pipe_owner[lg->pipe_head + lg->pipe_n++] = owner;
  return LINLI_OK;
}

int ledger_pipe_drain(struct ledger *lg, PGresult **res, char *err,
                      size_t errlen) {
  if (res != NULL)
    *res = NULL;
  while (lg->pipe_n > 0) {
    int owner = lg->pipe_owner[lg->pipe_head++];
    int last = --lg->pipe_n == 0;
    int rc = linli_pg_pipeline_next(lg->pg, last ? res : NULL, err, errlen);
    if (rc == LINLI_OK)
      continue;
    lg->txn.err_owner = owner;
    lg->pipe_n = 0;
    /* A write nobody waited for: a unique violation there is the record's
     * data error like any other (the reads that expect one wait). */
    if (rc == LINLI_ERR_CONFLICT && !(last && res != NULL))
      rc = LINLI_ERR_INVALID;
    return rc;
  }
  return LINLI_OK;
}

static int sql_pipelined(struct ledger *lg, const struct ledger_stmt *st,
                         const char *const *params, PGresult **res,
                         char *err, size_t errlen) {
  int rc = st->per_batch
               ? linli_pg_pipeline_send_sql(lg->pg, st->sql, st->nparams,
                                            params, err, errlen)
               : linli_pg_pipeline_send(lg->pg, st->name, st->nparams,
                                        params, err, errlen);
  if (rc == LINLI_ERR_INVALID && strstr(err, "no such prepared statement")) {
    rc = ledger_prepare(lg, st); /* registered; prepared when sent */
    if (rc == LINLI_OK)
      rc = linli_pg_pipeline_send(lg->pg, st->name, st->nparams, params, err,
                                  errlen);
  }
  if (rc == LINLI_OK)
    rc = owner_push(lg, lg->txn.cur);
  if (rc != LINLI_OK)
    return rc;
  if (res == NULL && lg->pipe_n < PIPE_MAX)
    return LINLI_OK;
  return ledger_pipe_drain(lg, res, err, errlen);
}

int ledger_sql(struct ledger *lg, const struct ledger_stmt *st,
               const char *const *params, PGresult **res, char *err,
               size_t errlen) {
  if (lg->pipe)
    return sql_pipelined(lg, st, params, res, err, errlen);
  int rc = linli_pg_exec_prepared(lg->pg, st->name, st->nparams, params, res,
                                  err, errlen);
  if (rc == LINLI_ERR_INVALID && strstr(err, "no such prepared statement")) {
    /* First use: register it (prepared now and after every reconnect). */
    rc = ledger_prepare(lg, st);
    if (rc == LINLI_OK)
      rc = linli_pg_exec_prepared(lg->pg, st->name, st->nparams, params, res,
                                  err, errlen);
    else if (rc != LINLI_ERR_TRANSIENT)
      snprintf(err, errlen, "XX000: statement %s does not prepare", st->name);
    else
      snprintf(err, errlen, "08006: connection lost preparing %s", st->name);
  }
  return rc;
}

const char *ledger_topic_base(const struct ledger *lg, const char *topic,
                              char *buf, size_t len) {
  size_t tl = strlen(topic), sl = strlen(lg->suffix);
  if (sl == 0 || tl <= sl || strcmp(topic + tl - sl, lg->suffix) != 0 ||
      tl - sl >= len)
    return topic;
  memcpy(buf, topic, tl - sl);
  buf[tl - sl] = '\0';
  return buf;
}

int ledger_touch(struct ledger *lg, const char *order_id) {
  struct ledger_txn *t = &lg->txn;
  for (size_t i = 0; i < t->ntouched; i++)
    if (strcmp(t->touched[i], order_id) == 0)
      return LINLI_OK;
  if (t->ntouched == t->captouched) {
    size_t cap = t->captouched ? t->captouched * 2 : 64;
    char **n = realloc(t->touched, cap * sizeof *n);
    if (n == NULL)
      return LINLI_ERR_NOMEM;
    t->touched = n;
    t->captouched = cap;
  }
  t->touched[t->ntouched] = strdup(order_id);
  if (t->touched[t->ntouched] == NULL)
    return LINLI_ERR_NOMEM;
  t->ntouched++;
  return LINLI_OK;
}
