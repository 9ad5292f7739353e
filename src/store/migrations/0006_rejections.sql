-- Pushed entries the county server took but refused when it applied them (validation, scope:
-- e.g. the worker was moved to another grid while offline). The push was acknowledged, so the
-- outbox entry is gone; the refusal comes down with a pull and is kept here, keyed by the
-- server's sequence number (a page applied twice stores it once), until the worker dismisses it.

CREATE TABLE rejections (
    seq       INTEGER PRIMARY KEY,
    lane      TEXT NOT NULL,
    entry_seq INTEGER NOT NULL,
    kind      TEXT NOT NULL,
    record_id TEXT NOT NULL,
    op        TEXT NOT NULL,
    error     TEXT NOT NULL,
    message   TEXT NOT NULL,
    field     TEXT,
    at        TEXT NOT NULL,
    seen_at   TEXT
) STRICT;
CREATE INDEX rejections_open ON rejections(at) WHERE seen_at IS NULL;
