/*
 * groupbuys.c - GET /v1/groupbuys/{id}: a campaign's live progress for apps
 * and dashboards (participants, the tier reached, the next tier and how
 * many neighbours it still needs, time left), read from the settler's hot
 * state through libdomain's key layout, in one Redis round trip. A campaign
 * belongs to its app: another app gets 404, as for orders.
 */
#include <stdlib.h>
#include <string.h>

#include "domain/groupbuy_state.h"
#include "gateway.h"
#include "linli/clock.h"
#include "linli/error.h"

struct gb_ctx {
  struct gw_req r;
};

/* The campaign hash's fields, in the order HMGET asks for them. */
enum { F_ST, F_APP, F_SKU, F_WH, F_TIERS, F_N, F_CAP, F_LIM, F_DL, F_LIST,
       F_TIER, NFIELDS };
static const char *const FIELDS[NFIELDS] = {
    "st", "app", "sku", "wh", "tiers", "n", "cap", "lim", "dl", "list",
    "tier"};

static const char *field(const redisReply *rep, int i) {
  const redisReply *e = rep->element[i];
  return e->type == REDIS_REPLY_STRING ? e->str : NULL;
}

static long long num(const redisReply *rep, int i) {
  const char *s = field(rep, i);
  return s ? atoll(s) : 0;
}

static json_t *tier_json(const struct dom_gb_tier *t, int index) {
  return json_pack("{s:i,s:i,s:I}", "index", index, "min_participants",
                   (int)t->min, "unit_price_fen", (json_int_t)t->price_fen);
}

static json_t *progress(const redisReply *rep, const char *id) {
  struct dom_gb_tier tiers[DOM_GB_MAX_TIERS];
  size_t ntiers = 0;
  if (dom_gb_tiers_parse(field(rep, F_TIERS), tiers, DOM_GB_MAX_TIERS,
                         &ntiers) != LINLI_OK)
    return NULL;
  int64_t n = num(rep, F_N);
  const char *st = field(rep, F_ST);
  int ended = strcmp(st, "OPEN") != 0;
  int t = ended ? (int)num(rep, F_TIER) : dom_gb_tier_for(tiers, ntiers, n);
  int64_t left = num(rep, F_DL) - linli_clock_now_ms();
  json_t *arr = json_array();
  for (size_t i = 0; i < ntiers; i++)
    json_array_append_new(arr, tier_json(&tiers[i], (int)i));
  json_t *o = json_pack(
      "{s:s,s:s,s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:o}", "campaign_id", id,
      "app_id", field(rep, F_APP) ? field(rep, F_APP) : "", "sku_id",
      field(rep, F_SKU) ? field(rep, F_SKU) : "", "warehouse_id",
      field(rep, F_WH) ? field(rep, F_WH) : "", "state", st, "participants",
      (json_int_t)n, "max_participants", (json_int_t)num(rep, F_CAP),
      "per_user_limit", (json_int_t)num(rep, F_LIM), "list_price_fen",
      (json_int_t)num(rep, F_LIST), "deadline_ms", (json_int_t)num(rep, F_DL),
      "time_left_ms", (json_int_t)(ended || left < 0 ? 0 : left), "tiers",
      arr);
  if (!o)
    return NULL;
  json_object_set_new(o, "current_tier",
                      t >= 0 && (size_t)t < ntiers ? tier_json(&tiers[t], t)
                                                   : json_null());
  int next = t + 1;
  json_object_set_new(o, "next_tier",
                      !ended && (size_t)next < ntiers
                          ? tier_json(&tiers[next], next)
                          : json_null());
  json_object_set_new(
      o, "needed_for_next_tier",
      json_integer(ended ? 0 : dom_gb_needed_for_next(tiers, ntiers, n)));
  return o;
}

static void on_campaign(struct gw *gw, const redisReply *rep, void *arg) {
  (void)gw;
  struct gb_ctx *c = arg;
  struct gw_req *r = &c->r;
  if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != NFIELDS) {
    gw_reply_error(r, 503, "unavailable", "the hot state is unreachable");
  } else if (!field(rep, F_ST) ||
             (r->key->role != GW_ROLE_ADMIN &&
              strcmp(field(rep, F_APP) ? field(rep, F_APP) : "",
                     r->key->app_id) != 0)) {
    /* Unknown, and another app's campaign, look the same. */
    gw_reply_error(r, 404, "not_found", "no such group-buy");
  } else {
    json_t *body = progress(rep, r->param);
    if (body)
      gw_reply_json(r, 200, body);
    else
      gw_reply_error(r, 500, "internal", "unreadable campaign state");
  }
  free(c);
}

void gw_get_groupbuy(struct gw_req *r) {
  struct gb_ctx *c = calloc(1, sizeof *c);
  if (!c) {
    gw_reply_error(r, 500, "internal", "out of memory");
    return;
  }
  gw_req_copy(&c->r, r);
  char key[128];
  snprintf(key, sizeof key, "{" DOM_GB_TAG_FMT "}:c", r->param);
  const char *argv[2 + NFIELDS] = {"HMGET", key};
  for (int i = 0; i < NFIELDS; i++)
    argv[2 + i] = FIELDS[i];
  gw_redis_cmd(r->gw, on_campaign, c, 2 + NFIELDS, argv);
}
