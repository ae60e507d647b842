/*
 * scripts.c - Lua bodies of the reserver's Redis effects (see scripts.h).
 * Outcomes are "WORD" or "WORD|detail"; sku ids never contain ':' ',' '|'
 * (ids are [A-Za-z0-9_-]), so the simple separators are unambiguous.
 */
#include "scripts.h"

/* First lines of every script that touches stock: `loaded` is the last key.
 * An error reply leaves the high-water mark and the outcome unrecorded. */
#define LOADED_GUARD                                                         \
  "if redis.call('EXISTS', KEYS[#KEYS]) == 0 then\n"                          \
  "  return redis.error_reply('TRYAGAIN " RESERVER_NOT_LOADED "')\n"         \
  "end\n"

/*
 * Place an order, all lines or none.
 * KEYS[3] avail, KEYS[4] resv, KEYS[5] order key, KEYS[6] loaded
 * ARGV[4] lines "sku:qty,..." (merged, validated), ARGV[5] expires_at_ms,
 * ARGV[6] total_fen, ARGV[7] storage class, ARGV[8] OrderPlaced bytes,
 * ARGV[9] pre-decided rejection ("" or UNKNOWN_SKU|DELISTED|INVALID_ORDER
 * with detail after '|', or DUPLICATE when the order id is already placed
 * in another warehouse), ARGV[10] TTL seconds for finished orders,
 * ARGV[11] user id.
 * Outcomes: DUP | REJ|<reason>|<detail> | SHORT|sku:req:avail;... | RESERVED
 */
const char RESERVER_LUA_PLACE[] =
    LOADED_GUARD
    "if redis.call('EXISTS', KEYS[5]) == 1 then return 'DUP' end\n"
    "if ARGV[9] == 'DUPLICATE' then return 'DUP' end\n"
    "if ARGV[9] ~= '' then\n"
    "  redis.call('HSET', KEYS[5], 'st', 'REJECTED', 'usr', ARGV[11])\n"
    "  redis.call('EXPIRE', KEYS[5], ARGV[10])\n"
    "  return 'REJ|' .. ARGV[9]\n"
    "end\n"
    "local short = {}\n"
    "local lines = {}\n"
    "for sku, qty in string.gmatch(ARGV[4], '([^:,]+):(%d+)') do\n"
    "  qty = tonumber(qty)\n"
    "  local a = tonumber(redis.call('HGET', KEYS[3], sku) or '0')\n"
    "  if a < qty then short[#short + 1] = sku .. ':' .. qty .. ':' .. a end\n"
    "  lines[#lines + 1] = {sku, qty}\n"
    "end\n"
    "if #short > 0 then\n"
    "  redis.call('HSET', KEYS[5], 'st', 'REJECTED', 'usr', ARGV[11])\n"
    "  redis.call('EXPIRE', KEYS[5], ARGV[10])\n"
    "  return 'SHORT|' .. table.concat(short, ';')\n"
    "end\n"
    "for _, l in ipairs(lines) do\n"
    "  redis.call('HINCRBY', KEYS[3], l[1], -l[2])\n"
    "  redis.call('HINCRBY', KEYS[4], l[1], l[2])\n"
    "end\n"
    "redis.call('HSET', KEYS[5], 'st', 'RESERVED', 'ln', ARGV[4], 'exp', ARGV[5],\n"
    "           'tot', ARGV[6], 'sc', ARGV[7], 'pb', ARGV[8],\n"
    "           'usr', ARGV[11])\n"
    "return 'RESERVED'\n";

/*
 * Pay an order.
 * KEYS[3] resv, KEYS[4] sold, KEYS[5] order key, KEYS[6] loaded
 * ARGV[4] payment txn id, ARGV[5] amount_fen, ARGV[6] TTL seconds of a
 * paid order (it is finished: only repeated or double payments need it)
 * Outcomes: NOORDER | COMMITTED|<sc>|<OrderPlaced bytes> | REPEAT |
 *   DOUBLE|<user>|<first txn> | LATE|<user> (expired) | CANCELLED|<user> |
 *   REJECTED|<user>
 * A refund-worthy outcome records rf:<txn>, so the same notice again is
 * REPEAT and no second refund is asked for.
 */
const char RESERVER_LUA_PAY[] =
    LOADED_GUARD
    "local st = redis.call('HGET', KEYS[5], 'st')\n"
    "if not st then return 'NOORDER' end\n"
    "if st == 'RESERVED' then\n"
    "  local ln = redis.call('HGET', KEYS[5], 'ln')\n"
    "  for sku, qty in string.gmatch(ln, '([^:,]+):(%d+)') do\n"
    "    redis.call('HINCRBY', KEYS[3], sku, -tonumber(qty))\n"
    "    redis.call('HINCRBY', KEYS[4], sku, tonumber(qty))\n"
    "  end\n"
    "  redis.call('HSET', KEYS[5], 'st', 'COMMITTED', 'txn', ARGV[4], 'amt', ARGV[5])\n"
    "  redis.call('EXPIRE', KEYS[5], ARGV[6])\n"
    "  local f = redis.call('HMGET', KEYS[5], 'sc', 'pb')\n"
    "  return 'COMMITTED|' .. (f[1] or '0') .. '|' .. (f[2] or '')\n"
    "end\n"
    "if st == 'COMMITTED' and redis.call('HGET', KEYS[5], 'txn') == ARGV[4] then\n"
    "  return 'REPEAT'\n"
    "end\n"
    "if redis.call('HEXISTS', KEYS[5], 'rf:' .. ARGV[4]) == 1 then return 'REPEAT' end\n"
    "redis.call('HSET', KEYS[5], 'rf:' .. ARGV[4], ARGV[5])\n"
    "local usr = redis.call('HGET', KEYS[5], 'usr') or ''\n"
    "if st == 'COMMITTED' then\n"
    "  return 'DOUBLE|' .. usr .. '|' .. redis.call('HGET', KEYS[5], 'txn')\n"
    "end\n"
    "if st == 'EXPIRED' then return 'LATE|' .. usr end\n"
    "if st == 'CANCELLED' then return 'CANCELLED|' .. usr end\n"
    "return 'REJECTED|' .. usr\n";

