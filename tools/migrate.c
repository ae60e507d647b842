/*
 * migrate.c - linli-migrate: brings the PostgreSQL record up to date with
 * the numbered migrations in schemas/sql (NNN_name.sql).
 *
 * Each pending file runs in its own transaction together with its row in
 * schema_migrations (version = file name without ".sql", checksum = SHA-256
 * of the file), so a migration is either applied and recorded or not at
 * all. A session advisory lock serialises concurrent runs (two deploys
 * starting at once: the second waits, then finds nothing to do). Applied
 * files are verified against their recorded checksum before anything runs:
 * an edited migration is an error naming the file, never silently skipped.
 *
 *   linli-migrate [--config FILE] [--dir DIR] [--status]
 *
 * The connection string is the config key pg.conninfo (environment
 * LINLI_PG_CONNINFO overrides it). The directory is --dir, else
 * $LINLI_SQL_DIR, else schemas/sql relative to the working directory.
 * Exit status: 0 success, 1 a migration failed or an applied one changed,
 * 2 usage, configuration or connection error.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>
#include <sodium.h>

#include "linli/config.h"
#include "linli/error.h"

#define PROG "linli-migrate"
/* A migration file larger than this is a mistake (a data dump?). */
#define MAX_FILE_BYTES (16u * 1024u * 1024u)
#define CHECKSUM_HEX (crypto_hash_sha256_BYTES * 2 + 1)
/* Advisory lock key shared by every linli-migrate ("linli" in ASCII). */
#define LOCK_SQL "SELECT pg_advisory_lock(465558088809)"
#define UNLOCK_SQL "SELECT pg_advisory_unlock(465558088809)"

enum { EXIT_MIGRATION = 1, EXIT_SETUP = 2 };

typedef struct migration {
  char *file;                   /* "001_base.sql" */
  char *version;                /* "001_base" */
  char *sql;                    /* file contents, NUL-terminated */
  char checksum[CHECKSUM_HEX];  /* hex SHA-256 of the contents */
  int applied;                  /* recorded in schema_migrations */
  char applied_at[64];          /* when, as PostgreSQL prints it */
  int changed;                  /* applied, but checksum differs */
} migration_t;

typedef struct migration_set {
  migration_t *v;
  size_t n;
} migration_set_t;

/* ------------------------------------------------------------- files */

static void set_free(migration_set_t *s) {
  for (size_t i = 0; i < s->n; i++) {
    free(s->v[i].file);
    free(s->v[i].version);
    free(s->v[i].sql);
  }
  free(s->v);
  s->v = NULL;
  s->n = 0;
}

/* NNN_name.sql: one or more digits, '_', at least one more character. */
static int is_migration_name(const char *name) {
  size_t len = strlen(name);
  size_t digits = 0;
  while (name[digits] >= '0' && name[digits] <= '9')
    digits++;
  return digits > 0 && name[digits] == '_' && len > digits + 1 + 4 &&
         strcmp(name + len - 4, ".sql") == 0;
}

static int has_sql_suffix(const char *name) {
  size_t len = strlen(name);
  return len >= 4 && strcmp(name + len - 4, ".sql") == 0;
}

static char *path_join(const char *dir, const char *file) {
  size_t len = strlen(dir) + 1 + strlen(file) + 1;
  char *p = malloc(len);
  if (p != NULL)
    snprintf(p, len, "%s/%s", dir, file);
  return p;
}

