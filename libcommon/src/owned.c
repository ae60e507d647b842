/*
 * owned.c - the owned-partition map of owned.h, kept by the runner's
 * rebalance callback and read by a consumer's tick.
 */
#include <string.h>

#include "linli/owned.h"

void linli_owned_update(linli_owned_t *o,
                        const rd_kafka_topic_partition_list_t *parts,
                        int owned) {
  if (o->topic == NULL)
    return;
  for (int i = 0; i < parts->cnt; i++) {
    const rd_kafka_topic_partition_t *p = &parts->elems[i];
    if (strcmp(p->topic, o->topic) == 0 && p->partition >= 0 &&
        p->partition < LINLI_OWNED_MAX)
      o->map[p->partition] = owned ? 1 : 0;
  }
}

int linli_owned_next(const linli_owned_t *o, int from) {
  for (int p = from < 0 ? 0 : from; p < LINLI_OWNED_MAX; p++)
    if (o->map[p])
      return p;
  return -1;
}

int linli_owned_each(const linli_owned_t *o, linli_owned_fn fn, void *app,
                     struct linli_emit *emit, int64_t now_ms) {
  for (int p = linli_owned_next(o, 0); p >= 0; p = linli_owned_next(o, p + 1)) {
    int rc = fn(app, emit, p, now_ms);
    if (rc != 0)
      return rc;
  }
  return 0;
}
