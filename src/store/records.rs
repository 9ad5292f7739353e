//! Event records of every domain (one generic repository over [`EventRecord`] types), their
//! append-only children (mediation sessions, emergency reports, patrol tracks, photos), status
//! changes checked against the lifecycle, and the record queries of the worker's screens.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::outbox::{all_fields, append, changed_fields};
use super::{Result, Store, StoreError, code, time, ts, uuid};
use crate::domain::codes::{Coded, Domain, Urgency};
use crate::domain::geo::{GeoPoint, TrackPoint, track_length_m};
use crate::domain::lifecycle::{Actor, Status, check_transition, lifecycle};
use crate::domain::model::{
    AnyRecord, EmergencyReport, EntityKind, EventRecord, MediationSession, Patrol, PatrolPoints,
    Reply, StatusChange,
};
use crate::domain::validate::{Problem, ValidationErrors};
use crate::wire::Op;

/// A record as lists show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordSummary {
    pub id: Uuid,
    pub domain: Domain,
    pub grid_id: Uuid,
    pub author: String,
    pub status: Status,
    pub urgency: Urgency,
    pub category: String,
    pub summary: String,
    pub location: Option<GeoPoint>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Server version; 0 until the server has it.
    pub version: i64,
    /// Supervision (督办) the county put on it.
    pub supervision: crate::domain::codes::Supervision,
}

/// Which records a list asks for.
#[derive(Debug, Clone, Default)]
pub struct RecordQuery {
    pub domain: Option<Domain>,
    /// Any of these statuses (empty: any status).
    pub statuses: Vec<Status>,
    /// Only open records (filed and not at the end of their lifecycle).
    pub open_only: bool,
    pub grid_id: Option<Uuid>,
    pub patrol_id: Option<Uuid>,
    pub limit: Option<usize>,
}

const RECORD_COLUMNS: &str =
    "INSERT INTO records (id, kind, grid_id, author, status, urgency, category,
        summary, lon, lat, patrol_id, created_at, updated_at, data, version, household_id)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)";

/// Writes a record's row: its indexed columns from the header and the whole record as JSON.
/// `insert_only` refuses an existing id instead of replacing it.
#[allow(clippy::too_many_arguments)]
fn write_row(
    conn: &Connection,
    domain: Domain,
    c: &crate::domain::model::Common,
    category: &str,
    summary: &str,
    data: &str,
    version: i64,
    updated_at: DateTime<Utc>,
    insert_only: bool,
) -> Result<()> {
    let sql = if insert_only {
        RECORD_COLUMNS.to_owned()
    } else {
        format!(
            "{RECORD_COLUMNS} ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, grid_id = excluded.grid_id,
               author = excluded.author, status = excluded.status, urgency = excluded.urgency,
               category = excluded.category, summary = excluded.summary, lon = excluded.lon,
               lat = excluded.lat, patrol_id = excluded.patrol_id, updated_at = excluded.updated_at,
               data = excluded.data, version = excluded.version,
               household_id = excluded.household_id"
        )
    };
    let res = conn.prepare_cached(&sql)?.execute(params![
        c.id.to_string(),
        domain.code(),
        c.grid_id.to_string(),
        c.author,
        c.status.code(),
        c.urgency.code(),
        category,
        summary.chars().take(120).collect::<String>(),
        c.location.map(|p| p.lon),
        c.location.map(|p| p.lat),
        c.patrol_id.map(|p| p.to_string()),
        ts(c.created_at),
        ts(updated_at),
        data,
        version,
        c.household_id.map(|h| h.to_string()),
    ]);
    match res {
        Err(rusqlite::Error::SqliteFailure(e, _))
            if insert_only && e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
        {
            Err(StoreError::Conflict(format!(
                "这条记录已经保存过了，不会重复登记 (record {} already exists)",
                c.id
            )))
        }
        other => {
            other?;
            Ok(())
        }
    }
}

/// Writes (inserts or replaces) a record's row from its typed value. `new`: the caller knows
/// this device holds no record with this id (a plain insert, cheaper than the upsert).
pub(crate) fn write_record(
    conn: &Connection,
    r: &AnyRecord,
    version: i64,
    updated_at: DateTime<Utc>,
    new: bool,
) -> Result<()> {
    write_row(
        conn,
        r.domain(),
        r.common(),
        r.category_code(),
        r.summary(),
        &r.to_json_string(),
        version,
        updated_at,
        new,
    )
}

