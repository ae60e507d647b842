/*
 * test_json.c - protobuf <-> JSON (linli/json.h): round trips that keep the
 * packed bytes for every field shape (tests/proto/json_test*.proto) and for
 * every message of every topic of the real schema (filled by a generic,
 * descriptor-driven filler), and every rejection the mapping promises, with
 * the error naming the field at fault.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "linli/error.h"
#include "linli/json.h"
#include "domain/schema.h"
#include "linli_test.h"

#include "json_test.pb-c.h"
#include "json_test2.pb-c.h"

/* ------------------------------------------------------------ helpers */

static uint8_t *pack(const ProtobufCMessage *m, size_t *len) {
  *len = protobuf_c_message_get_packed_size(m);
  uint8_t *buf = malloc(*len + 1); /* +1: never malloc(0) */
  CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
  CU_ASSERT_EQUAL(protobuf_c_message_pack(m, buf), *len);
  return buf;
}

/* pb -> JSON -> pb and pb -> text -> pb both give the same packed bytes,
 * and the JSON written the second time equals the first. */
static void assert_round_trip(const ProtobufCMessage *m) {
  char err[256] = "";
  size_t len0, len1, len2;
  uint8_t *b0 = pack(m, &len0);

  json_t *j = NULL;
  CU_ASSERT_EQUAL_FATAL(linli_pb_to_json(m, &j), LINLI_OK);
  ProtobufCMessage *back = NULL;
  int rc = linli_json_to_pb(m->descriptor, j, &back, err, sizeof(err));
  if (rc != LINLI_OK) {
    char *t = json_dumps(j, JSON_COMPACT);
    fprintf(stderr, "\n%s: %s\n%s\n", m->descriptor->name, err, t);
    free(t);
  }
  CU_ASSERT_EQUAL_FATAL(rc, LINLI_OK);
  uint8_t *b1 = pack(back, &len1);
  CU_ASSERT_EQUAL(len0, len1);
  CU_ASSERT(len0 == len1 && memcmp(b0, b1, len0) == 0);

  char *t0 = NULL, *t1 = NULL;
  CU_ASSERT_EQUAL_FATAL(linli_pb_to_json_text(m, &t0), LINLI_OK);
  CU_ASSERT_EQUAL_FATAL(linli_pb_to_json_text(back, &t1), LINLI_OK);
  CU_ASSERT_STRING_EQUAL(t0, t1);
  ProtobufCMessage *back2 = NULL;
  rc = linli_json_text_to_pb(m->descriptor, t0, strlen(t0), &back2, err,
                             sizeof(err));
  if (rc != LINLI_OK)
    fprintf(stderr, "\n%s: %s\n%s\n", m->descriptor->name, err, t0);
  CU_ASSERT_EQUAL_FATAL(rc, LINLI_OK);
  uint8_t *b2 = pack(back2, &len2);
  CU_ASSERT(len0 == len2 && memcmp(b0, b2, len0) == 0);

  free(b0);
  free(b1);
  free(b2);
  free(t0);
  free(t1);
  json_decref(j);
  protobuf_c_message_free_unpacked(back, NULL);
  protobuf_c_message_free_unpacked(back2, NULL);
}

/* Parses text into desc; asserts success. */
static ProtobufCMessage *parse_ok(const ProtobufCMessageDescriptor *desc,
                                  const char *text) {
  char err[256] = "";
  ProtobufCMessage *m = NULL;
  int rc = linli_json_text_to_pb(desc, text, strlen(text), &m, err,
                                 sizeof(err));
  if (rc != LINLI_OK)
    fprintf(stderr, "\nunexpected error for %s: %s\n", text, err);
  CU_ASSERT_EQUAL(rc, LINLI_OK);
  CU_ASSERT_STRING_EQUAL(err, "");
  return m;
}

/* Parses text into desc; asserts LINLI_ERR_INVALID with exactly want (or,
 * when want ends in '*', an error starting with the rest). */
static void parse_fails(const ProtobufCMessageDescriptor *desc,
                        const char *text, const char *want) {
  char err[256] = "";
  ProtobufCMessage *m = (ProtobufCMessage *)1;
  int rc = linli_json_text_to_pb(desc, text, strlen(text), &m, err,
                                 sizeof(err));
  CU_ASSERT_EQUAL(rc, LINLI_ERR_INVALID);
  CU_ASSERT_PTR_NULL(m);
  size_t wl = strlen(want);
  int ok = (wl > 0 && want[wl - 1] == '*') ? strncmp(err, want, wl - 1) == 0
                                           : strcmp(err, want) == 0;
  if (!ok)
    fprintf(stderr, "\nfor %s\n  want: %s\n  got:  %s\n", text, want, err);
  CU_ASSERT(ok);
  if (rc == LINLI_OK)
    protobuf_c_message_free_unpacked(m, NULL);
}

/* Converts a json_t into desc; asserts failure with exactly want. */
static void convert_fails(const ProtobufCMessageDescriptor *desc, json_t *in,
                          const char *want) {
  char err[256] = "";
  ProtobufCMessage *m = NULL;
  CU_ASSERT_EQUAL(linli_json_to_pb(desc, in, &m, err, sizeof(err)),
                  LINLI_ERR_INVALID);
  CU_ASSERT_PTR_NULL(m);
  if (strcmp(err, want) != 0)
    fprintf(stderr, "\n  want: %s\n  got:  %s\n", want, err);
  CU_ASSERT_STRING_EQUAL(err, want);
  json_decref(in);
}

#define ALL (&linlitest__all_types__descriptor)
#define ENV (&linlitest__test_envelope__descriptor)
#define NODE (&linlitest__node__descriptor)
#define LEGACY (&linlitest2__legacy__descriptor)

/* ------------------------------------------------------ generic filler */

/*
 * Fills any message from its descriptor with deterministic, non-default
 * values (extremes included), malloc'd the way free_unpacked expects.
 * variant picks the member of each oneof; forced, if set, is the member to
 * pick at the top level. Recursion stops at FILL_DEPTH (recursive types).
 */
#define FILL_DEPTH 4

typedef struct filler {
  unsigned n; /* advances with every value, so values differ */
} filler_t;

static ProtobufCMessage *fill_message(const ProtobufCMessageDescriptor *d,
                                      filler_t *fl, int depth,
                                      unsigned variant,
                                      const ProtobufCFieldDescriptor *forced);

