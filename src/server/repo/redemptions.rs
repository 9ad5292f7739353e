//! 积分兑换: points a worker or a volunteer spent, each a ledger entry the village or county
//! records (never edited or deleted); a person's balance is what their ledger earned less
//! these.

use chrono::NaiveDate;

use super::*;

/// Whose points: a worker account (by username) or a volunteer (by id).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Person {
    Worker(String),
    Volunteer(Uuid),
}

impl Person {
    fn kind(&self) -> &'static str {
        match self {
            Person::Worker(_) => "WORKER",
            Person::Volunteer(_) => "VOLUNTEER",
        }
    }

    fn key(&self) -> String {
        match self {
            Person::Worker(w) => w.clone(),
            Person::Volunteer(v) => v.to_string(),
        }
    }
}

/// One redemption.
#[derive(Debug, Clone, PartialEq)]
pub struct Redemption {
    pub id: Uuid,
    pub person: Person,
    /// Points spent, more than zero.
    pub points: i64,
    /// What for (用途).
    pub purpose: String,
    pub redeemed_on: NaiveDate,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

/// Records a redemption (already checked by the caller).
pub fn add_redemption(db: &mut dyn Sql, r: &Redemption) -> Result<(), DbError> {
    db.exec(
        "INSERT INTO redemptions (id, person_kind, person, points, purpose, redeemed_on, created_by, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        args![
            r.id.to_string(),
            r.person.kind(),
            r.person.key(),
            r.points,
            r.purpose.as_str(),
            r.redeemed_on.to_string(),
            r.created_by.as_str(),
            ts(r.created_at)
        ],
    )?;
    Ok(())
}

/// A person's redemptions, oldest first.
pub fn redemptions_of(db: &mut dyn Sql, person: &Person) -> Result<Vec<Redemption>, DbError> {
    db.query(
        "SELECT id, points, purpose, redeemed_on, created_by, created_at FROM redemptions
         WHERE person_kind = $1 AND person = $2 ORDER BY created_at, id",
        args![person.kind(), person.key()],
    )?
    .into_iter()
    .map(|r| {
        Ok(Redemption {
            id: uuid(r[0].str()?)?,
            person: person.clone(),
            points: r[1].i64()?,
            purpose: r[2].string()?,
            redeemed_on: NaiveDate::parse_from_str(r[3].str()?, "%Y-%m-%d")
                .map_err(|e| DbError::Type(format!("bad date: {e}")))?,
            created_by: r[4].string()?,
            created_at: parse_ts(r[5].str()?)?,
        })
    })
    .collect()
}

/// Points redeemed so far per person (only those with any).
pub fn redeemed_totals(db: &mut dyn Sql) -> Result<BTreeMap<Person, i64>, DbError> {
    let mut out = BTreeMap::new();
    for r in db.query(
        "SELECT person_kind, person, CAST(SUM(points) AS BIGINT) FROM redemptions
         GROUP BY person_kind, person",
        &[],
    )? {
        let key = r[1].string()?;
        let person = match r[0].str()? {
            "VOLUNTEER" => Person::Volunteer(uuid(&key)?),
            _ => Person::Worker(key),
        };
        out.insert(person, r[2].i64()?);
    }
    Ok(out)
}

/// The records each volunteer of villages whose code starts with `area` was credited for:
/// (record, volunteer).
pub fn credits_in(db: &mut dyn Sql, area: &str) -> Result<Vec<(Uuid, Uuid)>, DbError> {
    db.query(
        "SELECT c.record_id, c.volunteer_id FROM volunteer_credits c
         JOIN volunteers v ON v.id = c.volunteer_id
         WHERE v.village_code LIKE $1 ORDER BY c.credited_at",
        args![format!("{area}%")],
    )?
    .into_iter()
    .map(|r| Ok((uuid(r[0].str()?)?, uuid(r[1].str()?)?)))
    .collect()
}
