/*
 * redis.h - Redis for linli's hot state: a synchronous hiredis connection
 * that reconnects with backoff, a Lua script registry (SCRIPT LOAD once,
 * EVALSHA, reload on NOSCRIPT), and the offset high-water-mark wrapper of
 * DESIGN.md rule 2.
 *
 * High-water-mark (HWM) scripts. linli_redis_script_hwm() wraps a Lua body
 * so that an effect for an input record (topic, partition, offset) applies
 * at most once and a redelivered input gets the first recorded outcome back:
 *   KEYS[1] = the shard's HWM hash, "{tag}:hwm" (field "topic:partition")
 *   KEYS[2] = the outcome key for this input, "{tag}:out:topic:partition:offset"
 *   ARGV[1] = "topic:partition", ARGV[2] = offset, ARGV[3] = outcome TTL (s)
 *   KEYS[3..], ARGV[4..] belong to the body, which must `return` a string
 *   (the outcome) and may read/write only keys of the same hash tag.
 * The wrapped script returns {replayed (0|1), outcome}. Build the body's
 * keys with linli_redis_key() so that every key shares the shard's hash tag
 * and the script touches a single Redis Cluster slot.
 */
#ifndef LINLI_REDIS_H
#define LINLI_REDIS_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

typedef struct linli_redis linli_redis_t;
typedef struct linli_redis_script linli_redis_script_t;

/* Connect (host, port, password may be NULL/""). Retries with backoff
 * (100 ms doubling to 2 s) for up to connect_timeout_ms before failing with
 * LINLI_ERR_TRANSIENT. *out owned by the caller (linli_redis_free). */
int linli_redis_connect(const char *host, int port, const char *password,
                        int connect_timeout_ms, linli_redis_t **out,
                        char *err, size_t errlen);
void linli_redis_free(linli_redis_t *r);

/*
 * Run one command (argv form; never a format string with user data).
 * On a lost connection it reconnects (with backoff, up to the connect
 * timeout) and retries once. *reply owned by the caller (freeReplyObject).
 * A Redis error reply is returned as reply with type REDIS_REPLY_ERROR and
 * LINLI_OK: the caller decides. LINLI_ERR_TRANSIENT when unreachable.
 */
int linli_redis_command(linli_redis_t *r, int argc, const char **argv,
                        const size_t *argvlen, redisReply **reply);

/* Register a script (SCRIPT LOAD now and after every reconnect). The
 * registry owns the script; it lives as long as r. name is for logs. */
int linli_redis_script_register(linli_redis_t *r, const char *name,
                                const char *lua, linli_redis_script_t **out);
/* Register body wrapped in the HWM prologue/epilogue described above. */
int linli_redis_script_hwm(linli_redis_t *r, const char *name,
                           const char *body_lua, linli_redis_script_t **out);

/* EVALSHA; on NOSCRIPT (e.g. after SCRIPT FLUSH or a failover) loads the
 * script again and retries. Same reply/ownership rules as
 * linli_redis_command. argv/argvlen may be NULL when nargs is 0. */
int linli_redis_eval(linli_redis_t *r, linli_redis_script_t *s, int nkeys,
                     const char **keys, int nargs, const char **args,
                     const size_t *argslen, redisReply **reply);

/*
 * Run an HWM-wrapped script for one input record. tag is the shard's hash
 * tag content ("w:W1" -> keys "{w:W1}:..."); extra_keys/extra_args are the
 * body's KEYS[3..] and ARGV[4..]. On success *replayed tells whether the
 * outcome was recorded earlier and *outcome (malloc'd, owned by the caller,
 * NUL-terminated, length in *outcome_len) is the recorded outcome.
 * A Lua error from the body returns LINLI_ERR_INVALID with its message.
 */
int linli_redis_eval_hwm(linli_redis_t *r, linli_redis_script_t *s,
                         const char *tag, const char *topic,
                         int32_t partition, int64_t offset, int nextra_keys,
                         const char **extra_keys, int nextra_args,
                         const char **extra_args, const size_t *extra_argslen,
                         int *replayed, char **outcome, size_t *outcome_len,
                         char *err, size_t errlen);

/* Write "{tag}:suffix" into buf (the key of a shard's state). LINLI_OK,
 * LINLI_ERR_INVALID if tag is empty or holds '{' or '}', LINLI_ERR_TOOBIG if
 * buf is too small. */
int linli_redis_key(char *buf, size_t len, const char *tag, const char *suffix);

/* TTL of recorded outcomes, seconds (default 7 days). */
void linli_redis_set_outcome_ttl(linli_redis_t *r, int64_t seconds);

/* The underlying hiredis context (valid until the next reconnect). */
redisContext *linli_redis_context(linli_redis_t *r);

#endif
