/*
 * scripts.c - the notifier's Redis scripts. Every key starts with the
 * shard's prefix P = "{<prefix>:<k>}:" (one hash tag):
 *   P o:<order>     hash: u user, ev RESERVED event id, tot total, exp
 *                   payment deadline, st R|C|X, eta, pp pickup point
 *   P c:<campaign>  hash: order -> user (the participants)
 *   P rem           zset: order -> when its payment reminder is due
 *   P q             zset: webhook retry queue, id -> when due (or leased)
 *   P n:<id>        hash: b JSON body, u user, t template, c channel,
 *                   f first queued ms, a attempts, e last error
 *   P d:<id>        delivered to the webhook (TTL state_ttl_s)
 */
#include "notifier.h"

/*
 * The batch HWM body. A = ttl, queue max, now, then
 *   nset, (key suffix, field, value)*   state writes (one HSET and one
 *                                        EXPIRE per key)
 *   ndel, (key suffix, field)*          state deletes
 *   nrem, (op + or -, order, due)*      reminder index
 *   nnotes, (id, user, template, channel, packed, body)*
 * A note with a body is enqueued for the webhook unless it was queued or
 * delivered before ('D') or the queue is full ('F'); then 'Q'. No body:
 * '-'. The outcome lists, per note, flag, #user ':' user, #packed ':'
 * packed: everything needed to write the same events again on a replay.
 */
const char NT_LUA_BATCH[] =
    "apply = function(P, A)\n"
    "  local ttl, qmax, now = tonumber(A[1]), tonumber(A[2]), A[3]\n"
    "  local i = 4\n"
    "  local n = tonumber(A[i]); i = i + 1\n"
    "  local sets, keys = {}, {}\n"
    "  for k = 1, n do\n"
    "    local key = A[i]\n"
    "    if not sets[key] then sets[key] = {}; keys[#keys+1] = key end\n"
    "    local t = sets[key]\n"
    "    t[#t+1] = A[i+1]; t[#t+1] = A[i+2]\n"
    "    i = i + 3\n"
    "  end\n"
    "  for _, key in ipairs(keys) do\n"
    "    redis.call('HSET', P .. key, unpack(sets[key]))\n"
    "    redis.call('EXPIRE', P .. key, ttl)\n"
    "  end\n"
    "  n = tonumber(A[i]); i = i + 1\n"
    "  for k = 1, n do redis.call('HDEL', P .. A[i], A[i+1]); i = i + 2 end\n"
    "  n = tonumber(A[i]); i = i + 1\n"
    "  for k = 1, n do\n"
    "    if A[i] == '+' then redis.call('ZADD', P .. 'rem', A[i+2], A[i+1])\n"
    "    else redis.call('ZREM', P .. 'rem', A[i+1]) end\n"
    "    i = i + 3\n"
    "  end\n"
    "  n = tonumber(A[i]); i = i + 1\n"
    "  local out = {}\n"
    "  for k = 1, n do\n"
    "    local id, user, tpl, chan, packed, body =\n"
    "      A[i], A[i+1], A[i+2], A[i+3], A[i+4], A[i+5]\n"
    "    i = i + 6\n"
    "    local flag = '-'\n"
    "    if body ~= '' then\n"
    "      if redis.call('EXISTS', P .. 'd:' .. id, P .. 'n:' .. id) > 0 then\n"
    "        flag = 'D'\n"
    "      elseif redis.call('ZCARD', P .. 'q') >= qmax then\n"
    "        flag = 'F'\n"
    "      else\n"
    "        redis.call('HSET', P .. 'n:' .. id, 'b', body, 'u', user,\n"
    "                   't', tpl, 'c', chan, 'f', now, 'a', 0)\n"
    "        redis.call('ZADD', P .. 'q', now, id)\n"
    "        flag = 'Q'\n"
    "      end\n"
    "    end\n"
    "    out[#out+1] = flag .. #user .. ':' .. user .. #packed .. ':' .. packed\n"
    "  end\n"
    "  return table.concat(out)\n"
    "end\n";

/* Reminders due in one shard: KEYS[1] = P rem; ARGV = P, now, lease_until,
 * max. Returns (order, user, ev, tot, exp) per order still awaiting
 * payment; their index entry moves to lease_until (re-announced if the
 * transaction does not commit). Orders no longer awaiting payment leave. */
const char NT_LUA_REM_CLAIM[] =
    "local P = ARGV[1]\n"
    "local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2],\n"
    "                       'LIMIT', 0, tonumber(ARGV[4]))\n"
    "local out = {}\n"
    "for _, o in ipairs(ids) do\n"
    "  local h = redis.call('HMGET', P .. 'o:' .. o, 'st', 'u', 'ev', 'tot', 'exp')\n"
    "  if h[1] ~= 'R' or not h[2] or not h[3] then\n"
    "    redis.call('ZREM', KEYS[1], o)\n"
    "  else\n"
    "    redis.call('ZADD', KEYS[1], ARGV[3], o)\n"
    "    out[#out+1] = o; out[#out+1] = h[2]; out[#out+1] = h[3]\n"
    "    out[#out+1] = h[4] or '0'; out[#out+1] = h[5] or '0'\n"
    "  end\n"
    "end\n"
    "return out\n";

