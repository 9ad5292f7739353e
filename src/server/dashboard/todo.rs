//! 我的待办: the records dispatched to the signed-in account (an ASSIGNEE: a department or a
//! person the county hands work to), with their deadlines; for a reviewer, the records they
//! dispatched and to whom. Also re-dispatching a record (改派), and which pages an assignee
//! may open at all: only this list and the records on it.

use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Utc;
use maud::{Markup, html};
use serde::Deserialize;
use uuid::Uuid;

use super::load::{self, RecordRow, RecordSql};
use super::queue::{deadline_cell, row_class, truncate};
use super::{Clerk, Flash, PageError, explain, flash, local, nonempty, page};
use crate::domain::codes::Coded;
use crate::domain::deadline::DeadlinePolicy;
use crate::server::error::Failure;
use crate::server::repo::{self, Dispatch};
use crate::server::{AppState, records};
use crate::wire::Role;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/todo", get(todo))
        .route("/records/{id}/dispatch", post(redispatch))
}

/// Whether an assignee account may open `path` with `method`: its list, a record's page, the
/// record's moves and replies, photos, signing out. Every other page answers 403.
pub fn assignee_may_open(method: &Method, path: &str) -> bool {
    let parts: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let get = matches!(*method, Method::GET | Method::HEAD);
    match parts.as_slice() {
        ["todo"] | ["photos", _] => get,
        ["records", id] => get && Uuid::parse_str(id).is_ok(),
        ["records", id, "transition" | "reply"] => {
            *method == Method::POST && Uuid::parse_str(id).is_ok()
        }
        ["logout"] => *method == Method::POST,
        _ => false,
    }
}

/// What an assignee sees when it opens any other page.
pub fn not_for_assignee() -> Failure {
    Failure::Forbidden("承办部门账号只能查看和办理分派给本部门的记录：请从「我的待办」打开".into())
}

/// Records dispatched to `username`, newest first (deadline state computed as the queue's).
fn assigned_rows(
    db: &mut dyn crate::server::db::Sql,
    clerk: &Clerk,
) -> Result<Vec<RecordRow>, Failure> {
    // The account's own scope is empty; the records it may read are exactly those dispatched
    // to it, so the list reads the whole county narrowed to them.
    let county = repo::User {
        role: Role::Admin,
        scope_code: String::new(),
        grids: vec![],
        ..clerk.user.clone()
    };
    let name = clerk.user.username.clone();
    load::records(
        db,
        &county,
        |first| {
            let mut s = RecordSql::default();
            s.args.push(name.into());
            s.conds.push(format!(
                "id IN (SELECT record_id FROM record_assignees WHERE assignee = ${first})"
            ));
            s
        },
        super::queue::QUERY_LIMIT,
        load::Want::Full,
    )
}

/// Records in the reviewer's scope that they dispatched, newest first.
fn dispatched_rows(
    db: &mut dyn crate::server::db::Sql,
    clerk: &Clerk,
) -> Result<Vec<RecordRow>, Failure> {
    let name = clerk.user.username.clone();
    load::records(
        db,
        &clerk.user,
        |first| {
            let mut s = RecordSql::default();
            s.args.push(name.into());
            s.conds.push(format!(
                "id IN (SELECT record_id FROM record_assignees WHERE dispatched_by = ${first})"
            ));
            s
        },
        super::queue::QUERY_LIMIT,
        load::Want::Full,
    )
}

struct Todo {
    mine: Vec<RecordRow>,
    dispatched: Vec<RecordRow>,
    assignees: std::collections::BTreeMap<Uuid, String>,
    people: load::People,
}

async fn todo(
    State(s): State<AppState>,
    clerk: Clerk,
    Query(fl): Query<Flash>,
) -> Result<Response, PageError> {
    let c2 = clerk.clone();
    let t = s
        .read(move |db| {
            let mine = assigned_rows(db, &c2)?;
            let dispatched = if c2.reviews() {
                dispatched_rows(db, &c2)?
            } else {
                vec![]
            };
            let ids: Vec<Uuid> = dispatched.iter().map(|r| r.id).collect();
            Ok(Todo {
                mine,
                assignees: repo::assignees_of(db, &ids)?,
                dispatched,
                people: load::people(db)?,
            })
        })
        .await?;
    let open = t.mine.iter().filter(|r| !r.handled()).count();
    let content = html! {
        h1 { "我的待办 " span.en { "My tasks" } }
        (fl.render())
        @if !clerk.reviews() || !t.mine.is_empty() {
            section.card #mine {
                h2 { "分派给我的 Dispatched to me" }
                p.summary { "共 " strong #todo-count { (t.mine.len()) } " 条，未办结 " strong #todo-open { (open) } " 条" }
                (table(&t.mine, None, &t.people))
            }
        }
        @if clerk.reviews() {
            section.card #dispatched {
                h2 { "我分派的 Dispatched by me" }
                p.muted { "你分派给承办部门的记录及其办理进度；改派请打开记录。" }
                (table(&t.dispatched, Some(&t.assignees), &t.people))
            }
        }
    };
    Ok(page("我的待办", &clerk, "todo", content))
}

