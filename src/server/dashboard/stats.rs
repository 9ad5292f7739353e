//! Statistics (统计分析): counts by domain, category and status over time, resolution rate,
//! overdue, satisfaction, visit coverage per grid and village, and each worker's activity and
//! points ledger. Computed on read from the records, visits and status history in scope.

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::get;
use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use maud::html;
use serde::Deserialize;
use uuid::Uuid;

use super::charts::{self, AMBER, BLUE, GREEN, RED};
use super::load::{self, GridInfo, RecordRow, RecordSql, VisitRow};
use super::volunteers::Shown;
use super::{Clerk, Flash, PageError, local, nonempty, page, redemptions};
use crate::domain::codes::{Coded, DeadlineState, Domain, Satisfaction};
use crate::domain::cst;
use crate::domain::deadline::DeadlinePolicy;
use crate::domain::lifecycle::Status;
use crate::domain::model::StatusChange;
use crate::domain::points::{self, Entry, RecordFacts, VisitFacts};
use crate::server::AppState;
use crate::server::db::Sql;
use crate::server::error::Failure;
use crate::server::repo::{self, Scope, User, ts};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/stats", get(stats_page))
        .route("/stats/points/{worker}", get(points_page))
        .merge(redemptions::routes())
}

/// The period and area of the statistics.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct StatsQuery {
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub to: Option<String>,
    #[serde(default)]
    pub village: Option<String>,
}

/// Coverage of one grid: households, and how many were visited in the last 30 days.
#[derive(Debug, Clone)]
pub struct Coverage {
    pub grid: GridInfo,
    pub households: i64,
    pub visited: i64,
}

impl Coverage {
    pub fn share(&self) -> f64 {
        if self.households == 0 {
            0.0
        } else {
            self.visited as f64 / self.households as f64
        }
    }
}

/// One worker's activity in the period.
#[derive(Debug, Clone, Default)]
pub struct WorkerRow {
    pub worker: String,
    pub filed: usize,
    pub handled: usize,
    pub visits: usize,
    pub patrol_km: f64,
    pub points: i64,
}

/// One volunteer in the points ledger: the matters they were credited for in the period and
/// the points those earn them.
#[derive(Debug, Clone)]
pub struct VolunteerRow {
    pub volunteer: repo::Volunteer,
    pub matters: usize,
    pub points: i64,
}

/// Everything the statistics page and its export show.
#[derive(Debug, Clone)]
pub struct Stats {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub records: Vec<RecordRow>,
    pub total: usize,
    pub handled: usize,
    pub void: usize,
    pub overdue: usize,
    pub rated: usize,
    pub satisfied: usize,
    pub by_domain: Vec<(Domain, usize, usize, usize)>,
    pub by_category: Vec<(String, usize)>,
    pub by_status: Vec<(Status, usize)>,
    /// Records filed per week (Monday), per domain in [`Domain::ALL`] order.
    pub by_week: Vec<(String, Vec<usize>)>,
    pub coverage: Vec<Coverage>,
    pub villages: Vec<(String, String, i64, i64)>,
    pub workers: Vec<WorkerRow>,
    pub ledger: Vec<Entry>,
    /// The volunteers of the scope (none for a worker account), most points first.
    pub volunteers: Vec<VolunteerRow>,
    /// The volunteers' ledger (`Entry::worker` is the volunteer's id).
    pub volunteer_ledger: Vec<Entry>,
    /// The accounts' names and roles.
    pub names: load::People,
}

impl Stats {
    pub fn resolution_rate(&self) -> f64 {
        let base = self.total - self.void;
        if base == 0 {
            0.0
        } else {
            self.handled as f64 / base as f64
        }
    }

    pub fn satisfaction_rate(&self) -> Option<f64> {
        (self.rated > 0).then(|| self.satisfied as f64 / self.rated as f64)
    }
}

