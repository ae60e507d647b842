-- 013_ledger_hot_orders.sql - an order's state changes rewrite its row
-- without touching its indexes (issue 8: ledger throughput).
--
-- The ledger moves every order through several states (PLACED, RESERVED,
-- PAID, ...). orders_open_state_idx indexed (state, updated_at), exactly
-- the columns every move changes, so no move could be a HOT update and
-- each one inserted into all seven indexes of orders. No reader queries
-- orders by state (the gateway reads by order, user and app; the audit
-- by order), so the index goes. With room left on each page (fillfactor),
-- a move stays on its page and indexes are untouched.
DROP INDEX IF EXISTS orders_open_state_idx;
ALTER TABLE orders SET (fillfactor = 80);
