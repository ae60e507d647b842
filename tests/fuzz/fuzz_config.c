/*
 * fuzz_config.c - a configuration file as an operator writes it, read by
 * linli_config_load_string with every program's settings table registered
 * (all_settings.h, as linli-settings check does). A refused file gets a "name:line: key:
 * reason" error; an accepted one holds every integer key within its table's
 * bounds.
 */
#include <string.h>

#include "all_settings.h"
#include "fuzz_common.h"

static const linli_settings_t *const *tables;
static size_t ntables;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  tables = all_settings(&ntables);
  all_settings_register();
  linli_config_strict_sections(1);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = malloc(size + 1);
  FUZZ_REQUIRE(text != NULL, "memory");
  memcpy(text, data, size);
  text[size] = '\0';
  linli_config_t *cfg = NULL;
  char err[1024] = "";
  if (linli_config_load_string(text, "fuzz.conf", &cfg, err, sizeof err) !=
      0) {
    FUZZ_REQUIRE(strncmp(err, "fuzz.conf", 9) == 0,
                 "a refused file is named in its error");
    free(text);
    return 0;
  }
  for (size_t t = 0; t < ntables; t++)
    for (size_t i = 0; i < tables[t]->n; i++) {
      const linli_setting_t *k = &tables[t]->keys[i];
      if (k->type == LINLI_SETTING_INT) {
        int64_t v = linli_config_int(cfg, k->name);
        FUZZ_REQUIRE(v >= k->min && v <= k->max, "an int within its bounds");
      } else if (k->type == LINLI_SETTING_BOOL) {
        int v = linli_config_bool(cfg, k->name);
        FUZZ_REQUIRE(v == 0 || v == 1, "a bool is 0 or 1");
      } else {
        FUZZ_REQUIRE(linli_config_str(cfg, k->name) != NULL,
                     "a string key has a value");
      }
    }
  linli_config_free(cfg);
  free(text);
  return 0;
}