/// The statistics of `user`'s scope for the query's period (default: the last 12 weeks).
pub fn compute(db: &mut dyn Sql, user: &User, q: &StatsQuery) -> Result<Stats, Failure> {
    let today = super::today();
    let to = super::period_date(nonempty(&q.to), "to")?.unwrap_or(today);
    let from = super::period_date(nonempty(&q.from), "from")?
        .unwrap_or(to - Duration::weeks(12) + Duration::days(1));
    if from > to {
        return Err(Failure::invalid(
            format!("开始日期（{from}）晚于结束日期（{to}），请改为结束日期当天或之前"),
            Some("from"),
        ));
    }
    let village = nonempty(&q.village).map(str::to_owned);
    let clerk = user;
    // A village inside an area scope narrows the scope itself, so every read filters in SQL.
    let narrowed = load::narrowed(user, village.as_deref());
    let clock = std::time::Instant::now();
    let lap =
        |what: &str| tracing::debug!(what, ms = clock.elapsed().as_millis() as u64, "statistics");
    let user = &narrowed;
    let start = cst::start_of_day(from);
    let end = cst::start_of_day(to + Duration::days(1));
    let records = load::records(
        db,
        user,
        |first| {
            let mut s = RecordSql::default();
            s.add("created_at", ">=", ts(start), first);
            s.add("created_at", "<", ts(end), first);
            if let Some(v) = &village {
                s.add("grid_code", ">=", v.as_str(), first);
                s.add("grid_code", "<", format!("{v}~"), first);
            }
            s
        },
        1_000_000,
        load::Want::Counts,
    )?;
    let in_village = |code: &str| village.as_deref().is_none_or(|v| code.starts_with(v));
    lap("records");
    let grids: BTreeMap<String, GridInfo> = load::grids(db, user)?
        .into_iter()
        .filter(|(c, _)| in_village(c))
        .collect();
    let households = load::households_per_grid(db, user)?;
    let visits: Vec<VisitRow> = load::visits_since(db, user, from.min(today - Duration::days(30)))?
        .into_iter()
        .filter(|v| in_village(&v.grid_code))
        .collect();
    // The ledger reads returns and the first move into a handled state, nothing else.
    let counted: Vec<Status> = Status::ALL
        .iter()
        .copied()
        .filter(|s| *s == Status::Returned || crate::domain::deadline::is_handled(*s))
        .collect();
    lap("grids, households, visits");
    let histories = load::histories_filed_between(db, user, start, end, &counted)?;
    lap("histories");
    let patrol_km = patrol_km(db, user, start, end)?;
    lap("patrols");
    let policy = repo::deadline_policy(db)?;
    // The volunteers of the (narrowed) area and what they were credited for; a worker
    // account sees only its own ledger, so none.
    let (volunteers, credits) = match (clerk.role, user.scope()) {
        (crate::wire::Role::Worker | crate::wire::Role::Assignee, _) | (_, Scope::Grids(_)) => {
            (Vec::new(), Vec::new())
        }
        (_, Scope::Area(area)) => (
            repo::volunteers_in(db, &area)?,
            repo::credits_in(db, &area)?,
        ),
    };
    let credits: Vec<(Uuid, String)> = credits
        .into_iter()
        .map(|(r, v)| (r, v.to_string()))
        .collect();
    let mut st = assemble(
        from, to, today, records, grids, households, visits, histories, patrol_km, &policy,
        &credits,
    );
    st.volunteers = volunteer_rows(volunteers, &st.volunteer_ledger);
    lap("assembled");
    st.names = load::people(db)?;
    // Only the workers whose ledgers this account may open (a worker sees only itself).
    let accounts = load::account_areas(db)?;
    let shown = |w: &str| ledger_visible(clerk, w, accounts.get(w), true);
    st.workers.retain(|w| shown(&w.worker));
    st.ledger.retain(|e| shown(&e.worker));
    Ok(st)
}

/// Whether `clerk` may see `worker`'s activity and points ledger. A worker account sees only
/// its own. Other accounts see the accounts that work within their scope (a worker account by
/// any of its grids, an area account by its area); an author with no account (imported
/// history) only through entries in scope (`has_entries`). Anything else answers "not found".
pub fn ledger_visible(
    clerk: &User,
    worker: &str,
    account: Option<&load::AccountArea>,
    has_entries: bool,
) -> bool {
    if clerk.role == crate::wire::Role::Worker {
        return worker == clerk.username;
    }
    match (account, clerk.scope()) {
        (Some(a), scope) if a.role == crate::wire::Role::Worker => {
            a.grids.iter().any(|g| scope.covers(g))
        }
        (Some(a), Scope::Area(area)) => a.scope_code.starts_with(&area),
        (Some(_), Scope::Grids(_)) => false,
        (None, _) => has_entries,
    }
}

