/*
 * wave.h - delivery waves: the router's reference data (warehouses with
 * their wave schedule, pickup points, vehicles), the schedule arithmetic
 * (which cutoff an item waits for, a wave's id and departure), the rules
 * of a well-formed FulfillmentItem and WaveClosed, and the router's hot
 * state in Redis: its key layout, the Lua body that applies items and wave
 * closes to it, and the typed outcomes that body returns, with their
 * parser. Pure functions, no I/O.
 *
 * Every key of one warehouse carries the hash tag {r:<warehouse_id>} (the
 * reserver owns {w:...}), so a batch script touches one Redis Cluster slot:
 *   {r:W}:st        hash  cut:d, cut:x  (the open daily/express wave began
 *                         after this cutoff, ms); ann:K, annat:K (the clock's
 *                         last WaveClosed written for kind K, and when)
 *   {r:W}:q:K       list  the open wave's item records, in log order
 *   {r:W}:seen:K    hash  order ids in the open wave (a repeat is ignored)
 *   {r:W}:hwm, {r:W}:out:...  the batch wrapper's marks and outcomes
 * A close hands the wave's records out as its outcome and deletes them:
 * Redis keeps open waves, not history; the rest expires after
 * router.retention_s without writes.
 *
 * The clock's index (one per fulfillment partition, read by the instance
 * that owns the partition): linli:rt:wh:<partition>  set of warehouse ids.
 */
#ifndef DOMAIN_WAVE_H
#define DOMAIN_WAVE_H

#include <stddef.h>
#include <stdint.h>

#include "domain/check.h"
#include "fulfillment.pb-c.h"

#define DOM_WAVE_TAG_FMT "r:%s"
/* A warehouse's key suffixes (the Lua body builds the same keys from
 * them), and printf formats of the keys, with its id (and kind). */
#define DOM_WAVE_SUFFIX_STATE "st"
#define DOM_WAVE_SUFFIX_QUEUE "q:"  /* + kind */
#define DOM_WAVE_SUFFIX_SEEN "seen:" /* + kind */
#define DOM_WAVE_KEY_FMT "{" DOM_WAVE_TAG_FMT "}:" /* + a key's suffix */
#define DOM_WAVE_KEY_STATE_FMT DOM_WAVE_KEY_FMT DOM_WAVE_SUFFIX_STATE
#define DOM_WAVE_KEY_QUEUE_FMT DOM_WAVE_KEY_FMT DOM_WAVE_SUFFIX_QUEUE "%c"
#define DOM_WAVE_KEY_SEEN_FMT DOM_WAVE_KEY_FMT DOM_WAVE_SUFFIX_SEEN "%c"
#define DOM_WAVE_KEY_INDEX "linli:rt:wh:" /* + partition */
#define DOM_WAVE_MAX_CUTOFFS 8
#define DOM_WAVE_DAY_MS INT64_C(86400000)
/* A resident's slot or weight beyond these is bad input. */
#define DOM_WAVE_MAX_WEIGHT_G INT64_C(1000000000)

/* ------------------------------------------------------ reference data */

struct dom_ref_warehouse {
  char id[65];
  int32_t lat_e6, lng_e6;
  int ncutoffs;
  int cutoff_min[DOM_WAVE_MAX_CUTOFFS]; /* local minutes of the day, sorted */
  int express_every_min;                /* 0 = no express waves */
  int depart_min;       /* daily waves leave at this local time */
  int utc_offset_min;   /* local time = UTC + offset */
  int line;
};

struct dom_ref_pickup {
  char id[65];
  char community[65];
  int32_t lat_e6, lng_e6;
  int open_min, close_min; /* local opening hours, open < close */
  int32_t capacity;        /* parcels it can hold per wave */
  int line;
};

struct dom_ref_vehicle {
  char id[65];
  char warehouse[65];
  int64_t cap_weight_g, cap_items;
  int refrigerated;
  int64_t shift_ms;
  int line;
};

struct dom_ref {
  struct dom_ref_warehouse *wh; /* sorted by id */
  size_t nwh;
  struct dom_ref_pickup *pp;    /* sorted by id */
  size_t npp;
  struct dom_ref_vehicle *veh;  /* sorted by warehouse, then id */
  size_t nveh;
};

/*
 * Parse reference data (docs/delivery.md has the format): one entry a
 * line, "warehouse ID key=value...", "pickup ID ...", "vehicle ID ...",
 * '#' comments. LINLI_OK and *out (dom_ref_free), or LINLI_ERR_CONFIG with
 * "name:line: reason" in err; LINLI_ERR_NOMEM.
 */
int dom_ref_parse(const char *text, const char *name, struct dom_ref *out,
                  char *err, size_t errlen);
