/*
 * config.h - linli's configuration: config/linli.conf (INI: [section] and
 * key = value, parsed with inih), every key overridable from the environment
 * as LINLI_<SECTION>_<KEY> (upper case, '.' -> '_').
 *
 * Known keys, their defaults and bounds live in tables of linli_setting_t.
 * libcommon owns only the domain-free sections ([redis], [pg], [log],
 * [metrics], [runner]: linli_settings_common); each program registers the
 * table of its own sections (producers/gateway/settings.c, ...) with
 * linli_config_register() before it loads the file. Everything in the
 * [kafka] section passes straight to librdkafka (bootstrap.servers,
 * security.protocol, sasl.*, ssl.*, tuning), checked against librdkafka when
 * the file is loaded.
 *
 * In a section that libcommon or a registered table owns, an unknown key, a
 * bad value or a missing required key fails the load with
 * "path:line: key: reason". Every program reads the same file, so a section
 * that no registered table owns belongs to another program: it is skipped
 * (that program checks it), unless linli_config_strict_sections() is on, as
 * in linli-settings, which registers every program's table and checks a
 * whole file.
 */
#ifndef LINLI_CONFIG_H
#define LINLI_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

typedef struct linli_config linli_config_t;

/* ------------------------------------------------------------------------ */
/* Tables of settings                                                       */
/* ------------------------------------------------------------------------ */

typedef enum {
  LINLI_SETTING_STR,
  LINLI_SETTING_INT,
  LINLI_SETTING_BOOL,
} linli_setting_type_t;

/* Extra check of a string value: 0, or -1 with the reason in why. A reason
 * never echoes the value (it may be a secret). */
typedef int (*linli_setting_check_fn)(const char *value, char *why,
                                      size_t whylen);

typedef struct linli_setting {
  const char *name;          /* "section.key" */
  linli_setting_type_t type;
  const char *def;           /* default, as text (validated like any value) */
  int64_t min, max;          /* inclusive bounds of an INT */
  int required;              /* must be set by the file or the environment */
  linli_setting_check_fn check; /* optional, for a STR */
  const char *desc;          /* one line (docs/config.md says more) */
} linli_setting_t;

/* One owner's keys. Every section belongs to exactly one table. */
typedef struct linli_settings {
  const char *owner;         /* "gateway", "orders (libdomain)", ... */
  const linli_setting_t *keys;
  size_t n;
} linli_settings_t;

/* libcommon's own table: [redis], [pg], [log], [metrics], [runner]. Always
 * in force; never registered. */
extern const linli_settings_t linli_settings_common;

/*
 * Add a table to the keys later loads know (call before linli_config_load or
 * linli_process_start). Registering the same table again does nothing. A
 * table that names a section another table owns, or a key twice, is a
 * programming error: it aborts with a message.
 */
void linli_config_register(const linli_settings_t *table);

/* Forget every registered table (tests). */
void linli_config_unregister_all(void);

/* On: a section no table owns fails the load ("unknown section") instead of
 * being skipped as another program's. For checking a whole file against
 * every program's table. Off by default. */
void linli_config_strict_sections(int on);

/* Checks for tables. */
int linli_setting_check_nonempty(const char *v, char *why, size_t whylen);
/* A Kafka topic name: 1..249 of [A-Za-z0-9._-]. */
int linli_setting_check_topic(const char *v, char *why, size_t whylen);
/* Empty, or what check_topic allows (appended to a topic name). */
int linli_setting_check_topic_suffix(const char *v, char *why, size_t whylen);

/*
 * Load the configuration. path NULL means $LINLI_CONFIG, else
 * "config/linli.conf" relative to the working directory; a path given
 * explicitly (or through $LINLI_CONFIG) must exist, the default may be
 * missing (defaults and environment apply). On error returns
 * LINLI_ERR_CONFIG and writes "path:line: key: reason" into err.
 * On success *out is owned by the caller (linli_config_free).
 */
int linli_config_load(const char *path, linli_config_t **out, char *err,
                      size_t errlen);

/* Same, from a string (for tests); name is used in error messages. */
int linli_config_load_string(const char *text, const char *name,
                             linli_config_t **out, char *err, size_t errlen);

void linli_config_free(linli_config_t *cfg);

/*
 * Typed reads of a table key named "section.key" (e.g. "redis.port").
 * Reading a key that is in no table in force (libcommon's or a registered
 * one) is a programming error: it aborts with a message, so a typo or a
 * forgotten registration never silently reads a default.
 */
const char *linli_config_str(const linli_config_t *cfg, const char *key);
int64_t linli_config_int(const linli_config_t *cfg, const char *key);
int linli_config_bool(const linli_config_t *cfg, const char *key);

/* Set a value programmatically with the same validation as the file
 * ("section.key", or "kafka.<librdkafka property>"). */
int linli_config_set(linli_config_t *cfg, const char *key, const char *value,
                     char *err, size_t errlen);

/* Apply every [kafka] pair to a librdkafka conf. */
int linli_config_kafka_apply(const linli_config_t *cfg, rd_kafka_conf_t *conf,
                             char *err, size_t errlen);

/* The [kafka] value for a librdkafka property, or NULL if not set. */
const char *linli_config_kafka_get(const linli_config_t *cfg,
                                   const char *property);

#endif
