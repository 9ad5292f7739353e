//! The queue (待办队列): every record in scope, filtered and sorted; overdue and urgent
//! records stand out.

use axum::Router;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use chrono::Utc;
use maud::html;
use serde::Deserialize;

use super::load::{self, RecordRow, RecordSql};
use super::{Clerk, Flash, PageError, enc, local, nonempty, page};
use crate::domain::codes::{Coded, DeadlineState, Domain, Urgency};
use crate::domain::cst;
use crate::domain::deadline::{DeadlinePolicy, Phase, is_handled};
use crate::domain::lifecycle::{Status, lifecycle};
use crate::server::AppState;
use crate::server::error::Failure;
use crate::server::repo::ts;

pub fn routes() -> Router<AppState> {
    Router::new().route("/queue", get(queue))
}

/// The queue's filters, as query parameters (empty means any).
#[derive(Debug, Default, Clone, Deserialize)]
pub struct QueueFilter {
    #[serde(default)]
    pub page: Option<usize>,
    #[serde(default)]
    pub domain: Option<String>,
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub urgency: Option<String>,
    /// `open` (not handled, the default), `overdue`, `due_soon`, `handled` or `all`.
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub grid: Option<String>,
    #[serde(default)]
    pub village: Option<String>,
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub to: Option<String>,
    #[serde(default)]
    pub q: Option<String>,
    /// `newest` (default), `oldest`, `deadline`, `urgency`.
    #[serde(default)]
    pub sort: Option<String>,
}

const PAGE: usize = 50;
/// The most records one filtered query reads.
pub const QUERY_LIMIT: usize = 5000;

impl QueueFilter {
    /// The records in scope that pass the filter, sorted.
    pub fn run(
        &self,
        db: &mut dyn crate::server::db::Sql,
        clerk: &Clerk,
    ) -> Result<Vec<RecordRow>, Failure> {
        let domain = nonempty(&self.domain)
            .map(Domain::from_code)
            .transpose()
            .map_err(|e| super::bad_code(&e, "domain"))?;
        let status = nonempty(&self.status)
            .map(Status::from_code)
            .transpose()
            .map_err(|e| super::bad_code(&e, "status"))?;
        let urgency = nonempty(&self.urgency)
            .map(Urgency::from_code)
            .transpose()
            .map_err(|e| super::bad_code(&e, "urgency"))?;
        let from = super::period_date(nonempty(&self.from), "from")?;
        let to = super::period_date(nonempty(&self.to), "to")?;
        let state = nonempty(&self.state).unwrap_or("open");
        // Open and handled are decided in SQL, so the query's limit never hides old open
        // records behind newer closed ones (deadlines are computed on the open ones below).
        let handled: Vec<&str> = Status::ALL
            .iter()
            .filter(|s| is_handled(**s))
            .map(|s| s.code())
            .collect();
        let handled_only = state == "handled";
        let open_only = !matches!(state, "handled" | "all");
        let category = nonempty(&self.category).map(str::to_owned);
        let grid = nonempty(&self.grid).map(str::to_owned);
        let village = nonempty(&self.village).map(str::to_owned);
        let rows = load::records(
            db,
            &clerk.user,
            |first| {
                let mut s = RecordSql::default();
                if let Some(d) = domain {
                    s.add("kind", "=", d.code(), first);
                }
                if let Some(c) = &category {
                    s.add("category", "=", c.as_str(), first);
                }
                if let Some(st) = status {
                    s.add("status", "=", st.code(), first);
                }
                if open_only {
                    s.add_open(first);
                }
                if handled_only {
                    s.add_list("status", "IN", &handled, first);
                }
                if let Some(u) = urgency {
                    s.add("urgency", "=", u.code(), first);
                }
                if let Some(g) = &grid {
                    s.add("grid_code", "=", g.as_str(), first);
                }
                if let Some(v) = &village {
                    s.add("grid_code", ">=", v.as_str(), first);
                    s.add("grid_code", "<", format!("{v}~"), first);
                }
                if let Some(f) = from {
                    s.add("created_at", ">=", ts(cst::start_of_day(f)), first);
                }
                if let Some(t) = to {
                    s.add(
                        "created_at",
                        "<",
                        ts(cst::start_of_day(t + chrono::Duration::days(1))),
                        first,
                    );
                }
                s
            },
            QUERY_LIMIT,
            load::Want::Full,
        )?;
        let now = Utc::now();
        let policy = crate::server::repo::deadline_policy(db)?;
        let q = nonempty(&self.q).map(str::to_lowercase);
        let people = match q {
            Some(_) => load::people(db)?,
            None => load::People::default(),
        };
        let mut rows: Vec<RecordRow> = rows
            .into_iter()
            // Open and handled were decided in SQL; the deadline states are computed here.
            .filter(|r| match state {
                "overdue" => r.deadline_state(now, &policy) == Some(DeadlineState::Overdue),
                "due_soon" => r.deadline_state(now, &policy) == Some(DeadlineState::DueSoon),
                _ => true,
            })
            .filter(|r| match &q {
                Some(q) => {
                    r.summary.to_lowercase().contains(q)
                        || r.author.to_lowercase().contains(q)
                        || people
                            .name(&r.author)
                            .is_some_and(|n| n.contains(q.as_str()))
                        || r.id.to_string().starts_with(q)
                        || r.case_no.as_deref().is_some_and(|c| c.contains(q.as_str()))
                }
                None => true,
            })
            .collect();
        match nonempty(&self.sort).unwrap_or("newest") {
            "oldest" => rows.sort_by_key(|r| r.created_at),
            "deadline" => rows.sort_by_key(|r| {
                r.deadline
                    .map(|d| d.due)
                    .unwrap_or(chrono::DateTime::<Utc>::MAX_UTC)
            }),
            "urgency" => rows.sort_by_key(|r| {
                (
                    std::cmp::Reverse(r.urgency),
                    std::cmp::Reverse(r.created_at),
                )
            }),
            _ => {}
        }
        Ok(rows)
    }

