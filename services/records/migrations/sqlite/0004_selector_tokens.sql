-- Selector search on SQLite moves from one B-tree row per selector to one FTS5 row per record,
-- its selectors as tokens. Rows keyed by selector value land at random places in the index: at a
-- million records each ingest batch dirtied about one 4 KiB page per selector, which the WAL then
-- wrote and the checkpoint copied (docs/benchmarks.md, "Selector tokens"). FTS5 writes a batch's
-- tokens as one sorted segment and merges segments in the background of later writes.
--
-- A token is `k` followed by the upper-case hex of the UTF-8 text `{kind}:{region}:{value}` (see
-- `selector_token` in src/store/sql.rs): exact, no collisions, and made only of characters the
-- `ascii` tokenizer keeps in one token (it folds A-F to a-f on both sides of a match).
-- `contentless_delete` lets an update or purge remove a record's tokens by rowid (the record's seq).
CREATE VIRTUAL TABLE record_selector_tokens USING fts5(
    tokens, content = '', contentless_delete = 1, detail = none, tokenize = 'ascii'
);
INSERT INTO record_selector_tokens (rowid, tokens)
SELECT record_seq, group_concat('k' || hex(kind || ':' || region || ':' || value), ' ')
FROM record_selectors
GROUP BY record_seq;
DROP TABLE record_selectors;
