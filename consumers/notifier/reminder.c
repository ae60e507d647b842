/*
 * reminder.c - the payment reminder, a clock decision derived
 * deterministically: when an order that is still awaiting payment comes
 * within notifier.reminder_lead_s of its payment deadline, the clock writes
 * payment_reminder notifications whose ids derive from the order's RESERVED
 * event (so the reminder of an order has the same id whoever writes it,
 * however often). The reminder index (a sorted set per shard) leases due
 * orders while the transaction is open; once it commits, on_commit
 * enqueues the webhook copies (once) and forgets the order. A crash between
 * the commit and that confirmation writes the reminder to the topic again
 * after the lease, under the same id; the webhook still gets it once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domain/notifier_keys.h"
#include "linli/array.h"
#include "linli/clock.h"
#include "linli/error.h"
#include "linli/ids.h"
#include "linli/log.h"
#include "domain/schema.h"
#include "notifier.h"

#define REM_LEASE_MS 30000
#define REM_BATCH "200"

static void pending_clear(struct notifier *nt) {
  for (size_t i = 0; i < nt->npending; i++)
    free(nt->pending[i].body);
  nt->npending = 0;
}

static int pending_add(struct notifier *nt, int shard, const char *order,
                       const char *id, const char *user, const char *chan,
                       char *body) {
  struct nt_pending *np = linli_grow(nt->pending, &nt->cappending,
                                     nt->npending + 1, sizeof *np, 64);
  if (!np)
    return LINLI_ERR_NOMEM;
  nt->pending = np;
  struct nt_pending *p = &nt->pending[nt->npending++];
  p->shard = shard;
  snprintf(p->order, sizeof p->order, "%s", order);
  snprintf(p->id, sizeof p->id, "%s", id);
  snprintf(p->user, sizeof p->user, "%s", user);
  snprintf(p->tpl_chan, sizeof p->tpl_chan, "%s", chan);
  p->body = body;
  return LINLI_OK;
}

/* The user's locale override (see batch.c), or NULL. *reply keeps it. */
static const char *user_locale(struct notifier *nt, const char *user,
                               redisReply **reply) {
  char key[128];
  snprintf(key, sizeof key, "linli:locale:%s", user);
  const char *argv[] = {"GET", key};
  *reply = NULL;
  if (linli_redis_command(nt->redis, 2, argv, NULL, reply) != LINLI_OK)
    return NULL;
  return (*reply)->type == REDIS_REPLY_STRING ? (*reply)->str : NULL;
}

static int remind(struct notifier *nt, linli_emit_t *emit, int shard,
                  const char *order, const char *user, const char *ev,
                  long long tot, long long exp, int64_t now_ms) {
  redisReply *lr = NULL;
  const char *loc = user_locale(nt, user, &lr);
  struct nt_note n;
  memset(&n, 0, sizeof n);
  char money[32], when[32];
  dom_fmt_money(tot, money, sizeof money);
  dom_fmt_time(exp, nt->utc_offset_min, when, sizeof when);
  n.cause_event_id = ev;
  n.trace_id = "";
  n.occurred_at_ms = now_ms;
  n.user = user;
  n.locale = dom_tpl_locale(nt->tpl, loc);
  n.order_id = order;
  n.campaign_id = "";
  n.tpl = DOM_TPL_PAYMENT_REMINDER;
  n.params[0] = (struct dom_param){"order_id", order};
  n.params[1] = (struct dom_param){"total", money};
  n.params[2] = (struct dom_param){"pay_by", when};
  n.nparams = 3;
  int rc = LINLI_OK;
  for (int c = 0; rc == LINLI_OK && c < nt->nchannels; c++) {
    char id[LINLI_ID_BUFSZ];
    uint8_t *packed = NULL;
    size_t plen = 0;
    char *body = NULL;
    rc = nt_note_build(nt, &n, nt->channels[c], id, &packed, &plen,
                       nt->webhook_on ? &body : NULL);
    if (rc == LINLI_OK)
      rc = linli_emit(emit, LINLI_TOPIC_NOTIFICATIONS, RD_KAFKA_PARTITION_UA,
                      user, strlen(user), packed, plen, NULL);
    if (rc == LINLI_OK) {
      rc = pending_add(nt, shard, order, id, user,
                       nt_channel_name(nt->channels[c]), body);
      body = rc == LINLI_OK ? NULL : body;
    }
    free(body);
    free(packed);
  }
  if (lr)
    freeReplyObject(lr);
  return rc;
}

