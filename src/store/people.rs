//! Houses, households, people and visits: local writes (each with its outbox entry) and the
//! queries of a worker's round: search, who is due a visit, nearest households, a household's
//! detail, and the audited reveal of a masked value.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::Serialize;
use uuid::Uuid;

use super::outbox::{all_fields, append, changed_fields};
use super::{Result, Store, StoreError, code, date, time, ts, uuid};
use crate::domain::codes::{Coded, DEFAULT_HOUSEHOLD_CADENCE_DAYS, Tag};
use crate::domain::geo::GeoPoint;
use crate::domain::model::{EntityKind, House, Household, Person, Visit, new_id};
use crate::wire::Op;

/// A household as a list shows it. Holds no managed-population tag, so no screen can leak one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HouseholdCard {
    pub id: Uuid,
    pub grid_id: Uuid,
    pub address: String,
    pub head_name: Option<String>,
    pub members: u32,
    /// Care tags of active members (never a managed tag).
    pub care_tags: Vec<Tag>,
    pub due: Due,
    pub location: Option<GeoPoint>,
    /// Distance from the point the list was asked for, in metres.
    pub distance_m: Option<f64>,
}

/// When a household is next due a visit, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Due {
    pub due_on: NaiveDate,
    pub last_visited_on: Option<NaiveDate>,
    /// The cadence that applies: the shortest of its active members' tags, or the default.
    pub cadence_days: u32,
    /// The care tag that sets the cadence; `None` for the default or a managed tag.
    pub reason: Option<Tag>,
}

impl Due {
    /// Days past the due date on `today` (negative: days left).
    pub fn overdue_days(&self, today: NaiveDate) -> i64 {
        (today - self.due_on).num_days()
    }

    pub fn is_due(&self, today: NaiveDate) -> bool {
        self.due_on <= today
    }
}

/// What the household list asks for.
#[derive(Debug, Clone, Default)]
pub struct HouseholdQuery {
    /// A name, part of an address, or the last digits of an ID number.
    pub text: Option<String>,
    pub tag: Option<Tag>,
    /// Only households due a visit on `today`.
    pub due_only: bool,
    /// Sort nearest first from here.
    pub near: Option<GeoPoint>,
    pub limit: Option<usize>,
    pub offset: usize,
}

/// A household with everything its detail screen shows.
#[derive(Debug, Clone, Serialize)]
pub struct HouseholdDetail {
    pub household: Household,
    pub house: Option<House>,
    pub members: Vec<Person>,
    /// Newest first.
    pub visits: Vec<Visit>,
    pub due: Due,
}

/// Which masked value a worker revealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevealField {
    IdNumber,
    Phone,
}

impl RevealField {
    fn name(self) -> &'static str {
        match self {
            RevealField::IdNumber => "id_number",
            RevealField::Phone => "phone",
        }
    }
}

pub(crate) fn point(lon: Option<f64>, lat: Option<f64>) -> Option<GeoPoint> {
    match (lon, lat) {
        (Some(lon), Some(lat)) => Some(GeoPoint {
            lon,
            lat,
            accuracy_m: None,
        }),
        _ => None,
    }
}

pub(crate) fn write_house(conn: &Connection, h: &House, version: i64) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO houses (id, grid_id, number, address, use_code, lon, lat, version)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (id) DO UPDATE SET grid_id = excluded.grid_id, number = excluded.number,
           address = excluded.address, use_code = excluded.use_code, lon = excluded.lon,
           lat = excluded.lat, version = excluded.version",
    )?
    .execute(params![
        h.id.to_string(),
        h.grid_id.to_string(),
        h.number,
        h.address,
        h.use_.code(),
        h.location.map(|p| p.lon),
        h.location.map(|p| p.lat),
        version
    ])?;
    Ok(())
}

pub(crate) fn write_household(conn: &Connection, h: &Household, version: i64) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO households (id, grid_id, house_id, head_id, address, lon, lat, version)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (id) DO UPDATE SET grid_id = excluded.grid_id, house_id = excluded.house_id,
           head_id = excluded.head_id, address = excluded.address, lon = excluded.lon,
           lat = excluded.lat, version = excluded.version",
    )?
    .execute(params![
        h.id.to_string(),
        h.grid_id.to_string(),
        h.house_id.map(|x| x.to_string()),
        h.head_id.map(|x| x.to_string()),
        h.address,
        h.location.map(|p| p.lon),
        h.location.map(|p| p.lat),
        version
    ])?;
    Ok(())
}

