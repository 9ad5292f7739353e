-- Who a record is dispatched to: an ASSIGNEE account (a department or a person), one at a
-- time; a new dispatch replaces it. `dispatches` keeps every dispatch: who sent the record to
-- whom and when, with the optional note.
CREATE TABLE record_assignees (
    record_id     TEXT PRIMARY KEY,
    assignee      TEXT NOT NULL,
    dispatched_by TEXT NOT NULL,
    dispatched_at TEXT NOT NULL
);
CREATE INDEX record_assignees_by_assignee ON record_assignees (assignee);

CREATE TABLE dispatches (
    record_id     TEXT NOT NULL,
    assignee      TEXT NOT NULL,
    dispatched_by TEXT NOT NULL,
    dispatched_at TEXT NOT NULL,
    note          TEXT
);
CREATE INDEX dispatches_by_record ON dispatches (record_id, dispatched_at);
