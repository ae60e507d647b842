/*
 * linli_test.h - what every test runner shares: the registration hook that
 * cunit_main.c calls, and helpers to reach the real stack (config, unique
 * names, topic creation, spawning helper processes).
 */
#ifndef LINLI_TEST_H
#define LINLI_TEST_H

#include <CUnit/CUnit.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <librdkafka/rdkafka.h>

#include "linli/config.h"

/* Defined by each test file: add suites to the CUnit registry; 0 on success. */
int linli_test_register(void);

/* Path of a file in the source tree ("config/linli.conf") into buf. */
const char *linli_test_source_path(const char *rel, char *buf, size_t len);
/* Path of a file in the build tree ("tests/test_consumer") into buf. */
const char *linli_test_binary_path(const char *rel, char *buf, size_t len);

/* The stack's configuration: $LINLI_CONFIG, else config/linli.conf of the
 * source tree. Owned by the support library; freed at exit. NULL on error
 * (the reason is printed). */
const linli_config_t *linli_test_config(void);

/* A name unique to this run and process: "<prefix>-<pid>-<time>-<n>". */
const char *linli_test_unique(const char *prefix, char *buf, size_t len);

/* Create a topic on the real broker (idempotent); 0 on success. */
int linli_test_create_topic(const char *topic, int partitions);

/* Spawn argv[0] (a path) with argv and extra "K=V" environment entries
 * (NULL-terminated, may be NULL); stdout/stderr go to log_path if non-NULL.
 * Returns the pid, or -1. */
pid_t linli_test_spawn(char *const argv[], char *const extra_env[],
                       const char *log_path);

/* SIGTERM (or SIGKILL if hard) and reap; returns the exit status or -1. */
int linli_test_stop(pid_t pid, int hard);

/* Read a topic (all partitions, from the beginning, read_committed) until
 * `expect` records were seen or timeout_ms passed; cb (may be NULL) sees
 * each record. Returns the number of records read, or -1. */
typedef void (*linli_test_record_fn)(void *arg, const rd_kafka_message_t *m);
int linli_test_read_topic(const char *topic, int expect, int timeout_ms,
                          linli_test_record_fn cb, void *arg);

/* Produce one record (idempotent, acks=all) and wait for it; 0 on success. */
int linli_test_produce(const char *topic, const char *key, const void *value,
                       size_t len);

/* Monotonic milliseconds, for test deadlines (not for the code under test). */
int64_t linli_test_now_ms(void);

#endif
