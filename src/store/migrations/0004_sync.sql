-- Sync state on the device: conflicts the server recorded on this worker's data (shown with
-- both values until the secretary or county settles them). The pull cursor, server address
-- and session token live in `meta`.

CREATE TABLE conflicts (
    id          TEXT PRIMARY KEY,
    entity_kind TEXT NOT NULL,
    entity_id   TEXT NOT NULL,
    field       TEXT NOT NULL,
    kept        TEXT NOT NULL,
    lost        TEXT NOT NULL,
    kept_by     TEXT NOT NULL,
    lost_by     TEXT NOT NULL,
    kept_at     TEXT NOT NULL,
    lost_at     TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    settled_by  TEXT,
    settled_at  TEXT,
    version     INTEGER NOT NULL
) STRICT;
CREATE INDEX conflicts_entity ON conflicts(entity_id);
