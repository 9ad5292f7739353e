-- Each device's recovery secret. The app keeps its database key sealed under this secret in
-- its key file; the county keeps only the secret, never the key. It is released only to the
-- device's own account signing in with its password from that device, and dropped when the
-- device is released.
CREATE TABLE device_recovery (
    device_id TEXT PRIMARY KEY,
    username  TEXT NOT NULL,
    secret    TEXT NOT NULL,
    stored_at TEXT NOT NULL
);
