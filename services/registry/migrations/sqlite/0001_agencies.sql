-- Agencies taking part in the mesh. Contacts are a JSON array of {name, phone, email, around_the_clock}.
CREATE TABLE agencies (
    code              TEXT PRIMARY KEY,
    display_name      TEXT NOT NULL,
    parent_department TEXT NOT NULL,
    jurisdiction      TEXT NOT NULL,
    state             TEXT NOT NULL CHECK (state IN ('active', 'suspended')),
    duty_desk         TEXT NOT NULL,
    contacts          TEXT NOT NULL,
    suspend_reason    TEXT NOT NULL DEFAULT '',
    suspend_time_us   INTEGER,
    create_time_us    INTEGER NOT NULL,
    update_time_us    INTEGER NOT NULL,
    revision          INTEGER NOT NULL,
    request_id        TEXT
);
