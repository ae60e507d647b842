/*
 * json.c - protobuf <-> JSON for any linli message, driven only by the
 * protobuf-c descriptors (see linli/json.h for the mapping).
 *
 * JSON -> protobuf builds the message with protobuf_c_message_init() and
 * malloc'd fields laid out exactly as protobuf_c_message_unpack() would lay
 * them out, so that protobuf_c_message_free_unpacked(msg, NULL) frees it:
 * every string is a heap copy, every repeated array and bytes buffer comes
 * from malloc, a oneof member's pointer is only stored together with its
 * case, and the count of a repeated field only covers elements already
 * converted (so a half-built message can be freed on error).
 *
 * protobuf -> JSON writes a field exactly when protobuf_c_message_pack()
 * would put it on the wire, so pb -> JSON -> pb keeps the packed bytes.
 *
 * Both directions recurse over nested messages and arrays; the depth is
 * bounded by LINLI_JSON_MAX_DEPTH (counting every JSON object and array).
 */
#include "linli/json.h"

#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "linli/error.h"

/* ------------------------------------------------------------------------ */
/* Shared helpers                                                            */
/* ------------------------------------------------------------------------ */

/* Integers beyond int64 that jansson cannot hold are rewritten by the text
 * parser into strings starting with this prefix (a NUL cannot occur in any
 * other string then: see rewrite_big_integers). */
#define BIGNUM_PREFIX "\0U"
#define BIGNUM_PREFIX_LEN 2

/* 2^53: from here on a JSON real may be a rounded integer (2^53 + 1
 * parses as 2^53), so only integers and strings are exact. */
#define MAX_EXACT_REAL 9007199254740992.0

/* 2^128 - 2^103: halfway between FLT_MAX and the next power of two. */
#define FLOAT_ROUNDS_TO_INF 0x1.ffffffp+127

static void *member_ptr(const ProtobufCMessage *msg,
                        const ProtobufCFieldDescriptor *f) {
  return (char *)msg + f->offset;
}

static void *quantifier_ptr(const ProtobufCMessage *msg,
                            const ProtobufCFieldDescriptor *f) {
  return (char *)msg + f->quantifier_offset;
}

static int is_oneof(const ProtobufCFieldDescriptor *f) {
  return (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) != 0;
}

/* Size of one element of a repeated field (protobuf-c's own layout). */
static size_t elt_size(ProtobufCType type) {
  switch (type) {
  case PROTOBUF_C_TYPE_INT32:
  case PROTOBUF_C_TYPE_SINT32:
  case PROTOBUF_C_TYPE_SFIXED32:
  case PROTOBUF_C_TYPE_UINT32:
  case PROTOBUF_C_TYPE_FIXED32:
  case PROTOBUF_C_TYPE_ENUM:
    return 4;
  case PROTOBUF_C_TYPE_FLOAT:
    return sizeof(float);
  case PROTOBUF_C_TYPE_INT64:
  case PROTOBUF_C_TYPE_SINT64:
  case PROTOBUF_C_TYPE_SFIXED64:
  case PROTOBUF_C_TYPE_UINT64:
  case PROTOBUF_C_TYPE_FIXED64:
    return 8;
  case PROTOBUF_C_TYPE_DOUBLE:
    return sizeof(double);
  case PROTOBUF_C_TYPE_BOOL:
    return sizeof(protobuf_c_boolean);
  case PROTOBUF_C_TYPE_STRING:
    return sizeof(char *);
  case PROTOBUF_C_TYPE_MESSAGE:
    return sizeof(ProtobufCMessage *);
  case PROTOBUF_C_TYPE_BYTES:
    return sizeof(ProtobufCBinaryData);
  }
  return 0;
}

static const char *type_name(ProtobufCType type) {
  switch (type) {
  case PROTOBUF_C_TYPE_INT32: return "int32";
  case PROTOBUF_C_TYPE_SINT32: return "sint32";
  case PROTOBUF_C_TYPE_SFIXED32: return "sfixed32";
  case PROTOBUF_C_TYPE_UINT32: return "uint32";
  case PROTOBUF_C_TYPE_FIXED32: return "fixed32";
  case PROTOBUF_C_TYPE_INT64: return "int64";
  case PROTOBUF_C_TYPE_SINT64: return "sint64";
  case PROTOBUF_C_TYPE_SFIXED64: return "sfixed64";
  case PROTOBUF_C_TYPE_UINT64: return "uint64";
  case PROTOBUF_C_TYPE_FIXED64: return "fixed64";
  case PROTOBUF_C_TYPE_FLOAT: return "float";
  case PROTOBUF_C_TYPE_DOUBLE: return "double";
  case PROTOBUF_C_TYPE_BOOL: return "bool";
  case PROTOBUF_C_TYPE_ENUM: return "enum";
  case PROTOBUF_C_TYPE_STRING: return "string";
  case PROTOBUF_C_TYPE_BYTES: return "bytes";
  case PROTOBUF_C_TYPE_MESSAGE: return "message";
  }
  return "?";
}

/* Strict UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF. */
static int utf8_valid(const unsigned char *s, size_t len) {
  size_t i = 0;
  while (i < len) {
    unsigned c = s[i];
    size_t n;
    uint32_t cp;
    if (c < 0x80) {
      i++;
      continue;
    } else if (c >= 0xC2 && c <= 0xDF) {
      n = 1;
      cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      n = 2;
      cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      n = 3;
      cp = c & 0x07;
    } else {
      return 0;
    }
    if (len - i <= n)
      return 0;
    for (size_t k = 1; k <= n; k++) {
      unsigned cc = s[i + k];
      if ((cc & 0xC0) != 0x80)
        return 0;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF))
      return 0;
    i += n + 1;
  }
  return 1;
}