/* After the reminder's transaction committed: KEYS[1] = P rem; ARGV = P,
 * order, now, then (id, user, template, channel, body)*: enqueue each body
 * once (as NT_LUA_BATCH), then forget the order's reminder. */
const char NT_LUA_REM_DONE[] =
    "local P = ARGV[1]\n"
    "local i = 4\n"
    "while i + 4 <= #ARGV do\n"
    "  local id = ARGV[i]\n"
    "  if ARGV[i+4] ~= '' and\n"
    "     redis.call('EXISTS', P .. 'd:' .. id, P .. 'n:' .. id) == 0 then\n"
    "    redis.call('HSET', P .. 'n:' .. id, 'b', ARGV[i+4], 'u', ARGV[i+1],\n"
    "               't', ARGV[i+2], 'c', ARGV[i+3], 'f', ARGV[3], 'a', 0)\n"
    "    redis.call('ZADD', P .. 'q', ARGV[3], id)\n"
    "  end\n"
    "  i = i + 5\n"
    "end\n"
    "redis.call('ZREM', KEYS[1], ARGV[2])\n"
    "return 1\n";

/* Claim due webhook notifications: KEYS[1] = P q; ARGV = P, now,
 * lease_until, max. Each claimed id is leased (moved to lease_until) so no
 * other sender takes it while it is in flight; a sender that dies loses
 * only the lease. Returns (id, body, user, template, channel, first,
 * attempts) per id. */
const char NT_LUA_CLAIM[] =
    "local P = ARGV[1]\n"
    "local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2],\n"
    "                       'LIMIT', 0, tonumber(ARGV[4]))\n"
    "local out = {}\n"
    "for _, id in ipairs(ids) do\n"
    "  local h = redis.call('HMGET', P .. 'n:' .. id, 'b', 'u', 't', 'c', 'f', 'a')\n"
    "  if not h[1] or redis.call('EXISTS', P .. 'd:' .. id) == 1 then\n"
    "    redis.call('ZREM', KEYS[1], id)\n"
    "    redis.call('DEL', P .. 'n:' .. id)\n"
    "  else\n"
    "    redis.call('ZADD', KEYS[1], ARGV[3], id)\n"
    "    out[#out+1] = id\n"
    "    for j = 1, 6 do out[#out+1] = h[j] or '' end\n"
    "  end\n"
    "end\n"
    "return out\n";

/* The receiver answered 2xx: KEYS[1] = P q; ARGV = P, id, ttl. */
const char NT_LUA_ACK[] =
    "redis.call('SET', ARGV[1] .. 'd:' .. ARGV[2], '1', 'EX', tonumber(ARGV[3]))\n"
    "redis.call('DEL', ARGV[1] .. 'n:' .. ARGV[2])\n"
    "redis.call('ZREM', KEYS[1], ARGV[2])\n"
    "return 1\n";

/* Several 2xx at once: KEYS[1] = P q; ARGV = P, ttl, id... */
const char NT_LUA_ACK_MANY[] =
    "for i = 3, #ARGV do\n"
    "  redis.call('SET', ARGV[1] .. 'd:' .. ARGV[i], '1', 'EX', tonumber(ARGV[2]))\n"
    "  redis.call('DEL', ARGV[1] .. 'n:' .. ARGV[i])\n"
    "  redis.call('ZREM', KEYS[1], ARGV[i])\n"
    "end\n"
    "return #ARGV - 2\n";

/* A send failed: KEYS[1] = P q; ARGV = P, id, now, next due, fail after
 * (ms), error. Returns {'RETRY'}, {'DLQ', body, user, attempts} when it
 * failed for too long (the caller writes the DLQ, then drops it), or
 * {'GONE'} when it was acknowledged meanwhile. */
const char NT_LUA_FAIL[] =
    "local key = ARGV[1] .. 'n:' .. ARGV[2]\n"
    "if redis.call('EXISTS', key) == 0 then return {'GONE'} end\n"
    "redis.call('HSET', key, 'e', ARGV[6])\n"
    "local a = redis.call('HINCRBY', key, 'a', 1)\n"
    "local f = tonumber(redis.call('HGET', key, 'f') or ARGV[3])\n"
    "if tonumber(ARGV[3]) - f >= tonumber(ARGV[5]) then\n"
    "  return {'DLQ', redis.call('HGET', key, 'b'), redis.call('HGET', key, 'u'),\n"
    "          tostring(a)}\n"
    "end\n"
    "redis.call('ZADD', KEYS[1], ARGV[4], ARGV[2])\n"
    "return {'RETRY'}\n";

/* Forget a notification written to the DLQ: KEYS[1] = P q; ARGV = P, id. */
const char NT_LUA_DROP[] =
    "redis.call('DEL', ARGV[1] .. 'n:' .. ARGV[2])\n"
    "redis.call('ZREM', KEYS[1], ARGV[2])\n"
    "return 1\n";

/* Hold a claimed notification until later (quiet hours, rate limit):
 * KEYS[1] = P q; ARGV = P, id, when. */
const char NT_LUA_DELAY[] =
    "if redis.call('EXISTS', ARGV[1] .. 'n:' .. ARGV[2]) == 1 then\n"
    "  redis.call('ZADD', KEYS[1], 'XX', ARGV[3], ARGV[2])\n"
    "end\n"
    "return 1\n";
