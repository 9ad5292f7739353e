//! A deterministic demo county in the article's shape: 东乡区, 132 villages cut into 693 grids
//! whose polygons tile each village, with households, people, tags and some history.
//!
//! Geography is made at once (it is small). Each grid's population and history is made on
//! demand from its own random stream (`seed` and the grid's index), so one worker's scope is
//! cheap to make, grids can be made in any order, and the same seed always gives the same
//! county. Ids are UUIDv7 built from the generated creation time and the stream, so they are
//! deterministic too.

pub mod names;

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
    /// Makes the county's geography: towns, villages tiling the county, grids tiling each village.
    pub fn generate(spec: &CountySpec) -> County {
        assert!(
            spec.villages > 0 && spec.grids >= spec.villages,
            "need at least one grid per village"
        );
        let mut rng = rng_for(spec.seed, u64::MAX);
        // Villages are the cells of a jittered lattice over the county's extent.
        let cols = (spec.villages as f64).sqrt().ceil() as usize;
        let rows = spec.villages.div_ceil(cols);
        let ([x0, y0], [x1, y1]) = names::EXTENT;
        let (dx, dy) = ((x1 - x0) / cols as f64, (y1 - y0) / rows as f64);
        let mut lattice = vec![vec![Coord { x: 0.0, y: 0.0 }; cols + 1]; rows + 1];
        for (r, row) in lattice.iter_mut().enumerate() {
            for (c, p) in row.iter_mut().enumerate() {
                let inner = r > 0 && r < rows && c > 0 && c < cols;
                let (jx, jy) = if inner {
                    (rng.random_range(-0.18..0.18), rng.random_range(-0.18..0.18))
                } else {
                    (0.0, 0.0)
                };
                *p = round6(Coord {
                    x: x0 + (c as f64 + jx) * dx,
                    y: y0 + (r as f64 + jy) * dy,
                });
            }
        }
        // Grids per village: an even share, the remainder to villages chosen by the stream.
        let mut per_village = vec![spec.grids / spec.villages; spec.villages];
        let mut order: Vec<usize> = (0..spec.villages).collect();
        rand::seq::SliceRandom::shuffle(&mut order[..], &mut rng);
        for i in order.iter().take(spec.grids % spec.villages) {
            per_village[*i] += 1;
        }
        let n_towns = names::TOWNS.len().min(spec.villages.div_ceil(8)).max(1);
        let towns: Vec<DemoTown> = (0..n_towns)
            .map(|t| DemoTown {
                code: format!("{}{}", names::COUNTY_CODE, 100 + t),
                name: names::TOWNS[t].to_owned(),
            })
            .collect();
        let mut village_names: Vec<String> = names::NAMED_VILLAGES
            .iter()
            .map(|s| s.to_string())
            .collect();
        'outer: for p in names::VILLAGE_PREFIXES {
            for s in ["村", "新村"] {
                if village_names.len() >= spec.villages {
                    break 'outer;
                }
                village_names.push(format!("{p}{s}"));
            }
        }
        for s in names::SURNAMES {
            if village_names.len() >= spec.villages {
                break;
            }
            let n = format!("{s}家村");
            if !village_names.contains(&n) {
                village_names.push(n);
            }
        }
        let mut n = 0;
        while village_names.len() < spec.villages {
            n += 1;
            village_names.push(format!("新建{n}村"));
        }
        let mut villages = Vec::new();
        let mut grids = Vec::new();
        let per_town = spec.villages.div_ceil(n_towns);
        for v in 0..spec.villages {
            // Snake order keeps a town's villages next to each other.
            let (r, c0) = (v / cols, v % cols);
            let c = if r % 2 == 0 { c0 } else { cols - 1 - c0 };
            let q = [
                lattice[r][c],
                lattice[r][c + 1],
                lattice[r + 1][c + 1],
                lattice[r + 1][c],
            ];
            let town = (v / per_town).min(n_towns - 1);
            let code = format!("{}{}", towns[town].code, 200 + v % per_town);
            let name = village_names[v].clone();
            let n_grids = per_village[v];
            // Cut the village into strips along its width, at jittered fractions.
            let mut cuts: Vec<f64> = (0..=n_grids)
                .map(|i| {
                    let t = i as f64 / n_grids as f64;
                    if i == 0 || i == n_grids {
                        t
                    } else {
                        t + rng.random_range(-0.25..0.25) / n_grids as f64
                    }
                })
                .collect();
            cuts.sort_by(f64::total_cmp);
            let first = grids.len();
            for g in 0..n_grids {
                let (a, b) = (cuts[g], cuts[g + 1]);
                // Not rounded: a rounded cut point would leave the village edge and open slivers.
                let gq = [
                    lerp(q[0], q[1], a),
                    lerp(q[0], q[1], b),
                    lerp(q[3], q[2], b),
                    lerp(q[3], q[2], a),
                ];
                let number = (g + 1) as u16;
                let grid_id = id_at(
                    &mut rng,
                    spec.today.and_time(NaiveTime::MIN).and_utc() - Duration::days(400),
                );
                let sex = rng_sex(&mut rng);
                let worker_name = person_name(&mut rng, sex);
                grids.push(DemoGrid {
                    grid: Grid {
                        id: grid_id,
                        code: GridCode::new(&code, number).expect("generated codes are 15 digits"),
                        name: format!("{name}第{number}网格"),
                        village_name: name.clone(),
                        town_name: towns[town].name.clone(),
                        county_name: names::COUNTY_NAME.to_owned(),
                        boundary: quad_polygon(&gq),
                    },
                    village: v,
                    worker: Worker {
                        username: format!("grid-{code}{number:03}"),
                        name: worker_name,
                    },
                    quad: gq,
                });
            }
            let sex = rng_sex(&mut rng);
            let secretary_name = person_name(&mut rng, sex);
            villages.push(DemoVillage {
                code: code.clone(),
                name,
                town,
                boundary: quad_polygon(&q),
                grids: first..grids.len(),
                secretary: Worker {
                    username: format!("secretary-{code}"),
                    name: secretary_name,
                },
            });
        }
        // The demo's sign-in accounts are the workers of the first two grids and the first
        // village's secretary: their history is filed under the names they sign in with, so
        // one person is one row in the ledger.
        for (g, username) in grids.iter_mut().zip(["worker-a", "worker-b"]) {
            g.worker.username = username.to_owned();
        }
        if let Some(v) = villages.first_mut() {
            v.secretary.username = "secretary".to_owned();
        }
        County {
            spec: spec.clone(),
            towns,
            villages,
            grids,
        }
    }

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

