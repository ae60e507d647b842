/*
 * notifier.h - linli-notifier: tells residents what they need to know.
 *
 * Consumes linli.reservations.v1, linli.groupbuy.settlements.v1,
 * linli.routes.v1 and linli.delivery.v1. Each user-visible state change
 * becomes one Notification per configured channel, with a deterministic id
 * (input event id + template + channel + user), written exactly once to
 * linli.notifications.v1 in the runner's transaction. The same batch HWM
 * script that records what the notifier knows about an order or a campaign
 * (its user, ETA, pickup point, participants) also enqueues each new
 * notification for the webhook sink, so a redelivered batch enqueues
 * nothing twice.
 *
 * The webhook sender (sender.c) runs on its own thread and event loop: it
 * claims due notifications from the Redis retry queue, POSTs them signed,
 * records each delivery after the receiver's 2xx, and retries failures with
 * exponential backoff and jitter, so a webhook that stays down never blocks
 * a Kafka partition.
 *
 * State lives in nshards Redis hash tags "{<prefix>:<k>}", k a hash of the
 * order id (or campaign id): every script touches one tag.
 */
#ifndef NOTIFIER_H
#define NOTIFIER_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "domain/notify.h"
#include "linli/config.h"
#include "linli/kafka.h"
#include "linli/metrics.h"
#include "linli/redis.h"
#include "notifications.pb-c.h"

#define NOTIFIER_MAX_CHANNELS 3

/* Metrics of one channel (SMS, WECHAT, APP_PUSH). */
struct nt_channel_metrics {
  linli_counter_t *written;      /* new notifications on the topic */
  linli_counter_t *deduplicated; /* redelivered inputs / already queued */
  linli_counter_t *sent;         /* webhook 2xx */
  linli_counter_t *delayed;      /* held by quiet hours or the rate limit */
  linli_counter_t *failed;       /* webhook attempts that failed */
  linli_counter_t *dlq;          /* given up after fail_after_s */
};

struct notifier {
  const linli_config_t *cfg;
  linli_redis_t *redis;
  linli_redis_script_t *script;   /* the batch HWM body (scripts.c) */
  linli_redis_script_t *rem_claim; /* reminders: claim due */
  linli_redis_script_t *rem_done;  /* reminders: confirm after commit */
  dom_tpl_set_t *tpl;
  int channels[NOTIFIER_MAX_CHANNELS]; /* Linli__Notification__Channel */
  int nchannels;
  char prefix[64];
  int nshards;
  int64_t ttl_s;
  int utc_offset_min;
  const char *pickup_hours;
  int64_t reminder_lead_ms;
  int webhook_on;
  int64_t queue_max;
  struct nt_channel_metrics m[4]; /* indexed by channel value */
  /* Reminders claimed by the clock in the open transaction, confirmed in
   * on_commit (enqueued for the webhook, removed from the index). */
  struct nt_pending {
    int shard;
    char order[72];
    char id[72];    /* notification id (per channel) */
    char user[72];
    char tpl_chan[40];
    char *body;     /* webhook JSON, malloc'd; NULL without webhook */
  } *pending;
  size_t npending, cappending;
};

/* Shard of an order or campaign id. */
int nt_shard(const struct notifier *nt, const char *id);
/* "<prefix>:<k>" (the hash tag content). */
void nt_tag(const struct notifier *nt, int shard, char *buf, size_t len);

/* The runner's batch handler (batch.c). */
int nt_handle_batch(void *app, linli_batch_t *batch, linli_emit_t *emit,
                    char *reason, size_t reasonlen);
/* The clock: payment reminders (reminder.c). */
int nt_tick(void *app, linli_emit_t *emit, int64_t now_ms);
void nt_on_commit(void *app);
void nt_on_abort(void *app);

/* Lua bodies (scripts.c). */
extern const char NT_LUA_BATCH[];
extern const char NT_LUA_REM_CLAIM[];
extern const char NT_LUA_REM_DONE[];
extern const char NT_LUA_CLAIM[];
extern const char NT_LUA_ACK[];
extern const char NT_LUA_ACK_MANY[];
extern const char NT_LUA_FAIL[];
extern const char NT_LUA_DROP[];
extern const char NT_LUA_DELAY[];

/* ------------------------------------------------------ notifications */

/* One notification to build: the cause, the recipient, the template and
 * its parameters. */
struct nt_note {
  const char *cause_event_id; /* input event id (or the RESERVED event's) */
  const char *trace_id;
  int64_t occurred_at_ms;
  const char *user;
  const char *locale;         /* resolved; NULL = default */
  const char *order_id;       /* "" = none */
  const char *campaign_id;    /* "" = none */
  enum dom_tpl_id tpl;
  struct dom_param params[DOM_TPL_MAX_PARAMS];
  size_t nparams;
};

/* The notification id: "n" + 32 hex of SHA-256(cause|template|channel|user). */
void nt_note_id(const char *cause, const char *tpl, const char *channel,
                const char *user, char *buf, size_t len);
/* Lower-case channel name ("app_push"). */
const char *nt_channel_name(int channel);

/* Build note for one channel: the packed NotificationEvent (*packed,
 * malloc'd) and, when body is not NULL, the webhook JSON (*body,
 * malloc'd). id receives the notification id (LINLI_ID_BUFSZ). */
int nt_note_build(const struct notifier *nt, const struct nt_note *n,
                  int channel, char *id, uint8_t **packed, size_t *packedlen,
                  char **body);

/* --------------------------------------------------------------- sender */

typedef struct nt_sender nt_sender_t;
/* Start the webhook sender thread (its own Redis connection, event loop and
 * DLQ producer). */
int nt_sender_start(const linli_config_t *cfg, struct notifier *nt,
                    nt_sender_t **out, char *err, size_t errlen);
/* Stop claiming, wait for requests in flight (up to the timeout), join. */
void nt_sender_stop(nt_sender_t *s);

#endif