/// Reads a record of any domain, with its version.
pub(crate) fn read_any(conn: &Connection, id: Uuid) -> Result<(AnyRecord, i64)> {
    let row: Option<(String, String, i64)> = conn
        .query_row(
            "SELECT kind, data, version FROM records WHERE id = ?1",
            [id.to_string()],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let (kind, data, version) = row.ok_or_else(|| StoreError::NotFound {
        kind: "record",
        id: id.to_string(),
    })?;
    let domain: Domain = code(&kind)?;
    Ok((
        AnyRecord::from_json(domain, &mut serde_json::Deserializer::from_str(&data))?,
        version,
    ))
}

pub(crate) fn write_entry(
    conn: &Connection,
    id: Uuid,
    record_id: Uuid,
    kind: EntityKind,
    data: &serde_json::Value,
    author: &str,
    created_at: DateTime<Utc>,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO entries (id, record_id, kind, data, author, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (id) DO NOTHING",
    )?
    .execute(params![
        id.to_string(),
        record_id.to_string(),
        kind.code(),
        data.to_string(),
        author,
        ts(created_at)
    ])?;
    Ok(())
}

pub(crate) fn write_status_change(conn: &Connection, c: &StatusChange) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO status_history (record_id, from_status, to_status, at, actor, note)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        c.record_id.to_string(),
        c.from.code(),
        c.to.code(),
        ts(c.at),
        c.actor,
        c.note
    ])?;
    Ok(())
}

pub(crate) fn write_points(conn: &Connection, pp: &PatrolPoints) -> Result<()> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO patrol_points (patrol_id, batch_id, at, lon, lat, accuracy_m)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for p in &pp.points {
        stmt.execute(params![
            pp.patrol_id.to_string(),
            pp.id.to_string(),
            ts(p.at),
            p.lon,
            p.lat,
            p.accuracy_m
        ])?;
    }
    Ok(())
}

pub(crate) fn track(conn: &Connection, patrol_id: Uuid) -> Result<Vec<TrackPoint>> {
    let mut stmt = conn.prepare_cached(
        "SELECT at, lon, lat, accuracy_m FROM patrol_points WHERE patrol_id = ?1 ORDER BY at, rowid",
    )?;
    stmt.query_map([patrol_id.to_string()], |r| {
        Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
    })?
    .map(|row| {
        let (at, lon, lat, accuracy_m) = row?;
        Ok(TrackPoint {
            at: time(&at)?,
            lon,
            lat,
            accuracy_m,
        })
    })
    .collect()
}

pub(crate) fn summary_from_row(r: &Row<'_>) -> Result<RecordSummary> {
    Ok(RecordSummary {
        id: uuid(&r.get::<_, String>("id")?)?,
        domain: code(&r.get::<_, String>("kind")?)?,
        grid_id: uuid(&r.get::<_, String>("grid_id")?)?,
        author: r.get("author")?,
        status: code(&r.get::<_, String>("status")?)?,
        urgency: code(&r.get::<_, String>("urgency")?)?,
        category: r.get("category")?,
        summary: r.get("summary")?,
        location: super::people::point(r.get("lon")?, r.get("lat")?),
        created_at: time(&r.get::<_, String>("created_at")?)?,
        updated_at: time(&r.get::<_, String>("updated_at")?)?,
        version: r.get("version")?,
        supervision: supervision_in(&r.get::<_, String>("data")?),
    })
}

/// The supervision level in a record's stored JSON, read without parsing the rest.
fn supervision_in(data: &str) -> crate::domain::codes::Supervision {
    data.split_once("\"supervision\":\"")
        .and_then(|(_, rest)| rest.split('"').next())
        .and_then(|c| crate::domain::codes::Supervision::from_code(c).ok())
        .unwrap_or_default()
}

/// Adds an emergency's report (初报, 续报, 终报) and moves the emergency's status, inside the
/// caller's transaction.
pub fn add_emergency_report_in(
    tx: &Connection,
    rep: &EmergencyReport,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    rep.validate(now)?;
    let (e, _) = read_any(tx, rep.emergency_id)?;
    if e.domain() != Domain::Emergency {
        return Err(ValidationErrors::single(
            "emergency_id",
            Problem::WrongKind {
                expected: Domain::Emergency,
            },
        )
        .into());
    }
    let data = serde_json::to_value(rep)?;
    write_entry(
        tx,
        rep.id,
        rep.emergency_id,
        EntityKind::EmergencyReport,
        &data,
        &rep.author,
        rep.created_at,
    )?;
    append(
        tx,
        EntityKind::EmergencyReport,
        rep.id,
        Op::Append,
        all_fields(rep)?,
        0,
        now,
    )?;
    let to = rep.status_after();
    if to != e.common().status || to == Status::Update {
        transition_in(tx, rep.emergency_id, to, None, actor, now)?;
    }
    Ok(())
}

