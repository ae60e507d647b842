/*
 * orders.c - the reserver's handling of linli.orders.v1: validation, the
 * Redis effect of each event, and the events that report it.
 *
 * Malformed input (undecodable, bad ids, non-positive quantities, too many
 * lines, no delivery choice) goes to the DLQ; a well-formed order that
 * cannot be served is REJECTED with a machine-readable reason.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.pb-c.h"
#include "linli/error.h"
#include "linli/ids.h"
#include "linli/log.h"
#include "orders.pb-c.h"
#include "outputs.h"
#include "reserver.h"
#include "reservations.pb-c.h"

#define LINES_BUF 16384

typedef Linli__ReservationResult Result;

/* ----------------------------------------------------------- validation */

static int bad(char *reason, size_t len, const char *fmt, const char *field) {
  snprintf(reason, len, fmt, field);
  return LINLI_ERR_INVALID;
}

static int check_id(const char *v, const char *field, char *reason,
                    size_t len) {
  if (!v || !linli_id_valid(v))
    return bad(reason, len,
               "%s: must be 1-64 characters of [A-Za-z0-9_-]", field);
  return LINLI_OK;
}

static int check_optional_id(const char *v, const char *field, char *reason,
                             size_t len) {
  if (!v || !v[0])
    return LINLI_OK;
  return check_id(v, field, reason, len);
}

/* Merged lines of an order: one entry per SKU, quantities summed. */
struct merged {
  size_t n;
  struct {
    const char *sku;
    int64_t qty;
  } *l;
};

static int validate_placed(const struct reserver *rs,
                           const Linli__OrderPlaced *p, struct merged *mg,
                           int64_t *total, char *reason, size_t len) {
  int rc;
  if ((rc = check_id(p->order_id, "order_placed.order_id", reason, len)) ||
      (rc = check_id(p->user_id, "order_placed.user_id", reason, len)) ||
      (rc = check_id(p->warehouse_id, "order_placed.warehouse_id", reason,
                     len)) ||
      (rc = check_optional_id(p->app_id, "order_placed.app_id", reason,
                              len)) ||
      (rc = check_optional_id(p->campaign_id, "order_placed.campaign_id",
                              reason, len)))
    return rc;
  if (p->n_lines == 0)
    return bad(reason, len, "%s: an order needs at least one line",
               "order_placed.lines");
  if (p->n_lines > (size_t)rs->max_lines) {
    snprintf(reason, len,
             "order_placed.lines: %zu lines, at most %d allowed "
             "(orders.max_lines)",
             p->n_lines, rs->max_lines);
    return LINLI_ERR_INVALID;
  }
  switch (p->delivery_case) {
  case LINLI__ORDER_PLACED__DELIVERY_PICKUP:
    if ((rc = check_id(p->pickup ? p->pickup->pickup_point_id : NULL,
                       "order_placed.pickup.pickup_point_id", reason, len)))
      return rc;
    break;
  case LINLI__ORDER_PLACED__DELIVERY_HOME:
    if (p->home->lat_e6 < -90000000 || p->home->lat_e6 > 90000000 ||
        p->home->lng_e6 < -180000000 || p->home->lng_e6 > 180000000)
      return bad(reason, len, "%s: coordinates out of range",
                 "order_placed.home");
    break;
  default:
    return bad(reason, len, "%s: choose pickup or home delivery",
               "order_placed.delivery");
  }
  mg->l = calloc(p->n_lines, sizeof *mg->l);
  if (!mg->l)
    return LINLI_ERR_TRANSIENT;
  mg->n = 0;
  *total = 0;
  for (size_t i = 0; i < p->n_lines; i++) {
    const Linli__OrderLine *l = p->lines[i];
    char field[64];
    snprintf(field, sizeof field, "order_placed.lines[%zu]", i);
    if (!linli_id_valid(l->sku_id)) {
      snprintf(reason, len, "%s.sku_id: must be 1-64 characters of "
               "[A-Za-z0-9_-]", field);
      return LINLI_ERR_INVALID;
    }
    if (l->quantity <= 0) {
      snprintf(reason, len, "%s.quantity: must be positive, got %d", field,
               (int)l->quantity);
      return LINLI_ERR_INVALID;
    }
    if (l->unit_price_fen < 0 || l->unit_price_fen > INT64_C(100000000000)) {
      snprintf(reason, len, "%s.unit_price_fen: out of range", field);
      return LINLI_ERR_INVALID;
    }
    if (l->quantity > 1000000) {
      snprintf(reason, len, "%s.quantity: more than 1000000 units", field);
      return LINLI_ERR_INVALID;
    }
    /* price <= 1e11 and quantity <= 1e6: the product fits; the sum might
     * not, over many lines. */
    int64_t amount = l->unit_price_fen * l->quantity;
    if (amount > INT64_MAX - *total) {
      snprintf(reason, len, "%s: the order's total exceeds int64 fen", field);
      return LINLI_ERR_INVALID;
    }
    *total += amount;
    size_t j = 0;
    while (j < mg->n && strcmp(mg->l[j].sku, l->sku_id) != 0)
      j++;
    if (j == mg->n) {
      mg->l[j].sku = l->sku_id;
      mg->n++;
    }
    mg->l[j].qty += l->quantity;
    if (mg->l[j].qty > 1000000) {
      snprintf(reason, len, "%s.quantity: more than 1000000 units of %s",
               field, l->sku_id);
      return LINLI_ERR_INVALID;
    }
  }
  return LINLI_OK;
}

