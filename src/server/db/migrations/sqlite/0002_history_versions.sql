-- Protocol 2: each status change carries the version (server sequence number) of the change
-- that made it, so a pull sends a device only the status changes after its base. Changes made
-- before this migration take their record's version now: never older than they are, so at
-- worst a device is sent one again.
ALTER TABLE status_history ADD COLUMN version INTEGER;
UPDATE status_history
   SET version = (SELECT version FROM entities WHERE entities.id = status_history.record_id);
