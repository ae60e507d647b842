/*
 * main.c - linli-replay: the event log as the analysts' source of truth.
 *
 *   linli-replay export    decode a slice of the log to JSON lines or CSV
 *   linli-replay republish copy a slice into a sandbox topic
 *   linli-replay audit     compare the log with the record and hot state
 *   linli-replay rebuild   restore Redis from the log
 *
 * Replays are fenced: they read with an assign-only consumer (no group, no
 * commits) and write only to the target they are given.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domain/settings.h"
#include "linli/config.h"
#include "linli/error.h"
#include "linli/process.h"
#include "audit.h"
#include "replay.h"

static void usage(void) {
  fprintf(stderr,
          "usage: linli-replay [--config FILE] COMMAND [options]\n"
          "commands:\n"
          "  export     decode topics to JSON lines or CSV\n"
          "  republish  copy a slice of a topic into a sandbox topic\n"
          "  audit      rebuild state from the log, compare with the record\n"
          "             and the hot state, check the invariants\n"
          "  rebuild    restore the consumers' hot state in Redis\n"
          "Run linli-replay COMMAND --help for its options.\n");
}

int main(int argc, char **argv) {
  const char *config_path = NULL;
  int i = 1;
  if (i + 1 < argc && strcmp(argv[i], "--config") == 0) {
    config_path = argv[i + 1];
    i += 2;
  }
  if (i >= argc || strcmp(argv[i], "--help") == 0 ||
      strcmp(argv[i], "-h") == 0) {
    usage();
    return i >= argc ? 2 : 0;
  }
  const char *cmd = argv[i];
  /* A one-shot tool opens no metrics listener unless asked to. */
  setenv("LINLI_METRICS_PORT", "-1", 0);
  linli_config_t *cfg = NULL;
  /* The audit judges records as the ledger does (orders.max_lines). */
  linli_config_register(&domain_settings_orders);
  if (linli_process_start("replay", config_path, &cfg) != LINLI_OK)
    return 2;
  int rc;
  if (strcmp(cmd, "export") == 0) {
    rc = replay_cmd_export(cfg, argc - i, argv + i);
  } else if (strcmp(cmd, "audit") == 0) {
    rc = replay_cmd_audit(cfg, argc - i, argv + i);
  } else if (strcmp(cmd, "rebuild") == 0) {
    rc = replay_cmd_rebuild(cfg, argc - i, argv + i);
  } else if (strcmp(cmd, "republish") == 0) {
    rc = replay_cmd_republish(cfg, argc - i, argv + i);
  } else {
    fprintf(stderr, "linli-replay: unknown command %s\n", cmd);
    usage();
    rc = 2;
  }
  linli_process_exit(cfg);
  return rc;
}
