/*
 * process.c - start-up and shut-down shared by every linli executable, so
 * that config errors, logging and the metrics listener behave the same in
 * every process.
 */
#include <malloc.h>
#include <stdio.h>

#include "linli/args.h"
#include "linli/config.h"
#include "linli/error.h"
#include "linli/log.h"
#include "linli/metrics.h"
#include "linli/process.h"

int linli_process_start(const char *prog, const char *config_path,
                        linli_config_t **cfg) {
  char err[1024];
  /* glibc gives each thread that allocates an arena of its own, and
   * librdkafka's threads allocate every fetched batch: what they free
   * stays resident in their arenas. Two arenas are enough for processes
   * whose work is one loop: one ledger replaying a backlog peaked at
   * 59-60 MB instead of 60-67 MB (docs/performance.md, run G). Set before
   * any thread exists. */
  mallopt(M_ARENA_MAX, 2);
  linli_log_init(prog, LINLI_LOG_INFO);
  if (linli_config_load(config_path, cfg, err, sizeof err) != LINLI_OK) {
    fprintf(stderr, "%s: configuration error: %s\n", prog, err);
    return LINLI_ERR_CONFIG;
  }
  int level = linli_log_level_parse(linli_config_str(*cfg, "log.level"));
  linli_log_init(prog, level < 0 ? LINLI_LOG_INFO : level);
  int port = (int)linli_config_int(*cfg, "metrics.port");
  if (port >= 0) {
    int bound = 0;
    if (linli_metrics_serve(linli_config_str(*cfg, "metrics.addr"), port,
                            &bound) != LINLI_OK) {
      fprintf(stderr, "%s: cannot serve metrics on %s:%d (metrics.port)\n",
              prog, linli_config_str(*cfg, "metrics.addr"), port);
      linli_config_free(*cfg);
      *cfg = NULL;
      return LINLI_ERR_CONFIG;
    }
    LINLI_INFO("metrics listening", "addr=%s port=%d",
               linli_config_str(*cfg, "metrics.addr"), bound);
  }
  return LINLI_OK;
}

int linli_process_main(int argc, char **argv, const char *prog,
                       linli_config_t **cfg) {
  const char *config_path = NULL;
  const linli_arg_t opts[] = {{"--config", &config_path, NULL},
                              {NULL, NULL, NULL}};
  char usage[128];
  snprintf(usage, sizeof usage, "linli-%s [--config FILE]", prog);
  if (linli_args_parse(argc, argv, opts, usage) != LINLI_OK)
    return LINLI_ERR_INVALID;
  return linli_process_start(prog, config_path, cfg);
}

void linli_process_exit(linli_config_t *cfg) {
  linli_metrics_shutdown();
  linli_config_free(cfg);
}
