/*
 * head.h - the raw check of an HTTP request head, before evhttp parses it
 * (conn.c's input filter): where the head ends, a NUL byte, the
 * Content-Length headers (one value, digits only, the same if repeated),
 * Transfer-Encoding (refused: bodies need a length) and the Authorization
 * value. Pure, no I/O: fuzzed by tests/fuzz/fuzz_http_head.
 */
#ifndef GW_HEAD_H
#define GW_HEAD_H

#include <stddef.h>
#include <stdint.h>

enum gw_head_verdict {
  GW_HEAD_OK,
  GW_HEAD_NUL,              /* a NUL byte in the head */
  GW_HEAD_BAD_LENGTH,       /* a Content-Length that is not 1-18 digits */
  GW_HEAD_CONFLICTING_LENGTH, /* two Content-Length headers that differ */
  GW_HEAD_TRANSFER_ENCODING,  /* any Transfer-Encoding header */
};

struct gw_head {
  int64_t content_length; /* -1 when the head has none */
  const char *auth;       /* the Authorization value, trimmed (inside the
                             head, not NUL-terminated), or NULL */
  size_t auth_len;
};

/* The end of a request head in buf[0..n) (the index after the empty line),
 * searching from `from`, or 0. Lines end in CRLF or LF, as evhttp accepts. */
size_t gw_head_end(const char *buf, size_t from, size_t n);

/* Scan the complete head h[0..n) (request line first). *out is set on
 * GW_HEAD_OK; the first problem found otherwise. */
enum gw_head_verdict gw_head_scan(const char *h, size_t n,
                                  struct gw_head *out);

#endif
