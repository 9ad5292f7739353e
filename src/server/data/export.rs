//! Exports: a plain [`Sheet`] (header and typed cells) written as XLSX or as CSV that Excel
//! opens in Chinese; the records and the people of an account's scope as sheets, with ID
//! numbers and phones masked unless a county administrator asks otherwise (audited); and
//! the demo county as import files.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use rust_xlsxwriter::{ExcelDateTime, Format, Workbook};
use serde_json::Value;
use uuid::Uuid;

use super::{DataError, internal, staff_scope};
use crate::demo::County;
use crate::domain::codes::{
    Coded, DisputeCategory, EmergencyCategory, HazardCategory, OpinionCategory, Relation, Tag,
};
use crate::domain::lifecycle::Status;
use crate::domain::model::{AnyRecord, EntityKind, House, Household, Person};
use crate::domain::validate::{mask_id, mask_phone};
use crate::server::db::Sql;
use crate::server::repo::{self, User};
use crate::wire::Role;

/// One cell of a sheet.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Empty,
    Text(String),
    Int(i64),
    Float(f64),
    Date(NaiveDate),
    /// Local (China Standard Time) date and time.
    DateTime(NaiveDateTime),
}

impl Cell {
    fn text(&self) -> String {
        match self {
            Cell::Empty => String::new(),
            Cell::Text(s) => s.clone(),
            Cell::Int(i) => i.to_string(),
            Cell::Float(f) => f.to_string(),
            Cell::Date(d) => d.format("%Y-%m-%d").to_string(),
            Cell::DateTime(t) => t.format("%Y-%m-%d %H:%M").to_string(),
        }
    }
}

