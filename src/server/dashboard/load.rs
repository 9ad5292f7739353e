//! What the pages read, always through the account's scope: grids, records, households and
//! visits as small typed rows.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use geo::Polygon;
use serde_json::Value;
use uuid::Uuid;

use crate::domain::codes::{
    Coded, DeadlineState, DisputeCategory, Domain, EmergencyCategory, HazardCategory,
    OpinionCategory, Satisfaction, Urgency,
};
use crate::domain::deadline::{Deadline, DeadlinePolicy, deadline, is_handled};
use crate::domain::geo::{GeoPoint, Grid};
use crate::domain::lifecycle::Status;
use crate::server::db::{Sql, V};
use crate::server::error::Failure;
use crate::server::repo::{self, User, parse_ts};

/// The event-record kinds, as stored.
pub const RECORD_KINDS: &str = "'OPINION','DISPUTE','PATROL','HAZARD','SPECIAL_POP','EMERGENCY','PUBLICITY','LIVELIHOOD','OTHER'";

/// A grid in scope.
#[derive(Debug, Clone)]
pub struct GridInfo {
    pub id: Uuid,
    pub code: String,
    pub name: String,
    pub village_code: String,
    pub village_name: String,
    pub town_name: String,
    pub boundary: Polygon<f64>,
}

/// The grids in the account's scope, by code.
pub fn grids(db: &mut dyn Sql, user: &User) -> Result<BTreeMap<String, GridInfo>, Failure> {
    let (clause, args) = user.scope().clause(1);
    let rows = db.query(
        &format!("SELECT data FROM entities WHERE kind = 'GRID' AND {clause} ORDER BY grid_code"),
        &args,
    )?;
    let mut out = BTreeMap::new();
    for r in rows {
        let g: Grid =
            serde_json::from_str(r[0].str()?).map_err(|e| Failure::Internal(e.to_string()))?;
        let code = g.code.as_str().to_owned();
        out.insert(
            code.clone(),
            GridInfo {
                id: g.id,
                village_code: code[..code.len().min(12)].to_owned(),
                code,
                name: g.name,
                village_name: g.village_name,
                town_name: g.town_name,
                boundary: g.boundary,
            },
        );
    }
    Ok(out)
}

/// The villages of some grids: code → name.
pub fn villages(grids: &BTreeMap<String, GridInfo>) -> BTreeMap<String, String> {
    grids
        .values()
        .map(|g| (g.village_code.clone(), g.village_name.clone()))
        .collect()
}

/// One event record, as the lists need it.
#[derive(Debug, Clone)]
pub struct RecordRow {
    pub id: Uuid,
    pub domain: Domain,
    pub status: Status,
    pub urgency: Urgency,
    pub category: String,
    pub author: String,
    pub grid_code: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub summary: String,
    pub location: Option<GeoPoint>,
    pub satisfaction: Option<Satisfaction>,
    pub deadline: Option<Deadline>,
}

impl RecordRow {
    pub fn deadline_state(&self, now: DateTime<Utc>, p: &DeadlinePolicy) -> Option<DeadlineState> {
        self.deadline.map(|d| d.state(now, p))
    }

    pub fn handled(&self) -> bool {
        is_handled(self.status)
    }

    pub fn category_label(&self) -> String {
        category_label(self.domain, &self.category)
    }
}

/// A record category's Chinese label (the event domains use the domain as category).
pub fn category_label(domain: Domain, code: &str) -> String {
    use super::label;
    match domain {
        Domain::Hazard => label::<HazardCategory>(code),
        Domain::Opinion => label::<OpinionCategory>(code),
        Domain::Dispute => label::<DisputeCategory>(code),
        Domain::Emergency => label::<EmergencyCategory>(code),
        Domain::Patrol => "巡防".to_owned(),
        _ => label::<Domain>(code),
    }
}

/// The categories of a domain: (code, label).
pub fn categories(domain: Domain) -> Vec<(&'static str, &'static str)> {
    fn all<T: Coded>() -> Vec<(&'static str, &'static str)> {
        T::ALL.iter().map(|c| (c.code(), c.zh())).collect()
    }
    match domain {
        Domain::Hazard => all::<HazardCategory>(),
        Domain::Opinion => all::<OpinionCategory>(),
        Domain::Dispute => all::<DisputeCategory>(),
        Domain::Emergency => all::<EmergencyCategory>(),
        _ => vec![],
    }
}

fn summary_of(data: &Value) -> String {
    for k in ["description", "content", "summary", "title", "notes"] {
        if let Some(s) = data.get(k).and_then(Value::as_str)
            && !s.trim().is_empty()
        {
            return s.to_owned();
        }
    }
    String::new()
}

/// Extra SQL conditions on the records query.
#[derive(Debug, Default, Clone)]
pub struct RecordSql {
    pub conds: Vec<String>,
    pub args: Vec<V>,
}

impl RecordSql {
    /// Adds `column op $n` with the next parameter number.
    pub fn add(&mut self, column: &str, op: &str, value: impl Into<V>, first: usize) {
        self.args.push(value.into());
        self.conds
            .push(format!("{column} {op} ${}", first + self.args.len() - 1));
    }
}

