//! The sync protocol on the server: applying a pushed batch (in one transaction, with the
//! device's watermark, scope checks, validation, lifecycle checks and the field-level merge of
//! [`crate::merge`]), answering pulls, and the county's own changes (transitions, replies,
//! settling conflicts), which flow down to devices the same way.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::db::{DbError, Sql, V};
use super::repo::{self, Entity, EntityMeta, Scope, User};
use crate::domain::codes::{Coded, Domain, PersonStatus, Supervision, Tag};
use crate::domain::geo::track_length_m;
use crate::domain::lifecycle::{Actor, Status, check_transition, lifecycle};
use crate::domain::model::{
    AnyRecord, Conflict, EmergencyReport, EntityKind, House, Household, MediationSession,
    PatrolPoints, Person, Reply, StatusChange, Visit, new_id,
};
use crate::merge::{Decision, FieldEdit, FieldMeta, corrected_time, decide};
use crate::wire::{
    Change, Lane, Op, OutboxEntry, PullResponse, PushRequest, PushResponse, RawFields, Rejection,
};

mod apply;
mod assign;
mod drain;
mod error;
mod pull;
mod receive;
mod review;
mod tasks;
mod upload;

use apply::*;
use assign::acting_ctx;
pub use assign::dispatch;
pub use drain::{
    Drained, INBOX_LOCK, MAX_FIELD_DEPTH, MAX_INBOX_ATTEMPTS, apply_inbox, apply_inbox_watched,
    parse_entry,
};
pub use error::{Error, Refusal};
pub use pull::{cadence, pull};
pub use receive::{Incoming, check_push_shape, receive_group};
pub use review::{
    import_entity, list_records, record_detail, reply, review_edit, review_transition,
    set_supervision, settle_conflict, supervision_limit,
};
pub use tasks::{
    NewTask, cancel_task, create_task, list_tasks, task_in_scope, task_target, workers_of_grid,
};
pub use upload::{Upload, put_photo_chunk};

/// Largest pull page.
pub const MAX_PAGE: usize = 20_000;

/// Reads JSON into a type, saying which field is wrong.
pub fn parse<T: DeserializeOwned>(value: &Value) -> Result<T, Refusal> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let message = e.inner().to_string();
        // A missing field is reported at its parent: name the field itself.
        let missing = message
            .strip_prefix("missing field `")
            .and_then(|m| m.split('`').next())
            .map(|f| {
                if path == "." {
                    f.to_owned()
                } else {
                    format!("{path}.{f}")
                }
            });
        match missing {
            Some(field) => Refusal::invalid(
                format!("必填项未填写 (missing field `{field}`)"),
                Some(&field),
            ),
            None => Refusal::invalid(message, (path != ".").then_some(path.as_str())),
        }
    })
}

/// Who is making a change, and with what clock.
struct Ctx<'a> {
    user: &'a User,
    scope: Scope,
    device: Option<Uuid>,
    server_now: DateTime<Utc>,
    device_now: DateTime<Utc>,
    conflicts: u32,
    /// Sequence numbers reserved for this batch, handed out in order before the counter is
    /// asked again (one statement for a whole push instead of one per change).
    seqs: std::ops::Range<i64>,
    /// Grids already found in scope in this batch: their codes.
    grids: BTreeMap<Uuid, String>,
    /// Audit lines of this batch, written together at its end.
    audits: Vec<repo::AuditLine>,
    /// Kind and grid code of entities looked up in this batch (`None`: not there), so a
    /// pushed row's ids are looked up in one query, not one each.
    heads: std::collections::HashMap<Uuid, Option<(EntityKind, String)>>,
    /// New entities not yet written: they go in multi-row statements at [`Ctx::flush`],
    /// which runs before anything reads entities back.
    pending: Vec<Entity>,
}

