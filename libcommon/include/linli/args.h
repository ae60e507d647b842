/*
 * args.h - the command line of a linli daemon: a handful of long options
 * ("--config FILE", "--mode all", "--routes"), nothing positional. One
 * parser so every program answers a wrong argument the same way: its usage
 * line on stderr and exit status 2.
 */
#ifndef LINLI_ARGS_H
#define LINLI_ARGS_H

/* One option. Exactly one of value and flag is set. */
typedef struct linli_arg {
  const char *name;   /* "--config" */
  const char **value; /* gets the argument that follows (borrowed from argv) */
  int *flag;          /* set to 1 when the option is present (no argument) */
} linli_arg_t;

/*
 * Parse argv[1..argc-1] against opts (ended by an entry whose name is
 * NULL). A value not given keeps what the caller put there (its default).
 * LINLI_OK, or LINLI_ERR_INVALID after printing "usage: <usage>" to stderr
 * for an unknown argument or an option missing its value.
 */
int linli_args_parse(int argc, char **argv, const linli_arg_t *opts,
                     const char *usage);

#endif
