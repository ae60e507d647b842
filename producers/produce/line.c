/*
 * line.c - turns one line of linli-produce's input into an event: JSON ->
 * the topic's envelope (through libcommon's descriptor-driven JSON layer),
 * the message key checked or derived from the topic's key field, and the
 * Meta header completed. Every error names the field as the line wrote it,
 * so that an operator can fix the line without reading the schema.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "linli/error.h"
#include "linli/ids.h"
#include "linli/json.h"
#include "produce.h"

#define ID_RULE "not a valid id (1-64 characters from [A-Za-z0-9_-])"

__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t errlen,
                                                      const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
  return LINLI_ERR_INVALID;
}

static int fail_nomem(char *err, size_t errlen) {
  snprintf(err, errlen, "out of memory");
  return LINLI_ERR_NOMEM;
}

/* Text that came from the input, made printable and short for a message. */
static void shown(const char *s, size_t len, char *buf, size_t buflen) {
  size_t n = 0;
  for (size_t i = 0; i < len && n + 4 < buflen; i++) {
    unsigned char ch = (unsigned char)s[i];
    buf[n++] = (ch < 0x20 || ch >= 0x7F || ch == '"') ? '?' : (char)ch;
  }
  if (n + 4 >= buflen && len > n) {
    memcpy(buf + n, "...", 3);
    n += 3;
  }
  buf[n] = '\0';
}

static const char *json_kind(const json_t *v) {
  switch (json_typeof(v)) {
  case JSON_OBJECT: return "object";
  case JSON_ARRAY: return "array";
  case JSON_STRING: return "string";
  case JSON_INTEGER:
  case JSON_REAL: return "number";
  case JSON_TRUE:
  case JSON_FALSE: return "boolean";
  case JSON_NULL: return "null";
  }
  return "?";
}

/* ------------------------------------------------------ envelope access */

static void *field_slot(ProtobufCMessage *m, const ProtobufCFieldDescriptor *f) {
  return (char *)m + f->offset;
}

static int is_message_member(const ProtobufCFieldDescriptor *f) {
  return (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) != 0 &&
         f->type == PROTOBUF_C_TYPE_MESSAGE;
}

const ProtobufCFieldDescriptor *
produce_member_field(const linli_topic_schema_t *topic,
                     const ProtobufCMessageDescriptor *type) {
  if (topic == NULL || topic->envelope == NULL || type == NULL)
    return NULL;
  const ProtobufCMessageDescriptor *d = topic->envelope;
  for (unsigned i = 0; i < d->n_fields; i++)
    if (is_message_member(&d->fields[i]) && d->fields[i].descriptor == type)
      return &d->fields[i];
  return NULL;
}

/* The oneof member set in env (and its message in *member), or NULL. */
static const ProtobufCFieldDescriptor *member_set(ProtobufCMessage *env,
                                                  ProtobufCMessage **member) {
  const ProtobufCMessageDescriptor *d = env->descriptor;
  for (unsigned i = 0; i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = &d->fields[i];
    if (!is_message_member(f))
      continue;
    uint32_t which;
    memcpy(&which, (char *)env + f->quantifier_offset, sizeof which);
    ProtobufCMessage *m;
    memcpy(&m, field_slot(env, f), sizeof m);
    if (which == f->id && m != NULL) {
      *member = m;
      return f;
    }
  }
  return NULL;
}

/* "order_placed, order_paid, ..." for an error that asks for one of them. */
static void member_names(const ProtobufCMessageDescriptor *d, char *buf,
                         size_t len) {
  size_t n = 0;
  buf[0] = '\0';
  for (unsigned i = 0; i < d->n_fields; i++) {
    if (!is_message_member(&d->fields[i]))
      continue;
    int w = snprintf(buf + n, len - n, "%s%s", n ? ", " : "",
                     d->fields[i].name);
    if (w < 0 || (size_t)w >= len - n)
      return;
    n += (size_t)w;
  }
}

/* Replace a string field's value; the old one is freed unless it is the
 * shared empty default that protobuf-c never frees. */
static int set_string(char **slot, const char *value) {
  char *copy = strdup(value);
  if (copy == NULL)
    return LINLI_ERR_NOMEM;
  if (*slot != NULL && *slot != protobuf_c_empty_string)
    free(*slot);
  *slot = copy;
  return LINLI_OK;
}

/* ----------------------------------------------------------------- meta */