static void fill_value(const ProtobufCFieldDescriptor *f, void *slot,
                       filler_t *fl, int depth, unsigned variant) {
  static const int32_t i32[] = {INT32_MIN, INT32_MAX, -7, 123456, 1};
  static const uint32_t u32[] = {UINT32_MAX, 1, 4000000000u};
  static const int64_t i64[] = {INT64_MIN, INT64_MAX, -1,
                                9007199254740993LL, 1700000000000LL};
  static const uint64_t u64[] = {UINT64_MAX, 1, 9007199254740993ULL,
                                 1ULL << 63};
  static const float fl32[] = {1.5f, -0.1f, FLT_MAX, 1e-30f, -FLT_MIN};
  static const double fl64[] = {0.1, -1e300, 9007199254740993.0, 5e-324,
                                DBL_MAX};
  static const char *strs[] = {"s", "邻里 鲜肉包", "quote\" back\\ nl\n tab\t",
                               "emoji 😀", "\x01 ctrl"};
  unsigned n = fl->n++;
  switch (f->type) {
  case PROTOBUF_C_TYPE_INT32:
  case PROTOBUF_C_TYPE_SINT32:
  case PROTOBUF_C_TYPE_SFIXED32:
    *(int32_t *)slot = i32[n % 5];
    break;
  case PROTOBUF_C_TYPE_UINT32:
  case PROTOBUF_C_TYPE_FIXED32:
    *(uint32_t *)slot = u32[n % 3];
    break;
  case PROTOBUF_C_TYPE_INT64:
  case PROTOBUF_C_TYPE_SINT64:
  case PROTOBUF_C_TYPE_SFIXED64:
    *(int64_t *)slot = i64[n % 5];
    break;
  case PROTOBUF_C_TYPE_UINT64:
  case PROTOBUF_C_TYPE_FIXED64:
    *(uint64_t *)slot = u64[n % 4];
    break;
  case PROTOBUF_C_TYPE_FLOAT:
    *(float *)slot = fl32[n % 5];
    break;
  case PROTOBUF_C_TYPE_DOUBLE:
    *(double *)slot = fl64[n % 5];
    break;
  case PROTOBUF_C_TYPE_BOOL:
    *(protobuf_c_boolean *)slot = 1;
    break;
  case PROTOBUF_C_TYPE_ENUM: {
    const ProtobufCEnumDescriptor *ed = f->descriptor;
    /* A non-zero value when there is one: zero would not be written. */
    const ProtobufCEnumValue *v = &ed->values[n % ed->n_values];
    if (v->value == 0 && ed->n_values > 1)
      v = &ed->values[(n + 1) % ed->n_values];
    *(int *)slot = v->value;
    break;
  }
  case PROTOBUF_C_TYPE_STRING: {
    char buf[96];
    snprintf(buf, sizeof(buf), "%s %u", strs[n % 5], n);
    *(char **)slot = strdup(buf);
    CU_ASSERT_PTR_NOT_NULL_FATAL(*(char **)slot);
    break;
  }
  case PROTOBUF_C_TYPE_BYTES: {
    ProtobufCBinaryData *bd = slot;
    bd->len = n % 5 + 1;
    bd->data = malloc(bd->len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(bd->data);
    for (size_t i = 0; i < bd->len; i++)
      bd->data[i] = (uint8_t)(i == 0 ? 0 : 255 - i * 7 - n);
    break;
  }
  case PROTOBUF_C_TYPE_MESSAGE:
    *(ProtobufCMessage **)slot =
        fill_message(f->descriptor, fl, depth + 1, variant, NULL);
    break;
  }
}

static size_t elt_size(ProtobufCType t) {
  switch (t) {
  case PROTOBUF_C_TYPE_INT64:
  case PROTOBUF_C_TYPE_SINT64:
  case PROTOBUF_C_TYPE_SFIXED64:
  case PROTOBUF_C_TYPE_UINT64:
  case PROTOBUF_C_TYPE_FIXED64:
    return 8;
  case PROTOBUF_C_TYPE_DOUBLE:
    return sizeof(double);
  case PROTOBUF_C_TYPE_STRING:
  case PROTOBUF_C_TYPE_MESSAGE:
    return sizeof(void *);
  case PROTOBUF_C_TYPE_BYTES:
    return sizeof(ProtobufCBinaryData);
  default:
    return 4;
  }
}

static ProtobufCMessage *fill_message(const ProtobufCMessageDescriptor *d,
                                      filler_t *fl, int depth,
                                      unsigned variant,
                                      const ProtobufCFieldDescriptor *forced) {
  ProtobufCMessage *m = calloc(1, d->sizeof_message);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  protobuf_c_message_init(d, m);
  for (unsigned i = 0; i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = &d->fields[i];
    void *slot = (char *)m + f->offset;
    void *q = (char *)m + f->quantifier_offset;
    int is_msg = f->type == PROTOBUF_C_TYPE_MESSAGE;
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
      /* This member's place among the oneof's members. */
      unsigned idx = 0, size = 0;
      int group_forced = 0;
      for (unsigned k = 0; k < d->n_fields; k++) {
        const ProtobufCFieldDescriptor *o = &d->fields[k];
        if (!(o->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) ||
            o->quantifier_offset != f->quantifier_offset)
          continue;
        if (k < i)
          idx++;
        size++;
        if (o == forced)
          group_forced = 1;
      }
      int chosen = group_forced ? f == forced : idx == variant % size;
      if (!chosen)
        continue;
      if (is_msg && depth + 1 > FILL_DEPTH) {
        /* Too deep to fill, but the member must still be set. */
        const ProtobufCMessageDescriptor *sd = f->descriptor;
        ProtobufCMessage *e = calloc(1, sd->sizeof_message);
        CU_ASSERT_PTR_NOT_NULL_FATAL(e);
        protobuf_c_message_init(sd, e);
        *(ProtobufCMessage **)slot = e;
      } else {
        fill_value(f, slot, fl, depth, variant);
      }
      *(uint32_t *)q = f->id;
      continue;
    }
    if (is_msg && depth + 1 > FILL_DEPTH)
      continue;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
      size_t n = 2 + fl->n % 2;
      size_t sz = elt_size(f->type);
      char *arr = calloc(n, sz);
      CU_ASSERT_PTR_NOT_NULL_FATAL(arr);
      for (size_t k = 0; k < n; k++)
        fill_value(f, arr + k * sz, fl, depth, variant + (unsigned)k);
      *(void **)slot = arr;
      *(size_t *)q = n;
      continue;
    }
    fill_value(f, slot, fl, depth, variant);
    if (f->label == PROTOBUF_C_LABEL_OPTIONAL &&
        f->type != PROTOBUF_C_TYPE_STRING && !is_msg)
      *(protobuf_c_boolean *)q = 1;
  }
  return m;
}

