//! Reading one row of a households file: the household's columns and the person's, each cell
//! checked on its own (what needs other rows or the stored data is checked when planning).

use std::collections::HashMap;

use uuid::Uuid;

use super::columns::{RELATION_SYNONYMS, SEX_SYNONYMS, TAG_SYNONYMS};
use super::{Given, HKey, HouseholdCols, PersonRow, is_clear};
use crate::domain::codes::{
    Coded, HouseUse, IdType, Lang, PersonStatus, PersonType, Relation, ResidenceStatus, Sex, Tag,
};
use crate::domain::geo::{GeoPoint, GridCode};
use crate::domain::labels::field_label;
use crate::domain::validate::{Phone, Problem};
use crate::server::data::Ctx;
use crate::server::data::table::{Columns, RowErrors, coded, date, lost_digits, split_list};

/// One row's cells, with the row's problems going to the report.
struct Cells<'a> {
    cols: &'a Columns,
    cells: &'a [String],
    row: usize,
    errs: &'a mut RowErrors,
}

impl Cells<'_> {
    fn get(&self, k: &str) -> &str {
        self.cols.get(self.cells, k)
    }

    fn err(&mut self, k: &'static str, reason: String) {
        self.errs.push(self.row, self.cols.name(k), reason);
    }

    /// An id column: blank for a new one, else an id as an export writes it.
    fn uuid(&mut self, k: &'static str) -> Option<Uuid> {
        let s = self.get(k).to_owned();
        if s.is_empty() {
            return None;
        }
        match Uuid::parse_str(&s) {
            Ok(u) => Some(u),
            Err(_) => {
                self.err(
                    k,
                    format!("「{s}」不是编号：请保留导出文件中的原值，新增的留空即可"),
                );
                None
            }
        }
    }

    /// An optional coded value (by code, label or one of `synonyms`).
    fn coded<T: Coded>(&mut self, k: &'static str, synonyms: &[(&str, T)]) -> Option<T> {
        match self.get(k).to_owned().as_str() {
            "" => None,
            s => coded::<T>(s, synonyms).map_err(|e| self.err(k, e)).ok(),
        }
    }
}

/// Reads one row.
pub(super) fn row(
    ctx: &Ctx<'_>,
    cols: &Columns,
    grids: &HashMap<String, Uuid>,
    (row, cells): (usize, &[String]),
    errs: &mut RowErrors,
) -> (HKey, HouseholdCols, PersonRow) {
    let mut c = Cells {
        cols,
        cells,
        row,
        errs,
    };
    let h = household(ctx, grids, &mut c);
    let p = person(&mut c);
    let key = match (h.household_id, c.get("household_no")) {
        (Some(id), _) => HKey::Id(id),
        (None, "") => HKey::Place(
            h.grid_code.clone(),
            h.house_number.clone(),
            h.address.clone(),
        ),
        (None, no) => HKey::No(h.grid_code.clone(), no.to_owned()),
    };
    (key, h, p)
}

/// The household's columns.
fn household(ctx: &Ctx<'_>, grids: &HashMap<String, Uuid>, c: &mut Cells<'_>) -> HouseholdCols {
    let grid_code = c.get("grid_code").to_owned();
    if grid_code.is_empty() {
        c.err("grid_code", "须填写网格编码（15 位数字）".into());
    } else if let Err(e) = GridCode::parse(&grid_code) {
        c.err(
            "grid_code",
            format!("「{grid_code}」不是网格编码，须为 15 位数字 ({e})"),
        );
    } else if !ctx.scope.covers(&grid_code) {
        c.err(
            "grid_code",
            format!(
                "网格 {grid_code} 不在你的管辖范围（{}）内，只能导入本辖区的住户",
                ctx.actor.scope_code
            ),
        );
    } else if !grids.contains_key(&grid_code) {
        c.err(
            "grid_code",
            format!("没有网格 {grid_code}：请先导入网格边界，再导入住户"),
        );
    }
    let household_id = c.uuid("household_id");
    let house_use = c.coded::<HouseUse>("house_use", &[]);
    let location = location(c);
    HouseholdCols {
        grid_code,
        household_id,
        house_number: c.get("house_number").to_owned(),
        address: c.get("address").to_owned(),
        house_use,
        location,
    }
}

