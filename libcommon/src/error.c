/* error.c - names for linli error codes, for logs and DLQ headers. */
#include "linli/error.h"

const char *linli_strerror(int err) {
  switch (err) {
  case LINLI_OK: return "ok";
  case LINLI_ERR_INVALID: return "invalid";
  case LINLI_ERR_TRANSIENT: return "transient";
  case LINLI_ERR_NOMEM: return "nomem";
  case LINLI_ERR_NOTFOUND: return "notfound";
  case LINLI_ERR_CONFIG: return "config";
  case LINLI_ERR_FATAL: return "fatal";
  case LINLI_ERR_CONFLICT: return "conflict";
  case LINLI_ERR_TOOBIG: return "toobig";
  default: return "unknown";
  }
}
