/*
 * test_args_owned.c - unit tests of the daemons' shared start-up pieces:
 * the long-option parser (values, flags, defaults kept, unknown or
 * incomplete arguments refused) and the owned-partition map (only its
 * topic, only partitions in range, revocation, iteration).
 */
#include <CUnit/CUnit.h>
#include <stdlib.h>
#include <string.h>

#include "linli/args.h"
#include "linli/error.h"
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

  rd_kafka_topic_partition_list_t *r = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(r, "t.v1", 0);
  linli_owned_update(&o, r, 0);
  CU_ASSERT_EQUAL(linli_owned_next(&o, 0), 3);
  rd_kafka_topic_partition_list_destroy(r);
  rd_kafka_topic_partition_list_destroy(l);
}

int linli_test_register(void) {
  CU_pSuite s = CU_add_suite("args_owned", NULL, NULL);
  if (!s)
    return -1;
  CU_add_test(s, "long options", test_args);
  CU_add_test(s, "owned partitions", test_owned);
  return CU_get_error() == CUE_SUCCESS ? 0 : -1;
}
