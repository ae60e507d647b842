/*
 * metrics.c - the metrics registry, its Prometheus text rendering (format
 * 0.0.4) and the small HTTP listener that serves /metrics and /healthz.
 *
 * Registration takes a mutex (it happens at start-up); updates are C11
 * atomics so any thread can count without a lock. The listener is a libevent
 * evhttp server on its own thread and its own event_base, so it answers even
 * while the main loop is blocked in a long poll or a slow transaction. It is
 * stopped from another thread by activating an event on its base (libevent
 * is put in pthreads mode first, which makes event_active thread-safe and
 * wakes the loop).
 */
#include "linli/metrics.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/thread.h>
#include <event2/buffer.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "linli/error.h"
#include "linli/log.h"

/* ------------------------------------------------------------------------ */
/* Registry                                                                 */
/* ------------------------------------------------------------------------ */

enum metric_kind { M_COUNTER, M_GAUGE, M_HISTOGRAM };

struct linli_counter {
  _Atomic uint64_t value;
};

struct linli_gauge {
  _Atomic int64_t value;
};

struct linli_histogram {
  size_t nbuckets;
  double *bounds;            /* upper bounds, ascending; +Inf is implicit */
  _Atomic uint64_t *counts;  /* per bucket (not cumulative), nbuckets + 1 */
  _Atomic uint64_t sum_bits; /* the sum as the bits of a double */
};

struct metric {
  enum metric_kind kind;
  char *name;
  char *labels; /* "" when none */
  char *help;   /* "" when none */
  union {
    struct linli_counter counter;
    struct linli_gauge gauge;
    struct linli_histogram histogram;
  } u;
};

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct metric **metrics;
static size_t nmetrics, capmetrics;

static const double DEFAULT_BUCKETS[] = {0.0005, 0.001, 0.0025, 0.005, 0.01,
                                         0.025,  0.05,  0.1,    0.25,  0.5,
                                         1,      2.5,   5,      10};
#define MAX_BUCKETS 64

static int name_valid(const char *s) {
  if (!s || !*s)
    return 0;
  for (size_t i = 0; s[i]; i++) {
    char c = s[i];
    int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
             c == ':' || (i > 0 && c >= '0' && c <= '9');
    if (!ok)
      return 0;
  }
  return 1;
}

/* labels: name="value"(,name="value")*, values with \\ \" \n escapes only.
 * A histogram's own labels may not use "le" (it adds that one itself). */
static int labels_valid(const char *s, int forbid_le) {
  const char *p = s;
  if (!*p)
    return 1;
  for (;;) {
    const char *start = p;
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_'))
      return 0;
    while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
           (*p >= '0' && *p <= '9') || *p == '_')
      p++;
    if (forbid_le && p - start == 2 && strncmp(start, "le", 2) == 0)
      return 0;
    if (*p++ != '=' || *p++ != '"')
      return 0;
    while (*p != '"') {
      if (*p == '\0' || *p == '\n')
        return 0;
      if (*p == '\\') {
        p++;
        if (*p != '\\' && *p != '"' && *p != 'n')
          return 0;
      }
      p++;
    }
    p++; /* closing quote */
    if (*p == '\0')
      return 1;
    if (*p++ != ',')
      return 0;
  }
}

static void metric_free(struct metric *m) {
  if (!m)
    return;
  if (m->kind == M_HISTOGRAM) {
    free(m->u.histogram.bounds);
    free(m->u.histogram.counts);
  }
  free(m->name);
  free(m->labels);
  free(m->help);
  free(m);
}

/* Find or add a metric. Returns the existing one for the same name and
 * labels, NULL if the name is taken by another kind or on bad input. */
