/*
 * notify.h - what a resident is told: the catalogue of notification
 * templates (each with the placeholders it may use), the template files
 * under config/templates/<locale>/<template>.txt, rendering, and the
 * formatting of money and local times shared by every channel.
 *
 * A template file is UTF-8 text with named placeholders "{name}" ("{{" and
 * "}}" are literal braces). Loading checks every locale has every template
 * and every placeholder is one the template knows, and reports the first
 * problem as "path:line: reason", so a bad template stops the notifier at
 * start-up instead of sending a broken message.
 */
#ifndef DOMAIN_NOTIFY_H
#define DOMAIN_NOTIFY_H

#include <stddef.h>
#include <stdint.h>

/* The templates, one per user-visible state change. */
enum dom_tpl_id {
  DOM_TPL_ORDER_CONFIRMED = 0, /* stock reserved: pay by the deadline */
  DOM_TPL_ORDER_REJECTED,      /* refused; names what was out of stock */
  DOM_TPL_PAYMENT_REMINDER,    /* before the payment deadline */
  DOM_TPL_ORDER_EXPIRED,       /* not paid in time */
  DOM_TPL_GROUPBUY_FORMED,     /* first tier reached */
  DOM_TPL_GROUPBUY_TIER,       /* a further tier unlocked */
  DOM_TPL_GROUPBUY_SETTLED,    /* final price and refund */
  DOM_TPL_GROUPBUY_FAILED,     /* failed and refunded */
  DOM_TPL_OUT_FOR_DELIVERY,    /* with ETA */
  DOM_TPL_PICKUP_READY,        /* pickup code and opening hours */
  DOM_TPL_DELIVERED,
  DOM_TPL_DELIVERY_FAILED,
  DOM_TPL_COUNT
};

#define DOM_TPL_MAX_PARAMS 6
#define DOM_LOCALE_MAX 16
#define DOM_LOCALES_MAX 8

/* Template name ("order_confirmed"), as in file names and Notification. */
const char *dom_tpl_name(enum dom_tpl_id id);
/* The id of a template name, or -1. */
int dom_tpl_lookup(const char *name);
/* The placeholders template id may use, NULL-terminated. */
const char *const *dom_tpl_params(enum dom_tpl_id id);

/* A locale name: 2..15 characters of [A-Za-z0-9-] ("zh-CN", "en"). */
int dom_locale_valid(const char *s);

/* Templates of every configured locale, parsed. */
typedef struct dom_tpl_set dom_tpl_set_t;

/*
 * Check one template text (for tests and for dom_tpl_load): every
 * placeholder known to template id, braces balanced, valid UTF-8, not
 * empty. path names it in errors ("path:line: reason"). LINLI_OK or
 * LINLI_ERR_CONFIG.
 */
int dom_tpl_check(enum dom_tpl_id id, const char *text, const char *path,
                  char *err, size_t errlen);

/*
 * Load dir/<locale>/<template>.txt for each locale in the comma-separated
 * list locales (the first is the default). Every template of the catalogue
 * must exist in every locale; a file that names no known template is an
 * error too. LINLI_ERR_CONFIG with "path[:line]: reason" in err.
 */
int dom_tpl_load(const char *dir, const char *locales, dom_tpl_set_t **out,
                 char *err, size_t errlen);
void dom_tpl_free(dom_tpl_set_t *s);

/* locale if the set has it, else the default locale (static storage of s). */
const char *dom_tpl_locale(const dom_tpl_set_t *s, const char *locale);

/* One named value for rendering. */
struct dom_param {
  const char *key;
  const char *value;
};

/*
 * Render template id in locale (falls back to the default) with params into
 * buf. A placeholder without a value renders empty. LINLI_OK, or
 * LINLI_ERR_TOOBIG when buf is too small (buf holds a truncated text).
 */
int dom_tpl_render(const dom_tpl_set_t *s, enum dom_tpl_id id,
                   const char *locale, const struct dom_param *params,
                   size_t nparams, char *buf, size_t len);

/* fen as yuan text "12.50" ("-0.05" for negatives). */
void dom_fmt_money(int64_t fen, char *buf, size_t len);
/* UTC ms as local "YYYY-MM-DD HH:MM" at utc_offset_min. */
void dom_fmt_time(int64_t ms, int utc_offset_min, char *buf, size_t len);

/*
 * Quiet hours "HH:MM-HH:MM" (may wrap midnight; "" = none) at
 * utc_offset_min. dom_quiet_parse: LINLI_OK or LINLI_ERR_INVALID.
 * dom_quiet_until: 0 when now_ms is outside the quiet window, else the UTC
 * ms at which it ends.
 */
struct dom_quiet {
  int on;
  int start_min, end_min; /* minutes after local midnight */
  int utc_offset_min;
};
int dom_quiet_parse(const char *spec, int utc_offset_min, struct dom_quiet *q);
int64_t dom_quiet_until(const struct dom_quiet *q, int64_t now_ms);

/*
 * The notifier's batch script outcome (consumers/notifier/scripts.c): per
 * notification, a flag, then #user ':' user, then #packed ':' packed (the
 * NotificationEvent bytes). Flags: 'Q' queued for the webhook, 'D' queued
 * or delivered before, 'F' the webhook queue was full, '-' no webhook.
 */
struct dom_nt_entry {
  char flag;
  const char *user; /* points into the outcome, not NUL-terminated */
  size_t userlen;
  const unsigned char *packed;
  size_t packedlen;
};
/* The entry at *pos, advancing *pos: 1 with *e set, 0 at the end,
 * LINLI_ERR_INVALID when the outcome is malformed. */
int dom_nt_outcome_next(const char *o, size_t len, size_t *pos,
                        struct dom_nt_entry *e);

#endif
