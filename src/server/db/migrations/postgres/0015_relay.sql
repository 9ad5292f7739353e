-- A village-office relay's own tables (its database is a server database: the county's rows
-- of its village are mirrored into the server tables; these hold what the office keeps for
-- the county). Unused on the county's own database.

-- Entries a device left at the office, as it pushed them (the entry's JSON, fields as they
-- came), until the county acknowledges them. skew_ms: the relay's clock less the device's at
-- receipt, so the entry goes up with the device's clock as the relay measured it.
CREATE TABLE relay_held (
    device_id   TEXT NOT NULL,
    lane        TEXT NOT NULL,
    seq         BIGINT NOT NULL,
    username    TEXT NOT NULL,
    entry       TEXT NOT NULL,
    skew_ms     BIGINT NOT NULL,
    received_at TEXT NOT NULL,
    PRIMARY KEY (device_id, lane, seq)
);

-- Each device lane seen at the office: what the county acknowledged of it through this relay,
-- and the entry the county said it expects when it answered a gap (the device sends it again).
CREATE TABLE relay_lanes (
    device_id    TEXT NOT NULL,
    lane         TEXT NOT NULL,
    username     TEXT NOT NULL,
    county_acked BIGINT NOT NULL DEFAULT 0,
    gap_expected BIGINT,
    PRIMARY KEY (device_id, lane)
);

-- Photos a device uploads at the office, by photo and device (a photo is forwarded as the
-- device that named it): its size as the device's entry named it, the bytes received, whether
-- complete (checked against its SHA-256), and how much of it the county has.
CREATE TABLE relay_photos (
    sha256           TEXT NOT NULL,
    device_id        TEXT NOT NULL,
    username         TEXT NOT NULL,
    size             BIGINT NOT NULL,
    received         BIGINT NOT NULL DEFAULT 0,
    complete         BIGINT NOT NULL DEFAULT 0,
    forwarded_offset BIGINT NOT NULL DEFAULT 0,
    named_at         TEXT NOT NULL,
    PRIMARY KEY (sha256, device_id)
);

-- A photo's bytes as they arrive, chunk by chunk (pos: the chunk's first byte).
CREATE TABLE relay_photo_chunks (
    sha256    TEXT NOT NULL,
    device_id TEXT NOT NULL,
    pos       BIGINT NOT NULL,
    bytes     BYTEA NOT NULL,
    PRIMARY KEY (sha256, device_id, pos)
);

-- Devices that pushed or pulled at the office, by day (China time), for the status page.
CREATE TABLE relay_devices_seen (
    day       TEXT NOT NULL,
    device_id TEXT NOT NULL,
    PRIMARY KEY (day, device_id)
);
