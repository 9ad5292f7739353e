//! Planning one household of a households file: its rows checked against each other and
//! matched to what is stored (household, people, house), and the entities to write.

use std::collections::HashMap;

use chrono::NaiveDate;
use uuid::Uuid;

use super::stored::Existing;
use super::{Given, HKey, HouseholdCols, PersonRow, Read, zh_reason};
use crate::domain::codes::{
    Coded, HouseUse, IdType, Lang, PersonStatus, PersonType, Relation, ResidenceStatus, Sex, Tag,
};
use crate::domain::geo::GeoPoint;
use crate::domain::labels::Explain;
use crate::domain::model::{EntityKind, House, Household, Person, new_id};
use crate::domain::validate::{IdNumber, ValidationErrors, mask_id, mask_phone};
use crate::server::data::pipeline::{Payload, Planned, Write};
use crate::server::data::table::{Columns, RowErrors};
use crate::server::data::{Ctx, DataError};
use crate::server::db::Sql;

/// What planning needs across the households of one file.
pub(super) struct Planner<'a> {
    pub ctx: &'a Ctx<'a>,
    pub cols: &'a Columns,
    pub today: NaiveDate,
    pub grids: &'a HashMap<String, Uuid>,
    pub read: &'a [Read],
    pub ex: &'a mut Existing,
    /// Where each person id and ID number was first seen (a second row is a duplicate).
    pub seen_person: HashMap<Uuid, usize>,
    pub seen_id_number: HashMap<String, usize>,
}

/// One household's rows as planning sees them.
struct Group<'r> {
    key: &'r HKey,
    idx: &'r [usize],
    first: &'r HouseholdCols,
    first_row: usize,
    grid_id: Uuid,
}