void dom_ref_free(struct dom_ref *ref);
const struct dom_ref_warehouse *dom_ref_warehouse(const struct dom_ref *ref,
                                                  const char *id);
const struct dom_ref_pickup *dom_ref_pickup(const struct dom_ref *ref,
                                            const char *id);
/* The vehicles of a warehouse: a run of ref->veh (*n of them). */
const struct dom_ref_vehicle *dom_ref_vehicles(const struct dom_ref *ref,
                                               const char *warehouse,
                                               size_t *n);

/* ------------------------------------------------------------ schedule */

/* Wave kinds: the daily wave and the express wave. */
#define DOM_WAVE_DAILY 'd'
#define DOM_WAVE_EXPRESS 'x'

/* The kind an item waits for: express only where the warehouse runs
 * express waves. */
char dom_wave_kind(const struct dom_ref_warehouse *w, int express);
/* The latest cutoff of kind at or before t_ms (UTC ms); -1 if the
 * warehouse has no cutoff of that kind. */
int64_t dom_wave_cutoff_before(const struct dom_ref_warehouse *w, char kind,
                               int64_t t_ms);
/* "d20261206-2200" / "x20261206-0115": the kind and the local cutoff
 * time. buf >= 24 bytes. */
void dom_wave_id(const struct dom_ref_warehouse *w, char kind,
                 int64_t cutoff_ms, char *buf, size_t len);
/* When a wave's vehicles leave: a daily wave at the first depart_min after
 * its cutoff, an express wave express_delay_ms after it. */
int64_t dom_wave_depart_ms(const struct dom_ref_warehouse *w, char kind,
                           int64_t cutoff_ms, int64_t express_delay_ms);
/* A pickup point's opening hours on the local day of depart_ms (the next
 * day's if that day's have closed by then), UTC ms. */
void dom_wave_pickup_window(const struct dom_ref_pickup *p,
                            int utc_offset_min, int64_t depart_ms,
                            int64_t *open_ms, int64_t *close_ms);

/* ---------------------------------------------------------- validation */

/* Each returns 0 when well-formed, else the number of problems (each
 * reported through err, field named as in the .proto). */
int dom_wave_check_item(const Linli__FulfillmentItem *it, dom_err_fn err,
                        void *arg);
int dom_wave_check_closed(const Linli__WaveClosed *c, dom_err_fn err,
                          void *arg);

/* ------------------------------------------------------- Redis state */

/* The batch HWM body (linli_redis_script_batch). Inputs, A[1] = op:
 *   item  A[2] kind, A[3] order id, A[4] record (dom_wave_record),
 *         A[5] the latest cutoff of that kind at the item's time,
 *         A[6] retention seconds
 *   close A[2] kind, A[3] cutoff ms, A[4] retention seconds */
extern const char DOM_WAVE_LUA[];

/* The compact record of an item kept in the open wave (ids, place,
 * storage class, weight, slot and lines; no personal data but the
 * coordinates). LINLI_OK, LINLI_ERR_TOOBIG if buf is too small. */
int dom_wave_record(const Linli__FulfillmentItem *it, char *buf, size_t len);

struct dom_wave_line {
  const char *sku_id;
  int32_t quantity;
};

/* One item of a closed wave (strings point into the parsed buffer). */
struct dom_wave_item {
  const char *order_id, *user_id;
  const char *pickup_point_id; /* NULL for a home delivery */
  int32_t lat_e6, lng_e6;      /* home delivery */
  int storage_class;           /* LINLI__STORAGE_CLASS__* (1..3; 0 read as AMBIENT) */
  int64_t weight_g;            /* 0 = unknown */
  int64_t slot_start_ms, slot_end_ms;
  int64_t items;               /* sum of the quantities */
  struct dom_wave_line *lines;
  size_t nlines;
};

enum dom_wave_outcome_kind {
  DOM_WAVE_ADDED,   /* the item joined the open wave */
  DOM_WAVE_DUP,     /* the order is already in the open wave */
  DOM_WAVE_CLOSED,  /* the wave closed: its items, in log order */
  DOM_WAVE_ALREADY, /* a close for a cutoff already passed */
  DOM_WAVE_ERROR,   /* the body failed for this input: detail */
};

struct dom_wave_outcome {
  enum dom_wave_outcome_kind kind;
  struct dom_wave_item *items; /* CLOSED: nitems (malloc'd) */
  size_t nitems;
  const char *detail;
};

/* Parse an outcome of DOM_WAVE_LUA in place (buf is modified and must
 * outlive out; free with dom_wave_outcome_free). LINLI_ERR_INVALID for a
 * malformed outcome, LINLI_ERR_NOMEM. */
int dom_wave_outcome_parse(char *buf, size_t len,
                           struct dom_wave_outcome *out);
void dom_wave_outcome_free(struct dom_wave_outcome *out);

#endif