/* ------------------------------------------------------------- helpers */

static void ctx_from(struct out_ctx *ctx, const rd_kafka_message_t *m,
                     const Linli__OrderEvent *ev) {
  ctx->in = m;
  ctx->cause_event_id = ev->meta ? ev->meta->event_id : "";
  ctx->trace_id = ev->meta ? ev->meta->trace_id : "";
  ctx->occurred_at_ms = ev->meta ? ev->meta->occurred_at_ms : 0;
  if (ctx->occurred_at_ms <= 0) {
    rd_kafka_timestamp_type_t tt;
    ctx->occurred_at_ms = rd_kafka_message_timestamp(m, &tt);
  }
}

static int order_warehouse(struct reserver *rs, const char *order_id,
                           char *wh, size_t whlen) {
  char key[128];
  snprintf(key, sizeof key, "%s%s", RESERVER_KEY_ORDER_WH, order_id);
  const char *argv[] = {"GET", key};
  redisReply *r = NULL;
  if (linli_redis_command(rs->redis, 2, argv, NULL, &r) != LINLI_OK)
    return LINLI_ERR_TRANSIENT;
  int rc = LINLI_ERR_NOTFOUND;
  if (r->type == REDIS_REPLY_STRING) {
    snprintf(wh, whlen, "%s", r->str);
    rc = LINLI_OK;
  } else if (r->type == REDIS_REPLY_ERROR) {
    rc = LINLI_ERR_TRANSIENT;
  }
  freeReplyObject(r);
  return rc;
}

/* Catalog check from the HMGET reply: UNKNOWN_SKU / DELISTED
 * pre-rejections and the coldest storage class of the order. */
static int check_catalog(const redisReply *r, const struct merged *mg,
                         char *reject, size_t rejlen, int *storage_class) {
  if (r->type != REDIS_REPLY_ARRAY || r->elements != mg->n)
    return LINLI_ERR_TRANSIENT;
  reject[0] = '\0';
  *storage_class = 0;
  for (size_t i = 0; i < mg->n && !reject[0]; i++) {
    redisReply *e = r->element[i];
    if (e->type != REDIS_REPLY_STRING) {
      snprintf(reject, rejlen, "UNKNOWN_SKU|%s is not in the catalog",
               mg->l[i].sku);
    } else if (e->str[0] == 'D') {
      snprintf(reject, rejlen, "DELISTED|%s is delisted", mg->l[i].sku);
    } else {
      int sc = e->len > 2 ? atoi(e->str + 2) : 0;
      if (sc > *storage_class)
        *storage_class = sc;
    }
  }
  return LINLI_OK;
}

/* An order's checks before its script, in one round trip: the catalog
 * entries of its SKUs and the warehouse the order index holds for its id
 * (*first_wh "" if none). */
