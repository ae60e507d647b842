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
/* linli_redis_connect with the config's redis.host, redis.port,
 * redis.password and redis.connect_timeout_ms. */
struct linli_config;
int linli_redis_connect_config(const struct linli_config *cfg,
                               linli_redis_t **out, char *err, size_t errlen);

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

/* ------------------------------------------------------------ pipelines */

/* One command of a pipeline (argv form; lens may be NULL: strlen). */
typedef struct linli_redis_cmd {
  int argc;
  const char **argv;
  const size_t *lens;
} linli_redis_cmd_t;

/*
 * Send n commands in one write and read their n replies: one round trip,
 * and Redis applies them in one event-loop turn, so their writes share one
 * fsync. Only for commands that are safe to send twice: after a lost
 * connection it reconnects and sends them all once more. On LINLI_OK
 * replies[0..n-1] are owned by the caller (freeReplyObject; error replies
 * included); otherwise none is set.
 */
int linli_redis_pipeline(linli_redis_t *r, int n, const linli_redis_cmd_t *cmds,
                         redisReply **replies);

/* ------------------------------------------------ batch HWM scripts */

/*
 * Batch high-water-mark scripts: DESIGN.md rule 2 for a whole batch of a
 * consumer at once, one EVALSHA per shard per batch.
 *
 * The body is Lua that assigns two functions (both already declared local
 * by the wrapper; P is the shard's key prefix "{tag}:"):
 *   before = function(P) ... end  -- optional; runs once, first; returning a
 *       value (e.g. redis.error_reply('TRYAGAIN ...')) fails the whole call
 *       with that reply before any effect.
 *   apply = function(P, A) ... return outcome end  -- one input's effect;
 *       A holds the input's arguments (1-based); it returns a string.
 * Every key the body touches must start with P (one hash tag, one Redis
 * Cluster slot).
 *
 * For each input, above the mark of its (topic, partition), the wrapper runs
 * apply, moves the mark and records the outcome; at or below the mark it
 * returns the recorded outcome instead (a redelivery). A Lua error inside
 * apply is recorded as the outcome "ERR|<message>" so that the input goes to
 * the DLQ and the partition keeps moving (bodies validate before they write:
 * Redis does not undo writes made before the error).
 *
 * Outcomes live in one hash per shard and partition, "{tag}:out:<topic>:
 * <partition>", and only as long as they can be asked for again: the runner
 * hands each batch the offset it starts at in each partition (everything
 * before it is committed in Kafka), and a batch that starts above every
 * recorded offset drops the hash first. Redis memory then follows the open
 * batch, never history; the hash also expires after the outcome TTL
 * (linli_redis_set_outcome_ttl), for shards that see no later batch.
 */
typedef struct linli_redis_batch linli_redis_batch_t;

/* What happened to one input of a batch. */
enum linli_redis_effect {
  LINLI_REDIS_APPLIED = 0,   /* applied now; outcome is the body's */
  LINLI_REDIS_REPLAYED = 1,  /* applied before; outcome as first recorded */
  LINLI_REDIS_FORGOTTEN = 2, /* applied before, outcome no longer kept (its
                                batch was committed): emit nothing again */
};

/* Register a batch HWM body (see above); owned by r's registry. */
int linli_redis_script_batch(linli_redis_t *r, const char *name,
                             const char *body_lua, linli_redis_script_t **out);

/* A consumer's start: linli_redis_connect_config, then body_lua registered
 * as its batch script. On failure logs "redis start-up failed" with the
 * reason and returns the error (*out may then be set: free it as usual). */
int linli_redis_start_batch(const struct linli_config *cfg, const char *name,
                            const char *body_lua, linli_redis_t **out,
                            linli_redis_script_t **script);

/* A new, empty batch for one shard (tag as for linli_redis_key). */
int linli_redis_batch_new(linli_redis_script_t *s, const char *tag,
                          linli_redis_batch_t **out);
void linli_redis_batch_free(linli_redis_batch_t *b);
const char *linli_redis_batch_tag(const linli_redis_batch_t *b);
size_t linli_redis_batch_count(const linli_redis_batch_t *b);

/* Add the effect of input (topic, partition, offset) with its arguments
 * (copied; lens may be NULL). start is the offset the consumer's batch
 * starts at in that partition (linli_batch_start). Returns the input's
 * index in this batch (>= 0) or a negative error. Inputs of one partition
 * must come in offset order. */
int linli_redis_batch_add(linli_redis_batch_t *b, const char *topic,
                          int32_t partition, int64_t offset, int64_t start,
                          int nargs, const char **args, const size_t *lens);

/*
 * Run n shard batches: one EVALSHA each, all in one pipelined round trip
 * (reloading a script Redis forgot). Returns LINLI_ERR_TRANSIENT when Redis
 * is unreachable; otherwise LINLI_OK and each batch has its own status
 * (linli_redis_batch_status): a shard that refused (e.g. before() returned
 * TRYAGAIN) fails alone. Safe to run again: the marks make it a replay.
 */
int linli_redis_batch_exec(linli_redis_t *r, linli_redis_batch_t *const *bs,
                           size_t n, char *err, size_t errlen);

/* LINLI_OK once exec succeeded for this shard; LINLI_ERR_TRANSIENT for a
 * server-side "not now" (TRYAGAIN, BUSY, OOM, ...) whose text is in *msg
 * (may be NULL); LINLI_ERR_INVALID for any other error reply. */
int linli_redis_batch_status(const linli_redis_batch_t *b, const char **msg);

/* Input i's effect and outcome (valid until the batch is freed or run
 * again; NUL-terminated, binary-safe with *len). */
int linli_redis_batch_result(const linli_redis_batch_t *b, size_t i,
                             int *effect, const char **outcome, size_t *len);

/* Write "{tag}:suffix" into buf (the key of a shard's state). LINLI_OK,
 * LINLI_ERR_INVALID if tag is empty or holds '{' or '}', LINLI_ERR_TOOBIG if
 * buf is too small. */
int linli_redis_key(char *buf, size_t len, const char *tag, const char *suffix);

/* TTL of recorded outcomes, seconds (default 7 days). */
void linli_redis_set_outcome_ttl(linli_redis_t *r, int64_t seconds);

/* The underlying hiredis context (valid until the next reconnect). */
redisContext *linli_redis_context(linli_redis_t *r);

#endif
