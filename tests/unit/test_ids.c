/*
 * test_ids.c - unit tests of linli ids: new ids are 26-character Crockford
 * base32, strictly increasing in one process (also across threads) and
 * unique; derived ids are deterministic and distinct; id validation.
 */
#include <CUnit/CUnit.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "linli/clock.h"
#include "linli/error.h"
#include "linli/ids.h"
#include "linli_test.h"

#define N 10000

static int is_crockford(char c) {
  return strchr("0123456789ABCDEFGHJKMNPQRSTVWXYZ", c) != NULL && c != '\0';
}

static int cmp_str(const void *a, const void *b) {
  return strcmp((const char *)a, (const char *)b);
}

static void test_format(void) {
  char id[LINLI_ID_BUFSZ];
  CU_ASSERT_EQUAL_FATAL(linli_id_new(id, sizeof(id)), 0);
  CU_ASSERT_EQUAL(strlen(id), 26);
  for (int i = 0; i < 26; i++)
    CU_ASSERT(is_crockford(id[i]));
  CU_ASSERT(id[0] <= '7'); /* 128 bits in 130: the top character is < 8 */
  CU_ASSERT(linli_id_valid(id));
  /* a 27-byte buffer is enough, 26 is not */
  char small[27];
  CU_ASSERT_EQUAL(linli_id_new(small, sizeof(small)), 0);
  CU_ASSERT_EQUAL(linli_id_new(small, 26), LINLI_ERR_INVALID);
  CU_ASSERT_EQUAL(linli_id_new(NULL, 27), LINLI_ERR_INVALID);
}

static void test_time_prefix(void) {
  /* The first 10 characters encode the (fake) clock's milliseconds; the
   * time is later than the real clock, which earlier ids already used. */
  linli_clock_set_fake(5000000000123LL);
  char a[LINLI_ID_BUFSZ], b[LINLI_ID_BUFSZ];
  CU_ASSERT_EQUAL(linli_id_new(a, sizeof(a)), 0);
  linli_clock_advance(1);
  CU_ASSERT_EQUAL(linli_id_new(b, sizeof(b)), 0);
  linli_clock_set_fake(-1);
  /* 5000000000123 in Crockford base32, 10 digits */
  const char *alpha = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
  char want[11];
  long long v = 5000000000123LL;
  for (int i = 9; i >= 0; i--) {
    want[i] = alpha[v & 31];
    v >>= 5;
  }
  want[10] = '\0';
  CU_ASSERT_NSTRING_EQUAL(a, want, 10);
  CU_ASSERT(strcmp(a, b) < 0);
  CU_ASSERT(strncmp(a, b, 10) < 0);
}

static void test_monotonic_unique(void) {
  char(*ids)[LINLI_ID_BUFSZ] = malloc(sizeof(*ids) * N);
  CU_ASSERT_PTR_NOT_NULL_FATAL(ids);
  for (int i = 0; i < N; i++)
    CU_ASSERT_EQUAL_FATAL(linli_id_new(ids[i], sizeof(ids[i])), 0);
  int ordered = 1;
  for (int i = 1; i < N; i++)
    if (strcmp(ids[i - 1], ids[i]) >= 0)
      ordered = 0;
  CU_ASSERT(ordered); /* strictly increasing implies unique */
  free(ids);
}

static void test_clock_backwards(void) {
  char a[LINLI_ID_BUFSZ], b[LINLI_ID_BUFSZ];
  linli_clock_set_fake(6000000000000LL);
  CU_ASSERT_EQUAL(linli_id_new(a, sizeof(a)), 0);
  linli_clock_set_fake(5500000000000LL); /* steps back */
  CU_ASSERT_EQUAL(linli_id_new(b, sizeof(b)), 0);
  linli_clock_set_fake(-1);
  CU_ASSERT(strcmp(a, b) < 0);
}

#define NTH 4
#define PER 2500
static char thread_ids[NTH][PER][LINLI_ID_BUFSZ];

static void *gen(void *arg) {
  char(*mine)[LINLI_ID_BUFSZ] = arg;
  for (int i = 0; i < PER; i++)
    if (linli_id_new(mine[i], LINLI_ID_BUFSZ) != 0)
      mine[i][0] = '\0';
  return NULL;
}

static void test_threads_unique(void) {
  pthread_t th[NTH];
  for (int t = 0; t < NTH; t++)
    pthread_create(&th[t], NULL, gen, thread_ids[t]);
  for (int t = 0; t < NTH; t++)
    pthread_join(th[t], NULL);
  int ordered = 1;
  for (int t = 0; t < NTH; t++)
    for (int i = 1; i < PER; i++)
      if (strcmp(thread_ids[t][i - 1], thread_ids[t][i]) >= 0)
        ordered = 0;
  CU_ASSERT(ordered); /* each thread sees increasing ids */
  char(*all)[LINLI_ID_BUFSZ] = malloc(sizeof(thread_ids));
  CU_ASSERT_PTR_NOT_NULL_FATAL(all);
  memcpy(all, thread_ids, sizeof(thread_ids));
  qsort(all, NTH * PER, LINLI_ID_BUFSZ, cmp_str);
  int dups = 0;
  for (int i = 1; i < NTH * PER; i++)
    if (strcmp(all[i - 1], all[i]) == 0)
      dups++;
  CU_ASSERT_EQUAL(dups, 0);
  CU_ASSERT_EQUAL(strlen(all[0]), 26);
  free(all);
}

