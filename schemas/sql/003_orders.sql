-- 003_orders.sql - orders and their lines, the append-only event history of
-- every order, reservations, payments and refunds.
--
-- Personal data (recipient name, phone, address, home coordinates) is held
-- only in the *_enc columns, encrypted by the ledger with libsodium
-- (crypto_secretbox: nonce || ciphertext), under the key named by
-- pii_key_id. It is never stored in clear, and order_events.payload holds
-- the event with those fields removed.

CREATE TABLE orders (
  order_id            linli_id PRIMARY KEY,
  app_id              linli_id NOT NULL,
  user_id             linli_id NOT NULL,
  warehouse_id        linli_id NOT NULL,
  campaign_id         linli_id,                 -- NULL: not a group-buy
  state               text NOT NULL
    CONSTRAINT orders_state_check CHECK (state IN (
      'PLACED', 'RESERVED', 'REJECTED', 'PAID', 'READY', 'OUT_FOR_DELIVERY',
      'AT_PICKUP_POINT', 'DELIVERED', 'PICKED_UP', 'CANCELLED', 'EXPIRED',
      'DELIVERY_FAILED')),
  reason              text,                     -- why it is in this state
  total_fen           bigint NOT NULL CHECK (total_fen >= 0),
  paid_fen            bigint NOT NULL DEFAULT 0 CHECK (paid_fen >= 0),
  refunded_fen        bigint NOT NULL DEFAULT 0 CHECK (refunded_fen >= 0),
  payment_txn_id      text,                     -- the accepted payment
  payment_method      text
    CONSTRAINT orders_payment_method_check
    CHECK (payment_method IN ('WECHAT_PAY', 'ALIPAY', 'BANK_CARD')),
  delivery_kind       text NOT NULL
    CONSTRAINT orders_delivery_kind_check
    CHECK (delivery_kind IN ('PICKUP', 'HOME')),
  pickup_point_id     linli_id,                 -- set iff delivery_kind PICKUP
  express             boolean NOT NULL DEFAULT false,
  recipient_name_enc  bytea,                    -- HOME only, encrypted
  phone_enc           bytea,                    -- HOME only, encrypted
  address_enc         bytea,                    -- HOME only, encrypted
  location_enc        bytea,                    -- HOME lat_e6,lng_e6, encrypted
  pii_key_id          text,                     -- key of the *_enc columns
  placed_at           timestamptz NOT NULL,
  expires_at          timestamptz,              -- payment deadline
  paid_at             timestamptz,
  version             bigint NOT NULL DEFAULT 1 CHECK (version >= 1),
  last_event_id       text NOT NULL,
  created_at          timestamptz NOT NULL DEFAULT now(),
  updated_at          timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT orders_pickup_point_check CHECK (
    (delivery_kind = 'PICKUP') = (pickup_point_id IS NOT NULL))
);
CREATE INDEX orders_user_idx ON orders (user_id, placed_at DESC);
CREATE INDEX orders_warehouse_idx ON orders (warehouse_id, placed_at DESC);
CREATE INDEX orders_pickup_point_idx ON orders (pickup_point_id, placed_at DESC)
  WHERE pickup_point_id IS NOT NULL;
CREATE INDEX orders_app_idx ON orders (app_id, placed_at DESC);
CREATE INDEX orders_campaign_idx ON orders (campaign_id)
  WHERE campaign_id IS NOT NULL;
CREATE INDEX orders_open_state_idx ON orders (state, updated_at)
  WHERE state NOT IN ('DELIVERED', 'PICKED_UP', 'CANCELLED', 'EXPIRED',
                      'REJECTED');

CREATE TABLE order_lines (
  order_id        linli_id NOT NULL REFERENCES orders ON DELETE CASCADE,
  line_no         integer NOT NULL CHECK (line_no >= 0), -- index in the event
  sku_id          linli_id NOT NULL,
  quantity        integer NOT NULL CHECK (quantity > 0),
  unit_price_fen  bigint NOT NULL CHECK (unit_price_fen >= 0),
  PRIMARY KEY (order_id, line_no),
  CONSTRAINT order_lines_sku_key UNIQUE (order_id, sku_id)
);
CREATE INDEX order_lines_sku_idx ON order_lines (sku_id);

