/*
 * error.h - the error codes every linli_ function returns.
 *
 * 0 is success; failures are small negative numbers so that callers can tell
 * a bad input (which goes to the DLQ or a 4xx) from a transient fault (which
 * is retried) from a fatal one (which stops the process).
 */
#ifndef LINLI_ERROR_H
#define LINLI_ERROR_H

enum linli_err {
  LINLI_OK = 0,
  LINLI_ERR_INVALID = -1,   /* bad input: malformed, out of range, illegal */
  LINLI_ERR_TRANSIENT = -2, /* I/O, timeout, lost connection: retry later */
  LINLI_ERR_NOMEM = -3,     /* allocation failed */
  LINLI_ERR_NOTFOUND = -4,  /* the thing asked for does not exist */
  LINLI_ERR_CONFIG = -5,    /* configuration is wrong: fix and restart */
  LINLI_ERR_FATAL = -6,     /* unrecoverable: the process must stop */
  LINLI_ERR_CONFLICT = -7,  /* already exists / state does not allow it */
  LINLI_ERR_TOOBIG = -8,    /* input exceeds a size limit */
};

/* A short static name for an error code ("invalid", "transient", ...). */
const char *linli_strerror(int err);

#endif
