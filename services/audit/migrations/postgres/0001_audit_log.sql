-- The log's single state row: its size, and the last receive time so that leaves stay ordered by
-- receive time even when replicas' clocks disagree. Appends lock this row first, which serialises
-- leaf index assignment across every writer of the database.
CREATE TABLE log_state (
    id                   SMALLINT PRIMARY KEY CHECK (id = 1),
    tree_size            BIGINT NOT NULL,
    last_receive_time_us BIGINT NOT NULL
);
INSERT INTO log_state (id, tree_size, last_receive_time_us) VALUES (1, 0, 0);

-- One row per leaf. leaf_data (the canonical encoding the leaf hash covers) is NULL once pruned;
-- leaf_hash and client_digest stay forever, so the tree stays provable and event ids reserved.
-- The other columns repeat fields of leaf_data for queries (blanked when pruned).
CREATE TABLE events (
    leaf_index      BIGINT PRIMARY KEY,
    event_id        TEXT NOT NULL UNIQUE,
    leaf_hash       BYTEA NOT NULL,
    client_digest   BYTEA NOT NULL,
    leaf_data       BYTEA,
    time_us         BIGINT NOT NULL,
    receive_time_us BIGINT NOT NULL,
    service         BIGINT NOT NULL,
    action          BIGINT NOT NULL,
    outcome         BIGINT NOT NULL,
    actor_agency    TEXT NOT NULL,
    actor_user      TEXT NOT NULL,
    trace_id        TEXT NOT NULL,
    case_reference  TEXT NOT NULL
);
CREATE INDEX events_actor ON events (actor_agency, leaf_index);
CREATE INDEX events_time ON events (time_us);
CREATE INDEX events_trace ON events (trace_id);

-- Resources and owning agencies of each event, for the resource filters and the contributor view.
CREATE TABLE event_resources (
    leaf_index BIGINT NOT NULL,
    resource   TEXT NOT NULL,
    agreement  TEXT NOT NULL
);
CREATE INDEX event_resources_leaf ON event_resources (leaf_index);
CREATE INDEX event_resources_resource ON event_resources (resource, leaf_index);
CREATE INDEX event_resources_agreement ON event_resources (agreement, leaf_index);

CREATE TABLE event_owners (
    owner      TEXT NOT NULL,
    leaf_index BIGINT NOT NULL,
    PRIMARY KEY (owner, leaf_index)
);

-- Complete aligned subtrees above the leaves: node (level, idx) covers leaves
-- [idx * 2^level, (idx + 1) * 2^level). Written once when complete, never changed; every root and
-- proof reads O(log n) of them.
CREATE TABLE tree_nodes (
    level BIGINT NOT NULL,
    idx   BIGINT NOT NULL,
    hash  BYTEA NOT NULL,
    PRIMARY KEY (level, idx)
);

-- Signed checkpoints, one per tree size, never pruned.
CREATE TABLE checkpoints (
    tree_size      BIGINT PRIMARY KEY,
    root_hash      BYTEA NOT NULL,
    signed_note    TEXT NOT NULL,
    create_time_us BIGINT NOT NULL
);
