/*
 * sql.c - the ledger's statements inside the batch's transaction: prepared
 * on first use, sent through libpq's pipeline (writes do not wait for
 * their replies; a read drains the pipeline), each failure tied to the
 * record that sent it; and the batch's bookkeeping every part shares
 * (topic names without the test suffix, orders touched).
 *
 * Bulk writes: a statement with bulk_sql (an insert, or a fold of many
 * events of one order into one update) is not sent per row. Its rows wait
 * in memory and go as one statement over arrays, so PostgreSQL plans and
 * executes one statement per table and batch instead of one per record,
 * and an order row is rewritten once per batch. Order is kept where it
 * matters: before any statement whose SQL names a table a waiting
 * statement writes, every waiting row is sent first (parents before
 * children, by bulk_order). A bulk statement that fails cannot say which
 * record is at fault: the batch then runs again with a statement per row
 * (serial), where the failing record is found and sent to the DLQ.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledger.h"
#include "linli/array.h"
#include "linli/error.h"
#include "linli/hash.h"

/* ------------------------------------------------------------------ SQL */

int ledger_prepare(struct ledger *lg, const struct ledger_stmt *st) {
  return linli_pg_prepare(lg->pg, st->name, st->sql, st->nparams);
}

#define OWNER_BULK (-2) /* a bulk statement in the pipeline: no record */

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
    if (owner == OWNER_BULK) {
      lg->bulk_failed = 1; /* run the batch again a row at a time */
      return rc == LINLI_ERR_TRANSIENT ? rc : LINLI_ERR_INVALID;
    }
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

/* ---------------------------------------------------------------- bulk */

int ledger_bulk_on(const struct ledger *lg) { return lg->pipe && !lg->serial; }

static void bulk_rows_free(struct ledger_bulk *b) {
  for (size_t i = 0; i < b->n * (size_t)b->st->nparams; i++)
    free(b->vals[i]);
  b->n = 0;
  if (b->slot)
    memset(b->slot, 0, b->nslot * sizeof *b->slot);
}

void ledger_bulk_clear(struct ledger *lg) {
  for (int i = 0; i < lg->nbulk; i++)
    bulk_rows_free(&lg->bulk[i]);
}

/* 1 if word occurs in sql as a whole identifier. */
static int names(const char *sql, const char *word) {
  size_t wl = strlen(word);
  for (const char *p = strstr(sql, word); p; p = strstr(p + 1, word)) {
    char before = p == sql ? ' ' : p[-1], after = p[wl];
    int ident_b = before == '_' || (before >= 'a' && before <= 'z') ||
                  (before >= '0' && before <= '9');
    int ident_a = after == '_' || (after >= 'a' && after <= 'z') ||
                  (after >= '0' && after <= '9');
    if (!ident_b && !ident_a)
      return 1;
  }
  return 0;
}

/* Room for more bytes in a growing buffer. */
static int lit_room(char **buf, size_t len, size_t *cap, size_t more) {
  if (len + more <= *cap)
    return LINLI_OK;
  size_t c = *cap ? *cap : 256;
  while (c < len + more)
    c *= 2;
  char *n = realloc(*buf, c);
  if (n == NULL)
    return LINLI_ERR_NOMEM;
  *buf = n;
  *cap = c;
  return LINLI_OK;
}

/* Append one element to a text[] literal: "..." with " and \ escaped, or
 * NULL; a comma first unless it is the first. */
static int lit_add(char **buf, size_t *len, size_t *cap, const char *v,
                   int first) {
  if (lit_room(buf, *len, cap, (v ? 2 * strlen(v) + 2 : 4) + 1) != LINLI_OK)
    return LINLI_ERR_NOMEM;
  char *o = *buf + *len;
  if (!first)
    *o++ = ',';
  if (v == NULL) {
    memcpy(o, "NULL", 4);
    o += 4;
  } else {
    *o++ = '"';
    for (const char *p = v; *p; p++) {
      if (*p == '"' || *p == '\\')
        *o++ = '\\';
      *o++ = *p;
    }
    *o++ = '"';
  }
  *len = (size_t)(o - *buf);
  return LINLI_OK;
}

char *ledger_text_array(const char *const *v, size_t n) {
  char *buf = NULL;
  size_t len = 0, cap = 0;
  if (lit_room(&buf, 0, &cap, 2) != LINLI_OK)
    return NULL;
  buf[len++] = '{';
  for (size_t i = 0; i < n; i++)
    if (lit_add(&buf, &len, &cap, v[i], i == 0) != LINLI_OK) {
      free(buf);
      return NULL;
    }
  if (lit_room(&buf, len, &cap, 2) != LINLI_OK) {
    free(buf);
    return NULL;
  }
  buf[len++] = '}';
  buf[len] = '\0';
  return buf;
}

static int send_one(struct ledger *lg, const struct ledger_stmt *st,
                    const char *const *params, int owner, char *err,
                    size_t errlen);

