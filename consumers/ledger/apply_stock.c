/*
 * apply_stock.c - stock and the catalog in the record, and the DLQ:
 * linli.catalog.v1 (the latest description of every SKU),
 * linli.inventory.v1 (StockAdjusted adds to initial and available stock,
 * once per event and SKU), and linli.dlq.v1 (every DLQ record, once per
 * position; a StockAdjusted that the reserver refused is taken back out of
 * the record).
 *
 * Every stock change is a stock_movements row keyed (event_id, sku_id); the
 * inventory delta is applied only when that row is new, so a redelivered or
 * duplicated event changes nothing. Each movement keeps the balance
 * initial + adjusted = available + reserved + sold.
 *
 * A refused adjustment may reach the ledger before or after the adjustment
 * itself (two topics): the adjustment is skipped if its refusal is already
 * recorded, and reversed if it was applied first. Both paths take the same
 * advisory lock on (warehouse, SKU) first, so two ledger instances reading
 * the two topics cannot both miss each other.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "apply.h"
#include "catalog.pb-c.h"
#include "inventory.pb-c.h"
#include "linli/error.h"
#include "linli/log.h"
#include "domain/schema.h"

static const struct ledger_stmt STOCK_LOCK = {
    "ledger_stock_lock",
    "SELECT pg_advisory_xact_lock(hashtext($1 || '/' || $2))", 2,
    0, NULL, NULL, 0, 0, NULL};

static int stock_lock(struct ledger_ev *ev, const char *wh, const char *sku) {
  const char *p[] = {wh, sku};
  return ev_sql(ev, &STOCK_LOCK, p, NULL);
}

/* ------------------------------------------------------------- catalog */

static const struct ledger_stmt SKU = {
    "ledger_sku",
    "INSERT INTO skus (sku_id, name, category, storage_class, weight_g, "
    "list_price_fen, origin, status, last_event_id) VALUES ($1, $2, $3, $4, "
    "$5, $6, $7, $8, $9) ON CONFLICT (sku_id) DO UPDATE SET "
    "name = EXCLUDED.name, category = EXCLUDED.category, "
    "storage_class = EXCLUDED.storage_class, weight_g = EXCLUDED.weight_g, "
    "list_price_fen = EXCLUDED.list_price_fen, origin = EXCLUDED.origin, "
    "status = EXCLUDED.status, last_event_id = EXCLUDED.last_event_id, "
    "updated_at = now()",
    9, 0, NULL, NULL, 0, 0, NULL};

int apply_catalog(struct ledger_ev *ev) {
  const Linli__CatalogEvent *e = (const Linli__CatalogEvent *)ev->env;
  if (e->event_case != LINLI__CATALOG_EVENT__EVENT_SKU)
    return ev_dlq(ev, "CatalogEvent carries no event");
  /* Valid: apply.c judged it with dom_catalog_event_check. */
  const Linli__Sku *s = e->sku;
  char w[16], pr[24];
  snprintf(w, sizeof w, "%d", (int)s->weight_g);
  snprintf(pr, sizeof pr, "%lld", (long long)s->list_price_fen);
  const char *p[] = {s->sku_id,
                     s->name ? s->name : "",
                     s->category ? s->category : "",
                     ev_enum_name(&linli__storage_class__descriptor,
                               s->storage_class),
                     w,
                     pr,
                     s->origin ? s->origin : "",
                     ev_enum_name(&linli__sku__status__descriptor, s->status),
                     ev->event_id};
  return ev_sql(ev, &SKU, p, NULL);
}

/* ----------------------------------------------------------- inventory */

static const struct ledger_stmt REFUSED = {
    "ledger_adjust_refused",
    "SELECT 1 FROM dlq_records WHERE source_topic = $1 AND "
    "source_partition = $2 AND source_offset = $3 AND consumer = $4",
    4, 0, NULL, NULL, 0, 0, NULL};

int apply_inventory(struct ledger_ev *ev) {
  const Linli__InventoryEvent *e = (const Linli__InventoryEvent *)ev->env;
  if (e->event_case != LINLI__INVENTORY_EVENT__EVENT_STOCK_ADJUSTED)
    return ev_dlq(ev, "InventoryEvent carries no event");
  /* Valid: apply.c judged it with dom_inventory_event_check, as the
   * reserver does, so what the reserver refuses never reaches the record
   * (and |quantity| <= DOM_MAX_ADJUST always has an opposite). */
  const Linli__StockAdjusted *a = e->stock_adjusted;
  int rc;
  if ((rc = stock_lock(ev, a->warehouse_id, a->sku_id)) != LINLI_OK)
    return rc;
  const char *rp[] = {ev->topic, ev->partition, ev->offset, LEDGER_RESERVER};
  PGresult *res = NULL;
  if ((rc = ev_sql(ev, &REFUSED, rp, &res)) != LINLI_OK)
    return rc;
  int refused = PQntuples(res) > 0;
  PQclear(res);
  if (refused) {
    LINLI_INFO("adjustment refused by the reserver: not recorded",
               "warehouse=%s sku=%s event_id=%s", a->warehouse_id, a->sku_id,
               ev->event_id);
    return LINLI_OK;
  }
  struct stock_move mv = {
      .event_id = ev->event_id,
      .warehouse_id = a->warehouse_id,
      .sku_id = a->sku_id,
      .kind = "ADJUST",
      .quantity = a->quantity,
      .reason = ev_enum_name(&linli__stock_adjusted__reason__descriptor,
                          a->reason),
      .adjustment_id = opt(a->adjustment_id),
      .d_initial = a->quantity,
      .d_available = a->quantity,
  };
  int inserted = 0;
  rc = ev_stock_move(ev, &mv, &inserted);
  if (rc == LINLI_OK && !inserted)
    linli_counter_add(ev->lg->m_duplicates, 1);
  return rc;
}

