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
mod pipeline;
mod table;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::db::{DbError, Sql};
use super::error::Failure;
use super::repo::{self, Scope, User};
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
        (ImportKind::Grids, "geojson" | "json") => pipeline::run(
            db,
            &ctx,
            grids::GridsImport::new(file_name, bytes)?,
            progress,
        )?,
        (ImportKind::Households | ImportKind::Accounts, "csv" | "xlsx") => {
            let t = if ext == "csv" {
                table::read_csv(file_name, bytes)?
            } else {
                table::read_xlsx(file_name, bytes)?
            };
            if kind == ImportKind::Households {
                let importer = households::HouseholdsImport::new(&ctx, t)?;
                pipeline::run(db, &ctx, importer, progress)?
            } else {
                if actor.role != Role::Admin {
                    return Err(DataError::Forbidden(
                        "only a county administrator may import accounts".into(),
                    ));
                }
                pipeline::run(db, &ctx, accounts::AccountsImport::new(&ctx, t)?, progress)?
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
