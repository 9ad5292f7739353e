//! Tasks for grid workers (任务): the list of tasks in scope, open ones first by due date with
//! the overdue in red and the completed ones with who, when, the note and the photos; the form
//! that gives a task about a record or a household to a worker of its grid; cancelling.

use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{NaiveDate, Utc};
use maud::{Markup, html};
use serde::Deserialize;
use uuid::Uuid;

use super::{Clerk, Flash, PageError, explain, flash, local, nonempty, page, today};
use crate::domain::codes::{Coded, TaskKind, TaskStatus};
use crate::domain::model::{EntityKind, Task};
use crate::server::AppState;
use crate::server::error::Failure;
use crate::server::records::{self, NewTask};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/tasks", get(list).post(create))
        .route("/tasks/new", get(new_form))
        .route("/tasks/{id}/cancel", post(cancel))
}

/// The link a record's or household's page shows to give a task about it.
pub fn give_link(clerk: &Clerk, about: Uuid, household: bool) -> Markup {
    html! {
        @if clerk.reviews() {
            p { a.button #give-task href={"/tasks/new?about=" (about)} {
                @if household { "安排走访" } @else { "派给网格员复查/核实" }
            } }
        }
    }
}

fn status_class(t: &Task, today: NaiveDate) -> &'static str {
    if t.is_overdue(today) {
        "overdue"
    } else {
        match t.status {
            TaskStatus::Open => "",
            TaskStatus::Done => "done",
            TaskStatus::Cancelled => "cancelled",
        }
    }
}