/// The characters that make a spreadsheet read a text cell as a formula (or, for tab and
/// carriage return, hide one behind them).
pub const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// A text cell as it is written out: one that a spreadsheet would take for a formula (it starts
/// with `=`, `+`, `-`, `@`, a tab or a carriage return) gets a leading `'` (OWASP's rule against
/// CSV injection), so a worker's `=HYPERLINK(…)` is shown as text and never runs. The importer
/// takes the `'` off again ([`super::table::unguard`]), so exports import back as they were.
pub fn neutralise(s: &str) -> std::borrow::Cow<'_, str> {
    if s.starts_with(FORMULA_STARTS) {
        std::borrow::Cow::Owned(format!("'{s}"))
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

impl From<&str> for Cell {
    fn from(s: &str) -> Cell {
        Cell::Text(s.to_owned())
    }
}
impl From<String> for Cell {
    fn from(s: String) -> Cell {
        Cell::Text(s)
    }
}
impl<T: Into<Cell>> From<Option<T>> for Cell {
    fn from(v: Option<T>) -> Cell {
        v.map(Into::into).unwrap_or(Cell::Empty)
    }
}

/// A table to export: one worksheet of an XLSX, or one CSV file.
#[derive(Debug, Clone, PartialEq)]
pub struct Sheet {
    pub name: String,
    pub header: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
}

/// China Standard Time, for the times people read.
fn local(t: DateTime<Utc>) -> NaiveDateTime {
    crate::domain::cst::local(t).naive_local()
}

fn write_err(what: &'static str) -> impl Fn(rust_xlsxwriter::XlsxError) -> DataError {
    move |e| DataError::Write {
        what,
        reason: e.to_string(),
    }
}

/// Display width of a text in Excel columns (CJK characters take two).
fn width(s: &str) -> f64 {
    s.chars()
        .map(|c| if (c as u32) < 0x2E80 { 1.0 } else { 2.0 })
        .sum()
}

/// Writes sheets as one XLSX workbook: a bold frozen header with a filter, columns sized to
/// their content, ID numbers and phones as text (never numbers that lose digits). Rows go
/// through temporary files (constant-memory mode), so a county's people fit.
pub fn to_xlsx(sheets: &[Sheet]) -> Result<Vec<u8>, DataError> {
    let err = write_err("XLSX workbook");
    let mut wb = Workbook::new();
    let head = Format::new()
        .set_bold()
        .set_background_color(rust_xlsxwriter::Color::RGB(0xDDEBF7));
    let date = Format::new().set_num_format("yyyy-mm-dd");
    let datetime = Format::new().set_num_format("yyyy-mm-dd hh:mm");
    let mut names = HashSet::new();
    for (i, sheet) in sheets.iter().enumerate() {
        let ws = wb.add_worksheet_with_constant_memory().map_err(&err)?;
        // Excel: at most 31 characters, none of []:*?/\, unique.
        let mut name: String = sheet
            .name
            .chars()
            .filter(|c| !"[]:*?/\\".contains(*c))
            .take(28)
            .collect();
        if name.is_empty() || !names.insert(name.clone()) {
            name = format!("{name}{}", i + 1);
            names.insert(name.clone());
        }
        ws.set_name(&name).map_err(&err)?;
        let mut widths: Vec<f64> = sheet.header.iter().map(|h| width(h)).collect();
        for row in &sheet.rows {
            if row.len() > widths.len() {
                widths.resize(row.len(), 0.0);
            }
            for (c, cell) in row.iter().enumerate() {
                let w = match cell {
                    Cell::DateTime(_) => 16.0,
                    other => width(&other.text()),
                };
                widths[c] = widths[c].max(w);
            }
        }
        for (c, w) in widths.iter().enumerate() {
            ws.set_column_width(c as u16, (w + 2.0).min(60.0))
                .map_err(&err)?;
        }
        for (c, h) in sheet.header.iter().enumerate() {
            ws.write_string_with_format(0, c as u16, h, &head)
                .map_err(&err)?;
        }
        for (r, row) in sheet.rows.iter().enumerate() {
            let r = r as u32 + 1;
            for (c, cell) in row.iter().enumerate() {
                let col = c as u16;
                match cell {
                    Cell::Empty => {}
                    Cell::Text(s) => {
                        // Always a string cell (never a formula), and neutralised for when
                        // the sheet is saved on as CSV.
                        ws.write_string(r, col, neutralise(s)).map_err(&err)?;
                    }
                    Cell::Int(i) => {
                        ws.write_number(r, col, *i as f64).map_err(&err)?;
                    }
                    Cell::Float(f) => {
                        ws.write_number(r, col, *f).map_err(&err)?;
                    }
                    Cell::Date(d) => {
                        let x = ExcelDateTime::parse_from_str(&d.format("%Y-%m-%d").to_string())
                            .map_err(&err)?;
                        ws.write_datetime_with_format(r, col, &x, &date)
                            .map_err(&err)?;
                    }
                    Cell::DateTime(t) => {
                        let x = ExcelDateTime::parse_from_str(
                            &t.format("%Y-%m-%dT%H:%M:%S").to_string(),
                        )
                        .map_err(&err)?;
                        ws.write_datetime_with_format(r, col, &x, &datetime)
                            .map_err(&err)?;
                    }
                }
            }
        }
        ws.set_freeze_panes(1, 0).map_err(&err)?;
        if !sheet.header.is_empty() {
            ws.autofilter(0, 0, sheet.rows.len() as u32, sheet.header.len() as u16 - 1)
                .map_err(&err)?;
        }
    }
    wb.save_to_buffer().map_err(&err)
}

/// Writes a sheet as CSV: UTF-8 with a byte-order mark, which Excel needs to read Chinese.
pub fn to_csv(sheet: &Sheet) -> Result<Vec<u8>, DataError> {
    let err = |e: csv::Error| DataError::Write {
        what: "CSV file",
        reason: e.to_string(),
    };
    let mut w = csv::Writer::from_writer(b"\xEF\xBB\xBF".to_vec());
    w.write_record(&sheet.header).map_err(err)?;
    for row in &sheet.rows {
        // Text is neutralised against formulas; numbers (a negative one too) stay numbers.
        w.write_record(row.iter().map(|c| match c {
            Cell::Text(t) => neutralise(t).into_owned(),
            other => other.text(),
        }))
        .map_err(err)?;
    }
    w.into_inner().map_err(|e| DataError::Write {
        what: "CSV file",
        reason: e.to_string(),
    })
}

/// Which records to export.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecordFilter {
    pub kind: Option<EntityKind>,
    pub status: Option<Status>,
    /// Created at or after.
    pub since: Option<DateTime<Utc>>,
    /// Created before.
    pub until: Option<DateTime<Utc>>,
}

use crate::server::repo::RECORD_KINDS;

