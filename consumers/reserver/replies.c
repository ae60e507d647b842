/*
 * replies.c - parsers of the reserver's script outcomes (see replies.h).
 * Pure functions over the outcome bytes: no allocation, no I/O.
 */
#include "replies.h"

#include <string.h>

#include "linli/error.h"

/* Split s into at most max fields at '|'; the last field takes the rest
 * (it may hold '|'). Returns the number of fields. */
static size_t split(const char *s, size_t len, struct rsv_str *f, size_t max) {
  size_t n = 0;
  const char *end = s + len;
  while (n + 1 < max) {
    const char *bar = memchr(s, '|', (size_t)(end - s));
    if (!bar)
      break;
    f[n++] = (struct rsv_str){s, (size_t)(bar - s)};
    s = bar + 1;
  }
  f[n++] = (struct rsv_str){s, (size_t)(end - s)};
  return n;
}

static int is(const struct rsv_str *f, const char *word) {
  size_t n = strlen(word);
  return f->n == n && memcmp(f->p, word, n) == 0;
}

/* A decimal int64 (optional '-'), the whole field. */
static int num(const struct rsv_str *f, int64_t *out) {
  size_t i = 0;
  int neg = 0;
  if (f->n > 0 && f->p[0] == '-') {
    neg = 1;
    i = 1;
  }
  if (i == f->n || f->n - i > 18)
    return LINLI_ERR_INVALID;
  int64_t v = 0;
  for (; i < f->n; i++) {
    if (f->p[i] < '0' || f->p[i] > '9')
      return LINLI_ERR_INVALID;
    v = v * 10 + (f->p[i] - '0');
  }
  *out = neg ? -v : v;
  return LINLI_OK;
}

int rsv_is_error(const char *s, size_t len, struct rsv_str *msg) {
  if (len < 4 || memcmp(s, "ERR|", 4) != 0)
    return 0;
  if (msg)
    *msg = (struct rsv_str){s + 4, len - 4};
  return 1;
}

int rsv_parse_place(const char *s, size_t len, struct rsv_place *out) {
  memset(out, 0, sizeof *out);
  struct rsv_str f[3];
  size_t n = split(s, len, f, 2);
  if (is(&f[0], "SAME") && n == 2) {
    /* SAME|<the first outcome> */
    int rc = rsv_parse_place(f[1].p, f[1].n, out);
    out->same = 1;
    return rc;
  }
  if (is(&f[0], "RESERVED") && n == 1) {
    out->kind = RSV_PLACE_RESERVED;
    return LINLI_OK;
  }
  if (is(&f[0], "DUP") && n == 1) {
    out->kind = RSV_PLACE_DUP;
    return LINLI_OK;
  }
  if (is(&f[0], "SHORT") && n == 2 && f[1].n > 0) {
    out->kind = RSV_PLACE_SHORT;
    out->shorts = f[1];
    return LINLI_OK;
  }
  if (is(&f[0], "REJ") && n == 2) {
    n = split(f[1].p, f[1].n, f, 2);
    if (f[0].n == 0)
      return LINLI_ERR_INVALID;
    out->kind = RSV_PLACE_REJ;
    out->reason = f[0];
    out->detail = n == 2 ? f[1] : (struct rsv_str){f[0].p + f[0].n, 0};
    return LINLI_OK;
  }
  return LINLI_ERR_INVALID;
}

int rsv_short_next(struct rsv_str *rest, struct rsv_short *out) {
  if (rest->n == 0)
    return 0;
  const char *semi = memchr(rest->p, ';', rest->n);
  size_t n = semi ? (size_t)(semi - rest->p) : rest->n;
  struct rsv_str e = {rest->p, n};
  rest->p += semi ? n + 1 : n;
  rest->n -= semi ? n + 1 : n;
  const char *c1 = memchr(e.p, ':', e.n);
  const char *c2 = c1 ? memchr(c1 + 1, ':', (size_t)(e.p + e.n - c1 - 1))
                      : NULL;
  if (!c1 || !c2 || c1 == e.p)
    return LINLI_ERR_INVALID;
  out->sku = (struct rsv_str){e.p, (size_t)(c1 - e.p)};
  struct rsv_str req = {c1 + 1, (size_t)(c2 - c1 - 1)};
  struct rsv_str av = {c2 + 1, (size_t)(e.p + e.n - c2 - 1)};
  if (num(&req, &out->requested) || num(&av, &out->available))
    return LINLI_ERR_INVALID;
  return 1;
}

