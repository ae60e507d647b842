/*
 * test_strmap.c - unit tests of linli_strmap (linli/strmap.h): insert and
 * find, values zeroed and stable across growth, the stored key, iteration
 * over every entry once, and the refusals of bad arguments.
 */
#include <CUnit/CUnit.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "linli/error.h"
#include "linli/strmap.h"
#include "linli_test.h"

struct val {
  int64_t n;
  char tag[24];
};

static void test_insert_find(void) {
  linli_strmap_t *m = NULL;
  CU_ASSERT_EQUAL_FATAL(linli_strmap_new(sizeof(struct val), 0, &m), LINLI_OK);
  CU_ASSERT_PTR_NULL(linli_strmap_find(m, "a"));
  int created = -1;
  const char *stored = NULL;
  struct val *a = linli_strmap_get_or_add(m, "a", &created, &stored);
  CU_ASSERT_PTR_NOT_NULL_FATAL(a);
  CU_ASSERT_EQUAL(created, 1);
  CU_ASSERT_STRING_EQUAL(stored, "a");
  CU_ASSERT_EQUAL(a->n, 0);
  CU_ASSERT_EQUAL(a->tag[0], '\0');
  a->n = 7;
  CU_ASSERT_PTR_EQUAL(linli_strmap_get_or_add(m, "a", &created, NULL), a);
  CU_ASSERT_EQUAL(created, 0);
  CU_ASSERT_PTR_EQUAL(linli_strmap_find(m, "a"), a);
  CU_ASSERT_PTR_NULL(linli_strmap_find(m, "b"));
  CU_ASSERT_PTR_NULL(linli_strmap_find(m, ""));
  struct val *e = linli_strmap_get_or_add(m, "", &created, NULL);
  CU_ASSERT_PTR_NOT_NULL(e);
  CU_ASSERT_EQUAL(created, 1);
  CU_ASSERT_EQUAL(linli_strmap_count(m), 2);
  linli_strmap_free(m);
}

/* 10,000 keys from a hint of 4: every value keeps its address and content
 * through the growths, every key is found, iteration sees each once. */
static void test_growth_and_iteration(void) {
  enum { N = 10000 };
  linli_strmap_t *m = NULL;
  CU_ASSERT_EQUAL_FATAL(linli_strmap_new(sizeof(struct val), 4, &m), LINLI_OK);
  struct val **addr = calloc(N, sizeof *addr);
  CU_ASSERT_PTR_NOT_NULL_FATAL(addr);
  char key[32];
  for (int i = 0; i < N; i++) {
    snprintf(key, sizeof key, "order-%d", i);
    addr[i] = linli_strmap_get_or_add(m, key, NULL, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(addr[i]);
    addr[i]->n = i;
  }
  CU_ASSERT_EQUAL(linli_strmap_count(m), N);
  CU_ASSERT(linli_strmap_capacity(m) >= 2 * N);
  int bad = 0;
  for (int i = 0; i < N; i++) {
    snprintf(key, sizeof key, "order-%d", i);
    struct val *v = linli_strmap_find(m, key);
    bad += v != addr[i] || v->n != i;
  }
  CU_ASSERT_EQUAL(bad, 0);
  unsigned char *seen = calloc(N, 1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(seen);
  size_t count = 0;
  for (size_t i = 0; i < linli_strmap_capacity(m); i++) {
    const char *k = NULL;
    struct val *v = linli_strmap_at(m, i, &k);
    if (v == NULL)
      continue;
    count++;
    CU_ASSERT_PTR_NOT_NULL(k);
    if (v->n >= 0 && v->n < N) {
      snprintf(key, sizeof key, "order-%lld", (long long)v->n);
      CU_ASSERT_STRING_EQUAL(k, key);
      seen[v->n]++;
    }
  }
  CU_ASSERT_EQUAL(count, N);
  int once = 0;
  for (int i = 0; i < N; i++)
    once += seen[i] == 1;
  CU_ASSERT_EQUAL(once, N);
  CU_ASSERT_PTR_NULL(linli_strmap_at(m, linli_strmap_capacity(m), NULL));
  free(seen);
  free(addr);
  linli_strmap_free(m);
}

static void test_refusals(void) {
  linli_strmap_t *m = (linli_strmap_t *)&m; /* overwritten with NULL */
  CU_ASSERT_EQUAL(linli_strmap_new(0, 8, &m), LINLI_ERR_INVALID);
  CU_ASSERT_PTR_NULL(m);
  CU_ASSERT_EQUAL(linli_strmap_new(8, 8, NULL), LINLI_ERR_INVALID);
  CU_ASSERT_EQUAL(linli_strmap_new(8, SIZE_MAX, &m), LINLI_ERR_INVALID);
  CU_ASSERT_EQUAL_FATAL(linli_strmap_new(8, 0, &m), LINLI_OK);
  int created = -1;
  CU_ASSERT_PTR_NULL(linli_strmap_get_or_add(m, NULL, &created, NULL));
  CU_ASSERT_EQUAL(created, 0);
  CU_ASSERT_PTR_NULL(linli_strmap_get_or_add(NULL, "k", NULL, NULL));
  CU_ASSERT_PTR_NULL(linli_strmap_find(NULL, "k"));
  CU_ASSERT_PTR_NULL(linli_strmap_find(m, NULL));
  CU_ASSERT_EQUAL(linli_strmap_count(NULL), 0);
  CU_ASSERT_EQUAL(linli_strmap_capacity(NULL), 0);
  CU_ASSERT_PTR_NULL(linli_strmap_at(NULL, 0, NULL));
  linli_strmap_free(m);
  linli_strmap_free(NULL);
}

int linli_test_register(void) {
  CU_pSuite s = CU_add_suite("strmap", NULL, NULL);
  if (!s)
    return -1;
  CU_add_test(s, "insert and find", test_insert_find);
  CU_add_test(s, "growth and iteration", test_growth_and_iteration);
  CU_add_test(s, "bad arguments", test_refusals);
  return CU_get_error() == CUE_SUCCESS ? 0 : -1;
}
