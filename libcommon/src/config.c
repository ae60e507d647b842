/*
 * config.c - linli's configuration: defaults from the tables in force
 * (libcommon's domain-free one, then those the program registered), then the
 * INI file (parsed with inih), then LINLI_<SECTION>_<KEY> environment
 * overrides, every value validated the same way wherever it came from.
 *
 * libcommon knows no domain: a program's keys live in its own folder
 * (producers/gateway/settings.c, ...) and reach the loader through
 * linli_config_register(). Every program reads the same file, so a section
 * no table in force owns is another program's and is skipped here; within a
 * section we own, an unknown key fails with its file and line.
 *
 * The [kafka] section is not in the table: each pair is a librdkafka
 * property, checked with rd_kafka_conf_set() on a scratch conf when it is
 * loaded so that a typo fails at start-up with the file and line, not later
 * inside a consumer.
 *
 * Debian's inih is built without INI_HANDLER_LINENO, so the handler cannot be
 * told the line number. We feed inih through our own line reader instead: it
 * counts lines, and inih calls the handler right after reading the line that
 * holds the pair, so the reader's count is the handler's line.
 */
#include "linli/config.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "linli/error.h"

extern char **environ;

/* ------------------------------------------------------------------------ */
/* libcommon's keys and the checks tables share                             */
/* ------------------------------------------------------------------------ */

typedef linli_setting_t key_def_t;

static int check_log_level(const char *v, char *why, size_t whylen);

/* libcommon's own keys, none of them about the domain. Programs register
 * theirs (producers/gateway/settings.c, ...). docs/config.md lists every
 * table's keys; linli-settings check-docs (a ctest) keeps them in sync. */
static const key_def_t COMMON_KEYS[] = {
    {"redis.host", LINLI_SETTING_STR,
     "127.0.0.1", 0, 0, 0, linli_setting_check_nonempty,
     "Redis host name or address"},
    {"redis.port", LINLI_SETTING_INT, "16379", 1, 65535, 0, NULL,
     "Redis TCP port"},
    {"redis.password", LINLI_SETTING_STR, "", 0, 0, 0, NULL,
     "Redis AUTH password; empty means no AUTH"},
    {"redis.connect_timeout_ms", LINLI_SETTING_INT, "5000", 1, 600000, 0, NULL,
     "timeout for connecting to Redis"},
    {"pg.conninfo", LINLI_SETTING_STR,
     "host=127.0.0.1 port=15432 dbname=linli user=linli",
     0, 0, 0, linli_setting_check_nonempty, "libpq connection string"},
    {"pg.connect_timeout_ms", LINLI_SETTING_INT, "10000", 1, 600000, 0, NULL,
     "timeout for connecting to PostgreSQL"},
    {"log.level", LINLI_SETTING_STR, "info", 0, 0, 0, check_log_level,
     "lowest level logged: debug, info, warn or error"},
    {"metrics.port", LINLI_SETTING_INT, "0", -1, 65535, 0, NULL,
     "port of the /metrics and /healthz listener; 0 picks a free port, -1 "
     "turns it off"},
    {"metrics.addr", LINLI_SETTING_STR,
     "127.0.0.1", 0, 0, 0, linli_setting_check_nonempty,
     "address the metrics listener binds to"},
    {"runner.batch_size", LINLI_SETTING_INT, "500", 1, 100000, 0, NULL,
     "most input messages handled in one transaction"},
    {"runner.flush_interval_ms", LINLI_SETTING_INT, "100", 1, 60000, 0, NULL,
     "longest time a partial batch waits before it is committed"},
    {"runner.tick_interval_ms", LINLI_SETTING_INT, "1000", 10, 3600000, 0, NULL,
     "interval of the timer that checks clock-driven decisions"},
    {"runner.instance_id", LINLI_SETTING_STR, "", 0, 0, 0, NULL,
     "stable name of this instance (part of transactional.id); empty derives "
     "one from the host name"},
    {"runner.group", LINLI_SETTING_STR, "", 0, 0, 0, NULL,
     "Kafka consumer group of the runner; empty means \"linli-<name>\""},
    {"runner.transaction_timeout_ms", LINLI_SETTING_INT,
     "60000", 1000, 900000, 0, NULL,
     "Kafka transaction.timeout.ms of the transactional producer"},
    {"runner.dlq_topic", LINLI_SETTING_STR,
     "linli.dlq.v1", 0, 0, 0, linli_setting_check_topic,
     "topic that receives input a consumer cannot process"},
    {"runner.retry_backoff_ms", LINLI_SETTING_INT, "500", 10, 60000, 0, NULL,
     "pause before retrying after a transient error"},
};