fn patrol_km(
    db: &mut dyn Sql,
    user: &User,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<BTreeMap<String, f64>, Failure> {
    let (clause, mut args) = user.scope().clause(1);
    let n = args.len();
    args.push(ts(start).into());
    args.push(ts(end).into());
    let rows = db.query(
        &format!(
            "SELECT author, data FROM entities WHERE kind = 'PATROL' AND {clause} AND created_at >= ${} AND created_at < ${}",
            n + 1,
            n + 2
        ),
        &args,
    )?;
    let mut out = BTreeMap::new();
    for r in rows {
        let v: serde_json::Value =
            serde_json::from_str(r[1].str()?).map_err(|e| Failure::Internal(e.to_string()))?;
        let m = v
            .get("distance_m")
            .and_then(serde_json::Value::as_f64)
            .unwrap_or(0.0);
        *out.entry(r[0].opt_string()?.unwrap_or_default())
            .or_insert(0.0) += m / 1000.0;
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)] // each is one input read above
fn assemble(
    from: NaiveDate,
    to: NaiveDate,
    today: NaiveDate,
    records: Vec<RecordRow>,
    grids: BTreeMap<String, GridInfo>,
    households: BTreeMap<String, i64>,
    visits: Vec<VisitRow>,
    histories: BTreeMap<Uuid, Vec<StatusChange>>,
    patrol_km: BTreeMap<String, f64>,
    policy: &DeadlinePolicy,
    credits: &[(Uuid, String)],
) -> Stats {
    let now = Utc::now();
    let overdue_at = |r: &RecordRow| r.deadline_state(now, policy) == Some(DeadlineState::Overdue);
    let total = records.len();
    let handled = records.iter().filter(|r| r.handled()).count();
    let void = records.iter().filter(|r| r.status == Status::Void).count();
    let overdue = records.iter().filter(|r| overdue_at(r)).count();
    let rated: Vec<Satisfaction> = records.iter().filter_map(|r| r.satisfaction).collect();
    let satisfied = rated
        .iter()
        .filter(|s| matches!(s, Satisfaction::Satisfied | Satisfaction::Basic))
        .count();
    let coverage = coverage(&grids, &households, &visits, today);
    let villages = villages(&coverage);
    let (ledger, workers, volunteer_ledger) =
        ledger_and_workers(&records, &histories, &visits, &patrol_km, from, to, credits);
    Stats {
        from,
        to,
        total,
        handled,
        void,
        overdue,
        rated: rated.len(),
        satisfied,
        by_domain: by_domain(&records, &overdue_at),
        by_category: by_category(&records),
        by_status: by_status(&records),
        by_week: by_week(&records, from, to),
        coverage,
        villages,
        workers,
        ledger,
        volunteers: Vec::new(),
        volunteer_ledger,
        records,
        names: load::People::default(),
    }
}

/// Per domain that has records: handled, open (neither handled nor overdue), overdue.
fn by_domain(
    records: &[RecordRow],
    overdue: &dyn Fn(&RecordRow) -> bool,
) -> Vec<(Domain, usize, usize, usize)> {
    let mut by_domain = Vec::new();
    for d in Domain::ALL {
        let rs: Vec<&RecordRow> = records.iter().filter(|r| r.domain == *d).collect();
        if rs.is_empty() {
            continue;
        }
        let h = rs.iter().filter(|r| r.handled()).count();
        let o = rs.iter().filter(|r| overdue(r)).count();
        by_domain.push((*d, h, rs.len() - h - o, o));
    }
    by_domain
}

/// Records per category (named with its domain unless it is the domain), most first.
fn by_category(records: &[RecordRow]) -> Vec<(String, usize)> {
    let mut cats: BTreeMap<String, usize> = BTreeMap::new();
    for r in records {
        let c = r.category_label();
        let key = if c == r.domain.zh() {
            c
        } else {
            format!("{}·{c}", r.domain.zh())
        };
        *cats.entry(key).or_default() += 1;
    }
    let mut by_category: Vec<(String, usize)> = cats.into_iter().collect();
    by_category.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    by_category
}

fn by_status(records: &[RecordRow]) -> Vec<(Status, usize)> {
    let mut sts: BTreeMap<Status, usize> = BTreeMap::new();
    for r in records {
        *sts.entry(r.status).or_default() += 1;
    }
    sts.into_iter().collect()
}

/// Records filed per week (Monday-based), per domain, every week of the period, empty ones
/// too.
fn by_week(records: &[RecordRow], from: NaiveDate, to: NaiveDate) -> Vec<(String, Vec<usize>)> {
    let week_of = |d: NaiveDate| d - Duration::days(d.weekday().num_days_from_monday() as i64);
    let mut weeks: BTreeMap<NaiveDate, Vec<usize>> = BTreeMap::new();
    let mut w = week_of(from);
    while w <= to {
        weeks.insert(w, vec![0; Domain::ALL.len()]);
        w += Duration::weeks(1);
    }
    for r in records {
        let d = cst::today(r.created_at);
        let i = Domain::ALL.iter().position(|x| *x == r.domain).unwrap_or(0);
        weeks
            .entry(week_of(d))
            .or_insert_with(|| vec![0; Domain::ALL.len()])[i] += 1;
    }
    weeks
        .into_iter()
        .map(|(w, n)| (w.format("%m-%d").to_string(), n))
        .collect()
}

/// Coverage: distinct households visited in the last 30 days, per grid.
fn coverage(
    grids: &BTreeMap<String, GridInfo>,
    households: &BTreeMap<String, i64>,
    visits: &[VisitRow],
    today: NaiveDate,
) -> Vec<Coverage> {
    let seen = load::visited_per_grid(visits, today - Duration::days(30));
    grids
        .values()
        .map(|g| Coverage {
            grid: g.clone(),
            households: households.get(&g.code).copied().unwrap_or(0),
            visited: seen.get(g.code.as_str()).map(|n| *n as i64).unwrap_or(0),
        })
        .collect()
}

/// The grids' coverage added up per village: (code, name, households, visited).
fn villages(coverage: &[Coverage]) -> Vec<(String, String, i64, i64)> {
    let mut vs: BTreeMap<String, (String, i64, i64)> = BTreeMap::new();
    for c in coverage {
        let e =
            vs.entry(c.grid.village_code.clone())
                .or_insert((c.grid.village_name.clone(), 0, 0));
        e.1 += c.households;
        e.2 += c.visited;
    }
    vs.into_iter().map(|(k, (n, h, v))| (k, n, h, v)).collect()
}

/// Each volunteer with the matters and points of their ledger, most points first (then by
/// village and name); deactivated ones only when they have entries in the period.
fn volunteer_rows(volunteers: Vec<repo::Volunteer>, ledger: &[Entry]) -> Vec<VolunteerRow> {
    let mut rows: Vec<VolunteerRow> = volunteers
        .into_iter()
        .map(|v| {
            let key = v.id.to_string();
            let mine: Vec<&Entry> = ledger.iter().filter(|e| e.worker == key).collect();
            let mut matters: Vec<Uuid> = mine.iter().filter_map(|e| e.subject).collect();
            matters.sort();
            matters.dedup();
            VolunteerRow {
                matters: matters.len(),
                points: mine.iter().map(|e| e.points).sum(),
                volunteer: v,
            }
        })
        .filter(|r| r.volunteer.active || r.matters > 0)
        .collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.points));
    rows
}