int linli_utf8_valid(const char *s, size_t len) {
  return s != NULL && utf8_valid((const unsigned char *)s, len);
}

/* ------------------------------------------------------------------------ */
/* JSON -> protobuf                                                          */
/* ------------------------------------------------------------------------ */

typedef struct conv {
  char *err;        /* caller's buffer (may be NULL) */
  size_t errlen;
  char path[512];   /* "placed.lines[2].quantity" of the value at hand */
  size_t plen;
  int bignums;      /* strings with BIGNUM_PREFIX are integers (text input) */
} conv_t;

/* Appends a path component; returns the length to restore afterwards. A
 * path too long for the buffer is cut (the error stays readable). */
static size_t path_push_name(conv_t *c, const char *name, size_t name_len) {
  size_t saved = c->plen;
  size_t room = sizeof(c->path) - c->plen;
  if (room <= 1)
    return saved;
  if (c->plen > 0) {
    c->path[c->plen++] = '.';
    room--;
  }
  /* Names come from the input when they are unknown: show them printable
   * and short, never raw bytes. */
  size_t max = name_len < 64 ? name_len : 64;
  for (size_t i = 0; i < max && room > 1; i++, room--) {
    unsigned char ch = (unsigned char)name[i];
    c->path[c->plen++] = (ch < 0x20 || ch >= 0x7F) ? '?' : (char)ch;
  }
  if (name_len > max && room > 4) {
    memcpy(c->path + c->plen, "...", 3);
    c->plen += 3;
  }
  c->path[c->plen] = '\0';
  return saved;
}

static size_t path_push_index(conv_t *c, size_t index) {
  size_t saved = c->plen;
  size_t room = sizeof(c->path) - c->plen;
  int n = snprintf(c->path + c->plen, room, "[%zu]", index);
  if (n > 0 && (size_t)n < room)
    c->plen += (size_t)n;
  else
    c->path[c->plen] = '\0';
  return saved;
}

static void path_pop(conv_t *c, size_t saved) {
  c->plen = saved;
  c->path[saved] = '\0';
}

