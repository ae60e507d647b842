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
/* Delete a topic (waits up to 10 s for the broker's answer); 0 on
 * success. */
int linli_test_delete_topic(const char *topic);
/* Create (del 0) or delete (del 1) every topic of config/topics.conf with
 * suffix appended: a suite's private copies of linli's topics. 0 when
 * every one succeeded. */
int linli_test_suffixed_topics(const char *suffix, int del);

/* Spawn argv[0] (a path) with argv and extra "K=V" environment entries
 * (NULL-terminated, may be NULL); stdout/stderr go to log_path if non-NULL.
 * Returns the pid, or -1. */
pid_t linli_test_spawn(char *const argv[], char *const extra_env[],
                       const char *log_path);

/* Like linli_test_spawn, but the child is SIGKILLed when the test process
 * dies (PR_SET_PDEATHSIG): a crashed or aborted test never leaves a
 * consumer running that would go on processing later runs' input. */
pid_t linli_test_spawn_tied(char *const argv[], char *const extra_env[],
                            const char *log_path);

/* SIGTERM (or SIGKILL if hard) and reap; returns the exit status or -1. */
int linli_test_stop(pid_t pid, int hard);

/* SIGTERM *pid and reap it, expecting a clean exit (status 0: it drained,
 * and under ASan leaked nothing); otherwise print that `what` exited with
 * its status and the log to read. *pid becomes 0. 1 if clean (also when
 * *pid <= 0: nothing to stop), else 0. */
int linli_test_stop_clean(pid_t *pid, const char *what, const char *log);

/* Run the build's linli-replay with args (NULL-terminated, at most 14);
 * its stdout and stderr go to out_path (replaced). The exit status, or -1
 * if it could not run or did not exit. */
int linli_test_replay(char *const args[], const char *out_path);

/* 1 if a line of the file at path contains needle, else 0. */
int linli_test_file_contains(const char *path, const char *needle);

/* Set the time a consumer under test reads from its clock file (ms):
 * written to a temporary file and renamed, so it never reads half a
 * number. 0 on success. */
int linli_test_write_clock(const char *file, int64_t ms);

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

/* ------------------------------------------------------------------------
 * Topics shared across runs (the fixed linli.*.v1 names): create them
 * idempotently, read only what a test wrote, start a consumer group at the
 * current end of its input topics.
 * --------------------------------------------------------------------- */

/* Create topic with `partitions` partitions if it does not exist
 * (cleanup_policy, e.g. "compact", may be NULL); an existing topic with
 * fewer partitions is grown to `partitions`. Waits until every partition
 * has a leader. 0 on success. */
int linli_test_ensure_topic(const char *topic, int partitions,
                            const char *cleanup_policy);

/* Commit, for consumer group `group`, the current end offset of every
 * partition of each topic (NULL-terminated), so that a consumer started in
 * that group afterwards reads only records written from now on. The group
 * must have no live members. 0 on success. */
int linli_test_group_start_at_end(const char *group,
                                  const char *const *topics);

/* A read_committed reader of several topics (no consumer group
 * membership: partitions assigned explicitly), that reads incrementally. */
typedef struct linli_test_reader linli_test_reader_t;
/* from_end: start at each partition's current end offset (only records
 * written from now on), else from the beginning. NULL on error. */
linli_test_reader_t *linli_test_reader_new(const char *const *topics,
                                           int from_end);
/* Poll for up to timeout_ms; cb (may be NULL) sees each record. Returns
 * early, with no linger, once until(arg) (may be NULL) returns non-zero
 * (checked before the first poll too). Returns the records read. */
typedef int (*linli_test_until_fn)(void *arg);
int linli_test_reader_poll(linli_test_reader_t *r, int timeout_ms,
                           linli_test_record_fn cb, void *arg,
                           linli_test_until_fn until);
void linli_test_reader_free(linli_test_reader_t *r);

/* Produce one record and report where it was written (partition/offset
 * may be NULL). 0 on success. */
int linli_test_produce_at(const char *topic, const char *key,
                          const void *value, size_t len, int32_t *partition,
                          int64_t *offset);

/* Produce n records fast (asynchronously, then wait for all of them).
 * keys[i] may be NULL. 0 when every record was acknowledged. */
int linli_test_produce_batch(const char *topic, size_t n,
                             const char *const *keys,
                             const void *const *values, const size_t *lens);

/* Copy the last header `name` of m as a string into out ("" if absent). */
void linli_test_header(const rd_kafka_message_t *m, const char *name,
                       char *out, size_t len);

/* Consumer groups with live members assigned partitions of topic (only
 * members whose client.id starts with client_prefix, if not NULL): their
 * number (-1 on error); their names, comma-separated, into names (may be
 * NULL). Tests on the shared linli.*.v1 topics use it to wait until no
 * other run's consumer (e.g. "linli-reserver") processes the same input. */
int linli_test_topic_consumers(const char *topic, const char *client_prefix,
                               char *names, size_t len);

/* The ledger keeps its offsets in PostgreSQL: start group at the current
 * end of every topic it reads, so it records the test's run and not the
 * whole shared log. 0, or -1 (said on stderr). */
int linli_test_ledger_start_at_end(const char *group);

/* A linli-ledger in group as instance, with a fresh random crypto key,
 * output to log; extra: one more NAME=value, or NULL. Tied to the test. */
pid_t linli_test_spawn_ledger(const char *group, const char *instance,
                              const char *log, const char *extra);

/* A growing vector of collected records: struct { T *v; size_t n, cap; }.
 * LINLI_TEST_PUSH(vec) appends a zeroed element and returns it (aborts
 * without memory). */
void *linli_test_vec_push(void **v, size_t *n, size_t *cap, size_t sz);
#define LINLI_TEST_PUSH(vec)                                                   \
  linli_test_vec_push((void **)&(vec).v, &(vec).n, &(vec).cap,                 \
                      sizeof *(vec).v)

/* http.c: the gateway's answer, read to EOF (Connection: close). */
struct linli_test_resp {
  int status;
  char *raw;  /* the whole response (malloc'd) */
  char *body; /* into raw */
  size_t len;
};
void linli_test_resp_free(struct linli_test_resp *r);
/* A loopback connection to port (30 s receive timeout); -1. */
int linli_test_dial(int port);
int linli_test_write_all(int fd, const char *p, size_t n);
/* Read fd to EOF into out; 0, or -1 without a status line. */
int linli_test_read_response(int fd, struct linli_test_resp *out);
/* One request with a bearer token and an optional JSON body; 0 when a
 * response was read. */
int linli_test_http(int port, const char *method, const char *path,
                    const char *token, const char *body,
                    struct linli_test_resp *out);
/* The same with no Authorization header when token is NULL, extra header
 * lines ("K: v\r\n...", may be NULL) and a body of bodylen bytes. out
 * is freed first if it holds an answer (keep it zeroed before first use). */
int linli_test_http_ex(int port, const char *method, const char *path,
                       const char *token, const char *extra,
                       const char *body, size_t bodylen,
                       struct linli_test_resp *out);
/* 1 if nothing is bound to loopback port. */
int linli_test_port_free(int port);
/* Wait up to timeout_ms for child pid to end: 0 with its status, -1 if it
 * is still running. */
int linli_test_wait_exit(pid_t pid, int timeout_ms, int *status);

#endif