/// Writes a person and their tags. `new`: the caller knows this device holds no person with
/// this id (a first sync's thousands of people are then plain inserts: no upsert, nothing
/// to delete first).
pub(crate) fn write_person(conn: &Connection, p: &Person, version: i64, new: bool) -> Result<()> {
    const INSERT: &str = "INSERT INTO people (id, household_id, name, sex, birth_date, id_type,
           id_number, id_rev, phone, person_type, residence, status, relation, version,
           status_on, origin)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)";
    const UPSERT: &str = "INSERT INTO people (id, household_id, name, sex, birth_date, id_type,
           id_number, id_rev, phone, person_type, residence, status, relation, version,
           status_on, origin)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)
         ON CONFLICT (id) DO UPDATE SET household_id = excluded.household_id, name = excluded.name,
           sex = excluded.sex, birth_date = excluded.birth_date, id_type = excluded.id_type,
           id_number = excluded.id_number, id_rev = excluded.id_rev, phone = excluded.phone,
           person_type = excluded.person_type, residence = excluded.residence,
           status = excluded.status, relation = excluded.relation, version = excluded.version,
           status_on = excluded.status_on, origin = excluded.origin";
    let id_rev: Option<String> = p.id_number.as_ref().map(|n| n.chars().rev().collect());
    let id = p.id.to_string();
    conn.prepare_cached(if new { INSERT } else { UPSERT })?
        .execute(params![
            id,
            p.household_id.to_string(),
            p.name,
            p.sex.code(),
            p.birth_date.map(|d| d.to_string()),
            p.id_type.code(),
            p.id_number,
            id_rev,
            p.phone,
            p.person_type.code(),
            p.residence.code(),
            p.status.code(),
            p.relation.code(),
            version,
            p.status_on.map(|d| d.to_string()),
            p.origin
        ])?;
    if !new {
        conn.prepare_cached("DELETE FROM person_tags WHERE person_id = ?1")?
            .execute([&id])?;
    }
    let mut stmt =
        conn.prepare_cached("INSERT INTO person_tags (person_id, tag) VALUES (?1, ?2)")?;
    for t in &p.tags {
        stmt.execute(params![id, t.code()])?;
    }
    Ok(())
}

pub(crate) fn write_visit(conn: &Connection, v: &Visit) -> Result<()> {
    conn.prepare_cached("INSERT INTO visits (id, household_id, grid_id, author, visited_on, purpose, notes, next_due,
                             lon, lat, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
         ON CONFLICT (id) DO NOTHING")?.execute(params![
            v.id.to_string(),
            v.household_id.to_string(),
            v.grid_id.to_string(),
            v.author,
            v.visited_on.to_string(),
            v.purpose.code(),
            v.notes,
            v.next_due.map(|d| d.to_string()),
            v.location.map(|p| p.lon),
            v.location.map(|p| p.lat),
            ts(v.created_at),
        ],
    )?;
    Ok(())
}

fn house_from_row(r: &Row<'_>) -> Result<House> {
    Ok(House {
        id: uuid(&r.get::<_, String>("id")?)?,
        grid_id: uuid(&r.get::<_, String>("grid_id")?)?,
        number: r.get("number")?,
        address: r.get("address")?,
        use_: code(&r.get::<_, String>("use_code")?)?,
        location: point(r.get("lon")?, r.get("lat")?),
    })
}

fn household_from_row(r: &Row<'_>) -> Result<Household> {
    Ok(Household {
        id: uuid(&r.get::<_, String>("id")?)?,
        grid_id: uuid(&r.get::<_, String>("grid_id")?)?,
        house_id: r
            .get::<_, Option<String>>("house_id")?
            .map(|s| uuid(&s))
            .transpose()?,
        head_id: r
            .get::<_, Option<String>>("head_id")?
            .map(|s| uuid(&s))
            .transpose()?,
        address: r.get("address")?,
        location: point(r.get("lon")?, r.get("lat")?),
    })
}