static int order_lookups(struct reserver *rs, const Linli__OrderPlaced *p,
                         const struct merged *mg, char *reject,
                         size_t rejlen, int *storage_class, char *first_wh,
                         size_t whlen, char *reason, size_t reasonlen) {
  const char **hmget = calloc(mg->n + 2, sizeof *hmget);
  if (!hmget)
    return LINLI_ERR_TRANSIENT;
  hmget[0] = "HMGET";
  hmget[1] = RESERVER_KEY_CATALOG;
  for (size_t i = 0; i < mg->n; i++)
    hmget[i + 2] = mg->l[i].sku;
  char ikey[128];
  snprintf(ikey, sizeof ikey, "%s%s", RESERVER_KEY_ORDER_WH, p->order_id);
  const char *get[] = {"GET", ikey};
  struct reserver_cmd cmds[] = {{(int)mg->n + 2, hmget, NULL}, {2, get, NULL}};
  redisReply *r[2] = {NULL, NULL};
  int rc = reserver_redis_pipeline(rs, 2, cmds, r);
  free(hmget);
  if (rc != LINLI_OK) {
    snprintf(reason, reasonlen, "redis unavailable (catalog, order index)");
    return LINLI_ERR_TRANSIENT;
  }
  if (check_catalog(r[0], mg, reject, rejlen, storage_class) != LINLI_OK) {
    snprintf(reason, reasonlen, "redis unavailable (catalog)");
    rc = LINLI_ERR_TRANSIENT;
  } else if (r[1]->type == REDIS_REPLY_STRING) {
    snprintf(first_wh, whlen, "%s", r[1]->str);
  } else if (r[1]->type == REDIS_REPLY_NIL) {
    first_wh[0] = '\0';
  } else {
    snprintf(reason, reasonlen, "redis unavailable (order index)");
    rc = LINLI_ERR_TRANSIENT;
  }
  freeReplyObject(r[0]);
  freeReplyObject(r[1]);
  return rc;
}

static int run_effect(struct reserver *rs, linli_redis_script_t *script,
                      const char *wh, const rd_kafka_message_t *m, int nkeys,
                      const char **keys, int nargs, const char **args,
                      const size_t *arglens, char **outcome, size_t *outlen,
                      char *reason, size_t reasonlen) {
  char err[512];
  int replayed = 0;
  int rc = reserver_effect(rs, script, wh, m, nkeys, keys, nargs, args,
                           arglens, &replayed, outcome, outlen, err,
                           sizeof err);
  if (rc != LINLI_OK) {
    snprintf(reason, reasonlen, "redis: %s", err);
    /* A script error is specific to this input: DLQ it, keep flowing. */
    return rc == LINLI_ERR_INVALID ? LINLI_ERR_INVALID : LINLI_ERR_TRANSIENT;
  }
  if (replayed && *outlen == 0) {
    /* Applied long ago (below the high-water mark) and its outcome has
     * expired: the effect must not apply again and its events were
     * committed with it, so there is nothing left to do. */
    LINLI_WARN("input already applied, outcome forgotten: skipped",
               "topic=%s partition=%d offset=%lld",
               rd_kafka_topic_name(m->rkt), (int)m->partition,
               (long long)m->offset);
    free(*outcome);
    *outcome = NULL;
    return LINLI_ERR_CONFLICT;
  }
  if (replayed)
    LINLI_INFO("replayed outcome", "topic=%s partition=%d offset=%lld",
               rd_kafka_topic_name(m->rkt), (int)m->partition,
               (long long)m->offset);
  return LINLI_OK;
}

static void wh_key(char *buf, size_t len, const char *wh, const char *suffix) {
  char tag[96];
  snprintf(tag, sizeof tag, "w:%s", wh);
  linli_redis_key(buf, len, tag, suffix);
}

static void order_key(char *buf, size_t len, const char *wh,
                      const char *order_id) {
  char suffix[96];
  snprintf(suffix, sizeof suffix, "o:%s", order_id);
  wh_key(buf, len, wh, suffix);
}

/* ---------------------------------------------------------------- place */

static int enum_reason(const char *name) {
  const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value_by_name(
      &linli__reservation_result__reason__descriptor, name);
  return v ? v->value : LINLI__RESERVATION_RESULT__REASON__INVALID_ORDER;
}