struct GridGen<'a> {
    county: &'a County,
    g: &'a DemoGrid,
    rng: ChaCha8Rng,
    today: NaiveDate,
    now: DateTime<Utc>,
    out: Scope,
}

impl<'a> GridGen<'a> {
    fn new(county: &'a County, grid: usize) -> Self {
        let today = county.spec.today;
        GridGen {
            county,
            g: &county.grids[grid],
            rng: rng_for(county.spec.seed, grid as u64),
            today,
            now: today
                .and_time(NaiveTime::from_hms_opt(8, 0, 0).expect("valid"))
                .and_utc(),
            out: Scope::default(),
        }
    }

    fn at(&mut self, days_back_max: i64) -> DateTime<Utc> {
        let secs = self.rng.random_range(3600..days_back_max.max(1) * 86_400);
        self.now - Duration::seconds(secs)
    }

    fn point(&mut self, margin: f64) -> GeoPoint {
        let (u, v) = (
            self.rng.random_range(margin..1.0 - margin),
            self.rng.random_range(margin..1.0 - margin),
        );
        let c = round6(in_quad(&self.g.quad, u, v));
        GeoPoint {
            lon: c.x,
            lat: c.y,
            accuracy_m: Some(self.rng.random_range(3.0..25.0_f64).round()),
        }
    }

    fn run(mut self) -> Scope {
        let (lo, hi) = self.county.spec.households_per_grid;
        let n = self.rng.random_range(lo..=hi);
        let groups = (n / 40).max(1);
        for i in 0..n {
            self.household(i, groups);
        }
        // About a third of the history is event records, the rest visits.
        let target = (n as f64 * self.county.spec.history_per_household).round() as usize;
        let records = (target as f64 * 0.35).round() as usize;
        self.visits(target - records);
        self.records(records);
        self.out
    }