fn person_from_row(conn: &Connection, r: &Row<'_>) -> Result<Person> {
    let id: String = r.get("id")?;
    let mut stmt =
        conn.prepare_cached("SELECT tag FROM person_tags WHERE person_id = ?1 ORDER BY tag")?;
    let tags = stmt
        .query_map([&id], |r| r.get::<_, String>(0))?
        .map(|t| code::<Tag>(&t?))
        .collect::<Result<Vec<_>>>()?;
    Ok(Person {
        id: uuid(&id)?,
        household_id: uuid(&r.get::<_, String>("household_id")?)?,
        name: r.get("name")?,
        sex: code(&r.get::<_, String>("sex")?)?,
        birth_date: r
            .get::<_, Option<String>>("birth_date")?
            .map(|s| date(&s))
            .transpose()?,
        id_type: code(&r.get::<_, String>("id_type")?)?,
        id_number: r.get("id_number")?,
        phone: r.get("phone")?,
        person_type: code(&r.get::<_, String>("person_type")?)?,
        residence: code(&r.get::<_, String>("residence")?)?,
        status: code(&r.get::<_, String>("status")?)?,
        relation: code(&r.get::<_, String>("relation")?)?,
        tags,
        status_on: r
            .get::<_, Option<String>>("status_on")?
            .map(|s| date(&s))
            .transpose()?,
        origin: r.get("origin")?,
    })
}

fn visit_from_row(r: &Row<'_>) -> Result<Visit> {
    Ok(Visit {
        id: uuid(&r.get::<_, String>("id")?)?,
        household_id: uuid(&r.get::<_, String>("household_id")?)?,
        grid_id: uuid(&r.get::<_, String>("grid_id")?)?,
        author: r.get("author")?,
        visited_on: date(&r.get::<_, String>("visited_on")?)?,
        purpose: code(&r.get::<_, String>("purpose")?)?,
        notes: r.get("notes")?,
        next_due: r
            .get::<_, Option<String>>("next_due")?
            .map(|s| date(&s))
            .transpose()?,
        location: point(r.get("lon")?, r.get("lat")?),
        created_at: time(&r.get::<_, String>("created_at")?)?,
    })
}

pub(crate) fn version_of(conn: &Connection, table: &str, id: Uuid) -> Result<Option<i64>> {
    Ok(conn
        .query_row(
            &format!("SELECT version FROM {table} WHERE id = ?1"),
            [id.to_string()],
            |r| r.get(0),
        )
        .optional()?)
}

/// Visit cadence per tag: the defaults, overridden by what the county sent.
pub(crate) struct Cadence {
    days: HashMap<Tag, u32>,
    default_days: u32,
}

impl Cadence {
    pub(crate) fn load(conn: &Connection) -> Result<Cadence> {
        let mut days: HashMap<Tag, u32> = Tag::ALL
            .iter()
            .map(|t| (*t, t.default_cadence_days()))
            .collect();
        let mut stmt = conn.prepare_cached("SELECT tag, days FROM visit_cadence")?;
        for row in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
            let (t, d) = row?;
            if let Ok(tag) = Tag::from_code(&t) {
                days.insert(tag, d as u32);
            }
        }
        let default_days = super::get_meta(conn, "default_cadence_days")?
            .and_then(|s| s.parse().ok())
            .unwrap_or(DEFAULT_HOUSEHOLD_CADENCE_DAYS);
        Ok(Cadence { days, default_days })
    }

    /// The cadence for a household whose active members carry `tags`, and the care tag that
    /// sets it (`None` for the default or a managed tag).
    fn of(&self, tags: &[Tag]) -> (u32, Option<Tag>) {
        let (mut days, mut reason) = (self.default_days, None);
        for t in tags {
            let d = self.days[t];
            if d < days {
                days = d;
                reason = (!t.is_managed()).then_some(*t);
            }
        }
        (days, reason)
    }
}

