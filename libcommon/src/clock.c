/*
 * clock.c - UTC milliseconds, with two ways for tests to take control:
 * an in-process fake (linli_clock_set_fake / linli_clock_advance) and a
 * file named by $LINLI_FAKE_CLOCK_FILE holding a decimal millisecond
 * timestamp, re-read on every call so a test can move the clock of a
 * consumer running in another process.
 *
 * The in-process fake wins over the file. A file that cannot be read or does
 * not hold a timestamp falls back to the real clock with one warning per
 * process: a broken test set-up must be visible, but must not flood logs.
 */
#include "linli/clock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "linli/log.h"

/* -1 while the real clock is in use. */
static _Atomic int64_t fake_ms = -1;
static atomic_int file_warned = 0;

static int64_t real_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Parse the fake clock file: digits, optional surrounding white space.
 * 0 and *ms on success, -1 with a reason otherwise. */
static int read_clock_file(const char *path, int64_t *ms, const char **why) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    *why = "cannot open";
    return -1;
  }
  char buf[64];
  size_t len = 0;
  for (;;) {
    ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      close(fd);
      *why = "cannot read";
      return -1;
    }
    if (n == 0 || (len += (size_t)n) == sizeof(buf) - 1)
      break;
  }
  close(fd);
  buf[len] = '\0';
  const char *p = buf;
  while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
    p++;
  if (*p < '0' || *p > '9') {
    *why = "not a decimal millisecond timestamp";
    return -1;
  }
  char *end = NULL;
  errno = 0;
  long long v = strtoll(p, &end, 10);
  while (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r')
    end++;
  if (errno != 0 || *end != '\0') {
    *why = "not a decimal millisecond timestamp";
    return -1;
  }
  *ms = v;
  return 0;
}

int64_t linli_clock_now_ms(void) {
  int64_t f = atomic_load(&fake_ms);
  if (f >= 0)
    return f;
  const char *path = getenv("LINLI_FAKE_CLOCK_FILE");
  if (path && *path) {
    int64_t ms = 0;
    const char *why = NULL;
    if (read_clock_file(path, &ms, &why) == 0)
      return ms;
    if (atomic_exchange(&file_warned, 1) == 0)
      LINLI_WARN("fake clock file unusable, using the real clock",
                 "path=\"%s\" reason=\"%s\"", path, why);
  }
  return real_ms();
}

int64_t linli_clock_mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void linli_clock_set_fake(int64_t ms) { atomic_store(&fake_ms, ms < 0 ? -1 : ms); }

void linli_clock_advance(int64_t delta_ms) {
  int64_t cur = atomic_load(&fake_ms);
  /* Compare-and-swap so a concurrent set_fake(-1) is never undone. */
  while (cur >= 0) {
    int64_t next = cur + delta_ms;
    if (next < 0)
      next = 0;
    if (atomic_compare_exchange_weak(&fake_ms, &cur, next))
      break;
  }
}