static int handle_placed(struct reserver *rs, const rd_kafka_message_t *m,
                         const struct out_ctx *ctx, const Linli__OrderPlaced *p,
                         linli_emit_t *emit, char *reason, size_t reasonlen) {
  struct merged mg = {0};
  int64_t total = 0;
  char *lines = NULL, *outcome = NULL;
  uint8_t *pb = NULL;
  Result res = LINLI__RESERVATION_RESULT__INIT;
  Linli__ReservationResult__ShortLine *shorts = NULL;
  Linli__ReservationResult__ShortLine **short_ptrs = NULL;
  int rc = validate_placed(rs, p, &mg, &total, reason, reasonlen);
  if (rc != LINLI_OK)
    goto done;

  char reject[256] = "";
  if (p->total_fen != 0 && p->total_fen != total)
    snprintf(reject, sizeof reject,
             "INVALID_ORDER|total_fen %lld does not match the lines (%lld)",
             (long long)p->total_fen, (long long)total);
  int storage_class = 0;
  char rej2[256], first_wh[80];
  if ((rc = order_lookups(rs, p, &mg, rej2, sizeof rej2, &storage_class,
                          first_wh, sizeof first_wh, reason, reasonlen)) !=
      LINLI_OK)
    goto done;
  if (!reject[0] && rej2[0])
    snprintf(reject, sizeof reject, "%s", rej2);
  /* The order key lives under the warehouse's tag, so the script alone
   * sees only a duplicate in the same warehouse; the order index knows
   * the first order's warehouse. (Same order id, same partition: the
   * first order's index entry is written before this record is read.) */
  if (first_wh[0] && strcmp(first_wh, p->warehouse_id) != 0)
    snprintf(reject, sizeof reject, "DUPLICATE");
  char err[256];
  if ((rc = reserver_ensure_stock(rs, p->warehouse_id, err, sizeof err)) !=
      LINLI_OK) {
    snprintf(reason, reasonlen, "%s", err);
    goto done;
  }

  lines = malloc(LINES_BUF);
  if (!lines) {
    rc = LINLI_ERR_TRANSIENT;
    goto done;
  }
  size_t off = 0;
  for (size_t i = 0; i < mg.n && off < LINES_BUF; i++)
    off += (size_t)snprintf(lines + off, LINES_BUF - off, "%s%s:%lld",
                            i ? "," : "", mg.l[i].sku, (long long)mg.l[i].qty);
  if (off >= LINES_BUF) {
    snprintf(reason, reasonlen, "order_placed.lines: too long");
    rc = LINLI_ERR_INVALID;
    goto done;
  }
  int64_t expires_at = ctx->occurred_at_ms + rs->payment_timeout_ms;
  char exp_s[32], tot_s[32], sc_s[8];
  snprintf(exp_s, sizeof exp_s, "%lld", (long long)expires_at);
  snprintf(tot_s, sizeof tot_s, "%lld", (long long)total);
  snprintf(sc_s, sizeof sc_s, "%d", storage_class);
  size_t pblen = linli__order_placed__get_packed_size(p);
  pb = malloc(pblen ? pblen : 1);
  if (!pb) {
    rc = LINLI_ERR_TRANSIENT;
    goto done;
  }
  linli__order_placed__pack(p, pb);

  char k_avail[160], k_resv[160], k_order[200];
  wh_key(k_avail, sizeof k_avail, p->warehouse_id, "avail");
  wh_key(k_resv, sizeof k_resv, p->warehouse_id, "resv");
  order_key(k_order, sizeof k_order, p->warehouse_id, p->order_id);
  const char *keys[] = {k_avail, k_resv, k_order};
  const char *args[] = {lines, exp_s,  tot_s, sc_s, (const char *)pb,
                        reject, RESERVER_FINISHED_TTL_S, p->user_id};
  size_t lens[] = {strlen(lines), strlen(exp_s),  strlen(tot_s),
                   strlen(sc_s),  pblen,          strlen(reject),
                   strlen(RESERVER_FINISHED_TTL_S), strlen(p->user_id)};
  size_t outlen = 0;
  rc = run_effect(rs, rs->place, p->warehouse_id, m, 3, keys, 8, args, lens,
                  &outcome, &outlen, reason, reasonlen);
  if (rc != LINLI_OK)
    goto done;

  res.order_id = p->order_id;
  res.warehouse_id = p->warehouse_id;
  res.user_id = p->user_id;
  res.app_id = p->app_id;
  res.campaign_id = p->campaign_id;
  res.total_fen = total;
  res.n_lines = p->n_lines;
  res.lines = p->lines;
  res.detail = (char *)"";
  res.status = LINLI__RESERVATION_RESULT__STATUS__REJECTED;
  if (strcmp(outcome, "RESERVED") == 0) {
    res.status = LINLI__RESERVATION_RESULT__STATUS__RESERVED;
    res.expires_at_ms = expires_at;
  } else if (strcmp(outcome, "DUP") == 0) {
    res.reason = LINLI__RESERVATION_RESULT__REASON__DUPLICATE;
    res.detail = (char *)"an order with this id was already placed";
  } else if (strncmp(outcome, "REJ|", 4) == 0) {
    char *bar = strchr(outcome + 4, '|');
    if (bar) {
      *bar = '\0';
      res.detail = bar + 1;
    }
    res.reason = enum_reason(outcome + 4);
  } else if (strncmp(outcome, "SHORT|", 6) == 0) {
    res.reason = LINLI__RESERVATION_RESULT__REASON__OUT_OF_STOCK;
    res.detail = (char *)"not enough stock";
    size_t n = 1;
    for (const char *c = outcome + 6; *c; c++)
      n += *c == ';';
    shorts = calloc(n, sizeof *shorts);
    short_ptrs = calloc(n, sizeof *short_ptrs);
    if (!shorts || !short_ptrs) {
      rc = LINLI_ERR_TRANSIENT;
      goto done;
    }
    char *save = NULL;
    size_t k = 0;
    for (char *tok = strtok_r(outcome + 6, ";", &save); tok && k < n;
         tok = strtok_r(NULL, ";", &save)) {
      char *c1 = strchr(tok, ':');
      char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
      if (!c1 || !c2)
        continue;
      *c1 = *c2 = '\0';
      linli__reservation_result__short_line__init(&shorts[k]);
      shorts[k].sku_id = tok;
      shorts[k].requested = atoi(c1 + 1);
      shorts[k].available = atoi(c2 + 1);
      short_ptrs[k] = &shorts[k];
      k++;
    }
    res.n_shortages = k;
    res.shortages = short_ptrs;
  } else {
    snprintf(reason, reasonlen, "unexpected place outcome '%.64s'", outcome);
    rc = LINLI_ERR_FATAL;
    goto done;
  }

  /* After the script, in one round trip (one fsync turn of Redis): the
   * index order -> warehouse for payments, cancels and expiry (NX: a
   * duplicate id must not repoint the first order), and the reservation's
   * payment deadline in the expiry index. Both idempotent; both before the
   * transaction commits, so a failure retries the batch (the script's
   * outcome is then replayed) and no committed reservation lacks them. */
  char ikey[128], xkey[64], score[32];
  snprintf(ikey, sizeof ikey, "%s%s", RESERVER_KEY_ORDER_WH, p->order_id);
  snprintf(xkey, sizeof xkey, "%s%d", RESERVER_KEY_EXPIRY, (int)m->partition);
  snprintf(score, sizeof score, "%lld", (long long)expires_at);
  const char *set[] = {"SET", ikey, p->warehouse_id, "NX", "EX",
                       RESERVER_INDEX_TTL_S};
  const char *zadd[] = {"ZADD", xkey, score, p->order_id};
  struct reserver_cmd post[2];
  int npost = 0;
  if (res.reason != LINLI__RESERVATION_RESULT__REASON__DUPLICATE)
    post[npost++] = (struct reserver_cmd){6, set, NULL};
  if (res.status == LINLI__RESERVATION_RESULT__STATUS__RESERVED)
    post[npost++] = (struct reserver_cmd){4, zadd, NULL};
  if (npost > 0) {
    redisReply *r[2] = {NULL, NULL};
    if ((rc = reserver_redis_pipeline(rs, npost, post, r)) == LINLI_OK) {
      for (int i = 0; i < npost; i++) {
        if (r[i]->type == REDIS_REPLY_ERROR) {
          LINLI_WARN("redis command failed", "cmd=%s reason=\"%s\"",
                     post[i].argv[0], r[i]->str);
          rc = LINLI_ERR_TRANSIENT;
        }
        freeReplyObject(r[i]);
      }
    }
    if (rc != LINLI_OK) {
      snprintf(reason, reasonlen, "redis unavailable (order and expiry index)");
      rc = LINLI_ERR_TRANSIENT;
      goto done;
    }
  }
  rc = out_reservation(emit, ctx, &res);

done:
  free(mg.l);
  free(lines);
  free(pb);
  free(outcome);
  free(shorts);
  free(short_ptrs);
  return rc;
}

