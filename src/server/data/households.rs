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

use std::collections::HashMap;

use chrono::NaiveDate;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::table::{Col, Columns, RowErrors, Table, coded, date, lost_digits, split_list};
use super::{
    Bar, Ctx, DataError, ImportReport, Mode, Payload, Seqs, Write, internal, write_entities,
};
use crate::domain::codes::{
    Coded, HouseUse, IdType, Lang, PersonStatus, PersonType, Relation, ResidenceStatus, Sex, Tag,
};
use crate::domain::geo::{GeoPoint, GridCode};
use crate::domain::labels::{Explain, field_label};
use crate::domain::model::{EntityKind, House, Household, Person, new_id};
use crate::domain::validate::{IdNumber, Phone, Problem, ValidationErrors, mask_id, mask_phone};
use crate::server::db::{Sql, V};
use crate::server::repo::{self, Entity, Scope};

pub const COLUMNS: &[Col] = &[
    Col {
        key: "grid_code",
        names: &["网格编码", "网格代码", "grid_code", "grid"],
        required: true,
    },
    Col {
        key: "grid_name",
        names: &["网格名称", "grid_name"],
        required: false,
    },
    Col {
        key: "household_id",
        names: &["户ID", "户id", "household_id"],
        required: false,
    },
    Col {
        key: "household_no",
        names: &["户编号", "户号", "household_no"],
        required: false,
    },
    Col {
        key: "house_number",
        names: &["门牌号", "house_number"],
        required: false,
    },
    Col {
        key: "address",
        names: &["地址", "住址", "家庭住址", "address"],
        required: true,
    },
    Col {
        key: "house_use",
        names: &["房屋用途", "房屋性质", "house_use"],
        required: false,
    },
    Col {
        key: "lon",
        names: &["经度", "lon", "longitude"],
        required: false,
    },
    Col {
        key: "lat",
        names: &["纬度", "lat", "latitude"],
        required: false,
    },
    Col {
        key: "person_id",
        names: &["人员ID", "人员id", "person_id"],
        required: false,
    },
    Col {
        key: "name",
        names: &["姓名", "name"],
        required: true,
    },
    Col {
        key: "relation",
        names: &["与户主关系", "relation"],
        required: true,
    },
    Col {
        key: "sex",
        names: &["性别", "sex"],
        required: false,
    },
    Col {
        key: "birth_date",
        names: &["出生日期", "birth_date"],
        required: false,
    },
    Col {
        key: "id_type",
        names: &["证件类型", "id_type"],
        required: false,
    },
    Col {
        key: "id_number",
        names: &[
            "身份证号",
            "身份证号码",
            "公民身份号码",
            "证件号码",
            "id_number",
        ],
        required: false,
    },
    Col {
        key: "phone",
        names: &["联系电话", "电话", "手机号", "手机", "phone"],
        required: false,
    },
    Col {
        key: "person_type",
        names: &["人员类型", "person_type"],
        required: false,
    },
    Col {
        key: "residence",
        names: &["人户状态", "居住状态", "residence"],
        required: false,
    },
    Col {
        key: "status",
        names: &["人员状态", "status"],
        required: false,
    },
    Col {
        key: "tags",
        names: &["标签", "特殊人群", "人员标签", "tags"],
        required: false,
    },
];

const RELATION_SYNONYMS: &[(&str, Relation)] = &[
    ("本人", Relation::Head),
    ("妻", Relation::Spouse),
    ("妻子", Relation::Spouse),
    ("夫", Relation::Spouse),
    ("丈夫", Relation::Spouse),
    ("儿子", Relation::Son),
    ("长子", Relation::Son),
    ("次子", Relation::Son),
    ("女儿", Relation::Daughter),
    ("长女", Relation::Daughter),
    ("次女", Relation::Daughter),
    ("儿媳", Relation::ChildInLaw),
    ("女婿", Relation::ChildInLaw),
    ("孙子", Relation::Grandchild),
    ("孙女", Relation::Grandchild),
    ("外孙", Relation::Grandchild),
    ("外孙女", Relation::Grandchild),
    ("父亲", Relation::Parent),
    ("母亲", Relation::Parent),
    ("祖父", Relation::Grandparent),
    ("祖母", Relation::Grandparent),
    ("兄", Relation::Sibling),
    ("弟", Relation::Sibling),
    ("姐", Relation::Sibling),
    ("妹", Relation::Sibling),
];