int nt_tick(void *app, linli_emit_t *emit, int64_t now_ms) {
  struct notifier *nt = app;
  if (nt->reminder_lead_ms <= 0 || !emit)
    return LINLI_OK;
  char now_s[32], lease_s[32];
  snprintf(now_s, sizeof now_s, "%lld", (long long)now_ms);
  snprintf(lease_s, sizeof lease_s, "%lld", (long long)now_ms + REM_LEASE_MS);
  int rc = LINLI_OK;
  for (int s = 0; rc == LINLI_OK && s < nt->nshards; s++) {
    char tag[96], key[128], prefix[128];
    nt_tag(nt, s, tag, sizeof tag);
    linli_redis_key(key, sizeof key, tag, DOM_NT_REMINDERS);
    linli_redis_key(prefix, sizeof prefix, tag, "");
    const char *keys[] = {key};
    const char *args[] = {prefix, now_s, lease_s, REM_BATCH};
    redisReply *r = NULL;
    rc = linli_redis_eval(nt->redis, nt->rem_claim, 1, keys, 4, args, NULL,
                          &r);
    if (rc != LINLI_OK)
      return LINLI_ERR_TRANSIENT;
    if (r->type != REDIS_REPLY_ARRAY) {
      LINLI_WARN("reminder claim failed", "shard=%d reply=\"%s\"", s,
                 r->type == REDIS_REPLY_ERROR ? r->str : "?");
      freeReplyObject(r);
      return LINLI_ERR_TRANSIENT;
    }
    for (size_t i = 0; rc == LINLI_OK && i + 4 < r->elements; i += 5) {
      const char *order = r->element[i]->str, *user = r->element[i + 1]->str,
                 *ev = r->element[i + 2]->str;
      rc = remind(nt, emit, s, order, user, ev, atoll(r->element[i + 3]->str),
                  atoll(r->element[i + 4]->str), now_ms);
      if (rc == LINLI_OK)
        LINLI_INFO("payment reminder", "order=%s", order);
    }
    freeReplyObject(r);
  }
  return rc == LINLI_OK ? LINLI_OK : LINLI_ERR_TRANSIENT;
}

void nt_on_commit(void *app) {
  struct notifier *nt = app;
  char now_s[32];
  snprintf(now_s, sizeof now_s, "%lld", (long long)linli_clock_now_ms());
  size_t i = 0;
  while (i < nt->npending) {
    size_t j = i;
    while (j < nt->npending && nt->pending[j].shard == nt->pending[i].shard &&
           strcmp(nt->pending[j].order, nt->pending[i].order) == 0)
      j++;
    char tag[96], key[128], prefix[128];
    nt_tag(nt, nt->pending[i].shard, tag, sizeof tag);
    linli_redis_key(key, sizeof key, tag, DOM_NT_REMINDERS);
    linli_redis_key(prefix, sizeof prefix, tag, "");
    size_t na = 3 + 5 * (j - i);
    const char **args = calloc(na, sizeof *args);
    if (args) {
      args[0] = prefix;
      args[1] = nt->pending[i].order;
      args[2] = now_s;
      for (size_t k = i; k < j; k++) {
        const char **a = &args[3 + 5 * (k - i)];
        a[0] = nt->pending[k].id;
        a[1] = nt->pending[k].user;
        a[2] = "payment_reminder";
        a[3] = nt->pending[k].tpl_chan;
        a[4] = nt->pending[k].body ? nt->pending[k].body : "";
      }
      const char *keys[] = {key};
      redisReply *r = NULL;
      /* On failure the lease runs out and the reminder is written again
       * under the same id. */
      if (linli_redis_eval(nt->redis, nt->rem_done, 1, keys, (int)na, args,
                           NULL, &r) == LINLI_OK)
        freeReplyObject(r);
      free(args);
    }
    i = j;
  }
  pending_clear(nt);
}

void nt_on_abort(void *app) { pending_clear(app); }
