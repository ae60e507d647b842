/*
 * main.c - linli-produce: publish events written as JSON, one per line, so
 * that operators, scripts and tests can inject events by hand.
 *
 * Each line is checked and converted on its own (see line.c); a bad line is
 * reported as "<input>:<line>: <path>: <reason>" and nothing is sent for it,
 * and the next line is read. A line that passed is sent synchronously: its
 * "<line> <event_id> <topic> <partition> <offset>" is printed only after
 * Kafka acknowledged the write. A Kafka failure stops the run, because the
 * lines after it (a payment after its order) must not overtake it.
 * Exit status: 0 all lines sent, 1 some line failed, 2 usage or config.
 * docs/tools.md is the user's documentation.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "linli/clock.h"
#include "linli/config.h"
#include "linli/error.h"
#include "linli/json.h"
#include "linli/kafka.h"
#include "linli/process.h"
#include "domain/schema.h"
#include "produce.h"

#define DEFAULT_TIMEOUT_MS 30000

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig) {
  (void)sig;
  stop_requested = 1;
}

static void usage(FILE *out) {
  fprintf(out,
          "usage: linli-produce [options] < events.jsonl\n"
          "\n"
          "Publishes one event per input line and prints, for each line sent,\n"
          "  <line> <event_id> <topic> <partition> <offset>\n"
          "once Kafka acknowledged it. Errors go to stderr as\n"
          "  <input>:<line>: <field>: <reason>\n"
          "and nothing is sent for that line. Blank lines and lines starting\n"
          "with '#' are skipped.\n"
          "\n"
          "A line is {\"topic\": T, \"key\": K, \"event\": {...}} where event is\n"
          "the topic's envelope ({\"meta\": {...}, \"order_placed\": {...}});\n"
          "key is optional (default: the event's key field, e.g. order_id).\n"
          "\n"
          "options:\n"
          "  --topic T        every line is an event of topic T: its envelope,\n"
          "                   or with --type the member message alone\n"
          "  --type NAME      every line is a NAME message (e.g. OrderPlaced);\n"
          "                   the topic follows from NAME unless --topic\n"
          "  --file F         read F instead of stdin\n"
          "  --dry-run        check and print what would be sent; send nothing\n"
          "                   (prints <line> <event_id> <topic> <key> <json>)\n"
          "  --quiet          print errors only\n"
          "  --timeout-ms N   wait up to N ms for each acknowledgement "
          "(default %d)\n"
          "  --config F       configuration file (default $LINLI_CONFIG or\n"
          "                   config/linli.conf)\n"
          "  --help           this text\n"
          "\n"
          "Exit status: 0 every line sent, 1 some line failed, 2 usage or "
          "configuration error.\n",
          DEFAULT_TIMEOUT_MS);
}

typedef struct opts {
  const char *topic;
  const char *type;
  const char *file;
  const char *config;
  int dry_run;
  int quiet;
  int timeout_ms;
} opts_t;

/* 0 ok, 1 --help, 2 usage error (reported). */
static int parse_args(int argc, char **argv, opts_t *o) {
  enum { O_TOPIC = 1, O_TYPE, O_FILE, O_CONFIG, O_DRY, O_QUIET, O_TIMEOUT,
         O_HELP };
  static const struct option longopts[] = {
      {"topic", required_argument, NULL, O_TOPIC},
      {"type", required_argument, NULL, O_TYPE},
      {"file", required_argument, NULL, O_FILE},
      {"config", required_argument, NULL, O_CONFIG},
      {"dry-run", no_argument, NULL, O_DRY},
      {"quiet", no_argument, NULL, O_QUIET},
      {"timeout-ms", required_argument, NULL, O_TIMEOUT},
      {"help", no_argument, NULL, O_HELP},
      {NULL, 0, NULL, 0},
  };
  memset(o, 0, sizeof *o);
  o->timeout_ms = DEFAULT_TIMEOUT_MS;
  opterr = 0;
  int c;
  while ((c = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
    switch (c) {
    case O_TOPIC: o->topic = optarg; break;
    case O_TYPE: o->type = optarg; break;
    case O_FILE: o->file = optarg; break;
    case O_CONFIG: o->config = optarg; break;
    case O_DRY: o->dry_run = 1; break;
    case O_QUIET: o->quiet = 1; break;
    case O_TIMEOUT: {
      char *end = NULL;
      errno = 0;
      long v = strtol(optarg, &end, 10);
      if (errno != 0 || end == optarg || *end != '\0' || v < 1 ||
          v > 3600000) {
        fprintf(stderr, "linli-produce: --timeout-ms: expected 1..3600000\n");
        return 2;
      }
      o->timeout_ms = (int)v;
      break;
    }
    case O_HELP: return 1;
    case ':':
      fprintf(stderr, "linli-produce: %s needs a value\n", argv[optind - 1]);
      return 2;
    default:
      fprintf(stderr,
              "linli-produce: unknown option %s (try linli-produce --help)\n",
              argv[optind - 1]);
      return 2;
    }
  }
  if (optind < argc) {
    fprintf(stderr,
            "linli-produce: unexpected argument %s (input is stdin or --file)\n",
            argv[optind]);
    return 2;
  }
  return 0;
}

/* The names of the events of topic t, for an error message. */
static void event_names(const linli_topic_schema_t *t, char *buf, size_t len) {
  size_t n = 0;
  buf[0] = '\0';
  const ProtobufCMessageDescriptor *d = t->envelope;
  for (unsigned i = 0; i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = &d->fields[i];
    if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) == 0 ||
        f->type != PROTOBUF_C_TYPE_MESSAGE)
      continue;
    int w = snprintf(buf + n, len - n, "%s%s", n ? ", " : "",
                     ((const ProtobufCMessageDescriptor *)f->descriptor)
                         ->short_name);
    if (w < 0 || (size_t)w >= len - n)
      return;
    n += (size_t)w;
  }
}

