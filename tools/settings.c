/*
 * settings.c - linli-settings: every program's configuration keys in one
 * place, for people and for CI.
 *
 *   linli-settings list                 one docs/config.md row per key
 *   linli-settings check FILE...        load each file with every program's
 *                                       table and unknown sections refused
 *   linli-settings check-docs DOC       every key has a row in DOC with its
 *                                       type, default and bounds, and every
 *                                       row names a key
 *
 * Each program registers only its own tables, so at run time a section no
 * table of that program owns is skipped as another program's; this tool is
 * where a whole shared file is checked, typos in section names included.
 * all_settings.c (tools/lib) is the one place that knows every program; a
 * new program adds its table there, and check-docs (a ctest) then demands
 * its docs.
 *
 * Exit status: 0 all good, 1 a file or the docs disagree, 2 usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/all_settings.h"
#include "linli/config.h"
#include "linli/error.h"

/* Every program's table (all_settings.h), libcommon's first. */
static const linli_settings_t *const *tables;
static size_t ntables;

static const char *type_name(linli_setting_type_t t) {
  switch (t) {
  case LINLI_SETTING_STR:
    return "string";
  case LINLI_SETTING_INT:
    return "int";
  case LINLI_SETTING_BOOL:
    return "bool";
  }
  return "?";
}

/* The default as docs/config.md writes it. */
static void default_text(const linli_setting_t *k, char *buf, size_t len) {
  if (*k->def == '\0')
    snprintf(buf, len, "(empty)");
  else
    snprintf(buf, len, "`%s`", k->def);
}

static int cmd_list(void) {
  printf("| key | type | default | bounds / values | meaning |\n");
  printf("|---|---|---|---|---|\n");
  for (size_t t = 0; t < ntables; t++) {
    for (size_t i = 0; i < tables[t]->n; i++) {
      const linli_setting_t *k = &tables[t]->keys[i];
      char def[256], bounds[64] = "";
      default_text(k, def, sizeof def);
      if (k->type == LINLI_SETTING_INT)
        snprintf(bounds, sizeof bounds, "%lld..%lld", (long long)k->min,
                 (long long)k->max);
      printf("| `%s` | %s | %s | %s | %s |\n", k->name, type_name(k->type),
             def, bounds, k->desc);
    }
  }
  return 0;
}


static int cmd_check(int argc, char **argv) {
  all_settings_register();
  linli_config_strict_sections(1);
  int bad = 0;
  for (int i = 0; i < argc; i++) {
    char err[1024];
    linli_config_t *cfg = NULL;
    if (linli_config_load(argv[i], &cfg, err, sizeof err) != LINLI_OK) {
      fprintf(stderr, "%s\n", err);
      bad = 1;
      continue;
    }
    linli_config_free(cfg);
  }
  return bad;
}

/* One row of the docs' key table: its cells, trimmed, in place. */
struct row {
  char *cell[5];
  int line;
};

static int split_row(char *line, struct row *r) {
  if (strncmp(line, "| `", 3) != 0)
    return 0;
  char *p = line + 1;
  for (int c = 0; c < 5; c++) {
    char *bar = strchr(p, '|');
    if (!bar)
      return 0;
    *bar = '\0';
    while (*p == ' ')
      p++;
    char *end = bar;
    while (end > p && end[-1] == ' ')
      *--end = '\0';
    r->cell[c] = p;
    p = bar + 1;
  }
  return 1;
}

static const linli_setting_t *find_key(const char *name) {
  for (size_t t = 0; t < ntables; t++)
    for (size_t i = 0; i < tables[t]->n; i++)
      if (strcmp(tables[t]->keys[i].name, name) == 0)
        return &tables[t]->keys[i];
  return NULL;
}

static int cmd_check_docs(const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) {
    perror(path);
    return 1;
  }
  size_t nkeys = 0;
  for (size_t t = 0; t < ntables; t++)
    nkeys += tables[t]->n;
  const linli_setting_t **documented = calloc(nkeys, sizeof(*documented));
  if (!documented) {
    fclose(f);
    fprintf(stderr, "out of memory\n");
    return 1;
  }
  size_t ndoc = 0;
  int bad = 0, lineno = 0;
  char line[4096];
  while (fgets(line, sizeof line, f)) {
    lineno++;
    struct row r;
    if (!split_row(line, &r))
      continue;
    char name[256];
    size_t n = strlen(r.cell[0]);
    if (n < 2 || r.cell[0][n - 1] != '`') {
      fprintf(stderr, "%s:%d: key cell %s is not `section.key`\n", path,
              lineno, r.cell[0]);
      bad = 1;
      continue;
    }
    snprintf(name, sizeof name, "%.*s", (int)(n - 2), r.cell[0] + 1);
    const linli_setting_t *k = find_key(name);
    if (!k) {
      fprintf(stderr, "%s:%d: %s: documented but no program's table has it\n",
              path, lineno, name);
      bad = 1;
      continue;
    }
    for (size_t d = 0; d < ndoc; d++) {
      if (documented[d] == k) {
        fprintf(stderr, "%s:%d: %s: documented twice\n", path, lineno, name);
        bad = 1;
      }
    }
    if (ndoc < nkeys)
      documented[ndoc++] = k;
    if (strcmp(r.cell[1], type_name(k->type)) != 0) {
      fprintf(stderr, "%s:%d: %s: type is %s, docs say %s\n", path, lineno,
              name, type_name(k->type), r.cell[1]);
      bad = 1;
    }
    char def[256];
    default_text(k, def, sizeof def);
    if (strcmp(r.cell[2], def) != 0) {
      fprintf(stderr, "%s:%d: %s: default is %s, docs say %s\n", path, lineno,
              name, def, r.cell[2]);
      bad = 1;
    }
    if (k->type == LINLI_SETTING_INT) {
      char bounds[64];
      snprintf(bounds, sizeof bounds, "%lld..%lld", (long long)k->min,
               (long long)k->max);
      if (strncmp(r.cell[3], bounds, strlen(bounds)) != 0) {
        fprintf(stderr, "%s:%d: %s: bounds are %s, docs say %s\n", path,
                lineno, name, bounds, r.cell[3]);
        bad = 1;
      }
    }
    if (*r.cell[4] == '\0') {
      fprintf(stderr, "%s:%d: %s: no meaning given\n", path, lineno, name);
      bad = 1;
    }
  }
  fclose(f);
  for (size_t t = 0; t < ntables; t++) {
    for (size_t i = 0; i < tables[t]->n; i++) {
      const linli_setting_t *k = &tables[t]->keys[i];
      int found = 0;
      for (size_t d = 0; d < ndoc && !found; d++)
        found = documented[d] == k;
      if (!found) {
        fprintf(stderr, "%s: %s (%s) is not documented; add its row (see "
                        "linli-settings list)\n",
                path, k->name, tables[t]->owner);
        bad = 1;
      }
    }
  }
  free(documented);
  return bad;
}

static void usage(void) {
  fprintf(stderr, "usage: linli-settings list\n"
                  "       linli-settings check FILE...\n"
                  "       linli-settings check-docs DOC\n");
}

int main(int argc, char **argv) {
  tables = all_settings(&ntables);
  if (argc == 2 && strcmp(argv[1], "list") == 0)
    return cmd_list();
  if (argc >= 3 && strcmp(argv[1], "check") == 0)
    return cmd_check(argc - 2, argv + 2);
  if (argc == 3 && strcmp(argv[1], "check-docs") == 0)
    return cmd_check_docs(argv[2]);
  usage();
  return 2;
}
