-- Pushes are acknowledged once durably received and applied just after, in the order they
-- arrived (one device's lane in its own order), so a thousand devices pushing at once each
-- wait for a row insert, not for everyone else's records to be checked and written.
-- A row leaves the inbox when it has been applied; an entry refused then is kept, whole,
-- in push_rejections and goes down to its device with the next pull.
CREATE TABLE push_inbox (
    id          BIGSERIAL PRIMARY KEY,
    device_id   TEXT NOT NULL,
    lane        TEXT NOT NULL,
    username    TEXT NOT NULL,
    device_now  TEXT NOT NULL,
    received_at TEXT NOT NULL,
    -- The entries, JSON, in sequence order.
    entries     TEXT NOT NULL
);
CREATE INDEX push_inbox_device ON push_inbox (device_id);

CREATE TABLE push_rejections (
    -- A server sequence number, so a pull delivers it once, in order.
    seq        BIGINT PRIMARY KEY,
    device_id  TEXT NOT NULL,
    username   TEXT NOT NULL,
    lane       TEXT NOT NULL,
    entry_seq  BIGINT NOT NULL,
    kind       TEXT NOT NULL,
    record_id  TEXT NOT NULL,
    op         TEXT NOT NULL,
    error      TEXT NOT NULL,
    message    TEXT NOT NULL,
    field      TEXT,
    -- The entry as pushed, JSON.
    entry      TEXT NOT NULL,
    at         TEXT NOT NULL
);
CREATE INDEX push_rejections_device ON push_rejections (device_id, seq);