/// Files a new record in its domain's initial status, inside the caller's transaction.
pub(crate) fn create_in<T: EventRecord>(tx: &Connection, r: &T, now: DateTime<Utc>) -> Result<()> {
    r.validate(now)?;
    let initial = lifecycle(r.domain()).initial;
    if r.common().status != initial {
        return Err(ValidationErrors::single(
            "status",
            Problem::NotInitialStatus {
                status: r.common().status,
                initial,
                domain: r.domain(),
            },
        )
        .into());
    }
    // Serialised once: the row's JSON and the outbox entry's fields are the same object.
    let fields = all_fields(r)?;
    let data = serde_json::to_string(&fields)?;
    let c = r.common();
    write_row(
        tx,
        r.domain(),
        c,
        r.category_code(),
        r.summary(),
        &data,
        0,
        now,
        true,
    )?;
    append(
        tx,
        EntityKind::of_domain(r.domain()),
        c.id,
        Op::Create,
        fields,
        0,
        now,
    )?;
    Ok(())
}

/// Links a stored photo to a record (its `photos` list and an outbox entry, once), inside the
/// caller's transaction.
pub(crate) fn link_photo_in(
    tx: &Connection,
    record_id: Uuid,
    sha: &str,
    mime: &str,
    size: usize,
    now: DateTime<Utc>,
) -> Result<()> {
    let (mut any, version) = read_any(tx, record_id)?;
    if !any.common().photos.iter().any(|p| p == sha) {
        any.common_mut().photos.push(sha.to_owned());
        write_record(tx, &any, version, now, false)?;
        let fields =
            serde_json::json!({"record_id": record_id, "sha256": sha, "mime": mime, "size": size});
        let serde_json::Value::Object(fields) = fields else {
            unreachable!()
        };
        append(
            tx,
            EntityKind::Photo,
            record_id,
            Op::Append,
            fields,
            version,
            now,
        )?;
    }
    Ok(())
}

fn to_any<T: EventRecord>(r: &T) -> Result<AnyRecord> {
    Ok(AnyRecord::from_json(r.domain(), serde_json::to_value(r)?)?)
}

impl Store {
    /// Files a new record in its domain's initial status.
    pub fn create_record<T: EventRecord>(&mut self, r: &T, now: DateTime<Utc>) -> Result<()> {
        self.tx(|tx| create_in(tx, r, now))
    }

    /// Reads a record as its type.
    pub fn record<T: EventRecord>(&self, id: Uuid) -> Result<T> {
        let data: String = self
            .conn
            .query_row(
                "SELECT data FROM records WHERE id = ?1",
                [id.to_string()],
                |r| r.get(0),
            )
            .optional()?
            .ok_or_else(|| StoreError::NotFound {
                kind: "record",
                id: id.to_string(),
            })?;
        Ok(serde_json::from_str(&data)?)
    }

    /// Reads a record of whatever domain it is.
    pub fn any_record(&self, id: Uuid) -> Result<AnyRecord> {
        Ok(read_any(&self.conn, id)?.0)
    }