static int lookup_topic(const char *name, const linli_topic_schema_t **out) {
  *out = linli_schema_topic(name);
  if (*out == NULL) {
    fprintf(stderr, "linli-produce: --topic %s: unknown topic\n", name);
    return 2;
  }
  if ((*out)->envelope == NULL) {
    fprintf(stderr,
            "linli-produce: --topic %s: holds raw bytes, not events\n", name);
    return 2;
  }
  return 0;
}

/* --topic/--type -> what every line holds; 0 or 2 (reported). */
static int resolve_mode(const opts_t *o, produce_mode_t *mode) {
  memset(mode, 0, sizeof *mode);
  if (o->topic != NULL && lookup_topic(o->topic, &mode->topic) != 0)
    return 2;
  if (o->type == NULL)
    return 0;
  const ProtobufCMessageDescriptor *type = linli_schema_message(o->type);
  if (type == NULL) {
    fprintf(stderr, "linli-produce: --type %s: unknown message type\n",
            o->type);
    return 2;
  }
  if (mode->topic != NULL) {
    mode->member = produce_member_field(mode->topic, type);
    if (mode->member == NULL) {
      char names[256];
      event_names(mode->topic, names, sizeof names);
      fprintf(stderr,
              "linli-produce: --type %s: not an event of %s (events: %s)\n",
              o->type, mode->topic->name, names);
      return 2;
    }
    return 0;
  }
  /* No --topic: the one topic whose envelope carries this type. */
  size_t n = 0, found = 0;
  const linli_topic_schema_t *all = linli_schema_topics(&n);
  for (size_t i = 0; i < n; i++) {
    const ProtobufCFieldDescriptor *f = produce_member_field(&all[i], type);
    if (f == NULL)
      continue;
    if (found++ == 0) {
      mode->topic = &all[i];
      mode->member = f;
    }
  }
  if (found == 1)
    return 0;
  fprintf(stderr, "linli-produce: --type %s: %s; give --topic\n", o->type,
          found == 0 ? "not an event of any topic"
                     : "an event of several topics");
  return 2;
}

/* Pack and send one event; prints its line on success. 0 or 1 (reported). */
static int send_event(linli_producer_t *p, const opts_t *o, const char *input,
                      long lineno, const produce_event_t *ev) {
  char err[1024];
  size_t len = protobuf_c_message_get_packed_size(ev->envelope);
  uint8_t *buf = malloc(len ? len : 1);
  if (buf == NULL) {
    fprintf(stderr, "%s:%ld: (kafka): out of memory\n", input, lineno);
    return 1;
  }
  protobuf_c_message_pack(ev->envelope, buf);
  int32_t partition = -1;
  int64_t offset = -1;
  int rc = linli_producer_send_sync(p, ev->topic->name, RD_KAFKA_PARTITION_UA,
                                    ev->key, strlen(ev->key), buf, len, NULL,
                                    o->timeout_ms, &partition, &offset, err,
                                    sizeof err);
  free(buf);
  if (rc != LINLI_OK) {
    fprintf(stderr, "%s:%ld: (kafka): %s%s\n", input, lineno, err,
            rc == LINLI_ERR_TRANSIENT && strstr(err, "acknowledgement")
                ? " (the event may still be written)"
                : "");
    return 1;
  }
  if (!o->quiet)
    printf("%ld %s %s %" PRId32 " %" PRId64 "\n", lineno, ev->event_id,
           ev->topic->name, partition, offset);
  return 0;
}

