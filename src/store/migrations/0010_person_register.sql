-- The household register kept on the phone: when a person moved out or died, and where a
-- floating person is registered.
ALTER TABLE people ADD COLUMN status_on TEXT;
ALTER TABLE people ADD COLUMN origin TEXT;

-- The household a record is about (reported from the household's page), for its page's list.
ALTER TABLE records ADD COLUMN household_id TEXT;
UPDATE records SET household_id = json_extract(data, '$.household_id')
 WHERE json_extract(data, '$.household_id') IS NOT NULL;
CREATE INDEX records_household ON records(household_id) WHERE household_id IS NOT NULL;