/* Every oneof member of d (for the forced top-level choice). */
static size_t oneof_members(const ProtobufCMessageDescriptor *d,
                            const ProtobufCFieldDescriptor **out, size_t max) {
  size_t n = 0;
  for (unsigned i = 0; i < d->n_fields && n < max; i++)
    if (d->fields[i].flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
      out[n++] = &d->fields[i];
  return n;
}

/* ------------------------------------------------------- round trips */

static void test_all_types_round_trip(void) {
  const ProtobufCFieldDescriptor *members[32];
  size_t nm = oneof_members(ALL, members, 32);
  CU_ASSERT_EQUAL(nm, 9);
  for (size_t i = 0; i < nm; i++) {
    for (unsigned variant = 0; variant < 3; variant++) {
      filler_t fl = {.n = (unsigned)i + variant};
      ProtobufCMessage *m = fill_message(ALL, &fl, 1, variant, members[i]);
      Linlitest__AllTypes *a = (Linlitest__AllTypes *)m;
      CU_ASSERT_EQUAL(a->choice_case, members[i]->id);
      CU_ASSERT_PTR_NOT_NULL(a->f_msg);
      CU_ASSERT(a->n_r_bytes >= 2);
      assert_round_trip(m);
      protobuf_c_message_free_unpacked(m, NULL);
    }
  }
}

/* Hand-made values at the edges: zeros inside repeated fields, empty
 * strings and bytes inside oneofs, infinities and NaN. */
static void test_edge_values_round_trip(void) {
  Linlitest__AllTypes a = LINLITEST__ALL_TYPES__INIT;
  int32_t ri[] = {0, -1, INT32_MIN};
  char *rs[] = {"", "x", ""};
  double rd[] = {NAN, INFINITY, -INFINITY, 0.0, -0.0};
  protobuf_c_boolean rb[] = {0, 1, 0};
  ProtobufCBinaryData rby[] = {{0, NULL}, {1, (uint8_t *)"\0"}};
  Linlitest__Color rc[] = {LINLITEST__COLOR__COLOR_UNSPECIFIED,
                           LINLITEST__COLOR__INFRARED};
  Linlitest__Empty e = LINLITEST__EMPTY__INIT;
  Linlitest__Node n0 = LINLITEST__NODE__INIT, n1 = LINLITEST__NODE__INIT;
  Linlitest__Node *rm[] = {&n0, &n1};
  a.f_float = -INFINITY;
  a.f_double = NAN;
  a.n_r_int32 = 3;
  a.r_int32 = ri;
  a.n_r_string = 3;
  a.r_string = rs;
  a.n_r_double = 5;
  a.r_double = rd;
  a.n_r_bool = 3;
  a.r_bool = rb;
  a.n_r_bytes = 2;
  a.r_bytes = rby;
  a.n_r_enum = 2;
  a.r_enum = rc;
  a.n_r_msg = 2;
  a.r_msg = rm;
  a.f_empty = &e;
  a.choice_case = LINLITEST__ALL_TYPES__CHOICE_O_STRING;
  a.o_string = "";
  assert_round_trip(&a.base);

  a.choice_case = LINLITEST__ALL_TYPES__CHOICE_O_BYTES;
  a.o_bytes.len = 0;
  a.o_bytes.data = NULL;
  assert_round_trip(&a.base);
  a.choice_case = LINLITEST__ALL_TYPES__CHOICE_O_INT64;
  a.o_int64 = 0;
  assert_round_trip(&a.base);
  a.choice_case = LINLITEST__ALL_TYPES__CHOICE_O_BOOL;
  a.o_bool = 0;
  assert_round_trip(&a.base);
  a.choice_case = LINLITEST__ALL_TYPES__CHOICE_O_EMPTY;
  a.o_empty = &e;
  assert_round_trip(&a.base);

  /* A oneof zero is written: it says which member is set. */
  a.choice_case = LINLITEST__ALL_TYPES__CHOICE_O_DOUBLE;
  a.o_double = 0.0;
  json_t *j = NULL;
  CU_ASSERT_EQUAL_FATAL(linli_pb_to_json(&a.base, &j), LINLI_OK);
  CU_ASSERT_PTR_NOT_NULL(json_object_get(j, "o_double"));
  CU_ASSERT_EQUAL(json_real_value(json_object_get(j, "o_double")), 0.0);
  CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "f_double")),
                         "NaN");
  CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "f_float")),
                         "-Infinity");
  json_t *jr = json_object_get(j, "r_enum");
  CU_ASSERT_STRING_EQUAL(json_string_value(json_array_get(jr, 0)),
                         "COLOR_UNSPECIFIED");
  CU_ASSERT_STRING_EQUAL(json_string_value(json_array_get(jr, 1)), "INFRARED");
  json_decref(j);
}

static void test_legacy_proto2_round_trip(void) {
  for (unsigned v = 0; v < 3; v++) {
    filler_t fl = {.n = v};
    ProtobufCMessage *m = fill_message(LEGACY, &fl, 1, v, NULL);
    assert_round_trip(m);
    protobuf_c_message_free_unpacked(m, NULL);
  }

  /* Declared defaults stay when a field is not given; explicitly given
   * values equal to the default are still written. */
  Linlitest2__Legacy *l = (Linlitest2__Legacy *)parse_ok(
      LEGACY, "{\"id\":0,\"name\":\"\"}");
  CU_ASSERT_PTR_NOT_NULL_FATAL(l);
  CU_ASSERT_STRING_EQUAL(l->label, "none");
  CU_ASSERT_EQUAL(l->big, -5);
  CU_ASSERT_FALSE(l->has_big);
  CU_ASSERT_TRUE(l->flag);
  CU_ASSERT_EQUAL(l->mode, LINLITEST2__MODE__MODE_B);
  CU_ASSERT_EQUAL(l->ratio, 0.5);
  CU_ASSERT_EQUAL(l->blob.len, 2);
  char *t = NULL;
  CU_ASSERT_EQUAL(linli_pb_to_json_text(&l->base, &t), LINLI_OK);
  CU_ASSERT_STRING_EQUAL(t, "{\"id\":0,\"name\":\"\"}");
  free(t);
  assert_round_trip(&l->base);
  protobuf_c_message_free_unpacked(&l->base, NULL);

  l = (Linlitest2__Legacy *)parse_ok(
      LEGACY, "{\"id\":1,\"name\":\"n\",\"label\":\"none\",\"big\":\"-5\","
              "\"flag\":false,\"blob\":\"\",\"mode\":\"MODE_A\",\"sub\":{},"
              "\"tags\":[\"a\",\"\"]}");
  CU_ASSERT_PTR_NOT_NULL_FATAL(l);
  CU_ASSERT_TRUE(l->has_big);
  CU_ASSERT_TRUE(l->has_flag);
  CU_ASSERT_FALSE(l->flag);
  CU_ASSERT_TRUE(l->has_blob);
  CU_ASSERT_EQUAL(l->blob.len, 0);
  CU_ASSERT_PTR_NOT_NULL(l->sub);
  CU_ASSERT_EQUAL(l->n_tags, 2);
  CU_ASSERT_EQUAL(linli_pb_to_json_text(&l->base, &t), LINLI_OK);
  CU_ASSERT_STRING_EQUAL(t, "{\"id\":1,\"label\":\"none\",\"big\":\"-5\","
                            "\"flag\":false,\"blob\":\"\",\"mode\":\"MODE_A\","
                            "\"sub\":{},\"tags\":[\"a\",\"\"],\"name\":\"n\"}");
  free(t);
  assert_round_trip(&l->base);
  protobuf_c_message_free_unpacked(&l->base, NULL);

  parse_fails(LEGACY, "{\"name\":\"n\"}", "id: missing required field");
  parse_fails(LEGACY, "{\"id\":1,\"name\":null}",
              "name: missing required field");
}

/* Every message of every topic: each envelope with each oneof member set,
 * nested oneofs cycling through their members. */
static void test_schema_round_trip(void) {
  size_t n = 0;
  const linli_topic_schema_t *topics = linli_schema_topics(&n);
  CU_ASSERT_PTR_NOT_NULL_FATAL(topics);
  CU_ASSERT(n >= 12);
  size_t envelopes = 0, members_done = 0;
  for (size_t t = 0; t < n; t++) {
    const ProtobufCMessageDescriptor *env = topics[t].envelope;
    if (env == NULL)
      continue;
    envelopes++;
    const ProtobufCFieldDescriptor *members[64];
    size_t nm = oneof_members(env, members, 64);
    CU_ASSERT(nm >= 1);
    for (size_t i = 0; i < nm; i++) {
      for (unsigned variant = 0; variant < 4; variant++) {
        filler_t fl = {.n = (unsigned)(t + i + variant)};
        ProtobufCMessage *m = fill_message(env, &fl, 1, variant, members[i]);
        assert_round_trip(m);
        /* Not vacuous: the member and the meta are in the JSON. */
        json_t *j = NULL;
        CU_ASSERT_EQUAL_FATAL(linli_pb_to_json(m, &j), LINLI_OK);
        CU_ASSERT(json_is_object(json_object_get(j, members[i]->name)));
        CU_ASSERT(json_is_object(json_object_get(j, "meta")));
        CU_ASSERT(json_object_size(json_object_get(j, members[i]->name)) > 0 ||
                  ((const ProtobufCMessageDescriptor *)members[i]->descriptor)
                          ->n_fields == 0);
        json_decref(j);
        protobuf_c_message_free_unpacked(m, NULL);
      }
      members_done++;
    }
  }
  /* DESIGN.md's topics: 12 with an envelope, 25 event types among them. */
  CU_ASSERT(envelopes >= 12);
  CU_ASSERT(members_done >= 25);
}

/* ------------------------------------------------------------ numbers */