const TAG_SYNONYMS: &[(&str, Tag)] = &[
    ("独居老人", Tag::ElderlyAlone),
    ("空巢", Tag::ElderlyAlone),
    ("高龄老人", Tag::ElderlyHighAge),
    ("留守妇女", Tag::LeftBehindAdult),
    ("残疾", Tag::Disabled),
    ("低保户", Tag::LowIncome),
    ("特困供养", Tag::ExtremePoverty),
    ("特困人员", Tag::ExtremePoverty),
    ("优抚对象", Tag::VeteranEntitled),
    ("社区矫正对象", Tag::CommunityCorrection),
    ("刑释人员", Tag::ReleasedPrisoner),
    ("精神障碍", Tag::SevereMentalDisorder),
    ("吸毒人员", Tag::DrugUser),
];

const SEX_SYNONYMS: &[(&str, Sex)] = &[("m", Sex::Male), ("f", Sex::Female)];

/// An optional value in a cell: blank keeps what is stored, 无 clears it, a masked value
/// (`1101**********1234`) stands for the stored value it masks.
#[derive(Debug, Clone, PartialEq)]
enum Given<T> {
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
struct PersonRow {
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
struct HouseholdCols {
    grid_code: String,
    household_id: Option<Uuid>,
    house_number: String,
    address: String,
    house_use: Option<HouseUse>,
    location: Option<GeoPoint>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum HKey {
    Id(Uuid),
    No(String, String),
    Place(String, String, String),
}

/// A stored house, household or person: what matching needs, with its JSON kept as text and
/// parsed only when the import uses it (a county's worth of parsed maps would not fit well).
struct Stored {
    kind: EntityKind,
    grid_id: Uuid,
    grid_code: String,
    parent_id: Option<Uuid>,
    /// A person's name (to match people without an ID number within their household).
    name: Option<String>,
    data: String,
    meta: String,
    version: i64,
    created_at: String,
}

impl Stored {
    fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, DataError> {
        serde_json::from_str(&self.data).map_err(internal)
    }

    fn entity(&self, id: Uuid) -> Result<Entity, DataError> {
        Ok(Entity {
            id,
            kind: self.kind,
            grid_id: self.grid_id,
            grid_code: self.grid_code.clone(),
            parent_id: self.parent_id,
            data: self.parse()?,
            meta: serde_json::from_str(&self.meta).map_err(internal)?,
            version: self.version,
            created_at: repo::parse_ts(&self.created_at)?,
        })
    }
}

/// What is stored in the villages the file touches.
#[derive(Default)]
struct Existing {
    entities: HashMap<Uuid, Stored>,
    by_id_number: HashMap<String, Uuid>,
    members: HashMap<Uuid, Vec<Uuid>>,
    houses_by_place: HashMap<(String, String, String), Uuid>,
    households_by_house: HashMap<Uuid, Vec<Uuid>>,
    loaded_prefixes: std::collections::HashSet<String>,
}

pub(super) fn entity_from_row(r: &[V]) -> Result<Entity, DataError> {
    let id = Uuid::parse_str(r[0].str()?).map_err(internal)?;
    let data: Value = serde_json::from_str(r[5].str()?).map_err(internal)?;
    Ok(Entity {
        id,
        kind: EntityKind::from_code(r[1].str()?).map_err(internal)?,
        grid_id: Uuid::parse_str(r[2].str()?).map_err(internal)?,
        grid_code: r[3].string()?,
        parent_id: r[4]
            .opt_string()?
            .map(|s| Uuid::parse_str(&s))
            .transpose()
            .map_err(internal)?,
        data: match data {
            Value::Object(m) => m,
            _ => Map::new(),
        },
        meta: serde_json::from_str(r[6].str()?).map_err(internal)?,
        version: r[7].i64()?,
        created_at: repo::parse_ts(r[8].str()?)?,
    })
}

impl Existing {
    fn add(&mut self, id: Uuid, mut e: Stored) -> Result<(), DataError> {
        let data: Value = serde_json::from_str(&e.data).map_err(internal)?;
        let s = |k: &str| data.get(k).and_then(Value::as_str);
        match e.kind {
            EntityKind::Person => {
                if let Some(n) = s("id_number")
                    && s("id_type") == Some(IdType::ResidentCard.code())
                {
                    self.by_id_number.insert(n.to_owned(), id);
                }
                if let Some(h) = e.parent_id {
                    self.members.entry(h).or_default().push(id);
                }
                e.name = s("name").map(str::to_owned);
            }
            EntityKind::House => {
                let place = (
                    e.grid_code.clone(),
                    s("number").unwrap_or("").to_owned(),
                    s("address").unwrap_or("").to_owned(),
                );
                self.houses_by_place.insert(place, id);
            }
            EntityKind::Household => {
                if let Some(house) = s("house_id").and_then(|h| Uuid::parse_str(h).ok()) {
                    self.households_by_house.entry(house).or_default().push(id);
                }
            }
            _ => {}
        }
        self.entities.insert(id, e);
        Ok(())
    }