static struct metric *registry_get(enum metric_kind kind, const char *name,
                                   const char *labels, const char *help,
                                   const double *buckets, size_t nbuckets) {
  if (!labels)
    labels = "";
  if (!help)
    help = "";
  if (!name_valid(name) || !labels_valid(labels, kind == M_HISTOGRAM))
    return NULL;
  if (kind == M_HISTOGRAM) {
    if (!buckets || nbuckets == 0) {
      buckets = DEFAULT_BUCKETS;
      nbuckets = sizeof(DEFAULT_BUCKETS) / sizeof(DEFAULT_BUCKETS[0]);
    }
    if (nbuckets > MAX_BUCKETS)
      return NULL;
    for (size_t i = 0; i < nbuckets; i++)
      if (!isfinite(buckets[i]) || (i > 0 && buckets[i] <= buckets[i - 1]))
        return NULL;
  }

  pthread_mutex_lock(&reg_lock);
  struct metric *m = NULL;
  for (size_t i = 0; i < nmetrics; i++) {
    if (strcmp(metrics[i]->name, name) != 0)
      continue;
    if (metrics[i]->kind != kind) {
      pthread_mutex_unlock(&reg_lock);
      return NULL;
    }
    if (strcmp(metrics[i]->labels, labels) == 0) {
      m = metrics[i];
      pthread_mutex_unlock(&reg_lock);
      return m;
    }
  }
  if (nmetrics == capmetrics) {
    size_t cap = capmetrics ? capmetrics * 2 : 32;
    struct metric **nm = realloc(metrics, cap * sizeof(*nm));
    if (!nm)
      goto err;
    metrics = nm;
    capmetrics = cap;
  }
  m = calloc(1, sizeof(*m));
  if (!m)
    goto err;
  m->kind = kind;
  m->name = strdup(name);
  m->labels = strdup(labels);
  m->help = strdup(help);
  if (!m->name || !m->labels || !m->help)
    goto err;
  if (kind == M_HISTOGRAM) {
    struct linli_histogram *h = &m->u.histogram;
    h->nbuckets = nbuckets;
    h->bounds = malloc(nbuckets * sizeof(double));
    h->counts = calloc(nbuckets + 1, sizeof(*h->counts));
    if (!h->bounds || !h->counts)
      goto err;
    memcpy(h->bounds, buckets, nbuckets * sizeof(double));
    for (size_t i = 0; i <= nbuckets; i++)
      atomic_init(&h->counts[i], 0);
    double zero = 0.0;
    uint64_t bits;
    memcpy(&bits, &zero, sizeof(bits));
    atomic_init(&h->sum_bits, bits);
  } else if (kind == M_COUNTER) {
    atomic_init(&m->u.counter.value, 0);
  } else {
    atomic_init(&m->u.gauge.value, 0);
  }
  metrics[nmetrics++] = m;
  pthread_mutex_unlock(&reg_lock);
  return m;
err:
  pthread_mutex_unlock(&reg_lock);
  metric_free(m);
  return NULL;
}

linli_counter_t *linli_metrics_counter(const char *name, const char *labels,
                                       const char *help) {
  struct metric *m = registry_get(M_COUNTER, name, labels, help, NULL, 0);
  return m ? &m->u.counter : NULL;
}

linli_gauge_t *linli_metrics_gauge(const char *name, const char *labels,
                                   const char *help) {
  struct metric *m = registry_get(M_GAUGE, name, labels, help, NULL, 0);
  return m ? &m->u.gauge : NULL;
}

linli_histogram_t *linli_metrics_histogram(const char *name,
                                           const char *labels,
                                           const char *help,
                                           const double *buckets,
                                           size_t nbuckets) {
  struct metric *m =
      registry_get(M_HISTOGRAM, name, labels, help, buckets, nbuckets);
  return m ? &m->u.histogram : NULL;
}

void linli_counter_add(linli_counter_t *c, uint64_t n) {
  if (c)
    atomic_fetch_add_explicit(&c->value, n, memory_order_relaxed);
}

void linli_gauge_set(linli_gauge_t *g, int64_t v) {
  if (g)
    atomic_store_explicit(&g->value, v, memory_order_relaxed);
}

void linli_gauge_add(linli_gauge_t *g, int64_t delta) {
  if (g)
    atomic_fetch_add_explicit(&g->value, delta, memory_order_relaxed);
}

void linli_histogram_observe(linli_histogram_t *h, double seconds) {
  if (!h || isnan(seconds))
    return;
  size_t i = 0;
  while (i < h->nbuckets && seconds > h->bounds[i])
    i++;
  /* The sum first, so that a scrape that sees the count also sees the sum
   * (or a newer one): a rate of sum/count never divides a stale sum. */
  uint64_t old = atomic_load_explicit(&h->sum_bits, memory_order_relaxed);
  for (;;) {
    double d;
    memcpy(&d, &old, sizeof(d));
    d += seconds;
    uint64_t nb;
    memcpy(&nb, &d, sizeof(nb));
    if (atomic_compare_exchange_weak_explicit(&h->sum_bits, &old, nb,
                                              memory_order_release,
                                              memory_order_relaxed))
      break;
  }
  atomic_fetch_add_explicit(&h->counts[i], 1, memory_order_release);
}

