/*
 * kafka_internal.h - helpers shared by the producer and the runner; not
 * part of libcommon's public API.
 */
#ifndef LINLI_KAFKA_INTERNAL_H
#define LINLI_KAFKA_INTERNAL_H

#include <stddef.h>

#include <librdkafka/rdkafka.h>

#include "linli/config.h"

/* linli's producer defaults (lz4, murmur2_random partitioner, ...), then
 * the [kafka] section of cfg (may be NULL), then client.id. */
int linli_kafka_conf_base(const linli_config_t *cfg, rd_kafka_conf_t *conf,
                          const char *client_id, char *err, size_t errlen);

#endif