    /// The filter as a query string (to keep it in links and exports).
    pub fn query_string(&self) -> String {
        let pairs = [
            ("domain", &self.domain),
            ("category", &self.category),
            ("status", &self.status),
            ("urgency", &self.urgency),
            ("state", &self.state),
            ("grid", &self.grid),
            ("village", &self.village),
            ("from", &self.from),
            ("to", &self.to),
            ("q", &self.q),
            ("sort", &self.sort),
        ];
        pairs
            .iter()
            .filter_map(|(k, v)| nonempty(v).map(|v| format!("{k}={}", enc(v))))
            .collect::<Vec<_>>()
            .join("&")
    }
}

/// The class a row gets: overdue and urgent stand out.
pub fn row_class(r: &RecordRow, now: chrono::DateTime<Utc>, p: &DeadlinePolicy) -> &'static str {
    match (r.deadline_state(now, p), r.urgency) {
        (Some(DeadlineState::Overdue), _) => "overdue",
        (_, Urgency::Major) | (_, Urgency::Urgent) if !r.handled() => "urgent",
        (Some(DeadlineState::DueSoon), _) => "due-soon",
        _ => "",
    }
}

/// The deadline cell: state and due time.
pub fn deadline_cell(
    r: &RecordRow,
    now: chrono::DateTime<Utc>,
    p: &DeadlinePolicy,
) -> maud::Markup {
    match r.deadline {
        None => html! { span.muted { "—" } },
        Some(d) => {
            let st = d.state(now, p);
            let what = match d.phase {
                Phase::Accept => "受理",
                Phase::Close => "办结",
                Phase::Done => "",
            };
            html! {
                span class={"dl " (st.code().to_lowercase())} title=(st.en()) { (st.zh()) }
                br;
                small.muted { (what) "时限 " (local(d.due)) }
            }
        }
    }
}

