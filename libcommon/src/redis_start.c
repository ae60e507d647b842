/*
 * redis_start.c - the Redis part of a consumer's start-up (see
 * linli_redis_start_batch), so every consumer fails the same way when
 * Redis is down or refuses its script.
 */
#include "linli/error.h"
#include "linli/log.h"
#include "linli/redis.h"

int linli_redis_start_batch(const struct linli_config *cfg, const char *name,
                            const char *body_lua, linli_redis_t **out,
                            linli_redis_script_t **script) {
  char err[1024] = "script registration failed";
  int rc = linli_redis_connect_config(cfg, out, err, sizeof err);
  if (rc == LINLI_OK)
    rc = linli_redis_script_batch(*out, name, body_lua, script);
  if (rc != LINLI_OK)
    LINLI_ERROR("redis start-up failed", "reason=\"%s\"", err);
  return rc;
}
