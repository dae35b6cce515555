-- Audit events the audit service rejected for good (malformed, or an event id taken by another
-- event), moved out of audit_outbox by the relay in one transaction so the rest keep flowing.
-- Kept with the reason until an operator deals with them (`interlock audit dead-letters`).
CREATE TABLE audit_dead_letters (
    seq              INTEGER PRIMARY KEY,
    event_id         TEXT    NOT NULL,
    event            BLOB    NOT NULL,
    reason           TEXT    NOT NULL,
    rejected_time_us INTEGER NOT NULL
);
