-- The device store's first schema: one worker's grids, their households and people, the
-- records the worker files, and the outbox that sync pushes. Released migrations are never
-- edited: a fix is a new file.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

CREATE TABLE grids (
    id           TEXT PRIMARY KEY,
    code         TEXT NOT NULL UNIQUE,
    name         TEXT NOT NULL,
    village_name TEXT NOT NULL,
    town_name    TEXT NOT NULL,
    county_name  TEXT NOT NULL,
    boundary     TEXT NOT NULL,              -- GeoJSON Polygon
    version      INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE TABLE houses (
    id       TEXT PRIMARY KEY,
    grid_id  TEXT NOT NULL REFERENCES grids(id),
    number   TEXT NOT NULL,
    address  TEXT NOT NULL,
    use_code TEXT NOT NULL,
    lon      REAL,
    lat      REAL,
    version  INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX houses_grid ON houses(grid_id);

CREATE TABLE households (
    rid      INTEGER PRIMARY KEY,            -- stable integer key for the spatial index
    id       TEXT NOT NULL UNIQUE,
    grid_id  TEXT NOT NULL REFERENCES grids(id),
    house_id TEXT REFERENCES houses(id),
    head_id  TEXT,
    address  TEXT NOT NULL,
    lon      REAL,
    lat      REAL,
    version  INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX households_grid ON households(grid_id);

CREATE TABLE people (
    id           TEXT PRIMARY KEY,
    household_id TEXT NOT NULL REFERENCES households(id),
    name         TEXT NOT NULL,
    sex          TEXT NOT NULL,
    birth_date   TEXT,
    id_type      TEXT NOT NULL,
    id_number    TEXT,
    id_rev       TEXT,                        -- id_number reversed: "last digits" is a prefix search
    phone        TEXT,
    person_type  TEXT NOT NULL,
    residence    TEXT NOT NULL,
    status       TEXT NOT NULL,
    relation     TEXT NOT NULL,
    version      INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX people_household ON people(household_id);
CREATE INDEX people_id_rev ON people(id_rev);
CREATE INDEX people_name ON people(name);

CREATE TABLE person_tags (
    person_id TEXT NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    tag       TEXT NOT NULL,
    PRIMARY KEY (person_id, tag)
) STRICT, WITHOUT ROWID;
CREATE INDEX person_tags_tag ON person_tags(tag, person_id);

-- Visit cadence per tag, in days, as the county configures it.
CREATE TABLE visit_cadence (
    tag  TEXT PRIMARY KEY,
    days INTEGER NOT NULL CHECK (days > 0)
) STRICT;

CREATE TABLE visits (
    id           TEXT PRIMARY KEY,
    household_id TEXT NOT NULL REFERENCES households(id),
    grid_id      TEXT NOT NULL REFERENCES grids(id),
    author       TEXT NOT NULL,
    visited_on   TEXT NOT NULL,
    purpose      TEXT NOT NULL,
    notes        TEXT NOT NULL,
    next_due     TEXT,
    lon          REAL,
    lat          REAL,
    created_at   TEXT NOT NULL
) STRICT;
CREATE INDEX visits_household ON visits(household_id, visited_on);

-- Event records of every domain: indexed columns beside the whole record as JSON.
CREATE TABLE records (
    id         TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    grid_id    TEXT NOT NULL REFERENCES grids(id),
    author     TEXT NOT NULL,
    status     TEXT NOT NULL,
    urgency    TEXT NOT NULL,
    category   TEXT NOT NULL,
    summary    TEXT NOT NULL,
    lon        REAL,
    lat        REAL,
    patrol_id  TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    data       TEXT NOT NULL,
    version    INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX records_status ON records(status, kind);
CREATE INDEX records_kind ON records(kind, status);
CREATE INDEX records_grid ON records(grid_id, created_at);
CREATE INDEX records_patrol ON records(patrol_id) WHERE patrol_id IS NOT NULL;

-- Append-only children of a record: mediation sessions, emergency reports, county replies.
CREATE TABLE entries (
    id         TEXT PRIMARY KEY,
    record_id  TEXT NOT NULL REFERENCES records(id),
    kind       TEXT NOT NULL,
    data       TEXT NOT NULL,
    author     TEXT NOT NULL,
    created_at TEXT NOT NULL
) STRICT;
CREATE INDEX entries_record ON entries(record_id, kind, created_at);

CREATE TABLE status_history (
    id          INTEGER PRIMARY KEY,
    record_id   TEXT NOT NULL REFERENCES records(id),
    from_status TEXT NOT NULL,
    to_status   TEXT NOT NULL,
    at          TEXT NOT NULL,
    actor       TEXT NOT NULL,
    note        TEXT
) STRICT;
CREATE INDEX status_history_record ON status_history(record_id, at);

CREATE TABLE patrol_points (
    patrol_id  TEXT NOT NULL REFERENCES records(id),
    batch_id   TEXT NOT NULL,
    at         TEXT NOT NULL,
    lon        REAL NOT NULL,
    lat        REAL NOT NULL,
    accuracy_m REAL
) STRICT;
CREATE INDEX patrol_points_patrol ON patrol_points(patrol_id, at);

-- The outbox: every local write, in order, per lane, until the server acknowledges it.
CREATE TABLE outbox (
    lane         TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    kind         TEXT NOT NULL,
    record_id    TEXT NOT NULL,
    op           TEXT NOT NULL,
    fields       TEXT NOT NULL,
    base_version INTEGER NOT NULL,
    edited_at    TEXT NOT NULL,
    PRIMARY KEY (lane, seq)
) STRICT, WITHOUT ROWID;

-- The last sequence number handed out per lane; never goes back, so numbers stay dense
-- across acknowledgements.
CREATE TABLE outbox_seq (
    lane     TEXT PRIMARY KEY,
    last_seq INTEGER NOT NULL
) STRICT;
INSERT INTO outbox_seq (lane, last_seq) VALUES ('URGENT', 0), ('NORMAL', 0);
