-- 016_ledger_outbox_batches.sql - the order statuses of one ledger batch
-- wait in one ledger_outbox row instead of a row each (issue 8: ledger
-- throughput; docs/performance.md, run H).
--
-- A batch of 500 order events queued about 500 status rows: each a heap
-- tuple, a primary-key entry, hex text decoded by the server, and later a
-- delete by key and a vacuum, for a row that lives about a second. The
-- batch's statuses now travel as one value: `messages` holds every message
-- as a 4-byte big-endian key length, the key, a 4-byte big-endian value
-- length and the value (linli.order-status.v1 records, keyed by order id).
-- Rows written before (msg_key, msg_value) and the ledger's own DLQ records
-- (one a row, with headers) keep the old form; msg_key and msg_value are
-- NULL in a row that holds messages.
ALTER TABLE ledger_outbox ADD COLUMN IF NOT EXISTS messages bytea;
-- Statuses of one batch repeat their app, warehouse and producer ids: lz4
-- halves the value at a fraction of pglz's CPU.
ALTER TABLE ledger_outbox ALTER COLUMN messages SET COMPRESSION lz4;
