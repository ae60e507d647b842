/*
 * main.c - linli-notifier's process: config, templates (a bad template
 * stops it here, naming file and line), Redis scripts, the runner over the
 * four input topics, and the webhook sender thread.
 *
 * Usage: linli-notifier [--config FILE] [--mode all|consume|send]
 *   all (default): consume and send; consume: only write notifications
 *   (and enqueue them); send: only deliver queued notifications to the
 *   webhook. Run as many consumers as there are partitions to share, and
 *   senders as the webhook needs.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "linli/args.h"
#include "linli/error.h"
#include "linli/log.h"
#include "linli/process.h"
#include "domain/schema.h"
#include "notifier.h"
#include "settings.h"

static volatile sig_atomic_t send_only_stop;
static void on_signal(int sig) {
  (void)sig;
  send_only_stop = 1;
}

static int parse_channels(struct notifier *nt, const char *list, char *err,
                          size_t errlen) {
  static const struct {
    const char *name;
    int value;
  } C[] = {{"sms", LINLI__NOTIFICATION__CHANNEL__SMS},
           {"wechat", LINLI__NOTIFICATION__CHANNEL__WECHAT},
           {"app_push", LINLI__NOTIFICATION__CHANNEL__APP_PUSH}};
  const char *p = list;
  while (*p) {
    const char *comma = strchr(p, ',');
    size_t n = comma ? (size_t)(comma - p) : strlen(p);
    int found = -1;
    for (int i = 0; i < 3; i++)
      if (strlen(C[i].name) == n && strncmp(C[i].name, p, n) == 0)
        found = C[i].value;
    for (int i = 0; found >= 0 && i < nt->nchannels; i++)
      if (nt->channels[i] == found)
        found = -2;
    if (found < 0) {
      snprintf(err, errlen,
               "notifier.channels: '%.*s' is %s (sms, wechat, app_push)",
               (int)(n > 32 ? 32 : n), p,
               found == -2 ? "repeated" : "not a channel");
      return LINLI_ERR_CONFIG;
    }
    nt->channels[nt->nchannels++] = found;
    p += n + (comma ? 1 : 0);
  }
  if (nt->nchannels == 0) {
    snprintf(err, errlen, "notifier.channels: no channel");
    return LINLI_ERR_CONFIG;
  }
  return LINLI_OK;
}

static void register_metrics(struct notifier *nt) {
  for (int c = 1; c <= 3; c++) {
    char labels[64];
    snprintf(labels, sizeof labels, "channel=\"%s\"", nt_channel_name(c));
    struct nt_channel_metrics *m = &nt->m[c];
    m->written = linli_metrics_counter("linli_notifier_written_total", labels,
                                       "notifications written to the topic");
    m->deduplicated = linli_metrics_counter(
        "linli_notifier_deduplicated_total", labels,
        "notifications of redelivered input, or queued before: not new");
    m->sent = linli_metrics_counter("linli_notifier_sent_total", labels,
                                    "webhook deliveries acknowledged (2xx)");
    m->delayed = linli_metrics_counter(
        "linli_notifier_delayed_total", labels,
        "webhook sends held by quiet hours or the per-user rate limit");
    m->failed = linli_metrics_counter("linli_notifier_failed_total", labels,
                                      "webhook attempts that failed");
    m->dlq = linli_metrics_counter(
        "linli_notifier_dlq_total", labels,
        "webhook notifications given up after notifier.fail_after_s");
  }
}

/* Everything from config that both modes need. */
static int setup(struct notifier *nt, linli_config_t *cfg, char *err,
                 size_t errlen) {
  nt->cfg = cfg;
  snprintf(nt->prefix, sizeof nt->prefix, "%s",
           linli_config_str(cfg, "notifier.redis_prefix"));
  if (strpbrk(nt->prefix, "{}")) {
    snprintf(err, errlen, "notifier.redis_prefix: must not hold '{' or '}'");
    return LINLI_ERR_CONFIG;
  }
  nt->nshards = (int)linli_config_int(cfg, "notifier.shards");
  nt->ttl_s = linli_config_int(cfg, "notifier.state_ttl_s");
  nt->utc_offset_min = (int)linli_config_int(cfg, "notifier.utc_offset_min");
  nt->pickup_hours = linli_config_str(cfg, "notifier.pickup_hours");
  nt->reminder_lead_ms = linli_config_int(cfg, "notifier.reminder_lead_s") * 1000;
  nt->queue_max = linli_config_int(cfg, "notifier.retry_queue_max");
  nt->webhook_on = linli_config_str(cfg, "notifier.webhook_url")[0] != '\0';
  if (nt->webhook_on && !linli_config_str(cfg, "notifier.webhook_secret")[0]) {
    snprintf(err, errlen, "notifier.webhook_secret: required when "
                          "notifier.webhook_url is set");
    return LINLI_ERR_CONFIG;
  }
  struct dom_quiet q;
  if (dom_quiet_parse(linli_config_str(cfg, "notifier.quiet_hours"),
                      nt->utc_offset_min, &q) != LINLI_OK) {
    snprintf(err, errlen, "notifier.quiet_hours: expected HH:MM-HH:MM");
    return LINLI_ERR_CONFIG;
  }
  int rc = parse_channels(nt, linli_config_str(cfg, "notifier.channels"), err,
                          errlen);
  if (rc != LINLI_OK)
    return rc;
  rc = dom_tpl_load(linli_config_str(cfg, "notifier.templates_dir"),
                    linli_config_str(cfg, "notifier.locales"), &nt->tpl, err,
                    errlen);
  if (rc != LINLI_OK)
    return rc;
  register_metrics(nt);
  return LINLI_OK;
}