/* Read a whole file into a NUL-terminated buffer (*out owned by caller). */
static int read_file(const char *path, char **out, size_t *outlen, char *err,
                     size_t errlen) {
  *out = NULL;
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    return LINLI_ERR_NOTFOUND;
  }
  size_t cap = 8192, len = 0;
  char *buf = malloc(cap);
  if (buf == NULL)
    goto nomem;
  for (;;) {
    if (len + 1 >= cap) {
      if (cap >= MAX_FILE_BYTES) {
        snprintf(err, errlen, "%s: larger than %u bytes", path,
                 MAX_FILE_BYTES);
        free(buf);
        fclose(f);
        return LINLI_ERR_TOOBIG;
      }
      char *nb = realloc(buf, cap * 2);
      if (nb == NULL)
        goto nomem;
      buf = nb;
      cap *= 2;
    }
    size_t got = fread(buf + len, 1, cap - len - 1, f);
    len += got;
    if (got == 0)
      break;
  }
  if (ferror(f)) {
    snprintf(err, errlen, "%s: read error", path);
    free(buf);
    fclose(f);
    return LINLI_ERR_TRANSIENT;
  }
  fclose(f);
  buf[len] = '\0';
  if (memchr(buf, '\0', len) != NULL) {
    snprintf(err, errlen, "%s: contains a NUL byte (not SQL text)", path);
    free(buf);
    return LINLI_ERR_INVALID;
  }
  *out = buf;
  *outlen = len;
  return LINLI_OK;
nomem:
  free(buf);
  fclose(f);
  snprintf(err, errlen, "%s: out of memory", path);
  return LINLI_ERR_NOMEM;
}

static void sha256_hex(const char *data, size_t len, char hex[CHECKSUM_HEX]) {
  unsigned char h[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(h, (const unsigned char *)data, len);
  sodium_bin2hex(hex, CHECKSUM_HEX, h, sizeof(h));
}

static int cmp_name(const void *a, const void *b) {
  return strcmp(((const migration_t *)a)->file, ((const migration_t *)b)->file);
}

/* Load every NNN_name.sql of dir, sorted by file name. A *.sql file that
 * does not follow the naming rule, or two files with the same number, are
 * errors: the order of migrations must be unambiguous. */
static int load_dir(const char *dir, migration_set_t *set, char *err,
                    size_t errlen) {
  set->v = NULL;
  set->n = 0;
  DIR *d = opendir(dir);
  if (d == NULL) {
    snprintf(err, errlen, "%s: %s", dir, strerror(errno));
    return LINLI_ERR_NOTFOUND;
  }
  int rc = LINLI_OK;
  size_t cap = 0;
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    const char *name = de->d_name;
    if (name[0] == '.' || !has_sql_suffix(name))
      continue;
    if (!is_migration_name(name)) {
      snprintf(err, errlen,
               "%s/%s: not a migration name (expected NNN_name.sql)", dir,
               name);
      rc = LINLI_ERR_INVALID;
      goto out;
    }
    if (set->n == cap) {
      size_t ncap = cap ? cap * 2 : 16;
      migration_t *nv = realloc(set->v, ncap * sizeof(*nv));
      if (nv == NULL) {
        rc = LINLI_ERR_NOMEM;
        snprintf(err, errlen, "out of memory");
        goto out;
      }
      set->v = nv;
      cap = ncap;
    }
    migration_t *m = &set->v[set->n];
    memset(m, 0, sizeof(*m));
    set->n++;
    m->file = strdup(name);
    m->version = strndup(name, strlen(name) - 4);
    char *path = path_join(dir, name);
    if (m->file == NULL || m->version == NULL || path == NULL) {
      free(path);
      rc = LINLI_ERR_NOMEM;
      snprintf(err, errlen, "out of memory");
      goto out;
    }
    size_t len = 0;
    rc = read_file(path, &m->sql, &len, err, errlen);
    free(path);
    if (rc != LINLI_OK)
      goto out;
    sha256_hex(m->sql, len, m->checksum);
  }
  if (set->n > 0)
    qsort(set->v, set->n, sizeof(*set->v), cmp_name);
  for (size_t i = 1; i < set->n; i++) {
    size_t a = strspn(set->v[i - 1].file, "0123456789");
    size_t b = strspn(set->v[i].file, "0123456789");
    if (a == b && strncmp(set->v[i - 1].file, set->v[i].file, a) == 0) {
      snprintf(err, errlen, "%s/%s and %s share the number %.*s", dir,
               set->v[i - 1].file, set->v[i].file, (int)a, set->v[i].file);
      rc = LINLI_ERR_INVALID;
      goto out;
    }
  }
out:
  closedir(d);
  if (rc != LINLI_OK)
    set_free(set);
  return rc;
}

