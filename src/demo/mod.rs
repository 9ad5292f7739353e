//! A deterministic demo county in the article's shape: 东乡区, 132 villages cut into 693 grids
//! whose polygons tile each village, with households, people, tags and some history.
//!
//! Geography is made at once (it is small). Each grid's population and history is made on
//! demand from its own random stream (`seed` and the grid's index), so one worker's scope is
//! cheap to make, grids can be made in any order, and the same seed always gives the same
//! county. Ids are UUIDv7 built from the generated creation time and the stream, so they are
//! deterministic too.

mod geography;
mod history;
pub mod names;
mod population;

use std::io::Write;

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};
use geo::{Coord, LineString, Polygon};
use rand::seq::IndexedRandom;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use uuid::Uuid;

use crate::domain::codes::*;
use crate::domain::geo::{GeoPoint, Grid, GridCode, TrackPoint, track_length_m};
use crate::domain::lifecycle::{Status, Who, lifecycle};
use crate::domain::model::*;
use crate::domain::scope::Scope;
use crate::domain::validate::IdNumber;
use crate::store::{Store, StoreError};
use population::GridGen;

/// How big a county to make.
#[derive(Debug, Clone, PartialEq)]
pub struct CountySpec {
    pub seed: u64,
    /// Number of villages (the article's county: 132).
    pub villages: usize,
    /// Number of grids, at least one per village (the article's county: 693).
    pub grids: usize,
    /// Households per grid, drawn evenly from this inclusive range.
    pub households_per_grid: (u32, u32),
    /// History records (visits and event records) per household, on average.
    pub history_per_household: f64,
    /// The day the county is "now": history lies before it.
    pub today: NaiveDate,
}

impl CountySpec {
    /// Small enough to start in seconds: 12 villages, 63 grids, 30-80 households a grid.
    pub fn small(seed: u64, today: NaiveDate) -> CountySpec {
        CountySpec {
            seed,
            villages: 12,
            grids: 63,
            households_per_grid: (30, 80),
            history_per_household: 4.0,
            today,
        }
    }

    /// The article's county at full size: 132 villages, 693 grids, 100-500 households a grid.
    pub fn full(seed: u64, today: NaiveDate) -> CountySpec {
        CountySpec {
            seed,
            villages: 132,
            grids: 693,
            households_per_grid: (100, 500),
            history_per_household: 4.0,
            today,
        }
    }

    /// The sync benchmark's grid: 500 households, about 2,000 people and 5,000 history records.
    pub fn bench(seed: u64, today: NaiveDate) -> CountySpec {
        CountySpec {
            seed,
            villages: 132,
            grids: 693,
            households_per_grid: (500, 500),
            history_per_household: 10.0,
            today,
        }
    }
}

