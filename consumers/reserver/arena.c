/*
 * arena.c - the batch arena and string map of batch.h: a batch's memory is
 * taken in large blocks and handed back all at once (reset, not freed), so
 * the steady state allocates nothing per record.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "linli/error.h"

#define BLOCK_MIN (256 * 1024)

void *arena_alloc(struct arena *a, size_t size) {
  size = (size + 15) & ~(size_t)15;
  if (size == 0)
    size = 16;
  while (a->cur && a->cur->size - a->cur->used < size && a->cur->next)
    a->cur = a->cur->next; /* later blocks were reset: use them */
  if (!a->cur || a->cur->size - a->cur->used < size) {
    size_t bs = size > BLOCK_MIN ? size : BLOCK_MIN;
    struct arena_block *blk = malloc(sizeof *blk + bs);
    if (!blk)
      return NULL;
    blk->size = bs;
    blk->used = 0;
    blk->next = a->cur ? a->cur->next : NULL;
    if (a->cur)
      a->cur->next = blk;
    else
      a->head = blk;
    a->cur = blk;
  }
  void *p = a->cur->data + a->cur->used;
  a->cur->used += size;
  memset(p, 0, size);
  return p;
}

char *arena_printf(struct arena *a, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0)
    return NULL;
  char *s = arena_alloc(a, (size_t)n + 1);
  if (!s)
    return NULL;
  va_start(ap, fmt);
  vsnprintf(s, (size_t)n + 1, fmt, ap);
  va_end(ap);
  return s;
}

void arena_reset(struct arena *a) {
  for (struct arena_block *b = a->head; b; b = b->next)
    b->used = 0;
  a->cur = a->head;
}

void arena_free(struct arena *a) {
  struct arena_block *b = a->head;
  while (b) {
    struct arena_block *next = b->next;
    free(b);
    b = next;
  }
  a->head = a->cur = NULL;
}

/* FNV-1a: the map only needs a spread, not a secret. */
static size_t hash(const char *s) {
  size_t h = (size_t)14695981039346656037ULL;
  for (; *s; s++)
    h = (h ^ (unsigned char)*s) * (size_t)1099511628211ULL;
  return h;
}

int strmap_init(struct strmap *m, struct arena *a, size_t n) {
  size_t cap = 16;
  while (cap < 2 * n + 1)
    cap *= 2;
  m->keys = arena_alloc(a, cap * sizeof *m->keys);
  m->vals = arena_alloc(a, cap * sizeof *m->vals);
  m->cap = cap;
  return m->keys && m->vals ? LINLI_OK : LINLI_ERR_NOMEM;
}

static size_t slot(const struct strmap *m, const char *key) {
  size_t i = hash(key) & (m->cap - 1);
  while (m->keys[i] && strcmp(m->keys[i], key) != 0)
    i = (i + 1) & (m->cap - 1);
  return i;
}

int strmap_get(const struct strmap *m, const char *key) {
  size_t i = slot(m, key);
  return m->keys[i] ? m->vals[i] : -1;
}

/* The caller sized the map for every key it puts (strmap_init's n). */
int strmap_put(struct strmap *m, const char *key, int val) {
  size_t i = slot(m, key);
  if (!m->keys[i]) {
    m->keys[i] = key;
    m->vals[i] = val;
  }
  return m->vals[i];
}
