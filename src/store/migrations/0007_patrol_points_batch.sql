-- A pulled batch of patrol points is stored once: applying one asks whether its batch is
-- here already. Without an index that question read every point stored, so a device's
-- first sync of a grid with thousands of points grew with the square of them.
CREATE INDEX patrol_points_batch ON patrol_points(batch_id);
