//! The sync protocol on the server: applying a pushed batch (in one transaction, with the
//! device's watermark, scope checks, validation, lifecycle checks and the field-level merge of
//! [`crate::merge`]), answering pulls, and the county's own changes (transitions, replies,
//! settling conflicts), which flow down to devices the same way.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::db::{Sql, V};
use super::error::Failure;
use super::repo::{self, Entity, EntityMeta, Scope, User};
use crate::domain::codes::{Coded, Domain, Tag};
use crate::domain::geo::track_length_m;
use crate::domain::lifecycle::{Actor, Status, TransitionError, check_transition, lifecycle};
use crate::domain::model::{
    AnyRecord, Conflict, EmergencyReport, EntityKind, House, Household, MediationSession,
    PatrolPoints, Person, Reply, StatusChange, Visit, new_id,
};
use crate::merge::{Decision, FieldEdit, FieldMeta, corrected_time, decide};
use crate::wire::{
    Change, Lane, Op, OutboxEntry, PullResponse, PushRequest, PushResponse, RawFields, Rejection,
};

/// Largest pull page.
pub const MAX_PAGE: usize = 20_000;

/// Reads JSON into a type, saying which field is wrong.
pub fn parse<T: DeserializeOwned>(value: &Value) -> Result<T, Failure> {
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
            Some(field) => Failure::invalid(
                format!("必填项未填写 (missing field `{field}`)"),
                Some(&field),
            ),
            None => Failure::invalid(message, (path != ".").then_some(path.as_str())),
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
    fn head(
        &mut self,
        db: &mut dyn Sql,
        id: Uuid,
    ) -> Result<Option<(EntityKind, String)>, Failure> {
        if let Some(h) = self.heads.get(&id) {
            return Ok(h.clone());
        }
        let h = repo::entity_head(db, id)?;
        self.heads.insert(id, h.clone());
        Ok(h)
    }

    /// Looks up these entities' heads in one query (those not looked up yet).
    fn prefetch_heads(&mut self, db: &mut dyn Sql, ids: &[Uuid]) -> Result<(), Failure> {
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
    fn flush(&mut self, db: &mut dyn Sql) -> Result<(), Failure> {
        if !self.pending.is_empty() {
            repo::put_entities(db, &self.pending, self.server_now)?;
            self.pending.clear();
        }
        Ok(())
    }

    /// The next sequence number: a reserved one, or the counter's next.
    fn seq(&mut self, db: &mut dyn Sql) -> Result<i64, Failure> {
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

fn not_in_scope(what: &str, id: Uuid) -> Failure {
    // Same answer whether it exists elsewhere or not at all.
    Failure::NotFound(format!("no {what} {id} in your scope"))
}

/// An entity in scope, or the not-found answer.
fn scoped(db: &mut dyn Sql, ctx: &Ctx<'_>, id: Uuid, what: &str) -> Result<Entity, Failure> {
    let found = match ctx.pending.iter().find(|e| e.id == id) {
        Some(e) => Some(e.clone()),
        None => repo::get_entity(db, id)?,
    };
    match found {
        Some(e) if ctx.scope.covers(&e.grid_code) => Ok(e),
        _ => Err(not_in_scope(what, id)),
    }
}

fn grid_code_in_scope(db: &mut dyn Sql, ctx: &mut Ctx<'_>, grid: Uuid) -> Result<String, Failure> {
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

/// Checks a whole entity's data by its type; returns (grid, parent) it belongs to.
fn check_typed(
    db: &mut dyn Sql,
    ctx: &Ctx<'_>,
    kind: EntityKind,
    data: &Map<String, Value>,
) -> Result<(Uuid, Option<Uuid>), Failure> {
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
                            Err(Failure::invalid(
                                format!("domain {} does not match kind {domain}", e.domain),
                                Some("domain"),
                            ))
                        }
                    }),
                }
            })?;
        r.validate(now)?;
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
                return Err(Failure::invalid(
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
        other => Err(Failure::invalid(
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
) -> Result<Entity, Failure> {
    let e = scoped(db, ctx, id, &kind.code().to_lowercase()).map_err(|e| e.at(field))?;
    if e.kind != kind {
        return Err(not_in_scope(&kind.code().to_lowercase(), id).at(field));
    }
    Ok(e)
}

/// A push to receive: who sent it, from which device (the session's), and what.
pub struct Incoming<'a> {
    pub user: &'a User,
    pub device: Uuid,
    pub req: &'a PushRequest<RawFields>,
    /// `req.entries` packed for the inbox ([`repo::pack_entries`]), if the caller did it
    /// already (outside the transaction): queued as it is when every entry is new.
    pub packed: Option<&'a [u8]>,
}

/// Receives pushed batches in the caller's transaction, in order, in a handful of statements
/// whatever their number: checks each one's shape, device and sequence, and queues the
/// entries not seen before in the push inbox. Each answer acknowledges them (the device may
/// delete them), or refuses the push whole; [`apply_inbox`] applies the entries just after,
/// in arrival order, and an entry refused then goes down with the device's next pull.
/// Nothing but the watermark rows' locks is written before every push is decided (a row is
/// made for a new device lane, marked seen only by its owner), so a refused push needs no
/// savepoint. Only a database error fails the call.
pub fn receive_group(
    db: &mut dyn Sql,
    pushes: &[Incoming<'_>],
    server_now: DateTime<Utc>,
) -> Result<Vec<Result<PushResponse, Failure>>, Failure> {
    let shapes: Vec<Result<(), Failure>> = pushes.iter().map(check_push_shape).collect();
    let keys: Vec<(Uuid, &str, &str)> = pushes
        .iter()
        .zip(&shapes)
        .filter(|(_, ok)| ok.is_ok())
        .map(|(p, _)| (p.device, p.req.lane.code(), p.user.username.as_str()))
        .collect();
    let mut marks = repo::lock_watermarks(db, &keys, server_now)?;
    let mut queued = Vec::new();
    let mut moved: BTreeMap<(Uuid, &str), i64> = BTreeMap::new();
    let mut answers = Vec::with_capacity(pushes.len());
    for (p, shape) in pushes.iter().zip(shapes) {
        let answer = shape.and_then(|()| {
            let lane = p.req.lane;
            let (watermark, owner) = marks
                .get_mut(&(p.device, lane.code().to_owned()))
                .ok_or_else(|| Failure::Internal("watermark row not locked".into()))?;
            if *owner != p.user.username {
                return Err(Failure::Forbidden(format!(
                    "device {} is enrolled to another account",
                    p.device
                )));
            }
            let wm = *watermark as u64;
            let fresh: Vec<&OutboxEntry<RawFields>> =
                p.req.entries.iter().filter(|e| e.seq > wm).collect();
            let replayed = (p.req.entries.len() - fresh.len()) as u32;
            if let Some(first) = fresh.first()
                && first.seq != wm + 1
            {
                return Err(Failure::Gap { expected: wm + 1 });
            }
            let acked = fresh.last().map(|e| e.seq).unwrap_or(wm).max(wm);
            if !fresh.is_empty() {
                let entries_zstd = match p.packed {
                    Some(all) if replayed == 0 => all.to_owned(),
                    _ => repo::pack_entries(
                        &serde_json::to_string(&fresh)
                            .map_err(|e| Failure::Internal(e.to_string()))?,
                    )?,
                };
                queued.push(repo::QueuedPush {
                    device: p.device,
                    lane: lane.code(),
                    username: &p.user.username,
                    device_now: p.req.device_now,
                    received_at: server_now,
                    entries_zstd,
                });
                *watermark = acked as i64;
                moved.insert((p.device, lane.code()), acked as i64);
            }
            Ok(PushResponse {
                lane,
                acked_through: acked,
                queued: fresh.len() as u32,
                replayed,
            })
        });
        answers.push(answer);
    }
    repo::queue_pushes(db, queued)?;
    let moved: Vec<(Uuid, &str, i64)> = moved.into_iter().map(|((d, l), s)| (d, l, s)).collect();
    repo::set_watermarks(db, &moved)?;
    Ok(answers)
}

/// The checks of a push that need no database: its device is the session's, and its
/// entries are of its lane, in sequence without gaps.
fn check_push_shape(p: &Incoming<'_>) -> Result<(), Failure> {
    let req = p.req;
    if req.device_id != p.device {
        return Err(Failure::Forbidden(format!(
            "this session belongs to device {}, not {}",
            p.device, req.device_id
        )));
    }
    let lane = req.lane;
    for (i, e) in req.entries.iter().enumerate() {
        if e.lane != lane || Lane::for_kind(e.kind) != lane {
            return Err(Failure::invalid(
                format!(
                    "a {} entry belongs in the {} lane",
                    e.kind,
                    Lane::for_kind(e.kind)
                ),
                Some(&format!("entries[{i}].lane")),
            ));
        }
        if i > 0 && e.seq != req.entries[i - 1].seq + 1 {
            return Err(Failure::invalid(
                "entries must be in sequence order without gaps",
                Some(&format!("entries[{i}].seq")),
            ));
        }
    }
    Ok(())
}

/// Applies queued pushes in arrival order, whole rows, until about `max_entries` entries are
/// done; returns the last row it applied (none: the inbox is empty, or on PostgreSQL another
/// replica is applying it). Each row is tried whole in a savepoint first; if an entry is
/// refused, the row is applied entry by entry instead, and each refused entry is kept in
/// `push_rejections` (with a sequence number, for its device's next pull) and audited.
/// An entry whose fields cannot be read (a number out of range, a lone surrogate, nesting
/// past [`MAX_FIELD_DEPTH`]) is refused like any other, naming the field; a row that cannot
/// be read at all is quarantined at once. Only a database error (or a bug) fails the call:
/// then nothing of it is kept, the rows stay queued, and `current` names the row it was on
/// (the caller counts the failure against that row: [`repo::note_inbox_failure`]).
pub fn apply_inbox(
    db: &mut dyn Sql,
    max_entries: usize,
    now: DateTime<Utc>,
) -> Result<Option<i64>, Failure> {
    apply_inbox_watched(db, max_entries, now, &std::sync::atomic::AtomicI64::new(0))
}

/// [`apply_inbox`], saying in `current` which row it is applying (0: none), so that a
/// failure, or a panic, can be counted against that row.
pub fn apply_inbox_watched(
    db: &mut dyn Sql,
    max_entries: usize,
    now: DateTime<Utc>,
    current: &std::sync::atomic::AtomicI64,
) -> Result<Option<i64>, Failure> {
    use std::sync::atomic::Ordering::SeqCst;
    current.store(0, SeqCst);
    if db.backend() == "postgres"
        && db.query_one("SELECT pg_try_advisory_xact_lock($1)", &[V::I(INBOX_LOCK)])?[0].i64()? == 0
    {
        return Ok(None);
    }
    let mut users: BTreeMap<String, Option<User>> = BTreeMap::new();
    let (mut done, mut after, mut entries_done) = (None, 0, 0);
    let mut applied = Vec::new();
    // A few rows at a time: a push is often as big as a whole chunk, and each row fetched is
    // decompressed and parsed.
    'rows: loop {
        let rows = repo::queued_pushes(db, after, INBOX_FETCH)?;
        if rows.is_empty() {
            break;
        }
        for q in rows {
            current.store(q.id, SeqCst);
            after = q.id;
            let read = match &q.unreadable {
                Some(why) => Err(why.clone()),
                None => serde_json::from_str(&q.entries).map_err(|e| e.to_string()),
            };
            let entries: Vec<OutboxEntry<RawFields>> = match read {
                Ok(e) => e,
                Err(e) => {
                    // Not one entry's fault, and reading it again will not help.
                    let why = format!("push inbox row {} cannot be read: {e}", q.id);
                    tracing::error!(row = q.id, device = %q.device, error = %why, "push inbox row quarantined");
                    repo::quarantine_push(db, q.id, &why, now)?;
                    continue;
                }
            };
            if !users.contains_key(&q.username) {
                let u = repo::user_by_name(db, &q.username)?.map(|(u, _)| u);
                users.insert(q.username.clone(), u);
            }
            let user = users[&q.username].as_ref();
            apply_received(db, user, &q, &entries, now)?;
            applied.push(q.id);
            done = Some(q.id);
            entries_done += entries.len();
            if entries_done >= max_entries {
                break 'rows;
            }
        }
    }
    current.store(0, SeqCst);
    repo::unqueue_pushes(db, &applied)?;
    Ok(done.or((after > 0).then_some(after)))
}

/// Inbox rows fetched at a time by [`apply_inbox`].
const INBOX_FETCH: i64 = 4;

/// Failed applications of one inbox row (database or program errors, not refusals) before
/// it is quarantined. On its last try, an entry that fails with a database error is refused
/// (as `internal`) instead, so only a row that fails outside its entries is set aside.
pub const MAX_INBOX_ATTEMPTS: i64 = 3;

/// How deep an entry's fields may nest (objects and arrays): a record's deepest field is a
/// dispute party's or a track point's value, at depth 3.
pub const MAX_FIELD_DEPTH: usize = 8;

/// The PostgreSQL advisory lock one replica holds while it applies the inbox (rows of one
/// device lane must be applied in order, so only one applier runs at a time).
const INBOX_LOCK: i64 = 0x6772_6964_7761;

/// An entry's fields read from their text, or the refusal that names the field: a value
/// JSON allows but the server cannot hold (a number out of range, a lone surrogate, a NUL
/// character, nesting past [`MAX_FIELD_DEPTH`]).
pub fn parse_entry(e: &OutboxEntry<RawFields>) -> Result<OutboxEntry, Failure> {
    let de = &mut serde_json::Deserializer::from_str(e.fields.get());
    let fields: crate::wire::Fields = serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        Failure::invalid(
            format!("无法读取的值，请在手机上修改这条记录后重新提交 (unreadable value: {inner})"),
            Some(&if path == "." || path.is_empty() {
                "fields".to_owned()
            } else {
                format!("fields.{path}")
            }),
        )
    })?;
    for (k, v) in &fields {
        check_value(v, &format!("fields.{k}"), 1)?;
    }
    Ok(OutboxEntry {
        lane: e.lane,
        seq: e.seq,
        kind: e.kind,
        record_id: e.record_id,
        op: e.op,
        fields,
        base_version: e.base_version,
        edited_at: e.edited_at,
    })
}