/// Recomputes one household's summary row (card fields and due date). Call in the same
/// transaction as any write that changes its members, tags, head or visits.
pub(crate) fn refresh_summary(conn: &Connection, cadence: &Cadence, household: &str) -> Result<()> {
    let mut stmt = conn.prepare_cached(
        "SELECT t.tag FROM people p JOIN person_tags t ON t.person_id = p.id
         WHERE p.household_id = ?1 AND p.status = 'ACTIVE'",
    )?;
    let mut tags = stmt
        .query_map([household], |r| r.get::<_, String>(0))?
        .map(|t| code::<Tag>(&t?))
        .collect::<Result<Vec<_>>>()?;
    tags.sort();
    tags.dedup();
    let (days, reason) = cadence.of(&tags);
    let care: Vec<&str> = tags
        .iter()
        .filter(|t| !t.is_managed())
        .map(|t| t.code())
        .collect();
    let (head, members): (Option<String>, i64) = conn
        .prepare_cached(
            "SELECT (SELECT name FROM people WHERE id = h.head_id),
                    (SELECT count(*) FROM people p WHERE p.household_id = h.id AND p.status = 'ACTIVE')
             FROM households h WHERE h.id = ?1",
        )?
        .query_row([household], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let last: Option<(String, Option<String>)> = conn
        .prepare_cached(
            "SELECT visited_on, next_due FROM visits WHERE household_id = ?1
             ORDER BY visited_on DESC, created_at DESC LIMIT 1",
        )?
        .query_row([household], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let (last_on, agreed) = match &last {
        Some((on, next)) => (Some(date(on)?), next.as_deref().map(date).transpose()?),
        None => (None, None),
    };
    let due_on = last_on.map(|l| {
        let by_cadence = l + chrono::Duration::days(days as i64);
        match agreed {
            Some(a) if a < by_cadence => a,
            _ => by_cadence,
        }
    });
    conn.prepare_cached(
        "INSERT INTO household_summary (household_id, head_name, members, care_tags, cadence_days,
                                        reason_tag, last_visited_on, agreed_next_due, due_on)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT (household_id) DO UPDATE SET head_name = excluded.head_name,
           members = excluded.members, care_tags = excluded.care_tags,
           cadence_days = excluded.cadence_days, reason_tag = excluded.reason_tag,
           last_visited_on = excluded.last_visited_on, agreed_next_due = excluded.agreed_next_due,
           due_on = excluded.due_on",
    )?
    .execute(params![
        household,
        head,
        members,
        care.join(" "),
        days as i64,
        reason.map(|t| t.code()),
        last_on.map(|d| d.to_string()),
        agreed.map(|d| d.to_string()),
        due_on.map(|d| d.to_string()),
    ])?;
    Ok(())
}

/// Recomputes every household's summary (after a bulk import or a cadence change).
pub(crate) fn refresh_all_summaries(conn: &Connection) -> Result<()> {
    let cadence = Cadence::load(conn)?;
    let ids: Vec<String> = conn
        .prepare_cached("SELECT id FROM households")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for id in ids {
        refresh_summary(conn, &cadence, &id)?;
    }
    Ok(())
}

/// Fills the summary of households that lack one (a database from before the summary).
pub(crate) fn backfill_summaries(conn: &Connection) -> Result<()> {
    let ids: Vec<String> = conn
        .prepare(
            "SELECT id FROM households WHERE id NOT IN (SELECT household_id FROM household_summary)",
        )?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    if ids.is_empty() {
        return Ok(());
    }
    let cadence = Cadence::load(conn)?;
    conn.execute_batch("BEGIN IMMEDIATE")?;
    for id in &ids {
        if let Err(e) = refresh_summary(conn, &cadence, id) {
            conn.execute_batch("ROLLBACK")?;
            return Err(e);
        }
    }
    conn.execute_batch("COMMIT")?;
    Ok(())
}

/// Records a visit (and recomputes its household's summary), inside the caller's transaction.
fn record_visit_in(tx: &Connection, v: &Visit, now: DateTime<Utc>) -> Result<()> {
    let grid: Option<String> = tx
        .query_row(
            "SELECT grid_id FROM households WHERE id = ?1",
            [v.household_id.to_string()],
            |r| r.get(0),
        )
        .optional()?;
    match grid {
        None => {
            return Err(StoreError::NotFound {
                kind: "household",
                id: v.household_id.to_string(),
            });
        }
        Some(g) if g != v.grid_id.to_string() => {
            return Err(crate::domain::ValidationErrors::single(
                "grid_id",
                crate::domain::Problem::WrongGrid,
            )
            .into());
        }
        Some(_) => {}
    }
    write_visit(tx, v)?;
    refresh_summary(tx, &Cadence::load(tx)?, &v.household_id.to_string())?;
    append(
        tx,
        EntityKind::Visit,
        v.id,
        Op::Append,
        all_fields(v)?,
        0,
        now,
    )?;
    Ok(())
}

impl Store {
    /// Adds a house the worker found.
    pub fn add_house(&mut self, h: &House, now: DateTime<Utc>) -> Result<()> {
        h.validate()?;
        self.tx(|tx| {
            write_house(tx, h, 0)?;
            append(
                tx,
                EntityKind::House,
                h.id,
                Op::Create,
                all_fields(h)?,
                0,
                now,
            )?;
            Ok(())
        })
    }

    /// Adds a household.
    pub fn add_household(&mut self, h: &Household, now: DateTime<Utc>) -> Result<()> {
        h.validate()?;
        self.tx(|tx| {
            write_household(tx, h, 0)?;
            refresh_summary(tx, &Cadence::load(tx)?, &h.id.to_string())?;
            append(
                tx,
                EntityKind::Household,
                h.id,
                Op::Create,
                all_fields(h)?,
                0,
                now,
            )?;
            Ok(())
        })
    }

    /// Edits a household; only the changed fields go into the outbox.
    pub fn update_household(
        &mut self,
        id: Uuid,
        edit: impl FnOnce(&mut Household),
        now: DateTime<Utc>,
    ) -> Result<Household> {
        self.tx(|tx| {
            let old = household(tx, id)?;
            let version = version_of(tx, "households", id)?.unwrap_or(0);
            let mut new = old.clone();
            edit(&mut new);
            new.id = old.id;
            new.validate()?;
            let changes = changed_fields(&all_fields(&old)?, &all_fields(&new)?);
            if !changes.is_empty() {
                write_household(tx, &new, version)?;
                refresh_summary(tx, &Cadence::load(tx)?, &id.to_string())?;
                append(
                    tx,
                    EntityKind::Household,
                    id,
                    Op::Update,
                    changes,
                    version,
                    now,
                )?;
            }
            Ok(new)
        })
    }

    /// Adds a person to a household.
    pub fn add_person(&mut self, p: &Person, now: DateTime<Utc>) -> Result<()> {
        p.validate(crate::domain::cst::today(now))?;
        self.tx(|tx| {
            write_person(tx, p, 0, false)?;
            refresh_summary(tx, &Cadence::load(tx)?, &p.household_id.to_string())?;
            append(
                tx,
                EntityKind::Person,
                p.id,
                Op::Create,
                all_fields(p)?,
                0,
                now,
            )?;
            Ok(())
        })
    }

    /// Edits a person (phone, status, tags, ...); only the changed fields go into the outbox.
    pub fn update_person(
        &mut self,
        id: Uuid,
        edit: impl FnOnce(&mut Person),
        now: DateTime<Utc>,
    ) -> Result<Person> {
        self.tx(|tx| {
            let old = person(tx, id)?;
            let version = version_of(tx, "people", id)?.unwrap_or(0);
            let mut new = old.clone();
            edit(&mut new);
            new.id = old.id;
            new.validate(crate::domain::cst::today(now))?;
            let changes = changed_fields(&all_fields(&old)?, &all_fields(&new)?);
            if !changes.is_empty() {
                write_person(tx, &new, version, false)?;
                let cadence = Cadence::load(tx)?;
                refresh_summary(tx, &cadence, &new.household_id.to_string())?;
                if old.household_id != new.household_id {
                    refresh_summary(tx, &cadence, &old.household_id.to_string())?;
                }
                append(
                    tx,
                    EntityKind::Person,
                    id,
                    Op::Update,
                    changes,
                    version,
                    now,
                )?;
            }
            Ok(new)
        })
    }

    /// Records a visit (append-only).
    pub fn record_visit(&mut self, v: &Visit, now: DateTime<Utc>) -> Result<()> {
        v.validate(now)?;
        self.tx(|tx| record_visit_in(tx, v, now))
    }

    /// Records the visit the form `form` made, and forgets the form's draft, in one
    /// transaction; a visit with this id already recorded (a second tap, a retry) is not
    /// recorded again.
    pub fn file_visit(
        &mut self,
        form: &str,
        v: &Visit,
        now: DateTime<Utc>,
    ) -> Result<crate::store::drafts::Filed> {
        v.validate(now)?;
        self.tx(|tx| {
            let exists: bool = tx
                .prepare_cached("SELECT EXISTS (SELECT 1 FROM visits WHERE id = ?1)")?
                .query_row([v.id.to_string()], |r| r.get(0))?;
            if exists {
                return Ok(crate::store::drafts::Filed::Already);
            }
            record_visit_in(tx, v, now)?;
            super::set_meta(tx, &crate::store::drafts::draft_key(form), "null")?;
            Ok(crate::store::drafts::Filed::New { photos: 0 })
        })
    }

    /// Shows a masked value in full: the act is written to the audit log, which syncs.
    pub fn reveal(
        &mut self,
        person_id: Uuid,
        field: RevealField,
        now: DateTime<Utc>,
    ) -> Result<Option<String>> {
        let worker = self.worker.clone();
        self.tx(|tx| {
            let p = person(tx, person_id)?;
            let value = match field {
                RevealField::IdNumber => p.id_number,
                RevealField::Phone => p.phone,
            };
            let id = new_id();
            tx.prepare_cached(
                "INSERT INTO audit_log (id, at, actor, action, target_kind, target_id, field)
                 VALUES (?1, ?2, ?3, 'REVEAL', 'PERSON', ?4, ?5)",
            )?
            .execute(params![
                id.to_string(),
                ts(now),
                worker,
                person_id.to_string(),
                field.name()
            ])?;
            let fields = serde_json::json!({
                "id": id, "at": ts(now), "actor": worker, "action": "REVEAL",
                "target_kind": "PERSON", "target_id": person_id, "field": field.name(),
            });
            let serde_json::Value::Object(fields) = fields else {
                unreachable!()
            };
            append(tx, EntityKind::Audit, id, Op::Append, fields, 0, now)?;
            Ok(value)
        })
    }

    pub fn household(&self, id: Uuid) -> Result<Household> {
        household(&self.conn, id)
    }

    pub fn person(&self, id: Uuid) -> Result<Person> {
        person(&self.conn, id)
    }

    /// Everything the household screen shows.
    pub fn household_detail(&self, id: Uuid, today: NaiveDate) -> Result<HouseholdDetail> {
        let conn = &self.conn;
        let h = household(conn, id)?;
        let house = match h.house_id {
            Some(hid) => conn
                .query_row(
                    "SELECT * FROM houses WHERE id = ?1",
                    [hid.to_string()],
                    |r| Ok(house_from_row(r)),
                )
                .optional()?
                .transpose()?,
            None => None,
        };
        let mut stmt = conn.prepare_cached(
            "SELECT * FROM people WHERE household_id = ?1
             ORDER BY CASE relation WHEN 'HEAD' THEN 0 ELSE 1 END, birth_date",
        )?;
        let members = stmt
            .query_map([id.to_string()], |r| Ok(person_from_row(conn, r)))?
            .map(|r| r?)
            .collect::<Result<Vec<_>>>()?;
        let mut stmt = conn.prepare_cached(
            "SELECT * FROM visits WHERE household_id = ?1 ORDER BY visited_on DESC, created_at DESC",
        )?;
        let visits = stmt
            .query_map([id.to_string()], |r| Ok(visit_from_row(r)))?
            .map(|r| r?)
            .collect::<Result<Vec<_>>>()?;
        let due = self.due_of(id, today)?;
        Ok(HouseholdDetail {
            household: h,
            house,
            members,
            visits,
            due,
        })
    }

    /// The household list: search, filter, sort (nearest first when a point is given, else
    /// most overdue first) and page.
    pub fn households(&self, q: &HouseholdQuery, today: NaiveDate) -> Result<Vec<HouseholdCard>> {
        let conn = &self.conn;
        let matching = match q.text.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
            Some(t) => Some(search_households(conn, t)?),
            None => None,
        };
        let tagged: Option<HashSet<String>> = match q.tag {
            Some(tag) => {
                let mut stmt = conn.prepare_cached(
                    "SELECT DISTINCT p.household_id FROM person_tags t JOIN people p ON p.id = t.person_id
                     WHERE t.tag = ?1 AND p.status = 'ACTIVE'",
                )?;
                Some(
                    stmt.query_map([tag.code()], |r| r.get::<_, String>(0))?
                        .collect::<rusqlite::Result<_>>()?,
                )
            }
            None => None,
        };
        let mut cards = self.cards(today, q.due_only, |hid| {
            matching.as_ref().is_none_or(|m| m.contains(hid))
                && tagged.as_ref().is_none_or(|t| t.contains(hid))
        })?;
        if let Some(p) = &q.near {
            for c in &mut cards {
                c.distance_m = c.location.map(|l| l.distance_m(p));
            }
            cards.sort_by(|a, b| {
                a.distance_m
                    .unwrap_or(f64::INFINITY)
                    .total_cmp(&b.distance_m.unwrap_or(f64::INFINITY))
            });
        } else {
            cards.sort_by(|a, b| {
                a.due
                    .due_on
                    .cmp(&b.due.due_on)
                    .then_with(|| a.address.cmp(&b.address))
            });
        }
        Ok(cards
            .into_iter()
            .skip(q.offset)
            .take(q.limit.unwrap_or(usize::MAX))
            .collect())
    }

    /// Who is due a visit on `today` (due date today or earlier), most overdue first.
    pub fn due_visits(&self, today: NaiveDate) -> Result<Vec<HouseholdCard>> {
        self.households(
            &HouseholdQuery {
                due_only: true,
                ..Default::default()
            },
            today,
        )
    }

    /// The `k` households nearest `p`, nearest first, found through the R*Tree by widening
    /// a box around `p` until it holds `k` households.
    pub fn nearest_households(
        &self,
        p: &GeoPoint,
        k: usize,
        today: NaiveDate,
    ) -> Result<Vec<HouseholdCard>> {
        let conn = &self.conn;
        let total: i64 = conn
            .prepare_cached("SELECT count(*) FROM household_rtree")?
            .query_row([], |r| r.get(0))?;
        let want = k.min(total as usize);
        if want == 0 {
            return Ok(Vec::new());
        }
        // A box square in metres around p: longitude degrees shrink with latitude.
        let lon_scale = 1.0 / p.lat.to_radians().cos().max(0.01);
        let in_box = |half: f64| -> Result<HashSet<String>> {
            let mut stmt = conn.prepare_cached(
                "SELECT h.id FROM household_rtree r JOIN households h ON h.rid = r.rid
                 WHERE r.min_lon >= ?1 AND r.max_lon <= ?2 AND r.min_lat >= ?3 AND r.max_lat <= ?4",
            )?;
            let hl = half * lon_scale;
            Ok(stmt
                .query_map(
                    params![p.lon - hl, p.lon + hl, p.lat - half, p.lat + half],
                    |r| r.get::<_, String>(0),
                )?
                .collect::<rusqlite::Result<_>>()?)
        };
        let mut half = 0.002_f64; // degrees of latitude: about 220 m
        while in_box(half)?.len() < want && half < 90.0 {
            half *= 2.0;
        }
        // The k-th nearest in that box is at most a corner away (√2 × half): every household
        // within that distance lies in a box 1.5 times as wide.
        let ids = in_box(half * 1.5)?;
        let mut cards = self.cards(today, false, |hid| ids.contains(hid))?;
        for c in &mut cards {
            c.distance_m = c.location.map(|l| l.distance_m(p));
        }
        cards.sort_by(|a, b| {
            a.distance_m
                .unwrap_or(f64::INFINITY)
                .total_cmp(&b.distance_m.unwrap_or(f64::INFINITY))
        });
        cards.truncate(k);
        Ok(cards)
    }

    /// When one household is due, from its summary row.
    fn due_of(&self, id: Uuid, today: NaiveDate) -> Result<Due> {
        type Row = (i64, Option<String>, Option<String>, Option<String>);
        let row: Option<Row> = self
            .conn
            .prepare_cached(
                "SELECT cadence_days, reason_tag, last_visited_on, due_on FROM household_summary
                 WHERE household_id = ?1",
            )?
            .query_row([id.to_string()], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .optional()?;
        let (days, reason, last, due) = row.ok_or_else(|| StoreError::NotFound {
            kind: "household",
            id: id.to_string(),
        })?;
        Ok(Due {
            due_on: due.map(|d| date(&d)).transpose()?.unwrap_or(today),
            last_visited_on: last.map(|d| date(&d)).transpose()?,
            cadence_days: days as u32,
            reason: reason.map(|t| code::<Tag>(&t)).transpose()?,
        })
    }

    /// Cards of every household that passes `keep`, from the summary table.
    fn cards(
        &self,
        today: NaiveDate,
        due_only: bool,
        keep: impl Fn(&str) -> bool,
    ) -> Result<Vec<HouseholdCard>> {
        let sql = if due_only {
            "SELECT h.id, h.grid_id, h.address, h.lon, h.lat, s.head_name, s.members, s.care_tags,
                    s.cadence_days, s.reason_tag, s.last_visited_on, s.due_on
             FROM household_summary s JOIN households h ON h.id = s.household_id
             WHERE s.due_on IS NULL OR s.due_on <= ?1"
        } else {
            "SELECT h.id, h.grid_id, h.address, h.lon, h.lat, s.head_name, s.members, s.care_tags,
                    s.cadence_days, s.reason_tag, s.last_visited_on, s.due_on
             FROM household_summary s JOIN households h ON h.id = s.household_id
             WHERE ?1 IS NOT NULL"
        };
        let mut stmt = self.conn.prepare_cached(sql)?;
        let mut rows = stmt.query([today.to_string()])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let hid: String = r.get(0)?;
            if !keep(&hid) {
                continue;
            }
            let care: String = r.get(7)?;
            let last_on = r
                .get::<_, Option<String>>(10)?
                .map(|s| date(&s))
                .transpose()?;
            let due_on = r
                .get::<_, Option<String>>(11)?
                .map(|s| date(&s))
                .transpose()?;
            out.push(HouseholdCard {
                id: uuid(&hid)?,
                grid_id: uuid(&r.get::<_, String>(1)?)?,
                address: r.get(2)?,
                location: point(r.get(3)?, r.get(4)?),
                head_name: r.get(5)?,
                members: r.get::<_, i64>(6)? as u32,
                care_tags: care
                    .split_whitespace()
                    .map(code::<Tag>)
                    .collect::<Result<_>>()?,
                due: Due {
                    due_on: due_on.unwrap_or(today),
                    last_visited_on: last_on,
                    cadence_days: r.get::<_, i64>(8)? as u32,
                    reason: r
                        .get::<_, Option<String>>(9)?
                        .map(|s| code::<Tag>(&s))
                        .transpose()?,
                },
                distance_m: None,
            });
        }
        Ok(out)
    }
}