    fn person(
        &mut self,
        household: Uuid,
        relation: Relation,
        sex: Sex,
        age: u32,
        surname: Option<&str>,
    ) -> Person {
        let birth = self.today - Duration::days(age as i64 * 365 + self.rng.random_range(0..365));
        let name = match surname {
            Some(s) => format!("{s}{}", given(&mut self.rng, sex)),
            None => person_name(&mut self.rng, sex),
        };
        let floating = self.rng.random_bool(0.04);
        let region = if floating {
            names::OTHER_REGIONS
                .choose(&mut self.rng)
                .expect("non-empty")
                .to_string()
        } else {
            names::COUNTY_CODE.to_owned()
        };
        let id_number = make_id_number(&mut self.rng, &region, birth, sex);
        let phone = (age >= 16 && self.rng.random_bool(0.8)).then(|| {
            format!(
                "{}{:08}",
                names::MOBILE_PREFIXES
                    .choose(&mut self.rng)
                    .expect("non-empty"),
                self.rng.random_range(0..100_000_000u32)
            )
        });
        let created = self.now - Duration::days(400);
        Person {
            id: id_at(&mut self.rng, created),
            household_id: household,
            name,
            sex,
            birth_date: Some(birth),
            id_type: IdType::ResidentCard,
            id_number: Some(id_number),
            phone,
            person_type: if floating {
                PersonType::Floating
            } else {
                PersonType::Household
            },
            residence: if floating {
                ResidenceStatus::PersonOnly
            } else {
                ResidenceStatus::Both
            },
            status: PersonStatus::Active,
            relation,
            tags: Vec::new(),
        }
    }