/* ------------------------------------------------------------------ pay */

/* Split "WORD|a|b" in place: fields[0] = WORD ... returns the count. */
static int split_outcome(char *s, char **fields, int max, int last_rest) {
  int n = 0;
  fields[n++] = s;
  while (n < max) {
    char *bar = strchr(s, '|');
    if (!bar)
      break;
    *bar = '\0';
    s = bar + 1;
    fields[n++] = s;
    if (last_rest && n == max)
      break;
  }
  return n;
}

/* The warehouse an order was placed in, with its stock in Redis: a
 * payment, cancel or expiry of an unknown order is bad input (INVALID). */
static int locate_order(struct reserver *rs, const char *order_id,
                        const char *field, char *wh, size_t whlen,
                        char *reason, size_t reasonlen) {
  int rc = order_warehouse(rs, order_id, wh, whlen);
  if (rc == LINLI_ERR_NOTFOUND) {
    snprintf(reason, reasonlen, "%s: unknown order %s", field, order_id);
    return LINLI_ERR_INVALID;
  }
  if (rc != LINLI_OK) {
    snprintf(reason, reasonlen, "redis unavailable (order index)");
    return rc;
  }
  char err[256];
  if ((rc = reserver_ensure_stock(rs, wh, err, sizeof err)) != LINLI_OK)
    snprintf(reason, reasonlen, "%s", err);
  return rc;
}

