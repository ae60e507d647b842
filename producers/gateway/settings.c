/*
 * settings.c - the keys linli-gateway owns ([gateway]): defaults, bounds and
 * checks. libcommon holds only the domain-free keys; docs/config.md lists
 * these too, and linli-settings check-docs (a ctest) keeps it in sync.
 */
#include "settings.h"

#include "domain/settings.h"

static const linli_setting_t KEYS[] = {
    {"gateway.port", LINLI_SETTING_INT, "8080", 0, 65535, 0, NULL,
     "HTTP port of producers/gateway; 0 picks a free port"},
    {"gateway.addr", LINLI_SETTING_STR,
     "127.0.0.1", 0, 0, 0, linli_setting_check_nonempty,
     "address the gateway listens on"},
    {"gateway.keys_file", LINLI_SETTING_STR,
     "config/gateway-keys.conf", 0, 0, 0, linli_setting_check_nonempty,
     "API keys of the gateway: lines of app_id role sha256-hex"},
    {"gateway.max_body_bytes", LINLI_SETTING_INT,
     "1048576", 1024, 67108864, 0, NULL,
     "largest request body the gateway reads; larger answers 413"},
    {"gateway.rate_limit_per_s", LINLI_SETTING_INT, "200", 0, 1000000, 0, NULL,
     "requests per second allowed per API key (0 = no limit)"},
    {"gateway.campaign_user_cap", LINLI_SETTING_INT, "5", 0, 1000000, 0, NULL,
     "most orders plus joins one user may send per campaign (0 = no cap)"},
    {"gateway.idempotency_ttl_s", LINLI_SETTING_INT,
     "86400", 1, 604800, 0, NULL, "how long an Idempotency-Key is remembered"},
    {"gateway.publish_timeout_ms", LINLI_SETTING_INT,
     "10000", 1000, 300000, 0, NULL,
     "longest a publish waits for Kafka's acknowledgement (the producer's "
     "message.timeout.ms); then the answer is 504 outcome_unknown"},
    {"gateway.dev_keys", LINLI_SETTING_BOOL, "false", 0, 0, 0, NULL,
     "allow the published development API keys (local stack only); without "
     "it the gateway refuses to start with them"},
    {"gateway.max_connections", LINLI_SETTING_INT, "4096", 16, 1000000, 0, NULL,
     "most client connections open at once; more are closed at accept"},
    {"gateway.max_connections_per_ip", LINLI_SETTING_INT,
     "256", 1, 1000000, 0, NULL,
     "most client connections open at once from one address"},
    {"gateway.request_deadline_s", LINLI_SETTING_INT, "10", 1, 3600, 0, NULL,
     "time a client has to send a request's headers and body, however slowly "
     "it trickles them"},
    {"gateway.sse_backlog", LINLI_SETTING_INT, "10000", 1, 1000000, 0, NULL,
     "order-status events kept for SSE clients resuming with Last-Event-ID"},
    {"gateway.sse_max_buffer_bytes", LINLI_SETTING_INT,
     "1048576", 4096, 268435456, 0, NULL,
     "unsent bytes an SSE client may hold before it is cut off"},
    {"gateway.tls_cert", LINLI_SETTING_STR, "", 0, 0, 0, NULL,
     "PEM certificate chain file; set with tls_key to serve HTTPS"},
    {"gateway.tls_key", LINLI_SETTING_STR, "", 0, 0, 0, NULL,
     "PEM private key file of tls_cert"},
};

const linli_settings_t gateway_settings = {"linli-gateway", KEYS,
                                          sizeof(KEYS) / sizeof(KEYS[0])};

void gateway_settings_register(void) {
  linli_config_register(&domain_settings_orders);
  linli_config_register(&gateway_settings);
}
