/*
 * reply.c - what every gateway handler calls back: JSON replies (each one
 * counted and timed), the request body and headers, and copying a request
 * into a context that outlives the dispatch. http.c's route table calls
 * the handlers; the handlers call only these, so no handler file depends
 * on the dispatcher.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "gateway.h"

int64_t gw_now_us(void) {
  struct timeval tv;
  gettimeofday(&tv, NULL);
  return (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
}

void gw_reply_count(struct gw_req *r, int status) {
  struct gw *gw = r->gw;
  int cls = status / 100;
  if (cls >= 2 && cls <= 5)
    linli_counter_add(gw->m_requests[cls], 1);
  linli_histogram_observe(gw->m_latency,
                          (double)(gw_now_us() - r->started_us) / 1e6);
}

static const char *reason_phrase(int status) {
  switch (status) {
  case 200: return "OK";
  case 202: return "Accepted";
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 409: return "Conflict";
  case 413: return "Payload Too Large";
  case 415: return "Unsupported Media Type";
  case 429: return "Too Many Requests";
  case 503: return "Service Unavailable";
  default: return status < 500 ? "Client Error" : "Server Error";
  }
}

void gw_reply_text(struct gw_req *r, int status, const char *json_text) {
  struct evkeyvalq *h = evhttp_request_get_output_headers(r->req);
  evhttp_add_header(h, "Content-Type", "application/json");
  evhttp_add_header(h, "Cache-Control", "no-store");
  struct evbuffer *b = evbuffer_new();
  if (b) {
    evbuffer_add(b, json_text, strlen(json_text));
    evbuffer_add(b, "\n", 1);
  }
  gw_reply_count(r, status);
  evhttp_send_reply(r->req, status, reason_phrase(status), b);
  if (b)
    evbuffer_free(b);
}

void gw_reply_json(struct gw_req *r, int status, json_t *body) {
  char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
  json_decref(body);
  gw_reply_text(r, status, text ? text : "{\"error\":\"internal\"}");
  free(text);
}

void gw_reply_error(struct gw_req *r, int status, const char *code,
                    const char *msg) {
  gw_reply_json(r, status,
                json_pack("{s:s, s:s}", "error", code, "message", msg));
}

int gw_reply_invalid(struct gw_req *r, json_t *errs, const char *message) {
  if (json_array_size(errs) == 0) {
    json_decref(errs);
    return 0;
  }
  gw_reply_json(r, 400,
                json_pack("{s:s, s:s, s:o}", "error", "invalid_request",
                          "message", message, "fields", errs));
  return 1;
}

char *gw_body(struct gw_req *r, size_t *len) {
  struct evbuffer *in = evhttp_request_get_input_buffer(r->req);
  size_t n = evbuffer_get_length(in);
  char *s = malloc(n + 1);
  if (!s)
    return NULL;
  evbuffer_copyout(in, s, n);
  s[n] = '\0';
  *len = n;
  return s;
}

const char *gw_header(struct gw_req *r, const char *name) {
  return evhttp_find_header(evhttp_request_get_input_headers(r->req), name);
}

void gw_req_copy(struct gw_req *dst, const struct gw_req *src) {
  *dst = *src;
  if (src->param)
    dst->param = dst->param_buf;
  if (src->param2)
    dst->param2 = dst->param2_buf;
}
