-- One row per household with what its card and "who is due" need, kept current by the store
-- in the same transaction as every write that changes it (people, tags, visits, cadence).
-- Reading the round's lists is then one indexed scan instead of a join over every person.
-- The store fills it for existing households when it opens an older database.

CREATE TABLE household_summary (
    household_id    TEXT PRIMARY KEY REFERENCES households(id) ON DELETE CASCADE,
    head_name       TEXT,
    members         INTEGER NOT NULL,
    care_tags       TEXT NOT NULL,            -- space-separated codes; never a managed tag
    cadence_days    INTEGER NOT NULL,
    reason_tag      TEXT,                     -- the care tag that sets the cadence
    last_visited_on TEXT,
    agreed_next_due TEXT,
    due_on          TEXT                      -- NULL: never visited, due now
) STRICT;
CREATE INDEX household_summary_due ON household_summary(due_on);
