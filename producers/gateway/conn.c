/*
 * conn.c - the gateway's connections, below evhttp: the accept path and a
 * filter on every connection's bufferevent, so that no client can hold
 * more than its share of descriptors, memory or time, before it has
 * authenticated (issue 9.12, 9.13). evhttp 2.1 has no connection limit, no
 * request deadline (its timeout counts idle time only), no hook before a
 * body is read, and answers its own errors in HTML; this file adds them.
 *
 * Accept: our own evconnlistener. At gateway.max_connections (kept below
 * the descriptor limit, so Redis, PostgreSQL, Kafka and /healthz always
 * find a descriptor) a new connection evicts the oldest one that has not
 * sent a whole request yet, or an idle keep-alive one; if none can go, the
 * listener pauses. accept() failures (EMFILE...) pause the listener for
 * 100 ms instead of spinning, and are logged at most once a second.
 *
 * Input filter (what the client sends, before evhttp parses it):
 *   - every request must arrive whole, head and body, within
 *     gateway.request_deadline_s of its first byte (slowloris, trickled
 *     bodies): the connection is closed otherwise;
 *   - the head is checked raw: a NUL byte (C strings would cut the header
 *     there, so "Bearer <token>\0junk" would authenticate), two differing
 *     Content-Length headers, Transfer-Encoding (bodies need a
 *     Content-Length), more than gateway.max_connections_per_ip
 *     connections from the address, and a body above UNAUTH_BODY_MAX
 *     without a valid key are refused before any body byte is buffered;
 *     the request is replaced by one that dispatch answers with the JSON
 *     error (gw_conn_check), and the connection closes after it.
 * Output filter: evhttp's own error pages (400, 413, 501...) are HTML; they
 * are rewritten into the API's JSON error body.
 */
#define _GNU_SOURCE /* strcasestr */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>

#include "gateway.h"
#include "head.h"
#include "linli/error.h"
#include "linli/log.h"

#define HEAD_MAX 16384          /* evhttp_set_max_headers_size as well */
#define UNAUTH_BODY_MAX 65536   /* bodies above this need a valid key */
#define FD_RESERVE 64           /* descriptors kept for everything else */
#define REJECT_PATH "/-/rejected"
#define OUT_HIGH 65536          /* output queued below the filter */

enum cstate { C_IDLE, C_HEAD, C_BODY, C_DONE };

struct gw_conn {
  struct gw *gw;
  struct gw_conn *prev, *next; /* in accept order */
  struct bufferevent *bev;     /* the filter evhttp reads and writes */
  struct bufferevent *under;   /* the socket under it */
  struct event *deadline;
  struct event *flush_ev;
  int linked; /* in the list and counted */
  int fd;                      /* -1 until the first byte */
  char ip[INET6_ADDRSTRLEN];
  enum cstate st;
  int64_t started_ms;          /* first byte of the current request */
  char *head;                  /* the current request head (C_HEAD) */
  size_t head_len;
  int64_t body_left;           /* C_BODY */
  /* A refused request: dispatch answers it (gw_conn_check). */
  int reject_status;
  const char *reject_code, *reject_msg;
  int discard; /* after a refusal: the rest of the input is dropped */
  /* Output: bytes of the current response's body still to pass, or -1
   * (pass everything: a chunked stream, the last response). */
  int64_t out_left;
  int out_in_body;
  int stream; /* an SSE stream: passed on as is, ends by a close anyway */
};

struct gw_conns {
  struct gw *gw;
  struct evconnlistener *listener;
  struct event *resume_ev;
  struct gw_conn *head, *tail;
  int n, max, per_ip;
  int paused;
  int64_t deadline_ms;
  struct gw_conn **by_fd;
  int nfd;
  int err_paused; /* accept() failed: paused for a moment */
  struct bufferevent *(*make)(struct event_base *base, void *arg);
  void *make_arg;
  int64_t last_log_ms;
  long suppressed;
};