    /// Edits a record's fields (not its status: see [`Store::transition`]); only the changed
    /// fields go into the outbox, with the server version the edit was made on.
    pub fn update_record<T: EventRecord>(
        &mut self,
        id: Uuid,
        edit: impl FnOnce(&mut T),
        now: DateTime<Utc>,
    ) -> Result<T> {
        self.tx(|tx| {
            let (any, version) = read_any(tx, id)?;
            let old: T = serde_json::from_value(any.to_json())?;
            let mut new = old.clone();
            edit(&mut new);
            if new.common().id != id || new.common().created_at != old.common().created_at {
                return Err(ValidationErrors::single("id", Problem::Immutable).into());
            }
            if new.common().status != old.common().status {
                return Err(ValidationErrors::single("status", Problem::StatusByEdit).into());
            }
            new.validate(now)?;
            let changes = changed_fields(&all_fields(&old)?, &all_fields(&new)?);
            if !changes.is_empty() {
                write_record(tx, &to_any(&new)?, version, now, false)?;
                append(
                    tx,
                    EntityKind::of_domain(new.domain()),
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

    /// Moves a record to `to`, as the worker; an illegal move names both states.
    pub fn transition(
        &mut self,
        id: Uuid,
        to: Status,
        note: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let actor = self.worker.clone();
        self.tx(|tx| transition_in(tx, id, to, note, &actor, now))
    }

    /// Appends a mediation session to a dispute; a registered or accepted dispute moves to
    /// MEDIATING.
    pub fn add_mediation_session(
        &mut self,
        s: &MediationSession,
        now: DateTime<Utc>,
    ) -> Result<()> {
        s.validate(now)?;
        let actor = self.worker.clone();
        self.tx(|tx| {
            let (d, _) = read_any(tx, s.dispute_id)?;
            if d.domain() != Domain::Dispute {
                return Err(ValidationErrors::single(
                    "dispute_id",
                    Problem::WrongKind {
                        expected: Domain::Dispute,
                    },
                )
                .into());
            }
            let data = serde_json::to_value(s)?;
            write_entry(
                tx,
                s.id,
                s.dispute_id,
                EntityKind::MediationSession,
                &data,
                &s.author,
                s.created_at,
            )?;
            append(
                tx,
                EntityKind::MediationSession,
                s.id,
                Op::Append,
                all_fields(s)?,
                0,
                now,
            )?;
            if matches!(d.common().status, Status::Registered | Status::Accepted) {
                transition_in(tx, s.dispute_id, Status::Mediating, None, &actor, now)?;
            }
            Ok(())
        })
    }

    /// Appends a report (续报, 终报) to an emergency and moves it to the report's stage.
    pub fn add_emergency_report(
        &mut self,
        rep: &EmergencyReport,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let actor = self.worker.clone();
        self.tx(|tx| add_emergency_report_in(tx, rep, &actor, now))
    }

    /// Appends GPS fixes to a running patrol and updates its distance.
    pub fn append_patrol_points(&mut self, pp: &PatrolPoints, now: DateTime<Utc>) -> Result<f64> {
        pp.validate(now)?;
        self.tx(|tx| {
            let (any, version) = read_any(tx, pp.patrol_id)?;
            let AnyRecord::Patrol(mut patrol) = any else {
                return Err(ValidationErrors::single(
                    "patrol_id",
                    Problem::WrongKind {
                        expected: Domain::Patrol,
                    },
                )
                .into());
            };
            if patrol.common.status != Status::Recording {
                return Err(ValidationErrors::single("patrol_id", Problem::NotRecording).into());
            }
            write_points(tx, pp)?;
            append(
                tx,
                EntityKind::PatrolPoints,
                pp.id,
                Op::Append,
                all_fields(pp)?,
                0,
                now,
            )?;
            patrol.distance_m = track_length_m(&track(tx, pp.patrol_id)?);
            write_record(tx, &AnyRecord::Patrol(patrol.clone()), version, now, false)?;
            Ok(patrol.distance_m)
        })
    }

    /// Ends a running patrol: sets its end time and submits it (the track is then locked).
    pub fn finish_patrol(
        &mut self,
        id: Uuid,
        ended_at: DateTime<Utc>,
        notes: &str,
        now: DateTime<Utc>,
    ) -> Result<Patrol> {
        let p = self.update_record::<Patrol>(
            id,
            |p| {
                p.ended_at = Some(ended_at);
                p.notes = notes.to_owned();
            },
            now,
        )?;
        self.transition(id, Status::Submitted, None, now)?;
        Ok(Patrol {
            common: crate::domain::model::Common {
                status: Status::Submitted,
                ..p.common
            },
            ..p
        })
    }

    /// Stores a photo once (content-addressed) and links it to a record; returns its SHA-256.
    pub fn attach_photo(
        &mut self,
        record_id: Uuid,
        bytes: &[u8],
        mime: &str,
        now: DateTime<Utc>,
    ) -> Result<String> {
        if !mime.starts_with("image/") {
            return Err(ValidationErrors::single("mime", Problem::NotImage).into());
        }
        let sha = hex::encode(Sha256::digest(bytes));
        self.tx(|tx| {
            tx.prepare_cached(
                "INSERT INTO photos (sha256, mime, bytes, created_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (sha256) DO NOTHING",
            )?
            .execute(params![sha, mime, bytes, ts(now)])?;
            link_photo_in(tx, record_id, &sha, mime, bytes.len(), now)?;
            Ok(sha.clone())
        })
    }

    /// A photo's bytes and type.
    pub fn photo(&self, sha256: &str) -> Result<(Vec<u8>, String)> {
        self.conn
            .query_row(
                "SELECT bytes, mime FROM photos WHERE sha256 = ?1",
                [sha256],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?
            .ok_or_else(|| StoreError::NotFound {
                kind: "photo",
                id: sha256.to_owned(),
            })
    }

    /// Records by domain, status, grid or patrol; newest first.
    pub fn records(&self, q: &RecordQuery) -> Result<Vec<RecordSummary>> {
        let mut sql = String::from("SELECT * FROM records WHERE 1 = 1");
        let mut args: Vec<String> = Vec::new();
        if let Some(d) = q.domain {
            args.push(d.code().to_owned());
            sql.push_str(&format!(" AND kind = ?{}", args.len()));
        }
        let mut statuses: Vec<Status> = q.statuses.clone();
        if q.open_only {
            let open = crate::domain::lifecycle::open_statuses();
            if statuses.is_empty() {
                statuses = open;
            } else {
                statuses.retain(|s| open.contains(s));
                if statuses.is_empty() {
                    return Ok(Vec::new());
                }
            }
        }
        if !statuses.is_empty() {
            let marks: Vec<String> = statuses
                .iter()
                .map(|s| {
                    args.push(s.code().to_owned());
                    format!("?{}", args.len())
                })
                .collect();
            sql.push_str(&format!(" AND status IN ({})", marks.join(", ")));
        }
        if let Some(g) = q.grid_id {
            args.push(g.to_string());
            sql.push_str(&format!(" AND grid_id = ?{}", args.len()));
        }
        if let Some(p) = q.patrol_id {
            args.push(p.to_string());
            sql.push_str(&format!(" AND patrol_id = ?{}", args.len()));
        }
        sql.push_str(" ORDER BY created_at DESC, id DESC");
        if let Some(l) = q.limit {
            sql.push_str(&format!(" LIMIT {l}"));
        }
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(args.iter()), |r| {
            Ok(summary_from_row(r))
        })?;
        let mut out: Vec<RecordSummary> = rows.map(|r| r?).collect::<Result<_>>()?;
        if q.open_only {
            // A status code can be open in one lifecycle and terminal in another.
            out.retain(|r| lifecycle(r.domain).is_open(r.status));
        }
        Ok(out)
    }

    /// A record's status history, oldest first.
    pub fn status_history(&self, id: Uuid) -> Result<Vec<StatusChange>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT from_status, to_status, at, actor, note FROM status_history
             WHERE record_id = ?1 ORDER BY at, id",
        )?;
        stmt.query_map([id.to_string()], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, Option<String>>(4)?,
            ))
        })?
        .map(|row| {
            let (f, t, at, actor, note) = row?;
            Ok(StatusChange {
                record_id: id,
                from: code(&f)?,
                to: code(&t)?,
                at: time(&at)?,
                actor,
                note,
            })
        })
        .collect()
    }

