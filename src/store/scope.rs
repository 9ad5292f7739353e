//! Remote state: the grids, households and records of a worker's scope as the server (or the
//! demo seeder) has them. Written without outbox entries: they did not happen on this device.
//! Also the worker's grids and the point-in-grid lookup over them.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};
use serde::Serialize;

use super::people::{write_house, write_household, write_person, write_visit};
use super::records::{write_entry, write_points, write_record, write_status_change};
use super::{Result, Store, StoreError, uuid};
use crate::domain::codes::Coded;
use crate::domain::geo::{GeoPoint, Grid, GridCode, polygon_from_geojson, polygon_to_geojson};
use crate::domain::model::EntityKind;
use crate::domain::spatial::{GridIndex, Location};

pub use crate::domain::scope::Scope;

pub(crate) fn write_grid(conn: &Connection, g: &Grid, version: i64) -> Result<()> {
    conn.prepare_cached("INSERT INTO grids (id, code, name, village_name, town_name, county_name, boundary, version)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (id) DO UPDATE SET code = excluded.code, name = excluded.name,
           village_name = excluded.village_name, town_name = excluded.town_name,
           county_name = excluded.county_name, boundary = excluded.boundary, version = excluded.version")?.execute(params![
            g.id.to_string(),
            g.code.as_str(),
            g.name,
            g.village_name,
            g.town_name,
            g.county_name,
            polygon_to_geojson(&g.boundary),
            version
        ],
    )?;
    Ok(())
}

impl Store {
    /// Writes a whole scope in one transaction, as remote state (no outbox entries).
    pub fn import_scope(&mut self, s: &Scope, now: DateTime<Utc>) -> Result<()> {
        self.tx(|tx| {
            for g in &s.grids {
                write_grid(tx, g, 1)?;
            }
            for (tag, days) in &s.cadence {
                tx.prepare_cached(
                    "INSERT INTO visit_cadence (tag, days) VALUES (?1, ?2)
                     ON CONFLICT (tag) DO UPDATE SET days = excluded.days",
                )?
                .execute(params![tag.code(), *days as i64])?;
            }
            for h in &s.houses {
                write_house(tx, h, 1)?;
            }
            for h in &s.households {
                write_household(tx, h, 1)?;
            }
            for p in &s.people {
                write_person(tx, p, 1, false)?;
            }
            for v in &s.visits {
                write_visit(tx, v)?;
            }
            for r in &s.records {
                write_record(tx, r, 1, now, false)?;
            }
            for m in &s.sessions {
                write_entry(
                    tx,
                    m.id,
                    m.dispute_id,
                    EntityKind::MediationSession,
                    &serde_json::to_value(m)?,
                    &m.author,
                    m.created_at,
                )?;
            }
            for r in &s.reports {
                write_entry(
                    tx,
                    r.id,
                    r.emergency_id,
                    EntityKind::EmergencyReport,
                    &serde_json::to_value(r)?,
                    &r.author,
                    r.created_at,
                )?;
            }
            for r in &s.replies {
                write_entry(
                    tx,
                    r.id,
                    r.record_id,
                    EntityKind::Reply,
                    &serde_json::to_value(r)?,
                    &r.author,
                    r.created_at,
                )?;
            }
            for t in &s.tracks {
                write_points(tx, t)?;
            }
            for c in &s.history {
                write_status_change(tx, c)?;
            }
            super::people::refresh_all_summaries(tx)?;
            Ok(())
        })
    }

    /// The grids on this device.
    pub fn grids(&self) -> Result<Vec<Grid>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, code, name, village_name, town_name, county_name, boundary FROM grids ORDER BY code",
        )?;
        stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, String>(6)?,
            ))
        })?
        .map(|row| {
            let (id, code, name, village_name, town_name, county_name, boundary) = row?;
            Ok(Grid {
                id: uuid(&id)?,
                code: GridCode::parse(&code).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                name,
                village_name,
                town_name,
                county_name,
                boundary: polygon_from_geojson(&boundary)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            })
        })
        .collect()
    }

    /// A spatial index over this device's grids.
    pub fn grid_index(&self) -> Result<GridIndex> {
        Ok(GridIndex::new(self.grids()?))
    }

    /// Which of my grids `p` lies in.
    pub fn locate(&self, p: &GeoPoint) -> Result<Location> {
        Ok(self.grid_index()?.locate(p))
    }

    /// Counts of what the store holds, for status lines and tests.
    pub fn counts(&self) -> Result<StoreCounts> {
        let n = |sql: &str| -> Result<u64> {
            Ok(self.conn.query_row(sql, [], |r| r.get::<_, i64>(0))? as u64)
        };
        Ok(StoreCounts {
            grids: n("SELECT count(*) FROM grids")?,
            households: n("SELECT count(*) FROM households")?,
            people: n("SELECT count(*) FROM people")?,
            visits: n("SELECT count(*) FROM visits")?,
            records: n("SELECT count(*) FROM records")?,
            outbox: n("SELECT count(*) FROM outbox")?,
        })
    }
}

/// Row counts of the main tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StoreCounts {
    pub grids: u64,
    pub households: u64,
    pub people: u64,
    pub visits: u64,
    pub records: u64,
    pub outbox: u64,
}
