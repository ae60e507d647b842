/*
 * http.c - the gateway's HTTP layer on libevent's evhttp: the route table
 * (one source for dispatch, for 404/405 and for --routes, which the test
 * compares with docs/openapi.yaml), bearer-token authentication and roles,
 * and the per-key rate limit. Handlers reply through reply.c.
 *
 * evhttp's defaults are unlimited and text/html: the body and header size
 * limits, timeouts, allowed methods and content type are set here.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "gateway.h"
#include "linli/error.h"
#include "linli/ids.h"
#include "linli/log.h"
#include "linli/metrics.h"

#define ROLES_ANY (GW_ROLE_APP | GW_ROLE_LOGISTICS | GW_ROLE_ADMIN)

struct route {
  enum evhttp_cmd_type method;
  const char *path; /* "{id}" matches one id segment */
  int roles;        /* 0 = open (no key needed) */
  void (*fn)(struct gw_req *r);
};

static void get_healthz(struct gw_req *r);
static void get_metrics(struct gw_req *r);

static const struct route ROUTES[] = {
    {EVHTTP_REQ_POST, "/v1/orders", GW_ROLE_APP, gw_post_order},
    {EVHTTP_REQ_GET, "/v1/orders", GW_ROLE_APP | GW_ROLE_ADMIN,
     gw_list_orders},
    {EVHTTP_REQ_GET, "/v1/orders/{id}", GW_ROLE_APP | GW_ROLE_ADMIN,
     gw_get_order},
    {EVHTTP_REQ_POST, "/v1/orders/{id}/payment", GW_ROLE_APP,
     gw_post_payment},
    {EVHTTP_REQ_POST, "/v1/orders/{id}/cancel", GW_ROLE_APP, gw_post_cancel},
    {EVHTTP_REQ_POST, "/v1/groupbuys", GW_ROLE_ADMIN, gw_post_campaign},
    {EVHTTP_REQ_GET, "/v1/groupbuys/{id}", GW_ROLE_APP | GW_ROLE_ADMIN,
     gw_get_groupbuy},
    {EVHTTP_REQ_POST, "/v1/groupbuys/{id}/join", GW_ROLE_APP, gw_post_join},
    {EVHTTP_REQ_POST, "/v1/groupbuys/{id}/leave", GW_ROLE_APP, gw_post_leave},
    {EVHTTP_REQ_POST, "/v1/deliveries/events", GW_ROLE_LOGISTICS,
     gw_post_delivery},
    {EVHTTP_REQ_POST, "/v1/catalog/skus", GW_ROLE_ADMIN, gw_post_sku},
    {EVHTTP_REQ_POST, "/v1/inventory/adjustments", GW_ROLE_ADMIN,
     gw_post_adjustment},
    {EVHTTP_REQ_GET, "/v1/groupbuys/{id}/events", GW_ROLE_APP | GW_ROLE_ADMIN,
     gw_get_groupbuy_events},
    {EVHTTP_REQ_GET, "/v1/warehouses/{id}/waves/{wave}/sorting-list",
     GW_ROLE_WAREHOUSE | GW_ROLE_ADMIN, gw_get_sorting_list},
    {EVHTTP_REQ_GET, "/v1/stream/order-status", ROLES_ANY, gw_get_stream},
    {EVHTTP_REQ_GET, "/healthz", 0, get_healthz},
    {EVHTTP_REQ_GET, "/metrics", 0, get_metrics},
};
#define NROUTES (sizeof ROUTES / sizeof ROUTES[0])

static const char *method_name(enum evhttp_cmd_type m) {
  switch (m) {
  case EVHTTP_REQ_GET:
    return "GET";
  case EVHTTP_REQ_POST:
    return "POST";
  default:
    return "?";
  }
}

void gw_http_print_routes(void) {
  for (size_t i = 0; i < NROUTES; i++)
    printf("%s %s\n", method_name(ROUTES[i].method), ROUTES[i].path);
}

/* ------------------------------------------------------------- routing */

/* Does path match the template? Sets r->param for "{id}" and r->param2
 * for "{wave}" (both ids). 1 yes, 0 no. */
static int match(const char *tmpl, const char *path, struct gw_req *r) {
  const char *t = tmpl, *p = path;
  while (*t && *p) {
    int second = strncmp(t, "{wave}", 6) == 0;
    if (second || strncmp(t, "{id}", 4) == 0) {
      char *buf = second ? r->param2_buf : r->param_buf;
      size_t n = strcspn(p, "/");
      if (n == 0 || n >= sizeof r->param_buf)
        return 0;
      memcpy(buf, p, n);
      buf[n] = '\0';
      if (!linli_id_valid(buf))
        return 0;
      if (second)
        r->param2 = buf;
      else
        r->param = buf;
      t += second ? 6 : 4;
      p += n;
      continue;
    }
    if (*t != *p)
      return 0;
    t++;
    p++;
  }
  return *t == '\0' && *p == '\0';
}