static int64_t now_ms(void) {
  struct timeval tv;
  gettimeofday(&tv, NULL);
  return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* ---------------------------------------------------------- rate-limited log */

/* At most one line a second for noise a client can cause at will. */
static int log_allowed(struct gw_conns *C) {
  int64_t t = now_ms();
  if (t - C->last_log_ms < 1000) {
    C->suppressed++;
    return 0;
  }
  C->last_log_ms = t;
  return 1;
}

/* libevent's own warnings go through the same limit. */
static struct gw_conns *log_owner;
static void on_event_log(int severity, const char *msg) {
  if (severity < EVENT_LOG_WARN)
    return;
  /* libevent 2.1's filter says this on every close although the socket's
   * bufferevent (and descriptor) goes with the filter's last reference. */
  if (strstr(msg, "with too few references"))
    return;
  if (log_owner && !log_allowed(log_owner))
    return;
  long s = log_owner ? log_owner->suppressed : 0;
  if (log_owner)
    log_owner->suppressed = 0;
  LINLI_WARN("libevent", "msg=\"%s\" suppressed_before=%ld", msg, s);
}

/* ------------------------------------------------------------- lifetime */

static void conn_unlink(struct gw_conns *C, struct gw_conn *c) {
  if (c->prev)
    c->prev->next = c->next;
  else
    C->head = c->next;
  if (c->next)
    c->next->prev = c->prev;
  else
    C->tail = c->prev;
  c->prev = c->next = NULL;
}

static void listener_update(struct gw_conns *C);

/* The filter is being freed (evhttp closed the connection). */
static void conn_free(void *arg) {
  struct gw_conn *c = arg;
  struct gw_conns *C = c->gw ? c->gw->conns : NULL;
  if (C && c->linked) {
    conn_unlink(C, c);
    C->n--;
    if (c->fd >= 0 && c->fd < C->nfd && C->by_fd[c->fd] == c)
      C->by_fd[c->fd] = NULL;
    listener_update(C);
  }
  if (c->deadline)
    event_free(c->deadline);
  if (c->flush_ev)
    event_free(c->flush_ev);
  free(c->head);
  free(c);
}

/* Close the connection as if the peer had gone: evhttp frees it (and us,
 * through conn_free). Never touch c after this. */
static void conn_kill(struct gw_conn *c) {
  bufferevent_trigger_event(c->bev, BEV_EVENT_EOF | BEV_EVENT_READING, 0);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  struct gw_conn *c = arg;
  struct gw_conns *C = c->gw->conns;
  if (c->st != C_HEAD && c->st != C_BODY)
    return;
  if (log_allowed(C))
    LINLI_WARN("request deadline passed: connection closed",
               "ip=%s state=%s suppressed_before=%ld", c->ip,
               c->st == C_HEAD ? "head" : "body", C->suppressed);
  conn_kill(c);
}

/* A connection that may go to make room: one without a request being
 * answered (a slow head or body, or an idle keep-alive). */
static int evictable(const struct gw_conn *c, int64_t t) {
  if (c->st == C_IDLE)
    return 1;
  return (c->st == C_HEAD || c->st == C_BODY) && t - c->started_ms >= 1000;
}

/* Accept while there is room and accept() has not just failed. */
static void listener_update(struct gw_conns *C) {
  if (!C->listener)
    return;
  int want = !C->err_paused && C->n < C->max;
  if (want && C->paused) {
    evconnlistener_enable(C->listener);
    C->paused = 0;
  } else if (!want && !C->paused) {
    evconnlistener_disable(C->listener);
    C->paused = 1;
  }
}

/* At the limit: the oldest slow or idle connection goes (never fresh,
 * the one just accepted). */
static void make_room(struct gw_conns *C, const struct gw_conn *fresh) {
  int64_t t = now_ms();
  for (struct gw_conn *c = C->head; c; c = c->next) {
    if (c != fresh && evictable(c, t)) {
      if (log_allowed(C))
        LINLI_WARN("connection limit: closing a slow or idle connection",
                   "ip=%s max=%d suppressed_before=%ld", c->ip, C->max,
                   C->suppressed);
      conn_kill(c);
      return;
    }
  }
}

static void on_resume(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  struct gw_conns *C = arg;
  C->err_paused = 0;
  listener_update(C);
}

static void on_accept_error(struct evconnlistener *l, void *arg) {
  (void)l;
  (void)arg; /* evhttp's: the listener's user data is the evhttp */
  struct gw_conns *C = log_owner;
  if (!C)
    return;
  int e = EVUTIL_SOCKET_ERROR();
  if (log_allowed(C))
    LINLI_WARN("accept failed: pausing new connections for 100 ms",
               "reason=\"%s\" connections=%d suppressed_before=%ld",
               evutil_socket_error_to_string(e), C->n, C->suppressed);
  C->err_paused = 1;
  listener_update(C);
  struct timeval tv = {0, 100000};
  event_add(C->resume_ev, &tv);
}

/* -------------------------------------------------------------- refusals */

static void refuse(struct gw_conn *c, struct evbuffer *src,
                   struct evbuffer *dst, int status, const char *code,
                   const char *msg) {
  static const char REQ[] = "GET " REJECT_PATH " HTTP/1.1\r\nHost: -\r\n"
                            "Connection: close\r\n\r\n";
  c->reject_status = status;
  c->reject_code = code;
  c->reject_msg = msg;
  c->discard = 1;
  c->st = C_DONE;
  evbuffer_drain(src, evbuffer_get_length(src));
  evbuffer_add(dst, REQ, sizeof REQ - 1);
}

/* The first byte: who is this, and may they have another connection? */
static int conn_identify(struct gw_conn *c) {
  struct gw_conns *C = c->gw->conns;
  struct bufferevent *u = bufferevent_get_underlying(c->bev);
  c->fd = u ? (int)bufferevent_getfd(u) : -1;
  snprintf(c->ip, sizeof c->ip, "?");
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  if (c->fd >= 0 && getpeername(c->fd, (struct sockaddr *)&ss, &sl) == 0) {
    if (ss.ss_family == AF_INET)
      inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, c->ip,
                sizeof c->ip);
    else if (ss.ss_family == AF_INET6)
      inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, c->ip,
                sizeof c->ip);
  }
  if (c->fd >= 0 && c->fd < C->nfd)
    C->by_fd[c->fd] = c;
  int same = 0;
  for (struct gw_conn *o = C->head; o; o = o->next)
    same += o->fd >= 0 && strcmp(o->ip, c->ip) == 0;
  return same <= C->per_ip ? 0 : -1;
}