const linli_settings_t linli_settings_common = {
    "libcommon", COMMON_KEYS, sizeof(COMMON_KEYS) / sizeof(COMMON_KEYS[0])};

static int check_log_level(const char *v, char *why, size_t whylen) {
  static const char *const levels[] = {"debug", "info", "warn", "error"};
  for (size_t i = 0; i < 4; i++)
    if (strcmp(v, levels[i]) == 0)
      return 0;
  snprintf(why, whylen, "'%s' is not one of debug, info, warn, error", v);
  return -1;
}

int linli_setting_check_topic(const char *v, char *why, size_t whylen) {
  size_t n = strlen(v);
  if (n == 0 || n > 249) {
    snprintf(why, whylen, "topic name must be 1..249 characters");
    return -1;
  }
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)v[i];
    if (!isalnum(c) && c != '.' && c != '_' && c != '-') {
      snprintf(why, whylen, "topic name may only hold [A-Za-z0-9._-]");
      return -1;
    }
  }
  return 0;
}

int linli_setting_check_topic_suffix(const char *v, char *why, size_t whylen) {
  return *v == '\0' ? 0 : linli_setting_check_topic(v, why, whylen);
}

int linli_setting_check_nonempty(const char *v, char *why, size_t whylen) {
  if (*v == '\0') {
    snprintf(why, whylen, "must not be empty");
    return -1;
  }
  return 0;
}

/* ------------------------------------------------------------------------ */
/* The registry of tables                                                   */
/* ------------------------------------------------------------------------ */

/* Programs register at start-up, before any thread: plain statics suffice.
 * A load copies the list, so a configuration never changes under a reader. */
#define MAX_TABLES 32
static const linli_settings_t *registry[MAX_TABLES];
static size_t nregistry;
static int strict_sections;

/* Length of the section part of "section.key" (0 if there is no dot). */
static size_t section_len(const char *name) {
  const char *dot = strchr(name, '.');
  return dot ? (size_t)(dot - name) : 0;
}

/* The table among tables[0..n) that owns section (length slen), or NULL. */
static const linli_settings_t *
section_owner(const linli_settings_t *const *tables, size_t n,
              const char *section, size_t slen) {
  for (size_t t = 0; t < n; t++)
    for (size_t k = 0; k < tables[t]->n; k++)
      if (section_len(tables[t]->keys[k].name) == slen &&
          strncmp(tables[t]->keys[k].name, section, slen) == 0)
        return tables[t];
  return NULL;
}

static void register_die(const linli_settings_t *table, const char *key,
                         const char *why) {
  fprintf(stderr, "linli_config_register(%s): %s: %s (programming error)\n",
          table && table->owner ? table->owner : "(null)", key ? key : "",
          why);
  abort();
}

void linli_config_register(const linli_settings_t *table) {
  if (!table || !table->keys || table->n == 0)
    register_die(table, "", "empty table");
  const linli_settings_t *all[MAX_TABLES + 1];
  all[0] = &linli_settings_common;
  for (size_t t = 0; t < nregistry; t++) {
    if (registry[t] == table)
      return;
    all[t + 1] = registry[t];
  }
  if (table == &linli_settings_common)
    return;
  if (nregistry == MAX_TABLES)
    register_die(table, "", "too many tables");
  for (size_t k = 0; k < table->n; k++) {
    const char *name = table->keys[k].name;
    size_t slen = section_len(name);
    if (slen == 0 || name[slen + 1] == '\0' ||
        (slen == 5 && strncmp(name, "kafka", 5) == 0))
      register_die(table, name, "not a \"section.key\" outside [kafka]");
    const linli_settings_t *owner =
        section_owner(all, nregistry + 1, name, slen);
    if (owner)
      register_die(table, name, "section already owned by another table");
    for (size_t j = 0; j < k; j++)
      if (strcmp(table->keys[j].name, name) == 0)
        register_die(table, name, "key listed twice");
  }
  registry[nregistry++] = table;
}

void linli_config_unregister_all(void) {
  nregistry = 0;
  strict_sections = 0;
}