/// What JSON allows but no field of ours holds: nesting past [`MAX_FIELD_DEPTH`] and NUL
/// characters (which PostgreSQL's text refuses).
fn check_value(v: &Value, path: &str, depth: usize) -> Result<(), Failure> {
    match v {
        Value::String(s) if s.contains('\0') => Err(Failure::invalid(
            "文字中含有不可见的控制字符，请删除后重新提交 (text holds a NUL character)",
            Some(path),
        )),
        Value::Array(_) | Value::Object(_) if depth > MAX_FIELD_DEPTH => Err(Failure::invalid(
            format!(
                "数据嵌套超过 {MAX_FIELD_DEPTH} 层 (nested deeper than {MAX_FIELD_DEPTH} levels)"
            ),
            Some(path),
        )),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, x)| check_value(x, &format!("{path}[{i}]"), depth + 1)),
        Value::Object(m) => m
            .iter()
            .try_for_each(|(k, x)| check_value(x, &format!("{path}.{k}"), depth + 1)),
        _ => Ok(()),
    }
}

fn apply_received(
    db: &mut dyn Sql,
    user: Option<&User>,
    q: &repo::Queued,
    raw: &[OutboxEntry<RawFields>],
    now: DateTime<Utc>,
) -> Result<(), Failure> {
    let Some(user) = user else {
        for e in raw {
            let f = Failure::Forbidden(format!("the account {} no longer exists", q.username));
            reject(db, q, e, &f, now)?;
        }
        return Ok(());
    };
    // On its last try a row's database errors become its entries' refusals.
    let last_try = q.attempts + 1 >= MAX_INBOX_ATTEMPTS;
    let parsed: Vec<Result<OutboxEntry, Failure>> = raw.iter().map(parse_entry).collect();
    // Fast path: the whole row at once.
    if parsed.iter().all(Result::is_ok) {
        let entries: Vec<&OutboxEntry> = parsed.iter().filter_map(|p| p.as_ref().ok()).collect();
        let whole = in_savepoint(db, last_try, |db| {
            let mut ctx = Ctx::new(user, Some(q.device), now, q.device_now);
            let n = entries.len() as i64;
            let first = repo::reserve_seqs(db, n)?;
            ctx.seqs = first..first + n;
            let ids: Vec<Uuid> = entries.iter().map(|e| e.record_id).collect();
            ctx.prefetch_heads(db, &ids)?;
            for e in &entries {
                apply_entry(db, &mut ctx, e)?;
            }
            ctx.flush(db)?;
            Ok(repo::audit_many(db, &ctx.audits)?)
        })?;
        if whole.is_ok() {
            return Ok(());
        }
    }
    // Entry by entry: the good ones are kept, each refused one is recorded.
    for (e, p) in raw.iter().zip(parsed) {
        let one = match p {
            Ok(p) => in_savepoint(db, last_try, |db| {
                let mut ctx = Ctx::new(user, Some(q.device), now, q.device_now);
                apply_entry(db, &mut ctx, &p)?;
                ctx.flush(db)?;
                Ok(repo::audit_many(db, &ctx.audits)?)
            })?,
            Err(f) => Err(f),
        };
        if let Err(f) = one {
            reject(db, q, e, &f, now)?;
        }
    }
    Ok(())
}

