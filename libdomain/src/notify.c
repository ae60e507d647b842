/*
 * notify.c - notification templates: the catalogue, loading and checking
 * config/templates/<locale>/<template>.txt, rendering, and the
 * money/time/quiet-hour
 * formatting every channel shares (see domain/notify.h).
 */
#include "domain/notify.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "linli/error.h"
#include "linli/json.h"

/* ------------------------------------------------------------ catalogue */

static const char *const P_ORDER_CONFIRMED[] = {"order_id", "total", "pay_by",
                                                NULL};
static const char *const P_ORDER_REJECTED[] = {"order_id", "reason", "items",
                                               NULL};
static const char *const P_REMINDER[] = {"order_id", "total", "pay_by", NULL};
static const char *const P_ORDER[] = {"order_id", NULL};
static const char *const P_GB_FORMED[] = {"campaign_id", "participants",
                                          "unit_price", NULL};
static const char *const P_GB_TIER[] = {"campaign_id", "tier", "participants",
                                        "unit_price", NULL};
static const char *const P_GB_SETTLED[] = {"campaign_id", "unit_price",
                                           "participants", "refund", NULL};
static const char *const P_GB_FAILED[] = {"campaign_id", "refund", NULL};
static const char *const P_OUT[] = {"order_id", "eta", NULL};
static const char *const P_PICKUP[] = {"order_id", "pickup_point",
                                       "pickup_code", "opening_hours", NULL};
static const char *const P_FAILED[] = {"order_id", "reason", NULL};

static const struct {
  const char *name;
  const char *const *params;
} CATALOGUE[DOM_TPL_COUNT] = {
    [DOM_TPL_ORDER_CONFIRMED] = {"order_confirmed", P_ORDER_CONFIRMED},
    [DOM_TPL_ORDER_REJECTED] = {"order_rejected", P_ORDER_REJECTED},
    [DOM_TPL_PAYMENT_REMINDER] = {"payment_reminder", P_REMINDER},
    [DOM_TPL_ORDER_EXPIRED] = {"order_expired", P_ORDER},
    [DOM_TPL_GROUPBUY_FORMED] = {"groupbuy_formed", P_GB_FORMED},
    [DOM_TPL_GROUPBUY_TIER] = {"groupbuy_tier_unlocked", P_GB_TIER},
    [DOM_TPL_GROUPBUY_SETTLED] = {"groupbuy_settled", P_GB_SETTLED},
    [DOM_TPL_GROUPBUY_FAILED] = {"groupbuy_failed", P_GB_FAILED},
    [DOM_TPL_OUT_FOR_DELIVERY] = {"out_for_delivery", P_OUT},
    [DOM_TPL_PICKUP_READY] = {"pickup_ready", P_PICKUP},
    [DOM_TPL_DELIVERED] = {"delivered", P_ORDER},
    [DOM_TPL_DELIVERY_FAILED] = {"delivery_failed", P_FAILED},
};

const char *dom_tpl_name(enum dom_tpl_id id) {
  return (unsigned)id < DOM_TPL_COUNT ? CATALOGUE[id].name : "";
}

int dom_tpl_lookup(const char *name) {
  for (int i = 0; name && i < DOM_TPL_COUNT; i++)
    if (strcmp(CATALOGUE[i].name, name) == 0)
      return i;
  return -1;
}

const char *const *dom_tpl_params(enum dom_tpl_id id) {
  static const char *const none[] = {NULL};
  return (unsigned)id < DOM_TPL_COUNT ? CATALOGUE[id].params : none;
}

int dom_locale_valid(const char *s) {
  size_t n = s ? strlen(s) : 0;
  if (n < 2 || n >= DOM_LOCALE_MAX)
    return 0;
  for (size_t i = 0; i < n; i++)
    if (!isalnum((unsigned char)s[i]) && s[i] != '-')
      return 0;
  return 1;
}

/* -------------------------------------------------------------- checking */

static int known_param(enum dom_tpl_id id, const char *name, size_t len) {
  for (const char *const *p = dom_tpl_params(id); *p; p++)
    if (strlen(*p) == len && strncmp(*p, name, len) == 0)
      return 1;
  return 0;
}

static void known_list(enum dom_tpl_id id, char *buf, size_t len) {
  size_t off = 0;
  buf[0] = '\0';
  for (const char *const *p = dom_tpl_params(id); *p && off < len; p++) {
    int w = snprintf(buf + off, len - off, "%s{%s}", off ? ", " : "", *p);
    if (w < 0)
      break;
    off += (size_t)w;
  }
}

