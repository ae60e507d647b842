/*
 * replies.h - the typed results of the reserver's Lua effects (scripts.c)
 * and their parsers. A script returns one string per input, "WORD" or
 * "WORD|field|...|rest"; each parser here turns it into a struct whose
 * fields point into that string (nothing is copied or allocated), so a
 * handler never parses text and a redelivered input's recorded outcome
 * reads exactly like the first.
 *
 * Ids inside outcomes are [A-Za-z0-9_-] (validated before the script ran),
 * so '|' ':' ',' ';' separate unambiguously; a field that may hold any
 * bytes (the stored OrderPlaced) is always the last one.
 */
#ifndef RESERVER_REPLIES_H
#define RESERVER_REPLIES_H

#include <stddef.h>
#include <stdint.h>

/* A piece of an outcome string (not NUL-terminated). */
struct rsv_str {
  const char *p;
  size_t n;
};

/* ------------------------------------------------------------ placement */
enum rsv_place_kind {
  RSV_PLACE_RESERVED, /* all lines held */
  RSV_PLACE_DUP,      /* another event already placed this order id */
  RSV_PLACE_REJ,      /* pre-decided rejection: reason, detail */
  RSV_PLACE_SHORT,    /* not enough stock: shortages */
};

struct rsv_place {
  enum rsv_place_kind kind;
  int same;               /* the same event again (same event id): the
                             first outcome, reported once more */
  struct rsv_str reason;  /* REJ: enum name (UNKNOWN_SKU, ...) */
  struct rsv_str detail;  /* REJ: free text */
  struct rsv_str shorts;  /* SHORT: "sku:req:avail;..." (rsv_short_next) */
};

/* One shortage of a SHORT outcome. */
struct rsv_short {
  struct rsv_str sku;
  int64_t requested, available;
};

/* ---------------------------------------------------------------- payment */
enum rsv_pay_kind {
  RSV_PAY_COMMITTED, /* paid: sc, over (refund owed), pb */
  RSV_PAY_UNDER,     /* less than the total: refused, refunded; usr, tot */
  RSV_PAY_REPEAT,    /* the same notice again: nothing */
  RSV_PAY_DOUBLE,    /* paid before with another txn: usr, txn */
  RSV_PAY_LATE,      /* the order expired: usr */
  RSV_PAY_CANCELLED, /* the order was cancelled: usr */
  RSV_PAY_REJECTED,  /* the order holds no stock: usr */
  RSV_PAY_NOORDER,   /* no order record (gone): refund */
  RSV_PAY_HELD,      /* paid, held until its campaign settles: sc, over,
                        pb (no fulfilment yet) */
  RSV_PAY_SETTLED,   /* paid after its campaign settled: price, sc, over,
                        pb (fulfilment at the settled price) */
  RSV_PAY_GFAILED,   /* paid after its campaign failed: usr, covered (what
                        the settler's GROUP_FAILED refund already returns) */
};

struct rsv_pay {
  enum rsv_pay_kind kind;
  struct rsv_str usr;
  struct rsv_str txn;   /* DOUBLE: the first payment's txn */
  int storage_class;    /* COMMITTED */
  int64_t over;         /* COMMITTED: paid above the total (refund) */
  int64_t total;        /* UNDER: the order's total */
  struct rsv_str pb;    /* COMMITTED, HELD, SETTLED: stored OrderPlaced */
  int64_t price;        /* SETTLED: the campaign's settled unit price */
  int64_t covered;      /* GFAILED: refunded by the settler already */
};

/* ---------------------------------------------------------------- release */
enum rsv_release_kind {
  RSV_REL_RELEASED, /* held stock returned: usr */
  RSV_REL_EARLY,    /* expiry judged against an earlier deadline: deadline */
  RSV_REL_PAID,     /* already paid: usr */
  RSV_REL_ALREADY,  /* already final: state */
  RSV_REL_NOORDER,
};

struct rsv_release {
  enum rsv_release_kind kind;
  struct rsv_str usr;
  struct rsv_str state;
  int64_t deadline;
};

/* ----------------------------------------------------------------- adjust */
enum rsv_adjust_kind { RSV_ADJ_OK, RSV_ADJ_NEG };

struct rsv_adjust {
  enum rsv_adjust_kind kind;
  int64_t available; /* after (OK) or as it stands (NEG) */
};

/* ------------------------------------------------- campaign settlement */
enum rsv_camp_kind {
  RSV_CAMP_SETTLED, /* held orders go to fulfilment at price: entries */
  RSV_CAMP_FAILED,  /* orders released: entries */
  RSV_CAMP_ALREADY, /* the campaign was decided before: state */
};

struct rsv_camp {
  enum rsv_camp_kind kind;
  int64_t price;          /* SETTLED */
  int64_t count;          /* entries that follow */
  struct rsv_str entries; /* rsv_camp_next */
  struct rsv_str state;   /* ALREADY */
};

/* One order of a campaign outcome: "order:a:b:len:pb". */
struct rsv_camp_order {
  struct rsv_str order_id;
  int64_t a;  /* SETTLED: storage class; FAILED: 1 paid (sold -> available),
                 0 reserved (reserved -> available) */
  int64_t b;  /* FAILED, reserved: the orders partition of its expiry entry
                 (-1 unknown); else 0 */
  struct rsv_str pb; /* the stored OrderPlaced */
};

/* Each parser: 0 on success; LINLI_ERR_INVALID for text no script writes.
 * s need not be NUL-terminated (len given). */
int rsv_parse_place(const char *s, size_t len, struct rsv_place *out);
int rsv_parse_pay(const char *s, size_t len, struct rsv_pay *out);
int rsv_parse_release(const char *s, size_t len, struct rsv_release *out);
int rsv_parse_adjust(const char *s, size_t len, struct rsv_adjust *out);
int rsv_parse_camp(const char *s, size_t len, struct rsv_camp *out);

/* Take the next order off *rest (advanced): 1 when one was read, 0 at the
 * end, LINLI_ERR_INVALID on a malformed entry. */
int rsv_camp_next(struct rsv_str *rest, struct rsv_camp_order *out);

/* Take the next shortage off *rest (advanced). 1 when one was read, 0 at
 * the end, LINLI_ERR_INVALID on a malformed entry. */
int rsv_short_next(struct rsv_str *rest, struct rsv_short *out);

/* 1 if the outcome is a script error ("ERR|message"); *msg the message. */
int rsv_is_error(const char *s, size_t len, struct rsv_str *msg);

#endif