    fn entries_of<T: serde::de::DeserializeOwned>(
        &self,
        id: Uuid,
        kind: EntityKind,
    ) -> Result<Vec<T>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT data FROM entries WHERE record_id = ?1 AND kind = ?2 ORDER BY created_at, id",
        )?;
        stmt.query_map(params![id.to_string(), kind.code()], |r| {
            r.get::<_, String>(0)
        })?
        .map(|d| Ok(serde_json::from_str(&d?)?))
        .collect()
    }

    pub fn mediation_sessions(&self, dispute_id: Uuid) -> Result<Vec<MediationSession>> {
        self.entries_of(dispute_id, EntityKind::MediationSession)
    }

    pub fn emergency_reports(&self, emergency_id: Uuid) -> Result<Vec<EmergencyReport>> {
        self.entries_of(emergency_id, EntityKind::EmergencyReport)
    }

    /// The county's replies on a record, oldest first.
    pub fn replies(&self, record_id: Uuid) -> Result<Vec<Reply>> {
        self.entries_of(record_id, EntityKind::Reply)
    }

    /// A patrol's GPS track, in time order.
    pub fn patrol_track(&self, patrol_id: Uuid) -> Result<Vec<TrackPoint>> {
        track(&self.conn, patrol_id)
    }
}

pub(crate) fn transition_in(
    tx: &Connection,
    id: Uuid,
    to: Status,
    note: Option<&str>,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    let (mut any, version) = read_any(tx, id)?;
    let from = any.common().status;
    check_transition(id, any.domain(), from, to, Actor::Worker)?;
    any.common_mut().status = to;
    write_record(tx, &any, version, now, false)?;
    write_status_change(
        tx,
        &StatusChange {
            record_id: id,
            from,
            to,
            at: now,
            actor: actor.to_owned(),
            note: note.map(str::to_owned),
        },
    )?;
    let mut fields = serde_json::Map::new();
    fields.insert("status".into(), to.code().into());
    fields.insert("from".into(), from.code().into());
    if let Some(n) = note {
        fields.insert("note".into(), n.into());
    }
    append(
        tx,
        EntityKind::of_domain(any.domain()),
        id,
        Op::Transition,
        fields,
        version,
        now,
    )?;
    Ok(())
}
