/*
 * fuzz_common.h - what the libFuzzer targets of tests/fuzz share: the topic
 * a leading byte picks, and a check that aborts (so libFuzzer keeps the
 * input) when an invariant of the parser under test does not hold.
 */
#ifndef LINLI_FUZZ_COMMON_H
#define LINLI_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "domain/schema.h"

#define FUZZ_REQUIRE(cond, what)                                              \
  do {                                                                        \
    if (!(cond)) {                                                            \
      fprintf(stderr, "fuzz: invariant broken: %s (%s:%d)\n", what, __FILE__, \
              __LINE__);                                                      \
      abort();                                                                \
    }                                                                         \
  } while (0)

/* The topic with an envelope that byte b picks (every topic but the DLQ). */
static inline const linli_topic_schema_t *fuzz_topic(uint8_t b) {
  size_t n = 0;
  const linli_topic_schema_t *all = linli_schema_topics(&n);
  size_t with = 0;
  for (size_t i = 0; i < n; i++)
    with += all[i].envelope != NULL;
  size_t want = b % with;
  for (size_t i = 0; i < n; i++)
    if (all[i].envelope != NULL && want-- == 0)
      return &all[i];
  return NULL;
}

#endif
