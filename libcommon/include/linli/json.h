/*
 * json.h - protobuf <-> JSON, driven by protobuf-c descriptors, so that every
 * message of every schema converts without per-message code.
 *
 * Mapping (the one every linli tool that speaks JSON uses):
 *  - field names exactly as in the .proto (snake_case);
 *  - enums by name ("WECHAT_PAY"); numbers are accepted on input too;
 *    an unknown name or number is an error naming the field;
 *  - int64/uint64 written as JSON strings (exact beyond 2^53); accepted as
 *    strings or integer numbers on input; 32-bit ints as numbers;
 *  - bool as true/false, bytes as base64, repeated as arrays, nested
 *    messages as objects, a oneof as the one member that is set;
 *  - output omits fields at their proto3 default (0, "", false, empty);
 *  - input rejects unknown field names, wrong JSON types, out-of-range
 *    numbers, fractions for integers, invalid UTF-8, and nesting deeper than
 *    LINLI_JSON_MAX_DEPTH.
 * Errors are "path: reason", the path naming the field at fault, e.g.
 * "placed.lines[2].quantity: expected an integer".
 */
#ifndef LINLI_JSON_H
#define LINLI_JSON_H

#include <stddef.h>

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>

#define LINLI_JSON_MAX_DEPTH 32

/* JSON object -> new message of type desc. *out owned by the caller
 * (protobuf_c_message_free_unpacked(*out, NULL)). */
int linli_json_to_pb(const ProtobufCMessageDescriptor *desc, const json_t *in,
                     ProtobufCMessage **out, char *err, size_t errlen);

/* Text variant: parses JSON text first (parse errors name line and column). */
int linli_json_text_to_pb(const ProtobufCMessageDescriptor *desc,
                          const char *text, size_t len, ProtobufCMessage **out,
                          char *err, size_t errlen);

/* Message -> new JSON object (*out owned by the caller, json_decref). */
int linli_pb_to_json(const ProtobufCMessage *msg, json_t **out);

/* Message -> compact JSON text (malloc'd, owned by the caller). */
int linli_pb_to_json_text(const ProtobufCMessage *msg, char **out);

/* 1 if s[0..len) is strict UTF-8 (no overlong forms, no surrogates,
 * nothing above U+10FFFF): the rule every string of an event must meet
 * before it is passed on or converted to JSON. */
int linli_utf8_valid(const char *s, size_t len);

#endif