/* ---------------------------------------------------------- input filter */

/* Check a complete head (head.h); sets body_left. 0 to pass it on, or
 * refuses. */
static int head_check(struct gw_conn *c, struct evbuffer *src,
                      struct evbuffer *dst) {
  struct gw_head hd;
  switch (gw_head_scan(c->head, c->head_len, &hd)) {
  case GW_HEAD_NUL:
    refuse(c, src, dst, 400, "bad_request", "a NUL byte in the request head");
    return -1;
  case GW_HEAD_BAD_LENGTH:
    refuse(c, src, dst, 400, "bad_request", "Content-Length is not a number");
    return -1;
  case GW_HEAD_CONFLICTING_LENGTH:
    refuse(c, src, dst, 400, "bad_request",
           "conflicting Content-Length headers");
    return -1;
  case GW_HEAD_TRANSFER_ENCODING:
    refuse(c, src, dst, 411, "length_required",
           "send the body with a Content-Length (no Transfer-Encoding)");
    return -1;
  case GW_HEAD_OK:
    break;
  }
  if (hd.content_length > UNAUTH_BODY_MAX) {
    /* Only a known key may make the gateway buffer a big body. */
    char tok[520];
    const struct gw_key *k = NULL;
    if (hd.auth && hd.auth_len > 7 && hd.auth_len - 7 < sizeof tok &&
        strncasecmp(hd.auth, "Bearer ", 7) == 0) {
      memcpy(tok, hd.auth + 7, hd.auth_len - 7);
      tok[hd.auth_len - 7] = '\0';
      k = gw_keys_find(&c->gw->keys, tok);
    }
    if (!k) {
      refuse(c, src, dst, 401, "unauthorized",
             "a body this large needs a valid API key");
      return -1;
    }
  }
  c->body_left = hd.content_length > 0 ? hd.content_length : 0;
  return 0;
}

