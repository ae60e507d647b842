-- 002_catalog_inventory.sql - SKUs (from linli.catalog.v1), stock per
-- warehouse and SKU, and the append-only history of every stock movement.

CREATE TABLE skus (
  sku_id          linli_id PRIMARY KEY,
  name            text NOT NULL,
  category        text NOT NULL DEFAULT '',
  storage_class   text NOT NULL
    CONSTRAINT skus_storage_class_check
    CHECK (storage_class IN ('AMBIENT', 'CHILLED', 'FROZEN')),
  weight_g        integer NOT NULL CHECK (weight_g >= 0),
  list_price_fen  bigint NOT NULL CHECK (list_price_fen >= 0),
  origin          text NOT NULL DEFAULT '',
  status          text NOT NULL
    CONSTRAINT skus_status_check CHECK (status IN ('LISTED', 'DELISTED')),
  last_event_id   text NOT NULL,           -- the Sku event last applied
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX skus_category_idx ON skus (category);

-- Stock of one SKU in one warehouse. The invariant of DESIGN.md holds per
-- row: initial + adjusted = available + reserved + sold, none negative.
CREATE TABLE inventory (
  warehouse_id  linli_id NOT NULL,
  sku_id        linli_id NOT NULL,
  initial       bigint NOT NULL DEFAULT 0 CHECK (initial >= 0),
  adjusted      bigint NOT NULL DEFAULT 0,   -- net sum of StockAdjusted
  available     bigint NOT NULL DEFAULT 0 CHECK (available >= 0),
  reserved      bigint NOT NULL DEFAULT 0 CHECK (reserved >= 0),
  sold          bigint NOT NULL DEFAULT 0 CHECK (sold >= 0),
  updated_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (warehouse_id, sku_id),
  CONSTRAINT inventory_balance_check
    CHECK (initial + adjusted = available + reserved + sold)
);
CREATE INDEX inventory_sku_idx ON inventory (sku_id);

-- Every change to inventory, one row per (event, SKU): adjustments,
-- reservations, releases, sales. Append-only.
CREATE TABLE stock_movements (
  movement_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  event_id        text NOT NULL,            -- the event that moved stock
  warehouse_id    linli_id NOT NULL,
  sku_id          linli_id NOT NULL,
  kind            text NOT NULL
    CONSTRAINT stock_movements_kind_check
    CHECK (kind IN ('INITIAL', 'ADJUST', 'RESERVE', 'RELEASE', 'COMMIT')),
  quantity        integer NOT NULL,         -- units moved (signed for ADJUST)
  reason          text,                     -- StockAdjusted reason, if any
  order_id        linli_id,                 -- for reservation movements
  adjustment_id   linli_id,                 -- for StockAdjusted
  topic           text NOT NULL,
  partition       integer NOT NULL,
  kafka_offset    bigint NOT NULL,
  occurred_at     timestamptz NOT NULL,
  recorded_at     timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT stock_movements_event_sku_key UNIQUE (event_id, sku_id)
);
CREATE INDEX stock_movements_stock_idx
  ON stock_movements (warehouse_id, sku_id, occurred_at);
CREATE INDEX stock_movements_order_idx
  ON stock_movements (order_id) WHERE order_id IS NOT NULL;
CREATE TRIGGER stock_movements_append_only
  BEFORE UPDATE OR DELETE ON stock_movements
  FOR EACH ROW EXECUTE FUNCTION linli_append_only();
