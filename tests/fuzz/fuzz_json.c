/*
 * fuzz_json.c - JSON text as a client sends it (the gateway's bodies,
 * linli-produce's input lines). The first byte picks the topic, the rest is
 * the text, read as the topic's envelope by linli_json_text_to_pb. Refused
 * text gets a reason; accepted text packs, unpacks and converts back to
 * JSON that reads as the same message.
 */
#include <string.h>

#include "domain/records.h"
#include "fuzz_common.h"
#include "linli/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  const linli_topic_schema_t *t = fuzz_topic(data[0]);
  ProtobufCMessage *m = NULL;
  char err[512] = "";
  if (linli_json_text_to_pb(t->envelope, (const char *)data + 1, size - 1, &m,
                            err, sizeof err) != 0) {
    FUZZ_REQUIRE(err[0] != '\0', "refused JSON gets a reason");
    return 0;
  }
  (void)dom_record_check(t->name, m, 200, NULL, NULL);
  size_t len = protobuf_c_message_get_packed_size(m);
  uint8_t *buf = malloc(len ? len : 1);
  FUZZ_REQUIRE(buf != NULL, "memory");
  protobuf_c_message_pack(m, buf);
  ProtobufCMessage *u = protobuf_c_message_unpack(t->envelope, NULL, len, buf);
  FUZZ_REQUIRE(u != NULL, "a message read from JSON packs and unpacks");
  char *a = NULL, *b = NULL;
  FUZZ_REQUIRE(linli_pb_to_json_text(m, &a) == 0,
               "a message read from JSON converts back");
  FUZZ_REQUIRE(linli_pb_to_json_text(u, &b) == 0,
               "its packed form converts back");
  FUZZ_REQUIRE(strcmp(a, b) == 0, "packing keeps the message");
  ProtobufCMessage *again = NULL;
  FUZZ_REQUIRE(linli_json_text_to_pb(t->envelope, a, strlen(a), &again, err,
                                     sizeof err) == 0,
               "JSON written from a message reads back");
  protobuf_c_message_free_unpacked(again, NULL);
  free(a);
  free(b);
  protobuf_c_message_free_unpacked(u, NULL);
  free(buf);
  protobuf_c_message_free_unpacked(m, NULL);
  return 0;
}