    fn household(&mut self, i: u32, groups: u32) {
        let created = self.now - Duration::days(400);
        let loc = self.point(0.02);
        let group = i % groups + 1;
        let village = &self.county.villages[self.g.village].name;
        let number = format!("{}", i + 1);
        let group =
            (self.g.grid.code.as_str()[12..].parse::<u32>().unwrap_or(1) - 1) * groups + group;
        let address = format!("{village}{group}组{number}号");
        let house = House {
            id: id_at(&mut self.rng, created),
            grid_id: self.g.grid.id,
            number: number.clone(),
            address: address.clone(),
            use_: match self.rng.random_range(0..100) {
                0..85 => HouseUse::OwnerOccupied,
                85..93 => HouseUse::Rental,
                93..97 => HouseUse::Vacant,
                _ => HouseUse::Other,
            },
            location: Some(loc),
        };
        let hid = id_at(&mut self.rng, created);
        let family = surname(&mut self.rng).to_owned();
        let mut members = Vec::new();
        let kind = self.rng.random_range(0..100);
        let r = &mut self.rng;
        let head_sex = if r.random_bool(0.8) {
            Sex::Male
        } else {
            Sex::Female
        };
        let other = |s: Sex| {
            if s == Sex::Male {
                Sex::Female
            } else {
                Sex::Male
            }
        };
        match kind {
            0..15 => {
                // An elder living alone.
                let age = self.rng.random_range(65..95);
                let mut p = self.person(hid, Relation::Head, head_sex, age, Some(&family));
                if self.rng.random_bool(0.8) {
                    p.tags.push(Tag::ElderlyAlone);
                }
                members.push(p);
            }
            15..35 => {
                // An elderly couple whose children work away.
                let age = self.rng.random_range(60..88);
                members.push(self.person(hid, Relation::Head, head_sex, age, Some(&family)));
                let age2 = age.saturating_sub(self.rng.random_range(0..5)).max(58);
                members.push(self.person(hid, Relation::Spouse, other(head_sex), age2, None));
                if self.rng.random_bool(0.35) {
                    for m in &mut members {
                        m.tags.push(Tag::LeftBehindAdult);
                    }
                }
            }
            35..80 => {
                // A family: head, spouse, children, sometimes a grandparent.
                let age = self.rng.random_range(28..58);
                members.push(self.person(hid, Relation::Head, head_sex, age, Some(&family)));
                members.push(self.person(
                    hid,
                    Relation::Spouse,
                    other(head_sex),
                    age.saturating_sub(2),
                    None,
                ));
                for _ in 0..self.rng.random_range(1..=3) {
                    let s = rng_sex(&mut self.rng);
                    let ca = self.rng.random_range(0..(age - 20).max(1));
                    let rel = if s == Sex::Male {
                        Relation::Son
                    } else {
                        Relation::Daughter
                    };
                    members.push(self.person(hid, rel, s, ca, Some(&family)));
                }
                if self.rng.random_bool(0.3) {
                    let ga = (age + self.rng.random_range(22..32)).min(99);
                    let gs = rng_sex(&mut self.rng);
                    members.push(self.person(hid, Relation::Parent, gs, ga, Some(&family)));
                }
            }
            _ => {
                // Grandparents with grandchildren; the parents work in the city.
                let age = self.rng.random_range(55..80);
                members.push(self.person(hid, Relation::Head, head_sex, age, Some(&family)));
                members.push(self.person(
                    hid,
                    Relation::Spouse,
                    other(head_sex),
                    age.saturating_sub(3),
                    None,
                ));
                for rel in [Relation::Son, Relation::ChildInLaw] {
                    let s = if rel == Relation::Son {
                        Sex::Male
                    } else {
                        Sex::Female
                    };
                    let mut p = self.person(hid, rel, s, age - 26, Some(&family));
                    p.residence = ResidenceStatus::HukouOnly;
                    members.push(p);
                }
                for _ in 0..self.rng.random_range(1..=2) {
                    let s = rng_sex(&mut self.rng);
                    let ca = self.rng.random_range(2..15);
                    let mut c = self.person(hid, Relation::Grandchild, s, ca, Some(&family));
                    if self.rng.random_bool(0.7) {
                        c.tags.push(Tag::LeftBehindChild);
                    }
                    members.push(c);
                }
            }
        }
        // Tags that any household may have.
        for m in &mut members {
            let age = m.age(self.today).unwrap_or(0);
            if age >= 80 {
                m.tags.push(Tag::ElderlyHighAge);
            }
            let roll = self.rng.random_range(0..10_000);
            let extra = match roll {
                0..200 => Some(Tag::Disabled),
                200..230 => Some(Tag::ExtremePoverty),
                230..330 if m.sex == Sex::Male && age >= 45 => Some(Tag::VeteranEntitled),
                330..345 if age >= 18 => Some(Tag::CommunityCorrection),
                345..365 if age >= 18 => Some(Tag::ReleasedPrisoner),
                365..395 if age >= 16 => Some(Tag::SevereMentalDisorder),
                395..405 if age >= 18 => Some(Tag::DrugUser),
                405..415 if age >= 18 => Some(Tag::KeyPetitioner),
                _ => None,
            };
            if let Some(t) = extra
                && !m.tags.contains(&t)
            {
                m.tags.push(t);
            }
        }
        if self.rng.random_bool(0.04) {
            members[0].tags.push(Tag::LowIncome);
        }
        let head = members[0].id;
        self.out.houses.push(house.clone());
        self.out.households.push(Household {
            id: hid,
            grid_id: self.g.grid.id,
            house_id: Some(house.id),
            head_id: Some(head),
            address,
            location: Some(loc),
        });
        self.out.people.extend(members);
    }

