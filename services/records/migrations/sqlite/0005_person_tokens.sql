-- Person search on SQLite finds candidates through tokens, as selector search does since 0004:
-- the person rows were keyed by name, so each ingest batch inserted them at random places in a
-- growing index. Now each record's persons get one FTS5 row of tokens, `s` + hex(surname) and,
-- for a known given name, `g` + hex(surname ':' given) (see `person_tokens` in src/store/sql.rs),
-- and their rows are keyed by record first, so new records append at the end of the table. A
-- search takes the records a token names and checks the other parts of the name on their rows.
CREATE VIRTUAL TABLE record_person_tokens USING fts5(
    tokens, content = '', contentless_delete = 1, detail = none, tokenize = 'ascii'
);
INSERT INTO record_person_tokens (rowid, tokens)
SELECT record_seq, group_concat(token, ' ')
FROM (
    SELECT record_seq, 's' || hex(surname) AS token FROM record_persons
    UNION
    SELECT record_seq, 'g' || hex(surname || ':' || given) AS token FROM record_persons WHERE given <> ''
)
GROUP BY record_seq;

CREATE TABLE record_persons_by_record (
    record_seq INTEGER NOT NULL,
    surname    TEXT    NOT NULL,
    given      TEXT    NOT NULL,
    middle     TEXT    NOT NULL,
    suffix     TEXT    NOT NULL,
    birth_date TEXT    NOT NULL,
    PRIMARY KEY (record_seq, surname, given, middle, suffix, birth_date)
) WITHOUT ROWID;
INSERT INTO record_persons_by_record (record_seq, surname, given, middle, suffix, birth_date)
SELECT record_seq, surname, given, middle, suffix, birth_date FROM record_persons;
DROP TABLE record_persons;
ALTER TABLE record_persons_by_record RENAME TO record_persons;