impl Planner<'_> {
    fn name(&self, k: &'static str) -> String {
        self.cols.name(k)
    }

    fn person(&self, i: usize) -> &PersonRow {
        &self.read[i].2
    }

    /// Plans the household of rows `idx` (read under `key`): `None` when nothing of it can be
    /// written (the reasons are in `errs`).
    pub fn household(
        &mut self,
        db: &mut dyn Sql,
        key: &HKey,
        idx: &[usize],
        errs: &mut RowErrors,
    ) -> Result<Option<Planned<Vec<Write>>>, DataError> {
        let read = self.read;
        let first = &read[idx[0]].1;
        let first_row = read[idx[0]].2.row;
        self.check_agreement(first, first_row, idx, errs);
        let Some(&grid_id) = self.grids.get(&first.grid_code) else {
            return Ok(None); // already reported on each row
        };
        let g = Group {
            key,
            idx,
            first,
            first_row,
            grid_id,
        };
        let Some(named) = self.named_household(db, &g, errs)? else {
            return Ok(None);
        };
        let mut matched = self.match_people(db, idx, errs)?;
        let existing_hh = named.or_else(|| self.household_of_known(&g, &matched));
        let hh_id = existing_hh.or(first.household_id).unwrap_or_else(new_id);
        if let Some(h) = existing_hh {
            self.match_by_name(h, idx, &mut matched);
        }
        let old_hh: Option<Household> = match existing_hh {
            Some(h) => Some(self.ex.entities[&h].parse()?),
            None => None,
        };
        let mut writes = Vec::new();
        let (house_id, house_bad) = self.house(&g, old_hh.as_ref(), &mut writes, errs)?;

        let mut head: Option<(Uuid, usize)> = None;
        let mut good_rows = Vec::new();
        let mut person_writes = Vec::new();
        for (k, &i) in idx.iter().enumerate() {
            if let Some(w) = self.plan_person(&g, i, matched[k], hh_id, &mut head, errs)? {
                good_rows.push(self.person(i).row);
                person_writes.push(w);
            }
        }

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
                errs.push(first_row, self.name(k), zh_reason(&f));
            }
        }
        if hh_bad || good_rows.is_empty() {
            return Ok(None);
        }
        writes.push(Write {
            row: None,
            kind: EntityKind::Household,
            id: hh_id,
            grid_id,
            grid_code: first.grid_code.clone(),
            parent_id: None,
            data: Payload::Household(household),
        });
        writes.extend(person_writes);
        Ok(Some(Planned {
            rows: good_rows,
            unit: writes,
        }))
    }

    /// Household columns must agree across the household's rows.
    fn check_agreement(
        &self,
        first: &HouseholdCols,
        first_row: usize,
        idx: &[usize],
        errs: &mut RowErrors,
    ) {
        for &i in &idx[1..] {
            let (_, h, p) = &self.read[i];
            for (k, a, b) in [
                ("grid_code", &first.grid_code, &h.grid_code),
                ("address", &first.address, &h.address),
                ("house_number", &first.house_number, &h.house_number),
            ] {
                if a != b && !b.is_empty() {
                    errs.push(
                        p.row,
                        self.name(k),
                        format!(
                            "「{b}」与同一户第 {first_row} 行的「{a}」不一致，同一户各行须相同"
                        ),
                    );
                }
            }
        }
    }

    /// The stored household the rows name by id: `Some(None)` when none is named or the id is
    /// a new household's, `None` when the id cannot be used (reported on every row).
    fn named_household(
        &mut self,
        db: &mut dyn Sql,
        g: &Group<'_>,
        errs: &mut RowErrors,
    ) -> Result<Option<Option<Uuid>>, DataError> {
        let Some(hid) = g.first.household_id else {
            return Ok(Some(None));
        };
        let (key, why) = match self.ex.by_id(db, hid)? {
            Some(e) if e.kind == EntityKind::Household && self.ctx.scope.covers(&e.grid_code) => {
                if e.grid_code == g.first.grid_code {
                    return Ok(Some(Some(hid)));
                }
                (
                    "grid_code",
                    format!(
                        "这一户（{hid}）在网格 {}，导入不会把住户移到别的网格：请改回该网格编码",
                        e.grid_code
                    ),
                )
            }
            Some(_) => (
                "household_id",
                format!("{hid} 不是你辖区内的住户，请核对户ID，新增的留空"),
            ),
            None => return Ok(Some(None)), // a new household with this id
        };
        for &i in g.idx {
            errs.push(self.person(i).row, self.name(key), why.clone());
        }
        Ok(None)
    }

    /// Each row's stored person, by person id or else by ID number.
    fn match_people(
        &mut self,
        db: &mut dyn Sql,
        idx: &[usize],
        errs: &mut RowErrors,
    ) -> Result<Vec<Option<Uuid>>, DataError> {
        let mut matched: Vec<Option<Uuid>> = Vec::with_capacity(idx.len());
        for &i in idx {
            let p = &self.read[i].2;
            let mut m = None;
            if let Some(pid) = p.person_id {
                match self.ex.by_id(db, pid)? {
                    Some(e)
                        if e.kind == EntityKind::Person && self.ctx.scope.covers(&e.grid_code) =>
                    {
                        m = Some(pid)
                    }
                    Some(_) => errs.push(
                        p.row,
                        self.name("person_id"),
                        format!("{pid} 不是你辖区内的人员，请核对人员ID，新增的留空"),
                    ),
                    None => {}
                }
                if let Some(r) = self.seen_person.insert(pid, p.row) {
                    errs.push(
                        p.row,
                        self.name("person_id"),
                        format!("同一人已在第 {r} 行，请删去重复的一行"),
                    );
                }
            }
            if m.is_none()
                && p.person_id.is_none()
                && let Given::Value(n) = &p.id_number
                && let Some(&pid) = self.ex.by_id_number.get(n)
            {
                let e = &self.ex.entities[&pid];
                if self.ctx.scope.covers(&e.grid_code) {
                    m = Some(pid);
                } else {
                    errs.push(
                        p.row,
                        self.name("id_number"),
                        "这个证件号码属于你辖区外登记的人员，请与其所在辖区核实",
                    );
                }
            }
            matched.push(m);
        }
        Ok(matched)
    }

    /// With no household named: the household of the head if the head is known, else of the
    /// first known member; else the one household already living at the same house number
    /// and address.
    fn household_of_known(&self, g: &Group<'_>, matched: &[Option<Uuid>]) -> Option<Uuid> {
        if g.first.household_id.is_some() {
            return None;
        }
        let grid_code = &g.first.grid_code;
        let head = g
            .idx
            .iter()
            .zip(matched)
            .find(|(i, _)| self.person(**i).relation == Some(Relation::Head))
            .and_then(|(_, m)| *m);
        let of_member =
            head.or_else(|| matched.iter().flatten().next().copied())
                .and_then(|p| self.ex.entities.get(&p).and_then(|e| e.parent_id))
                .filter(|h| {
                    self.ex.entities.get(h).is_some_and(|e| {
                        e.grid_code == *grid_code && e.kind == EntityKind::Household
                    })
                });
        if of_member.is_some() || !matches!(g.key, HKey::Place(..)) {
            return of_member;
        }
        let house = self.ex.houses_by_place.get(&(
            grid_code.clone(),
            g.first.house_number.clone(),
            g.first.address.clone(),
        ))?;
        match self.ex.households_by_house.get(house).map(Vec::as_slice) {
            Some([one]) => Some(*one),
            _ => None,
        }
    }

    /// People without a key: by name among the stored household's members.
    fn match_by_name(&self, household: Uuid, idx: &[usize], matched: &mut [Option<Uuid>]) {
        let members = self.ex.members.get(&household).cloned().unwrap_or_default();
        for (k, &i) in idx.iter().enumerate() {
            let p = self.person(i);
            if matched[k].is_none()
                && p.person_id.is_none()
                && !matches!(p.id_number, Given::Value(_))
            {
                matched[k] = members.iter().copied().find(|m| {
                    !matched.contains(&Some(*m))
                        && self.ex.entities[m].name.as_deref() == Some(p.name.as_str())
                });
            }
        }
    }

    /// The house, when the household has one or the rows give a house number; pushed to
    /// `writes`. Returns its id and whether it failed its checks.
    fn house(
        &self,
        g: &Group<'_>,
        old_hh: Option<&Household>,
        writes: &mut Vec<Write>,
        errs: &mut RowErrors,
    ) -> Result<(Option<Uuid>, bool), DataError> {
        let first = g.first;
        let place = || {
            (
                first.grid_code.clone(),
                first.house_number.clone(),
                first.address.clone(),
            )
        };
        let house_id = match old_hh.and_then(|h| h.house_id) {
            Some(id) if self.ex.entities.contains_key(&id) => Some(id),
            _ if first.house_number.is_empty() => None,
            _ => Some(
                self.ex
                    .houses_by_place
                    .get(&place())
                    .copied()
                    .unwrap_or_else(new_id),
            ),
        };
        let Some(id) = house_id else {
            return Ok((None, false));
        };
        let mut house = match self.ex.entities.get(&id) {
            Some(e) => e.parse::<House>()?,
            None => House {
                id,
                grid_id: g.grid_id,
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
        let mut bad = false;
        if let Err(e) = house.validate() {
            bad = true;
            for f in e.errors {
                let k = match f.field.as_str() {
                    "number" => "house_number",
                    "address" => "address",
                    _ => "lon",
                };
                errs.push(g.first_row, self.name(k), zh_reason(&f));
            }
        }
        writes.push(Write {
            row: None,
            kind: EntityKind::House,
            id,
            grid_id: g.grid_id,
            grid_code: first.grid_code.clone(),
            parent_id: None,
            data: Payload::House(house),
        });
        Ok((house_id, bad))
    }

    /// One person row: the person to write, or `None` when the row has an error (reported).
    /// The first good head of the household is kept in `head`.
    fn plan_person(
        &mut self,
        g: &Group<'_>,
        i: usize,
        matched: Option<Uuid>,
        hh_id: Uuid,
        head: &mut Option<(Uuid, usize)>,
        errs: &mut RowErrors,
    ) -> Result<Option<Write>, DataError> {
        let read = self.read;
        let p = &read[i].2;
        let id_col = self.name("id_number");
        let mut bad = errs.errors.iter().any(|e| e.row == p.row);
        let id_bad = errs
            .errors
            .iter()
            .any(|e| e.row == p.row && e.field == id_col);
        let pid = matched.or(p.person_id).unwrap_or_else(new_id);
        let old: Option<Person> = match matched {
            Some(m) => Some(self.ex.entities[&m].parse()?),
            None => None,
        };
        let cols = self.cols;
        let mut row_err = |k: &'static str, reason: String| {
            bad = true;
            errs.push(p.row, cols.name(k), reason);
        };
        if p.name.is_empty() {
            row_err("name", "须填写姓名".into());
        }
        let id_type = p
            .id_type
            .or(old.as_ref().map(|o| o.id_type))
            .unwrap_or(IdType::ResidentCard);
        let id_number = kept_or_given(
            &p.id_number,
            old.as_ref().and_then(|o| o.id_number.clone()),
            mask_id,
        )
        .unwrap_or_else(|m| {
            row_err("id_number", masked_mismatch(&m));
            None
        });
        // What the ID number says about birth date and sex.
        let mut id_error = None;
        let parsed = match (&id_number, id_type) {
            (Some(n), IdType::ResidentCard) => IdNumber::parse(n, self.today)
                .map_err(|e| id_error = Some(e))
                .ok(),
            _ => None,
        };
        if let Some(parsed) = &parsed
            && let Some(r) = self
                .seen_id_number
                .insert(parsed.as_str().to_owned(), p.row)
        {
            row_err("id_number", format!("同一证件号码已在第 {r} 行，请核对"));
        }
        let Some(sex) = sex_of(p, parsed.as_ref(), old.as_ref()) else {
            // The real reason first: a number that is no ID number, not the sex it would
            // have given.
            if let Some(e) = id_error {
                row_err("id_number", e.explain(Lang::Zh));
            } else if !id_bad && !p.sex_given {
                row_err("sex", "没有身份证号时须填写性别".into());
            }
            return Ok(None);
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
        let phone = kept_or_given(
            &p.phone,
            old.as_ref().and_then(|o| o.phone.clone()),
            mask_phone,
        )
        .unwrap_or_else(|m| {
            row_err("phone", masked_mismatch(&m));
            None
        });
        let Some(relation) = p.relation else {
            return Ok(None); // reported when read
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
            tags: tags_of(&p.tags, old.as_ref()),
            status_on: old.as_ref().and_then(|o| o.status_on),
            origin: old.as_ref().and_then(|o| o.origin.clone()),
        };
        if let Err(e) = person.validate(self.today) {
            report_person(&mut row_err, e);
        }
        if relation == Relation::Head {
            if let Some((_, r)) = head {
                row_err(
                    "relation",
                    format!("本户户主已在第 {r} 行，一户只有一位户主"),
                );
            } else if !bad {
                *head = Some((pid, p.row));
            }
        }
        if bad {
            return Ok(None);
        }
        Ok(Some(Write {
            row: Some(p.row),
            kind: EntityKind::Person,
            id: pid,
            grid_id: g.grid_id,
            grid_code: g.first.grid_code.clone(),
            parent_id: Some(hh_id),
            data: Payload::Person(person),
        }))
    }
}

/// The person's sex: the row's, else the ID number's, else the stored one, else what the
/// relation says (son, daughter).
fn sex_of(p: &PersonRow, parsed: Option<&IdNumber>, old: Option<&Person>) -> Option<Sex> {
    p.sex
        .or(parsed.map(|n| n.sex()))
        .or(old.map(|o| o.sex))
        .or(match p.relation {
            Some(Relation::Son) => Some(Sex::Male),
            Some(Relation::Daughter) => Some(Sex::Female),
            _ => None,
        })
}

fn tags_of(given: &Given<Vec<Tag>>, old: Option<&Person>) -> Vec<Tag> {
    match given {
        Given::Blank | Given::Masked(_) => old.map(|o| o.tags.clone()).unwrap_or_default(),
        Given::Clear => Vec::new(),
        Given::Value(v) => v.clone(),
    }
}

/// An optional value as the cell gives it over the stored one: blank keeps it, 无 clears it,
/// a masked value stands for the stored one it masks (`Err` with the cell when it does not).
fn kept_or_given(
    given: &Given<String>,
    stored: Option<String>,
    mask: fn(&str) -> String,
) -> Result<Option<String>, String> {
    match given {
        Given::Blank => Ok(stored),
        Given::Clear => Ok(None),
        Given::Value(v) => Ok(Some(v.clone())),
        Given::Masked(m) => match stored {
            Some(s) if mask(&s) == *m => Ok(Some(s)),
            _ => Err(m.clone()),
        },
    }
}

fn masked_mismatch(m: &str) -> String {
    format!("「{m}」是打码的号码，与已存的不符：请填写完整号码，或留空保持不变")
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
