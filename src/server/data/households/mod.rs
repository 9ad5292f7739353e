//! Importing households and their people: one row per person, with the household's columns
//! repeated on each of its rows.
//!
//! Rows belong to one household by, in order: the household id column (户ID, what an export
//! writes), the file's own household number (户编号), or the same grid, house number and
//! address. A person is the same person as one already stored by the person id column
//! (人员ID), else by ID number (身份证号), else by name within the same household: so
//! importing a file again updates what the first import made instead of adding it twice.
//! A blank cell keeps what is stored (or takes the default for a new person); 无 clears an
//! optional value. An import never deletes: people who left are marked with 人员状态.
//!
//! `columns.rs` names the columns, `read.rs` reads a row, `stored.rs` holds what is stored
//! in the villages the file touches, `plan.rs` plans a household.

mod columns;
mod plan;
mod read;
mod stored;

use std::collections::{BTreeSet, HashMap};

use chrono::NaiveDate;
use uuid::Uuid;

use super::pipeline::{Bar, Importer, Planned, Seqs, Write, write_entities};
use super::table::{Columns, RowErrors, Table};
use super::{Ctx, DataError, ImportReport, internal};
use crate::domain::codes::{
    HouseUse, IdType, Lang, PersonStatus, PersonType, Relation, ResidenceStatus, Sex, Tag,
};
use crate::domain::geo::{GeoPoint, GridCode};
use crate::domain::labels::field_label;
use crate::domain::model::EntityKind;
use crate::server::db::Sql;
use crate::server::repo::{self, Entity};

pub use columns::COLUMNS;
pub(super) use stored::entity_from_row;

/// An optional value in a cell: blank keeps what is stored, 无 clears it, a masked value
/// (`1101**********1234`) stands for the stored value it masks.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Given<T> {
    Blank,
    Clear,
    Value(T),
    Masked(String),
}

fn is_clear(s: &str) -> bool {
    matches!(s.trim(), "无" | "-" | "—" | "none" | "None" | "NONE")
}

/// One person row, read.
#[derive(Debug, Clone)]
pub(super) struct PersonRow {
    row: usize,
    person_id: Option<Uuid>,
    name: String,
    relation: Option<Relation>,
    sex: Option<Sex>,
    /// The sex cell was filled in (even if it could not be read: that error is reported).
    sex_given: bool,
    birth: Option<NaiveDate>,
    id_type: Option<IdType>,
    id_number: Given<String>,
    phone: Given<String>,
    person_type: Option<PersonType>,
    residence: Option<ResidenceStatus>,
    status: Option<PersonStatus>,
    tags: Given<Vec<Tag>>,
}

/// The household columns of a row.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct HouseholdCols {
    grid_code: String,
    household_id: Option<Uuid>,
    house_number: String,
    address: String,
    house_use: Option<HouseUse>,
    location: Option<GeoPoint>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) enum HKey {
    Id(Uuid),
    No(String, String),
    Place(String, String, String),
}

/// A row as read: which household it belongs to, the household's columns, the person's.
pub(super) type Read = (HKey, HouseholdCols, PersonRow);

/// A households file, through the import pipeline.
pub(super) struct HouseholdsImport {
    cols: Columns,
    table: Option<Table>,
    total: usize,
    today: NaiveDate,
    /// The grids of the actor's scope, by code.
    grids: HashMap<String, Uuid>,
    /// What is stored in the villages the file touches.
    ex: stored::Existing,
    seqs: Seqs,
}

impl HouseholdsImport {
    pub(super) fn new(ctx: &Ctx<'_>, table: Table) -> Result<HouseholdsImport, DataError> {
        Ok(HouseholdsImport {
            cols: Columns::find(ctx.file, &table.header, COLUMNS)?,
            total: table.rows.len(),
            table: Some(table),
            today: crate::domain::cst::today(ctx.now),
            grids: HashMap::new(),
            ex: stored::Existing::default(),
            seqs: Seqs::new(0),
        })
    }

    fn load_grids(&mut self, db: &mut dyn Sql, ctx: &Ctx<'_>) -> Result<(), DataError> {
        let (clause, args) = ctx.scope.clause(1);
        self.grids = db
            .query(
                &format!("SELECT grid_code, id FROM entities WHERE kind = 'GRID' AND {clause}"),
                &args,
            )?
            .into_iter()
            .map(|r| {
                Ok((
                    r[0].string()?,
                    Uuid::parse_str(r[1].str()?).map_err(internal)?,
                ))
            })
            .collect::<Result<_, DataError>>()?;
        Ok(())
    }
}

