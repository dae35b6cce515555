-- Full text on SQLite moves from an external-content FTS5 index over `records.title` and
-- `records.narrative`, kept in step by triggers, to a contentless one the store writes itself,
-- and the two columns leave the records row: their text is in `doc` already, so every record
-- stored it twice, and the wider rows packed fewer to a page (in a prototype of the table, 8.4
-- against 5.5 KiB written per record; docs/benchmarks.md, "Text in the row once").
-- Searches never read the text back from the index (they return `doc`), so nothing needs the
-- content. `contentless_delete` lets an update, deletion or purge remove a record's entry by
-- rowid (the record's seq), without the old text.
CREATE VIRTUAL TABLE records_text USING fts5(
    title, narrative, content = '', contentless_delete = 1, tokenize = 'porter unicode61'
);
INSERT INTO records_text (rowid, title, narrative)
SELECT seq, title, narrative FROM records WHERE deleted = 0;
DROP TRIGGER records_fts_insert;
DROP TRIGGER records_fts_delete;
DROP TRIGGER records_fts_update;
DROP TABLE records_fts;
ALTER TABLE records DROP COLUMN title;
ALTER TABLE records DROP COLUMN narrative;
