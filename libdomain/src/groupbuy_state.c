/*
 * groupbuy_state.c - the settler's Lua body and the parser of its outcomes
 * (see groupbuy_state.h). Outcomes are "WORD|field|...": ids never hold
 * '|', ':' or ';' ([A-Za-z0-9_-]), so the separators are unambiguous.
 *
 * Money is never computed in Lua (its numbers are doubles, exact only to
 * 2^53): the body counts participants and units; prices and refunds are
 * computed in C by groupbuy.c.
 */
#include "domain/groupbuy_state.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "linli/error.h"
#include "settlements.pb-c.h"

/* A join's entry in {c:ID}:o is "user:qty:event_id:participants" (the
 * participants its JoinResult reported), or "!event_id|REASON|participants"
 * for a join that was refused for a reason that may change later (FULL,
 * OVER_USER_LIMIT): the same event again (a gateway retry republishing the
 * same bytes) gets that first answer back; another event for the same
 * order is decided as a new one. Entries written before the event id was
 * kept ("user:qty") still count as live joins. 'j' in {c:ID}:c counts the
 * live joins (missing on campaigns opened before it was kept: HLEN). */
#define STR_(x) #x
#define STR(x) STR_(x)

const char DOM_GB_LUA[] =
    "local function tier_of(tiers, n)\n"
    "  local t, i = -1, 0\n"
    "  for m in string.gmatch(tiers, '(%d+):%d+') do\n"
    "    if n >= tonumber(m) then t = i else break end\n"
    "    i = i + 1\n"
    "  end\n"
    "  return t\n"
    "end\n"
    /* A refusal that may change later is kept, so that the same event
     * again gets it back. */
    "local function refuse(O, A, why, n)\n"
    "  local out = why .. '|' .. n\n"
    "  redis.call('HSET', O, A[3], '!' .. A[5] .. '|' .. out)\n"
    "  return 'REJ|' .. out\n"
    "end\n"
    "apply = function(P, A)\n"
    "  local C, O, U = P .. '" DOM_GB_SUFFIX_CAMPAIGN "', P .. 'o', P .. 'u'\n"
    "  local op = A[1]\n"
    "  if op == 'open' then\n"
    "    if redis.call('EXISTS', C) == 1 then return 'DUPOPEN' end\n"
    "    redis.call('HSET', C, 'st', 'OPEN', 'tiers', A[2], 'cap', A[3],\n"
    "               'lim', A[4], 'dl', A[5], 'sku', A[6], 'wh', A[7],\n"
    "               'app', A[8], 'list', A[9], 'n', 0, 'j', 0, 'ann', -1)\n"
    "    return 'OPENED'\n"
    "  end\n"
    "  local c = redis.call('HMGET', C, 'st', 'n', 'tiers', 'lim', 'cap',\n"
    "                       'ann', 'dl', 'wh', 'j')\n"
    "  local st = c[1]\n"
    "  if not st then\n"
    "    if op == 'deadline' then return 'ALREADY|UNKNOWN' end\n"
    "    return 'REJ|UNKNOWN_CAMPAIGN|0'\n"
    "  end\n"
    "  local n, tiers = tonumber(c[2]), c[3]\n"
    "  local j = tonumber(c[9])\n"
    "  if op == 'deadline' then\n"
    "    if st ~= 'OPEN' then return 'ALREADY|' .. st end\n"
    "    if tonumber(A[2]) < tonumber(c[7]) then return 'EARLY|' .. c[7] end\n"
    "    local t = tier_of(tiers, n)\n"
    "    local all = redis.call('HGETALL', O)\n"
    "    local joins = {}\n"
    "    for i = 1, #all, 2 do\n"
    "      local u, q = string.match(all[i + 1], '^([^:!|]+):(%d+)')\n"
    "      if u then joins[#joins + 1] = all[i] .. ':' .. u .. ':' .. q end\n"
    "    end\n"
    "    table.sort(joins)\n"
    "    redis.call('HSET', C, 'st', t >= 0 and 'SETTLED' or 'FAILED', 'tier', t)\n"
    "    for _, k in ipairs({C, O, U, P .. 'hwm'}) do\n"
    "      redis.call('EXPIRE', k, A[3])\n"
    "    end\n"
    "    return 'END|' .. t .. '|' .. n .. '|' .. tiers .. '|' ..\n"
    "           (c[8] or '') .. '|' .. table.concat(joins, ';')\n"
    "  end\n"
    "  if op == 'join' then\n"
    "    local prev = redis.call('HGET', O, A[3])\n"
    "    if prev then\n"
    "      if string.byte(prev, 1) == 33 then\n"
    "        local e, first = string.match(prev, '^!([^|]*)|(.*)$')\n"
    "        if e == A[5] then return 'REJ|' .. first end\n"
    "        prev = nil\n"
    "      else\n"
    "        local e, pn = string.match(prev, '^[^:]*:%d+:([^:]*):(%d+)$')\n"
    "        if e == A[5] then return 'JOINED|' .. pn .. '|-1|' .. tiers end\n"
    "        return 'REJ|DUPLICATE|' .. n\n"
    "      end\n"
    "    end\n"
    "    if st ~= 'OPEN' then return 'REJ|CLOSED|' .. n end\n"
    "    if not j then\n"
    "      j = redis.call('HLEN', O)\n"
    "      redis.call('HSET', C, 'j', j)\n"
    "    end\n"
    "    if j >= " STR(DOM_GB_MAX_JOINS) " then return refuse(O, A, 'FULL', n) end\n"
    "    local qty = tonumber(A[4])\n"
    "    local units = tonumber(redis.call('HGET', U, A[2]) or '0')\n"
    "    local lim = tonumber(c[4])\n"
    "    if lim > 0 and units + qty > lim then\n"
    "      return refuse(O, A, 'OVER_USER_LIMIT', n)\n"
    "    end\n"
    "    if units == 0 then\n"
    "      if n >= tonumber(c[5]) then return refuse(O, A, 'FULL', n) end\n"
    "      n = n + 1\n"
    "    end\n"
    "    redis.call('HSET', U, A[2], units + qty)\n"
    "    redis.call('HSET', O, A[3], A[2] .. ':' .. qty .. ':' .. A[5] .. ':' .. n)\n"
    "    local t = tier_of(tiers, n)\n"
    "    if t > tonumber(c[6]) then\n"
    "      redis.call('HSET', C, 'n', n, 'j', j + 1, 'ann', t)\n"
    "    else\n"
    "      redis.call('HSET', C, 'n', n, 'j', j + 1)\n"
    "      t = -1\n"
    "    end\n"
    "    return 'JOINED|' .. n .. '|' .. t .. '|' .. tiers\n"
    "  end\n"
    "  if st ~= 'OPEN' then return 'REJ|CLOSED|' .. n end\n"
    "  if op == 'leave' then\n"
    "    local o = redis.call('HGET', O, A[3])\n"
    "    local user, qty = nil, nil\n"
    "    if o then user, qty = string.match(o, '^([^:!|]+):(%d+)') end\n"
    "    if not user or user ~= A[2] then return 'REJ|NOT_JOINED|' .. n end\n"
    "    if not j then j = redis.call('HLEN', O) end\n"
    "    redis.call('HDEL', O, A[3])\n"
    "    local units = tonumber(redis.call('HGET', U, user) or '0') - tonumber(qty)\n"
    "    if units <= 0 then\n"
    "      redis.call('HDEL', U, user)\n"
    "      n = n - 1\n"
    "    else\n"
    "      redis.call('HSET', U, user, units)\n"
    "    end\n"
    "    redis.call('HSET', C, 'n', n, 'j', j - 1)\n"
    "    return 'LEFT|' .. n .. '|' .. qty .. '|' .. tiers\n"
    "  end\n"
    "  error('unknown op ' .. tostring(op))\n"
    "end\n";

