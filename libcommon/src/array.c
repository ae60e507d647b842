/*
 * array.c - linli_grow (see array.h).
 */
#include <stdint.h>
#include <stdlib.h>

#include "linli/array.h"

void *linli_grow(void *arr, size_t *cap, size_t need, size_t elem,
                 size_t first) {
  if (need <= *cap)
    return arr;
  size_t nc = *cap ? *cap : (first ? first : 1);
  while (nc < need) {
    if (nc > SIZE_MAX / 2)
      return NULL;
    nc *= 2;
  }
  if (elem != 0 && nc > SIZE_MAX / elem)
    return NULL;
  void *na = realloc(arr, nc * elem);
  if (na == NULL)
    return NULL;
  *cap = nc;
  return na;
}
