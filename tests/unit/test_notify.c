/*
 * test_notify.c - unit tests of libdomain's notification templates: the
 * shipped templates load in every locale; an unknown placeholder, an
 * unclosed brace, a missing template or locale and a stray file are
 * start-up errors naming file and line; rendering, money, local time and
 * quiet hours.
 */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "domain/notify.h"
#include "linli/error.h"
#include "linli_test.h"

static void test_shipped(void) {
  char dir[4096], err[512] = "";
  dom_tpl_set_t *s = NULL;
  linli_test_source_path("config/templates", dir, sizeof dir);
  int rc = dom_tpl_load(dir, "zh-CN,en", &s, err, sizeof err);
  if (rc != LINLI_OK)
    fprintf(stderr, "%s\n", err);
  CU_ASSERT_EQUAL_FATAL(rc, LINLI_OK);
  CU_ASSERT_STRING_EQUAL(dom_tpl_locale(s, NULL), "zh-CN");
  CU_ASSERT_STRING_EQUAL(dom_tpl_locale(s, "en"), "en");
  CU_ASSERT_STRING_EQUAL(dom_tpl_locale(s, "fr"), "zh-CN");
  struct dom_param p[] = {{"order_id", "O-1"},
                          {"pickup_point", "PP-7"},
                          {"pickup_code", "4821"},
                          {"opening_hours", "08:00-21:00"}};
  char buf[512];
  CU_ASSERT_EQUAL(dom_tpl_render(s, DOM_TPL_PICKUP_READY, "en", p, 4, buf,
                                 sizeof buf),
                  LINLI_OK);
  CU_ASSERT_STRING_EQUAL(buf, "Order O-1 is ready at pickup point PP-7. "
                              "Pickup code 4821; open 08:00-21:00.");
  CU_ASSERT_EQUAL(dom_tpl_render(s, DOM_TPL_PICKUP_READY, "zh-CN", p, 4, buf,
                                 sizeof buf),
                  LINLI_OK);
  CU_ASSERT_PTR_NOT_NULL(strstr(buf, "取件码 4821"));
  /* Too small a buffer says so. */
  CU_ASSERT_EQUAL(
      dom_tpl_render(s, DOM_TPL_PICKUP_READY, "en", p, 4, buf, 10),
      LINLI_ERR_TOOBIG);
  CU_ASSERT_EQUAL(strlen(buf), 9);
  dom_tpl_free(s);
}

static void test_check(void) {
  char err[512];
  CU_ASSERT_EQUAL(dom_tpl_check(DOM_TPL_DELIVERED, "Order {order_id}", "f.txt",
                                err, sizeof err),
                  LINLI_OK);
  CU_ASSERT_EQUAL(dom_tpl_check(DOM_TPL_DELIVERED, "braces {{ok}}", "f.txt",
                                err, sizeof err),
                  LINLI_OK);
  CU_ASSERT_EQUAL(dom_tpl_check(DOM_TPL_DELIVERED, "a\nb {eta}", "d/f.txt",
                                err, sizeof err),
                  LINLI_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "d/f.txt:2: unknown placeholder {eta}"));
  CU_ASSERT_EQUAL(dom_tpl_check(DOM_TPL_DELIVERED, "x {order_id", "f.txt", err,
                                sizeof err),
                  LINLI_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "f.txt:1: unclosed placeholder"));
  CU_ASSERT_EQUAL(dom_tpl_check(DOM_TPL_DELIVERED, "x }", "f.txt", err,
                                sizeof err),
                  LINLI_ERR_CONFIG);
  CU_ASSERT_EQUAL(
      dom_tpl_check(DOM_TPL_DELIVERED, " \n ", "f.txt", err, sizeof err),
      LINLI_ERR_CONFIG);
  CU_ASSERT_EQUAL(dom_tpl_check(DOM_TPL_DELIVERED, "bad \xff utf8", "f.txt",
                                err, sizeof err),
                  LINLI_ERR_CONFIG);
}

/* A scratch template tree: a copy of the shipped one, then broken. */
static void copy_tree(const char *to) {
  char src[4096], cmd[9000];
  linli_test_source_path("config/templates", src, sizeof src);
  snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -r '%s' '%s'", to, src, to);
  CU_ASSERT_EQUAL_FATAL(system(cmd), 0);
}

static int load(const char *dir, const char *locales, char *err, size_t len) {
  dom_tpl_set_t *s = NULL;
  int rc = dom_tpl_load(dir, locales, &s, err, len);
  dom_tpl_free(s);
  return rc;
}

static void test_load_errors(void) {
  char dir[256], path[512], err[1024];
  snprintf(dir, sizeof dir, "/tmp/linli-tpl-%d", (int)getpid());
  copy_tree(dir);
  CU_ASSERT_EQUAL(load(dir, "zh-CN,en", err, sizeof err), LINLI_OK);

  /* A missing locale names its directory. */
  CU_ASSERT_EQUAL(load(dir, "zh-CN,fr", err, sizeof err), LINLI_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "/fr: missing locale"));

  /* An unknown placeholder names file and line. */
  snprintf(path, sizeof path, "%s/en/delivered.txt", dir);
  FILE *f = fopen(path, "w");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  fputs("Order {order_id}\ndelivered by {courier}\n", f);
  fclose(f);
  CU_ASSERT_EQUAL(load(dir, "zh-CN,en", err, sizeof err), LINLI_ERR_CONFIG);
  char want[600];
  snprintf(want, sizeof want, "%s:2: unknown placeholder {courier}", path);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, want));

  /* A template missing in one locale. */
  unlink(path);
  CU_ASSERT_EQUAL(load(dir, "zh-CN,en", err, sizeof err), LINLI_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "en/delivered.txt: missing"));

  /* A file that is no template of the catalogue. */
  copy_tree(dir);
  snprintf(path, sizeof path, "%s/zh-CN/order_shipped.txt", dir);
  f = fopen(path, "w");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  fputs("x\n", f);
  fclose(f);
  CU_ASSERT_EQUAL(load(dir, "zh-CN,en", err, sizeof err), LINLI_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "order_shipped.txt:1: unknown template"));

  CU_ASSERT_EQUAL(load(dir, "zh-CN,../x", err, sizeof err), LINLI_ERR_CONFIG);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  CU_ASSERT_EQUAL(system(cmd), 0);
}

