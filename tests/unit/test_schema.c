/*
 * test_schema.c - the topic registry (domain/schema.h) and the schemas
 * themselves: every topic is known with its envelope, every envelope has
 * the Meta + oneof shape, every message and enum value named in DESIGN.md
 * exists, and the oneof member of any envelope is named correctly.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "linli/error.h"
#include "linli/ids.h"
#include "domain/schema.h"
#include "linli_test.h"

#include "orders.pb-c.h"
#include "routes.pb-c.h"

/* ------------------------------------------------------------- topics */

static void test_topics_known(void) {
  size_t n = 0;
  const linli_topic_schema_t *all = linli_schema_topics(&n);
  CU_ASSERT_PTR_NOT_NULL_FATAL(all);
  CU_ASSERT_EQUAL(n, 13);
  for (size_t i = 0; i < n; i++) {
    CU_ASSERT_PTR_EQUAL(linli_schema_topic(all[i].name), &all[i]);
    CU_ASSERT_PTR_NOT_NULL(all[i].key_field);
    if (all[i].envelope != NULL)
      CU_ASSERT_PTR_EQUAL(linli_schema_topic_for_envelope(all[i].envelope),
                          &all[i]);
  }
  const linli_topic_schema_t *t = linli_schema_topic(LINLI_TOPIC_ORDERS);
  CU_ASSERT_PTR_NOT_NULL_FATAL(t);
  CU_ASSERT_STRING_EQUAL(t->key_field, "order_id");
  CU_ASSERT_FALSE(t->compacted);
  CU_ASSERT_PTR_EQUAL(t->envelope, &linli__order_event__descriptor);

  t = linli_schema_topic(LINLI_TOPIC_CATALOG);
  CU_ASSERT_PTR_NOT_NULL_FATAL(t);
  CU_ASSERT_TRUE(t->compacted);
  CU_ASSERT_STRING_EQUAL(t->key_field, "sku_id");
  CU_ASSERT_STRING_EQUAL(t->envelope->short_name, "CatalogEvent");

  t = linli_schema_topic(LINLI_TOPIC_ORDER_STATUS);
  CU_ASSERT_PTR_NOT_NULL_FATAL(t);
  CU_ASSERT_TRUE(t->compacted);
  CU_ASSERT_STRING_EQUAL(t->envelope->short_name, "OrderStatusEvent");

  t = linli_schema_topic(LINLI_TOPIC_DLQ);
  CU_ASSERT_PTR_NOT_NULL_FATAL(t);
  CU_ASSERT_PTR_NULL(t->envelope);

  t = linli_schema_topic(LINLI_TOPIC_SETTLEMENTS);
  CU_ASSERT_PTR_NOT_NULL_FATAL(t);
  CU_ASSERT_STRING_EQUAL(t->key_field, "campaign_id");
  CU_ASSERT_STRING_EQUAL(t->envelope->short_name, "SettlementEvent");

  CU_ASSERT_PTR_NULL(linli_schema_topic("linli.orders.v2"));
  CU_ASSERT_PTR_NULL(linli_schema_topic(""));
  CU_ASSERT_PTR_NULL(linli_schema_topic(NULL));
  CU_ASSERT_PTR_NULL(linli_schema_topic_for_envelope(&linli__meta__descriptor));
}

/* The registry agrees with config/topics.conf: same topics, same
 * compaction. */
static void test_topics_match_conf(void) {
  const char *src = getenv("LINLI_SOURCE_DIR");
  char path[1024];
  snprintf(path, sizeof(path), "%s/config/topics.conf", src ? src : ".");
  FILE *f = fopen(path, "r");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  char line[512];
  size_t seen = 0;
  while (fgets(line, sizeof(line), f) != NULL) {
    char name[128], policy[32];
    long parts;
    long long retention;
    if (line[0] == '#' || line[0] == '\n')
      continue;
    if (sscanf(line, "%127s %ld %lld %31s", name, &parts, &retention,
               policy) != 4)
      continue;
    const linli_topic_schema_t *t = linli_schema_topic(name);
    CU_ASSERT_PTR_NOT_NULL(t);
    if (t == NULL) {
      fprintf(stderr, "topics.conf has %s, the registry does not\n", name);
      continue;
    }
    CU_ASSERT_EQUAL(t->compacted, strcmp(policy, "compact") == 0);
    seen++;
  }
  fclose(f);
  size_t n;
  linli_schema_topics(&n);
  CU_ASSERT_EQUAL(seen, n);
}