static int handle_paid(struct reserver *rs, const rd_kafka_message_t *m,
                       const struct out_ctx *ctx, const Linli__OrderPaid *p,
                       linli_emit_t *emit, char *reason, size_t reasonlen) {
  int rc;
  if ((rc = check_id(p->order_id, "order_paid.order_id", reason, reasonlen)) ||
      (rc = check_id(p->payment_txn_id, "order_paid.payment_txn_id", reason,
                     reasonlen)))
    return rc;
  if (p->amount_fen <= 0)
    return bad(reason, reasonlen, "%s: must be positive",
               "order_paid.amount_fen");
  if (p->method == LINLI__ORDER_PAID__METHOD__METHOD_UNSPECIFIED)
    return bad(reason, reasonlen, "%s: WECHAT_PAY, ALIPAY or BANK_CARD",
               "order_paid.method");
  char wh[80];
  if ((rc = locate_order(rs, p->order_id, "order_paid.order_id", wh,
                         sizeof wh, reason, reasonlen)) != LINLI_OK)
    return rc;
  char k_resv[160], k_sold[160], k_order[200], amt[32];
  wh_key(k_resv, sizeof k_resv, wh, "resv");
  wh_key(k_sold, sizeof k_sold, wh, "sold");
  order_key(k_order, sizeof k_order, wh, p->order_id);
  snprintf(amt, sizeof amt, "%lld", (long long)p->amount_fen);
  const char *keys[] = {k_resv, k_sold, k_order};
  const char *args[] = {p->payment_txn_id, amt, RESERVER_FINISHED_TTL_S};
  char *outcome = NULL;
  size_t outlen = 0;
  rc = run_effect(rs, rs->pay, wh, m, 3, keys, 3, args, NULL, &outcome,
                  &outlen, reason, reasonlen);
  if (rc != LINLI_OK)
    return rc;

  Result res = LINLI__RESERVATION_RESULT__INIT;
  res.order_id = p->order_id;
  res.warehouse_id = wh;
  res.payment_txn_id = p->payment_txn_id;
  res.amount_fen = p->amount_fen;
  res.detail = (char *)"";
  res.status = LINLI__RESERVATION_RESULT__STATUS__REJECTED;
  int refund_reason = 0;

  if (strncmp(outcome, "COMMITTED|", 10) == 0) {
    /* COMMITTED|<sc>|<OrderPlaced bytes>: bytes may contain '|'. */
    char *sc = outcome + 10;
    char *bar = memchr(sc, '|', outlen - 10);
    Linli__OrderPlaced *placed = NULL;
    if (bar) {
      size_t pblen = outlen - (size_t)(bar + 1 - outcome);
      placed = linli__order_placed__unpack(NULL, pblen, (uint8_t *)bar + 1);
    }
    if (!placed) {
      snprintf(reason, reasonlen, "stored order %s is unreadable", p->order_id);
      free(outcome);
      return LINLI_ERR_FATAL;
    }
    res.status = LINLI__RESERVATION_RESULT__STATUS__COMMITTED;
    res.user_id = placed->user_id;
    res.app_id = placed->app_id;
    res.campaign_id = placed->campaign_id;
    res.n_lines = placed->n_lines;
    res.lines = placed->lines;
    int64_t total = 0;
    for (size_t i = 0; i < placed->n_lines; i++)
      total += placed->lines[i]->unit_price_fen * placed->lines[i]->quantity;
    res.total_fen = total;
    rc = out_reservation(emit, ctx, &res);
    if (rc == LINLI_OK)
      rc = out_fulfillment(emit, ctx, placed, atoi(sc));
    if (rc == LINLI_OK)
      reserver_expiry_remove(rs, m->partition, p->order_id);
    linli__order_placed__free_unpacked(placed, NULL);
    free(outcome);
    return rc;
  }
  char *f[3] = {0};
  int nf = split_outcome(outcome, f, 3, 1);
  if (strcmp(f[0], "REPEAT") == 0) {
    free(outcome); /* the same notice again changes nothing */
    return LINLI_OK;
  }
  res.user_id = nf > 1 ? f[1] : (char *)"";
  if (strcmp(f[0], "DOUBLE") == 0) {
    res.reason = LINLI__RESERVATION_RESULT__REASON__DOUBLE_PAYMENT;
    res.detail = (char *)"order already paid with another transaction";
    refund_reason = LINLI__REFUND_REQUESTED__REASON__DOUBLE_PAYMENT;
  } else if (strcmp(f[0], "LATE") == 0) {
    res.reason = LINLI__RESERVATION_RESULT__REASON__PAYMENT_AFTER_EXPIRY;
    res.detail = (char *)"order expired before payment: refund";
    refund_reason = LINLI__REFUND_REQUESTED__REASON__LATE_PAYMENT;
  } else if (strcmp(f[0], "CANCELLED") == 0) {
    res.reason = LINLI__RESERVATION_RESULT__REASON__PAYMENT_AFTER_CANCEL;
    res.detail = (char *)"order was cancelled before payment: refund";
    refund_reason = LINLI__REFUND_REQUESTED__REASON__CANCELLED_AFTER_PAYMENT;
  } else {
    /* REJECTED or NOORDER: the order never held stock. */
    res.reason = LINLI__RESERVATION_RESULT__REASON__NOT_RESERVED;
    res.detail = (char *)"order holds no reservation: refund";
    refund_reason = LINLI__REFUND_REQUESTED__REASON__LATE_PAYMENT;
  }
  rc = out_reservation(emit, ctx, &res);
  if (rc == LINLI_OK) {
    Linli__RefundRequested refund = LINLI__REFUND_REQUESTED__INIT;
    refund.order_id = p->order_id;
    refund.user_id = res.user_id;
    refund.amount_fen = p->amount_fen;
    refund.reason = refund_reason;
    refund.payment_txn_id = p->payment_txn_id;
    refund.campaign_id = (char *)"";
    rc = out_refund(emit, ctx, &refund);
  }
  free(outcome);
  return rc;
}

