/*
 * metrics.h - counters, gauges and latency histograms in Prometheus text
 * format, served on /metrics (and /healthz) by a small libevent HTTP
 * listener that runs on its own thread in every linli process.
 *
 * Metrics are registered once at start-up and live until
 * linli_metrics_shutdown(); updates are lock-free atomics, safe from any
 * thread. Names follow Prometheus rules ([a-zA-Z_:][a-zA-Z0-9_:]*).
 */
#ifndef LINLI_METRICS_H
#define LINLI_METRICS_H

#include <stddef.h>
#include <stdint.h>

typedef struct linli_counter linli_counter_t;
typedef struct linli_gauge linli_gauge_t;
typedef struct linli_histogram linli_histogram_t;

/* Registering the same name twice returns the first metric. NULL on a bad
 * name or allocation failure. labels may be NULL or like `topic="x"`. */
linli_counter_t *linli_metrics_counter(const char *name, const char *labels,
                                       const char *help);
linli_gauge_t *linli_metrics_gauge(const char *name, const char *labels,
                                   const char *help);
/* Buckets in seconds, ascending; NULL/0 gives the default latency buckets
 * (0.0005 .. 10 s). */
linli_histogram_t *linli_metrics_histogram(const char *name,
                                           const char *labels,
                                           const char *help,
                                           const double *buckets,
                                           size_t nbuckets);

void linli_counter_add(linli_counter_t *c, uint64_t n);
void linli_gauge_set(linli_gauge_t *g, int64_t v);
void linli_gauge_add(linli_gauge_t *g, int64_t delta);
void linli_histogram_observe(linli_histogram_t *h, double seconds);

/* Render every metric in Prometheus text exposition format (version 0.0.4).
 * *out is malloc'd, owned by the caller. */
int linli_metrics_render(char **out, size_t *outlen);

/*
 * Start the HTTP listener on 127.0.0.1:port (addr NULL) or addr:port.
 * port 0 picks a free port; *bound_port (may be NULL) receives it.
 * /healthz answers 200 "ok" while linli_metrics_set_healthy(1) (default).
 */
int linli_metrics_serve(const char *addr, int port, int *bound_port);
void linli_metrics_set_healthy(int healthy);
/* Stop the listener and free every metric. */
void linli_metrics_shutdown(void);

#endif