/* The names C and the scripts use are the same: the generated
 * domain/topics.h and scripts/lib.sh's linli_topic both read
 * config/topics.conf; for every topic of the registry, ask the shell. */
static void test_topics_same_in_scripts(void) {
  CU_ASSERT_EQUAL(LINLI_TOPIC_COUNT, 13);
  CU_ASSERT_STRING_EQUAL(LINLI_TOPIC_ORDERS, "linli.orders.v1");
  CU_ASSERT_EQUAL(LINLI_TOPIC_ORDERS_PARTITIONS, 6);
  CU_ASSERT_EQUAL(LINLI_TOPIC_CATALOG_PARTITIONS, 3);
  size_t n = 0;
  const linli_topic_schema_t *all = linli_schema_topics(&n);
  CU_ASSERT_EQUAL(n, LINLI_TOPIC_COUNT);
  const char *src = getenv("LINLI_SOURCE_DIR");
  char cmd[4096];
  int len = snprintf(cmd, sizeof cmd,
                     "bash -c 'set -euo pipefail; source \"%s/scripts/lib.sh\"; "
                     "linli_topics",
                     src ? src : ".");
  for (size_t i = 0; i < n; i++) {
    /* linli.<short>.v1 -> <short> */
    const char *name = all[i].name;
    CU_ASSERT_FATAL(strncmp(name, "linli.", 6) == 0);
    size_t sl = strlen(name) - 6 - 3;
    len += snprintf(cmd + len, sizeof cmd - (size_t)len, " %.*s", (int)sl,
                    name + 6);
  }
  snprintf(cmd + len, sizeof cmd - (size_t)len, "'");
  FILE *p = popen(cmd, "r");
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  char line[2048] = "";
  CU_ASSERT_PTR_NOT_NULL(fgets(line, sizeof line, p));
  CU_ASSERT_EQUAL(pclose(p), 0);
  line[strcspn(line, "\n")] = '\0';
  char want[2048] = "";
  for (size_t i = 0, w = 0; i < n; i++)
    w += (size_t)snprintf(want + w, sizeof want - w, "%s%s", i ? "," : "",
                          all[i].name);
  CU_ASSERT_STRING_EQUAL(line, want);
}

/* No program spells a topic name: C code names topics with LINLI_TOPIC_*
 * (libcommon, which knows no topic, takes them from its settings). */
static void test_no_topic_literals(void) {
  const char *src = getenv("LINLI_SOURCE_DIR");
  char cmd[1024];
  snprintf(cmd, sizeof cmd,
           "cd \"%s\" && grep -rEn --include='*.c' --include='*.h' "
           "'\"linli\\.[a-z.-]+\\.v[0-9]+\"' consumers producers libdomain tools "
           "| grep -vE '^[^:]+:[0-9]+:[[:space:]]*(\\*|/\\*)|/\\*.*\"linli'",
           src ? src : ".");
  FILE *p = popen(cmd, "r");
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  char line[1024];
  int found = 0;
  while (fgets(line, sizeof line, p)) {
    fprintf(stderr, "\n  a topic name spelt out: %s", line);
    found++;
  }
  pclose(p);
  CU_ASSERT_EQUAL(found, 0);
}

/* A decision's Meta: the same decision gets the same id, another does not. */
static void test_decision_meta(void) {
  Linli__Meta a = LINLI__META__INIT, b = LINLI__META__INIT;
  char ida[LINLI_ID_BUFSZ], idb[LINLI_ID_BUFSZ];
  linli_schema_decision_meta(&a, ida, "expire/o-1", 2, 1000, 5000, "p");
  linli_schema_decision_meta(&b, idb, "expire/o-1", 2, 1000, 9000, "p");
  CU_ASSERT_PTR_EQUAL(a.event_id, ida);
  CU_ASSERT_STRING_EQUAL(ida, idb);
  CU_ASSERT_EQUAL(a.occurred_at_ms, 5000);
  CU_ASSERT_STRING_EQUAL(a.producer, "p");
  CU_ASSERT_EQUAL(a.schema_version, LINLI_SCHEMA_VERSION);
  linli_schema_decision_meta(&b, idb, "expire/o-1", 2, 1001, 5000, "p");
  CU_ASSERT_STRING_NOT_EQUAL(ida, idb);
}