/* --dry-run: what would be sent. 0 or 1 (reported). */
static int print_event(const opts_t *o, const char *input, long lineno,
                       const produce_event_t *ev) {
  if (o->quiet)
    return 0;
  char *json = NULL;
  if (linli_pb_to_json_text(ev->envelope, &json) != LINLI_OK) {
    fprintf(stderr, "%s:%ld: (json): cannot write the event\n", input, lineno);
    return 1;
  }
  printf("%ld %s %s %s %s\n", lineno, ev->event_id, ev->topic->name, ev->key,
         json);
  free(json);
  return 0;
}

static int is_skipped(const char *line, size_t len) {
  size_t i = 0;
  while (i < len && (line[i] == ' ' || line[i] == '\t'))
    i++;
  return i == len || line[i] == '#';
}

/* Read, check and send every line. Returns the exit status. */
static int run(const opts_t *o, const produce_mode_t *mode, FILE *in,
               const char *input, linli_producer_t *p) {
  char *line = NULL;
  size_t cap = 0;
  long lineno = 0;
  int failed = 0, stopped = 0;
  char err[1024];
  for (;;) {
    if (stop_requested)
      break;
    errno = 0;
    ssize_t n = getline(&line, &cap, in);
    if (n < 0) {
      if (ferror(in) && errno != EINTR) {
        fprintf(stderr, "%s:%ld: read error: %s\n", input, lineno + 1,
                strerror(errno));
        failed = 1;
      }
      break;
    }
    lineno++;
    size_t len = (size_t)n;
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
      len--;
    if (is_skipped(line, len))
      continue;
    if (len > PRODUCE_MAX_LINE) {
      fprintf(stderr, "%s:%ld: (line): longer than %d bytes\n", input, lineno,
              PRODUCE_MAX_LINE);
      failed = 1;
      continue;
    }
    produce_event_t ev;
    int rc = produce_parse_line(mode, line, len, linli_clock_now_ms(), &ev,
                                err, sizeof err);
    if (rc != LINLI_OK) {
      fprintf(stderr, "%s:%ld: %s\n", input, lineno, err);
      failed = 1;
      if (rc == LINLI_ERR_NOMEM) {
        stopped = 1;
        break;
      }
      continue;
    }
    if (o->dry_run) {
      failed |= print_event(o, input, lineno, &ev);
    } else if (send_event(p, o, input, lineno, &ev) != 0) {
      failed = 1;
      stopped = 1;
    }
    produce_event_clear(&ev);
    if (stopped)
      break;
  }
  if (stopped)
    fprintf(stderr, "%s:%ld: stopped: the lines after this one were not sent\n",
            input, lineno);
  else if (stop_requested) {
    fprintf(stderr, "%s:%ld: interrupted: the lines after this one were not "
                    "read\n",
            input, lineno);
    failed = 1;
  }
  free(line);
  if (fflush(stdout) != 0 || ferror(stdout)) {
    fprintf(stderr, "linli-produce: writing stdout: %s\n", strerror(errno));
    failed = 1;
  }
  return failed ? 1 : 0;
}

int main(int argc, char **argv) {
  opts_t o;
  int rc = parse_args(argc, argv, &o);
  if (rc == 1) {
    usage(stdout);
    return 0;
  }
  if (rc != 0)
    return 2;
  produce_mode_t mode;
  if (resolve_mode(&o, &mode) != 0)
    return 2;

  FILE *in = stdin;
  const char *input = "stdin";
  if (o.file != NULL) {
    in = fopen(o.file, "r");
    if (in == NULL) {
      fprintf(stderr, "linli-produce: %s: %s\n", o.file, strerror(errno));
      return 2;
    }
    input = o.file;
  }

  /* A command-line tool opens no metrics listener unless asked to. */
  setenv("LINLI_METRICS_PORT", "-1", 0);
  linli_config_t *cfg = NULL;
  linli_producer_t *p = NULL;
  int status = 2;
  if (linli_process_start("produce", o.config, &cfg) != LINLI_OK)
    goto done;
  if (!o.dry_run) {
    char err[1024];
    /* Every send waits for its acknowledgement: lingering only adds
     * latency (unless the configuration asks for it). */
    if (linli_config_kafka_get(cfg, "linger.ms") == NULL &&
        linli_config_set(cfg, "kafka.linger.ms", "0", err, sizeof err) !=
            LINLI_OK) {
      fprintf(stderr, "linli-produce: %s\n", err);
      goto done;
    }
    if (linli_producer_new(cfg, PRODUCE_NAME, &p, err, sizeof err) !=
        LINLI_OK) {
      fprintf(stderr, "linli-produce: kafka: %s\n", err);
      goto done;
    }
  }

  /* SIGINT/SIGTERM stop after the line at hand; no SA_RESTART, so that a
   * read waiting on a terminal or pipe returns. */
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);

  setvbuf(stdout, NULL, _IOLBF, 0);
  status = run(&o, &mode, in, input, p);

done:
  linli_producer_free(p);
  if (cfg != NULL)
    linli_process_exit(cfg);
  if (in != stdin)
    fclose(in);
  return status;
}