fn category_label(r: &AnyRecord) -> String {
    let code = r.category_code();
    match r {
        AnyRecord::Hazard(_) => HazardCategory::from_code(code).map(|c| c.zh()).ok(),
        AnyRecord::Opinion(_) => OpinionCategory::from_code(code).map(|c| c.zh()).ok(),
        AnyRecord::Dispute(_) => DisputeCategory::from_code(code).map(|c| c.zh()).ok(),
        AnyRecord::Emergency(_) => EmergencyCategory::from_code(code).map(|c| c.zh()).ok(),
        AnyRecord::Patrol(_) | AnyRecord::Event(_) => None,
    }
    .map(str::to_owned)
    .unwrap_or_default()
}

/// Grid names by code, for the scope's grids (kind and name only, not the boundaries).
fn grid_names(db: &mut dyn Sql, user: &User) -> Result<HashMap<String, String>, DataError> {
    let (clause, args) = user.scope().clause(1);
    let rows = db.query(
        &format!("SELECT grid_code, data FROM entities WHERE kind = 'GRID' AND {clause}"),
        &args,
    )?;
    let mut out = HashMap::new();
    for r in rows {
        let v: Value = serde_json::from_str(r[1].str()?).map_err(internal)?;
        out.insert(
            r[0].string()?,
            v.get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        );
    }
    Ok(out)
}

/// The records in the account's scope, newest first: type, category, status and urgency in
/// Chinese, grid, author, times, summary. Audited.
pub fn export_records(
    db: &mut dyn Sql,
    user: &User,
    filter: &RecordFilter,
    now: DateTime<Utc>,
) -> Result<Sheet, DataError> {
    let scope = staff_scope(user, "export records")?;
    let (clause, mut args) = scope.clause(1);
    let mut sql = format!(
        "SELECT kind, grid_code, data, updated_at FROM entities WHERE {clause} AND kind IN ({RECORD_KINDS})"
    );
    if let Some(k) = filter.kind {
        args.push(k.code().into());
        sql.push_str(&format!(" AND kind = ${}", args.len()));
    }
    if let Some(s) = filter.status {
        args.push(s.code().into());
        sql.push_str(&format!(" AND status = ${}", args.len()));
    }
    if let Some(t) = filter.since {
        args.push(repo::ts(t).into());
        sql.push_str(&format!(" AND created_at >= ${}", args.len()));
    }
    if let Some(t) = filter.until {
        args.push(repo::ts(t).into());
        sql.push_str(&format!(" AND created_at < ${}", args.len()));
    }
    sql.push_str(" ORDER BY created_at DESC, id");
    let rows = db.query(&sql, &args)?;
    let grids = grid_names(db, user)?;
    let authors: HashMap<String, String> = db
        .query("SELECT username, display_name FROM users", &[])?
        .into_iter()
        .map(|r| Ok((r[0].string()?, r[1].string()?)))
        .collect::<Result<_, DataError>>()?;
    let header = [
        "编号",
        "类型",
        "类别",
        "状态",
        "紧急程度",
        "网格编码",
        "网格",
        "上报人",
        "上报时间",
        "更新时间",
        "经度",
        "纬度",
        "摘要",
    ];
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let kind = EntityKind::from_code(r[0].str()?).map_err(internal)?;
        let Some(domain) = kind.domain() else {
            continue;
        };
        let grid_code = r[1].string()?;
        let data: Value = serde_json::from_str(r[2].str()?).map_err(internal)?;
        let rec = AnyRecord::from_json(domain, data).map_err(internal)?;
        let c = rec.common();
        let updated = repo::parse_ts(r[3].str()?)?;
        out.push(vec![
            Cell::Text(c.id.to_string()),
            Cell::Text(domain.zh().to_owned()),
            Cell::Text(category_label(&rec)),
            Cell::Text(c.status.zh().to_owned()),
            Cell::Text(c.urgency.zh().to_owned()),
            Cell::Text(grid_code.clone()),
            grids.get(&grid_code).cloned().into(),
            Cell::Text(authors.get(&c.author).cloned().unwrap_or(c.author.clone())),
            Cell::DateTime(local(c.created_at)),
            Cell::DateTime(local(updated)),
            c.location
                .map(|p| Cell::Float(p.lon))
                .unwrap_or(Cell::Empty),
            c.location
                .map(|p| Cell::Float(p.lat))
                .unwrap_or(Cell::Empty),
            Cell::Text(rec.summary().to_owned()),
        ]);
    }
    repo::audit(
        db,
        now,
        &user.username,
        None,
        "EXPORT_RECORDS",
        filter.kind,
        None,
        Some(format!("{} records", out.len())),
    )?;
    Ok(Sheet {
        name: "事件记录".into(),
        header: header.iter().map(|s| s.to_string()).collect(),
        rows: out,
    })
}