/* Split s at '|' into at most max fields (the last takes the rest). */
static size_t split(char *s, char **f, size_t max) {
  size_t n = 0;
  f[n++] = s;
  while (n < max) {
    char *bar = strchr(s, '|');
    if (!bar)
      break;
    *bar = '\0';
    s = bar + 1;
    f[n++] = s;
  }
  return n;
}

static int num(const char *s, long long lo, long long hi, long long *out) {
  if (!s || !*s)
    return LINLI_ERR_INVALID;
  char *end = NULL;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || *end || v < lo || v > hi)
    return LINLI_ERR_INVALID;
  *out = v;
  return LINLI_OK;
}

static int parse_tiers(struct dom_gb_outcome *o, const char *s) {
  return dom_gb_tiers_parse(s, o->tiers, DOM_GB_MAX_TIERS, &o->ntiers);
}

/* "o:u:q;o:u:q" (possibly empty) into o->joins. */
static int parse_joins(struct dom_gb_outcome *o, char *s) {
  if (!*s)
    return LINLI_OK;
  size_t n = 1;
  for (const char *c = s; *c; c++)
    n += *c == ';';
  o->joins = calloc(n, sizeof *o->joins);
  if (!o->joins)
    return LINLI_ERR_NOMEM;
  char *save = NULL;
  for (char *tok = strtok_r(s, ";", &save); tok;
       tok = strtok_r(NULL, ";", &save)) {
    char *c1 = strchr(tok, ':');
    char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    long long q;
    if (!c1 || !c2 || c1 == tok || c2 == c1 + 1 || o->njoins >= n)
      return LINLI_ERR_INVALID;
    *c1 = *c2 = '\0';
    if (num(c2 + 1, 1, DOM_MAX_QUANTITY, &q) != LINLI_OK)
      return LINLI_ERR_INVALID;
    o->joins[o->njoins].order_id = tok;
    o->joins[o->njoins].user_id = c1 + 1;
    o->joins[o->njoins].quantity = (int32_t)q;
    o->njoins++;
  }
  return LINLI_OK;
}

