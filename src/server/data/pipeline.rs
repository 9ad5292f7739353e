//! The one pipeline every import runs: read every row (each checked on its own), check across
//! rows and against what is stored and plan the writes, then — unless errors stop an
//! all-or-nothing import — write each planned unit whose rows are all good, and report.
//! Each kind of file brings only its rules ([`Importer`]): `households/`, `grids.rs`,
//! `accounts.rs`.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};
use uuid::Uuid;

use super::table::RowErrors;
use super::{Ctx, DataError, ImportReport, Mode, internal};
use crate::domain::model::EntityKind;
use crate::merge::FieldMeta;
use crate::server::db::Sql;
use crate::server::repo::{self, Entity, EntityMeta};

/// One kind of import, in the pipeline's stages.
pub(super) trait Importer {
    /// A row (or feature) as read and checked on its own.
    type Row;
    /// What is written together: a household with its house and people, a grid, an account.
    type Unit;

    /// Data rows (or features) in the file.
    fn total(&self) -> usize;

    /// Reads every row, reporting each problem a row has on its own.
    fn read(
        &mut self,
        db: &mut dyn Sql,
        ctx: &Ctx<'_>,
        errs: &mut RowErrors,
        bar: &mut Bar<'_>,
    ) -> Result<Vec<Self::Row>, DataError>;

    /// Checks rows against each other and against what is stored, and plans the writes.
    fn plan(
        &mut self,
        db: &mut dyn Sql,
        ctx: &Ctx<'_>,
        rows: Vec<Self::Row>,
        errs: &mut RowErrors,
        bar: &mut Bar<'_>,
    ) -> Result<Vec<Planned<Self::Unit>>, DataError>;

    /// Writes one planned unit; `good` are its rows without an error (never empty), `bad`
    /// every row with one. Returns (entities or accounts created, changed).
    fn write(
        &mut self,
        db: &mut dyn Sql,
        ctx: &Ctx<'_>,
        unit: Self::Unit,
        good: &[usize],
        bad: &BTreeSet<usize>,
        report: &mut ImportReport,
    ) -> Result<(usize, usize), DataError>;
}

/// A unit to write and the rows (as the file numbers them) it stands for.
pub(super) struct Planned<U> {
    pub rows: Vec<usize>,
    pub unit: U,
}