static void test_int64_extremes(void) {
  /* In field-number order, as written. */
  const char *as_strings =
      "{\"f_int64\":\"-9223372036854775808\",\"f_uint64\":"
      "\"18446744073709551615\",\"f_sint64\":\"9223372036854775807\","
      "\"f_fixed64\":\"18446744073709551615\",\"f_sfixed64\":"
      "\"-9223372036854775808\"}";
  const char *as_numbers =
      "{\"f_int64\":-9223372036854775808,\"f_sint64\":9223372036854775807,"
      "\"f_sfixed64\":-9223372036854775808,\"f_uint64\":18446744073709551615,"
      "\"f_fixed64\":18446744073709551615}";
  const char *texts[] = {as_strings, as_numbers};
  for (int i = 0; i < 2; i++) {
    Linlitest__AllTypes *a = (Linlitest__AllTypes *)parse_ok(ALL, texts[i]);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_EQUAL(a->f_int64, INT64_MIN);
    CU_ASSERT_EQUAL(a->f_sint64, INT64_MAX);
    CU_ASSERT_EQUAL(a->f_sfixed64, INT64_MIN);
    CU_ASSERT_EQUAL(a->f_uint64, UINT64_MAX);
    CU_ASSERT_EQUAL(a->f_fixed64, UINT64_MAX);
    char *t = NULL;
    CU_ASSERT_EQUAL(linli_pb_to_json_text(&a->base, &t), LINLI_OK);
    CU_ASSERT_STRING_EQUAL(t, as_strings); /* written as strings */
    free(t);
    protobuf_c_message_free_unpacked(&a->base, NULL);
  }

  /* Numbers beyond int64 are fine for uint64 in arrays too, next to
   * ordinary ones, and fail where they do not fit. */
  Linlitest__AllTypes *a = (Linlitest__AllTypes *)parse_ok(
      ALL, "{\"r_uint64\":[1,9223372036854775808,\"18446744073709551615\"],"
           "\"f_string\":\"x\\\\u0000 -1 18446744073709551615\"}");
  CU_ASSERT_PTR_NOT_NULL_FATAL(a);
  CU_ASSERT_EQUAL(a->n_r_uint64, 3);
  CU_ASSERT_EQUAL(a->r_uint64[1], 9223372036854775808ULL);
  CU_ASSERT_EQUAL(a->r_uint64[2], UINT64_MAX);
  CU_ASSERT_STRING_EQUAL(a->f_string, "x\\u0000 -1 18446744073709551615");
  protobuf_c_message_free_unpacked(&a->base, NULL);

  parse_fails(ALL, "{\"f_int64\":9223372036854775808}",
              "f_int64: out of range for int64");
  parse_fails(ALL, "{\"f_int64\":\"9223372036854775808\"}",
              "f_int64: out of range for int64");
  parse_fails(ALL, "{\"f_int64\":\"-9223372036854775809\"}",
              "f_int64: out of range for int64");
  parse_fails(ALL, "{\"f_uint64\":\"18446744073709551616\"}",
              "f_uint64: out of range for uint64");
  parse_fails(ALL, "{\"f_uint64\":18446744073709551616}", "line 1, column *");
  parse_fails(ALL, "{\"f_uint64\":-1}", "f_uint64: out of range for uint64");
  parse_fails(ALL, "{\"f_uint64\":\"-1\"}",
              "f_uint64: out of range for uint64");
  parse_fails(ALL, "{\"f_int32\":9223372036854775808}",
              "f_int32: out of range for int32");
  parse_fails(ALL, "{\"f_string\":9223372036854775808}",
              "f_string: expected a string, got number");
  parse_fails(ALL, "{\"f_int64\":\"12a\"}",
              "f_int64: expected an integer, got a string that is not one");
  parse_fails(ALL, "{\"f_int64\":\" 12\"}",
              "f_int64: expected an integer, got a string that is not one");
  parse_fails(ALL, "{\"f_int64\":\"\"}",
              "f_int64: expected an integer, got a string that is not one");
  parse_fails(ALL, "{\"f_int64\":true}",
              "f_int64: expected an integer, got boolean");
  /* A NUL cannot sneak in as the marker of a big number. */
  parse_fails(ALL,
              "{\"f_uint64\":18446744073709551615,\"f_string\":\"\\u0000U1\"}",
              "line 1, column *");
  /* A parse error after a big number points into the caller's text. */
  char err_big[256] = "", err_small[256] = "";
  ProtobufCMessage *m = NULL;
  const char *big = "{\"r_uint64\":[18446744073709551615,\n"
                    " 1, 18446744073709551615, ]}";
  /* The same text with strings of the same length. */
  const char *small = "{\"r_uint64\":[\"184467440737095516\",\n"
                      " 1, \"184467440737095516\", ]}";
  CU_ASSERT_EQUAL(linli_json_text_to_pb(ALL, big, strlen(big), &m, err_big,
                                        sizeof(err_big)),
                  LINLI_ERR_INVALID);
  CU_ASSERT_EQUAL(linli_json_text_to_pb(ALL, small, strlen(small), &m,
                                        err_small, sizeof(err_small)),
                  LINLI_ERR_INVALID);
  if (strcmp(err_big, err_small) != 0)
    fprintf(stderr, "\n  big:   %s\n  small: %s\n", err_big, err_small);
  CU_ASSERT_STRING_EQUAL(err_big, err_small);
  CU_ASSERT(strncmp(err_big, "line 2, column 27: ", 19) == 0);
}

static void test_exact_beyond_2_53(void) {
  const char *texts[] = {"{\"f_int64\":9007199254740993}",
                         "{\"f_int64\":\"9007199254740993\"}"};
  for (int i = 0; i < 2; i++) {
    Linlitest__AllTypes *a = (Linlitest__AllTypes *)parse_ok(ALL, texts[i]);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_EQUAL(a->f_int64, 9007199254740993LL);
    char *t = NULL;
    CU_ASSERT_EQUAL(linli_pb_to_json_text(&a->base, &t), LINLI_OK);
    CU_ASSERT_STRING_EQUAL(t, texts[1]);
    free(t);
    protobuf_c_message_free_unpacked(&a->base, NULL);
  }
  /* A real cannot say 2^53 + 1: refused rather than rounded. */
  parse_fails(ALL, "{\"f_int64\":9007199254740993.0}",
              "f_int64: number too large to be exact as a real: write it as "
              "an integer or a string");
  parse_fails(ALL, "{\"f_uint64\":1e19}",
              "f_uint64: number too large to be exact as a real: write it "
              "as an integer or a string");
}

static void test_fractions(void) {
  parse_fails(ALL, "{\"f_int32\":1.5}",
              "f_int32: expected an integer, got a fraction");
  parse_fails(ALL, "{\"f_int64\":-2.25}",
              "f_int64: expected an integer, got a fraction");
  parse_fails(ALL, "{\"r_uint32\":[1,2,0.5]}",
              "r_uint32[2]: expected an integer, got a fraction");
  parse_fails(ALL, "{\"f_enum\":1.5}",
              "f_enum: expected an integer, got a fraction");
  /* An integral real is an integer. */
  Linlitest__AllTypes *a = (Linlitest__AllTypes *)parse_ok(
      ALL, "{\"f_int32\":3.0,\"f_int64\":-1e3,\"f_double\":2,"
           "\"f_float\":\"Infinity\"}");
  CU_ASSERT_PTR_NOT_NULL_FATAL(a);
  CU_ASSERT_EQUAL(a->f_int32, 3);
  CU_ASSERT_EQUAL(a->f_int64, -1000);
  CU_ASSERT_EQUAL(a->f_double, 2.0);
  CU_ASSERT(isinf(a->f_float) && a->f_float > 0);
  protobuf_c_message_free_unpacked(&a->base, NULL);
}

