/*
 * shards.c - a consumer batch's Redis batches, one per shard tag, run in
 * one round trip (see linli/shards.h).
 *
 * Tags are found through an open-addressing table over the batches' own
 * tags (linli_redis_batch_tag), so a batch of thousands of records over
 * thousands of shards stays linear and no tag is stored twice.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "linli/array.h"
#include "linli/error.h"
#include "linli/hash.h"
#include "linli/shards.h"

struct linli_shards {
  linli_redis_script_t *script;
  linli_redis_batch_t **b; /* owned, in order of first use */
  size_t n, cap;
  int *table;              /* power-of-two slots: shard + 1, 0 empty */
  size_t tcap;
};

/* The table slot of tag: its shard's, or the empty one it would take. */
static size_t table_find(const linli_shards_t *sh, const char *tag) {
  size_t mask = sh->tcap - 1, i = linli_hash_str(tag) & mask;
  while (sh->table[i] != 0 &&
         strcmp(linli_redis_batch_tag(sh->b[sh->table[i] - 1]), tag) != 0)
    i = (i + 1) & mask;
  return i;
}

/* Keep the table at most half full (probes stay short). */
static int table_reserve(linli_shards_t *sh, size_t shards) {
  if (sh->tcap >= 2 * shards && sh->tcap > 0)
    return LINLI_OK;
  size_t tcap = sh->tcap ? sh->tcap : 16;
  while (tcap < 2 * shards)
    tcap *= 2;
  int *table = calloc(tcap, sizeof *table);
  if (table == NULL)
    return LINLI_ERR_NOMEM;
  free(sh->table);
  sh->table = table;
  sh->tcap = tcap;
  for (size_t s = 0; s < sh->n; s++)
    sh->table[table_find(sh, linli_redis_batch_tag(sh->b[s]))] = (int)s + 1;
  return LINLI_OK;
}

int linli_shards_new(linli_redis_script_t *script, size_t hint,
                     linli_shards_t **out) {
  if (out == NULL)
    return LINLI_ERR_INVALID;
  *out = NULL;
  linli_shards_t *sh = calloc(1, sizeof *sh);
  if (sh == NULL)
    return LINLI_ERR_NOMEM;
  sh->script = script;
  if (table_reserve(sh, hint) != LINLI_OK) {
    free(sh);
    return LINLI_ERR_NOMEM;
  }
  *out = sh;
  return LINLI_OK;
}

void linli_shards_free(linli_shards_t *sh) {
  if (sh == NULL)
    return;
  for (size_t s = 0; s < sh->n; s++)
    linli_redis_batch_free(sh->b[s]);
  free(sh->b);
  free(sh->table);
  free(sh);
}

size_t linli_shards_count(const linli_shards_t *sh) {
  return sh != NULL ? sh->n : 0;
}

linli_redis_batch_t *linli_shards_batch(const linli_shards_t *sh, size_t i) {
  return sh != NULL && i < sh->n ? sh->b[i] : NULL;
}

/* The shard of tag, its batch made on first use. */
static int shard_of(linli_shards_t *sh, const char *tag, int *out) {
  size_t i = table_find(sh, tag);
  if (sh->table[i] != 0) {
    *out = sh->table[i] - 1;
    return LINLI_OK;
  }
  linli_redis_batch_t **b = linli_grow(sh->b, &sh->cap, sh->n + 1,
                                       sizeof *sh->b, 16);
  if (b == NULL)
    return LINLI_ERR_NOMEM;
  sh->b = b;
  int rc = linli_redis_batch_new(sh->script, tag, &sh->b[sh->n]);
  if (rc != LINLI_OK)
    return rc;
  sh->n++;
  if (table_reserve(sh, sh->n) != LINLI_OK) {
    /* Unmade again: the table must name every batch there is. */
    linli_redis_batch_free(sh->b[--sh->n]);
    return LINLI_ERR_NOMEM;
  }
  i = table_find(sh, tag); /* the table may have been rebuilt */
  sh->table[i] = (int)sh->n;
  *out = (int)sh->n - 1;
  return LINLI_OK;
}

int linli_shards_add(linli_shards_t *sh, const char *tag, const char *topic,
                     int32_t partition, int64_t offset, int64_t start,
                     int nargs, const char **args, const size_t *lens,
                     int *shard) {
  if (sh == NULL || tag == NULL || shard == NULL)
    return LINLI_ERR_INVALID;
  int s = 0;
  int rc = shard_of(sh, tag, &s);
  if (rc != LINLI_OK)
    return rc;
  int slot = linli_redis_batch_add(sh->b[s], topic, partition, offset, start,
                                   nargs, args, lens);
  if (slot >= 0) {
    *shard = s;
  } else if (linli_redis_batch_count(sh->b[s]) == 0) {
    /* A shard made for an input it then refused would stay empty, and
     * exec refuses an empty batch: unmake it. It is the last one made, so
     * no later tag probed past its table slot. */
    sh->table[table_find(sh, tag)] = 0;
    linli_redis_batch_free(sh->b[--sh->n]);
  }
  return slot;
}

int linli_shards_add_record(linli_shards_t *sh, const char *tag,
                            linli_batch_t *b, size_t i, int nargs,
                            const char **args, const size_t *lens,
                            int *shard) {
  const rd_kafka_message_t *m = linli_batch_msg(b, i);
  const char *topic = rd_kafka_topic_name(m->rkt);
  return linli_shards_add(sh, tag, topic, m->partition, m->offset,
                          linli_batch_start(b, topic, m->partition), nargs,
                          args, lens, shard);
}

int linli_shards_admit(linli_batch_t *b, size_t i, int add_rc,
                       const char *misfit, char *reason, size_t reasonlen) {
  if (add_rc >= 0)
    return LINLI_OK;
  if (add_rc == LINLI_ERR_INVALID) {
    linli_batch_reject(b, i, LINLI_ERR_INVALID, misfit);
    return LINLI_OK;
  }
  snprintf(reason, reasonlen, "out of memory");
  return LINLI_ERR_TRANSIENT;
}

int linli_shards_exec(linli_redis_t *r, linli_shards_t *sh, char *reason,
                      size_t reasonlen) {
  if (sh == NULL || sh->n == 0)
    return LINLI_OK;
  char err[512] = "";
  if (linli_redis_batch_exec(r, sh->b, sh->n, err, sizeof err) != LINLI_OK) {
    snprintf(reason, reasonlen, "%s", err);
    return LINLI_ERR_TRANSIENT;
  }
  return LINLI_OK;
}
