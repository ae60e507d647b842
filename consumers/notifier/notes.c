/*
 * notes.c - one notification, built once per channel: its deterministic
 * id, the NotificationEvent for linli.notifications.v1 and the JSON body
 * the webhook receives (the same Notification, as JSON).
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domain/notifier_keys.h"
#include "linli/hash.h"
#include "linli/error.h"
#include "linli/ids.h"
#include "linli/json.h"
#include "notifier.h"

#define PRODUCER_NAME "linli-notifier"

int nt_shard(const struct notifier *nt, const char *id) {
  return (int)(linli_hash_str(id) % (uint64_t)nt->nshards);
}

void nt_tag(const struct notifier *nt, int shard, char *buf, size_t len) {
  dom_nt_tag(buf, len, nt->prefix, shard);
}

const char *nt_channel_name(int channel) {
  switch (channel) {
  case LINLI__NOTIFICATION__CHANNEL__SMS:
    return "sms";
  case LINLI__NOTIFICATION__CHANNEL__WECHAT:
    return "wechat";
  case LINLI__NOTIFICATION__CHANNEL__APP_PUSH:
    return "app_push";
  default:
    return "unspecified";
  }
}

void nt_note_id(const char *cause, const char *tpl, const char *channel,
                const char *user, char *buf, size_t len) {
  /* Unit separators keep ("a|b", "c") and ("a", "b|c") apart. */
  crypto_hash_sha256_state st;
  unsigned char h[crypto_hash_sha256_BYTES];
  const char *parts[] = {cause, tpl, channel, user};
  crypto_hash_sha256_init(&st);
  for (int i = 0; i < 4; i++) {
    crypto_hash_sha256_update(&st, (const unsigned char *)parts[i],
                              strlen(parts[i]));
    crypto_hash_sha256_update(&st, (const unsigned char *)"\x1f", 1);
  }
  crypto_hash_sha256_final(&st, h);
  char hex[33];
  sodium_bin2hex(hex, sizeof hex, h, 16);
  snprintf(buf, len, "n%s", hex);
}

int nt_note_build(const struct notifier *nt, const struct nt_note *n,
                  int channel, char *id, uint8_t **packed, size_t *packedlen,
                  char **body) {
  *packed = NULL;
  if (body)
    *body = NULL;
  const char *tpl = dom_tpl_name(n->tpl);
  const char *locale = dom_tpl_locale(nt->tpl, n->locale);
  nt_note_id(n->cause_event_id, tpl, nt_channel_name(channel), n->user, id,
             LINLI_ID_BUFSZ);
  char text[2048];
  /* A text cut at the buffer is still sent (it is display text); params
   * carry the full values. */
  (void)dom_tpl_render(nt->tpl, n->tpl, locale, n->params, n->nparams, text,
                       sizeof text);

  Linli__Notification msg = LINLI__NOTIFICATION__INIT;
  Linli__Notification__Param pv[DOM_TPL_MAX_PARAMS];
  Linli__Notification__Param *pp[DOM_TPL_MAX_PARAMS];
  for (size_t i = 0; i < n->nparams && i < DOM_TPL_MAX_PARAMS; i++) {
    linli__notification__param__init(&pv[i]);
    pv[i].key = (char *)n->params[i].key;
    pv[i].value = (char *)(n->params[i].value ? n->params[i].value : "");
    pp[i] = &pv[i];
  }
  msg.notification_id = id;
  msg.user_id = (char *)n->user;
  msg.channel = channel;
  msg.template_ = (char *)tpl;
  msg.locale = (char *)locale;
  msg.n_params = n->nparams;
  msg.params = pp;
  msg.order_id = (char *)(n->order_id ? n->order_id : "");
  msg.campaign_id = (char *)(n->campaign_id ? n->campaign_id : "");
  msg.text = text;

  Linli__Meta meta = LINLI__META__INIT;
  meta.event_id = id;
  meta.occurred_at_ms = n->occurred_at_ms;
  meta.producer = (char *)PRODUCER_NAME;
  meta.trace_id = (char *)(n->trace_id ? n->trace_id : "");
  meta.schema_version = 1;
  meta.causation_id = (char *)n->cause_event_id;
  Linli__NotificationEvent ev = LINLI__NOTIFICATION_EVENT__INIT;
  ev.meta = &meta;
  ev.event_case = LINLI__NOTIFICATION_EVENT__EVENT_NOTIFICATION;
  ev.notification = &msg;

  size_t len = linli__notification_event__get_packed_size(&ev);
  uint8_t *buf = malloc(len ? len : 1);
  if (!buf)
    return LINLI_ERR_NOMEM;
  linli__notification_event__pack(&ev, buf);
  if (body && linli_pb_to_json_text(&msg.base, body) != LINLI_OK) {
    free(buf);
    return LINLI_ERR_NOMEM;
  }
  *packed = buf;
  *packedlen = len;
  return LINLI_OK;
}