/*
 * Release a live reservation (cancel or expiry).
 * KEYS[3] avail, KEYS[4] resv, KEYS[5] order key, KEYS[6] loaded
 * ARGV[4] new state (CANCELLED|EXPIRED), ARGV[5] expiry deadline judged
 * (0 for a cancel), ARGV[6] TTL seconds for finished orders.
 * Outcomes: NOORDER | RELEASED|<user> | EARLY|<the order's deadline> (an
 *   expiry judged against an earlier deadline than the order's) |
 *   PAID|<user> | ALREADY|<state>
 */
const char RESERVER_LUA_RELEASE[] =
    LOADED_GUARD
    "local st = redis.call('HGET', KEYS[5], 'st')\n"
    "if not st then return 'NOORDER' end\n"
    "local usr = redis.call('HGET', KEYS[5], 'usr') or ''\n"
    "if st == 'COMMITTED' then return 'PAID|' .. usr end\n"
    "if st ~= 'RESERVED' then return 'ALREADY|' .. st end\n"
    "local exp = redis.call('HGET', KEYS[5], 'exp') or '0'\n"
    "if ARGV[4] == 'EXPIRED' and tonumber(ARGV[5]) < tonumber(exp) then\n"
    "  return 'EARLY|' .. exp\n"
    "end\n"
    "local ln = redis.call('HGET', KEYS[5], 'ln')\n"
    "for sku, qty in string.gmatch(ln, '([^:,]+):(%d+)') do\n"
    "  redis.call('HINCRBY', KEYS[4], sku, -tonumber(qty))\n"
    "  redis.call('HINCRBY', KEYS[3], sku, tonumber(qty))\n"
    "end\n"
    "redis.call('HSET', KEYS[5], 'st', ARGV[4])\n"
    "redis.call('EXPIRE', KEYS[5], ARGV[6])\n"
    "return 'RELEASED|' .. usr\n";

/*
 * Adjust stock (restock, damage, recall, count correction).
 * KEYS[3] avail, KEYS[4] init, KEYS[5] loaded
 * ARGV[4] sku, ARGV[5] signed delta
 * Outcomes: OK|<available after> | NEG|<available> (refused: it would
 * make available stock negative)
 */
const char RESERVER_LUA_ADJUST[] =
    LOADED_GUARD
    "local a = tonumber(redis.call('HGET', KEYS[3], ARGV[4]) or '0')\n"
    "local d = tonumber(ARGV[5])\n"
    "if a + d < 0 then return 'NEG|' .. a end\n"
    "redis.call('HINCRBY', KEYS[3], ARGV[4], d)\n"
    "redis.call('HINCRBY', KEYS[4], ARGV[4], d)\n"
    "return 'OK|' .. (a + d)\n";

/*
 * Load a warehouse's stock from the record when its hot state is missing.
 * Not HWM-wrapped: it applies only while the `loaded` marker is absent.
 * KEYS[1] loaded, KEYS[2] avail, KEYS[3] resv, KEYS[4] sold, KEYS[5] init,
 * KEYS[6] the warehouse's HWM hash ("{w:W}:hwm", linli/redis.h)
 * ARGV[1] n, then n times: sku, available, reserved, sold, initial;
 * then pairs "linli.inventory.v1:<partition>", offset: the record already
 * holds the warehouse's adjustments up to that offset, so the HWM moves
 * there (never back) and the adjust script skips them.
 */
const char RESERVER_LUA_LOAD[] =
    "if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end\n"
    "local n = tonumber(ARGV[1])\n"
    "for i = 2, 1 + 5 * n, 5 do\n"
    "  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])\n"
    "  redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 2])\n"
    "  redis.call('HSET', KEYS[4], ARGV[i], ARGV[i + 3])\n"
    "  redis.call('HSET', KEYS[5], ARGV[i], ARGV[i + 4])\n"
    "end\n"
    "for i = 2 + 5 * n, #ARGV, 2 do\n"
    "  local cur = tonumber(redis.call('HGET', KEYS[6], ARGV[i]) or '-1')\n"
    "  if tonumber(ARGV[i + 1]) > cur then\n"
    "    redis.call('HSET', KEYS[6], ARGV[i], ARGV[i + 1])\n"
    "  end\n"
    "end\n"
    "redis.call('SET', KEYS[1], '1')\n"
    "return 1\n";
