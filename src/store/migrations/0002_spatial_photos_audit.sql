-- Households nearest a point through an R*Tree, photos kept content-addressed, and the
-- device audit log of revealed personal data.

CREATE VIRTUAL TABLE household_rtree USING rtree(rid, min_lon, max_lon, min_lat, max_lat);

INSERT INTO household_rtree (rid, min_lon, max_lon, min_lat, max_lat)
    SELECT rid, lon, lon, lat, lat FROM households WHERE lon IS NOT NULL AND lat IS NOT NULL;

CREATE TRIGGER households_rtree_insert AFTER INSERT ON households
    WHEN NEW.lon IS NOT NULL AND NEW.lat IS NOT NULL
BEGIN
    INSERT INTO household_rtree (rid, min_lon, max_lon, min_lat, max_lat)
        VALUES (NEW.rid, NEW.lon, NEW.lon, NEW.lat, NEW.lat);
END;

CREATE TRIGGER households_rtree_update AFTER UPDATE OF lon, lat ON households
BEGIN
    DELETE FROM household_rtree WHERE rid = OLD.rid;
    INSERT INTO household_rtree (rid, min_lon, max_lon, min_lat, max_lat)
        SELECT NEW.rid, NEW.lon, NEW.lon, NEW.lat, NEW.lat
        WHERE NEW.lon IS NOT NULL AND NEW.lat IS NOT NULL;
END;

CREATE TRIGGER households_rtree_delete AFTER DELETE ON households
BEGIN
    DELETE FROM household_rtree WHERE rid = OLD.rid;
END;

CREATE TABLE photos (
    sha256     TEXT PRIMARY KEY,
    mime       TEXT NOT NULL,
    bytes      BLOB NOT NULL,
    created_at TEXT NOT NULL,
    uploaded   INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE TABLE audit_log (
    id          TEXT PRIMARY KEY,
    at          TEXT NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    target_kind TEXT NOT NULL,
    target_id   TEXT NOT NULL,
    field       TEXT
) STRICT;
