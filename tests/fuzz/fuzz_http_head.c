/*
 * fuzz_http_head.c - bytes as a client sends them to the gateway, checked
 * raw before evhttp parses them (producers/gateway/head.h): where the head
 * ends, then the head's verdict. A NUL anywhere is always refused; what is
 * found points inside the head; a Content-Length is what its digits say.
 */
#include <string.h>

#include "fuzz_common.h"
#include "producers/gateway/head.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *buf = (const char *)data;
  size_t end = gw_head_end(buf, 0, size);
  FUZZ_REQUIRE(end <= size, "the head ends inside the input");
  if (end > 0) {
    int lf = end >= 2 && buf[end - 1] == '\n' && buf[end - 2] == '\n';
    int crlf = end >= 3 && buf[end - 1] == '\n' && buf[end - 2] == '\r' &&
               buf[end - 3] == '\n';
    FUZZ_REQUIRE(lf || crlf, "the head ends with an empty line");
  }
  size_t n = end ? end : size;
  struct gw_head hd;
  enum gw_head_verdict v = gw_head_scan(buf, n, &hd);
  FUZZ_REQUIRE((memchr(buf, '\0', n) != NULL) == (v == GW_HEAD_NUL),
               "a head with a NUL byte is refused for it, and only then");
  if (v != GW_HEAD_OK)
    return 0;
  FUZZ_REQUIRE(hd.content_length >= -1 &&
                   hd.content_length < INT64_C(1000000000000000000),
               "a length is absent or at most 18 digits");
  if (hd.auth != NULL)
    FUZZ_REQUIRE(hd.auth >= buf && hd.auth + hd.auth_len <= buf + n,
                 "the Authorization value lies inside the head");
  return 0;
}
