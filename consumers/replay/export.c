/*
 * export.c - `linli-replay export`: decode a slice of the log into JSON
 * lines or CSV for analysts. Every record in the range is written: a record
 * that does not decode is written as an error row with its coordinates,
 * never skipped silently.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "linli/json.h"
#include "domain/schema.h"
#include "replay.h"

struct export_ctx {
  FILE *out;
  int csv;
  const char *key;      /* --key filter or NULL */
  const char *type;     /* --type filter or NULL */
  const char *as_topic; /* --as: decode with this topic's schema */
  struct csv_columns *cols;
  long long written, errors;
};

static void usage(void) {
  fprintf(stderr,
          "usage: linli-replay export --topic T [--topic T2 ...]\n"
          "         [--from OFFSET|TIME] [--to OFFSET|TIME] [--key K]\n"
          "         [--type MESSAGE] [--format jsonl|csv] [--out FILE]\n"
          "         [--as TOPIC] [--quiet]\n"
          "  TIME is UTC: 2026-11-24, 2026-11-24T08:00:00Z, or @<epoch ms>;\n"
          "  --from is inclusive, --to an offset is inclusive, a time is\n"
          "  exclusive. --as decodes a sandbox topic with a linli topic's\n"
          "  schema.\n");
}

static json_t *headers_json(const rd_kafka_message_t *m) {
  rd_kafka_headers_t *h = NULL;
  if (rd_kafka_message_headers(m, &h) != RD_KAFKA_RESP_ERR_NO_ERROR)
    return NULL;
  json_t *o = json_object();
  const char *name;
  const void *val;
  size_t len;
  for (size_t i = 0; rd_kafka_header_get_all(h, i, &name, &val, &len) ==
                     RD_KAFKA_RESP_ERR_NO_ERROR;
       i++)
    json_object_set_new(o, name, json_stringn(val ? val : "", val ? len : 0));
  return o;
}

static int export_record(void *arg, const rd_kafka_message_t *m) {
  struct export_ctx *x = arg;
  const char *topic = rd_kafka_topic_name(m->rkt);
  if (x->key && (m->key_len != strlen(x->key) ||
                 memcmp(m->key, x->key, m->key_len) != 0))
    return 0;
  const linli_topic_schema_t *ts =
      linli_schema_topic(x->as_topic ? x->as_topic : topic);
  ProtobufCMessage *env = NULL;
  const char *type = NULL;
  char errbuf[256] = "";
  if (!ts) {
    snprintf(errbuf, sizeof errbuf, "no schema for topic %s (use --as)", topic);
  } else if (ts->envelope) {
    env = protobuf_c_message_unpack(ts->envelope, NULL, m->len,
                                    (const uint8_t *)m->payload);
    if (!env)
      snprintf(errbuf, sizeof errbuf, "undecodable %s (%zu bytes)",
               ts->envelope->short_name, m->len);
    else if (linli_schema_event_type(env, &type) != 0)
      type = NULL;
  } else {
    type = "DeadLetter"; /* the DLQ keeps original bytes: shown as base64 */
  }
  if (x->type && (!type || strcmp(type, x->type) != 0)) {
    if (env)
      protobuf_c_message_free_unpacked(env, NULL);
    return 0;
  }
  rd_kafka_timestamp_type_t tt;
  int64_t ts_ms = rd_kafka_message_timestamp(m, &tt);
  if (errbuf[0])
    x->errors++;
  if (x->csv) {
    csv_write_row(x->out, x->cols, m, type, env, errbuf[0] ? errbuf : NULL);
  } else {
    json_t *row = json_object();
    json_object_set_new(row, "topic", json_string(topic));
    json_object_set_new(row, "partition", json_integer(m->partition));
    json_object_set_new(row, "offset", json_integer(m->offset));
    json_object_set_new(row, "timestamp", json_integer(ts_ms));
    if (m->key)
      json_object_set_new(row, "key", json_stringn(m->key, m->key_len));
    else
      json_object_set_new(row, "key", json_null());
    if (type)
      json_object_set_new(row, "type", json_string(type));
    json_t *ev = NULL;
    if (env && linli_pb_to_json(env, &ev) == 0) {
      json_object_set_new(row, "event", ev);
    } else if (ts && !ts->envelope) {
      json_t *h = headers_json(m);
      if (h)
        json_object_set_new(row, "headers", h);
      json_t *v = json_stringn(m->payload ? m->payload : "", m->len);
      if (!v) { /* not UTF-8: hex keeps every byte */
        char *hex = malloc(m->len * 2 + 1);
        for (size_t i = 0; hex && i < m->len; i++)
          snprintf(hex + 2 * i, 3, "%02x", ((unsigned char *)m->payload)[i]);
        if (hex)
          hex[m->len * 2] = '\0';
        json_object_set_new(row, "value_hex", json_string(hex ? hex : ""));
        free(hex);
      } else {
        json_object_set_new(row, "value", v);
      }
    } else {
      json_object_set_new(row, "error",
                          json_string(errbuf[0] ? errbuf : "not convertible"));
    }
    char *line = json_dumps(row, JSON_COMPACT | JSON_ENSURE_ASCII);
    if (line) {
      fputs(line, x->out);
      fputc('\n', x->out);
      free(line);
    }
    json_decref(row);
  }
  x->written++;
  if (env)
    protobuf_c_message_free_unpacked(env, NULL);
  return 0;
}

