/*
 * config.c - linli's configuration: defaults from one static table, then the
 * INI file (parsed with inih), then LINLI_<SECTION>_<KEY> environment
 * overrides, every value validated the same way wherever it came from.
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
/* The table of known keys                                                  */
/* ------------------------------------------------------------------------ */

enum key_type { KEY_STR, KEY_INT, KEY_BOOL };

/* Extra check for a string value; writes the reason into why on failure.
 * Reasons never echo the value (it may be a secret). */
typedef int (*check_fn)(const char *value, char *why, size_t whylen);

struct key_def {
  const char *name;   /* "section.key" */
  enum key_type type;
  const char *def;    /* default, as text (parsed like any other value) */
  int64_t min, max;   /* bounds for KEY_INT */
  int required;       /* must be set by the file or the environment */
  check_fn check;     /* optional, for KEY_STR */
  const char *desc;   /* one line for docs/config.md */
};

static int check_log_level(const char *v, char *why, size_t whylen);
static int check_hex_key(const char *v, char *why, size_t whylen);
static int check_topic(const char *v, char *why, size_t whylen);
static int check_nonempty(const char *v, char *why, size_t whylen);
static int check_topic_suffix(const char *v, char *why, size_t whylen);

/* Keep docs/config.md in sync with this table. */
static const struct key_def KEYS[] = {
    {"redis.host", KEY_STR, "127.0.0.1", 0, 0, 0, check_nonempty,
     "Redis host name or address"},
    {"redis.port", KEY_INT, "16379", 1, 65535, 0, NULL, "Redis TCP port"},
    {"redis.password", KEY_STR, "", 0, 0, 0, NULL,
     "Redis AUTH password; empty means no AUTH"},
    {"redis.connect_timeout_ms", KEY_INT, "5000", 1, 600000, 0, NULL,
     "timeout for connecting to Redis"},
    {"pg.conninfo", KEY_STR, "host=127.0.0.1 port=15432 dbname=linli user=linli",
     0, 0, 0, check_nonempty, "libpq connection string"},
    {"pg.connect_timeout_ms", KEY_INT, "10000", 1, 600000, 0, NULL,
     "timeout for connecting to PostgreSQL"},
    {"log.level", KEY_STR, "info", 0, 0, 0, check_log_level,
     "lowest level logged: debug, info, warn or error"},
    {"metrics.port", KEY_INT, "0", -1, 65535, 0, NULL,
     "port of the /metrics and /healthz listener; 0 picks a free port, -1 "
     "turns it off"},
    {"metrics.addr", KEY_STR, "127.0.0.1", 0, 0, 0, check_nonempty,
     "address the metrics listener binds to"},
    {"runner.batch_size", KEY_INT, "500", 1, 100000, 0, NULL,
     "most input messages handled in one transaction"},
    {"runner.flush_interval_ms", KEY_INT, "100", 1, 60000, 0, NULL,
     "longest time a partial batch waits before it is committed"},
    {"runner.tick_interval_ms", KEY_INT, "1000", 10, 3600000, 0, NULL,
     "interval of the timer that checks clock-driven decisions"},
    {"runner.instance_id", KEY_STR, "", 0, 0, 0, NULL,
     "stable name of this instance (part of transactional.id); empty derives "
     "one from the host name"},
    {"runner.group", KEY_STR, "", 0, 0, 0, NULL,
     "Kafka consumer group of the runner; empty means \"linli-<name>\""},
    {"runner.transaction_timeout_ms", KEY_INT, "60000", 1000, 900000, 0, NULL,
     "Kafka transaction.timeout.ms of the transactional producer"},
    {"runner.dlq_topic", KEY_STR, "linli.dlq.v1", 0, 0, 0, check_topic,
     "topic that receives input a consumer cannot process"},
    {"runner.retry_backoff_ms", KEY_INT, "500", 10, 60000, 0, NULL,
     "pause before retrying after a transient error"},
    {"orders.payment_timeout_s", KEY_INT, "900", 1, 86400, 0, NULL,
     "seconds an order may stay unpaid before it expires"},
    {"orders.max_lines", KEY_INT, "100", 1, 10000, 0, NULL,
     "most lines one order may hold; a larger OrderPlaced is rejected"},
    {"orders.retention_s", KEY_INT, "604800", 1, 31536000, 0, NULL,
     "seconds the reserver keeps an order's Redis state (and its index "
     "entry) after the order reached a final state"},
    {"groupbuy.retention_s", KEY_INT, "604800", 1, 31536000, 0, NULL,
     "seconds an ended campaign's hot state stays in Redis (the settler)"},
    {"groupbuy.deadline_retry_ms", KEY_INT, "30000", 100, 3600000, 0, NULL,
     "the settler writes a campaign's CampaignDeadline again if it was not "
     "processed after this long"},
    {"router.reference_file", KEY_STR, "config/router-reference.conf", 0, 0,
     0, check_nonempty,
     "linli-router's reference data: warehouses with their wave schedule, "
     "pickup points, vehicles (docs/delivery.md)"},
    {"router.speed_kmh", KEY_INT, "25", 1, 200, 0, NULL,
     "average driving speed linli-router plans ETAs with, km/h"},
    {"router.stop_service_s", KEY_INT, "180", 0, 3600, 0, NULL,
     "seconds a vehicle spends at each stop (parking, walking)"},
    {"router.order_service_s", KEY_INT, "20", 0, 600, 0, NULL,
     "extra seconds per order handed over at a stop"},
    {"router.default_item_weight_g", KEY_INT, "500", 0, 1000000, 0, NULL,
     "grams per item when a FulfillmentItem carries no weight_g"},
    {"router.express_depart_s", KEY_INT, "600", 0, 86400, 0, NULL,
     "an express wave's vehicles leave this long after its cutoff"},
    {"router.retention_s", KEY_INT, "172800", 60, 31536000, 0, NULL,
     "seconds a warehouse's wave state stays in Redis after its last write"},
    {"router.close_retry_ms", KEY_INT, "30000", 100, 3600000, 0, NULL,
     "linli-router writes a wave's WaveClosed again if it was not processed "
     "after this long"},
    {"router.skip_unknown_warehouses", KEY_BOOL, "false", 0, 1, 0, NULL,
     "skip (log, count) input for warehouses absent from the reference data "
     "instead of sending it to the DLQ (another router serves them)"},
    {"notifier.templates_dir", KEY_STR, "config/templates", 0, 0, 0, check_nonempty,
     "directory of the notification templates: <dir>/<locale>/<template>.txt"},
    {"notifier.locales", KEY_STR, "zh-CN,en", 0, 0, 0, check_nonempty,
     "locales the notifier loads, comma-separated; the first is the default"},
    {"notifier.channels", KEY_STR, "app_push", 0, 0, 0, check_nonempty,
     "channels each state change is written for: sms, wechat, app_push (comma-separated)"},
    {"notifier.redis_prefix", KEY_STR, "n", 0, 0, 0, check_nonempty,
     "hash-tag prefix of the notifier's Redis keys (tests isolate runs with it)"},
    {"notifier.shards", KEY_INT, "16", 1, 4096, 0, NULL,
     "Redis shards of the notifier's state and retry queue"},
    {"notifier.state_ttl_s", KEY_INT, "1209600", 60, 31536000, 0, NULL,
     "seconds the notifier remembers an order or campaign, and a delivered id"},
    {"notifier.utc_offset_min", KEY_INT, "480", -720, 840, 0, NULL,
     "residents' time zone, minutes east of UTC (times in texts, quiet hours)"},
    {"notifier.pickup_hours", KEY_STR, "08:00-21:00", 0, 0, 0, check_nonempty,
     "opening hours shown with a pickup code"},
    {"notifier.reminder_lead_s", KEY_INT, "300", 0, 86400, 0, NULL,
     "payment reminder this long before the payment deadline; 0 = none"},
    {"notifier.webhook_url", KEY_STR, "", 0, 0, 0, NULL,
     "webhook sink (http://host:port/path); empty turns it off"},
    {"notifier.webhook_secret", KEY_STR, "", 0, 0, 0, NULL,
     "HMAC-SHA256 key of Linli-Signature; never echoed"},
    {"notifier.webhook_timeout_ms", KEY_INT, "5000", 100, 120000, 0, NULL,
     "timeout of one webhook request"},
    {"notifier.webhook_concurrency", KEY_INT, "8", 1, 256, 0, NULL,
     "webhook requests in flight at once"},
    {"notifier.retry_base_ms", KEY_INT, "500", 10, 600000, 0, NULL,
     "first retry delay of a failed webhook send (doubles, with jitter)"},
    {"notifier.retry_max_ms", KEY_INT, "60000", 10, 86400000, 0, NULL,
     "longest retry delay of a webhook send"},
    {"notifier.retry_queue_max", KEY_INT, "1000000", 1, 100000000, 0, NULL,
     "most notifications waiting per shard for the webhook"},
    {"notifier.fail_after_s", KEY_INT, "86400", 1, 2592000, 0, NULL,
     "a webhook notification failing this long goes to the DLQ"},
    {"notifier.quiet_hours", KEY_STR, "22:00-07:00", 0, 0, 0, NULL,
     "local HH:MM-HH:MM in which quiet templates wait; empty = none"},
    {"notifier.quiet_templates", KEY_STR, "payment_reminder,groupbuy_formed,groupbuy_tier_unlocked", 0, 0, 0, NULL,
     "templates held back during quiet hours (pickup_ready never)"},
    {"notifier.rate_per_user_min", KEY_INT, "30", 0, 100000, 0, NULL,
     "webhook sends per user per minute; more wait; 0 = no limit"},
    {"crypto.key", KEY_STR, "", 0, 0, 0, check_hex_key,
     "key for personal data at rest: 64 hex characters (32 bytes); empty "
     "disables encryption-dependent features"},
    {"ledger.topic_suffix", KEY_STR, "", 0, 0, 0, check_topic_suffix,
     "appended to every topic name the ledger reads and writes (isolated "
     "test topics); empty in production"},
    {"gateway.port", KEY_INT, "8080", 0, 65535, 0, NULL,
     "HTTP port of producers/gateway; 0 picks a free port"},
    {"gateway.addr", KEY_STR, "127.0.0.1", 0, 0, 0, check_nonempty,
     "address the gateway listens on"},
    {"gateway.keys_file", KEY_STR, "config/gateway-keys.conf", 0, 0, 0,
     check_nonempty, "API keys of the gateway: lines of app_id role sha256-hex"},
    {"gateway.max_body_bytes", KEY_INT, "1048576", 1024, 67108864, 0, NULL,
     "largest request body the gateway reads; larger answers 413"},
    {"gateway.rate_limit_per_s", KEY_INT, "200", 0, 1000000, 0, NULL,
     "requests per second allowed per API key (0 = no limit)"},
    {"gateway.campaign_user_cap", KEY_INT, "5", 0, 1000000, 0, NULL,
     "most orders plus joins one user may send per campaign (0 = no cap)"},
    {"gateway.idempotency_ttl_s", KEY_INT, "86400", 1, 604800, 0, NULL,
     "how long an Idempotency-Key is remembered"},
    {"gateway.publish_timeout_ms", KEY_INT, "10000", 1000, 300000, 0, NULL,
     "longest a publish waits for Kafka's acknowledgement (the producer's "
     "message.timeout.ms); then the answer is 504 outcome_unknown"},
    {"gateway.dev_keys", KEY_BOOL, "false", 0, 0, 0, NULL,
     "allow the published development API keys (local stack only); "
     "without it the gateway refuses to start with them"},
    {"gateway.max_connections", KEY_INT, "4096", 16, 1000000, 0, NULL,
     "most client connections open at once; more are closed at accept"},
    {"gateway.max_connections_per_ip", KEY_INT, "256", 1, 1000000, 0, NULL,
     "most client connections open at once from one address"},
    {"gateway.request_deadline_s", KEY_INT, "10", 1, 3600, 0, NULL,
     "time a client has to send a request's headers and body, however "
     "slowly it trickles them"},
    {"gateway.sse_backlog", KEY_INT, "10000", 1, 1000000, 0, NULL,
     "order-status events kept for SSE clients resuming with Last-Event-ID"},
    {"gateway.sse_max_buffer_bytes", KEY_INT, "1048576", 4096, 268435456, 0,
     NULL, "unsent bytes an SSE client may hold before it is cut off"},
    {"gateway.tls_cert", KEY_STR, "", 0, 0, 0, NULL,
     "PEM certificate chain file; set with tls_key to serve HTTPS"},
    {"gateway.tls_key", KEY_STR, "", 0, 0, 0, NULL,
     "PEM private key file of tls_cert"},
};
#define NKEYS (sizeof(KEYS) / sizeof(KEYS[0]))