/// The header of a people export, which is also an import file's layout: one row per person
/// with the household's columns (an unmasked export imports back as an update).
pub const PEOPLE_HEADER: &[&str] = &[
    "网格编码",
    "网格名称",
    "户ID",
    "门牌号",
    "地址",
    "房屋用途",
    "经度",
    "纬度",
    "人员ID",
    "姓名",
    "与户主关系",
    "性别",
    "出生日期",
    "证件类型",
    "身份证号",
    "联系电话",
    "人员类型",
    "人户状态",
    "人员状态",
    "标签",
];

fn tags_text(tags: &[Tag]) -> String {
    tags.iter().map(|t| t.zh()).collect::<Vec<_>>().join("、")
}

/// One person's row in [`PEOPLE_HEADER`]'s layout.
#[allow(clippy::too_many_arguments)]
fn person_row(
    grid_code: &str,
    grid_name: Option<&str>,
    household: Option<&Household>,
    house: Option<&House>,
    p: &Person,
    with_ids: bool,
    masked: bool,
    id_number: Option<String>,
) -> Vec<Cell> {
    let loc = household
        .and_then(|h| h.location)
        .or(house.and_then(|h| h.location));
    let id = |u: Uuid| {
        if with_ids {
            Cell::Text(u.to_string())
        } else {
            Cell::Empty
        }
    };
    vec![
        Cell::Text(grid_code.to_owned()),
        grid_name.map(str::to_owned).into(),
        household.map(|h| id(h.id)).unwrap_or(Cell::Empty),
        house.map(|h| h.number.clone()).into(),
        household.map(|h| h.address.clone()).into(),
        house.map(|h| h.use_.zh().to_owned()).into(),
        loc.map(|l| Cell::Float(l.lon)).unwrap_or(Cell::Empty),
        loc.map(|l| Cell::Float(l.lat)).unwrap_or(Cell::Empty),
        id(p.id),
        Cell::Text(p.name.clone()),
        Cell::Text(p.relation.zh().to_owned()),
        Cell::Text(p.sex.zh().to_owned()),
        p.birth_date.map(Cell::Date).unwrap_or(Cell::Empty),
        Cell::Text(p.id_type.zh().to_owned()),
        if masked {
            id_number.as_deref().map(mask_id).into()
        } else {
            id_number.into()
        },
        if masked {
            p.phone.as_deref().map(mask_phone).into()
        } else {
            p.phone.clone().into()
        },
        Cell::Text(p.person_type.zh().to_owned()),
        Cell::Text(p.residence.zh().to_owned()),
        Cell::Text(p.status.zh().to_owned()),
        Cell::Text(tags_text(&p.tags)),
    ]
}

/// A key that sorts text with numbers in it as people expect: 1组2号 before 1组10号.
fn natural(s: &str) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    let mut digits = String::new();
    let mut text = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            if !text.is_empty() {
                out.push((u64::MAX, std::mem::take(&mut text)));
            }
            digits.push(c);
        } else {
            if !digits.is_empty() {
                out.push((digits.parse().unwrap_or(u64::MAX), String::new()));
                digits.clear();
            }
            text.push(c);
        }
    }
    if !digits.is_empty() {
        out.push((digits.parse().unwrap_or(u64::MAX), String::new()));
    }
    if !text.is_empty() {
        out.push((u64::MAX, text));
    }
    out
}

fn relation_rank(r: Relation) -> usize {
    Relation::ALL.iter().position(|x| *x == r).unwrap_or(99)
}