void linli_config_strict_sections(int on) { strict_sections = on != 0; }

/* ------------------------------------------------------------------------ */
/* The configuration object                                                 */
/* ------------------------------------------------------------------------ */

struct value {
  char *s;   /* the text as given (owned); for every type */
  int64_t i; /* parsed INT / BOOL */
  int line;  /* line in the file that set it, 0 if not from the file */
  int set;   /* set by the file, environment or linli_config_set */
};

struct kafka_pair {
  char *key;
  char *value;
  int line;
};

struct linli_config {
  /* The tables in force when it was loaded: libcommon's, then registered. */
  const linli_settings_t *tables[MAX_TABLES + 1];
  size_t ntables;
  const key_def_t **defs; /* every key of every table, flattened */
  struct value *vals;     /* vals[i] holds defs[i] */
  size_t nkeys;
  struct kafka_pair *kafka;
  size_t nkafka, capkafka;
};

static const key_def_t *key_find(const linli_config_t *cfg, const char *name,
                                 size_t *idx) {
  for (size_t i = 0; i < cfg->nkeys; i++) {
    if (strcmp(cfg->defs[i]->name, name) == 0) {
      if (idx)
        *idx = i;
      return cfg->defs[i];
    }
  }
  return NULL;
}

/* Validate text for def; on success fill *i (ints and bools). */
static int parse_value(const key_def_t *def, const char *text,
                       int64_t *i, char *why, size_t whylen) {
  switch (def->type) {
  case LINLI_SETTING_STR:
    *i = 0;
    return def->check ? def->check(text, why, whylen) : 0;
  case LINLI_SETTING_INT: {
    if (*text == '\0') {
      snprintf(why, whylen, "not an integer: empty value");
      return -1;
    }
    char *end = NULL;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (*end != '\0' || isspace((unsigned char)*text)) {
      snprintf(why, whylen, "not an integer: '%s'", text);
      return -1;
    }
    if (errno == ERANGE || v < def->min || v > def->max) {
      snprintf(why, whylen, "%s is out of range %lld..%lld", text,
               (long long)def->min, (long long)def->max);
      return -1;
    }
    *i = v;
    return 0;
  }
  case LINLI_SETTING_BOOL: {
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t k = 0; k < 4; k++) {
      if (strcasecmp(text, yes[k]) == 0) {
        *i = 1;
        return 0;
      }
      if (strcasecmp(text, no[k]) == 0) {
        *i = 0;
        return 0;
      }
    }
    snprintf(why, whylen, "not a boolean (true/false, yes/no, on/off, 1/0): '%s'",
             text);
    return -1;
  }
  }
  snprintf(why, whylen, "internal: bad key type");
  return -1;
}

/* Validate and store a table value; -1 with why on a bad value. */
static int value_set(linli_config_t *cfg, size_t idx, const char *text,
                     int line, char *why, size_t whylen) {
  int64_t i = 0;
  if (parse_value(cfg->defs[idx], text, &i, why, whylen) != 0)
    return -1;
  char *copy = strdup(text);
  if (!copy) {
    snprintf(why, whylen, "out of memory");
    return -1;
  }
  free(cfg->vals[idx].s);
  cfg->vals[idx].s = copy;
  cfg->vals[idx].i = i;
  cfg->vals[idx].line = line;
  cfg->vals[idx].set = 1;
  return 0;
}

/* Check a librdkafka property on a scratch conf (so nothing half-applied
 * leaks into a real one). */
static int kafka_check(const char *key, const char *value, char *why,
                       size_t whylen) {
  rd_kafka_conf_t *scratch = rd_kafka_conf_new();
  if (!scratch) {
    snprintf(why, whylen, "out of memory");
    return -1;
  }
  char errstr[512];
  rd_kafka_conf_res_t res =
      rd_kafka_conf_set(scratch, key, value, errstr, sizeof(errstr));
  rd_kafka_conf_destroy(scratch);
  if (res != RD_KAFKA_CONF_OK) {
    snprintf(why, whylen, "%s", errstr);
    return -1;
  }
  return 0;
}