async fn list(
    State(s): State<AppState>,
    clerk: Clerk,
    Query(fl): Query<Flash>,
) -> Result<Response, PageError> {
    let user = clerk.user.clone();
    let (tasks, people) = s
        .read(move |db| {
            let tasks = records::list_tasks(db, &user)?;
            Ok((tasks, super::load::people(db)?))
        })
        .await?;
    let today = today();
    let open = tasks
        .iter()
        .filter(|t| t.status == TaskStatus::Open)
        .count();
    let overdue = tasks.iter().filter(|t| t.is_overdue(today)).count();
    let content = html! {
        h1 { "任务" span.en { " Tasks" } }
        (fl.render())
        p.summary {
            "待完成 " strong #open-count { (open) } " 项"
            @if overdue > 0 { " · " span.overdue-count { "已超期 " strong #overdue-count { (overdue) } " 项" } }
        }
        @if clerk.reviews() {
            p.muted { "在记录页点「派给网格员复查/核实」给网格员派任务；网格员下次同步后在手机「今日」里看到。" }
        }
        @if tasks.is_empty() {
            p.muted #no-tasks { "还没有任务。" }
        } @else {
            table.queue #tasks {
                thead { tr {
                    th { "任务" } th { "对象" } th { "网格员" } th { "完成期限" } th { "状态" } th { "完成情况" } th {}
                } }
                tbody {
                    @for t in &tasks {
                        tr class=(status_class(t, today)) id={"task-" (t.id)} {
                            td { (t.kind.zh()) div.note { (t.note) } }
                            td {
                                @match (t.record_id, t.household_id) {
                                    (Some(r), _) => { a href={"/records/" (r)} { (t.about) } }
                                    _ => { (t.about) }
                                }
                            }
                            td { (super::who(&people, &t.assignee)) }
                            td {
                                (t.due_date.to_string())
                                @if t.is_overdue(today) { " " span.dl.overdue { "已超期" } }
                            }
                            td { span.status.task-status { (t.status.zh()) } }
                            td.done {
                                @if t.status == TaskStatus::Done {
                                    div { (t.done_by.as_deref().map(|u| people.label(u)).unwrap_or_default())
                                        " · " (t.done_at.map(local).unwrap_or_default()) }
                                    div.note { (t.done_note.as_deref().unwrap_or("")) }
                                    @let photos = t.photos();
                                    @if !photos.is_empty() {
                                        div.photos {
                                            @for sha in photos {
                                                a href={"/photos/" (sha)} { img.task-photo src={"/photos/" (sha)} alt="现场照片"; }
                                            }
                                        }
                                    }
                                } @else if let Some(at) = t.cancelled_at {
                                    span.muted { "撤销于 " (local(at)) }
                                }
                            }
                            td {
                                @if clerk.reviews() && t.status == TaskStatus::Open {
                                    form method="post" action={"/tasks/" (t.id) "/cancel"} {
                                        (clerk.csrf_field())
                                        button.secondary type="submit" { "撤销" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(page("任务", &clerk, "tasks", content))
}

#[derive(Deserialize)]
struct NewQuery {
    about: Uuid,
}

async fn new_form(
    State(s): State<AppState>,
    clerk: Clerk,
    Query(q): Query<NewQuery>,
    Query(fl): Query<Flash>,
) -> Result<Response, PageError> {
    if !clerk.reviews() {
        return Err(PageError::Failure(Failure::Forbidden(
            "只有村、乡镇和县级人员可以派任务".into(),
        )));
    }
    let user = clerk.user.clone();
    let about = q.about;
    let (ent, words, workers) = s
        .read(move |db| {
            let (ent, words) = records::task_target(db, &user, about)?;
            let workers = records::workers_of_grid(db, ent.grid_id)?;
            Ok((ent, words, workers))
        })
        .await?;
    let household = ent.kind == EntityKind::Household;
    let default_kind = match ent.kind {
        EntityKind::Household => TaskKind::VisitHousehold,
        EntityKind::Hazard => TaskKind::RecheckHazard,
        _ => TaskKind::Verify,
    };
    let today = today();
    let content = html! {
        p.crumbs {
            @if household { a href="/tasks" { "← 任务" } }
            @else { a href={"/records/" (about)} { "← 返回记录" } }
        }
        h1 { @if household { "安排走访" } @else { "派给网格员复查/核实" } }
        (fl.render())
        p { "对象：" strong #about { (words) } }
        @if workers.is_empty() {
            p.flash.err { "这个网格还没有网格员账号，无法派任务。请先在「数据导入导出」里添加账号。" }
        } @else {
            form.action #task-form method="post" action="/tasks" {
                (clerk.csrf_field())
                input type="hidden" name="about" value=(about);
                label { "任务类型"
                    select #kind name="kind" {
                        @for k in TaskKind::ALL {
                            option value=(k.code()) selected[*k == default_kind] { (k.zh()) }
                        }
                    }
                }
                label { "网格员（在该网格工作）"
                    select #assignee name="assignee" {
                        @for (u, name) in &workers { option value=(u) { (name) "（" (u) "）" } }
                    }
                }
                label { "完成期限" input #due type="date" name="due_date" required min=(today.to_string())
                    value=((today + chrono::Days::new(3)).to_string()); }
                label.wide { "任务说明（网格员在手机上看到）" textarea #task-note name="note" rows="3" required {} }
                div.buttons { button #give type="submit" { "派发任务" } }
            }
        }
    };
    Ok(page("派任务", &clerk, "tasks", content))
}

#[derive(Deserialize)]
struct CreateForm {
    about: Uuid,
    kind: String,
    assignee: String,
    due_date: String,
    #[serde(default)]
    note: Option<String>,
}

async fn create(State(s): State<AppState>, clerk: Clerk, Form(f): Form<CreateForm>) -> Response {
    let back = format!("/tasks/new?about={}", f.about);
    let result = s
        .write(move |db| {
            let kind =
                TaskKind::from_code(f.kind.trim()).map_err(|e| super::bad_code(&e, "kind"))?;
            let due = NaiveDate::parse_from_str(f.due_date.trim(), "%Y-%m-%d")
                .map_err(|_| super::bad_date(&f.due_date, "task_due", "完成期限"))?;
            if due < today() {
                return Err(Failure::invalid(
                    "「完成期限」不能早于今天，请重新选择日期",
                    Some("task_due"),
                ));
            }
            let t = NewTask {
                kind,
                about: f.about,
                assignee: f.assignee.trim().to_owned(),
                due_date: due,
                note: nonempty(&f.note).unwrap_or("").to_owned(),
            };
            Ok(records::create_task(db, &clerk.user, &t, Utc::now())?)
        })
        .await;
    match result {
        Ok(t) => flash(
            "/tasks",
            true,
            &format!("已派给 {}，网格员下次同步时可见", t.assignee),
        ),
        Err(e @ Failure::NotFound(_)) => PageError::Failure(e).into_response(),
        Err(e) => flash(&back, false, &explain(&e)),
    }
}

async fn cancel(State(s): State<AppState>, clerk: Clerk, Path(id): Path<Uuid>) -> Response {
    let result = s
        .write(move |db| Ok(records::cancel_task(db, &clerk.user, id, Utc::now())?))
        .await;
    match result {
        Ok(()) => flash("/tasks", true, "任务已撤销，网格员下次同步时可见"),
        Err(e @ Failure::NotFound(_)) => PageError::Failure(e).into_response(),
        Err(e) => flash("/tasks", false, &explain(&e)),
    }
}