static void test_format(void) {
  char b[64];
  dom_fmt_money(0, b, sizeof b);
  CU_ASSERT_STRING_EQUAL(b, "0.00");
  dom_fmt_money(1205, b, sizeof b);
  CU_ASSERT_STRING_EQUAL(b, "12.05");
  dom_fmt_money(-5, b, sizeof b);
  CU_ASSERT_STRING_EQUAL(b, "-0.05");
  dom_fmt_money(INT64_MIN, b, sizeof b);
  CU_ASSERT_STRING_EQUAL(b, "-92233720368547758.08");
  /* 2026-12-06 00:00 UTC is 08:00 in UTC+8. */
  dom_fmt_time(INT64_C(1796515200000), 480, b, sizeof b);
  CU_ASSERT_STRING_EQUAL(b, "2026-12-06 08:00");
}

static void test_quiet(void) {
  struct dom_quiet q;
  const int64_t day0 = INT64_C(1796515200000) - 8 * 3600000; /* local 00:00 */
  const int64_t h = 3600000;
  CU_ASSERT_EQUAL(dom_quiet_parse("22:00-07:00", 480, &q), LINLI_OK);
  CU_ASSERT_EQUAL(dom_quiet_until(&q, day0 + 12 * h), 0);
  CU_ASSERT_EQUAL(dom_quiet_until(&q, day0 + 23 * h), day0 + 31 * h);
  CU_ASSERT_EQUAL(dom_quiet_until(&q, day0 + 3 * h), day0 + 7 * h);
  CU_ASSERT_EQUAL(dom_quiet_until(&q, day0 + 7 * h), 0);
  CU_ASSERT_EQUAL(dom_quiet_until(&q, day0 + 22 * h), day0 + 31 * h);
  CU_ASSERT_EQUAL(dom_quiet_parse("13:00-14:30", 0, &q), LINLI_OK);
  CU_ASSERT_EQUAL(dom_quiet_until(&q, 13 * h + 60000), 14 * h + 30 * 60000);
  CU_ASSERT_EQUAL(dom_quiet_until(&q, 15 * h), 0);
  CU_ASSERT_EQUAL(dom_quiet_parse("", 0, &q), LINLI_OK);
  CU_ASSERT_EQUAL(dom_quiet_until(&q, 23 * h), 0);
  CU_ASSERT_EQUAL(dom_quiet_parse("25:00-07:00", 0, &q), LINLI_ERR_INVALID);
  CU_ASSERT_EQUAL(dom_quiet_parse("22:00-22:00", 0, &q), LINLI_ERR_INVALID);
  CU_ASSERT_EQUAL(dom_quiet_parse("22-07", 0, &q), LINLI_ERR_INVALID);
}

static void test_outcome(void) {
  static const char ok[] = "Q3:u-14:\x0a\x01\x00\x02-2:u2" "0:";
  size_t pos = 0, len = sizeof ok - 1;
  struct dom_nt_entry e;
  CU_ASSERT_EQUAL(dom_nt_outcome_next(ok, len, &pos, &e), 1);
  CU_ASSERT_EQUAL(e.flag, 'Q');
  CU_ASSERT_EQUAL(e.userlen, 3);
  CU_ASSERT_EQUAL(memcmp(e.user, "u-1", 3), 0);
  CU_ASSERT_EQUAL(e.packedlen, 4);
  CU_ASSERT_EQUAL(e.packed[2], 0);
  CU_ASSERT_EQUAL(dom_nt_outcome_next(ok, len, &pos, &e), 1);
  CU_ASSERT_EQUAL(e.flag, '-');
  CU_ASSERT_EQUAL(e.packedlen, 0);
  CU_ASSERT_EQUAL(dom_nt_outcome_next(ok, len, &pos, &e), 0);
  pos = 0;
  CU_ASSERT_EQUAL(dom_nt_outcome_next("", 0, &pos, &e), 0);
  static const char *const bad[] = {"X1:u0:", "Q0:0:", "Q1:u", "Q1:u9:abc",
                                    "Q:u0:", "Q1:u-1:", "Q99999999999999:u0:"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    pos = 0;
    CU_ASSERT_EQUAL(dom_nt_outcome_next(bad[i], strlen(bad[i]), &pos, &e),
                    LINLI_ERR_INVALID);
  }
}

int linli_test_register(void) {
  CU_pSuite s = CU_add_suite("domain: notification templates", NULL, NULL);
  if (!s)
    return -1;
  CU_add_test(s, "shipped templates load and render", test_shipped);
  CU_add_test(s, "template check", test_check);
  CU_add_test(s, "load errors name file and line", test_load_errors);
  CU_add_test(s, "money and time", test_format);
  CU_add_test(s, "quiet hours", test_quiet);
  CU_add_test(s, "batch script outcome", test_outcome);
  return CU_get_error() == CUE_SUCCESS ? 0 : -1;
}