static enum bufferevent_filter_result
in_filter(struct evbuffer *src, struct evbuffer *dst, ev_ssize_t limit,
          enum bufferevent_flush_mode mode, void *arg) {
  (void)limit;
  (void)mode;
  struct gw_conn *c = arg;
  struct gw_conns *C = c->gw->conns;
  if (c->fd < 0 && !c->discard && conn_identify(c) != 0) {
    refuse(c, src, dst, 429, "too_many_connections",
           "too many connections from this address "
           "(gateway.max_connections_per_ip)");
    return BEV_OK;
  }
  while (evbuffer_get_length(src) > 0) {
    if (c->discard) {
      evbuffer_drain(src, evbuffer_get_length(src));
      break;
    }
    switch (c->st) {
    case C_DONE: /* a pipelined next request */
    case C_IDLE: {
      c->st = C_HEAD;
      c->head_len = 0;
      c->started_ms = now_ms();
      struct timeval tv = {C->deadline_ms / 1000,
                           (C->deadline_ms % 1000) * 1000};
      evtimer_add(c->deadline, &tv);
      break;
    }
    case C_HEAD: {
      if (!c->head && !(c->head = malloc(HEAD_MAX + 1)))
        return BEV_ERROR;
      size_t room = HEAD_MAX - c->head_len;
      size_t avail = evbuffer_get_length(src);
      size_t take = avail < room ? avail : room;
      ev_ssize_t got = evbuffer_copyout(src, c->head + c->head_len, take);
      if (got < 0)
        return BEV_ERROR;
      size_t from = c->head_len > 2 ? c->head_len - 2 : 0;
      size_t end = gw_head_end(c->head, from, c->head_len + (size_t)got);
      if (!end) {
        if (c->head_len + (size_t)got >= HEAD_MAX) {
          refuse(c, src, dst, 431, "headers_too_large",
                 "the request head is larger than 16 KiB");
          return BEV_OK;
        }
        /* Keep the bytes until the head is whole. */
        c->head_len += (size_t)got;
        evbuffer_drain(src, (size_t)got);
        break;
      }
      size_t consume = end - c->head_len;
      c->head_len = end;
      evbuffer_drain(src, consume);
      if (head_check(c, src, dst) != 0)
        return BEV_OK;
      evbuffer_add(dst, c->head, c->head_len);
      c->st = c->body_left > 0 ? C_BODY : C_DONE;
      break;
    }
    case C_BODY: {
      size_t avail = evbuffer_get_length(src);
      size_t n = (int64_t)avail < c->body_left ? avail : (size_t)c->body_left;
      evbuffer_remove_buffer(src, dst, n);
      c->body_left -= (int64_t)n;
      if (c->body_left == 0)
        c->st = C_DONE;
      break;
    }
    }
  }
  return BEV_OK;
}

/* --------------------------------------------------------- output filter */

static const char *error_code(int status) {
  switch (status) {
  case 400: return "bad_request";
  case 404: return "not_found";
  case 405: return "method_not_allowed";
  case 408: return "request_timeout";
  case 411: return "length_required";
  case 413: return "payload_too_large";
  case 417: return "expectation_failed";
  case 431: return "headers_too_large";
  case 501: return "not_implemented";
  case 503: return "unavailable";
  default: return status < 500 ? "client_error" : "server_error";
  }
}

static const char *reason_phrase(int status) {
  switch (status) {
  case 400: return "Bad Request";
  case 405: return "Method Not Allowed";
  case 408: return "Request Timeout";
  case 411: return "Length Required";
  case 413: return "Payload Too Large";
  case 431: return "Request Header Fields Too Large";
  case 501: return "Not Implemented";
  default: return status < 500 ? "Client Error" : "Server Error";
  }
}

static const char *error_message(int status) {
  switch (status) {
  case 400: return "the request is not valid HTTP";
  case 413: return "the body is larger than gateway.max_body_bytes";
  case 501: return "this method is not supported";
  default: return "the HTTP layer refused the request";
  }
}

/* An evhttp error page (HTML) becomes the API's JSON error. */
static void rewrite_error(struct evbuffer *dst, int status) {
  char body[256];
  int bl = snprintf(body, sizeof body, "{\"error\":\"%s\",\"message\":\"%s\"}\n",
                    error_code(status), error_message(status));
  evbuffer_add_printf(dst,
                      "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                      "Cache-Control: no-store\r\nConnection: close\r\n"
                      "Content-Length: %d\r\n\r\n%s",
                      status, reason_phrase(status), bl, body);
}

/* Transform at most budget bytes of src into dst; returns the bytes
 * consumed, or -1 when the rest of a response head has not come yet. */
