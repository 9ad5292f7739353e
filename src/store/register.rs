//! The household register kept on the phone: adding a member, a newborn, a floating person
//! or a new household with its head, marking someone moved out or deceased, and changing a
//! phone or tags. Each write is checked as its form asks, refuses a person already in the
//! household, and goes to the outbox as a create or as the fields it changed.

use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use uuid::Uuid;

use super::drafts::{Filed, draft_key};
use super::outbox::{all_fields, append};
use super::people::{Cadence, household, person, refresh_summary, write_household, write_person};
use super::records::{RecordSummary, summary_from_row};
use super::{Result, Store, StoreError};
use crate::domain::codes::{PersonStatus, PersonType, Relation, Tag};
use crate::domain::model::{EntityKind, Household, Person, Registration};
use crate::domain::validate::{Problem, ValidationErrors};
use crate::wire::Op;

/// The member of household `household` (other than `except`) that `p` would repeat: the same
/// ID number, or the same name and birth date. Refused on the field that matched.
fn duplicate_in(conn: &Connection, household: Uuid, p: &Person) -> Result<()> {
    if let Some(n) = p.id_number.as_deref().map(|n| n.trim().to_uppercase())
        && !n.is_empty()
    {
        let name: Option<String> = conn
            .prepare_cached(
                "SELECT name FROM people WHERE household_id = ?1 AND id <> ?2
                   AND upper(id_number) = ?3 AND status <> 'MERGED'",
            )?
            .query_row(params![household.to_string(), p.id.to_string(), n], |r| {
                r.get(0)
            })
            .optional()?;
        if let Some(name) = name {
            return Err(
                ValidationErrors::single("id_number", Problem::DuplicatePerson { name }).into(),
            );
        }
    }
    if let Some(b) = p.birth_date {
        let name: Option<String> = conn
            .prepare_cached(
                "SELECT name FROM people WHERE household_id = ?1 AND id <> ?2
                   AND name = ?3 AND birth_date = ?4 AND status <> 'MERGED'",
            )?
            .query_row(
                params![
                    household.to_string(),
                    p.id.to_string(),
                    p.name.trim(),
                    b.to_string()
                ],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(name) = name {
            return Err(ValidationErrors::single("name", Problem::DuplicatePerson { name }).into());
        }
    }
    Ok(())
}

fn exists(conn: &Connection, table: &str, id: Uuid) -> Result<bool> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT EXISTS (SELECT 1 FROM {table} WHERE id = ?1)"
        ))?
        .query_row([id.to_string()], |r| r.get(0))?)
}

/// Forgets the draft of `form` (inside the write that filed it).
fn forget_draft(conn: &Connection, form: Option<&str>) -> Result<()> {
    if let Some(form) = form {
        super::set_meta(conn, &draft_key(form), "null")?;
    }
    Ok(())
}

/// A person of the household as the edit of an active member finds them; someone moved out
/// or deceased is refused on `field`.
fn active(conn: &Connection, id: Uuid, field: &str) -> Result<Person> {
    let p = person(conn, id)?;
    if p.status != PersonStatus::Active {
        return Err(
            ValidationErrors::single(field, Problem::NotActiveMember { status: p.status }).into(),
        );
    }
    Ok(p)
}

impl Store {
    /// Adds `p` to their household's register, checked as `how` says; refuses someone
    /// already in the household. With `form`, the form's draft is forgotten in the same
    /// transaction, and a person with this id already added (a second tap) is not added again.
    pub fn register_person(
        &mut self,
        form: Option<&str>,
        p: &Person,
        how: Registration,
        now: DateTime<Utc>,
    ) -> Result<Filed> {
        let today = crate::domain::cst::today(now);
        let mut p = p.clone();
        p.name = p.name.trim().to_owned();
        p.status = PersonStatus::Active;
        p.status_on = None;
        p.check_registration(how, today)?;
        self.tx(|tx| {
            if exists(tx, "people", p.id)? {
                return Ok(Filed::Already);
            }
            household(tx, p.household_id)?;
            duplicate_in(tx, p.household_id, &p)?;
            write_person(tx, &p, 0, true)?;
            refresh_summary(tx, &Cadence::load(tx)?, &p.household_id.to_string())?;
            append(
                tx,
                EntityKind::Person,
                p.id,
                Op::Create,
                all_fields(&p)?,
                0,
                now,
            )?;
            forget_draft(tx, form)?;
            Ok(Filed::New { photos: 0 })
        })
    }