/* ------------------------------------------------------------ database */

/* Run constant SQL that must succeed; err gets the server's message. */
static int exec_ok(PGconn *conn, const char *sql, char *err, size_t errlen) {
  PGresult *res = PQexec(conn, sql);
  ExecStatusType st = PQresultStatus(res);
  int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
  if (!ok)
    snprintf(err, errlen, "%s", PQerrorMessage(conn));
  PQclear(res);
  return ok ? LINLI_OK : LINLI_ERR_INVALID;
}

/* Trailing newline off a libpq message, for one-line output. */
static void chomp(char *s) {
  size_t len = strlen(s);
  while (len > 0 && (s[len - 1] == '\n' || s[len - 1] == ' '))
    s[--len] = '\0';
}

/* Line number (1-based) of a character position (1-based) in text. */
static int line_of(const char *text, long pos) {
  int line = 1;
  for (long i = 0; i < pos - 1 && text[i] != '\0'; i++)
    if (text[i] == '\n')
      line++;
  return line;
}

static const char create_table_sql[] =
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version text PRIMARY KEY,"
    " checksum text NOT NULL,"
    " applied_at timestamptz NOT NULL DEFAULT now())";

/* Mark which migrations are applied (and changed). Rows of schema_migrations
 * without a file are reported as warnings: the directory may be older than
 * the database (a rollback of the binary), which is not this run's error. */
static int read_applied(PGconn *conn, migration_set_t *set, int *orphans,
                        char *err, size_t errlen) {
  *orphans = 0;
  PGresult *res = PQexec(conn,
                         "SELECT version, checksum, applied_at::text"
                         " FROM schema_migrations ORDER BY version");
  if (PQresultStatus(res) != PGRES_TUPLES_OK) {
    snprintf(err, errlen, "reading schema_migrations: %s",
             PQerrorMessage(conn));
    chomp(err);
    PQclear(res);
    return LINLI_ERR_INVALID;
  }
  for (int r = 0; r < PQntuples(res); r++) {
    const char *version = PQgetvalue(res, r, 0);
    const char *checksum = PQgetvalue(res, r, 1);
    int found = 0;
    for (size_t i = 0; i < set->n; i++) {
      migration_t *m = &set->v[i];
      if (strcmp(m->version, version) != 0)
        continue;
      found = 1;
      m->applied = 1;
      m->changed = strcmp(m->checksum, checksum) != 0;
      snprintf(m->applied_at, sizeof(m->applied_at), "%s",
               PQgetvalue(res, r, 2));
    }
    if (!found) {
      fprintf(stderr,
              PROG ": warning: migration %s is applied but has no file in "
                   "the directory\n",
              version);
      (*orphans)++;
    }
  }
  PQclear(res);
  return LINLI_OK;
}

/*
 * A migration must not control the transaction itself: its effects would be
 * committed apart from its schema_migrations row. Catch the usual mistake
 * (a line that is just "BEGIN;" or "COMMIT;") before anything runs; PL/pgSQL
 * block keywords ("BEGIN" without ';', "END;") are not matched. The check
 * after execution catches the rest.
 */
static int find_txn_control(const char *sql) {
  static const char *const banned[] = {
      "begin;",           "begin work;",        "begin transaction;",
      "start transaction;", "commit;",          "commit work;",
      "commit transaction;", "end work;",       "end transaction;",
      "rollback;",        "rollback work;",     "rollback transaction;",
      "abort;",
  };
  int line = 1;
  const char *p = sql;
  while (*p != '\0') {
    const char *eol = strchr(p, '\n');
    size_t len = eol ? (size_t)(eol - p) : strlen(p);
    char buf[32];
    size_t n = 0;
    int in_space = 0;
    /* Lower-cased, runs of blanks collapsed, leading/trailing trimmed. */
    /* Longer lines cannot match: stop with room for a space, a char and
     * the NUL. */
    for (size_t i = 0; i < len && n + 2 < sizeof(buf); i++) {
      char ch = p[i];
      if (ch == ' ' || ch == '\t' || ch == '\r') {
        in_space = n > 0;
        continue;
      }
      if (in_space && ch != ';')
        buf[n++] = ' ';
      in_space = 0;
      buf[n++] = (ch >= 'A' && ch <= 'Z') ? (char)(ch - 'A' + 'a') : ch;
    }
    buf[n] = '\0';
    for (size_t k = 0; k < sizeof(banned) / sizeof(banned[0]); k++)
      if (strcmp(buf, banned[k]) == 0)
        return line;
    if (eol == NULL)
      break;
    p = eol + 1;
    line++;
  }
  return 0;
}

