//! The county's data in and out: imports of households and people (CSV, XLSX), grid
//! boundaries (GeoJSON) and accounts (CSV) with a row-by-row error report, and exports of
//! records and people (XLSX, CSV) that honour scope and mask personal data.
//!
//! Everything runs against `&mut dyn Sql` inside the caller's transaction (an axum handler in
//! `spawn_blocking` inside `Database::tx`, or the command line). An import first reads and
//! checks every row, then writes: in [`Mode::AllOrNothing`] a file with any error writes
//! nothing (the report says what to fix); in [`Mode::ValidRowsOnly`] the good rows are written
//! and the bad ones reported. Written entities get new server sequence numbers, so they reach
//! the devices with their next pull, and every change is audited.

mod accounts;
mod export;
mod grids;
mod households;
mod table;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::db::{DbError, Sql};
use super::error::Failure;
use super::repo::{self, Entity, EntityMeta, Scope, User};
use crate::domain::model::EntityKind;
use crate::merge::FieldMeta;
use crate::wire::Role;

pub use accounts::NewPassword;
pub use export::{
    Cell, PEOPLE_HEADER, RecordFilter, Sheet, demo_accounts, demo_grids_geojson, demo_households,
    export_people, export_records, to_csv, to_xlsx,
};

/// What an import or export can fail with as a whole (row problems go in the report).
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{0}：不支持的文件类型，住户和账号请用 .csv 或 .xlsx，网格边界请用 .geojson 或 .json")]
    Format(String),
    #[error("无法读取 {file}：{reason}")]
    Read { file: String, reason: String },
    #[error("{file}: {reason}")]
    Header { file: String, reason: String },
    #[error("{0}")]
    Forbidden(String),
    #[error("the database failed: {0}")]
    Db(#[from] DbError),
    #[error("cannot write the {what}: {reason}")]
    Write { what: &'static str, reason: String },
}

impl From<DataError> for Failure {
    fn from(e: DataError) -> Failure {
        match e {
            DataError::Forbidden(m) => Failure::Forbidden(m),
            DataError::Db(e) => Failure::Db(e),
            DataError::Write { .. } => Failure::Internal(e.to_string()),
            other => Failure::invalid(other.to_string(), Some("file")),
        }
    }
}

fn internal(e: impl std::fmt::Display) -> DataError {
    DataError::Db(DbError::Type(e.to_string()))
}

/// What a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportKind {
    /// Households with their people, one row per person (CSV or XLSX).
    Households,
    /// Grid boundaries: a GeoJSON FeatureCollection with a grid code per feature.
    Grids,
    /// Accounts (CSV or XLSX).
    Accounts,
}

impl std::str::FromStr for ImportKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "households" | "people" => Ok(ImportKind::Households),
            "grids" => Ok(ImportKind::Grids),
            "accounts" | "users" => Ok(ImportKind::Accounts),
            other => Err(format!(
                "unknown import {other:?}: households, grids or accounts"
            )),
        }
    }
}

impl ImportKind {
    /// An empty sheet with the columns a file of this kind has (for a "download template"
    /// link); grids are GeoJSON, which has no template.
    pub fn template(self) -> Option<Sheet> {
        let (name, header): (&str, Vec<String>) = match self {
            ImportKind::Households => (
                "实有人口",
                PEOPLE_HEADER.iter().map(|s| s.to_string()).collect(),
            ),
            ImportKind::Accounts => (
                "账号",
                export::ACCOUNTS_HEADER
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
            ),
            ImportKind::Grids => return None,
        };
        Some(Sheet {
            name: name.into(),
            header,
            rows: Vec::new(),
        })
    }
}

/// What to do with a file that has bad rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Any error and nothing is written.
    #[default]
    AllOrNothing,
    /// Write the good rows, report the bad ones.
    ValidRowsOnly,
}

/// One problem with one row: the row number as the spreadsheet shows it (the header is
/// row 1) or, for GeoJSON, the feature's number (from 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowError {
    pub row: usize,
    /// The column as the file names it (or a GeoJSON path such as `properties.code`).
    pub field: String,
    pub reason: String,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    /// Data rows (or features) read.
    pub rows: usize,
    /// Rows written (created or changed or already up to date).
    pub imported: usize,
    /// Rows not written: bad ones, or every row when errors stopped an all-or-nothing import.
    pub skipped: usize,
    /// Entities created and entities changed.
    pub created: usize,
    pub updated: usize,
    pub errors: Vec<RowError>,
    /// Passwords generated for new accounts: shown once, stored only as hashes.
    pub passwords: Vec<NewPassword>,
}

impl ImportReport {
    pub fn is_clean(&self) -> bool {
        self.errors.is_empty()
    }

    /// The report as a CSV sheet (row, field, reason), to hand back to whoever fixes the file.
    pub fn errors_sheet(&self) -> Sheet {
        Sheet {
            name: "错误报告".into(),
            header: vec!["行号 row".into(), "字段 field".into(), "原因 reason".into()],
            rows: self
                .errors
                .iter()
                .map(|e| {
                    vec![
                        Cell::Int(e.row as i64),
                        Cell::Text(e.field.clone()),
                        Cell::Text(e.reason.clone()),
                    ]
                })
                .collect(),
        }
    }
}