int replay_cmd_export(const linli_config_t *cfg, int argc, char **argv) {
  static const struct option opts[] = {
      {"topic", required_argument, NULL, 't'},
      {"from", required_argument, NULL, 'f'},
      {"to", required_argument, NULL, 'u'},
      {"key", required_argument, NULL, 'k'},
      {"type", required_argument, NULL, 'y'},
      {"format", required_argument, NULL, 'F'},
      {"out", required_argument, NULL, 'o'},
      {"as", required_argument, NULL, 'a'},
      {"quiet", no_argument, NULL, 'q'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  struct range range = {0};
  struct export_ctx x = {0};
  const char *out_path = NULL;
  int quiet = 0, c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (c) {
    case 't':
      if (range.ntopics == REPLAY_MAX_TOPICS) {
        fprintf(stderr, "export: at most %d topics\n", REPLAY_MAX_TOPICS);
        return 2;
      }
      range.topics[range.ntopics++] = optarg;
      break;
    case 'f':
      if (replay_parse_bound(optarg, &range.from) != 0) {
        fprintf(stderr, "export: --from %s: not an offset or a UTC time\n",
                optarg);
        return 2;
      }
      break;
    case 'u':
      if (replay_parse_bound(optarg, &range.to) != 0) {
        fprintf(stderr, "export: --to %s: not an offset or a UTC time\n",
                optarg);
        return 2;
      }
      break;
    case 'k': x.key = optarg; break;
    case 'y':
      if (!linli_schema_message(optarg)) {
        fprintf(stderr, "export: --type %s: no such message\n", optarg);
        return 2;
      }
      x.type = optarg;
      break;
    case 'F':
      if (strcmp(optarg, "csv") == 0) {
        x.csv = 1;
      } else if (strcmp(optarg, "jsonl") != 0) {
        fprintf(stderr, "export: --format %s: jsonl or csv\n", optarg);
        return 2;
      }
      break;
    case 'o': out_path = optarg; break;
    case 'a':
      if (!linli_schema_topic(optarg)) {
        fprintf(stderr, "export: --as %s: not a linli topic\n", optarg);
        return 2;
      }
      x.as_topic = optarg;
      break;
    case 'q': quiet = 1; break;
    case 'h': usage(); return 0;
    default: usage(); return 2;
    }
  }
  if (range.ntopics == 0 || optind != argc) {
    usage();
    return 2;
  }
  for (int i = 0; i < range.ntopics && !x.as_topic; i++)
    if (!linli_schema_topic(range.topics[i])) {
      fprintf(stderr, "export: %s is not a linli topic (use --as TOPIC to "
              "decode it with a linli topic's schema)\n", range.topics[i]);
      return 2;
    }
  x.out = stdout;
  if (out_path && !(x.out = fopen(out_path, "w"))) {
    perror(out_path);
    return 2;
  }
  int rc = 0;
  if (x.csv) {
    const char *schema_topics[REPLAY_MAX_TOPICS];
    for (int i = 0; i < range.ntopics; i++)
      schema_topics[i] = x.as_topic ? x.as_topic : range.topics[i];
    if (csv_columns_new(schema_topics, range.ntopics, &x.cols) != 0) {
      fprintf(stderr, "export: cannot build the CSV header\n");
      rc = 2;
      goto done;
    }
    csv_write_header(x.out, x.cols);
  }
  char err[512];
  if (replay_read(cfg, &range, export_record, &x, !quiet, err, sizeof err) !=
      0) {
    fprintf(stderr, "export: %s\n", err);
    rc = 1;
  }
  if (!quiet)
    fprintf(stderr, "linli-replay: %lld rows written, %lld undecodable\n",
            x.written, x.errors);
done:
  csv_columns_free(x.cols);
  if (x.out != stdout && fclose(x.out) != 0) {
    perror(out_path);
    rc = 1;
  } else {
    fflush(x.out);
  }
  return rc;
}