    /// Loads the houses, households and people of a village (by its code prefix), once.
    fn load_area(&mut self, db: &mut dyn Sql, prefix: &str) -> Result<(), DataError> {
        if !self.loaded_prefixes.insert(prefix.to_owned()) {
            return Ok(());
        }
        let (clause, args) = Scope::Area(prefix.to_owned()).clause(1);
        // `kind || ''` keeps the planner on the grid-code index (SQLite would otherwise walk
        // every house and person of the county through the kind index, once per village).
        let rows = db.query(
            &format!(
                "SELECT id, kind, grid_id, grid_code, parent_id, data, meta, version, created_at
                 FROM entities WHERE {clause} AND kind || '' IN ('HOUSE', 'HOUSEHOLD', 'PERSON')"
            ),
            &args,
        )?;
        for r in rows {
            let id = Uuid::parse_str(r[0].str()?).map_err(internal)?;
            if self.entities.contains_key(&id) {
                continue;
            }
            let stored = Stored {
                kind: EntityKind::from_code(r[1].str()?).map_err(internal)?,
                grid_id: Uuid::parse_str(r[2].str()?).map_err(internal)?,
                grid_code: r[3].string()?,
                parent_id: r[4]
                    .opt_string()?
                    .map(|s| Uuid::parse_str(&s))
                    .transpose()
                    .map_err(internal)?,
                name: None,
                data: r[5].string()?,
                meta: r[6].string()?,
                version: r[7].i64()?,
                created_at: r[8].string()?,
            };
            self.add(id, stored)?;
        }
        Ok(())
    }

