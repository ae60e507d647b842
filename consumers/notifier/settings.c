/*
 * settings.c - the keys linli-notifier owns ([notifier]): defaults, bounds and
 * checks. libcommon holds only the domain-free keys; docs/config.md lists
 * these too, and linli-settings check-docs (a ctest) keeps it in sync.
 */
#include "settings.h"

static const linli_setting_t KEYS[] = {
    {"notifier.templates_dir", LINLI_SETTING_STR,
     "config/templates", 0, 0, 0, linli_setting_check_nonempty,
     "directory of the notification templates: <dir>/<locale>/<template>.txt"},
    {"notifier.locales", LINLI_SETTING_STR,
     "zh-CN,en", 0, 0, 0, linli_setting_check_nonempty,
     "locales the notifier loads, comma-separated; the first is the default"},
    {"notifier.channels", LINLI_SETTING_STR,
     "app_push", 0, 0, 0, linli_setting_check_nonempty,
     "channels each state change is written for: sms, wechat, app_push "
     "(comma-separated)"},
    {"notifier.redis_prefix", LINLI_SETTING_STR,
     "n", 0, 0, 0, linli_setting_check_nonempty,
     "hash-tag prefix of the notifier's Redis keys (tests isolate runs with "
     "it)"},
    {"notifier.shards", LINLI_SETTING_INT, "16", 1, 4096, 0, NULL,
     "Redis shards of the notifier's state and retry queue"},
    {"notifier.state_ttl_s", LINLI_SETTING_INT,
     "1209600", 60, 31536000, 0, NULL,
     "seconds the notifier remembers an order or campaign, and a delivered id"},
    {"notifier.utc_offset_min", LINLI_SETTING_INT, "480", -720, 840, 0, NULL,
     "residents' time zone, minutes east of UTC (times in texts, quiet hours)"},
    {"notifier.pickup_hours", LINLI_SETTING_STR,
     "08:00-21:00", 0, 0, 0, linli_setting_check_nonempty,
     "opening hours shown with a pickup code"},
    {"notifier.reminder_lead_s", LINLI_SETTING_INT, "300", 0, 86400, 0, NULL,
     "payment reminder this long before the payment deadline; 0 = none"},
    {"notifier.webhook_url", LINLI_SETTING_STR, "", 0, 0, 0, NULL,
     "webhook sink (http://host:port/path); empty turns it off"},
    {"notifier.webhook_secret", LINLI_SETTING_STR, "", 0, 0, 0, NULL,
     "HMAC-SHA256 key of Linli-Signature; never echoed"},
    {"notifier.webhook_timeout_ms", LINLI_SETTING_INT,
     "5000", 100, 120000, 0, NULL, "timeout of one webhook request"},
    {"notifier.webhook_concurrency", LINLI_SETTING_INT, "8", 1, 256, 0, NULL,
     "webhook requests in flight at once"},
    {"notifier.retry_base_ms", LINLI_SETTING_INT, "500", 10, 600000, 0, NULL,
     "first retry delay of a failed webhook send (doubles, with jitter)"},
    {"notifier.retry_max_ms", LINLI_SETTING_INT, "60000", 10, 86400000, 0, NULL,
     "longest retry delay of a webhook send"},
    {"notifier.retry_queue_max", LINLI_SETTING_INT,
     "1000000", 1, 100000000, 0, NULL,
     "most notifications waiting per shard for the webhook"},
    {"notifier.fail_after_s", LINLI_SETTING_INT, "86400", 1, 2592000, 0, NULL,
     "a webhook notification failing this long goes to the DLQ"},
    {"notifier.quiet_hours", LINLI_SETTING_STR, "22:00-07:00", 0, 0, 0, NULL,
     "local HH:MM-HH:MM in which quiet templates wait; empty = none"},
    {"notifier.quiet_templates", LINLI_SETTING_STR,
     "payment_reminder,groupbuy_formed,groupbuy_tier_unlocked", 0, 0, 0, NULL,
     "templates held back during quiet hours (pickup_ready never)"},
    {"notifier.rate_per_user_min", LINLI_SETTING_INT, "30", 0, 100000, 0, NULL,
     "webhook sends per user per minute; more wait; 0 = no limit"},
};

const linli_settings_t notifier_settings = {"linli-notifier", KEYS,
                                          sizeof(KEYS) / sizeof(KEYS[0])};

void notifier_settings_register(void) {
  linli_config_register(&notifier_settings);
}
