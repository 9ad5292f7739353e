-- 积分兑换: points a worker or a volunteer spent, recorded by the village or county as a
-- ledger entry (never edited or deleted). `person` is a worker account's username or a
-- volunteer's id, as `person_kind` says; `redeemed_on` is the China-time day it happened.
CREATE TABLE redemptions (
    id          TEXT PRIMARY KEY,
    person_kind TEXT NOT NULL,
    person      TEXT NOT NULL,
    points      BIGINT NOT NULL,
    purpose     TEXT NOT NULL,
    redeemed_on TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE INDEX redemptions_by_person ON redemptions (person_kind, person, created_at);