/// The people in the account's scope, one row per person with their household's columns,
/// by grid, household and relation (the head first). ID numbers and phones are masked
/// (`1101**********1234`, `138****5678`) unless `unmasked`, which only a county administrator
/// may ask for; every export is audited, an unmasked one as such.
pub fn export_people(
    db: &mut dyn Sql,
    user: &User,
    unmasked: bool,
    now: DateTime<Utc>,
) -> Result<Sheet, DataError> {
    let scope = staff_scope(user, "export people")?;
    if unmasked && user.role != Role::Admin {
        return Err(DataError::Forbidden(
            "only a county administrator may export unmasked ID numbers and phones".into(),
        ));
    }
    let (clause, args) = scope.clause(1);
    let rows = db.query(
        &format!(
            "SELECT kind, grid_code, data FROM entities WHERE {clause}
             AND kind IN ('HOUSE', 'HOUSEHOLD', 'PERSON')"
        ),
        &args,
    )?;
    let mut houses: HashMap<Uuid, House> = HashMap::new();
    let mut households: HashMap<Uuid, Household> = HashMap::new();
    let mut people: Vec<(String, Person)> = Vec::new();
    for r in rows {
        let data: Value = serde_json::from_str(r[2].str()?).map_err(internal)?;
        match r[0].str()? {
            "HOUSE" => {
                let h: House = serde_json::from_value(data).map_err(internal)?;
                houses.insert(h.id, h);
            }
            "HOUSEHOLD" => {
                let h: Household = serde_json::from_value(data).map_err(internal)?;
                households.insert(h.id, h);
            }
            _ => people.push((
                r[1].string()?,
                serde_json::from_value(data).map_err(internal)?,
            )),
        }
    }
    let grids = grid_names(db, user)?;
    people.sort_by_cached_key(|(g, p)| {
        let addr = households
            .get(&p.household_id)
            .map(|h| natural(&h.address))
            .unwrap_or_default();
        (
            g.clone(),
            addr,
            p.household_id,
            relation_rank(p.relation),
            p.name.clone(),
        )
    });
    let out: Vec<Vec<Cell>> = people
        .iter()
        .map(|(g, p)| {
            let hh = households.get(&p.household_id);
            let house = hh.and_then(|h| h.house_id).and_then(|id| houses.get(&id));
            person_row(
                g,
                grids.get(g).map(String::as_str),
                hh,
                house,
                p,
                true,
                !unmasked,
                p.id_number.clone(),
            )
        })
        .collect();
    repo::audit(
        db,
        now,
        &user.username,
        None,
        if unmasked {
            "EXPORT_PEOPLE_UNMASKED"
        } else {
            "EXPORT_PEOPLE"
        },
        Some(EntityKind::Person),
        None,
        Some(format!("{} people", out.len())),
    )?;
    Ok(Sheet {
        name: "实有人口".into(),
        header: PEOPLE_HEADER.iter().map(|s| s.to_string()).collect(),
        rows: out,
    })
}

/// The households and people of some grids of the demo county as an import file (no ids: it
/// is a county's first import). The demo's generator may give two people the same ID number;
/// the second one is written without it, as a real register would be corrected.
pub fn demo_households(county: &County, grids: &[usize]) -> Sheet {
    let mut seen = HashSet::new();
    let mut rows = Vec::new();
    for &g in grids {
        let grid = &county.grids[g].grid;
        let s = county.population(g);
        let houses: BTreeMap<Uuid, &House> = s.houses.iter().map(|h| (h.id, h)).collect();
        let households: BTreeMap<Uuid, &Household> =
            s.households.iter().map(|h| (h.id, h)).collect();
        for p in &s.people {
            let hh = households.get(&p.household_id).copied();
            let house = hh
                .and_then(|h| h.house_id)
                .and_then(|id| houses.get(&id).copied());
            let id_number = p.id_number.clone().filter(|n| seen.insert(n.clone()));
            rows.push(person_row(
                grid.code.as_str(),
                Some(&grid.name),
                hh,
                house,
                p,
                false,
                false,
                id_number,
            ));
        }
    }
    Sheet {
        name: "实有人口".into(),
        header: PEOPLE_HEADER.iter().map(|s| s.to_string()).collect(),
        rows,
    }
}

/// The boundaries of some grids of the demo county as a grid import file (GeoJSON).
pub fn demo_grids_geojson(county: &County, grids: &[usize]) -> String {
    let features: Vec<Value> = grids
        .iter()
        .map(|&g| {
            let grid = &county.grids[g].grid;
            serde_json::json!({
                "type": "Feature",
                "properties": {
                    "code": grid.code.as_str(),
                    "name": grid.name,
                    "village": grid.village_name,
                    "town": grid.town_name,
                    "county": grid.county_name,
                },
                "geometry": serde_json::from_str::<Value>(
                    &crate::domain::geo::polygon_to_geojson(&grid.boundary)
                ).expect("GeoJSON we wrote"),
            })
        })
        .collect();
    serde_json::json!({"type": "FeatureCollection", "features": features}).to_string()
}

/// The columns of an accounts file.
pub const ACCOUNTS_HEADER: &[&str] = &["用户名", "姓名", "角色", "范围编码", "网格", "初始密码"];

