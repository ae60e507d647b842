/*
 * republish.c - `linli-replay republish`: copy a slice of the log (keys,
 * values, headers and timestamps as they are) into a sandbox topic for
 * what-if runs. A live linli topic is refused as the target unless --force.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "linli/error.h"
#include "linli/kafka.h"
#include "domain/schema.h"
#include "replay.h"

struct copy_ctx {
  linli_producer_t *p;
  const char *into;
  long long copied;
  int failed;
};

static int copy_record(void *arg, const rd_kafka_message_t *m) {
  struct copy_ctx *x = arg;
  rd_kafka_headers_t *h = NULL, *copy = NULL;
  if (rd_kafka_message_headers(m, &h) == RD_KAFKA_RESP_ERR_NO_ERROR)
    copy = rd_kafka_headers_copy(h);
  rd_kafka_timestamp_type_t tt;
  int64_t ts = rd_kafka_message_timestamp(m, &tt);
  /* Same partition number when the sandbox has as many partitions as the
   * source would be nicer, but the key decides, as for live producers. */
  rd_kafka_resp_err_t e = rd_kafka_producev(
      linli_producer_handle(x->p), RD_KAFKA_V_TOPIC(x->into),
      RD_KAFKA_V_KEY(m->key, m->key_len),
      RD_KAFKA_V_VALUE(m->payload, m->len),
      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_TIMESTAMP(ts),
      RD_KAFKA_V_HEADERS(copy), RD_KAFKA_V_END);
  while (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
    linli_producer_poll(x->p, 100);
    e = rd_kafka_producev(
        linli_producer_handle(x->p), RD_KAFKA_V_TOPIC(x->into),
        RD_KAFKA_V_KEY(m->key, m->key_len),
        RD_KAFKA_V_VALUE(m->payload, m->len),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_TIMESTAMP(ts),
        RD_KAFKA_V_HEADERS(copy), RD_KAFKA_V_END);
  }
  if (e) {
    if (copy)
      rd_kafka_headers_destroy(copy);
    fprintf(stderr, "republish: %s\n", rd_kafka_err2str(e));
    x->failed = 1;
    return 1;
  }
  x->copied++;
  linli_producer_poll(x->p, 0);
  return 0;
}

int replay_cmd_republish(const linli_config_t *cfg, int argc, char **argv) {
  static const struct option opts[] = {
      {"topic", required_argument, NULL, 't'},
      {"from", required_argument, NULL, 'f'},
      {"to", required_argument, NULL, 'u'},
      {"into", required_argument, NULL, 'i'},
      {"force", no_argument, NULL, 'F'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  struct range range = {0};
  const char *into = NULL;
  int force = 0, c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (c) {
    case 't':
      if (range.ntopics < REPLAY_MAX_TOPICS)
        range.topics[range.ntopics++] = optarg;
      break;
    case 'f':
    case 'u':
      if (replay_parse_bound(optarg, c == 'f' ? &range.from : &range.to)) {
        fprintf(stderr, "republish: %s: not an offset or a UTC time\n",
                optarg);
        return 2;
      }
      break;
    case 'i': into = optarg; break;
    case 'F': force = 1; break;
    default:
      fprintf(stderr, "usage: linli-replay republish --topic T [--from X] "
              "[--to Y] --into SANDBOX_TOPIC [--force]\n");
      return c == 'h' ? 0 : 2;
    }
  }
  if (range.ntopics != 1 || !into || optind != argc) {
    fprintf(stderr, "usage: linli-replay republish --topic T [--from X] "
            "[--to Y] --into SANDBOX_TOPIC [--force]\n");
    return 2;
  }
  if ((linli_schema_topic(into) || strncmp(into, "linli.", 6) == 0) &&
      !force) {
    fprintf(stderr, "republish: %s is a live topic; refusing without "
            "--force\n", into);
    return 2;
  }
  if (strcmp(into, range.topics[0]) == 0) {
    fprintf(stderr, "republish: the target is the source topic\n");
    return 2;
  }
  char err[512];
  struct copy_ctx x = {0};
  x.into = into;
  if (linli_producer_new(cfg, "linli-replay", &x.p, err, sizeof err) !=
      LINLI_OK) {
    fprintf(stderr, "republish: %s\n", err);
    return 2;
  }
  int rc = replay_read(cfg, &range, copy_record, &x, 1, err, sizeof err);
  if (rc != 0)
    fprintf(stderr, "republish: %s\n", err);
  if (linli_producer_flush(x.p, 60000) != LINLI_OK) {
    fprintf(stderr, "republish: not every record was acknowledged\n");
    rc = 1;
  }
  linli_producer_free(x.p);
  fprintf(stderr, "linli-replay: %lld records copied into %s\n", x.copied,
          into);
  return rc != 0 || x.failed ? 1 : 0;
}
