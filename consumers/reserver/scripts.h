/*
 * scripts.h - the reserver's Redis Lua scripts. Each runs inside the
 * offset high-water-mark wrapper (linli_redis_script_hwm), touches only
 * keys of one warehouse's hash tag {w:<warehouse_id>}, and returns its
 * outcome as a string that the C side turns into output events, so that a
 * redelivered input re-produces identical events.
 *
 * Key layout of a warehouse W (all under the tag {w:W}):
 *   avail, resv, sold, init   hashes sku -> units (init = sum of adjustments)
 *   o:<order_id>              hash: st (RESERVED|COMMITTED|CANCELLED|EXPIRED|
 *                             REJECTED), ln ("sku:qty,..."), exp, tot, sc,
 *                             pb (the OrderPlaced bytes), txn, amt,
 *                             rf:<payment txn> (refund already requested)
 *   loaded                    present once stock was loaded (from PostgreSQL)
 *
 * The place, pay, release and adjust scripts take `loaded` as their last
 * key and refuse to run without it (a TRYAGAIN error carrying
 * RESERVER_NOT_LOADED, which records nothing), so that the process may
 * cache "this warehouse is loaded" and still never apply an effect to
 * stock that Redis lost since.
 */
#ifndef RESERVER_SCRIPTS_H
#define RESERVER_SCRIPTS_H

/* Text of the error a script returns when `loaded` is missing. */
#define RESERVER_NOT_LOADED "warehouse stock not loaded"

/* KEYS[3..] and ARGV[4..]: see scripts.c */
extern const char RESERVER_LUA_PLACE[];
extern const char RESERVER_LUA_PAY[];
extern const char RESERVER_LUA_RELEASE[];
extern const char RESERVER_LUA_ADJUST[];
extern const char RESERVER_LUA_LOAD[];

#endif