/* Validate and store (or replace) a [kafka] property. */
static int kafka_set(linli_config_t *cfg, const char *key, const char *value,
                     int line, char *why, size_t whylen) {
  if (*key == '\0') {
    snprintf(why, whylen, "empty librdkafka property name");
    return -1;
  }
  if (kafka_check(key, value, why, whylen) != 0)
    return -1;
  char *v = strdup(value);
  if (!v)
    goto nomem;
  for (size_t k = 0; k < cfg->nkafka; k++) {
    if (strcmp(cfg->kafka[k].key, key) == 0) {
      free(cfg->kafka[k].value);
      cfg->kafka[k].value = v;
      cfg->kafka[k].line = line;
      return 0;
    }
  }
  if (cfg->nkafka == cfg->capkafka) {
    size_t cap = cfg->capkafka ? cfg->capkafka * 2 : 8;
    struct kafka_pair *p = realloc(cfg->kafka, cap * sizeof(*p));
    if (!p) {
      free(v);
      goto nomem;
    }
    cfg->kafka = p;
    cfg->capkafka = cap;
  }
  char *k = strdup(key);
  if (!k) {
    free(v);
    goto nomem;
  }
  cfg->kafka[cfg->nkafka].key = k;
  cfg->kafka[cfg->nkafka].value = v;
  cfg->kafka[cfg->nkafka].line = line;
  cfg->nkafka++;
  return 0;
nomem:
  snprintf(why, whylen, "out of memory");
  return -1;
}

void linli_config_free(linli_config_t *cfg) {
  if (!cfg)
    return;
  for (size_t i = 0; i < cfg->nkeys && cfg->vals; i++)
    free(cfg->vals[i].s);
  free(cfg->vals);
  free(cfg->defs);
  for (size_t k = 0; k < cfg->nkafka; k++) {
    free(cfg->kafka[k].key);
    free(cfg->kafka[k].value);
  }
  free(cfg->kafka);
  free(cfg);
}

/* A configuration holding only the defaults. */
static linli_config_t *config_new_defaults(char *err, size_t errlen) {
  linli_config_t *cfg = calloc(1, sizeof(*cfg));
  if (!cfg)
    goto nomem;
  cfg->tables[cfg->ntables++] = &linli_settings_common;
  for (size_t t = 0; t < nregistry; t++)
    cfg->tables[cfg->ntables++] = registry[t];
  size_t n = 0;
  for (size_t t = 0; t < cfg->ntables; t++)
    n += cfg->tables[t]->n;
  cfg->defs = calloc(n, sizeof(*cfg->defs));
  cfg->vals = calloc(n, sizeof(*cfg->vals));
  if (!cfg->defs || !cfg->vals) {
    linli_config_free(cfg);
    goto nomem;
  }
  for (size_t t = 0; t < cfg->ntables; t++)
    for (size_t k = 0; k < cfg->tables[t]->n; k++)
      cfg->defs[cfg->nkeys++] = &cfg->tables[t]->keys[k];
  for (size_t i = 0; i < cfg->nkeys; i++) {
    char why[256];
    if (value_set(cfg, i, cfg->defs[i]->def, 0, why, sizeof(why)) != 0) {
      /* Only reachable through a bad table entry or OOM. */
      snprintf(err, errlen, "<defaults>: %s: %s", cfg->defs[i]->name, why);
      linli_config_free(cfg);
      return NULL;
    }
    cfg->vals[i].set = 0;
  }
  return cfg;
nomem:
  snprintf(err, errlen, "out of memory");
  return NULL;
}

/* ------------------------------------------------------------------------ */
/* Parsing the INI text                                                     */
/* ------------------------------------------------------------------------ */

struct parse_ctx {
  linli_config_t *cfg;
  const char *name;  /* file name for messages */
  const char *pos;   /* reader position in the text */
  int line;          /* line number of the line last returned by the reader */
  int err_line;      /* line of the first error, 0 if none */
  char err[768];     /* "key: reason" of the first error */
  int *seen_line;    /* per table key: line that set it in this file */
};

