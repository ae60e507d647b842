/*
 * ids.c - event ids: new time-ordered ids (ULID layout in Crockford base32)
 * and derived ids (DESIGN.md rule 4): a pure function of the input event's
 * own id (linli_id_derive_event) or of an input record's position, plus the id syntax check used for every external id.
 *
 * New ids take their time from linli_clock_now_ms(), so an event created
 * under a fake test clock carries an id consistent with its occurred_at_ms.
 * Within one process ids are strictly increasing: in the same millisecond
 * (or if the clock steps back) the previous 80-bit random part is
 * incremented instead of drawn again, as the ULID monotonic rule says.
 */
#include "linli/ids.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "linli/clock.h"
#include "linli/error.h"

static const char CROCKFORD[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/* Last id handed out by this process: time and 80 random bits (hi 16, lo 64). */
static pthread_mutex_t id_lock = PTHREAD_MUTEX_INITIALIZER;
static int64_t last_ms = -1;
static uint16_t last_hi;
static uint64_t last_lo;

static int fill_random(void *buf, size_t len) {
  unsigned char *p = buf;
  while (len > 0) {
    ssize_t n = getrandom(p, len, 0);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

int linli_id_new(char *buf, size_t len) {
  if (!buf || len < 27)
    return LINLI_ERR_INVALID;
  int64_t now = linli_clock_now_ms();
  if (now < 0)
    now = 0;
  uint64_t ms;
  uint16_t hi;
  uint64_t lo;

  pthread_mutex_lock(&id_lock);
  if (now > last_ms) {
    unsigned char r[10];
    if (fill_random(r, sizeof(r)) != 0) {
      pthread_mutex_unlock(&id_lock);
      return LINLI_ERR_FATAL;
    }
    last_ms = now;
    last_hi = (uint16_t)(r[0] << 8 | r[1]);
    last_lo = 0;
    for (int i = 2; i < 10; i++)
      last_lo = last_lo << 8 | r[i];
  } else {
    /* Same millisecond, or the clock went back: stay on last_ms and count
     * up. On the (2^80-to-1) overflow, move on to the next millisecond. */
    if (++last_lo == 0 && ++last_hi == 0)
      last_ms++;
  }
  ms = (uint64_t)last_ms & ((UINT64_C(1) << 48) - 1);
  hi = last_hi;
  lo = last_lo;
  pthread_mutex_unlock(&id_lock);

  /* 10 characters of time: 50 bits, the top two always zero. */
  for (int i = 9; i >= 0; i--) {
    buf[i] = CROCKFORD[ms & 31];
    ms >>= 5;
  }
  /* 16 characters of randomness: 80 bits = hi(16) . lo(64). */
  for (int i = 25; i >= 10; i--) {
    buf[i] = CROCKFORD[lo & 31];
    lo = lo >> 5 | (uint64_t)(hi & 31) << 59;
    hi >>= 5;
  }
  buf[26] = '\0';
  return LINLI_OK;
}

/* 64-bit FNV-1a: small, stable across platforms and versions, which is all a
 * derived id needs (it is not a security boundary). */
static uint64_t fnv1a64_from(uint64_t h, const char *s) {
  for (; *s; s++) {
    h ^= (unsigned char)*s;
    h *= UINT64_C(0x100000001b3);
  }
  return h;
}

static uint64_t fnv1a64(const char *s) {
  return fnv1a64_from(UINT64_C(0xcbf29ce484222325), s);
}

int linli_id_derive(const char *topic, int32_t partition, int64_t offset,
                    int index, char *buf, size_t len) {
  if (!topic || !*topic || partition < 0 || offset < 0 || index < 0 || !buf)
    return LINLI_ERR_INVALID;
  if (len < LINLI_ID_BUFSZ)
    return LINLI_ERR_INVALID;
  /* Longest: 1 + 16 + 1 + 10 + 1 + 19 + 1 + 10 = 59 characters. */
  int n = snprintf(buf, len, "d%016" PRIx64 "-%" PRId32 "-%" PRId64 "-%d",
                   fnv1a64(topic), partition, offset, index);
  if (n < 0 || n > LINLI_ID_MAX)
    return LINLI_ERR_INVALID;
  return LINLI_OK;
}

int linli_id_derive_event(const char *event_id, int index, char *buf,
                          size_t len) {
  if (!event_id || !*event_id || index < 0 || !buf || len < LINLI_ID_BUFSZ)
    return LINLI_ERR_INVALID;
  /* 128 bits from two independent FNV-1a runs (the second seeded with a
   * different basis): a collision between two distinct event ids is out
   * of reach at any realistic event count. "e" + 32 hex + "-" + index:
   * at most 44 characters. */
  uint64_t h1 = fnv1a64(event_id);
  uint64_t h2 = fnv1a64_from(UINT64_C(0x6c62272e07bb0142), event_id);
  int n = snprintf(buf, len, "e%016" PRIx64 "%016" PRIx64 "-%d", h1, h2,
                   index);
  if (n < 0 || n > LINLI_ID_MAX)
    return LINLI_ERR_INVALID;
  return LINLI_OK;
}

int linli_id_valid(const char *s) {
  if (!s)
    return 0;
  size_t n = 0;
  for (; s[n]; n++) {
    unsigned char c = (unsigned char)s[n];
    int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
             (c >= '0' && c <= '9') || c == '_' || c == '-';
    if (!ok || n >= LINLI_ID_MAX)
      return 0;
  }
  return n >= 1;
}
