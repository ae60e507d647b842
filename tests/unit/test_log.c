/*
 * test_log.c - unit tests of linli_log: the logfmt line layout, quoting,
 * level filtering that does not evaluate arguments, and that concurrent
 * writers never interleave lines.
 */
#include <CUnit/CUnit.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "linli/log.h"
#include "linli_test.h"

/* Redirect stderr into a temporary file; capture_end() returns its text. */
static int saved_fd = -1;
static char cap_path[64];

static void capture_begin(void) {
  snprintf(cap_path, sizeof(cap_path), "/tmp/linli-test-log-XXXXXX");
  int fd = mkstemp(cap_path);
  CU_ASSERT_FATAL(fd >= 0);
  fflush(stderr);
  saved_fd = dup(STDERR_FILENO);
  CU_ASSERT_FATAL(saved_fd >= 0);
  /* O_APPEND like a shared log file, so concurrent writes stay whole */
  int afd = open(cap_path, O_WRONLY | O_APPEND);
  close(fd);
  CU_ASSERT_FATAL(afd >= 0);
  dup2(afd, STDERR_FILENO);
  close(afd);
}

static char *capture_end(void) {
  fflush(stderr);
  dup2(saved_fd, STDERR_FILENO);
  close(saved_fd);
  saved_fd = -1;
  FILE *f = fopen(cap_path, "r");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = calloc(1, (size_t)n + 1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
  size_t got = fread(buf, 1, (size_t)n, f);
  buf[got] = '\0';
  fclose(f);
  unlink(cap_path);
  return buf;
}

static int matches_ts(const char *s) {
  /* ts=YYYY-MM-DDTHH:MM:SS.mmmZ */
  const char *pat = "ts=dddd-dd-ddTdd:dd:dd.dddZ ";
  for (size_t i = 0; pat[i]; i++) {
    if (pat[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != pat[i])
      return 0;
  }
  return 1;
}

static void test_line_fields(void) {
  linli_log_init("reserver", LINLI_LOG_INFO);
  capture_begin();
  LINLI_INFO("consumed batch", "topic=%s partition=%d", "linli.orders.v1", 3);
  LINLI_WARN("plain", NULL);
  LINLI_ERROR("has \"quotes\"\nand newline", "k=%s", "a\nb");
  char *out = capture_end();

  char *l1 = out;
  char *l2 = strchr(l1, '\n');
  CU_ASSERT_PTR_NOT_NULL_FATAL(l2);
  *l2++ = '\0';
  char *l3 = strchr(l2, '\n');
  CU_ASSERT_PTR_NOT_NULL_FATAL(l3);
  *l3++ = '\0';
  char *end = strchr(l3, '\n');
  CU_ASSERT_PTR_NOT_NULL_FATAL(end);
  *end++ = '\0';
  CU_ASSERT_STRING_EQUAL(end, ""); /* exactly three lines */

  CU_ASSERT(matches_ts(l1));
  CU_ASSERT_STRING_EQUAL(l1 + 28, "level=info prog=reserver msg=\"consumed batch\" "
                                  "topic=linli.orders.v1 partition=3");
  CU_ASSERT(matches_ts(l2));
  CU_ASSERT_STRING_EQUAL(l2 + 28, "level=warn prog=reserver msg=plain");
  CU_ASSERT_STRING_EQUAL(l3 + 28, "level=error prog=reserver "
                                  "msg=\"has \\\"quotes\\\"\\nand newline\" k=a b");
  free(out);
}

static int evaluated;
static int bump(void) { return ++evaluated; }

static void test_level_filter(void) {
  linli_log_init("t", LINLI_LOG_WARN);
  evaluated = 0;
  capture_begin();
  LINLI_DEBUG("hidden", "n=%d", bump());
  LINLI_INFO("hidden", "n=%d", bump());
  LINLI_WARN("shown", "n=%d", bump());
  char *out = capture_end();
  CU_ASSERT_EQUAL(evaluated, 1);
  CU_ASSERT_PTR_NULL(strstr(out, "hidden"));
  CU_ASSERT_PTR_NOT_NULL(strstr(out, "level=warn prog=t msg=shown n=1\n"));
  free(out);
  linli_log_init(NULL, LINLI_LOG_INFO);
}

static void test_level_parse(void) {
  CU_ASSERT_EQUAL(linli_log_level_parse("debug"), LINLI_LOG_DEBUG);
  CU_ASSERT_EQUAL(linli_log_level_parse("info"), LINLI_LOG_INFO);
  CU_ASSERT_EQUAL(linli_log_level_parse("warn"), LINLI_LOG_WARN);
  CU_ASSERT_EQUAL(linli_log_level_parse("error"), LINLI_LOG_ERROR);
  CU_ASSERT_EQUAL(linli_log_level_parse("verbose"), -1);
  CU_ASSERT_EQUAL(linli_log_level_parse(NULL), -1);
}

static void test_long_line(void) {
  char big[10000];
  memset(big, 'x', sizeof(big) - 1);
  big[sizeof(big) - 1] = '\0';
  capture_begin();
  LINLI_ERROR("big", "v=%s end=1", big);
  char *out = capture_end();
  CU_ASSERT_PTR_NOT_NULL(strstr(out, big));
  CU_ASSERT_PTR_NOT_NULL(strstr(out, " end=1\n"));
  free(out);
}

#define NTHREADS 4
#define NLINES 300

static void *writer(void *arg) {
  int id = (int)(intptr_t)arg;
  char pad[600];
  memset(pad, 'a' + id, sizeof(pad) - 1);
  pad[sizeof(pad) - 1] = '\0';
  for (int i = 0; i < NLINES; i++)
    LINLI_INFO("concurrent", "thread=%d i=%d pad=%s end=%d", id, i, pad, id);
  return NULL;
}

static void test_concurrent_lines(void) {
  linli_log_init("t", LINLI_LOG_INFO);
  capture_begin();
  pthread_t th[NTHREADS];
  for (int i = 0; i < NTHREADS; i++)
    pthread_create(&th[i], NULL, writer, (void *)(intptr_t)i);
  for (int i = 0; i < NTHREADS; i++)
    pthread_join(th[i], NULL);
  char *out = capture_end();
  int lines = 0, bad = 0;
  for (char *l = out, *nl; *l; l = nl + 1) {
    nl = strchr(l, '\n');
    if (!nl) {
      bad++; /* a record without its newline */
      break;
    }
    *nl = '\0';
    lines++;
    int id = -1, i = -1, endid = -2;
    const char *p = strstr(l, "thread=");
    const char *e = strstr(l, " end=");
    if (!matches_ts(l) || !p || !e || sscanf(p, "thread=%d i=%d", &id, &i) != 2 ||
        sscanf(e, " end=%d", &endid) != 1 || id != endid)
      bad++;
  }
  CU_ASSERT_EQUAL(lines, NTHREADS * NLINES);
  CU_ASSERT_EQUAL(bad, 0);
  free(out);
}

int linli_test_register(void) {
  CU_pSuite s = CU_add_suite("log", NULL, NULL);
  if (!s)
    return -1;
  CU_add_test(s, "line fields", test_line_fields);
  CU_add_test(s, "level filter skips args", test_level_filter);
  CU_add_test(s, "level parse", test_level_parse);
  CU_add_test(s, "long line", test_long_line);
  CU_add_test(s, "concurrent lines", test_concurrent_lines);
  return CU_get_error() == CUE_SUCCESS ? 0 : -1;
}