static int parse_reason(const char *name) {
  const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value_by_name(
      &linli__join_result__reason__descriptor, name);
  return v ? v->value : -1;
}

static int parse(char *buf, struct dom_gb_outcome *o) {
  if (strncmp(buf, "ERR|", 4) == 0) {
    /* The message may itself hold '|': it is everything after "ERR|". */
    o->kind = DOM_GB_ERROR;
    o->detail = buf + 4;
    return LINLI_OK;
  }
  char *f[6] = {0};
  size_t nf = split(buf, f, 6);
  long long a, b;
  if (strcmp(f[0], "OPENED") == 0 && nf == 1) {
    o->kind = DOM_GB_OPENED;
    return LINLI_OK;
  }
  if (strcmp(f[0], "DUPOPEN") == 0 && nf == 1) {
    o->kind = DOM_GB_DUPOPEN;
    return LINLI_OK;
  }
  if (strcmp(f[0], "ALREADY") == 0 && nf == 2) {
    o->kind = DOM_GB_ALREADY;
    o->detail = f[1];
    return LINLI_OK;
  }
  if (strcmp(f[0], "EARLY") == 0 && nf == 2) {
    o->kind = DOM_GB_EARLY;
    return num(f[1], 0, DOM_MAX_TIME_MS, &a) ? LINLI_ERR_INVALID
                                             : (o->deadline_ms = a, LINLI_OK);
  }
  if (strcmp(f[0], "REJ") == 0 && nf == 3) {
    o->kind = DOM_GB_REJECTED;
    o->reason = parse_reason(f[1]);
    if (o->reason <= 0 || num(f[2], 0, DOM_GB_MAX_PARTICIPANTS, &a))
      return LINLI_ERR_INVALID;
    o->participants = a;
    return LINLI_OK;
  }
  if ((strcmp(f[0], "JOINED") == 0 || strcmp(f[0], "LEFT") == 0) && nf == 4) {
    int joined = f[0][0] == 'J';
    o->kind = joined ? DOM_GB_JOINED : DOM_GB_LEFT;
    if (num(f[1], 0, DOM_GB_MAX_PARTICIPANTS, &a) ||
        num(f[2], joined ? -1 : 1, joined ? DOM_GB_MAX_TIERS - 1 : DOM_MAX_QUANTITY,
            &b) ||
        parse_tiers(o, f[3]))
      return LINLI_ERR_INVALID;
    o->participants = a;
    if (joined)
      o->tier = (int)b;
    else
      o->quantity = (int32_t)b;
    return o->tier < (int)o->ntiers ? LINLI_OK : LINLI_ERR_INVALID;
  }
  /* "END|t|n|tiers|wh|joins"; an outcome recorded before the warehouse was
   * part of it is "END|t|n|tiers|joins" (joins hold no '|'). */
  if (strcmp(f[0], "END") == 0 && (nf == 5 || nf == 6)) {
    o->kind = DOM_GB_ENDED;
    if (nf == 6) {
      o->warehouse_id = f[4];
      f[4] = f[5];
    }
    if (num(f[1], -1, DOM_GB_MAX_TIERS - 1, &a) ||
        num(f[2], 0, DOM_GB_MAX_PARTICIPANTS, &b) || parse_tiers(o, f[3]) ||
        a >= (long long)o->ntiers)
      return LINLI_ERR_INVALID;
    o->tier = (int)a;
    o->participants = b;
    return parse_joins(o, f[4]);
  }
  return LINLI_ERR_INVALID;
}

int dom_gb_outcome_parse(char *buf, struct dom_gb_outcome *out) {
  memset(out, 0, sizeof *out);
  out->tier = -1;
  out->detail = "";
  out->warehouse_id = "";
  if (!buf)
    return LINLI_ERR_INVALID;
  int rc = parse(buf, out);
  if (rc != LINLI_OK)
    dom_gb_outcome_free(out);
  return rc;
}

void dom_gb_outcome_free(struct dom_gb_outcome *out) {
  free(out->joins);
  out->joins = NULL;
  out->njoins = 0;
}
