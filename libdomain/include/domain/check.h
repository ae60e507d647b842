/*
 * check.h - the field rules every event kind is built from (ids, text,
 * money, quantities, times, the common Meta), reported through the same
 * dom_err_fn as the per-kind checks, so a gateway 400 and a DLQ reason name
 * the field the same way.
 */
#ifndef DOMAIN_CHECK_H
#define DOMAIN_CHECK_H

#include <stddef.h>
#include <stdint.h>

#include "common.pb-c.h"

/* Bounds shared by every event kind: a unit price and a quantity whose
 * product, and whose sums over any realistic order or campaign, stay far
 * from INT64_MAX. */
#define DOM_MAX_PRICE_FEN INT64_C(100000000000) /* 1e11 fen = 1e9 yuan */
#define DOM_MAX_QUANTITY 1000000
/* Times are milliseconds after 1970 and before the year 3000. */
#define DOM_MAX_TIME_MS INT64_C(32503680000000)

/* Receives each problem found: the field at fault (as named in the .proto,
 * e.g. "tiers[2].unit_price_fen") and what is wrong with it. */
typedef void (*dom_err_fn)(void *arg, const char *field, const char *msg);

/* Report one problem through err (when set); returns 1, the count of
 * problems it adds, so checks can write `bad += dom_report(...)`. */
int dom_report(const char *field, const char *msg, dom_err_fn err, void *arg);

/* Each returns 1 when the value is bad (after calling err), else 0. */
int dom_check_id(const char *field, const char *v, dom_err_fn err, void *arg);
/* "" (absent) is fine; anything else must be an id. */
int dom_check_opt_id(const char *field, const char *v, dom_err_fn err,
                     void *arg);
/* UTF-8 of at most max bytes ("" is fine). */
int dom_check_text(const char *field, const char *v, size_t max,
                   dom_err_fn err, void *arg);
/* dom_check_text, and no control characters (bytes below 0x20, 0x7f):
 * free text that ends up on a label, a screen or a log line. */
int dom_check_label(const char *field, const char *v, size_t max,
                    dom_err_fn err, void *arg);
/* A required dom_check_label ("" is "required"). */
int dom_check_req_label(const char *field, const char *v, size_t max,
                        dom_err_fn err, void *arg);
/* v is one of the values in ok[0..n) (an enum's named values other than
 * 0); otherwise "must be <names>, got v". */
int dom_check_enum(const char *field, int v, const int *ok, size_t n,
                   const char *names, dom_err_fn err, void *arg);
/* lo <= v <= hi. */
int dom_check_range(const char *field, int64_t v, int64_t lo, int64_t hi,
                    dom_err_fn err, void *arg);
/* meta present, event_id an id, occurred_at_ms in (0, DOM_MAX_TIME_MS],
 * producer/trace_id text, causation_id empty or an id. */
int dom_check_meta(const Linli__Meta *m, dom_err_fn err, void *arg);

/* A dom_err_fn that keeps the first problem as "field: msg" in a buffer
 * (for a DLQ reason). */
struct dom_first_err {
  char *buf;
  size_t len;
  int n;
};
void dom_first_err(void *arg, const char *field, const char *msg);

/* A dom_err_fn that names each field "<prefix>.<field>" and passes it on:
 * an envelope check names "order_placed.lines[0].quantity" where the
 * gateway, which takes the member as the body, names "lines[0].quantity",
 * with the same message. */
struct dom_prefix {
  const char *prefix;
  dom_err_fn err;
  void *arg;
};
void dom_prefixed(void *arg, const char *field, const char *msg);

#endif
