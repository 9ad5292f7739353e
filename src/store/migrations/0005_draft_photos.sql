-- Photos attached to a report that is still a draft (one form per key, e.g. `hazard`), so
-- leaving the screen or closing the app loses nothing. The bytes live once in `photos`
-- (content-addressed); a photo that only a draft holds is not uploaded until a record names it.

CREATE TABLE draft_photos (
    form     TEXT NOT NULL,
    sha256   TEXT NOT NULL REFERENCES photos(sha256),
    name     TEXT NOT NULL,
    position INTEGER NOT NULL,
    PRIMARY KEY (form, sha256)
) STRICT;
