/*
 * main.c - linli-ledger's process: configuration, the encryption key for
 * personal data (crypto.key; the ledger does not start without it), the
 * PostgreSQL connection (application_name "linli-ledger"), the idempotent
 * producer for order statuses and DLQ records, and libcommon's runner with
 * PostgreSQL as its offset store (batch.c).
 *
 * Usage: linli-ledger [--config FILE]
 * Consumer group: runner.group, default "linli-ledger". Several instances
 * share the partitions; runner.instance_id only tells them apart in logs
 * and client ids (there is no transactional id: offsets commit in
 * PostgreSQL). The DLQ is runner.dlq_topic; ledger.topic_suffix (tests)
 * is appended to every other topic name.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ledger.h"
#include "linli/error.h"
#include "linli/log.h"
#include "linli/process.h"
#include "domain/schema.h"
#include "settings.h"

static struct ledger *signal_ledger;

static void on_signal(int sig) {
  (void)sig;
  if (signal_ledger != NULL) {
    signal_ledger->stop = 1;
    if (signal_ledger->runner != NULL)
      linli_runner_stop(signal_ledger->runner);
    /* Stop waiting for an unreachable database: the open batch is then
     * dropped, not committed, and the next run redoes it. */
    if (signal_ledger->pg != NULL)
      linli_pg_cancel_retries(signal_ledger->pg);
  }
}

static void handle_signals(struct ledger *lg) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  signal_ledger = lg;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
}

static void register_metrics(struct ledger *lg) {
  lg->m_records = linli_metrics_counter("linli_ledger_records_total", NULL,
                                        "Input records committed");
  lg->m_dlq = linli_metrics_counter("linli_ledger_dlq_total", NULL,
                                    "Input records sent to the DLQ");
  lg->m_duplicates = linli_metrics_counter(
      "linli_ledger_duplicates_total", NULL,
      "Events already in the record (redelivered or duplicated)");
  lg->m_batches = linli_metrics_counter("linli_ledger_batches_total", NULL,
                                        "Database transactions committed");
  lg->m_published = linli_metrics_counter(
      "linli_ledger_published_total", NULL,
      "Order statuses and DLQ records published after commit");
  lg->m_batch_s = linli_metrics_histogram(
      "linli_ledger_batch_seconds", NULL,
      "Time to apply and commit one batch", NULL, 0);
  lg->m_assigned = linli_metrics_gauge("linli_ledger_assigned_partitions",
                                       NULL, "Partitions assigned");
}

/* Wait for PostgreSQL at start-up (a stack starting up), until stopped. */
static int connect_pg(struct ledger *lg, char *err, size_t errlen) {
  const char *conninfo = linli_config_str(lg->cfg, "pg.conninfo");
  int timeout = (int)linli_config_int(lg->cfg, "pg.connect_timeout_ms");
  for (;;) {
    int rc = linli_pg_connect(conninfo, timeout, &lg->pg, err, errlen);
    if (rc != LINLI_ERR_TRANSIENT || lg->stop)
      return rc;
    LINLI_WARN("waiting for PostgreSQL", "sqlstate=%.5s", err);
    struct timespec ts = {1, 0};
    nanosleep(&ts, NULL);
  }
}

/* Every linli topic but the ledger's own output (NULL-terminated,
 * malloc'd). */
static int ledger_topics(const struct ledger *lg, char ***out) {
  size_t n = 0;
  const linli_topic_schema_t *all = linli_schema_topics(&n);
  char **t = calloc(n + 1, sizeof *t);
  if (t == NULL)
    return LINLI_ERR_NOMEM;
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    if (strcmp(all[i].name, LINLI_TOPIC_ORDER_STATUS) == 0)
      continue;
    char name[320];
    if (strcmp(all[i].name, LINLI_TOPIC_DLQ) == 0)
      snprintf(name, sizeof name, "%s", lg->dlq_topic);
    else
      snprintf(name, sizeof name, "%s%s", all[i].name, lg->suffix);
    if ((t[k++] = strdup(name)) == NULL) {
      for (size_t j = 0; j < k; j++)
        free(t[j]);
      free(t);
      return LINLI_ERR_NOMEM;
    }
  }
  *out = t;
  return LINLI_OK;
}

static const struct ledger_stmt SCHEMA_CHECK = {
    "ledger_schema_check", "SELECT messages FROM ledger_outbox LIMIT 0", 0, 0,
    NULL, NULL, 0, 0, NULL};

