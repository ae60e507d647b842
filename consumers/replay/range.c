/*
 * range.c - parsing --from/--to bounds: an offset, a UTC time, or @ms.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "replay.h"

static int all_digits(const char *s) {
  if (!*s)
    return 0;
  for (; *s; s++)
    if (!isdigit((unsigned char)*s))
      return 0;
  return 1;
}

/* Days since 1970-01-01 of a civil date (proleptic Gregorian). */
static int64_t days_from_civil(int64_t y, int m, int d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

int replay_parse_bound(const char *s, struct bound *b) {
  b->kind = BOUND_NONE;
  if (!s || !*s)
    return -1;
  if (s[0] == '@' && all_digits(s + 1)) {
    b->kind = BOUND_TIME;
    b->value = strtoll(s + 1, NULL, 10);
    return 0;
  }
  if (all_digits(s)) {
    b->kind = BOUND_OFFSET;
    b->value = strtoll(s, NULL, 10);
    return 0;
  }
  int y, mo, d, h = 0, mi = 0, se = 0, ms = 0, n = 0;
  if (sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3)
    return -1;
  const char *rest = s + n;
  if (*rest == 'T' || *rest == ' ') {
    int n2 = 0;
    if (sscanf(rest + 1, "%2d:%2d:%2d%n", &h, &mi, &se, &n2) != 3)
      return -1;
    rest += 1 + n2;
    if (*rest == '.') {
      int digits = 0;
      rest++;
      while (isdigit((unsigned char)*rest)) {
        if (digits < 3) {
          ms = ms * 10 + (*rest - '0');
          digits++;
        }
        rest++;
      }
      while (digits++ < 3)
        ms *= 10;
    }
    if (*rest == 'Z')
      rest++;
  }
  if (*rest != '\0' || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 ||
      mi > 59 || se > 60)
    return -1;
  b->kind = BOUND_TIME;
  b->value = ((days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * 60000LL +
             se * 1000LL + ms;
  return 0;
}
