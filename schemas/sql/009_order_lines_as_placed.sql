-- 009_order_lines_as_placed.sql - order_lines hold an order's lines as
-- placed, one row per line of the OrderPlaced (line_no = its index).
--
-- An order may list a SKU twice, at different prices: the reserver merges
-- the quantities for stock, and totals the lines one by one. With one row
-- per SKU the ledger had to fold such lines into the first line's price,
-- so the recorded lines no longer added up to the order's total. Stock
-- movements stay per SKU (stock_movements is keyed by event and SKU).
ALTER TABLE order_lines DROP CONSTRAINT order_lines_sku_key;
