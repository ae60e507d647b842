/*
 * fuzz_record.c - a record's value as Kafka hands it to a consumer. The
 * first byte picks the topic, the rest is the value: decoded as the topic's
 * envelope (what linli_batch_unpack does) and judged by dom_record_check
 * (what the reserver, the settler, the ledger and the audit do before they
 * act on it). A record it accepts on a topic it has a rule for, once
 * converted to JSON (linli-replay export), must convert back to the same
 * message (linli-produce, the gateway).
 */
#include <string.h>

#include "domain/records.h"
#include "fuzz_common.h"
#include "linli/json.h"

static void ignore(void *arg, const char *field, const char *msg) {
  int *n = arg;
  (*n)++;
  FUZZ_REQUIRE(field != NULL && msg != NULL && msg[0] != '\0',
               "a refusal names a field and a reason");
}

/* Whether libdomain has a rule for t's records: an empty envelope (no
 * meta, no event) is bad under any rule, and nothing is without one.
 * Asked once per topic. */
static int has_rule(const linli_topic_schema_t *t) {
  static signed char known[64]; /* by topic index: 0 not asked, 1 no, 2 yes */
  size_t n = 0;
  const linli_topic_schema_t *all = linli_schema_topics(&n);
  size_t i = (size_t)(t - all);
  FUZZ_REQUIRE(n <= sizeof known && i < n, "a topic of the registry");
  if (known[i] == 0) {
    ProtobufCMessage *empty = calloc(1, t->envelope->sizeof_message);
    FUZZ_REQUIRE(empty != NULL, "memory");
    protobuf_c_message_init(t->envelope, empty);
    known[i] = dom_record_check(t->name, empty, 200, NULL, NULL) > 0 ? 2 : 1;
    free(empty);
  }
  return known[i] == 2;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  const linli_topic_schema_t *t = fuzz_topic(data[0]);
  ProtobufCMessage *m =
      protobuf_c_message_unpack(t->envelope, NULL, size - 1, data + 1);
  if (m == NULL)
    return 0;
  int named = 0;
  int bad = dom_record_check(t->name, m, 200, ignore, &named);
  FUZZ_REQUIRE(bad == named, "the count is the problems reported");
  /* A record the pipeline acts on converts to JSON that reads back: what
   * the consumers accept, the JSON reader (the gateway, linli-produce)
   * accepts too. One refused, or on a topic without a rule (the consumers'
   * own outputs), may hold what JSON cannot carry back (an enum number no
   * schema names). */
  char *text = NULL;
  if (bad == 0 && has_rule(t) && linli_pb_to_json_text(m, &text) == 0) {
    ProtobufCMessage *back = NULL;
    char err[256] = "";
    int rc = linli_json_text_to_pb(t->envelope, text, strlen(text), &back,
                                   err, sizeof err);
    if (rc != 0)
      fprintf(stderr, "fuzz: %s: %s\n", text, err);
    FUZZ_REQUIRE(rc == 0, "JSON written from a message reads back");
    char *again = NULL;
    FUZZ_REQUIRE(linli_pb_to_json_text(back, &again) == 0,
                 "a message read from JSON converts again");
    FUZZ_REQUIRE(strcmp(text, again) == 0, "JSON round trip is stable");
    FUZZ_REQUIRE(dom_record_check(t->name, back, 200, NULL, NULL) == bad,
                 "the round trip keeps the judgement");
    free(again);
    protobuf_c_message_free_unpacked(back, NULL);
    free(text);
  }
  protobuf_c_message_free_unpacked(m, NULL);
  return 0;
}