static void ctx_error(struct parse_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void ctx_error(struct parse_ctx *ctx, const char *fmt, ...) {
  if (ctx->err_line)
    return; /* keep the first error: later ones are often consequences */
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(ctx->err, sizeof(ctx->err), fmt, ap);
  va_end(ap);
  ctx->err_line = ctx->line;
}

/* fgets-style reader over the in-memory text that counts lines. inih reads
 * at most num-1 characters per call and silently drops the rest of a longer
 * line, so a long line is reported as an error instead of truncated. */
static char *ctx_read(char *str, int num, void *stream) {
  struct parse_ctx *ctx = stream;
  if (*ctx->pos == '\0' || num < 2)
    return NULL;
  ctx->line++;
  int n = 0;
  while (ctx->pos[0] != '\0' && n < num - 1) {
    char c = *ctx->pos++;
    str[n++] = c;
    if (c == '\n')
      break;
  }
  str[n] = '\0';
  if (str[n - 1] != '\n' && *ctx->pos != '\0') {
    ctx_error(ctx, "line longer than %d characters (set long values through "
                   "the environment)",
              num - 2);
    while (*ctx->pos != '\0' && *ctx->pos != '\n')
      ctx->pos++;
    if (*ctx->pos == '\n')
      ctx->pos++;
  }
  return str;
}

static int ctx_handler(void *user, const char *section, const char *name,
                       const char *value) {
  struct parse_ctx *ctx = user;
  char why[512];
  if (*section == '\0') {
    ctx_error(ctx, "%s: key outside any [section]", name);
    return 0;
  }
  if (strcmp(section, "kafka") == 0) {
    if (kafka_set(ctx->cfg, name, value, ctx->line, why, sizeof(why)) != 0) {
      ctx_error(ctx, "kafka.%s: %s", name, why);
      return 0;
    }
    return 1;
  }
  char full[256];
  int fn = snprintf(full, sizeof(full), "%s.%s", section, name);
  size_t idx = 0;
  if (fn < 0 || (size_t)fn >= sizeof(full) ||
      !key_find(ctx->cfg, full, &idx)) {
    /* Tell an unknown section from an unknown key: the fix differs. */
    int known_section = section_owner(ctx->cfg->tables, ctx->cfg->ntables,
                                      section, strlen(section)) != NULL;
    if (!known_section && !strict_sections)
      return 1; /* another program's section: that program checks it */
    if (known_section)
      ctx_error(ctx, "%s.%s: unknown key", section, name);
    else
      ctx_error(ctx, "%s.%s: unknown section [%s]", section, name, section);
    return 0;
  }
  if (ctx->seen_line[idx]) {
    ctx_error(ctx, "%s: duplicate key (first set on line %d)", full,
              ctx->seen_line[idx]);
    return 0;
  }
  ctx->seen_line[idx] = ctx->line;
  if (value_set(ctx->cfg, idx, value, ctx->line, why, sizeof(why)) != 0) {
    ctx_error(ctx, "%s: %s", full, why);
    return 0;
  }
  return 1;
}

static int parse_text(linli_config_t *cfg, const char *text, const char *name,
                      char *err, size_t errlen) {
  int *seen = calloc(cfg->nkeys, sizeof(*seen));
  if (!seen) {
    snprintf(err, errlen, "%s: out of memory", name);
    return LINLI_ERR_NOMEM;
  }
  struct parse_ctx ctx = {.cfg = cfg, .name = name, .pos = text,
                          .seen_line = seen};
  /* An indented line is a continuation with multiline on: a mis-indented
   * "port = 1" would silently become part of the previous value. */
  ini_allow_multiline = false;
  int rc = ini_parse_stream(ctx_read, &ctx, ctx_handler, &ctx);
  free(seen);
  if (rc == -2) {
    snprintf(err, errlen, "%s: out of memory", name);
    return LINLI_ERR_NOMEM;
  }
  /* rc > 0 is the first line inih rejected: ours (handler returned 0) or a
   * syntax error it found without calling us. */
  if (rc > 0 && (ctx.err_line == 0 || rc < ctx.err_line)) {
    snprintf(err, errlen,
             "%s:%d: syntax error (expected [section] or key = value)", name,
             rc);
    return LINLI_ERR_CONFIG;
  }
  if (ctx.err_line) {
    snprintf(err, errlen, "%s:%d: %s", name, ctx.err_line, ctx.err);
    return LINLI_ERR_CONFIG;
  }
  return LINLI_OK;
}

/* ------------------------------------------------------------------------ */
/* Environment overrides                                                    */
/* ------------------------------------------------------------------------ */

static void env_name(const char *key, char *buf, size_t len) {
  size_t n = (size_t)snprintf(buf, len, "LINLI_");
  for (const char *p = key; *p && n + 1 < len; p++)
    buf[n++] = *p == '.' ? '_' : (char)toupper((unsigned char)*p);
  buf[n] = '\0';
}

static int apply_env(linli_config_t *cfg, char *err, size_t errlen) {
  char why[512];
  for (size_t i = 0; i < cfg->nkeys; i++) {
    char var[128];
    env_name(cfg->defs[i]->name, var, sizeof(var));
    const char *v = getenv(var);
    if (!v)
      continue;
    if (value_set(cfg, i, v, 0, why, sizeof(why)) != 0) {
      snprintf(err, errlen, "%s: %s: %s", var, cfg->defs[i]->name, why);
      return LINLI_ERR_CONFIG;
    }
  }
  static const char prefix[] = "LINLI_KAFKA_";
  for (char **e = environ; e && *e; e++) {
    if (strncmp(*e, prefix, sizeof(prefix) - 1) != 0)
      continue;
    const char *rest = *e + sizeof(prefix) - 1;
    const char *eq = strchr(rest, '=');
    if (!eq)
      continue;
    char prop[256];
    size_t n = (size_t)(eq - rest);
    if (n == 0 || n >= sizeof(prop)) {
      snprintf(err, errlen, "%.*s: bad librdkafka property name",
               (int)(eq - *e), *e);
      return LINLI_ERR_CONFIG;
    }
    for (size_t k = 0; k < n; k++)
      prop[k] = rest[k] == '_' ? '.' : (char)tolower((unsigned char)rest[k]);
    prop[n] = '\0';
    if (kafka_set(cfg, prop, eq + 1, 0, why, sizeof(why)) != 0) {
      snprintf(err, errlen, "%.*s: kafka.%s: %s", (int)(eq - *e), *e, prop,
               why);
      return LINLI_ERR_CONFIG;
    }
  }
  return LINLI_OK;
}

static int check_required(const linli_config_t *cfg, const char *name,
                          char *err, size_t errlen) {
  for (size_t i = 0; i < cfg->nkeys; i++) {
    if (cfg->defs[i]->required && !cfg->vals[i].set) {
      snprintf(err, errlen, "%s: %s: required key is not set", name,
               cfg->defs[i]->name);
      return LINLI_ERR_CONFIG;
    }
  }
  return LINLI_OK;
}

/* ------------------------------------------------------------------------ */
/* Public API                                                               */
/* ------------------------------------------------------------------------ */

/* Defaults, then text (may be NULL: no file), then the environment. */
static int load_common(const char *text, const char *name,
                       linli_config_t **out, char *err, size_t errlen) {
  *out = NULL;
  linli_config_t *cfg = config_new_defaults(err, errlen);
  if (!cfg)
    return LINLI_ERR_NOMEM;
  int rc = LINLI_OK;
  if (text && (rc = parse_text(cfg, text, name, err, errlen)) != LINLI_OK)
    goto err;
  if ((rc = apply_env(cfg, err, errlen)) != LINLI_OK)
    goto err;
  if ((rc = check_required(cfg, name, err, errlen)) != LINLI_OK)
    goto err;
  *out = cfg;
  return LINLI_OK;
err:
  linli_config_free(cfg);
  return rc;
}

int linli_config_load_string(const char *text, const char *name,
                             linli_config_t **out, char *err, size_t errlen) {
  if (!out || !text) {
    snprintf(err, errlen, "linli_config_load_string: NULL argument");
    return LINLI_ERR_INVALID;
  }
  return load_common(text, name ? name : "<string>", out, err, errlen);
}

/* Read a whole file into a NUL-terminated buffer (caller frees). */
static char *read_file(const char *path, int *errnum) {
  FILE *f = fopen(path, "rb");
  char *buf = NULL;
  size_t len = 0, cap = 0;
  if (!f) {
    *errnum = errno;
    return NULL;
  }
  for (;;) {
    if (cap - len < 4096) {
      cap = cap ? cap * 2 : 8192;
      char *nb = realloc(buf, cap + 1);
      if (!nb) {
        *errnum = ENOMEM;
        goto err;
      }
      buf = nb;
    }
    size_t n = fread(buf + len, 1, cap - len, f);
    len += n;
    if (n == 0) {
      if (ferror(f)) {
        *errnum = EIO;
        goto err;
      }
      break;
    }
  }
  fclose(f);
  buf[len] = '\0';
  if (strlen(buf) != len) {
    free(buf);
    *errnum = EINVAL; /* a NUL byte: not a text file */
    return NULL;
  }
  return buf;
err:
  free(buf);
  fclose(f);
  return NULL;
}

int linli_config_load(const char *path, linli_config_t **out, char *err,
                      size_t errlen) {
  if (!out) {
    snprintf(err, errlen, "linli_config_load: NULL argument");
    return LINLI_ERR_INVALID;
  }
  *out = NULL;
  int must_exist = 1;
  if (!path) {
    path = getenv("LINLI_CONFIG");
    if (!path || *path == '\0') {
      path = "config/linli.conf";
      must_exist = 0;
    }
  }
  int errnum = 0;
  char *text = read_file(path, &errnum);
  if (!text) {
    if (errnum == ENOENT && !must_exist)
      return load_common(NULL, path, out, err, errlen);
    snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errnum));
    return LINLI_ERR_CONFIG;
  }
  int rc = load_common(text, path, out, err, errlen);
  free(text);
  return rc;
}

