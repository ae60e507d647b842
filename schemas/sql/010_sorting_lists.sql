-- 010_sorting_lists.sql - the router's sorting lists (SortingList on
-- linli.routes.v1): what a warehouse packs for one pickup point in one wave,
-- line by line, as the ledger recorded it; and the view the gateway reads
-- for GET /v1/warehouses/{id}/waves/{wave}/sorting-list.
--
-- One list per (warehouse, wave, pickup point): the router derives the
-- same list from the same log, so a redelivered or replayed SortingList
-- finds its list recorded and adds nothing (the ledger inserts the list
-- and its lines in one statement, the lines only with a new list).
-- Idempotent: safe to run again.

CREATE TABLE IF NOT EXISTS sorting_lists (
  warehouse_id     linli_id NOT NULL,
  wave_id          linli_id NOT NULL,
  pickup_point_id  linli_id NOT NULL,
  community        linli_id,                   -- NULL = unknown
  route_id         linli_id NOT NULL,          -- the route that carries it
  event_id         text NOT NULL UNIQUE,       -- the SortingList event
  created_at       timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (warehouse_id, wave_id, pickup_point_id),
  FOREIGN KEY (warehouse_id, wave_id) REFERENCES waves
);

-- One line per SKU line of an order (line_no: the line's position in the
-- SortingList, 0-based: orders by id, then as in the order).
CREATE TABLE IF NOT EXISTS sorting_list_lines (
  warehouse_id     linli_id NOT NULL,
  wave_id          linli_id NOT NULL,
  pickup_point_id  linli_id NOT NULL,
  line_no          integer NOT NULL CHECK (line_no >= 0),
  order_id         linli_id NOT NULL,
  user_id          linli_id,                   -- NULL = unknown
  sku_id           linli_id NOT NULL,
  quantity         integer NOT NULL CHECK (quantity > 0),
  storage_class    text NOT NULL
    CONSTRAINT sorting_list_lines_storage_class_check
    CHECK (storage_class IN ('AMBIENT', 'CHILLED', 'FROZEN')),
  PRIMARY KEY (warehouse_id, wave_id, pickup_point_id, line_no),
  FOREIGN KEY (warehouse_id, wave_id, pickup_point_id)
    REFERENCES sorting_lists ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS sorting_list_lines_order_idx
  ON sorting_list_lines (order_id);

-- The gateway's question: a wave's sorting lists, one row per line. A wave
-- the record knows (waves) without any pickup-point list gives one row
-- with NULL list columns, so "known wave, nothing to sort" (200, empty)
-- differs from "no such wave" (no row, 404).
CREATE OR REPLACE VIEW wave_sorting_lists AS
SELECT w.warehouse_id,
       w.wave_id,
       w.cutoff_at,
       s.pickup_point_id,
       s.community,
       s.route_id,
       l.line_no,
       l.order_id,
       l.user_id,
       l.sku_id,
       l.quantity,
       l.storage_class
FROM waves w
LEFT JOIN sorting_lists s
  ON s.warehouse_id = w.warehouse_id AND s.wave_id = w.wave_id
LEFT JOIN sorting_list_lines l
  ON l.warehouse_id = s.warehouse_id AND l.wave_id = s.wave_id
 AND l.pickup_point_id = s.pickup_point_id;
