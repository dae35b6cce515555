-- Registrations (targets, operations, record selector sets). `doc` holds contacts, flags and the
-- keyed digests of identifiers: never a raw selector, name or address.
CREATE TABLE registrations (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    number         TEXT    NOT NULL UNIQUE,
    agency         TEXT    NOT NULL,
    kind           TEXT    NOT NULL,
    case_reference TEXT    NOT NULL,
    doc            TEXT    NOT NULL,
    revision       INTEGER NOT NULL,
    request_id     TEXT,
    create_time_us INTEGER NOT NULL
);
CREATE INDEX registrations_agency ON registrations (agency, kind, id);
CREATE UNIQUE INDEX registrations_request ON registrations (agency, request_id) WHERE request_id IS NOT NULL;

-- Conflicts between two registrations of different agencies; one per pair.
CREATE TABLE conflicts (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    name              TEXT    NOT NULL UNIQUE,
    pair              TEXT    NOT NULL UNIQUE,
    doc               TEXT    NOT NULL,
    escalation_due_us INTEGER,
    detect_time_us    INTEGER NOT NULL,
    revision          INTEGER NOT NULL
);
CREATE INDEX conflicts_escalation ON conflicts (escalation_due_us) WHERE escalation_due_us IS NOT NULL;
CREATE TABLE conflict_parties (
    conflict_id     INTEGER NOT NULL REFERENCES conflicts (id),
    agency          TEXT    NOT NULL,
    registration_id INTEGER NOT NULL,
    PRIMARY KEY (conflict_id, registration_id)
);
CREATE INDEX conflict_parties_agency ON conflict_parties (agency, conflict_id);
CREATE INDEX conflict_parties_registration ON conflict_parties (registration_id);

-- What each agency's watch (audience = agency code) and the center watch desk (audience = '')
-- replay from a sequence number, so nothing is lost across reconnects or restarts.
CREATE TABLE conflict_events (
    sequence     INTEGER PRIMARY KEY AUTOINCREMENT,
    audience     TEXT    NOT NULL,
    conflict_id  INTEGER NOT NULL,
    event_type   INTEGER NOT NULL,
    actor_agency TEXT    NOT NULL,
    time_us      INTEGER NOT NULL
);
CREATE INDEX conflict_events_audience ON conflict_events (audience, sequence);

-- The feed every replica follows to keep its in-memory match index current.
CREATE TABLE index_changes (
    revision        INTEGER PRIMARY KEY AUTOINCREMENT,
    registration_id INTEGER NOT NULL,
    time_us         INTEGER NOT NULL
);

-- Counters behind deconfliction numbers (DX-2026-000123) and conflict names, per year.
CREATE TABLE counters (
    name  TEXT    PRIMARY KEY,
    value INTEGER NOT NULL
);

-- Checks that were not registrations (dry runs), for participation figures.
CREATE TABLE checks (
    agency  TEXT    NOT NULL,
    time_us INTEGER NOT NULL
);
CREATE INDEX checks_agency ON checks (agency, time_us);

CREATE TABLE audit_outbox (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT    NOT NULL UNIQUE,
    event    BLOB    NOT NULL
);
