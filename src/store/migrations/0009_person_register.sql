-- The household register kept on the phone: when a person moved out or died, and where a
-- floating person is registered.
ALTER TABLE people ADD COLUMN status_on TEXT;
ALTER TABLE people ADD COLUMN origin TEXT;