/// Runs `f` in a savepoint: kept if it succeeds, undone if it is refused (the inner error).
/// A database error is the outer one (the whole transaction fails with it) unless
/// `db_refuses` and it is not transient ([`super::db::DbError::is_transient`]): then it too is
/// undone and answered as the entry's refusal (`internal`).
fn in_savepoint<R>(
    db: &mut dyn Sql,
    db_refuses: bool,
    f: impl FnOnce(&mut dyn Sql) -> Result<R, Failure>,
) -> Result<Result<R, Failure>, Failure> {
    db.exec("SAVEPOINT step", &[])?;
    match f(db) {
        Ok(r) => {
            db.exec("RELEASE SAVEPOINT step", &[])?;
            Ok(Ok(r))
        }
        Err(Failure::Db(e)) if !db_refuses || e.is_transient() => Err(Failure::Db(e)),
        Err(refused) => {
            db.exec("ROLLBACK TO SAVEPOINT step", &[])?;
            db.exec("RELEASE SAVEPOINT step", &[])?;
            Ok(Err(match refused {
                Failure::Db(e) => {
                    tracing::error!(error = %e, "an entry failed in the database on its row's last try; refused");
                    Failure::Internal(format!("the county server could not store this entry: {e}"))
                }
                other => other,
            }))
        }
    }
}