/// The points ledger of the records filed and the visits made in the period, each worker's
/// activity (records, visits, patrol distance, points), most points first, and the
/// volunteers' ledger of the records they were credited for (`credits`: record, volunteer).
fn ledger_and_workers(
    records: &[RecordRow],
    histories: &BTreeMap<Uuid, Vec<StatusChange>>,
    visits: &[VisitRow],
    patrol_km: &BTreeMap<String, f64>,
    from: NaiveDate,
    to: NaiveDate,
    credits: &[(Uuid, String)],
) -> (Vec<Entry>, Vec<WorkerRow>, Vec<Entry>) {
    let facts: Vec<RecordFacts<'_>> = records
        .iter()
        .map(|r| RecordFacts {
            id: r.id,
            author: &r.author,
            created_at: r.created_at,
            status: r.status,
            history: histories.get(&r.id).map(Vec::as_slice).unwrap_or(&[]),
            satisfaction: r.satisfaction,
        })
        .collect();
    let vfacts: Vec<VisitFacts<'_>> = visits
        .iter()
        .filter(|v| v.on >= from && v.on <= to)
        .map(|v| VisitFacts {
            author: &v.author,
            household: v.household,
            on: v.on,
        })
        .collect();
    let ledger = points::ledger(&facts, &vfacts);
    let credited: Vec<(Uuid, &str)> = credits.iter().map(|(r, v)| (*r, v.as_str())).collect();
    let volunteer_ledger = points::credited(&facts, &credited);
    let mut workers: BTreeMap<String, WorkerRow> = BTreeMap::new();
    fn row<'m>(m: &'m mut BTreeMap<String, WorkerRow>, w: &str) -> &'m mut WorkerRow {
        m.entry(w.to_owned()).or_insert_with(|| WorkerRow {
            worker: w.to_owned(),
            ..Default::default()
        })
    }
    for r in records {
        let e = row(&mut workers, &r.author);
        e.filed += 1;
        e.handled += usize::from(r.handled());
    }
    for v in &vfacts {
        row(&mut workers, v.author).visits += 1;
    }
    for (w, km) in patrol_km {
        row(&mut workers, w).patrol_km = *km;
    }
    for e in &ledger {
        row(&mut workers, &e.worker).points += e.points;
    }
    let mut workers: Vec<WorkerRow> = workers.into_values().collect();
    workers.sort_by(|a, b| b.points.cmp(&a.points).then(a.worker.cmp(&b.worker)));
    (ledger, workers, volunteer_ledger)
}

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

