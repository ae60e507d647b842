/*
 * notifier_keys.h - the notifier's hot state in Redis: the names of its
 * keys, for the notifier and the tests (the Lua in
 * consumers/notifier/scripts.c describes each key's contents).
 *
 * State lives in nshards hash tags "{<prefix>:<k>}" (prefix is
 * notifier.redis_prefix; k is linli_hash_str of the order or campaign id
 * modulo the shard count), so every script touches one tag:
 *   {P:k}:q     zset: webhook retry queue, notification id -> when due
 *   {P:k}:rem   zset: order -> when its payment reminder is due
 *   {P:k}:...   the per-order and per-campaign state and the batch
 *               wrapper's marks and outcomes
 * Builders return LINLI_OK, or LINLI_ERR_TOOBIG when buf is too small
 * (LINLI_ERR_INVALID for a prefix holding '{' or '}').
 */
#ifndef DOMAIN_NOTIFIER_KEYS_H
#define DOMAIN_NOTIFIER_KEYS_H

#include <stddef.h>

#define DOM_NT_QUEUE "q"
#define DOM_NT_REMINDERS "rem"

/* "<prefix>:<shard>": the hash tag's content. */
int dom_nt_tag(char *buf, size_t len, const char *prefix, int shard);

/* "{<prefix>:<shard>}:<suffix>", e.g. suffix DOM_NT_QUEUE. */
int dom_nt_key(char *buf, size_t len, const char *prefix, int shard,
               const char *suffix);

#endif