/* -------------------------------------------------------- cancel/expire */

static int handle_release(struct reserver *rs, const rd_kafka_message_t *m,
                          const struct out_ctx *ctx, const char *order_id,
                          int expiry, int64_t deadline_ms, linli_emit_t *emit,
                          char *reason, size_t reasonlen) {
  const char *field = expiry ? "order_expired.order_id"
                             : "order_cancelled.order_id";
  int rc = check_id(order_id, field, reason, reasonlen);
  if (rc)
    return rc;
  char wh[80];
  rc = locate_order(rs, order_id, field, wh, sizeof wh, reason, reasonlen);
  if (rc == LINLI_ERR_INVALID && expiry)
    /* An expiry decided for an order that is gone must not be announced
     * again and again. */
    reserver_expiry_remove(rs, m->partition, order_id);
  if (rc != LINLI_OK)
    return rc;
  char k_avail[160], k_resv[160], k_order[200], dl[32];
  wh_key(k_avail, sizeof k_avail, wh, "avail");
  wh_key(k_resv, sizeof k_resv, wh, "resv");
  order_key(k_order, sizeof k_order, wh, order_id);
  snprintf(dl, sizeof dl, "%lld", (long long)deadline_ms);
  const char *keys[] = {k_avail, k_resv, k_order};
  const char *args[] = {expiry ? "EXPIRED" : "CANCELLED", dl,
                        RESERVER_FINISHED_TTL_S};
  char *outcome = NULL;
  size_t outlen = 0;
  rc = run_effect(rs, rs->release, wh, m, 3, keys, 3, args, NULL, &outcome,
                  &outlen, reason, reasonlen);
  if (rc != LINLI_OK)
    return rc;
  char *f[2] = {0};
  int nf = split_outcome(outcome, f, 2, 1);
  Result res = LINLI__RESERVATION_RESULT__INIT;
  res.order_id = (char *)order_id;
  res.warehouse_id = wh;
  res.user_id = nf > 1 ? f[1] : (char *)"";
  res.detail = (char *)"";
  if (strcmp(f[0], "RELEASED") == 0) {
    res.status = LINLI__RESERVATION_RESULT__STATUS__RELEASED;
    res.detail = expiry ? (char *)"payment deadline passed"
                        : (char *)"cancelled before payment";
    rc = out_reservation(emit, ctx, &res);
    reserver_expiry_remove(rs, m->partition, order_id);
  } else if (strcmp(f[0], "PAID") == 0 && !expiry) {
    res.status = LINLI__RESERVATION_RESULT__STATUS__REJECTED;
    res.reason = LINLI__RESERVATION_RESULT__REASON__NOT_RESERVED;
    res.detail = (char *)"order already paid: cancel through after-sales";
    rc = out_reservation(emit, ctx, &res);
  } else {
    /* Already released, an expiry that lost the race to a payment, or an
     * early expiry: the decision already taken stands; nothing changes.
     * The expiry index must not keep the order: a stale entry would be
     * announced every EXPIRY_RETRY_MS forever and, once a partition holds
     * a batch of them, starve newer deadlines. An early expiry (the index
     * held an earlier deadline than the order's, e.g. written under another
     * payment timeout) is re-indexed at the order's own deadline. */
    if (expiry || strcmp(f[0], "PAID") == 0)
      reserver_expiry_remove(rs, m->partition, order_id);
    if (expiry && strcmp(f[0], "EARLY") == 0 && nf > 1)
      reserver_expiry_add(rs, m->partition, order_id, atoll(f[1]));
    LINLI_INFO("release without effect", "order=%s outcome=%s", order_id,
               f[0]);
  }
  free(outcome);
  return rc;
}

