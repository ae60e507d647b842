/*
 * notifier_keys.c - the notifier's Redis key names (see
 * domain/notifier_keys.h): formatting only, no I/O.
 */
#include "domain/notifier_keys.h"

#include <stdio.h>

#include "linli/error.h"
#include "linli/redis.h"

int dom_nt_tag(char *buf, size_t len, const char *prefix, int shard) {
  int n = snprintf(buf, len, "%s:%d", prefix, shard);
  return n < 0 || (size_t)n >= len ? LINLI_ERR_TOOBIG : LINLI_OK;
}

int dom_nt_key(char *buf, size_t len, const char *prefix, int shard,
               const char *suffix) {
  char tag[128];
  int rc = dom_nt_tag(tag, sizeof tag, prefix, shard);
  return rc != LINLI_OK ? rc : linli_redis_key(buf, len, tag, suffix);
}
