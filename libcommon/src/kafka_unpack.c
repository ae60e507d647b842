/*
 * kafka_unpack.c - decoding a batch's record into its protobuf message,
 * with the same DLQ reasons in every consumer for a record that is empty
 * or not the message its topic carries.
 */
#include <stdio.h>
#include <string.h>

#include "linli/error.h"
#include "linli/kafka.h"

int linli_batch_unpack(linli_batch_t *b, size_t i,
                       const ProtobufCMessageDescriptor *d,
                       ProtobufCMessage **out) {
  const rd_kafka_message_t *m = linli_batch_msg(b, i);
  const char *name = d->short_name;
  const char *a = strchr("AEIOU", name[0]) ? "an" : "a";
  char why[256];
  *out = NULL;
  if (!m || !m->payload || m->len == 0) {
    snprintf(why, sizeof why, "empty record: expected %s %s", a, name);
    linli_batch_reject(b, i, LINLI_ERR_INVALID, why);
    return LINLI_ERR_INVALID;
  }
  *out = protobuf_c_message_unpack(d, NULL, m->len, m->payload);
  if (!*out) {
    snprintf(why, sizeof why, "undecodable record: not %s %s (%zu bytes)", a,
             name, m->len);
    linli_batch_reject(b, i, LINLI_ERR_INVALID, why);
    return LINLI_ERR_INVALID;
  }
  return LINLI_OK;
}
