/*
 * shards.c - a consumer batch's Redis batches, one per shard tag, run in
 * one round trip (see linli/shards.h).
 *
 * Tags are found through a linli_strmap (tag -> shard + 1; 0 once a shard
 * made for a refused input was unmade), so a batch of thousands of records
 * over thousands of shards stays linear.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "linli/array.h"
#include "linli/error.h"
#include "linli/shards.h"
#include "linli/strmap.h"

struct linli_shards {
  linli_redis_script_t *script;
  linli_redis_batch_t **b; /* owned, in order of first use */
  size_t n, cap;
  linli_strmap_t *index; /* tag -> int: shard + 1, 0 none */
};

int linli_shards_new(linli_redis_script_t *script, size_t hint,
                     linli_shards_t **out) {
  if (out == NULL)
    return LINLI_ERR_INVALID;
  *out = NULL;
  linli_shards_t *sh = calloc(1, sizeof *sh);
  if (sh == NULL)
    return LINLI_ERR_NOMEM;
  sh->script = script;
  if (linli_strmap_new(sizeof(int), hint, &sh->index) != LINLI_OK) {
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
  linli_strmap_free(sh->index);
  free(sh);
}

size_t linli_shards_count(const linli_shards_t *sh) {
  return sh != NULL ? sh->n : 0;
}

linli_redis_batch_t *linli_shards_batch(const linli_shards_t *sh, size_t i) {
  return sh != NULL && i < sh->n ? sh->b[i] : NULL;
}

/* The shard of tag, its batch made on first use; *entry: its index
 * entry. */
static int shard_of(linli_shards_t *sh, const char *tag, int *out,
                    int **entry) {
  int *idx = linli_strmap_get_or_add(sh->index, tag, NULL, NULL);
  if (idx == NULL)
    return LINLI_ERR_NOMEM;
  *entry = idx;
  if (*idx != 0) {
    *out = *idx - 1;
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
  *idx = (int)++sh->n;
  *out = *idx - 1;
  return LINLI_OK;
}

int linli_shards_add(linli_shards_t *sh, const char *tag, const char *topic,
                     int32_t partition, int64_t offset, int64_t start,
                     int nargs, const char **args, const size_t *lens,
                     int *shard) {
  if (sh == NULL || tag == NULL || shard == NULL)
    return LINLI_ERR_INVALID;
  int s = 0, *entry = NULL;
  int rc = shard_of(sh, tag, &s, &entry);
  if (rc != LINLI_OK)
    return rc;
  int slot = linli_redis_batch_add(sh->b[s], topic, partition, offset, start,
                                   nargs, args, lens);
  if (slot >= 0) {
    *shard = s;
  } else if (linli_redis_batch_count(sh->b[s]) == 0) {
    /* A shard made for an input it then refused would stay empty, and
     * exec refuses an empty batch: unmake it (it is the last one made). */
    *entry = 0;
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
