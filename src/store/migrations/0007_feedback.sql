-- The county's feedback on this worker's records, as it came down with pulls: a reply by
-- someone else, or a status move someone else made. Kept once per change (a page applied
-- twice writes it once: `id` is the reply's id, or the record, status and time of the move)
-- until the worker has read it (`read_at`): the feedback inbox and its unread badges.

CREATE TABLE feedback (
    id        TEXT PRIMARY KEY,
    record_id TEXT NOT NULL,
    kind      TEXT NOT NULL,
    actor     TEXT NOT NULL,
    status    TEXT,
    text      TEXT NOT NULL,
    at        TEXT NOT NULL,
    read_at   TEXT
) STRICT;
CREATE INDEX feedback_unread ON feedback(at) WHERE read_at IS NULL;
CREATE INDEX feedback_record ON feedback(record_id);