/// Runs an import through its stages. `progress(done, total)` (in rows) moves through
/// checking (the first 30%) and writing to `total`.
pub fn run<I: Importer>(
    db: &mut dyn Sql,
    ctx: &Ctx<'_>,
    mut importer: I,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<ImportReport, DataError> {
    let total = importer.total();
    let mut bar = Bar::new(progress, total);
    bar.report(0);
    let mut errs = RowErrors::default();
    let rows = importer.read(db, ctx, &mut errs, &mut bar)?;
    let plans = importer.plan(db, ctx, rows, &mut errs, &mut bar)?;

    let mut report = ImportReport {
        rows: total,
        errors: errs.errors,
        ..Default::default()
    };
    if !report.errors.is_empty() && ctx.mode == Mode::AllOrNothing {
        report.skipped = total;
        bar.done();
        return Ok(report);
    }
    let bad: BTreeSet<usize> = report.errors.iter().map(|e| e.row).collect();
    let mut done = 0;
    for plan in plans {
        let good: Vec<usize> = plan
            .rows
            .iter()
            .copied()
            .filter(|r| !bad.contains(r))
            .collect();
        if good.is_empty() {
            continue;
        }
        let (c, u) = importer.write(db, ctx, plan.unit, &good, &bad, &mut report)?;
        report.created += c;
        report.updated += u;
        report.imported += good.len();
        done += good.len();
        bar.written(done);
    }
    report.skipped = total - report.imported;
    bar.done();
    Ok(report)
}

/// One entity to write: new (no `old`) or a change of a stored one.
pub struct Write {
    /// The person's row (houses and households belong to every row of the household).
    pub row: Option<usize>,
    pub kind: EntityKind,
    pub id: Uuid,
    pub grid_id: Uuid,
    pub grid_code: String,
    pub parent_id: Option<Uuid>,
    pub data: Payload,
}

/// An entity's data as planned: typed until it is written (a county's worth of planned people
/// as JSON maps would take four times the memory).
pub enum Payload {
    Map(Map<String, Value>),
    House(crate::domain::model::House),
    Household(crate::domain::model::Household),
    Person(crate::domain::model::Person),
}

impl Payload {
    fn to_map(&self) -> Result<Map<String, Value>, DataError> {
        let v = match self {
            Payload::Map(m) => return Ok(m.clone()),
            Payload::House(h) => serde_json::to_value(h),
            Payload::Household(h) => serde_json::to_value(h),
            Payload::Person(p) => serde_json::to_value(p),
        }
        .map_err(internal)?;
        match v {
            Value::Object(m) => Ok(m),
            _ => Err(internal("an entity is a JSON object")),
        }
    }
}

/// Writes entities: new ones as created, stored ones field by field (only what
/// changed gets a new version, so an unchanged row writes nothing). Returns (created, changed).
pub fn write_entities(
    db: &mut dyn Sql,
    ctx: &Ctx<'_>,
    seqs: &mut Seqs,
    writes: &[(&Write, Option<&Entity>)],
) -> Result<(usize, usize), DataError> {
    seqs.planned = seqs.planned.saturating_sub(writes.len());
    let mut pending: Vec<Entity> = Vec::new();
    let mut created = 0;
    let mut changed_n = 0;
    for (w, old) in writes {
        let data = w.data.to_map()?;
        match old {
            None => {
                created += 1;
                pending.push(Entity {
                    id: w.id,
                    kind: w.kind,
                    grid_id: w.grid_id,
                    grid_code: w.grid_code.clone(),
                    parent_id: w.parent_id,
                    data,
                    meta: EntityMeta {
                        created: FieldMeta {
                            version: 0,
                            at: ctx.now,
                            by: ctx.actor.username.clone(),
                            device: None,
                        },
                        fields: BTreeMap::new(),
                    },
                    version: 0,
                    created_at: ctx.now,
                });
            }
            Some(old) => {
                let changed: Vec<String> = data
                    .iter()
                    .filter(|(k, v)| old.data.get(*k) != Some(*v))
                    .map(|(k, _)| k.clone())
                    .collect();
                if changed.is_empty()
                    && old.parent_id == w.parent_id
                    && old.grid_code == w.grid_code
                {
                    continue;
                }
                changed_n += 1;
                let mut e: Entity = (*old).clone();
                for k in changed {
                    e.data.insert(k.clone(), data[&k].clone());
                    e.meta.fields.insert(
                        k,
                        FieldMeta {
                            version: 0,
                            at: ctx.now,
                            by: ctx.actor.username.clone(),
                            device: None,
                        },
                    );
                }
                e.parent_id = w.parent_id;
                e.grid_id = w.grid_id;
                e.grid_code = w.grid_code.clone();
                pending.push(e);
            }
        }
    }
    if pending.is_empty() {
        return Ok((0, 0));
    }
    let first = seqs.take(db, pending.len())?;
    for (seq, mut e) in (first..).zip(pending) {
        if e.version == 0 {
            e.meta.created.version = seq;
        }
        for m in e.meta.fields.values_mut() {
            if m.version == 0 {
                m.version = seq;
            }
        }
        e.version = seq;
        repo::put_entity(db, &e, ctx.now)?;
    }
    Ok((created, changed_n))
}

/// Server sequence numbers for an import's writes, reserved a few thousand at a time: a long
/// transaction that updates the counter row once per household makes PostgreSQL keep every
/// version of that row until commit, and each update slower than the last. Numbers left over
/// at the end are a gap in the versions, which pulls do not mind.
pub struct Seqs {
    next: i64,
    end: i64,
    /// At most how many entities are still to be written (unchanged ones take no number).
    planned: usize,
}

impl Seqs {
    const CHUNK: usize = 5_000;

    pub fn new(planned: usize) -> Seqs {
        Seqs {
            next: 0,
            end: 0,
            planned,
        }
    }

    /// The first of `n` consecutive numbers.
    pub fn take(&mut self, db: &mut dyn Sql, n: usize) -> Result<i64, DataError> {
        if ((self.end - self.next) as usize) < n {
            let chunk = n + self.planned.min(Self::CHUNK);
            self.next = repo::reserve_seqs(db, chunk as i64)?;
            self.end = self.next + chunk as i64;
        }
        let first = self.next;
        self.next += n as i64;
        Ok(first)
    }
}

/// One progress bar over both passes, in rows: checking every row is the first 30% of the
/// work, writing the rest (as measured on the full demo county). Reports at most about a
/// thousand times, and always the start and the end.
pub struct Bar<'a> {
    f: &'a mut dyn FnMut(usize, usize),
    total: usize,
    last: Option<usize>,
}

impl<'a> Bar<'a> {
    pub fn new(f: &'a mut dyn FnMut(usize, usize), total: usize) -> Bar<'a> {
        Bar {
            f,
            total,
            last: None,
        }
    }

    pub fn report(&mut self, done: usize) {
        let done = done.min(self.total);
        let step = (self.total / 1000).max(1);
        if self
            .last
            .is_none_or(|l| done >= l + step || (done == self.total && l != done))
        {
            self.last = Some(done);
            (self.f)(done, self.total);
        }
    }

    /// `n` rows checked.
    pub fn checked(&mut self, n: usize) {
        self.report(n * 3 / 10);
    }

    /// `n` rows written (or skipped).
    pub fn written(&mut self, n: usize) {
        self.report(self.total * 3 / 10 + n * 7 / 10);
    }

    pub fn done(&mut self) {
        self.report(self.total);
    }
}