int dom_tpl_check(enum dom_tpl_id id, const char *text, const char *path,
                  char *err, size_t errlen) {
  if ((unsigned)id >= DOM_TPL_COUNT) {
    snprintf(err, errlen, "%s:1: unknown template", path);
    return LINLI_ERR_CONFIG;
  }
  if (!linli_utf8_valid(text, strlen(text))) {
    snprintf(err, errlen, "%s:1: not valid UTF-8", path);
    return LINLI_ERR_CONFIG;
  }
  int line = 1, nonblank = 0;
  for (const char *p = text; *p; p++) {
    if (*p == '\n') {
      line++;
      continue;
    }
    if (!isspace((unsigned char)*p))
      nonblank = 1;
    if (*p == '{' && p[1] == '{') {
      p++;
      continue;
    }
    if (*p == '}' && p[1] == '}') {
      p++;
      continue;
    }
    if (*p == '}') {
      snprintf(err, errlen, "%s:%d: '}' without '{' (write '}}' for a brace)",
               path, line);
      return LINLI_ERR_CONFIG;
    }
    if (*p != '{')
      continue;
    const char *name = p + 1, *end = name;
    while (*end && *end != '}' && *end != '\n' && *end != '{')
      end++;
    if (*end != '}') {
      snprintf(err, errlen, "%s:%d: unclosed placeholder", path, line);
      return LINLI_ERR_CONFIG;
    }
    if (!known_param(id, name, (size_t)(end - name))) {
      char known[256];
      known_list(id, known, sizeof known);
      snprintf(err, errlen, "%s:%d: unknown placeholder {%.*s} in %s (known: %s)",
               path, line, (int)(end - name > 64 ? 64 : end - name), name,
               dom_tpl_name(id), known);
      return LINLI_ERR_CONFIG;
    }
    p = end;
  }
  if (!nonblank) {
    snprintf(err, errlen, "%s:1: empty template", path);
    return LINLI_ERR_CONFIG;
  }
  return LINLI_OK;
}

/* --------------------------------------------------------------- loading */

struct dom_tpl_set {
  size_t nlocales;
  char locale[DOM_LOCALES_MAX][DOM_LOCALE_MAX];
  char *text[DOM_LOCALES_MAX][DOM_TPL_COUNT];
};

void dom_tpl_free(dom_tpl_set_t *s) {
  if (!s)
    return;
  for (size_t l = 0; l < s->nlocales; l++)
    for (int t = 0; t < DOM_TPL_COUNT; t++)
      free(s->text[l][t]);
  free(s);
}

/* Read a whole file (at most 64 KiB) into a malloc'd NUL-terminated string. */
static int read_file(const char *path, char **out, char *err, size_t errlen) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    return LINLI_ERR_CONFIG;
  }
  size_t cap = 65536, n = 0;
  char *buf = malloc(cap + 1);
  if (!buf) {
    fclose(f);
    return LINLI_ERR_NOMEM;
  }
  n = fread(buf, 1, cap + 1, f);
  int bad = ferror(f);
  fclose(f);
  if (bad || n > cap) {
    free(buf);
    snprintf(err, errlen, "%s: %s", path,
             bad ? "read error" : "larger than 64 KiB");
    return LINLI_ERR_CONFIG;
  }
  if (memchr(buf, '\0', n)) {
    free(buf);
    snprintf(err, errlen, "%s:1: holds a NUL byte", path);
    return LINLI_ERR_CONFIG;
  }
  /* One trailing newline is the file's, not the message's. */
  if (n > 0 && buf[n - 1] == '\n')
    n--;
  buf[n] = '\0';
  *out = buf;
  return LINLI_OK;
}

/* Every *.txt in dir/<locale> must name a template of the catalogue. */
static int check_no_strangers(const char *ldir, char *err, size_t errlen) {
  DIR *d = opendir(ldir);
  if (!d) {
    snprintf(err, errlen, "%s: missing locale directory (%s)", ldir,
             strerror(errno));
    return LINLI_ERR_CONFIG;
  }
  int rc = LINLI_OK;
  struct dirent *e;
  while (rc == LINLI_OK && (e = readdir(d)) != NULL) {
    size_t n = strlen(e->d_name);
    if (n <= 4 || strcmp(e->d_name + n - 4, ".txt") != 0)
      continue;
    char name[256];
    snprintf(name, sizeof name, "%.*s", (int)(n - 4), e->d_name);
    if (dom_tpl_lookup(name) < 0) {
      snprintf(err, errlen, "%s/%s:1: unknown template '%s'", ldir, e->d_name,
               name);
      rc = LINLI_ERR_CONFIG;
    }
  }
  closedir(d);
  return rc;
}

