/*
 * array.h - growing a malloc'd array by doubling, with the size
 * arithmetic checked, for the many "append one more" lists of the
 * consumers.
 */
#ifndef LINLI_ARRAY_H
#define LINLI_ARRAY_H

#include <stddef.h>

/*
 * Make arr (elem bytes per element, *cap of them allocated) hold at least
 * need elements: unchanged when it already does, else reallocated to the
 * next doubling of *cap (first when *cap is 0). Returns the array to use
 * (store it back) with *cap updated, or NULL when memory or size_t runs
 * out: arr and *cap are then untouched (still owned by the caller).
 */
void *linli_grow(void *arr, size_t *cap, size_t need, size_t elem,
                 size_t first);

#endif