static int check_log_level(const char *v, char *why, size_t whylen) {
  static const char *const levels[] = {"debug", "info", "warn", "error"};
  for (size_t i = 0; i < 4; i++)
    if (strcmp(v, levels[i]) == 0)
      return 0;
  snprintf(why, whylen, "'%s' is not one of debug, info, warn, error", v);
  return -1;
}

static int check_hex_key(const char *v, char *why, size_t whylen) {
  size_t n = strlen(v);
  if (n == 0)
    return 0;
  if (n != 64) {
    snprintf(why, whylen, "must be 64 hex characters (got %zu characters)", n);
    return -1;
  }
  for (size_t i = 0; i < n; i++) {
    if (!isxdigit((unsigned char)v[i])) {
      snprintf(why, whylen, "must be 64 hex characters (bad character at %zu)",
               i + 1);
      return -1;
    }
  }
  return 0;
}

static int check_topic(const char *v, char *why, size_t whylen) {
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

/* Empty, or what check_topic allows (appended to a topic name). */
static int check_topic_suffix(const char *v, char *why, size_t whylen) {
  return *v == '\0' ? 0 : check_topic(v, why, whylen);
}

static int check_nonempty(const char *v, char *why, size_t whylen) {
  if (*v == '\0') {
    snprintf(why, whylen, "must not be empty");
    return -1;
  }
  return 0;
}

static const struct key_def *key_find(const char *name, size_t *idx) {
  for (size_t i = 0; i < NKEYS; i++) {
    if (strcmp(KEYS[i].name, name) == 0) {
      if (idx)
        *idx = i;
      return &KEYS[i];
    }
  }
  return NULL;
}

/* ------------------------------------------------------------------------ */
/* The configuration object                                                 */
/* ------------------------------------------------------------------------ */

struct value {
  char *s;   /* the text as given (owned); for every type */
  int64_t i; /* parsed KEY_INT / KEY_BOOL */
  int line;  /* line in the file that set it, 0 if not from the file */
  int set;   /* set by the file, environment or linli_config_set */
};

struct kafka_pair {
  char *key;
  char *value;
  int line;
};

struct linli_config {
  struct value vals[NKEYS];
  struct kafka_pair *kafka;
  size_t nkafka, capkafka;
};

/* Validate text for def; on success fill *i (ints and bools). */
static int parse_value(const struct key_def *def, const char *text,
                       int64_t *i, char *why, size_t whylen) {
  switch (def->type) {
  case KEY_STR:
    *i = 0;
    return def->check ? def->check(text, why, whylen) : 0;
  case KEY_INT: {
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
  case KEY_BOOL: {
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
  if (parse_value(&KEYS[idx], text, &i, why, whylen) != 0)
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
  for (size_t i = 0; i < NKEYS; i++)
    free(cfg->vals[i].s);
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
  for (size_t i = 0; i < NKEYS; i++) {
    char why[256];
    if (value_set(cfg, i, KEYS[i].def, 0, why, sizeof(why)) != 0) {
      /* Only reachable through a bad table entry or OOM. */
      snprintf(err, errlen, "<defaults>: %s: %s", KEYS[i].name, why);
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
  if (fn < 0 || (size_t)fn >= sizeof(full) || !key_find(full, &idx)) {
    /* Tell an unknown section from an unknown key: the fix differs. */
    size_t slen = strlen(section);
    int known_section = 0;
    for (size_t i = 0; i < NKEYS && !known_section; i++)
      known_section = strncmp(KEYS[i].name, section, slen) == 0 &&
                      KEYS[i].name[slen] == '.';
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
  int seen[NKEYS] = {0};
  struct parse_ctx ctx = {.cfg = cfg, .name = name, .pos = text,
                          .seen_line = seen};
  /* An indented line is a continuation with multiline on: a mis-indented
   * "port = 1" would silently become part of the previous value. */
  ini_allow_multiline = false;
  int rc = ini_parse_stream(ctx_read, &ctx, ctx_handler, &ctx);
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
  for (size_t i = 0; i < NKEYS; i++) {
    char var[128];
    env_name(KEYS[i].name, var, sizeof(var));
    const char *v = getenv(var);
    if (!v)
      continue;
    if (value_set(cfg, i, v, 0, why, sizeof(why)) != 0) {
      snprintf(err, errlen, "%s: %s: %s", var, KEYS[i].name, why);
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
  for (size_t i = 0; i < NKEYS; i++) {
    if (KEYS[i].required && !cfg->vals[i].set) {
      snprintf(err, errlen, "%s: %s: required key is not set", name,
               KEYS[i].name);
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

static const struct key_def *key_or_die(const char *key, size_t *idx) {
  const struct key_def *def = key ? key_find(key, idx) : NULL;
  if (!def) {
    fprintf(stderr, "linli_config: unknown key '%s' (programming error)\n",
            key ? key : "(null)");
    abort();
  }
  return def;
}

const char *linli_config_str(const linli_config_t *cfg, const char *key) {
  size_t idx = 0;
  key_or_die(key, &idx);
  return cfg->vals[idx].s;
}

int64_t linli_config_int(const linli_config_t *cfg, const char *key) {
  size_t idx = 0;
  const struct key_def *def = key_or_die(key, &idx);
  if (def->type != KEY_INT) {
    fprintf(stderr, "linli_config: key '%s' is not an integer\n", key);
    abort();
  }
  return cfg->vals[idx].i;
}

int linli_config_bool(const linli_config_t *cfg, const char *key) {
  size_t idx = 0;
  const struct key_def *def = key_or_die(key, &idx);
  if (def->type != KEY_BOOL) {
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
  if (!key_find(key, &idx)) {
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