/* ----------------------------------------------------------- envelopes */

/* Every envelope: named <Thing>Event, field 1 `meta` of type Meta, every
 * other field a message-typed member of the one oneof `event`. */
static void test_envelope_shape(void) {
  size_t n;
  const linli_topic_schema_t *all = linli_schema_topics(&n);
  for (size_t i = 0; i < n; i++) {
    const ProtobufCMessageDescriptor *d = all[i].envelope;
    if (d == NULL)
      continue;
    size_t len = strlen(d->short_name);
    CU_ASSERT_TRUE(len > 5 &&
                   strcmp(d->short_name + len - 5, "Event") == 0);
    CU_ASSERT_STRING_EQUAL(d->package_name, "linli");
    const ProtobufCFieldDescriptor *meta =
        protobuf_c_message_descriptor_get_field(d, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(meta);
    CU_ASSERT_STRING_EQUAL(meta->name, "meta");
    CU_ASSERT_PTR_EQUAL(meta->descriptor, &linli__meta__descriptor);
    CU_ASSERT_EQUAL(d->n_fields >= 2, 1);
    for (unsigned k = 0; k < d->n_fields; k++) {
      const ProtobufCFieldDescriptor *f = &d->fields[k];
      if (f->id == 1)
        continue;
      CU_ASSERT_TRUE(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF);
      CU_ASSERT_EQUAL(f->type, PROTOBUF_C_TYPE_MESSAGE);
    }
    CU_ASSERT_PTR_EQUAL(linli_schema_message(d->short_name), d);
  }
}

/* For every envelope and every oneof member: set it and check the name
 * linli_schema_event_type reports, and the member pointer. Built
 * generically from the descriptors so that a new member is covered. */
static void test_event_type_every_member(void) {
  size_t n;
  const linli_topic_schema_t *all = linli_schema_topics(&n);
  size_t checked = 0;
  for (size_t i = 0; i < n; i++) {
    const ProtobufCMessageDescriptor *d = all[i].envelope;
    if (d == NULL)
      continue;
    for (unsigned k = 0; k < d->n_fields; k++) {
      const ProtobufCFieldDescriptor *f = &d->fields[k];
      if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) == 0)
        continue;
      const ProtobufCMessageDescriptor *md = f->descriptor;
      ProtobufCMessage *env = calloc(1, d->sizeof_message);
      ProtobufCMessage *mem = calloc(1, md->sizeof_message);
      CU_ASSERT_PTR_NOT_NULL_FATAL(env);
      CU_ASSERT_PTR_NOT_NULL_FATAL(mem);
      d->message_init(env);
      md->message_init(mem);

      const char *name = "x";
      CU_ASSERT_EQUAL(linli_schema_event_type(env, &name), LINLI_ERR_NOTFOUND);
      CU_ASSERT_PTR_NULL(name);

      uint32_t which = f->id;
      memcpy((char *)env + f->quantifier_offset, &which, sizeof(which));
      memcpy((char *)env + f->offset, &mem, sizeof(mem));
      const ProtobufCMessage *got = NULL;
      CU_ASSERT_EQUAL(linli_schema_event_member(env, &got, &name), LINLI_OK);
      CU_ASSERT_PTR_EQUAL(got, mem);
      CU_ASSERT_PTR_NOT_NULL_FATAL(name);
      CU_ASSERT_STRING_EQUAL(name, md->short_name);
      CU_ASSERT_PTR_EQUAL(linli_schema_message(name), md);
      checked++;
      free(mem);
      free(env);
    }
  }
  /* 1+1+4+4+1+3+2+1+5+1+1+1 members in DESIGN.md, then JoinResult on the
   * settlements topic and SortingList and WavePlanned on the routes topic
   * (the count was 26 before the last two). */
  CU_ASSERT_EQUAL(checked, 28);
}

