//! Supervision (督办) on the record page: a reviewer puts an open matter under the village's,
//! town's or county's supervision with a note, or lifts it. Any open matter may be supervised;
//! the form leads with it on overdue and due-soon ones. The level shows on the record page and
//! in the queue, and reaches the worker's phone with the next sync (the note as a reply).

use axum::Router;
use axum::extract::{Form, Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::Utc;
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::{Clerk, PageError, explain, flash};
use crate::domain::codes::{Coded, DeadlineState, Supervision};
use crate::server::AppState;
use crate::server::error::Failure;
use crate::server::records;

pub fn routes() -> Router<AppState> {
    Router::new().route("/records/{id}/supervise", post(supervise))
}

/// The supervision level a record's data carries (none when absent).
pub fn level(record: &Map<String, Value>) -> Supervision {
    record
        .get("supervision")
        .and_then(Value::as_str)
        .and_then(|c| Supervision::from_code(c).ok())
        .unwrap_or_default()
}

/// The mark a supervised matter carries in lists and on its page.
pub fn badge(level: Supervision) -> Markup {
    html! {
        @if level != Supervision::None {
            " " span class={"supervised " (level.code().to_lowercase())} title="督办 Supervised" { (level.zh()) }
        }
    }
}

/// The supervision card of the record page: the level, and for a reviewer the form to set or
/// lift it (only the levels their role may set).
pub fn card(
    record: &Map<String, Value>,
    open: bool,
    state: Option<DeadlineState>,
    clerk: &Clerk,
    id: Uuid,
) -> Markup {
    let current = level(record);
    let limit = records::supervision_limit(clerk.user.role);
    let choices: Vec<Supervision> = [Supervision::Village, Supervision::Town, Supervision::County]
        .into_iter()
        .filter(|l| l.rank() <= limit.rank())
        .collect();
    let late = matches!(state, Some(DeadlineState::Overdue | DeadlineState::DueSoon));
    html! {
        section.card #supervision {
            h2 { "督办 Supervision" }
            p {
                "当前："
                @if current == Supervision::None { span #supervision-level { "未督办" } }
                @else { strong #supervision-level { (current.zh()) } }
            }
            @if !clerk.reviews() {
            } @else if !open {
                p.muted { "此事项已不在办理中，无需督办。" }
            } @else if current.rank() > limit.rank() {
                p.muted { "此事项由更高一级督办，" (clerk.user.role.zh()) "不能更改。" }
            } @else {
                @if late && current == Supervision::None {
                    p.flash.err { "此事项" (state.map(|s| s.zh()).unwrap_or("")) "，建议督办。" }
                }
                form.action #supervise method="post" action={"/records/" (id) "/supervise"} {
                    (clerk.csrf_field())
                    label { "督办级别"
                        select #supervision-choice name="level" {
                            @for l in &choices {
                                option value=(l.code()) selected[*l == current || (current == Supervision::None && *l == limit)] { (l.zh()) }
                            }
                        }
                    }
                    label.wide { "督办说明（随督办发给网格员：原因、要求、期限）"
                        textarea #supervision-note name="note" rows="2" {} }
                    div.buttons {
                        button #supervise-set type="submit" name="action" value="set" { "督办" }
                        @if current != Supervision::None {
                            button.secondary #supervise-clear type="submit" name="action" value="clear" { "取消督办" }
                        }
                    }
                }
            }
        }
    }
}

#[derive(Deserialize)]
struct SuperviseForm {
    #[serde(default)]
    level: Option<String>,
    #[serde(default)]
    note: String,
    action: String,
}

async fn supervise(
    State(s): State<AppState>,
    clerk: Clerk,
    Path(id): Path<Uuid>,
    Form(f): Form<SuperviseForm>,
) -> Response {
    let back = format!("/records/{id}");
    let level = if f.action == "clear" {
        Supervision::None
    } else {
        match f.level.as_deref().map(Supervision::from_code) {
            Some(Ok(l)) if l != Supervision::None => l,
            _ => return flash(&back, false, "督办级别：请选择村级、乡镇或区县督办"),
        }
    };
    let note = f.note;
    let done = s
        .write(move |db| {
            Ok(records::set_supervision(
                db,
                &clerk.user,
                id,
                level,
                &note,
                Utc::now(),
            )?)
        })
        .await;
    match done {
        Ok(()) if level == Supervision::None => {
            flash(&back, true, "已取消督办，网格员下次同步时可见")
        }
        Ok(()) => flash(
            &back,
            true,
            &format!("已设为{}，网格员下次同步时可见", level.zh()),
        ),
        Err(e @ Failure::NotFound(_)) => PageError::Failure(e).into_response(),
        Err(e) => flash(&back, false, &explain(&e)),
    }
}