static ev_ssize_t out_transform(struct gw_conn *c, struct evbuffer *src,
                                struct evbuffer *dst, size_t budget) {
  static const char HTML[] = "<HTML><HEAD>";
  size_t used = 0;
  while (used < budget && evbuffer_get_length(src) > 0) {
    size_t room = budget - used;
    if (c->out_left < 0 || c->out_in_body) {
      size_t avail = evbuffer_get_length(src);
      size_t n = avail < room ? avail : room;
      if (c->out_left >= 0 && (int64_t)n > c->out_left)
        n = (size_t)c->out_left;
      evbuffer_remove_buffer(src, dst, n);
      used += n;
      if (c->out_left >= 0) {
        c->out_left -= (int64_t)n;
        if (c->out_left == 0)
          c->out_in_body = 0;
      }
      continue;
    }
    struct evbuffer_ptr e = evbuffer_search(src, "\r\n\r\n", 4, NULL);
    if (e.pos < 0) {
      if (evbuffer_get_length(src) <= 65536)
        return used ? (ev_ssize_t)used : -1;
      c->out_left = -1; /* not HTTP as we know it: pass it on */
      continue;
    }
    size_t hl = (size_t)e.pos + 4;
    char head[8192];
    size_t cp = hl < sizeof head - 1 ? hl : sizeof head - 1;
    evbuffer_copyout(src, head, cp);
    head[cp] = '\0';
    int status = 0;
    sscanf(head, "HTTP/1.%*d %d", &status);
    const char *p = strcasestr(head, "\r\nContent-Length:");
    long long cl = p ? strtoll(p + 17, NULL, 10) : -1;
    int chunked = strcasestr(head, "\r\nTransfer-Encoding:") != NULL;
    if (status >= 400 && !chunked &&
        evbuffer_get_length(src) >= hl + sizeof HTML - 1) {
      char start[sizeof HTML];
      struct evbuffer_ptr bp;
      evbuffer_ptr_set(src, &bp, hl, EVBUFFER_PTR_SET);
      evbuffer_copyout_from(src, &bp, start, sizeof HTML - 1);
      if (memcmp(start, HTML, sizeof HTML - 1) == 0) {
        /* evhttp's error page (it closes after it): all of it, or wait. */
        size_t total = cl >= 0 ? hl + (size_t)cl : evbuffer_get_length(src);
        if (evbuffer_get_length(src) < total)
          return used ? (ev_ssize_t)used : -1;
        evbuffer_drain(src, total);
        rewrite_error(dst, status);
        used += total;
        c->out_left = -1;
        continue;
      }
    } else if (status >= 400 && !chunked && cl != 0) {
      return used ? (ev_ssize_t)used : -1; /* its first body bytes decide */
    }
    if (hl > room)
      return (ev_ssize_t)used;
    evbuffer_remove_buffer(src, dst, hl);
    used += hl;
    if (status >= 100 && status < 200) {
      continue; /* "100 Continue": the answer itself comes next */
    } else if (chunked || cl < 0) {
      c->out_left = -1; /* a stream: pass everything from now on */
      c->stream = 1;
    } else {
      c->out_in_body = cl > 0;
      c->out_left = cl;
    }
  }
  return (ev_ssize_t)used;
}

/* libevent 2.1's filter tells evhttp an answer is written once it is in the
 * socket's bufferevent, not in the kernel, and evhttp shuts the socket down
 * right after a "Connection: close" answer: so the output is written to the
 * socket here, and the last byte of the filter's output stays until
 * everything before it is in the kernel (evhttp waits for it). */