/// Keeps a refused entry, whole, with why, for its device's next pull and county staff.
fn reject(
    db: &mut dyn Sql,
    q: &repo::Queued,
    e: &OutboxEntry<RawFields>,
    f: &Failure,
    now: DateTime<Utc>,
) -> Result<(), Failure> {
    let (error, field) = f.code_and_field();
    // What a refusal says may quote the refused value, NUL and all; PostgreSQL's text holds
    // no NUL, and keeping the refusal must not fail on what it refuses.
    let clean = |s: String| s.replace('\0', "\\u0000");
    let field = field.map(clean);
    let seq = repo::next_seq(db)?;
    let entry = serde_json::to_string(e).map_err(|e| Failure::Internal(e.to_string()))?;
    let r = Rejection {
        seq,
        lane: e.lane,
        entry_seq: e.seq,
        kind: e.kind,
        record_id: e.record_id,
        op: e.op,
        error: error.to_owned(),
        message: clean(f.refusal_message()),
        field,
        at: now,
    };
    repo::add_rejection(db, q.device, &q.username, &r, &entry)?;
    tracing::info!(device = %q.device, record = %e.record_id, error, message = %r.message, "pushed entry refused");
    repo::audit(
        db,
        now,
        &q.username,
        Some(q.device),
        "PUSH_REFUSED",
        Some(e.kind),
        Some(e.record_id),
        Some(match &r.field {
            Some(field) => format!("{}: {field}", r.message),
            None => r.message.clone(),
        }),
    )?;
    Ok(())
}

