/*
 * scripts.h - the reserver's Redis Lua: one batch body (a
 * linli_redis_script_batch) that applies every stock effect of one
 * warehouse shard for a whole input batch, in input order, and the loader
 * of a warehouse's stock. Outcomes are strings (replies.h parses them), so
 * that a redelivered input re-produces identical events.
 *
 * Key layout of a warehouse W (all under the tag {w:W}, P = "{w:W}:"):
 *   avail, resv, sold, init   hashes sku -> units (init = sum of adjustments)
 *   o:<order_id>              hash: st (RESERVED|COMMITTED|CANCELLED|EXPIRED|
 *                             REJECTED), ln ("sku:qty,..."), exp, tot, sc,
 *                             pb (the OrderPlaced bytes), usr, eid (the
 *                             placing event's id), out (its outcome), txn,
 *                             amt, rf:<payment txn> (refund already asked)
 *                             cmp (its campaign), op (its orders partition),
 *                             hold (paid, held until the campaign settles),
 *                             gfr (what the settler's GROUP_FAILED refund
 *                             returns for it, against a later payment).
 *                             It expires orders.retention_s after the order
 *                             reached a final state (a held order is not
 *                             final). State GFAILED: released because its
 *                             campaign failed.
 *   cmo:<campaign>            set of the campaign's undecided orders here
 *   cmp:<campaign>            hash: st (SETTLED|FAILED), px (settled unit
 *                             price); expires orders.retention_s after the
 *                             decision
 *   loaded                    present once stock was loaded (from PostgreSQL)
 *
 * The batch body refuses a whole shard without `loaded` (a TRYAGAIN error
 * carrying RESERVER_NOT_LOADED, before any effect), so that the process may
 * cache "this warehouse is loaded" and still never apply an effect to stock
 * that Redis lost since.
 *
 * Effects (A[1] is the operation; ids were validated by the caller):
 *   P order_id lines exp_ms total sc pb prereject retention_s user event_id
 *     campaign_id orders_partition
 *       -> RESERVED | DUP | REJ|<reason>|<detail> | SHORT|sku:req:avail;...
 *          | SAME|<first outcome> (the same event id again)
 *          (REJ|INVALID_ORDER|... when the campaign failed here already)
 *   Y order_id txn amount retention_s
 *       -> COMMITTED|<sc>|<over>|<pb> | HELD|<sc>|<over>|<pb> (campaign
 *          undecided) | CPAID|<price>|<sc>|<over>|<pb> (campaign settled) |
 *          UNDER|<user>|<total> | REPEAT | DOUBLE|<user>|<txn> |
 *          LATE|<user> | CANCELLED|<user> | REJECTED|<user> |
 *          GFAIL|<user>|<covered> (campaign failed) | NOORDER
 *   S campaign_id price retention_s
 *       -> SETTLED|<price>|<n>|<entries of the held orders now released>
 *          | ALREADY|<state>
 *   F campaign_id 0 retention_s refunds("order:fen,...")
 *       -> FAILED|0|<n>|<entries of the orders released> | ALREADY|<state>
 *      (entries: replies.h, struct rsv_camp_order)
 *   R order_id CANCELLED|EXPIRED deadline_ms retention_s
 *       -> RELEASED|<user> | EARLY|<deadline> | PAID|<user> |
 *          ALREADY|<state> | NOORDER
 *   A sku delta -> OK|<available> | NEG|<available>
 */
#ifndef RESERVER_SCRIPTS_H
#define RESERVER_SCRIPTS_H

/* Text of the error a shard returns when `loaded` is missing. */
#define RESERVER_NOT_LOADED "warehouse stock not loaded"

extern const char RESERVER_LUA_STOCK[];
extern const char RESERVER_LUA_LOAD[];

#endif