static void test_derive(void) {
  char a[LINLI_ID_BUFSZ], b[LINLI_ID_BUFSZ];
  CU_ASSERT_EQUAL(linli_id_derive("linli.orders.v1", 3, 42, 0, a, sizeof(a)), 0);
  CU_ASSERT_EQUAL(linli_id_derive("linli.orders.v1", 3, 42, 0, b, sizeof(b)), 0);
  CU_ASSERT_STRING_EQUAL(a, b);
  CU_ASSERT(linli_id_valid(a));
  /* "d" + 16 hex of FNV-1a 64 of the topic + "-3-42-0" */
  CU_ASSERT_EQUAL(strlen(a), 1 + 16 + strlen("-3-42-0"));
  CU_ASSERT_EQUAL(a[0], 'd');
  CU_ASSERT_STRING_EQUAL(a + 17, "-3-42-0");
  /* known FNV-1a 64 value: "a" -> af63dc4c8601ec8c */
  CU_ASSERT_EQUAL(linli_id_derive("a", 0, 0, 0, a, sizeof(a)), 0);
  CU_ASSERT_STRING_EQUAL(a, "daf63dc4c8601ec8c-0-0-0");

  /* every input field changes the id */
  const char *variants[5];
  char buf[5][LINLI_ID_BUFSZ];
  CU_ASSERT_EQUAL(linli_id_derive("t1", 0, 1, 0, buf[0], LINLI_ID_BUFSZ), 0);
  CU_ASSERT_EQUAL(linli_id_derive("t2", 0, 1, 0, buf[1], LINLI_ID_BUFSZ), 0);
  CU_ASSERT_EQUAL(linli_id_derive("t1", 1, 1, 0, buf[2], LINLI_ID_BUFSZ), 0);
  CU_ASSERT_EQUAL(linli_id_derive("t1", 0, 2, 0, buf[3], LINLI_ID_BUFSZ), 0);
  CU_ASSERT_EQUAL(linli_id_derive("t1", 0, 1, 1, buf[4], LINLI_ID_BUFSZ), 0);
  for (int i = 0; i < 5; i++)
    variants[i] = buf[i];
  for (int i = 0; i < 5; i++)
    for (int j = i + 1; j < 5; j++)
      CU_ASSERT(strcmp(variants[i], variants[j]) != 0);
  /* (partition 1, offset 11) and (partition 11, offset 1) differ */
  CU_ASSERT_EQUAL(linli_id_derive("t", 1, 11, 0, a, sizeof(a)), 0);
  CU_ASSERT_EQUAL(linli_id_derive("t", 11, 1, 0, b, sizeof(b)), 0);
  CU_ASSERT(strcmp(a, b) != 0);

  /* largest values still fit and are valid ids */
  CU_ASSERT_EQUAL(linli_id_derive("t", INT32_MAX, INT64_MAX, 2147483647, a,
                                  sizeof(a)), 0);
  CU_ASSERT(linli_id_valid(a));

  /* bad input */
  CU_ASSERT_EQUAL(linli_id_derive(NULL, 0, 0, 0, a, sizeof(a)), LINLI_ERR_INVALID);
  CU_ASSERT_EQUAL(linli_id_derive("", 0, 0, 0, a, sizeof(a)), LINLI_ERR_INVALID);
  CU_ASSERT_EQUAL(linli_id_derive("t", -1, 0, 0, a, sizeof(a)), LINLI_ERR_INVALID);
  CU_ASSERT_EQUAL(linli_id_derive("t", 0, -1, 0, a, sizeof(a)), LINLI_ERR_INVALID);
  CU_ASSERT_EQUAL(linli_id_derive("t", 0, 0, -1, a, sizeof(a)), LINLI_ERR_INVALID);
  CU_ASSERT_EQUAL(linli_id_derive("t", 0, 0, 0, a, 20), LINLI_ERR_INVALID);
}

/* Derived from the input event's own id: deterministic, valid, distinct per
 * event and per index; a recreated topic (same topic, partition, offset,
 * new events) cannot reuse an id, because the events' ids differ. */
