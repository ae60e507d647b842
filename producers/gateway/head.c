/*
 * head.c - the raw check of an HTTP request head (head.h). Kept apart from
 * conn.c's buffers and events so that it can be fuzzed on its own.
 */
#include "head.h"

#include <string.h>
#include <strings.h>

size_t gw_head_end(const char *buf, size_t from, size_t n) {
  for (size_t i = from; i < n; i++) {
    if (buf[i] != '\n')
      continue;
    if (i + 1 < n && buf[i + 1] == '\n')
      return i + 2;
    if (i + 2 < n && buf[i + 1] == '\r' && buf[i + 2] == '\n')
      return i + 3;
  }
  return 0;
}

/* Content-Length's value: 1-18 digits (no sign, no space inside). */
static int parse_length(const char *v, size_t vl, int64_t *out) {
  if (vl == 0 || vl > 18)
    return -1;
  int64_t x = 0;
  for (size_t i = 0; i < vl; i++) {
    if (v[i] < '0' || v[i] > '9')
      return -1;
    x = x * 10 + (v[i] - '0');
  }
  *out = x;
  return 0;
}

enum gw_head_verdict gw_head_scan(const char *h, size_t n,
                                  struct gw_head *out) {
  if (memchr(h, '\0', n))
    return GW_HEAD_NUL;
  struct gw_head r = {-1, NULL, 0};
  const char *line = memchr(h, '\n', n); /* the request line's end */
  while (line && (size_t)(line + 1 - h) < n) {
    line++;
    const char *eol = memchr(line, '\n', n - (size_t)(line - h));
    if (!eol)
      break;
    size_t len = (size_t)(eol - line);
    if (len && line[len - 1] == '\r')
      len--;
    const char *colon = memchr(line, ':', len);
    if (colon) {
      size_t nl = (size_t)(colon - line);
      const char *v = colon + 1;
      while (v < line + len && (*v == ' ' || *v == '\t'))
        v++;
      size_t vl = (size_t)(line + len - v);
      while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
        vl--;
      if (nl == 14 && strncasecmp(line, "Content-Length", 14) == 0) {
        int64_t x = 0;
        if (parse_length(v, vl, &x) != 0)
          return GW_HEAD_BAD_LENGTH;
        if (r.content_length >= 0 && x != r.content_length)
          return GW_HEAD_CONFLICTING_LENGTH;
        r.content_length = x;
      } else if (nl == 17 &&
                 strncasecmp(line, "Transfer-Encoding", 17) == 0) {
        return GW_HEAD_TRANSFER_ENCODING;
      } else if (nl == 13 && strncasecmp(line, "Authorization", 13) == 0) {
        r.auth = v;
        r.auth_len = vl;
      }
    }
    line = eol;
  }
  *out = r;
  return GW_HEAD_OK;
}
