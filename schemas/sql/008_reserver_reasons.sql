-- 008_reserver_reasons.sql - the reasons linli-reserver gained with issue 9
-- (schemas/reservations.proto, schemas/refunds.proto): underpayment,
-- price mismatch, and refunds for unknown orders, underpayments and
-- overpayments. A refund for an order linli never accepted has no user
-- (the payment notice carries none): user_id may be NULL for it.
ALTER TABLE reservations DROP CONSTRAINT reservations_reason_check;
ALTER TABLE reservations ADD CONSTRAINT reservations_reason_check
  CHECK (reason IN (
    'OUT_OF_STOCK', 'UNKNOWN_SKU', 'INVALID_ORDER', 'DUPLICATE', 'DELISTED',
    'PAYMENT_AFTER_EXPIRY', 'PAYMENT_AFTER_CANCEL', 'DOUBLE_PAYMENT',
    'NOT_RESERVED', 'UNDERPAID', 'PRICE_MISMATCH'));
ALTER TABLE refunds DROP CONSTRAINT refunds_reason_check;
ALTER TABLE refunds ADD CONSTRAINT refunds_reason_check
  CHECK (reason IN (
    'LATE_PAYMENT', 'DOUBLE_PAYMENT', 'GROUP_FAILED', 'TIER_DIFFERENCE',
    'CANCELLED_AFTER_PAYMENT', 'UNKNOWN_ORDER', 'UNDERPAYMENT',
    'OVERPAYMENT'));
ALTER TABLE refunds ALTER COLUMN user_id DROP NOT NULL;
