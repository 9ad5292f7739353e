-- The household a record is about (reported from the household's page), for the household's
-- page on the dashboard.
ALTER TABLE entities ADD COLUMN household_id TEXT;
UPDATE entities SET household_id = data::jsonb ->> 'household_id'
 WHERE data::jsonb ->> 'household_id' IS NOT NULL;
CREATE INDEX entities_household ON entities(household_id) WHERE household_id IS NOT NULL;