/* Apply one migration and record it, in one transaction. */
static int apply_one(PGconn *conn, const migration_t *m, char *err,
                     size_t errlen) {
  char why[1024];
  int line = find_txn_control(m->sql);
  if (line > 0) {
    snprintf(err, errlen,
             "%s:%d: transaction control in a migration (linli-migrate runs "
             "each file in its own transaction; remove BEGIN/COMMIT)",
             m->file, line);
    return LINLI_ERR_INVALID;
  }
  if (exec_ok(conn, "BEGIN", why, sizeof(why)) != LINLI_OK) {
    chomp(why);
    snprintf(err, errlen, "%s: BEGIN: %s", m->file, why);
    return LINLI_ERR_TRANSIENT;
  }
  PGresult *res = PQexec(conn, m->sql);
  ExecStatusType st = PQresultStatus(res);
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK &&
      st != PGRES_EMPTY_QUERY) {
    const char *pos = PQresultErrorField(res, PG_DIAG_STATEMENT_POSITION);
    const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    const char *code = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    if (pos != NULL)
      snprintf(err, errlen, "%s:%d: %s (SQLSTATE %s)", m->file,
               line_of(m->sql, strtol(pos, NULL, 10)),
               msg ? msg : "error", code ? code : "?");
    else
      snprintf(err, errlen, "%s: %s (SQLSTATE %s)", m->file,
               msg ? msg : PQerrorMessage(conn), code ? code : "?");
    chomp(err);
    PQclear(res);
    exec_ok(conn, "ROLLBACK", why, sizeof(why));
    return LINLI_ERR_INVALID;
  }
  PQclear(res);
  /* A migration must not end the transaction itself: its row would then be
   * recorded separately from its effects. */
  if (PQtransactionStatus(conn) != PQTRANS_INTRANS) {
    snprintf(err, errlen,
             "%s: the file ended the transaction itself: statements before "
             "that point may be committed, the migration is NOT recorded; "
             "remove BEGIN/COMMIT and check the database by hand",
             m->file);
    if (PQtransactionStatus(conn) != PQTRANS_IDLE)
      exec_ok(conn, "ROLLBACK", why, sizeof(why));
    return LINLI_ERR_CONFLICT;
  }
  const char *params[2] = {m->version, m->checksum};
  res = PQexecParams(conn,
                     "INSERT INTO schema_migrations (version, checksum)"
                     " VALUES ($1, $2)",
                     2, NULL, params, NULL, NULL, 0);
  if (PQresultStatus(res) != PGRES_COMMAND_OK) {
    snprintf(err, errlen, "%s: recording: %s", m->file, PQerrorMessage(conn));
    chomp(err);
    PQclear(res);
    exec_ok(conn, "ROLLBACK", why, sizeof(why));
    return LINLI_ERR_INVALID;
  }
  PQclear(res);
  if (exec_ok(conn, "COMMIT", why, sizeof(why)) != LINLI_OK) {
    chomp(why);
    snprintf(err, errlen, "%s: COMMIT: %s", m->file, why);
    return LINLI_ERR_INVALID;
  }
  return LINLI_OK;
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------- commands */

