/*
 * test_reader_views.c - the ledger's tables are read only through views.
 *
 * linli-ledger owns the tables that schemas/sql creates; every other program
 * (the gateway, the reserver, linli-replay, and any later one) asks its
 * questions through the views of schemas/sql/011_reader_views.sql, so a
 * change to a table breaks the view's migration, not a reader at run time.
 *
 * The table list comes from the migrations themselves (every CREATE TABLE in
 * schemas/sql/NNN_*.sql), never from a copy here. Every C string literal of
 * producers/, consumers/ and tools/ (consumers/ledger excepted) is read, the
 * literals of a file joined so that SQL split over several literals is seen
 * whole, and a table named after FROM, JOIN, INTO, UPDATE, TABLE or USING
 * fails the test with the file and line.
 */
#include <CUnit/CUnit.h>
#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "linli_test.h"

#define MAX_NAMES 256
#define NAME_LEN 64

struct names {
  char v[MAX_NAMES][NAME_LEN];
  int n;
};

static struct names tables, views;
static int view_refs; /* references to views found in the readers */

static char *slurp(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  char *buf = NULL;
  size_t len = 0, cap = 0;
  for (;;) {
    if (cap - len < 4096) {
      cap = cap ? cap * 2 : 16384;
      char *nb = realloc(buf, cap + 1);
      if (!nb) {
        free(buf);
        fclose(f);
        return NULL;
      }
      buf = nb;
    }
    size_t n = fread(buf + len, 1, cap - len, f);
    len += n;
    if (n == 0)
      break;
  }
  fclose(f);
  buf[len] = '\0';
  return buf;
}

static int has_name(const struct names *s, const char *name) {
  for (int i = 0; i < s->n; i++)
    if (strcmp(s->v[i], name) == 0)
      return 1;
  return 0;
}

static void add_name(struct names *s, const char *name) {
  if (!has_name(s, name) && s->n < MAX_NAMES)
    snprintf(s->v[s->n++], NAME_LEN, "%s", name);
}

/* Next SQL word of text at *pos, lower-cased into w (identifiers may carry
 * a schema: "public.orders" -> "orders"). Skips blanks, punctuation and
 * double quotes. 0 at the end. */
static int next_word(const char *text, size_t *pos, char *w, size_t wlen) {
  size_t i = *pos;
  while (text[i] && !(isalnum((unsigned char)text[i]) || text[i] == '_'))
    i++;
  if (!text[i]) {
    *pos = i;
    return 0;
  }
  size_t n = 0;
  while (text[i] && (isalnum((unsigned char)text[i]) || text[i] == '_' ||
                     text[i] == '.')) {
    if (text[i] == '.')
      n = 0; /* keep the part after the schema */
    else if (n + 1 < wlen)
      w[n++] = (char)tolower((unsigned char)text[i]);
    i++;
  }
  w[n] = '\0';
  *pos = i;
  return 1;
}

/* SQL text with "-- ..." comments blanked. */
static void strip_sql_comments(char *s) {
  for (char *p = s; *p; p++) {
    if (p[0] == '-' && p[1] == '-')
      while (*p && *p != '\n')
        *p++ = ' ';
    if (!*p)
      break;
  }
}

/* Collect CREATE TABLE and CREATE [OR REPLACE] VIEW names of one file. */
static void scan_migration(const char *path) {
  char *s = slurp(path);
  CU_ASSERT_PTR_NOT_NULL_FATAL(s);
  strip_sql_comments(s);
  size_t pos = 0;
  char w[NAME_LEN], a[NAME_LEN], b[NAME_LEN];
  while (next_word(s, &pos, w, sizeof w)) {
    if (strcmp(w, "create") != 0)
      continue;
    size_t save = pos;
    if (!next_word(s, &pos, a, sizeof a))
      break;
    if (strcmp(a, "or") == 0) { /* OR REPLACE */
      next_word(s, &pos, a, sizeof a);
      next_word(s, &pos, a, sizeof a);
    }
    if (strcmp(a, "temporary") == 0 || strcmp(a, "temp") == 0 ||
        strcmp(a, "unlogged") == 0)
      next_word(s, &pos, a, sizeof a);
    int is_table = strcmp(a, "table") == 0;
    int is_view = strcmp(a, "view") == 0;
    if (!is_table && !is_view) {
      pos = save;
      continue;
    }
    if (!next_word(s, &pos, b, sizeof b))
      break;
    if (strcmp(b, "if") == 0) { /* IF NOT EXISTS */
      next_word(s, &pos, b, sizeof b);
      next_word(s, &pos, b, sizeof b);
      next_word(s, &pos, b, sizeof b);
    }
    add_name(is_table ? &tables : &views, b);
  }
  free(s);
}

