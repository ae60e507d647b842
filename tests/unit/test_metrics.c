/*
 * test_metrics.c - unit tests of linli_metrics: the exact Prometheus text
 * for counters, gauges and labelled histograms, registration rules, updates
 * from many threads, and the HTTP listener fetched over a real loopback
 * socket (/metrics, /healthz, 404, 405) with a tiny client.
 */
#include <CUnit/CUnit.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "linli/error.h"
#include "linli/metrics.h"
#include "linli_test.h"

static char *render(void) {
  char *out = NULL;
  size_t len = 0;
  CU_ASSERT_EQUAL_FATAL(linli_metrics_render(&out, &len), 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(out);
  CU_ASSERT_EQUAL(strlen(out), len);
  return out;
}

static void test_render_exact(void) {
  linli_counter_t *c = linli_metrics_counter(
      "linli_consumed_total", "topic=\"linli.orders.v1\"", "Messages consumed.");
  linli_counter_t *c2 = linli_metrics_counter(
      "linli_consumed_total", "topic=\"linli.groupbuy.v1\"", "ignored help");
  linli_gauge_t *g = linli_metrics_gauge("linli_lag", NULL, "Consumer lag.");
  double buckets[] = {0.005, 0.1, 2.5};
  linli_histogram_t *h = linli_metrics_histogram(
      "linli_batch_seconds", "consumer=\"reserver\",topic=\"t\"",
      "Batch latency.\nSecond line \\ here.", buckets, 3);
  CU_ASSERT_PTR_NOT_NULL_FATAL(c);
  CU_ASSERT_PTR_NOT_NULL_FATAL(c2);
  CU_ASSERT_PTR_NOT_NULL_FATAL(g);
  CU_ASSERT_PTR_NOT_NULL_FATAL(h);

  linli_counter_add(c, 5);
  linli_counter_add(c, 2);
  linli_counter_add(c2, 1);
  linli_gauge_set(g, 10);
  linli_gauge_add(g, -13);
  linli_histogram_observe(h, 0.001);  /* le 0.005 */
  linli_histogram_observe(h, 0.005);  /* le 0.005: bounds are inclusive */
  linli_histogram_observe(h, 0.5);    /* le 2.5 */
  linli_histogram_observe(h, 30.0);   /* +Inf */

  char *out = render();
  const char *want =
      "# HELP linli_consumed_total Messages consumed.\n"
      "# TYPE linli_consumed_total counter\n"
      "linli_consumed_total{topic=\"linli.orders.v1\"} 7\n"
      "linli_consumed_total{topic=\"linli.groupbuy.v1\"} 1\n"
      "# HELP linli_lag Consumer lag.\n"
      "# TYPE linli_lag gauge\n"
      "linli_lag -3\n"
      "# HELP linli_batch_seconds Batch latency.\\nSecond line \\\\ here.\n"
      "# TYPE linli_batch_seconds histogram\n"
      "linli_batch_seconds_bucket{consumer=\"reserver\",topic=\"t\",le=\"0.005\"} 2\n"
      "linli_batch_seconds_bucket{consumer=\"reserver\",topic=\"t\",le=\"0.1\"} 2\n"
      "linli_batch_seconds_bucket{consumer=\"reserver\",topic=\"t\",le=\"2.5\"} 3\n"
      "linli_batch_seconds_bucket{consumer=\"reserver\",topic=\"t\",le=\"+Inf\"} 4\n"
      "linli_batch_seconds_sum{consumer=\"reserver\",topic=\"t\"} 30.506\n"
      "linli_batch_seconds_count{consumer=\"reserver\",topic=\"t\"} 4\n";
  CU_ASSERT_STRING_EQUAL(out, want);
  if (strcmp(out, want) != 0)
    fprintf(stderr, "\n--- got ---\n%s--- want ---\n%s", out, want);
  free(out);
  linli_metrics_shutdown(); /* frees every metric */

  out = render();
  CU_ASSERT_STRING_EQUAL(out, "");
  free(out);
}

static void test_histogram_unlabelled_default(void) {
  linli_histogram_t *h = linli_metrics_histogram("h_seconds", NULL, NULL, NULL, 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(h);
  linli_histogram_observe(h, 0.0004);
  char *out = render();
  CU_ASSERT_PTR_NULL(strstr(out, "# HELP")); /* no help given */
  CU_ASSERT_PTR_NOT_NULL(strstr(out, "# TYPE h_seconds histogram\n"
                                     "h_seconds_bucket{le=\"0.0005\"} 1\n"
                                     "h_seconds_bucket{le=\"0.001\"} 1\n"));
  CU_ASSERT_PTR_NOT_NULL(strstr(out, "h_seconds_bucket{le=\"10\"} 1\n"
                                     "h_seconds_bucket{le=\"+Inf\"} 1\n"
                                     "h_seconds_sum 0.0004\n"
                                     "h_seconds_count 1\n"));
  free(out);
  linli_metrics_shutdown();
}

static void test_registration_rules(void) {
  linli_counter_t *a = linli_metrics_counter("x_total", NULL, "x");
  CU_ASSERT_PTR_NOT_NULL(a);
  CU_ASSERT_PTR_EQUAL(linli_metrics_counter("x_total", NULL, "x"), a);
  CU_ASSERT_PTR_EQUAL(linli_metrics_counter("x_total", "", "x"), a);
  /* same name, another kind */
  CU_ASSERT_PTR_NULL(linli_metrics_gauge("x_total", NULL, "x"));
  /* bad names */
  CU_ASSERT_PTR_NULL(linli_metrics_counter("", NULL, NULL));
  CU_ASSERT_PTR_NULL(linli_metrics_counter("1abc", NULL, NULL));
  CU_ASSERT_PTR_NULL(linli_metrics_counter("a-b", NULL, NULL));
  CU_ASSERT_PTR_NULL(linli_metrics_counter(NULL, NULL, NULL));
  CU_ASSERT_PTR_NOT_NULL(linli_metrics_counter("ns:a_b9", NULL, NULL));
  /* bad labels */
  CU_ASSERT_PTR_NULL(linli_metrics_counter("y", "topic=x", NULL));
  CU_ASSERT_PTR_NULL(linli_metrics_counter("y", "topic=\"x\",", NULL));
  CU_ASSERT_PTR_NULL(linli_metrics_counter("y", "topic=\"x", NULL));
  CU_ASSERT_PTR_NULL(linli_metrics_counter("y", "9t=\"x\"", NULL));
  CU_ASSERT_PTR_NOT_NULL(linli_metrics_counter("y", "a=\"q\\\"x\",b=\"\"", NULL));
  /* a histogram adds le itself; buckets must ascend */
  CU_ASSERT_PTR_NULL(linli_metrics_histogram("z", "le=\"1\"", NULL, NULL, 0));
  double bad[] = {0.1, 0.1};
  CU_ASSERT_PTR_NULL(linli_metrics_histogram("z", NULL, NULL, bad, 2));
  linli_metrics_shutdown();
}

#define NTH 4
#define PER 20000
static void *hammer(void *arg) {
  linli_counter_t *c = linli_metrics_counter("hammer_total", NULL, NULL);
  linli_histogram_t *h = arg;
  for (int i = 0; i < PER; i++) {
    linli_counter_add(c, 1);
    linli_histogram_observe(h, 0.25);
  }
  return NULL;
}

static void test_concurrent_updates(void) {
  double b[] = {1};
  linli_histogram_t *h = linli_metrics_histogram("hammer_seconds", NULL, NULL, b, 1);
  pthread_t th[NTH];
  for (int i = 0; i < NTH; i++)
    pthread_create(&th[i], NULL, hammer, h);
  for (int i = 0; i < NTH; i++)
    pthread_join(th[i], NULL);
  char *out = render();
  CU_ASSERT_PTR_NOT_NULL(strstr(out, "hammer_total 80000\n"));
  CU_ASSERT_PTR_NOT_NULL(strstr(out, "hammer_seconds_count 80000\n"));
  CU_ASSERT_PTR_NOT_NULL(strstr(out, "hammer_seconds_sum 20000\n"));
  free(out);
  linli_metrics_shutdown();
}

/* ---- a tiny HTTP/1.0 client --------------------------------------------- */

struct resp {
  int status;
  char headers[2048];
  char body[65536];
};

static int http_request(int port, const char *method, const char *path,
                        struct resp *r) {
  memset(r, 0, sizeof(*r));
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0)
    return -1;
  struct timeval tv = {5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  struct sockaddr_in sa = {0};
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
    close(fd);
    return -1;
  }
  char req[256];
  int n = snprintf(req, sizeof(req), "%s %s HTTP/1.0\r\nHost: localhost\r\n\r\n",
                   method, path);
  if (write(fd, req, (size_t)n) != n) {
    close(fd);
    return -1;
  }
  static char raw[sizeof(r->headers) + sizeof(r->body)];
  size_t len = 0;
  for (;;) {
    ssize_t got = read(fd, raw + len, sizeof(raw) - 1 - len);
    if (got <= 0)
      break;
    len += (size_t)got;
  }
  close(fd);
  raw[len] = '\0';
  if (sscanf(raw, "HTTP/1.%*d %d", &r->status) != 1)
    return -1;
  char *sep = strstr(raw, "\r\n\r\n");
  if (!sep)
    return -1;
  size_t hl = (size_t)(sep - raw);
  if (hl >= sizeof(r->headers))
    hl = sizeof(r->headers) - 1;
  memcpy(r->headers, raw, hl);
  snprintf(r->body, sizeof(r->body), "%s", sep + 4);
  return 0;
}

static void test_http(void) {
  linli_counter_t *c = linli_metrics_counter("served_total", "k=\"v\"", "Served.");
  linli_counter_add(c, 3);
  int port = 0;
  CU_ASSERT_EQUAL_FATAL(linli_metrics_serve(NULL, 0, &port), 0);
  CU_ASSERT(port > 0 && port <= 65535);
  /* a second listener is refused */
  CU_ASSERT_EQUAL(linli_metrics_serve(NULL, 0, NULL), LINLI_ERR_CONFLICT);

  struct resp *r = malloc(sizeof(*r));
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  CU_ASSERT_EQUAL_FATAL(http_request(port, "GET", "/metrics", r), 0);
  CU_ASSERT_EQUAL(r->status, 200);
  CU_ASSERT_PTR_NOT_NULL(strstr(r->headers,
                                "Content-Type: text/plain; version=0.0.4"));
  CU_ASSERT_PTR_NOT_NULL(strstr(r->body, "# TYPE served_total counter\n"
                                         "served_total{k=\"v\"} 3\n"));
  CU_ASSERT_PTR_NOT_NULL(strstr(r->body, "# TYPE process_start_time_seconds gauge\n"));

  /* updates show on the next scrape */
  linli_counter_add(c, 1);
  CU_ASSERT_EQUAL(http_request(port, "GET", "/metrics?x=1", r), 0);
  CU_ASSERT_PTR_NOT_NULL(strstr(r->body, "served_total{k=\"v\"} 4\n"));

  CU_ASSERT_EQUAL(http_request(port, "GET", "/healthz", r), 0);
  CU_ASSERT_EQUAL(r->status, 200);
  CU_ASSERT_STRING_EQUAL(r->body, "ok\n");
  linli_metrics_set_healthy(0);
  CU_ASSERT_EQUAL(http_request(port, "GET", "/healthz", r), 0);
  CU_ASSERT_EQUAL(r->status, 503);
  linli_metrics_set_healthy(1);
  CU_ASSERT_EQUAL(http_request(port, "GET", "/healthz", r), 0);
  CU_ASSERT_EQUAL(r->status, 200);

  CU_ASSERT_EQUAL(http_request(port, "GET", "/nope", r), 0);
  CU_ASSERT_EQUAL(r->status, 404);
  CU_ASSERT_EQUAL(http_request(port, "GET", "/", r), 0);
  CU_ASSERT_EQUAL(r->status, 404);
  CU_ASSERT_EQUAL(http_request(port, "POST", "/metrics", r), 0);
  CU_ASSERT_EQUAL(r->status, 405);
  CU_ASSERT_PTR_NOT_NULL(strstr(r->headers, "Allow: GET"));
  CU_ASSERT_EQUAL(http_request(port, "DELETE", "/healthz", r), 0);
  CU_ASSERT_EQUAL(r->status, 405);
  CU_ASSERT_EQUAL(http_request(port, "HEAD", "/metrics", r), 0);
  CU_ASSERT_EQUAL(r->status, 405);
  CU_ASSERT_EQUAL(http_request(port, "PUT", "/nope", r), 0);
  CU_ASSERT_EQUAL(r->status, 404); /* an unknown path is 404 whatever the method */
  free(r);

  linli_metrics_shutdown();
  /* the port is closed after shutdown */
  struct resp r2;
  CU_ASSERT_NOT_EQUAL(http_request(port, "GET", "/metrics", &r2), 0);

  /* and a new listener can start again */
  int port2 = 0;
  CU_ASSERT_EQUAL(linli_metrics_serve("127.0.0.1", 0, &port2), 0);
  CU_ASSERT(port2 > 0);
  linli_metrics_shutdown();
}

static void test_serve_off_and_errors(void) {
  int port = 123;
  CU_ASSERT_EQUAL(linli_metrics_serve(NULL, -1, &port), 0); /* off */
  CU_ASSERT_EQUAL(port, -1);
  CU_ASSERT_EQUAL(linli_metrics_serve(NULL, 70000, &port), LINLI_ERR_INVALID);
  CU_ASSERT_NOT_EQUAL(linli_metrics_serve("not-an-address!", 0, &port), 0);
  linli_metrics_shutdown(); /* with nothing running: harmless */
  linli_metrics_shutdown();
}

int linli_test_register(void) {
  CU_pSuite s = CU_add_suite("metrics", NULL, NULL);
  if (!s)
    return -1;
  CU_add_test(s, "render exact", test_render_exact);
  CU_add_test(s, "histogram defaults", test_histogram_unlabelled_default);
  CU_add_test(s, "registration rules", test_registration_rules);
  CU_add_test(s, "concurrent updates", test_concurrent_updates);
  CU_add_test(s, "http listener", test_http);
  CU_add_test(s, "serve off and errors", test_serve_off_and_errors);
  return CU_get_error() == CUE_SUCCESS ? 0 : -1;
}
