-- 011_reader_views.sql - the questions other programs ask the ledger's
-- record, one view each. linli-ledger owns the tables of 002-009 and is the
-- only program that names them; linli-gateway, linli-reserver and
-- linli-replay read these views and nothing else (the unit test
-- test_reader_views scans their sources and fails on SQL that names a
-- table created in schemas/sql). A change to a table then changes the view
-- in the same migration, and a reader breaks at migration time, not in
-- production.
--
-- Views are named <reader>_<question>. They expose no personal data (the
-- *_enc columns) and keep the tables' types: each reader formats what it
-- reads. Idempotent: CREATE OR REPLACE VIEW (a later migration may add
-- columns at the end; renaming or dropping one needs DROP VIEW first).

-- linli-gateway ------------------------------------------------------------

-- Which app an order belongs to (the tenant guard, one or many orders).
CREATE OR REPLACE VIEW gateway_order_owner AS
  SELECT order_id, app_id FROM orders;

-- Which app a campaign belongs to (the tenant guard of a join).
CREATE OR REPLACE VIEW gateway_campaign_owner AS
  SELECT campaign_id, app_id FROM campaigns;

-- GET /v1/orders/{id}: the order itself.
CREATE OR REPLACE VIEW gateway_order AS
  SELECT order_id, app_id, user_id, warehouse_id, campaign_id, state, reason,
         total_fen, paid_fen, refunded_fen, payment_txn_id, payment_method,
         delivery_kind, pickup_point_id, express, placed_at, expires_at,
         paid_at, version, last_event_id, updated_at
  FROM orders;

-- GET /v1/orders/{id}: its lines as placed.
CREATE OR REPLACE VIEW gateway_order_lines AS
  SELECT order_id, line_no, sku_id, quantity, unit_price_fen
  FROM order_lines;

-- GET /v1/orders/{id}: its reservation.
CREATE OR REPLACE VIEW gateway_order_reservation AS
  SELECT order_id, status, reason, detail, expires_at, reserved_at,
         released_at, committed_at
  FROM reservations;

-- GET /v1/orders/{id}: the payment notices judged.
CREATE OR REPLACE VIEW gateway_order_payments AS
  SELECT order_id, payment_txn_id, method, amount_fen, status,
         refusal_reason, paid_at
  FROM payments;

-- GET /v1/orders/{id}: what logistics partners reported (never the pickup
-- code: delivery_events does not hold it).
CREATE OR REPLACE VIEW gateway_order_delivery AS
  SELECT order_id, event_id, type, route_id, courier_id, pickup_point_id,
         proof, reason, occurred_at
  FROM delivery_events;

-- GET /v1/users/{id}/orders: a user's orders, newest first (the reader
-- filters on user_id and placed_at: orders_user_idx serves it).
CREATE OR REPLACE VIEW gateway_user_orders AS
  SELECT order_id, app_id, user_id, warehouse_id, campaign_id, state,
         total_fen, paid_fen, delivery_kind, pickup_point_id, placed_at
  FROM orders;

-- linli-reserver -----------------------------------------------------------

-- A warehouse's stock as the record holds it, to load into Redis.
-- added = everything ever added (initial stock + adjustments), so that
-- added = available + reserved + sold, as in Redis.
CREATE OR REPLACE VIEW reserver_stock AS
  SELECT warehouse_id, sku_id, available, reserved, sold,
         initial + adjusted AS added
  FROM inventory;

-- The last linli.inventory.v1 offset per partition whose adjustments of a
-- warehouse the record holds (the reserver must not count them twice).
CREATE OR REPLACE VIEW reserver_adjustment_marks AS
  SELECT warehouse_id, topic, partition, max(kafka_offset) AS last_offset
  FROM stock_movements
  WHERE kind = 'ADJUST'
  GROUP BY warehouse_id, topic, partition;

-- linli-replay (audit) -----------------------------------------------------

-- The recorded state of an order, compared with the log's.
CREATE OR REPLACE VIEW replay_order_state AS
  SELECT order_id, state FROM orders;

-- The recorded stock of one SKU in one warehouse, compared with the log's.
CREATE OR REPLACE VIEW replay_stock AS
  SELECT warehouse_id, sku_id, available, reserved, sold,
         initial + adjusted AS added
  FROM inventory;