    /// An entity named by id in the file, wherever it is stored.
    fn by_id(&mut self, db: &mut dyn Sql, id: Uuid) -> Result<Option<&Stored>, DataError> {
        if !self.entities.contains_key(&id)
            && let Some(e) = repo::get_entity(db, id)?
        {
            let stored = Stored {
                kind: e.kind,
                grid_id: e.grid_id,
                grid_code: e.grid_code.clone(),
                parent_id: e.parent_id,
                name: None,
                data: Value::Object(e.data).to_string(),
                meta: serde_json::to_string(&e.meta).map_err(internal)?,
                version: e.version,
                created_at: repo::ts(e.created_at),
            };
            self.add(id, stored)?;
        }
        Ok(self.entities.get(&id))
    }
}

/// A household's plan: what to write and which rows it covers.
struct Plan {
    rows: Vec<usize>,
    writes: Vec<Write>,
}

pub(super) fn import(
    db: &mut dyn Sql,
    ctx: &Ctx<'_>,
    t: Table,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<ImportReport, DataError> {
    let cols = Columns::find(ctx.file, &t.header, COLUMNS)?;
    let today = crate::domain::cst::today(ctx.now);
    let total = t.rows.len();
    let mut bar = Bar::new(progress, total);
    bar.report(0);
    let mut errs = RowErrors::default();

    // The grids of the actor's scope, by code.
    let (clause, args) = ctx.scope.clause(1);
    let grids: HashMap<String, Uuid> = db
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

    // Read every row.
    let mut read: Vec<(HKey, HouseholdCols, PersonRow)> = Vec::new();
    for (i, (row, cells)) in t.rows.iter().enumerate() {
        bar.checked(i / 5); // reading is quick; planning below is most of the check
        let row = *row;
        let g = |k: &str| cols.get(cells, k);
        let mut err = |k: &'static str, reason: String| errs.push(row, cols.name(k), reason);
        let uuid_of = |k: &'static str, err: &mut dyn FnMut(&'static str, String)| {
            let s = g(k);
            if s.is_empty() {
                return None;
            }
            match Uuid::parse_str(s) {
                Ok(u) => Some(u),
                Err(_) => {
                    err(
                        k,
                        format!("「{s}」不是编号：请保留导出文件中的原值，新增的留空即可"),
                    );
                    None
                }
            }
        };
        // Household columns.
        let grid_code = g("grid_code").to_owned();
        if grid_code.is_empty() {
            err("grid_code", "须填写网格编码（15 位数字）".into());
        } else if let Err(e) = GridCode::parse(&grid_code) {
            err(
                "grid_code",
                format!("「{grid_code}」不是网格编码，须为 15 位数字 ({e})"),
            );
        } else if !ctx.scope.covers(&grid_code) {
            err(
                "grid_code",
                format!(
                    "网格 {grid_code} 不在你的管辖范围（{}）内，只能导入本辖区的住户",
                    ctx.actor.scope_code
                ),
            );
        } else if !grids.contains_key(&grid_code) {
            err(
                "grid_code",
                format!("没有网格 {grid_code}：请先导入网格边界，再导入住户"),
            );
        }
        let household_id = uuid_of("household_id", &mut err);
        let house_use = match g("house_use") {
            "" => None,
            s => coded::<HouseUse>(s, &[])
                .map_err(|e| err("house_use", e))
                .ok(),
        };
        let location = match (g("lon"), g("lat")) {
            ("", "") => None,
            (lon, lat) => match (lon.parse::<f64>(), lat.parse::<f64>()) {
                (Ok(x), Ok(y)) => match GeoPoint::new(x, y, None) {
                    Ok(p) => Some(p),
                    Err(e) => {
                        for f in e.errors {
                            let k = if f.field == "lat" { "lat" } else { "lon" };
                            err(k, f.problem.text(Lang::Zh, &field_label(k, Lang::Zh)));
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
                    err(
                        which,
                        "经度和纬度须都填写，用小数度数，如 116.4 和 28.1".into(),
                    );
                    None
                }
            },
        };
        let h = HouseholdCols {
            grid_code: grid_code.clone(),
            household_id,
            house_number: g("house_number").to_owned(),
            address: g("address").to_owned(),
            house_use,
            location,
        };
        // Person columns.
        let person_id = uuid_of("person_id", &mut err);
        let name = g("name").to_owned();
        let relation = match g("relation") {
            "" => {
                err(
                    "relation",
                    "须填写与户主关系（户主、配偶、子、女……）".into(),
                );
                None
            }
            s => coded::<Relation>(s, RELATION_SYNONYMS)
                .map_err(|e| err("relation", e))
                .ok(),
        };
        let sex = match g("sex") {
            "" => None,
            s => coded::<Sex>(s, SEX_SYNONYMS)
                .map_err(|e| err("sex", e))
                .ok(),
        };
        let birth = match g("birth_date") {
            "" => None,
            s => date(s).map_err(|e| err("birth_date", e)).ok(),
        };
        let id_type = match g("id_type") {
            "" => None,
            s => coded::<IdType>(s, &[("身份证", IdType::ResidentCard)])
                .map_err(|e| err("id_type", e))
                .ok(),
        };
        let id_number = match g("id_number") {
            "" => Given::Blank,
            s if is_clear(s) => Given::Clear,
            s if s.contains('*') => Given::Masked(s.to_owned()),
            s if lost_digits(s) => {
                err(
                    "id_number",
                    format!(
                        "「{s}」被存成了数字，只留下 15 位有效数字：请把这一列设为文本格式，再重新输入号码"
                    ),
                );
                Given::Blank
            }
            s => Given::Value(s.trim().to_uppercase()),
        };
        let phone = match g("phone") {
            "" => Given::Blank,
            s if is_clear(s) => Given::Clear,
            s if s.contains('*') => Given::Masked(s.to_owned()),
            s => match Phone::parse(s) {
                Ok(p) => Given::Value(p.as_str().to_owned()),
                Err(_) => {
                    let typed = s.to_owned();
                    err("phone", Problem::Phone { typed }.text(Lang::Zh, "联系电话"));
                    Given::Blank
                }
            },
        };
        let person_type = match g("person_type") {
            "" => None,
            s => coded::<PersonType>(s, &[])
                .map_err(|e| err("person_type", e))
                .ok(),
        };
        let residence = match g("residence") {
            "" => None,
            s => coded::<ResidenceStatus>(s, &[])
                .map_err(|e| err("residence", e))
                .ok(),
        };
        let status = match g("status") {
            "" => None,
            s => coded::<PersonStatus>(s, &[("正常", PersonStatus::Active)])
                .map_err(|e| err("status", e))
                .ok(),
        };
        let tags = match g("tags") {
            "" => Given::Blank,
            s if is_clear(s) => Given::Clear,
            s => {
                let mut v = Vec::new();
                for part in split_list(s) {
                    match coded::<Tag>(part, TAG_SYNONYMS) {
                        Ok(tag) => v.push(tag),
                        Err(e) => err("tags", e),
                    }
                }
                Given::Value(v)
            }
        };
        let key = match (household_id, g("household_no")) {
            (Some(id), _) => HKey::Id(id),
            (None, "") => HKey::Place(grid_code.clone(), h.house_number.clone(), h.address.clone()),
            (None, no) => HKey::No(grid_code.clone(), no.to_owned()),
        };
        let p = PersonRow {
            row,
            person_id,
            name,
            relation,
            sex,
            sex_given: !g("sex").is_empty(),
            birth,
            id_type,
            id_number,
            phone,
            person_type,
            residence,
            status,
            tags,
        };
        read.push((key, h, p));
    }

    drop(t); // the rows are read: free the text before planning the writes

    // What is stored in the villages the file touches.
    let mut ex = Existing::default();
    for (_, h, _) in &read {
        if GridCode::parse(&h.grid_code).is_ok() && grids.contains_key(&h.grid_code) {
            ex.load_area(db, &h.grid_code[..12])?;
        }
    }

    // Group rows into households, in the order they first appear.
    let mut order: Vec<HKey> = Vec::new();
    let mut groups: HashMap<HKey, Vec<usize>> = HashMap::new();
    for (i, (k, _, _)) in read.iter().enumerate() {
        groups
            .entry(k.clone())
            .or_insert_with(|| {
                order.push(k.clone());
                Vec::new()
            })
            .push(i);
    }

    // Check across rows and plan the writes.
    let mut seen_person: HashMap<Uuid, usize> = HashMap::new();
    let mut seen_id_number: HashMap<String, usize> = HashMap::new();
    let mut plans: Vec<Plan> = Vec::new();
    let name_of = |k: &'static str| cols.name(k);
    let mut planned_rows = 0;
    for key in &order {
        let idx = &groups[key];
        bar.checked(total / 5 + planned_rows * 4 / 5);
        planned_rows += idx.len();
        let (_, first, _) = &read[idx[0]];
        let first_row = read[idx[0]].2.row;
        // Household columns must agree across the household's rows.
        for &i in &idx[1..] {
            let (_, h, p) = &read[i];
            for (k, a, b) in [
                ("grid_code", &first.grid_code, &h.grid_code),
                ("address", &first.address, &h.address),
                ("house_number", &first.house_number, &h.house_number),
            ] {
                if a != b && !b.is_empty() {
                    errs.push(
                        p.row,
                        name_of(k),
                        format!(
                            "「{b}」与同一户第 {first_row} 行的「{a}」不一致，同一户各行须相同"
                        ),
                    );
                }
            }
        }
        let Some(&grid_id) = grids.get(&first.grid_code) else {
            continue; // already reported on each row
        };
        let grid_code = first.grid_code.clone();

        // The stored household: named, or the one a listed person already belongs to.
        let mut existing_hh: Option<Uuid> = None;
        if let Some(hid) = first.household_id {
            match ex.by_id(db, hid)? {
                Some(e) if e.kind == EntityKind::Household && ctx.scope.covers(&e.grid_code) => {
                    if e.grid_code != grid_code {
                        for &i in idx {
                            errs.push(
                                read[i].2.row,
                                name_of("grid_code"),
                                format!(
                                    "这一户（{hid}）在网格 {}，导入不会把住户移到别的网格：请改回该网格编码",
                                    e.grid_code
                                ),
                            );
                        }
                        continue;
                    }
                    existing_hh = Some(hid);
                }
                Some(_) => {
                    for &i in idx {
                        errs.push(
                            read[i].2.row,
                            name_of("household_id"),
                            format!("{hid} 不是你辖区内的住户，请核对户ID，新增的留空"),
                        );
                    }
                    continue;
                }
                None => {} // a new household with this id
            }
        }

        // Match each row to a stored person.
        let mut matched: Vec<Option<Uuid>> = Vec::with_capacity(idx.len());
        for &i in idx {
            let p = &read[i].2;
            let mut m = None;
            if let Some(pid) = p.person_id {
                match ex.by_id(db, pid)? {
                    Some(e) if e.kind == EntityKind::Person && ctx.scope.covers(&e.grid_code) => {
                        m = Some(pid)
                    }
                    Some(_) => errs.push(
                        p.row,
                        name_of("person_id"),
                        format!("{pid} 不是你辖区内的人员，请核对人员ID，新增的留空"),
                    ),
                    None => {}
                }
                if let Some(r) = seen_person.insert(pid, p.row) {
                    errs.push(
                        p.row,
                        name_of("person_id"),
                        format!("同一人已在第 {r} 行，请删去重复的一行"),
                    );
                }
            }
            if m.is_none()
                && p.person_id.is_none()
                && let Given::Value(n) = &p.id_number
                && let Some(&pid) = ex.by_id_number.get(n)
            {
                let e = &ex.entities[&pid];
                if ctx.scope.covers(&e.grid_code) {
                    m = Some(pid);
                } else {
                    errs.push(
                        p.row,
                        name_of("id_number"),
                        "这个证件号码属于你辖区外登记的人员，请与其所在辖区核实",
                    );
                }
            }
            matched.push(m);
        }
        if existing_hh.is_none() && first.household_id.is_none() {
            // The household of the head if the head is known, else of the first known member.
            let head = idx
                .iter()
                .zip(&matched)
                .find(|(i, _)| read[**i].2.relation == Some(Relation::Head))
                .and_then(|(_, m)| *m);
            existing_hh = head
                .or_else(|| matched.iter().flatten().next().copied())
                .and_then(|p| ex.entities.get(&p).and_then(|e| e.parent_id))
                .filter(|h| {
                    ex.entities.get(h).is_some_and(|e| {
                        e.grid_code == grid_code && e.kind == EntityKind::Household
                    })
                });
        }
        if existing_hh.is_none()
            && matches!(key, HKey::Place(..))
            && let Some(house) = ex.houses_by_place.get(&(
                grid_code.clone(),
                first.house_number.clone(),
                first.address.clone(),
            ))
            && let Some([one]) = ex.households_by_house.get(house).map(Vec::as_slice)
        {
            // The one household already living at this house number and address.
            existing_hh = Some(*one);
        }
        let hh_id = existing_hh.or(first.household_id).unwrap_or_else(new_id);
        // People without a key: by name among the stored household's members.
        if let Some(h) = existing_hh {
            let members = ex.members.get(&h).cloned().unwrap_or_default();
            for (k, &i) in idx.iter().enumerate() {
                let p = &read[i].2;
                if matched[k].is_none()
                    && p.person_id.is_none()
                    && !matches!(p.id_number, Given::Value(_))
                {
                    matched[k] = members.iter().copied().find(|m| {
                        !matched.contains(&Some(*m))
                            && ex.entities[m].name.as_deref() == Some(p.name.as_str())
                    });
                }
            }
        }

        // The house.
        let old_hh: Option<Household> = match existing_hh {
            Some(h) => Some(ex.entities[&h].parse()?),
            None => None,
        };
        let mut writes = Vec::new();
        let house_id = match old_hh.as_ref().and_then(|h| h.house_id) {
            Some(id) if ex.entities.contains_key(&id) => Some(id),
            _ if first.house_number.is_empty() => None,
            _ => Some(
                ex.houses_by_place
                    .get(&(
                        grid_code.clone(),
                        first.house_number.clone(),
                        first.address.clone(),
                    ))
                    .copied()
                    .unwrap_or_else(new_id),
            ),
        };
        let mut house_bad = false;
        if let Some(id) = house_id {
            let mut house = match ex.entities.get(&id) {
                Some(e) => e.parse::<House>()?,
                None => House {
                    id,
                    grid_id,
                    number: String::new(),
                    address: String::new(),
                    use_: HouseUse::OwnerOccupied,
                    location: None,
                },
            };
            if !first.house_number.is_empty() {
                house.number = first.house_number.clone();
            }
            if !first.address.is_empty() {
                house.address = first.address.clone();
            }
            if let Some(u) = first.house_use {
                house.use_ = u;
            }
            house.location = same_place(first.location, house.location);
            if let Err(e) = house.validate() {
                house_bad = true;
                for f in e.errors {
                    let k = match f.field.as_str() {
                        "number" => "house_number",
                        "address" => "address",
                        _ => "lon",
                    };
                    errs.push(first_row, name_of(k), zh_reason(&f));
                }
            }
            writes.push(Write {
                row: None,
                kind: EntityKind::House,
                id,
                grid_id,
                grid_code: grid_code.clone(),
                parent_id: None,
                data: Payload::House(house),
            });
        }

        // The people.
        let mut head: Option<(Uuid, usize)> = None;
        let mut good_rows = Vec::new();
        let mut person_writes = Vec::new();
        for (k, &i) in idx.iter().enumerate() {
            let p = &read[i].2;
            let mut bad = errs.errors.iter().any(|e| e.row == p.row);
            let id_col = name_of("id_number");
            let id_bad = errs
                .errors
                .iter()
                .any(|e| e.row == p.row && e.field == id_col);
            let pid = matched[k].or(p.person_id).unwrap_or_else(new_id);
            let old: Option<Person> = match matched[k] {
                Some(m) => Some(ex.entities[&m].parse()?),
                None => None,
            };
            let mut row_err = |k: &'static str, reason: String| {
                bad = true;
                errs.push(p.row, name_of(k), reason);
            };
            if p.name.is_empty() {
                row_err("name", "须填写姓名".into());
            }
            let id_type = p
                .id_type
                .or(old.as_ref().map(|o| o.id_type))
                .unwrap_or(IdType::ResidentCard);
            let id_number = match &p.id_number {
                Given::Blank => old.as_ref().and_then(|o| o.id_number.clone()),
                Given::Clear => None,
                Given::Value(v) => Some(v.clone()),
                Given::Masked(m) => match old.as_ref().and_then(|o| o.id_number.clone()) {
                    Some(stored) if mask_id(&stored) == *m => Some(stored),
                    _ => {
                        row_err(
                            "id_number",
                            format!(
                                "「{m}」是打码的号码，与已存的不符：请填写完整号码，或留空保持不变"
                            ),
                        );
                        None
                    }
                },
            };
            // What the ID number says about birth date and sex.
            let mut id_error = None;
            let parsed = match (&id_number, id_type) {
                (Some(n), IdType::ResidentCard) => IdNumber::parse(n, today)
                    .map_err(|e| id_error = Some(e))
                    .ok(),
                _ => None,
            };
            if let Some(parsed) = &parsed
                && let Some(r) = seen_id_number.insert(parsed.as_str().to_owned(), p.row)
            {
                row_err("id_number", format!("同一证件号码已在第 {r} 行，请核对"));
            }
            let sex = p
                .sex
                .or(parsed.as_ref().map(|n| n.sex()))
                .or(old.as_ref().map(|o| o.sex))
                .or(match p.relation {
                    Some(Relation::Son) => Some(Sex::Male),
                    Some(Relation::Daughter) => Some(Sex::Female),
                    _ => None,
                });
            let Some(sex) = sex else {
                // The real reason first: a number that is no ID number, not the sex it
                // would have given.
                if let Some(e) = id_error {
                    row_err("id_number", e.explain(Lang::Zh));
                } else if !id_bad && !p.sex_given {
                    row_err("sex", "没有身份证号时须填写性别".into());
                }
                continue;
            };
            if let (Some(s), Some(n)) = (p.sex, &parsed)
                && s != n.sex()
            {
                row_err(
                    "sex",
                    format!(
                        "性别「{}」与身份证号显示的「{}」不一致，请核对",
                        s.zh(),
                        n.sex().zh()
                    ),
                );
            }
            let phone = match &p.phone {
                Given::Blank => old.as_ref().and_then(|o| o.phone.clone()),
                Given::Clear => None,
                Given::Value(v) => Some(v.clone()),
                Given::Masked(m) => match old.as_ref().and_then(|o| o.phone.clone()) {
                    Some(stored) if mask_phone(&stored) == *m => Some(stored),
                    _ => {
                        row_err(
                            "phone",
                            format!(
                                "「{m}」是打码的号码，与已存的不符：请填写完整号码，或留空保持不变"
                            ),
                        );
                        None
                    }
                },
            };
            let Some(relation) = p.relation else {
                continue; // reported when read
            };
            let person = Person {
                id: pid,
                household_id: hh_id,
                name: p.name.clone(),
                sex,
                birth_date: p
                    .birth
                    .or(parsed.as_ref().map(|n| n.birth_date()))
                    .or(old.as_ref().and_then(|o| o.birth_date)),
                id_type,
                id_number: parsed.as_ref().map(|n| n.as_str().to_owned()).or(id_number),
                phone,
                person_type: p
                    .person_type
                    .or(old.as_ref().map(|o| o.person_type))
                    .unwrap_or(PersonType::Household),
                residence: p
                    .residence
                    .or(old.as_ref().map(|o| o.residence))
                    .unwrap_or(ResidenceStatus::Both),
                status: p
                    .status
                    .or(old.as_ref().map(|o| o.status))
                    .unwrap_or(PersonStatus::Active),
                relation,
                tags: match &p.tags {
                    Given::Blank | Given::Masked(_) => {
                        old.as_ref().map(|o| o.tags.clone()).unwrap_or_default()
                    }
                    Given::Clear => Vec::new(),
                    Given::Value(v) => v.clone(),
                },
            };
            if let Err(e) = person.validate(today) {
                report_person(&mut row_err, e);
            }
            if relation == Relation::Head {
                if let Some((_, r)) = head {
                    row_err(
                        "relation",
                        format!("本户户主已在第 {r} 行，一户只有一位户主"),
                    );
                } else if !bad {
                    head = Some((pid, p.row));
                }
            }
            if bad {
                continue;
            }
            good_rows.push(p.row);
            person_writes.push(Write {
                row: Some(p.row),
                kind: EntityKind::Person,
                id: pid,
                grid_id,
                grid_code: grid_code.clone(),
                parent_id: Some(hh_id),
                data: Payload::Person(person),
            });
        }

        // The household.
        let household = Household {
            id: hh_id,
            grid_id,
            house_id: house_id.or(old_hh.as_ref().and_then(|h| h.house_id)),
            head_id: head
                .map(|h| h.0)
                .or(old_hh.as_ref().and_then(|h| h.head_id)),
            address: if first.address.is_empty() {
                old_hh
                    .as_ref()
                    .map(|h| h.address.clone())
                    .unwrap_or_default()
            } else {
                first.address.clone()
            },
            location: same_place(first.location, old_hh.as_ref().and_then(|h| h.location)),
        };
        let mut hh_bad = house_bad;
        if let Err(e) = household.validate() {
            hh_bad = true;
            for f in e.errors {
                let k = if f.field == "address" {
                    "address"
                } else {
                    "lon"
                };
                errs.push(first_row, name_of(k), zh_reason(&f));
            }
        }
        if hh_bad || good_rows.is_empty() {
            continue;
        }
        writes.push(Write {
            row: None,
            kind: EntityKind::Household,
            id: hh_id,
            grid_id,
            grid_code: grid_code.clone(),
            parent_id: None,
            data: Payload::Household(household),
        });
        writes.extend(person_writes);
        plans.push(Plan {
            rows: good_rows,
            writes,
        });
    }

    let mut report = ImportReport {
        rows: total,
        ..Default::default()
    };
    errs.errors.sort_by_key(|e| e.row);
    errs.errors.dedup();
    let bad_rows: std::collections::BTreeSet<usize> = errs.errors.iter().map(|e| e.row).collect();
    report.errors = errs.errors;
    if !report.errors.is_empty() && ctx.mode == Mode::AllOrNothing {
        report.skipped = total;
        bar.done();
        return Ok(report);
    }

    // Write.
    let mut done = 0;
    let mut seqs = Seqs::new(plans.iter().map(|p| p.writes.len()).sum());
    for plan in plans {
        let rows: Vec<usize> = plan
            .rows
            .iter()
            .copied()
            .filter(|r| !bad_rows.contains(r))
            .collect();
        if rows.is_empty() {
            continue;
        }
        let writes: Vec<&Write> = plan
            .writes
            .iter()
            .filter(|w| w.row.is_none_or(|r| !bad_rows.contains(&r)))
            .collect();
        let olds: Vec<Option<Entity>> = writes
            .iter()
            .map(|w| ex.entities.get(&w.id).map(|s| s.entity(w.id)).transpose())
            .collect::<Result<_, _>>()?;
        let items: Vec<(&Write, Option<&Entity>)> = writes
            .iter()
            .zip(&olds)
            .map(|(w, o)| (*w, o.as_ref()))
            .collect();
        let (c, u) = write_entities(db, ctx, &mut seqs, &items)?;
        report.created += c;
        report.updated += u;
        report.imported += rows.len();
        done += rows.len();
        if c + u > 0
            && let Some(hh) = writes.iter().find(|w| w.kind == EntityKind::Household)
        {
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
                    rows.iter()
                        .map(|r| r.to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                )),
            )?;
        }
        bar.written(done);
    }
    report.skipped = total - report.imported;
    bar.done();
    Ok(report)
}

/// The given point, except that the stored one (with its GPS accuracy) stays when the file
/// gives the same coordinates, as an export does.
fn same_place(given: Option<GeoPoint>, stored: Option<GeoPoint>) -> Option<GeoPoint> {
    match (given, stored) {
        (Some(g), Some(s)) if g.lon == s.lon && g.lat == s.lat => Some(s),
        (Some(g), _) => Some(g),
        (None, s) => s,
    }
}

fn report_person(err: &mut dyn FnMut(&'static str, String), e: ValidationErrors) {
    for f in e.errors {
        let k = match f.field.as_str() {
            "name" => "name",
            "birth_date" => "birth_date",
            "id_number" => "id_number",
            "phone" => "phone",
            "tags" => "tags",
            _ => "name",
        };
        err(k, zh_reason(&f));
    }
}

/// A domain check's reason in Chinese, naming the field as the template does.
fn zh_reason(f: &crate::domain::validate::FieldError) -> String {
    f.problem.text(Lang::Zh, &field_label(&f.field, Lang::Zh))
}
