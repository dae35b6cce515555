-- Records whose selectors must be (re-)registered with, or withdrawn from, the deconfliction
-- service: written in the same transaction as the record, delivered with retries.
CREATE TABLE deconfliction_outbox (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    record_id TEXT    NOT NULL
);
