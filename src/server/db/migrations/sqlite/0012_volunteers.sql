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

-- A volunteer credited for a matter they helped with: once per record, with a note.
CREATE TABLE volunteer_credits (
    record_id    TEXT NOT NULL,
    volunteer_id TEXT NOT NULL,
    note         TEXT NOT NULL,
    credited_by  TEXT NOT NULL,
    credited_at  TEXT NOT NULL,
    PRIMARY KEY (record_id, volunteer_id)
);
CREATE INDEX volunteer_credits_by_volunteer ON volunteer_credits (volunteer_id);
