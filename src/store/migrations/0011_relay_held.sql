-- The village office's relay: what a device left there is held at the office (已交村办) and
-- forwarded to the county by the relay. Such an entry stays in the outbox, marked with when
-- the office took it, until the county's own acknowledgement takes it out; a sync with the
-- county sends it again (its watermark answers it as already received if the relay forwarded
-- it first). A photo the office has whole is marked the same way; it counts as uploaded only
-- once the county has it.
ALTER TABLE outbox ADD COLUMN held_at TEXT;
ALTER TABLE photos ADD COLUMN held_at TEXT;
