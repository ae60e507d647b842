/*
 * test_clock.c - unit tests of linli_clock: the real clock, the in-process
 * fake (set, advance, back to real), the file-driven fake re-read on every
 * call, and the fallback (with one warning) when that file is unusable.
 */
#include <CUnit/CUnit.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "linli/clock.h"
#include "linli_test.h"

static int64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void test_real(void) {
  int64_t a = wall_ms();
  int64_t now = linli_clock_now_ms();
  int64_t b = wall_ms();
  CU_ASSERT(now >= a && now <= b);
  int64_t m1 = linli_clock_mono_ms();
  struct timespec d = {0, 20 * 1000000L};
  nanosleep(&d, NULL);
  int64_t m2 = linli_clock_mono_ms();
  CU_ASSERT(m2 - m1 >= 20 && m2 - m1 < 2000);
}

static void test_fake(void) {
  linli_clock_set_fake(1000);
  CU_ASSERT_EQUAL(linli_clock_now_ms(), 1000);
  CU_ASSERT_EQUAL(linli_clock_now_ms(), 1000); /* frozen */
  linli_clock_advance(250);
  CU_ASSERT_EQUAL(linli_clock_now_ms(), 1250);
  linli_clock_set_fake(0);
  CU_ASSERT_EQUAL(linli_clock_now_ms(), 0);
  /* monotonic time is never faked */
  CU_ASSERT(linli_clock_mono_ms() > 0);
  linli_clock_set_fake(-1);
  int64_t now = linli_clock_now_ms();
  CU_ASSERT(now > 1600000000000LL);
  /* advance on the real clock is a no-op */
  linli_clock_advance(3600 * 1000);
  CU_ASSERT(linli_clock_now_ms() < now + 60 * 1000);
}

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  fputs(text, f);
  fclose(f);
}

static void test_file_clock(void) {
  char path[] = "/tmp/linli-test-clock-XXXXXX";
  int fd = mkstemp(path);
  CU_ASSERT_FATAL(fd >= 0);
  close(fd);
  write_file(path, "1700000000000\n");
  setenv("LINLI_FAKE_CLOCK_FILE", path, 1);
  CU_ASSERT_EQUAL(linli_clock_now_ms(), 1700000000000LL);
  /* re-read on every call: another process can move it */
  write_file(path, "1700000090000");
  CU_ASSERT_EQUAL(linli_clock_now_ms(), 1700000090000LL);
  write_file(path, "  1700000095000 \n");
  CU_ASSERT_EQUAL(linli_clock_now_ms(), 1700000095000LL);
  /* the in-process fake wins over the file */
  linli_clock_set_fake(5);
  CU_ASSERT_EQUAL(linli_clock_now_ms(), 5);
  linli_clock_set_fake(-1);
  CU_ASSERT_EQUAL(linli_clock_now_ms(), 1700000095000LL);
  unsetenv("LINLI_FAKE_CLOCK_FILE");
  CU_ASSERT(linli_clock_now_ms() > 1700000095000LL + 1000);
  unlink(path);
}

/* Read what was written to stderr while fn ran. */
static void capture(void (*fn)(int64_t *), int64_t *res, char *out, size_t len) {
  char path[] = "/tmp/linli-test-clock-err-XXXXXX";
  int fd = mkstemp(path);
  CU_ASSERT_FATAL(fd >= 0);
  int saved = dup(2);
  dup2(fd, 2);
  fn(res);
  dup2(saved, 2);
  close(saved);
  lseek(fd, 0, SEEK_SET);
  ssize_t n = read(fd, out, len - 1);
  out[n > 0 ? n : 0] = '\0';
  close(fd);
  unlink(path);
}

static void two_reads(int64_t *res) {
  res[0] = linli_clock_now_ms();
  res[1] = linli_clock_now_ms();
}

static void test_file_fallback(void) {
  char path[] = "/tmp/linli-test-clock-XXXXXX";
  int fd = mkstemp(path);
  CU_ASSERT_FATAL(fd >= 0);
  close(fd);
  write_file(path, "tomorrow");
  setenv("LINLI_FAKE_CLOCK_FILE", path, 1);
  int64_t before = wall_ms();
  int64_t res[2];
  char err[4096];
  capture(two_reads, res, err, sizeof(err));
  /* garbled: real clock, and exactly one warning for both calls */
  CU_ASSERT(res[0] >= before && res[1] >= res[0]);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "level=warn"));
  CU_ASSERT_PTR_NOT_NULL(strstr(err, path));
  const char *first = strstr(err, "level=warn");
  CU_ASSERT(first && strstr(first + 1, "level=warn") == NULL);

  /* trailing garbage and a missing file also fall back, silently now */
  write_file(path, "123abc");
  CU_ASSERT(linli_clock_now_ms() >= before);
  unlink(path);
  CU_ASSERT(linli_clock_now_ms() >= before);
  setenv("LINLI_FAKE_CLOCK_FILE", "", 1); /* empty: not in use */
  CU_ASSERT(linli_clock_now_ms() >= before);
  unsetenv("LINLI_FAKE_CLOCK_FILE");
}

int linli_test_register(void) {
  CU_pSuite s = CU_add_suite("clock", NULL, NULL);
  if (!s)
    return -1;
  CU_add_test(s, "real clock", test_real);
  CU_add_test(s, "fake and advance", test_fake);
  CU_add_test(s, "file-driven clock", test_file_clock);
  CU_add_test(s, "unusable file falls back once", test_file_fallback);
  return CU_get_error() == CUE_SUCCESS ? 0 : -1;
}