    /// Opens a new household with `head` (relation 户主) as its first member: in the house of
    /// `h.house_id` (同址分户; the household takes the house's grid), or with no house in
    /// `h.grid_id`, which must be one of this device's grids (新立户). The head needs an ID
    /// number and a phone, and a floating head (流动人口) where they are registered (户籍地).
    /// One transaction, two creates (the household first, so the county has it when the head
    /// arrives); a household with this id already filed (a second tap) is not filed again.
    pub fn register_household(
        &mut self,
        form: Option<&str>,
        h: &Household,
        head: &Person,
        now: DateTime<Utc>,
    ) -> Result<Filed> {
        let today = crate::domain::cst::today(now);
        let mut h = h.clone();
        h.address = h.address.trim().to_owned();
        h.head_id = Some(head.id);
        let mut head = head.clone();
        head.name = head.name.trim().to_owned();
        head.household_id = h.id;
        head.relation = Relation::Head;
        head.status = PersonStatus::Active;
        head.status_on = None;
        // Both checks at once, so every field at fault shows its message.
        let mut errors: Vec<_> = [
            h.validate(),
            head.check_registration(Registration::Head, today),
        ]
        .into_iter()
        .filter_map(|r| r.err())
        .flat_map(|e| e.errors)
        .collect();
        let mut missing = |field: &str, value: Option<&str>| {
            if value.is_none_or(|v| v.trim().is_empty()) && !errors.iter().any(|e| e.field == field)
            {
                errors.extend(ValidationErrors::single(field, Problem::Required).errors);
            }
        };
        missing("phone", head.phone.as_deref());
        if head.person_type == PersonType::Floating {
            missing("origin", head.origin.as_deref());
        }
        if !errors.is_empty() {
            return Err(ValidationErrors { errors }.into());
        }
        self.tx(|tx| {
            if exists(tx, "households", h.id)? {
                return Ok(Filed::Already);
            }
            match h.house_id {
                Some(house) => {
                    let grid: Option<String> = tx
                        .prepare_cached("SELECT grid_id FROM houses WHERE id = ?1")?
                        .query_row([house.to_string()], |r| r.get(0))
                        .optional()?;
                    let grid = grid.ok_or_else(|| StoreError::NotFound {
                        kind: "house",
                        id: house.to_string(),
                    })?;
                    h.grid_id = super::uuid(&grid)?;
                }
                None if exists(tx, "grids", h.grid_id)? => {}
                None => {
                    return Err(ValidationErrors::single("grid_id", Problem::NotChosen).into());
                }
            }
            write_household(tx, &h, 0)?;
            write_person(tx, &head, 0, true)?;
            refresh_summary(tx, &Cadence::load(tx)?, &h.id.to_string())?;
            append(
                tx,
                EntityKind::Household,
                h.id,
                Op::Create,
                all_fields(&h)?,
                0,
                now,
            )?;
            append(
                tx,
                EntityKind::Person,
                head.id,
                Op::Create,
                all_fields(&head)?,
                0,
                now,
            )?;
            forget_draft(tx, form)?;
            Ok(Filed::New { photos: 0 })
        })
    }

    /// Marks a member moved out (迁出) or deceased (死亡) on `on`: they stay listed, and stop
    /// counting for the household's members, tags and when it is due.
    pub fn mark_person(
        &mut self,
        id: Uuid,
        status: PersonStatus,
        on: NaiveDate,
        now: DateTime<Utc>,
    ) -> Result<Person> {
        if !matches!(status, PersonStatus::MovedOut | PersonStatus::Deceased) {
            return Err(ValidationErrors::single("status", Problem::StatusByEdit).into());
        }
        let today = crate::domain::cst::today(now);
        if on > today {
            return Err(ValidationErrors::single(
                "status_on",
                Problem::FutureDate { value: on, today },
            )
            .into());
        }
        active(&self.conn, id, "status")?;
        self.update_person(
            id,
            |p| {
                p.status = status;
                p.status_on = Some(on);
            },
            now,
        )
    }

    /// Changes an active member's phone (`None` clears it).
    pub fn set_phone(
        &mut self,
        id: Uuid,
        phone: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<Person> {
        active(&self.conn, id, "phone")?;
        let phone = phone.map(|p| p.trim().to_owned()).filter(|p| !p.is_empty());
        self.update_person(id, |p| p.phone = phone, now)
    }

    /// Sets an active member's tags (care and managed) to `tags`.
    pub fn set_tags(&mut self, id: Uuid, tags: Vec<Tag>, now: DateTime<Utc>) -> Result<Person> {
        active(&self.conn, id, "tags")?;
        self.update_person(id, |p| p.tags = tags, now)
    }
}

impl Store {
    /// A household's records, newest first: those reported from its page, and disputes
    /// whose parties name one of its people.
    pub fn household_records(&self, household: Uuid) -> Result<Vec<RecordSummary>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT * FROM records WHERE household_id = ?1
             UNION
             SELECT * FROM records WHERE kind = 'DISPUTE' AND EXISTS (
               SELECT 1 FROM json_each(records.data, '$.parties') p
               JOIN people ON people.id = json_extract(p.value, '$.person_id')
               WHERE people.household_id = ?1)
             ORDER BY created_at DESC, id DESC",
        )?;
        let rows = stmt.query_map([household.to_string()], |r| Ok(summary_from_row(r)))?;
        rows.map(|r| r?).collect()
    }
}