static const key_def_t *key_or_die(const linli_config_t *cfg, const char *key,
                                   size_t *idx) {
  const key_def_t *def = key ? key_find(cfg, key, idx) : NULL;
  if (!def) {
    fprintf(stderr,
            "linli_config: unknown key '%s' (programming error: not in "
            "libcommon's table nor in a registered one)\n",
            key ? key : "(null)");
    abort();
  }
  return def;
}

const char *linli_config_str(const linli_config_t *cfg, const char *key) {
  size_t idx = 0;
  key_or_die(cfg, key, &idx);
  return cfg->vals[idx].s;
}

int64_t linli_config_int(const linli_config_t *cfg, const char *key) {
  size_t idx = 0;
  const key_def_t *def = key_or_die(cfg, key, &idx);
  if (def->type != LINLI_SETTING_INT) {
    fprintf(stderr, "linli_config: key '%s' is not an integer\n", key);
    abort();
  }
  return cfg->vals[idx].i;
}

int linli_config_bool(const linli_config_t *cfg, const char *key) {
  size_t idx = 0;
  const key_def_t *def = key_or_die(cfg, key, &idx);
  if (def->type != LINLI_SETTING_BOOL) {
    fprintf(stderr, "linli_config: key '%s' is not a boolean\n", key);
    abort();
  }
  return cfg->vals[idx].i != 0;
}