static enum bufferevent_filter_result
out_filter(struct evbuffer *src, struct evbuffer *dst, ev_ssize_t limit,
           enum bufferevent_flush_mode mode, void *arg) {
  (void)limit;
  (void)mode;
  struct gw_conn *c = arg;
  if (c->stream) {
    /* sse.c bounds a stream's backlog (filter and socket together). */
    evbuffer_add_buffer(dst, src);
    return BEV_OK;
  }
  for (;;) {
    size_t len = evbuffer_get_length(src);
    if (len == 0)
      break;
    /* Past OUT_HIGH bytes waiting for the socket, the rest stays in the
     * filter, where evhttp and sse.c see a slow client's backlog. */
    size_t queued = evbuffer_get_length(dst);
    size_t budget = queued == 0 ? len
                    : queued >= OUT_HIGH ? 0
                    : len - 1 < OUT_HIGH - queued ? len - 1
                                                  : OUT_HIGH - queued;
    ev_ssize_t used = budget ? out_transform(c, src, dst, budget) : 0;
    if (used < 0)
      return BEV_NEED_MORE;
    while (c->fd >= 0 && evbuffer_get_length(dst) > 0 &&
           evbuffer_write(dst, c->fd) > 0)
      ;
    if (used == 0 && (budget == len || evbuffer_get_length(dst) > 0))
      break; /* the socket's write event calls us again */
  }
  return BEV_OK;
}

/* ----------------------------------------------------------------- api */

/* evhttp writes a reply before it enables writing, and libevent 2.1's
 * filter only filters output while writing is enabled: without a nudge an
 * answer given from a callback (Redis, PostgreSQL, Kafka) would sit in the
 * filter. So every write is flushed from the loop's next turn, when evhttp
 * has enabled writing. */
static void on_flush(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  struct gw_conn *c = arg;
  bufferevent_flush(c->bev, EV_WRITE, BEV_NORMAL);
}

static void on_out_added(struct evbuffer *b, const struct evbuffer_cb_info *i,
                         void *arg) {
  (void)b;
  struct gw_conn *c = arg;
  if (i->n_added)
    event_active(c->flush_ev, EV_TIMEOUT, 0);
}

static struct bufferevent *on_new_conn(struct event_base *base, void *arg) {
  struct gw *gw = arg;
  struct gw_conns *C = gw->conns;
  /* TLS connections are not filtered (out_filter writes to the socket):
   * terminate TLS in front of the gateway for these limits. */
  if (C->make)
    return C->make(base, C->make_arg);
  struct bufferevent *u = bufferevent_socket_new(base, -1,
                                                 BEV_OPT_CLOSE_ON_FREE);
  struct gw_conn *c = calloc(1, sizeof *c);
  if (!u || !c)
    goto fail;
  c->gw = gw;
  c->fd = -1;
  snprintf(c->ip, sizeof c->ip, "?");
  c->deadline = evtimer_new(base, on_deadline, c);
  c->flush_ev = event_new(base, -1, 0, on_flush, c);
  if (!c->deadline || !c->flush_ev)
    goto fail;
  c->bev = bufferevent_filter_new(u, in_filter, out_filter,
                                  BEV_OPT_CLOSE_ON_FREE, conn_free, c);
  if (!c->bev)
    goto fail;
  c->under = u;
  if (!evbuffer_add_cb(bufferevent_get_output(c->bev), on_out_added, c)) {
    bufferevent_free(c->bev); /* frees c and u (conn_free) */
    return NULL;
  }
  c->linked = 1;
  c->prev = C->tail;
  if (C->tail)
    C->tail->next = c;
  else
    C->head = c;
  C->tail = c;
  if (++C->n >= C->max)
    make_room(C, c);
  listener_update(C);
  return c->bev;
fail:
  /* evhttp makes a plain bufferevent of its own: served, unfiltered. */
  if (c && c->deadline)
    event_free(c->deadline);
  if (c && c->flush_ev)
    event_free(c->flush_ev);
  free(c);
  if (u)
    bufferevent_free(u);
  return NULL;
}