/* A real OrderEvent through pack/unpack: type name, member and Meta. */
static void test_event_type_roundtrip(void) {
  Linli__Meta meta = LINLI__META__INIT;
  meta.event_id = "01HZZTESTEVENT";
  meta.occurred_at_ms = 1717000000123;
  meta.producer = "test";
  meta.schema_version = LINLI_SCHEMA_VERSION;
  Linli__OrderLine line = LINLI__ORDER_LINE__INIT;
  line.sku_id = "sku-1";
  line.quantity = 3;
  line.unit_price_fen = 1250;
  Linli__OrderLine *lines[] = {&line};
  Linli__HomeDelivery home = LINLI__HOME_DELIVERY__INIT;
  home.recipient_name = "张三";
  home.lat_e6 = -33868800; /* southern hemisphere: sint32 */
  home.lng_e6 = 151209300;
  Linli__OrderPlaced placed = LINLI__ORDER_PLACED__INIT;
  placed.order_id = "o-1";
  placed.n_lines = 1;
  placed.lines = lines;
  placed.total_fen = 3750;
  placed.delivery_case = LINLI__ORDER_PLACED__DELIVERY_HOME;
  placed.home = &home;
  Linli__OrderEvent ev = LINLI__ORDER_EVENT__INIT;
  ev.meta = &meta;
  ev.event_case = LINLI__ORDER_EVENT__EVENT_ORDER_PLACED;
  ev.order_placed = &placed;

  size_t len = protobuf_c_message_get_packed_size(&ev.base);
  uint8_t *buf = malloc(len);
  CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
  protobuf_c_message_pack(&ev.base, buf);
  ProtobufCMessage *back = protobuf_c_message_unpack(
      linli_schema_topic(LINLI_TOPIC_ORDERS)->envelope, NULL, len, buf);
  free(buf);
  CU_ASSERT_PTR_NOT_NULL_FATAL(back);

  const char *name = NULL;
  CU_ASSERT_EQUAL(linli_schema_event_type(back, &name), LINLI_OK);
  CU_ASSERT_STRING_EQUAL(name, "OrderPlaced");
  const ProtobufCMessage *m = NULL;
  CU_ASSERT_EQUAL(linli_schema_event_member(back, &m, NULL), LINLI_OK);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  const Linli__OrderPlaced *p = (const Linli__OrderPlaced *)m;
  CU_ASSERT_STRING_EQUAL(p->order_id, "o-1");
  CU_ASSERT_EQUAL(p->delivery_case, LINLI__ORDER_PLACED__DELIVERY_HOME);
  CU_ASSERT_EQUAL(p->home->lat_e6, -33868800);
  CU_ASSERT_EQUAL(p->lines[0]->unit_price_fen, 1250);
  const Linli__Meta *mt = linli_schema_meta(back);
  CU_ASSERT_PTR_NOT_NULL_FATAL(mt);
  CU_ASSERT_STRING_EQUAL(mt->event_id, "01HZZTESTEVENT");
  CU_ASSERT_EQUAL(mt->occurred_at_ms, 1717000000123);
  CU_ASSERT_STRING_EQUAL(mt->causation_id, "");
  protobuf_c_message_free_unpacked(back, NULL);
}

static void test_event_type_errors(void) {
  const char *name = "x";
  CU_ASSERT_EQUAL(linli_schema_event_type(NULL, &name), LINLI_ERR_INVALID);
  CU_ASSERT_PTR_NULL(name);
  Linli__Meta meta = LINLI__META__INIT;
  CU_ASSERT_EQUAL(linli_schema_event_type(&meta.base, &name),
                  LINLI_ERR_INVALID);
  CU_ASSERT_PTR_NULL(linli_schema_meta(&meta.base));
  Linli__OrderEvent ev = LINLI__ORDER_EVENT__INIT;
  CU_ASSERT_EQUAL(linli_schema_event_type(&ev.base, &name),
                  LINLI_ERR_NOTFOUND);
  CU_ASSERT_PTR_NULL(linli_schema_meta(&ev.base));
  /* A oneof of scalars/messages that is not an envelope's: Stop.place with a
   * string set is not an event. */
  Linli__RouteBatch__Stop stop = LINLI__ROUTE_BATCH__STOP__INIT;
  stop.place_case = LINLI__ROUTE_BATCH__STOP__PLACE_PICKUP_POINT_ID;
  stop.pickup_point_id = "pp-1";
  CU_ASSERT_EQUAL(linli_schema_event_type(&stop.base, &name),
                  LINLI_ERR_INVALID);
}

/* ------------------------------------------------------ message lookup */

