-- A record's short case number, such as 2026-00042: the year it was filed (China time) and its
-- place among that year's records at the county. Given once when the county first stores the
-- record, never changed or reused; the per-year counter is the row `case_seq:<year>` of
-- `counters`. Records stored before this table get theirs when the server starts.
CREATE TABLE case_numbers (
    record_id TEXT PRIMARY KEY,
    year      INTEGER NOT NULL,
    seq       BIGINT NOT NULL,
    UNIQUE (year, seq)
);
