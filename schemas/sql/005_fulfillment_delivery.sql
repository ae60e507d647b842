-- 005_fulfillment_delivery.sql - fulfillment items and waves, delivery
-- routes with their ordered stops, and the append-only history of what
-- logistics partners reported.

CREATE TABLE waves (
  warehouse_id  linli_id NOT NULL,
  wave_id       linli_id NOT NULL,
  cutoff_at     timestamptz,                   -- NULL while open
  event_id      text UNIQUE,                   -- the WaveClosed event
  created_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (warehouse_id, wave_id)
);

CREATE TABLE fulfillment_items (
  order_id       linli_id PRIMARY KEY,
  warehouse_id   linli_id NOT NULL,
  wave_id        linli_id,                     -- NULL until assigned
  storage_class  text NOT NULL
    CONSTRAINT fulfillment_items_storage_class_check
    CHECK (storage_class IN ('AMBIENT', 'CHILLED', 'FROZEN')),
  express        boolean NOT NULL DEFAULT false,
  campaign_id    linli_id,
  event_id       text NOT NULL UNIQUE,
  created_at     timestamptz NOT NULL DEFAULT now(),
  updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX fulfillment_items_wave_idx
  ON fulfillment_items (warehouse_id, wave_id);

CREATE TABLE routes (
  route_id      linli_id PRIMARY KEY,
  warehouse_id  linli_id NOT NULL,
  wave_id       linli_id NOT NULL,
  vehicle_id    linli_id NOT NULL,
  cold_chain    boolean NOT NULL,
  distance_m    integer NOT NULL CHECK (distance_m >= 0),
  departs_at    timestamptz NOT NULL,
  event_id      text NOT NULL UNIQUE,          -- the RouteBatch event
  created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX routes_wave_idx ON routes (warehouse_id, wave_id);
CREATE INDEX routes_departs_idx ON routes (warehouse_id, departs_at DESC);

-- A stop is a pickup point or a home location (coordinates of a home are
-- personal data: the ledger stores them only for pickup-less stops, and
-- only as needed for the route; addresses are never stored here).
CREATE TABLE route_stops (
  route_id         linli_id NOT NULL REFERENCES routes ON DELETE CASCADE,
  seq              integer NOT NULL CHECK (seq > 0),
  pickup_point_id  linli_id,
  lat_e6           integer,                    -- microdegrees
  lng_e6           integer,
  eta              timestamptz NOT NULL,
  PRIMARY KEY (route_id, seq),
  CONSTRAINT route_stops_place_check CHECK (
    (pickup_point_id IS NOT NULL)
    <> (lat_e6 IS NOT NULL AND lng_e6 IS NOT NULL))
);
CREATE INDEX route_stops_pickup_point_idx ON route_stops (pickup_point_id)
  WHERE pickup_point_id IS NOT NULL;

CREATE TABLE route_stop_orders (
  route_id  linli_id NOT NULL,
  seq       integer NOT NULL,
  order_id  linli_id NOT NULL,
  PRIMARY KEY (route_id, order_id),
  FOREIGN KEY (route_id, seq) REFERENCES route_stops ON DELETE CASCADE
);
CREATE INDEX route_stop_orders_order_idx ON route_stop_orders (order_id);

-- What logistics partners reported, once per event. Append-only. The
-- pickup code is not stored (it is a collection secret).
CREATE TABLE delivery_events (
  event_id         text PRIMARY KEY,
  order_id         linli_id NOT NULL,
  type             text NOT NULL
    CONSTRAINT delivery_events_type_check CHECK (type IN (
      'OutForDelivery', 'ArrivedAtPickupPoint', 'PickedUp', 'Delivered',
      'DeliveryFailed')),
  route_id         linli_id,
  courier_id       linli_id,
  pickup_point_id  linli_id,
  proof            text,
  reason           text,
  topic            text NOT NULL,
  partition        integer NOT NULL,
  kafka_offset     bigint NOT NULL,
  occurred_at      timestamptz NOT NULL,
  recorded_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX delivery_events_order_idx
  ON delivery_events (order_id, occurred_at);
CREATE INDEX delivery_events_route_idx ON delivery_events (route_id)
  WHERE route_id IS NOT NULL;
CREATE TRIGGER delivery_events_append_only
  BEFORE UPDATE OR DELETE ON delivery_events
  FOR EACH ROW EXECUTE FUNCTION linli_append_only();