static void test_message_lookup(void) {
  static const char *const names[] = {
      "Meta", "OrderLine", "PickupDelivery", "HomeDelivery", "GeoPoint",
      "Sku", "StockAdjusted", "OrderPlaced", "OrderPaid", "OrderCancelled",
      "OrderExpired", "CampaignOpened", "Tier", "GroupBuyJoined",
      "GroupBuyLeft", "CampaignDeadline", "ReservationResult", "ShortLine",
      "ThresholdReached", "CampaignSettled", "CampaignFailed",
      "CampaignRefund", "FulfillmentItem", "WaveClosed", "RouteBatch", "Stop",
      "OutForDelivery", "ArrivedAtPickupPoint", "PickedUp", "Delivered",
      "DeliveryFailed", "RefundRequested", "Notification", "Param",
      "OrderStatus", "CatalogEvent", "InventoryEvent", "OrderEvent",
      "GroupBuyEvent", "ReservationEvent", "SettlementEvent",
      "FulfillmentEvent", "RouteEvent", "DeliveryEvent", "RefundEvent",
      "NotificationEvent", "OrderStatusEvent"};
  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
    const ProtobufCMessageDescriptor *d = linli_schema_message(names[i]);
    CU_ASSERT_PTR_NOT_NULL(d);
    if (d == NULL) {
      fprintf(stderr, "message %s not found\n", names[i]);
      continue;
    }
    CU_ASSERT_STRING_EQUAL(d->short_name, names[i]);
  }
  CU_ASSERT_PTR_EQUAL(linli_schema_message("OrderPlaced"),
                      &linli__order_placed__descriptor);
  CU_ASSERT_PTR_EQUAL(linli_schema_message("linli.OrderPlaced"),
                      &linli__order_placed__descriptor);
  CU_ASSERT_PTR_EQUAL(linli_schema_message("RouteBatch.Stop"),
                      &linli__route_batch__stop__descriptor);
  CU_ASSERT_PTR_EQUAL(linli_schema_message("linli.RouteBatch.Stop"),
                      &linli__route_batch__stop__descriptor);
  CU_ASSERT_PTR_NULL(linli_schema_message("NoSuchThing"));
  CU_ASSERT_PTR_NULL(linli_schema_message("orderplaced"));
  CU_ASSERT_PTR_NULL(linli_schema_message(""));
  CU_ASSERT_PTR_NULL(linli_schema_message(NULL));
}

/* ------------------------------------------------ DESIGN.md enum names */

static void assert_enum(const char *message, const char *field,
                        const char *const *values, size_t n) {
  const ProtobufCMessageDescriptor *d = linli_schema_message(message);
  CU_ASSERT_PTR_NOT_NULL_FATAL(d);
  const ProtobufCFieldDescriptor *f =
      protobuf_c_message_descriptor_get_field_by_name(d, field);
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  CU_ASSERT_EQUAL_FATAL(f->type, PROTOBUF_C_TYPE_ENUM);
  const ProtobufCEnumDescriptor *e = f->descriptor;
  CU_ASSERT_EQUAL(e->n_values, n + 1); /* + *_UNSPECIFIED */
  CU_ASSERT_EQUAL(e->values[0].value, 0);
  size_t ul = strlen(e->values[0].name);
  CU_ASSERT_TRUE(ul > 12 &&
                 strcmp(e->values[0].name + ul - 12, "_UNSPECIFIED") == 0);
  for (size_t i = 0; i < n; i++) {
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value_by_name(e, values[i]);
    CU_ASSERT_PTR_NOT_NULL(v);
    if (v == NULL)
      fprintf(stderr, "%s.%s lacks %s\n", message, field, values[i]);
    else
      CU_ASSERT_EQUAL(v->value, (int)i + 1);
  }
}

#define ASSERT_ENUM(m, f, ...)                                                 \
  do {                                                                         \
    static const char *const v_[] = {__VA_ARGS__};                            \
    assert_enum(m, f, v_, sizeof(v_) / sizeof(v_[0]));                        \
  } while (0)

