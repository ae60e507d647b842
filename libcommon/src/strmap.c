/*
 * strmap.c - see linli/strmap.h. Each value is an allocation of its own so
 * that growing the table moves slots, never values.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "linli/error.h"
#include "linli/hash.h"
#include "linli/strmap.h"

struct slot {
  char *key;
  void *value;
};

struct linli_strmap {
  struct slot *slots;
  size_t cap, count, value_size;
};

int linli_strmap_new(size_t value_size, size_t hint, linli_strmap_t **out) {
  if (out == NULL)
    return LINLI_ERR_INVALID;
  *out = NULL;
  if (value_size == 0 || hint > SIZE_MAX / 4)
    return LINLI_ERR_INVALID;
  linli_strmap_t *m = calloc(1, sizeof *m);
  if (m == NULL)
    return LINLI_ERR_NOMEM;
  m->cap = 16;
  while (m->cap < 2 * hint + 2)
    m->cap *= 2;
  m->value_size = value_size;
  m->slots = calloc(m->cap, sizeof *m->slots);
  if (m->slots == NULL) {
    free(m);
    return LINLI_ERR_NOMEM;
  }
  *out = m;
  return LINLI_OK;
}

void linli_strmap_free(linli_strmap_t *m) {
  if (m == NULL)
    return;
  for (size_t i = 0; i < m->cap; i++) {
    free(m->slots[i].key);
    free(m->slots[i].value);
  }
  free(m->slots);
  free(m);
}

/* The slot holding key, or the empty slot where it goes (the table is
 * never full: it grows at half load). */
static struct slot *probe(struct slot *slots, size_t cap, const char *key) {
  size_t i = (size_t)linli_hash_str(key) & (cap - 1);
  while (slots[i].key != NULL && strcmp(slots[i].key, key) != 0)
    i = (i + 1) & (cap - 1);
  return &slots[i];
}

static int grow(linli_strmap_t *m) {
  if (m->cap > SIZE_MAX / 2 / sizeof(struct slot))
    return LINLI_ERR_NOMEM;
  size_t cap = m->cap * 2;
  struct slot *slots = calloc(cap, sizeof *slots);
  if (slots == NULL)
    return LINLI_ERR_NOMEM;
  for (size_t i = 0; i < m->cap; i++)
    if (m->slots[i].key != NULL)
      *probe(slots, cap, m->slots[i].key) = m->slots[i];
  free(m->slots);
  m->slots = slots;
  m->cap = cap;
  return LINLI_OK;
}

void *linli_strmap_find(const linli_strmap_t *m, const char *key) {
  if (m == NULL || key == NULL)
    return NULL;
  struct slot *s = probe(m->slots, m->cap, key);
  return s->key != NULL ? s->value : NULL;
}

void *linli_strmap_get_or_add(linli_strmap_t *m, const char *key,
                              int *created, const char **stored_key) {
  if (created != NULL)
    *created = 0;
  if (m == NULL || key == NULL)
    return NULL;
  struct slot *s = probe(m->slots, m->cap, key);
  if (s->key == NULL) {
    if ((m->count + 1) * 2 > m->cap) {
      if (grow(m) != LINLI_OK)
        return NULL;
      s = probe(m->slots, m->cap, key);
    }
    char *k = strdup(key);
    void *v = calloc(1, m->value_size);
    if (k == NULL || v == NULL) {
      free(k);
      free(v);
      return NULL;
    }
    s->key = k;
    s->value = v;
    m->count++;
    if (created != NULL)
      *created = 1;
  }
  if (stored_key != NULL)
    *stored_key = s->key;
  return s->value;
}

size_t linli_strmap_count(const linli_strmap_t *m) {
  return m != NULL ? m->count : 0;
}

size_t linli_strmap_capacity(const linli_strmap_t *m) {
  return m != NULL ? m->cap : 0;
}

void *linli_strmap_at(const linli_strmap_t *m, size_t i, const char **key) {
  if (m == NULL || i >= m->cap || m->slots[i].key == NULL)
    return NULL;
  if (key != NULL)
    *key = m->slots[i].key;
  return m->slots[i].value;
}