/// The accounts of some grids of the demo county as an account import file: each village's
/// secretary and each grid's worker, passwords left to be generated.
pub fn demo_accounts(county: &County, grids: &[usize]) -> Sheet {
    let mut rows = Vec::new();
    let mut villages = Vec::new();
    for &g in grids {
        let dg = &county.grids[g];
        if !villages.contains(&dg.village) {
            villages.push(dg.village);
            let v = &county.villages[dg.village];
            rows.push(vec![
                Cell::Text(v.secretary.username.clone()),
                Cell::Text(v.secretary.name.clone()),
                Cell::Text(Role::Secretary.zh().to_owned()),
                Cell::Text(v.code.clone()),
                Cell::Empty,
                Cell::Empty,
            ]);
        }
        rows.push(vec![
            Cell::Text(dg.worker.username.clone()),
            Cell::Text(dg.worker.name.clone()),
            Cell::Text(Role::Worker.zh().to_owned()),
            Cell::Text(county.villages[dg.village].code.clone()),
            Cell::Text(dg.grid.code.as_str().to_owned()),
            Cell::Empty,
        ]);
    }
    Sheet {
        name: "账号".into(),
        header: ACCOUNTS_HEADER.iter().map(|s| s.to_string()).collect(),
        rows,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order_reads_numbers_as_numbers() {
        let mut v = vec![
            "山下村1组10号",
            "山下村1组2号",
            "山下村2组1号",
            "山下村1组1号",
        ];
        v.sort_by_key(|s| natural(s));
        assert_eq!(
            v,
            [
                "山下村1组1号",
                "山下村1组2号",
                "山下村1组10号",
                "山下村2组1号"
            ]
        );
    }

    #[test]
    fn text_that_looks_like_a_formula_is_neutralised_and_numbers_are_not() {
        let sheet = Sheet {
            name: "t".into(),
            header: vec!["a".into(), "b".into()],
            rows: vec![
                vec![
                    Cell::Text("=HYPERLINK(\"http://x\",\"y\")".into()),
                    Cell::Int(-5),
                ],
                vec![Cell::Text("+1".into()), Cell::Float(-1.5)],
                vec![Cell::Text("-1".into()), Cell::Text("@SUM(A1)".into())],
                vec![Cell::Text("\t=1".into()), Cell::Text("\r=1".into())],
                vec![Cell::Text("护栏 = 无".into()), Cell::Text("'=1".into())],
            ],
        };
        let csv = String::from_utf8(to_csv(&sheet).unwrap()).unwrap();
        let mut r = csv::ReaderBuilder::new()
            .has_headers(true)
            .from_reader(csv.trim_start_matches('\u{feff}').as_bytes());
        let rows: Vec<Vec<String>> = r
            .records()
            .map(|x| x.unwrap().iter().map(str::to_owned).collect())
            .collect();
        assert_eq!(rows[0], ["'=HYPERLINK(\"http://x\",\"y\")", "-5"]);
        assert_eq!(rows[1], ["'+1", "-1.5"]);
        assert_eq!(rows[2], ["'-1", "'@SUM(A1)"]);
        assert_eq!(rows[3], ["'\t=1", "'\r=1"]);
        // Only the first character counts; text already starting with ' is left alone.
        assert_eq!(rows[4], ["护栏 = 无", "'=1"]);

        // XLSX: string cells (no formula anywhere in the workbook), also neutralised.
        use calamine::Reader;
        let bytes = to_xlsx(std::slice::from_ref(&sheet)).unwrap();
        let mut wb = calamine::Xlsx::new(std::io::Cursor::new(bytes)).unwrap();
        let range = wb.worksheet_range("t").unwrap();
        let first: Vec<&calamine::Data> = range.rows().nth(1).unwrap().iter().collect();
        assert_eq!(
            *first[0],
            calamine::Data::String("'=HYPERLINK(\"http://x\",\"y\")".into())
        );
        assert_eq!(*first[1], calamine::Data::Float(-5.0));
        let formulas = wb.worksheet_formula("t").unwrap();
        assert!(formulas.used_cells().all(|(_, _, f)| f.is_empty()));
    }

    #[test]
    fn cells_as_text_and_widths() {
        assert_eq!(
            Cell::Date(NaiveDate::from_ymd_opt(2026, 1, 2).unwrap()).text(),
            "2026-01-02"
        );
        assert_eq!(Cell::from(None::<String>), Cell::Empty);
        assert_eq!(width("ab山"), 4.0);
    }
}
