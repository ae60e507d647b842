/*
 * check.c - field rules shared by every event kind (see check.h).
 */
#include "domain/check.h"

#include <stdio.h>
#include <string.h>

#include "linli/ids.h"
#include "linli/json.h"

int dom_report(const char *field, const char *msg, dom_err_fn err, void *arg) {
  if (err)
    err(arg, field, msg);
  return 1;
}

int dom_check_id(const char *field, const char *v, dom_err_fn err, void *arg) {
  if (!v || !linli_id_valid(v))
    return dom_report(field, "must be 1-64 characters of [A-Za-z0-9_-]", err,
                      arg);
  return 0;
}

int dom_check_opt_id(const char *field, const char *v, dom_err_fn err,
                     void *arg) {
  if (!v || !v[0])
    return 0;
  return dom_check_id(field, v, err, arg);
}

int dom_check_text(const char *field, const char *v, size_t max,
                   dom_err_fn err, void *arg) {
  if (!v)
    return 0;
  size_t n = strlen(v);
  if (n > max) {
    char msg[64];
    snprintf(msg, sizeof msg, "at most %zu bytes", max);
    return dom_report(field, msg, err, arg);
  }
  if (!linli_utf8_valid(v, n))
    return dom_report(field, "not valid UTF-8", err, arg);
  return 0;
}

int dom_check_label(const char *field, const char *v, size_t max,
                    dom_err_fn err, void *arg) {
  if (dom_check_text(field, v, max, err, arg))
    return 1;
  for (const unsigned char *p = (const unsigned char *)(v ? v : ""); *p; p++)
    if (*p < 0x20 || *p == 0x7f)
      return dom_report(field, "control characters are not allowed", err, arg);
  return 0;
}

int dom_check_req_label(const char *field, const char *v, size_t max,
                        dom_err_fn err, void *arg) {
  if (!v || !v[0])
    return dom_report(field, "required", err, arg);
  return dom_check_label(field, v, max, err, arg);
}

int dom_check_enum(const char *field, int v, const int *ok, size_t n,
                   const char *names, dom_err_fn err, void *arg) {
  for (size_t i = 0; i < n; i++)
    if (ok[i] == v)
      return 0;
  char msg[160];
  snprintf(msg, sizeof msg, "must be %s, got %d", names, v);
  return dom_report(field, msg, err, arg);
}

int dom_check_range(const char *field, int64_t v, int64_t lo, int64_t hi,
                    dom_err_fn err, void *arg) {
  if (v >= lo && v <= hi)
    return 0;
  char msg[96];
  snprintf(msg, sizeof msg, "must be between %lld and %lld, got %lld",
           (long long)lo, (long long)hi, (long long)v);
  return dom_report(field, msg, err, arg);
}

int dom_check_meta(const Linli__Meta *m, dom_err_fn err, void *arg) {
  if (!m)
    return dom_report("meta", "required", err, arg);
  int bad = dom_check_id("meta.event_id", m->event_id, err, arg);
  bad += dom_check_range("meta.occurred_at_ms", m->occurred_at_ms, 1,
                         DOM_MAX_TIME_MS, err, arg);
  bad += dom_check_text("meta.producer", m->producer, 64, err, arg);
  bad += dom_check_text("meta.trace_id", m->trace_id, 128, err, arg);
  bad += dom_check_opt_id("meta.causation_id", m->causation_id, err, arg);
  return bad;
}

void dom_first_err(void *arg, const char *field, const char *msg) {
  struct dom_first_err *f = arg;
  if (f->n++ == 0 && f->buf && f->len)
    snprintf(f->buf, f->len, "%s: %s", field, msg);
}

void dom_prefixed(void *arg, const char *field, const char *msg) {
  const struct dom_prefix *p = arg;
  char f[160];
  snprintf(f, sizeof f, "%s.%s", p->prefix, field);
  if (p->err)
    p->err(p->arg, f, msg);
}
