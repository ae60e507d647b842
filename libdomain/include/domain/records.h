/*
 * records.h - libdomain's judgement of a whole record on one of linli's
 * topics, by topic: the one the gateway, the reserver, the settler, the
 * ledger and linli-replay's audit all make, so that a record one of them
 * refuses (to the DLQ) is refused by every other.
 */
#ifndef DOMAIN_RECORDS_H
#define DOMAIN_RECORDS_H

#include <protobuf-c/protobuf-c.h>

#include "domain/check.h"

/* env: the record decoded as its topic's envelope (base_topic: the linli
 * name, without a test suffix). The number of problems reported through
 * err (may be NULL; fields named from the envelope, "order_paid.method"),
 * 0 when the record is good or its topic has no rule here. max_lines is
 * orders.max_lines. */
int dom_record_check(const char *base_topic, const ProtobufCMessage *env,
                     int max_lines, dom_err_fn err, void *arg);

#endif