    fn visits(&mut self, budget: usize) {
        let mut by_household: std::collections::HashMap<Uuid, u32> = Default::default();
        for p in &self.out.people {
            let d = p
                .tags
                .iter()
                .map(|t| t.default_cadence_days())
                .min()
                .unwrap_or(DEFAULT_HOUSEHOLD_CADENCE_DAYS);
            let e = by_household
                .entry(p.household_id)
                .or_insert(DEFAULT_HOUSEHOLD_CADENCE_DAYS);
            *e = (*e).min(d);
        }
        let households: Vec<(Uuid, Option<GeoPoint>)> = self
            .out
            .households
            .iter()
            .map(|h| (h.id, h.location))
            .collect();
        // Up to 180 days of history; a visit roughly every cadence, some late.
        let max_per = (budget / households.len().max(1)) as i64 + 1;
        for (hid, loc) in households {
            let cadence = by_household[&hid] as i64;
            let mut back = self.rng.random_range(0..(cadence * 14 / 10).max(2));
            let mut made = 0;
            while back < 180 && made < max_per {
                let on = self.today - Duration::days(back);
                let created = on
                    .and_time(NaiveTime::from_hms_opt(9, 0, 0).expect("valid"))
                    .and_utc()
                    + Duration::minutes(self.rng.random_range(0..480));
                let purpose = *[
                    VisitPurpose::Routine,
                    VisitPurpose::Routine,
                    VisitPurpose::Care,
                    VisitPurpose::Verify,
                    VisitPurpose::Publicity,
                ]
                .choose(&mut self.rng)
                .expect("non-empty");
                self.out.visits.push(Visit {
                    id: id_at(&mut self.rng, created),
                    household_id: hid,
                    grid_id: self.g.grid.id,
                    author: self.g.worker.username.clone(),
                    visited_on: on,
                    purpose,
                    notes: [
                        "家中一切正常",
                        "了解老人身体状况，叮嘱注意保暖",
                        "宣传防诈骗知识",
                        "核实家庭成员信息",
                    ]
                    .choose(&mut self.rng)
                    .expect("non-empty")
                    .to_string(),
                    next_due: None,
                    location: loc,
                    created_at: created,
                });
                made += 1;
                back += cadence + self.rng.random_range(-(cadence / 5)..=(cadence / 3));
            }
        }
        // Over budget: drop the oldest visits (the newest decide who is due).
        if self.out.visits.len() > budget {
            self.out
                .visits
                .sort_by(|a, b| b.visited_on.cmp(&a.visited_on).then(a.id.cmp(&b.id)));
            self.out.visits.truncate(budget);
        }
    }

    /// Walks a record through its lifecycle from its initial state, as workers and the county
    /// would, recording each step; returns the final status.
    fn walk(&mut self, id: Uuid, domain: Domain, created: DateTime<Utc>, steps: usize) -> Status {
        let lc = lifecycle(domain);
        let mut s = lc.initial;
        let mut t = created;
        for _ in 0..steps {
            let options: Vec<_> = lc
                .transitions
                .iter()
                .filter(|(a, b, _)| {
                    *a == s && !matches!(b, Status::Void | Status::Returned | Status::Draft)
                })
                .collect();
            let Some((_, to, who)) = options.choose(&mut self.rng).copied() else {
                break;
            };
            t += Duration::minutes(self.rng.random_range(30..4320));
            if t >= self.now {
                break;
            }
            let actor = match who {
                Who::Reviewer => "县综治中心".to_owned(),
                _ => self.g.worker.username.clone(),
            };
            self.out.history.push(StatusChange {
                record_id: id,
                from: s,
                to: *to,
                at: t,
                actor,
                note: None,
            });
            s = *to;
            if matches!(
                s,
                Status::Accepted | Status::Confirmed | Status::Replied | Status::Assigned
            ) && self.rng.random_bool(0.5)
            {
                let reply_at = t + Duration::minutes(5);
                self.out.replies.push(Reply {
                    id: id_at(&mut self.rng, reply_at),
                    record_id: id,
                    author: "县综治中心".into(),
                    text: [
                        "已受理，请网格员持续跟进",
                        "已转交相关部门办理",
                        "已安排人员现场核实",
                        "问题已答复群众",
                    ]
                    .choose(&mut self.rng)
                    .expect("non-empty")
                    .to_string(),
                    created_at: reply_at,
                });
            }
        }
        s
    }

    fn common(&mut self, domain: Domain, created: DateTime<Utc>) -> Common {
        let loc = self.point(0.02);
        Common {
            id: id_at(&mut self.rng, created),
            grid_id: self.g.grid.id,
            author: self.g.worker.username.clone(),
            created_at: created,
            status: lifecycle(domain).initial,
            urgency: match self.rng.random_range(0..100) {
                0..85 => Urgency::Normal,
                85..97 => Urgency::Urgent,
                _ => Urgency::Major,
            },
            location: Some(loc),
            photos: Vec::new(),
            patrol_id: None,
        }
    }

