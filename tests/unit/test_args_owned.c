/*
 * test_args_owned.c - unit tests of the small pieces every daemon shares:
 * the long-option parser (values, flags, defaults kept, unknown or
 * incomplete arguments refused), the owned-partition map (only its topic,
 * only partitions in range, revocation, iteration), the string hash (its
 * values must never change: the notifier's shards depend on them) and the
 * growing array (doubling, overflow refused).
 */
#include <CUnit/CUnit.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "linli/args.h"
#include "linli/array.h"
#include "linli/error.h"
#include "linli/hash.h"
#include "linli/owned.h"
#include "linli_test.h"

static int parse(int argc, char **argv, const char **config, const char **mode,
                 int *routes) {
  const linli_arg_t opts[] = {{"--config", config, NULL},
                              {"--mode", mode, NULL},
                              {"--routes", NULL, routes},
                              {NULL, NULL, NULL}};
  return linli_args_parse(argc, argv, opts, "prog [--config FILE]");
}

static void test_args(void) {
  const char *config = NULL, *mode = "all";
  int routes = 0;
  char *none[] = {"prog", NULL};
  CU_ASSERT_EQUAL(parse(1, none, &config, &mode, &routes), LINLI_OK);
  CU_ASSERT_PTR_NULL(config);
  CU_ASSERT_STRING_EQUAL(mode, "all");
  CU_ASSERT_EQUAL(routes, 0);

  char *all[] = {"prog", "--mode", "send", "--routes", "--config", "a.conf",
                 NULL};
  CU_ASSERT_EQUAL(parse(6, all, &config, &mode, &routes), LINLI_OK);
  CU_ASSERT_STRING_EQUAL(config, "a.conf");
  CU_ASSERT_STRING_EQUAL(mode, "send");
  CU_ASSERT_EQUAL(routes, 1);

  char *missing[] = {"prog", "--config", NULL};
  CU_ASSERT_EQUAL(parse(2, missing, &config, &mode, &routes),
                  LINLI_ERR_INVALID);
  char *unknown[] = {"prog", "--verbose", NULL};
  CU_ASSERT_EQUAL(parse(2, unknown, &config, &mode, &routes),
                  LINLI_ERR_INVALID);
  char *positional[] = {"prog", "x.conf", NULL};
  CU_ASSERT_EQUAL(parse(2, positional, &config, &mode, &routes),
                  LINLI_ERR_INVALID);
}

struct seen {
  int p[8];
  int n;
};

static int visit(void *app, struct linli_emit *emit, int32_t p, int64_t now) {
  struct seen *v = app;
  (void)emit;
  (void)now;
  if (v->n < 8)
    v->p[v->n++] = p;
  return 0;
}

static int fail_at_3(void *app, struct linli_emit *emit, int32_t p,
                     int64_t now) {
  (void)emit;
  (void)now;
  ++*(int *)app;
  return p == 3 ? -2 : 0;
}

static void test_owned(void) {
  static linli_owned_t o = {.topic = "t.v1"};
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(5);
  CU_ASSERT_PTR_NOT_NULL_FATAL(l);
  rd_kafka_topic_partition_list_add(l, "t.v1", 3);
  rd_kafka_topic_partition_list_add(l, "t.v1", 0);
  rd_kafka_topic_partition_list_add(l, "other.v1", 1);
  rd_kafka_topic_partition_list_add(l, "t.v1", LINLI_OWNED_MAX);
  rd_kafka_topic_partition_list_add(l, "t.v1", LINLI_OWNED_MAX - 1);
  CU_ASSERT_EQUAL(linli_owned_next(&o, 0), -1);
  linli_owned_update(&o, l, 1);
  int seen[8], n = 0;
  for (int p = linli_owned_next(&o, 0); p >= 0 && n < 8;
       p = linli_owned_next(&o, p + 1))
    seen[n++] = p;
  CU_ASSERT_EQUAL_FATAL(n, 3);
  CU_ASSERT_EQUAL(seen[0], 0);
  CU_ASSERT_EQUAL(seen[1], 3);
  CU_ASSERT_EQUAL(seen[2], LINLI_OWNED_MAX - 1);
  CU_ASSERT_EQUAL(linli_owned_next(&o, -5), 0);
  CU_ASSERT_EQUAL(linli_owned_next(&o, LINLI_OWNED_MAX), -1);

  struct seen v = {{0}, 0};
  int nv = 0;
  CU_ASSERT_EQUAL(linli_owned_each(&o, visit, &v, NULL, 0), 0);
  CU_ASSERT_EQUAL_FATAL(v.n, 3);
  CU_ASSERT_EQUAL(v.p[0], 0);
  CU_ASSERT_EQUAL(v.p[1], 3);
  CU_ASSERT_EQUAL(v.p[2], LINLI_OWNED_MAX - 1);
  /* stops at the first failure and returns it */
  CU_ASSERT_EQUAL(linli_owned_each(&o, fail_at_3, &nv, NULL, 0), -2);
  CU_ASSERT_EQUAL(nv, 2);

  rd_kafka_topic_partition_list_t *r = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(r, "t.v1", 0);
  linli_owned_update(&o, r, 0);
  CU_ASSERT_EQUAL(linli_owned_next(&o, 0), 3);
  rd_kafka_topic_partition_list_destroy(r);
  rd_kafka_topic_partition_list_destroy(l);
}

static void test_hash(void) {
  CU_ASSERT_EQUAL(linli_hash_str(""), UINT64_C(1469598103934665603));
  CU_ASSERT_EQUAL(linli_hash_str("order-1"), UINT64_C(6060019966333146987));
}

static void test_grow(void) {
  int *a = NULL;
  size_t cap = 0;
  a = linli_grow(a, &cap, 1, sizeof *a, 4);
  CU_ASSERT_PTR_NOT_NULL_FATAL(a);
  CU_ASSERT_EQUAL(cap, 4);
  int *same = linli_grow(a, &cap, 4, sizeof *a, 4);
  CU_ASSERT_PTR_EQUAL(same, a);
  a = linli_grow(a, &cap, 9, sizeof *a, 4);
  CU_ASSERT_PTR_NOT_NULL_FATAL(a);
  CU_ASSERT_EQUAL(cap, 16);
  a[15] = 7;
  size_t before = cap;
  CU_ASSERT_PTR_NULL(linli_grow(a, &cap, SIZE_MAX / 2, sizeof *a, 4));
  CU_ASSERT_EQUAL(cap, before);
  CU_ASSERT_PTR_NULL(linli_grow(a, &cap, SIZE_MAX, 1, 4));
  CU_ASSERT_EQUAL(a[15], 7);
  free(a);
}

int linli_test_register(void) {
  CU_pSuite s = CU_add_suite("args_owned", NULL, NULL);
  if (!s)
    return -1;
  CU_add_test(s, "long options", test_args);
  CU_add_test(s, "owned partitions", test_owned);
  CU_add_test(s, "string hash", test_hash);
  CU_add_test(s, "growing array", test_grow);
  return CU_get_error() == CUE_SUCCESS ? 0 : -1;
}
