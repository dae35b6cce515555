-- The current version of every record. `seq` is the integer key the full-text index and the
-- entity indexes refer to; `id` is the opaque id in the resource name `records/{id}`. The
-- columns next to `doc` (the encoded interlock.records.v1.Record content) are what reads filter
-- and sort on without decoding it.
CREATE TABLE records (
    seq            BIGSERIAL PRIMARY KEY,
    id             TEXT    NOT NULL UNIQUE,
    owner          TEXT    NOT NULL,
    record_number  TEXT    NOT NULL,
    category       BIGINT  NOT NULL,
    sensitivity    BIGINT  NOT NULL,
    caveats        BIGINT  NOT NULL,
    title          TEXT    NOT NULL,
    narrative      TEXT    NOT NULL,
    report_us      BIGINT  NOT NULL,
    occur_us       BIGINT  NOT NULL,
    review_by_us   BIGINT  NOT NULL,
    version        BIGINT  NOT NULL,
    deleted        BIGINT  NOT NULL,
    create_us      BIGINT  NOT NULL,
    update_us      BIGINT  NOT NULL,
    content_hash   TEXT    NOT NULL,
    doc            BYTEA   NOT NULL,
    UNIQUE (owner, record_number)
);
CREATE INDEX records_owner_created ON records (owner, create_us, id);
CREATE INDEX records_review_by ON records (review_by_us);

-- Full text over title and narrative: a generated tsvector with a GIN index.
ALTER TABLE records ADD COLUMN fts tsvector
    GENERATED ALWAYS AS (to_tsvector('english', title || ' ' || narrative)) STORED;
CREATE INDEX records_fts ON records USING GIN (fts);

-- Every version ever written, for the owner's audit trail (doc is NULL for a deletion).
CREATE TABLE record_versions (
    record_id  TEXT    NOT NULL,
    version    BIGINT  NOT NULL,
    change     BIGINT  NOT NULL,
    doc        BYTEA,
    create_us  BIGINT  NOT NULL,
    user_name  TEXT    NOT NULL,
    PRIMARY KEY (record_id, version)
);

-- The normalised selectors of current versions (and persons' identification numbers, as
-- SELECTOR_KIND_IDENTIFICATION_NUMBER): what selector searches match exactly.
CREATE TABLE record_selectors (
    record_seq BIGINT  NOT NULL,
    kind       BIGINT  NOT NULL,
    region     TEXT    NOT NULL,
    value      TEXT    NOT NULL
);
CREATE INDEX record_selectors_value ON record_selectors (value, kind, region);
CREATE INDEX record_selectors_record ON record_selectors (record_seq);

-- The normalised names (main names and aliases) of the persons of current versions.
CREATE TABLE record_persons (
    record_seq BIGINT  NOT NULL,
    surname    TEXT    NOT NULL,
    given      TEXT    NOT NULL,
    middle     TEXT    NOT NULL,
    suffix     TEXT    NOT NULL,
    birth_date TEXT    NOT NULL
);
CREATE INDEX record_persons_name ON record_persons (surname, given);
CREATE INDEX record_persons_record ON record_persons (record_seq);

-- CreateRecord request ids, so a retried create returns the first result.
CREATE TABLE create_requests (
    owner      TEXT    NOT NULL,
    request_id TEXT    NOT NULL,
    input_hash TEXT    NOT NULL,
    record_id  TEXT    NOT NULL,
    version    BIGINT  NOT NULL,
    outcome    BIGINT  NOT NULL,
    create_us  BIGINT  NOT NULL,
    PRIMARY KEY (owner, request_id)
);

-- Bulk ingest jobs: the last batch committed, written in the batch's own transaction.
CREATE TABLE ingest_jobs (
    owner      TEXT    NOT NULL,
    ingest_id  TEXT    NOT NULL,
    last_batch BIGINT  NOT NULL,
    update_us  BIGINT  NOT NULL,
    PRIMARY KEY (owner, ingest_id)
);

-- Notices to owners that a restricted record matched another agency's search.
CREATE TABLE access_notifications (
    seq             BIGSERIAL PRIMARY KEY,
    id              TEXT    NOT NULL UNIQUE,
    owner           TEXT    NOT NULL,
    record_id       TEXT    NOT NULL,
    record_number   TEXT    NOT NULL,
    searcher_agency TEXT    NOT NULL,
    searcher_user   TEXT    NOT NULL,
    search_us       BIGINT  NOT NULL,
    purpose         BIGINT  NOT NULL,
    case_reference  TEXT    NOT NULL,
    search_kind     BIGINT  NOT NULL,
    matched         BYTEA   NOT NULL,
    access_level    BIGINT  NOT NULL
);
CREATE INDEX access_notifications_owner ON access_notifications (owner, seq);

-- Audit events written in the same transaction as the write they record, or before a read's
-- data is returned; delivered to the audit service by a relay with retries.
CREATE TABLE audit_outbox (
    seq      BIGSERIAL PRIMARY KEY,
    event_id TEXT    NOT NULL UNIQUE,
    event    BYTEA   NOT NULL
);
