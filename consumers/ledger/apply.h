/*
 * apply.h - what the per-topic appliers share: the record being applied,
 * SQL inside the open transaction, the DLQ verdict, and the order helpers
 * (duplicate check, row lock, state transition, history).
 *
 * An applier decides before it writes: every check that can send a record
 * to the DLQ runs before its first INSERT/UPDATE, so a DLQ verdict never
 * needs to undo anything (no savepoints; an unexpected SQL error instead
 * poisons the record and the batch runs again without it).
 */
#ifndef LEDGER_APPLY_H
#define LEDGER_APPLY_H

#include <jansson.h>
#include <libpq-fe.h>

#include "common.pb-c.h"
#include "ledger.h"
#include "domain/order_state.h"

struct ledger_ev {
  struct ledger *lg;
  const rd_kafka_message_t *m;
  const char *topic;
  char partition[16];
  char offset[24];
  const ProtobufCMessage *env;    /* the decoded envelope */
  const ProtobufCMessage *member; /* the oneof member set */
  const char *type;               /* its short name, e.g. "OrderPlaced" */
  json_t *json;                   /* the envelope as JSON (for history) */
  const Linli__Meta *meta;        /* NULL if absent */
  const char *event_id;           /* meta's, or derived from the position */
  char event_id_buf[LINLI_ID_BUFSZ];
  char occurred_ms[24];           /* event time, UTC ms as text */
  char *err;                      /* SQL error text */
  size_t errlen;
  int dlq;                        /* set by ev_dlq */
  char reason[512];
};

/* Bulk ranks of the appliers' statements (ledger_stmt.bulk_order; sql.c
 * sends lower ranks first): an order row is created (CREATE, then PLACE)
 * before it is hinted or given children (lines, history, its
 * reservation), its reservation before the stock it moves, and its moves
 * last (its expiry depends on its reservation row). */
enum {
  LEDGER_RANK_CREATE,
  LEDGER_RANK_PLACE,
  LEDGER_RANK_HINTS,
  LEDGER_RANK_CHILD,
  LEDGER_RANK_STOCK,
  LEDGER_RANK_MOVE,
};

/* The record goes to the DLQ with this reason; returns LINLI_ERR_INVALID. */
int ev_dlq(struct ledger_ev *ev, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* A prepared statement in the open transaction. */
int ev_sql(struct ledger_ev *ev, const struct ledger_stmt *st,
           const char *const *params, PGresult **res);
/* 1 if s is a valid id; otherwise DLQ "<field>: must be ...". */
int ev_check_id(struct ledger_ev *ev, const char *s, const char *field);
/* NULL for "" (an absent optional id), else s. */
const char *opt(const char *s);
/* The name of enum value v ("ALIPAY"), "UNKNOWN" if it has none. */
const char *ev_enum_name(const ProtobufCEnumDescriptor *d, int v);

/* The order's row, locked (FOR UPDATE) for the rest of the transaction. */
struct order_row {
  int state;               /* DOM_ST_NONE if there is no row */
  char payment_txn[128];   /* accepted payment, "" if none */
  int placed;              /* OrderPlaced details recorded */
};

/* The batch's locked copy of the order follows a write: state (DOM_ST_NONE:
 * unchanged) and placed (1: OrderPlaced recorded). */
void ev_order_cached(struct ledger_ev *ev, const char *order_id, int state,
                     int placed);
/* A write the copy does not follow: the next lock reads the row. */
void ev_order_forget(struct ledger_ev *ev, const char *order_id);

/* *seen = 1 if the event is already in order_events (a duplicate). */
int ev_seen(struct ledger_ev *ev, int *seen);
int ev_order_lock(struct ledger_ev *ev, const char *order_id,
                  struct order_row *row);
/*
 * Apply the state machine (libdomain's) for an event of the order (reason:
 * why the order is in the state it leads to, may be NULL).
 * DOM_ORDER_ILLEGAL -> DLQ; APPLY -> the row is created or moved to the
 * event's target. Must run before the event's other writes.
 */
int ev_order_advance(struct ledger_ev *ev, const char *order_id,
                     struct order_row *row, enum dom_order_event event,
                     const char *reason);
/* Append the event to order_events (payload without personal data). */
int ev_history(struct ledger_ev *ev, const char *order_id);
/* Set the order's expires_at (ms as text) if this event reserved it (its
 * reservations row), folded with its moves. */
int ev_order_expires(struct ledger_ev *ev, const char *order_id,
                     const char *expires_ms);
/* Bump version/updated_at of an order whose details changed (not state). */
int ev_order_changed(struct ledger_ev *ev, const char *order_id);

/* An order created before its OrderPlaced keeps what later events tell
 * about it (ids, total; "" and 0 mean unknown) until OrderPlaced fills it
 * in. No-op for an order whose OrderPlaced is recorded. */
int ev_order_hints(struct ledger_ev *ev, const char *order_id,
                   const char *user_id, const char *warehouse_id,
                   const char *app_id, const char *campaign_id,
                   long long total_fen);

/* An order's lines merged by SKU (the reserver merges them the same way):
 * line_no is the index of the SKU's first line. Owned by the caller
 * (free). */
struct merged {
  size_t n;
  long long total; /* sum of quantity x unit price over every line */
  struct {
    const char *sku;
    long long qty;
    long long price;
    int line_no;
  } l[];
};
/* Lines libdomain judged with their record (dom_order_check_lines), one
 * entry per SKU (dom_order_lines_merge); NULL when out of memory. */
struct merged *ev_merge_lines(Linli__OrderLine *const *lines, size_t n);

/* Per-topic appliers. */
int apply_orders(struct ledger_ev *ev);
int apply_reservations(struct ledger_ev *ev);
int apply_refunds(struct ledger_ev *ev);
int apply_fulfillment(struct ledger_ev *ev);
int apply_routes(struct ledger_ev *ev);
/* apply_sorting.c: RouteEvent.sorting_list (called by apply_routes). */
int apply_sorting(struct ledger_ev *ev);
int apply_delivery(struct ledger_ev *ev);
int apply_notifications(struct ledger_ev *ev);
int apply_catalog(struct ledger_ev *ev);
int apply_inventory(struct ledger_ev *ev);
int apply_dlq(struct ledger_ev *ev);
int apply_groupbuy(struct ledger_ev *ev);
int apply_settlements(struct ledger_ev *ev);

/* apply_stock.c: one stock movement and its effect on inventory (applied
 * only if the movement (event_id, sku) is new). */
struct stock_move {
  const char *event_id;
  const char *warehouse_id;
  const char *sku_id;
  const char *kind;          /* ADJUST, RESERVE, COMMIT, RELEASE */
  long long quantity;        /* units moved (signed for ADJUST) */
  const char *reason;        /* may be NULL */
  const char *order_id;      /* may be NULL */
  const char *adjustment_id; /* may be NULL */
  long long d_initial, d_available, d_reserved, d_sold;
};
int ev_stock_move(struct ledger_ev *ev, const struct stock_move *mv,
                  int *inserted);
/* A movement of the order's reservation (mv->order_id), which moves stock
 * only if mv->event_id is the order's first reservation (its reservations
 * row, sent before). With bulk writes on it goes with the batch's bulk
 * writes; else the caller has checked that, and it is ev_stock_move. */
int ev_stock_reserve(struct ledger_ev *ev, const struct stock_move *mv);

#endif