async fn stats_page(
    State(s): State<AppState>,
    clerk: Clerk,
    Query(q): Query<StatsQuery>,
) -> Result<Response, PageError> {
    let (c2, q2) = (clerk.clone(), q.clone());
    let (st, grids, earned, redeemed) = s
        .read(move |db| {
            let st = compute(db, &c2.user, &q2)?;
            let grids = load::grids(db, &c2.user)?;
            let earned = redemptions::earned_all_time(
                db,
                &c2.user,
                nonempty(&q2.village).map(str::to_owned),
            )?;
            Ok::<_, Failure>((st, grids, earned, repo::redeemed_totals(db)?))
        })
        .await?;
    let totals = |p: &repo::Person| {
        let e = earned.get(p).copied().unwrap_or(0);
        let r = redeemed.get(p).copied().unwrap_or(0);
        (r, e - r)
    };
    let villages = load::villages(&grids);
    let qs = format!(
        "from={}&to={}{}",
        st.from,
        st.to,
        nonempty(&q.village)
            .map(|v| format!("&village={v}"))
            .unwrap_or_default()
    );
    let domain_rows: Vec<(String, Vec<f64>)> = st
        .by_domain
        .iter()
        .map(|(d, h, open, o)| (d.zh().to_owned(), vec![*h as f64, *open as f64, *o as f64]))
        .collect();
    let cat_rows: Vec<(String, Vec<f64>)> = st
        .by_category
        .iter()
        .take(12)
        .map(|(c, n)| (c.clone(), vec![*n as f64]))
        .collect();
    // Domains with records in the period, in their usual order.
    let used: Vec<usize> = (0..Domain::ALL.len())
        .filter(|i| st.by_week.iter().any(|(_, v)| v[*i] > 0))
        .collect();
    let week_points: Vec<(String, Vec<f64>)> = st
        .by_week
        .iter()
        .map(|(w, v)| (w.clone(), used.iter().map(|i| v[*i] as f64).collect()))
        .collect();
    let week_series: Vec<(&str, &str)> = used
        .iter()
        .map(|i| {
            (
                Domain::ALL[*i].zh(),
                charts::PALETTE[*i % charts::PALETTE.len()],
            )
        })
        .collect();
    let village_rows: Vec<(String, f64, String)> = st
        .villages
        .iter()
        .map(|(_, name, h, v)| {
            let p = if *h == 0 {
                0.0
            } else {
                *v as f64 / *h as f64 * 100.0
            };
            (name.clone(), p, format!("{v}/{h} 户"))
        })
        .collect();
    let content = html! {
        h1 { "统计分析" span.en { " Statistics" } }
        form.filters method="get" action="/stats" {
            label { "自" input type="date" name="from" value=(st.from); }
            label { "至" input type="date" name="to" value=(st.to); }
            label { "村/社区" select name="village" {
                option value="" { "全部" }
                @for (code, name) in &villages { option value=(code) selected[nonempty(&q.village) == Some(code.as_str())] { (name) } }
            } }
            button type="submit" { "统计" }
            " 导出 " a href={"/export/stats.xlsx?" (qs)} { "Excel" } " / " a href={"/export/stats.csv?" (qs)} { "CSV" }
        }
        div.tiles {
            div.tile { span.big #total { (st.total) } span { "上报事项" } }
            div.tile { span.big #resolution { (pct(st.resolution_rate())) } span { "办结率 (" (st.handled) "/" (st.total - st.void) ")" } }
            div.tile.bad[st.overdue > 0] { span.big #overdue { (st.overdue) } span { "已超期" } }
            div.tile { span.big #satisfaction { (st.satisfaction_rate().map(pct).unwrap_or_else(|| "—".into())) } span { "满意率 (" (st.satisfied) "/" (st.rated) " 已评价)" } }
            @let (h, v) = st.villages.iter().fold((0, 0), |a, x| (a.0 + x.2, a.1 + x.3));
            div.tile { span.big #coverage { (if h == 0 { "—".to_owned() } else { pct(v as f64 / h as f64) }) } span { "近30天走访覆盖 (" (v) "/" (h) " 户)" } }
        }
        div.cols {
            section.card {
                h2 { "按类型 By domain" }
                (charts::stacked_bars(&domain_rows, &[("已办结", GREEN), ("办理中", BLUE), ("已超期", RED)]))
            }
            section.card {
                h2 { "每周上报 Records per week" }
                (charts::stacked_columns(&week_points, &week_series))
            }
        }
        div.cols {
            section.card {
                h2 { "按类别（前12） By category" }
                (charts::stacked_bars(&cat_rows, &[("事项数", AMBER)]))
            }
            section.card {
                h2 { "按状态 By status" }
                table { tbody {
                    @for (s, n) in &st.by_status { tr { td { (s.zh()) } td.num { (n) } } }
                } }
            }
        }
        section.card {
            h2 { "走访覆盖（近30天）Visit coverage" }
            h3 { "按村/社区" }
            (charts::percent_bars(&village_rows))
            details {
                summary { "按网格 (" (st.coverage.len()) ")" }
                table.coverage {
                    thead { tr { th { "村/社区" } th { "网格" } th { "户数" } th { "已走访" } th { "覆盖率" } } }
                    tbody { @for c in &st.coverage {
                        tr { td { (c.grid.village_name) } td { (c.grid.name) " " small.muted { (c.grid.code) } } td.num { (c.households) } td.num { (c.visited) } td.num { (pct(c.share())) } }
                    } }
                }
            }
        }
        section.card {
            h2 { "网格员工作量与积分 Workers and points (时间银行)" }
            p.muted { "积分规则：入户走访 +1；上报 +1；办结且未被退回 +2；被退回 −1；居民满意 +2、基本满意 +1。志愿者因协助的事项记功，按同样规则得到该事项的积分。积分为逐条记账，可点开查看明细和登记兑换；「积分」为所选期间所得，「已兑换」「余额」为累计。" }
            table.workers {
                thead { tr { th { "网格员 / 志愿者" } th { "上报" } th { "已办结" } th { "走访" } th { "巡防里程" } th { "积分" } th { "已兑换" } th { "余额" } } }
                tbody {
                    @for w in &st.workers {
                        @let (r, bal) = totals(&repo::Person::Worker(w.worker.clone()));
                        tr { td { (super::who(&st.names, &w.worker)) } td.num { (w.filed) } td.num { (w.handled) } td.num { (w.visits) }
                            td.num { (format!("{:.1} 公里", w.patrol_km)) }
                            td.num { a href={"/stats/points/" (super::enc(&w.worker)) "?" (qs)} { (w.points) } }
                            td.num { (r) } td.num { (bal) } }
                    }
                    @for v in &st.volunteers {
                        @let (r, bal) = totals(&repo::Person::Volunteer(v.volunteer.id));
                        tr.volunteer id={"ledger-volunteer-" (v.volunteer.id)} {
                            td { (v.volunteer.name) " " span.pill { "银龄志愿者" } " " small.muted { (v.volunteer.team) } }
                            td.muted colspan="4" { "记功事项 " (v.matters) " 件" }
                            td.num { a href={"/stats/volunteers/" (v.volunteer.id) "?" (qs)} { (v.points) } }
                            td.num { (r) } td.num { (bal) } }
                    }
                }
            }
        }
    };
    Ok(page("统计分析", &clerk, "stats", content))
}

async fn points_page(
    State(s): State<AppState>,
    clerk: Clerk,
    Path(worker): Path<String>,
    Query(q): Query<StatsQuery>,
    Query(fl): Query<Flash>,
) -> Result<Response, PageError> {
    worker_ledger(&s, clerk, worker, q, fl, Shown::default()).await
}

/// A worker's ledger in the period, and (for a worker account) their balance and redemptions.
pub(super) async fn worker_ledger(
    s: &AppState,
    clerk: Clerk,
    worker: String,
    q: StatsQuery,
    fl: Flash,
    shown: Shown,
) -> Result<Response, PageError> {
    let (c2, q2, w2) = (clerk.clone(), q.clone(), worker.clone());
    let (st, account, cases, balance) = s
        .read(move |db| {
            let st = compute(db, &c2.user, &q2)?;
            let mine: Vec<uuid::Uuid> = st
                .ledger
                .iter()
                .filter(|e| e.worker == w2)
                .filter_map(|e| e.subject)
                .collect();
            let cases = crate::server::repo::case_numbers(db, &mine)?;
            let balance = redemptions::balance_of(db, &c2.user, &repo::Person::Worker(w2.clone()))?;
            Ok::<_, Failure>((st, load::account_area(db, &w2)?, cases, balance))
        })
        .await?;
    let entries: Vec<&Entry> = st.ledger.iter().filter(|e| e.worker == worker).collect();
    // Another worker's ledger, or one outside the scope, is "not found", as a missing one is.
    let active = !entries.is_empty() || st.workers.iter().any(|w| w.worker == worker);
    if !ledger_visible(&clerk.user, &worker, account.as_ref(), active) {
        return Err(Failure::NotFound(format!(
            "没有找到网格员「{worker}」的积分明细（不存在或不在你的范围内） (no points ledger of {worker:?} in your scope)"
        ))
        .into());
    }
    let total: i64 = entries.iter().map(|e| e.points).sum();
    let content = html! {
        p.crumbs { a href="/stats" { "← 统计分析" } }
        h1 { (st.names.name(&worker).unwrap_or(&worker)) " 的积分明细" span.en { " Points ledger" } }
        (fl.render())
        p { (st.from) " 至 " (st.to) "：共 " strong #points-total { (total) } " 分，" (entries.len()) " 条" }
        table.ledger {
            thead { tr { th { "时间" } th { "事由" } th { "积分" } th { "关联" } } }
            tbody { @for e in &entries {
                tr { td { (local(e.at)) } td { (e.reason) } td.num { (format!("{:+}", e.points)) }
                    td { @if let Some(id) = e.subject { @if e.reason == "入户走访" { "户 " code { (id.to_string()[..8]) } } @else { a href={"/records/" (id)} { "案件 " (cases.get(&id).cloned().unwrap_or_else(|| id.to_string()[..8].to_owned())) } } } } }
            } }
        }
        @if let Some(b) = &balance {
            (redemptions::section(&clerk, &format!("/stats/points/{}/redeem", super::enc(&worker)), b, &st.names, &shown))
        }
    };
    Ok(page("积分明细", &clerk, "stats", content))
}
