/*
 * hash.c - linli_hash_str (see hash.h).
 */
#include "linli/hash.h"

uint64_t linli_hash_str(const char *s) {
  uint64_t h = UINT64_C(1469598103934665603);
  for (; *s; s++)
    h = (h ^ (unsigned char)*s) * UINT64_C(1099511628211);
  return h;
}
