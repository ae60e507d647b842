/*
 * fuzz_replies.c - the texts linli reads back from Redis: the outcomes of
 * its Lua batch scripts (the reserver's, the settler's, the router's, the
 * notifier's) and the hot-state fields it parses (a campaign's tiers, the
 * quiet hours). The first byte picks the parser. Whatever a parser accepts
 * points inside the text it was given; an entry loop always ends.
 */
#include <string.h>

#include "domain/groupbuy.h"
#include "domain/groupbuy_state.h"
#include "domain/notify.h"
#include "domain/wave.h"
#include "fuzz_common.h"
#include "replies.h"

static const char *lo, *hi;

static void inside(struct rsv_str s) {
  FUZZ_REQUIRE(s.n == 0 || (s.p >= lo && s.p + s.n <= hi),
               "a parsed piece lies inside the outcome");
}

static void reserver(int which, const char *s, size_t n) {
  lo = s;
  hi = s + n;
  switch (which) {
  case 0: {
    struct rsv_place o;
    if (rsv_parse_place(s, n, &o) != 0)
      return;
    inside(o.reason);
    inside(o.detail);
    inside(o.shorts);
    struct rsv_str rest = o.shorts;
    struct rsv_short sh;
    size_t guard = n + 1;
    while (rsv_short_next(&rest, &sh) == 1) {
      inside(sh.sku);
      FUZZ_REQUIRE(guard-- > 0, "the shortage loop ends");
    }
    return;
  }
  case 1: {
    struct rsv_pay o;
    if (rsv_parse_pay(s, n, &o) == 0) {
      inside(o.usr);
      inside(o.txn);
      inside(o.pb);
    }
    return;
  }
  case 2: {
    struct rsv_release o;
    if (rsv_parse_release(s, n, &o) == 0) {
      inside(o.usr);
      inside(o.state);
    }
    return;
  }
  case 3: {
    struct rsv_adjust o;
    (void)rsv_parse_adjust(s, n, &o);
    return;
  }
  case 4: {
    struct rsv_camp o;
    if (rsv_parse_camp(s, n, &o) != 0)
      return;
    inside(o.entries);
    inside(o.state);
    struct rsv_str rest = o.entries;
    struct rsv_camp_order e;
    size_t guard = n + 1;
    while (rsv_camp_next(&rest, &e) == 1) {
      inside(e.order_id);
      inside(e.pb);
      FUZZ_REQUIRE(guard-- > 0, "the order loop ends");
    }
    return;
  }
  default: {
    struct rsv_str msg;
    if (rsv_is_error(s, n, &msg))
      inside(msg);
    return;
  }
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  int which = data[0] % 11;
  size_t n = size - 1;
  /* A NUL-terminated, writable copy: some parsers cut the text in place. */
  char *s = malloc(n + 1);
  FUZZ_REQUIRE(s != NULL, "memory");
  memcpy(s, data + 1, n);
  s[n] = '\0';
  if (which <= 5) {
    reserver(which, s, n);
  } else if (which == 6) {
    struct dom_gb_outcome o;
    if (dom_gb_outcome_parse(s, &o) == 0)
      dom_gb_outcome_free(&o);
  } else if (which == 7) {
    struct dom_wave_outcome o;
    if (dom_wave_outcome_parse(s, n, &o) == 0)
      dom_wave_outcome_free(&o);
  } else if (which == 8) {
    size_t pos = 0, guard = n + 1;
    struct dom_nt_entry e;
    while (dom_nt_outcome_next(s, n, &pos, &e) == 1) {
      FUZZ_REQUIRE(e.user >= s && e.user + e.userlen <= s + n &&
                       (const char *)e.packed >= s &&
                       (const char *)e.packed + e.packedlen <= s + n,
                   "an entry lies inside the outcome");
      FUZZ_REQUIRE(pos <= n && guard-- > 0, "the entry loop ends");
    }
  } else if (which == 9) {
    struct dom_gb_tier tiers[DOM_GB_MAX_TIERS];
    size_t nt = 0;
    if (dom_gb_tiers_parse(s, tiers, DOM_GB_MAX_TIERS, &nt) == 0) {
      FUZZ_REQUIRE(nt <= DOM_GB_MAX_TIERS, "tiers fit");
      for (size_t i = 1; i < nt; i++)
        FUZZ_REQUIRE(tiers[i - 1].min < tiers[i].min, "tiers ascend");
    }
  } else {
    struct dom_quiet q;
    if (dom_quiet_parse(s, 480, &q) == 0 && q.on)
      FUZZ_REQUIRE(q.start_min >= 0 && q.start_min < 1440 && q.end_min >= 0 &&
                       q.end_min < 1440,
                   "quiet hours are times of the day");
  }
  free(s);
  return 0;
}