/// A list of records with their deadlines; with `assignees`, who each is dispatched to.
fn table(
    rows: &[RecordRow],
    assignees: Option<&std::collections::BTreeMap<Uuid, String>>,
    people: &load::People,
) -> Markup {
    let now = Utc::now();
    let policy = DeadlinePolicy::default();
    html! {
        table.queue.todo {
            thead { tr {
                th { "案件编号" } th { "类型 / 类别" } th { "内容" } th { "状态" } th { "时限" }
                @if assignees.is_some() { th { "承办" } }
                th { "上报时间" }
            } }
            tbody {
                @for r in rows {
                    tr class=(row_class(r, now, &policy)) data-id=(r.id) {
                        td.case-no { a href={"/records/" (r.id)} { (r.case_no.as_deref().unwrap_or("—")) } }
                        td { (r.domain.zh()) br; small.muted { (r.category_label()) } }
                        td.summary { a href={"/records/" (r.id)} { @if r.summary.is_empty() { "(无描述)" } @else { (truncate(&r.summary, 60)) } } }
                        td { span.status { (r.status.zh()) } }
                        td { (deadline_cell(r, now, &policy)) }
                        @if let Some(a) = assignees {
                            td.assignee { @if let Some(u) = a.get(&r.id) { (super::who(people, u)) } }
                        }
                        td { (local(r.created_at)) }
                    }
                }
                @if rows.is_empty() { tr { td colspan="7" .empty { "暂无分派的记录 Nothing dispatched" } } }
            }
        }
    }
}

/// The assignee accounts a record may go to, as a chooser (`selected`: the current one).
pub fn chooser(accounts: &[repo::AssigneeAccount], selected: Option<&str>) -> Markup {
    html! {
        select #assignee name="assignee" {
            option value="" { "— 请选择承办部门或人员 —" }
            @for a in accounts {
                option value=(a.username) selected[selected == Some(a.username.as_str())] {
                    (a.display_name) " (" (a.scope_code) ")"
                }
            }
        }
    }
}

/// The record page's part on dispatch: who it is with now, and every dispatch.
pub fn dispatch_log(log: &[Dispatch], people: &load::People) -> Markup {
    html! {
        @if !log.is_empty() {
            h3 { "分派记录 Dispatches" }
            ol.history.dispatches {
                @for d in log {
                    li { (super::who(people, &d.dispatched_by)) " 分派给 " strong { (super::who(people, &d.assignee)) }
                        " · " (local(d.dispatched_at))
                        @if let Some(n) = &d.note { br; span.note { (n) } } }
                }
            }
        }
    }
}

#[derive(Deserialize)]
struct RedispatchForm {
    #[serde(default)]
    assignee: Option<String>,
    #[serde(default)]
    note: Option<String>,
}

/// 改派: a reviewer moves a dispatched record to another assignee account; the status stays.
async fn redispatch(
    State(s): State<AppState>,
    clerk: Clerk,
    Path(id): Path<Uuid>,
    Form(f): Form<RedispatchForm>,
) -> Response {
    let back = format!("/records/{id}");
    let Some(assignee) = nonempty(&f.assignee).map(str::to_owned) else {
        return flash(&back, false, "改派时须在「分派给」中选择承办部门或人员");
    };
    let note = nonempty(&f.note).map(str::to_owned);
    let result = s
        .write(move |db| {
            if repo::assignee_of(db, id)?.is_none() {
                // Only a record already dispatched is re-dispatched; the first dispatch is a
                // status move (分派, 移交).
                records::record_detail(db, &clerk.user, id, false)?;
                return Err(Failure::invalid(
                    "这条记录还没有分派：请用「分派」或「移交部门」办理",
                    Some("assignee"),
                ));
            }
            records::dispatch(db, &clerk.user, id, &assignee, note.as_deref(), Utc::now())?;
            Ok(load::people(db)?.label(&assignee))
        })
        .await;
    match result {
        Ok(who) => flash(
            &back,
            true,
            &format!("已改派给 {who}，其「我的待办」中可见"),
        ),
        Err(e @ Failure::NotFound(_)) => PageError::Failure(e).into_response(),
        Err(e) => flash(&back, false, &explain(&e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_assignee_opens_only_its_list_and_records() {
        let id = Uuid::now_v7();
        let get = Method::GET;
        let post = Method::POST;
        assert!(assignee_may_open(&get, "/todo"));
        assert!(assignee_may_open(&get, &format!("/records/{id}")));
        assert!(assignee_may_open(
            &post,
            &format!("/records/{id}/transition")
        ));
        assert!(assignee_may_open(&post, &format!("/records/{id}/reply")));
        assert!(assignee_may_open(&post, "/logout"));
        for p in [
            "/queue",
            "/stats",
            "/map",
            "/data",
            "/stats/points/worker-a",
            "/export/records.csv",
            "/data/inbox",
            "/records/not-an-id",
        ] {
            assert!(!assignee_may_open(&get, p), "{p}");
        }
        assert!(!assignee_may_open(
            &post,
            &format!("/records/{id}/dispatch")
        ));
        assert!(!assignee_may_open(
            &get,
            &format!("/records/{id}/transition")
        ));
        assert!(!assignee_may_open(&post, "/conflicts/x/settle"));
    }
}