fn apply_entry(db: &mut dyn Sql, ctx: &mut Ctx<'_>, e: &OutboxEntry) -> Result<(), Failure> {
    let makes_new = match (e.op, e.kind) {
        (Op::Create, k) => !k.is_append_only(),
        (Op::Append, EntityKind::Photo | EntityKind::Audit | EntityKind::Reply) => false,
        (Op::Append, k) => k.is_append_only(),
        _ => false,
    };
    if !makes_new {
        // Everything else reads entities back or writes them in place: the new ones first.
        ctx.flush(db)?;
        ctx.heads.remove(&e.record_id);
    }
    let at = corrected_time(e.edited_at, ctx.device_now, ctx.server_now);
    let by = ctx.user.username.clone();
    let device = ctx.device;
    match (e.op, e.kind) {
        (Op::Create, k) if !k.is_append_only() => {
            let mut data = e.fields.clone();
            if data.get("id").and_then(Value::as_str) != Some(e.record_id.to_string().as_str()) {
                return Err(Failure::invalid(
                    "the id must be the entry's record id",
                    Some("fields.id"),
                ));
            }
            if let Some(domain) = k.domain() {
                data.insert("author".into(), Value::String(by.clone()));
                let initial = lifecycle(domain).initial;
                let status = data.get("status").and_then(Value::as_str);
                if status != Some(initial.code()) {
                    return Err(crate::domain::ValidationErrors::single(
                        "fields.status",
                        match status.and_then(|c| Status::from_code(c).ok()) {
                            Some(status) => crate::domain::Problem::NotInitialStatus {
                                status,
                                initial,
                                domain,
                            },
                            None => crate::domain::Problem::Required,
                        },
                    )
                    .into());
                }
            }
            let (grid, parent) = check_typed(db, ctx, k, &data).map_err(|f| f.at("fields"))?;
            let grid_code =
                grid_code_in_scope(db, ctx, grid).map_err(|f| f.at("fields.grid_id"))?;
            if ctx.head(db, e.record_id)?.is_some() {
                return Err(Failure::Conflict(format!(
                    "{} {} already exists",
                    k, e.record_id
                )));
            }
            if k.is_record() {
                link_photos(db, ctx, e.record_id, &grid_code, &photo_list(&data), &|i| {
                    format!("fields.photos[{i}]")
                })?;
            }
            let seq = ctx.seq(db)?;
            let created = data
                .get("created_at")
                .and_then(Value::as_str)
                .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or(at);
            let mut ent = new_entity(
                k,
                e.record_id,
                grid,
                grid_code,
                parent,
                data,
                seq,
                at,
                &by,
                created,
            );
            ent.meta.created.device = device;
            ctx.add(ent);
            audit_entry(ctx, e, "CREATE");
            Ok(())
        }
        (Op::Update, k) if !k.is_append_only() => {
            let what = k.code().to_lowercase();
            let mut ent = scoped(db, ctx, e.record_id, &what)?;
            if ent.kind != k {
                return Err(not_in_scope(&what, e.record_id));
            }
            for f in ["id", "created_at", "author", "status"] {
                if e.fields.contains_key(f) {
                    return Err(Failure::invalid(
                        format!("{f} cannot be edited"),
                        Some(&format!("fields.{f}")),
                    ));
                }
            }
            let mut changed = Vec::new();
            let mut lost = Vec::new();
            for (field, value) in &e.fields {
                let meta = ent.meta.get(field).clone();
                let current = ent.data.get(field).cloned().unwrap_or(Value::Null);
                let edit = FieldEdit {
                    value,
                    base_version: e.base_version,
                    at,
                    by: &by,
                    device,
                };
                match decide(Some((&current, &meta)), &edit) {
                    Decision::Apply => changed.push((field.clone(), value.clone())),
                    Decision::Same => {}
                    Decision::WinsConflict => {
                        lost.push((
                            field.clone(),
                            current.clone(),
                            meta.clone(),
                            value.clone(),
                            false,
                        ));
                        changed.push((field.clone(), value.clone()));
                    }
                    Decision::LosesConflict => {
                        lost.push((field.clone(), current, meta, value.clone(), true))
                    }
                }
            }
            if changed.is_empty() && lost.is_empty() {
                audit_entry(ctx, e, "UPDATE_NOOP");
                return Ok(());
            }
            if !changed.is_empty() {
                let seq = ctx.seq(db)?;
                for (f, v) in &changed {
                    ent.data.insert(f.clone(), v.clone());
                    ent.meta.set(
                        f,
                        FieldMeta {
                            version: seq,
                            at,
                            by: by.clone(),
                            device,
                        },
                    );
                }
                let (grid, parent) =
                    check_typed(db, ctx, k, &ent.data).map_err(|f| f.at("fields"))?;
                if grid != ent.grid_id {
                    ent.grid_code =
                        grid_code_in_scope(db, ctx, grid).map_err(|f| f.at("fields.grid_id"))?;
                    ent.grid_id = grid;
                    repo::move_record_photos(db, ent.id, &ent.grid_code)?;
                }
                if k.is_record() && changed.iter().any(|(f, _)| f == "photos") {
                    link_photos(
                        db,
                        ctx,
                        ent.id,
                        &ent.grid_code,
                        &photo_list(&ent.data),
                        &|i| format!("fields.photos[{i}]"),
                    )?;
                }
                ent.parent_id = parent.or(ent.parent_id);
                ent.version = seq;
                repo::put_entity(db, &ent, ctx.server_now)?;
            }
            for (field, current, meta, edit_value, edit_lost) in lost {
                let (kept, lost_v, kept_by, lost_by, kept_at, lost_at) = if edit_lost {
                    (current, edit_value, meta.by, by.clone(), meta.at, at)
                } else {
                    (edit_value, current, by.clone(), meta.by, at, meta.at)
                };
                record_conflict(
                    db, ctx, &ent, &field, kept, lost_v, kept_by, lost_by, kept_at, lost_at,
                )?;
            }
            audit_entry(ctx, e, "UPDATE");
            Ok(())
        }
        (Op::Transition, k) if k.is_record() => {
            let what = k.code().to_lowercase();
            let mut ent = scoped(db, ctx, e.record_id, &what)?;
            let domain = k.domain().expect("records have domains");
            let code = |f: &str| -> Result<Status, Failure> {
                let s = e.fields.get(f).and_then(Value::as_str).ok_or_else(|| {
                    Failure::invalid(format!("{f} is required"), Some(&format!("fields.{f}")))
                })?;
                Status::from_code(s)
                    .map_err(|err| Failure::invalid(err.to_string(), Some(&format!("fields.{f}"))))
            };
            let (to, from) = (code("status")?, code("from")?);
            let note = e
                .fields
                .get("note")
                .and_then(Value::as_str)
                .map(str::to_owned);
            let current = ent
                .status()
                .and_then(|s| Status::from_code(s).ok())
                .ok_or_else(|| Failure::Internal(format!("record {} has no status", ent.id)))?;
            if current == from {
                check_transition(ent.id, domain, from, to, Actor::Worker)
                    .map_err(|err| Failure::invalid(worded(&err), Some("fields.status")))?;
            } else if check_transition(ent.id, domain, current, to, Actor::Worker).is_err() {
                // The county moved it meanwhile and the worker's move no longer fits: keep the
                // county's status, and show the worker's as a conflict.
                let meta = ent.meta.get("status").clone();
                record_conflict(
                    db,
                    ctx,
                    &ent,
                    "status",
                    Value::String(current.code().into()),
                    Value::String(to.code().into()),
                    meta.by,
                    by.clone(),
                    meta.at,
                    at,
                )?;
                audit_entry(ctx, e, "TRANSITION_CONFLICT");
                return Ok(());
            }
            set_status(db, ctx, &mut ent, current, to, note, &by, at)?;
            audit_entry(ctx, e, &format!("TRANSITION {} -> {}", current, to));
            Ok(())
        }
        (Op::Append, EntityKind::Photo) => {
            let record_id = e
                .fields
                .get("record_id")
                .and_then(Value::as_str)
                .and_then(|s| Uuid::parse_str(s).ok())
                .ok_or_else(|| {
                    Failure::invalid("record_id is required", Some("fields.record_id"))
                })?;
            let sha = e
                .fields
                .get("sha256")
                .and_then(Value::as_str)
                .filter(|s| crate::domain::model::is_sha256_hex(s))
                .ok_or_else(|| {
                    Failure::invalid(
                        "sha256 must be 64 lower-case hex digits",
                        Some("fields.sha256"),
                    )
                })?
                .to_owned();
            let size = e.fields.get("size").and_then(Value::as_i64).unwrap_or(0);
            let mime = e
                .fields
                .get("mime")
                .and_then(Value::as_str)
                .unwrap_or("image/jpeg")
                .to_owned();
            if !crate::domain::model::PHOTO_MIMES.contains(&mime.as_str()) {
                return Err(Failure::invalid(
                    format!(
                        "照片只能是 JPEG、PNG 或 WebP 图片 (a photo is a JPEG, PNG or WebP image, not {mime})"
                    ),
                    Some("fields.mime"),
                ));
            }
            if !(1..=super::MAX_PHOTO_BYTES as i64).contains(&size) {
                return Err(Failure::invalid(
                    format!(
                        "照片大小须在 1 到 {} 字节之间 (a photo is an image of 1 to {} bytes)",
                        super::MAX_PHOTO_BYTES,
                        super::MAX_PHOTO_BYTES
                    ),
                    Some("fields.size"),
                ));
            }
            let mut rec = scoped(db, ctx, record_id, "record")?;
            if !rec.kind.is_record() {
                return Err(not_in_scope("record", record_id).at("fields.record_id"));
            }
            link_photos(
                db,
                ctx,
                rec.id,
                &rec.grid_code.clone(),
                std::slice::from_ref(&sha),
                &|_| "fields.sha256".to_owned(),
            )?;
            let photos = rec
                .data
                .entry("photos")
                .or_insert_with(|| Value::Array(vec![]));
            if let Value::Array(list) = photos
                && !list.iter().any(|v| v.as_str() == Some(&sha))
            {
                list.push(Value::String(sha.clone()));
                let seq = ctx.seq(db)?;
                rec.meta.set(
                    "photos",
                    FieldMeta {
                        version: seq,
                        at,
                        by: by.clone(),
                        device,
                    },
                );
                rec.version = seq;
                repo::put_entity(db, &rec, ctx.server_now)?;
            }
            repo::add_photo(db, &sha, size, &mime, &by, device, ctx.server_now)?;
            audit_entry(ctx, e, "PHOTO");
            Ok(())
        }
        (Op::Append, EntityKind::Audit) => {
            let action = e
                .fields
                .get("action")
                .and_then(Value::as_str)
                .unwrap_or("DEVICE")
                .to_owned();
            let detail = Value::Object(e.fields.clone()).to_string();
            ctx.audits.push(repo::AuditLine {
                at,
                username: by.clone(),
                device: ctx.device,
                action: format!("DEVICE {action}"),
                kind: Some(EntityKind::Person),
                entity: e
                    .fields
                    .get("target_id")
                    .and_then(Value::as_str)
                    .and_then(|s| Uuid::parse_str(s).ok()),
                detail: Some(detail),
            });
            Ok(())
        }
        (Op::Append, k) if k.is_append_only() && k != EntityKind::Reply => {
            if ctx.head(db, e.record_id)?.is_some() {
                return Ok(()); // append-only: already here, nothing to do
            }
            let data = e.fields.clone();
            if data.get("id").and_then(Value::as_str) != Some(e.record_id.to_string().as_str()) {
                return Err(Failure::invalid(
                    "the id must be the entry's record id",
                    Some("fields.id"),
                ));
            }
            let (grid, parent) = check_typed(db, ctx, k, &data).map_err(|f| f.at("fields"))?;
            let grid_code = grid_code_in_scope(db, ctx, grid)?;
            let seq = ctx.seq(db)?;
            let ent = new_entity(
                k,
                e.record_id,
                grid,
                grid_code,
                parent,
                data,
                seq,
                at,
                &by,
                at,
            );
            ctx.add(ent);
            if k == EntityKind::PatrolPoints
                && let Some(p) = parent
            {
                update_patrol_distance(db, ctx, p, at)?;
            }
            audit_entry(ctx, e, "APPEND");
            Ok(())
        }
        (op, k) => Err(Failure::invalid(
            format!("{op} is not an operation on {k}"),
            Some("op"),
        )),
    }
}