async fn queue(
    State(s): State<AppState>,
    clerk: Clerk,
    Query(f): Query<QueueFilter>,
    Query(flash): Query<Flash>,
) -> Result<Response, PageError> {
    let c2 = clerk.clone();
    let f2 = f.clone();
    let (rows, grids, people, assignees, policy) = s
        .read(move |db| {
            let rows = f2.run(db, &c2)?;
            let grids = load::grids(db, &c2.user)?;
            let ids: Vec<_> = rows.iter().map(|r| r.id).collect();
            let assignees = crate::server::repo::assignees_of(db, &ids)?;
            let policy = crate::server::repo::deadline_policy(db)?;
            Ok((rows, grids, load::people(db)?, assignees, policy))
        })
        .await?;
    let villages = load::villages(&grids);
    let now = Utc::now();
    let overdue = rows
        .iter()
        .filter(|r| r.deadline_state(now, &policy) == Some(DeadlineState::Overdue))
        .count();
    let urgent = rows
        .iter()
        .filter(|r| r.urgency != Urgency::Normal && !r.handled())
        .count();
    let page_no = f.page.unwrap_or(1).max(1);
    let pages = rows.len().div_ceil(PAGE).max(1);
    let shown = rows.iter().skip((page_no - 1) * PAGE).take(PAGE);
    let qs = f.query_string();
    let sel = |v: &Option<String>, x: &str| nonempty(v) == Some(x);
    let domain = nonempty(&f.domain).and_then(|d| Domain::from_code(d).ok());
    let statuses: Vec<Status> = match domain {
        Some(d) => lifecycle(d).statuses(),
        None => Status::ALL.to_vec(),
    };
    let content = html! {
        h1 { "待办队列" span.en { " Queue" } }
        (flash.render())
        form.filters method="get" action="/queue" {
            label { "类型" select name="domain" {
                option value="" { "全部类型" }
                @for d in Domain::ALL { option value=(d.code()) selected[sel(&f.domain, d.code())] { (d.zh()) } }
            } }
            @if let Some(d) = domain {
                @let cats = load::categories(d);
                @if !cats.is_empty() {
                    label { "类别" select name="category" {
                        option value="" { "全部类别" }
                        @for (code, zh) in cats { option value=(code) selected[sel(&f.category, code)] { (zh) } }
                    } }
                }
            }
            label { "状态" select name="status" {
                option value="" { "全部状态" }
                @for st in &statuses { @if *st != Status::Draft { option value=(st.code()) selected[sel(&f.status, st.code())] { (st.zh()) " " (st.code()) } } }
            } }
            label { "紧急程度" select name="urgency" {
                option value="" { "全部" }
                @for u in Urgency::ALL { option value=(u.code()) selected[sel(&f.urgency, u.code())] { (u.zh()) } }
            } }
            label { "办理情况" select name="state" {
                option value="open" selected[sel(&f.state, "open")] { "未办结" }
                option value="all" selected[sel(&f.state, "all")] { "全部" }
                option value="overdue" selected[sel(&f.state, "overdue")] { "已超期" }
                option value="due_soon" selected[sel(&f.state, "due_soon")] { "将到期" }
                option value="handled" selected[sel(&f.state, "handled")] { "已办结" }
            } }
            label { "村/社区" select name="village" {
                option value="" { "全部" }
                @for (code, name) in &villages { option value=(code) selected[sel(&f.village, code)] { (name) } }
            } }
            label { "网格" select name="grid" {
                option value="" { "全部" }
                @for g in grids.values() { option value=(g.code) selected[sel(&f.grid, &g.code)] { (g.village_name) " " (g.name) } }
            } }
            label { "自" input type="date" name="from" value=[nonempty(&f.from)]; }
            label { "至" input type="date" name="to" value=[nonempty(&f.to)]; }
            label { "搜索" input type="search" name="q" placeholder="内容、人名、案件编号" value=[nonempty(&f.q)]; }
            label { "排序" select name="sort" {
                option value="newest" selected[sel(&f.sort, "newest")] { "最新上报" }
                option value="oldest" selected[sel(&f.sort, "oldest")] { "最早上报" }
                option value="deadline" selected[sel(&f.sort, "deadline")] { "时限最近" }
                option value="urgency" selected[sel(&f.sort, "urgency")] { "紧急优先" }
            } }
            button #filter type="submit" { "筛选 Filter" }
            a.button.secondary href="/queue" { "清除" }
        }
        p.summary {
            "共 " strong #count { (rows.len()) } " 条"
            @if rows.len() >= QUERY_LIMIT { " (只显示最新 " (QUERY_LIMIT) " 条，请缩小筛选范围)" }
            " · " span.overdue-count { "已超期 " strong { (overdue) } }
            " · " span.urgent-count { "紧急/重大未办结 " strong { (urgent) } }
            " · 导出 "
            a href={"/export/records.xlsx?" (qs)} { "Excel" } " / "
            a href={"/export/records.csv?" (qs)} { "CSV" }
        }
        table.queue {
            thead { tr {
                th { "案件编号" } th { "类型 / 类别" } th { "内容" } th { "状态" } th { "紧急" } th { "时限" }
                th { "网格" } th { "上报人" } th { "上报时间" }
            } }
            tbody {
                @for r in shown {
                    @let g = grids.get(&r.grid_code);
                    tr class=(row_class(r, now, &policy)) data-id=(r.id) {
                        td.case-no { a href={"/records/" (r.id)} { (r.case_no.as_deref().unwrap_or("—")) } }
                        td { (r.domain.zh()) br; small.muted { (r.category_label()) } }
                        td.summary { a href={"/records/" (r.id)} { @if r.summary.is_empty() { "(无描述)" } @else { (truncate(&r.summary, 60)) } } (super::supervision::badge(r.supervision))
                            " " (load::place_flag(load::place_off_m(r.location.as_ref(), g))) }
                        td { span.status { (r.status.zh()) }
                            @if let Some(a) = assignees.get(&r.id) { br; small.assignee { "承办：" (people.name(a).unwrap_or(a)) } } }
                        td { span class={"urg " (r.urgency.code().to_lowercase())} { (r.urgency.zh()) } }
                        td { (deadline_cell(r, now, &policy)) }
                        td { @if let Some(g) = g { (g.village_name) br; small.muted { (g.name) } } @else { (r.grid_code) } }
                        td { (super::who(&people, &r.author)) }
                        td { (local(r.created_at)) }
                    }
                }
                @if rows.is_empty() { tr { td colspan="9" .empty { "没有符合条件的记录 No records match" } } }
            }
        }
        @if pages > 1 {
            nav.pager {
                @for p in pager(page_no, pages) {
                    @match p {
                        None => span.gap { "…" },
                        Some(p) if p == page_no => strong { (p) },
                        Some(p) => a href={"/queue?" (qs) "&page=" (p)} { (p) },
                    }
                }
            }
        }
    };
    Ok(page("待办队列", &clerk, "queue", content))
}

