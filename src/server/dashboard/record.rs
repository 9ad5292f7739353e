//! One record: details, photos, where it is, status history, replies, sync conflicts with
//! both values, and the actions a reviewer may take (lifecycle transitions, replies, settling
//! conflicts). Every action is audited and flows down to the worker's device with its next
//! sync.

use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, NaiveDate, Utc};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::charts::Projection;
use super::load::{self, category_label};
use super::queue::deadline_cell;
use super::{Clerk, Flash, PageError, blocking, explain, flash, local, nonempty, page};
use crate::domain::codes::{
    Coded, Domain, EmergencyLevel, LivelihoodMatter, MediationMethod, PartyRole, ReportStage,
    Satisfaction, ServiceKind, Severity, Urgency,
};
use crate::domain::deadline::{DeadlinePolicy, deadline};
use crate::domain::geo::GeoPoint;
use crate::domain::lifecycle::{Actor, Status, lifecycle};
use crate::domain::model::{Conflict, EntityKind, StatusChange, is_sha256_hex, sniff_mime};
use crate::domain::validate::{mask_id, mask_phone};
use crate::server::error::Failure;
use crate::server::repo::{self, parse_ts};
use crate::server::{AppState, records};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/records/{id}", get(record))
        .route("/records/{id}/transition", post(transition))
        .route("/records/{id}/reply", post(reply))
        .route("/conflicts/{id}/settle", post(settle))
        .route("/photos/{sha}", get(photo))
}

/// The verb on a reviewer's button for a move to `to`.
pub fn verb(to: Status) -> &'static str {
    use Status::*;
    match to {
        Accepted | Confirmed => "受理",
        Assigned | Rectifying => "分派",
        InProgress => "办理",
        Replied => "答复",
        Resolved => "办结",
        Verified => "核查通过",
        Returned => "退回",
        Escalated => "上报上级",
        Suspended => "挂起",
        Transferred => "移交部门",
        Closed => "闭环",
        Archived => "归档",
        Reviewed => "审阅",
        Void => "作废",
        Recheck => "复查",
        Rectified => "确认已整改",
        Mediating => "开始调解",
        Success => "调解成功",
        Failed => "调解失败",
        Referred => "分流",
        FollowUp => "回访",
        Evaluated => "评价",
        _ => "转为",
    }
}

/// Moves that hand the matter to an assignee account, chosen from the list.
fn dispatches_to_account(to: Status) -> bool {
    matches!(
        to,
        Status::Assigned | Status::Rectifying | Status::Transferred
    )
}

/// The reviewer's legal moves from `status`.
pub fn reviewer_moves(domain: Domain, status: Status) -> Vec<Status> {
    lifecycle(domain)
        .transitions
        .iter()
        .filter(|(from, _, who)| *from == status && who.admits(Actor::Reviewer))
        .map(|(_, to, _)| *to)
        .collect()
}

/// The fields shown under "details", in this order.
const FIELD_ORDER: &[&str] = &[
    "category",
    "domain",
    "title",
    "severity",
    "level",
    "description",
    "content",
    "summary",
    "place",
    "raised_by",
    "parties",
    "occurred_at",
    "started_at",
    "ended_at",
    "distance_m",
    "notes",
    "deliberation",
    "deliberation_notes",
    "owner",
    "due_date",
    "follow_up",
    "satisfaction",
    "household_id",
    "served_person_id",
    "service",
    "audience",
    "matter",
];

fn field_label(k: &str) -> &'static str {
    match k {
        "category" => "类别",
        "severity" => "严重程度",
        "description" => "描述",
        "place" => "地点",
        "owner" => "整改责任人/部门",
        "due_date" => "整改期限",
        "content" => "内容",
        "raised_by" => "反映人",
        "deliberation" => "三议四步",
        "deliberation_notes" => "议事记录",
        "summary" => "概要",
        "parties" => "当事人",
        "follow_up" => "回访",
        "started_at" => "开始时间",
        "ended_at" => "结束时间",
        "notes" => "备注",
        "distance_m" => "巡防里程",
        "level" => "级别",
        "title" => "标题",
        "occurred_at" => "发生时间",
        "satisfaction" => "满意度",
        "domain" => "类型",
        "household_id" => "关联户",
        "served_person_id" => "服务对象",
        "service" => "服务内容",
        "audience" => "受众人数",
        "matter" => "事项",
        "status" => "状态",
        "urgency" => "紧急程度",
        "location" => "位置",
        _ => "",
    }
}