static int report_changed(const migration_set_t *set, const char *dir) {
  int changed = 0;
  for (size_t i = 0; i < set->n; i++) {
    if (!set->v[i].changed)
      continue;
    fprintf(stderr,
            PROG ": error: %s/%s was changed after it was applied (checksum "
                 "differs from schema_migrations); never edit an applied "
                 "migration, add a new one\n",
            dir, set->v[i].file);
    changed++;
  }
  return changed;
}

static int cmd_status(PGconn *conn, migration_set_t *set, const char *dir) {
  char err[1024];
  PGresult *res = PQexec(conn, "SELECT to_regclass('schema_migrations')"
                               " IS NOT NULL");
  if (PQresultStatus(res) != PGRES_TUPLES_OK) {
    fprintf(stderr, PROG ": %s", PQerrorMessage(conn));
    PQclear(res);
    return EXIT_SETUP;
  }
  int exists = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
  PQclear(res);
  int orphans = 0;
  if (exists && read_applied(conn, set, &orphans, err, sizeof(err)) != 0) {
    fprintf(stderr, PROG ": %s\n", err);
    return EXIT_SETUP;
  }
  size_t pending = 0;
  for (size_t i = 0; i < set->n; i++) {
    const migration_t *m = &set->v[i];
    if (m->changed)
      printf("CHANGED  %-40s applied %s\n", m->version, m->applied_at);
    else if (m->applied)
      printf("applied  %-40s %s\n", m->version, m->applied_at);
    else {
      printf("pending  %s\n", m->version);
      pending++;
    }
  }
  printf("%zu migration(s) in %s: %zu applied, %zu pending\n", set->n, dir,
         set->n - pending, pending);
  return report_changed(set, dir) > 0 ? EXIT_MIGRATION : 0;
}

static int cmd_migrate(PGconn *conn, migration_set_t *set, const char *dir) {
  char err[2048];
  if (exec_ok(conn, LOCK_SQL, err, sizeof(err)) != LINLI_OK) {
    chomp(err);
    fprintf(stderr, PROG ": taking the migration lock: %s\n", err);
    return EXIT_SETUP;
  }
  int rc = 0;
  int orphans = 0;
  if (exec_ok(conn, create_table_sql, err, sizeof(err)) != LINLI_OK ||
      read_applied(conn, set, &orphans, err, sizeof(err)) != LINLI_OK) {
    chomp(err);
    fprintf(stderr, PROG ": %s\n", err);
    rc = EXIT_SETUP;
    goto out;
  }
  /* Verify everything before changing anything. */
  if (report_changed(set, dir) > 0) {
    rc = EXIT_MIGRATION;
    goto out;
  }
  const char *latest = NULL;
  for (size_t i = 0; i < set->n; i++)
    if (set->v[i].applied)
      latest = set->v[i].version;
  size_t applied_now = 0;
  for (size_t i = 0; i < set->n; i++) {
    migration_t *m = &set->v[i];
    if (m->applied)
      continue;
    if (latest != NULL && strcmp(m->version, latest) < 0)
      fprintf(stderr,
              PROG ": warning: %s is older than the latest applied migration "
                   "%s; applying it now\n",
              m->file, latest);
    int64_t t0 = now_ms();
    int arc = apply_one(conn, m, err, sizeof(err));
    if (arc != LINLI_OK) {
      fprintf(stderr, PROG ": error: %s/%s\n", dir, err);
      if (arc == LINLI_ERR_CONFLICT)
        fprintf(stderr, PROG ": %zu migration(s) applied before the failure\n",
                applied_now);
      else
        fprintf(stderr,
                PROG ": %zu migration(s) applied before the failure; "
                     "nothing of %s was applied\n",
                applied_now, m->file);
      rc = EXIT_MIGRATION;
      goto out;
    }
    m->applied = 1;
    applied_now++;
    printf("applied  %s (%lld ms)\n", m->version,
           (long long)(now_ms() - t0));
  }
  if (applied_now == 0)
    printf("nothing to apply: %zu migration(s) in %s, all applied\n", set->n,
           dir);
  else
    printf("%zu migration(s) applied; %zu in %s, all applied\n", applied_now,
           set->n, dir);
out:
  /* The lock is per session and ends with the connection anyway; release it
   * explicitly so that a long-lived caller would not keep it. */
  exec_ok(conn, UNLOCK_SQL, err, sizeof(err));
  return rc;
}