impl<'a> Ctx<'a> {
    fn new(
        user: &'a User,
        device: Option<Uuid>,
        server_now: DateTime<Utc>,
        device_now: DateTime<Utc>,
    ) -> Ctx<'a> {
        Ctx {
            user,
            scope: user.scope(),
            device,
            server_now,
            device_now,
            conflicts: 0,
            seqs: 0..0,
            grids: BTreeMap::new(),
            audits: Vec::new(),
            heads: Default::default(),
            pending: Vec::new(),
        }
    }

    /// Kind and grid code of an entity, if it exists (pending ones included).
    fn head(&mut self, db: &mut dyn Sql, id: Uuid) -> Result<Option<(EntityKind, String)>, Error> {
        if let Some(h) = self.heads.get(&id) {
            return Ok(h.clone());
        }
        let h = repo::entity_head(db, id)?;
        self.heads.insert(id, h.clone());
        Ok(h)
    }

    /// Looks up these entities' heads in one query (those not looked up yet).
    fn prefetch_heads(&mut self, db: &mut dyn Sql, ids: &[Uuid]) -> Result<(), Error> {
        let want: Vec<Uuid> = ids
            .iter()
            .copied()
            .filter(|i| !self.heads.contains_key(i))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let found = repo::entity_heads(db, &want)?;
        for id in want {
            self.heads.insert(id, found.get(&id).cloned());
        }
        Ok(())
    }

    /// Keeps a new entity to be written at the next [`Ctx::flush`].
    fn add(&mut self, e: Entity) {
        self.heads.insert(e.id, Some((e.kind, e.grid_code.clone())));
        self.pending.push(e);
    }

    /// Writes the pending new entities.
    fn flush(&mut self, db: &mut dyn Sql) -> Result<(), Error> {
        if !self.pending.is_empty() {
            repo::put_entities(db, &self.pending, self.server_now)?;
            self.pending.clear();
        }
        Ok(())
    }

    /// The next sequence number: a reserved one, or the counter's next.
    fn seq(&mut self, db: &mut dyn Sql) -> Result<i64, Error> {
        match self.seqs.next() {
            Some(s) => Ok(s),
            None => Ok(repo::next_seq(db)?),
        }
    }

    /// The latest of the two clocks: records are validated as of the moment they were made.
    fn validation_now(&self) -> DateTime<Utc> {
        self.server_now.max(self.device_now)
    }
}

fn not_in_scope(what: &str, id: Uuid) -> Error {
    // Same answer whether it exists elsewhere or not at all.
    Refusal::NotFound(format!("no {what} {id} in your scope")).into()
}

/// An entity in scope, or the not-found answer.
fn scoped(db: &mut dyn Sql, ctx: &Ctx<'_>, id: Uuid, what: &str) -> Result<Entity, Error> {
    let found = match ctx.pending.iter().find(|e| e.id == id) {
        Some(e) => Some(e.clone()),
        None => repo::get_entity(db, id)?,
    };
    match found {
        Some(e) if ctx.scope.covers(&e.grid_code) => Ok(e),
        _ => Err(not_in_scope(what, id)),
    }
}

fn grid_code_in_scope(db: &mut dyn Sql, ctx: &mut Ctx<'_>, grid: Uuid) -> Result<String, Error> {
    if let Some(code) = ctx.grids.get(&grid) {
        return Ok(code.clone());
    }
    // Kind and code only: a grid's JSON (its boundary) is large and not needed here.
    match ctx.head(db, grid)? {
        Some((EntityKind::Grid, code)) if ctx.scope.covers(&code) => {
            ctx.grids.insert(grid, code.clone());
            Ok(code)
        }
        _ => Err(not_in_scope("grid", grid)),
    }
}