/* ----------------------------------------------------------------- DLQ */

static const struct ledger_stmt DLQ_RECORD = {
    "ledger_dlq_record",
    "INSERT INTO dlq_records (dlq_partition, dlq_offset, source_topic, "
    "source_partition, source_offset, consumer, error_code, reason, "
    "msg_key, msg_value, headers, occurred_at) VALUES ($1, $2, $3, $4, $5, "
    "$6, $7, $8, $9::bytea, $10::bytea, $11::jsonb, "
    "to_timestamp($12::bigint / 1000.0)) ON CONFLICT DO NOTHING RETURNING 1",
    12, 0, NULL, NULL, 0, 0, NULL};

static const struct ledger_stmt APPLIED_ADJUST = {
    "ledger_applied_adjust",
    "SELECT 1 FROM stock_movements WHERE event_id = $1 AND sku_id = $2 AND "
    "kind = 'ADJUST' AND topic = $3 AND partition = $4 AND kafka_offset = $5",
    5, 0, NULL, NULL, 0, 0, NULL};

/* Header value as text for PostgreSQL: NULL unless valid UTF-8 without
 * NUL bytes (malloc'd). */
static char *text_or_null(const void *v, size_t len) {
  if (v == NULL || memchr(v, '\0', len) != NULL)
    return NULL;
  json_t *probe = json_stringn(v, len); /* NULL if not UTF-8 */
  if (probe == NULL)
    return NULL;
  json_decref(probe);
  char *s = malloc(len + 1);
  if (s != NULL) {
    memcpy(s, v, len);
    s[len] = '\0';
  }
  return s;
}

static char *bytea_hex(const void *v, size_t len) {
  if (v == NULL)
    return NULL;
  char *s = malloc(2 + 2 * len + 1);
  if (s == NULL)
    return NULL;
  s[0] = '\\';
  s[1] = 'x';
  sodium_bin2hex(s + 2, 2 * len + 1, v, len);
  return s;
}

struct dlq_hdrs {
  char *topic, *partition, *offset, *consumer, *error, *reason;
  char *json; /* every header as [{key,value}] */
};

static void dlq_hdrs_free(struct dlq_hdrs *h) {
  free(h->topic);
  free(h->partition);
  free(h->offset);
  free(h->consumer);
  free(h->error);
  free(h->reason);
  free(h->json);
}

static int dlq_hdrs_read(const rd_kafka_message_t *m, struct dlq_hdrs *h) {
  memset(h, 0, sizeof *h);
  json_t *all = json_array();
  if (all == NULL)
    return LINLI_ERR_NOMEM;
  rd_kafka_headers_t *hdrs = NULL;
  if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
    const char *name;
    const void *val;
    size_t len;
    for (size_t i = 0;
         rd_kafka_header_get_all(hdrs, i, &name, &val, &len) ==
         RD_KAFKA_RESP_ERR_NO_ERROR;
         i++) {
      char *t = text_or_null(val, len);
      char **slot = NULL;
      if (strcmp(name, LINLI_DLQ_H_TOPIC) == 0)
        slot = &h->topic;
      else if (strcmp(name, LINLI_DLQ_H_PARTITION) == 0)
        slot = &h->partition;
      else if (strcmp(name, LINLI_DLQ_H_OFFSET) == 0)
        slot = &h->offset;
      else if (strcmp(name, LINLI_DLQ_H_CONSUMER) == 0)
        slot = &h->consumer;
      else if (strcmp(name, LINLI_DLQ_H_ERROR) == 0)
        slot = &h->error;
      else if (strcmp(name, LINLI_DLQ_H_REASON) == 0)
        slot = &h->reason;
      json_t *jn = json_string(name);
      if (jn != NULL)
        json_array_append_new(all, json_pack("{s:o, s:s?}", "key", jn,
                                             "value", t));
      if (slot != NULL && *slot == NULL)
        *slot = t;
      else
        free(t);
    }
  }
  /* Position headers must be numbers, or they are not recorded as such. */
  char *end = NULL;
  if (h->partition &&
      (!h->partition[0] || strtol(h->partition, &end, 10) < 0 || *end)) {
    free(h->partition);
    h->partition = NULL;
  }
  if (h->offset &&
      (!h->offset[0] || strtoll(h->offset, &end, 10) < 0 || *end)) {
    free(h->offset);
    h->offset = NULL;
  }
  h->json = json_dumps(all, JSON_COMPACT);
  json_decref(all);
  return h->json ? LINLI_OK : LINLI_ERR_NOMEM;
}

