-- 014_group_failed_reason.sql - ReservationResult.Reason gained GROUP_FAILED
-- (schemas/reservations.proto, issue 11): a failed group-buy releases its
-- orders (RELEASED GROUP_FAILED) and refuses a payment made after the
-- failure (REJECTED GROUP_FAILED). The record may hold the reason wherever
-- it holds the others.
ALTER TABLE reservations DROP CONSTRAINT IF EXISTS reservations_reason_check;
ALTER TABLE reservations ADD CONSTRAINT reservations_reason_check
  CHECK (reason IN (
    'OUT_OF_STOCK', 'UNKNOWN_SKU', 'INVALID_ORDER', 'DUPLICATE', 'DELISTED',
    'PAYMENT_AFTER_EXPIRY', 'PAYMENT_AFTER_CANCEL', 'DOUBLE_PAYMENT',
    'NOT_RESERVED', 'UNDERPAID', 'PRICE_MISMATCH', 'GROUP_FAILED'));
