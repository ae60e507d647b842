-- 006_notifications_ledger.sql - notifications written, the ledger's
-- consumer offsets (committed in the same transaction as its writes, so the
-- record is exactly once), and a searchable copy of the dead-letter queue.

CREATE TABLE notifications (
  notification_id  text PRIMARY KEY,
  user_id          linli_id NOT NULL,
  channel          text NOT NULL
    CONSTRAINT notifications_channel_check
    CHECK (channel IN ('SMS', 'WECHAT', 'APP_PUSH')),
  template         text NOT NULL,
  locale           text NOT NULL DEFAULT '',
  params           jsonb NOT NULL DEFAULT '[]',   -- [{key,value}]
  order_id         linli_id,
  event_id         text NOT NULL UNIQUE,
  created_at       timestamptz NOT NULL,          -- Meta.occurred_at_ms
  recorded_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notifications_user_idx ON notifications (user_id, created_at DESC);
CREATE INDEX notifications_order_idx ON notifications (order_id)
  WHERE order_id IS NOT NULL;

-- Where the ledger resumes: the next offset to read per group and
-- partition. Written in the same transaction as the rows the records up to
-- that offset produced; the ledger seeks here on assignment.
CREATE TABLE consumer_offsets (
  consumer_group  text NOT NULL,
  topic           text NOT NULL,
  partition       integer NOT NULL CHECK (partition >= 0),
  next_offset     bigint NOT NULL CHECK (next_offset >= 0),
  updated_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (consumer_group, topic, partition)
);

-- linli.dlq.v1 records, once per DLQ position. key/value are the original
-- bytes, which may contain personal data: access is restricted like orders.
CREATE TABLE dlq_records (
  dlq_partition     integer NOT NULL,
  dlq_offset        bigint NOT NULL,
  source_topic      text,
  source_partition  integer,
  source_offset     bigint,
  consumer          text,
  error_code        text,
  reason            text,
  msg_key           bytea,
  msg_value         bytea,
  headers           jsonb NOT NULL DEFAULT '[]',  -- [{key,value}] as text
  occurred_at       timestamptz,                  -- record timestamp
  recorded_at       timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (dlq_partition, dlq_offset)
);
CREATE INDEX dlq_records_source_idx
  ON dlq_records (source_topic, source_partition, source_offset);
CREATE INDEX dlq_records_recorded_idx ON dlq_records (recorded_at DESC);
