-- 007_ledger.sql - what linli-ledger needs on top of 001-006.
--
-- The ledger reads every topic, and the topics have no order between them:
-- a ReservationResult, a FulfillmentItem or a delivery report may reach the
-- record before the OrderPlaced of its order, a settlement before the
-- CampaignOpened of its campaign, a reservation before the restock that made
-- it possible. So a row may be created by a later event and its details
-- filled in when the event that carries them arrives, and stock may be
-- transiently negative. Non-negativity of stock is the audit's check now
-- (linli-replay audit), on a quiescent record.

-- Stock: a reservation recorded before its restock makes available
-- negative for a while; an adjustment the reserver refused is applied and
-- reversed when its DLQ record arrives. The balance identity still holds
-- after every single event.
ALTER TABLE inventory DROP CONSTRAINT inventory_available_check;
ALTER TABLE inventory DROP CONSTRAINT inventory_initial_check;

-- Orders: created by whichever of its events comes first; placed_event_id
-- is NULL until OrderPlaced filled in the details. state_changed_at is the
-- time (of the event) of the last state change, for linli.order-status.v1.
ALTER TABLE orders
  ALTER COLUMN app_id DROP NOT NULL,
  ALTER COLUMN user_id DROP NOT NULL,
  ALTER COLUMN warehouse_id DROP NOT NULL,
  ALTER COLUMN delivery_kind DROP NOT NULL,
  ALTER COLUMN placed_at DROP NOT NULL,
  ALTER COLUMN total_fen SET DEFAULT 0,
  ADD COLUMN placed_event_id text,
  ADD COLUMN state_changed_at timestamptz;
CREATE INDEX orders_unplaced_idx ON orders (created_at)
  WHERE placed_event_id IS NULL;

-- Payments: a row is created by the payment notice (OrderPaid: method,
-- event_id) or by the reserver's judgement of it (ReservationResult:
-- status), whichever comes first. status NULL = not judged yet.
ALTER TABLE payments
  ALTER COLUMN method DROP NOT NULL,
  ALTER COLUMN status DROP NOT NULL,
  ALTER COLUMN event_id DROP NOT NULL;

-- Campaigns: a settlement may be recorded before CampaignOpened.
-- settled_event_id is the CampaignSettled / CampaignFailed recorded (once).
ALTER TABLE campaigns
  ALTER COLUMN app_id DROP NOT NULL,
  ALTER COLUMN sku_id DROP NOT NULL,
  ALTER COLUMN warehouse_id DROP NOT NULL,
  ALTER COLUMN list_price_fen DROP NOT NULL,
  ALTER COLUMN deadline_at DROP NOT NULL,
  ALTER COLUMN opened_event_id DROP NOT NULL,
  ADD COLUMN settled_event_id text;

-- What the ledger must publish once the transaction that wrote it has
-- committed: the new state of every order it touched (to
-- linli.order-status.v1) and its own DLQ records (to linli.dlq.v1). A row is
-- deleted once the broker acknowledged it; rows left by a crash are
-- published again at start-up (a republish is harmless: order-status is
-- compacted by order id, a DLQ record keeps its key and headers).
CREATE TABLE ledger_outbox (
  seq         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  topic       text NOT NULL,
  msg_key     bytea,
  msg_value   bytea,
  headers     jsonb NOT NULL DEFAULT '[]',  -- [{key,value}] as text
  created_at  timestamptz NOT NULL DEFAULT now()
);