int main(int argc, char **argv) {
  const char *config_path = NULL, *mode = "all";
  const linli_arg_t opts[] = {{"--config", &config_path, NULL},
                              {"--mode", &mode, NULL},
                              {NULL, NULL, NULL}};
  if (linli_args_parse(argc, argv, opts,
                       "linli-notifier [--config FILE] "
                       "[--mode all|consume|send]") != LINLI_OK)
    return 2;
  int consume = strcmp(mode, "send") != 0, send = strcmp(mode, "consume") != 0;
  if (strcmp(mode, "all") && strcmp(mode, "send") && strcmp(mode, "consume")) {
    fprintf(stderr, "linli-notifier: --mode must be all, consume or send\n");
    return 2;
  }
  linli_config_t *cfg = NULL;
  notifier_settings_register();
  if (linli_process_start("notifier", config_path, &cfg) != LINLI_OK)
    return 2;

  struct notifier nt;
  memset(&nt, 0, sizeof nt);
  char err[1024] = "";
  int rc = setup(&nt, cfg, err, sizeof err);
  if (rc != LINLI_OK) {
    LINLI_ERROR("start-up failed", "reason=\"%s\"", err);
    fprintf(stderr, "linli-notifier: %s\n", err);
    dom_tpl_free(nt.tpl);
    linli_process_exit(cfg);
    return 2;
  }
  nt_sender_t *sender = NULL;
  if (consume) {
    rc = linli_redis_start_batch(cfg, "notify", NT_LUA_BATCH, &nt.redis,
                                 &nt.script);
    if (rc != LINLI_OK)
      goto out;
    rc = linli_redis_script_register(nt.redis, "nt_rem_claim",
                                     NT_LUA_REM_CLAIM, &nt.rem_claim);
    if (rc == LINLI_OK)
      rc = linli_redis_script_register(nt.redis, "nt_rem_done",
                                       NT_LUA_REM_DONE, &nt.rem_done);
    if (rc != LINLI_OK) {
      LINLI_ERROR("redis start-up failed", "reason=\"reminder scripts\"");
      goto out;
    }
  }
  if (send && nt.webhook_on) {
    rc = nt_sender_start(cfg, &nt, &sender, err, sizeof err);
    if (rc != LINLI_OK) {
      LINLI_ERROR("webhook sender start-up failed", "reason=\"%s\"", err);
      goto out;
    }
  }
  if (consume) {
    const char *topics[] = {LINLI_TOPIC_RESERVATIONS, LINLI_TOPIC_SETTLEMENTS,
                            LINLI_TOPIC_ROUTES, LINLI_TOPIC_DELIVERY, NULL};
    linli_runner_spec_t spec = {
        .name = "notifier",
        .topics = topics,
        .app = &nt,
        .handle_batch = nt_handle_batch,
        .tick = nt_tick,
        .on_commit = nt_on_commit,
        .on_abort = nt_on_abort,
    };
    rc = linli_runner_main(cfg, &spec);
  } else {
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    while (!send_only_stop)
      pause();
  }
out:
  nt_sender_stop(sender);
  linli_redis_free(nt.redis);
  dom_tpl_free(nt.tpl);
  nt_on_abort(&nt);
  free(nt.pending);
  linli_process_exit(cfg);
  return rc == LINLI_OK ? 0 : 1;
}