/* ------------------------------------------------------------------ main */

static void usage(FILE *out) {
  fprintf(out,
          "usage: " PROG " [--config FILE] [--dir DIR] [--status]\n"
          "  Applies every pending schemas/sql/NNN_name.sql to the database\n"
          "  of pg.conninfo (env LINLI_PG_CONNINFO overrides), each in its\n"
          "  own transaction, and verifies the checksums of applied ones.\n"
          "  --config FILE  configuration (default $LINLI_CONFIG, else\n"
          "                 config/linli.conf)\n"
          "  --dir DIR      migrations (default $LINLI_SQL_DIR, else\n"
          "                 schemas/sql)\n"
          "  --status       list applied and pending migrations, change\n"
          "                 nothing\n");
}

/* Server notices (e.g. "relation already exists, skipping") are noise for
 * an operator unless they are warnings. */
static void notice_processor(void *arg, const char *message) {
  (void)arg;
  if (strncmp(message, "NOTICE:", 7) != 0)
    fprintf(stderr, PROG ": %s", message);
}

int main(int argc, char **argv) {
  static const struct option opts[] = {
      {"config", required_argument, NULL, 'c'},
      {"dir", required_argument, NULL, 'd'},
      {"status", no_argument, NULL, 's'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  const char *config_path = NULL;
  const char *dir = NULL;
  int status_only = 0;
  int c;
  while ((c = getopt_long(argc, argv, "c:d:sh", opts, NULL)) != -1) {
    switch (c) {
    case 'c':
      config_path = optarg;
      break;
    case 'd':
      dir = optarg;
      break;
    case 's':
      status_only = 1;
      break;
    case 'h':
      usage(stdout);
      return 0;
    default:
      usage(stderr);
      return EXIT_SETUP;
    }
  }
  if (optind < argc) {
    fprintf(stderr, PROG ": unexpected argument '%s'\n", argv[optind]);
    usage(stderr);
    return EXIT_SETUP;
  }
  if (dir == NULL) {
    const char *env = getenv("LINLI_SQL_DIR");
    dir = (env != NULL && *env != '\0') ? env : "schemas/sql";
  }
  if (sodium_init() < 0) {
    fprintf(stderr, PROG ": libsodium failed to initialise\n");
    return EXIT_SETUP;
  }

  char err[2048];
  int rc = EXIT_SETUP;
  linli_config_t *cfg = NULL;
  PGconn *conn = NULL;
  migration_set_t set = {NULL, 0};

  if (linli_config_load(config_path, &cfg, err, sizeof(err)) != LINLI_OK) {
    fprintf(stderr, PROG ": %s\n", err);
    goto done;
  }
  if (load_dir(dir, &set, err, sizeof(err)) != LINLI_OK) {
    fprintf(stderr, PROG ": %s\n", err);
    goto done;
  }
  if (set.n == 0) {
    fprintf(stderr, PROG ": no migrations (NNN_name.sql) in %s\n", dir);
    goto done;
  }
  conn = PQconnectdb(linli_config_str(cfg, "pg.conninfo"));
  if (conn == NULL || PQstatus(conn) != CONNECTION_OK) {
    /* libpq's message names host and port, never the password. */
    fprintf(stderr, PROG ": connecting to PostgreSQL: %s",
            conn ? PQerrorMessage(conn) : "out of memory\n");
    goto done;
  }
  PQsetNoticeProcessor(conn, notice_processor, NULL);
  if (exec_ok(conn, "SET client_min_messages = warning", err, sizeof(err)) !=
      LINLI_OK) {
    fprintf(stderr, PROG ": %s", err);
    goto done;
  }
  rc = status_only ? cmd_status(conn, &set, dir) : cmd_migrate(conn, &set, dir);

done:
  if (conn != NULL)
    PQfinish(conn);
  set_free(&set);
  linli_config_free(cfg);
  return rc;
}