/// Page links: the first, the last and those near the current one (`None` is a gap).
fn pager(current: usize, pages: usize) -> Vec<Option<usize>> {
    let mut out = Vec::new();
    for p in 1..=pages {
        if p == 1 || p == pages || p.abs_diff(current) <= 2 {
            out.push(Some(p));
        } else if out.last() != Some(&None) {
            out.push(None);
        }
    }
    out
}

/// At most `n` characters, with an ellipsis.
pub fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(n).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pager_keeps_the_ends_and_the_neighbourhood() {
        assert_eq!(pager(1, 3), vec![Some(1), Some(2), Some(3)]);
        assert_eq!(
            pager(10, 98),
            vec![
                Some(1),
                None,
                Some(8),
                Some(9),
                Some(10),
                Some(11),
                Some(12),
                None,
                Some(98)
            ]
        );
    }

    #[test]
    fn the_filter_round_trips_through_its_query_string() {
        let f = QueueFilter {
            domain: Some("HAZARD".into()),
            q: Some("池塘 护栏".into()),
            grid: Some(String::new()),
            ..Default::default()
        };
        let qs = f.query_string();
        assert_eq!(qs, "domain=HAZARD&q=%E6%B1%A0%E5%A1%98+%E6%8A%A4%E6%A0%8F");
        let uri: axum::http::Uri = format!("/queue?{qs}").parse().unwrap();
        let Query(back) = Query::<QueueFilter>::try_from_uri(&uri).unwrap();
        assert_eq!(back.q.as_deref(), Some("池塘 护栏"));
        assert_eq!(back.domain.as_deref(), Some("HAZARD"));
    }
}
