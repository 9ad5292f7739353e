-- What one account or one bad entry may do to others.
--
-- The push inbox: a row whose application fails for a reason that is not one entry's
-- (a database or program error) is retried a few times, then set aside (quarantined) so
-- that the rows behind it move on; an administrator sees it and can retry it.
ALTER TABLE push_inbox ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE push_inbox ADD COLUMN last_error TEXT;
ALTER TABLE push_inbox ADD COLUMN quarantined_at TEXT;

-- Photos: the device whose entry first named a photo uploads it; nobody else may probe or
-- write it. Rows from before this migration have none (their account still counts).
ALTER TABLE photos ADD COLUMN device_id TEXT;

-- Which record names which photo, and who attached it: a photo is readable by the accounts
-- whose scope holds a record it was attached to by an account allowed to (its uploader, or
-- one who could already read it). Filled from the records' `photos` lists.
CREATE TABLE record_photos (
    sha256    TEXT NOT NULL,
    record_id TEXT NOT NULL,
    grid_code TEXT NOT NULL,
    username  TEXT NOT NULL,
    PRIMARY KEY (sha256, record_id)
) STRICT;
CREATE INDEX record_photos_grid ON record_photos (sha256, grid_code);
INSERT OR IGNORE INTO record_photos (sha256, record_id, grid_code, username)
SELECT j.value, e.id, e.grid_code, COALESCE(p.uploaded_by, e.author, '')
FROM entities e, json_each(e.data, '$.photos') j
LEFT JOIN photos p ON p.sha256 = j.value
WHERE e.data LIKE '%"photos"%' AND json_type(e.data, '$.photos') = 'array'
  AND j.type = 'text';

-- A device id belongs to the account that first signed in with it.
CREATE TABLE devices (
    device_id   TEXT PRIMARY KEY,
    username    TEXT NOT NULL,
    enrolled_at TEXT NOT NULL
) STRICT;
INSERT OR IGNORE INTO devices (device_id, username, enrolled_at)
SELECT s.device_id, u.username, s.created_at
FROM sessions s JOIN users u ON u.id = s.user_id
ORDER BY s.created_at;

-- Failed sign-ins are counted per account and source (address, or an enrolled device), so
-- a stranger's guesses cannot lock a worker out.
ALTER TABLE login_failures ADD COLUMN source TEXT NOT NULL DEFAULT '';
ALTER TABLE login_failures ADD COLUMN device_id TEXT;
CREATE INDEX login_failures_source ON login_failures (username, source, at);
