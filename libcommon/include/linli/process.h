/*
 * process.h - what every linli executable does at start and exit: load the
 * configuration, set up logging from log.level, start the /metrics and
 * /healthz listener from metrics.port, and tear it all down again.
 */
#ifndef LINLI_PROCESS_H
#define LINLI_PROCESS_H

#include <stddef.h>

#include "linli/config.h"

/*
 * Load the config (path NULL: $LINLI_CONFIG or config/linli.conf), init
 * logging as prog, start metrics. On error prints the reason to stderr and
 * returns non-zero; on success *cfg is owned by the caller and must be
 * released with linli_process_exit().
 */
int linli_process_start(const char *prog, const char *config_path,
                        linli_config_t **cfg);

/*
 * The start of a daemon whose only option is --config FILE: parse argv
 * (a wrong argument prints "usage: linli-<prog> [--config FILE]"), then
 * linli_process_start. Non-zero on error (exit with status 2).
 */
int linli_process_main(int argc, char **argv, const char *prog,
                       linli_config_t **cfg);

/* Stop metrics and free the config. */
void linli_process_exit(linli_config_t *cfg);

#endif