/// Household ids whose member name or address contains `text`, or whose member's ID number
/// ends with it (digits and X).
fn search_households(conn: &Connection, text: &str) -> Result<HashSet<String>> {
    let like = format!("%{}%", text.replace(['%', '_'], ""));
    let mut stmt = conn.prepare_cached(
        "SELECT id FROM households WHERE address LIKE ?1
         UNION SELECT household_id FROM people WHERE name LIKE ?1",
    )?;
    let mut ids: HashSet<String> = stmt
        .query_map([&like], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<_>>()?;
    let upper = text.to_uppercase();
    if upper.len() >= 3 && upper.bytes().all(|b| b.is_ascii_digit() || b == b'X') {
        let rev: String = upper.chars().rev().collect();
        // GLOB with a literal prefix uses the id_rev index.
        let mut stmt =
            conn.prepare_cached("SELECT household_id FROM people WHERE id_rev GLOB ?1")?;
        for id in stmt.query_map([format!("{rev}*")], |r| r.get::<_, String>(0))? {
            ids.insert(id?);
        }
    }
    Ok(ids)
}

pub(crate) fn household(conn: &Connection, id: Uuid) -> Result<Household> {
    conn.prepare_cached("SELECT * FROM households WHERE id = ?1")?
        .query_row([id.to_string()], |r| Ok(household_from_row(r)))
        .optional()?
        .transpose()?
        .ok_or_else(|| StoreError::NotFound {
            kind: "household",
            id: id.to_string(),
        })
}

pub(crate) fn person(conn: &Connection, id: Uuid) -> Result<Person> {
    conn.prepare_cached("SELECT * FROM people WHERE id = ?1")?
        .query_row([id.to_string()], |r| Ok(person_from_row(conn, r)))
        .optional()?
        .transpose()?
        .ok_or_else(|| StoreError::NotFound {
            kind: "person",
            id: id.to_string(),
        })
}

/// A person a 特殊人群服务 record may be about, as its chooser lists them: an active person
/// with a care or managed tag in the worker's grids. Holds only the care tags, so the chooser
/// can never show a managed one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServedPerson {
    pub id: Uuid,
    pub name: String,
    pub address: String,
    pub care_tags: Vec<Tag>,
}

