/*
 * wave.c - delivery waves (see domain/wave.h): reference data, schedule,
 * validation, the router's Lua body and the parser of its outcomes.
 *
 * Outcomes are "WORD|...". A closed wave is "WAVE|n|rec\nrec...", each
 * record "order|user|place|class|weight|slot_start|slot_end|sku:qty,..."
 * with place "P:<pickup point>" or "H:<lat_e6>:<lng_e6>". Ids never hold
 * '|', ':', ',' or a newline ([A-Za-z0-9_-]), so the separators are
 * unambiguous.
 */
#include "domain/wave.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "linli/error.h"
#include "linli/ids.h"

/* ====================================================== reference data */

struct perr {
  char *buf;
  size_t len;
  const char *name;
};

static int fail(struct perr *e, int line, const char *fmt, ...) {
  char msg[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  snprintf(e->buf, e->len, "%s:%d: %s", e->name, line, msg);
  return LINLI_ERR_CONFIG;
}

/* "-30.274123" -> microdegrees; at most 6 decimals, |v| <= lim degrees. */
static int parse_deg(const char *s, int lim, int32_t *out) {
  int neg = 0;
  if (*s == '-' || *s == '+')
    neg = *s++ == '-';
  if (!isdigit((unsigned char)*s))
    return -1;
  int64_t whole = 0, frac = 0;
  int digits = 0;
  for (; isdigit((unsigned char)*s); s++) {
    whole = whole * 10 + (*s - '0');
    if (whole > lim)
      return -1;
  }
  if (*s == '.') {
    s++;
    for (; isdigit((unsigned char)*s); s++) {
      if (++digits > 6)
        return -1;
      frac = frac * 10 + (*s - '0');
    }
    if (digits == 0)
      return -1;
  }
  if (*s)
    return -1;
  for (; digits < 6; digits++)
    frac *= 10;
  int64_t v = whole * 1000000 + frac;
  if (v > (int64_t)lim * 1000000)
    return -1;
  *out = (int32_t)(neg ? -v : v);
  return 0;
}

/* "HH:MM" -> minutes of the day (0..1439; "24:00" only if allow24). */
static int parse_hhmm(const char *s, int allow24, int *out) {
  if (strlen(s) != 5 || !isdigit((unsigned char)s[0]) ||
      !isdigit((unsigned char)s[1]) || s[2] != ':' ||
      !isdigit((unsigned char)s[3]) || !isdigit((unsigned char)s[4]))
    return -1;
  int h = (s[0] - '0') * 10 + (s[1] - '0'), m = (s[3] - '0') * 10 + (s[4] - '0');
  if (m > 59 || h > 24 || (h == 24 && (m != 0 || !allow24)))
    return -1;
  *out = h * 60 + m;
  return 0;
}

static int parse_int(const char *s, int64_t lo, int64_t hi, int64_t *out) {
  if (!*s || isspace((unsigned char)*s))
    return -1;
  char *end = NULL;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (*end || errno == ERANGE || v < lo || v > hi)
    return -1;
  *out = v;
  return 0;
}

static int int_cmp(const void *a, const void *b) {
  return *(const int *)a - *(const int *)b;
}

#define MAX_TOKENS 16

struct kv {
  const char *k, *v;
};

/* One line's "key=value" tokens after the kind and id. */
static int get(const struct kv *kv, size_t n, const char *k, const char **v) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(kv[i].k, k) == 0) {
      *v = kv[i].v;
      return 1;
    }
  return 0;
}

static int known(const struct kv *kv, size_t n, const char *const *keys,
                 const char **bad) {
  for (size_t i = 0; i < n; i++) {
    int ok = 0;
    for (const char *const *k = keys; *k; k++)
      ok |= strcmp(kv[i].k, *k) == 0;
    if (!ok) {
      *bad = kv[i].k;
      return 0;
    }
  }
  return 1;
}