/// The photo hashes a record's data names.
fn photo_list(data: &Map<String, Value>) -> Vec<String> {
    match data.get("photos") {
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

/// Records that record `record` (in grid `grid_code`) names these photos, as attached by
/// this entry's account. A photo already uploaded by another account may be named only by
/// an account that can already read it (its scope holds a record the uploader attached it
/// to); otherwise the entry is refused, as if the photo did not exist, so a hash cannot be
/// used to read another account's photo. The same worker's two records may share a photo.
fn link_photos(
    db: &mut dyn Sql,
    ctx: &mut Ctx<'_>,
    record: Uuid,
    grid_code: &str,
    shas: &[String],
    field: &dyn Fn(usize) -> String,
) -> Result<(), Failure> {
    for (i, sha) in shas.iter().enumerate() {
        if !crate::domain::model::is_sha256_hex(sha) {
            return Err(Failure::invalid(
                "照片编号应为 64 位小写十六进制 SHA-256 (must be a SHA-256 digest in 64 lower-case hex digits)",
                Some(&field(i)),
            ));
        }
        if !repo::may_name_photo(db, sha, &ctx.user.username, &ctx.scope)? {
            return Err(Failure::invalid(
                "这张照片由其他账号上传，不能用在您的记录里；请用手机重新拍摄 \
                 (this photo was uploaded by another account and is not yours to attach)",
                Some(&field(i)),
            ));
        }
        repo::link_photo(db, sha, record, grid_code, &ctx.user.username)?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn set_status(
    db: &mut dyn Sql,
    ctx: &mut Ctx<'_>,
    ent: &mut Entity,
    from: Status,
    to: Status,
    note: Option<String>,
    by: &str,
    at: DateTime<Utc>,
) -> Result<(), Failure> {
    let seq = ctx.seq(db)?;
    ent.data
        .insert("status".into(), Value::String(to.code().into()));
    ent.meta.set(
        "status",
        FieldMeta {
            version: seq,
            at,
            by: by.to_owned(),
            device: ctx.device,
        },
    );
    ent.version = seq;
    repo::put_entity(db, ent, ctx.server_now)?;
    repo::add_status_change(
        db,
        &StatusChange {
            record_id: ent.id,
            from,
            to,
            at,
            actor: by.to_owned(),
            note,
        },
    )?;
    Ok(())
}

fn update_patrol_distance(
    db: &mut dyn Sql,
    ctx: &mut Ctx<'_>,
    patrol: Uuid,
    at: DateTime<Utc>,
) -> Result<(), Failure> {
    ctx.flush(db)?;
    let rows = db.query(
        "SELECT data FROM entities WHERE parent_id = $1 AND kind = 'PATROL_POINTS'",
        crate::args![patrol.to_string()],
    )?;
    let mut points = Vec::new();
    for r in rows {
        let b: PatrolPoints = parse(
            &serde_json::from_str::<Value>(r[0].str()?)
                .map_err(|e| Failure::Internal(e.to_string()))?,
        )?;
        points.extend(b.points);
    }
    points.sort_by_key(|p| p.at);
    let Some(mut ent) = repo::get_entity(db, patrol)? else {
        return Ok(());
    };
    let d = track_length_m(&points);
    ent.data.insert("distance_m".into(), serde_json::json!(d));
    let seq = ctx.seq(db)?;
    ent.meta.set(
        "distance_m",
        FieldMeta {
            version: seq,
            at,
            by: "server".into(),
            device: None,
        },
    );
    ent.version = seq;
    repo::put_entity(db, &ent, ctx.server_now)?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn record_conflict(
    db: &mut dyn Sql,
    ctx: &mut Ctx<'_>,
    ent: &Entity,
    field: &str,
    kept: Value,
    lost: Value,
    kept_by: String,
    lost_by: String,
    kept_at: DateTime<Utc>,
    lost_at: DateTime<Utc>,
) -> Result<(), Failure> {
    let c = Conflict {
        id: new_id(),
        entity_kind: ent.kind,
        entity_id: ent.id,
        grid_id: ent.grid_id,
        field: field.to_owned(),
        kept,
        lost,
        kept_by,
        lost_by,
        kept_at,
        lost_at,
        created_at: ctx.server_now,
        settled_by: None,
        settled_at: None,
    };
    let seq = ctx.seq(db)?;
    let data = object(serde_json::to_value(&c).map_err(|e| Failure::Internal(e.to_string()))?);
    let ce = new_entity(
        EntityKind::Conflict,
        c.id,
        ent.grid_id,
        ent.grid_code.clone(),
        Some(ent.id),
        data,
        seq,
        ctx.server_now,
        "server",
        ctx.server_now,
    );
    repo::put_entity(db, &ce, ctx.server_now)?;
    ctx.audits.push(repo::AuditLine {
        at: ctx.server_now,
        username: ctx.user.username.clone(),
        device: ctx.device,
        action: "CONFLICT".into(),
        kind: Some(ent.kind),
        entity: Some(ent.id),
        detail: Some(format!("field {field}")),
    });
    ctx.conflicts += 1;
    Ok(())
}

/// The default visit cadence, or what the county set.
pub fn cadence(db: &mut dyn Sql) -> Result<Vec<(Tag, u32)>, Failure> {
    if let Some(s) = repo::get_setting(db, "cadence")? {
        return serde_json::from_str(&s)
            .map_err(|e| Failure::Internal(format!("cadence setting: {e}")));
    }
    Ok(Tag::ALL
        .iter()
        .map(|t| (*t, t.default_cadence_days()))
        .collect())
}

/// One page of changes in the user's scope after `cursor`. An event record the device holds
/// as of `base` (it was made at or before it) comes as a partial change: the fields whose
/// own version is after `base`, and the status changes after it. Every write of a record
/// stamps the fields it sets (see [`EntityMeta`]), which is what makes this exact.
pub fn pull(
    db: &mut dyn Sql,
    user: &User,
    device: Option<Uuid>,
    cursor: i64,
    base: i64,
    limit: usize,
) -> Result<PullResponse, Failure> {
    let limit = limit.clamp(1, MAX_PAGE);
    let base = base.clamp(0, cursor);
    let mut rows = repo::changed_since(db, &user.scope(), cursor, limit)?;
    let more = rows.len() > limit;
    rows.truncate(limit);
    let record_ids: Vec<Uuid> = rows
        .iter()
        .filter(|r| r.0.is_record())
        .map(|r| r.1)
        .collect();
    let mut histories = repo::versioned_histories(db, &record_ids)?;
    let mut next = rows.last().map(|r| r.4).unwrap_or(cursor);
    // The device's refused entries up to this page's end (to the end when it is the last).
    let rejected = match device {
        Some(d) => repo::rejections_for(
            db,
            d,
            &user.username,
            cursor,
            if more { next } else { i64::MAX },
        )?,
        None => Vec::new(),
    };
    if !more && let Some(r) = rejected.last() {
        next = next.max(r.seq);
    }
    let internal = |e: serde_json::Error| Failure::Internal(e.to_string());
    let mut changes = Vec::with_capacity(rows.len());
    for (kind, id, data, meta, seq) in rows {
        let mut data: Value = serde_json::from_str(&data).map_err(internal)?;
        if !kind.is_record() {
            changes.push(Change::whole(seq, kind, id, data));
            continue;
        }
        let history = histories.remove(&id).unwrap_or_default();
        let meta: Option<EntityMeta> = if base == 0 {
            None // everything comes whole: no need to read the stamps
        } else {
            Some(serde_json::from_str(&meta).map_err(internal)?)
        };
        let Some(meta) = meta.filter(|m| m.created.version <= base) else {
            changes.push(Change {
                history: Some(history.into_iter().map(|(_, h)| h).collect()),
                ..Change::whole(seq, kind, id, data)
            });
            continue;
        };
        if let Value::Object(fields) = &mut data {
            fields.retain(|f, _| meta.fields.get(f).is_some_and(|m| m.version > base));
        }
        let kept = history.iter().take_while(|(v, _)| *v <= base).count();
        let newer: Vec<StatusChange> = history.into_iter().skip(kept).map(|(_, h)| h).collect();
        changes.push(Change {
            seq,
            kind,
            id,
            data,
            partial: true,
            history: (!newer.is_empty()).then_some(newer),
            history_kept: kept as u32,
        });
    }
    Ok(PullResponse {
        changes,
        cursor: next,
        base,
        more,
        cadence: if cursor == 0 {
            Some(cadence(db)?)
        } else {
            None
        },
        rejected,
    })
}

fn reviewer_ctx(user: &User, now: DateTime<Utc>) -> Result<Ctx<'_>, Failure> {
    if !user.role.reviews() {
        return Err(Failure::Forbidden(
            "only village, town and county staff may do this".into(),
        ));
    }
    Ok(Ctx::new(user, None, now, now))
}

/// A reviewer moves a record (accept, assign, reply, resolve, verify, return, escalate...),
/// optionally with a reply to the worker.
pub fn review_transition(
    db: &mut dyn Sql,
    user: &User,
    record: Uuid,
    to: Status,
    note: Option<String>,
    now: DateTime<Utc>,
) -> Result<Value, Failure> {
    let mut ctx = reviewer_ctx(user, now)?;
    let mut ent = scoped(db, &ctx, record, "record")?;
    let domain = ent
        .kind
        .domain()
        .ok_or_else(|| not_in_scope("record", record))?;
    let from = ent
        .status()
        .and_then(|s| Status::from_code(s).ok())
        .ok_or_else(|| Failure::Internal(format!("record {record} has no status")))?;
    check_transition(record, domain, from, to, Actor::Reviewer)
        .map_err(|e| Failure::invalid(worded(&e), Some("to")))?;
    set_status(
        db,
        &mut ctx,
        &mut ent,
        from,
        to,
        note.clone(),
        &user.username,
        now,
    )?;
    repo::audit(
        db,
        now,
        &user.username,
        None,
        &format!("TRANSITION {from} -> {to}"),
        Some(ent.kind),
        Some(record),
        note.clone(),
    )?;
    if let Some(text) = note.filter(|t| !t.trim().is_empty()) {
        reply(db, user, record, &text, now)?;
    }
    Ok(Value::Object(ent.data))
}

/// A reviewer's reply on a record; it reaches the worker's phone with the next pull.
pub fn reply(
    db: &mut dyn Sql,
    user: &User,
    record: Uuid,
    text: &str,
    now: DateTime<Utc>,
) -> Result<Reply, Failure> {
    let ctx = reviewer_ctx(user, now)?;
    if text.trim().is_empty() || text.chars().count() > 2000 {
        return Err(Failure::invalid(
            "a reply is 1 to 2000 characters",
            Some("text"),
        ));
    }
    let rec = scoped(db, &ctx, record, "record")?;
    if !rec.kind.is_record() {
        return Err(not_in_scope("record", record));
    }
    let r = Reply {
        id: new_id(),
        record_id: record,
        author: user.display_name.clone(),
        text: text.to_owned(),
        created_at: now,
    };
    let seq = repo::next_seq(db)?;
    let data = object(serde_json::to_value(&r).map_err(|e| Failure::Internal(e.to_string()))?);
    let ent = new_entity(
        EntityKind::Reply,
        r.id,
        rec.grid_id,
        rec.grid_code,
        Some(record),
        data,
        seq,
        now,
        &user.username,
        now,
    );
    repo::put_entity(db, &ent, now)?;
    repo::audit(
        db,
        now,
        &user.username,
        None,
        "REPLY",
        Some(rec.kind),
        Some(record),
        None,
    )?;
    Ok(r)
}

/// Settles a conflict: keep the value that won, or put the losing one in its place.
pub fn settle_conflict(
    db: &mut dyn Sql,
    user: &User,
    conflict: Uuid,
    take_lost: bool,
    now: DateTime<Utc>,
) -> Result<(), Failure> {
    let ctx = reviewer_ctx(user, now)?;
    let mut ce = scoped(db, &ctx, conflict, "conflict")?;
    if ce.kind != EntityKind::Conflict {
        return Err(not_in_scope("conflict", conflict));
    }
    let mut c: Conflict = parse(&Value::Object(ce.data.clone()))?;
    if c.settled_at.is_some() {
        return Err(Failure::Conflict(format!(
            "conflict {conflict} is already settled"
        )));
    }
    if take_lost {
        let mut ent = scoped(db, &ctx, c.entity_id, "record")?;
        if c.field == "status" {
            return Err(Failure::invalid(
                "a status conflict is settled by a transition",
                Some("take"),
            ));
        }
        let seq = repo::next_seq(db)?;
        ent.data.insert(c.field.clone(), c.lost.clone());
        ent.meta.set(
            &c.field,
            FieldMeta {
                version: seq,
                at: now,
                by: user.username.clone(),
                device: None,
            },
        );
        ent.version = seq;
        repo::put_entity(db, &ent, now)?;
    }
    c.settled_by = Some(user.username.clone());
    c.settled_at = Some(now);
    let seq = repo::next_seq(db)?;
    ce.data = object(serde_json::to_value(&c).map_err(|e| Failure::Internal(e.to_string()))?);
    ce.version = seq;
    repo::put_entity(db, &ce, now)?;
    repo::audit(
        db,
        now,
        &user.username,
        None,
        if take_lost {
            "SETTLE_TAKE_LOST"
        } else {
            "SETTLE_KEEP"
        },
        Some(c.entity_kind),
        Some(c.entity_id),
        Some(c.field),
    )?;
    Ok(())
}

/// A reviewer sets fields of a record that are the county's to fill (a hazard's owner and
/// rectification due date when it is dispatched). Each field gets a new version, so it flows
/// down to the worker's device with the next pull; the change is audited.
pub fn review_edit(
    db: &mut dyn Sql,
    user: &User,
    record: Uuid,
    fields: Map<String, Value>,
    now: DateTime<Utc>,
) -> Result<(), Failure> {
    const COUNTY_FIELDS: &[(EntityKind, &str)] = &[
        (EntityKind::Hazard, "owner"),
        (EntityKind::Hazard, "due_date"),
    ];
    let ctx = reviewer_ctx(user, now)?;
    let mut ent = scoped(db, &ctx, record, "record")?;
    for k in fields.keys() {
        if !COUNTY_FIELDS.contains(&(ent.kind, k.as_str())) {
            return Err(Failure::invalid(
                format!(
                    "{} is not a field the county sets on a {} record",
                    k,
                    ent.kind.code()
                ),
                Some(k),
            ));
        }
    }
    let mut data = ent.data.clone();
    for (k, v) in &fields {
        data.insert(k.clone(), v.clone());
    }
    let domain = ent
        .kind
        .domain()
        .ok_or_else(|| not_in_scope("record", record))?;
    // The edited record must still be a valid record.
    AnyRecord::from_json(domain, Value::Object(data.clone()))
        .map_err(|e| Failure::invalid(e.to_string(), None))?;
    let seq = repo::next_seq(db)?;
    for k in fields.keys() {
        ent.meta.set(
            k,
            FieldMeta {
                version: seq,
                at: now,
                by: user.username.clone(),
                device: None,
            },
        );
    }
    ent.data = data;
    ent.version = seq;
    repo::put_entity(db, &ent, now)?;
    repo::audit(
        db,
        now,
        &user.username,
        None,
        "EDIT",
        Some(ent.kind),
        Some(record),
        Some(fields.keys().cloned().collect::<Vec<_>>().join(", ")),
    )?;
    Ok(())
}

/// Records in scope for the county's lists: newest first, with optional filters.
pub fn list_records(
    db: &mut dyn Sql,
    user: &User,
    kind: Option<EntityKind>,
    status: Option<Status>,
    limit: usize,
) -> Result<Vec<Value>, Failure> {
    let (clause, mut args) = user.scope().clause(1);
    let mut sql = format!(
        "SELECT data FROM entities WHERE {clause} AND kind IN ({})",
        repo::RECORD_KINDS
    );
    if let Some(k) = kind {
        args.push(k.code().into());
        sql.push_str(&format!(" AND kind = ${}", args.len()));
    }
    if let Some(s) = status {
        args.push(s.code().into());
        sql.push_str(&format!(" AND status = ${}", args.len()));
    }
    args.push(crate::server::db::V::I(limit.min(10_000) as i64));
    sql.push_str(&format!(" ORDER BY created_at DESC LIMIT ${}", args.len()));
    db.query(&sql, &args)?
        .into_iter()
        .map(|r| {
            let mut v: Value =
                serde_json::from_str(r[0].str()?).map_err(|e| Failure::Internal(e.to_string()))?;
            crate::domain::validate::mask_personal(&mut v);
            Ok(v)
        })
        .collect()
}

/// One record in scope with its history and replies; phones and ID numbers masked unless
/// `reveal` (the caller checks who may, and audits it).
pub fn record_detail(
    db: &mut dyn Sql,
    user: &User,
    id: Uuid,
    reveal: bool,
) -> Result<Value, Failure> {
    let now = Utc::now();
    let ctx = Ctx::new(user, None, now, now);
    let ent = scoped(db, &ctx, id, "record")?;
    if !ent.kind.is_record() {
        return Err(not_in_scope("record", id));
    }
    let history = repo::status_histories(db, &[id])?
        .remove(&id)
        .unwrap_or_default();
    let children = db.query(
        "SELECT kind, data FROM entities WHERE parent_id = $1 ORDER BY version",
        crate::args![id.to_string()],
    )?;
    let mut by_kind: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for r in children {
        by_kind
            .entry(r[0].string()?)
            .or_default()
            .push(serde_json::from_str(r[1].str()?).map_err(|e| Failure::Internal(e.to_string()))?);
    }
    let mut v = serde_json::json!({
        "kind": ent.kind,
        "version": ent.version,
        "record": Value::Object(ent.data),
        "history": history,
        "children": by_kind,
    });
    if !reveal {
        crate::domain::validate::mask_personal(&mut v);
    }
    Ok(v)
}

/// Writes remote-origin state (imports, the demo seeder) as an entity with version `seq`
/// (reserve numbers with [`repo::reserve_seqs`]).
#[allow(clippy::too_many_arguments)] // each is one column of the entity
pub fn import_entity(
    db: &mut dyn Sql,
    seq: i64,
    kind: EntityKind,
    id: Uuid,
    grid_id: Uuid,
    grid_code: &str,
    parent_id: Option<Uuid>,
    data: Value,
    created_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), Failure> {
    let ent = new_entity(
        kind,
        id,
        grid_id,
        grid_code.to_owned(),
        parent_id,
        object(data),
        seq,
        created_at,
        "import",
        created_at,
    );
    repo::put_entity(db, &ent, now)?;
    // Its photos are its author's, as if pushed by them.
    if kind.is_record() {
        let author = ent
            .data
            .get("author")
            .and_then(Value::as_str)
            .unwrap_or("import")
            .to_owned();
        for sha in photo_list(&ent.data) {
            repo::link_photo(db, &sha, id, grid_code, &author)?;
        }
    }
    Ok(())
}

/// A refused status move: Chinese first, then the English with the record and both codes.
fn worded(e: &TransitionError) -> String {
    format!("{} ({e})", e.text(crate::domain::Lang::Zh))
}
