-- The current version of every record. `seq` is the integer key the full-text index and the
-- entity indexes refer to; `id` is the opaque id in the resource name `records/{id}`. The
-- columns next to `doc` (the encoded interlock.records.v1.Record content) are what reads filter
-- and sort on without decoding it.
CREATE TABLE records (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    id             TEXT    NOT NULL UNIQUE,
    owner          TEXT    NOT NULL,
    record_number  TEXT    NOT NULL,
    category       INTEGER NOT NULL,
    sensitivity    INTEGER NOT NULL,
    caveats        INTEGER NOT NULL,
    title          TEXT    NOT NULL,
    narrative      TEXT    NOT NULL,
    report_us      INTEGER NOT NULL,
    occur_us       INTEGER NOT NULL,
    review_by_us   INTEGER NOT NULL,
    version        INTEGER NOT NULL,
    deleted        INTEGER NOT NULL,
    create_us      INTEGER NOT NULL,
    update_us      INTEGER NOT NULL,
    content_hash   TEXT    NOT NULL,
    doc            BLOB    NOT NULL,
    UNIQUE (owner, record_number)
);
CREATE INDEX records_owner_created ON records (owner, create_us, id);
CREATE INDEX records_review_by ON records (review_by_us);

-- Every version ever written, for the owner's audit trail. `doc` is NULL for a deletion, and for
-- the current version until it is superseded: its content is the records row's, so a record
-- written once is stored once.
CREATE TABLE record_versions (
    record_id  TEXT    NOT NULL,
    version    INTEGER NOT NULL,
    change     INTEGER NOT NULL,
    doc        BLOB,
    create_us  INTEGER NOT NULL,
    user_name  TEXT    NOT NULL,
    PRIMARY KEY (record_id, version)
);

-- The normalised selectors of current versions (and persons' identification numbers, as
-- SELECTOR_KIND_IDENTIFICATION_NUMBER): what selector searches match exactly. Keyed by what
-- searches look up, so the key is the index (no separate table and value index to write).
CREATE TABLE record_selectors (
    value      TEXT    NOT NULL,
    kind       INTEGER NOT NULL,
    region     TEXT    NOT NULL,
    record_seq INTEGER NOT NULL,
    PRIMARY KEY (value, kind, region, record_seq)
) WITHOUT ROWID;
CREATE INDEX record_selectors_record ON record_selectors (record_seq);

-- The normalised names (main names and aliases) of the persons of current versions, keyed
-- like record_selectors.
CREATE TABLE record_persons (
    surname    TEXT    NOT NULL,
    given      TEXT    NOT NULL,
    middle     TEXT    NOT NULL,
    suffix     TEXT    NOT NULL,
    birth_date TEXT    NOT NULL,
    record_seq INTEGER NOT NULL,
    PRIMARY KEY (surname, given, middle, suffix, birth_date, record_seq)
) WITHOUT ROWID;
CREATE INDEX record_persons_record ON record_persons (record_seq);

-- Full text over title and narrative: an external-content FTS5 index kept in step by triggers.
CREATE VIRTUAL TABLE records_fts USING fts5(
    title, narrative, content = 'records', content_rowid = 'seq', tokenize = 'porter unicode61'
);
CREATE TRIGGER records_fts_insert AFTER INSERT ON records BEGIN
    INSERT INTO records_fts (rowid, title, narrative) VALUES (new.seq, new.title, new.narrative);
END;
CREATE TRIGGER records_fts_delete AFTER DELETE ON records BEGIN
    INSERT INTO records_fts (records_fts, rowid, title, narrative)
    VALUES ('delete', old.seq, old.title, old.narrative);
END;
CREATE TRIGGER records_fts_update AFTER UPDATE OF title, narrative ON records BEGIN
    INSERT INTO records_fts (records_fts, rowid, title, narrative)
    VALUES ('delete', old.seq, old.title, old.narrative);
    INSERT INTO records_fts (rowid, title, narrative) VALUES (new.seq, new.title, new.narrative);
END;

-- CreateRecord request ids, so a retried create returns the first result: honoured for 24
-- hours, pruned after that (by create_us).
CREATE TABLE create_requests (
    owner      TEXT    NOT NULL,
    request_id TEXT    NOT NULL,
    input_hash TEXT    NOT NULL,
    record_id  TEXT    NOT NULL,
    version    INTEGER NOT NULL,
    outcome    INTEGER NOT NULL,
    create_us  INTEGER NOT NULL,
    PRIMARY KEY (owner, request_id)
);
CREATE INDEX create_requests_created ON create_requests (create_us);

-- Bulk ingest jobs: the last batch committed, written in the batch's own transaction, and the
-- stream that owns the job. Each new stream for a job takes a new `stream` number; a batch
-- commits only while its stream's number is still the job's, so a stream taken over by another
-- (on any replica) stops after its in-flight batch.
CREATE TABLE ingest_jobs (
    owner      TEXT    NOT NULL,
    ingest_id  TEXT    NOT NULL,
    last_batch INTEGER NOT NULL,
    stream     INTEGER NOT NULL,
    update_us  INTEGER NOT NULL,
    PRIMARY KEY (owner, ingest_id)
);

-- Notices to owners that a restricted record matched another agency's search.
CREATE TABLE access_notifications (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT    NOT NULL UNIQUE,
    owner           TEXT    NOT NULL,
    record_id       TEXT    NOT NULL,
    record_number   TEXT    NOT NULL,
    searcher_agency TEXT    NOT NULL,
    searcher_user   TEXT    NOT NULL,
    search_us       INTEGER NOT NULL,
    purpose         INTEGER NOT NULL,
    case_reference  TEXT    NOT NULL,
    search_kind     INTEGER NOT NULL,
    matched         BLOB    NOT NULL,
    access_level    INTEGER NOT NULL
);
CREATE INDEX access_notifications_owner ON access_notifications (owner, seq);

-- Audit events written in the same transaction as the write they record, or before a read's
-- data is returned; delivered to the audit service by a relay with retries.
CREATE TABLE audit_outbox (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT    NOT NULL UNIQUE,
    event    BLOB    NOT NULL
);
