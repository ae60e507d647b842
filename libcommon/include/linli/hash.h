/*
 * hash.h - the string hash of linli's in-memory tables and of the
 * notifier's choice of Redis shard.
 */
#ifndef LINLI_HASH_H
#define LINLI_HASH_H

#include <stdint.h>

/*
 * FNV-1a over the bytes of s (NUL-terminated), with the offset basis
 * 1469598103934665603 that these tables always used (FNV's own is
 * 14695981039346656037). It must stay as it is: notifier shards of state
 * already in Redis were chosen with it.
 */
uint64_t linli_hash_str(const char *s);

#endif
