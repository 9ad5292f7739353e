-- Sessions slide with use: each use pushes `expires_at` out (at most about once a day), never
-- past `ends_at`, the absolute end fixed at sign-in (180 days after it). A session made
-- before this migration ends 180 days after it was made, or when it was due to expire if
-- that is later.
ALTER TABLE sessions ADD COLUMN ends_at TEXT NOT NULL DEFAULT '';
UPDATE sessions SET ends_at = CASE
    WHEN expires_at::timestamptz > created_at::timestamptz + interval '180 days' THEN expires_at
    ELSE to_char((created_at::timestamptz + interval '180 days') AT TIME ZONE 'UTC',
                 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
END;