static int is_sql_file(const struct dirent *d) {
  size_t n = strlen(d->d_name);
  return n > 4 && strcmp(d->d_name + n - 4, ".sql") == 0;
}

static void load_migrations(void) {
  char dir[4096];
  linli_test_source_path("schemas/sql", dir, sizeof dir);
  struct dirent **list = NULL;
  int n = scandir(dir, &list, is_sql_file, alphasort);
  CU_ASSERT_FATAL(n > 0);
  for (int i = 0; i < n; i++) {
    char path[8192];
    snprintf(path, sizeof path, "%s/%s", dir, list[i]->d_name);
    scan_migration(path);
    free(list[i]);
  }
  free(list);
}

/* The string literals of a C file joined by blanks, and for each byte of
 * the result the source line it came from. Comments and character
 * constants are skipped; escapes are kept as their second character (an
 * escape never spells a table name). */
struct literals {
  char *text;
  int *line;
  size_t len;
};

static int literals_of(const char *src, struct literals *out) {
  size_t cap = strlen(src) + 1;
  out->text = malloc(cap);
  out->line = malloc(cap * sizeof(int));
  out->len = 0;
  if (!out->text || !out->line)
    return -1;
  int line = 1;
  for (const char *p = src; *p; p++) {
    if (*p == '\n') {
      line++;
    } else if (p[0] == '/' && p[1] == '/') {
      while (p[1] && p[1] != '\n')
        p++;
    } else if (p[0] == '/' && p[1] == '*') {
      p += 2;
      while (*p && !(p[0] == '*' && p[1] == '/')) {
        if (*p == '\n')
          line++;
        p++;
      }
      if (!*p)
        break;
      p++;
    } else if (*p == '\'') {
      p++;
      while (*p && *p != '\'') {
        if (*p == '\\' && p[1])
          p++;
        p++;
      }
      if (!*p)
        break;
    } else if (*p == '"') {
      p++;
      while (*p && *p != '"') {
        if (*p == '\\' && p[1])
          p++;
        if (*p == '\n')
          line++;
        out->text[out->len] = *p;
        out->line[out->len++] = line;
        p++;
      }
      out->text[out->len] = ' ';
      out->line[out->len++] = line;
      if (!*p)
        break;
    }
  }
  out->text[out->len] = '\0';
  return 0;
}

/* Count the base tables the literals of src name after a keyword that
 * introduces a relation; report each with file and line (report may be
 * NULL). */
static int base_table_refs(const char *name, const char *src, FILE *report) {
  static const char *const kw[] = {"from", "join",  "into",
                                   "update", "table", "using"};
  struct literals lit;
  if (literals_of(src, &lit) != 0) {
    free(lit.text);
    free(lit.line);
    return -1;
  }
  int bad = 0;
  size_t pos = 0;
  char w[NAME_LEN], rel[NAME_LEN];
  while (next_word(lit.text, &pos, w, sizeof w)) {
    int is_kw = 0;
    for (size_t k = 0; k < sizeof kw / sizeof kw[0]; k++)
      is_kw |= strcmp(w, kw[k]) == 0;
    if (!is_kw)
      continue;
    size_t save = pos;
    if (!next_word(lit.text, &pos, rel, sizeof rel))
      break;
    if (strcmp(rel, "only") == 0 || strcmp(rel, "lateral") == 0)
      next_word(lit.text, &pos, rel, sizeof rel);
    if (has_name(&tables, rel)) {
      if (report)
        fprintf(report,
              "%s:%d: SQL names the ledger's table %s: read it through a "
              "view of schemas/sql (011_reader_views.sql)\n",
              name, lit.line[pos > 0 ? pos - 1 : 0], rel);
      bad++;
    } else if (has_name(&views, rel)) {
      view_refs++;
    }
    pos = save;
  }
  free(lit.text);
  free(lit.line);
  return bad;
}

