-- FTS5 writes each transaction's index entries as a new segment and, by default, merges a level's
-- segments into one on the next level as soon as four of them exist (`automerge` 4). Under bulk
-- ingest that merging rewrote the same entries level after level: 14 % of the records pod's CPU
-- in a profile of a 300,000-record ingest. At 8 the index is rewritten on fewer levels; a term
-- is looked up in up to seven segments per level instead of three. In a prototype (200,000
-- documents of 90 words, 1,000 per transaction, SQLite 3.51) inserts ran at 28,800-31,400
-- documents/s against 21,100-23,000, and a newest-first query took 0.25 ms against 0.14-0.22 ms
-- (docs/benchmarks.md, "Fewer FTS5 merges"). The setting is kept in each table's `_config`.
INSERT INTO records_text (records_text, rank) VALUES ('automerge', 8);
INSERT INTO record_selector_tokens (record_selector_tokens, rank) VALUES ('automerge', 8);
INSERT INTO record_person_tokens (record_person_tokens, rank) VALUES ('automerge', 8);