/// A demo account's person.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Worker {
    pub username: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DemoTown {
    pub code: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DemoVillage {
    pub code: String,
    pub name: String,
    pub town: usize,
    pub boundary: Polygon<f64>,
    /// Indexes into [`County::grids`].
    pub grids: std::ops::Range<usize>,
    /// The village secretary (网格长).
    pub secretary: Worker,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DemoGrid {
    pub grid: Grid,
    pub village: usize,
    /// The grid worker (网格员).
    pub worker: Worker,
    /// Corners: south-west, south-east, north-east, north-west.
    quad: [Coord<f64>; 4],
}

/// The generated county.
#[derive(Debug, Clone)]
pub struct County {
    pub spec: CountySpec,
    pub towns: Vec<DemoTown>,
    pub villages: Vec<DemoVillage>,
    pub grids: Vec<DemoGrid>,
}

fn rng_for(seed: u64, stream: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed ^ stream.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// A deterministic UUIDv7 for something made at `at`.
fn id_at(rng: &mut ChaCha8Rng, at: DateTime<Utc>) -> Uuid {
    let bytes: [u8; 10] = rng.random();
    uuid::Builder::from_unix_timestamp_millis(at.timestamp_millis().max(0) as u64, &bytes)
        .into_uuid()
}

fn lerp(a: Coord<f64>, b: Coord<f64>, t: f64) -> Coord<f64> {
    Coord {
        x: a.x + (b.x - a.x) * t,
        y: a.y + (b.y - a.y) * t,
    }
}

/// The point at (u, v) of a quad (bilinear): inside it for u, v in [0, 1] when it is convex.
fn in_quad(q: &[Coord<f64>; 4], u: f64, v: f64) -> Coord<f64> {
    lerp(lerp(q[0], q[1], u), lerp(q[3], q[2], u), v)
}

fn quad_polygon(q: &[Coord<f64>; 4]) -> Polygon<f64> {
    Polygon::new(LineString::from(vec![q[0], q[1], q[2], q[3], q[0]]), vec![])
}

fn round6(c: Coord<f64>) -> Coord<f64> {
    Coord {
        x: (c.x * 1e6).round() / 1e6,
        y: (c.y * 1e6).round() / 1e6,
    }
}

impl County {
    /// The index of the grid with this id.
    pub fn grid_index_of(&self, id: Uuid) -> Option<usize> {
        self.grids.iter().position(|g| g.grid.id == id)
    }

    /// The population and history of one grid, made from its own random stream.
    pub fn population(&self, grid: usize) -> Scope {
        GridGen::new(self, grid).run()
    }

    /// Geography, cadence and the population of the given grids.
    pub fn scope(&self, grids: &[usize]) -> Scope {
        let mut s = Scope {
            grids: grids.iter().map(|g| self.grids[*g].grid.clone()).collect(),
            cadence: Tag::ALL
                .iter()
                .map(|t| (*t, t.default_cadence_days()))
                .collect(),
            ..Default::default()
        };
        for g in grids {
            let p = self.population(*g);
            s.houses.extend(p.houses);
            s.households.extend(p.households);
            s.people.extend(p.people);
            s.visits.extend(p.visits);
            s.records.extend(p.records);
            s.sessions.extend(p.sessions);
            s.reports.extend(p.reports);
            s.replies.extend(p.replies);
            s.tracks.extend(p.tracks);
            s.history.extend(p.history);
        }
        s
    }
}

fn rng_sex(rng: &mut ChaCha8Rng) -> Sex {
    if rng.random_bool(0.5) {
        Sex::Male
    } else {
        Sex::Female
    }
}

fn surname(rng: &mut ChaCha8Rng) -> &'static str {
    // Earlier surnames are more common: take the smaller of two draws.
    let n = names::SURNAMES.len();
    names::SURNAMES[rng.random_range(0..n).min(rng.random_range(0..n))]
}

fn given(rng: &mut ChaCha8Rng, sex: Sex) -> String {
    let pool = if sex == Sex::Male {
        names::GIVEN_MALE
    } else {
        names::GIVEN_FEMALE
    };
    let a = pool.choose(rng).expect("non-empty");
    if rng.random_bool(0.7) {
        format!("{a}{}", pool.choose(rng).expect("non-empty"))
    } else {
        (*a).to_owned()
    }
}

fn person_name(rng: &mut ChaCha8Rng, sex: Sex) -> String {
    format!("{}{}", surname(rng), given(rng, sex))
}

/// A valid 居民身份证 number for the region, birth date and sex.
pub fn make_id_number(rng: &mut ChaCha8Rng, region: &str, birth: NaiveDate, sex: Sex) -> String {
    let order: u32 = rng.random_range(0..50) * 2 + if sex == Sex::Male { 1 } else { 0 };
    let seq = rng.random_range(0..10) * 100 + order;
    let first17 = format!("{region}{}{seq:03}", birth.format("%Y%m%d"));
    format!("{first17}{}", IdNumber::check_char(&first17))
}

/// Writes a worker's grids into a device store as remote state and signs the worker in.
pub fn seed_device(
    store: &mut Store,
    county: &County,
    grids: &[usize],
    worker: &str,
) -> Result<Scope, StoreError> {
    let scope = county.scope(grids);
    store.import_scope(&scope, county.spec.today.and_time(NaiveTime::MIN).and_utc())?;
    store.set_worker(worker)?;
    Ok(scope)
}

/// One NDJSON line per record of a scope, each with a string `id` and a `type`: what the sync
/// benchmark feeds to the PouchDB peer. Returns the number of lines.
pub fn write_ndjson(scope: &Scope, mut w: impl Write) -> std::io::Result<usize> {
    let mut n = 0;
    let mut line = |kind: &str, mut v: serde_json::Value| -> std::io::Result<()> {
        if let serde_json::Value::Object(m) = &mut v {
            m.insert("type".into(), kind.into());
        }
        serde_json::to_writer(&mut w, &v)?;
        w.write_all(b"\n")?;
        n += 1;
        Ok(())
    };
    let j = |v: &dyn erased::Ser| v.json();
    for g in &scope.grids {
        let mut v = serde_json::json!({
            "id": g.id, "code": g.code, "name": g.name, "village": g.village_name, "town": g.town_name,
        });
        v["boundary"] = serde_json::from_str(&crate::domain::geo::polygon_to_geojson(&g.boundary))
            .expect("geojson");
        line("GRID", v)?;
    }
    for h in &scope.houses {
        line("HOUSE", j(h))?;
    }
    for h in &scope.households {
        line("HOUSEHOLD", j(h))?;
    }
    for p in &scope.people {
        line("PERSON", j(p))?;
    }
    for v in &scope.visits {
        line("VISIT", j(v))?;
    }
    for r in &scope.records {
        line(r.domain().code(), r.to_json())?;
    }
    for s in &scope.sessions {
        line("MEDIATION_SESSION", j(s))?;
    }
    for r in &scope.reports {
        line("EMERGENCY_REPORT", j(r))?;
    }
    for r in &scope.replies {
        line("REPLY", j(r))?;
    }
    for t in &scope.tracks {
        line("PATROL_POINTS", j(t))?;
    }
    Ok(n)
}

mod erased {
    /// Serialises any of the scope's types to a JSON value.
    pub trait Ser {
        fn json(&self) -> serde_json::Value;
    }
    impl<T: serde::Serialize> Ser for T {
        fn json(&self) -> serde_json::Value {
            serde_json::to_value(self).expect("demo values serialise")
        }
    }
}
