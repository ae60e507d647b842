/*
 * topics.h - linli's topic names for C code. config/topics.conf is the one
 * list of topics (name, partitions, retention, cleanup policy): scripts
 * read it directly (scripts/kafka.sh creates the topics from it), and the
 * build generates domain/topics_conf.h from it, so a topic added, renamed or
 * repartitioned there reaches every program at the next build and cannot
 * be spelt differently in C. The generated header defines, for a topic
 * "linli.<a>.<b>.v1":
 *   LINLI_TOPIC_<A>_<B>             its name ("-" and "." become "_")
 *   LINLI_TOPIC_<A>_<B>_PARTITIONS  its partition count
 *   LINLI_TOPIC_COUNT               how many topics there are
 * test_schema checks the registry (domain/schema.h) against the same file.
 */
#ifndef DOMAIN_TOPICS_H
#define DOMAIN_TOPICS_H

#include "domain/topics_conf.h"

/* The settlements topic's usual short name. */
#define LINLI_TOPIC_SETTLEMENTS LINLI_TOPIC_GROUPBUY_SETTLEMENTS

#endif
