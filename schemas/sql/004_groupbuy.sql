-- 004_groupbuy.sql - group-buy campaigns, their price tiers and
-- participants, and how each campaign ended (settled or failed, once).

CREATE TABLE campaigns (
  campaign_id             linli_id PRIMARY KEY,
  app_id                  linli_id NOT NULL,
  sku_id                  linli_id NOT NULL,
  warehouse_id            linli_id NOT NULL,
  title                   text NOT NULL DEFAULT '',
  list_price_fen          bigint NOT NULL CHECK (list_price_fen >= 0),
  deadline_at             timestamptz NOT NULL,
  per_user_limit          integer NOT NULL DEFAULT 0
    CHECK (per_user_limit >= 0),                 -- 0 = no limit
  pickup_point_id         linli_id,
  state                   text NOT NULL DEFAULT 'OPEN'
    CONSTRAINT campaigns_state_check
    CHECK (state IN ('OPEN', 'CLOSED', 'SETTLED', 'FAILED')),
  participants            integer NOT NULL DEFAULT 0
    CHECK (participants >= 0),
  tier_reached            integer,               -- index into campaign_tiers
  settled_unit_price_fen  bigint CHECK (settled_unit_price_fen >= 0),
  failure_reason          text,
  closed_at               timestamptz,           -- CampaignDeadline recorded
  settled_at              timestamptz,           -- settled or failed
  opened_event_id         text NOT NULL,
  last_event_id           text NOT NULL,
  created_at              timestamptz NOT NULL DEFAULT now(),
  updated_at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX campaigns_open_idx ON campaigns (deadline_at)
  WHERE state = 'OPEN';
CREATE INDEX campaigns_app_idx ON campaigns (app_id, created_at DESC);
CREATE INDEX campaigns_warehouse_idx ON campaigns (warehouse_id);

CREATE TABLE campaign_tiers (
  campaign_id       linli_id NOT NULL REFERENCES campaigns ON DELETE CASCADE,
  tier              integer NOT NULL CHECK (tier >= 0),  -- 0-based index
  min_participants  integer NOT NULL CHECK (min_participants > 0),
  unit_price_fen    bigint NOT NULL CHECK (unit_price_fen >= 0),
  PRIMARY KEY (campaign_id, tier)
);

CREATE TABLE campaign_participants (
  campaign_id     linli_id NOT NULL,
  order_id        linli_id NOT NULL,
  user_id         linli_id NOT NULL,
  quantity        integer NOT NULL CHECK (quantity > 0),
  state           text NOT NULL DEFAULT 'JOINED'
    CONSTRAINT campaign_participants_state_check
    CHECK (state IN ('JOINED', 'LEFT', 'REJECTED')),
  reason          text,                          -- why REJECTED
  joined_at       timestamptz NOT NULL,
  left_at         timestamptz,
  join_event_id   text NOT NULL UNIQUE,
  last_event_id   text NOT NULL,
  updated_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (campaign_id, order_id)
);
CREATE INDEX campaign_participants_user_idx
  ON campaign_participants (user_id, joined_at DESC);
CREATE INDEX campaign_participants_campaign_user_idx
  ON campaign_participants (campaign_id, user_id);