    fn records(&mut self, n: usize) {
        for _ in 0..n {
            let created = self.at(150);
            let steps = self.rng.random_range(0..7);
            let roll = self.rng.random_range(0..100);
            let rec = match roll {
                0..30 => {
                    let (cat, text) = *names::HAZARD_TEXTS
                        .choose(&mut self.rng)
                        .expect("non-empty");
                    let mut c = self.common(Domain::Hazard, created);
                    c.status = self.walk(c.id, Domain::Hazard, created, steps);
                    AnyRecord::Hazard(Hazard {
                        common: c,
                        category: HazardCategory::from_code(cat).expect("demo codes are valid"),
                        severity: *[
                            Severity::Low,
                            Severity::Low,
                            Severity::Medium,
                            Severity::High,
                        ]
                        .choose(&mut self.rng)
                        .expect("non-empty"),
                        description: text.to_owned(),
                        place: String::new(),
                        owner: None,
                        due_date: None,
                    })
                }
                30..55 => {
                    let (cat, text) = *names::OPINION_TEXTS
                        .choose(&mut self.rng)
                        .expect("non-empty");
                    let mut c = self.common(Domain::Opinion, created);
                    c.status = self.walk(c.id, Domain::Opinion, created, steps);
                    let deliberation = self.rng.random_bool(0.2).then(|| {
                        *[
                            DeliberationStage::Proposed,
                            DeliberationStage::BranchReview,
                            DeliberationStage::Deliberation,
                            DeliberationStage::PublicEval,
                        ]
                        .choose(&mut self.rng)
                        .expect("non-empty")
                    });
                    AnyRecord::Opinion(Opinion {
                        common: c,
                        category: OpinionCategory::from_code(cat).expect("demo codes are valid"),
                        content: text.to_owned(),
                        raised_by: None,
                        deliberation,
                        deliberation_notes: None,
                    })
                }
                55..70 => self.dispute(created, steps),
                70..85 => self.patrol(created),
                85..98 => {
                    let domain = *[
                        Domain::SpecialPop,
                        Domain::Livelihood,
                        Domain::Publicity,
                        Domain::Other,
                    ]
                    .choose(&mut self.rng)
                    .expect("non-empty");
                    let mut c = self.common(domain, created);
                    c.status = self.walk(c.id, domain, created, steps);
                    let (title, content) = match domain {
                        Domain::SpecialPop => {
                            ("独居老人关爱", "上门查看老人生活情况，协助联系村医")
                        }
                        Domain::Livelihood => {
                            ("代办养老保险认证", "为行动不便老人代办养老金资格认证")
                        }
                        Domain::Publicity => ("防诈骗宣传", "在村民小组会上宣传防范电信诈骗"),
                        _ => ("其他事项", "协助村民办理事务"),
                    };
                    AnyRecord::Event(Event {
                        common: c,
                        domain,
                        title: title.into(),
                        content: content.into(),
                        household_id: None,
                        satisfaction: None,
                    })
                }
                _ => self.emergency(created, steps),
            };
            self.out.records.push(rec);
        }
    }

    fn dispute(&mut self, created: DateTime<Utc>, steps: usize) -> AnyRecord {
        let (cat, text) = *names::DISPUTE_TEXTS
            .choose(&mut self.rng)
            .expect("non-empty");
        let mut c = self.common(Domain::Dispute, created);
        c.status = self.walk(c.id, Domain::Dispute, created, steps);
        let parties = (0..2)
            .map(|i| {
                let p = self
                    .out
                    .people
                    .choose(&mut self.rng)
                    .expect("a grid has people");
                Party {
                    name: p.name.clone(),
                    role: if i == 0 {
                        PartyRole::Applicant
                    } else {
                        PartyRole::Respondent
                    },
                    phone: p.phone.clone(),
                    person_id: Some(p.id),
                }
            })
            .collect();
        let mediated = self
            .out
            .history
            .iter()
            .any(|h| h.record_id == c.id && h.to == Status::Mediating);
        if mediated {
            for k in 0..self.rng.random_range(1..=3) {
                let at = created + Duration::days(k + 1);
                if at >= self.now {
                    break;
                }
                self.out.sessions.push(MediationSession {
                    id: id_at(&mut self.rng, at),
                    dispute_id: c.id,
                    held_on: crate::domain::cst::today(at),
                    method: *MediationMethod::ALL
                        .choose(&mut self.rng)
                        .expect("non-empty"),
                    participants: vec![self.g.worker.name.clone(), "村调解委员会".into()],
                    notes: "释法明理，听取双方诉求".into(),
                    agreement: (k > 0).then(|| "双方达成口头协议".to_owned()),
                    author: self.g.worker.username.clone(),
                    created_at: at,
                });
            }
        }
        let follow_up = matches!(c.status, Status::FollowUp | Status::Archived).then(|| FollowUp {
            on: (created + Duration::days(10)).date_naive().min(self.today),
            satisfaction: *[
                Satisfaction::Satisfied,
                Satisfaction::Satisfied,
                Satisfaction::Basic,
                Satisfaction::Unsatisfied,
            ]
            .choose(&mut self.rng)
            .expect("non-empty"),
            notes: String::new(),
        });
        AnyRecord::Dispute(Dispute {
            common: c,
            category: DisputeCategory::from_code(cat).expect("demo codes are valid"),
            summary: text.to_owned(),
            parties,
            follow_up,
        })
    }

