/*
 * reserver_keys.c - the reserver's Redis key names (see
 * domain/reserver_keys.h): formatting only, no I/O.
 */
#include "domain/reserver_keys.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "linli/error.h"
#include "linli/redis.h"

static int fmt(char *buf, size_t len, const char *f, ...) {
  va_list ap;
  va_start(ap, f);
  int n = vsnprintf(buf, len, f, ap);
  va_end(ap);
  return n < 0 || (size_t)n >= len ? LINLI_ERR_TOOBIG : LINLI_OK;
}

int dom_rsv_tag(char *buf, size_t len, const char *warehouse) {
  return fmt(buf, len, DOM_RSV_TAG_PREFIX "%s", warehouse);
}

const char *dom_rsv_tag_warehouse(const char *tag) {
  size_t n = strlen(DOM_RSV_TAG_PREFIX);
  if (tag == NULL || strncmp(tag, DOM_RSV_TAG_PREFIX, n) != 0)
    return NULL;
  return tag + n;
}

int dom_rsv_key(char *buf, size_t len, const char *warehouse,
                const char *suffix) {
  char tag[160];
  if (warehouse == NULL || warehouse[0] == '\0')
    return LINLI_ERR_INVALID;
  int rc = dom_rsv_tag(tag, sizeof tag, warehouse);
  return rc != LINLI_OK ? rc : linli_redis_key(buf, len, tag, suffix);
}

int dom_rsv_order_key(char *buf, size_t len, const char *warehouse,
                      const char *order_id) {
  char suffix[160];
  int rc = fmt(suffix, sizeof suffix, DOM_RSV_ORDER "%s", order_id);
  return rc != LINLI_OK ? rc : dom_rsv_key(buf, len, warehouse, suffix);
}

int dom_rsv_order_wh_key(char *buf, size_t len, const char *order_id) {
  return fmt(buf, len, DOM_RSV_KEY_ORDER_WH "%s", order_id);
}

int dom_rsv_expiry_key(char *buf, size_t len, int32_t partition) {
  return fmt(buf, len, DOM_RSV_KEY_EXPIRY "%d", (int)partition);
}

int dom_rsv_expiry_ann_key(char *buf, size_t len, int32_t partition) {
  return fmt(buf, len, DOM_RSV_KEY_EXPIRY "%d:ann", (int)partition);
}
