/*
 * strmap.h - a string-keyed hash map for in-memory state gathered by id: a
 * batch's per-key state (the notifier), a batch's Redis shards by tag
 * (linli/shards.h), linli-replay's fold of the log. Open addressing with
 * linear probing over linli_hash_str, grows at half load, no deletion.
 * Keys are copied; values are fixed-size, zeroed on insert, owned by the
 * map and never move (a pointer to one stays valid until the map is
 * freed).
 */
#ifndef LINLI_STRMAP_H
#define LINLI_STRMAP_H

#include <stddef.h>

typedef struct linli_strmap linli_strmap_t;

/* A map of values of value_size bytes with room for hint keys before it
 * grows. LINLI_ERR_INVALID (value_size 0), LINLI_ERR_NOMEM. */
int linli_strmap_new(size_t value_size, size_t hint, linli_strmap_t **out);
void linli_strmap_free(linli_strmap_t *m);

/* The value of key, inserted (zeroed) if absent; NULL when out of memory.
 * *created (may be NULL) tells whether it was inserted; *stored_key (may
 * be NULL) is the map's copy of the key, valid as long as the map. */
void *linli_strmap_get_or_add(linli_strmap_t *m, const char *key,
                              int *created, const char **stored_key);
/* The value of key, or NULL. */
void *linli_strmap_find(const linli_strmap_t *m, const char *key);
size_t linli_strmap_count(const linli_strmap_t *m);

/* Iteration: i from 0 while i < linli_strmap_capacity(m); linli_strmap_at
 * is NULL for an empty slot, else the value (and *key, may be NULL). The
 * order is the table's, not insertion order. */
size_t linli_strmap_capacity(const linli_strmap_t *m);
void *linli_strmap_at(const linli_strmap_t *m, size_t i, const char **key);

#endif
