//! What the pages read, always through the account's scope: grids, records, households and
//! visits as small typed rows.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use geo::Polygon;
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

use crate::server::repo::RECORD_KINDS;

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
        let gi = info(g);
        out.insert(gi.code.clone(), gi);
    }
    Ok(out)
}

/// One grid in scope, by id.
pub fn grid(db: &mut dyn Sql, user: &User, id: Uuid) -> Result<Option<GridInfo>, Failure> {
    let Some(r) = db.query_opt(
        "SELECT data, grid_code FROM entities WHERE id = $1 AND kind = 'GRID'",
        &[id.to_string().into()],
    )?
    else {
        return Ok(None);
    };
    if !user.scope().covers(r[1].str()?) {
        return Ok(None);
    }
    let g: Grid =
        serde_json::from_str(r[0].str()?).map_err(|e| Failure::Internal(e.to_string()))?;
    Ok(Some(info(g)))
}

fn info(g: Grid) -> GridInfo {
    let code = g.code.as_str().to_owned();
    GridInfo {
        id: g.id,
        village_code: code[..code.len().min(12)].to_owned(),
        code,
        name: g.name,
        village_name: g.village_name,
        town_name: g.town_name,
        boundary: g.boundary,
    }
}

/// The account with its area scope narrowed to `area` (a village or town code inside it), so
/// every read filters in SQL; a worker's grid scope and an area outside the scope stay as
/// they are (out-of-scope areas then simply read nothing).
pub fn narrowed(user: &User, area: Option<&str>) -> User {
    match area {
        Some(a) if user.role != crate::wire::Role::Worker && a.starts_with(&user.scope_code) => {
            User {
                scope_code: a.to_owned(),
                ..user.clone()
            }
        }
        _ => user.clone(),
    }
}

/// How far a record's location lies outside its grid, when past
/// [`crate::domain::geo::PLACE_TOLERANCE_M`] (the dashboard flags it 位置异常).
pub fn place_off_m(at: Option<&GeoPoint>, grid: Option<&GridInfo>) -> Option<f64> {
    let d = at?.distance_outside_m(&grid?.boundary);
    (d > crate::domain::geo::PLACE_TOLERANCE_M).then_some(d)
}