int rsv_parse_pay(const char *s, size_t len, struct rsv_pay *out) {
  memset(out, 0, sizeof *out);
  struct rsv_str f[4];
  size_t n = split(s, len, f, 4);
  int64_t v = 0;
  if (is(&f[0], "COMMITTED")) {
    /* COMMITTED|<sc>|<over>|<pb> (pb: any bytes) */
    if (n != 4 || num(&f[1], &v) || v < 0 || v > 16 ||
        num(&f[2], &out->over) || out->over < 0)
      return LINLI_ERR_INVALID;
    out->kind = RSV_PAY_COMMITTED;
    out->storage_class = (int)v;
    out->pb = f[3];
    return LINLI_OK;
  }
  if (is(&f[0], "HELD")) {
    /* HELD|<sc>|<over>|<pb>: as COMMITTED, without fulfilment yet */
    if (n != 4 || num(&f[1], &v) || v < 0 || v > 16 ||
        num(&f[2], &out->over) || out->over < 0)
      return LINLI_ERR_INVALID;
    out->kind = RSV_PAY_HELD;
    out->storage_class = (int)v;
    out->pb = f[3];
    return LINLI_OK;
  }
  if (is(&f[0], "CPAID")) {
    /* CPAID|<price>|<sc>|<over>|<pb> */
    struct rsv_str g[5];
    if (split(s, len, g, 5) != 5 || num(&g[1], &out->price) ||
        out->price < 0 || num(&g[2], &v) || v < 0 || v > 16 ||
        num(&g[3], &out->over) || out->over < 0)
      return LINLI_ERR_INVALID;
    out->kind = RSV_PAY_SETTLED;
    out->storage_class = (int)v;
    out->pb = g[4];
    return LINLI_OK;
  }
  n = split(s, len, f, 3);
  if (is(&f[0], "GFAIL")) {
    /* GFAIL|<usr>|<covered> */
    if (n != 3 || num(&f[2], &out->covered) || out->covered < 0)
      return LINLI_ERR_INVALID;
    out->kind = RSV_PAY_GFAILED;
    out->usr = f[1];
    return LINLI_OK;
  }
  if (is(&f[0], "REPEAT") && n == 1)
    out->kind = RSV_PAY_REPEAT;
  else if (is(&f[0], "NOORDER") && n == 1)
    out->kind = RSV_PAY_NOORDER;
  else if (is(&f[0], "UNDER") && n == 3 && num(&f[2], &out->total) == 0)
    out->kind = RSV_PAY_UNDER;
  else if (is(&f[0], "DOUBLE") && n == 3)
    out->kind = RSV_PAY_DOUBLE;
  else if (is(&f[0], "LATE") && n == 2)
    out->kind = RSV_PAY_LATE;
  else if (is(&f[0], "CANCELLED") && n == 2)
    out->kind = RSV_PAY_CANCELLED;
  else if (is(&f[0], "REJECTED") && n == 2)
    out->kind = RSV_PAY_REJECTED;
  else
    return LINLI_ERR_INVALID;
  if (n > 1)
    out->usr = f[1];
  if (out->kind == RSV_PAY_DOUBLE)
    out->txn = f[2];
  return LINLI_OK;
}

int rsv_parse_release(const char *s, size_t len, struct rsv_release *out) {
  memset(out, 0, sizeof *out);
  struct rsv_str f[2];
  size_t n = split(s, len, f, 2);
  if (is(&f[0], "NOORDER") && n == 1)
    out->kind = RSV_REL_NOORDER;
  else if (is(&f[0], "RELEASED") && n == 2)
    out->kind = RSV_REL_RELEASED, out->usr = f[1];
  else if (is(&f[0], "PAID") && n == 2)
    out->kind = RSV_REL_PAID, out->usr = f[1];
  else if (is(&f[0], "ALREADY") && n == 2)
    out->kind = RSV_REL_ALREADY, out->state = f[1];
  else if (is(&f[0], "EARLY") && n == 2 && num(&f[1], &out->deadline) == 0)
    out->kind = RSV_REL_EARLY;
  else
    return LINLI_ERR_INVALID;
  return LINLI_OK;
}

int rsv_parse_adjust(const char *s, size_t len, struct rsv_adjust *out) {
  memset(out, 0, sizeof *out);
  struct rsv_str f[2];
  size_t n = split(s, len, f, 2);
  if (n != 2 || num(&f[1], &out->available))
    return LINLI_ERR_INVALID;
  if (is(&f[0], "OK"))
    out->kind = RSV_ADJ_OK;
  else if (is(&f[0], "NEG"))
    out->kind = RSV_ADJ_NEG;
  else
    return LINLI_ERR_INVALID;
  return LINLI_OK;
}

/* SETTLED|<price>|<n>|<entries>, FAILED|0|<n>|<entries>, ALREADY|<state> */
int rsv_parse_camp(const char *s, size_t len, struct rsv_camp *out) {
  memset(out, 0, sizeof *out);
  struct rsv_str f[4];
  size_t n = split(s, len, f, 4);
  if (is(&f[0], "ALREADY") && n == 2) {
    out->kind = RSV_CAMP_ALREADY;
    out->state = f[1];
    return LINLI_OK;
  }
  if (n != 4 || num(&f[1], &out->price) || out->price < 0 ||
      num(&f[2], &out->count) || out->count < 0)
    return LINLI_ERR_INVALID;
  if (is(&f[0], "SETTLED"))
    out->kind = RSV_CAMP_SETTLED;
  else if (is(&f[0], "FAILED"))
    out->kind = RSV_CAMP_FAILED;
  else
    return LINLI_ERR_INVALID;
  out->entries = f[3];
  return LINLI_OK;
}

/* The field up to the next ':' of *rest (advanced past it). */
static int colon_field(struct rsv_str *rest, struct rsv_str *out) {
  const char *c = memchr(rest->p, ':', rest->n);
  if (!c)
    return LINLI_ERR_INVALID;
  *out = (struct rsv_str){rest->p, (size_t)(c - rest->p)};
  rest->n -= out->n + 1;
  rest->p = c + 1;
  return LINLI_OK;
}

int rsv_camp_next(struct rsv_str *rest, struct rsv_camp_order *out) {
  if (rest->n == 0)
    return 0;
  struct rsv_str a, b, l;
  int64_t pblen = 0;
  if (colon_field(rest, &out->order_id) || out->order_id.n == 0 ||
      colon_field(rest, &a) || num(&a, &out->a) || colon_field(rest, &b) ||
      num(&b, &out->b) || colon_field(rest, &l) || num(&l, &pblen) ||
      pblen < 0 || (uint64_t)pblen > rest->n)
    return LINLI_ERR_INVALID;
  out->pb = (struct rsv_str){rest->p, (size_t)pblen};
  rest->p += pblen;
  rest->n -= (size_t)pblen;
  return 1;
}
