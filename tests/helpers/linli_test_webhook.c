/*
 * linli_test_webhook.c - a webhook receiver for tests and benchmarks: it
 * verifies each request's Linli-Signature (HMAC-SHA256 over "t.body"),
 * answers 200 (or 500 while --fail-file exists) and appends one line per
 * request to --log: "<notification id> <signature ok 0|1> <status>
 * <user_id of the body> <epoch ms>" (tests share the stack: they count
 * their users; benchmarks time the first and last line).
 *
 * Usage: linli_test_webhook --port-file F --log F --secret S
 *                           [--fail-file F] [--quiet]
 * Listens on 127.0.0.1, a free port written to --port-file once bound.
 * --quiet logs nothing (benchmarks): it counts and prints the total at exit.
 */
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *secret = "", *fail_file = NULL;
static FILE *logf_;
static long long total;

static int verify(const char *sig, const char *body, size_t len) {
  const char *t = sig ? strstr(sig, "t=") : NULL;
  const char *v = sig ? strstr(sig, ",v1=") : NULL;
  if (!t || !v || v < t)
    return 0;
  crypto_auth_hmacsha256_state st;
  unsigned char mac[crypto_auth_hmacsha256_BYTES];
  crypto_auth_hmacsha256_init(&st, (const unsigned char *)secret,
                              strlen(secret));
  crypto_auth_hmacsha256_update(&st, (const unsigned char *)t + 2,
                                (size_t)(v - t - 2));
  crypto_auth_hmacsha256_update(&st, (const unsigned char *)".", 1);
  crypto_auth_hmacsha256_update(&st, (const unsigned char *)body, len);
  crypto_auth_hmacsha256_final(&st, mac);
  char hex[2 * sizeof mac + 1];
  sodium_bin2hex(hex, sizeof hex, mac, sizeof mac);
  return strlen(v + 4) == strlen(hex) &&
         sodium_memcmp(hex, v + 4, strlen(hex)) == 0;
}

static void on_request(struct evhttp_request *req, void *arg) {
  (void)arg;
  struct evkeyvalq *h = evhttp_request_get_input_headers(req);
  const char *id = evhttp_find_header(h, "Linli-Notification-Id");
  const char *sig = evhttp_find_header(h, "Linli-Signature");
  struct evbuffer *in = evhttp_request_get_input_buffer(req);
  size_t len = evbuffer_get_length(in);
  char *body = malloc(len + 1);
  if (!body) {
    evhttp_send_error(req, 500, NULL);
    return;
  }
  evbuffer_copyout(in, body, len);
  body[len] = '\0';
  int ok = verify(sig, body, len);
  int code = fail_file && access(fail_file, F_OK) == 0 ? 500 : 200;
  total++;
  if (logf_) {
    json_t *j = json_loadb(body, len, 0, NULL);
    const char *user = j ? json_string_value(json_object_get(j, "user_id"))
                         : NULL;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    fprintf(logf_, "%s %d %d %s %lld\n", id ? id : "-", ok, code,
            user && *user ? user : "-",
            (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
    fflush(logf_);
    json_decref(j);
  }
  free(body);
  evhttp_send_reply(req, code, code == 200 ? "OK" : "Internal Server Error",
                    NULL);
}

static void on_term(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  event_base_loopbreak(arg);
}

int main(int argc, char **argv) {
  const char *port_file = NULL, *log_path = NULL;
  int quiet = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--port-file") == 0 && i + 1 < argc)
      port_file = argv[++i];
    else if (strcmp(argv[i], "--log") == 0 && i + 1 < argc)
      log_path = argv[++i];
    else if (strcmp(argv[i], "--secret") == 0 && i + 1 < argc)
      secret = argv[++i];
    else if (strcmp(argv[i], "--fail-file") == 0 && i + 1 < argc)
      fail_file = argv[++i];
    else if (strcmp(argv[i], "--quiet") == 0)
      quiet = 1;
    else {
      fprintf(stderr, "usage: linli_test_webhook --port-file F --log F "
                      "--secret S [--fail-file F] [--quiet]\n");
      return 2;
    }
  }
  if (!port_file || (!log_path && !quiet) || sodium_init() < 0)
    return 2;
  if (!quiet && !(logf_ = fopen(log_path, "a")))
    return 2;
  struct event_base *base = event_base_new();
  struct evhttp *http = evhttp_new(base);
  evhttp_set_gencb(http, on_request, NULL);
  evhttp_set_max_body_size(http, 1 << 20);
  struct evhttp_bound_socket *sock =
      evhttp_bind_socket_with_handle(http, "127.0.0.1", 0);
  if (!sock)
    return 1;
  struct sockaddr_storage ss;
  ev_socklen_t sl = sizeof ss;
  getsockname(evhttp_bound_socket_get_fd(sock), (struct sockaddr *)&ss, &sl);
  int port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
  char tmp[1024];
  snprintf(tmp, sizeof tmp, "%s.tmp", port_file);
  FILE *pf = fopen(tmp, "w");
  if (!pf)
    return 1;
  fprintf(pf, "%d\n", port);
  fclose(pf);
  rename(tmp, port_file);
  struct event *term = evsignal_new(base, SIGTERM, on_term, base);
  struct event *intr = evsignal_new(base, SIGINT, on_term, base);
  event_add(term, NULL);
  event_add(intr, NULL);
  event_base_dispatch(base);
  event_free(term);
  event_free(intr);
  evhttp_free(http);
  event_base_free(base);
  if (logf_)
    fclose(logf_);
  printf("%lld requests\n", total);
  return 0;
}
