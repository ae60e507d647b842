/*
 * args.c - the long-option parser every linli daemon's main() uses (see
 * args.h), so no program keeps its own copy of the loop.
 */
#include <stdio.h>
#include <string.h>

#include "linli/args.h"
#include "linli/error.h"

static const linli_arg_t *find(const linli_arg_t *opts, const char *name) {
  for (const linli_arg_t *o = opts; o->name != NULL; o++)
    if (strcmp(o->name, name) == 0)
      return o;
  return NULL;
}

int linli_args_parse(int argc, char **argv, const linli_arg_t *opts,
                     const char *usage) {
  for (int i = 1; i < argc; i++) {
    const linli_arg_t *o = find(opts, argv[i]);
    if (o != NULL && o->flag != NULL) {
      *o->flag = 1;
    } else if (o != NULL && o->value != NULL && i + 1 < argc) {
      *o->value = argv[++i];
    } else {
      fprintf(stderr, "usage: %s\n", usage);
      return LINLI_ERR_INVALID;
    }
  }
  return LINLI_OK;
}