impl Store {
    /// The people the worker serves (any special-population tag), by name; `text` narrows to
    /// names containing it. At most `limit`.
    pub fn people_served(&self, text: Option<&str>, limit: usize) -> Result<Vec<ServedPerson>> {
        let text = text.map(str::trim).filter(|t| !t.is_empty()).unwrap_or("");
        let mut stmt = self.conn.prepare_cached(
            "SELECT p.id, p.name, h.address, group_concat(t.tag) FROM people p
             JOIN households h ON h.id = p.household_id
             JOIN grids g ON g.id = h.grid_id
             JOIN person_tags t ON t.person_id = p.id
             WHERE p.status = 'ACTIVE' AND instr(p.name, ?1) > 0
             GROUP BY p.id ORDER BY p.name, h.address LIMIT ?2",
        )?;
        let rows = stmt
            .query_map(params![text, limit as i64], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter()
            .map(|(id, name, address, tags)| {
                let mut care_tags = Vec::new();
                for t in tags.split(',') {
                    let tag: Tag = code(t)?;
                    if !tag.is_managed() {
                        care_tags.push(tag);
                    }
                }
                care_tags.sort();
                Ok(ServedPerson {
                    id: uuid(&id)?,
                    name,
                    address,
                    care_tags,
                })
            })
            .collect()
    }
}
