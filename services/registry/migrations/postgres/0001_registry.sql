-- Every registry resource (agency, user, credential, center, agreement) is one JSON document keyed
-- by its resource name. The registry holds thousands of small documents, not millions: one table
-- with optimistic concurrency on `revision` keeps both backends' code identical.
CREATE TABLE registry_objects (
    kind       TEXT   NOT NULL,
    name       TEXT   NOT NULL,
    parent     TEXT   NOT NULL,
    doc        TEXT   NOT NULL,
    revision   BIGINT NOT NULL,
    request_id TEXT,
    PRIMARY KEY (kind, name)
);
CREATE INDEX registry_objects_parent ON registry_objects (kind, parent, name);
CREATE UNIQUE INDEX registry_objects_request ON registry_objects (kind, request_id) WHERE request_id IS NOT NULL;

-- The change feed: one row per committed change, in commit order (writers take an exclusive lock
-- on this table, so sequence order is commit order), so watchers on every replica resume from a
-- revision number.
CREATE TABLE registry_changes (
    revision BIGSERIAL PRIMARY KEY,
    kind     TEXT   NOT NULL,
    name     TEXT   NOT NULL,
    time_us  BIGINT NOT NULL
);

-- Audit events written in the same transaction as the change they record, delivered to the audit
-- service by a relay with retries; the event id makes redelivery harmless.
CREATE TABLE audit_outbox (
    seq      BIGSERIAL PRIMARY KEY,
    event_id TEXT  NOT NULL UNIQUE,
    event    BYTEA NOT NULL
);