static void test_ranges_32(void) {
  Linlitest__AllTypes *a = (Linlitest__AllTypes *)parse_ok(
      ALL, "{\"f_int32\":2147483647,\"f_sint32\":-2147483648,"
           "\"f_sfixed32\":-2147483648,\"f_uint32\":4294967295,"
           "\"f_fixed32\":4294967295,\"f_float\":3.4028234663852886e38}");
  CU_ASSERT_PTR_NOT_NULL_FATAL(a);
  CU_ASSERT_EQUAL(a->f_int32, INT32_MAX);
  CU_ASSERT_EQUAL(a->f_sint32, INT32_MIN);
  CU_ASSERT_EQUAL(a->f_sfixed32, INT32_MIN);
  CU_ASSERT_EQUAL(a->f_uint32, UINT32_MAX);
  CU_ASSERT_EQUAL(a->f_fixed32, UINT32_MAX);
  CU_ASSERT_EQUAL(a->f_float, FLT_MAX);
  char *t = NULL;
  CU_ASSERT_EQUAL(linli_pb_to_json_text(&a->base, &t), LINLI_OK);
  /* 32-bit integers are written as numbers. */
  CU_ASSERT_PTR_NOT_NULL(strstr(t, "\"f_int32\":2147483647,"));
  CU_ASSERT_PTR_NOT_NULL(strstr(t, "\"f_uint32\":4294967295,"));
  free(t);
  protobuf_c_message_free_unpacked(&a->base, NULL);

  parse_fails(ALL, "{\"f_int32\":2147483648}",
              "f_int32: out of range for int32");
  parse_fails(ALL, "{\"f_int32\":-2147483649}",
              "f_int32: out of range for int32");
  parse_fails(ALL, "{\"f_sint32\":3000000000}",
              "f_sint32: out of range for sint32");
  parse_fails(ALL, "{\"f_uint32\":-1}", "f_uint32: out of range for uint32");
  parse_fails(ALL, "{\"f_fixed32\":4294967296}",
              "f_fixed32: out of range for fixed32");
  parse_fails(ALL, "{\"r_sfixed32\":[1,-2147483649]}",
              "r_sfixed32[1]: out of range for sfixed32");
  parse_fails(ALL, "{\"f_float\":1e39}", "f_float: out of range for float");
  parse_fails(ALL, "{\"f_float\":-3.4028235677973366e38}",
              "f_float: out of range for float");
  /* Just below the midpoint still rounds to FLT_MAX. */
  a = (Linlitest__AllTypes *)parse_ok(
      ALL, "{\"f_float\":-3.4028235677973362e38,\"r_float\":[0.1,1e-45]}");
  CU_ASSERT_PTR_NOT_NULL_FATAL(a);
  CU_ASSERT_EQUAL(a->f_float, -FLT_MAX);
  CU_ASSERT_EQUAL(a->r_float[0], 0.1f);
  CU_ASSERT(a->r_float[1] > 0);
  CU_ASSERT_EQUAL(linli_pb_to_json_text(&a->base, &t), LINLI_OK);
  /* Floats are written as the shortest decimal that reads back the same. */
  CU_ASSERT_STRING_EQUAL(t, "{\"f_float\":-3.4028235e38,\"r_float\":"
                            "[0.1,1e-45]}");
  free(t);
  protobuf_c_message_free_unpacked(&a->base, NULL);
  parse_fails(ALL, "{\"f_double\":\"1.5\"}",
              "f_double: expected a number, got a string other than NaN, "
              "Infinity, -Infinity");
}

/* ------------------------------------------------------------- enums */

static void test_enums(void) {
  Linlitest__AllTypes *a = (Linlitest__AllTypes *)parse_ok(
      ALL, "{\"f_enum\":7,\"r_enum\":[\"RED\",-1,\"COLOR_UNSPECIFIED\",2],"
           "\"o_enum\":\"GREEN\"}");
  CU_ASSERT_PTR_NOT_NULL_FATAL(a);
  CU_ASSERT_EQUAL(a->f_enum, LINLITEST__COLOR__BLUE);
  CU_ASSERT_EQUAL(a->n_r_enum, 4);
  CU_ASSERT_EQUAL(a->r_enum[0], LINLITEST__COLOR__RED);
  CU_ASSERT_EQUAL(a->r_enum[1], LINLITEST__COLOR__INFRARED);
  CU_ASSERT_EQUAL(a->r_enum[2], LINLITEST__COLOR__COLOR_UNSPECIFIED);
  CU_ASSERT_EQUAL(a->r_enum[3], LINLITEST__COLOR__GREEN);
  CU_ASSERT_EQUAL(a->choice_case, LINLITEST__ALL_TYPES__CHOICE_O_ENUM);
  CU_ASSERT_EQUAL(a->o_enum, LINLITEST__COLOR__GREEN);
  char *t = NULL;
  CU_ASSERT_EQUAL(linli_pb_to_json_text(&a->base, &t), LINLI_OK);
  CU_ASSERT_STRING_EQUAL(t, "{\"f_enum\":\"BLUE\",\"r_enum\":[\"RED\","
                            "\"INFRARED\",\"COLOR_UNSPECIFIED\",\"GREEN\"],"
                            "\"o_enum\":\"GREEN\"}");
  free(t);
  /* A number this schema does not know is written as the number. */
  a->f_enum = (Linlitest__Color)42;
  CU_ASSERT_EQUAL(linli_pb_to_json_text(&a->base, &t), LINLI_OK);
  CU_ASSERT_PTR_NOT_NULL(strstr(t, "\"f_enum\":42,"));
  free(t);
  protobuf_c_message_free_unpacked(&a->base, NULL);

  parse_fails(ALL, "{\"f_enum\":\"PURPLE\"}",
              "f_enum: unknown value \"PURPLE\" for enum linlitest.Color");
  parse_fails(ALL, "{\"r_enum\":[\"RED\",\"red\"]}",
              "r_enum[1]: unknown value \"red\" for enum linlitest.Color");
  parse_fails(ALL, "{\"f_enum\":5}",
              "f_enum: unknown value 5 for enum linlitest.Color");
  parse_fails(ALL, "{\"f_enum\":4294967296}",
              "f_enum: unknown value for enum linlitest.Color");
  parse_fails(ALL, "{\"f_enum\":true}",
              "f_enum: expected an enum name or number, got boolean");
  parse_fails(ALL, "{\"f_enum\":\"\"}",
              "f_enum: unknown value \"\" for enum linlitest.Color");
}

/* -------------------------------------------------------- rejections */

static void test_wrong_types(void) {
  parse_fails(ALL, "{\"f_int32\":\"5\"}",
              "f_int32: expected an integer, got string");
  parse_fails(ALL, "{\"f_uint32\":[]}",
              "f_uint32: expected an integer, got array");
  parse_fails(ALL, "{\"f_string\":{}}",
              "f_string: expected a string, got object");
  parse_fails(ALL, "{\"f_string\":5}",
              "f_string: expected a string, got number");
  parse_fails(ALL, "{\"f_bool\":1}",
              "f_bool: expected true or false, got number");
  parse_fails(ALL, "{\"f_bool\":\"true\"}",
              "f_bool: expected true or false, got string");
  parse_fails(ALL, "{\"f_msg\":[]}", "f_msg: expected an object, got array");
  parse_fails(ALL, "{\"f_msg\":\"x\"}",
              "f_msg: expected an object, got string");
  parse_fails(ALL, "{\"r_int32\":5}", "r_int32: expected an array, got number");
  parse_fails(ALL, "{\"r_msg\":[{},[]]}",
              "r_msg[1]: expected an object, got array");
  parse_fails(ALL, "{\"r_string\":[\"a\",null]}",
              "r_string[1]: null is not allowed in an array");
  parse_fails(ALL, "{\"f_bytes\":12}",
              "f_bytes: expected a base64 string, got number");
  parse_fails(ALL, "{\"f_double\":{}}",
              "f_double: expected a number, got object");
  parse_fails(ALL, "[1,2]", "expected an object, got array");
  parse_fails(ENV, "{\"placed\":{\"lines\":[{},{},{\"quantity\":\"x\"}]}}",
              "placed.lines[2].quantity: expected an integer, got string");
  parse_fails(ENV, "{\"meta\":{\"occurred_at_ms\":{}}}",
              "meta.occurred_at_ms: expected an integer, got object");

  /* The json_t entry point checks the same. */
  json_t *j = json_array();
  convert_fails(ALL, j, "expected an object, got array");
}