/* Send the rows of one bulk statement as one statement over arrays. */
static int bulk_send(struct ledger *lg, struct ledger_bulk *b, char *err,
                     size_t errlen) {
  int np = b->st->nparams, rc = LINLI_OK;
  if (b->n == 0)
    return LINLI_OK;
  char **lits = calloc((size_t)np, sizeof *lits);
  if (lits == NULL)
    return LINLI_ERR_NOMEM;
  const char **col = malloc(b->n * sizeof *col);
  if (col == NULL)
    rc = LINLI_ERR_NOMEM;
  for (int k = 0; k < np && rc == LINLI_OK; k++) {
    for (size_t r = 0; r < b->n; r++)
      col[r] = b->vals[r * (size_t)np + k];
    if ((lits[k] = ledger_text_array(col, b->n)) == NULL)
      rc = LINLI_ERR_NOMEM;
  }
  free(col);
  if (rc == LINLI_OK) {
    struct ledger_stmt bulk = {b->st->name, b->st->bulk_sql, np, 1, NULL,
                               NULL,        0,               0,  NULL};
    rc = send_one(lg, &bulk, (const char *const *)lits, OWNER_BULK, err,
                  errlen);
  }
  for (int k = 0; k < np; k++)
    free(lits[k]);
  free(lits);
  bulk_rows_free(b);
  return rc;
}

static int bulk_cmp(const void *a, const void *b) {
  const struct ledger_bulk *x = a, *y = b;
  return (x->st->bulk_order > y->st->bulk_order) -
         (x->st->bulk_order < y->st->bulk_order);
}

int ledger_bulk_flush(struct ledger *lg, char *err, size_t errlen) {
  /* Stable enough: few statements, sorted by rank only. */
  qsort(lg->bulk, (size_t)lg->nbulk, sizeof lg->bulk[0], bulk_cmp);
  for (int i = 0; i < lg->nbulk; i++) {
    int rc = bulk_send(lg, &lg->bulk[i], err, errlen);
    if (rc != LINLI_OK)
      return rc;
  }
  return LINLI_OK;
}

/* 1 if sql names any of the space-separated tables. */
static int names_any(const char *sql, const char *tables) {
  char word[64];
  for (const char *p = tables; *p;) {
    size_t n = strcspn(p, " ");
    if (n > 0 && n < sizeof word) {
      memcpy(word, p, n);
      word[n] = '\0';
      if (names(sql, word))
        return 1;
    }
    p += n;
    p += strspn(p, " ");
  }
  return 0;
}

/* 1 if st's SQL names a table of the bulk statement bulk. */
static int st_names(struct ledger *lg, const struct ledger_stmt *st,
                    const struct ledger_stmt *bulk) {
  size_t n = sizeof lg->names_memo / sizeof lg->names_memo[0];
  struct ledger_names_memo *m =
      &lg->names_memo[((uintptr_t)st / sizeof(void *) * 31u +
                       (uintptr_t)bulk / sizeof(void *)) % n];
  if (m->st != st || m->bulk != bulk) {
    m->st = st;
    m->bulk = bulk;
    m->names = names_any(st->sql, bulk->bulk_table);
  }
  return m->names;
}

/* Rows wait whose tables st names: send them all first. */
static int bulk_before(struct ledger *lg, const struct ledger_stmt *st,
                       char *err, size_t errlen) {
  for (int i = 0; i < lg->nbulk; i++)
    if (lg->bulk[i].n > 0 && st_names(lg, st, lg->bulk[i].st))
      return ledger_bulk_flush(lg, err, errlen);
  return LINLI_OK;
}

static int same_key(const struct ledger_bulk *b, size_t r,
                    const char *const *params) {
  for (int k = 0; k < b->st->bulk_key; k++) {
    const char *v = b->vals[r * (size_t)b->st->nparams + k];
    if ((v == NULL) != (params[k] == NULL) ||
        (v != NULL && strcmp(v, params[k]) != 0))
      return 0;
  }
  return 1;
}

static uint64_t key_hash(const struct ledger_bulk *b,
                         const char *const *params) {
  uint64_t h = 0;
  for (int k = 0; k < b->st->bulk_key; k++)
    h = h * 1099511628211u ^ (params[k] ? linli_hash_str(params[k]) : 1);
  return h;
}

/* The slot of params' key: the row holding it, or the empty slot where it
 * goes. */
static size_t key_slot(const struct ledger_bulk *b,
                       const char *const *params) {
  size_t mask = b->nslot - 1, i = (size_t)key_hash(b, params) & mask;
  while (b->slot[i] != 0 && !same_key(b, b->slot[i] - 1, params))
    i = (i + 1) & mask;
  return i;
}