static int parse_warehouse(struct perr *e, int line, const char *id,
                           const struct kv *kv, size_t n,
                           struct dom_ref_warehouse *w) {
  static const char *const keys[] = {"lat",    "lng",            "cutoffs",
                                     "depart", "express_every_min",
                                     "utc_offset_min", NULL};
  const char *bad = NULL, *v = NULL;
  if (!known(kv, n, keys, &bad))
    return fail(e, line, "warehouse %s: unknown key '%s'", id, bad);
  memset(w, 0, sizeof *w);
  snprintf(w->id, sizeof w->id, "%s", id);
  w->line = line;
  if (!get(kv, n, "lat", &v) || parse_deg(v, 90, &w->lat_e6) != 0)
    return fail(e, line, "warehouse %s: lat: need degrees -90..90 with at "
                         "most 6 decimals", id);
  if (!get(kv, n, "lng", &v) || parse_deg(v, 180, &w->lng_e6) != 0)
    return fail(e, line, "warehouse %s: lng: need degrees -180..180 with at "
                         "most 6 decimals", id);
  if (!get(kv, n, "cutoffs", &v))
    return fail(e, line, "warehouse %s: cutoffs: missing (HH:MM[,HH:MM...])",
                id);
  char tmp[128];
  snprintf(tmp, sizeof tmp, "%s", v);
  char *save = NULL;
  for (char *t = strtok_r(tmp, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
    if (w->ncutoffs == DOM_WAVE_MAX_CUTOFFS)
      return fail(e, line, "warehouse %s: cutoffs: at most %d", id,
                  DOM_WAVE_MAX_CUTOFFS);
    if (parse_hhmm(t, 0, &w->cutoff_min[w->ncutoffs]) != 0)
      return fail(e, line, "warehouse %s: cutoffs: '%s' is not HH:MM", id, t);
    w->ncutoffs++;
  }
  if (w->ncutoffs == 0)
    return fail(e, line, "warehouse %s: cutoffs: empty", id);
  qsort(w->cutoff_min, (size_t)w->ncutoffs, sizeof(int), int_cmp);
  for (int i = 1; i < w->ncutoffs; i++)
    if (w->cutoff_min[i] == w->cutoff_min[i - 1])
      return fail(e, line, "warehouse %s: cutoffs: repeated", id);
  if (!get(kv, n, "depart", &v) || parse_hhmm(v, 0, &w->depart_min) != 0)
    return fail(e, line, "warehouse %s: depart: need HH:MM", id);
  int64_t x = 0;
  if (get(kv, n, "express_every_min", &v)) {
    if (parse_int(v, 0, 1440, &x) != 0)
      return fail(e, line, "warehouse %s: express_every_min: need 0..1440",
                  id);
    w->express_every_min = (int)x;
  }
  if (get(kv, n, "utc_offset_min", &v)) {
    if (parse_int(v, -720, 840, &x) != 0)
      return fail(e, line, "warehouse %s: utc_offset_min: need -720..840",
                  id);
    w->utc_offset_min = (int)x;
  }
  return LINLI_OK;
}

static int parse_pickup(struct perr *e, int line, const char *id,
                        const struct kv *kv, size_t n,
                        struct dom_ref_pickup *p) {
  static const char *const keys[] = {"community", "lat", "lng", "hours",
                                     "capacity", NULL};
  const char *bad = NULL, *v = NULL;
  if (!known(kv, n, keys, &bad))
    return fail(e, line, "pickup %s: unknown key '%s'", id, bad);
  memset(p, 0, sizeof *p);
  snprintf(p->id, sizeof p->id, "%s", id);
  p->line = line;
  if (!get(kv, n, "community", &v) || !linli_id_valid(v))
    return fail(e, line, "pickup %s: community: need an id "
                         "(1-64 of [A-Za-z0-9_-])", id);
  snprintf(p->community, sizeof p->community, "%s", v);
  if (!get(kv, n, "lat", &v) || parse_deg(v, 90, &p->lat_e6) != 0)
    return fail(e, line, "pickup %s: lat: need degrees -90..90 with at most "
                         "6 decimals", id);
  if (!get(kv, n, "lng", &v) || parse_deg(v, 180, &p->lng_e6) != 0)
    return fail(e, line, "pickup %s: lng: need degrees -180..180 with at "
                         "most 6 decimals", id);
  char a[8], b[8];
  if (!get(kv, n, "hours", &v) || strlen(v) != 11 || v[5] != '-')
    return fail(e, line, "pickup %s: hours: need HH:MM-HH:MM", id);
  memcpy(a, v, 5), a[5] = '\0';
  memcpy(b, v + 6, 5), b[5] = '\0';
  if (parse_hhmm(a, 0, &p->open_min) != 0 ||
      parse_hhmm(b, 1, &p->close_min) != 0 || p->open_min >= p->close_min)
    return fail(e, line, "pickup %s: hours: need HH:MM-HH:MM, opening "
                         "before closing", id);
  int64_t x = 0;
  if (!get(kv, n, "capacity", &v) || parse_int(v, 1, 1000000, &x) != 0)
    return fail(e, line, "pickup %s: capacity: need parcels 1..1000000", id);
  p->capacity = (int32_t)x;
  return LINLI_OK;
}

static int parse_vehicle(struct perr *e, int line, const char *id,
                         const struct kv *kv, size_t n,
                         struct dom_ref_vehicle *vh) {
  static const char *const keys[] = {"warehouse", "kg", "items",
                                     "refrigerated", "shift_min", NULL};
  const char *bad = NULL, *v = NULL;
  if (!known(kv, n, keys, &bad))
    return fail(e, line, "vehicle %s: unknown key '%s'", id, bad);
  memset(vh, 0, sizeof *vh);
  snprintf(vh->id, sizeof vh->id, "%s", id);
  vh->line = line;
  if (!get(kv, n, "warehouse", &v) || !linli_id_valid(v))
    return fail(e, line, "vehicle %s: warehouse: need an id", id);
  snprintf(vh->warehouse, sizeof vh->warehouse, "%s", v);
  int64_t x = 0;
  if (!get(kv, n, "kg", &v) || parse_int(v, 1, 1000000, &x) != 0)
    return fail(e, line, "vehicle %s: kg: need 1..1000000", id);
  vh->cap_weight_g = x * 1000;
  if (!get(kv, n, "items", &v) || parse_int(v, 1, 10000000, &x) != 0)
    return fail(e, line, "vehicle %s: items: need 1..10000000", id);
  vh->cap_items = x;
  if (!get(kv, n, "refrigerated", &v) ||
      (strcmp(v, "yes") != 0 && strcmp(v, "no") != 0))
    return fail(e, line, "vehicle %s: refrigerated: need yes or no", id);
  vh->refrigerated = strcmp(v, "yes") == 0;
  if (!get(kv, n, "shift_min", &v) || parse_int(v, 1, 7 * 1440, &x) != 0)
    return fail(e, line, "vehicle %s: shift_min: need 1..10080", id);
  vh->shift_ms = x * 60000;
  return LINLI_OK;
}

static int wh_cmp(const void *a, const void *b) {
  return strcmp(((const struct dom_ref_warehouse *)a)->id,
                ((const struct dom_ref_warehouse *)b)->id);
}
static int pp_cmp(const void *a, const void *b) {
  return strcmp(((const struct dom_ref_pickup *)a)->id,
                ((const struct dom_ref_pickup *)b)->id);
}
static int veh_cmp(const void *a, const void *b) {
  const struct dom_ref_vehicle *x = a, *y = b;
  int c = strcmp(x->warehouse, y->warehouse);
  return c ? c : strcmp(x->id, y->id);
}

/* Grow an array of elem-sized entries by one; NULL on NOMEM. */
static void *push(void **arr, size_t *n, size_t elem) {
  void *na = realloc(*arr, (*n + 1) * elem);
  if (!na)
    return NULL;
  *arr = na;
  return (char *)na + (*n)++ * elem;
}

int dom_ref_parse(const char *text, const char *name, struct dom_ref *out,
                  char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  struct perr e = {err, errlen, name};
  int rc = LINLI_OK, line = 0;
  const char *p = text;
  while (rc == LINLI_OK && *p) {
    line++;
    const char *nl = strchr(p, '\n');
    size_t len = nl ? (size_t)(nl - p) : strlen(p);
    char buf[1024];
    if (len >= sizeof buf) {
      rc = fail(&e, line, "line longer than %zu characters", sizeof buf - 1);
      break;
    }
    memcpy(buf, p, len);
    buf[len] = '\0';
    p = nl ? nl + 1 : p + len;
    char *hash = strchr(buf, '#');
    if (hash)
      *hash = '\0';
    char *tok[MAX_TOKENS + 3], *save = NULL;
    size_t nt = 0;
    for (char *t = strtok_r(buf, " \t\r", &save); t;
         t = strtok_r(NULL, " \t\r", &save)) {
      if (nt == MAX_TOKENS + 2) {
        rc = fail(&e, line, "too many fields");
        break;
      }
      tok[nt++] = t;
    }
    if (rc != LINLI_OK || nt == 0)
      continue;
    if (nt < 2 || !linli_id_valid(tok[1])) {
      rc = fail(&e, line, "%s: need an id (1-64 of [A-Za-z0-9_-]) after it",
                tok[0]);
      break;
    }
    struct kv kv[MAX_TOKENS];
    size_t nkv = 0;
    for (size_t i = 2; i < nt; i++) {
      char *eq = strchr(tok[i], '=');
      if (!eq || eq == tok[i]) {
        rc = fail(&e, line, "'%s' is not key=value", tok[i]);
        break;
      }
      *eq = '\0';
      for (size_t j = 0; j < nkv; j++)
        if (strcmp(kv[j].k, tok[i]) == 0)
          rc = fail(&e, line, "%s given twice", tok[i]);
      kv[nkv].k = tok[i];
      kv[nkv++].v = eq + 1;
    }
    if (rc != LINLI_OK)
      break;
    if (strcmp(tok[0], "warehouse") == 0) {
      struct dom_ref_warehouse *w = push((void **)&out->wh, &out->nwh,
                                         sizeof *w);
      rc = w ? parse_warehouse(&e, line, tok[1], kv, nkv, w) : LINLI_ERR_NOMEM;
    } else if (strcmp(tok[0], "pickup") == 0) {
      struct dom_ref_pickup *pp = push((void **)&out->pp, &out->npp,
                                       sizeof *pp);
      rc = pp ? parse_pickup(&e, line, tok[1], kv, nkv, pp) : LINLI_ERR_NOMEM;
    } else if (strcmp(tok[0], "vehicle") == 0) {
      struct dom_ref_vehicle *v = push((void **)&out->veh, &out->nveh,
                                       sizeof *v);
      rc = v ? parse_vehicle(&e, line, tok[1], kv, nkv, v) : LINLI_ERR_NOMEM;
    } else {
      rc = fail(&e, line, "unknown entry '%s' (warehouse, pickup, vehicle)",
                tok[0]);
    }
  }
  if (rc == LINLI_OK) {
    if (out->nwh)
      qsort(out->wh, out->nwh, sizeof *out->wh, wh_cmp);
    if (out->npp)
      qsort(out->pp, out->npp, sizeof *out->pp, pp_cmp);
    if (out->nveh)
      qsort(out->veh, out->nveh, sizeof *out->veh, veh_cmp);
    /* Duplicates and dangling references, reported at the later line. */
    for (size_t i = 1; rc == LINLI_OK && i < out->nwh; i++)
      if (strcmp(out->wh[i].id, out->wh[i - 1].id) == 0)
        rc = fail(&e, out->wh[i].line > out->wh[i - 1].line
                          ? out->wh[i].line
                          : out->wh[i - 1].line,
                  "warehouse %s: defined twice", out->wh[i].id);
    for (size_t i = 1; rc == LINLI_OK && i < out->npp; i++)
      if (strcmp(out->pp[i].id, out->pp[i - 1].id) == 0)
        rc = fail(&e, out->pp[i].line > out->pp[i - 1].line
                          ? out->pp[i].line
                          : out->pp[i - 1].line,
                  "pickup %s: defined twice", out->pp[i].id);
    for (size_t i = 0; rc == LINLI_OK && i < out->nveh; i++) {
      if (i > 0 && veh_cmp(&out->veh[i], &out->veh[i - 1]) == 0)
        rc = fail(&e, out->veh[i].line, "vehicle %s: defined twice in "
                  "warehouse %s", out->veh[i].id, out->veh[i].warehouse);
      else if (!dom_ref_warehouse(out, out->veh[i].warehouse))
        rc = fail(&e, out->veh[i].line, "vehicle %s: unknown warehouse %s",
                  out->veh[i].id, out->veh[i].warehouse);
    }
    for (size_t i = 0; rc == LINLI_OK && i < out->nwh; i++) {
      size_t n = 0;
      dom_ref_vehicles(out, out->wh[i].id, &n);
      if (n == 0)
        rc = fail(&e, out->wh[i].line, "warehouse %s: has no vehicle",
                  out->wh[i].id);
    }
  }
  if (rc != LINLI_OK) {
    if (rc == LINLI_ERR_NOMEM)
      snprintf(err, errlen, "%s: out of memory", name);
    dom_ref_free(out);
  }
  return rc;
}

void dom_ref_free(struct dom_ref *ref) {
  free(ref->wh);
  free(ref->pp);
  free(ref->veh);
  memset(ref, 0, sizeof *ref);
}

const struct dom_ref_warehouse *dom_ref_warehouse(const struct dom_ref *ref,
                                                  const char *id) {
  struct dom_ref_warehouse key;
  snprintf(key.id, sizeof key.id, "%s", id);
  return ref->nwh ? bsearch(&key, ref->wh, ref->nwh, sizeof key, wh_cmp)
                  : NULL;
}

const struct dom_ref_pickup *dom_ref_pickup(const struct dom_ref *ref,
                                            const char *id) {
  struct dom_ref_pickup key;
  snprintf(key.id, sizeof key.id, "%s", id);
  return ref->npp ? bsearch(&key, ref->pp, ref->npp, sizeof key, pp_cmp)
                  : NULL;
}

const struct dom_ref_vehicle *dom_ref_vehicles(const struct dom_ref *ref,
                                               const char *warehouse,
                                               size_t *n) {
  size_t lo = 0;
  while (lo < ref->nveh && strcmp(ref->veh[lo].warehouse, warehouse) < 0)
    lo++;
  size_t hi = lo;
  while (hi < ref->nveh && strcmp(ref->veh[hi].warehouse, warehouse) == 0)
    hi++;
  *n = hi - lo;
  return hi > lo ? &ref->veh[lo] : NULL;
}

/* ============================================================ schedule */

#define MIN_MS INT64_C(60000)

static int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

char dom_wave_kind(const struct dom_ref_warehouse *w, int express) {
  return express && w->express_every_min > 0 ? DOM_WAVE_EXPRESS
                                             : DOM_WAVE_DAILY;
}

int64_t dom_wave_cutoff_before(const struct dom_ref_warehouse *w, char kind,
                               int64_t t_ms) {
  if (kind == DOM_WAVE_EXPRESS) {
    if (w->express_every_min <= 0)
      return -1;
    int64_t every = w->express_every_min * MIN_MS;
    return floor_div(t_ms, every) * every;
  }
  if (w->ncutoffs == 0)
    return -1;
  int64_t off = w->utc_offset_min * MIN_MS;
  int64_t day = floor_div(t_ms + off, DOM_WAVE_DAY_MS);
  int64_t best = -1;
  for (int64_t d = day - 1; d <= day; d++)
    for (int i = 0; i < w->ncutoffs; i++) {
      int64_t c = d * DOM_WAVE_DAY_MS + w->cutoff_min[i] * MIN_MS - off;
      if (c <= t_ms && c > best)
        best = c;
    }
  return best;
}

void dom_wave_id(const struct dom_ref_warehouse *w, char kind,
                 int64_t cutoff_ms, char *buf, size_t len) {
  int64_t local = cutoff_ms + w->utc_offset_min * MIN_MS;
  int64_t days = floor_div(local, DOM_WAVE_DAY_MS);
  int64_t mins = (local - days * DOM_WAVE_DAY_MS) / MIN_MS;
  /* Civil date from days since 1970-01-01 (Howard Hinnant's algorithm). */
  int64_t z = days + 719468;
  int64_t era = floor_div(z, 146097);
  int64_t doe = z - era * 146097;
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t y = yoe + era * 400, doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  int64_t mp = (5 * doy + 2) / 153, dd = doy - (153 * mp + 2) / 5 + 1;
  int64_t mm = mp < 10 ? mp + 3 : mp - 9;
  y += mm <= 2;
  snprintf(buf, len, "%c%04" PRId64 "%02" PRId64 "%02" PRId64 "-%02" PRId64
                     "%02" PRId64,
           kind, y, mm, dd, mins / 60, mins % 60);
}

int64_t dom_wave_depart_ms(const struct dom_ref_warehouse *w, char kind,
                           int64_t cutoff_ms, int64_t express_delay_ms) {
  if (kind == DOM_WAVE_EXPRESS)
    return cutoff_ms + express_delay_ms;
  int64_t off = w->utc_offset_min * MIN_MS;
  int64_t day = floor_div(cutoff_ms + off, DOM_WAVE_DAY_MS);
  int64_t t = day * DOM_WAVE_DAY_MS + w->depart_min * MIN_MS - off;
  return t > cutoff_ms ? t : t + DOM_WAVE_DAY_MS;
}

void dom_wave_pickup_window(const struct dom_ref_pickup *p,
                            int utc_offset_min, int64_t depart_ms,
                            int64_t *open_ms, int64_t *close_ms) {
  int64_t off = utc_offset_min * MIN_MS;
  int64_t day = floor_div(depart_ms + off, DOM_WAVE_DAY_MS);
  int64_t base = day * DOM_WAVE_DAY_MS - off;
  if (base + p->close_min * MIN_MS <= depart_ms)
    base += DOM_WAVE_DAY_MS;
  *open_ms = base + p->open_min * MIN_MS;
  *close_ms = base + p->close_min * MIN_MS;
}

/* ========================================================== validation */

int dom_wave_check_item(const Linli__FulfillmentItem *it, dom_err_fn err,
                        void *arg) {
  if (!it) {
    err(arg, "fulfillment_item", "missing");
    return 1;
  }
  int bad = 0;
  bad += dom_check_id("order_id", it->order_id, err, arg);
  bad += dom_check_id("warehouse_id", it->warehouse_id, err, arg);
  bad += dom_check_id("user_id", it->user_id, err, arg);
  bad += dom_check_opt_id("wave_id", it->wave_id, err, arg);
  bad += dom_check_opt_id("campaign_id", it->campaign_id, err, arg);
  if (it->n_lines == 0) {
    err(arg, "lines", "at least one line is required");
    bad++;
  }
  if (it->n_lines > 10000) {
    err(arg, "lines", "more than 10000 lines");
    bad++;
  }
  char f[48];
  for (size_t i = 0; i < it->n_lines && i < 10000; i++) {
    const Linli__OrderLine *l = it->lines[i];
    snprintf(f, sizeof f, "lines[%zu].sku_id", i);
    bad += dom_check_id(f, l ? l->sku_id : NULL, err, arg);
    snprintf(f, sizeof f, "lines[%zu].quantity", i);
    bad += dom_check_range(f, l ? l->quantity : 0, 1, DOM_MAX_QUANTITY, err,
                           arg);
  }
  /* 0 (UNSPECIFIED) is allowed: the reserver sends it when no line's SKU
   * has a class, meaning none needs cold (the ledger reads it as AMBIENT). */
  bad += dom_check_range("storage_class", it->storage_class,
                         LINLI__STORAGE_CLASS__STORAGE_CLASS_UNSPECIFIED,
                         LINLI__STORAGE_CLASS__FROZEN, err, arg);
  switch (it->delivery_case) {
  case LINLI__FULFILLMENT_ITEM__DELIVERY_PICKUP:
    bad += dom_check_id("pickup.pickup_point_id",
                        it->pickup ? it->pickup->pickup_point_id : NULL, err,
                        arg);
    break;
  case LINLI__FULFILLMENT_ITEM__DELIVERY_HOME:
    bad += dom_check_range("home.lat_e6", it->home->lat_e6, -90000000,
                           90000000, err, arg);
    bad += dom_check_range("home.lng_e6", it->home->lng_e6, -180000000,
                           180000000, err, arg);
    break;
  default:
    err(arg, "delivery", "pickup or home is required");
    bad++;
  }
  bad += dom_check_range("weight_g", it->weight_g, 0, DOM_WAVE_MAX_WEIGHT_G,
                         err, arg);
  bad += dom_check_range("slot_start_ms", it->slot_start_ms, 0,
                         DOM_MAX_TIME_MS, err, arg);
  bad += dom_check_range("slot_end_ms", it->slot_end_ms, 0, DOM_MAX_TIME_MS,
                         err, arg);
  if (it->slot_end_ms > 0 && it->slot_start_ms > it->slot_end_ms) {
    err(arg, "slot_end_ms", "before slot_start_ms");
    bad++;
  }
  return bad;
}

int dom_wave_check_closed(const Linli__WaveClosed *c, dom_err_fn err,
                          void *arg) {
  if (!c) {
    err(arg, "wave_closed", "missing");
    return 1;
  }
  int bad = 0;
  bad += dom_check_id("warehouse_id", c->warehouse_id, err, arg);
  bad += dom_check_id("wave_id", c->wave_id, err, arg);
  bad += dom_check_range("cutoff_ms", c->cutoff_ms, 1, DOM_MAX_TIME_MS, err,
                         arg);
  return bad;
}

/* ========================================================= Redis state */

const char DOM_WAVE_LUA[] =
    "apply = function(P, A)\n"
    "  local S, op, kind = P .. '" DOM_WAVE_SUFFIX_STATE "', A[1], A[2]\n"
    "  local Q = P .. '" DOM_WAVE_SUFFIX_QUEUE "' .. kind\n"
    "  local SEEN = P .. '" DOM_WAVE_SUFFIX_SEEN "' .. kind\n"
    "  local cutf = 'cut:' .. kind\n"
    "  local cut = tonumber(redis.call('HGET', S, cutf) or '-1')\n"
    "  if op == 'item' then\n"
    "    if redis.call('HSETNX', SEEN, A[3], 1) == 0 then return 'DUP' end\n"
    "    if redis.call('LLEN', Q) == 0 and tonumber(A[5]) > cut then\n"
    "      redis.call('HSET', S, cutf, A[5])\n"
    "    end\n"
    "    local n = redis.call('RPUSH', Q, A[4])\n"
    "    for _, k in ipairs({S, Q, SEEN, P .. 'hwm'}) do\n"
    "      redis.call('EXPIRE', k, A[6])\n"
    "    end\n"
    "    return 'ADDED|' .. n\n"
    "  end\n"
    "  if op == 'close' then\n"
    "    if tonumber(A[3]) <= cut then return 'ALREADY|' .. cut end\n"
    "    local items = redis.call('LRANGE', Q, 0, -1)\n"
    "    redis.call('DEL', Q, SEEN)\n"
    "    redis.call('HSET', S, cutf, A[3])\n"
    "    redis.call('EXPIRE', S, A[4])\n"
    "    redis.call('EXPIRE', P .. 'hwm', A[4])\n"
    "    return 'WAVE|' .. #items .. '|' .. table.concat(items, '\\n')\n"
    "  end\n"
    "  error('unknown op ' .. tostring(op))\n"
    "end\n";

int dom_wave_record(const Linli__FulfillmentItem *it, char *buf, size_t len) {
  size_t off = 0;
  int n;
  int sc = it->storage_class == LINLI__STORAGE_CLASS__STORAGE_CLASS_UNSPECIFIED
               ? LINLI__STORAGE_CLASS__AMBIENT
               : (int)it->storage_class;
  if (it->delivery_case == LINLI__FULFILLMENT_ITEM__DELIVERY_PICKUP)
    n = snprintf(buf, len, "%s|%s|P:%s|%d|%lld|%lld|%lld|", it->order_id,
                 it->user_id, it->pickup->pickup_point_id, sc,
                 (long long)it->weight_g,
                 (long long)it->slot_start_ms, (long long)it->slot_end_ms);
  else
    n = snprintf(buf, len, "%s|%s|H:%d:%d|%d|%lld|%lld|%lld|", it->order_id,
                 it->user_id, (int)it->home->lat_e6, (int)it->home->lng_e6,
                 sc, (long long)it->weight_g,
                 (long long)it->slot_start_ms, (long long)it->slot_end_ms);
  if (n < 0 || (size_t)n >= len)
    return LINLI_ERR_TOOBIG;
  off = (size_t)n;
  for (size_t i = 0; i < it->n_lines; i++) {
    n = snprintf(buf + off, len - off, "%s%s:%d", i ? "," : "",
                 it->lines[i]->sku_id, (int)it->lines[i]->quantity);
    if (n < 0 || (size_t)n >= len - off)
      return LINLI_ERR_TOOBIG;
    off += (size_t)n;
  }
  return LINLI_OK;
}

static int num(const char *s, int64_t lo, int64_t hi, int64_t *out) {
  return parse_int(s, lo, hi, out) == 0 ? 0 : -1;
}

/* Split s at sep into at most max fields (the last takes the rest). */
static size_t split(char *s, char sep, char **f, size_t max) {
  size_t n = 0;
  f[n++] = s;
  while (n < max) {
    char *p = strchr(s, sep);
    if (!p)
      break;
    *p = '\0';
    s = p + 1;
    f[n++] = s;
  }
  return n;
}

static int parse_record(char *rec, struct dom_wave_item *it) {
  char *f[8];
  int64_t v = 0;
  memset(it, 0, sizeof *it);
  if (split(rec, '|', f, 8) != 8 || !linli_id_valid(f[0]) ||
      !linli_id_valid(f[1]))
    return LINLI_ERR_INVALID;
  it->order_id = f[0];
  it->user_id = f[1];
  if (strncmp(f[2], "P:", 2) == 0) {
    if (!linli_id_valid(f[2] + 2))
      return LINLI_ERR_INVALID;
    it->pickup_point_id = f[2] + 2;
  } else if (strncmp(f[2], "H:", 2) == 0) {
    char *c[2];
    if (split(f[2] + 2, ':', c, 2) != 2 ||
        num(c[0], -90000000, 90000000, &v) != 0)
      return LINLI_ERR_INVALID;
    it->lat_e6 = (int32_t)v;
    if (num(c[1], -180000000, 180000000, &v) != 0)
      return LINLI_ERR_INVALID;
    it->lng_e6 = (int32_t)v;
  } else {
    return LINLI_ERR_INVALID;
  }
  if (num(f[3], 1, 3, &v) != 0)
    return LINLI_ERR_INVALID;
  it->storage_class = (int)v;
  if (num(f[4], 0, DOM_WAVE_MAX_WEIGHT_G, &it->weight_g) != 0 ||
      num(f[5], 0, DOM_MAX_TIME_MS, &it->slot_start_ms) != 0 ||
      num(f[6], 0, DOM_MAX_TIME_MS, &it->slot_end_ms) != 0)
    return LINLI_ERR_INVALID;
  size_t n = 1;
  for (const char *p = f[7]; *p; p++)
    n += *p == ',';
  it->lines = malloc(n * sizeof *it->lines);
  if (!it->lines)
    return LINLI_ERR_NOMEM;
  char *save = NULL;
  for (char *l = strtok_r(f[7], ",", &save); l; l = strtok_r(NULL, ",", &save)) {
    char *colon = strrchr(l, ':');
    if (!colon || it->nlines == n)
      return LINLI_ERR_INVALID;
    *colon = '\0';
    if (!linli_id_valid(l) || num(colon + 1, 1, DOM_MAX_QUANTITY, &v) != 0)
      return LINLI_ERR_INVALID;
    it->lines[it->nlines].sku_id = l;
    it->lines[it->nlines++].quantity = (int32_t)v;
    it->items += v;
  }
  return it->nlines > 0 ? LINLI_OK : LINLI_ERR_INVALID;
}

int dom_wave_outcome_parse(char *buf, size_t len,
                           struct dom_wave_outcome *out) {
  memset(out, 0, sizeof *out);
  if (strlen(buf) != len)
    return LINLI_ERR_INVALID;
  if (strncmp(buf, "ADDED|", 6) == 0) {
    out->kind = DOM_WAVE_ADDED;
    return LINLI_OK;
  }
  if (strcmp(buf, "DUP") == 0) {
    out->kind = DOM_WAVE_DUP;
    return LINLI_OK;
  }
  if (strncmp(buf, "ALREADY|", 8) == 0) {
    out->kind = DOM_WAVE_ALREADY;
    out->detail = buf + 8;
    return LINLI_OK;
  }
  if (strncmp(buf, "ERR|", 4) == 0) {
    out->kind = DOM_WAVE_ERROR;
    out->detail = buf + 4;
    return LINLI_OK;
  }
  if (strncmp(buf, "WAVE|", 5) != 0)
    return LINLI_ERR_INVALID;
  char *f[2];
  int64_t n = 0;
  if (split(buf + 5, '|', f, 2) != 2 || num(f[0], 0, 100000000, &n) != 0)
    return LINLI_ERR_INVALID;
  out->kind = DOM_WAVE_CLOSED;
  if (n == 0)
    return *f[1] ? LINLI_ERR_INVALID : LINLI_OK;
  /* One record a line: the count must be the text's, before it sizes an
   * allocation (a count alone must not ask for gigabytes). */
  int64_t lines = 1;
  for (const char *c = f[1]; *c; c++)
    lines += *c == '\n';
  if (lines != n)
    return LINLI_ERR_INVALID;
  out->items = calloc((size_t)n, sizeof *out->items);
  if (!out->items)
    return LINLI_ERR_NOMEM;
  char *rec = f[1];
  for (int64_t i = 0; i < n; i++) {
    char *nl = strchr(rec, '\n');
    if ((nl == NULL) != (i == n - 1)) {
      dom_wave_outcome_free(out);
      return LINLI_ERR_INVALID;
    }
    if (nl)
      *nl = '\0';
    int rc = parse_record(rec, &out->items[out->nitems]);
    out->nitems++;
    if (rc != LINLI_OK) {
      dom_wave_outcome_free(out);
      return rc;
    }
    rec = nl ? nl + 1 : rec;
  }
  return LINLI_OK;
}

void dom_wave_outcome_free(struct dom_wave_outcome *out) {
  for (size_t i = 0; out->items && i < out->nitems; i++)
    free(out->items[i].lines);
  free(out->items);
  memset(out, 0, sizeof *out);
}