static void test_unknown_fields(void) {
  parse_fails(ALL, "{\"nope\":1}", "nope: unknown field");
  parse_fails(ALL, "{\"f_msg\":{\"name\":\"a\",\"bogus\":null}}",
              "f_msg.bogus: unknown field");
  parse_fails(ALL, "{\"r_msg\":[{\"child\":{\"Value\":1}}]}",
              "r_msg[0].child.Value: unknown field");
  /* Names are matched exactly: no camelCase, no case folding. */
  parse_fails(ALL, "{\"fInt32\":1}", "fInt32: unknown field");
  /* A name from the input is shown printable and short. */
  parse_fails(ALL, "{\"a\\nb\":1}", "a?b: unknown field");
  parse_fails(ALL,
              "{\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
              "xxxxxxxxxx\":1}",
              "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
              "xxx...: unknown field");
  /* A key with a NUL inside is not the field its prefix names. */
  json_t *j = json_object();
  json_object_setn_new_nocheck(j, "f_int32\0x", 9, json_integer(1));
  convert_fails(ALL, j, "f_int32?x: unknown field");
  /* Duplicate keys are ambiguous. */
  parse_fails(ALL, "{\"f_int32\":1,\"f_int32\":2}", "line 1, column *");
}

static void test_defaults_and_null(void) {
  Linlitest__AllTypes *a = (Linlitest__AllTypes *)parse_ok(ALL, "{}");
  CU_ASSERT_PTR_NOT_NULL_FATAL(a);
  CU_ASSERT_EQUAL(a->f_int32, 0);
  CU_ASSERT_EQUAL(a->f_uint64, 0);
  CU_ASSERT_PTR_NOT_NULL(a->f_string);
  CU_ASSERT_STRING_EQUAL(a->f_string, "");
  CU_ASSERT_PTR_NULL(a->f_msg);
  CU_ASSERT_EQUAL(a->n_r_int32, 0);
  CU_ASSERT_EQUAL(a->choice_case, LINLITEST__ALL_TYPES__CHOICE__NOT_SET);
  CU_ASSERT_EQUAL(protobuf_c_message_get_packed_size(&a->base), 0);
  char *t = NULL;
  CU_ASSERT_EQUAL(linli_pb_to_json_text(&a->base, &t), LINLI_OK);
  CU_ASSERT_STRING_EQUAL(t, "{}");
  free(t);
  protobuf_c_message_free_unpacked(&a->base, NULL);

  /* Explicit defaults are accepted and written as absent. */
  a = (Linlitest__AllTypes *)parse_ok(
      ALL, "{\"f_int32\":0,\"f_string\":\"\",\"f_bool\":false,\"f_bytes\":\"\","
           "\"r_int32\":[],\"f_enum\":\"COLOR_UNSPECIFIED\",\"f_double\":0}");
  CU_ASSERT_PTR_NOT_NULL_FATAL(a);
  CU_ASSERT_EQUAL(protobuf_c_message_get_packed_size(&a->base), 0);
  CU_ASSERT_EQUAL(linli_pb_to_json_text(&a->base, &t), LINLI_OK);
  CU_ASSERT_STRING_EQUAL(t, "{}");
  free(t);
  protobuf_c_message_free_unpacked(&a->base, NULL);

  /* null means absent, everywhere, and does not count as a oneof member. */
  a = (Linlitest__AllTypes *)parse_ok(
      ALL, "{\"f_int32\":null,\"f_msg\":null,\"r_msg\":null,"
           "\"o_string\":null,\"o_int64\":\"5\",\"o_msg\":null}");
  CU_ASSERT_PTR_NOT_NULL_FATAL(a);
  CU_ASSERT_EQUAL(a->f_int32, 0);
  CU_ASSERT_PTR_NULL(a->f_msg);
  CU_ASSERT_EQUAL(a->choice_case, LINLITEST__ALL_TYPES__CHOICE_O_INT64);
  CU_ASSERT_EQUAL(a->o_int64, 5);
  protobuf_c_message_free_unpacked(&a->base, NULL);
}

/* A chain of Node.child objects depth levels deep (root counted). */
static char *nested_child_text(int depth) {
  size_t len = (size_t)depth * 12 + 16;
  char *s = malloc(len);
  CU_ASSERT_PTR_NOT_NULL_FATAL(s);
  size_t o = 0;
  for (int i = 1; i < depth; i++) {
    memcpy(s + o, "{\"child\":", 9);
    o += 9;
  }
  memcpy(s + o, "{\"value\":1}", 11);
  o += 11;
  for (int i = 1; i < depth; i++)
    s[o++] = '}';
  s[o] = '\0';
  return s;
}

static void test_depth_limit(void) {
  char *ok = nested_child_text(LINLI_JSON_MAX_DEPTH);
  Linlitest__Node *n = (Linlitest__Node *)parse_ok(NODE, ok);
  CU_ASSERT_PTR_NOT_NULL_FATAL(n);
  int levels = 0;
  for (Linlitest__Node *p = n; p != NULL; p = p->child)
    levels++;
  CU_ASSERT_EQUAL(levels, LINLI_JSON_MAX_DEPTH);
  /* What can be read can be written, and back. */
  assert_round_trip(&n->base);

  /* One more level is refused on the way out too. */
  Linlitest__Node extra = LINLITEST__NODE__INIT;
  Linlitest__Node *last = n;
  while (last->child != NULL)
    last = last->child;
  last->child = &extra;
  json_t *j = NULL;
  CU_ASSERT_EQUAL(linli_pb_to_json(&n->base, &j), LINLI_ERR_INVALID);
  CU_ASSERT_PTR_NULL(j);
  char *t = NULL;
  CU_ASSERT_EQUAL(linli_pb_to_json_text(&n->base, &t), LINLI_ERR_INVALID);
  CU_ASSERT_PTR_NULL(t);
  last->child = NULL;
  protobuf_c_message_free_unpacked(&n->base, NULL);
  free(ok);

  char *deep = nested_child_text(LINLI_JSON_MAX_DEPTH + 1);
  char want[512] = "";
  size_t o = 0;
  for (int i = 1; i <= LINLI_JSON_MAX_DEPTH; i++) {
    memcpy(want + o, i == 1 ? "child" : ".child", i == 1 ? 5 : 6);
    o += i == 1 ? 5 : 6;
  }
  snprintf(want + o, sizeof(want) - o, ": nesting deeper than %d",
           LINLI_JSON_MAX_DEPTH);
  parse_fails(NODE, deep, want);
  free(deep);

  /* Arrays count as levels: 16 levels of children[0] are 32 containers. */
  char buf[1024];
  size_t b = 0;
  for (int i = 0; i < 16; i++) {
    memcpy(buf + b, "{\"children\":[", 13);
    b += 13;
  }
  memcpy(buf + b, "{}", 2);
  b += 2;
  for (int i = 0; i < 16; i++) {
    memcpy(buf + b, "]}", 2);
    b += 2;
  }
  buf[b] = '\0';
  parse_fails(NODE, buf, "children[0].children[0]*");
  CU_ASSERT_PTR_NOT_NULL(strstr(buf, "children"));

  /* Far deeper than jansson's own limit: a parse error, no crash. */
  char *huge = nested_child_text(5000);
  parse_fails(NODE, huge, "line 1, column *");
  free(huge);
}