static int fill_meta(ProtobufCMessage *env, const char *prefix, int64_t now_ms,
                     Linli__Meta **out, char *err, size_t errlen) {
  const ProtobufCFieldDescriptor *mf =
      protobuf_c_message_descriptor_get_field_by_name(env->descriptor, "meta");
  if (mf == NULL || mf->type != PROTOBUF_C_TYPE_MESSAGE ||
      mf->descriptor != &linli__meta__descriptor)
    return fail(err, errlen, "%smeta: %s has no Meta", prefix,
                env->descriptor->short_name);
  Linli__Meta **slot = field_slot(env, mf);
  if (*slot == NULL) {
    Linli__Meta *m = malloc(sizeof *m);
    if (m == NULL)
      return fail_nomem(err, errlen);
    linli__meta__init(m);
    *slot = m; /* owned by the envelope from here on */
  }
  Linli__Meta *m = *slot;
  if (m->event_id[0] == '\0') {
    char id[LINLI_ID_BUFSZ];
    if (linli_id_new(id, sizeof id) != LINLI_OK)
      return fail(err, errlen, "%smeta.event_id: cannot make a new id",
                  prefix);
    if (set_string(&m->event_id, id) != LINLI_OK)
      return fail_nomem(err, errlen);
  } else if (!linli_id_valid(m->event_id)) {
    return fail(err, errlen, "%smeta.event_id: " ID_RULE, prefix);
  }
  if (m->occurred_at_ms == 0)
    m->occurred_at_ms = now_ms;
  else if (m->occurred_at_ms < 0)
    return fail(err, errlen, "%smeta.occurred_at_ms: negative", prefix);
  if (m->producer[0] == '\0' && set_string(&m->producer, PRODUCE_NAME))
    return fail_nomem(err, errlen);
  if (m->schema_version == 0)
    m->schema_version = LINLI_SCHEMA_VERSION;
  else if (m->schema_version < 0)
    return fail(err, errlen, "%smeta.schema_version: negative", prefix);
  *out = m;
  return LINLI_OK;
}

/* ------------------------------------------------------------------ key */

/*
 * The message key: the line's "key" if given (it must agree with the
 * member's key field when that is set, or the event would land in another
 * partition than its consumers expect), else the key field itself.
 */
static int resolve_key(const linli_topic_schema_t *topic,
                       const ProtobufCMessage *member,
                       const char *member_prefix, const char *explicit_key,
                       char **out, char *err, size_t errlen) {
  const ProtobufCFieldDescriptor *kf =
      protobuf_c_message_descriptor_get_field_by_name(member->descriptor,
                                                      topic->key_field);
  const char *kv = NULL;
  if (kf != NULL && kf->type == PROTOBUF_C_TYPE_STRING &&
      kf->label != PROTOBUF_C_LABEL_REPEATED)
    memcpy(&kv, (const char *)member + kf->offset, sizeof kv);

  const char *key;
  if (explicit_key != NULL) {
    if (!linli_id_valid(explicit_key))
      return fail(err, errlen, "key: " ID_RULE);
    if (kv != NULL && kv[0] != '\0' && strcmp(kv, explicit_key) != 0) {
      if (linli_id_valid(kv))
        return fail(err, errlen, "key: \"%s\" differs from %s%s \"%s\"",
                    explicit_key, member_prefix, topic->key_field, kv);
      return fail(err, errlen, "key: \"%s\" differs from %s%s", explicit_key,
                  member_prefix, topic->key_field);
    }
    key = explicit_key;
  } else {
    if (kv == NULL)
      return fail(err, errlen, "key: missing, and %s has no %s field",
                  member->descriptor->short_name, topic->key_field);
    if (kv[0] == '\0')
      return fail(err, errlen, "%s%s: missing (the message key of %s)",
                  member_prefix, topic->key_field, topic->name);
    if (!linli_id_valid(kv))
      return fail(err, errlen, "%s%s: " ID_RULE, member_prefix,
                  topic->key_field);
    key = kv;
  }
  *out = strdup(key);
  return *out != NULL ? LINLI_OK : fail_nomem(err, errlen);
}

/* ------------------------------------------------------------- wrapper */

/* A line {"topic": ..., "key": ..., "event": {...}}: its parts, borrowed
 * from root. */
static int split_wrapper(const json_t *root, const linli_topic_schema_t **topic,
                         const char **key, const json_t **event, char *err,
                         size_t errlen) {
  const char *name;
  size_t name_len;
  json_t *v;
  char buf[80];
  json_object_keylen_foreach((json_t *)root, name, name_len, v) {
    if (strlen(name) != name_len ||
        (strcmp(name, "topic") != 0 && strcmp(name, "key") != 0 &&
         strcmp(name, "event") != 0)) {
      shown(name, name_len, buf, sizeof buf);
      return fail(err, errlen,
                  "%s: unknown field (a line holds topic, key and event)",
                  buf);
    }
  }
  const json_t *t = json_object_get(root, "topic");
  if (t == NULL || json_is_null(t))
    return fail(err, errlen, "topic: missing");
  if (!json_is_string(t))
    return fail(err, errlen, "topic: expected a string, got %s", json_kind(t));
  *topic = linli_schema_topic(json_string_value(t));
  if (*topic == NULL) {
    shown(json_string_value(t), json_string_length(t), buf, sizeof buf);
    return fail(err, errlen, "topic: unknown topic \"%s\"", buf);
  }
  if ((*topic)->envelope == NULL)
    return fail(err, errlen,
                "topic: %s holds raw bytes, not events: it cannot be "
                "written here",
                (*topic)->name);
  const json_t *k = json_object_get(root, "key");
  *key = NULL;
  if (k != NULL && !json_is_null(k)) {
    if (!json_is_string(k))
      return fail(err, errlen, "key: expected a string, got %s", json_kind(k));
    if (strlen(json_string_value(k)) != json_string_length(k))
      return fail(err, errlen, "key: " ID_RULE);
    *key = json_string_value(k);
  }
  *event = json_object_get(root, "event");
  if (*event == NULL || json_is_null(*event))
    return fail(err, errlen, "event: missing");
  if (!json_is_object(*event))
    return fail(err, errlen, "event: expected an object, got %s",
                json_kind(*event));
  return LINLI_OK;
}

