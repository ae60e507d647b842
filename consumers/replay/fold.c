/*
 * fold.c - the fold that every audit rule observes into and checks from,
 * and the helpers the rules share (report a difference, scope, stock
 * cells, Redis reads). The rules table and the commands (audit.c) use
 * these; nothing here calls back into audit.c, so a rule file depends on
 * this file and audit.h only.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "linli/error.h"

void audit_diff(struct audit_ctx *ctx, const char *rule, const char *fmt,
                ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(ctx->out, "DIFF [%s] ", rule);
  vfprintf(ctx->out, fmt, ap);
  fputc('\n', ctx->out);
  va_end(ap);
  ctx->differences++;
}

int audit_in_scope(const struct audit_ctx *ctx, const char *warehouse) {
  return !ctx->warehouse || strcmp(ctx->warehouse, warehouse) == 0;
}

struct stock_cell *fold_cell(struct fold *f, const char *wh, const char *sku) {
  char key[160];
  snprintf(key, sizeof key, "%s|%s", wh, sku);
  int created = 0;
  struct stock_cell *c = linli_strmap_get_or_add(f->stock, key, &created, NULL);
  if (c && created) {
    snprintf(c->warehouse, sizeof c->warehouse, "%s", wh);
    snprintf(c->sku, sizeof c->sku, "%s", sku);
  }
  return c;
}

void fold_apply_lines(struct fold *f, const char *wh, const char *lines,
                      int64_t d_reserved, int64_t d_sold) {
  char buf[1024];
  snprintf(buf, sizeof buf, "%s", lines);
  char *save = NULL;
  for (char *tok = strtok_r(buf, ",", &save); tok;
       tok = strtok_r(NULL, ",", &save)) {
    char *colon = strchr(tok, ':');
    if (!colon)
      continue;
    *colon = '\0';
    long long q = atoll(colon + 1);
    struct stock_cell *c = fold_cell(f, wh, tok);
    if (c) {
      c->reserved += d_reserved * q;
      c->sold += d_sold * q;
    }
  }
}

int redis_hget_int(linli_redis_t *r, const char *key, const char *field,
                   int64_t *out) {
  const char *argv[] = {"HGET", key, field};
  redisReply *rep = NULL;
  if (linli_redis_command(r, 3, argv, NULL, &rep) != LINLI_OK)
    return -1;
  *out = rep->type == REDIS_REPLY_STRING ? atoll(rep->str) : 0;
  int rc = rep->type == REDIS_REPLY_ERROR ? -1 : 0;
  freeReplyObject(rep);
  return rc;
}
