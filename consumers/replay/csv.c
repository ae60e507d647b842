/*
 * csv.c - CSV output for `linli-replay export --format csv`.
 *
 * The header is the flattening of the envelopes' descriptors (so it is
 * known before the first row and the same for every run): the record's
 * coordinates, then one column per scalar leaf path ("meta.event_id",
 * "order_placed.pickup.pickup_point_id"). A repeated field is one column
 * holding its JSON array. A field of a oneof member that is not set is an
 * empty cell; a field at its proto3 default shows the default.
 *
 * Text from the records (keys, ids, reasons) is untrusted: a cell that a
 * spreadsheet would evaluate as a formula is neutralised (see cell()).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "linli/json.h"
#include "domain/schema.h"
#include "replay.h"

#define CSV_MAX_DEPTH 8

struct column {
  char *path;                        /* dotted path */
  const ProtobufCFieldDescriptor *leaf;
};

struct csv_columns {
  struct column *cols;
  size_t n, cap;
};

static int add_column(struct csv_columns *c, const char *path,
                      const ProtobufCFieldDescriptor *leaf) {
  for (size_t i = 0; i < c->n; i++)
    if (strcmp(c->cols[i].path, path) == 0)
      return 0;
  if (c->n == c->cap) {
    size_t cap = c->cap ? c->cap * 2 : 64;
    struct column *g = realloc(c->cols, cap * sizeof *g);
    if (!g)
      return -1;
    c->cols = g;
    c->cap = cap;
  }
  c->cols[c->n].path = strdup(path);
  if (!c->cols[c->n].path)
    return -1;
  c->cols[c->n].leaf = leaf;
  c->n++;
  return 0;
}

static int flatten(struct csv_columns *c, const ProtobufCMessageDescriptor *d,
                   const char *prefix, int depth) {
  for (unsigned i = 0; i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = &d->fields[i];
    char path[512];
    /* Descriptor paths are short; one that is not would be a schema bug,
     * reported rather than cut into a wrong column name. */
    int len = snprintf(path, sizeof path, "%s%s%s", prefix,
                       prefix[0] ? "." : "", f->name);
    if (len < 0 || (size_t)len >= sizeof path)
      return -1;
    if (f->type == PROTOBUF_C_TYPE_MESSAGE &&
        f->label != PROTOBUF_C_LABEL_REPEATED && depth < CSV_MAX_DEPTH) {
      if (flatten(c, f->descriptor, path, depth + 1) != 0)
        return -1;
    } else if (add_column(c, path, f) != 0) {
      return -1;
    }
  }
  return 0;
}

int csv_columns_new(const char *const *topics, int ntopics,
                    struct csv_columns **out) {
  struct csv_columns *c = calloc(1, sizeof *c);
  if (!c)
    return -1;
  for (int t = 0; t < ntopics; t++) {
    const linli_topic_schema_t *ts = linli_schema_topic(topics[t]);
    if (ts && ts->envelope && flatten(c, ts->envelope, "", 0) != 0) {
      csv_columns_free(c);
      return -1;
    }
  }
  *out = c;
  return 0;
}

void csv_columns_free(struct csv_columns *c) {
  if (!c)
    return;
  for (size_t i = 0; i < c->n; i++)
    free(c->cols[i].path);
  free(c->cols);
  free(c);
}

/* A text cell that a spreadsheet would read as a formula (or, after a
 * leading tab or CR, reach one): = + - @ start a formula in Excel,
 * LibreOffice and Google Sheets. Such a cell gets a leading apostrophe
 * (OWASP's advice for CSV injection), which spreadsheets show as text. */
static int formula_start(const char *s, size_t len) {
  return len > 0 && (s[0] == '=' || s[0] == '+' || s[0] == '-' ||
                     s[0] == '@' || s[0] == '\t' || s[0] == '\r');
}

/* One cell of text taken from the data (never a number this file
 * formats): quoted when it holds a separator, neutralised when it would
 * start a formula. */
static void cell(FILE *out, const char *s, size_t len) {
  int neutralise = formula_start(s, len);
  int quote = neutralise;
  for (size_t i = 0; i < len; i++)
    if (s[i] == ',' || s[i] == '"' || s[i] == '\n' || s[i] == '\r')
      quote = 1;
  if (!quote) {
    fwrite(s, 1, len, out);
    return;
  }
  fputc('"', out);
  if (neutralise)
    fputc('\'', out);
  for (size_t i = 0; i < len; i++) {
    if (s[i] == '"')
      fputc('"', out);
    fputc(s[i], out);
  }
  fputc('"', out);
}

