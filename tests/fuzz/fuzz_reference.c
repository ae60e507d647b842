/*
 * fuzz_reference.c - the router's reference data (warehouses, pickup
 * points, vehicles; docs/delivery.md), read by dom_ref_parse. A refused
 * text gets a "name:line: reason" error; an accepted one has every
 * warehouse findable by its id and its wave cutoffs sorted.
 */
#include <string.h>

#include "domain/wave.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = malloc(size + 1);
  FUZZ_REQUIRE(text != NULL, "memory");
  memcpy(text, data, size);
  text[size] = '\0';
  struct dom_ref ref;
  char err[512] = "";
  if (dom_ref_parse(text, "ref", &ref, err, sizeof err) != 0) {
    FUZZ_REQUIRE(strncmp(err, "ref", 3) == 0, "an error names the input");
    free(text);
    return 0;
  }
  for (size_t i = 0; i < ref.nwh; i++) {
    const struct dom_ref_warehouse *w = &ref.wh[i];
    FUZZ_REQUIRE(dom_ref_warehouse(&ref, w->id) != NULL,
                 "a warehouse is found by its id");
    for (int c = 1; c < w->ncutoffs; c++)
      FUZZ_REQUIRE(w->cutoff_min[c - 1] < w->cutoff_min[c],
                   "cutoffs are sorted");
  }
  dom_ref_free(&ref);
  free(text);
  return 0;
}
