/*
 * reserver_keys.h - the reserver's hot state in Redis: the name of every
 * key it owns. The reserver, the audit (linli-replay), the tests and the
 * scripts (scripts/lib.sh's linli_rsv_* mirror it; test_domain_keys checks
 * the two agree) build keys here, so nobody retypes one.
 *
 * A warehouse W's stock and orders carry the hash tag {w:W}, so one
 * warehouse's batch script touches one Redis Cluster slot (hashes and
 * fields in consumers/reserver/scripts.h):
 *   {w:W}:avail, :resv, :sold, :init   hashes sku -> units
 *   {w:W}:o:<order_id>                 hash: one order's reservation
 *   {w:W}:loaded                       present once stock was loaded
 *   {w:W}:hwm, {w:W}:out:...           the batch wrapper's marks, outcomes
 * Global keys (no tag):
 *   linli:catalog                      hash sku -> the catalog's record
 *   linli:rsv:ow:<order_id>            the warehouse an order reserved in
 *   linli:rsv:exp:<partition>          zset: order ids of an orders
 *                                      partition scored by payment deadline
 *   linli:rsv:exp:<partition>:ann      hash: order id -> when its
 *                                      OrderExpired was last written
 * Each builder writes a NUL-terminated key into buf and returns LINLI_OK,
 * or LINLI_ERR_TOOBIG when buf is too small (LINLI_ERR_INVALID for an
 * empty warehouse or one holding '{' or '}').
 */
#ifndef DOMAIN_RESERVER_KEYS_H
#define DOMAIN_RESERVER_KEYS_H

#include <stddef.h>
#include <stdint.h>

#define DOM_RSV_TAG_PREFIX "w:"              /* + warehouse: the hash tag */
#define DOM_RSV_KEY_CATALOG "linli:catalog"
#define DOM_RSV_KEY_ORDER_WH "linli:rsv:ow:" /* + order_id */
#define DOM_RSV_KEY_EXPIRY "linli:rsv:exp:"  /* + partition [+ ":ann"] */

/* Per-warehouse keys (suffixes of "{w:W}:"). */
#define DOM_RSV_AVAIL "avail"
#define DOM_RSV_RESV "resv"
#define DOM_RSV_SOLD "sold"
#define DOM_RSV_INIT "init"
#define DOM_RSV_LOADED "loaded"
#define DOM_RSV_ORDER "o:" /* + order_id */

/* "w:<warehouse>": the hash tag (linli_redis_key, linli_redis_batch_new). */
int dom_rsv_tag(char *buf, size_t len, const char *warehouse);

/* The warehouse of a tag dom_rsv_tag wrote (a pointer into tag), or NULL
 * when tag is not a reserver tag. */
const char *dom_rsv_tag_warehouse(const char *tag);

/* "{w:<warehouse>}:<suffix>", e.g. suffix DOM_RSV_AVAIL. */
int dom_rsv_key(char *buf, size_t len, const char *warehouse,
                const char *suffix);

/* "{w:<warehouse>}:o:<order_id>": one order's reservation. */
int dom_rsv_order_key(char *buf, size_t len, const char *warehouse,
                      const char *order_id);

/* "linli:rsv:ow:<order_id>": the order -> warehouse index. */
int dom_rsv_order_wh_key(char *buf, size_t len, const char *order_id);

/* "linli:rsv:exp:<partition>": the payment-deadline index. */
int dom_rsv_expiry_key(char *buf, size_t len, int32_t partition);

/* "linli:rsv:exp:<partition>:ann": when each expiry was last announced. */
int dom_rsv_expiry_ann_key(char *buf, size_t len, int32_t partition);

#endif