static void cell_str(FILE *out, const char *s) { cell(out, s, strlen(s)); }

void csv_write_header(FILE *out, const struct csv_columns *c) {
  fputs("topic,partition,offset,timestamp,key,type,error", out);
  for (size_t i = 0; i < c->n; i++) {
    fputc(',', out);
    cell_str(out, c->cols[i].path);
  }
  fputc('\n', out);
}

static void default_cell(FILE *out, const ProtobufCFieldDescriptor *f) {
  if (f->label == PROTOBUF_C_LABEL_REPEATED) {
    fputs("[]", out);
    return;
  }
  switch (f->type) {
  case PROTOBUF_C_TYPE_STRING:
  case PROTOBUF_C_TYPE_BYTES:
  case PROTOBUF_C_TYPE_MESSAGE:
    break;
  case PROTOBUF_C_TYPE_BOOL:
    fputs("false", out);
    break;
  case PROTOBUF_C_TYPE_ENUM: {
    const ProtobufCEnumDescriptor *e = f->descriptor;
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(e, 0);
    cell_str(out, v ? v->name : "0");
    break;
  }
  default:
    fputc('0', out);
    break;
  }
}

/* A scalar whose JSON form is a number or a numeric string. */
static int leaf_is_number(const ProtobufCFieldDescriptor *f) {
  if (f->label == PROTOBUF_C_LABEL_REPEATED)
    return 0;
  switch (f->type) {
  case PROTOBUF_C_TYPE_STRING:
  case PROTOBUF_C_TYPE_BYTES:
  case PROTOBUF_C_TYPE_MESSAGE:
  case PROTOBUF_C_TYPE_ENUM:
  case PROTOBUF_C_TYPE_BOOL:
    return 0;
  default:
    return 1;
  }
}

/* Walk a dotted path through a JSON object; *parent_present tells whether
 * the object holding the leaf exists (so a missing leaf is a default). */
static json_t *walk(json_t *root, const char *path, int *parent_present) {
  char buf[512];
  snprintf(buf, sizeof buf, "%s", path);
  json_t *cur = root;
  char *save = NULL;
  char *seg = strtok_r(buf, ".", &save);
  while (seg) {
    char *next = strtok_r(NULL, ".", &save);
    json_t *child = json_is_object(cur) ? json_object_get(cur, seg) : NULL;
    if (!next) {
      *parent_present = json_is_object(cur);
      return child;
    }
    cur = child;
    if (!cur) {
      *parent_present = 0;
      return NULL;
    }
    seg = next;
  }
  *parent_present = 0;
  return NULL;
}

void csv_write_row(FILE *out, const struct csv_columns *c,
                   const rd_kafka_message_t *m, const char *type,
                   const ProtobufCMessage *event, const char *err) {
  rd_kafka_timestamp_type_t tt;
  char num[64];
  cell_str(out, rd_kafka_topic_name(m->rkt));
  snprintf(num, sizeof num, ",%d,%lld,%lld,", (int)m->partition,
           (long long)m->offset,
           (long long)rd_kafka_message_timestamp(m, &tt));
  fputs(num, out);
  if (m->key)
    cell(out, m->key, m->key_len);
  fputc(',', out);
  cell_str(out, type ? type : "");
  fputc(',', out);
  cell_str(out, err ? err : "");
  json_t *root = NULL;
  if (event)
    linli_pb_to_json(event, &root);
  /* The top-level object is the envelope, so a oneof member that is not
   * set is simply absent: its columns stay empty. */
  for (size_t i = 0; i < c->n; i++) {
    fputc(',', out);
    if (!root)
      continue;
    int parent = 0;
    json_t *v = walk(root, c->cols[i].path, &parent);
    if (!v) {
      /* Present parent: the field is at its default. Top-level fields of
       * the envelope are the oneof members and meta: leave them empty. */
      if (parent && strchr(c->cols[i].path, '.'))
        default_cell(out, c->cols[i].leaf);
      continue;
    }
    if (json_is_string(v) && leaf_is_number(c->cols[i].leaf)) {
      /* A 64-bit integer (a JSON string in proto3 JSON), NaN or Infinity:
       * written by linli_pb_to_json, not text from the data, so "-5"
       * stays a negative amount. */
      fwrite(json_string_value(v), 1, json_string_length(v), out);
    } else if (json_is_string(v)) {
      cell(out, json_string_value(v), json_string_length(v));
    } else {
      char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
      if (s) {
        cell_str(out, s);
        free(s);
      }
    }
  }
  fputc('\n', out);
  json_decref(root);
}