/* Room in the key index for one row more (rebuilt when it grows). */
static int key_room(struct ledger_bulk *b) {
  if (2 * (b->n + 1) < b->nslot)
    return LINLI_OK;
  size_t nslot = b->nslot ? 2 * b->nslot : 512;
  size_t *slot = calloc(nslot, sizeof *slot);
  if (slot == NULL)
    return LINLI_ERR_NOMEM;
  free(b->slot);
  b->slot = slot;
  b->nslot = nslot;
  for (size_t r = 0; r < b->n; r++) {
    const char *const *row =
        (const char *const *)&b->vals[r * (size_t)b->st->nparams];
    b->slot[key_slot(b, row)] = r + 1;
  }
  return LINLI_OK;
}

/* Keep a row of a bulk statement for the batch's flush. */
static int bulk_add(struct ledger *lg, const struct ledger_stmt *st,
                    const char *const *params, char *err, size_t errlen) {
  struct ledger_bulk *b = NULL;
  for (int i = 0; i < lg->nbulk && b == NULL; i++)
    if (lg->bulk[i].st == st)
      b = &lg->bulk[i];
  if (b == NULL) {
    if (lg->nbulk == LEDGER_MAX_BULK)
      return send_one(lg, st, params, lg->txn.cur, err, errlen);
    b = &lg->bulk[lg->nbulk++];
    memset(b, 0, sizeof *b);
    b->st = st;
  }
  int np = st->nparams, rc;
  if (st->bulk_key > 0) {
    if ((rc = key_room(b)) != LINLI_OK)
      return rc;
    size_t at = key_slot(b, params);
    if (b->slot[at] != 0) {
      if (st->bulk_merge != NULL)
        return st->bulk_merge(&b->vals[(b->slot[at] - 1) * (size_t)np],
                              params);
      if ((rc = ledger_bulk_flush(lg, err, errlen)) != LINLI_OK)
        return rc; /* the rows kept so far went first: the index is empty */
    }
  }
  if (b->n == b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 256;
    char **v = realloc(b->vals, cap * (size_t)np * sizeof *v);
    if (v == NULL)
      return LINLI_ERR_NOMEM;
    b->vals = v;
    b->cap = cap;
  }
  char **row = &b->vals[b->n * (size_t)np];
  for (int k = 0; k < np; k++) {
    row[k] = params[k] ? strdup(params[k]) : NULL;
    if (params[k] && row[k] == NULL) {
      for (int j = 0; j < k; j++)
        free(row[j]);
      return LINLI_ERR_NOMEM;
    }
  }
  b->n++;
  if (st->bulk_key > 0)
    b->slot[key_slot(b, params)] = b->n;
  return LINLI_OK;
}

static int send_one(struct ledger *lg, const struct ledger_stmt *st,
                    const char *const *params, int owner, char *err,
                    size_t errlen) {
  int saved = lg->txn.cur;
  lg->txn.cur = owner;
  int rc = sql_pipelined(lg, st, params, NULL, err, errlen);
  lg->txn.cur = saved;
  return rc;
}

int ledger_sql(struct ledger *lg, const struct ledger_stmt *st,
               const char *const *params, PGresult **res, char *err,
               size_t errlen) {
  if (lg->pipe) {
    int rc;
    if (ledger_bulk_on(lg) && st->bulk_sql != NULL && res == NULL)
      return bulk_add(lg, st, params, err, errlen);
    if ((rc = bulk_before(lg, st, err, errlen)) != LINLI_OK)
      return rc;
    return sql_pipelined(lg, st, params, res, err, errlen);
  }
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

int ledger_strv_push(char ***v, size_t *n, size_t *cap, char *s) {
  char **nv = linli_grow(*v, cap, *n + 1, sizeof *nv, 64);
  if (nv == NULL)
    return LINLI_ERR_NOMEM;
  *v = nv;
  nv[(*n)++] = s;
  return LINLI_OK;
}

int ledger_touch(struct ledger *lg, const char *order_id) {
  /* Appended as they come (an order may be touched by many events of the
   * batch): ledger_touched_unique removes the repeats once per batch. */
  struct ledger_txn *t = &lg->txn;
  char *id = strdup(order_id);
  if (id == NULL ||
      ledger_strv_push(&t->touched, &t->ntouched, &t->captouched, id) !=
          LINLI_OK) {
    free(id);
    return LINLI_ERR_NOMEM;
  }
  return LINLI_OK;
}

static int cmp_id(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

size_t ledger_ids_unique(char **ids, size_t n) {
  if (n < 2)
    return n;
  qsort(ids, n, sizeof *ids, cmp_id);
  size_t u = 1;
  for (size_t i = 1; i < n; i++) {
    if (strcmp(ids[u - 1], ids[i]) == 0)
      free(ids[i]);
    else
      ids[u++] = ids[i];
  }
  return u;
}

void ledger_touched_unique(struct ledger *lg) {
  lg->txn.ntouched = ledger_ids_unique(lg->txn.touched, lg->txn.ntouched);
}
