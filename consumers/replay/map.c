/*
 * map.c - see map.h. FNV-1a hashing, linear probing, no deletion (the
 * audit only ever adds).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "map.h"
#include "linli/hash.h"

struct slot {
  char *key;
  void *value;
};

struct map {
  struct slot *slots;
  size_t cap, count, value_size;
};

struct map *map_new(size_t value_size) {
  struct map *m = calloc(1, sizeof *m);
  if (!m)
    return NULL;
  m->cap = 64;
  m->value_size = value_size;
  m->slots = calloc(m->cap, sizeof *m->slots);
  if (!m->slots) {
    free(m);
    return NULL;
  }
  return m;
}

void map_free(struct map *m) {
  if (!m)
    return;
  for (size_t i = 0; i < m->cap; i++) {
    free(m->slots[i].key);
    free(m->slots[i].value);
  }
  free(m->slots);
  free(m);
}

static struct slot *probe(struct slot *slots, size_t cap, const char *key) {
  size_t i = linli_hash_str(key) & (cap - 1);
  while (slots[i].key && strcmp(slots[i].key, key) != 0)
    i = (i + 1) & (cap - 1);
  return &slots[i];
}

static int grow(struct map *m) {
  size_t cap = m->cap * 2;
  struct slot *slots = calloc(cap, sizeof *slots);
  if (!slots)
    return -1;
  for (size_t i = 0; i < m->cap; i++)
    if (m->slots[i].key)
      *probe(slots, cap, m->slots[i].key) = m->slots[i];
  free(m->slots);
  m->slots = slots;
  m->cap = cap;
  return 0;
}

void *map_find(const struct map *m, const char *key) {
  struct slot *s = probe(m->slots, m->cap, key);
  return s->key ? s->value : NULL;
}

void *map_get_or_add(struct map *m, const char *key, int *created) {
  if (created)
    *created = 0;
  struct slot *s = probe(m->slots, m->cap, key);
  if (s->key)
    return s->value;
  if ((m->count + 1) * 2 > m->cap) {
    if (grow(m) != 0)
      return NULL;
    s = probe(m->slots, m->cap, key);
  }
  s->key = strdup(key);
  s->value = calloc(1, m->value_size);
  if (!s->key || !s->value) {
    free(s->key);
    free(s->value);
    s->key = NULL;
    s->value = NULL;
    return NULL;
  }
  m->count++;
  if (created)
    *created = 1;
  return s->value;
}

size_t map_count(const struct map *m) { return m->count; }
size_t map_capacity(const struct map *m) { return m->cap; }

void *map_at(const struct map *m, size_t i, const char **key) {
  if (i >= m->cap || !m->slots[i].key)
    return NULL;
  if (key)
    *key = m->slots[i].key;
  return m->slots[i].value;
}