/// Imports a file. The format comes from the file name's extension (`.csv`, `.xlsx`,
/// `.geojson`, `.json`). `progress(done, total)` (in rows) moves through checking (the first
/// 30%) and writing to `total`, at most about a thousand calls.
#[allow(clippy::too_many_arguments)] // what, who, which file, how, and the clock
pub fn import(
    db: &mut dyn Sql,
    actor: &User,
    kind: ImportKind,
    file_name: &str,
    bytes: &[u8],
    mode: Mode,
    progress: &mut dyn FnMut(usize, usize),
    now: DateTime<Utc>,
) -> Result<ImportReport, DataError> {
    let ext = file_name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    let scope = staff_scope(actor, "import")?;
    let ctx = Ctx {
        actor,
        scope,
        mode,
        now,
        file: file_name,
    };
    let report = match (kind, ext.as_str()) {
        (ImportKind::Grids, "geojson" | "json") => grids::import(db, &ctx, bytes, progress)?,
        (ImportKind::Households | ImportKind::Accounts, "csv" | "xlsx") => {
            let t = if ext == "csv" {
                table::read_csv(file_name, bytes)?
            } else {
                table::read_xlsx(file_name, bytes)?
            };
            if kind == ImportKind::Households {
                households::import(db, &ctx, t, progress)?
            } else {
                if actor.role != Role::Admin {
                    return Err(DataError::Forbidden(
                        "only a county administrator may import accounts".into(),
                    ));
                }
                accounts::import(db, &ctx, t, progress)?
            }
        }
        _ => return Err(DataError::Format(file_name.to_owned())),
    };
    repo::audit(
        db,
        now,
        &actor.username,
        None,
        match (kind, report.imported) {
            (_, 0) if !report.errors.is_empty() => "IMPORT_REFUSED",
            (ImportKind::Households, _) => "IMPORT_HOUSEHOLDS",
            (ImportKind::Grids, _) => "IMPORT_GRIDS",
            (ImportKind::Accounts, _) => "IMPORT_ACCOUNTS",
        },
        None,
        None,
        Some(format!(
            "{file_name}: {} rows, {} imported, {} skipped, {} errors, {} created, {} updated",
            report.rows,
            report.imported,
            report.skipped,
            report.errors.len(),
            report.created,
            report.updated
        )),
    )?;
    Ok(report)
}

/// One entity to write: new (no `old`) or a change of a stored one.
struct Write {
    /// The person's row (houses and households belong to every row of the household).
    row: Option<usize>,
    kind: EntityKind,
    id: Uuid,
    grid_id: Uuid,
    grid_code: String,
    parent_id: Option<Uuid>,
    data: Payload,
}

/// An entity's data as planned: typed until it is written (a county's worth of planned people
/// as JSON maps would take four times the memory).
enum Payload {
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
fn write_entities(
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
struct Seqs {
    next: i64,
    end: i64,
    /// At most how many entities are still to be written (unchanged ones take no number).
    planned: usize,
}

impl Seqs {
    const CHUNK: usize = 5_000;

    fn new(planned: usize) -> Seqs {
        Seqs {
            next: 0,
            end: 0,
            planned,
        }
    }

    /// The first of `n` consecutive numbers.
    fn take(&mut self, db: &mut dyn Sql, n: usize) -> Result<i64, DataError> {
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
struct Bar<'a> {
    f: &'a mut dyn FnMut(usize, usize),
    total: usize,
    last: Option<usize>,
}

impl<'a> Bar<'a> {
    fn new(f: &'a mut dyn FnMut(usize, usize), total: usize) -> Bar<'a> {
        Bar {
            f,
            total,
            last: None,
        }
    }

    fn report(&mut self, done: usize) {
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
    fn checked(&mut self, n: usize) {
        self.report(n * 3 / 10);
    }

    /// `n` rows written (or skipped).
    fn written(&mut self, n: usize) {
        self.report(self.total * 3 / 10 + n * 7 / 10);
    }

    fn done(&mut self) {
        self.report(self.total);
    }
}

/// Who imports, where, how: shared by the importers.
struct Ctx<'a> {
    actor: &'a User,
    scope: Scope,
    mode: Mode,
    now: DateTime<Utc>,
    file: &'a str,
}

/// The area a staff account covers; grid workers may neither import nor export.
fn staff_scope(user: &User, what: &str) -> Result<Scope, DataError> {
    if user.disabled {
        return Err(DataError::Forbidden(format!(
            "account {} is disabled",
            user.username
        )));
    }
    match user.role {
        Role::Worker => Err(DataError::Forbidden(format!(
            "only village, town and county staff may {what}; {} is a grid worker",
            user.username
        ))),
        _ => Ok(Scope::Area(user.scope_code.clone())),
    }
}
