/*
 * commands.c - the batch's queue of Redis commands (batch.h): the lookups
 * of the lookup step, then the global index writes that report.c asks for,
 * all in the batch arena and sent by batch.c as pipelines. Kept apart from
 * batch.c, whose steps call report.c, so that report.c does not call back
 * into the file that dispatches to it.
 */
#include <string.h>

#include "batch.h"
#include "linli/error.h"

int rsv_queue_owned(struct rsv_batch *b, int argc, const char **argv) {
  if (b->ncmds == b->cmd_cap) {
    size_t cap = b->cmd_cap ? b->cmd_cap * 2 : 256;
    linli_redis_cmd_t *c = arena_alloc(&b->arena, cap * sizeof *c);
    if (!c)
      return LINLI_ERR_NOMEM;
    if (b->ncmds)
      memcpy(c, b->cmds, b->ncmds * sizeof *c);
    b->cmds = c;
    b->cmd_cap = cap;
  }
  b->cmds[b->ncmds++] = (linli_redis_cmd_t){argc, argv, NULL};
  return LINLI_OK;
}

int rsv_queue(struct rsv_batch *b, int argc, const char **argv) {
  const char **v = arena_alloc(&b->arena, (size_t)argc * sizeof *v);
  if (!v)
    return LINLI_ERR_NOMEM;
  for (int i = 0; i < argc; i++) {
    size_t n = strlen(argv[i]) + 1;
    char *s = arena_alloc(&b->arena, n);
    if (!s)
      return LINLI_ERR_NOMEM;
    memcpy(s, argv[i], n);
    v[i] = s;
  }
  return rsv_queue_owned(b, argc, v);
}