static void test_invalid_utf8(void) {
  parse_fails(ALL, "{\"f_string\":\"\xff\"}", "line 1, column *");
  parse_fails(ALL, "{\"f_string\":\"\xc0\xaf\"}", "line 1, column *");
  parse_fails(ALL, "{\"r_string\":[\"ok\",\"\xed\xa0\x80\"]}",
              "line 1, column *");
  parse_fails(ALL, "{\"f_string\":\"\\udc00\"}", "line 1, column *");
  parse_fails(ALL, "{\"f_string\":\"a\\u0000b\"}", "line 1, column *");

  /* A json_t built by hand is checked as well. */
  json_t *j = json_object();
  json_object_set_new(j, "f_string", json_stringn_nocheck("\xc3\x28", 2));
  convert_fails(ALL, j, "f_string: string is not valid UTF-8");
  j = json_object();
  json_object_set_new(j, "r_string", json_array());
  json_array_append_new(json_object_get(j, "r_string"),
                        json_stringn_nocheck("\xed\xa0\x80", 3));
  convert_fails(ALL, j, "r_string[0]: string is not valid UTF-8");
  j = json_object();
  json_object_set_new(j, "f_string", json_stringn_nocheck("a\0b", 3));
  convert_fails(ALL, j, "f_string: string contains a NUL character");
  j = json_object();
  json_object_set_new(j, "f_enum", json_stringn_nocheck("RED\xff", 4));
  convert_fails(ALL, j, "f_enum: string is not valid UTF-8");

  /* Valid multi-byte text passes both ways. */
  Linlitest__AllTypes *a = (Linlitest__AllTypes *)parse_ok(
      ALL, "{\"f_string\":\"邻里 \\u00e9 😀 \\ud83d\\ude00\"}");
  CU_ASSERT_PTR_NOT_NULL_FATAL(a);
  CU_ASSERT_STRING_EQUAL(a->f_string, "邻里 é 😀 😀");
  assert_round_trip(&a->base);

  /* Invalid UTF-8 in a message cannot become JSON. */
  free(a->f_string);
  a->f_string = strdup("bad \xff");
  json_t *out = NULL;
  CU_ASSERT_EQUAL(linli_pb_to_json(&a->base, &out), LINLI_ERR_INVALID);
  CU_ASSERT_PTR_NULL(out);
  protobuf_c_message_free_unpacked(&a->base, NULL);
}

static void test_oneof(void) {
  parse_fails(ALL, "{\"o_string\":\"a\",\"o_int64\":\"5\"}",
              "o_int64: cannot be set together with 'o_string' (same oneof)");
  parse_fails(ENV, "{\"placed\":{},\"meta\":{},\"cancelled\":{}}",
              "cancelled: cannot be set together with 'placed' (same oneof)");
  parse_fails(ENV, "{\"ping\":{},\"placed\":null,\"cancelled\":{}}",
              "cancelled: cannot be set together with 'ping' (same oneof)");

  Linlitest__TestEnvelope *e = (Linlitest__TestEnvelope *)parse_ok(
      ENV, "{\"meta\":{\"event_id\":\"e1\",\"occurred_at_ms\":1700000000000},"
           "\"cancelled\":{\"order_id\":\"o1\"}}");
  CU_ASSERT_PTR_NOT_NULL_FATAL(e);
  CU_ASSERT_EQUAL(e->body_case, LINLITEST__TEST_ENVELOPE__BODY_CANCELLED);
  CU_ASSERT_STRING_EQUAL(e->cancelled->order_id, "o1");
  CU_ASSERT_STRING_EQUAL(e->cancelled->reason, "");
  CU_ASSERT_EQUAL(e->meta->occurred_at_ms, 1700000000000LL);
  char *t = NULL;
  CU_ASSERT_EQUAL(linli_pb_to_json_text(&e->base, &t), LINLI_OK);
  CU_ASSERT_STRING_EQUAL(t, "{\"meta\":{\"event_id\":\"e1\",\"occurred_at_ms\":"
                            "\"1700000000000\"},\"cancelled\":{\"order_id\":"
                            "\"o1\"}}");
  free(t);
  protobuf_c_message_free_unpacked(&e->base, NULL);
}

static void test_empty_messages(void) {
  /* The set member is written even when it is an empty message. */
  Linlitest__TestEnvelope *e =
      (Linlitest__TestEnvelope *)parse_ok(ENV, "{\"ping\":{}}");
  CU_ASSERT_PTR_NOT_NULL_FATAL(e);
  CU_ASSERT_EQUAL(e->body_case, LINLITEST__TEST_ENVELOPE__BODY_PING);
  CU_ASSERT_PTR_NOT_NULL(e->ping);
  CU_ASSERT_EQUAL(protobuf_c_message_get_packed_size(&e->base), 2);
  char *t = NULL;
  CU_ASSERT_EQUAL(linli_pb_to_json_text(&e->base, &t), LINLI_OK);
  CU_ASSERT_STRING_EQUAL(t, "{\"ping\":{}}");
  free(t);
  assert_round_trip(&e->base);
  protobuf_c_message_free_unpacked(&e->base, NULL);

  /* So is an empty placed order inside the oneof, and an empty meta. */
  e = (Linlitest__TestEnvelope *)parse_ok(ENV, "{\"meta\":{},\"placed\":{}}");
  CU_ASSERT_PTR_NOT_NULL_FATAL(e);
  CU_ASSERT_EQUAL(linli_pb_to_json_text(&e->base, &t), LINLI_OK);
  CU_ASSERT_STRING_EQUAL(t, "{\"meta\":{},\"placed\":{}}");
  free(t);
  assert_round_trip(&e->base);
  protobuf_c_message_free_unpacked(&e->base, NULL);

  Linlitest__AllTypes *a = (Linlitest__AllTypes *)parse_ok(
      ALL, "{\"f_empty\":{},\"o_empty\":{},\"r_msg\":[{},{}]}");
  CU_ASSERT_PTR_NOT_NULL_FATAL(a);
  CU_ASSERT_PTR_NOT_NULL(a->f_empty);
  CU_ASSERT_EQUAL(a->choice_case, LINLITEST__ALL_TYPES__CHOICE_O_EMPTY);
  CU_ASSERT_EQUAL(a->n_r_msg, 2);
  CU_ASSERT_EQUAL(linli_pb_to_json_text(&a->base, &t), LINLI_OK);
  CU_ASSERT_STRING_EQUAL(t, "{\"f_empty\":{},\"r_msg\":[{},{}],\"o_empty\":{}}");
  free(t);
  assert_round_trip(&a->base);
  protobuf_c_message_free_unpacked(&a->base, NULL);

  Linlitest__Empty *em =
      (Linlitest__Empty *)parse_ok(&linlitest__empty__descriptor, "{}");
  CU_ASSERT_PTR_NOT_NULL_FATAL(em);
  assert_round_trip(&em->base);
  protobuf_c_message_free_unpacked(&em->base, NULL);
  parse_fails(&linlitest__empty__descriptor, "{\"x\":1}", "x: unknown field");
}