static int is_source(const char *name) {
  size_t n = strlen(name);
  return n > 2 && name[n - 2] == '.' &&
         (name[n - 1] == 'c' || name[n - 1] == 'h');
}

/* Walk dir (relative to the source tree) and count base-table references,
 * skipping the paths in skip. */
static int scan_tree(const char *rel, const char *const *skip) {
  for (const char *const *s = skip; *s; s++)
    if (strcmp(rel, *s) == 0)
      return 0;
  char dir[4096];
  linli_test_source_path(rel, dir, sizeof dir);
  DIR *d = opendir(dir);
  if (!d)
    return 0;
  int bad = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.')
      continue;
    char sub[4096], path[8192];
    snprintf(sub, sizeof sub, "%s/%s", rel, e->d_name);
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    struct stat st;
    if (stat(path, &st) != 0)
      continue;
    if (S_ISDIR(st.st_mode)) {
      bad += scan_tree(sub, skip);
    } else if (is_source(e->d_name)) {
      char *src = slurp(path);
      CU_ASSERT_PTR_NOT_NULL_FATAL(src);
      bad += base_table_refs(sub, src, stderr);
      free(src);
    }
  }
  closedir(d);
  return bad;
}

static int suite_init(void) {
  tables.n = views.n = 0;
  return 0;
}

/* The list really comes from the migrations. */
static void test_tables_from_migrations(void) {
  load_migrations();
  CU_ASSERT(tables.n >= 10);
  CU_ASSERT(has_name(&tables, "orders"));
  CU_ASSERT(has_name(&tables, "inventory"));
  CU_ASSERT(has_name(&tables, "stock_movements"));
  CU_ASSERT(!has_name(&tables, "gateway_order"));
  CU_ASSERT(has_name(&views, "gateway_order"));
  CU_ASSERT(has_name(&views, "reserver_stock"));
  CU_ASSERT(has_name(&views, "replay_order_state"));
}

/* The scanner sees SQL however the literals are split, and only SQL. */
static int refs(const char *src) { return base_table_refs("t.c", src, NULL); }

static void test_scanner(void) {
  CU_ASSERT_EQUAL(refs("q = \"SELECT a FROM \"\n    \"orders WHERE x\";"), 1);
  CU_ASSERT_EQUAL(refs("\"select 1 from public.Orders\""), 1);
  CU_ASSERT_EQUAL(refs("\"SELECT a FROM gateway_order \" "
                       "\"JOIN inventory USING (x)\""),
                  1);
  CU_ASSERT_EQUAL(refs("\"INSERT INTO payments\""), 1);
  CU_ASSERT_EQUAL(refs("/* FROM orders */ // from orders\n"
                       "x = 'o'; f(\"orders\");"),
                  0);
  CU_ASSERT_EQUAL(refs("\"missing from the record\""), 0);
}

/* The real readers: everything but the ledger, which owns the tables. */
static void test_readers_use_views(void) {
  static const char *const skip[] = {"consumers/ledger", NULL};
  view_refs = 0;
  int bad = scan_tree("producers", skip) + scan_tree("consumers", skip) +
            scan_tree("tools", skip);
  CU_ASSERT_EQUAL(bad, 0);
  /* the gateway, the reserver and the audit do read the record */
  CU_ASSERT(view_refs >= 10);
}

int linli_test_register(void) {
  CU_pSuite s = CU_add_suite("reader_views", suite_init, NULL);
  if (!s)
    return -1;
  CU_add_test(s, "tables come from the migrations",
              test_tables_from_migrations);
  CU_add_test(s, "scanner", test_scanner);
  CU_add_test(s, "readers query only views", test_readers_use_views);
  return CU_get_error() == CUE_SUCCESS ? 0 : -1;
}
