/*
 * map.h - a string-keyed hash map for the audit's in-memory fold of the
 * log (orders, stock cells, refunds). Open addressing, grows at 50% load;
 * values are fixed-size structs owned by the map, zeroed on insert.
 */
#ifndef REPLAY_MAP_H
#define REPLAY_MAP_H

#include <stddef.h>

struct map;

struct map *map_new(size_t value_size);
void map_free(struct map *m);
/* The value for key, inserted (zeroed) if absent; NULL on allocation
 * failure. *created (may be NULL) tells whether it was inserted. */
void *map_get_or_add(struct map *m, const char *key, int *created);
/* The value for key, or NULL. */
void *map_find(const struct map *m, const char *key);
size_t map_count(const struct map *m);
/* Iterate: i from 0 while i < map_capacity(); map_at returns NULL for
 * empty slots. */
size_t map_capacity(const struct map *m);
void *map_at(const struct map *m, size_t i, const char **key);

#endif