/// The house's point: both coordinates or neither.
fn location(c: &mut Cells<'_>) -> Option<GeoPoint> {
    let (lon, lat) = (c.get("lon").to_owned(), c.get("lat").to_owned());
    if lon.is_empty() && lat.is_empty() {
        return None;
    }
    match (lon.parse::<f64>(), lat.parse::<f64>()) {
        (Ok(x), Ok(y)) => match GeoPoint::new(x, y, None) {
            Ok(p) => Some(p),
            Err(e) => {
                for f in e.errors {
                    let k = if f.field == "lat" { "lat" } else { "lon" };
                    c.err(k, f.problem.text(Lang::Zh, &field_label(k, Lang::Zh)));
                }
                None
            }
        },
        _ => {
            let which = if lon.parse::<f64>().is_err() {
                "lon"
            } else {
                "lat"
            };
            c.err(
                which,
                "经度和纬度须都填写，用小数度数，如 116.4 和 28.1".into(),
            );
            None
        }
    }
}

/// The person's columns.
fn person(c: &mut Cells<'_>) -> PersonRow {
    let person_id = c.uuid("person_id");
    let name = c.get("name").to_owned();
    let relation = if c.get("relation").is_empty() {
        c.err(
            "relation",
            "须填写与户主关系（户主、配偶、子、女……）".into(),
        );
        None
    } else {
        c.coded::<Relation>("relation", RELATION_SYNONYMS)
    };
    let sex = c.coded::<Sex>("sex", SEX_SYNONYMS);
    let birth = match c.get("birth_date").to_owned().as_str() {
        "" => None,
        s => date(s).map_err(|e| c.err("birth_date", e)).ok(),
    };
    let id_type = c.coded::<IdType>("id_type", &[("身份证", IdType::ResidentCard)]);
    let id_number = id_number(c);
    let phone = phone(c);
    let person_type = c.coded::<PersonType>("person_type", &[]);
    let residence = c.coded::<ResidenceStatus>("residence", &[]);
    let status = c.coded::<PersonStatus>("status", &[("正常", PersonStatus::Active)]);
    let tags = tags(c);
    PersonRow {
        row: c.row,
        person_id,
        name,
        relation,
        sex,
        sex_given: !c.get("sex").is_empty(),
        birth,
        id_type,
        id_number,
        phone,
        person_type,
        residence,
        status,
        tags,
    }
}

fn id_number(c: &mut Cells<'_>) -> Given<String> {
    match c.get("id_number").to_owned().as_str() {
        "" => Given::Blank,
        s if is_clear(s) => Given::Clear,
        s if s.contains('*') => Given::Masked(s.to_owned()),
        s if lost_digits(s) => {
            c.err(
                "id_number",
                format!(
                    "「{s}」被存成了数字，只留下 15 位有效数字：请把这一列设为文本格式，再重新输入号码"
                ),
            );
            Given::Blank
        }
        s => Given::Value(s.trim().to_uppercase()),
    }
}

fn phone(c: &mut Cells<'_>) -> Given<String> {
    match c.get("phone").to_owned().as_str() {
        "" => Given::Blank,
        s if is_clear(s) => Given::Clear,
        s if s.contains('*') => Given::Masked(s.to_owned()),
        s => match Phone::parse(s) {
            Ok(p) => Given::Value(p.as_str().to_owned()),
            Err(_) => {
                let typed = s.to_owned();
                c.err("phone", Problem::Phone { typed }.text(Lang::Zh, "联系电话"));
                Given::Blank
            }
        },
    }
}

fn tags(c: &mut Cells<'_>) -> Given<Vec<Tag>> {
    match c.get("tags").to_owned().as_str() {
        "" => Given::Blank,
        s if is_clear(s) => Given::Clear,
        s => {
            let mut v = Vec::new();
            for part in split_list(s) {
                match coded::<Tag>(part, TAG_SYNONYMS) {
                    Ok(tag) => v.push(tag),
                    Err(e) => c.err("tags", e),
                }
            }
            Given::Value(v)
        }
    }
}