    fn patrol(&mut self, started: DateTime<Utc>) -> AnyRecord {
        let mut c = self.common(Domain::Patrol, started);
        let n = self.rng.random_range(20..60);
        let (mut u, mut v) = (
            self.rng.random_range(0.1..0.9),
            self.rng.random_range(0.1..0.9),
        );
        let mut points = Vec::with_capacity(n);
        let mut t = started;
        for _ in 0..n {
            u = (u + self.rng.random_range(-0.04..0.04_f64)).clamp(0.02, 0.98);
            v = (v + self.rng.random_range(-0.04..0.04_f64)).clamp(0.02, 0.98);
            let p = round6(in_quad(&self.g.quad, u, v));
            points.push(TrackPoint {
                at: t,
                lon: p.x,
                lat: p.y,
                accuracy_m: Some(self.rng.random_range(3.0..15.0_f64).round()),
            });
            t += Duration::seconds(self.rng.random_range(30..120));
        }
        let ended = points.last().map(|p| p.at);
        let distance_m = (track_length_m(&points) * 10.0).round() / 10.0;
        c.location = points.first().map(|p| GeoPoint {
            lon: p.lon,
            lat: p.lat,
            accuracy_m: p.accuracy_m,
        });
        c.status = self.walk(c.id, Domain::Patrol, started, 2);
        if c.status == Status::Recording {
            // Only a patrol running now may still be recording; older ones were submitted.
            c.status = Status::Submitted;
            self.out.history.push(StatusChange {
                record_id: c.id,
                from: Status::Recording,
                to: Status::Submitted,
                at: ended.unwrap_or(started),
                actor: self.g.worker.username.clone(),
                note: None,
            });
        }
        self.out.tracks.push(PatrolPoints {
            id: id_at(&mut self.rng, started),
            patrol_id: c.id,
            points,
        });
        AnyRecord::Patrol(Patrol {
            common: c,
            started_at: started,
            ended_at: ended,
            notes: names::PATROL_NOTES
                .choose(&mut self.rng)
                .expect("non-empty")
                .to_string(),
            distance_m,
        })
    }

    fn emergency(&mut self, created: DateTime<Utc>, steps: usize) -> AnyRecord {
        let mut c = self.common(Domain::Emergency, created);
        c.urgency = Urgency::Urgent;
        c.status = self.walk(c.id, Domain::Emergency, created, steps);
        let mut stages = vec![(ReportStage::Initial, created)];
        for h in self.out.history.iter().filter(|h| h.record_id == c.id) {
            match h.to {
                Status::Update => stages.push((ReportStage::Update, h.at)),
                Status::Final => stages.push((ReportStage::Final, h.at)),
                _ => {}
            }
        }
        for (stage, at) in stages {
            self.out.reports.push(EmergencyReport {
                id: id_at(&mut self.rng, at),
                emergency_id: c.id,
                stage,
                text: match stage {
                    ReportStage::Initial => "暴雨致村道塌方，暂无人员伤亡，已设置警戒".into(),
                    ReportStage::Update => "抢修队伍已到场，转移群众3户".into(),
                    ReportStage::Final => "道路已抢通，转移群众已返回".into(),
                },
                casualties: Some(0),
                author: self.g.worker.username.clone(),
                created_at: at,
            });
        }
        AnyRecord::Emergency(Emergency {
            common: c,
            category: EmergencyCategory::Natural,
            level: EmergencyLevel::Iv,
            title: "暴雨致村道塌方".into(),
            occurred_at: created - Duration::minutes(30),
        })
    }
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