/* ------------------------------------------------------------------------ */
/* Rendering                                                                */
/* ------------------------------------------------------------------------ */

struct buf {
  char *p;
  size_t len, cap;
  int oom;
};

static void buf_append(struct buf *b, const char *s, size_t n) {
  if (b->oom)
    return;
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n + 1)
      cap *= 2;
    char *np = realloc(b->p, cap);
    if (!np) {
      b->oom = 1;
      return;
    }
    b->p = np;
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
}

static void buf_puts(struct buf *b, const char *s) { buf_append(b, s, strlen(s)); }

static void buf_printf(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void buf_printf(struct buf *b, const char *fmt, ...) {
  char tmp[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
  va_end(ap);
  if (n < 0)
    return;
  buf_append(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* Shortest text that reads back as the same double ("0.005", "2.5", "10").
 * (Also "-0" for negative zero, which Prometheus reads fine.) */
static void format_double(double v, char *out, size_t len) {
  if (isinf(v)) {
    snprintf(out, len, v > 0 ? "+Inf" : "-Inf");
    return;
  }
  if (isnan(v)) {
    snprintf(out, len, "NaN");
    return;
  }
  /* %g would write a whole 20000 as "2e+04": valid, but hard on people. */
  if (v == floor(v) && fabs(v) < 1e15) {
    snprintf(out, len, "%.0f", v);
    return;
  }
  for (int prec = 1; prec <= 17; prec++) {
    snprintf(out, len, "%.*g", prec, v);
    if (strtod(out, NULL) == v)
      return;
  }
}

/* HELP text escapes backslash and newline (format 0.0.4). */
static void put_help(struct buf *b, const char *help) {
  for (const char *p = help; *p; p++) {
    if (*p == '\\')
      buf_puts(b, "\\\\");
    else if (*p == '\n')
      buf_puts(b, "\\n");
    else
      buf_append(b, p, 1);
  }
}

/* name{labels[,extra]} — braces only when there is a label at all. */
static void put_series(struct buf *b, const char *name, const char *suffix,
                       const char *labels, const char *extra) {
  buf_puts(b, name);
  buf_puts(b, suffix);
  if (*labels || extra) {
    buf_puts(b, "{");
    buf_puts(b, labels);
    if (extra) {
      if (*labels)
        buf_puts(b, ",");
      buf_puts(b, extra);
    }
    buf_puts(b, "}");
  }
  buf_puts(b, " ");
}

static void render_metric(struct buf *b, const struct metric *m) {
  switch (m->kind) {
  case M_COUNTER:
    put_series(b, m->name, "", m->labels, NULL);
    buf_printf(b, "%llu\n",
               (unsigned long long)atomic_load(&m->u.counter.value));
    break;
  case M_GAUGE:
    put_series(b, m->name, "", m->labels, NULL);
    buf_printf(b, "%lld\n", (long long)atomic_load(&m->u.gauge.value));
    break;
  case M_HISTOGRAM: {
    const struct linli_histogram *h = &m->u.histogram;
    /* Read counts before the sum (observe writes them in the other order);
     * _count is the +Inf bucket, so the two always agree. */
    uint64_t cum = 0;
    char le[64], num[64];
    for (size_t i = 0; i <= h->nbuckets; i++) {
      cum += atomic_load_explicit(&h->counts[i], memory_order_acquire);
      char bound[48];
      if (i < h->nbuckets)
        format_double(h->bounds[i], bound, sizeof(bound));
      else
        snprintf(bound, sizeof(bound), "+Inf");
      snprintf(le, sizeof(le), "le=\"%s\"", bound);
      put_series(b, m->name, "_bucket", m->labels, le);
      buf_printf(b, "%llu\n", (unsigned long long)cum);
    }
    uint64_t bits = atomic_load_explicit(&h->sum_bits, memory_order_acquire);
    double sum;
    memcpy(&sum, &bits, sizeof(sum));
    format_double(sum, num, sizeof(num));
    put_series(b, m->name, "_sum", m->labels, NULL);
    buf_puts(b, num);
    buf_puts(b, "\n");
    put_series(b, m->name, "_count", m->labels, NULL);
    buf_printf(b, "%llu\n", (unsigned long long)cum);
    break;
  }
  }
}

static const char *const KIND_NAMES[] = {"counter", "gauge", "histogram"};

int linli_metrics_render(char **out, size_t *outlen) {
  if (!out)
    return LINLI_ERR_INVALID;
  *out = NULL;
  struct buf b = {0};
  buf_append(&b, "", 0);

  pthread_mutex_lock(&reg_lock);
  /* One # HELP/# TYPE per family (name), then all of its series, families in
   * the order of their first registration. */
  for (size_t i = 0; i < nmetrics; i++) {
    int seen = 0;
    for (size_t j = 0; j < i && !seen; j++)
      seen = strcmp(metrics[j]->name, metrics[i]->name) == 0;
    if (seen)
      continue;
    const struct metric *first = metrics[i];
    if (*first->help) {
      buf_puts(&b, "# HELP ");
      buf_puts(&b, first->name);
      buf_puts(&b, " ");
      put_help(&b, first->help);
      buf_puts(&b, "\n");
    }
    buf_puts(&b, "# TYPE ");
    buf_puts(&b, first->name);
    buf_puts(&b, " ");
    buf_puts(&b, KIND_NAMES[first->kind]);
    buf_puts(&b, "\n");
    for (size_t j = i; j < nmetrics; j++)
      if (strcmp(metrics[j]->name, first->name) == 0)
        render_metric(&b, metrics[j]);
  }
  pthread_mutex_unlock(&reg_lock);

  if (b.oom) {
    free(b.p);
    return LINLI_ERR_NOMEM;
  }
  *out = b.p;
  if (outlen)
    *outlen = b.len;
  return LINLI_OK;
}

/* ------------------------------------------------------------------------ */
/* HTTP listener                                                            */
/* ------------------------------------------------------------------------ */

static atomic_int healthy = 1;

/* Listener state: touched only by linli_metrics_serve / _shutdown, which the
 * process calls from one thread (start-up and exit). */
static struct {
  struct event_base *base;
  struct evhttp *http;
  struct event *stop_ev;
  pthread_t thread;
  int running;
} srv;

static pthread_once_t evthread_once = PTHREAD_ONCE_INIT;
static int evthread_rc;

static void evthread_init(void) { evthread_rc = evthread_use_pthreads(); }

void linli_metrics_set_healthy(int h) { atomic_store(&healthy, h ? 1 : 0); }

static void reply_text(struct evhttp_request *req, int code, const char *reason,
                       const char *ctype, const char *body, size_t len) {
  struct evkeyvalq *hdr = evhttp_request_get_output_headers(req);
  evhttp_add_header(hdr, "Content-Type", ctype);
  struct evbuffer *ev = evbuffer_new();
  if (!ev) {
    evhttp_send_error(req, 500, "out of memory");
    return;
  }
  evbuffer_add(ev, body, len);
  evhttp_send_reply(req, code, reason, ev);
  evbuffer_free(ev);
}

static void http_cb(struct evhttp_request *req, void *arg) {
  (void)arg;
  const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
  const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
  if (!path || !*path)
    path = "/";
  int is_metrics = strcmp(path, "/metrics") == 0;
  int is_health = strcmp(path, "/healthz") == 0;
  if (!is_metrics && !is_health) {
    reply_text(req, 404, "Not Found", "text/plain; charset=utf-8",
               "not found\n", 10);
    return;
  }
  enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
  if (cmd != EVHTTP_REQ_GET) {
    evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET");
    reply_text(req, 405, "Method Not Allowed", "text/plain; charset=utf-8",
               "method not allowed\n", 19);
    return;
  }
  if (is_health) {
    if (atomic_load(&healthy))
      reply_text(req, 200, "OK", "text/plain; charset=utf-8", "ok\n", 3);
    else
      reply_text(req, 503, "Service Unavailable", "text/plain; charset=utf-8",
                 "unhealthy\n", 10);
    return;
  }
  char *text = NULL;
  size_t len = 0;
  if (linli_metrics_render(&text, &len) != LINLI_OK) {
    evhttp_send_error(req, 500, "cannot render metrics");
    return;
  }
  reply_text(req, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", text,
             len);
  free(text);
}

static void stop_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  event_base_loopbreak(arg);
}

static void *serve_thread(void *arg) {
  event_base_dispatch(arg);
  return NULL;
}

static void srv_free(void) {
  if (srv.http)
    evhttp_free(srv.http);
  if (srv.stop_ev)
    event_free(srv.stop_ev);
  if (srv.base)
    event_base_free(srv.base);
  memset(&srv, 0, sizeof(srv));
}

/* A couple of process-level series every linli process exports. */
static void register_process_metrics(void) {
  linli_gauge_t *g = linli_metrics_gauge(
      "process_start_time_seconds", NULL,
      "Start time of the process since unix epoch in seconds.");
  /* The first call's time: a listener restarted by a test is not a new
   * process. */
  static _Atomic int64_t start_s = 0;
  int64_t expected = 0;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  atomic_compare_exchange_strong(&start_s, &expected, (int64_t)ts.tv_sec);
  linli_gauge_set(g, atomic_load(&start_s));
}

int linli_metrics_serve(const char *addr, int port, int *bound_port) {
  if (bound_port)
    *bound_port = -1;
  if (port < 0)
    return LINLI_OK; /* metrics.port = -1: the listener is off */
  if (port > 65535)
    return LINLI_ERR_INVALID;
  if (srv.running)
    return LINLI_ERR_CONFLICT;
  if (!addr || !*addr)
    addr = "127.0.0.1";

  pthread_once(&evthread_once, evthread_init);
  if (evthread_rc != 0) {
    LINLI_ERROR("metrics: libevent pthreads support unavailable", NULL);
    return LINLI_ERR_FATAL;
  }
  int rc = LINLI_ERR_NOMEM;
  srv.base = event_base_new();
  if (!srv.base)
    goto err;
  srv.http = evhttp_new(srv.base);
  if (!srv.http)
    goto err;
  srv.stop_ev = event_new(srv.base, -1, 0, stop_cb, srv.base);
  if (!srv.stop_ev)
    goto err;
  /* evhttp's defaults are unlimited: a scrape needs very little. */
  evhttp_set_max_headers_size(srv.http, 8192);
  evhttp_set_max_body_size(srv.http, 4096);
  evhttp_set_timeout(srv.http, 10);
  evhttp_set_allowed_methods(
      srv.http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
                    EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
                    EVHTTP_REQ_PATCH);
  evhttp_set_gencb(srv.http, http_cb, NULL);

  struct evhttp_bound_socket *sock =
      evhttp_bind_socket_with_handle(srv.http, addr, (ev_uint16_t)port);
  if (!sock) {
    LINLI_ERROR("metrics: cannot listen", "addr=%s port=%d", addr, port);
    rc = LINLI_ERR_CONFIG;
    goto err;
  }
  struct sockaddr_storage ss;
  socklen_t sslen = sizeof(ss);
  int actual = port;
  if (getsockname(evhttp_bound_socket_get_fd(sock), (struct sockaddr *)&ss,
                  &sslen) == 0) {
    if (ss.ss_family == AF_INET)
      actual = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    else if (ss.ss_family == AF_INET6)
      actual = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
  }

  /* The listener thread takes no signals: they belong to the main loop, and
   * a SIGPIPE from a scraper hanging up stays blocked there (the write just
   * fails with EPIPE). */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int perr = pthread_create(&srv.thread, NULL, serve_thread, srv.base);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (perr != 0) {
    rc = LINLI_ERR_FATAL;
    goto err;
  }
  srv.running = 1;
  register_process_metrics();
  if (bound_port)
    *bound_port = actual;
  return LINLI_OK;
err:
  srv_free();
  return rc;
}

void linli_metrics_shutdown(void) {
  if (srv.running) {
    event_active(srv.stop_ev, EV_READ, 0);
    pthread_join(srv.thread, NULL);
  }
  srv_free();

  pthread_mutex_lock(&reg_lock);
  for (size_t i = 0; i < nmetrics; i++)
    metric_free(metrics[i]);
  free(metrics);
  metrics = NULL;
  nmetrics = capmetrics = 0;
  pthread_mutex_unlock(&reg_lock);
  atomic_store(&healthy, 1);
}