/* -------------------------------------------------------------- dispatch */

int reserver_handle_order(struct reserver *rs, const rd_kafka_message_t *m,
                          linli_emit_t *emit, char *reason, size_t reasonlen) {
  if (!m->payload || m->len == 0) {
    snprintf(reason, reasonlen, "empty record: expected an OrderEvent");
    return LINLI_ERR_INVALID;
  }
  Linli__OrderEvent *ev =
      linli__order_event__unpack(NULL, m->len, (const uint8_t *)m->payload);
  if (!ev) {
    snprintf(reason, reasonlen,
             "undecodable record: not an OrderEvent (%zu bytes)", m->len);
    return LINLI_ERR_INVALID;
  }
  struct out_ctx ctx;
  ctx_from(&ctx, m, ev);
  int rc;
  switch (ev->event_case) {
  case LINLI__ORDER_EVENT__EVENT_ORDER_PLACED:
    rc = handle_placed(rs, m, &ctx, ev->order_placed, emit, reason, reasonlen);
    break;
  case LINLI__ORDER_EVENT__EVENT_ORDER_PAID:
    rc = handle_paid(rs, m, &ctx, ev->order_paid, emit, reason, reasonlen);
    break;
  case LINLI__ORDER_EVENT__EVENT_ORDER_CANCELLED:
    rc = handle_release(rs, m, &ctx, ev->order_cancelled->order_id, 0, 0, emit,
                        reason, reasonlen);
    break;
  case LINLI__ORDER_EVENT__EVENT_ORDER_EXPIRED:
    rc = handle_release(rs, m, &ctx, ev->order_expired->order_id, 1,
                        ev->order_expired->deadline_ms, emit, reason,
                        reasonlen);
    break;
  default:
    snprintf(reason, reasonlen, "OrderEvent carries no event");
    rc = LINLI_ERR_INVALID;
    break;
  }
  linli__order_event__free_unpacked(ev, NULL);
  return rc == LINLI_ERR_CONFLICT ? LINLI_OK : rc; /* see run_effect */
}