/// The 位置异常 badge: how far outside its grid a record was located.
pub fn place_flag(off_m: Option<f64>) -> maud::Markup {
    maud::html! {
        @if let Some(d) = off_m {
            span.flag.place title={"记录位置在网格外 " (format!("{:.1}", d / 1000.0)) " 公里 (located outside its grid)"} {
                "位置异常" span.en { " off-grid " (format!("{:.1}", d / 1000.0)) " km" }
            }
        }
    }
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
    /// The short case number (`2026-00042`); lists of counts leave it out.
    pub case_no: Option<String>,
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
    /// Supervision (督办) on the matter; lists of counts leave it out.
    pub supervision: crate::domain::codes::Supervision,
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

/// The parts of a record's JSON the lists read (typed: much cheaper than a `Value`).
#[derive(Debug, Default, serde::Deserialize)]
struct RecordJson {
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    summary: Option<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    notes: Option<String>,
    #[serde(default)]
    location: Option<GeoPoint>,
    #[serde(default)]
    satisfaction: Option<String>,
    #[serde(default)]
    follow_up: Option<FollowUpJson>,
    #[serde(default)]
    supervision: Option<String>,
}

#[derive(Debug, Default, serde::Deserialize)]
struct FollowUpJson {
    #[serde(default)]
    satisfaction: Option<String>,
}

impl RecordJson {
    fn summary(&self) -> String {
        [
            &self.description,
            &self.content,
            &self.summary,
            &self.title,
            &self.notes,
        ]
        .into_iter()
        .flatten()
        .find(|s| !s.trim().is_empty())
        .cloned()
        .unwrap_or_default()
    }

    fn satisfaction(&self) -> Option<Satisfaction> {
        self.satisfaction
            .as_deref()
            .or_else(|| {
                self.follow_up
                    .as_ref()
                    .and_then(|f| f.satisfaction.as_deref())
            })
            .and_then(|s| Satisfaction::from_code(s).ok())
    }
}

/// How much of each record to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// Everything the lists show (summary, location).
    Full,
    /// Only what statistics count: the indexed columns and the satisfaction.
    Counts,
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
    /// Adds "still open": not handled, not voided, not a draft.
    pub fn add_open(&mut self, first: usize) {
        let closed: Vec<&str> = Status::ALL
            .iter()
            .filter(|s| is_handled(**s) || matches!(s, Status::Void | Status::Draft))
            .map(|s| s.code())
            .collect();
        self.add_list("status", "NOT IN", &closed, first);
    }

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
    want: Want,
) -> Result<Vec<RecordRow>, Failure> {
    let (clause, mut args) = user.scope().clause(1);
    let more = extra(args.len() + 1);
    args.extend(more.args);
    let (data, case, join) = match want {
        Want::Full => (
            "data",
            "c.year, c.seq",
            " LEFT JOIN case_numbers c ON c.record_id = entities.id",
        ),
        Want::Counts => (
            "CASE WHEN data LIKE '%satisfaction\":\"%' THEN data END",
            "NULL, NULL",
            "",
        ),
    };
    let mut sql = format!(
        "SELECT id, kind, status, urgency, category, author, grid_code, created_at, updated_at, {data}, {case}
         FROM entities{join} WHERE {clause} AND kind IN ({RECORD_KINDS})"
    );
    for c in &more.conds {
        sql.push_str(" AND ");
        sql.push_str(c);
    }
    args.push(V::I(limit as i64));
    // Lists show the newest first; counts need no order (sorting 100k+ rows costs seconds).
    match want {
        Want::Full => sql.push_str(&format!(" ORDER BY created_at DESC LIMIT ${}", args.len())),
        Want::Counts => sql.push_str(&format!(" LIMIT ${}", args.len())),
    }
    let policy = repo::deadline_policy(db)?;
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
        let json: RecordJson = match r[9].opt_string()? {
            Some(d) => serde_json::from_str(&d).map_err(|e| bad(e.to_string()))?,
            None => RecordJson::default(),
        };
        let case_no = match (r[10].opt_i64()?, r[11].opt_i64()?) {
            (Some(y), Some(s)) => Some(repo::case_label(y, s)),
            _ => None,
        };
        out.push(RecordRow {
            id: Uuid::parse_str(r[0].str()?).map_err(|e| bad(e.to_string()))?,
            case_no,
            domain,
            status,
            urgency,
            category: r[4].opt_string()?.unwrap_or_default(),
            author: r[5].opt_string()?.unwrap_or_default(),
            grid_code: r[6].string()?,
            created_at,
            updated_at: parse_ts(r[8].str()?)?,
            summary: json.summary(),
            satisfaction: json.satisfaction(),
            location: json.location,
            deadline: deadline(domain, urgency, status, created_at, &policy),
            supervision: json
                .supervision
                .as_deref()
                .and_then(|c| crate::domain::codes::Supervision::from_code(c).ok())
                .unwrap_or_default(),
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
    let (clause, mut args) = user.scope().clause(1);
    // A visit is recorded on or after the day it was made (a visit date is never in the
    // future), so its created_at bounds the scan; a day of margin covers the time zone.
    let start = (since - chrono::Duration::days(1))
        .and_hms_opt(0, 0, 0)
        .expect("midnight")
        .and_utc();
    args.push(repo::ts(start).into());
    let rows = db.query(
        &format!(
            "SELECT grid_code, data FROM entities WHERE kind = 'VISIT' AND created_at >= ${} AND {clause}",
            args.len()
        ),
        &args,
    )?;
    #[derive(serde::Deserialize)]
    struct VisitJson {
        household_id: Uuid,
        visited_on: NaiveDate,
        #[serde(default)]
        author: String,
    }
    let mut out = Vec::new();
    for r in rows {
        let v: VisitJson =
            serde_json::from_str(r[1].str()?).map_err(|e| Failure::Internal(e.to_string()))?;
        if v.visited_on >= since {
            out.push(VisitRow {
                grid_code: r[0].string()?,
                household: v.household_id,
                author: v.author,
                on: v.visited_on,
            });
        }
    }
    Ok(out)
}

/// How many distinct households of each grid were visited after `since` (coverage).
pub fn visited_per_grid(visits: &[VisitRow], since: NaiveDate) -> BTreeMap<&str, usize> {
    let mut seen: BTreeMap<&str, std::collections::BTreeSet<Uuid>> = BTreeMap::new();
    for v in visits.iter().filter(|v| v.on > since) {
        seen.entry(v.grid_code.as_str())
            .or_default()
            .insert(v.household);
    }
    seen.into_iter().map(|(g, s)| (g, s.len())).collect()
}

/// The status changes into `to` (any status when empty) of every event record in scope filed
/// in `[start, end)`, by record, oldest change first: one query, however many records.
pub fn histories_filed_between(
    db: &mut dyn Sql,
    user: &User,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    to: &[Status],
) -> Result<BTreeMap<Uuid, Vec<crate::domain::model::StatusChange>>, Failure> {
    let (clause, mut args) = user.scope().clause(1);
    let mut only = String::new();
    if !to.is_empty() {
        let marks: Vec<String> = to
            .iter()
            .map(|s| {
                args.push(V::T(s.code().to_owned()));
                format!("${}", args.len())
            })
            .collect();
        only = format!(" AND h.to_status IN ({})", marks.join(", "));
    }
    args.push(repo::ts(start).into());
    args.push(repo::ts(end).into());
    let n = args.len();
    let rows = db.query(
        &format!(
            "SELECT h.record_id, h.from_status, h.to_status, h.at, h.actor, h.note
             FROM status_history h JOIN entities e ON e.id = h.record_id
             WHERE {clause} AND e.kind IN ({RECORD_KINDS}) AND e.created_at >= ${} AND e.created_at < ${}{only}
             ORDER BY h.id",
            n - 1,
            n
        ),
        &args,
    )?;
    let mut out: BTreeMap<Uuid, Vec<crate::domain::model::StatusChange>> = BTreeMap::new();
    let bad = |e: String| Failure::Internal(e);
    for r in rows {
        let id = Uuid::parse_str(r[0].str()?).map_err(|e| bad(e.to_string()))?;
        out.entry(id)
            .or_default()
            .push(crate::domain::model::StatusChange {
                record_id: id,
                from: Status::from_code(r[1].str()?).map_err(|e| bad(e.to_string()))?,
                to: Status::from_code(r[2].str()?).map_err(|e| bad(e.to_string()))?,
                at: parse_ts(r[3].str()?)?,
                actor: r[4].string()?,
                note: r[5].opt_string()?,
            });
    }
    Ok(out)
}

/// Where an account works: its role, its area's code and (a worker's) grid codes.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountArea {
    pub role: crate::wire::Role,
    pub scope_code: String,
    pub grids: Vec<String>,
}

fn account_areas_where(
    db: &mut dyn Sql,
    cond: &str,
    args: &[V],
) -> Result<BTreeMap<String, AccountArea>, Failure> {
    let rows = db.query(
        &format!(
            "SELECT u.username, u.role, u.scope_code, e.grid_code
             FROM users u LEFT JOIN user_grids g ON g.user_id = u.id
             LEFT JOIN entities e ON e.id = g.grid_id{cond}"
        ),
        args,
    )?;
    let mut out: BTreeMap<String, AccountArea> = BTreeMap::new();
    for r in rows {
        let role = crate::wire::Role::from_code(r[1].str()?)
            .map_err(|e| Failure::Internal(e.to_string()))?;
        let a = out.entry(r[0].string()?).or_insert(AccountArea {
            role,
            scope_code: r[2].string()?,
            grids: vec![],
        });
        if let Some(g) = r[3].opt_string()? {
            a.grids.push(g);
        }
    }
    Ok(out)
}

/// Every account's area, by username.
pub fn account_areas(db: &mut dyn Sql) -> Result<BTreeMap<String, AccountArea>, Failure> {
    account_areas_where(db, "", &[])
}

/// One account's area (`None`: no such account).
pub fn account_area(db: &mut dyn Sql, username: &str) -> Result<Option<AccountArea>, Failure> {
    Ok(
        account_areas_where(db, " WHERE u.username = $1", &[V::T(username.to_owned())])?
            .into_values()
            .next(),
    )
}

/// The accounts' names and roles, by username: records and history store the username, the
/// pages show the person.
#[derive(Debug, Clone, Default)]
pub struct People(BTreeMap<String, (String, crate::wire::Role)>);

impl People {
    /// The display name of `username`, if it is an account.
    pub fn name(&self, username: &str) -> Option<&str> {
        self.0.get(username).map(|(n, _)| n.as_str())
    }

    /// The name and role of `username`, if it is an account.
    pub fn get(&self, username: &str) -> Option<(&str, crate::wire::Role)> {
        self.0.get(username).map(|(n, r)| (n.as_str(), *r))
    }

    /// "张三（网格员）" for an account; anything else (an imported author, "县综治中心") as it is.
    pub fn label(&self, username: &str) -> String {
        match self.get(username) {
            Some((name, role)) => format!("{name}（{}）", role.zh()),
            None => username.to_owned(),
        }
    }
}

/// Every account's name and role.
pub fn people(db: &mut dyn Sql) -> Result<People, Failure> {
    let mut out = BTreeMap::new();
    for r in db.query("SELECT username, display_name, role FROM users", &[])? {
        let role = crate::wire::Role::from_code(r[2].str()?)
            .map_err(|e| Failure::Internal(e.to_string()))?;
        out.insert(r[0].string()?, (r[1].string()?, role));
    }
    Ok(People(out))
}