int gw_conn_start(struct gw *gw,
                  struct bufferevent *(*make)(struct event_base *, void *),
                  void *make_arg, struct evhttp_bound_socket **bound,
                  char *err, size_t errlen) {
  struct gw_conns *C = calloc(1, sizeof *C);
  if (!C) {
    snprintf(err, errlen, "out of memory");
    return LINLI_ERR_NOMEM;
  }
  gw->conns = C;
  C->gw = gw;
  C->make = make;
  C->make_arg = make_arg;
  C->deadline_ms =
      linli_config_int(gw->cfg, "gateway.request_deadline_s") * 1000;
  C->per_ip = (int)linli_config_int(gw->cfg, "gateway.max_connections_per_ip");
  C->max = (int)linli_config_int(gw->cfg, "gateway.max_connections");
  struct rlimit rl;
  int nofile = 1024;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
    nofile = rl.rlim_cur > (1 << 20) ? (1 << 20) : (int)rl.rlim_cur;
  else if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
    nofile = 1 << 20;
  /* Descriptors stay for Redis, PostgreSQL, Kafka and /healthz. */
  if (C->max > nofile - FD_RESERVE) {
    int m = nofile - FD_RESERVE > 8 ? nofile - FD_RESERVE : 8;
    LINLI_WARN("gateway.max_connections lowered to fit the descriptor limit",
               "configured=%d nofile=%d max=%d", C->max, nofile, m);
    C->max = m;
  }
  C->nfd = nofile;
  C->by_fd = calloc((size_t)nofile, sizeof *C->by_fd);
  C->resume_ev = evtimer_new(gw->base, on_resume, C);
  if (!C->by_fd || !C->resume_ev) {
    snprintf(err, errlen, "out of memory");
    return LINLI_ERR_NOMEM;
  }
  log_owner = C;
  event_set_log_callback(on_event_log);
  evhttp_set_bevcb(gw->http, on_new_conn, gw);

  const char *addr = linli_config_str(gw->cfg, "gateway.addr");
  int port = (int)linli_config_int(gw->cfg, "gateway.port");
  char ap[300];
  snprintf(ap, sizeof ap, strchr(addr, ':') ? "[%s]:%d" : "%s:%d", addr, port);
  struct sockaddr_storage ss;
  int sl = sizeof ss;
  memset(&ss, 0, sizeof ss);
  if (evutil_parse_sockaddr_port(ap, (struct sockaddr *)&ss, &sl) != 0) {
    snprintf(err, errlen, "gateway.addr %s is not an IP address", addr);
    return LINLI_ERR_CONFIG;
  }
  C->listener = evconnlistener_new_bind(
      gw->base, NULL, NULL,
      LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_CLOSE_ON_FREE, -1,
      (struct sockaddr *)&ss, sl);
  if (!C->listener) {
    snprintf(err, errlen, "cannot listen on %s (gateway.addr/port): %s", ap,
             evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
    return LINLI_ERR_CONFIG;
  }
  *bound = evhttp_bind_listener(gw->http, C->listener);
  if (!*bound) {
    evconnlistener_free(C->listener);
    C->listener = NULL;
    snprintf(err, errlen, "evhttp_bind_listener failed");
    return LINLI_ERR_FATAL;
  }
  /* evhttp set its accept callback (and the listener's user data); the
   * error callback is ours. */
  evconnlistener_set_error_cb(C->listener, on_accept_error);
  return LINLI_OK;
}

void gw_conn_listener_gone(struct gw *gw) {
  if (gw->conns)
    gw->conns->listener = NULL;
}

void gw_conn_stop(struct gw *gw) {
  struct gw_conns *C = gw->conns;
  if (!C)
    return;
  /* The connections are gone (evhttp_free) or go without us. */
  for (struct gw_conn *c = C->head; c; c = c->next)
    c->gw = NULL;
  if (C->resume_ev)
    event_free(C->resume_ev);
  free(C->by_fd);
  if (log_owner == C) {
    event_set_log_callback(NULL);
    log_owner = NULL;
  }
  free(C);
  gw->conns = NULL;
}

int gw_conn_check(struct gw_req *r) {
  struct gw_conns *C = r->gw->conns;
  struct evhttp_connection *evcon = evhttp_request_get_connection(r->req);
  struct bufferevent *b = evcon ? evhttp_connection_get_bufferevent(evcon)
                                : NULL;
  struct bufferevent *u = b ? bufferevent_get_underlying(b) : NULL;
  int fd = u ? (int)bufferevent_getfd(u) : -1;
  struct gw_conn *c = C && fd >= 0 && fd < C->nfd ? C->by_fd[fd] : NULL;
  if (!c || c->bev != b)
    return 0;
  if (c->reject_status) {
    evhttp_add_header(evhttp_request_get_output_headers(r->req), "Connection",
                      "close");
    gw_reply_error(r, c->reject_status, c->reject_code, c->reject_msg);
    return 1;
  }
  if (c->st == C_DONE) {
    c->st = C_IDLE;
    evtimer_del(c->deadline);
  }
  return 0;
}
