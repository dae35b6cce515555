-- Records whose selectors must be (re-)registered with, or withdrawn from, the deconfliction
-- service: written in the same transaction as the record, delivered with retries.
CREATE TABLE deconfliction_outbox (
    seq       BIGSERIAL PRIMARY KEY,
    record_id TEXT      NOT NULL
);