static void test_design_enums(void) {
  ASSERT_ENUM("OrderPaid", "method", "WECHAT_PAY", "ALIPAY", "BANK_CARD");
  ASSERT_ENUM("StockAdjusted", "reason", "RESTOCK", "DAMAGE", "RECALL",
              "COUNT");
  ASSERT_ENUM("Sku", "storage_class", "AMBIENT", "CHILLED", "FROZEN");
  ASSERT_ENUM("FulfillmentItem", "storage_class", "AMBIENT", "CHILLED",
              "FROZEN");
  ASSERT_ENUM("Sku", "status", "LISTED", "DELISTED");
  ASSERT_ENUM("ReservationResult", "status", "RESERVED", "REJECTED",
              "RELEASED", "COMMITTED");
  ASSERT_ENUM("ReservationResult", "reason", "OUT_OF_STOCK", "UNKNOWN_SKU",
              "INVALID_ORDER", "DUPLICATE", "DELISTED",
              "PAYMENT_AFTER_EXPIRY", "PAYMENT_AFTER_CANCEL",
              "DOUBLE_PAYMENT", "NOT_RESERVED", "UNDERPAID",
              "PRICE_MISMATCH", "GROUP_FAILED");
  ASSERT_ENUM("RefundRequested", "reason", "LATE_PAYMENT", "DOUBLE_PAYMENT",
              "GROUP_FAILED", "TIER_DIFFERENCE", "CANCELLED_AFTER_PAYMENT",
              "UNKNOWN_ORDER", "UNDERPAYMENT", "OVERPAYMENT");
  ASSERT_ENUM("Notification", "channel", "SMS", "WECHAT", "APP_PUSH");
  ASSERT_ENUM("OrderStatus", "state", "PLACED", "RESERVED", "REJECTED",
              "PAID", "READY", "OUT_FOR_DELIVERY", "AT_PICKUP_POINT",
              "DELIVERED", "PICKED_UP", "CANCELLED", "EXPIRED",
              "DELIVERY_FAILED");
}

/* Money fields are int64 *_fen; coordinates sint32 *_e6; no floats or maps
 * anywhere in any schema. */
static void test_field_conventions(void) {
  size_t n;
  const linli_topic_schema_t *all = linli_schema_topics(&n);
  for (size_t i = 0; i < n; i++) {
    const ProtobufCMessageDescriptor *stack[64];
    size_t top = 0;
    if (all[i].envelope == NULL)
      continue;
    stack[top++] = all[i].envelope;
    while (top > 0) {
      const ProtobufCMessageDescriptor *d = stack[--top];
      for (unsigned k = 0; k < d->n_fields; k++) {
        const ProtobufCFieldDescriptor *f = &d->fields[k];
        size_t l = strlen(f->name);
        CU_ASSERT_NOT_EQUAL(f->type, PROTOBUF_C_TYPE_FLOAT);
        CU_ASSERT_NOT_EQUAL(f->type, PROTOBUF_C_TYPE_DOUBLE);
        if (l > 4 && strcmp(f->name + l - 4, "_fen") == 0)
          CU_ASSERT_EQUAL(f->type, PROTOBUF_C_TYPE_INT64);
        if (l > 3 && strcmp(f->name + l - 3, "_e6") == 0)
          CU_ASSERT_EQUAL(f->type, PROTOBUF_C_TYPE_SINT32);
        if (l > 3 && strcmp(f->name + l - 3, "_ms") == 0)
          CU_ASSERT_EQUAL(f->type, PROTOBUF_C_TYPE_INT64);
        if (f->type == PROTOBUF_C_TYPE_MESSAGE && top < 64)
          stack[top++] = f->descriptor;
      }
    }
  }
}

int linli_test_register(void) {
  CU_pSuite s = CU_add_suite("schema", NULL, NULL);
  if (s == NULL)
    return -1;
  if (CU_add_test(s, "topics known", test_topics_known) == NULL ||
      CU_add_test(s, "topics match topics.conf", test_topics_match_conf) ==
          NULL ||
      CU_add_test(s, "topic names same in scripts",
                  test_topics_same_in_scripts) == NULL ||
      CU_add_test(s, "no topic name spelt out", test_no_topic_literals) ==
          NULL ||
      CU_add_test(s, "decision meta", test_decision_meta) == NULL ||
      CU_add_test(s, "envelope shape", test_envelope_shape) == NULL ||
      CU_add_test(s, "event type of every member",
                  test_event_type_every_member) == NULL ||
      CU_add_test(s, "event type roundtrip", test_event_type_roundtrip) ==
          NULL ||
      CU_add_test(s, "event type errors", test_event_type_errors) == NULL ||
      CU_add_test(s, "message lookup", test_message_lookup) == NULL ||
      CU_add_test(s, "DESIGN.md enum names", test_design_enums) == NULL ||
      CU_add_test(s, "field conventions", test_field_conventions) == NULL)
    return -1;
  return 0;
}
