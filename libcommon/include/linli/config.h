/*
 * config.h - linli's configuration: config/linli.conf (INI: [section] and
 * key = value, parsed with inih), every key overridable from the environment
 * as LINLI_<SECTION>_<KEY> (upper case, '.' -> '_').
 *
 * Known keys, their defaults and bounds live in one table in config.c.
 * Everything in the [kafka] section passes straight to librdkafka
 * (bootstrap.servers, security.protocol, sasl.*, ssl.*, tuning), checked
 * against librdkafka when the file is loaded. An unknown key, a bad value or
 * a missing required key fails the load with "path:line: key: reason".
 */
#ifndef LINLI_CONFIG_H
#define LINLI_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

typedef struct linli_config linli_config_t;

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
 * Reading a key that is not in the table is a programming error: it aborts
 * with a message, so a typo never silently reads a default.
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