impl Importer for HouseholdsImport {
    type Row = Read;
    type Unit = Vec<Write>;

    fn total(&self) -> usize {
        self.total
    }

    fn read(
        &mut self,
        db: &mut dyn Sql,
        ctx: &Ctx<'_>,
        errs: &mut RowErrors,
        bar: &mut Bar<'_>,
    ) -> Result<Vec<Read>, DataError> {
        self.load_grids(db, ctx)?;
        // The rows are read into their own values: the text is freed before planning.
        let table = self.table.take().expect("a file is read once");
        let mut rows = Vec::with_capacity(table.rows.len());
        for (i, (row, cells)) in table.rows.iter().enumerate() {
            bar.checked(i / 5); // reading is quick; planning is most of the check
            rows.push(read::row(ctx, &self.cols, &self.grids, (*row, cells), errs));
        }
        Ok(rows)
    }

    fn plan(
        &mut self,
        db: &mut dyn Sql,
        ctx: &Ctx<'_>,
        rows: Vec<Read>,
        errs: &mut RowErrors,
        bar: &mut Bar<'_>,
    ) -> Result<Vec<Planned<Vec<Write>>>, DataError> {
        for (_, h, _) in &rows {
            if GridCode::parse(&h.grid_code).is_ok() && self.grids.contains_key(&h.grid_code) {
                self.ex.load_area(db, &h.grid_code[..12])?;
            }
        }
        // Rows into households, in the order they first appear.
        let mut order: Vec<HKey> = Vec::new();
        let mut groups: HashMap<HKey, Vec<usize>> = HashMap::new();
        for (i, (k, _, _)) in rows.iter().enumerate() {
            groups
                .entry(k.clone())
                .or_insert_with(|| {
                    order.push(k.clone());
                    Vec::new()
                })
                .push(i);
        }
        let total = self.total;
        let mut planner = plan::Planner {
            ctx,
            cols: &self.cols,
            today: self.today,
            grids: &self.grids,
            read: &rows,
            ex: &mut self.ex,
            seen_person: HashMap::new(),
            seen_id_number: HashMap::new(),
        };
        let mut plans = Vec::new();
        let mut planned_rows = 0;
        for key in &order {
            let idx = &groups[key];
            bar.checked(total / 5 + planned_rows * 4 / 5);
            planned_rows += idx.len();
            if let Some(p) = planner.household(db, key, idx, errs)? {
                plans.push(p);
            }
        }
        errs.errors.sort_by_key(|e| e.row);
        errs.errors.dedup();
        self.seqs = Seqs::new(plans.iter().map(|p| p.unit.len()).sum());
        Ok(plans)
    }

    fn write(
        &mut self,
        db: &mut dyn Sql,
        ctx: &Ctx<'_>,
        writes: Vec<Write>,
        good: &[usize],
        bad: &BTreeSet<usize>,
        _report: &mut ImportReport,
    ) -> Result<(usize, usize), DataError> {
        let writes: Vec<&Write> = writes
            .iter()
            .filter(|w| w.row.is_none_or(|r| !bad.contains(&r)))
            .collect();
        let olds: Vec<Option<Entity>> = writes
            .iter()
            .map(|w| {
                self.ex
                    .entities
                    .get(&w.id)
                    .map(|s| s.entity(w.id))
                    .transpose()
            })
            .collect::<Result<_, _>>()?;
        let items: Vec<(&Write, Option<&Entity>)> = writes
            .iter()
            .zip(&olds)
            .map(|(w, o)| (*w, o.as_ref()))
            .collect();
        let (c, u) = write_entities(db, ctx, &mut self.seqs, &items)?;
        if c + u > 0
            && let Some(hh) = writes.iter().find(|w| w.kind == EntityKind::Household)
        {
            let rows: Vec<String> = good.iter().map(|r| r.to_string()).collect();
            repo::audit(
                db,
                ctx.now,
                &ctx.actor.username,
                None,
                "IMPORT",
                Some(EntityKind::Household),
                Some(hh.id),
                Some(format!(
                    "{} rows {}: {c} created, {u} changed",
                    ctx.file,
                    rows.join(",")
                )),
            )?;
        }
        Ok((c, u))
    }
}

/// A domain check's reason in Chinese, naming the field as the template does.
fn zh_reason(f: &crate::domain::validate::FieldError) -> String {
    f.problem.text(Lang::Zh, &field_label(&f.field, Lang::Zh))
}