/// A field's value in words: codes as Chinese labels, phones masked, times local.
fn show_value(domain: Domain, k: &str, v: &Value, reveal: bool) -> String {
    let s = v.as_str().unwrap_or("");
    match (k, v) {
        (_, Value::Null) => "—".into(),
        (_, Value::String(s)) if s.trim().is_empty() => "—".into(),
        ("category", _) => category_label(domain, s),
        ("severity", _) => super::label::<Severity>(s),
        ("level", _) => super::label::<EmergencyLevel>(s),
        ("satisfaction", _) => super::label::<Satisfaction>(s),
        ("service", _) => super::label::<ServiceKind>(s),
        ("matter", _) => super::label::<LivelihoodMatter>(s),
        ("audience", Value::Number(n)) => format!("{n} 人"),
        ("status", _) => super::label::<Status>(s),
        ("urgency", _) => super::label::<Urgency>(s),
        ("domain", _) => super::label::<Domain>(s),
        ("distance_m", Value::Number(n)) => {
            format!("{:.2} 公里", n.as_f64().unwrap_or(0.0) / 1000.0)
        }
        ("started_at" | "ended_at" | "occurred_at", _) => {
            parse_ts(s).map(local).unwrap_or_else(|_| s.to_owned())
        }
        ("parties", Value::Array(ps)) => ps
            .iter()
            .map(|p| {
                let name = p.get("name").and_then(Value::as_str).unwrap_or("?");
                let role = p
                    .get("role")
                    .and_then(Value::as_str)
                    .map(super::label::<PartyRole>)
                    .unwrap_or_default();
                let phone = p
                    .get("phone")
                    .and_then(Value::as_str)
                    .map(|ph| {
                        format!(
                            " {}",
                            if reveal {
                                ph.to_owned()
                            } else {
                                mask_phone(ph)
                            }
                        )
                    })
                    .unwrap_or_default();
                format!("{name}（{role}）{phone}")
            })
            .collect::<Vec<_>>()
            .join("；"),
        ("follow_up", Value::Object(f)) => {
            let on = f.get("on").and_then(Value::as_str).unwrap_or("");
            let sat = f
                .get("satisfaction")
                .and_then(Value::as_str)
                .map(super::label::<Satisfaction>)
                .unwrap_or_default();
            let notes = f.get("notes").and_then(Value::as_str).unwrap_or("");
            format!("{on} {sat} {notes}")
        }
        ("location", _) => serde_json::from_value::<GeoPoint>(v.clone())
            .map(|p| {
                format!(
                    "{:.5}, {:.5}{}",
                    p.lon,
                    p.lat,
                    p.accuracy_m
                        .map(|a| format!(" (±{a:.0} 米)"))
                        .unwrap_or_default()
                )
            })
            .unwrap_or_default(),
        (_, Value::String(s)) => s.clone(),
        (_, Value::Bool(b)) => if *b { "是" } else { "否" }.into(),
        (_, other) => other.to_string(),
    }
}

/// A conflict's value, in words (IDs and phones masked).
fn show_conflict_value(field: &str, v: &Value) -> String {
    match (field, v) {
        ("id_number", Value::String(s)) => mask_id(s),
        ("phone", Value::String(s)) => mask_phone(s),
        ("status", Value::String(s)) => super::label::<Status>(s),
        (_, Value::String(s)) => s.clone(),
        (_, Value::Null) => "（空）".into(),
        (_, other) => other.to_string(),
    }
}

struct Detail {
    domain: Domain,
    record: Map<String, Value>,
    history: Vec<StatusChange>,
    replies: Vec<Value>,
    conflicts: Vec<Conflict>,
    sessions: Vec<Value>,
    reports: Vec<Value>,
    grid: Option<load::GridInfo>,
    people: load::People,
    case_no: Option<String>,
    /// The assignee account it is dispatched to, every dispatch, and (for a reviewer) the
    /// accounts it may go to.
    assignee: Option<String>,
    dispatches: Vec<repo::Dispatch>,
    choices: Vec<repo::AssigneeAccount>,
    /// The name of the person a 特殊人群服务 record served, when the clerk's scope holds them.
    served: Option<String>,
    /// The county's deadline policy.
    policy: DeadlinePolicy,
}