int dom_tpl_load(const char *dir, const char *locales, dom_tpl_set_t **out,
                 char *err, size_t errlen) {
  *out = NULL;
  dom_tpl_set_t *s = calloc(1, sizeof *s);
  if (!s)
    return LINLI_ERR_NOMEM;
  int rc = LINLI_OK;
  const char *p = locales ? locales : "";
  while (rc == LINLI_OK && *p) {
    const char *comma = strchr(p, ',');
    size_t n = comma ? (size_t)(comma - p) : strlen(p);
    char loc[DOM_LOCALE_MAX + 1];
    snprintf(loc, sizeof loc, "%.*s", (int)(n < DOM_LOCALE_MAX ? n : DOM_LOCALE_MAX), p);
    p += n + (comma ? 1 : 0);
    if (!dom_locale_valid(loc)) {
      snprintf(err, errlen, "%s: locale '%s' is not a locale name", dir, loc);
      rc = LINLI_ERR_CONFIG;
      break;
    }
    if (s->nlocales == DOM_LOCALES_MAX) {
      snprintf(err, errlen, "%s: more than %d locales", dir, DOM_LOCALES_MAX);
      rc = LINLI_ERR_CONFIG;
      break;
    }
    size_t l = s->nlocales++;
    memcpy(s->locale[l], loc, strlen(loc) + 1); /* valid: < DOM_LOCALE_MAX */
    char ldir[1024];
    snprintf(ldir, sizeof ldir, "%s/%s", dir, loc);
    rc = check_no_strangers(ldir, err, errlen);
    for (int t = 0; rc == LINLI_OK && t < DOM_TPL_COUNT; t++) {
      char path[1100];
      snprintf(path, sizeof path, "%s/%s.txt", ldir, dom_tpl_name(t));
      rc = read_file(path, &s->text[l][t], err, errlen);
      if (rc == LINLI_OK)
        rc = dom_tpl_check(t, s->text[l][t], path, err, errlen);
      else if (rc == LINLI_ERR_CONFIG)
        snprintf(err, errlen, "%s: missing: locale %s has no template %s",
                 path, loc, dom_tpl_name(t));
    }
  }
  if (rc == LINLI_OK && s->nlocales == 0) {
    snprintf(err, errlen, "%s: no locale configured", dir);
    rc = LINLI_ERR_CONFIG;
  }
  if (rc != LINLI_OK) {
    dom_tpl_free(s);
    return rc;
  }
  *out = s;
  return LINLI_OK;
}

static int locale_index(const dom_tpl_set_t *s, const char *locale) {
  for (size_t l = 0; locale && l < s->nlocales; l++)
    if (strcmp(s->locale[l], locale) == 0)
      return (int)l;
  return 0;
}

const char *dom_tpl_locale(const dom_tpl_set_t *s, const char *locale) {
  return s->locale[locale_index(s, locale)];
}

/* ------------------------------------------------------------- rendering */

int dom_tpl_render(const dom_tpl_set_t *s, enum dom_tpl_id id,
                   const char *locale, const struct dom_param *params,
                   size_t nparams, char *buf, size_t len) {
  if ((unsigned)id >= DOM_TPL_COUNT || len == 0)
    return LINLI_ERR_INVALID;
  const char *t = s->text[locale_index(s, locale)][id];
  size_t o = 0;
  int full = 0;
#define PUT(c)                                                                 \
  do {                                                                         \
    if (o + 1 < len)                                                           \
      buf[o++] = (c);                                                          \
    else                                                                       \
      full = 1;                                                                \
  } while (0)
  for (const char *p = t; *p; p++) {
    if ((*p == '{' && p[1] == '{') || (*p == '}' && p[1] == '}')) {
      PUT(*p);
      p++;
      continue;
    }
    if (*p != '{') {
      PUT(*p);
      continue;
    }
    const char *name = p + 1, *end = strchr(name, '}');
    if (!end)
      break; /* cannot happen: checked at load */
    size_t nl = (size_t)(end - name);
    for (size_t i = 0; i < nparams; i++) {
      if (strlen(params[i].key) == nl &&
          strncmp(params[i].key, name, nl) == 0) {
        for (const char *v = params[i].value ? params[i].value : ""; *v; v++)
          PUT(*v);
        break;
      }
    }
    p = end;
  }
#undef PUT
  buf[o] = '\0';
  return full ? LINLI_ERR_TOOBIG : LINLI_OK;
}