static void test_base64(void) {
  Linlitest__AllTypes *a = (Linlitest__AllTypes *)parse_ok(
      ALL, "{\"f_bytes\":\"AAEC/w==\",\"r_bytes\":[\"\",\"AAEC_w\",\"YQ\"],"
           "\"o_bytes\":\"\"}");
  CU_ASSERT_PTR_NOT_NULL_FATAL(a);
  CU_ASSERT_EQUAL(a->f_bytes.len, 4);
  CU_ASSERT(a->f_bytes.len == 4 &&
            memcmp(a->f_bytes.data, "\x00\x01\x02\xff", 4) == 0);
  CU_ASSERT_EQUAL(a->n_r_bytes, 3);
  CU_ASSERT_EQUAL(a->r_bytes[0].len, 0);
  CU_ASSERT(a->r_bytes[1].len == 4 &&
            memcmp(a->r_bytes[1].data, "\x00\x01\x02\xff", 4) == 0);
  CU_ASSERT(a->r_bytes[2].len == 1 && a->r_bytes[2].data[0] == 'a');
  CU_ASSERT_EQUAL(a->choice_case, LINLITEST__ALL_TYPES__CHOICE_O_BYTES);
  char *t = NULL;
  CU_ASSERT_EQUAL(linli_pb_to_json_text(&a->base, &t), LINLI_OK);
  /* Written in standard base64 with padding. */
  CU_ASSERT_STRING_EQUAL(t, "{\"f_bytes\":\"AAEC/w==\",\"r_bytes\":[\"\","
                            "\"AAEC/w==\",\"YQ==\"],\"o_bytes\":\"\"}");
  free(t);
  assert_round_trip(&a->base);
  protobuf_c_message_free_unpacked(&a->base, NULL);

  parse_fails(ALL, "{\"f_bytes\":\"!!!!\"}", "f_bytes: invalid base64");
  parse_fails(ALL, "{\"f_bytes\":\"A\"}", "f_bytes: invalid base64");
  parse_fails(ALL, "{\"f_bytes\":\"AAF=\"}", "f_bytes: invalid base64");
  parse_fails(ALL, "{\"f_bytes\":\"AA==AA==\"}", "f_bytes: invalid base64");
  parse_fails(ALL, "{\"r_bytes\":[\"YQ==\",\"Y Q==\"]}",
              "r_bytes[1]: invalid base64");
}

static void test_text_api(void) {
  /* Parse errors name line and column. */
  parse_fails(ALL, "{\"f_int32\":1,\n \"f_string\": }",
              "line 2, column 14: *");
  parse_fails(ALL, "", "line 1, column 0: *");
  parse_fails(ALL, "{} trailing", "line 1, column *");
  parse_fails(ALL, "\"just a string\"", "line 1, column *");

  /* len bounds the text: what follows is not read. */
  const char *text = "{\"f_int32\":12}garbage";
  ProtobufCMessage *m = NULL;
  char err[256];
  CU_ASSERT_EQUAL(linli_json_text_to_pb(ALL, text, 14, &m, err, sizeof(err)),
                  LINLI_OK);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  CU_ASSERT_EQUAL(((Linlitest__AllTypes *)m)->f_int32, 12);
  protobuf_c_message_free_unpacked(m, NULL);

  /* Bad arguments are refused, not crashed on. */
  CU_ASSERT_EQUAL(linli_json_text_to_pb(NULL, text, 14, &m, err, sizeof(err)),
                  LINLI_ERR_INVALID);
  CU_ASSERT_EQUAL(linli_json_text_to_pb(ALL, NULL, 0, &m, err, sizeof(err)),
                  LINLI_ERR_INVALID);
  CU_ASSERT_EQUAL(linli_json_to_pb(ALL, NULL, &m, NULL, 0), LINLI_ERR_INVALID);
  json_t *j = NULL;
  CU_ASSERT_EQUAL(linli_pb_to_json(NULL, &j), LINLI_ERR_INVALID);
  /* A NULL error buffer is allowed. */
  CU_ASSERT_EQUAL(linli_json_text_to_pb(ALL, "{\"x\":1}", 7, &m, NULL, 0),
                  LINLI_ERR_INVALID);
  /* A small error buffer gets a cut message, never an overflow. */
  char small[8];
  CU_ASSERT_EQUAL(linli_json_text_to_pb(ALL, "{\"f_int32\":\"x\"}", 15, &m,
                                        small, sizeof(small)),
                  LINLI_ERR_INVALID);
  CU_ASSERT_STRING_EQUAL(small, "f_int32");
}

/* Message and JSON side by side on the real schema: a placed order. */
static void test_real_order_event(void) {
  const linli_topic_schema_t *t = linli_schema_topic(LINLI_TOPIC_ORDERS);
  CU_ASSERT_PTR_NOT_NULL_FATAL(t);
  const char *in =
      "{\"meta\":{\"event_id\":\"e-1\",\"occurred_at_ms\":\"1700000000000\","
      "\"producer\":\"produce\",\"schema_version\":1},"
      "\"order_placed\":{\"order_id\":\"o-1\",\"user_id\":\"u-1\","
      "\"warehouse_id\":\"w-1\",\"lines\":[{\"sku_id\":\"s-1\",\"quantity\":2,"
      "\"unit_price_fen\":\"350\"}],\"total_fen\":\"700\","
      "\"pickup\":{\"pickup_point_id\":\"p-1\"}}}";
  ProtobufCMessage *m = parse_ok(t->envelope, in);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  char *out = NULL;
  CU_ASSERT_EQUAL(linli_pb_to_json_text(m, &out), LINLI_OK);
  CU_ASSERT_STRING_EQUAL(out, in);
  free(out);
  const char *type = NULL;
  CU_ASSERT_EQUAL(linli_schema_event_type(m, &type), LINLI_OK);
  CU_ASSERT_STRING_EQUAL(type, "OrderPlaced");
  protobuf_c_message_free_unpacked(m, NULL);

  parse_fails(t->envelope,
              "{\"order_placed\":{\"lines\":[{},{\"quantity\":1.5}]}}",
              "order_placed.lines[1].quantity: expected an integer, got a "
              "fraction");
  parse_fails(t->envelope,
              "{\"order_placed\":{\"pickup\":{},\"home\":{}}}",
              "order_placed.home: cannot be set together with 'pickup' "
              "(same oneof)");
  parse_fails(t->envelope, "{\"order_paid\":{\"method\":\"PAYPAL\"}}",
              "order_paid.method: unknown value \"PAYPAL\" for enum "
              "linli.OrderPaid.Method");
}

int linli_test_register(void) {
  CU_pSuite s = CU_add_suite("json", NULL, NULL);
  if (s == NULL)
    return -1;
  CU_add_test(s, "all types round trip", test_all_types_round_trip);
  CU_add_test(s, "edge values round trip", test_edge_values_round_trip);
  CU_add_test(s, "proto2 round trip and defaults", test_legacy_proto2_round_trip);
  CU_add_test(s, "every schema message round trip", test_schema_round_trip);
  CU_add_test(s, "int64 extremes", test_int64_extremes);
  CU_add_test(s, "exact beyond 2^53", test_exact_beyond_2_53);
  CU_add_test(s, "fractions", test_fractions);
  CU_add_test(s, "32-bit ranges", test_ranges_32);
  CU_add_test(s, "enums", test_enums);
  CU_add_test(s, "wrong types", test_wrong_types);
  CU_add_test(s, "unknown fields", test_unknown_fields);
  CU_add_test(s, "defaults and null", test_defaults_and_null);
  CU_add_test(s, "depth limit", test_depth_limit);
  CU_add_test(s, "invalid UTF-8", test_invalid_utf8);
  CU_add_test(s, "oneof", test_oneof);
  CU_add_test(s, "empty messages", test_empty_messages);
  CU_add_test(s, "base64 bytes", test_base64);
  CU_add_test(s, "text API", test_text_api);
  CU_add_test(s, "real order event", test_real_order_event);
  return CU_get_error() == CUE_SUCCESS ? 0 : -1;
}