-- Every event about an order, from any topic, once (event_id). Append-only.
CREATE TABLE order_events (
  event_id      text PRIMARY KEY,
  order_id      linli_id NOT NULL,
  topic         text NOT NULL,
  partition     integer NOT NULL,
  kafka_offset  bigint NOT NULL,
  type          text NOT NULL,          -- oneof member, e.g. 'OrderPlaced'
  occurred_at   timestamptz NOT NULL,   -- Meta.occurred_at_ms
  producer      text NOT NULL DEFAULT '',
  trace_id      text NOT NULL DEFAULT '',
  causation_id  text NOT NULL DEFAULT '',
  payload       jsonb NOT NULL,         -- the event as JSON, personal data removed
  recorded_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX order_events_order_idx ON order_events (order_id, occurred_at);
CREATE INDEX order_events_position_idx
  ON order_events (topic, partition, kafka_offset);
CREATE TRIGGER order_events_append_only
  BEFORE UPDATE OR DELETE ON order_events
  FOR EACH ROW EXECUTE FUNCTION linli_append_only();

-- The reservation of each order (an order has at most one), latest status.
CREATE TABLE reservations (
  order_id        linli_id PRIMARY KEY,
  warehouse_id    linli_id NOT NULL,
  status          text NOT NULL
    CONSTRAINT reservations_status_check
    CHECK (status IN ('RESERVED', 'REJECTED', 'RELEASED', 'COMMITTED')),
  reason          text                          -- rejection reason
    CONSTRAINT reservations_reason_check CHECK (reason IN (
      'OUT_OF_STOCK', 'UNKNOWN_SKU', 'INVALID_ORDER', 'DUPLICATE', 'DELISTED',
      'PAYMENT_AFTER_EXPIRY', 'PAYMENT_AFTER_CANCEL', 'DOUBLE_PAYMENT',
      'NOT_RESERVED')),
  detail          text,
  shortages       jsonb,                        -- [{sku_id,requested,available}]
  expires_at      timestamptz,                  -- payment deadline
  reserved_at     timestamptz,
  released_at     timestamptz,
  committed_at    timestamptz,
  last_event_id   text NOT NULL,
  updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX reservations_live_idx ON reservations (warehouse_id, expires_at)
  WHERE status = 'RESERVED';

-- Every payment notice judged, once per payment transaction.
CREATE TABLE payments (
  payment_txn_id  text PRIMARY KEY,
  order_id        linli_id NOT NULL,
  method          text NOT NULL
    CONSTRAINT payments_method_check
    CHECK (method IN ('WECHAT_PAY', 'ALIPAY', 'BANK_CARD')),
  amount_fen      bigint NOT NULL CHECK (amount_fen > 0),
  status          text NOT NULL
    CONSTRAINT payments_status_check CHECK (status IN ('ACCEPTED', 'REFUSED')),
  refusal_reason  text,                         -- e.g. PAYMENT_AFTER_EXPIRY
  paid_at         timestamptz NOT NULL,
  event_id        text NOT NULL UNIQUE,         -- the OrderPaid event
  recorded_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payments_order_idx ON payments (order_id);
-- An order is paid once.
CREATE UNIQUE INDEX payments_one_accepted_idx ON payments (order_id)
  WHERE status = 'ACCEPTED';

-- Every refund owed anywhere, once (refund_id is deterministic).
CREATE TABLE refunds (
  refund_id       linli_id PRIMARY KEY,
  order_id        linli_id NOT NULL,
  user_id         linli_id NOT NULL,
  amount_fen      bigint NOT NULL CHECK (amount_fen > 0),
  reason          text NOT NULL
    CONSTRAINT refunds_reason_check CHECK (reason IN (
      'LATE_PAYMENT', 'DOUBLE_PAYMENT', 'GROUP_FAILED', 'TIER_DIFFERENCE',
      'CANCELLED_AFTER_PAYMENT')),
  cause_event_id  text NOT NULL,
  cause_topic     text NOT NULL,
  payment_txn_id  text,
  campaign_id     linli_id,
  event_id        text NOT NULL UNIQUE,         -- the RefundRequested event
  requested_at    timestamptz NOT NULL,
  recorded_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX refunds_order_idx ON refunds (order_id);
CREATE INDEX refunds_user_idx ON refunds (user_id, requested_at DESC);
CREATE INDEX refunds_campaign_idx ON refunds (campaign_id)
  WHERE campaign_id IS NOT NULL;