static const struct gw_key *authenticate(struct gw_req *r) {
  const char *h = gw_header(r, "Authorization");
  if (!h || strncasecmp(h, "Bearer ", 7) != 0)
    return NULL;
  const char *tok = h + 7;
  while (*tok == ' ')
    tok++;
  if (!*tok || strlen(tok) > 512)
    return NULL;
  return gw_keys_find(&r->gw->keys, tok);
}

/* A request waiting for its rate-limit verdict from Redis. */
struct gated {
  struct gw_req r;
  void (*fn)(struct gw_req *r);
};

static void on_rate(struct gw *gw, int wait, void *arg) {
  (void)gw;
  struct gated *g = arg;
  struct gw_req *r = &g->r;
  if (wait > 0) {
    char s[16];
    snprintf(s, sizeof s, "%d", wait);
    evhttp_add_header(evhttp_request_get_output_headers(r->req),
                      "Retry-After", s);
    gw_reply_error(r, 429, "rate_limited",
                   "too many requests for this API key "
                   "(gateway.rate_limit_per_s)");
  } else if (wait < 0) {
    gw_reply_error(r, 503, "unavailable",
                   "shared state (Redis) is unreachable");
  } else {
    g->fn(r); /* handlers copy what they keep beyond this call */
  }
  free(g);
}

static void dispatch(struct evhttp_request *req, void *arg) {
  struct gw_req r;
  memset(&r, 0, sizeof r);
  r.gw = arg;
  r.req = req;
  r.started_us = gw_now_us();
  const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
  const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
  if (!path) {
    gw_reply_error(&r, 400, "bad_request", "unparseable request target");
    return;
  }
  if (gw_conn_check(&r))
    return;
  enum evhttp_cmd_type method = evhttp_request_get_command(req);
  const struct route *hit = NULL;
  int path_known = 0;
  char allow[64] = "";
  for (size_t i = 0; i < NROUTES; i++) {
    if (!match(ROUTES[i].path, path, &r))
      continue;
    path_known = 1;
    size_t used = strlen(allow);
    snprintf(allow + used, sizeof allow - used, "%s%s", used ? ", " : "",
             method_name(ROUTES[i].method));
    if (ROUTES[i].method == method && !hit)
      hit = &ROUTES[i];
  }
  if (!hit) {
    if (path_known) {
      evhttp_add_header(evhttp_request_get_output_headers(req), "Allow",
                        allow);
      gw_reply_error(&r, 405, "method_not_allowed",
                     "this path does not accept that method");
    } else {
      gw_reply_error(&r, 404, "not_found", "no such endpoint");
    }
    return;
  }
  /* match() of a later template may have overwritten the param: redo. */
  r.param = NULL;
  r.param2 = NULL;
  match(hit->path, path, &r);
  if (hit->roles) {
    r.key = authenticate(&r);
    if (!r.key) {
      evhttp_add_header(evhttp_request_get_output_headers(req),
                        "WWW-Authenticate", "Bearer realm=\"linli\"");
      gw_reply_error(&r, 401, "unauthorized",
                     "send a valid API key as 'Authorization: Bearer <key>'");
      return;
    }
    if (!(hit->roles & r.key->role)) {
      gw_reply_error(&r, 403, "forbidden",
                     "this API key's role may not use this endpoint");
      return;
    }
    /* A publish counts its rate in its one guard script (guard.c). */
    if (hit->method == EVHTTP_REQ_POST) {
      hit->fn(&r);
      return;
    }
    struct gated *g = malloc(sizeof *g);
    if (!g) {
      gw_reply_error(&r, 500, "internal", "out of memory");
      return;
    }
    gw_req_copy(&g->r, &r);
    g->fn = hit->fn;
    gw_rate_check(r.gw, r.key, on_rate, g);
    return;
  }
  hit->fn(&r);
}

static void get_healthz(struct gw_req *r) {
  /* Liveness: only a fatal producer needs a restart. Redis and
   * PostgreSQL reconnect by themselves; their state is informative. */
  int ok = !linli_producer_fatal(r->gw->producer);
  gw_reply_json(r, ok ? 200 : 503,
                json_pack("{s:s, s:s, s:s}", "status",
                          ok ? "ok" : "kafka producer failed", "redis",
                          gw_redis_up(r->gw) ? "up" : "down", "postgresql",
                          gw_pg_up(r->gw) ? "up" : "down"));
}

