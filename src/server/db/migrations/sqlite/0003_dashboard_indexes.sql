-- The dashboard's reads: records, visits, households and hazards of a kind in an area and
-- period (queue, statistics, map). With the kind first and the grid code second, a village's
-- rows are one short index range; a county's are filtered on created_at inside the index.
-- Released migrations are never edited.
CREATE INDEX entities_kind_grid_created ON entities(kind, grid_code, created_at);