int linli_config_set(linli_config_t *cfg, const char *key, const char *value,
                     char *err, size_t errlen) {
  char why[512];
  if (!cfg || !key || !value) {
    snprintf(err, errlen, "linli_config_set: NULL argument");
    return LINLI_ERR_INVALID;
  }
  if (strncmp(key, "kafka.", 6) == 0) {
    if (kafka_set(cfg, key + 6, value, 0, why, sizeof(why)) != 0) {
      snprintf(err, errlen, "%s: %s", key, why);
      return LINLI_ERR_CONFIG;
    }
    return LINLI_OK;
  }
  size_t idx = 0;
  if (!key_find(cfg, key, &idx)) {
    snprintf(err, errlen, "%s: unknown key", key);
    return LINLI_ERR_CONFIG;
  }
  if (value_set(cfg, idx, value, 0, why, sizeof(why)) != 0) {
    snprintf(err, errlen, "%s: %s", key, why);
    return LINLI_ERR_CONFIG;
  }
  return LINLI_OK;
}

int linli_config_kafka_apply(const linli_config_t *cfg, rd_kafka_conf_t *conf,
                             char *err, size_t errlen) {
  if (!cfg || !conf) {
    snprintf(err, errlen, "linli_config_kafka_apply: NULL argument");
    return LINLI_ERR_INVALID;
  }
  for (size_t k = 0; k < cfg->nkafka; k++) {
    char errstr[512];
    if (rd_kafka_conf_set(conf, cfg->kafka[k].key, cfg->kafka[k].value,
                          errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK) {
      snprintf(err, errlen, "kafka.%s: %s", cfg->kafka[k].key, errstr);
      return LINLI_ERR_CONFIG;
    }
  }
  return LINLI_OK;
}

const char *linli_config_kafka_get(const linli_config_t *cfg,
                                   const char *property) {
  if (!cfg || !property)
    return NULL;
  for (size_t k = 0; k < cfg->nkafka; k++)
    if (strcmp(cfg->kafka[k].key, property) == 0)
      return cfg->kafka[k].value;
  return NULL;
}