/* ----------------------------------------------------------------- line */

/* JSON -> envelope of topic, as the mode says the line holds it. path is
 * where the envelope sits in the line ("event." or ""). */
static int build_envelope(const produce_mode_t *mode,
                          const linli_topic_schema_t *topic, const json_t *in,
                          const char *path, ProtobufCMessage **env, char *err,
                          size_t errlen) {
  char jerr[512];
  int rc;
  if (mode->member == NULL) {
    rc = linli_json_to_pb(topic->envelope, in, env, jerr, sizeof jerr);
    if (rc == LINLI_ERR_NOMEM)
      return fail_nomem(err, errlen);
    if (rc != LINLI_OK)
      return fail(err, errlen, "%s%s", path, jerr);
    return LINLI_OK;
  }
  /* The line is the member alone: put it into a new envelope. */
  ProtobufCMessage *member = NULL;
  rc = linli_json_to_pb(mode->member->descriptor, in, &member, jerr,
                        sizeof jerr);
  if (rc == LINLI_ERR_NOMEM)
    return fail_nomem(err, errlen);
  if (rc != LINLI_OK)
    return fail(err, errlen, "%s", jerr);
  ProtobufCMessage *e = calloc(1, topic->envelope->sizeof_message);
  if (e == NULL) {
    protobuf_c_message_free_unpacked(member, NULL);
    return fail_nomem(err, errlen);
  }
  protobuf_c_message_init(topic->envelope, e);
  memcpy(field_slot(e, mode->member), &member, sizeof member);
  uint32_t which = mode->member->id;
  memcpy((char *)e + mode->member->quantifier_offset, &which, sizeof which);
  *env = e;
  return LINLI_OK;
}

int produce_parse_line(const produce_mode_t *mode, const char *line,
                       size_t len, int64_t now_ms, produce_event_t *ev,
                       char *err, size_t errlen) {
  memset(ev, 0, sizeof *ev);
  err[0] = '\0';
  json_error_t jerr;
  json_t *root = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
  if (root == NULL) {
    if (json_error_code(&jerr) == json_error_out_of_memory)
      return fail_nomem(err, errlen);
    return fail(err, errlen, "(json): column %d: %s", jerr.column, jerr.text);
  }
  int rc;
  if (!json_is_object(root)) {
    rc = fail(err, errlen, "(json): expected an object, got %s",
              json_kind(root));
    goto done;
  }

  const linli_topic_schema_t *topic = mode->topic;
  const char *explicit_key = NULL;
  const json_t *event = root;
  const char *path = ""; /* where the envelope sits in the line */
  if (topic == NULL) {
    rc = split_wrapper(root, &topic, &explicit_key, &event, err, errlen);
    if (rc != LINLI_OK)
      goto done;
    path = "event.";
  }

  ProtobufCMessage *env = NULL;
  rc = build_envelope(mode, topic, event, path, &env, err, errlen);
  if (rc != LINLI_OK)
    goto done;
  ev->topic = topic;
  ev->envelope = env; /* owned by ev from here on */

  ProtobufCMessage *member = NULL;
  const ProtobufCFieldDescriptor *mf = member_set(env, &member);
  if (mf == NULL) {
    char names[256];
    member_names(topic->envelope, names, sizeof names);
    rc = fail(err, errlen, "event: no event set (one of %s)", names);
    goto done;
  }
  ev->type_name =
      ((const ProtobufCMessageDescriptor *)mf->descriptor)->short_name;

  /* Where the member's fields sit in the line, for key errors. */
  char member_prefix[128];
  if (mode->member != NULL)
    member_prefix[0] = '\0';
  else
    snprintf(member_prefix, sizeof member_prefix, "%s%s.", path, mf->name);
  rc = resolve_key(topic, member, member_prefix, explicit_key, &ev->key, err,
                   errlen);
  if (rc != LINLI_OK)
    goto done;

  Linli__Meta *meta = NULL;
  rc = fill_meta(env, path, now_ms, &meta, err, errlen);
  if (rc != LINLI_OK)
    goto done;
  ev->event_id = meta->event_id;

done:
  json_decref(root);
  if (rc != LINLI_OK)
    produce_event_clear(ev);
  return rc;
}

void produce_event_clear(produce_event_t *ev) {
  if (ev->envelope != NULL)
    protobuf_c_message_free_unpacked(ev->envelope, NULL);
  free(ev->key);
  memset(ev, 0, sizeof *ev);
}