/// Notes an audit line for an entry (written with the rest of the batch's).
fn audit_entry(ctx: &mut Ctx<'_>, e: &OutboxEntry, action: &str) {
    ctx.audits.push(repo::AuditLine {
        at: ctx.server_now,
        username: ctx.user.username.clone(),
        device: ctx.device,
        action: action.to_owned(),
        kind: Some(e.kind),
        entity: Some(e.record_id),
        detail: None,
    });
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// A new entity with every field stamped with its first version.
#[allow(clippy::too_many_arguments)] // each is one column of the entity
fn new_entity(
    kind: EntityKind,
    id: Uuid,
    grid_id: Uuid,
    grid_code: String,
    parent_id: Option<Uuid>,
    data: Map<String, Value>,
    seq: i64,
    at: DateTime<Utc>,
    by: &str,
    created_at: DateTime<Utc>,
) -> Entity {
    let meta = EntityMeta {
        created: FieldMeta {
            version: seq,
            at,
            by: by.to_owned(),
            device: None,
        },
        fields: Default::default(),
    };
    Entity {
        id,
        kind,
        grid_id,
        grid_code,
        parent_id,
        data,
        meta,
        version: seq,
        created_at,
    }
}

/// Checks a whole entity's data by its type; returns (grid, parent) it belongs to. A `new`
/// record (a device's CREATE) is also checked for what a new record of its domain must name
/// (`Event::validate_new`: a 民生服务 its matter, a 政策宣传 its place and audience, ...).
fn check_typed(
    db: &mut dyn Sql,
    ctx: &Ctx<'_>,
    kind: EntityKind,
    data: &Map<String, Value>,
    new: bool,
) -> Result<(Uuid, Option<Uuid>), Error> {
    let v = Value::Object(data.clone());
    let now = ctx.validation_now();
    if let Some(domain) = kind.domain() {
        let r = AnyRecord::from_json(domain, &v)
            .map_err(|_| ())
            .or_else(|_| {
                // Re-parse through the typed path for an error that names the field: the
                // common header first (flattened into each record, where a path is lost).
                parse::<crate::domain::model::Common>(&v)?;
                match domain {
                    Domain::Hazard => {
                        parse::<crate::domain::model::Hazard>(&v).map(AnyRecord::Hazard)
                    }
                    Domain::Opinion => {
                        parse::<crate::domain::model::Opinion>(&v).map(AnyRecord::Opinion)
                    }
                    Domain::Dispute => {
                        parse::<crate::domain::model::Dispute>(&v).map(AnyRecord::Dispute)
                    }
                    Domain::Patrol => {
                        parse::<crate::domain::model::Patrol>(&v).map(AnyRecord::Patrol)
                    }
                    Domain::Emergency => {
                        parse::<crate::domain::model::Emergency>(&v).map(AnyRecord::Emergency)
                    }
                    _ => parse::<crate::domain::model::Event>(&v).and_then(|e| {
                        if e.domain == domain {
                            Ok(AnyRecord::Event(e))
                        } else {
                            Err(Refusal::invalid(
                                format!("domain {} does not match kind {domain}", e.domain),
                                Some("domain"),
                            ))
                        }
                    }),
                }
            })?;
        match &r {
            AnyRecord::Event(ev) if new => ev.validate_new(now)?,
            _ => r.validate(now)?,
        }
        // The person a service record names must be one this account may see.
        if let AnyRecord::Event(ev) = &r
            && let Some(p) = ev.served_person_id
        {
            parent_of_kind(db, ctx, p, EntityKind::Person, "served_person_id")?;
        }
        return Ok((r.common().grid_id, None));
    }
    match kind {
        EntityKind::House => {
            let h: House = parse(&v)?;
            h.validate()?;
            Ok((h.grid_id, None))
        }
        EntityKind::Household => {
            let h: Household = parse(&v)?;
            h.validate()?;
            // A household in a house (同址分户) is in the house's grid, one this account sees.
            if let Some(house) = h.house_id {
                let found = scoped(db, ctx, house, "house").map_err(|e| e.at("house_id"))?;
                if found.kind != EntityKind::House || found.grid_id != h.grid_id {
                    return Err(Error::invalid(
                        format!("the house is in grid {}, not {}", found.grid_id, h.grid_id),
                        Some("house_id"),
                    ));
                }
            }
            Ok((h.grid_id, None))
        }
        EntityKind::Person => {
            let p: Person = parse(&v)?;
            p.validate(crate::domain::cst::today(now))?;
            let h =
                scoped(db, ctx, p.household_id, "household").map_err(|e| e.at("household_id"))?;
            Ok((h.grid_id, Some(p.household_id)))
        }
        EntityKind::Visit => {
            let vi: Visit = parse(&v)?;
            vi.validate(now)?;
            let h =
                scoped(db, ctx, vi.household_id, "household").map_err(|e| e.at("household_id"))?;
            if h.grid_id != vi.grid_id {
                return Err(Error::invalid(
                    format!("the household is in grid {}, not {}", h.grid_id, vi.grid_id),
                    Some("grid_id"),
                ));
            }
            Ok((vi.grid_id, Some(vi.household_id)))
        }
        EntityKind::MediationSession => {
            let s: MediationSession = parse(&v)?;
            s.validate(now)?;
            let d = parent_of_kind(db, ctx, s.dispute_id, EntityKind::Dispute, "dispute_id")?;
            Ok((d.grid_id, Some(d.id)))
        }
        EntityKind::EmergencyReport => {
            let r: EmergencyReport = parse(&v)?;
            r.validate(now)?;
            let e = parent_of_kind(
                db,
                ctx,
                r.emergency_id,
                EntityKind::Emergency,
                "emergency_id",
            )?;
            Ok((e.grid_id, Some(e.id)))
        }
        EntityKind::PatrolPoints => {
            let p: PatrolPoints = parse(&v)?;
            p.validate(now)?;
            let patrol = parent_of_kind(db, ctx, p.patrol_id, EntityKind::Patrol, "patrol_id")?;
            Ok((patrol.grid_id, Some(patrol.id)))
        }
        other => Err(Error::invalid(
            format!("a device cannot send {other} entities"),
            Some("kind"),
        )),
    }
}

fn parent_of_kind(
    db: &mut dyn Sql,
    ctx: &Ctx<'_>,
    id: Uuid,
    kind: EntityKind,
    field: &str,
) -> Result<Entity, Error> {
    let e = scoped(db, ctx, id, &kind.code().to_lowercase()).map_err(|e| e.at(field))?;
    if e.kind != kind {
        return Err(not_in_scope(&kind.code().to_lowercase(), id).at(field));
    }
    Ok(e)
}