__attribute__((format(printf, 2, 3))) static int fail(conv_t *c,
                                                      const char *fmt, ...) {
  if (c->err != NULL && c->errlen > 0) {
    char reason[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    if (c->plen > 0)
      snprintf(c->err, c->errlen, "%s: %s", c->path, reason);
    else
      snprintf(c->err, c->errlen, "%s", reason);
  }
  return LINLI_ERR_INVALID;
}

static int fail_nomem(conv_t *c) {
  if (c->err != NULL && c->errlen > 0)
    snprintf(c->err, c->errlen, "out of memory");
  return LINLI_ERR_NOMEM;
}

static int is_bignum(const conv_t *c, const json_t *v) {
  return c->bignums && json_is_string(v) &&
         json_string_length(v) > BIGNUM_PREFIX_LEN &&
         memcmp(json_string_value(v), BIGNUM_PREFIX, BIGNUM_PREFIX_LEN) == 0;
}

/* The JSON type of v as an error message names it. */
static const char *json_kind(const conv_t *c, const json_t *v) {
  switch (json_typeof(v)) {
  case JSON_OBJECT: return "object";
  case JSON_ARRAY: return "array";
  case JSON_STRING: return is_bignum(c, v) ? "number" : "string";
  case JSON_INTEGER:
  case JSON_REAL: return "number";
  case JSON_TRUE:
  case JSON_FALSE: return "boolean";
  case JSON_NULL: return "null";
  }
  return "?";
}

/* A JSON string's text, checked: no NUL inside (protobuf-c strings end at
 * the first NUL) and valid UTF-8 (a json_t built by hand may hold anything). */
static int get_text(conv_t *c, const json_t *v, const char **s, size_t *len) {
  *s = json_string_value(v);
  *len = json_string_length(v);
  if (memchr(*s, '\0', *len) != NULL)
    return fail(c, "string contains a NUL character");
  if (!utf8_valid((const unsigned char *)*s, *len))
    return fail(c, "string is not valid UTF-8");
  return LINLI_OK;
}

/* An integer as sign and magnitude, so that the whole int64 and uint64
 * ranges fit one representation. */
typedef struct wide {
  int neg;
  uint64_t mag;
} wide_t;

/* Decimal digits with an optional leading '-' (nothing else) -> *w. */
static int parse_decimal(const char *s, size_t len, wide_t *w) {
  size_t i = 0;
  w->neg = 0;
  w->mag = 0;
  if (len > 0 && s[0] == '-') {
    w->neg = 1;
    i = 1;
  }
  if (i == len)
    return -1;
  for (; i < len; i++) {
    if (s[i] < '0' || s[i] > '9')
      return -1;
    unsigned d = (unsigned)(s[i] - '0');
    if (w->mag > (UINT64_MAX - d) / 10)
      return -2; /* beyond 64 bits */
    w->mag = w->mag * 10 + d;
  }
  return 0;
}

/*
 * Reads an integer field value: a JSON integer, a real without fraction
 * (exact up to 2^53), and for 64-bit fields a string of decimal digits.
 */
static int get_integer(conv_t *c, const json_t *v, ProtobufCType type,
                       int allow_string, wide_t *w) {
  if (json_is_integer(v)) {
    json_int_t i = json_integer_value(v);
    w->neg = i < 0;
    w->mag = i < 0 ? (uint64_t)(-(i + 1)) + 1 : (uint64_t)i;
  } else if (json_is_real(v)) {
    double d = json_real_value(v);
    if (!isfinite(d) || d != floor(d))
      return fail(c, "expected an integer, got a fraction");
    if (fabs(d) >= MAX_EXACT_REAL)
      return fail(c, "number too large to be exact as a real: write it as "
                     "an integer or a string");
    w->neg = d < 0;
    w->mag = (uint64_t)fabs(d);
  } else if (is_bignum(c, v)) {
    const char *s = json_string_value(v) + BIGNUM_PREFIX_LEN;
    if (parse_decimal(s, json_string_length(v) - BIGNUM_PREFIX_LEN, w) != 0)
      return fail(c, "out of range for %s", type_name(type));
  } else if (allow_string && json_is_string(v)) {
    int rc = parse_decimal(json_string_value(v), json_string_length(v), w);
    if (rc == -2)
      return fail(c, "out of range for %s", type_name(type));
    if (rc != 0)
      return fail(c, "expected an integer, got a string that is not one");
  } else {
    return fail(c, "expected an integer, got %s", json_kind(c, v));
  }
  return LINLI_OK;
}

static int in_signed_range(const wide_t *w, uint64_t max_pos) {
  return w->neg ? w->mag <= max_pos + 1 : w->mag <= max_pos;
}

static int in_unsigned_range(const wide_t *w, uint64_t max) {
  return w->neg ? w->mag == 0 : w->mag <= max;
}

static int64_t wide_to_i64(const wide_t *w) {
  /* -(mag - 1) - 1 avoids overflow at INT64_MIN. */
  return w->neg ? -(int64_t)(w->mag - 1) - 1 : (int64_t)w->mag;
}

static int get_enum(conv_t *c, const ProtobufCFieldDescriptor *f,
                    const json_t *v, int32_t *out) {
  const ProtobufCEnumDescriptor *ed = f->descriptor;
  const ProtobufCEnumValue *ev = NULL;
  if (json_is_string(v) && !is_bignum(c, v)) {
    const char *s;
    size_t len;
    int rc = get_text(c, v, &s, &len);
    if (rc != LINLI_OK)
      return rc;
    ev = protobuf_c_enum_descriptor_get_value_by_name(ed, s);
    if (ev == NULL) {
      /* Show the name printable and short: it comes from the input. */
      char shown[48];
      size_t n = 0;
      for (size_t i = 0; i < len && n + 1 < sizeof(shown); i++) {
        unsigned char ch = (unsigned char)s[i];
        shown[n++] = (ch < 0x20 || ch >= 0x7F) ? '?' : (char)ch;
      }
      shown[n] = '\0';
      return fail(c, "unknown value \"%s\" for enum %s", shown, ed->name);
    }
  } else if (json_is_number(v) || is_bignum(c, v)) {
    wide_t w = {0, 0};
    int rc = get_integer(c, v, PROTOBUF_C_TYPE_ENUM, 0, &w);
    if (rc != LINLI_OK)
      return rc;
    if (!in_signed_range(&w, INT32_MAX))
      return fail(c, "unknown value for enum %s", ed->name);
    int32_t n = (int32_t)wide_to_i64(&w);
    ev = protobuf_c_enum_descriptor_get_value(ed, n);
    if (ev == NULL)
      return fail(c, "unknown value %" PRId32 " for enum %s", n, ed->name);
  } else {
    return fail(c, "expected an enum name or number, got %s", json_kind(c, v));
  }
  *out = ev->value;
  return LINLI_OK;
}

static int get_floating(conv_t *c, const json_t *v, ProtobufCType type,
                        double *out) {
  double d;
  if (json_is_number(v)) {
    d = json_number_value(v);
  } else if (is_bignum(c, v)) {
    d = strtod(json_string_value(v) + BIGNUM_PREFIX_LEN, NULL);
  } else if (json_is_string(v)) {
    /* The proto3 JSON spelling of the values JSON numbers cannot hold. */
    const char *s = json_string_value(v);
    if (strcmp(s, "NaN") == 0)
      d = NAN;
    else if (strcmp(s, "Infinity") == 0)
      d = INFINITY;
    else if (strcmp(s, "-Infinity") == 0)
      d = -INFINITY;
    else
      return fail(c, "expected a number, got a string other than NaN, "
                     "Infinity, -Infinity");
  } else {
    return fail(c, "expected a number, got %s", json_kind(c, v));
  }
  /* From FLT_MAX + half an ulp on, a double rounds to a float infinity;
   * below it rounds to FLT_MAX (which we write as 3.4028235e38). */
  if (type == PROTOBUF_C_TYPE_FLOAT && isfinite(d) &&
      fabs(d) >= FLOAT_ROUNDS_TO_INF)
    return fail(c, "out of range for float");
  *out = d;
  return LINLI_OK;
}

static int get_bytes(conv_t *c, const json_t *v, ProtobufCBinaryData *out) {
  static const int variants[] = {
      sodium_base64_VARIANT_ORIGINAL, sodium_base64_VARIANT_ORIGINAL_NO_PADDING,
      sodium_base64_VARIANT_URLSAFE, sodium_base64_VARIANT_URLSAFE_NO_PADDING};
  if (!json_is_string(v) || is_bignum(c, v))
    return fail(c, "expected a base64 string, got %s", json_kind(c, v));
  const char *s = json_string_value(v);
  size_t len = json_string_length(v);
  out->len = 0;
  out->data = NULL;
  if (len == 0)
    return LINLI_OK;
  size_t max = len / 4 * 3 + 3;
  unsigned char *buf = malloc(max);
  if (buf == NULL)
    return fail_nomem(c);
  /* Standard base64 is what we write; URL-safe and unpadded forms are
   * accepted as proto3's JSON mapping does. */
  for (size_t i = 0; i < sizeof(variants) / sizeof(variants[0]); i++) {
    size_t n = 0;
    if (sodium_base642bin(buf, max, s, len, NULL, &n, NULL, variants[i]) == 0) {
      if (n == 0) {
        free(buf);
        return LINLI_OK;
      }
      out->len = n;
      out->data = buf;
      return LINLI_OK;
    }
  }
  free(buf);
  return fail(c, "invalid base64");
}

static int msg_from_json(conv_t *c, const ProtobufCMessageDescriptor *desc,
                         const json_t *in, int depth, ProtobufCMessage **out);

/*
 * Converts one value (a singular field or one element of a repeated field)
 * into slot, which has the layout of the field's type. slot is only written
 * on success, so the message stays freeable when this fails.
 */
static int value_from_json(conv_t *c, const ProtobufCFieldDescriptor *f,
                           const json_t *v, int depth, void *slot) {
  wide_t w = {0, 0};
  int rc;
  switch (f->type) {
  case PROTOBUF_C_TYPE_INT32:
  case PROTOBUF_C_TYPE_SINT32:
  case PROTOBUF_C_TYPE_SFIXED32:
    rc = get_integer(c, v, f->type, 0, &w);
    if (rc != LINLI_OK)
      return rc;
    if (!in_signed_range(&w, INT32_MAX))
      return fail(c, "out of range for %s", type_name(f->type));
    *(int32_t *)slot = (int32_t)wide_to_i64(&w);
    return LINLI_OK;
  case PROTOBUF_C_TYPE_UINT32:
  case PROTOBUF_C_TYPE_FIXED32:
    rc = get_integer(c, v, f->type, 0, &w);
    if (rc != LINLI_OK)
      return rc;
    if (!in_unsigned_range(&w, UINT32_MAX))
      return fail(c, "out of range for %s", type_name(f->type));
    *(uint32_t *)slot = (uint32_t)w.mag;
    return LINLI_OK;
  case PROTOBUF_C_TYPE_INT64:
  case PROTOBUF_C_TYPE_SINT64:
  case PROTOBUF_C_TYPE_SFIXED64:
    rc = get_integer(c, v, f->type, 1, &w);
    if (rc != LINLI_OK)
      return rc;
    if (!in_signed_range(&w, INT64_MAX))
      return fail(c, "out of range for %s", type_name(f->type));
    *(int64_t *)slot = wide_to_i64(&w);
    return LINLI_OK;
  case PROTOBUF_C_TYPE_UINT64:
  case PROTOBUF_C_TYPE_FIXED64:
    rc = get_integer(c, v, f->type, 1, &w);
    if (rc != LINLI_OK)
      return rc;
    if (!in_unsigned_range(&w, UINT64_MAX))
      return fail(c, "out of range for %s", type_name(f->type));
    *(uint64_t *)slot = w.mag;
    return LINLI_OK;
  case PROTOBUF_C_TYPE_FLOAT: {
    double d = 0;
    rc = get_floating(c, v, f->type, &d);
    if (rc == LINLI_OK)
      *(float *)slot = (float)d;
    return rc;
  }
  case PROTOBUF_C_TYPE_DOUBLE:
    return get_floating(c, v, f->type, (double *)slot);
  case PROTOBUF_C_TYPE_BOOL:
    if (!json_is_boolean(v))
      return fail(c, "expected true or false, got %s", json_kind(c, v));
    *(protobuf_c_boolean *)slot = json_is_true(v) ? 1 : 0;
    return LINLI_OK;
  case PROTOBUF_C_TYPE_ENUM: {
    int32_t e = 0;
    rc = get_enum(c, f, v, &e);
    if (rc == LINLI_OK)
      *(int *)slot = e;
    return rc;
  }
  case PROTOBUF_C_TYPE_STRING: {
    const char *s;
    size_t len;
    if (!json_is_string(v) || is_bignum(c, v))
      return fail(c, "expected a string, got %s", json_kind(c, v));
    rc = get_text(c, v, &s, &len);
    if (rc != LINLI_OK)
      return rc;
    /* Always a heap copy, also for "": free_unpacked frees every string
     * that is not the descriptor's default pointer. */
    char *copy = malloc(len + 1);
    if (copy == NULL)
      return fail_nomem(c);
    memcpy(copy, s, len + 1);
    *(char **)slot = copy;
    return LINLI_OK;
  }
  case PROTOBUF_C_TYPE_BYTES: {
    ProtobufCBinaryData bd = {0, NULL};
    rc = get_bytes(c, v, &bd);
    if (rc == LINLI_OK)
      *(ProtobufCBinaryData *)slot = bd;
    return rc;
  }
  case PROTOBUF_C_TYPE_MESSAGE: {
    ProtobufCMessage *sub = NULL;
    rc = msg_from_json(c, f->descriptor, v, depth, &sub);
    if (rc == LINLI_OK)
      *(ProtobufCMessage **)slot = sub;
    return rc;
  }
  }
  return fail(c, "unsupported field type");
}

static int repeated_from_json(conv_t *c, ProtobufCMessage *msg,
                              const ProtobufCFieldDescriptor *f,
                              const json_t *v, int depth) {
  if (!json_is_array(v))
    return fail(c, "expected an array, got %s", json_kind(c, v));
  if (depth + 1 > LINLI_JSON_MAX_DEPTH)
    return fail(c, "nesting deeper than %d", LINLI_JSON_MAX_DEPTH);
  size_t n = json_array_size(v);
  if (n == 0)
    return LINLI_OK;
  size_t sz = elt_size(f->type);
  char *arr = calloc(n, sz);
  if (arr == NULL)
    return fail_nomem(c);
  /* The array belongs to the message from here on; the count grows with
   * each converted element, so free_unpacked frees exactly those. */
  size_t *count = quantifier_ptr(msg, f);
  *(void **)member_ptr(msg, f) = arr;
  *count = 0;
  for (size_t i = 0; i < n; i++) {
    const json_t *e = json_array_get(v, i);
    size_t saved = path_push_index(c, i);
    if (json_is_null(e))
      return fail(c, "null is not allowed in an array");
    /* Elements sit inside the array: a message element is two levels
     * below the object holding the field. */
    int rc = value_from_json(c, f, e, depth + 2, arr + i * sz);
    if (rc != LINLI_OK)
      return rc;
    path_pop(c, saved);
    (*count)++;
  }
  return LINLI_OK;
}

/* The oneof member (sharing f's case field) whose number is id. */
static const ProtobufCFieldDescriptor *
oneof_member(const ProtobufCMessageDescriptor *desc,
             const ProtobufCFieldDescriptor *f, uint32_t id) {
  for (unsigned i = 0; i < desc->n_fields; i++) {
    const ProtobufCFieldDescriptor *o = &desc->fields[i];
    if (is_oneof(o) && o->quantifier_offset == f->quantifier_offset &&
        o->id == id)
      return o;
  }
  return NULL;
}

static int field_from_json(conv_t *c, ProtobufCMessage *msg,
                           const ProtobufCFieldDescriptor *f, const json_t *v,
                           int depth) {
  if (f->label == PROTOBUF_C_LABEL_REPEATED)
    return repeated_from_json(c, msg, f, v, depth);
  /* Message values open one more level of nesting. */
  int sub_depth = depth + 1;
  if (is_oneof(f)) {
    uint32_t *which = quantifier_ptr(msg, f);
    if (*which != 0) {
      const ProtobufCFieldDescriptor *other = oneof_member(msg->descriptor, f,
                                                           *which);
      return fail(c, "cannot be set together with '%s' (same oneof)",
                  other != NULL ? other->name : "?");
    }
    int rc = value_from_json(c, f, v, sub_depth, member_ptr(msg, f));
    if (rc == LINLI_OK)
      *which = f->id;
    return rc;
  }
  int rc = value_from_json(c, f, v, sub_depth, member_ptr(msg, f));
  if (rc != LINLI_OK)
    return rc;
  /* proto2 optional scalars carry a has_ flag; strings and messages are
   * present by their pointer. */
  if (f->label == PROTOBUF_C_LABEL_OPTIONAL &&
      f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE)
    *(protobuf_c_boolean *)quantifier_ptr(msg, f) = 1;
  return LINLI_OK;
}

static int msg_from_json(conv_t *c, const ProtobufCMessageDescriptor *desc,
                         const json_t *in, int depth, ProtobufCMessage **out) {
  *out = NULL;
  if (!json_is_object(in))
    return fail(c, "expected an object, got %s", json_kind(c, in));
  if (depth > LINLI_JSON_MAX_DEPTH)
    return fail(c, "nesting deeper than %d", LINLI_JSON_MAX_DEPTH);
  ProtobufCMessage *msg = calloc(1, desc->sizeof_message);
  if (msg == NULL)
    return fail_nomem(c);
  protobuf_c_message_init(desc, msg);

  int rc = LINLI_OK;
  const char *key;
  size_t key_len;
  json_t *v;
  json_object_keylen_foreach((json_t *)in, key, key_len, v) {
    size_t saved = path_push_name(c, key, key_len);
    const ProtobufCFieldDescriptor *f =
        strlen(key) == key_len
            ? protobuf_c_message_descriptor_get_field_by_name(desc, key)
            : NULL;
    if (f == NULL) {
      rc = fail(c, "unknown field");
      goto err;
    }
    if (!json_is_null(v)) { /* null: the field is absent */
      rc = field_from_json(c, msg, f, v, depth);
      if (rc != LINLI_OK)
        goto err;
    }
    path_pop(c, saved);
  }
  /* Like protobuf_c_message_unpack: a proto2 required field without a
   * default must be given. */
  for (unsigned i = 0; i < desc->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = &desc->fields[i];
    if (f->label == PROTOBUF_C_LABEL_REQUIRED && f->default_value == NULL) {
      const json_t *fv = json_object_get(in, f->name);
      if (fv == NULL || json_is_null(fv)) {
        size_t saved = path_push_name(c, f->name, strlen(f->name));
        rc = fail(c, "missing required field");
        path_pop(c, saved);
        goto err;
      }
    }
  }
  *out = msg;
  return LINLI_OK;

err:
  protobuf_c_message_free_unpacked(msg, NULL);
  return rc;
}

int linli_json_to_pb(const ProtobufCMessageDescriptor *desc, const json_t *in,
                     ProtobufCMessage **out, char *err, size_t errlen) {
  conv_t c = {.err = err, .errlen = errlen};
  if (err != NULL && errlen > 0)
    err[0] = '\0';
  if (out == NULL)
    return LINLI_ERR_INVALID;
  *out = NULL;
  if (desc == NULL || in == NULL)
    return fail(&c, "no descriptor or no JSON value");
  return msg_from_json(&c, desc, in, 1, out);
}

/* ------------------------------------------------------------------------ */
/* JSON text                                                                 */
/* ------------------------------------------------------------------------ */

/* Does the unsigned decimal s[0..n) exceed limit (same digits, no zeros
 * in front)? */
static int digits_exceed(const char *s, size_t n, const char *limit) {
  size_t ln = strlen(limit);
  while (n > 1 && *s == '0') {
    s++;
    n--;
  }
  if (n != ln)
    return n > ln;
  return memcmp(s, limit, n) > 0;
}

/*
 * jansson holds integers as long long, so an integer between INT64_MAX and
 * UINT64_MAX (valid for uint64 fields) fails to parse. Such integers are
 * rewritten into the string "\u0000U<digits>" that only the converter
 * reads back as a number; a NUL cannot otherwise occur in a string because
 * the rewrite is refused when the text itself contains "\u0000".
 * Called twice: with out == NULL to count, then to write. ends[] receives
 * where each rewritten token ends in the new text (to map parse error
 * positions back). Returns the number of rewrites, or -1 if refused.
 */
static long rewrite_big_integers(const char *text, size_t len, char *out,
                                 size_t *ends) {
  static const char open[] = "\"\\u0000U";
  size_t i = 0, o = 0;
  long count = 0;
  int in_str = 0;
  while (i < len) {
    char ch = text[i];
    if (in_str) {
      if (ch == '\\' && i + 1 < len) {
        if (text[i + 1] == 'u' && i + 5 < len &&
            memcmp(text + i + 2, "0000", 4) == 0)
          return -1;
        if (out != NULL) {
          out[o] = ch;
          out[o + 1] = text[i + 1];
        }
        o += 2;
        i += 2;
        continue;
      }
      if (ch == '"')
        in_str = 0;
    } else if (ch == '"') {
      in_str = 1;
    } else if (ch == '-' || (ch >= '0' && ch <= '9')) {
      size_t start = i, k = i + (ch == '-');
      while (k < len && text[k] >= '0' && text[k] <= '9')
        k++;
      size_t end = k;
      int integer = 1;
      while (end < len &&
             (text[end] == '.' || text[end] == 'e' || text[end] == 'E' ||
              text[end] == '+' || text[end] == '-' ||
              (text[end] >= '0' && text[end] <= '9'))) {
        integer = 0;
        end++;
      }
      size_t ndig = k - start - (ch == '-');
      if (integer && ch != '-' && ndig > 0 &&
          digits_exceed(text + start, ndig, "9223372036854775807") &&
          !digits_exceed(text + start, ndig, "18446744073709551615")) {
        if (out != NULL) {
          memcpy(out + o, open, sizeof(open) - 1);
          memcpy(out + o + sizeof(open) - 1, text + start, ndig);
          out[o + sizeof(open) - 1 + ndig] = '"';
        }
        o += sizeof(open) - 1 + ndig + 1;
        if (ends != NULL)
          ends[count] = o;
        count++;
      } else {
        if (out != NULL)
          memcpy(out + o, text + start, end - start);
        o += end - start;
      }
      i = end;
      continue;
    }
    if (out != NULL)
      out[o] = ch;
    o++;
    i++;
  }
  return count;
}

/* "line L, column C: reason" for a jansson parse error at byte pos of
 * text (columns count characters, as jansson does). */
static void parse_error(char *err, size_t errlen, const char *text, size_t pos,
                        const char *reason) {
  int line = 1, col = 0;
  for (size_t i = 0; i < pos; i++) {
    unsigned char ch = (unsigned char)text[i];
    if (ch == '\n') {
      line++;
      col = 0;
    } else if ((ch & 0xC0) != 0x80) {
      col++;
    }
  }
  if (err != NULL && errlen > 0)
    snprintf(err, errlen, "line %d, column %d: %s", line, col, reason);
}

int linli_json_text_to_pb(const ProtobufCMessageDescriptor *desc,
                          const char *text, size_t len, ProtobufCMessage **out,
                          char *err, size_t errlen) {
  if (err != NULL && errlen > 0)
    err[0] = '\0';
  if (out == NULL)
    return LINLI_ERR_INVALID;
  *out = NULL;
  if (desc == NULL || text == NULL) {
    if (err != NULL && errlen > 0)
      snprintf(err, errlen, "no descriptor or no text");
    return LINLI_ERR_INVALID;
  }
  json_error_t jerr;
  json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
  if (root != NULL) {
    int rc = linli_json_to_pb(desc, root, out, err, errlen);
    json_decref(root);
    return rc;
  }
  if (json_error_code(&jerr) != json_error_numeric_overflow) {
    if (json_error_code(&jerr) == json_error_out_of_memory) {
      if (err != NULL && errlen > 0)
        snprintf(err, errlen, "out of memory");
      return LINLI_ERR_NOMEM;
    }
    if (err != NULL && errlen > 0)
      snprintf(err, errlen, "line %d, column %d: %s", jerr.line, jerr.column,
               jerr.text);
    return LINLI_ERR_INVALID;
  }

  /* An integer too big for jansson: maybe a uint64 beyond INT64_MAX. */
  long n = rewrite_big_integers(text, len, NULL, NULL);
  if (n <= 0) {
    if (err != NULL && errlen > 0)
      snprintf(err, errlen, "line %d, column %d: %s", jerr.line, jerr.column,
               jerr.text);
    return LINLI_ERR_INVALID;
  }
  size_t grown = len + (size_t)n * 9;
  char *buf = malloc(grown);
  size_t *ends = malloc((size_t)n * sizeof(*ends));
  if (buf == NULL || ends == NULL) {
    free(buf);
    free(ends);
    if (err != NULL && errlen > 0)
      snprintf(err, errlen, "out of memory");
    return LINLI_ERR_NOMEM;
  }
  rewrite_big_integers(text, len, buf, ends);
  root = json_loadb(buf, grown, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
  int rc;
  if (root == NULL) {
    /* Report the position in the caller's text, not in ours. */
    size_t pos = (size_t)jerr.position, shift = 0;
    for (long i = 0; i < n && ends[i] <= pos; i++)
      shift += 9;
    parse_error(err, errlen, text, pos - shift < len ? pos - shift : len,
                jerr.text);
    rc = json_error_code(&jerr) == json_error_out_of_memory ? LINLI_ERR_NOMEM
                                                            : LINLI_ERR_INVALID;
  } else {
    conv_t c = {.err = err, .errlen = errlen, .bignums = 1};
    rc = msg_from_json(&c, desc, root, 1, out);
    json_decref(root);
  }
  free(ends);
  free(buf);
  return rc;
}

/* ------------------------------------------------------------------------ */
/* protobuf -> JSON                                                          */
/* ------------------------------------------------------------------------ */

/* What writing a message collects on the way. */
typedef struct emit {
  int prec; /* significant digits the text needs for its reals to be exact */
} emit_t;

static int msg_to_json(emit_t *em, const ProtobufCMessage *msg, int depth,
                       json_t **out);

static json_t *string_to_json(const char *s) {
  if (s == NULL)
    s = "";
  return json_string_nocheck(s);
}

static json_t *int64_to_json(int64_t v) {
  char buf[32];
  snprintf(buf, sizeof(buf), "%" PRId64, v);
  return json_string_nocheck(buf);
}

static json_t *uint64_to_json(uint64_t v) {
  char buf[32];
  snprintf(buf, sizeof(buf), "%" PRIu64, v);
  return json_string_nocheck(buf);
}

/* The fewest significant digits (up to max) that read back as d, when
 * read as a float if as_float. */
static int shortest_digits(double d, int max, int as_float) {
  char buf[40];
  for (int p = 1; p < max; p++) {
    /* %.17g needs at most 24 bytes; a cut text would not read back, so it
     * is never taken (checked: -O0 cannot see that p <= 17). */
    int n = snprintf(buf, sizeof(buf), "%.*g", p, d);
    if (n < 0 || (size_t)n >= sizeof(buf))
      break;
    double back = strtod(buf, NULL);
    if (as_float ? (float)back == (float)d : back == d)
      return p;
  }
  return max;
}

/*
 * A float or double as JSON. jansson writes every real of a text with one
 * precision (17 digits by default, so 0.1 would read 0.10000000000000001);
 * em->prec collects the fewest digits that keep every real exact, for
 * linli_pb_to_json_text. A float is written as the shortest decimal that
 * reads back as the same float (0.1f as 0.1, not 0.10000000149011612).
 */
static json_t *real_to_json(emit_t *em, double d, int is_float) {
  if (isnan(d))
    return json_string_nocheck("NaN");
  if (isinf(d))
    return json_string_nocheck(d > 0 ? "Infinity" : "-Infinity");
  if (is_float) {
    char buf[40];
    snprintf(buf, sizeof(buf), "%.*g", shortest_digits(d, 9, 1), d);
    d = strtod(buf, NULL);
  }
  int p = shortest_digits(d, 17, 0);
  if (p > em->prec)
    em->prec = p;
  return json_real(d);
}

/* One value of field f stored at slot -> *out. */
static int value_to_json(emit_t *em, const ProtobufCFieldDescriptor *f,
                         const void *slot, int depth, json_t **out) {
  json_t *v = NULL;
  switch (f->type) {
  case PROTOBUF_C_TYPE_INT32:
  case PROTOBUF_C_TYPE_SINT32:
  case PROTOBUF_C_TYPE_SFIXED32:
    v = json_integer(*(const int32_t *)slot);
    break;
  case PROTOBUF_C_TYPE_UINT32:
  case PROTOBUF_C_TYPE_FIXED32:
    v = json_integer(*(const uint32_t *)slot);
    break;
  case PROTOBUF_C_TYPE_INT64:
  case PROTOBUF_C_TYPE_SINT64:
  case PROTOBUF_C_TYPE_SFIXED64:
    v = int64_to_json(*(const int64_t *)slot);
    break;
  case PROTOBUF_C_TYPE_UINT64:
  case PROTOBUF_C_TYPE_FIXED64:
    v = uint64_to_json(*(const uint64_t *)slot);
    break;
  case PROTOBUF_C_TYPE_FLOAT:
    v = real_to_json(em, *(const float *)slot, 1);
    break;
  case PROTOBUF_C_TYPE_DOUBLE:
    v = real_to_json(em, *(const double *)slot, 0);
    break;
  case PROTOBUF_C_TYPE_BOOL:
    v = json_boolean(*(const protobuf_c_boolean *)slot);
    break;
  case PROTOBUF_C_TYPE_ENUM: {
    int e = *(const int *)slot;
    const ProtobufCEnumValue *ev =
        protobuf_c_enum_descriptor_get_value(f->descriptor, e);
    /* A number this schema does not know (from a newer writer) stays a
     * number rather than being lost. */
    v = ev != NULL ? json_string_nocheck(ev->name) : json_integer(e);
    break;
  }
  case PROTOBUF_C_TYPE_STRING: {
    const char *s = *(char *const *)slot;
    if (s != NULL && !utf8_valid((const unsigned char *)s, strlen(s)))
      return LINLI_ERR_INVALID;
    v = string_to_json(s);
    break;
  }
  case PROTOBUF_C_TYPE_BYTES: {
    const ProtobufCBinaryData *bd = slot;
    if (bd->len == 0 || bd->data == NULL) {
      v = json_string_nocheck("");
      break;
    }
    size_t b64len =
        sodium_base64_ENCODED_LEN(bd->len, sodium_base64_VARIANT_ORIGINAL);
    char *b64 = malloc(b64len);
    if (b64 == NULL)
      return LINLI_ERR_NOMEM;
    sodium_bin2base64(b64, b64len, bd->data, bd->len,
                      sodium_base64_VARIANT_ORIGINAL);
    v = json_string_nocheck(b64);
    free(b64);
    break;
  }
  case PROTOBUF_C_TYPE_MESSAGE: {
    const ProtobufCMessage *sub = *(ProtobufCMessage *const *)slot;
    if (sub == NULL) /* packed as an empty message */
      v = json_object();
    else
      return msg_to_json(em, sub, depth, out);
    break;
  }
  }
  if (v == NULL)
    return LINLI_ERR_NOMEM;
  *out = v;
  return LINLI_OK;
}

/* Whether protobuf_c_message_pack() writes field f of msg. */
static int field_present(const ProtobufCMessage *msg,
                         const ProtobufCFieldDescriptor *f) {
  const void *m = member_ptr(msg, f);
  if (f->label == PROTOBUF_C_LABEL_REQUIRED)
    return 1;
  if (f->label == PROTOBUF_C_LABEL_REPEATED)
    return *(const size_t *)quantifier_ptr(msg, f) > 0;
  if (is_oneof(f) &&
      *(const uint32_t *)quantifier_ptr(msg, f) != f->id)
    return 0;
  if (is_oneof(f) || f->label == PROTOBUF_C_LABEL_OPTIONAL) {
    if (f->type == PROTOBUF_C_TYPE_STRING ||
        f->type == PROTOBUF_C_TYPE_MESSAGE) {
      const void *p = *(const void *const *)m;
      return p != NULL && p != f->default_value;
    }
    return is_oneof(f) || *(const protobuf_c_boolean *)quantifier_ptr(msg, f);
  }
  /* proto3 singular field: written unless at its zero value. */
  switch (f->type) {
  case PROTOBUF_C_TYPE_BOOL:
    return *(const protobuf_c_boolean *)m != 0;
  case PROTOBUF_C_TYPE_INT32:
  case PROTOBUF_C_TYPE_SINT32:
  case PROTOBUF_C_TYPE_SFIXED32:
  case PROTOBUF_C_TYPE_UINT32:
  case PROTOBUF_C_TYPE_FIXED32:
  case PROTOBUF_C_TYPE_ENUM:
    return *(const uint32_t *)m != 0;
  case PROTOBUF_C_TYPE_INT64:
  case PROTOBUF_C_TYPE_SINT64:
  case PROTOBUF_C_TYPE_SFIXED64:
  case PROTOBUF_C_TYPE_UINT64:
  case PROTOBUF_C_TYPE_FIXED64:
    return *(const uint64_t *)m != 0;
  case PROTOBUF_C_TYPE_FLOAT:
    return *(const float *)m != 0;
  case PROTOBUF_C_TYPE_DOUBLE:
    return *(const double *)m != 0;
  case PROTOBUF_C_TYPE_STRING: {
    const char *s = *(const char *const *)m;
    return s != NULL && s[0] != '\0';
  }
  case PROTOBUF_C_TYPE_BYTES:
    return ((const ProtobufCBinaryData *)m)->len != 0;
  case PROTOBUF_C_TYPE_MESSAGE:
    return *(const void *const *)m != NULL;
  }
  return 0;
}

static int field_to_json(emit_t *em, const ProtobufCMessage *msg,
                         const ProtobufCFieldDescriptor *f, int depth,
                         json_t **out) {
  if (f->label != PROTOBUF_C_LABEL_REPEATED)
    return value_to_json(em, f, member_ptr(msg, f), depth + 1, out);
  if (depth + 1 > LINLI_JSON_MAX_DEPTH)
    return LINLI_ERR_INVALID;
  size_t n = *(const size_t *)quantifier_ptr(msg, f);
  const char *arr = *(char *const *)member_ptr(msg, f);
  size_t sz = elt_size(f->type);
  json_t *a = json_array();
  if (a == NULL)
    return LINLI_ERR_NOMEM;
  for (size_t i = 0; i < n; i++) {
    json_t *e = NULL;
    int rc = value_to_json(em, f, arr + i * sz, depth + 2, &e);
    if (rc == LINLI_OK && json_array_append_new(a, e) != 0)
      rc = LINLI_ERR_NOMEM;
    if (rc != LINLI_OK) {
      json_decref(a);
      return rc;
    }
  }
  *out = a;
  return LINLI_OK;
}

static int msg_to_json(emit_t *em, const ProtobufCMessage *msg, int depth,
                       json_t **out) {
  if (depth > LINLI_JSON_MAX_DEPTH)
    return LINLI_ERR_INVALID;
  const ProtobufCMessageDescriptor *desc = msg->descriptor;
  json_t *obj = json_object();
  if (obj == NULL)
    return LINLI_ERR_NOMEM;
  for (unsigned i = 0; i < desc->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = &desc->fields[i];
    if (!field_present(msg, f))
      continue;
    json_t *v = NULL;
    int rc = field_to_json(em, msg, f, depth, &v);
    if (rc == LINLI_OK && json_object_set_new_nocheck(obj, f->name, v) != 0)
      rc = LINLI_ERR_NOMEM;
    if (rc != LINLI_OK) {
      json_decref(obj);
      return rc;
    }
  }
  *out = obj;
  return LINLI_OK;
}

static int pb_to_json(const ProtobufCMessage *msg, emit_t *em, json_t **out) {
  if (out == NULL)
    return LINLI_ERR_INVALID;
  *out = NULL;
  if (msg == NULL || msg->descriptor == NULL)
    return LINLI_ERR_INVALID;
  return msg_to_json(em, msg, 1, out);
}

int linli_pb_to_json(const ProtobufCMessage *msg, json_t **out) {
  emit_t em = {.prec = 1};
  return pb_to_json(msg, &em, out);
}

int linli_pb_to_json_text(const ProtobufCMessage *msg, char **out) {
  if (out == NULL)
    return LINLI_ERR_INVALID;
  *out = NULL;
  emit_t em = {.prec = 1};
  json_t *obj = NULL;
  int rc = pb_to_json(msg, &em, &obj);
  if (rc != LINLI_OK)
    return rc;
  char *text = json_dumps(obj, JSON_COMPACT | JSON_REAL_PRECISION(em.prec));
  json_decref(obj);
  if (text == NULL)
    return LINLI_ERR_NOMEM;
  *out = text;
  return LINLI_OK;
}