fn detail(db: &mut dyn crate::server::db::Sql, clerk: &Clerk, id: Uuid) -> Result<Detail, Failure> {
    // Unmasked: the page masks phones and ID numbers as it shows them.
    let v = records::record_detail(db, &clerk.user, id, true)?;
    let kind = v
        .get("kind")
        .and_then(Value::as_str)
        .and_then(|k| EntityKind::from_code(k).ok())
        .ok_or_else(|| Failure::Internal("record without kind".into()))?;
    let domain = kind
        .domain()
        .ok_or_else(|| Failure::NotFound(format!("no record {id} in your scope")))?;
    let record = v
        .get("record")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let history: Vec<StatusChange> =
        serde_json::from_value(v.get("history").cloned().unwrap_or(Value::Null))
            .unwrap_or_default();
    let children = v.get("children").cloned().unwrap_or(Value::Null);
    let list = |k: &str| -> Vec<Value> {
        children
            .get(k)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let conflicts = list("CONFLICT")
        .into_iter()
        .filter_map(|c| serde_json::from_value(c).ok())
        .collect();
    let grid = match record
        .get("grid_id")
        .and_then(Value::as_str)
        .and_then(|g| Uuid::parse_str(g).ok())
    {
        // An assignee has no area of its own: it sees the grid of a record dispatched to it
        // (record_detail above has checked that).
        Some(g) if clerk.user.role == crate::wire::Role::Assignee => {
            let grid_scope = repo::User {
                role: crate::wire::Role::Admin,
                scope_code: repo::entity_head(db, id)?
                    .map(|(_, code)| code)
                    .unwrap_or_else(|| "~".into()),
                grids: vec![],
                ..clerk.user.clone()
            };
            load::grid(db, &grid_scope, g)?
        }
        Some(g) => load::grid(db, &clerk.user, g)?,
        None => None,
    };
    let grid_code = grid.as_ref().map(|g| g.code.clone()).unwrap_or_default();
    let served = match record
        .get("served_person_id")
        .and_then(Value::as_str)
        .and_then(|p| Uuid::parse_str(p).ok())
    {
        Some(p) => repo::get_entity(db, p)?
            .filter(|e| e.kind == EntityKind::Person && clerk.user.scope().covers(&e.grid_code))
            .and_then(|e| {
                e.data
                    .get("name")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            }),
        None => None,
    };
    Ok(Detail {
        assignee: repo::assignee_of(db, id)?,
        dispatches: repo::dispatches(db, id)?,
        choices: if clerk.reviews() {
            repo::assignees_for(db, &grid_code)?
        } else {
            vec![]
        },
        domain,
        served,
        history,
        replies: list("REPLY"),
        conflicts,
        sessions: list("MEDIATION_SESSION"),
        reports: list("EMERGENCY_REPORT"),
        grid,
        record,
        people: load::people(db)?,
        case_no: repo::case_numbers(db, &[id])?.remove(&id),
        policy: repo::deadline_policy(db)?,
    })
}

/// A small map: the record's grid, and the record's point (the map widens to show a point
/// located outside the grid).
fn location_map(grid: Option<&load::GridInfo>, at: Option<&GeoPoint>) -> Markup {
    use geo::BoundingRect;
    let Some(g) = grid else { return html! {} };
    let Some(mut bounds) = g.boundary.bounding_rect() else {
        return html! {};
    };
    if let Some(p) = at {
        let (lo, hi) = (bounds.min(), bounds.max());
        bounds = geo::Rect::new(
            geo::coord! { x: lo.x.min(p.lon), y: lo.y.min(p.lat) },
            geo::coord! { x: hi.x.max(p.lon), y: hi.y.max(p.lat) },
        );
    }
    let pr = Projection::fit_in(bounds, 420.0, 300.0, 12.0);
    html! {
        svg.minimap xmlns="http://www.w3.org/2000/svg" viewBox={"0 0 " (pr.width()) " " (pr.height())} width=(pr.width()) height=(pr.height()) role="img" {
            title { "网格 " (g.name) " 与上报位置" }
            path d=(pr.path(&g.boundary)) fill="#e8f0f8" stroke="#2f6fb3" stroke-width="1.5" {}
            @if let Some(p) = at {
                @let (x, y) = pr.xy(p.lon, p.lat);
                circle cx=(x) cy=(y) r="7" fill="#c2412d" stroke="#fff" stroke-width="2" {}
            }
        }
    }
}

#[derive(Debug, Default, Deserialize)]
struct RevealQuery {
    #[serde(default)]
    reveal: Option<u8>,
}

async fn record(
    State(s): State<AppState>,
    clerk: Clerk,
    Path(id): Path<Uuid>,
    Query(fl): Query<Flash>,
    Query(rq): Query<RevealQuery>,
) -> Result<Response, PageError> {
    // A reviewer may see the parties' full phones; each look is audited, as the API's.
    let reveal = rq.reveal == Some(1) && clerk.reviews();
    let d = read_detail(s, &clerk, id, reveal).await?;
    let f = d.facts()?;
    let (status, urgency) = (f.status, f.urgency);
    let content = html! {
        p.crumbs { @if clerk.reviews() { a href="/queue" { "← 待办队列" } } @else { a href="/todo" { "← 我的待办" } } }
        h1 {
            @if let Some(c) = &d.case_no { span.case-no { (c) } " " }
            (d.domain.zh()) " · " (category_label(d.domain, d.text("category")))
            " " span.status #status { (status.zh()) }
            @if urgency != Urgency::Normal { " " span class={"urg " (urgency.code().to_lowercase())} { (urgency.zh()) } }
            (super::supervision::badge(super::supervision::level(&d.record)))
        }
        (fl.render())
        div.cols {
            (details_card(&d, &f, &clerk, id, reveal))
            (location_card(&d, &f))
        }
        (conflicts_card(&d, &clerk, id))
        (super::tasks::give_link(&clerk, id, false))
        (super::volunteers::credit_link(&clerk, id))
        div.cols {
            (actions_card(&d, status, &clerk, id))
            (history_card(&d, &f))
        }
        (super::supervision::card(
            &d.record,
            crate::domain::deadline::phase(d.domain, status) != crate::domain::deadline::Phase::Done,
            deadline(d.domain, urgency, status, f.created, &d.policy).map(|dl| dl.state(Utc::now(), &d.policy)),
            &clerk,
            id,
        ))
    };
    Ok(page(
        &format!("{} {}", d.domain.zh(), status.zh()),
        &clerk,
        if clerk.user.role == crate::wire::Role::Assignee {
            "todo"
        } else {
            "queue"
        },
        content,
    ))
}

/// The record's detail for the page; with `reveal`, the look is audited in the same
/// transaction.
async fn read_detail(
    s: AppState,
    clerk: &Clerk,
    id: Uuid,
    reveal: bool,
) -> Result<Detail, PageError> {
    let c2 = clerk.clone();
    let d = if reveal {
        s.write(move |db| {
            let d = detail(db, &c2, id)?;
            repo::audit(
                db,
                Utc::now(),
                &c2.user.username,
                None,
                "REVEAL",
                None,
                Some(id),
                Some("parties' phones of the record (dashboard)".into()),
            )?;
            Ok::<_, Failure>(d)
        })
        .await?
    } else {
        s.read(move |db| detail(db, &c2, id)).await?
    };
    Ok(d)
}

/// What the page reads off the record itself.
struct Facts {
    status: Status,
    urgency: Urgency,
    created: DateTime<Utc>,
    location: Option<GeoPoint>,
}

impl Detail {
    /// A text field of the record ("" when it has none).
    fn text(&self, k: &str) -> &str {
        self.record.get(k).and_then(Value::as_str).unwrap_or("")
    }

    fn facts(&self) -> Result<Facts, Failure> {
        let status =
            Status::from_code(self.text("status")).map_err(|e| Failure::Internal(e.to_string()))?;
        let urgency = Urgency::from_code(self.text("urgency")).unwrap_or(Urgency::Normal);
        let created = parse_ts(self.text("created_at")).map_err(Failure::from)?;
        let location: Option<GeoPoint> = self
            .record
            .get("location")
            .and_then(|l| serde_json::from_value(l.clone()).ok());
        Ok(Facts {
            status,
            urgency,
            created,
            location,
        })
    }

    /// The SHA-256 of each photo the record names.
    fn photos(&self) -> Vec<String> {
        self.record
            .get("photos")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|p| p.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The details card: case number, grid, author, times, the deadline, the record's fields
/// (the parties' phones revealed on request), photos, mediation sessions and reports.
fn details_card(d: &Detail, f: &Facts, clerk: &Clerk, id: Uuid, reveal: bool) -> Markup {
    let policy = &d.policy;
    let row = load::RecordRow {
        id,
        case_no: d.case_no.clone(),
        domain: d.domain,
        status: f.status,
        urgency: f.urgency,
        category: d.text("category").to_owned(),
        author: d.text("author").to_owned(),
        grid_code: d.grid.as_ref().map(|g| g.code.clone()).unwrap_or_default(),
        created_at: f.created,
        updated_at: f.created,
        summary: String::new(),
        location: f.location,
        satisfaction: None,
        deadline: deadline(d.domain, f.urgency, f.status, f.created, policy),
        supervision: super::supervision::level(&d.record),
    };
    let shown_fields: Vec<(&str, &Value)> = FIELD_ORDER
        .iter()
        .filter_map(|k| d.record.get(*k).map(|v| (*k, v)))
        .collect();
    let photos = d.photos();
    html! {
        section.card {
            h2 { "详情 Details" }
            dl.fields {
                dt { "案件编号" } dd { @if let Some(c) = &d.case_no { strong.case-no { (c) } " " } small.muted { code { (id) } } }
                dt { "网格" } dd { @if let Some(g) = &d.grid { (g.town_name) " " (g.village_name) " " (g.name) " (" (g.code) ")" } }
                dt { "上报人" } dd { (super::who(&d.people, d.text("author"))) }
                dt { "上报时间" } dd { (local(f.created)) }
                dt { "时限" } dd { (deadline_cell(&row, Utc::now(), policy)) }
                @for (k, v) in &shown_fields {
                    dt { (field_label(k)) } dd {
                        @if let ("household_id", Some(h)) = (*k, v.as_str()) { a.household href={"/households/" (h)} { "查看该户" } }
                        @else if let ("served_person_id", Some(name)) = (*k, &d.served) {
                            (name) " " small.muted { (show_value(d.domain, k, v, reveal)) }
                        } @else {
                            (show_value(d.domain, k, v, reveal))
                        }
                        @if *k == "parties" && clerk.reviews() {
                            @if reveal { br; small.muted #revealed { "已显示完整电话，此次查看已记入审计日志" } }
                            @else { " " a.reveal #reveal-phones href={"/records/" (id) "?reveal=1"} { "查看完整电话（留痕）" } }
                        }
                    }
                }
            }
            @if !photos.is_empty() {
                h3 { "照片 Photos" }
                div.photos {
                    @for p in &photos {
                        a href={"/photos/" (p)} { img src={"/photos/" (p)} alt="现场照片" loading="lazy"; }
                    }
                }
            }
            (sessions_and_reports(d))
        }
    }
}

/// An emergency's reports as the county reads them, oldest first: each report with its
/// stage, and each 处置中 move the worker made with its note, at the stage that move stands
/// for (`report_stage`: a 续报). (time, stage, whether it is a 处置中 move, text.)
fn emergency_reports(d: &Detail) -> Vec<(String, Option<ReportStage>, bool, String)> {
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    let mut out: Vec<(String, Option<ReportStage>, bool, String)> = d
        .reports
        .iter()
        .map(|r| {
            let stage = r
                .get("stage")
                .and_then(Value::as_str)
                .and_then(|c| ReportStage::from_code(c).ok());
            (text(r, "created_at"), stage, false, text(r, "text"))
        })
        .collect();
    if d.domain == Domain::Emergency {
        for h in d.history.iter().filter(|h| h.to == Status::Handling) {
            out.push((
                h.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                crate::domain::model::report_stage(h.to),
                true,
                h.note.clone().unwrap_or_default(),
            ));
        }
    }
    out.sort_by(|a, b| {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).ok();
        at(&a.0).cmp(&at(&b.0))
    });
    out
}

/// A dispute's mediation sessions and an emergency's reports, when it has any.
fn sessions_and_reports(d: &Detail) -> Markup {
    html! {
        @if !d.sessions.is_empty() {
            h3 { "调解记录 Mediation sessions" }
            ol.sessions {
                @for m in &d.sessions {
                    li {
                        strong { (m.get("held_on").and_then(Value::as_str).unwrap_or("")) " "
                            (m.get("method").and_then(Value::as_str).map(super::label::<MediationMethod>).unwrap_or_default()) }
                        " " (m.get("notes").and_then(Value::as_str).unwrap_or(""))
                        @if let Some(a) = m.get("agreement").and_then(Value::as_str) { br; "协议：" (a) }
                    }
                }
            }
        }
        @let reports = emergency_reports(d);
        @if !reports.is_empty() {
            h3 { "事件报告 Reports" }
            ol.sessions #reports {
                @for (_, stage, handling, text) in &reports {
                    li {
                        strong { (stage.map(|s| s.zh()).unwrap_or_default()) @if *handling { "（处置中）" } }
                        " " (text)
                    }
                }
            }
        }
    }
}

/// Where the record was made: whether it is inside its grid, and the minimap.
fn location_card(d: &Detail, f: &Facts) -> Markup {
    html! {
        section.card {
            h2 { "位置 Location" }
            @if let Some(p) = &f.location {
                p { (load::place_flag(load::place_off_m(Some(p), d.grid.as_ref()))) }
                (location_map(d.grid.as_ref(), Some(p)))
                p.muted { (format!("{:.5}, {:.5}", p.lon, p.lat)) @if let Some(a) = p.accuracy_m { " ±" (format!("{a:.0}")) " 米" } }
            } @else {
                (location_map(d.grid.as_ref(), None))
                p.muted { "未记录位置" }
            }
        }
    }
}

/// The record's sync conflicts, both values side by side, settled from here by a reviewer.
fn conflicts_card(d: &Detail, clerk: &Clerk, id: Uuid) -> Markup {
    html! {
        @if !d.conflicts.is_empty() {
            section.card.conflicts {
                h2 { "同步冲突 Sync conflicts" }
                p.muted { "同一字段在两处被同时修改：保留了较晚的修改，另一方的值也在这里，请核对后处理。" }
                table {
                    thead { tr { th { "字段" } th { "保留的值" } th { "被覆盖的值" } th { "处理" } } }
                    tbody {
                        @for c in &d.conflicts {
                            tr.conflict data-field=(c.field) {
                                td { (if field_label(&c.field).is_empty() { c.field.as_str() } else { field_label(&c.field) }) }
                                td.kept { strong { (show_conflict_value(&c.field, &c.kept)) } br; small.muted { (c.kept_by) " · " (local(c.kept_at)) } }
                                td.lost { strong { (show_conflict_value(&c.field, &c.lost)) } br; small.muted { (c.lost_by) " · " (local(c.lost_at)) } }
                                td {
                                    @if let (Some(by), Some(at)) = (&c.settled_by, c.settled_at) {
                                        "已处理：" (by) " · " (local(at))
                                    } @else if clerk.reviews() {
                                        form method="post" action={"/conflicts/" (c.id) "/settle"} {
                                            (clerk.csrf_field())
                                            input type="hidden" name="record" value=(id);
                                            button name="take" value="kept" { "保留现值" }
                                            @if c.field != "status" { " " button.secondary name="take" value="lost" { "改用被覆盖的值" } }
                                        }
                                    } @else { span.muted { "待处理" } }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A reviewer's moves from the record's status (with the assignee and due date they ask
/// for) and the reply form; a worker's account only reads.
fn actions_card(d: &Detail, status: Status, clerk: &Clerk, id: Uuid) -> Markup {
    let assignee = clerk.user.role == crate::wire::Role::Assignee;
    let moves = if clerk.reviews() {
        reviewer_moves(d.domain, status)
    } else if assignee {
        reviewer_moves(d.domain, status)
            .into_iter()
            .filter(|to| crate::domain::lifecycle::assignee_may(status, *to))
            .collect()
    } else {
        vec![]
    };
    let acts = clerk.reviews() || assignee;
    let today = super::today();
    html! {
        section.card {
            h2 { "办理 Actions" }
            @if let Some(a) = &d.assignee {
                p #assigned-to { "承办：" strong { (super::who(&d.people, a)) } }
            }
            @if !acts {
                p.muted { "网格员账号只能查看；受理、分派、答复由村、乡镇和县级人员办理。" }
            } @else if moves.is_empty() {
                p.muted { "当前状态「" (status.zh()) "」没有可由审核人员办理的操作。" }
            } @else {
                form.action #actions method="post" action={"/records/" (id) "/transition"} {
                    (clerk.csrf_field())
                    @if moves.iter().any(|m| dispatches_to_account(*m)) {
                        label { @if d.domain == Domain::Hazard { "整改责任人/部门（分派、移交时选择）" } @else { "分派给 承办部门或人员（分派、移交时选择）" }
                            (super::todo::chooser(&d.choices, None)) }
                        @if d.domain == Domain::Hazard && moves.contains(&Status::Rectifying) {
                            label { "整改期限" input #due_date type="date" name="due_date" min=(today.to_string()); }
                        }
                    }
                    label.wide { "意见（随状态发送给网格员，可选）" textarea #note name="note" rows="2" {} }
                    div.buttons {
                        @for to in &moves {
                            button type="submit" name="to" value=(to.code()) id={"move-" (to.code())}
                                class=@if matches!(to, Status::Returned | Status::Void | Status::Suspended) { "secondary" } {
                                (verb(*to)) " → " (to.zh())
                            }
                        }
                    }
                }
            }
            @if clerk.reviews() && d.assignee.is_some() && !crate::domain::deadline::is_handled(status) {
                form.action #redispatch method="post" action={"/records/" (id) "/dispatch"} {
                    (clerk.csrf_field())
                    label { "改派给 Re-dispatch" (super::todo::chooser(&d.choices, d.assignee.as_deref())) }
                    label.wide { "改派说明（可选）" input name="note"; }
                    button.secondary #move-redispatch type="submit" { "改派" }
                }
            }
            @if acts {
                form.action method="post" action={"/records/" (id) "/reply"} id="reply" {
                    (clerk.csrf_field())
                    label { "答复网格员 Reply" textarea name="text" rows="2" required {} }
                    button.secondary type="submit" { "发送答复" }
                }
            }
        }
    }
}

/// Who filed the record and every status move since, with the notes; then the replies.
fn history_card(d: &Detail, f: &Facts) -> Markup {
    html! {
        section.card {
            h2 { "办理记录 History" }
            ol.history {
                li { strong { "上报" } " · " (super::who(&d.people, d.text("author"))) " · " (local(f.created)) }
                @for h in &d.history {
                    li { strong { (h.from.zh()) " → " (h.to.zh()) } " · " (super::who(&d.people, &h.actor)) " · " (local(h.at))
                        @if let Some(n) = &h.note { br; span.note { (n) } } }
                }
            }
            (super::todo::dispatch_log(&d.dispatches, &d.people))
            h3 { "答复 Replies" }
            @if d.replies.is_empty() { p.muted { "暂无答复" } }
            ul.replies {
                @for r in &d.replies {
                    li { (r.get("text").and_then(Value::as_str).unwrap_or("")) br;
                        small.muted { (super::who(&d.people, r.get("author").and_then(Value::as_str).unwrap_or(""))) " · "
                            (r.get("created_at").and_then(Value::as_str).and_then(|t| parse_ts(t).ok()).map(local).unwrap_or_default()) } }
                }
            }
        }
    }
}

#[derive(Deserialize)]
struct TransitionForm {
    to: String,
    #[serde(default)]
    note: Option<String>,
    #[serde(default)]
    assignee: Option<String>,
    #[serde(default)]
    due_date: Option<String>,
}

async fn transition(
    State(s): State<AppState>,
    clerk: Clerk,
    Path(id): Path<Uuid>,
    Form(f): Form<TransitionForm>,
) -> Response {
    let back = format!("/records/{id}");
    let _turn = s.db.write_turn().await;
    let result = blocking(move || {
        let to = Status::from_code(f.to.trim()).map_err(|e| super::bad_code(&e, "to"))?;
        let assignee = nonempty(&f.assignee)
            .filter(|_| dispatches_to_account(to))
            .map(str::to_owned);
        if dispatches_to_account(to) && assignee.is_none() {
            return Err(Failure::invalid(
                format!(
                    "改为「{}」时须填写「分派给」：从列表中选择交给哪个承办部门或人员",
                    to.zh()
                ),
                Some("assignee"),
            ));
        }
        let due = nonempty(&f.due_date)
            .map(|d| {
                NaiveDate::parse_from_str(d, "%Y-%m-%d")
                    .map_err(|_| super::bad_date(d, "due_date", "整改期限"))
            })
            .transpose()?;
        let note = nonempty(&f.note).map(str::to_owned);
        s.db.tx(|db| {
            let now = Utc::now();
            // The account first (refused if it may not take the record), then the move; the
            // worker reads the assignee by name in the history note.
            let assignee = match &assignee {
                Some(a) => {
                    records::dispatch(db, &clerk.user, id, a, note.as_deref(), now)?;
                    Some(load::people(db)?.name(a).unwrap_or(a).to_owned())
                }
                None => None,
            };
            let full_note = match (&assignee, &note) {
                (Some(a), Some(n)) => Some(format!("分派给：{a}。{n}")),
                (Some(a), None) => Some(format!("分派给：{a}")),
                (None, n) => n.clone(),
            };
            let kind = crate::server::repo::entity_head(db, id)?.map(|(k, _)| k);
            if kind == Some(EntityKind::Hazard) && to == Status::Rectifying {
                let mut fields = Map::new();
                fields.insert(
                    "owner".into(),
                    Value::String(assignee.clone().unwrap_or_default()),
                );
                if let Some(d) = due {
                    fields.insert("due_date".into(), Value::String(d.to_string()));
                }
                records::review_edit(db, &clerk.user, id, fields, now)?;
            }
            records::review_transition(db, &clerk.user, id, to, full_note, now)?;
            Ok::<_, Failure>(to)
        })
    })
    .await;
    match result {
        Ok(to) => flash(
            &back,
            true,
            &format!(
                "已{}：状态现为「{}」，网格员下次同步时可见",
                verb(to),
                to.zh()
            ),
        ),
        Err(e @ Failure::NotFound(_)) => PageError::Failure(e).into_response(),
        Err(e) => flash(&back, false, &explain(&e)),
    }
}

#[derive(Deserialize)]
struct ReplyForm {
    text: String,
}

async fn reply(
    State(s): State<AppState>,
    clerk: Clerk,
    Path(id): Path<Uuid>,
    Form(f): Form<ReplyForm>,
) -> Response {
    let back = format!("/records/{id}");
    match s
        .write(move |db| Ok(records::reply(db, &clerk.user, id, &f.text, Utc::now())?))
        .await
    {
        Ok(_) => flash(&back, true, "答复已发送，网格员下次同步时可见"),
        Err(e @ Failure::NotFound(_)) => PageError::Failure(e).into_response(),
        Err(e) => flash(&back, false, &explain(&e)),
    }
}

#[derive(Deserialize)]
struct SettleForm {
    take: String,
    record: Uuid,
}

async fn settle(
    State(s): State<AppState>,
    clerk: Clerk,
    Path(id): Path<Uuid>,
    Form(f): Form<SettleForm>,
) -> Response {
    let back = format!("/records/{}", f.record);
    let take_lost = f.take == "lost";
    match s
        .write(move |db| {
            Ok(records::settle_conflict(
                db,
                &clerk.user,
                id,
                take_lost,
                Utc::now(),
            )?)
        })
        .await
    {
        Ok(()) => flash(
            &back,
            true,
            if take_lost {
                "已改用被覆盖的值"
            } else {
                "已确认保留现值"
            },
        ),
        Err(e @ Failure::NotFound(_)) => PageError::Failure(e).into_response(),
        Err(e) => flash(&back, false, &explain(&e)),
    }
}

/// What a photo that is missing, out of scope or not a photo answers.
const NO_PHOTO: &str = "没有这张照片，或不在你的范围内 (no such photo in your scope)";

/// A photo of a record in scope (same rule as the API: some entity in scope names it).
///
/// Only raster bytes are served, and typed by what the bytes are, never by the type the
/// upload declared: a stored "photo" that is really SVG or HTML would otherwise run its script
/// in the dashboard's origin. Anything that does not sniff as JPEG, PNG or WebP answers "not
/// found"; `nosniff` stops the browser from guessing otherwise.
async fn photo(
    State(s): State<AppState>,
    clerk: Clerk,
    Path(sha): Path<String>,
) -> Result<Response, PageError> {
    let missing = || Failure::NotFound(NO_PHOTO.into());
    if !is_sha256_hex(&sha) {
        return Err(missing().into());
    }
    let sha2 = sha.clone();
    let found = s
        .read(move |db| {
            if clerk.user.role == crate::wire::Role::Assignee {
                return Ok(repo::photo_assigned_to(db, &clerk.user.username, &sha2)?);
            }
            Ok(crate::server::repo::photo_in_scope(
                db,
                &clerk.user.scope(),
                &sha2,
            )?)
        })
        .await?;
    let (bytes, _declared) = found.ok_or_else(missing)?;
    let Some(mime) = sniff_mime(&bytes) else {
        tracing::warn!(
            sha,
            "dashboard: a stored photo is not a JPEG, PNG or WebP; not served"
        );
        return Err(missing().into());
    };
    let ext = match mime {
        "image/png" => "png",
        "image/webp" => "webp",
        _ => "jpg",
    };
    Ok((
        [
            (header::CONTENT_TYPE, mime.to_owned()),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("inline; filename=\"{sha}.{ext}\""),
            ),
            (header::CACHE_CONTROL, "private, max-age=86400".to_owned()),
        ],
        bytes,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reviewer_may_accept_or_transfer_a_reported_hazard() {
        let m = reviewer_moves(Domain::Hazard, Status::Reported);
        assert!(m.contains(&Status::Confirmed) && m.contains(&Status::Transferred));
        // Rectified on the spot is the worker's or the reviewer's; void too; nothing else.
        assert!(!m.contains(&Status::Closed));
        assert_eq!(reviewer_moves(Domain::Hazard, Status::Closed), vec![]);
    }

    #[test]
    fn values_are_shown_in_words() {
        assert_eq!(
            show_value(
                Domain::Hazard,
                "category",
                &Value::String("WATER".into()),
                false
            ),
            "溺水"
        );
        assert_eq!(
            show_value(
                Domain::Hazard,
                "severity",
                &Value::String("HIGH".into()),
                false
            ),
            "重大"
        );
        assert_eq!(
            show_conflict_value("phone", &Value::String("13812345678".into())),
            "138****5678"
        );
        let parties =
            serde_json::json!([{"name": "张三", "role": "APPLICANT", "phone": "13812345678"}]);
        let s = show_value(Domain::Dispute, "parties", &parties, false);
        assert!(s.contains("张三") && s.contains("138****5678") && !s.contains("13812345678"));
        let s = show_value(Domain::Dispute, "parties", &parties, true);
        assert!(s.contains("13812345678"), "{s}");
    }
}
