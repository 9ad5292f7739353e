-- Volunteers (银龄使者 and other teams): people of a village who help with matters. They
-- never sign in; the village or county registers them and may deactivate one (kept, so their
-- history stays). The phone is stored as entered after checking; pages show it masked.
CREATE TABLE volunteers (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    phone        TEXT NOT NULL,
    team         TEXT NOT NULL,
    village_code TEXT NOT NULL,
    active       INTEGER NOT NULL DEFAULT 1,
    created_by   TEXT NOT NULL,
    created_at   TEXT NOT NULL
);
CREATE INDEX volunteers_by_village ON volunteers (village_code, name);