static void get_metrics(struct gw_req *r) {
  char *text = NULL;
  size_t len = 0;
  if (linli_metrics_render(&text, &len) != LINLI_OK) {
    gw_reply_error(r, 500, "internal", "cannot render metrics");
    return;
  }
  struct evbuffer *b = evbuffer_new();
  if (b)
    evbuffer_add(b, text, len);
  free(text);
  evhttp_add_header(evhttp_request_get_output_headers(r->req), "Content-Type",
                    "text/plain; version=0.0.4");
  gw_reply_count(r, 200);
  evhttp_send_reply(r->req, 200, "OK", b);
  if (b)
    evbuffer_free(b);
}

/* ----------------------------------------------------------------- TLS */

static SSL_CTX *tls_ctx;

static struct bufferevent *tls_bev(struct event_base *base, void *arg) {
  (void)arg;
  SSL *ssl = SSL_new(tls_ctx);
  if (!ssl)
    return NULL;
  return bufferevent_openssl_socket_new(base, -1, ssl,
                                        BUFFEREVENT_SSL_ACCEPTING,
                                        BEV_OPT_CLOSE_ON_FREE);
}

static int tls_setup(struct gw *gw, char *err, size_t errlen) {
  const char *cert = linli_config_str(gw->cfg, "gateway.tls_cert");
  const char *key = linli_config_str(gw->cfg, "gateway.tls_key");
  if (!cert[0] && !key[0])
    return LINLI_OK;
  if (!cert[0] || !key[0]) {
    snprintf(err, errlen, "gateway.tls_cert and gateway.tls_key go together");
    return LINLI_ERR_CONFIG;
  }
  tls_ctx = SSL_CTX_new(TLS_server_method());
  if (!tls_ctx ||
      SSL_CTX_set_min_proto_version(tls_ctx, TLS1_2_VERSION) != 1 ||
      SSL_CTX_use_certificate_chain_file(tls_ctx, cert) != 1 ||
      SSL_CTX_use_PrivateKey_file(tls_ctx, key, SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_check_private_key(tls_ctx) != 1) {
    char why[256];
    ERR_error_string_n(ERR_get_error(), why, sizeof why);
    snprintf(err, errlen, "TLS (gateway.tls_cert/tls_key): %s", why);
    if (tls_ctx)
      SSL_CTX_free(tls_ctx);
    tls_ctx = NULL;
    return LINLI_ERR_CONFIG;
  }
  LINLI_INFO("tls enabled", "cert=%s", cert);
  return LINLI_OK;
}

/* --------------------------------------------------------------- server */

int gw_http_start(struct gw *gw, char *err, size_t errlen) {
  gw->http = evhttp_new(gw->base);
  if (!gw->http) {
    snprintf(err, errlen, "evhttp_new failed");
    return LINLI_ERR_FATAL;
  }
  evhttp_set_max_body_size(gw->http,
                           linli_config_int(gw->cfg, "gateway.max_body_bytes"));
  evhttp_set_max_headers_size(gw->http, 16384);
  evhttp_set_timeout(gw->http, 30);
  /* No HEAD: its answers carry a Content-Length without a body, which
   * conn.c's output filter would wait for. */
  evhttp_set_allowed_methods(gw->http,
                             EVHTTP_REQ_GET | EVHTTP_REQ_POST |
                                 EVHTTP_REQ_PUT |
                                 EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
                                 EVHTTP_REQ_PATCH);
  evhttp_set_default_content_type(gw->http, "application/json");
  evhttp_set_gencb(gw->http, dispatch, gw);
  int rc = tls_setup(gw, err, errlen);
  if (rc != LINLI_OK)
    return rc;
  const char *addr = linli_config_str(gw->cfg, "gateway.addr");
  int port = (int)linli_config_int(gw->cfg, "gateway.port");
  struct evhttp_bound_socket *s = NULL;
  rc = gw_conn_start(gw, tls_ctx ? tls_bev : NULL, NULL, &s, err, errlen);
  gw->listener = s;
  if (rc != LINLI_OK)
    return rc;
  /* Report the real port when 0 asked for any free one. */
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  gw->port = port;
  if (getsockname(evhttp_bound_socket_get_fd(s), (struct sockaddr *)&ss,
                  &sl) == 0) {
    if (ss.ss_family == AF_INET)
      gw->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    else if (ss.ss_family == AF_INET6)
      gw->port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
  }
  LINLI_INFO("gateway listening", "addr=%s port=%d tls=%s", addr, gw->port,
             tls_ctx ? "on" : "off");
  return LINLI_OK;
}

void gw_http_close_listener(struct gw *gw) {
  if (gw->http && gw->listener) {
    gw_conn_listener_gone(gw);
    evhttp_del_accept_socket(gw->http, gw->listener);
  }
  gw->listener = NULL;
}

void gw_http_stop(struct gw *gw) {
  if (gw->http)
    evhttp_free(gw->http);
  gw->http = NULL;
  if (tls_ctx)
    SSL_CTX_free(tls_ctx);
  tls_ctx = NULL;
}