int main(int argc, char **argv) {
  /* Name our sessions (pg_stat_activity) unless the conninfo does. */
  setenv("PGAPPNAME", LEDGER_APP_NAME, 0);

  linli_config_t *cfg = NULL;
  ledger_settings_register();
  if (linli_process_main(argc, argv, LEDGER_NAME, &cfg) != LINLI_OK)
    return 2;
  static struct ledger lg;
  lg.cfg = cfg;
  char err[1024];
  char **topics = NULL;
  int code = 1;
  if (ledger_crypto_init(&lg.crypto, linli_config_str(cfg, "crypto.key"), err,
                         sizeof err) != LINLI_OK) {
    fprintf(stderr, "linli-ledger: configuration error: %s\n", err);
    code = 2;
    goto out;
  }
  const char *group = linli_config_str(cfg, "runner.group");
  snprintf(lg.group, sizeof lg.group, "%s",
           group && group[0] ? group : "linli-ledger");
  snprintf(lg.dlq_topic, sizeof lg.dlq_topic, "%s",
           linli_config_str(cfg, "runner.dlq_topic"));
  snprintf(lg.suffix, sizeof lg.suffix, "%s",
           linli_config_str(cfg, "ledger.topic_suffix"));
  snprintf(lg.status_topic, sizeof lg.status_topic, "%s%s",
           LINLI_TOPIC_ORDER_STATUS, lg.suffix);
  const char *inst = linli_config_str(cfg, "runner.instance_id");
  if (inst && inst[0]) {
    snprintf(lg.instance, sizeof lg.instance, "%s", inst);
  } else {
    char host[64] = "host";
    gethostname(host, sizeof host - 1);
    snprintf(lg.instance, sizeof lg.instance, "%s-%d", host, (int)getpid());
  }
  lg.backoff_ms = (int)linli_config_int(cfg, "runner.retry_backoff_ms");
  lg.max_lines = (int)linli_config_int(cfg, "orders.max_lines");
  register_metrics(&lg);
  handle_signals(&lg);

  if (connect_pg(&lg, err, sizeof err) != LINLI_OK) {
    fprintf(stderr, "linli-ledger: PostgreSQL: %s\n",
            lg.stop ? "stopped while connecting" : err);
    goto out;
  }
  if (ledger_sql(&lg, &SCHEMA_CHECK, NULL, NULL, err, sizeof err) !=
      LINLI_OK) {
    fprintf(stderr,
            "linli-ledger: the record's schema is missing or old (%.200s): "
            "run linli-migrate\n",
            err);
    goto out;
  }
  char client_id[200];
  snprintf(client_id, sizeof client_id, "linli-ledger-%s", lg.instance);
  if (linli_producer_new(cfg, client_id, &lg.producer, err, sizeof err) !=
      LINLI_OK) {
    fprintf(stderr, "linli-ledger: producer: %s\n", err);
    goto out;
  }
  if (ledger_topics(&lg, &topics) != LINLI_OK) {
    fprintf(stderr, "linli-ledger: out of memory\n");
    goto out;
  }
  linli_runner_spec_t spec = {
      .name = LEDGER_NAME,
      .group_id = lg.group,
      .topics = (const char *const *)topics,
      .app = &lg,
      .handle_batch = ledger_handle_batch,
      .tick = ledger_tick,
      .offsets_load = ledger_offsets_load,
  };
  if (linli_runner_new(cfg, &spec, &lg.runner, err, sizeof err) != LINLI_OK) {
    fprintf(stderr, "linli-ledger: runner: %s\n", err);
    goto out;
  }
  if (lg.stop) /* a signal before the runner existed */
    linli_runner_stop(lg.runner);
  if (linli_runner_run(lg.runner, err, sizeof err) != LINLI_OK) {
    LINLI_ERROR("ledger stopped", "reason=\"%s\"", err);
    goto out;
  }
  LINLI_INFO("ledger stopped", "%s", "clean=1");
  code = 0;
out:
  signal_ledger = NULL;
  linli_runner_free(lg.runner);
  ledger_outbox_finish(&lg);
  ledger_batch_free(&lg);
  for (size_t i = 0; topics != NULL && topics[i] != NULL; i++)
    free(topics[i]);
  free(topics);
  linli_producer_free(lg.producer); /* may still report to a flight */
  ledger_outbox_free(&lg);
  linli_pg_free(lg.pg);
  ledger_crypto_wipe(&lg.crypto);
  linli_process_exit(cfg);
  return code;
}
