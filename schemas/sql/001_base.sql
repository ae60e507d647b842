-- 001_base.sql - shared building blocks of the record: the id domain that
-- mirrors the schemas' id rule, and the trigger that keeps append-only
-- tables append-only.
--
-- Migrations run in filename order, each in its own transaction (with its
-- schema_migrations row) under linli-migrate; never edit an applied file,
-- add a new one. No BEGIN/COMMIT in these files.

-- Ids are 1-64 characters of [A-Za-z0-9_-] (DESIGN.md). NULL means absent.
CREATE DOMAIN linli_id AS text
  CHECK (VALUE ~ '^[A-Za-z0-9_-]{1,64}$');

-- Rejects UPDATE and DELETE on history tables: history is only appended.
CREATE FUNCTION linli_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '%: append-only table, % is not allowed',
    TG_TABLE_NAME, TG_OP USING ERRCODE = 'restrict_violation';
END;
$$;
