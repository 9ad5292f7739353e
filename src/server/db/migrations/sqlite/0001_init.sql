-- The county server's first schema (SQLite). Released migrations are never edited.

CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) STRICT;
INSERT INTO counters (name, value) VALUES ('change_seq', 0);

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    display_name  TEXT NOT NULL,
    role          TEXT NOT NULL,
    scope_code    TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    disabled      INTEGER NOT NULL DEFAULT 0,
    created_at    TEXT NOT NULL
) STRICT;

CREATE TABLE user_grids (
    user_id TEXT NOT NULL REFERENCES users(id),
    grid_id TEXT NOT NULL,
    PRIMARY KEY (user_id, grid_id)
) STRICT;

CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users(id),
    device_id  TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    revoked    INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX sessions_user ON sessions(user_id);

CREATE TABLE login_failures (
    username TEXT NOT NULL,
    at       TEXT NOT NULL
) STRICT;
CREATE INDEX login_failures_user ON login_failures(username, at);

-- Every synced entity (grids, houses, households, people, visits, records and their
-- children, replies, conflicts): the whole entity as JSON, its scope, and per-field versions.
-- `version` is the server sequence number of its last change: pull reads entities in scope
-- in version order, so this table is also the ordered change log.
CREATE TABLE entities (
    id         TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    grid_id    TEXT NOT NULL,
    grid_code  TEXT NOT NULL,
    parent_id  TEXT,
    status     TEXT,
    urgency    TEXT,
    category   TEXT,
    author     TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    data       TEXT NOT NULL,
    meta       TEXT NOT NULL,
    version    INTEGER NOT NULL
) STRICT;
CREATE INDEX entities_scope ON entities(grid_code, version);
CREATE INDEX entities_version ON entities(version);
CREATE INDEX entities_kind ON entities(kind, status);
CREATE INDEX entities_parent ON entities(parent_id);

CREATE TABLE status_history (
    id          INTEGER PRIMARY KEY,
    record_id   TEXT NOT NULL,
    from_status TEXT NOT NULL,
    to_status   TEXT NOT NULL,
    at          TEXT NOT NULL,
    actor       TEXT NOT NULL,
    note        TEXT
) STRICT;
CREATE INDEX status_history_record ON status_history(record_id, id);

CREATE TABLE watermarks (
    device_id  TEXT NOT NULL,
    lane       TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    username   TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (device_id, lane)
) STRICT;

CREATE TABLE audit (
    id          INTEGER PRIMARY KEY,
    at          TEXT NOT NULL,
    username    TEXT NOT NULL,
    device_id   TEXT,
    action      TEXT NOT NULL,
    entity_kind TEXT,
    entity_id   TEXT,
    detail      TEXT
) STRICT;
CREATE INDEX audit_entity ON audit(entity_id);

CREATE TABLE photos (
    sha256      TEXT PRIMARY KEY,
    size        INTEGER NOT NULL,
    mime        TEXT NOT NULL,
    received    INTEGER NOT NULL,
    complete    INTEGER NOT NULL,
    data        BLOB,
    uploaded_by TEXT NOT NULL,
    created_at  TEXT NOT NULL
) STRICT;

CREATE TABLE photo_chunks (
    sha256 TEXT NOT NULL,
    pos    INTEGER NOT NULL,
    bytes  BLOB NOT NULL,
    PRIMARY KEY (sha256, pos)
) STRICT;

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;
