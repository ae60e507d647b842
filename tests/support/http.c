/*
 * http.c - the tests' HTTP/1.1 client for the gateway: one request per
 * connection (Connection: close), the answer read to EOF. Raw sockets on
 * purpose: the tests also send what no client library would (split
 * bodies, bad headers), through the same dial and write.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "linli_test.h"

void linli_test_resp_free(struct linli_test_resp *r) {
  free(r->raw);
  memset(r, 0, sizeof *r);
}

int linli_test_dial(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0)
    return -1;
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  struct timeval tv = {30, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

int linli_test_write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w <= 0)
      return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

int linli_test_read_response(int fd, struct linli_test_resp *out) {
  memset(out, 0, sizeof *out);
  size_t cap = 8192, len = 0;
  char *buf = malloc(cap);
  if (!buf)
    return -1;
  for (;;) {
    if (len + 1024 > cap) {
      char *g = realloc(buf, cap * 2);
      if (!g)
        break;
      buf = g;
      cap *= 2;
    }
    ssize_t r = recv(fd, buf + len, cap - len - 1, 0);
    if (r <= 0)
      break;
    len += (size_t)r;
  }
  buf[len] = '\0';
  out->raw = buf;
  if (sscanf(buf, "HTTP/1.%*d %d", &out->status) != 1)
    return -1;
  char *b = strstr(buf, "\r\n\r\n");
  out->body = b ? b + 4 : buf + len;
  out->len = (size_t)(buf + len - out->body);
  return 0;
}

int linli_test_http_ex(int port, const char *method, const char *path,
                       const char *token, const char *extra,
                       const char *body, size_t bodylen,
                       struct linli_test_resp *out) {
  linli_test_resp_free(out);
  int fd = linli_test_dial(port);
  if (fd < 0)
    return -1;
  char head[2048], auth[256] = "";
  if (token)
    snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", token);
  int n = snprintf(head, sizeof head,
                   "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                   "%s%s%sContent-Length: %zu\r\n\r\n",
                   method, path, auth,
                   body ? "Content-Type: application/json\r\n" : "",
                   extra ? extra : "", body ? bodylen : 0);
  /* A refused body (413) may reset the connection mid-write: read anyway. */
  if (linli_test_write_all(fd, head, (size_t)n) == 0 && body)
    linli_test_write_all(fd, body, bodylen);
  int rc = linli_test_read_response(fd, out);
  close(fd);
  return rc;
}

int linli_test_http(int port, const char *method, const char *path,
                    const char *token, const char *body,
                    struct linli_test_resp *out) {
  memset(out, 0, sizeof *out);
  return linli_test_http_ex(port, method, path, token, NULL, body,
                            body ? strlen(body) : 0, out);
}

int linli_test_port_free(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int ok = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
  if (fd >= 0)
    close(fd);
  return ok;
}