/* ------------------------------------------------------------ formatting */

void dom_fmt_money(int64_t fen, char *buf, size_t len) {
  /* |INT64_MIN| does not fit: format through unsigned arithmetic. */
  uint64_t a = fen < 0 ? (uint64_t)0 - (uint64_t)fen : (uint64_t)fen;
  snprintf(buf, len, "%s%llu.%02llu", fen < 0 ? "-" : "",
           (unsigned long long)(a / 100), (unsigned long long)(a % 100));
}

void dom_fmt_time(int64_t ms, int utc_offset_min, char *buf, size_t len) {
  time_t t = (time_t)(ms / 1000 + (int64_t)utc_offset_min * 60);
  struct tm tm;
  if (ms < 0 || !gmtime_r(&t, &tm)) {
    snprintf(buf, len, "-");
    return;
  }
  strftime(buf, len, "%Y-%m-%d %H:%M", &tm);
}

static int parse_hhmm(const char *s, int *min) {
  if (!isdigit((unsigned char)s[0]) || !isdigit((unsigned char)s[1]) ||
      s[2] != ':' || !isdigit((unsigned char)s[3]) ||
      !isdigit((unsigned char)s[4]))
    return -1;
  int h = (s[0] - '0') * 10 + (s[1] - '0');
  int m = (s[3] - '0') * 10 + (s[4] - '0');
  if (h > 23 || m > 59)
    return -1;
  *min = h * 60 + m;
  return 0;
}

int dom_quiet_parse(const char *spec, int utc_offset_min, struct dom_quiet *q) {
  memset(q, 0, sizeof *q);
  q->utc_offset_min = utc_offset_min;
  if (!spec || !*spec)
    return LINLI_OK;
  if (strlen(spec) != 11 || spec[5] != '-' ||
      parse_hhmm(spec, &q->start_min) != 0 ||
      parse_hhmm(spec + 6, &q->end_min) != 0 || q->start_min == q->end_min)
    return LINLI_ERR_INVALID;
  q->on = 1;
  return LINLI_OK;
}

int64_t dom_quiet_until(const struct dom_quiet *q, int64_t now_ms) {
  if (!q->on || now_ms < 0)
    return 0;
  const int64_t day = 86400000;
  int64_t local = now_ms + (int64_t)q->utc_offset_min * 60000;
  int64_t midnight = local - local % day;
  int minute = (int)((local % day) / 60000);
  int64_t end_local;
  if (q->start_min < q->end_min) { /* e.g. 13:00-14:00 */
    if (minute < q->start_min || minute >= q->end_min)
      return 0;
    end_local = midnight + (int64_t)q->end_min * 60000;
  } else { /* wraps midnight, e.g. 22:00-07:00 */
    if (minute >= q->start_min)
      end_local = midnight + day + (int64_t)q->end_min * 60000;
    else if (minute < q->end_min)
      end_local = midnight + (int64_t)q->end_min * 60000;
    else
      return 0;
  }
  return end_local - (int64_t)q->utc_offset_min * 60000;
}

/* ------------------------------------------------------ script outcome */

/* A decimal length then ':', at o[*pos]; -1 when malformed. */
static long long take_len(const char *o, size_t len, size_t *pos) {
  long long v = 0;
  size_t p = *pos, start = p;
  while (p < len && o[p] >= '0' && o[p] <= '9' && p - start < 12)
    v = v * 10 + (o[p++] - '0');
  if (p == start || p >= len || o[p] != ':')
    return -1;
  *pos = p + 1;
  return v;
}

int dom_nt_outcome_next(const char *o, size_t len, size_t *pos,
                        struct dom_nt_entry *e) {
  if (*pos >= len)
    return 0;
  size_t p = *pos;
  char flag = o[p++];
  if (flag != 'Q' && flag != 'D' && flag != 'F' && flag != '-')
    return LINLI_ERR_INVALID;
  long long ul = take_len(o, len, &p);
  if (ul < 1 || (size_t)ul > len - p)
    return LINLI_ERR_INVALID;
  e->user = o + p;
  e->userlen = (size_t)ul;
  p += (size_t)ul;
  long long pl = take_len(o, len, &p);
  if (pl < 0 || (size_t)pl > len - p)
    return LINLI_ERR_INVALID;
  e->packed = (const unsigned char *)o + p;
  e->packedlen = (size_t)pl;
  e->flag = flag;
  *pos = p + (size_t)pl;
  return 1;
}
