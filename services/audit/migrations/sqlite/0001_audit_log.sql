-- The log's single state row: its size, and the last receive time so that leaves stay ordered by
-- receive time even when replicas' clocks disagree. Appends lock this row first, which serialises
-- leaf index assignment across every writer of the database.
CREATE TABLE log_state (
    id                   INTEGER PRIMARY KEY CHECK (id = 1),
    tree_size            INTEGER NOT NULL,
    last_receive_time_us INTEGER NOT NULL
);
INSERT INTO log_state (id, tree_size, last_receive_time_us) VALUES (1, 0, 0);

-- One row per leaf. leaf_data (the canonical encoding the leaf hash covers) is NULL once pruned;
-- leaf_hash and client_digest stay forever, so the tree stays provable and event ids reserved.
-- The other columns repeat fields of leaf_data for queries (blanked when pruned).
--
-- Appends are bound by the index pages each batch dirties: every dirtied page is written to the
-- WAL at commit and again at checkpoint. An index whose keys arrive in random order dirties about
-- one page per row once it outgrows the cache, one whose keys arrive in order a handful per
-- batch. So every index here leads with a key that grows with the log (leaf index, time, the
-- UUIDv7 event id's timestamp, leaf block) or has few distinct values (agencies, agreements).
-- Trace ids get no index: they are random, and a trace lookup is a correlation aid answered
-- within the other filters.
CREATE TABLE events (
    leaf_index      INTEGER PRIMARY KEY,
    -- The event id's first 8 bytes: idempotency looks ids up through it (appends hold the log's
    -- lock, so the id stays unique without an index on the text), and UUIDv7 ids arrive in order.
    event_key       INTEGER NOT NULL,
    event_id        TEXT NOT NULL,
    leaf_hash       BLOB NOT NULL,
    client_digest   BLOB NOT NULL,
    leaf_data       BLOB,
    time_us         INTEGER NOT NULL,
    receive_time_us INTEGER NOT NULL,
    service         INTEGER NOT NULL,
    action          INTEGER NOT NULL,
    outcome         INTEGER NOT NULL,
    actor_agency    TEXT NOT NULL,
    actor_user      TEXT NOT NULL,
    trace_id        TEXT NOT NULL,
    case_reference  TEXT NOT NULL
);
CREATE INDEX events_key ON events (event_key);
CREATE INDEX events_actor ON events (actor_agency, leaf_index);
CREATE INDEX events_time ON events (time_us, leaf_index);

-- Resources of each event (position: its place in the event's list), clustered by leaf so that
-- appends write them at the table's end. Resource names are random as the log grows, so their
-- index leads with the leaf block (leaf_index / 4096): a batch only touches the pages of the
-- newest block, and a lookup seeks once per block. resource_key is the first 8 bytes of
-- SHA-256(resource), a quarter of a name's index space.
CREATE TABLE event_resources (
    leaf_index   INTEGER NOT NULL,
    position     INTEGER NOT NULL,
    leaf_block   INTEGER NOT NULL,
    resource_key INTEGER NOT NULL,
    resource     TEXT NOT NULL,
    agreement    TEXT NOT NULL,
    PRIMARY KEY (leaf_index, position)
) WITHOUT ROWID;
CREATE INDEX event_resources_resource ON event_resources (leaf_block, resource_key, leaf_index);
CREATE INDEX event_resources_agreement ON event_resources (agreement, leaf_index);

-- Owning agencies of each event's resources, for the owner filter and the contributor view.
CREATE TABLE event_owners (
    owner      TEXT NOT NULL,
    leaf_index INTEGER NOT NULL,
    PRIMARY KEY (owner, leaf_index)
) WITHOUT ROWID;

-- Complete aligned subtrees above the leaves: node (level, idx) covers leaves
-- [idx * 2^level, (idx + 1) * 2^level). Written once when complete, never changed; every root and
-- proof reads O(log n) of them.
CREATE TABLE tree_nodes (
    level INTEGER NOT NULL,
    idx   INTEGER NOT NULL,
    hash  BLOB NOT NULL,
    PRIMARY KEY (level, idx)
) WITHOUT ROWID;

-- Signed checkpoints, one per tree size, never pruned.
CREATE TABLE checkpoints (
    tree_size      INTEGER PRIMARY KEY,
    root_hash      BLOB NOT NULL,
    signed_note    TEXT NOT NULL,
    create_time_us INTEGER NOT NULL
);