impl RecordSql {
    /// Adds `column IN ($n, ...)` (or `NOT IN`) over `values`.
    pub fn add_list(&mut self, column: &str, op: &str, values: &[&str], first: usize) {
        let marks: Vec<String> = values
            .iter()
            .map(|v| {
                self.args.push(V::T((*v).to_owned()));
                format!("${}", first + self.args.len() - 1)
            })
            .collect();
        self.conds
            .push(format!("{column} {op} ({})", marks.join(", ")));
    }
}

/// Event records in scope matching the extra conditions, newest first (at most `limit`).
pub fn records(
    db: &mut dyn Sql,
    user: &User,
    extra: impl FnOnce(usize) -> RecordSql,
    limit: usize,
) -> Result<Vec<RecordRow>, Failure> {
    let (clause, mut args) = user.scope().clause(1);
    let more = extra(args.len() + 1);
    args.extend(more.args);
    let mut sql = format!(
        "SELECT id, kind, status, urgency, category, author, grid_code, created_at, updated_at, data
         FROM entities WHERE {clause} AND kind IN ({RECORD_KINDS})"
    );
    for c in &more.conds {
        sql.push_str(" AND ");
        sql.push_str(c);
    }
    args.push(V::I(limit as i64));
    sql.push_str(&format!(" ORDER BY created_at DESC LIMIT ${}", args.len()));
    let policy = DeadlinePolicy::default();
    let mut out = Vec::new();
    for r in db.query(&sql, &args)? {
        let bad = |e: String| Failure::Internal(e);
        let domain = Domain::from_code(r[1].str()?).map_err(|e| bad(e.to_string()))?;
        let status = Status::from_code(&r[2].string()?).map_err(|e| bad(e.to_string()))?;
        let urgency = r[3]
            .opt_string()?
            .and_then(|u| Urgency::from_code(&u).ok())
            .unwrap_or(Urgency::Normal);
        let created_at = parse_ts(r[7].str()?)?;
        let data: Value = serde_json::from_str(r[9].str()?).map_err(|e| bad(e.to_string()))?;
        let location = data
            .get("location")
            .and_then(|l| serde_json::from_value::<GeoPoint>(l.clone()).ok());
        let satisfaction = data
            .get("satisfaction")
            .or_else(|| data.get("follow_up").and_then(|f| f.get("satisfaction")))
            .and_then(Value::as_str)
            .and_then(|s| Satisfaction::from_code(s).ok());
        out.push(RecordRow {
            id: Uuid::parse_str(r[0].str()?).map_err(|e| bad(e.to_string()))?,
            domain,
            status,
            urgency,
            category: r[4].opt_string()?.unwrap_or_default(),
            author: r[5].opt_string()?.unwrap_or_default(),
            grid_code: r[6].string()?,
            created_at,
            updated_at: parse_ts(r[8].str()?)?,
            summary: summary_of(&data),
            location,
            satisfaction,
            deadline: deadline(domain, urgency, status, created_at, &policy),
        });
    }
    Ok(out)
}

/// Households per grid in scope.
pub fn households_per_grid(
    db: &mut dyn Sql,
    user: &User,
) -> Result<BTreeMap<String, i64>, Failure> {
    let (clause, args) = user.scope().clause(1);
    let rows = db.query(
        &format!(
            "SELECT grid_code, count(*) FROM entities WHERE kind = 'HOUSEHOLD' AND {clause} GROUP BY grid_code"
        ),
        &args,
    )?;
    let mut out = BTreeMap::new();
    for r in rows {
        out.insert(r[0].string()?, r[1].i64()?);
    }
    Ok(out)
}

/// One visit: who, which household, when.
#[derive(Debug, Clone)]
pub struct VisitRow {
    pub grid_code: String,
    pub household: Uuid,
    pub author: String,
    pub on: NaiveDate,
}

/// Visits in scope made on or after `since`.
pub fn visits_since(
    db: &mut dyn Sql,
    user: &User,
    since: NaiveDate,
) -> Result<Vec<VisitRow>, Failure> {
    let (clause, args) = user.scope().clause(1);
    let rows = db.query(
        &format!("SELECT grid_code, data FROM entities WHERE kind = 'VISIT' AND {clause}"),
        &args,
    )?;
    let mut out = Vec::new();
    for r in rows {
        let v: Value =
            serde_json::from_str(r[1].str()?).map_err(|e| Failure::Internal(e.to_string()))?;
        let on = v
            .get("visited_on")
            .and_then(Value::as_str)
            .and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok());
        let hh = v
            .get("household_id")
            .and_then(Value::as_str)
            .and_then(|s| Uuid::parse_str(s).ok());
        if let (Some(on), Some(household)) = (on, hh)
            && on >= since
        {
            out.push(VisitRow {
                grid_code: r[0].string()?,
                household,
                author: v
                    .get("author")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                on,
            });
        }
    }
    Ok(out)
}

/// Status changes of records in scope since `since`: (record, from, to, at, actor, note).
pub fn status_changes(
    db: &mut dyn Sql,
    ids: &[Uuid],
) -> Result<BTreeMap<Uuid, Vec<crate::domain::model::StatusChange>>, Failure> {
    Ok(repo::status_histories(db, ids)?)
}
