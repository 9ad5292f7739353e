-- Surviving a county database restored from a backup.
--
-- Acknowledged outbox entries are kept for a while instead of deleted: a restored database
-- has lost what it acknowledged after the backup, and the device sends those entries again
-- (`Store::requeue_acked`). Acknowledging moves an entry here (`acked_at`, this device's
-- clock); it goes for good once acknowledged more than 30 days ago and not among its lane's
-- last 1,000. The outbox itself still holds only what waits to be pushed.
CREATE TABLE outbox_acked (
    lane         TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    kind         TEXT NOT NULL,
    record_id    TEXT NOT NULL,
    op           TEXT NOT NULL,
    fields       TEXT NOT NULL,
    base_version INTEGER NOT NULL,
    edited_at    TEXT NOT NULL,
    acked_at     TEXT NOT NULL,
    PRIMARY KEY (lane, seq)
) STRICT, WITHOUT ROWID;

-- A refusal is of one pushed entry, which its lane and sequence number name for good; the
-- server's `seq` numbers refusals within one generation of its database. Kept once per entry,
-- so a restored server refusing an entry again, or sending a refusal again under a new
-- number, adds nothing.
DELETE FROM rejections
 WHERE seq NOT IN (SELECT min(seq) FROM rejections GROUP BY lane, entry_seq);
CREATE UNIQUE INDEX rejections_entry ON rejections(lane, entry_seq);