static void test_derive_event(void) {
  char a[LINLI_ID_BUFSZ], b[LINLI_ID_BUFSZ];
  CU_ASSERT_EQUAL(linli_id_derive_event("01JABCDEF", 0, a, sizeof a), 0);
  CU_ASSERT_EQUAL(linli_id_derive_event("01JABCDEF", 0, b, sizeof b), 0);
  CU_ASSERT_STRING_EQUAL(a, b);
  CU_ASSERT(linli_id_valid(a));
  CU_ASSERT_EQUAL(a[0], 'e');
  CU_ASSERT_EQUAL(strlen(a), 1 + 32 + 2);
  CU_ASSERT_EQUAL(linli_id_derive_event("01JABCDEF", 1, b, sizeof b), 0);
  CU_ASSERT(strcmp(a, b) != 0);
  CU_ASSERT_EQUAL(linli_id_derive_event("01JABCDEG", 0, b, sizeof b), 0);
  CU_ASSERT(strcmp(a, b) != 0);

  /* The old stack and the recreated one: the same positions, new events.
   * Position-derived ids repeat; event-derived ones do not. */
  char old_pos[LINLI_ID_BUFSZ], new_pos[LINLI_ID_BUFSZ];
  CU_ASSERT_EQUAL(linli_id_derive("linli.orders.v1", 2, 7, 1, old_pos,
                                  sizeof old_pos), 0);
  CU_ASSERT_EQUAL(linli_id_derive("linli.orders.v1", 2, 7, 1, new_pos,
                                  sizeof new_pos), 0);
  CU_ASSERT_STRING_EQUAL(old_pos, new_pos);
  char old_ev[LINLI_ID_BUFSZ], new_ev[LINLI_ID_BUFSZ], eid[LINLI_ID_BUFSZ];
  CU_ASSERT_EQUAL(linli_id_new(eid, sizeof eid), 0);
  CU_ASSERT_EQUAL(linli_id_derive_event(eid, 1, old_ev, sizeof old_ev), 0);
  CU_ASSERT_EQUAL(linli_id_new(eid, sizeof eid), 0);
  CU_ASSERT_EQUAL(linli_id_derive_event(eid, 1, new_ev, sizeof new_ev), 0);
  CU_ASSERT(strcmp(old_ev, new_ev) != 0);

  /* 10,000 event ids x 3 indexes: no two derived ids equal. */
  size_t n = 30000;
  char(*all)[LINLI_ID_BUFSZ] = calloc(n, sizeof *all);
  CU_ASSERT_FATAL(all != NULL);
  for (size_t i = 0; i < n; i++) {
    char e[32];
    snprintf(e, sizeof e, "ev%zu", i / 3);
    CU_ASSERT_EQUAL(linli_id_derive_event(e, (int)(i % 3), all[i],
                                          LINLI_ID_BUFSZ), 0);
  }
  qsort(all, n, sizeof *all, (int (*)(const void *, const void *))strcmp);
  size_t dups = 0;
  for (size_t i = 1; i < n; i++)
    dups += strcmp(all[i - 1], all[i]) == 0;
  CU_ASSERT_EQUAL(dups, 0);
  free(all);

  CU_ASSERT_EQUAL(linli_id_derive_event("e", 2147483647, a, sizeof a), 0);
  CU_ASSERT(linli_id_valid(a));
  CU_ASSERT_EQUAL(linli_id_derive_event("", 0, a, sizeof a), LINLI_ERR_INVALID);
  CU_ASSERT_EQUAL(linli_id_derive_event(NULL, 0, a, sizeof a),
                  LINLI_ERR_INVALID);
  CU_ASSERT_EQUAL(linli_id_derive_event("e", -1, a, sizeof a),
                  LINLI_ERR_INVALID);
  CU_ASSERT_EQUAL(linli_id_derive_event("e", 0, a, 20), LINLI_ERR_INVALID);
}

static void test_valid(void) {
  char s[80];
  CU_ASSERT_FALSE(linli_id_valid(NULL));
  CU_ASSERT_FALSE(linli_id_valid(""));
  CU_ASSERT_TRUE(linli_id_valid("a"));
  CU_ASSERT_TRUE(linli_id_valid("Order_42-x"));
  memset(s, 'a', 64);
  s[64] = '\0';
  CU_ASSERT_TRUE(linli_id_valid(s)); /* 64 */
  s[64] = 'a';
  s[65] = '\0';
  CU_ASSERT_FALSE(linli_id_valid(s)); /* 65 */
  CU_ASSERT_FALSE(linli_id_valid("a b"));
  CU_ASSERT_FALSE(linli_id_valid("a.b"));
  CU_ASSERT_FALSE(linli_id_valid("a/b"));
  CU_ASSERT_FALSE(linli_id_valid("a:b"));
  CU_ASSERT_FALSE(linli_id_valid("{w:1}"));
  CU_ASSERT_FALSE(linli_id_valid("caf\xc3\xa9"));
  CU_ASSERT_FALSE(linli_id_valid("a\n"));
}

int linli_test_register(void) {
  CU_pSuite s = CU_add_suite("ids", NULL, NULL);
  if (!s)
    return -1;
  CU_add_test(s, "format", test_format);
  CU_add_test(s, "time prefix", test_time_prefix);
  CU_add_test(s, "monotonic and unique over 10k", test_monotonic_unique);
  CU_add_test(s, "clock going backwards", test_clock_backwards);
  CU_add_test(s, "threads unique", test_threads_unique);
  CU_add_test(s, "derive", test_derive);
  CU_add_test(s, "derive from the event id", test_derive_event);
  CU_add_test(s, "valid", test_valid);
  return CU_get_error() == CUE_SUCCESS ? 0 : -1;
}