/* The reserver refused a StockAdjusted: take it back out of the record if
 * the ledger applied it (the movement of that very position), once. */
static int reverse_refused(struct ledger_ev *ev, const struct dlq_hdrs *h) {
  const rd_kafka_message_t *m = ev->m;
  if (m->payload == NULL || h->partition == NULL || h->offset == NULL)
    return LINLI_OK;
  Linli__InventoryEvent *e = linli__inventory_event__unpack(
      NULL, m->len, (const uint8_t *)m->payload);
  if (e == NULL)
    return LINLI_OK; /* undecodable: the ledger never applied it either */
  int rc = LINLI_OK;
  const Linli__StockAdjusted *a = e->stock_adjusted;
  if (e->event_case != LINLI__INVENTORY_EVENT__EVENT_STOCK_ADJUSTED ||
      !linli_id_valid(a->warehouse_id) || !linli_id_valid(a->sku_id))
    goto done;
  /* The same event id the adjustment was recorded under (apply.c). */
  char derived[LINLI_ID_BUFSZ];
  const char *eid = e->meta && opt(e->meta->event_id) ? e->meta->event_id
                                                      : NULL;
  if (eid == NULL) {
    linli_id_derive(h->topic, (int32_t)atoi(h->partition),
                    (int64_t)atoll(h->offset), 0, derived, sizeof derived);
    eid = derived;
  }
  if ((rc = stock_lock(ev, a->warehouse_id, a->sku_id)) != LINLI_OK)
    goto done;
  const char *ap[] = {eid, a->sku_id, h->topic, h->partition, h->offset};
  PGresult *res = NULL;
  if ((rc = ev_sql(ev, &APPLIED_ADJUST, ap, &res)) != LINLI_OK)
    goto done;
  int applied = PQntuples(res) > 0;
  PQclear(res);
  if (!applied)
    goto done; /* not applied (yet): apply_inventory will skip it */
  char rev_id[LINLI_ID_BUFSZ + 16];
  snprintf(rev_id, sizeof rev_id, "%s:refused", eid);
  struct stock_move mv = {
      .event_id = rev_id,
      .warehouse_id = a->warehouse_id,
      .sku_id = a->sku_id,
      .kind = "ADJUST",
      .quantity = -(long long)a->quantity,
      .reason = "REFUSED_BY_RESERVER",
      .adjustment_id = opt(a->adjustment_id) && linli_id_valid(a->adjustment_id)
                           ? a->adjustment_id
                           : NULL,
      .d_initial = -(long long)a->quantity,
      .d_available = -(long long)a->quantity,
  };
  int inserted = 0;
  rc = ev_stock_move(ev, &mv, &inserted);
  if (rc == LINLI_OK && inserted)
    LINLI_INFO("refused adjustment reversed", "warehouse=%s sku=%s event_id=%s",
               a->warehouse_id, a->sku_id, eid);
done:
  linli__inventory_event__free_unpacked(e, NULL);
  return rc;
}

int apply_dlq(struct ledger_ev *ev) {
  const rd_kafka_message_t *m = ev->m;
  struct dlq_hdrs h;
  int rc = dlq_hdrs_read(m, &h);
  char *key = bytea_hex(m->key, m->key_len);
  /* The original bytes may hold personal data (a home delivery's name,
   * phone, address): kept only encrypted, like orders.*_enc. */
  char *val = m->payload ? ledger_encrypt_bytea(&ev->lg->crypto,
                                                (const char *)m->payload,
                                                m->len)
                         : NULL;
  if (rc != LINLI_OK || (m->key && !key) || (m->payload && !val)) {
    rc = LINLI_ERR_NOMEM;
    goto done;
  }
  rd_kafka_timestamp_type_t tt;
  int64_t at = rd_kafka_message_timestamp(m, &tt);
  snprintf(ev->occurred_ms, sizeof ev->occurred_ms, "%lld",
           (long long)(at > 0 ? at : 0));
  const char *p[] = {ev->partition, ev->offset, h.topic,  h.partition,
                     h.offset,      h.consumer, h.error,  h.reason,
                     key,           val,        h.json,
                     at > 0 ? ev->occurred_ms : NULL};
  PGresult *res = NULL;
  if ((rc = ev_sql(ev, &DLQ_RECORD, p, &res)) != LINLI_OK)
    goto done;
  int inserted = PQntuples(res) == 1;
  PQclear(res);
  char base[256];
  if (inserted && h.topic && h.consumer &&
      strcmp(ledger_topic_base(ev->lg, h.topic, base, sizeof base),
             LINLI_TOPIC_INVENTORY) == 0 &&
      strcmp(h.consumer, LEDGER_RESERVER) == 0)
    rc = reverse_refused(ev, &h);
done:
  free(key);
  free(val);
  dlq_hdrs_free(&h);
  return rc;
}
